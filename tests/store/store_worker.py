"""Worker run as a separate process by the store concurrency tests.

    python store_worker.py URL OP KEY N BARRIER

Opens the store named by URL, waits until the file BARRIER exists (so all workers
start together), performs OP N times on KEY and prints one JSON line with what it
observed.
"""

from __future__ import annotations

import json
import os
import sys
import time

from ebank_auth.errors import ConflictError
from ebank_auth.store import open_store


def main() -> None:
    url, op, key, n, barrier = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    store = open_store(url)
    while not os.path.exists(barrier):
        time.sleep(0.005)
    out: dict[str, object] = {"pid": os.getpid()}
    if op == "incr":
        out["allowed"] = sum(store.incr_bounded(key, 50, ttl=3600).allowed for _ in range(n))
    elif op == "consume":
        got = []
        for i in range(n):
            value = store.consume(f"{key}:{i}")
            if value is not None:
                got.append(i)
        out["consumed"] = got
    elif op == "append":
        out["seqs"] = [store.append(key, str(os.getpid()).encode()) for _ in range(n)]
    elif op == "append_many":  # batches of 4 after the end just read (retry on conflict)
        firsts = []
        for b in range(n):
            items = [f"{os.getpid()}:{b}:{i}".encode() for i in range(4)]
            while True:
                end = sum(1 for _ in store.read_log(key))
                try:
                    firsts.append(store.append_many(key, items, after=end))
                    break
                except ConflictError:
                    continue
        out["firsts"] = firsts
    elif op == "cas":
        wins = 0
        for _ in range(n):  # lost-update check: increment an integer via CAS retry loop
            while True:
                cur = store.get(key)
                new = str(int(cur or b"0") + 1).encode()
                if store.compare_and_set(key, cur, new):
                    wins += 1
                    break
        out["wins"] = wins
    store.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
