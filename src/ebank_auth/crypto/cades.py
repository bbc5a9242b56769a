"""CAdES-BES / CAdES-T style signatures (GB/T 25064 electronic signature formats) over CMS.

A CAdES-BES signature is a CMS SignedData (:mod:`~ebank_auth.crypto.cms`, RFC 5652 or GM/T
0010 profile) whose signer also signs *which certificate* it used (signing-certificate-v2,
RFC 5035: the certificate's hash, issuer and serial) and *when* it claims to sign
(signing-time).  CAdES-T adds an unsigned attribute, id-aa-signatureTimeStampToken: an RFC 3161
token (:mod:`~ebank_auth.crypto.tsp`) over the signature value, which proves the signature
existed at the TSA's time.

Signing::

    from ebank_auth.crypto import cades, cms, tsp
    client = tsp.TimestampClient(tsa_url_or_callable, trust_roots=[tsa_root])
    der = cades.sign(b"payload", cms.Signer(key, cert, chain=(sub_ca,)), timestamper=client)

Verifying::

    result = cades.verify(der, trust_roots=[root], tsa_trust_roots=[tsa_root])
    result.content, result.signing_time, result.timestamp.gen_time, result.level

What :func:`validate` checks, for its one signer: everything :func:`cms.validate` checks
(digest, signature, signer path with digitalSignature); signing-time and
signing-certificate-v2 are present and signed, and the latter names the signer's certificate;
for CAdES-T the timestamp token verifies (:func:`tsp.verify_token`) over the signature value,
and the claimed signing time is not later than the timestamp (plus 5 minutes of clock skew).
With a timestamp, the signer's certificate path is validated at the timestamp's time unless
``at`` is given: the point of -T is that the signature provably existed while the
certificate was valid.  Long-term forms (-C, -X, -A: revocation values and archive stamps)
are not built.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from ebank_auth.crypto import cms, oids, tsp
from ebank_auth.crypto.keys import KeyAlgorithm, default_signature_algorithm, key_algorithm
from ebank_auth.crypto.x509.certificate import Certificate, KeyUsage
from ebank_auth.crypto.x509.crl import CertificateRevocationList
from ebank_auth.errors import (
    CAdESVerificationError,
    CMSError,
    EbankAuthError,
    TimestampVerificationError,
)

__all__ = [
    "CAdESLevel",
    "CAdESReason",
    "CAdESValidationResult",
    "VerifiedCAdES",
    "sign",
    "timestamp",
    "validate",
    "verify",
]

MAX_CLOCK_SKEW: Final = tsp.MAX_CLOCK_SKEW


class CAdESLevel(str, Enum):
    """BES: signed attributes only; T: with a signature timestamp."""

    BES = "BES"
    T = "T"


class CAdESReason(str, Enum):
    """Why a CAdES signature was accepted or refused."""

    OK = "ok"
    MALFORMED = "malformed"
    CMS_INVALID = "cms_invalid"
    SIGNING_TIME_MISSING = "signing_time_missing"
    SIGNING_CERTIFICATE = "signing_certificate"
    TIMESTAMP_MISSING = "timestamp_missing"
    TIMESTAMP_INVALID = "timestamp_invalid"
    SIGNED_AFTER_TIMESTAMP = "signed_after_timestamp"


@dataclass(frozen=True)
class VerifiedCAdES:
    """What :func:`verify` accepted: the ``level`` found (BES or T), the signed ``content``,
    the signer's ``certificate``, the claimed ``signing_time`` and the verified ``timestamp``
    (None for BES).  No verdict in it: :func:`verify` raised otherwise."""

    level: CAdESLevel | None
    content: bytes | None
    certificate: Certificate | None
    signing_time: dt.datetime | None
    timestamp: tsp.TimestampInfo | None


@dataclass(frozen=True)
class CAdESValidationResult:
    """Outcome of :func:`validate`.

    ``reason``/``message`` (OK when valid); ``level`` found (BES or T); ``content`` the signed
    bytes; ``certificate`` the signer's; ``signing_time`` as claimed by the signer;
    ``timestamp`` the verified token's TSTInfo (None for BES); ``cms_result`` and
    ``timestamp_reason`` the underlying verdicts when they refused.
    """

    valid: bool
    reason: CAdESReason
    message: str
    level: CAdESLevel | None = None
    content: bytes | None = None
    certificate: Certificate | None = None
    signing_time: dt.datetime | None = None
    timestamp: tsp.TimestampInfo | None = None
    cms_result: cms.CMSValidationResult | None = None
    timestamp_reason: tsp.TimestampReason | None = None

    def raise_for_status(self) -> None:
        """Raise errors.CAdESVerificationError(reason=...) unless valid."""
        if not self.valid:
            raise CAdESVerificationError(self.message, reason=self.reason, result=self)


def sign(
    content: bytes,
    signer: cms.Signer,
    *,
    timestamper: tsp.Timestamper | None = None,
    detached: bool = False,
    profile: cms.CMSProfile = cms.CMSProfile.RFC5652,
    signing_time: dt.datetime | None = None,
) -> bytes:
    """A CAdES-BES SignedData over ``content`` — or CAdES-T when ``timestamper`` is given.

    ``signer.key`` is any SigningKey (software, USB Key, two-party).  The signing
    certificate is named with SM3 for SM2 signers and SHA-256 otherwise.
    """
    if not isinstance(signer, cms.Signer):
        raise CMSError("signer must be a cms.Signer (key, certificate, chain)")
    sm2_signer = key_algorithm(signer.certificate.public_key) is KeyAlgorithm.SM2
    ess = tsp.ess_cert_id_v2(
        signer.certificate, tsp.HashAlgorithm.SM3 if sm2_signer else tsp.HashAlgorithm.SHA256
    )
    alg = signer.signature_algorithm or default_signature_algorithm(signer.key)
    bes = cms.sign(
        content,
        cms.Signer(signer.key, signer.certificate, signer.chain, alg),
        detached=detached,
        profile=profile,
        signing_time=signing_time,
        extra_signed_attributes=[(oids.ATTR_SIGNING_CERTIFICATE_V2, ess)],
    )
    return bes if timestamper is None else timestamp(bes, timestamper)


def timestamp(signed: bytes, timestamper: tsp.Timestamper) -> bytes:
    """Turn a CAdES-BES (one signer) into CAdES-T: timestamp its signature value."""
    info = cms.parse(signed)
    if info.signer_count != 1:
        raise CMSError("CAdES here has exactly one signer")
    token = timestamper.timestamp(info.signer_infos[0].signature)
    return cms.add_unsigned_attribute(signed, oids.ATTR_SIGNATURE_TIME_STAMP_TOKEN, token)


def _fail(reason: CAdESReason, message: str, **kw: object) -> CAdESValidationResult:
    return CAdESValidationResult(False, reason, message, **kw)  # type: ignore[arg-type]


def validate(
    data: bytes,
    *,
    content: bytes | None = None,
    trust_roots: Iterable[Certificate | bytes] = (),
    intermediates: Iterable[Certificate | bytes] = (),
    tsa_trust_roots: Iterable[Certificate | bytes] = (),
    tsa_intermediates: Iterable[Certificate | bytes] = (),
    require_timestamp: bool = True,
    at: dt.datetime | None = None,
    crls: Iterable[CertificateRevocationList | bytes] = (),
    required_key_usage: KeyUsage | Iterable[KeyUsage] | None = KeyUsage.DIGITAL_SIGNATURE,
) -> CAdESValidationResult:
    """Check a CAdES-BES/-T signature and report (never raises for bad input).

    ``require_timestamp`` (default) demands CAdES-T; with False a BES is accepted and a
    timestamp, when present, is still verified.  ``tsa_trust_roots``: the TSA's roots.
    ``at``: validation time for the signer's path (default: the timestamp's time, or now).
    """
    roots = list(trust_roots)
    inters = list(intermediates)
    tsa_roots = list(tsa_trust_roots)
    tsa_inters = list(tsa_intermediates)
    crl_list = list(crls)
    try:
        info = cms.parse(data)
    except EbankAuthError as exc:
        return _fail(CAdESReason.MALFORMED, exc.message)
    if info.signer_count != 1:
        return _fail(CAdESReason.MALFORMED, "CAdES here has exactly one signer")
    view = info.signer_infos[0]
    tokens = view.unsigned_attributes.get(oids.ATTR_SIGNATURE_TIME_STAMP_TOKEN)
    stamp: tsp.TimestampInfo | None = None
    if tokens is None:
        if require_timestamp:
            return _fail(
                CAdESReason.TIMESTAMP_MISSING,
                "the signature has no signature timestamp (CAdES-T required): timestamp it "
                "with cades.timestamp()",
                level=CAdESLevel.BES,
            )
    else:
        if len(tokens) != 1:
            return _fail(CAdESReason.MALFORMED, "one signature timestamp token is expected")
        if not tsa_roots:
            return _fail(
                CAdESReason.TIMESTAMP_INVALID, "give tsa_trust_roots to verify the timestamp"
            )
        try:
            stamp = tsp.verify_token(
                tokens[0],
                data=view.signature,
                trust_roots=tsa_roots,
                intermediates=tsa_inters,
            )
        except TimestampVerificationError as exc:
            reason = exc.reason if isinstance(exc.reason, tsp.TimestampReason) else None
            return _fail(
                CAdESReason.TIMESTAMP_INVALID,
                f"the signature timestamp is refused: {exc.message}",
                timestamp_reason=reason,
            )
    level = CAdESLevel.T if stamp is not None else CAdESLevel.BES
    when = at if at is not None else (stamp.gen_time if stamp is not None else None)
    result = cms.validate(
        data,
        content=content,
        trust_roots=roots,
        intermediates=inters,
        at=when,
        crls=crl_list,
        required_key_usage=required_key_usage,
    )
    if not result.valid:
        return _fail(
            CAdESReason.CMS_INVALID,
            result.message,
            level=level,
            cms_result=result,
            timestamp=stamp,
        )
    signer = result.signers[0]
    cert = signer.certificate
    assert cert is not None  # a valid signer has its certificate
    common: dict[str, object] = {
        "level": level,
        "certificate": cert,
        "signing_time": signer.signing_time,
        "timestamp": stamp,
        "cms_result": result,
    }
    if signer.signing_time is None:
        return _fail(
            CAdESReason.SIGNING_TIME_MISSING, "the signer did not sign a signing-time", **common
        )
    scv2 = view.signed_attributes.get(oids.ATTR_SIGNING_CERTIFICATE_V2)
    if scv2 is None or len(scv2) != 1:
        return _fail(
            CAdESReason.SIGNING_CERTIFICATE,
            "the signer did not sign a signing-certificate-v2 attribute (CAdES-BES needs it)",
            **common,
        )
    wrong = tsp.check_signing_certificate_v2(scv2[0], cert)
    if wrong is not None:
        return _fail(CAdESReason.SIGNING_CERTIFICATE, f"signing-certificate-v2: {wrong}", **common)
    if stamp is not None and signer.signing_time > stamp.gen_time + MAX_CLOCK_SKEW:
        return _fail(
            CAdESReason.SIGNED_AFTER_TIMESTAMP,
            f"the signer claims to have signed at {signer.signing_time.isoformat()}, after the "
            f"timestamp {stamp.gen_time.isoformat()}: the signing time is false",
            **common,
        )
    return CAdESValidationResult(
        True,
        CAdESReason.OK,
        f"CAdES-{level.value} signature valid",
        content=result.content,
        **common,  # type: ignore[arg-type]
    )


def verify(
    data: bytes,
    *,
    content: bytes | None = None,
    trust_roots: Iterable[Certificate | bytes] = (),
    intermediates: Iterable[Certificate | bytes] = (),
    tsa_trust_roots: Iterable[Certificate | bytes] = (),
    tsa_intermediates: Iterable[Certificate | bytes] = (),
    require_timestamp: bool = True,
    at: dt.datetime | None = None,
    crls: Iterable[CertificateRevocationList | bytes] = (),
    required_key_usage: KeyUsage | Iterable[KeyUsage] | None = KeyUsage.DIGITAL_SIGNATURE,
) -> VerifiedCAdES:
    """Accept a CAdES signature or raise errors.CAdESVerificationError (``.reason``,
    ``.result``); returns what was verified (:class:`VerifiedCAdES`).  Parameters as for
    :func:`validate` (which reports instead of raising)."""
    result = validate(
        data,
        content=content,
        trust_roots=trust_roots,
        intermediates=intermediates,
        tsa_trust_roots=tsa_trust_roots,
        tsa_intermediates=tsa_intermediates,
        require_timestamp=require_timestamp,
        at=at,
        crls=crls,
        required_key_usage=required_key_usage,
    )
    result.raise_for_status()
    return VerifiedCAdES(
        level=result.level,
        content=result.content,
        certificate=result.certificate,
        signing_time=result.signing_time,
        timestamp=result.timestamp,
    )
