"""RFC 5280 profile checks the chain validator applies to every certificate below the
trust anchor, and the strength check of every certificate's key.

Each check returns a message (what is wrong, what to do) or None.
"""

from __future__ import annotations

import re
from typing import Final

from asn1crypto import keys as a_keys

from ebank_auth.crypto import der as der_module
from ebank_auth.crypto import oids
from ebank_auth.crypto.algorithms import KeyAlgorithm
from ebank_auth.errors import InvalidKey, UnsupportedAlgorithm

from .certificate import Certificate, KeyUsage

__all__ = ["key_problem", "profile_problem", "san_entries"]

MAX_SERIAL_OCTETS: Final = 20
_DNS_LABEL: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_URI: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+\Z")
_WEAK_EC_BITS: Final = 256


def valid_dns_name(name: str, *, wildcard: bool = True) -> bool:
    """Preferred name syntax (RFC 1034 3.5 as amended by RFC 1123), optional ``*.`` prefix."""
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if wildcard and labels[0] == "*" and len(labels) > 1:
        labels = labels[1:]
    return all(_DNS_LABEL.match(label) for label in labels)


def valid_mailbox(name: str) -> bool:
    """``local@domain`` with a non-empty local part and a valid domain."""
    local, at, domain = name.rpartition("@")
    return bool(at and local) and " " not in local and valid_dns_name(domain, wildcard=False)


def san_entries(cert: Certificate) -> list[tuple[str, bytes | a_keys.Asn1Value]]:
    """(asn1crypto choice name, raw contents or Name) of every subjectAltName entry."""
    value = cert.extension_value(oids.EXT_SUBJECT_ALT_NAME)
    if value is None:
        return []
    out: list[tuple[str, bytes | a_keys.Asn1Value]] = []
    for gn in value:
        if gn.name == "directory_name":
            out.append((gn.name, gn.chosen))
        else:
            out.append((gn.name, bytes(gn.chosen.contents or b"")))
    return out


def _san_problem(cert: Certificate) -> str | None:
    entries = san_entries(cert)
    if not entries:
        return "subjectAltName is empty (it must name at least one name)"
    for kind, raw in entries:
        if kind == "directory_name":
            continue
        assert isinstance(raw, bytes)
        if kind == "ip_address":
            if len(raw) not in (4, 16):
                return f"subjectAltName iPAddress has {len(raw)} octets (4 or 16 expected)"
            continue
        if kind not in ("dns_name", "rfc822_name", "uniform_resource_identifier"):
            continue
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            return f"subjectAltName {kind} is not ASCII (IA5String)"
        if kind == "dns_name" and not valid_dns_name(text):
            return f"subjectAltName dNSName {text!r} is not a valid host name"
        if kind == "rfc822_name" and not valid_mailbox(text):
            return f"subjectAltName rfc822Name {text!r} is not a valid mailbox (local@domain)"
        if kind == "uniform_resource_identifier" and not _URI.match(text):
            return f"subjectAltName URI {text!r} is not an absolute URI (scheme:...)"
    return None


def _name_constraints_problem(cert: Certificate) -> str | None:
    nc = cert.extension_value(oids.EXT_NAME_CONSTRAINTS)
    if nc is None:
        return None
    if not cert.is_ca:
        return "nameConstraints may only appear in a CA certificate"
    trees = [nc["permitted_subtrees"], nc["excluded_subtrees"]]
    present = [t for t in trees if t.native is not None]
    if not present or not any(len(t) for t in present):
        return "nameConstraints has neither permitted nor excluded subtrees"
    for tree in present:
        for sub in tree:
            if sub["minimum"].native not in (None, 0) or sub["maximum"].native is not None:
                return "nameConstraints subtrees must not set minimum or maximum (RFC 5280)"
    return None


