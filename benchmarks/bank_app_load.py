"""Load run of the reference bank app (examples/bank_app) on loopback (issue 12, "Speed").

What it does, in one bounded run (about 2 1/4 minutes after the one-time seeding):

1. Seeds a pool of customers through the app's wiring API (``BankServices``: customer and
   account records, ``set_initial_password`` then ``change_password`` so the first login is
   not a forced change), with the app's production argon2id parameters.  Seeding is slow
   by design (four argon2 operations per customer), so the seeded state is kept as a
   template (``--cache``) and copied for every run.
2. Starts the app in its own process on ``127.0.0.1``: ``--server dev`` is exactly
   ``python examples/bank_app/run.py --host 127.0.0.1 --port N --state DIR`` (Flask's
   development server, thread per request); ``--server waitress`` serves the same
   ``create_app`` object under waitress (a production WSGI server, fixed thread pool)
   without changing the app.
3. Runs three phases with locust headless (``benchmarks/bank_app_locustfile.py``), 50
   concurrent customers each, every customer from its own loopback address (127.1.x.y), as
   real customers come from their own addresses (the app rate-limits per IP and per user):

   - ``login``: username -> anti-phishing phrase page -> password -> SMS code (the policy's
     step-up at every login, new device) -> accounts page; a fresh customer per login;
   - ``accounts``: the accounts and history page of logged-in customers;
   - ``transfer``: transfer form -> small transfer with the transaction password -> SMS code
     bound to the transaction -> booked -> accounts page.

   The app sends at most one SMS code per customer per minute (OTP resend cooldown), so
   the transfer phase starts 62 s after the last login code; the accounts phase and the
   crypto measurements below run in that gap, while the server is otherwise idle.
4. Measures, in the same run: argon2id verify time of the app's ``PasswordHasher`` (the
   login capacity bound) and the verification rate of a USB Key signed transfer (a
   confirmation made by a software token session with auto-approve, checked with
   ``ebank_auth.confirmation.verify_confirmation`` and the server's key and key-attestation
   chain checks) against the bare SM2 verify rate, on all cores.

Per flow it reports throughput and p50/p95 latency (the sum of the flow's response times,
without think time and without reading the SMS), and per request p50/p95; the standards'
interactive target is p95 <= 1 s per response with 50 concurrent customers doing transfers.

Run (the ``bench`` and ``app`` extras):

    PYTHONPATH=src .venv/bin/python benchmarks/bank_app_load.py --server waitress
    PYTHONPATH=src .venv/bin/python benchmarks/bank_app_load.py --server dev
    PYTHONPATH=src .venv/bin/python benchmarks/bank_app_load.py --server waitress --think 3

``--think S`` pauses S seconds on average (uniform 0.5 S .. 1.5 S) before every page, as a
customer reading the page would; 0 (the default) is the saturation run.  ``--json FILE``
writes every figure.  The flow functions below (``login_flow``, ``accounts_flow``,
``transfer_flow``) need neither locust nor waitress: tests/bank_app/test_load_smoke.py runs
them once each with two customers.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import platform
import random
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = ROOT / "examples" / "bank_app"
LOCUSTFILE = Path(__file__).resolve().parent / "bank_app_locustfile.py"

#: every seeded customer's password (the forced first-login change is done while seeding)
PASSWORD = "Harbour7Lantern"
INITIAL_PASSWORD = "Seed-Pass-2026"
PAYEE = {"payee_account": "6217000011112222333", "payee_name": "王五"}
SMALL_AMOUNT = "12.34"  # the small tier: an SMS code bound to the transaction
SMS_COOLDOWN = 60.0  # the app's OtpSettings.resend_cooldown (one code per customer per minute)
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
TX_ID_RE = re.compile(r'name="tx_id" value="([^"]+)"')
CODE_RE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


# ---------------------------------------------------------------------- customers
@dataclass(frozen=True)
class LoadCustomer:
    """A seeded customer and the loopback address it connects from."""

    index: int
    username: str
    phone: str
    account: str
    phrase: str
    source_ip: str

    @classmethod
    def number(cls, i: int) -> LoadCustomer:
        if not 0 <= i < 10_000:  # the masked phone (last four digits) must tell them apart
            raise ValueError("at most 10000 load customers")
        return cls(
            index=i,
            username=f"load{i:04d}",
            phone=f"+86137{i:08d}",
            account=f"62220299{i:011d}",
            phrase=f"负载测试 {i:04d}",
            source_ip=f"127.1.{i // 250}.{i % 250 + 1}",
        )


def seed_customers(services: Any, count: int, *, workers: int = 2) -> list[LoadCustomer]:
    """Add ``count`` customers through the app's wiring API (``BankServices``): customer
    and account records as the app's own demo seeding writes them, an initial password,
    then the customer's own password (so their first login is not a forced change)."""
    customers = [LoadCustomer.number(i) for i in range(count)]

    def seed(c: LoadCustomer) -> None:
        record = {
            "name": f"客户{c.index}",
            "phrase": c.phrase,
            "phone": c.phone,
            "accounts": [c.account],
        }
        if not services.store.put_if_absent(f"bank:cust:{c.username}", json.dumps(record).encode()):
            return  # seeded before
        account = {"currency": "CNY", "balance": "100000.00", "history": [], "tx_ids": []}
        services.store.put_if_absent(f"bank:acct:{c.account}", json.dumps(account).encode())
        services.passwords.set_initial_password(c.username, INITIAL_PASSWORD)
        services.change_password(c.username, INITIAL_PASSWORD, PASSWORD)

    # argon2 releases the GIL: two threads keep both cores busy; a failure stops the seeding
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(seed, customers))
    return customers


