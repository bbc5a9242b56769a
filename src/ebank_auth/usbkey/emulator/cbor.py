"""A small, strict CBOR codec (RFC 8949) in the CTAP2 canonical form, for the token's firmware.

The software token's CTAP2 applet (:mod:`ebank_auth.usbkey.emulator.ctap2_applet`) is device
code: it must not import python-fido2 (a host library), and its parser faces whatever a host
sends.  So it has its own codec, limited to what CTAP2 uses and strict about everything else:

* **types**: unsigned and negative integers (64-bit), byte strings, UTF-8 text strings, arrays,
  maps, ``false``/``true``/``null``.  Floats, tags, ``undefined``, other simple values and
  indefinite lengths are refused (CTAP2 §8 "Message Encoding": no tags, definite lengths only).
* **canonical**: :func:`dumps` writes the CTAP2 canonical form — shortest argument encodings and
  map keys ordered by their encoded bytes (the same order as CTAP2's "major type, then length,
  then bytes" rule for shortest encodings).  :func:`loads` *refuses* any other form: a longer
  than necessary length or integer, keys out of order, a duplicate key.  One value has exactly
  one encoding, so a host cannot smuggle two readings of a request past the token.
* **bounded**: nesting depth at most :data:`MAX_DEPTH`, lengths checked against the bytes that
  are really there before anything is allocated, no trailing bytes.

Why not the ``cbor2`` package: it accepts non-canonical input, indefinite lengths and tags
(with decoder hooks for dates, decimals, …) — more attack surface than a token's parser should
have — and a third-party package would sit outside the token's measured firmware
(:func:`ebank_auth.usbkey.emulator.factory.firmware_hash`).  This module is a few hundred lines,
measured with the rest of the firmware and tested against python-fido2's encoder
(tests/usbkey/fido).
"""

from __future__ import annotations

import itertools
from typing import Final, TypeAlias

from ebank_auth.errors import EncodingError

__all__ = ["MAX_DEPTH", "CborError", "CborValue", "dumps", "loads"]

#: the deepest nesting :func:`loads` accepts (CTAP2 requests nest at most 4 levels)
MAX_DEPTH: Final = 8

CborValue: TypeAlias = (
    "int | bytes | str | bool | list[CborValue] | dict[CborValue, CborValue] | None"
)
"""What :func:`dumps` writes and :func:`loads` returns (maps are ``dict``, arrays ``list``)."""

_UINT, _NINT, _BYTES, _TEXT, _ARRAY, _MAP, _TAG, _SIMPLE = range(8)
_FALSE, _TRUE, _NULL = 20, 21, 22
_MAX_UINT: Final = (1 << 64) - 1


class CborError(EncodingError):
    """The bytes are not canonical CBOR of the kinds CTAP2 uses (the message says which rule)."""


def _head(major: int, arg: int) -> bytes:
    if arg < 24:
        return bytes((major << 5 | arg,))
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if arg < 1 << (8 * size):
            return bytes((major << 5 | info,)) + arg.to_bytes(size, "big")
    raise CborError(f"CBOR integer argument {arg} does not fit in 64 bits")


def _dump(value: object, out: bytearray) -> None:
    if value is None:
        out.append(_SIMPLE << 5 | _NULL)
    elif isinstance(value, bool):
        out.append(_SIMPLE << 5 | (_TRUE if value else _FALSE))
    elif isinstance(value, int):
        if value >= 0:
            out += _head(_UINT, value)
        else:
            out += _head(_NINT, -1 - value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        out += _head(_BYTES, len(raw)) + raw
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out += _head(_TEXT, len(raw)) + raw
    elif isinstance(value, (list, tuple)):
        out += _head(_ARRAY, len(value))
        for item in value:
            _dump(item, out)
    elif isinstance(value, dict):
        items = sorted((dumps(k), dumps(v)) for k, v in value.items())
        for (a, _), (b, _) in itertools.pairwise(items):
            if a == b:
                raise CborError("a CBOR map cannot have two equal keys")
        out += _head(_MAP, len(items))
        for k, v in items:
            out += k + v
    else:
        raise CborError(f"cannot encode {type(value).__name__} in CTAP2 CBOR")


def dumps(value: object) -> bytes:
    """The canonical CTAP2 CBOR encoding of ``value`` (see the module's list of types)."""
    out = bytearray()
    _dump(value, out)
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise CborError("CBOR data ends in the middle of an item")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def head(self) -> tuple[int, int, int]:
        """(major type, additional info, argument), refusing non-shortest arguments."""
        first = self.take(1)[0]
        major, info = first >> 5, first & 0x1F
        if info < 24:
            return major, info, info
        if info > 27:
            raise CborError("CBOR indefinite lengths and reserved values are not allowed")
        size = 1 << (info - 24)
        arg = int.from_bytes(self.take(size), "big")
        if major != _SIMPLE and (arg < 24 if size == 1 else arg < 1 << (4 * size)):
            raise CborError("CBOR length or integer is not in its shortest form")
        return major, info, arg

    def item(self, depth: int) -> CborValue:
        if depth > MAX_DEPTH:
            raise CborError(f"CBOR nesting deeper than {MAX_DEPTH}")
        start = self.pos
        major, info, arg = self.head()
        if major == _UINT:
            return arg
        if major == _NINT:
            return -1 - arg
        if major == _BYTES:
            return self.take(arg)
        if major == _TEXT:
            try:
                return self.take(arg).decode("utf-8")
            except UnicodeDecodeError:
                raise CborError("CBOR text string is not valid UTF-8") from None
        if major == _ARRAY:
            if arg > len(self.data) - self.pos:  # each item takes at least one byte
                raise CborError("CBOR array is longer than the data")
            return [self.item(depth + 1) for _ in range(arg)]
        if major == _MAP:
            if arg > (len(self.data) - self.pos) // 2:
                raise CborError("CBOR map is longer than the data")
            out: dict[CborValue, CborValue] = {}
            previous = b""
            for _ in range(arg):
                key_start = self.pos
                key = self.item(depth + 1)
                encoded = self.data[key_start : self.pos]
                if isinstance(key, bool) or not isinstance(key, (int, str)):
                    raise CborError("CBOR map keys must be integers or text strings")
                if previous and encoded <= previous:
                    raise CborError(
                        "CBOR map keys are not in canonical order (or a key is repeated)"
                    )
                previous = encoded
                out[key] = self.item(depth + 1)
            return out
        if major == _TAG:
            raise CborError("CBOR tags are not allowed in CTAP2 messages")
        if info == _FALSE:
            return False
        if info == _TRUE:
            return True
        if info == _NULL:
            return None
        self.pos = start
        raise CborError("CBOR floats, undefined and other simple values are not allowed")


def loads(data: bytes) -> CborValue:
    """Decode exactly one canonical CBOR item that fills ``data``; :class:`CborError` otherwise."""
    reader = _Reader(bytes(data))
    value = reader.item(1)
    if reader.pos != len(reader.data):
        raise CborError("trailing bytes after the CBOR item")
    return value
