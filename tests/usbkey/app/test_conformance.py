"""The conformance suite passes on the software token and catches a token that misbehaves."""

from __future__ import annotations

from ebank_auth.usbkey.conformance import CheckStatus, run_conformance
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove, ReadingUser
from ebank_auth.usbkey.transport.inprocess import InProcessConnection

from .conftest import ADMIN_PIN, USER_PIN, trust_for


def test_software_token_conforms() -> None:
    token = SoftToken(None, ReadingUser())
    prompts: list[str] = []
    report = run_conformance(
        InProcessConnection(token), trust_for(token), USER_PIN, ADMIN_PIN, prompt=prompts.append
    )
    failed = [(c.id, c.detail) for c in report.checks if c.status is not CheckStatus.PASS]
    assert failed == []
    assert report.passed and report.serial == token.serial
    assert {c.id for c in report.checks} >= {
        "genuine",
        "retry-limit",
        "lockout",
        "unblock",
        "pin-replay",
        "keys",
        "signatures",
        "confirmation",
        "robustness",
    }
    assert all(c.explanation and c.requirements for c in report.checks)
    assert any("REJECT" in p for p in prompts)
    # the token is usable afterwards with the same PIN
    assert token.state.user_pin.remaining == token.state.user_pin.max_retries


def test_token_that_ignores_reject_fails() -> None:
    token = SoftToken(None, AutoApprove())  # the "button" approves everything
    report = run_conformance(InProcessConnection(token), trust_for(token), USER_PIN, ADMIN_PIN)
    status = {c.id: c.status for c in report.checks}
    assert status["confirmation"] is CheckStatus.FAIL
    assert not report.passed


def test_wrong_user_pin_stops_before_spending_tries() -> None:
    token = SoftToken(None, ReadingUser())
    report = run_conformance(InProcessConnection(token), trust_for(token), "999999", ADMIN_PIN)
    assert not report.passed
    assert [c.id for c in report.checks] == ["genuine", "retry-limit"]
    assert token.state.user_pin.remaining == token.state.user_pin.max_retries - 1


def test_untrusted_token_fails_genuine_check() -> None:
    from ebank_auth.usbkey.attestation import TrustConfig
    from ebank_auth.usbkey.emulator.factory import Manufacturer

    token = SoftToken(None, ReadingUser())
    other = Manufacturer.create(None)
    report = run_conformance(
        InProcessConnection(token), TrustConfig((other.root,), other.allowlist), USER_PIN, ADMIN_PIN
    )
    status = {c.id: c.status for c in report.checks}
    assert status["genuine"] is CheckStatus.FAIL
    assert status["lockout"] is CheckStatus.PASS
    assert report.to_json()["passed"] is False
