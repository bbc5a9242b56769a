"""The one connection interface every transport implements, and the device descriptor.

A :class:`Connection` moves raw APDU bytes: :meth:`Connection.transmit` takes an encoded command
APDU and returns the raw response *including* SW1 SW2.  It knows nothing about chaining, GET
RESPONSE or status words — that is :class:`ebank_auth.usbkey.apdu.ApduConnection`'s job.
Transports raise only :class:`ebank_auth.errors.TransportError` subclasses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum

__all__ = ["Connection", "DeviceKind", "TokenDevice"]


class DeviceKind(str, Enum):
    """Which transport reaches a device."""

    PCSC = "pcsc"
    HID = "hid"
    INPROCESS = "inprocess"


@dataclass(frozen=True)
class TokenDevice:
    """A token (or reader) found by discovery.

    ``name`` is the PC/SC reader name, the HID device path, or a label for an in-process token;
    ``serial`` is the device serial when the transport can tell without talking to the token;
    ``card_present`` is known for PC/SC readers only; ``atr`` is the card's ATR when present;
    ``details`` holds transport-specific extras (vendor/product ids, product string).
    """

    kind: DeviceKind
    name: str
    serial: str | None = None
    card_present: bool | None = None
    atr: bytes | None = None
    details: dict[str, str] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "name": self.name,
            "serial": self.serial,
            "card_present": self.card_present,
            "atr": self.atr.hex().upper() if self.atr is not None else None,
            "details": dict(self.details),
        }


class Connection(ABC):
    """An open channel to one token.  Thread-safety: one caller at a time.

    Use as a context manager (``with open_x(...) as conn:``) so it is always closed.
    """

    @property
    @abstractmethod
    def description(self) -> str:
        """Human-readable "where": e.g. ``pcsc:Virtual PCD 00 00`` or ``hid:/dev/hidraw3``."""

    @property
    def atr(self) -> bytes:
        """The card's answer-to-reset, when the transport has one (empty otherwise)."""
        return b""

    @abstractmethod
    def transmit(self, apdu: bytes) -> bytes:
        """Send one encoded command APDU; return the raw response (data + SW1 SW2)."""

    @abstractmethod
    def close(self) -> None:
        """Release the token.  Idempotent."""

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
