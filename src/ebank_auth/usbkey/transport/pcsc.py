"""PC/SC transport through pyscard — the only module in ebank_auth that imports ``smartcard``.

Uses pyscard's thin ``smartcard.scard`` layer (one call per PC/SC function) so the library adds
almost nothing per APDU.  Every PC/SC failure becomes a typed error:

=================================================  ==========================================
PC/SC result                                       error
=================================================  ==========================================
``SCARD_E_NO_SERVICE`` / ``SERVICE_STOPPED`` /     :class:`PcscUnavailable` ("start pcscd")
no context / pyscard not installed
``SCARD_E_NO_READERS_AVAILABLE`` /                 :class:`ReaderNotFound`
``UNKNOWN_READER`` / ``READER_UNAVAILABLE``
``SCARD_E_SHARING_VIOLATION``                      :class:`ReaderBusy` (another program holds it)
``SCARD_E_NO_SMARTCARD`` / ``W_REMOVED_CARD`` /    :class:`CardNotPresent`
``W_UNPOWERED_CARD`` / ``W_UNRESPONSIVE_CARD``
anything else                                      :class:`TransportError` with the code
=================================================  ==========================================

pcsc-lite reads ``PCSCLITE_CSOCK_NAME`` (the daemon's socket path) once per process, at the first
context; set it before the first call if pcscd listens somewhere else.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ebank_auth.errors import (
    CardNotPresent,
    PcscUnavailable,
    ReaderBusy,
    ReaderNotFound,
    TransportError,
)
from ebank_auth.usbkey.transport.base import Connection, DeviceKind, TokenDevice

__all__ = [
    "PcscConnection",
    "ReaderState",
    "ShareMode",
    "list_devices",
    "list_readers",
    "open_reader",
    "reader_states",
    "resolve_reader",
    "wait_for_card",
]

logger = logging.getLogger("ebank_auth.usbkey.transport.pcsc")

# PC/SC result codes (pcsc-lite / winscard), as unsigned 32-bit values.
_S_SUCCESS = 0x00000000
_E_CANCELLED = 0x80100002
_E_INVALID_HANDLE = 0x80100003
_E_UNKNOWN_READER = 0x80100009
_E_TIMEOUT = 0x8010000A
_E_SHARING_VIOLATION = 0x8010000B
_E_NO_SMARTCARD = 0x8010000C
_E_PROTO_MISMATCH = 0x8010000F
_E_READER_UNAVAILABLE = 0x80100017
_E_NO_SERVICE = 0x8010001D
_E_SERVICE_STOPPED = 0x8010001E
_E_NO_READERS_AVAILABLE = 0x8010002E
_W_UNRESPONSIVE_CARD = 0x80100066
_W_UNPOWERED_CARD = 0x80100067
_W_RESET_CARD = 0x80100068
_W_REMOVED_CARD = 0x80100069

_STATE_UNAWARE = 0x0000
_STATE_CHANGED = 0x0002
_STATE_UNKNOWN = 0x0004
_STATE_UNAVAILABLE = 0x0008
_STATE_EMPTY = 0x0010
_STATE_PRESENT = 0x0020
_STATE_EXCLUSIVE = 0x0080
_STATE_INUSE = 0x0100
_STATE_MUTE = 0x0200

_SCOPE_USER = 0
_LEAVE_CARD = 0
_PROTOCOL_T0 = 1
_PROTOCOL_T1 = 2


class ShareMode(IntEnum):
    """How a connection holds the reader (PC/SC share modes)."""

    EXCLUSIVE = 1  # nobody else may connect while we hold it
    SHARED = 2  # others may connect; use for read-only tools


def _scard() -> Any:
    try:
        from smartcard import scard
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise PcscUnavailable(
            "PC/SC support is not installed: pip install 'ebank-auth[pcsc]' "
            "(needs libpcsclite-dev and a C compiler)"
        ) from exc
    return scard


def _u32(code: int) -> int:
    return code & 0xFFFFFFFF


def _error(code: int, what: str, reader: str | None = None) -> TransportError:
    """Map a PC/SC result code to a typed transport error."""
    code = _u32(code)
    where = f" ({reader})" if reader else ""
    if code in (_E_NO_SERVICE, _E_SERVICE_STOPPED, _E_INVALID_HANDLE):
        return PcscUnavailable(
            "PC/SC service not running or it went away: start pcscd "
            "(e.g. 'pcscd' or 'systemctl start pcscd') and retry"
        )
    if code == _E_NO_READERS_AVAILABLE:
        return ReaderNotFound()
    if code in (_E_UNKNOWN_READER, _E_READER_UNAVAILABLE):
        return ReaderNotFound(
            f"reader not found{where}: run 'ebank-auth token list' to see the readers"
        )
    if code == _E_SHARING_VIOLATION:
        return ReaderBusy(
            f"the reader{where} is held exclusively by another program: close the other "
            "program (browser plug-in, bank client, another ebank-auth) and try again"
        )
    if code in (_E_NO_SMARTCARD, _W_REMOVED_CARD, _W_UNPOWERED_CARD, _W_UNRESPONSIVE_CARD):
        return CardNotPresent(f"no token in the reader{where}: insert the token and try again")
    if code == _W_RESET_CARD:
        return TransportError(f"the token{where} was reset by another program: reconnect")
    return TransportError(f"PC/SC {what} failed{where}: error 0x{code:08X}")


class _Context:
    """A PC/SC context (``SCardEstablishContext``), released on close."""

    def __init__(self) -> None:
        self.scard = _scard()
        try:
            hr, ctx = self.scard.SCardEstablishContext(_SCOPE_USER)
        except Exception as exc:  # pyscard raises on some platforms instead of returning
            raise PcscUnavailable() from exc
        if _u32(hr) != _S_SUCCESS:
            raise _error(hr, "establish context")
        self.handle: Any = ctx

    def close(self) -> None:
        if self.handle is not None:
            self.scard.SCardReleaseContext(self.handle)
            self.handle = None

    def __enter__(self) -> _Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def readers(self) -> list[str]:
        hr, readers = self.scard.SCardListReaders(self.handle, [])
        if _u32(hr) == _E_NO_READERS_AVAILABLE:
            return []
        if _u32(hr) != _S_SUCCESS:
            raise _error(hr, "list readers")
        return [str(r) for r in readers]

    def states(self, readers: list[str], timeout_ms: int = 0) -> list[tuple[str, int, bytes]]:
        if not readers:
            return []
        hr, states = self.scard.SCardGetStatusChange(
            self.handle, timeout_ms, [(r, _STATE_UNAWARE) for r in readers]
        )
        if _u32(hr) != _S_SUCCESS:
            raise _error(hr, "get reader status")
        return [(str(r), int(ev), bytes(atr)) for r, ev, atr in states]


@dataclass(frozen=True)
class ReaderState:
    """What PC/SC reports about one reader: card presence, exclusive use by someone, the ATR."""

    reader: str
    card_present: bool
    in_use: bool
    exclusive: bool
    mute: bool
    atr: bytes


def list_readers() -> list[str]:
    """Names of all PC/SC readers (empty list when none).  :class:`PcscUnavailable` when pcscd
    is not running."""
    with _Context() as ctx:
        return ctx.readers()


def reader_states(readers: list[str] | None = None) -> list[ReaderState]:
    """Current state of the given readers (default: all)."""
    with _Context() as ctx:
        names = ctx.readers() if readers is None else readers
        out = []
        for name, ev, atr in ctx.states(names):
            out.append(
                ReaderState(
                    reader=name,
                    card_present=bool(ev & _STATE_PRESENT),
                    in_use=bool(ev & _STATE_INUSE),
                    exclusive=bool(ev & _STATE_EXCLUSIVE),
                    mute=bool(ev & _STATE_MUTE),
                    atr=atr if ev & _STATE_PRESENT else b"",
                )
            )
        return out


def list_devices() -> list[TokenDevice]:
    """Every reader as a :class:`TokenDevice` of kind ``pcsc``."""
    return [
        TokenDevice(
            kind=DeviceKind.PCSC,
            name=s.reader,
            card_present=s.card_present,
            atr=s.atr or None,
            details={"in_use": str(s.in_use).lower(), "exclusive": str(s.exclusive).lower()},
        )
        for s in reader_states()
    ]


def resolve_reader(reader: str | int | None, readers: list[str]) -> str:
    """Pick a reader by exact name, by index, by unique substring, or (``None``) the only/first
    reader.  :class:`ReaderNotFound` when nothing (or several) match."""
    if not readers:
        raise ReaderNotFound()
    if reader is None:
        return readers[0]
    if isinstance(reader, int) or (isinstance(reader, str) and reader.isdigit()):
        idx = int(reader)
        if 0 <= idx < len(readers):
            return readers[idx]
        raise ReaderNotFound(f"no reader number {idx}: there are {len(readers)} reader(s)")
    if reader in readers:
        return reader
    matches = [r for r in readers if reader.lower() in r.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ReaderNotFound(
            f"no reader named {reader!r}: available readers are {', '.join(readers)}"
        )
    raise ReaderNotFound(f"{reader!r} matches several readers ({', '.join(matches)}): be precise")


def wait_for_card(reader: str, timeout: float, present: bool = True) -> bool:
    """Block until a card is (``present=True``) or is not (``False``) in ``reader``.

    Returns False when ``timeout`` seconds pass first.  Waits in ``SCardGetStatusChange``
    (pcscd wakes us on a change), not in a sleep loop."""
    deadline = time.monotonic() + timeout
    with _Context() as ctx:
        current = ctx.states([reader])[0][1]
        while bool(current & _STATE_PRESENT) != present:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            hr, states = ctx.scard.SCardGetStatusChange(
                ctx.handle, max(1, int(left * 1000)), [(reader, current & ~_STATE_CHANGED)]
            )
            hr = _u32(hr)
            if hr == _E_TIMEOUT:
                return False
            if hr != _S_SUCCESS:
                raise _error(hr, "wait for card", reader)
            current = int(states[0][1])
        return True


class PcscConnection(Connection):
    """A connection to the card in one PC/SC reader.

    ``share`` defaults to :attr:`ShareMode.EXCLUSIVE`: while it is open no other program can
    talk to the token (others get :class:`ReaderBusy`).
    """

    def __init__(self, reader: str, *, share: ShareMode = ShareMode.EXCLUSIVE) -> None:
        self.reader = reader
        self._ctx = _Context()
        scard = self._ctx.scard
        try:
            hr, hcard, proto = scard.SCardConnect(
                self._ctx.handle, reader, int(share), _PROTOCOL_T0 | _PROTOCOL_T1
            )
            if _u32(hr) != _S_SUCCESS:
                raise _error(hr, "connect", reader)
        except BaseException:
            self._ctx.close()
            raise
        self._card: Any = hcard
        self._pci = scard.SCARD_PCI_T1 if proto == _PROTOCOL_T1 else scard.SCARD_PCI_T0
        self._transmit = scard.SCardTransmit
        self._atr = b""
        hr, _name, _state, _proto, atr = scard.SCardStatus(hcard)
        if _u32(hr) == _S_SUCCESS:
            self._atr = bytes(atr)
        logger.debug("connected to %s (%s, ATR %s)", reader, share.name, self._atr.hex())

    @property
    def description(self) -> str:
        return f"pcsc:{self.reader}"

    @property
    def atr(self) -> bytes:
        return self._atr

    def transmit(self, apdu: bytes) -> bytes:
        if self._card is None:
            raise TransportError("the PC/SC connection is closed")
        hr, resp = self._transmit(self._card, self._pci, list(apdu))
        if hr:
            raise _error(hr, "transmit", self.reader)
        return bytes(resp)

    def close(self) -> None:
        if self._card is not None:
            self._ctx.scard.SCardDisconnect(self._card, _LEAVE_CARD)
            self._card = None
        self._ctx.close()


def open_reader(
    reader: str | int | None = None, *, share: ShareMode = ShareMode.EXCLUSIVE
) -> PcscConnection:
    """Connect to the token in ``reader`` (name, index or unique substring; ``None``: the first
    reader holding a card, else the first reader)."""
    with _Context() as ctx:
        readers = ctx.readers()
        if reader is None and readers:
            with_card = [name for name, ev, _ in ctx.states(readers) if ev & _STATE_PRESENT]
            name = with_card[0] if with_card else readers[0]
        else:
            name = resolve_reader(reader, readers)
    return PcscConnection(name, share=share)
