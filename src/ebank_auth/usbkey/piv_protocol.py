"""The PIV card edge (NIST SP 800-73-4) and the YubiKey extensions: wire constants and codecs.

Shared by the software token's PIV applet (:mod:`ebank_auth.usbkey.emulator.piv_applet`) and
the host-side PIV backend (:mod:`ebank_auth.usbkey.vendor.piv`), so both speak exactly one
encoding.  What lives here:

* the application identifier, instructions, key references, slots, algorithm identifiers and
  data-object tags (SP 800-73-4 Part 1 §3 and Part 2 §3, SP 800-78-4 Table 6-2; the YubiKey
  instructions GET VERSION ``FD``, GET SERIAL ``F8``, ATTEST ``F9``, GET METADATA ``F7``,
  SET MANAGEMENT KEY ``FF``);
* the factory defaults every PIV card of this kind ships with (PIN ``123456``, PUK
  ``12345678``, the well-known management key ``0102…0708`` ×3, 3 tries each) — public
  values, so a card still using them is open to anyone who holds it; the conformance report
  flags them;
* BER-TLV with multi-byte tags (``5FC102``, ``7F49``), which the token application's strict
  one-byte TLV (:mod:`ebank_auth.usbkey.tlv`) does not cover;
* the management-key block cipher (3DES or AES, one ECB block for the challenge-response of
  GENERAL AUTHENTICATE) and the public-key template ``7F49`` ↔ SubjectPublicKeyInfo.

Every decoder raises :class:`~ebank_auth.errors.EncodingError` on malformed input.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa as _rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ebank_auth.errors import EncodingError, UnsupportedAlgorithm

__all__ = [
    "DEFAULT_MANAGEMENT_KEY",
    "DEFAULT_PIN",
    "DEFAULT_PUK",
    "DEFAULT_TRIES",
    "PIV_AID",
    "SLOT_OBJECTS",
    "KeyRef",
    "MetadataTag",
    "PinPolicy",
    "PivAlgorithm",
    "PivIns",
    "PivObject",
    "Slot",
    "TouchPolicy",
    "challenge_size",
    "decode_public_key",
    "encode_public_key",
    "encode_tlv",
    "management_block",
    "management_key_length",
    "pad_pin",
    "parse_tlv",
    "parse_tlv_map",
    "tag_bytes",
]

#: The PIV application identifier (NIST RID A000000308, PIX 00001000 0100).
PIV_AID: Final = bytes.fromhex("A000000308000010000100")

DEFAULT_PIN: Final = "123456"
DEFAULT_PUK: Final = "12345678"
#: The management key every YubiKey and most PIV test cards ship with (3DES, 24 bytes).
DEFAULT_MANAGEMENT_KEY: Final = bytes.fromhex("010203040506070801020304050607080102030405060708")
DEFAULT_TRIES: Final = 3
PIN_MIN_LENGTH: Final = 6
PIN_MAX_LENGTH: Final = 8


class PivIns(IntEnum):
    """Instructions of the PIV card edge and of the YubiKey extensions."""

    VERIFY = 0x20
    CHANGE_REFERENCE_DATA = 0x24
    RESET_RETRY_COUNTER = 0x2C
    GENERATE_ASYMMETRIC = 0x47
    GENERAL_AUTHENTICATE = 0x87
    SELECT = 0xA4
    GET_RESPONSE = 0xC0
    GET_DATA = 0xCB
    PUT_DATA = 0xDB
    # YubiKey extensions
    GET_METADATA = 0xF7
    SET_PIN_RETRIES = 0xFA
    RESET = 0xFB
    GET_SERIAL = 0xF8
    ATTEST = 0xF9
    GET_VERSION = 0xFD
    SET_MANAGEMENT_KEY = 0xFF


class KeyRef(IntEnum):
    """Key references of VERIFY / CHANGE REFERENCE DATA / GENERAL AUTHENTICATE."""

    PIN = 0x80
    PUK = 0x81
    MANAGEMENT = 0x9B


class Slot(IntEnum):
    """Key slots: PIV authentication, digital signature, key management, card authentication,
    and the YubiKey attestation slot."""

    AUTHENTICATION = 0x9A
    SIGNATURE = 0x9C
    KEY_MANAGEMENT = 0x9D
    CARD_AUTHENTICATION = 0x9E
    ATTESTATION = 0xF9

    @property
    def label(self) -> str:
        return f"{self.value:02x}"


class PivAlgorithm(IntEnum):
    """Cryptographic mechanism identifiers (SP 800-78-4 Table 6-2)."""

    TDES = 0x03
    RSA1024 = 0x06
    RSA2048 = 0x07
    AES128 = 0x08
    AES192 = 0x0A
    AES256 = 0x0C
    ECC_P256 = 0x11
    ECC_P384 = 0x14


class PinPolicy(IntEnum):
    """YubiKey PIN policy of a slot key (tag ``AA`` of GENERATE)."""

    DEFAULT = 0x00
    NEVER = 0x01
    ONCE = 0x02
    ALWAYS = 0x03


class TouchPolicy(IntEnum):
    """YubiKey touch policy of a slot key (tag ``AB`` of GENERATE)."""

    DEFAULT = 0x00
    NEVER = 0x01
    ALWAYS = 0x02
    CACHED = 0x03


class MetadataTag(IntEnum):
    """Tags of the YubiKey GET METADATA answer."""

    ALGORITHM = 0x01
    POLICY = 0x02
    ORIGIN = 0x03
    PUBLIC_KEY = 0x04
    IS_DEFAULT = 0x05
    RETRIES = 0x06


class PivObject(IntEnum):
    """Data-object tags (GET DATA / PUT DATA), SP 800-73-4 Part 1 Table 3."""

    CARD_CAPABILITY_CONTAINER = 0x5FC107
    CHUID = 0x5FC102
    CERT_AUTHENTICATION = 0x5FC105
    CERT_SIGNATURE = 0x5FC10A
    CERT_KEY_MANAGEMENT = 0x5FC10B
    CERT_CARD_AUTHENTICATION = 0x5FC101
    FINGERPRINTS = 0x5FC103
    SECURITY_OBJECT = 0x5FC106
    FACIAL_IMAGE = 0x5FC108
    PRINTED_INFORMATION = 0x5FC109
    KEY_HISTORY = 0x5FC10C
    DISCOVERY = 0x7E
    # YubiKey: PIV admin data (protected management key flags) and the attestation certificate
    YUBIKEY_ADMIN_DATA = 0x5FFF00
    YUBIKEY_ATTESTATION_CERT = 0x5FFF01


#: The certificate object of each key slot.
SLOT_OBJECTS: Final[dict[Slot, PivObject]] = {
    Slot.AUTHENTICATION: PivObject.CERT_AUTHENTICATION,
    Slot.SIGNATURE: PivObject.CERT_SIGNATURE,
    Slot.KEY_MANAGEMENT: PivObject.CERT_KEY_MANAGEMENT,
    Slot.CARD_AUTHENTICATION: PivObject.CERT_CARD_AUTHENTICATION,
}

#: Objects readable only after the PIN was verified (SP 800-73-4 Part 1 Table 2).
PIN_PROTECTED_OBJECTS: Final = frozenset(
    {PivObject.FINGERPRINTS, PivObject.FACIAL_IMAGE, PivObject.PRINTED_INFORMATION}
)

_MANAGEMENT_KEY_BYTES: Final = {
    PivAlgorithm.TDES: 24,
    PivAlgorithm.AES128: 16,
    PivAlgorithm.AES192: 24,
    PivAlgorithm.AES256: 32,
}


def pad_pin(pin: str | bytes) -> bytes:
    """The 8-byte reference data of a PIN or PUK: 6-8 ASCII characters, ``FF``-padded."""
    raw = pin.encode("ascii", "replace") if isinstance(pin, str) else bytes(pin)
    if not PIN_MIN_LENGTH <= len(raw) <= PIN_MAX_LENGTH or b"\xff" in raw:
        raise EncodingError("a PIV PIN or PUK has 6 to 8 characters")
    return raw + b"\xff" * (PIN_MAX_LENGTH - len(raw))


# ---------------------------------------------------------------------------- BER-TLV
def tag_bytes(tag: int) -> bytes:
    """The encoded form of ``tag`` (1-3 bytes, big-endian, as written in the standards)."""
    if not 0 < tag <= 0xFFFFFF:
        raise EncodingError(f"TLV tag {tag:#x} out of range")
    return tag.to_bytes((tag.bit_length() + 7) // 8, "big")


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n <= 0xFF:
        return bytes((0x81, n))
    if n <= 0xFFFF:
        return bytes((0x82, n >> 8, n & 0xFF))
    raise EncodingError(f"TLV value of {n} bytes is too long")


def encode_tlv(tag: int, value: bytes) -> bytes:
    """``tag ‖ length ‖ value`` (minimal length form)."""
    return tag_bytes(tag) + _length(len(value)) + bytes(value)


def parse_tlv(data: bytes, *, max_items: int = 64) -> list[tuple[int, bytes]]:
    """Split ``data`` into ``(tag, value)`` pairs: multi-byte tags (``xF`` low bits continue),
    definite lengths up to ``82 FFFF``; anything truncated or trailing raises."""
    data = bytes(data)
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        if len(out) >= max_items:
            raise EncodingError("too many TLV items")
        start = i
        i += 1
        if data[start] & 0x1F == 0x1F:
            while True:
                if i >= len(data) or i - start > 3:
                    raise EncodingError("truncated or over-long TLV tag")
                i += 1
                if not data[i - 1] & 0x80:
                    break
        tag = int.from_bytes(data[start:i], "big")
        if i >= len(data):
            raise EncodingError("TLV item without a length")
        first = data[i]
        i += 1
        if first < 0x80:
            n = first
        elif first in (0x81, 0x82):
            size = first & 0x7F
            if i + size > len(data):
                raise EncodingError("truncated TLV length")
            n = int.from_bytes(data[i : i + size], "big")
            i += size
        else:
            raise EncodingError("unsupported TLV length form")
        if i + n > len(data):
            raise EncodingError("TLV value runs past the end of the data")
        out.append((tag, data[i : i + n]))
        i += n
    return out


def parse_tlv_map(data: bytes, allowed: set[int] | frozenset[int]) -> dict[int, bytes]:
    """:func:`parse_tlv` into a dict; a tag outside ``allowed`` or a repeated tag raises."""
    out: dict[int, bytes] = {}
    for tag, value in parse_tlv(data):
        if tag not in allowed or tag in out:
            raise EncodingError(f"unexpected or repeated TLV tag {tag:#x}")
        out[tag] = value
    return out


# ---------------------------------------------------------------------------- management key
def management_key_length(algorithm: PivAlgorithm) -> int:
    """Key length in bytes of a management-key algorithm (3DES or AES)."""
    try:
        return _MANAGEMENT_KEY_BYTES[algorithm]
    except KeyError:
        raise UnsupportedAlgorithm(
            f"{algorithm.name} is not a management-key algorithm (3DES or AES)"
        ) from None


def management_block(
    algorithm: PivAlgorithm, key: bytes, block: bytes, *, decrypt: bool = False
) -> bytes:
    """Encrypt (or decrypt) one block (8 bytes 3DES, 16 AES) under the management key, as
    GENERAL AUTHENTICATE's witness/challenge exchange does."""
    if len(key) != management_key_length(algorithm):
        raise EncodingError(
            f"a {algorithm.name} management key has {management_key_length(algorithm)} bytes"
        )
    size = 8 if algorithm is PivAlgorithm.TDES else 16
    if len(block) != size:
        raise EncodingError(f"a {algorithm.name} challenge block has {size} bytes")
    cipher = Cipher(
        TripleDES(key) if algorithm is PivAlgorithm.TDES else algorithms.AES(key), modes.ECB()
    )
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(block) + op.finalize()