# ---------------------------------------------------------------------- HTTP client
@dataclass
class Reply:
    status: int
    text: str
    location: str
    ms: float


class FlowError(Exception):
    """A flow step did not get the answer a customer would see."""


#: on_request(method, name, milliseconds, response length, error or None)
RequestHook = Callable[[str, str, float, int, "Exception | None"], None]


class LoopbackClient:
    """One customer's browser, reduced to what the flows need: a keep-alive HTTP/1.1
    connection from the customer's own loopback address, and a cookie jar."""

    def __init__(
        self,
        base_url: str,
        source_ip: str = "127.0.0.1",
        *,
        on_request: RequestHook | None = None,
        timeout: float = 120.0,
    ) -> None:
        url = urllib.parse.urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.source_ip = source_ip
        self.on_request = on_request
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(
                self.host, self.port, timeout=self.timeout, source_address=(self.source_ip, 0)
            )
        return self._conn

    def _store_cookies(self, resp: http.client.HTTPResponse) -> None:
        for header in resp.headers.get_all("Set-Cookie") or []:
            first, _, attrs = header.partition(";")
            name, _, value = first.strip().partition("=")
            gone = not value or "max-age=0" in attrs.lower().replace(" ", "")
            if gone:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None, *, name: str = ""
    ) -> Reply:
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        headers = {"Accept-Language": "zh-CN"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        label = name or path
        for attempt in (1, 2):
            reused = self._conn is not None and self._conn.sock is not None
            t0 = time.perf_counter()
            try:
                conn = self._connection()
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt == 1 and reused and method == "GET":
                    continue  # the server closed an idle keep-alive connection: reconnect
                ms = (time.perf_counter() - t0) * 1000
                if self.on_request:
                    self.on_request(method, label, ms, 0, exc)
                raise FlowError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
            ms = (time.perf_counter() - t0) * 1000
            self._store_cookies(resp)
            if resp.will_close:
                self.close()
            error = (
                FlowError(f"{method} {path}: HTTP {resp.status}") if resp.status >= 400 else None
            )
            if self.on_request:
                self.on_request(method, label, ms, len(data), error)
            location = urllib.parse.urlsplit(resp.getheader("Location") or "").path
            return Reply(resp.status, data.decode("utf-8", "replace"), location, ms)
        raise AssertionError("unreachable")

    def get(self, path: str, *, name: str = "") -> Reply:
        return self.request("GET", path, name=name)

    def post(self, path: str, form: dict[str, str], *, name: str = "") -> Reply:
        return self.request("POST", path, form, name=name)


# ---------------------------------------------------------------------- SMS outbox
class Outbox:
    """The customer's phone: reads the code the app wrote to the demo outbox (the app's
    ``FileGateway`` directory; the phone number in it is masked, last four digits kept)."""

    def __init__(self, directory: Path, *, timeout: float = 10.0) -> None:
        self.directory = Path(directory)
        self.timeout = timeout

    def code_for(self, phone: str, not_before: float) -> str:
        masked = f"{phone[:6]}****{phone[-4:]}"
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                names = sorted(
                    (n for n in os.listdir(self.directory) if n[:1].isdigit()), reverse=True
                )
            except FileNotFoundError:
                names = []
            for name in names[:100]:
                if int(name.split("-", 1)[0]) / 1000 < not_before - 1:
                    break  # older than the request: the code is not sent yet
                try:
                    doc = json.loads((self.directory / name).read_text(encoding="utf-8"))
                except (FileNotFoundError, ValueError):
                    continue
                if doc.get("phone") == masked:
                    m = CODE_RE.search(str(doc.get("text", "")))
                    if m:
                        return m.group(1)
            if time.monotonic() > deadline:
                raise FlowError(f"no SMS code for {masked} in {self.directory}")
            time.sleep(0.05)


# ---------------------------------------------------------------------- flows
@dataclass
class FlowResult:
    """One flow: the sum of its response times (what the customer waited for the
    server), the requests it made, and the time its SMS code was sent (if any)."""

    name: str
    ms: float = 0.0
    requests: int = 0
    sms_at: float = 0.0
    details: dict[str, str] = field(default_factory=dict)

    def add(self, reply: Reply) -> Reply:
        self.ms += reply.ms
        self.requests += 1
        return reply


Think = Callable[[], None]


def no_think() -> None:
    return None


def _token(page: Reply, where: str) -> str:
    m = CSRF_RE.search(page.text)
    if not m:
        raise FlowError(f"no CSRF token on {where} (HTTP {page.status})")
    return m.group(1)


def _expect(reply: Reply, status: int, where: str, location: str | None = None) -> Reply:
    if reply.status != status or (location is not None and reply.location != location):
        raise FlowError(
            f"{where}: HTTP {reply.status} {reply.location or ''}, expected {status} {location or ''}"
        )
    return reply


def login_flow(
    http: LoopbackClient, customer: LoadCustomer, outbox: Outbox, think: Think = no_think
) -> FlowResult:
    """username -> anti-phishing phrase -> password -> step-up code if asked -> accounts."""
    r = FlowResult("login")
    page = _expect(r.add(http.get("/login")), 200, "login page")
    think()
    form = {"csrf_token": _token(page, "/login"), "username": customer.username}
    _expect(r.add(http.post("/login", form)), 302, "username", "/login/password")
    page = _expect(r.add(http.get("/login/password")), 200, "password page")
    if customer.phrase not in page.text:
        raise FlowError("the anti-phishing phrase is not on the password page")
    think()
    sent = time.time()
    form = {"csrf_token": _token(page, "/login/password"), "password": PASSWORD}
    reply = r.add(http.post("/login/password", form))
    if reply.status == 302 and reply.location == "/login/code":  # the policy's step-up
        page = _expect(r.add(http.get("/login/code")), 200, "code page")
        code = outbox.code_for(customer.phone, sent)
        r.sms_at = sent
        think()
        form = {"csrf_token": _token(page, "/login/code"), "code": code}
        reply = r.add(http.post("/login/code", form))
    _expect(reply, 302, "login", "/accounts")
    page = _expect(r.add(http.get("/accounts")), 200, "accounts after login")
    if customer.account[-4:] not in page.text:
        raise FlowError("the accounts page does not show the customer's account")
    return r


def accounts_flow(
    http: LoopbackClient, customer: LoadCustomer, think: Think = no_think
) -> FlowResult:
    """The accounts and history page of a logged-in customer."""
    r = FlowResult("accounts")
    think()
    page = _expect(r.add(http.get("/accounts")), 200, "accounts")
    if customer.account[-4:] not in page.text or customer.account in page.text:
        raise FlowError("the accounts page does not show the masked account")
    return r


def transfer_flow(
    http: LoopbackClient,
    customer: LoadCustomer,
    outbox: Outbox,
    think: Think = no_think,
    *,
    amount: str = SMALL_AMOUNT,
) -> FlowResult:
    """Transfer form -> small transfer with the transaction password -> the SMS code bound
    to that transaction -> booked -> accounts page (history)."""
    r = FlowResult("transfer")
    page = _expect(r.add(http.get("/transfer")), 200, "transfer form")
    think()
    form = {
        "csrf_token": _token(page, "/transfer"),
        "payer": customer.account,
        "amount": amount,
        "memo": "load run",
        "password": PASSWORD,
        **PAYEE,
    }
    sent = time.time()
    page = _expect(r.add(http.post("/transfer", form)), 200, "transfer")
    m = TX_ID_RE.search(page.text)
    if not m:
        raise FlowError("the transfer did not ask for a code (no pending transaction)")
    code = outbox.code_for(customer.phone, sent)
    r.sms_at = sent
    r.details["tx_id"] = m.group(1)
    think()
    form = {"csrf_token": _token(page, "/transfer"), "tx_id": m.group(1), "code": code}
    _expect(r.add(http.post("/transfer/confirm", form)), 200, "confirm")
    page = _expect(r.add(http.get("/accounts")), 200, "accounts after transfer")
    if "-" + amount not in page.text:
        raise FlowError("the booked transfer is not in the history")
    return r


def thinker(mean: float, sleep: Callable[[float], None] = time.sleep) -> Think:
    """A customer reading the page: uniform 0.5 .. 1.5 x ``mean`` seconds."""
    if mean <= 0:
        return no_think
    return lambda: sleep(random.uniform(0.5 * mean, 1.5 * mean))


# ---------------------------------------------------------------------- serving
def serve(args: argparse.Namespace) -> int:
    """``serve``: the app's ``create_app`` under waitress (the same app object run.py
    serves with Flask's development server)."""
    import logging

    import waitress

    sys.path.insert(0, str(APP_DIR))
    from app import create_app

    logging.basicConfig(level=logging.WARNING)
    app = create_app(args.state)
    waitress.serve(
        app,
        host=args.host,
        port=args.port,
        threads=args.threads,
        connection_limit=1000,
        channel_timeout=300,
        ident="bank-app",
    )
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            LoopbackClient(url).get("/login")
            return
        except FlowError:
            time.sleep(0.2)
    raise SystemExit(f"the app did not answer on {url} within {seconds} s")


def start_server(
    kind: str, state: Path, port: int, threads: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    if kind == "dev":
        cmd = [sys.executable, str(APP_DIR / "run.py"), "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--state", str(state)]
    else:
        cmd = [sys.executable, __file__, "serve", "--port", str(port), "--state", str(state)]
        cmd += ["--threads", str(threads)]
    out = log.open("wb")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------- state
def prepare_state(cache: Path, count: int, state: Path) -> float:
    """Copy a seeded template of ``count`` customers to ``state`` (seeding it first if the
    cache has none); returns the seconds spent seeding (0 when cached)."""
    template = cache / f"seed-{count}"
    spent = 0.0
    if not (template / "done").exists():
        shutil.rmtree(template, ignore_errors=True)
        template.mkdir(parents=True)
        sys.path.insert(0, str(APP_DIR))
        from wiring import BankServices

        t0 = time.perf_counter()
        services = BankServices(template / "state")  # the app's argon2 parameters
        print(f"seeding {count} customers (argon2id, once; cached in {template}) ...", flush=True)
        seed_customers(services, count)
        services.store.close()
        spent = time.perf_counter() - t0
        with sqlite3.connect(template / "state" / "bank.db") as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (template / "done").write_text(f"{spent:.1f}\n")
    shutil.copytree(template / "state", state)
    return spent


# ---------------------------------------------------------------------- locust phases
@dataclass
class Row:
    """One line of a locust stats table."""

    kind: str
    name: str
    count: int
    failures: int
    per_s: float
    p50: float
    p95: float
    p99: float
    max: float


def read_stats(prefix: Path) -> list[Row]:
    rows = []
    with open(f"{prefix}_stats.csv", newline="") as fh:
        for d in csv.DictReader(fh):
            if d["Name"] == "Aggregated" or not int(d["Request Count"]):
                continue

            def num(key: str, d: dict[str, str] = d) -> float:
                return float(d[key]) if d[key] not in ("", "N/A") else float("nan")

            rows.append(
                Row(
                    kind=d["Type"],
                    name=d["Name"],
                    count=int(d["Request Count"]),
                    failures=int(d["Failure Count"]),
                    per_s=num("Requests/s"),
                    p50=num("50%"),
                    p95=num("95%"),
                    p99=num("99%"),
                    max=num("Max Response Time"),
                )
            )
    return rows


@dataclass
class Phase:
    name: str
    seconds: float
    rows: list[Row]
    server_cpu_s: float
    client_cpu_s: float
    load_average: tuple[float, float]  # the machine's 1-minute load before and after
    notes: list[str]


def run_phase(
    name: str, seconds: float, base: dict[str, str], workdir: Path, server_pid: int, users: int
) -> Phase:
    prefix = workdir / f"locust-{name}"
    env = {**os.environ, **base, "BANK_LOAD_PHASE": name}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    locust = Path(sys.executable).with_name("locust")
    cmd = [str(locust), "-f", str(LOCUSTFILE), "--headless", "--only-summary"]
    cmd += ["-u", str(users), "-r", str(users), "-t", f"{int(seconds)}s", "--stop-timeout", "30"]
    cmd += ["--csv", str(prefix), "--host", base["BANK_LOAD_URL"], "--loglevel", "WARNING"]
    load_before = os.getloadavg()[0]
    before_server = cpu_seconds(server_pid)
    before_children = os.times()
    t0 = time.monotonic()
    with (workdir / f"locust-{name}.log").open("wb") as log:
        subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    wall = time.monotonic() - t0
    after_children = os.times()
    client = (after_children.children_user - before_children.children_user) + (
        after_children.children_system - before_children.children_system
    )
    notes_file = workdir / f"notes-{name}.json"
    notes = json.loads(notes_file.read_text()) if notes_file.exists() else []
    return Phase(
        name=name,
        seconds=round(wall, 1),
        rows=read_stats(prefix),
        server_cpu_s=round(cpu_seconds(server_pid) - before_server, 1),
        client_cpu_s=round(client, 1),
        load_average=(round(load_before, 1), round(os.getloadavg()[0], 1)),
        notes=notes,
    )


# ---------------------------------------------------------------------- crypto figures
_OPS: dict[str, Callable[[], object]] = {}


def _spin(args: tuple[str, float]) -> int:
    name, seconds = args
    op, n = _OPS[name], 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        op()
        n += 1
    return n


def rate_on_cores(name: str, cores: int, seconds: float) -> float:
    """Operations per second with ``cores`` processes running ``name`` at once."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(cores) as pool:
        counts = pool.map(_spin, [(name, seconds)] * cores)
    return sum(counts) / seconds


def measure_argon2(cores: int, seconds: float) -> dict[str, float]:
    """The app's PasswordHasher (argon2id, 64 MiB, t=3, p=4): the verify time of one
    login alone (wall and CPU), and verifies per second with ``cores`` logins at once."""
    from ebank_auth.passwords import PasswordHasher

    hasher = PasswordHasher(memory_cost_kib=64 * 1024)  # what BankServices builds
    encoded = hasher.hash(PASSWORD)
    hasher.verify(encoded, PASSWORD)
    walls, cpus = [], []
    for _ in range(10):
        w, c = time.perf_counter(), time.process_time()
        hasher.verify(encoded, PASSWORD)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    done = [0] * cores
    end = time.perf_counter() + seconds

    def spin(k: int) -> None:
        while time.perf_counter() < end:
            hasher.verify(encoded, PASSWORD)
            done[k] += 1

    threads = [threading.Thread(target=spin, args=(k,)) for k in range(cores)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "verify_wall_ms": statistics.median(walls) * 1000,
        "verify_cpu_ms": statistics.median(cpus) * 1000,
        "verifies_per_s_all_cores": sum(done) / (time.perf_counter() - t0),
    }


def measure_signed_transfer(cores: int, seconds: float) -> dict[str, float]:
    """A confirmation made by a software token session (auto-approve display,
    confirm-and-sign of a canonical Transaction), checked the way the server checks it,
    against the bare SM2 verify of the same bytes; rates on ``cores`` processes, the median
    of three alternating rounds."""
    from ebank_auth.confirmation import verify_confirmation
    from ebank_auth.crypto import sm2
    from ebank_auth.policy.transactions import RawPublicKeySource
    from ebank_auth.transaction import Transaction
    from ebank_auth.usbkey.attestation import TrustConfig
    from ebank_auth.usbkey.emulator.card import SoftToken
    from ebank_auth.usbkey.emulator.display import AutoApprove
    from ebank_auth.usbkey.key_attestation import verify_key_attestation
    from ebank_auth.usbkey.session import TokenSession
    from ebank_auth.usbkey.transport.inprocess import InProcessConnection

    token = SoftToken(None, AutoApprove())
    trust = TrustConfig((token.manufacturer.root,), token.manufacturer.allowlist)
    session = TokenSession.open(InProcessConnection(token), trust)
    session.verify_pin("314159")  # the software token's default user PIN
    signer = session.generate_key("sign")  # a transaction key: display + button enforced
    attestation = session.attest_key("sign").to_pem()
    tx = Transaction(
        tx_id="LOAD-1",
        tx_type="transfer",
        payer_account="6222020200112233445",
        payee_account=PAYEE["payee_account"],
        payee_name=PAYEE["payee_name"],
        amount=Decimal("52000.00"),
        currency="CNY",
        timestamp=datetime.now(timezone.utc),
        memo="load run",
    )
    signed = session.confirm_and_sign(tx)
    session.close()
    key = signer.public_key()
    der = signer.public_key_der
    data = tx.encode()
    assert isinstance(key, sm2.SM2PublicKey)
    source = RawPublicKeySource()

    def key_from_der() -> None:  # the enrolled key parsed and validated again, then checked
        k, _ = source.resolve(der)  # (what ConfirmationVerifier + RawPublicKeySource do)
        verify_confirmation(k, signed.signature, tx)

    def with_attestation() -> None:  # ... plus the key attestation chain, every time
        attested = verify_key_attestation(attestation, trust)
        if not attested.is_transaction_key:
            raise AssertionError("not a transaction key")
        key_from_der()

    _OPS.update(
        bare=lambda: key.verify(signed.signature, data, uid=sm2.DEFAULT_UID),
        # the attestation chain checked once at enrolment, the validated key kept
        confirmation=lambda: verify_confirmation(key, signed.signature, tx),
        key_from_der=key_from_der,
        with_attestation=with_attestation,
    )
    for op in _OPS.values():
        op()  # each check passes before it is timed
    # three alternating rounds, median per check: the machine's speed drifts between loops
    rounds: dict[str, list[float]] = {name: [] for name in _OPS}
    for _ in range(3):
        for name in rounds:
            rounds[name].append(rate_on_cores(name, cores, seconds / 3))
    return {name: statistics.median(rates) for name, rates in rounds.items()}


# ---------------------------------------------------------------------- report
def flow_row(phase: Phase, flow: str) -> Row | None:
    return next((r for r in phase.rows if r.kind == "flow" and r.name == flow), None)


def report(result: dict[str, Any]) -> str:
    out = [
        f"server: {result['server']}, {result['users']} concurrent customers, "
        f"think {result['think_s']} s, {result['cores']} cores, {result['date']}",
        "",
        "| phase | flow / request | n | fail | per s | p50 ms | p95 ms | p99 ms |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for ph in result["phases"]:
        rows = sorted(ph["rows"], key=lambda r: (r["kind"] != "flow", r["name"]))
        for r in rows:
            label = f"**{r['name']}** (flow)" if r["kind"] == "flow" else f"{r['kind']} {r['name']}"
            out.append(
                f"| {ph['name']} | {label} | {r['count']} | {r['failures']} | {r['per_s']:.1f} "
                f"| {r['p50']:.0f} | {r['p95']:.0f} | {r['p99']:.0f} |"
            )
    out.append("")
    for ph in result["phases"]:
        out.append(
            f"{ph['name']}: {ph['seconds']} s, server CPU {ph['server_cpu_s']} s, "
            f"load generator CPU {ph['client_cpu_s']} s, machine load average "
            f"{ph['load_average'][0]} -> {ph['load_average'][1]}"
            + "".join(f"; {n}" for n in ph["notes"])
        )
    a, s, r = result["argon2"], result["signed_transfer"], result["ratios"]
    out += [
        "",
        f"argon2id verify (64 MiB, t=3, p=4): {a['verify_wall_ms']:.0f} ms wall, "
        f"{a['verify_cpu_ms']:.0f} ms CPU alone; {a['verifies_per_s_all_cores']:.1f}/s with "
        f"{result['cores']} at once",
        f"logins/s {r['logins_per_s']:.2f} / (cores / argon2 time) {r['argon2_bound']:.1f} "
        f"= {r['login_capacity']:.2f} (target >= 0.8); / measured argon2 rate "
        f"= {r['login_vs_argon2_rate']:.2f}; argon2 CPU / server CPU per login "
        f"= {r['login_cpu_share_argon2']:.2f}",
        "SM2 verifies/s on all cores: "
        + ", ".join(f"{k} {v:.0f}" for k, v in s.items())
        + f"; signed transfer (key kept) / bare = {r['signed_transfer']:.2f} (target >= 0.5), "
        f"key parsed and validated each time {r['signed_transfer_key_from_der']:.2f}, "
        f"with the attestation chain each time {r['signed_transfer_with_attestation']:.2f}",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command")
    sv = sub.add_parser("serve", help="serve the app under waitress (used by the run)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, required=True)
    sv.add_argument("--state", required=True)
    sv.add_argument("--threads", type=int, default=8)
    ap.add_argument("--server", choices=("waitress", "dev"), default="waitress")
    ap.add_argument("--users", type=int, default=50, help="concurrent customers")
    ap.add_argument("--customers", type=int, default=300, help="seeded customers")
    ap.add_argument("--login-seconds", type=float, default=30)
    ap.add_argument("--accounts-seconds", type=float, default=20)
    ap.add_argument("--transfer-seconds", type=float, default=30)
    ap.add_argument("--think", type=float, default=0.0, help="mean think time per page, s")
    ap.add_argument("--threads", type=int, default=8, help="waitress worker threads")
    ap.add_argument("--crypto-seconds", type=float, default=6.0, help="per SM2 check, 3 rounds")
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "ebank-bank-load",
        help="where the seeded template state is kept between runs",
    )
    ap.add_argument("--json", type=Path, help="write every figure to this file")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    args = ap.parse_args(argv)
    if args.command == "serve":
        return serve(args)

    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="bank-load-"))
    state = work / "state"
    seeded_s = prepare_state(args.cache, args.customers, state)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_log = work / "server.log"
    proc = start_server(args.server, state, port, args.threads, server_log)
    base = {
        "BANK_LOAD_URL": url,
        "BANK_LOAD_CUSTOMERS": str(args.customers),
        "BANK_LOAD_OUTBOX": str(state / "outbox"),
        "BANK_LOAD_SESSIONS": str(work / "sessions.json"),
        "BANK_LOAD_NOTES": str(work / "notes-{phase}.json"),
        "BANK_LOAD_THINK": str(args.think),
    }
    phases: list[Phase] = []
    try:
        wait_ready(url, proc, server_log)
        print(f"app ({args.server}) on {url}, state {state}", flush=True)
        phases.append(run_phase("login", args.login_seconds, base, work, proc.pid, args.users))
        cooled = time.monotonic() + SMS_COOLDOWN + 2  # the last login code's cooldown ends
        phases.append(
            run_phase("accounts", args.accounts_seconds, base, work, proc.pid, args.users)
        )
        print("measuring argon2id and SM2 verification while the app is idle ...", flush=True)
        argon2 = measure_argon2(cores, args.crypto_seconds)
        signed = measure_signed_transfer(cores, args.crypto_seconds)
        time.sleep(max(0.0, cooled - time.monotonic()))
        phases.append(
            run_phase("transfer", args.transfer_seconds, base, work, proc.pid, args.users)
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    login = flow_row(phases[0], "login")
    logins_per_s = login.per_s if login else 0.0
    bound = cores / (argon2["verify_wall_ms"] / 1000)
    result: dict[str, Any] = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {cores} cores, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "cpu": _cpu_model(),
        "server": args.server if args.server == "dev" else f"waitress ({args.threads} threads)",
        "users": args.users,
        "customers": args.customers,
        "seeding_s": round(seeded_s, 1),
        "think_s": args.think,
        "cores": cores,
        "phases": [asdict(p) for p in phases],
        "argon2": argon2,
        "signed_transfer": signed,
        "ratios": {
            "logins_per_s": logins_per_s,
            "argon2_bound": bound,
            "login_capacity": logins_per_s / bound,
            "login_vs_argon2_rate": logins_per_s / argon2["verifies_per_s_all_cores"],
            # what the server would reach alone on the cores (other work on the machine
            # takes CPU from it, not from this): argon2 CPU per verify / server CPU per login
            "login_cpu_share_argon2": (
                argon2["verify_cpu_ms"] / 1000 / (phases[0].server_cpu_s / login.count)
                if login and phases[0].server_cpu_s
                else 0.0
            ),
            "signed_transfer": signed["confirmation"] / signed["bare"],
            "signed_transfer_key_from_der": signed["key_from_der"] / signed["bare"],
            "signed_transfer_with_attestation": signed["with_attestation"] / signed["bare"],
        },
    }
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    if args.keep:
        print(f"run directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    raise SystemExit(main())
