"""Signature algorithms and key handling shared by certificates, CRLs, CSRs and CMS.

Supported (sign and verify):

* SM2 with SM3, distinguishing ID ``sm2.DEFAULT_UID`` (``1.2.156.10197.1.501``,
  parameters absent) — GM/T 0015 / GM/T 0010.
* sha256WithRSAEncryption and sm3WithRSAEncryption (PKCS#1 v1.5), RSA ≥ 2048.
* ecdsa-with-SHA256 on P-256 (read/verify; signing works with a
  ``cryptography`` EC private key, for tests and foreign CAs).
"""

from __future__ import annotations

import functools
import hashlib
from enum import Enum
from typing import Union

from asn1crypto import algos as a_algos
from asn1crypto import core as a_core
from asn1crypto import keys as a_keys
from cryptography.exceptions import InvalidSignature as _CgInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as _CgUnsupported
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ebank_auth.crypto import rsa, sm2
from ebank_auth.errors import (
    EncodingError,
    InvalidKey,
    InvalidSignature,
    UnsupportedAlgorithm,
)

from . import _oids

__all__ = [
    "KeyAlgorithm",
    "PrivateKey",
    "PublicKey",
    "SignatureAlgorithm",
    "algorithm_identifier",
    "key_algorithm",
    "load_public_key",
    "public_key_to_spki",
    "sign_data",
    "verify_data",
]

PublicKey = Union["sm2.SM2PublicKey", "rsa.RSAPublicKey", ec.EllipticCurvePublicKey]
"""A public key as ebank_auth (SM2, RSA) or ``cryptography`` (ECDSA P-256) objects."""
PrivateKey = Union["sm2.SM2PrivateKey", "rsa.RSAPrivateKey", ec.EllipticCurvePrivateKey]
"""A signing key: SM2, RSA (ebank_auth objects) or a ``cryptography`` P-256 key."""


class SignatureAlgorithm(str, Enum):
    """Signature algorithms by dotted OID."""

    SM2_SM3 = _oids.SM2_WITH_SM3
    SHA256_RSA = _oids.SHA256_WITH_RSA
    SM3_RSA = _oids.SM3_WITH_RSA
    ECDSA_SHA256 = _oids.ECDSA_WITH_SHA256


class KeyAlgorithm(str, Enum):
    """Public-key algorithm of a certificate or request."""

    SM2 = "sm2"
    RSA = "rsa"
    EC_P256 = "ec-p256"


def key_algorithm(key: PublicKey | PrivateKey) -> KeyAlgorithm:
    """Which algorithm a key object belongs to (UnsupportedAlgorithm otherwise)."""
    if isinstance(key, (sm2.SM2PublicKey, sm2.SM2PrivateKey)):
        return KeyAlgorithm.SM2
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return KeyAlgorithm.RSA
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)) and isinstance(
        key.curve, ec.SECP256R1
    ):
        return KeyAlgorithm.EC_P256
    raise UnsupportedAlgorithm(
        f"unsupported key type {type(key).__name__}: use an SM2, RSA or ECDSA P-256 key"
    )


def algorithm_identifier(alg: SignatureAlgorithm) -> a_algos.SignedDigestAlgorithm:
    """AlgorithmIdentifier for ``alg``: NULL parameters for RSA, absent otherwise."""
    value: dict[str, object] = {"algorithm": alg.value}
    if alg in (SignatureAlgorithm.SHA256_RSA, SignatureAlgorithm.SM3_RSA):
        value["parameters"] = a_core.Null()
    return a_algos.SignedDigestAlgorithm(value)


def default_signature_algorithm(key: PrivateKey) -> SignatureAlgorithm:
    """SM2 keys sign with SM2-SM3, RSA with sha256WithRSA, P-256 with ECDSA-SHA256."""
    kind = key_algorithm(key)
    if kind is KeyAlgorithm.SM2:
        return SignatureAlgorithm.SM2_SM3
    if kind is KeyAlgorithm.RSA:
        return SignatureAlgorithm.SHA256_RSA
    return SignatureAlgorithm.ECDSA_SHA256


