"""What a token manufacturer publishes, in a form both the host and a token maker use.

* the **signed firmware allow-list** (:class:`FirmwareAllowList`): the archive of released
  firmware images (version and SM3 hash), signed by a manufacturer root key (UK-9);
* the **layout of a published manufacturer directory** (``root.pem``,
  ``firmware-allowlist.json``): how the software token's test manufacturer lays out its files
  and where :func:`ebank_auth.usbkey.connect.resolve_trust` looks for them.

Neutral ground: the host's attestation (:mod:`ebank_auth.usbkey.attestation`) and the software
token's factory (:mod:`ebank_auth.usbkey.emulator.factory`) both import this module and
neither imports the other.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ebank_auth.crypto import sm2, x509
from ebank_auth.errors import CryptoError, EncodingError, InvalidSignature, TokenNotGenuine

__all__ = [
    "ALLOWLIST_FILENAME",
    "ALLOWLIST_FORMAT",
    "MANUFACTURER_DIRNAME",
    "ROOT_CERT_FILENAME",
    "ROOT_KEY_FILENAME",
    "FirmwareAllowList",
    "FirmwareEntry",
]

ALLOWLIST_FORMAT: Final = "ebank-auth-firmware-allowlist-v1"

#: Sub-directory of a software token's state directory holding its test manufacturer.
MANUFACTURER_DIRNAME: Final = "manufacturer"
#: The manufacturer root certificate (PEM) hosts trust.
ROOT_CERT_FILENAME: Final = "root.pem"
#: The root's private key (test manufacturer only: a real root key never leaves its HSM).
ROOT_KEY_FILENAME: Final = "root-key.pem"
#: The signed firmware allow-list (JSON).
ALLOWLIST_FILENAME: Final = "firmware-allowlist.json"


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
