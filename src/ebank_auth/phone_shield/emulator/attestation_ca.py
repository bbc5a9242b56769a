"""The software phone's stand-in for Android's attestation keys: a test root and batch key.

Real phones carry an attestation key provisioned by Google; here a root and an intermediate
are minted locally and sign the device key's certificate with a KeyDescription in the same
structure (:mod:`ebank_auth.phone_shield.keydescription`).  A bank trusts this root only in
tests and demos (``AttestationTrust.from_roots``), never in production.  The claims it writes
are parameters, so tests can mint a chain with any wrong claim.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ebank_auth.crypto.der import pem_blocks
from ebank_auth.errors import ConfigurationError, EncodingError
from ebank_auth.phone_shield.keydescription import (
    KEY_DESCRIPTION_OID,
    ApplicationId,
    AuthorizationList,
    KeyDescription,
    KeyOrigin,
    RootOfTrust,
    SecurityLevel,
    VerifiedBootState,
)

__all__ = [
    "DEFAULT_PACKAGE",
    "DeviceClaims",
    "SoftwareAttestationAuthority",
    "default_signing_digest",
]

DEFAULT_PACKAGE = "cn.example.bank.mobile"


def default_signing_digest() -> bytes:
    """SHA-256 of the (fictional) signing certificate of the demo bank app."""
    return hashlib.sha256(b"ebank-auth demo bank app signing certificate").digest()


@dataclass(frozen=True)
class DeviceClaims:
    """What the attestation says; defaults describe a healthy TEE phone running the bank app."""

    package_name: str = DEFAULT_PACKAGE
    signing_digest: bytes = b""  # empty: default_signing_digest()
    security_level: int = SecurityLevel.TRUSTED_ENVIRONMENT
    keymint_level: int | None = None  # None: same as security_level
    attestation_version: int = 200
    origin: int = KeyOrigin.GENERATED
    boot_state: int = VerifiedBootState.VERIFIED
    device_locked: bool = True


def _name(cn: str) -> cx509.Name:
    return cx509.Name(
        [
            cx509.NameAttribute(NameOID.COMMON_NAME, cn),
            cx509.NameAttribute(NameOID.ORGANIZATION_NAME, "ebank-auth software phone (TEST)"),
        ]
    )


class SoftwareAttestationAuthority:
    """A test attestation root (P-256) and a batch intermediate that signs device keys."""

    def __init__(
        self,
        root_key: ec.EllipticCurvePrivateKey,
        root: cx509.Certificate,
        batch_key: ec.EllipticCurvePrivateKey,
        batch: cx509.Certificate,
    ) -> None:
        self.root_key, self.root = root_key, root
        self.batch_key, self.batch = batch_key, batch

    @classmethod
    def create(cls) -> SoftwareAttestationAuthority:
        now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = (
            cx509.CertificateBuilder()
            .subject_name(_name("TEST Key Attestation Root"))
            .issuer_name(_name("TEST Key Attestation Root"))
            .public_key(root_key.public_key())
            .serial_number(cx509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(cx509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                cx509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(root_key, hashes.SHA256())
        )
        batch_key = ec.generate_private_key(ec.SECP256R1())
        batch = (
            cx509.CertificateBuilder()
            .subject_name(_name("TEST Key Attestation Batch"))
            .issuer_name(root.subject)
            .public_key(batch_key.public_key())
            .serial_number(cx509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(cx509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                cx509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(root_key, hashes.SHA256())
        )
        return cls(root_key, root, batch_key, batch)

    # -- persistence (the software phone keeps its "factory" keys beside its state)
    @classmethod
    def load_or_create(cls, directory: Path) -> SoftwareAttestationAuthority:
        path = directory / "attestation-ca.pem"
        if path.exists():
            return cls.from_pem(path.read_bytes())
        ca = cls.create()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(ca.to_pem())
        tmp.chmod(0o600)
        tmp.replace(path)
        return ca

    def to_pem(self) -> bytes:
        def key(k: ec.EllipticCurvePrivateKey) -> bytes:
            return k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )

        return (
            key(self.root_key)
            + self.root.public_bytes(serialization.Encoding.PEM)
            + key(self.batch_key)
            + self.batch.public_bytes(serialization.Encoding.PEM)
        )

    @classmethod
    def from_pem(cls, data: bytes) -> SoftwareAttestationAuthority:
        try:
            keys = pem_blocks(data, ("PRIVATE KEY",))
            certs = pem_blocks(data, ("CERTIFICATE",))
            root_key = serialization.load_der_private_key(keys[0], None)
            batch_key = serialization.load_der_private_key(keys[1], None)
            root = cx509.load_der_x509_certificate(certs[0])
            batch = cx509.load_der_x509_certificate(certs[1])
        except (ValueError, IndexError, EncodingError):
            raise ConfigurationError(
                "the software phone's attestation-ca.pem is damaged: delete it"
            ) from None
        if not isinstance(root_key, ec.EllipticCurvePrivateKey) or not isinstance(
            batch_key, ec.EllipticCurvePrivateKey
        ):
            raise ConfigurationError("the software phone's attestation keys must be EC keys")
        return cls(root_key, root, batch_key, batch)

    def root_der(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.DER)

    def attest(
        self,
        device_key: ec.EllipticCurvePublicKey,
        challenge: bytes,
        claims: DeviceClaims | None = None,
    ) -> list[bytes]:
        """The attestation chain (DER, leaf first) for ``device_key`` with ``challenge``."""
        c = claims or DeviceClaims()
        desc = KeyDescription(
            attestation_version=c.attestation_version,
            attestation_security_level=c.security_level,
            keymint_version=c.attestation_version,
            keymint_security_level=c.security_level if c.keymint_level is None else c.keymint_level,
            challenge=bytes(challenge),
            software_enforced=AuthorizationList(
                application_id=ApplicationId(
                    ((c.package_name, 1),), (c.signing_digest or default_signing_digest(),)
                )
            ),
            hardware_enforced=AuthorizationList(
                purposes=(2,),  # SIGN
                algorithm=3,  # EC
                key_size=256,
                ec_curve=1,  # P-256
                origin=c.origin,
                root_of_trust=RootOfTrust(
                    hashlib.sha256(b"software phone boot key").digest(),
                    c.device_locked,
                    c.boot_state,
                    hashlib.sha256(b"software phone boot image").digest(),
                ),
            ),
        )
        leaf = (
            cx509.CertificateBuilder()
            .subject_name(
                cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "Android Keystore Key")])
            )
            .issuer_name(self.batch.subject)
            .public_key(device_key)
            .serial_number(1)
            .not_valid_before(dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc))
            .not_valid_after(dt.datetime(2048, 1, 1, tzinfo=dt.timezone.utc))
            .add_extension(
                cx509.UnrecognizedExtension(
                    cx509.ObjectIdentifier(KEY_DESCRIPTION_OID), desc.to_der()
                ),
                critical=False,
            )
            .sign(self.batch_key, hashes.SHA256())
        )
        return [
            leaf.public_bytes(serialization.Encoding.DER),
            self.batch.public_bytes(serialization.Encoding.DER),
            self.root_der(),
        ]
