"""Signing keys: one protocol for every key that can sign a certificate, CSR, CRL, CMS or checkpoint.

A :class:`SigningKey` is anything with a public key that signs a whole message with a
named :class:`SignatureAlgorithm` — a software SM2 or RSA key, a key held on a USB Key
(``ebank_auth.usbkey.TokenSigningKey``), a two-party SM2 key, a PKCS#11 key.  The PKI and
audit code program against this protocol, never against a concrete key class, so a key
whose private half never enters this process signs exactly like a software key.

Contract of :meth:`SigningKey.sign_with`:

* ``data`` is the whole message (the key hashes it itself);
* SM2 with SM3 uses the default distinguishing ID ``1234567812345678`` (GM/T 0009/0010/0015),
  i.e. the signer computes ``e = SM3(Z_A || data)``;
* the result is the signature value as it goes into a certificate or CMS: a DER
  ``SEQUENCE { r, s }`` for SM2 and ECDSA, the raw PKCS#1 v1.5 block for RSA;
* an algorithm the key cannot produce raises ``errors.UnsupportedAlgorithm``.

The software keys :class:`~ebank_auth.crypto.sm2.SM2PrivateKey`,
:class:`~ebank_auth.crypto.rsa.RSAPrivateKey` and :class:`P256PrivateKey` (an adapter
around a ``cryptography`` P-256 key) implement it.  This module also holds what the
PKI needs around keys: loading and encoding public keys (SubjectPublicKeyInfo),
loading private keys of any supported kind, and :func:`verify_data`.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Protocol, Union, runtime_checkable

from asn1crypto import keys as a_keys
from cryptography.exceptions import InvalidSignature as _CgInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as _CgUnsupported
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ebank_auth.crypto import _pkcs8, der, oids, rsa, sm2
from ebank_auth.crypto.algorithms import KeyAlgorithm, SignatureAlgorithm
from ebank_auth.errors import (
    EbankAuthError,
    EncodingError,
    InvalidKey,
    InvalidSignature,
    UnsupportedAlgorithm,
)

__all__ = [
    "KeyAlgorithm",
    "P256PrivateKey",
    "PublicKey",
    "SignatureAlgorithm",
    "SigningKey",
    "SoftwareKey",
    "as_public_key",
    "default_signature_algorithm",
    "key_algorithm",
    "key_identifier",
    "load_private_key",
    "load_public_key",
    "private_key_to_pem",
    "public_key_equal",
    "public_key_to_spki",
    "validate_public_key",
    "verify_data",
]

PublicKey = Union["sm2.SM2PublicKey", "rsa.RSAPublicKey", ec.EllipticCurvePublicKey]
"""A public key as ebank_auth (SM2, RSA) or ``cryptography`` (ECDSA P-256) objects."""


@runtime_checkable
class SigningKey(Protocol):
    """A key that can sign: software, on a token, two-party, or behind PKCS#11."""

    def public_key(self) -> PublicKey:
        """The public half (SM2, RSA or P-256)."""
        ...

    def sign_with(self, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
        """Sign the whole message ``data`` with ``algorithm`` (see the module contract)."""
        ...


class P256PrivateKey:
    """An ECDSA P-256 signing key: a :class:`SigningKey` around a ``cryptography`` key.

    For tests and foreign CAs; e-banking keys are SM2 or RSA.
    """

    __slots__ = ("_key",)

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise InvalidKey("P256PrivateKey needs a cryptography EC private key on P-256")
        self._key = key

    @classmethod
    def generate(cls) -> P256PrivateKey:
        """A fresh P-256 key."""
        return cls(ec.generate_private_key(ec.SECP256R1()))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def sign_with(self, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
        if algorithm is not SignatureAlgorithm.ECDSA_SHA256:
            raise UnsupportedAlgorithm(
                f"a P-256 key signs with ECDSA_SHA256 only, not {algorithm.name}"
            )
        return self._key.sign(bytes(data), ec.ECDSA(hashes.SHA256()))

    def to_pem(self, password: bytes | str | None = None) -> bytes:
        """PKCS#8 PEM (encrypted when ``password`` is given)."""
        pw = password.encode("utf-8") if isinstance(password, str) else password
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(pw) if pw else serialization.NoEncryption()
        )
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc
        )

    @property
    def cryptography_key(self) -> ec.EllipticCurvePrivateKey:
        return self._key

    def __repr__(self) -> str:
        return "P256PrivateKey(<secret>)"


SoftwareKey = Union["sm2.SM2PrivateKey", "rsa.RSAPrivateKey", P256PrivateKey]
"""A private key held in this process, as :func:`load_private_key` returns it."""


def as_public_key(key: PublicKey | SigningKey) -> PublicKey:
    """``key`` itself when it is a public key, else its public half."""
    return key.public_key() if isinstance(key, SigningKey) else key


