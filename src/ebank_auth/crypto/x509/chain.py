"""Certification path building and validation (RFC 5280 §6, simplified).

:func:`validate_chain` builds every path from the leaf to a trust anchor
through the given intermediates (by name chaining, with the authority/subject
key identifiers as a tie-breaker), validates it and returns a
:class:`ValidationResult` that always says *why* it failed.

Checked for every certificate of the path: signature (with its issuer's key),
validity at ``at``, unknown critical extensions, the RFC 5280 profile
(``_profile.py``: serial, AKI/SKI, basicConstraints criticality, EKU, SAN syntax,
empty subjects), the name constraints of every CA above (``_name_constraints.py``),
the strength of its key (the leaf's too), revocation against the CRLs given (CRL
signature, cRLNumber and freshness too).  For every issuer: cA flag, keyCertSign
when keyUsage is present, pathLenConstraint (self-issued certificates do not
count).  For the leaf: the required key usage(s) and extended key usage(s).  The
trust anchor's own validity period and CA flag are checked too (a bank should not
trust an expired root); it is exempt from the profile checks (trusted input).
Not implemented: policy processing (a critical certificatePolicies is refused as
UNSUPPORTED_CRITICAL_EXTENSION) and name constraints on URI/otherName forms
(refused when a certificate carries a name of a constrained form).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

from ebank_auth.crypto import der as der_module
from ebank_auth.crypto import oids
from ebank_auth.errors import (
    CertificateValidationError,
    EncodingError,
    InvalidKey,
    InvalidSignature,
    UnsupportedAlgorithm,
)

from ._name_constraints import Constraints, check_names, parse_constraints
from ._profile import key_problem, profile_problem
from .certificate import Certificate, ExtendedKeyUsage, KeyUsage, _as_utc, as_certificates
from .crl import CertificateRevocationList, load_crl

__all__ = [
    "FailingCertificate",
    "ValidationReason",
    "ValidationResult",
    "validate_chain",
    "verify_chain",
]

DEFAULT_MAX_PATH_LENGTH: Final = 8
_MAX_CANDIDATE_PATHS: Final = 64
_MAX_EXPANSIONS: Final = 2048  # bounds path building over adversarial same-name CAs


class ValidationReason(str, Enum):
    """Why a certification path was accepted or refused."""

    OK = "ok"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_ISSUER = "unknown_issuer"
    NOT_A_CA = "not_a_ca"
    PATH_TOO_LONG = "path_too_long"
    MISSING_KEY_CERT_SIGN = "missing_key_cert_sign"
    WRONG_KEY_USAGE = "wrong_key_usage"
    WRONG_EXTENDED_KEY_USAGE = "wrong_extended_key_usage"
    REVOKED = "revoked"
    CRL_STALE = "crl_stale"
    CRL_BAD_SIGNATURE = "crl_bad_signature"
    CRL_MISSING = "crl_missing"
    NAME_MISMATCH = "name_mismatch"
    UNSUPPORTED_CRITICAL_EXTENSION = "unsupported_critical_extension"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    INVALID_KEY = "invalid_key"
    WEAK_KEY = "weak_key"
    PROFILE_VIOLATION = "profile_violation"
    NAME_CONSTRAINTS_VIOLATION = "name_constraints_violation"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class FailingCertificate:
    """The certificate a refusal is about: ``index`` in the path (0 = leaf), ``subject``."""

    index: int
    subject: str
    serial_number: int


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of :func:`validate_chain`.

    ``valid``; ``reason`` (ValidationReason.OK when valid); ``message`` (human
    readable); ``failing_certificate`` (None when valid or no path was found);
    ``chain`` (the path examined, leaf first, trust anchor last; the best
    attempt when invalid).
    """

    valid: bool
    reason: ValidationReason
    message: str
    failing_certificate: FailingCertificate | None
    chain: tuple[Certificate, ...]

    def raise_for_status(self) -> None:
        """Raise errors.CertificateValidationError(reason=...) unless valid."""
        if not self.valid:
            raise CertificateValidationError(self.message, reason=self.reason)


