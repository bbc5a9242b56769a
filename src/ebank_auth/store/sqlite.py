"""SQLite store: the embedded default, shared safely by threads and processes.

The database runs in WAL mode; every primitive is one ``BEGIN IMMEDIATE``
transaction, which takes the database write lock up front, so two callers (threads
of this process or other processes on the same file) can never interleave a read
and a write of the same key.  Each thread gets its own connection; a connection
waits up to ``busy_timeout`` seconds for the lock before the call fails closed with
:class:`~ebank_auth.errors.StoreUnavailable`.

Time: expiry is decided with the process clock (``clock``), so every process sharing
the file must keep its clock synchronised.  The database remembers the latest time any
process wrote with (``meta.clock``); a write transaction whose clock is more than
``max_clock_skew`` seconds (default :data:`~ebank_auth.store.base.MAX_CLOCK_SKEW`)
behind it is refused with :class:`~ebank_auth.errors.StoreUnavailable`, so stepping a
clock back (NTP step, VM snapshot restore) cannot revive expired codes, cooldowns or
lockouts.

Tables::

    kv(key TEXT PRIMARY KEY, value BLOB, expires_at REAL NULL)
    counters(key TEXT PRIMARY KEY, value INTEGER, expires_at REAL NULL)
    logs(log TEXT, seq INTEGER, data BLOB, PRIMARY KEY (log, seq))
    meta(name TEXT PRIMARY KEY, value REAL)      -- 'clock': latest time written with
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ebank_auth.errors import ConfigurationError, StoreIntegrityError, StoreUnavailable
from ebank_auth.store.base import (
    MAX_CLOCK_SKEW,
    Clock,
    CounterResult,
    LogRecord,
    Store,
    batch_items,
    log_conflict,
    value_conflict,
)

__all__ = ["SQLiteStore"]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv ( key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL)",
    "CREATE TABLE IF NOT EXISTS counters ("
    " key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires_at REAL)",
    "CREATE TABLE IF NOT EXISTS logs ("
    " log TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (log, seq))",
    "CREATE TABLE IF NOT EXISTS meta ( name TEXT PRIMARY KEY, value REAL NOT NULL)",
)

_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")

_PAGE = 512


# Read-path type checks: SQLite lets anyone with the file store any type in any column,
# so every value read back is checked before it is used (a TEXT where a BLOB belongs
# would otherwise raise TypeError, an INTEGER would silently become zero bytes).
def _edited(what: str, value: object, want: str) -> StoreIntegrityError:
    return StoreIntegrityError(
        f"SQLite store: {what} holds {type(value).__name__} where {want} belongs (the database "
        "was edited outside ebank-auth): refused; restore it from a backup and investigate"
    )


def _blob(value: object, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise _edited(what, value, "bytes (BLOB)")
    return value


def _integer(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _edited(what, value, "an INTEGER")
    return value


def _expiry(value: object, what: str) -> float | None:
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        raise _edited(what, value, "an expiry time (REAL)")
    return None if value is None else float(value)


class SQLiteStore(Store):
    """Atomic store primitives in one SQLite file.

    ``path``: the database file (created with its tables if missing).
    ``busy_timeout``: seconds a call waits for another writer before failing closed.
    ``synchronous``: SQLite durability (``FULL`` default: a committed counter
    survives power loss; ``NORMAL`` is faster and still survives a crash of the
    application).
    ``max_clock_skew``: seconds this process's clock may be behind the latest time
    the database has seen before a write is refused (see the module docstring).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        clock: Clock | None = None,
        *,
        busy_timeout: float = 30.0,
        synchronous: str = "FULL",
        max_clock_skew: float = MAX_CLOCK_SKEW,
    ) -> None:
        super().__init__(clock)
        path_str = os.fspath(path)
        if path_str in ("", ":memory:") or path_str.startswith("file:"):
            raise ConfigurationError(
                "a SQLite store needs a database file path; use a memory store (memory:) for state "
                "that may be lost"
            )
        sync = synchronous.upper()
        if sync not in _SYNC_MODES:
            raise ConfigurationError(f"synchronous must be one of {', '.join(_SYNC_MODES)}")
        if busy_timeout <= 0:
            raise ConfigurationError("busy_timeout must be positive (seconds)")
        if isinstance(max_clock_skew, bool) or not 0 <= float(max_clock_skew) <= 60:
            raise ConfigurationError("max_clock_skew must be 0 to 60 seconds")
        self.max_clock_skew = float(max_clock_skew)
        self.path = str(Path(path_str).absolute())
        self.busy_timeout = float(busy_timeout)
        self.synchronous = sync
        self._local = threading.local()
        self._all: dict[threading.Thread, sqlite3.Connection] = {}  # each thread's connection
        self._all_lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False
        conn = self._conn()
        self._run(conn, self._create_schema, guard=False)

    # -- connections ------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
                check_same_thread=False,  # only so close() may close every thread's conn
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                mode = self._switch_to_wal(conn)
            if mode is None or str(mode[0]).lower() != "wal":
                conn.close()
                raise StoreUnavailable(
                    f"SQLite store at {self.path} cannot use WAL mode (got {mode!r}): "
                    "put the database on a local file system"
                )
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        except sqlite3.Error as exc:
            raise StoreUnavailable(
                f"cannot open SQLite store at {self.path}: {exc}; check the path and permissions"
            ) from exc
        me = threading.current_thread()
        with self._all_lock:
            # close connections of threads that have ended (thread-per-request servers);
            # threads not started by `threading` count as alive forever
            for thread in [t for t in self._all if not t.is_alive()]:
                try:
                    self._all.pop(thread).close()
                except sqlite3.Error:  # pragma: no cover
                    _log.debug("close failed", exc_info=True)
            self._all[me] = conn
        return conn

    def _switch_to_wal(self, conn: sqlite3.Connection) -> Any:
        """Switch a new database to WAL.  The switch needs an exclusive lock and SQLite
        answers SQLITE_BUSY at once (no busy handler) when several processes race to do
        it on a fresh file, so retry until ``busy_timeout``."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                return conn.execute("PRAGMA journal_mode = WAL").fetchone()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreUnavailable("the SQLite store was closed: open a new one")
        pid = os.getpid()
        if pid != self._pid:  # forked child: never reuse the parent's connections
            self._local = threading.local()
            with self._all_lock:
                self._all = {}
            self._pid = pid
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    def _run(
        self,
        conn: sqlite3.Connection,
        fn: Callable[[sqlite3.Connection], _T],
        *,
        guard: bool = True,
    ) -> _T:
        """Run ``fn`` inside one BEGIN IMMEDIATE transaction; roll back on any error.
        With ``guard`` the clock is checked against the database's first (see
        :meth:`_guard_clock`)."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreUnavailable(
                f"SQLite store at {self.path} is busy or unreachable ({exc}): refused"
            ) from exc
        try:
            if guard:
                self._guard_clock(conn)
            result = fn(conn)
            conn.execute("COMMIT")
            return result
        except BaseException as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:  # pragma: no cover - rollback after a failed commit
                _log.debug("rollback failed", exc_info=True)
            if isinstance(exc, sqlite3.Error):
                raise StoreUnavailable(
                    f"SQLite store at {self.path} failed ({exc}): refused"
                ) from exc
            raise

    def _tx(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        return self._run(self._conn(), fn)

    def _read(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        try:
            return list(self._conn().execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store at {self.path} failed ({exc}): refused") from exc

    def _guard_clock(self, conn: sqlite3.Connection) -> None:
        """Refuse a clock more than ``max_clock_skew`` behind the latest time this
        database was written with; otherwise move that mark forward."""
        now = self.clock()
        row = conn.execute("SELECT value FROM meta WHERE name = 'clock'").fetchone()
        if row is not None:
            seen = float(row[0])
            if now < seen - self.max_clock_skew:
                _log.error(
                    "clock of process %d is %.1f s behind the SQLite store at %s: refused",
                    os.getpid(),
                    seen - now,
                    self.path,
                )
                raise StoreUnavailable(
                    f"this process's clock is {seen - now:.1f} s behind the latest time the "
                    f"SQLite store at {self.path} has seen: refused; synchronise the clocks "
                    "of every process sharing the store (NTP)"
                )
            if now <= seen:
                return
        conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('clock', ?)", (now,))

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        for stmt in _SCHEMA:
            conn.execute(stmt)

    # -- counters -----------------------------------------------------------------
    def incr_bounded(self, key: str, limit: int, ttl: float | None = None) -> CounterResult:
        return self._tx(lambda conn: self._incr(conn, key, limit, ttl, self.clock()))

    def get_and_incr(
        self, key: str, counter: str, limit: int, ttl: float | None = None
    ) -> tuple[bytes | None, CounterResult]:
        def op(conn: sqlite3.Connection) -> tuple[bytes | None, CounterResult]:
            now = self.clock()
            value = self._current(conn, key, now)
            if value is None:
                return None, CounterResult(False, 0, None)
            return value, self._incr(conn, counter, limit, ttl, now)

        return self._tx(op)

    @staticmethod
    def _incr(
        conn: sqlite3.Connection, key: str, limit: int, ttl: float | None, now: float
    ) -> CounterResult:
        row = conn.execute(
            "SELECT value, expires_at FROM counters WHERE key = ?", (key,)
        ).fetchone()
        row_exp = None if row is None else _expiry(row[1], "a counter's expiry")
        if row is None or (row_exp is not None and row_exp <= now):
            if limit <= 0:
                return CounterResult(False, 0, None)
            value, expires_at = 0, (None if ttl is None else now + ttl)
        else:
            value, expires_at = _integer(row[0], "a counter"), row_exp
        if value >= limit:
            return CounterResult(False, value, expires_at)
        value += 1
        conn.execute(
            "INSERT OR REPLACE INTO counters (key, value, expires_at) VALUES (?, ?, ?)",
            (key, value, expires_at),
        )
        return CounterResult(True, value, expires_at)

    def get_counter(self, key: str) -> int:
        rows = self._read(
            "SELECT value, expires_at FROM counters"
            " WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
            (key, self.clock()),
        )
        if not rows:
            return 0
        _expiry(rows[0][1], "a counter's expiry")  # TEXT compares greater than any number
        return _integer(rows[0][0], "a counter")

    def reset_counter(self, key: str) -> None:
        self._tx(lambda conn: conn.execute("DELETE FROM counters WHERE key = ?", (key,)))

    # -- values ---------------------------------------------------------------------
    @staticmethod
    def _current(conn: sqlite3.Connection, key: str, now: float) -> bytes | None:
        row = conn.execute("SELECT value, expires_at FROM kv WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        expires_at = _expiry(row[1], "a value's expiry")
        if expires_at is not None and expires_at <= now:
            return None
        return _blob(row[0], "a value")

    def get(self, key: str) -> bytes | None:
        rows = self._read(
            "SELECT value, expires_at FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
            (key, self.clock()),
        )
        if not rows:
            return None
        _expiry(rows[0][1], "a value's expiry")  # TEXT compares greater than any number
        return _blob(rows[0][0], "a value")

    def put_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            now = self.clock()
            if self._current(conn, key, now) is not None:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO kv (key, value, expires_at) VALUES (?, ?, ?)",
                (key, bytes(value), None if ttl is None else now + ttl),
            )
            return True

        return self._tx(op)

    def compare_and_set(
        self, key: str, expected: bytes | None, new: bytes | None, ttl: float | None = None
    ) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            now = self.clock()
            if self._current(conn, key, now) != expected:
                return False
            if new is None:
                conn.execute("DELETE FROM kv WHERE key = ?", (key,))
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO kv (key, value, expires_at) VALUES (?, ?, ?)",
                    (key, bytes(new), None if ttl is None else now + ttl),
                )
            return True

        return self._tx(op)

    def consume(self, key: str) -> bytes | None:
        def op(conn: sqlite3.Connection) -> bytes | None:
            value = self._current(conn, key, self.clock())
            conn.execute("DELETE FROM kv WHERE key = ?", (key,))
            return value

        return self._tx(op)

    def delete(self, key: str) -> None:
        self._tx(lambda conn: conn.execute("DELETE FROM kv WHERE key = ?", (key,)))

    # -- append-only logs -------------------------------------------------------------
    def append(self, log: str, data: bytes) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM logs WHERE log = ?", (log,)
            ).fetchone()
            seq = _integer(row[0], f"log {log!r}") + 1
            conn.execute(
                "INSERT INTO logs (log, seq, data) VALUES (?, ?, ?)", (log, seq, bytes(data))
            )
            return seq

        return self._tx(op)

    def append_many(
        self,
        log: str,
        items: Sequence[bytes],
        *,
        after: int | None = None,
        swap: tuple[str, bytes | None, bytes] | None = None,
    ) -> int:
        """One ``BEGIN IMMEDIATE`` transaction (the database write lock is held from the
        reads of the log's end and of ``swap``'s value to the commit): one commit, so
        one WAL sync with ``synchronous=FULL``, however many records."""
        batch = batch_items(items)

        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM logs WHERE log = ?", (log,)
            ).fetchone()
            last = _integer(row[0], f"log {log!r}")
            if after is not None and last != after:
                raise log_conflict(log, after, last)
            if swap is not None and self._current(conn, swap[0], self.clock()) != swap[1]:
                raise value_conflict(swap[0])
            conn.executemany(
                "INSERT INTO logs (log, seq, data) VALUES (?, ?, ?)",
                [(log, last + 1 + i, data) for i, data in enumerate(batch)],
            )
            if swap is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO kv (key, value, expires_at) VALUES (?, ?, NULL)",
                    (swap[0], bytes(swap[2])),
                )
            return last + 1

        return self._tx(op)

    def read_log(self, log: str, start: int = 1) -> Iterator[LogRecord]:
        seq = max(start, 1)
        while True:
            rows = self._read(
                "SELECT seq, data FROM logs WHERE log = ? AND seq >= ? ORDER BY seq LIMIT ?",
                (log, seq, _PAGE),
            )
            for row_seq, data in rows:
                where = f"log {log!r} record {row_seq!r}"
                yield LogRecord(_integer(row_seq, where), _blob(data, where))
            if len(rows) < _PAGE:
                return
            seq = _integer(rows[-1][0], f"log {log!r}") + 1

    # -- housekeeping -------------------------------------------------------------------
    def purge_expired(self) -> int:
        def op(conn: sqlite3.Connection) -> int:
            now = self.clock()
            a = conn.execute(
                "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            )
            b = conn.execute(
                "DELETE FROM counters WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            )
            return int(a.rowcount) + int(b.rowcount)

        return self._tx(op)

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            conns, self._all = list(self._all.values()), {}
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover
                _log.debug("close failed", exc_info=True)
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"
