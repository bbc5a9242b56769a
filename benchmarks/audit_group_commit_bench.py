"""Benchmark: durable audit appends with group commit vs one writer, in the same run.

    .venv/bin/python benchmarks/audit_group_commit_bench.py [--threads 32] [--seconds 4]
        [--stores sqlite,postgres] [--procs 4] [--repeat 3] [--signer hmac|sm2]

For each store, every repetition runs, one after the other on a fresh log:

* ``1 writer``            one thread, ``group_commit=False``: the same-run baseline
* ``N writers, no GC``    ``--threads`` threads, ``group_commit=False`` (each write its
                          own commit; they conflict and retry)
* ``N writers, GC``       ``--threads`` threads sharing one group-commit AuditLog
* ``P procs x N/P, GC``   ``--procs`` processes on the same store, one group-commit
                          AuditLog each (their batches serialise on the store)

Each run writes for ``--seconds``; a write counts once ``record()`` has returned, i.e.
once it is durable (SQLite ``synchronous=FULL``, PostgreSQL ``synchronous_commit=on``).
After each run the whole log is checked (chain, checkpoints every 100, signed head)
and the event count compared with the acknowledged writes.  The table shows the best
and the median appends/s, the ratio of the best to the same-run baseline, and the
mean records per commit (batch size).  The load average is printed before and after:
the machine is shared.  postgres: a private cluster started the way the tests do.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ebank_auth.audit import AuditLog, HmacSm3Key, Sm2AuditSigner
from ebank_auth.audit.signing import AuditSigner
from ebank_auth.crypto import sm2
from ebank_auth.store import Store, open_store

HMAC = b"audit-bench-key-0123456789abcdef"


class CountingStore:
    """Counts the store's batch appends (commits) and records of one run."""

    def __init__(self, store: Store) -> None:
        self.commits = 0
        self.records = 0
        inner = store.append_many

        def append_many(log: str, items: Any, **kwargs: Any) -> int:
            first = inner(log, items, **kwargs)
            self.commits += 1
            self.records += len(items)
            return first

        store.append_many = append_many  # type: ignore[method-assign]


def _signer(kind: str, sm2_key: bytes | None) -> AuditSigner:
    if kind == "sm2":
        assert sm2_key is not None
        return Sm2AuditSigner(sm2.private_key_from_bytes(sm2_key))
    return HmacSm3Key(HMAC)


def run_threads(
    url: str, threads: int, seconds: float, group: bool, signer: AuditSigner
) -> tuple[int, float, int, int]:
    """(acknowledged writes, seconds, commits, records) of ``threads`` writers."""
    store = open_store(url)
    counter = CountingStore(store)
    log = AuditLog(store, signer, group_commit=group)
    log.record("bench_start")
    acked = [0] * threads
    stop = time.perf_counter() + seconds
    go = threading.Barrier(threads + 1)

    def writer(t: int) -> None:
        go.wait()
        n = 0
        while time.perf_counter() < stop:
            log.record("login", user=f"u{t}", ip="10.0.0.1", outcome="allow", details={"n": str(n)})
            n += 1
        acked[t] = n

    pool = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    counter.commits = counter.records = 0
    go.wait()
    start = time.perf_counter()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - start
    store.close()
    return sum(acked), elapsed, counter.commits, counter.records


def _proc(url: str, threads: int, seconds: float, signer: str, key: bytes | None, q: Any) -> None:
    q.put(run_threads(url, threads, seconds, True, _signer(signer, key)))


