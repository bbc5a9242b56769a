"""In-process store: a dict guarded by one lock.

For unit tests and single-process tools only: state is lost when the process exits
and is not shared between processes.  Every primitive runs entirely under the lock,
so it is atomic with respect to every other thread of this process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from ebank_auth.store.base import (
    Clock,
    CounterResult,
    LogRecord,
    Store,
    batch_items,
    log_conflict,
    value_conflict,
)

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    """Atomic store primitives over Python dicts.

    ``_values`` maps key -> (value, expires_at); ``_counters`` maps key ->
    (count, expires_at); ``_logs`` maps log name -> list of records.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__(clock)
        self._lock = threading.Lock()
        self._values: dict[str, tuple[bytes, float | None]] = {}
        self._counters: dict[str, tuple[int, float | None]] = {}
        self._logs: dict[str, list[bytes]] = {}

    @staticmethod
    def _live(expires_at: float | None, now: float) -> bool:
        return expires_at is None or expires_at > now

    def _expiry(self, ttl: float | None, now: float) -> float | None:
        return None if ttl is None else now + ttl

    # -- counters -----------------------------------------------------------------
    def incr_bounded(self, key: str, limit: int, ttl: float | None = None) -> CounterResult:
        with self._lock:
            return self._incr_locked(key, limit, ttl, self.clock())

    def get_and_incr(
        self, key: str, counter: str, limit: int, ttl: float | None = None
    ) -> tuple[bytes | None, CounterResult]:
        with self._lock:
            now = self.clock()
            value = self._get_locked(key, now)
            if value is None:
                return None, CounterResult(False, 0, None)
            return value, self._incr_locked(counter, limit, ttl, now)

    def _incr_locked(self, key: str, limit: int, ttl: float | None, now: float) -> CounterResult:
        entry = self._counters.get(key)
        if entry is None or not self._live(entry[1], now):
            if limit <= 0:
                return CounterResult(False, 0, None)
            value, expires_at = 0, self._expiry(ttl, now)
        else:
            value, expires_at = entry
        if value >= limit:
            return CounterResult(False, value, expires_at)
        value += 1
        self._counters[key] = (value, expires_at)
        return CounterResult(True, value, expires_at)

    def get_counter(self, key: str) -> int:
        with self._lock:
            entry = self._counters.get(key)
            if entry is None or not self._live(entry[1], self.clock()):
                return 0
            return entry[0]

    def reset_counter(self, key: str) -> None:
        with self._lock:
            self._counters.pop(key, None)

    # -- values ---------------------------------------------------------------------
    def _get_locked(self, key: str, now: float) -> bytes | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        if not self._live(entry[1], now):
            del self._values[key]
            return None
        return entry[0]

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._get_locked(key, self.clock())

    def put_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        with self._lock:
            now = self.clock()
            if self._get_locked(key, now) is not None:
                return False
            self._values[key] = (bytes(value), self._expiry(ttl, now))
            return True

    def compare_and_set(
        self, key: str, expected: bytes | None, new: bytes | None, ttl: float | None = None
    ) -> bool:
        with self._lock:
            now = self.clock()
            current = self._get_locked(key, now)
            if current != expected:
                return False
            if new is None:
                self._values.pop(key, None)
            else:
                self._values[key] = (bytes(new), self._expiry(ttl, now))
            return True

    def consume(self, key: str) -> bytes | None:
        with self._lock:
            value = self._get_locked(key, self.clock())
            if value is not None:
                del self._values[key]
            return value

    def delete(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)

    # -- append-only logs -------------------------------------------------------------
    def append(self, log: str, data: bytes) -> int:
        with self._lock:
            records = self._logs.setdefault(log, [])
            records.append(bytes(data))
            return len(records)

    def append_many(
        self,
        log: str,
        items: Sequence[bytes],
        *,
        after: int | None = None,
        swap: tuple[str, bytes | None, bytes] | None = None,
    ) -> int:
        batch = batch_items(items)
        with self._lock:
            now = self.clock()
            records = self._logs.get(log, [])
            if after is not None and len(records) != after:
                raise log_conflict(log, after, len(records))
            if swap is not None and self._get_locked(swap[0], now) != swap[1]:
                raise value_conflict(swap[0])
            first = len(records) + 1
            self._logs.setdefault(log, records).extend(batch)
            if swap is not None:
                self._values[swap[0]] = (bytes(swap[2]), None)
            return first

    def read_log(self, log: str, start: int = 1) -> Iterator[LogRecord]:
        with self._lock:
            records = list(self._logs.get(log, ()))
        first = max(start, 1)
        for seq in range(first, len(records) + 1):
            yield LogRecord(seq, records[seq - 1])

    def purge_expired(self) -> int:
        """Drop expired values and counters; returns how many entries were removed."""
        with self._lock:
            now = self.clock()
            dead_v = [k for k, (_, e) in self._values.items() if not self._live(e, now)]
            dead_c = [k for k, (_, e) in self._counters.items() if not self._live(e, now)]
            for k in dead_v:
                del self._values[k]
            for k in dead_c:
                del self._counters[k]
            return len(dead_v) + len(dead_c)
