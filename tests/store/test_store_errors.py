"""Unreachable or busy backends fail closed with a typed error; URLs are parsed strictly."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

from ebank_auth.errors import ConfigurationError, StoreUnavailable
from ebank_auth.store import MemoryStore, SQLiteStore, open_store
from plugins.store_backends import FakeClock


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_redis_unreachable_raises_store_unavailable() -> None:
    pytest.importorskip("redis")
    store = open_store(f"redis://127.0.0.1:{_closed_port()}/0")
    for call in (
        lambda: store.incr_bounded("k", 3, 10),
        lambda: store.get("k"),
        lambda: store.consume("k"),
        lambda: store.put_if_absent("k", b"v"),
        lambda: store.compare_and_set("k", None, b"v"),
        lambda: store.append("log", b"x"),
        lambda: list(store.read_log("log")),
        lambda: store.get_counter("k"),
    ):
        with pytest.raises(StoreUnavailable):
            call()
    store.close()


def test_redis_password_not_in_error(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    store = open_store(f"redis://:hunter2secret@127.0.0.1:{_closed_port()}/0")
    with pytest.raises(StoreUnavailable) as info:
        store.get("k")
    assert "hunter2secret" not in str(info.value)
    assert "hunter2secret" not in repr(store)


def test_redis_server_stopping_mid_use_fails_closed(redis_url: str, tmp_path: Path) -> None:
    """A second, private server is killed while a store uses it."""
    from plugins.redis_server import _binary, start_redis_server

    binary = _binary()
    assert binary is not None
    proc, port = start_redis_server(tmp_path, binary)
    try:
        store = open_store(f"redis://127.0.0.1:{port}/0")
        assert store.incr_bounded("k", 3, 10).allowed
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    with pytest.raises(StoreUnavailable):
        store.incr_bounded("k", 3, 10)
    store.close()


def test_sqlite_bad_path_raises_store_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable):
        SQLiteStore(tmp_path / "no" / "such" / "dir" / "x.db")


def test_sqlite_busy_beyond_timeout_fails_closed_and_keeps_state(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    store = SQLiteStore(path, clock=FakeClock(), busy_timeout=0.05)
    assert store.incr_bounded("k", 5).value == 1
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # hold the write lock
    try:
        with pytest.raises(StoreUnavailable):
            store.incr_bounded("k", 5)
        with pytest.raises(StoreUnavailable):
            store.consume("k")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.get_counter("k") == 1  # nothing half-applied
    assert store.incr_bounded("k", 5).value == 2
    store.close()


def test_sqlite_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    store = SQLiteStore(path)
    store.incr_bounded("k", 9, ttl=3600)
    store.put_if_absent("v", b"x", ttl=3600)
    store.append("log", b"a")
    store.close()
    with pytest.raises(StoreUnavailable):
        store.get("v")  # a closed store refuses instead of silently reopening
    again = SQLiteStore(path)
    assert again.get_counter("k") == 1
    assert again.get("v") == b"x"
    assert [r.data for r in again.read_log("log")] == [b"a"]
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    again.close()


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [({}, ":memory:"), ({"synchronous": "sometimes"}, "x.db"), ({"busy_timeout": 0}, "x.db")],
)
def test_sqlite_rejects_bad_settings(tmp_path: Path, kwargs: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigurationError):
        SQLiteStore(path if path == ":memory:" else tmp_path / path, **kwargs)  # type: ignore[arg-type]


def test_open_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    absolute = open_store(f"sqlite://{tmp_path}/abs.db?synchronous=normal")
    assert isinstance(absolute, SQLiteStore)
    assert absolute.path == str(tmp_path / "abs.db")
    assert absolute.synchronous == "NORMAL"
    absolute.close()
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite://rel.db")
    assert isinstance(relative, SQLiteStore)
    assert relative.path == str(tmp_path / "rel.db")
    relative.close()
    clock = FakeClock()
    assert open_store("memory://", clock=clock).clock is clock


def test_open_store_redis_prefix(redis_url: str) -> None:
    from ebank_auth.store.redis import RedisStore

    store = open_store(f"{redis_url}?prefix=abc:")
    assert isinstance(store, RedisStore)
    assert store.prefix == "abc:"
    store.close()


@pytest.mark.parametrize(
    "url",
    [
        "",
        "nothing",
        "ftp://x",
        "sqlite://",
        "sqlite:///x.db?bogus=1",
        "sqlite:///x.db?busy_timeout=soon",
    ],
)
def test_open_store_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_store(url)


def test_sqlite_closes_connections_of_finished_threads(tmp_path: Path) -> None:
    import threading

    store = SQLiteStore(tmp_path / "t.db")
    for i in range(20):
        t = threading.Thread(target=store.put_if_absent, args=(f"k{i}", b"v"))
        t.start()
        t.join()
    store.get("k0")  # main thread's connection exists
    assert len(store._all) <= 3  # not one per finished thread
    assert all(store.get(f"k{i}") == b"v" for i in range(20))
    store.close()
