"""CMS SignedData (RFC 5652) and its GM/T 0010 SM2 profile: sign and verify.

Signing::

    from ebank_auth.crypto import cms
    der = cms.sign(b"payload", cms.Signer(key=user_key, certificate=user_cert,
                                          chain=(sub_ca_cert,)),
                   detached=False, profile=cms.CMSProfile.GMT0010)

Verifying::

    result = cms.verify(der, trust_roots=[root_cert])       # CMSVerifyResult, never raises
    result.valid, result.reason (CMSReason), result.message, result.content, result.signers
    # raises errors.CMSVerificationError (with .reason) when invalid:
    cms.verify_or_raise(der, content=b"payload", trust_roots=[root_cert])

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

from ebank_auth.crypto import _asn1 as _asn1  # GM/T OID names
from ebank_auth.crypto import sm3
from ebank_auth.crypto.x509 import _der, _oids
from ebank_auth.crypto.x509._keys import (
    KeyAlgorithm,
    PrivateKey,
    SignatureAlgorithm,
    default_signature_algorithm,
    params_absent_or_null,
    public_key_to_spki,
    sign_data,
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
    "CMSVerifyResult",
    "SignedDataInfo",
    "Signer",
    "SignerResult",
    "parse",
    "sign",
    "verify",
    "verify_or_raise",
]

MAX_CMS_SIZE: Final = _der.MAX_CMS_SIZE
_PARSE_ERRORS: Final = (ValueError, TypeError, KeyError, AttributeError, OverflowError, IndexError)
_DIGESTS: Final[dict[str, Callable[[bytes], bytes]]] = {
    _oids.SM3: sm3.digest,
    _oids.SHA256: lambda b: hashlib.sha256(b).digest(),
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
    """One signer: its private ``key``, its ``certificate`` and the CA
    certificates to embed (``chain``, issuer first; the root may be left out)."""

    key: PrivateKey
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
class CMSVerifyResult:
    """Outcome of :func:`verify`: ``valid`` only when every signer is valid.

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
            raise CMSVerificationError(self.message, reason=self.reason)


@dataclass(frozen=True)
class SignedDataInfo:
    """What :func:`parse` found: ``profile``, ``content`` (None when detached),
    ``certificates`` embedded, ``signer_count``, ``digest_algorithms``."""

    profile: CMSProfile
    content: bytes | None
    certificates: tuple[Certificate, ...]
    signer_count: int
    digest_algorithms: tuple[str, ...]


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
    CMSProfile.RFC5652: (_oids.CMS_SIGNED_DATA, _oids.CMS_DATA),
    CMSProfile.GMT0010: (_oids.GMT_SIGNED_DATA, _oids.GMT_DATA),
}


def _digest_oid(alg: SignatureAlgorithm) -> str:
    return (
        _oids.SHA256
        if alg
        in (
            SignatureAlgorithm.SHA256_RSA,
            SignatureAlgorithm.ECDSA_SHA256,
        )
        else _oids.SM3
    )


