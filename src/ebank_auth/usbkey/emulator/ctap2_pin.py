"""CTAP2 PIN/UV auth protocol 2 (CTAP 2.1 §6.5.7), the authenticator's half.

* **Key agreement**: a P-256 key pair made at power-up (and again after a wrong PIN); the
  platform sends its own public key as a COSE_Key (kty EC2, alg -25, crv P-256) and both sides
  compute ``Z``, the x-coordinate of the ECDH product.
* **KDF**: HKDF-SHA-256 over ``Z`` with a salt of 32 zero bytes; info ``"CTAP2 HMAC key"``
  gives the 32-byte HMAC key, ``"CTAP2 AES key"`` the 32-byte AES key.
* **encrypt / decrypt**: AES-256-CBC without padding, a random IV prepended to the ciphertext.
* **authenticate / verify**: HMAC-SHA-256, all 32 bytes, compared in constant time.

Device code: no host library (python-fido2) is imported here; the primitives come from
``cryptography``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ebank_auth.errors import EncodingError

__all__ = [
    "PROTOCOL_VERSION",
    "KeyAgreement",
    "SharedSecret",
    "authenticate",
    "check_auth",
    "cose_ec2_public",
]

PROTOCOL_VERSION: Final = 2
#: COSE: kty EC2 = 2, crv P-256 = 1; alg -25 = ECDH-ES + HKDF-256 (key agreement), -7 = ES256
COSE_KTY_EC2: Final = 2
COSE_CRV_P256: Final = 1
COSE_ALG_ECDH_ES_HKDF_256: Final = -25
_ZERO_SALT: Final = bytes(32)
_BLOCK: Final = 16


def cose_ec2_public(key: ec.EllipticCurvePublicKey, alg: int) -> dict[int, object]:
    """The COSE_Key map of a P-256 public key (``alg`` -7 for ES256, -25 for key agreement)."""
    numbers = key.public_numbers()
    return {
        1: COSE_KTY_EC2,
        3: alg,
        -1: COSE_CRV_P256,
        -2: numbers.x.to_bytes(32, "big"),
        -3: numbers.y.to_bytes(32, "big"),
    }


def _hkdf(z: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_ZERO_SALT, info=info).derive(z)


@dataclass(frozen=True)
class SharedSecret:
    """The two keys protocol 2 derives from one ECDH exchange."""

    hmac_key: bytes
    aes_key: bytes

    def encrypt(self, plaintext: bytes) -> bytes:
        if len(plaintext) % _BLOCK:
            raise EncodingError("PIN protocol 2 encrypts whole AES blocks only")
        iv = secrets.token_bytes(_BLOCK)
        enc = Cipher(algorithms.AES(self.aes_key), modes.CBC(iv)).encryptor()
        return iv + enc.update(plaintext) + enc.finalize()

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Raises :class:`EncodingError` unless ``ciphertext`` is an IV plus whole blocks."""
        if len(ciphertext) < 2 * _BLOCK or len(ciphertext) % _BLOCK:
            raise EncodingError("PIN protocol 2 ciphertext must be an IV plus whole AES blocks")
        iv, body = ciphertext[:_BLOCK], ciphertext[_BLOCK:]
        dec = Cipher(algorithms.AES(self.aes_key), modes.CBC(iv)).decryptor()
        return dec.update(body) + dec.finalize()


def authenticate(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA-256 of ``message`` under ``key`` (all 32 bytes, as protocol 2 sends them)."""
    return hmac.new(key, message, hashlib.sha256).digest()


def check_auth(key: bytes, message: bytes, signature: object) -> bool:
    """Does ``signature`` authenticate ``message``?  Constant time; a non-bytes value is no."""
    if not isinstance(signature, bytes) or len(signature) != 32:
        return False
    return hmac.compare_digest(authenticate(key, message), signature)


class KeyAgreement:
    """The authenticator's key-agreement key pair (volatile: new at power-up and after a
    wrong PIN, as CTAP 2.1 §6.5.5.4 asks)."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())

    def regenerate(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())

    def public_cose(self) -> dict[int, object]:
        return cose_ec2_public(self._key.public_key(), COSE_ALG_ECDH_ES_HKDF_256)

    def shared_secret(self, peer: object) -> SharedSecret:
        """Derive the shared keys from the platform's COSE_Key ``peer``.

        Raises :class:`EncodingError` for anything but a valid P-256 point in the protocol-2
        COSE form (the applet answers ``CTAP1_ERR_INVALID_PARAMETER``)."""
        if not isinstance(peer, dict):
            raise EncodingError("keyAgreement must be a COSE_Key map")
        if (
            peer.get(1) != COSE_KTY_EC2
            or peer.get(3) != COSE_ALG_ECDH_ES_HKDF_256
            or peer.get(-1) != COSE_CRV_P256
        ):
            raise EncodingError("keyAgreement must be an EC2 P-256 key for ECDH-ES+HKDF-256")
        x, y = peer.get(-2), peer.get(-3)
        if not (isinstance(x, bytes) and isinstance(y, bytes) and len(x) == len(y) == 32):
            raise EncodingError("keyAgreement coordinates must be 32-byte strings")
        try:
            point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
            z = self._key.exchange(ec.ECDH(), point)
        except (ValueError, InvalidKey):
            raise EncodingError("keyAgreement is not a point on P-256") from None
        return SharedSecret(_hkdf(z, b"CTAP2 HMAC key"), _hkdf(z, b"CTAP2 AES key"))
