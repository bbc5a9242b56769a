"""PIN in transit (UK-5) and per-session keys (AU-13): captured APDUs can be neither read nor replayed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebank_auth.errors import SecureChannelError, SecurityStatusNotSatisfied
from ebank_auth.usbkey.apdu import ResponseApdu, StatusWord
from ebank_auth.usbkey.conformance import RecordingConnection
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.protocol import CLA_PROPRIETARY, CLA_SECURE, Ins
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.transport.inprocess import InProcessConnection

from .conftest import USER_PIN, trust_for


def _recorded(token: SoftToken) -> tuple[TokenSession, RecordingConnection]:
    rec = RecordingConnection(InProcessConnection(token))
    return TokenSession.open(rec, trust_for(token)), rec


def _verify_apdus(rec: RecordingConnection) -> list[bytes]:
    return [c for c, _ in rec.log if c[0] == CLA_SECURE and c[1] == Ins.VERIFY_PIN]


def test_pin_is_encrypted_on_the_wire(token: SoftToken) -> None:
    s, rec = _recorded(token)
    s.verify_pin(USER_PIN)
    (apdu,) = _verify_apdus(rec)
    assert USER_PIN.encode() not in apdu
    assert all(USER_PIN.encode() not in c for c, _ in rec.log)


def test_plain_pin_verify_refused(token: SoftToken) -> None:
    s, rec = _recorded(token)
    raw = bytes((CLA_PROPRIETARY, Ins.VERIFY_PIN, 0, 1, 6)) + USER_PIN.encode()
    assert ResponseApdu.parse(rec.inner.transmit(raw)).sw == StatusWord.SM_DATA_OBJECTS_MISSING
    with pytest.raises(SecurityStatusNotSatisfied):
        s.generate_key()


def test_replay_in_same_session_refused(token: SoftToken) -> None:
    s, rec = _recorded(token)
    s.verify_pin(USER_PIN)
    (apdu,) = _verify_apdus(rec)
    assert ResponseApdu.parse(rec.inner.transmit(apdu)).sw == StatusWord.SM_DATA_OBJECTS_INCORRECT
    # the token closed the channel and forgot the PIN
    with pytest.raises(SecureChannelError):
        s.generate_key()
    s.open_secure_channel()
    with pytest.raises(SecurityStatusNotSatisfied):
        s.generate_key()
    assert s.pin_status().remaining == s.pin_status().max_retries


def test_replay_into_new_session_refused(token: SoftToken) -> None:
    s, rec = _recorded(token)
    s.verify_pin(USER_PIN)
    (apdu,) = _verify_apdus(rec)
    s.open_secure_channel()  # a new session: new keys, counter 0, no PIN verified
    assert ResponseApdu.parse(rec.inner.transmit(apdu)).sw == StatusWord.SM_DATA_OBJECTS_INCORRECT
    s.open_secure_channel()
    with pytest.raises(SecurityStatusNotSatisfied):
        s.generate_key()


def test_reordered_commands_refused(token: SoftToken) -> None:
    s, rec = _recorded(token)
    channel = s._channel
    assert channel is not None
    header = bytes((CLA_SECURE, Ins.PIN_INFO, 0, 1))
    first, _ = channel.wrap_command(header, b"")
    second, _ = channel.wrap_command(header, b"")
    sw = ResponseApdu.parse(rec.inner.transmit(header + bytes((len(second),)) + second)).sw
    assert sw == StatusWord.SM_DATA_OBJECTS_INCORRECT
    sw = ResponseApdu.parse(rec.inner.transmit(header + bytes((len(first),)) + first)).sw
    assert sw == StatusWord.SM_DATA_OBJECTS_INCORRECT  # channel closed after the first failure


@settings(max_examples=25, deadline=None)
@given(
    position=st.integers(min_value=5, max_value=40), flip=st.integers(min_value=1, max_value=255)
)
def test_tampered_command_refused(position: int, flip: int) -> None:
    token = SoftToken(None)
    s, rec = _recorded(token)
    channel = s._channel
    assert channel is not None
    header = bytes((CLA_SECURE, Ins.VERIFY_PIN, 0, 1))
    body, _ = channel.wrap_command(header, USER_PIN.encode())
    apdu = bytearray(header + bytes((len(body),)) + body)
    position = min(position, len(apdu) - 1)
    apdu[position] ^= flip
    resp = ResponseApdu.parse(rec.inner.transmit(bytes(apdu)))
    assert resp.sw != StatusWord.SUCCESS or position < 4
    assert token.state.user_pin.remaining == token.state.user_pin.max_retries


def test_session_keys_differ_per_session(token: SoftToken) -> None:
    s, _ = _recorded(token)
    k1 = bytes(s._channel._keys.cmd)  # type: ignore[union-attr]
    s.open_secure_channel()
    k2 = bytes(s._channel._keys.cmd)  # type: ignore[union-attr]
    assert k1 != k2


def test_closed_channel_wipes_keys(token: SoftToken) -> None:
    s, _ = _recorded(token)
    channel = s._channel
    assert channel is not None
    channel.close()
    assert bytes(channel._keys.cmd) == bytes(16)
    with pytest.raises(SecureChannelError):
        channel.wrap_command(b"\x84\x20\x00\x01", b"")


def test_debug_log_never_shows_the_pin(token: SoftToken, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.DEBUG, logger="ebank_auth"):
        s, _ = _recorded(token)
        s.verify_pin(USER_PIN)
        s.change_pin(USER_PIN, "Zx9-4417")
    text = caplog.text
    assert ">>" in text  # traffic was logged
    assert USER_PIN not in text and "Zx9-4417" not in text
    assert USER_PIN.encode().hex().upper() not in text
