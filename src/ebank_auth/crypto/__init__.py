"""Cryptography for ebank-auth: SM2, SM3, SM4 and RSA behind one small API.

``from ebank_auth.crypto import sm2, sm3, sm4, rsa`` — see ``docs/crypto-api.md``.
SM2 uses the system OpenSSL 3 libcrypto (through cffi) when it offers SM2, otherwise
pure Python; ``EBANK_AUTH_CRYPTO_BACKEND=auto|openssl|pure`` overrides, and
:func:`backend_info` reports what is in use.
"""

from __future__ import annotations

import os

from ebank_auth.crypto import rsa, sm2, sm3, sm4
from ebank_auth.crypto._backend import BackendInfo, backend_info

__all__ = ["BackendInfo", "backend_info", "random_bytes", "rsa", "sm2", "sm3", "sm4"]


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the operating system's CSPRNG."""
    if n < 0:
        raise ValueError("n must be >= 0")
    return os.urandom(n)
