"""SM4 block cipher (GB/T 32907-2016) and its modes in pure Python.

The fallback when the ``cryptography`` build lacks SM4, and an independent oracle in
tests.  Not constant-time (table look-ups): prefer the C path, which is the default.
"""

from __future__ import annotations

import hmac as _hmac
import struct

# S-box: a constant of the standard (GB/T 32907-2016 §6.2).
_SBOX = bytes(
    [
        0xD6, 0x90, 0xE9, 0xFE, 0xCC, 0xE1, 0x3D, 0xB7, 0x16, 0xB6, 0x14, 0xC2, 0x28, 0xFB, 0x2C, 0x05,
        0x2B, 0x67, 0x9A, 0x76, 0x2A, 0xBE, 0x04, 0xC3, 0xAA, 0x44, 0x13, 0x26, 0x49, 0x86, 0x06, 0x99,
        0x9C, 0x42, 0x50, 0xF4, 0x91, 0xEF, 0x98, 0x7A, 0x33, 0x54, 0x0B, 0x43, 0xED, 0xCF, 0xAC, 0x62,
        0xE4, 0xB3, 0x1C, 0xA9, 0xC9, 0x08, 0xE8, 0x95, 0x80, 0xDF, 0x94, 0xFA, 0x75, 0x8F, 0x3F, 0xA6,
        0x47, 0x07, 0xA7, 0xFC, 0xF3, 0x73, 0x17, 0xBA, 0x83, 0x59, 0x3C, 0x19, 0xE6, 0x85, 0x4F, 0xA8,
        0x68, 0x6B, 0x81, 0xB2, 0x71, 0x64, 0xDA, 0x8B, 0xF8, 0xEB, 0x0F, 0x4B, 0x70, 0x56, 0x9D, 0x35,
        0x1E, 0x24, 0x0E, 0x5E, 0x63, 0x58, 0xD1, 0xA2, 0x25, 0x22, 0x7C, 0x3B, 0x01, 0x21, 0x78, 0x87,
        0xD4, 0x00, 0x46, 0x57, 0x9F, 0xD3, 0x27, 0x52, 0x4C, 0x36, 0x02, 0xE7, 0xA0, 0xC4, 0xC8, 0x9E,
        0xEA, 0xBF, 0x8A, 0xD2, 0x40, 0xC7, 0x38, 0xB5, 0xA3, 0xF7, 0xF2, 0xCE, 0xF9, 0x61, 0x15, 0xA1,
        0xE0, 0xAE, 0x5D, 0xA4, 0x9B, 0x34, 0x1A, 0x55, 0xAD, 0x93, 0x32, 0x30, 0xF5, 0x8C, 0xB1, 0xE3,
        0x1D, 0xF6, 0xE2, 0x2E, 0x82, 0x66, 0xCA, 0x60, 0xC0, 0x29, 0x23, 0xAB, 0x0D, 0x53, 0x4E, 0x6F,
        0xD5, 0xDB, 0x37, 0x45, 0xDE, 0xFD, 0x8E, 0x2F, 0x03, 0xFF, 0x6A, 0x72, 0x6D, 0x6C, 0x5B, 0x51,
        0x8D, 0x1B, 0xAF, 0x92, 0xBB, 0xDD, 0xBC, 0x7F, 0x11, 0xD9, 0x5C, 0x41, 0x1F, 0x10, 0x5A, 0xD8,
        0x0A, 0xC1, 0x31, 0x88, 0xA5, 0xCD, 0x7B, 0xBD, 0x2D, 0x74, 0xD0, 0x12, 0xB8, 0xE5, 0xB4, 0xB0,
        0x89, 0x69, 0x97, 0x4A, 0x0C, 0x96, 0x77, 0x7E, 0x65, 0xB9, 0xF1, 0x09, 0xC5, 0x6E, 0xC6, 0x84,
        0x18, 0xF0, 0x7D, 0xEC, 0x3A, 0xDC, 0x4D, 0x20, 0x79, 0xEE, 0x5F, 0x3E, 0xD7, 0xCB, 0x39, 0x48,
    ]
)  # fmt: skip
_FK = (0xA3B1BAC6, 0x56AA3350, 0x677D9197, 0xB27022DC)
# CK_i: byte j of CK_i is (4i + j) * 7 mod 256 (§7.3)
_CK = tuple(
    int.from_bytes(bytes(((4 * i + j) * 7) % 256 for j in range(4)), "big") for i in range(32)
)
_M32 = 0xFFFFFFFF


