"""Signed messages (``/stepedit/auth``): signing, checking, the keyring and a rate limiter.

Pure: no sockets and no engine imports. The envelope is specified in docs/protocol.md,
"Authentication"; the REAPER library signs the same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bridge.protocol import ADDRESS, encode

__all__ = [
    "CLOCK_WINDOW_S",
    "DEFAULT_KEY_ID",
    "KEYRING_FILE",
    "REPLAY_WINDOW_S",
    "AuthError",
    "Keyring",
    "KeyringError",
    "RateLimiter",
    "ReplayMemory",
    "Verifier",
    "check_secret",
    "is_loopback",
    "new_secret",
    "sign",
    "signature",
]

_LOG = logging.getLogger(__name__)

DEFAULT_KEY_ID = "default"
KEYRING_FILE = "secrets.json"
# A signed message's timestamp may differ from the engine's clock by at most this much.
CLOCK_WINDOW_S = 60.0
# Nonces are remembered this long: twice the clock window, so a message is stale before
# its nonce is forgotten.
REPLAY_WINDOW_S = 2 * CLOCK_WINDOW_S
# At most this many nonces are remembered (a few MB); beyond, signed messages are refused
# until old ones expire, rather than forgetting nonces a replay could reuse.
MAX_REMEMBERED = 32_768

_DOMAIN = b"stepedit-auth-v1"
_KEY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SECRET = re.compile(r"[0-9a-f]{64}")
_TAG = re.compile(r"[0-9a-f]{64}")
_NONCE = re.compile(r"[\x20-\x7e]{8,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")
_AUTH_PREFIX = ADDRESS["auth"].encode() + b"\0"


class AuthError(ValueError):
    """A signed message that is refused, or an unsigned one where signing is required.

    Attributes:
        reason: ``missing``, ``malformed``, ``unknown_key``, ``wrong_tag``, ``stale``,
            ``replayed`` or ``busy`` (too many signed messages to remember).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class KeyringError(OSError):
    """The keyring file cannot be used; the message says why and how to fix it."""


def new_secret() -> str:
    """A fresh secret: 64 lowercase hex characters (256 random bits)."""
    return secrets.token_hex(32)


def check_secret(secret: str) -> str:
    """``secret`` without surrounding whitespace, when it has the form ``new_secret`` makes.

    Raises:
        ValueError: naming the expected form (never the secret itself).
    """
    secret = secret.strip()
    if not _SECRET.fullmatch(secret):
        raise ValueError(
            f"a StepEdit secret is 64 lowercase hex characters (got {len(secret)} characters "
            "that are not); show the engine's with 'stepedit secret' on its machine"
        )
    return secret


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False  # "" (every interface) or a name that may resolve elsewhere
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


def signature(secret: str, key_id: str, timestamp: str, nonce: str, packet: bytes) -> str:
    """The envelope's ``tag``: lowercase hex HMAC-SHA256 keyed with the secret's ASCII."""
    message = b"\n".join((_DOMAIN, key_id.encode(), timestamp.encode(), nonce.encode(), packet))
    return hmac.new(secret.encode("ascii"), message, hashlib.sha256).hexdigest()


def sign(
    packet: bytes,
    key_id: str,
    secret: str,
    *,
    now: float | None = None,
    nonce: str | None = None,
) -> bytes:
    """Wraps an OSC packet in a ``/stepedit/auth`` envelope.

    Args:
        packet: The complete OSC message or bundle.
        key_id: The key's name in the engine's keyring.
        secret: The key's secret (``check_secret`` form).
        now: Unix time to sign with; the current time when ``None``.
        nonce: A fresh random one when ``None`` (a resend needs a new one).

    Returns:
        The datagram to send.
    """
    if packet.startswith(_AUTH_PREFIX):
        raise ValueError("an auth envelope cannot wrap another one")
    timestamp = f"{time.time() if now is None else now:.3f}"
    nonce = nonce or secrets.token_hex(16)
    tag = signature(secret, key_id, timestamp, nonce, packet)
    return encode(ADDRESS["auth"], key_id, timestamp, nonce, tag, packet)


