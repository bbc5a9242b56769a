"""The reference bank app in a real headless Chromium (issue 12): the app factory on a
loopback port with a temporary state directory, the real templates, the vendored
sm-crypto and ``static/js/softkeyboard.js`` under the app's own Content-Security-Policy.

The test reads the keyboard's label -> key id map from the server's store (a person reads
the labels off the drawing) and the SMS codes from the demo outbox page, as a person would.
The server's clock is moved forward (never slept on) past the one-code-per-minute limit."""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from ebank_auth.store import store_key
from plugins.browser import browser  # noqa: F401  (the Chromium fixture, not the test client)

pytestmark = pytest.mark.browser

WAIT = 10.0
NEW_PASSWORD = "Harbour7Lantern"  # every character is on the alphanumeric soft keyboard
PAYEE_ACCOUNT = "6217000011112222333"


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Bank:
    url: str
    services: Any
    clock: Clock
    customers: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def bank() -> Iterator[Bank]:
    from app import create_app
    from wiring import DEMO_CUSTOMERS

    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="ebank-bank-browser-") as state:
        app = create_app(Path(state), argon2_memory_kib=1024, clock=clock, demo=True)
        services = app.extensions["bank"]
        for c in DEMO_CUSTOMERS:  # past the forced first-login change
            services.change_password(c["username"], c["password"], NEW_PASSWORD)
        httpd = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield Bank(
                f"http://127.0.0.1:{httpd.server_port}",
                services,
                clock,
                {c["username"]: c for c in DEMO_CUSTOMERS},
            )
        finally:
            httpd.shutdown()
            thread.join(timeout=5)


@pytest.fixture
def chromium(browser: Any, bank: Bank) -> Any:  # noqa: F811
    """The fixture's Chromium without the app's cookies of an earlier test (the fixture
    clears cookies on about:blank, which does not reach this origin's)."""
    browser.get(bank.url + "/static/css/bank.css")
    browser.delete_all_cookies()
    return browser


def _wait(driver: Any, condition: Any) -> Any:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    # a page being replaced answers with stale-element or "node does not belong to the
    # document" errors: keep polling; a real failure ends in a timeout (and a screenshot)
    return WebDriverWait(driver, WAIT, ignored_exceptions=(WebDriverException,)).until(condition)


def _submit(driver: Any, css: str) -> None:
    """Click a submit button and wait until the next page has replaced this one."""
    from selenium.common.exceptions import WebDriverException

    page = driver.find_element("tag name", "html")
    driver.find_element("css selector", css).click()

    def replaced(_driver: Any) -> bool:
        try:
            page.is_enabled()
        except WebDriverException:
            # StaleElementReference, or Chromium's "Node with given id does not belong to the
            # document" while the old page is being torn down: either way it has gone
            return True
        return False

    _wait(driver, replaced)


def _csp_messages(driver: Any) -> list[str]:
    return [
        str(e["message"])
        for e in driver.get_log("browser")
        if "Content Security Policy" in str(e["message"]) or "Refused to" in str(e["message"])
    ]


def _keyboard_ready(driver: Any, form_id: str) -> str:
    """Wait for the soft keyboard of ``form_id``; its keyboard session id."""
    css = f"#{form_id}"
    _wait(driver, lambda d: d.find_element("css selector", css).get_attribute("data-sk-state"))
    form = driver.find_element("css selector", css)
    assert form.get_attribute("data-sk-state") == "ready", form.get_attribute("innerHTML")
    return str(form.find_element("name", "sk_session").get_attribute("value"))


def _type(driver: Any, bank: Bank, form_id: str, text: str) -> None:
    session_id = _keyboard_ready(driver, form_id)
    raw = bank.services.store.get(store_key("sk", "sess", session_id))
    labels = {label: key_id for key_id, label in json.loads(raw)["map"].items()}
    for ch in text:
        driver.find_element(
            "css selector", f'#{form_id} .sk-keyboard [data-key-id="{labels[ch]}"]'
        ).click()
    mask = driver.find_element("css selector", f"#{form_id} .sk-mask")
    assert mask.get_attribute("value") == "*" * len(text)


