"""Worker process for the OTP concurrency tests.

    python otp_worker.py STORE_URL OUTBOX OP BARRIER ARG...

verify CODE REPEAT : try the right code REPEAT times, print acceptances
issue  N           : try to issue N codes for alice (no cooldown), print successes
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from ebank_auth.errors import OtpError
from ebank_auth.otp import OtpSettings
from ebank_auth.store import open_store
from plugins.otp_helpers import make_service, tx


def main() -> None:
    url, outbox, op, barrier = sys.argv[1:5]
    store = open_store(url)
    service, _ = make_service(store, Path(outbox), OtpSettings(resend_cooldown=0, test_mode=True))
    while not os.path.exists(barrier):
        time.sleep(0.005)
    ok = 0
    if op == "verify":
        code, repeat = sys.argv[5], int(sys.argv[6])
        for _ in range(repeat):
            try:
                service.verify("alice", "transaction", code, tx(1))
                ok += 1
            except OtpError:
                pass
    else:
        for _ in range(int(sys.argv[5])):
            try:
                service.issue("alice", "login")
                ok += 1
            except OtpError:
                pass
    store.close()
    print(json.dumps({"ok": ok}))


if __name__ == "__main__":
    main()
