"""CMS SignedData (RFC 5652) and its GM/T 0010 SM2 profile: sign and verify.

Signing::

    from ebank_auth.crypto import cms
    der = cms.sign(b"payload", cms.Signer(key=user_key, certificate=user_cert,
                                          chain=(sub_ca_cert,)),
                   detached=False, profile=cms.CMSProfile.GMT0010)

Verifying::

    content = cms.verify(der, trust_roots=[root_cert])  # the signed bytes, or raises
    # errors.CMSVerificationError with .reason (CMSReason) and .result when refused

    report = cms.validate(der, trust_roots=[root_cert])  # CMSValidationResult, never raises
    report.valid, report.reason, report.message, report.content, report.signers

Extension points for the signature formats built on top (:mod:`~ebank_auth.crypto.tsp`,
:mod:`~ebank_auth.crypto.cades`): ``sign(content_type=..., extra_signed_attributes=...)``
signs other content types (an RFC 3161 TSTInfo) and adds signed attributes
(signing-certificate-v2); :func:`add_unsigned_attribute` adds an unsigned attribute
(a signature timestamp) to a SignerInfo; :func:`parse` lists each SignerInfo's signature
value and attributes (:class:`SignerInfoView`).

Profiles: ``RFC5652`` uses id-data / id-signedData; ``GMT0010`` uses
1.2.156.10197.6.1.4.2.1 / .2.  SM2 signers sign with SM2-with-SM3
(1.2.156.10197.1.501, default ID) over the DER of the signed attributes and use
SM3 as digest; RSA signers use SHA-256 (or SM3 with sm3WithRSA) and
rsaEncryption in SignerInfo, as OpenSSL does.  Signed attributes:
contentType, messageDigest, signingTime.

Verification checks, for every SignerInfo: the digest algorithm fits the
signature algorithm (``WRONG_DIGEST``), messageDigest equals the content's
digest (``CONTENT_TAMPERED``), the signature (``BAD_SIGNATURE``), and the
signer certificate's chain to the trust roots with digitalSignature required
(``SIGNER_NOT_TRUSTED``, with the chain's own reason in ``chain_reason``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

from asn1crypto import algos as a_algos
from asn1crypto import cms as a_cms
from asn1crypto import core as a_core

from ebank_auth.crypto import der, oids, sm3
from ebank_auth.crypto._asn1 import params_absent_or_null
from ebank_auth.crypto.keys import (
    KeyAlgorithm,
    SignatureAlgorithm,
    SigningKey,
    default_signature_algorithm,
    public_key_to_spki,
    verify_data,
)
from ebank_auth.crypto.x509.certificate import (
    Certificate,
    KeyUsage,
    _as_utc,
    as_certificates,
    parse_der,
)
from ebank_auth.crypto.x509.chain import ValidationReason, ValidationResult, validate_chain
from ebank_auth.crypto.x509.crl import CertificateRevocationList
from ebank_auth.errors import (
    CMSError,
    CMSVerificationError,
    EbankAuthError,
    EncodingError,
    InvalidKey,
    InvalidSignature,
    UnsupportedAlgorithm,
)

__all__ = [
    "CMSProfile",
    "CMSReason",
    "CMSValidationResult",
    "SignedDataInfo",
    "Signer",
    "SignerInfoView",
    "SignerResult",
    "add_unsigned_attribute",
    "parse",
    "sign",
    "validate",
    "verify",
]

MAX_CMS_SIZE: Final = der.MAX_CMS_SIZE
_PARSE_ERRORS: Final = der.PARSE_ERRORS
_DIGESTS: Final[dict[str, Callable[[bytes], bytes]]] = {
    oids.SM3: sm3.digest,
    oids.SHA256: lambda b: hashlib.sha256(b).digest(),
}


class CMSProfile(str, Enum):
    """Content-type OIDs used: RFC 5652 (id-data/id-signedData) or GM/T 0010."""

    RFC5652 = "rfc5652"
    GMT0010 = "gmt0010"


class CMSReason(str, Enum):
    """Why a SignedData was accepted or refused."""

    OK = "ok"
    MALFORMED = "malformed"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    NO_SIGNERS = "no_signers"
    CONTENT_MISSING = "content_missing"
    CONTENT_TYPE_MISMATCH = "content_type_mismatch"
    CONTENT_TAMPERED = "content_tampered"
    WRONG_DIGEST = "wrong_digest"
    BAD_SIGNATURE = "bad_signature"
    SIGNER_CERTIFICATE_MISSING = "signer_certificate_missing"
    SIGNER_NOT_TRUSTED = "signer_not_trusted"


@dataclass(frozen=True)
class Signer:
    """One signer: its ``key`` (any :class:`~ebank_auth.crypto.keys.SigningKey`: software or
    on a token), its ``certificate`` and the CA certificates to embed (``chain``, issuer
    first; the root may be left out)."""

    key: SigningKey
    certificate: Certificate
    chain: Sequence[Certificate] = ()
    signature_algorithm: SignatureAlgorithm | None = None


@dataclass(frozen=True)
class SignerResult:
    """Per-signer outcome: ``certificate`` (None if not found), ``reason``,
    ``message``, ``signing_time`` (from the signed attributes, or None),
    ``signature_algorithm``, ``digest_algorithm`` (dotted OID), ``chain_result``."""

    reason: CMSReason
    message: str
    certificate: Certificate | None
    signing_time: dt.datetime | None
    signature_algorithm: SignatureAlgorithm | None
    digest_algorithm: str
    chain_result: ValidationResult | None

    @property
    def valid(self) -> bool:
        return self.reason is CMSReason.OK


@dataclass(frozen=True)
class CMSValidationResult:
    """Outcome of :func:`validate`: ``valid`` only when every signer is valid.

    ``reason``/``message`` are the first failure (OK when valid),
    ``chain_reason`` the certificate-path reason when the signer was not
    trusted, ``content`` the signed bytes (attached or the detached input),
    ``signers`` one SignerResult each, ``profile`` the content-type profile.
    """

    valid: bool
    reason: CMSReason
    message: str
    content: bytes | None
    signers: tuple[SignerResult, ...]
    profile: CMSProfile | None
    chain_reason: ValidationReason | None = None

    def raise_for_status(self) -> None:
        """Raise errors.CMSVerificationError(reason=...) unless valid."""
        if not self.valid:
            raise CMSVerificationError(self.message, reason=self.reason, result=self)


@dataclass(frozen=True)
class SignerInfoView:
    """One SignerInfo as :func:`parse` found it (nothing verified).

    ``signature`` is the signature value; ``signed_attributes`` and
    ``unsigned_attributes`` map each attribute type (dotted OID) to the DER of its
    values, in order; ``issuer_der``/``serial_number`` (or ``subject_key_identifier``)
    identify the signer's certificate.
    """

    signature: bytes
    digest_algorithm: str
    signed_attributes: dict[str, tuple[bytes, ...]]
    unsigned_attributes: dict[str, tuple[bytes, ...]]
    issuer_der: bytes | None
    serial_number: int | None
    subject_key_identifier: bytes | None


@dataclass(frozen=True)
class SignedDataInfo:
    """What :func:`parse` found: ``profile``, ``content`` (None when detached),
    ``certificates`` embedded, ``signer_count``, ``digest_algorithms``,
    ``content_type`` (the encapsulated content type, dotted) and ``signer_infos``."""

    profile: CMSProfile
    content: bytes | None
    certificates: tuple[Certificate, ...]
    signer_count: int
    digest_algorithms: tuple[str, ...]
    content_type: str = oids.CMS_DATA
    signer_infos: tuple[SignerInfoView, ...] = ()


# ----------------------------------------------------------------------------- ASN.1


class _ContentInfo(a_core.Sequence):
    _fields = [
        ("content_type", a_cms.ContentType),
        ("content", a_core.Any, {"explicit": 0, "optional": True}),
    ]


class _SignedData(a_cms.SignedData):
    """SignedData whose encapContentInfo is always the CMS form (OCTET STRING content)."""

    _fields = [
        ("version", a_cms.CMSVersion),
        ("digest_algorithms", a_cms.DigestAlgorithms),
        ("encap_content_info", a_cms.EncapsulatedContentInfo),
        ("certificates", a_cms.CertificateSet, {"implicit": 0, "optional": True}),
        ("crls", a_cms.RevocationInfoChoices, {"implicit": 1, "optional": True}),
        ("signer_infos", a_cms.SignerInfos),
    ]
    _spec_callbacks = None


_PROFILE_OIDS: Final = {
    CMSProfile.RFC5652: (oids.CMS_SIGNED_DATA, oids.CMS_DATA),
    CMSProfile.GMT0010: (oids.GMT_SIGNED_DATA, oids.GMT_DATA),
}


def _digest_oid(alg: SignatureAlgorithm) -> str:
    return (
        oids.SHA256
        if alg
        in (
            SignatureAlgorithm.SHA256_RSA,
            SignatureAlgorithm.ECDSA_SHA256,
        )
        else oids.SM3
    )


def _signer_info_sig_alg(alg: SignatureAlgorithm) -> a_algos.SignedDigestAlgorithm:
    if alg in (SignatureAlgorithm.SHA256_RSA, SignatureAlgorithm.SM3_RSA):
        return a_algos.SignedDigestAlgorithm(
            {"algorithm": oids.RSA_ENCRYPTION, "parameters": a_core.Null()}
        )
    return a_algos.SignedDigestAlgorithm({"algorithm": alg.value})


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def sign(
    content: bytes,
    signers: Signer | Sequence[Signer],
    *,
    detached: bool = False,
    profile: CMSProfile = CMSProfile.RFC5652,
    signing_time: dt.datetime | None = None,
    include_certificates: bool = True,
    signed_attributes: bool = True,
    content_type: str | None = None,
    extra_signed_attributes: Sequence[tuple[str, bytes]] = (),
) -> bytes:
    """Make a DER ContentInfo/SignedData over ``content``.

    ``detached`` leaves the content out (the verifier supplies it).
    ``signing_time`` defaults to now.  ``signed_attributes=False`` signs the
    content directly (no contentType/messageDigest/signingTime).
    ``content_type``: the encapsulated content type (dotted OID; default the
    profile's data type), e.g. id-ct-TSTInfo for a timestamp token — SignedData is
    then version 3 (RFC 5652 §5.1).  ``extra_signed_attributes``: ``(dotted OID,
    DER of the one value)`` pairs added to every signer's signed attributes (needs
    ``signed_attributes``); contentType, messageDigest and signingTime are refused
    here (this function writes them).
    """
    if not isinstance(content, (bytes, bytearray)):
        raise CMSError("content must be bytes")
    content = bytes(content)
    signer_list = [signers] if isinstance(signers, Signer) else list(signers)
    if not signer_list:
        raise CMSError("at least one signer is needed")
    signed_data_oid, data_oid = _PROFILE_OIDS[CMSProfile(profile)]
    profile_data_oid = data_oid
    if content_type is not None:
        data_oid = a_cms.ContentType(content_type).dotted
    extra = list(extra_signed_attributes)
    if extra and not signed_attributes:
        raise CMSError("extra_signed_attributes need signed_attributes=True")
    extra_types = [a_cms.CMSAttributeType(oid).dotted for oid, _ in extra]
    if len(set(extra_types)) != len(extra_types) or set(extra_types) & {
        oids.ATTR_CONTENT_TYPE,
        oids.ATTR_MESSAGE_DIGEST,
        oids.ATTR_SIGNING_TIME,
    }:
        raise CMSError(
            "extra_signed_attributes must not repeat a type nor set contentType, "
            "messageDigest or signingTime"
        )
    when = _as_utc(signing_time).replace(microsecond=0) if signing_time else _utc_now()
    digest_algs: list[str] = []
    infos = []
    certs: list[Certificate] = []
    for s in signer_list:
        alg = s.signature_algorithm or default_signature_algorithm(s.key)
        if s.certificate.spki_der != _spki_of(s.key):
            raise CMSError(f"signer key does not match the certificate {s.certificate.subject!r}")
        digest_oid = _digest_oid(alg)
        if digest_oid not in digest_algs:
            digest_algs.append(digest_oid)
        info: dict[str, object] = {
            "version": "v1",
            "sid": a_cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value={
                    "issuer": s.certificate.asn1["tbs_certificate"]["issuer"],
                    "serial_number": s.certificate.serial_number,
                },
            ),
            "digest_algorithm": {"algorithm": digest_oid},
            "signature_algorithm": _signer_info_sig_alg(alg),
        }
        if signed_attributes:
            attrs = a_cms.CMSAttributes(
                [
                    {"type": "content_type", "values": [data_oid]},
                    {
                        "type": "signing_time",
                        "values": [a_cms.Time(name="utc_time", value=when)]
                        if 1950 <= when.year < 2050
                        else [a_cms.Time(name="generalized_time", value=when)],
                    },
                    {"type": "message_digest", "values": [_DIGESTS[digest_oid](content)]},
                    *(
                        _raw_attribute(oid, value)
                        for oid, value in zip(extra_types, (v for _, v in extra), strict=True)
                    ),
                ]
            )
            to_sign = b"\x31" + attrs.dump()[1:]
            info["signed_attrs"] = attrs
        else:
            to_sign = content
        sig = s.key.sign_with(alg, to_sign)
        info["signature"] = sig
        infos.append(a_cms.SignerInfo(info))
        for c in (s.certificate, *s.chain):
            if c not in certs:
                certs.append(c)
    encap: dict[str, object] = {"content_type": data_oid}
    if not detached:
        encap["content"] = a_core.ParsableOctetString(content)
    sd: dict[str, object] = {
        "version": "v3" if data_oid != profile_data_oid else "v1",
        "digest_algorithms": [{"algorithm": d} for d in digest_algs],
        "encap_content_info": encap,
        "signer_infos": infos,
    }
    if include_certificates:
        sd["certificates"] = [
            a_cms.CertificateChoices(name="certificate", value=c.asn1) for c in certs
        ]
    signed = _SignedData(sd)
    oid_der = a_cms.ContentType(signed_data_oid).dump()
    return _tlv(0x30, oid_der + _tlv(0xA0, signed.dump()))


def _raw_attribute(oid: str, value_der: bytes) -> a_cms.CMSAttribute:
    """An attribute with one value given as DER (kept byte for byte)."""
    value = bytes(value_der)
    with der.parsing("attribute value"):
        a_core.Asn1Value.load(value, strict=True)  # one complete DER value
    body = a_cms.CMSAttributeType(oid).dump() + _tlv(0x31, value)
    return a_cms.CMSAttribute.load(_tlv(0x30, body))


def add_unsigned_attribute(
    data: bytes,
    attr_type: str,
    value_der: bytes,
    *,
    signer_index: int = 0,
    max_size: int = MAX_CMS_SIZE,
) -> bytes:
    """Return ``data`` (a SignedData) with an unsigned attribute added to one SignerInfo.

    ``attr_type`` is a dotted OID, ``value_der`` the DER of its one value (e.g. a
    TimeStampToken for id-aa-signatureTimeStampToken).  The signature and everything
    it covers are kept byte for byte; an attribute of the same type already present
    is refused (add values to a fresh copy instead).
    """
    profile, sd = _load(data, max_size)
    signed_data_oid = _PROFILE_OIDS[profile][0]
    try:
        infos = sd["signer_infos"]
        if not 0 <= signer_index < len(infos):
            raise CMSError(f"the SignedData has no signer {signer_index}")
        si = infos[signer_index]
        oid = a_cms.CMSAttributeType(attr_type).dotted
        current = si["unsigned_attrs"]
        existing = [] if isinstance(current, a_core.Void) else list(current)
        if any(a["type"].dotted == oid for a in existing):
            raise CMSError(f"the signer already has an unsigned attribute {oid}")
        si["unsigned_attrs"] = a_cms.CMSAttributes([*existing, _raw_attribute(oid, value_der)])
        body = _redump(sd)
    except CMSError:
        raise
    except _PARSE_ERRORS as exc:
        raise EncodingError(f"CMS SignedData is malformed: {exc}") from None
    oid_der = a_cms.ContentType(signed_data_oid).dump()
    return _tlv(0x30, oid_der + _tlv(0xA0, body))


def _redump(sd: _SignedData) -> bytes:
    """Encode a SignedData after a SignerInfo changed, keeping every unchanged part's bytes."""
    infos = sd["signer_infos"]
    body = b"".join(si.dump(force=False) for si in infos)
    parts = [
        sd[name].dump() for name, *_ in sd._fields[:-1] if not isinstance(sd[name], a_core.Void)
    ]
    return _tlv(0x30, b"".join(parts) + _tlv(0x31, body))


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _spki_of(key: SigningKey) -> bytes:
    return public_key_to_spki(key.public_key())


