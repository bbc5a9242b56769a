"""Issue 11, items 1-4: attacks on the audit log by someone with write access to the
database but without the signing key, on real SQLite files and a real Redis.

Each test says in its docstring which attack it encodes; each failed before the fix
that follows it in the history of this file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from ebank_auth.audit import AuditEvent, AuditLog, HmacSm3Key, canonical_json, parse_record
from ebank_auth.audit.log import audit_store_keys
from ebank_auth.audit.records import record_hash
from ebank_auth.cli import cli
from ebank_auth.errors import AuditIntegrityError
from ebank_auth.store import MemoryStore, SQLiteStore, Store
from plugins.store_backends import StoreFactory

RAW_KEY = b"audit-attack-key-0123456789abcd!"
KEY = HmacSm3Key(RAW_KEY)
LOG_KEY, HEAD_KEY = audit_store_keys("audit")
ENV = {"EBANK_AUTH_AUDIT_HMAC_KEY": RAW_KEY.hex()}


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args), env=ENV)
    return r.exit_code, r.stdout, r.stderr


def fill(log: AuditLog, n: int, user: str = "u") -> None:
    for i in range(n):
        log.record("login", user=f"{user}{i}", ip="10.0.0.1", outcome="allow")


def forged_event(seq: int, prev: str, user: str = "mallory") -> bytes:
    """A correctly chained event record, built without any key."""
    obj: dict[str, Any] = {
        "v": 1,
        "kind": "event",
        "seq": seq,
        "prev": prev,
        "time": "2026-01-01T00:00:00.000+08:00",
        "event": "transfer",
        "user": user,
        "ip": "",
        "device": "",
        "client_type": "",
        "os_version": "",
        "outcome": "allow",
        "rules": [],
        "tx": None,
        "details": {},
    }
    obj["hash"] = record_hash(obj)
    return canonical_json(obj)


def sql(db: Path, statement: str, *args: object) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(statement, args)
    conn.close()


# ---------------------------------------------------------------- item 1: head hash


def rechain_sqlite(db: Path, from_seq: int, user: str) -> None:
    """The attacker's tool: rewrite every event from ``from_seq`` on (user -> ``user``),
    recompute ``prev``/``hash`` down the chain and set the head's ``hash`` (its
    signature untouched)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT seq, data FROM logs WHERE log = ? ORDER BY seq", (LOG_KEY,)
        ).fetchall()
        prev = parse_record(bytes(rows[from_seq - 2][1]))["hash"] if from_seq > 1 else None
        for seq, data in rows[from_seq - 1 :]:
            obj = parse_record(bytes(data))
            if prev is not None:
                obj["prev"] = prev
            if obj["kind"] == "event":
                obj["user"] = user
            obj["hash"] = record_hash(obj)
            prev = obj["hash"]
            conn.execute(
                "UPDATE logs SET data = ? WHERE log = ? AND seq = ?",
                (canonical_json(obj), LOG_KEY, seq),
            )
        head = json.loads(
            conn.execute("SELECT value FROM kv WHERE key = ?", (HEAD_KEY,)).fetchone()[0]
        )
        head["hash"] = prev
        conn.execute("UPDATE kv SET value = ? WHERE key = ?", (canonical_json(head), HEAD_KEY))
    conn.close()


def test_rechained_tail_with_patched_head_hash_is_detected(tmp_path: Path) -> None:
    """Attack (item 1): with the default checkpoint interval the records after the
    last checkpoint are sealed only by the head.  The attacker rewrites all of them,
    recomputes the chain and puts the new last hash into the head, keeping the head's
    signature.  If the signature does not cover ``hash``, verify says ok."""
    db = tmp_path / "audit.db"
    log = AuditLog(SQLiteStore(db), KEY)  # checkpoint_every=100: no checkpoint yet
    fill(log, 5)
    assert log.check().ok
    rechain_sqlite(db, 1, "mallory")
    report = log.check()
    assert not report.ok, "rewritten log verified"
    assert report.error is not None and "signed head" in report.error
    code, out, _ = run("audit", "verify", str(db))
    assert code == 1, out
    with pytest.raises(AuditIntegrityError):
        log.record("login", user="next")  # the writer does not adopt the rewrite either


