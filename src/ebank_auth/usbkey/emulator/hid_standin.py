"""A stand-in for a hidapi device object, with a card behind it speaking our HID framing.

This machine (and CI) has no ``/dev/uhid`` and no USB, so a HID token cannot be emulated at the
kernel level.  :class:`HidTokenStandIn` takes the place of the ``hid.device`` object instead: the
host side (:class:`ebank_auth.usbkey.transport.hid.HidConnection`) is the real production code,
the token side here decodes reports, runs any :class:`CardProtocol` in a worker thread, sends
KEEPALIVE while the card works and passes CANCEL on.  Only the USB/kernel layer is missing.

CANCEL is honest: a card that implements
:class:`~ebank_auth.usbkey.card_interface.CancellableCard` (the software token does) gets the
cancel event and may abandon the command at a point where it has changed nothing; only then does
the host get ERROR ``CANCELLED``.  Otherwise the command runs to its end and the host gets its
real answer, so "cancelled" always means "nothing was done".
"""

from __future__ import annotations

import logging
import os
import queue
import struct
import threading

from ebank_auth.errors import HidError
from ebank_auth.usbkey.card_interface import CancellableCard, CardProtocol
from ebank_auth.usbkey.hid_framing import (
    BROADCAST_CID,
    FRAMING_VERSION,
    NONCE_SIZE,
    REPORT_SIZE,
    HidCapability,
    HidCommand,
    HidErrorCode,
    HidMessage,
    HidStatus,
    MessageAssembler,
    encode_message,
)

__all__ = ["HidTokenStandIn"]

logger = logging.getLogger("ebank_auth.usbkey.emulator.hid_standin")


class HidTokenStandIn:
    """Looks like an open ``hid.device``: ``write`` / ``read(max_length, timeout_ms)`` /
    ``close``.  ``keepalive_interval`` is how often KEEPALIVE goes out while the card works."""

    def __init__(
        self,
        card: CardProtocol,
        *,
        keepalive_interval: float = 0.05,
        capabilities: int = HidCapability.KEEPALIVE | HidCapability.CANCEL | HidCapability.BUTTON,
    ) -> None:
        self.card = card
        self.keepalive_interval = keepalive_interval
        self.capabilities = capabilities
        self._out: queue.Queue[bytes] = queue.Queue()
        self._asm = MessageAssembler()
        self._lock = threading.Lock()
        self._cid: int | None = None
        self._busy: threading.Thread | None = None
        self._status = HidStatus.PROCESSING
        self._request_id = 0
        #: set when the host sent CANCEL for the request in progress
        self.cancelled = threading.Event()
        self.closed = False
        self.written_reports: list[bytes] = []
        card.power_on()

    # -- hidapi device surface ------------------------------------------------------------------
    def write(self, data: bytes | list[int]) -> int:
        raw = bytes(data)
        if self.closed:
            raise OSError("device closed")
        if len(raw) != REPORT_SIZE + 1 or raw[0] != 0:
            raise ValueError("expected a 65-byte write: report ID 0 then a 64-byte report")
        report = raw[1:]
        self.written_reports.append(report)
        with self._lock:
            try:
                msg = self._asm.feed(report)
            except HidError:
                cid = struct.unpack_from(">I", report)[0]
                self._emit(cid, HidCommand.ERROR, bytes([HidErrorCode.INVALID_SEQUENCE]))
                return len(raw)
            if msg is not None:
                self._handle(msg)
        return len(raw)

    def read(self, max_length: int, timeout_ms: int = 0) -> list[int]:
        try:
            report = self._out.get(timeout=max(timeout_ms, 0) / 1000 if timeout_ms else None)
        except queue.Empty:
            return []
        return list(report[:max_length])

    def close(self) -> None:
        self.closed = True
        self.cancelled.set()
        self.card.power_off()

    # -- token side -----------------------------------------------------------------------------
    def report_status(self, status: HidStatus) -> None:
        """Called by the card while it works (e.g. ``WAITING_FOR_BUTTON``)."""
        self._status = status
        if self._cid is not None:
            self._emit(self._cid, HidCommand.KEEPALIVE, bytes([status]))

    def _emit(self, cid: int, command: int, payload: bytes) -> None:
        for report in encode_message(cid, command, payload):
            self._out.put(report)

    def _handle(self, msg: HidMessage) -> None:
        if msg.command == HidCommand.INIT:
            if msg.cid != BROADCAST_CID or len(msg.payload) != NONCE_SIZE:
                self._emit(msg.cid, HidCommand.ERROR, bytes([HidErrorCode.INVALID_LENGTH]))
                return
            cid = int.from_bytes(os.urandom(4), "big") % 0xFFFFFFFE + 1
            self._cid = cid
            self._emit(
                BROADCAST_CID,
                HidCommand.INIT,
                msg.payload + struct.pack(">IBB", cid, FRAMING_VERSION, self.capabilities),
            )
            return
        if self._cid is None or msg.cid != self._cid:
            self._emit(msg.cid, HidCommand.ERROR, bytes([HidErrorCode.INVALID_CHANNEL]))
            return
        if msg.command == HidCommand.CANCEL:
            # passed on to the card; the worker sends the one final answer (CANCELLED only when
            # the card abandoned the command before it had any effect)
            if self._busy is not None and self._busy.is_alive():
                self.cancelled.set()
            return
        if msg.command != HidCommand.APDU:
            self._emit(self._cid, HidCommand.ERROR, bytes([HidErrorCode.INVALID_COMMAND]))
            return
        if self._busy is not None and self._busy.is_alive():
            self._emit(self._cid, HidCommand.ERROR, bytes([HidErrorCode.CHANNEL_BUSY]))
            return
        self.cancelled.clear()
        self._status = HidStatus.PROCESSING
        self._request_id += 1
        worker = threading.Thread(
            target=self._work, args=(self._cid, self._request_id, msg.payload), daemon=True
        )
        self._busy = worker
        worker.start()

    def _work(self, cid: int, request_id: int, apdu: bytes) -> None:
        done = threading.Event()

        def keepalive() -> None:
            while not done.wait(self.keepalive_interval):
                if self._request_id != request_id or self.closed:
                    return
                self._emit(cid, HidCommand.KEEPALIVE, bytes([self._status]))

        ticker = threading.Thread(target=keepalive, daemon=True)
        ticker.start()
        resp: bytes | None
        try:
            if isinstance(self.card, CancellableCard):
                out = self.card.process_apdu_cancellable(apdu, self.cancelled)
                resp = None if out is None else bytes(out)
            else:
                resp = bytes(self.card.process_apdu(apdu))
        except Exception:
            logger.exception("card failed on an APDU behind the HID stand-in")
            resp = b"\x6f\x00"
        finally:
            done.set()
        with self._lock:
            if self._request_id == request_id and not self.closed:
                if resp is None:
                    self._emit(cid, HidCommand.ERROR, bytes([HidErrorCode.CANCELLED]))
                else:
                    self._emit(cid, HidCommand.APDU, resp)
