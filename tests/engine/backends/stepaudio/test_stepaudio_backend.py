"""The stepaudio backend end to end on the tiny fixture: load, tokenize, generate, decode."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from engine.backends import backend_class, create_backend
from engine.backends.base import TokenBackend
from engine.backends.stepaudio import StepAudioBackend, StepAudioOptions
from engine.backends.stepaudio.options import DecoderOptions, GenerationLimits, SamplingConfig
from engine.backends.stepaudio.prompts import PromptSwitches
from engine.edits import EDIT_TYPES, MASK_SOUNDS, MODEL_EDIT_TYPES, EditSpec
from engine.errors import BackendError, CheckpointError, EditError
from engine.render import render_file

RATE = 44100
FAST = StepAudioOptions(
    seed=7,
    limits=GenerationLimits(length_multiple=0.3, min_tokens=6),
    decoder=DecoderOptions(steps=2),
    dither=0.0,
)


def noop(fraction: float, stage: str) -> None:
    assert 0.0 <= fraction <= 1.0 and stage in {"tokenize", "generate", "decode"}


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> StepAudioBackend:
    loaded = StepAudioBackend(model_dir, "cpu", "fp32", options=FAST)
    loaded.load()
    return loaded


def clip(seconds: float, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    tone = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    return (tone + 0.05 * rng.standard_normal((channels, t.size))).astype(np.float32)


def test_registered_without_importing_torch() -> None:
    assert backend_class("stepaudio") is StepAudioBackend
    code = (
        "import sys; from engine.backends import backend_class; backend_class('stepaudio'); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_declares_every_official_edit() -> None:
    official = {n: EDIT_TYPES[n].options for n in MODEL_EDIT_TYPES}
    assert dict(StepAudioBackend.edits) == {**official, "text": MASK_SOUNDS, "fillers": ()}
    assert StepAudioBackend.edits["speed"] == ("faster", "slower", "more faster", "more slower")
    assert "clone" in StepAudioBackend.edits and len(StepAudioBackend.edits["style"]) == 33


def test_constructor_checks_dtype_and_create_backend_passes_kwargs(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        StepAudioBackend(model_dir, dtype="int8")
    made = create_backend("stepaudio", model_dir=model_dir, device="cpu", dtype="bf16")
    assert isinstance(made, StepAudioBackend) and made.device == "cpu" and made.dtype == "bf16"


def test_load_reports_the_checkpoint_problems(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        StepAudioBackend(tmp_path / "none").load()
    with pytest.raises(BackendError, match=r"no CUDA GPU|unknown device"):
        StepAudioBackend(model_dir, device="cuda:0").load()


def test_is_a_token_backend(backend: StepAudioBackend) -> None:
    assert isinstance(backend, TokenBackend)
    # Official defaults where the options leave them open.
    assert backend._sampling == SamplingConfig(temperature=0.7, top_k=50, top_p=1.0)
    assert backend._prompts is not None and backend._prompts.switches.bos_per_segment is True


def test_open_question_switches_reach_the_model(model_dir: Path) -> None:
    options = dataclasses.replace(
        FAST,
        kv_group_layout="interleaved",
        attention_scale=0.2,
        prompt=PromptSwitches(bos_per_segment=False, fast_tokenizer_space=True),
    )
    switched = StepAudioBackend(model_dir, options=options)
    switched.load()
    assert switched._llm is not None and switched._prompts is not None
    attention: Any = switched._llm.model.layers[0].self_attn
    assert attention.interleaved and attention.scale == 0.2
    assert switched._prompts.switches == options.prompt


def test_tokenize_three_seconds_at_44k(backend: StepAudioBackend) -> None:
    prompt = backend.tokenize(clip(3.0), RATE, noop)
    # 3 s of sound: about 55 vq02 and 82 vq06 codes; whole 2:3 groups only.
    assert abs(len(prompt.codes.vq02) - 55) <= 2 and abs(len(prompt.codes.vq06) - 82) <= 2
    groups = min(len(prompt.codes.vq02) // 2, len(prompt.codes.vq06) // 3)
    assert len(prompt.codes.llm_ids) == 5 * groups
    assert prompt.mel.shape == (150, 80) and prompt.speaker.shape == (192,)


CASES = [EditSpec("clone", text="Hello there.", target_text="Good morning to you all.")] + [
    EditSpec(
        name,
        kind.options[0] if kind.options else "",
        text="It was a fine day.",
        positions=(0.5,) if name == "paralinguistic" else (),
    )
    for name, kind in EDIT_TYPES.items()
    if name in MODEL_EDIT_TYPES and name != "clone"
]


@pytest.mark.parametrize("edit", CASES, ids=[e.type for e in CASES])
def test_every_edit_type_renders(backend: StepAudioBackend, edit: EditSpec) -> None:
    prompt = backend.tokenize(clip(1.5, seed=1), RATE, noop)
    generated = backend.generate(prompt, edit, noop)
    rendered = backend.decode(generated, prompt, noop)
    values = len(generated.values)
    assert rendered.sample_rate == 24000 and rendered.audio.dtype == np.float32
    assert rendered.audio.shape == (1, 960 * 3 * -(-values // 5))
    info = rendered.info["generation"]
    assert info["stop_reason"] in {"eos", "token_bound"} and info["seed"] == 7
    assert info["max_new_tokens"] == generated.max_new_tokens >= info["audio_tokens"] == values
    assert info["prompt_tokens"] == generated.prompt_length
    assert -20.0 <= rendered.loudness_offset_db <= 20.0


def test_seed_makes_passes_repeatable(backend: StepAudioBackend) -> None:
    prompt = backend.tokenize(clip(1.0, seed=2), RATE, noop)
    edit = EditSpec("style", "whisper", text="hi")
    first, second = (backend.generate(prompt, edit, noop) for _ in range(2))
    assert first.values == second.values
    a, b = (backend.decode(first, prompt, noop).audio for _ in range(2))
    assert np.array_equal(a, b)


def test_paralinguistic_needs_some_text(backend: StepAudioBackend) -> None:
    prompt = backend.tokenize(clip(1.0), RATE, noop)
    with pytest.raises(EditError, match="paralinguistic edits need"):
        backend.generate(prompt, EditSpec("paralinguistic", "Laughter", positions=(0.5,)), noop)


def test_render_file_returns_the_generation_facts(
    backend: StepAudioBackend, tmp_path: Path
) -> None:
    source = tmp_path / "take.wav"
    soundfile.write(source, clip(1.2, channels=1).T, RATE, subtype="PCM_16")
    written = render_file(
        backend,
        EditSpec("emotion", "sad", iterations=2, text="hi there", guard=False),
        source=source,
        start=0.0,
        length=None,
        output_dir=tmp_path,
        stem="take.sad",
        max_input_seconds=600.0,
        progress=lambda f, s: None,
    )
    assert (written.sample_rate, written.channels) == (RATE, 1)
    assert written.info["generation"]["stop_reason"] in {"eos", "token_bound"}
    assert written.path.is_file()
