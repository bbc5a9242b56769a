"""Audit log (AU-10): chain, checkpoints, signed head, verify, export, fail closed."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ebank_auth.audit import (
    AuditEvent,
    AuditLog,
    HmacSm3Key,
    Sm2AuditSigner,
    Sm2AuditVerifier,
    check_jsonl,
    transaction_summary,
    verify_jsonl,
)
from ebank_auth.crypto import rsa, sm2
from ebank_auth.crypto.keys import SignatureAlgorithm
from ebank_auth.errors import AuditError, AuditIntegrityError, ConfigurationError
from ebank_auth.store import MemoryStore, SQLiteStore
from ebank_auth.transaction import Transaction
from plugins.store_backends import FakeClock, StoreFactory

KEY = HmacSm3Key(b"audit-test-key-0123456789abcdef!")


def fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.record(
            "login",
            user=f"u{i}",
            ip="10.0.0.1",
            device="d1",
            client_type="android",
            os_version="14",
            outcome="allow",
            rules=["operation.login"],
        )


@pytest.mark.parametrize("store_backend", ["memory", "sqlite", "redis"], indirect=True)
def test_untouched_log_verifies(store_backend: StoreFactory) -> None:
    log = AuditLog(store_backend(), KEY, checkpoint_every=4)
    fill(log, 10)
    report = log.check()
    assert report.ok, report.error
    assert report.last_seq == 13 and report.checkpoints == 3
    kinds = [r["kind"] for r in log.records()]
    assert kinds.count("checkpoint") == 3 and kinds[4] == "checkpoint"


def test_record_fields_and_masked_transaction() -> None:
    clock = FakeClock(1_773_000_000.0)
    log = AuditLog(MemoryStore(clock=clock), KEY)
    tx = Transaction(
        "t1",
        "transfer",
        "6222021234567890",
        "6222029876543210",
        "欧阳小明",
        Decimal("88.00"),
        "CNY",
        datetime.fromtimestamp(clock(), log.tz),
    )
    ref = log.record(
        "transfer",
        user="c1",
        ip="1.2.3.4",
        device="dev",
        client_type="ios",
        os_version="17.2",
        outcome="allow",
        rules=["tier-1-small"],
        tx=tx,
        details={"channel": "mobile"},
    )
    rec = next(log.records())
    assert ref.seq == 1 and rec["hash"] == ref.hash
    assert rec["tx"] == transaction_summary(tx)
    assert rec["tx"]["payer"] == "622202******7890" and rec["tx"]["payee_name"] == "***明"
    assert "6222021234567890" not in json.dumps(rec, ensure_ascii=False)
    assert rec["time"].endswith("+08:00")
    assert (rec["user"], rec["ip"], rec["device"], rec["client_type"], rec["os_version"]) == (
        "c1",
        "1.2.3.4",
        "dev",
        "ios",
        "17.2",
    )


def test_sm2_signed_checkpoints() -> None:
    key = sm2.generate_private_key()
    log = AuditLog(MemoryStore(), Sm2AuditSigner(key), checkpoint_every=3)
    fill(log, 7)
    assert log.check(Sm2AuditVerifier(key.public_key())).ok
    other = Sm2AuditVerifier(sm2.generate_private_key().public_key())
    report = log.check(other)
    assert not report.ok and report.first_bad == 4 and "checkpoint" in (report.error or "")
    assert not log.check(KEY).ok


def test_export_jsonl_round_trip_and_truncation() -> None:
    log = AuditLog(MemoryStore(), KEY, checkpoint_every=5)
    fill(log, 8)
    out = io.StringIO()
    assert log.export_jsonl(out) == 9
    lines = out.getvalue().split("\n")[:-1]
    assert len(lines) == 10 and json.loads(lines[-1])["kind"] == "head"
    assert check_jsonl(lines, KEY).ok
    cut = check_jsonl(lines[:-3] + lines[-1:], KEY)
    assert not cut.ok and cut.first_bad == 8 and "truncated" in (cut.error or "")
    no_head = check_jsonl(lines[:-1], KEY)
    assert not no_head.ok and "signed head (which seals the end of the log) is missing" in (
        no_head.error or ""
    )
    assert check_jsonl(lines, KEY, min_seq=9).ok
    assert not check_jsonl(lines, KEY, min_seq=10).ok
    assert not check_jsonl(lines, KEY, log="other").ok


def test_checkpoint_on_demand() -> None:
    log = AuditLog(MemoryStore(), KEY)
    fill(log, 2)
    ref = log.checkpoint()
    assert ref.seq == 3
    assert log.checkpoint().seq == 3  # already ends with one
    assert [r["kind"] for r in log.records()][-1] == "checkpoint"


def sqlite_log(tmp_path: Path, n: int = 6) -> tuple[AuditLog, Path]:
    db = tmp_path / "audit.db"
    log = AuditLog(SQLiteStore(str(db)), KEY, checkpoint_every=3)
    fill(log, n)
    return log, db


def tamper(db: Path, sql: str, *args: object) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(sql, args)


def test_sqlite_modification_is_named(tmp_path: Path) -> None:
    log, db = sqlite_log(tmp_path)
    tamper(db, "UPDATE logs SET data = CAST(replace(data, 'u1', 'u9') AS BLOB) WHERE seq = 2")
    report = log.check()
    assert not report.ok and report.first_bad == 2 and "altered" in (report.error or "")
    assert log.check().first_bad == 2


def test_sqlite_deletion_and_truncation(tmp_path: Path) -> None:
    log, db = sqlite_log(tmp_path)
    tamper(db, "DELETE FROM logs WHERE seq = 3")
    r = log.check()
    assert not r.ok and r.first_bad == 3 and "missing" in (r.error or "")

    log2, db2 = sqlite_log(tmp_path / "b" if (tmp_path / "b").mkdir() is None else tmp_path)
    last = max(rec.seq for rec in log2.store.read_log("audit:audit"))
    tamper(db2, "DELETE FROM logs WHERE seq = ?", last)
    r = log2.check()
    assert not r.ok and r.first_bad == last and "truncated" in (r.error or "")
    with pytest.raises(AuditIntegrityError, match="truncated"):
        log2.record("login", user="x")  # fail closed: no appends to a broken log


def test_head_deleted_is_detected(tmp_path: Path) -> None:
    log, db = sqlite_log(tmp_path)
    tamper(db, "DELETE FROM kv WHERE key = 'audit:audit:head'")
    assert not log.check().ok
    with pytest.raises(AuditIntegrityError, match="no signed head"):
        log.record("login")


def test_records_after_a_rolled_back_head_are_not_adopted() -> None:
    """The head rolled back to an earlier signed head leaves records after it that no
    signed intent names: the writer refuses them (crash recovery of a writer's own
    records is in test_audit_attacks.py)."""
    store = MemoryStore()
    log = AuditLog(store, KEY)
    fill(log, 3)
    head = store.get("audit:audit:head")
    fill(log, 1)  # record 4, then the head moves on
    store.compare_and_set("audit:audit:head", store.get("audit:audit:head"), head)
    report = log.check()
    assert not report.ok and report.first_bad == 4 and "not covered" in (report.error or "")
    with pytest.raises(AuditIntegrityError, match="not written by this log's writer"):
        log.record("login", user="next")
    assert [r["user"] for r in log.records()][-1] == "u0"


def test_wrong_key_refuses_appends() -> None:
    store = MemoryStore()
    fill(AuditLog(store, KEY), 2)
    with pytest.raises(AuditIntegrityError, match=r"does not verify with this writer.s key"):
        AuditLog(store, HmacSm3Key(b"x" * 32)).record("login")


def test_concurrent_writers_form_one_chain(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    logs = [AuditLog(SQLiteStore(str(db)), KEY, checkpoint_every=7) for _ in range(4)]

    def write(log: AuditLog) -> None:
        for i in range(10):
            log.record("login", user=f"w{i}")

    threads = [threading.Thread(target=write, args=(lg,)) for lg in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = logs[0].check()
    assert report.ok, report.error
    assert sum(r["kind"] == "event" for r in logs[0].records()) == 40


def test_bad_inputs() -> None:
    with pytest.raises(ConfigurationError):
        HmacSm3Key(b"short")
    with pytest.raises(ConfigurationError):
        AuditLog(MemoryStore(), KEY, checkpoint_every=0)
    with pytest.raises(AuditError):
        AuditEvent("")
    with pytest.raises(AuditError):
        AuditEvent("x", details={"a": 1})  # type: ignore[dict-item]
    assert "audit-test" not in repr(KEY)


def test_verify_raises_with_the_report_and_check_reports() -> None:
    log = AuditLog(MemoryStore(), KEY)
    fill(log, 3)
    log.verify()  # a good log: returns None
    report = log.check()
    assert report.ok and report.first_bad is None
    other = HmacSm3Key(b"another-key-0123456789abcdefghij")
    with pytest.raises(AuditIntegrityError) as info:
        log.verify(other)
    assert info.value.report == log.check(other)
    out = io.StringIO()
    log.export_jsonl(out)
    lines = out.getvalue().split("\n")[:-1]
    verify_jsonl(lines, KEY)
    with pytest.raises(AuditIntegrityError, match="record 2") as info2:
        verify_jsonl([lines[0], *lines[2:]], KEY)
    assert info2.value.first_bad == 2


def test_bad_head_on_a_one_record_log_names_the_head_not_a_record() -> None:
    """A forged head must not be reported as 'first bad record 2' of a 1-record log."""
    log = AuditLog(MemoryStore(), KEY)
    log.record("login", user="alice")
    report = log.check(HmacSm3Key(b"another-key-0123456789abcdefghij"))
    assert not report.ok and report.first_bad is None
    assert report.error is not None and report.error.startswith("the signed head")
    assert "record 2" not in report.error


def test_sm2_audit_signer_takes_any_signing_key() -> None:
    class ForeignKey:  # stands in for a token or HSM key: no scalar, only sign_with
        def __init__(self) -> None:
            self._inner = sm2.generate_private_key()
            self.calls = 0

        def public_key(self) -> sm2.SM2PublicKey:
            return self._inner.public_key()

        def sign_with(self, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
            self.calls += 1
            return self._inner.sign_with(algorithm, data)

    key = ForeignKey()
    log = AuditLog(MemoryStore(), Sm2AuditSigner(key), checkpoint_every=2)
    fill(log, 3)
    assert key.calls >= 5  # checkpoints and every head re-signing went through sign_with
    log.verify(Sm2AuditVerifier(key.public_key()))
    with pytest.raises(ConfigurationError, match="SM2"):
        Sm2AuditSigner(rsa.generate_private_key())
