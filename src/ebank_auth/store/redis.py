"""Redis store: atomic primitives as Lua scripts, for several application nodes.

Each primitive is one Lua script, which Redis runs without interleaving any other
command, so read-check-write is atomic across every client of the server.  Time is
never taken from the Redis server: the store's ``clock`` value is passed to each
script as an argument and the logical expiry time is kept in the key's hash, so
every backend decides expiry identically (and tests can inject a clock).  A real
Redis TTL (logical TTL + ``grace``) is also set, only so that dead keys get
cleaned up.

Key layout under ``prefix`` (default ``ebank:``)::

    <prefix>v:<key>   hash {v: value, e: expires_at or absent}
    <prefix>c:<key>   hash {n: count, e: expires_at or absent}
    <prefix>l:<log>   list of records; a record's seq is its 1-based index

Any connection or server error is raised as
:class:`~ebank_auth.errors.StoreUnavailable` (callers fail closed); a key of the
wrong Redis type or a field a script cannot read as a number (edited outside
ebank-auth) as :class:`~ebank_auth.errors.StoreIntegrityError`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

from ebank_auth.errors import ConfigurationError, StoreIntegrityError, StoreUnavailable
from ebank_auth.store.base import Clock, CounterResult, LogRecord, Store

__all__ = ["RedisStore"]

_PAGE = 512

# server replies that mean "the data was edited", not "the server is down"
_EDITED = ("WRONGTYPE", "attempt to compare", "attempt to perform arithmetic")

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

# KEYS: counter; ARGV[1] = now, ARGV[2] = limit, ARGV[3] = expires_at or "", ARGV[4] = ttl ms or ""
_INCR = (
    _INCR_FN
    + """
local ok, n, e = incr_bounded(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4])
return {ok, n, e}
"""
)

_GET_COUNTER = """
local n = redis.call('HGET', KEYS[1], 'n')
local e = redis.call('HGET', KEYS[1], 'e')
if not n or (e and tonumber(e) <= tonumber(ARGV[1])) then
  return 0
end
return tonumber(n)
"""

# helper prelude: current live value of KEYS[1] or false
_CURRENT = """
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

_GET = (
    _CURRENT
    + """
local v = current(tonumber(ARGV[1]))
return v
"""
)

# ARGV: now, value, expires_at or "", redis ttl ms
_PUT_IF_ABSENT = (
    _CURRENT
    + """
if current(tonumber(ARGV[1])) then
  return 0
end
store(ARGV[2], ARGV[3], ARGV[4])
return 1
"""
)

# ARGV: now, has_expected(0/1), expected, has_new(0/1), new, expires_at or "", ms
_CAS = (
    _CURRENT
    + """
local cur = current(tonumber(ARGV[1]))
if ARGV[2] == '1' then
  if not cur or cur ~= ARGV[3] then return 0 end
else
  if cur then return 0 end
end
if ARGV[4] == '1' then
  store(ARGV[5], ARGV[6], ARGV[7])
else
  redis.call('DEL', KEYS[1])
end
return 1
"""
)

_CONSUME = (
    _CURRENT
    + """
local v = current(tonumber(ARGV[1]))
redis.call('DEL', KEYS[1])
return v
"""
)

# KEYS: value, counter; ARGV: now, limit, expires_at or "", ms
_GET_AND_INCR = (
    _CURRENT
    + _INCR_FN
    + """
local v = current(tonumber(ARGV[1]))
if not v then
  return {false, 0, 0, ''}
end
local ok, n, e = incr_bounded(KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4])
return {v, ok, n, e}
"""
)

