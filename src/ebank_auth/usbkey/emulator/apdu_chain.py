"""Long commands and long answers on a short-APDU card, done one way for every applet.

ISO 7816-4 §5.1.1 **command chaining**: a command longer than one APDU is sent as several APDUs
with the chaining bit (``CLA | 0x10``) on all but the last; the card answers ``9000`` to each
part and runs the command when the last part arrives.  A part for another command than the one
being chained answers ``6883`` (last command of the chain expected) and drops the chain; a chain
longer than the applet accepts answers ``6700``.

§5.3.4 **GET RESPONSE**: an answer longer than the host asked for (or than one APDU holds) is
sent in pieces: ``61xx`` says how many bytes are left (``6100``: 256 or more) and ``GET
RESPONSE`` fetches the next piece; any other command drops what was left.

The token application, the PIV applet and the CTAP2 applet each hold one :class:`CommandChain`
and one :class:`PendingResponse`.
"""

from __future__ import annotations

from ebank_auth.usbkey.apdu import StatusWord

__all__ = ["CommandChain", "PendingResponse"]


class CommandChain:
    """The parts of a chained command received so far (at most ``max_length`` bytes)."""

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self._header: bytes | None = None
        self._data = bytearray()

    @property
    def open(self) -> bool:
        """A chain has started and its last part has not come yet."""
        return self._header is not None

    def reset(self) -> None:
        """Drop a chain left unfinished (a new session, a malformed APDU)."""
        self._header = None
        self._data = bytearray()

    def add(self, header: bytes, data: bytes, chaining: bool) -> bytes | int:
        """One APDU of command ``header`` (CLA without the chaining bit, INS, P1, P2 — or the
        part of it that must stay the same along the chain).

        Returns the whole command data when this APDU completes the command, else the status
        word to answer at once: ``9000`` (send the next part), ``6883`` or ``6700``."""
        if self._header is not None and self._header != header:
            self.reset()
            return int(StatusWord.LAST_COMMAND_OF_CHAIN_EXPECTED)
        if chaining:
            self._header = header
            self._data.extend(data)
            if len(self._data) > self.max_length:
                self.reset()
                return int(StatusWord.WRONG_LENGTH)
            return int(StatusWord.SUCCESS)
        body = bytes(self._data) + data
        self.reset()
        if len(body) > self.max_length:
            return int(StatusWord.WRONG_LENGTH)
        return body


class PendingResponse:
    """The rest of a long answer, fetched with GET RESPONSE in pieces of ``chunk`` bytes."""

    def __init__(self, chunk: int = 256) -> None:
        self.chunk = chunk
        self._rest = b""

    def clear(self) -> None:
        """Any command but GET RESPONSE drops what was left."""
        self._rest = b""

    def _left(self) -> int:
        left = len(self._rest)
        return int(StatusWord.BYTES_REMAINING_FAMILY) | (left if left < 256 else 0)

    def answer(self, data: bytes, sw: int, le: int | None) -> tuple[bytes, int]:
        """The first piece of ``data`` (``le`` bytes when the host asked for more than a chunk);
        ``61xx`` when more is left, else ``sw``."""
        limit = le if le is not None and le > self.chunk else self.chunk
        if len(data) <= limit:
            return data, sw
        self._rest = data[limit:]
        return data[:limit], self._left()

    def get_response(self, le: int | None) -> tuple[bytes, int]:
        """The next piece (``le`` bytes, or a chunk); ``6985`` when nothing is left."""
        if not self._rest:
            return b"", int(StatusWord.CONDITIONS_NOT_SATISFIED)
        n = le or self.chunk
        piece, self._rest = self._rest[:n], self._rest[n:]
        return piece, (self._left() if self._rest else int(StatusWord.SUCCESS))
