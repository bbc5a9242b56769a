"""RSA (≥ 2048 bits) signatures through ``cryptography``: PKCS#1 v1.5 and PSS, SHA-256 or SM3.

Keys below 2048 bits are refused everywhere (UK-2: JR/T 0068 requires RSA ≥ 2048).
"""

from __future__ import annotations

import enum
from typing import Any

from cryptography.exceptions import InvalidSignature as _CInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as _CUnsupported
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding as _padding
from cryptography.hazmat.primitives.asymmetric import rsa as _rsa

from ebank_auth.crypto import _pem, _pkcs8
from ebank_auth.crypto.algorithms import SignatureAlgorithm
from ebank_auth.errors import (
    DecryptionError,
    EncodingError,
    InvalidKey,
    InvalidSignature,
    UnsupportedAlgorithm,
)

__all__ = [
    "ALLOWED_SIZES",
    "MIN_BITS",
    "Hash",
    "Padding",
    "RSAPrivateKey",
    "RSAPublicKey",
    "generate_private_key",
    "load_der_private_key",
    "load_der_public_key",
    "load_pem_private_key",
    "load_pem_public_key",
]

MIN_BITS = 2048
MAX_BITS = 16384
ALLOWED_SIZES = (2048, 3072, 4096)


class Hash(enum.Enum):
    SHA256 = "sha256"
    SM3 = "sm3"


class Padding(enum.Enum):
    PKCS1V15 = "pkcs1v15"
    PSS = "pss"


def _hash(h: Hash | str) -> hashes.HashAlgorithm:
    try:
        h = Hash(h) if not isinstance(h, Hash) else h
    except ValueError as exc:
        raise UnsupportedAlgorithm(f"hash {h!r} is not supported: use sha256 or sm3") from exc
    return hashes.SHA256() if h is Hash.SHA256 else hashes.SM3()


def _pad(p: Padding | str, h: hashes.HashAlgorithm) -> _padding.AsymmetricPadding:
    try:
        p = Padding(p) if not isinstance(p, Padding) else p
    except ValueError as exc:
        raise UnsupportedAlgorithm(f"padding {p!r} is not supported: use pkcs1v15 or pss") from exc
    if p is Padding.PKCS1V15:
        return _padding.PKCS1v15()
    return _padding.PSS(mgf=_padding.MGF1(h), salt_length=h.digest_size)


def _check_size(bits: int) -> None:
    if bits < MIN_BITS:
        raise InvalidKey(f"RSA key of {bits} bits refused: at least {MIN_BITS} bits are required")
    if bits > MAX_BITS:
        raise InvalidKey(f"RSA key of {bits} bits is larger than {MAX_BITS}: refused")


class RSAPublicKey:
    __slots__ = ("_key",)

    def __init__(self, key: _rsa.RSAPublicKey) -> None:
        _check_size(key.key_size)
        self._key = key

    @property
    def key_size(self) -> int:
        return int(self._key.key_size)

    @property
    def public_numbers(self) -> tuple[int, int]:
        n = self._key.public_numbers()
        return n.n, n.e

    def verify(
        self,
        signature: bytes,
        data: bytes,
        hash: Hash | str = Hash.SHA256,
        padding: Padding | str = Padding.PKCS1V15,
    ) -> None:
        h = _hash(hash)
        try:
            self._key.verify(bytes(signature), bytes(data), _pad(padding, h), h)
        except _CInvalidSignature as exc:
            raise InvalidSignature() from exc
        except (TypeError, ValueError) as exc:
            raise InvalidSignature(f"RSA signature is malformed: {exc}") from exc

    def encrypt_oaep(self, data: bytes) -> bytes:
        return self._key.encrypt(bytes(data), _oaep())

    def to_der(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def to_pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RSAPublicKey) and self.public_numbers == other.public_numbers

    def __hash__(self) -> int:
        return hash(self.public_numbers)

    def __repr__(self) -> str:
        return f"RSAPublicKey({self.key_size} bits)"

    @property
    def cryptography_key(self) -> _rsa.RSAPublicKey:
        return self._key


def _oaep() -> _padding.OAEP:
    return _padding.OAEP(mgf=_padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class RSAPrivateKey:
    __slots__ = ("_key",)

    def __init__(self, key: _rsa.RSAPrivateKey) -> None:
        _check_size(key.key_size)
        self._key = key

    @property
    def key_size(self) -> int:
        return int(self._key.key_size)

    def public_key(self) -> RSAPublicKey:
        return RSAPublicKey(self._key.public_key())

    def sign(
        self,
        data: bytes,
        hash: Hash | str = Hash.SHA256,
        padding: Padding | str = Padding.PKCS1V15,
    ) -> bytes:
        h = _hash(hash)
        try:
            return self._key.sign(bytes(data), _pad(padding, h), h)
        except _CUnsupported as exc:  # pragma: no cover - depends on the OpenSSL build
            raise UnsupportedAlgorithm(str(exc)) from exc

    def sign_with(self, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
        """:class:`~ebank_auth.crypto.keys.SigningKey`: PKCS#1 v1.5 with SHA-256 or SM3."""
        if algorithm is SignatureAlgorithm.SHA256_RSA:
            return self.sign(data, hash=Hash.SHA256, padding=Padding.PKCS1V15)
        if algorithm is SignatureAlgorithm.SM3_RSA:
            return self.sign(data, hash=Hash.SM3, padding=Padding.PKCS1V15)
        raise UnsupportedAlgorithm(
            f"an RSA key signs with SHA256_RSA or SM3_RSA, not {algorithm.name}"
        )

    def decrypt_oaep(self, data: bytes) -> bytes:
        try:
            return self._key.decrypt(bytes(data), _oaep())
        except ValueError as exc:
            raise DecryptionError() from exc

    def to_der(self, password: bytes | str | None = None) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, _enc(password)
        )

    def to_pem(self, password: bytes | str | None = None) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, _enc(password)
        )

    def __repr__(self) -> str:
        return f"RSAPrivateKey(<secret>, {self.key_size} bits)"

    @property
    def cryptography_key(self) -> _rsa.RSAPrivateKey:
        return self._key


