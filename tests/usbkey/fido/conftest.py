"""Fixtures for the CTAP2 applet tests: python-fido2 as the host, the software token as the card.

Two ways in:

* through a real, isolated pcscd + vpcd (``plugins.pcscd``): python-fido2's own
  ``CtapPcscDevice`` on the reader — the end-to-end tests;
* in process: :class:`InProcessReader` gives ``CtapPcscDevice`` a pyscard-shaped connection whose
  ``transmit`` hands the APDU to the token's :class:`AppletRouter` directly.  It replaces only the
  reader (pcscd and vpcd), not the card or the client, and keeps the many-step Hypothesis
  properties fast; every behaviour it is used for is also covered through pcscd.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest.importorskip("fido2")

from fido2.ctap2.base import Ctap2
from fido2.ctap2.pin import ClientPin
from fido2.pcsc import CtapPcscDevice

from ebank_auth.usbkey.card_interface import CardProtocol
from plugins.pcscd import pcscd_vpcd  # noqa: F401

ORIGIN = "https://bank.example"
RP_ID = "bank.example"


class InProcessReader:
    """A pyscard-shaped connection to a card object in this process (see the module doc)."""

    def __init__(self, card: CardProtocol) -> None:
        self.card = card
        self.sent: list[bytes] = []

    def connect(self) -> None:
        return None

    def disconnect(self) -> None:
        return None

    def getATR(self) -> list[int]:
        return list(self.card.atr())

    def transmit(self, apdu: list[int], protocol: object = None) -> tuple[list[int], int, int]:
        self.sent.append(bytes(apdu))
        out = self.card.process_apdu(bytes(apdu))
        return list(out[:-2]), out[-2], out[-1]


def in_process(card: CardProtocol) -> Ctap2:
    """python-fido2's Ctap2 over an in-process reader holding ``card``."""
    return Ctap2(CtapPcscDevice(InProcessReader(card), "in-process"))


@pytest.fixture
def ctap_for() -> Callable[[CardProtocol], Ctap2]:
    return in_process


def pin_client(ctap: Ctap2) -> ClientPin:
    return ClientPin(ctap)
