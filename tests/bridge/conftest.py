"""Fixtures of the bridge tests: an engine that cannot read the client's files."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.launcher import EngineProcess, start_engine, stop_engine


@pytest.fixture(scope="session")
def remote_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """An engine that takes signed messages only (``secret``) and reads and writes only its
    folder ``files`` and the storage it shares with the client, ``storage`` (both beside its
    log), as one on another machine would: not the tests' folders, nor the client's
    temporary folder."""
    base = tmp_path_factory.mktemp("remote")
    roots: list[str] = []
    for name in ("files", "storage"):
        (base / name).mkdir()
        roots += ["--input-root", str(base / name), "--output-root", str(base / name)]
    assert not Path(tempfile.gettempdir()).resolve().is_relative_to(base.resolve())
    running = start_engine(base, "--backend", "cpu", "--require-auth", *roots)
    yield running
    stop_engine(running)
