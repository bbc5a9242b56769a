"""PostgreSQL store beyond the shared contract: restart (fail closed, then recover),
privileges (no superuser; a DBA-made schema), the server as the one clock, durability
settings, typed errors, passwords never shown, and ``audit verify`` on a PostgreSQL URL.
All against the real private cluster of :mod:`plugins.postgres_server`."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner

from ebank_auth.errors import (
    ConfigurationError,
    InvalidInput,
    StoreIntegrityError,
    StoreUnavailable,
)
from ebank_auth.store import Store, open_store
from plugins.postgres_server import PostgresServer
from plugins.store_backends import FakeClock


def _schema() -> str:
    return f"p{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Callable[..., Store]]:
    """Opens PostgreSQL stores on one fresh schema; closes them all afterwards."""
    schema = _schema()
    opened: list[Store] = []

    def make(query: str = "", clock: FakeClock | None = None) -> Store:
        store = open_store(f"{postgres_url}?schema={schema}{query}", clock=clock)
        opened.append(store)
        return store

    make.schema = schema  # type: ignore[attr-defined]
    yield make
    for store in opened:
        store.close()


def _every_primitive(store: Store) -> list[Callable[[], object]]:
    return [
        lambda: store.incr_bounded("k", 3, 10),
        lambda: store.get("k"),
        lambda: store.consume("k"),
        lambda: store.put_if_absent("k", b"v"),
        lambda: store.compare_and_set("k", None, b"v"),
        lambda: store.compare_and_set("k", b"v", b"w"),
        lambda: store.get_and_incr("k", "c", 3),
        lambda: store.append("log", b"x"),
        lambda: list(store.read_log("log")),
        lambda: store.get_counter("k"),
        lambda: store.reset_counter("k"),
        lambda: store.delete("k"),
        store.clock,
    ]


def test_restart_fails_closed_then_the_same_store_recovers(
    postgres_server: PostgresServer, pg: Callable[..., Store]
) -> None:
    """Attack: a database restart (failover, maintenance) must never turn into a silent
    allow.  While the server is down every primitive raises StoreUnavailable; when it
    is back the same store object (its pool of now-dead connections) works again and
    nothing committed before the restart is lost."""
    store = pg()
    assert store.incr_bounded("lock:alice", 5, ttl=3600).value == 1
    assert store.put_if_absent("code", b"123456", ttl=3600)
    assert store.append("audit", b"r1") == 1
    # several pooled connections, all of which die with the server
    barrier = threading.Barrier(4)

    def busy() -> None:
        barrier.wait()
        for _ in range(5):
            store.get_counter("lock:alice")

    threads = [threading.Thread(target=busy) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    postgres_server.stop("fast")
    try:
        for call in _every_primitive(store):
            with pytest.raises(StoreUnavailable, match="refused"):
                call()
    finally:
        postgres_server.start()
    # recovered: the first call after the restart already works
    assert store.incr_bounded("lock:alice", 5, ttl=3600).value == 2
    assert store.consume("code") == b"123456"
    assert store.append("audit", b"r2") == 2
    assert [r.data for r in store.read_log("audit")] == [b"r1", b"r2"]
    # a restart the store did not see (no call while it was down): its idle connections
    # are dead; they are dropped before use instead of failing the next call
    threads = [threading.Thread(target=busy) for _ in range(4)]
    barrier.reset()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    postgres_server.stop("fast")
    postgres_server.start()
    assert store.incr_bounded("lock:alice", 5, ttl=3600).value == 3


def test_server_killed_mid_use_fails_closed(
    postgres_server: PostgresServer, pg: Callable[..., Store]
) -> None:
    """``pg_ctl stop -m immediate`` (no clean shutdown, like a crash): committed state
    survives crash recovery, calls in between fail closed."""
    store = pg()
    for _ in range(3):
        store.incr_bounded("tries", 5, ttl=3600)
    postgres_server.stop("immediate")
    try:
        with pytest.raises(StoreUnavailable):
            store.incr_bounded("tries", 5, ttl=3600)
    finally:
        postgres_server.start()
    assert store.get_counter("tries") == 3  # committed before the crash, nothing more


def test_unreachable_server_and_password_never_shown(postgres_url: str) -> None:
    from plugins.redis_server import _free_port

    url = f"postgresql://ebank:hunter2secret@127.0.0.1:{_free_port()}/ebank?connect_timeout=2"
    with pytest.raises(StoreUnavailable) as info:
        open_store(url)
    assert "hunter2secret" not in str(info.value)
    assert "***" in str(info.value)
    wrong = postgres_url.replace("ebank:", "ebank:wrong", 1)
    with pytest.raises(StoreUnavailable, match="password authentication failed") as info:
        open_store(wrong)
    assert "wrong" not in str(info.value).split("(")[0]  # the URL part is masked


def test_repr_and_logs_hide_the_password(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    password = postgres_url.split(":")[2].split("@")[0]
    with caplog.at_level(logging.DEBUG, logger="ebank_auth"):
        store = open_store(f"{postgres_url}?schema={_schema()}")
        store.put_if_absent("k", b"v")
        assert password not in repr(store)
        store.close()
    assert password not in caplog.text


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("?pool_size=0", "pool_size"),
        ("?pool_size=many", "pool_size"),
        ("?statement_timeout=0", "statement_timeout"),
        ("?schema=bad-name", "schema name"),
        ("?schema=1abc", "schema name"),
        ("?allow_nonpersistent=maybe", "allow_nonpersistent"),
        ("?sslmode=bogus", "sslmode"),
    ],
)
def test_bad_options_are_configuration_errors(postgres_url: str, query: str, match: str) -> None:
    with pytest.raises((ConfigurationError, StoreUnavailable), match=match):
        open_store(postgres_url + query)


def test_bad_url_is_a_configuration_error_without_the_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        open_store("postgresql://u:hunter2secret@127.0.0.1:notaport/db")
    assert "hunter2secret" not in str(info.value)


def test_nul_in_a_key_is_refused_without_touching_the_server(pg: Callable[..., Store]) -> None:
    store = pg()
    with pytest.raises(InvalidInput, match="NUL"):
        store.put_if_absent("a\x00b", b"v")
    with pytest.raises(InvalidInput, match="NUL"):
        store.append("log\x00", b"v")
    assert store.get("a") is None


def test_server_clock_is_the_time_source(
    pg: Callable[..., Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: a node whose wall clock jumps forward (or back) must not expire (or
    revive) codes early.  Without an injected clock expiry is decided by the server's
    now(); the process clock is never read."""
    store = pg()
    assert store.put_if_absent("code", b"1", ttl=300)
    assert abs(store.clock() - time.time()) < 60
    server_now = store.clock()
    monkeypatch.setattr(time, "time", lambda: server_now + 10_000)
    assert store.get("code") == b"1"  # a client clock 10 000 s ahead changes nothing
    assert not store.put_if_absent("code", b"2", ttl=300)
    result = store.incr_bounded("c", 3, ttl=60)
    assert result.expires_at is not None and abs(result.expires_at - (server_now + 60)) < 30


