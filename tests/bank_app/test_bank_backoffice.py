"""The back office: staff sign in with a password AND their USB Key's login key (a signature over
the agent's origin-bound login message), then verify the audit log, unlock customers and see
devices and bound tokens.  The test signs with an in-process software token, as the agent would."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from ebank_auth.agent import login_message
from ebank_auth.usbkey.attestation import TrustConfig
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove
from ebank_auth.usbkey.protocol import ContainerUsage
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.transport.inprocess import InProcessConnection

CHALLENGE_RE = re.compile(r'data-challenge="([0-9a-f]{64})"')
ORIGIN = "http://localhost"  # Flask's test client
STAFF = ("admin", "Staff-Pass-2026")


@pytest.fixture
def token_session(tmp_path: Path) -> TokenSession:
    token = SoftToken(tmp_path / "token", AutoApprove())
    trust = TrustConfig((token.manufacturer.root,), token.manufacturer.allowlist)
    session = TokenSession.open(InProcessConnection(token), trust)
    session.verify_pin("314159")
    session.generate_key(container="login", usage=ContainerUsage.LOGIN)
    return session


@pytest.fixture
def app(tmp_path: Path, clock: Any, token_session: TokenSession) -> Any:
    from app import create_app

    pem = tmp_path / "staff.pub.pem"
    pem.write_bytes(token_session.public_key("login").public_key().to_pem())
    app = create_app(
        tmp_path / "state", argon2_memory_kib=1024, clock=clock, demo=True, staff_keys=(pem,)
    )
    app.config["TEST_CLOCK"] = clock
    return app


def password_step(b: Any, password: str = STAFF[1]) -> Any:
    return b.post(
        "/staff/login", {"username": STAFF[0], "password": password}, form_url="/staff/login"
    )


def sign_in(b: Any, session: TokenSession, origin: str = ORIGIN) -> Any:
    r = password_step(b)
    m = CHALLENGE_RE.search(r.get_data(as_text=True))
    assert m, r.get_data(as_text=True)
    sig = session.sign_message(login_message(origin, bytes.fromhex(m.group(1))), "login")
    return b.client.post(
        "/staff/login/token",
        data={"csrf_token": b.token("/staff/login"), "signature": base64.b64encode(sig).decode()},
    )


def test_staff_sign_in_needs_the_token_and_opens_the_back_office(
    browser: Any, token_session: TokenSession
) -> None:
    assert browser.get("/staff").status_code == 302  # not signed in
    r = password_step(browser)
    assert r.status_code == 200 and "usbkey-panel" in r.get_data(as_text=True)
    assert browser.get("/staff").status_code == 302  # the password alone opens nothing
    r = sign_in(browser, token_session)
    assert r.status_code == 302 and r.location.endswith("/staff")
    page = browser.get("/staff").get_data(as_text=True)
    assert 'id="audit-report"' in page and 'class="notice"' in page  # the log verifies


def test_a_signature_relayed_from_another_origin_is_refused(
    browser: Any, token_session: TokenSession
) -> None:
    """A phishing site relays the bank's challenge to the agent: the agent signs it for the
    phishing origin, and the bank refuses that signature."""
    r = sign_in(browser, token_session, origin="https://bank.example.phish")
    assert r.status_code == 401
    assert browser.get("/staff").status_code == 302


def test_a_challenge_is_good_for_one_try(browser: Any, token_session: TokenSession) -> None:
    r = password_step(browser)
    challenge = CHALLENGE_RE.search(r.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    bad = base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()
    browser.client.post(
        "/staff/login/token", data={"csrf_token": browser.token("/staff/login"), "signature": bad}
    )
    good = token_session.sign_message(login_message(ORIGIN, bytes.fromhex(challenge)), "login")
    r = browser.client.post(
        "/staff/login/token",
        data={
            "csrf_token": browser.token("/staff/login"),
            "signature": base64.b64encode(good).decode(),
        },
    )
    assert r.status_code == 302 and r.location.endswith("/staff/login")  # start again


def test_staff_unlock_a_locked_customer_is_audited(
    browser: Any, token_session: TokenSession
) -> None:
    customer = browser.demo["username"]
    for _ in range(5):
        browser.post("/login", {"username": customer})
        browser.post("/login/password", {"password": "wrong-Pass-1"}, form_url="/login/password")
    assert browser.services.lockout.status(customer).locked
    browser.client.delete_cookie("bank_session")
    assert sign_in(browser, token_session).status_code == 302
    r = browser.post("/staff/unlock", {"user": customer}, form_url="/staff")
    assert r.status_code == 302
    assert not browser.services.lockout.status(customer).locked
    unlocks = [r for r in browser.services.audit.records() if r["event"] == "login_unlocked"]
    assert unlocks and STAFF[0] in str(unlocks[-1])


def test_wrong_staff_password_counts_on_the_staff_lockout_only(browser: Any) -> None:
    r = password_step(browser, "Wrong-Pass-99")
    assert r.status_code == 401
    assert browser.services.staff_lockout.status(STAFF[0]).failures == 1
    assert browser.services.lockout.status(STAFF[0]).failures == 0