def _signer_info_sig_alg(alg: SignatureAlgorithm) -> a_algos.SignedDigestAlgorithm:
    if alg in (SignatureAlgorithm.SHA256_RSA, SignatureAlgorithm.SM3_RSA):
        return a_algos.SignedDigestAlgorithm(
            {"algorithm": _oids.RSA_ENCRYPTION, "parameters": a_core.Null()}
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
) -> bytes:
    """Make a DER ContentInfo/SignedData over ``content``.

    ``detached`` leaves the content out (the verifier supplies it).
    ``signing_time`` defaults to now.  ``signed_attributes=False`` signs the
    content directly (no contentType/messageDigest/signingTime).
    """
    if not isinstance(content, (bytes, bytearray)):
        raise CMSError("content must be bytes")
    content = bytes(content)
    signer_list = [signers] if isinstance(signers, Signer) else list(signers)
    if not signer_list:
        raise CMSError("at least one signer is needed")
    signed_data_oid, data_oid = _PROFILE_OIDS[CMSProfile(profile)]
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
                ]
            )
            to_sign = b"\x31" + attrs.dump()[1:]
            info["signed_attrs"] = attrs
        else:
            to_sign = content
        _, sig = sign_data(s.key, to_sign, alg)
        info["signature"] = sig
        infos.append(a_cms.SignerInfo(info))
        for c in (s.certificate, *s.chain):
            if c not in certs:
                certs.append(c)
    encap: dict[str, object] = {"content_type": data_oid}
    if not detached:
        encap["content"] = a_core.ParsableOctetString(content)
    sd: dict[str, object] = {
        "version": "v1",
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


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _spki_of(key: PrivateKey) -> bytes:
    return public_key_to_spki(key)


# ----------------------------------------------------------------------------- parsing


def _load(data: bytes, max_size: int) -> tuple[CMSProfile, _SignedData]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EncodingError("CMS: expected bytes")
    raw = bytes(data)
    if _der.is_pem(raw):
        blocks = _der.pem_blocks(raw, ("CMS", "PKCS7"))
        if not blocks:
            raise EncodingError("CMS: no PEM block labelled CMS or PKCS7")
        raw = blocks[0]
    _der.check_der(raw, what="CMS", max_size=max_size, allow_indefinite=True)
    try:
        ci = _ContentInfo.load(raw)
        ct = ci["content_type"].dotted
        if ct == _oids.CMS_SIGNED_DATA:
            profile = CMSProfile.RFC5652
        elif ct == _oids.GMT_SIGNED_DATA:
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
        )
    except _PARSE_ERRORS as exc:
        raise EncodingError(f"CMS SignedData is malformed: {exc}") from None


