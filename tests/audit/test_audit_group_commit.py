"""Group commit (issue 16 item 3): many concurrent writers, each acknowledged only once
its record is durable, on real SQLite files, a real PostgreSQL cluster and a real
redis-server; threads and processes; a writer process killed with SIGKILL mid-batch;
a commit that fails (a trigger in the real database) acknowledges nothing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.audit import AuditLog, AuditRecordRef, HmacSm3Key
from ebank_auth.errors import ConfigurationError, StoreUnavailable
from ebank_auth.store import SQLiteStore, Store, open_store
from plugins.store_backends import StoreFactory

KEY = HmacSm3Key(b"group-commit-test-key-0123456789")  # the same as audit_worker.py
WORKER = Path(__file__).with_name("audit_worker.py")


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store several processes can share: a SQLite file, a PostgreSQL schema or a
    Redis key prefix."""
    kind = str(request.param)
    if kind == "sqlite":
        return f"sqlite://{tmp_path / 'audit.db'}"
    tag = f"g{uuid.uuid4().hex[:12]}"
    if kind == "postgres":
        return f"{request.getfixturevalue('postgres_url')}?schema={tag}"
    return f"{request.getfixturevalue('redis_url')}?prefix={tag}:"


def by_id(log: AuditLog) -> dict[str, list[int]]:
    """details.id -> the sequence numbers of the records carrying it."""
    found: dict[str, list[int]] = {}
    for rec in log.records():
        ident = rec.get("details", {}).get("id") if rec["kind"] == "event" else None
        if ident is not None:
            found.setdefault(ident, []).append(rec["seq"])
    return found


def assert_acknowledged_exactly_once(log: AuditLog, acked: dict[str, int]) -> dict[str, list[int]]:
    """Every acknowledged record is in the log once, where its writer was told; the chain
    and its checkpoints verify; sequence numbers have no gap."""
    report = log.check()
    assert report.ok, report.error
    seqs = [seq for seq, _ in log.raw_records()]
    assert seqs == list(range(1, len(seqs) + 1)) and report.last_seq == len(seqs)
    found = by_id(log)
    for ident, seq in acked.items():
        assert found.get(ident) == [seq], (ident, seq, found.get(ident))
    assert all(len(where) == 1 for where in found.values())
    return found