def test_rechain_after_the_last_checkpoint_is_detected(tmp_path: Path) -> None:
    """Attack (item 1), the issue's form: the records after the last signed
    checkpoint are rewritten and re-chained, the head's hash set."""
    db = tmp_path / "audit.db"
    log = AuditLog(SQLiteStore(db), KEY, checkpoint_every=3)
    fill(log, 6)
    fill(log, 2, user="v")
    kinds = [r["kind"] for r in log.records()]
    last_cp = max(i for i, k in enumerate(kinds, 1) if k == "checkpoint")
    assert last_cp < len(kinds)
    rechain_sqlite(db, last_cp + 1, "mallory")
    assert not log.check().ok


# ---------------------------------------------------------------- item 2: adoption


def append_forged(store: Store, count: int, user: str = "mallory") -> None:
    last = parse_record(list(store.read_log(LOG_KEY))[-1].data)
    prev, seq = last["hash"], last["seq"]
    for _ in range(count):
        seq += 1
        raw = forged_event(seq, prev, user)
        assert store.append(LOG_KEY, raw) == seq
        prev = parse_record(raw)["hash"]


@pytest.mark.parametrize("store_backend", ["sqlite", "redis"], indirect=True)
def test_writer_never_adopts_records_appended_without_the_key(store_backend: StoreFactory) -> None:
    """Attack (item 2): the attacker appends correctly chained records after the
    head (as a writer that crashed before re-signing would leave them).  The next
    legitimate write must not adopt and re-sign them: it refuses, and verify keeps
    reporting them."""
    log = AuditLog(store_backend(), KEY)
    fill(log, 3)
    append_forged(store_backend(), 2)  # a second connection: the attacker
    with pytest.raises(AuditIntegrityError, match="not written by"):
        log.record("login", user="legit")
    report = log.check()
    assert not report.ok and report.first_bad == 4
    assert [r["user"] for r in log.records()][-1] == "mallory"  # nothing appended


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 9), st.integers(1, 4))
def test_forged_records_are_never_adopted(legit: int, forged: int, every: int) -> None:
    """Property (item 2): whatever the log length, checkpoint interval and number of
    forged records, no write adopts them and the log never verifies again."""
    store = MemoryStore()
    log = AuditLog(store, KEY, checkpoint_every=every)
    fill(log, legit)
    n = len(list(store.read_log(LOG_KEY)))
    append_forged(store, forged)
    with pytest.raises(AuditIntegrityError):
        log.record("login", user="legit")
    with pytest.raises(AuditIntegrityError):
        log.checkpoint()
    report = log.check()
    assert not report.ok and report.first_bad == n + 1
    assert len(list(store.read_log(LOG_KEY))) == n + forged


def leave_legacy_crash(store: Store, log: AuditLog, appended: int) -> None:
    """What a writer of the earlier version (signed intent, then one append per record,
    then the head) left when it died after ``appended`` of its records: its signed
    intent naming an event and a checkpoint, those records, and the old head."""
    from ebank_auth.audit.log import _Request
    from ebank_auth.audit.records import make_intent

    tail = log._tail()
    plan = log._plan(tail, [_Request([AuditEvent("login", user="crashed")], False)])
    hashes = [parse_record(raw)["hash"] for raw in plan.records]
    intent = make_intent("audit", tail.seq, tail.hash, hashes, "2026-01-01T00:00:00.000+08:00", KEY)
    assert store.put_if_absent("audit:audit:intent", intent)
    for raw in plan.records[:appended]:
        store.append(LOG_KEY, raw)


@pytest.mark.parametrize("appended", [0, 1, 2])
def test_an_older_writers_own_records_are_recovered_after_a_crash(appended: int) -> None:
    """A writer of the earlier version killed after appending some or all of its
    records (before re-signing the head) leaves records that the next writer recovers:
    they are its own (named by its signed intent), so the log verifies again and the
    recovery is noted; the intent is dropped once they are sealed."""
    store = MemoryStore()
    log = AuditLog(store, KEY, checkpoint_every=2)
    fill(log, 2)  # events 1, 2, checkpoint 3
    leave_legacy_crash(store, log, appended)
    log.record("login", user="next")
    report = log.check()
    assert report.ok, report.error
    events = [r.get("event") for r in log.records()]
    assert ("audit_head_recovered" in events) == (appended > 0)
    assert events.count("login") == 3 + (appended > 0)
    assert (store.get("audit:audit:intent") is None) == (appended > 0)