# ----------------------------------------------------------------------------- parsing


def _load(data: bytes, max_size: int) -> tuple[CMSProfile, _SignedData]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EncodingError("CMS: expected bytes")
    raw = bytes(data)
    if der.is_pem(raw):
        blocks = der.pem_blocks(raw, ("CMS", "PKCS7"))
        if not blocks:
            raise EncodingError("CMS: no PEM block labelled CMS or PKCS7")
        raw = blocks[0]
    der.check_der(raw, what="CMS", max_size=max_size, allow_indefinite=True)
    try:
        ci = _ContentInfo.load(raw)
        ct = ci["content_type"].dotted
        if ct == oids.CMS_SIGNED_DATA:
            profile = CMSProfile.RFC5652
        elif ct == oids.GMT_SIGNED_DATA:
            profile = CMSProfile.GMT0010
        else:
            raise CMSError(f"CMS content type {ct} is not SignedData")
        if isinstance(ci["content"], a_core.Void):
            raise EncodingError("CMS SignedData has no content")
        sd = ci["content"].parse(_SignedData)
    except CMSError:
        raise
    except _PARSE_ERRORS as exc:
        raise EncodingError(f"CMS SignedData is malformed: {exc}") from None
    return profile, sd


def parse(data: bytes, *, max_size: int = MAX_CMS_SIZE) -> SignedDataInfo:
    """Parse a ContentInfo/SignedData (PEM or DER/BER) without verifying it."""
    profile, sd = _load(data, max_size)
    try:
        content = _econtent(sd)
        certs = _embedded_certificates(sd)
        return SignedDataInfo(
            profile,
            content,
            tuple(certs),
            len(sd["signer_infos"]),
            tuple(d["algorithm"].dotted for d in sd["digest_algorithms"]),
            sd["encap_content_info"]["content_type"].dotted,
            tuple(_signer_info_view(si) for si in sd["signer_infos"]),
        )
    except _PARSE_ERRORS as exc:
        raise EncodingError(f"CMS SignedData is malformed: {exc}") from None


