"""Per-operation overhead of the PKCS#11 backend against the bare PyKCS11 call (SoftHSM2).

Each row times one operation two ways in the same run, on the same token and key:

  backend   ebank_auth.usbkey.vendor.pkcs11.Pkcs11Token (container lookup from its cache,
            DigestInfo / r‖s→DER conversion, typed errors)
  bare      PyKCS11 Session.sign / getAttributeValue with the handle and mechanism made once

Operations: ECDSA P-256 sign of a 32-byte digest, RSA-2048 PKCS#1 v1.5 sign of a digest,
public-key export (backend: cached SPKI; bare: CKA_EC_POINT read), and a whole-message
ECDSA sign (SHA-256 on the host, then the same C_Sign).  Target: backend / bare ≤ 1.2.
The two sides are interleaved in blocks so a busy machine slows both alike.

Run:  .venv/bin/python benchmarks/pkcs11_bench.py [--rounds 2000]
Needs softhsm2 (Debian) and the pkcs11 extra (PyKCS11).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.metadata
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ebank_auth.usbkey.protocol import Algorithm
from ebank_auth.usbkey.vendor.pkcs11 import open_pkcs11


def find_softhsm() -> str:
    for pattern in (
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/*-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    ):
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    sys.exit("libsofthsm2.so not found: apt-get install softhsm2")


def per_call_us(fn: Callable[[], object], rounds: int) -> float:
    t0 = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - t0) / rounds * 1e6


def compare(
    ours: Callable[[], object], bare: Callable[[], object], rounds: int, blocks: int = 10
) -> tuple[float, float]:
    """Medians over interleaved blocks (µs per call) of the backend and the bare call."""
    per = max(1, rounds // blocks)
    a, b = [], []
    ours(), bare()  # warm up
    for _ in range(blocks):
        a.append(per_call_us(ours, per))
        b.append(per_call_us(bare, per))
    return statistics.median(a), statistics.median(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    module = find_softhsm()
    with tempfile.TemporaryDirectory() as tmp:
        tokens = Path(tmp) / "tokens"
        tokens.mkdir()
        conf = Path(tmp) / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
        os.environ["SOFTHSM2_CONF"] = str(conf)
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", "bench",
             "--pin", "1234", "--so-pin", "5678"],
            check=True, capture_output=True,
        )  # fmt: skip
        with open_pkcs11(module, "bench") as tok:
            tok.verify_pin("1234")
            tok.generate_key("ec", Algorithm.ECC_P256)
            tok.generate_key("rsa", Algorithm.RSA2048)
            import PyKCS11  # the bare library, as an integrator would call it

            session = tok._session
            ec_key = session.findObjects(
                [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_LABEL, "ec")]
            )[0]
            ec_pub = session.findObjects(
                [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY), (PyKCS11.CKA_LABEL, "ec")]
            )[0]
            rsa_key = session.findObjects(
                [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_LABEL, "rsa")]
            )[0]
            ecdsa = PyKCS11.Mechanism(PyKCS11.CKM_ECDSA)
            rsa_pkcs = PyKCS11.Mechanism(PyKCS11.CKM_RSA_PKCS)
            digest = hashlib.sha256(b"bench").digest()
            digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + digest
            message = b"transfer 100 CNY to 6222 0000 1111\n" * 4
            rows = [
                (
                    "ECDSA P-256 sign (digest)",
                    lambda: tok.sign_digest(digest, "ec"),
                    lambda: bytes(session.sign(ec_key, digest, ecdsa)),
                    args.rounds,
                ),
                (
                    "ECDSA P-256 sign (message, SHA-256 on host)",
                    lambda: tok.sign_message(message, "ec"),
                    lambda: bytes(session.sign(ec_key, hashlib.sha256(message).digest(), ecdsa)),
                    args.rounds,
                ),
                (
                    "RSA-2048 PKCS#1 v1.5 sign (digest)",
                    lambda: tok.sign_digest(digest, "rsa"),
                    lambda: bytes(session.sign(rsa_key, digest_info, rsa_pkcs)),
                    max(50, args.rounds // 10),
                ),
                (
                    "public key export (P-256)",
                    lambda: tok.public_key("ec"),
                    lambda: bytes(session.getAttributeValue(ec_pub, [PyKCS11.CKA_EC_POINT])[0]),
                    args.rounds,
                ),
            ]
            print(f"SoftHSM2 module {module}; PyKCS11 {importlib.metadata.version('PyKCS11')}")
            print("| operation | backend µs | bare PyKCS11 µs | ratio |")
            print("|---|---|---|---|")
            for name, ours, bare, rounds in rows:
                a, b = compare(ours, bare, rounds)
                print(f"| {name} | {a:.1f} | {b:.1f} | {a / b:.2f}× |")


if __name__ == "__main__":
    main()
