"""A small test card (not the software token): SELECT, echo with chaining, 61xx, 6Cxx, any SW.

It exists so the APDU layer and transports can be tested on their own, over every link.
"""

from __future__ import annotations

import threading

TEST_AID = bytes.fromhex("F0656261 6E6B7465 7374".replace(" ", ""))


def _atr() -> bytes:
    hist = b"ebank-test!!"
    body = bytes([0x8C, 0x80, 0x01]) + hist  # T0 (TD1, K=12), TD1 -> TD2, TD2: T=1
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes([tck])


ATR = _atr()

INS_ECHO = 0x01  # response = the (chained) command data, delivered with 61xx when > Le
INS_EXACT = 0x02  # response = P1 bytes; Le must be exactly P1 (else 6C P1)
INS_STATUS = 0x03  # answers SW = P1P2 with no data
INS_GET_RESPONSE = 0xC0


class TestCard:
    """Implements ``CardProtocol``; records every APDU it receives in ``log``."""

    __test__ = False

    def __init__(self, atr: bytes = ATR) -> None:
        self._atr = atr
        self.log: list[bytes] = []
        self.powered = False
        self.power_cycles = 0
        self._chain = bytearray()
        self._pending = b""
        self._lock = threading.Lock()

    def atr(self) -> bytes:
        return self._atr

    def power_on(self) -> None:
        self.powered = True
        self.power_cycles += 1

    def power_off(self) -> None:
        self.powered = False
        self._chain.clear()
        self._pending = b""

    def reset(self) -> None:
        self.power_off()
        self.power_on()

    def process_apdu(self, apdu: bytes) -> bytes:
        with self._lock:
            self.log.append(bytes(apdu))
            return self._process(bytes(apdu))

    def _deliver(self, data: bytes, le: int | None) -> bytes:
        ne = 256 if le is None or le == 0 else le
        if len(data) <= ne:
            self._pending = b""
            return data + b"\x90\x00"
        self._pending = data[ne:]
        rest = len(self._pending)
        return data[:ne] + bytes([0x61, rest if rest < 256 else 0])

    def _process(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return b"\x67\x00"
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        data, le = b"", None
        if len(body) == 1:
            le = body[0] or 256
        elif len(body) > 1:
            if body[0] == 0 and len(body) >= 3:  # extended
                if len(body) == 3:
                    le = ((body[1] << 8) | body[2]) or 65536
                else:
                    lc = (body[1] << 8) | body[2]
                    data = body[3 : 3 + lc]
                    rest = body[3 + lc :]
                    if len(data) != lc or len(rest) not in (0, 2):
                        return b"\x67\x00"
                    if rest:
                        le = ((rest[0] << 8) | rest[1]) or 65536
            else:
                lc = body[0]
                data = body[1 : 1 + lc]
                rest = body[1 + lc :]
                if len(data) != lc or len(rest) > 1:
                    return b"\x67\x00"
                if rest:
                    le = rest[0] or 256
        if ins == INS_GET_RESPONSE:
            if not self._pending:
                return b"\x69\x85"
            return self._deliver(self._pending, le)
        self._pending = b""
        if ins == 0xA4:
            if p1 == 0x04 and data == TEST_AID:
                return b"ebank-test" + b"\x90\x00"
            return b"\x6a\x82"
        if ins == INS_ECHO:
            self._chain += data
            if cla & 0x10:
                return b"\x90\x00"
            whole, self._chain = bytes(self._chain), bytearray()
            return self._deliver(whole, le)
        if ins == INS_EXACT:
            if le != p1 and not (p1 == 0 and le == 256):
                return bytes([0x6C, p1])
            return bytes(range(p1 or 256)) + b"\x90\x00"
        if ins == INS_STATUS:
            return bytes([p1, p2])
        return b"\x6d\x00"


def make_test_card(state_dir: object) -> TestCard:
    """Card factory for ``emulator start --card usbkey.transport.cards:make_test_card``."""
    return TestCard()