class ReplayMemory:
    """The ``(key_id, nonce)`` pairs seen within ``ttl_s``, at most ``capacity`` of them.

    Not thread-safe on its own (``Verifier`` locks it).
    """

    def __init__(self, ttl_s: float = REPLAY_WINDOW_S, capacity: int = MAX_REMEMBERED) -> None:
        self.ttl_s, self.capacity = ttl_s, capacity
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()  # oldest first

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, key: tuple[str, str], now: float) -> None:
        """Remembers ``key`` seen at ``now``.

        Raises:
            AuthError: ``replayed`` when seen within ``ttl_s``; ``busy`` when full.
        """
        while self._seen and now - next(iter(self._seen.values())) > self.ttl_s:
            self._seen.popitem(last=False)
        if key in self._seen:
            raise AuthError("replayed", f"nonce {key[1]!r} was used already; sign each send anew")
        if len(self._seen) >= self.capacity:
            raise AuthError("busy", "too many signed messages recently; retry in a minute")
        self._seen[key] = now


class Verifier:
    """Checks ``/stepedit/auth`` envelopes against a keyring and refuses replays.

    Thread-safe.

    Args:
        keyring: Where key ids are looked up.
        clock: Unix time; also times the replay memory, so that a nonce is forgotten only
            once its message would be stale anyway.
        memory: The replay memory (a default-sized one when ``None``).
    """

    def __init__(
        self,
        keyring: Keyring,
        clock: Callable[[], float] = time.time,
        memory: ReplayMemory | None = None,
    ) -> None:
        self.keyring, self.clock = keyring, clock
        self._memory = ReplayMemory() if memory is None else memory
        self._lock = threading.Lock()

    def verify(self, args: Sequence[Any]) -> tuple[str, bytes]:
        """Checks an envelope's arguments (``key_id timestamp nonce tag packet``).

        Returns:
            The key id (the sender's identity) and the wrapped packet.

        Raises:
            AuthError: why the envelope is refused.
        """
        if len(args) != 5 or not all(isinstance(a, str) for a in args[:4]):
            raise AuthError("malformed", "expected key_id:s timestamp:s nonce:s tag:s packet:b")
        key_id, timestamp, nonce, tag, packet = args
        if not isinstance(packet, bytes) or packet.startswith(_AUTH_PREFIX):
            raise AuthError("malformed", "packet must be a blob holding a plain OSC packet")
        if not _TIMESTAMP.fullmatch(timestamp):
            raise AuthError("malformed", f"timestamp must be decimal Unix seconds: {timestamp!r}")
        if not _NONCE.fullmatch(nonce):
            raise AuthError("malformed", "nonce must be 8-64 printable ASCII characters")
        secret = self.keyring.get(key_id)
        if secret is None:
            raise AuthError("unknown_key", f"no key named {key_id!r} in the engine's keyring")
        expected = signature(secret, key_id, timestamp, nonce, packet)
        if not (_TAG.fullmatch(tag) and hmac.compare_digest(tag, expected)):
            raise AuthError("wrong_tag", f"the signature does not match key {key_id!r}")
        with self._lock:
            now = self.clock()
            skew = now - float(timestamp)
            if abs(skew) > CLOCK_WINDOW_S:
                raise AuthError(
                    "stale",
                    f"timestamp is {skew:+.0f} s from the engine's clock (at most "
                    f"{CLOCK_WINDOW_S:.0f} s allowed); check both machines' clocks",
                )
            self._memory.add((key_id, nonce), now)
        return key_id, packet


class RateLimiter:
    """A token bucket: up to ``burst`` events at once, refilled at ``rate`` per second.

    Thread-safe.
    """

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got {rate} and {burst}")
        self.rate, self.burst, self.clock = rate, burst, clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Takes a token when one is left."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


