"""What a token manufacturer publishes, in a form both the host and a token maker use.

* the **signed firmware allow-list** (:class:`FirmwareAllowList`): the archive of released
  firmware images (version and SM3 hash), signed by a manufacturer root key (UK-9);
* the **layout of a published manufacturer directory** (``root.pem``,
  ``firmware-allowlist.json``): how the software token's test manufacturer publishes its files
  and where :func:`ebank_auth.usbkey.connect.resolve_trust` looks for them when the caller
  explicitly chooses to trust a software token (``software_token_state=``).

Neutral ground: the host's attestation (:mod:`ebank_auth.usbkey.attestation`) and the software
token's factory (:mod:`ebank_auth.usbkey.emulator.factory`) both import this module and
neither imports the other.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
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

ALLOWLIST_FORMAT: Final = "ebank-auth-firmware-allowlist-v2"
_OLD_FORMATS: Final = ("ebank-auth-firmware-allowlist-v1",)

#: Sub-directory of a software token's state directory holding the *public* files of its test
#: manufacturer (root certificate, signed allow-list); the root key is never there.
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
    """The manufacturer's signed list of released firmware (UK-9 "archived and audited").

    Produced by the manufacturer's *release* step (never by a token): ``issuer`` is the subject
    of the CA that issues this maker's device certificates and ``model`` the device model (the
    ``OU`` of a device certificate's subject); the list applies only to devices whose
    certificate names both.  ``sequence`` goes up with every release or revocation (a host may
    refuse lists older than one it has seen), ``revoked`` holds SM3 hashes (hex) of firmware
    the maker withdrew: a revoked image is refused even when an entry lists it.
    """

    manufacturer: str
    entries: tuple[FirmwareEntry, ...]
    signature: bytes = b""
    issuer: str = ""
    model: str = ""
    sequence: int = 0
    revoked: tuple[str, ...] = ()

    def _body(self) -> dict[str, Any]:
        return {
            "format": ALLOWLIST_FORMAT,
            "manufacturer": self.manufacturer,
            "issuer": self.issuer,
            "model": self.model,
            "sequence": self.sequence,
            "entries": [e.to_json() for e in self.entries],
            "revoked": list(self.revoked),
        }

    def signed_bytes(self) -> bytes:
        """Canonical JSON of everything but the signature (what the root key signs)."""
        return json.dumps(
            self._body(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")

    def sign(self, key: sm2.SM2PrivateKey) -> FirmwareAllowList:
        return replace(self, signature=key.sign(self.signed_bytes(), uid=sm2.DEFAULT_UID))

    def to_json(self) -> dict[str, Any]:
        return {**self._body(), "signature": base64.b64encode(self.signature).decode("ascii")}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def loads(cls, text: str | bytes) -> FirmwareAllowList:
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            raise EncodingError("firmware allow-list is not valid JSON") from None
        if isinstance(doc, dict) and doc.get("format") in _OLD_FORMATS:
            raise EncodingError(
                f"firmware allow-list format {doc.get('format')!r} is no longer accepted (it had "
                "no issuer, model, sequence or revocation): get the current list from the "
                "manufacturer (software token: 'ebank-auth emulator release')"
            )
        if not isinstance(doc, dict) or doc.get("format") != ALLOWLIST_FORMAT:
            raise EncodingError(f"firmware allow-list must have format {ALLOWLIST_FORMAT!r}")
        entries = doc.get("entries")
        revoked = doc.get("revoked")
        sequence = doc.get("sequence")
        texts = [doc.get(k) for k in ("manufacturer", "issuer", "model")]
        if (
            not isinstance(entries, list)
            or not isinstance(revoked, list)
            or not all(isinstance(t, str) for t in texts)
            or isinstance(sequence, bool)
            or not isinstance(sequence, int)
            or sequence < 0
        ):
            raise EncodingError(
                "firmware allow-list: manufacturer/issuer/model/sequence/entries/revoked missing"
            )
        out: list[FirmwareEntry] = []
        for e in entries:
            if (
                not isinstance(e, dict)
                or set(e) != {"version", "sm3"}
                or not all(isinstance(v, str) for v in e.values())
            ):
                raise EncodingError("firmware allow-list entry must be {version, sm3}")
            out.append(FirmwareEntry(e["version"], e["sm3"].lower()))
        if not all(isinstance(r, str) for r in revoked):
            raise EncodingError("firmware allow-list: revoked must be a list of SM3 hex hashes")
        try:
            signature = base64.b64decode(str(doc.get("signature")), validate=True)
        except ValueError:
            raise EncodingError("firmware allow-list signature is not base64") from None
        manufacturer, issuer, model = (str(t) for t in texts)
        return cls(
            manufacturer,
            tuple(out),
            signature,
            issuer=issuer,
            model=model,
            sequence=sequence,
            revoked=tuple(r.lower() for r in revoked),
        )

    @classmethod
    def load(cls, path: Path) -> FirmwareAllowList:
        try:
            return cls.loads(path.read_bytes())
        except OSError as exc:
            raise EncodingError(f"cannot read firmware allow-list {path}: {exc.strerror}") from None

    def verify(self, roots: Iterable[x509.Certificate]) -> x509.Certificate:
        """The root among ``roots`` that signed this list; :class:`TokenNotGenuine` if none."""
        message = self.signed_bytes()
        for root in roots:
            key = root.public_key
            if not isinstance(key, sm2.SM2PublicKey):
                continue
            try:
                key.verify(self.signature, message, uid=sm2.DEFAULT_UID)
                return root
            except (InvalidSignature, CryptoError, EncodingError):
                continue
        raise TokenNotGenuine(
            "the firmware allow-list is not signed by a configured manufacturer root: "
            "get the genuine list from the manufacturer"
        )

    def is_revoked(self, firmware_hash: bytes) -> bool:
        return firmware_hash.hex() in self.revoked

    def allows(self, version: str, firmware_hash: bytes) -> bool:
        """Released and not revoked (the signature is checked by :meth:`verify`)."""
        digest = firmware_hash.hex()
        if digest in self.revoked:
            return False
        return any(e.version == version and e.sm3 == digest for e in self.entries)
