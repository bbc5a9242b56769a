"""PostgreSQL store: the atomic primitives on PostgreSQL's own guarantees.

For several application nodes that already run PostgreSQL.  psycopg 3 is imported
here only, lazily (``pip install 'ebank-auth[postgres]'``).  The store needs no
superuser: an ordinary role that may create tables in its schema at the first start
(or for which a DBA ran the DDL below once), then SELECT, INSERT, UPDATE and DELETE.

How each primitive is atomic (every statement runs in READ COMMITTED, PostgreSQL's
default, where an ``UPDATE``/``DELETE``/``ON CONFLICT`` waits for a concurrent writer
of the same row and then re-checks its condition on the row's newest version):

=========================  =================================================================
primitive                  PostgreSQL mechanism
=========================  =================================================================
``get``, ``get_counter``   one ``SELECT`` with the expiry test in ``WHERE``
``put_if_absent``          ``INSERT … ON CONFLICT (key) DO UPDATE … WHERE <row expired>``:
                           exactly one of several racing inserts wins; an expired row is
                           replaced, a live one is not
``compare_and_set``        ``UPDATE … WHERE value = $expected AND <live>`` (or ``DELETE …``);
                           expected missing: the ``put_if_absent`` statement
``consume``                ``DELETE … RETURNING value``: of two racing deletes only one gets
                           the row
``incr_bounded``           one transaction: ``INSERT … ON CONFLICT DO UPDATE SET value =
                           value + 1 WHERE <below limit or expired>``; when it refuses, the
                           conflict still row-locked the counter, so a second ``SELECT`` in the
                           same transaction reports exactly the value that was refused
``get_and_incr``           one transaction: ``SELECT … FOR SHARE`` of the value (a concurrent
                           ``consume`` waits), then the counter step above
``append``                 one statement: ``INSERT … ON CONFLICT DO UPDATE`` of the log's
                           head row (``seq = seq + 1``, row-locked until commit) feeding the
                           ``INSERT`` of the record; a rolled-back append also rolls back its
                           head, so sequence numbers are gap-free (a ``SEQUENCE`` is not)
``append_many``            one transaction: the head row's ``INSERT … ON CONFLICT DO UPDATE``
                           (``seq = seq + n``) row-locks the log's end until commit, so the
                           ``after`` test reads the committed end and two batches serialise;
                           the ``swap`` value by the ``compare_and_set`` statements (no row
                           changed: conflict, all rolled back); the records by one ``INSERT
                           … SELECT … unnest``; one commit, one WAL flush
``purge_expired``          two ``DELETE … WHERE expires_at <= now``
=========================  =================================================================

Row locks were chosen over SERIALIZABLE transactions: each primitive touches one row
(two for ``get_and_incr``, always value before counter, so no lock cycle can form)
and never needs a retry loop; a transaction PostgreSQL still rolls back (deadlock or
serialization failure, e.g. under a stricter ``default_transaction_isolation``) is
retried up to three times, which is safe because nothing of it was applied.

Time has one source, the PostgreSQL server: every primitive decides expiry with
``now()`` (the start of its transaction, so all its statements share one time), and the
store's ``clock`` (which services use for issue times and daily windows) reads
``clock_timestamp()``; application nodes whose wall clocks disagree or are stepped back
decide every expiry identically.  A test may inject a ``clock``; its value is then
passed to the statements instead (logged).

Durability: every session runs with ``synchronous_commit = on`` (a primitive returns
only after its commit is flushed to the WAL, and to a synchronous standby if one is
configured); a server with ``fsync = off`` is refused with
:class:`~ebank_auth.errors.ConfigurationError` unless the risk is accepted
(``allow_nonpersistent=True``, URL ``?allow_nonpersistent=1``; logged as a warning).

Threads: one store object is shared safely; it keeps a small pool of connections (at
most ``pool_size``), one connection per primitive at a time, each in autocommit mode.
A connection whose server went away (its socket became readable while idle: the
server's goodbye or EOF) is dropped before use; after any connection failure every
idle connection is dropped, so the same store object recovers when the server is
back.  A forked child never reuses its parent's connections.

Failures fail closed: a lost or refused connection, a statement cancelled by
``statement_timeout`` (default 30 s, covers lock waits) or any server error is
:class:`~ebank_auth.errors.StoreUnavailable`; a row that breaks the store's own
invariants (a log head deleted by hand, so a sequence number would repeat; tables
dropped while running) is :class:`~ebank_auth.errors.StoreIntegrityError`; a role
without the privileges it needs is :class:`~ebank_auth.errors.ConfigurationError`
naming the grant.  Passwords in URLs are never printed or logged.

Tables (in ``schema``, default ``public``; created if missing, with a schema version
row)::

    ebank_kv(key text PRIMARY KEY, value bytea NOT NULL, expires_at float8 NULL)
    ebank_counters(key text PRIMARY KEY, value bigint NOT NULL, expires_at float8 NULL)
    ebank_logs(log text, seq bigint, data bytea NOT NULL, PRIMARY KEY (log, seq))
    ebank_log_heads(log text PRIMARY KEY, seq bigint NOT NULL)
    ebank_meta(name text PRIMARY KEY, value text NOT NULL)  -- 'schema_version' = '1'

Column types are enforced by PostgreSQL, so (unlike SQLite) nobody can store text
where a counter belongs.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ebank_auth.errors import (
    ConfigurationError,
    InvalidInput,
    StoreIntegrityError,
    StoreUnavailable,
)
from ebank_auth.store.base import (
    Clock,
    CounterResult,
    LogRecord,
    Store,
    batch_items,
    log_conflict,
    value_conflict,
)

__all__ = ["SCHEMA_VERSION", "PostgresStore", "open_postgres_url"]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

SCHEMA_VERSION = 1
"""Version of the table layout this module writes (row ``schema_version`` in
``ebank_meta``); a database written by a newer layout is refused."""

_PAGE = 512
_RETRIES = 3

# the time of one primitive: the injected clock's value, else the server's now()
_NOW = "COALESCE(%(now)s::float8, extract(epoch FROM now())::float8)"
_LIVE = "(expires_at IS NULL OR expires_at > " + _NOW + ")"

_DDL = (
    "CREATE TABLE IF NOT EXISTS {s}.ebank_meta (name text PRIMARY KEY, value text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}.ebank_kv ("
    " key text PRIMARY KEY, value bytea NOT NULL, expires_at float8)",
    "CREATE TABLE IF NOT EXISTS {s}.ebank_counters ("
    " key text PRIMARY KEY, value bigint NOT NULL, expires_at float8)",
    "CREATE TABLE IF NOT EXISTS {s}.ebank_logs ("
    " log text NOT NULL, seq bigint NOT NULL, data bytea NOT NULL, PRIMARY KEY (log, seq))",
    "CREATE TABLE IF NOT EXISTS {s}.ebank_log_heads (log text PRIMARY KEY, seq bigint NOT NULL)",
    "INSERT INTO {s}.ebank_meta (name, value) VALUES ('schema_version', '1')"
    " ON CONFLICT (name) DO NOTHING",
)

_SQL = {
    "get": "SELECT value FROM {s}.ebank_kv WHERE key = %(key)s AND {live}",
    "get_for_share": "SELECT value FROM {s}.ebank_kv WHERE key = %(key)s AND {live} FOR SHARE",
    "get_counter": "SELECT value, expires_at FROM {s}.ebank_counters"
    " WHERE key = %(key)s AND {live}",
    "counter_row": "SELECT value, expires_at FROM {s}.ebank_counters WHERE key = %(key)s",
    "incr": "INSERT INTO {s}.ebank_counters AS c (key, value, expires_at)"
    " VALUES (%(key)s, 1, {now} + %(ttl)s::float8)"
    " ON CONFLICT (key) DO UPDATE SET"
    "  value = CASE WHEN c.expires_at <= {now} THEN 1 ELSE c.value + 1 END,"
    "  expires_at = CASE WHEN c.expires_at <= {now} THEN EXCLUDED.expires_at"
    "   ELSE c.expires_at END"
    " WHERE c.expires_at <= {now} OR c.value < %(limit)s"
    " RETURNING value, expires_at",
    "reset_counter": "DELETE FROM {s}.ebank_counters WHERE key = %(key)s",
    "put_if_absent": "INSERT INTO {s}.ebank_kv AS v (key, value, expires_at)"
    " VALUES (%(key)s, %(value)s, {now} + %(ttl)s::float8)"
    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at"
    " WHERE v.expires_at <= {now}"
    " RETURNING true",
    "absent": "SELECT NOT EXISTS (SELECT 1 FROM {s}.ebank_kv WHERE key = %(key)s AND {live})",
    "swap": "UPDATE {s}.ebank_kv SET value = %(new)s, expires_at = {now} + %(ttl)s::float8"
    " WHERE key = %(key)s AND value = %(expected)s AND {live} RETURNING true",
    "swap_delete": "DELETE FROM {s}.ebank_kv"
    " WHERE key = %(key)s AND value = %(expected)s AND {live} RETURNING true",
    "consume": "DELETE FROM {s}.ebank_kv WHERE key = %(key)s RETURNING value, {live}",
    "delete": "DELETE FROM {s}.ebank_kv WHERE key = %(key)s",
    "append": "WITH head AS ("
    " INSERT INTO {s}.ebank_log_heads AS h (log, seq) VALUES (%(log)s, 1)"
    " ON CONFLICT (log) DO UPDATE SET seq = h.seq + 1 RETURNING seq)"
    " INSERT INTO {s}.ebank_logs (log, seq, data) SELECT %(log)s, seq, %(data)s FROM head"
    " RETURNING seq",
    "append_head": "INSERT INTO {s}.ebank_log_heads AS h (log, seq) VALUES (%(log)s, %(n)s)"
    " ON CONFLICT (log) DO UPDATE SET seq = h.seq + %(n)s RETURNING seq",
    "append_many": "INSERT INTO {s}.ebank_logs (log, seq, data)"
    " SELECT %(log)s, %(first)s + t.i - 1, t.d"
    " FROM unnest(%(items)s::bytea[]) WITH ORDINALITY AS t(d, i)",
    "read_log": "SELECT seq, data FROM {s}.ebank_logs WHERE log = %(log)s AND seq >= %(seq)s"
    " ORDER BY seq LIMIT %(page)s",
    "purge": "WITH a AS (DELETE FROM {s}.ebank_kv WHERE expires_at <= {now} RETURNING 1),"
    " b AS (DELETE FROM {s}.ebank_counters WHERE expires_at <= {now} RETURNING 1)"
    " SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b)",
    "version": "SELECT value FROM {s}.ebank_meta WHERE name = 'schema_version'",
}
"""Statement templates, composed once per store with :mod:`psycopg.sql` (``{s}`` the
quoted schema, ``{now}``/``{live}`` the fragments above); values are always bound
parameters."""

# options of the URL's query that are ours; every other one goes to libpq as is
_OPTIONS = ("schema", "pool_size", "statement_timeout", "allow_nonpersistent", "create")


def _mask(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = urlencode(
        [(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(parts.query)]
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _identifier(name: str) -> str:
    """``name`` as a quoted identifier, if it is a plain one (letters, digits, '_')."""
    if not name or len(name) > 63 or not all(c.isalnum() or c == "_" for c in name):
        raise ConfigurationError(
            f"PostgreSQL schema name {name!r} is not usable: give 1 to 63 letters, digits or '_'"
        )
    if name[0].isdigit():
        raise ConfigurationError(f"PostgreSQL schema name {name!r} must not start with a digit")
    return '"' + name + '"'


def _text(name: str, what: str) -> str:
    if "\x00" in name:
        raise InvalidInput(f"a store {what} cannot contain a NUL character on PostgreSQL")
    return name


def _bytes(value: object, what: str) -> bytes:
    if isinstance(value, memoryview):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise StoreIntegrityError(
            f"PostgreSQL store: {what} is {type(value).__name__}, not bytea (the table was "
            "altered outside ebank-auth): refused; restore it from a backup and investigate"
        )
    return value


class PostgresStore(Store):
    """Atomic store primitives in a PostgreSQL database.

    ``url``: ``postgresql://user:password@host:port/dbname`` (any libpq URL parameter,
    e.g. ``sslmode=verify-full``, may follow; ``postgres://`` works too).
    ``schema``: where the tables live (default ``public``; created if missing, so
    several independent stores can share one database).
    ``pool_size``: most connections this store object opens (one per concurrent call).
    ``statement_timeout``: seconds a statement (including a wait for a row lock held
    by another node) may take before it is cancelled and the call fails closed.
    ``clock``: leave None in production (the server's clock); a test may inject one.
    ``allow_nonpersistent``: accept a server with ``fsync = off`` (logged).
    ``create``: create missing tables (default); False refuses a database without
    them (read-only commands, schemas a DBA manages).
    """

    def __init__(
        self,
        url: str,
        clock: Clock | None = None,
        *,
        schema: str = "public",
        pool_size: int = 10,
        statement_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        allow_nonpersistent: bool = False,
        create: bool = True,
    ) -> None:
        super().__init__(clock)
        self._server_clock = clock is None
        if clock is None:
            self.clock = self._server_time
        else:
            _log.info(
                "PostgreSQL store uses an injected clock instead of the server's (tests only)"
            )
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise ConfigurationError(
                "the PostgreSQL store needs the 'psycopg' package: "
                "pip install 'ebank-auth[postgres]'"
            ) from exc
        self._pg: Any = psycopg
        self.url = url
        self._safe = _mask(url)
        self.schema = schema
        _identifier(schema)
        if isinstance(pool_size, bool) or not 1 <= int(pool_size) <= 100:
            raise ConfigurationError("pool_size must be 1 to 100 connections")
        if not 0 < float(statement_timeout) <= 3600:
            raise ConfigurationError("statement_timeout must be more than 0 and at most 3600 s")
        self.pool_size = int(pool_size)
        self.statement_timeout = float(statement_timeout)
        self.connect_timeout = float(connect_timeout)
        self.allow_nonpersistent = bool(allow_nonpersistent)
        self.create = bool(create)
        sql = psycopg.sql
        parts = {
            "s": sql.Identifier(schema),
            "now": sql.SQL(_NOW),  # constant fragments
            "live": sql.SQL(_LIVE),
        }
        self._sql: dict[str, Any] = {
            name: sql.SQL(text).format(**parts) for name, text in _SQL.items()
        }
        self._ddl = [sql.SQL(text).format(**parts) for text in _DDL]
        self._create_schema = sql.SQL("CREATE SCHEMA IF NOT EXISTS {s}").format(**parts)
        self._cond = threading.Condition()
        self._idle: list[Any] = []
        self._count = 0  # connections open (idle + in use)
        self._orphans: list[Any] = []  # a forked parent's connections: never used nor closed
        self._pid = os.getpid()
        self._closed = False
        self._with_connection(self._setup)

    # -- connections ----------------------------------------------------------------------
    def _connect(self) -> Any:
        pg = self._pg
        kwargs: dict[str, Any] = {"autocommit": True, "application_name": "ebank-auth"}
        if "connect_timeout" not in self.url:
            kwargs["connect_timeout"] = max(1, round(self.connect_timeout))
        try:
            conn = pg.connect(self.url, **kwargs)
        except pg.Error as exc:
            raise self._unavailable(exc, "cannot connect") from None
        try:
            ms = round(self.statement_timeout * 1000)
            conn.execute(
                "SET synchronous_commit = on; SET client_encoding = 'UTF8';"
                f" SET statement_timeout = {ms}; SET idle_in_transaction_session_timeout = {ms}"
            )
        except pg.Error as exc:
            conn.close()
            raise self._unavailable(exc, "cannot set up a session") from None
        return conn

    def _acquire(self) -> Any:
        if self._closed:
            raise StoreUnavailable("the PostgreSQL store was closed: open a new one")
        deadline = time.monotonic() + self.statement_timeout
        with self._cond:
            if os.getpid() != self._pid:  # forked child: the parent's sockets are not ours
                self._orphans.extend(self._idle)
                self._idle, self._count, self._pid = [], 0, os.getpid()
            while True:
                while self._idle:
                    conn = self._idle.pop()
                    if self._healthy(conn):
                        return conn
                    self._count -= 1
                    self._close_quietly(conn)
                if self._count < self.pool_size:
                    self._count += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreUnavailable(
                        f"PostgreSQL store at {self._safe}: all {self.pool_size} connections "
                        "stayed busy: refused; raise pool_size or find the slow statements"
                    )
                self._cond.wait(left)
        try:
            return self._connect()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _release(self, conn: Any, *, broken: bool) -> None:
        ok = not broken and not conn.closed and self._pid == os.getpid() and not self._closed
        if ok:
            ok = conn.info.transaction_status == self._pg.pq.TransactionStatus.IDLE
        with self._cond:
            if self._pid != os.getpid():
                self._orphans.append(conn)
                return
            if ok:
                self._idle.append(conn)
            else:
                self._count -= 1
                if broken:  # the server probably restarted: its other sessions are gone too
                    stale, self._idle = self._idle, []
                    self._count -= len(stale)
                else:
                    stale = []
            self._cond.notify()
        if not ok:
            for c in [conn, *stale]:
                self._close_quietly(c)

    @staticmethod
    def _healthy(conn: Any) -> bool:
        """False if an idle connection is closed or its socket has something to read
        (the server's termination notice or EOF: it went away)."""
        if conn.closed or conn.broken:
            return False
        try:
            readable, _, _ = select.select([conn.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def _close_quietly(self, conn: Any) -> None:
        try:
            conn.close()
        except Exception:  # pragma: no cover - closing a broken connection
            _log.debug("close failed", exc_info=True)

    def _unavailable(self, exc: BaseException, what: str) -> StoreUnavailable:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        password = urlsplit(self.url).password
        if password:
            detail = detail.replace(password, "***")
        return StoreUnavailable(
            f"PostgreSQL store at {self._safe}: {what} ({detail}): refused; check that the "
            "server is running and reachable"
        )

    def _map(self, exc: BaseException) -> BaseException:
        pg = self._pg
        errors = pg.errors
        if isinstance(exc, errors.InsufficientPrivilege):
            return ConfigurationError(
                f"PostgreSQL store at {self._safe}: the role lacks a privilege "
                f"({str(exc).strip().splitlines()[0]}): grant it USAGE on schema {self.schema} "
                "and SELECT, INSERT, UPDATE, DELETE on the ebank_* tables (CREATE on the "
                "schema for the first start)"
            )
        if isinstance(exc, (errors.UndefinedTable, pg.IntegrityError, pg.DataError)):
            return StoreIntegrityError(
                f"PostgreSQL store at {self._safe}: the tables break the store's invariants "
                f"({type(exc).__name__}; edited outside ebank-auth?): refused; restore the "
                "database from a backup and investigate"
            )
        return self._unavailable(exc, f"failed ({type(exc).__name__})")

    def _with_connection(self, fn: Callable[[Any], _T]) -> _T:
        """Run ``fn(conn)`` on a pooled connection, mapping errors; a transaction the
        server rolled back (deadlock, serialization failure) is retried."""
        pg = self._pg
        for attempt in range(_RETRIES + 1):
            conn = self._acquire()
            broken = False
            try:
                return fn(conn)
            except pg.errors.TransactionRollback as exc:
                if attempt == _RETRIES:
                    raise self._map(exc) from None
                _log.info("PostgreSQL store: transaction rolled back (%s); retrying", exc.sqlstate)
            except pg.Error as exc:
                broken = isinstance(exc, (pg.OperationalError, pg.InterfaceError)) and (
                    conn.closed or conn.broken
                )
                raise self._map(exc) from None
            finally:
                self._release(conn, broken=broken)
        raise AssertionError("unreachable")  # pragma: no cover

    def _run(self, name: str, **params: Any) -> list[Any]:
        """One statement in autocommit mode (its own transaction)."""
        sql = self._sql[name]
        params.setdefault("now", self._now())

        def op(conn: Any) -> list[Any]:
            cur = conn.execute(sql, params)
            return list(cur.fetchall()) if cur.description is not None else []

        return self._with_connection(op)

    def _now(self) -> float | None:
        """Parameter ``now``: None lets the server's now() decide (one time source)."""
        return None if self._server_clock else float(self.clock())

    def _setup(self, conn: Any) -> None:
        fsync = conn.execute("SHOW fsync").fetchone()[0]
        if str(fsync).lower() != "on":
            why = (
                "a crash or power loss could lose committed counters, unlocking locked users "
                "and re-enabling replay; set fsync = on"
            )
            if not self.allow_nonpersistent:
                raise ConfigurationError(
                    f"PostgreSQL at {self._safe} runs with fsync = {fsync}: {why}. To accept "
                    "the risk (tests, demonstrations) pass allow_nonpersistent=True "
                    "(URL ?allow_nonpersistent=1)"
                )
            _log.warning(
                "PostgreSQL store at %s: fsync is %s: %s. Accepted because allow_nonpersistent "
                "is set; never in production",
                self._safe,
                fsync,
                why,
            )
        meta = conn.execute(
            "SELECT to_regclass(%s)", (f"{_identifier(self.schema)}.ebank_meta",)
        ).fetchone()[0]
        if meta is None and not self.create:
            raise ConfigurationError(
                f"PostgreSQL store at {self._safe}: schema {self.schema} holds no ebank-auth "
                "tables (nothing was created): check the database and schema names"
            )
        if meta is None:
            with conn.transaction():
                # several nodes may start at once: one creates, the others wait and see it
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ebank:{self.schema}",)
                )
                exists = conn.execute(
                    "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
                ).fetchone()
                if exists is None:
                    conn.execute(self._create_schema)
                for stmt in self._ddl:
                    conn.execute(stmt)
        version = conn.execute(self._sql["version"]).fetchone()
        if version is None or not str(version[0]).isdigit():
            raise StoreIntegrityError(
                f"PostgreSQL store at {self._safe}: schema {self.schema} has ebank_meta but no "
                "schema_version row (edited outside ebank-auth): refused; investigate"
            )
        if int(version[0]) > SCHEMA_VERSION:
            raise ConfigurationError(
                f"PostgreSQL store at {self._safe}: schema {self.schema} was written by a newer "
                f"ebank-auth (layout {version[0]}, this one knows {SCHEMA_VERSION}): upgrade "
                "ebank-auth on this node"
            )

    def _server_time(self) -> float:
        """The PostgreSQL server's clock (``clock_timestamp()``): the store's time source."""
        rows = self._with_connection(
            lambda conn: conn.execute(
                "SELECT extract(epoch FROM clock_timestamp())::float8"
            ).fetchall()
        )
        return float(rows[0][0])

    # -- counters -----------------------------------------------------------------
    def _incr(
        self, conn: Any, key: str, limit: int, ttl: float | None, now: float | None
    ) -> CounterResult:
        """The bounded increment inside the caller's transaction."""
        params = {"key": key, "limit": int(limit), "ttl": ttl, "now": now}
        if limit <= 0:  # never creates a counter; reports a live one
            row = conn.execute(self._sql["get_counter"], params).fetchone()
            if row is None:
                return CounterResult(False, 0, None)
            return CounterResult(False, int(row[0]), row[1])
        row = conn.execute(self._sql["incr"], params).fetchone()
        if row is not None:
            return CounterResult(True, int(row[0]), row[1])
        # refused: the ON CONFLICT row-locked the counter, so this reads what was refused
        row = conn.execute(self._sql["counter_row"], params).fetchone()
        return CounterResult(False, int(row[0]), row[1])

    def incr_bounded(self, key: str, limit: int, ttl: float | None = None) -> CounterResult:
        key, now = _text(key, "key"), self._now()

        def op(conn: Any) -> CounterResult:
            with conn.transaction():
                return self._incr(conn, key, limit, ttl, now)

        return self._with_connection(op)

    def get_and_incr(
        self, key: str, counter: str, limit: int, ttl: float | None = None
    ) -> tuple[bytes | None, CounterResult]:
        key, counter, now = _text(key, "key"), _text(counter, "key"), self._now()

        def op(conn: Any) -> tuple[bytes | None, CounterResult]:
            with conn.transaction():
                row = conn.execute(self._sql["get_for_share"], {"key": key, "now": now}).fetchone()
                if row is None:
                    return None, CounterResult(False, 0, None)
                value = _bytes(row[0], "a value")
                return value, self._incr(conn, counter, limit, ttl, now)

        return self._with_connection(op)

    def get_counter(self, key: str) -> int:
        rows = self._run("get_counter", key=_text(key, "key"))
        return int(rows[0][0]) if rows else 0

    def reset_counter(self, key: str) -> None:
        self._run("reset_counter", key=_text(key, "key"))

    # -- values ---------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        rows = self._run("get", key=_text(key, "key"))
        return _bytes(rows[0][0], "a value") if rows else None

    def put_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        rows = self._run("put_if_absent", key=_text(key, "key"), value=bytes(value), ttl=ttl)
        return bool(rows)

    def compare_and_set(
        self, key: str, expected: bytes | None, new: bytes | None, ttl: float | None = None
    ) -> bool:
        key = _text(key, "key")
        if expected is None and new is None:
            return bool(self._run("absent", key=key)[0][0])
        if expected is None:
            assert new is not None
            return bool(self._run("put_if_absent", key=key, value=bytes(new), ttl=ttl))
        if new is None:
            return bool(self._run("swap_delete", key=key, expected=bytes(expected)))
        return bool(self._run("swap", key=key, expected=bytes(expected), new=bytes(new), ttl=ttl))

    def consume(self, key: str) -> bytes | None:
        rows = self._run("consume", key=_text(key, "key"))
        if not rows or not rows[0][1]:
            return None
        return _bytes(rows[0][0], "a value")

    def delete(self, key: str) -> None:
        self._run("delete", key=_text(key, "key"))

    # -- append-only logs -------------------------------------------------------------
    def append(self, log: str, data: bytes) -> int:
        rows = self._run("append", log=_text(log, "log name"), data=bytes(data))
        return int(rows[0][0])

    def append_many(
        self,
        log: str,
        items: Sequence[bytes],
        *,
        after: int | None = None,
        swap: tuple[str, bytes | None, bytes] | None = None,
    ) -> int:
        log, batch, now = _text(log, "log name"), batch_items(items), self._now()
        key = _text(swap[0], "key") if swap is not None else ""
        sql = self._sql

        def op(conn: Any) -> int:
            with conn.transaction():
                params = {"log": log, "n": len(batch), "now": now}
                last = int(conn.execute(sql["append_head"], params).fetchone()[0]) - len(batch)
                if after is not None and last != after:
                    raise log_conflict(log, after, last)  # rolls the head row back
                if swap is not None:
                    expected, new = swap[1], bytes(swap[2])
                    args = {"key": key, "value": new, "new": new, "ttl": None, "now": now}
                    if expected is None:
                        done = conn.execute(sql["put_if_absent"], args).fetchone()
                    else:
                        args["expected"] = bytes(expected)
                        done = conn.execute(sql["swap"], args).fetchone()
                    if done is None:
                        raise value_conflict(key)
                conn.execute(sql["append_many"], {"log": log, "first": last + 1, "items": batch})
                return last + 1

        return self._with_connection(op)

    def read_log(self, log: str, start: int = 1) -> Iterator[LogRecord]:
        log = _text(log, "log name")
        seq = max(int(start), 1)
        while True:
            rows = self._run("read_log", log=log, seq=seq, page=_PAGE)
            for row_seq, data in rows:
                yield LogRecord(int(row_seq), _bytes(data, f"log {log!r} record {row_seq}"))
            if len(rows) < _PAGE:
                return
            seq = int(rows[-1][0]) + 1

    # -- housekeeping -------------------------------------------------------------------
    def purge_expired(self) -> int:
        return int(self._run("purge")[0][0])

    def ping(self) -> None:
        """Raise StoreUnavailable unless the server answers."""
        self._with_connection(lambda conn: conn.execute("SELECT 1").fetchall())

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            mine = self._pid == os.getpid()
        if mine:
            for conn in idle:
                self._close_quietly(conn)

    def __repr__(self) -> str:
        return f"PostgresStore({self._safe!r}, schema={self.schema!r})"


def _flag(opts: dict[str, str], name: str, default: str = "0") -> bool:
    raw = opts.pop(name, default).lower()
    if raw not in ("0", "1", "true", "false", "yes", "no"):
        raise ConfigurationError(f"the postgresql store option {name} takes 1 or 0")
    return raw in ("1", "true", "yes")


def open_postgres_url(url: str, clock: Clock | None) -> Store:
    """Opener for ``postgresql://`` / ``postgres://`` URLs (see :func:`ebank_auth.store.open_store`).

    Query options of the store (removed before the URL goes to libpq): ``schema``,
    ``pool_size``, ``statement_timeout`` (seconds), ``allow_nonpersistent``, ``create``
    (``0``: refuse a database without the tables instead of creating them); every
    other one (``sslmode``, ``connect_timeout``, …) is libpq's.
    """
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number
    except ValueError:
        raise ConfigurationError(
            f"the PostgreSQL URL {_mask(url)} is not valid: use "
            "postgresql://user:password@host:port/dbname"
        ) from None
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    opts = {k: v for k, v in pairs if k in _OPTIONS}
    rest = [(k, v) for k, v in pairs if k not in _OPTIONS]
    kwargs: dict[str, Any] = {
        "allow_nonpersistent": _flag(opts, "allow_nonpersistent"),
        "create": _flag(opts, "create", default="1"),
    }
    if "schema" in opts:
        kwargs["schema"] = opts["schema"]
    for name, kind in (("pool_size", int), ("statement_timeout", float)):
        if name in opts:
            try:
                kwargs[name] = kind(opts[name])
            except ValueError:
                raise ConfigurationError(
                    f"the postgresql store option {name} must be a number"
                ) from None
    clean = urlunsplit(parts._replace(query=urlencode(rest)))
    return PostgresStore(clean, clock=clock, **kwargs)
