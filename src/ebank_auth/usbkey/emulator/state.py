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

**Secrets at rest** (format version 2).  Private keys, the device key and the PIN verifiers
are never written in clear: each is sealed with SM4-GCM under a 128-bit key-encryption key
(KEK) kept in a separate file, ``token-state.kek`` (mode 0600, made once with the token), with a
fresh 12-byte nonce and the field's name as associated data (a sealed value cannot be moved to
another field).  The state file alone — a backup, a copy attached to a bug report — gives away
neither a key nor a PIN verifier.  PIN verifiers are argon2id (RFC 9106; t=2, m=19 MiB, p=1,
parameters stored per record) over the PIN and a 16-byte salt.  Decrypted values are cached by
ciphertext, so re-reading the state for every APDU costs no decryption when nothing changed.
Version 1 files (plaintext PEM, PBKDF2 at 20k iterations) are refused with advice.  What this
does and does not protect against: ``docs/usbkey.md`` ("Threat model of the software token").

With ``path=None`` the state lives in memory only (unit tests), sealed under a random KEK.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hmac
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from argon2.low_level import Type, hash_secret_raw

from ebank_auth.crypto import sm3, sm4
from ebank_auth.errors import (
    ConfigurationError,
    CryptoError,
    EncodingError,
    PinPolicyError,
    StoreError,
)
from ebank_auth.usbkey.emulator.state_files import (
    exclusive,
    read_json,
    write_json,
)
from ebank_auth.usbkey.protocol import Algorithm, ContainerUsage, check_retry_limit

__all__ = [
    "KEK_FILENAME",
    "STATE_FILENAME",
    "STATE_VERSION",
    "ContainerRecord",
    "PinRecord",
    "Sealer",
    "StateFile",
    "TokenState",
]

STATE_FILENAME: Final = "token-state.json"
LOCK_FILENAME: Final = "token-state.lock"
KEK_FILENAME: Final = "token-state.kek"
STATE_VERSION: Final = 2
#: argon2id cost of new PIN verifiers: RFC 9106 / OWASP minimum for a 6-digit secret that is
#: also sealed under the KEK (time cost, memory in KiB, lanes)
PIN_KDF_COST: Final = (2, 19 * 1024, 1)
_KEK_BYTES: Final = 16
_NONCE_BYTES: Final = 12
_SEAL_LABEL: Final = b"ebank-auth token state v2|"
_CACHE_LIMIT: Final = 256


class Sealer:
    """SM4-GCM sealing of secret fields under the KEK, with caches both ways.

    ``seal(what, plain)`` returns ``nonce ‖ ciphertext ‖ tag``; sealing the same value of the
    same field again returns the same bytes (no new nonce for an unchanged secret), so the
    cache of ``unseal`` keeps hitting across saves."""

    def __init__(self, kek: bytes) -> None:
        if len(kek) != _KEK_BYTES:
            raise EncodingError("token state: the key-encryption key must be 16 bytes")
        self._kek = bytes(kek)
        self._plain: dict[tuple[str, bytes], bytes] = {}
        self._sealed: dict[tuple[str, bytes], bytes] = {}

    def seal(self, what: str, plain: bytes) -> bytes:
        cached = self._sealed.get((what, plain))
        if cached is not None:
            return cached
        nonce = secrets.token_bytes(_NONCE_BYTES)
        blob = nonce + sm4.encrypt_gcm(self._kek, nonce, plain, aad=_SEAL_LABEL + what.encode())
        self._remember(what, plain, blob)
        return blob

    def unseal(self, what: str, blob: bytes) -> bytes:
        cached = self._plain.get((what, blob))
        if cached is not None:
            return cached
        if len(blob) < _NONCE_BYTES + 16:
            raise EncodingError(f"token state: sealed {what} is too short")
        try:
            plain = sm4.decrypt_gcm(
                self._kek,
                blob[:_NONCE_BYTES],
                blob[_NONCE_BYTES:],
                aad=_SEAL_LABEL + what.encode(),
            )
        except CryptoError:
            raise EncodingError(
                f"token state: sealed {what} does not decrypt under this token's key-encryption "
                "key (altered, or the state and its .kek file do not belong together)"
            ) from None
        self._remember(what, plain, blob)
        return plain

    def _remember(self, what: str, plain: bytes, blob: bytes) -> None:
        if len(self._plain) >= _CACHE_LIMIT:
            self._plain.clear()
            self._sealed.clear()
        self._plain[(what, blob)] = plain
        self._sealed[(what, plain)] = blob