def test_injected_clock_is_used_instead(pg: Callable[..., Store]) -> None:
    clock = FakeClock()
    store = pg(clock=clock)
    assert store.incr_bounded("c", 3, ttl=60).expires_at == clock() + 60
    assert store.clock() == clock()


def test_no_superuser_and_a_role_without_create_is_told_what_to_grant(
    postgres_server: PostgresServer, pg: Callable[..., Store]
) -> None:
    """The store runs as the owner of its database (no superuser, no CREATEDB).  A role
    that may only read and write (the DBA ran the DDL by opening the store once as the
    owner) works; the same role on a schema without tables is refused with the grant
    it lacks, and nothing is half-created."""
    with postgres_server.admin() as admin:
        row = admin.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = 'ebank'"
        ).fetchone()
        assert row == (False, False, False)
    owner = pg()  # creates the tables in the fresh schema
    owner.put_if_absent("k", b"v")
    schema = pg.schema  # type: ignore[attr-defined]
    role, password = f"app{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with postgres_server.admin() as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    dml = owner._with_connection  # type: ignore[attr-defined]
    dml(
        lambda conn: conn.execute(
            f"GRANT USAGE ON SCHEMA {schema} TO {role};"
            f" GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}"
        )
    )
    base = f"postgresql://{role}:{password}@127.0.0.1:{postgres_server.port}/ebank"
    app = open_store(f"{base}?schema={schema}")
    assert app.consume("k") == b"v"
    assert app.incr_bounded("n", 2).allowed
    assert app.append("log", b"x") == 1
    app.close()
    with pytest.raises(ConfigurationError, match="grant") as info:
        open_store(f"{base}?schema={_schema()}")
    assert password not in str(info.value)


