"""SM3 hash (GB/T 32905), HMAC-SM3 and the GM/T 0003 key-derivation function.

Backed by ``cryptography`` (OpenSSL C code) when it offers SM3, pure Python otherwise
or when ``EBANK_AUTH_CRYPTO_BACKEND=pure``.
"""

from __future__ import annotations

import hmac as _stdlib_hmac
import struct
from typing import Any

from cryptography.hazmat.primitives import hashes as _hashes
from cryptography.hazmat.primitives import hmac as _c_hmac

from ebank_auth.crypto import _backend
from ebank_auth.crypto.backends.pure_sm3 import PureSM3
from ebank_auth.errors import CryptoError

__all__ = ["DIGEST_SIZE", "SM3", "digest", "hexdigest", "hmac", "implementation", "kdf"]

DIGEST_SIZE = 32
BLOCK_SIZE = 64


def _use_c() -> bool:
    return _backend.use_cryptography("sm3")


def implementation() -> str:
    """``"cryptography"`` or ``"pure"``: which code runs SM3 (see ``crypto._backend``)."""
    return "cryptography" if _use_c() else "pure"


class SM3:
    """Incremental SM3: ``h = SM3(); h.update(b); h.digest()``."""

    digest_size = DIGEST_SIZE
    block_size = BLOCK_SIZE
    name = "sm3"

    def __init__(self, data: bytes = b"", *, _impl: Any = None) -> None:
        if _impl is not None:
            self._h = _impl
        elif _use_c():
            self._h = _hashes.Hash(_hashes.SM3())
        else:
            self._h = PureSM3()
        if data:
            self.update(data)

    def update(self, data: bytes) -> None:
        self._h.update(bytes(data))

    def copy(self) -> SM3:
        return SM3(_impl=self._h.copy())

    def digest(self) -> bytes:
        h = self._h.copy()
        return bytes(h.finalize() if hasattr(h, "finalize") else h.digest())

    def hexdigest(self) -> str:
        return self.digest().hex()


def digest(data: bytes) -> bytes:
    """SM3 of ``data`` (32 bytes)."""
    if _use_c():
        h = _hashes.Hash(_hashes.SM3())
        h.update(bytes(data))
        return h.finalize()
    return PureSM3(bytes(data)).digest()


def hexdigest(data: bytes) -> str:
    return digest(data).hex()


def hmac(key: bytes, data: bytes) -> bytes:
    """HMAC-SM3 (RFC 2104 with SM3), 32 bytes."""
    if _use_c():
        h = _c_hmac.HMAC(bytes(key), _hashes.SM3())
        h.update(bytes(data))
        return h.finalize()
    digestmod: Any = PureSM3
    return _stdlib_hmac.new(bytes(key), bytes(data), digestmod).digest()


_KDF_MAX = 0xFFFFFFFF * DIGEST_SIZE


def kdf(z: bytes, length: int) -> bytes:
    """GM/T 0003 KDF: SM3(Z || ct) for ct = 1, 2, … (32-bit big-endian), cut to ``length`` bytes."""
    if length < 0 or length > _KDF_MAX:
        raise CryptoError(f"KDF length must be between 0 and {_KDF_MAX} bytes")
    z = bytes(z)
    out = bytearray()
    ct = 1
    while len(out) < length:
        out += digest(z + struct.pack(">I", ct))
        ct += 1
    return bytes(out[:length])
