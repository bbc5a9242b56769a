"""SM4 block cipher (GB/T 32907) in ECB, CBC (PKCS#7 padding), CTR and GCM modes.

Backed by ``cryptography`` (OpenSSL C code) when it offers SM4, pure Python otherwise
or when ``EBANK_AUTH_CRYPTO_BACKEND=pure``.  GCM returns ``ciphertext || 16-byte tag``.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag as _InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher
from cryptography.hazmat.primitives.ciphers import algorithms as _algorithms
from cryptography.hazmat.primitives.ciphers import modes as _modes

from ebank_auth.crypto import _backend
from ebank_auth.crypto.backends.pure_sm4 import PureSM4
from ebank_auth.errors import CryptoError, DecryptionError, InvalidKey

__all__ = [
    "BLOCK_SIZE",
    "KEY_SIZE",
    "TAG_SIZE",
    "decrypt_cbc",
    "decrypt_ctr",
    "decrypt_ecb",
    "decrypt_gcm",
    "encrypt_cbc",
    "encrypt_ctr",
    "encrypt_ecb",
    "encrypt_gcm",
    "implementation",
]

BLOCK_SIZE = 16
KEY_SIZE = 16
TAG_SIZE = 16


def _use_c() -> bool:
    return _backend.use_cryptography("sm4")


def implementation() -> str:
    """``"cryptography"`` or ``"pure"``: which code runs SM4 (see ``crypto._backend``)."""
    return "cryptography" if _use_c() else "pure"


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray, memoryview)) or len(key) != KEY_SIZE:
        raise InvalidKey("SM4 key must be exactly 16 bytes")
    return bytes(key)


def _check_iv(iv: bytes, what: str = "IV") -> bytes:
    if not isinstance(iv, (bytes, bytearray, memoryview)) or len(iv) != BLOCK_SIZE:
        raise CryptoError(f"SM4 {what} must be exactly 16 bytes")
    return bytes(iv)


def _pad(data: bytes) -> bytes:
    n = BLOCK_SIZE - len(data) % BLOCK_SIZE
    return data + bytes([n]) * n


def _unpad(data: bytes) -> bytes:
    if not data or len(data) % BLOCK_SIZE:
        raise DecryptionError("SM4 ciphertext length is not a multiple of 16 bytes")
    n = data[-1]
    # check every padding byte without an early exit on the first mismatch
    bad = int(n == 0 or n > BLOCK_SIZE)
    for b in data[-BLOCK_SIZE:][BLOCK_SIZE - min(max(n, 1), BLOCK_SIZE) :]:
        bad |= b ^ n
    if bad:
        raise DecryptionError("SM4 padding is invalid: wrong key or altered ciphertext")
    return data[:-n]


def _blocks(data: bytes) -> bytes:
    data = bytes(data)
    if len(data) % BLOCK_SIZE:
        raise CryptoError("without padding, SM4 data must be a multiple of 16 bytes")
    return data


# ---------------------------------------------------------------- ECB
def encrypt_ecb(key: bytes, data: bytes, padding: bool = True) -> bytes:
    key = _check_key(key)
    data = _pad(bytes(data)) if padding else _blocks(data)
    if _use_c():
        enc = _Cipher(_algorithms.SM4(key), _modes.ECB()).encryptor()
        return enc.update(data) + enc.finalize()
    return PureSM4(key).ecb_encrypt(data)


def decrypt_ecb(key: bytes, data: bytes, padding: bool = True) -> bytes:
    key = _check_key(key)
    data = bytes(data)
    if len(data) % BLOCK_SIZE or (padding and not data):
        raise DecryptionError("SM4 ciphertext length is not a positive multiple of 16 bytes")
    if _use_c():
        dec = _Cipher(_algorithms.SM4(key), _modes.ECB()).decryptor()
        out = dec.update(data) + dec.finalize()
    else:
        out = PureSM4(key).ecb_decrypt(data)
    return _unpad(out) if padding else out


# ---------------------------------------------------------------- CBC
def encrypt_cbc(key: bytes, iv: bytes, data: bytes, padding: bool = True) -> bytes:
    key, iv = _check_key(key), _check_iv(iv)
    data = _pad(bytes(data)) if padding else _blocks(data)
    if _use_c():
        enc = _Cipher(_algorithms.SM4(key), _modes.CBC(iv)).encryptor()
        return enc.update(data) + enc.finalize()
    return PureSM4(key).cbc_encrypt(iv, data)


def decrypt_cbc(key: bytes, iv: bytes, data: bytes, padding: bool = True) -> bytes:
    key, iv = _check_key(key), _check_iv(iv)
    data = bytes(data)
    if len(data) % BLOCK_SIZE or (padding and not data):
        raise DecryptionError("SM4 ciphertext length is not a positive multiple of 16 bytes")
    if _use_c():
        dec = _Cipher(_algorithms.SM4(key), _modes.CBC(iv)).decryptor()
        out = dec.update(data) + dec.finalize()
    else:
        out = PureSM4(key).cbc_decrypt(iv, data)
    return _unpad(out) if padding else out


# ---------------------------------------------------------------- CTR
def encrypt_ctr(key: bytes, nonce16: bytes, data: bytes) -> bytes:
    """CTR mode; ``nonce16`` is the initial 128-bit counter block (big-endian increment)."""
    key, nonce16 = _check_key(key), _check_iv(nonce16, "CTR counter block")
    if _use_c():
        enc = _Cipher(_algorithms.SM4(key), _modes.CTR(nonce16)).encryptor()
        return enc.update(bytes(data)) + enc.finalize()
    return PureSM4(key).ctr(nonce16, bytes(data))


decrypt_ctr = encrypt_ctr


# ---------------------------------------------------------------- GCM
_GCM_REFUSED = (
    "the encrypted data failed its integrity check and was not decrypted: it was altered "
    "in transit or storage, or the key, nonce or associated data differ from the ones used "
    "to encrypt it (SM4-GCM authentication tag mismatch)"
)


def _check_nonce(nonce: bytes) -> bytes:
    if not isinstance(nonce, (bytes, bytearray, memoryview)) or not 8 <= len(nonce) <= 128:
        raise CryptoError("SM4-GCM nonce must be 8 to 128 bytes (12 recommended)")
    return bytes(nonce)


def encrypt_gcm(key: bytes, nonce: bytes, data: bytes, aad: bytes = b"") -> bytes:
    """Authenticated encryption; returns ``ciphertext || tag`` (16-byte tag).

    Never reuse a (key, nonce) pair: use 12 random bytes or a counter per key.
    """
    key, nonce = _check_key(key), _check_nonce(nonce)
    if _use_c():
        enc = _Cipher(_algorithms.SM4(key), _modes.GCM(nonce)).encryptor()
        if aad:
            enc.authenticate_additional_data(bytes(aad))
        ct = enc.update(bytes(data)) + enc.finalize()
        return ct + enc.tag
    return PureSM4(key).gcm_encrypt(nonce, bytes(data), bytes(aad))


def decrypt_gcm(key: bytes, nonce: bytes, ct_and_tag: bytes, aad: bytes = b"") -> bytes:
    """Verify the tag and decrypt; raises :class:`DecryptionError` if anything was altered."""
    key, nonce = _check_key(key), _check_nonce(nonce)
    ct_and_tag = bytes(ct_and_tag)
    if len(ct_and_tag) < TAG_SIZE:
        raise DecryptionError(
            "the encrypted data is too short to be SM4-GCM output (under 16 bytes): "
            "it was cut off or is not encrypted data"
        )
    if _use_c():
        ct, tag = ct_and_tag[:-TAG_SIZE], ct_and_tag[-TAG_SIZE:]
        dec = _Cipher(_algorithms.SM4(key), _modes.GCM(nonce, tag)).decryptor()
        if aad:
            dec.authenticate_additional_data(bytes(aad))
        try:
            return dec.update(ct) + dec.finalize()
        except _InvalidTag as exc:
            raise DecryptionError(_GCM_REFUSED) from exc
    out = PureSM4(key).gcm_decrypt(nonce, ct_and_tag, bytes(aad))
    if out is None:
        raise DecryptionError(_GCM_REFUSED)
    return out