def _redacted(plain: bytes) -> str:
    """What ``to_json()`` without a sealer shows for a secret: its SM3 (comparisons only)."""
    return "sm3:" + sm3.digest(plain).hex()


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
    """One PIN: salted argon2id verifier (its cost stored with it), retry limit, tries left."""

    salt: bytes
    verifier: bytes
    max_retries: int
    remaining: int
    cost: tuple[int, int, int] = PIN_KDF_COST

    @staticmethod
    def _derive(pin: bytes, salt: bytes, cost: tuple[int, int, int]) -> bytes:
        t, m, p = cost
        return hash_secret_raw(
            pin, salt, time_cost=t, memory_cost=m, parallelism=p, hash_len=32, type=Type.ID
        )

    @classmethod
    def create(cls, pin: bytes, max_retries: int) -> PinRecord:
        check_retry_limit(max_retries)
        salt = secrets.token_bytes(16)
        return cls(salt, cls._derive(pin, salt, PIN_KDF_COST), max_retries, max_retries)

    def matches(self, pin: bytes) -> bool:
        """Constant-time comparison of ``pin`` with the stored verifier."""
        return hmac.compare_digest(self._derive(pin, self.salt, self.cost), self.verifier)

    def set_pin(self, pin: bytes) -> None:
        self.salt = secrets.token_bytes(16)
        self.cost = PIN_KDF_COST
        self.verifier = self._derive(pin, self.salt, self.cost)

    @property
    def locked(self) -> bool:
        return self.remaining <= 0

    def to_json(self, sealer: Sealer | None = None, what: str = "pin") -> dict[str, Any]:
        t, m, p = self.cost
        return {
            "kdf": {"name": "argon2id", "t": t, "m": m, "p": p},
            "salt": _b64(self.salt),
            "verifier_sealed": _redacted(self.verifier)
            if sealer is None
            else _b64(sealer.seal(f"{what}.verifier", self.verifier)),
            "max_retries": self.max_retries,
            "remaining": self.remaining,
        }

    @classmethod
    def from_json(cls, d: object, what: str, sealer: Sealer) -> PinRecord:
        if not isinstance(d, dict):
            raise EncodingError(f"token state: {what} must be an object")
        kdf = d.get("kdf")
        if not isinstance(kdf, dict) or kdf.get("name") != "argon2id":
            raise EncodingError(f"token state: {what}.kdf must be argon2id")
        cost = (
            _int(kdf.get("t"), f"{what}.kdf.t"),
            _int(kdf.get("m"), f"{what}.kdf.m"),
            _int(kdf.get("p"), f"{what}.kdf.p"),
        )
        if not (
            1 <= cost[0] <= 100 and 8 * cost[2] <= cost[1] <= 4 * 1024 * 1024 and 1 <= cost[2] <= 64
        ):
            raise EncodingError(f"token state: {what}.kdf parameters out of range")
        rec = cls(
            _unb64(d.get("salt"), f"{what}.salt"),
            sealer.unseal(
                f"{what}.verifier", _unb64(d.get("verifier_sealed"), f"{what}.verifier_sealed")
            ),
            _int(d.get("max_retries"), f"{what}.max_retries"),
            _int(d.get("remaining"), f"{what}.remaining"),
            cost,
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

    def to_json(self, sealer: Sealer | None = None, what: str = "container") -> dict[str, Any]:
        return {
            "algorithm": int(self.algorithm),
            "usage": int(self.usage),
            "private_key_sealed": _redacted(self.private_key_pem)
            if sealer is None
            else _b64(sealer.seal(f"{what}.private_key", self.private_key_pem)),
            "public_key_der": _b64(self.public_key_der),
            "certificate_der": None if self.certificate_der is None else _b64(self.certificate_der),
        }

    @classmethod
    def from_json(cls, d: object, what: str, sealer: Sealer) -> ContainerRecord:
        if not isinstance(d, dict):
            raise EncodingError(f"token state: {what} must be an object")
        try:
            alg = Algorithm(_int(d.get("algorithm"), f"{what}.algorithm"))
            usage = ContainerUsage(_int(d.get("usage"), f"{what}.usage"))
        except ValueError:
            raise EncodingError(f"token state: {what} has an unknown algorithm or usage") from None
        cert = d.get("certificate_der")
        sealed = _unb64(d.get("private_key_sealed"), f"{what}.private_key_sealed")
        return cls(
            alg,
            usage,
            sealer.unseal(f"{what}.private_key", sealed),
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

    def to_json(self, sealer: Sealer | None = None) -> dict[str, Any]:
        """The stored document; without ``sealer`` secrets appear as their SM3 (comparisons)."""
        return {
            "version": STATE_VERSION,
            "serial": self.serial,
            "label": self.label,
            "device_key_sealed": _redacted(self.device_key_pem)
            if sealer is None
            else _b64(sealer.seal("device_key", self.device_key_pem)),
            "device_cert_der": _b64(self.device_cert_der),
            "user_pin": self.user_pin.to_json(sealer, "user_pin"),
            "admin_pin": self.admin_pin.to_json(sealer, "admin_pin"),
            "containers": {
                k: v.to_json(sealer, f"container {k}") for k, v in sorted(self.containers.items())
            },
            # the key-attestation key is sealed like every other private key
            "attestation_key_sealed": _redacted(self.attestation_key_pem)
            if sealer is None
            else _b64(sealer.seal("attestation_key", self.attestation_key_pem)),
            "attestation_cert_der": _b64(self.attestation_cert_der),
        }

    @classmethod
    def from_json(cls, d: object, sealer: Sealer) -> TokenState:
        if not isinstance(d, dict):
            raise EncodingError("token state must be a JSON object")
        if d.get("version") == 1:
            raise EncodingError(
                "token state version 1 (written by an older ebank-auth) keeps private keys and "
                "PIN verifiers in clear and its test manufacturer's root key beside them; it is "
                "not upgraded: delete this software token's state directory to make a new one "
                "(its keys and certificates are test material)"
            )
        if d.get("version") != STATE_VERSION:
            raise EncodingError(f"token state version {d.get('version')!r} is not supported")
        containers = d.get("containers")
        if not isinstance(containers, dict):
            raise EncodingError("token state: containers must be an object")
        return cls(
            serial=_str(d.get("serial"), "serial"),
            label=_str(d.get("label"), "label"),
            device_key_pem=sealer.unseal(
                "device_key", _unb64(d.get("device_key_sealed"), "device_key_sealed")
            ),
            device_cert_der=_unb64(d.get("device_cert_der"), "device_cert_der"),
            user_pin=PinRecord.from_json(d.get("user_pin"), "user_pin", sealer),
            admin_pin=PinRecord.from_json(d.get("admin_pin"), "admin_pin", sealer),
            containers={
                _str(k, "container name"): ContainerRecord.from_json(v, f"container {k}", sealer)
                for k, v in containers.items()
            },
            attestation_key_pem=sealer.unseal(
                "attestation_key",
                _unb64(d.get("attestation_key_sealed"), "attestation_key_sealed"),
            ),
            attestation_cert_der=_unb64(d.get("attestation_cert_der"), "attestation_cert_der"),
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
        self._sealer_obj: Sealer | None = None

    def _sealer(self, *, create: bool = False) -> Sealer:
        """The sealer under this token's KEK (``create``: make the KEK file if there is none)."""
        if self._sealer_obj is not None:
            return self._sealer_obj
        if self.directory is None:
            self._sealer_obj = Sealer(secrets.token_bytes(_KEK_BYTES))
            return self._sealer_obj
        kek_path = self.directory / KEK_FILENAME
        try:
            kek = kek_path.read_bytes()
        except FileNotFoundError:
            if not create:
                raise StoreError(
                    f"the token's key-encryption key {kek_path} is missing, so its keys and PINs "
                    "cannot be read: restore it together with token-state.json, or delete the "
                    "directory to make a new software token"
                ) from None
            kek = secrets.token_bytes(_KEK_BYTES)
            self._write_kek(kek_path, kek)
        except OSError as exc:
            raise StoreError(f"cannot read {kek_path}: {exc.strerror}") from None
        self._sealer_obj = Sealer(kek)
        return self._sealer_obj

    def sealer(self, *, create: bool = False) -> Sealer:
        """The token's sealer, for other applets that keep secrets beside the token state (the
        PIV applet): one KEK per token.  ``create`` makes the KEK file when there is none."""
        return self._sealer(create=create)

    def _write_kek(self, path: Path, kek: bytes) -> None:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot create {path}: {exc.strerror}") from None
        try:
            os.write(fd, kek)
            os.fsync(fd)
        finally:
            os.close(fd)

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the state exclusively: no other thread or process reads-modifies-writes meanwhile.

        Not re-entrant.  Blocks while another holder runs its command (a command that waits for
        the token's button holds it for as long as the customer takes to decide).
        """
        return exclusive(self._thread_lock, self.directory, LOCK_FILENAME, "token state")

    def exists(self) -> bool:
        if self.path is None:
            return self._memory is not None
        return self.path.exists()

    def load(self) -> TokenState:
        """Read the state; a missing, unreadable or malformed file raises (never a silent reset)."""
        if self.path is None:
            if self._memory is None:
                raise ConfigurationError("the in-memory token has no state yet")
            return TokenState.from_json(copy.deepcopy(self._memory), self._sealer())
        data = read_json(
            self.path, "token state", "restore it or delete the directory to start a new token"
        )
        if isinstance(data, dict) and data.get("version") != STATE_VERSION:
            return TokenState.from_json(data, Sealer(bytes(_KEK_BYTES)))  # refused with advice
        return TokenState.from_json(data, self._sealer())

    def save(self, state: TokenState) -> None:
        """Atomically replace the stored state (temp file + fsync + os.replace + dir fsync)."""
        doc = state.to_json(self._sealer(create=not self.exists()))
        if self.path is None or self.directory is None:
            self._memory = copy.deepcopy(doc)
            return
        write_json(self.directory, self.path, doc, "token state")
