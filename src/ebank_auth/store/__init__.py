"""Atomic state stores (see base.py for the primitives).

``open_store(url)`` picks a backend from a URL:

* ``memory://`` — :class:`MemoryStore` (one process, lost on exit; tests)
* ``sqlite:///abs/path.db`` or ``sqlite://relative.db`` — :class:`SQLiteStore` (default)
  (``?synchronous=NORMAL`` and ``?busy_timeout=SECONDS`` may follow)
* ``redis://host:port/db`` (also ``rediss://``, ``unix://``) — :class:`RedisStore`
  (``?prefix=NAME:`` may follow)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ebank_auth.errors import ConfigurationError
from ebank_auth.store.base import Clock, CounterResult, LogRecord, Store
from ebank_auth.store.memory import MemoryStore
from ebank_auth.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from ebank_auth.store.redis import RedisStore

__all__ = [
    "Clock",
    "CounterResult",
    "LogRecord",
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "Store",
    "open_store",
]


def __getattr__(name: str) -> Any:
    # RedisStore is imported lazily so that the redis package stays optional
    if name == "RedisStore":
        from ebank_auth.store.redis import RedisStore

        return RedisStore
    raise AttributeError(name)


def open_store(url: str, clock: Clock | None = None) -> Store:
    """Open the store named by ``url`` (see the module docstring for the forms)."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"store URL {url!r} is not understood: use memory://, sqlite:///path.db or "
            "redis://host:port/db"
        )
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme == "memory":
        return MemoryStore(clock=clock)
    if scheme == "sqlite":
        path, _, query = rest.partition("?")
        if not path:
            raise ConfigurationError("sqlite store URL has no path: use sqlite:///abs/path.db")
        opts = dict(parse_qsl(query))
        unknown = set(opts) - {"synchronous", "busy_timeout"}
        if unknown:
            names = ", ".join(sorted(unknown))
            raise ConfigurationError(f"unknown sqlite store option(s): {names}")
        try:
            busy = float(opts.get("busy_timeout", "30"))
        except ValueError as exc:
            raise ConfigurationError("busy_timeout must be a number of seconds") from exc
        return SQLiteStore(
            path, clock=clock, busy_timeout=busy, synchronous=opts.get("synchronous", "FULL")
        )
    if scheme in ("redis", "rediss", "unix"):
        from ebank_auth.store.redis import RedisStore

        parts = urlsplit(url)
        opts = dict(parse_qsl(parts.query))
        prefix = opts.pop("prefix", "ebank:")
        clean = urlunsplit(parts._replace(query=urlencode(opts)))
        return RedisStore(clean, clock=clock, prefix=prefix)
    raise ConfigurationError(
        f"unknown store scheme {scheme!r}: use memory://, sqlite:// or redis://"
    )
