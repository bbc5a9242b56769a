"""What the phone and the bank share: device-signed requests, the CSR envelope, the link.

Neutral code: the bank's server half and the software phone both import this module (never
each other).  The HTTP contract built on it is in ``docs/phone-shield.md``.

**Device-signed request** (every phone request after the attestation)::

    {"device_id": "<id>", "counter": <int>, "payload": "<base64url JSON>", "signature": "<b64>"}

``signature`` is ECDSA P-256 with SHA-256 by the attested device key over
:func:`request_bytes` — the domain label, the request path, the device id, the counter and the
payload bytes, each length-prefixed.  The server accepts a request only with a counter strictly
greater than the last one it accepted for the device (one atomic compare-and-set), so a request
can be replayed neither at its own path nor at another.

**CSR envelope** (PS-4: the certificate request is protected before it enters TLS)::

    "PSE1" | len(EK) u16 | EK | nonce (12) | C | MAC (32)

* ``EK`` — a fresh 16-byte SM4 key ``K``, SM2-encrypted (GM/T 0009 DER) to the public key of the
  bank's enrolment encryption certificate;
* ``C`` — SM4-GCM under ``K`` of the DER CSR, associated data ``"PSE1" || enrolment id``;
* ``MAC`` — HMAC-SM3 under the **enrolment session key** over everything before it; that key is
  HMAC-SM3(link secret, label || enrolment id || authorisation code): the link secret came in
  the enrolment link (QR code), the authorisation code over the second channel (SMS), so only
  the phone that received both can make an envelope the bank accepts for this enrolment.

The bank checks the MAC first (constant-time), then decrypts ``EK`` and ``C``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit

from ebank_auth.crypto import sm2, sm3, sm4
from ebank_auth.errors import DecryptionError, EncodingError

__all__ = [
    "API_PREFIX",
    "ENVELOPE_MAGIC",
    "LINK_SCHEME",
    "AttestationReason",
    "EnrolmentLink",
    "EnrolmentReason",
    "SessionStatus",
    "SignedRequest",
    "b64d",
    "b64e",
    "envelope_mac_key",
    "open_envelope",
    "reason_from",
    "request_bytes",
    "seal_envelope",
]

API_PREFIX: Final = "/phone-shield/v1"
LINK_SCHEME: Final = "ebank-phone-shield"
ENVELOPE_MAGIC: Final = b"PSE1"
_REQUEST_LABEL: Final = b"ebank-auth/phone-shield/request/v1"
_ENVELOPE_LABEL: Final = b"ebank-auth/phone-shield/envelope/v1"
_MAX_PAYLOAD: Final = 64 * 1024
_MAX_ENVELOPE: Final = 32 * 1024


class EnrolmentReason(str, enum.Enum):
    """Why an enrolment step was refused (``EnrolmentRefused.reason``)."""

    UNKNOWN = "unknown-enrolment"  # missing, expired or finished
    STAGE = "out-of-order"
    IDENTITY = "identity"
    LINK = "link"
    AUTHORISATION_CODE = "authorisation-code"
    ATTESTATION = "attestation"
    KEYGEN = "keygen"
    CSR = "csr"
    ENVELOPE = "envelope"


class AttestationReason(str, enum.Enum):
    MALFORMED = "malformed"
    CHAIN = "chain"  # a signature, CA flag or validity of the chain fails
    UNTRUSTED_ROOT = "untrusted-root"
    EXTENSION = "extension"  # KeyDescription missing, malformed or on a non-leaf certificate
    KEY_TYPE = "key-type"
    CHALLENGE = "challenge"
    SECURITY_LEVEL = "security-level"
    VERSION = "version"
    ORIGIN = "origin"
    BOOT_STATE = "boot-state"
    DEVICE_UNLOCKED = "device-unlocked"
    PACKAGE = "package"
    SIGNING_CERTIFICATE = "signing-certificate"


class SessionStatus(str, enum.Enum):
    PENDING = "pending"  # waiting for the phone
    ANSWERED = "answered"  # the server answered the phone's request; waiting for the signature
    SIGNED = "signed"  # a signature that verifies over the transaction arrived
    REJECTED = "rejected"  # the customer rejected it on the phone
    FAILED = "failed"  # the phone's signature did not verify (wrong PIN?) or it reported failure


def reason_from(value: object) -> object:
    """The enum member a JSON ``reason`` names (or the value itself)."""
    for cls in (EnrolmentReason, AttestationReason, SessionStatus):
        try:
            return cls(value)
        except ValueError:
            continue
    return value


def b64e(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: object, what: str = "value") -> bytes:
    """Strict base64url (padding optional); EncodingError otherwise."""
    if not isinstance(text, str) or len(text) > 4 * _MAX_PAYLOAD:
        raise EncodingError(f"{what} must be base64url text")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise EncodingError(f"{what} is not base64url") from None
    if b64e(raw) != text.rstrip("="):
        raise EncodingError(f"{what} is not canonical base64url")
    return raw


def _frame(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def request_bytes(path: str, device_id: str, counter: int, payload: bytes) -> bytes:
    """The bytes the device key signs for one request."""
    return _frame(
        _REQUEST_LABEL,
        path.encode("utf-8"),
        device_id.encode("utf-8"),
        str(counter).encode("ascii"),
        payload,
    )


@dataclass(frozen=True)
class SignedRequest:
    """A device-signed request (see the module docstring)."""

    device_id: str
    counter: int
    payload: bytes
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "counter": self.counter,
            "payload": b64e(self.payload),
            "signature": b64e(self.signature),
        }

    @classmethod
    def from_json(cls, doc: object) -> SignedRequest:
        if not isinstance(doc, Mapping) or set(doc) != {
            "device_id",
            "counter",
            "payload",
            "signature",
        }:
            raise EncodingError(
                "a device request is {device_id, counter, payload, signature} and nothing else"
            )
        device_id, counter = doc["device_id"], doc["counter"]
        if not isinstance(device_id, str) or not 1 <= len(device_id) <= 64:
            raise EncodingError("device_id must be text of 1-64 characters")
        if isinstance(counter, bool) or not isinstance(counter, int) or not 0 < counter < 2**53:
            raise EncodingError("counter must be a positive integer")
        payload = b64d(doc["payload"], "payload")
        if len(payload) > _MAX_PAYLOAD:
            raise EncodingError("payload too large")
        return cls(device_id, counter, payload, b64d(doc["signature"], "signature"))

    def payload_json(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise EncodingError("the request payload is not JSON") from None
        if not isinstance(doc, dict):
            raise EncodingError("the request payload must be a JSON object")
        return doc


# ---------------------------------------------------------------------- the enrolment link
@dataclass(frozen=True)
class EnrolmentLink:
    """What the QR code on the bank's page carries: where, which enrolment, its link secret.

    ``ebank-phone-shield://enrol?server=<base URL>&id=<enrolment id>&s=<base64url secret>``"""

    server: str
    enrolment_id: str
    secret: bytes

    def to_uri(self) -> str:
        query = urlencode({"server": self.server, "id": self.enrolment_id, "s": b64e(self.secret)})
        return f"{LINK_SCHEME}://enrol?{query}"

    @classmethod
    def parse(cls, uri: str) -> EnrolmentLink:
        if not isinstance(uri, str) or len(uri) > 2048:
            raise EncodingError("the enrolment link must be text")
        parts = urlsplit(uri)
        if parts.scheme != LINK_SCHEME or parts.netloc != "enrol":
            raise EncodingError(f"not a phone-shield enrolment link ({LINK_SCHEME}://enrol?…)")
        try:
            q = parse_qs(parts.query, strict_parsing=True)
        except ValueError:
            raise EncodingError("the enrolment link's query is malformed") from None
        if set(q) != {"server", "id", "s"} or any(len(v) != 1 for v in q.values()):
            raise EncodingError("the enrolment link needs exactly server, id and s")
        server = q["server"][0]
        if urlsplit(server).scheme not in ("http", "https"):
            raise EncodingError("the enrolment link's server must be an http(s) URL")
        secret = b64d(q["s"][0], "link secret")
        if len(secret) != 32:
            raise EncodingError("the enrolment link's secret must be 32 bytes")
        return cls(server, q["id"][0], secret)


