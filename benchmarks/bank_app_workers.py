"""Throughput of the bank app under gunicorn with 1 and with 3 worker processes over a network
store (issue 16, item 4): the same-run baseline is the single worker on the same store.

For every store (a private redis-server with ``appendonly yes``; a private PostgreSQL cluster,
``synchronous_commit = on``) and every worker count it starts ``gunicorn -w N wsgi:app`` on
loopback (tests/plugins/bank_workers.py, the multi-worker tests' harness), with customers
seeded through the app's wiring (argon2id with 1 MiB, so seeding is quick; each customer's login
then upgrades the hash to the app's 64 MiB: one production argon2id hash per login), then runs
with ``--clients`` threads, each a customer with its own cookie jar and loopback address:

* ``login``: every customer logs in once (username, phrase page, password, SMS code read from
  the demo outbox, accounts page): logins per second;
* ``accounts``: the logged-in customers load their accounts page for ``--seconds``: pages per
  second and p95.

The client threads run on the same machine as the server: on 2 cores they take CPU from it,
so the numbers are a lower bound and the ratio 3 workers : 1 worker is what to read.

    PYTHONPATH=src .venv/bin/python benchmarks/bank_app_workers.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from bank_app_load import FlowError, accounts_flow, login_flow  # noqa: E402

from plugins.bank_workers import Gunicorn, Node, client_for  # noqa: E402
from plugins.postgres_server import PostgresServer, _bindir, _run_as  # noqa: E402
from plugins.redis_server import _binary, start_redis_server  # noqa: E402


def run_threads(n: int, body: Any) -> list[Any]:
    out: list[Any] = [None] * n
    barrier = threading.Barrier(n)

    def one(i: int) -> None:
        barrier.wait()
        out[i] = body(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def measure(store_url: str, workers: int, clients: int, customers: int, seconds: float) -> dict:
    state = Path(tempfile.mkdtemp(prefix="ebank-bench-workers-"))
    node = Node(state, store_url, customers)
    server = Gunicorn(state, store_url, workers=workers).start()
    try:
        queue = list(node.customers)
        lock = threading.Lock()
        sessions: list[Any] = []
        errors = 0

        def logins(_: int) -> list[float]:
            nonlocal errors
            times = []
            while True:
                with lock:
                    if not queue:
                        return times
                    c = queue.pop()
                http = client_for(server, c)
                try:
                    r = login_flow(http, c, node.outbox)
                except FlowError:
                    with lock:
                        errors += 1
                    continue
                times.append(r.ms)
                with lock:
                    sessions.append((http, c))

        t0 = time.perf_counter()
        login_ms = [ms for per in run_threads(clients, logins) for ms in per]
        login_s = time.perf_counter() - t0

        def pages(i: int) -> list[float]:
            times = []
            deadline = time.perf_counter() + seconds
            k = i
            while time.perf_counter() < deadline:
                http, c = sessions[k % len(sessions)]
                k += clients
                times.append(accounts_flow(http, c).ms)
            return times

        t0 = time.perf_counter()
        page_ms = [ms for per in run_threads(min(clients, len(sessions)), pages) for ms in per]
        page_s = time.perf_counter() - t0
        served = server.served_by()
        return {
            "workers": workers,
            "logins": len(login_ms),
            "login_errors": errors,
            "logins_per_s": len(login_ms) / login_s,
            "login_p95_ms": statistics.quantiles(login_ms, n=20)[18],
            "pages": len(page_ms),
            "pages_per_s": len(page_ms) / page_s,
            "page_p95_ms": statistics.quantiles(page_ms, n=20)[18],
            "workers_that_served": len(served),
            "audit_ok": node.services.audit.check().ok,
        }
    finally:
        server.stop()
        node.close()
        shutil.rmtree(state, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stores", default="redis,postgresql")
    p.add_argument("--workers", default="1,3")
    p.add_argument("--clients", type=int, default=12)
    p.add_argument("--customers", type=int, default=48)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    results: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "clients": args.clients,
        "runs": [],
    }
    work = Path(tempfile.mkdtemp(prefix="ebank-bench-servers-"))
    redis_proc = None
    pg: PostgresServer | None = None
    try:
        urls: dict[str, str] = {}
        if "redis" in args.stores:
            binary = _binary()
            assert binary, "redis-server is not installed"
            (work / "redis").mkdir()
            redis_proc, port = start_redis_server(work / "redis", binary)
            urls["redis"] = f"redis://127.0.0.1:{port}/0"
        if "postgresql" in args.stores:
            bindir = _bindir()
            assert bindir, "PostgreSQL is not installed"
            # its own directory under /tmp: the postgres user must reach it (it owns it)
            pg_dir = Path(tempfile.mkdtemp(prefix="ebank-bench-pg-"))
            server = PostgresServer(bindir, pg_dir, _run_as())
            server.initdb()
            server.start()
            pg = server
            pg.create_role_and_database()
            urls["postgresql"] = pg.url
        for store, url in urls.items():
            for n, workers in enumerate(int(w) for w in args.workers.split(",")):
                scoped = (
                    f"{url}?schema=bench{n}" if store == "postgresql" else f"{url}?prefix=b{n}:"
                )
                run = measure(scoped, workers, args.clients, args.customers, args.seconds)
                run["store"] = store
                results["runs"].append(run)
                print(
                    f"{store:10} {workers} worker(s): {run['logins_per_s']:6.1f} logins/s "
                    f"(p95 {run['login_p95_ms']:.0f} ms), {run['pages_per_s']:6.1f} pages/s "
                    f"(p95 {run['page_p95_ms']:.0f} ms); served by {run['workers_that_served']}, "
                    f"errors {run['login_errors']}, audit ok {run['audit_ok']}",
                    flush=True,
                )
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
        if pg is not None:
            pg.stop("fast")
            shutil.rmtree(pg.workdir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
