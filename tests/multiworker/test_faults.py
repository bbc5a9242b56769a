"""Faults under the bank app on several gunicorn workers (issue 16, item 5), loopback only,
every wait bounded:

* kill -9 of the worker serving a /transfer/confirm, at several points of the request: never a
  double debit, the audit record of a booking is there exactly when the booking is, the chain
  checks, and gunicorn replaces the worker;
* Redis killed (SIGKILL) while a request waits on it, with ``appendonly yes`` and
  ``appendfsync always``: that request and the ones while Redis is down are refused (503, never
  a login), a worker replaced during the outage answers 503 too (the server stays up), and
  after the restart a lock set before the crash is still there;
* PostgreSQL stopped: requests are refused with 503 (never a silent allow), then the same
  workers recover when it is back;
* clock skew between workers: a gunicorn whose clock libfaketime sets 1.5 s behind (inside the
  2 s bound of docs/stores.md "Time") serves next to one on the true clock over one SQLite file;
  a code issued by one is accepted once by the other, and a worker 5 s behind (outside the
  bound) is refused by the store: it answers 503 to everything, never lets anyone in.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from plugins.bank_workers import (
    WORKERS,
    Gunicorn,
    LoopbackClient,
    client_for,
    logged_in,
    pg_schema_url,
    start_transfer,
    token,
)
from plugins.redis_server import _binary, _unavailable, start_redis_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

RIGHT = "Harbour7Lantern"
FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def wait_for(what: str, check: Any, bound: float = 30) -> None:
    deadline = time.monotonic() + bound
    while not check():
        assert time.monotonic() < deadline, f"{what} within {bound} s"
        time.sleep(0.02)


def at_password_page(server: Gunicorn, c: Any) -> tuple[LoopbackClient, str]:
    http = client_for(server, c)
    page = http.get("/login")
    assert http.post("/login", {"csrf_token": token(page), "username": c.username}).status == 302
    page = http.get("/login/password")
    assert page.status == 200, page.status
    return http, token(page)


def on(server: Gunicorn, http: LoopbackClient) -> LoopbackClient:
    """The same browser (cookies) talking to another gunicorn of the deployment."""
    other = LoopbackClient(server.url, http.source_ip, timeout=http.timeout)
    other.cookies = dict(http.cookies)
    return other


# ---------------------------------------------------------------------- kill -9 a worker
def test_kill_9_worker_in_the_middle_of_a_transfer(deploy: Any, postgres_url: str) -> None:
    """Five transfers, the worker serving each confirm killed 0-60 ms after it picked it up,
    then the customer submits the same confirm again."""
    server, node = deploy(pg_schema_url(postgres_url), customers=5)
    outcomes, lost = [], []
    for delay in (0.0, 0.005, 0.015, 0.03, 0.06):
        c = node.customer()
        http = logged_in(server, node, c)
        before = node.balance(c)
        tx_id, form = start_transfer(http, node, c)
        seen = len(server.picked_up("/transfer/confirm"))
        reply: list[Any] = []
        t = threading.Thread(
            target=lambda h, f, out: out.append(_post(h, f)), args=(http, form, reply)
        )
        t.start()
        wait_for(
            "a worker picks up the confirm",
            lambda: len(server.picked_up("/transfer/confirm")) > seen,  # noqa: B023
        )
        victim = server.picked_up("/transfer/confirm")[-1]
        time.sleep(delay)
        os.kill(victim, signal.SIGKILL)
        t.join(timeout=60)
        booked = node.booked(c, tx_id)
        assert booked <= 1
        wait_for(
            "gunicorn replaces the killed worker",
            lambda: victim not in server.worker_pids() and len(server.worker_pids()) == WORKERS,  # noqa: B023
        )
        # the customer (same session) submits again after the error page
        again = _post(on(server, http), form)
        assert again.status in (200, 400, 401, 409), again.status
        booked_after = node.booked(c, tx_id)
        assert booked_after <= 1  # never a double debit
        assert (again.status == 200) == (booked == 0 and booked_after == 1)
        assert node.balance(c) == before - Decimal("12.34") * booked_after
        records = [
            r
            for r in node.audit_records("transfer_booked")
            if (r.get("tx") or {}).get("tx_id") == tx_id
        ]
        assert len(records) <= booked_after  # never a record of a booking that did not happen
        intents = [
            r
            for r in node.audit_records("transfer_booking")
            if (r.get("tx") or {}).get("tx_id") == tx_id
        ]
        # write-ahead audit: every booking has its intent record, durable before the debit
        assert booked_after == 0 or intents, f"booked without any audit record at {delay} s"
        if len(records) < booked_after:
            lost.append(delay)  # killed between the debit and the outcome record: intent only
        first = reply[0]
        outcomes.append((delay, getattr(first, "status", "reset"), booked, again.status))
    report = node.services.audit.check()
    assert report.ok, report  # no record lost from the chain, none duplicated
    print("kill -9 outcomes (delay s, first answer, booked by it, answer to the retry):", outcomes)
    print("killed between the debit and transfer_booked (covered by the intent):", lost)


def _post(http: LoopbackClient, form: dict[str, str]) -> Any:
    try:
        return http.post("/transfer/confirm", form)
    except Exception as exc:  # the worker died under the request: the connection drops
        return exc


# ---------------------------------------------------------------------- Redis faults
class PrivateRedis:
    """A redis-server of this test only: AOF with fsync on every write, killable."""

    def __init__(self) -> None:
        binary = _binary()
        if binary is None:
            _unavailable("redis-server is not installed")
        assert binary is not None
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="ebank-mw-redis-"))
        self.proc, self.port = start_redis_server(self.dir, binary, ["--appendfsync", "always"])

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def restart(self) -> None:
        """The same port, directory and append-only file."""
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--maxmemory-policy",
                "noeviction",
                "--logfile",
                str(self.dir / "restart.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for("redis answers again", self._pong)

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    try:
        yield server
    finally:
        server.stop()


def test_redis_down_fails_closed_and_a_lock_survives_its_restart(
    deploy: Any, private_redis: PrivateRedis
) -> None:
    server, node = deploy(private_redis.url, customers=3)
    victim, other = node.customer(), node.customer()
    # lock the victim: five wrong passwords
    for n in range(5):
        http, csrf = at_password_page(server, victim)
        r = http.post("/login/password", {"csrf_token": csrf, "password": "Wrong-1x"})
        assert r.status == 401 if n < 4 else r.status in (401, 403), (n, r.status)
    assert node.services.lockout.status(victim.username).locked
    node.close()  # the test's own client must not hold a connection across the crash

    # mid-request: Redis freezes while a correct login waits on it, then dies
    http, csrf = at_password_page(server, other)
    seen = len(server.picked_up("/login/password"))
    private_redis.proc.send_signal(signal.SIGSTOP)
    reply: list[Any] = []
    t = threading.Thread(
        target=lambda: reply.append(
            http.post("/login/password", {"csrf_token": csrf, "password": RIGHT})
        )
    )
    t.start()
    wait_for("a worker picks up the login", lambda: len(server.picked_up("/login/password")) > seen)
    time.sleep(0.2)  # the worker is now waiting on the frozen server
    private_redis.kill()
    t.join(timeout=60)
    assert reply and reply[0].status == 503, reply  # refused, never a login
    # while Redis is down every request that needs the store is refused
    fresh = client_for(server, other)
    assert fresh.get("/login").status in (200, 503)  # the bare login page needs no state
    down = on(server, http).post("/login/password", {"csrf_token": csrf, "password": RIGHT})
    assert down.status == 503, down.status
    # a worker dies during the outage: its replacement cannot build the app yet, answers 503
    # (wsgi.StartWhenUp) instead of failing to boot, which would stop the whole gunicorn
    old = server.worker_pids()
    dead = sorted(old)[0]
    os.kill(dead, signal.SIGKILL)
    statuses: set[int] = set()

    def new_worker_answered() -> bool:
        statuses.add(on(server, http).get("/accounts").status)
        return bool(set(server.served_by()) - old)

    wait_for("the replacement worker answers", new_worker_answered)
    assert statuses == {503}, statuses
    assert server.proc is not None and server.proc.poll() is None  # the server is still up

    private_redis.restart()
    # the replacement builds the app at its first request once the store answers (it tries
    # at most once a second); the others reconnect by themselves
    probe = client_for(server, other)
    wait_for(
        "every worker serves again, the replacement too",
        lambda: probe.get("/login").status and server.worker_pids() <= server.answered(200),
    )
    # the lock written before the crash is in the append-only file
    http, csrf = at_password_page(server, victim)
    r = http.post("/login/password", {"csrf_token": csrf, "password": RIGHT})
    assert r.status == 403, r.status
    # and the other customer logs in now
    http, csrf = at_password_page(server, other)
    r = http.post("/login/password", {"csrf_token": csrf, "password": RIGHT})
    assert r.status == 302 and r.location == "/login/code", (r.status, r.location)
    from wiring import BankServices

    check = BankServices(node.state, store_url=private_redis.url, argon2_memory_kib=1024)
    try:
        assert check.lockout.status(victim.username).failures == 5
        assert check.audit.check().ok
    finally:
        check.store.close()


# ---------------------------------------------------------------------- PostgreSQL restart
def test_postgresql_restart_fails_closed_then_recovers(
    deploy: Any, postgres_server: Any, postgres_url: str
) -> None:
    server, node = deploy(pg_schema_url(postgres_url), customers=3)
    customer, later = node.customer(), node.customer()
    http = logged_in(server, node, customer)
    assert http.get("/accounts").status == 200
    waiting, csrf = at_password_page(server, later)
    postgres_server.stop("fast")
    try:
        statuses = {http.get("/accounts").status for _ in range(2 * WORKERS)}
        assert statuses == {503}, statuses
        r = waiting.post("/login/password", {"csrf_token": csrf, "password": RIGHT})
        assert r.status == 503, r.status  # never a login without the lockout counter
    finally:
        postgres_server.start()
    # the same workers recover: every worker answers again (several requests, spread)
    wait_for("the app answers again", lambda: http.get("/accounts").status == 200)
    assert {http.get("/accounts").status for _ in range(2 * WORKERS)} == {200}
    r = waiting.post("/login/password", {"csrf_token": csrf, "password": RIGHT})
    assert r.status == 302 and r.location == "/login/code", (r.status, r.location)
    assert node.services.audit.check().ok


# ---------------------------------------------------------------------- clock skew
@pytest.fixture
def faketime() -> Path:
    if not FAKETIME.exists():
        _unavailable("libfaketime is not installed: apt-get install faketime")
    return FAKETIME


def skewed(lib: Path, offset: str) -> dict[str, str]:
    """Environment for a gunicorn whose wall clock is ``offset`` seconds off (libfaketime);
    the monotonic clock moves with it (a constant offset: intervals stay true)."""
    return {
        "LD_PRELOAD": str(lib),
        "FAKETIME": offset,
        "FAKETIME_DONT_FAKE_MONOTONIC": "0",  # "1" breaks time.sleep (EINVAL)
        "FAKETIME_NO_CACHE": "1",
    }


def test_clock_skew_between_workers_within_the_bound(
    deploy: Any, faketime: Path, tmp_path: Path
) -> None:
    # one SQLite file: the store where the application's clocks matter (Redis and PostgreSQL
    # take the server's time, see docs/stores.md "Time")
    state_url = f"sqlite:///{tmp_path / 'bank.db'}"
    true_clock, node = deploy(state_url, customers=3, workers=2)
    behind = Gunicorn(node.state, state_url, workers=1, env=skewed(faketime, "-1.5"))
    far = Gunicorn(node.state, state_url, workers=1, env=skewed(faketime, "-5"))
    try:
        behind.start()
        # a node 5 s behind (outside the bound) cannot build the app: its first write is
        # refused, so it answers 503 to everything (wsgi.StartWhenUp) and lets no one in
        far.start(ready=503)
        c, d = node.customer(), node.customer()
        http = client_for(far, d)
        assert {http.get("/login").status for _ in range(3)} == {503}
        assert far.answered(200) == set()
        # the password and the code are sent on the true clock, the code is typed on the
        # worker 1.5 s behind: accepted once
        http, csrf = at_password_page(true_clock, c)
        sent = time.time()
        r = http.post("/login/password", {"csrf_token": csrf, "password": RIGHT})
        assert r.status == 302 and r.location == "/login/code"
        page = on(behind, http).get("/login/code")
        form = {"csrf_token": token(page), "code": node.outbox.code_for(c.phone, sent)}
        r = on(behind, http).post("/login/code", form)
        assert r.status == 302 and r.location == "/accounts", (r.status, r.location)
        again = on(true_clock, http).post("/login/code", form)
        assert again.location != "/accounts"  # the code was used
        assert len(node.audit_records("login", c.username)) == 1
        # a wrong password on the worker behind and one on the true clock: one counter
        for server in (behind, true_clock):
            http, csrf = at_password_page(server, d)
            r = http.post("/login/password", {"csrf_token": csrf, "password": "Wrong-1x"})
            assert r.status == 401, r.status
        assert node.services.lockout.status(d.username).failures == 2
        assert node.services.audit.check().ok
    finally:
        behind.stop()
        far.stop()