# ---------------------------------------------------------------------- the CSR envelope
def envelope_mac_key(link_secret: bytes, enrolment_id: str, authorisation_code: str) -> bytes:
    """The enrolment session key for the envelope's HMAC-SM3 (see the module docstring)."""
    return sm3.hmac(
        bytes(link_secret),
        _frame(_ENVELOPE_LABEL, enrolment_id.encode("utf-8"), authorisation_code.encode("utf-8")),
    )


def seal_envelope(
    csr_der: bytes, enrolment_key: sm2.SM2PublicKey, mac_key: bytes, enrolment_id: str
) -> bytes:
    """Phone: protect the CSR for the bank's enrolment certificate and this enrolment."""
    k = secrets.token_bytes(16)
    ek = enrolment_key.encrypt(k)
    nonce = secrets.token_bytes(12)
    c = sm4.encrypt_gcm(k, nonce, bytes(csr_der), aad=ENVELOPE_MAGIC + enrolment_id.encode())
    body = ENVELOPE_MAGIC + len(ek).to_bytes(2, "big") + ek + nonce + c
    return body + sm3.hmac(mac_key, body + enrolment_id.encode())


def open_envelope(
    envelope: bytes, decrypt: sm2.SM2PrivateKey, mac_key: bytes, enrolment_id: str
) -> bytes:
    """Bank: check the MAC, then decrypt; the CSR DER.  DecryptionError if anything is off."""
    if (
        not isinstance(envelope, (bytes, bytearray))
        or not 4 + 2 + 12 + 16 + 32 < len(envelope) <= _MAX_ENVELOPE
    ):
        raise DecryptionError("the CSR envelope has a bad size")
    env = bytes(envelope)
    body, mac = env[:-32], env[-32:]
    if not hmac.compare_digest(sm3.hmac(mac_key, body + enrolment_id.encode()), mac):
        raise DecryptionError(
            "the CSR envelope's MAC does not verify for this enrolment: it was altered, or made "
            "without this enrolment's link and authorisation code"
        )
    if body[:4] != ENVELOPE_MAGIC:
        raise DecryptionError("not a PSE1 envelope")
    n = int.from_bytes(body[4:6], "big")
    if 6 + n + 12 + 16 > len(body):
        raise DecryptionError("the CSR envelope is truncated")
    ek, nonce, c = body[6 : 6 + n], body[6 + n : 18 + n], body[18 + n :]
    k = decrypt.decrypt(ek)
    if len(k) != 16:
        raise DecryptionError("the envelope key has a bad length")
    return sm4.decrypt_gcm(k, nonce, c, aad=ENVELOPE_MAGIC + enrolment_id.encode())
