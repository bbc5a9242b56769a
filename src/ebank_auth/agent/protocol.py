"""The agent's HTTP contract, version 1: constants, origins, request bodies, the login message.

Everything here is pure (no token, no socket), so the bank's server can import
:func:`login_message` and :func:`check_origin` to check exactly what the agent signs.
docs/agent.md specifies the contract.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ebank_auth.errors import ConfigurationError, EncodingError
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.protocol import pin_bytes

__all__ = [
    "DEFAULT_AGENT_PORT",
    "LOGIN_MESSAGE_PREFIX",
    "MAX_BINDING_CHARS",
    "MAX_BODY_BYTES",
    "PROTOCOL_VERSION",
    "AuthenticateRequest",
    "CertificateRequest",
    "EnrolRequest",
    "SignRequest",
    "check_origin",
    "login_message",
    "parse_authenticate",
    "parse_binding",
    "parse_certificate",
    "parse_enrol",
    "parse_sign",
    "parse_transaction",
]

#: The agent's default loopback port.
DEFAULT_AGENT_PORT: Final = 8765
#: The HTTP contract's version (``GET /v1/status`` reports it).
PROTOCOL_VERSION: Final = 1
#: Largest request body accepted (bytes).
MAX_BODY_BYTES: Final = 64 * 1024
#: Longest pairing binding (printable ASCII characters).
MAX_BINDING_CHARS: Final = 128
#: What every login signature starts with: a USB Key login signature is never a valid
#: signature over anything else the token signs for the bank.
LOGIN_MESSAGE_PREFIX: Final = b"ebank-auth-login\x00"

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_ORIGIN_RE: Final = re.compile(
    r"(?P<scheme>https?)://(?P<host>\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)"
    r"(?::(?P<port>[1-9][0-9]{0,4}))?",
    re.ASCII,
)
_HEX64: Final = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
_SERIAL_RE: Final = re.compile(r"[\x21-\x7e]{1,64}", re.ASCII)
_PRINTABLE: Final = re.compile(r"[\x20-\x7e]+", re.ASCII)


def check_origin(origin: str) -> str:
    """``origin`` if it is a web origin exactly as a browser sends it in ``Origin``:
    ``http``/``https``, lower-case host, no path, no trailing slash, and no port when it is the
    scheme's default (browsers leave it out).  Raises :class:`ConfigurationError` saying what to
    write instead."""
    if not isinstance(origin, str):
        raise ConfigurationError("an origin is text such as https://bank.example")
    m = _ORIGIN_RE.fullmatch(origin)
    if m is None:
        raise ConfigurationError(
            f"{origin!r} is not an exact web origin: write scheme://host[:port] with a lower-case "
            "host and nothing after it (e.g. https://bank.example or http://127.0.0.1:5000)"
        )
    port = m["port"]
    if port is not None:
        if int(port) > 65535:
            raise ConfigurationError(f"{origin!r}: port {port} is not a TCP port")
        if int(port) == _DEFAULT_PORTS[m["scheme"]]:
            short = f"{m['scheme']}://{m['host']}"
            raise ConfigurationError(
                f"{origin!r} names the default port, which browsers leave out of Origin: "
                f"write {short}"
            )
    return origin


def login_message(origin: str, challenge: str | bytes) -> bytes:
    """The bytes the agent has the token's login key sign for ``POST /v1/authenticate``:
    ``b"ebank-auth-login\\x00" + origin + b"\\x00" + challenge`` (32 bytes; as text: 64 hex).

    The agent puts in the ``Origin`` the request came from, never one the page names, so a
    phishing site that relays the bank's challenge gets a signature over *its* origin, which the
    bank's check (over its own origin) refuses.  The bank calls this with its own origin and the
    challenge it issued, then verifies the signature (SM2, default ID) over the result."""
    check_origin(origin)
    if isinstance(challenge, str):
        if not _HEX64.fullmatch(challenge):
            raise EncodingError("the challenge must be 64 hexadecimal characters (32 bytes)")
        raw = bytes.fromhex(challenge)
    elif isinstance(challenge, (bytes, bytearray, memoryview)):
        raw = bytes(challenge)
        if len(raw) != 32:
            raise EncodingError("the challenge must be 32 bytes")
    else:
        raise EncodingError("the challenge must be 64 hexadecimal characters or 32 bytes")
    return LOGIN_MESSAGE_PREFIX + origin.encode("ascii") + b"\x00" + raw


# ---------------------------------------------------------------------- request bodies
def _fields(body: Any, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise EncodingError("the request body must be a JSON object")
    unknown = sorted(str(k) for k in body if k not in required | optional)
    if unknown:
        raise EncodingError(f"unknown field(s) {', '.join(unknown)}: the agent takes no others")
    missing = sorted(required - set(body))
    if missing:
        raise EncodingError(f"missing field(s) {', '.join(missing)}")
    return dict(body)


def _pin(value: Any) -> str:
    if not isinstance(value, str):
        raise EncodingError("pin must be a string")
    pin_bytes(value)  # PinPolicyError (an input error) for a length or character the token refuses
    return value


def _serial(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _SERIAL_RE.fullmatch(value):
        raise EncodingError("serial must be null or the token's serial (1-64 printable ASCII)")
    return value


def parse_binding(body: Any) -> str:
    """``POST /v1/pair``: the binding (1-128 printable ASCII characters)."""
    binding = _fields(body, {"binding"}, set())["binding"]
    if (
        not isinstance(binding, str)
        or not 1 <= len(binding) <= MAX_BINDING_CHARS
        or not _PRINTABLE.fullmatch(binding)
    ):
        raise EncodingError(f"binding must be 1 to {MAX_BINDING_CHARS} printable ASCII characters")
    return binding


@dataclass(frozen=True)
class EnrolRequest:
    pin: str
    serial: str | None = None

    def __repr__(self) -> str:  # never the PIN
        return f"EnrolRequest(serial={self.serial!r})"


@dataclass(frozen=True)
class CertificateRequest:
    pin: str
    certificate_der: bytes
    serial: str | None = None

    def __repr__(self) -> str:
        return f"CertificateRequest(serial={self.serial!r})"


@dataclass(frozen=True)
class SignRequest:
    transaction: Transaction
    pin: str
    lang: str = "zh"
    serial: str | None = None

    def __repr__(self) -> str:
        return f"SignRequest(tx_id={self.transaction.tx_id!r}, serial={self.serial!r})"


@dataclass(frozen=True)
class AuthenticateRequest:
    challenge: bytes
    pin: str
    serial: str | None = None

    def __repr__(self) -> str:
        return f"AuthenticateRequest(serial={self.serial!r})"


def parse_enrol(body: Any) -> EnrolRequest:
    f = _fields(body, {"pin"}, {"serial"})
    return EnrolRequest(_pin(f["pin"]), _serial(f.get("serial")))


def parse_certificate(body: Any) -> CertificateRequest:
    from ebank_auth.crypto import x509

    f = _fields(body, {"pin", "certificate"}, {"serial"})
    pem = f["certificate"]
    if not isinstance(pem, str) or "-----BEGIN CERTIFICATE-----" not in pem:
        raise EncodingError("certificate must be one PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        der = x509.load_certificate(pem.encode("ascii")).to_der()
    except UnicodeEncodeError:
        raise EncodingError("certificate PEM must be ASCII") from None
    return CertificateRequest(_pin(f["pin"]), der, _serial(f.get("serial")))


def parse_transaction(value: Any) -> Transaction:
    """A transaction exactly as :meth:`Transaction.to_dict` writes it, and nothing else: every
    key present, canonical values, no extra key (a ``digest``, ``hash`` or ``data`` is refused:
    the token signs only a transaction it can show)."""
    if not isinstance(value, Mapping):
        raise EncodingError("transaction must be a JSON object (Transaction.to_dict())")
    tx = Transaction.from_dict(value)
    if tx.to_dict() != dict(value):
        raise EncodingError(
            "transaction is not canonical: send exactly Transaction.to_dict() (every key, "
            "canonical amount and time)"
        )
    return tx


def parse_sign(body: Any) -> SignRequest:
    f = _fields(body, {"transaction", "pin"}, {"lang", "serial"})
    tx = parse_transaction(f["transaction"])
    lang = f.get("lang", "zh")
    if lang not in ("zh", "en"):
        raise EncodingError('lang must be "zh" or "en"')
    return SignRequest(tx, _pin(f["pin"]), lang, _serial(f.get("serial")))


def parse_authenticate(body: Any) -> AuthenticateRequest:
    f = _fields(body, {"challenge", "pin"}, {"serial"})
    challenge = f["challenge"]
    if not isinstance(challenge, str) or not _HEX64.fullmatch(challenge):
        raise EncodingError("challenge must be 64 hexadecimal characters (32 bytes from the bank)")
    return AuthenticateRequest(bytes.fromhex(challenge), _pin(f["pin"]), _serial(f.get("serial")))
