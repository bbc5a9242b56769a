"""PKCS#10 certificate signing requests (RFC 2986) with SM2, RSA or P-256 keys.

:meth:`CertificateSigningRequest.verify` checks the proof of possession (the
request is signed by the key it carries) and the public key's validity (PS-4).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from asn1crypto import csr as a_csr
from asn1crypto import keys as a_keys
from asn1crypto import x509 as a_x509

from ebank_auth.crypto import der as der_module
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
    load_public_key,
    public_key_to_spki,
    validate_public_key,
    verify_data,
)
from ebank_auth.errors import EbankAuthError, InvalidSignature, UnsupportedAlgorithm

from .certificate import KeyUsage
from .names import build_name, format_name

__all__ = ["CertificateSigningRequest", "build_csr", "load_csr"]

PEM_LABELS: Final = ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")


class CertificateSigningRequest:
    """A parsed PKCS#10 request: ``subject``, ``public_key``, ``signature_algorithm``,
    ``requested_key_usage`` (from an extensionRequest, or None) and ``der``."""

    def __init__(self, der: bytes) -> None:
        """Parse DER; prefer :func:`load_csr`, which also accepts PEM."""
        der = bytes(der)
        der_module.check_der(der, what="CSR", max_size=der_module.MAX_CERT_SIZE)
        with der_module.parsing("CSR"):
            self._parse(der)

    def _parse(self, der: bytes) -> None:
        req = a_csr.CertificationRequest.load(der, strict=True)
        info = req["certification_request_info"]
        self.asn1 = req
        self.der = der
        self.info_der: bytes = info.dump()
        self.signature: bytes = signature_bits(req["signature"])
        self.signature_algorithm: SignatureAlgorithm | None
        try:
            self.signature_algorithm = parse_signature_algorithm(req["signature_algorithm"])
        except UnsupportedAlgorithm:
            self.signature_algorithm = None
        self.subject: str = format_name(info["subject"])
        self.spki_der: bytes = info["subject_pk_info"].dump()
        self.requested_key_usage: frozenset[KeyUsage] | None = None
        for attr in info["attributes"]:
            if attr["type"].native != "extension_request":
                continue
            for exts in attr["values"]:
                for ext in exts:
                    if ext["extn_id"].native == "key_usage":
                        self.requested_key_usage = frozenset(
                            KeyUsage(n) for n in ext["extn_value"].parsed.native
                        )
        self._public_key: PublicKey | None = None

    @property
    def public_key(self) -> PublicKey:
        """The requested public key (raises InvalidKey/UnsupportedAlgorithm)."""
        if self._public_key is None:
            self._public_key = load_public_key(self.spki_der)
        return self._public_key

    def verify(self) -> None:
        """Check proof of possession and key validity (PS-4).

        Raises errors.InvalidSignature, errors.InvalidKey or
        errors.UnsupportedAlgorithm.
        """
        if self.signature_algorithm is None:
            raise UnsupportedAlgorithm("CSR uses an unsupported signature algorithm")
        key = self.public_key
        validate_public_key(key)
        try:
            verify_data(key, self.signature_algorithm, self.signature, self.info_der)
        except InvalidSignature:
            raise InvalidSignature(
                "CSR proof of possession failed: the request was not signed by the key it carries "
                "(or was altered)"
            ) from None

    def is_valid(self) -> bool:
        """Boolean form of :meth:`verify`."""
        try:
            self.verify()
        except EbankAuthError:
            return False
        return True

    def to_der(self) -> bytes:
        """DER encoding (as loaded)."""
        return self.der

    def to_pem(self) -> bytes:
        """PEM ``CERTIFICATE REQUEST`` block."""
        return der_module.to_pem(self.der, "CERTIFICATE REQUEST")

    def __repr__(self) -> str:
        return f"<CertificateSigningRequest subject={self.subject!r}>"


def load_csr(data: bytes | CertificateSigningRequest) -> CertificateSigningRequest:
    """Load a CSR from PEM or DER; raises errors.EncodingError when malformed."""
    if isinstance(data, CertificateSigningRequest):
        return data
    return CertificateSigningRequest(der_module.der_or_pem(data, PEM_LABELS, "CSR"))


def build_csr(
    subject: str,
    key: SigningKey,
    *,
    key_usage: Iterable[KeyUsage | str] | None = None,
    signature_algorithm: SignatureAlgorithm | None = None,
) -> CertificateSigningRequest:
    """Build a PKCS#10 request for ``key``'s public key, signed by ``key``.

    ``key_usage`` adds an extensionRequest attribute asking for those usages.
    """
    spki = a_keys.PublicKeyInfo.load(public_key_to_spki(key.public_key()))
    attrs: list[dict[str, object]] = []
    if key_usage is not None:
        names = {KeyUsage(k).value for k in key_usage}
        attrs.append(
            {
                "type": "extension_request",
                "values": [
                    [
                        {
                            "extn_id": "key_usage",
                            "critical": True,
                            "extn_value": a_x509.KeyUsage(names),
                        }
                    ]
                ],
            }
        )
    info = a_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": build_name(subject),
            "subject_pk_info": spki,
            "attributes": attrs,
        }
    )
    alg = signature_algorithm or default_signature_algorithm(key)
    sig = key.sign_with(alg, info.dump())
    req = a_csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": algorithm_identifier(alg),
            "signature": sig,
        }
    )
    return CertificateSigningRequest(req.dump())
