"""A half-finished command chain never survives into the next client's session (issue 10 #10).

Over pcscd a client that disconnects with SCARD_LEAVE_CARD leaves the card powered, so the next
client's SELECT used to meet the old chain and get 6883 ("last command of chain expected").
SELECT starts a new session: it drops any chain, and the chained data is never run.
"""

from __future__ import annotations

from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.protocol import AID

from .conftest import open_session

SELECT = bytes((0x00, 0xA4, 0x04, 0x00, len(AID))) + AID


def _sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")


def test_select_after_a_dangling_chain_succeeds(token: SoftToken) -> None:
    token.power_on()
    assert _sw(token.process_apdu(SELECT)) == 0x9000
    # first part of a chained proprietary command (CLA 0x80 | chaining bit 0x10), never finished
    assert _sw(token.process_apdu(bytes((0x90, 0x20, 0x00, 0x01, 0x03)) + b"123")) == 0x9000
    # the next client starts with SELECT: not 6883, and a full session works
    assert _sw(token.process_apdu(SELECT)) == 0x9000
    session = open_session(token)
    assert session.pin_status().remaining > 0
    session.close()


def test_dangling_chain_data_is_not_prepended_to_the_next_command(token: SoftToken) -> None:
    token.power_on()
    assert _sw(token.process_apdu(SELECT)) == 0x9000
    token.process_apdu(bytes((0x90, 0x20, 0x00, 0x01, 0x03)) + b"999")
    token.process_apdu(SELECT)
    assert not token._chain.open
