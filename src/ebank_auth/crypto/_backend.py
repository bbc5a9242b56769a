"""Backend selection for the crypto core: which code does SM2, SM3 and SM4.

``EBANK_AUTH_CRYPTO_BACKEND`` chooses: ``auto`` (default: OpenSSL libcrypto for SM2
and ``cryptography`` for SM3/SM4 when they work, pure Python otherwise), ``openssl``
(insist; :class:`~ebank_auth.errors.BackendUnavailable` if it cannot be had) or
``pure`` (pure Python for SM2, SM3 and SM4).  RSA always goes through ``cryptography``.

``EBANK_AUTH_LIBCRYPTO`` names the libcrypto to load for SM2.  When it is set and that
library cannot be used, SM2 operations raise ``BackendUnavailable`` instead of quietly
falling back to pure Python (unless ``EBANK_AUTH_CRYPTO_BACKEND=pure`` asks for that).

The pure-Python SM2 code is not constant-time: the first signature it makes in a
process logs a WARNING on the ``ebank_auth.crypto`` logger.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from ebank_auth.errors import BackendUnavailable, ConfigurationError

ENV_VAR = "EBANK_AUTH_CRYPTO_BACKEND"
LIBCRYPTO_ENV_VAR = "EBANK_AUTH_LIBCRYPTO"
_CHOICES = ("auto", "openssl", "pure")

log = logging.getLogger("ebank_auth.crypto")


class SM2Backend(Protocol):
    """What an SM2 implementation offers the key classes in :mod:`ebank_auth.crypto.sm2`.

    Key handles are opaque to callers (a tuple for ``pure``, an ``EVP_PKEY*`` for
    ``openssl``).  ``check``/``check_digest`` return a bool; the key classes turn
    False into ``errors.InvalidSignature``.
    """

    @property
    def name(self) -> str: ...

    @property
    def constant_time(self) -> bool: ...

    def load_private(self, d: int, x: int, y: int) -> Any: ...

    def load_public(self, x: int, y: int) -> Any: ...

    def public_point(self, d: int) -> tuple[int, int]: ...

    def sign(self, handle: Any, data: bytes, uid: bytes) -> bytes: ...

    def check(self, handle: Any, sig: bytes, data: bytes, uid: bytes) -> bool: ...

    def sign_digest(self, handle: Any, e: bytes) -> bytes: ...

    def check_digest(self, handle: Any, sig: bytes, e: bytes) -> bool: ...

    def encrypt(self, handle: Any, data: bytes) -> bytes: ...

    def decrypt(self, handle: Any, der: bytes) -> bytes | None: ...

    def mul_g(self, k: int) -> tuple[int, int]: ...

    # Raw point operations for two-party SM2 (:mod:`ebank_auth.crypto.sm2_2p`).  Points are
    # affine ``(x, y)`` the caller has validated with ``point_valid``; None is the point at
    # infinity.  ``point_mul`` is the one to use with a secret scalar (libcrypto runs it as a
    # constant-time ladder); ``point_mul_add`` computes ``a*G + b*point`` and is for public
    # scalars only (verification), as libcrypto's double multiplication is not constant-time.

    def point_mul(self, k: int, point: tuple[int, int]) -> tuple[int, int] | None: ...

    def point_mul_add(self, a: int, b: int, point: tuple[int, int]) -> tuple[int, int] | None: ...

    def point_add(self, p1: tuple[int, int], p2: tuple[int, int]) -> tuple[int, int] | None: ...

    def point_negate(self, point: tuple[int, int]) -> tuple[int, int]: ...

    def point_valid(self, x: int, y: int) -> bool:
        """On the curve, coordinates in [0, p), not infinity, in the order-n group."""
        ...


_lock = threading.Lock()
_openssl: SM2Backend | None = None
_openssl_reason: str | None = None
_warned_pure_signing = False


def requested() -> str:
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in _CHOICES:
        raise ConfigurationError(
            f"{ENV_VAR}={value!r} is not one of {', '.join(_CHOICES)}: fix or unset it"
        )
    return value


def openssl_sm2() -> tuple[SM2Backend | None, str]:
    """The libcrypto SM2 backend (or None) and a description / reason."""
    global _openssl, _openssl_reason
    with _lock:
        if _openssl_reason is None:
            from ebank_auth.crypto.backends import openssl_sm2 as mod

            _openssl, _openssl_reason = mod.load()
        return _openssl, _openssl_reason


def sm2_backend(name: str | None = None) -> SM2Backend:
    """Return the SM2 backend for ``name`` (None: as configured)."""
    from ebank_auth.crypto.backends.pure_sm2_backend import PURE

    choice = name or requested()
    if choice not in _CHOICES:
        raise ConfigurationError(f"unknown crypto backend {choice!r}: use auto, openssl or pure")
    if choice == "pure":
        return PURE
    backend, reason = openssl_sm2()
    if backend is not None:
        return backend
    forced = os.environ.get(LIBCRYPTO_ENV_VAR, "")
    if forced:
        raise BackendUnavailable(
            f"{LIBCRYPTO_ENV_VAR}={forced} cannot be used for SM2 ({reason}): point it at an "
            f"OpenSSL 3 libcrypto with SM2, unset it to search the system, or set "
            f"{ENV_VAR}=pure to use the slower pure-Python code"
        )
    if choice == "openssl":
        raise BackendUnavailable(
            f"the OpenSSL SM2 backend is unavailable ({reason}): install OpenSSL 3 "
            f"(libcrypto.so.3), or set {ENV_VAR}=pure or auto"
        )
    return PURE


def available_sm2_backends() -> tuple[str, ...]:
    backend, _ = openssl_sm2()
    return ("openssl", "pure") if backend is not None else ("pure",)


def note_signing(backend: SM2Backend) -> None:
    """Called before every SM2 signature: warns once per process about non-constant-time code."""
    global _warned_pure_signing
    if backend.constant_time or _warned_pure_signing:
        return
    _warned_pure_signing = True
    log.warning(
        "signing with the pure-Python SM2 code, which is not constant-time (its timing can "
        "leak the key): install OpenSSL 3 with SM2 for production signing keys"
    )


@functools.cache
def _cryptography_offers(primitive: str) -> bool:
    try:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        if primitive == "sm3":
            hashes.Hash(hashes.SM3()).finalize()
        else:
            Cipher(algorithms.SM4(b"\x00" * 16), modes.ECB()).encryptor().update(b"\x00" * 16)
    except Exception:
        return False
    return True


def use_cryptography(primitive: str) -> bool:
    """True when ``primitive`` ("sm3" or "sm4") should run in ``cryptography``.

    ``openssl`` insists: raises BackendUnavailable when the ``cryptography`` build lacks it.
    """
    choice = requested()
    if choice == "pure":
        return False
    offered = _cryptography_offers(primitive)
    if not offered and choice == "openssl":
        raise BackendUnavailable(
            f"the installed cryptography package has no {primitive.upper()}: upgrade it "
            f"(pip install -U cryptography) or set {ENV_VAR}=auto"
        )
    return offered


@dataclass(frozen=True)
class BackendInfo:
    """Which implementation serves each primitive in this process."""

    requested: str
    sm2: str
    sm3: str
    sm4: str
    rsa: str
    available_sm2: tuple[str, ...]
    details: dict[str, str] = field(default_factory=dict)

    @property
    def active(self) -> str:
        return self.sm2


def backend_info() -> BackendInfo:
    import cryptography

    req = requested()
    ossl, reason = openssl_sm2()
    return BackendInfo(
        requested=req,
        sm2=sm2_backend().name,
        sm3="cryptography" if use_cryptography("sm3") else "pure",
        sm4="cryptography" if use_cryptography("sm4") else "pure",
        rsa=f"cryptography {cryptography.__version__}",
        available_sm2=available_sm2_backends(),
        details={"openssl": reason if ossl is None else f"available: {reason}"},
    )