def test_read_only_open_creates_nothing(postgres_url: str) -> None:
    schema = _schema()
    with pytest.raises(ConfigurationError, match="nothing was created"):
        open_store(f"{postgres_url}?schema={schema}&create=0")
    store = open_store(f"{postgres_url}?schema={schema}")  # creates
    store.close()
    store = open_store(f"{postgres_url}?schema={schema}&create=0")
    assert store.get("k") is None
    store.close()


def test_sessions_commit_synchronously_whatever_the_role_default(
    postgres_server: PostgresServer, pg: Callable[..., Store]
) -> None:
    """A role or database default of ``synchronous_commit = off`` (acknowledging commits
    before they are on disk) is overridden in every store session."""
    with postgres_server.admin() as admin:
        admin.execute("ALTER ROLE ebank SET synchronous_commit = off")
    try:
        store = pg()
        setting = store._with_connection(  # type: ignore[attr-defined]
            lambda conn: conn.execute("SHOW synchronous_commit").fetchone()[0]
        )
        assert setting == "on"
    finally:
        with postgres_server.admin() as admin:
            admin.execute("ALTER ROLE ebank RESET synchronous_commit")


def test_server_without_fsync_is_refused_unless_allowed(
    postgres_server: PostgresServer, pg: Callable[..., Store], caplog: pytest.LogCaptureFixture
) -> None:
    """Attack: a server with ``fsync = off`` loses committed counters on a crash
    (unlocking locked users, re-enabling replay); it is refused at open, or accepted
    only explicitly and with a warning."""
    with postgres_server.admin() as admin:
        admin.execute("ALTER SYSTEM SET fsync = off")
        admin.execute("SELECT pg_reload_conf()")
    try:
        deadline = time.monotonic() + 10
        while True:  # the reload reaches new sessions asynchronously
            try:
                pg()
            except ConfigurationError as exc:
                assert "fsync" in exc.message and "allow_nonpersistent" in exc.message
                break
            assert time.monotonic() < deadline, "fsync = off was never refused"
            time.sleep(0.05)
        with caplog.at_level(logging.WARNING):
            store = pg("&allow_nonpersistent=1")
            assert store.put_if_absent("k", b"v")
        assert "fsync" in caplog.text
    finally:
        with postgres_server.admin() as admin:
            admin.execute("ALTER SYSTEM RESET fsync")
            admin.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                pg().close()
                break
            except ConfigurationError:
                time.sleep(0.05)


def test_lock_held_beyond_statement_timeout_fails_closed(pg: Callable[..., Store]) -> None:
    """Another session holding the counter's row lock (a stuck node) makes the call fail
    closed after ``statement_timeout`` instead of hanging; nothing is half-applied."""
    store = pg("&statement_timeout=0.3")
    assert store.incr_bounded("c", 5).value == 1
    schema = pg.schema  # type: ignore[attr-defined]
    # lock the row from a second store session in the same database
    holder = pg()
    done = threading.Event()
    locked = threading.Event()

    def hold(conn: object) -> None:
        with conn.transaction():  # type: ignore[attr-defined]
            conn.execute(  # type: ignore[attr-defined]
                f"SELECT 1 FROM {schema}.ebank_counters WHERE key = 'c' FOR UPDATE"
            )
            locked.set()
            done.wait(10)

    t = threading.Thread(target=holder._with_connection, args=(hold,))  # type: ignore[attr-defined]
    t.start()
    try:
        assert locked.wait(10)
        with pytest.raises(StoreUnavailable, match="QueryCanceled"):
            store.incr_bounded("c", 5)
    finally:
        done.set()
        t.join()
    assert store.get_counter("c") == 1
    assert store.incr_bounded("c", 5).value == 2


