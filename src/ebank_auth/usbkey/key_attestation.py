"""Per-key attestation on the host: what kind of key a token key is, proven by the token.

The token answers ATTEST KEY with an X.509 **key attestation certificate** for the
container's public key, signed by the token's **attestation key** (not its device /
secure-channel key), whose CA certificate the manufacturer issued::

    manufacturer root  ──signs──▶  token attestation CA (CN = serial, pathLen 0, marker ext.)
                                   ──signs──▶  key attestation certificate (SPKI = the key,
                                               private extension: KeyStatement)

:func:`verify_key_attestation` checks that chain up to a manufacturer root of a
:class:`~ebank_auth.usbkey.attestation.TrustConfig` and returns the attested facts
(:class:`AttestedKey`).  A bank enrolling a *transaction* key must also require
:attr:`AttestedKey.is_transaction_key` (``CredentialRegistry.enrol_token_key`` does), so
that a login key — which signs any digest without display or button — is never accepted
as a transaction key.  The format (OIDs, DER) is in ``docs/usbkey-protocol.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ebank_auth.crypto import der as der_module
from ebank_auth.crypto import x509
from ebank_auth.errors import EbankAuthError, EncodingError, TokenNotGenuine
from ebank_auth.usbkey.attestation import TrustConfig, subject_common_name
from ebank_auth.usbkey.attestation_ext import (
    ATTESTATION_CA_VALUE,
    OID_ATTESTATION_CA,
    OID_KEY_STATEMENT,
    Confirmation,
    KeyOrigin,
    KeyStatement,
)
from ebank_auth.usbkey.protocol import Algorithm, ContainerUsage

__all__ = ["AttestedKey", "KeyAttestation", "load_attestation_chain", "verify_key_attestation"]


@dataclass(frozen=True)
class KeyAttestation:
    """What ATTEST KEY returned: the key attestation certificate and the token's attestation
    CA certificate (both DER).  Verify it with :meth:`verify` (or hand :meth:`to_pem` to the
    bank, which calls :func:`verify_key_attestation`)."""

    container: str
    certificate_der: bytes
    attestation_ca_der: bytes

    def to_pem(self) -> bytes:
        """Both certificates as one PEM file, key attestation certificate first."""
        return der_module.to_pem(self.certificate_der, "CERTIFICATE") + der_module.to_pem(
            self.attestation_ca_der, "CERTIFICATE"
        )

    def verify(self, trust: TrustConfig) -> AttestedKey:
        return verify_key_attestation((self.certificate_der, self.attestation_ca_der), trust)


@dataclass(frozen=True)
class AttestedKey:
    """The facts a verified key attestation states about one token key."""

    token_serial: str
    container: str
    algorithm: Algorithm
    usage: ContainerUsage
    origin: KeyOrigin
    exportable: bool
    confirmation: Confirmation
    firmware_version: str
    firmware_hash: str  # hex SM3
    public_key_der: bytes  # SubjectPublicKeyInfo of the attested key
    attestation_ca_subject: str
    root_subject: str

    @property
    def is_transaction_key(self) -> bool:
        """Generated on the token, not exportable, transaction usage, display+button enforced:
        the only kind of key a bank may accept for transaction confirmations (UK-6, UK-7)."""
        return (
            self.usage is ContainerUsage.TRANSACTION
            and self.confirmation is Confirmation.DISPLAY_AND_BUTTON
            and self.origin is KeyOrigin.GENERATED_ON_TOKEN
            and not self.exportable
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "token_serial": self.token_serial,
            "container": self.container,
            "algorithm": self.algorithm.name,
            "usage": self.usage.name.lower(),
            "origin": self.origin.name.lower(),
            "exportable": self.exportable,
            "confirmation": self.confirmation.name.lower(),
            "firmware_version": self.firmware_version,
            "firmware_sm3": self.firmware_hash,
            "attestation_ca": self.attestation_ca_subject,
            "root": self.root_subject,
            "transaction_key": self.is_transaction_key,
        }


def load_attestation_chain(data: bytes) -> list[x509.Certificate]:
    """The certificates of a PEM file (key attestation certificate first) or one DER."""
    try:
        certs = x509.load_certificates(bytes(data))
    except EbankAuthError as exc:
        raise EncodingError(f"the key attestation is not a certificate chain: {exc}") from None
    if not certs:
        raise EncodingError("the key attestation holds no certificate")
    return certs


def _extension(cert: x509.Certificate, oid: str) -> bytes | None:
    exts = cert.asn1["tbs_certificate"]["extensions"]
    with der_module.parsing("certificate extensions"):
        for ext in exts if exts.native is not None else ():
            if ext["extn_id"].dotted == oid:
                value: bytes = ext["extn_value"].contents
                return value
    return None


def verify_key_attestation(
    cert_chain: bytes | Sequence[bytes | x509.Certificate], trust: TrustConfig
) -> AttestedKey:
    """Verify a key attestation and return what it states.

    ``cert_chain``: a PEM bundle (or a sequence of certificates), key attestation certificate
    first, then the token's attestation CA certificate.  Raises :class:`TokenNotGenuine`
    unless the chain verifies up to a root of ``trust`` (validity, signatures, CA
    constraints), the issuing CA carries the attestation-CA marker and names the token
    serial the statement names; :class:`EncodingError` for malformed input.  It does not
    decide whether the key is fit for a purpose: check :attr:`AttestedKey.is_transaction_key`.
    """
    if isinstance(cert_chain, (bytes, bytearray, memoryview)):
        certs = load_attestation_chain(bytes(cert_chain))
    else:
        certs = [x509.load_certificate(c) for c in cert_chain]
        if not certs:
            raise EncodingError("the key attestation holds no certificate")
    if not trust.roots:
        raise TokenNotGenuine(
            "no manufacturer root is configured, so the key attestation cannot be checked: pass "
            "--trust-root (the token manufacturer's root certificate)"
        )
    leaf, rest = certs[0], certs[1:]
    result = x509.validate_chain(leaf, [*rest, *trust.intermediates], trust.roots)
    if not result.valid:
        raise TokenNotGenuine(
            f"the key attestation does not chain to a trusted manufacturer root "
            f"({result.message}): the key is not attested by a genuine token"
        )
    if len(result.chain) < 3:
        raise TokenNotGenuine(
            "the key attestation is not signed by a token's attestation CA: not a key attestation"
        )
    issuer = result.chain[1]
    if _extension(issuer, OID_ATTESTATION_CA) != ATTESTATION_CA_VALUE:
        raise TokenNotGenuine(
            "the key attestation's issuer is not a key-attestation CA of the manufacturer "
            "(marker extension missing): not a key attestation"
        )
    raw = _extension(leaf, OID_KEY_STATEMENT)
    if raw is None:
        raise TokenNotGenuine(
            "the certificate carries no key attestation statement: not a key attestation"
        )
    statement = KeyStatement.decode(raw)
    if subject_common_name(issuer.subject) != statement.token_serial:
        raise TokenNotGenuine(
            "the key attestation names another token than its attestation CA (serial "
            "mismatch): not genuine"
        )
    expected_alg = (
        x509.KeyAlgorithm.SM2 if statement.algorithm is Algorithm.SM2 else x509.KeyAlgorithm.RSA
    )
    if leaf.key_algorithm is not expected_alg:
        raise TokenNotGenuine("the attested key's algorithm differs from the statement")
    return AttestedKey(
        token_serial=statement.token_serial,
        container=statement.container,
        algorithm=statement.algorithm,
        usage=statement.usage,
        origin=statement.origin,
        exportable=statement.exportable,
        confirmation=statement.confirmation,
        firmware_version=statement.firmware_version,
        firmware_hash=statement.firmware_hash.hex(),
        public_key_der=leaf.spki_der,
        attestation_ca_subject=issuer.subject,
        root_subject=result.chain[-1].subject,
    )
