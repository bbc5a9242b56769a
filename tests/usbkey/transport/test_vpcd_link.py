"""The vpcd wire protocol, driven from a loopback server playing vpcd's side.

(The same link is tested against the real vpcd inside pcscd in test_pcsc_e2e.py; here we can
send control bytes and odd messages deterministically.)
"""

from __future__ import annotations

import socket
import struct

import pytest

from ebank_auth.errors import CardNotPresent
from ebank_auth.usbkey.emulator.vpcd import VpcdLink
from ebank_auth.usbkey.transport.inprocess import InProcessConnection
from usbkey.transport.cards import ATR, TEST_AID, TestCard


def _send(conn: socket.socket, payload: bytes) -> None:
    conn.sendall(struct.pack(">H", len(payload)) + payload)


def _recv(conn: socket.socket) -> bytes:
    def exact(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            assert chunk, "link closed"
            buf += chunk
        return buf

    (n,) = struct.unpack(">H", exact(2))
    return exact(n)


class Broken(TestCard):
    def process_apdu(self, apdu: bytes) -> bytes:
        raise RuntimeError("card bug")


@pytest.fixture
def server() -> socket.socket:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(30)
    return srv


def test_control_bytes_and_apdus(server: socket.socket) -> None:
    card = TestCard()
    with VpcdLink(card, "127.0.0.1", server.getsockname()[1]) as link:
        conn, _ = server.accept()
        conn.settimeout(30)
        with conn:
            _send(conn, b"\x01")  # power on
            _send(conn, b"\x04")  # get ATR
            assert _recv(conn) == ATR
            assert link.card_seen.wait(30) and card.powered
            _send(conn, bytes.fromhex("00A404000A") + TEST_AID)
            assert _recv(conn) == b"ebank-test\x90\x00"
            _send(conn, b"\x02")  # reset: no reply, card reset
            _send(conn, b"\x09")  # unknown control: ignored
            _send(conn, b"\x00")  # power off
            _send(conn, b"\x04")
            assert _recv(conn) == ATR  # the link is still in step after the silent controls
            assert card.power_cycles == 2 and not card.powered
            assert link.apdus == 1
    assert link.stopped and not link.connected.is_set()


def test_card_exception_answers_6f00(server: socket.socket) -> None:
    with VpcdLink(Broken(), "127.0.0.1", server.getsockname()[1]):
        conn, _ = server.accept()
        conn.settimeout(30)
        with conn:
            _send(conn, b"\x00\xa4\x04\x00")
            assert _recv(conn) == b"\x6f\x00"


def test_reconnects_when_vpcd_drops_the_connection(server: socket.socket) -> None:
    card = TestCard()
    with VpcdLink(card, "127.0.0.1", server.getsockname()[1], retry_interval=0.01) as link:
        first, _ = server.accept()
        first.close()  # pcscd went away
        second, _ = server.accept()  # ... and the link came back by itself
        second.settimeout(30)
        with second:
            _send(second, b"\x04")
            assert _recv(second) == ATR
        assert link.connections >= 2


def test_inprocess_connection_powers_the_card() -> None:
    card = TestCard()
    conn = InProcessConnection(card, name="unit")
    assert card.powered and conn.atr == ATR and conn.description == "inprocess:unit"
    conn.close()
    conn.close()
    assert not card.powered
    with pytest.raises(CardNotPresent):
        conn.transmit(b"\x00\xa4\x04\x00")
