"""The outer status word of a secure (CLA 84) command is not authenticated (issue 10 item 8).

Only the status inside the SM4-GCM protected response body is covered by the secure channel; the
two bytes after it travel in clear.  The host must therefore trust the inner status only: an
outer status other than 9000 means "no authenticated answer" and is reported as a broken secure
channel, never as a PIN verdict.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.errors import PinIncorrect, PinLocked, SecureChannelError
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove
from ebank_auth.usbkey.protocol import CLA_SECURE
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.transport.base import Connection
from ebank_auth.usbkey.transport.inprocess import InProcessConnection

from .conftest import USER_PIN, trust_for


class OuterStatusRewriter(Connection):
    """A man in the middle on the reader link: rewrites the clear outer SW of secure answers."""

    def __init__(self, inner: Connection, sw: int) -> None:
        self.inner = inner
        self.sw = sw

    @property
    def description(self) -> str:
        return "mitm:" + self.inner.description

    def transmit(self, apdu: bytes) -> bytes:
        raw = self.inner.transmit(apdu)
        if apdu[0] == CLA_SECURE:
            return raw[:-2] + self.sw.to_bytes(2, "big")
        return raw

    def close(self) -> None:
        self.inner.close()


def test_mitm_turns_correct_pin_into_locked() -> None:
    """Attack: the MITM rewrites the outer SW of a correct VERIFY PIN answer to 63C0 so the host
    tells the customer the PIN is wrong and the token locked (a phishing lever: "call us to
    unlock").  The host must refuse the unauthenticated status, not report a PIN verdict."""
    token = SoftToken(None, AutoApprove())
    mitm = OuterStatusRewriter(InProcessConnection(token), 0x63C0)
    session = TokenSession.open(mitm, trust_for(token))
    with session, pytest.raises(SecureChannelError, match="not authenticated"):
        session.verify_pin(USER_PIN)
    # the token itself accepted the PIN and kept every try
    assert token.state.user_pin.remaining == token.state.user_pin.max_retries


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sw=st.integers(0, 0xFFFF).filter(lambda v: v != 0x9000))
def test_no_outer_status_becomes_a_pin_verdict(sw: int) -> None:
    """Property: whatever clear status the MITM puts after a secure answer, the host never turns
    it into a PIN error (wrong / locked) and the token spends no try."""
    token = SoftToken(None, AutoApprove())
    mitm = OuterStatusRewriter(InProcessConnection(token), sw)
    session = TokenSession.open(mitm, trust_for(token))
    try:
        with pytest.raises(SecureChannelError):
            session.verify_pin(USER_PIN)
        assert not session.secure  # the host drops the channel it can no longer trust
    except (PinIncorrect, PinLocked) as exc:  # pragma: no cover - the attack worked
        pytest.fail(f"outer status {sw:04X} became a PIN verdict: {exc}")
    finally:
        session.close()
    assert token.state.user_pin.remaining == token.state.user_pin.max_retries