def _check_version(sd: _SignedData, profile: CMSProfile, e_type: str) -> None:
    """RFC 5652 §5.1 version rule (GM/T 0010 uses 1 with its own data OID)."""
    ski_signer = any(si["sid"].name != "issuer_and_serial_number" for si in sd["signer_infos"])
    if ski_signer or (profile is CMSProfile.RFC5652 and e_type != _oids.CMS_DATA):
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
    if isinstance(content, a_core.Void) or content.native is None:
        return None
    return bytes(content.native) if not isinstance(content.native, bytes) else content.native


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
) -> CMSVerifyResult:
    return CMSVerifyResult(False, reason, message, None, (), profile)


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
) -> CMSVerifyResult:
    """Verify a SignedData; returns a CMSVerifyResult and never raises for bad input.

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
        listed_digests = {d["algorithm"].dotted for d in sd["digest_algorithms"]}
        if not all(params_absent_or_null(d["parameters"]) for d in sd["digest_algorithms"]):
            raise EncodingError("digestAlgorithms parameters must be absent or NULL")
        _check_version(sd, profile, e_type)
        infos = list(sd["signer_infos"])
    except CMSError as exc:
        return _fail_result(CMSReason.MALFORMED, exc.message)
    except EncodingError as exc:
        return _fail_result(CMSReason.MALFORMED, exc.message)
    except _PARSE_ERRORS as exc:
        return _fail_result(CMSReason.MALFORMED, f"CMS SignedData is malformed: {exc}")
    if econtent is None:
        if content is None:
            return _fail_result(
                CMSReason.CONTENT_MISSING,
                "the SignedData is detached: supply the signed content",
                profile,
            )
        signed_content = bytes(content)
    else:
        if content is not None and not hmac.compare_digest(bytes(content), econtent):
            return _fail_result(
                CMSReason.CONTENT_TAMPERED,
                "the supplied content differs from the content inside the SignedData",
                profile,
            )
        signed_content = econtent
    if not infos:
        return _fail_result(CMSReason.NO_SIGNERS, "the SignedData has no signers", profile)
    try:
        return _verify_signers(
            infos,
            signed_content=signed_content,
            e_type=e_type,
            listed_digests=listed_digests,
            pool=[*extra, *embedded],
            intermediates=[*inters, *embedded],
            roots=roots,
            at=at,
            crls=crls,
            required_key_usage=required_key_usage,
            require_crl=require_crl,
            profile=profile,
        )
    except (EbankAuthError, *_PARSE_ERRORS) as exc:  # fail closed on anything unexpected
        return _fail_result(CMSReason.MALFORMED, f"CMS SignedData is malformed: {exc}", profile)


def _verify_signers(
    infos: list[a_cms.SignerInfo],
    *,
    signed_content: bytes,
    e_type: str,
    listed_digests: set[str],
    pool: list[Certificate],
    intermediates: list[Certificate],
    roots: list[Certificate],
    at: dt.datetime | None,
    crls: Iterable[CertificateRevocationList | bytes],
    required_key_usage: KeyUsage | Iterable[KeyUsage] | None,
    require_crl: bool,
    profile: CMSProfile,
) -> CMSVerifyResult:
    results: list[SignerResult] = []
    for si in infos:
        results.append(
            _verify_signer(
                si,
                signed_content=signed_content,
                e_type=e_type,
                listed_digests=listed_digests,
                pool=pool,
                intermediates=intermediates,
                roots=roots,
                at=at,
                crls=crls,
                required_key_usage=required_key_usage,
                require_crl=require_crl,
            )
        )
    bad = next((r for r in results if not r.valid), None)
    if bad is None:
        return CMSVerifyResult(
            True, CMSReason.OK, "signature(s) valid", signed_content, tuple(results), profile
        )
    idx = results.index(bad)
    chain_reason = bad.chain_result.reason if bad.chain_result is not None else None
    return CMSVerifyResult(
        False,
        bad.reason,
        f"signer {idx}: {bad.message}",
        None,
        tuple(results),
        profile,
        chain_reason,
    )


def verify_or_raise(data: bytes, **kwargs: object) -> CMSVerifyResult:
    """:func:`verify`, raising errors.CMSVerificationError(reason=...) when invalid."""
    result = verify(data, **kwargs)  # type: ignore[arg-type]
    result.raise_for_status()
    return result


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
    if oid == _oids.RSA_ENCRYPTION:
        return (
            SignatureAlgorithm.SHA256_RSA
            if digest_oid == _oids.SHA256
            else (SignatureAlgorithm.SM3_RSA)
        )
    if oid == _oids.SM2_SIGN_LEGACY:
        return SignatureAlgorithm.SM2_SM3
    if oid == _oids.EC_PUBLIC_KEY:  # some producers put the key OID here
        if cert.key_algorithm is KeyAlgorithm.SM2:
            return SignatureAlgorithm.SM2_SM3
        return SignatureAlgorithm.ECDSA_SHA256
    try:
        return SignatureAlgorithm(oid)
    except ValueError:
        raise UnsupportedAlgorithm(f"signature algorithm {oid} is not supported") from None


def _verify_signer(
    si: a_cms.SignerInfo,
    *,
    signed_content: bytes,
    e_type: str,
    listed_digests: set[str],
    pool: Sequence[Certificate],
    intermediates: Sequence[Certificate],
    roots: Sequence[Certificate],
    at: dt.datetime | None,
    crls: Iterable[CertificateRevocationList | bytes],
    required_key_usage: KeyUsage | Iterable[KeyUsage] | None,
    require_crl: bool,
) -> SignerResult:
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
        cert = _find_signer(si["sid"], pool)
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
        if digest_oid not in listed_digests:
            return result(
                CMSReason.WRONG_DIGEST,
                "the signer's digest algorithm is not listed in SignedData.digestAlgorithms",
            )
        digest = _DIGESTS[digest_oid](signed_content)
        attrs = si["signed_attrs"]
        if isinstance(attrs, a_core.Void):
            to_verify = signed_content
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
            ctype = found.get(_oids.ATTR_CONTENT_TYPE)
            mdig = found.get(_oids.ATTR_MESSAGE_DIGEST)
            if ctype is None or mdig is None:
                return result(
                    CMSReason.MALFORMED, "signed attributes lack contentType or messageDigest"
                )
            if ctype[0].dotted != e_type:
                return result(
                    CMSReason.CONTENT_TYPE_MISMATCH,
                    "the contentType attribute differs from the encapsulated content type",
                )
            stime = found.get(_oids.ATTR_SIGNING_TIME)
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
        intermediates,
        roots,
        at=at,
        crls=crls,
        required_key_usage=required_key_usage,
        require_crl=require_crl,
    )
    if not chain.valid:
        return result(
            CMSReason.SIGNER_NOT_TRUSTED,
            f"signer certificate not trusted: {chain.reason.value}: {chain.message}",
            chain,
        )
    return result(CMSReason.OK, "valid", chain)
