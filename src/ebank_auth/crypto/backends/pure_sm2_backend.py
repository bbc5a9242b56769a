"""The pure-Python SM2 backend, with the same handle-based surface as the OpenSSL one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ebank_auth.crypto import _asn1, sm3
from ebank_auth.crypto.backends import pure_sm2
from ebank_auth.crypto.backends.pure_sm2 import SM2P256V1, Curve


def compute_z(curve: Curve, x: int, y: int, uid: bytes) -> bytes:
    ln = curve.byte_len
    entl = (len(uid) * 8).to_bytes(2, "big")
    parts = [entl, uid] + [
        v.to_bytes(ln, "big") for v in (curve.a, curve.b, curve.gx, curve.gy, x, y)
    ]
    return sm3.digest(b"".join(parts))


class PureSM2:
    name = "pure"
    constant_time = False  # Python big-int arithmetic is not

    def __init__(self, curve: Curve = SM2P256V1) -> None:
        self.curve = curve
        self.k_source: Callable[[], int] | None = None  # test hook: deterministic k

    def load_private(self, d: int, x: int, y: int) -> Any:
        return (d, x, y)

    def load_public(self, x: int, y: int) -> Any:
        return (x, y)

    def public_point(self, d: int) -> tuple[int, int]:
        return pure_sm2.public_point(self.curve, d)

    def sign(self, handle: Any, data: bytes, uid: bytes) -> bytes:
        _, x, y = handle
        e = sm3.digest(compute_z(self.curve, x, y, uid) + data)
        return self.sign_digest(handle, e)

    def check(self, handle: Any, sig: bytes, data: bytes, uid: bytes) -> bool:
        x, y = handle
        e = sm3.digest(compute_z(self.curve, x, y, uid) + data)
        return self.check_digest(handle, sig, e)

    def sign_digest(self, handle: Any, e: bytes) -> bytes:
        r, s = pure_sm2.sign_digest(self.curve, handle[0], e, self.k_source)
        return _asn1.encode_rs(r, s)

    def check_digest(self, handle: Any, sig: bytes, e: bytes) -> bool:
        x, y = handle
        r, s = _asn1.decode_rs(sig)
        return pure_sm2.check_digest(self.curve, x, y, r, s, e)

    def encrypt(self, handle: Any, data: bytes) -> bytes:
        x, y = handle
        x1, y1, c3, c2 = pure_sm2.encrypt(
            self.curve, x, y, data, sm3.kdf, sm3.digest, self.k_source
        )
        return _asn1.encode_sm2_cipher(x1, y1, c3, c2)

    def decrypt(self, handle: Any, der: bytes) -> bytes | None:
        x1, y1, c3, c2 = _asn1.decode_sm2_cipher(der)
        return pure_sm2.decrypt(self.curve, handle[0], x1, y1, c3, c2, sm3.kdf, sm3.digest)

    def mul_g(self, k: int) -> tuple[int, int]:
        pt = pure_sm2.mul_g(self.curve, k)
        if pt is None:
            raise ValueError("k * G is the point at infinity")
        return pt

    # ---- raw point operations (two-party SM2); points are validated affine (x, y)
    def point_mul(self, k: int, point: tuple[int, int]) -> tuple[int, int] | None:
        return pure_sm2.mul(self.curve, k, point)

    def point_mul_add(self, a: int, b: int, point: tuple[int, int]) -> tuple[int, int] | None:
        return pure_sm2.mul_add(self.curve, a, b, point)

    def point_add(self, p1: tuple[int, int], p2: tuple[int, int]) -> tuple[int, int] | None:
        return pure_sm2.add(self.curve, p1, p2)

    def point_negate(self, point: tuple[int, int]) -> tuple[int, int]:
        return pure_sm2.negate(self.curve, point)

    def point_valid(self, x: int, y: int) -> bool:
        return pure_sm2.is_valid_public_point(self.curve, x, y)


PURE = PureSM2()
