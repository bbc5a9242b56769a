"""Two-party SM2: a key split between a phone and the bank so that neither alone can sign.

The inverse ``(1+d)^-1`` of the SM2 private key ``d`` is shared multiplicatively:
the phone holds ``d1``, the server ``d2``, with ``(1+d)^-1 = d1*d2 mod n`` and the joint
public key ``P = [(d1*d2)^-1]G - G``.  Signatures and GM/T 0009 decryptions need both
shares; the results are ordinary SM2 signatures (DER ``SEQUENCE{r, s}``) and plaintexts.
The derivation, the messages and what each side checks are in ``docs/phone-shield.md``.

Every protocol step is a ``*_begin`` that returns (message, state) and a ``*_complete``
that consumes the state exactly once (a second call raises
:class:`~ebank_auth.errors.SessionAlreadyUsed`)::

    # key generation: phone -> server -> phone -> server
    req, phone_st = phone_keygen_begin()
    resp, server_st = server_keygen_respond(req)
    confirm, phone_share = phone_keygen_complete(phone_st, resp)
    server_share = server_keygen_complete(server_st, confirm)

    # signing: the server records the message and opens a session, then one round trip
    challenge, server_st = server_sign_begin(server_share, message)
    request, phone_st = phone_sign_begin(phone_share, challenge, message)
    response = server_sign_complete(server_st, request)
    signature = phone_sign_complete(phone_st, response)   # verified before it is returned

:func:`local_keygen`, :func:`local_sign` and :func:`local_decrypt` run a whole protocol
in one process (tests, examples, integrators).

Rules every step follows: a received message that fails a check (format, session id,
point validation, proof) raises a :class:`~ebank_auth.errors.TwoPartyError` and leaves the
state as it was; a message that passes the checks consumes the state even if the final
result (the joint signature check, the C3 check) then fails, so a nonce never serves two
responses.  Shares and states never show their secrets in ``repr``; their scalars live in
``bytearray`` buffers that :meth:`wipe` zeroes (Python integers made from them for the
arithmetic cannot be wiped).
"""

from __future__ import annotations

import enum
import hmac
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, TypeVar

from ebank_auth.crypto import _asn1, _backend, sm2, sm3
from ebank_auth.crypto.algorithms import SignatureAlgorithm
from ebank_auth.crypto.backends import pure_sm2
from ebank_auth.crypto.sm2 import CURVE, DEFAULT_UID, CipherFormat, SM2PublicKey, Uid
from ebank_auth.errors import (
    CryptoError,
    DecryptionError,
    EncodingError,
    InvalidKey,
    InvalidProof,
    InvalidProtocolMessage,
    InvalidSignature,
    JointSignatureRefused,
    SessionAlreadyUsed,
    UnsupportedAlgorithm,
)

__all__ = [
    "DEFAULT_UID",
    "PROTOCOL_VERSION",
    "DecryptRequest",
    "DecryptResponse",
    "KeygenConfirm",
    "KeygenRequest",
    "KeygenResponse",
    "MessageType",
    "PhoneDecryptState",
    "PhoneKeygenState",
    "PhoneShare",
    "PhoneSignHalf",
    "PhoneSignState",
    "SchnorrProof",
    "ServerKeygenState",
    "ServerShare",
    "ServerSignState",
    "SignChallenge",
    "SignRequest",
    "SignResponse",
    "TwoPartySigningKey",
    "local_decrypt",
    "local_keygen",
    "local_phone",
    "local_sign",
    "phone_decrypt_begin",
    "phone_decrypt_complete",
    "phone_keygen_begin",
    "phone_keygen_complete",
    "phone_sign_begin",
    "phone_sign_complete",
    "server_decrypt",
    "server_keygen_complete",
    "server_keygen_respond",
    "server_sign_begin",
    "server_sign_complete",
]

PROTOCOL_VERSION = 1
SESSION_ID_LEN = 32
_DOMAIN = b"ebank-auth/sm2-2p/v1"
_N = CURVE.n
_P = CURVE.p
_G = CURVE.g
_LEN = 32
_POINT_LEN = 65
_PROOF_LEN = 64

Point = tuple[int, int]


class MessageType(enum.IntEnum):
    """First byte of every encoded protocol message (the second is :data:`PROTOCOL_VERSION`)."""

    KEYGEN_REQUEST = 0x01
    KEYGEN_RESPONSE = 0x02
    KEYGEN_CONFIRM = 0x03
    SIGN_CHALLENGE = 0x11
    SIGN_REQUEST = 0x12
    SIGN_RESPONSE = 0x13
    DECRYPT_REQUEST = 0x21
    DECRYPT_RESPONSE = 0x22


class _Role(enum.IntEnum):
    PHONE = 1
    SERVER = 2


_ROLE_LABEL = {_Role.PHONE: b"phone", _Role.SERVER: b"server"}


# ================================================================= secrets
class _Secret:
    """A scalar in a bytearray that :meth:`wipe` zeroes.  Never shown by ``repr``."""

    __slots__ = ("_buf", "_wiped")

    def __init__(self, value: int) -> None:
        self._buf = bytearray(value.to_bytes(_LEN, "big"))
        self._wiped = False

    def value(self) -> int:
        if self._wiped:
            raise InvalidKey("this share was wiped: load it again from its store")
        return int.from_bytes(self._buf, "big")

    def copy_bytes(self) -> bytearray:
        return bytearray(self._buf)

    def wipe(self) -> None:
        self._buf[:] = bytes(len(self._buf))
        self._wiped = True

    def __repr__(self) -> str:
        return "<secret>"


_scalar_source: Callable[[], int] | None = None  # test hook (see _fixed_scalars)


def _draw_scalar() -> int:
    """A fresh uniform scalar in [1, n-2] from the OS CSPRNG (the nonce and share source)."""
    if _scalar_source is not None:
        return _scalar_source()
    return pure_sm2.random_scalar(CURVE)