_PURGE = """
local removed = 0
local cursor = '0'
local now = tonumber(ARGV[1])
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


def _num(x: float) -> str:
    return repr(float(x))


class RedisStore(Store):
    """Atomic store primitives on a Redis server.

    ``url``: ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``).
    ``prefix``: namespace for every key, so several stores can share one database.
    ``grace``: seconds a logically expired key may linger before Redis removes it.
    """

    def __init__(
        self,
        url: str,
        clock: Clock | None = None,
        *,
        prefix: str = "ebank:",
        socket_timeout: float = 5.0,
        grace: float = 3600.0,
    ) -> None:
        super().__init__(clock)
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
        try:
            self._client: Any = redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                decode_responses=False,
                health_check_interval=30,
            )
        except (ValueError, redis.RedisError) as exc:
            raise ConfigurationError(
                f"the Redis URL {self._safe_url()} is not valid ({exc}): use "
                "redis://[:password@]host:port/db"
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

    # -- helpers ------------------------------------------------------------------------
    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
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
        except self._redis_mod.RedisError as exc:
            raise StoreUnavailable(
                f"Redis store at {self._safe_url()} failed ({type(exc).__name__}): refused; "
                "check that redis-server is running and reachable"
            ) from exc
        except OSError as exc:  # pragma: no cover - redis-py normally wraps these
            raise StoreUnavailable(f"Redis store at {self._safe_url()} unreachable: {exc}") from exc

    def _safe_url(self) -> str:
        # never print a password embedded in the URL
        if "@" in self.url:
            scheme, _, rest = self.url.partition("://")
            return f"{scheme}://***@{rest.split('@', 1)[1]}"
        return self.url

    def _ms(self, ttl: float) -> str:
        return str(max(1, math.ceil((ttl + self.grace) * 1000)))

    def _exp(self, ttl: float | None, now: float) -> tuple[str, str]:
        if ttl is None:
            return "", ""
        return _num(now + ttl), self._ms(ttl)

    # -- counters -----------------------------------------------------------------
    def incr_bounded(self, key: str, limit: int, ttl: float | None = None) -> CounterResult:
        now = self.clock()
        exp, ms = self._exp(ttl, now)
        allowed, value, e = self._call(
            self._s_incr, keys=[self.prefix + "c:" + key], args=[_num(now), int(limit), exp, ms]
        )
        expires_at = float(e) if e not in (b"", "", None) else None
        return CounterResult(bool(allowed), int(value), expires_at)

    def get_counter(self, key: str) -> int:
        value = self._call(
            self._s_get_counter, keys=[self.prefix + "c:" + key], args=[_num(self.clock())]
        )
        return int(value)

    def reset_counter(self, key: str) -> None:
        self._call(self._client.delete, self.prefix + "c:" + key)

    # -- values ---------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        value = self._call(self._s_get, keys=[self.prefix + "v:" + key], args=[_num(self.clock())])
        return bytes(value) if value is not None else None

    def put_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        now = self.clock()
        exp, ms = self._exp(ttl, now)
        done = self._call(
            self._s_put, keys=[self.prefix + "v:" + key], args=[_num(now), bytes(value), exp, ms]
        )
        return bool(done)

    def compare_and_set(
        self, key: str, expected: bytes | None, new: bytes | None, ttl: float | None = None
    ) -> bool:
        now = self.clock()
        exp, ms = self._exp(ttl, now)
        args = [
            _num(now),
            "0" if expected is None else "1",
            b"" if expected is None else bytes(expected),
            "0" if new is None else "1",
            b"" if new is None else bytes(new),
            exp,
            ms or "1",
        ]
        done = self._call(self._s_cas, keys=[self.prefix + "v:" + key], args=args)
        return bool(done)

    def consume(self, key: str) -> bytes | None:
        value = self._call(
            self._s_consume, keys=[self.prefix + "v:" + key], args=[_num(self.clock())]
        )
        return bytes(value) if value is not None else None

    def delete(self, key: str) -> None:
        self._call(self._client.delete, self.prefix + "v:" + key)

    def get_and_incr(
        self, key: str, counter: str, limit: int, ttl: float | None = None
    ) -> tuple[bytes | None, CounterResult]:
        now = self.clock()
        exp, ms = self._exp(ttl, now)
        value, allowed, n, e = self._call(
            self._s_get_incr,
            keys=[self.prefix + "v:" + key, self.prefix + "c:" + counter],
            args=[_num(now), int(limit), exp, ms],
        )
        if value is None:
            return None, CounterResult(False, 0, None)
        expires_at = float(e) if e not in (b"", "", None) else None
        return bytes(value), CounterResult(bool(allowed), int(n), expires_at)

    # -- append-only logs -------------------------------------------------------------
    def append(self, log: str, data: bytes) -> int:
        return int(self._call(self._client.rpush, self.prefix + "l:" + log, bytes(data)))

    def read_log(self, log: str, start: int = 1) -> Iterator[LogRecord]:
        name = self.prefix + "l:" + log
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
        pattern = self.prefix.replace("*", "\\*") + "[vc]:*"
        return int(self._call(self._s_purge, keys=[], args=[_num(self.clock()), pattern]))

    def ping(self) -> None:
        """Raise StoreUnavailable unless the server answers."""
        self._call(self._client.ping)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()

    def __repr__(self) -> str:
        return f"RedisStore({self._safe_url()!r}, prefix={self.prefix!r})"
