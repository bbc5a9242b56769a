"""Device authenticity (UK-9): manufacturer roots, device certificates, firmware allow-lists.

Before trusting a token the host checks three things:

1. the token's **device certificate** (SM2, X.509) chains to a configured
   manufacturer root, and its subject ``serialNumber``/CN equals the serial the
   token reports;
2. the token **proves possession** of that certified key by signing the
   secure-channel handshake, which covers the device information, including the
   firmware version and hash (done in :mod:`ebank_auth.usbkey.secure_channel`);
3. the reported **firmware version and hash** are on an allow-list signed by a
   manufacturer root (the archive of released firmware images).

Any failure raises :class:`ebank_auth.errors.TokenNotGenuine`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ebank_auth.crypto import sm2, x509
from ebank_auth.errors import (
    CryptoError,
    EbankAuthError,
    EncodingError,
    InvalidSignature,
    TokenNotGenuine,
)
from ebank_auth.usbkey.protocol import DeviceInfo

__all__ = [
    "ALLOWLIST_FORMAT",
    "FirmwareAllowList",
    "FirmwareEntry",
    "TrustConfig",
    "subject_common_name",
    "verify_device_certificate",
]

ALLOWLIST_FORMAT: Final = "ebank-auth-firmware-allowlist-v1"


def subject_common_name(subject: str) -> str | None:
    """The CN of an RFC 4514 subject string (``None`` when absent)."""
    for part in subject.split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().upper() == "CN":
            return value.strip()
    return None


@dataclass(frozen=True)
class FirmwareEntry:
    """One released firmware image: model, version and SM3 hash (hex)."""

    version: str
    sm3: str

    def to_json(self) -> dict[str, str]:
        return {"version": self.version, "sm3": self.sm3}


@dataclass(frozen=True)
class FirmwareAllowList:
    """The manufacturer's signed list of released firmware (UK-9 "archived and audited")."""

    manufacturer: str
    entries: tuple[FirmwareEntry, ...]
    signature: bytes = b""

    def signed_bytes(self) -> bytes:
        """Canonical JSON of everything but the signature (what the root key signs)."""
        doc = {
            "format": ALLOWLIST_FORMAT,
            "manufacturer": self.manufacturer,
            "entries": [e.to_json() for e in self.entries],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8"
        )

    def sign(self, key: sm2.SM2PrivateKey) -> FirmwareAllowList:
        return FirmwareAllowList(
            self.manufacturer, self.entries, key.sign(self.signed_bytes(), uid=sm2.DEFAULT_UID)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": ALLOWLIST_FORMAT,
            "manufacturer": self.manufacturer,
            "entries": [e.to_json() for e in self.entries],
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def loads(cls, text: str | bytes) -> FirmwareAllowList:
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            raise EncodingError("firmware allow-list is not valid JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != ALLOWLIST_FORMAT:
            raise EncodingError(f"firmware allow-list must have format {ALLOWLIST_FORMAT!r}")
        entries = doc.get("entries")
        manufacturer = doc.get("manufacturer")
        sig = doc.get("signature")
        if not isinstance(entries, list) or not isinstance(manufacturer, str):
            raise EncodingError("firmware allow-list: entries/manufacturer missing")
        out: list[FirmwareEntry] = []
        for e in entries:
            if (
                not isinstance(e, dict)
                or set(e) != {"version", "sm3"}
                or not all(isinstance(v, str) for v in e.values())
            ):
                raise EncodingError("firmware allow-list entry must be {version, sm3}")
            out.append(FirmwareEntry(e["version"], e["sm3"].lower()))
        try:
            signature = base64.b64decode(str(sig), validate=True)
        except ValueError:
            raise EncodingError("firmware allow-list signature is not base64") from None
        return cls(manufacturer, tuple(out), signature)

    @classmethod
    def load(cls, path: Path) -> FirmwareAllowList:
        try:
            return cls.loads(path.read_bytes())
        except OSError as exc:
            raise EncodingError(f"cannot read firmware allow-list {path}: {exc.strerror}") from None

    def verify(self, roots: Iterable[x509.Certificate]) -> None:
        """Raise :class:`TokenNotGenuine` unless one of ``roots`` signed this list."""
        message = self.signed_bytes()
        for root in roots:
            key = root.public_key
            if not isinstance(key, sm2.SM2PublicKey):
                continue
            try:
                key.verify(self.signature, message, uid=sm2.DEFAULT_UID)
                return
            except (InvalidSignature, CryptoError, EncodingError):
                continue
        raise TokenNotGenuine(
            "the firmware allow-list is not signed by a configured manufacturer root: "
            "get the genuine list from the manufacturer"
        )

    def allows(self, version: str, firmware_hash: bytes) -> bool:
        digest = firmware_hash.hex()
        return any(e.version == version and e.sm3 == digest for e in self.entries)


@dataclass(frozen=True)
class TrustConfig:
    """What the host trusts: manufacturer root certificates and the firmware allow-list.

    ``require_genuine=False`` (development only) skips the checks; the session
    then reports ``genuine=False`` instead of refusing the token.
    """

    roots: tuple[x509.Certificate, ...] = ()
    allowlist: FirmwareAllowList | None = None
    require_genuine: bool = True
    intermediates: tuple[x509.Certificate, ...] = field(default=())

    @classmethod
    def from_files(
        cls, roots: Sequence[Path], allowlist: Path | None = None, *, require_genuine: bool = True
    ) -> TrustConfig:
        certs: list[x509.Certificate] = []
        for path in roots:
            try:
                certs.extend(x509.load_certificates(path.read_bytes()))
            except OSError as exc:
                raise EncodingError(f"cannot read trust root {path}: {exc.strerror}") from None
        lst = FirmwareAllowList.load(allowlist) if allowlist is not None else None
        return cls(tuple(certs), lst, require_genuine)


def verify_device_certificate(
    info: DeviceInfo, device_cert_der: bytes, trust: TrustConfig
) -> sm2.SM2PublicKey:
    """Checks 1 and 3 of the module docstring; returns the certified device key.

    Check 2 (possession) happens when the caller opens the secure channel with the key."""
    try:
        cert = x509.load_certificate(device_cert_der)
    except EbankAuthError:
        raise TokenNotGenuine("the token's device certificate is malformed") from None
    if not trust.roots:
        raise TokenNotGenuine(
            "no manufacturer root is configured, so the token cannot be checked: pass "
            "--trust-root (or set EBANK_AUTH_TOKEN_ROOTS)"
        )
    result = x509.validate_chain(cert, trust.intermediates, trust.roots)
    if not result.valid:
        raise TokenNotGenuine(
            f"the token's device certificate does not chain to a trusted manufacturer "
            f"root ({result.message}): the token is not genuine"
        )
    if subject_common_name(cert.subject) != info.serial:
        raise TokenNotGenuine(
            "the device certificate belongs to another token (serial mismatch): not genuine"
        )
    key = cert.public_key
    if not isinstance(key, sm2.SM2PublicKey):
        raise TokenNotGenuine("the device certificate does not hold an SM2 key")
    if trust.allowlist is None:
        raise TokenNotGenuine(
            "no firmware allow-list is configured: pass --firmware-allowlist from the manufacturer"
        )
    trust.allowlist.verify(trust.roots)
    if not trust.allowlist.allows(info.firmware_version, info.firmware_hash):
        raise TokenNotGenuine(
            f"firmware {info.firmware_version} (SM3 {info.firmware_hash.hex()[:16]}…) is not on "
            "the manufacturer's signed allow-list: the token's firmware was modified"
        )
    return key
