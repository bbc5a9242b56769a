"""The ebank-auth token application: constants and data formats shared by host and token.

Everything here is specified in ``docs/usbkey-protocol.md``; the host
(:mod:`ebank_auth.usbkey.session`) and the software token
(:mod:`ebank_auth.usbkey.emulator.card`) both import it so they cannot drift apart.
Semantics follow GM/T 0016 (SKF): one application, named containers holding one
key pair and its certificate, a user PIN and an admin (SO) PIN each with its own
retry counter.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Final

from ebank_auth.errors import EncodingError, PinPolicyError
from ebank_auth.usbkey import tlv

__all__ = [
    "AID",
    "CLA_ISO",
    "CLA_PROPRIETARY",
    "CLA_SECURE",
    "DEFAULT_ADMIN_PIN",
    "DEFAULT_CONTAINER",
    "DEFAULT_LOGIN_CONTAINER",
    "DEFAULT_RETRY_LIMIT",
    "DEFAULT_USER_PIN",
    "INS_PLAIN_ALLOWED",
    "MAX_COMMAND_DATA",
    "MAX_PIN_LENGTH",
    "MAX_RETRY_LIMIT",
    "MAX_TRANSACTION_BYTES",
    "MIN_PIN_LENGTH",
    "PROTOCOL_VERSION",
    "Algorithm",
    "AppStatus",
    "ConfirmStep",
    "ContainerUsage",
    "DeviceCapability",
    "DeviceInfo",
    "GenerateMode",
    "Ins",
    "PinRef",
    "Tag",
    "TxFormat",
    "check_container_name",
    "check_pin_complexity",
    "check_retry_limit",
    "pin_bytes",
]

#: Application identifier.  ``F0`` starts a proprietary (unregistered) AID;
#: the rest is ASCII "EBANKAUTH" followed by the application version 01.
AID: Final = bytes.fromhex("F0") + b"EBANKAUTH" + b"\x01"
PROTOCOL_VERSION: Final = 1

CLA_ISO: Final = 0x00  # SELECT, GET RESPONSE
CLA_PROPRIETARY: Final = 0x80  # plain commands of this application
CLA_SECURE: Final = 0x84  # the same commands wrapped by the secure channel
CLA_CHAINING_BIT: Final = 0x10  # ISO 7816-4 command chaining

MAX_COMMAND_DATA: Final = 4096  # largest command body after chaining (bytes)
MAX_TRANSACTION_BYTES: Final = 2048  # largest canonical transaction the token accepts
MAX_RETRY_LIMIT: Final = 10  # UK-3: the retry limit may never exceed 10
DEFAULT_RETRY_LIMIT: Final = 6
MIN_PIN_LENGTH: Final = 6
MAX_PIN_LENGTH: Final = 16
DEFAULT_USER_PIN: Final = "314159"  # factory PIN of the *software* token only
DEFAULT_ADMIN_PIN: Final = "27182818"  # factory admin PIN of the *software* token only
DEFAULT_CONTAINER: Final = "sign"  # transaction-signing key (confirm-and-sign only)
DEFAULT_LOGIN_CONTAINER: Final = "login"  # login key (digest signing allowed)


class Ins(IntEnum):
    """Instruction bytes.  ``SELECT``/``GET_RESPONSE`` are ISO (CLA 00), the rest CLA 80/84."""

    SELECT = 0xA4
    GET_RESPONSE = 0xC0
    GET_DEVICE_INFO = 0x01
    GET_DEVICE_CERT = 0x02
    OPEN_SECURE_CHANNEL = 0x10
    ESTABLISH_KEYS = 0x11
    VERIFY_PIN = 0x20
    CHANGE_PIN = 0x24
    PIN_INFO = 0x26
    SET_RETRY_LIMIT = 0x28
    UNBLOCK_PIN = 0x2C
    LOGOUT = 0x2E
    GENERATE_KEY = 0x40
    GET_PUBLIC_KEY = 0x42
    IMPORT_CERT = 0x44
    GET_CERT = 0x46
    LIST_CONTAINERS = 0x48
    ATTEST_KEY = 0x4A
    GET_RANDOM = 0x84
    SIGN_DIGEST = 0x50
    CONFIRM_AND_SIGN = 0x52


#: Commands the token answers without a secure channel (everything else needs CLA 84).
INS_PLAIN_ALLOWED: Final = frozenset(
    {
        Ins.SELECT,
        Ins.GET_RESPONSE,
        Ins.GET_DEVICE_INFO,
        Ins.GET_DEVICE_CERT,
        Ins.OPEN_SECURE_CHANNEL,
        Ins.ESTABLISH_KEYS,
    }
)


class AppStatus(IntEnum):
    """The proprietary status words of this application (``69Fx``).

    Every other status word the token returns is an ISO 7816-4 one from the single table
    :class:`ebank_auth.usbkey.apdu.StatusWord` (e.g. ``6A86`` ``INCORRECT_P1P2``).
    """

    CONFIRMATION_REJECTED = 0x69F1  # the customer pressed reject on the token
    CONFIRMATION_TIMEOUT = 0x69F2  # nobody pressed the button in time
    PIN_POLICY = 0x69F3  # the new PIN breaks the complexity rules (UK-4)


class Tag(IntEnum):
    """One-byte TLV tags of the command and response bodies (see :mod:`.tlv`)."""

    # device information
    SERIAL = 0x81
    FIRMWARE_VERSION = 0x82
    FIRMWARE_HASH = 0x83
    CAPABILITIES = 0x84
    LABEL = 0x85
    MANUFACTURER = 0x86
    PROTOCOL_VERSION = 0x87
    # secure channel
    HOST_NONCE = 0x90
    TOKEN_NONCE = 0x91
    EPHEMERAL_KEY = 0x92
    SIGNATURE = 0x93
    KEY_CIPHERTEXT = 0x94
    KEY_CONFIRMATION = 0x95
    # PINs
    PIN = 0xC1
    NEW_PIN = 0xC2
    ADMIN_PIN = 0xC3
    MAX_RETRIES = 0xC4
    REMAINING = 0xC5
    # keys, certificates, signing
    CONTAINER = 0xD1
    ALGORITHM = 0xD2
    USAGE = 0xD3
    PUBLIC_KEY = 0xD4
    CERTIFICATE = 0xD5
    DIGEST = 0xD6
    FORMAT = 0xD7
    TRANSACTION = 0xD8
    DISPLAY_TEXT = 0xD9
    LENGTH = 0xDA
    CONTAINER_ENTRY = 0xDB
    ATTESTATION_CA = 0xDC  # the token's key-attestation CA certificate (DER)


class PinRef(IntEnum):
    """PIN references, sent in P2 of VERIFY / CHANGE / PIN INFO."""

    USER = 0x01
    ADMIN = 0x02


class Algorithm(IntEnum):
    """Key algorithms (UK-2)."""

    SM2 = 0x01
    RSA2048 = 0x02
    #: NIST P-256 (ECDSA): keys of PIV and PKCS#11 tokens; the token application refuses it
    ECC_P256 = 0x03


class ContainerUsage(IntEnum):
    """What a container's key may do.

    ``TRANSACTION`` keys sign only through confirm-and-sign (display + button), so
    a host can never get a transaction signature without the customer seeing it.
    ``LOGIN`` keys sign host-supplied digests (login challenges) and never transactions.
    """

    TRANSACTION = 0x01
    LOGIN = 0x02


class GenerateMode(IntEnum):
    """P1 of GENERATE_KEY.

    ``CREATE`` refuses a container that already holds a key (``6A89``); ``REPLACE`` replaces
    the key (dropping its certificate) and needs the admin (SO) PIN verified in the session.
    """

    CREATE = 0x00
    REPLACE = 0x01


class TxFormat(IntEnum):
    """Formats the token recognises for confirm-and-sign (UK-7); others are refused."""

    EBANK_TX_V1 = 0x01  # ebank_auth.transaction canonical encoding, version 1


class ConfirmStep(IntEnum):
    """P1 of CONFIRM_AND_SIGN."""

    DISPLAY = 0x00  # send the transaction; the token decodes and shows it
    SIGN = 0x01  # send the same bytes again; the token waits for the button and signs
    CANCEL = 0x02  # forget the pending transaction


class DeviceCapability(IntFlag):
    """Bit field in the device information."""

    SM2 = 0x0001
    RSA2048 = 0x0002
    DISPLAY = 0x0004
    BUTTON = 0x0008
    SECURE_CHANNEL = 0x0010
    CONFIRM_AND_SIGN = 0x0020
    ATTESTATION = 0x0040


_SEQUENCES: Final = "0123456789012345678901234567890"


def check_retry_limit(limit: int) -> int:
    """Refuse a retry limit outside 1..10 (UK-3).  Returns the limit."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RETRY_LIMIT:
        raise PinPolicyError(
            f"PIN retry limit {limit!r} is not allowed: choose 1 to {MAX_RETRY_LIMIT} (UK-3)"
        )
    return limit


