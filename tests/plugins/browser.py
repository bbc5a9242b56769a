"""Fixture ``browser``: a real headless Chromium driven by Selenium 4 (Debian ``chromium`` +
``chromium-driver``; ``Service("/usr/bin/chromedriver")`` so Selenium never downloads one).

Use from an area conftest::

    from plugins.browser import _chromium_session, browser, pytest_runtest_makereport  # noqa: F401

One Chromium serves the whole run; each test gets it on a blank page, without cookies
and with an empty console log.

The browser reaches loopback only: every other host goes to a closed proxy port and DNS
resolves nothing.  On a test failure a screenshot and the page source are saved under a
temporary directory whose path is printed with the failure.  When chromium, chromedriver or
selenium is missing the tests are skipped -- unless ``EBANK_AUTH_REQUIRE_SERVICES=1`` (CI),
in which case they fail.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["_chromium_session", "browser", "pytest_runtest_makereport"]

CHROMEDRIVER = "/usr/bin/chromedriver"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("EBANK_AUTH_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (EBANK_AUTH_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[Any]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def _chromium_session() -> Iterator[Any]:
    """One headless Chromium for the whole run (starting one costs about a second)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[dev]')")
    binary = _chromium()
    if binary is None or not Path(CHROMEDRIVER).exists():
        _unavailable(
            "chromium / chromium-driver are not installed (apt-get install chromium chromium-driver)"
        )
    profile = tempfile.mkdtemp(prefix="ebank-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(binary)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # containers without user namespaces
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        # loopback only: loopback bypasses the proxy, anything else hits a closed port
        "--proxy-server=http://127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
        "--window-size=1024,768",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(15)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(request: pytest.FixtureRequest, _chromium_session: Any) -> Iterator[Any]:
    """The headless Chromium (Selenium WebDriver), on a blank page with no cookies and an
    empty console log (``browser.get_log("browser")`` holds this test's messages only)."""
    driver = _chromium_session
    driver.get("about:blank")
    driver.delete_all_cookies()
    driver.get_log("browser")  # drain what earlier tests left
    yield driver
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        out = Path(tempfile.mkdtemp(prefix="ebank-browser-failure-"))
        try:
            driver.save_screenshot(str(out / "screenshot.png"))
            (out / "page.html").write_text(driver.page_source, encoding="utf-8")
        except Exception as exc:  # the browser itself may be what failed
            (out / "error.txt").write_text(repr(exc), encoding="utf-8")
        report.sections.append(("browser artefacts", f"screenshot and page source saved in {out}"))
        print(f"\nbrowser artefacts (screenshot, page source): {out}")
