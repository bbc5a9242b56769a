"""X.509 for ebank-auth: certificates, a small CA, chain validation, CRLs and CSRs.

SM2-with-SM3 (default distinguishing ID), sha256WithRSA / sm3WithRSA and
ECDSA-P256 (read/verify).  Built on asn1crypto (lazy DER parsing, RFC 5280 /
2986 schemas); every input is size- and depth-checked first and every failure
is a typed :mod:`ebank_auth.errors` exception.

Quick guide::

    from ebank_auth.crypto import sm2, x509
    from ebank_auth.crypto.x509 import KeyUsage

    root_key, sub_key, user_key = (sm2.generate_private_key() for _ in range(3))
    root = x509.CertificateAuthority.create_root("CN=Test Root,O=Bank,C=CN", root_key,
                                                 valid_days=3650)
    sub = root.create_intermediate("CN=Issuing CA,O=Bank,C=CN", sub_key, path_length=0)
    leaf = sub.issue("CN=Alice,O=Bank,C=CN", user_key.public_key(),
                     key_usage={KeyUsage.DIGITAL_SIGNATURE, KeyUsage.NON_REPUDIATION},
                     valid_days=365)

    cert = x509.load_certificate(pem_or_der)           # SM2 / RSA / P-256
    cert.subject, cert.issuer, cert.serial_number, cert.not_before, cert.not_after
    cert.key_usage, cert.extended_key_usage, cert.basic_constraints, cert.public_key
    leaf.verify_signed_by(sub.certificate)             # raises errors.InvalidSignature

    result = x509.validate_chain(leaf, [sub.certificate], [root.certificate],
                                 at=None, crls=[crl],
                                 required_key_usage=KeyUsage.DIGITAL_SIGNATURE)
    result.valid, result.reason (ValidationReason), result.message, result.chain
    x509.verify_chain(...)   # same, raises errors.CertificateValidationError(reason=...)

    crl = sub.issue_crl(revoked=[leaf.serial_number], valid_days=7)   # or x509.load_crl(b)
    csr = x509.build_csr("CN=Bob,O=Bank,C=CN", bob_key)                # or x509.load_csr(b)
    csr.verify()                                       # proof of possession + key validity
    bob_cert = sub.issue_from_csr(csr)

Keys: every signer (CA, CRL, CSR) takes a :class:`~ebank_auth.crypto.keys.SigningKey` —
a software SM2/RSA/P-256 key or a key on a token.  ``x509.load_private_key(pem, password)``
(from :mod:`ebank_auth.crypto.keys`) reads SM2, RSA or P-256 PKCS#8.
"""

from __future__ import annotations

from ebank_auth.crypto import _asn1 as _asn1  # registers the GM/T OIDs (names only)
from ebank_auth.crypto.keys import (
    KeyAlgorithm,
    PublicKey,
    SignatureAlgorithm,
    SigningKey,
    load_private_key,
    load_public_key,
    private_key_to_pem,
)

from .ca import CertificateAuthority, build_certificate, random_serial
from .certificate import (
    BasicConstraints,
    Certificate,
    ExtendedKeyUsage,
    KeyUsage,
    clear_cache,
    load_certificate,
    load_certificates,
)
from .chain import (
    FailingCertificate,
    ValidationReason,
    ValidationResult,
    validate_chain,
    verify_chain,
)
from .crl import (
    CertificateRevocationList,
    RevocationReason,
    RevokedCertificate,
    build_crl,
    load_crl,
)
from .csr import CertificateSigningRequest, build_csr, load_csr
from .names import format_name, parse_name

__all__ = [
    "BasicConstraints",
    "Certificate",
    "CertificateAuthority",
    "CertificateRevocationList",
    "CertificateSigningRequest",
    "ExtendedKeyUsage",
    "FailingCertificate",
    "KeyAlgorithm",
    "KeyUsage",
    "PublicKey",
    "RevocationReason",
    "RevokedCertificate",
    "SignatureAlgorithm",
    "SigningKey",
    "ValidationReason",
    "ValidationResult",
    "build_certificate",
    "build_crl",
    "build_csr",
    "clear_cache",
    "format_name",
    "load_certificate",
    "load_certificates",
    "load_crl",
    "load_csr",
    "load_private_key",
    "load_public_key",
    "parse_name",
    "private_key_to_pem",
    "random_serial",
    "validate_chain",
    "verify_chain",
]
