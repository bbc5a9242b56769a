"""End to end over a real, isolated pcscd + vpcd with the software token.

Clients: our session (pyscard in this process), the ``ebank-auth token`` CLI in a
subprocess, and ``opensc-tool`` as an independent PC/SC client.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ebank_auth.crypto import sm2
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.attestation import TrustConfig
from ebank_auth.usbkey.conformance import run_conformance
from ebank_auth.usbkey.connect import open_token
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import ReadingUser
from ebank_auth.usbkey.protocol import AID
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.transport.pcsc import open_reader
from plugins.pcscd import PcscdVpcd

from .conftest import ADMIN_PIN, USER_PIN

pytestmark = pytest.mark.pcsc


@pytest.fixture
def inserted(pcscd_vpcd: PcscdVpcd, tmp_path: Path) -> Iterator[tuple[SoftToken, Path]]:
    state = tmp_path / "token"
    token = SoftToken(state, ReadingUser())
    with pcscd_vpcd.inserted(token, reader=0):
        yield token, state


def _trust(state: Path) -> TrustConfig:
    return TrustConfig.from_files(
        [state / "manufacturer" / "root.pem"], state / "manufacturer" / "firmware-allowlist.json"
    )


def test_confirm_and_sign_through_pcscd(
    inserted: tuple[SoftToken, Path], pcscd_vpcd: PcscdVpcd, make_tx: Callable[..., Transaction]
) -> None:
    token, state = inserted
    with open_reader(pcscd_vpcd.readers[0]) as conn:
        s = TokenSession.open(conn, _trust(state))
        assert s.device_info().serial == token.serial
        s.verify_pin(USER_PIN)
        pub = s.generate_key().public_key()
        tx = make_tx()
        result = s.confirm_and_sign(tx)
        assert isinstance(pub, sm2.SM2PublicKey)
        pub.verify(result.signature, tx.encode(), uid=sm2.DEFAULT_UID)
        assert token.display.shown[-1] == tx.display_text()


def test_conformance_through_pcscd(inserted: tuple[SoftToken, Path], pcscd_vpcd: PcscdVpcd) -> None:
    _, state = inserted
    with open_token(pcscd_vpcd.readers[0], trust=_trust(state)) as token:
        report = run_conformance(token, USER_PIN, ADMIN_PIN)
    assert [c.id for c in report.checks if c.status.value != "pass"] == []


def test_opensc_tool_sees_reader_atr_and_select(
    inserted: tuple[SoftToken, Path], pcscd_vpcd: PcscdVpcd
) -> None:
    tool = shutil.which("opensc-tool")
    if tool is None:
        pytest.skip("opensc-tool not installed")
    token, _ = inserted
    env = pcscd_vpcd.subprocess_env()
    readers = subprocess.run([tool, "-l"], env=env, capture_output=True, text=True, timeout=30)
    assert pcscd_vpcd.readers[0] in readers.stdout
    atr = subprocess.run(
        [tool, "-r", "0", "-a"], env=env, capture_output=True, text=True, timeout=30
    )
    assert token.atr().hex(":") in atr.stdout.lower()
    select = f"00:A4:04:00:{len(AID):02X}:" + AID.hex(":").upper()
    out = subprocess.run(
        [tool, "-r", "0", "-s", select], env=env, capture_output=True, text=True, timeout=30
    )
    assert "SW1=0x90, SW2=0x00" in out.stdout, out.stdout + out.stderr


# ---------------------------------------------------------------------------- CLI


def cli(
    svc: PcscdVpcd, state: Path | None, *args: str, pin: str | None = USER_PIN, **env: str
) -> subprocess.CompletedProcess[str]:
    extra = dict(env)
    if pin is not None:
        extra["EBANK_AUTH_PIN"] = pin
    extra.setdefault("EBANK_AUTH_ADMIN_PIN", ADMIN_PIN)
    prefix = ["--emulator-state", str(state)] if state is not None else []
    return subprocess.run(
        [sys.executable, "-m", "ebank_auth.cli", "token", *prefix, *args],
        env=svc.subprocess_env(**extra),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_cli_workflow(
    inserted: tuple[SoftToken, Path], pcscd_vpcd: PcscdVpcd, tmp_path: Path
) -> None:
    token, state = inserted
    info = cli(pcscd_vpcd, state, "info", "--json")
    assert info.returncode == 0, info.stderr
    doc = json.loads(info.stdout)
    assert doc["serial"] == token.serial and doc["genuine"] is True
    # trusting the software token's test manufacturer is said out loud (--emulator-state)
    assert "TEST manufacturer" in info.stderr and str(state) in info.stderr
    # and never happens by default: the same token, its state as the default, no --emulator
    plain = subprocess.run(
        [sys.executable, "-m", "ebank_auth.cli", "token", "info"],
        env=pcscd_vpcd.subprocess_env(EBANK_AUTH_TOKEN_STATE=str(state)),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert plain.returncode == 2 and "--emulator" in plain.stderr, plain.stderr

    pub = tmp_path / "pub.pem"
    gen = cli(
        pcscd_vpcd, state, "key", "generate", "--algorithm", "sm2", "--public-key-out", str(pub)
    )
    assert gen.returncode == 0, gen.stderr

    txf = tmp_path / "tx.json"
    tx = Transaction.from_dict(
        {
            "tx_id": "CLI1",
            "tx_type": "transfer",
            "payer_account": "6222000011112222",
            "payee_account": "6222000033334444",
            "payee_name": "李四",
            "amount": "66.00",
            "timestamp": "2026-11-22T10:00:00+08:00",
        }
    )
    txf.write_text(json.dumps(tx.to_dict(), ensure_ascii=False))
    sig, signed = tmp_path / "tx.sig", tmp_path / "tx.bin"
    res = cli(
        pcscd_vpcd,
        state,
        "sign",
        "--tx",
        str(txf),
        "--signature-out",
        str(sig),
        "--signed-out",
        str(signed),
        "--json",
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["serial"] == token.serial
    assert signed.read_bytes() == tx.encode()
    key = sm2.load_pem_public_key(pub.read_bytes())
    key.verify(sig.read_bytes(), tx.encode(), uid=sm2.DEFAULT_UID)

    login = cli(pcscd_vpcd, state, "key", "generate", "--usage", "login")
    assert login.returncode == 0, login.stderr
    digest = cli(pcscd_vpcd, state, "sign", "--digest", "11" * 32)
    assert digest.returncode == 0 and len(bytes.fromhex(digest.stdout.strip())) > 8

    rejected = tx.to_dict() | {"memo": "REJECT me", "tx_id": "CLI2"}
    txf.write_text(json.dumps(rejected, ensure_ascii=False))
    res = cli(pcscd_vpcd, state, "sign", "--tx", str(txf))
    assert res.returncode == 1 and "rejected on the token" in res.stderr

    cert = cli(pcscd_vpcd, state, "cert", "export")
    assert cert.returncode == 1 and "not found" in cert.stderr


def test_cli_pin_messages(inserted: tuple[SoftToken, Path], pcscd_vpcd: PcscdVpcd) -> None:
    token, state = inserted
    limit = token.state.user_pin.max_retries
    wrong = cli(pcscd_vpcd, state, "pin", "verify", pin="000000")
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert f"{limit - 1} attempt(s) left" in wrong.stderr, wrong.stderr
    assert "000000" not in wrong.stdout + wrong.stderr
    for _ in range(limit - 1):
        cli(pcscd_vpcd, state, "pin", "verify", pin="000000")
    locked = cli(pcscd_vpcd, state, "pin", "verify")
    assert locked.returncode == 1 and "locked" in locked.stderr, locked.stderr
    assert "admin" in locked.stderr
    status = cli(pcscd_vpcd, state, "pin", "status", "--json")
    assert json.loads(status.stdout)["user"]["locked"] is True
    unblock = cli(pcscd_vpcd, state, "pin", "unblock", EBANK_AUTH_NEW_PIN="Zx9-4417")
    assert unblock.returncode == 0, unblock.stderr
    ok = cli(pcscd_vpcd, state, "pin", "verify", pin="Zx9-4417")
    assert ok.returncode == 0, ok.stderr


def test_cli_conformance_json(inserted: tuple[SoftToken, Path], pcscd_vpcd: PcscdVpcd) -> None:
    res = cli(pcscd_vpcd, inserted[1], "conformance", "--json", "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report["passed"] is True
    assert all(c["explanation"] for c in report["checks"])


def test_cli_conformance_of_a_token_that_is_not_genuine(
    inserted: tuple[SoftToken, Path], pcscd_vpcd: PcscdVpcd, tmp_path: Path
) -> None:
    """The CLI opens the token through open_token; a token another manufacturer's root does
    not vouch for fails the 'genuine' check (exit 1) and the other checks still run."""
    SoftToken(tmp_path / "other")  # trust another manufacturer
    res = cli(pcscd_vpcd, tmp_path / "other", "conformance", "--json", "--yes")
    assert res.returncode == 1, res.stdout + res.stderr
    checks = {c["id"]: c["status"] for c in json.loads(res.stdout)["checks"]}
    assert checks["genuine"] == "fail" and checks["lockout"] == "pass", checks
    assert checks["pin-replay"] == "pass"  # our TokenSession: the wire checks ran
    assert "NOT genuine" in res.stderr


def test_cli_not_genuine(
    inserted: tuple[SoftToken, Path], pcscd_vpcd: PcscdVpcd, tmp_path: Path
) -> None:
    other = SoftToken(tmp_path / "other")  # another manufacturer
    assert other.serial
    res = cli(pcscd_vpcd, tmp_path / "other", "info")
    assert res.returncode == 1 and "genuine" in res.stderr, res.stdout + res.stderr


def test_cli_no_card_and_no_pcscd(pcscd_vpcd: PcscdVpcd, tmp_path: Path) -> None:
    SoftToken(tmp_path / "t")
    empty = cli(pcscd_vpcd, tmp_path / "t", "--reader", pcscd_vpcd.readers[1], "info")
    assert empty.returncode == 3 and "insert the token" in empty.stderr, empty.stderr
    missing = cli(pcscd_vpcd, tmp_path / "t", "conformance", "--reader", "No Such Reader", "--yes")
    assert missing.returncode == 3 and "no reader named" in missing.stderr, missing.stderr
    nopcscd = cli(
        pcscd_vpcd, tmp_path / "t", "info", PCSCLITE_CSOCK_NAME=str(tmp_path / "nothing.comm")
    )
    assert nopcscd.returncode == 3 and "pcscd" in nopcscd.stderr, nopcscd.stderr


def test_cli_pin_never_on_the_command_line(pcscd_vpcd: PcscdVpcd, tmp_path: Path) -> None:
    SoftToken(tmp_path / "t")
    res = cli(pcscd_vpcd, tmp_path / "t", "pin", "verify", "--pin", "314159", pin=None)
    assert res.returncode == 2 and "no such option" in res.stderr.lower()


def test_cli_reader_busy(inserted: tuple[SoftToken, Path], pcscd_vpcd: PcscdVpcd) -> None:
    with open_reader(pcscd_vpcd.readers[0]):  # exclusive, as a bank client plug-in would
        res = cli(pcscd_vpcd, inserted[1], "info")
    assert res.returncode == 3 and "exclusively" in res.stderr, res.stdout + res.stderr


def test_demo_with_the_emulator_daemon(pcscd_vpcd: PcscdVpcd, tmp_path: Path) -> None:
    """The README demo: emulator start -> key generate -> sign --tx -> crypto verify.

    No polling between start and the first token command: ``start`` waits (``--wait``)."""
    state = tmp_path / "daemon-token"
    env = {"EBANK_AUTH_TOKEN_STATE": str(state)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ebank_auth.cli", *args],
            env=pcscd_vpcd.subprocess_env(EBANK_AUTH_PIN=USER_PIN, **env),
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    start = run("emulator", "start", *pcscd_vpcd.emulator_args(1))
    assert start.returncode == 0, start.stdout + start.stderr
    try:
        # the daemon's token is trusted explicitly (its TEST manufacturer, from its state)
        reader = ("--emulator", "--reader", pcscd_vpcd.readers[1])
        pub = tmp_path / "pub.pem"
        gen = run(
            "token", *reader, "key", "generate", "--algorithm", "sm2", "--public-key-out", str(pub)
        )
        assert gen.returncode == 0, gen.stderr
        txf = tmp_path / "tx.json"
        txf.write_text(
            json.dumps(
                {
                    "tx_id": "DEMO1",
                    "tx_type": "transfer",
                    "payer_account": "6222000011112222",
                    "payee_account": "6222000033334444",
                    "payee_name": "张三",
                    "amount": "1234.50",
                    "timestamp": "2026-11-22T10:30:00+08:00",
                },
                ensure_ascii=False,
            )
        )
        sig, signed = tmp_path / "tx.sig", tmp_path / "tx.bin"
        res = run(
            "token",
            *reader,
            "sign",
            "--tx",
            str(txf),
            "--signature-out",
            str(sig),
            "--signed-out",
            str(signed),
        )
        assert res.returncode == 0, res.stderr
        ok = run(
            "crypto",
            "sm2",
            "verify",
            "--public-key",
            str(pub),
            "--in",
            str(signed),
            "--signature",
            str(sig),
        )
        assert ok.returncode == 0 and "valid" in ok.stdout, ok.stdout + ok.stderr
    finally:
        run("emulator", "stop")
