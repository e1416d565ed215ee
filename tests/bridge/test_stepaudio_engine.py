"""The stepaudio backend through the real engine over OSC, on tiny official-layout checkpoints."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge.client import StepEditClient
from bridge.launcher import EngineProcess, start_engine, stop_engine

pytest.importorskip("torch")

from tests.engine.backends.stepaudio.fixture_editx import write_editx_dir
from tests.engine.backends.stepaudio.fixture_tokenizer import write_tokenizer_dir

pytestmark = pytest.mark.slow

TRANSCRIPT = "unless a system is established for the frequent formal review"


@pytest.fixture(scope="module")
def stepaudio_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    root = tmp_path_factory.mktemp("models")
    write_tokenizer_dir(root)
    write_editx_dir(root)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")  # tiny models: a second thread only waits
        running = start_engine(
            tmp_path_factory.mktemp("engine"),
            "--backend",
            "stepaudio",
            "--model-dir",
            str(root),
            "--length-multiple",
            "1",
        )
    yield running
    stop_engine(running)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    path = tmp_path_factory.mktemp("clip") / "take.wav"
    shutil.copy(data_dir / "en_ljspeech_LJ050-0131.wav", path)
    return path


def test_ping_and_capabilities(stepaudio_engine: EngineProcess) -> None:
    with StepEditClient("127.0.0.1", stepaudio_engine.port, timeout=5) as client:
        assert client.ping().backend == "stepaudio"
        caps = client.capabilities()
    edits = caps["backends"]["stepaudio"]["edits"]
    assert caps["backend"] == "stepaudio"
    assert set(edits) == {
        *("emotion", "style", "paralinguistic", "speed", "denoise", "vad", "clone"),
        *("text", "fillers"),
    }
    assert len(edits["style"]) == 33 and "remove" in edits["emotion"]


@pytest.mark.parametrize(
    "edit",
    [
        {
            "type": "clone",
            "text": TRANSCRIPT,
            "target_text": "Speech editing that feels like text.",
        },
        {"type": "emotion", "option": "happy", "text": TRANSCRIPT},
        {"type": "style", "option": "whisper", "text": TRANSCRIPT},
        {"type": "speed", "option": "more faster", "text": TRANSCRIPT},
        {"type": "paralinguistic", "text": TRANSCRIPT, "target_text": "unless [Laughter] a system"},
        {"type": "denoise"},
        {"type": "vad"},
    ],
    ids=lambda e: e["type"],
)
def test_every_edit_type_renders_over_osc(
    stepaudio_engine: EngineProcess, clip: Path, edit: dict
) -> None:
    with StepEditClient("127.0.0.1", stepaudio_engine.port, timeout=10) as client:
        outcome = client.edit({"input": str(clip), "start": 0.5, "length": 1.5, "edit": edit})
    info = soundfile.info(outcome.output_path)
    assert (info.samplerate, info.channels) == (22050, 1)  # back at the source's format
    generation = outcome.result["generation"]
    assert generation["stop_reason"] in {"eos", "token_bound"}
    assert 0 < generation["audio_tokens"] <= generation["max_new_tokens"]
    # 960 samples at 24 kHz per 25 Hz decoder frame, 3 frames per 5 tokens
    frames = 3 * -(-generation["audio_tokens"] // 5)
    assert info.frames == pytest.approx(frames * 960 * 22050 / 24000, abs=3)
    assert clip.stat().st_size > 0 and Path(outcome.output_path) != clip


def test_a_replaced_word_is_said_over_osc_and_the_rest_of_the_take_kept(
    stepaudio_engine: EngineProcess, clip: Path
) -> None:
    """Random weights say noise: the structure, the lengths and the kept audio are checked,
    not what the new word sounds like."""
    length = 1.9  # "unless a system is established"
    edit = {
        "type": "text",
        "text": "unless a system is established",
        "target_text": "unless a method is established",
    }
    with StepEditClient("127.0.0.1", stepaudio_engine.port, timeout=60) as client:
        outcome = client.edit({"input": str(clip), "start": 0.0, "length": length, "edit": edit})
    result = outcome.result
    assert result["backend"] == "stepaudio"
    assert [(w["word"], w["action"]) for w in result["words"]] == [
        ("unless", "kept"),
        ("a", "kept"),
        ("method", "replaced"),
        ("is", "kept"),
        ("established", "kept"),
    ]
    (generation,) = result["generations"]
    assert 0 < generation["audio_tokens"] <= generation["max_new_tokens"]

    out, rate = soundfile.read(outcome.output_path, dtype="float32")
    source, _ = soundfile.read(clip, frames=round(length * rate), dtype="float32")
    assert rate == 22050 and out.ndim == source.ndim == 1
    head = int(np.flatnonzero(out[: len(source)] != source[: len(out)])[0])
    tail = int(np.flatnonzero(out[::-1][: len(source)] != source[::-1][: len(out)])[0])
    words = {w["word"]: w for w in result["words"]}
    near = 0.06  # cuts lie within 50 ms of the aligned boundary; joins fade over 10 ms
    # Sample for sample the source up to the pause before "system", and from the pause after.
    assert words["a"]["from_end"] - near <= head / rate <= words["method"]["from_start"] + near
    assert (len(source) - tail) / rate <= words["is"]["from_start"] + near
    # Lengths: the take without the replaced word, plus the said word (margins included),
    # less the two 10 ms joins.
    fade = round(0.010 * rate)
    said = words["method"]["end"] - words["method"]["start"] + 2 * 0.020
    removed = len(source) - head - tail - 2 * fade
    assert len(out) - head - tail == pytest.approx(said * rate, abs=0.003 * rate)
    assert len(out) == pytest.approx(len(source) - removed + said * rate - 2 * fade, abs=3)
    assert 0.2 <= removed / rate <= words["is"]["from_start"] - words["a"]["from_end"] + near
    assert words["a"]["end"] <= words["method"]["start"] < words["is"]["start"]


def test_a_second_edit_of_a_slice_spends_no_time_in_the_tokenizer(
    stepaudio_engine: EngineProcess, clip: Path
) -> None:
    """The engine gives the backend its cache folder: the second edit hits; passes after the
    first start from tokens, so two iterations run the tokenizer once."""
    edit = {"type": "emotion", "option": "sad", "text": TRANSCRIPT, "iterations": 2}
    request = {"input": str(clip), "start": 2.0, "length": 1.0, "edit": edit}
    with StepEditClient("127.0.0.1", stepaudio_engine.port, timeout=10) as client:
        first, second = (client.edit(request).result for _ in range(2))
    assert first["tokenizer"] == {"cache": "miss", "calls": 1}
    assert second["tokenizer"] == {"cache": "hit", "calls": 0}
    assert {"tokenize", "generate", "decode"} <= set(second["timings"])


def test_one_more_pass_on_the_rendered_take_spends_no_time_in_the_tokenizer(
    stepaudio_engine: EngineProcess, clip: Path
) -> None:
    """REAPER's "One more pass on the active take" sends the take's stored edit, one
    iteration, on the whole of the take's file: the engine continues on the tokens it kept
    beside that file, and an edit of another slice of it tokenizes. (Unchecked: random
    weights say no words, so checked generations would take every try.)"""
    edit = {
        "type": "emotion",
        "option": "happy",
        "text": TRANSCRIPT,
        "iterations": 2,
        "guard": False,
    }
    request = {"input": str(clip), "start": 1.0, "length": 1.0, "edit": edit}
    with StepEditClient("127.0.0.1", stepaudio_engine.port, timeout=10) as client:
        take = client.edit(request).output_path
        whole = {"input": take, "start": 0.0, "length": soundfile.info(take).duration}
        more = client.edit({**whole, "edit": {**edit, "iterations": 1}}).result
        part = client.edit({**whole, "length": 0.5, "edit": {**edit, "iterations": 1}}).result
    assert more["tokenizer"] == {"cache": "tokens", "calls": 0}
    assert part["tokenizer"] == {"cache": "miss", "calls": 1}