def _attribute_map(attrs: object) -> dict[str, tuple[bytes, ...]]:
    if isinstance(attrs, a_core.Void):
        return {}
    out: dict[str, tuple[bytes, ...]] = {}
    assert isinstance(attrs, a_cms.CMSAttributes)
    for attr in attrs:
        oid = attr["type"].dotted
        if oid in out:
            raise EncodingError(f"attribute {oid} appears twice in one SignerInfo")
        out[oid] = tuple(v.dump() for v in attr["values"])
    return out


def _signer_info_view(si: a_cms.SignerInfo) -> SignerInfoView:
    sid = si["sid"]
    by_issuer = sid.name == "issuer_and_serial_number"
    return SignerInfoView(
        signature=bytes(si["signature"].native),
        digest_algorithm=si["digest_algorithm"]["algorithm"].dotted,
        signed_attributes=_attribute_map(si["signed_attrs"]),
        unsigned_attributes=_attribute_map(si["unsigned_attrs"]),
        issuer_der=sid.chosen["issuer"].dump() if by_issuer else None,
        serial_number=int(sid.chosen["serial_number"].native) if by_issuer else None,
        subject_key_identifier=None if by_issuer else bytes(sid.chosen.native),
    )


def _check_version(sd: _SignedData, profile: CMSProfile, e_type: str) -> None:
    """RFC 5652 §5.1 version rule (GM/T 0010 uses 1 with its own data OID)."""
    ski_signer = any(si["sid"].name != "issuer_and_serial_number" for si in sd["signer_infos"])
    if ski_signer or (profile is CMSProfile.RFC5652 and e_type != oids.CMS_DATA):
        expected = "v3"
    else:
        expected = "v1"
    if sd["version"].native != expected:
        raise EncodingError(
            f"SignedData version {sd['version'].native} is wrong for this content (expected "
            f"{expected})"
        )


