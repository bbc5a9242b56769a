"""Issue 11 item 3: values edited into the database by hand (SQLite lets any column
hold any type; Redis keys can be replaced by another type) make every read path
raise errors.StoreIntegrityError -- never TypeError/ValueError, never a silent
wrong value, never "store unreachable"."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from ebank_auth.errors import StoreIntegrityError
from ebank_auth.store import SQLiteStore, Store
from plugins.store_backends import StoreFactory

READS: dict[str, Callable[[Store], object]] = {
    "get": lambda s: s.get("k"),
    "consume": lambda s: s.consume("k"),
    "put_if_absent": lambda s: s.put_if_absent("k", b"new"),
    "compare_and_set": lambda s: s.compare_and_set("k", b"v", b"new"),
    "get_and_incr": lambda s: s.get_and_incr("k", "c", 5),
}
COUNTER_READS: dict[str, Callable[[Store], object]] = {
    "get_counter": lambda s: s.get_counter("c"),
    "incr_bounded": lambda s: s.incr_bounded("c", 5),
}


def edit(db: Path, statement: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(statement)
    conn.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE kv SET value = CAST(value AS TEXT)",  # TypeError before
        "UPDATE kv SET value = 5",  # silently read as 5 zero bytes before
        "UPDATE kv SET expires_at = 'never'",  # TypeError / never expiring before
    ],
)
@pytest.mark.parametrize("read", sorted(READS))
def test_sqlite_value_of_the_wrong_type(tmp_path: Path, statement: str, read: str) -> None:
    """Attack: the value (or its expiry) of a key rewritten with another SQLite type."""
    db = tmp_path / "s.db"
    store = SQLiteStore(db)
    assert store.put_if_absent("k", b"v", ttl=3600)
    edit(db, statement)
    with pytest.raises(StoreIntegrityError, match="edited outside ebank-auth"):
        READS[read](store)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE counters SET value = 'many'",  # ValueError before
        "UPDATE counters SET value = 2.5",  # silently read as 2 before
        "UPDATE counters SET expires_at = 'never'",
    ],
)
@pytest.mark.parametrize("read", sorted(COUNTER_READS))
def test_sqlite_counter_of_the_wrong_type(tmp_path: Path, statement: str, read: str) -> None:
    """Attack: an attempt counter rewritten as text or a fraction."""
    db = tmp_path / "s.db"
    store = SQLiteStore(db)
    assert store.incr_bounded("c", 5, ttl=3600).allowed
    edit(db, statement)
    with pytest.raises(StoreIntegrityError):
        COUNTER_READS[read](store)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE logs SET data = CAST(data AS TEXT) WHERE seq = 2",
        "UPDATE logs SET data = 7 WHERE seq = 2",
        "UPDATE logs SET seq = 'two' WHERE seq = 2",
    ],
)
def test_sqlite_log_record_of_the_wrong_type(tmp_path: Path, statement: str) -> None:
    """Attack: a log record (or its sequence number) rewritten with another type."""
    db = tmp_path / "s.db"
    store = SQLiteStore(db)
    for i in range(3):
        store.append("log", b"r%d" % i)
    edit(db, statement)
    with pytest.raises(StoreIntegrityError):
        list(store.read_log("log"))
    with pytest.raises(StoreIntegrityError):
        if statement.startswith("UPDATE logs SET seq"):
            store.append("log", b"r3")  # MAX(seq) is the text
        else:
            list(store.read_log("log", 2))


@pytest.mark.parametrize("store_backend", ["redis"], indirect=True)
def test_redis_key_of_the_wrong_type(store_backend: StoreFactory) -> None:
    """Attack: a Redis key replaced by one of another type (or a non-numeric expiry)
    is reported as edited data, not as an unreachable server."""
    store = store_backend()
    client = store._client  # type: ignore[attr-defined]
    p = store_backend.prefix
    store.append("log", b"r")
    client.delete(p + "l:log")
    client.set(p + "l:log", b"x")
    with pytest.raises(StoreIntegrityError):
        list(store.read_log("log"))
    client.set(p + "v:k", b"x")
    for read in READS.values():
        with pytest.raises(StoreIntegrityError):
            read(store)
    client.delete(p + "v:k")
    client.hset(p + "v:k", mapping={"v": b"v", "e": b"never"})
    with pytest.raises(StoreIntegrityError):
        store.get("k")
