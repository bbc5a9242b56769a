"""Parsed X.509 certificates (RFC 5280): SM2, RSA and ECDSA P-256.

:func:`load_certificate` checks the DER structure, parses it with asn1crypto and
extracts every field the library uses *once*; a :class:`Certificate` never
raises a parsing error afterwards.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from asn1crypto import core as a_core
from asn1crypto import x509 as a_x509

from ebank_auth.crypto import der, oids, sm3
from ebank_auth.crypto import der as der_module
from ebank_auth.crypto._asn1 import parse_signature_algorithm, signature_bits
from ebank_auth.crypto.keys import (
    KeyAlgorithm,
    PublicKey,
    SignatureAlgorithm,
    load_public_key,
    verify_data,
)
from ebank_auth.errors import (
    EncodingError,
    InvalidKey,
    InvalidSignature,
    UnsupportedAlgorithm,
)

from .names import format_name, name_key

__all__ = [
    "BasicConstraints",
    "Certificate",
    "ExtendedKeyUsage",
    "KeyUsage",
    "load_certificate",
    "load_certificates",
]

PEM_LABELS: Final = ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE")


class KeyUsage(str, Enum):
    """keyUsage bits (RFC 5280 §4.2.1.3); values are asn1crypto's names."""

    DIGITAL_SIGNATURE = "digital_signature"
    NON_REPUDIATION = "non_repudiation"
    KEY_ENCIPHERMENT = "key_encipherment"
    DATA_ENCIPHERMENT = "data_encipherment"
    KEY_AGREEMENT = "key_agreement"
    KEY_CERT_SIGN = "key_cert_sign"
    CRL_SIGN = "crl_sign"
    ENCIPHER_ONLY = "encipher_only"
    DECIPHER_ONLY = "decipher_only"


class ExtendedKeyUsage(str, Enum):
    """Common extendedKeyUsage purposes, by dotted OID (any other OID string works too)."""

    SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
    CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"
    CODE_SIGNING = "1.3.6.1.5.5.7.3.3"
    EMAIL_PROTECTION = "1.3.6.1.5.5.7.3.4"
    TIME_STAMPING = "1.3.6.1.5.5.7.3.8"
    OCSP_SIGNING = "1.3.6.1.5.5.7.3.9"
    ANY = oids.ANY_EXTENDED_KEY_USAGE


@dataclass(frozen=True)
class BasicConstraints:
    """basicConstraints: ``ca`` flag and optional ``path_length`` (pathLenConstraint)."""

    ca: bool
    path_length: int | None


def _as_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