def sign_data(
    key: PrivateKey, data: bytes, alg: SignatureAlgorithm | None = None
) -> tuple[SignatureAlgorithm, bytes]:
    """Sign ``data`` with ``key``; returns the algorithm used and the signature."""
    alg = alg or default_signature_algorithm(key)
    kind = key_algorithm(key)
    if alg is SignatureAlgorithm.SM2_SM3 and kind is KeyAlgorithm.SM2:
        assert isinstance(key, sm2.SM2PrivateKey)
        return alg, key.sign(data, uid=sm2.DEFAULT_UID)
    if alg in (SignatureAlgorithm.SHA256_RSA, SignatureAlgorithm.SM3_RSA) and (
        kind is KeyAlgorithm.RSA
    ):
        assert isinstance(key, rsa.RSAPrivateKey)
        h = rsa.Hash.SHA256 if alg is SignatureAlgorithm.SHA256_RSA else rsa.Hash.SM3
        return alg, key.sign(data, hash=h, padding=rsa.Padding.PKCS1V15)
    if alg is SignatureAlgorithm.ECDSA_SHA256 and kind is KeyAlgorithm.EC_P256:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return alg, key.sign(data, ec.ECDSA(hashes.SHA256()))
    raise UnsupportedAlgorithm(f"a {kind.value} key cannot sign with {alg.name}")


def parse_signature_algorithm(ai: a_algos.SignedDigestAlgorithm) -> SignatureAlgorithm:
    """Map an AlgorithmIdentifier to a SignatureAlgorithm, checking its parameters."""
    try:
        oid = ai["algorithm"].dotted
        params = ai["parameters"]
    except (ValueError, TypeError, KeyError) as exc:
        raise EncodingError("malformed signature AlgorithmIdentifier") from exc
    if oid == _oids.SM2_SIGN_LEGACY:
        oid = _oids.SM2_WITH_SM3
    try:
        alg = SignatureAlgorithm(oid)
    except ValueError:
        raise UnsupportedAlgorithm(
            f"signature algorithm {oid} is not supported: use SM2-with-SM3, "
            "sha256WithRSA, sm3WithRSA or ecdsa-with-SHA256"
        ) from None
    if not params_absent_or_null(params):
        raise EncodingError(f"{alg.name} AlgorithmIdentifier parameters must be absent or NULL")
    return alg


def params_absent_or_null(params: object) -> bool:
    """True for absent parameters or an ASN.1 NULL (whatever class asn1crypto chose)."""
    if isinstance(params, a_core.Void):
        return True
    return isinstance(params, a_core.Asn1Value) and bytes(params.dump()) == b"\x05\x00"


def verify_data(
    public_key: PublicKey, alg: SignatureAlgorithm, signature: bytes, data: bytes
) -> None:
    """Verify ``signature`` over ``data``; raises errors.InvalidSignature on mismatch."""
    kind = key_algorithm(public_key)
    if alg is SignatureAlgorithm.SM2_SM3:
        if kind is not KeyAlgorithm.SM2:
            raise InvalidSignature(f"SM2-with-SM3 signature but the signer key is {kind.value}")
        assert isinstance(public_key, sm2.SM2PublicKey)
        public_key.verify(signature, data, uid=sm2.DEFAULT_UID)
        return
    if alg in (SignatureAlgorithm.SHA256_RSA, SignatureAlgorithm.SM3_RSA):
        if kind is not KeyAlgorithm.RSA:
            raise InvalidSignature(f"RSA signature but the signer key is {kind.value}")
        assert isinstance(public_key, rsa.RSAPublicKey)
        h = rsa.Hash.SHA256 if alg is SignatureAlgorithm.SHA256_RSA else rsa.Hash.SM3
        public_key.verify(signature, data, hash=h, padding=rsa.Padding.PKCS1V15)
        return
    if kind is not KeyAlgorithm.EC_P256:
        raise InvalidSignature(f"ECDSA signature but the signer key is {kind.value}")
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    try:
        public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except _CgInvalidSignature:
        raise InvalidSignature() from None


