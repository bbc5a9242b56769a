"""HID framing and the HID transport.

This machine (and CI) has no /dev/uhid and no USB, so no HID token can exist at kernel level.
The host side here is the real HidConnection; only the hidapi device object is replaced by
HidTokenStandIn, which runs a real card behind our report framing.
"""

from __future__ import annotations

import ast
import struct
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ebank_auth
from ebank_auth.errors import HidError
from ebank_auth.usbkey.apdu import ApduConnection, CommandApdu
from ebank_auth.usbkey.emulator.hid_standin import HidTokenStandIn
from ebank_auth.usbkey.hid_framing import (
    BROADCAST_CID,
    HEADER_SIZE,
    PAYLOAD_PER_REPORT,
    REPORT_SIZE,
    HidCommand,
    HidStatus,
    MessageAssembler,
    encode_message,
)
from ebank_auth.usbkey.transport.hid import HidConnection
from usbkey.transport.cards import INS_ECHO, TEST_AID, TestCard


# --------------------------------------------------------------------------- framing
@given(
    cid=st.integers(0, 0xFFFFFFFF),
    cmd=st.sampled_from(list(HidCommand)),
    payload=st.binary(max_size=2000),
)
def test_framing_round_trip(cid: int, cmd: int, payload: bytes) -> None:
    reports = encode_message(cid, cmd, payload)
    assert all(len(r) == REPORT_SIZE for r in reports)
    assert len(reports) == max(1, -(-len(payload) // PAYLOAD_PER_REPORT))
    asm = MessageAssembler()
    results = [asm.feed(r) for r in reports]
    assert results[:-1] == [None] * (len(reports) - 1)
    msg = results[-1]
    assert msg is not None
    assert (msg.cid, msg.command, msg.payload) == (cid, cmd, payload)


def test_report_layout() -> None:
    (report,) = encode_message(0x01020304, HidCommand.APDU, b"\xaa\xbb")
    assert report[:HEADER_SIZE] == bytes.fromhex("01020304 02 0000 0002".replace(" ", ""))
    assert report[HEADER_SIZE:] == b"\xaa\xbb" + bytes(REPORT_SIZE - HEADER_SIZE - 2)


@given(payload=st.binary(min_size=PAYLOAD_PER_REPORT * 2 + 1, max_size=400), data=st.data())
def test_out_of_sequence_reports_are_refused(payload: bytes, data: st.DataObject) -> None:
    reports = encode_message(7, HidCommand.APDU, payload)
    i = data.draw(st.integers(1, len(reports) - 1))
    j = data.draw(st.integers(1, len(reports) - 1).filter(lambda k: k != i))
    asm = MessageAssembler()
    for r in reports[:i]:
        assert asm.feed(r) is None
    with pytest.raises(HidError):
        asm.feed(reports[j])  # a skipped or repeated report
    assert not asm.in_progress


def test_report_from_other_channel_breaks_the_message() -> None:
    a = encode_message(1, HidCommand.APDU, bytes(200))
    b = encode_message(2, HidCommand.APDU, bytes(200))
    asm = MessageAssembler()
    asm.feed(a[0])
    with pytest.raises(HidError):
        asm.feed(b[1])


# --------------------------------------------------------------------------- transport
def test_init_select_and_large_apdu() -> None:
    dev = HidTokenStandIn(TestCard())
    with HidConnection(dev, path="standin") as conn:
        assert conn.init.cid not in (0, BROADCAST_CID)
        # INIT went out on the broadcast channel with an 8-byte nonce
        first = dev.written_reports[0]
        assert struct.unpack_from(">IBHH", first) == (BROADCAST_CID, HidCommand.INIT, 0, 8)
        apdu = ApduConnection(conn, extended_length=True)
        assert apdu.execute(CommandApdu(0, 0xA4, 4, 0, TEST_AID)) == b"ebank-test"
        big = bytes(range(256)) * 8
        assert apdu.execute(CommandApdu(0, INS_ECHO, 0, 0, big, le=65536)) == big
        assert conn.description == "hid:standin"
    assert dev.closed


def test_foreign_init_answers_are_ignored() -> None:
    dev = HidTokenStandIn(TestCard())
    # an answer to somebody else's INIT is waiting in the device before ours
    for r in encode_message(BROADCAST_CID, HidCommand.INIT, bytes(8) + bytes(6)):
        dev._out.put(r)
    conn = HidConnection(dev)
    assert conn.transmit(bytes.fromhex("00A404000A") + TEST_AID)[-2:] == b"\x90\x00"


class ButtonCard(TestCard):
    """Waits for a button press (or a cancel) before answering INS 0x50."""

    def __init__(self) -> None:
        super().__init__()
        self.standin: HidTokenStandIn | None = None
        self.button = threading.Event()
        self.gave_up = False

    def process_apdu_cancellable(self, apdu: bytes, cancelled: threading.Event) -> bytes | None:
        """A CancellableCard: ``None`` = abandoned before doing anything (HID CANCELLED)."""
        if apdu[1] != 0x50:
            return super().process_apdu(apdu)
        assert self.standin is not None
        self.standin.report_status(HidStatus.WAITING_FOR_BUTTON)
        while not self.button.wait(0.01):
            if cancelled.is_set():
                self.gave_up = True
                return None
        return b"signed\x90\x00"


def test_waiting_for_button_is_reported_then_answered() -> None:
    card = ButtonCard()
    dev = HidTokenStandIn(card)
    card.standin = dev
    seen: list[HidStatus] = []

    def on_status(status: HidStatus) -> None:
        seen.append(status)
        if status is HidStatus.WAITING_FOR_BUTTON:
            card.button.set()  # the user presses the button

    conn = HidConnection(dev, on_status=on_status)
    assert conn.transmit(bytes.fromhex("00500000")) == b"signed\x90\x00"
    assert HidStatus.WAITING_FOR_BUTTON in seen


def test_cancel_while_waiting_for_button() -> None:
    card = ButtonCard()
    dev = HidTokenStandIn(card)
    card.standin = dev
    conn = HidConnection(dev)
    conn.on_status = lambda status: conn.cancel()
    with pytest.raises(HidError, match="cancelled"):
        conn.transmit(bytes.fromhex("00500000"))
    assert dev.cancelled.is_set()
    # the channel is usable again once the card has given up
    assert dev._busy is not None
    dev._busy.join(10)
    assert card.gave_up
    assert conn.transmit(bytes.fromhex("00A404000A") + TEST_AID)[-2:] == b"\x90\x00"


def test_silent_device_times_out() -> None:
    class Silent(HidTokenStandIn):
        def write(self, data: bytes | list[int]) -> int:
            return len(bytes(data))

    with pytest.raises(HidError, match="did not answer"):
        HidConnection(Silent(TestCard()), timeout=0.05)


def test_closed_connection_refuses() -> None:
    conn = HidConnection(HidTokenStandIn(TestCard()))
    conn.close()
    conn.close()
    with pytest.raises(HidError.__mro__[1]):  # TransportError
        conn.transmit(b"\x00\xa4\x04\x00")


# --------------------------------------------------------------------------- layering
def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_hardware_libraries_are_imported_only_in_their_transport() -> None:
    root = Path(ebank_auth.__file__).parent
    users = {"smartcard": set(), "hid": set()}  # type: dict[str, set[str]]
    for path in root.rglob("*.py"):
        for lib in _imports(path) & set(users):
            users[lib].add(path.relative_to(root).as_posix())
    assert users["smartcard"] <= {"usbkey/transport/pcsc.py"}
    assert users["hid"] <= {"usbkey/transport/hid.py"}
