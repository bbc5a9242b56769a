"""Redis store: atomic primitives as Lua scripts, for several application nodes.

Each primitive is one Lua script, which Redis runs without interleaving any other
command, so read-check-write is atomic across every client of the server.

Time has one source, the Redis server: each script reads ``TIME`` itself and computes
expiry from it, and the store's ``clock`` (which services use for issue times and
daily windows) asks the server too, so application nodes whose wall clocks disagree
or are stepped back decide every expiry identically.  A test may inject a ``clock``;
its value is then passed to the scripts instead (logged as a warning).  The logical
expiry time is kept in the key's hash; a real Redis TTL (logical TTL + ``grace``) is
also set, only so that dead keys get cleaned up.

Durability is checked at the first command: the server must run with
``appendonly yes`` (a restart without persistence would unlock locked users and
forget authenticator enrolments and last counters, re-enabling replay) and
``maxmemory-policy noeviction`` (eviction silently drops counters).  Otherwise the
store refuses with :class:`~ebank_auth.errors.ConfigurationError`, unless the risk is
accepted explicitly (``allow_nonpersistent=True`` / ``allow_eviction=True``, URL
``?allow_nonpersistent=1&allow_eviction=1``), which is logged as a warning.

Key layout under ``prefix`` (default ``ebank:``)::

    <prefix>v:<key>   hash {v: value, e: expires_at or absent}
    <prefix>c:<key>   hash {n: count, e: expires_at or absent}
    <prefix>l:<log>   list of records; a record's seq is its 1-based index

Redis Cluster (``cluster=True``, URL ``redis+cluster://host:port[,host:port…]``): the
``redis.cluster.RedisCluster`` client routes each command and script by its first key
and follows ``MOVED``/``ASK`` redirections (slot migrations, failovers) itself.  Every
key carries a hash tag, so each script touches one slot::

    <prefix>{<namespace>}v:<key>   (and c:, l: likewise)

where ``<namespace>`` is the store key's part before its first ``:`` (the service
namespace of :mod:`ebank_auth.store.keys`; ``_`` for a key without one), braces
escaped.  A service's keys share one slot (so the two keys of
:meth:`~RedisStore.get_and_incr` always do), and different services spread over the
masters.  ``get_and_incr`` with keys of two namespaces is refused with
:class:`~ebank_auth.errors.ConfigurationError` on a cluster (no service does this).
A ``prefix`` that itself holds a hash tag (``{bank1}:``) pins the whole store to one
slot.  ``purge_expired`` scans every master and expires key by key (one single-key
script each).  Each master's ``TIME`` decides the expiry of its keys and ``clock``
reads the master of the prefix's own slot: keep the masters on NTP.  The durability
check covers every node, replicas included.

Any connection or server error is raised as
:class:`~ebank_auth.errors.StoreUnavailable` (callers fail closed); a key of the
wrong Redis type or a field a script cannot read as a number (edited outside
ebank-auth) as :class:`~ebank_auth.errors.StoreIntegrityError`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import unquote

from ebank_auth.errors import ConfigurationError, StoreIntegrityError, StoreUnavailable
from ebank_auth.store.base import (
    Clock,
    CounterResult,
    LogRecord,
    Store,
    batch_items,
    log_conflict,
    value_conflict,
)

__all__ = ["RedisStore"]

_log = logging.getLogger(__name__)

_PAGE = 512

# server replies that mean "the data was edited", not "the server is down"
_EDITED = ("WRONGTYPE", "attempt to compare", "attempt to perform arithmetic")

# Lua prelude of every script: ``clock(a)`` is the server's TIME when the client passed
# '' (the default: one time source), else the injected clock value; ``expiry(now, a)``
# turns '+<ttl>' into an absolute time on that clock ('' = no expiry; an absolute value
# from an injected clock is kept as is).
_TIME = """
local function clock(a)
  if a == '' then
    local t = redis.call('TIME')
    return tonumber(t[1]) + tonumber(t[2]) / 1000000
  end
  return tonumber(a)
end
local function expiry(now, a)
  if a == '' then return '' end
  if string.sub(a, 1, 1) == '+' then
    return string.format('%.17g', now + tonumber(string.sub(a, 2)))
  end
  return a
