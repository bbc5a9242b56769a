"""Driving the reference bank app in Chromium: waits that survive page replacement, the soft
keyboard typed by clicking its keys, SMS codes read from the demo outbox page, login.  Shared by
tests/bank_app/test_browser_*.py (Selenium; the Chromium fixture is plugins/browser.py)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from ebank_auth.store import store_key

WAIT = 10.0
NEW_PASSWORD = "Harbour7Lantern"  # every character is on the alphanumeric soft keyboard
PAYEE_ACCOUNT = "6217000011112222333"


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def to_daytime(clock: Any) -> None:
    """Move a test clock (``offset``) to the next 10:00 in Beijing, outside AU-5's night
    window (at night every login needs an SMS code, whatever else is presented)."""
    now = datetime.fromtimestamp(clock(), ZoneInfo("Asia/Shanghai"))
    target = now.replace(hour=10, minute=0, second=0, microsecond=0)
    if target <= now:
        target += timedelta(days=1)
    clock.offset += (target - now).total_seconds()


@dataclass
class Bank:
    url: str
    services: Any
    clock: Clock
    customers: dict[str, dict[str, str]]


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
    """The current page's path without the leading slash (any host: 127.0.0.1, localhost)."""
    return urlsplit(str(driver.current_url)).path.lstrip("/")


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
