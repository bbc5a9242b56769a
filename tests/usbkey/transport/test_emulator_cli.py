"""``ebank-auth emulator start|stop|status`` and ``token list`` against the isolated pcscd.

The daemon runs the test card (``--card usbkey.transport.cards:make_test_card``) so these tests
cover the process plumbing only; the software token itself is tested with its application.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ebank_auth.cli.emulator_cmd import emulator
from ebank_auth.usbkey.apdu import ApduConnection, CommandApdu
from ebank_auth.usbkey.emulator import daemon
from ebank_auth.usbkey.transport import pcsc
from plugins.pcscd import PcscdVpcd
from usbkey.transport.cards import TEST_AID

pytestmark = pytest.mark.pcsc

TESTS_DIR = str(Path(__file__).resolve().parents[2])
CARD = "usbkey.transport.cards:make_test_card"


def cli(svc: PcscdVpcd, *args: str, check: int | None = None) -> subprocess.CompletedProcess[str]:
    env = svc.subprocess_env(
        PYTHONPATH=os.pathsep.join([TESTS_DIR, *filter(None, [os.environ.get("PYTHONPATH")])])
    )
    res = subprocess.run(
        [sys.executable, "-m", "ebank_auth.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check is not None:
        assert res.returncode == check, res.stdout + res.stderr
    return res


def test_start_status_list_stop(pcscd_vpcd: PcscdVpcd, tmp_path: Path) -> None:
    state = str(tmp_path / "token")
    reader = pcscd_vpcd.readers[1]
    port = str(pcscd_vpcd.ports[1])
    where = pcscd_vpcd.emulator_args(1)  # --port N [--netns /proc/PID/ns/net]
    out = cli(pcscd_vpcd, "emulator", "status", "--state", state, check=1)
    assert "not running" in out.stdout
    out = cli(pcscd_vpcd, "emulator", "start", "--state", state, *where, "--card", CARD)
    assert out.returncode == 0, out.stdout + out.stderr
    try:
        assert "started" in out.stdout and "inserted" in out.stdout
        # --wait (the default) returned only once pcscd had the token: no polling needed
        with pcsc.open_reader(reader) as conn:
            assert ApduConnection(conn).execute(CommandApdu(0, 0xA4, 4, 0, TEST_AID)) == (
                b"ebank-test"
            )
        st = json.loads(cli(pcscd_vpcd, "emulator", "status", "--state", state, "--json").stdout)
        assert st["running"] and st["connected"] and st["card_seen"] and st["port"] == int(port)
        text = cli(pcscd_vpcd, "emulator", "status", "--state", state, check=0).stdout
        assert "inserted into the vpcd reader" in text
        again = cli(pcscd_vpcd, "emulator", "start", "--state", state, *where, "--card", CARD)
        assert again.returncode == 1 and "already runs" in again.stderr
        with pcsc.open_reader(reader) as conn:
            assert ApduConnection(conn).execute(CommandApdu(0, 0xA4, 4, 0, TEST_AID)) == (
                b"ebank-test"
            )
        listing = subprocess.run(
            [sys.executable, "-c", "from ebank_auth.cli.token_list import token_list as t; t()"],
            env=pcscd_vpcd.subprocess_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listing.returncode == 0
        assert any(
            reader in line and "token present" in line for line in listing.stdout.splitlines()
        )
    finally:
        stopped = cli(pcscd_vpcd, "emulator", "stop", "--state", state)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert pcsc.wait_for_card(reader, 20, present=False)
    assert not (Path(state) / daemon.PID_FILE).exists()
    cli(pcscd_vpcd, "emulator", "status", "--state", state, check=1)
    assert "not running" in cli(pcscd_vpcd, "emulator", "stop", "--state", state, check=1).stdout


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_start_waits_and_exits_3_when_no_vpcd_takes_the_token(tmp_path: Path) -> None:
    """Nothing listens on the port: ``start`` (waiting by default) exits 3 (a service is
    unavailable) naming pcscd/vpcd; the token keeps trying in the background."""
    state = str(tmp_path / "token")
    port = str(_free_port())
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")]),
    }
    argv = [sys.executable, "-m", "ebank_auth.cli", "emulator"]
    res = subprocess.run(
        [*argv, "start", "--state", state, "--port", port, "--card", CARD, "--wait-timeout", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        assert res.returncode == 3, res.stdout + res.stderr
        assert "pcscd did not take it within 1s" in res.stderr
        assert f"nothing answers at vpcd at 127.0.0.1:{port}" in res.stderr
        assert "Traceback" not in res.stderr
        st = daemon.status(Path(state))
        assert st.running and not st.connected and not st.card_seen
    finally:
        subprocess.run([*argv, "stop", "--state", state], env=env, timeout=60)
    nowait = subprocess.run(
        [*argv, "start", "--state", state, "--port", port, "--card", CARD, "--no-wait"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        assert nowait.returncode == 0 and "as soon as pcscd runs" in nowait.stdout, nowait.stderr
    finally:
        subprocess.run([*argv, "stop", "--state", state], env=env, timeout=60)


def test_foreground_stops_cleanly_on_sigterm(pcscd_vpcd: PcscdVpcd, tmp_path: Path) -> None:
    state = tmp_path / "fg"
    env = pcscd_vpcd.subprocess_env(
        PYTHONPATH=os.pathsep.join([TESTS_DIR, *filter(None, [os.environ.get("PYTHONPATH")])])
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ebank_auth.cli",
            "emulator",
            "start",
            "--foreground",
            "--state",
            str(state),
            *pcscd_vpcd.emulator_args(0),
            "--card",
            CARD,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert pcsc.wait_for_card(pcscd_vpcd.readers[0], 20)
        st = daemon.status(state)
        assert st.running and st.pid == proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0
    assert pcsc.wait_for_card(pcscd_vpcd.readers[0], 20, present=False)
    assert not daemon.status(state).running


def test_token_list_json(pcscd_vpcd: PcscdVpcd) -> None:
    from ebank_auth.cli.token_list import token_list

    res = CliRunner().invoke(token_list, ["--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    names = [d["name"] for d in data["devices"] if d["kind"] == "pcsc"]
    assert pcscd_vpcd.readers[0] in names


def test_status_of_a_stale_pid_file(tmp_path: Path) -> None:
    (tmp_path / daemon.PID_FILE).write_text("999999999\n")
    res = CliRunner().invoke(emulator, ["status", "--state", str(tmp_path)])
    assert res.exit_code == 1 and "not running" in res.output
    assert CliRunner().invoke(emulator, ["stop", "--state", str(tmp_path)]).exit_code == 1
    assert not (tmp_path / daemon.PID_FILE).exists()


def test_missing_card_factory_is_reported(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        emulator,
        ["start", "--foreground", "--state", str(tmp_path), "--card", "no_such_module:Card"],
    )
    assert res.exit_code == 1
    assert "cannot load the software token" in res.output
