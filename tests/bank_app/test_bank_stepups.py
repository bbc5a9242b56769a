"""Login step-ups of the bank app besides the SMS code (AU-1, AU-4, AU-7): the policy's missing
clauses decide which factors the page offers; a TOTP authenticator app set up in the security
settings; the USB Key's login signature (the agent's ``/v1/authenticate`` message, bound to
the bank's origin); up to 3 trusted devices, listed and revoked by the customer.

The test plays the local agent's part with an in-process software token, as
test_bank_backoffice.py does: what reaches the server is what the agent would relay (the real
agent over pcscd is tested in tests/agent)."""

from __future__ import annotations

import base64
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.agent import login_message
from ebank_auth.errors import InvalidSignature
from ebank_auth.usbkey.attestation import TrustConfig
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove
from ebank_auth.usbkey.protocol import ContainerUsage
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.transport.inprocess import InProcessConnection

PIN = "314159"
ORIGIN = "http://localhost"  # Flask's test client
PHISH = "https://bank.example.phish"
CHALLENGE_RE = re.compile(r'data-challenge="([0-9a-f]{64})"')
Browser = Any  # conftest.Browser


class Agent:
    """What the local agent does for the page (``/v1/enrol`` and ``/v1/authenticate``)."""

    def __init__(self, token: SoftToken) -> None:
        trust = TrustConfig((token.manufacturer.root,), token.manufacturer.allowlist)
        self.session = TokenSession.open(InProcessConnection(token), trust)
        self.session.verify_pin(PIN)
        self.serial = self.session.device_info().serial

    def enrol(self) -> dict[str, str]:
        info = self.session.generate_key(usage=ContainerUsage.TRANSACTION)
        self.session.generate_key(container="login", usage=ContainerUsage.LOGIN)
        return {
            "serial": self.serial,
            "public_key": base64.b64encode(info.public_key_der).decode(),
            "attestation": self.session.attest_key().to_pem().decode(),
        }

    def authenticate(self, challenge: str, origin: str = ORIGIN) -> dict[str, str]:
        sig = self.session.sign_message(login_message(origin, bytes.fromhex(challenge)), "login")
        return {
            "signature": base64.b64encode(sig).decode(),
            "serial": self.serial,
            "public_key": base64.b64encode(
                self.session.public_key("login").public_key_der
            ).decode(),
        }


@pytest.fixture
def token(tmp_path: Path) -> SoftToken:
    return SoftToken(tmp_path / "token", AutoApprove())


@pytest.fixture
def agent(token: SoftToken) -> Agent:
    return Agent(token)


@pytest.fixture
def app(tmp_path: Path, clock: Any, token: SoftToken) -> Any:
    from app import create_app

    app = create_app(
        tmp_path / "state",
        argon2_memory_kib=1024,
        clock=clock,
        demo=True,
        software_token_state=tmp_path / "token",
    )
    app.config["TEST_CLOCK"] = clock
    return app


# ---------------------------------------------------------------------- helpers
def user(b: Browser) -> str:
    return str(b.demo["username"])


def logout(b: Browser) -> None:
    assert b.post("/logout", {}, form_url="/accounts").status_code == 302


def password_step(b: Browser) -> Any:
    b.post("/login", {"username": user(b)})
    return b.post("/login/password", {"password": b.new_password}, form_url="/login/password")


def to_choice(b: Browser) -> str:
    r = password_step(b)
    assert r.status_code == 302 and r.location.endswith("/login/choose"), r.get_data(True)
    return str(b.get("/login/choose").get_data(as_text=True))


def settings_stepup(b: Browser) -> None:
    b.after_sms_cooldown()
    r = b.post("/security/code", {}, form_url="/security")
    assert r.status_code == 200 and "security-code-form" in r.get_data(as_text=True)
    r = b.post("/security/verify", {"code": b.last_code()}, form_url="/security")
    assert r.status_code == 302, r.get_data(True)


