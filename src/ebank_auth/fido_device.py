"""FIDO2 (CTAP2) authenticators as python-fido2 reaches them: discovery and a few management calls.

The ``ebank-auth fido`` commands and integrators use this module; it is the only place outside
``ebank_auth.webauthn`` that imports ``fido2`` (python-fido2, the ``webauthn`` extra), and it is
imported lazily, so ebank-auth works without that package.

* **PC/SC**: every reader whose card answers the FIDO applet (``SELECT A0000006472F0001``) —
  a security key on an NFC reader, or the software token behind pcscd.
* **HID**: USB security keys python-fido2's HID backend finds (``/dev/hidraw*`` on Linux).

:func:`list_devices` reports what was found and why a source is unavailable;
:func:`open_device` opens one (by a substring of its name) as a :class:`FidoDevice`, whose
methods turn CTAP2 status codes into ``ebank_auth.errors`` exceptions with advice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ebank_auth.errors import (
    ConfigurationError,
    ConfirmationRejected,
    ConfirmationTimeout,
    PinIncorrect,
    PinLocked,
    PinPolicyError,
    ReaderNotFound,
    TokenError,
)

__all__ = [
    "FidoDevice",
    "FidoDeviceRef",
    "FidoDiscovery",
    "FidoInfo",
    "list_devices",
    "open_device",
]

try:  # the webauthn extra
    from fido2.ctap import CtapDevice, CtapError
    from fido2.ctap2.base import Ctap2
    from fido2.ctap2.pin import ClientPin
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError(
        "python-fido2 is not installed: pip install 'ebank-auth[webauthn]'"
    ) from exc


@dataclass(frozen=True)
class FidoDeviceRef:
    """One authenticator found: ``kind`` is ``"pcsc"`` (reader name) or ``"hid"`` (device)."""

    kind: str
    name: str


@dataclass(frozen=True)
class FidoDiscovery:
    """What :func:`list_devices` found, and for each source that could not be searched, why."""

    devices: list[FidoDeviceRef]
    unavailable: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "devices": [{"kind": d.kind, "name": d.name} for d in self.devices],
            "unavailable": dict(self.unavailable),
        }


@dataclass(frozen=True)
class FidoInfo:
    """authenticatorGetInfo, plus the PIN retry counter when the authenticator has a PIN."""

    device: FidoDeviceRef
    versions: list[str]
    aaguid: str
    options: dict[str, bool]
    pin_uv_protocols: list[int]
    algorithms: list[int]
    transports: list[str]
    min_pin_length: int
    firmware_version: int | None
    remaining_discoverable_credentials: int | None
    pin_retries: int | None
    power_cycle_required: bool | None

    @property
    def pin_set(self) -> bool:
        return bool(self.options.get("clientPin"))

    def to_json(self) -> dict[str, Any]:
        return {
            "device": {"kind": self.device.kind, "name": self.device.name},
            "versions": self.versions,
            "aaguid": self.aaguid,
            "options": self.options,
            "pin_set": self.pin_set,
            "pin_uv_protocols": self.pin_uv_protocols,
            "algorithms": self.algorithms,
            "transports": self.transports,
            "min_pin_length": self.min_pin_length,
            "firmware_version": self.firmware_version,
            "remaining_discoverable_credentials": self.remaining_discoverable_credentials,
            "pin_retries": self.pin_retries,
            "power_cycle_required": self.power_cycle_required,
        }


def _pcsc_devices() -> Iterator[tuple[FidoDeviceRef, CtapDevice]]:
    from fido2.pcsc import CtapPcscDevice

    for dev in CtapPcscDevice.list_devices():
        yield FidoDeviceRef("pcsc", str(getattr(dev, "_name", dev))), dev


def _hid_devices() -> Iterator[tuple[FidoDeviceRef, CtapDevice]]:
    from fido2.hid import CtapHidDevice

    for dev in CtapHidDevice.list_devices():
        yield FidoDeviceRef("hid", str(dev.descriptor.path)), dev


_SOURCES = (("pcsc", _pcsc_devices), ("hid", _hid_devices))


def _close(dev: CtapDevice) -> None:
    with contextlib.suppress(Exception):
        dev.close()


def _scan(keep: str | None) -> tuple[list[tuple[FidoDeviceRef, CtapDevice]], dict[str, str]]:
    """Every device (opened), or with ``keep`` only the first whose name contains it."""
    found: list[tuple[FidoDeviceRef, CtapDevice]] = []
    unavailable: dict[str, str] = {}
    for source, scan in _SOURCES:
        try:
            for ref, dev in scan():
                if keep is None or (keep in ref.name and not found):
                    found.append((ref, dev))
                else:
                    _close(dev)
        except Exception as exc:  # pcscd down, pyscard missing, no hidraw access: say why
            reason = str(exc) or type(exc).__name__
            if "EstablishContext" in type(exc).__name__ or "ListReaders" in type(exc).__name__:
                reason = "PC/SC service not running: start pcscd"
            unavailable[source] = reason
    return found, unavailable


def list_devices() -> FidoDiscovery:
    """Every CTAP2 authenticator python-fido2 can reach (PC/SC readers and HID)."""
    found, unavailable = _scan(None)
    for _, dev in found:
        _close(dev)
    return FidoDiscovery([ref for ref, _ in found], unavailable)


def open_device(name: str | None = None) -> FidoDevice:
    """The first authenticator (whose name contains ``name``, when given).

    Raises :class:`~ebank_auth.errors.ReaderNotFound` (a service error) when there is none."""
    found, unavailable = _scan(name or "")
    if not found:
        reasons = "; ".join(f"{k}: {v}" for k, v in unavailable.items())
        which = f" matching {name!r}" if name else ""
        raise ReaderNotFound(
            f"no FIDO2 authenticator{which} found: plug in a security key, or start pcscd and "
            "the software token ('ebank-auth emulator start')"
            + (f" ({reasons})" if reasons else "")
        )
    ref, dev = found[0]
    return FidoDevice(ref, dev)


_PIN_ADVICE = {
    "PIN_AUTH_BLOCKED": PinLocked(
        "three wrong FIDO PINs in a row: remove and re-insert the authenticator (a power "
        "cycle), then try again"
    ),
    "PIN_BLOCKED": PinLocked(
        "the FIDO PIN is blocked after too many wrong attempts: only 'ebank-auth fido reset' "
        "(which erases every passkey on it) makes the authenticator usable again"
    ),
    "PIN_POLICY_VIOLATION": PinPolicyError(
        "the authenticator refused the new PIN: use at least its minimum length (4 characters "
        "unless 'fido info' says otherwise) and at most 63 bytes"
    ),
    "PIN_NOT_SET": TokenError("no FIDO PIN is set: set one with 'ebank-auth fido pin set'"),
    "OPERATION_DENIED": ConfirmationRejected(
        "refused on the authenticator (its button said no): nothing was changed"
    ),
    "USER_ACTION_TIMEOUT": ConfirmationTimeout(
        "nobody touched the authenticator in time: nothing was changed; try again"
    ),
    "ACTION_TIMEOUT": ConfirmationTimeout(
        "nobody touched the authenticator in time: nothing was changed; try again"
    ),
}


class FidoDevice:
    """One open authenticator; use as a context manager (``with open_device() as dev:``)."""

    def __init__(self, ref: FidoDeviceRef, device: CtapDevice) -> None:
        self.ref = ref
        self._device = device
        try:
            self._ctap = Ctap2(device)
        except Exception as exc:
            _close(device)
            raise TokenError(f"{ref.name} does not speak CTAP2 (FIDO2): {exc}") from None

    def __enter__(self) -> FidoDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        _close(self._device)

    def _error(self, exc: CtapError, *, during: str) -> TokenError:
        name = exc.code.name if hasattr(exc.code, "name") else f"0x{int(exc.code):02X}"
        if name == "PIN_INVALID":
            retries = self.pin_retries()[0]
            return PinIncorrect(
                retries,
                f"wrong FIDO PIN: {retries} attempt(s) left before the PIN is blocked",
            )
        if name == "NOT_ALLOWED" and during == "set":
            return TokenError(
                "a FIDO PIN is already set: change it with 'ebank-auth fido pin change'"
            )
        if name == "NOT_ALLOWED" and during == "reset":
            return TokenError(
                "the authenticator allows a reset only within seconds of being plugged in: "
                "remove and re-insert it, then run 'ebank-auth fido reset' at once"
            )
        advice = _PIN_ADVICE.get(name)
        if advice is not None:
            return type(advice)(advice.message)
        return TokenError(f"the authenticator refused ({name}) during {during}")

    def info(self) -> FidoInfo:
        info = self._ctap.get_info()
        retries: int | None = None
        cycle: bool | None = None
        if info.options.get("clientPin") is not None:
            retries, cycle = self.pin_retries()
        return FidoInfo(
            device=self.ref,
            versions=list(info.versions),
            aaguid=str(info.aaguid),
            options={str(k): bool(v) for k, v in info.options.items()},
            pin_uv_protocols=list(info.pin_uv_protocols),
            algorithms=[int(a.get("alg", 0)) for a in info.algorithms or []],
            transports=list(info.transports),
            min_pin_length=int(info.min_pin_length),
            firmware_version=info.firmware_version,
            remaining_discoverable_credentials=info.remaining_disc_creds,
            pin_retries=retries,
            power_cycle_required=cycle,
        )

    def pin_retries(self) -> tuple[int, bool | None]:
        """(PIN tries left, whether a power cycle is needed before the next try)."""
        try:
            retries, cycle = ClientPin(self._ctap).get_pin_retries()
        except CtapError as exc:
            raise self._error(exc, during="retries") from None
        return retries, None if cycle is None else bool(cycle)

    def set_pin(self, pin: str) -> None:
        """Set the first PIN (refused when one is set)."""
        try:
            ClientPin(self._ctap).set_pin(pin)
        except CtapError as exc:
            raise self._error(exc, during="set") from None
        except ValueError as exc:  # python-fido2's own length check
            raise PinPolicyError(f"the PIN is not acceptable: {exc}") from None

    def change_pin(self, old: str, new: str) -> None:
        """Change the PIN (a wrong ``old`` spends a try)."""
        try:
            ClientPin(self._ctap).change_pin(old, new)
        except CtapError as exc:
            raise self._error(exc, during="change") from None
        except ValueError as exc:
            raise PinPolicyError(f"the PIN is not acceptable: {exc}") from None

    def reset(self) -> None:
        """authenticatorReset: erase every credential and the PIN (needs the button)."""
        try:
            self._ctap.reset()
        except CtapError as exc:
            raise self._error(exc, during="reset") from None
