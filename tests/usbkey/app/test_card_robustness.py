"""Bad input gets the right status word and changes no state."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebank_auth.errors import ApduError
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.apdu import ApduConnection, CommandApdu, ResponseApdu, StatusWord
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove
from ebank_auth.usbkey.protocol import AID, CLA_PROPRIETARY, Ins, Tag
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.transport.inprocess import InProcessConnection

from .conftest import USER_PIN


def _raw(token: SoftToken, apdu: bytes) -> int:
    return ResponseApdu.parse(token.process_apdu(apdu)).sw


def _selected(token: SoftToken) -> None:
    assert _raw(token, bytes((0, 0xA4, 4, 0, len(AID))) + AID) == StatusWord.SUCCESS


def test_select_unknown_aid(token: SoftToken) -> None:
    assert _raw(token, bytes((0, 0xA4, 4, 0, 3)) + b"abc") == StatusWord.FILE_NOT_FOUND
    assert (
        _raw(token, bytes((CLA_PROPRIETARY, Ins.GET_DEVICE_INFO, 0, 0)))
        == StatusWord.CONDITIONS_NOT_SATISFIED
    )


@pytest.mark.parametrize(
    ("apdu", "sw"),
    [
        (bytes((CLA_PROPRIETARY, 0x7E, 0, 0)), StatusWord.INS_NOT_SUPPORTED),
        (bytes((0xA0, Ins.GET_DEVICE_INFO, 0, 0)), StatusWord.CLA_NOT_SUPPORTED),
        (bytes((0x00, 0x20, 0, 0)), StatusWord.INS_NOT_SUPPORTED),
        (bytes((CLA_PROPRIETARY, Ins.GET_DEVICE_INFO, 0, 0, 5, 1, 2)), StatusWord.WRONG_LENGTH),
        (bytes((CLA_PROPRIETARY, Ins.GET_DEVICE_INFO)), StatusWord.WRONG_LENGTH),
        (bytes((CLA_PROPRIETARY, Ins.GET_DEVICE_INFO, 0, 0, 1, 0)), StatusWord.WRONG_LENGTH),
        (bytes((CLA_PROPRIETARY, Ins.GET_DEVICE_INFO, 1, 0)), StatusWord.INCORRECT_P1P2),
        (
            bytes((CLA_PROPRIETARY, Ins.GENERATE_KEY, 0, 0, 1, 0)),
            StatusWord.SM_DATA_OBJECTS_MISSING,
        ),
        (
            bytes((CLA_PROPRIETARY, Ins.OPEN_SECURE_CHANNEL, 0, 0, 3)) + b"\x90\x01\x00",
            StatusWord.WRONG_DATA,
        ),
        (
            bytes((CLA_PROPRIETARY, Ins.OPEN_SECURE_CHANNEL, 0, 0, 2)) + b"\x90\x80",
            StatusWord.WRONG_DATA,
        ),
        (
            bytes((CLA_PROPRIETARY, Ins.ESTABLISH_KEYS, 0, 0, 3)) + b"\x94\x01\x00",
            StatusWord.CONDITIONS_NOT_SATISFIED,
        ),
        (bytes((0x84, Ins.VERIFY_PIN, 0, 1, 20)) + bytes(20), StatusWord.SM_DATA_OBJECTS_INCORRECT),
        (bytes((0x00, 0xC0, 0, 0, 0)), StatusWord.CONDITIONS_NOT_SATISFIED),
        (
            bytes((CLA_PROPRIETARY, Ins.GET_DEVICE_INFO, 0, 0, 0, 0x20, 0)) + bytes(0x2000),
            StatusWord.WRONG_LENGTH,
        ),
    ],
)
def test_bad_apdus(token: SoftToken, apdu: bytes, sw: int) -> None:
    _selected(token)
    before = token.state.to_json()
    assert _raw(token, apdu) == sw
    assert token.state.to_json() == before


def test_oversize_chain_refused(token: SoftToken) -> None:
    _selected(token)
    block = bytes((CLA_PROPRIETARY | 0x10, Ins.GET_DEVICE_INFO, 0, 0, 255)) + bytes(255)
    sws = [_raw(token, block) for _ in range(20)]
    assert StatusWord.WRONG_LENGTH in sws


def test_chain_with_changed_header_refused(token: SoftToken) -> None:
    _selected(token)
    assert _raw(token, bytes((0x90, Ins.GET_DEVICE_INFO, 0, 0, 1, 0))) == StatusWord.SUCCESS
    assert _raw(token, bytes((0x80, Ins.GET_DEVICE_CERT, 0, 0, 1, 0))) == 0x6883


def test_long_response_uses_get_response(token: SoftToken) -> None:
    conn = ApduConnection(InProcessConnection(token))
    conn.execute(CommandApdu(0, 0xA4, 4, 0, AID))
    cert = conn.execute(CommandApdu(CLA_PROPRIETARY, Ins.GET_DEVICE_CERT, le=256))
    assert cert == token.state.device_cert_der and len(cert) > 256


@pytest.mark.parametrize(
    "body",
    [b"\xd1\x05ab", b"\xd1\x80", b"\xd1\x81\x05abcde", b"\xd1\x04sign\xd1\x04sign", b"\xee\x00"],
)
def test_malformed_tlv_inside_secure_channel(
    signer: TokenSession, token: SoftToken, body: bytes
) -> None:
    before = token.state.to_json()
    with pytest.raises(ApduError) as exc:
        signer.transmit_secure(Ins.GENERATE_KEY, body)
    assert exc.value.sw == StatusWord.WRONG_DATA
    assert token.state.to_json() == before


def test_oversize_transaction_refused(
    signer: TokenSession, make_tx: Callable[..., Transaction]
) -> None:
    from ebank_auth.usbkey import tlv

    body = tlv.build(
        [(Tag.CONTAINER, b"sign"), (Tag.FORMAT, b"\x01"), (Tag.TRANSACTION, bytes(3000))]
    )
    with pytest.raises(ApduError) as exc:
        signer.transmit_secure(Ins.CONFIRM_AND_SIGN, body)
    assert exc.value.sw == StatusWord.WRONG_LENGTH


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_random_apdus_never_crash_or_change_state(apdu: bytes) -> None:
    token = _ROBUST.setdefault("t", SoftToken(None, AutoApprove()))
    token.reset()
    _selected(token)
    before = token.state.to_json()
    out = token.process_apdu(apdu)
    assert len(out) >= 2
    assert ResponseApdu.parse(out).sw != StatusWord.NO_PRECISE_DIAGNOSIS
    assert token.state.to_json() == before


_ROBUST: dict[str, SoftToken] = {}


def test_unknown_ins_inside_secure_channel(session: TokenSession) -> None:
    with pytest.raises(ApduError) as exc:
        session.transmit_secure(0x7E, b"")  # type: ignore[arg-type]
    assert exc.value.sw == StatusWord.INS_NOT_SUPPORTED
    session.verify_pin(USER_PIN)  # channel still usable