def _enc(password: bytes | str | None) -> serialization.KeySerializationEncryption:
    if password is None:
        return serialization.NoEncryption()
    pw = password.encode("utf-8") if isinstance(password, str) else bytes(password)
    if not pw:
        raise InvalidKey("password must not be empty")
    return serialization.BestAvailableEncryption(pw)


def generate_private_key(bits: int = 2048) -> RSAPrivateKey:
    """A new RSA key of 2048, 3072 or 4096 bits (public exponent 65537)."""
    if bits not in ALLOWED_SIZES:
        _check_size(bits)
        raise InvalidKey(f"RSA key size must be one of {ALLOWED_SIZES}")
    return RSAPrivateKey(_rsa.generate_private_key(public_exponent=65537, key_size=bits))


def _pw(password: bytes | str | None) -> bytes | None:
    if password is None:
        return None
    return password.encode("utf-8") if isinstance(password, str) else bytes(password)


def _load_private(loader: Any, data: bytes, password: bytes | str | None) -> RSAPrivateKey:
    try:
        key = loader(bytes(data), _pw(password))
    except TypeError as exc:
        msg = str(exc).lower()
        if "encrypted" in msg and "not" in msg:
            raise InvalidKey("a password was given but the private key is not encrypted") from exc
        raise InvalidKey("the private key is encrypted: supply its password") from exc
    except ValueError as exc:
        if password is not None and "password" in str(exc).lower():
            raise DecryptionError(
                "could not decrypt the private key: wrong password, or the file is corrupted"
            ) from exc
        raise EncodingError(f"RSA private key is not valid: {exc}") from exc
    except _CUnsupported as exc:
        raise UnsupportedAlgorithm(str(exc)) from exc
    if not isinstance(key, _rsa.RSAPrivateKey):
        raise InvalidKey("not an RSA private key: use the SM2 loaders for SM2 keys")
    return RSAPrivateKey(key)


def _load_public(loader: Any, data: bytes) -> RSAPublicKey:
    try:
        key = loader(bytes(data))
    except (ValueError, TypeError) as exc:
        raise EncodingError(f"RSA public key is not valid: {exc}") from exc
    except _CUnsupported as exc:
        raise InvalidKey(
            "not an RSA public key (unsupported key type): use the SM2 loaders"
        ) from exc
    if not isinstance(key, _rsa.RSAPublicKey):
        raise InvalidKey("not an RSA public key: use the SM2 loaders for SM2 keys")
    return RSAPublicKey(key)


def _decrypt_pkcs8(der: bytes, password: bytes | str | None) -> bytes:
    """Decrypt an EncryptedPrivateKeyInfo with our capped PBES2 code (one derivation)."""
    if password is None:
        raise InvalidKey("the private key is encrypted: supply its password")
    pw = _pw(password)
    if not pw:
        raise InvalidKey("password must not be empty")
    return _pkcs8.decrypt(der, pw)


def load_pem_private_key(data: bytes, password: bytes | str | None = None) -> RSAPrivateKey:
    """PKCS#8 (encrypted or not) or PKCS#1 PEM.

    Encrypted PKCS#8 is decrypted by ebank_auth's PBES2 code, whose PBKDF2 work is
    capped (``_pkcs8.MAX_PBKDF2_ITERATIONS``)."""
    data = bytes(data)
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data:
        _, der = _pem.decode(data, ("ENCRYPTED PRIVATE KEY",))
        plain = _decrypt_pkcs8(der, password)
        return _load_private(serialization.load_der_private_key, plain, None)
    return _load_private(serialization.load_pem_private_key, data, password)


def load_der_private_key(data: bytes, password: bytes | str | None = None) -> RSAPrivateKey:
    """PKCS#8 (encrypted or not) or PKCS#1 DER (see :func:`load_pem_private_key`)."""
    data = bytes(data)
    if _pkcs8.is_encrypted(data):
        plain = _decrypt_pkcs8(data, password)
        return _load_private(serialization.load_der_private_key, plain, None)
    return _load_private(serialization.load_der_private_key, data, password)


def load_pem_public_key(data: bytes) -> RSAPublicKey:
    return _load_public(serialization.load_pem_public_key, data)


def load_der_public_key(data: bytes) -> RSAPublicKey:
    return _load_public(serialization.load_der_public_key, data)
