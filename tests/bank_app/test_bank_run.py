"""``python examples/bank_app/run.py`` starts the app alone on a fresh state directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

from plugins.postgres_server import postgres_server, postgres_url  # noqa: F401
from plugins.redis_server import redis_url  # noqa: F401

RUN = Path(__file__).resolve().parents[2] / "examples" / "bank_app" / "run.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_py_creates_state_and_serves_login(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(RUN),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--state",
            str(state),
        ],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        page, headers = "", {}
        for _ in range(200):  # up to ~20 s on a loaded machine; not a timing assertion
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login") as r:
                    page, headers = r.read().decode(), dict(r.headers)
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                time.sleep(0.1)
        assert "csrf_token" in page and "用户名" in page
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert (state / "bank.db").exists()
        assert oct((state / "audit.key").stat().st_mode & 0o777) == "0o600"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _login_and_transfer(app: Any) -> None:
    """The customer's whole small-transfer path through the test client (CSRF on)."""
    import re

    from wiring import DEMO_CUSTOMERS

    demo = DEMO_CUSTOMERS[0]
    services = app.extensions["bank"]
    services.change_password(demo["username"], demo["password"], "Harbour7Lantern")
    c = app.test_client()

    def post(url: str, form_url: str, data: dict[str, str]) -> Any:
        page = c.get(form_url).get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        return c.post(url, data={"csrf_token": token, **data})

    def code() -> str:
        return re.search(r"(?<!\d)(\d{6})(?!\d)", services.outbox.messages()[-1].text).group(1)  # type: ignore[union-attr]

    post("/login", "/login", {"username": demo["username"]})
    post("/login/password", "/login/password", {"password": "Harbour7Lantern"})
    assert post("/login/code", "/login/code", {"code": code()}).status_code == 302
    app.config["TEST_CLOCK"].offset += 61
    r = post(
        "/transfer",
        "/transfer",
        {
            "payer": demo["account"],
            "payee_name": "王五",
            "payee_account": "6222020200777788889",
            "amount": "10.00",
            "memo": "",
            "password": "Harbour7Lantern",
        },
    )
    tx_id = re.search(r'name="tx_id" value="([^"]+)"', r.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    r = post("/transfer/confirm", "/accounts", {"tx_id": tx_id, "code": code()})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert services.account(demo["account"]).balance == Decimal(demo["balance"]) - 10
    assert services.audit.check().ok


class _Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def test_the_app_runs_on_a_redis_store(tmp_path: Path, redis_url: str) -> None:  # noqa: F811
    from app import create_app

    clock = _Clock()
    url = f"{redis_url}?prefix=bank{os.getpid()}{time.monotonic_ns()}:"
    app = create_app(tmp_path / "s", argon2_memory_kib=1024, clock=clock, store_url=url)
    app.config["TEST_CLOCK"] = clock
    _login_and_transfer(app)


def test_the_app_runs_on_a_postgresql_store(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    from app import create_app

    clock = _Clock()
    url = f"{postgres_url}?schema=bank{time.monotonic_ns()}"
    app = create_app(tmp_path / "s", argon2_memory_kib=1024, clock=clock, store_url=url)
    app.config["TEST_CLOCK"] = clock
    _login_and_transfer(app)
