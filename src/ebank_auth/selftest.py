"""Known-answer self-test: every published vector on every available backend.

Used by ``ebank-auth selftest`` and by tests.  Returns results; never prints.
Vectors (GB/T 32905, 32907, 32918, GM/T 0021, RFC 4226/6238) ship inside the package
in ``ebank_auth/data``.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from importlib import resources
from typing import Any

from ebank_auth.crypto import _asn1, _backend, sm2, sm3, sm4
from ebank_auth.crypto.backends import pure_sm2, pure_sm2_backend


@dataclass(frozen=True)
class CheckResult:
    name: str  # what was checked, e.g. "SM2 sign (GB/T 32918 example) [openssl]"
    backend: str
    passed: bool
    detail: str = ""


def load_vectors(name: str) -> Any:
    with resources.files("ebank_auth.data").joinpath(name).open("r", encoding="utf-8") as fh:
        return json.load(fh)


@contextmanager
def _forced(name: str) -> Iterator[None]:
    old = os.environ.get(_backend.ENV_VAR)
    os.environ[_backend.ENV_VAR] = name
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(_backend.ENV_VAR, None)
        else:
            os.environ[_backend.ENV_VAR] = old


def _curve(vectors: Any, name: str) -> pure_sm2.Curve:
    if name == "sm2p256v1":
        return pure_sm2.SM2P256V1
    c = vectors["sm2_curves"][name]
    return pure_sm2.Curve(
        name=name, p=int(c["p"], 16), a=int(c["a"], 16), b=int(c["b"], 16),
        gx=int(c["gx"], 16), gy=int(c["gy"], 16), n=int(c["n"], 16),
    )  # fmt: skip


def _run(results: list[CheckResult], name: str, backend: str, fn: Callable[[], None]) -> None:
    try:
        fn()
        results.append(CheckResult(name, backend, True))
    except Exception as exc:
        results.append(CheckResult(name, backend, False, f"{type(exc).__name__}: {exc}"))


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def run_selftest() -> list[CheckResult]:
    """Run every vector on every available SM2/SM3/SM4 implementation."""
    v = load_vectors("gm.json")
    results: list[CheckResult] = []

    # ---- SM3 / SM4 on cryptography (if present) and on pure Python
    for impl in ("auto", "pure"):
        with _forced(impl):
            label = sm3.implementation()
            if impl == "auto" and label == "pure":
                continue
            for i, case in enumerate(v["sm3"]):
                _run(results, f"SM3 vector {i + 1}", label, partial(_sm3_case, case))
            label4 = sm4.implementation()
            for case in v["sm4"]:
                if case["mode"] == "ECB-iterated" and label4 == "pure":
                    continue  # 10^6 pure-Python blocks take minutes; covered by the C path
                _run(results, f"SM4 {case['mode']}", label4, partial(_sm4_case, case))

    # ---- SM2 on every available backend
    for be_name in _backend.available_sm2_backends():
        for i, case in enumerate(v["sm2_sign"]):
            curve = _curve(v, case["curve"])
            if curve is not pure_sm2.SM2P256V1 and be_name != "pure":
                continue  # libcrypto knows only the standard curve
            name = f"SM2 sign vector {i + 1} ({case['curve']})"
            _run(results, name, be_name, partial(_sm2_sign_case, case, curve, be_name))
        for i, case in enumerate(v["sm2_encrypt"]):
            name = f"SM2 encrypt vector {i + 1}"
            _run(results, name, be_name, partial(_sm2_encrypt_case, case, be_name))
        name = "SM2 sign/verify/encrypt round trip"
        _run(results, name, be_name, partial(_sm2_round, be_name))

    # ---- GM/T 0021 and RFC 4226/6238 one-time passwords (when the otp package is present)
    results.extend(_otp_checks(v))
    return results


def _sm3_case(case: Any) -> None:
    _expect(sm3.digest(case["msg_ascii"].encode()).hex() == case["digest"], "digest differs")


def _sm4_case(case: Any) -> None:
    key, pt, ct = (bytes.fromhex(case[k]) for k in ("key", "plaintext", "ciphertext"))
    mode = case["mode"]
    if mode == "ECB":
        _expect(sm4.encrypt_ecb(key, pt, padding=False) == ct, "ECB encryption differs")
        _expect(sm4.decrypt_ecb(key, ct, padding=False) == pt, "ECB decryption differs")
    elif mode == "CBC":
        iv = bytes.fromhex(case["iv"])
        _expect(sm4.encrypt_cbc(key, iv, pt, padding=False) == ct, "CBC encryption differs")
        _expect(sm4.decrypt_cbc(key, iv, ct, padding=False) == pt, "CBC decryption differs")
    elif mode == "ECB-iterated":
        _expect(_sm4_iterated(key, pt, int(case["iterations"])) == ct, "iterated ECB differs")
    else:
        raise AssertionError(f"unknown SM4 vector mode {mode}")


def _sm4_iterated(key: bytes, block: bytes, n: int) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    for _ in range(n):
        block = enc.update(block)
    return block


def _sm2_sign_case(c: Any, curve: pure_sm2.Curve, backend: str) -> None:
    d, k = int(c["d"], 16), int(c["k"], 16)
    px, py = int(c["px"], 16), int(c["py"], 16)
    uid, msg = c["id_ascii"].encode(), c["msg_ascii"].encode()
    want = _asn1.encode_rs(int(c["r"], 16), int(c["s"], 16))
    if curve is pure_sm2.SM2P256V1:
        key = sm2.private_key_from_bytes(d.to_bytes(32, "big"), backend=backend)
        pub = key.public_key()
        _expect((pub.x, pub.y) == (px, py), "public key differs")
        _expect(sm2.compute_z(pub, uid).hex() == c["z"], "Z differs")
        e = sm2.compute_e(pub, msg, uid)
        _expect(e.hex() == c["e"], "e differs")
        with sm2._deterministic_k(k, backend) as sign_k:
            sig = sign_k(key.to_bytes(), e)
        _expect(sig == want, "signature with the vector's k differs")
        if "der" in c:
            _expect(sig.hex() == c["der"], "DER encoding differs")
        pub.verify(want, msg, uid=uid)
        pub.verify_digest(want, e)
        return
    # example curve: pure backend only
    be = pure_sm2_backend.PureSM2(curve)
    _expect(be.public_point(d) == (px, py), "public key differs")
    z = pure_sm2_backend.compute_z(curve, px, py, uid)
    _expect(z.hex() == c["z"], "Z differs")
    e = sm3.digest(z + msg)
    _expect(e.hex() == c["e"], "e differs")
    r, s = pure_sm2.sign_digest(curve, d, e, lambda: k)
    _expect((r, s) == (int(c["r"], 16), int(c["s"], 16)), "signature differs")
    _expect(pure_sm2.check_digest(curve, px, py, r, s, e), "verification failed")


def _sm2_encrypt_case(c: Any, backend: str) -> None:
    d, k = int(c["d"], 16), int(c["k"], 16)
    msg = c["msg_ascii"].encode()
    want = bytes.fromhex(c["gmt0009_der"])
    key = sm2.private_key_from_bytes(d.to_bytes(32, "big"), backend=backend)
    _expect(key.decrypt(want) == msg, "decryption of the vector differs")
    pub = key.public_key()
    x1, y1, c3, c2 = pure_sm2.encrypt(
        pure_sm2.SM2P256V1, pub.x, pub.y, msg, sm3.kdf, sm3.digest, lambda: k
    )
    if backend == "openssl":  # C1 = kG from libcrypto too
        _expect(_backend.sm2_backend("openssl").mul_g(k) == (x1, y1), "C1 differs")
    _expect(
        _asn1.encode_sm2_cipher(x1, y1, c3, c2) == want, "ciphertext with the vector's k differs"
    )


def _sm2_round(backend: str) -> None:
    key = sm2.generate_private_key(backend=backend)
    pub = key.public_key()
    sig = key.sign(b"ebank-auth selftest")
    pub.verify(sig, b"ebank-auth selftest")
    other = "pure" if backend != "pure" else _backend.available_sm2_backends()[0]
    pub.with_backend(other).verify(sig, b"ebank-auth selftest")
    _expect(key.decrypt(pub.encrypt(b"k" * 16)) == b"k" * 16, "round trip failed")


def _otp_checks(v: Any) -> list[CheckResult]:
    results: list[CheckResult] = []
    try:  # the OTP package is imported lazily: selftest must not depend on it being importable
        gmt0021: Any = importlib.import_module("ebank_auth.otp.gmt0021")
    except ImportError:  # pragma: no cover
        gmt0021 = None
    if gmt0021 is not None:
        for i, case in enumerate(v["gmt0021_sm3_otp"]["cases"]):

            def check(c: Any = case) -> None:
                got = gmt0021.sm3_otp(bytes.fromhex(c["k"]), c["t"], c["c"], c["q"], digits=6)
                _expect(got == c["otp"], f"OTP {got} != {c['otp']}")

            _run(results, f"GM/T 0021 SM3 OTP vector {i + 1}", "sm3", check)
    # reference implementation of RFC 4226 via pyotp
    import pyotp

    o = load_vectors("otp_rfc.json")
    import base64

    secret = base64.b32encode(o["hotp_sha1"]["secret_ascii"].encode()).decode()
    hotp = pyotp.HOTP(secret, digits=6)

    def hotp_check() -> None:
        got = [hotp.at(i) for i in range(10)]
        _expect(got == o["hotp_sha1"]["by_counter"], "HOTP differs")

    _run(results, "RFC 4226 HOTP vectors", "pyotp", hotp_check)
    return results


def ok(results: list[CheckResult]) -> bool:
    return bool(results) and all(r.passed for r in results)
