"""Keys that sign audit checkpoints and the log head: HMAC-SM3 or SM2.

A signer produces signatures; a verifier checks them.  :class:`HmacSm3Key` is
both (symmetric key).  For SM2 the writer holds :class:`Sm2AuditSigner` (any SM2
:class:`~ebank_auth.crypto.keys.SigningKey`: a software key, or one on a token or
HSM) and auditors need only :class:`Sm2AuditVerifier` (public key).

``verify`` raises :class:`~ebank_auth.errors.InvalidSignature`; it never returns
a verdict a caller could ignore.
"""

from __future__ import annotations

import hmac
from typing import Protocol

from ebank_auth.crypto import sm2, sm3
from ebank_auth.crypto.keys import SignatureAlgorithm, SigningKey
from ebank_auth.errors import ConfigurationError, CryptoError, InvalidSignature

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

    def verify(self, data: bytes, signature: bytes) -> None:
        """Return if ``signature`` is this key's over ``data``; raise InvalidSignature if not."""
        ...


class AuditSigner(AuditVerifier, Protocol):
    """Signs checkpoints and heads (and can check its own signatures)."""

    def sign(self, data: bytes) -> bytes: ...


class HmacSm3Key:
    """HMAC-SM3 with a secret key of at least 16 bytes (32 recommended)."""

    alg = "hmac-sm3"

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) < MIN_HMAC_KEY_BYTES:
            raise ConfigurationError(
                f"the audit HMAC key must be at least {MIN_HMAC_KEY_BYTES} random bytes "
                "(32 recommended): generate one with os.urandom(32)"
            )
        self._key = bytes(key)
        self.key_id = sm3.digest(b"ebank-auth audit key id\x00" + self._key)[:8].hex()

    def sign(self, data: bytes) -> bytes:
        out: bytes = sm3.hmac(self._key, data)
        return out

    def verify(self, data: bytes, signature: bytes) -> None:
        if not hmac.compare_digest(self.sign(data), bytes(signature)):
            raise InvalidSignature(
                "the audit HMAC does not match: the data was altered or another key made it"
            )

    def __repr__(self) -> str:  # never show the key
        return f"HmacSm3Key(key_id={self.key_id!r})"


def _sm2_key_id(pub: sm2.SM2PublicKey) -> str:
    return sm3.digest(pub.to_bytes())[:8].hex()


class Sm2AuditVerifier:
    """Verifies SM2 signatures (distinguishing ID ``sm2.DEFAULT_UID``)."""

    alg = "sm2"

    def __init__(self, public_key: sm2.SM2PublicKey) -> None:
        if not isinstance(public_key, sm2.SM2PublicKey):
            raise ConfigurationError("an SM2 audit key needs an SM2 public key")
        self.public_key = public_key
        self.key_id = _sm2_key_id(public_key)

    def verify(self, data: bytes, signature: bytes) -> None:
        try:
            self.public_key.verify(bytes(signature), data, uid=_UID)
        except CryptoError:
            raise InvalidSignature(
                "the audit signature does not verify: the data was altered or another key signed it"
            ) from None


class Sm2AuditSigner(Sm2AuditVerifier):
    """Signs with any SM2 :class:`~ebank_auth.crypto.keys.SigningKey` (software, token, HSM)."""

    def __init__(self, private_key: SigningKey) -> None:
        pub = private_key.public_key()
        if not isinstance(pub, sm2.SM2PublicKey):
            raise ConfigurationError(
                f"Sm2AuditSigner needs an SM2 key, not {type(pub).__name__}: "
                "use HmacSm3Key or an SM2 key"
            )
        super().__init__(pub)
        self._private_key = private_key

    def sign(self, data: bytes) -> bytes:
        return self._private_key.sign_with(SignatureAlgorithm.SM2_SM3, data)

    def __repr__(self) -> str:
        return f"Sm2AuditSigner(key_id={self.key_id!r})"
