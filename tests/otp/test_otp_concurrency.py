"""Threads and processes hammer verify/issue on SQLite and Redis: a code is accepted
exactly once and the daily cap is never exceeded.  Bounded work, no timing asserts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ebank_auth.errors import OtpError
from ebank_auth.otp import OtpSettings
from ebank_auth.store import open_store
from plugins.otp_helpers import PHONES, last_code, make_service, tx
from plugins.store_backends import StoreFactory

WORKER = Path(__file__).with_name("otp_worker.py")
TESTS_DIR = Path(__file__).resolve().parent.parent


def _threads(n: int, fn: object) -> list[int]:
    out = [0] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        out[i] = fn()  # type: ignore[operator]

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    return out


def test_threads_accept_code_once(store_backend: StoreFactory, tmp_path: Path) -> None:
    for round_ in range(3):
        service, gateway = make_service(
            store_backend(),
            tmp_path / f"out{round_}",
            OtpSettings(resend_cooldown=0, max_attempts=10, test_mode=True),
        )
        service.issue("alice", "transaction", transaction=tx(1))
        code = last_code(gateway, PHONES["alice"])

        def attempt(service=service, code=code) -> int:  # type: ignore[no-untyped-def]
            wins = 0
            for _ in range(3):
                try:
                    service.verify("alice", "transaction", code, tx(1))
                    wins += 1
                except OtpError:
                    pass
            return wins

        assert sum(_threads(8, attempt)) == 1


def test_threads_never_exceed_daily_cap(store_backend: StoreFactory, tmp_path: Path) -> None:
    service, _ = make_service(
        store_backend(), tmp_path / "out", OtpSettings(resend_cooldown=0, test_mode=True)
    )

    def issue() -> int:
        ok = 0
        for _ in range(4):
            try:
                service.issue("alice", "login")
                ok += 1
            except OtpError:
                pass
        return ok

    assert sum(_threads(6, issue)) == 10
    assert service.sent_today("alice") == 10


@pytest.fixture(params=["sqlite", "redis"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'otp.db'}"
    return f"{request.getfixturevalue('redis_url')}?prefix=otp{tmp_path.name}:"


def _processes(url: str, outbox: Path, op: str, args: list[str], tmp: Path, n: int = 4) -> int:
    barrier = tmp / f"{op}.go"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")])
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, str(outbox), op, str(barrier), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in range(n)
    ]
    barrier.write_text("go")
    total = 0
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err.decode()
        total += int(json.loads(out.decode().strip().splitlines()[-1])["ok"])
    return total


def test_processes_accept_code_once(shared_url: str, tmp_path: Path) -> None:
    store = open_store(shared_url)
    service, gateway = make_service(
        store, tmp_path / "out", OtpSettings(max_attempts=10, test_mode=True)
    )
    service.issue("alice", "transaction", transaction=tx(1))
    code = last_code(gateway, PHONES["alice"])
    store.close()
    assert _processes(shared_url, tmp_path / "out", "verify", [code, "3"], tmp_path) == 1


def test_processes_never_exceed_daily_cap(shared_url: str, tmp_path: Path) -> None:
    assert _processes(shared_url, tmp_path / "out", "issue", ["5"], tmp_path) == 10
    store = open_store(shared_url)
    service, gateway = make_service(store, tmp_path / "out")
    assert service.sent_today("alice") == 10
    assert len(gateway.messages()) == 10
    store.close()