@contextmanager
def _fixed_scalars(values: list[int]) -> Iterator[None]:
    """TEST ONLY: the next scalars drawn (shares, nonces, proof nonces) come from ``values``.

    For known-answer tests; never use outside tests (a repeated nonce leaks the key)."""
    global _scalar_source
    queue = list(values)

    def take() -> int:
        if not queue:
            raise AssertionError("_fixed_scalars: ran out of scalars")
        return queue.pop(0)

    _scalar_source = take
    try:
        yield
    finally:
        _scalar_source = None


def _new_session_id() -> bytes:
    """A fresh random session id (the OS CSPRNG)."""
    return secrets.token_bytes(SESSION_ID_LEN)


# ================================================================= encodings
def _point_bytes(pt: Point) -> bytes:
    return b"\x04" + pt[0].to_bytes(_LEN, "big") + pt[1].to_bytes(_LEN, "big")


def _scalar_bytes(v: int) -> bytes:
    return v.to_bytes(_LEN, "big")


def _check_point(pt: object, what: str) -> Point:
    """Shape and arithmetic check (pure math, any backend): coordinates in [0, p), on the curve.

    The protocol steps check again with the key's backend (:func:`_validate_point`)."""
    if (
        not isinstance(pt, tuple)
        or len(pt) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in pt)
    ):
        raise InvalidProtocolMessage(f"{what} must be an affine point (x, y)")
    if not pure_sm2.is_valid_public_point(CURVE, pt[0], pt[1]):
        raise InvalidProtocolMessage(
            f"{what} is not a point of the SM2 curve (off the curve, out of range or infinity)"
        )
    return pt


def _check_session_id(sid: object, what: str = "session id") -> bytes:
    if not isinstance(sid, bytes) or len(sid) != SESSION_ID_LEN:
        raise InvalidProtocolMessage(f"{what} must be {SESSION_ID_LEN} bytes")
    return sid


def _check_scalar(v: object, what: str, *, zero_ok: bool = False) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not (0 if zero_ok else 1) <= v < _N:
        raise InvalidProtocolMessage(f"{what} must be an integer in [{0 if zero_ok else 1}, n-1]")
    return v


class _Reader:
    """Strict reader for the fixed-layout message encodings."""

    def __init__(self, data: object, kind: MessageType, length: int) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidProtocolMessage(f"{kind.name} must be bytes")
        data = bytes(data)
        if len(data) != length:
            raise InvalidProtocolMessage(
                f"{kind.name} must be exactly {length} bytes, got {len(data)}"
            )
        if data[0] != kind:
            raise InvalidProtocolMessage(f"not a {kind.name} message (type byte {data[0]:#04x})")
        if data[1] != PROTOCOL_VERSION:
            raise InvalidProtocolMessage(
                f"{kind.name} has protocol version {data[1]}, this code speaks {PROTOCOL_VERSION}"
            )
        self._data = data
        self._pos = 2

    def take(self, n: int) -> bytes:
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def point(self, what: str) -> Point:
        raw = self.take(_POINT_LEN)
        if raw[0] != 4:
            raise InvalidProtocolMessage(f"{what} must be an uncompressed point (04 || x || y)")
        pt = (int.from_bytes(raw[1:33], "big"), int.from_bytes(raw[33:], "big"))
        return _check_point(pt, what)

    def scalar(self, what: str, *, zero_ok: bool = False) -> int:
        return _check_scalar(int.from_bytes(self.take(_LEN), "big"), what, zero_ok=zero_ok)


def _header(kind: MessageType) -> bytes:
    return bytes([kind, PROTOCOL_VERSION])


# ================================================================= messages
@dataclass(frozen=True)
class SchnorrProof:
    """Non-interactive proof of knowledge of x with X = [x]G: (c, z), R = [z]G - [c]X,
    c = H(transcript, role, X, R).  64 bytes: c || z."""

    c: int
    z: int

    def __post_init__(self) -> None:
        _check_scalar(self.c, "proof challenge c", zero_ok=True)
        _check_scalar(self.z, "proof response z", zero_ok=True)

    def to_bytes(self) -> bytes:
        return _scalar_bytes(self.c) + _scalar_bytes(self.z)


def _proof_from(reader: _Reader) -> SchnorrProof:
    return SchnorrProof(
        reader.scalar("proof challenge c", zero_ok=True),
        reader.scalar("proof response z", zero_ok=True),
    )


