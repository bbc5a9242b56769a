"""Shared test helpers for anything built on ``ebank_auth.store``.

* :class:`FakeClock` — a settable clock to inject into stores and services.
* fixture ``store_backend`` — parametrised over :data:`BACKENDS` (``memory``,
  ``sqlite``, ``redis``: what the service suites run on); yields a
  :class:`StoreFactory` that opens stores of that backend sharing one state (one temp
  SQLite file / one Redis key prefix / one PostgreSQL schema), all closed at teardown.
  Every store but memory is opened through ``open_store(url)``, so every contract test
  also exercises the URL scheme registry.
* fixture ``every_store_backend`` — the same over :data:`STORE_BACKENDS`, which adds
  ``postgres`` and ``redis-cluster``; the store contract suite (tests/store) uses it
  under the name ``store_backend``, so each backend runs the whole contract without
  multiplying the service suites' time.

The server backends use the real servers of :mod:`plugins.redis_server`,
:mod:`plugins.redis_cluster` and :mod:`plugins.postgres_server` (skipped when missing
unless EBANK_AUTH_REQUIRE_SERVICES=1).

Use from an area conftest::

    from plugins.redis_server import redis_url  # noqa: F401
    from plugins.store_backends import store_backend  # noqa: F401
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ebank_auth.store import MemoryStore, Store, open_store

__all__ = [
    "BACKENDS",
    "SERVER_FIXTURES",
    "STORE_BACKENDS",
    "FakeClock",
    "StoreFactory",
    "every_store_backend",
    "store_backend",
]

BACKENDS = ("memory", "sqlite", "redis")
STORE_BACKENDS = (*BACKENDS, "postgres", "redis-cluster")

SERVER_FIXTURES = {
    "redis": "redis_url",
    "redis-cluster": "redis_cluster_url",
    "postgres": "postgres_url",
}
"""The session fixture giving the server URL of each server backend."""


class FakeClock:
    """A clock the test moves by hand; thread-safe; starts at a fixed epoch second."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def set(self, now: float) -> None:
        with self._lock:
            self._now = float(now)


class StoreFactory:
    """Opens stores of one backend that share their state (except memory, which
    returns the same instance each time)."""

    def __init__(self, kind: str, tmp: Path, server_url: str | None) -> None:
        self.kind = kind
        self.db_path = tmp / "store.db"
        self.server_url = server_url
        self.prefix = f"t{uuid.uuid4().hex[:12]}:"
        self.schema = f"t{uuid.uuid4().hex[:12]}"
        self._opened: list[Store] = []
        self._memory: MemoryStore | None = None

    @property
    def url(self) -> str:
        """``open_store`` URL of the shared state (not meaningful for memory)."""
        if self.kind == "memory":
            return "memory://"
        if self.kind == "sqlite":
            return f"sqlite://{self.db_path}"
        return self._server_url(self.prefix, self.schema)

    def _server_url(self, prefix: str, schema: str) -> str:
        if self.kind == "postgres":
            return f"{self.server_url}?schema={schema}"
        return f"{self.server_url}?prefix={prefix}"

    def __call__(self, clock: FakeClock | None = None) -> Store:
        store: Store
        if self.kind == "memory":
            if self._memory is None:
                self._memory = MemoryStore(clock=clock)
            elif clock is not None:
                self._memory.clock = clock
            return self._memory
        store = open_store(self.url, clock=clock)
        assert type(store).__name__ == _CLASSES[self.kind]
        self._opened.append(store)
        return store

    def fresh(self, clock: FakeClock | None = None) -> Store:
        """A store on brand-new, empty state (for one hypothesis example)."""
        store: Store
        if self.kind == "memory":
            return MemoryStore(clock=clock)
        if self.kind == "sqlite":
            url = f"sqlite://{self.db_path.with_name(f'fresh-{uuid.uuid4().hex}.db')}"
        else:
            fresh = f"f{uuid.uuid4().hex[:16]}"
            url = self._server_url(f"{fresh}:", fresh)
        store = open_store(url, clock=clock)
        self._opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self._opened:
            store.close()
        self._opened.clear()


_CLASSES = {
    "sqlite": "SQLiteStore",
    "redis": "RedisStore",
    "redis-cluster": "RedisStore",
    "postgres": "PostgresStore",
}


def _factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    kind = str(request.param)
    fixture = SERVER_FIXTURES.get(kind)
    url = str(request.getfixturevalue(fixture)) if fixture else None
    factory = StoreFactory(kind, tmp_path, url)
    try:
        yield factory
    finally:
        factory.close_all()


@pytest.fixture(params=BACKENDS)
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A :class:`StoreFactory` for memory, SQLite and Redis."""
    yield from _factory(request, tmp_path)


@pytest.fixture(params=STORE_BACKENDS)
def every_store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A :class:`StoreFactory` for every backend, PostgreSQL and Redis Cluster included
    (needs the ``redis_cluster_url`` and ``postgres_url`` fixtures in scope)."""
    yield from _factory(request, tmp_path)
