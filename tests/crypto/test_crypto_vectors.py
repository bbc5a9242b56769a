"""Every published vector (tests/vectors/gm.json) on every available backend."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import load_vectors
from ebank_auth.crypto import _asn1, _backend, sm2, sm3, sm4
from ebank_auth.crypto.backends import pure_sm2, pure_sm2_backend
from ebank_auth.crypto.backends.pure_sm3 import sm3_digest as pure_sm3
from ebank_auth.crypto.backends.pure_sm4 import PureSM4
from ebank_auth.errors import InvalidSignature

V = load_vectors("gm.json")
BACKENDS = _backend.available_sm2_backends()


def test_both_backends_available_here() -> None:
    # This machine has OpenSSL 3 with SM2: if this fails, the fast path silently fell back.
    assert BACKENDS == ("openssl", "pure")


@pytest.mark.parametrize("case", V["sm3"], ids=lambda c: c["msg_ascii"][:8])
def test_sm3_vectors(case: Any) -> None:
    msg = case["msg_ascii"].encode()
    assert sm3.digest(msg).hex() == case["digest"]
    assert pure_sm3(msg).hex() == case["digest"]
    h = sm3.SM3()
    for i in range(0, len(msg), 5):
        h.update(msg[i : i + 5])
    assert h.hexdigest() == case["digest"]


@pytest.mark.parametrize("case", V["sm4"], ids=lambda c: c["mode"])
def test_sm4_vectors(case: Any) -> None:
    key, pt, ct = (bytes.fromhex(case[k]) for k in ("key", "plaintext", "ciphertext"))
    if case["mode"] == "ECB":
        assert sm4.encrypt_ecb(key, pt, padding=False) == ct
        assert sm4.decrypt_ecb(key, ct, padding=False) == pt
        assert PureSM4(key).encrypt_block(pt) == ct
    elif case["mode"] == "CBC":
        iv = bytes.fromhex(case["iv"])
        assert sm4.encrypt_cbc(key, iv, pt, padding=False) == ct
        assert sm4.decrypt_cbc(key, iv, ct, padding=False) == pt
        assert PureSM4(key).cbc_encrypt(iv, pt) == ct
    elif case["mode"] == "ECB-iterated":
        block = pt
        n = case["iterations"]
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
        for _ in range(n):
            block = enc.update(block)
        assert block == ct
        # the pure oracle agrees on the first 2,000 iterations of the same chain
        pure, c_block, p_block = PureSM4(key), pt, pt
        for _ in range(2000):
            p_block = pure.encrypt_block(p_block)
            c_block = sm4.encrypt_ecb(key, c_block, padding=False)
        assert p_block == c_block
    else:  # pragma: no cover
        pytest.fail(f"unknown SM4 vector mode {case['mode']}")


def _curve(name: str) -> pure_sm2.Curve:
    if name == "sm2p256v1":
        return pure_sm2.SM2P256V1
    c = V["sm2_curves"][name]
    return pure_sm2.Curve(name, *(int(c[k], 16) for k in ("p", "a", "b", "gx", "gy", "n")))


def test_standard_curve_matches_vector_file() -> None:
    c = V["sm2_curves"]["sm2p256v1"]
    cur = pure_sm2.SM2P256V1
    assert (cur.p, cur.a, cur.b, cur.gx, cur.gy, cur.n) == tuple(
        int(c[k], 16) for k in ("p", "a", "b", "gx", "gy", "n")
    )


# libcrypto implements only the standard curve: the GB/T 32918 example curve runs on pure only
SIGN_CASES = [
    pytest.param(case, backend, id=f"{case['curve']}-{backend}")
    for case in V["sm2_sign"]
    for backend in BACKENDS
    if case["curve"] == "sm2p256v1" or backend == "pure"
]


@pytest.mark.parametrize(("case", "backend"), SIGN_CASES)
def test_sm2_sign_vectors(case: Any, backend: str) -> None:
    d, k = int(case["d"], 16), int(case["k"], 16)
    uid, msg = case["id_ascii"].encode(), case["msg_ascii"].encode()
    r, s = int(case["r"], 16), int(case["s"], 16)
    curve = _curve(case["curve"])
    if curve is not pure_sm2.SM2P256V1:
        be = pure_sm2_backend.PureSM2(curve)
        assert be.public_point(d) == (int(case["px"], 16), int(case["py"], 16))
        z = pure_sm2_backend.compute_z(curve, int(case["px"], 16), int(case["py"], 16), uid)
        assert z.hex() == case["z"]
        e = sm3.digest(z + msg)
        assert e.hex() == case["e"]
        assert pure_sm2.sign_digest(curve, d, e, lambda: k) == (r, s)
        assert pure_sm2.check_digest(curve, *be.public_point(d), r, s, e)
        assert not pure_sm2.check_digest(curve, *be.public_point(d), r, s + 1, e)
        return
    key = sm2.private_key_from_bytes(d.to_bytes(32, "big"), backend=backend)
    pub = key.public_key()
    assert (pub.x, pub.y) == (int(case["px"], 16), int(case["py"], 16))
    assert sm2.compute_z(pub, uid).hex() == case["z"]
    e = sm2.compute_e(pub, msg, uid)
    assert e.hex() == case["e"]
    with sm2._deterministic_k(k, backend) as sign_with_k:
        der = sign_with_k(key.to_bytes(), e)
    assert der.hex() == case["der"]
    assert sm2.signature_to_rs(der) == (r, s)
    pub.verify(der, msg, uid=uid)
    pub.verify_digest(der, e)
    # the vector's signature is refused under another ID and for another message
    with pytest.raises(InvalidSignature):
        pub.verify(der, msg, uid=b"ALICE123@YAHOO.COM")
    with pytest.raises(InvalidSignature, match="does not verify"):
        pub.verify(der, msg + b"!", uid=uid)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sm2_encrypt_vector(backend: str) -> None:
    case = V["sm2_encrypt"][0]
    d, k = int(case["d"], 16), int(case["k"], 16)
    msg = case["msg_ascii"].encode()
    der = bytes.fromhex(case["gmt0009_der"])
    key = sm2.private_key_from_bytes(d.to_bytes(32, "big"), backend=backend)
    assert key.decrypt(der) == msg
    pub = key.public_key()
    be = _backend.sm2_backend(backend)
    x1, y1, c3, c2 = pure_sm2.encrypt(
        pure_sm2.SM2P256V1, pub.x, pub.y, msg, sm3.kdf, sm3.digest, lambda: k
    )
    assert be.mul_g(k) == (x1, y1)  # C1 = kG computed by this backend
    assert _asn1.encode_sm2_cipher(x1, y1, c3, c2) == der
    # raw encodings of the same ciphertext decrypt too
    c1 = b"\x04" + x1.to_bytes(32, "big") + y1.to_bytes(32, "big")
    assert key.decrypt(c1 + c3 + c2, fmt=sm2.CipherFormat.C1C3C2) == msg
    assert key.decrypt(c1 + c2 + c3, fmt=sm2.CipherFormat.C1C2C3) == msg


def test_default_uid_is_the_standard_one() -> None:
    assert V["sm2_default_id_ascii"].encode() == sm2.DEFAULT_UID


def test_oids_registered() -> None:
    oids = V["oids"]
    assert oids["sm2_curve"] == _asn1.OID_SM2_CURVE
    assert oids["sm3"] == _asn1.OID_SM3
    assert oids["sm2_with_sm3"] == _asn1.OID_SM2_WITH_SM3
    assert oids["sm4_cbc"] == _asn1.OID_SM4_CBC
    assert oids["gmt0010_signed_data"] == _asn1.OID_GMT0010_SIGNED_DATA