def _fail(
    reason: ValidationReason,
    message: str,
    chain: Sequence[Certificate],
    index: int | None,
) -> ValidationResult:
    failing = None
    if index is not None:
        cert = chain[index]
        failing = FailingCertificate(index, cert.subject, cert.serial_number)
        message = f"{message} [certificate {index}: {cert.subject}]"
    return ValidationResult(False, reason, message, failing, tuple(chain))


def _issuer_candidates(
    cert: Certificate, pool: dict[str, list[Certificate]], by_kid: dict[bytes, list[Certificate]]
) -> list[Certificate]:
    """Possible issuers: same name first (matching key id first), then key id only."""
    named = [c for c in pool.get(cert.issuer_key, []) if c != cert or cert.is_self_issued]
    aki = cert.authority_key_identifier
    if aki is not None:
        named.sort(key=lambda c: c.subject_key_identifier != aki)
        extra = [c for c in by_kid.get(aki, []) if c not in named and c != cert]
        return named + extra
    return named


def _build_paths(
    leaf: Certificate,
    intermediates: Sequence[Certificate],
    anchors: Sequence[Certificate],
    max_len: int,
) -> tuple[list[list[Certificate]], bool]:
    """All paths leaf→anchor (each ends with an anchor); second value: a path hit max_len."""
    anchor_set = {a.der for a in anchors}
    pool: dict[str, list[Certificate]] = {}
    by_kid: dict[bytes, list[Certificate]] = {}
    for c in (*anchors, *intermediates):
        lst = pool.setdefault(c.subject_key, [])
        if c not in lst:
            lst.append(c)
        if c.subject_key_identifier is not None:
            kl = by_kid.setdefault(c.subject_key_identifier, [])
            if c not in kl:
                kl.append(c)
    paths: list[list[Certificate]] = []
    too_long = False
    if leaf.der in anchor_set:
        return [[leaf]], False
    stack: list[list[Certificate]] = [[leaf]]
    expansions = 0
    while stack and len(paths) < _MAX_CANDIDATE_PATHS and expansions < _MAX_EXPANSIONS:
        expansions += 1
        path = stack.pop()
        for cand in reversed(_issuer_candidates(path[-1], pool, by_kid)):
            if cand in path:
                continue
            new = [*path, cand]
            if cand.der in anchor_set:
                paths.append(new)
            elif len(new) > max_len:
                too_long = True
            else:
                stack.append(new)
    # prefer paths whose names chain, then shorter ones
    paths.sort(key=lambda p: (not _names_chain(p), len(p)))
    return paths, too_long


def _names_chain(path: Sequence[Certificate]) -> bool:
    return all(path[i].issuer_key == path[i + 1].subject_key for i in range(len(path) - 1))


