"""SM2 public-key cryptography (GB/T 32918, GM/T 0003/0009/0016).

::

    key = generate_private_key()
    sig = key.sign(b"data")                   # DER SEQUENCE{r, s}, uid DEFAULT_UID
    key.public_key().verify(sig, b"data")     # None, or raises InvalidSignature
    ct = key.public_key().encrypt(b"secret")  # GM/T 0009 DER (C1C3C2)
    key.decrypt(ct)

Every key object is bound to a backend (``openssl`` or ``pure``; the configured one
by default) — ``key.with_backend("pure")`` gives the same key on another backend.
Malformed input raises :class:`~ebank_auth.errors.EncodingError`,
:class:`~ebank_auth.errors.InvalidKey`, :class:`~ebank_auth.errors.InvalidSignature`
or :class:`~ebank_auth.errors.DecryptionError`; never a dependency's exception.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from asn1crypto import core as asn1_core
from asn1crypto import keys as asn1_keys

from ebank_auth.crypto import _asn1, _backend, _pem, _pkcs8, sm3
from ebank_auth.crypto.algorithms import SignatureAlgorithm
from ebank_auth.crypto.backends.pure_sm2 import SM2P256V1, Curve, is_valid_public_point
from ebank_auth.crypto.backends.pure_sm2_backend import compute_z as _compute_z
from ebank_auth.errors import (
    CryptoError,
    DecryptionError,
    EncodingError,
    InvalidKey,
    InvalidSignature,
    UnsupportedAlgorithm,
)

__all__ = [
    "CURVE",
    "DEFAULT_UID",
    "CipherFormat",
    "SM2PrivateKey",
    "SM2PublicKey",
    "compute_e",
    "compute_z",
    "generate_private_key",
    "load_der_private_key",
    "load_der_public_key",
    "load_pem_private_key",
    "load_pem_public_key",
    "private_key_from_bytes",
    "public_key_from_bytes",
    "public_key_from_skf_blob",
    "signature_from_rs",
    "signature_from_skf_blob",
    "signature_to_rs",
    "signature_to_skf_blob",
    "validate_public_key",
]

DEFAULT_UID = b"1234567812345678"
CURVE: Curve = SM2P256V1
MAX_UID_LEN = 8191  # ENTL is the bit length in 16 bits
_N = CURVE.n
_LEN = 32
MAX_PLAINTEXT = 1 << 20  # SM2 encryption is for keys and short secrets, not bulk data

Uid = bytes | str


class CipherFormat(enum.Enum):
    """SM2 ciphertext encodings: GM/T 0009 DER (default) and the raw forms seen in the wild."""

    DER = "der"  # SEQUENCE { INTEGER x1, INTEGER y1, OCTET STRING C3, OCTET STRING C2 }
    C1C3C2 = "c1c3c2"  # 04 || x1 || y1 || C3 || C2  (GB/T 32918.4-2016 order)
    C1C2C3 = "c1c2c3"  # 04 || x1 || y1 || C2 || C3  (older 2010 draft order)


def _uid(uid: Uid) -> bytes:
    if isinstance(uid, str):
        uid = uid.encode("utf-8")
    if not isinstance(uid, (bytes, bytearray, memoryview)):
        raise CryptoError("uid must be bytes or str")
    uid = bytes(uid)
    if len(uid) > MAX_UID_LEN:
        raise CryptoError(f"uid is longer than {MAX_UID_LEN} bytes (ENTL is 16 bits)")
    return uid


def _data(data: bytes) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CryptoError("data to sign or encrypt must be bytes")
    return bytes(data)


# ================================================================= public key
class SM2PublicKey:
    """An SM2 public key (a validated point on sm2p256v1)."""

    __slots__ = ("_backend", "_handle", "_x", "_y")

    def __init__(self, x: int, y: int, *, backend: str | None = None) -> None:
        if not is_valid_public_point(CURVE, x, y):
            raise InvalidKey(
                "SM2 public key is not a valid point of the SM2 curve (off-curve, infinity or "
                "out of range)"
            )
        self._x = x
        self._y = y
        self._backend = _backend.sm2_backend(backend)
        self._handle: Any = None

    # ---- identity
    @property
    def x(self) -> int:
        return self._x

    @property
    def y(self) -> int:
        return self._y

    @property
    def backend(self) -> str:
        return str(self._backend.name)

    def with_backend(self, name: str) -> SM2PublicKey:
        return SM2PublicKey(self._x, self._y, backend=name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SM2PublicKey) and (self._x, self._y) == (other._x, other._y)

    def __hash__(self) -> int:
        return hash((self._x, self._y))

    def __repr__(self) -> str:
        return f"SM2PublicKey(x={self._x:064x}, y={self._y:064x})"

    def _h(self) -> Any:
        if self._handle is None:
            try:
                self._handle = self._backend.load_public(self._x, self._y)
            except ValueError as exc:  # pragma: no cover - point already validated
                raise InvalidKey(f"backend refused the public key: {exc}") from exc
        return self._handle

    # ---- signatures
    def verify(self, signature: bytes, data: bytes, uid: Uid = DEFAULT_UID) -> None:
        """Verify an SM2-with-SM3 signature over ``data``; raises InvalidSignature."""
        sig = _strict_signature(signature)
        ok = self._backend.check(self._h(), sig, _data(data), _uid(uid))
        if not ok:
            raise InvalidSignature()

    def verify_digest(self, signature: bytes, e: bytes) -> None:
        """Verify over a precomputed 32-byte e = SM3(Z || M); raises InvalidSignature."""
        sig = _strict_signature(signature)
        if not isinstance(e, (bytes, bytearray)) or len(e) != 32:
            raise CryptoError("e must be the 32-byte SM3(Z || M)")
        if not self._backend.check_digest(self._h(), sig, bytes(e)):
            raise InvalidSignature()

    # ---- encryption
    def encrypt(self, data: bytes, fmt: CipherFormat = CipherFormat.DER) -> bytes:
        data = _data(data)
        if not data:
            raise CryptoError("SM2 cannot encrypt an empty message")
        if len(data) > MAX_PLAINTEXT:
            raise CryptoError("SM2 encryption is for short secrets: encrypt a key with it instead")
        der = self._backend.encrypt(self._h(), data)
        return _cipher_from_der(der, fmt)

    # ---- encodings
    def to_bytes(self, compressed: bool = False) -> bytes:
        xb = self._x.to_bytes(_LEN, "big")
        if compressed:
            return bytes([2 + (self._y & 1)]) + xb
        return b"\x04" + xb + self._y.to_bytes(_LEN, "big")

    def to_der(self) -> bytes:
        """SubjectPublicKeyInfo: id-ecPublicKey with namedCurve 1.2.156.10197.1.301."""
        return bytes(
            asn1_keys.PublicKeyInfo(
                {
                    "algorithm": {"algorithm": "ec", "parameters": _named_curve()},
                    "public_key": self.to_bytes(),
                }
            ).dump()
        )

    def to_pem(self) -> bytes:
        return _pem.encode("PUBLIC KEY", self.to_der())

    def to_skf_blob(self) -> bytes:
        """GM/T 0016 ECCPUBLICKEYBLOB: BitLen (u32 LE) || X[64] || Y[64], values right-aligned."""
        return (
            (256).to_bytes(4, "little") + self._x.to_bytes(64, "big") + self._y.to_bytes(64, "big")
        )


# ================================================================= private key
class SM2PrivateKey:
    """An SM2 private key.  ``repr`` never shows the secret."""

    __slots__ = ("_backend", "_d", "_handle", "_pub")

    def __init__(self, d: int, *, backend: str | None = None, _pub: SM2PublicKey | None = None):
        if not isinstance(d, int) or not 1 <= d <= _N - 2:
            raise InvalidKey("SM2 private key must be an integer in [1, n-2]")
        self._backend = _backend.sm2_backend(backend)
        self._d = d
        if _pub is None:
            x, y = self._backend.public_point(d)
            _pub = SM2PublicKey(x, y, backend=self._backend.name)
        elif _pub.backend != self._backend.name:
            _pub = _pub.with_backend(self._backend.name)
        self._pub = _pub
        self._handle: Any = None

    @property
    def backend(self) -> str:
        return str(self._backend.name)

    def with_backend(self, name: str) -> SM2PrivateKey:
        return SM2PrivateKey(self._d, backend=name, _pub=self._pub.with_backend(name))

    def __repr__(self) -> str:
        return f"SM2PrivateKey(<secret>, public={self._pub!r})"

    def _h(self) -> Any:
        if self._handle is None:
            try:
                self._handle = self._backend.load_private(self._d, self._pub.x, self._pub.y)
            except ValueError as exc:  # pragma: no cover
                raise InvalidKey(f"backend refused the private key: {exc}") from exc
        return self._handle

    def public_key(self) -> SM2PublicKey:
        return self._pub

    def sign(self, data: bytes, uid: Uid = DEFAULT_UID) -> bytes:
        """SM2-with-SM3 signature of ``data`` with distinguishing ID ``uid`` (DER)."""
        _backend.note_signing(self._backend)
        try:
            return bytes(self._backend.sign(self._h(), _data(data), _uid(uid)))
        except ValueError as exc:  # pragma: no cover - backend failure
            raise CryptoError(f"SM2 signing failed: {exc}") from exc

    def sign_with(self, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
        """:class:`~ebank_auth.crypto.keys.SigningKey`: SM2-with-SM3 with the default ID."""
        if algorithm is not SignatureAlgorithm.SM2_SM3:
            raise UnsupportedAlgorithm(f"an SM2 key signs with SM2_SM3 only, not {algorithm.name}")
        return self.sign(data, uid=DEFAULT_UID)

    def sign_digest(self, e: bytes) -> bytes:
        """Sign a precomputed 32-byte e = SM3(Z || M), as SKF tokens do (DER)."""
        if not isinstance(e, (bytes, bytearray)) or len(e) != 32:
            raise CryptoError("e must be the 32-byte SM3(Z || M): use compute_e()")
        _backend.note_signing(self._backend)
        return bytes(self._backend.sign_digest(self._h(), bytes(e)))

    def decrypt(self, ciphertext: bytes, fmt: CipherFormat = CipherFormat.DER) -> bytes:
        """Decrypt; raises DecryptionError for anything altered, malformed or not for this key."""
        try:
            der = _cipher_to_der(bytes(ciphertext), fmt)
        except (EncodingError, TypeError) as exc:
            raise DecryptionError(f"SM2 ciphertext is malformed: {exc}") from exc
        out = self._backend.decrypt(self._h(), der)
        if out is None:
            raise DecryptionError()
        return bytes(out)

    # ---- encodings (these export the secret: callers decide where it goes)
    def to_bytes(self) -> bytes:
        """The 32-byte private scalar, big-endian."""
        return self._d.to_bytes(_LEN, "big")

    def _pkcs8_der(self) -> bytes:
        ec = asn1_keys.ECPrivateKey(
            {"version": "ecPrivkeyVer1", "private_key": self._d, "public_key": self._pub.to_bytes()}
        )
        return bytes(
            asn1_keys.PrivateKeyInfo(
                {
                    "version": 0,
                    "private_key_algorithm": {"algorithm": "ec", "parameters": _named_curve()},
                    "private_key": ec,
                }
            ).dump()
        )

    def to_der(
        self, password: bytes | str | None = None, *, iterations: int = _pkcs8.PBKDF2_ITERATIONS
    ) -> bytes:
        """PKCS#8 DER; with a password, encrypted PKCS#8 (PBES2, PBKDF2-SHA256, AES-256-CBC)."""
        der = self._pkcs8_der()
        if password is None:
            return der
        return _pkcs8.encrypt(der, _password(password), iterations)

    def to_pem(
        self, password: bytes | str | None = None, *, iterations: int = _pkcs8.PBKDF2_ITERATIONS
    ) -> bytes:
        label = "PRIVATE KEY" if password is None else "ENCRYPTED PRIVATE KEY"
        return _pem.encode(label, self.to_der(password, iterations=iterations))