def challenge_size(algorithm: PivAlgorithm) -> int:
    return 8 if algorithm is PivAlgorithm.TDES else 16


# ---------------------------------------------------------------------------- public keys
def encode_public_key(spki_der: bytes) -> bytes:
    """The content of the ``7F49`` template for a P-256/P-384 or RSA public key
    (``86`` uncompressed point, or ``81`` modulus ``82`` exponent)."""
    key = serialization.load_der_public_key(spki_der)
    if isinstance(key, ec.EllipticCurvePublicKey):
        point = key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return encode_tlv(0x86, point)
    if isinstance(key, _rsa.RSAPublicKey):
        nums = key.public_numbers()
        n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
        e = nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")
        return encode_tlv(0x81, n) + encode_tlv(0x82, e)
    raise UnsupportedAlgorithm("PIV keys are RSA or NIST P-256/P-384")


def decode_public_key(algorithm: PivAlgorithm, template: bytes) -> bytes:
    """SubjectPublicKeyInfo DER from the content of a ``7F49`` template."""
    try:
        fields = parse_tlv_map(template, {0x81, 0x82, 0x86})
        if algorithm in (PivAlgorithm.ECC_P256, PivAlgorithm.ECC_P384):
            curve: ec.EllipticCurve = (
                ec.SECP256R1() if algorithm is PivAlgorithm.ECC_P256 else ec.SECP384R1()
            )
            key: ec.EllipticCurvePublicKey | _rsa.RSAPublicKey = (
                ec.EllipticCurvePublicKey.from_encoded_point(curve, fields[0x86])
            )
        elif algorithm in (PivAlgorithm.RSA1024, PivAlgorithm.RSA2048):
            n = int.from_bytes(fields[0x81], "big")
            e = int.from_bytes(fields[0x82], "big")
            key = _rsa.RSAPublicNumbers(e, n).public_key()
        else:
            raise UnsupportedAlgorithm(f"{algorithm.name} is not an asymmetric PIV algorithm")
    except (KeyError, ValueError):
        raise EncodingError("the card returned a malformed public key template") from None
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
