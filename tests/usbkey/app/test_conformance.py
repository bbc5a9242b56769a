"""The conformance suite passes on the software token, catches a token that misbehaves, and
runs through the ``Token`` protocol: for another backend the generic checks run and the
checks that need our APDU wire are skipped with the reason."""

from __future__ import annotations

import pytest

from ebank_auth.errors import TokenNotGenuine
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.attestation import TrustConfig
from ebank_auth.usbkey.conformance import CheckStatus, ConformanceReport, run_conformance
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove, ReadingUser
from ebank_auth.usbkey.key_attestation import KeyAttestation
from ebank_auth.usbkey.protocol import (
    DEFAULT_CONTAINER,
    DEFAULT_LOGIN_CONTAINER,
    Algorithm,
    ContainerUsage,
    DeviceInfo,
    PinRef,
)
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.token import (
    AttestationReport,
    ContainerInfo,
    PinStatus,
    PublicKeyInfo,
    SignResult,
    Token,
    TokenPublicKey,
)

from .conftest import ADMIN_PIN, USER_PIN, open_session, trust_for

ALL_CHECKS = [
    "genuine",
    "retry-limit",
    "lockout",
    "unblock",
    "pin-replay",
    "keys",
    "undocumented-instructions",
    "key-attestation",
    "signatures",
    "confirmation",
    "display-binding",
    "robustness",
]
WIRE_CHECKS = {"pin-replay", "undocumented-instructions", "display-binding", "robustness"}


class ForeignToken:
    """A second, minimal :class:`Token` backend: it reaches the token only through another
    backend's public methods (as a PKCS#11 or SKF backend reaches a vendor library), so
    it is a ``Token`` but not our ``TokenSession``."""

    def __init__(self, inner: TokenSession) -> None:
        self._inner = inner

    @property
    def description(self) -> str:
        return "foreign:" + self._inner.description

    @property
    def attestation(self) -> AttestationReport | None:
        return self._inner.attestation

    @property
    def can_confirm(self) -> bool:
        return self._inner.can_confirm

    def device_info(self) -> DeviceInfo:
        return self._inner.device_info()

    def attest(self) -> AttestationReport:
        return self._inner.attest()

    def random(self, length: int) -> bytes:
        return self._inner.random(length)

    def verify_pin(self, pin: str, ref: PinRef = PinRef.USER) -> None:
        self._inner.verify_pin(pin, ref)

    def change_pin(self, old: str, new: str, ref: PinRef = PinRef.USER) -> None:
        self._inner.change_pin(old, new, ref)

    def unblock_pin(self, admin_pin: str, new_user_pin: str) -> None:
        self._inner.unblock_pin(admin_pin, new_user_pin)

    def pin_status(self, ref: PinRef = PinRef.USER) -> PinStatus:
        return self._inner.pin_status(ref)

    def set_retry_limit(self, limit: int, ref: PinRef = PinRef.USER) -> None:
        self._inner.set_retry_limit(limit, ref)

    def logout(self) -> None:
        self._inner.logout()

    def list_containers(self) -> list[ContainerInfo]:
        return self._inner.list_containers()

    def generate_key(
        self,
        container: str = DEFAULT_CONTAINER,
        algorithm: Algorithm = Algorithm.SM2,
        usage: ContainerUsage = ContainerUsage.TRANSACTION,
        *,
        replace: bool = False,
    ) -> PublicKeyInfo:
        return self._inner.generate_key(container, algorithm, usage, replace=replace)

    def attest_key(self, container: str = DEFAULT_CONTAINER) -> KeyAttestation:
        return self._inner.attest_key(container)

    def public_key(self, container: str = DEFAULT_CONTAINER) -> PublicKeyInfo:
        return self._inner.public_key(container)

    def import_certificate(self, certificate: bytes, container: str = DEFAULT_CONTAINER) -> None:
        self._inner.import_certificate(certificate, container)

    def export_certificate(self, container: str = DEFAULT_CONTAINER) -> bytes:
        return self._inner.export_certificate(container)

    def sign_digest(self, digest: bytes, container: str = DEFAULT_LOGIN_CONTAINER) -> bytes:
        return self._inner.sign_digest(digest, container)

    def sign_message(self, data: bytes, container: str = DEFAULT_LOGIN_CONTAINER) -> bytes:
        return self._inner.sign_message(data, container)

    def confirm_and_sign(
        self,
        tx: Transaction,
        container: str = DEFAULT_CONTAINER,
        lang: str = "zh",
        *,
        verify_with: TokenPublicKey | None = None,
    ) -> SignResult:
        return self._inner.confirm_and_sign(tx, container, lang, verify_with=verify_with)

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> ForeignToken:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _statuses(report: ConformanceReport) -> dict[str, CheckStatus]:
    return {c.id: c.status for c in report.checks}


