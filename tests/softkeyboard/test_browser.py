"""The soft keyboard in a real browser (SK-1..3): headless Chromium runs
``examples/bank_app/static/js/softkeyboard.js`` with the vendored sm-crypto against a stand-alone
Flask server (``plugins.softkeyboard_server``) that decodes through :class:`SoftKeyboard`."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.crypto import sm2
from ebank_auth.errors import DecryptionError, SoftKeyboardError
from plugins.softkeyboard_server import FIELDS, KeyboardServer, keyboard_server

pytestmark = pytest.mark.browser

PIN = "604917"
WAIT = 10.0


@pytest.fixture(scope="module")
def server() -> Iterator[KeyboardServer]:
    with keyboard_server() as srv:
        yield srv


def _wait(driver: Any, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(condition)


def _open(driver: Any, server: KeyboardServer, path: str = "/") -> str:
    """Load the page and wait for the keyboard; returns its session id."""
    driver.get(server.url + path)
    _wait(driver, lambda d: d.find_element("css selector", "form").get_attribute("data-sk-state"))
    form = driver.find_element("css selector", "form")
    assert form.get_attribute("data-sk-state") == "ready", driver.page_source
    return str(driver.find_element("name", "sk_session").get_attribute("value"))


def _press(driver: Any, server: KeyboardServer, session_id: str, text: str) -> None:
    labels = server.labels(session_id)
    for ch in text:
        driver.find_element("css selector", f'.sk-keyboard [data-key-id="{labels[ch]}"]').click()


def _submit(driver: Any) -> str:
    driver.find_element("id", "sk-submit").click()
    result = _wait(driver, lambda d: d.find_elements("id", "result"))
    return str(result[0].text)


def _csp_messages(driver: Any) -> list[str]:
    return [
        str(e["message"])
        for e in driver.get_log("browser")
        if "Content Security Policy" in str(e["message"])
    ]


def test_layout_renders(browser: Any, server: KeyboardServer) -> None:
    session_id = _open(browser, server)
    layout = server.layouts[session_id]
    keys = browser.find_elements("css selector", ".sk-keyboard svg [data-key-id]")
    # the drawn keys are exactly the session's keys, in the server's shuffled order
    assert [k.get_attribute("data-key-id") for k in keys] == [kid for kid, _ in layout.keys]
    assert all(k.is_displayed() and k.size["width"] > 20 for k in keys)
    # the labels are pixels only: no digit appears as text in the keyboard
    box = browser.find_element("css selector", ".sk-keyboard")
    assert not any(ch.isdigit() for ch in box.text)
    assert browser.find_element("name", "sk_switched").get_attribute("value") == "0"


def test_pin_clicked_in_browser_decrypts_to_the_digits(
    browser: Any, server: KeyboardServer
) -> None:
    session_id = _open(browser, server)
    _press(browser, server, session_id, PIN)
    assert browser.find_element("id", "sk-mask").get_attribute("value") == "*" * len(PIN)
    keystrokes = json.loads(browser.find_element("name", "sk_keystrokes").get_attribute("value"))
    assert len(keystrokes) == len(PIN)
    # the page holds ciphertexts only: no ciphertext repeats, none carries the PIN
    assert len(set(keystrokes)) == len(PIN)
    assert PIN not in browser.page_source
    assert _submit(browser) == "accepted"
    sub = server.submissions[-1]
    assert (sub.value, sub.system_keyboard, sub.error) == (PIN, False, None)
    assert set(sub.form) == set(FIELDS)  # the mask field is never posted
    assert sub.form["sk_switched"] == "0"


def test_backspace_in_browser(browser: Any, server: KeyboardServer) -> None:
    session_id = _open(browser, server)
    _press(browser, server, session_id, "1239")
    browser.find_element("id", "sk-backspace").click()
    _press(browser, server, session_id, "45")
    assert _submit(browser) == "accepted"
    assert server.submissions[-1].value == "12345"


def test_shorter_submission_refused(browser: Any, server: KeyboardServer) -> None:
    """Attack: whoever relays the form (a man in the browser, a proxy) drops the last
    keystroke ciphertext so that a prefix of the PIN is checked.  The browser's length
    commitment covers six keystrokes, so the server refuses five."""
    session_id = _open(browser, server)
    _press(browser, server, session_id, PIN)
    browser.execute_script(
        "var f = document.querySelector('[name=sk_keystrokes]');"
        "f.value = JSON.stringify(JSON.parse(f.value).slice(0, 5));"
    )
    assert _submit(browser) == "refused"
    sub = server.submissions[-1]
    assert sub.value is None
    assert "committed input length" in str(sub.error)


def test_csp_blocks_inline_script_and_page_has_none(browser: Any, server: KeyboardServer) -> None:
    with urllib.request.urlopen(server.url + "/") as resp:
        csp = resp.headers["Content-Security-Policy"]
        html = resp.read().decode()
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp

    class Scripts(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.inline: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            names = {k for k, _ in attrs}
            if tag == "script" and "src" not in names:
                self.inline.append(tag)
            self.inline.extend(k for k in names if k.startswith("on"))

    parser = Scripts()
    parser.feed(html)
    assert parser.inline == []

    # control: the browser really enforces the header (an inline script is refused and logged)
    browser.get(server.url + "/inline")
    assert browser.title == "soft keyboard"
    assert _csp_messages(browser), "the CSP violation of the control page was not logged"

    # the keyboard page runs the whole flow without a single CSP violation
    session_id = _open(browser, server)
    _press(browser, server, session_id, PIN)
    assert _submit(browser) == "accepted"
    assert _csp_messages(browser) == []


def test_switch_to_system_keyboard_is_flagged(browser: Any, server: KeyboardServer) -> None:
    soft_session = _open(browser, server)
    _press(browser, server, soft_session, "12")
    browser.find_element("id", "sk-switch").click()
    form = browser.find_element("css selector", "form")
    _wait(browser, lambda d: form.get_attribute("data-sk-mode") == "system")
    assert browser.find_element("name", "sk_switched").get_attribute("value") == "1"
    system_session = browser.find_element("name", "sk_session").get_attribute("value")
    assert system_session != soft_session
    mask = browser.find_element("id", "sk-mask")
    mask.send_keys("Ab3$x9")
    assert mask.get_attribute("value") == "******"  # the typed characters never sit in the DOM
    assert _submit(browser) == "accepted"
    sub = server.submissions[-1]
    assert (sub.value, sub.system_keyboard) == ("Ab3$x9", True)
    assert sub.form["sk_switched"] == "1"
    # the switch closed the soft session: nothing can be submitted on it any more
    with pytest.raises(SoftKeyboardError, match="unknown, expired or already used"):
        server.keyboard.submit(soft_session, [b"x"], commitment=b"")


def test_switch_flag_cannot_be_hidden_from_the_server(browser: Any, server: KeyboardServer) -> None:
    """Attack: a page script resets the hidden field to sk_switched=0 to hide the weaker
    system-keyboard input from policy.  The server's verdict comes from the session it
    opened (DecodedInput.system_keyboard), not from the form."""
    _open(browser, server)
    browser.find_element("id", "sk-switch").click()
    form = browser.find_element("css selector", "form")
    _wait(browser, lambda d: form.get_attribute("data-sk-mode") == "system")
    browser.find_element("id", "sk-mask").send_keys("Zx81q!")
    browser.execute_script("document.querySelector('[name=sk_switched]').value = '0';")
    assert _submit(browser) == "accepted"
    sub = server.submissions[-1]
    assert sub.form["sk_switched"] == "0"
    assert (sub.value, sub.system_keyboard) == ("Zx81q!", True)


def test_sm_crypto_ciphertext_format(browser: Any, server: KeyboardServer) -> None:
    """sm-crypto's cipherMode 1 is C1C3C2 hex with C1's 04 prefix left out: our decrypt
    refuses it as is, accepts it as CipherFormat.C1C3C2 once 04 is prepended, and accepts the
    client's DER conversion with the default format (what SoftKeyboard.submit uses)."""
    key = sm2.generate_private_key()
    _open(browser, server)
    point = key.public_key().to_bytes().hex()
    raw, der = browser.execute_script(
        "var c = sm2.doEncrypt([0x53, 0x4b, 0x31, 0x00, 0xff], arguments[0], 1);"
        "return [c, ebankSoftKeyboard.c1c3c2ToDer(c)];",
        point,
    )
    for fmt in sm2.CipherFormat:
        with pytest.raises(DecryptionError):
            key.decrypt(bytes.fromhex(raw), fmt)
    assert key.decrypt(b"\x04" + bytes.fromhex(raw), sm2.CipherFormat.C1C3C2) == b"SK1\x00\xff"
    assert key.decrypt(bytes.fromhex(der)) == b"SK1\x00\xff"


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=6, max_size=6))
def test_browser_ciphertexts_decrypt_to_what_was_encrypted(
    browser: Any, server: KeyboardServer, messages: list[bytes]
) -> None:
    """Property: whatever the browser encrypts (any length, so every DER length form, and
    x1/y1 with or without a high bit or leading zero byte) decrypts on the server to exactly
    those bytes and to nothing else under another key."""
    key = sm2.generate_private_key()
    if not browser.current_url.startswith(server.url):
        _open(browser, server)
    ders = browser.execute_script(
        "var point = arguments[1];"
        "return arguments[0].map(function (m) {"
        "  return ebankSoftKeyboard.c1c3c2ToDer(ebankSoftKeyboard.encryptC1C3C2(m, point));"
        "});",
        [list(m) for m in messages],
        key.public_key().to_bytes().hex(),
    )
    other = sm2.generate_private_key()
    for message, der in zip(messages, ders, strict=True):
        assert key.decrypt(bytes.fromhex(der)) == message
        with pytest.raises(DecryptionError):
            other.decrypt(bytes.fromhex(der))


