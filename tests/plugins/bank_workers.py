"""Fixture ``deploy``: the reference bank app under gunicorn with several worker processes over a network store.

``Gunicorn`` starts ``gunicorn --chdir examples/bank_app -w 3 wsgi:app`` on a free loopback port
(the deployment of docs/deployment.md), with ``EBANK_BANK_DEMO=1`` so the SMS codes land in the
shared state directory's outbox, an access log whose lines start with the serving worker's pid
(``%(p)s``: the proof that several workers served) and a small gunicorn config whose
``pre_request`` hook writes the pid of the worker that picked up a request to a file (how a fault
test knows which worker to kill -9 in the middle of a transfer; the app is unchanged).  It stops
with SIGTERM, then SIGKILL after a bound.

The test process opens the same state directory and store URL with ``BankServices`` (a second
"node"): it seeds customers (argon2id with 1 MiB, so the suite stays quick) and reads balances,
lockout counters and the audit log straight from the store.

The one-time codes: the app sends at most one SMS code per customer per minute; where a test
needs a second code within the minute (login, then a transfer) it removes the two cooldown
entries from the store, standing in for the minute passing (``Node.skip_sms_cooldown``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from plugins.redis_server import _free_port

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = ROOT / "examples" / "bank_app"
for extra in (APP_DIR, ROOT / "benchmarks"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from bank_app_load import (  # noqa: E402  (benchmarks/ is put on the path above)
    PASSWORD,
    LoadCustomer,
    LoopbackClient,
    Outbox,
    Reply,
    login_flow,
    seed_customers,
)

WORKERS = 3
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
TX_ID_RE = re.compile(r'name="tx_id" value="([^"]+)"')

#: gunicorn server hooks (a config file, not the app): the worker's pid for each request path
HOOKS = """
import os

def pre_request(worker, req):
    marks = os.environ.get("EBANK_TEST_MARKS")
    if marks:
        with open(os.path.join(marks, "requests"), "a") as f:
            f.write(f"{os.getpid()} {req.method} {req.path}\\n")
"""


class Gunicorn:
    """One gunicorn master with ``workers`` sync workers serving ``wsgi:app``."""

    def __init__(
        self,
        state: Path,
        store_url: str,
        *,
        workers: int = WORKERS,
        prefix: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.state = state
        self.store_url = store_url
        self.workers = workers
        self.prefix = prefix
        self.extra_env = env or {}
        self.run_dir = Path(tempfile.mkdtemp(prefix="ebank-gunicorn-"))
        self.access_log = self.run_dir / "access.log"
        self.error_log = self.run_dir / "error.log"
        self.marks = self.run_dir / "marks"
        self.marks.mkdir()
        (self.run_dir / "hooks.py").write_text(HOOKS)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60, ready: int = 200) -> Gunicorn:
        """Start and wait until every worker is forked and ``GET /login`` answers ``ready``."""
        self.port = _free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
            "EBANK_BANK_STATE": str(self.state),
            "EBANK_BANK_STORE": self.store_url,
            "EBANK_BANK_DEMO": "1",
            "EBANK_TEST_MARKS": str(self.marks),
            **self.extra_env,
        }
        cmd = [
            *self.prefix,
            sys.executable,
            "-m",
            "gunicorn",
            "--chdir",
            str(APP_DIR),
            "--config",
            str(self.run_dir / "hooks.py"),
            "--workers",
            str(self.workers),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
            "--access-logfile",
            str(self.access_log),
            "--access-logformat",
            '%(p)s "%(r)s" %(s)s',
            "--error-logfile",
            str(self.error_log),
            "wsgi:app",
        ]
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"gunicorn exited:\n{tail}")
            if len(self.worker_pids()) == self.workers:
                try:
                    if LoopbackClient(self.url, timeout=10).get("/login").status == ready:
                        return self
                except Exception:
                    pass
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"gunicorn did not serve within {timeout} s:\n{tail}")
            time.sleep(0.1)

    def log_tail(self) -> str:
        text = self.error_log.read_text(errors="replace") if self.error_log.exists() else ""
        return text[-4000:]

    def worker_pids(self) -> set[int]:
        """The master's live worker processes (children in /proc)."""
        if self.proc is None:
            return set()
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            pids = {int(p) for p in children.read_text().split()}
        except OSError:
            return set()
        live = set()
        for pid in pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[0] != "Z":
                live.add(pid)
        return live

    def served_by(self) -> dict[int, int]:
        """Worker pid -> number of requests it answered (from the access log)."""
        counts: dict[int, int] = {}
        if self.access_log.exists():
            for line in self.access_log.read_text().splitlines():
                pid = line.split(" ", 1)[0].strip("<>")  # gunicorn writes %(p)s as <pid>
                if pid.isdigit():
                    counts[int(pid)] = counts.get(int(pid), 0) + 1
        return counts

    def answered(self, status: int) -> set[int]:
        """Pids of the workers that gave at least one answer with ``status``."""
        pids = set()
        if self.access_log.exists():
            for line in self.access_log.read_text().splitlines():
                pid, _, rest = line.partition(" ")
                if rest.rsplit(" ", 1)[-1] == str(status):
                    pids.add(int(pid.strip("<>")))
        return pids

    def picked_up(self, path: str) -> list[int]:
        """Pids of the workers that started a request for ``path`` (pre_request hook)."""
        file = self.marks / "requests"
        if not file.exists():
            return []
        return [
            int(line.split()[0])
            for line in file.read_text().splitlines()
            if line.split()[-1] == path
        ]

    def stop(self, bound: float = 15) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=bound)
            except subprocess.TimeoutExpired:
                # the master and whatever workers are left
                for pid in self.worker_pids():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait()
        if os.environ.get("EBANK_KEEP_GUNICORN_LOGS") != "1":
            shutil.rmtree(self.run_dir, ignore_errors=True)


