"""One confirmation-signature check for SM2 and RSA keys (ebank_auth.confirmation)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.confirmation import verify_confirmation
from ebank_auth.crypto import rsa, sm2
from ebank_auth.errors import ConfigurationError, InvalidKey, InvalidSignature
from ebank_auth.transaction import Transaction
from transaction.strategies import transactions

SM2_A = sm2.generate_private_key()
SM2_B = sm2.generate_private_key()
RSA_A = rsa.generate_private_key(2048)
RSA_B = rsa.generate_private_key(2048)


def sign_sm2(key: sm2.SM2PrivateKey, data: bytes) -> bytes:
    return key.sign(data, uid=sm2.DEFAULT_UID)  # what the token does (e = SM3(Z || M))


def sign_rsa(key: rsa.RSAPrivateKey, data: bytes, h: rsa.Hash = rsa.Hash.SHA256) -> bytes:
    return key.sign(data, hash=h, padding=rsa.Padding.PKCS1V15)


def _flip(sig: bytes, bit: int) -> bytes:
    out = bytearray(sig)
    out[(bit // 8) % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


_settings = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(transactions(), transactions(), st.integers(min_value=0, max_value=8 * 600))
def test_sm2_accepts_only_its_transaction(tx: Transaction, other: Transaction, bit: int) -> None:
    sig = sign_sm2(SM2_A, tx.encode())
    verify_confirmation(SM2_A.public_key(), sig, tx)
    verify_confirmation(SM2_A.public_key(), sig, tx.encode())  # the canonical bytes, too
    with pytest.raises(InvalidSignature):
        verify_confirmation(SM2_B.public_key(), sig, tx)  # another customer's key
    with pytest.raises(InvalidSignature):
        verify_confirmation(SM2_A.public_key(), _flip(sig, bit), tx)
    if other.encode() != tx.encode():
        with pytest.raises(InvalidSignature):
            verify_confirmation(SM2_A.public_key(), sig, other)


@_settings
@given(
    transactions(),
    transactions(),
    st.integers(min_value=0, max_value=8 * 256 - 1),
    st.sampled_from([rsa.Hash.SHA256, rsa.Hash.SM3]),
)
def test_rsa_accepts_only_its_transaction(
    tx: Transaction, other: Transaction, bit: int, h: rsa.Hash
) -> None:
    sig = sign_rsa(RSA_A, tx.encode(), h)
    verify_confirmation(RSA_A.public_key(), sig, tx)
    with pytest.raises(InvalidSignature):
        verify_confirmation(RSA_B.public_key(), sig, tx)
    with pytest.raises(InvalidSignature):
        verify_confirmation(RSA_A.public_key(), _flip(sig, bit), tx)
    if other.encode() != tx.encode():
        with pytest.raises(InvalidSignature):
            verify_confirmation(RSA_A.public_key(), sig, other)


@given(transactions())
@_settings
def test_signatures_do_not_cross_algorithms(tx: Transaction) -> None:
    data = tx.encode()
    with pytest.raises(InvalidSignature):
        verify_confirmation(RSA_A.public_key(), sign_sm2(SM2_A, data), tx)
    with pytest.raises(InvalidSignature):
        verify_confirmation(SM2_A.public_key(), sign_rsa(RSA_A, data), tx)


def _tx() -> Transaction:
    from datetime import datetime, timezone
    from decimal import Decimal

    return Transaction(
        tx_id="T1",
        tx_type="transfer",
        payer_account="6222000011112222",
        payee_account="6222000033334444",
        payee_name="Zhang San",
        amount=Decimal("52000.00"),
        currency="CNY",
        timestamp=datetime(2026, 3, 10, 6, 0, tzinfo=timezone.utc),
    )


def test_rsa_hash_choice_is_enforced() -> None:
    tx = _tx()
    sm3_sig = sign_rsa(RSA_A, tx.encode(), rsa.Hash.SM3)
    verify_confirmation(RSA_A.public_key(), sm3_sig, tx)
    with pytest.raises(InvalidSignature):
        verify_confirmation(RSA_A.public_key(), sm3_sig, tx, rsa_hashes=[rsa.Hash.SHA256])
    pss = RSA_A.sign(tx.encode(), hash=rsa.Hash.SHA256, padding=rsa.Padding.PSS)
    with pytest.raises(InvalidSignature):  # only PKCS#1 v1.5 is a confirmation format
        verify_confirmation(RSA_A.public_key(), pss, tx)
    with pytest.raises(ConfigurationError):
        verify_confirmation(RSA_A.public_key(), sm3_sig, tx, rsa_hashes=[])
    with pytest.raises(ConfigurationError):
        verify_confirmation(RSA_A.public_key(), sm3_sig, tx, rsa_hashes=["md5"])  # type: ignore[list-item]


def test_only_canonical_transaction_bytes_are_checked() -> None:
    tx = _tx()
    data = tx.encode()
    sig = sign_sm2(SM2_A, data + b"\x00")
    with pytest.raises(InvalidSignature, match="not a canonical transaction"):
        verify_confirmation(SM2_A.public_key(), sig, data + b"\x00")
    with pytest.raises(InvalidSignature, match="not a canonical transaction"):
        verify_confirmation(SM2_A.public_key(), sign_sm2(SM2_A, b"hello"), b"hello")


@pytest.mark.parametrize("signature", [b"", b"\x30\x00", b"garbage" * 10])
def test_malformed_signatures_are_invalid(signature: bytes) -> None:
    for key in (SM2_A.public_key(), RSA_A.public_key()):
        with pytest.raises(InvalidSignature):
            verify_confirmation(key, signature, _tx())


def test_other_key_types_refused() -> None:
    with pytest.raises(InvalidKey, match="SM2 key or an RSA key"):
        verify_confirmation(b"not a key", b"sig", _tx())  # type: ignore[arg-type]
