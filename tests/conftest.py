"""Shared fixtures: clip locations and a real engine process on a free port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.launcher import EngineProcess, start_engine, stop_engine

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Public-domain clips shipped with the tests."""
    return DATA


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    """The workplace's real recordings (``../shared/audio``, or $STEPEDIT_SHARED_AUDIO)."""
    path = Path(os.environ.get("STEPEDIT_SHARED_AUDIO", REPO.parent / "shared" / "audio"))
    if not (path / "manifest.csv").is_file():
        pytest.skip(f"shared recordings not found at {path}")
    return path


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """One real engine on the embedded CPU backend, shared by the integration tests."""
    running = start_engine(tmp_path_factory.mktemp("engine"))
    yield running
    stop_engine(running)
