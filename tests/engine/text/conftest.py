"""Transcription tests run offline, with the engine's state (joined models) in a temp folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _offline_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``HF_HUB_OFFLINE=1`` (any hub access would fail) and a session-wide state folder."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "STEPEDIT_STATE_DIR")}
    state = tmp_path_factory.mktemp("stepedit-state")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["STEPEDIT_STATE_DIR"] = str(state)
    yield state
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