def _econtent(sd: _SignedData) -> bytes | None:
    content = sd["encap_content_info"]["content"]
    if isinstance(content, a_core.Void):
        return None
    if isinstance(content, a_core.ParsableOctetString):
        # the octets as sent (asn1crypto may have parsed them, e.g. a TSTInfo)
        octets: bytes = content.__bytes__()
        return octets
    native = content.native
    if native is None:
        return None
    return native if isinstance(native, bytes) else bytes(native)


def _embedded_certificates(sd: _SignedData) -> list[Certificate]:
    out: list[Certificate] = []
    certs = sd["certificates"]
    if isinstance(certs, a_core.Void):
        return out
    for choice in certs:
        if choice.name == "certificate":
            out.append(parse_der(choice.chosen.dump()))
    return out


# ----------------------------------------------------------------------------- verify


def _fail_result(
    reason: CMSReason, message: str, profile: CMSProfile | None = None
) -> CMSValidationResult:
    return CMSValidationResult(False, reason, message, None, (), profile)


@dataclass(frozen=True)
class _Checks:
    """What every SignerInfo of one SignedData is checked against."""

    signed_content: bytes
    e_type: str
    listed_digests: frozenset[str]
    pool: tuple[Certificate, ...]
    intermediates: tuple[Certificate, ...]
    roots: tuple[Certificate, ...]
    at: dt.datetime | None
    crls: tuple[CertificateRevocationList | bytes, ...]
    required_key_usage: KeyUsage | Iterable[KeyUsage] | None
    require_crl: bool


