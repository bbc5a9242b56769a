"""Phone shield through the service: enrolment end to end, and a confirmation against the bare
two-party signature of the same run.

    .venv/bin/python benchmarks/phone_shield_bench.py [--rounds 5] [--ops 20] [--json]

The bank's half runs on a SQLite store in a temporary directory, the software phone reaches it
through ``ApiTransport`` (the JSON encode/decode of every HTTP body, no sockets).  A confirmation
is begin_signing + the phone's pending/sign/result requests (each device-signed, each counter a
store compare-and-set) + signing_result.  The baseline, alternated round by round with it, is
``sm2_2p.local_sign`` of the same shares' backend: what the service adds is the difference.
Enrolment and every confirmation include the argon2id PIN mask at the default cost (t=2,
m=19 MiB): the phone unlocks its share with the PIN for each confirmation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from ebank_auth.crypto import backend_info, sm2_2p
from ebank_auth.phone_shield.emulator import KdfCost
from ebank_auth.transaction import Transaction

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from phone_shield.conftest import PIN, make_bank


def _tx(n: int) -> Transaction:
    return Transaction(
        tx_id=f"B{n}",
        tx_type="transfer",
        payer_account="6222000011112222",
        payee_account="6222000033334444",
        payee_name="张三",
        amount=Decimal("1250.00"),
        currency="CNY",
        timestamp=datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ops", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    confirm: list[float] = []
    bare: list[float] = []
    enrol: list[float] = []
    unlock: list[float] = []
    n = 0
    with tempfile.TemporaryDirectory() as d:
        for r in range(args.rounds):
            (Path(d) / f"r{r}").mkdir()
            bank = make_bank(Path(d) / f"r{r}")
            codes = bank.codes_for()
            phone = bank.phone()
            phone.keystore.cost = KdfCost()  # the default argon2id cost
            t = time.perf_counter()
            phone.enrol(codes.link, codes.authorisation_code, PIN)
            enrol.append(time.perf_counter() - t)
            t = time.perf_counter()
            share_p = phone.keystore.load_share(PIN)
            unlock.append(time.perf_counter() - t)
            share_s = bank.server._share(phone.device_id)
            t = time.perf_counter()
            for _ in range(args.ops):
                sm2_2p.local_sign(share_p, share_s, _tx(0).encode())
            bare.append((time.perf_counter() - t) / args.ops)
            t = time.perf_counter()
            for _ in range(args.ops):
                n += 1
                s = bank.server.begin_signing(phone.device_id, _tx(n))
                pending = phone.pending()
                assert pending is not None
                phone.confirm(pending, pin=PIN)
                bank.server.signing_result(s.session_id)
            confirm.append((time.perf_counter() - t) / args.ops)
    doc: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()}",
        "load_average": os.getloadavg(),
        "backend": backend_info().sm2,
        "enrolment_ms": statistics.median(enrol) * 1000,
        "confirmation_ms": statistics.median(confirm) * 1000,
        "pin_unlock_ms": statistics.median(unlock) * 1000,
        "bare_two_party_sign_ms": statistics.median(bare) * 1000,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    for k, v in doc.items():
        print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")


if __name__ == "__main__":
    main()
