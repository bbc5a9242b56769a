"""PEM armour (RFC 7468): strict enough to refuse garbage, lenient on line lengths."""

from __future__ import annotations

import base64
import binascii
import re

from ebank_auth.errors import EncodingError

_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END ([A-Z0-9 ]+)-----", re.DOTALL
)
MAX_PEM = 1 << 20


def is_pem(data: bytes) -> bool:
    return b"-----BEGIN " in bytes(data[:4096])


def decode_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """All (label, der) blocks in ``data``, in order."""
    data = bytes(data)
    if len(data) > MAX_PEM:
        raise EncodingError("PEM input is larger than 1 MiB: is this the right file?")
    blocks = []
    for m in _BLOCK.finditer(data):
        label, body, end = m.group(1), m.group(2), m.group(3)
        if label != end:
            raise EncodingError(f"PEM block BEGIN {label.decode()} ends with END {end.decode()}")
        lines = [ln.strip() for ln in body.splitlines()]
        if any(b":" in ln for ln in lines):
            raise EncodingError(
                "PEM block has headers (legacy encrypted PEM): convert it to PKCS#8 with "
                "'openssl pkcs8 -topk8'"
            )
        try:
            der = base64.b64decode(b"".join(lines), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EncodingError(f"PEM block {label.decode()} has invalid base64") from exc
        blocks.append((label.decode("ascii"), der))
    return blocks


def decode(data: bytes, labels: tuple[str, ...]) -> tuple[str, bytes]:
    """The first block whose label is in ``labels``."""
    blocks = decode_blocks(data)
    for label, der in blocks:
        if label in labels:
            return label, der
    found = ", ".join(lbl for lbl, _ in blocks) or "none"
    raise EncodingError(f"no PEM block of type {' or '.join(labels)} found (found: {found})")


def encode(label: str, der: bytes) -> bytes:
    b64 = base64.b64encode(bytes(der))
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    head = f"-----BEGIN {label}-----\n".encode()
    tail = f"-----END {label}-----\n".encode()
    return head + b"\n".join(lines) + b"\n" + tail
