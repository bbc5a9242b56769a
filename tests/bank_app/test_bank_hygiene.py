"""The bank app's structure and hygiene: one wiring module, rate limits, no secret in
logs, new devices bound after the SMS step-up."""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "bank_app"


def test_only_wiring_imports_ebank_auth_and_only_public_modules() -> None:
    importers: dict[str, list[str]] = {}
    for path in sorted(APP_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] == "ebank_auth":
                    importers.setdefault(path.name, []).append(name)
    assert set(importers) == {"wiring.py"}
    private = [n for n in importers["wiring.py"] if any(p.startswith("_") for p in n.split("."))]
    assert private == []


def test_login_attempts_are_rate_limited_per_ip(browser: Any) -> None:
    statuses = [browser.post("/login", {"username": f"u{i}"}).status_code for i in range(61)]
    assert statuses[:60] == [302] * 60
    assert statuses[60] == 429


def test_no_password_or_code_in_logs(customer: Any, caplog: Any) -> None:
    b = customer
    caplog.set_level(logging.DEBUG)
    b.post("/login", {"username": b.demo["username"]})
    b.post("/login/password", {"password": "Wrong7Guess99"}, form_url="/login/password")
    b.login()
    code = b.last_code()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert b.new_password not in logged and "Wrong7Guess99" not in logged
    assert code not in logged


def test_new_device_is_bound_after_the_sms_step_up(customer: Any) -> None:
    b = customer
    b.login()
    device = b.client.get_cookie("bank_device").value
    bound = [d.device_id for d in b.services.devices.devices(b.demo["username"])]
    assert bound == [device]


def test_demo_outbox_only_in_demo_mode(customer: Any, tmp_path: Path) -> None:
    b = customer
    b.post("/login", {"username": b.demo["username"]})
    b.post("/login/password", {"password": b.new_password}, form_url="/login/password")
    page = b.get("/demo/outbox").get_data(as_text=True)
    assert b.last_code() in page
    assert b.demo["phone"] not in page  # the outbox keeps numbers masked

    from app import create_app

    prod = create_app(tmp_path / "prod", demo=False, argon2_memory_kib=1024)
    assert prod.test_client().get("/demo/outbox").status_code == 404


def test_worker_processes_of_one_deployment_accept_each_others_forms(
    tmp_path: Path, clock: Any
) -> None:
    """Several workers serve one state directory: a form issued by one is accepted by another
    (the CSRF key lives in the state directory; it used to be random per process, so a
    multi-worker deployment refused its own forms)."""
    import re

    from app import create_app

    one = create_app(tmp_path / "s", argon2_memory_kib=1024, clock=clock)
    two = create_app(tmp_path / "s", argon2_memory_kib=1024, clock=clock)
    c1 = one.test_client()
    page = c1.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    c2 = two.test_client()
    c2.set_cookie("bank_session", c1.get_cookie("bank_session").value)  # type: ignore[union-attr]
    r = c2.post("/login", data={"csrf_token": token, "username": "zhangsan"})
    assert r.status_code == 302, r.get_data(as_text=True)
    assert (tmp_path / "s" / "csrf.key").stat().st_mode & 0o777 == 0o600


def test_a_store_outage_before_any_route_is_a_503_not_a_500(
    customer: Any, caplog: Any, monkeypatch: Any
) -> None:
    """The session is loaded from the store before any route runs: with the store down that
    is a 503 with Retry-After (fail closed) under run.py as under gunicorn, and nothing is
    written back (no AssertionError from save_session in the log)."""
    from wiring import errors

    customer.login()

    def down(*_: Any, **__: Any) -> Any:
        raise errors.ServiceUnavailable("the state store does not answer")

    monkeypatch.setattr(customer.services.store, "get", down)
    with caplog.at_level(logging.ERROR):
        r = customer.get("/accounts")
    assert r.status_code == 503 and r.headers["Retry-After"] == "30"
    assert "AssertionError" not in caplog.text
