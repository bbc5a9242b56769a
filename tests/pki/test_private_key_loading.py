"""Private-key loading under hostile input (issue 11 item 15).

Every malformed key gives a typed ``ebank_auth.errors`` exception, and the work an
encrypted key can make the loader do is capped and spent once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asn1crypto import core as a_core
from asn1crypto import keys as a_keys
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from ebank_auth import errors
from ebank_auth.crypto import _pkcs8, keys, rsa, sm2

SM2_KEY = sm2.generate_private_key()
RSA_KEY = rsa.generate_private_key(2048)
SM2_ALG = bytes.fromhex("301306072a8648ce3d020106082a811ccf5501822d")


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + body


def _sec1_with_public_bits(bits: bytes) -> bytes:
    """ECPrivateKey { 1, d, [1] BIT STRING with the given contents } on the SM2 curve."""
    body = bytes.fromhex("020101") + _tlv(0x04, SM2_KEY.to_bytes()) + _tlv(0xA1, _tlv(0x03, bits))
    return _tlv(0x30, body)


def _pkcs8_of(sec1: bytes) -> bytes:
    return _tlv(0x30, bytes.fromhex("020100") + SM2_ALG + _tlv(0x04, sec1))


def _encrypted_info(kdf: dict[str, Any]) -> bytes:
    """An EncryptedPrivateKeyInfo with the given key derivation and garbage ciphertext."""
    return bytes(
        a_keys.EncryptedPrivateKeyInfo(
            {
                "encryption_algorithm": {
                    "algorithm": "pbes2",
                    "parameters": {
                        "key_derivation_func": kdf,
                        "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": b"\0" * 16},
                    },
                },
                "encrypted_data": b"\x11" * 64,
            }
        ).dump()
    )


def _pbkdf2(iterations: int) -> dict[str, Any]:
    return {
        "algorithm": "pbkdf2",
        "parameters": {
            "salt": a_core.OctetString(b"s" * 16),
            "iteration_count": iterations,
            "prf": {"algorithm": "sha256"},
        },
    }


LOADERS: list[Callable[..., object]] = [
    keys.load_private_key,
    sm2.load_der_private_key,
    rsa.load_der_private_key,
]


@pytest.mark.parametrize("wrap", [False, True], ids=["sec1", "pkcs8"])
@pytest.mark.parametrize("loader", LOADERS[:2], ids=["load_private_key", "sm2"])
def test_empty_public_key_bit_string_is_a_typed_error(
    loader: Callable[..., object], wrap: bool
) -> None:
    """Attack: an SM2 key file whose [1] publicKey BIT STRING has no content octets.

    asn1crypto raised IndexError on it, which escaped every loader (a crash of the
    caller instead of a refusal).  It must be a typed InvalidKey/EncodingError.
    """
    data = _sec1_with_public_bits(b"")
    if wrap:
        data = _pkcs8_of(data)
    with pytest.raises((errors.InvalidKey, errors.EncodingError)):
        loader(data)


@settings(max_examples=60, deadline=None)
@given(bits=st.binary(max_size=70), wrap=st.booleans())
def test_any_public_key_bit_string_gives_a_key_or_a_typed_error(bits: bytes, wrap: bool) -> None:
    """Property: whatever the publicKey BIT STRING holds, the loader returns the key
    (when it is the matching point) or raises an ebank_auth error, nothing else."""
    data = _sec1_with_public_bits(bits)
    if wrap:
        data = _pkcs8_of(data)
    try:
        key = keys.load_private_key(data)
    except errors.EbankAuthError:
        return
    assert isinstance(key, sm2.SM2PrivateKey)
    assert bits == b"\x00" + SM2_KEY.public_key().to_bytes()


@pytest.mark.parametrize("loader", LOADERS, ids=["load_private_key", "sm2", "rsa"])
def test_pbkdf2_iterations_above_the_cap_are_refused_before_deriving(
    loader: Callable[..., object],
) -> None:
    """Attack: an encrypted key with a huge PBKDF2 iteration count makes whoever loads it
    burn CPU (10,000,000 iterations were accepted, and load_private_key derived up to
    three times).  Above the documented cap it is refused, naming the cap."""
    data = _encrypted_info(_pbkdf2(2_000_000))  # accepted (and derived 3x) before the cap
    with pytest.raises((errors.InvalidKey, errors.EncodingError)) as info:
        loader(data, b"password")
    assert "iteration" in str(info.value)


def test_the_iteration_cap_is_documented_and_applies_when_writing() -> None:
    assert _pkcs8.MAX_PBKDF2_ITERATIONS == 1_000_000
    with pytest.raises(errors.ConfigurationError):
        SM2_KEY.to_pem(b"pw", iterations=_pkcs8.MAX_PBKDF2_ITERATIONS + 1)
    at_cap = _encrypted_info(_pbkdf2(_pkcs8.MAX_PBKDF2_ITERATIONS))
    with pytest.raises(errors.InvalidKey) as info:  # derived (garbage ciphertext), not capped
        keys.load_private_key(at_cap, b"password")
    assert "iteration" not in str(info.value)


class _Spy:
    """Counts our PBKDF2/scrypt derivations and records every password handed to
    ``cryptography``'s private-key loaders (which derive on their own)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.derivations = 0
        self.cryptography_passwords: list[object] = []
        real_derive = _pkcs8._derive

        def derive(*args: Any) -> bytes:
            self.derivations += 1
            return real_derive(*args)

        monkeypatch.setattr(_pkcs8, "_derive", derive)
        for name in ("load_pem_private_key", "load_der_private_key"):
            real = getattr(serialization, name)

            def wrapped(data: bytes, password: object, *a: Any, _real: Any = real, **k: Any) -> Any:
                self.cryptography_passwords.append(password)
                return _real(data, password, *a, **k)

            monkeypatch.setattr(serialization, name, wrapped)

    @property
    def total(self) -> int:
        return self.derivations + sum(p is not None for p in self.cryptography_passwords)


