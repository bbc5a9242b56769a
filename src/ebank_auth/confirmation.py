"""The one check of a transaction confirmation signature, for SM2 and RSA keys (AU-8, UK-7).

A USB Key or phone shield shows the canonical transaction
(:meth:`ebank_auth.transaction.Transaction.encode`) on its own screen and, once the
customer confirms, signs exactly those bytes:

* **SM2** — SM2 with SM3 over the bytes, with the default distinguishing ID
  (``1234567812345678``, :data:`ebank_auth.crypto.sm2.DEFAULT_UID`); the signature
  is DER ``SEQUENCE {r, s}``.
* **RSA** (2048 bits or more) — PKCS#1 v1.5 with SHA-256 (what the software token
  produces) or with SM3 (what several domestic tokens produce).  PKCS#1 v1.5 names the
  hash inside the signature, so accepting either never lets one stand in for the other.

:func:`verify_confirmation` is used by the server-side
:class:`ebank_auth.policy.ConfirmationVerifier` and by the host-side token session
(:meth:`ebank_auth.usbkey.session.SignResult.verify`).  This module is a leaf: it
imports only :mod:`ebank_auth.crypto` and :mod:`ebank_auth.transaction`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Union

from ebank_auth.crypto import rsa, sm2
from ebank_auth.errors import ConfigurationError, EncodingError, InvalidKey, InvalidSignature
from ebank_auth.transaction import Transaction

__all__ = ["RSA_CONFIRMATION_HASHES", "ConfirmationKey", "verify_confirmation"]

ConfirmationKey = Union[sm2.SM2PublicKey, rsa.RSAPublicKey]  # noqa: UP007 - runtime alias
"""A public key that can check a confirmation signature."""

RSA_CONFIRMATION_HASHES: tuple[rsa.Hash, ...] = (rsa.Hash.SHA256, rsa.Hash.SM3)
"""Hashes accepted by default with RSA PKCS#1 v1.5 confirmation signatures."""

_MISMATCH = (
    "the confirmation signature does not match this transaction: the payer, payee, "
    "amount, time or id differ from what the customer confirmed, or another key signed it"
)


def _canonical(tx: Transaction | bytes) -> bytes:
    if isinstance(tx, Transaction):
        return tx.encode()
    if isinstance(tx, (bytes, bytearray, memoryview)):
        data = bytes(tx)
        try:
            Transaction.decode(data)  # only the one canonical encoding is ever signed
        except EncodingError:
            raise InvalidSignature(
                "the signed data is not a canonical transaction: a confirmation signature "
                "is only valid over a transaction's canonical bytes"
            ) from None
        return data
    raise InvalidSignature("a confirmation is checked against a Transaction or its bytes")


def verify_confirmation(
    public_key: ConfirmationKey,
    signature: bytes,
    tx: Transaction | bytes,
    *,
    rsa_hashes: Iterable[rsa.Hash] = RSA_CONFIRMATION_HASHES,
) -> None:
    """Check that ``public_key`` signed the canonical bytes of ``tx``.

    ``tx`` is a :class:`~ebank_auth.transaction.Transaction` or its canonical
    encoding (anything else is refused).  Returns ``None`` on success; raises
    :class:`~ebank_auth.errors.InvalidSignature` if the signature is malformed, was
    made by another key or over other data, and
    :class:`~ebank_auth.errors.InvalidKey` for a key that is neither SM2 nor RSA of
    at least 2048 bits.
    """
    data = _canonical(tx)
    sig = bytes(signature) if isinstance(signature, (bytes, bytearray, memoryview)) else None
    if not sig:
        raise InvalidSignature("the confirmation signature is empty or not bytes")
    if isinstance(public_key, sm2.SM2PublicKey):
        try:
            public_key.verify(sig, data, uid=sm2.DEFAULT_UID)
        except (InvalidSignature, EncodingError):
            raise InvalidSignature(_MISMATCH) from None
        return
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < rsa.MIN_BITS:  # pragma: no cover - refused when loaded
            raise InvalidKey(f"RSA confirmation keys need at least {rsa.MIN_BITS} bits")
        try:
            hashes = tuple(rsa.Hash(h) for h in rsa_hashes)
        except ValueError:
            raise ConfigurationError("rsa_hashes may only name sha256 and sm3") from None
        if not hashes:
            raise ConfigurationError("rsa_hashes is empty: allow sha256, sm3 or both")
        for h in hashes:
            try:
                public_key.verify(sig, data, hash=h, padding=rsa.Padding.PKCS1V15)
            except InvalidSignature:
                continue
            return
        raise InvalidSignature(_MISMATCH)
    raise InvalidKey(
        f"a {type(public_key).__name__} cannot check confirmations: use an SM2 key or an "
        f"RSA key of at least {rsa.MIN_BITS} bits"
    )
