"""Start and stop a `stepedit serve` process (used by the pedalboard wrapper, tests, benches)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bridge.client import ClientError, StepEditClient

__all__ = ["EngineProcess", "free_udp_port", "start_engine", "stop_engine"]


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EngineProcess:
    """A running ``stepedit serve`` and the file its log goes to."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start_engine(log_dir: Path, *serve_args: str, timeout: float = 60.0) -> EngineProcess:
    """Starts ``stepedit serve`` on a free port and waits until it answers a ping.

    Args:
        log_dir: Folder for the engine's log file (also its working directory, and its state
            folder unless ``serve_args`` name one).
        serve_args: Extra ``stepedit serve`` arguments, e.g. ``"--backend", "cpu"``.
        timeout: Seconds to wait for the first pong.

    Raises:
        RuntimeError: the engine exited or did not answer; the message holds its log.
    """
    port = free_udp_port()
    log = log_dir / f"engine-{port}.log"
    if not any(a.startswith(("--state-dir", "--state_dir")) for a in serve_args):
        serve_args = ("--state-dir", str(log_dir / "state"), *serve_args)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve", "--port", str(port), *serve_args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log_dir,
        )
    deadline = time.monotonic() + timeout
    with StepEditClient("127.0.0.1", port, timeout=0.5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"engine exited early:\n{log.read_text()}")
            try:
                client.ping()
            except ClientError:
                continue
            return EngineProcess(process, port, log)
    process.kill()
    raise RuntimeError(f"engine did not answer within {timeout} s:\n{log.read_text()}")


def stop_engine(engine: EngineProcess, timeout: float = 30.0) -> int:
    """Sends SIGTERM (a clean shutdown) and returns the exit code; kills after ``timeout``."""
    engine.process.terminate()
    try:
        return engine.process.wait(timeout)
    except subprocess.TimeoutExpired:
        engine.process.kill()
        return engine.process.wait()