def test_text_inserted_without_keystrokes_never_sits_in_the_field(
    browser: Any, server: KeyboardServer
) -> None:
    """Attack: text that reaches the system-keyboard field without a key press (paste, drag
    and drop, an IME or on-screen keyboard, a password manager's autofill) would sit in the
    DOM in clear, readable by any form-enumerating script (SK-3 e), and be silently left out
    of the encrypted keystrokes.  The field must keep showing only the mask."""
    _open(browser, server)
    browser.find_element("id", "sk-switch").click()
    form = browser.find_element("css selector", "form")
    _wait(browser, lambda d: form.get_attribute("data-sk-mode") == "system")
    mask = browser.find_element("id", "sk-mask")
    mask.send_keys("ab")
    browser.execute_script(
        "var m = arguments[0]; m.focus(); m.setSelectionRange(m.value.length, m.value.length);"
        "document.execCommand('insertText', false, 'Secret99');",
        mask,
    )
    assert mask.get_attribute("value") == "**"
    assert "Secret99" not in browser.page_source
    assert form.get_attribute("data-sk-count") == "2"


@pytest.mark.parametrize("url", ["http://example.com/", "http://203.0.113.7/"])
def test_browser_reaches_loopback_only(browser: Any, server: KeyboardServer, url: str) -> None:
    from selenium.common.exceptions import WebDriverException

    with pytest.raises(
        WebDriverException, match=r"ERR_(NAME_NOT_RESOLVED|PROXY_CONNECTION_FAILED)"
    ):
        browser.get(url)
    _open(browser, server)  # while the loopback server is reached
