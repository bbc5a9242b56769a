"""RFC 3161 timestamps: requests, a timestamp authority (TSA), a client, token verification.

A timestamp token is a CMS SignedData (our :mod:`~ebank_auth.crypto.cms`) whose content is a
``TSTInfo``: the TSA's signed statement that a hash (the *message imprint*) existed at
``genTime``.  CAdES-T (:mod:`~ebank_auth.crypto.cades`) timestamps a signature value this way.

Asking a TSA::

    from ebank_auth.crypto import tsp
    client = tsp.TimestampClient("http://tsa.example/tsa", trust_roots=[tsa_root])
    token = client.timestamp(b"data")        # verified TimeStampToken (DER)
    info = tsp.verify_token(token, data=b"data", trust_roots=[tsa_root])
    info.gen_time, info.serial_number, info.policy

    # in process, no HTTP: the client takes any callable request DER -> response DER
    tsa = tsp.TimestampAuthority(tsa_key, tsa_cert)
    client = tsp.TimestampClient(tsa.respond, trust_roots=[tsa_root])

What :func:`verify_token` checks: the token is a SignedData with one signer and content type
id-ct-TSTInfo; the CMS signature and messageDigest; the TSA certificate's path to
``trust_roots``; its extendedKeyUsage is exactly id-kp-timeStamping and critical (RFC 3161
§2.3); the signed ESS signing-certificate-v2 attribute names that certificate (SHA-1-only
``signingCertificate`` v1 tokens are refused); the imprint's hash algorithm is SM3 or SHA-2
(never SHA-1 or MD5) and its value equals the hash of the data; the nonce and policy when the
caller expects them; the ``tsa`` name, when present, is the certificate's subject.

:class:`TimestampAuthority` is a small TSA for tests, demos and a bank's own internal use
(SM2 or RSA key, any :class:`~ebank_auth.crypto.keys.SigningKey`); :func:`make_http_server`
serves it over HTTP (``application/timestamp-query`` → ``application/timestamp-reply``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.server
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Final, Protocol

from asn1crypto import algos as a_algos
from asn1crypto import core as a_core
from asn1crypto import tsp as a_tsp
from asn1crypto import x509 as a_x509

from ebank_auth.crypto import cms, der, oids, sm3
from ebank_auth.crypto.keys import SigningKey, key_algorithm
from ebank_auth.crypto.x509.certificate import Certificate, KeyUsage, as_certificates
from ebank_auth.crypto.x509.crl import CertificateRevocationList
from ebank_auth.errors import (
    ConfigurationError,
    EbankAuthError,
    EncodingError,
    TimestampError,
    TimestampUnavailable,
    TimestampVerificationError,
)

__all__ = [
    "CONTENT_TYPE_QUERY",
    "CONTENT_TYPE_REPLY",
    "DEFAULT_POLICY",
    "FailureInfo",
    "HashAlgorithm",
    "PKIStatus",
    "TimestampAuthority",
    "TimestampClient",
    "TimestampInfo",
    "TimestampReason",
    "TimestampRequest",
    "Timestamper",
    "build_request",
    "check_signing_certificate_v2",
    "ess_cert_id_v2",
    "make_http_server",
    "parse_request",
    "parse_token",
    "verify_response",
    "verify_token",
]

CONTENT_TYPE_QUERY: Final = "application/timestamp-query"
CONTENT_TYPE_REPLY: Final = "application/timestamp-reply"
#: The local TSA's default policy: an OID under the private arc of this project's test PKI.
DEFAULT_POLICY: Final = "1.3.6.1.4.1.55555.3161.1"
MAX_MESSAGE_SIZE: Final = 64 * 1024  # a request or a response (a token with a chain is ~3 KiB)
MAX_CLOCK_SKEW: Final = dt.timedelta(minutes=5)


class HashAlgorithm(str, Enum):
    """Message-imprint hash algorithms accepted (by dotted OID). SHA-1 and MD5 are refused."""

    SM3 = oids.SM3
    SHA256 = oids.SHA256
    SHA384 = oids.SHA384
    SHA512 = oids.SHA512


_HASH_FUNCS: Final[dict[str, Callable[[bytes], bytes]]] = {
    oids.SM3: sm3.digest,
    oids.SHA256: lambda b: hashlib.sha256(b).digest(),
    oids.SHA384: lambda b: hashlib.sha384(b).digest(),
    oids.SHA512: lambda b: hashlib.sha512(b).digest(),
}
_HASH_LEN: Final = {oids.SM3: 32, oids.SHA256: 32, oids.SHA384: 48, oids.SHA512: 64}


def _hash(alg: str, data: bytes) -> bytes:
    return _HASH_FUNCS[alg](data)


class PKIStatus(IntEnum):
    """PKIStatus of a TimeStampResp (RFC 3161 §2.4.2)."""

    GRANTED = 0
    GRANTED_WITH_MODS = 1
    REJECTION = 2
    WAITING = 3
    REVOCATION_WARNING = 4
    REVOCATION_NOTIFICATION = 5


class FailureInfo(IntEnum):
    """PKIFailureInfo bits a TSA sets when it rejects a request."""

    BAD_ALG = 0
    BAD_REQUEST = 2
    BAD_DATA_FORMAT = 5
    TIME_NOT_AVAILABLE = 14
    UNACCEPTED_POLICY = 15
    UNACCEPTED_EXTENSION = 16
    ADD_INFO_NOT_AVAILABLE = 17
    SYSTEM_FAILURE = 25


_FAILURE_NAMES: Final = {
    FailureInfo.BAD_ALG: "bad_alg",
    FailureInfo.BAD_REQUEST: "bad_request",
    FailureInfo.BAD_DATA_FORMAT: "bad_data_format",
    FailureInfo.TIME_NOT_AVAILABLE: "time_not_available",
    FailureInfo.UNACCEPTED_POLICY: "unaccepted_policy",
    FailureInfo.UNACCEPTED_EXTENSION: "unaccepted_extensions",
    FailureInfo.ADD_INFO_NOT_AVAILABLE: "add_info_not_available",
    FailureInfo.SYSTEM_FAILURE: "system_failure",
}


class TimestampReason(str, Enum):
    """Why a timestamp response or token was accepted or refused."""

    OK = "ok"
    MALFORMED = "malformed"
    REJECTED = "rejected"
    NOT_A_TIMESTAMP = "not_a_timestamp"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    IMPRINT_MISMATCH = "imprint_mismatch"
    NONCE_MISMATCH = "nonce_mismatch"
    POLICY_MISMATCH = "policy_mismatch"
    BAD_SIGNATURE = "bad_signature"
    CERTIFICATE_MISSING = "certificate_missing"
    TSA_NOT_TRUSTED = "tsa_not_trusted"
    WRONG_EXTENDED_KEY_USAGE = "wrong_extended_key_usage"
    SIGNING_CERTIFICATE = "signing_certificate"
    TSA_NAME_MISMATCH = "tsa_name_mismatch"


def _refuse(reason: TimestampReason, message: str) -> TimestampVerificationError:
    return TimestampVerificationError(message, reason=reason)


# ----------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class TimestampRequest:
    """A TimeStampReq: ``hash_algorithm`` (dotted OID) and ``hashed_message`` (the imprint),
    ``nonce`` (None: none sent), ``cert_req`` (ask for the TSA certificate in the token),
    ``policy`` (None: the TSA's default); ``der`` its encoding."""

    hash_algorithm: str
    hashed_message: bytes
    nonce: int | None
    cert_req: bool
    policy: str | None
    der: bytes


def build_request(
    data: bytes | None = None,
    *,
    digest: bytes | None = None,
    hash_algorithm: HashAlgorithm | str = HashAlgorithm.SM3,
    nonce: int | bool | None = True,
    cert_req: bool = True,
    policy: str | None = None,
) -> TimestampRequest:
    """A TimeStampReq for ``data`` (hashed here) or an already computed ``digest``.

    ``nonce=True`` draws a random 64-bit nonce; an int is used as given; None/False sends none.
    """
    alg = HashAlgorithm(hash_algorithm).value
    if (data is None) == (digest is None):
        raise TimestampError("give exactly one of data and digest")
    hashed = _hash(alg, bytes(data)) if data is not None else bytes(digest or b"")
    if len(hashed) != _HASH_LEN[alg]:
        raise TimestampError(
            f"the digest has {len(hashed)} bytes; {HashAlgorithm(alg).name} gives {_HASH_LEN[alg]}"
        )
    n: int | None
    if nonce is True:
        n = secrets.randbits(64) | (1 << 63)
    elif nonce is False or nonce is None:
        n = None
    else:
        n = int(nonce)
        if n < 0:
            raise TimestampError("the nonce must be a non-negative integer")
    req: dict[str, object] = {
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": alg}, "hashed_message": hashed},
        "cert_req": bool(cert_req),
    }
    if policy is not None:
        req["req_policy"] = policy
    if n is not None:
        req["nonce"] = n
    encoded = a_tsp.TimeStampReq(req).dump()
    return TimestampRequest(alg, hashed, n, bool(cert_req), policy, encoded)


def _imprint(mi: a_tsp.MessageImprint) -> tuple[str, bytes]:
    alg = mi["hash_algorithm"]
    oid = alg["algorithm"].dotted
    if oid not in _HASH_FUNCS:
        raise _refuse(
            TimestampReason.UNSUPPORTED_ALGORITHM,
            f"message imprint hash {oid} is not accepted: use SM3 or SHA-256/384/512",
        )
    params = alg["parameters"]
    if not (isinstance(params, (a_core.Void, a_core.Null))):
        raise _refuse(TimestampReason.MALFORMED, "hash algorithm parameters must be absent or NULL")
    hashed = bytes(mi["hashed_message"].native)
    if len(hashed) != _HASH_LEN[oid]:
        raise _refuse(TimestampReason.MALFORMED, "the message imprint has the wrong length")
    return oid, hashed


def parse_request(data: bytes) -> TimestampRequest:
    """Parse a DER TimeStampReq (raises errors.TimestampVerificationError with a reason)."""
    raw = _check_der(data, "timestamp request")
    try:
        req = a_tsp.TimeStampReq.load(raw, strict=True)
        if req["version"].native != "v1":
            raise _refuse(TimestampReason.MALFORMED, "timestamp request version must be 1")
        if not isinstance(req["extensions"], a_core.Void):
            raise _refuse(
                TimestampReason.UNSUPPORTED_ALGORITHM, "timestamp request extensions are refused"
            )
        alg, hashed = _imprint(req["message_imprint"])
        policy = None if isinstance(req["req_policy"], a_core.Void) else req["req_policy"].dotted
        nonce = None if isinstance(req["nonce"], a_core.Void) else int(req["nonce"].native)
        cert_req = bool(req["cert_req"].native)
    except TimestampVerificationError:
        raise
    except der.PARSE_ERRORS as exc:
        raise _refuse(TimestampReason.MALFORMED, f"timestamp request is malformed: {exc}") from None
    return TimestampRequest(alg, hashed, nonce, cert_req, policy, raw)


def _check_der(data: bytes, what: str) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise _refuse(TimestampReason.MALFORMED, f"{what}: expected bytes")
    raw = bytes(data)
    try:
        der.check_der(raw, what=what, max_size=MAX_MESSAGE_SIZE)
    except EncodingError as exc:
        raise _refuse(TimestampReason.MALFORMED, exc.message) from None
    return raw


# ----------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class TimestampInfo:
    """A verified TSTInfo: ``gen_time`` (UTC), ``serial_number``, ``policy``,
    ``hash_algorithm``/``hashed_message`` (the imprint), ``nonce``, ``accuracy``,
    ``ordering``, ``tsa_certificate`` (the signer, verified), ``token`` (the DER)."""

    gen_time: dt.datetime
    serial_number: int
    policy: str
    hash_algorithm: str
    hashed_message: bytes
    nonce: int | None
    accuracy: dt.timedelta | None
    ordering: bool
    tsa_certificate: Certificate | None
    token: bytes


class _Resp(a_core.Sequence):
    """TimeStampResp with the token optional (a rejection carries none)."""

    _fields = [
        ("status", a_tsp.PKIStatusInfo),
        ("time_stamp_token", a_core.Any, {"optional": True}),
    ]


def ess_cert_id_v2(certificate: Certificate, hash_algorithm: HashAlgorithm | str) -> bytes:
    """DER of a SigningCertificateV2 naming ``certificate`` (RFC 5035): one ESSCertIDv2 with
    the certificate hash and its issuer and serial; SHA-256 (the default) is left implicit."""
    alg = HashAlgorithm(hash_algorithm).value
    cert_id: dict[str, object] = {
        "cert_hash": _hash(alg, certificate.to_der()),
        "issuer_serial": {
            "issuer": [
                a_x509.GeneralName(
                    name="directory_name", value=certificate.asn1["tbs_certificate"]["issuer"]
                )
            ],
            "serial_number": certificate.serial_number,
        },
    }
    if alg != oids.SHA256:
        cert_id["hash_algorithm"] = a_algos.DigestAlgorithm({"algorithm": alg})
    return bytes(a_tsp.SigningCertificateV2({"certs": [cert_id]}).dump())


def check_signing_certificate_v2(value_der: bytes, certificate: Certificate) -> str | None:
    """None when the SigningCertificateV2 ``value_der`` names ``certificate`` first,
    else what is wrong (hash algorithm, hash, issuer or serial)."""
    try:
        sc = a_tsp.SigningCertificateV2.load(value_der, strict=True)
        first = sc["certs"][0]
        alg = first["hash_algorithm"]["algorithm"].dotted
        if alg not in _HASH_FUNCS:
            return f"the certificate hash uses {alg}: only SM3 and SHA-2 are accepted"
        if not hmac.compare_digest(
            bytes(first["cert_hash"].native), _hash(alg, certificate.to_der())
        ):
            return "the certificate hash does not match the signer's certificate"
        serial = first["issuer_serial"]
        if not isinstance(serial, a_core.Void):
            if int(serial["serial_number"].native) != certificate.serial_number:
                return "issuerSerial names another serial number"
            names = list(serial["issuer"])
            issuer = certificate.asn1["tbs_certificate"]["issuer"].dump()
            if len(names) != 1 or names[0].name != "directory_name":
                return "issuerSerial must name the issuer by one directoryName"
            if names[0].chosen.untag().dump() != issuer:
                return "issuerSerial names another issuer"
    except (*der.PARSE_ERRORS, IndexError) as exc:
        return f"the attribute is malformed ({exc})"
    return None


def _tst_info(content: bytes) -> a_tsp.TSTInfo:
    try:
        info = a_tsp.TSTInfo.load(content, strict=True)
        _ = info.native  # parse every field now: a malformed one fails here
    except der.PARSE_ERRORS as exc:
        raise _refuse(TimestampReason.MALFORMED, f"TSTInfo is malformed: {exc}") from None
    if info["version"].native != "v1":
        raise _refuse(TimestampReason.MALFORMED, "TSTInfo version must be 1")
    return info


def parse_token(token: bytes) -> tuple[a_tsp.TSTInfo, cms.SignedDataInfo]:
    """The TSTInfo and the SignedData summary of a token, nothing verified."""
    raw = _check_der(token, "timestamp token")
    try:
        info = cms.parse(raw, max_size=MAX_MESSAGE_SIZE)
    except EbankAuthError as exc:
        raise _refuse(TimestampReason.MALFORMED, f"timestamp token: {exc.message}") from None
    if info.profile is not cms.CMSProfile.RFC5652 or info.content_type != oids.CT_TST_INFO:
        raise _refuse(
            TimestampReason.NOT_A_TIMESTAMP,
            "the token is not a SignedData over a TSTInfo (id-ct-TSTInfo)",
        )
    if info.content is None:
        raise _refuse(TimestampReason.MALFORMED, "the token carries no TSTInfo")
    if info.signer_count != 1:
        raise _refuse(TimestampReason.MALFORMED, "a timestamp token has exactly one signer")
    return _tst_info(info.content), info


_CMS_TO_TS: Final = {
    cms.CMSReason.SIGNER_CERTIFICATE_MISSING: TimestampReason.CERTIFICATE_MISSING,
    cms.CMSReason.SIGNER_NOT_TRUSTED: TimestampReason.TSA_NOT_TRUSTED,
    cms.CMSReason.BAD_SIGNATURE: TimestampReason.BAD_SIGNATURE,
    cms.CMSReason.CONTENT_TAMPERED: TimestampReason.BAD_SIGNATURE,
    cms.CMSReason.WRONG_DIGEST: TimestampReason.BAD_SIGNATURE,
    cms.CMSReason.UNSUPPORTED_ALGORITHM: TimestampReason.UNSUPPORTED_ALGORITHM,
}


def verify_token(
    token: bytes,
    *,
    data: bytes | None = None,
    digest: bytes | None = None,
    trust_roots: Iterable[Certificate | bytes],
    intermediates: Iterable[Certificate | bytes] = (),
    certificates: Iterable[Certificate | bytes] = (),
    nonce: int | None = None,
    policy: str | None = None,
    at: dt.datetime | None = None,
    crls: Iterable[CertificateRevocationList | bytes] = (),
) -> TimestampInfo:
    """Verify a TimeStampToken over ``data`` (or its ``digest`` with the token's hash).

    Returns the :class:`TimestampInfo`, or raises errors.TimestampVerificationError with
    ``.reason`` (a :class:`TimestampReason`).  ``nonce``/``policy``: required values (the
    client's request).  ``at``: the time the TSA's path is validated at (default now).
    ``certificates``: the TSA certificate when the token does not embed it.
    """
    if (data is None) == (digest is None):
        raise TimestampError("give exactly one of data and digest")
    tst, sd_info = parse_token(token)
    alg, hashed = _imprint(tst["message_imprint"])
    expected = _hash(alg, bytes(data)) if data is not None else bytes(digest or b"")
    if not hmac.compare_digest(hashed, expected):
        raise _refuse(
            TimestampReason.IMPRINT_MISMATCH,
            "the token timestamps other data: its message imprint differs from the data's hash",
        )
    got_nonce = None if isinstance(tst["nonce"], a_core.Void) else int(tst["nonce"].native)
    if nonce is not None and got_nonce != nonce:
        raise _refuse(TimestampReason.NONCE_MISMATCH, "the token's nonce is not the request's")
    got_policy = tst["policy"].dotted
    if policy is not None and got_policy != policy:
        raise _refuse(
            TimestampReason.POLICY_MISMATCH,
            f"the token was issued under policy {got_policy}, expected {policy}",
        )
    result = cms.validate(
        token,
        trust_roots=trust_roots,
        intermediates=intermediates,
        certificates=certificates,
        at=at,
        crls=crls,
        required_key_usage=None,
        max_size=MAX_MESSAGE_SIZE,
    )
    if not result.valid:
        reason = _CMS_TO_TS.get(result.reason, TimestampReason.MALFORMED)
        raise TimestampVerificationError(
            f"timestamp token refused: {result.message}", reason=reason, result=result
        )
    tsa_cert = result.signers[0].certificate
    assert tsa_cert is not None  # a valid signer always has its certificate
    problem = _tsa_certificate_problem(tsa_cert)
    if problem is not None:
        raise _refuse(TimestampReason.WRONG_EXTENDED_KEY_USAGE, problem)
    view = sd_info.signer_infos[0]
    scv2 = view.signed_attributes.get(oids.ATTR_SIGNING_CERTIFICATE_V2)
    if scv2 is None or len(scv2) != 1:
        raise _refuse(
            TimestampReason.SIGNING_CERTIFICATE,
            "the token lacks the signed signing-certificate-v2 attribute (RFC 5816); tokens "
            "that name their certificate by SHA-1 only are refused: configure the TSA for "
            "ESSCertIDv2 (OpenSSL: ess_cert_id_alg = sha256)",
        )
    wrong = check_signing_certificate_v2(scv2[0], tsa_cert)
    if wrong is not None:
        raise _refuse(TimestampReason.SIGNING_CERTIFICATE, f"signing-certificate-v2: {wrong}")
    tsa_name = tst["tsa"]
    if not isinstance(tsa_name, a_core.Void) and (
        tsa_name.name != "directory_name"
        or tsa_name.chosen.untag().dump() != tsa_cert.asn1["tbs_certificate"]["subject"].dump()
    ):
        raise _refuse(
            TimestampReason.TSA_NAME_MISMATCH, "the token's tsa name is not its signer's subject"
        )
    return TimestampInfo(
        gen_time=tst["gen_time"].native.astimezone(dt.timezone.utc),
        serial_number=int(tst["serial_number"].native),
        policy=got_policy,
        hash_algorithm=alg,
        hashed_message=hashed,
        nonce=got_nonce,
        accuracy=_accuracy(tst["accuracy"]),
        ordering=bool(tst["ordering"].native),
        tsa_certificate=tsa_cert,
        token=bytes(token),
    )


def _accuracy(acc: object) -> dt.timedelta | None:
    if isinstance(acc, a_core.Void) or not isinstance(acc, a_tsp.Accuracy):
        return None
    n = acc.native
    return dt.timedelta(
        seconds=n.get("seconds") or 0,
        milliseconds=n.get("millis") or 0,
        microseconds=n.get("micros") or 0,
    )


def _tsa_certificate_problem(cert: Certificate) -> str | None:
    """RFC 3161 §2.3: one extendedKeyUsage, critical, id-kp-timeStamping only."""
    eku = cert.extended_key_usage
    if eku is None or set(eku) != {oids.KP_TIME_STAMPING}:
        return (
            "the TSA certificate's extendedKeyUsage must be id-kp-timeStamping only "
            f"(found {sorted(eku) if eku is not None else 'none'})"
        )
    if oids.EXT_EXTENDED_KEY_USAGE not in cert.critical_extensions:
        return "the TSA certificate's extendedKeyUsage must be critical (RFC 3161 §2.3)"
    ku = cert.key_usage
    if ku is not None and not ({KeyUsage.DIGITAL_SIGNATURE, KeyUsage.NON_REPUDIATION} & set(ku)):
        return "the TSA certificate's keyUsage allows neither digitalSignature nor nonRepudiation"
    return None


def verify_response(
    response: bytes,
    request: TimestampRequest,
    *,
    trust_roots: Iterable[Certificate | bytes],
    intermediates: Iterable[Certificate | bytes] = (),
    certificates: Iterable[Certificate | bytes] = (),
    at: dt.datetime | None = None,
) -> TimestampInfo:
    """Check a TimeStampResp answers ``request``: status granted, then :func:`verify_token`
    with the request's imprint, nonce and policy; the TSA certificate must be in the token
    when the request asked for it."""
    raw = _check_der(response, "timestamp response")
    try:
        resp = _Resp.load(raw, strict=True)
        status = PKIStatus[str(resp["status"]["status"].native).upper()]
        text = resp["status"]["status_string"]
        status_text = "" if isinstance(text, a_core.Void) else "; ".join(text.native)
        fail = resp["status"]["fail_info"]
        failures = [] if isinstance(fail, a_core.Void) else sorted(fail.native)
        token = (
            None
            if isinstance(resp["time_stamp_token"], a_core.Void)
            else resp["time_stamp_token"].dump()
        )
    except (*der.PARSE_ERRORS, ValueError, KeyError) as exc:
        raise _refuse(
            TimestampReason.MALFORMED, f"timestamp response is malformed: {exc}"
        ) from None
    if status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        raise _refuse(
            TimestampReason.REJECTED,
            f"the TSA refused the request: {status.name.lower()}"
            + (f" ({', '.join(failures)})" if failures else "")
            + (f": {status_text}" if status_text else ""),
        )
    if token is None:
        raise _refuse(TimestampReason.MALFORMED, "the TSA granted the request but sent no token")
    info = verify_token(
        token,
        digest=request.hashed_message,
        trust_roots=trust_roots,
        intermediates=intermediates,
        certificates=certificates,
        nonce=request.nonce,
        policy=request.policy,
        at=at,
    )
    tst, _ = parse_token(token)
    if tst["message_imprint"]["hash_algorithm"]["algorithm"].dotted != request.hash_algorithm:
        raise _refuse(TimestampReason.IMPRINT_MISMATCH, "the token uses another hash algorithm")
    if request.nonce is None and info.nonce is not None:
        raise _refuse(TimestampReason.NONCE_MISMATCH, "the token has a nonce the request had not")
    if request.cert_req and not cms.parse(token, max_size=MAX_MESSAGE_SIZE).certificates:
        raise _refuse(
            TimestampReason.CERTIFICATE_MISSING,
            "the request asked for the TSA certificate but the token does not carry it",
        )
    return info


# ----------------------------------------------------------------------------- TSA


class TimestampAuthority:
    """A timestamp authority: answers DER TimeStampReqs with DER TimeStampResps.

    ``certificate`` must carry a critical extendedKeyUsage of id-kp-timeStamping only.
    ``clock`` returns the current UTC time (for tests); ``accuracy`` is stated in each
    token.  :meth:`respond` never raises for a bad request: it answers with a rejection.
    Serial numbers are random 127-bit integers (unique without a shared counter).
    """

    def __init__(
        self,
        key: SigningKey,
        certificate: Certificate,
        *,
        chain: Sequence[Certificate] = (),
        policy: str = DEFAULT_POLICY,
        other_policies: Iterable[str] = (),
        clock: Callable[[], dt.datetime] | None = None,
        accuracy: dt.timedelta | None = dt.timedelta(seconds=1),
        include_tsa_name: bool = True,
        hash_algorithms: Iterable[HashAlgorithm | str] = tuple(HashAlgorithm),
    ) -> None:
        problem = _tsa_certificate_problem(certificate)
        if problem is not None:
            raise ConfigurationError(problem)
        self._signer = cms.Signer(key=key, certificate=certificate, chain=tuple(chain))
        cms.sign(b"probe", self._signer)  # the key matches the certificate (raises otherwise)
        self.certificate = certificate
        self.policy = a_core.ObjectIdentifier(policy).dotted
        self._policies = {self.policy, *(a_core.ObjectIdentifier(p).dotted for p in other_policies)}
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._accuracy = accuracy
        self._tsa_name = include_tsa_name
        self._hashes = {HashAlgorithm(h).value for h in hash_algorithms}
        sm2_signer = key_algorithm(certificate.public_key).value == "sm2"
        self._ess = ess_cert_id_v2(
            certificate, HashAlgorithm.SM3 if sm2_signer else HashAlgorithm.SHA256
        )
        self._lock = threading.Lock()
        self.issued = 0

    def respond(self, request: bytes) -> bytes:
        """Answer one DER TimeStampReq with a DER TimeStampResp (granted or rejection)."""
        try:
            req = parse_request(request)
        except TimestampVerificationError as exc:
            fail = (
                FailureInfo.BAD_ALG
                if exc.reason is TimestampReason.UNSUPPORTED_ALGORITHM
                and "extension" not in exc.message
                else FailureInfo.UNACCEPTED_EXTENSION
                if "extension" in exc.message
                else FailureInfo.BAD_DATA_FORMAT
            )
            return _rejection(fail, exc.message)
        if req.hash_algorithm not in self._hashes:
            return _rejection(FailureInfo.BAD_ALG, "this TSA does not accept that hash algorithm")
        if req.policy is not None and req.policy not in self._policies:
            return _rejection(FailureInfo.UNACCEPTED_POLICY, f"policy {req.policy} not offered")
        now = self._clock().astimezone(dt.timezone.utc)
        gen_time = now.replace(microsecond=(now.microsecond // 1000) * 1000)
        info: dict[str, object] = {
            "version": "v1",
            "policy": req.policy or self.policy,
            "message_imprint": {
                "hash_algorithm": {"algorithm": req.hash_algorithm},
                "hashed_message": req.hashed_message,
            },
            "serial_number": secrets.randbits(126) | (1 << 126),
            "gen_time": gen_time,
        }
        if self._accuracy is not None:
            total_ms = int(self._accuracy.total_seconds() * 1000)
            acc: dict[str, int] = {}
            if total_ms // 1000:
                acc["seconds"] = total_ms // 1000
            if total_ms % 1000:
                acc["millis"] = total_ms % 1000
            if acc:
                info["accuracy"] = acc
        if req.nonce is not None:
            info["nonce"] = req.nonce
        if self._tsa_name:
            info["tsa"] = a_x509.GeneralName(
                name="directory_name",
                value=self.certificate.asn1["tbs_certificate"]["subject"],
            )
        tst = a_tsp.TSTInfo(info).dump()
        try:
            token = cms.sign(
                tst,
                self._signer,
                content_type=oids.CT_TST_INFO,
                signing_time=gen_time,
                extra_signed_attributes=[(oids.ATTR_SIGNING_CERTIFICATE_V2, self._ess)],
                include_certificates=req.cert_req,
            )
        except EbankAuthError:
            return _rejection(FailureInfo.SYSTEM_FAILURE, "the TSA could not sign")
        with self._lock:
            self.issued += 1
        status = a_tsp.PKIStatusInfo({"status": "granted"}).dump()
        return _tlv(0x30, status + token)


def _rejection(fail: FailureInfo, text: str) -> bytes:
    info = a_tsp.PKIStatusInfo(
        {
            "status": "rejection",
            "status_string": [text[:200]],
            "fail_info": a_tsp.PKIFailureInfo({_FAILURE_NAMES[fail]}),
        }
    )
    return _tlv(0x30, info.dump())


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


# ----------------------------------------------------------------------------- HTTP


def make_http_server(
    tsa: TimestampAuthority, address: tuple[str, int] = ("127.0.0.1", 0)
) -> http.server.ThreadingHTTPServer:
    """An HTTP server answering POSTed ``application/timestamp-query`` with ``tsa``.

    The caller runs it (``serve_forever`` in a thread) and stops it (``shutdown`` then
    ``server_close``); ``server.server_address`` has the port.  For tests, demos and an
    internal TSA behind the bank's own front end (it has no TLS and no access control).
    """

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            try:
                length = int(self.headers.get("Content-Length", "-1"))
            except ValueError:
                length = -1
            if ctype != CONTENT_TYPE_QUERY:
                self._send(415, b"send application/timestamp-query\n", "text/plain")
                return
            if not 0 < length <= MAX_MESSAGE_SIZE:
                self._send(413, b"timestamp query missing or too large\n", "text/plain")
                return
            body = self.rfile.read(length)
            self._send(200, tsa.respond(body), CONTENT_TYPE_REPLY)

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # the library logs nothing per request

    return http.server.ThreadingHTTPServer(address, Handler)


# ----------------------------------------------------------------------------- client


class Timestamper(Protocol):
    """Anything that returns a verified TimeStampToken over ``data`` (DER)."""

    def timestamp(self, data: bytes) -> bytes: ...


Transport = str | Callable[[bytes], bytes]


class TimestampClient:
    """Ask a TSA for timestamps and verify each answer (:func:`verify_response`).

    ``tsa``: an ``http://`` or ``https://`` URL (POST, RFC 3161 §3.4) or a callable taking
    the DER request and returning the DER response (e.g. ``TimestampAuthority.respond``).
    ``trust_roots``/``intermediates``: the TSA's path.  Every request carries a fresh nonce
    and asks for the TSA certificate.
    """

    def __init__(
        self,
        tsa: Transport,
        *,
        trust_roots: Iterable[Certificate | bytes],
        intermediates: Iterable[Certificate | bytes] = (),
        hash_algorithm: HashAlgorithm | str = HashAlgorithm.SM3,
        policy: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if isinstance(tsa, str):
            scheme = urllib.parse.urlsplit(tsa).scheme.lower()
            if scheme not in ("http", "https"):
                raise ConfigurationError(f"the TSA URL must be http:// or https://, not {tsa!r}")
        elif not callable(tsa):
            raise ConfigurationError("tsa must be a URL or a callable request -> response")
        self._tsa = tsa
        self._roots = tuple(as_certificates(trust_roots))
        if not self._roots:
            raise ConfigurationError("give the TSA's trust root(s)")
        self._inters = tuple(as_certificates(intermediates))
        self.hash_algorithm = HashAlgorithm(hash_algorithm)
        self.policy = policy
        self.timeout = timeout

    def timestamp(self, data: bytes) -> bytes:
        """A verified TimeStampToken (DER) over ``data``."""
        return self.timestamp_info(data).token

    def timestamp_info(self, data: bytes) -> TimestampInfo:
        """As :meth:`timestamp`, returning the verified :class:`TimestampInfo`."""
        request = build_request(data, hash_algorithm=self.hash_algorithm, policy=self.policy)
        response = self._exchange(request.der)
        return verify_response(
            response, request, trust_roots=self._roots, intermediates=self._inters
        )

    def _exchange(self, body: bytes) -> bytes:
        if not isinstance(self._tsa, str):
            return bytes(self._tsa(body))
        req = urllib.request.Request(  # noqa: S310 (the scheme is checked in __init__)
            self._tsa,
            data=body,
            method="POST",
            headers={"Content-Type": CONTENT_TYPE_QUERY, "Accept": CONTENT_TYPE_REPLY},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                payload: bytes = resp.read(MAX_MESSAGE_SIZE + 1)
        except urllib.error.HTTPError as exc:
            raise TimestampUnavailable(
                f"the TSA at {self._tsa} answered HTTP {exc.code}: check the URL"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise TimestampUnavailable(f"the TSA at {self._tsa} is unreachable: {exc}") from None
        if ctype != CONTENT_TYPE_REPLY:
            raise _refuse(
                TimestampReason.MALFORMED,
                f"the TSA answered {ctype or 'no content type'}, not {CONTENT_TYPE_REPLY}",
            )
        if len(payload) > MAX_MESSAGE_SIZE:
            raise _refuse(TimestampReason.MALFORMED, "the TSA's answer is too large")
        return payload
