"""The USB Key in the browser, end to end (issue 12): headless Chromium on the bank app, the page's
``static/js/usbkey.js`` calling the real local signing agent (``ebank_auth.agent``) on loopback,
the agent reaching the software token through a real isolated pcscd (vpcd), and the token's
screen page (``WebScreen``) opened in a second tab where the test presses Approve or Reject as a
customer would.  Enrolment with key attestation, a large transfer approved and one rejected on
the token, the back office's sign-in with the token's login key, and the customer's login
step-up with the same login key (registered on the Security page) and a trusted device."""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from ebank_auth.agent import AgentConfig, create_agent
from ebank_auth.usbkey import open_token
from ebank_auth.usbkey.emulator.card import token_card
from ebank_auth.usbkey.emulator.screen_page import WebScreen
from ebank_auth.usbkey.protocol import ContainerUsage
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
)
from plugins.browser import browser  # noqa: F401  (the Chromium fixture)
from plugins.pcscd import PcscdVpcd, pcscd_vpcd  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.pcsc]

PIN = "314159"  # the software token's factory user PIN


@dataclass
class Setup:
    bank: Bank
    screen: WebScreen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def setup(pcscd_vpcd: PcscdVpcd) -> Iterator[Setup]:  # noqa: F811
    from app import create_app
    from wiring import DEMO_CUSTOMERS

    with tempfile.TemporaryDirectory(prefix="ebank-usbkey-browser-") as tmp:
        token_state = Path(tmp) / "token"
        screen = WebScreen(port=0)
        card = token_card(token_state, screen)
        with pcscd_vpcd.inserted(card, reader=0):
            # the staff member's login key, made on the token as an integrator would
            with open_token(software_token_state=token_state) as token:
                token.verify_pin(PIN)
                info = token.generate_key(container="login", usage=ContainerUsage.LOGIN)
            staff_pem = Path(tmp) / "staff.pub.pem"
            staff_pem.write_bytes(info.public_key().to_pem())
            bank_port = _free_port()
            bank_url = f"http://127.0.0.1:{bank_port}"
            config = AgentConfig(origins=(bank_url,), port=0)
            with create_agent(config, software_token_state=token_state).start() as agent:
                clock = Clock()
                app = create_app(
                    Path(tmp) / "bank",
                    argon2_memory_kib=1024,
                    clock=clock,
                    demo=True,
                    agent_url=agent.url,
                    software_token_state=token_state,
                    staff_keys=(staff_pem,),
                )
                services = app.extensions["bank"]
                for c in DEMO_CUSTOMERS:
                    services.change_password(c["username"], c["password"], NEW_PASSWORD)
                httpd = make_server("127.0.0.1", bank_port, app, threaded=True)
                thread = threading.Thread(target=httpd.serve_forever, daemon=True)
                thread.start()
                try:
                    bank = Bank(
                        bank_url, services, clock, {c["username"]: c for c in DEMO_CUSTOMERS}
                    )
                    yield Setup(bank, screen)
                finally:
                    httpd.shutdown()
                    thread.join(timeout=5)
        screen.close()


@pytest.fixture
def chromium(browser: Any, setup: Setup) -> Any:  # noqa: F811
    browser.get(setup.bank.url + "/static/css/bank.css")
    browser.delete_all_cookies()
    return browser


def _press_on_token(driver: Any, screen: WebScreen, choice: str, expect: str) -> str:
    """Open the token's screen in a second tab, wait until it shows ``expect``, press
    ``choice``; returns what the screen showed.  The bank's tab stays as it is."""
    here = driver.current_window_handle
    driver.switch_to.new_window("tab")
    try:
        driver.get(screen.url)

        def showing(d: Any) -> bool:
            d.refresh()
            rows = d.find_elements("css selector", ".screen .row")
            return any(expect in r.text for r in rows)

        _wait(driver, showing)
        shown = "\n".join(r.text for r in driver.find_elements("css selector", ".screen .row"))
        _submit(driver, f"#{choice}")
        return shown
    finally:
        driver.close()
        driver.switch_to.window(here)


def _usbkey_action(driver: Any) -> None:
    pin = driver.find_element("id", "usbkey-pin")
    pin.clear()
    pin.send_keys(PIN)
    driver.find_element("id", "usbkey-go").click()


def _enrol(driver: Any, setup: Setup) -> None:
    bank = setup.bank
    bank.clock.offset += 61  # one SMS code per minute
    driver.get(bank.url + "/usbkey")
    _submit(driver, "#usbkey-start")
    code = _code_from_outbox(driver, bank)
    driver.find_element("name", "code").send_keys(code)
    _usbkey_action(driver)
    _wait(driver, lambda d: d.find_elements("id", "usbkey-enrolled"))
    # the PIN never went to the bank: it has no name, so no form carries it
    assert driver.find_element("id", "usbkey-pin").get_attribute("name") in (None, "")
    _usbkey_action(driver)  # store the bank's certificate on the token
    _wait(driver, lambda d: d.find_element("id", "usbkey-status").text)