class Certificate:
    """An X.509 certificate.

    Attributes hold plain Python values: ``subject``/``issuer`` (RFC 4514
    strings), ``serial_number``, ``not_before``/``not_after`` (aware UTC
    datetimes), ``key_usage`` (frozenset of KeyUsage, or None when the
    extension is absent), ``extended_key_usage`` (tuple of dotted OIDs or None),
    ``basic_constraints`` (or None), ``subject_key_identifier`` /
    ``authority_key_identifier`` (bytes or None), ``signature_algorithm``,
    ``key_algorithm``, ``critical_extensions`` (dotted OIDs), ``der``.
    ``public_key`` loads the key as an ebank_auth SM2/RSA key (or a
    ``cryptography`` P-256 key) on first use.
    """

    __slots__ = (
        "_extension_values",
        "_issuer",
        "_name_keys",
        "_public_key",
        "_subject",
        "asn1",
        "authority_key_identifier",
        "basic_constraints",
        "critical_extensions",
        "der",
        "extended_key_usage",
        "key_algorithm",
        "key_usage",
        "not_after",
        "not_before",
        "serial_number",
        "serial_octets",
        "signature",
        "signature_algorithm",
        "spki_der",
        "subject_alt_names",
        "subject_key_identifier",
        "tbs_der",
        "version",
    )

    asn1: a_x509.Certificate
    der: bytes
    tbs_der: bytes
    signature: bytes
    signature_algorithm: SignatureAlgorithm | None
    _subject: str | None
    _issuer: str | None
    serial_number: int
    serial_octets: int
    version: int
    not_before: dt.datetime
    not_after: dt.datetime
    key_usage: frozenset[KeyUsage] | None
    extended_key_usage: tuple[str, ...] | None
    basic_constraints: BasicConstraints | None
    subject_key_identifier: bytes | None
    authority_key_identifier: bytes | None
    subject_alt_names: tuple[str, ...]
    critical_extensions: frozenset[str]
    spki_der: bytes
    key_algorithm: KeyAlgorithm | None
    _name_keys: tuple[str, str]
    _public_key: PublicKey | None
    _extension_values: dict[str, a_core.ParsableOctetString]

    def __init__(self, der: bytes) -> None:
        """Parse DER bytes; prefer :func:`load_certificate`, which also accepts PEM."""
        der = bytes(der)
        der_module.check_der(der, what="certificate", max_size=der_module.MAX_CERT_SIZE)
        with der_module.parsing("certificate"):
            self._parse(der)

    def _parse(self, der: bytes) -> None:
        cert = a_x509.Certificate.load(der, strict=True)
        tbs = cert["tbs_certificate"]
        self.asn1 = cert
        self.der = der
        self.tbs_der = tbs.dump()
        outer_alg = cert["signature_algorithm"]
        if outer_alg.dump() != tbs["signature"].dump():
            raise ValueError("signature algorithm differs between the TBS and the outer structure")
        try:
            self.signature_algorithm = parse_signature_algorithm(outer_alg)
        except UnsupportedAlgorithm:
            self.signature_algorithm = None
        self.signature = signature_bits(cert["signature_value"])
        self.version = int(tbs["version"].native[1:]) if tbs["version"].native else 1
        self._subject = None  # formatted on first use (costs more than parsing)
        self._issuer = None
        self._name_keys = (name_key(tbs["subject"]), name_key(tbs["issuer"]))
        self.serial_number = int(tbs["serial_number"].native)
        self.serial_octets = len(tbs["serial_number"].contents)
        validity = tbs["validity"]
        self.not_before = _as_utc(validity["not_before"].native)
        self.not_after = _as_utc(validity["not_after"].native)
        self.spki_der = tbs["subject_public_key_info"].dump()
        self._public_key = None
        self.key_algorithm = _spki_key_algorithm(tbs["subject_public_key_info"])
        key_usage: frozenset[KeyUsage] | None = None
        eku: tuple[str, ...] | None = None
        bc: BasicConstraints | None = None
        ski: bytes | None = None
        aki: bytes | None = None
        sans: tuple[str, ...] = ()
        critical: set[str] = set()
        seen: set[str] = set()
        values: dict[str, a_core.ParsableOctetString] = {}
        exts = tbs["extensions"]
        for ext in () if isinstance(exts, a_core.Void) else exts:
            oid = ext["extn_id"].dotted
            if oid in seen:
                raise ValueError(f"extension {oid} appears twice")
            seen.add(oid)
            if ext["critical"].native:
                critical.add(oid)
            value = ext["extn_value"]
            values[oid] = value
            if oid == oids.EXT_KEY_USAGE:
                key_usage = frozenset(KeyUsage(n) for n in value.parsed.native)
            elif oid == oids.EXT_EXTENDED_KEY_USAGE:
                eku = tuple(o.dotted for o in value.parsed)
            elif oid == oids.EXT_BASIC_CONSTRAINTS:
                bcn = value.parsed.native
                plen = bcn["path_len_constraint"]
                if plen is not None and plen < 0:
                    raise ValueError("negative pathLenConstraint")
                bc = BasicConstraints(bool(bcn["ca"]), plen)
            elif oid == oids.EXT_SUBJECT_KEY_ID:
                ski = bytes(value.parsed.native)
            elif oid == oids.EXT_AUTHORITY_KEY_ID:
                kid = value.parsed["key_identifier"].native
                aki = bytes(kid) if kid is not None else None
            elif oid == oids.EXT_SUBJECT_ALT_NAME:
                sans = tuple(
                    f"{gn.name}:{gn.native}" for gn in value.parsed if isinstance(gn.native, str)
                )
        self.key_usage = key_usage
        self.extended_key_usage = eku
        self.basic_constraints = bc
        self.subject_key_identifier = ski
        self.authority_key_identifier = aki
        self.subject_alt_names = sans
        self.critical_extensions = frozenset(critical)
        self._extension_values = values

    # ------------------------------------------------------------------ reading

    def has_extension(self, oid: str) -> bool:
        """True when the extension with this dotted OID is present (critical or not)."""
        return oid in self._extension_values

    def extension_value(self, oid: str) -> a_core.Asn1Value | None:
        """The parsed value (asn1crypto) of an extension, or None when absent.

        For the chain validator's profile and name-constraints checks; parsing a value
        the first time may raise ValueError on malformed content.
        """
        raw = self._extension_values.get(oid)
        return None if raw is None else raw.parsed

    @property
    def subject_is_empty(self) -> bool:
        """The subject is an empty sequence of RDNs."""
        return self._name_keys[0] == ""

    @property
    def subject(self) -> str:
        """Subject DN as an RFC 4514 string (most specific first)."""
        if self._subject is None:
            self._subject = format_name(self.asn1["tbs_certificate"]["subject"])
        return self._subject

    @property
    def issuer(self) -> str:
        """Issuer DN as an RFC 4514 string (most specific first)."""
        if self._issuer is None:
            self._issuer = format_name(self.asn1["tbs_certificate"]["issuer"])
        return self._issuer

    @property
    def public_key(self) -> PublicKey:
        """The subject public key (loaded once; raises InvalidKey/UnsupportedAlgorithm)."""
        if self._public_key is None:
            self._public_key = load_public_key(self.spki_der)
        return self._public_key

    @property
    def is_ca(self) -> bool:
        """True when basicConstraints has cA set."""
        return self.basic_constraints is not None and self.basic_constraints.ca

    @property
    def is_self_issued(self) -> bool:
        """Subject and issuer names are equal (RFC 5280 name matching)."""
        return self._name_keys[0] == self._name_keys[1]

    @property
    def subject_key(self) -> str:
        """Normalised subject name used for name chaining."""
        return self._name_keys[0]

    @property
    def issuer_key(self) -> str:
        """Normalised issuer name used for name chaining."""
        return self._name_keys[1]

    def is_valid_at(self, at: dt.datetime) -> bool:
        """notBefore ≤ at ≤ notAfter."""
        at = _as_utc(at)
        return self.not_before <= at <= self.not_after

    def fingerprint(self, algorithm: str = "sm3") -> str:
        """Hex fingerprint of the DER: ``sm3`` (default) or ``sha256``."""
        if algorithm == "sm3":
            return sm3.digest(self.der).hex()
        if algorithm == "sha256":
            return hashlib.sha256(self.der).hexdigest()
        raise UnsupportedAlgorithm("fingerprint algorithm must be 'sm3' or 'sha256'")

    def to_der(self) -> bytes:
        """The certificate's DER encoding (as loaded)."""
        return self.der

    def to_pem(self) -> bytes:
        """PEM ``CERTIFICATE`` block."""
        return der.to_pem(self.der, "CERTIFICATE")

    # ------------------------------------------------------------------ checking

    def verify_signed_by(self, issuer: Certificate | PublicKey) -> None:
        """Check this certificate's signature with ``issuer``'s key.

        Raises errors.InvalidSignature (also when the algorithm does not fit
        the key) or errors.UnsupportedAlgorithm.
        """
        if self.signature_algorithm is None:
            raise UnsupportedAlgorithm(
                f"certificate {self.subject!r} uses an unsupported signature algorithm"
            )
        key = issuer.public_key if isinstance(issuer, Certificate) else issuer
        verify_data(key, self.signature_algorithm, self.signature, self.tbs_der)

    def is_signed_by(self, issuer: Certificate | PublicKey) -> bool:
        """Boolean form of :meth:`verify_signed_by` (False on any failure)."""
        try:
            self.verify_signed_by(issuer)
        except (InvalidSignature, InvalidKey, UnsupportedAlgorithm):
            return False
        return True

    # ------------------------------------------------------------------ dunder

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Certificate) and other.der == self.der

    def __hash__(self) -> int:
        return hash(self.der)

    def __repr__(self) -> str:
        return f"<Certificate subject={self.subject!r} serial={self.serial_number:#x}>"


