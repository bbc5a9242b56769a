"""The conformance run checks per-key attestation and no silent key replacement (issue 10)."""

from __future__ import annotations

import pytest

from ebank_auth.usbkey.attestation import TrustConfig
from ebank_auth.usbkey.conformance import CheckStatus, check_key_attestation, run_conformance
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import ReadingUser
from ebank_auth.usbkey.emulator.factory import Manufacturer
from ebank_auth.usbkey.protocol import ContainerUsage
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.transport.inprocess import InProcessConnection

from .conftest import ADMIN_PIN, USER_PIN, trust_for


def test_conformance_checks_key_attestation_and_can_run_twice() -> None:
    token = SoftToken(None, ReadingUser())
    for _ in range(2):  # the second run replaces its own test keys (admin PIN), so it passes
        with TokenSession.open(InProcessConnection(token), trust_for(token)) as session:
            report = run_conformance(session, USER_PIN, ADMIN_PIN)
        status = {c.id: (c.status, c.detail) for c in report.checks}
        assert status["key-attestation"][0] is CheckStatus.PASS, status["key-attestation"]
        assert report.passed, [c for c in report.checks if c.status is CheckStatus.FAIL]


def test_key_attestation_check_fails_for_a_login_key(session: TokenSession) -> None:
    session.verify_pin(USER_PIN)
    session.generate_key("conformance", usage=ContainerUsage.LOGIN)
    with pytest.raises(Exception, match="not attested as one"):
        check_key_attestation(session, session.trust, "conformance")


def test_key_attestation_check_fails_for_an_untrusted_maker(signer: TokenSession) -> None:
    other = TrustConfig((Manufacturer.create(None).root,))
    with pytest.raises(Exception, match="does not verify"):
        check_key_attestation(signer, other, "sign")


def test_key_attestation_check_passes_on_a_real_transaction_key(signer: TokenSession) -> None:
    assert "display+button enforced" in check_key_attestation(signer, signer.trust, "sign")