@pytest.mark.parametrize("kind", ["sm2", "rsa", "p256"])
def test_load_private_key_derives_once(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """Attack (cost amplification): load_private_key tried the SM2, RSA and generic
    loaders in turn, each deriving the key-encryption key again; an RSA or P-256 key or a
    wrong password cost up to three derivations.  One derivation per load now."""
    key: Any = {
        "sm2": SM2_KEY,
        "rsa": RSA_KEY,
        "p256": keys.P256PrivateKey.generate(),
    }[kind]
    pem = key.to_pem(b"right password")
    spy = _Spy(monkeypatch)
    loaded = keys.load_private_key(pem, b"right password")
    assert keys.public_key_equal(loaded.public_key(), key.public_key())
    assert spy.total == 1, (spy.derivations, spy.cryptography_passwords)

    spy = _Spy(monkeypatch)
    with pytest.raises((errors.InvalidKey, errors.DecryptionError)):
        keys.load_private_key(pem, b"wrong password")
    assert spy.total == 1, (spy.derivations, spy.cryptography_passwords)


def test_rsa_loader_uses_the_capped_decryption(monkeypatch: pytest.MonkeyPatch) -> None:
    """The RSA loaders decrypt PKCS#8 with our capped PBES2 code, not cryptography's."""
    pem = RSA_KEY.to_pem(b"pw")
    spy = _Spy(monkeypatch)
    loaded = rsa.load_pem_private_key(pem, b"pw")
    assert keys.public_key_equal(loaded.public_key(), RSA_KEY.public_key())
    assert spy.derivations == 1 and all(p is None for p in spy.cryptography_passwords)


def test_password_mistakes_stay_typed() -> None:
    enc = SM2_KEY.to_pem(b"pw", iterations=1000)
    with pytest.raises(errors.InvalidKey, match="encrypted"):
        keys.load_private_key(enc)
    with pytest.raises(errors.InvalidKey, match="not encrypted"):
        keys.load_private_key(SM2_KEY.to_pem(), b"pw")
    with pytest.raises(errors.InvalidKey, match="not encrypted"):
        keys.load_private_key(RSA_KEY.to_pem(), b"pw")
