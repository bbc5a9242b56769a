"""End-to-end latency of the token application: confirm-and-sign with auto-approve, and friends.

Two paths to the same software token (display: auto-approve):

  in-process   TokenSession -> ApduConnection -> InProcessConnection -> SoftToken
  pcscd/vpcd   TokenSession -> pyscard -> isolated pcscd -> vpcd -> SoftToken (thread in this
               process, via tests/plugins/pcscd.py)

Operations timed (median / p95 in ms):

  open session   SELECT + device info + certificate + attestation + secure-channel handshake
  verify PIN     one encrypted VERIFY (PBKDF2 verifier + two atomic state writes with fsync)
  confirm+sign   SM2: fetch public key, DISPLAY, SIGN (button auto-approved), host verify
  confirm+sign   RSA-2048 (PKCS#1 v1.5 SHA-256)
  sign digest    SM2 login-challenge digest

Baseline: the bare SM2 sign + verify of the same bytes with ebank_auth.crypto (no token), the
floor any token implementation pays.
Run:  .venv/bin/python benchmarks/usbkey_sign_bench.py [--rounds 200] [--no-pcsc]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from ebank_auth.crypto import sm2  # noqa: E402
from ebank_auth.transaction import Transaction  # noqa: E402
from ebank_auth.usbkey.attestation import TrustConfig  # noqa: E402
from ebank_auth.usbkey.emulator.card import SoftToken  # noqa: E402
from ebank_auth.usbkey.emulator.display import AutoApprove  # noqa: E402
from ebank_auth.usbkey.protocol import Algorithm, ContainerUsage, PinRef  # noqa: E402
from ebank_auth.usbkey.session import TokenSession  # noqa: E402
from ebank_auth.usbkey.transport.base import Connection  # noqa: E402
from ebank_auth.usbkey.transport.inprocess import InProcessConnection  # noqa: E402

PIN = "314159"
ADMIN_PIN = "27182818"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def timed(fn: Callable[[], object], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def tx(i: int) -> Transaction:
    return Transaction(
        tx_id=f"BENCH{i}",
        tx_type="transfer",
        payer_account="6222000011112222",
        payee_account="6222000033334444",
        payee_name="张三",
        amount=Decimal("1234.50"),
        currency="CNY",
        timestamp=datetime(2026, 11, 22, 10, 30, tzinfo=timezone.utc),
        memo="benchmark",
    )


def run_path(name: str, connect: Callable[[], Connection], trust: TrustConfig, rounds: int) -> None:
    conn = connect()
    s = TokenSession.open(conn, trust)
    s.verify_pin(PIN)
    s.verify_pin(ADMIN_PIN, PinRef.ADMIN)  # the second path re-creates the keys on purpose
    s.generate_key("sign", Algorithm.SM2, replace=True)
    s.generate_key("rsa", Algorithm.RSA2048, replace=True)
    s.generate_key("login", Algorithm.SM2, ContainerUsage.LOGIN, replace=True)
    counter = iter(range(10**9))
    rows = {
        "open session": timed(lambda: TokenSession.open(conn, trust), max(20, rounds // 10)),
    }
    s = TokenSession.open(conn, trust)
    rows["verify PIN"] = timed(lambda: s.verify_pin(PIN), rounds)
    rows["confirm+sign SM2"] = timed(lambda: s.confirm_and_sign(tx(next(counter)), "sign"), rounds)
    rows["confirm+sign RSA-2048"] = timed(
        lambda: s.confirm_and_sign(tx(next(counter)), "rsa"), max(20, rounds // 4)
    )
    rows["sign digest SM2"] = timed(lambda: s.sign_digest(bytes(32), "login"), rounds)
    for op, values in rows.items():
        print(
            f"| {name:11} | {op:22} | {statistics.median(values):8.2f} | {pct(values, 95):8.2f} "
            f"| {len(values):5} |"
        )
    conn.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--no-pcsc", action="store_true", help="in-process path only")
    args = ap.parse_args()

    key = sm2.generate_private_key()
    pub = key.public_key()
    data = tx(0).encode()

    def bare() -> None:
        pub.verify(key.sign(data, uid=sm2.DEFAULT_UID), data, uid=sm2.DEFAULT_UID)

    base = timed(bare, args.rounds)
    print("| path        | operation              | median ms |  p95 ms | n     |")
    print("|-------------|------------------------|----------:|--------:|------:|")
    print(
        f"| baseline    | SM2 sign+verify (bare) | {statistics.median(base):8.2f} "
        f"| {pct(base, 95):8.2f} | {len(base):5} |"
    )

    state = Path(tempfile.mkdtemp(prefix="ebank-sign-bench-"))
    token = SoftToken(state, AutoApprove())
    trust = TrustConfig((token.manufacturer.root,), token.manufacturer.allowlist)
    run_path("in-process", lambda: InProcessConnection(token), trust, args.rounds)

    if not args.no_pcsc:
        try:
            from ebank_auth.usbkey.transport import pcsc
            from plugins.pcscd import PRIMARY_SOCKET, start_pcscd_vpcd
        except Exception as exc:  # pragma: no cover - optional
            print(f"(pcscd path skipped: {exc})")
            return 0
        svc = start_pcscd_vpcd(PRIMARY_SOCKET)
        try:
            with svc.inserted(token, reader=0):
                run_path("pcscd/vpcd", lambda: pcsc.open_reader(svc.readers[0]), trust, args.rounds)
        finally:
            svc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
