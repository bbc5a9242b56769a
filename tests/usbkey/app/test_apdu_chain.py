"""Command chaining and GET RESPONSE, shared by the software token's applets (ISO 7816-4)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ebank_auth.usbkey.apdu import StatusWord
from ebank_auth.usbkey.emulator.apdu_chain import CommandChain, PendingResponse

H = b"\x80\x10\x00\x00"


@given(st.binary(max_size=600), st.lists(st.integers(1, 255), max_size=8))
def test_any_split_of_a_command_reassembles(data: bytes, cuts: list[int]) -> None:
    chain = CommandChain(600)
    parts, rest = [], data
    for n in cuts:
        parts.append(rest[:n])
        rest = rest[n:]
    for part in parts:
        assert chain.add(H, part, chaining=True) == StatusWord.SUCCESS
    assert chain.add(H, rest, chaining=False) == data
    assert not chain.open


def test_a_part_of_another_command_ends_the_chain() -> None:
    chain = CommandChain(100)
    chain.add(H, b"abc", chaining=True)
    assert chain.add(b"\x80\x20\x00\x00", b"x", chaining=False) == (
        StatusWord.LAST_COMMAND_OF_CHAIN_EXPECTED
    )
    assert not chain.open
    assert chain.add(H, b"new", chaining=False) == b"new"  # nothing of the old chain is run


def test_a_chain_longer_than_allowed_is_refused_and_dropped() -> None:
    chain = CommandChain(4)
    assert chain.add(H, b"abc", chaining=True) == StatusWord.SUCCESS
    assert chain.add(H, b"de", chaining=True) == StatusWord.WRONG_LENGTH
    assert chain.add(H, b"z", chaining=False) == b"z"
    assert CommandChain(4).add(H, b"abcde", chaining=False) == StatusWord.WRONG_LENGTH


@given(st.binary(max_size=2000), st.integers(1, 300))
def test_get_response_returns_exactly_the_rest(data: bytes, le: int) -> None:
    out = PendingResponse(256)
    got, sw = out.answer(data, StatusWord.SUCCESS, None)
    while sw != StatusWord.SUCCESS:
        assert sw & 0xFF00 == StatusWord.BYTES_REMAINING_FAMILY
        left = sw & 0xFF
        piece, sw = out.get_response(le)
        assert left == 0 or left == len(data) - len(got)
        got += piece
    assert got == data
    assert out.get_response(le) == (b"", StatusWord.CONDITIONS_NOT_SATISFIED)


def test_any_other_command_drops_the_rest() -> None:
    out = PendingResponse(256)
    out.answer(bytes(600), StatusWord.SUCCESS, None)
    out.clear()
    assert out.get_response(None) == (b"", StatusWord.CONDITIONS_NOT_SATISFIED)