def validate(
    data: bytes,
    *,
    content: bytes | None = None,
    trust_roots: Iterable[Certificate | bytes] = (),
    intermediates: Iterable[Certificate | bytes] = (),
    certificates: Iterable[Certificate | bytes] = (),
    at: dt.datetime | None = None,
    crls: Iterable[CertificateRevocationList | bytes] = (),
    required_key_usage: KeyUsage | Iterable[KeyUsage] | None = KeyUsage.DIGITAL_SIGNATURE,
    require_crl: bool = False,
    max_size: int = MAX_CMS_SIZE,
) -> CMSValidationResult:
    """Check a SignedData and report; returns a CMSValidationResult, never raises for bad input.

    Use :func:`verify` to accept a message: it raises instead of returning a verdict.
    ``content``: the detached content (required when the SignedData has none;
    when both exist they must be equal).  ``certificates``: signer
    certificates not embedded in the message.  ``intermediates`` and the
    embedded certificates help build each signer's path to ``trust_roots``.
    ``at`` is the validation time for the chain (default: now).
    """
    try:
        profile, sd = _load(data, max_size)
        embedded = _embedded_certificates(sd)
        extra = as_certificates(certificates)
        inters = as_certificates(intermediates)
        roots = as_certificates(trust_roots)
        econtent = _econtent(sd)
        e_type = sd["encap_content_info"]["content_type"].dotted
        listed_digests = frozenset(d["algorithm"].dotted for d in sd["digest_algorithms"])
        if not all(params_absent_or_null(d["parameters"]) for d in sd["digest_algorithms"]):
            raise EncodingError("digestAlgorithms parameters must be absent or NULL")
        _check_version(sd, profile, e_type)
        infos = list(sd["signer_infos"])
    except (CMSError, EncodingError) as exc:
        return _fail_result(CMSReason.MALFORMED, exc.message)
    except _PARSE_ERRORS as exc:
        return _fail_result(CMSReason.MALFORMED, f"CMS SignedData is malformed: {exc}")
    if econtent is None:
        if content is None:
            return _fail_result(
                CMSReason.CONTENT_MISSING,
                "the signed message is detached: supply the content that was signed",
                profile,
            )
        signed_content = bytes(content)
    else:
        if content is not None and not hmac.compare_digest(bytes(content), econtent):
            return _fail_result(
                CMSReason.CONTENT_TAMPERED,
                "the supplied content differs from the content inside the signed message",
                profile,
            )
        signed_content = econtent
    if not infos:
        return _fail_result(CMSReason.NO_SIGNERS, "the signed message has no signers", profile)
    checks = _Checks(
        signed_content=signed_content,
        e_type=e_type,
        listed_digests=listed_digests,
        pool=(*extra, *embedded),
        intermediates=(*inters, *embedded),
        roots=tuple(roots),
        at=at,
        crls=tuple(crls),
        required_key_usage=required_key_usage,
        require_crl=require_crl,
    )
    try:
        return _verify_signers(infos, checks, profile)
    except (EbankAuthError, *_PARSE_ERRORS) as exc:  # fail closed on anything unexpected
        return _fail_result(CMSReason.MALFORMED, f"CMS SignedData is malformed: {exc}", profile)


