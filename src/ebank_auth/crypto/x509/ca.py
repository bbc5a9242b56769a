"""Build and sign certificates: a small CA for SM2, RSA (and P-256) issuers.

``CertificateAuthority`` pairs a CA certificate with its private key::

    root = CertificateAuthority.create_root("CN=Test Root,O=Bank,C=CN", key=sm2_key)
    sub = root.create_intermediate("CN=Issuing CA,O=Bank,C=CN", key=sub_key, path_length=0)
    leaf = sub.issue("CN=Alice,O=Bank,C=CN", public_key=alice_pub,
                     key_usage={KeyUsage.DIGITAL_SIGNATURE, KeyUsage.NON_REPUDIATION})

:func:`build_certificate` is the general builder behind it (any validity,
extensions, serial) for tests that need unusual certificates.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from asn1crypto import core
from asn1crypto import keys as a_keys
from asn1crypto import x509 as a_x509

from ebank_auth.crypto._asn1 import algorithm_identifier
from ebank_auth.crypto.keys import (
    PublicKey,
    SignatureAlgorithm,
    SigningKey,
    as_public_key,
    default_signature_algorithm,
    key_identifier,
    public_key_to_spki,
)
from ebank_auth.errors import CertificateError, ConfigurationError, EncodingError

from .certificate import Certificate, ExtendedKeyUsage, KeyUsage, _as_utc
from .crl import CertificateRevocationList, RevokedCertificate, build_crl
from .csr import CertificateSigningRequest
from .names import build_name

__all__ = ["CertificateAuthority", "build_certificate", "random_serial"]

CA_KEY_USAGE: Final = frozenset({KeyUsage.KEY_CERT_SIGN, KeyUsage.CRL_SIGN})
LEAF_SIGNING_KEY_USAGE: Final = frozenset({KeyUsage.DIGITAL_SIGNATURE, KeyUsage.NON_REPUDIATION})
MAX_VALID_DAYS: Final = 50 * 366
CLOCK_SKEW: Final = dt.timedelta(minutes=5)  # default notBefore is backdated by this much


def random_serial() -> int:
    """A positive 127-bit random serial (fits the 20-octet limit of RFC 5280)."""
    return secrets.randbits(126) | (1 << 126)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _time(value: dt.datetime) -> a_x509.Time:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    value = value.astimezone(dt.timezone.utc).replace(microsecond=0)
    if 1950 <= value.year < 2050:
        return a_x509.Time(name="utc_time", value=value)
    return a_x509.Time(name="general_time", value=value)


def _ext(oid_name: str, value: object, critical: bool) -> a_x509.Extension:
    return a_x509.Extension({"extn_id": oid_name, "critical": critical, "extn_value": value})


def build_certificate(
    *,
    subject: str | a_x509.Name,
    public_key: PublicKey | SigningKey,
    issuer_key: SigningKey,
    issuer: Certificate | None = None,
    serial_number: int | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    valid_days: int = 365,
    is_ca: bool = False,
    path_length: int | None = None,
    key_usage: Iterable[KeyUsage | str] | None = None,
    extended_key_usage: Iterable[ExtendedKeyUsage | str] | None = None,
    subject_alt_names: Iterable[str] = (),
    signature_algorithm: SignatureAlgorithm | None = None,
    include_basic_constraints: bool = True,
    extra_extensions: Iterable[tuple[str, bytes, bool]] = (),
) -> Certificate:
    """Build and sign one v3 certificate.

    ``not_before`` defaults to now minus 5 minutes (tolerates clock skew
    between issuer and verifier); ``not_after`` to not_before + ``valid_days``.
    ``issuer=None`` makes a self-signed certificate (``issuer_key`` must then
    be the subject's own private key).  ``key_usage`` None means "omit the
    extension"; it is marked critical when present.  ``subject_alt_names``
    entries are ``"dns:host"``, ``"email:a@b"`` or ``"uri:..."``.
    ``extra_extensions``: ``(dotted OID, DER value, critical)`` of further (e.g. private)
    extensions, appended as given; an OID this builder already writes is refused.
    """
    if valid_days <= 0 or valid_days > MAX_VALID_DAYS:
        raise ConfigurationError(f"valid_days must be between 1 and {MAX_VALID_DAYS}")
    if path_length is not None and (path_length < 0 or not is_ca):
        raise ConfigurationError("path_length needs is_ca=True and must be ≥ 0")
    subject_name = build_name(subject)
    spki_der = public_key_to_spki(as_public_key(public_key))
    spki = a_keys.PublicKeyInfo.load(spki_der)
    nb = _as_utc(not_before) if not_before else _utcnow() - CLOCK_SKEW
    na = _as_utc(not_after) if not_after else nb + dt.timedelta(days=valid_days)
    if na <= nb:
        raise ConfigurationError("not_after must be later than not_before")
    serial = random_serial() if serial_number is None else serial_number
    if serial <= 0 or serial.bit_length() > 159:
        raise ConfigurationError("serial number must be positive and at most 20 octets")

    if issuer is None:
        issuer_name = subject_name
        issuer_spki = public_key_to_spki(issuer_key.public_key())
        if issuer_spki != spki_der:
            raise ConfigurationError("a self-signed certificate needs the subject's own key")
        issuer_ski = key_identifier(spki_der)
    else:
        issuer_name = issuer.asn1["tbs_certificate"]["subject"]
        if public_key_to_spki(issuer_key.public_key()) != issuer.spki_der:
            raise ConfigurationError("issuer_key does not match the issuer certificate")
        issuer_ski = issuer.subject_key_identifier or key_identifier(issuer.spki_der)

    exts: list[a_x509.Extension] = []
    if include_basic_constraints:
        bc: dict[str, object] = {"ca": is_ca}
        if path_length is not None:
            bc["path_len_constraint"] = path_length
        exts.append(_ext("basic_constraints", a_x509.BasicConstraints(bc), True))
    if key_usage is not None:
        names = {KeyUsage(k).value for k in key_usage}
        if not names:
            raise ConfigurationError("key_usage must name at least one usage (or be None)")
        exts.append(_ext("key_usage", a_x509.KeyUsage(names), True))
    if extended_key_usage is not None:
        ekus = [
            ExtendedKeyUsage(e).value if isinstance(e, ExtendedKeyUsage) else e
            for e in extended_key_usage
        ]
        if ekus:
            exts.append(_ext("extended_key_usage", a_x509.ExtKeyUsageSyntax(ekus), False))
    exts.append(_ext("key_identifier", key_identifier(spki_der), False))
    exts.append(
        _ext(
            "authority_key_identifier",
            a_x509.AuthorityKeyIdentifier({"key_identifier": issuer_ski}),
            False,
        )
    )
    sans = list(subject_alt_names)
    if sans:
        general = []
        for san in sans:
            kind, _, value = san.partition(":")
            choice = {
                "dns": "dns_name",
                "email": "rfc822_name",
                "uri": "uniform_resource_identifier",
            }
            if kind.lower() not in choice or not value:
                raise EncodingError(f"subject alt name {san!r} must be dns:, email: or uri:")
            general.append(a_x509.GeneralName(name=choice[kind.lower()], value=value))
        exts.append(_ext("subject_alt_name", a_x509.GeneralNames(general), False))

    written = {e["extn_id"].dotted for e in exts}
    for ext_oid, ext_der, critical in extra_extensions:
        if ext_oid in written:
            raise ConfigurationError(f"extension {ext_oid} is given twice")
        written.add(ext_oid)
        extension = a_x509.Extension({"extn_id": ext_oid, "critical": critical})
        extension["extn_value"] = core.ParsableOctetString(bytes(ext_der))
        exts.append(extension)

    alg = signature_algorithm or default_signature_algorithm(issuer_key)
    alg_id = algorithm_identifier(alg)
    tbs = a_x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial,
            "signature": alg_id,
            "issuer": issuer_name,
            "validity": {"not_before": _time(nb), "not_after": _time(na)},
            "subject": subject_name,
            "subject_public_key_info": spki,
            "extensions": exts,
        }
    )
    tbs_der = tbs.dump()
    signature = issuer_key.sign_with(alg, tbs_der)
    cert = a_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": algorithm_identifier(alg),
            "signature_value": signature,
        }
    )
    return Certificate(cert.dump())


@dataclass
class CertificateAuthority:
    """A CA certificate with its signing key; issues certificates and CRLs.

    ``certificate`` is the CA's own certificate, ``key`` its private key (SM2,
    RSA or P-256), ``chain`` the CA certificates above it (issuer first, root
    last; empty for a root).
    """

    certificate: Certificate
    key: SigningKey
    chain: tuple[Certificate, ...] = field(default=())

    def __post_init__(self) -> None:
        if public_key_to_spki(self.key.public_key()) != self.certificate.spki_der:
            raise ConfigurationError("the CA key does not match the CA certificate")
        if not self.certificate.is_ca:
            raise CertificateError(
                f"{self.certificate.subject!r} is not a CA certificate (basicConstraints cA)"
            )

    @classmethod
    def create_root(
        cls,
        subject: str,
        key: SigningKey,
        *,
        valid_days: int = 3650,
        path_length: int | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        serial_number: int | None = None,
    ) -> CertificateAuthority:
        """A self-signed root CA (keyCertSign + cRLSign, cA=TRUE)."""
        cert = build_certificate(
            subject=subject,
            public_key=key.public_key(),
            issuer_key=key,
            is_ca=True,
            path_length=path_length,
            key_usage=CA_KEY_USAGE,
            valid_days=valid_days,
            not_before=not_before,
            not_after=not_after,
            serial_number=serial_number,
        )
        return cls(cert, key)

    def issue(
        self,
        subject: str,
        public_key: PublicKey | SigningKey,
        *,
        key_usage: Iterable[KeyUsage | str] | None = LEAF_SIGNING_KEY_USAGE,
        extended_key_usage: Iterable[ExtendedKeyUsage | str] | None = None,
        valid_days: int = 365,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        serial_number: int | None = None,
        is_ca: bool = False,
        path_length: int | None = None,
        subject_alt_names: Iterable[str] = (),
        signature_algorithm: SignatureAlgorithm | None = None,
        extra_extensions: Iterable[tuple[str, bytes, bool]] = (),
    ) -> Certificate:
        """Issue a certificate for ``public_key``; end entity (digitalSignature +
        nonRepudiation) unless told otherwise."""
        return build_certificate(
            subject=subject,
            public_key=public_key,
            issuer_key=self.key,
            issuer=self.certificate,
            serial_number=serial_number,
            not_before=not_before,
            not_after=not_after,
            valid_days=valid_days,
            is_ca=is_ca,
            path_length=path_length,
            key_usage=key_usage,
            extended_key_usage=extended_key_usage,
            subject_alt_names=subject_alt_names,
            signature_algorithm=signature_algorithm,
            extra_extensions=extra_extensions,
        )

    def issue_intermediate(
        self,
        subject: str,
        public_key: PublicKey | SigningKey,
        *,
        valid_days: int = 1825,
        path_length: int | None = 0,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        key_usage: Iterable[KeyUsage | str] | None = CA_KEY_USAGE,
    ) -> Certificate:
        """Issue a subordinate CA certificate (cA=TRUE, keyCertSign + cRLSign)."""
        return self.issue(
            subject,
            public_key,
            key_usage=key_usage,
            valid_days=valid_days,
            not_before=not_before,
            not_after=not_after,
            is_ca=True,
            path_length=path_length,
        )

    def create_intermediate(
        self,
        subject: str,
        key: SigningKey,
        *,
        valid_days: int = 1825,
        path_length: int | None = 0,
    ) -> CertificateAuthority:
        """Issue a subordinate CA for ``key`` and return it as a CertificateAuthority."""
        cert = self.issue_intermediate(
            subject, key.public_key(), valid_days=valid_days, path_length=path_length
        )
        return CertificateAuthority(cert, key, (self.certificate, *self.chain))

    def issue_from_csr(
        self,
        csr: CertificateSigningRequest,
        *,
        subject: str | None = None,
        key_usage: Iterable[KeyUsage | str] | None = LEAF_SIGNING_KEY_USAGE,
        extended_key_usage: Iterable[ExtendedKeyUsage | str] | None = None,
        valid_days: int = 365,
    ) -> Certificate:
        """Verify a CSR's proof of possession and key (PS-4), then issue for it.

        ``subject`` overrides the requested subject (the CA decides names).
        """
        if not isinstance(csr, CertificateSigningRequest):
            raise EncodingError("issue_from_csr needs a CertificateSigningRequest (load_csr)")
        csr.verify()
        return self.issue(
            subject or csr.subject,
            csr.public_key,
            key_usage=key_usage,
            extended_key_usage=extended_key_usage,
            valid_days=valid_days,
        )

    def issue_crl(
        self,
        revoked: Iterable[int | Certificate | RevokedCertificate] = (),
        *,
        this_update: dt.datetime | None = None,
        next_update: dt.datetime | None = None,
        valid_days: int = 7,
        crl_number: int | None = None,
    ) -> CertificateRevocationList:
        """Sign a CRL listing ``revoked`` (serials, Certificates or RevokedCertificate)."""
        return build_crl(
            issuer=self.certificate,
            issuer_key=self.key,
            revoked=revoked,
            this_update=this_update,
            next_update=next_update,
            valid_days=valid_days,
            crl_number=crl_number,
        )
