"""What is shown is what is signed (UK-6, UK-7, AU-8)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.crypto import sm2
from ebank_auth.errors import (
    ApduError,
    ConfirmationRejected,
    ConfirmationTimeout,
    InvalidSignature,
    SecurityStatusNotSatisfied,
)
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey import tlv
from ebank_auth.usbkey.apdu import StatusWord
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import (
    AutoApprove,
    AutoReject,
    CallbackDisplay,
    DisplayChoice,
    NoButton,
    ReadingUser,
)
from ebank_auth.usbkey.protocol import ConfirmStep, Ins, Tag
from ebank_auth.usbkey.session import TokenSession
from transaction.strategies import transactions

from .conftest import USER_PIN, open_session

_SHARED: dict[str, object] = {}


def _shared_signer() -> tuple[SoftToken, TokenSession, sm2.SM2PublicKey]:
    """One token for all hypothesis examples (key generation once)."""
    if "s" not in _SHARED:
        display = AutoApprove()
        token = SoftToken(None, display)
        s = open_session(token)
        s.verify_pin(USER_PIN)
        pub = s.generate_key().public_key()
        _SHARED.update(t=token, s=s, p=pub)
    return _SHARED["t"], _SHARED["s"], _SHARED["p"]  # type: ignore[return-value]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tx=transactions(), other=transactions())
def test_signature_verifies_over_displayed_bytes_only(tx: Transaction, other: Transaction) -> None:
    token, s, pub = _shared_signer()
    result = s.confirm_and_sign(tx, lang="en")
    assert result.signed_bytes == tx.encode()
    assert token.display.shown[-1] == tx.display_text("en") == result.display_text
    assert result.serial == token.serial
    pub.verify(result.signature, tx.encode(), uid=sm2.DEFAULT_UID)
    if other.encode() != tx.encode():
        with pytest.raises(InvalidSignature):
            pub.verify(result.signature, other.encode(), uid=sm2.DEFAULT_UID)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tx=transactions(), altered=transactions())
def test_host_altering_after_display_is_refused(tx: Transaction, altered: Transaction) -> None:
    _, s, _ = _shared_signer()
    shown = s.display_transaction(tx.encode())
    assert shown == tx.display_text("zh")
    if altered.encode() == tx.encode():
        s.cancel_confirmation()
        return
    with pytest.raises(ApduError) as exc:
        s.sign_displayed(altered.encode())
    assert exc.value.sw == StatusWord.CONDITIONS_NOT_SATISFIED
    # the displayed one is gone too: the host must start again
    with pytest.raises(ApduError):
        s.sign_displayed(tx.encode())


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_truncated_or_flipped_transaction_refused(data: st.DataObject) -> None:
    _, s, _ = _shared_signer()
    raw = bytearray(data.draw(transactions()).encode())
    i = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    if data.draw(st.booleans()):
        raw = raw[:i]
    else:
        raw[i] ^= data.draw(st.integers(min_value=1, max_value=255))
    try:
        Transaction.decode(bytes(raw))
    except Exception:
        with pytest.raises(ApduError) as exc:
            s.display_transaction(bytes(raw))
        assert exc.value.sw in (StatusWord.WRONG_DATA, StatusWord.WRONG_LENGTH)
    else:  # a flip that still decodes is another valid transaction: shown as such
        assert s.display_transaction(bytes(raw)) == Transaction.decode(bytes(raw)).display_text()
        s.cancel_confirmation()


def test_unknown_format_refused(signer: TokenSession, make_tx: Callable[..., Transaction]) -> None:
    body = tlv.build(
        [(Tag.CONTAINER, b"sign"), (Tag.FORMAT, b"\x02"), (Tag.TRANSACTION, make_tx().encode())]
    )
    with pytest.raises(ApduError) as exc:
        signer.transmit_secure(Ins.CONFIRM_AND_SIGN, body, p1=ConfirmStep.DISPLAY)
    assert exc.value.sw == StatusWord.FUNCTION_NOT_SUPPORTED


def test_sign_without_display_refused(
    signer: TokenSession, make_tx: Callable[..., Transaction]
) -> None:
    with pytest.raises(ApduError) as exc:
        signer.sign_displayed(make_tx().encode())
    assert exc.value.sw == StatusWord.CONDITIONS_NOT_SATISFIED


@pytest.mark.parametrize(
    ("display", "error"),
    [(AutoReject(), ConfirmationRejected), (NoButton(), ConfirmationTimeout)],
)
def test_reject_and_timeout_sign_nothing(
    display: object, error: type[Exception], make_tx: Callable[..., Transaction]
) -> None:
    token = SoftToken(None, display)  # type: ignore[arg-type]
    s = open_session(token)
    s.verify_pin(USER_PIN)
    s.generate_key()
    with pytest.raises(error):
        s.confirm_and_sign(make_tx())
    with pytest.raises(ApduError):  # nothing pending any more
        s.sign_displayed(make_tx().encode())


def test_reading_user_rejects_marked_transactions(make_tx: Callable[..., Transaction]) -> None:
    token = SoftToken(None, ReadingUser())
    s = open_session(token)
    s.verify_pin(USER_PIN)
    s.generate_key()
    s.confirm_and_sign(make_tx(memo="ok"))
    with pytest.raises(ConfirmationRejected):
        s.confirm_and_sign(make_tx(memo="REJECT please"))


def test_callback_hook_sees_the_text_and_fails_closed(make_tx: Callable[..., Transaction]) -> None:
    seen: list[str] = []

    def approve_small(text: str, timeout: float) -> DisplayChoice:
        seen.append(text)
        if "999" in text:
            raise RuntimeError("broken hook")
        return DisplayChoice.APPROVE

    token = SoftToken(None, CallbackDisplay(approve_small))
    s = open_session(token)
    s.verify_pin(USER_PIN)
    s.generate_key()
    s.confirm_and_sign(make_tx(amount="12.00"))
    assert "12.00" in seen[-1]
    with pytest.raises(ConfirmationRejected):
        s.confirm_and_sign(make_tx(amount="999.00"))


def test_confirmation_needs_pin(session: TokenSession, make_tx: Callable[..., Transaction]) -> None:
    session.verify_pin(USER_PIN)
    session.generate_key()
    session.logout()
    with pytest.raises(SecurityStatusNotSatisfied):
        session.confirm_and_sign(make_tx())


def test_login_key_cannot_confirm_and_sign(
    session: TokenSession, make_tx: Callable[..., Transaction]
) -> None:
    from ebank_auth.usbkey.protocol import Algorithm, ContainerUsage

    session.verify_pin(USER_PIN)
    session.generate_key("login", Algorithm.SM2, ContainerUsage.LOGIN)
    with pytest.raises(ApduError) as exc:
        session.display_transaction(make_tx().encode(), "login")
    assert exc.value.sw == StatusWord.CONDITIONS_NOT_SATISFIED
