"""``stepedit eval`` on the stepaudio backend, with the tiny official-layout checkpoints."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import soundfile

from bridge.cli import main

pytest.importorskip("torch")

from tests.engine.backends.stepaudio.fixture_editx import write_editx_dir
from tests.engine.backends.stepaudio.fixture_tokenizer import write_tokenizer_dir

pytestmark = pytest.mark.slow


def test_eval_runs_any_backend(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    models = tmp_path / "models"
    write_tokenizer_dir(models)
    write_editx_dir(models)
    samples, rate = soundfile.read(data_dir / "en_ljspeech_LJ050-0131.wav", dtype="float32")
    clips = tmp_path / "clips"
    clips.mkdir()
    soundfile.write(clips / "take.wav", samples[: int(1.5 * rate)], rate)
    (clips / "take.txt").write_text("unless a system", encoding="utf-8")
    out = tmp_path / "report"
    status = main(
        [
            "eval",
            str(clips),
            "--backend",
            "stepaudio",
            "--model-dir",
            str(models),
            "--length-multiple",
            "1",
            "--edits",
            "emotion:happy*2",
            "speed:faster",
            "--no-similarity",
            "--no-asr",
            "--no-dnsmos",
            "--no-plots",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    rows = list(csv.DictReader((out / "results.csv").open(encoding="utf-8")))
    assert [r["edit"] for r in rows] == ["original", "emotion:happy x2", "faster"]
    for row in rows[1:]:
        assert float(row["duration_s"]) > 0 and float(row["rtf"]) > 0
    assert "| emotion:happy x2 |" in (out / "report.md").read_text(encoding="utf-8")


def test_eval_reports_a_missing_model_folder(tmp_path: Path, data_dir: Path) -> None:
    status = main(
        [
            "eval",
            str(data_dir / "en_ljspeech_LJ050-0131.wav"),
            "--backend",
            "stepaudio",
            "--model-dir",
            str(tmp_path / "none"),
            "--no-plots",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert status == 2
