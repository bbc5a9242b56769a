"""Worker process for the lockout concurrency test.

    python lockout_worker.py STORE_URL USER THREADS BARRIER

Opens the store, waits for the BARRIER file, then fires THREADS parallel login
attempts with a wrong password through LoginLockout (audited, notifying into the
store log "notices").  Each evaluated credential check appends to the store log
"evaluated".  Prints one JSON line: how many attempts were evaluated/refused.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from ebank_auth.audit import AuditLog, HmacSm3Key
from ebank_auth.errors import AccountLocked
from ebank_auth.policy.lockout import LockoutEvent, LoginLockout
from ebank_auth.store import open_store

AUDIT_KEY = b"lockout-test-audit-key-32-bytes!"


class StoreNotifier:
    def __init__(self, store: object) -> None:
        self.store = store

    def notify_locked(self, event: LockoutEvent) -> None:
        self.store.append("notices", event.user.encode())  # type: ignore[attr-defined]


def main() -> None:
    url, user, threads, barrier = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    store = open_store(url)
    audit = AuditLog(store, HmacSm3Key(AUDIT_KEY), checkpoint_every=10)
    lockout = LoginLockout(store, notifier=StoreNotifier(store), audit=audit)
    results: list[str] = []
    lock = threading.Lock()

    def wrong_password() -> bool:
        store.append("evaluated", str(os.getpid()).encode())
        return False

    def one() -> None:
        try:
            r = lockout.attempt(user, wrong_password)
            outcome = "locked" if r.locked else "failed"
        except AccountLocked:
            outcome = "refused"
        with lock:
            results.append(outcome)

    while not os.path.exists(barrier):
        time.sleep(0.002)
    ts = [threading.Thread(target=one) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(json.dumps({r: results.count(r) for r in ("failed", "locked", "refused")}))


if __name__ == "__main__":
    main()