class CrashingStore(MemoryStore):
    """A memory store whose writer "dies" (KeyboardInterrupt) in its next batch
    append: before the step, or after it (the batch is durable, the writer never
    learns it)."""

    def __init__(self) -> None:
        super().__init__()
        self.crash: str | None = None

    def append_many(self, log: str, items: Any, **kwargs: Any) -> int:
        crash, self.crash = self.crash, None
        if crash == "before":
            raise KeyboardInterrupt("crash")
        first = super().append_many(log, items, **kwargs)
        if crash == "after":
            raise KeyboardInterrupt("crash")
        return first


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_writer_killed_in_its_batch_leaves_all_or_nothing(when: str) -> None:
    """This version writes records and head in one step: a writer killed around it
    leaves the whole batch (sealed) or none of it, never records after the head, and
    the next write continues the chain from what is durable."""
    store = CrashingStore()
    log = AuditLog(store, KEY, checkpoint_every=2)
    fill(log, 2)
    before = len(list(store.read_log(LOG_KEY)))
    store.crash = when
    with pytest.raises(KeyboardInterrupt):
        log.record("login", user="crashed")
    assert log.check().ok
    left = len(list(store.read_log(LOG_KEY))) - before
    assert left == (2 if when == "after" else 0)
    log.record("login", user="next")
    report = log.check()
    assert report.ok, report.error
    events = [r.get("event") for r in log.records()]
    assert "audit_head_recovered" not in events


# ---------------------------------------------------------------- item 3: TEXT values


def test_record_edited_to_text_is_an_integrity_error(tmp_path: Path) -> None:
    """Attack (item 3): a record rewritten as TEXT in SQLite made every read path
    raise TypeError (and the CLI print a traceback)."""
    db = tmp_path / "audit.db"
    log = AuditLog(SQLiteStore(db), KEY)
    fill(log, 4)
    sql(db, "UPDATE logs SET data = CAST(data AS TEXT) WHERE seq = 2")
    report = log.check()
    assert not report.ok and report.first_bad == 2 and "unreadable" in (report.error or "")
    with pytest.raises(AuditIntegrityError) as err:
        log.verify()
    assert err.value.first_bad == 2
    code, out, errout = run("audit", "verify", str(db))
    assert code == 1 and "record 2:" in out, (out, errout)
    assert "Traceback" not in out + errout and "internal error" not in out + errout
    code, _, errout = run("audit", "export", str(db), "--out", str(tmp_path / "x.jsonl"))
    assert code == 1 and "internal error" not in errout, errout
    sql(db, "UPDATE logs SET data = CAST(data AS TEXT) WHERE seq = 4")  # the tail
    with pytest.raises(AuditIntegrityError, match="edited outside ebank-auth"):
        log.record("login")  # the writer reads the tail


def test_head_edited_to_text_is_an_integrity_error(tmp_path: Path) -> None:
    """Attack (item 3): the signed head rewritten as TEXT."""
    db = tmp_path / "audit.db"
    log = AuditLog(SQLiteStore(db), KEY)
    fill(log, 2)
    sql(db, "UPDATE kv SET value = CAST(value AS TEXT) WHERE key = ?", HEAD_KEY)
    report = log.check()
    assert not report.ok and "head" in (report.error or "")
    with pytest.raises(AuditIntegrityError):
        log.record("login")
    code, out, errout = run("audit", "verify", str(db))
    assert code == 1 and "internal error" not in out + errout, (out, errout)


