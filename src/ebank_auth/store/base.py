"""The atomic state primitives every security counter in ebank_auth is built on.

Each method is a single atomic step on the backend (one SQLite ``BEGIN IMMEDIATE``
transaction, one Redis Lua script, one locked section in memory): no caller ever
does read-modify-write itself.  A backend that cannot be reached raises
:class:`ebank_auth.errors.StoreUnavailable`; callers treat that as *deny*.

Keys are ``str``; values are ``bytes``.  ``ttl`` is in seconds; ``None`` means no
expiry.  Time comes from the store's ``clock``, one time source per store: the Redis
server's ``TIME`` for a Redis store; for SQLite the process clock, refused when it is
more than :data:`MAX_CLOCK_SKEW` behind the latest time the database has seen; a test
may inject a clock.  Expiry is decided in one place.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ebank_auth.errors import ConflictError, InvalidInput

Clock = Callable[[], float]

MAX_CLOCK_SKEW = 2.0
"""Seconds a process clock may be behind the time a store (or a stored record) has
already seen before the operation is refused rather than run on a stepped-back clock."""


MAX_BATCH = 10_000
"""Most records one :meth:`Store.append_many` call takes."""


def batch_items(items: Sequence[bytes]) -> list[bytes]:
    """``items`` of :meth:`Store.append_many` as a list of bytes, checked: 1 to
    :data:`MAX_BATCH` of them."""
    if isinstance(items, (bytes, bytearray, memoryview, str)):
        raise InvalidInput("append_many takes a sequence of records, not one record")
    out = [bytes(item) for item in items]
    if not 1 <= len(out) <= MAX_BATCH:
        raise InvalidInput(f"append_many takes 1 to {MAX_BATCH} records, not {len(out)}")
    return out


def log_conflict(log: str, after: int, last: int) -> ConflictError:
    """The error of :meth:`Store.append_many` when ``log`` does not end at ``after``."""
    return ConflictError(
        f"log {log!r} ends at record {last}, not {after}: another writer appended first; "
        "nothing was written, read the log again and retry"
    )


def value_conflict(key: str) -> ConflictError:
    """The error of :meth:`Store.append_many` when ``swap``'s value is not the expected one."""
    return ConflictError(
        f"value {key!r} changed since it was read: another writer was first; nothing was "
        "written, read it again and retry"
    )


@dataclass(frozen=True)
class CounterResult:
    """Outcome of :meth:`Store.incr_bounded`."""

    allowed: bool  # True if the increment happened (value was below the limit)
    value: int  # the counter's value after the call
    expires_at: float | None  # absolute expiry time of the counter, if any


@dataclass(frozen=True)
class LogRecord:
    seq: int  # 1-based, gap-free, assigned by the store
    data: bytes


class Store(ABC):
    """Abstract atomic store.  Implementations: memory, sqlite (default), redis."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or time.time

    # -- counters -----------------------------------------------------------------
    @abstractmethod
    def incr_bounded(self, key: str, limit: int, ttl: float | None = None) -> CounterResult:
        """Atomically add 1 to counter ``key`` unless it already reached ``limit``.

        A missing or expired counter starts at 0; its expiry is set to ``now + ttl``
        when it is (re)created and is not extended by later increments.
        """

    @abstractmethod
    def get_counter(self, key: str) -> int:
        """Current value of a counter (0 if missing or expired)."""

    @abstractmethod
    def reset_counter(self, key: str) -> None:
        """Remove a counter."""

    # -- values ---------------------------------------------------------------------
    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """Value of ``key``, or None if missing or expired."""

    @abstractmethod
    def put_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` is missing or expired; True if stored."""

    @abstractmethod
    def compare_and_set(
        self, key: str, expected: bytes | None, new: bytes | None, ttl: float | None = None
    ) -> bool:
        """Set ``key`` to ``new`` (delete if None) only if its current value equals
        ``expected`` (None = missing/expired).  True if the swap happened."""

    @abstractmethod
    def consume(self, key: str) -> bytes | None:
        """Atomically read and delete ``key`` (consume-once).  None if missing/expired."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""

    # -- append-only logs -------------------------------------------------------------
    @abstractmethod
    def append(self, log: str, data: bytes) -> int:
        """Append ``data`` to ``log``; returns the record's sequence number (1, 2, …)."""

    @abstractmethod
    def append_many(
        self,
        log: str,
        items: Sequence[bytes],
        *,
        after: int | None = None,
        swap: tuple[str, bytes | None, bytes] | None = None,
    ) -> int:
        """Append every item of ``items`` (at least one) to ``log`` in one atomic step,
        all or none, in order; returns the first one's sequence number.

        ``after``: append only if the log's last record is number ``after`` (0: the
        log is empty).  ``swap=(key, expected, new)``: in the same step, set value
        ``key`` to ``new`` (no expiry) only if it currently is ``expected`` (None:
        missing or expired).  If either condition does not hold, nothing changes and
        :class:`~ebank_auth.errors.ConflictError` is raised.  Both are read inside the
        step (under the store's write lock, row lock or script), so two writers that
        read the same state cannot both append after it.  A failure raises and leaves
        the log as it was (on a lost connection the outcome may be unknown: read the
        log).  An empty ``items`` is :class:`~ebank_auth.errors.InvalidInput`.
        """

    @abstractmethod
    def read_log(self, log: str, start: int = 1) -> Iterator[LogRecord]:
        """Records of ``log`` with ``seq >= start`` in order."""

    def get_and_incr(
        self, key: str, counter: str, limit: int, ttl: float | None = None
    ) -> tuple[bytes | None, CounterResult]:
        """Read ``key`` and, only if it is present, :meth:`incr_bounded` ``counter``.

        One round trip on backends that can (Redis); a missing value leaves the
        counter untouched and returns ``CounterResult(False, 0, None)``.  Used to count
        an attempt against a stored secret *before* comparing (anti-tearing).
        """
        value = self.get(key)
        if value is None:
            return None, CounterResult(False, 0, None)
        return value, self.incr_bounded(counter, limit, ttl)

    def purge_expired(self) -> int:
        """Physically remove expired entries (housekeeping; expiry is already enforced
        on every read).  Returns how many were removed; default: nothing to do."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections.  Default: nothing to do."""
