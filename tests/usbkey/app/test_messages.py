"""Token errors speak user terms: which PIN, what a status word means, what to do."""

from __future__ import annotations

import pytest

from ebank_auth.errors import ApduError, PinIncorrect, PinLocked
from ebank_auth.usbkey import protocol
from ebank_auth.usbkey.apdu import StatusWord, error_for_status
from ebank_auth.usbkey.protocol import AppStatus, PinRef
from ebank_auth.usbkey.session import TokenSession

from .conftest import ADMIN_PIN, USER_PIN


def test_one_status_word_table_with_iso_names() -> None:
    assert not hasattr(protocol, "Sw")
    assert StatusWord.INCORRECT_P1P2 == 0x6A86
    assert StatusWord.WRONG_P1P2 == 0x6B00
    iso = {int(v) for v in StatusWord}
    assert all(int(v) not in iso and int(v) >> 4 == 0x69F for v in AppStatus)


@pytest.mark.parametrize("sw", [0x6A80, 0x6A86, 0x6700, 0x6D00, 0x6F00, 0x6A88, 0x6E00])
def test_status_word_message_says_what_it_means_and_what_to_do(sw: int) -> None:
    err = error_for_status(sw)
    assert isinstance(err, ApduError) and err.sw == sw
    assert not err.message.startswith(("status word", "token refused the command: status"))
    assert ":" in err.message  # meaning: action
    assert f"{sw:04X}" in err.message  # the code is still there for support


def test_wrong_admin_pin_says_admin_and_that_its_lock_is_final(session: TokenSession) -> None:
    limit = session.pin_status(PinRef.ADMIN).max_retries
    with pytest.raises(PinIncorrect) as first:
        session.verify_pin("99999999", PinRef.ADMIN)
    assert "admin PIN" in first.value.message and first.value.remaining == limit - 1
    for _ in range(limit - 2):
        with pytest.raises(PinIncorrect):
            session.verify_pin("99999999", PinRef.ADMIN)
    with pytest.raises(PinIncorrect) as last:
        session.verify_pin("99999999", PinRef.ADMIN)
    assert last.value.remaining == 0 and "final" in last.value.message
    with pytest.raises(PinLocked) as locked:
        session.verify_pin(ADMIN_PIN, PinRef.ADMIN)
    assert "admin" in locked.value.message and "final" in locked.value.message
    session.verify_pin(USER_PIN)  # the user PIN is a different counter


def test_unblock_with_wrong_admin_pin_blames_the_admin_pin(session: TokenSession) -> None:
    with pytest.raises(PinIncorrect) as exc:
        session.unblock_pin("99999999", "246813")
    assert "admin PIN" in exc.value.message
    assert session.pin_status(PinRef.ADMIN).remaining == exc.value.remaining


def test_locked_user_pin_points_at_the_admin_pin(session: TokenSession) -> None:
    limit = session.pin_status().max_retries
    for _ in range(limit):
        with pytest.raises(PinIncorrect):
            session.verify_pin("000000")
    with pytest.raises(PinLocked) as exc:
        session.verify_pin(USER_PIN)
    assert "user PIN" in exc.value.message and "admin" in exc.value.message
