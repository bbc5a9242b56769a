"""Atomic state stores (see base.py for the primitives) and how to open one by URL.

``open_store(url)`` picks a backend by the URL's scheme:

* ``memory:`` (or ``memory://``) — :class:`MemoryStore` (one process, lost on exit; tests)
* ``sqlite:///abs/path.db`` or ``sqlite://relative.db`` — :class:`SQLiteStore` (default)
  (``?synchronous=NORMAL`` and ``?busy_timeout=SECONDS`` may follow)
* ``redis://host:port/db`` (also ``rediss://`` for TLS, ``unix:///path/redis.sock``) —
  :class:`RedisStore` (``?prefix=NAME:`` may follow; default ``ebank:``; and, to accept
  a server without persistence or with eviction, ``allow_nonpersistent=1`` /
  ``allow_eviction=1``, logged as warnings)
* ``redis+cluster://host:port[,host:port…]`` (``rediss+cluster://`` for TLS) — a
  :class:`RedisStore` on a Redis Cluster: the same options; the nodes given are seeds,
  the client discovers the others and follows MOVED/ASK
* ``postgresql://user:password@host:port/dbname`` (also ``postgres://``) —
  :class:`PostgresStore` (``?schema=NAME``, ``?pool_size=N``, ``?statement_timeout=SECONDS``,
  ``?allow_nonpersistent=1`` may follow; other parameters such as ``sslmode`` go to libpq)

More backends plug in with :func:`register_store_scheme`;
:func:`store_schemes` lists what is registered.  Keys inside a store follow one scheme,
see :mod:`ebank_auth.store.keys`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ebank_auth.errors import ConfigurationError, EbankAuthError, StoreUnavailable
from ebank_auth.store.base import Clock, CounterResult, LogRecord, Store
from ebank_auth.store.keys import check_namespace, store_key
from ebank_auth.store.memory import MemoryStore
from ebank_auth.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from ebank_auth.store.postgres import PostgresStore
    from ebank_auth.store.redis import RedisStore

__all__ = [
    "Clock",
    "CounterResult",
    "LogRecord",
    "MemoryStore",
    "PostgresStore",
    "RedisStore",
    "SQLiteStore",
    "Store",
    "StoreOpener",
    "check_namespace",
    "open_store",
    "register_store_scheme",
    "store_key",
    "store_schemes",
]

StoreOpener = Callable[[str, "Clock | None"], Store]
"""Opens a store from its full URL and an optional clock (``time.time`` if None)."""


def __getattr__(name: str) -> Any:
    # RedisStore and PostgresStore are imported lazily so that the redis and psycopg
    # packages stay optional
    if name == "RedisStore":
        from ebank_auth.store.redis import RedisStore

        return RedisStore
    if name == "PostgresStore":
        from ebank_auth.store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(name)


# ------------------------------------------------------------------------- registry

_OPENERS: dict[str, StoreOpener] = {}
_REGISTRY_LOCK = threading.Lock()


def register_store_scheme(scheme: str, opener: StoreOpener, *, replace: bool = False) -> None:
    """Make :func:`open_store` open URLs of ``scheme`` (e.g. ``"postgresql"``) with
    ``opener(url, clock)``.

    Registering a scheme that is already known raises
    :class:`~ebank_auth.errors.ConfigurationError` unless ``replace`` is true, so a
    plug-in cannot silently take over another backend's URLs.
    """
    name = scheme.lower() if isinstance(scheme, str) else ""
    if not name or not name[0].isalpha() or not all(c.isalnum() or c in "+-." for c in name):
        raise ConfigurationError(
            f"store scheme {scheme!r} is not a URL scheme: use letters, digits, '+', '-' or '.'"
        )
    if not callable(opener):
        raise ConfigurationError(f"the opener for store scheme {name!r} must be callable")
    with _REGISTRY_LOCK:
        if name in _OPENERS and not replace:
            raise ConfigurationError(
                f"store scheme {name!r} is already registered: choose another scheme name "
                "or replace the existing backend explicitly"
            )
        _OPENERS[name] = opener


def store_schemes() -> tuple[str, ...]:
    """The URL schemes :func:`open_store` understands, sorted."""
    with _REGISTRY_LOCK:
        return tuple(sorted(_OPENERS))


def _known() -> str:
    return ", ".join(f"{s}:" for s in store_schemes())


def open_store(url: str, clock: Clock | None = None) -> Store:
    """Open the store named by ``url`` (see the module docstring for the forms).

    Raises :class:`~ebank_auth.errors.ConfigurationError` for a URL that is not
    understood (naming the known schemes) and
    :class:`~ebank_auth.errors.StoreUnavailable` if the backend cannot be reached.
    """
    scheme = ""
    if isinstance(url, str) and ":" in url:
        scheme = url.split(":", 1)[0].lower()
    with _REGISTRY_LOCK:
        opener = _OPENERS.get(scheme)
    if opener is None and not scheme:
        raise ConfigurationError(
            f"{url!r} is not a store URL: start it with one of {_known()} "
            "(e.g. sqlite:///var/lib/ebank/state.db)"
        )
    if opener is None:
        shown = url.split(":", 1)[0]
        raise ConfigurationError(
            f"store URL scheme {shown!r} is not known: use one of {_known()} "
            "(e.g. sqlite:///var/lib/ebank/state.db)"
        )
    try:
        return opener(url, clock)
    except EbankAuthError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"the {scheme}: store URL is not understood: {exc}") from None
    except OSError as exc:
        raise StoreUnavailable(f"the {scheme}: store cannot be opened: {exc}") from None


# ------------------------------------------------------------------------- built-ins


def _open_memory(url: str, clock: Clock | None) -> Store:
    rest = url.split(":", 1)[1]
    if rest not in ("", "//"):
        raise ConfigurationError("a memory store takes no path or options: use memory:")
    return MemoryStore(clock=clock)


def _open_sqlite(url: str, clock: Clock | None) -> Store:
    rest = url.split(":", 1)[1]
    if not rest.startswith("//"):
        raise ConfigurationError("a sqlite store URL looks like sqlite:///abs/path.db")
    path, _, query = rest[2:].partition("?")
    if not path:
        raise ConfigurationError("the sqlite store URL has no path: use sqlite:///abs/path.db")
    opts = dict(parse_qsl(query))
    unknown = set(opts) - {"synchronous", "busy_timeout"}
    if unknown:
        names = ", ".join(sorted(unknown))
        raise ConfigurationError(
            f"unknown sqlite store option(s): {names}; known: synchronous, busy_timeout"
        )
    try:
        busy = float(opts.get("busy_timeout", "30"))
    except ValueError:
        raise ConfigurationError("busy_timeout must be a number of seconds") from None
    return SQLiteStore(
        path, clock=clock, busy_timeout=busy, synchronous=opts.get("synchronous", "FULL")
    )


def _open_redis(url: str, clock: Clock | None) -> Store:
    from ebank_auth.store.redis import RedisStore

    scheme, rest = url.split(":", 1)
    cluster = scheme.lower().endswith("+cluster")
    if cluster:  # redis+cluster://h1:p1,h2:p2 -> the client's redis://h1:p1,h2:p2
        url = scheme[: -len("+cluster")] + ":" + rest
        base, _, query = url.partition("?")
        parts = urlsplit("redis://x?" + query)
        opts = dict(parse_qsl(parts.query))
    else:
        parts = urlsplit(url)
        opts = dict(parse_qsl(parts.query))
    prefix = opts.pop("prefix", "ebank:")
    allowed = {}
    for name in ("allow_nonpersistent", "allow_eviction"):
        raw = opts.pop(name, "0").lower()
        if raw not in ("0", "1", "true", "false", "yes", "no"):
            raise ConfigurationError(f"the redis store option {name} takes 1 or 0")
        allowed[name] = raw in ("1", "true", "yes")
    if cluster:
        if opts:
            names = ", ".join(sorted(opts))
            raise ConfigurationError(
                f"unknown redis+cluster store option(s): {names}; known: prefix, "
                "allow_nonpersistent, allow_eviction"
            )
        return RedisStore(base, clock=clock, prefix=prefix, cluster=True, **allowed)
    clean = urlunsplit(parts._replace(query=urlencode(opts)))
    return RedisStore(clean, clock=clock, prefix=prefix, **allowed)


def _open_postgres(url: str, clock: Clock | None) -> Store:
    from ebank_auth.store.postgres import open_postgres_url

    return open_postgres_url(url, clock)


register_store_scheme("memory", _open_memory)
register_store_scheme("sqlite", _open_sqlite)
for _scheme in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"):
    register_store_scheme(_scheme, _open_redis)
for _scheme in ("postgresql", "postgres"):
    register_store_scheme(_scheme, _open_postgres)
del _scheme
