"""SM3 hash (GB/T 32905-2016) in pure Python: the fallback and an independent oracle."""

from __future__ import annotations

import struct

_IV = (
    0x7380166F,
    0x4914B2B9,
    0x172442D7,
    0xDA8A0600,
    0xA96F30BC,
    0x163138AA,
    0xE38DEE4D,
    0xB0FB0E4E,
)
_M32 = 0xFFFFFFFF


def _rotl(x: int, n: int) -> int:
    n &= 31
    return ((x << n) | (x >> (32 - n))) & _M32


# T_j <<< (j mod 32), precomputed for the 64 rounds
_TJ = tuple(_rotl(0x79CC4519 if j < 16 else 0x7A879D8A, j % 32) for j in range(64))


def _p0(x: int) -> int:
    return x ^ _rotl(x, 9) ^ _rotl(x, 17)


def _p1(x: int) -> int:
    return x ^ _rotl(x, 15) ^ _rotl(x, 23)


def _compress(v: tuple[int, ...], block: bytes) -> tuple[int, ...]:
    w = list(struct.unpack(">16I", block))
    for j in range(16, 68):
        w.append(_p1(w[j - 16] ^ w[j - 9] ^ _rotl(w[j - 3], 15)) ^ _rotl(w[j - 13], 7) ^ w[j - 6])
    a, b, c, d, e, f, g, h = v
    for j in range(64):
        a12 = _rotl(a, 12)
        ss1 = _rotl((a12 + e + _TJ[j]) & _M32, 7)
        ss2 = ss1 ^ a12
        if j < 16:
            ff = a ^ b ^ c
            gg = e ^ f ^ g
        else:
            ff = (a & b) | (a & c) | (b & c)
            gg = (e & f) | (~e & g)
        tt1 = (ff + d + ss2 + (w[j] ^ w[j + 4])) & _M32
        tt2 = (gg + h + ss1 + w[j]) & _M32
        d = c
        c = _rotl(b, 9)
        b = a
        a = tt1
        h = g
        g = _rotl(f, 19)
        f = e
        e = _p0(tt2)
    return (a ^ v[0], b ^ v[1], c ^ v[2], d ^ v[3], e ^ v[4], f ^ v[5], g ^ v[6], h ^ v[7])


class PureSM3:
    """Incremental SM3 with the hashlib-like surface (update/digest/copy)."""

    digest_size = 32
    block_size = 64
    name = "sm3"

    def __init__(self, data: bytes = b"") -> None:
        self._v: tuple[int, ...] = _IV
        self._buf = b""
        self._len = 0
        if data:
            self.update(data)

    def update(self, data: bytes) -> None:
        data = bytes(data)
        self._len += len(data)
        buf = self._buf + data
        n = len(buf) // 64 * 64
        v = self._v
        for i in range(0, n, 64):
            v = _compress(v, buf[i : i + 64])
        self._v = v
        self._buf = buf[n:]

    def copy(self) -> PureSM3:
        other = PureSM3()
        other._v, other._buf, other._len = self._v, self._buf, self._len
        return other

    def digest(self) -> bytes:
        bitlen = self._len * 8
        pad = b"\x80" + b"\x00" * ((55 - self._len) % 64) + struct.pack(">Q", bitlen)
        v = self._v
        tail = self._buf + pad
        for i in range(0, len(tail), 64):
            v = _compress(v, tail[i : i + 64])
        return struct.pack(">8I", *v)


def sm3_digest(data: bytes) -> bytes:
    return PureSM3(data).digest()
