"""End to end over a real, isolated pcscd + vpcd (tests/plugins/pcscd.py) with a test card.

Clients: our PC/SC transport (pyscard), bare pyscard, and opensc-tool as an independent one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ebank_auth.errors import CardNotPresent, ReaderBusy, ReaderNotFound, TransportError
from ebank_auth.usbkey.apdu import ApduConnection, CommandApdu
from ebank_auth.usbkey.emulator.sandbox import listening_ports as _listening_ports
from ebank_auth.usbkey.transport import pcsc
from ebank_auth.usbkey.transport.discovery import list_devices
from plugins.pcscd import PRIMARY_SOCKET, PcscdVpcd
from usbkey.transport.cards import ATR, INS_ECHO, INS_EXACT, TEST_AID, TestCard

pytestmark = pytest.mark.pcsc

SELECT = CommandApdu(0, 0xA4, 4, 0, TEST_AID)


def run(argv: list[str], svc: PcscdVpcd, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=svc.subprocess_env(), capture_output=True, text=True, timeout=60, **kw
    )


def run_py(code: str, svc: PcscdVpcd) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-c", textwrap.dedent(code)], svc)


def test_fixture_is_isolated(pcscd_vpcd: PcscdVpcd) -> None:
    assert (
        os.environ["PCSCLITE_CSOCK_NAME"]
        == str(PRIMARY_SOCKET)
        == pcscd_vpcd.env["PCSCLITE_CSOCK_NAME"]
    )
    assert pcscd_vpcd.socket_path != Path("/run/pcscd/pcscd.comm")
    assert pcscd_vpcd.readers == ["Virtual PCD 00 00", "Virtual PCD 00 01"]
    if pcscd_vpcd.namespaced:
        # vpcd's ports exist only in pcscd's private network namespace, not on this host
        assert not set(pcscd_vpcd.ports) & _listening_ports(os.getpid())
        assert set(pcscd_vpcd.ports) <= _listening_ports(pcscd_vpcd.pid)
        # the pid file went to a private tmpfs, not the host's /run/pcscd
        host_pid = Path("/run/pcscd/pcscd.pid")
        assert not host_pid.exists() or host_pid.read_text().strip() != str(pcscd_vpcd.pid)
    assert set(pcscd_vpcd.readers) <= set(pcsc.list_readers())


def test_select_through_our_transport_and_bare_pyscard(pcscd_vpcd: PcscdVpcd) -> None:
    with pcscd_vpcd.inserted(TestCard()):
        with pcsc.open_reader(pcscd_vpcd.readers[0]) as conn:
            assert conn.atr == ATR
            assert conn.description == "pcsc:Virtual PCD 00 00"
            assert ApduConnection(conn).execute(SELECT) == b"ebank-test"
        from smartcard.System import readers

        reader = next(r for r in readers() if str(r) == pcscd_vpcd.readers[0])
        c = reader.createConnection()
        c.connect()
        try:
            data, sw1, sw2 = c.transmit(list(SELECT.encode()))
        finally:
            c.disconnect()
        assert (bytes(data), sw1, sw2) == (b"ebank-test", 0x90, 0x00)


def test_opensc_tool_sees_reader_atr_and_select(pcscd_vpcd: PcscdVpcd) -> None:
    with pcscd_vpcd.inserted(TestCard()):
        listing = run(["opensc-tool", "-l"], pcscd_vpcd)
        assert listing.returncode == 0, listing.stderr
        line = next(x for x in listing.stdout.splitlines() if "Virtual PCD 00 00" in x)
        assert "Yes" in line
        atr = run(["opensc-tool", "-r", "0", "-a"], pcscd_vpcd)
        assert atr.stdout.strip().replace(":", "").upper().endswith(ATR.hex().upper())
        sel = run(["opensc-tool", "-r", "0", "-s", SELECT.encode().hex()], pcscd_vpcd)
        assert "SW1=0x90, SW2=0x00" in sel.stdout, sel.stdout + sel.stderr
        assert "ebank-test" in sel.stdout


def test_chaining_get_response_and_6cxx_over_pcscd(pcscd_vpcd: PcscdVpcd) -> None:
    card = TestCard()
    with pcscd_vpcd.inserted(card), pcsc.open_reader(0) as conn:
        apdu = ApduConnection(conn)
        data = bytes(i % 253 for i in range(1000))
        assert apdu.execute(CommandApdu(0, INS_ECHO, 0, 0, data, le=0)) == data
        assert apdu.execute(CommandApdu(0, INS_EXACT, 17, 0, le=256)) == bytes(range(17))
    sent = [raw[:2] for raw in card.log]
    assert sent.count(b"\x10\x01") == 3  # 1000 bytes = 3 chained blocks + the last
    assert sent.count(b"\x00\xc0") >= 3  # GET RESPONSE rounds for the 1000-byte answer


def test_discovery_reports_card_presence(pcscd_vpcd: PcscdVpcd) -> None:
    with pcscd_vpcd.inserted(TestCard(), reader=1):
        found = {d.name: d for d in list_devices().devices if d.kind.value == "pcsc"}
        assert found[pcscd_vpcd.readers[1]].card_present is True
        assert found[pcscd_vpcd.readers[1]].atr == ATR
        assert found[pcscd_vpcd.readers[0]].card_present is False


def test_card_absent_and_unknown_reader(pcscd_vpcd: PcscdVpcd) -> None:
    with pytest.raises(CardNotPresent):
        pcsc.open_reader(pcscd_vpcd.readers[0])
    with pytest.raises(ReaderNotFound):
        pcsc.open_reader("no such reader")
    with pytest.raises(ReaderNotFound):
        pcsc.open_reader(7)


def test_card_removed_during_session(pcscd_vpcd: PcscdVpcd) -> None:
    link = pcscd_vpcd.attach(TestCard())
    conn = pcsc.open_reader(0)
    try:
        pcscd_vpcd.detach(link)
        with pytest.raises(TransportError):
            conn.transmit(SELECT.encode())
    finally:
        conn.close()


def test_reader_busy_when_another_process_holds_it(pcscd_vpcd: PcscdVpcd) -> None:
    holder = textwrap.dedent(
        f"""
        import sys
        from ebank_auth.usbkey.transport.pcsc import open_reader
        conn = open_reader({pcscd_vpcd.readers[0]!r})
        print("held", flush=True)
        sys.stdin.readline()
        conn.close()
        """
    )
    with pcscd_vpcd.inserted(TestCard()):
        proc = subprocess.Popen(
            [sys.executable, "-c", holder],
            env=pcscd_vpcd.subprocess_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
            with pytest.raises(ReaderBusy) as info:
                pcsc.open_reader(0)
            assert "another program" in str(info.value)
            with pytest.raises(ReaderBusy):
                pcsc.open_reader(0, share=pcsc.ShareMode.SHARED)
            state = pcsc.reader_states([pcscd_vpcd.readers[0]])[0]
            assert state.card_present and state.exclusive
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(30)
        with pcsc.open_reader(0) as conn:  # released: ours now
            assert ApduConnection(conn).execute(SELECT) == b"ebank-test"


def test_pcscd_not_running_is_pcsc_unavailable(pcscd_vpcd_factory) -> None:  # type: ignore[no-untyped-def]
    svc = pcscd_vpcd_factory()
    ok = run_py(
        "from ebank_auth.usbkey.transport.pcsc import list_readers; print(list_readers())", svc
    )
    assert ok.returncode == 0 and "Virtual PCD 00 00" in ok.stdout, ok.stderr
    svc.stop()
    code = """
        from ebank_auth.errors import PcscUnavailable
        from ebank_auth.usbkey.transport.pcsc import open_reader
        try:
            open_reader()
        except PcscUnavailable as exc:
            print("PcscUnavailable:", exc)
        """
    res = run_py(code, svc)
    assert "PcscUnavailable: PC/SC service not running" in res.stdout, res.stdout + res.stderr
    assert "start pcscd" in res.stdout
    listing = run_py("from ebank_auth.cli.token_list import token_list; token_list()", svc)
    assert listing.returncode == 3  # no reader: a service is unavailable
    assert "pcsc: PC/SC service not running" in listing.stderr


def test_vpcd_link_reconnects_after_pcscd_restart(pcscd_vpcd_factory) -> None:  # type: ignore[no-untyped-def]
    svc = pcscd_vpcd_factory()
    card = TestCard()
    link = svc.attach(card)
    wait = f"""
        from ebank_auth.usbkey.transport.pcsc import wait_for_card, open_reader
        from ebank_auth.usbkey.apdu import ApduConnection, CommandApdu
        assert wait_for_card({svc.readers[0]!r}, 20)
        with open_reader(0) as c:
            print(ApduConnection(c).execute(CommandApdu(0, 0xA4, 4, 0, {TEST_AID!r})))
        """
    first = run_py(wait, svc)
    assert "ebank-test" in first.stdout, first.stderr
    svc.restart()
    for _ in range(2000):  # until the link noticed and reconnected (bounded wait, not a timing)
        if link.connections >= 2 and link.card_seen.is_set():
            break
        link.card_seen.wait(0.01)
    assert link.connections >= 2
    second = run_py(wait, svc)
    assert "ebank-test" in second.stdout, second.stderr
    link.stop()
    assert not link.connected.is_set()
