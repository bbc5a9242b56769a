"""ISO/IEC 7816-4 APDUs: command/response objects, status words and a send pipeline.

What lives here:

* :class:`CommandApdu` — CLA INS P1 P2, optional data (Lc) and expected length (Le), encoded in
  short or extended form; :meth:`CommandApdu.parse` for the token side.
* :class:`ResponseApdu` — response data plus the status word SW1SW2.
* :class:`StatusWord` — the status words this library knows, and :func:`raise_for_status`, which
  turns a failing status word into a typed error from :mod:`ebank_auth.errors`.
* :class:`ApduConnection` — sends a :class:`CommandApdu` over a transport
  :class:`~ebank_auth.usbkey.transport.base.Connection` and handles what ISO 7816-4 leaves to the
  host: command chaining (CLA bit ``0x10``) when the data does not fit a short APDU and the token
  has no extended length, ``61xx`` GET RESPONSE loops and ``6Cxx`` re-sends with the right Le.

Traffic is logged at DEBUG on the ``ebank_auth.usbkey.apdu`` logger.  Data of commands marked
``sensitive`` (PIN verify/change/unblock, secure-channel payloads, key material) — and the data of
their responses — is logged only as ``<redacted N bytes>``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

from ebank_auth.errors import (
    ApduError,
    EncodingError,
    PinIncorrect,
    PinLocked,
    SecureChannelError,
    SecurityStatusNotSatisfied,
    TokenError,
)

if TYPE_CHECKING:
    from ebank_auth.usbkey.transport.base import Connection

__all__ = [
    "CHAINING_BIT",
    "SENSITIVE_INS",
    "ApduConnection",
    "CommandApdu",
    "Ins",
    "ResponseApdu",
    "StatusWord",
    "default_redact",
    "error_for_status",
    "raise_for_status",
]

logger = logging.getLogger("ebank_auth.usbkey.apdu")

#: CLA bit that marks "more commands of this chain follow" (ISO 7816-4 §5.1.1.1).
CHAINING_BIT = 0x10

SHORT_MAX_LC = 255
SHORT_MAX_LE = 256
EXTENDED_MAX_LC = 65535
EXTENDED_MAX_LE = 65536

#: How many GET RESPONSE rounds the pipeline follows before giving up (64 KiB at 256 bytes each).
MAX_GET_RESPONSE_ROUNDS = 257


class Ins(IntEnum):
    """Interindustry instruction bytes the transport layer itself needs or redacts."""

    VERIFY = 0x20
    CHANGE_REFERENCE_DATA = 0x24
    RESET_RETRY_COUNTER = 0x2C
    SELECT = 0xA4
    GET_RESPONSE = 0xC0


#: Instructions whose data is always redacted in logs, whatever the command says.
SENSITIVE_INS = frozenset({Ins.VERIFY, Ins.CHANGE_REFERENCE_DATA, Ins.RESET_RETRY_COUNTER})


class StatusWord(IntEnum):
    """ISO 7816-4 status words (SW1SW2).  ``*_FAMILY`` members are the xx00 base of a family
    whose low byte carries a value (61xx bytes remaining, 6Cxx exact Le, 63Cx retries left)."""

    SUCCESS = 0x9000
    BYTES_REMAINING_FAMILY = 0x6100  # 61xx: xx more bytes with GET RESPONSE (00 = 256 or more)
    WARNING_NVM_UNCHANGED = 0x6200
    WARNING_END_OF_FILE = 0x6282
    WARNING_NVM_CHANGED = 0x6300
    VERIFY_FAILED_FAMILY = 0x63C0  # 63Cx: wrong PIN, x tries left
    EXEC_ERROR_NVM_UNCHANGED = 0x6400
    MEMORY_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882
    LAST_COMMAND_OF_CHAIN_EXPECTED = 0x6883
    CHAINING_NOT_SUPPORTED = 0x6884
    COMMAND_NOT_ALLOWED = 0x6900
    COMMAND_INCOMPATIBLE = 0x6981
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_NOT_USABLE = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED_NO_EF = 0x6986
    SM_DATA_OBJECTS_MISSING = 0x6987
    SM_DATA_OBJECTS_INCORRECT = 0x6988
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    NOT_ENOUGH_MEMORY = 0x6A84
    INCORRECT_P1P2 = 0x6A86
    LC_INCONSISTENT_WITH_P1P2 = 0x6A87
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    DATA_ALREADY_EXISTS = 0x6A89  # e.g. GENERATE KEY on a container that holds a key
    WRONG_P1P2 = 0x6B00
    WRONG_LE_FAMILY = 0x6C00  # 6Cxx: re-send with Le = xx (00 = 256)
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00

    @staticmethod
    def verify_failed(remaining: int) -> int:
        """``63Cx``: wrong PIN, ``x`` tries left (0 means the PIN is now locked)."""
        return 0x63C0 | max(0, min(remaining, 15))

    @staticmethod
    def describe(sw: int) -> str:
        """A short human description of any status word (family members included)."""
        if sw >> 8 == 0x61:
            return f"{sw & 0xFF or 256} bytes remaining"
        if sw >> 8 == 0x6C:
            return f"wrong Le, exact length is {sw & 0xFF or 256}"
        if sw & 0xFFF0 == 0x63C0:
            return f"verification failed, {sw & 0x0F} tries left"
        try:
            return StatusWord(sw).name.lower().replace("_", " ")
        except ValueError:
            return "unknown status"


def error_for_status(sw: int) -> TokenError | None:
    """The typed error a status word stands for, or ``None`` for success (``9000``)."""
    if sw == StatusWord.SUCCESS:
        return None
    if sw & 0xFFF0 == StatusWord.VERIFY_FAILED_FAMILY:
        return PinIncorrect(remaining=sw & 0x0F)
    if sw == StatusWord.AUTH_METHOD_BLOCKED:
        return PinLocked()
    if sw == StatusWord.SECURITY_STATUS_NOT_SATISFIED:
        return SecurityStatusNotSatisfied()
    if sw in (StatusWord.SM_DATA_OBJECTS_MISSING, StatusWord.SM_DATA_OBJECTS_INCORRECT):
        return SecureChannelError()
    meaning = _USER_MEANING.get(sw)
    if meaning is None:
        meaning = (
            f"the token refused the command ({StatusWord.describe(sw)}): check that it is the "
            "right token and that this program supports it, then retry"
        )
    return ApduError(sw, f"{meaning} [status {sw:04X}]")


#: What a failing status word means for the user, and what to do (the hex code is appended).
_USER_MEANING: dict[int, str] = {
    StatusWord.WRONG_LENGTH: "the token rejected the length of a command: this program and the "
    "token disagree on the protocol; update the program or use a supported token",
    StatusWord.WRONG_DATA: "the token rejected the data of a command as malformed: check the "
    "input (container name, certificate, transaction) and retry",
    StatusWord.INCORRECT_P1P2: "the token rejected a command parameter: update the program or "
    "use a supported token",
    StatusWord.WRONG_P1P2: "the token rejected a command parameter: update the program or use a "
    "supported token",
    StatusWord.INS_NOT_SUPPORTED: "the token does not support this command: use a token that "
    "runs the ebank-auth application, or update its firmware",
    StatusWord.CLA_NOT_SUPPORTED: "the token does not speak this command class: is it the right "
    "token?",
    StatusWord.FUNCTION_NOT_SUPPORTED: "the token does not offer this function (e.g. this key "
    "algorithm): choose another algorithm or token",
    StatusWord.FILE_NOT_FOUND: "the token has no ebank-auth application: is it the right token?",
    StatusWord.REFERENCED_DATA_NOT_FOUND: "the key container or object does not exist on the "
    "token: generate the key or import the certificate first",
    StatusWord.DATA_ALREADY_EXISTS: "the key container already holds a key: the token does not "
    "replace it unless asked to explicitly with the admin (SO) PIN",
    StatusWord.CONDITIONS_NOT_SATISFIED: "the token refused the command in its current state "
    "(e.g. wrong key usage or nothing displayed yet): check the order of the steps",
    StatusWord.NOT_ENOUGH_MEMORY: "the token's memory is full: delete unused containers",
    StatusWord.MEMORY_FAILURE: "the token's memory failed: the token may be damaged; contact the "
    "bank",
    StatusWord.REFERENCE_DATA_NOT_USABLE: "the PIN or key on the token cannot be used in its "
    "current state: check the token with 'ebank-auth token info'",
    StatusWord.COMMAND_NOT_ALLOWED: "the token does not allow this command now: verify the PIN "
    "or open a new session",
    StatusWord.NO_PRECISE_DIAGNOSIS: "the token failed without saying why: unplug and re-insert "
    "it and retry",
}


def raise_for_status(sw: int) -> None:
    """Raise the typed error for ``sw``; return quietly on ``9000``.

    ``63Cx`` → :class:`PinIncorrect` (``remaining=x``), ``6983`` → :class:`PinLocked`,
    ``6982`` → :class:`SecurityStatusNotSatisfied`, ``6987``/``6988`` →
    :class:`SecureChannelError`, anything else → :class:`ApduError` carrying ``sw``.
    """
    err = error_for_status(sw)
    if err is not None:
        raise err


def _check_byte(name: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise EncodingError(f"APDU {name} must be one byte (0..255), got {value}")


@dataclass(frozen=True)
class CommandApdu:
    """A command APDU.

    ``data`` is the command data field (its length is Lc); ``le`` is the number of response bytes
    expected (``None``: no Le field; 1..256 short, up to 65536 extended; ``0`` means "the
    maximum" and encodes as ``00``/``0000``).  ``sensitive`` marks the data (and the response
    data) as secret for logging: it is never part of the encoding.
    """

    cla: int
    ins: int
    p1: int = 0
    p2: int = 0
    data: bytes = b""
    le: int | None = None
    sensitive: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            _check_byte(name, getattr(self, name))
        if not isinstance(self.data, bytes):
            object.__setattr__(self, "data", bytes(self.data))
        if len(self.data) > EXTENDED_MAX_LC:
            raise EncodingError(f"APDU data too long: {len(self.data)} > {EXTENDED_MAX_LC} bytes")
        if self.le is not None and not 0 <= self.le <= EXTENDED_MAX_LE:
            raise EncodingError(f"APDU Le out of range: {self.le}")

    @property
    def needs_extended(self) -> bool:
        """True when the command cannot be written as a short APDU."""
        return len(self.data) > SHORT_MAX_LC or (self.le is not None and self.le > SHORT_MAX_LE)

    def header(self) -> bytes:
        return bytes((self.cla, self.ins, self.p1, self.p2))

    def encode(self, extended: bool | None = None) -> bytes:
        """Encode to bytes.  ``extended=None`` chooses short form when it fits; ``False`` forces
        short form (raising :class:`EncodingError` when it does not fit); ``True`` forces
        extended form."""
        if extended is None:
            extended = self.needs_extended
        elif not extended and self.needs_extended:
            raise EncodingError(
                "command does not fit a short APDU: use extended length or command chaining"
            )
        out = bytearray(self.header())
        n = len(self.data)
        if extended:
            if n:
                out += bytes((0, n >> 8, n & 0xFF)) + self.data
            if self.le is not None:
                le = 0 if self.le == EXTENDED_MAX_LE else self.le
                out += bytes((le >> 8, le & 0xFF)) if n else bytes((0, le >> 8, le & 0xFF))
        else:
            if n:
                out.append(n)
                out += self.data
            if self.le is not None:
                out.append(0 if self.le == SHORT_MAX_LE else self.le)
        return bytes(out)

    @classmethod
    def parse(cls, raw: bytes) -> CommandApdu:
        """Decode a command APDU (short or extended, cases 1-4).  Raises :class:`EncodingError`
        on any length inconsistency (the token answers ``6700`` for that)."""
        raw = bytes(raw)
        if len(raw) < 4:
            raise EncodingError("command APDU shorter than its 4-byte header")
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:  # case 2 short
            return cls(cla, ins, p1, p2, le=body[0] or SHORT_MAX_LE)
        if body[0] != 0:  # short case 3 or 4
            lc = body[0]
            if len(body) == 1 + lc:
                return cls(cla, ins, p1, p2, body[1:])
            if len(body) == 2 + lc:
                return cls(cla, ins, p1, p2, body[1 : 1 + lc], le=body[-1] or SHORT_MAX_LE)
            raise EncodingError("command APDU Lc does not match the data length")
        # extended form: first body byte is 00
        if len(body) < 3:
            raise EncodingError("truncated extended-length command APDU")
        if len(body) == 3:  # case 2 extended
            le = (body[1] << 8) | body[2]
            return cls(cla, ins, p1, p2, le=le or EXTENDED_MAX_LE)
        lc = (body[1] << 8) | body[2]
        if lc == 0:
            raise EncodingError("extended command APDU with Lc = 0")
        if len(body) == 3 + lc:
            return cls(cla, ins, p1, p2, body[3:])
        if len(body) == 5 + lc:
            le = (body[-2] << 8) | body[-1]
            return cls(cla, ins, p1, p2, body[3 : 3 + lc], le=le or EXTENDED_MAX_LE)
        raise EncodingError("extended command APDU Lc does not match the data length")


@dataclass(frozen=True)
class ResponseApdu:
    """A response APDU: ``data`` (possibly empty) and the 16-bit status word ``sw``."""

    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        return self.sw == StatusWord.SUCCESS

    def encode(self) -> bytes:
        return self.data + bytes((self.sw1, self.sw2))

    def raise_for_status(self) -> None:
        raise_for_status(self.sw)

    @classmethod
    def parse(cls, raw: bytes) -> ResponseApdu:
        """Split raw response bytes into data and SW1SW2.  Fewer than two bytes is a
        :class:`EncodingError` (a token always answers with a status word)."""
        if len(raw) < 2:
            raise EncodingError(f"response APDU of {len(raw)} byte(s) has no status word")
        return cls(bytes(raw[:-2]), (raw[-2] << 8) | raw[-1])


def default_redact(cmd: CommandApdu) -> bool:
    """Default redaction policy: the command says it is sensitive, or it is a PIN instruction."""
    return cmd.sensitive or cmd.ins in SENSITIVE_INS


def _fmt(data: bytes, redacted: bool) -> str:
    if not data:
        return "-"
    if redacted:
        return f"<redacted {len(data)} bytes>"
    return data.hex().upper()


class ApduConnection:
    """Sends :class:`CommandApdu` objects over a transport connection.

    ``extended_length`` says whether the token accepts extended APDUs; when it does not, data
    longer than 255 bytes is sent by command chaining and Le is capped at 256 (the rest comes with
    ``61xx``/GET RESPONSE).  ``redact`` decides, per command, whether data is hidden in the DEBUG
    log (default: :func:`default_redact`).  The connection is borrowed, not owned: closing an
    ``ApduConnection`` closes the transport too.
    """

    def __init__(
        self,
        connection: Connection,
        *,
        extended_length: bool = False,
        redact: Callable[[CommandApdu], bool] = default_redact,
    ) -> None:
        self.connection = connection
        self.extended_length = extended_length
        self.redact = redact

    # -- raw exchange ---------------------------------------------------------------------------
    def _exchange(self, cmd: CommandApdu, hide: bool) -> ResponseApdu:
        raw = cmd.encode(extended=self.extended_length and cmd.needs_extended)
        debug = logger.isEnabledFor(logging.DEBUG)
        if debug:
            logger.debug(
                ">> %s %s le=%s [%s]",
                cmd.header().hex().upper(),
                _fmt(cmd.data, hide),
                cmd.le,
                self.connection.description,
            )
        resp = ResponseApdu.parse(self.connection.transmit(raw))
        if debug:
            logger.debug("<< %04X %s", resp.sw, _fmt(resp.data, hide))
        return resp

    def _follow(self, cmd: CommandApdu, hide: bool) -> ResponseApdu:
        """Send one (non-chained) command; apply 6Cxx re-send and 61xx GET RESPONSE."""
        resp = self._exchange(cmd, hide)
        if resp.sw1 == 0x6C:
            cmd = CommandApdu(
                cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data, resp.sw2 or SHORT_MAX_LE, cmd.sensitive
            )
            resp = self._exchange(cmd, hide)
        data = bytearray(resp.data)
        rounds = 0
        while resp.sw1 == 0x61:
            rounds += 1
            if rounds > MAX_GET_RESPONSE_ROUNDS:
                raise ApduError(resp.sw, "token keeps answering 61xx: response never ends")
            get = CommandApdu(
                cmd.cla & ~CHAINING_BIT & 0xFF,
                Ins.GET_RESPONSE,
                0,
                0,
                le=resp.sw2 or SHORT_MAX_LE,
                sensitive=hide,
            )
            resp = self._exchange(get, hide)
            if resp.sw1 == 0x6C:  # some tokens ask for the exact Le of the last block
                get = CommandApdu(
                    get.cla, get.ins, 0, 0, le=resp.sw2 or SHORT_MAX_LE, sensitive=hide
                )
                resp = self._exchange(get, hide)
            data += resp.data
        return ResponseApdu(bytes(data), resp.sw)

    # -- public ---------------------------------------------------------------------------------
    def transmit(self, cmd: CommandApdu) -> ResponseApdu:
        """Send ``cmd`` (chaining, GET RESPONSE and 6Cxx handled) and return the final response,
        whatever its status word."""
        hide = self.redact(cmd)
        if self.extended_length or len(cmd.data) <= SHORT_MAX_LC:
            le = cmd.le
            if not self.extended_length and le is not None and le > SHORT_MAX_LE:
                le = SHORT_MAX_LE
                cmd = CommandApdu(cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data, le, cmd.sensitive)
            return self._follow(cmd, hide)
        # command chaining: every block but the last has CLA bit 0x10 and no Le
        chunks = [cmd.data[i : i + SHORT_MAX_LC] for i in range(0, len(cmd.data), SHORT_MAX_LC)]
        for chunk in chunks[:-1]:
            part = CommandApdu(
                cmd.cla | CHAINING_BIT, cmd.ins, cmd.p1, cmd.p2, chunk, None, cmd.sensitive
            )
            resp = self._exchange(part, hide)
            if not resp.ok:
                return resp
        le = None if cmd.le is None else min(cmd.le, SHORT_MAX_LE)
        last = CommandApdu(cmd.cla, cmd.ins, cmd.p1, cmd.p2, chunks[-1], le, cmd.sensitive)
        return self._follow(last, hide)

    def execute(self, cmd: CommandApdu) -> bytes:
        """Send ``cmd`` and return its response data; a status word other than ``9000`` raises
        the typed error from :func:`raise_for_status`."""
        resp = self.transmit(cmd)
        raise_for_status(resp.sw)
        return resp.data

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> ApduConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
