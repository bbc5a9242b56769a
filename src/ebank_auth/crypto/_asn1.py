"""ASN.1 plumbing shared by the crypto modules (asn1crypto with the GM/T OIDs registered).

Importing this module registers, once and idempotently, the Chinese national algorithm
OIDs with asn1crypto so that keys, certificates and CMS structures that use them parse
and print with readable names.  It also holds the few strict DER helpers the SM2 code
needs (signature ``SEQUENCE{r, s}`` and GM/T 0009 ciphertext ``SEQUENCE{x, y, C3, C2}``).
"""

from __future__ import annotations

from typing import Any

from asn1crypto import algos, cms, core, keys

from ebank_auth.crypto import oids
from ebank_auth.crypto.algorithms import SignatureAlgorithm
from ebank_auth.errors import EncodingError, UnsupportedAlgorithm

# ---------------------------------------------------------------- GM/T 0006 object identifiers
OID_SM2_CURVE = "1.2.156.10197.1.301"
OID_SM2_SIGN = "1.2.156.10197.1.301.1"
OID_SM2_EXCHANGE = "1.2.156.10197.1.301.2"
OID_SM2_ENCRYPT = "1.2.156.10197.1.301.3"
OID_SM3 = "1.2.156.10197.1.401"
OID_HMAC_SM3 = "1.2.156.10197.1.401.2"
OID_SM2_WITH_SM3 = "1.2.156.10197.1.501"
OID_SM3_WITH_RSA = "1.2.156.10197.1.504"
OID_SM4_ECB = "1.2.156.10197.1.104.1"
OID_SM4_CBC = "1.2.156.10197.1.104.2"
OID_SM4_CTR = "1.2.156.10197.1.104.7"
OID_SM4_GCM = "1.2.156.10197.1.104.8"
OID_GMT0010_DATA = "1.2.156.10197.6.1.4.2.1"
OID_GMT0010_SIGNED_DATA = "1.2.156.10197.6.1.4.2.2"
OID_GMT0010_ENVELOPED_DATA = "1.2.156.10197.6.1.4.2.3"
OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"

_registered = False


def _add(mapping: Any, oid: str, name: str) -> None:
    cls_map = mapping._map
    if oid not in cls_map:
        cls_map[oid] = name
    if mapping._reverse_map is not None:
        mapping._reverse_map[name] = oid


def register_oids() -> None:
    """Register the GM/T OIDs with asn1crypto (safe to call many times)."""
    global _registered
    if _registered:
        return
    if OID_SM2_CURVE not in keys.NamedCurve._map:
        keys.NamedCurve.register("sm2p256v1", OID_SM2_CURVE, 32)
    _add(algos.DigestAlgorithmId, OID_SM3, "sm3")
    _add(algos.HmacAlgorithmId, OID_HMAC_SM3, "hmac_sm3")
    _add(algos.SignedDigestAlgorithmId, OID_SM2_WITH_SM3, "sm2_sm3")
    _add(algos.SignedDigestAlgorithmId, OID_SM3_WITH_RSA, "sm3_rsa")
    _add(algos.SignedDigestAlgorithmId, OID_SM2_SIGN, "sm2_sign")
    _add(algos.EncryptionAlgorithmId, OID_SM4_CBC, "sm4_cbc")
    _add(algos.EncryptionAlgorithmId, OID_SM4_ECB, "sm4_ecb")
    _add(cms.ContentType, OID_GMT0010_DATA, "gmt0010_data")
    _add(cms.ContentType, OID_GMT0010_SIGNED_DATA, "gmt0010_signed_data")
    _add(cms.ContentType, OID_GMT0010_ENVELOPED_DATA, "gmt0010_enveloped_data")
    _registered = True


register_oids()


# ---------------------------------------------------------------- strict DER for SM2 values
class _RS(core.Sequence):
    _fields = [("r", core.Integer), ("s", core.Integer)]


class _SM2Cipher(core.Sequence):
    _fields = [
        ("x", core.Integer),
        ("y", core.Integer),
        ("hash", core.OctetString),
        ("ciphertext", core.OctetString),
    ]


