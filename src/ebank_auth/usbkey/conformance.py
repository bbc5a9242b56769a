"""Standard conformance checks for any USB Key behind the :class:`~ebank_auth.usbkey.token.Token`
protocol.

``run_conformance(token, user_pin, admin_pin)`` drives a token opened with
:func:`~ebank_auth.usbkey.connect.open_token` (or any other :class:`Token` backend) and
returns a :class:`ConformanceReport`: one :class:`CheckResult` per check, each saying which
requirement it covers, what it does and what happened::

    with open_token() as token:
        report = run_conformance(token, user_pin, admin_pin)

Every check that can be made through the protocol is made through it, so any backend is
held to the same contract.  The checks that need our own APDU wire — PIN replay,
undocumented instructions, display binding and robustness against malformed APDUs — run
only when the token is our :class:`~ebank_auth.usbkey.session.TokenSession` (on a second
session over the same connection, recording the APDUs); for another backend they report
``skip`` with the reason.

The run **changes the token**: it spends every user-PIN try (then unblocks with
the admin PIN, setting the user PIN back to the one given), and creates key
containers named ``conformance`` and ``conformance-rsa``.  Use a test token.
The reject check needs the customer to press *reject*: the ``prompt`` callback
tells the operator when (the software token's default simulated customer
rejects any transaction whose screen shows ``REJECT``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Any

from ebank_auth.confirmation import verify_confirmation
from ebank_auth.crypto import rsa, sm2, sm3, x509
from ebank_auth.errors import (
    ApduError,
    ConfirmationRejected,
    EbankAuthError,
    InvalidSignature,
    KeyAlreadyExists,
    NotSupportedByToken,
    PinIncorrect,
    PinLocked,
    PinPolicyError,
    SecureChannelError,
    SecurityStatusNotSatisfied,
    TokenError,
    TokenNotGenuine,
)
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey import tlv
from ebank_auth.usbkey.apdu import CommandApdu, ResponseApdu, StatusWord
from ebank_auth.usbkey.attestation import TrustConfig
from ebank_auth.usbkey.key_attestation import verify_key_attestation
from ebank_auth.usbkey.protocol import (
    CLA_PROPRIETARY,
    CLA_SECURE,
    MAX_RETRY_LIMIT,
    Algorithm,
    ConfirmStep,
    ContainerUsage,
    DeviceCapability,
    Ins,
    PinRef,
    Tag,
    check_pin_complexity,
)
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.token import Token
from ebank_auth.usbkey.transport.base import Connection

__all__ = [
    "CheckResult",
    "CheckStatus",
    "ConformanceReport",
    "RecordingConnection",
    "check_key_attestation",
    "run_conformance",
]

CONTAINER = "conformance"
RSA_CONTAINER = "conformance-rsa"


class CheckStatus(str, Enum):
    PASS = "pass"  # noqa: S105 - a status, not a secret
    FAIL = "fail"
    SKIP = "skip"
    #: the token or its backend has no such function (NotSupportedByToken): reported, and
    #: stated in the report's capabilities, but not a failure of the token
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class CheckResult:
    """One check: ``id``, ``title``, requirement IDs, status, what it checks and what happened."""

    id: str
    title: str
    requirements: tuple[str, ...]
    status: CheckStatus
    explanation: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "requirements": list(self.requirements),
            "status": self.status.value,
            "explanation": self.explanation,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ConformanceReport:
    """All checks of one run; ``passed`` when none failed."""

    serial: str
    firmware_version: str
    reader: str
    checks: tuple[CheckResult, ...] = field(default=())
    #: the token can show a transaction and sign what it showed (False: no display, so its
    #: signatures must never count as a customer's confirmation)
    can_confirm: bool = True

    @property
    def passed(self) -> bool:
        return all(c.status is not CheckStatus.FAIL for c in self.checks)

    @property
    def unavailable(self) -> tuple[CheckResult, ...]:
        """The checks of functions this token or backend does not have."""
        return tuple(c for c in self.checks if c.status is CheckStatus.UNAVAILABLE)

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "firmware_version": self.firmware_version,
            "reader": self.reader,
            "passed": self.passed,
            "can_confirm": self.can_confirm,
            "unavailable": [c.id for c in self.unavailable],
            "checks": [c.to_json() for c in self.checks],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False)


class RecordingConnection(Connection):
    """Passes APDUs through and records ``(command, response)`` pairs, for replay checks."""

    def __init__(self, inner: Connection) -> None:
        self.inner = inner
        self.log: list[tuple[bytes, bytes]] = []

    @property
    def description(self) -> str:
        return self.inner.description

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def transmit(self, apdu: bytes) -> bytes:
        resp = self.inner.transmit(apdu)
        self.log.append((bytes(apdu), bytes(resp)))
        return resp

    def close(self) -> None:
        self.inner.close()


class _Failed(Exception):
    pass


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise _Failed(message)


@contextmanager
def _raises(
    kind: type[BaseException] | tuple[type[BaseException], ...], what: str
) -> Iterator[None]:
    try:
        yield
    except kind:
        return
    except EbankAuthError as exc:
        raise _Failed(f"{what}: expected a refusal of type {kind}, got {exc!r}") from None
    raise _Failed(f"{what}: the token accepted it")


def _sample_tx(memo: str, amount: str = "88.88") -> Transaction:
    return Transaction(
        tx_id="CONF" + datetime.now(timezone.utc).strftime("%H%M%S%f"),
        tx_type="transfer",
        payer_account="6222000011112222",
        payee_account="6222000099998888",
        payee_name="Conformance Test",
        amount=Decimal(amount),
        currency="CNY",
        timestamp=datetime.now(timezone.utc).replace(microsecond=0),
        memo=memo,
    )


def check_key_attestation(token: Token, trust: TrustConfig, container: str) -> str:
    """The key-attestation check on any :class:`Token` (needs the user PIN verified and an SM2
    transaction key in ``container``): the attestation chains to a trusted manufacturer root
    through an attestation key other than the device key, attests exactly the container's
    public key as a transaction key with display+button confirmation; and GENERATE KEY
    refuses to replace that key without an explicit, admin-authorised request."""
    if not trust.roots:
        raise _Skip("no manufacturer root configured: key attestation cannot be checked")
    attestation = token.attest_key(container)
    try:
        facts = verify_key_attestation(attestation.to_pem(), trust)
    except TokenNotGenuine as exc:
        raise _Failed(f"the key attestation does not verify: {exc.message}") from None
    _expect(facts.container == container, "the attestation names another container")
    _expect(
        facts.public_key_der == token.public_key(container).public_key_der,
        "the attestation certifies another public key than the container's",
    )
    _expect(facts.usage is ContainerUsage.TRANSACTION, "a transaction key is not attested as one")
    _expect(
        facts.is_transaction_key, "the transaction key is not attested with enforced confirmation"
    )
    _expect(facts.token_serial == token.device_info().serial, "the attestation names another token")
    report = token.attestation
    if report is not None:
        _expect(
            facts.attestation_ca_subject != report.device_certificate_subject,
            "the attestation key is the device (secure-channel) key",
        )
    with _raises(KeyAlreadyExists, "GENERATE KEY over an existing key with the user PIN only"):
        token.generate_key(container, Algorithm.SM2, ContainerUsage.LOGIN)
    _expect(
        token.public_key(container).public_key_der == facts.public_key_der,
        "a refused GENERATE KEY changed the key",
    )
    return (
        f"key attestation chains to {facts.root_subject} via {facts.attestation_ca_subject}: "
        "transaction key, generated on the token, not exportable, display+button enforced; "
        "GENERATE KEY over it without replacement + admin PIN refused, key unchanged"
    )


class _Runner:
    def __init__(
        self,
        token: Token,
        user_pin: str,
        admin_pin: str,
        prompt: Callable[[str], None],
        not_genuine: TokenNotGenuine | None,
        trust: TrustConfig,
    ) -> None:
        self.token = token
        self.trust = trust
        #: our APDU backend, when it is one: the wire checks need it
        self.session = token if isinstance(token, TokenSession) else None
        self.user_pin = user_pin
        self.admin_pin = admin_pin
        self.prompt = prompt
        self.not_genuine = not_genuine
        self.results: list[CheckResult] = []
        self.public_key: sm2.SM2PublicKey | None = None
        self.rec: RecordingConnection | None = None
        self.wire: TokenSession | None = None

    @property
    def s(self) -> Token:
        return self.token

    @property
    def w(self) -> TokenSession:
        assert self.wire is not None
        return self.wire

    @property
    def raw(self) -> Connection:
        """The unrecorded connection under the wire session (to send replays and junk)."""
        assert self.rec is not None
        return self.rec.inner

    def run(
        self,
        cid: str,
        title: str,
        reqs: tuple[str, ...],
        explanation: str,
        fn: Callable[[], str],
        wire: bool,
    ) -> bool:
        try:
            if wire:
                self.open_wire()
            elif self.session is not None and not self.session.secure:
                self.reopen()
            detail = fn()
            status = CheckStatus.PASS
        except _Skip as skip:
            detail, status = str(skip), CheckStatus.SKIP
        except NotSupportedByToken as exc:
            detail, status = f"not available: {exc.message}", CheckStatus.UNAVAILABLE
        except _Failed as exc:
            detail, status = str(exc), CheckStatus.FAIL
        except EbankAuthError as exc:
            detail, status = f"unexpected error: {exc.message}", CheckStatus.FAIL
        finally:
            if wire and self.wire is not None:
                self.close_wire()
        self.results.append(CheckResult(cid, title, reqs, status, explanation, detail))
        return status is CheckStatus.PASS

    def reopen(self) -> None:
        """A fresh secure channel for our session (the token drops one that saw bad input)."""
        assert self.session is not None
        self.session.select()
        self.session.open_secure_channel()

    def open_wire(self) -> None:
        """A second session of ours over the same connection, recording its APDUs.

        Its SELECT ends the main session on the token; :meth:`close_wire` reopens that."""
        if self.session is None:
            raise _Skip(
                f"needs the ebank-auth APDU protocol; this token is a "
                f"{type(self.token).__name__}, so the check is left to its backend's own tests"
            )
        self.rec = RecordingConnection(self.session.connection)
        self.wire = TokenSession.open(self.rec, self.session.trust)

    def close_wire(self) -> None:
        # not wire.close(): that would close the shared connection
        self.wire, self.rec = None, None
        self.reopen()

    # ------------------------------------------------------------------ checks
    def genuine(self) -> str:
        if self.not_genuine is not None:
            raise _Failed(self.not_genuine.message)
        opened = self.s.attestation
        try:
            report = self.s.attest()  # checked again, now
        except TokenNotGenuine as exc:
            raise _Failed(exc.message) from None
        if opened is None or not opened.genuine or not report.genuine:
            raise _Skip(f"no trust configured, not checked: {report.message}")
        _expect(report.serial == self.s.device_info().serial, "attested serial differs")
        return (
            f"device certificate {report.device_certificate_subject!r} chains to a trusted "
            f"manufacturer root; firmware {report.firmware_version} is on the signed allow-list; "
            "checked when the token was opened (before the secure channel) and again now"
        )

    def retry_limit(self) -> str:
        user = self.s.pin_status(PinRef.USER)
        admin = self.s.pin_status(PinRef.ADMIN)
        _expect(
            1 <= user.max_retries <= MAX_RETRY_LIMIT,
            f"user PIN retry limit is {user.max_retries}, above {MAX_RETRY_LIMIT}",
        )
        _expect(
            1 <= admin.max_retries <= MAX_RETRY_LIMIT,
            f"admin PIN retry limit is {admin.max_retries}, above {MAX_RETRY_LIMIT}",
        )
        self.s.verify_pin(self.user_pin)  # also resets the counter for the next check
        _expect(self.s.pin_status().remaining == user.max_retries, "counter not reset on success")
        return f"user PIN limit {user.max_retries}, admin PIN limit {admin.max_retries} (≤ 10)"

    def lockout(self) -> str:
        try:
            check_pin_complexity(self.user_pin)
        except PinPolicyError as exc:
            raise _Skip(
                f"the given user PIN cannot be set again by unblock ({exc.message}); "
                "lockout not exercised to avoid leaving the token locked"
            ) from None
        self.s.verify_pin(self.user_pin)
        limit = self.s.pin_status().max_retries
        wrong = "000000" if self.user_pin != "000000" else "000001"
        for i in range(1, limit + 1):
            try:
                self.s.verify_pin(wrong)
            except PinIncorrect as exc:
                _expect(
                    exc.remaining == limit - i,
                    f"after wrong PIN {i} the token reports {exc.remaining} tries left, "
                    f"expected {limit - i}",
                )
            except PinLocked:
                raise _Failed(f"locked after {i} wrong PINs, before the limit {limit}") from None
            else:
                raise _Failed("a wrong PIN was accepted")
            _expect(self.s.pin_status().remaining == limit - i, "PIN status disagrees")
        with _raises(PinLocked, "the correct PIN after lockout"):
            self.s.verify_pin(self.user_pin)
        with _raises((PinLocked, SecurityStatusNotSatisfied), "key generation while locked"):
            self.s.generate_key(CONTAINER, Algorithm.SM2)
        return f"exactly {limit} wrong PINs accepted; then the correct PIN and key use refused"

    def unblock(self) -> str:
        if self.s.pin_status().remaining != 0:
            raise _Skip("the PIN is not locked (lockout check skipped)")
        admin_before = self.s.pin_status(PinRef.ADMIN)
        self.s.unblock_pin(self.admin_pin, self.user_pin)
        self.s.verify_pin(self.user_pin)
        user = self.s.pin_status()
        _expect(user.remaining == user.max_retries, "user counter not reset by unblock")
        admin = self.s.pin_status(PinRef.ADMIN)
        _expect(admin.remaining == admin_before.max_retries, "admin counter not reset")
        return "admin PIN unblocked the user PIN and reset its counter; admin counter separate"

    def replay(self) -> str:
        assert self.rec is not None
        start = len(self.rec.log)
        self.w.verify_pin(self.user_pin)
        captured = [
            c
            for c, r in self.rec.log[start:]
            if len(c) > 4 and c[0] & 0xEF == CLA_SECURE and c[1] == Ins.VERIFY_PIN
        ]
        _expect(len(captured) == 1, "could not capture the PIN-verify APDU")
        apdu = captured[0]
        _expect(apdu[0] & 0xEF == CLA_SECURE, "the PIN was not sent inside the secure channel")
        _expect(self.user_pin.encode() not in apdu, "the PIN is visible in the APDU")
        resp = ResponseApdu.parse(self.raw.transmit(apdu))
        _expect(
            resp.sw != StatusWord.SUCCESS, "replaying the PIN APDU in the same session was accepted"
        )
        self.w.select()
        self.w.open_secure_channel()
        resp2 = ResponseApdu.parse(self.raw.transmit(apdu))
        _expect(
            resp2.sw != StatusWord.SUCCESS, "replaying the PIN APDU in a new session was accepted"
        )
        self.w.select()  # the token closes a channel that saw a bad counter
        self.w.open_secure_channel()
        with _raises(SecurityStatusNotSatisfied, "key generation after the replay"):
            self.w.generate_key(CONTAINER, Algorithm.SM2)
        status = self.w.pin_status()
        _expect(status.remaining == status.max_retries, "the replay changed the retry counter")
        return (
            f"PIN sent encrypted (CLA 84); replay refused with {resp.sw:04X} in the same "
            f"session and {resp2.sw:04X} in a new one; PIN not verified by the replay"
        )

    def keys(self) -> str:
        self.s.verify_pin(self.user_pin)
        self.s.verify_pin(self.admin_pin, PinRef.ADMIN)  # a re-run replaces its own test key
        # a token without a display can hold only keys that sign what the host sends
        usage = ContainerUsage.TRANSACTION if self.s.can_confirm else ContainerUsage.LOGIN
        info = self.s.generate_key(CONTAINER, Algorithm.SM2, usage, replace=True)
        again = self.s.public_key(CONTAINER)
        _expect(again.public_key_der == info.public_key_der, "exported public key differs")
        key = info.public_key()
        _expect(isinstance(key, sm2.SM2PublicKey), "the exported key is not an SM2 public key")
        assert isinstance(key, sm2.SM2PublicKey)
        self.public_key = key
        _expect(
            any(c.name == CONTAINER for c in self.s.list_containers()),
            "the new container is not listed",
        )
        return (
            f"SM2 {usage.name.lower()} key generated on the token; only the public key (SPKI) "
            "is exported"
        )

    def undocumented(self) -> str:
        self.w.verify_pin(self.user_pin)
        undocumented: list[str] = []
        known = {int(i) for i in Ins}
        for ins in range(256):
            if ins in known or ins in (0xC0, 0xA4):
                continue
            resp = ResponseApdu.parse(
                self.raw.transmit(CommandApdu(CLA_PROPRIETARY, ins, 0, 0).encode())
            )
            if resp.sw != StatusWord.INS_NOT_SUPPORTED or resp.data:
                undocumented.append(f"{ins:02X}->{resp.sw:04X}")
            try:
                body = self._secure_raw(ins)
            except SecureChannelError:
                undocumented.append(f"84 {ins:02X} broke the channel")
                self.w.select()
                self.w.open_secure_channel()
                self.w.verify_pin(self.user_pin)
                continue
            if body != (b"", StatusWord.INS_NOT_SUPPORTED):
                undocumented.append(f"84 {ins:02X}->{body[1]:04X}")
        _expect(not undocumented, "undocumented instructions answer: " + ", ".join(undocumented))
        return (
            f"all {256 - len(known) - 2} undocumented instructions (plain and secure, PIN "
            "verified) answer 6D00"
        )

    def key_attestation(self) -> str:
        if self.public_key is None:
            raise _Skip("no key was generated (key check failed)")
        self.s.verify_pin(self.user_pin)
        return check_key_attestation(self.s, self.trust, CONTAINER)

    def _secure_raw(self, ins: int) -> tuple[bytes, int]:
        channel = self.w._channel
        if channel is None:
            raise SecureChannelError()
        header = bytes((CLA_SECURE, ins, 0, 0))
        body, ctr = channel.wrap_command(header, b"")
        resp = ResponseApdu.parse(
            self.raw.transmit(CommandApdu(CLA_SECURE, ins, 0, 0, body, le=256).encode())
        )
        if resp.sw != StatusWord.SUCCESS:
            raise SecureChannelError()
        return channel.unwrap_response(header, resp.data, ctr)

    def signatures(self) -> str:
        key = self.public_key
        if key is None:
            raise _Skip("no key was generated (key check failed)")
        self.s.verify_pin(self.user_pin)
        if not self.s.can_confirm:
            return self._host_signatures(key)
        tx = _sample_tx("conformance approve")
        self.prompt("APPROVE the transaction now shown on the token (memo 'conformance approve')")
        result = self.s.confirm_and_sign(tx, CONTAINER)
        key.verify(result.signature, tx.encode(), uid=sm2.DEFAULT_UID)
        other = _sample_tx("conformance approve", "88.89").encode()
        with _raises(InvalidSignature, "verifying the signature over other bytes"):
            key.verify(result.signature, other, uid=sm2.DEFAULT_UID)
        # certificate path: issue a throw-away certificate, import, export, verify with it
        ca = x509.CertificateAuthority.create_root(
            "CN=Conformance Test CA", sm2.generate_private_key()
        )
        cert = ca.issue(f"CN={result.serial}", key)
        self.s.import_certificate(cert.to_der(), CONTAINER)
        exported = x509.load_certificate(self.s.export_certificate(CONTAINER))
        cert_key = exported.public_key
        _expect(isinstance(cert_key, sm2.SM2PublicKey), "exported certificate holds no SM2 key")
        assert isinstance(cert_key, sm2.SM2PublicKey)
        cert_key.verify(result.signature, result.signed_bytes, uid=sm2.DEFAULT_UID)
        _expect(result.serial == self.s.device_info().serial, "result serial differs")
        detail = "SM2 signature over the displayed bytes verifies with the exported public key "
        detail += "and certificate, and fails for other bytes"
        if DeviceCapability.RSA2048 in self.s.device_info().capabilities:
            self.s.verify_pin(self.admin_pin, PinRef.ADMIN)  # a re-run replaces its own RSA key
            info = self.s.generate_key(RSA_CONTAINER, Algorithm.RSA2048, replace=True)
            rkey = info.public_key()
            _expect(isinstance(rkey, rsa.RSAPublicKey), "not an RSA key")
            _expect(getattr(rkey, "key_size", 2048) >= 2048, "RSA key shorter than 2048 bits")
            self.prompt("APPROVE the transaction now shown on the token (RSA key)")
            rres = self.s.confirm_and_sign(tx, RSA_CONTAINER)
            verify_confirmation(rkey, rres.signature, tx, rsa_hashes=(rsa.Hash.SHA256,))
            detail += "; RSA-2048 (PKCS#1 v1.5 SHA-256) likewise"
        return detail

    def _host_signatures(self, key: sm2.SM2PublicKey) -> str:
        """A token without a display: its key signs what the host sends (a login challenge)."""
        challenge = b"conformance login challenge " + self.s.random(16)
        signature = self.s.sign_message(challenge, CONTAINER)
        key.verify(signature, challenge, uid=sm2.DEFAULT_UID)
        with _raises(InvalidSignature, "verifying the signature over other bytes"):
            key.verify(signature, challenge + b"!", uid=sm2.DEFAULT_UID)
        ca = x509.CertificateAuthority.create_root(
            "CN=Conformance Test CA", sm2.generate_private_key()
        )
        serial = self.s.device_info().serial
        self.s.import_certificate(ca.issue(f"CN={serial}", key).to_der(), CONTAINER)
        exported = x509.load_certificate(self.s.export_certificate(CONTAINER))
        cert_key = exported.public_key
        _expect(isinstance(cert_key, sm2.SM2PublicKey), "exported certificate holds no SM2 key")
        assert isinstance(cert_key, sm2.SM2PublicKey)
        cert_key.verify(signature, challenge, uid=sm2.DEFAULT_UID)
        return (
            "SM2 signature over a host challenge verifies with the exported public key and "
            "certificate, and fails for other bytes (no display: no transaction signature)"
        )

    def confirmation(self) -> str:
        if not self.s.can_confirm:
            raise NotSupportedByToken(
                "this token has no display and button: it cannot show a transaction or be "
                "refused on it, so its signatures never confirm a transaction (UK-6, UK-7)"
            )
        if self.public_key is None:
            raise _Skip("no key was generated (key check failed)")
        self.s.verify_pin(self.user_pin)
        tx = _sample_tx("conformance approve").encode()
        with _raises(TokenError, "digest signing with a transaction key"):
            self.s.sign_digest(sm3.digest(tx), CONTAINER)
        reject = _sample_tx("REJECT conformance")
        self.prompt("REJECT the transaction now shown on the token (memo 'REJECT conformance')")
        with _raises(ConfirmationRejected, "a transaction the customer rejected"):
            self.s.confirm_and_sign(reject, CONTAINER)
        return "transaction keys refuse raw digests; reject on the token honoured"

    def display_binding(self) -> str:
        if self.public_key is None:
            raise _Skip("no key was generated (key check failed)")
        self.w.verify_pin(self.user_pin)
        tx = _sample_tx("conformance approve").encode()
        with _raises(ApduError, "signing without displaying first"):
            self.w.sign_displayed(tx, CONTAINER)
        self.w.display_transaction(tx, CONTAINER)
        altered = _sample_tx("conformance approve", "99999.00").encode()
        with _raises(ApduError, "signing a transaction altered after display"):
            self.w.sign_displayed(altered, CONTAINER)
        with _raises(ApduError, "signing the original after an altered attempt"):
            self.w.sign_displayed(tx, CONTAINER)
        bad_format = tlv.build(
            [(Tag.CONTAINER, CONTAINER.encode()), (Tag.FORMAT, b"\x7f"), (Tag.TRANSACTION, tx)]
        )
        with _raises(ApduError, "an unknown transaction format"):
            self.w.transmit_secure(Ins.CONFIRM_AND_SIGN, bad_format, p1=ConfirmStep.DISPLAY)
        with _raises(ApduError, "a malformed transaction"):
            self.w.display_transaction(tx[:-1], CONTAINER)
        return (
            "no signature without display; altered-after-display, unknown format and malformed "
            "transactions refused"
        )

    def robustness(self) -> str:
        self.w.verify_pin(self.user_pin)
        before = self.w.pin_status()
        problems: list[str] = []

        def raw(apdu: bytes, want: int, what: str) -> None:
            resp = ResponseApdu.parse(self.raw.transmit(apdu))
            if resp.sw != want:
                problems.append(f"{what}: {resp.sw:04X} (want {want:04X})")

        raw(bytes((CLA_PROPRIETARY, 0x7E, 0, 0)), StatusWord.INS_NOT_SUPPORTED, "unknown INS")
        raw(bytes((0xA0, Ins.GET_DEVICE_INFO, 0, 0)), StatusWord.CLA_NOT_SUPPORTED, "unknown CLA")
        raw(
            bytes((CLA_PROPRIETARY, Ins.GET_DEVICE_INFO, 0, 0, 5, 1, 2)),
            StatusWord.WRONG_LENGTH,
            "Lc larger than the data",
        )
        raw(
            bytes((CLA_PROPRIETARY, Ins.GET_DEVICE_INFO, 0, 0, 0, 0x20, 0)) + bytes(0x2000),
            StatusWord.WRONG_LENGTH,
            "oversize data",
        )
        raw(
            bytes((CLA_PROPRIETARY, Ins.VERIFY_PIN, 0, 1, 6)) + b"000000",
            StatusWord.SM_DATA_OBJECTS_MISSING,
            "plain PIN",
        )
        for body, what in (
            (b"\xd1\x05ab", "truncated TLV"),
            (b"\xd1\x80", "indefinite TLV length"),
            (b"\xd1\x81\x05abcde", "non-minimal TLV length"),
            (b"\xd1\x04test\xd1\x04test", "duplicate TLV"),
        ):
            try:
                self.w.transmit_secure(Ins.GET_PUBLIC_KEY, body)
                problems.append(f"{what}: accepted")
            except ApduError as exc:
                if exc.sw != StatusWord.WRONG_DATA:
                    problems.append(f"{what}: {exc.sw:04X} (want 6A80)")
        self.w.verify_pin(self.user_pin)
        after = self.w.pin_status()
        _expect(before == after, "bad input changed the PIN state")
        _expect(not problems, "; ".join(problems))
        return (
            "unknown INS 6D00, unknown CLA 6E00, bad lengths and oversize data 6700, plain PIN "
            "6987, malformed TLV 6A80; state unchanged"
        )


class _Skip(Exception):
    pass


#: (id, title, requirement IDs, what it checks, method, needs our APDU wire)
_CHECKS: tuple[tuple[str, str, tuple[str, ...], str, str, bool], ...] = (
    (
        "genuine",
        "Device is genuine",
        ("UK-9",),
        "The device certificate must chain to a trusted manufacturer root and name the token's "
        "serial; the firmware version and hash must be on the manufacturer's signed "
        "allow-list (checked when the token is opened, before any PIN is sent, and again).",
        "genuine",
        False,
    ),
    (
        "retry-limit",
        "PIN retry limit at most 10",
        ("UK-3",),
        "Both PINs report a retry limit between 1 and 10; a correct PIN resets the counter.",
        "retry_limit",
        False,
    ),
    (
        "lockout",
        "Exact lockout",
        ("UK-3",),
        "Wrong PINs are counted down one by one; after exactly `limit` wrong PINs the token "
        "locks, refuses even the correct PIN and refuses key operations.",
        "lockout",
        False,
    ),
    (
        "unblock",
        "Unblock with the admin PIN",
        ("UK-3",),
        "Only the admin (SO) PIN, with its own counter, unblocks the user PIN and resets its "
        "counter.",
        "unblock",
        False,
    ),
    (
        "pin-replay",
        "PIN encrypted in transit, not replayable",
        ("UK-5", "AU-13"),
        "The PIN-verify APDU is captured: it must be inside the secure channel (no PIN visible) "
        "and replaying it — in the same or a new session — must be refused without verifying.",
        "replay",
        True,
    ),
    (
        "keys",
        "Keys generated on the token, only the public key exported",
        ("UK-1", "UK-2"),
        "An SM2 key is generated on the token and listed in its container; only the public "
        "key (SPKI) comes back, the same each time it is read.",
        "keys",
        False,
    ),
    (
        "undocumented-instructions",
        "No hidden command answers",
        ("UK-1", "UK-2"),
        "Every undocumented instruction byte, plain and inside the secure channel with the PIN "
        "verified, answers 6D00, so no hidden command exports key material.",
        "undocumented",
        True,
    ),
    (
        "key-attestation",
        "Keys attested: a login key cannot pass for a transaction key",
        ("UK-1", "UK-6", "UK-7", "UK-10"),
        "The token's X.509 attestation of the transaction key (signed by an attestation key "
        "other than the device key) chains to the manufacturer root and states: generated on "
        "the token, not exportable, transaction usage, display+button confirmation enforced; "
        "GENERATE KEY never replaces a key without an explicit request and the admin PIN.",
        "key_attestation",
        False,
    ),
    (
        "signatures",
        "Signatures verify with the exported key and certificate",
        ("UK-2", "UK-7", "UK-10"),
        "Confirm-and-sign of a test transaction: the signature verifies over the displayed "
        "bytes with the exported public key and with an imported certificate, fails for other "
        "bytes, and carries the token serial (RSA-2048 too when offered).",
        "signatures",
        False,
    ),
    (
        "confirmation",
        "Confirmation required, refused on reject",
        ("UK-6", "UK-7", "AU-8"),
        "Transaction keys refuse raw digests (they sign only what the token displayed), and a "
        "transaction the customer rejects on the token is not signed.",
        "confirmation",
        False,
    ),
    (
        "display-binding",
        "Signature bound to the displayed transaction",
        ("UK-6", "UK-7"),
        "At the APDU level: no signature without a display step; a transaction altered after "
        "display, an unknown format and malformed transaction data are refused.",
        "display_binding",
        True,
    ),
    (
        "robustness",
        "Malformed input refused with the right status word",
        ("UK-4",),
        "Unknown INS/CLA, wrong lengths, oversize data, plain PIN and malformed TLV get their "
        "status word and change no state.",
        "robustness",
        True,
    ),
)


def run_conformance(
    token: Token,
    user_pin: str,
    admin_pin: str,
    *,
    prompt: Callable[[str], None] | None = None,
    not_genuine: TokenNotGenuine | None = None,
    trust: TrustConfig | None = None,
) -> ConformanceReport:
    """Run every check against an open ``token`` (see module docstring: this modifies it).

    ``not_genuine``: the :class:`TokenNotGenuine` raised when the token was opened with the
    trust configuration, if the caller then opened it without one to run the other checks;
    the *genuine* check reports it as a failure.  ``trust``: the manufacturer roots the key
    attestation must chain to (default: the trust the token was opened with, when it is our
    :class:`TokenSession`).  The caller closes the token."""
    if trust is None:
        trust = token.trust if isinstance(token, TokenSession) else TrustConfig()
    runner = _Runner(token, user_pin, admin_pin, prompt or (lambda _msg: None), not_genuine, trust)
    for cid, title, reqs, explanation, method, wire in _CHECKS:
        ok = runner.run(cid, title, reqs, explanation, getattr(runner, method), wire)
        if cid == "retry-limit" and not ok:
            break  # wrong user PIN given: stop before spending tries
    serial = fw = ""
    try:
        info = token.device_info()
        serial, fw = info.serial, info.firmware_version
        token.logout()
    except EbankAuthError:
        pass
    return ConformanceReport(
        serial, fw, token.description, tuple(runner.results), can_confirm=token.can_confirm
    )
