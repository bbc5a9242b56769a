"""Names of the signature and public-key algorithms (a leaf module: no key code).

:mod:`ebank_auth.crypto.keys` re-exports both enums; they live here so that the key
classes in :mod:`~ebank_auth.crypto.sm2` and :mod:`~ebank_auth.crypto.rsa` can
implement :meth:`~ebank_auth.crypto.keys.SigningKey.sign_with` without an import cycle.
"""

from __future__ import annotations

from enum import Enum

from ebank_auth.crypto import oids

__all__ = ["KeyAlgorithm", "SignatureAlgorithm"]


class SignatureAlgorithm(str, Enum):
    """Signature algorithms, valued by their dotted OID."""

    SM2_SM3 = oids.SM2_WITH_SM3
    SHA256_RSA = oids.SHA256_WITH_RSA
    SM3_RSA = oids.SM3_WITH_RSA
    ECDSA_SHA256 = oids.ECDSA_WITH_SHA256


class KeyAlgorithm(str, Enum):
    """Public-key algorithm of a key, certificate or request."""

    SM2 = "sm2"
    RSA = "rsa"
    EC_P256 = "ec-p256"
