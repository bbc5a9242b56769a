"""The HID report framing shared by the host and any token speaking it (no hidapi, no I/O).

Both sides import this module: the host transport (:mod:`ebank_auth.usbkey.transport.hid`) and
the token stand-in of the software token (:mod:`ebank_auth.usbkey.emulator.hid_standin`), so
neither imports the other.  The format is specified in ``docs/usbkey-hid.md``; every 64-byte
report is::

    offset  size  field
    0       4     channel id (big endian); 0xFFFFFFFF = broadcast, used only by INIT
    4       1     command (HidCommand)
    5       2     sequence number of this report within the message, 0, 1, 2, ... (big endian)
    7       2     total payload length of the message (big endian), repeated in every report
    9       55    payload fragment (the last report is zero-padded)

CANCEL semantics: the token answers every APDU request with exactly one final message.  After a
CANCEL that final message is ERROR ``CANCELLED`` only when the card abandoned the command before
it had any effect (nothing persisted, nothing signed); when the command had already gone past
that point (or the card cannot be interrupted) it is the command's real response APDU.  A
CANCEL with no request in progress is ignored (no answer).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from ebank_auth.errors import HidError

__all__ = [
    "BROADCAST_CID",
    "FRAMING_VERSION",
    "HEADER",
    "HEADER_SIZE",
    "MAX_MESSAGE",
    "NONCE_SIZE",
    "PAYLOAD_PER_REPORT",
    "REPORT_SIZE",
    "USAGE_PAGE",
    "HidCapability",
    "HidCommand",
    "HidErrorCode",
    "HidMessage",
    "HidStatus",
    "InitResponse",
    "MessageAssembler",
    "encode_message",
]

REPORT_SIZE = 64
HEADER_SIZE = 9
PAYLOAD_PER_REPORT = REPORT_SIZE - HEADER_SIZE
MAX_MESSAGE = 0xFFFF
BROADCAST_CID = 0xFFFFFFFF
FRAMING_VERSION = 1
NONCE_SIZE = 8
#: Vendor-defined HID usage page a token speaking this framing advertises (discovery filter).
USAGE_PAGE = 0xFFEB
HEADER = struct.Struct(">IBHH")


class HidCommand(IntEnum):
    """The command byte of a message."""

    INIT = 0x01  # host: 8-byte nonce; token: nonce, channel id (4), version (1), capabilities (1)
    APDU = 0x02  # a command APDU (host) or a response APDU (token)
    KEEPALIVE = 0x03  # token only: one HidStatus byte
    CANCEL = 0x04  # host only, empty: ask the token to abandon the request in progress
    ERROR = 0x3F  # token only: one HidErrorCode byte


class HidStatus(IntEnum):
    """Payload of KEEPALIVE: what the token is doing."""

    PROCESSING = 0x01
    WAITING_FOR_BUTTON = 0x02


class HidErrorCode(IntEnum):
    """Payload of ERROR."""

    INVALID_COMMAND = 0x01
    INVALID_LENGTH = 0x02
    INVALID_SEQUENCE = 0x03
    CHANNEL_BUSY = 0x04
    MESSAGE_TIMEOUT = 0x05
    CANCELLED = 0x06  # the request was abandoned before it changed anything
    INVALID_CHANNEL = 0x07
    OTHER = 0x7F


class HidCapability(IntEnum):
    """Bits of the capability byte in the INIT response."""

    KEEPALIVE = 0x01
    CANCEL = 0x02
    BUTTON = 0x04
    DISPLAY = 0x08


@dataclass(frozen=True)
class HidMessage:
    """One reassembled message."""

    cid: int
    command: int
    payload: bytes


@dataclass(frozen=True)
class InitResponse:
    """What the token answered to INIT."""

    cid: int
    version: int
    capabilities: int


def encode_message(cid: int, command: int, payload: bytes = b"") -> list[bytes]:
    """Split one message into 64-byte reports (at least one, even for an empty payload)."""
    if len(payload) > MAX_MESSAGE:
        raise HidError(f"HID message too long: {len(payload)} > {MAX_MESSAGE} bytes")
    reports = []
    total = len(payload)
    seq = 0
    offset = 0
    while True:
        chunk = payload[offset : offset + PAYLOAD_PER_REPORT]
        report = HEADER.pack(cid, command, seq, total) + chunk
        reports.append(report.ljust(REPORT_SIZE, b"\x00"))
        offset += PAYLOAD_PER_REPORT
        seq += 1
        if offset >= total:
            return reports


class MessageAssembler:
    """Reassembles reports into messages.

    :meth:`feed` returns a :class:`HidMessage` when one is complete, ``None`` while more reports
    are needed.  A report that does not continue the message in progress (other channel, other
    command, wrong sequence number, different length) raises :class:`HidError` with
    ``INVALID_SEQUENCE`` semantics and discards the partial message; a report with sequence 0
    always starts a new message.
    """

    def __init__(self) -> None:
        self._cid = -1
        self._cmd = -1
        self._total = 0
        self._next = 0
        self._buf = bytearray()

    def reset(self) -> None:
        self._next = 0
        self._buf = bytearray()

    @property
    def in_progress(self) -> bool:
        return self._next > 0

    def feed(self, report: bytes) -> HidMessage | None:
        if len(report) != REPORT_SIZE:
            raise HidError(f"HID report of {len(report)} bytes, expected {REPORT_SIZE}")
        cid, cmd, seq, total = HEADER.unpack_from(report)
        if seq == 0:
            self._cid, self._cmd, self._total, self._next = cid, cmd, total, 0
            self._buf = bytearray()
        elif (cid, cmd, total, seq) != (self._cid, self._cmd, self._total, self._next):
            self.reset()
            raise HidError("HID report out of sequence: message discarded")
        self._buf += report[HEADER_SIZE:]
        self._next = seq + 1
        if len(self._buf) >= self._total:
            msg = HidMessage(self._cid, self._cmd, bytes(self._buf[: self._total]))
            self.reset()
            return msg
        return None
