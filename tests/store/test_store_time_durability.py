"""Issue 11 items 7 and 8: one time source per store, and Redis durability checked at
connect.  Real SQLite files and real redis-server processes."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from ebank_auth.errors import ConfigurationError, StoreUnavailable
from ebank_auth.store import open_store
from plugins.redis_server import _binary, start_redis_server
from plugins.store_backends import FakeClock


def test_sqlite_refuses_a_clock_behind_what_it_has_seen(tmp_path: Path) -> None:
    """Attack: a process whose wall clock was stepped back revived expired state (codes,
    cooldowns, lockouts) in a shared SQLite file.  The store keeps the latest time any
    process has written with and refuses a clock more than ``max_clock_skew`` behind."""
    url = f"sqlite://{tmp_path / 's.db'}"
    ahead = open_store(url, clock=FakeClock(1_700_000_100.0))
    behind = open_store(url, clock=FakeClock(1_700_000_000.0))
    ahead.put_if_absent("cooldown", b"1", ttl=60)
    with pytest.raises(StoreUnavailable, match="clock"):
        behind.put_if_absent("cooldown", b"1", ttl=60)
    with pytest.raises(StoreUnavailable, match="clock"):
        behind.get_and_incr("cooldown", "tries", 3)
    # within the allowed skew both work
    near = open_store(url, clock=FakeClock(1_700_000_099.0))
    assert near.incr_bounded("c", 5).allowed
    for store in (ahead, behind, near):
        store.close()


@pytest.fixture
def volatile_redis() -> object:
    binary = _binary()
    if binary is None:
        pytest.skip("redis-server is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="ebank-redis-volatile-"))
    proc, port = start_redis_server(
        workdir, binary, extra_args=["--appendonly", "no", "--maxmemory-policy", "allkeys-lru"]
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(workdir, ignore_errors=True)


def test_redis_without_persistence_or_with_eviction_is_refused(volatile_redis: str) -> None:
    """Attack: a Redis restart without persistence unlocked locked users and wiped
    authenticator enrolments; an evicting maxmemory-policy dropped last-counter keys and
    re-enabled replay.  Such a server is refused at connect, naming the setting."""
    store = open_store(volatile_redis)
    with pytest.raises(ConfigurationError, match="appendonly"):
        store.incr_bounded("lockout:alice", 5)
    store.close()
    store = open_store(volatile_redis + "?allow_nonpersistent=1")
    with pytest.raises(ConfigurationError, match="maxmemory-policy"):
        store.get("x")
    store.close()


def test_redis_risks_can_be_allowed_explicitly_and_are_logged(
    volatile_redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        store = open_store(volatile_redis + "?allow_nonpersistent=1&allow_eviction=1")
        assert store.incr_bounded("k", 3).allowed
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "appendonly" in text and "maxmemory-policy" in text
    store.close()


def test_the_durable_test_server_is_accepted(redis_url: str) -> None:
    store = open_store(redis_url + f"?prefix=dur{int(time.time() * 1000)}:")
    assert store.incr_bounded("k", 3).allowed
    assert abs(store.clock() - time.time()) < 60  # the server's clock
    store.close()
