"""The software token's "manufacturer": a test root CA, device certificates, firmware releases.

A real manufacturer keeps its root key in an HSM, personalises each token with a device key and
certificate at the factory, and *releases* firmware: once per shipped version it signs an
allow-list of the released images (SM3 hashes).  A token never signs that list; it only reports
the hash of the firmware it runs, and the host compares (:mod:`ebank_auth.usbkey.attestation`).

The software token's test manufacturer does the same with two directories:

* the **factory directory** (default: ``<state dir>.manufacturer``, a sibling of the token's
  state directory, never inside it; :func:`factory_dir_for`) holds ``root.pem``, the root
  *key* ``root-key.pem`` (0600; test only) and ``firmware-allowlist.json``;
* the token's state directory holds a published copy of the public files only, in
  ``<state dir>/manufacturer/`` (``root.pem``, ``firmware-allowlist.json``), which
  ``resolve_trust(software_token_state=...)`` and ``ebank-auth token --emulator`` read.

**Release.**  :func:`release` measures the installed software-token code
(:func:`firmware_hash`) and adds it to the signed allow-list, bumping its ``sequence``.  It runs
once when a factory directory is created (the firmware "shipped" with it) and afterwards only when
someone holding the factory directory asks for it (``ebank-auth emulator release``, e.g. after
upgrading ebank-auth).  Starting a token never releases anything, so a token whose code was
changed reports a hash that is on no list.  :meth:`Manufacturer.revoke_firmware` withdraws an
image.

It is a *test* manufacturer: trusting its ``root.pem`` means trusting every software token made
from that factory directory, and anyone who can read ``root-key.pem`` can release firmware.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from ebank_auth.crypto import sm2, sm3, x509
from ebank_auth.errors import ConfigurationError, EbankAuthError, EncodingError
from ebank_auth.usbkey.attestation_ext import ATTESTATION_CA_VALUE, OID_ATTESTATION_CA
from ebank_auth.usbkey.manufacturer import (
    ALLOWLIST_FILENAME,
    MANUFACTURER_DIRNAME,
    ROOT_CERT_FILENAME,
    ROOT_KEY_FILENAME,
    FirmwareAllowList,
    FirmwareEntry,
)

__all__ = [
    "DEVICE_MODEL",
    "FIRMWARE_VERSION",
    "MANUFACTURER_NAME",
    "Manufacturer",
    "factory_dir_for",
    "firmware_hash",
    "release",
]

MANUFACTURER_NAME: Final = "ebank-auth Test Token Manufacturer"
#: The device model, the ``OU`` of every device certificate and the ``model`` of the allow-list.
DEVICE_MODEL: Final = "ebank-auth software token"
FIRMWARE_VERSION: Final = "1.0.0"

_FIRMWARE_MODULES: Final = (
    "apdu_chain.py",
    "applets.py",
    "card.py",
    "cbor.py",
    "ctap2_applet.py",
    "ctap2_pin.py",
    "ctap2_state.py",
    "display.py",
    "factory.py",
    "piv_applet.py",
    "piv_state.py",
    "state.py",
    "state_files.py",
    "../protocol.py",
    "../attestation_ext.py",
    "../display_layout.py",
    "../piv_protocol.py",
    "../secure_channel.py",
    "../tlv.py",
)

_memory_lock = threading.Lock()
_memory_manufacturer: Manufacturer | None = None


def firmware_hash() -> bytes:
    """SM3 over the software token's own source files: its "firmware image" as measured now."""
    here = Path(__file__).resolve().parent
    h = sm3.SM3()
    for name in _FIRMWARE_MODULES:
        data = (here / name).read_bytes()
        h.update(len(data).to_bytes(4, "big") + data)
    out: bytes = h.digest()
    return out


def factory_dir_for(state_dir: Path) -> Path:
    """The default factory directory of the token in ``state_dir``: a sibling, never inside."""
    state_dir = Path(state_dir)
    return state_dir.with_name(state_dir.name + ".manufacturer")


