"""Policy, audit and transaction throughput.

    .venv/bin/python benchmarks/policy_bench.py [--quick]

Prints a table: policy decisions per second with the shipped default policy
(target >= 20,000/s in-process), canonical transaction encode/decode, and audit
append + verify throughput on a SQLite store (HMAC-SM3 and SM2 heads).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from ebank_auth.audit import AuditLog, HmacSm3Key, Sm2AuditSigner
from ebank_auth.crypto import backend_info, sm2
from ebank_auth.policy import DEFAULT_TIMEZONE, AuthContext, Factor, PolicyEngine
from ebank_auth.policy.lockout import LoginLockout
from ebank_auth.store import MemoryStore, SQLiteStore
from ebank_auth.transaction import Transaction


def rate(fn: Callable[[], object], seconds: float) -> tuple[float, int]:
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            fn()
        n += 50
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start), n


def contexts() -> list[AuthContext]:
    day = datetime(2026, 3, 10, 14, 0, tzinfo=DEFAULT_TIMEZONE)
    night = datetime(2026, 3, 10, 2, 0, tzinfo=DEFAULT_TIMEZONE)
    pw = Factor.PASSWORD
    return [
        AuthContext("c1", "login", day, device_status="trusted", presented=frozenset({pw})),
        AuthContext(
            "c1", "login", night, device_status="known", presented=frozenset({pw, Factor.SMS_CODE})
        ),
        AuthContext(
            "c2", "transfer", day, amount=Decimal("3000"), presented=frozenset({pw, Factor.TOTP})
        ),
        AuthContext(
            "c2",
            "transfer",
            day,
            amount=Decimal("80000"),
            device_status="new",
            presented=frozenset({pw, Factor.USBKEY_SIGNATURE}),
        ),
        AuthContext(
            "c3",
            "salary",
            day,
            amount=Decimal("2500000"),
            customer_type="corporate",
            presented=frozenset({pw, Factor.USBKEY_SIGNATURE, Factor.SMS_CODE}),
            risk_score=40.0,
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="shorter runs")
    args = ap.parse_args()
    secs = 0.5 if args.quick else 2.0
    rows: list[tuple[str, str, str]] = []

    engine = PolicyEngine()
    ctxs = contexts()
    i = [0]

    def one_decision() -> object:
        i[0] += 1
        return engine.decide(ctxs[i[0] % len(ctxs)])

    r, n = rate(one_decision, secs)
    rows.append(("policy decide (default policy, 5 mixed contexts)", f"{r:,.0f}/s", f"{n:,}"))

    hook_engine = PolicyEngine(risk_hooks=[lambda c: 10.0], blacklists=[engine.policy.blacklist])
    r, n = rate(lambda: hook_engine.decide(ctxs[3]), secs)
    rows.append(("policy decide + risk hook + extra blacklist", f"{r:,.0f}/s", f"{n:,}"))

    tx = Transaction(
        "bench-1",
        "transfer",
        "6222021234567890",
        "6222029876543210",
        "张三",
        Decimal("1005.30"),
        "CNY",
        datetime(2026, 3, 10, 14, 0, tzinfo=DEFAULT_TIMEZONE),
    )
    raw = tx.encode()
    r, n = rate(tx.encode, secs)
    rows.append(("transaction encode", f"{r:,.0f}/s", f"{n:,}"))
    r, n = rate(lambda: Transaction.decode(raw), secs)
    rows.append(("transaction decode (strict)", f"{r:,.0f}/s", f"{n:,}"))

    mem = MemoryStore()
    lock = LoginLockout(mem)
    r, n = rate(lambda: lock.attempt("u", lambda: True), secs)
    rows.append(("lockout attempt (memory store, success)", f"{r:,.0f}/s", f"{n:,}"))

    with tempfile.TemporaryDirectory() as tmp:
        for label, signer in (
            ("HMAC-SM3", HmacSm3Key(os.urandom(32))),
            ("SM2", Sm2AuditSigner(sm2.generate_private_key())),
        ):
            for sync in ("FULL", "NORMAL"):
                store = SQLiteStore(os.path.join(tmp, f"{label}-{sync}.db"), synchronous=sync)
                log = AuditLog(store, signer)
                count = 0
                start = time.perf_counter()
                while time.perf_counter() - start < secs:
                    log.record(
                        "login",
                        user=f"u{count}",
                        ip="10.0.0.1",
                        outcome="allow",
                        rules=["operation.login"],
                    )
                    count += 1
                append_rate = count / (time.perf_counter() - start)
                start = time.perf_counter()
                report = log.check()
                verify_rate = report.records / (time.perf_counter() - start)
                assert report.ok
                rows.append(
                    (
                        f"audit append, SQLite synchronous={sync}, {label}",
                        f"{append_rate:,.0f}/s",
                        f"{count:,}",
                    )
                )
                rows.append(
                    (
                        f"audit verify, SQLite, {label}",
                        f"{verify_rate:,.0f} rec/s",
                        f"{report.records:,}",
                    )
                )
                store.close()

    info = backend_info()
    print(
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, crypto backend {info.active}"
    )
    w = max(len(r[0]) for r in rows)
    print(f"{'operation':<{w}}  {'throughput':>16}  {'ops':>10}")
    print("-" * (w + 30))
    for name, thr, ops in rows:
        print(f"{name:<{w}}  {thr:>16}  {ops:>10}")


if __name__ == "__main__":
    main()
