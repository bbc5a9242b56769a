"""The same contract, run against every backend (memory, SQLite, real Redis)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.store import CounterResult, LogRecord
from plugins.store_backends import FakeClock, StoreFactory


def test_incr_bounded_counts_up_to_limit(store_backend: StoreFactory) -> None:
    store = store_backend(FakeClock())
    results = [store.incr_bounded("k", 3) for _ in range(5)]
    assert [r.allowed for r in results] == [True, True, True, False, False]
    assert [r.value for r in results] == [1, 2, 3, 3, 3]
    assert all(r.expires_at is None for r in results)
    assert store.get_counter("k") == 3
    store.reset_counter("k")
    assert store.get_counter("k") == 0
    assert store.incr_bounded("k", 3) == CounterResult(True, 1, None)


def test_incr_bounded_ttl_set_on_creation_and_not_extended(store_backend: StoreFactory) -> None:
    clock = FakeClock()
    store = store_backend(clock)
    t0 = clock()
    first = store.incr_bounded("k", 10, ttl=60)
    assert first == CounterResult(True, 1, t0 + 60)
    clock.advance(59)
    second = store.incr_bounded("k", 10, ttl=60)
    assert second == CounterResult(True, 2, t0 + 60)  # expiry not pushed back
    clock.advance(1)  # exactly at expiry: expired
    assert store.get_counter("k") == 0
    third = store.incr_bounded("k", 10, ttl=60)
    assert third == CounterResult(True, 1, t0 + 120)


def test_incr_bounded_refusal_keeps_expiry(store_backend: StoreFactory) -> None:
    clock = FakeClock()
    store = store_backend(clock)
    store.incr_bounded("k", 1, ttl=30)
    refused = store.incr_bounded("k", 1, ttl=30)
    assert refused == CounterResult(False, 1, clock() + 30)


def test_incr_bounded_zero_limit_never_allows(store_backend: StoreFactory) -> None:
    store = store_backend(FakeClock())
    assert store.incr_bounded("k", 0, ttl=10) == CounterResult(False, 0, None)
    assert store.get_counter("k") == 0


def test_counters_and_values_are_separate_namespaces(store_backend: StoreFactory) -> None:
    store = store_backend(FakeClock())
    store.incr_bounded("same", 5)
    assert store.get("same") is None
    assert store.put_if_absent("same", b"v")
    assert store.get_counter("same") == 1


def test_put_if_absent_and_expiry(store_backend: StoreFactory) -> None:
    clock = FakeClock()
    store = store_backend(clock)
    assert store.put_if_absent("k", b"one", ttl=10)
    assert not store.put_if_absent("k", b"two", ttl=10)
    assert store.get("k") == b"one"
    clock.advance(9.999)
    assert store.get("k") == b"one"
    clock.advance(0.001)
    assert store.get("k") is None
    assert store.put_if_absent("k", b"three")
    clock.advance(10**6)
    assert store.get("k") == b"three"  # no ttl: never expires


def test_compare_and_set(store_backend: StoreFactory) -> None:
    clock = FakeClock()
    store = store_backend(clock)
    assert not store.compare_and_set("k", b"x", b"y")
    assert store.get("k") is None
    assert store.compare_and_set("k", None, b"a", ttl=5)
    assert not store.compare_and_set("k", None, b"b")
    assert not store.compare_and_set("k", b"wrong", b"b")
    assert store.get("k") == b"a"
    assert store.compare_and_set("k", b"a", b"b")  # no ttl now
    clock.advance(10)
    assert store.get("k") == b"b"
    assert store.compare_and_set("k", b"b", None)
    assert store.get("k") is None
    # an expired value counts as missing
    assert store.compare_and_set("k", None, b"c", ttl=1)
    clock.advance(1)
    assert not store.compare_and_set("k", b"c", b"d")
    assert store.compare_and_set("k", None, b"d")


def test_consume_once(store_backend: StoreFactory) -> None:
    clock = FakeClock()
    store = store_backend(clock)
    assert store.consume("k") is None
    store.put_if_absent("k", b"\x00secret\xff", ttl=5)
    assert store.consume("k") == b"\x00secret\xff"
    assert store.consume("k") is None
    store.put_if_absent("k", b"v", ttl=5)
    clock.advance(5)
    assert store.consume("k") is None
    assert store.put_if_absent("k", b"w")


def test_delete(store_backend: StoreFactory) -> None:
    store = store_backend(FakeClock())
    store.delete("missing")
    store.put_if_absent("k", b"v")
    store.delete("k")
    assert store.get("k") is None


def test_logs_are_gap_free_and_separate(store_backend: StoreFactory) -> None:
    store = store_backend(FakeClock())
    assert list(store.read_log("a")) == []
    assert [store.append("a", bytes([i])) for i in range(3)] == [1, 2, 3]
    assert store.append("b", b"other") == 1
    assert list(store.read_log("a")) == [
        LogRecord(1, b"\x00"),
        LogRecord(2, b"\x01"),
        LogRecord(3, b"\x02"),
    ]
    assert [r.seq for r in store.read_log("a", start=2)] == [2, 3]
    assert list(store.read_log("a", start=4)) == []
    assert list(store.read_log("b")) == [LogRecord(1, b"other")]


def test_log_reads_page_through_long_logs(store_backend: StoreFactory) -> None:
    store = store_backend(FakeClock())
    for i in range(1100):
        store.append("long", i.to_bytes(2, "big"))
    records = list(store.read_log("long", start=3))
    assert [r.seq for r in records] == list(range(3, 1101))
    assert all(r.data == (r.seq - 1).to_bytes(2, "big") for r in records)


def test_unicode_keys_and_binary_values(store_backend: StoreFactory) -> None:
    store = store_backend(FakeClock())
    key = "用户:13800000000:*?[x]"
    assert store.put_if_absent(key, bytes(range(256)))
    assert store.get(key) == bytes(range(256))
    assert store.incr_bounded(key, 2).allowed


def test_purge_expired(store_backend: StoreFactory) -> None:
    clock = FakeClock()
    store = store_backend(clock)
    store.put_if_absent("a", b"1", ttl=1)
    store.put_if_absent("b", b"2")
    store.incr_bounded("c", 5, ttl=1)
    store.incr_bounded("d", 5)
    clock.advance(2)
    removed = store.purge_expired()
    assert removed == 2
    assert store.get("b") == b"2"
    assert store.get_counter("d") == 1


def test_state_is_shared_between_store_instances(store_backend: StoreFactory) -> None:
    clock = FakeClock()
    first = store_backend(clock)
    first.put_if_absent("k", b"v", ttl=100)
    first.incr_bounded("n", 5, ttl=100)
    first.append("log", b"x")
    second = store_backend(clock)
    assert second.consume("k") == b"v"
    assert first.get("k") is None
    assert second.incr_bounded("n", 5).value == 2
    assert second.append("log", b"y") == 2


# --------------------------------------------------------------------------- properties

_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("incr"),
            st.sampled_from("abc"),
            st.integers(0, 4),
            st.one_of(st.none(), st.integers(1, 5)),
        ),
        st.tuples(
            st.just("put"),
            st.sampled_from("abc"),
            st.binary(max_size=4),
            st.one_of(st.none(), st.integers(1, 5)),
        ),
        st.tuples(
            st.just("cas"),
            st.sampled_from("abc"),
            st.one_of(st.none(), st.binary(max_size=2)),
            st.one_of(st.none(), st.binary(max_size=2)),
        ),
        st.tuples(st.just("consume"), st.sampled_from("abc"), st.none(), st.none()),
        st.tuples(st.just("get"), st.sampled_from("abc"), st.none(), st.none()),
        st.tuples(st.just("tick"), st.just(""), st.integers(0, 3), st.none()),
    ),
    max_size=25,
)


class _Model:
    """Reference semantics of the Store contract, written independently of backends."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.values: dict[str, tuple[bytes, float | None]] = {}
        self.counters: dict[str, tuple[int, float | None]] = {}

    def _value(self, k: str) -> bytes | None:
        v = self.values.get(k)
        return v[0] if v and (v[1] is None or v[1] > self.now) else None

    def apply(self, op: tuple[str, str, object, object]) -> object:
        kind, k, a, b = op
        if kind == "tick":
            self.now += float(a)  # type: ignore[arg-type]
            return None
        if kind == "incr":
            limit, ttl = int(a), b  # type: ignore[call-overload]
            c = self.counters.get(k)
            if c is None or (c[1] is not None and c[1] <= self.now):
                if limit <= 0:
                    return (False, 0)
                c = (0, None if ttl is None else self.now + float(ttl))  # type: ignore[arg-type]
            if c[0] >= limit:
                return (False, c[0])
            self.counters[k] = (c[0] + 1, c[1])
            return (True, c[0] + 1)
        if kind == "put":
            if self._value(k) is not None:
                return False
            self.values[k] = (a, None if b is None else self.now + float(b))  # type: ignore[assignment, arg-type]
            return True
        if kind == "cas":
            if self._value(k) != a:
                return False
            if b is None:
                self.values.pop(k, None)
            else:
                self.values[k] = (b, None)  # type: ignore[assignment]
            return True
        if kind == "consume":
            v = self._value(k)
            self.values.pop(k, None)
            return v
        return self._value(k)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=_ops)