def _validate_path(
    path: list[Certificate],
    *,
    at: dt.datetime,
    crls: Sequence[CertificateRevocationList],
    required_key_usage: frozenset[KeyUsage],
    required_eku: frozenset[str],
    require_crl: bool,
    max_path_length: int,
) -> ValidationResult:
    n = len(path)
    anchor_index = n - 1
    if n - 1 > max_path_length:
        return _fail(
            ValidationReason.PATH_TOO_LONG,
            f"path has {n - 1} certificates below the trust anchor, more than the limit "
            f"of {max_path_length}",
            path,
            0,
        )
    # RFC 5280 processes from the trust anchor down to the leaf.
    remaining_ca: int | None = None  # pathLen budget inherited from above
    constraints: list[Constraints] = []  # nameConstraints of the CAs above
    for i in range(anchor_index, -1, -1):
        cert = path[i]
        is_anchor = i == anchor_index
        # -- validity
        if at < cert.not_before:
            return _fail(
                ValidationReason.NOT_YET_VALID,
                f"certificate is not valid before {cert.not_before.isoformat()}",
                path,
                i,
            )
        if at > cert.not_after:
            return _fail(
                ValidationReason.EXPIRED,
                f"certificate expired at {cert.not_after.isoformat()}",
                path,
                i,
            )
        unknown = cert.critical_extensions - oids.UNDERSTOOD_EXTENSIONS
        if unknown:
            return _fail(
                ValidationReason.UNSUPPORTED_CRITICAL_EXTENSION,
                f"unsupported critical extension(s) {', '.join(sorted(unknown))}",
                path,
                i,
            )
        if not is_anchor:
            issuer = path[i + 1]
            if cert.issuer_key != issuer.subject_key:
                return _fail(
                    ValidationReason.NAME_MISMATCH,
                    f"issuer name {cert.issuer!r} does not match the subject of the issuing "
                    f"certificate {issuer.subject!r}",
                    path,
                    i,
                )
            try:
                cert.verify_signed_by(issuer)
            except InvalidSignature:
                return _fail(
                    ValidationReason.BAD_SIGNATURE,
                    "signature does not verify with the issuer's public key",
                    path,
                    i,
                )
            except UnsupportedAlgorithm as exc:
                return _fail(ValidationReason.UNSUPPORTED_ALGORITHM, exc.message, path, i)
            except (InvalidKey, EncodingError) as exc:
                return _fail(
                    ValidationReason.INVALID_KEY,
                    f"issuer public key unusable: {exc.message}",
                    path,
                    i + 1,
                )
            problem = profile_problem(cert, issuer, leaf=i == 0)
            if problem is not None:
                return _fail(
                    ValidationReason.PROFILE_VIOLATION,
                    f"certificate violates the RFC 5280 profile: {problem}",
                    path,
                    i,
                )
            if constraints:
                refused = _check_name_constraints(cert, constraints, path, i)
                if refused is not None:
                    return refused
            revoked = _check_revocation(cert, issuer, crls, at, require_crl, path, i)
            if revoked is not None:
                return revoked
        weak = key_problem(cert)
        if weak is not None:
            return _fail(ValidationReason(weak[0]), weak[1], path, i)
        # -- CA checks for every issuer (anchor and intermediates)
        if i > 0:
            bc = cert.basic_constraints
            if bc is None and not is_anchor:
                return _fail(
                    ValidationReason.NOT_A_CA,
                    "issuing certificate has no basicConstraints (cA) extension",
                    path,
                    i,
                )
            if bc is not None and not bc.ca:
                return _fail(
                    ValidationReason.NOT_A_CA,
                    "issuing certificate is not a CA (basicConstraints cA is FALSE)",
                    path,
                    i,
                )
            if cert.key_usage is not None and KeyUsage.KEY_CERT_SIGN not in cert.key_usage:
                return _fail(
                    ValidationReason.MISSING_KEY_CERT_SIGN,
                    "issuing certificate's keyUsage lacks keyCertSign",
                    path,
                    i,
                )
            if not is_anchor and not cert.is_self_issued and remaining_ca is not None:
                if remaining_ca <= 0:
                    return _fail(
                        ValidationReason.PATH_TOO_LONG,
                        "pathLenConstraint of a CA above is exceeded",
                        path,
                        i,
                    )
                remaining_ca -= 1
            if (
                bc is not None
                and bc.path_length is not None
                and (remaining_ca is None or bc.path_length < remaining_ca)
            ):
                remaining_ca = bc.path_length
            try:
                own = parse_constraints(cert, i)
            except der_module.PARSE_ERRORS:
                return _fail(
                    ValidationReason.PROFILE_VIOLATION,
                    "nameConstraints extension is malformed",
                    path,
                    i,
                )
            if own is not None:
                constraints.append(own)
    # -- leaf usage
    leaf = path[0]
    if required_key_usage:
        have = leaf.key_usage
        if have is None:
            return _fail(
                ValidationReason.WRONG_KEY_USAGE,
                "certificate has no keyUsage extension but "
                + ", ".join(sorted(k.value for k in required_key_usage))
                + " is required",
                path,
                0,
            )
        missing = required_key_usage - have
        if missing:
            return _fail(
                ValidationReason.WRONG_KEY_USAGE,
                "keyUsage lacks " + ", ".join(sorted(k.value for k in missing)),
                path,
                0,
            )
    if required_eku and leaf.extended_key_usage is not None:
        have_eku = set(leaf.extended_key_usage)
        if oids.ANY_EXTENDED_KEY_USAGE not in have_eku and not required_eku <= have_eku:
            return _fail(
                ValidationReason.WRONG_EXTENDED_KEY_USAGE,
                "extendedKeyUsage lacks " + ", ".join(sorted(required_eku - have_eku)),
                path,
                0,
            )
    return ValidationResult(
        True, ValidationReason.OK, "certificate path is valid", None, tuple(path)
    )


