"""Shared test helpers for anything built on ``ebank_auth.store``.

* :class:`FakeClock` — a settable clock to inject into stores and services.
* fixture ``store_backend`` — parametrised over ``memory``, ``sqlite`` and ``redis``;
  yields a :class:`StoreFactory` that opens stores of that backend sharing one
  database (one temp SQLite file / one Redis key prefix), all closed at teardown.
  SQLite and Redis stores are opened through ``open_store(url)``, so every contract
  test also exercises the URL scheme registry.
  The redis case uses the real server from :mod:`plugins.redis_server` (skipped
  when missing unless EBANK_AUTH_REQUIRE_SERVICES=1).

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

from ebank_auth.store import MemoryStore, SQLiteStore, Store, open_store

__all__ = ["BACKENDS", "FakeClock", "StoreFactory", "store_backend"]

BACKENDS = ("memory", "sqlite", "redis")


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

    def __init__(self, kind: str, tmp: Path, redis_url: str | None) -> None:
        self.kind = kind
        self.db_path = tmp / "store.db"
        self.redis_url = redis_url
        self.prefix = f"t{uuid.uuid4().hex[:12]}:"
        self._opened: list[Store] = []
        self._memory: MemoryStore | None = None

    @property
    def url(self) -> str:
        """``open_store`` URL of the shared state (not meaningful for memory)."""
        if self.kind == "memory":
            return "memory://"
        if self.kind == "sqlite":
            return f"sqlite://{self.db_path}"
        return f"{self.redis_url}?prefix={self.prefix}"

    def __call__(self, clock: FakeClock | None = None) -> Store:
        store: Store
        if self.kind == "memory":
            if self._memory is None:
                self._memory = MemoryStore(clock=clock)
            elif clock is not None:
                self._memory.clock = clock
            return self._memory
        store = open_store(self.url, clock=clock)
        assert isinstance(store, SQLiteStore if self.kind == "sqlite" else _redis_store())
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
            url = f"{self.redis_url}?prefix=f{uuid.uuid4().hex}:"
        store = open_store(url, clock=clock)
        self._opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self._opened:
            store.close()
        self._opened.clear()


def _redis_store() -> type[Store]:
    from ebank_auth.store.redis import RedisStore

    return RedisStore


@pytest.fixture(params=BACKENDS)
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    kind = str(request.param)
    url = request.getfixturevalue("redis_url") if kind == "redis" else None
    factory = StoreFactory(kind, tmp_path, url)
    try:
        yield factory
    finally:
        factory.close_all()
