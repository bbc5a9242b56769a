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
from collections.abc import Iterator
from decimal import Decimal
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
    _keyboard_ready,
    _latest_sms,
    _login,
    _path,
    _submit,
    _type,
    _wait,
)
from plugins.browser import browser  # noqa: F401  (the Chromium fixture, not the test client)

pytestmark = pytest.mark.browser


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
