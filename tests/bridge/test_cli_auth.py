"""`stepedit secret`, the serve flags for other machines, and signed client commands."""

from __future__ import annotations

import argparse
import json
import logging
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge.auth import Keyring
from bridge.cli import _parser, main
from bridge.client import ClientError, StepEditClient
from bridge.launcher import start_engine, stop_engine
from bridge.server import StepEditServer
from engine.engine import Engine
from tests.engine.fake_backends import FakeRenderBackend


def _secret(state: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    assert main(["secret", "--state-dir", str(state), *flags]) == 0
    return capsys.readouterr().out.strip()


def test_secret_shows_the_same_secret_until_a_new_one_is_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    first = _secret(state, capsys)
    assert len(first) == 64 and int(first, 16) >= 0
    assert stat.S_IMODE((state / "secrets.json").stat().st_mode) == 0o600
    assert _secret(state, capsys) == first
    renewed = _secret(state, capsys, "--new")
    assert renewed != first and _secret(state, capsys) == renewed
    other = _secret(state, capsys, "--key", "laptop")
    assert other not in (first, renewed) and _secret(state, capsys) == renewed
    assert Keyring.in_state_dir(state).names() == ["default", "laptop"]


def test_secret_refuses_a_keyring_others_can_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _secret(tmp_path, capsys)
    (tmp_path / "secrets.json").chmod(0o644)
    assert main(["secret", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr()
    assert err.out == "" and f"chmod 600 {tmp_path / 'secrets.json'}" in err.err


def test_serve_help_shows_every_default() -> None:
    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    serve = commands.choices["serve"]
    options = [a for a in serve._actions if a.option_strings and a.dest != "help"]
    assert {"require_auth", "input_roots", "output_roots", "host"} <= {a.dest for a in options}
    for action in options:
        assert "default" in (action.help or ""), action.option_strings[0]


def test_serve_on_another_address_creates_the_secret_and_needs_roots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    with caplog.at_level(logging.INFO, logger="stepedit"):
        code = main(["serve", "--host", "0.0.0.0", "--port", "0", "--state-dir", str(state)])
    assert code == 2
    assert "--input-root DIR and --output-root DIR" in capsys.readouterr().err
    assert f"created the secret 'default' in {state / 'secrets.json'}" in caplog.text
    assert f"stepedit secret --state-dir {state}" in caplog.text
    assert stat.S_IMODE((state / "secrets.json").stat().st_mode) == 0o600


def test_serve_roots_must_be_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--input-root", str(tmp_path / "missing")])
    assert exited.value.code == 2 and "not a folder" in capsys.readouterr().err


@pytest.fixture()
def signed_engine(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """An in-process engine that takes only signed messages: its address and secret."""
    secret, _ = Keyring.in_state_dir(tmp_path / "state").ensure()
    engine = Engine(FakeRenderBackend())
    engine.start()
    server = StepEditServer(
        engine, "127.0.0.1", 0, Keyring.in_state_dir(tmp_path / "state"), require_auth=True
    )
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"127.0.0.1:{server.port}", secret
    engine.stop()
    server.shutdown()
    server.server_close()


def test_client_commands_sign_with_a_secret_file_or_the_environment(
    signed_engine: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    address, secret = signed_engine
    monkeypatch.delenv("STEPEDIT_SECRET", raising=False)
    assert main(["ping", "--engine", address]) == 1
    assert "[unauthorized] missing: this engine takes only signed messages" in (
        capsys.readouterr().err
    )
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(secret + "\n")
    take = tmp_path / "take.wav"
    soundfile.write(take, 0.2 * np.sin(np.arange(8000) / 5), 16000)
    edit = ["edit", str(take), "--denoise", "-q", "--engine", address]
    assert main([*edit, "--secret-file", str(secret_file)]) == 0
    assert Path(capsys.readouterr().out.strip()).is_file()
    monkeypatch.setenv("STEPEDIT_SECRET", secret)
    assert main(["ping", "--engine", address]) == 0
    assert main(["status", "never-seen", "--engine", address]) == 1
    assert "[unknown_job]" in capsys.readouterr().err
    assert main(["ping", "--engine", address, "--key-id", "nobody"]) == 1
    assert "[unauthorized] unknown_key" in capsys.readouterr().err
    secret_file.write_text("not-a-secret")
    with pytest.raises(SystemExit, match=r"secret\.txt: a StepEdit secret is 64 lowercase hex"):
        main(["ping", "--engine", address, "--secret-file", str(secret_file)])


def test_a_refused_send_is_told_in_its_status_file(
    signed_engine: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clients that only poll the status file (REAPER's CLI transport) learn of refusals
    the engine never saw; a status file that exists already is left alone."""
    address, _ = signed_engine
    monkeypatch.delenv("STEPEDIT_SECRET", raising=False)
    take = tmp_path / "take.wav"
    soundfile.write(take, 0.2 * np.sin(np.arange(8000) / 5), 16000)
    status = tmp_path / "job.status.json"
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"input": str(take), "edit": {"type": "denoise"},
                                   "status_file": str(status)}))  # fmt: skip
    send = ["send", "--job-id", "j1", "--request-file", str(request), "--engine", address]
    assert main(send) == 1
    written = json.loads(status.read_text(encoding="utf-8"))
    assert written["state"] == "error" and written["error"]["code"] == "unauthorized"
    status.write_text("mine")
    assert main(send) == 1
    assert status.read_text() == "mine"


@pytest.mark.slow
def test_the_launcher_starts_an_engine_that_requires_signing(tmp_path: Path) -> None:
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    take = inputs / "take.wav"
    soundfile.write(take, 0.2 * np.sin(np.arange(8000) / 5), 16000)
    roots = ("--input-root", str(inputs), "--output-root", str(outputs))
    running = start_engine(tmp_path, "--require-auth", *roots)
    try:
        assert running.secret == Keyring.in_state_dir(tmp_path / "state").get("default")
        with StepEditClient("127.0.0.1", running.port, secret=running.secret) as client:
            outcome = client.edit(
                {"input": str(take), "output_dir": str(outputs), "edit": {"type": "vad"}}
            )
            assert Path(outcome.output_path).parent == outputs
            with pytest.raises(ClientError) as refused:
                client.edit({"input": str(take), "edit": {"type": "vad"}})  # writes beside it
            assert refused.value.code == "forbidden_path"
        with StepEditClient("127.0.0.1", running.port) as plain, pytest.raises(ClientError) as e:
            plain.ping()
        assert e.value.code == "unauthorized"
    finally:
        assert stop_engine(running) == 0
    assert "signed messages only" in running.log_text()