def _path(driver: Any) -> str:
    return str(driver.current_url).split("?")[0].split("127.0.0.1", 1)[1].split("/", 1)[1]


def _latest_sms(driver: Any, bank: Bank) -> str:
    """The newest SMS, read from the demo outbox page in a second tab (the page the
    customer is on stays as it is: a confirm page is the answer to a POST)."""
    here = driver.current_window_handle
    driver.switch_to.new_window("tab")
    try:
        driver.get(bank.url + "/demo/outbox")
        return str(driver.find_element("css selector", ".outbox li .sms").text)
    finally:
        driver.close()
        driver.switch_to.window(here)


def _code_from_outbox(driver: Any, bank: Bank) -> str:
    m = re.search(r"(?<!\d)(\d{6})(?!\d)", _latest_sms(driver, bank))
    assert m, "no code in the newest SMS of the outbox"
    return m.group(1)


def _enter_username(driver: Any, bank: Bank, username: str) -> None:
    driver.get(bank.url + "/login?lang=en")
    driver.find_element("name", "username").send_keys(username)
    _submit(driver, "form button[type=submit]")
    _wait(driver, lambda d: _path(d) == "login/password")


def _login(driver: Any, bank: Bank, username: str) -> None:
    bank.clock.offset += 61  # one SMS code per minute per customer
    _enter_username(driver, bank, username)
    phrase = driver.find_element("id", "anti-phishing-phrase")
    assert phrase.is_displayed() and phrase.text == bank.customers[username]["phrase"]
    _type(driver, bank, "password-form", NEW_PASSWORD)
    _submit(driver, "#login-submit")
    _wait(driver, lambda d: _path(d) == "login/code")
    code = _code_from_outbox(driver, bank)
    driver.find_element("name", "code").send_keys(code)
    _submit(driver, "form button[type=submit]")
    _wait(driver, lambda d: _path(d) == "accounts")


def test_login_through_the_soft_keyboard(chromium: Any, bank: Bank) -> None:
    _login(chromium, bank, "zhangsan")
    page = chromium.page_source
    account = bank.customers["zhangsan"]["account"]
    assert account not in page and account[-4:] in page  # masked (AU-12)
    assert NEW_PASSWORD not in page
    # the password went as ciphertexts of the soft keyboard: the policy saw that factor
    logins = [r for r in bank.services.audit.records() if r["event"] == "policy_decision"]
    assert logins and NEW_PASSWORD not in json.dumps(logins, ensure_ascii=False)
    assert _csp_messages(chromium) == []


def test_wrong_password_five_times_locks_and_notifies(chromium: Any, bank: Bank) -> None:
    user = bank.customers["lisi"]
    sent = len(bank.services.outbox.messages())
    _enter_username(chromium, bank, "lisi")
    for attempt in range(5):
        _type(chromium, bank, "password-form", "wrong42")
        _submit(chromium, "#login-submit")
        _wait(chromium, lambda d: d.find_elements("css selector", "p.error"))
        assert "not correct" in chromium.find_element("css selector", "p.error").text, attempt
    # locked: even the right password is refused now, with the reason
    _type(chromium, bank, "password-form", NEW_PASSWORD)
    _submit(chromium, "#login-submit")
    _wait(chromium, lambda d: "locked" in d.find_element("css selector", "p.error").text)
    assert bank.services.lockout.status("lisi").locked
    # one notice, visible in the demo outbox, sent to the customer's phone
    assert len(bank.services.outbox.messages()) == sent + 1
    chromium.get(bank.url + "/demo/outbox")
    mine = [
        li.find_element("css selector", ".sms").text
        for li in chromium.find_elements("css selector", ".outbox li")
        if li.find_element("css selector", ".phone").text.endswith(user["phone"][-4:])
    ]
    assert len(mine) == 1 and "5" in mine[0]  # the lockout notice, not a code
    assert not re.search(r"(?<!\d)\d{6}(?!\d)", mine[0])
    assert _csp_messages(chromium) == []