def run_procs(
    url: str, procs: int, threads: int, seconds: float, signer: str, key: bytes | None
) -> tuple[int, float, int, int]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    workers = [
        ctx.Process(target=_proc, args=(url, threads, seconds, signer, key, q))
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    results = [q.get(timeout=seconds + 120) for _ in workers]
    for w in workers:
        w.join()
    acked = sum(r[0] for r in results)
    elapsed = max(r[1] for r in results)
    return acked, elapsed, sum(r[2] for r in results), sum(r[3] for r in results)


def check(url: str, signer: AuditSigner, acked: int) -> str:
    store = open_store(url)
    log = AuditLog(store, signer)
    report = log.check()
    events = sum(1 for r in log.records() if r["kind"] == "event" and r["event"] == "login")
    checkpoints = sum(1 for r in log.records() if r["kind"] == "checkpoint")
    store.close()
    if not report.ok:
        raise SystemExit(f"the log does not verify: {report.error}")
    if events != acked:
        raise SystemExit(f"{acked} writes acknowledged but {events} events in the log")
    return f"ok ({report.records} records, {checkpoints} checkpoints)"


def start_postgres() -> tuple[Any, str]:
    """A private PostgreSQL cluster, started the way the test suite starts it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from plugins.postgres_server import PostgresServer, _bindir, _run_as

    bindir = _bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL (initdb, pg_ctl) is not installed")
    server = PostgresServer(bindir, Path(tempfile.mkdtemp(prefix="audit-gc-bench-pg-")), _run_as())
    server.initdb()
    server.start()
    server.create_role_and_database()
    return server, server.url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stores", default="sqlite,postgres")
    ap.add_argument("--signer", choices=("hmac", "sm2"), default="hmac")
    args = ap.parse_args()
    key = sm2.generate_private_key().to_bytes() if args.signer == "sm2" else None
    signer = _signer(args.signer, key)
    tmp = Path(tempfile.mkdtemp(prefix="audit-gc-bench-"))
    pg: Any = None
    rows: list[tuple[str, str, list[float], float, str]] = []
    load_before = os.getloadavg()
    n, p = args.threads, args.procs
    per_proc = max(1, n // p)
    try:
        for name in args.stores.split(","):
            results: dict[str, list[tuple[float, float]]] = {}
            verdicts: dict[str, str] = {}
            for rep in range(args.repeat):
                for mode in ("1 writer", f"{n} writers, no GC", f"{n} writers, GC", "procs"):
                    tag = f"r{rep}{abs(hash(mode)) % 10_000}"
                    if name == "sqlite":
                        url = f"sqlite://{tmp / f'{tag}.db'}"
                    elif name == "postgres":
                        if pg is None:
                            pg = start_postgres()
                        url = f"{pg[1]}?schema={tag}"
                    else:
                        raise SystemExit(f"unknown store {name}")
                    if mode == "procs":
                        acked, secs, commits, recs = run_procs(
                            url, p, per_proc, args.seconds, args.signer, key
                        )
                    else:
                        threads = 1 if mode == "1 writer" else n
                        acked, secs, commits, recs = run_threads(
                            url, threads, args.seconds, "no GC" not in mode and threads > 1, signer
                        )
                    verdicts[mode] = check(url, signer, acked)
                    batch = recs / commits if commits else 0.0
                    results.setdefault(mode, []).append((acked / secs, batch))
            base = max(r for r, _ in results["1 writer"])
            for mode, runs in results.items():
                label = f"{p} procs x {per_proc}, GC" if mode == "procs" else mode
                rates = [r for r, _ in runs]
                batch = statistics.mean(b for _, b in runs)
                rows.append(
                    (
                        name,
                        label,
                        rates,
                        batch,
                        f"{max(rates) / base:.1f}x  {verdicts[mode]}",
                    )
                )
    finally:
        if pg is not None:
            pg[0].stop()
            shutil.rmtree(pg[0].data.parent, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()
    print(
        f"audit group commit: {args.seconds:g} s per run x {args.repeat}, signer {args.signer}, "
        f"SQLite synchronous=FULL / PostgreSQL synchronous_commit=on; {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}"
    )
    print(
        "load average before: "
        + " ".join(f"{x:.2f}" for x in load_before)
        + "   after: "
        + " ".join(f"{x:.2f}" for x in load_after)
    )
    print(
        f"{'store':<9} {'writers':<20} {'best/s':>8} {'median/s':>9} {'rec/commit':>10}  "
        "vs 1 writer, log check"
    )
    for name, label, rates, batch, note in rows:
        print(
            f"{name:<9} {label:<20} {max(rates):>8,.0f} {statistics.median(rates):>9,.0f} "
            f"{batch:>10.1f}  {note}"
        )


if __name__ == "__main__":
    main()
