"""The token's screen as a web page (``usbkey/emulator/screen_page.py``), pressed over real HTTP.

A confirm-and-sign runs over an in-process software token whose display is a :class:`WebScreen`;
the test is the person at the screen: it reads the page with ``urllib`` and presses its buttons.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ebank_auth.errors import ConfirmationRejected, ConfirmationTimeout, EbankAuthError
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.display_layout import layout_text
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.screen_page import (
    SCREEN_FILE,
    SCREEN_PORT_ENV,
    ScreenToken,
    WebScreen,
    screen_token,
)
from ebank_auth.usbkey.session import TokenSession

from .conftest import USER_PIN

SRC = Path(__file__).resolve().parents[3] / "src"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with _OPENER.open(url, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode("utf-8")


def post(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> int:
    data = urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers=headers or {})
    try:
        with _OPENER.open(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def wait_showing(screen: WebScreen, timeout: float = 10.0) -> str:
    """Poll state.json like the page's script, then return the page."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, _, body = get(screen.url + "state.json")
        if json.loads(body)["showing"]:
            return get(screen.url)[2]
        time.sleep(0.02)
    raise AssertionError("the screen never showed the transaction")


def nonce_of(page: str) -> str:
    found = set(re.findall(r'name="nonce" value="([0-9a-f]+)"', page))
    assert len(found) == 1, page
    return found.pop()


def page_rows(page: str) -> list[str]:
    return [html.unescape(r) for r in re.findall(r'<pre class="row">(.*?)</pre>', page, re.S)]


class Signing:
    """confirm_and_sign running in a thread, as the token waits for its button."""

    def __init__(self, session: TokenSession, tx: Transaction, lang: str = "zh") -> None:
        self.result: object = None
        self.thread = threading.Thread(target=self._run, args=(session, tx, lang), daemon=True)
        self.thread.start()

    def _run(self, session: TokenSession, tx: Transaction, lang: str) -> None:
        try:
            self.result = session.confirm_and_sign(tx, lang=lang)
        except EbankAuthError as exc:
            self.result = exc

    def finish(self, timeout: float = 15.0) -> object:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the token is still waiting for its button"
        return self.result


@pytest.fixture
def screen() -> Iterator[WebScreen]:
    with WebScreen() as s:
        yield s


@pytest.fixture
def signer_with_screen(
    screen: WebScreen, make_session: Callable[[SoftToken], TokenSession]
) -> Iterator[tuple[SoftToken, TokenSession]]:
    token = SoftToken(None, screen, confirm_timeout=20)
    s = make_session(token)
    s.verify_pin(USER_PIN)
    s.generate_key()
    try:
        yield token, s
    finally:
        s.close()


def test_approve_on_the_page_signs_what_the_page_showed(
    screen: WebScreen,
    signer_with_screen: tuple[SoftToken, TokenSession],
    make_tx: Callable[..., Transaction],
) -> None:
    token, session = signer_with_screen
    status, _, idle = get(screen.url)
    assert status == 200 and 'id="idle"' in idle and "nonce" not in idle
    tx = make_tx(memo="a memo long enough to need a continuation row on the token")
    signing = Signing(session, tx)
    page = wait_showing(screen)
    # what the page shows is the display text laid out, screen by screen, i/n included
    screens = layout_text(tx.display_text("zh"))
    assert page_rows(page) == [row for s in screens for row in s.rows]
    assert [f"{s.number}/{s.count}" for s in screens] == re.findall(
        r'<div class="status">(\d+/\d+)</div>', page
    )
    assert len(screens) > 1
    assert post(screen.url + "press", {"nonce": nonce_of(page), "choice": "approve"}) == 303
    result = signing.finish()
    assert not isinstance(result, Exception), result
    result.verify(session.public_key().public_key())  # type: ignore[attr-defined]
    assert result.signed_bytes == tx.encode()  # type: ignore[attr-defined]
    assert result.display_text == token.display.shown[-1] == tx.display_text("zh")  # type: ignore[attr-defined]
    # after the decision the screen is blank again
    assert json.loads(get(screen.url + "state.json")[2])["showing"] is False


def test_reject_on_the_page_signs_nothing(
    screen: WebScreen,
    signer_with_screen: tuple[SoftToken, TokenSession],
    make_tx: Callable[..., Transaction],
) -> None:
    _, session = signer_with_screen
    signing = Signing(session, make_tx(), "en")
    page = wait_showing(screen)
    assert any(r.startswith("Amount: CNY 1,234.50") for r in page_rows(page))
    assert post(screen.url + "press", {"nonce": nonce_of(page), "choice": "reject"}) == 303
    assert isinstance(signing.finish(), ConfirmationRejected)


