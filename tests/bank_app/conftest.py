"""Fixtures for the reference bank app: the real Flask app over a real SQLite store in a
temporary state directory, driven through Flask's test client (CSRF on, as deployed)."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "bank_app"
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

try:  # the `app` extra (Flask, Flask-WTF)
    import flask_wtf  # noqa: F401
except ImportError:
    if os.environ.get("EBANK_AUTH_REQUIRE_SERVICES") == "1":
        raise ImportError(
            "the bank app tests need the `app` extra: pip install -e '.[app]'"
        ) from None
    collect_ignore_glob = ["test_*.py"]  # skipped here; CI (which requires it) fails instead
    DEMO: dict[str, str] = {"username": ""}
else:
    from app import create_app
    from wiring import DEMO_CUSTOMERS

    DEMO = DEMO_CUSTOMERS[0]
# the Chromium fixture's failure hook (screenshots); test_browser_app.py imports the fixture
from plugins.browser import _chromium_session, pytest_runtest_makereport  # noqa: E402, F401

NEW_PASSWORD = "Harbour7Lantern"  # typeable on the alphanumeric soft keyboard
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
CODE_RE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


class Clock:
    """The server's clock, moved forward by tests (idle logout) instead of sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Browser:
    """One browser: a cookie jar, and forms submitted with the CSRF token of the page."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.clock: Clock = app.config["TEST_CLOCK"]
        self.client = app.test_client()
        self.services = app.extensions["bank"]
        self.demo = DEMO
        self.new_password = NEW_PASSWORD

    def get(self, url: str) -> Any:
        return self.client.get(url)

    def token(self, url: str) -> str:
        page = self.client.get(url).get_data(as_text=True)
        m = CSRF_RE.search(page)
        assert m, f"no CSRF token on {url}"
        return m.group(1)

    def post(self, url: str, data: dict[str, Any], *, form_url: str | None = None) -> Any:
        data = {"csrf_token": self.token(form_url or url), **data}
        return self.client.post(url, data=data)

    def after_sms_cooldown(self) -> None:
        """One code per minute per customer (OTP settings): move the clock past it."""
        self.clock.offset += 61

    def last_code(self) -> str:
        text = self.services.outbox.messages()[-1].text
        m = CODE_RE.search(text)
        assert m, "no code in the last SMS"
        return m.group(1)

    def login(self, user: str = DEMO["username"], password: str = NEW_PASSWORD) -> Any:
        self.post("/login", {"username": user})
        r = self.post("/login/password", {"password": password}, form_url="/login/password")
        assert r.status_code == 302 and r.location.endswith("/login/code"), r.get_data(True)
        return self.post("/login/code", {"code": self.last_code()}, form_url="/login/code")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(tmp_path: Path, clock: Clock) -> Any:
    # real argon2id, with less memory than production so the suite stays fast
    app = create_app(tmp_path / "state", argon2_memory_kib=1024, clock=clock, demo=True)
    app.config["TEST_CLOCK"] = clock
    return app


@pytest.fixture
def browser(app: Any) -> Browser:
    return Browser(app)


@pytest.fixture
def customer(app: Any) -> Iterator[Browser]:
    """A browser whose customer has already changed the initial password."""
    b = Browser(app)
    b.services.change_password(DEMO["username"], DEMO["password"], NEW_PASSWORD)
    yield b
