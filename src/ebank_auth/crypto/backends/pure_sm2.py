"""SM2 (GB/T 32918) elliptic-curve arithmetic and algorithms in pure Python.

Works on any short-Weierstrass prime curve given by :class:`Curve` (the standard
``sm2p256v1`` and the GB/T 32918 example curve used by the published vectors).
Jacobian coordinates; a fixed-base comb table for G; a 4-bit window for other points.

Python integers are not constant-time: this backend is the portable fallback and a
test oracle.  The ``openssl`` backend is used whenever the system libcrypto offers SM2.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

Point = tuple[int, int]  # affine (x, y); None stands for the point at infinity
Jac = tuple[int, int, int]  # Jacobian (X, Y, Z); Z == 0 is infinity
_INF: Jac = (1, 1, 0)


@dataclass(frozen=True)
class Curve:
    """Domain parameters of a prime curve y^2 = x^3 + ax + b over F_p with base point G of order n."""

    name: str
    p: int
    a: int
    b: int
    gx: int
    gy: int
    n: int
    h: int = 1
    _tables: dict[str, object] = field(default_factory=dict, compare=False, repr=False, hash=False)

    @property
    def byte_len(self) -> int:
        return (self.p.bit_length() + 7) // 8

    @property
    def g(self) -> Point:
        return (self.gx, self.gy)

    def on_curve(self, x: int, y: int) -> bool:
        if not (0 <= x < self.p and 0 <= y < self.p):
            return False
        return (y * y - (x * x * x + self.a * x + self.b)) % self.p == 0


SM2P256V1 = Curve(
    name="sm2p256v1",
    p=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF,
    a=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC,
    b=0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93,
    gx=0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
    gy=0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0,
    n=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123,
)


# ------------------------------------------------------------------ point arithmetic
def _double(c: Curve, pt: Jac) -> Jac:
    x1, y1, z1 = pt
    if z1 == 0 or y1 == 0:
        return _INF
    p = c.p
    yy = y1 * y1 % p
    s = 4 * x1 * yy % p
    zz = z1 * z1 % p
    m = (3 * x1 * x1 + c.a * zz * zz) % p
    x3 = (m * m - 2 * s) % p
    y3 = (m * (s - x3) - 8 * yy * yy) % p
    z3 = 2 * y1 * z1 % p
    return (x3, y3, z3)


def _add(c: Curve, p1: Jac, p2: Jac) -> Jac:
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if z1 == 0:
        return p2
    if z2 == 0:
        return p1
    p = c.p
    z1z1 = z1 * z1 % p
    z2z2 = z2 * z2 % p
    u1 = x1 * z2z2 % p
    u2 = x2 * z1z1 % p
    s1 = y1 * z2 * z2z2 % p
    s2 = y2 * z1 * z1z1 % p
    if u1 == u2:
        return _double(c, p1) if s1 == s2 else _INF
    h = (u2 - u1) % p
    r = (s2 - s1) % p
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    y3 = (r * (v - x3) - s1 * hhh) % p
    z3 = h * z1 * z2 % p
    return (x3, y3, z3)


def _add_affine(c: Curve, p1: Jac, q: Point) -> Jac:
    """Mixed addition: Jacobian + affine (Z2 = 1)."""
    x1, y1, z1 = p1
    if z1 == 0:
        return (q[0], q[1], 1)
    p = c.p
    z1z1 = z1 * z1 % p
    u2 = q[0] * z1z1 % p
    s2 = q[1] * z1 * z1z1 % p
    if x1 == u2:
        return _double(c, p1) if y1 == s2 else _INF
    h = (u2 - x1) % p
    r = (s2 - y1) % p
    hh = h * h % p
    hhh = h * hh % p
    v = x1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    y3 = (r * (v - x3) - y1 * hhh) % p
    z3 = h * z1 % p
    return (x3, y3, z3)


def _to_affine(c: Curve, pt: Jac) -> Point | None:
    x, y, z = pt
    if z == 0:
        return None
    zi = pow(z, -1, c.p)
    zi2 = zi * zi % c.p
    return (x * zi2 % c.p, y * zi2 * zi % c.p)


def _mul_window(c: Curve, k: int, base: Point) -> Jac:
    """k * base with a 4-bit fixed window (table of 1..15 * base)."""
    table: list[Jac] = [_INF, (base[0], base[1], 1)]
    for _ in range(14):
        table.append(_add_affine(c, table[-1], base))
    acc = _INF
    for shift in range(((k.bit_length() + 3) // 4) * 4 - 4, -4, -4):
        acc = _double(c, _double(c, _double(c, _double(c, acc))))
        digit = (k >> shift) & 0xF
        if digit:
            acc = _add(c, acc, table[digit])
    return acc


def _comb_table(c: Curve) -> list[list[Point]]:
    """table[i][j] = j * 16**i * G (affine) for the fixed-base multiplication."""
    cached = c._tables.get("g4")
    if cached is not None:
        return cached  # type: ignore[return-value]
    windows = (c.n.bit_length() + 3) // 4
    table: list[list[Point]] = []
    base: Point = c.g
    for _ in range(windows):
        row_j: list[Jac] = [_INF, (base[0], base[1], 1)]
        for _ in range(14):
            row_j.append(_add_affine(c, row_j[-1], base))
        row: list[Point] = [(0, 0)]
        for pt in row_j[1:]:
            aff = _to_affine(c, pt)
            assert aff is not None
            row.append(aff)
        table.append(row)
        nxt = _to_affine(c, _double(c, _double(c, _double(c, _double(c, (base[0], base[1], 1))))))
        assert nxt is not None
        base = nxt
    c._tables["g4"] = table
    return table


def mul_g(c: Curve, k: int) -> Point | None:
    """k * G using the comb table (about 64 mixed additions for 256-bit k)."""
    k %= c.n
    table = _comb_table(c)
    acc = _INF
    i = 0
    while k:
        digit = k & 0xF
        if digit:
            acc = _add_affine(c, acc, table[i][digit])
        k >>= 4
        i += 1
    return _to_affine(c, acc)


def mul(c: Curve, k: int, pt: Point) -> Point | None:
    return _to_affine(c, _mul_window(c, k % c.n, pt))


def mul_add(c: Curve, k1: int, k2: int, pt: Point) -> Point | None:
    """k1 * G + k2 * pt."""
    table = _comb_table(c)
    acc = _mul_window(c, k2 % c.n, pt)
    k = k1 % c.n
    i = 0
    while k:
        digit = k & 0xF
        if digit:
            acc = _add_affine(c, acc, table[i][digit])
        k >>= 4
        i += 1
    return _to_affine(c, acc)


def add(c: Curve, p1: Point, p2: Point) -> Point | None:
    """p1 + p2 (affine in, affine out; None is the point at infinity)."""
    return _to_affine(c, _add_affine(c, (p1[0], p1[1], 1), p2))


def negate(c: Curve, pt: Point) -> Point:
    """-pt = (x, -y)."""
    return (pt[0], (c.p - pt[1]) % c.p)


def is_valid_public_point(c: Curve, x: int, y: int) -> bool:
    """On the curve, not infinity, and of order n (n * P = O)."""
    if not c.on_curve(x, y):
        return False
    if c.h == 1:
        return True  # prime-order group: every finite curve point has order n
    return _mul_window(c, c.n, (x, y))[2] == 0  # pragma: no cover - no cofactor curves in use


# ------------------------------------------------------------------ SM2 algorithms
def _i2b(v: int, length: int) -> bytes:
    return v.to_bytes(length, "big")


def random_scalar(c: Curve) -> int:
    """Uniform in [1, n-2] (d = n-1 has no (1+d)^-1; k reuses the same range)."""
    return secrets.randbelow(c.n - 2) + 1


def public_point(c: Curve, d: int) -> Point:
    pt = mul_g(c, d)
    if pt is None:  # pragma: no cover - d in [1, n-2]
        raise ValueError("invalid private scalar")
    return pt


def sign_digest(
    c: Curve, d: int, e: bytes, k_source: Callable[[], int] | None = None
) -> tuple[int, int]:
    """GB/T 32918.2 §6.1 steps A3-A7 on a precomputed e = SM3(Z || M)."""
    n = c.n
    ei = int.from_bytes(e, "big")
    inv = pow(1 + d, -1, n)
    while True:
        k = k_source() if k_source else random_scalar(c)
        pt = mul_g(c, k)
        if pt is None:
            continue
        r = (ei + pt[0]) % n
        if r == 0 or r + k == n:
            continue
        s = inv * (k - r * d) % n
        if s != 0:
            return r, s


def check_digest(c: Curve, x: int, y: int, r: int, s: int, e: bytes) -> bool:
    n = c.n
    if not (1 <= r < n and 1 <= s < n):
        return False
    t = (r + s) % n
    if t == 0:
        return False
    pt = mul_add(c, s, t, (x, y))
    if pt is None:
        return False
    return (int.from_bytes(e, "big") + pt[0]) % n == r


def encrypt(
    c: Curve,
    x: int,
    y: int,
    msg: bytes,
    kdf: Callable[[bytes, int], bytes],
    hash_fn: Callable[[bytes], bytes],
    k_source: Callable[[], int] | None = None,
) -> tuple[int, int, bytes, bytes]:
    """GB/T 32918.4 §6.1: returns (x1, y1, C3, C2)."""
    ln = c.byte_len
    while True:
        k = k_source() if k_source else random_scalar(c)
        c1 = mul_g(c, k)
        s2 = mul(c, k, (x, y))
        if c1 is None or s2 is None:
            continue
        x2, y2 = _i2b(s2[0], ln), _i2b(s2[1], ln)
        t = kdf(x2 + y2, len(msg))
        if msg and not any(t):
            continue
        c2 = bytes(a ^ b for a, b in zip(msg, t, strict=True))
        c3 = hash_fn(x2 + msg + y2)
        return c1[0], c1[1], c3, c2


def decrypt(
    c: Curve,
    d: int,
    x1: int,
    y1: int,
    c3: bytes,
    c2: bytes,
    kdf: Callable[[bytes, int], bytes],
    hash_fn: Callable[[bytes], bytes],
) -> bytes | None:
    """GB/T 32918.4 §7.1; None when the ciphertext is invalid."""
    if not c.on_curve(x1, y1):
        return None
    s2 = mul(c, d, (x1, y1))
    if s2 is None:
        return None
    return decrypt_with_point(c, s2, c3, c2, kdf, hash_fn)


def decrypt_with_point(
    c: Curve,
    s2: Point,
    c3: bytes,
    c2: bytes,
    kdf: Callable[[bytes, int], bytes],
    hash_fn: Callable[[bytes], bytes],
) -> bytes | None:
    """GB/T 32918.4 §7.1 steps B4-B7 given (x2, y2) = [d]C1: KDF, XOR, check C3.

    None when t is all zeros or C3 does not match; the plaintext is then never returned
    (its buffer is zeroed).  Two-party decryption computes [d]C1 jointly and ends here."""
    import hmac

    ln = c.byte_len
    x2, y2 = _i2b(s2[0], ln), _i2b(s2[1], ln)
    t = kdf(x2 + y2, len(c2))
    if c2 and not any(t):
        return None
    msg = bytearray(a ^ b for a, b in zip(c2, t, strict=True))
    if not hmac.compare_digest(hash_fn(x2 + bytes(msg) + y2), c3):
        msg[:] = bytes(len(msg))
        return None
    return bytes(msg)