def test_small_transfer_with_sms_code_and_script_memo(chromium: Any, bank: Bank) -> None:
    _login(chromium, bank, "zhangsan")
    bank.clock.offset += 61
    account = bank.customers["zhangsan"]["account"]
    before = bank.services.account(account).balance
    evil = "<script>document.title='pwned'</script>"
    chromium.get(bank.url + "/transfer")
    chromium.find_element("name", "payee_name").send_keys("Wang Wu")
    chromium.find_element("name", "payee_account").send_keys(PAYEE_ACCOUNT)
    chromium.find_element("name", "amount").send_keys("12.34")
    chromium.find_element("name", "memo").send_keys(evil)
    _type(chromium, bank, "transfer-form", NEW_PASSWORD)
    _submit(chromium, "#transfer-submit")
    _wait(chromium, lambda d: d.find_elements("name", "tx_id"))
    confirm = chromium.find_element("css selector", ".tx-display").text
    assert "12.34" in confirm and evil in confirm  # shown as text
    sms = _latest_sms(chromium, bank)
    assert "12.34" in sms  # the code's message says what it approves
    code = _code_from_outbox(chromium, bank)
    chromium.find_element("name", "code").send_keys(code)
    _submit(chromium, "form[action$='/transfer/confirm'] button")
    _wait(chromium, lambda d: _path(d) == "transfer/confirm")
    done = chromium.find_element("css selector", ".tx-display").text
    assert evil in done and chromium.title != "pwned"
    assert bank.services.account(account).balance == before - Decimal("12.34")
    chromium.get(bank.url + "/accounts")
    assert evil in chromium.find_element("tag name", "main").text and chromium.title != "pwned"
    assert _csp_messages(chromium) == []


def test_form_posted_without_the_csrf_token_is_refused(chromium: Any, bank: Bank) -> None:
    """Attack: a form posted without the page's CSRF token (what a cross-site page can
    forge) is refused, and the login does not advance."""
    chromium.get(bank.url + "/login?lang=en")
    chromium.execute_script("document.querySelector('input[name=csrf_token]').remove()")
    chromium.find_element("name", "username").send_keys("zhangsan")
    _submit(chromium, "form button[type=submit]")
    _wait(chromium, lambda d: d.find_elements("css selector", "p.error, .error"))
    assert "CSRF" in chromium.find_element("tag name", "main").text
    chromium.get(bank.url + "/login/password")
    assert _path(chromium) == "login"  # no pending login was started
    assert _csp_messages(chromium) == []


def test_switch_to_the_system_keyboard_is_flagged(chromium: Any, bank: Bank) -> None:
    """SK-1 b in the app: the switch goes through ``/softkeyboard/switch`` with the page's
    CSRF header; the password is then typed on the system keyboard (still encrypted per key)
    and the policy sees a plain password -- taken from the server's keyboard session."""
    bank.clock.offset += 61
    _enter_username(chromium, bank, "zhangsan")
    _keyboard_ready(chromium, "password-form")
    chromium.find_element("css selector", "#password-form .sk-switch").click()
    form = chromium.find_element("id", "password-form")
    _wait(chromium, lambda d: form.get_attribute("data-sk-mode") == "system")
    mask = chromium.find_element("css selector", "#password-form .sk-mask")
    mask.send_keys(NEW_PASSWORD)
    assert mask.get_attribute("value") == "*" * len(NEW_PASSWORD)
    assert NEW_PASSWORD not in chromium.page_source
    _submit(chromium, "#login-submit")
    _wait(chromium, lambda d: _path(d) == "login/code")
    cookie = chromium.get_cookie("bank_session")["value"]
    data = json.loads(bank.services.store.get(f"bank:sess:{cookie}"))["data"]
    assert data["factors"] == ["password"]
    assert _csp_messages(chromium) == []


def test_idle_logout_is_enforced_by_the_server(chromium: Any, bank: Bank) -> None:
    """After the idle time (server clock moved past it) the next click lands on the login
    page with the notice: the server ended the session, not a script in the page."""
    _login(chromium, bank, "hengtai")
    bank.clock.offset += 301  # the app's idle limit is 300 s
    chromium.find_element("css selector", "nav a[href='/transfer']").click()
    _wait(chromium, lambda d: _path(d) == "login")
    assert chromium.find_element("id", "idle-logout").is_displayed()
    chromium.get(bank.url + "/accounts")  # the old cookie opens nothing any more
    _wait(chromium, lambda d: _path(d) == "login")