def check_pin_complexity(pin: str) -> None:
    """PIN complexity rules for a *new* PIN (UK-4); raises :class:`PinPolicyError`.

    6-16 printable ASCII characters; not one repeated character; not a run of
    ascending or descending digits (``123456``, ``987654``); at least three
    different characters.
    """
    if not isinstance(pin, str):
        raise PinPolicyError("the PIN must be text")
    if not MIN_PIN_LENGTH <= len(pin) <= MAX_PIN_LENGTH:
        raise PinPolicyError(
            f"the new PIN must be {MIN_PIN_LENGTH} to {MAX_PIN_LENGTH} characters long"
        )
    if any(c not in string.printable or c in "\t\n\r\x0b\x0c" for c in pin):
        raise PinPolicyError("the new PIN may only hold printable ASCII characters")
    if len(set(pin)) < 3:
        raise PinPolicyError("the new PIN needs at least three different characters")
    if pin.isdigit() and (pin in _SEQUENCES or pin in _SEQUENCES[::-1]):
        raise PinPolicyError("the new PIN must not be a run of consecutive digits")


def pin_bytes(pin: str) -> bytes:
    """The PIN as sent inside the secure channel (ASCII); refuses out-of-range lengths."""
    if not isinstance(pin, str) or not 1 <= len(pin) <= MAX_PIN_LENGTH:
        raise PinPolicyError(f"a PIN is 1 to {MAX_PIN_LENGTH} characters")
    try:
        return pin.encode("ascii")
    except UnicodeEncodeError:
        raise PinPolicyError("a PIN holds ASCII characters only") from None


