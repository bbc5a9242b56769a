"""Per-operation overhead of the SKF backend against the bare SKF call, in the same run.

Builds the C test SKF library (tests/fixtures/skf/skf_test.c — a test fixture doing real SM2
with libcrypto) with gcc into a temporary directory, opens it with the backend, and times each
operation two ways, interleaved batch by batch so a busy machine slows both alike:

* **backend** — the ``SkfToken`` method (argument checks, cffi allocations, SAR → typed error,
  blob → DER, result dataclasses);
* **direct** — the same SKF function called straight through cffi on the same handles with
  buffers allocated once (what hand-written binding code would do at best).

Target: backend ≤ 1.2× direct per operation.

Run:  .venv/bin/python benchmarks/skf_bench.py [--batches 60] [--batch 25]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ebank_auth.crypto import sm2
from ebank_auth.usbkey.vendor.skf import SkfToken, open_skf

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "fixtures" / "skf" / "skf_test.c"
USER_PIN = "135790"


def build(out_dir: Path) -> Path:
    out = out_dir / "libskf_test.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-fvisibility=hidden", "-o", str(out), str(SOURCE),
         "-lcrypto"],
        check=True,
    )  # fmt: skip
    return out


def make_state(root: Path) -> None:
    app = root / "apps" / "EBANK_APP"
    app.mkdir(parents=True)
    (app / "pins").write_text(f"6 6 10 10\n{USER_PIN}\n24680135\n")


def per_call_us(fn: Callable[[], object], batch: int) -> float:
    t = time.perf_counter()
    for _ in range(batch):
        fn()
    return (time.perf_counter() - t) / batch * 1e6


def compare(
    name: str,
    ours: Callable[[], object],
    direct: Callable[[], object],
    batches: int,
    batch: int,
) -> tuple[str, float, float, float]:
    ours()
    direct()  # warm up
    a, b = [], []
    for _ in range(batches):
        a.append(per_call_us(ours, batch))
        b.append(per_call_us(direct, batch))
    mine, bare = statistics.median(a), statistics.median(b)
    return name, mine, bare, mine / bare


def operations(token: SkfToken) -> list[tuple[str, Callable[[], object], Callable[[], object]]]:
    ffi, lib = token.library.ffi, token.library.lib
    app, dev = token._app, token._dev  # the handles the backend holds
    container = token._container("login")
    e = sm2.compute_e(token.sm2_public_key("login"), b"login challenge 7f3a")
    sig = ffi.new("ECCSIGNATUREBLOB *")
    total, left, default = ffi.new("ULONG *"), ffi.new("ULONG *"), ffi.new("BOOL *")
    rnd = ffi.new("BYTE[]", 32)
    cert_len = ffi.new("ULONG *")
    cert_buf = ffi.new("BYTE[]", 4096)

    def direct_sign() -> object:
        if lib.SKF_ECCSignData(container, e, 32, sig):
            raise RuntimeError("sign failed")
        return sig

    def direct_pin_info() -> object:
        if lib.SKF_GetPINInfo(app, 1, total, left, default):
            raise RuntimeError("GetPINInfo failed")
        return left[0]

    def direct_random() -> object:
        if lib.SKF_GenRandom(dev, rnd, 32):
            raise RuntimeError("GenRandom failed")
        return rnd

    def direct_cert() -> object:
        cert_len[0] = 4096
        if lib.SKF_ExportCertificate(container, 1, cert_buf, cert_len):
            raise RuntimeError("ExportCertificate failed")
        return cert_len[0]

    retry = ffi.new("ULONG *")
    pin = USER_PIN.encode()

    def direct_verify() -> object:
        if lib.SKF_VerifyPIN(app, 1, pin, retry):
            raise RuntimeError("VerifyPIN failed")
        return None

    return [
        ("SKF_ECCSignData (sign_digest → DER)", lambda: token.sign_digest(e, "login"), direct_sign),
        ("SKF_GetPINInfo (pin_status)", token.pin_status, direct_pin_info),
        ("SKF_GenRandom 32 B (random)", lambda: token.random(32), direct_random),
        (
            "SKF_ExportCertificate (export_certificate)",
            lambda: token.export_certificate("login"),
            direct_cert,
        ),
        (
            "SKF_VerifyPIN (verify_pin, 2 fsync'd writes)",
            lambda: token.verify_pin(USER_PIN),
            direct_verify,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="skf-bench-") as tmp:
        root = Path(tmp)
        library = build(root)
        make_state(root / "token")
        os.environ["EBANK_SKF_TEST_DIR"] = str(root / "token")
        with open_skf(library) as token:
            token.verify_pin(USER_PIN)
            token.generate_key("login")
            ca_key = sm2.generate_private_key()
            from ebank_auth.crypto import x509

            ca = x509.CertificateAuthority.create_root("CN=Bench Root,C=CN", ca_key)
            cert = ca.issue("CN=Bench,C=CN", token.sm2_public_key("login"))
            token.import_certificate(cert.to_der(), "login")
            rows = []
            for name, ours, direct in operations(token):
                batches = args.batches if "VerifyPIN" not in name else max(5, args.batches // 6)
                batch = args.batch if "VerifyPIN" not in name else 4
                rows.append(compare(name, ours, direct, batches, batch))
    print(f"# {platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores")
    print("| operation | backend µs | direct cffi µs | overhead µs | ratio | target ≤ 1.2× |")
    print("|---|---|---|---|---|---|")
    for name, mine, bare, ratio in rows:
        ok = "✔" if ratio <= 1.2 else "✘"
        print(f"| {name} | {mine:.1f} | {bare:.1f} | {mine - bare:.1f} | {ratio:.2f}× | {ok} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