def _der_int(v: int) -> bytes:
    body = v.to_bytes(v.bit_length() // 8 + 1, "big")  # minimal, with a 00 before a high bit
    return b"\x02" + bytes((len(body),)) + body


def encode_rs(r: int, s: int) -> bytes:
    """DER ``SEQUENCE{r, s}``.  Non-negative values below 2^256 (every SM2 signature) are
    encoded directly — asn1crypto costs ~10 µs per signature, which showed in the per-call
    overhead of token backends; anything else goes through asn1crypto."""
    if 0 <= r < 1 << 256 and 0 <= s < 1 << 256:
        body = _der_int(r) + _der_int(s)
        return b"\x30" + bytes((len(body),)) + body
    return bytes(_RS({"r": r, "s": s}).dump())


def encode_rs_asn1crypto(r: int, s: int) -> bytes:
    """The same DER through asn1crypto (the reference the fast path is tested against)."""
    return bytes(_RS({"r": r, "s": s}).dump())


def _der_uint(d: bytes, off: int) -> tuple[int, int]:
    """One DER INTEGER (short length form, non-negative, minimal) at ``off``."""
    if off + 2 > len(d) or d[off] != 0x02:
        raise EncodingError("SM2 signature is not DER SEQUENCE{r, s}")
    n = d[off + 1]
    body = d[off + 2 : off + 2 + n]
    if n == 0 or n >= 0x80 or len(body) != n:
        raise EncodingError("SM2 signature has a malformed INTEGER")
    if body[0] & 0x80 or (n > 1 and body[0] == 0 and not body[1] & 0x80):
        raise EncodingError("SM2 signature INTEGER is negative or not minimally encoded")
    return int.from_bytes(body, "big"), off + 2 + n


def decode_rs(der: bytes) -> tuple[int, int]:
    """Parse ``SEQUENCE{r, s}``; refuses anything that is not exactly canonical DER.

    Hand-parsed (it is two small INTEGERs) because it runs on every verification;
    ``tests/crypto/test_crypto_bad_input.py`` checks it against asn1crypto's strict parser.
    """
    d = bytes(der)
    if len(d) < 8 or d[0] != 0x30:
        raise EncodingError("SM2 signature is not DER SEQUENCE{r, s}")
    if d[1] < 0x80:
        length, off = d[1], 2
    elif d[1] == 0x81 and len(d) > 2 and d[2] >= 0x80:
        length, off = d[2], 3
    else:
        raise EncodingError("SM2 signature has a non-canonical length")
    if off + length != len(d):
        raise EncodingError("SM2 signature length does not match its contents")
    r, off = _der_uint(d, off)
    s, off = _der_uint(d, off)
    if off != len(d):
        raise EncodingError("SM2 signature has trailing data")
    if r <= 0 or s <= 0:
        raise EncodingError("SM2 signature value r or s is zero")
    return r, s


def decode_rs_reference(der: bytes) -> tuple[int, int]:
    """The same check through asn1crypto (strict load + re-encode); a test oracle."""
    try:
        seq = _RS.load(bytes(der), strict=True)
        r = int(seq["r"].native)
        s = int(seq["s"].native)
    except (ValueError, TypeError, KeyError) as exc:
        raise EncodingError("SM2 signature is not DER SEQUENCE{r, s}") from exc
    if r <= 0 or s <= 0 or encode_rs(r, s) != bytes(der):
        raise EncodingError("SM2 signature is not canonical DER")
    return r, s


def encode_sm2_cipher(x: int, y: int, c3: bytes, c2: bytes) -> bytes:
    return bytes(_SM2Cipher({"x": x, "y": y, "hash": c3, "ciphertext": c2}).dump())


def decode_sm2_cipher(der: bytes) -> tuple[int, int, bytes, bytes]:
    try:
        seq = _SM2Cipher.load(bytes(der), strict=True)
        x = int(seq["x"].native)
        y = int(seq["y"].native)
        c3 = bytes(seq["hash"].native)
        c2 = bytes(seq["ciphertext"].native)
    except (ValueError, TypeError, KeyError) as exc:
        raise EncodingError("SM2 ciphertext is not GM/T 0009 DER SEQUENCE{x, y, C3, C2}") from exc
    if x < 0 or y < 0 or encode_sm2_cipher(x, y, c3, c2) != bytes(der):
        raise EncodingError("SM2 ciphertext is not canonical DER")
    return x, y, c3, c2


# ---------------------------------------------------------------- signature AlgorithmIdentifiers
def algorithm_identifier(alg: SignatureAlgorithm) -> algos.SignedDigestAlgorithm:
    """AlgorithmIdentifier for ``alg``: NULL parameters for RSA, absent otherwise."""
    value: dict[str, object] = {"algorithm": alg.value}
    if alg in (SignatureAlgorithm.SHA256_RSA, SignatureAlgorithm.SM3_RSA):
        value["parameters"] = core.Null()
    return algos.SignedDigestAlgorithm(value)


def params_absent_or_null(params: object) -> bool:
    """True for absent parameters or an ASN.1 NULL (whatever class asn1crypto chose)."""
    if isinstance(params, core.Void):
        return True
    return isinstance(params, core.Asn1Value) and bytes(params.dump()) == b"\x05\x00"


def parse_signature_algorithm(ai: algos.SignedDigestAlgorithm) -> SignatureAlgorithm:
    """Map an AlgorithmIdentifier to a SignatureAlgorithm, checking its parameters."""
    try:
        oid = ai["algorithm"].dotted
        params = ai["parameters"]
    except (ValueError, TypeError, KeyError) as exc:
        raise EncodingError("malformed signature AlgorithmIdentifier") from exc
    if oid == oids.SM2_SIGN_LEGACY:
        oid = oids.SM2_WITH_SM3
    try:
        alg = SignatureAlgorithm(oid)
    except ValueError:
        raise UnsupportedAlgorithm(
            f"signature algorithm {oid} is not supported: use SM2-with-SM3, "
            "sha256WithRSA, sm3WithRSA or ecdsa-with-SHA256"
        ) from None
    if not params_absent_or_null(params):
        raise EncodingError(f"{alg.name} AlgorithmIdentifier parameters must be absent or NULL")
    return alg


def signature_bits(value: object) -> bytes:
    """A signature BIT STRING's bytes; refuses unused bits (a malleable encoding)."""
    contents = bytes(value.contents)  # type: ignore[attr-defined]
    if not contents or contents[0] != 0:
        raise ValueError("signature BIT STRING must have no unused bits")
    return contents[1:]
