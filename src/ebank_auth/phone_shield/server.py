"""The bank's half of the phone shield: enrolment, device registry, signing, decryption, revocation.

All state lives in a :class:`~ebank_auth.store.Store` (keys built with
:func:`~ebank_auth.store.keys.store_key` under the namespace ``phone-shield``), so several app
processes share it.  Every step is one of the store's atomic operations:

=======================  =====================================================================
``enrol:<eid>``          the enrolment record (JSON); each step moves it to the next stage with
                         one ``compare_and_set``, so a step runs once; expires
``enrol-try:<eid>``      tries of the authorisation code, counted **before** the comparison
``enrol-keygen:<eid>``   the server's key-generation state (sealed), taken out with ``consume``
``enrol-pop:<eid>``      the CSR proof-of-possession signing session, taken out with ``consume``
``dev:<device id>``      the device record (JSON): customer, device key, certificate, state
``share:<device id>``    the server's share ``d2``, sealed (SM4-GCM, :class:`SecretSealer`,
                         associated data = the device id); deleted on revocation
``ctr:<device id>``      the last accepted device-request counter (compare-and-set, increasing)
``fail:<device id>``     signing attempts not yet confirmed by a valid signature (``incr_bounded``
                         **before** the server share is used; reset by a valid signature)
``sign:<sid>``           a signing session: device, the canonical transaction, status; expires
``pending:<device id>``  the device's open signing session (what the phone fetches)
``dec:<sid>``            a decryption session, consumed by its one request
``revoked`` (log)        serial numbers of revoked phone-shield certificates (for the CRL)
=======================  =====================================================================

The server derives ``e`` from the canonical :class:`~ebank_auth.transaction.Transaction` it
records (``e = SM3(Z || Transaction.encode())``); a phone's request is checked against that
``e``, so the server share never signs anything but what the bank recorded and the phone
displayed.  The HTTP contract the phone speaks is :mod:`ebank_auth.phone_shield.http`.
"""

from __future__ import annotations

import datetime as dt
import enum
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from asn1crypto import csr as a_csr

from ebank_auth.crypto import sm2, sm2_2p, sm3
from ebank_auth.crypto.keys import (
    PublicKey,
    SignatureAlgorithm,
    default_signature_algorithm,
    load_public_key,
    public_key_to_spki,
    verify_data,
)
from ebank_auth.crypto.x509 import (
    Certificate,
    CertificateAuthority,
    CertificateRevocationList,
    KeyUsage,
    format_name,
    load_csr,
    parse_name,
)
from ebank_auth.errors import (
    ConfigurationError,
    DecryptionError,
    DeviceLocked,
    DeviceRequestRejected,
    DeviceRevoked,
    EbankAuthError,
    EncodingError,
    EnrolmentRefused,
    InvalidSignature,
    ServiceUnavailable,
    SigningRefused,
    StoreError,
    TwoPartyError,
)
from ebank_auth.otp.codes import CodeService, IssuedCode
from ebank_auth.otp.sealing import SecretSealer
from ebank_auth.phone_shield.attestation import (
    AttestationPolicy,
    AttestationTrust,
    verify_android_attestation,
)
from ebank_auth.phone_shield.protocol import (
    API_PREFIX,
    EnrolmentLink,
    EnrolmentReason,
    SessionStatus,
    SignedRequest,
    b64d,
    b64e,
    envelope_mac_key,
    open_envelope,
    request_bytes,
)
from ebank_auth.store import Store
from ebank_auth.store.keys import check_namespace, store_key
from ebank_auth.transaction import Transaction

__all__ = [
    "DeviceState",
    "DeviceStatus",
    "EnrolledDevice",
    "EnrolmentCodes",
    "EnrolmentInfo",
    "EnrolmentReason",
    "EnrolmentStart",
    "IdentityVerifier",
    "PasswordAndSmsCode",
    "PasswordAndSmsIdentity",
    "PhoneShieldServer",
    "PhoneShieldSettings",
    "SessionStatus",
    "SigningResult",
    "SigningSession",
    "UsbKeyIdentity",
    "UsbKeySignature",
    "paths",
]

_log = logging.getLogger(__name__)


class _Stage(str, enum.Enum):
    IDENTITY = "identity"  # waiting for the identity step
    CODES = "codes"  # codes issued, waiting for the phone's attestation
    ATTESTED = "attested"  # device key attested, key generation under way
    KEYGEN = "keygen"  # joint key made, waiting for the CSR's proof of possession
    POP = "pop"  # CSR proof-of-possession session open
    POP_DONE = "pop-done"  # CSR signed, waiting for the envelope


class DeviceState(str, enum.Enum):
    ACTIVE = "active"
    LOCKED = "locked"
    REVOKED = "revoked"


@dataclass(frozen=True)
class PhoneShieldSettings:
    """Limits and lifetimes (seconds)."""

    max_sign_failures: int = 5
    enrolment_ttl: float = 600.0
    session_ttl: float = 300.0
    authorisation_code_tries: int = 3
    authorisation_code_digits: int = 8
    certificate_days: int = 730

    def __post_init__(self) -> None:
        if not 1 <= self.max_sign_failures <= 10:
            raise ConfigurationError("max_sign_failures must be 1-10 (like a token PIN limit)")
        if not 1 <= self.authorisation_code_tries <= 5:
            raise ConfigurationError("authorisation_code_tries must be 1-5")
        if not 6 <= self.authorisation_code_digits <= 12:
            raise ConfigurationError("authorisation_code_digits must be 6-12")
        if not 30 <= self.enrolment_ttl <= 3600 or not 30 <= self.session_ttl <= 3600:
            raise ConfigurationError("enrolment_ttl and session_ttl must be 30-3600 seconds")


