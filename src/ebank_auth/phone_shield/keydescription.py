"""The Android Key Attestation ``KeyDescription`` extension: encode and strictly decode.

Extension OID ``1.3.6.1.4.1.11129.2.1.17`` in the leaf certificate of an Android key
attestation chain (the public Android "Key and ID attestation" schema)::

    KeyDescription ::= SEQUENCE {
        attestationVersion        INTEGER,
        attestationSecurityLevel  SecurityLevel,        -- Software(0) TEE(1) StrongBox(2)
        keyMintVersion            INTEGER,              -- keymasterVersion before KeyMint
        keyMintSecurityLevel      SecurityLevel,
        attestationChallenge      OCTET STRING,
        uniqueId                  OCTET STRING,
        softwareEnforced          AuthorizationList,
        hardwareEnforced          AuthorizationList }

    AuthorizationList ::= SEQUENCE {  -- every field [tag] EXPLICIT and OPTIONAL
        purpose [1] SET OF INTEGER, algorithm [2] INTEGER, keySize [3] INTEGER,
        ecCurve [10] INTEGER, origin [702] INTEGER, rootOfTrust [704] RootOfTrust,
        attestationApplicationId [709] OCTET STRING, … }

    RootOfTrust ::= SEQUENCE { verifiedBootKey OCTET STRING, deviceLocked BOOLEAN,
        verifiedBootState ENUMERATED { Verified(0), SelfSigned(1), Unverified(2), Failed(3) },
        verifiedBootHash OCTET STRING OPTIONAL }

    AttestationApplicationId ::= SEQUENCE {
        packageInfos SET OF SEQUENCE { packageName OCTET STRING, version INTEGER },
        signatureDigests SET OF OCTET STRING }        -- SHA-256 of the app signing certs

This module is shared by the bank's verifier (:mod:`ebank_auth.phone_shield.attestation`) and
the software phone, which mints chains in the same structure.  The decoder is a small strict
DER reader (definite minimal lengths, high tag numbers, size and depth limits): tags of an
``AuthorizationList`` it does not use are skipped, never interpreted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from ebank_auth.errors import EncodingError

__all__ = [
    "KEY_DESCRIPTION_OID",
    "ApplicationId",
    "AuthorizationList",
    "KeyDescription",
    "KeyOrigin",
    "RootOfTrust",
    "SecurityLevel",
    "VerifiedBootState",
]

KEY_DESCRIPTION_OID: Final = "1.3.6.1.4.1.11129.2.1.17"
_MAX_SIZE: Final = 16 * 1024
_MAX_DEPTH: Final = 8


class SecurityLevel(enum.IntEnum):
    SOFTWARE = 0
    TRUSTED_ENVIRONMENT = 1
    STRONGBOX = 2


class VerifiedBootState(enum.IntEnum):
    VERIFIED = 0
    SELF_SIGNED = 1
    UNVERIFIED = 2
    FAILED = 3


class KeyOrigin(enum.IntEnum):
    GENERATED = 0
    DERIVED = 1
    IMPORTED = 2
    RESERVED = 3
    SECURELY_IMPORTED = 4


class _Tag(enum.IntEnum):
    """AuthorizationList tags this code reads or writes."""

    PURPOSE = 1
    ALGORITHM = 2
    KEY_SIZE = 3
    EC_CURVE = 10
    ORIGIN = 702
    ROOT_OF_TRUST = 704
    ATTESTATION_APPLICATION_ID = 709


# universal tags
_BOOLEAN, _INTEGER, _OCTET_STRING, _ENUMERATED, _SEQUENCE, _SET = 1, 2, 4, 10, 16, 17


@dataclass(frozen=True)
class RootOfTrust:
    verified_boot_key: bytes
    device_locked: bool
    verified_boot_state: int  # a VerifiedBootState value (unknown values kept, then refused)
    verified_boot_hash: bytes | None = None


@dataclass(frozen=True)
class ApplicationId:
    packages: tuple[tuple[str, int], ...]  # (package name, version)
    signature_digests: tuple[bytes, ...]  # SHA-256 of each signing certificate


@dataclass(frozen=True)
class AuthorizationList:
    purposes: tuple[int, ...] = ()
    algorithm: int | None = None
    key_size: int | None = None
    ec_curve: int | None = None
    origin: int | None = None
    root_of_trust: RootOfTrust | None = None
    application_id: ApplicationId | None = None


@dataclass(frozen=True)
class KeyDescription:
    attestation_version: int
    attestation_security_level: int
    keymint_version: int
    keymint_security_level: int
    challenge: bytes
    unique_id: bytes = b""
    software_enforced: AuthorizationList = field(default_factory=AuthorizationList)
    hardware_enforced: AuthorizationList = field(default_factory=AuthorizationList)

    def to_der(self) -> bytes:
        """DER of the extension value."""
        return _seq(
            _int(self.attestation_version),
            _enum(self.attestation_security_level),
            _int(self.keymint_version),
            _enum(self.keymint_security_level),
            _tlv(0, False, _OCTET_STRING, self.challenge),
            _tlv(0, False, _OCTET_STRING, self.unique_id),
            _auth_list(self.software_enforced),
            _auth_list(self.hardware_enforced),
        )

    @classmethod
    def from_der(cls, data: bytes) -> KeyDescription:
        """Strictly decode the extension value; anything malformed raises EncodingError."""
        if not isinstance(data, (bytes, bytearray)) or len(data) > _MAX_SIZE:
            raise EncodingError("KeyDescription must be at most 16 KiB of DER")
        outer = _Reader(bytes(data), 0)
        body = outer.expect_universal(_SEQUENCE)
        outer.end()
        r = _Reader(body, 1)
        desc = cls(
            attestation_version=r.integer(),
            attestation_security_level=r.enumerated(),
            keymint_version=r.integer(),
            keymint_security_level=r.enumerated(),
            challenge=r.expect_universal(_OCTET_STRING),
            unique_id=r.expect_universal(_OCTET_STRING),
            software_enforced=_read_auth_list(r.expect_universal(_SEQUENCE), 2),
            hardware_enforced=_read_auth_list(r.expect_universal(_SEQUENCE), 2),
        )
        r.end()  # later schema versions add nothing after hardwareEnforced
        return desc


# ---------------------------------------------------------------------- encoder
def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(cls: int, constructed: bool, number: int, content: bytes) -> bytes:
    first = (cls << 6) | (0x20 if constructed else 0)
    if number < 31:
        head = bytes([first | number])
    else:
        digits = []
        n = number
        while True:
            digits.append(n & 0x7F)
            n >>= 7
            if not n:
                break
        digits.reverse()
        head = bytes([first | 0x1F]) + bytes([d | 0x80 for d in digits[:-1]] + [digits[-1]])
    return head + _length(len(content)) + content


def _int_bytes(v: int) -> bytes:
    return v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True)


def _int(v: int) -> bytes:
    return _tlv(0, False, _INTEGER, _int_bytes(v))


def _enum(v: int) -> bytes:
    return _tlv(0, False, _ENUMERATED, _int_bytes(v))


def _seq(*parts: bytes) -> bytes:
    return _tlv(0, True, _SEQUENCE, b"".join(parts))


def _set(*parts: bytes) -> bytes:
    return _tlv(0, True, _SET, b"".join(sorted(parts)))  # DER: SET OF sorted


def _explicit(tag: int, inner: bytes) -> bytes:
    return _tlv(2, True, tag, inner)


def _auth_list(a: AuthorizationList) -> bytes:
    parts: list[bytes] = []
    if a.purposes:
        parts.append(_explicit(_Tag.PURPOSE, _set(*(_int(p) for p in a.purposes))))
    if a.algorithm is not None:
        parts.append(_explicit(_Tag.ALGORITHM, _int(a.algorithm)))
    if a.key_size is not None:
        parts.append(_explicit(_Tag.KEY_SIZE, _int(a.key_size)))
    if a.ec_curve is not None:
        parts.append(_explicit(_Tag.EC_CURVE, _int(a.ec_curve)))
    if a.origin is not None:
        parts.append(_explicit(_Tag.ORIGIN, _int(a.origin)))
    if a.root_of_trust is not None:
        rot = a.root_of_trust
        fields = [
            _tlv(0, False, _OCTET_STRING, rot.verified_boot_key),
            _tlv(0, False, _BOOLEAN, b"\xff" if rot.device_locked else b"\x00"),
            _enum(rot.verified_boot_state),
        ]
        if rot.verified_boot_hash is not None:
            fields.append(_tlv(0, False, _OCTET_STRING, rot.verified_boot_hash))
        parts.append(_explicit(_Tag.ROOT_OF_TRUST, _seq(*fields)))
    if a.application_id is not None:
        app = a.application_id
        inner = _seq(
            _set(
                *(
                    _seq(_tlv(0, False, _OCTET_STRING, name.encode("utf-8")), _int(version))
                    for name, version in app.packages
                )
            ),
            _set(*(_tlv(0, False, _OCTET_STRING, d) for d in app.signature_digests)),
        )
        parts.append(
            _explicit(_Tag.ATTESTATION_APPLICATION_ID, _tlv(0, False, _OCTET_STRING, inner))
        )
    return _seq(*parts)


# ---------------------------------------------------------------------- decoder
class _Reader:
    """Reads consecutive TLVs of one constructed value's content."""

    def __init__(self, data: bytes, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise EncodingError("KeyDescription is nested too deeply")
        self.data = data
        self.pos = 0
        self.depth = depth

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def end(self) -> None:
        if not self.at_end():
            raise EncodingError("KeyDescription has trailing bytes")

    def next(self) -> tuple[int, bool, int, bytes]:
        d, p = self.data, self.pos
        if p >= len(d):
            raise EncodingError("KeyDescription is truncated")
        first = d[p]
        p += 1
        cls, constructed, number = first >> 6, bool(first & 0x20), first & 0x1F
        if number == 0x1F:
            number = 0
            for count in range(4):
                if p >= len(d):
                    raise EncodingError("KeyDescription tag is truncated")
                b = d[p]
                p += 1
                if count == 0 and b == 0x80:
                    raise EncodingError("KeyDescription tag is not minimally encoded")
                number = (number << 7) | (b & 0x7F)
                if not b & 0x80:
                    break
            else:
                raise EncodingError("KeyDescription tag number is too large")
            if number < 31:
                raise EncodingError("KeyDescription tag is not minimally encoded")
        if p >= len(d):
            raise EncodingError("KeyDescription length is truncated")
        n = d[p]
        p += 1
        if n & 0x80:
            k = n & 0x7F
            if k == 0 or k > 3 or p + k > len(d):
                raise EncodingError("KeyDescription uses an indefinite or oversized length")
            n = int.from_bytes(d[p : p + k], "big")
            p += k
            if n < 0x80 or n.bit_length() <= 8 * (k - 1):
                raise EncodingError("KeyDescription length is not minimally encoded")
        if p + n > len(d):
            raise EncodingError("KeyDescription value runs past its container")
        self.pos = p + n
        return cls, constructed, number, d[p : p + n]

    def expect_universal(self, number: int) -> bytes:
        cls, constructed, got, content = self.next()
        want_constructed = number in (_SEQUENCE, _SET)
        if cls != 0 or got != number or constructed != want_constructed:
            raise EncodingError(f"KeyDescription: expected universal tag {number}, got {got}")
        return content

    def integer(self) -> int:
        return _decode_int(self.expect_universal(_INTEGER))

    def enumerated(self) -> int:
        return _decode_int(self.expect_universal(_ENUMERATED))

    def boolean(self) -> bool:
        content = self.expect_universal(_BOOLEAN)
        if content not in (b"\x00", b"\xff"):
            raise EncodingError("KeyDescription BOOLEAN is not DER (00 or FF)")
        return content == b"\xff"


def _decode_int(content: bytes) -> int:
    if not content or len(content) > 16:
        raise EncodingError("KeyDescription INTEGER has a bad length")
    if len(content) > 1 and (
        (content[0] == 0 and not content[1] & 0x80) or (content[0] == 0xFF and content[1] & 0x80)
    ):
        raise EncodingError("KeyDescription INTEGER is not minimally encoded")
    return int.from_bytes(content, "big", signed=True)


def _read_auth_list(content: bytes, depth: int) -> AuthorizationList:
    r = _Reader(content, depth)
    values: dict[str, object] = {}
    last = -1
    while not r.at_end():
        cls, constructed, tag, inner = r.next()
        if cls != 2 or not constructed:
            raise EncodingError("AuthorizationList entries must be [tag] EXPLICIT")
        if tag <= last:
            raise EncodingError("AuthorizationList tags must be in increasing order, once each")
        last = tag
        ir = _Reader(inner, depth + 1)
        if tag == _Tag.PURPOSE:
            sr = _Reader(ir.expect_universal(_SET), depth + 2)
            purposes = []
            while not sr.at_end():
                purposes.append(sr.integer())
            values["purposes"] = tuple(purposes)
        elif tag in (_Tag.ALGORITHM, _Tag.KEY_SIZE, _Tag.EC_CURVE, _Tag.ORIGIN):
            name = {
                _Tag.ALGORITHM: "algorithm",
                _Tag.KEY_SIZE: "key_size",
                _Tag.EC_CURVE: "ec_curve",
                _Tag.ORIGIN: "origin",
            }[_Tag(tag)]
            values[name] = ir.integer()
        elif tag == _Tag.ROOT_OF_TRUST:
            rr = _Reader(ir.expect_universal(_SEQUENCE), depth + 2)
            key = rr.expect_universal(_OCTET_STRING)
            locked = rr.boolean()
            state = rr.enumerated()
            boot_hash = None if rr.at_end() else rr.expect_universal(_OCTET_STRING)
            rr.end()
            values["root_of_trust"] = RootOfTrust(key, locked, state, boot_hash)
        elif tag == _Tag.ATTESTATION_APPLICATION_ID:
            values["application_id"] = _read_app_id(ir.expect_universal(_OCTET_STRING), depth)
        else:
            continue  # a tag this code does not use: skipped, never interpreted
        ir.end()
    return AuthorizationList(**values)  # type: ignore[arg-type]


def _read_app_id(data: bytes, depth: int) -> ApplicationId:
    outer = _Reader(data, depth + 2)
    seq = _Reader(outer.expect_universal(_SEQUENCE), depth + 3)
    outer.end()
    pkgs_r = _Reader(seq.expect_universal(_SET), depth + 4)
    packages: list[tuple[str, int]] = []
    while not pkgs_r.at_end():
        pr = _Reader(pkgs_r.expect_universal(_SEQUENCE), depth + 5)
        try:
            name = pr.expect_universal(_OCTET_STRING).decode("utf-8")
        except UnicodeDecodeError:
            raise EncodingError("attestationApplicationId package name is not UTF-8") from None
        packages.append((name, pr.integer()))
        pr.end()
    digs_r = _Reader(seq.expect_universal(_SET), depth + 4)
    digests: list[bytes] = []
    while not digs_r.at_end():
        digests.append(digs_r.expect_universal(_OCTET_STRING))
    seq.end()
    return ApplicationId(tuple(packages), tuple(digests))