def test_software_token_conforms() -> None:
    token = SoftToken(None, ReadingUser())
    prompts: list[str] = []
    with open_session(token) as session:
        report = run_conformance(session, USER_PIN, ADMIN_PIN, prompt=prompts.append)
    failed = [(c.id, c.detail) for c in report.checks if c.status is not CheckStatus.PASS]
    assert failed == []
    assert report.passed and report.serial == token.serial
    assert [c.id for c in report.checks] == ALL_CHECKS
    assert all(c.explanation and c.requirements for c in report.checks)
    assert any("REJECT" in p for p in prompts)
    # the token is usable afterwards with the same PIN
    assert token.state.user_pin.remaining == token.state.user_pin.max_retries


def test_another_token_backend_runs_generic_checks_and_skips_wire_checks() -> None:
    token = SoftToken(None, ReadingUser())
    with ForeignToken(open_session(token)) as foreign:
        assert isinstance(foreign, Token) and not isinstance(foreign, TokenSession)
        report = run_conformance(foreign, USER_PIN, ADMIN_PIN, trust=trust_for(token))
    status = _statuses(report)
    assert list(status) == ALL_CHECKS
    assert {c for c, s in status.items() if s is CheckStatus.SKIP} == WIRE_CHECKS
    assert all(s is CheckStatus.PASS for c, s in status.items() if c not in WIRE_CHECKS)
    skipped = [c for c in report.checks if c.status is CheckStatus.SKIP]
    assert all("ForeignToken" in c.detail and "APDU" in c.detail for c in skipped)
    assert report.passed and report.reader.startswith("foreign:")
    # the generic checks really drove the token: it locked and was unblocked
    assert token.state.user_pin.remaining == token.state.user_pin.max_retries
    assert any(c.name == "conformance" for c in token_containers(token))


def token_containers(token: SoftToken) -> list[ContainerInfo]:
    with open_session(token) as s:
        s.verify_pin(USER_PIN)
        return s.list_containers()


@pytest.mark.parametrize("wrap", [False, True], ids=["session", "foreign"])
def test_token_that_ignores_reject_fails(wrap: bool) -> None:
    token = SoftToken(None, AutoApprove())  # the "button" approves everything
    session = open_session(token)
    subject: Token = ForeignToken(session) if wrap else session
    with subject:
        report = run_conformance(subject, USER_PIN, ADMIN_PIN)
    assert _statuses(report)["confirmation"] is CheckStatus.FAIL
    assert not report.passed


def test_wrong_user_pin_stops_before_spending_tries() -> None:
    token = SoftToken(None, ReadingUser())
    with open_session(token) as session:
        report = run_conformance(session, "999999", ADMIN_PIN)
    assert not report.passed
    assert [c.id for c in report.checks] == ["genuine", "retry-limit"]
    assert token.state.user_pin.remaining == token.state.user_pin.max_retries - 1


def test_untrusted_token_fails_genuine_check() -> None:
    from ebank_auth.usbkey.emulator.factory import Manufacturer
    from ebank_auth.usbkey.transport.inprocess import InProcessConnection

    token = SoftToken(None, ReadingUser())
    other = Manufacturer.create(None)
    conn = InProcessConnection(token)
    with pytest.raises(TokenNotGenuine) as refused:
        TokenSession.open(conn, TrustConfig((other.root,), other.allowlist))
    with TokenSession.open(conn, TrustConfig(require_genuine=False)) as session:
        report = run_conformance(session, USER_PIN, ADMIN_PIN, not_genuine=refused.value)
    status = _statuses(report)
    assert status["genuine"] is CheckStatus.FAIL
    assert status["lockout"] is CheckStatus.PASS
    assert report.to_json()["passed"] is False


def test_no_trust_configured_skips_genuine() -> None:
    from ebank_auth.usbkey.transport.inprocess import InProcessConnection

    token = SoftToken(None, ReadingUser())
    with TokenSession.open(InProcessConnection(token), TrustConfig(require_genuine=False)) as s:
        report = run_conformance(s, USER_PIN, ADMIN_PIN)
    genuine = report.checks[0]
    assert genuine.status is CheckStatus.SKIP and "no trust configured" in genuine.detail