def spawn(url: str, threads: int, events: int, every: int = 100) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, str(threads), str(events), str(every)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def acks(lines: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in lines:
        if not line.endswith("\n"):
            continue  # cut short by the kill
        doc = json.loads(line)
        assert "error" not in doc, doc
        assert doc["id"] not in out
        out[doc["id"]] = doc["seq"]
    return out


# --------------------------------------------------------------------------- threads


def test_concurrent_threads_each_get_their_own_durable_record(store_backend: StoreFactory) -> None:
    """16 threads of one process share batches; checkpoints requested in between."""
    log = AuditLog(store_backend(), KEY, checkpoint_every=9)
    acked: dict[str, int] = {}
    checkpoints: list[AuditRecordRef] = []
    guard = threading.Lock()
    start = threading.Barrier(17)

    def writer(t: int) -> None:
        start.wait()
        for i in range(25):
            ref = log.record("login", user=f"u{t}", details={"id": f"{t}-{i}"})
            with guard:
                acked[f"{t}-{i}"] = ref.seq

    def checkpointer() -> None:
        start.wait()
        for _ in range(5):
            checkpoints.append(log.checkpoint())
            time.sleep(0.002)

    pool = [threading.Thread(target=writer, args=(t,)) for t in range(16)]
    pool.append(threading.Thread(target=checkpointer))
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert len(acked) == 400 and len(set(acked.values())) == 400
    assert_acknowledged_exactly_once(log, acked)
    records = list(log.records())
    for ref in checkpoints:  # each on-demand checkpoint names a checkpoint record
        assert records[ref.seq - 1]["kind"] == "checkpoint"
        assert records[ref.seq - 1]["hash"] == ref.hash
    kinds = [r["kind"] for r in records]
    assert kinds.count("event") == 400 and kinds.count("checkpoint") >= 400 // 9


def test_group_commit_batches_writers_into_few_commits(tmp_path: Path) -> None:
    """With a leader that waits for a full batch (``max_wait``), 8 writers share one
    step: their records carry the one time of the batch."""
    store = SQLiteStore(tmp_path / "a.db")
    log = AuditLog(store, KEY, max_batch=8, max_wait=5.0)
    start = threading.Barrier(8)
    refs: list[AuditRecordRef] = []

    def writer(t: int) -> None:
        start.wait()
        refs.append(log.record("login", user=f"u{t}"))

    pool = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert sorted(r.seq for r in refs) == list(range(1, 9))
    times = {rec["time"] for rec in log.records()}
    assert len(times) == 1  # one batch: one time, one head
    assert log.check().ok


def test_bad_options_are_refused() -> None:
    store = SQLiteStore.__new__(SQLiteStore)  # never used: the options fail first
    for kwargs in ({"max_batch": 0}, {"max_batch": 5000}, {"max_wait": 11.0}, {"lock_wait": 0}):
        with pytest.raises(ConfigurationError):
            AuditLog(store, KEY, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- processes


def test_processes_form_one_chain(shared_url: str) -> None:
    """3 processes x 4 threads on one SQLite file / PostgreSQL schema / Redis prefix:
    their batches serialise on the store's condition, one chain, nothing lost."""
    AuditLog(open_store(shared_url), KEY).record("start")  # creates the tables first
    procs = [spawn(shared_url, threads=4, events=20, every=11) for _ in range(3)]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outs = [proc.communicate(timeout=240)[0] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    acked: dict[str, int] = {}
    for out in outs:
        acked.update(acks(out.splitlines(keepends=True)))
    assert len(acked) == 3 * 4 * 20
    log = AuditLog(open_store(shared_url), KEY, checkpoint_every=11)
    found = assert_acknowledged_exactly_once(log, acked)
    assert len(found) == len(acked)


def test_a_writer_killed_mid_batch_loses_only_unacknowledged_records(shared_url: str) -> None:
    """SIGKILL a process whose 8 threads write as fast as they can: every record it
    acknowledged is durable, in a chain that verifies, and the next writer goes on."""
    AuditLog(open_store(shared_url), KEY).record("start")
    for _round in range(2):
        proc = spawn(shared_url, threads=8, events=0)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        lines = [proc.stdout.readline() for _ in range(150)]
        os.kill(proc.pid, signal.SIGKILL)
        lines += proc.stdout.readlines()
        proc.wait(timeout=30)
        acked = acks(lines)
        assert len(acked) >= 150
        log = AuditLog(open_store(shared_url), KEY)
        assert_acknowledged_exactly_once(log, acked)
        after = log.record("after_kill")
        assert after.seq == log.check().last_seq and log.check().ok


# --------------------------------------------------------------------------- failing commits


def _poison_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON logs"
            ' WHEN instr(CAST(NEW.data AS TEXT), \'"user":"poison"\') > 0'
            " BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )


def _poison_postgres(url: str, schema: str) -> None:
    """A deferred constraint trigger: the failure comes at COMMIT itself."""
    import psycopg

    with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
        conn.execute(
            f"CREATE FUNCTION {schema}.poison() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN IF position('\"user\":\"poison\"' IN convert_from(NEW.data, 'UTF8')) > 0"
            " THEN RAISE EXCEPTION 'injected commit failure'; END IF; RETURN NULL; END $$"
        )
        conn.execute(
            f"CREATE CONSTRAINT TRIGGER poison AFTER INSERT ON {schema}.ebank_logs"
            f" DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {schema}.poison()"
        )


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_failing_commit_acknowledges_no_writer_of_the_batch(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """One batch of 6 writers; the database refuses the transaction (SQLite: a trigger
    aborts the insert; PostgreSQL: a deferred trigger fails the COMMIT).  All 6 get the
    store's error, none of their records is in the log, and the next batch continues
    the chain from the last durable record."""
    if kind == "sqlite":
        url = f"sqlite://{tmp_path / 'audit.db'}"
    else:
        schema = f"p{uuid.uuid4().hex[:12]}"
        url = f"{request.getfixturevalue('postgres_url')}?schema={schema}"
    store: Store = open_store(url)
    single = AuditLog(store, KEY, checkpoint_every=4)
    for i in range(3):
        single.record("login", user="before", details={"id": f"b{i}"})
    durable = single.check().last_seq
    log = AuditLog(store, KEY, max_batch=6, max_wait=5.0, checkpoint_every=4)
    if kind == "sqlite":
        _poison_sqlite(tmp_path / "audit.db")
    else:
        _poison_postgres(url, schema)
    start = threading.Barrier(6)
    outcomes: dict[int, Any] = {}

    def writer(t: int) -> None:
        start.wait()
        try:
            outcomes[t] = log.record("login", user="poison" if t == 3 else f"u{t}")
        except Exception as exc:
            outcomes[t] = exc

    pool = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert all(isinstance(o, StoreUnavailable) for o in outcomes.values()), outcomes
    assert len({id(o) for o in outcomes.values()}) == 6  # each writer its own error
    report = log.check()
    assert report.ok and report.last_seq == durable
    log.max_wait = 0.0
    ref = log.record("login", user="next", details={"id": "n"})
    assert ref.seq == durable + 1
    assert_acknowledged_exactly_once(log, {"n": ref.seq})


# --------------------------------------------------------------------------- property

_rounds = st.lists(
    st.tuples(
        st.integers(1, 6),  # writers in the round
        st.integers(0, 2),  # of which request a checkpoint
        st.booleans(),  # one of them is refused by the database
    ),
    min_size=1,
    max_size=5,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rounds=_rounds, every=st.integers(1, 5))
def test_acknowledged_if_and_only_if_durable(
    tmp_path_factory: pytest.TempPathFactory, rounds: list[tuple[int, int, bool]], every: int
) -> None:
    """Property: whatever the mix of concurrent writers, checkpoint requests and batches
    the database refuses, a writer is acknowledged exactly when its record is in the
    log (once, where it was told), a refused writer's record never is, and the chain
    with its checkpoints verifies after every round."""
    path = tmp_path_factory.mktemp("prop") / "audit.db"
    log = AuditLog(SQLiteStore(path), KEY, checkpoint_every=every, max_batch=4, max_wait=0.01)
    _poison_sqlite_after_open(path, log)
    acked: dict[str, int] = {}
    refused: set[str] = set()
    lock = threading.Lock()
    for r, (writers, checkpoints, poison) in enumerate(rounds):
        start = threading.Barrier(writers + checkpoints)

        def writer(t: int, r: int = r, poison: bool = poison, start: Any = start) -> None:
            ident = f"{r}-{t}"
            user = "poison" if poison and t == 0 else "u"
            start.wait()
            try:
                ref = log.record("login", user=user, details={"id": ident})
            except StoreUnavailable:
                with lock:
                    refused.add(ident)
                return
            assert user != "poison"
            with lock:
                acked[ident] = ref.seq

        def checkpointer(start: Any = start) -> None:
            start.wait()
            with contextlib.suppress(StoreUnavailable):  # shared the refused writer's batch
                log.checkpoint()

        pool = [threading.Thread(target=writer, args=(t,)) for t in range(writers)]
        pool += [threading.Thread(target=checkpointer) for _ in range(checkpoints)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        found = assert_acknowledged_exactly_once(log, acked)
        assert not refused & set(found)
        assert set(found) == set(acked)
        if poison:
            assert f"{r}-0" in refused


def _poison_sqlite_after_open(path: Path, log: AuditLog) -> None:
    log.record("start")  # the store has created its tables
    _poison_sqlite(path)
