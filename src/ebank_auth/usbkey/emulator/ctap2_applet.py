"""The software token's CTAP2 (FIDO2) applet, reached over ISO 7816 at the FIDO AID.

A host selects it with ``SELECT A0000006472F0001`` (answer ``FIDO_2_0``) and sends CTAP2
messages in ``NFCCTAP_MSG`` APDUs (CLA 80, INS 10), as CTAP 2.1 §11.3 (NFC binding) says:
command chaining (CLA 90) for long requests, ``61xx`` + ``GET RESPONSE`` for long answers.
The applet answers synchronously (never ``9100``: the button decision is in before it answers,
which the binding allows), so ``NFCCTAP_GETRESPONSE`` (INS 11) has nothing to return.

Commands: authenticatorMakeCredential, GetAssertion, GetNextAssertion, GetInfo, ClientPIN (PIN/UV
auth protocol 2: getPINRetries, getKeyAgreement, setPIN, changePIN, getPinToken,
getPinUvAuthTokenUsingPinWithPermissions), Reset and Selection.  Keys are ES256 (P-256).

Security behaviour (what the tests check):

* **PIN tries**: 8 in all, 3 in a row per power cycle (then ``PIN_AUTH_BLOCKED`` until the
  token is powered off and on), blocked at 0 until authenticatorReset.  The retry counter is
  decremented and **persisted before** the PIN is compared and restored only on success, so a
  power loss mid-check never gives a try back.
* **User presence** is the token's button (:class:`~ebank_auth.usbkey.emulator.display.
  ConfirmationDevice`): the screen shows ``FIDO: <rp id>``; reject is ``OPERATION_DENIED``, no
  answer ``USER_ACTION_TIMEOUT``; a screen that cannot show the RP id denies.
* **Credentials**: a non-resident credential's private key travels in its credential id,
  AES-256-GCM-wrapped under a key only the token holds and bound to SHA-256(rp id): another RP
  (or a forged id) finds nothing.  Discoverable credentials keep the same id plus the user in
  ``fido.json``.  Reset draws a new wrapping key, so every old credential dies.
* **Signature counter**: one global counter, persisted before any signature that carries it
  leaves the token; it never goes back (not even on reset).
* **Attestation**: ``packed`` with a P-256 attestation key whose certificate the software
  token's test manufacturer issued (SM2-signed by its root, OU "Authenticator Attestation",
  the AAGUID extension); a token whose manufacturer key is not at hand self-attests.
* Bad input gets a CTAP status and changes nothing; the codec refuses non-canonical CBOR.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ebank_auth.crypto import x509
from ebank_auth.errors import EbankAuthError, EncodingError, StoreError
from ebank_auth.usbkey.apdu import CommandApdu, StatusWord
from ebank_auth.usbkey.emulator import cbor, ctap2_pin
from ebank_auth.usbkey.emulator.apdu_chain import CommandChain, PendingResponse
from ebank_auth.usbkey.emulator.ctap2_state import (
    MAX_SIGN_COUNT,
    PIN_RETRIES,
    FidoState,
    FidoStateFile,
    ResidentCredential,
)
from ebank_auth.usbkey.emulator.display import ConfirmationDevice, DisplayChoice
from ebank_auth.usbkey.emulator.factory import FIRMWARE_VERSION, Manufacturer, factory_dir_for
from ebank_auth.usbkey.manufacturer import MANUFACTURER_DIRNAME, ROOT_CERT_FILENAME

__all__ = [
    "AAGUID",
    "FIDO_AID",
    "ClientPinCommand",
    "Ctap2Applet",
    "CtapCommand",
    "CtapStatus",
    "Permission",
]

logger = logging.getLogger("ebank_auth.usbkey.emulator.ctap2_applet")

#: the FIDO applet's AID (CTAP 2.1 §11.3.4)
FIDO_AID: Final = bytes.fromhex("A0000006472F0001")
#: the model's AAGUID (one per authenticator model, not per token): "ebank-auth software token"
AAGUID: Final = bytes.fromhex("6562616e6b2d61757468000000000001")
_SELECT_ANSWER: Final = b"FIDO_2_0"
_INS_SELECT: Final = 0xA4
_INS_GET_RESPONSE: Final = 0xC0
_INS_NFCCTAP_MSG: Final = 0x10
_INS_NFCCTAP_GETRESPONSE: Final = 0x11
_CLA_ISO: Final = 0x00
_CLA_CTAP: Final = 0x80
_CLA_CHAINING: Final = 0x10
_MAX_MESSAGE: Final = 4096  # a request longer than this (chained) is refused
_RESPONSE_CHUNK: Final = 256
_MAX_RESIDENT: Final = 50
_MAX_ALLOW_LIST: Final = 16
_MAX_USER_ID: Final = 64
_COSE_ALG_ES256: Final = -7
_CRED_ID_VERSION: Final = 1
_CRED_ID_LENGTH: Final = 1 + 12 + 32 + 16
_WRAP_AAD: Final = b"ebank-auth ctap2 credential v1|"
_OID_FIDO_AAGUID: Final = "1.3.6.1.4.1.45724.1.1.4"
#: a pinUvAuthToken is good for this many seconds after it was issued
_TOKEN_LIFETIME: Final = 600.0
#: GetNextAssertion works this long after GetAssertion (CTAP 2.1 §6.3: 30 s)
_NEXT_ASSERTION_WINDOW: Final = 30.0


class CtapCommand(enum.IntEnum):
    """CTAP2 authenticator commands (the first byte of an NFCCTAP_MSG)."""

    MAKE_CREDENTIAL = 0x01
    GET_ASSERTION = 0x02
    GET_INFO = 0x04
    CLIENT_PIN = 0x06
    RESET = 0x07
    GET_NEXT_ASSERTION = 0x08
    SELECTION = 0x0B


class CtapStatus(enum.IntEnum):
    """CTAP2 status codes (the first byte of every answer)."""

    SUCCESS = 0x00
    INVALID_COMMAND = 0x01
    INVALID_PARAMETER = 0x02
    INVALID_LENGTH = 0x03
    CBOR_UNEXPECTED_TYPE = 0x11
    INVALID_CBOR = 0x12
    MISSING_PARAMETER = 0x14
    LIMIT_EXCEEDED = 0x15
    CREDENTIAL_EXCLUDED = 0x19
    UNSUPPORTED_ALGORITHM = 0x26
    OPERATION_DENIED = 0x27
    KEY_STORE_FULL = 0x28
    UNSUPPORTED_OPTION = 0x2B
    INVALID_OPTION = 0x2C
    NO_CREDENTIALS = 0x2E
    USER_ACTION_TIMEOUT = 0x2F
    NOT_ALLOWED = 0x30
    PIN_INVALID = 0x31
    PIN_BLOCKED = 0x32
    PIN_AUTH_INVALID = 0x33
    PIN_AUTH_BLOCKED = 0x34
    PIN_NOT_SET = 0x35
    PUAT_REQUIRED = 0x36
    PIN_POLICY_VIOLATION = 0x37
    INVALID_SUBCOMMAND = 0x3E
    UNAUTHORIZED_PERMISSION = 0x40
    OTHER = 0x7F


class ClientPinCommand(enum.IntEnum):
    """authenticatorClientPIN sub-commands."""

    GET_PIN_RETRIES = 0x01
    GET_KEY_AGREEMENT = 0x02
    SET_PIN = 0x03
    CHANGE_PIN = 0x04
    GET_PIN_TOKEN = 0x05
    GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS = 0x09


class Permission(enum.IntFlag):
    """pinUvAuthToken permissions (CTAP 2.1 §6.5.5.7); this applet grants MC and GA only."""

    MAKE_CREDENTIAL = 0x01
    GET_ASSERTION = 0x02
    CREDENTIAL_MANAGEMENT = 0x04
    BIO_ENROLLMENT = 0x08
    LARGE_BLOB_WRITE = 0x10
    AUTHENTICATOR_CONFIG = 0x20


_GRANTED: Final = Permission.MAKE_CREDENTIAL | Permission.GET_ASSERTION
_NO_PARAMETERS: Final = frozenset(
    {
        CtapCommand.GET_INFO,
        CtapCommand.RESET,
        CtapCommand.GET_NEXT_ASSERTION,
        CtapCommand.SELECTION,
    }
)
_FLAG_UP: Final = 0x01
_FLAG_UV: Final = 0x04
_FLAG_AT: Final = 0x40


class _Fail(Exception):  # internal control flow: answer with this CTAP status
    def __init__(self, status: CtapStatus) -> None:
        super().__init__(status.name)
        self.status = status


@dataclass
class _Found:
    credential_id: bytes
    key: ec.EllipticCurvePrivateKey
    resident: ResidentCredential | None


@dataclass
class _NextAssertions:
    rp_id_hash: bytes
    client_data_hash: bytes
    flags: int
    uv: bool
    remaining: list[_Found]
    deadline: float


# ---------------------------------------------------------------- parameter access
_Params = dict[cbor.CborValue, cbor.CborValue]
_T = TypeVar("_T")


def _opt(params: _Params, key: int, kind: type[_T]) -> _T | None:
    """Parameter ``key`` if present (``CBOR_UNEXPECTED_TYPE`` when it is not a ``kind``)."""
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Fail(CtapStatus.CBOR_UNEXPECTED_TYPE)
    return value


def _req(params: _Params, key: int, kind: type[_T]) -> _T:
    """Parameter ``key`` (``MISSING_PARAMETER`` when absent)."""
    value = _opt(params, key, kind)
    if value is None:
        raise _Fail(CtapStatus.MISSING_PARAMETER)
    return value


def _text(entity: _Params, key: str) -> str:
    value = entity.get(key, "")
    if not isinstance(value, str):
        raise _Fail(CtapStatus.CBOR_UNEXPECTED_TYPE)
    return value


def _descriptors(value: object) -> list[bytes]:
    """The credential ids of a list of PublicKeyCredentialDescriptors (other types skipped)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Fail(CtapStatus.CBOR_UNEXPECTED_TYPE)
    ids = []
    for desc in value:
        if not isinstance(desc, dict):
            raise _Fail(CtapStatus.CBOR_UNEXPECTED_TYPE)
        cred_id, kind = desc.get("id"), desc.get("type")
        if not isinstance(cred_id, bytes) or not isinstance(kind, str):
            raise _Fail(CtapStatus.CBOR_UNEXPECTED_TYPE)
        if kind == "public-key":
            ids.append(cred_id)
    return ids