def verify(
    data: bytes,
    *,
    content: bytes | None = None,
    trust_roots: Iterable[Certificate | bytes] = (),
    intermediates: Iterable[Certificate | bytes] = (),
    certificates: Iterable[Certificate | bytes] = (),
    at: dt.datetime | None = None,
    crls: Iterable[CertificateRevocationList | bytes] = (),
    required_key_usage: KeyUsage | Iterable[KeyUsage] | None = KeyUsage.DIGITAL_SIGNATURE,
    require_crl: bool = False,
    max_size: int = MAX_CMS_SIZE,
) -> bytes:
    """Accept a SignedData or raise: returns the signed content once every signer verified.

    Raises errors.CMSVerificationError with ``.reason`` (a :class:`CMSReason`) and
    ``.result`` (the full :class:`CMSValidationResult`) when anything is wrong.
    Parameters as for :func:`validate`.
    """
    result = validate(
        data,
        content=content,
        trust_roots=trust_roots,
        intermediates=intermediates,
        certificates=certificates,
        at=at,
        crls=crls,
        required_key_usage=required_key_usage,
        require_crl=require_crl,
        max_size=max_size,
    )
    result.raise_for_status()
    assert result.content is not None  # a valid result always carries the signed content
    return result.content


def _verify_signers(
    infos: list[a_cms.SignerInfo], checks: _Checks, profile: CMSProfile
) -> CMSValidationResult:
    results = [_verify_signer(si, checks) for si in infos]
    bad = next((r for r in results if not r.valid), None)
    if bad is None:
        return CMSValidationResult(
            True,
            CMSReason.OK,
            "signature(s) valid",
            checks.signed_content,
            tuple(results),
            profile,
        )
    where = f"signer {results.index(bad) + 1} of {len(results)}: " if len(results) > 1 else ""
    chain_reason = bad.chain_result.reason if bad.chain_result is not None else None
    return CMSValidationResult(
        False,
        bad.reason,
        f"{where}{bad.message}",
        None,
        tuple(results),
        profile,
        chain_reason,
    )


