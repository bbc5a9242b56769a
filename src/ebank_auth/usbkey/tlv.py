"""Strict BER-TLV for the token application's data fields.

Only the subset the protocol uses is accepted, and only in one spelling:

* tags are one byte, primitive, not ``xx11111`` (no multi-byte tags);
* lengths are definite and minimal: ``00``-``7F``, ``81 80``-``81 FF``,
  ``82 0100``-``82 FFFF`` (``80`` indefinite, ``81 05`` and longer forms refused);
* every value fits in the remaining input, nothing trails the last item;
* callers give an upper bound on the total size and on each value.

Anything else raises :class:`ebank_auth.errors.EncodingError`.  The token maps
that to status word ``6A80`` and changes no state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from ebank_auth.errors import EncodingError

__all__ = [
    "MAX_TLV_TOTAL",
    "MAX_TLV_VALUE",
    "build",
    "encode_item",
    "parse",
    "parse_map",
]

MAX_TLV_TOTAL: Final = 8192  # default bound on a whole TLV list (bytes)
MAX_TLV_VALUE: Final = 4096  # default bound on one value (bytes)
_MAX_ITEMS: Final = 32


def _check_tag(tag: int) -> None:
    if not 0 < tag <= 0xFF or tag & 0x1F == 0x1F or tag & 0x20:
        raise EncodingError(f"TLV tag {tag:#x} is not a one-byte primitive tag")


def encode_item(tag: int, value: bytes) -> bytes:
    """One TLV item ``tag ‖ length ‖ value`` with the minimal length form."""
    _check_tag(tag)
    n = len(value)
    if n < 0x80:
        head = bytes((tag, n))
    elif n <= 0xFF:
        head = bytes((tag, 0x81, n))
    elif n <= 0xFFFF:
        head = bytes((tag, 0x82, n >> 8, n & 0xFF))
    else:
        raise EncodingError(f"TLV value of {n} bytes is too long (at most 65535)")
    return head + bytes(value)


def build(items: Iterable[tuple[int, bytes]] | Mapping[int, bytes]) -> bytes:
    """Concatenate TLV items, in the given order."""
    pairs = items.items() if isinstance(items, Mapping) else items
    return b"".join(encode_item(tag, value) for tag, value in pairs)


def parse(
    data: bytes,
    *,
    max_total: int = MAX_TLV_TOTAL,
    max_value: int = MAX_TLV_VALUE,
    max_items: int = _MAX_ITEMS,
) -> list[tuple[int, bytes]]:
    """Parse a TLV list into ``[(tag, value), ...]`` in input order (strict)."""
    raw = bytes(data)
    if len(raw) > max_total:
        raise EncodingError(f"TLV data of {len(raw)} bytes exceeds the limit of {max_total}")
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(raw):
        if len(out) >= max_items:
            raise EncodingError(f"more than {max_items} TLV items")
        tag = raw[pos]
        try:
            _check_tag(tag)
        except EncodingError:
            raise EncodingError(f"TLV tag {tag:#04x} at offset {pos} is not allowed") from None
        pos += 1
        if pos >= len(raw):
            raise EncodingError("TLV truncated: length missing")
        first = raw[pos]
        pos += 1
        if first < 0x80:
            length = first
        elif first == 0x81:
            if pos + 1 > len(raw):
                raise EncodingError("TLV truncated inside the length")
            length = raw[pos]
            pos += 1
            if length < 0x80:
                raise EncodingError("TLV length not in minimal form")
        elif first == 0x82:
            if pos + 2 > len(raw):
                raise EncodingError("TLV truncated inside the length")
            length = (raw[pos] << 8) | raw[pos + 1]
            pos += 2
            if length <= 0xFF:
                raise EncodingError("TLV length not in minimal form")
        else:
            raise EncodingError(f"TLV length form {first:#04x} is not allowed")
        if length > max_value:
            raise EncodingError(f"TLV value of {length} bytes exceeds the limit of {max_value}")
        if pos + length > len(raw):
            raise EncodingError("TLV value runs past the end of the data")
        out.append((tag, raw[pos : pos + length]))
        pos += length
    return out


def parse_map(
    data: bytes,
    *,
    allowed: Iterable[int],
    required: Iterable[int] = (),
    max_total: int = MAX_TLV_TOTAL,
    max_value: int = MAX_TLV_VALUE,
) -> dict[int, bytes]:
    """Parse into ``{tag: value}``: unknown tags, duplicates and missing required tags refused."""
    allowed_set = frozenset(allowed)
    result: dict[int, bytes] = {}
    for tag, value in parse(data, max_total=max_total, max_value=max_value):
        if tag not in allowed_set:
            raise EncodingError(f"unexpected TLV tag {tag:#04x}")
        if tag in result:
            raise EncodingError(f"duplicate TLV tag {tag:#04x}")
        result[tag] = value
    missing = [t for t in required if t not in result]
    if missing:
        raise EncodingError("missing TLV tag(s) " + ", ".join(f"{t:#04x}" for t in missing))
    return result