def load_public_key(spki_der: bytes) -> PublicKey:
    """Load a SubjectPublicKeyInfo (cached: the same SPKI bytes give the same key object).

    See :func:`_load_public_key` for the rules.
    """
    return _load_public_key_cached(bytes(spki_der))


@functools.lru_cache(maxsize=512)
def _load_public_key_cached(spki_der: bytes) -> PublicKey:
    # Public keys are immutable; caching by their exact DER saves rebuilding the
    # backend key handle (≈0.4 ms for SM2) for every certificate of a busy signer.
    return _load_public_key(spki_der)


def _load_public_key(spki_der: bytes) -> PublicKey:
    """Load a SubjectPublicKeyInfo: SM2 and RSA as ebank_auth keys, P-256 via cryptography.

    Raises InvalidKey for a malformed or invalid key, UnsupportedAlgorithm for
    other algorithms/curves.
    """
    try:
        info = a_keys.PublicKeyInfo.load(spki_der)
        alg_oid = info["algorithm"]["algorithm"].dotted
        params = info["algorithm"]["parameters"]
        curve = params.chosen.dotted if alg_oid == _oids.EC_PUBLIC_KEY else None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidKey("malformed SubjectPublicKeyInfo") from exc
    if alg_oid == _oids.RSA_ENCRYPTION:
        return rsa.load_der_public_key(spki_der)
    if alg_oid == _oids.EC_PUBLIC_KEY and curve == _oids.SM2_CURVE:
        return sm2.load_der_public_key(spki_der)
    if alg_oid == _oids.SM2_CURVE:  # some older SM2 certificates use the curve OID here
        try:
            point = bytes(info["public_key"].contents[1:])
        except (ValueError, TypeError) as exc:
            raise InvalidKey("malformed SM2 public key") from exc
        return sm2.public_key_from_bytes(point)
    if alg_oid == _oids.EC_PUBLIC_KEY and curve == _oids.P256_CURVE:
        try:
            key = serialization.load_der_public_key(spki_der)
        except (ValueError, _CgUnsupported) as exc:
            raise InvalidKey("invalid P-256 public key") from exc
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key
    raise UnsupportedAlgorithm(
        f"public key algorithm {alg_oid}"
        + (f" on curve {curve}" if curve else "")
        + " is not supported: use SM2, RSA or ECDSA P-256"
    )


def public_key_to_spki(key: PublicKey | PrivateKey) -> bytes:
    """SubjectPublicKeyInfo DER of a public key (or of a private key's public half)."""
    kind = key_algorithm(key)
    if isinstance(key, (sm2.SM2PrivateKey, rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        pub: PublicKey = key.public_key()
    else:
        pub = key
    if kind in (KeyAlgorithm.SM2, KeyAlgorithm.RSA):
        assert isinstance(pub, (sm2.SM2PublicKey, rsa.RSAPublicKey))
        return pub.to_der()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    return pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_identifier(spki_der: bytes) -> bytes:
    """Key identifier: leftmost 160 bits of SHA-256 of the subjectPublicKey bits (RFC 7093)."""
    info = a_keys.PublicKeyInfo.load(spki_der)
    return hashlib.sha256(bytes(info["public_key"].contents[1:])).digest()[:20]


def public_key_equal(a: PublicKey, b: PublicKey) -> bool:
    """True when both keys have the same SubjectPublicKeyInfo."""
    return public_key_to_spki(a) == public_key_to_spki(b)


def validate_public_key(key: PublicKey) -> None:
    """Check a public key is usable (PS-4): SM2 point on curve and of order n, RSA ≥ 2048.

    Raises errors.InvalidKey.
    """
    kind = key_algorithm(key)
    if kind is KeyAlgorithm.SM2:
        assert isinstance(key, sm2.SM2PublicKey)
        sm2.validate_public_key(key)
    elif kind is KeyAlgorithm.RSA:
        assert isinstance(key, rsa.RSAPublicKey)
        if key.key_size < 2048:
            raise InvalidKey(f"RSA key of {key.key_size} bits is too short: use 2048 bits or more")
    # P-256 keys are validated by cryptography when loaded
