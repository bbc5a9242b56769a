"""The token application over the HID framing.

No ``/dev/uhid`` or USB exists here, so the device object is the HID stand-in
(``emulator/hid_standin.py``); the host side is the production ``HidConnection``.
"""

from __future__ import annotations

from collections.abc import Callable

from ebank_auth.crypto import sm2
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import CallbackDisplay, DisplayChoice
from ebank_auth.usbkey.emulator.hid_standin import HidTokenStandIn
from ebank_auth.usbkey.hid_framing import HidStatus
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.transport.hid import HidConnection

from .conftest import USER_PIN, trust_for


def test_confirm_and_sign_over_hid_reports_waiting_for_button(
    make_tx: Callable[..., Transaction],
) -> None:
    holder: dict[str, HidTokenStandIn] = {}

    def button(text: str, timeout: float) -> DisplayChoice:
        holder["dev"].report_status(HidStatus.WAITING_FOR_BUTTON)
        return DisplayChoice.APPROVE

    token = SoftToken(None, CallbackDisplay(button))
    dev = HidTokenStandIn(token)
    holder["dev"] = dev
    statuses: list[object] = []
    conn = HidConnection(dev, path="standin", on_status=statuses.append)
    s = TokenSession.open(conn, trust_for(token))
    s.verify_pin(USER_PIN)
    pub = s.generate_key().public_key()
    tx = make_tx()
    result = s.confirm_and_sign(tx)
    assert isinstance(pub, sm2.SM2PublicKey)
    pub.verify(result.signature, tx.encode(), uid=sm2.DEFAULT_UID)
    assert HidStatus.WAITING_FOR_BUTTON in statuses
    s.close()