def _find_signer(sid: a_cms.SignerIdentifier, pool: Sequence[Certificate]) -> Certificate | None:
    if sid.name == "issuer_and_serial_number":
        serial = int(sid.chosen["serial_number"].native)
        same_serial = [c for c in pool if c.serial_number == serial]
        if not same_serial:
            return None
        # The sid is a copy of the certificate's issuer field: require the exact
        # encoding (fail closed; unsigned bytes cannot be bent by case folding).
        issuer_der = sid.chosen["issuer"].dump()
        for c in same_serial:
            if c.asn1["tbs_certificate"]["issuer"].dump() == issuer_der:
                return c
        return None
    kid = bytes(sid.chosen.native)
    for c in pool:
        if c.subject_key_identifier == kid:
            return c
    return None


def _signature_algorithm(
    si: a_cms.SignerInfo, digest_oid: str, cert: Certificate
) -> SignatureAlgorithm:
    oid = si["signature_algorithm"]["algorithm"].dotted
    if not params_absent_or_null(si["signature_algorithm"]["parameters"]):
        raise UnsupportedAlgorithm("signature algorithm parameters must be absent or NULL")
    if oid == oids.RSA_ENCRYPTION:
        return (
            SignatureAlgorithm.SHA256_RSA
            if digest_oid == oids.SHA256
            else (SignatureAlgorithm.SM3_RSA)
        )
    if oid == oids.SM2_SIGN_LEGACY:
        return SignatureAlgorithm.SM2_SM3
    if oid == oids.EC_PUBLIC_KEY:  # some producers put the key OID here
        if cert.key_algorithm is KeyAlgorithm.SM2:
            return SignatureAlgorithm.SM2_SM3
        return SignatureAlgorithm.ECDSA_SHA256
    try:
        return SignatureAlgorithm(oid)
    except ValueError:
        raise UnsupportedAlgorithm(f"signature algorithm {oid} is not supported") from None


