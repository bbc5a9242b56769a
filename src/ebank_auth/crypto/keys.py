"""Signing keys: one protocol for every key that can sign a certificate, CSR, CRL, CMS or checkpoint.

A :class:`SigningKey` is anything with a public key that signs a whole message with a
named :class:`SignatureAlgorithm` — a software SM2 or RSA key, a key held on a USB Key
(``ebank_auth.usbkey.TokenSigningKey``), a two-party SM2 key, a PKCS#11 key.  The PKI and
audit code program against this protocol, never against a concrete key class, so a key
whose private half never enters this process signs exactly like a software key.

Contract of :meth:`SigningKey.sign_with`:

* ``data`` is the whole message (the key hashes it itself);
* SM2 with SM3 uses the default distinguishing ID ``1234567812345678`` (GM/T 0009/0010/0015),
  i.e. the signer computes ``e = SM3(Z_A || data)``;
* the result is the signature value as it goes into a certificate or CMS: a DER
  ``SEQUENCE { r, s }`` for SM2 and ECDSA, the raw PKCS#1 v1.5 block for RSA;
* an algorithm the key cannot produce raises ``errors.UnsupportedAlgorithm``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ebank_auth.crypto.x509._keys import KeyAlgorithm, PublicKey, SignatureAlgorithm

__all__ = ["KeyAlgorithm", "PublicKey", "SignatureAlgorithm", "SigningKey"]


@runtime_checkable
class SigningKey(Protocol):
    """A key that can sign: software, on a token, two-party, or behind PKCS#11."""

    def public_key(self) -> PublicKey:
        """The public half (SM2, RSA or P-256)."""
        ...

    def sign_with(self, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
        """Sign the whole message ``data`` with ``algorithm`` (see the module contract)."""
        ...