end
"""

# Lua prelude shared by the counting scripts: one bounded increment of the counter hash
# ``key`` (fields n = count, e = absolute expiry or absent), atomic inside the script.
# Returns allowed (0/1), the count after the call, and the expiry ('' for none).
_INCR_FN = """
local function incr_bounded(key, now, limit, expires_at, ttl_ms)
  local n = redis.call('HGET', key, 'n')
  local e = redis.call('HGET', key, 'e')
  if n and e and tonumber(e) <= now then
    n = false
  end
  if not n then
    if limit <= 0 then
      return 0, 0, ''
    end
    redis.call('DEL', key)
    n = 0
    e = expires_at
    if e ~= '' then
      redis.call('HSET', key, 'e', e)
    end
  else
    n = tonumber(n)
    if not e then e = '' end
  end
  if n >= limit then
    return 0, n, e
  end
  n = n + 1
  redis.call('HSET', key, 'n', n)
  if e == '' then
    redis.call('PERSIST', key)
  elseif ttl_ms ~= '' and n == 1 then
    redis.call('PEXPIRE', key, ttl_ms)
  end
  return 1, n, e
end
"""

# KEYS: counter; ARGV[1] = now or "", ARGV[2] = limit, ARGV[3] = expiry or "", ARGV[4] = ttl ms or ""
_INCR = (
    _TIME
    + _INCR_FN
    + """
local now = clock(ARGV[1])
local ok, n, e = incr_bounded(KEYS[1], now, tonumber(ARGV[2]), expiry(now, ARGV[3]), ARGV[4])
return {ok, n, e}
"""
)

_GET_COUNTER = (
    _TIME
    + """
local n = redis.call('HGET', KEYS[1], 'n')
local e = redis.call('HGET', KEYS[1], 'e')
if not n or (e and tonumber(e) <= clock(ARGV[1])) then
  return 0
end
return tonumber(n)
"""
)

# helper prelude: current live value of KEYS[1] or false
_CURRENT = (
    _TIME
    + """
local function current(now)
  local v = redis.call('HGET', KEYS[1], 'v')
  if not v then return false end
  local e = redis.call('HGET', KEYS[1], 'e')
  if e and tonumber(e) <= now then
    redis.call('DEL', KEYS[1])
    return false
  end
  return v
end
local function store(v, e, ms)
  redis.call('DEL', KEYS[1])
  if e == '' then
    redis.call('HSET', KEYS[1], 'v', v)
  else
    redis.call('HSET', KEYS[1], 'v', v, 'e', e)
    redis.call('PEXPIRE', KEYS[1], ms)
  end
end
"""
)

_GET = (
    _CURRENT
    + """
local v = current(clock(ARGV[1]))
return v
"""
)

# ARGV: now or "", value, expiry or "", redis ttl ms
_PUT_IF_ABSENT = (
    _CURRENT
    + """
local now = clock(ARGV[1])
if current(now) then
  return 0
end
store(ARGV[2], expiry(now, ARGV[3]), ARGV[4])
return 1
"""
)

# ARGV: now or "", has_expected(0/1), expected, has_new(0/1), new, expiry or "", ms
_CAS = (
    _CURRENT
    + """
local now = clock(ARGV[1])
local cur = current(now)
if ARGV[2] == '1' then
  if not cur or cur ~= ARGV[3] then return 0 end
else
  if cur then return 0 end
end
if ARGV[4] == '1' then
  store(ARGV[5], expiry(now, ARGV[6]), ARGV[7])
else
  redis.call('DEL', KEYS[1])
end
return 1
"""
)

_CONSUME = (
    _CURRENT
    + """
local v = current(clock(ARGV[1]))
redis.call('DEL', KEYS[1])
return v
"""
)

# KEYS: value, counter; ARGV: now or "", limit, expiry or "", ms
_GET_AND_INCR = (
    _CURRENT
    + _INCR_FN
    + """
local now = clock(ARGV[1])
local v = current(now)
if not v then
  return {false, 0, 0, ''}
end
local ok, n, e = incr_bounded(KEYS[2], now, tonumber(ARGV[2]), expiry(now, ARGV[3]), ARGV[4])
return {v, ok, n, e}
"""
)

# KEYS: log list[, value]; ARGV: now or "", after or "", has_swap, has_expected, expected,
# new, items...  Every check (and every WRONGTYPE error) comes before the first write, so
# the script appends all or nothing.  Returns {1, length before} or {0 | -1, length}:
# the log's end or the value did not match.
_APPEND_MANY = (
    _TIME
    + """
