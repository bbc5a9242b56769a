"""USB Key (U盾 / V盾) tokens: what an app needs, in one import.

::

    from ebank_auth.usbkey import open_token, PinRef, TokenSigningKey

    with open_token() as token:                  # find, check genuine, secure channel
        token.verify_pin(pin)
        result = token.confirm_and_sign(tx)      # the customer confirms on the token
        result.verify(token.public_key().public_key())

The names load lazily, so ``import ebank_auth.usbkey.protocol`` (or the software token's
``ebank_auth.usbkey.emulator``) does not pull in the host session and its crypto.  See
``docs/usbkey.md`` for which import serves which job.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ebank_auth.usbkey.attestation import TrustConfig
    from ebank_auth.usbkey.connect import open_connection, open_token, resolve_trust
    from ebank_auth.usbkey.key_attestation import (
        AttestedKey,
        KeyAttestation,
        verify_key_attestation,
    )
    from ebank_auth.usbkey.manufacturer import FirmwareAllowList
    from ebank_auth.usbkey.protocol import (
        DEFAULT_CONTAINER,
        DEFAULT_LOGIN_CONTAINER,
        Algorithm,
        ContainerUsage,
        DeviceCapability,
        DeviceInfo,
        PinRef,
    )
    from ebank_auth.usbkey.session import TokenSession
    from ebank_auth.usbkey.signing_key import TokenSigningKey
    from ebank_auth.usbkey.token import (
        AttestationReport,
        ContainerInfo,
        PinStatus,
        PublicKeyInfo,
        SignResult,
        Token,
        TokenPublicKey,
    )
    from ebank_auth.usbkey.transport.base import Connection, TokenDevice
    from ebank_auth.usbkey.transport.discovery import Discovery, list_devices

__all__ = [
    "DEFAULT_CONTAINER",
    "DEFAULT_LOGIN_CONTAINER",
    "Algorithm",
    "AttestationReport",
    "AttestedKey",
    "Connection",
    "ContainerInfo",
    "ContainerUsage",
    "DeviceCapability",
    "DeviceInfo",
    "Discovery",
    "FirmwareAllowList",
    "KeyAttestation",
    "PinRef",
    "PinStatus",
    "PublicKeyInfo",
    "SignResult",
    "Token",
    "TokenDevice",
    "TokenPublicKey",
    "TokenSession",
    "TokenSigningKey",
    "TrustConfig",
    "list_devices",
    "open_connection",
    "open_token",
    "resolve_trust",
    "verify_key_attestation",
]

_WHERE: dict[str, str] = {
    "TrustConfig": "attestation",
    "open_connection": "connect",
    "open_token": "connect",
    "resolve_trust": "connect",
    "FirmwareAllowList": "manufacturer",
    "AttestedKey": "key_attestation",
    "KeyAttestation": "key_attestation",
    "verify_key_attestation": "key_attestation",
    "DEFAULT_CONTAINER": "protocol",
    "DEFAULT_LOGIN_CONTAINER": "protocol",
    "Algorithm": "protocol",
    "ContainerUsage": "protocol",
    "DeviceCapability": "protocol",
    "DeviceInfo": "protocol",
    "PinRef": "protocol",
    "TokenSession": "session",
    "TokenSigningKey": "signing_key",
    "AttestationReport": "token",
    "ContainerInfo": "token",
    "PinStatus": "token",
    "PublicKeyInfo": "token",
    "SignResult": "token",
    "Token": "token",
    "TokenPublicKey": "token",
    "Connection": "transport.base",
    "TokenDevice": "transport.base",
    "Discovery": "transport.discovery",
    "list_devices": "transport.discovery",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ebank_auth.usbkey' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ebank_auth.usbkey.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