_CONTAINER_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,32}", re.ASCII)


def check_container_name(name: bytes | str) -> str:
    """A container name: 1-32 of ``[A-Za-z0-9_-]``.  Raises :class:`EncodingError`."""
    try:
        text = name.decode("ascii") if isinstance(name, bytes) else name
    except UnicodeDecodeError:
        raise EncodingError("container name must be ASCII") from None
    if not isinstance(text, str) or not _CONTAINER_RE.fullmatch(text):
        raise EncodingError("container name must be 1-32 of A-Z a-z 0-9 _ -")
    return text


@dataclass(frozen=True)
class DeviceInfo:
    """GET_DEVICE_INFO answer: who the token is and what firmware it runs.

    ``raw`` keeps the exact bytes the token sent: the device key signs their SM3
    in the secure-channel handshake, so the reported firmware hash is attested.
    """

    serial: str
    label: str
    manufacturer: str
    firmware_version: str
    firmware_hash: bytes  # SM3 of the firmware image (32 bytes)
    capabilities: DeviceCapability
    protocol_version: int
    raw: bytes = b""

    def encode(self) -> bytes:
        return tlv.build(
            [
                (Tag.SERIAL, self.serial.encode("ascii")),
                (Tag.LABEL, self.label.encode("utf-8")),
                (Tag.MANUFACTURER, self.manufacturer.encode("utf-8")),
                (Tag.FIRMWARE_VERSION, self.firmware_version.encode("ascii")),
                (Tag.FIRMWARE_HASH, self.firmware_hash),
                (Tag.CAPABILITIES, int(self.capabilities).to_bytes(2, "big")),
                (Tag.PROTOCOL_VERSION, bytes((self.protocol_version,))),
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> DeviceInfo:
        fields = tlv.parse_map(
            data,
            allowed=[
                Tag.SERIAL,
                Tag.LABEL,
                Tag.MANUFACTURER,
                Tag.FIRMWARE_VERSION,
                Tag.FIRMWARE_HASH,
                Tag.CAPABILITIES,
                Tag.PROTOCOL_VERSION,
            ],
            required=[
                Tag.SERIAL,
                Tag.FIRMWARE_VERSION,
                Tag.FIRMWARE_HASH,
                Tag.CAPABILITIES,
                Tag.PROTOCOL_VERSION,
            ],
            max_value=256,
        )
        try:
            serial = fields[Tag.SERIAL].decode("ascii")
            label = fields.get(Tag.LABEL, b"").decode("utf-8")
            manufacturer = fields.get(Tag.MANUFACTURER, b"").decode("utf-8")
            version = fields[Tag.FIRMWARE_VERSION].decode("ascii")
        except UnicodeDecodeError:
            raise EncodingError("device information holds invalid text") from None
        if not re.fullmatch(r"[A-Za-z0-9-]{1,32}", serial):
            raise EncodingError("device serial is malformed")
        if len(fields[Tag.FIRMWARE_HASH]) != 32:
            raise EncodingError("firmware hash must be 32 bytes (SM3)")
        if len(fields[Tag.CAPABILITIES]) != 2 or len(fields[Tag.PROTOCOL_VERSION]) != 1:
            raise EncodingError("device capabilities/protocol version malformed")
        return cls(
            serial=serial,
            label=label,
            manufacturer=manufacturer,
            firmware_version=version,
            firmware_hash=fields[Tag.FIRMWARE_HASH],
            capabilities=DeviceCapability(int.from_bytes(fields[Tag.CAPABILITIES], "big")),
            protocol_version=fields[Tag.PROTOCOL_VERSION][0],
            raw=bytes(data),
        )
