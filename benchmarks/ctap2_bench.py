"""Cost of the software token's CTAP2 applet per command, driven by python-fido2 in process.

python-fido2's ``Ctap2`` talks to the token's applet router through an in-process stand-in for
the reader (the same one tests/usbkey/fido uses), so the numbers are the applet's own work
(CBOR, crypto, sealed state writes) plus python-fido2's client side — no pcscd; the PC/SC
round trip is measured by usbkey_transport_bench.py.  Baseline in the same run: a bare P-256
ECDSA sign with ``cryptography`` (the one signature every assertion needs).

Run:  .venv/bin/python benchmarks/ctap2_bench.py [--rounds 200] [--state DIR]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.ctap2.base import Ctap2
from fido2.ctap2.pin import ClientPin
from fido2.pcsc import CtapPcscDevice

from ebank_auth.usbkey.emulator.card import token_card
from ebank_auth.usbkey.emulator.display import AutoApprove

ES256 = [{"type": "public-key", "alg": -7}]


class Reader:
    """pyscard-shaped connection to the card object (stands in for pcscd + vpcd)."""

    def __init__(self, card: object) -> None:
        self.card = card

    def connect(self) -> None:
        return None

    def disconnect(self) -> None:
        return None

    def transmit(self, apdu: list[int], protocol: object = None) -> tuple[list[int], int, int]:
        out = self.card.process_apdu(bytes(apdu))  # type: ignore[attr-defined]
        return list(out[:-2]), out[-2], out[-1]


def timed(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--state", type=Path, default=None, help="token state directory")
    args = parser.parse_args()
    state = args.state or Path(tempfile.mkdtemp(prefix="ctap2-bench-")) / "token"
    results: list[tuple[str, str, float, float]] = []
    for where, directory in (("memory", None), ("state dir (fsync)", state)):
        card = token_card(directory, AutoApprove())
        ctap = Ctap2(CtapPcscDevice(Reader(card), "bench"))
        made = ctap.make_credential(b"\x01" * 32, {"id": "bank.example"}, {"id": b"u"}, ES256)
        cred = made.auth_data.credential_data
        assert cred is not None
        allow = [{"type": "public-key", "id": cred.credential_id}]
        pin = ClientPin(ctap)
        pin.set_pin("246810")
        cases: list[tuple[str, Callable[[], object]]] = [
            ("getInfo", ctap.get_info),
            (
                "getAssertion (allow list, UP)",
                functools.partial(ctap.get_assertion, "bank.example", b"\x02" * 32, allow),
            ),
            (
                "getPinToken (ECDH + PIN check, 2 state writes)",
                functools.partial(pin.get_pin_token, "246810"),
            ),
        ]
        for name, fn in cases:
            med, p95 = timed(fn, args.rounds)
            results.append((where, name, med, p95))
    key = ec.generate_private_key(ec.SECP256R1())
    med, p95 = timed(lambda: key.sign(b"x" * 69, ec.ECDSA(hashes.SHA256())), args.rounds)
    results.append(("baseline", "bare P-256 ECDSA sign (cryptography)", med, p95))
    print("| where | command | median ms | p95 ms |")
    print("|---|---|---|---|")
    for where, name, med, p95 in results:
        print(f"| {where} | {name} | {med:.3f} | {p95:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
