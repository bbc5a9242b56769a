"""The batch append primitive (``Store.append_many``) on every backend: all or none,
the ``after`` and ``swap`` conditions read inside the atomic step, and racing writers
(threads and processes) that never interleave or lose a batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.errors import ConfigurationError, ConflictError, InvalidInput
from ebank_auth.store import LogRecord, Store
from plugins.store_backends import FakeClock, StoreFactory

LOG = "ns:log"
HEAD = "ns:head"
WORKER = Path(__file__).with_name("store_worker.py")


def _log(store: Store, log: str = LOG) -> list[bytes]:
    return [r.data for r in store.read_log(log)]


def test_append_many_appends_in_order_after_single_appends(store_backend: StoreFactory) -> None:
    store = store_backend()
    assert store.append(LOG, b"a") == 1
    assert store.append_many(LOG, [b"b", b"c", b"d"]) == 2
    assert store.append(LOG, b"e") == 5
    assert store.append_many(LOG, (b"f",)) == 6
    assert store.append_many("ns:other", [b"x", b"y"]) == 1
    assert list(store.read_log(LOG, start=4)) == [
        LogRecord(4, b"d"),
        LogRecord(5, b"e"),
        LogRecord(6, b"f"),
    ]
    assert _log(store, "ns:other") == [b"x", b"y"]


def test_after_refuses_a_log_that_moved_on_and_changes_nothing(
    store_backend: StoreFactory,
) -> None:
    store = store_backend()
    with pytest.raises(ConflictError, match="ends at record 0, not 1"):
        store.append_many(LOG, [b"a"], after=1)
    assert store.append_many(LOG, [b"a", b"b"], after=0) == 1
    for stale in (0, 1, 3):
        with pytest.raises(ConflictError):
            store.append_many(LOG, [b"x", b"y"], after=stale, swap=(HEAD, None, b"h"))
    assert _log(store) == [b"a", b"b"]
    assert store.get(HEAD) is None  # the swap went with the refused batch
    assert store.append_many(LOG, [b"c"], after=2) == 3


def test_swap_sets_the_value_with_the_batch_only_if_it_is_the_expected_one(
    store_backend: StoreFactory,
) -> None:
    clock = FakeClock()
    store = store_backend(clock)
    assert store.append_many(LOG, [b"1"], after=0, swap=(HEAD, None, b"h1")) == 1
    assert store.get(HEAD) == b"h1"
    for wrong in (None, b"h0", b"h1 "):
        with pytest.raises(ConflictError, match="changed since it was read"):
            store.append_many(LOG, [b"2"], swap=(HEAD, wrong, b"h2"))
    assert _log(store) == [b"1"] and store.get(HEAD) == b"h1"
    assert store.append_many(LOG, [b"2", b"3"], after=1, swap=(HEAD, b"h1", b"h3")) == 2
    assert store.get(HEAD) == b"h3"
    clock.advance(10**7)  # the swapped value never expires
    assert store.get(HEAD) == b"h3"
    # an expired value counts as missing, and the new one gets no expiry
    store.put_if_absent("ns:short", b"old", ttl=5)
    clock.advance(6)
    assert store.append_many(LOG, [b"4"], swap=("ns:short", None, b"new")) == 4
    clock.advance(10**6)
    assert store.get("ns:short") == b"new"


def test_bad_batches_are_refused(store_backend: StoreFactory) -> None:
    store = store_backend()
    with pytest.raises(InvalidInput, match="1 to"):
        store.append_many(LOG, [])
    with pytest.raises(InvalidInput, match="not one record"):
        store.append_many(LOG, b"abc")
    assert _log(store) == []


def test_a_large_batch_is_one_step(store_backend: StoreFactory) -> None:
    store = store_backend()
    items = [i.to_bytes(2, "big") + b"\x00\xff" for i in range(2500)]
    assert store.append_many(LOG, items, after=0, swap=(HEAD, None, b"end")) == 1
    assert _log(store) == items and store.get(HEAD) == b"end"


def test_cluster_refuses_a_swap_key_in_another_slot(store_backend: StoreFactory) -> None:
    if store_backend.kind != "redis-cluster":
        pytest.skip("only Redis Cluster routes keys by namespace")
    store = store_backend()
    with pytest.raises(ConfigurationError, match="one namespace"):
        store.append_many("audit:log", [b"x"], swap=("other:head", None, b"h"))
    assert _log(store, "audit:log") == []


def test_racing_threads_never_interleave_or_lose_a_batch(store_backend: StoreFactory) -> None:
    """Each thread reads the log's end and appends a batch after it, retrying on
    conflict: every batch lands once, contiguous, and the value always names the last
    record (what a group-commit writer relies on)."""
    threads, batches, size = 4, 6, 3
    stores = [store_backend() for _ in range(threads)]
    conflicts = [0] * threads

    def writer(n: int) -> None:
        store = stores[n]
        for b in range(batches):
            items = [f"{n}:{b}:{i}".encode() for i in range(size)]
            while True:
                end = len(_log(store))
                head = store.get(HEAD)
                try:
                    first = store.append_many(
                        LOG, items, after=end, swap=(HEAD, head, str(end + size).encode())
                    )
                except ConflictError:
                    conflicts[n] += 1
                    continue
                assert first == end + 1
                break

    pool = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    records = _log(stores[0])
    assert len(records) == threads * batches * size
    assert len(set(records)) == len(records)
    for start in range(0, len(records), size):  # batches are contiguous and in order
        group = [r.decode().split(":") for r in records[start : start + size]]
        assert {(w, b) for w, b, _ in group} == {(group[0][0], group[0][1])}
        assert [i for _, _, i in group] == [str(i) for i in range(size)]
    assert stores[0].get(HEAD) == str(len(records)).encode()


def test_racing_processes_never_interleave_or_lose_a_batch(
    store_backend: StoreFactory, tmp_path: Path
) -> None:
    if store_backend.kind == "memory":
        pytest.skip("a memory store is not shared between processes")
    barrier = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), store_backend.url, "append_many", LOG, "8", str(barrier)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        for _ in range(3)
    ]
    barrier.touch()
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    records = _log(store_backend())
    assert len(records) == 3 * 8 * 4 and len(set(records)) == len(records)
    for start in range(0, len(records), 4):
        pids = {r.split(b":")[0] for r in records[start : start + 4]}
        assert len(pids) == 1
    firsts = sorted(seq for out in outs for seq in out["firsts"])
    assert firsts == list(range(1, len(records) + 1, 4))


# --------------------------------------------------------------------------- property

_batch_ops = st.lists(
    st.tuples(
        st.lists(st.binary(max_size=3), min_size=1, max_size=4),  # items
        st.one_of(st.none(), st.integers(0, 8)),  # after
        st.one_of(  # swap: (expected, new) or None
            st.none(),
            st.tuples(st.one_of(st.none(), st.sampled_from([b"h0", b"h1"])), st.binary(max_size=2)),
        ),
    ),
    max_size=10,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=_batch_ops)
def test_append_many_matches_the_reference_model(store_backend: StoreFactory, ops: list) -> None:  # type: ignore[type-arg]
    """Property: for any sequence of conditional batches the backend appends exactly
    when the reference says so, all or nothing, and returns the first seq."""
    store = store_backend.fresh(FakeClock())
    log: list[bytes] = []
    value: bytes | None = None
    for items, after, swap in ops:
        ok = (after is None or after == len(log)) and (swap is None or swap[0] == value)
        if ok:
            assert (
                store.append_many(
                    LOG, items, after=after, swap=None if swap is None else (HEAD, *swap)
                )
                == len(log) + 1
            )
            log.extend(items)
            value = value if swap is None else swap[1]
        else:
            with pytest.raises(ConflictError):
                store.append_many(
                    LOG, items, after=after, swap=None if swap is None else (HEAD, *swap)
                )
        assert _log(store) == log and store.get(HEAD) == value
    store.close()
