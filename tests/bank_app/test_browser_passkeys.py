"""Passkeys in the reference bank app, in a real headless Chromium with its virtual
authenticator (DevTools ``WebAuthn.*``: CTAP2, internal transport, resident keys, user
verification switched on and off by the test).  Issue 14, item 5.

The app runs on a loopback port and is opened as ``http://localhost:PORT``: browsers refuse
an IP address such as 127.0.0.1 as a WebAuthn RP ID, and the demo default takes the RP ID
``localhost`` and the origin from a request to localhost on the port it listens on.  The
pages, ``static/js/passkey.js`` and the server are the real ones; the authenticator is
Chromium's own (a real CTAP2 authenticator model inside the browser, not a test fake).

The app's clock starts at 10:00 in Beijing: at night (AU-5) every login needs an SMS code,
passkey or not."""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from plugins.bank_browser import (
    NEW_PASSWORD,
    PAYEE_ACCOUNT,
    Bank,
    Clock,
    _code_from_outbox,
    _csp_messages,
    _enter_username,
    _login,
    _path,
    _submit,
    _type,
    _wait,
    to_daytime,
)
from plugins.browser import browser  # noqa: F401  (the Chromium fixture, not the test client)

pytestmark = pytest.mark.browser


@contextmanager
def serve(**options: Any) -> Iterator[Bank]:
    from app import create_app
    from wiring import DEMO_CUSTOMERS

    clock = Clock()
    to_daytime(clock)
    with tempfile.TemporaryDirectory(prefix="ebank-passkey-browser-") as state:
        app = create_app(Path(state), argon2_memory_kib=1024, clock=clock, demo=True, **options)
        services = app.extensions["bank"]
        for c in DEMO_CUSTOMERS:  # past the forced first-login change
            services.change_password(c["username"], c["password"], NEW_PASSWORD)
        httpd = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield Bank(
                f"http://localhost:{httpd.server_port}",
                services,
                clock,
                {c["username"]: c for c in DEMO_CUSTOMERS},
            )
        finally:
            httpd.shutdown()
            thread.join(timeout=5)


@pytest.fixture(scope="module")
def bank() -> Iterator[Bank]:
    # usernameless on: the shipped policy counts a passkey at login, so it is offered
    with serve(passkey_usernameless=True) as b:
        yield b


@pytest.fixture
def chromium(browser: Any, bank: Bank) -> Any:  # noqa: F811
    browser.get(bank.url + "/static/css/bank.css")
    browser.delete_all_cookies()
    return browser