# ================================================================= constructors
def generate_private_key(*, backend: str | None = None) -> SM2PrivateKey:
    """A fresh key; the scalar comes from the operating system's CSPRNG."""
    from ebank_auth.crypto.backends.pure_sm2 import random_scalar

    return SM2PrivateKey(random_scalar(CURVE), backend=backend)


def private_key_from_bytes(data: bytes, *, backend: str | None = None) -> SM2PrivateKey:
    if not isinstance(data, (bytes, bytearray)) or len(data) != _LEN:
        raise InvalidKey("SM2 private key bytes must be exactly 32 bytes")
    return SM2PrivateKey(int.from_bytes(data, "big"), backend=backend)


def public_key_from_bytes(point: bytes, *, backend: str | None = None) -> SM2PublicKey:
    """Uncompressed (04||X||Y, 65 bytes) or compressed (02/03||X, 33 bytes) point."""
    if not isinstance(point, (bytes, bytearray, memoryview)):
        raise InvalidKey("SM2 public key must be bytes")
    point = bytes(point)
    if len(point) == 65 and point[0] == 4:
        return SM2PublicKey(
            int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big"), backend=backend
        )
    if len(point) == 33 and point[0] in (2, 3):
        x = int.from_bytes(point[1:], "big")
        p = CURVE.p
        if x >= p:
            raise InvalidKey("compressed SM2 point has x out of range")
        rhs = (x * x * x + CURVE.a * x + CURVE.b) % p
        y = pow(rhs, (p + 1) // 4, p)  # p = 3 mod 4
        if y * y % p != rhs:
            raise InvalidKey("compressed SM2 point is not on the curve")
        if (y & 1) != (point[0] & 1):
            y = p - y
        return SM2PublicKey(x, y, backend=backend)
    raise InvalidKey(
        f"SM2 public key point has {len(point)} bytes: expected 65 (04||X||Y) or 33 (02/03||X)"
    )


def validate_public_key(key: SM2PublicKey | bytes) -> SM2PublicKey:
    """Check a key or point (on curve, not infinity, order n); return it as SM2PublicKey."""
    if isinstance(key, SM2PublicKey):
        if not is_valid_public_point(CURVE, key.x, key.y):  # pragma: no cover - checked at init
            raise InvalidKey()
        return key
    return public_key_from_bytes(key)


def compute_z(public_key: SM2PublicKey, uid: Uid = DEFAULT_UID) -> bytes:
    """Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA)."""
    return _compute_z(CURVE, public_key.x, public_key.y, _uid(uid))


def compute_e(public_key: SM2PublicKey, data: bytes, uid: Uid = DEFAULT_UID) -> bytes:
    """e = SM3(Z || M), the value an SKF token signs."""
    return sm3.digest(compute_z(public_key, uid) + _data(data))


# ================================================================= signatures and blobs
def signature_to_rs(signature: bytes) -> tuple[int, int]:
    """(r, s) of a DER signature; raises InvalidSignature if malformed or out of [1, n-1]."""
    try:
        r, s = _asn1.decode_rs(bytes(signature))
    except (EncodingError, TypeError) as exc:
        raise InvalidSignature("SM2 signature is not a DER SEQUENCE{r, s}") from exc
    if not (1 <= r < _N and 1 <= s < _N):
        raise InvalidSignature("SM2 signature value r or s is outside [1, n-1]")
    return r, s


def signature_from_rs(r: int, s: int) -> bytes:
    if not (1 <= r < _N and 1 <= s < _N):
        raise InvalidSignature("SM2 signature value r or s is outside [1, n-1]")
    return _asn1.encode_rs(r, s)


def _strict_signature(signature: bytes) -> bytes:
    if not isinstance(signature, (bytes, bytearray, memoryview)) or not 8 <= len(signature) <= 72:
        raise InvalidSignature("SM2 signature must be 8-72 bytes of DER")
    sig = bytes(signature)
    signature_to_rs(sig)
    return sig


def signature_to_skf_blob(signature: bytes) -> bytes:
    """GM/T 0016 ECCSIGNATUREBLOB: r[64] || s[64], right-aligned."""
    r, s = signature_to_rs(signature)
    return r.to_bytes(64, "big") + s.to_bytes(64, "big")


def signature_from_skf_blob(blob: bytes) -> bytes:
    if not isinstance(blob, (bytes, bytearray)) or len(blob) != 128:
        raise InvalidSignature("ECCSIGNATUREBLOB must be 128 bytes (r[64] || s[64])")
    blob = bytes(blob)
    if any(blob[:32]) or any(blob[64:96]):
        raise InvalidSignature("ECCSIGNATUREBLOB has non-zero padding")
    return signature_from_rs(int.from_bytes(blob[:64], "big"), int.from_bytes(blob[64:], "big"))


def public_key_from_skf_blob(blob: bytes, *, backend: str | None = None) -> SM2PublicKey:
    if not isinstance(blob, (bytes, bytearray)) or len(blob) != 132:
        raise InvalidKey("ECCPUBLICKEYBLOB must be 132 bytes (BitLen, X[64], Y[64])")
    blob = bytes(blob)
    if int.from_bytes(blob[:4], "little") != 256:
        raise InvalidKey("ECCPUBLICKEYBLOB BitLen must be 256 for SM2")
    if any(blob[4:36]) or any(blob[68:100]):
        raise InvalidKey("ECCPUBLICKEYBLOB has non-zero padding")
    return SM2PublicKey(
        int.from_bytes(blob[4:68], "big"), int.from_bytes(blob[68:], "big"), backend=backend
    )


# ================================================================= ciphertext formats
def _cipher_from_der(der: bytes, fmt: CipherFormat) -> bytes:
    if fmt is CipherFormat.DER:
        return der
    x, y, c3, c2 = _asn1.decode_sm2_cipher(der)
    c1 = b"\x04" + x.to_bytes(_LEN, "big") + y.to_bytes(_LEN, "big")
    return c1 + (c3 + c2 if fmt is CipherFormat.C1C3C2 else c2 + c3)


def _cipher_to_der(data: bytes, fmt: CipherFormat) -> bytes:
    if not isinstance(fmt, CipherFormat):
        raise EncodingError("fmt must be a CipherFormat")
    if fmt is CipherFormat.DER:
        x, y, c3, c2 = _asn1.decode_sm2_cipher(data)
        if len(c3) != 32 or not c2:
            raise EncodingError("C3 must be 32 bytes and C2 non-empty")
        return data
    if len(data) < 65 + 32 + 1 or data[0] != 4:
        raise EncodingError("raw SM2 ciphertext must start with an uncompressed C1 (04||x||y)")
    x = int.from_bytes(data[1:33], "big")
    y = int.from_bytes(data[33:65], "big")
    rest = data[65:]
    if fmt is CipherFormat.C1C3C2:
        c3, c2 = rest[:32], rest[32:]
    else:
        c2, c3 = rest[:-32], rest[-32:]
    return _asn1.encode_sm2_cipher(x, y, c3, c2)


# ================================================================= PEM / DER loading
def _named_curve() -> asn1_keys.ECDomainParameters:
    return asn1_keys.ECDomainParameters(name="named", value=_asn1.OID_SM2_CURVE)


def _password(password: bytes | str) -> bytes:
    if isinstance(password, str):
        return password.encode("utf-8")
    if not isinstance(password, (bytes, bytearray)) or not password:
        raise InvalidKey("password must be non-empty bytes or str")
    return bytes(password)


def _check_sm2_algorithm(alg: Any) -> None:
    oid = alg["algorithm"].dotted
    if oid == _asn1.OID_SM2_CURVE:
        return
    if oid != _asn1.OID_EC_PUBLIC_KEY:
        raise InvalidKey(f"not an SM2 key (algorithm {oid}): use the RSA loaders for RSA keys")
    params = alg["parameters"]
    if params.name != "named" or params.chosen.dotted != _asn1.OID_SM2_CURVE:
        raise InvalidKey("EC key is not on the SM2 curve (namedCurve 1.2.156.10197.1.301 expected)")


def _from_ec_private(ec: Any, backend: str | None) -> SM2PrivateKey:
    d = int(ec["private_key"].native)
    key = SM2PrivateKey(d, backend=backend)
    pub = ec["public_key"]
    if not isinstance(pub, asn1_core.Void) and not pub.contents:
        # an empty BIT STRING has no unused-bits octet; asn1crypto would raise IndexError
        raise InvalidKey("the public key stored with the private key is empty: re-export the key")
    if pub.native is not None:
        embedded = public_key_from_bytes(bytes(pub.native), backend=backend)
        if embedded != key.public_key():
            raise InvalidKey("the public key stored with the private key does not match it")
    return key


def load_der_private_key(
    data: bytes, password: bytes | str | None = None, *, backend: str | None = None
) -> SM2PrivateKey:
    """PKCS#8, encrypted PKCS#8 or SEC1 (``EC PRIVATE KEY``) DER."""
    data = bytes(data)
    with _asn1_errors("SM2 private key"):
        # encrypted PKCS#8?
        try:
            enc = asn1_keys.EncryptedPrivateKeyInfo.load(data, strict=True)
            enc["encryption_algorithm"]["algorithm"].native  # noqa: B018
            encrypted = True
        except (ValueError, TypeError, KeyError):
            encrypted = False
        if encrypted:
            if password is None:
                raise InvalidKey("the private key is encrypted: supply its password")
            data = _pkcs8.decrypt(data, _password(password))
        elif password is not None:
            raise InvalidKey("a password was given but the private key is not encrypted")
        try:
            info = asn1_keys.PrivateKeyInfo.load(data, strict=True)
            alg = info["private_key_algorithm"]
            alg["algorithm"].dotted  # noqa: B018
            is_pkcs8 = True
        except (ValueError, TypeError, KeyError):
            is_pkcs8 = False
        if is_pkcs8:
            _check_sm2_algorithm(alg)
            ec = asn1_keys.ECPrivateKey.load(info["private_key"].contents, strict=True)
            return _from_ec_private(ec, backend)
        ec = asn1_keys.ECPrivateKey.load(data, strict=True)
        params = ec["parameters"]
        if params.native is not None and (
            params.name != "named" or params.chosen.dotted != _asn1.OID_SM2_CURVE
        ):
            raise InvalidKey("EC key is not on the SM2 curve")
        return _from_ec_private(ec, backend)


def load_pem_private_key(
    data: bytes, password: bytes | str | None = None, *, backend: str | None = None
) -> SM2PrivateKey:
    _, der = _pem.decode(
        bytes(data), ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY", "SM2 PRIVATE KEY")
    )
    return load_der_private_key(der, password, backend=backend)


# The DER of every SPKI for an uncompressed SM2 point up to the point itself:
# SEQUENCE { SEQUENCE { id-ecPublicKey, sm2p256v1 }, BIT STRING (0 unused bits) 04 ...
_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d03420004")


def load_der_public_key(data: bytes, *, backend: str | None = None) -> SM2PublicKey:
    """SubjectPublicKeyInfo DER with id-ecPublicKey (or the SM2 OID) and the SM2 curve."""
    data = bytes(data)
    if len(data) == 91 and data[:27] == _SPKI_PREFIX:  # the usual form: skip the ASN.1 parser
        return public_key_from_bytes(data[26:], backend=backend)
    with _asn1_errors("SM2 public key"):
        info = asn1_keys.PublicKeyInfo.load(bytes(data), strict=True)
        _check_sm2_algorithm(info["algorithm"])
        point = bytes(info["public_key"].native)
    return public_key_from_bytes(point, backend=backend)


def load_pem_public_key(data: bytes, *, backend: str | None = None) -> SM2PublicKey:
    _, der = _pem.decode(bytes(data), ("PUBLIC KEY",))
    return load_der_public_key(der, backend=backend)


@contextmanager
def _asn1_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (InvalidKey, DecryptionError, EncodingError, CryptoError):
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, IndexError) as exc:
        raise EncodingError(f"{what} is not valid DER: check the file format") from exc


# ================================================================= test hook
@contextmanager
def _deterministic_k(
    k: int, backend: str | None = None
) -> Iterator[Callable[[bytes, bytes], bytes]]:
    """TEST ONLY: yields ``sign(d_bytes, e) -> DER`` using the fixed nonce ``k``.

    The point k*G is computed by the chosen backend (libcrypto's EC_POINT_mul for
    ``openssl``), the rest of GB/T 32918.2 §6.1 in Python.  Never use outside tests.
    """
    be = _backend.sm2_backend(backend)

    def sign(d_bytes: bytes, e: bytes) -> bytes:
        d = int.from_bytes(d_bytes, "big")
        x1, _ = be.mul_g(k)
        r = (int.from_bytes(e, "big") + x1) % _N
        s = pow(1 + d, -1, _N) * (k - r * d) % _N
        return _asn1.encode_rs(r, s)

    yield sign
