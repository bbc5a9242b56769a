"""SM3, HMAC-SM3, the GM/T 0003 KDF and SM4 modes: C path against the pure oracle."""

from __future__ import annotations

import hmac as std_hmac
import os

import pytest
from gmssl import func as gm_func
from gmssl import sm3 as gm_sm3
from hypothesis import given
from hypothesis import strategies as st

from ebank_auth.crypto import sm3, sm4
from ebank_auth.crypto.backends.pure_sm3 import PureSM3, sm3_digest
from ebank_auth.crypto.backends.pure_sm4 import PureSM4
from ebank_auth.errors import DecryptionError

keys = st.binary(min_size=16, max_size=16)


@given(st.binary(max_size=1000))
def test_sm3_matches_pure_and_gmssl(data: bytes) -> None:
    d = sm3.digest(data)
    assert d == sm3_digest(data)
    assert d.hex() == gm_sm3.sm3_hash(gm_func.bytes_to_list(data))


@given(st.lists(st.binary(max_size=150), max_size=8))
def test_sm3_incremental(chunks: list[bytes]) -> None:
    h = sm3.SM3()
    p = PureSM3()
    for c in chunks:
        h.update(c)
        p.update(c)
        assert h.copy().digest() == p.copy().digest()
    assert h.digest() == sm3.digest(b"".join(chunks))


@given(key=st.binary(max_size=100), data=st.binary(max_size=200))
def test_hmac_sm3_matches_rfc2104_construction(key: bytes, data: bytes) -> None:
    assert sm3.hmac(key, data) == std_hmac.new(key, data, PureSM3).digest()


def test_kdf_definition() -> None:
    z = b"shared secret"
    out = sm3.kdf(z, 70)
    expect = b"".join(sm3.digest(z + i.to_bytes(4, "big")) for i in (1, 2, 3))[:70]
    assert out == expect
    assert sm3.kdf(z, 0) == b""


@given(key=keys, iv=st.binary(min_size=16, max_size=16), data=st.binary(max_size=100))
def test_sm4_cbc_ecb_round_trip_and_oracle(key: bytes, iv: bytes, data: bytes) -> None:
    ct = sm4.encrypt_cbc(key, iv, data)
    assert sm4.decrypt_cbc(key, iv, ct) == data
    pad = 16 - len(data) % 16
    assert PureSM4(key).cbc_encrypt(iv, data + bytes([pad]) * pad) == ct
    assert sm4.decrypt_ecb(key, sm4.encrypt_ecb(key, data)) == data


@given(key=keys, nonce=st.binary(min_size=16, max_size=16), data=st.binary(max_size=100))
def test_sm4_ctr(key: bytes, nonce: bytes, data: bytes) -> None:
    ct = sm4.encrypt_ctr(key, nonce, data)
    assert sm4.decrypt_ctr(key, nonce, ct) == data
    assert PureSM4(key).ctr(nonce, data) == ct


@given(
    key=keys,
    nonce=st.binary(min_size=12, max_size=12),
    data=st.binary(max_size=100),
    aad=st.binary(max_size=40),
    bit=st.integers(min_value=0),
)
def test_sm4_gcm_round_trip_tamper_and_oracle(
    key: bytes, nonce: bytes, data: bytes, aad: bytes, bit: int
) -> None:
    ct = sm4.encrypt_gcm(key, nonce, data, aad)
    assert PureSM4(key).gcm_encrypt(nonce, data, aad) == ct
    assert sm4.decrypt_gcm(key, nonce, ct, aad) == data
    bad = bytearray(ct)
    bad[(bit // 8) % len(bad)] ^= 1 << (bit % 8)
    with pytest.raises(DecryptionError):
        sm4.decrypt_gcm(key, nonce, bytes(bad), aad)
    with pytest.raises(DecryptionError):
        sm4.decrypt_gcm(key, nonce, ct, aad + b"x")


def test_pure_backend_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EBANK_AUTH_CRYPTO_BACKEND", "pure")
    assert sm3.implementation() == "pure"
    assert sm4.implementation() == "pure"
    key, iv = os.urandom(16), os.urandom(12)
    ct = sm4.encrypt_gcm(key, iv, b"hello", b"aad")
    monkeypatch.setenv("EBANK_AUTH_CRYPTO_BACKEND", "auto")
    assert sm3.implementation() == "cryptography"
    assert sm4.decrypt_gcm(key, iv, ct, b"aad") == b"hello"
