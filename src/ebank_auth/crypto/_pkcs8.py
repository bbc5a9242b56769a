"""Password-protected PKCS#8 (RFC 5958 EncryptedPrivateKeyInfo with PBES2, RFC 8018).

Writes PBES2 / PBKDF2-HMAC-SHA256 / AES-256-CBC, which OpenSSL 3 reads and writes by
default.  Reads PBES2 with PBKDF2 (HMAC-SHA1/SHA-2/SM3) and AES-CBC, SM4-CBC or
3DES-CBC.  scrypt (which asn1crypto does not parse) and PBES1 are refused as
UnsupportedAlgorithm.

The work a key file can demand is capped: at most :data:`MAX_PBKDF2_ITERATIONS`
PBKDF2 iterations (5x our default of 200,000; OpenSSL writes 2,048), checked before
anything is derived, so a hostile key file cannot make a server that loads it spend
seconds of CPU.  Every loader derives once per load.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from asn1crypto import core
from asn1crypto import keys as asn1_keys
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from ebank_auth.crypto import _asn1
from ebank_auth.errors import (
    ConfigurationError,
    DecryptionError,
    EncodingError,
    UnsupportedAlgorithm,
)

PBKDF2_ITERATIONS = 200_000
MAX_PBKDF2_ITERATIONS = 1_000_000

_PRF: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "hmac_sm3": hashes.SM3,
    "sm3": hashes.SM3,
}


def encrypt(pkcs8_der: bytes, password: bytes, iterations: int = PBKDF2_ITERATIONS) -> bytes:
    if not 1 <= iterations <= MAX_PBKDF2_ITERATIONS:
        raise ConfigurationError(
            f"PBKDF2 iterations must be between 1 and {MAX_PBKDF2_ITERATIONS:,} "
            "(keys with more could not be loaded again)"
        )
    salt = os.urandom(16)
    iv = os.urandom(16)
    key = PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(password)
    padder = padding.PKCS7(128).padder()
    data = padder.update(pkcs8_der) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ct = enc.update(data) + enc.finalize()
    info = asn1_keys.EncryptedPrivateKeyInfo(
        {
            "encryption_algorithm": {
                "algorithm": "pbes2",
                "parameters": {
                    "key_derivation_func": {
                        "algorithm": "pbkdf2",
                        "parameters": {
                            "salt": core.OctetString(salt),
                            "iteration_count": iterations,
                            "prf": {"algorithm": "sha256"},
                        },
                    },
                    "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": iv},
                },
            },
            "encrypted_data": ct,
        }
    )
    return bytes(info.dump())


def is_encrypted(der: bytes) -> bool:
    """True when ``der`` parses as an EncryptedPrivateKeyInfo (PKCS#8 with encryption)."""
    try:
        info = asn1_keys.EncryptedPrivateKeyInfo.load(bytes(der), strict=True)
        info["encryption_algorithm"]["algorithm"].dotted  # noqa: B018 - forces the parse
        info["encrypted_data"].native  # noqa: B018
    except (ValueError, TypeError, KeyError, IndexError):
        return False
    return True


def decrypt(der: bytes, password: bytes) -> bytes:
    """Return the inner PrivateKeyInfo DER; raises DecryptionError on a wrong password."""
    try:
        info = asn1_keys.EncryptedPrivateKeyInfo.load(bytes(der))
        alg = info["encryption_algorithm"]
        if alg["algorithm"].native != "pbes2":
            raise UnsupportedAlgorithm(
                f"encrypted key uses {alg['algorithm'].dotted}: only PBES2 is supported; "
                "re-encrypt it with 'openssl pkcs8 -topk8 -v2 aes-256-cbc'"
            )
        params = alg["parameters"]
        kdf = params["key_derivation_func"]
        scheme = params["encryption_scheme"]
        enc_name = scheme["algorithm"].native
        iv = bytes(scheme["parameters"].native)
        ct = bytes(info["encrypted_data"].native)
        cipher_alg, key_len = _cipher(enc_name, scheme)
        key = _derive(kdf, password, key_len)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise EncodingError("encrypted private key is malformed") from exc
    try:
        dec = Cipher(cipher_alg(key), modes.CBC(iv)).decryptor()
        data = dec.update(ct) + dec.finalize()
        unpadder = padding.PKCS7(cipher_alg.block_size).unpadder()
        plain = unpadder.update(data) + unpadder.finalize()
        asn1_keys.PrivateKeyInfo.load(plain).native  # noqa: B018 - forces a full parse
    except (ValueError, TypeError) as exc:
        raise DecryptionError(
            "could not decrypt the private key: wrong password, or the file is corrupted"
        ) from exc
    return plain


def _cipher(name: str, scheme: Any) -> tuple[Any, int]:
    if name in ("aes128_cbc", "aes192_cbc", "aes256_cbc"):
        return algorithms.AES, {"aes128_cbc": 16, "aes192_cbc": 24, "aes256_cbc": 32}[name]
    if name in ("sm4_cbc", _asn1.OID_SM4_CBC):
        return algorithms.SM4, 16
    if name == "tripledes_3key":
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES

        return TripleDES, 24
    raise UnsupportedAlgorithm(
        f"encrypted key uses cipher {scheme['algorithm'].dotted}, not supported"
    )


def _derive(kdf: Any, password: bytes, key_len: int) -> bytes:
    name = kdf["algorithm"].native
    p = kdf["parameters"]
    if name == "pbkdf2":
        iterations = int(p["iteration_count"].native)
        if iterations < 1:
            raise EncodingError(f"PBKDF2 iteration count {iterations} is out of range")
        if iterations > MAX_PBKDF2_ITERATIONS:
            raise EncodingError(
                f"PBKDF2 iteration count {iterations} is above the cap of "
                f"{MAX_PBKDF2_ITERATIONS:,}: re-encrypt the key with fewer iterations "
                "(e.g. 'openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 200000')"
            )
        prf_name = p["prf"]["algorithm"].native if p["prf"] else "sha1"
        prf = _PRF.get(prf_name)
        if prf is None:
            raise UnsupportedAlgorithm(f"PBKDF2 with {prf_name} is not supported")
        salt = bytes(p["salt"].chosen.native)
        return PBKDF2HMAC(prf(), key_len, salt, iterations).derive(password)
    raise UnsupportedAlgorithm(f"key derivation {kdf['algorithm'].dotted} is not supported")
