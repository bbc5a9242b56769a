"""Device binding: verify an Android Key Attestation chain for the phone's P-256 device key.

At enrolment the phone generates a P-256 key in its secure hardware with the bank's fresh
nonce as the attestation challenge and sends the chain Android returns (leaf first, the
root last).  :func:`verify_android_attestation` accepts it only if

* the chain is 2-10 certificates of at most 16 KiB, each signed by the next (RSA or ECDSA,
  any of the curves Google uses), every issuer a CA (basicConstraints cA), issuers valid now
  (the leaf's own validity is not checked: many TEEs write fixed dates), and the last one is
  self-signed with a public key **pinned** in :class:`AttestationTrust`;
* only the leaf carries the KeyDescription extension (``1.3.6.1.4.1.11129.2.1.17``) — a
  certificate below a genuine attested key, made with that key, cannot claim its own;
* the leaf's key is EC P-256;
* KeyDescription: ``attestationChallenge`` equals the server's nonce (constant-time),
  ``attestationSecurityLevel`` and ``keyMintSecurityLevel`` are TEE or StrongBox (as the
  policy allows) and ``attestationVersion`` at least the policy's minimum; in the
  **hardware-enforced** list: ``origin`` GENERATED, ``rootOfTrust`` with
  ``verifiedBootState`` VERIFIED and ``deviceLocked`` true; ``attestationApplicationId``
  names the bank's package and one of its signing-certificate SHA-256 digests.

Each refusal raises :class:`~ebank_auth.errors.DeviceAttestationRejected` with an
:class:`AttestationReason`.

Trust: :meth:`AttestationTrust.google` pins Google's hardware attestation roots, shipped in
``phone_shield/data/google_hardware_attestation_roots.pem`` and checked against the SPKI
SHA-256 pins below when loaded (the RSA-4096 root and the P-384 "Key Attestation CA1").  Tests
and the software phone use a root they mint themselves (:meth:`AttestationTrust.from_roots`);
a bank never adds a software-phone root to production trust.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Final

from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature as _CxInvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ebank_auth.errors import ConfigurationError, DeviceAttestationRejected, EncodingError
from ebank_auth.phone_shield.keydescription import (
    KEY_DESCRIPTION_OID,
    KeyDescription,
    KeyOrigin,
    SecurityLevel,
    VerifiedBootState,
)
from ebank_auth.phone_shield.protocol import AttestationReason

__all__ = [
    "GOOGLE_ROOT_SPKI_SHA256",
    "AttestationPolicy",
    "AttestationReason",
    "AttestationTrust",
    "AttestedDevice",
    "spki_sha256",
    "verify_android_attestation",
]

#: SHA-256 of the SubjectPublicKeyInfo of each Google hardware attestation root.
GOOGLE_ROOT_SPKI_SHA256: Final = frozenset(
    {
        # RSA-4096, subject serialNumber=f92009e853b6b045 (re-issued with the same key)
        bytes.fromhex("feb2ea7551ee316ed4bb443c8293b884dbfdea40b603ee3e4f4a897e4580fbae"),
        # ECDSA P-384, CN=Key Attestation CA1 (Remote Key Provisioning chains)
        bytes.fromhex("3ee44512a1af2beb39c889490c60ea3f82e43f5d5a5532f5ab9419f676cd07ec"),
    }
)
_ROOTS_FILE: Final = "google_hardware_attestation_roots.pem"
MAX_CHAIN: Final = 10
MAX_CERT_BYTES: Final = 16 * 1024


def _refuse(reason: AttestationReason, message: str) -> DeviceAttestationRejected:
    return DeviceAttestationRejected(
        f"phone attestation refused ({reason.value}): {message}", reason
    )


def spki_sha256(cert: cx509.Certificate) -> bytes:
    """SHA-256 of a certificate's DER SubjectPublicKeyInfo (how roots are pinned)."""
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