def key_algorithm(key: PublicKey) -> KeyAlgorithm:
    """Which algorithm a public key belongs to (UnsupportedAlgorithm otherwise)."""
    if isinstance(key, sm2.SM2PublicKey):
        return KeyAlgorithm.SM2
    if isinstance(key, rsa.RSAPublicKey):
        return KeyAlgorithm.RSA
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return KeyAlgorithm.EC_P256
    raise UnsupportedAlgorithm(
        f"unsupported key type {type(key).__name__}: use an SM2, RSA or ECDSA P-256 key"
    )


def default_signature_algorithm(key: SigningKey | PublicKey) -> SignatureAlgorithm:
    """SM2 keys sign with SM2-SM3, RSA with sha256WithRSA, P-256 with ECDSA-SHA256."""
    kind = key_algorithm(as_public_key(key))
    if kind is KeyAlgorithm.SM2:
        return SignatureAlgorithm.SM2_SM3
    if kind is KeyAlgorithm.RSA:
        return SignatureAlgorithm.SHA256_RSA
    return SignatureAlgorithm.ECDSA_SHA256


def verify_data(
    public_key: PublicKey, alg: SignatureAlgorithm, signature: bytes, data: bytes
) -> None:
    """Verify ``signature`` over ``data``; raises errors.InvalidSignature on mismatch."""
    kind = key_algorithm(public_key)
    if alg is SignatureAlgorithm.SM2_SM3:
        if not isinstance(public_key, sm2.SM2PublicKey):
            raise InvalidSignature(f"SM2-with-SM3 signature but the signer key is {kind.value}")
        public_key.verify(signature, data, uid=sm2.DEFAULT_UID)
        return
    if alg in (SignatureAlgorithm.SHA256_RSA, SignatureAlgorithm.SM3_RSA):
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise InvalidSignature(f"RSA signature but the signer key is {kind.value}")
        h = rsa.Hash.SHA256 if alg is SignatureAlgorithm.SHA256_RSA else rsa.Hash.SM3
        public_key.verify(signature, data, hash=h, padding=rsa.Padding.PKCS1V15)
        return
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise InvalidSignature(f"ECDSA signature but the signer key is {kind.value}")
    try:
        public_key.verify(bytes(signature), bytes(data), ec.ECDSA(hashes.SHA256()))
    except _CgInvalidSignature:
        raise InvalidSignature() from None


def load_public_key(spki_der: bytes) -> PublicKey:
    """Load a SubjectPublicKeyInfo: SM2 and RSA as ebank_auth keys, P-256 via cryptography.

    Cached (the same SPKI bytes give the same key object).  Raises InvalidKey for a
    malformed or invalid key, UnsupportedAlgorithm for other algorithms or curves.
    """
    return _load_public_key_cached(bytes(spki_der))


@functools.lru_cache(maxsize=512)
def _load_public_key_cached(spki_der: bytes) -> PublicKey:
    # Public keys are immutable; caching by their exact DER saves rebuilding the
    # backend key handle (≈0.4 ms for SM2) for every certificate of a busy signer.
    return _load_public_key(spki_der)


# SEQUENCE { SEQUENCE { id-ecPublicKey, sm2p256v1 }, BIT STRING 04 ... }: the usual SM2 SPKI
_SM2_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d03420004")


def _load_public_key(spki_der: bytes) -> PublicKey:
    if len(spki_der) == 91 and spki_der.startswith(_SM2_SPKI_PREFIX):
        # the common case needs no ASN.1 parse to dispatch (chain validation loads
        # every certificate's key, the leaf's included)
        return sm2.load_der_public_key(spki_der)
    try:
        info = a_keys.PublicKeyInfo.load(spki_der)
        alg_oid = info["algorithm"]["algorithm"].dotted
        params = info["algorithm"]["parameters"]
        curve = params.chosen.dotted if alg_oid == oids.EC_PUBLIC_KEY else None
    except der.PARSE_ERRORS as exc:
        raise InvalidKey("the public key (SubjectPublicKeyInfo) is malformed") from exc
    if alg_oid == oids.RSA_ENCRYPTION:
        return rsa.load_der_public_key(spki_der)
    if alg_oid == oids.EC_PUBLIC_KEY and curve == oids.SM2_CURVE:
        return sm2.load_der_public_key(spki_der)
    if alg_oid == oids.SM2_CURVE:  # some older SM2 certificates use the curve OID here
        try:
            point = bytes(info["public_key"].contents[1:])
        except der.PARSE_ERRORS as exc:
            raise InvalidKey("the SM2 public key is malformed") from exc
        return sm2.public_key_from_bytes(point)
    if alg_oid == oids.EC_PUBLIC_KEY and curve == oids.P256_CURVE:
        try:
            key = serialization.load_der_public_key(spki_der)
        except (ValueError, _CgUnsupported) as exc:
            raise InvalidKey("the P-256 public key is not a valid curve point") from exc
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key
    raise UnsupportedAlgorithm(
        f"public key algorithm {alg_oid}"
        + (f" on curve {curve}" if curve else "")
        + " is not supported: use SM2, RSA or ECDSA P-256"
    )


