"""The vpcd link: attaches a :class:`CardProtocol` to a real pcscd through the vpcd driver.

vpcd (from vsmartcard) is a pcscd reader driver that *listens* on TCP (default port 35963 for
reader ``Virtual PCD 00 00``, 35964 for ``… 00 01``); the card is the TCP **client**.  Every
message in both directions is a 2-byte big-endian length followed by the payload.  A one-byte
payload from vpcd is a control code (:class:`VpcdControl`): power off, power on, reset (no reply)
and get-ATR (reply with the ATR).  A longer payload is a command APDU; the reply is the response
APDU (data + SW1 SW2).

Latency: vpcd writes the length and the body in two segments.  Without ``TCP_NODELAY`` and
``TCP_QUICKACK`` (re-armed before every ``recv``; Linux clears it after each ACK) each APDU costs
about 40 ms of delayed-ACK; with them the round trip is about 0.1 ms.

When pcscd restarts the connection drops; the link powers the card off and reconnects until
:meth:`VpcdLink.stop` is called.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Callable
from enum import IntEnum

from ebank_auth.usbkey.card_interface import CardProtocol

__all__ = ["DEFAULT_VPCD_PORT", "VpcdControl", "VpcdLink"]

logger = logging.getLogger("ebank_auth.usbkey.emulator.vpcd")

#: vpcd's default port for reader ``Virtual PCD 00 00`` (the next port is reader ``00 01``).
DEFAULT_VPCD_PORT = 35963
_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", 12)
_SW_INTERNAL_ERROR = b"\x6f\x00"


class VpcdControl(IntEnum):
    """One-byte control messages sent by vpcd to the card."""

    POWER_OFF = 0x00
    POWER_ON = 0x01
    RESET = 0x02
    GET_ATR = 0x04


class _Closed(Exception):
    """The peer closed the connection (pcscd stopped or restarted)."""


class VpcdLink:
    """Runs a card behind vpcd.  Use :meth:`start` (background thread) or :meth:`run`
    (blocking, e.g. a foreground daemon), and :meth:`stop` to end either.

    ``on_connection(up)`` is called when the TCP connection comes up or goes down.
    ``connect`` overrides how the TCP socket is opened (tests use it to reach a pcscd in another
    network namespace); by default it connects to ``host:port``.  ``reconnect`` keeps trying while
    vpcd is not there (pcscd not started yet or restarting); ``retry_interval`` is the pause
    between attempts in seconds.
    """

    def __init__(
        self,
        card: CardProtocol,
        host: str = "127.0.0.1",
        port: int = DEFAULT_VPCD_PORT,
        *,
        connect: Callable[[], socket.socket] | None = None,
        reconnect: bool = True,
        retry_interval: float = 0.1,
        on_connection: Callable[[bool], None] | None = None,
        on_card_seen: Callable[[], None] | None = None,
    ) -> None:
        self.card = card
        self.host = host
        self.port = port
        self._connect = connect or self._default_connect
        self.reconnect = reconnect
        self.retry_interval = retry_interval
        self.on_connection = on_connection
        self.on_card_seen = on_card_seen
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._sock_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: set while a TCP connection to vpcd is up
        self.connected = threading.Event()
        #: number of successful connections so far (a reconnect after pcscd restart adds one)
        self.connections = 0
        #: number of command APDUs answered
        self.apdus = 0
        #: set once the ATR was sent after a power-on: pcscd now sees a card in the reader
        self.card_seen = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> VpcdLink:
        """Run the link in a daemon thread and return immediately."""
        if self._thread is not None:
            raise RuntimeError("vpcd link already started")
        self._thread = threading.Thread(
            target=self.run, name=f"vpcd-link-{self.host}:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """Disconnect (the reader then shows no card) and end :meth:`run`."""
        self._stop.set()
        with self._sock_lock:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self.connected.wait(timeout)

    def __enter__(self) -> VpcdLink:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the loop -------------------------------------------------------------------------------
    def _default_connect(self) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=5.0)

    def run(self) -> None:
        """Connect and serve until :meth:`stop`; reconnects when vpcd goes away."""
        while not self._stop.is_set():
            try:
                sock = self._connect()
            except OSError as exc:
                if not self.reconnect:
                    raise
                logger.debug(
                    "vpcd at %s:%s not reachable (%s); retrying", self.host, self.port, exc
                )
                self._stop.wait(self.retry_interval)
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._sock_lock:
                if self._stop.is_set():
                    sock.close()
                    break
                self._sock = sock
            self.connections += 1
            self.connected.set()
            self._notify(True)
            logger.info("software token connected to vpcd at %s:%s", self.host, self.port)
            try:
                self._serve(sock)
            except (_Closed, OSError) as exc:
                logger.info("vpcd connection ended: %s", exc or "closed")
            finally:
                self.connected.clear()
                self.card_seen.clear()
                with self._sock_lock:
                    self._sock = None
                sock.close()
                with contextlib.suppress(Exception):
                    self.card.power_off()
                self._notify(False)
            if not self.reconnect:
                break
            self._stop.wait(self.retry_interval)

    def _notify(self, up: bool) -> None:
        if self.on_connection is not None:
            try:
                self.on_connection(up)
            except Exception:
                logger.exception("vpcd connection callback failed")

    @staticmethod
    def _recv_exact(sock: socket.socket, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise _Closed("vpcd closed the connection")
            buf += chunk
        return bytes(buf)

    @staticmethod
    def _send(sock: socket.socket, payload: bytes) -> None:
        sock.sendall(struct.pack(">H", len(payload)) + payload)

    def _serve(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            (length,) = struct.unpack(">H", self._recv_exact(sock, 2))
            msg = self._recv_exact(sock, length) if length else b""
            if len(msg) == 1:
                self._control(sock, msg[0])
                continue
            try:
                resp = bytes(self.card.process_apdu(msg))
            except Exception:  # a card bug must not kill the reader link
                logger.exception("software token failed on an APDU; answering 6F00")
                resp = _SW_INTERNAL_ERROR
            self.apdus += 1
            self._send(sock, resp)

    def _control(self, sock: socket.socket, code: int) -> None:
        if code == VpcdControl.POWER_OFF:
            self.card.power_off()
        elif code == VpcdControl.POWER_ON:
            self.card.power_on()
        elif code == VpcdControl.RESET:
            self.card.reset()
        elif code == VpcdControl.GET_ATR:
            self._send(sock, self.card.atr())
            if not self.card_seen.is_set():
                self.card_seen.set()
                if self.on_card_seen is not None:
                    try:
                        self.on_card_seen()
                    except Exception:
                        logger.exception("vpcd card-seen callback failed")
        else:
            logger.warning("unknown vpcd control byte %02X ignored", code)