def profile_problem(cert: Certificate, issuer: Certificate | None, *, leaf: bool) -> str | None:
    """The first RFC 5280 profile violation of ``cert`` (issued by ``issuer``), or None.

    ``leaf``: the end of the path (an issuer without cA is reported as NOT_A_CA instead
    of the keyCertSign rule).
    """
    try:
        return _profile_problem(cert, issuer, leaf)
    except der_module.PARSE_ERRORS:
        return "an extension value is malformed"


def _profile_problem(cert: Certificate, issuer: Certificate | None, leaf: bool) -> str | None:
    if cert.serial_number <= 0:
        return "serial number must be a positive integer (RFC 5280 4.1.2.2)"
    if cert.serial_octets > MAX_SERIAL_OCTETS:
        return f"serial number is {cert.serial_octets} octets long (at most 20 allowed)"
    critical = cert.critical_extensions
    if oids.EXT_AUTHORITY_KEY_ID in critical:
        return "authorityKeyIdentifier must be non-critical"
    if oids.EXT_SUBJECT_KEY_ID in critical:
        return "subjectKeyIdentifier must be non-critical"
    self_signed = issuer is not None and cert.is_self_issued and issuer.spki_der == cert.spki_der
    if not cert.has_extension(oids.EXT_AUTHORITY_KEY_ID) and not self_signed:
        return "authorityKeyIdentifier is missing (required in all but self-signed certificates)"
    bc = cert.basic_constraints
    if bc is not None and bc.ca:
        if oids.EXT_BASIC_CONSTRAINTS not in critical:
            return "basicConstraints of a CA certificate must be critical"
        if cert.subject_key_identifier is None:
            return "a CA certificate must have a subjectKeyIdentifier"
        if cert.subject_is_empty:
            return "a CA certificate must have a non-empty subject"
    if (
        leaf
        and cert.key_usage is not None
        and KeyUsage.KEY_CERT_SIGN in cert.key_usage
        and not cert.is_ca
    ):
        return "keyUsage keyCertSign is set but basicConstraints cA is not TRUE"
    if cert.extended_key_usage is not None and not cert.extended_key_usage:
        return "extendedKeyUsage is empty (it must list at least one purpose)"
    if cert.has_extension(oids.EXT_SUBJECT_ALT_NAME):
        problem = _san_problem(cert)
        if problem:
            return problem
    if cert.subject_is_empty:
        if not cert.has_extension(oids.EXT_SUBJECT_ALT_NAME):
            return "the subject is empty and there is no subjectAltName"
        if oids.EXT_SUBJECT_ALT_NAME not in critical:
            return "the subject is empty, so subjectAltName must be critical"
    return _name_constraints_problem(cert)


def key_problem(cert: Certificate) -> tuple[str, str] | None:
    """("weak_key" | "invalid_key" | "unsupported_algorithm", message), or None.

    Keys below the accepted strength (RSA < 2048, DSA, elliptic curves under 256 bits)
    are weak (UK-2, PS-4); other unsupported algorithms are unsupported.
    """
    try:
        cert.public_key  # noqa: B018 - loads (cached) and validates the key
    except InvalidKey as exc:
        if cert.key_algorithm is KeyAlgorithm.RSA:
            return "weak_key", f"the certificate's key is too weak: {exc.message}"
        return "invalid_key", f"the certificate's public key is invalid: {exc.message}"
    except UnsupportedAlgorithm as exc:
        if _is_weak(cert.spki_der):
            return (
                "weak_key",
                "the certificate's key is below the accepted strength (SM2, RSA ≥ 2048 "
                "or P-256 required)",
            )
        return "unsupported_algorithm", exc.message
    return None


def _is_weak(spki_der: bytes) -> bool:
    try:
        info = a_keys.PublicKeyInfo.load(spki_der)
        algorithm = info.algorithm
        if algorithm in ("dsa", "rsa", "rsassa_pss"):
            return True
        if algorithm == "ec":
            return int(info.bit_size) < _WEAK_EC_BITS
    except der_module.PARSE_ERRORS:
        return False
    return False
