"""Shared fixtures: clip locations and a real engine process on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EngineProcess:
    """A running ``stepedit serve``."""

    process: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start_engine(tmp: Path, *extra: str, timeout: float = 60.0) -> EngineProcess:
    """Starts ``stepedit serve`` and waits until it answers a ping."""
    from bridge.client import ClientError, StepEditClient

    port = free_udp_port()
    log = tmp / f"engine-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "serve", "--port", str(port), *extra],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp,
    )
    deadline = time.monotonic() + timeout
    with StepEditClient("127.0.0.1", port, timeout=0.5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"engine exited early:\n{log.read_text()}")
            try:
                client.ping()
                return EngineProcess(process, port, log)
            except ClientError:
                continue
    process.kill()
    raise RuntimeError(f"engine did not answer within {timeout} s:\n{log.read_text()}")


def stop_engine(engine: EngineProcess) -> int:
    engine.process.terminate()
    try:
        return engine.process.wait(30)
    except subprocess.TimeoutExpired:
        engine.process.kill()
        return engine.process.wait()


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """One real engine on the embedded CPU backend, shared by the integration tests."""
    running = start_engine(tmp_path_factory.mktemp("engine"))
    yield running
    stop_engine(running)
