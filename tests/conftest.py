"""Shared fixtures: clip locations and a real engine process on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.launcher import EngineProcess, start_engine, stop_engine

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Recordings shipped with the tests; sources and licences in ``tests/data/README.md``."""
    return DATA


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """One real engine on the embedded CPU backend, shared by the integration tests."""
    running = start_engine(tmp_path_factory.mktemp("engine"))
    yield running
    stop_engine(running)
