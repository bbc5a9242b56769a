"""``token key attest``, ``token verify-attestation`` and ``token key generate --force`` through
the CLI, over a real isolated pcscd + vpcd with the software token (issue 10 items 2, 3)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import ReadingUser
from ebank_auth.usbkey.emulator.factory import Manufacturer
from plugins.pcscd import PcscdVpcd

from .test_pcsc_e2e import cli

pytestmark = pytest.mark.pcsc


@pytest.fixture
def inserted(pcscd_vpcd: PcscdVpcd, tmp_path: Path) -> Iterator[tuple[SoftToken, Path]]:
    state = tmp_path / "token"
    token = SoftToken(state, ReadingUser())
    with pcscd_vpcd.inserted(token, reader=0):
        yield token, state


def test_attest_and_verify_attestation(
    inserted: tuple[SoftToken, Path], pcscd_vpcd: PcscdVpcd, tmp_path: Path
) -> None:
    token, state = inserted
    root = state / "manufacturer" / "root.pem"
    assert cli(pcscd_vpcd, state, "key", "generate").returncode == 0
    assert cli(pcscd_vpcd, state, "key", "generate", "--usage", "login").returncode == 0
    sign_pem, login_pem = tmp_path / "sign.pem", tmp_path / "login.pem"
    res = cli(pcscd_vpcd, state, "key", "attest", "--out", str(sign_pem), pin=None)
    assert res.returncode == 0, res.stderr
    res = cli(pcscd_vpcd, state, "key", "attest", "--container", "login", "--out", str(login_pem))
    assert res.returncode == 0, res.stderr

    ok = cli(pcscd_vpcd, None, "verify-attestation", str(sign_pem), "--trust-root", str(root))
    assert ok.returncode == 0, ok.stderr
    assert "transaction key: yes" in ok.stdout and token.serial in ok.stdout
    doc = json.loads(
        cli(
            pcscd_vpcd, None, "verify-attestation", str(login_pem), "--trust-root", str(root),
            "--json",
        ).stdout
    )  # fmt: skip
    assert doc["ok"] is True
    assert (doc["usage"], doc["confirmation"], doc["transaction_key"]) == ("login", "none", False)

    other = tmp_path / "other-root.pem"
    other.write_bytes(Manufacturer.create(None).root.to_pem())
    bad = cli(pcscd_vpcd, None, "verify-attestation", str(sign_pem), "--trust-root", str(other))
    assert bad.returncode == 1 and "does not chain" in bad.stderr
    tampered = tmp_path / "tampered.pem"
    tampered.write_bytes(login_pem.read_bytes().split(b"-----END CERTIFICATE-----\n")[0]
                         + b"-----END CERTIFICATE-----\n")  # fmt: skip
    alone = cli(pcscd_vpcd, None, "verify-attestation", str(tampered), "--trust-root", str(root))
    assert alone.returncode == 1, alone.stdout  # no attestation CA: no chain


def test_generate_over_an_existing_key_needs_force_and_the_admin_pin(
    inserted: tuple[SoftToken, Path], pcscd_vpcd: PcscdVpcd
) -> None:
    _, state = inserted
    assert cli(pcscd_vpcd, state, "key", "generate").returncode == 0
    before = cli(pcscd_vpcd, state, "key", "export").stdout
    again = cli(
        pcscd_vpcd, state, "key", "generate", "--container", "sign", "--usage", "login", "--json"
    )
    assert again.returncode == 1
    assert json.loads(again.stdout)["error"]["type"] == "KeyAlreadyExists"
    assert "--force" in json.loads(again.stdout)["error"]["message"]
    assert cli(pcscd_vpcd, state, "key", "export").stdout == before
    wrong = cli(pcscd_vpcd, state, "key", "generate", "--force", EBANK_AUTH_ADMIN_PIN="11111111")
    assert wrong.returncode == 1 and "admin PIN" in wrong.stderr
    assert cli(pcscd_vpcd, state, "key", "export").stdout == before
    forced = cli(pcscd_vpcd, state, "key", "generate", "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["replaced"] is True
    assert cli(pcscd_vpcd, state, "key", "export").stdout != before
