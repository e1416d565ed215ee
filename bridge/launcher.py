"""Start and stop a `stepedit serve` process (used by the pedalboard wrapper, tests, benches)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bridge.auth import Keyring, is_loopback
from bridge.client import ClientError, StepEditClient

__all__ = ["EngineProcess", "free_udp_port", "start_engine", "stop_engine"]


def free_udp_port() -> int:
    """A port number on 127.0.0.1 that nothing uses right now, for UDP nor TCP (the engine
    serves both on one number)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


@dataclass
class EngineProcess:
    """A running ``stepedit serve`` and the file its log goes to.

    Attributes:
        secret: The ``default`` key's secret when the engine takes only signed messages.
    """

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    secret: str | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start_engine(log_dir: Path, *serve_args: str, timeout: float = 60.0) -> EngineProcess:
    """Starts ``stepedit serve`` on a free port and waits until it answers a ping.

    When ``serve_args`` make the engine take only signed messages (``--require-auth``, or
    a ``--host`` other than loopback), the keyring's ``default`` secret is created first
    (if needed) and signs the pings; it is the result's ``secret``.

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
    state = _option(serve_args, "--state-dir", "--state_dir")
    if state is None:
        state = str(log_dir / "state")
        serve_args = ("--state-dir", state, *serve_args)
    secret = None
    host = _option(serve_args, "--host") or "127.0.0.1"
    if {"--require-auth", "--require_auth"} & set(serve_args) or not is_loopback(host):
        secret, _ = Keyring.in_state_dir(Path(state)).ensure()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve", "--port", str(port), *serve_args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log_dir,
        )
    deadline = time.monotonic() + timeout
    with StepEditClient("127.0.0.1", port, timeout=0.5, secret=secret) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"engine exited early:\n{log.read_text()}")
            try:
                client.ping()
            except ClientError:
                continue
            return EngineProcess(process, port, log, secret)
    process.kill()
    raise RuntimeError(f"engine did not answer within {timeout} s:\n{log.read_text()}")


def _option(args: tuple[str, ...], *names: str) -> str | None:
    """The value of the last of ``names`` in ``args`` (``--name value`` or ``--name=value``)."""
    value = None
    for index, arg in enumerate(args):
        name, equals, inline = arg.partition("=")
        if name in names:
            value = inline if equals else args[index + 1] if index + 1 < len(args) else None
    return value


def stop_engine(engine: EngineProcess, timeout: float = 30.0) -> int:
    """Sends SIGTERM (a clean shutdown) and returns the exit code; kills after ``timeout``."""
    engine.process.terminate()
    try:
        return engine.process.wait(timeout)
    except subprocess.TimeoutExpired:
        engine.process.kill()
        return engine.process.wait()
