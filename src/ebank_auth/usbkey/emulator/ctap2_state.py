"""Persistent state of the software token's CTAP2 (FIDO2) applet: ``fido.json``, written atomically.

Beside the token application's ``token-state.json`` in the token's state directory, the FIDO
applet keeps its own file, so the two applications never rewrite each other's state:

* the **credential wrapping key** (AES-256-GCM): a non-resident credential's private key
  travels inside its credential id, encrypted under this key and bound to the relying party;
* the **attestation key** (P-256) and its certificate from the test manufacturer;
* the global **signature counter**;
* the **FIDO PIN**: ``LEFT(SHA-256(PIN), 16)`` as CTAP2 defines it, its retry counter (8) and
  the minimum length;
* the **discoverable (resident) credentials**: relying party, user, credential id.

Secrets (wrapping key, attestation key, PIN hash) are sealed with SM4-GCM under the token's
key-encryption key (``token-state.kek``, :class:`~ebank_auth.usbkey.emulator.state.Sealer`),
like the token application's keys.  Saving writes a temporary file, ``fsync``s it and renames
it over ``fido.json`` (then ``fsync``s the directory): a crash leaves the old or the new state.
Every command runs under :meth:`FidoStateFile.locked` (a thread lock and an exclusive
``flock`` on ``fido.lock``) and re-reads the file first, so two token objects or processes on
one directory never grant an extra PIN try or write an older counter back.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ebank_auth.errors import ConfigurationError, EncodingError, StoreError
from ebank_auth.usbkey.emulator.state import KEK_FILENAME, Sealer
from ebank_auth.usbkey.emulator.state_files import (
    exclusive,
    read_json,
    write_json,
)

__all__ = [
    "FIDO_LOCK_FILENAME",
    "FIDO_STATE_FILENAME",
    "MAX_SIGN_COUNT",
    "PIN_RETRIES",
    "FidoState",
    "FidoStateFile",
    "ResidentCredential",
]

FIDO_STATE_FILENAME: Final = "fido.json"
FIDO_LOCK_FILENAME: Final = "fido.lock"
FIDO_STATE_VERSION: Final = 1
#: CTAP2 §6.5.2.2: a PIN gets 8 tries in all (and 3 in a row per power cycle)
PIN_RETRIES: Final = 8
#: the signature counter is 32 bits in authenticator data
MAX_SIGN_COUNT: Final = (1 << 32) - 1
_KEK_BYTES: Final = 16


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise EncodingError(f"FIDO state: {what} must be base64 text")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise EncodingError(f"FIDO state: {what} is not valid base64") from None


def _int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise EncodingError(f"FIDO state: {what} must be an integer in {low}..{high}")
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise EncodingError(f"FIDO state: {what} must be text")
    return value


@dataclass(frozen=True)
class ResidentCredential:
    """A discoverable credential: its id (which carries the wrapped key) and whom it belongs to."""

    credential_id: bytes
    rp_id: str
    user_id: bytes
    user_name: str = ""
    display_name: str = ""
    rp_name: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "credential_id": _b64(self.credential_id),
            "rp_id": self.rp_id,
            "rp_name": self.rp_name,
            "user_id": _b64(self.user_id),
            "user_name": self.user_name,
            "display_name": self.display_name,
        }

    @classmethod
    def from_json(cls, d: object) -> ResidentCredential:
        if not isinstance(d, dict):
            raise EncodingError("FIDO state: a credential must be an object")
        return cls(
            credential_id=_unb64(d.get("credential_id"), "credential_id"),
            rp_id=_str(d.get("rp_id"), "rp_id"),
            user_id=_unb64(d.get("user_id"), "user_id"),
            user_name=_str(d.get("user_name", ""), "user_name"),
            display_name=_str(d.get("display_name", ""), "display_name"),
            rp_name=_str(d.get("rp_name", ""), "rp_name"),
        )


@dataclass
class FidoState:
    """Everything the FIDO applet keeps across power cycles."""

    wrap_key: bytes  # AES-256-GCM key that wraps non-resident credential keys
    attestation_key_der: bytes  # P-256 private key, PKCS#8 DER
    attestation_cert_der: bytes  # issued by the test manufacturer; empty: self attestation
    sign_count: int = 0
    pin_hash: bytes | None = None  # LEFT(SHA-256(PIN), 16); None: no PIN set
    pin_retries: int = PIN_RETRIES
    min_pin_length: int = 4
    credentials: list[ResidentCredential] = field(default_factory=list)

    def to_json(self, sealer: Sealer) -> dict[str, Any]:
        return {
            "version": FIDO_STATE_VERSION,
            "wrap_key_sealed": _b64(sealer.seal("fido.wrap_key", self.wrap_key)),
            "attestation_key_sealed": _b64(
                sealer.seal("fido.attestation_key", self.attestation_key_der)
            ),
            "attestation_cert_der": _b64(self.attestation_cert_der),
            "sign_count": self.sign_count,
            "pin_hash_sealed": None
            if self.pin_hash is None
            else _b64(sealer.seal("fido.pin_hash", self.pin_hash)),
            "pin_retries": self.pin_retries,
            "min_pin_length": self.min_pin_length,
            "credentials": [c.to_json() for c in self.credentials],
        }

    @classmethod
    def from_json(cls, d: object, sealer: Sealer) -> FidoState:
        if not isinstance(d, dict):
            raise EncodingError("FIDO state must be a JSON object")
        if d.get("version") != FIDO_STATE_VERSION:
            raise EncodingError(f"FIDO state version {d.get('version')!r} is not supported")
        wrap_key = sealer.unseal("fido.wrap_key", _unb64(d.get("wrap_key_sealed"), "wrap_key"))
        if len(wrap_key) != 32:
            raise EncodingError("FIDO state: the wrapping key must be 32 bytes")
        pin_sealed = d.get("pin_hash_sealed")
        pin_hash = (
            None
            if pin_sealed is None
            else sealer.unseal("fido.pin_hash", _unb64(pin_sealed, "pin_hash"))
        )
        if pin_hash is not None and len(pin_hash) != 16:
            raise EncodingError("FIDO state: the PIN hash must be 16 bytes")
        creds = d.get("credentials")
        if not isinstance(creds, list):
            raise EncodingError("FIDO state: credentials must be a list")
        return cls(
            wrap_key=wrap_key,
            attestation_key_der=sealer.unseal(
                "fido.attestation_key",
                _unb64(d.get("attestation_key_sealed"), "attestation_key"),
            ),
            attestation_cert_der=_unb64(d.get("attestation_cert_der"), "attestation_cert_der"),
            sign_count=_int(d.get("sign_count"), "sign_count", 0, MAX_SIGN_COUNT),
            pin_hash=pin_hash,
            pin_retries=_int(d.get("pin_retries"), "pin_retries", 0, PIN_RETRIES),
            min_pin_length=_int(d.get("min_pin_length"), "min_pin_length", 4, 63),
            credentials=[ResidentCredential.from_json(c) for c in creds],
        )

    def copy(self) -> FidoState:
        return copy.deepcopy(self)


class FidoStateFile:
    """Loads and atomically saves a :class:`FidoState` (``directory=None``: memory only)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.path = None if directory is None else directory / FIDO_STATE_FILENAME
        self._memory: dict[str, Any] | None = None
        self._thread_lock = threading.Lock()
        self._sealer_obj: Sealer | None = None

    def _sealer(self) -> Sealer:
        """The token's KEK (``token-state.kek``), made here if the token application has not
        made it yet (O_EXCL: two first starts agree on one key)."""
        if self._sealer_obj is not None:
            return self._sealer_obj
        if self.directory is None:
            self._sealer_obj = Sealer(secrets.token_bytes(_KEK_BYTES))
            return self._sealer_obj
        path = self.directory / KEK_FILENAME
        try:
            kek = path.read_bytes()
        except FileNotFoundError:
            if self.path is not None and self.path.exists():
                raise StoreError(
                    f"the token's key-encryption key {path} is missing, so the FIDO applet's "
                    "keys cannot be read: restore it, or delete the directory to make a new token"
                ) from None
            kek = secrets.token_bytes(_KEK_BYTES)
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                kek = path.read_bytes()
            else:
                try:
                    os.write(fd, kek)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from None
        self._sealer_obj = Sealer(kek)
        return self._sealer_obj

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the FIDO state exclusively (thread lock + ``flock``); not re-entrant."""
        return exclusive(self._thread_lock, self.directory, FIDO_LOCK_FILENAME, "the FIDO state")

    def exists(self) -> bool:
        if self.path is None:
            return self._memory is not None
        return self.path.exists()

    def load(self) -> FidoState:
        """Read the state; a missing or malformed file raises (never a silent reset)."""
        if self.path is None:
            if self._memory is None:
                raise ConfigurationError("the in-memory FIDO applet has no state yet")
            return FidoState.from_json(copy.deepcopy(self._memory), self._sealer())
        data = read_json(
            self.path,
            "FIDO state",
            "restore it, or delete it to reset the token's FIDO applet (its passkeys are lost)",
        )
        return FidoState.from_json(data, self._sealer())

    def save(self, state: FidoState) -> None:
        """Atomically replace the stored state (temp file + fsync + rename + directory fsync)."""
        doc = state.to_json(self._sealer())
        if self.path is None or self.directory is None:
            self._memory = copy.deepcopy(doc)
            return
        write_json(self.directory, self.path, doc, "FIDO state")
