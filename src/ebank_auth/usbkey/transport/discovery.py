"""Device discovery: PC/SC readers and HID tokens in one list.

A source whose library is not installed or whose service is not running is simply absent from
:attr:`Discovery.devices`; :attr:`Discovery.unavailable` says why, so a CLI can print it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ebank_auth.errors import TransportError
from ebank_auth.usbkey.transport.base import Connection, DeviceKind, TokenDevice

__all__ = ["Discovery", "list_devices", "open_device"]


@dataclass(frozen=True)
class Discovery:
    """``devices`` found; ``unavailable`` maps a source (``"pcsc"``, ``"hid"``) to the reason it
    could not be searched."""

    devices: list[TokenDevice] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "devices": [d.to_json() for d in self.devices],
            "unavailable": dict(self.unavailable),
        }


def list_devices(*, pcsc: bool = True, hid: bool = True) -> Discovery:
    """Search PC/SC and HID (each optional) and merge the results."""
    devices: list[TokenDevice] = []
    unavailable: dict[str, str] = {}
    if pcsc:
        try:
            from ebank_auth.usbkey.transport import pcsc as pcsc_mod

            devices += pcsc_mod.list_devices()
        except TransportError as exc:
            unavailable["pcsc"] = exc.message
    if hid:
        try:
            from ebank_auth.usbkey.transport import hid as hid_mod

            devices += hid_mod.list_devices()
        except TransportError as exc:
            unavailable["hid"] = exc.message
        except OSError as exc:  # pragma: no cover - hidapi backend failure
            unavailable["hid"] = f"HID enumeration failed: {exc}"
    return Discovery(devices, unavailable)


def open_device(device: TokenDevice) -> Connection:
    """Open a connection to a discovered device (PC/SC exclusive, or HID)."""
    if device.kind is DeviceKind.PCSC:
        from ebank_auth.usbkey.transport.pcsc import PcscConnection

        return PcscConnection(device.name)
    if device.kind is DeviceKind.HID:
        from ebank_auth.usbkey.transport.hid import open_hid

        return open_hid(device.name)
    raise TransportError(f"cannot open a {device.kind.value} device by discovery")
