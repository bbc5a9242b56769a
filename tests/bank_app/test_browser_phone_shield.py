"""The phone shield in the browser, end to end (issue 13, item 6): headless Chromium on the bank
app served by a real werkzeug server on loopback, and the software phone's own page
(``PhonePage``: the phone's screen, in a second tab) talking to the bank's phone-shield API over
real HTTP.  The customer enrols from the bank's settings page (password + SMS code, link and
reference code; the phone "scans" the link, the customer types the SMS authorisation code and a
PIN on the phone), then a transfer waits on "confirm on your phone" until Approve is pressed on
the phone's page.  The phone's hardware is the software keystore and attestation authority:
no phone hardware runs here."""

from __future__ import annotations

import re
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from werkzeug.serving import make_server

from ebank_auth.phone_shield.emulator import KdfCost, SoftwarePhone
from ebank_auth.phone_shield.emulator.page import PhonePage
from plugins.bank_browser import (
    NEW_PASSWORD,
    PAYEE_ACCOUNT,
    Bank,
    Clock,
    _code_from_outbox,
    _csp_messages,
    _login,
    _path,
    _submit,
    _type,
    _wait,
)
from plugins.browser import browser  # noqa: F401  (the Chromium fixture)

pytestmark = [pytest.mark.browser]

PIN = "864200"


@dataclass
class Setup:
    bank: Bank
    page: PhonePage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    from app import create_app
    from wiring import DEMO_CUSTOMERS

    with tempfile.TemporaryDirectory(prefix="ebank-phone-browser-") as tmp:
        phone_state = Path(tmp) / "phone"
        clock = Clock()
        app = create_app(
            Path(tmp) / "bank",
            argon2_memory_kib=1024,
            clock=clock,
            demo=True,
            software_phone_state=phone_state,  # trust this software phone's attestation root
        )
        services = app.extensions["bank"]
        for c in DEMO_CUSTOMERS:
            services.change_password(c["username"], c["password"], NEW_PASSWORD)
        port = _free_port()
        httpd = make_server("127.0.0.1", port, app, threaded=True)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        phone = SoftwarePhone(
            phone_state, kdf_cost=KdfCost(1, 1024, 1), bank_root=services.ca.certificate
        )
        page = PhonePage(phone)
        try:
            bank = Bank(
                f"http://127.0.0.1:{port}",
                services,
                clock,
                {c["username"]: c for c in DEMO_CUSTOMERS},
            )
            yield Setup(bank, page)
        finally:
            page.close()
            httpd.shutdown()
            thread.join(timeout=5)


@pytest.fixture
def chromium(browser: Any, setup: Setup) -> Any:  # noqa: F811
    browser.get(setup.bank.url + "/static/css/bank.css")
    browser.delete_all_cookies()
    return browser


def _on_phone(driver: Any, url: str, action: Any) -> Any:
    """Do ``action(driver)`` on the phone's page in a second tab; the bank's tab stays."""
    here = driver.current_window_handle
    driver.switch_to.new_window("tab")
    try:
        driver.get(url)
        return action(driver)
    finally:
        driver.close()
        driver.switch_to.window(here)


def test_enrol_and_approve_a_transfer_on_the_phone(chromium: Any, setup: Setup) -> None:
    bank, page = setup.bank, setup.page
    _login(chromium, bank, "zhangsan")

    # settings → Phone shield: the identity step (login password + SMS code)
    bank.clock.offset += 61  # one SMS code per minute
    chromium.get(bank.url + "/phone")
    _submit(chromium, "#phone-start")
    code = _code_from_outbox(chromium, bank)
    chromium.find_element("name", "password").send_keys(NEW_PASSWORD)
    chromium.find_element("name", "code").send_keys(code)
    _submit(chromium, "#phone-identity-submit")
    link = chromium.find_element("id", "phone-link").text
    reference = chromium.find_element("id", "phone-reference").text
    sms = bank.services.outbox.messages()[-1]
    m = re.search(r"(?<!\d)(\d{8})(?!\d)", sms.text)
    assert m and sms.purpose == "phone-shield-authorisation"

    # the phone: "scan" the link, compare the reference code, type the SMS code and a PIN
    def enrol_on_phone(d: Any) -> str:
        d.get(page.url + "open?link=" + quote(link, safe=""))
        _wait(d, lambda x: x.find_elements("id", "reference"))
        shown = str(d.find_element("id", "reference").text)
        d.find_element("id", "code").send_keys(m.group(1))
        d.find_element("id", "pin").send_keys(PIN)
        _submit(d, "#enrol")
        _wait(d, lambda x: "enrolled" in x.find_element("id", "message").text)
        return shown

    assert _on_phone(chromium, page.url, enrol_on_phone) == reference
    # the bank's page noticed by itself (phone.js polls) and shows the phone shield
    _wait(chromium, lambda d: d.find_elements("id", "phone-record"))
    assert "TEE" in chromium.find_element("id", "phone-level").text

    # a tier-2 transfer: "confirm on your phone", approved on the phone's page
    account = bank.customers["zhangsan"]["account"]
    before = bank.services.account(account).balance
    chromium.get(bank.url + "/transfer")
    chromium.find_element("name", "payee_name").send_keys("王五")
    chromium.find_element("name", "payee_account").send_keys(PAYEE_ACCOUNT)
    chromium.find_element("name", "amount").send_keys("6000.00")
    chromium.find_element("name", "memo").send_keys("房租")
    _type(chromium, bank, "transfer-form", NEW_PASSWORD)
    _submit(chromium, "#transfer-submit")
    _wait(chromium, lambda d: d.find_elements("id", "phone-confirm"))

    def approve(d: Any) -> str:
        def showing(x: Any) -> bool:
            x.refresh()
            return any("6,000.00" in e.text for e in x.find_elements("id", "transaction"))

        _wait(d, showing)
        shown = str(d.find_element("id", "transaction").text)
        d.find_element("id", "pin").send_keys(PIN)
        _submit(d, "#approve")
        _wait(d, lambda x: "signed" in x.find_element("id", "message").text)
        return shown

    shown = _on_phone(chromium, page.url, approve)
    assert PAYEE_ACCOUNT[-4:] in shown.replace(" ", "")
    _wait(chromium, lambda d: _path(d) == "transfer/phone/result" and "6,000.00" in d.page_source)
    assert bank.services.account(account).balance == before - Decimal("6000.00")
    events = [r["event"] for r in bank.services.audit.records()]
    assert "phone_shield_enrolled" in events and events.count("transfer_booked") == 1
    assert _csp_messages(chromium) == []
