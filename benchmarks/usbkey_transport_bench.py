"""Per-APDU overhead of the ebank-auth PC/SC stack vs bare pyscard, over the same pcscd + vpcd.

Starts an isolated pcscd with the vpcd driver (tests/plugins/pcscd.py), runs a small test card in
a separate process (the emulator daemon), then times the same SELECT round trip through:

  bare pyscard  scard.SCardTransmit          (pyscard's lowest layer: the baseline)
  bare pyscard  CardConnection.transmit      (pyscard's object API)
  ebank-auth    PcscConnection.transmit      (our transport)
  ebank-auth    ApduConnection.execute       (transport + APDU encode/parse/status check/log gate)

Batches are interleaved so drift hits every variant alike.  Target: ours <= 1.2x the baseline.
Run:  .venv/bin/python benchmarks/usbkey_transport_bench.py [--rounds 3000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from ebank_auth.usbkey.apdu import ApduConnection, CommandApdu  # noqa: E402
from ebank_auth.usbkey.emulator import daemon  # noqa: E402
from ebank_auth.usbkey.transport import pcsc  # noqa: E402
from plugins.pcscd import PRIMARY_SOCKET, start_pcscd_vpcd  # noqa: E402  (sets the socket env)
from usbkey.transport.cards import TEST_AID  # noqa: E402


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3000, help="APDUs per variant")
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()

    svc = start_pcscd_vpcd(PRIMARY_SOCKET)
    state = Path(tempfile.mkdtemp(prefix="ebank-bench-"))
    env = {**os.environ, **svc.env, "PYTHONPATH": str(ROOT / "tests")}
    try:
        daemon.start(
            state,
            port=svc.ports[0],
            card="usbkey.transport.cards:make_test_card",
            env=env,
            netns=svc.netns,
        )
        if not pcsc.wait_for_card(svc.readers[0], 20):
            print("card did not appear", file=sys.stderr)
            return 1
        select = CommandApdu(0, 0xA4, 4, 0, TEST_AID)
        raw = select.encode()
        raw_list = list(raw)

        from smartcard import scard
        from smartcard.System import readers

        _, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        _hr, hcard, proto = scard.SCardConnect(
            ctx,
            svc.readers[0],
            scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        pci = scard.SCARD_PCI_T1 if proto == scard.SCARD_PROTOCOL_T1 else scard.SCARD_PCI_T0
        reader = next(r for r in readers() if str(r) == svc.readers[0])
        cc = reader.createConnection()
        cc.connect()
        ours = pcsc.open_reader(svc.readers[0], share=pcsc.ShareMode.SHARED)
        apdu = ApduConnection(ours)

        def bare_scard() -> None:
            scard.SCardTransmit(hcard, pci, raw_list)

        def bare_object() -> None:
            cc.transmit(raw_list)

        def our_transport() -> None:
            ours.transmit(raw)

        def our_apdu() -> None:
            apdu.execute(select)

        variants: dict[str, Callable[[], None]] = {
            "pyscard scard.SCardTransmit (baseline)": bare_scard,
            "pyscard CardConnection.transmit": bare_object,
            "ebank-auth PcscConnection.transmit": our_transport,
            "ebank-auth ApduConnection.execute": our_apdu,
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        for fn in variants.values():  # warm-up
            for _ in range(50):
                fn()
        done = 0
        while done < args.rounds:
            for name, fn in variants.items():
                bucket = times[name]
                for _ in range(args.batch):
                    t0 = time.perf_counter_ns()
                    fn()
                    bucket.append((time.perf_counter_ns() - t0) / 1000)
            done += args.batch

        base = statistics.median(times["pyscard scard.SCardTransmit (baseline)"])
        base_obj = statistics.median(times["pyscard CardConnection.transmit"])
        print(f"SELECT round trip over pcscd {svc.readers[0]!r} + vpcd, {args.rounds} APDUs each")
        print(f"{'variant':42} {'median µs':>10} {'p95 µs':>9} {'vs scard':>9} {'vs object':>9}")
        for name, vals in times.items():
            med = statistics.median(vals)
            print(
                f"{name:42} {med:10.1f} {pct(vals, 95):9.1f} "
                f"{med / base:8.2f}x {med / base_obj:8.2f}x"
            )
        ours.close()
        cc.disconnect()
        release = getattr(cc, "release", None)
        if release is not None:
            release()
        scard.SCardDisconnect(hcard, scard.SCARD_LEAVE_CARD)
        scard.SCardReleaseContext(ctx)
    finally:
        daemon.stop(state)
        svc.stop()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(svc.base_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
