"""One way to open a token through any backend: our protocol, PIV, PKCS#11 or SKF.

Every backend implements :class:`ebank_auth.usbkey.token.Token`, so services, the signing-key
adapters and the conformance run take any of them.  What differs is how a token is reached and
what it can show:

========  ==========================================  ===========================================
backend   reached through                             confirm-and-sign on the token (WYSIWYS)
========  ==========================================  ===========================================
native    PC/SC or HID, the ebank-auth APDU protocol  yes, when the token has a display + button
piv       PC/SC, the PIV card edge (SP 800-73-4)      no: PIV has no transaction display
pkcs11    a vendor's PKCS#11 module (PyKCS11)         no: PKCS#11 has no display
skf       a vendor's SKF library (GM/T 0016)          no: SKF has no display
========  ==========================================  ===========================================

A backend without a display raises :class:`~ebank_auth.errors.NotSupportedByToken` from
``confirm_and_sign`` and reports ``can_confirm = False``: a policy must never count its
signatures as the customer's confirmation of a transaction (UK-6, UK-7).

Optional libraries (pyscard, PyKCS11, cffi for SKF) are imported only when their backend is
opened.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ebank_auth.errors import ConfigurationError

if TYPE_CHECKING:
    from ebank_auth.crypto.keys import SigningKey
    from ebank_auth.usbkey.attestation import TrustConfig
    from ebank_auth.usbkey.connect import TransportName
    from ebank_auth.usbkey.token import Token

__all__ = ["BACKEND_DISPLAY", "Backend", "BackendOptions", "open_backend", "signing_key_for"]


class Backend(str, Enum):
    """How a token is reached."""

    NATIVE = "native"
    PIV = "piv"
    PKCS11 = "pkcs11"
    SKF = "skf"


#: whether a backend can show a transaction on the token and wait for its button
BACKEND_DISPLAY: Final[dict[Backend, bool]] = {
    Backend.NATIVE: True,
    Backend.PIV: False,
    Backend.PKCS11: False,
    Backend.SKF: False,
}


@dataclass(frozen=True)
class BackendOptions:
    """Where the token is, per backend.

    ``reader`` (native over PC/SC, PIV): reader name, index or unique part; ``hid`` (native):
    a HID device path; ``pkcs11_module`` + ``pkcs11_token`` (slot id or token label);
    ``skf_library`` + ``skf_device`` + ``skf_application``."""

    reader: str | int | None = None
    hid: str | None = None
    pkcs11_module: Path | None = None
    pkcs11_token: str | None = None
    skf_library: Path | None = None
    skf_device: str | None = None
    skf_application: str | None = None


def open_backend(
    backend: Backend | str,
    options: BackendOptions = BackendOptions(),
    *,
    trust: TrustConfig | Callable[[], TrustConfig] | None = None,
) -> Token:
    """Open the token that ``options`` names through ``backend``.

    ``trust`` applies to the native backend (the manufacturer roots its device certificate must
    chain to); PIV, PKCS#11 and SKF tokens are trusted through their vendor's own means.
    Raises :class:`ConfigurationError` when the backend's location option is missing, and the
    backend's own typed errors (no reader, not a PKCS#11 module, not an SKF library …)."""
    try:
        chosen = Backend(backend)
    except ValueError:
        raise ConfigurationError(
            f"unknown token backend {backend!r}: use native, piv, pkcs11 or skf"
        ) from None
    if chosen is Backend.NATIVE:
        from ebank_auth.usbkey.connect import open_token

        transport: TransportName = "hid" if options.hid is not None else "pcsc"
        where = options.hid if options.hid is not None else options.reader
        return open_token(where, transport=transport, trust=trust)
    if chosen is Backend.PIV:
        from ebank_auth.usbkey.vendor.piv import open_piv

        return open_piv(options.reader)
    if chosen is Backend.PKCS11:
        if options.pkcs11_module is None:
            raise ConfigurationError(
                "the pkcs11 backend needs the vendor's module: --pkcs11-module PATH "
                "(e.g. /usr/lib/softhsm/libsofthsm2.so)"
            )
        from ebank_auth.usbkey.vendor.pkcs11 import open_pkcs11

        slot: int | str | None = options.pkcs11_token
        if isinstance(slot, str) and slot.isdigit():
            slot = int(slot)
        return open_pkcs11(os.fspath(options.pkcs11_module), slot)
    if options.skf_library is None:
        raise ConfigurationError(
            "the skf backend needs the vendor's SKF library: --skf-library PATH"
        )
    from ebank_auth.usbkey.vendor.skf import open_skf

    return open_skf(options.skf_library, options.skf_device, options.skf_application)


def signing_key_for(token: Token, container: str) -> SigningKey:
    """The key in ``container`` of an open ``token`` (any backend; PIN verified by the caller) as
    a :class:`~ebank_auth.crypto.keys.SigningKey`, so it signs CSRs, certificates and CMS.

    A key that signs what the host sends: on our tokens that is a LOGIN key (a transaction key
    signs only what the token displayed and refuses)."""
    kind = type(token).__name__
    if kind == "PivSession":
        from ebank_auth.usbkey.vendor.piv import PivSession, PivSigningKey

        assert isinstance(token, PivSession)
        return PivSigningKey(token, container)
    if kind == "Pkcs11Token":
        from ebank_auth.usbkey.vendor.pkcs11 import Pkcs11SigningKey, Pkcs11Token

        assert isinstance(token, Pkcs11Token)
        return Pkcs11SigningKey(token, container)
    if kind == "SkfToken":
        from ebank_auth.usbkey.vendor.skf import SkfSigningKey, SkfToken

        assert isinstance(token, SkfToken)
        return SkfSigningKey(token, container)
    from ebank_auth.usbkey.signing_key import TokenSigningKey

    return TokenSigningKey(token, container)
