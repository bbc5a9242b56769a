"""A writer process for the group-commit tests.

    python audit_worker.py URL THREADS EVENTS [CHECKPOINT_EVERY]

Opens the store named by URL and one group-commit AuditLog, waits for a line on stdin
(so that every process starts together), then THREADS threads each record EVENTS
events (EVENTS 0: until killed) with a unique ``details.id``.  Each acknowledged
record is printed at once as one JSON line ``{"id": ..., "seq": ...}`` (flushed,
under a lock): what the caller was told is durable.  Errors end the thread with a
line ``{"error": ...}``.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import threading

from ebank_auth.audit import AuditLog, HmacSm3Key
from ebank_auth.store import open_store

KEY = HmacSm3Key(b"group-commit-test-key-0123456789")


def main() -> None:
    url, threads, events = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    every = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    log = AuditLog(open_store(url), KEY, checkpoint_every=every)
    out = threading.Lock()
    pid = os.getpid()

    def say(line: dict[str, object]) -> None:
        with out:
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()

    def writer(t: int) -> None:
        counter = itertools.count() if events == 0 else iter(range(events))
        for i in counter:
            ident = f"{pid}-{t}-{i}"
            try:
                ref = log.record("login", user=f"u{t}", details={"id": ident})
            except Exception as exc:
                say({"error": f"{type(exc).__name__}: {exc}"})
                return
            say({"id": ident, "seq": ref.seq})

    sys.stdin.readline()
    pool = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


if __name__ == "__main__":
    main()