def _options(value: object) -> dict[str, bool]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Fail(CtapStatus.CBOR_UNEXPECTED_TYPE)
    out: dict[str, bool] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, bool):
            raise _Fail(CtapStatus.CBOR_UNEXPECTED_TYPE)
        out[k] = v
    return out


def _key_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_numbers().private_value.to_bytes(32, "big")


def _firmware_number(version: str) -> int:
    parts = [int(p) for p in version.split(".")[:3] if p.isdigit()]
    parts += [0] * (3 - len(parts))
    return parts[0] << 16 | parts[1] << 8 | parts[2]


class Ctap2Applet:
    """The FIDO2 authenticator of the software token (state in ``state_dir``; ``None``: memory).

    ``display`` is the token's screen and button (user presence).  ``manufacturer`` issues the
    attestation certificate when the FIDO state is first made (default: the test manufacturer
    beside ``state_dir``, as :class:`~ebank_auth.usbkey.emulator.card.SoftToken` finds it).
    ``up_timeout`` is how long the button is waited for; ``reset_window`` how many seconds after
    power-up authenticatorReset is allowed.  ``fault_hook(point)`` is called at
    ``"pin-decremented"`` (after the decrement was persisted) so tests can simulate power loss.
    """

    aid: Final[bytes] = FIDO_AID

    def __init__(
        self,
        state_dir: Path | None,
        display: ConfirmationDevice,
        *,
        manufacturer: Manufacturer | None = None,
        up_timeout: float = 30.0,
        reset_window: float = 10.0,
        fault_hook: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state_dir = None if state_dir is None else Path(state_dir)
        self.display = display
        self.up_timeout = up_timeout
        self.reset_window = reset_window
        self.fault_hook = fault_hook
        self._clock = clock
        self._file = FidoStateFile(self.state_dir)
        self._lock = threading.RLock()
        with self._file.locked():  # two first starts on one directory personalise only once
            if self._file.exists():
                self._state = self._file.load()
            else:
                self._state = self._personalise(manufacturer)
                self._file.save(self._state)
        self._key_agreement = ctap2_pin.KeyAgreement()
        self._power_cycle()

    # ------------------------------------------------------------------ setup
    def _find_manufacturer(self) -> Manufacturer:
        if self.state_dir is None:
            return Manufacturer.in_memory()
        factory_dir = factory_dir_for(self.state_dir)
        published = self.state_dir / MANUFACTURER_DIRNAME
        if (
            not (factory_dir / ROOT_CERT_FILENAME).exists()
            and (published / ROOT_CERT_FILENAME).exists()
        ):
            return Manufacturer.load(published)
        return Manufacturer.load_or_create(factory_dir)

    def _personalise(self, manufacturer: Manufacturer | None) -> FidoState:
        maker = manufacturer or self._find_manufacturer()
        att_key = ec.generate_private_key(ec.SECP256R1())
        cert = b""
        if maker.key is not None:
            cert = maker.ca.issue(
                "CN=ebank-auth software token FIDO,OU=Authenticator Attestation,"
                "O=ebank-auth test,C=CN",
                att_key.public_key(),
                key_usage={x509.KeyUsage.DIGITAL_SIGNATURE},
                valid_days=3650,
                extra_extensions=[(_OID_FIDO_AAGUID, b"\x04\x10" + AAGUID, False)],
            ).to_der()
        else:
            logger.warning(
                "FIDO applet: the test manufacturer's key is not at hand, so this token "
                "self-attests (packed, no certificate)"
            )
        return FidoState(
            wrap_key=secrets.token_bytes(32),
            attestation_key_der=att_key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            attestation_cert_der=cert,
        )

    @property
    def state(self) -> FidoState:
        """A copy of the stored state (tests inspect it)."""
        with self._lock, self._file.locked():
            return self._file.load()

    # ------------------------------------------------------------------ power
    def _power_cycle(self) -> None:
        self._key_agreement.regenerate()
        self._pin_token = secrets.token_bytes(32)
        self._token_permissions = Permission(0)
        self._token_rp: str | None = None
        self._token_issued: float | None = None
        self._consecutive_fails = 0
        self._powered_at = self._clock()
        self._clear_session()

    def _clear_session(self) -> None:
        self._chain = CommandChain(_MAX_MESSAGE)
        self._out = PendingResponse(_RESPONSE_CHUNK)
        self._next: _NextAssertions | None = None

    def atr(self) -> bytes:
        raise NotImplementedError("the FIDO applet never gives the ATR (the token does)")

    def power_on(self) -> None:
        with self._lock:
            self._power_cycle()

    def power_off(self) -> None:
        with self._lock:
            self._power_cycle()

    def reset(self) -> None:
        """A warm reset ends the session but is no power cycle: the three-in-a-row PIN block
        and the reset window stay."""
        with self._lock:
            self._clear_session()

    def deselect(self) -> None:
        with self._lock:
            self._clear_session()

    # ------------------------------------------------------------------ APDUs
    def process_apdu(self, apdu: bytes) -> bytes:
        """One command APDU in, one response APDU out.  Never raises for bad input."""
        with self._lock:
            try:
                data, sw = self._process(bytes(apdu))
            except (StoreError, EncodingError):
                logger.error("FIDO state could not be read or written: command refused")
                self._clear_session()
                data, sw = b"", StatusWord.MEMORY_FAILURE
            except Exception:  # a card never crashes the reader
                logger.exception("FIDO applet internal error")
                self._clear_session()
                data, sw = b"", StatusWord.NO_PRECISE_DIAGNOSIS
            return data + int(sw).to_bytes(2, "big")

    def _process(self, raw: bytes) -> tuple[bytes, int]:
        try:
            cmd = CommandApdu.parse(raw)
        except EncodingError:
            self._chain.reset()
            return b"", StatusWord.WRONG_LENGTH
        cla = cmd.cla & ~_CLA_CHAINING & 0xFF
        if cla == _CLA_ISO and cmd.ins == _INS_GET_RESPONSE:
            return self._out.get_response(cmd.le)
        self._out.clear()
        if cla == _CLA_ISO and cmd.ins == _INS_SELECT:
            self._clear_session()
            if cmd.p1 != 0x04 or cmd.p2 not in (0x00, 0x0C) or cmd.cla & _CLA_CHAINING:
                return b"", StatusWord.INCORRECT_P1P2
            return (_SELECT_ANSWER if cmd.p2 == 0 else b""), StatusWord.SUCCESS
        if cla == _CLA_ISO:
            return b"", StatusWord.INS_NOT_SUPPORTED  # no CTAP1/U2F
        if cla != _CLA_CTAP:
            return b"", StatusWord.CLA_NOT_SUPPORTED
        if cmd.ins == _INS_NFCCTAP_GETRESPONSE:
            return b"", StatusWord.CONDITIONS_NOT_SATISFIED  # never answered 9100
        if cmd.ins != _INS_NFCCTAP_MSG:
            return b"", StatusWord.INS_NOT_SUPPORTED
        if cmd.p1 not in (0x00, 0x80) or cmd.p2 != 0:
            self._chain.reset()
            return b"", StatusWord.INCORRECT_P1P2
        body = self._chain.add(bytes((cla, cmd.ins)), cmd.data, bool(cmd.cla & _CLA_CHAINING))
        if isinstance(body, int):
            return b"", body
        return self._out.answer(self._ctap(body), StatusWord.SUCCESS, cmd.le)

    # ------------------------------------------------------------------ CTAP2
    def _ctap(self, message: bytes) -> bytes:
        """One CTAP2 request (command byte + CBOR) → status byte + CBOR."""
        if not message:
            return bytes((CtapStatus.INVALID_LENGTH,))
        try:
            command = CtapCommand(message[0])
        except ValueError:
            self._next = None
            return bytes((CtapStatus.INVALID_COMMAND,))
        if command is not CtapCommand.GET_NEXT_ASSERTION:
            self._next = None
        if command in _NO_PARAMETERS and len(message) > 1:
            return bytes((CtapStatus.INVALID_LENGTH,))
        try:
            params = self._params(message[1:])
            with self._file.locked():
                # another token object or process may have spent a PIN try or moved the counter
                self._state = self._file.load()
                result = _HANDLERS[command](self, params)
        except _Fail as failure:
            return bytes((failure.status,))
        return b"\x00" + (b"" if result is None else cbor.dumps(result))

    @staticmethod
    def _params(raw: bytes) -> _Params:
        if not raw:
            return {}
        try:
            value = cbor.loads(raw)
        except cbor.CborError:
            raise _Fail(CtapStatus.INVALID_CBOR) from None
        if not isinstance(value, dict):
            raise _Fail(CtapStatus.CBOR_UNEXPECTED_TYPE)
        return value

    def _save(self, new: FidoState) -> None:
        """Persist ``new`` atomically, then make it current (never the other way round)."""
        self._file.save(new)
        self._state = new

    def _fault(self, point: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(point)

    # ------------------------------------------------------------------ user presence
    def _user_presence(self, text: str) -> None:
        """Show ``text`` and wait for the button; anything but "approve" refuses."""
        try:
            self.display.show(text)
        except EbankAuthError:
            logger.warning("FIDO applet: the screen cannot show the request; denied")
            raise _Fail(CtapStatus.OPERATION_DENIED) from None
        try:
            choice = self.display.wait_button(text, self.up_timeout)
        except Exception:  # a broken display never approves
            logger.exception("FIDO applet: the button failed; denied")
            choice = DisplayChoice.REJECT
        finally:
            self.display.clear()
        if choice is DisplayChoice.TIMEOUT:
            raise _Fail(CtapStatus.USER_ACTION_TIMEOUT)
        if choice is not DisplayChoice.APPROVE:
            raise _Fail(CtapStatus.OPERATION_DENIED)

    # ------------------------------------------------------------------ credentials
    def _wrap(self, key: ec.EllipticCurvePrivateKey, rp_id_hash: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self._state.wrap_key).encrypt(
            nonce, _key_bytes(key), _WRAP_AAD + rp_id_hash
        )
        return bytes((_CRED_ID_VERSION,)) + nonce + sealed

    def _unwrap(self, credential_id: bytes, rp_id_hash: bytes) -> ec.EllipticCurvePrivateKey | None:
        """The key in ``credential_id`` if this token made it for this RP, else ``None``."""
        if len(credential_id) != _CRED_ID_LENGTH or credential_id[0] != _CRED_ID_VERSION:
            return None
        try:
            raw = AESGCM(self._state.wrap_key).decrypt(
                credential_id[1:13], credential_id[13:], _WRAP_AAD + rp_id_hash
            )
        except InvalidTag:
            return None
        return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())

    def _next_count(self) -> FidoState:
        """A copy of the state with the signature counter moved on (refused at its end)."""
        if self._state.sign_count >= MAX_SIGN_COUNT:
            raise _Fail(CtapStatus.LIMIT_EXCEEDED)
        new = self._state.copy()
        new.sign_count += 1
        return new

    def _check_pin_auth(
        self,
        params: _Params,
        param_key: int,
        protocol_key: int,
        client_data_hash: bytes,
        permission: Permission,
        rp_id: str,
    ) -> bool:
        """``True`` when a valid pinUvAuthParam came (user verified); ``False`` when none came.

        A zero-length pinUvAuthParam is the platform asking the user to pick this token: wait for
        the button, then answer PIN_INVALID / PIN_NOT_SET (CTAP 2.1 §6.1.2 step 1)."""
        pin_auth = _opt(params, param_key, bytes)
        if pin_auth is None:
            if self._state.pin_hash is not None and permission is Permission.MAKE_CREDENTIAL:
                raise _Fail(CtapStatus.PUAT_REQUIRED)
            return False
        if not pin_auth:
            self._user_presence(f"FIDO: {rp_id}")
            raise _Fail(CtapStatus.PIN_INVALID if self._state.pin_hash else CtapStatus.PIN_NOT_SET)
        protocol = _req(params, protocol_key, int)
        if protocol != ctap2_pin.PROTOCOL_VERSION:
            raise _Fail(CtapStatus.INVALID_PARAMETER)
        issued = self._token_issued
        if (
            self._state.pin_hash is None
            or issued is None
            or self._clock() - issued > _TOKEN_LIFETIME
            or not ctap2_pin.check_auth(self._pin_token, client_data_hash, pin_auth)
            or not self._token_permissions & permission
            or (self._token_rp is not None and self._token_rp != rp_id)
        ):
            raise _Fail(CtapStatus.PIN_AUTH_INVALID)
        self._token_rp = rp_id
        return True

    # ------------------------------------------------------------------ commands
    def _get_info(self, params: _Params) -> dict[int, object]:
        return {
            0x01: ["FIDO_2_0", "FIDO_2_1"],
            0x03: AAGUID,
            0x04: {
                "rk": True,
                "up": True,
                "clientPin": self._state.pin_hash is not None,
                "pinUvAuthToken": True,
            },
            0x05: _MAX_MESSAGE,
            0x06: [ctap2_pin.PROTOCOL_VERSION],
            0x07: _MAX_ALLOW_LIST,
            0x08: _CRED_ID_LENGTH,
            0x09: ["nfc"],
            0x0A: [{"alg": _COSE_ALG_ES256, "type": "public-key"}],
            0x0D: self._state.min_pin_length,
            0x0E: _firmware_number(FIRMWARE_VERSION),
            0x14: _MAX_RESIDENT - len(self._state.credentials),
        }

    def _make_credential(self, params: _Params) -> dict[int, object]:
        client_data_hash = _req(params, 0x01, bytes)
        rp = _req(params, 0x02, dict)
        user = _req(params, 0x03, dict)
        algorithms = _req(params, 0x04, list)
        exclude = _descriptors(params.get(0x05))
        if params.get(0x06) is not None and not isinstance(params.get(0x06), dict):
            raise _Fail(CtapStatus.CBOR_UNEXPECTED_TYPE)
        options = _options(params.get(0x07))
        if params.get(0x0A) is not None:  # enterprise attestation: not offered
            raise _Fail(CtapStatus.INVALID_PARAMETER)
        rp_id = rp.get("id")
        if not isinstance(rp_id, str):
            raise _Fail(
                CtapStatus.MISSING_PARAMETER if rp_id is None else CtapStatus.CBOR_UNEXPECTED_TYPE
            )
        user_id = user.get("id")
        if not isinstance(user_id, bytes):
            raise _Fail(
                CtapStatus.MISSING_PARAMETER if user_id is None else CtapStatus.CBOR_UNEXPECTED_TYPE
            )
        if len(user_id) > _MAX_USER_ID:
            raise _Fail(CtapStatus.INVALID_LENGTH)
        es256 = False
        for entry in algorithms:
            if not isinstance(entry, dict):
                raise _Fail(CtapStatus.CBOR_UNEXPECTED_TYPE)
            alg, kind = entry.get("alg"), entry.get("type")
            if isinstance(alg, bool) or not isinstance(alg, int) or not isinstance(kind, str):
                raise _Fail(CtapStatus.CBOR_UNEXPECTED_TYPE)
            es256 = es256 or (kind == "public-key" and alg == _COSE_ALG_ES256)
        if not es256:
            raise _Fail(CtapStatus.UNSUPPORTED_ALGORITHM)
        if options.get("up") is False or options.get("uv") is True:
            raise _Fail(CtapStatus.INVALID_OPTION)  # no built-in UV; UP cannot be skipped here
        resident = options.get("rk", False)
        rp_id_hash = hashlib.sha256(rp_id.encode("utf-8")).digest()
        uv = self._check_pin_auth(
            params, 0x08, 0x09, client_data_hash, Permission.MAKE_CREDENTIAL, rp_id
        )
        for cred_id in exclude:
            if self._unwrap(cred_id, rp_id_hash) is not None:
                self._user_presence(f"FIDO: {rp_id}")
                raise _Fail(CtapStatus.CREDENTIAL_EXCLUDED)
        kept = [
            c for c in self._state.credentials if not (c.rp_id == rp_id and c.user_id == user_id)
        ]
        if resident and len(kept) >= _MAX_RESIDENT:
            raise _Fail(CtapStatus.KEY_STORE_FULL)
        self._user_presence(f"FIDO: {rp_id}")

        key = ec.generate_private_key(ec.SECP256R1())
        cred_id = self._wrap(key, rp_id_hash)
        new = self._next_count()
        if resident:
            new.credentials = [
                *kept,
                ResidentCredential(
                    cred_id,
                    rp_id,
                    user_id,
                    _text(user, "name"),
                    _text(user, "displayName"),
                    _text(rp, "name"),
                ),
            ]
        self._save(new)  # the counter (and the credential) are stored before anything is signed
        cose_key = cbor.dumps(ctap2_pin.cose_ec2_public(key.public_key(), _COSE_ALG_ES256))
        auth_data = (
            rp_id_hash
            + bytes((_FLAG_UP | _FLAG_AT | (_FLAG_UV if uv else 0),))
            + new.sign_count.to_bytes(4, "big")
            + AAGUID
            + len(cred_id).to_bytes(2, "big")
            + cred_id
            + cose_key
        )
        signed = auth_data + client_data_hash
        statement: dict[str, object] = {"alg": _COSE_ALG_ES256}
        if new.attestation_cert_der:
            att_key = serialization.load_der_private_key(new.attestation_key_der, None)
            assert isinstance(att_key, ec.EllipticCurvePrivateKey)
            statement["sig"] = att_key.sign(signed, ec.ECDSA(hashes.SHA256()))
            statement["x5c"] = [new.attestation_cert_der]
        else:
            statement["sig"] = key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return {0x01: "packed", 0x02: auth_data, 0x03: statement}

    def _get_assertion(self, params: _Params) -> dict[int, object]:
        rp_id = _req(params, 0x01, str)
        client_data_hash = _req(params, 0x02, bytes)
        allow = _descriptors(params.get(0x03))
        if params.get(0x04) is not None and not isinstance(params.get(0x04), dict):
            raise _Fail(CtapStatus.CBOR_UNEXPECTED_TYPE)
        options = _options(params.get(0x05))
        if "rk" in options or options.get("uv") is True:
            raise _Fail(CtapStatus.INVALID_OPTION)
        if len(allow) > _MAX_ALLOW_LIST:
            raise _Fail(CtapStatus.LIMIT_EXCEEDED)
        up = options.get("up", True)
        rp_id_hash = hashlib.sha256(rp_id.encode("utf-8")).digest()
        uv = self._check_pin_auth(
            params, 0x06, 0x07, client_data_hash, Permission.GET_ASSERTION, rp_id
        )
        found: list[_Found] = []
        residents = {c.credential_id: c for c in self._state.credentials if c.rp_id == rp_id}
        if allow:
            for cred_id in allow:
                key = self._unwrap(cred_id, rp_id_hash)
                if key is not None:
                    found.append(_Found(cred_id, key, residents.get(cred_id)))
                    break
        else:
            for rec in reversed(list(residents.values())):  # the newest first
                key = self._unwrap(rec.credential_id, rp_id_hash)
                if key is not None:
                    found.append(_Found(rec.credential_id, key, rec))
        if up:
            self._user_presence(f"FIDO: {rp_id}")
        if not found:
            raise _Fail(CtapStatus.NO_CREDENTIALS)
        flags = (_FLAG_UP if up else 0) | (_FLAG_UV if uv else 0)
        first, rest = found[0], found[1:]
        answer = self._assertion(first, rp_id_hash, client_data_hash, flags, uv)
        if rest:
            answer[0x05] = len(found)
            self._next = _NextAssertions(
                rp_id_hash,
                client_data_hash,
                flags,
                uv,
                rest,
                self._clock() + _NEXT_ASSERTION_WINDOW,
            )
        return answer

    def _assertion(
        self, found: _Found, rp_id_hash: bytes, client_data_hash: bytes, flags: int, uv: bool
    ) -> dict[int, object]:
        new = self._next_count()
        self._save(new)  # the counter is stored before the signature that carries it leaves
        auth_data = rp_id_hash + bytes((flags,)) + new.sign_count.to_bytes(4, "big")
        signature = found.key.sign(auth_data + client_data_hash, ec.ECDSA(hashes.SHA256()))
        answer: dict[int, object] = {
            0x01: {"id": found.credential_id, "type": "public-key"},
            0x02: auth_data,
            0x03: signature,
        }
        if found.resident is not None:
            user: dict[str, object] = {"id": found.resident.user_id}
            if uv:  # names only to a verified user (CTAP 2.1 §6.2.2)
                if found.resident.user_name:
                    user["name"] = found.resident.user_name
                if found.resident.display_name:
                    user["displayName"] = found.resident.display_name
            answer[0x04] = user
        return answer

    def _get_next_assertion(self, params: _Params) -> dict[int, object]:
        pending = self._next
        if pending is None or not pending.remaining or self._clock() > pending.deadline:
            self._next = None
            raise _Fail(CtapStatus.NOT_ALLOWED)
        found = pending.remaining.pop(0)
        return self._assertion(
            found, pending.rp_id_hash, pending.client_data_hash, pending.flags, pending.uv
        )

    def _selection(self, params: _Params) -> None:
        self._user_presence("FIDO: select this token")

    def _reset(self, params: _Params) -> None:
        if self._clock() - self._powered_at > self.reset_window:
            raise _Fail(CtapStatus.NOT_ALLOWED)
        self._user_presence("FIDO: reset, erase passkeys")
        new = self._state.copy()  # the signature counter is kept: it never goes back
        new.wrap_key = secrets.token_bytes(32)
        new.credentials = []
        new.pin_hash = None
        new.pin_retries = PIN_RETRIES
        self._save(new)
        self._pin_token = secrets.token_bytes(32)
        self._token_issued = None
        self._token_permissions = Permission(0)
        self._consecutive_fails = 0
        self._key_agreement.regenerate()

    # ------------------------------------------------------------------ client PIN
    def _client_pin(self, params: _Params) -> dict[int, object] | None:
        protocol = _opt(params, 0x01, int)
        sub = _req(params, 0x02, int)
        try:
            command = ClientPinCommand(sub)
        except ValueError:
            raise _Fail(CtapStatus.INVALID_SUBCOMMAND) from None
        if command is ClientPinCommand.GET_PIN_RETRIES:
            return {0x03: self._state.pin_retries, 0x04: self._consecutive_fails >= 3}
        if protocol is None:
            raise _Fail(CtapStatus.MISSING_PARAMETER)
        if protocol != ctap2_pin.PROTOCOL_VERSION:
            raise _Fail(CtapStatus.INVALID_PARAMETER)
        if command is ClientPinCommand.GET_KEY_AGREEMENT:
            return {0x01: self._key_agreement.public_cose()}
        peer = _req(params, 0x03, dict)
        try:
            shared = self._key_agreement.shared_secret(peer)
        except EncodingError:
            raise _Fail(CtapStatus.INVALID_PARAMETER) from None
        if command is ClientPinCommand.SET_PIN:
            self._set_pin(params, shared)
            return None
        if command is ClientPinCommand.CHANGE_PIN:
            self._change_pin(params, shared)
            return None
        if command is ClientPinCommand.GET_PIN_TOKEN:
            if params.get(0x09) is not None or params.get(0x0A) is not None:
                raise _Fail(CtapStatus.INVALID_PARAMETER)
            return self._issue_token(params, shared, _GRANTED, None)
        permissions = _req(params, 0x09, int)
        rp_id = _opt(params, 0x0A, str)
        if permissions == 0:
            raise _Fail(CtapStatus.INVALID_PARAMETER)
        if permissions & ~int(_GRANTED):
            raise _Fail(CtapStatus.UNAUTHORIZED_PERMISSION)
        return self._issue_token(params, shared, Permission(permissions), rp_id)

    def _new_pin(self, shared: ctap2_pin.SharedSecret, new_pin_enc: bytes) -> bytes:
        """LEFT(SHA-256(new PIN), 16) after the policy checks (64-byte padded, 4+ code points,
        at most 63 bytes, UTF-8)."""
        try:
            padded = shared.decrypt(new_pin_enc)
        except EncodingError:
            raise _Fail(CtapStatus.INVALID_PARAMETER) from None
        if len(padded) != 64:
            raise _Fail(CtapStatus.INVALID_PARAMETER)
        pin = padded.rstrip(b"\x00")
        try:
            text = pin.decode("utf-8")
        except UnicodeDecodeError:
            raise _Fail(CtapStatus.PIN_POLICY_VIOLATION) from None
        if len(text) < self._state.min_pin_length or len(pin) > 63:
            raise _Fail(CtapStatus.PIN_POLICY_VIOLATION)
        return hashlib.sha256(pin).digest()[:16]

    def _set_pin(self, params: _Params, shared: ctap2_pin.SharedSecret) -> None:
        pin_auth = _req(params, 0x04, bytes)
        new_pin_enc = _req(params, 0x05, bytes)
        if self._state.pin_hash is not None:
            raise _Fail(CtapStatus.NOT_ALLOWED)
        if not ctap2_pin.check_auth(shared.hmac_key, new_pin_enc, pin_auth):
            raise _Fail(CtapStatus.PIN_AUTH_INVALID)
        new = self._state.copy()
        new.pin_hash = self._new_pin(shared, new_pin_enc)
        new.pin_retries = PIN_RETRIES
        self._save(new)

    def _change_pin(self, params: _Params, shared: ctap2_pin.SharedSecret) -> None:
        pin_auth = _req(params, 0x04, bytes)
        new_pin_enc = _req(params, 0x05, bytes)
        pin_hash_enc = _req(params, 0x06, bytes)
        if self._state.pin_hash is None:
            raise _Fail(CtapStatus.PIN_NOT_SET)
        self._pin_blocked()
        if not ctap2_pin.check_auth(shared.hmac_key, new_pin_enc + pin_hash_enc, pin_auth):
            raise _Fail(CtapStatus.PIN_AUTH_INVALID)
        self._check_pin(shared, pin_hash_enc)
        new = self._state.copy()
        new.pin_hash = self._new_pin(shared, new_pin_enc)
        self._save(new)
        self._pin_token = secrets.token_bytes(32)  # tokens issued under the old PIN die
        self._token_issued = None

    def _issue_token(
        self,
        params: _Params,
        shared: ctap2_pin.SharedSecret,
        permissions: Permission,
        rp_id: str | None,
    ) -> dict[int, object]:
        pin_hash_enc = _req(params, 0x06, bytes)
        if self._state.pin_hash is None:
            raise _Fail(CtapStatus.PIN_NOT_SET)
        self._pin_blocked()
        self._check_pin(shared, pin_hash_enc)
        self._pin_token = secrets.token_bytes(32)
        self._token_permissions = permissions
        self._token_rp = rp_id
        self._token_issued = self._clock()
        return {0x02: shared.encrypt(self._pin_token)}

    def _pin_blocked(self) -> None:
        if self._state.pin_retries <= 0:
            raise _Fail(CtapStatus.PIN_BLOCKED)
        if self._consecutive_fails >= 3:
            raise _Fail(CtapStatus.PIN_AUTH_BLOCKED)

    def _check_pin(self, shared: ctap2_pin.SharedSecret, pin_hash_enc: bytes) -> None:
        """Anti-tearing PIN check: decrement + persist, compare, restore only on success."""
        if len(pin_hash_enc) != 32:  # IV + one block; malformed input spends no try
            raise _Fail(CtapStatus.INVALID_PARAMETER)
        stored = self._state.pin_hash
        assert stored is not None
        spent = self._state.copy()
        spent.pin_retries -= 1
        self._save(spent)  # the try is spent before the comparison
        self._fault("pin-decremented")
        if not hmac.compare_digest(shared.decrypt(pin_hash_enc), stored):
            self._key_agreement.regenerate()
            self._consecutive_fails += 1
            if spent.pin_retries <= 0:
                raise _Fail(CtapStatus.PIN_BLOCKED)
            if self._consecutive_fails >= 3:
                raise _Fail(CtapStatus.PIN_AUTH_BLOCKED)
            raise _Fail(CtapStatus.PIN_INVALID)
        self._consecutive_fails = 0
        restored = self._state.copy()
        restored.pin_retries = PIN_RETRIES
        self._save(restored)


_HANDLERS: dict[CtapCommand, Callable[[Ctap2Applet, _Params], object]] = {
    CtapCommand.MAKE_CREDENTIAL: Ctap2Applet._make_credential,
    CtapCommand.GET_ASSERTION: Ctap2Applet._get_assertion,
    CtapCommand.GET_INFO: Ctap2Applet._get_info,
    CtapCommand.CLIENT_PIN: Ctap2Applet._client_pin,
    CtapCommand.RESET: Ctap2Applet._reset,
    CtapCommand.GET_NEXT_ASSERTION: Ctap2Applet._get_next_assertion,
    CtapCommand.SELECTION: Ctap2Applet._selection,
}
