"""Certificate revocation lists (RFC 5280 §5): build, sign, parse, check freshness."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from asn1crypto import core as a_core
from asn1crypto import crl as a_crl

from ebank_auth.crypto import der as der_module
from ebank_auth.crypto import oids
from ebank_auth.crypto._asn1 import (
    algorithm_identifier,
    parse_signature_algorithm,
    signature_bits,
)
from ebank_auth.crypto.keys import (
    PublicKey,
    SignatureAlgorithm,
    SigningKey,
    default_signature_algorithm,
    key_identifier,
    public_key_to_spki,
    verify_data,
)
from ebank_auth.errors import ConfigurationError, UnsupportedAlgorithm

from .certificate import Certificate, _as_utc
from .names import format_name, name_key

__all__ = [
    "CertificateRevocationList",
    "RevocationReason",
    "RevokedCertificate",
    "build_crl",
    "load_crl",
]

PEM_LABELS: Final = ("X509 CRL",)


class RevocationReason(str, Enum):
    """CRLReason values (asn1crypto names)."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "key_compromise"
    CA_COMPROMISE = "ca_compromise"
    AFFILIATION_CHANGED = "affiliation_changed"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessation_of_operation"
    CERTIFICATE_HOLD = "certificate_hold"
    REMOVE_FROM_CRL = "remove_from_crl"
    PRIVILEGE_WITHDRAWN = "privilege_withdrawn"
    AA_COMPROMISE = "aa_compromise"


@dataclass(frozen=True)
class RevokedCertificate:
    """One CRL entry: serial number, revocation date and optional reason."""

    serial_number: int
    revocation_date: dt.datetime
    reason: RevocationReason | None = None


class CertificateRevocationList:
    """A parsed CRL.

    ``issuer`` (RFC 4514 string), ``this_update``/``next_update`` (aware UTC;
    next_update may be None), ``crl_number``, ``revoked`` (serial ->
    RevokedCertificate), ``signature_algorithm``, ``der``.
    """

    def __init__(self, der: bytes) -> None:
        """Parse DER; prefer :func:`load_crl`, which also accepts PEM."""
        der = bytes(der)
        der_module.check_der(der, what="CRL", max_size=der_module.MAX_CRL_SIZE)
        with der_module.parsing("CRL"):
            self._parse(der)

    def _parse(self, der: bytes) -> None:
        crl = a_crl.CertificateList.load(der, strict=True)
        tbs = crl["tbs_cert_list"]
        self.asn1 = crl
        self.der = der
        self.tbs_der: bytes = tbs.dump()
        if crl["signature_algorithm"].dump() != tbs["signature"].dump():
            raise ValueError("signature algorithm differs between the TBS and the outer structure")
        self.signature_algorithm: SignatureAlgorithm | None
        try:
            self.signature_algorithm = parse_signature_algorithm(crl["signature_algorithm"])
        except UnsupportedAlgorithm:
            self.signature_algorithm = None
        self.signature: bytes = signature_bits(crl["signature"])
        self.issuer: str = format_name(tbs["issuer"])
        self.issuer_key: str = name_key(tbs["issuer"])
        self.this_update: dt.datetime = _as_utc(tbs["this_update"].native)
        nu = tbs["next_update"].native
        self.next_update: dt.datetime | None = _as_utc(nu) if nu is not None else None
        self.crl_number: int | None = None
        self.critical_extensions: frozenset[str] = frozenset()
        crit: set[str] = set()
        exts = tbs["crl_extensions"]
        for ext in () if isinstance(exts, a_core.Void) else exts:
            oid = ext["extn_id"].dotted
            if ext["critical"].native:
                crit.add(oid)
            if oid == oids.EXT_CRL_NUMBER:
                self.crl_number = int(ext["extn_value"].parsed.native)
        self.critical_extensions = frozenset(crit)
        revoked: dict[int, RevokedCertificate] = {}
        rc = tbs["revoked_certificates"]
        for entry in () if isinstance(rc, a_core.Void) else rc:
            serial = int(entry["user_certificate"].native)
            reason: RevocationReason | None = None
            entry_exts = entry["crl_entry_extensions"]
            for ext in () if isinstance(entry_exts, a_core.Void) else entry_exts:
                if ext["extn_id"].dotted == oids.EXT_CRL_REASON:
                    reason = RevocationReason(ext["extn_value"].parsed.native)
                elif ext["critical"].native:
                    crit.add(ext["extn_id"].dotted)
            revoked[serial] = RevokedCertificate(
                serial, _as_utc(entry["revocation_date"].native), reason
            )
        self.critical_extensions = frozenset(crit)
        self.revoked: dict[int, RevokedCertificate] = revoked

    def is_revoked(self, serial_number: int, at: dt.datetime | None = None) -> bool:
        """True when ``serial_number`` is listed (revoked on or before ``at``, if given)."""
        entry = self.revoked.get(serial_number)
        if entry is None:
            return False
        return at is None or entry.revocation_date <= _as_utc(at)

    def is_fresh(self, at: dt.datetime | None = None) -> bool:
        """thisUpdate ≤ at, and at ≤ nextUpdate when nextUpdate is present (``at``: now if None)."""
        at = _as_utc(at) if at is not None else dt.datetime.now(dt.timezone.utc)
        if at < self.this_update:
            return False
        return self.next_update is None or at <= self.next_update

    def verify_signed_by(self, issuer: Certificate | PublicKey) -> None:
        """Check the CRL signature; raises errors.InvalidSignature / UnsupportedAlgorithm."""
        if self.signature_algorithm is None:
            raise UnsupportedAlgorithm("CRL uses an unsupported signature algorithm")
        key = issuer.public_key if isinstance(issuer, Certificate) else issuer
        verify_data(key, self.signature_algorithm, self.signature, self.tbs_der)

    def to_der(self) -> bytes:
        """DER encoding (as loaded)."""
        return self.der

    def to_pem(self) -> bytes:
        """PEM ``X509 CRL`` block."""
        return der_module.to_pem(self.der, "X509 CRL")

    def __repr__(self) -> str:
        return f"<CertificateRevocationList issuer={self.issuer!r} entries={len(self.revoked)}>"


