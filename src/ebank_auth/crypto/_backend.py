"""Backend selection for the crypto core.

``EBANK_AUTH_CRYPTO_BACKEND`` chooses: ``auto`` (default: OpenSSL libcrypto for SM2
and ``cryptography`` for SM3/SM4 when they work, pure Python otherwise), ``openssl``
(insist; :class:`~ebank_auth.errors.BackendUnavailable` if it cannot be had) or
``pure`` (pure Python for SM2, SM3 and SM4).  RSA always goes through ``cryptography``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

from ebank_auth.errors import BackendUnavailable, ConfigurationError

ENV_VAR = "EBANK_AUTH_CRYPTO_BACKEND"
_CHOICES = ("auto", "openssl", "pure")

_lock = threading.Lock()
_openssl: Any = None
_openssl_reason: str | None = None


def requested() -> str:
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in _CHOICES:
        raise ConfigurationError(
            f"{ENV_VAR}={value!r} is not one of {', '.join(_CHOICES)}: fix or unset it"
        )
    return value


def openssl_sm2() -> tuple[Any, str]:
    """The libcrypto SM2 backend (or None) and a description / reason."""
    global _openssl, _openssl_reason
    with _lock:
        if _openssl_reason is None:
            from ebank_auth.crypto.backends import openssl_sm2 as mod

            _openssl, _openssl_reason = mod.load()
        return _openssl, _openssl_reason


def sm2_backend(name: str | None = None) -> Any:
    """Return the SM2 backend object for ``name`` (None: as configured)."""
    from ebank_auth.crypto.backends.pure_sm2_backend import PURE

    choice = name or requested()
    if choice not in _CHOICES:
        raise ConfigurationError(f"unknown crypto backend {choice!r}: use auto, openssl or pure")
    if choice == "pure":
        return PURE
    backend, reason = openssl_sm2()
    if backend is not None:
        return backend
    if choice == "openssl":
        raise BackendUnavailable(f"the openssl SM2 backend is unavailable ({reason}); use 'pure'")
    return PURE


def available_sm2_backends() -> tuple[str, ...]:
    backend, _ = openssl_sm2()
    return ("openssl", "pure") if backend is not None else ("pure",)


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
    from ebank_auth.crypto import sm3, sm4

    req = requested()
    ossl, reason = openssl_sm2()
    sm2_name = sm2_backend().name
    import cryptography

    return BackendInfo(
        requested=req,
        sm2=sm2_name,
        sm3=sm3.implementation(),
        sm4=sm4.implementation(),
        rsa=f"cryptography {cryptography.__version__}",
        available_sm2=available_sm2_backends(),
        details={"openssl": reason if ossl is None else f"available: {reason}"},
    )