class Node:
    """The test process's view of the deployment: the same state directory and store URL
    through the app's wiring (``BankServices``), plus customers to drive over HTTP."""

    def __init__(self, state: Path, store_url: str, customers: int = 12) -> None:
        from wiring import BankServices

        self.state = state
        self.store_url = store_url
        self.services = BankServices(state, store_url=store_url, argon2_memory_kib=1024)
        self.customers: list[LoadCustomer] = seed_customers(self.services, customers)
        self.outbox = Outbox(state / "outbox")
        self._next = 0

    def customer(self) -> LoadCustomer:
        """A customer no earlier test of this node used."""
        c = self.customers[self._next]
        self._next += 1
        return c

    def close(self) -> None:
        self.services.store.close()

    def skip_sms_cooldown(self, c: LoadCustomer) -> None:
        """Remove the customer's and the handset's resend cooldown (stands in for a minute)."""
        codes = self.services.codes
        self.services.store.delete(codes._k("cool", "user", c.username))
        self.services.store.delete(codes._k("cool", "phone", codes._phone_tag(c.phone)))

    def balance(self, c: LoadCustomer) -> Any:
        return self.services.account(c.account).balance

    def booked(self, c: LoadCustomer, tx_id: str) -> int:
        """How many times ``tx_id`` is in the payer's history."""
        raw = self.services.store.get(f"bank:acct:{c.account}")
        assert raw is not None
        return sum(1 for h in json.loads(raw)["history"] if h["tx_id"] == tx_id)

    def audit_records(self, event: str, user: str = "") -> list[dict[str, Any]]:
        return [
            r
            for r in self.services.audit.records()
            if r.get("event") == event and (not user or r.get("user") == user)
        ]

    def sms_to(self, c: LoadCustomer) -> list[str]:
        masked = f"{c.phone[:6]}****{c.phone[-4:]}"
        texts = []
        for name in sorted(os.listdir(self.state / "outbox")):
            if not name[:1].isdigit():
                continue
            doc = json.loads((self.state / "outbox" / name).read_text(encoding="utf-8"))
            if doc.get("phone") == masked:
                texts.append(str(doc.get("text", "")))
        return texts


def token(reply: Reply) -> str:
    m = CSRF_RE.search(reply.text)
    assert m, f"no CSRF token (HTTP {reply.status})"
    return m.group(1)


def client_for(server: Gunicorn, c: LoadCustomer, timeout: float = 60) -> LoopbackClient:
    return LoopbackClient(server.url, c.source_ip, timeout=timeout)


def logged_in(server: Gunicorn, node: Node, c: LoadCustomer) -> LoopbackClient:
    """A browser of ``c`` through the whole login (password + SMS code) over HTTP."""
    http = client_for(server, c)
    login_flow(http, c, node.outbox)
    node.skip_sms_cooldown(c)  # the login's code was just sent; a transfer needs another
    return http


def start_transfer(
    http: LoopbackClient, node: Node, c: LoadCustomer, amount: str = "12.34"
) -> tuple[str, dict[str, str]]:
    """Submit a small transfer; returns (tx_id, the confirm form with the SMS code)."""
    page = http.get("/transfer")
    assert page.status == 200, page.status
    sent = time.time()
    form = {
        "csrf_token": token(page),
        "payer": c.account,
        "amount": amount,
        "memo": "multi-worker test",
        "password": PASSWORD,
        "payee_account": "6217000011112222333",
        "payee_name": "王五",
    }
    page = http.post("/transfer", form)
    m = TX_ID_RE.search(page.text)
    assert page.status == 200 and m, f"no pending transfer: HTTP {page.status}"
    code = node.outbox.code_for(c.phone, sent)
    return m.group(1), {"csrf_token": token(page), "tx_id": m.group(1), "code": code}


def clone(http: LoopbackClient, c: LoadCustomer) -> LoopbackClient:
    """Another client (own connection) carrying the same cookies: the same browser session
    replayed, e.g. by an attacker who copied the cookie."""
    other = LoopbackClient(f"http://{http.host}:{http.port}", c.source_ip, timeout=http.timeout)
    other.cookies = dict(http.cookies)
    return other


def in_parallel(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released together by a barrier; results (or exceptions)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def fresh_state() -> Path:
    return Path(tempfile.mkdtemp(prefix="ebank-mw-state-"))


def pg_schema_url(base: str) -> str:
    return f"{base}?schema=mw{os.getpid()}_{time.monotonic_ns()}"


def redis_prefix_url(base: str) -> str:
    return f"{base}?prefix=mw{os.getpid()}{time.monotonic_ns()}:"


@pytest.fixture
def deploy() -> Iterator[Callable[..., tuple[Gunicorn, Node]]]:
    """``deploy(store_url, customers=N, **gunicorn options)`` -> (running gunicorn, node);
    everything started is stopped and removed at the end of the test."""
    started: list[tuple[Gunicorn, Node, Path]] = []

    def make(store_url: str, customers: int = 12, **options: Any) -> tuple[Gunicorn, Node]:
        state = fresh_state()
        node = Node(state, store_url, customers)  # seeds and writes the key files first
        server = Gunicorn(state, store_url, **options)
        started.append((server, node, state))
        server.start()
        return server, node

    yield make
    for server, node, state in started:
        server.stop()
        node.close()
        shutil.rmtree(state, ignore_errors=True)


__all__ = [
    "Gunicorn",
    "Node",
    "client_for",
    "clone",
    "deploy",
    "in_parallel",
    "logged_in",
    "pg_schema_url",
    "redis_prefix_url",
    "start_transfer",
    "token",
]