local n = redis.call('LLEN', KEYS[1])
if ARGV[2] ~= '' and n ~= tonumber(ARGV[2]) then
  return {0, n}
end
if ARGV[3] == '1' then
  local cur = redis.call('HGET', KEYS[2], 'v')
  if cur then
    local e = redis.call('HGET', KEYS[2], 'e')
    if e and tonumber(e) <= clock(ARGV[1]) then cur = false end
  end
  if ARGV[4] == '1' then
    if not cur or cur ~= ARGV[5] then return {-1, n} end
  elseif cur then
    return {-1, n}
  end
end
for i = 7, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'v', ARGV[6])
end
return {1, n}
"""
)

# KEYS: one key; ARGV: now or "": remove it if it is an expired value or counter
_PURGE_ONE = (
    _TIME
    + """
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return 0 end
local e = redis.call('HGET', KEYS[1], 'e')
if e and tonumber(e) <= clock(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""
)

_PURGE = (
    _TIME
    + """
local removed = 0
local cursor = '0'
local now = clock(ARGV[1])
repeat
  local res = redis.call('SCAN', cursor, 'MATCH', ARGV[2], 'COUNT', 500)
  cursor = res[1]
  for _, k in ipairs(res[2]) do
    if redis.call('TYPE', k).ok == 'hash' then
      local e = redis.call('HGET', k, 'e')
      if e and tonumber(e) <= now then
        redis.call('DEL', k)
        removed = removed + 1
      end
    end
  end
until cursor == '0'
return removed
"""
)


def _num(x: float) -> str:
    return repr(float(x))


def _tag(key: str) -> str:
    """The Redis Cluster hash tag of a store key: its namespace (``_`` if none)."""
    namespace = key.split(":", 1)[0] if ":" in key else ""
    namespace = namespace.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return namespace or "_"