class _Paths:
    """The request path each device-signed request is signed for (and served at)."""

    @staticmethod
    def enrolment(eid: str, step: str = "") -> str:
        return f"{API_PREFIX}/enrolments/{eid}" + (f"/{step}" if step else "")

    @staticmethod
    def device(device_id: str, step: str) -> str:
        return f"{API_PREFIX}/devices/{device_id}/{step}"

    @staticmethod
    def session(sid: str, step: str) -> str:
        return f"{API_PREFIX}/sessions/{sid}/{step}"


paths = _Paths()


# ---------------------------------------------------------------------- identity step
class IdentityVerifier(Protocol):
    """The enrolment's identity step (PS-5): raise an :class:`EbankAuthError` to refuse;
    return a short name of the method used (recorded with the device)."""

    def verify(self, customer_id: str, proof: object, challenge: bytes) -> str: ...


@dataclass(frozen=True)
class PasswordAndSmsCode:
    password: str
    code: str

    def __repr__(self) -> str:
        return "PasswordAndSmsCode(<secret>)"


class PasswordAndSmsIdentity:
    """Login password + an SMS code sent to the customer's registered phone number.

    ``check_password(customer_id, password)`` raises on a wrong password (the bank's
    :class:`~ebank_auth.passwords.PasswordService` with its own lockout, for instance);
    codes go through :class:`~ebank_auth.otp.CodeService` (purpose ``phone-shield-enrol``)."""

    PURPOSE: Final = "phone-shield-enrol"

    def __init__(self, codes: CodeService, check_password: Callable[[str, str], object]) -> None:
        self.codes = codes
        self.check_password = check_password

    def send_code(self, customer_id: str) -> IssuedCode:
        """Send the SMS code to the registered phone (call it when the customer starts)."""
        return self.codes.issue(customer_id, self.PURPOSE)

    def verify(self, customer_id: str, proof: object, challenge: bytes) -> str:
        if not isinstance(proof, PasswordAndSmsCode):
            raise EnrolmentRefused(
                "the identity step needs the login password and the SMS code",
                EnrolmentReason.IDENTITY,
            )
        self.codes.verify(customer_id, self.PURPOSE, proof.code)
        self.check_password(customer_id, proof.password)
        return "password+sms"


@dataclass(frozen=True)
class UsbKeySignature:
    signature: bytes


class UsbKeyIdentity:
    """A signature by the customer's USB Key over the enrolment's identity challenge.

    ``public_key_for(customer_id)`` returns the public key of the customer's registered USB
    Key certificate (or None)."""

    def __init__(self, public_key_for: Callable[[str], PublicKey | None]) -> None:
        self.public_key_for = public_key_for

    def verify(self, customer_id: str, proof: object, challenge: bytes) -> str:
        key = self.public_key_for(customer_id)
        if key is None or not isinstance(proof, UsbKeySignature):
            raise EnrolmentRefused(
                "the identity step needs a signature by the customer's registered USB Key",
                EnrolmentReason.IDENTITY,
            )
        verify_data(key, default_signature_algorithm(key), proof.signature, challenge)
        return "usb-key"


# ---------------------------------------------------------------------- results
@dataclass(frozen=True)
class EnrolmentStart:
    enrolment_id: str
    customer_id: str
    identity_challenge: bytes  # what a USB Key signs for UsbKeyIdentity
    expires_at: float


@dataclass(frozen=True)
class EnrolmentCodes:
    """Show ``reference_code`` and ``link`` (as a QR code) on the bank's page; the
    authorisation code goes over the other channel (SMS) — it is None here when the server
    delivered it itself (``authorisation_sender``)."""

    enrolment_id: str
    link: str
    reference_code: str
    authorisation_code: str | None
    expires_at: float

    def __repr__(self) -> str:
        return (
            f"EnrolmentCodes(enrolment_id={self.enrolment_id!r}, reference_code="
            f"{self.reference_code!r}, authorisation_code=<secret>)"
        )


@dataclass(frozen=True)
class EnrolmentInfo:
    """What the phone learns from the link: compare ``reference_code`` with the bank's page."""

    enrolment_id: str
    reference_code: str
    subject: str
    attestation_challenge: bytes
    enrolment_certificate: bytes  # DER: encrypt the CSR envelope to its key
    expires_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "enrolment_id": self.enrolment_id,
            "reference_code": self.reference_code,
            "subject": self.subject,
            "attestation_challenge": b64e(self.attestation_challenge),
            "enrolment_certificate": b64e(self.enrolment_certificate),
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True)
class EnrolledDevice:
    device_id: str
    customer_id: str
    certificate: Certificate
    chain: tuple[Certificate, ...]


@dataclass(frozen=True)
class DeviceStatus:
    device_id: str
    customer_id: str
    state: DeviceState
    failures: int
    limit: int
    certificate_serial: int
    security_level: str
    identity_method: str
    enrolled_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "customer_id": self.customer_id,
            "state": self.state.value,
            "failures": self.failures,
            "limit": self.limit,
            "certificate_serial": format(self.certificate_serial, "x"),
            "security_level": self.security_level,
            "identity_method": self.identity_method,
            "enrolled_at": self.enrolled_at,
        }


@dataclass(frozen=True)
class SigningSession:
    session_id: str
    device_id: str
    transaction: Transaction
    challenge: bytes  # sm2_2p.SignChallenge bytes: the phone fetches them with the transaction
    expires_at: float


@dataclass(frozen=True)
class SigningResult:
    session_id: str
    status: SessionStatus
    transaction: Transaction
    signature: bytes | None  # DER SM2 signature over transaction.encode(), verified
    certificate: Certificate


def _now_json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _load_json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise StoreError(f"stored {what} is corrupt") from None
    if not isinstance(doc, dict):
        raise StoreError(f"stored {what} is corrupt")
    return doc


def _new_id() -> str:
    return secrets.token_hex(16)