@pytest.mark.parametrize("store_backend", ["redis"], indirect=True)
def test_redis_log_of_the_wrong_type_is_an_integrity_error(store_backend: StoreFactory) -> None:
    """Attack (item 3) on Redis: the log list replaced by a string (or the head by a
    string) is reported as a broken log, exit 1, not "Redis unreachable" (exit 3)."""
    store = store_backend()
    log = AuditLog(store, KEY)
    fill(log, 2)
    client = store._client  # type: ignore[attr-defined]
    client.delete(store_backend.prefix + "l:" + LOG_KEY)
    client.set(store_backend.prefix + "l:" + LOG_KEY, b"x")
    assert not log.check().ok
    code, out, errout = run("audit", "verify", store_backend.url)
    assert code == 1, (out, errout)
    client.delete(store_backend.prefix + "v:" + HEAD_KEY)
    client.set(store_backend.prefix + "v:" + HEAD_KEY, b"x")
    with pytest.raises(AuditIntegrityError):
        log.record("login")


# ---------------------------------------------------------------- item 4: missing log, anchor


def test_verify_of_a_missing_sqlite_store_refuses_and_creates_nothing(tmp_path: Path) -> None:
    """Attack/mistake (item 4): a typo in the store URL verified as "ok: 0 records",
    exit 0, and created the database."""
    typo = tmp_path / "auth-typo.db"
    code, out, _ = run("audit", "verify", f"sqlite://{typo}")
    assert code != 0 and "ok" not in out, out
    assert not typo.exists()
    assert not list(tmp_path.iterdir())
    code, _, _ = run("audit", "export", f"sqlite://{typo}", "--out", str(tmp_path / "o.jsonl"))
    assert code != 0 and not typo.exists()


@pytest.mark.parametrize("store_backend", ["sqlite", "redis"], indirect=True)
def test_verify_of_a_missing_log_name_refuses(store_backend: StoreFactory) -> None:
    """Mistake (item 4): ``--log`` misspelt, or a log erased with its head."""
    fill(AuditLog(store_backend(), KEY), 2)
    code, out, errout = run("audit", "verify", store_backend.url, "--log", "audti")
    assert code == 1, out
    assert "not found" in out + errout


def copy_db(src: Path, dst: Path) -> None:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()


def test_rollback_to_an_older_signed_state_is_caught_by_the_anchor(tmp_path: Path) -> None:
    """Attack (item 4): the attacker saved the database (records and signed head)
    and later restores it, erasing everything written since.  Every signature holds,
    so only an anchor kept elsewhere catches it; without one verify says so."""
    db = tmp_path / "audit.db"
    log = AuditLog(SQLiteStore(db), KEY)
    fill(log, 3)
    saved = tmp_path / "saved.db"
    copy_db(db, saved)
    fill(log, 2, user="later")
    anchor = tmp_path / "anchor.json"
    code, _, errout = run("audit", "anchor", str(db), "--out", str(anchor))
    assert code == 0, errout
    code, out, _ = run("audit", "verify", str(db), "--anchor", str(anchor))
    assert code == 0 and "anchored" in out and "not anchored" not in out, out
    log.store.close()
    copy_db(saved, db)  # the roll-back
    code, out, _ = run("audit", "verify", str(db))
    assert code == 0 and "roll-back" in out, out  # undetectable, and said so
    code, out, _ = run("audit", "verify", str(db), "--anchor", str(anchor))
    assert code == 1 and "anchor" in out, out
    log2 = AuditLog(SQLiteStore(db), KEY)
    report = log2.check(anchor=anchor.read_bytes())
    assert not report.ok and report.first_bad == 4


def test_anchor_detects_a_replaced_history(tmp_path: Path) -> None:
    """A log whose record at the anchored position differs from the anchored hash
    (history replaced, e.g. by a key holder restoring another branch) is refused."""
    db = tmp_path / "audit.db"
    log = AuditLog(SQLiteStore(db), KEY)
    fill(log, 2)
    anchor = log.anchor()
    other = AuditLog(MemoryStore(), KEY)
    fill(other, 4, user="x")
    assert other.check().ok
    report = other.check(anchor=anchor)
    assert not report.ok and report.first_bad == 2
    assert log.check(anchor=anchor).ok
    forged = json.loads(anchor)
    forged["seq"] = 1
    report = log.check(anchor=canonical_json(forged))
    assert not report.ok and "anchor" in (report.error or "")
