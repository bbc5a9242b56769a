"""The software token's PIV applet: the PIV card edge (NIST SP 800-73-4) with the YubiKey
extensions that ``yubico-piv-tool`` and OpenSC use.

It sits beside the token application behind the
:class:`~ebank_auth.usbkey.emulator.applets.AppletRouter`, so OpenSC (``opensc-tool``,
``pkcs11-tool --module opensc-pkcs11.so``), ``yubico-piv-tool`` and OpenSSL through
``libengine-pkcs11-openssl`` — clients none of us wrote — drive the software token through
pcscd.  What it implements:

* ``SELECT`` (answers the application property template), ``GET DATA`` / ``PUT DATA``
  (CHUID, CCC, the certificates of slots 9A/9C/9D/9E, the discovery object, …);
* ``VERIFY`` (PIN, 3 tries; an empty VERIFY reports ``63Cx``; ``P1=FF`` logs out),
  ``CHANGE REFERENCE DATA`` (PIN or PUK), ``RESET RETRY COUNTER`` (PUK);
* ``GENERAL AUTHENTICATE``: management-key mutual (witness/challenge) or external
  authentication with 3DES or AES; signing and RSA decryption with slot keys (raw RSA-2048 on
  the padded block the host sends, ECDSA P-256 over the digest) and ECDH P-256;
* ``GENERATE ASYMMETRIC KEY PAIR`` (RSA-2048, P-256; YubiKey PIN policy ``AA``);
* YubiKey ``GET VERSION`` (``FD``), ``GET SERIAL`` (``F8``), ``GET METADATA`` (``F7``: algorithm,
  policies, origin, public key, retries and *whether the factory default is still set*),
  ``SET MANAGEMENT KEY`` (``FF``) and ``ATTEST`` (``F9``: an X.509 certificate for a slot key,
  signed by the applet's attestation key in slot F9, whose certificate — object ``5FFF01`` —
  the test manufacturer issued).

Factory defaults (public values, flagged by the conformance report while still set): PIN
``123456``, PUK ``12345678``, 3DES management key ``010203040506070801020304050607080102030405060708``,
3 tries each.  Touch policies other than "never" are refused: the applet has no touch sensor.

Security behaviour: PIN and PUK retry counters are decremented and **persisted before** the
comparison (anti-tearing) and restored only on success; malformed input gets a status word and
changes nothing; management-key responses and witnesses are compared with
:func:`hmac.compare_digest`; private keys never leave the applet.  RSA uses Python integers
(not constant-time): this is a *software* token for tests, not an HSM.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.asymmetric import rsa as _rsa

from ebank_auth.crypto import keys, x509
from ebank_auth.errors import EncodingError, StoreError, UnsupportedAlgorithm
from ebank_auth.usbkey.apdu import CHAINING_BIT, CommandApdu, StatusWord
from ebank_auth.usbkey.emulator.apdu_chain import CommandChain, PendingResponse
from ebank_auth.usbkey.emulator.factory import Manufacturer
from ebank_auth.usbkey.emulator.piv_state import KeyOrigin, PivState, PivStateFile, SlotKey
from ebank_auth.usbkey.emulator.state import PinRecord
from ebank_auth.usbkey.piv_protocol import (
    DEFAULT_MANAGEMENT_KEY,
    DEFAULT_PIN,
    DEFAULT_PUK,
    DEFAULT_TRIES,
    PIN_PROTECTED_OBJECTS,
    PIV_AID,
    KeyRef,
    MetadataTag,
    PinPolicy,
    PivAlgorithm,
    PivIns,
    PivObject,
    Slot,
    TouchPolicy,
    challenge_size,
    encode_public_key,
    encode_tlv,
    management_block,
    management_key_length,
    pad_pin,
    parse_tlv,
    parse_tlv_map,
)

__all__ = [
    "ATTESTATION_EXTENSIONS",
    "DEFAULT_PIN_POLICY",
    "PIV_VERSION",
    "PivApplet",
]

logger = logging.getLogger("ebank_auth.usbkey.emulator.piv_applet")

#: What GET VERSION reports: the YubiKey 5 firmware level whose PIV extensions this applet
#: implements (hosts such as yubico-piv-tool pick their code paths from it).
PIV_VERSION: Final = (5, 4, 3)
#: The PIN policy a slot key gets when GENERATE names none (as on a YubiKey).
DEFAULT_PIN_POLICY: Final = {
    Slot.AUTHENTICATION: PinPolicy.ONCE,
    Slot.SIGNATURE: PinPolicy.ALWAYS,
    Slot.KEY_MANAGEMENT: PinPolicy.ONCE,
    Slot.CARD_AUTHENTICATION: PinPolicy.NEVER,
}
#: The YubiKey attestation extensions (firmware version, serial, PIN/touch policy).
ATTESTATION_EXTENSIONS: Final = {
    "firmware": "1.3.6.1.4.1.41482.3.3",
    "serial": "1.3.6.1.4.1.41482.3.7",
    "policy": "1.3.6.1.4.1.41482.3.8",
}
_KEY_SLOTS: Final = frozenset(DEFAULT_PIN_POLICY)
_ASYMMETRIC: Final = frozenset({PivAlgorithm.RSA2048, PivAlgorithm.ECC_P256})
_MAX_CHAIN: Final = 8192
_MAX_OBJECT: Final = 3063  # bytes of an object's content, as on a YubiKey 5
_RESPONSE_CHUNK: Final = 256
_CLA: Final = 0x00
#: Objects a host may write with PUT DATA: the SP 800-73-4 containers, the retired-key
#: certificates (5FC10D-5FC120) and the YubiKey admin data; never discovery or attestation.
_WRITABLE: Final = frozenset(
    {
        int(t)
        for t in PivObject
        if t not in (PivObject.DISCOVERY, PivObject.YUBIKEY_ATTESTATION_CERT)
    }
    | set(range(0x5FC10D, 0x5FC121))
)


class _Refuse(Exception):
    def __init__(self, sw: int) -> None:
        super().__init__(f"{sw:04X}")
        self.sw = sw


@dataclass
class _Pending:
    """A management-key exchange in progress: the witness or challenge the card sent."""

    kind: str  # "witness" or "challenge"
    value: bytes


def _chuid() -> bytes:
    """A CHUID with a fresh GUID (FASC-N of the all-nines test agency; no issuer signature)."""
    fascn = bytes.fromhex("D4E739DA739CED39CE739D836858210842108421C84210C3EB")
    return (
        encode_tlv(0x30, fascn)
        + encode_tlv(0x34, secrets.token_bytes(16))
        + encode_tlv(0x35, b"20451231")
        + encode_tlv(0x3E, b"")
        + encode_tlv(0xFE, b"")
    )


def _ccc() -> bytes:
    """A Card Capability Container with a fresh card identifier."""
    card_id = bytes.fromhex("A0000001 16FF02".replace(" ", "")) + secrets.token_bytes(14)
    out = encode_tlv(0xF0, card_id) + encode_tlv(0xF1, b"\x21") + encode_tlv(0xF2, b"\x21")
    out += encode_tlv(0xF3, b"") + encode_tlv(0xF4, b"\x00") + encode_tlv(0xF5, b"\x10")
    for tag in (0xF6, 0xF7, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE):
        out += encode_tlv(tag, b"")
    return out


def _discovery() -> bytes:
    """The discovery object: the PIV AID and the PIN usage policy (application PIN only)."""
    return encode_tlv(0x7E, encode_tlv(0x4F, PIV_AID) + encode_tlv(0x5F2F, b"\x40\x00"))


def _property_template() -> bytes:
    """The SELECT answer (SP 800-73-4 Part 2 Table 3)."""
    advertised = (
        PivAlgorithm.TDES,
        PivAlgorithm.AES128,
        PivAlgorithm.AES192,
        PivAlgorithm.AES256,
        *sorted(_ASYMMETRIC),
    )
    algs = b"".join(encode_tlv(0x80, bytes((a,))) for a in advertised)
    body = (
        encode_tlv(0x4F, PIV_AID[5:])
        + encode_tlv(0x79, encode_tlv(0x4F, PIV_AID[:5]))
        + encode_tlv(0x50, b"ebank-auth PIV")
        + encode_tlv(0xAC, algs + encode_tlv(0x06, b"\x00"))
    )
    return encode_tlv(0x61, body)


def _pin_format_ok(ref_data: bytes) -> bool:
    """8 bytes: 6-8 characters then ``FF`` padding (no ``FF`` inside the PIN)."""
    if len(ref_data) != 8:
        return False
    body = ref_data.rstrip(b"\xff")
    return 6 <= len(body) <= 8 and b"\xff" not in body


class PivApplet:
    """The PIV applet of a software token whose state lives in ``state_dir`` (``None``: memory).

    ``manufacturer`` (the token's test manufacturer) certifies the applet's attestation key at
    personalisation; without its root key the applet has no attestation (``F9`` answers
    ``6D00``).  ``fault_hook(point)`` is called after the decremented retry counter was
    persisted (``"pin-decremented"``, ``"puk-decremented"``) — tests raise there to simulate
    power loss.
    """

    #: the PIV AID; the router selects this applet by it (partial ``A000000308`` too)
    aid: Final[bytes] = PIV_AID

    def __init__(
        self,
        state_dir: Path | None = None,
        manufacturer: Manufacturer | None = None,
        *,
        fault_hook: Callable[[str], None] | None = None,
        version: tuple[int, int, int] = PIV_VERSION,
    ) -> None:
        self.state_dir = None if state_dir is None else Path(state_dir)
        self.fault_hook = fault_hook
        self.version = version
        self._file = PivStateFile(self.state_dir)
        with self._file.locked():
            if self._file.exists():
                self._state = self._file.load()
            else:
                self._state = self._personalise(manufacturer)
                self._file.save(self._state)
        self._private: dict[bytes, object] = {}
        self._reset_volatile()

    # ------------------------------------------------------------------ factory
    @staticmethod
    def _personalise(manufacturer: Manufacturer | None) -> PivState:
        state = PivState(
            serial=secrets.randbelow(90_000_000) + 10_000_000,
            pin=PinRecord.create(pad_pin(DEFAULT_PIN), DEFAULT_TRIES),
            puk=PinRecord.create(pad_pin(DEFAULT_PUK), DEFAULT_TRIES),
            management_algorithm=PivAlgorithm.TDES,
            management_key=DEFAULT_MANAGEMENT_KEY,
            objects={PivObject.CHUID: _chuid(), PivObject.CARD_CAPABILITY_CONTAINER: _ccc()},
        )
        if manufacturer is not None and manufacturer.key is not None:
            att = ec.generate_private_key(ec.SECP256R1())
            cert = manufacturer.ca.issue(
                f"CN=ebank-auth PIV Attestation,OU={state.serial},O=ebank-auth test,C=CN",
                att.public_key(),
                key_usage={x509.KeyUsage.KEY_CERT_SIGN},
                valid_days=3650,
                is_ca=True,
                path_length=0,
            )
            state.keys[Slot.ATTESTATION] = SlotKey(
                PivAlgorithm.ECC_P256,
                att.private_bytes(
                    serialization.Encoding.DER,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
                keys.public_key_to_spki(att.public_key()),
                PinPolicy.NEVER,
                TouchPolicy.NEVER,
            )
            state.objects[PivObject.YUBIKEY_ATTESTATION_CERT] = cert.to_der()
        elif manufacturer is not None:
            logger.warning("PIV applet made without a manufacturer root key: no attestation")
        return state

    # ------------------------------------------------------------------ reader side
    @property
    def serial(self) -> int:
        return self._state.serial

    @property
    def state(self) -> PivState:
        """A copy of the persistent state (tests inspect it)."""
        return self._state.copy()

    def atr(self) -> bytes:
        # the router takes the ATR from the token application; a standalone applet answers one
        return bytes.fromhex("3B8C8001") + b"ebank-PIV-SW" + b"\x00"

    def power_on(self) -> None:
        self._reset_volatile()

    def power_off(self) -> None:
        self._reset_volatile()

    def reset(self) -> None:
        self._reset_volatile()

    def deselect(self) -> None:
        """Another applet was selected: forget the verified PIN and management key."""
        self._reset_volatile()

    def _reset_volatile(self) -> None:
        self._pin_verified = False
        self._pin_fresh = False  # a VERIFY not yet used by a key with PIN policy "always"
        self._mgmt_authenticated = False
        self._pending: _Pending | None = None
        self._chain = CommandChain(_MAX_CHAIN)
        self._out = PendingResponse(_RESPONSE_CHUNK)

    def process_apdu(self, apdu: bytes) -> bytes:
        """One command APDU in, one response out; never raises for bad input."""
        try:
            with self._file.locked():
                self._state = self._file.load()  # another object may have spent a PIN try
                data, sw = self._frame(bytes(apdu))
        except (StoreError, EncodingError):
            logger.error("PIV state could not be read or written: command refused")
            data, sw = b"", int(StatusWord.MEMORY_FAILURE)
        except Exception:  # a card never crashes the reader
            logger.exception("PIV applet internal error")
            data, sw = b"", int(StatusWord.NO_PRECISE_DIAGNOSIS)
        return data + int(sw).to_bytes(2, "big")

    # ------------------------------------------------------------------ framing
    def _frame(self, raw: bytes) -> tuple[bytes, int]:
        try:
            cmd = CommandApdu.parse(raw)
        except EncodingError:
            self._chain.reset()
            return b"", StatusWord.WRONG_LENGTH
        cla = cmd.cla & ~CHAINING_BIT & 0xFF
        if cla != _CLA:
            return b"", StatusWord.CLA_NOT_SUPPORTED
        if cmd.ins == PivIns.GET_RESPONSE:
            return self._out.get_response(cmd.le)
        self._out.clear()
        header = bytes((cla, cmd.ins, cmd.p1, cmd.p2))
        body = self._chain.add(header, cmd.data, bool(cmd.cla & CHAINING_BIT))
        if isinstance(body, int):
            return b"", body
        data, sw = self._dispatch(cmd.ins, cmd.p1, cmd.p2, body)
        return self._out.answer(data, sw, cmd.le)

    def _dispatch(self, ins: int, p1: int, p2: int, data: bytes) -> tuple[bytes, int]:
        handler = _HANDLERS.get(ins)
        if handler is None:
            return b"", StatusWord.INS_NOT_SUPPORTED
        try:
            return handler(self, p1, p2, data), StatusWord.SUCCESS
        except _Refuse as refusal:
            return b"", refusal.sw
        except EncodingError:
            return b"", StatusWord.WRONG_DATA

    # ------------------------------------------------------------------ helpers
    def _save(self, new: PivState) -> None:
        self._file.save(new)
        self._state = new

    def _require_management(self) -> None:
        if not self._mgmt_authenticated:
            raise _Refuse(StatusWord.SECURITY_STATUS_NOT_SATISFIED)

    def _check_reference(self, ref: KeyRef, value: bytes) -> None:
        """Anti-tearing check of the PIN or PUK: decrement and persist, compare, restore the
        counter only on success."""
        current = self._state.pin if ref is KeyRef.PIN else self._state.puk
        if current.locked:
            raise _Refuse(StatusWord.AUTH_METHOD_BLOCKED)
        new = self._state.copy()
        rec = new.pin if ref is KeyRef.PIN else new.puk
        rec.remaining -= 1
        self._save(new)  # the try is spent before the comparison
        if self.fault_hook is not None:
            self.fault_hook("pin-decremented" if ref is KeyRef.PIN else "puk-decremented")
        if not rec.matches(value):
            if ref is KeyRef.PIN:
                self._pin_verified = False
            raise _Refuse(StatusWord.verify_failed(rec.remaining))
        restored = self._state.copy()
        (restored.pin if ref is KeyRef.PIN else restored.puk).remaining = rec.max_retries
        self._save(restored)

    def _slot(self, p2: int) -> Slot:
        try:
            slot = Slot(p2)
        except ValueError:
            raise _Refuse(StatusWord.INCORRECT_P1P2) from None
        if slot not in _KEY_SLOTS:
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        return slot

    def _private_key(self, key: SlotKey) -> object:
        cached = self._private.get(key.private_key_der)
        if cached is None:
            cached = serialization.load_der_private_key(key.private_key_der, None)
            if len(self._private) > 16:
                self._private.clear()
            self._private[key.private_key_der] = cached
        return cached

    # ------------------------------------------------------------------ commands
    def _select(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 != 0x04:
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        if not PIV_AID.startswith(data) or not data:
            raise _Refuse(StatusWord.FILE_NOT_FOUND)
        self._pending = None
        return _property_template()

    def _verify(self, p1: int, p2: int, data: bytes) -> bytes:
        if p2 != KeyRef.PIN:
            raise _Refuse(StatusWord.REFERENCED_DATA_NOT_FOUND)
        if p1 == 0xFF and not data:  # SP 800-73-4: reset the PIN's security status
            self._pin_verified = self._pin_fresh = False
            return b""
        if p1 != 0x00:
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        if not data:
            if self._state.pin.locked:
                raise _Refuse(StatusWord.AUTH_METHOD_BLOCKED)
            if self._pin_verified:
                return b""
            raise _Refuse(StatusWord.verify_failed(self._state.pin.remaining))
        if not _pin_format_ok(data):
            raise _Refuse(StatusWord.WRONG_DATA)
        self._pin_verified = self._pin_fresh = False
        self._check_reference(KeyRef.PIN, data)
        self._pin_verified = self._pin_fresh = True
        return b""

    def _change_reference(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 != 0 or p2 not in (KeyRef.PIN, KeyRef.PUK):
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        if len(data) != 16 or not _pin_format_ok(data[:8]) or not _pin_format_ok(data[8:]):
            raise _Refuse(StatusWord.WRONG_DATA)
        ref = KeyRef(p2)
        self._check_reference(ref, data[:8])
        new = self._state.copy()
        if ref is KeyRef.PIN:
            new.pin.set_pin(data[8:])
            new.pin_is_default = hmac.compare_digest(data[8:], pad_pin(DEFAULT_PIN))
            self._pin_verified = True
        else:
            new.puk.set_pin(data[8:])
            new.puk_is_default = hmac.compare_digest(data[8:], pad_pin(DEFAULT_PUK))
        self._save(new)
        return b""

    def _reset_retry_counter(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 != 0 or p2 != KeyRef.PIN:
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        if len(data) != 16 or not _pin_format_ok(data[:8]) or not _pin_format_ok(data[8:]):
            raise _Refuse(StatusWord.WRONG_DATA)
        self._check_reference(KeyRef.PUK, data[:8])
        new = self._state.copy()
        new.pin.set_pin(data[8:])
        new.pin.remaining = new.pin.max_retries
        new.pin_is_default = hmac.compare_digest(data[8:], pad_pin(DEFAULT_PIN))
        self._save(new)
        return b""

    def _general_authenticate(self, p1: int, p2: int, data: bytes) -> bytes:
        outer = parse_tlv_map(data, {0x7C})
        if 0x7C not in outer:
            raise _Refuse(StatusWord.WRONG_DATA)
        items = parse_tlv_map(outer[0x7C], {0x80, 0x81, 0x82, 0x85})
        if p2 == KeyRef.MANAGEMENT:
            return self._authenticate_management(p1, items)
        slot = self._slot(p2)
        key = self._state.keys.get(slot)
        if key is None:
            raise _Refuse(StatusWord.REFERENCED_DATA_NOT_FOUND)
        if p1 != key.algorithm:
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        if items.get(0x82) != b"" or (0x81 in items) == (0x85 in items) or 0x80 in items:
            raise _Refuse(StatusWord.WRONG_DATA)
        policy = key.pin_policy
        if policy is PinPolicy.ALWAYS:  # one use per VERIFY
            if not self._pin_fresh:
                raise _Refuse(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
            self._pin_fresh = False
        if policy is PinPolicy.ONCE and not self._pin_verified:
            raise _Refuse(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
        private = self._private_key(key)
        if 0x85 in items:
            result = self._ecdh(private, items[0x85])
        elif isinstance(private, _rsa.RSAPrivateKey):
            result = self._rsa_raw(private, items[0x81])
        elif isinstance(private, ec.EllipticCurvePrivateKey):
            digest = items[0x81]
            if not 1 <= len(digest) <= 32:
                raise _Refuse(StatusWord.WRONG_DATA)
            result = private.sign(
                digest.rjust(32, b"\x00"), ec.ECDSA(utils.Prehashed(hashes.SHA256()))
            )
        else:  # pragma: no cover - keys are made here
            raise _Refuse(StatusWord.NO_PRECISE_DIAGNOSIS)
        return encode_tlv(0x7C, encode_tlv(0x82, result))

    @staticmethod
    def _rsa_raw(private: _rsa.RSAPrivateKey, block: bytes) -> bytes:
        nums = private.private_numbers()
        n = nums.public_numbers.n
        size = (n.bit_length() + 7) // 8
        c = int.from_bytes(block, "big")
        if len(block) != size or c >= n:
            raise _Refuse(StatusWord.WRONG_DATA)
        m1 = pow(c, nums.dmp1, nums.p)
        m2 = pow(c, nums.dmq1, nums.q)
        h = (nums.iqmp * (m1 - m2)) % nums.p
        return (m2 + h * nums.q).to_bytes(size, "big")

    @staticmethod
    def _ecdh(private: object, point: bytes) -> bytes:
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(private.curve, point)
        except ValueError:
            raise _Refuse(StatusWord.WRONG_DATA) from None
        return private.exchange(ec.ECDH(), peer)

    def _authenticate_management(self, p1: int, items: dict[int, bytes]) -> bytes:
        alg = self._state.management_algorithm
        # SP 800-78-4 Table 6-2: '00' also names 3DES-ECB (OpenSC sends it)
        if p1 != alg and not (p1 == 0x00 and alg is PivAlgorithm.TDES):
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        size = challenge_size(alg)
        key = self._state.management_key
        pending, self._pending = self._pending, None
        self._mgmt_authenticated = False
        if items.keys() == {0x80} and items[0x80] == b"":  # mutual, step 1: send a witness
            witness = secrets.token_bytes(size)
            self._pending = _Pending("witness", witness)
            return encode_tlv(0x7C, encode_tlv(0x80, management_block(alg, key, witness)))
        if items.keys() == {0x80, 0x81}:  # mutual, step 2: decrypted witness + host challenge
            if (
                pending is None
                or pending.kind != "witness"
                or len(items[0x81]) != size
                or not hmac.compare_digest(items[0x80], pending.value)
            ):
                raise _Refuse(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
            self._mgmt_authenticated = True
            return encode_tlv(0x7C, encode_tlv(0x82, management_block(alg, key, items[0x81])))
        if items.keys() == {0x81} and items[0x81] == b"":  # external, step 1: a challenge
            challenge = secrets.token_bytes(size)
            self._pending = _Pending("challenge", challenge)
            return encode_tlv(0x7C, encode_tlv(0x81, challenge))
        if items.keys() == {0x82}:  # external, step 2: the encrypted challenge
            if pending is None or pending.kind != "challenge" or len(items[0x82]) != size:
                raise _Refuse(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
            expected = management_block(alg, key, pending.value)
            if not hmac.compare_digest(items[0x82], expected):
                raise _Refuse(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
            self._mgmt_authenticated = True
            return b""
        raise _Refuse(StatusWord.WRONG_DATA)

    def _generate(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 != 0:
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        slot = self._slot(p2)
        template = parse_tlv_map(data, {0xAC}).get(0xAC)
        if template is None:
            raise _Refuse(StatusWord.WRONG_DATA)
        fields = parse_tlv_map(template, {0x80, 0xAA, 0xAB})
        try:
            if any(len(v) != 1 for v in fields.values()) or 0x80 not in fields:
                raise ValueError
            alg = PivAlgorithm(fields[0x80][0])
            pin_policy = PinPolicy(fields.get(0xAA, b"\x00")[0])
            touch = TouchPolicy(fields.get(0xAB, b"\x00")[0])
        except ValueError:
            raise _Refuse(StatusWord.WRONG_DATA) from None
        if alg not in _ASYMMETRIC or touch not in (TouchPolicy.DEFAULT, TouchPolicy.NEVER):
            raise _Refuse(StatusWord.WRONG_DATA)  # no RSA-1024, no touch sensor
        self._require_management()
        if pin_policy is PinPolicy.DEFAULT:
            pin_policy = DEFAULT_PIN_POLICY[slot]
        private: _rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
            _rsa.generate_private_key(65537, 2048)
            if alg is PivAlgorithm.RSA2048
            else ec.generate_private_key(ec.SECP256R1())
        )
        spki = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        der = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        new = self._state.copy()
        new.keys[slot] = SlotKey(alg, der, spki, pin_policy, TouchPolicy.NEVER, KeyOrigin.GENERATED)
        self._save(new)
        return encode_tlv(0x7F49, encode_public_key(spki))

    @staticmethod
    def _object_tag(p1: int, p2: int, data: bytes) -> tuple[int, bytes]:
        if (p1, p2) != (0x3F, 0xFF):
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        items = parse_tlv(data, max_items=2)
        if not items or items[0][0] != 0x5C or len(items[0][1]) not in (1, 3):
            raise _Refuse(StatusWord.WRONG_DATA)
        rest = data[len(encode_tlv(0x5C, items[0][1])) :]
        return int.from_bytes(items[0][1], "big"), rest

    def _get_data(self, p1: int, p2: int, data: bytes) -> bytes:
        tag, rest = self._object_tag(p1, p2, data)
        if rest:
            raise _Refuse(StatusWord.WRONG_DATA)
        if tag == PivObject.DISCOVERY:
            return _discovery()
        content = self._state.objects.get(tag)
        if content is None:
            raise _Refuse(StatusWord.FILE_NOT_FOUND)
        if tag in PIN_PROTECTED_OBJECTS and not self._pin_verified:
            raise _Refuse(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
        return encode_tlv(0x53, content)

    def _put_data(self, p1: int, p2: int, data: bytes) -> bytes:
        tag, rest = self._object_tag(p1, p2, data)
        items = parse_tlv(rest, max_items=1)
        if len(items) != 1 or items[0][0] != 0x53:
            raise _Refuse(StatusWord.WRONG_DATA)
        content = items[0][1]
        if tag not in _WRITABLE:
            raise _Refuse(StatusWord.WRONG_DATA)
        if len(content) > _MAX_OBJECT:
            raise _Refuse(StatusWord.NOT_ENOUGH_MEMORY)
        self._require_management()
        new = self._state.copy()
        if content:
            new.objects[tag] = content
        else:
            new.objects.pop(tag, None)
        self._save(new)
        return b""

    def _get_version(self, p1: int, p2: int, data: bytes) -> bytes:
        return bytes(self.version)

    def _get_serial(self, p1: int, p2: int, data: bytes) -> bytes:
        return self._state.serial.to_bytes(4, "big")

    def _get_metadata(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 != 0:
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        st = self._state
        if p2 in (KeyRef.PIN, KeyRef.PUK):
            rec, default = (
                (st.pin, st.pin_is_default) if p2 == KeyRef.PIN else (st.puk, st.puk_is_default)
            )
            return (
                encode_tlv(MetadataTag.ALGORITHM, b"\xff")
                + encode_tlv(MetadataTag.POLICY, b"\x00\x00")
                + encode_tlv(MetadataTag.IS_DEFAULT, bytes((default,)))
                + encode_tlv(MetadataTag.RETRIES, bytes((rec.max_retries, rec.remaining)))
            )
        if p2 == KeyRef.MANAGEMENT:
            return (
                encode_tlv(MetadataTag.ALGORITHM, bytes((st.management_algorithm,)))
                + encode_tlv(MetadataTag.POLICY, b"\x00\x01")
                + encode_tlv(MetadataTag.IS_DEFAULT, bytes((st.management_is_default,)))
            )
        try:
            slot = Slot(p2)
        except ValueError:
            raise _Refuse(StatusWord.REFERENCED_DATA_NOT_FOUND) from None
        key = st.keys.get(slot)
        if key is None:
            raise _Refuse(StatusWord.REFERENCED_DATA_NOT_FOUND)
        return (
            encode_tlv(MetadataTag.ALGORITHM, bytes((key.algorithm,)))
            + encode_tlv(MetadataTag.POLICY, bytes((key.pin_policy, key.touch_policy)))
            + encode_tlv(MetadataTag.ORIGIN, bytes((key.origin,)))
            + encode_tlv(MetadataTag.PUBLIC_KEY, encode_public_key(key.public_key_der))
        )

    def _set_management_key(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 != 0xFF or p2 not in (0xFF, 0xFE):
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        if p2 == 0xFE:  # "touch required": no touch sensor
            raise _Refuse(StatusWord.WRONG_DATA)
        if len(data) < 3 or data[1] != KeyRef.MANAGEMENT or data[2] != len(data) - 3:
            raise _Refuse(StatusWord.WRONG_DATA)
        try:
            alg = PivAlgorithm(data[0])
            if management_key_length(alg) != data[2]:
                raise ValueError
        except (ValueError, EncodingError, UnsupportedAlgorithm):
            raise _Refuse(StatusWord.WRONG_DATA) from None
        self._require_management()
        new = self._state.copy()
        new.management_algorithm = alg
        new.management_key = data[3:]
        new.management_is_default = alg is PivAlgorithm.TDES and hmac.compare_digest(
            data[3:], DEFAULT_MANAGEMENT_KEY
        )
        self._save(new)
        return b""

    def _set_pin_retries(self, p1: int, p2: int, data: bytes) -> bytes:
        """YubiKey SET PIN RETRIES: new try limits; PIN and PUK go back to their defaults."""
        if data or not 1 <= p1 <= 10 or not 1 <= p2 <= 10:
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        self._require_management()
        if not self._pin_verified:
            raise _Refuse(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
        new = self._state.copy()
        new.pin = PinRecord.create(pad_pin(DEFAULT_PIN), p1)
        new.puk = PinRecord.create(pad_pin(DEFAULT_PUK), p2)
        new.pin_is_default = new.puk_is_default = True
        self._save(new)
        self._pin_verified = False
        return b""

    def _reset_applet(self, p1: int, p2: int, data: bytes) -> bytes:
        """YubiKey RESET: only when both PIN and PUK are blocked; back to the factory state
        (keys and objects erased, defaults set), keeping the serial and attestation key."""
        if p1 or p2 or data:
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        if not (self._state.pin.locked and self._state.puk.locked):
            raise _Refuse(StatusWord.CONDITIONS_NOT_SATISFIED)
        old = self._state
        new = self._personalise(None)
        new.serial = old.serial
        for slot in (Slot.ATTESTATION,):
            if slot in old.keys:
                new.keys[slot] = old.keys[slot]
        if PivObject.YUBIKEY_ATTESTATION_CERT in old.objects:
            new.objects[PivObject.YUBIKEY_ATTESTATION_CERT] = old.objects[
                PivObject.YUBIKEY_ATTESTATION_CERT
            ]
        self._save(new)
        self._reset_volatile()
        return b""

    def _attest(self, p1: int, p2: int, data: bytes) -> bytes:
        if p2 != 0 or data:
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        slot = self._slot(p1)
        st = self._state
        att_key = st.keys.get(Slot.ATTESTATION)
        att_cert = st.objects.get(PivObject.YUBIKEY_ATTESTATION_CERT)
        if att_key is None or att_cert is None:
            raise _Refuse(StatusWord.INS_NOT_SUPPORTED)
        key = st.keys.get(slot)
        if key is None:
            raise _Refuse(StatusWord.REFERENCED_DATA_NOT_FOUND)
        if key.origin != KeyOrigin.GENERATED:  # only keys made on the card are attested
            raise _Refuse(StatusWord.CONDITIONS_NOT_SATISFIED)
        signer = self._private_key(att_key)
        assert isinstance(signer, ec.EllipticCurvePrivateKey)
        ca = x509.CertificateAuthority(x509.load_certificate(att_cert), keys.P256PrivateKey(signer))
        cert = ca.issue(
            f"CN=ebank-auth PIV Attestation {slot.label}",
            keys.load_public_key(key.public_key_der),
            key_usage=None,
            valid_days=3650,
            extra_extensions=[
                (ATTESTATION_EXTENSIONS["firmware"], bytes(self.version), False),
                (ATTESTATION_EXTENSIONS["serial"], _der_integer(st.serial), False),
                (
                    ATTESTATION_EXTENSIONS["policy"],
                    bytes((key.pin_policy, key.touch_policy)),
                    False,
                ),
            ],
        )
        return cert.to_der()


def _der_integer(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return b"\x02" + bytes((len(body),)) + body


_Handler = Callable[[PivApplet, int, int, bytes], bytes]
_HANDLERS: Final[dict[int, _Handler]] = {
    PivIns.SELECT: PivApplet._select,
    PivIns.VERIFY: PivApplet._verify,
    PivIns.CHANGE_REFERENCE_DATA: PivApplet._change_reference,
    PivIns.RESET_RETRY_COUNTER: PivApplet._reset_retry_counter,
    PivIns.GENERAL_AUTHENTICATE: PivApplet._general_authenticate,
    PivIns.GENERATE_ASYMMETRIC: PivApplet._generate,
    PivIns.GET_DATA: PivApplet._get_data,
    PivIns.PUT_DATA: PivApplet._put_data,
    PivIns.GET_VERSION: PivApplet._get_version,
    PivIns.GET_SERIAL: PivApplet._get_serial,
    PivIns.GET_METADATA: PivApplet._get_metadata,
    PivIns.SET_MANAGEMENT_KEY: PivApplet._set_management_key,
    PivIns.ATTEST: PivApplet._attest,
    PivIns.SET_PIN_RETRIES: PivApplet._set_pin_retries,
    PivIns.RESET: PivApplet._reset_applet,
}
