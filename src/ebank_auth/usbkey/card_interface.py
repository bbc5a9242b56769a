"""The card-side interface: what a (software) token implements so any link can drive it.

The vpcd link (:mod:`ebank_auth.usbkey.emulator.vpcd`), the in-process transport
(:class:`ebank_auth.usbkey.transport.inprocess.InProcessConnection`) and the HID stand-in
(:mod:`ebank_auth.usbkey.emulator.hid_standin`) all drive a card only through this protocol.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

__all__ = ["CancellableCard", "CardProtocol"]


@runtime_checkable
class CardProtocol(Protocol):
    """A smart card as seen from the reader.

    ``process_apdu`` takes one raw command APDU and returns the raw response (data + SW1 SW2);
    it must never raise for bad input — malformed commands get a status word (``6700``, ``6D00``,
    …).  ``power_off``/``reset`` drop volatile state (verified PINs, secure-channel sessions,
    selected application); persistent state survives.
    """

    def atr(self) -> bytes:
        """The answer-to-reset bytes."""
        ...

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...

    def reset(self) -> None: ...

    def process_apdu(self, apdu: bytes) -> bytes: ...


@runtime_checkable
class CancellableCard(Protocol):
    """A card that can abandon a command (HID CANCEL) at points where it has changed nothing.

    ``process_apdu_cancellable`` works as ``process_apdu`` but watches ``cancelled``: it returns
    ``None`` when it abandoned the command *before any effect* (nothing persisted, nothing
    signed), else the full response — also when ``cancelled`` was set too late to stop it.
    """

    def process_apdu_cancellable(self, apdu: bytes, cancelled: threading.Event) -> bytes | None: ...