@dataclass
class Manufacturer:
    """A manufacturer root (certificate, and key when this is the factory) and its allow-list."""

    root: x509.Certificate
    allowlist: FirmwareAllowList
    key: sm2.SM2PrivateKey | None = None
    directory: Path | None = None

    @property
    def ca(self) -> x509.CertificateAuthority:
        if self.key is None:
            raise ConfigurationError(
                "this copy of the test manufacturer has no root key (only its public files): "
                "use its factory directory"
            )
        return x509.CertificateAuthority(self.root, self.key)

    @classmethod
    def create(cls, directory: Path | None = None, *, release_current: bool = True) -> Manufacturer:
        """A new test manufacturer; with ``release_current`` it releases the installed firmware
        (the version shipped at set-up)."""
        key = sm2.generate_private_key()
        ca = x509.CertificateAuthority.create_root(
            f"CN={MANUFACTURER_NAME} Root,O=ebank-auth test,C=CN", key, valid_days=3650
        )
        empty = FirmwareAllowList(
            MANUFACTURER_NAME, (), issuer=ca.certificate.subject, model=DEVICE_MODEL
        )
        maker = cls(ca.certificate, empty, key, directory)
        if release_current:
            release(maker)
        else:
            maker._resign(empty)
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
    def load(cls, directory: Path) -> Manufacturer:
        """Read a factory directory (with key) or a published copy (without)."""
        try:
            root = x509.load_certificate((directory / ROOT_CERT_FILENAME).read_bytes())
            key_path = directory / ROOT_KEY_FILENAME
            key = sm2.load_pem_private_key(key_path.read_bytes()) if key_path.exists() else None
        except OSError as exc:
            raise EncodingError(
                f"cannot read test manufacturer {directory}: {exc.strerror}"
            ) from None
        except EbankAuthError:
            raise EncodingError(f"test manufacturer files in {directory} are corrupt") from None
        allowlist = FirmwareAllowList.load(directory / ALLOWLIST_FILENAME)
        return cls(root, allowlist, key, directory)

    @classmethod
    def load_or_create(cls, factory_dir: Path) -> Manufacturer:
        # several token processes may start at once: one creates, the others load what it made
        factory_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(factory_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not (factory_dir / ROOT_CERT_FILENAME).exists():
                return cls.create(factory_dir)
            return cls.load(factory_dir)
        finally:
            os.close(fd)

    def issue_device_certificate(self, serial: str, device_key: sm2.SM2PublicKey) -> bytes:
        """Personalise a token: certificate (DER) for its device key, CN = serial, OU = model."""
        cert = self.ca.issue(
            f"CN={serial},OU={DEVICE_MODEL},O=ebank-auth test,C=CN",
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

    def release_firmware(self, version: str, image_hash: bytes) -> None:
        """The release step: add an image to the signed allow-list (idempotent).

        Refuses a revoked image: a withdrawn firmware is never released again."""
        entry = FirmwareEntry(version, image_hash.hex())
        if entry in self.allowlist.entries:
            return
        if self.allowlist.is_revoked(image_hash):
            raise ConfigurationError(
                f"firmware SM3 {image_hash.hex()[:16]}… was revoked: it cannot be released again"
            )
        self._resign(replace(self.allowlist, entries=(*self.allowlist.entries, entry)))

    def revoke_firmware(self, image_hash: bytes) -> None:
        """Withdraw an image: it leaves the entries and joins ``revoked``."""
        digest = image_hash.hex()
        if digest in self.allowlist.revoked:
            return
        self._resign(
            replace(
                self.allowlist,
                entries=tuple(e for e in self.allowlist.entries if e.sm3 != digest),
                revoked=(*self.allowlist.revoked, digest),
            )
        )

    def publish_to(self, state_dir: Path) -> None:
        """Copy the public files (never the key) into ``<state_dir>/manufacturer/``."""
        _write_public(state_dir / MANUFACTURER_DIRNAME, self.root, self.allowlist)

    def _resign(self, allowlist: FirmwareAllowList) -> None:
        key = self.ca.key
        assert isinstance(key, sm2.SM2PrivateKey)
        self.allowlist = replace(allowlist, sequence=self.allowlist.sequence + 1).sign(key)
        self._publish()

    def _publish(self) -> None:
        if self.directory is None:
            return
        if self.key is not None:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            key_path = self.directory / ROOT_KEY_FILENAME
            if not key_path.exists():
                key_path.touch(mode=0o600)
                key_path.write_bytes(self.key.to_pem())
        _write_public(self.directory, self.root, self.allowlist)


def _write_public(directory: Path, root: x509.Certificate, allowlist: FirmwareAllowList) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    _replace_atomically(directory / ROOT_CERT_FILENAME, root.to_pem())
    _replace_atomically(directory / ALLOWLIST_FILENAME, allowlist.dumps().encode("utf-8"))


def _replace_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a private temporary file beside ``path`` and rename it over ``path``:
    processes publishing at the same time never see (or remove) each other's half-written file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def release(
    maker: Manufacturer, version: str = FIRMWARE_VERSION, image_hash: bytes | None = None
) -> FirmwareEntry:
    """The manufacturer's release step: sign the installed software-token code into the list.

    ``image_hash`` defaults to :func:`firmware_hash` (the code installed now).  Needs the
    factory directory (the root key).  Returns the released entry."""
    digest = firmware_hash() if image_hash is None else image_hash
    maker.release_firmware(version, digest)
    return FirmwareEntry(version, digest.hex())