def public_key_to_spki(key: PublicKey) -> bytes:
    """SubjectPublicKeyInfo DER of a public key."""
    if isinstance(key, (sm2.SM2PublicKey, rsa.RSAPublicKey)):
        return key.to_der()
    key_algorithm(key)  # refuses other curves and types
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_identifier(spki_der: bytes) -> bytes:
    """Key identifier: leftmost 160 bits of SHA-256 of the subjectPublicKey bits (RFC 7093)."""
    with der.parsing("public key"):
        info = a_keys.PublicKeyInfo.load(spki_der)
        return hashlib.sha256(bytes(info["public_key"].contents[1:])).digest()[:20]


def public_key_equal(a: PublicKey, b: PublicKey) -> bool:
    """True when both keys have the same SubjectPublicKeyInfo."""
    return public_key_to_spki(a) == public_key_to_spki(b)


def validate_public_key(key: PublicKey) -> None:
    """Check a public key is usable (PS-4): SM2 point on curve and of order n, RSA ≥ 2048.

    Raises errors.InvalidKey.
    """
    if isinstance(key, sm2.SM2PublicKey):
        sm2.validate_public_key(key)
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise InvalidKey(f"RSA key of {key.key_size} bits is too short: use 2048 bits or more")
    else:
        key_algorithm(key)  # P-256 keys are validated by cryptography when loaded


_MAX_KEY_FILE = 64 * 1024
_PRIVATE_KEY_PEM_LABELS = (
    "PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
    "EC PRIVATE KEY",
    "SM2 PRIVATE KEY",
    "RSA PRIVATE KEY",
)


def load_private_key(data: bytes, password: bytes | None = None) -> SoftwareKey:
    """Load a PEM or DER PKCS#8 (or SEC1/PKCS#1) private key: SM2, RSA or P-256.

    An encrypted PKCS#8 key is decrypted once, by ebank_auth's PBES2 code, whose work
    is capped (at most ``_pkcs8.MAX_PBKDF2_ITERATIONS`` PBKDF2 iterations, refused
    before deriving); the plain key is then tried as SM2, RSA and P-256.  Raises
    errors.InvalidKey when the key cannot be read (wrong password, unsupported type,
    malformed, above the work cap), with the reason in the message.
    """
    if not isinstance(data, (bytes, bytearray)) or len(data) > _MAX_KEY_FILE:
        raise InvalidKey("a private key file must be bytes of at most 64 KiB")
    if password is not None and not isinstance(password, (bytes, bytearray)):
        raise InvalidKey("the password must be bytes")
    data = bytes(data)
    try:
        body = der.der_or_pem(data, _PRIVATE_KEY_PEM_LABELS, "private key")
        if _pkcs8.is_encrypted(body):
            if password is None:
                raise InvalidKey("the private key is encrypted: supply its password")
            if not password:
                raise InvalidKey("password must not be empty")
            plain = _pkcs8.decrypt(body, bytes(password))
        elif password is not None:
            raise InvalidKey("a password was given but the private key is not encrypted")
        else:
            plain = body
    except InvalidKey:
        raise
    except EbankAuthError as exc:
        raise InvalidKey(f"could not load the private key: {exc.message}") from exc
    try:
        return sm2.load_der_private_key(plain)
    except EbankAuthError:
        pass
    try:
        return rsa.load_der_private_key(plain)
    except EbankAuthError:
        pass
    try:
        ckey = serialization.load_der_private_key(plain, password=None)
    except (ValueError, TypeError, IndexError, _CgUnsupported) as exc:
        raise InvalidKey(
            "could not load the private key: it is malformed or of an unsupported type "
            "(use SM2, RSA ≥ 2048 or P-256)"
        ) from exc
    if isinstance(ckey, ec.EllipticCurvePrivateKey) and isinstance(ckey.curve, ec.SECP256R1):
        return P256PrivateKey(ckey)
    raise InvalidKey("unsupported private key type: use SM2, RSA ≥ 2048 or P-256")


def private_key_to_pem(key: SoftwareKey, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM of a software key (encrypted when ``password`` is given)."""
    if not isinstance(key, (sm2.SM2PrivateKey, rsa.RSAPrivateKey, P256PrivateKey)):
        raise EncodingError(
            f"{type(key).__name__} cannot be exported: only software keys have a PEM form"
        )
    return key.to_pem(password=password)