def test_edited_tables_are_integrity_errors(pg: Callable[..., Store]) -> None:
    """Attack: a log head row deleted by hand would make the next append reuse
    sequence number 1; instead the append is refused and the log is unchanged."""
    store = pg()
    schema = pg.schema  # type: ignore[attr-defined]
    store.append("audit", b"r1")
    store.append("audit", b"r2")
    run = store._with_connection  # type: ignore[attr-defined]
    run(lambda conn: conn.execute(f"DELETE FROM {schema}.ebank_log_heads"))
    with pytest.raises(StoreIntegrityError):
        store.append("audit", b"r3")
    assert [r.data for r in store.read_log("audit")] == [b"r1", b"r2"]
    run(lambda conn: conn.execute(f"UPDATE {schema}.ebank_meta SET value = '99'"))
    with pytest.raises(ConfigurationError, match="newer"):
        pg()


def test_small_pool_shared_by_many_threads(pg: Callable[..., Store]) -> None:
    store = pg("&pool_size=2")
    results: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(10):
            seq = store.append("log", b"x")
            with lock:
                results.append(seq)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(1, 61))


def test_audit_verify_takes_a_postgresql_url(postgres_url: str) -> None:
    from ebank_auth.audit import AuditLog, HmacSm3Key
    from ebank_auth.cli import cli

    key = bytes(range(32))
    url = f"{postgres_url}?schema={_schema()}"
    store = open_store(url)
    log = AuditLog(store, HmacSm3Key(key), checkpoint_every=3)
    for i in range(5):
        log.record("login", user=f"用户{i}", outcome="allow")
    store.close()
    env = {"EBANK_AUTH_AUDIT_HMAC_KEY": key.hex()}
    result = CliRunner().invoke(cli, ["audit", "verify", url, "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] is True
    password = postgres_url.split(":")[2].split("@")[0]
    assert password not in result.output
    missing = f"{postgres_url}?schema={_schema()}"
    result = CliRunner().invoke(cli, ["audit", "verify", missing, "--json"], env=env)
    assert result.exit_code != 0
    assert "nothing was created" in result.output


def test_forked_child_never_uses_the_parents_connections(pg: Callable[..., Store]) -> None:
    """A pre-forking server (gunicorn) opens the store, then forks workers: a child that
    reused the parent's socket would interleave its protocol messages with the parent's,
    and closing it would end the parent's session.  Parent and child append at the same
    time, the child closes its store, and the parent's store keeps working."""
    import multiprocessing as mp

    store = pg()
    store.put_if_absent("k", b"parent")
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    go = ctx.Event()

    def child() -> None:
        try:
            go.wait(10)
            seqs = [store.append("log", b"child") for _ in range(100)]
            queue.put((store.get("k"), seqs))
            store.close()
        except BaseException as exc:  # report, do not hang the parent
            queue.put(repr(exc))

    proc = ctx.Process(target=child)
    proc.start()
    go.set()
    mine = [store.append("log", b"parent") for _ in range(100)]
    got = queue.get(timeout=60)
    proc.join(timeout=60)
    assert not isinstance(got, str), got
    value, theirs = got
    assert value == b"parent"
    assert sorted(mine + theirs) == list(range(1, 201))  # gap-free, no number twice
    assert store.get("k") == b"parent"  # the parent's pooled connection still works
    assert store.append("log", b"parent") == 201
