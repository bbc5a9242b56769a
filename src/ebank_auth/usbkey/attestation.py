"""Device authenticity (UK-9): manufacturer roots, device certificates, firmware allow-lists.

Before trusting a token the host checks three things:

1. the token's **device certificate** (SM2, X.509) chains to a configured
   manufacturer root, and its subject ``serialNumber``/CN equals the serial the
   token reports;
2. the token **proves possession** of that certified key by signing the
   secure-channel handshake, which covers the device information, including the
   firmware version and hash (done in :mod:`ebank_auth.usbkey.secure_channel`);
3. the reported **firmware version and hash** are on an allow-list signed by a
   manufacturer root (the archive of released firmware images), and not revoked on it; the
   list must be for this device: its ``issuer`` is the device certificate's issuer, its
   ``model`` the certificate subject's ``OU``, and its ``sequence`` is not older than
   :attr:`TrustConfig.min_allowlist_sequence`.  The token only *reports* its measured hash;
   the list is made by the manufacturer's release step, never by the token.

Any failure raises :class:`ebank_auth.errors.TokenNotGenuine`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ebank_auth.crypto import sm2, x509
from ebank_auth.errors import EbankAuthError, EncodingError, TokenNotGenuine
from ebank_auth.usbkey.manufacturer import FirmwareAllowList
from ebank_auth.usbkey.protocol import DeviceInfo

__all__ = [
    "TrustConfig",
    "subject_common_name",
    "verify_device_certificate",
]


def subject_common_name(subject: str) -> str | None:
    """The CN of an RFC 4514 subject string (``None`` when absent)."""
    return _subject_attribute(subject, "CN")


def _subject_attribute(subject: str, name: str) -> str | None:
    for part in subject.split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().upper() == name:
            return value.strip()
    return None


@dataclass(frozen=True)
class TrustConfig:
    """What the host trusts: manufacturer root certificates and the firmware allow-list.

    ``require_genuine=False`` (development only) skips the checks; the session
    then reports ``genuine=False`` instead of refusing the token.
    ``min_allowlist_sequence`` refuses allow-lists older than one already seen (a list from
    before a revocation).
    """

    roots: tuple[x509.Certificate, ...] = ()
    allowlist: FirmwareAllowList | None = None
    require_genuine: bool = True
    intermediates: tuple[x509.Certificate, ...] = field(default=())
    min_allowlist_sequence: int = 0

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
    allowlist = trust.allowlist
    allowlist.verify(trust.roots)
    if allowlist.issuer != cert.issuer or allowlist.model != _subject_attribute(cert.subject, "OU"):
        raise TokenNotGenuine(
            f"the firmware allow-list is for {allowlist.model or '?'} devices of "
            f"'{allowlist.issuer or '?'}', not for this token ({cert.subject}, issued by "
            f"{cert.issuer}): use the allow-list of this token's manufacturer and model"
        )
    if allowlist.sequence < trust.min_allowlist_sequence:
        raise TokenNotGenuine(
            f"the firmware allow-list (sequence {allowlist.sequence}) is older than one already "
            f"seen (sequence {trust.min_allowlist_sequence}): get the current list from the "
            "manufacturer"
        )
    short = info.firmware_hash.hex()[:16]
    if allowlist.is_revoked(info.firmware_hash):
        raise TokenNotGenuine(
            f"firmware {info.firmware_version} (SM3 {short}…) was revoked by the manufacturer: "
            "do not use this token; ask the bank for a new one"
        )
    if not allowlist.allows(info.firmware_version, info.firmware_hash):
        raise TokenNotGenuine(
            f"firmware {info.firmware_version} (SM3 {short}…) is not on "
            "the manufacturer's signed allow-list: the token's firmware was modified"
        )
    return key
