"""The per-key attestation extension: OIDs and DER shared by the token and the host.

A token proves *what kind of key* a public key is with an X.509 **key attestation
certificate** for that key (specified in ``docs/usbkey-protocol.md``, "Key attestation").
The facts travel in a private, non-critical extension whose value is the DER of
:class:`KeyStatement`; the token's attestation CA certificate carries a second private
extension (value ``NULL``) that marks it as a CA for key attestations only.

OIDs sit under the ebank-auth private arc ``2.25.311351347408730537860530948705421456411``
(an ITU-T X.667 UUID OID, UUID ``ea3c169c-235c-408e-9cca-e0f8c029741b``; no registration
needed, collision-free by construction):

* ``<arc>.1.1`` — key attestation statement (:data:`OID_KEY_STATEMENT`);
* ``<arc>.1.2`` — attestation CA marker (:data:`OID_ATTESTATION_CA`).

Neutral ground: the software token (:mod:`ebank_auth.usbkey.emulator.card`) encodes, the host
(:mod:`ebank_auth.usbkey.key_attestation`) decodes, and neither imports the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from asn1crypto import core

from ebank_auth.crypto import der as der_module
from ebank_auth.errors import EncodingError
from ebank_auth.usbkey.protocol import Algorithm, ContainerUsage, check_container_name

__all__ = [
    "ATTESTATION_CA_VALUE",
    "OID_ATTESTATION_CA",
    "OID_KEY_STATEMENT",
    "PRIVATE_ARC",
    "STATEMENT_VERSION",
    "Confirmation",
    "KeyOrigin",
    "KeyStatement",
]

PRIVATE_ARC: Final = "2.25.311351347408730537860530948705421456411"
OID_KEY_STATEMENT: Final = PRIVATE_ARC + ".1.1"
OID_ATTESTATION_CA: Final = PRIVATE_ARC + ".1.2"
#: DER value of the attestation CA marker extension (ASN.1 NULL).
ATTESTATION_CA_VALUE: Final = b"\x05\x00"
STATEMENT_VERSION: Final = 1
_MAX_STATEMENT: Final = 1024
_SERIAL_RE: Final = re.compile(r"[A-Za-z0-9-]{1,32}", re.ASCII)


class KeyOrigin(IntEnum):
    """Where the private key was created."""

    GENERATED_ON_TOKEN = 1
    IMPORTED = 2


class Confirmation(IntEnum):
    """What the token enforces before this key signs."""

    NONE = 0  # signs host-supplied digests (login keys)
    DISPLAY_AND_BUTTON = 1  # signs only what it displayed, after the button (UK-6, UK-7)


class _Usage(core.Enumerated):
    _map = {1: "transaction_confirm", 2: "login"}


class _Origin(core.Enumerated):
    _map = {1: "generated_on_token", 2: "imported"}


class _Confirmation(core.Enumerated):
    _map = {0: "none", 1: "display_and_button"}


_USAGE_NAMES: Final = {
    ContainerUsage.TRANSACTION: "transaction_confirm",
    ContainerUsage.LOGIN: "login",
}


class _Statement(core.Sequence):
    _fields = [
        ("version", core.Integer),
        ("token_serial", core.PrintableString),
        ("container", core.UTF8String),
        ("key_algorithm", core.Integer),
        ("key_usage", _Usage),
        ("key_origin", _Origin),
        ("exportable", core.Boolean),
        ("confirmation", _Confirmation),
        ("firmware_version", core.UTF8String),
        ("firmware_hash", core.OctetString),
    ]


@dataclass(frozen=True)
class KeyStatement:
    """What the token states about one of its keys (the extension's value)."""

    token_serial: str
    container: str
    algorithm: Algorithm
    usage: ContainerUsage
    origin: KeyOrigin
    exportable: bool
    confirmation: Confirmation
    firmware_version: str
    firmware_hash: bytes  # SM3 of the firmware that made the statement

    def encode(self) -> bytes:
        """DER of the statement (refuses values the format cannot carry)."""
        self._check()
        value = _Statement(
            {
                "version": STATEMENT_VERSION,
                "token_serial": self.token_serial,
                "container": self.container,
                "key_algorithm": int(self.algorithm),
                "key_usage": _USAGE_NAMES[self.usage],
                "key_origin": self.origin.name.lower(),
                "exportable": self.exportable,
                "confirmation": self.confirmation.name.lower(),
                "firmware_version": self.firmware_version,
                "firmware_hash": self.firmware_hash,
            }
        )
        out: bytes = value.dump(force=True)
        return out

    def _check(self) -> None:
        if not _SERIAL_RE.fullmatch(self.token_serial):
            raise EncodingError("key statement: the token serial is malformed")
        check_container_name(self.container)
        if len(self.firmware_hash) != 32:
            raise EncodingError("key statement: the firmware hash must be 32 bytes (SM3)")
        if not 1 <= len(self.firmware_version) <= 32 or not self.firmware_version.isprintable():
            raise EncodingError("key statement: the firmware version is malformed")

    @classmethod
    def decode(cls, data: bytes) -> KeyStatement:
        """Parse the DER value; anything malformed or unknown raises :class:`EncodingError`."""
        data = bytes(data)
        der_module.check_der(data, what="key attestation statement", max_size=_MAX_STATEMENT)
        with der_module.parsing("key attestation statement"):
            parsed = _Statement.load(data, strict=True)
            if parsed.dump(force=True) != data:
                raise EncodingError("key attestation statement is not DER")
            native = parsed.native
        if native["version"] != STATEMENT_VERSION:
            raise EncodingError(
                f"key attestation statement version {native['version']} is not supported: "
                "update ebank-auth"
            )
        try:
            statement = cls(
                token_serial=native["token_serial"],
                container=native["container"],
                algorithm=Algorithm(native["key_algorithm"]),
                usage={v: k for k, v in _USAGE_NAMES.items()}[native["key_usage"]],
                origin=KeyOrigin[str(native["key_origin"]).upper()],
                exportable=bool(native["exportable"]),
                confirmation=Confirmation[str(native["confirmation"]).upper()],
                firmware_version=native["firmware_version"],
                firmware_hash=bytes(native["firmware_hash"]),
            )
        except (ValueError, TypeError, KeyError):
            raise EncodingError(
                "key attestation statement holds an unknown algorithm, usage, origin or "
                "confirmation value"
            ) from None
        statement._check()
        return statement