def _rotl(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _M32


def _tau(a: int) -> int:
    return (
        (_SBOX[a >> 24] << 24)
        | (_SBOX[(a >> 16) & 0xFF] << 16)
        | (_SBOX[(a >> 8) & 0xFF] << 8)
        | _SBOX[a & 0xFF]
    )


def _t(x: int) -> int:
    b = _tau(x)
    return b ^ _rotl(b, 2) ^ _rotl(b, 10) ^ _rotl(b, 18) ^ _rotl(b, 24)


def _t_key(x: int) -> int:
    b = _tau(x)
    return b ^ _rotl(b, 13) ^ _rotl(b, 23)


def expand_key(key: bytes) -> tuple[int, ...]:
    if len(key) != 16:
        raise ValueError("SM4 key must be 16 bytes")
    k = [m ^ f for m, f in zip(struct.unpack(">4I", key), _FK, strict=True)]
    rk = []
    for i in range(32):
        nk = k[i] ^ _t_key(k[i + 1] ^ k[i + 2] ^ k[i + 3] ^ _CK[i])
        k.append(nk)
        rk.append(nk)
    return tuple(rk)


def crypt_block(rk: tuple[int, ...], block: bytes) -> bytes:
    x0, x1, x2, x3 = struct.unpack(">4I", block)
    for r in rk:
        x0, x1, x2, x3 = x1, x2, x3, x0 ^ _t(x1 ^ x2 ^ x3 ^ r)
    return struct.pack(">4I", x3, x2, x1, x0)


class PureSM4:
    """One SM4 key; ECB/CBC/CTR/GCM helpers operate on whole buffers (padding is the caller's)."""

    def __init__(self, key: bytes) -> None:
        self._enc = expand_key(key)
        self._dec = tuple(reversed(self._enc))

    def encrypt_block(self, block: bytes) -> bytes:
        return crypt_block(self._enc, block)

    def decrypt_block(self, block: bytes) -> bytes:
        return crypt_block(self._dec, block)

    def ecb_encrypt(self, data: bytes) -> bytes:
        return b"".join(self.encrypt_block(data[i : i + 16]) for i in range(0, len(data), 16))

    def ecb_decrypt(self, data: bytes) -> bytes:
        return b"".join(self.decrypt_block(data[i : i + 16]) for i in range(0, len(data), 16))

    def cbc_encrypt(self, iv: bytes, data: bytes) -> bytes:
        out = []
        prev = iv
        for i in range(0, len(data), 16):
            prev = self.encrypt_block(_xor(prev, data[i : i + 16]))
            out.append(prev)
        return b"".join(out)

    def cbc_decrypt(self, iv: bytes, data: bytes) -> bytes:
        out = []
        prev = iv
        for i in range(0, len(data), 16):
            block = data[i : i + 16]
            out.append(_xor(prev, self.decrypt_block(block)))
            prev = block
        return b"".join(out)

    def ctr(self, counter_block: bytes, data: bytes) -> bytes:
        """CTR with a 128-bit big-endian counter that wraps modulo 2**128."""
        ctr = int.from_bytes(counter_block, "big")
        out = bytearray()
        for i in range(0, len(data), 16):
            ks = self.encrypt_block(ctr.to_bytes(16, "big"))
            out += _xor(ks, data[i : i + 16])
            ctr = (ctr + 1) % (1 << 128)
        return bytes(out)

    # ---- GCM (NIST SP 800-38D with SM4 as the block cipher) ----
    def _ghash(self, h: int, aad: bytes, ct: bytes) -> int:
        y = 0
        for chunk in (aad, ct):
            for i in range(0, len(chunk), 16):
                block = chunk[i : i + 16].ljust(16, b"\x00")
                y = _gf_mult(y ^ int.from_bytes(block, "big"), h)
        lengths = struct.pack(">QQ", len(aad) * 8, len(ct) * 8)
        return _gf_mult(y ^ int.from_bytes(lengths, "big"), h)

    def _j0(self, h: int, nonce: bytes) -> bytes:
        if len(nonce) == 12:
            return nonce + b"\x00\x00\x00\x01"
        s = self._ghash(h, b"", nonce)
        return s.to_bytes(16, "big")

    def _gctr(self, icb: bytes, data: bytes) -> bytes:
        prefix, ctr = icb[:12], int.from_bytes(icb[12:], "big")
        out = bytearray()
        for i in range(0, len(data), 16):
            ks = self.encrypt_block(prefix + ctr.to_bytes(4, "big"))
            out += _xor(ks, data[i : i + 16])
            ctr = (ctr + 1) & _M32
        return bytes(out)

    def gcm_encrypt(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        h = int.from_bytes(self.encrypt_block(b"\x00" * 16), "big")
        j0 = self._j0(h, nonce)
        ct = self._gctr(_inc32(j0), data)
        tag = _xor(self.encrypt_block(j0), self._ghash(h, aad, ct).to_bytes(16, "big"))
        return ct + tag

    def gcm_decrypt(self, nonce: bytes, data: bytes, aad: bytes) -> bytes | None:
        """Plaintext, or None when the tag does not match."""
        ct, tag = data[:-16], data[-16:]
        h = int.from_bytes(self.encrypt_block(b"\x00" * 16), "big")
        j0 = self._j0(h, nonce)
        expected = _xor(self.encrypt_block(j0), self._ghash(h, aad, ct).to_bytes(16, "big"))
        if not _hmac.compare_digest(expected, tag):
            return None
        return self._gctr(_inc32(j0), ct)


def _xor(a: bytes, b: bytes) -> bytes:
    n = min(len(a), len(b))
    return (int.from_bytes(a[:n], "big") ^ int.from_bytes(b[:n], "big")).to_bytes(n, "big")


def _inc32(block: bytes) -> bytes:
    return block[:12] + ((int.from_bytes(block[12:], "big") + 1) & _M32).to_bytes(4, "big")


_R = 0xE1 << 120


def _gf_mult(x: int, y: int) -> int:
    z = 0
    v = y
    for i in range(127, -1, -1):
        if (x >> i) & 1:
            z ^= v
        v = (v >> 1) ^ _R if v & 1 else v >> 1
    return z