def test_backend_matches_reference_model(store_backend: StoreFactory, ops: list) -> None:  # type: ignore[type-arg]
    """Property: every backend gives exactly the reference answers for any sequence."""
    clock = FakeClock()
    store = store_backend.fresh(clock)
    model = _Model()
    for op in ops:
        kind, k, a, b = op
        expected = model.apply(op)
        if kind == "tick":
            clock.advance(float(a))
            continue
        if kind == "incr":
            r = store.incr_bounded(k, a, ttl=b)
            got: object = (r.allowed, r.value)
        elif kind == "put":
            got = store.put_if_absent(k, a, ttl=b)
        elif kind == "cas":
            got = store.compare_and_set(k, a, b)
        elif kind == "consume":
            got = store.consume(k)
        else:
            got = store.get(k)
        assert got == expected, (op, got, expected)
    store.close()


@pytest.mark.parametrize("limit", [1, 3])
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(attempts=st.integers(0, 12))
def test_bounded_counter_never_exceeds_limit(
    store_backend: StoreFactory, limit: int, attempts: int
) -> None:
    store = store_backend.fresh(FakeClock())
    allowed = sum(store.incr_bounded("x", limit, ttl=100).allowed for _ in range(attempts))
    assert allowed == min(attempts, limit)
    assert store.get_counter("x") == min(attempts, limit)
    store.close()


def test_get_and_incr(store_backend: StoreFactory) -> None:
    clock = FakeClock()
    store = store_backend(clock)
    # missing value: the counter is not touched
    assert store.get_and_incr("v", "c", 2, ttl=10) == (None, CounterResult(False, 0, None))
    assert store.get_counter("c") == 0
    store.put_if_absent("v", b"secret", ttl=100)
    t0 = clock()
    assert store.get_and_incr("v", "c", 2, ttl=10) == (b"secret", CounterResult(True, 1, t0 + 10))
    assert store.get_and_incr("v", "c", 2, ttl=10) == (b"secret", CounterResult(True, 2, t0 + 10))
    assert store.get_and_incr("v", "c", 2, ttl=10) == (b"secret", CounterResult(False, 2, t0 + 10))
    clock.advance(10)  # counter expired, value still live
    assert store.get_and_incr("v", "c", 2, ttl=10)[1] == CounterResult(True, 1, t0 + 20)
    clock.advance(90)  # value expired
    assert store.get_and_incr("v", "c", 2, ttl=10) == (None, CounterResult(False, 0, None))
