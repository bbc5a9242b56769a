"""Login lockout (AU-6): counted before the check, ≤5, until local midnight,
one notice, audited; concurrency across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from ebank_auth.audit import AuditLog, HmacSm3Key
from ebank_auth.errors import AccountLocked, ConfigurationError, DeliveryError
from ebank_auth.policy import DEFAULT_TIMEZONE, default_policy
from ebank_auth.policy.lockout import LockoutEvent, LoginLockout
from ebank_auth.store import MemoryStore, Store
from plugins.store_backends import FakeClock, StoreFactory

WORKER = Path(__file__).with_name("lockout_worker.py")
KEY = HmacSm3Key(b"lockout-test-audit-key-32-bytes!")


class ListNotifier:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[LockoutEvent] = []
        self.fail = fail

    def notify_locked(self, event: LockoutEvent) -> None:
        self.events.append(event)
        if self.fail:
            raise DeliveryError("gateway down")


def shanghai(*args: int) -> float:
    return datetime(*args, tzinfo=DEFAULT_TIMEZONE).timestamp()  # type: ignore[misc]


@pytest.mark.parametrize("limit", [0, 6, 10, -1, True, "5"])
def test_limit_never_above_five(limit: object) -> None:
    with pytest.raises(ConfigurationError):
        LoginLockout(MemoryStore(), limit=limit)  # type: ignore[arg-type]


def test_five_failures_lock_until_local_midnight_and_notify_once() -> None:
    clock = FakeClock(shanghai(2026, 3, 10, 22, 15))
    store = MemoryStore(clock=clock)
    notifier = ListNotifier()
    audit = AuditLog(store, KEY)
    lockout = LoginLockout(store, notifier=notifier, audit=audit)
    for i in range(1, 5):
        r = lockout.attempt("alice", lambda: False)
        assert (r.success, r.failures, r.remaining, r.locked) == (False, i, 5 - i, False)
    r = lockout.attempt("alice", lambda: False)
    assert r.locked and r.failures == 5 and r.remaining == 0
    midnight = datetime(2026, 3, 11, 0, 0, tzinfo=DEFAULT_TIMEZONE)
    assert r.locked_until == midnight
    assert [e.user for e in notifier.events] == ["alice"]
    assert notifier.events[0].locked_until == midnight

    evaluated = []
    with pytest.raises(AccountLocked, match="2026-03-11 00:00"):
        lockout.attempt("alice", lambda: evaluated.append(1) or True)
    assert evaluated == []  # the correct password is not even checked
    status = lockout.status("alice")
    assert status.locked and status.failures == 5 and status.locked_until == midnight
    assert len(notifier.events) == 1

    clock.set(shanghai(2026, 3, 10, 23, 59, 59))
    with pytest.raises(AccountLocked):
        lockout.attempt("alice", lambda: True)
    clock.set(shanghai(2026, 3, 11, 0, 0, 1))  # the next local day
    assert not lockout.status("alice").locked
    assert lockout.attempt("alice", lambda: True).success

    events = [r["event"] for r in audit.records()]
    assert events.count("login_locked") == 1
    assert "login_locked_notified" in events and events.count("login_refused_locked") == 2
    assert audit.check().ok


def test_success_resets_and_other_users_are_independent() -> None:
    store = MemoryStore()
    lockout = LoginLockout(store, limit=3)
    lockout.attempt("a", lambda: False)
    lockout.attempt("a", lambda: False)
    assert lockout.attempt("a", lambda: True).success
    assert lockout.status("a").failures == 0
    lockout.attempt("b", lambda: False)
    assert lockout.status("b").failures == 1 and lockout.status("a").failures == 0


def test_check_that_raises_still_counts() -> None:
    store = MemoryStore()
    lockout = LoginLockout(store)

    def crash() -> bool:
        raise RuntimeError("connection reset while checking")

    with pytest.raises(RuntimeError):
        lockout.attempt("a", crash)
    assert lockout.status("a").failures == 1


def test_admin_unlock_is_audited() -> None:
    store = MemoryStore()
    audit = AuditLog(store, KEY)
    lockout = LoginLockout(store, limit=2, audit=audit)
    lockout.attempt("a", lambda: False)
    lockout.attempt("a", lambda: False)
    assert lockout.status("a").locked
    with pytest.raises(AccountLocked):
        lockout.ensure_not_locked("a")
    status = lockout.unlock("a", admin="ops-7", reason="customer called")
    assert not status.locked
    lockout.ensure_not_locked("a")
    rec = next(r for r in audit.records() if r["event"] == "login_unlocked")
    assert rec["details"]["admin"] == "ops-7" and rec["details"]["failures_before"] == "2"
    with pytest.raises(ConfigurationError):
        lockout.unlock("a", admin="")


def test_failed_notice_keeps_the_lock_and_is_audited() -> None:
    store = MemoryStore()
    audit = AuditLog(store, KEY)
    lockout = LoginLockout(store, limit=1, notifier=ListNotifier(fail=True), audit=audit)
    assert lockout.attempt("a", lambda: False).locked
    assert lockout.status("a").locked
    assert "login_locked_notify_failed" in [r["event"] for r in audit.records()]


def test_from_policy() -> None:
    lockout = LoginLockout.from_policy(MemoryStore(), default_policy())
    assert lockout.limit == 5


def test_gateway_notifier(tmp_path: Path) -> None:
    from ebank_auth.otp import FileGateway, MappingPhoneRegistry
    from ebank_auth.policy.notify import GatewayNotifier

    outbox = FileGateway(tmp_path / "outbox")
    notifier = GatewayNotifier(outbox, MappingPhoneRegistry({"alice": "13812345678"}))
    store = MemoryStore(clock=FakeClock(shanghai(2026, 3, 10, 9, 0)))
    lockout = LoginLockout(store, notifier=notifier)
    for _ in range(5):
        lockout.attempt("alice", lambda: False)
    msgs = outbox.messages()
    assert len(msgs) == 1
    assert msgs[0].phone == "+86138****5678" and msgs[0].channel.value == "sms"  # masked outbox
    assert "连续5次" in msgs[0].text and "2026-03-11 00:00" in msgs[0].text
    with pytest.raises(DeliveryError, match="no registered phone"):
        notifier.notify_locked(LockoutEvent("bob", 5, datetime.now(DEFAULT_TIMEZONE)))


def run_workers(url: str, tmp: Path, processes: int, threads: int) -> list[dict[str, int]]:
    barrier = tmp / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, "mallory", str(threads), str(barrier)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in range(processes)
    ]
    barrier.touch()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=240)
        assert p.returncode == 0, stderr.decode()
        out.append(json.loads(stdout))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("store_backend", ["sqlite", "redis"], indirect=True)
def test_fifty_parallel_wrong_passwords_across_processes(
    store_backend: StoreFactory, tmp_path: Path
) -> None:
    results = run_workers(store_backend.url, tmp_path, processes=5, threads=10)
    total = {k: sum(r[k] for r in results) for k in ("failed", "locked", "refused")}
    assert total == {"failed": 4, "locked": 1, "refused": 45}
    store: Store = store_backend()
    assert len(list(store.read_log("evaluated"))) == 5  # exactly five checks ran
    assert len(list(store.read_log("notices"))) == 1  # one notice
    lockout = LoginLockout(store)
    assert lockout.status("mallory").locked
    audit = AuditLog(store, KEY)
    report = audit.check()
    assert report.ok, report.error
    events = [r["event"] for r in audit.records() if r["kind"] == "event"]
    assert events.count("login_locked") == 1 and events.count("login_refused_locked") == 45
