"""Strict BER-TLV: round trip and refusal of every non-canonical form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebank_auth.errors import EncodingError
from ebank_auth.usbkey import tlv

tags = st.sampled_from([0x81, 0x82, 0x90, 0x9E, 0xC1, 0xD8, 0x01])
items = st.lists(st.tuples(tags, st.binary(max_size=600)), max_size=6)


@given(items)
def test_round_trip(pairs: list[tuple[int, bytes]]) -> None:
    assert tlv.parse(tlv.build(pairs)) == pairs


@given(st.binary(max_size=64))
def test_parse_never_raises_anything_but_encoding_error(data: bytes) -> None:
    try:
        parsed = tlv.parse(data)
    except EncodingError:
        return
    assert tlv.build(parsed) == data  # anything accepted is canonical


@pytest.mark.parametrize(
    "data",
    [
        b"\xd1",  # length missing
        b"\xd1\x05ab",  # value runs past the end
        b"\xd1\x80",  # indefinite length
        b"\xd1\x81\x05abcde",  # non-minimal 81 form
        b"\xd1\x82\x00\x05abcde",  # non-minimal 82 form
        b"\xd1\x83\x00\x00\x01a",  # 3-byte length form
        b"\x1f\x01\x01a",  # multi-byte tag
        b"\xe1\x00",  # constructed tag
        b"\x00\x00",  # tag 0
    ],
)
def test_malformed_refused(data: bytes) -> None:
    with pytest.raises(EncodingError):
        tlv.parse(data)


def test_limits() -> None:
    with pytest.raises(EncodingError):
        tlv.parse(tlv.encode_item(0xD1, bytes(100)), max_value=99)
    with pytest.raises(EncodingError):
        tlv.parse(bytes(10), max_total=9)
    with pytest.raises(EncodingError):
        tlv.parse(b"\xd1\x00" * 40)
    with pytest.raises(EncodingError):
        tlv.encode_item(0xD1, bytes(70000))


def test_parse_map_rules() -> None:
    data = tlv.build([(0xD1, b"a"), (0xD2, b"b")])
    assert tlv.parse_map(data, allowed=[0xD1, 0xD2], required=[0xD1]) == {0xD1: b"a", 0xD2: b"b"}
    with pytest.raises(EncodingError, match="unexpected"):
        tlv.parse_map(data, allowed=[0xD1])
    with pytest.raises(EncodingError, match="missing"):
        tlv.parse_map(data, allowed=[0xD1, 0xD2, 0xD3], required=[0xD3])
    with pytest.raises(EncodingError, match="duplicate"):
        tlv.parse_map(data + tlv.build([(0xD1, b"x")]), allowed=[0xD1, 0xD2])