class AttestationTrust:
    """The roots an attestation chain must end in, pinned by their public key."""

    def __init__(self, roots: Iterable[cx509.Certificate]) -> None:
        self._pins = {spki_sha256(c): c for c in roots}
        if not self._pins:
            raise ConfigurationError(
                "no attestation roots are configured: use AttestationTrust.google() in "
                "production (Google's hardware attestation roots)"
            )

    @classmethod
    def google(cls) -> AttestationTrust:
        """Google's hardware attestation roots (shipped with the package, pins checked)."""
        data = resources.files("ebank_auth.phone_shield").joinpath("data").joinpath(_ROOTS_FILE)
        roots = cx509.load_pem_x509_certificates(data.read_bytes())
        found = {spki_sha256(c) for c in roots}
        if found != GOOGLE_ROOT_SPKI_SHA256:
            raise ConfigurationError(
                f"{_ROOTS_FILE} does not hold exactly the pinned Google roots: reinstall "
                "ebank-auth (the file was altered)"
            )
        return cls(roots)

    @classmethod
    def from_roots(cls, roots: Iterable[bytes | cx509.Certificate]) -> AttestationTrust:
        """Trust the given root certificates (DER, PEM or loaded): tests, software phones."""
        loaded = []
        for r in roots:
            if isinstance(r, cx509.Certificate):
                loaded.append(r)
            elif isinstance(r, (bytes, bytearray)):
                raw = bytes(r)
                loaded.extend(
                    cx509.load_pem_x509_certificates(raw)
                    if raw.lstrip().startswith(b"-----")
                    else [cx509.load_der_x509_certificate(raw)]
                )
            else:
                raise ConfigurationError("attestation roots are certificates (DER or PEM)")
        return cls(loaded)

    def is_pinned(self, cert: cx509.Certificate) -> bool:
        return spki_sha256(cert) in self._pins

    @property
    def pins(self) -> frozenset[bytes]:
        return frozenset(self._pins)


@dataclass(frozen=True)
class AttestationPolicy:
    """What the bank requires of the phone and its app.

    ``package_name``: the bank app's Android package; ``signing_cert_digests``: SHA-256 of the
    app's signing certificate(s) — at least one must appear in the attestation."""

    package_name: str
    signing_cert_digests: frozenset[bytes]
    allowed_levels: frozenset[SecurityLevel] = field(
        default_factory=lambda: frozenset(
            {SecurityLevel.TRUSTED_ENVIRONMENT, SecurityLevel.STRONGBOX}
        )
    )
    min_attestation_version: int = 3
    require_device_locked: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.package_name, str) or not self.package_name:
            raise ConfigurationError("the attestation policy needs the bank app's package name")
        digests = frozenset(self.signing_cert_digests)
        if not digests or any(not isinstance(d, bytes) or len(d) != 32 for d in digests):
            raise ConfigurationError(
                "give the SHA-256 digest (32 bytes) of the bank app's signing certificate(s)"
            )
        object.__setattr__(self, "signing_cert_digests", digests)
        levels = frozenset(SecurityLevel(v) for v in self.allowed_levels)
        if not levels or SecurityLevel.SOFTWARE in levels:
            raise ConfigurationError(
                "allowed_levels must be TEE and/or StrongBox: a software keystore is not a "
                "device binding"
            )
        object.__setattr__(self, "allowed_levels", levels)


@dataclass(frozen=True)
class AttestedDevice:
    """What a verified attestation says about the phone's device key."""

    public_key_der: bytes  # the device key, DER SubjectPublicKeyInfo (P-256)
    security_level: SecurityLevel
    keymint_level: SecurityLevel
    attestation_version: int
    keymint_version: int
    package_name: str
    verified_boot_key_sha256: bytes
    root_spki_sha256: bytes


def _load_chain(chain: Sequence[bytes]) -> list[cx509.Certificate]:
    if (
        isinstance(chain, (bytes, str))
        or not isinstance(chain, Sequence)
        or not 2 <= len(chain) <= MAX_CHAIN
    ):
        raise _refuse(
            AttestationReason.MALFORMED,
            f"send the attestation chain as 2 to {MAX_CHAIN} DER certificates, leaf first",
        )
    out = []
    for i, der in enumerate(chain):
        if not isinstance(der, (bytes, bytearray)) or not 0 < len(der) <= MAX_CERT_BYTES:
            raise _refuse(AttestationReason.MALFORMED, f"certificate {i} is empty or too large")
        try:
            out.append(cx509.load_der_x509_certificate(bytes(der)))
        except ValueError:
            raise _refuse(
                AttestationReason.MALFORMED, f"certificate {i} is not DER X.509"
            ) from None
    return out


