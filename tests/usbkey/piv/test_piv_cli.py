"""``ebank-auth token --backend piv`` drives the software token's PIV applet through a real
isolated pcscd (issue 15 item 5): info says it cannot confirm; a CSR signed in slot 9a verifies
with OpenSSL."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ebank_auth.usbkey.emulator.card import token_card
from ebank_auth.usbkey.emulator.display import AutoReject
from ebank_auth.usbkey.piv_protocol import DEFAULT_PIN, Slot
from ebank_auth.usbkey.protocol import Algorithm
from ebank_auth.usbkey.vendor.piv import open_piv
from plugins.pcscd import PcscdVpcd, pcscd_vpcd  # noqa: F401

pytestmark = pytest.mark.pcsc


@pytest.fixture
def piv_reader(pcscd_vpcd: PcscdVpcd, tmp_path: Path) -> Iterator[PcscdVpcd]:  # noqa: F811
    with pcscd_vpcd.inserted(token_card(tmp_path / "token", AutoReject()), reader=0):
        yield pcscd_vpcd


def cli(svc: PcscdVpcd, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ebank_auth", "token", "--backend", "piv", *args],
        capture_output=True, text=True, timeout=120,
        env={**svc.subprocess_env(), "EBANK_AUTH_PIN": DEFAULT_PIN},
    )  # fmt: skip


def test_piv_info_and_a_csr_from_slot_9a(piv_reader: PcscdVpcd, tmp_path: Path) -> None:
    done = cli(piv_reader, "info", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["backend"] == "piv" and doc["confirm_and_sign"] is False
    with open_piv("Virtual PCD 00 00") as piv:  # generate as an integrator would (mgmt key)
        piv.verify_pin(DEFAULT_PIN)
        piv.generate_key(Slot.AUTHENTICATION.label, Algorithm.ECC_P256)
    out = tmp_path / "a.csr"
    done = cli(piv_reader, "csr", "--container", "9a", "--subject", "CN=Alice", "--out", str(out))
    assert done.returncode == 0, done.stderr
    check = subprocess.run(
        ["openssl", "req", "-in", str(out), "-verify", "-noout"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
