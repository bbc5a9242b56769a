"""Passkeys (WebAuthn) on the server: registration and sign-in on python-fido2's
``Fido2Server``, state and credentials in a :class:`~ebank_auth.store.Store`, and the
``passkey`` / ``passkey_uv`` policy factors.  See docs/webauthn.md.

Configuration and the registry import without ``fido2``; :class:`PasskeyServer` (and
the other names of :mod:`ebank_auth.webauthn.server`) need the ``webauthn`` extra
(``pip install 'ebank-auth[webauthn]'``) and load it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ebank_auth.errors import ConfigurationError
from ebank_auth.webauthn.config import (
    AttestationMode,
    AttestationPolicy,
    RejectReason,
    RelyingParty,
    ResidentKey,
    UserVerification,
    user_verification_for,
)
from ebank_auth.webauthn.registry import PasskeyCredential, PasskeyRegistry

if TYPE_CHECKING:
    from ebank_auth.webauthn.server import (
        ALGORITHMS,
        AuthenticationResult,
        Ceremony,
        CloneEvent,
        PasskeyServer,
    )

__all__ = [
    "ALGORITHMS",
    "AttestationMode",
    "AttestationPolicy",
    "AuthenticationResult",
    "Ceremony",
    "CloneEvent",
    "PasskeyCredential",
    "PasskeyRegistry",
    "PasskeyServer",
    "RejectReason",
    "RelyingParty",
    "ResidentKey",
    "UserVerification",
    "user_verification_for",
]

_SERVER_NAMES = frozenset(
    {"ALGORITHMS", "AuthenticationResult", "Ceremony", "CloneEvent", "PasskeyServer"}
)


def __getattr__(name: str) -> Any:
    # the server needs python-fido2: load it only when asked for
    if name in _SERVER_NAMES:
        try:
            from ebank_auth.webauthn import server
        except ImportError as exc:
            if exc.name is None or not exc.name.startswith("fido2"):
                raise
            raise ConfigurationError(
                "passkeys need python-fido2: install the webauthn extra "
                "(pip install 'ebank-auth[webauthn]')"
            ) from None
        return getattr(server, name)
    raise AttributeError(name)