def _check_name_constraints(
    cert: Certificate, constraints: list[Constraints], path: list[Certificate], index: int
) -> ValidationResult | None:
    # RFC 5280 6.1.3 (b): a self-issued intermediate's subject is not checked
    check_subject = index == 0 or not cert.is_self_issued
    try:
        found = check_names(cert, constraints, check_subject=check_subject)
    except (*der_module.PARSE_ERRORS, UnicodeDecodeError):
        return _fail(
            ValidationReason.PROFILE_VIOLATION,
            "a name of the certificate is malformed",
            path,
            index,
        )
    if found is None:
        return None
    kind, message = found
    if kind == "unsupported":
        return _fail(ValidationReason.UNSUPPORTED_CRITICAL_EXTENSION, message, path, index)
    return _fail(ValidationReason.NAME_CONSTRAINTS_VIOLATION, message, path, index)


def _check_revocation(
    cert: Certificate,
    issuer: Certificate,
    crls: Sequence[CertificateRevocationList],
    at: dt.datetime,
    require_crl: bool,
    path: list[Certificate],
    index: int,
) -> ValidationResult | None:
    relevant = [c for c in crls if c.issuer_key == cert.issuer_key]
    if not relevant:
        if require_crl:
            return _fail(
                ValidationReason.CRL_MISSING,
                "no CRL from the issuer was supplied and revocation checking is required",
                path,
                index,
            )
        return None
    for crl in relevant:
        try:
            crl.verify_signed_by(issuer)
        except (InvalidSignature, UnsupportedAlgorithm, InvalidKey, EncodingError):
            return _fail(
                ValidationReason.CRL_BAD_SIGNATURE,
                f"CRL from {crl.issuer!r} does not verify with the issuer's key",
                path,
                index,
            )
        if issuer.key_usage is not None and KeyUsage.CRL_SIGN not in issuer.key_usage:
            return _fail(
                ValidationReason.CRL_BAD_SIGNATURE,
                "CRL issuer's keyUsage lacks cRLSign",
                path,
                index,
            )
        if crl.crl_number is None or oids.EXT_CRL_NUMBER in crl.critical_extensions:
            return _fail(
                ValidationReason.PROFILE_VIOLATION,
                f"CRL from {crl.issuer!r} "
                + (
                    "has no cRLNumber"
                    if crl.crl_number is None
                    else "marks cRLNumber critical (it must be non-critical)"
                )
                + " (RFC 5280 5.2.3): ask the CA for a conforming CRL",
                path,
                index,
            )
        if crl.critical_extensions - {oids.EXT_AUTHORITY_KEY_ID}:
            return _fail(
                ValidationReason.UNSUPPORTED_CRITICAL_EXTENSION,
                "CRL has an unsupported critical extension",
                path,
                index,
            )
        if not crl.is_fresh(at):
            nu = crl.next_update.isoformat() if crl.next_update else "none"
            return _fail(
                ValidationReason.CRL_STALE,
                f"CRL is not current at {at.isoformat()} (thisUpdate "
                f"{crl.this_update.isoformat()}, nextUpdate {nu}): fetch a fresh CRL",
                path,
                index,
            )
        entry = crl.revoked.get(cert.serial_number)
        if entry is not None and entry.revocation_date <= at:
            why = f" ({entry.reason.value})" if entry.reason else ""
            return _fail(
                ValidationReason.REVOKED,
                f"certificate was revoked on {entry.revocation_date.isoformat()}{why}",
                path,
                index,
            )
    return None