@pytest.fixture
def authenticator(chromium: Any) -> Iterator[str]:
    """A virtual CTAP2 platform authenticator with resident keys and user verification
    (the customer passes it); removed after the test."""
    chromium.execute_cdp_cmd("WebAuthn.enable", {"enableUI": False})
    added = chromium.execute_cdp_cmd(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    auth_id = str(added["authenticatorId"])
    try:
        yield auth_id
    finally:
        chromium.execute_cdp_cmd(
            "WebAuthn.removeVirtualAuthenticator", {"authenticatorId": auth_id}
        )
        chromium.execute_cdp_cmd("WebAuthn.disable", {})


def credentials(driver: Any, auth_id: str) -> list[dict[str, Any]]:
    got = driver.execute_cdp_cmd("WebAuthn.getCredentials", {"authenticatorId": auth_id})
    return list(got["credentials"])


def audit(bank: Bank, event: str) -> list[dict[str, Any]]:
    return [r for r in bank.services.audit.records() if r["event"] == event]


def press_passkey_button(driver: Any) -> None:
    _wait(
        driver, lambda d: d.find_element("id", "passkey-panel").get_attribute("data-passkey-state")
    )
    driver.find_element("id", "passkey-go").click()


def register_passkey(driver: Any, bank: Bank) -> None:
    """Settings -> Passkeys: SMS code first, then the browser creates the passkey."""
    driver.get(bank.url + "/passkeys?lang=en")
    before = len(driver.find_elements("css selector", "#passkey-list .passkey-row"))
    bank.clock.offset += 61
    _submit(driver, "#passkey-start")
    driver.find_element("name", "code").send_keys(_code_from_outbox(driver, bank))
    _submit(driver, "#passkey-verify")
    press_passkey_button(driver)
    _wait(driver, lambda d: _path(d) == "passkeys" and d.find_elements("id", "passkey-notice"))
    # one more row (the module's app keeps the passkeys of earlier tests' authenticators)
    assert len(driver.find_elements("css selector", "#passkey-list .passkey-row")) == before + 1


def logout(driver: Any) -> None:
    _submit(driver, "header form button[type=submit]")
    _wait(driver, lambda d: _path(d) == "login")


def password_then_second_step(driver: Any, bank: Bank, username: str = "zhangsan") -> None:
    _enter_username(driver, bank, username)
    _type(driver, bank, "password-form", NEW_PASSWORD)
    _submit(driver, "#login-submit")
    _wait(driver, lambda d: _path(d) == "login/second")


def test_register_and_sign_in_with_a_passkey(chromium: Any, authenticator: str, bank: Bank) -> None:
    _login(chromium, bank, "zhangsan")  # the first login on this browser: SMS code, device bound
    register_passkey(chromium, bank)
    (cred,) = credentials(chromium, authenticator)
    assert cred["isResidentCredential"] and cred["rpId"] == "localhost"
    stored = [p["id"] for p in bank.services.passkeys("zhangsan")]
    cred_id = cred["credentialId"].rstrip("=").replace("+", "-").replace("/", "_")
    assert cred_id in stored  # the server keeps the credential the authenticator made
    logout(chromium)
    sent = len(bank.services.outbox.messages())
    password_then_second_step(chromium, bank)
    press_passkey_button(chromium)
    _wait(chromium, lambda d: _path(d) == "accounts")
    assert len(bank.services.outbox.messages()) == sent  # no SMS code was needed
    ok = audit(bank, "passkey_login")[-1]
    assert ok["outcome"] == "ok" and ok["details"]["uv"] == "true"
    assert not _csp_messages(chromium)


def test_usernameless_sign_in_then_the_password(
    chromium: Any, authenticator: str, bank: Bank
) -> None:
    _login(chromium, bank, "lisi")
    register_passkey(chromium, bank)
    logout(chromium)
    chromium.get(bank.url + "/login?lang=en")
    press_passkey_button(chromium)  # no username typed: the passkey names the customer
    _wait(chromium, lambda d: _path(d) == "login/password")
    phrase = chromium.find_element("id", "anti-phishing-phrase")
    assert phrase.text == bank.customers["lisi"]["phrase"]
    assert bank.services.lockout.status("lisi").failures == 0
    _type(chromium, bank, "password-form", NEW_PASSWORD)
    _submit(chromium, "#login-submit")
    _wait(chromium, lambda d: _path(d) == "accounts")


def test_uv_required_and_missing(chromium: Any, authenticator: str, bank: Bank) -> None:
    """A small transfer takes only a user-verified passkey (tier 1: ``passkey_uv``).  The
    customer fails the authenticator's check: Chromium gives the page nothing; a page
    script that asks for no UV gets an assertion without the UV flag, which the server
    refuses.  Nothing is booked either way; the SMS code bound to the transfer remains."""
    _login(chromium, bank, "zhangsan")
    register_passkey(chromium, bank)
    chromium.execute_cdp_cmd(
        "WebAuthn.setUserVerified", {"authenticatorId": authenticator, "isUserVerified": False}
    )
    before = bank.services.account(bank.customers["zhangsan"]["account"]).balance
    chromium.get(bank.url + "/transfer?lang=en")
    chromium.find_element("name", "payee_account").send_keys(PAYEE_ACCOUNT)
    chromium.find_element("name", "payee_name").send_keys("王五")
    chromium.find_element("name", "amount").send_keys("300.00")
    _type(chromium, bank, "transfer-form", NEW_PASSWORD)
    _submit(chromium, "#transfer-submit")
    _wait(chromium, lambda d: _path(d) == "transfer")
    # the honest page: the authenticator cannot verify the customer, so no assertion at all
    press_passkey_button(chromium)
    status = chromium.find_element("id", "passkey-status")
    _wait(chromium, lambda d: "error" in (status.get_attribute("class") or ""))
    # a tampered page asks for no user verification: the server still requires it
    tx_id = chromium.find_element(
        "css selector", "#passkey-result input[name=tx_id]"
    ).get_attribute("value")
    assertion = chromium.execute_async_script(
        """
        const [txId, done] = arguments;
        const meta = document.querySelector('meta[name="csrf-token"]').content;
        fetch('/transfer/passkey/begin', {method: 'POST', body: JSON.stringify({tx_id: txId}),
              headers: {'Content-Type': 'application/json', 'X-CSRF-Token': meta}})
          .then(r => r.json())
          .then(d => navigator.credentials.get({publicKey: PublicKeyCredential
                .parseRequestOptionsFromJSON({...d.options, userVerification: 'discouraged'})}))
          .then(c => done(JSON.stringify(c.toJSON())), e => done('ERROR ' + e));
        """,
        tx_id,
    )
    assert not assertion.startswith("ERROR"), assertion
    assert json.loads(assertion)["type"] == "public-key"
    submit_credential(chromium, assertion)
    _wait(chromium, lambda d: d.find_elements("css selector", "p.error"))
    assert audit(bank, "passkey_login")[-1]["details"]["reason"] == "user_verification"
    assert bank.services.account(bank.customers["zhangsan"]["account"]).balance == before
    assert "transfer_booked" not in [r["event"] for r in bank.services.audit.records()][-3:]


def submit_credential(driver: Any, credential_json: str) -> None:
    page = driver.find_element("tag name", "html")
    driver.execute_script(
        "const f = document.getElementById('passkey-result');"
        "f.querySelector('input[name=credential]').value = arguments[0]; f.submit();",
        credential_json,
    )
    _wait(driver, lambda d: _stale(page))


def _stale(element: Any) -> bool:
    from selenium.common.exceptions import WebDriverException

    try:
        element.is_enabled()
    except WebDriverException:
        return True
    return False


def test_a_replayed_assertion_is_refused(chromium: Any, authenticator: str, bank: Bank) -> None:
    _login(chromium, bank, "zhangsan")
    register_passkey(chromium, bank)
    logout(chromium)
    password_then_second_step(chromium, bank)
    # keep a copy of exactly what passkey.js posts (an attacker on the wire, or malware)
    chromium.execute_script(
        "const submit = HTMLFormElement.prototype.submit;"
        "HTMLFormElement.prototype.submit = function () {"
        "  const c = this.querySelector('input[name=credential]');"
        "  if (c) localStorage.setItem('captured', c.value);"
        "  return submit.call(this); };"
    )
    press_passkey_button(chromium)
    _wait(chromium, lambda d: _path(d) == "accounts")
    captured = chromium.execute_script("return localStorage.getItem('captured');")
    assert json.loads(captured)["response"]["signature"]
    logout(chromium)
    # replayed into a fresh sign-in (a new challenge was issued for this session)
    password_then_second_step(chromium, bank)
    issued = chromium.execute_async_script(
        """
        const done = arguments[0];
        const meta = document.querySelector('meta[name="csrf-token"]').content;
        fetch('/login/passkey/begin', {method: 'POST', body: '{}',
              headers: {'Content-Type': 'application/json', 'X-CSRF-Token': meta}})
          .then(r => done(r.status), e => done(String(e)));
        """
    )
    assert issued == 200
    submit_credential(chromium, captured)
    assert _path(chromium) == "login/passkey"
    assert chromium.find_elements("css selector", "p.error")
    assert audit(bank, "passkey_login")[-1]["details"]["reason"] == "challenge"
    chromium.get(bank.url + "/accounts")
    assert _path(chromium) == "login"  # not signed in
    assert bank.services.lockout.status("zhangsan").failures == 0


def test_a_sign_counter_regression_is_refused_as_a_possible_clone(
    chromium: Any, authenticator: str, bank: Bank
) -> None:
    _login(chromium, bank, "hengtai")
    register_passkey(chromium, bank)
    logout(chromium)
    password_then_second_step(chromium, bank, "hengtai")
    press_passkey_button(chromium)
    _wait(chromium, lambda d: _path(d) == "accounts")
    (cred,) = credentials(chromium, authenticator)
    assert cred["signCount"] >= 1
    # a copy of the key made earlier (same key, a counter behind the bank's): put it in the
    # authenticator in place of the original
    chromium.execute_cdp_cmd(
        "WebAuthn.removeCredential",
        {"authenticatorId": authenticator, "credentialId": cred["credentialId"]},
    )
    chromium.execute_cdp_cmd(
        "WebAuthn.addCredential",
        {"authenticatorId": authenticator, "credential": {**cred, "signCount": 0}},
    )
    logout(chromium)
    password_then_second_step(chromium, bank, "hengtai")
    press_passkey_button(chromium)
    _wait(chromium, lambda d: d.find_elements("css selector", "p.error"))
    assert "cloned" in chromium.find_element("css selector", "p.error").text
    (clone,) = audit(bank, "passkey_clone_suspected")
    assert clone["user"] == "hengtai" and clone["details"]["presented_count"] == "1"
    assert "passkey" in bank.services.outbox.messages()[-1].text  # the customer is told
    chromium.get(bank.url + "/accounts")
    assert _path(chromium) == "login"
    assert not bank.services.has_passkeys("hengtai")


def test_a_server_configured_for_another_origin_refuses(chromium: Any, authenticator: str) -> None:
    """The bank's RP is localhost with origin http://localhost:1 only: the page at
    http://localhost:PORT makes a passkey, the server refuses its origin."""
    with serve(passkey_rp_id="localhost", passkey_origins=("http://localhost:1",)) as other:
        chromium.get(other.url + "/static/css/bank.css")
        chromium.delete_all_cookies()
        _login(chromium, other, "zhangsan")
        chromium.get(other.url + "/passkeys?lang=en")
        other.clock.offset += 61
        _submit(chromium, "#passkey-start")
        chromium.find_element("name", "code").send_keys(_code_from_outbox(chromium, other))
        _submit(chromium, "#passkey-verify")
        press_passkey_button(chromium)
        _wait(chromium, lambda d: d.find_elements("css selector", "p.error"))
        assert audit(other, "passkey_registered")[-1]["details"]["reason"] == "origin"
        assert other.services.passkeys("zhangsan") == []


def test_a_transfer_that_needs_binding_says_why_a_passkey_cannot_confirm_it(
    chromium: Any, authenticator: str, bank: Bank
) -> None:
    _login(chromium, bank, "zhangsan")
    register_passkey(chromium, bank)
    chromium.get(bank.url + "/transfer?lang=en")
    chromium.find_element("name", "payee_account").send_keys(PAYEE_ACCOUNT)
    chromium.find_element("name", "payee_name").send_keys("王五")
    chromium.find_element("name", "amount").send_keys("6000.00")
    _type(chromium, bank, "transfer-form", NEW_PASSWORD)
    bank.clock.offset += 61
    _submit(chromium, "#transfer-submit")
    why = chromium.find_element("id", "passkey-why")
    assert "amount and payee" in why.text
    assert not chromium.find_elements("id", "passkey-panel")
