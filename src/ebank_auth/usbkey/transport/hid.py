"""HID transport: APDUs over 64-byte HID reports — the only module that imports ``hid`` (hidapi).

The report framing is specified in ``docs/usbkey-hid.md``; in short, every 64-byte report is::

    offset  size  field
    0       4     channel id (big endian); 0xFFFFFFFF = broadcast, used only by INIT
    4       1     command (HidCommand)
    5       2     sequence number of this report within the message, 0, 1, 2, ... (big endian)
    7       2     total payload length of the message (big endian), repeated in every report
    9       55    payload fragment (the last report is zero-padded)

A message is one command plus up to 65535 payload bytes split over consecutive reports.  The host
first sends INIT with an 8-byte nonce on the broadcast channel; the token answers on the broadcast
channel with the nonce, a fresh channel id, the framing version and capability flags.  APDU
messages then carry one command APDU (host → token) or one response APDU (token → host).  While it
works the token sends KEEPALIVE messages whose one-byte payload is a :class:`HidStatus` —
``WAITING_FOR_BUTTON`` means the user must press the button on the token.  The host may send
CANCEL at any time; the token then either abandons the request before it had any effect and
answers ERROR ``CANCELLED`` (:class:`HidError`: nothing was done), or — when the command was
already past that point — finishes it and sends its real response, which :meth:`transmit`
returns as usual.

The framing itself (:func:`~ebank_auth.usbkey.hid_framing.encode_message`,
:class:`~ebank_auth.usbkey.hid_framing.MessageAssembler`) lives in the neutral module
:mod:`ebank_auth.usbkey.hid_framing`, which the token side imports too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ebank_auth.errors import HidError, TransportError
from ebank_auth.usbkey.hid_framing import (
    BROADCAST_CID,
    FRAMING_VERSION,
    HEADER,
    NONCE_SIZE,
    REPORT_SIZE,
    USAGE_PAGE,
    HidCommand,
    HidErrorCode,
    HidMessage,
    HidStatus,
    InitResponse,
    MessageAssembler,
    encode_message,
)
from ebank_auth.usbkey.transport.base import Connection, DeviceKind, TokenDevice

__all__ = [
    "HidConnection",
    "HidDeviceLike",
    "StatusCallback",
    "list_devices",
    "open_hid",
]

logger = logging.getLogger("ebank_auth.usbkey.transport.hid")


class HidDeviceLike(Protocol):
    """What we use of a ``hid.device`` (hidapi): report-ID-prefixed writes, timed reads."""

    def write(self, data: bytes) -> int: ...

    def read(self, max_length: int, timeout_ms: int = 0) -> list[int]: ...

    def close(self) -> None: ...


StatusCallback = Callable[[HidStatus], None]


class HidConnection(Connection):
    """A :class:`Connection` to a token speaking the HID framing above.

    ``timeout`` bounds the wait for each report; every KEEPALIVE restarts it (the token is alive)
    up to ``max_wait`` seconds for the whole request (a user pressing the button).  ``on_status``
    receives each keepalive status (e.g. to print "press the button on your token").
    :meth:`cancel` may be called from another thread (or the callback) to abandon a request.
    """

    def __init__(
        self,
        device: HidDeviceLike,
        *,
        path: str = "hid",
        timeout: float = 3.0,
        max_wait: float = 120.0,
        on_status: StatusCallback | None = None,
    ) -> None:
        self._dev: HidDeviceLike | None = device
        self._path = path
        self.timeout = timeout
        self.max_wait = max_wait
        self.on_status = on_status
        self._write_lock = threading.Lock()
        self._cid = BROADCAST_CID
        try:
            self.init = self._init()
        except BaseException:
            self.close()
            raise
        self._cid = self.init.cid

    @property
    def description(self) -> str:
        return f"hid:{self._path}"

    # -- framing I/O ----------------------------------------------------------------------------
    def _send(self, command: int, payload: bytes = b"") -> None:
        dev = self._device()
        with self._write_lock:
            for report in encode_message(self._cid, command, payload):
                try:
                    n = dev.write(b"\x00" + report)  # report ID 0 prefix (hidapi convention)
                except (OSError, ValueError) as exc:
                    raise HidError(f"HID write failed: {exc}") from exc
                if n < 0:
                    raise HidError("HID write failed: the token was unplugged?")

    def _device(self) -> HidDeviceLike:
        if self._dev is None:
            raise TransportError("the HID connection is closed")
        return self._dev

    def _receive(self, deadline_for: Callable[[], float]) -> HidMessage:
        dev = self._device()
        assembler = MessageAssembler()
        while True:
            left = deadline_for() - time.monotonic()
            if left <= 0:
                raise HidError("HID token did not answer in time: unplug and re-insert it")
            try:
                data = dev.read(REPORT_SIZE, max(1, int(left * 1000)))
            except (OSError, ValueError) as exc:
                raise HidError(f"HID read failed: {exc}") from exc
            if not data:
                continue
            report = bytes(data)
            if len(report) != REPORT_SIZE:
                continue
            cid = HEADER.unpack_from(report)[0]
            if cid != self._cid:
                continue  # another channel's traffic
            msg = assembler.feed(report)
            if msg is not None:
                return msg

    def _init(self) -> InitResponse:
        nonce = os.urandom(NONCE_SIZE)
        self._send(HidCommand.INIT, nonce)
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._receive(lambda: deadline)
            if msg.command != HidCommand.INIT or msg.payload[:NONCE_SIZE] != nonce:
                continue  # an answer to someone else's INIT
            if len(msg.payload) < NONCE_SIZE + 6:
                raise HidError("malformed HID INIT answer")
            cid, version, caps = struct.unpack_from(">IBB", msg.payload, NONCE_SIZE)
            if version != FRAMING_VERSION:
                raise HidError(f"HID framing version {version} not supported (need 1)")
            if cid == BROADCAST_CID:
                raise HidError("token assigned the broadcast channel: refusing")
            return InitResponse(cid, version, caps)

    # -- Connection -----------------------------------------------------------------------------
    def transmit(self, apdu: bytes) -> bytes:
        self._send(HidCommand.APDU, bytes(apdu))
        start = time.monotonic()
        last = [start]

        def deadline() -> float:
            return min(last[0] + self.timeout, start + self.max_wait)

        while True:
            msg = self._receive(deadline)
            if msg.command == HidCommand.APDU:
                return msg.payload
            if msg.command == HidCommand.KEEPALIVE:
                last[0] = time.monotonic()
                if msg.payload and self.on_status is not None:
                    try:
                        status = HidStatus(msg.payload[0])
                    except ValueError:
                        continue
                    self.on_status(status)
                continue
            if msg.command == HidCommand.ERROR:
                code = msg.payload[0] if msg.payload else HidErrorCode.OTHER
                try:
                    name = HidErrorCode(code).name.lower().replace("_", " ")
                except ValueError:
                    name = f"error {code:#x}"
                if code == HidErrorCode.CANCELLED:
                    raise HidError(
                        "the request was cancelled: the token stopped before acting on it, so "
                        "nothing was done on the token"
                    )
                raise HidError(f"HID token reported an error: {name}")
            logger.debug("ignoring HID message %#x while waiting for an answer", msg.command)

    def cancel(self) -> None:
        """Ask the token to abandon the request in progress (safe from another thread).

        The waiting :meth:`transmit` then raises :class:`HidError` ("cancelled") if the token
        stopped before doing anything, or returns the real answer if it could not stop."""
        self._send(HidCommand.CANCEL)

    def close(self) -> None:
        dev, self._dev = self._dev, None
        if dev is not None:
            with contextlib.suppress(OSError):  # device already gone
                dev.close()


# -- hidapi glue (the only place `hid` is imported) ---------------------------------------------
def _hidapi() -> Any:
    try:
        import hid
    except ImportError as exc:
        raise HidError("HID support is not installed: pip install 'ebank-auth[hid]'") from exc
    return hid


def list_devices(usage_page: int = USAGE_PAGE) -> list[TokenDevice]:
    """HID devices that advertise the token usage page."""
    hid = _hidapi()
    out = []
    for info in hid.enumerate():
        if int(info.get("usage_page") or 0) != usage_page:
            continue
        path = info.get("path") or b""
        name = path.decode(errors="replace") if isinstance(path, bytes) else str(path)
        out.append(
            TokenDevice(
                kind=DeviceKind.HID,
                name=name,
                serial=info.get("serial_number") or None,
                details={
                    "vendor_id": f"{int(info.get('vendor_id') or 0):04x}",
                    "product_id": f"{int(info.get('product_id') or 0):04x}",
                    "product": str(info.get("product_string") or ""),
                },
            )
        )
    return out


def open_hid(path: str, **kwargs: Any) -> HidConnection:
    """Open the HID token at ``path`` (as listed by :func:`list_devices`)."""
    hid = _hidapi()
    dev = hid.device()
    try:
        dev.open_path(path.encode())
    except (OSError, ValueError) as exc:
        raise HidError(
            f"cannot open HID device {path}: {exc}; check it is plugged in and that you may "
            "access it (udev rule for /dev/hidraw*)"
        ) from exc
    return HidConnection(dev, path=path, **kwargs)