def load_crl(data: bytes | CertificateRevocationList) -> CertificateRevocationList:
    """Load a CRL from PEM or DER; raises errors.EncodingError when malformed."""
    if isinstance(data, CertificateRevocationList):
        return data
    return CertificateRevocationList(der_module.der_or_pem(data, PEM_LABELS, "CRL"))


def _utc(value: dt.datetime) -> dt.datetime:
    return _as_utc(value).replace(microsecond=0)


def build_crl(
    *,
    issuer: Certificate,
    issuer_key: SigningKey,
    revoked: Iterable[int | Certificate | RevokedCertificate] = (),
    this_update: dt.datetime | None = None,
    next_update: dt.datetime | None = None,
    valid_days: int = 7,
    crl_number: int | None = None,
    signature_algorithm: SignatureAlgorithm | None = None,
) -> CertificateRevocationList:
    """Build and sign a v2 CRL.

    ``revoked`` items are serial numbers (ints), Certificates or
    RevokedCertificate entries.  ``next_update`` defaults to this_update +
    ``valid_days``; ``crl_number`` defaults to this_update as a Unix time.
    """
    from .ca import _time

    if public_key_to_spki(issuer_key.public_key()) != issuer.spki_der:
        raise ConfigurationError("issuer_key does not match the CRL issuer certificate")
    tu = (
        _utc(this_update)
        if this_update
        else dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    )
    nu = _utc(next_update) if next_update else tu + dt.timedelta(days=valid_days)
    if nu <= tu:
        raise ConfigurationError("next_update must be later than this_update")
    entries = []
    for item in revoked:
        if isinstance(item, RevokedCertificate):
            entry = item
        elif isinstance(item, Certificate):
            entry = RevokedCertificate(item.serial_number, tu)
        elif isinstance(item, int) and not isinstance(item, bool):
            entry = RevokedCertificate(item, tu)
        else:
            raise ConfigurationError(
                "revoked entries must be serials, Certificates or RevokedCertificate"
            )
        value: dict[str, object] = {
            "user_certificate": entry.serial_number,
            "revocation_date": _time(entry.revocation_date),
        }
        if entry.reason is not None:
            value["crl_entry_extensions"] = [
                {"extn_id": "crl_reason", "critical": False, "extn_value": entry.reason.value}
            ]
        entries.append(value)
    alg = signature_algorithm or default_signature_algorithm(issuer_key)
    number = crl_number if crl_number is not None else int(tu.timestamp())
    aki = issuer.subject_key_identifier or key_identifier(issuer.spki_der)
    tbs_value: dict[str, object] = {
        "version": "v2",
        "signature": algorithm_identifier(alg),
        "issuer": issuer.asn1["tbs_certificate"]["subject"],
        "this_update": _time(tu),
        "next_update": _time(nu),
        "crl_extensions": [
            {"extn_id": "crl_number", "critical": False, "extn_value": number},
            {
                "extn_id": "authority_key_identifier",
                "critical": False,
                "extn_value": {"key_identifier": aki},
            },
        ],
    }
    if entries:
        tbs_value["revoked_certificates"] = entries
    tbs = a_crl.TbsCertList(tbs_value)
    sig = issuer_key.sign_with(alg, tbs.dump())
    crl = a_crl.CertificateList(
        {"tbs_cert_list": tbs, "signature_algorithm": algorithm_identifier(alg), "signature": sig}
    )
    return CertificateRevocationList(crl.dump())