@dataclass(frozen=True)
class KeygenRequest:
    """Phone → server: the phone's session id and P1 = [d1^-1]G."""

    phone_session_id: bytes
    phone_point: Point

    _LENGTH = 2 + SESSION_ID_LEN + _POINT_LEN

    def __post_init__(self) -> None:
        _check_session_id(self.phone_session_id, "phone session id")

    def to_bytes(self) -> bytes:
        return (
            _header(MessageType.KEYGEN_REQUEST)
            + self.phone_session_id
            + _point_bytes(self.phone_point)
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> KeygenRequest:
        r = _Reader(data, MessageType.KEYGEN_REQUEST, cls._LENGTH)
        return cls(r.take(SESSION_ID_LEN), r.point("phone point P1"))


@dataclass(frozen=True)
class KeygenResponse:
    """Server → phone: both session ids, P2 = [d2^-1]G and the server's proof for P2."""

    phone_session_id: bytes
    server_session_id: bytes
    server_point: Point
    proof: SchnorrProof

    _LENGTH = 2 + 2 * SESSION_ID_LEN + _POINT_LEN + _PROOF_LEN

    def __post_init__(self) -> None:
        _check_session_id(self.phone_session_id, "phone session id")
        _check_session_id(self.server_session_id, "server session id")

    def to_bytes(self) -> bytes:
        return (
            _header(MessageType.KEYGEN_RESPONSE)
            + self.phone_session_id
            + self.server_session_id
            + _point_bytes(self.server_point)
            + self.proof.to_bytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> KeygenResponse:
        r = _Reader(data, MessageType.KEYGEN_RESPONSE, cls._LENGTH)
        return cls(
            r.take(SESSION_ID_LEN),
            r.take(SESSION_ID_LEN),
            r.point("server point P2"),
            _proof_from(r),
        )


@dataclass(frozen=True)
class KeygenConfirm:
    """Phone → server: the joint public key the phone computed and the phone's proof for P1."""

    server_session_id: bytes
    public_point: Point
    proof: SchnorrProof

    _LENGTH = 2 + SESSION_ID_LEN + _POINT_LEN + _PROOF_LEN

    def __post_init__(self) -> None:
        _check_session_id(self.server_session_id, "server session id")

    def to_bytes(self) -> bytes:
        return (
            _header(MessageType.KEYGEN_CONFIRM)
            + self.server_session_id
            + _point_bytes(self.public_point)
            + self.proof.to_bytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> KeygenConfirm:
        r = _Reader(data, MessageType.KEYGEN_CONFIRM, cls._LENGTH)
        return cls(r.take(SESSION_ID_LEN), r.point("joint public key"), _proof_from(r))


@dataclass(frozen=True)
class SignChallenge:
    """Server → phone: the signing session the server opened for the message it recorded."""

    session_id: bytes

    _LENGTH = 2 + SESSION_ID_LEN

    def __post_init__(self) -> None:
        _check_session_id(self.session_id)

    def to_bytes(self) -> bytes:
        return _header(MessageType.SIGN_CHALLENGE) + self.session_id

    @classmethod
    def from_bytes(cls, data: bytes) -> SignChallenge:
        r = _Reader(data, MessageType.SIGN_CHALLENGE, cls._LENGTH)
        return cls(r.take(SESSION_ID_LEN))


@dataclass(frozen=True)
class SignRequest:
    """Phone → server: Q1 = [w1]G and a proof of w1 bound to the session, P and e."""

    session_id: bytes
    nonce_point: Point
    proof: SchnorrProof

    _LENGTH = 2 + SESSION_ID_LEN + _POINT_LEN + _PROOF_LEN

    def __post_init__(self) -> None:
        _check_session_id(self.session_id)

    def to_bytes(self) -> bytes:
        return (
            _header(MessageType.SIGN_REQUEST)
            + self.session_id
            + _point_bytes(self.nonce_point)
            + self.proof.to_bytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SignRequest:
        r = _Reader(data, MessageType.SIGN_REQUEST, cls._LENGTH)
        return cls(r.take(SESSION_ID_LEN), r.point("nonce point Q1"), _proof_from(r))


@dataclass(frozen=True)
class SignResponse:
    """Server → phone: r = (e + x(Q)) mod n and s1 = d2 (r + w2) mod n."""

    session_id: bytes
    r: int
    s1: int

    _LENGTH = 2 + SESSION_ID_LEN + 2 * _LEN

    def __post_init__(self) -> None:
        _check_session_id(self.session_id)
        _check_scalar(self.r, "r")
        _check_scalar(self.s1, "s1")

    def to_bytes(self) -> bytes:
        return (
            _header(MessageType.SIGN_RESPONSE)
            + self.session_id
            + _scalar_bytes(self.r)
            + _scalar_bytes(self.s1)
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SignResponse:
        rd = _Reader(data, MessageType.SIGN_RESPONSE, cls._LENGTH)
        return cls(rd.take(SESSION_ID_LEN), rd.scalar("r"), rd.scalar("s1"))


@dataclass(frozen=True)
class DecryptRequest:
    """Phone → server: T1 = [w]C1, the ciphertext's C1 blinded by a fresh w."""

    session_id: bytes
    point: Point

    _LENGTH = 2 + SESSION_ID_LEN + _POINT_LEN

    def __post_init__(self) -> None:
        _check_session_id(self.session_id)

    def to_bytes(self) -> bytes:
        return _header(MessageType.DECRYPT_REQUEST) + self.session_id + _point_bytes(self.point)

    @classmethod
    def from_bytes(cls, data: bytes) -> DecryptRequest:
        r = _Reader(data, MessageType.DECRYPT_REQUEST, cls._LENGTH)
        return cls(r.take(SESSION_ID_LEN), r.point("blinded point T1"))


@dataclass(frozen=True)
class DecryptResponse:
    """Server → phone: T2 = [d2^-1]T1."""

    session_id: bytes
    point: Point

    _LENGTH = 2 + SESSION_ID_LEN + _POINT_LEN

    def __post_init__(self) -> None:
        _check_session_id(self.session_id)

    def to_bytes(self) -> bytes:
        return _header(MessageType.DECRYPT_RESPONSE) + self.session_id + _point_bytes(self.point)

    @classmethod
    def from_bytes(cls, data: bytes) -> DecryptResponse:
        r = _Reader(data, MessageType.DECRYPT_RESPONSE, cls._LENGTH)
        return cls(r.take(SESSION_ID_LEN), r.point("point T2"))


# ================================================================= transcript and proofs
def _frame(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def _transcript(label: bytes, *fields: bytes) -> bytes:
    """SM3 over the domain, the step label and length-prefixed fields."""
    return sm3.digest(_frame(_DOMAIN, label, *fields))


def _keygen_transcript(sid_p: bytes, sid_s: bytes, p1: Point, p2: Point) -> bytes:
    return _transcript(
        b"keygen",
        b"phone-session",
        sid_p,
        b"server-session",
        sid_s,
        b"phone-point",
        _point_bytes(p1),
        b"server-point",
        _point_bytes(p2),
    )


def _sign_transcript(session_id: bytes, public: SM2PublicKey, e: bytes, q1: Point) -> bytes:
    return _transcript(
        b"sign",
        b"session",
        session_id,
        b"public-key",
        public.to_bytes(),
        b"e",
        e,
        b"phone-nonce-point",
        _point_bytes(q1),
    )


def _challenge(transcript: bytes, role: _Role, x_pt: Point, r_pt: Point) -> int:
    data = _frame(
        _DOMAIN, b"schnorr", transcript, _ROLE_LABEL[role], _point_bytes(x_pt), _point_bytes(r_pt)
    )
    # 512 bits reduced mod n: no measurable bias
    wide = sm3.digest(b"\x00" + data) + sm3.digest(b"\x01" + data)
    return int.from_bytes(wide, "big") % _N


def _prove(
    be: _backend.SM2Backend, x: int, x_pt: Point, transcript: bytes, role: _Role
) -> SchnorrProof:
    k = _draw_scalar()
    r_pt = be.mul_g(k)
    c = _challenge(transcript, role, x_pt, r_pt)
    return SchnorrProof(c, (k + c * x) % _N)


def _verify_proof(
    be: _backend.SM2Backend, proof: SchnorrProof, x_pt: Point, transcript: bytes, role: _Role
) -> None:
    if not isinstance(proof, SchnorrProof):
        raise InvalidProtocolMessage("the proof must be a SchnorrProof")
    r_pt = be.point_mul_add(proof.z, (_N - proof.c) % _N, x_pt)  # [z]G - [c]X, public scalars
    if r_pt is None:
        raise InvalidProof()
    expected = _challenge(transcript, role, x_pt, r_pt)
    if not hmac.compare_digest(_scalar_bytes(expected), _scalar_bytes(proof.c)):
        raise InvalidProof()


# ================================================================= points
def _validate_point(be: _backend.SM2Backend, pt: object, what: str) -> Point:
    """Every received point: affine shape, coordinates in range, on the curve (checked by the
    pure arithmetic and by the key's backend), not infinity; cofactor 1 makes it order n."""
    pt = _check_point(pt, what)
    if not be.point_valid(pt[0], pt[1]):  # pragma: no cover - both checks agree (tested)
        raise InvalidProtocolMessage(f"{what} is not a point of the SM2 curve")
    return pt


def _refuse_trivial(be: _backend.SM2Backend, pt: Point | None, what: str) -> Point:
    """Refuse infinity, G and -G: a share or key of 0, 1 or -1 is known to everyone."""
    if pt is None:
        raise InvalidProtocolMessage(f"{what} is the point at infinity")
    if pt == _G or pt == be.point_negate(_G):
        raise InvalidProtocolMessage(f"{what} is ±G (a share or key of ±1): refused")
    return pt


def _joint_public(be: _backend.SM2Backend, inv_share: int, peer_point: Point) -> Point:
    """P = [x]peer - G; refuses the degenerate sums (P = O, ±G)."""
    scaled = be.point_mul(inv_share, peer_point)
    if scaled is None:  # pragma: no cover - a valid point times a non-zero scalar
        raise InvalidProtocolMessage("the joint public key is degenerate")
    if scaled == _G:
        raise InvalidProtocolMessage(
            "the joint public key would be the point at infinity (d = 0): the peer chose its "
            "share from ours; refused"
        )
    p = be.point_add(scaled, be.point_negate(_G))
    return _refuse_trivial(be, p, "the joint public key")


# ================================================================= shares
_SHARE_MAGIC = b"sm2-2p"
_S = TypeVar("_S", bound="_Share")
_SHARE_LEN = len(_SHARE_MAGIC) + 2 + _LEN + _POINT_LEN


class _Share:
    __slots__ = ("_backend", "_public", "_secret")
    _role: _Role

    def __init__(self, scalar: int, public_key: SM2PublicKey, *, backend: str | None = None):
        if not isinstance(scalar, int) or isinstance(scalar, bool) or not 1 <= scalar < _N:
            raise InvalidKey("a two-party SM2 share must be an integer in [1, n-1]")
        if not isinstance(public_key, SM2PublicKey):
            raise InvalidKey("the joint public key must be an SM2PublicKey")
        self._backend = _backend.sm2_backend(backend)
        self._public = public_key.with_backend(self._backend.name)
        self._secret = _Secret(scalar)

    @property
    def public_key(self) -> SM2PublicKey:
        """The joint SM2 public key P."""
        return self._public

    @property
    def backend(self) -> str:
        return str(self._backend.name)

    def with_backend(self: _S, name: str) -> _S:
        """The same share on another backend (``openssl`` or ``pure``)."""
        return type(self)(self._secret.value(), self._public, backend=name)

    def scalar_bytes(self) -> bytearray:
        """The 32-byte share (a secret: wrap or wipe it).  A phone keystore wraps this under
        a PIN-derived key; see the module docs on why the phone share carries nothing else."""
        return self._secret.copy_bytes()

    def to_bytes(self) -> bytearray:
        """magic "sm2-2p" || version || role || share (32) || P (65): a secret, as a
        bytearray the caller wipes after storing it."""
        out = bytearray(_SHARE_MAGIC + bytes([PROTOCOL_VERSION, self._role]))
        out += self._secret.copy_bytes()
        out += self._public.to_bytes()
        return out

    @classmethod
    def _from_bytes(cls, data: bytes | bytearray, backend: str | None) -> tuple[int, SM2PublicKey]:
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) != _SHARE_LEN:
            raise InvalidKey(f"a two-party SM2 share is {_SHARE_LEN} bytes")
        raw = bytes(data)
        head = len(_SHARE_MAGIC)
        if raw[:head] != _SHARE_MAGIC or raw[head] != PROTOCOL_VERSION:
            raise InvalidKey("not a two-party SM2 share (magic or version differ)")
        if raw[head + 1] != cls._role:
            raise InvalidKey(
                f"this is not a {_ROLE_LABEL[cls._role].decode()} share: load it with the "
                "other share class"
            )
        scalar = int.from_bytes(raw[head + 2 : head + 2 + _LEN], "big")
        return scalar, sm2.public_key_from_bytes(raw[head + 2 + _LEN :], backend=backend)

    def wipe(self) -> None:
        """Zero the share's buffer; the share is unusable afterwards."""
        self._secret.wipe()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<secret>, public={self._public!r})"


class PhoneShare(_Share):
    """The phone's share d1 and the joint public key P.

    Deliberately nothing else (not P1 = [d1^-1]G, not P2): with d1, P and P2 a guessed PIN
    could be checked offline; with d1 and P alone a wrong d1 shows only when the server
    answers, so PIN guessing stays online and rate-limited by the server."""

    __slots__ = ()
    _role = _Role.PHONE

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, backend: str | None = None) -> PhoneShare:
        scalar, public = cls._from_bytes(data, backend)
        return cls(scalar, public, backend=backend)


class ServerShare(_Share):
    """The server's share d2 and the joint public key P."""

    __slots__ = ()
    _role = _Role.SERVER

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, backend: str | None = None) -> ServerShare:
        scalar, public = cls._from_bytes(data, backend)
        return cls(scalar, public, backend=backend)


# ================================================================= states
class _State:
    """Consumed exactly once, atomically (a lock guards the flag)."""

    __slots__ = ("_consumed", "_lock")

    def __init__(self) -> None:
        self._consumed = False
        self._lock = threading.Lock()

    @property
    def consumed(self) -> bool:
        return self._consumed

    def _check_fresh(self) -> None:
        if self._consumed:
            raise SessionAlreadyUsed()

    def _consume(self) -> None:
        with self._lock:
            if self._consumed:
                raise SessionAlreadyUsed()
            self._consumed = True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'consumed' if self._consumed else 'open'}>"


class PhoneKeygenState(_State):
    __slots__ = ("_backend", "_d1", "_point", "_sid")

    def __init__(self, be: _backend.SM2Backend, d1: int, sid: bytes, point: Point) -> None:
        super().__init__()
        self._backend = be
        self._d1 = _Secret(d1)
        self._sid = sid
        self._point = point


class ServerKeygenState(_State):
    __slots__ = ("_backend", "_d2", "_p1", "_p2", "_public", "_sid", "_transcript")

    def __init__(
        self,
        be: _backend.SM2Backend,
        d2: int,
        sid: bytes,
        p1: Point,
        p2: Point,
        public: Point,
        transcript: bytes,
    ) -> None:
        super().__init__()
        self._backend = be
        self._d2 = _Secret(d2)
        self._sid = sid
        self._p1 = p1
        self._p2 = p2
        self._public = public
        self._transcript = transcript

    _MAGIC = b"sm2-2p-keygen-state"
    _LENGTH = len(_MAGIC) + 1 + _LEN + 2 * SESSION_ID_LEN + 3 * _POINT_LEN

    def to_bytes(self, phone_session_id: bytes) -> bytearray:
        """The open state as bytes, so a server can keep it in a shared store between the
        two key-generation requests.  A **secret** (it holds ``d2``): seal it before storing
        it, and store it so that it is taken out exactly once.  ``phone_session_id`` is the
        request's ``phone_session_id`` (the transcript is recomputed from it on load)."""
        self._check_fresh()
        _check_session_id(phone_session_id, "phone session id")
        if _keygen_transcript(phone_session_id, self._sid, self._p1, self._p2) != self._transcript:
            raise InvalidProtocolMessage("phone_session_id is not the one of this key generation")
        out = bytearray(self._MAGIC + bytes([PROTOCOL_VERSION]))
        out += self._d2.copy_bytes()
        out += phone_session_id + self._sid
        out += _point_bytes(self._p1) + _point_bytes(self._p2) + _point_bytes(self._public)
        return out

    @classmethod
    def from_bytes(
        cls, data: bytes | bytearray, *, backend: str | None = None
    ) -> ServerKeygenState:
        """Load a state made by :meth:`to_bytes` (every point validated again)."""
        if not isinstance(data, (bytes, bytearray)) or len(data) != cls._LENGTH:
            raise InvalidProtocolMessage("not a stored key-generation state (length)")
        raw = bytes(data)
        head = len(cls._MAGIC)
        if raw[:head] != cls._MAGIC or raw[head] != PROTOCOL_VERSION:
            raise InvalidProtocolMessage("not a stored key-generation state (magic or version)")
        be = _backend.sm2_backend(backend)
        pos = head + 1
        d2 = _check_scalar(int.from_bytes(raw[pos : pos + _LEN], "big"), "d2")
        pos += _LEN
        sid_p, sid_s = raw[pos : pos + SESSION_ID_LEN], raw[pos + SESSION_ID_LEN : pos + 64]
        pos += 2 * SESSION_ID_LEN
        points = []
        for what in ("P1", "P2", "P"):
            r = raw[pos : pos + _POINT_LEN]
            pos += _POINT_LEN
            if r[0] != 4:
                raise InvalidProtocolMessage(f"stored {what} is not an uncompressed point")
            pt = (int.from_bytes(r[1:33], "big"), int.from_bytes(r[33:], "big"))
            points.append(_validate_point(be, pt, f"stored {what}"))
        p1, p2, public = points
        if be.mul_g(_inv(d2)) != p2 or _joint_public(be, _inv(d2), p1) != public:
            raise InvalidProtocolMessage("the stored key-generation state is inconsistent")
        return cls(be, d2, sid_s, p1, p2, public, _keygen_transcript(sid_p, sid_s, p1, p2))


class ServerSignState(_State):
    """The server's signing session: the message's e it derived itself, and the session id.

    Holds no secret; the share is used only in :func:`server_sign_complete`."""

    __slots__ = ("_e", "_session_id", "_share")

    def __init__(self, share: ServerShare, session_id: bytes, e: bytes) -> None:
        super().__init__()
        self._share = share
        self._session_id = session_id
        self._e = e

    @property
    def session_id(self) -> bytes:
        return self._session_id

    @property
    def e(self) -> bytes:
        """e = SM3(Z_A || M) of the message the server recorded."""
        return self._e


class PhoneSignState(_State):
    __slots__ = ("_e", "_message", "_session_id", "_share", "_uid", "_w1")

    def __init__(
        self, share: PhoneShare, session_id: bytes, message: bytes, uid: bytes, e: bytes, w1: int
    ) -> None:
        super().__init__()
        self._share = share
        self._session_id = session_id
        self._message = message
        self._uid = uid
        self._e = e
        self._w1 = _Secret(w1)


class PhoneDecryptState(_State):
    __slots__ = ("_c1", "_c2", "_c3", "_session_id", "_share", "_w")

    def __init__(
        self, share: PhoneShare, session_id: bytes, w: int, c1: Point, c3: bytes, c2: bytes
    ) -> None:
        super().__init__()
        self._share = share
        self._session_id = session_id
        self._w = _Secret(w)
        self._c1 = c1
        self._c3 = c3
        self._c2 = c2


def _same_session(got: bytes, expected: bytes) -> None:
    if not hmac.compare_digest(got, expected):
        raise InvalidProtocolMessage("the message belongs to another session: discard it")


def _check_type(obj: object, cls: type, what: str) -> None:
    if not isinstance(obj, cls):
        raise InvalidProtocolMessage(f"{what} must be a {cls.__name__}")


def _inv(x: int) -> int:
    return pow(x, -1, _N)


# ================================================================= key generation
def phone_keygen_begin(*, backend: str | None = None) -> tuple[KeygenRequest, PhoneKeygenState]:
    """Phone, step 1: draw d1, send P1 = [d1^-1]G with a fresh session id."""
    be = _backend.sm2_backend(backend)
    while True:
        d1 = _draw_scalar()
        p1 = be.mul_g(_inv(d1))
        if p1 != _G and p1 != be.point_negate(_G):
            break
    sid = _new_session_id()
    return KeygenRequest(sid, p1), PhoneKeygenState(be, d1, sid, p1)


def server_keygen_respond(
    request: KeygenRequest, *, backend: str | None = None
) -> tuple[KeygenResponse, ServerKeygenState]:
    """Server, step 2: validate P1, draw d2, answer P2 = [d2^-1]G with a proof bound to
    the transcript (both session ids, P1, P2)."""
    _check_type(request, KeygenRequest, "the keygen request")
    be = _backend.sm2_backend(backend)
    p1 = _refuse_trivial(be, _validate_point(be, request.phone_point, "phone point P1"), "P1")
    while True:
        d2 = _draw_scalar()
        x2 = _inv(d2)
        p2 = be.mul_g(x2)
        if p2 in (_G, be.point_negate(_G), p1, be.point_negate(p1)):
            continue  # pragma: no cover - probability 2^-254
        try:
            public = _joint_public(be, x2, p1)
        except InvalidProtocolMessage:  # pragma: no cover - d2 = d1^-1 by chance
            continue
        break
    sid_s = _new_session_id()
    transcript = _keygen_transcript(request.phone_session_id, sid_s, p1, p2)
    proof = _prove(be, x2, p2, transcript, _Role.SERVER)
    state = ServerKeygenState(be, d2, sid_s, p1, p2, public, transcript)
    return KeygenResponse(request.phone_session_id, sid_s, p2, proof), state


def phone_keygen_complete(
    state: PhoneKeygenState, response: KeygenResponse
) -> tuple[KeygenConfirm, PhoneShare]:
    """Phone, step 3: check P2 and the server's proof, compute P = [d1^-1]P2 - G, prove P1."""
    _check_type(state, PhoneKeygenState, "state")
    state._check_fresh()
    _check_type(response, KeygenResponse, "the keygen response")
    be = state._backend
    _same_session(response.phone_session_id, state._sid)
    p2 = _refuse_trivial(be, _validate_point(be, response.server_point, "server point P2"), "P2")
    if p2 == state._point or p2 == be.point_negate(state._point):
        raise InvalidProtocolMessage("the server's point P2 reflects ours (±P1): refused")
    transcript = _keygen_transcript(state._sid, response.server_session_id, state._point, p2)
    _verify_proof(be, response.proof, p2, transcript, _Role.SERVER)
    d1 = state._d1.value()
    x1 = _inv(d1)
    public = _joint_public(be, x1, p2)
    state._consume()
    proof = _prove(be, x1, state._point, transcript, _Role.PHONE)
    share = PhoneShare(d1, SM2PublicKey(*public, backend=be.name), backend=be.name)
    state._d1.wipe()
    return KeygenConfirm(response.server_session_id, public, proof), share


def server_keygen_complete(state: ServerKeygenState, confirm: KeygenConfirm) -> ServerShare:
    """Server, step 4: check the phone's proof for P1 and that it computed the same P."""
    _check_type(state, ServerKeygenState, "state")
    state._check_fresh()
    _check_type(confirm, KeygenConfirm, "the keygen confirmation")
    be = state._backend
    _same_session(confirm.server_session_id, state._sid)
    public = _validate_point(be, confirm.public_point, "joint public key")
    _verify_proof(be, confirm.proof, state._p1, state._transcript, _Role.PHONE)
    if not hmac.compare_digest(_point_bytes(public), _point_bytes(state._public)):
        raise InvalidProtocolMessage(
            "the phone computed a different joint public key: key generation failed"
        )
    state._consume()
    share = ServerShare(state._d2.value(), SM2PublicKey(*public, backend=be.name), backend=be.name)
    state._d2.wipe()
    return share


# ================================================================= signing
def _message(data: object) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CryptoError("the message to sign must be bytes")
    return bytes(data)


def server_sign_begin(
    share: ServerShare, message: bytes, uid: Uid = DEFAULT_UID
) -> tuple[SignChallenge, ServerSignState]:
    """Server: open a signing session for the message it records (it derives e itself)."""
    _check_type(share, ServerShare, "share")
    e = sm2.compute_e(share.public_key, _message(message), uid)
    sid = _new_session_id()
    return SignChallenge(sid), ServerSignState(share, sid, e)


def phone_sign_begin(
    share: PhoneShare, challenge: SignChallenge, message: bytes, uid: Uid = DEFAULT_UID
) -> tuple[SignRequest, PhoneSignState]:
    """Phone: for the message it displays, draw w1, send Q1 = [w1]G with a proof of w1
    bound to the session, the joint public key and e."""
    _check_type(share, PhoneShare, "share")
    _check_type(challenge, SignChallenge, "the sign challenge")
    be = share._backend
    _backend.note_signing(be)
    msg = _message(message)
    uid_b = sm2._uid(uid)
    e = sm2.compute_e(share.public_key, msg, uid_b)
    w1 = _draw_scalar()
    q1 = be.mul_g(w1)
    transcript = _sign_transcript(challenge.session_id, share.public_key, e, q1)
    proof = _prove(be, w1, q1, transcript, _Role.PHONE)
    state = PhoneSignState(share, challenge.session_id, msg, uid_b, e, w1)
    return SignRequest(challenge.session_id, q1, proof), state


def server_sign_complete(state: ServerSignState, request: SignRequest) -> SignResponse:
    """Server: check Q1 and the phone's proof against the e *it* derived, then answer
    r = (e + x([w2]G + [d2^-1]Q1)) mod n and s1 = d2 (r + w2) with a fresh w2."""
    _check_type(state, ServerSignState, "state")
    state._check_fresh()
    _check_type(request, SignRequest, "the sign request")
    share = state._share
    be = share._backend
    _same_session(request.session_id, state._session_id)
    q1 = _validate_point(be, request.nonce_point, "nonce point Q1")
    transcript = _sign_transcript(state._session_id, share.public_key, state._e, q1)
    try:
        _verify_proof(be, request.proof, q1, transcript, _Role.PHONE)
    except InvalidProof:
        raise InvalidProof(
            "the phone's proof does not verify for the message this server recorded: the phone "
            "signed something else or the request was altered; start a new session"
        ) from None
    state._consume()
    _backend.note_signing(be)
    d2 = share._secret.value()
    ei = int.from_bytes(state._e, "big")
    while True:
        w2 = _Secret(_draw_scalar())
        try:
            # two single multiplications (constant-time ladders in libcrypto) and an addition
            q = be.point_add(be.mul_g(w2.value()), _nonnull(be.point_mul(_inv(d2), q1)))
            if q is None:  # pragma: no cover - w2 = -d2^-1 w1 by chance
                continue
            r = (ei + q[0]) % _N
            s1 = d2 * (r + w2.value()) % _N
            if r == 0 or s1 == 0:  # pragma: no cover - probability 2^-255
                continue
            return SignResponse(state._session_id, r, s1)
        finally:
            w2.wipe()


def _nonnull(pt: Point | None) -> Point:
    if pt is None:  # pragma: no cover - a valid point times a non-zero scalar
        raise InvalidProtocolMessage("a validated point multiplied to infinity")
    return pt


def phone_sign_complete(state: PhoneSignState, response: SignResponse) -> bytes:
    """Phone: s = d1 (s1 + w1) - r; release DER (r, s) only if it verifies with the joint key.

    Raises :class:`~ebank_auth.errors.JointSignatureRefused` otherwise (a wrong share, e.g.
    from a wrong PIN, or a deviating server); the state is consumed either way."""
    _check_type(state, PhoneSignState, "state")
    state._check_fresh()
    _check_type(response, SignResponse, "the sign response")
    _same_session(response.session_id, state._session_id)
    r = _check_scalar(response.r, "r")
    s1 = _check_scalar(response.s1, "s1")
    state._consume()
    try:
        d1 = state._share._secret.value()
        s = (d1 * (s1 + state._w1.value()) - r) % _N
    finally:
        state._w1.wipe()
    if s == 0:
        raise JointSignatureRefused()
    signature = _asn1.encode_rs(r, s)
    try:
        state._share.public_key.verify(signature, state._message, uid=state._uid)
    except InvalidSignature:
        raise JointSignatureRefused() from None
    return signature


# ================================================================= decryption
def phone_decrypt_begin(
    share: PhoneShare, ciphertext: bytes, fmt: CipherFormat = CipherFormat.DER
) -> tuple[DecryptRequest, PhoneDecryptState]:
    """Phone: parse the GM/T 0009 ciphertext, check C1, send T1 = [w]C1 (fresh w).

    C1 is blinded so the server, which answers T2 = [d2^-1]T1, cannot finish the
    decryption itself (unblinded, T2 - C1 would be [d]C1)."""
    _check_type(share, PhoneShare, "share")
    be = share._backend
    try:
        der = sm2._cipher_to_der(bytes(ciphertext), fmt)
        x1, y1, c3, c2 = _asn1.decode_sm2_cipher(der)
    except (EncodingError, TypeError) as exc:
        raise DecryptionError(f"SM2 ciphertext is malformed: {exc}") from exc
    if len(c3) != 32 or not c2:
        raise DecryptionError("SM2 ciphertext needs a 32-byte C3 and a non-empty C2")
    try:
        c1 = _validate_point(be, (x1, y1), "C1")
    except InvalidProtocolMessage as exc:
        raise DecryptionError(f"SM2 ciphertext is invalid: {exc.message}") from None
    w = _draw_scalar()
    t1 = _nonnull(be.point_mul(w, c1))
    sid = _new_session_id()
    return DecryptRequest(sid, t1), PhoneDecryptState(share, sid, w, c1, c3, c2)


def server_decrypt(share: ServerShare, request: DecryptRequest) -> DecryptResponse:
    """Server: T2 = [d2^-1]T1 for a validated T1.

    Stateless here: the phone-shield service records the session id and allows each once."""
    _check_type(share, ServerShare, "share")
    _check_type(request, DecryptRequest, "the decrypt request")
    be = share._backend
    t1 = _validate_point(be, request.point, "blinded point T1")
    t2 = _nonnull(be.point_mul(_inv(share._secret.value()), t1))
    return DecryptResponse(request.session_id, t2)


def phone_decrypt_complete(state: PhoneDecryptState, response: DecryptResponse) -> bytes:
    """Phone: [d]C1 = [w^-1 d1^-1]T2 - C1, then KDF and the C3 check (GB/T 32918.4 B4-B7).

    A plaintext whose C3 does not match is never returned (DecryptionError)."""
    _check_type(state, PhoneDecryptState, "state")
    state._check_fresh()
    _check_type(response, DecryptResponse, "the decrypt response")
    be = state._share._backend
    _same_session(response.session_id, state._session_id)
    t2 = _validate_point(be, response.point, "point T2")
    state._consume()
    try:
        k = _inv(state._w.value() * state._share._secret.value() % _N)
    finally:
        state._w.wipe()
    shared = be.point_add(_nonnull(be.point_mul(k, t2)), be.point_negate(state._c1))
    if shared is None:
        raise DecryptionError("two-party decryption gave the point at infinity: refused")
    out = pure_sm2.decrypt_with_point(CURVE, shared, state._c3, state._c2, sm3.kdf, sm3.digest)
    if out is None:
        raise DecryptionError(
            "two-party decryption failed the C3 check: the ciphertext was altered, is for "
            "another key, or a share is wrong; nothing was released"
        )
    return out


# ================================================================= in-process helpers
def local_keygen(*, backend: str | None = None) -> tuple[PhoneShare, ServerShare, SM2PublicKey]:
    """Run key generation in one process: (phone share, server share, joint public key)."""
    request, phone_state = phone_keygen_begin(backend=backend)
    response, server_state = server_keygen_respond(
        KeygenRequest.from_bytes(request.to_bytes()), backend=backend
    )
    confirm, phone = phone_keygen_complete(
        phone_state, KeygenResponse.from_bytes(response.to_bytes())
    )
    server = server_keygen_complete(server_state, KeygenConfirm.from_bytes(confirm.to_bytes()))
    return phone, server, server.public_key


def local_sign(
    phone_share: PhoneShare, server_share: ServerShare, message: bytes, uid: Uid = DEFAULT_UID
) -> bytes:
    """Run a two-party signature in one process; DER SEQUENCE{r, s} as ``sm2`` makes it."""
    challenge, server_state = server_sign_begin(server_share, message, uid)
    request, phone_state = phone_sign_begin(
        phone_share, SignChallenge.from_bytes(challenge.to_bytes()), message, uid
    )
    response = server_sign_complete(server_state, SignRequest.from_bytes(request.to_bytes()))
    return phone_sign_complete(phone_state, SignResponse.from_bytes(response.to_bytes()))


def local_decrypt(
    phone_share: PhoneShare,
    server_share: ServerShare,
    ciphertext: bytes,
    fmt: CipherFormat = CipherFormat.DER,
) -> bytes:
    """Run a two-party GM/T 0009 decryption in one process."""
    request, phone_state = phone_decrypt_begin(phone_share, ciphertext, fmt)
    response = server_decrypt(server_share, DecryptRequest.from_bytes(request.to_bytes()))
    return phone_decrypt_complete(phone_state, DecryptResponse.from_bytes(response.to_bytes()))


# ================================================================= SigningKey adapter
Exchange = Callable[[SignRequest], SignResponse]
"""The phone's one round trip to the server: send a SignRequest, get the SignResponse."""


class PhoneSignHalf(Protocol):
    """The phone's half of a signature, as the server side calls it.

    Given the server's challenge, the message and the ID (which the phone displays and
    hashes itself) and the exchange to the server, return the DER signature the phone
    assembled and verified."""

    def __call__(
        self, challenge: SignChallenge, message: bytes, uid: bytes, exchange: Exchange
    ) -> bytes: ...


def local_phone(share: PhoneShare) -> PhoneSignHalf:
    """A :class:`PhoneSignHalf` that runs the phone's steps in this process with ``share``."""

    def phone(challenge: SignChallenge, message: bytes, uid: bytes, exchange: Exchange) -> bytes:
        request, state = phone_sign_begin(share, challenge, message, uid)
        return phone_sign_complete(state, exchange(request))

    return phone


class TwoPartySigningKey:
    """A :class:`~ebank_auth.crypto.keys.SigningKey` for a joint key: the server half is
    local, the phone half a callable — so a two-party key signs CSRs, certificates and CMS.

    The server opens the session for the exact bytes it is asked to sign, and checks the
    signature the phone returns against the joint public key before passing it on."""

    __slots__ = ("_phone", "_share")

    def __init__(self, server_share: ServerShare, phone: PhoneSignHalf) -> None:
        if not isinstance(server_share, ServerShare):
            raise InvalidKey("TwoPartySigningKey needs the ServerShare of the joint key")
        if not callable(phone):
            raise InvalidKey("the phone half must be callable (see PhoneSignHalf)")
        self._share = server_share
        self._phone = phone

    def public_key(self) -> SM2PublicKey:
        return self._share.public_key

    def sign_with(self, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
        if algorithm is not SignatureAlgorithm.SM2_SM3:
            raise UnsupportedAlgorithm(
                f"a two-party SM2 key signs with SM2_SM3 only, not {algorithm.name}"
            )
        message = _message(data)
        challenge, state = server_sign_begin(self._share, message, DEFAULT_UID)
        signature = self._phone(
            challenge, message, DEFAULT_UID, lambda request: server_sign_complete(state, request)
        )
        if not state.consumed:
            raise JointSignatureRefused("the phone returned a signature without a server round")
        try:
            self._share.public_key.verify(signature, message, uid=DEFAULT_UID)
        except InvalidSignature:
            raise JointSignatureRefused(
                "the phone returned a signature that does not verify with the joint key"
            ) from None
        return bytes(signature)

    def __repr__(self) -> str:
        return f"TwoPartySigningKey(public={self._share.public_key!r})"
