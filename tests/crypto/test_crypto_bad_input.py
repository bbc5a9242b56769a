"""Bad input raises the right typed error, never a bare exception from a dependency."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebank_auth.crypto import _backend, rsa, sm2, sm4
from ebank_auth.errors import (
    CryptoError,
    DecryptionError,
    EbankAuthError,
    EncodingError,
    InvalidKey,
    InvalidSignature,
)

BACKENDS = _backend.available_sm2_backends()
N = sm2.CURVE.n
KEY = sm2.generate_private_key()
PUB = KEY.public_key()


@given(st.binary(max_size=200))
def test_garbage_der_public_key(data: bytes) -> None:
    with pytest.raises((EncodingError, InvalidKey)):
        sm2.load_der_public_key(data)


@given(st.binary(max_size=200))
def test_garbage_der_private_key(data: bytes) -> None:
    with pytest.raises((EncodingError, InvalidKey)):
        sm2.load_der_private_key(data)


@pytest.mark.parametrize("cut", [1, 5, 20, 40, 60])
def test_truncated_der(cut: int) -> None:
    with pytest.raises((EncodingError, InvalidKey)):
        sm2.load_der_public_key(PUB.to_der()[:-cut])
    with pytest.raises((EncodingError, InvalidKey)):
        sm2.load_der_private_key(KEY.to_der()[:-cut])


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"not a pem at all",
        b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ],
)
def test_bad_pem(pem: bytes) -> None:
    with pytest.raises(EncodingError):
        sm2.load_pem_public_key(pem)
    with pytest.raises(EncodingError):
        sm2.load_pem_private_key(pem)


def test_truncated_pem() -> None:
    pem = PUB.to_pem()
    with pytest.raises(EncodingError):
        sm2.load_pem_public_key(pem[: len(pem) // 2])


@pytest.mark.parametrize(
    "point",
    [
        b"",
        b"\x04" + b"\x01" * 63,  # wrong length
        b"\x04" + b"\x00" * 64,  # (0, 0): not on the curve
        b"\x05" + PUB.to_bytes()[1:],  # bad prefix
        PUB.to_bytes()[:-1] + bytes([PUB.to_bytes()[-1] ^ 1]),  # off-curve
        b"\x04" + (sm2.CURVE.p).to_bytes(32, "big") + PUB.to_bytes()[33:],  # x = p out of range
        b"\x02" + b"\xff" * 32,  # compressed, x >= p
    ],
)
def test_invalid_points(point: bytes) -> None:
    with pytest.raises(InvalidKey):
        sm2.public_key_from_bytes(point)
    with pytest.raises(InvalidKey):
        sm2.validate_public_key(point)


def test_infinity_and_off_curve_constructor() -> None:
    with pytest.raises(InvalidKey):
        sm2.SM2PublicKey(0, 0)
    with pytest.raises(InvalidKey):
        sm2.SM2PublicKey(PUB.x, PUB.y + 1)


@pytest.mark.parametrize("d", [0, -1, N - 1, N, N + 5])
def test_private_scalar_out_of_range(d: int) -> None:
    with pytest.raises(InvalidKey):
        sm2.SM2PrivateKey(d)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("r", "s"), [(0, 1), (1, 0), (N, 1), (1, N), (N + 1, 5)])
def test_r_s_out_of_range_refused(backend: str, r: int, s: int) -> None:
    from ebank_auth.crypto import _asn1

    sig = _asn1.encode_rs(r, s)
    with pytest.raises(InvalidSignature):
        PUB.with_backend(backend).verify(sig, b"m")
    with pytest.raises(InvalidSignature):
        sm2.signature_from_rs(r, s)


@pytest.mark.parametrize("backend", BACKENDS)
@given(sig=st.binary(max_size=80))
def test_garbage_signature(backend: str, sig: bytes) -> None:
    with pytest.raises(InvalidSignature):
        PUB.with_backend(backend).verify(sig, b"m")


def test_non_canonical_der_signature_refused() -> None:
    sig = KEY.sign(b"m")
    r, s = sm2.signature_to_rs(sig)
    # same r, s with a leading zero byte padding the INTEGER: BER, not DER
    rb = b"\x00" + r.to_bytes(33, "big")
    body = b"\x02" + bytes([len(rb)]) + rb + b"\x02\x21" + s.to_bytes(33, "big")
    with pytest.raises(InvalidSignature):
        PUB.verify(b"\x30" + bytes([len(body)]) + body, b"m")


@pytest.mark.parametrize("backend", BACKENDS)
@given(ct=st.binary(max_size=200))
def test_garbage_ciphertext(backend: str, ct: bytes) -> None:
    for fmt in sm2.CipherFormat:
        with pytest.raises(DecryptionError):
            KEY.with_backend(backend).decrypt(ct, fmt=fmt)


def test_ciphertext_for_other_key() -> None:
    other = sm2.generate_private_key()
    with pytest.raises(DecryptionError):
        other.decrypt(PUB.encrypt(b"secret"))


def test_empty_message_encrypt_refused() -> None:
    with pytest.raises(CryptoError):
        PUB.encrypt(b"")


def test_wrong_types() -> None:
    with pytest.raises(CryptoError):
        KEY.sign("text")  # type: ignore[arg-type]
    with pytest.raises(CryptoError):
        KEY.sign_digest(b"short")
    with pytest.raises(CryptoError):
        KEY.sign(b"m", uid=b"x" * 9000)


def test_password_errors() -> None:
    enc = KEY.to_pem("right", iterations=1000)
    with pytest.raises(InvalidKey, match="encrypted"):
        sm2.load_pem_private_key(enc)
    with pytest.raises(DecryptionError, match="wrong password"):
        sm2.load_pem_private_key(enc, "wrong")
    with pytest.raises(InvalidKey, match="not encrypted"):
        sm2.load_pem_private_key(KEY.to_pem(), "pw")


def test_mismatched_embedded_public_key_refused() -> None:
    from asn1crypto import keys

    other = sm2.generate_private_key()
    info = keys.PrivateKeyInfo.load(KEY.to_der())
    ec = keys.ECPrivateKey.load(info["private_key"].contents)
    ec["public_key"] = other.public_key().to_bytes()
    info["private_key"] = ec
    with pytest.raises(InvalidKey, match="does not match"):
        sm2.load_der_private_key(info.dump(force=True))


def test_rsa_key_given_to_sm2_loader(tmp_path: object) -> None:
    k = rsa.generate_private_key(2048)
    with pytest.raises(InvalidKey):
        sm2.load_pem_public_key(k.public_key().to_pem())
    with pytest.raises(InvalidKey):
        sm2.load_pem_private_key(k.to_pem())


@pytest.mark.openssl_cli
def test_p256_key_given_to_sm2_loader(tmp_path: object) -> None:
    pem = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    with pytest.raises(InvalidKey, match="SM2 curve"):
        sm2.load_pem_private_key(pem)


def test_sm4_bad_inputs() -> None:
    key = b"k" * 16
    with pytest.raises(InvalidKey):
        sm4.encrypt_cbc(b"short", b"i" * 16, b"data")
    with pytest.raises(CryptoError):
        sm4.encrypt_cbc(key, b"short", b"data")
    with pytest.raises(DecryptionError):
        sm4.decrypt_cbc(key, b"i" * 16, b"x" * 15)
    with pytest.raises(DecryptionError):
        sm4.decrypt_ecb(key, b"")
    with pytest.raises(DecryptionError):
        sm4.decrypt_gcm(key, b"n" * 12, b"short")
    ct = sm4.encrypt_cbc(key, b"i" * 16, b"hello")
    with pytest.raises(DecryptionError):
        sm4.decrypt_cbc(b"K" * 16, b"i" * 16, ct)  # wrong key: padding check fails (w.h.p.)


def test_every_error_is_an_ebank_auth_error() -> None:
    for exc in (InvalidKey, InvalidSignature, DecryptionError, EncodingError, CryptoError):
        assert issubclass(exc, EbankAuthError)


def _decode_or_none(fn: object, data: bytes) -> tuple[int, int] | None:
    try:
        return fn(data)  # type: ignore[operator, no-any-return]
    except EncodingError:
        return None


@given(st.binary(max_size=80))
def test_fast_signature_parser_agrees_with_asn1crypto(data: bytes) -> None:
    from ebank_auth.crypto import _asn1

    assert _decode_or_none(_asn1.decode_rs, data) == _decode_or_none(
        _asn1.decode_rs_reference, data
    )


@given(
    st.integers(min_value=1, max_value=2**264),
    st.integers(min_value=1, max_value=2**264),
    st.integers(min_value=0),
)
def test_fast_signature_parser_on_mutated_signatures(r: int, s: int, bit: int) -> None:
    from ebank_auth.crypto import _asn1

    der = _asn1.encode_rs(r, s)
    assert _asn1.decode_rs(der) == (r, s)
    b = bytearray(der)
    b[(bit // 8) % len(b)] ^= 1 << (bit % 8)
    assert _decode_or_none(_asn1.decode_rs, bytes(b)) == _decode_or_none(
        _asn1.decode_rs_reference, bytes(b)
    )


def test_private_keys_never_show_their_secret() -> None:
    """repr/str of private keys (what a log line or a traceback prints) hide the secret."""
    d_hex = KEY.to_bytes().hex()
    for text in (repr(KEY), str(KEY), repr(KEY.with_backend("pure"))):
        assert d_hex not in text.lower()
        assert str(int.from_bytes(KEY.to_bytes(), "big")) not in text
        assert "<secret>" in text
    r = rsa.generate_private_key(2048)
    d = r.cryptography_key.private_numbers().d
    assert str(d) not in repr(r) and f"{d:x}" not in repr(r).lower()


def test_wrong_password_message_does_not_echo_the_password() -> None:
    enc = KEY.to_pem("right-password", iterations=1000)
    with pytest.raises(DecryptionError) as info:
        sm2.load_pem_private_key(enc, "guess-Tr0ub4dor")
    assert "guess-Tr0ub4dor" not in str(info.value)
