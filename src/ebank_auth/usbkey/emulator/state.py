"""Persistent state of the software token, written atomically.

One JSON file, ``token-state.json``, in the token's state directory holds
everything that survives power-off: serial, device key and certificate, the two
PIN records (salted verifier, retry limit, remaining tries) and the containers
(key pairs and certificates).  :meth:`StateFile.save` writes a temporary file in
the same directory, ``fsync``s it, ``os.replace``s it over the old one and
``fsync``s the directory, so a crash leaves either the old or the new state —
never a torn one.  The card calls :meth:`StateFile.save` *after* decrementing a
retry counter and *before* comparing the PIN (anti-tearing, UK-3).

Several token objects — in one process or in several — may open the same directory.  So
that no interleaving of them grants an extra PIN try or writes an older counter back, the
card runs every command inside :meth:`StateFile.locked` (an exclusive ``flock`` on
``token-state.lock``, plus a thread lock) and re-reads the state first.

With ``path=None`` the state lives in memory only (unit tests).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ebank_auth.errors import ConfigurationError, EncodingError, PinPolicyError, StoreError
from ebank_auth.usbkey.protocol import Algorithm, ContainerUsage, check_retry_limit

__all__ = [
    "STATE_FILENAME",
    "STATE_VERSION",
    "ContainerRecord",
    "PinRecord",
    "StateFile",
    "TokenState",
]

STATE_FILENAME: Final = "token-state.json"
LOCK_FILENAME: Final = "token-state.lock"
STATE_VERSION: Final = 1
_PBKDF2_ITERATIONS: Final = 20_000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise EncodingError(f"token state: {what} must be base64 text")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise EncodingError(f"token state: {what} is not valid base64") from None


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EncodingError(f"token state: {what} must be an integer")
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise EncodingError(f"token state: {what} must be text")
    return value


@dataclass
class PinRecord:
    """One PIN: salted PBKDF2-HMAC-SHA256 verifier, retry limit and tries left."""

    salt: bytes
    verifier: bytes
    max_retries: int
    remaining: int

    @staticmethod
    def _derive(pin: bytes, salt: bytes) -> bytes:
        return hashlib.pbkdf2_hmac("sha256", pin, salt, _PBKDF2_ITERATIONS)

    @classmethod
    def create(cls, pin: bytes, max_retries: int) -> PinRecord:
        check_retry_limit(max_retries)
        salt = secrets.token_bytes(16)
        return cls(salt, cls._derive(pin, salt), max_retries, max_retries)

    def matches(self, pin: bytes) -> bool:
        """Constant-time comparison of ``pin`` with the stored verifier."""
        return hmac.compare_digest(self._derive(pin, self.salt), self.verifier)

    def set_pin(self, pin: bytes) -> None:
        self.salt = secrets.token_bytes(16)
        self.verifier = self._derive(pin, self.salt)

    @property
    def locked(self) -> bool:
        return self.remaining <= 0

    def to_json(self) -> dict[str, Any]:
        return {
            "salt": _b64(self.salt),
            "verifier": _b64(self.verifier),
            "max_retries": self.max_retries,
            "remaining": self.remaining,
        }

    @classmethod
    def from_json(cls, d: object, what: str) -> PinRecord:
        if not isinstance(d, dict):
            raise EncodingError(f"token state: {what} must be an object")
        rec = cls(
            _unb64(d.get("salt"), f"{what}.salt"),
            _unb64(d.get("verifier"), f"{what}.verifier"),
            _int(d.get("max_retries"), f"{what}.max_retries"),
            _int(d.get("remaining"), f"{what}.remaining"),
        )
        try:
            check_retry_limit(rec.max_retries)
        except PinPolicyError:
            raise EncodingError(f"token state: {what}.max_retries out of range") from None
        if not 0 <= rec.remaining <= rec.max_retries:
            raise EncodingError(f"token state: {what}.remaining out of range")
        return rec


@dataclass
class ContainerRecord:
    """One key pair (private key PEM, never leaves the token) and its certificate."""

    algorithm: Algorithm
    usage: ContainerUsage
    private_key_pem: bytes
    public_key_der: bytes
    certificate_der: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": int(self.algorithm),
            "usage": int(self.usage),
            "private_key_pem": self.private_key_pem.decode("ascii"),
            "public_key_der": _b64(self.public_key_der),
            "certificate_der": None if self.certificate_der is None else _b64(self.certificate_der),
        }

    @classmethod
    def from_json(cls, d: object, what: str) -> ContainerRecord:
        if not isinstance(d, dict):
            raise EncodingError(f"token state: {what} must be an object")
        try:
            alg = Algorithm(_int(d.get("algorithm"), f"{what}.algorithm"))
            usage = ContainerUsage(_int(d.get("usage"), f"{what}.usage"))
        except ValueError:
            raise EncodingError(f"token state: {what} has an unknown algorithm or usage") from None
        cert = d.get("certificate_der")
        return cls(
            alg,
            usage,
            _str(d.get("private_key_pem"), f"{what}.private_key_pem").encode("ascii"),
            _unb64(d.get("public_key_der"), f"{what}.public_key_der"),
            None if cert is None else _unb64(cert, f"{what}.certificate_der"),
        )


@dataclass
class TokenState:
    """Everything the token keeps across power cycles."""

    serial: str
    label: str
    device_key_pem: bytes  # SM2 device (attestation) key; never leaves the token
    device_cert_der: bytes  # X.509 certificate of the device key, issued by the manufacturer
    user_pin: PinRecord
    admin_pin: PinRecord
    containers: dict[str, ContainerRecord] = field(default_factory=dict)
    # SM2 key-attestation key and its CA certificate (manufacturer-issued); separate from the
    # device key.  Empty in state written before per-key attestation: the card provisions them.
    attestation_key_pem: bytes = b""
    attestation_cert_der: bytes = b""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "serial": self.serial,
            "label": self.label,
            "device_key_pem": self.device_key_pem.decode("ascii"),
            "device_cert_der": _b64(self.device_cert_der),
            "user_pin": self.user_pin.to_json(),
            "admin_pin": self.admin_pin.to_json(),
            "containers": {k: v.to_json() for k, v in sorted(self.containers.items())},
            "attestation_key_pem": self.attestation_key_pem.decode("ascii"),
            "attestation_cert_der": _b64(self.attestation_cert_der),
        }

    @classmethod
    def from_json(cls, d: object) -> TokenState:
        if not isinstance(d, dict):
            raise EncodingError("token state must be a JSON object")
        if d.get("version") != STATE_VERSION:
            raise EncodingError(f"token state version {d.get('version')!r} is not supported")
        containers = d.get("containers")
        if not isinstance(containers, dict):
            raise EncodingError("token state: containers must be an object")
        return cls(
            serial=_str(d.get("serial"), "serial"),
            label=_str(d.get("label"), "label"),
            device_key_pem=_str(d.get("device_key_pem"), "device_key_pem").encode("ascii"),
            device_cert_der=_unb64(d.get("device_cert_der"), "device_cert_der"),
            user_pin=PinRecord.from_json(d.get("user_pin"), "user_pin"),
            admin_pin=PinRecord.from_json(d.get("admin_pin"), "admin_pin"),
            containers={
                _str(k, "container name"): ContainerRecord.from_json(v, f"container {k}")
                for k, v in containers.items()
            },
            attestation_key_pem=_str(
                d.get("attestation_key_pem", ""), "attestation_key_pem"
            ).encode("ascii"),
            attestation_cert_der=_unb64(d.get("attestation_cert_der", ""), "attestation_cert_der"),
        )

    def copy(self) -> TokenState:
        return copy.deepcopy(self)


class StateFile:
    """Loads and atomically saves a :class:`TokenState` (``path=None``: memory only)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.path = None if directory is None else directory / STATE_FILENAME
        self._memory: dict[str, Any] | None = None
        self._thread_lock = threading.Lock()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state exclusively: no other thread or process reads-modifies-writes meanwhile.

        Not re-entrant.  Blocks while another holder runs its command (a command that waits for
        the token's button holds it for as long as the customer takes to decide).
        """
        with self._thread_lock:
            if self.directory is None:
                yield
                return
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(self.directory / LOCK_FILENAME, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise StoreError(
                    f"cannot lock token state in {self.directory}: {exc.strerror}"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the flock

    def exists(self) -> bool:
        if self.path is None:
            return self._memory is not None
        return self.path.exists()

    def load(self) -> TokenState:
        """Read the state; a missing, unreadable or malformed file raises (never a silent reset)."""
        if self.path is None:
            if self._memory is None:
                raise ConfigurationError("the in-memory token has no state yet")
            return TokenState.from_json(copy.deepcopy(self._memory))
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read token state {self.path}: {exc.strerror}") from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise EncodingError(
                f"token state {self.path} is corrupt: restore it or delete the directory "
                "to start a new token"
            ) from None
        return TokenState.from_json(data)

    def save(self, state: TokenState) -> None:
        """Atomically replace the stored state (temp file + fsync + os.replace + dir fsync)."""
        doc = state.to_json()
        if self.path is None or self.directory is None:
            self._memory = copy.deepcopy(doc)
            return
        payload = json.dumps(doc, indent=1, sort_keys=True).encode("utf-8")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".token-state.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StoreError(f"cannot write token state {self.path}: {exc.strerror}") from None
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