def _cluster_seeds(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """Seed nodes and connection options of a ``redis://h1:p1,h2:p2/0`` URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("redis", "rediss"):
        raise ValueError("a Redis Cluster URL looks like redis+cluster://host:port")
    netloc, _, tail = rest.partition("/")
    path, _, _query = tail.partition("?")
    if path not in ("", "0"):
        raise ValueError("a Redis Cluster has only database 0: drop the /db part")
    options: dict[str, Any] = {"ssl": scheme == "rediss"}
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        if user:
            options["username"] = unquote(user)
        if password:
            options["password"] = unquote(password)
    seeds = []
    for node in netloc.split(","):
        host, _, port = node.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"cluster node {node!r} is not host:port")
        seeds.append((host.strip("[]"), int(port)))
    return seeds, options


class RedisStore(Store):
    """Atomic store primitives on a Redis server.

    ``url``: ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``).
    ``prefix``: namespace for every key, so several stores can share one database.
    ``grace``: seconds a logically expired key may linger before Redis removes it.
    ``clock``: leave None in production (the server's ``TIME`` is the clock); a test
    may inject one.  ``allow_nonpersistent`` / ``allow_eviction``: accept a server
    without ``appendonly yes`` / with a ``maxmemory-policy`` other than ``noeviction``
    (logged as a warning; see the module docstring).  ``cluster``: ``url`` names
    one or more seed nodes of a Redis Cluster (``redis://h1:p1,h2:p2``); keys then
    carry hash tags (see the module docstring).
    """

    def __init__(
        self,
        url: str,
        clock: Clock | None = None,
        *,
        prefix: str = "ebank:",
        socket_timeout: float = 5.0,
        grace: float = 3600.0,
        allow_nonpersistent: bool = False,
        allow_eviction: bool = False,
        cluster: bool = False,
    ) -> None:
        super().__init__(clock)
        self._server_clock = clock is None
        if clock is None:
            self.clock = self._server_time
        else:
            _log.info(
                "Redis store uses an injected clock instead of the server's TIME (tests only)"
            )
        self.allow_nonpersistent = bool(allow_nonpersistent)
        self.allow_eviction = bool(allow_eviction)
        self._checked = False
        self._check_lock = threading.Lock()
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise ConfigurationError(
                "the Redis store needs the 'redis' package: pip install 'ebank-auth[redis]'"
            ) from exc
        self._redis_mod: Any = redis
        self.url = url
        self.prefix = prefix
        self.grace = float(grace)
        self.cluster = bool(cluster)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        try:
            if self.cluster:
                from redis import cluster as redis_cluster

                ClusterNode: Any = redis_cluster.ClusterNode
                RedisCluster: Any = redis_cluster.RedisCluster

                seeds, options = _cluster_seeds(url)
                self._errors = (redis.RedisError, redis.exceptions.RedisClusterException)
                self._cluster_mod: Any = RedisCluster
                self._client: Any = RedisCluster(
                    startup_nodes=[ClusterNode(h, p) for h, p in seeds],
                    socket_timeout=socket_timeout,
                    socket_connect_timeout=socket_timeout,
                    decode_responses=False,
                    health_check_interval=30,
                    **options,
                )
            else:
                self._client = redis.Redis.from_url(
                    url,
                    socket_timeout=socket_timeout,
                    socket_connect_timeout=socket_timeout,
                    decode_responses=False,
                    health_check_interval=30,
                )
        except (ValueError, redis.RedisError) as exc:
            raise ConfigurationError(
                f"the Redis URL {self._safe_url()} is not valid ({exc}): use "
                "redis://[:password@]host:port/db (redis+cluster://host:port for a cluster)"
            ) from None
        except redis.exceptions.RedisClusterException as exc:
            # the client asks the seed nodes for the slot map at once
            raise StoreUnavailable(
                f"Redis Cluster at {self._safe_url()} cannot be reached "
                f"({type(exc).__name__}): refused; check that the nodes are running"
            ) from None
        c = self._client
        self._s_incr = c.register_script(_INCR)
        self._s_get_counter = c.register_script(_GET_COUNTER)
        self._s_get = c.register_script(_GET)
        self._s_put = c.register_script(_PUT_IF_ABSENT)
        self._s_cas = c.register_script(_CAS)
        self._s_consume = c.register_script(_CONSUME)
        self._s_purge = c.register_script(_PURGE)
        self._s_get_incr = c.register_script(_GET_AND_INCR)
        self._s_purge_one = c.register_script(_PURGE_ONE)
        self._s_append_many = c.register_script(_APPEND_MANY)

    # -- helpers ------------------------------------------------------------------------
    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._checked:
            self._check_durability()
        return self._raw(fn, *args, **kwargs)

    def _raw(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._redis_mod.ResponseError as exc:
            if any(mark in str(exc) for mark in _EDITED):
                raise StoreIntegrityError(
                    f"Redis store at {self._safe_url()}: a key holds data of the wrong type "
                    "(edited outside ebank-auth): refused; restore it from a backup and "
                    "investigate"
                ) from None
            raise StoreUnavailable(
                f"Redis store at {self._safe_url()} failed ({type(exc).__name__}): refused; "
                "check that redis-server is running and reachable"
            ) from exc
        except self._errors as exc:
            raise StoreUnavailable(
                f"Redis store at {self._safe_url()} failed ({type(exc).__name__}): refused; "
                "check that redis-server is running and reachable"
            ) from exc
        except OSError as exc:  # pragma: no cover - redis-py normally wraps these
            raise StoreUnavailable(f"Redis store at {self._safe_url()} unreachable: {exc}") from exc

    def _config(self, name: str) -> str | None:
        """``CONFIG GET name`` or None when the server does not allow CONFIG.  On a
        cluster every node (replicas too) is asked; nodes that differ are all named."""
        try:
            if self.cluster:
                replies = self._client.config_get(name, target_nodes=self._cluster_mod.ALL_NODES)
            else:
                replies = {"": self._client.config_get(name)}
        except self._redis_mod.ResponseError:
            return None  # CONFIG renamed or disabled (managed services)
        except self._errors as exc:
            raise StoreUnavailable(
                f"Redis store at {self._safe_url()} failed ({type(exc).__name__}): refused; "
                "check that redis-server is running and reachable"
            ) from exc
        if self.cluster and isinstance(replies, dict) and name in replies:
            replies = {"": replies}  # one node answered for all
        values: dict[str, str | None] = {}
        for node, reply in replies.items() if isinstance(replies, dict) else ():
            value = reply.get(name, reply.get(name.encode())) if isinstance(reply, dict) else None
            if isinstance(value, bytes):
                value = value.decode("ascii", "replace")
            values[str(node)] = None if value is None else str(value).lower()
        distinct = set(values.values())
        if not values or None in distinct:
            return None
        if len(distinct) == 1:
            return distinct.pop()
        return ", ".join(f"{v} on {n}" for n, v in sorted(values.items()))

    def _check_durability(self) -> None:
        """Refuse (or, when allowed, warn about) a server that would lose or evict state."""
        with self._check_lock:
            if self._checked:
                return
            checks = (
                (
                    "appendonly",
                    "yes",
                    self.allow_nonpersistent,
                    "allow_nonpersistent",
                    "a restart would unlock locked users and forget authenticator enrolments "
                    "and last counters (replay); set 'appendonly yes' (appendfsync everysec "
                    "or always)",
                ),
                (
                    "maxmemory-policy",
                    "noeviction",
                    self.allow_eviction,
                    "allow_eviction",
                    "eviction silently drops counters and last-counter keys (replay); set "
                    "'maxmemory-policy noeviction'",
                ),
            )
            for name, wanted, allowed, option, why in checks:
                value = self._config(name)
                if value == wanted:
                    continue
                shown = "unknown (CONFIG is not available)" if value is None else value
                if allowed:
                    _log.warning(
                        "Redis store at %s: %s is %s, not %s: %s. Accepted because %s is set; "
                        "never in production",
                        self._safe_url(),
                        name,
                        shown,
                        wanted,
                        why,
                        option,
                    )
                    continue
                raise ConfigurationError(
                    f"Redis at {self._safe_url()} has {name} = {shown}, not {wanted}: {why}. "
                    f"To accept the risk (tests, demonstrations) pass {option}=True "
                    f"(URL ?{option}=1)"
                )
            self._checked = True

    def _server_time(self) -> float:
        """The Redis server's clock (``TIME``): the store's one time source."""
        if self.cluster:  # one master's clock: the one of the prefix's own slot
            node = self._client.get_node_from_key(self._key("v", ""))
            seconds, micros = self._call(self._client.time, target_nodes=node)
        else:
            seconds, micros = self._call(self._client.time)
        return float(seconds) + float(micros) / 1_000_000

    def _safe_url(self) -> str:
        # never print a password embedded in the URL
        scheme, _, rest = self.url.partition("://")
        if self.cluster:
            scheme = scheme + "+cluster"
        if "@" in rest:
            return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return f"{scheme}://{rest}"

    def _key(self, kind: str, key: str) -> str:
        """The Redis key of store key ``key`` of ``kind`` (``v``, ``c`` or ``l``)."""
        if self.cluster:
            return f"{self.prefix}{{{_tag(key)}}}{kind}:{key}"
        return f"{self.prefix}{kind}:{key}"

    def _ms(self, ttl: float) -> str:
        return str(max(1, math.ceil((ttl + self.grace) * 1000)))

    def _now(self) -> tuple[float, str]:
        """(client-side now, script argument): '' lets the script read the server's TIME."""
        if self._server_clock:
            return 0.0, ""
        now = self.clock()
        return now, _num(now)

    def _exp(self, ttl: float | None, now: float) -> tuple[str, str]:
        if ttl is None:
            return "", ""
        if self._server_clock:
            return "+" + _num(ttl), self._ms(ttl)
        return _num(now + ttl), self._ms(ttl)

    # -- counters -----------------------------------------------------------------
    def incr_bounded(self, key: str, limit: int, ttl: float | None = None) -> CounterResult:
        now, arg = self._now()
        exp, ms = self._exp(ttl, now)
        allowed, value, e = self._call(
            self._s_incr, keys=[self._key("c", key)], args=[arg, int(limit), exp, ms]
        )
        expires_at = float(e) if e not in (b"", "", None) else None
        return CounterResult(bool(allowed), int(value), expires_at)

    def get_counter(self, key: str) -> int:
        value = self._call(self._s_get_counter, keys=[self._key("c", key)], args=[self._now()[1]])
        return int(value)

    def reset_counter(self, key: str) -> None:
        self._call(self._client.delete, self._key("c", key))

    # -- values ---------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        value = self._call(self._s_get, keys=[self._key("v", key)], args=[self._now()[1]])
        return bytes(value) if value is not None else None

    def put_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        now, arg = self._now()
        exp, ms = self._exp(ttl, now)
        done = self._call(
            self._s_put, keys=[self._key("v", key)], args=[arg, bytes(value), exp, ms]
        )
        return bool(done)

    def compare_and_set(
        self, key: str, expected: bytes | None, new: bytes | None, ttl: float | None = None
    ) -> bool:
        now, arg = self._now()
        exp, ms = self._exp(ttl, now)
        args = [
            arg,
            "0" if expected is None else "1",
            b"" if expected is None else bytes(expected),
            "0" if new is None else "1",
            b"" if new is None else bytes(new),
            exp,
            ms or "1",
        ]
        done = self._call(self._s_cas, keys=[self._key("v", key)], args=args)
        return bool(done)

    def consume(self, key: str) -> bytes | None:
        value = self._call(self._s_consume, keys=[self._key("v", key)], args=[self._now()[1]])
        return bytes(value) if value is not None else None

    def delete(self, key: str) -> None:
        self._call(self._client.delete, self._key("v", key))

    def get_and_incr(
        self, key: str, counter: str, limit: int, ttl: float | None = None
    ) -> tuple[bytes | None, CounterResult]:
        if self.cluster and _tag(key) != _tag(counter):
            raise ConfigurationError(
                f"on Redis Cluster get_and_incr needs both keys in one namespace (one hash "
                f"slot): {key.split(':', 1)[0]!r} and {counter.split(':', 1)[0]!r} differ; "
                "build both with store_key(namespace, …)"
            )
        now, arg = self._now()
        exp, ms = self._exp(ttl, now)
        value, allowed, n, e = self._call(
            self._s_get_incr,
            keys=[self._key("v", key), self._key("c", counter)],
            args=[arg, int(limit), exp, ms],
        )
        if value is None:
            return None, CounterResult(False, 0, None)
        expires_at = float(e) if e not in (b"", "", None) else None
        return bytes(value), CounterResult(bool(allowed), int(n), expires_at)

    # -- append-only logs -------------------------------------------------------------
    def append(self, log: str, data: bytes) -> int:
        return int(self._call(self._client.rpush, self._key("l", log), bytes(data)))

    def append_many(
        self,
        log: str,
        items: Sequence[bytes],
        *,
        after: int | None = None,
        swap: tuple[str, bytes | None, bytes] | None = None,
    ) -> int:
        """One Lua script: the log's length and ``swap``'s value are read and the
        records pushed without any other command in between.  On a cluster the log
        and the ``swap`` key must share a namespace (one slot)."""
        batch = batch_items(items)
        keys = [self._key("l", log)]
        args: list[bytes | str] = [self._now()[1], "" if after is None else str(int(after))]
        if swap is None:
            args += ["0", "0", b"", b""]
        else:
            if self.cluster and _tag(swap[0]) != _tag(log):
                raise ConfigurationError(
                    f"on Redis Cluster append_many needs the log and the swapped value in one "
                    f"namespace (one hash slot): {log.split(':', 1)[0]!r} and "
                    f"{swap[0].split(':', 1)[0]!r} differ; build both with store_key(namespace, …)"
                )
            keys.append(self._key("v", swap[0]))
            expected = swap[1]
            args += [
                "1",
                "0" if expected is None else "1",
                b"" if expected is None else bytes(expected),
                bytes(swap[2]),
            ]
        status, length = self._call(self._s_append_many, keys=keys, args=[*args, *batch])
        if int(status) == 0:
            raise log_conflict(log, int(after or 0), int(length))
        if int(status) < 0:
            assert swap is not None
            raise value_conflict(swap[0])
        return int(length) + 1

    def read_log(self, log: str, start: int = 1) -> Iterator[LogRecord]:
        name = self._key("l", log)
        index = max(start, 1) - 1
        while True:
            chunk = self._call(self._client.lrange, name, index, index + _PAGE - 1)
            for i, data in enumerate(chunk):
                yield LogRecord(index + i + 1, bytes(data))
            if len(chunk) < _PAGE:
                return
            index += _PAGE

    # -- housekeeping -------------------------------------------------------------------
    def purge_expired(self) -> int:
        escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in self.prefix)
        if not self.cluster:
            pattern = escaped + "[vc]:*"
            return int(self._call(self._s_purge, keys=[], args=[self._now()[1], pattern]))
        # a script may touch only keys of its slot: scan every master, expire key by key
        removed = 0
        keys = self._call(lambda: list(self._client.scan_iter(match=escaped + "{*}[vc]:*")))
        for key in keys:
            removed += int(self._call(self._s_purge_one, keys=[key], args=[self._now()[1]]))
        return removed

    def ping(self) -> None:
        """Raise StoreUnavailable unless the server answers (and passes the durability
        check)."""
        self._call(self._client.ping)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()

    def __repr__(self) -> str:
        return f"RedisStore({self._safe_url()!r}, prefix={self.prefix!r})"
