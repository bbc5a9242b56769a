"""Benchmark: SMS-code verification throughput per store, with concurrent callers.

    .venv/bin/python benchmarks/otp_bench.py [--codes 4000] [--threads 8] [--procs 4]
                                             [--stores memory,sqlite,redis,postgres,redis-cluster]

For each store it issues ``--codes`` codes (distinct users, not timed), then every
code is verified twice — by two different callers, at the same time — and counts:

* verifications/s  (all verify calls, accepted or refused, over wall time)
* accepted         (must equal the number of codes)
* double           (codes accepted more than once: must be 0)

memory: one process, ``--threads`` threads.  sqlite / redis: ``--procs`` processes ×
``--threads`` threads sharing the store.  Redis: a throw-away redis-server on
127.0.0.1 is started (needs /usr/bin/redis-server).  postgres: a private cluster
(initdb/pg_ctl, as the test suite starts it).  redis-cluster: 3 masters on loopback.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from ebank_auth.errors import OtpError
from ebank_auth.otp import CodeService, MappingPhoneRegistry, OtpSettings, normalize_phone
from ebank_auth.otp.gateway import OutboundMessage
from ebank_auth.store import Store, open_store

KEY = b"b" * 32
_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")
SETTINGS = OtpSettings(
    resend_cooldown=0, daily_limit_per_user=1000, daily_limit_per_phone=1000, test_mode=True
)


class CaptureGateway:
    """Keeps the last code per phone in memory (the benchmark's stand-in handset)."""

    def __init__(self) -> None:
        self.codes: dict[str, str] = {}

    def send(self, message: OutboundMessage) -> None:
        match = _CODE.search(message.text)
        assert match is not None
        self.codes[message.phone] = match.group(1)


def _phones(n: int) -> dict[str, str]:
    return {f"u{i}": f"139{i:08d}" for i in range(n)}


def issue(store: Store, n: int) -> list[tuple[str, str]]:
    gateway = CaptureGateway()
    phones = _phones(n)
    service = CodeService(store, gateway, MappingPhoneRegistry(phones), KEY, SETTINGS)
    out = []
    for user, phone in phones.items():
        service.issue(user, "login")
        out.append((user, gateway.codes[normalize_phone(phone)]))
    return out


def verify_many(
    store: Store, items: list[tuple[str, str]], threads: int
) -> tuple[int, Counter[str]]:
    service = CodeService(store, CaptureGateway(), MappingPhoneRegistry({}), KEY, SETTINGS)
    accepted: Counter[str] = Counter()
    calls = [0] * threads
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def run(idx: int) -> None:
        mine = items[idx::threads]
        local: list[str] = []
        barrier.wait()
        for user, code in mine:
            try:
                service.verify(user, "login", code)
                local.append(user)
            except OtpError:
                pass
        calls[idx] = len(mine)
        with lock:
            accepted.update(local)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(calls), accepted


def _proc_worker(
    url: str, items: list[tuple[str, str]], threads: int, start_at: float, q: mp.Queue
) -> None:  # type: ignore[type-arg]
    store = open_store(url)
    while time.time() < start_at:
        time.sleep(0.001)
    calls, accepted = verify_many(store, items, threads)
    q.put((calls, dict(accepted), time.time()))
    store.close()


def _interleave(codes: list[tuple[str, str]], callers: int) -> list[list[tuple[str, str]]]:
    """Each code goes to two different callers, so the two tries race."""
    lists: list[list[tuple[str, str]]] = [[] for _ in range(callers)]
    for i, item in enumerate(codes):
        lists[i % callers].append(item)
        lists[(i + 1) % callers].append(item)
    return lists


def bench_memory(n: int, threads: int) -> tuple[float, int, int, int]:
    store = open_store("memory://")
    codes = issue(store, n)
    items = [c for c in codes for _ in range(2)]  # each code twice, adjacent
    t0 = time.perf_counter()
    calls, accepted = verify_many(store, items, threads)
    dt = time.perf_counter() - t0
    return calls / dt, calls, sum(accepted.values()), sum(1 for v in accepted.values() if v > 1)


def bench_shared(url: str, n: int, procs: int, threads: int) -> tuple[float, int, int, int]:
    store = open_store(url)
    codes = issue(store, n)
    store.close()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    start_at = time.time() + 3.0  # let every process import and connect first
    workers = [
        ctx.Process(target=_proc_worker, args=(url, lst, threads, start_at, q))
        for lst in _interleave(codes, procs)
    ]
    for w in workers:
        w.start()
    results = [q.get() for _ in workers]
    for w in workers:
        w.join()
    end = max(r[2] for r in results)
    calls = sum(r[0] for r in results)
    accepted: Counter[str] = Counter()
    for r in results:
        accepted.update(r[1])
    dt = end - start_at
    return calls / dt, calls, sum(accepted.values()), sum(1 for v in accepted.values() if v > 1)


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A throw-away redis-server on loopback, started the way the test suite starts it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from plugins.redis_server import start_redis_server

    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc, port = start_redis_server(workdir, binary)
    return proc, f"redis://127.0.0.1:{port}/0"


def start_postgres() -> tuple[object, str]:
    """A private PostgreSQL cluster, started the way the test suite starts it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from plugins.postgres_server import PostgresServer, _bindir, _run_as

    bindir = _bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL (initdb, pg_ctl) is not installed")
    # its own directory under /tmp: the cluster may run as another user (root refuses),
    # who must be able to reach it
    pg_dir = Path(tempfile.mkdtemp(prefix="otp-bench-pg-"))
    server = PostgresServer(bindir, pg_dir, _run_as())
    server.initdb()
    server.start()
    server.create_role_and_database()
    return server, server.url


def start_redis_cluster(workdir: Path) -> tuple[object, str]:
    """Three redis-server masters in a cluster, started the way the test suite does."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from plugins.redis_cluster import RedisCluster

    cluster_dir = workdir / "cluster"
    cluster_dir.mkdir()
    cluster = RedisCluster(cluster_dir)
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    cluster.start(binary, shutil.which("redis-cli") or "/usr/bin/redis-cli")
    return cluster, cluster.url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--codes", type=int, default=4000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--stores", default="memory,sqlite,sqlite-normal,redis")
    ap.add_argument("--repeat", type=int, default=3, help="runs per store (best and median shown)")
    args = ap.parse_args()
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="otp-bench-"))
    redis_proc = None
    servers: dict[str, tuple[object, str]] = {}
    try:
        for name in args.stores.split(","):
            runs = []
            for run in range(args.repeat):
                if name == "memory":
                    callers = f"1 × {args.threads} threads"
                    runs.append(bench_memory(args.codes, args.threads))
                    continue
                callers = f"{args.procs} procs × {args.threads} threads"
                if name == "sqlite":
                    url = f"sqlite://{tmp / f'full{run}.db'}"
                elif name == "sqlite-normal":
                    url = f"sqlite://{tmp / f'normal{run}.db'}?synchronous=NORMAL"
                elif name == "redis":
                    if redis_proc is None:
                        redis_proc, base = start_redis(tmp)
                    url = f"{base}?prefix=run{run}:"
                elif name == "postgres":
                    if name not in servers:
                        servers[name] = start_postgres()
                    url = f"{servers[name][1]}?schema=run{run}"
                elif name == "redis-cluster":
                    if name not in servers:
                        servers[name] = start_redis_cluster(tmp)
                    url = f"{servers[name][1]}?prefix=run{run}:"
                else:
                    raise SystemExit(f"unknown store {name}")
                runs.append(bench_shared(url, args.codes, args.procs, args.threads))
            rates = sorted(r[0] for r in runs)
            calls = sum(r[1] for r in runs)
            accepted = sum(r[2] for r in runs)
            double = sum(r[3] for r in runs)
            rows.append(
                (name, callers, rates[-1], statistics.median(rates), calls, accepted, double)
            )
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait()
        for server, _url in servers.values():
            server.stop()  # type: ignore[attr-defined]
            pg_dir = getattr(server, "data", None)
            if pg_dir is not None:
                shutil.rmtree(pg_dir.parent, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"OTP verify benchmark: {args.codes} codes × {args.repeat} runs, each code verified "
        "twice concurrently; "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    print(
        f"{'store':<14} {'callers':<22} {'best/s':>8} {'median/s':>9} {'calls':>7} "
        f"{'accepted':>9} {'double':>7}"
    )
    for name, callers, best, median, calls, accepted, double in rows:
        print(
            f"{name:<14} {callers:<22} {best:>8,.0f} {median:>9,.0f} {calls:>7} "
            f"{accepted:>9} {double:>7}"
        )


if __name__ == "__main__":
    main()
