"""Hypothesis properties of SM2 on both backends, and the backends against each other."""

from __future__ import annotations

from functools import cache

import pytest
from gmssl import sm2 as gm_sm2
from hypothesis import given, settings
from hypothesis import strategies as st

from ebank_auth.crypto import _backend, sm2
from ebank_auth.errors import DecryptionError, InvalidSignature

BACKENDS = _backend.available_sm2_backends()
messages = st.binary(max_size=300)
uids = st.binary(min_size=0, max_size=40)


@cache
def _key(backend: str) -> sm2.SM2PrivateKey:
    return sm2.generate_private_key(backend=backend)


def _flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


@pytest.mark.parametrize("backend", BACKENDS)
@given(msg=messages, uid=uids)
def test_sign_verify_round_trip(backend: str, msg: bytes, uid: bytes) -> None:
    key = _key(backend)
    sig = key.sign(msg, uid=uid)
    key.public_key().verify(sig, msg, uid=uid)


@pytest.mark.parametrize("backend", BACKENDS)
@given(msg=messages, uid=uids, bit=st.integers(min_value=0))
def test_any_bit_flip_in_message_or_uid_is_refused(
    backend: str, msg: bytes, uid: bytes, bit: int
) -> None:
    key = _key(backend)
    pub = key.public_key()
    sig = key.sign(msg, uid=uid)
    if msg:
        with pytest.raises(InvalidSignature):
            pub.verify(sig, _flip(msg, bit), uid=uid)
    if uid:
        with pytest.raises(InvalidSignature):
            pub.verify(sig, msg, uid=_flip(uid, bit))
    with pytest.raises(InvalidSignature):
        pub.verify(sig, msg + b"\x00", uid=uid)


@pytest.mark.parametrize("backend", BACKENDS)
@given(msg=messages, bit=st.integers(min_value=0))
def test_any_bit_flip_in_signature_is_refused(backend: str, msg: bytes, bit: int) -> None:
    key = _key(backend)
    sig = key.sign(msg)
    with pytest.raises(InvalidSignature):
        key.public_key().verify(_flip(sig, bit), msg)


@pytest.mark.parametrize("backend", BACKENDS)
@given(msg=messages)
def test_sign_digest_matches_sign(backend: str, msg: bytes) -> None:
    key = _key(backend)
    pub = key.public_key()
    e = sm2.compute_e(pub, msg)
    pub.verify(key.sign_digest(e), msg)  # a token-style signature verifies as a normal one
    pub.verify_digest(key.sign(msg), e)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", list(sm2.CipherFormat))
@given(msg=st.binary(min_size=1, max_size=300))
def test_encrypt_decrypt_round_trip(backend: str, fmt: sm2.CipherFormat, msg: bytes) -> None:
    key = _key(backend)
    ct = key.public_key().encrypt(msg, fmt=fmt)
    assert key.decrypt(ct, fmt=fmt) == msg


@pytest.mark.parametrize("backend", BACKENDS)
@given(msg=st.binary(min_size=1, max_size=64), bit=st.integers(min_value=0))
def test_altered_ciphertext_is_refused(backend: str, msg: bytes, bit: int) -> None:
    key = _key(backend)
    ct = key.public_key().encrypt(msg, fmt=sm2.CipherFormat.C1C3C2)
    with pytest.raises(DecryptionError):
        key.decrypt(_flip(ct, bit), fmt=sm2.CipherFormat.C1C3C2)


@settings(max_examples=25)
@given(msg=messages, uid=uids)
def test_backends_verify_each_others_signatures(msg: bytes, uid: bytes) -> None:
    for a in BACKENDS:
        for b in BACKENDS:
            key = _key(a)
            sig = key.sign(msg, uid=uid)
            key.public_key().with_backend(b).verify(sig, msg, uid=uid)


@settings(max_examples=25)
@given(msg=st.binary(min_size=1, max_size=200))
def test_backends_decrypt_each_others_ciphertexts(msg: bytes) -> None:
    for a in BACKENDS:
        for b in BACKENDS:
            key = _key(a)
            ct = key.public_key().encrypt(msg)
            assert key.with_backend(b).decrypt(ct) == msg


@settings(max_examples=15)
@given(msg=st.binary(min_size=1, max_size=100))
def test_gmssl_oracle_agrees(msg: bytes) -> None:
    """The independent gmssl implementation verifies our signatures and decrypts our ciphertexts."""
    key = _key(BACKENDS[0])
    pub = key.public_key()
    oracle = gm_sm2.CryptSM2(
        private_key=key.to_bytes().hex(), public_key=pub.to_bytes()[1:].hex(), mode=1
    )
    r, s = sm2.signature_to_rs(key.sign(msg))
    assert oracle.verify_with_sm3(f"{r:064x}{s:064x}", msg)
    raw = pub.encrypt(msg, fmt=sm2.CipherFormat.C1C3C2)
    assert oracle.decrypt(raw[1:]) == msg  # gmssl takes C1 without the 04 prefix


@pytest.mark.parametrize("backend", BACKENDS)
@given(compressed=st.booleans())
def test_key_encodings_round_trip(backend: str, compressed: bool) -> None:
    key = sm2.generate_private_key(backend=backend)
    pub = key.public_key()
    assert sm2.public_key_from_bytes(pub.to_bytes(compressed=compressed)) == pub
    assert sm2.load_der_public_key(pub.to_der()) == pub
    assert sm2.load_pem_public_key(pub.to_pem()) == pub
    assert sm2.public_key_from_skf_blob(pub.to_skf_blob()) == pub
    assert sm2.load_pem_private_key(key.to_pem()).to_bytes() == key.to_bytes()
    assert sm2.load_der_private_key(key.to_der()).to_bytes() == key.to_bytes()
    assert sm2.private_key_from_bytes(key.to_bytes()).public_key() == pub


@settings(max_examples=10)
@given(password=st.text(min_size=1, max_size=20))
def test_encrypted_pkcs8_round_trip(password: str) -> None:
    key = _key(BACKENDS[0])
    pem = key.to_pem(password, iterations=1000)
    assert b"ENCRYPTED PRIVATE KEY" in pem
    assert sm2.load_pem_private_key(pem, password).to_bytes() == key.to_bytes()
    with pytest.raises(DecryptionError):
        sm2.load_pem_private_key(pem, password + "x")


@given(msg=messages)
def test_skf_signature_blob_round_trip(msg: bytes) -> None:
    sig = _key(BACKENDS[0]).sign(msg)
    blob = sm2.signature_to_skf_blob(sig)
    assert len(blob) == 128
    assert sm2.signature_from_skf_blob(blob) == sig