def _start_large_transfer(driver: Any, bank: Bank, amount: str, memo: str) -> None:
    driver.get(bank.url + "/transfer")
    driver.find_element("name", "payee_name").send_keys("王五")
    driver.find_element("name", "payee_account").send_keys(PAYEE_ACCOUNT)
    driver.find_element("name", "amount").send_keys(amount)
    driver.find_element("name", "memo").send_keys(memo)
    _type(driver, bank, "transfer-form", NEW_PASSWORD)
    _submit(driver, "#transfer-submit")
    _wait(driver, lambda d: d.find_elements("id", "usbkey-panel"))


def _balance(bank: Bank, user: str) -> Decimal:
    return Decimal(bank.services.account(bank.customers[user]["account"]).balance)


def test_large_transfers_rejected_and_approved_on_the_token(chromium: Any, setup: Setup) -> None:
    bank = setup.bank
    _login(chromium, bank, "zhangsan")
    _enrol(chromium, setup)
    before = _balance(bank, "zhangsan")

    # the customer reads the screen and refuses: nothing is signed, nothing booked
    _start_large_transfer(chromium, bank, "50100.00", "退货")
    _usbkey_action(chromium)
    _press_on_token(chromium, setup.screen, "reject", "50,100.00")
    _wait(chromium, lambda d: d.find_elements("id", "cancelled"))
    assert _balance(bank, "zhangsan") == before

    # approved: the server verifies the signature over what the token showed, then books
    _start_large_transfer(chromium, bank, "50000.00", "设备款")
    _usbkey_action(chromium)
    shown = _press_on_token(chromium, setup.screen, "approve", "50,000.00")
    assert PAYEE_ACCOUNT[-4:] in shown.replace(" ", "")
    _wait(chromium, lambda d: _path(d) == "transfer/sign" and "50,000.00" in d.page_source)
    assert _balance(bank, "zhangsan") == before - Decimal("50000.00")
    events = [r["event"] for r in bank.services.audit.records()]
    assert events.count("transfer_cancelled") == 1 and events.count("transfer_booked") == 1
    assert _csp_messages(chromium) == []


def test_staff_sign_in_with_the_token_and_the_back_office(chromium: Any, setup: Setup) -> None:
    bank = setup.bank
    chromium.get(bank.url + "/staff/login?lang=en")
    chromium.find_element("name", "username").send_keys("admin")
    chromium.find_element("name", "password").send_keys("Staff-Pass-2026")
    _submit(chromium, "#staff-submit")
    _wait(chromium, lambda d: d.find_elements("id", "usbkey-panel"))
    _usbkey_action(chromium)
    _wait(chromium, lambda d: _path(d) == "staff")
    report = chromium.find_element("id", "audit-report")
    assert "intact" in report.text
    assert chromium.find_element("id", "lockouts").is_displayed()
    assert _csp_messages(chromium) == []


def _password_step(driver: Any, bank: Bank, username: str, lands_on: str) -> None:
    _enter_username(driver, bank, username)
    _type(driver, bank, "password-form", NEW_PASSWORD)
    _submit(driver, "#login-submit")
    _wait(driver, lambda d: _path(d) == lands_on)


def _logout(driver: Any) -> None:
    _submit(driver, "nav form button[type=submit]")
    _wait(driver, lambda d: _path(d) == "login")


def test_customer_login_step_up_with_the_usb_key_and_a_trusted_device(
    chromium: Any, setup: Setup
) -> None:
    bank = setup.bank
    _login(chromium, bank, "zhangsan")  # this browser is a new device: SMS code, then bound
    if bank.services.usbkey_of("zhangsan") is None:
        _enrol(chromium, setup)
    # register the token's login key: an SMS step-up, then the agent signs a fresh challenge
    bank.clock.offset += 61
    chromium.get(bank.url + "/security")
    _submit(chromium, "#security-start")
    chromium.find_element("name", "code").send_keys(_code_from_outbox(chromium, bank))
    _submit(chromium, "#security-code-form button[type=submit]")
    chromium.find_element("id", "login-key-register").click()
    _wait(chromium, lambda d: d.find_elements("id", "usbkey-panel"))
    _usbkey_action(chromium)
    _wait(chromium, lambda d: d.find_elements("id", "security-notice"))
    assert bank.services.login_key_of("zhangsan") is not None

    # the next login on this (bound) device offers the USB Key; no SMS is sent
    _logout(chromium)
    sent = len(bank.services.outbox.messages())
    _password_step(chromium, bank, "zhangsan", "login/choose")
    assert chromium.find_elements("id", "choice-usbkey") and chromium.find_elements(
        "id", "choice-sms"
    )
    _usbkey_action(chromium)
    _wait(chromium, lambda d: _path(d) == "accounts")
    assert len(bank.services.outbox.messages()) == sent

    # trust this device with the USB Key: the next login needs the password only
    chromium.get(bank.url + "/security")
    chromium.find_element("id", "trust-this").click()
    _wait(chromium, lambda d: d.find_elements("id", "usbkey-panel"))
    _usbkey_action(chromium)
    _wait(chromium, lambda d: d.find_elements("id", "security-notice"))
    assert len(chromium.find_elements("css selector", "#devices tr.trusted")) == 1
    _logout(chromium)
    _password_step(chromium, bank, "zhangsan", "accounts")
    assert _csp_messages(chromium) == []