def _spki_key_algorithm(spki: object) -> KeyAlgorithm | None:
    alg = spki["algorithm"]  # type: ignore[index]
    oid = alg["algorithm"].dotted
    if oid == oids.RSA_ENCRYPTION:
        return KeyAlgorithm.RSA
    if oid == oids.SM2_CURVE:
        return KeyAlgorithm.SM2
    if oid == oids.EC_PUBLIC_KEY:
        params = alg["parameters"]
        curve = params.chosen.dotted if params.name == "named" else None
        if curve == oids.SM2_CURVE:
            return KeyAlgorithm.SM2
        if curve == oids.P256_CURVE:
            return KeyAlgorithm.EC_P256
    return None


@functools.lru_cache(maxsize=1024)
def _cached(der: bytes) -> Certificate:
    return Certificate(der)


def parse_der(der: bytes) -> Certificate:
    """Parse certificate DER, reusing the Certificate of identical bytes seen recently.

    Certificates are immutable, so equal DER means an equal object; a verifier
    that sees the same customer and CA certificates again skips asn1crypto
    parsing and rebuilding the public key.  ``clear_cache()`` empties it.
    """
    return _cached(bytes(der))


def clear_cache() -> None:
    """Forget recently parsed certificates (see :func:`parse_der`)."""
    _cached.cache_clear()


def load_certificate(data: bytes | Certificate) -> Certificate:
    """Load one certificate from PEM or DER bytes (a Certificate passes through).

    Raises errors.EncodingError for anything that is not a well-formed certificate.
    """
    if isinstance(data, Certificate):
        return data
    return parse_der(der.der_or_pem(data, PEM_LABELS, "certificate"))


def load_certificates(data: bytes) -> list[Certificate]:
    """Load every certificate of a PEM bundle (or a single DER certificate)."""
    if not isinstance(data, (bytes, bytearray)):
        raise EncodingError("certificates: expected bytes")
    if der.is_pem(bytes(data)):
        blocks = der.pem_blocks(bytes(data), PEM_LABELS)
        if not blocks:
            raise EncodingError("no CERTIFICATE block found in the PEM input")
        return [parse_der(b) for b in blocks]
    return [parse_der(bytes(data))]


def as_certificates(items: Iterable[Certificate | bytes]) -> list[Certificate]:
    """Load each item (PEM/DER bytes or Certificate) as a Certificate."""
    out: list[Certificate] = []
    for item in items:
        if isinstance(item, Certificate):
            out.append(item)
        else:
            out.extend(load_certificates(item))
    return out
