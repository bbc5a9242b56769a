"""DER and PEM input handling for certificates, CRLs, CSRs and CMS (public).

Every parser runs :func:`decode` first (PEM armour, size limit, one well-formed TLV
tree) and then parses inside :func:`parsing`, which turns any asn1crypto error into
:class:`~ebank_auth.errors.EncodingError`.  ``check_der`` walks the TLV structure once
without recursion, so garbage, truncated or deeply nested input fails fast instead of
raising a dependency's ``ValueError`` or a ``RecursionError``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from ebank_auth.errors import EbankAuthError, EncodingError

__all__ = [
    "MAX_CERT_SIZE",
    "MAX_CMS_SIZE",
    "MAX_CRL_SIZE",
    "MAX_DEPTH",
    "PARSE_ERRORS",
    "check_der",
    "decode",
    "der_or_pem",
    "is_pem",
    "parsing",
    "pem_blocks",
    "to_pem",
]

MAX_CERT_SIZE = 64 * 1024
MAX_CRL_SIZE = 16 * 1024 * 1024
MAX_CMS_SIZE = 64 * 1024 * 1024
MAX_DEPTH = 32

PARSE_ERRORS: Final = (ValueError, TypeError, KeyError, AttributeError, OverflowError, IndexError)
"""What asn1crypto raises on malformed input (mapped to EncodingError by :func:`parsing`)."""

_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)\r?\n?-----END \1-----", re.DOTALL)


def check_der(
    data: bytes,
    *,
    what: str,
    max_size: int,
    max_depth: int = MAX_DEPTH,
    allow_indefinite: bool = False,
) -> None:
    """Raise EncodingError unless ``data`` is exactly one well-formed TLV tree.

    Checks definite lengths fit their parent, nesting stays within
    ``max_depth`` and nothing trails the outer element.  Indefinite lengths
    (BER, as some CMS producers emit) are accepted only with
    ``allow_indefinite``.
    """
    n = len(data)
    if n == 0:
        raise EncodingError(f"{what}: empty input")
    if n > max_size:
        raise EncodingError(f"{what}: input of {n} bytes exceeds the {max_size}-byte limit")
    # ends of the enclosing constructed values; -1 marks an indefinite-length parent
    stack: list[int] = []
    end = n  # end of the innermost open container (n at top level, -1 if indefinite)
    pos = 0
    seen_top = False
    while True:
        if pos == end:
            if not stack:
                return
            end = stack.pop()
            continue
        if end < 0:
            if pos + 1 < n and data[pos] == 0 and data[pos + 1] == 0:
                pos += 2
                end = stack.pop()
                if end == n and not stack:
                    if pos != n:
                        raise EncodingError(f"{what}: trailing data after the DER structure")
                    return
                continue
            limit = n
        else:
            limit = end
        if not stack and seen_top:
            raise EncodingError(f"{what}: trailing data after the DER structure")
        if pos >= limit:
            raise EncodingError(f"{what}: truncated DER")
        tag = data[pos]
        pos += 1
        if tag & 0x1F == 0x1F:  # high tag number form: at most 4 more bytes
            for count in range(5):
                if pos >= limit:
                    raise EncodingError(f"{what}: truncated DER tag")
                b = data[pos]
                pos += 1
                if not b & 0x80:
                    break
                if count == 4:
                    raise EncodingError(f"{what}: DER tag number too large")
        if pos >= limit:
            raise EncodingError(f"{what}: truncated DER length")
        length = data[pos]
        pos += 1
        if length & 0x80:
            nbytes = length & 0x7F
            if nbytes == 0:  # indefinite length
                if not (allow_indefinite and tag & 0x20):
                    raise EncodingError(f"{what}: indefinite length is not allowed in DER")
                if len(stack) >= max_depth:
                    raise EncodingError(f"{what}: nesting deeper than {max_depth} levels")
                seen_top = True
                stack.append(end)
                end = -1
                continue
            if nbytes > 4:
                raise EncodingError(f"{what}: DER length field too large")
            if pos + nbytes > limit:
                raise EncodingError(f"{what}: truncated DER length")
            length = int.from_bytes(data[pos : pos + nbytes], "big")
            pos += nbytes
        if pos + length > limit:
            raise EncodingError(f"{what}: truncated DER (a length runs past its container)")
        seen_top = True
        if tag & 0x20:
            if len(stack) >= max_depth:
                raise EncodingError(f"{what}: nesting deeper than {max_depth} levels")
            stack.append(end)
            end = pos + length
        else:
            pos += length


def pem_blocks(data: bytes, labels: tuple[str, ...]) -> list[bytes]:
    """Decode every PEM block whose label is in ``labels`` (in file order)."""
    out: list[bytes] = []
    for match in _PEM_RE.finditer(data):
        label = match.group(1).decode("ascii")
        if label not in labels:
            continue
        body = b"".join(
            line.strip()
            for line in match.group(2).splitlines()
            if line.strip() and b":" not in line  # skip RFC 1421 headers
        )
        try:
            out.append(base64.b64decode(body, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise EncodingError(f"PEM {label} block is not valid base64") from exc
    return out


def is_pem(data: bytes) -> bool:
    """True when ``data`` looks like PEM text rather than DER."""
    return data.lstrip()[:11] == b"-----BEGIN "


def to_pem(der: bytes, label: str) -> bytes:
    """Armour ``der`` as a PEM block with 64-column base64 lines."""
    b64 = base64.b64encode(der)
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return (
        f"-----BEGIN {label}-----\n".encode()
        + b"\n".join(lines)
        + f"\n-----END {label}-----\n".encode()
    )


def der_or_pem(data: bytes, labels: tuple[str, ...], what: str) -> bytes:
    """Return the DER of the first matching PEM block, or ``data`` itself if DER."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EncodingError(f"{what}: expected bytes")
    data = bytes(data)
    if is_pem(data):
        blocks = pem_blocks(data, labels)
        if not blocks:
            raise EncodingError(f"{what}: no PEM block labelled {' or '.join(labels)}")
        return blocks[0]
    return data


def decode(
    data: bytes,
    *,
    labels: tuple[str, ...],
    what: str,
    max_size: int,
    allow_indefinite: bool = False,
) -> bytes:
    """The checked DER of ``data`` (DER, or the first PEM block labelled one of ``labels``).

    Raises EncodingError when the input is not bytes, has no such PEM block, is larger
    than ``max_size`` or is not exactly one well-formed TLV tree.
    """
    der = der_or_pem(data, labels, what)
    check_der(der, what=what, max_size=max_size, allow_indefinite=allow_indefinite)
    return der


@contextmanager
def parsing(what: str) -> Iterator[None]:
    """Map a parser's dependency errors to ``EncodingError("<what> is malformed: ...")``."""
    try:
        yield
    except EbankAuthError:
        raise
    except PARSE_ERRORS as exc:
        raise EncodingError(
            f"{what} is malformed ({exc}): check that the file is the right one and complete"
        ) from None
