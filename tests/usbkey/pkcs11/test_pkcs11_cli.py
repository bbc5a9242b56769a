"""``ebank-auth token --backend pkcs11`` against SoftHSM2 (issue 15 items 5-6)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from .conftest import LABEL, USER_PIN, SoftHsm


def cli(hsm: SoftHsm, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ebank_auth", "token", "--backend", "pkcs11",
         "--pkcs11-module", hsm.module, "--pkcs11-token", LABEL, *args],
        capture_output=True, text=True, timeout=120,
        env={**hsm.env(), "EBANK_AUTH_PIN": USER_PIN},
    )  # fmt: skip


def test_info_and_pin_status_through_softhsm(softhsm: SoftHsm) -> None:
    done = cli(softhsm, "info", "--json")
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    assert doc["backend"] == "pkcs11" and doc["confirm_and_sign"] is False
    done = cli(softhsm, "pin", "verify")
    assert done.returncode == 0, done.stderr


def test_the_backend_needs_its_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ebank_auth", "token", "--backend", "pkcs11", "info"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "--pkcs11-module" in done.stderr


def test_token_list_shows_the_module_tokens(softhsm: SoftHsm) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ebank_auth", "token", "--pkcs11-module", softhsm.module, "list",
         "--json"],
        capture_output=True, text=True, timeout=60,
        env={**softhsm.env(), "PCSCLITE_CSOCK_NAME": "/nonexistent"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    names = [v["name"] for v in json.loads(done.stdout)["vendor_tokens"]]
    assert any(n.endswith(f": {LABEL}") for n in names), names  # SoftHSM2 adds a free slot


def test_csr_signed_in_softhsm_verifies_with_openssl(softhsm: SoftHsm, tmp_path: Path) -> None:
    from ebank_auth.usbkey.protocol import Algorithm
    from ebank_auth.usbkey.vendor.pkcs11 import open_pkcs11

    with open_pkcs11(softhsm.module, LABEL) as tok:
        tok.verify_pin(USER_PIN)
        tok.generate_key("login", Algorithm.ECC_P256)
    out = tmp_path / "a.csr"
    done = cli(softhsm, "csr", "--subject", "CN=Alice", "--out", str(out))
    assert done.returncode == 0, done.stderr
    check = subprocess.run(
        ["openssl", "req", "-in", str(out), "-verify", "-noout"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
