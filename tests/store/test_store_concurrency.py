"""Many threads and several processes on one store: no double consume, no cap
exceeded, no lost update, gap-free logs.  Bounded work, no timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from ebank_auth.store import open_store
from plugins.store_backends import SERVER_FIXTURES, STORE_BACKENDS, StoreFactory

WORKER = Path(__file__).with_name("store_worker.py")
THREADS = 8


def _run_threads(fn: Callable[[int], object], n: int = THREADS) -> list[object]:
    results: list[object] = [None] * n
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


def test_threads_never_exceed_bounded_counter(store_backend: StoreFactory) -> None:
    store = store_backend()
    results = _run_threads(
        lambda _i: sum(store.incr_bounded("cap", 37, 600).allowed for _ in range(20))
    )
    assert sum(results) == 37  # type: ignore[arg-type]
    assert store.get_counter("cap") == 37


def test_threads_consume_each_value_once(store_backend: StoreFactory) -> None:
    store = store_backend()
    for i in range(40):
        store.put_if_absent(f"code:{i}", b"x", ttl=600)
    results = _run_threads(lambda _i: [i for i in range(40) if store.consume(f"code:{i}")])
    flat = [i for r in results for i in r]  # type: ignore[attr-defined]
    assert sorted(flat) == list(range(40))  # each exactly once


def test_threads_put_if_absent_single_winner(store_backend: StoreFactory) -> None:
    store = store_backend()
    results = _run_threads(lambda i: store.put_if_absent("slot", str(i).encode(), 600))
    assert sum(bool(r) for r in results) == 1
    winner = results.index(True)
    assert store.get("slot") == str(winner).encode()


def test_threads_cas_no_lost_update(store_backend: StoreFactory) -> None:
    store = store_backend()

    def bump(_i: int) -> int:
        for _ in range(15):
            while True:
                cur = store.get("n")
                if store.compare_and_set("n", cur, str(int(cur or b"0") + 1).encode()):
                    break
        return 15

    _run_threads(bump)
    assert store.get("n") == str(15 * THREADS).encode()


def test_threads_append_gap_free(store_backend: StoreFactory) -> None:
    store = store_backend()
    results = _run_threads(lambda i: [store.append("log", bytes([i])) for _ in range(10)])
    seqs = sorted(s for r in results for s in r)  # type: ignore[attr-defined]
    assert seqs == list(range(1, THREADS * 10 + 1))
    assert [r.seq for r in store.read_log("log")] == seqs


# --------------------------------------------------------------------------- processes

PROCS = 4


def _run_processes(url: str, op: str, key: str, n: int, tmp: Path) -> list[dict[str, object]]:
    barrier = tmp / f"{key}.go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, op, key, str(n), str(barrier)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(PROCS)
    ]
    barrier.write_text("go")
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err.decode()
        outs.append(json.loads(out.decode().strip().splitlines()[-1]))
    return outs


@pytest.fixture(params=[k for k in STORE_BACKENDS if k != "memory"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'shared.db'}"
    base = request.getfixturevalue(SERVER_FIXTURES[request.param])
    if request.param == "postgres":
        return f"{base}?schema=proc{uuid.uuid4().hex[:12]}"
    return f"{base}?prefix=proc{tmp_path.name}:"


def test_processes_never_exceed_cap(shared_url: str, tmp_path: Path) -> None:
    outs = _run_processes(shared_url, "incr", "cap", 30, tmp_path)
    assert sum(int(o["allowed"]) for o in outs) == 50  # type: ignore[call-overload]
    store = open_store(shared_url)
    assert store.get_counter("cap") == 50
    store.close()


def test_processes_consume_each_value_once(shared_url: str, tmp_path: Path) -> None:
    store = open_store(shared_url)
    for i in range(60):
        store.put_if_absent(f"c:{i}", b"v", ttl=3600)
    store.close()
    outs = _run_processes(shared_url, "consume", "c", 60, tmp_path)
    consumed = [i for o in outs for i in o["consumed"]]  # type: ignore[attr-defined]
    assert sorted(consumed) == list(range(60))


def test_processes_cas_no_lost_update_and_logs_gap_free(shared_url: str, tmp_path: Path) -> None:
    outs = _run_processes(shared_url, "cas", "n", 15, tmp_path)
    assert sum(int(o["wins"]) for o in outs) == 15 * PROCS  # type: ignore[call-overload]
    outs = _run_processes(shared_url, "append", "log", 15, tmp_path)
    seqs = sorted(s for o in outs for s in o["seqs"])  # type: ignore[attr-defined]
    assert seqs == list(range(1, 15 * PROCS + 1))
    store = open_store(shared_url)
    assert store.get("n") == str(15 * PROCS).encode()
    assert [r.seq for r in store.read_log("log")] == seqs
    store.close()