def test_presses_without_capability_origin_or_current_nonce_are_refused(
    screen: WebScreen,
    signer_with_screen: tuple[SoftToken, TokenSession],
    make_tx: Callable[..., Transaction],
) -> None:
    _, session = signer_with_screen
    # a nonce of an earlier confirmation (rejected) is stale for the next one
    first = Signing(session, make_tx(tx_id="T-old"))
    old_nonce = nonce_of(wait_showing(screen))
    assert post(screen.url + "press", {"nonce": old_nonce, "choice": "reject"}) == 303
    assert isinstance(first.finish(), ConfirmationRejected)

    signing = Signing(session, make_tx(tx_id="T-new"))
    nonce = nonce_of(wait_showing(screen))
    assert nonce != old_nonce
    approve = {"nonce": nonce, "choice": "approve"}
    base = screen.url.rsplit("/s/", 1)[0]
    wrong_cap = f"{base}/s/{'0' * 32}/press"
    refused = [
        post(f"{base}/press", approve),  # no capability at all
        post(wrong_cap, approve),  # a guessed capability
        post(screen.url + "press", approve, {"Origin": "http://evil.example"}),
        post(screen.url + "press", approve, {"Origin": "null"}),
        post(screen.url + "press", approve, {"Origin": base.replace("127.0.0.1", "127.0.0.2")}),
        post(screen.url + "press", approve, {"Host": "evil.example:80"}),  # DNS rebinding
        post(screen.url + "press", {"nonce": old_nonce, "choice": "approve"}),
        post(screen.url + "press", {"nonce": nonce, "choice": "maybe"}),
        post(screen.url + "press", {"nonce": nonce}),
    ]
    assert refused == [404, 404, 403, 403, 403, 421, 409, 400, 400]
    time.sleep(0.2)
    assert signing.thread.is_alive(), "a refused press ended the confirmation"
    assert json.loads(get(screen.url + "state.json")[2])["showing"] is True
    # the page's own origin (what a browser sends from the page) presses
    assert post(screen.url + "press", approve, {"Origin": screen.origin}) == 303
    assert not isinstance(signing.finish(), Exception)
    # pressed once: the same nonce presses nothing more
    assert post(screen.url + "press", approve) == 409


def test_nobody_pressing_times_out(
    screen: WebScreen, make_session: Callable[[SoftToken], TokenSession], make_tx: Any
) -> None:
    token = SoftToken(None, screen, confirm_timeout=0.3)
    with make_session(token) as s:
        s.verify_pin(USER_PIN)
        s.generate_key()
        with pytest.raises(ConfirmationTimeout):
            s.confirm_and_sign(make_tx())
    assert json.loads(get(screen.url + "state.json")[2])["showing"] is False


def test_page_headers_forbid_framing_and_inline_script(screen: WebScreen) -> None:
    status, headers, page = get(screen.url)
    assert status == 200
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store"
    # no inline script or style: every <script> has a src, no on*= handler, no style=
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
    assert not re.search(r"\son[a-z]+=|\sstyle=", page)
    js_status, js_headers, js = get(screen.url + "screen.js")
    assert js_status == 200 and "state.json" not in js and "data-state" in js
    assert js_headers["Content-Type"].startswith("text/javascript")
    # the capability is needed for every resource
    assert get(screen.url.rsplit("/s/", 1)[0] + "/")[0] == 404
    assert get(screen.url.replace(screen.capability, "f" * 32) + "state.json")[0] == 404


def test_screen_binds_only_to_loopback() -> None:
    from ebank_auth.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        WebScreen(host="0.0.0.0")


def test_screen_token_publishes_its_url_and_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SCREEN_PORT_ENV, "0")
    card = screen_token(tmp_path / "token")
    assert isinstance(card, ScreenToken)
    path = tmp_path / "token" / SCREEN_FILE
    try:
        doc = json.loads(path.read_text())
        assert doc == {"url": card.screen.url, "pid": os.getpid()}
        assert path.stat().st_mode & 0o777 == 0o600
        assert get(doc["url"])[0] == 200
    finally:
        card.close()
    assert not path.exists()
    monkeypatch.setenv(SCREEN_PORT_ENV, "not-a-port")
    from ebank_auth.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        screen_token(tmp_path / "other")


@pytest.mark.pcsc
def test_sandbox_runs_the_screen_token_with_its_page_on_the_host_loopback(tmp_path: Path) -> None:
    """``sandbox --card …screen_token``: pcscd (in a private network namespace as root) takes
    the token, and the page is reachable from this process, i.e. on the host's loopback."""
    from plugins.pcscd import require_pcscd

    require_pcscd()
    state = tmp_path / "token"
    script = (
        "import json, os, sys, urllib.request\n"
        "doc = json.load(open(os.path.join(os.environ['EBANK_AUTH_TOKEN_STATE'], 'screen.json')))\n"
        "print(doc['url'])\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("PCSCLITE_CSOCK_NAME", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ebank_auth.usbkey.emulator.sandbox", "--token-state", str(state),
         "--card", "ebank_auth.usbkey.emulator.screen_page:screen_token", "--",
         sys.executable, "-c", script + "sys.stdin.readline()\n"],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdin is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and "/s/" in url, proc.stderr.read()  # type: ignore[union-attr]
        status, _, page = get(url)  # from the host's network namespace
        assert status == 200 and 'id="idle"' in page
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (state / SCREEN_FILE).exists()