def _verify_signer(si: a_cms.SignerInfo, checks: _Checks) -> SignerResult:
    digest_oid = ""
    cert: Certificate | None = None
    alg: SignatureAlgorithm | None = None
    signing_time: dt.datetime | None = None

    def result(
        reason: CMSReason, message: str, chain: ValidationResult | None = None
    ) -> SignerResult:
        return SignerResult(reason, message, cert, signing_time, alg, digest_oid, chain)

    try:
        digest_oid = si["digest_algorithm"]["algorithm"].dotted
        cert = _find_signer(si["sid"], checks.pool)
        if cert is None:
            return result(
                CMSReason.SIGNER_CERTIFICATE_MISSING,
                "the signer's certificate is neither embedded nor supplied",
            )
        if si["version"].native != ("v1" if si["sid"].name == "issuer_and_serial_number" else "v3"):
            return result(CMSReason.MALFORMED, "SignerInfo version does not match its sid")
        if not params_absent_or_null(si["digest_algorithm"]["parameters"]):
            return result(CMSReason.MALFORMED, "digest algorithm parameters must be absent or NULL")
        if digest_oid not in _DIGESTS:
            return result(
                CMSReason.UNSUPPORTED_ALGORITHM,
                f"digest algorithm {digest_oid} is not supported (use SM3 or SHA-256)",
            )
        try:
            alg = _signature_algorithm(si, digest_oid, cert)
        except UnsupportedAlgorithm as exc:
            return result(CMSReason.UNSUPPORTED_ALGORITHM, exc.message)
        if _digest_oid(alg) != digest_oid:
            return result(
                CMSReason.WRONG_DIGEST,
                f"digest algorithm {digest_oid} does not fit {alg.name} "
                f"(expected {_digest_oid(alg)})",
            )
        if digest_oid not in checks.listed_digests:
            return result(
                CMSReason.WRONG_DIGEST,
                "the signer's digest algorithm is not listed in SignedData.digestAlgorithms",
            )
        digest = _DIGESTS[digest_oid](checks.signed_content)
        attrs = si["signed_attrs"]
        if isinstance(attrs, a_core.Void):
            to_verify = checks.signed_content
        else:
            found: dict[str, list[a_core.Asn1Value]] = {}
            for attr in attrs:
                oid = attr["type"].dotted
                if oid in found:
                    return result(CMSReason.MALFORMED, f"signed attribute {oid} appears twice")
                values = list(attr["values"])
                if len(values) != 1:
                    return result(
                        CMSReason.MALFORMED, f"signed attribute {oid} must have one value"
                    )
                found[oid] = values
            ctype = found.get(oids.ATTR_CONTENT_TYPE)
            mdig = found.get(oids.ATTR_MESSAGE_DIGEST)
            if ctype is None or mdig is None:
                return result(
                    CMSReason.MALFORMED, "signed attributes lack contentType or messageDigest"
                )
            if ctype[0].dotted != checks.e_type:
                return result(
                    CMSReason.CONTENT_TYPE_MISMATCH,
                    "the contentType attribute differs from the encapsulated content type",
                )
            stime = found.get(oids.ATTR_SIGNING_TIME)
            if stime is not None:
                signing_time = _as_utc(stime[0].native)
            md = bytes(mdig[0].native)
            if len(md) != len(digest):
                return result(
                    CMSReason.WRONG_DIGEST,
                    f"messageDigest has {len(md)} bytes, the digest algorithm gives {len(digest)}",
                )
            if not hmac.compare_digest(md, digest):
                return result(
                    CMSReason.CONTENT_TAMPERED,
                    "the content's digest does not match the signed messageDigest: "
                    "the content was altered",
                )
            to_verify = b"\x31" + attrs.dump()[1:]
        try:
            verify_data(cert.public_key, alg, bytes(si["signature"].native), to_verify)
        except InvalidSignature:
            return result(
                CMSReason.BAD_SIGNATURE,
                "the signature does not verify with the signer certificate's key",
            )
        except (InvalidKey, UnsupportedAlgorithm) as exc:
            return result(CMSReason.UNSUPPORTED_ALGORITHM, exc.message)
    except (EbankAuthError, *_PARSE_ERRORS) as exc:
        return result(CMSReason.MALFORMED, f"SignerInfo is malformed: {exc}")
    chain = validate_chain(
        cert,
        checks.intermediates,
        checks.roots,
        at=checks.at,
        crls=checks.crls,
        required_key_usage=checks.required_key_usage,
        require_crl=checks.require_crl,
    )
    if not chain.valid:
        return result(
            CMSReason.SIGNER_NOT_TRUSTED,
            f"signer certificate not trusted: {chain.reason.value}: {chain.message}",
            chain,
        )
    return result(CMSReason.OK, "valid", chain)
