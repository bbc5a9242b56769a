"""Persistent state of the software token's PIV applet (``piv.json``), written atomically.

The PIV applet keeps what survives power-off in ``piv.json`` beside the token's own
``token-state.json``: the PIV serial, the PIN and PUK records (argon2id verifiers, retry limit,
tries left — the same :class:`~ebank_auth.usbkey.emulator.state.PinRecord` as the token
application), the management key, the slot keys and the data objects (CHUID, CCC,
certificates).  Secrets (PIN/PUK verifiers, the management key, private keys) are sealed with
SM4-GCM under the token's key-encryption key (``token-state.kek``; one KEK per token), so the
file alone gives none of them away.

Writes go through a temporary file, ``fsync``, ``os.replace`` and a directory ``fsync`` (a crash
leaves the old or the new state, never a torn one).  Every command runs under an exclusive
``flock`` on ``piv.lock`` and works on the stored state, so two applet objects (or processes) on
one directory never grant an extra PIN try between them.  The applet persists the decremented
retry counter *before* it compares a PIN or PUK.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ebank_auth.errors import ConfigurationError, EncodingError
from ebank_auth.usbkey.emulator.state import PinRecord, Sealer, StateFile
from ebank_auth.usbkey.emulator.state_files import (
    exclusive,
    parse_json,
    read_bytes,
    write_json,
)
from ebank_auth.usbkey.piv_protocol import PinPolicy, PivAlgorithm, TouchPolicy

__all__ = [
    "PIV_STATE_FILENAME",
    "PIV_STATE_VERSION",
    "KeyOrigin",
    "PivState",
    "PivStateFile",
    "SlotKey",
]

PIV_STATE_FILENAME: Final = "piv.json"
PIV_LOCK_FILENAME: Final = "piv.lock"
PIV_STATE_VERSION: Final = 1


class KeyOrigin:
    """Where a slot key came from (YubiKey metadata values)."""

    GENERATED: Final = 1
    IMPORTED: Final = 2


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise EncodingError(f"PIV state: {what} must be base64 text")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise EncodingError(f"PIV state: {what} is not valid base64") from None


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EncodingError(f"PIV state: {what} must be an integer")
    return value


def _bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise EncodingError(f"PIV state: {what} must be true or false")
    return value


@dataclass
class SlotKey:
    """A key pair in one slot (PKCS#8 DER private key, sealed at rest) and its policies."""

    algorithm: PivAlgorithm
    private_key_der: bytes
    public_key_der: bytes
    pin_policy: PinPolicy
    touch_policy: TouchPolicy
    origin: int = KeyOrigin.GENERATED

    def to_json(self, sealer: Sealer, what: str) -> dict[str, Any]:
        return {
            "algorithm": int(self.algorithm),
            "private_key_sealed": _b64(sealer.seal(f"{what}.private_key", self.private_key_der)),
            "public_key_der": _b64(self.public_key_der),
            "pin_policy": int(self.pin_policy),
            "touch_policy": int(self.touch_policy),
            "origin": self.origin,
        }

    @classmethod
    def from_json(cls, d: object, what: str, sealer: Sealer) -> SlotKey:
        if not isinstance(d, dict):
            raise EncodingError(f"PIV state: {what} must be an object")
        try:
            alg = PivAlgorithm(_int(d.get("algorithm"), f"{what}.algorithm"))
            pin_policy = PinPolicy(_int(d.get("pin_policy"), f"{what}.pin_policy"))
            touch_policy = TouchPolicy(_int(d.get("touch_policy"), f"{what}.touch_policy"))
        except ValueError:
            raise EncodingError(f"PIV state: {what} has an unknown algorithm or policy") from None
        origin = _int(d.get("origin"), f"{what}.origin")
        if origin not in (KeyOrigin.GENERATED, KeyOrigin.IMPORTED):
            raise EncodingError(f"PIV state: {what}.origin is unknown")
        sealed = _unb64(d.get("private_key_sealed"), f"{what}.private_key_sealed")
        return cls(
            alg,
            sealer.unseal(f"{what}.private_key", sealed),
            _unb64(d.get("public_key_der"), f"{what}.public_key_der"),
            pin_policy,
            touch_policy,
            origin,
        )


@dataclass
class PivState:
    """Everything the PIV applet keeps across power cycles.

    ``*_is_default`` say whether the PIN, PUK or management key still has its public factory
    value (set when it is changed, by comparing the new value with the default)."""

    serial: int
    pin: PinRecord
    puk: PinRecord
    management_algorithm: PivAlgorithm
    management_key: bytes
    pin_is_default: bool = True
    puk_is_default: bool = True
    management_is_default: bool = True
    objects: dict[int, bytes] = field(default_factory=dict)
    keys: dict[int, SlotKey] = field(default_factory=dict)

    def to_json(self, sealer: Sealer) -> dict[str, Any]:
        return {
            "version": PIV_STATE_VERSION,
            "serial": self.serial,
            "pin": self.pin.to_json(sealer, "piv.pin"),
            "puk": self.puk.to_json(sealer, "piv.puk"),
            "management_algorithm": int(self.management_algorithm),
            "management_key_sealed": _b64(sealer.seal("piv.management_key", self.management_key)),
            "pin_is_default": self.pin_is_default,
            "puk_is_default": self.puk_is_default,
            "management_is_default": self.management_is_default,
            "objects": {f"{tag:06x}": _b64(v) for tag, v in sorted(self.objects.items())},
            "keys": {
                f"{slot:02x}": k.to_json(sealer, f"piv.slot {slot:02x}")
                for slot, k in sorted(self.keys.items())
            },
        }

    @classmethod
    def from_json(cls, d: object, sealer: Sealer) -> PivState:
        if not isinstance(d, dict):
            raise EncodingError("PIV state must be a JSON object")
        if d.get("version") != PIV_STATE_VERSION:
            raise EncodingError(f"PIV state version {d.get('version')!r} is not supported")
        objects, keys = d.get("objects"), d.get("keys")
        if not isinstance(objects, dict) or not isinstance(keys, dict):
            raise EncodingError("PIV state: objects and keys must be objects")
        try:
            alg = PivAlgorithm(_int(d.get("management_algorithm"), "management_algorithm"))
            parsed_objects = {int(k, 16): _unb64(v, f"object {k}") for k, v in objects.items()}
            parsed_keys = {
                int(k, 16): SlotKey.from_json(v, f"piv.slot {k}", sealer) for k, v in keys.items()
            }
        except ValueError:
            raise EncodingError("PIV state: a tag, slot or algorithm is malformed") from None
        return cls(
            serial=_int(d.get("serial"), "serial"),
            pin=PinRecord.from_json(d.get("pin"), "piv.pin", sealer),
            puk=PinRecord.from_json(d.get("puk"), "piv.puk", sealer),
            management_algorithm=alg,
            management_key=sealer.unseal(
                "piv.management_key",
                _unb64(d.get("management_key_sealed"), "management_key_sealed"),
            ),
            pin_is_default=_bool(d.get("pin_is_default"), "pin_is_default"),
            puk_is_default=_bool(d.get("puk_is_default"), "puk_is_default"),
            management_is_default=_bool(d.get("management_is_default"), "management_is_default"),
            objects=parsed_objects,
            keys=parsed_keys,
        )

    def copy(self) -> PivState:
        return copy.deepcopy(self)


class PivStateFile:
    """Loads and atomically saves a :class:`PivState` (``directory=None``: memory only).

    :meth:`load` reads the file for every command but re-parses it only when its bytes changed:
    a command that changes nothing costs no JSON parsing and no decryption."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.path = None if directory is None else directory / PIV_STATE_FILENAME
        self._token_file = StateFile(directory)
        self._memory: PivState | None = None
        self._thread_lock = threading.Lock()
        self._cached: tuple[bytes, PivState] | None = None

    def _sealer(self) -> Sealer:
        return self._token_file.sealer(create=True)

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the PIV state exclusively (thread lock plus ``flock`` on ``piv.lock``)."""
        return exclusive(self._thread_lock, self.directory, PIV_LOCK_FILENAME, "PIV state")

    def exists(self) -> bool:
        if self.path is None:
            return self._memory is not None
        return self.path.exists()

    def load(self) -> PivState:
        """The stored state (a private copy); missing or malformed raises, never a silent reset."""
        if self.path is None:
            if self._memory is None:
                raise ConfigurationError("the in-memory PIV applet has no state yet")
            return self._memory.copy()
        raw = read_bytes(self.path, "PIV state")
        if self._cached is not None and self._cached[0] == raw:
            return self._cached[1].copy()
        doc = parse_json(
            raw,
            self.path,
            "PIV state",
            "restore it or delete it to reset the PIV applet to its factory state",
        )
        state = PivState.from_json(doc, self._sealer())
        self._cached = (raw, state)
        return state.copy()

    def save(self, state: PivState) -> None:
        """Atomically replace the stored state (temp file + fsync + os.replace + dir fsync)."""
        if self.path is None or self.directory is None:
            state.to_json(self._sealer())  # the same validation as on disk
            self._memory = state.copy()
            return
        payload = write_json(self.directory, self.path, state.to_json(self._sealer()), "PIV state")
        self._cached = (payload, state.copy())
