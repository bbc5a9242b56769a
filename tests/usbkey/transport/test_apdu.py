"""APDU layer: encoding, status words -> typed errors, the send pipeline, log redaction."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebank_auth.errors import (
    ApduError,
    EncodingError,
    PinIncorrect,
    PinLocked,
    SecureChannelError,
    SecurityStatusNotSatisfied,
)
from ebank_auth.usbkey.apdu import (
    ApduConnection,
    CommandApdu,
    ResponseApdu,
    StatusWord,
    error_for_status,
    raise_for_status,
)
from ebank_auth.usbkey.transport.inprocess import InProcessConnection
from usbkey.transport.cards import INS_ECHO, INS_EXACT, INS_STATUS, TEST_AID, TestCard

byte = st.integers(0, 255)


# --------------------------------------------------------------------------- encoding
@pytest.mark.parametrize(
    ("cmd", "short", "extended"),
    [
        (CommandApdu(0x00, 0xA4, 4, 0), "00A40400", "00A40400"),
        (CommandApdu(0x00, 0xB0, 0, 0, le=256), "00B0000000", "00B00000000100"),
        (CommandApdu(0x00, 0xB0, 0, 0, le=16), "00B0000010", "00B00000000010"),
        (CommandApdu(0x80, 0x10, 1, 2, b"\xaa\xbb"), "8010010202AABB", "801001020000 02AABB"),
        (
            CommandApdu(0x00, 0xA4, 4, 0, b"\x01", le=256),
            "00A404000101 00",
            "00A4040000000101 0100",
        ),
    ],
)
def test_known_encodings(cmd: CommandApdu, short: str, extended: str) -> None:
    assert cmd.encode(extended=False).hex().upper() == short.replace(" ", "")
    assert cmd.encode(extended=True).hex().upper() == extended.replace(" ", "")
    assert CommandApdu.parse(cmd.encode(False)) == cmd
    assert CommandApdu.parse(cmd.encode(True)) == cmd


def test_extended_forms_for_large_commands() -> None:
    cmd = CommandApdu(0, 0xD6, 0, 0, bytes(300), le=65536)
    raw = cmd.encode()
    assert raw[4:7] == b"\x00\x01\x2c" and raw[-2:] == b"\x00\x00"
    with pytest.raises(EncodingError):
        cmd.encode(extended=False)
    assert CommandApdu.parse(raw) == cmd


@given(
    cla=byte,
    ins=byte,
    p1=byte,
    p2=byte,
    data=st.binary(max_size=600),
    le=st.none() | st.integers(1, 65536),
    extended=st.booleans(),
)
def test_encode_parse_round_trip(
    cla: int, ins: int, p1: int, p2: int, data: bytes, le: int | None, extended: bool
) -> None:
    cmd = CommandApdu(cla, ins, p1, p2, data, le)
    if not extended and cmd.needs_extended:
        with pytest.raises(EncodingError):
            cmd.encode(extended=False)
        return
    assert CommandApdu.parse(cmd.encode(extended=extended)) == cmd


@pytest.mark.parametrize(
    "raw",
    [
        "00A4",
        "00A4040005AABB",
        "00A40400020102030405",
        "00A404000001",
        "00A40400000002010203",
        "00A4040000000001",
    ],
)
def test_parse_rejects_inconsistent_lengths(raw: str) -> None:
    with pytest.raises(EncodingError):
        CommandApdu.parse(bytes.fromhex(raw))


def test_invalid_fields_are_refused() -> None:
    with pytest.raises(EncodingError):
        CommandApdu(0x100, 0)
    with pytest.raises(EncodingError):
        CommandApdu(0, 0, le=65537)
    with pytest.raises(EncodingError):
        CommandApdu(0, 0, data=bytes(65536))
    with pytest.raises(EncodingError):
        ResponseApdu.parse(b"\x90")


@given(data=st.binary(max_size=300), sw=st.integers(0, 0xFFFF))
def test_response_round_trip(data: bytes, sw: int) -> None:
    resp = ResponseApdu.parse(data + sw.to_bytes(2, "big"))
    assert (resp.data, resp.sw, resp.sw1, resp.sw2) == (data, sw, sw >> 8, sw & 0xFF)
    assert resp.ok == (sw == 0x9000)
    assert resp.encode() == data + sw.to_bytes(2, "big")


# --------------------------------------------------------------------------- status words
@given(x=st.integers(0, 15))
def test_63cx_is_pin_incorrect_with_remaining(x: int) -> None:
    with pytest.raises(PinIncorrect) as info:
        raise_for_status(0x63C0 | x)
    assert info.value.remaining == x


@pytest.mark.parametrize(
    ("sw", "error"),
    [
        (0x6983, PinLocked),
        (0x6982, SecurityStatusNotSatisfied),
        (0x6988, SecureChannelError),
        (0x6987, SecureChannelError),
    ],
)
def test_typed_status_words(sw: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        raise_for_status(sw)


@given(sw=st.integers(0, 0xFFFF))
def test_every_failing_status_word_raises(sw: int) -> None:
    err = error_for_status(sw)
    if sw == 0x9000:
        assert err is None
        raise_for_status(sw)
        return
    assert err is not None
    if isinstance(err, ApduError):
        assert err.sw == sw
        assert f"{sw:04X}" in str(err)


def test_status_word_descriptions() -> None:
    assert StatusWord.describe(0x6A82) == "file not found"
    assert "12 bytes remaining" in StatusWord.describe(0x610C)
    assert "3 tries" in StatusWord.describe(0x63C3)
    assert StatusWord.describe(0x1234) == "unknown status"


# --------------------------------------------------------------------------- pipeline
@pytest.fixture
def card() -> TestCard:
    return TestCard()


def test_select_and_errors(card: TestCard) -> None:
    with ApduConnection(InProcessConnection(card)) as conn:
        assert conn.execute(CommandApdu(0, 0xA4, 4, 0, TEST_AID)) == b"ebank-test"
        with pytest.raises(ApduError) as info:
            conn.execute(CommandApdu(0, 0xA4, 4, 0, b"\x01\x02\x03\x04\x05"))
        assert info.value.sw == 0x6A82
        with pytest.raises(PinIncorrect) as pin:
            conn.execute(CommandApdu(0, INS_STATUS, 0x63, 0xC2))
        assert pin.value.remaining == 2
        assert conn.transmit(CommandApdu(0, 0x77)).sw == 0x6D00


@given(size=st.integers(0, 1100), le=st.none() | st.integers(1, 256))
def test_chaining_and_get_response_deliver_everything(size: int, le: int | None) -> None:
    card = TestCard()
    data = bytes(i % 251 for i in range(size))
    conn = ApduConnection(InProcessConnection(card))
    assert conn.execute(CommandApdu(0, INS_ECHO, 0, 0, data, le)) == data
    # what went over the wire: chained blocks of <= 255 bytes, CLA bit 0x10 on all but the last
    sent = [CommandApdu.parse(raw) for raw in card.log]
    echo = [c for c in sent if c.ins == INS_ECHO]
    assert b"".join(c.data for c in echo) == data
    assert all(len(c.data) <= 255 for c in echo)
    assert [c.cla & 0x10 for c in echo] == [0x10] * (len(echo) - 1) + [0]
    assert all(c.le is None for c in echo[:-1])
    # every GET RESPONSE came after the last block
    assert all(c.ins == 0xC0 for c in sent[len(echo) :])


def test_extended_length_sends_one_apdu(card: TestCard) -> None:
    conn = ApduConnection(InProcessConnection(card), extended_length=True)
    data = bytes(range(256)) * 3
    assert conn.execute(CommandApdu(0, INS_ECHO, 0, 0, data, le=65536)) == data
    assert len(card.log) == 1 and card.log[0][4] == 0  # extended Lc marker


def test_6cxx_is_resent_with_the_exact_le(card: TestCard) -> None:
    conn = ApduConnection(InProcessConnection(card))
    assert conn.execute(CommandApdu(0, INS_EXACT, 40, 0, le=256)) == bytes(range(40))
    assert [raw[-1] for raw in card.log] == [0x00, 40]


def test_chain_aborts_on_an_error_status() -> None:
    class Refuse(TestCard):
        def process_apdu(self, apdu: bytes) -> bytes:
            self.log.append(apdu)
            return b"\x6a\x80"

    card = Refuse()
    conn = ApduConnection(InProcessConnection(card))
    resp = conn.transmit(CommandApdu(0, INS_ECHO, 0, 0, bytes(600)))
    assert resp.sw == 0x6A80 and len(card.log) == 1


def test_endless_61xx_is_an_error() -> None:
    class Endless(TestCard):
        def process_apdu(self, apdu: bytes) -> bytes:
            return b"\x00\x61\x01"

    conn = ApduConnection(InProcessConnection(Endless()))
    with pytest.raises(ApduError):
        conn.execute(CommandApdu(0, 1, 0, 0))


# --------------------------------------------------------------------------- redaction
@given(pin=st.binary(min_size=4, max_size=16))
def test_pin_data_never_reaches_the_log(pin: bytes) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("ebank_auth.usbkey.apdu")
    handler = Keep(logging.DEBUG)
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        conn = ApduConnection(InProcessConnection(TestCard()))
        conn.transmit(CommandApdu(0, 0x20, 0, 0x81, pin))  # VERIFY
        conn.transmit(CommandApdu(0x84, INS_ECHO, 0, 0, pin, sensitive=True))  # secure channel
        conn.transmit(CommandApdu(0, INS_ECHO, 0, 0, b"public"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    text = "\n".join(r.getMessage() for r in records)
    assert pin.hex().upper() not in text
    assert f"<redacted {len(pin)} bytes>" in text
    assert b"public".hex().upper() in text  # ordinary traffic is logged in full
