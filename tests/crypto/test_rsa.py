"""RSA ≥ 2048 with PKCS#1 v1.5 / PSS and SHA-256 / SM3."""

from __future__ import annotations

import subprocess
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebank_auth.crypto import rsa
from ebank_auth.errors import DecryptionError, EncodingError, InvalidKey, InvalidSignature


@cache
def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(2048)


@pytest.mark.parametrize("h", list(rsa.Hash))
@pytest.mark.parametrize("p", list(rsa.Padding))
@settings(max_examples=5)
@given(msg=st.binary(max_size=200))
def test_sign_verify(h: rsa.Hash, p: rsa.Padding, msg: bytes) -> None:
    k = _key()
    sig = k.sign(msg, hash=h, padding=p)
    k.public_key().verify(sig, msg, hash=h, padding=p)
    with pytest.raises(InvalidSignature):
        k.public_key().verify(sig, msg + b"x", hash=h, padding=p)
    other_h = rsa.Hash.SM3 if h is rsa.Hash.SHA256 else rsa.Hash.SHA256
    with pytest.raises(InvalidSignature):
        k.public_key().verify(sig, msg, hash=other_h, padding=p)


def test_string_names_accepted() -> None:
    k = _key()
    k.public_key().verify(k.sign(b"m", hash="sm3", padding="pss"), b"m", hash="sm3", padding="pss")


@pytest.mark.parametrize("bits", [512, 1024, 2047, 1536])
def test_small_keys_refused(bits: int) -> None:
    with pytest.raises(InvalidKey, match="2048"):
        rsa.generate_private_key(bits)


@pytest.mark.openssl_cli
def test_loading_small_key_refused() -> None:
    pem = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    with pytest.raises(InvalidKey, match="2048"):
        rsa.load_pem_private_key(pem)
    pub = subprocess.run(
        ["openssl", "pkey", "-pubout"], input=pem, check=True, capture_output=True
    ).stdout
    with pytest.raises(InvalidKey, match="2048"):
        rsa.load_pem_public_key(pub)


def test_pem_round_trip_and_passwords() -> None:
    k = _key()
    assert rsa.load_pem_public_key(k.public_key().to_pem()) == k.public_key()
    assert rsa.load_der_public_key(k.public_key().to_der()) == k.public_key()
    assert rsa.load_pem_private_key(k.to_pem()).public_key() == k.public_key()
    enc = k.to_pem("s3cret")
    assert rsa.load_pem_private_key(enc, "s3cret").public_key() == k.public_key()
    with pytest.raises(DecryptionError):
        rsa.load_pem_private_key(enc, "wrong")
    with pytest.raises(InvalidKey):
        rsa.load_pem_private_key(enc)
    with pytest.raises(InvalidKey):
        rsa.load_pem_private_key(k.to_pem(), "pw")


def test_garbage() -> None:
    with pytest.raises(EncodingError):
        rsa.load_pem_public_key(b"garbage")
    with pytest.raises(EncodingError):
        rsa.load_der_private_key(b"\x30\x03\x02\x01\x00")
    with pytest.raises(InvalidSignature):
        _key().public_key().verify(b"short", b"m")


def test_sm2_key_given_to_rsa_loader() -> None:
    from ebank_auth.crypto import sm2

    with pytest.raises(InvalidKey):
        rsa.load_pem_public_key(sm2.generate_private_key().public_key().to_pem())