class Keyring:
    """Named secrets, kept as JSON in one file that only its owner may read.

    The file is written whole: a new version is created beside it with mode 0600 (never
    wider) and moved over it. A file that other users may read or change is refused.

    Args:
        path: The JSON file, usually ``<state folder>/secrets.json`` (``in_state_dir``).

    Raises:
        KeyringError: the file exists but is unsafe or unreadable.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._exists = False  # whether the file existed at the last read or write
        self._keys = self._read()

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> Keyring:
        """The keyring of the engine whose state folder is ``state_dir``."""
        return cls(state_dir / KEYRING_FILE)

    def __len__(self) -> int:
        return len(self._keys)

    def names(self) -> list[str]:
        return sorted(self._keys)

    def get(self, key_id: str) -> str | None:
        """The secret of ``key_id``, or ``None``."""
        return self._keys.get(key_id)

    def ensure(self, key_id: str = DEFAULT_KEY_ID) -> tuple[str, bool]:
        """The secret of ``key_id``, created and saved when missing.

        Returns:
            The secret, and whether it was created now.
        """
        return self._put(key_id, replace=False)

    def renew(self, key_id: str = DEFAULT_KEY_ID) -> str:
        """Replaces (or creates) the secret of ``key_id``; its clients need the new one."""
        return self._put(key_id, replace=True)[0]

    def _put(self, key_id: str, replace: bool) -> tuple[str, bool]:
        _check_name(key_id)
        with self._lock:
            for _ in range(2):  # again if another process created the file meanwhile
                if not replace and key_id in self._keys:
                    return self._keys[key_id], False
                secret = new_secret()
                if self._save({**self._keys, key_id: secret}):
                    return secret, True
                self._keys = self._read()
        raise KeyringError(f"{self.path} keeps changing while it is written; try again")

    def _read(self) -> dict[str, str]:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._exists = False
            return {}
        except OSError as e:
            raise KeyringError(f"cannot read the keyring {self.path}: {e}") from e
        with os.fdopen(fd, "rb") as file:
            _check_private(self.path, os.fstat(fd))
            text = file.read()
        try:
            document = json.loads(text)
            keys = document["keys"]
            if not isinstance(keys, dict) or not all(
                isinstance(k, str) and _KEY_NAME.fullmatch(k) and _SECRET.fullmatch(str(v))
                for k, v in keys.items()
            ):
                raise ValueError("keys must map names to 64-hex-character secrets")
        except (ValueError, KeyError, TypeError) as e:
            raise KeyringError(
                f"the keyring {self.path} is damaged ({e}); move it away and run "
                "'stepedit secret' to create a new one (clients then need the new secret)"
            ) from e
        self._exists = True
        return dict(keys)

    def _save(self, keys: dict[str, str]) -> bool:
        """Writes ``keys``; ``False`` when the file did not exist at the last read and
        another process has created it since (nothing is overwritten then)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        document = json.dumps({"version": 1, "keys": keys}, indent=2) + "\n"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as file:
                file.write(document)
                file.flush()
                os.fsync(file.fileno())
            if self._exists:
                os.replace(temporary, self.path)
            else:
                try:
                    os.link(temporary, self.path)  # fails if the file appeared meanwhile
                except FileExistsError:
                    return False
        finally:
            temporary.unlink(missing_ok=True)
        self._keys, self._exists = keys, True
        _LOG.debug("keyring %s saved (%d keys)", self.path, len(keys))
        return True


def _check_name(key_id: str) -> None:
    if not _KEY_NAME.fullmatch(key_id):
        raise ValueError(f"a key name is 1-64 letters, digits, '.', '_' or '-', got {key_id!r}")


def _check_private(path: Path, status: os.stat_result) -> None:
    """Refuses a keyring file that another user could read or change (POSIX only)."""
    if os.name != "posix":
        return
    mode = status.st_mode & 0o777
    if status.st_uid != os.getuid() or mode & 0o077:
        raise KeyringError(
            f"the keyring {path} (mode {mode:04o}) may be read or changed by other users, "
            f"so its secrets are not trusted. Fix: 'chmod 600 {path}' as its owner, then "
            "'stepedit secret --new' (the old secret may have been seen)"
        )
