"""The software phone: enrols a phone shield with a bank and confirms transactions.

It speaks the HTTP JSON contract of :mod:`ebank_auth.phone_shield.http` through a
:class:`Transport` (:class:`HttpTransport` over the network; :class:`ApiTransport` calls a
:class:`~ebank_auth.phone_shield.http.PhoneShieldApi` in-process, for unit tests).  Its state —
server, device id, request counter, certificate and the :class:`SoftwareKeystore` data — is
one JSON file, ``phone-state.json``, replaced atomically (temporary file, ``fsync``,
``os.replace``, directory ``fsync``; mode 0600).  The request counter is saved *before* each
request is sent, so a crash can skip a counter value but never reuse one.

Confirming: :meth:`SoftwarePhone.pending` fetches the bank's open confirmation;
:meth:`SoftwarePhone.confirm` shows the transaction (``display``), asks the customer
(``decide``: approve / reject), unlocks the share with the PIN (or the biometric stand-in),
runs the one round trip and sends the verified signature — or reports the failure, which the
bank counts.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from ebank_auth import errors
from ebank_auth.crypto import sm2, sm2_2p
from ebank_auth.crypto.keys import SignatureAlgorithm
from ebank_auth.crypto.x509 import Certificate, build_csr, load_certificate
from ebank_auth.errors import (
    ConfigurationError,
    EbankAuthError,
    EncodingError,
    JointSignatureRefused,
    PhoneShieldError,
    ServiceUnavailable,
    StoreError,
    UnsupportedAlgorithm,
)
from ebank_auth.phone_shield.emulator.attestation_ca import (
    DeviceClaims,
    SoftwareAttestationAuthority,
)
from ebank_auth.phone_shield.emulator.keystore import BiometricPrompt, KdfCost, SoftwareKeystore
from ebank_auth.phone_shield.protocol import (
    API_PREFIX,
    EnrolmentLink,
    SignedRequest,
    b64d,
    b64e,
    envelope_mac_key,
    reason_from,
    request_bytes,
    seal_envelope,
)
from ebank_auth.transaction import Transaction

__all__ = [
    "STATE_FILE",
    "ApiTransport",
    "EnrolmentOffer",
    "HttpTransport",
    "PendingConfirmation",
    "SoftwarePhone",
    "Transport",
]

STATE_FILE: Final = "phone-state.json"
STATE_VERSION: Final = 1


class Transport(Protocol):
    """One JSON request to the bank's phone-shield API; raises the bank's typed error."""

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]: ...


def _raise_for(status: int, doc: object) -> dict[str, Any]:
    if isinstance(doc, dict) and doc.get("ok") is True:
        return doc
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict):
        raise ServiceUnavailable(f"the bank answered HTTP {status} without a phone-shield answer")
    name, message = str(err.get("type", "")), str(err.get("message", ""))
    cls = getattr(errors, name, None) if name in errors.__all__ else None
    if not (isinstance(cls, type) and issubclass(cls, EbankAuthError)):
        cls = PhoneShieldError
    reason = reason_from(err.get("reason"))
    try:
        exc = cls(message, reason)  # type: ignore[call-arg]
    except TypeError:
        exc = cls(message)
    raise exc


class ApiTransport:
    """Calls a :class:`~ebank_auth.phone_shield.http.PhoneShieldApi` in this process."""

    def __init__(self, api: Any) -> None:
        self.api = api

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        raw = json.dumps(body).encode() if body is not None else b""
        status, doc = self.api.handle(method, path, raw)
        return _raise_for(status, json.loads(json.dumps(doc)))


class HttpTransport:
    """JSON over HTTP(S) to ``base_url`` (the ``server`` of the enrolment link)."""

    def __init__(self, base_url: str, *, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigurationError("the bank's URL must be http:// or https://")
        req = urllib.request.Request(  # noqa: S310 - scheme checked above
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise ServiceUnavailable(f"cannot reach the bank at {self.base_url}: {exc}") from None
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ServiceUnavailable(f"the bank answered HTTP {status} without JSON") from None
        return _raise_for(status, doc)


@dataclass(frozen=True)
class EnrolmentOffer:
    """What the phone shows after opening the link: compare the reference code."""

    link: EnrolmentLink
    reference_code: str
    subject: str
    attestation_challenge: bytes
    enrolment_certificate: Certificate


@dataclass(frozen=True)
class PendingConfirmation:
    session_id: str
    transaction: Transaction
    challenge: bytes
    expires_at: float


class _StateFile:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._memory: dict[str, Any] = {}

    def load(self) -> dict[str, Any]:
        if self.directory is None:
            copy: dict[str, Any] = json.loads(json.dumps(self._memory))
            return copy
        path = self.directory / STATE_FILE
        if not path.exists():
            return {}
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise StoreError(
                f"{path} is damaged: restore it or delete it and enrol again"
            ) from None
        if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
            raise StoreError(f"{path} is not a version {STATE_VERSION} phone state")
        return doc

    def save(self, doc: dict[str, Any]) -> None:
        doc = {**doc, "version": STATE_VERSION}
        if self.directory is None:
            self._memory = json.loads(json.dumps(doc))
            return
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".phone-state.", dir=self.directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.directory / STATE_FILE)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class _JointKey:
    """The phone's side of the CSR signature: a SigningKey whose sign_with runs the two-party
    protocol with the bank (``pop/begin`` then ``pop/complete``)."""

    def __init__(self, phone: SoftwarePhone, eid: str, share: sm2_2p.PhoneShare) -> None:
        self.phone, self.eid, self.share = phone, eid, share

    def public_key(self) -> sm2.SM2PublicKey:
        return self.share.public_key

    def sign_with(self, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
        if algorithm is not SignatureAlgorithm.SM2_SM3:
            raise UnsupportedAlgorithm("the joint key signs with SM2_SM3 only")
        path = f"{API_PREFIX}/enrolments/{self.eid}/pop/"
        r = self.phone._signed("POST", path + "begin", {"csr_info": b64e(data)})
        challenge = sm2_2p.SignChallenge.from_bytes(b64d(r["sign_challenge"], "sign_challenge"))
        request, state = sm2_2p.phone_sign_begin(self.share, challenge, data)
        r = self.phone._signed(
            "POST", path + "complete", {"sign_request": b64e(request.to_bytes())}
        )
        return sm2_2p.phone_sign_complete(
            state, sm2_2p.SignResponse.from_bytes(b64d(r["sign_response"], "sign_response"))
        )


class SoftwarePhone:
    """A phone with the bank's app (see the module docstring).

    ``state_dir=None`` keeps the state in memory.  ``authority`` is the phone's attestation
    "hardware" (default: one kept in ``state_dir/attestation-ca.pem``); ``claims`` what its
    attestation says; ``transport`` makes the transport for a server URL (default HTTP)."""

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        authority: SoftwareAttestationAuthority | None = None,
        claims: DeviceClaims | None = None,
        transport: Callable[[str], Transport] | None = None,
        kdf_cost: KdfCost | None = None,
        bank_root: Certificate | None = None,
    ) -> None:
        self._file = _StateFile(state_dir)
        if authority is None:
            authority = (
                SoftwareAttestationAuthority.load_or_create(state_dir)
                if state_dir is not None
                else SoftwareAttestationAuthority.create()
            )
        self.authority = authority
        self._transport_factory = transport or HttpTransport
        self._lock = threading.RLock()
        self.state = self._file.load()
        self.keystore = SoftwareKeystore(
            authority, self.state.get("keystore"), claims=claims, cost=kdf_cost
        )
        self.bank_root = bank_root

    # ------------------------------------------------------------------ plumbing
    def _save(self) -> None:
        self.state["keystore"] = self.keystore.data
        self._file.save(self.state)

    @property
    def enrolled(self) -> bool:
        return bool(self.state.get("certificate"))

    @property
    def device_id(self) -> str:
        device_id = self.state.get("device_id")
        if not isinstance(device_id, str):
            raise ConfigurationError("this phone is not enrolled: run `ebank-auth phone enrol`")
        return device_id

    def _transport(self) -> Transport:
        server = self.state.get("server")
        if not isinstance(server, str):
            raise ConfigurationError("this phone is not enrolled: run `ebank-auth phone enrol`")
        return self._transport_factory(server)

    def _signed(self, method: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            counter = int(self.state.get("counter", 0)) + 1
            self.state["counter"] = counter
            self._save()  # before sending: a counter is never used twice
            body = json.dumps(payload, sort_keys=True).encode("utf-8")
            device_id = self.device_id
            sig = self.keystore.sign_with_device_key(request_bytes(path, device_id, counter, body))
        req = SignedRequest(device_id, counter, body, sig)
        return self._transport().request(method, path, req.to_json())

    @property
    def certificate(self) -> Certificate:
        raw = self.state.get("certificate")
        if not isinstance(raw, str):
            raise ConfigurationError("this phone is not enrolled: run `ebank-auth phone enrol`")
        return load_certificate(b64d(raw, "certificate"))

    # ------------------------------------------------------------------ enrolment
    def open_link(self, link: str) -> EnrolmentOffer:
        """ "Scan" the QR code: fetch what the bank shows for this enrolment."""
        parsed = EnrolmentLink.parse(link)
        t = self._transport_factory(parsed.server)
        doc = t.request(
            "GET", f"{API_PREFIX}/enrolments/{parsed.enrolment_id}?s={b64e(parsed.secret)}"
        )
        info = doc["enrolment"]
        cert = load_certificate(b64d(info["enrolment_certificate"], "enrolment certificate"))
        if self.bank_root is not None:
            cert.verify_signed_by(self.bank_root)
        if not isinstance(cert.public_key, sm2.SM2PublicKey):
            raise EncodingError("the bank's enrolment certificate must hold an SM2 key")
        return EnrolmentOffer(
            parsed,
            str(info["reference_code"]),
            str(info["subject"]),
            b64d(info["attestation_challenge"], "attestation challenge"),
            cert,
        )

    def enrol(self, link: str, authorisation_code: str, pin: str) -> Certificate:
        """Enrol with the bank: attestation, key generation, CSR in its envelope, certificate.
        ``pin`` wraps the phone's share; it is never sent."""
        offer = self.open_link(link)
        eid = offer.link.enrolment_id
        t = self._transport_factory(offer.link.server)
        self.keystore.wipe()
        chain = self.keystore.generate_device_key(offer.attestation_challenge)
        kreq, kstate = sm2_2p.phone_keygen_begin()
        r = t.request(
            "POST",
            f"{API_PREFIX}/enrolments/{eid}/attest",
            {
                "link_secret": b64e(offer.link.secret),
                "authorisation_code": authorisation_code,
                "attestation_chain": [b64e(c) for c in chain],
                "keygen_request": b64e(kreq.to_bytes()),
            },
        )
        self.state = {
            "server": offer.link.server,
            "device_id": r["device_id"],
            "counter": 0,
            "enrolment_id": eid,
        }
        self._save()
        confirm, share = sm2_2p.phone_keygen_complete(
            kstate, sm2_2p.KeygenResponse.from_bytes(b64d(r["keygen_response"], "keygen_response"))
        )
        r = self._signed(
            "POST",
            f"{API_PREFIX}/enrolments/{eid}/keygen",
            {"keygen_confirm": b64e(confirm.to_bytes())},
        )
        if r.get("public_key") != share.public_key.to_bytes().hex():
            raise PhoneShieldError("the bank reports another joint key: enrolment stopped")
        csr = build_csr(offer.subject, _JointKey(self, eid, share), key_usage=["digital_signature"])
        mac_key = envelope_mac_key(offer.link.secret, eid, authorisation_code)
        enrolment_key = offer.enrolment_certificate.public_key
        assert isinstance(enrolment_key, sm2.SM2PublicKey)
        envelope = seal_envelope(csr.to_der(), enrolment_key, mac_key, eid)
        r = self._signed(
            "POST", f"{API_PREFIX}/enrolments/{eid}/finish", {"envelope": b64e(envelope)}
        )
        cert = load_certificate(b64d(r["certificate"], "certificate"))
        if cert.spki_der != csr.spki_der:
            raise PhoneShieldError("the bank issued a certificate for another key")
        self.keystore.store_share(share, pin)
        share.wipe()
        self.state.update(
            device_id=r["device_id"],
            certificate=r["certificate"],
            chain=r["chain"],
            subject=offer.subject,
        )
        self._save()
        return cert

    # ------------------------------------------------------------------ confirmations
    def pending(self) -> PendingConfirmation | None:
        r = self._signed("POST", f"{API_PREFIX}/devices/{self.device_id}/pending", {})
        s = r.get("session")
        if s is None:
            return None
        return PendingConfirmation(
            str(s["session_id"]),
            Transaction.from_dict(s["transaction"]),
            b64d(s["challenge"], "challenge"),
            float(s["expires_at"]),
        )

    def reject(self, pending: PendingConfirmation) -> str:
        r = self._signed(
            "POST", f"{API_PREFIX}/sessions/{pending.session_id}/result", {"outcome": "rejected"}
        )
        return str(r["status"])

    def confirm(
        self,
        pending: PendingConfirmation,
        *,
        pin: str | None = None,
        biometric: BiometricPrompt | None = None,
        decide: Callable[[str], bool] | None = None,
        lang: str = "zh",
    ) -> str:
        """Show the transaction, ask ``decide(text)`` (default: approve), unlock the share and
        sign.  Returns the bank's status (``signed``; ``rejected`` when declined).  A wrong
        PIN raises :class:`~ebank_auth.errors.JointSignatureRefused` (and the bank counts it)."""
        text = pending.transaction.display_text(lang)
        if decide is not None and not decide(text):
            return self.reject(pending)
        if biometric is not None:
            share = self.keystore.load_share_biometric(biometric, "Confirm the transaction")
        elif pin is not None:
            share = self.keystore.load_share(pin)
        else:
            raise ConfigurationError("give the PIN (or enable the biometric unlock)")
        message = pending.transaction.encode()
        try:
            request, state = sm2_2p.phone_sign_begin(
                share, sm2_2p.SignChallenge.from_bytes(pending.challenge), message
            )
            path = f"{API_PREFIX}/sessions/{pending.session_id}/"
            r = self._signed("POST", path + "sign", {"sign_request": b64e(request.to_bytes())})
            try:
                signature = sm2_2p.phone_sign_complete(
                    state, sm2_2p.SignResponse.from_bytes(b64d(r["sign_response"], "sign_response"))
                )
            except JointSignatureRefused:
                self._signed("POST", path + "result", {"outcome": "failed"})
                raise JointSignatureRefused(
                    "the signature did not complete: the PIN is probably wrong (the bank counts "
                    "failed attempts and locks the phone shield at its limit)"
                ) from None
            r = self._signed("POST", path + "result", {"signature": b64e(signature)})
            return str(r["status"])
        finally:
            share.wipe()

    def decrypt(self, session_id: str, ciphertext: bytes, pin: str) -> bytes:
        """Two-party decryption of a GM/T 0009 ciphertext for the bank-opened session."""
        share = self.keystore.load_share(pin)
        try:
            request, state = sm2_2p.phone_decrypt_begin(share, ciphertext)
            r = self._signed(
                "POST",
                f"{API_PREFIX}/sessions/{session_id}/decrypt",
                {"decrypt_request": b64e(request.to_bytes())},
            )
            return sm2_2p.phone_decrypt_complete(
                state,
                sm2_2p.DecryptResponse.from_bytes(b64d(r["decrypt_response"], "decrypt_response")),
            )
        finally:
            share.wipe()

    def status(self) -> dict[str, Any]:
        r = self._signed("POST", f"{API_PREFIX}/devices/{self.device_id}/status", {})
        status: dict[str, Any] = r["status"]
        return status

    def revoke(self) -> None:
        """Ask the bank to revoke this phone shield, then forget the share and the key."""
        self._signed("POST", f"{API_PREFIX}/devices/{self.device_id}/revoke", {})
        self.keystore.wipe()
        self.state = {"revoked_device_id": self.state.get("device_id")}
        self._save()