def totp_now(b: Browser) -> str:
    step = int(b.services.clock() // 30)
    return str(b.services.totp().code_at(user(b), step))


def setup_totp(b: Browser) -> None:
    settings_stepup(b)
    r = b.post("/security/totp/begin", {}, form_url="/security")
    page = r.get_data(as_text=True)
    assert r.status_code == 200, page
    assert 'id="totp-qr" src="data:image/svg+xml;base64,' in page
    assert "otpauth://totp/" in page
    assert not b.services.totp_enabled(user(b))  # not before the first code
    r = b.post("/security/totp/confirm", {"code": totp_now(b)}, form_url="/security")
    assert r.status_code == 302, r.get_data(True)
    assert b.services.totp_enabled(user(b))


def enrol_usbkey(b: Browser, agent: Agent) -> None:
    b.after_sms_cooldown()
    assert b.post("/usbkey/code", {}, form_url="/usbkey").status_code == 200
    r = b.client.post(
        "/usbkey/enrol",
        data={"csrf_token": b.token("/usbkey"), "code": b.last_code(), **agent.enrol()},
    )
    assert r.status_code == 200 and "usbkey-enrolled" in r.get_data(as_text=True)


def login_key_page(b: Browser) -> str:
    page = b.get("/security/login-key").get_data(as_text=True)
    m = CHALLENGE_RE.search(page)
    assert m, page
    return m.group(1)


def register_login_key(b: Browser, agent: Agent) -> None:
    enrol_usbkey(b, agent)
    settings_stepup(b)
    answer = agent.authenticate(login_key_page(b))
    r = b.post("/security/login-key", answer, form_url="/security")
    assert r.status_code == 302, r.get_data(True)
    assert b.services.login_key_of(user(b)) is not None


def sms_count(b: Browser) -> int:
    return len(b.services.outbox.messages())


# ---------------------------------------------------------------------- TOTP
def test_totp_is_offered_next_to_sms_and_signs_in(customer: Browser) -> None:
    b = customer
    b.login()  # a new device: the SMS code binds it (AU-4)
    setup_totp(b)
    logout(b)
    b.clock.offset += 30  # the next time step: a fresh code
    sent = sms_count(b)
    page = to_choice(b)
    assert 'id="choice-totp"' in page and 'id="choice-sms"' in page
    assert 'id="choice-usbkey"' not in page  # no login key registered
    assert sms_count(b) == sent  # the SMS code is sent only when chosen
    r = b.post("/login/totp", {"code": totp_now(b)}, form_url="/login/choose")
    assert r.status_code == 302 and r.location.endswith("/accounts")
    assert b.get("/accounts").status_code == 200


def test_a_totp_code_is_never_accepted_twice(customer: Browser) -> None:
    b = customer
    b.login()
    setup_totp(b)
    confirmation = totp_now(b)  # the code the set-up accepted, still in its time step
    logout(b)
    to_choice(b)
    r = b.post("/login/totp", {"code": confirmation}, form_url="/login/choose")
    assert r.status_code == 401 and "登录信息有误" in r.get_data(as_text=True)  # generic
    assert b.get("/accounts").status_code == 302
    b.clock.offset += 30
    code = totp_now(b)
    r = b.post("/login/totp", {"code": code}, form_url="/login/choose")
    assert r.status_code == 302 and r.location.endswith("/accounts")
    logout(b)
    to_choice(b)  # same time step: the very same code again
    r = b.post("/login/totp", {"code": code}, form_url="/login/choose")
    assert r.status_code == 401
    assert b.get("/accounts").status_code == 302  # not signed in


def test_totp_setup_needs_the_sms_stepup(customer: Browser) -> None:
    b = customer
    b.login()
    r = b.post("/security/totp/begin", {}, form_url="/security")
    assert r.status_code == 403
    assert b.services.store.get(f"banktotp:rec:{user(b)}") is None


def test_sms_is_still_there_when_chosen(customer: Browser) -> None:
    b = customer
    b.login()
    setup_totp(b)
    logout(b)
    b.after_sms_cooldown()
    to_choice(b)
    r = b.post("/login/choose/sms", {}, form_url="/login/choose")
    assert r.status_code == 302 and r.location.endswith("/login/code")
    r = b.post("/login/code", {"code": b.last_code()}, form_url="/login/code")
    assert r.status_code == 302 and r.location.endswith("/accounts")


def test_a_new_device_still_needs_the_sms_code(customer: Browser) -> None:
    """AU-4: the new-device clause takes only SMS/voice codes, so TOTP is not offered."""
    b = customer
    b.login()
    setup_totp(b)
    logout(b)
    b.client.set_cookie("bank_device", secrets.token_hex(16))
    b.after_sms_cooldown()
    r = password_step(b)
    assert r.status_code == 302 and r.location.endswith("/login/code")
    # and a choice the policy did not offer cannot be forced
    r = b.post("/login/totp", {"code": totp_now(b)}, form_url="/login/code")
    assert r.status_code == 302 and r.location.endswith("/login")


# ---------------------------------------------------------------------- USB Key login signature
def test_usbkey_login_signature_signs_in(customer: Browser, agent: Agent) -> None:
    b = customer
    b.login()
    register_login_key(b, agent)
    logout(b)
    page = to_choice(b)
    assert 'id="choice-usbkey"' in page and 'data-action="authenticate"' in page
    challenge = CHALLENGE_RE.search(page).group(1)  # type: ignore[union-attr]
    sig = agent.authenticate(challenge)["signature"]
    r = b.client.post("/login/usbkey", data={"csrf_token": b.token("/login"), "signature": sig})
    assert r.status_code == 302 and r.location.endswith("/accounts"), r.get_data(True)


def test_a_login_signature_relayed_for_another_origin_is_refused(
    customer: Browser, agent: Agent
) -> None:
    """A phishing site relays the bank's challenge to the agent, which signs it for the
    phishing origin: the bank refuses it, and the challenge is spent."""
    b = customer
    b.login()
    register_login_key(b, agent)
    logout(b)
    page = to_choice(b)
    challenge = CHALLENGE_RE.search(page).group(1)  # type: ignore[union-attr]
    csrf = b.token("/login")
    relayed = agent.authenticate(challenge, origin=PHISH)["signature"]
    r = b.client.post("/login/usbkey", data={"csrf_token": csrf, "signature": relayed})
    assert r.status_code == 401
    assert b.get("/accounts").status_code == 302
    good = agent.authenticate(challenge)["signature"]  # one try per challenge
    r = b.client.post("/login/usbkey", data={"csrf_token": csrf, "signature": good})
    assert r.status_code == 401
    assert b.get("/accounts").status_code == 302


def test_the_login_key_must_come_from_the_bound_token_and_verify(
    customer: Browser, agent: Agent, tmp_path: Path
) -> None:
    b = customer
    b.login()
    enrol_usbkey(b, agent)
    settings_stepup(b)
    # another token (its own serial) is refused
    other = Agent(SoftToken(tmp_path / "other", AutoApprove()))
    other.session.generate_key(container="login", usage=ContainerUsage.LOGIN)
    r = b.post("/security/login-key", other.authenticate(login_key_page(b)), form_url="/security")
    assert r.status_code == 400
    # a signature for another origin is refused (verified before storing)
    answer = agent.authenticate(login_key_page(b), origin=PHISH)
    assert b.post("/security/login-key", answer, form_url="/security").status_code == 400
    # a key other than the one that signed is refused
    answer = agent.authenticate(login_key_page(b))
    answer["public_key"] = other.authenticate(secrets.token_hex(32))["public_key"]
    assert b.post("/security/login-key", answer, form_url="/security").status_code == 400
    assert b.services.login_key_of(user(b)) is None
    r = b.post("/security/login-key", agent.authenticate(login_key_page(b)), form_url="/security")
    assert r.status_code == 302 and b.services.login_key_of(user(b)) is not None


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    host=st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,6}){0,2}", fullmatch=True),
    scheme=st.sampled_from(["http", "https"]),
)
def test_property_a_signature_for_any_other_origin_is_refused(
    customer: Browser, agent: Agent, host: str, scheme: str
) -> None:
    b = customer
    if "login" not in {c.name for c in agent.session.list_containers()}:
        agent.session.generate_key(container="login", usage=ContainerUsage.LOGIN)
    origin = f"{scheme}://{host}"
    if origin == ORIGIN:
        return
    # the customer's login key as registered (the store records the app writes)
    store = b.services.store
    store.put_if_absent(
        f"bank:loginkey:{user(b)}", agent.session.public_key("login").public_key_der
    )
    store.put_if_absent(f"bank:usbkey:{user(b)}", b'{"serial": "s"}')
    challenge = secrets.token_hex(32)
    sig = agent.authenticate(challenge, origin=origin)["signature"]
    with pytest.raises(InvalidSignature):
        b.services.verify_login_signature(user(b), ORIGIN, challenge, sig)
    b.services.verify_login_signature(user(b), origin, challenge, sig)  # the control