def validate_chain(
    leaf: Certificate | bytes,
    intermediates: Iterable[Certificate | bytes] = (),
    trust_roots: Iterable[Certificate | bytes] = (),
    *,
    at: dt.datetime | None = None,
    crls: Iterable[CertificateRevocationList | bytes] = (),
    required_key_usage: KeyUsage | str | Iterable[KeyUsage | str] | None = None,
    required_extended_key_usage: ExtendedKeyUsage
    | str
    | Iterable[ExtendedKeyUsage | str]
    | None = None,
    require_crl: bool = False,
    max_path_length: int = DEFAULT_MAX_PATH_LENGTH,
) -> ValidationResult:
    """Validate ``leaf`` up to one of ``trust_roots``; never raises for a bad chain.

    ``at`` defaults to now (UTC; naive datetimes are taken as UTC).
    ``crls``: revocation is checked for each certificate whose issuer has a
    CRL here; ``require_crl=True`` refuses certificates with none.
    ``required_key_usage``: e.g. ``KeyUsage.DIGITAL_SIGNATURE`` for signer
    certificates (PS-2).  Inputs may be objects or PEM/DER bytes; undecodable
    input gives reason MALFORMED.
    """
    try:
        leaf_c = as_certificates([leaf])[0]
        inters = as_certificates(intermediates)
        anchors = as_certificates(trust_roots)
        crl_list = [load_crl(c) for c in crls]
    except EncodingError as exc:
        return ValidationResult(False, ValidationReason.MALFORMED, exc.message, None, ())
    when = _as_utc(at) if at is not None else dt.datetime.now(dt.timezone.utc)
    ku = _usage_set(required_key_usage)
    eku = _eku_set(required_extended_key_usage)
    if not anchors:
        return ValidationResult(
            False,
            ValidationReason.UNKNOWN_ISSUER,
            "no trust roots were given: pass the trusted root certificate(s)",
            None,
            (leaf_c,),
        )
    paths, too_long = _build_paths(leaf_c, inters, anchors, max_path_length)
    if not paths:
        if too_long:
            return _fail(
                ValidationReason.PATH_TOO_LONG,
                f"no path to a trust root within {max_path_length} certificates",
                [leaf_c],
                0,
            )
        return _fail(
            ValidationReason.UNKNOWN_ISSUER,
            f"no trusted issuer found for issuer {leaf_c.issuer!r}: supply the intermediate "
            "certificates and the right trust root",
            [leaf_c],
            0,
        )
    first_failure: ValidationResult | None = None
    for path in paths:
        result = _validate_path(
            path,
            at=when,
            crls=crl_list,
            required_key_usage=ku,
            required_eku=eku,
            require_crl=require_crl,
            max_path_length=max_path_length,
        )
        if result.valid:
            return result
        if first_failure is None:
            first_failure = result
    assert first_failure is not None
    return first_failure


def verify_chain(
    leaf: Certificate | bytes,
    intermediates: Iterable[Certificate | bytes] = (),
    trust_roots: Iterable[Certificate | bytes] = (),
    **kwargs: object,
) -> tuple[Certificate, ...]:
    """Like :func:`validate_chain` but raises errors.CertificateValidationError
    (with ``.reason``) on refusal; returns the validated path."""
    result = validate_chain(leaf, intermediates, trust_roots, **kwargs)  # type: ignore[arg-type]
    result.raise_for_status()
    return result.chain


def _usage_set(value: KeyUsage | str | Iterable[KeyUsage | str] | None) -> frozenset[KeyUsage]:
    if value is None:
        return frozenset()
    if isinstance(value, (KeyUsage, str)):
        return frozenset({KeyUsage(value)})
    return frozenset(KeyUsage(v) for v in value)


def _eku_set(
    value: ExtendedKeyUsage | str | Iterable[ExtendedKeyUsage | str] | None,
) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, (ExtendedKeyUsage, str)):
        value = [value]
    return frozenset(v.value if isinstance(v, ExtendedKeyUsage) else str(v) for v in value)
