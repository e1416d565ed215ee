"""Signing and checking ``/stepedit/auth`` envelopes, the keyring file, the rate limiter."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge import auth, protocol
from bridge.auth import AuthError, Keyring, KeyringError, RateLimiter, ReplayMemory, Verifier

SECRET = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
NOW = 1_796_000_000.25
PING = protocol.encode(protocol.ADDRESS["ping"], 9402)
# A known answer for other implementations (the REAPER library): this secret, key
# "default", timestamp "1796000000.250", nonce "0123456789abcdef", packet PING.
PING_TAG = "42fbb88b124c39e4fa763865cbe11a72b10a4bb15affa6f7c1d91ebe24016dae"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def keyring(tmp_path: Path) -> Keyring:
    keys = Keyring.in_state_dir(tmp_path / "state")
    keys.ensure("default")
    return keys


Args = tuple[Any, ...]


def envelope_args(datagram: bytes) -> Args:
    (message,) = protocol.decode_datagram(datagram)
    assert message.address == "/stepedit/auth"
    return message.args


def signed(keyring: Keyring, now: float | None = None) -> Args:
    secret = keyring.get("default")
    assert secret is not None
    return envelope_args(auth.sign(PING, "default", secret, now=now))


def test_the_tag_is_hmac_sha256_over_the_documented_bytes() -> None:
    args = envelope_args(auth.sign(PING, "default", SECRET, now=NOW, nonce="0123456789abcdef"))
    assert args[:3] == ("default", "1796000000.250", "0123456789abcdef")
    assert args[4] == PING
    message = b"stepedit-auth-v1\ndefault\n1796000000.250\n0123456789abcdef\n" + PING
    expected = hmac.new(SECRET.encode("ascii"), message, hashlib.sha256).hexdigest()
    assert args[3] == expected == PING_TAG


def test_a_signed_packet_is_unwrapped_with_its_key(keyring: Keyring) -> None:
    verifier = Verifier(keyring)
    assert verifier.verify(signed(keyring)) == ("default", PING)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda a: (a[0], a[1], a[2], "0" * 64, a[4]), "wrong_tag"),
        (lambda a: (a[0], a[1], a[2], a[3].upper(), a[4]), "wrong_tag"),
        (lambda a: (a[0], a[1], a[2], a[3], a[4] + b"\0\0\0\0"), "wrong_tag"),
        (lambda a: (a[0], a[1], "another-nonce", a[3], a[4]), "wrong_tag"),
        (lambda a: ("nobody", *a[1:]), "unknown_key"),
        (lambda a: (a[0], a[1], "short", a[3], a[4]), "malformed"),
        (lambda a: (a[0], a[1], "n" * 65, a[3], a[4]), "malformed"),
        (lambda a: (a[0], a[1], "nonce\tnonce", a[3], a[4]), "malformed"),
        (lambda a: (a[0], a[1], "nönce-nönce", a[3], a[4]), "malformed"),
        (lambda a: (a[0], "1e9", *a[2:]), "malformed"),
        (lambda a: (a[0], "nan", *a[2:]), "malformed"),
        (lambda a: (a[0], a[1], a[2], a[3], "not bytes"), "malformed"),
        (lambda a: a[:4], "malformed"),
    ],
)
def test_tampered_envelopes_are_refused(
    keyring: Keyring, tamper: Callable[[Args], Args], reason: str
) -> None:
    with pytest.raises(AuthError) as refused:
        Verifier(keyring).verify(tamper(signed(keyring)))
    assert refused.value.reason == reason
    assert str(refused.value).startswith(f"{reason}: ")


def test_an_envelope_cannot_wrap_another(keyring: Keyring) -> None:
    inner = auth.sign(PING, "default", SECRET)
    with pytest.raises(ValueError, match="cannot wrap"):
        auth.sign(inner, "default", SECRET)
    args = signed(keyring)
    secret = keyring.get("default")
    assert secret is not None
    forged = (*args[:3], auth.signature(secret, "default", args[1], args[2], inner), inner)
    with pytest.raises(AuthError, match="malformed"):
        Verifier(keyring).verify(forged)


@pytest.mark.parametrize(
    ("skew", "ok"), [(-59.0, True), (59.0, True), (-61.0, False), (61.0, False)]
)
def test_the_clock_window_is_sixty_seconds(keyring: Keyring, skew: float, ok: bool) -> None:
    verifier = Verifier(keyring, clock=Clock(NOW + skew))
    args = signed(keyring, now=NOW)
    if ok:
        assert verifier.verify(args)[0] == "default"
    else:
        with pytest.raises(AuthError, match="stale"):
            verifier.verify(args)


def test_a_replay_is_refused_but_a_fresh_signature_of_the_same_packet_is_not(
    keyring: Keyring,
) -> None:
    verifier = Verifier(keyring)
    args = signed(keyring)
    verifier.verify(args)
    with pytest.raises(AuthError, match="replayed"):
        verifier.verify(args)
    verifier.verify(signed(keyring))  # the client's resend: new nonce


def test_a_refused_envelope_does_not_burn_its_nonce(keyring: Keyring) -> None:
    verifier = Verifier(keyring)
    args = signed(keyring)
    with pytest.raises(AuthError, match="wrong_tag"):
        verifier.verify((*args[:3], "f" * 64, args[4]))
    verifier.verify(args)


def test_the_replay_memory_forgets_after_its_window_and_is_bounded() -> None:
    memory = ReplayMemory(ttl_s=120.0, capacity=3)
    memory.add(("k", "a"), 0.0)
    with pytest.raises(AuthError, match="replayed"):
        memory.add(("k", "a"), 120.0)
    memory.add(("k", "b"), 1.0)
    memory.add(("other", "b"), 2.0)  # nonces are per key
    with pytest.raises(AuthError, match="busy"):
        memory.add(("k", "c"), 3.0)
    assert len(memory) == 3
    memory.add(("k", "a"), 120.5)  # "a" is forgotten (its message is stale by now)
    assert len(memory) == 3


def test_the_replay_memory_stays_bounded_under_a_flood(keyring: Keyring) -> None:
    clock = Clock(NOW)
    verifier = Verifier(keyring, clock=clock, memory=ReplayMemory(capacity=100))
    for _ in range(100):
        verifier.verify(signed(keyring, now=NOW))
    with pytest.raises(AuthError, match="busy"):
        verifier.verify(signed(keyring, now=NOW))
    clock.now += 121
    verifier.verify(signed(keyring, now=clock.now))


def test_the_rate_limiter_allows_a_burst_then_its_rate() -> None:
    clock = Clock(0.0)
    limiter = RateLimiter(rate=5.0, burst=10, clock=clock)
    assert sum(limiter.allow() for _ in range(100)) == 10
    clock.now = 1.0
    assert sum(limiter.allow() for _ in range(100)) == 5
    clock.now = 100.0
    assert sum(limiter.allow() for _ in range(100)) == 10  # never more than the burst


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("192.168.1.20", False),
        ("studio.local", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert auth.is_loopback(host) is loopback


def test_secrets_are_checked_without_being_shown() -> None:
    assert auth.check_secret(f"  {SECRET}\n") == SECRET
    with pytest.raises(ValueError, match="64 lowercase hex") as bad:
        auth.check_secret(SECRET[:-1] + "g")
    assert SECRET[:10] not in str(bad.value)


def test_the_keyring_file_is_private_and_keeps_its_secrets(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # the file must not depend on the umask
    try:
        keyring = Keyring.in_state_dir(tmp_path / "state")
        secret, created = keyring.ensure()
    finally:
        os.umask(old_umask)
    assert created and len(secret) == 64 and int(secret, 16) >= 0
    path = tmp_path / "state" / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"version": 1, "keys": {"default": secret}}
    again = Keyring.in_state_dir(tmp_path / "state")
    assert again.ensure() == (secret, False)
    other = again.renew("other")
    assert other != secret and Keyring(path).names() == ["default", "other"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secrets.json"]  # no temporary left


def test_a_keyring_others_can_read_is_refused(keyring: Keyring) -> None:
    keyring.path.chmod(0o644)
    with pytest.raises(KeyringError, match=r"mode 0644.*chmod 600 .*secrets\.json"):
        Keyring(keyring.path)
    assert stat.S_IMODE(keyring.path.stat().st_mode) == 0o644  # never changed behind one's back


def test_a_damaged_keyring_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b'{"version": 1, "keys": {"default": "short"}}')
    os.close(fd)
    with pytest.raises(KeyringError, match=r"damaged.*stepedit secret"):
        Keyring(path)


def test_two_processes_creating_the_keyring_agree(tmp_path: Path) -> None:
    first, second = Keyring(tmp_path / "secrets.json"), Keyring(tmp_path / "secrets.json")
    secret, created = first.ensure()
    assert created
    assert second.ensure() == (secret, False)  # the file appeared: its key is kept


def test_key_names_are_checked(keyring: Keyring) -> None:
    with pytest.raises(ValueError, match="key name"):
        keyring.ensure("bad name")