def _check_id(value: object, what: str) -> str:
    if (
        not isinstance(value, str)
        or len(value) != 32
        or any(c not in "0123456789abcdef" for c in value)
    ):
        raise EncodingError(f"{what} must be 32 lowercase hex characters")
    return value


_REF_ALPHABET: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


class PhoneShieldServer:
    """The bank's phone-shield service (see the module docstring).

    ``sealer`` seals the server shares and enrolment secrets (the same kind of versioned SM4
    keys as the OTP secrets); ``mac_key`` (≥ 16 bytes) keys the HMAC-SM3 of codes and link
    secrets; ``ca`` issues the phone-shield certificates; ``enrolment_key`` and
    ``enrolment_certificate`` are the bank's SM2 enrolment encryption key and certificate (the
    phone seals its CSR to it); ``server_url`` is the base URL the phone reaches this API at.
    """

    def __init__(
        self,
        store: Store,
        *,
        sealer: SecretSealer,
        mac_key: bytes,
        ca: CertificateAuthority,
        enrolment_key: sm2.SM2PrivateKey,
        enrolment_certificate: Certificate,
        attestation_policy: AttestationPolicy,
        attestation_trust: AttestationTrust,
        identity: IdentityVerifier,
        server_url: str,
        settings: PhoneShieldSettings | None = None,
        authorisation_sender: Callable[[str, str], None] | None = None,
        namespace: str = "phone-shield",
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(mac_key, (bytes, bytearray)) or len(mac_key) < 16:
            raise ConfigurationError("mac_key must be at least 16 random bytes")
        if (
            not isinstance(enrolment_key, sm2.SM2PrivateKey)
            or public_key_to_spki(enrolment_key.public_key()) != enrolment_certificate.spki_der
        ):
            raise ConfigurationError(
                "enrolment_key must be the SM2 private key of enrolment_certificate"
            )
        self.store = store
        self.sealer = sealer
        self._mac_key = bytes(mac_key)
        self.ca = ca
        self._enrolment_key = enrolment_key
        self.enrolment_certificate = enrolment_certificate
        self.attestation_policy = attestation_policy
        self.attestation_trust = attestation_trust
        self.identity = identity
        self.server_url = server_url.rstrip("/")
        self.settings = settings or PhoneShieldSettings()
        self.authorisation_sender = authorisation_sender
        self.ns = check_namespace(namespace)
        self.clock = clock or store.clock

    # ------------------------------------------------------------------ helpers
    def _k(self, *parts: str) -> str:
        return store_key(self.ns, *parts)

    def _mac(self, label: str, *parts: str | bytes) -> bytes:
        data = b"".join(
            len(p).to_bytes(4, "big") + (p.encode() if isinstance(p, str) else p)
            for p in (label, *parts)
        )
        return sm3.hmac(self._mac_key, data)

    def _enrolment(self, eid: str) -> tuple[bytes, dict[str, Any]]:
        raw = self.store.get(self._k("enrol", _check_id(eid, "enrolment id")))
        if raw is None:
            raise EnrolmentRefused(
                "this enrolment is unknown, expired or finished: start again from online banking",
                EnrolmentReason.UNKNOWN,
            )
        rec = _load_json(raw, "enrolment")
        if self.clock() >= float(rec["expires_at"]):
            raise EnrolmentRefused("this enrolment expired: start again", EnrolmentReason.UNKNOWN)
        return raw, rec

    def _advance(self, eid: str, old: bytes, rec: dict[str, Any]) -> None:
        ttl = max(float(rec["expires_at"]) - self.clock(), 1.0)
        if not self.store.compare_and_set(self._k("enrol", eid), old, _now_json(rec), ttl=ttl):
            raise EnrolmentRefused(
                "this enrolment step already ran (or runs concurrently): continue with the next "
                "step or start again",
                EnrolmentReason.STAGE,
            )

    @staticmethod
    def _stage(rec: dict[str, Any], *allowed: _Stage) -> None:
        if rec.get("stage") not in {s.value for s in allowed}:
            raise EnrolmentRefused(
                f"this enrolment step is out of order (the enrolment is at {rec.get('stage')!r})",
                EnrolmentReason.STAGE,
            )

    def _verify_request(
        self, path: str, request: SignedRequest, device_id: str, device_key_der: bytes
    ) -> dict[str, Any]:
        """Device signature, then the counter (one compare-and-set): the payload as JSON."""
        if not isinstance(request, SignedRequest):
            raise EncodingError("a device request must be a SignedRequest")
        if not hmac.compare_digest(request.device_id.encode(), device_id.encode()):
            raise DeviceRequestRejected("the request is signed for another device")
        key = load_public_key(device_key_der)
        try:
            verify_data(
                key,
                SignatureAlgorithm.ECDSA_SHA256,
                request.signature,
                request_bytes(path, request.device_id, request.counter, request.payload),
            )
        except InvalidSignature:
            raise DeviceRequestRejected(
                "the request's device signature does not verify (altered, or for another path)"
            ) from None
        payload = request.payload_json()  # malformed: refused before any state changes
        key_ctr = self._k("ctr", device_id)
        current = self.store.get(key_ctr)
        last = int(current) if current is not None else 0
        if request.counter <= last:
            raise DeviceRequestRejected(
                f"replayed request: counter {request.counter} is not above {last}; nothing changed"
            )
        if not self.store.compare_and_set(key_ctr, current, str(request.counter).encode()):
            raise DeviceRequestRejected("a concurrent request used this counter: retry")
        return payload

    # ================================================================== enrolment
    def start_enrolment(self, customer_id: str, subject: str) -> EnrolmentStart:
        """Bank app (customer signed in to online banking): open an enrolment.  ``subject``
        is the certificate subject the bank decides for the customer."""
        if not isinstance(customer_id, str) or not 1 <= len(customer_id) <= 128:
            raise ConfigurationError("customer_id must be text of 1-128 characters")
        parse_name(subject)  # a malformed subject fails now, not at issuance
        eid = _new_id()
        now = self.clock()
        expires = now + self.settings.enrolment_ttl
        challenge = secrets.token_bytes(32)
        rec = {
            "stage": _Stage.IDENTITY.value,
            "customer_id": customer_id,
            "subject": subject,
            "identity_challenge": b64e(challenge),
            "created_at": now,
            "expires_at": expires,
        }
        self.store.put_if_absent(
            self._k("enrol", eid), _now_json(rec), ttl=self.settings.enrolment_ttl
        )
        _log.info("phone-shield enrolment %s opened for %s", eid, customer_id)
        return EnrolmentStart(
            eid, customer_id, self.identity_challenge_bytes(eid, challenge), expires
        )

    @staticmethod
    def identity_challenge_bytes(eid: str, challenge: bytes) -> bytes:
        """What a USB Key signs in the identity step (bound to the enrolment)."""
        return b"ebank-auth/phone-shield/identity/v1\x00" + eid.encode() + b"\x00" + challenge

    def confirm_identity(self, enrolment_id: str, proof: object) -> EnrolmentCodes:
        """Bank app: the identity step (PS-5).  On success issues the link (QR code), the
        reference code (shown on the bank's page) and the authorisation code (second channel)."""
        old, rec = self._enrolment(enrolment_id)
        self._stage(rec, _Stage.IDENTITY)
        challenge = self.identity_challenge_bytes(
            enrolment_id, b64d(rec["identity_challenge"], "identity challenge")
        )
        try:
            method = self.identity.verify(rec["customer_id"], proof, challenge)
        except (ServiceUnavailable, EnrolmentRefused):
            raise
        except EbankAuthError as exc:
            raise EnrolmentRefused(
                f"identity not confirmed: {exc.message}", EnrolmentReason.IDENTITY
            ) from exc
        link_secret = secrets.token_bytes(32)
        code = "".join(
            secrets.choice("0123456789") for _ in range(self.settings.authorisation_code_digits)
        )
        reference = "".join(secrets.choice(_REF_ALPHABET) for _ in range(6))
        reference = f"{reference[:3]}-{reference[3:]}"
        mac_key = envelope_mac_key(link_secret, enrolment_id, code)
        rec.update(
            stage=_Stage.CODES.value,
            identity_method=method,
            link_mac=b64e(self._mac("link", enrolment_id, link_secret)),
            code_mac=b64e(self._mac("code", enrolment_id, code)),
            envelope_key=b64e(self.sealer.seal(mac_key, self._aad("envelope-key", enrolment_id))),
            reference_code=reference,
            attestation_challenge=b64e(secrets.token_bytes(32)),
        )
        self._advance(enrolment_id, old, rec)
        link = EnrolmentLink(self.server_url, enrolment_id, link_secret).to_uri()
        delivered: str | None = code
        if self.authorisation_sender is not None:
            self.authorisation_sender(rec["customer_id"], code)
            delivered = None
        return EnrolmentCodes(enrolment_id, link, reference, delivered, float(rec["expires_at"]))

    def _aad(self, what: str, ident: str) -> bytes:
        return f"phone-shield/{what}:{ident}".encode()

    def _check_link(self, eid: str, rec: dict[str, Any], link_secret: bytes) -> None:
        want = b64d(rec.get("link_mac", ""), "stored link MAC")
        if not hmac.compare_digest(self._mac("link", eid, bytes(link_secret)), want):
            raise EnrolmentRefused(
                "this is not the enrolment link the bank issued: scan the QR code again",
                EnrolmentReason.LINK,
            )

    def enrolment_info(self, enrolment_id: str, link_secret: bytes) -> EnrolmentInfo:
        """Phone (opened the link): the reference code to compare, the attestation nonce and
        the bank's enrolment certificate."""
        _, rec = self._enrolment(enrolment_id)
        self._stage(rec, _Stage.CODES)
        self._check_link(enrolment_id, rec, link_secret)
        return EnrolmentInfo(
            enrolment_id,
            rec["reference_code"],
            rec["subject"],
            b64d(rec["attestation_challenge"], "attestation challenge"),
            self.enrolment_certificate.to_der(),
            float(rec["expires_at"]),
        )

    def enrol_attest(
        self,
        enrolment_id: str,
        link_secret: bytes,
        authorisation_code: str,
        attestation_chain: list[bytes],
        keygen_request: bytes,
    ) -> tuple[str, bytes]:
        """Phone: authorisation code + device attestation + the first key-generation message.

        The code's try is counted before it is compared; after the last try the enrolment is
        cancelled.  Returns (device id, ``KeygenResponse`` bytes)."""
        old, rec = self._enrolment(enrolment_id)
        self._stage(rec, _Stage.CODES)
        self._check_link(enrolment_id, rec, link_secret)
        tries = self.store.incr_bounded(
            self._k("enrol-try", enrolment_id),
            self.settings.authorisation_code_tries,
            ttl=self.settings.enrolment_ttl,
        )
        if not tries.allowed:
            self.store.delete(self._k("enrol", enrolment_id))
            raise EnrolmentRefused(
                "too many wrong authorisation codes: the enrolment is cancelled, start again",
                EnrolmentReason.AUTHORISATION_CODE,
            )
        code_ok = isinstance(authorisation_code, str) and hmac.compare_digest(
            self._mac("code", enrolment_id, authorisation_code),
            b64d(rec["code_mac"], "stored code MAC"),
        )
        if not code_ok:
            left = self.settings.authorisation_code_tries - tries.value
            if left <= 0:
                self.store.delete(self._k("enrol", enrolment_id))
            raise EnrolmentRefused(
                f"the authorisation code is wrong: {left} tr{'y' if left == 1 else 'ies'} left"
                if left > 0
                else "the authorisation code is wrong and no tries are left: start again",
                EnrolmentReason.AUTHORISATION_CODE,
            )
        device = verify_android_attestation(
            attestation_chain,
            b64d(rec["attestation_challenge"], "attestation challenge"),
            self.attestation_policy,
            self.attestation_trust,
            at=dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc),
        )
        try:
            request = sm2_2p.KeygenRequest.from_bytes(keygen_request)
            response, state = sm2_2p.server_keygen_respond(request)
        except TwoPartyError as exc:
            raise EnrolmentRefused(
                f"key generation refused: {exc.message}", EnrolmentReason.KEYGEN
            ) from exc
        device_id = _new_id()
        sealed_state = state.to_bytes(request.phone_session_id)
        try:
            blob = self.sealer.seal(bytes(sealed_state), self._aad("keygen", enrolment_id))
        finally:
            sealed_state[:] = bytes(len(sealed_state))
        rec.update(
            stage=_Stage.ATTESTED.value,
            device_id=device_id,
            device_key=b64e(device.public_key_der),
            security_level=device.security_level.name.lower(),
        )
        ttl = max(float(rec["expires_at"]) - self.clock(), 1.0)
        self.store.delete(self._k("enrol-keygen", enrolment_id))
        self.store.put_if_absent(self._k("enrol-keygen", enrolment_id), blob, ttl=ttl)
        self._advance(enrolment_id, old, rec)
        _log.info(
            "phone-shield enrolment %s: device attested (%s)", enrolment_id, rec["security_level"]
        )
        return device_id, response.to_bytes()

    def _enrol_request(
        self, enrolment_id: str, step: str, request: SignedRequest, stage: _Stage
    ) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
        old, rec = self._enrolment(enrolment_id)
        self._stage(rec, stage)
        payload = self._verify_request(
            paths.enrolment(enrolment_id, step),
            request,
            rec["device_id"],
            b64d(rec["device_key"], "device key"),
        )
        return old, rec, payload

    def enrol_keygen(self, enrolment_id: str, request: SignedRequest) -> bytes:
        """Phone (device-signed ``{"keygen_confirm"}``): finish key generation; returns the
        joint public key (65 bytes)."""
        old, rec, payload = self._enrol_request(enrolment_id, "keygen", request, _Stage.ATTESTED)
        confirm = sm2_2p.KeygenConfirm.from_bytes(
            b64d(payload.get("keygen_confirm"), "keygen_confirm")
        )
        blob = self.store.consume(self._k("enrol-keygen", enrolment_id))
        if blob is None:
            raise EnrolmentRefused(
                "the key generation is over: start again", EnrolmentReason.KEYGEN
            )
        raw = bytearray(self.sealer.open(blob, self._aad("keygen", enrolment_id)))
        try:
            state = sm2_2p.ServerKeygenState.from_bytes(raw)
        finally:
            raw[:] = bytes(len(raw))
        try:
            share = sm2_2p.server_keygen_complete(state, confirm)
        except TwoPartyError as exc:
            self.store.delete(self._k("enrol", enrolment_id))
            raise EnrolmentRefused(
                f"key generation refused, the enrolment is cancelled: {exc.message}",
                EnrolmentReason.KEYGEN,
            ) from exc
        share_bytes = share.to_bytes()
        try:
            sealed = self.sealer.seal(bytes(share_bytes), self._aad("share", rec["device_id"]))
        finally:
            share_bytes[:] = bytes(len(share_bytes))
            share.wipe()
        rec.update(
            stage=_Stage.KEYGEN.value,
            public_key=share.public_key.to_bytes().hex(),
            share=b64e(sealed),
        )
        self._advance(enrolment_id, old, rec)
        return share.public_key.to_bytes()

    def _enrol_share(self, rec: dict[str, Any]) -> sm2_2p.ServerShare:
        raw = bytearray(
            self.sealer.open(b64d(rec["share"], "share"), self._aad("share", rec["device_id"]))
        )
        try:
            return sm2_2p.ServerShare.from_bytes(raw)
        finally:
            raw[:] = bytes(len(raw))

    def enrol_pop_begin(self, enrolment_id: str, request: SignedRequest) -> bytes:
        """Phone (device-signed ``{"csr_info"}``): open the one signing session for the CSR's
        proof of possession.  The server signs only a CertificationRequestInfo for this
        enrolment's subject and joint key.  Returns the ``SignChallenge`` bytes."""
        old, rec, payload = self._enrol_request(enrolment_id, "pop/begin", request, _Stage.KEYGEN)
        info_der = b64d(payload.get("csr_info"), "csr_info")
        share = self._enrol_share(rec)
        try:
            info = a_csr.CertificationRequestInfo.load(info_der, strict=True)
            subject = format_name(info["subject"])
            spki = info["subject_pk_info"].dump()
            version = info["version"].native
        except (ValueError, TypeError, KeyError):
            raise EnrolmentRefused(
                "csr_info is not a CertificationRequestInfo", EnrolmentReason.CSR
            ) from None
        if version != "v1" or subject != format_name(_name_der(rec["subject"])):
            raise EnrolmentRefused(
                "the certificate request names another subject than the bank decided",
                EnrolmentReason.CSR,
            )
        if spki != public_key_to_spki(share.public_key):
            raise EnrolmentRefused(
                "the certificate request is not for this enrolment's joint key", EnrolmentReason.CSR
            )
        challenge, state = sm2_2p.server_sign_begin(share, info_der)
        ttl = max(float(rec["expires_at"]) - self.clock(), 1.0)
        pop = {"session": b64e(state.session_id), "info": b64e(info_der)}
        self.store.delete(self._k("enrol-pop", enrolment_id))
        self.store.put_if_absent(self._k("enrol-pop", enrolment_id), _now_json(pop), ttl=ttl)
        rec["stage"] = _Stage.POP.value
        self._advance(enrolment_id, old, rec)
        return challenge.to_bytes()

    def enrol_pop_complete(self, enrolment_id: str, request: SignedRequest) -> bytes:
        """Phone (device-signed ``{"sign_request"}``): the server's half of the CSR signature;
        returns the ``SignResponse`` bytes."""
        old, rec, payload = self._enrol_request(enrolment_id, "pop/complete", request, _Stage.POP)
        sign_request = sm2_2p.SignRequest.from_bytes(
            b64d(payload.get("sign_request"), "sign_request")
        )
        raw = self.store.consume(self._k("enrol-pop", enrolment_id))
        if raw is None:
            raise EnrolmentRefused("the CSR signing session is over", EnrolmentReason.CSR)
        pop = _load_json(raw, "CSR session")
        share = self._enrol_share(rec)
        info = b64d(pop["info"], "csr info")
        state = sm2_2p.ServerSignState(
            share, b64d(pop["session"], "session"), sm2.compute_e(share.public_key, info)
        )
        rec["stage"] = _Stage.POP_DONE.value
        self._advance(enrolment_id, old, rec)
        try:
            return sm2_2p.server_sign_complete(state, sign_request).to_bytes()
        except TwoPartyError as exc:
            self.store.delete(self._k("enrol", enrolment_id))
            raise EnrolmentRefused(
                f"the CSR signature step was refused, the enrolment is cancelled: {exc.message}",
                EnrolmentReason.CSR,
            ) from exc

    def enrol_finish(self, enrolment_id: str, request: SignedRequest) -> EnrolledDevice:
        """Phone (device-signed ``{"envelope"}``): open the CSR envelope, check the CSR (proof
        of possession, subject, joint key) and issue the SM2 certificate (digitalSignature)."""
        old, rec, payload = self._enrol_request(enrolment_id, "finish", request, _Stage.POP_DONE)
        envelope = b64d(payload.get("envelope"), "envelope")
        mac_key = self.sealer.open(
            b64d(rec["envelope_key"], "envelope key"), self._aad("envelope-key", enrolment_id)
        )
        try:
            csr_der = open_envelope(envelope, self._enrolment_key, mac_key, enrolment_id)
        except DecryptionError as exc:
            raise EnrolmentRefused(
                f"the CSR envelope was refused: {exc.message}", EnrolmentReason.ENVELOPE
            ) from None
        try:
            csr = load_csr(csr_der)
            csr.verify()
        except EbankAuthError as exc:
            raise EnrolmentRefused(
                f"the certificate request was refused: {exc.message}", EnrolmentReason.CSR
            ) from None
        joint = sm2.public_key_from_bytes(bytes.fromhex(rec["public_key"]))
        if csr.spki_der != public_key_to_spki(joint):
            raise EnrolmentRefused(
                "the certificate request is not for this enrolment's joint key", EnrolmentReason.CSR
            )
        if csr.subject != format_name(_name_der(rec["subject"])):
            raise EnrolmentRefused(
                "the certificate request names another subject than the bank decided",
                EnrolmentReason.CSR,
            )
        # the enrolment ends here: exactly one finish wins
        if not self.store.compare_and_set(self._k("enrol", enrolment_id), old, None):
            raise EnrolmentRefused("this enrolment already finished", EnrolmentReason.STAGE)
        cert = self.ca.issue(
            rec["subject"],
            joint,
            key_usage={KeyUsage.DIGITAL_SIGNATURE, KeyUsage.NON_REPUDIATION},
            valid_days=self.settings.certificate_days,
        )
        device_id = rec["device_id"]
        customer = rec["customer_id"]
        previous = self.store.get(self._k("cust", customer))
        self.store.put_if_absent(self._k("share", device_id), b64d(rec["share"], "share"))
        device = {
            "customer_id": customer,
            "device_key": rec["device_key"],
            "certificate": b64e(cert.to_der()),
            "public_key": rec["public_key"],
            "security_level": rec["security_level"],
            "identity_method": rec["identity_method"],
            "state": DeviceState.ACTIVE.value,
            "enrolled_at": self.clock(),
        }
        self.store.put_if_absent(self._k("dev", device_id), _now_json(device))
        self.store.compare_and_set(self._k("cust", customer), previous, device_id.encode())
        if previous is not None and previous.decode() != device_id:
            self.revoke(previous.decode(), reason="replaced by a new phone shield")
        _log.info("phone-shield device %s enrolled for %s", device_id, customer)
        return EnrolledDevice(device_id, customer, cert, (self.ca.certificate, *self.ca.chain))

    # ================================================================== devices
    def _device(self, device_id: str) -> tuple[bytes, dict[str, Any]]:
        raw = self.store.get(self._k("dev", _check_id(device_id, "device id")))
        if raw is None:
            raise DeviceRevoked("no phone shield is enrolled with this device id")
        return raw, _load_json(raw, "device")

    def _active(self, device_id: str) -> dict[str, Any]:
        _, dev = self._device(device_id)
        if dev["state"] == DeviceState.REVOKED.value:
            raise DeviceRevoked()
        if self.store.get_counter(self._k("fail", device_id)) >= self.settings.max_sign_failures:
            raise DeviceLocked()
        return dev

    def device_for(self, customer_id: str) -> str | None:
        """The device id of the customer's phone shield, if any."""
        raw = self.store.get(self._k("cust", customer_id))
        return raw.decode() if raw is not None else None

    def certificate(self, device_id: str) -> Certificate:
        _, dev = self._device(device_id)
        from ebank_auth.crypto.x509 import load_certificate

        return load_certificate(b64d(dev["certificate"], "certificate"))

    def status(self, device_id: str) -> DeviceStatus:
        _, dev = self._device(device_id)
        failures = self.store.get_counter(self._k("fail", device_id))
        state = DeviceState(dev["state"])
        if state is DeviceState.ACTIVE and failures >= self.settings.max_sign_failures:
            state = DeviceState.LOCKED
        return DeviceStatus(
            device_id,
            dev["customer_id"],
            state,
            failures,
            self.settings.max_sign_failures,
            self.certificate(device_id).serial_number,
            dev["security_level"],
            dev["identity_method"],
            float(dev["enrolled_at"]),
        )

    def unlock(self, device_id: str) -> None:
        """Bank staff: clear the failed-signature count (after checking the customer)."""
        self._device(device_id)
        self.store.reset_counter(self._k("fail", device_id))

    def revoke(self, device_id: str, reason: str = "") -> None:
        """Delete the server share (no signature is possible from now on) and list the
        certificate for the CRL.  Idempotent."""
        old, dev = self._device(device_id)
        self.store.delete(self._k("share", device_id))
        if dev["state"] != DeviceState.REVOKED.value:
            dev["state"] = DeviceState.REVOKED.value
            dev["revoked_at"] = self.clock()
            dev["revoked_reason"] = reason[:200]
            if self.store.compare_and_set(self._k("dev", device_id), old, _now_json(dev)):
                serial = self.certificate(device_id).serial_number
                self.store.append(self._k("revoked"), format(serial, "x").encode())
        pending = self.store.get(self._k("pending", device_id))
        if pending is not None:
            self.store.delete(self._k("pending", device_id))
        _log.info("phone-shield device %s revoked", device_id)

    def revoked_serials(self) -> list[int]:
        return [int(r.data.decode(), 16) for r in self.store.read_log(self._k("revoked"))]

    def crl(self, *, valid_days: int = 7) -> CertificateRevocationList:
        """A CRL by the bank CA listing every revoked phone-shield certificate."""
        return self.ca.issue_crl(revoked=self.revoked_serials(), valid_days=valid_days)

    def _share(self, device_id: str) -> sm2_2p.ServerShare:
        blob = self.store.get(self._k("share", device_id))
        if blob is None:
            raise DeviceRevoked()
        raw = bytearray(self.sealer.open(blob, self._aad("share", device_id)))
        try:
            return sm2_2p.ServerShare.from_bytes(raw)
        finally:
            raw[:] = bytes(len(raw))

    def device_request(self, device_id: str, step: str, request: SignedRequest) -> dict[str, Any]:
        """Verify a device-signed request to ``/devices/<id>/<step>`` (any state but revoked)."""
        _, dev = self._device(device_id)
        if dev["state"] == DeviceState.REVOKED.value:
            raise DeviceRevoked()
        return self._verify_request(
            paths.device(device_id, step), request, device_id, b64d(dev["device_key"], "device key")
        )

    # ================================================================== signing
    def begin_signing(self, device_id: str, transaction: Transaction) -> SigningSession:
        """Bank app: record ``transaction`` and open a signing session on the device.  The
        server derives e from ``transaction.encode()`` itself."""
        if not isinstance(transaction, Transaction):
            raise EncodingError("begin_signing takes the canonical Transaction (never a digest)")
        self._active(device_id)
        share = self._share(device_id)
        challenge, state = sm2_2p.server_sign_begin(share, transaction.encode())
        sid = state.session_id.hex()
        now = self.clock()
        expires = now + self.settings.session_ttl
        rec = {
            "device_id": device_id,
            "tx": b64e(transaction.encode()),
            "status": SessionStatus.PENDING.value,
            "created_at": now,
            "expires_at": expires,
        }
        ttl = self.settings.session_ttl
        self.store.put_if_absent(self._k("sign", sid), _now_json(rec), ttl=ttl + 600)
        self.store.delete(self._k("pending", device_id))
        self.store.put_if_absent(self._k("pending", device_id), sid.encode(), ttl=ttl)
        return SigningSession(sid, device_id, transaction, challenge.to_bytes(), expires)

    def _session(self, sid: str) -> tuple[bytes, dict[str, Any]]:
        if (
            not isinstance(sid, str)
            or len(sid) != 64
            or any(c not in "0123456789abcdef" for c in sid)
        ):
            raise EncodingError("a session id is 64 lowercase hex characters")
        raw = self.store.get(self._k("sign", sid))
        if raw is None:
            raise SigningRefused()
        return raw, _load_json(raw, "signing session")

    def pending(self, device_id: str, request: SignedRequest) -> dict[str, Any] | None:
        """Phone: the open signing session (transaction + challenge), or None."""
        self.device_request(device_id, "pending", request)
        raw = self.store.get(self._k("pending", device_id))
        if raw is None:
            return None
        sid = raw.decode()
        try:
            _, rec = self._session(sid)
        except SigningRefused:
            return None
        if rec["status"] != SessionStatus.PENDING.value or self.clock() >= float(rec["expires_at"]):
            return None
        tx = Transaction.decode(b64d(rec["tx"], "transaction"))
        return {
            "session_id": sid,
            "challenge": b64e(sm2_2p.SignChallenge(bytes.fromhex(sid)).to_bytes()),
            "transaction": tx.to_dict(),
            "expires_at": rec["expires_at"],
        }

    def sign_step(self, session_id: str, request: SignedRequest) -> bytes:
        """Phone (device-signed ``{"sign_request"}``): count the attempt (before anything is
        checked), consume the session, check the phone's proof against the recorded
        transaction's e, answer with the server's half (``SignResponse`` bytes)."""
        old, rec = self._session(session_id)
        device_id = rec["device_id"]
        self._active(device_id)
        _, dev = self._device(device_id)
        payload = self._verify_request(
            paths.session(session_id, "sign"),
            request,
            device_id,
            b64d(dev["device_key"], "device key"),
        )
        sign_request = sm2_2p.SignRequest.from_bytes(
            b64d(payload.get("sign_request"), "sign_request")
        )  # a malformed message is refused before anything is counted or consumed
        attempt = self.store.incr_bounded(
            self._k("fail", device_id), self.settings.max_sign_failures
        )
        if not attempt.allowed:
            raise DeviceLocked()
        if rec["status"] != SessionStatus.PENDING.value or self.clock() >= float(rec["expires_at"]):
            raise SigningRefused(
                "this signing session was already answered or expired: start a new confirmation",
                rec["status"],
            )
        new = dict(rec, status=SessionStatus.ANSWERED.value)
        if not self.store.compare_and_set(
            self._k("sign", session_id), old, _now_json(new), ttl=self.settings.session_ttl + 600
        ):
            raise SigningRefused(
                "this signing session was already answered", SessionStatus.ANSWERED
            )
        self.store.delete(self._k("pending", device_id))
        share = self._share(device_id)
        tx_bytes = b64d(rec["tx"], "transaction")
        state = sm2_2p.ServerSignState(
            share, bytes.fromhex(session_id), sm2.compute_e(share.public_key, tx_bytes)
        )
        try:
            return sm2_2p.server_sign_complete(state, sign_request).to_bytes()
        except (TwoPartyError, EncodingError):
            failed = dict(new, status=SessionStatus.FAILED.value)
            self.store.compare_and_set(
                self._k("sign", session_id), _now_json(new), _now_json(failed), ttl=600
            )
            raise
        finally:
            share.wipe()

    def sign_result(self, session_id: str, request: SignedRequest) -> SessionStatus:
        """Phone (device-signed ``{"signature"}`` or ``{"outcome": "rejected"|"failed"}``)."""
        old, rec = self._session(session_id)
        device_id = rec["device_id"]
        _, dev = self._device(device_id)
        payload = self._verify_request(
            paths.session(session_id, "result"),
            request,
            device_id,
            b64d(dev["device_key"], "device key"),
        )
        status = SessionStatus(rec["status"])
        outcome = payload.get("outcome")
        if outcome == "rejected" and status is SessionStatus.PENDING:
            new_status = SessionStatus.REJECTED
        elif status is not SessionStatus.ANSWERED:
            raise SigningRefused("this signing session is not waiting for a signature", status)
        elif outcome == "failed":
            new_status = SessionStatus.FAILED
        else:
            signature = b64d(payload.get("signature"), "signature")
            joint = sm2.public_key_from_bytes(bytes.fromhex(dev["public_key"]))
            try:
                joint.verify(signature, b64d(rec["tx"], "transaction"))
                new_status = SessionStatus.SIGNED
            except InvalidSignature:
                new_status = SessionStatus.FAILED
            if new_status is SessionStatus.SIGNED:
                rec["signature"] = b64e(signature)
        new = dict(rec, status=new_status.value)
        if not self.store.compare_and_set(
            self._k("sign", session_id), old, _now_json(new), ttl=600
        ):
            raise SigningRefused("this signing session changed meanwhile", status)
        if new_status is SessionStatus.SIGNED:
            self.store.reset_counter(self._k("fail", device_id))
        if new_status is SessionStatus.REJECTED:
            self.store.delete(self._k("pending", device_id))
        return new_status

    def signing_result(self, session_id: str) -> SigningResult:
        """Bank app: the session's outcome.  A signed session is taken out once (consume):
        the verified DER signature over ``transaction.encode()``; pending/answered sessions are
        returned as they are; rejected/failed ones raise :class:`SigningRefused`."""
        old, rec = self._session(session_id)
        status = SessionStatus(rec["status"])
        tx = Transaction.decode(b64d(rec["tx"], "transaction"))
        cert = self.certificate(rec["device_id"])
        if status in (SessionStatus.PENDING, SessionStatus.ANSWERED):
            return SigningResult(session_id, status, tx, None, cert)
        if status is not SessionStatus.SIGNED:
            raise SigningRefused(
                f"the confirmation was not signed ({status.value}): start a new one", status
            )
        if not self.store.compare_and_set(self._k("sign", session_id), old, None):
            raise SigningRefused("this signature was already taken", status)
        return SigningResult(session_id, status, tx, b64d(rec["signature"], "signature"), cert)

    # ================================================================== decryption
    def begin_decryption(self, device_id: str) -> str:
        """Bank app: allow one two-party decryption by the device; returns the session id."""
        self._active(device_id)
        sid = _new_id()
        self.store.put_if_absent(
            self._k("dec", sid), device_id.encode(), ttl=self.settings.session_ttl
        )
        return sid

    def decrypt_step(self, session_id: str, request: SignedRequest) -> bytes:
        """Phone (device-signed ``{"decrypt_request"}``): one answer per session (consumed)."""
        raw = self.store.get(self._k("dec", _check_id(session_id, "session id")))
        if raw is None:
            raise SigningRefused("this decryption session is unknown, expired or used")
        device_id = raw.decode()
        self._active(device_id)
        _, dev = self._device(device_id)
        payload = self._verify_request(
            paths.session(session_id, "decrypt"),
            request,
            device_id,
            b64d(dev["device_key"], "device key"),
        )
        if self.store.consume(self._k("dec", session_id)) is None:
            raise SigningRefused("this decryption session was already used")
        share = self._share(device_id)
        try:
            req = sm2_2p.DecryptRequest.from_bytes(
                b64d(payload.get("decrypt_request"), "decrypt_request")
            )
            return sm2_2p.server_decrypt(share, req).to_bytes()
        finally:
            share.wipe()


def _name_der(subject: str) -> bytes:
    from ebank_auth.crypto.x509.names import build_name

    return bytes(build_name(subject).dump())
