"""Load and save private keys of any supported kind (SM2, RSA, P-256)."""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm as _CgUnsupported
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ebank_auth.crypto import rsa, sm2
from ebank_auth.errors import EbankAuthError, InvalidKey

from . import _der
from ._keys import PrivateKey

__all__ = ["load_private_key", "private_key_to_pem"]

_MAX_KEY_FILE = 64 * 1024


def load_private_key(data: bytes, password: bytes | None = None) -> PrivateKey:
    """Load a PEM or DER PKCS#8 (or SEC1/PKCS#1) private key: SM2, RSA or P-256.

    Raises errors.InvalidKey when the key cannot be read (wrong password,
    unsupported type, malformed).
    """
    if not isinstance(data, (bytes, bytearray)) or len(data) > _MAX_KEY_FILE:
        raise InvalidKey("private key must be bytes of at most 64 KiB")
    data = bytes(data)
    pem = _der.is_pem(data)
    for loader in (
        sm2.load_pem_private_key if pem else sm2.load_der_private_key,
        rsa.load_pem_private_key if pem else getattr(rsa, "load_der_private_key", None),
    ):
        if loader is None:
            continue
        try:
            key: PrivateKey = loader(data, password=password)
            return key
        except (EbankAuthError, ValueError, TypeError):
            continue
    try:
        if pem:
            ckey = serialization.load_pem_private_key(data, password=password)
        else:
            ckey = serialization.load_der_private_key(data, password=password)
    except (ValueError, TypeError, _CgUnsupported) as exc:
        raise InvalidKey(
            "could not load the private key: it is malformed, of an unsupported type "
            "(use SM2, RSA ≥ 2048 or P-256), or the password is wrong/missing"
        ) from exc
    if isinstance(ckey, ec.EllipticCurvePrivateKey) and isinstance(ckey.curve, ec.SECP256R1):
        return ckey
    raise InvalidKey("unsupported private key type: use SM2, RSA ≥ 2048 or P-256")


def private_key_to_pem(key: PrivateKey, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM (encrypted when ``password`` is given)."""
    if isinstance(key, (sm2.SM2PrivateKey, rsa.RSAPrivateKey)):
        return key.to_pem(password=password)
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