def _is_ca(cert: cx509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(cx509.BasicConstraints).value
    except cx509.ExtensionNotFound:
        return False
    return bool(bc.ca)


def _has_key_description(cert: cx509.Certificate) -> bool:
    oid = cx509.ObjectIdentifier(KEY_DESCRIPTION_OID)
    return any(ext.oid == oid for ext in cert.extensions)


def verify_android_attestation(
    chain: Sequence[bytes],
    challenge: bytes,
    policy: AttestationPolicy,
    trust: AttestationTrust,
    *,
    at: dt.datetime | None = None,
) -> AttestedDevice:
    """Check the chain and its KeyDescription (see the module docstring); raises
    :class:`~ebank_auth.errors.DeviceAttestationRejected` with the reason."""
    now = at or dt.datetime.now(dt.timezone.utc)
    certs = _load_chain(chain)
    # -- the chain
    for i in range(len(certs) - 1):
        child, issuer = certs[i], certs[i + 1]
        if not _is_ca(issuer):
            raise _refuse(AttestationReason.CHAIN, f"certificate {i + 1} is not a CA")
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, _CxInvalidSignature):
            raise _refuse(
                AttestationReason.CHAIN, f"certificate {i} is not signed by certificate {i + 1}"
            ) from None
        if not issuer.not_valid_before_utc <= now <= issuer.not_valid_after_utc:
            raise _refuse(AttestationReason.CHAIN, f"certificate {i + 1} is not valid now")
    root = certs[-1]
    try:
        root.verify_directly_issued_by(root)
    except (ValueError, TypeError, _CxInvalidSignature):
        raise _refuse(
            AttestationReason.UNTRUSTED_ROOT, "the last certificate is not a self-signed root"
        ) from None
    if not trust.is_pinned(root):
        raise _refuse(
            AttestationReason.UNTRUSTED_ROOT,
            "the chain does not end in a pinned attestation root (Google's, in production)",
        )
    # -- the extension: on the leaf, and only there
    try:
        for i, cert in enumerate(certs[1:], start=1):
            if _has_key_description(cert):
                raise _refuse(
                    AttestationReason.EXTENSION,
                    f"certificate {i} (not the leaf) claims a KeyDescription",
                )
        ext = certs[0].extensions.get_extension_for_oid(cx509.ObjectIdentifier(KEY_DESCRIPTION_OID))
    except cx509.ExtensionNotFound:
        raise _refuse(AttestationReason.EXTENSION, "the leaf has no KeyDescription") from None
    except ValueError:
        raise _refuse(
            AttestationReason.MALFORMED, "a certificate has malformed extensions"
        ) from None
    raw = ext.value.value if isinstance(ext.value, cx509.UnrecognizedExtension) else b""
    try:
        desc = KeyDescription.from_der(raw)
    except EncodingError as exc:
        raise _refuse(AttestationReason.EXTENSION, exc.message) from None
    # -- the device key
    key = certs[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise _refuse(AttestationReason.KEY_TYPE, "the device key must be EC P-256")
    # -- KeyDescription
    if not hmac.compare_digest(desc.challenge, bytes(challenge)):
        raise _refuse(
            AttestationReason.CHALLENGE, "the attestation challenge is not this enrolment's nonce"
        )
    if desc.attestation_version < policy.min_attestation_version:
        raise _refuse(
            AttestationReason.VERSION, f"attestation version {desc.attestation_version} is too old"
        )
    levels = {int(v) for v in policy.allowed_levels}
    if desc.attestation_security_level not in levels or desc.keymint_security_level not in levels:
        raise _refuse(
            AttestationReason.SECURITY_LEVEL,
            "the key is not in the phone's secure hardware (TEE/StrongBox as the bank requires)",
        )
    hw = desc.hardware_enforced
    if hw.origin != KeyOrigin.GENERATED:
        raise _refuse(AttestationReason.ORIGIN, "the key was not generated in secure hardware")
    rot = hw.root_of_trust
    if rot is None or rot.verified_boot_state != VerifiedBootState.VERIFIED:
        raise _refuse(AttestationReason.BOOT_STATE, "the phone did not boot a verified system")
    if policy.require_device_locked and not rot.device_locked:
        raise _refuse(AttestationReason.DEVICE_UNLOCKED, "the phone's bootloader is unlocked")
    app = desc.software_enforced.application_id or hw.application_id
    if app is None or policy.package_name not in {name for name, _ in app.packages}:
        raise _refuse(AttestationReason.PACKAGE, "the key was not made by the bank's app")
    if not any(
        hmac.compare_digest(d, want)
        for d in app.signature_digests
        for want in policy.signing_cert_digests
    ):
        raise _refuse(
            AttestationReason.SIGNING_CERTIFICATE,
            "the app is not signed with the bank's certificate",
        )
    return AttestedDevice(
        public_key_der=key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
        security_level=SecurityLevel(desc.attestation_security_level),
        keymint_level=SecurityLevel(desc.keymint_security_level),
        attestation_version=desc.attestation_version,
        keymint_version=desc.keymint_version,
        package_name=policy.package_name,
        verified_boot_key_sha256=hashlib.sha256(rot.verified_boot_key).digest(),
        root_spki_sha256=spki_sha256(root),
    )
