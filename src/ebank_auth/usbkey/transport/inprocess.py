"""In-process transport: a :class:`Connection` straight to a card object (unit tests, demos).

No pcscd, no sockets: ``transmit`` calls ``card.process_apdu``.  Opening powers the card on and
closing powers it off, as inserting and removing a token would.
"""

from __future__ import annotations

import threading

from ebank_auth.errors import CardNotPresent
from ebank_auth.usbkey.card_interface import CardProtocol
from ebank_auth.usbkey.transport.base import Connection

__all__ = ["InProcessConnection"]


class InProcessConnection(Connection):
    """Wraps any object implementing :class:`CardProtocol`."""

    def __init__(self, card: CardProtocol, *, name: str = "in-process token") -> None:
        self._card = card
        self._name = name
        self._lock = threading.Lock()
        self._open = True
        card.power_on()

    @property
    def description(self) -> str:
        return f"inprocess:{self._name}"

    @property
    def atr(self) -> bytes:
        return self._card.atr()

    @property
    def card(self) -> CardProtocol:
        return self._card

    def transmit(self, apdu: bytes) -> bytes:
        with self._lock:
            if not self._open:
                raise CardNotPresent("the in-process token connection is closed")
            return bytes(self._card.process_apdu(bytes(apdu)))

    def close(self) -> None:
        with self._lock:
            if self._open:
                self._open = False
                self._card.power_off()
