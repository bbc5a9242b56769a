"""HID CANCEL is real or reported honestly (issue 10 item 11).

The host side is the real HidConnection and TokenSession; the hidapi device is the HidTokenStandIn
(no USB on this machine) with the real software token behind it.
"""

from __future__ import annotations

import threading

import pytest

from ebank_auth.errors import EbankAuthError, HidError
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import CallbackDisplay, DisplayChoice
from ebank_auth.usbkey.emulator.hid_standin import HidTokenStandIn
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.transport.hid import HidConnection
from usbkey.app.conftest import USER_PIN, sample_tx, trust_for
from usbkey.transport.cards import TestCard


class SlowCustomer:
    """The token's button: shows the screen, then waits until the test presses approve."""

    def __init__(self) -> None:
        self.showing = threading.Event()
        self.press = threading.Event()
        self.decided: list[DisplayChoice] = []

    def __call__(self, text: str, timeout: float) -> DisplayChoice:
        self.showing.set()
        self.press.wait(60)
        self.decided.append(DisplayChoice.APPROVE)
        return DisplayChoice.APPROVE


def _signing_session(customer: SlowCustomer) -> tuple[TokenSession, HidConnection, HidTokenStandIn]:
    token = SoftToken(None, CallbackDisplay(customer))
    dev = HidTokenStandIn(token)
    conn = HidConnection(dev, timeout=30)
    session = TokenSession.open(conn, trust_for(token))
    session.verify_pin(USER_PIN)
    session.generate_key()
    return session, conn, dev


def _sign_in_thread(
    session: TokenSession, tx: Transaction
) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(session.confirm_and_sign(tx))
        except EbankAuthError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_cancel_while_the_token_waits_for_the_button_stops_the_card() -> None:
    """Attack on the user's trust: the host cancels a confirm-and-sign and is told "nothing was
    done on the token", yet the card keeps waiting for the button and, when the customer presses
    approve later, goes on to sign.  Cancel must stop the card: it stops waiting and never signs."""
    customer = SlowCustomer()
    session, conn, dev = _signing_session(customer)
    thread, outcome = _sign_in_thread(session, sample_tx())
    assert customer.showing.wait(30)
    conn.cancel()
    thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], HidError), outcome
    assert "cancelled" in str(outcome[0]) and "nothing was done" in str(outcome[0])
    assert dev._busy is not None
    dev._busy.join(10)
    alive = dev._busy.is_alive()
    customer.press.set()  # the customer presses approve after the cancel: too late
    assert not alive, "the card is still running the command the host was told was cancelled"
    # the session goes on: the next command is answered normally
    assert session.pin_status().remaining == session.pin_status().max_retries


class SlowCard(TestCard):
    """A card that cannot be interrupted: INS 0x51 takes until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()

    def process_apdu(self, apdu: bytes) -> bytes:
        if apdu[1] != 0x51:
            return super().process_apdu(apdu)
        self.started.set()
        self.release.wait(60)
        return b"done\x90\x00"


def test_cancel_of_a_command_the_card_cannot_stop_returns_its_real_answer() -> None:
    """A card without cancellation points finishes the command; the host then gets the real
    answer, never a claim that nothing was done."""
    card = SlowCard()
    dev = HidTokenStandIn(card)
    conn = HidConnection(dev, timeout=30)
    answer: list[bytes | Exception] = []

    def run() -> None:
        try:
            answer.append(conn.transmit(bytes.fromhex("00510000")))
        except HidError as exc:
            answer.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert card.started.wait(30)
    conn.cancel()
    card.release.set()
    thread.join(30)
    assert answer == [b"done\x90\x00"]


def test_cancel_with_nothing_running_is_harmless() -> None:
    conn = HidConnection(HidTokenStandIn(TestCard()))
    conn.cancel()
    with pytest.raises(HidError):  # nothing answers a CANCEL with no request: no stray message
        conn._receive(lambda: 0)