# ---------------------------------------------------------------------- trusted devices (AU-7)
def trust_this_device(b: Browser, agent: Agent) -> Any:
    page = b.get("/security/trust").get_data(as_text=True)
    m = CHALLENGE_RE.search(page)
    assert m, page
    return b.post(
        "/security/trust",
        {"signature": agent.authenticate(m.group(1))["signature"]},
        form_url="/security",
    )


def new_device_login(b: Browser) -> None:
    logout(b)
    b.client.set_cookie("bank_device", secrets.token_hex(16))
    b.after_sms_cooldown()
    r = b.login()  # a new device: SMS code, then bound
    assert r.status_code == 302 and r.location.endswith("/accounts"), r.get_data(True)


def test_at_most_three_trusted_devices_listed_and_revoked(customer: Browser, agent: Agent) -> None:
    b = customer
    b.login()
    register_login_key(b, agent)
    r = trust_this_device(b, agent)
    assert r.status_code == 302, r.get_data(True)
    for _ in range(2):
        new_device_login(b)
        assert trust_this_device(b, agent).status_code == 302
    assert len(b.services.devices.trusted(user(b))) == 3
    new_device_login(b)
    r = trust_this_device(b, agent)  # the 4th
    assert r.status_code == 403 and "revoke one of them first" in r.get_data(as_text=True)
    assert len(b.services.devices.trusted(user(b))) == 3
    page = b.get("/security").get_data(as_text=True)
    assert page.count('class="trusted"') == 3
    assert b.client.get_cookie("bank_device").value not in page  # type: ignore[union-attr]
    handle = re.search(r'name="device" value="([0-9a-f]{16})"', page).group(1)  # type: ignore[union-attr]
    assert (
        b.post("/security/devices/revoke", {"device": handle}, form_url="/security").status_code
        == 302
    )
    assert len(b.services.devices.trusted(user(b))) == 2
    assert trust_this_device(b, agent).status_code == 302  # now the 4th device fits
    assert len(b.services.devices.trusted(user(b))) == 3


def test_a_trusted_device_signs_in_without_a_step_up(customer: Browser, agent: Agent) -> None:
    b = customer
    b.login()
    register_login_key(b, agent)
    assert trust_this_device(b, agent).status_code == 302
    logout(b)
    sent = sms_count(b)
    r = password_step(b)
    assert r.status_code == 302 and r.location.endswith("/accounts")
    assert sms_count(b) == sent


def test_trusting_needs_the_usb_key_signature(customer: Browser, agent: Agent) -> None:
    b = customer
    b.login()
    assert b.get("/security/trust").status_code == 409  # no login key yet
    register_login_key(b, agent)
    page = b.get("/security/trust").get_data(as_text=True)
    challenge = CHALLENGE_RE.search(page).group(1)  # type: ignore[union-attr]
    relayed = agent.authenticate(challenge, origin=PHISH)["signature"]
    r = b.post("/security/trust", {"signature": relayed}, form_url="/security")
    assert r.status_code == 403
    assert b.services.devices.trusted(user(b)) == []
