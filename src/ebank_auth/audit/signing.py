"""Keys that sign audit checkpoints and the log head: HMAC-SM3 or SM2.

A signer produces signatures; a verifier checks them.  :class:`HmacSm3Key` is
both (symmetric key).  For SM2 the writer holds :class:`Sm2AuditSigner` (private
key) and auditors need only :class:`Sm2AuditVerifier` (public key).
"""

from __future__ import annotations

import hmac
from typing import Protocol

from ebank_auth.crypto import sm2, sm3
from ebank_auth.errors import ConfigurationError, CryptoError

__all__ = [
    "MIN_HMAC_KEY_BYTES",
    "AuditSigner",
    "AuditVerifier",
    "HmacSm3Key",
    "Sm2AuditSigner",
    "Sm2AuditVerifier",
]

MIN_HMAC_KEY_BYTES = 16
_UID = sm2.DEFAULT_UID


class AuditVerifier(Protocol):
    """Checks signatures made by the matching signer."""

    @property
    def alg(self) -> str: ...  # "hmac-sm3" or "sm2"

    @property
    def key_id(self) -> str: ...  # 16 hex digits naming the key (not secret)

    def verify(self, data: bytes, signature: bytes) -> bool: ...


class AuditSigner(AuditVerifier, Protocol):
    """Signs checkpoints and heads (and can check its own signatures)."""

    def sign(self, data: bytes) -> bytes: ...


class HmacSm3Key:
    """HMAC-SM3 with a secret key of at least 16 bytes (32 recommended)."""

    alg = "hmac-sm3"

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) < MIN_HMAC_KEY_BYTES:
            raise ConfigurationError(
                f"audit HMAC key must be at least {MIN_HMAC_KEY_BYTES} random bytes"
            )
        self._key = bytes(key)
        self.key_id = sm3.digest(b"ebank-auth audit key id\x00" + self._key)[:8].hex()

    def sign(self, data: bytes) -> bytes:
        out: bytes = sm3.hmac(self._key, data)
        return out

    def verify(self, data: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(self.sign(data), bytes(signature))

    def __repr__(self) -> str:  # never show the key
        return f"HmacSm3Key(key_id={self.key_id!r})"


def _sm2_key_id(pub: sm2.SM2PublicKey) -> str:
    return sm3.digest(pub.to_bytes())[:8].hex()


class Sm2AuditVerifier:
    """Verifies SM2 signatures (distinguishing ID ``sm2.DEFAULT_UID``)."""

    alg = "sm2"

    def __init__(self, public_key: sm2.SM2PublicKey) -> None:
        self.public_key = public_key
        self.key_id = _sm2_key_id(public_key)

    def verify(self, data: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(bytes(signature), data, uid=_UID)
        except CryptoError:
            return False
        return True


class Sm2AuditSigner(Sm2AuditVerifier):
    """Signs with an SM2 private key."""

    def __init__(self, private_key: sm2.SM2PrivateKey) -> None:
        super().__init__(private_key.public_key())
        self._private_key = private_key

    def sign(self, data: bytes) -> bytes:
        sig: bytes = self._private_key.sign(data, uid=_UID)
        return sig

    def __repr__(self) -> str:
        return f"Sm2AuditSigner(key_id={self.key_id!r})"
