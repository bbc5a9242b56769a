"""The software token's "manufacturer": a test root CA, device certificates, firmware allow-list.

A real manufacturer keeps its root key in an HSM, personalises each token with a
device key and certificate at the factory, and publishes a signed list of
released firmware.  For the software token all of this lives in
``<state dir>/manufacturer/``:

* ``root.pem`` — the test manufacturer root certificate (hosts trust this file);
* ``root-key.pem`` — its private key (test only: a real root never leaves the HSM);
* ``firmware-allowlist.json`` — the signed allow-list (hosts check firmware with it).

It is a *test* manufacturer: trusting ``root.pem`` means trusting every software
token made from that directory.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ebank_auth.crypto import sm2, x509
from ebank_auth.usbkey.attestation_ext import ATTESTATION_CA_VALUE, OID_ATTESTATION_CA
from ebank_auth.usbkey.manufacturer import (
    ALLOWLIST_FILENAME,
    MANUFACTURER_DIRNAME,
    ROOT_CERT_FILENAME,
    ROOT_KEY_FILENAME,
    FirmwareAllowList,
    FirmwareEntry,
)

__all__ = ["MANUFACTURER_NAME", "Manufacturer"]

MANUFACTURER_NAME: Final = "ebank-auth Test Token Manufacturer"

_memory_lock = threading.Lock()
_memory_manufacturer: Manufacturer | None = None


@dataclass
class Manufacturer:
    """A manufacturer root CA (``ca``) and its published firmware allow-list."""

    ca: x509.CertificateAuthority
    allowlist: FirmwareAllowList
    directory: Path | None = None

    @property
    def root(self) -> x509.Certificate:
        return self.ca.certificate

    @classmethod
    def create(cls, directory: Path | None = None) -> Manufacturer:
        key = sm2.generate_private_key()
        ca = x509.CertificateAuthority.create_root(
            f"CN={MANUFACTURER_NAME} Root,O=ebank-auth test,C=CN", key, valid_days=3650
        )
        maker = cls(ca, FirmwareAllowList(MANUFACTURER_NAME, ()), directory)
        maker._publish()
        return maker

    @classmethod
    def in_memory(cls) -> Manufacturer:
        """One process-wide test manufacturer for in-memory tokens."""
        global _memory_manufacturer
        with _memory_lock:
            if _memory_manufacturer is None:
                _memory_manufacturer = cls.create(None)
            return _memory_manufacturer

    @classmethod
    def load_or_create(cls, state_dir: Path) -> Manufacturer:
        directory = state_dir / MANUFACTURER_DIRNAME
        cert_path = directory / ROOT_CERT_FILENAME
        key_path = directory / ROOT_KEY_FILENAME
        if not cert_path.exists():
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            return cls.create(directory)
        cert = x509.load_certificate(cert_path.read_bytes())
        key = sm2.load_pem_private_key(key_path.read_bytes())
        allow_path = directory / ALLOWLIST_FILENAME
        allowlist = (
            FirmwareAllowList.load(allow_path)
            if allow_path.exists()
            else FirmwareAllowList(MANUFACTURER_NAME, ())
        )
        return cls(x509.CertificateAuthority(cert, key), allowlist, directory)

    def issue_device_certificate(self, serial: str, device_key: sm2.SM2PublicKey) -> bytes:
        """Personalise a token: certificate (DER) for its device key, CN = serial."""
        cert = self.ca.issue(
            f"CN={serial},OU=ebank-auth software token,O=ebank-auth test,C=CN",
            device_key,
            key_usage={x509.KeyUsage.DIGITAL_SIGNATURE},
            valid_days=3650,
        )
        return cert.to_der()

    def issue_attestation_ca(self, serial: str, attestation_key: sm2.SM2PublicKey) -> bytes:
        """Personalise a token's **attestation key**: a CA certificate (DER, pathLen 0,
        keyCertSign only) marked as a key-attestation CA, CN = serial.

        Separate from the device (secure-channel) key: this key signs only key attestation
        certificates (docs/usbkey-protocol.md, "Key attestation")."""
        cert = self.ca.issue(
            f"CN={serial},OU=ebank-auth key attestation,O=ebank-auth test,C=CN",
            attestation_key,
            key_usage={x509.KeyUsage.KEY_CERT_SIGN},
            valid_days=3650,
            is_ca=True,
            path_length=0,
            extra_extensions=[(OID_ATTESTATION_CA, ATTESTATION_CA_VALUE, False)],
        )
        return cert.to_der()

    def release_firmware(self, version: str, firmware_hash: bytes) -> None:
        """Add a firmware image to the signed allow-list (idempotent)."""
        entry = FirmwareEntry(version, firmware_hash.hex())
        if entry in self.allowlist.entries and self.allowlist.signature:
            return
        entries = (*(e for e in self.allowlist.entries if e != entry), entry)
        self.allowlist = FirmwareAllowList(self.allowlist.manufacturer, entries)
        self._publish()

    def _publish(self) -> None:
        key = self.ca.key
        assert isinstance(key, sm2.SM2PrivateKey)
        self.allowlist = self.allowlist.sign(key)
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.directory / ROOT_CERT_FILENAME).write_bytes(self.ca.certificate.to_pem())
        key_path = self.directory / ROOT_KEY_FILENAME
        key_path.write_bytes(key.to_pem())
        key_path.chmod(0o600)
        (self.directory / ALLOWLIST_FILENAME).write_text(self.allowlist.dumps(), encoding="utf-8")
