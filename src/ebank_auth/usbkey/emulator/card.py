"""The software token: the card side of the ebank-auth token application.

:class:`SoftToken` implements :class:`~ebank_auth.usbkey.card_interface.CardProtocol`
(``process_apdu`` bytes in, bytes out), so the same object runs in-process for
unit tests, behind a real pcscd through vpcd, and behind the HID stand-in.
The protocol is specified in ``docs/usbkey-protocol.md``.

Security behaviour (what the tests check):

* retry counters are decremented and **persisted before** a PIN is compared, and
  reset only on success; a crash between the two never gives a try back (UK-3);
* PIN, key and signing commands are accepted only inside the secure channel
  (UK-5, AU-13); a new channel forgets every verified PIN;
* private keys never leave the token: no command returns them (UK-1);
* confirm-and-sign decodes the transaction itself, refuses unknown formats,
  shows it, waits for the button and signs exactly the bytes it displayed; a
  second copy that differs is refused (UK-6, UK-7);
* malformed input gets a status word and changes nothing.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ebank_auth.crypto import rsa, sm2, sm3, x509
from ebank_auth.errors import EbankAuthError, EncodingError, PinPolicyError, StoreError
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey import tlv
from ebank_auth.usbkey.apdu import CommandApdu, StatusWord
from ebank_auth.usbkey.attestation_ext import (
    OID_KEY_STATEMENT,
    Confirmation,
    KeyOrigin,
    KeyStatement,
)
from ebank_auth.usbkey.emulator import factory
from ebank_auth.usbkey.emulator.apdu_chain import CommandChain, PendingResponse
from ebank_auth.usbkey.emulator.applets import AppletRouter
from ebank_auth.usbkey.emulator.ctap2_applet import Ctap2Applet
from ebank_auth.usbkey.emulator.display import (
    AutoReject,
    ConfirmationDevice,
    DisplayChoice,
    ReadingUser,
)
from ebank_auth.usbkey.emulator.factory import (
    FIRMWARE_VERSION,
    MANUFACTURER_NAME,
    Manufacturer,
    factory_dir_for,
)
from ebank_auth.usbkey.emulator.piv_applet import PivApplet
from ebank_auth.usbkey.emulator.state import ContainerRecord, PinRecord, StateFile, TokenState
from ebank_auth.usbkey.manufacturer import MANUFACTURER_DIRNAME, ROOT_CERT_FILENAME
from ebank_auth.usbkey.protocol import (
    AID,
    CLA_CHAINING_BIT,
    CLA_ISO,
    CLA_PROPRIETARY,
    CLA_SECURE,
    DEFAULT_ADMIN_PIN,
    DEFAULT_RETRY_LIMIT,
    DEFAULT_USER_PIN,
    INS_PLAIN_ALLOWED,
    MAX_COMMAND_DATA,
    MAX_PIN_LENGTH,
    MAX_TRANSACTION_BYTES,
    PROTOCOL_VERSION,
    Algorithm,
    AppStatus,
    ConfirmStep,
    ContainerUsage,
    DeviceCapability,
    DeviceInfo,
    GenerateMode,
    Ins,
    PinRef,
    Tag,
    TxFormat,
    check_container_name,
    check_pin_complexity,
    check_retry_limit,
)
from ebank_auth.usbkey.secure_channel import COUNTER_BYTES, SecureChannel, TokenHandshake

__all__ = ["FIRMWARE_VERSION", "MAX_CONTAINERS", "SoftToken", "demo_token", "firmware_hash"]


def firmware_hash() -> bytes:
    """SM3 over the software token's own source files (see :func:`factory.firmware_hash`)."""
    return factory.firmware_hash()


logger = logging.getLogger("ebank_auth.usbkey.emulator.card")

MAX_CONTAINERS: Final = 8
_RESPONSE_CHUNK: Final = 256
# the secure channel adds a counter and a GCM tag to the body
_MAX_WRAPPED: Final = MAX_COMMAND_DATA + COUNTER_BYTES + 16


def _atr() -> bytes:
    historical = b"EBANKKEY"
    body = bytes((0x80 | len(historical), 0x80, 0x01)) + historical  # T0, TD1 (T=0), TD2 (T=1)
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes((tck,))


class _Refuse(Exception):  # internal control flow: answer with this SW
    def __init__(self, sw: int) -> None:
        super().__init__(f"{sw:04X}")
        self.sw = sw


@dataclass
class _Pending:
    container: str
    fmt: int
    data: bytes
    text: str


class SoftToken:
    """A software USB Key: persistent state in ``state_dir`` (``None``: memory only).

    ``display`` is the token's screen and button.  Choose one: with none the token refuses
    every confirmation (and logs why) — it never approves on a customer's behalf.  The
    background emulator uses :func:`demo_token` (a simulated customer, :class:`ReadingUser`).
    ``retry_limit``/``admin_retry_limit`` and the PINs apply when a new token is
    created (1..10, UK-3).  ``fault_hook(point)`` is called at named points
    (``"pin-decremented"``) after state was persisted — tests raise there to
    simulate power loss.  ``firmware_version``/``firmware_image_hash`` override
    what the token reports (tests of the firmware allow-list).  ``manufacturer`` personalises a
    new token (default: the test manufacturer in :func:`factory_dir_for` ``(state_dir)``, made
    and its current firmware released on first use); the token never signs an allow-list.
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        display: ConfirmationDevice | None = None,
        *,
        retry_limit: int = DEFAULT_RETRY_LIMIT,
        admin_retry_limit: int = DEFAULT_RETRY_LIMIT,
        user_pin: str = DEFAULT_USER_PIN,
        admin_pin: str = DEFAULT_ADMIN_PIN,
        serial: str | None = None,
        label: str = "ebank-auth software token",
        confirm_timeout: float = 60.0,
        fault_hook: Callable[[str], None] | None = None,
        firmware_version: str = FIRMWARE_VERSION,
        firmware_image_hash: bytes | None = None,
        manufacturer: Manufacturer | None = None,
    ) -> None:
        check_retry_limit(retry_limit)
        check_retry_limit(admin_retry_limit)
        self.state_dir = None if state_dir is None else Path(state_dir)
        if display is None:
            logger.warning(
                "software token without a display: no display was chosen, so every "
                "transaction will be refused; pass display=ReadingUser(), CallbackDisplay(...) "
                "or TerminalDisplay(...)"
            )
            display = AutoReject()
        self.display = display
        self.confirm_timeout = confirm_timeout
        self.fault_hook = fault_hook
        self._file = StateFile(self.state_dir)
        existing = self._file.exists()
        if existing:  # an unreadable or outdated state is refused before anything is made
            with self._file.locked():
                self._file.load()
        if manufacturer is not None:
            self.manufacturer = manufacturer
        elif self.state_dir is None:
            self.manufacturer = Manufacturer.in_memory()
        else:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.manufacturer = self._find_manufacturer(self.state_dir, existing)
        if self.state_dir is not None and self.manufacturer.directory != (
            self.state_dir / MANUFACTURER_DIRNAME
        ):  # the maker's public files, for hosts (never its key)
            self.manufacturer.publish_to(self.state_dir)
        self.firmware_version = firmware_version
        # the token only *measures* its firmware; the manufacturer's release step lists it
        self.firmware_hash = firmware_image_hash or firmware_hash()
        with self._file.locked():  # two first starts on one directory personalise only once
            if self._file.exists():
                self._state = self._file.load()
            else:
                self._state = self._personalise(
                    serial, label, retry_limit, admin_retry_limit, user_pin, admin_pin
                )
                self._file.save(self._state)
            if not self._state.attestation_key_pem:  # made before per-key attestation
                upgraded = self._state.copy()
                self._provision_attestation_key(upgraded)
                self._file.save(upgraded)
                self._state = upgraded
        self._device_key = sm2.load_pem_private_key(self._state.device_key_pem)
        self._info = DeviceInfo(
            serial=self._state.serial,
            label=self._state.label,
            manufacturer=MANUFACTURER_NAME,
            firmware_version=self.firmware_version,
            firmware_hash=self.firmware_hash,
            capabilities=DeviceCapability.SM2
            | DeviceCapability.RSA2048
            | DeviceCapability.DISPLAY
            | DeviceCapability.BUTTON
            | DeviceCapability.SECURE_CHANNEL
            | DeviceCapability.CONFIRM_AND_SIGN
            | DeviceCapability.ATTESTATION,
            protocol_version=PROTOCOL_VERSION,
        )
        self._info_bytes = self._info.encode()
        # parsed private keys by (container, PEM): parsing (RSA above all) costs milliseconds
        self._keys: dict[tuple[str, bytes], object] = {}
        self._cancel_event: threading.Event | None = None  # set while a HID request runs
        self._abandoned = False
        self._reset_volatile()

    # ------------------------------------------------------------------ setup
    @staticmethod
    def _find_manufacturer(state_dir: Path, existing: bool) -> Manufacturer:
        """The factory directory beside the state; a token whose factory is elsewhere (or gone)
        keeps the public copy it was published with (it only needs the maker at personalisation)."""
        factory_dir = factory_dir_for(state_dir)
        published = state_dir / MANUFACTURER_DIRNAME
        if (
            existing
            and not (factory_dir / ROOT_CERT_FILENAME).exists()
            and (published / ROOT_CERT_FILENAME).exists()
        ):
            return Manufacturer.load(published)
        return Manufacturer.load_or_create(factory_dir)

    def _personalise(
        self,
        serial: str | None,
        label: str,
        retry_limit: int,
        admin_retry_limit: int,
        user_pin: str,
        admin_pin: str,
    ) -> TokenState:
        serial = serial or "EBK" + secrets.token_hex(6).upper()
        device_key = sm2.generate_private_key()
        cert = self.manufacturer.issue_device_certificate(serial, device_key.public_key())
        state = TokenState(
            serial=serial,
            label=label,
            device_key_pem=device_key.to_pem(),
            device_cert_der=cert,
            user_pin=PinRecord.create(user_pin.encode("ascii"), retry_limit),
            admin_pin=PinRecord.create(admin_pin.encode("ascii"), admin_retry_limit),
        )
        self._provision_attestation_key(state)
        return state

    def _provision_attestation_key(self, state: TokenState) -> None:
        """The factory step for per-key attestation: a key of its own (never the device /
        secure-channel key), certified by the manufacturer as a key-attestation CA."""
        key = sm2.generate_private_key()
        state.attestation_key_pem = key.to_pem()
        state.attestation_cert_der = self.manufacturer.issue_attestation_ca(
            state.serial, key.public_key()
        )

    @property
    def serial(self) -> str:
        return self._state.serial

    @property
    def state(self) -> TokenState:
        """A copy of the current persistent state (tests inspect it)."""
        return self._state.copy()

    @property
    def device_info(self) -> DeviceInfo:
        return self._info

    # ------------------------------------------------------------------ CardProtocol
    def atr(self) -> bytes:
        return _atr()

    #: the token application's AID (an :class:`~ebank_auth.usbkey.emulator.applets.AppletRouter`
    #: routes ``SELECT`` by this name)
    aid: Final[bytes] = AID

    def deselect(self) -> None:
        """Another applet was selected: end the session (PINs, channel, pending confirmation)."""
        self._reset_volatile()

    def power_on(self) -> None:
        self._reset_volatile()

    def power_off(self) -> None:
        self._reset_volatile()

    def reset(self) -> None:
        self._reset_volatile()

    def _reset_volatile(self) -> None:
        self._selected = False
        self._chain = CommandChain(_MAX_WRAPPED)
        self._out = PendingResponse(_RESPONSE_CHUNK)
        self._handshake: TokenHandshake | None = None
        channel = getattr(self, "_channel", None)
        if channel is not None:
            channel.close()
        self._channel: SecureChannel | None = None
        self._user_verified = False
        self._admin_verified = False
        self._pending: _Pending | None = None

    def _end_session(self) -> None:
        """Forget the channel and every verified PIN (new channel, SM failure)."""
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self._handshake = None
        self._user_verified = False
        self._admin_verified = False
        self._pending = None

    def process_apdu(self, apdu: bytes) -> bytes:
        """One command APDU in, one response APDU out.  Never raises for bad input."""
        try:
            with self._file.locked():
                # another token object (or process) on this state may have spent a PIN try or
                # changed a key since our last command: work on what is stored, never a stale copy
                self._state = self._file.load()
                data, sw = self._process(bytes(apdu))
        except (StoreError, EncodingError):
            logger.error("token state could not be read or written: command refused")
            data, sw = b"", StatusWord.MEMORY_FAILURE
        except Exception:  # a card never crashes the reader: answer 6F00
            logger.exception("software token internal error")
            data, sw = b"", StatusWord.NO_PRECISE_DIAGNOSIS
        return data + int(sw).to_bytes(2, "big")

    def process_apdu_cancellable(self, apdu: bytes, cancelled: threading.Event) -> bytes | None:
        """:meth:`process_apdu` honouring HID CANCEL
        (:class:`~ebank_auth.usbkey.card_interface.CancellableCard`).

        Returns ``None`` when the command was abandoned before it had any effect: cancelled
        before it started, or while a confirmation waited for the button (then nothing is
        signed and the pending confirmation is dropped).  Any other command runs to its end and
        its real response is returned, even if ``cancelled`` was set meanwhile."""
        if cancelled.is_set():
            return None
        self._abandoned = False
        self._cancel_event = cancelled
        try:
            out = self.process_apdu(apdu)
        finally:
            self._cancel_event = None
        if self._abandoned:
            self._abandoned = False
            return None
        return out

    def _wait_button(self, text: str) -> DisplayChoice:
        """The customer's decision; under a HID request, stop waiting when the host cancels
        (the decision is then TIMEOUT and the command is reported as abandoned)."""
        cancel = self._cancel_event
        if cancel is None:
            return self.display.wait_button(text, self.confirm_timeout)
        decided: list[DisplayChoice] = []

        def wait() -> None:
            decided.append(self.display.wait_button(text, self.confirm_timeout))

        waiter = threading.Thread(target=wait, name="token-button", daemon=True)
        waiter.start()
        while waiter.is_alive():
            if cancel.wait(0.02):
                self._abandoned = True
                return DisplayChoice.TIMEOUT  # never approve once the host cancelled
            waiter.join(0.0)
        if cancel.is_set():
            self._abandoned = True
            return DisplayChoice.TIMEOUT
        return decided[0] if decided else DisplayChoice.REJECT  # a broken display never approves

    # ------------------------------------------------------------------ framing
    def _process(self, raw: bytes) -> tuple[bytes, int]:
        try:
            cmd = CommandApdu.parse(raw)
        except EncodingError:
            self._chain.reset()
            return b"", StatusWord.WRONG_LENGTH
        if cmd.ins == Ins.GET_RESPONSE and cmd.cla & ~CLA_CHAINING_BIT & 0xFF in (
            CLA_ISO,
            CLA_PROPRIETARY,
            CLA_SECURE,
        ):
            return self._out.get_response(cmd.le)
        self._out.clear()
        header = bytes((cmd.cla & ~CLA_CHAINING_BIT & 0xFF, cmd.ins, cmd.p1, cmd.p2))
        if header[0] == CLA_ISO and cmd.ins == Ins.SELECT and not cmd.cla & CLA_CHAINING_BIT:
            # SELECT opens a new session (the next client over pcscd): a chain another client
            # left unfinished is dropped, never run and never answered with 6883
            self._chain.reset()
        body = self._chain.add(header, cmd.data, bool(cmd.cla & CLA_CHAINING_BIT))
        if isinstance(body, int):
            return b"", body
        data, sw = self._dispatch_outer(header, body)
        return self._out.answer(data, sw, cmd.le)

    def _dispatch_outer(self, header: bytes, body: bytes) -> tuple[bytes, int]:
        cla, ins, p1, p2 = header
        if cla == CLA_ISO:
            if ins == Ins.SELECT:
                return self._select(p1, p2, body)
            return b"", StatusWord.INS_NOT_SUPPORTED
        if cla not in (CLA_PROPRIETARY, CLA_SECURE):
            return b"", StatusWord.CLA_NOT_SUPPORTED
        if not self._selected:
            return b"", StatusWord.CONDITIONS_NOT_SATISFIED
        try:
            known = Ins(ins)
        except ValueError:
            known = None
        if cla == CLA_PROPRIETARY:
            if known is None:
                return b"", StatusWord.INS_NOT_SUPPORTED
            if known not in INS_PLAIN_ALLOWED:
                return b"", StatusWord.SM_DATA_OBJECTS_MISSING
            return self._run(known, p1, p2, body)
        # CLA 84: secure messaging
        if self._channel is None:
            return b"", StatusWord.SM_DATA_OBJECTS_INCORRECT
        try:
            plain, ctr = self._channel.unwrap_command(header, body)
        except EbankAuthError:
            self._end_session()
            return b"", StatusWord.SM_DATA_OBJECTS_INCORRECT
        if known is None:
            data, sw = b"", int(StatusWord.INS_NOT_SUPPORTED)
        elif known in (Ins.OPEN_SECURE_CHANNEL, Ins.ESTABLISH_KEYS, Ins.SELECT):
            data, sw = b"", int(StatusWord.CONDITIONS_NOT_SATISFIED)
        else:
            data, sw = self._run(known, p1, p2, plain)
        channel = self._channel
        if channel is None or not channel.open:
            return b"", StatusWord.SM_DATA_OBJECTS_INCORRECT
        return channel.wrap_response(header, data, sw, ctr), StatusWord.SUCCESS

    def _run(self, ins: Ins, p1: int, p2: int, data: bytes) -> tuple[bytes, int]:
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
    def _save(self, new: TokenState) -> None:
        """Persist ``new`` atomically, then make it current (never the other way round)."""
        self._file.save(new)
        self._state = new

    def _fault(self, point: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(point)

    @staticmethod
    def _p1p2(p1: int, p2: int, allowed_p2: tuple[int, ...] = (0,)) -> None:
        if p1 != 0 or p2 not in allowed_p2:
            raise _Refuse(StatusWord.INCORRECT_P1P2)

    def _require_user(self) -> None:
        if self._state.user_pin.locked:
            raise _Refuse(StatusWord.AUTH_METHOD_BLOCKED)
        if not self._user_verified:
            raise _Refuse(StatusWord.SECURITY_STATUS_NOT_SATISFIED)

    def _container(self, name_bytes: bytes) -> tuple[str, ContainerRecord]:
        name = check_container_name(name_bytes)
        rec = self._state.containers.get(name)
        if rec is None:
            raise _Refuse(StatusWord.REFERENCED_DATA_NOT_FOUND)
        return name, rec

    def _check_pin(self, ref: PinRef, pin: bytes) -> None:
        """Anti-tearing PIN check: decrement + persist, compare, reset only on success."""
        rec = self._state.user_pin if ref is PinRef.USER else self._state.admin_pin
        if rec.locked:
            raise _Refuse(StatusWord.AUTH_METHOD_BLOCKED)
        new = self._state.copy()
        new_rec = new.user_pin if ref is PinRef.USER else new.admin_pin
        new_rec.remaining -= 1
        self._save(new)  # the try is spent before the comparison
        self._fault("pin-decremented")
        if not 1 <= len(pin) <= MAX_PIN_LENGTH or not new_rec.matches(pin):
            if ref is PinRef.USER:
                self._user_verified = False
            else:
                self._admin_verified = False
            raise _Refuse(StatusWord.verify_failed(new_rec.remaining))
        reset = self._state.copy()
        (reset.user_pin if ref is PinRef.USER else reset.admin_pin).remaining = new_rec.max_retries
        self._save(reset)

    def _sm2_key(self, name: str, rec: ContainerRecord) -> sm2.SM2PrivateKey:
        cached = self._keys.get((name, rec.private_key_pem))
        if not isinstance(cached, sm2.SM2PrivateKey):
            cached = sm2.load_pem_private_key(rec.private_key_pem)
            self._keys[(name, rec.private_key_pem)] = cached
        return cached

    def _rsa_key(self, name: str, rec: ContainerRecord) -> rsa.RSAPrivateKey:
        cached = self._keys.get((name, rec.private_key_pem))
        if not isinstance(cached, rsa.RSAPrivateKey):
            cached = rsa.load_pem_private_key(rec.private_key_pem)
            self._keys[(name, rec.private_key_pem)] = cached
        return cached

    @staticmethod
    def _pin_ref(p2: int) -> PinRef:
        try:
            return PinRef(p2)
        except ValueError:
            raise _Refuse(StatusWord.INCORRECT_P1P2) from None

    @staticmethod
    def _new_pin_ok(pin: bytes) -> None:
        try:
            check_pin_complexity(pin.decode("ascii"))
        except (UnicodeDecodeError, PinPolicyError):
            raise _Refuse(AppStatus.PIN_POLICY) from None

    # ------------------------------------------------------------------ commands
    def _select(self, p1: int, p2: int, data: bytes) -> tuple[bytes, int]:
        if p1 != 0x04:
            return b"", StatusWord.INCORRECT_P1P2
        if not hmac.compare_digest(data, AID):
            self._selected = False
            self._end_session()
            return b"", StatusWord.FILE_NOT_FOUND
        self._end_session()
        self._selected = True
        fci = tlv.build(
            [
                (Tag.PROTOCOL_VERSION, bytes((PROTOCOL_VERSION,))),
                (Tag.SERIAL, self._state.serial.encode("ascii")),
            ]
        )
        return fci, StatusWord.SUCCESS

    def _get_device_info(self, p1: int, p2: int, data: bytes) -> bytes:
        self._p1p2(p1, p2)
        if data:
            raise _Refuse(StatusWord.WRONG_LENGTH)
        return self._info_bytes

    def _get_device_cert(self, p1: int, p2: int, data: bytes) -> bytes:
        self._p1p2(p1, p2)
        if data:
            raise _Refuse(StatusWord.WRONG_LENGTH)
        return self._state.device_cert_der

    def _open_secure_channel(self, p1: int, p2: int, data: bytes) -> bytes:
        self._p1p2(p1, p2)
        fields = tlv.parse_map(data, allowed=[Tag.HOST_NONCE], required=[Tag.HOST_NONCE])
        if len(fields[Tag.HOST_NONCE]) != 16:
            raise _Refuse(StatusWord.WRONG_DATA)
        self._end_session()  # a new session starts with no PIN verified
        self._handshake = TokenHandshake(self._device_key, self._info_bytes, fields[Tag.HOST_NONCE])
        hs = self._handshake
        return tlv.build(
            [
                (Tag.TOKEN_NONCE, hs.token_nonce),
                (Tag.EPHEMERAL_KEY, hs.eph_pub),
                (Tag.SIGNATURE, hs.signature),
            ]
        )

    def _establish_keys(self, p1: int, p2: int, data: bytes) -> bytes:
        self._p1p2(p1, p2)
        fields = tlv.parse_map(data, allowed=[Tag.KEY_CIPHERTEXT], required=[Tag.KEY_CIPHERTEXT])
        hs, self._handshake = self._handshake, None
        if hs is None:
            raise _Refuse(StatusWord.CONDITIONS_NOT_SATISFIED)
        try:
            channel, confirmation = hs.complete(fields[Tag.KEY_CIPHERTEXT])
        except EbankAuthError:
            raise _Refuse(StatusWord.SM_DATA_OBJECTS_INCORRECT) from None
        self._channel = channel
        return tlv.build([(Tag.KEY_CONFIRMATION, confirmation)])

    def _verify_pin(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 != 0:
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        ref = self._pin_ref(p2)
        if not data:  # ISO: empty VERIFY asks for the status without spending a try
            rec = self._state.user_pin if ref is PinRef.USER else self._state.admin_pin
            if rec.locked:
                raise _Refuse(StatusWord.AUTH_METHOD_BLOCKED)
            verified = self._user_verified if ref is PinRef.USER else self._admin_verified
            if verified:
                return b""
            raise _Refuse(StatusWord.verify_failed(rec.remaining))
        if len(data) > MAX_PIN_LENGTH:
            raise _Refuse(StatusWord.WRONG_LENGTH)
        self._check_pin(ref, data)
        if ref is PinRef.USER:
            self._user_verified = True
        else:
            self._admin_verified = True
        return b""

    def _change_pin(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 != 0:
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        ref = self._pin_ref(p2)
        fields = tlv.parse_map(
            data, allowed=[Tag.PIN, Tag.NEW_PIN], required=[Tag.PIN, Tag.NEW_PIN], max_value=64
        )
        old, new_pin = fields[Tag.PIN], fields[Tag.NEW_PIN]
        self._check_pin(ref, old)
        self._new_pin_ok(new_pin)
        if hmac.compare_digest(old, new_pin):
            raise _Refuse(AppStatus.PIN_POLICY)
        new = self._state.copy()
        (new.user_pin if ref is PinRef.USER else new.admin_pin).set_pin(new_pin)
        self._save(new)
        if ref is PinRef.USER:
            self._user_verified = True
        else:
            self._admin_verified = True
        return b""

    def _unblock_pin(self, p1: int, p2: int, data: bytes) -> bytes:
        self._p1p2(p1, p2, (PinRef.USER,))
        fields = tlv.parse_map(
            data,
            allowed=[Tag.ADMIN_PIN, Tag.NEW_PIN],
            required=[Tag.ADMIN_PIN, Tag.NEW_PIN],
            max_value=64,
        )
        self._check_pin(PinRef.ADMIN, fields[Tag.ADMIN_PIN])
        self._admin_verified = True
        self._new_pin_ok(fields[Tag.NEW_PIN])
        new = self._state.copy()
        new.user_pin.set_pin(fields[Tag.NEW_PIN])
        new.user_pin.remaining = new.user_pin.max_retries
        self._save(new)
        self._user_verified = False
        return b""

    def _pin_info(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 != 0 or data:
            raise _Refuse(StatusWord.INCORRECT_P1P2 if p1 else StatusWord.WRONG_LENGTH)
        ref = self._pin_ref(p2)
        rec = self._state.user_pin if ref is PinRef.USER else self._state.admin_pin
        return tlv.build(
            [(Tag.MAX_RETRIES, bytes((rec.max_retries,))), (Tag.REMAINING, bytes((rec.remaining,)))]
        )

    def _set_retry_limit(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 != 0:
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        ref = self._pin_ref(p2)
        fields = tlv.parse_map(data, allowed=[Tag.MAX_RETRIES], required=[Tag.MAX_RETRIES])
        value = fields[Tag.MAX_RETRIES]
        if len(value) != 1:
            raise _Refuse(StatusWord.WRONG_DATA)
        try:
            limit = check_retry_limit(value[0])
        except PinPolicyError:
            raise _Refuse(StatusWord.WRONG_DATA) from None
        if self._state.admin_pin.locked:
            raise _Refuse(StatusWord.AUTH_METHOD_BLOCKED)
        if not self._admin_verified:
            raise _Refuse(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
        new = self._state.copy()
        rec = new.user_pin if ref is PinRef.USER else new.admin_pin
        rec.max_retries = limit
        rec.remaining = min(rec.remaining, limit) if rec.remaining else 0
        self._save(new)
        return b""

    def _logout(self, p1: int, p2: int, data: bytes) -> bytes:
        self._p1p2(p1, p2)
        self._user_verified = False
        self._admin_verified = False
        self._pending = None
        return b""

    def _generate_key(self, p1: int, p2: int, data: bytes) -> bytes:
        try:
            mode = GenerateMode(p1)
        except ValueError:
            raise _Refuse(StatusWord.INCORRECT_P1P2) from None
        self._p1p2(0, p2)
        fields = tlv.parse_map(
            data,
            allowed=[Tag.CONTAINER, Tag.ALGORITHM, Tag.USAGE],
            required=[Tag.CONTAINER, Tag.ALGORITHM],
        )
        name = check_container_name(fields[Tag.CONTAINER])
        try:
            if len(fields[Tag.ALGORITHM]) != 1 or len(fields.get(Tag.USAGE, b"\x01")) != 1:
                raise ValueError
            alg = Algorithm(fields[Tag.ALGORITHM][0])
            if alg not in (Algorithm.SM2, Algorithm.RSA2048):  # P-256 is for PIV/PKCS#11
                raise ValueError
            usage = ContainerUsage(fields.get(Tag.USAGE, b"\x01")[0])
        except ValueError:
            raise _Refuse(StatusWord.FUNCTION_NOT_SUPPORTED) from None
        self._require_user()
        if name in self._state.containers:
            # replacing drops the key (and its certificate) and may change its usage: never
            # silently, and never with the user PIN alone
            if mode is not GenerateMode.REPLACE:
                raise _Refuse(StatusWord.DATA_ALREADY_EXISTS)
            if self._state.admin_pin.locked:
                raise _Refuse(StatusWord.AUTH_METHOD_BLOCKED)
            if not self._admin_verified:
                raise _Refuse(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
        elif len(self._state.containers) >= MAX_CONTAINERS:
            raise _Refuse(StatusWord.NOT_ENOUGH_MEMORY)
        if alg is Algorithm.SM2:
            sm2_key = sm2.generate_private_key()
            pem, pub = sm2_key.to_pem(), sm2_key.public_key().to_der()
        else:
            rsa_key = rsa.generate_private_key(bits=2048)
            pem, pub = rsa_key.to_pem(), rsa_key.public_key().to_der()
        new = self._state.copy()
        new.containers[name] = ContainerRecord(alg, usage, pem, pub, None)
        self._save(new)
        if self._pending is not None and self._pending.container == name:
            self._pending = None
        return tlv.build([(Tag.PUBLIC_KEY, pub)])

    def _get_public_key(self, p1: int, p2: int, data: bytes) -> bytes:
        self._p1p2(p1, p2)
        fields = tlv.parse_map(data, allowed=[Tag.CONTAINER], required=[Tag.CONTAINER])
        _, rec = self._container(fields[Tag.CONTAINER])
        return tlv.build(
            [
                (Tag.ALGORITHM, bytes((rec.algorithm,))),
                (Tag.USAGE, bytes((rec.usage,))),
                (Tag.PUBLIC_KEY, rec.public_key_der),
            ]
        )

    def _import_cert(self, p1: int, p2: int, data: bytes) -> bytes:
        self._p1p2(p1, p2)
        fields = tlv.parse_map(
            data,
            allowed=[Tag.CONTAINER, Tag.CERTIFICATE],
            required=[Tag.CONTAINER, Tag.CERTIFICATE],
        )
        name, rec = self._container(fields[Tag.CONTAINER])
        try:
            cert = x509.load_certificate(fields[Tag.CERTIFICATE])
        except EbankAuthError:
            raise _Refuse(StatusWord.WRONG_DATA) from None
        if not hmac.compare_digest(cert.spki_der, rec.public_key_der):
            raise _Refuse(StatusWord.WRONG_DATA)  # certificate is for another key
        self._require_user()
        new = self._state.copy()
        new.containers[name].certificate_der = cert.to_der()
        self._save(new)
        return b""

    def _get_cert(self, p1: int, p2: int, data: bytes) -> bytes:
        self._p1p2(p1, p2)
        fields = tlv.parse_map(data, allowed=[Tag.CONTAINER], required=[Tag.CONTAINER])
        _, rec = self._container(fields[Tag.CONTAINER])
        if rec.certificate_der is None:
            raise _Refuse(StatusWord.REFERENCED_DATA_NOT_FOUND)
        return tlv.build([(Tag.CERTIFICATE, rec.certificate_der)])

    def _list_containers(self, p1: int, p2: int, data: bytes) -> bytes:
        self._p1p2(p1, p2)
        if data:
            raise _Refuse(StatusWord.WRONG_LENGTH)
        items = []
        for name, rec in sorted(self._state.containers.items()):
            entry = tlv.build(
                [
                    (Tag.CONTAINER, name.encode("ascii")),
                    (Tag.ALGORITHM, bytes((rec.algorithm,))),
                    (Tag.USAGE, bytes((rec.usage,))),
                    (Tag.CERTIFICATE, b"\x01" if rec.certificate_der else b"\x00"),
                ]
            )
            items.append((int(Tag.CONTAINER_ENTRY), entry))
        return tlv.build(items)

    def _attest_key(self, p1: int, p2: int, data: bytes) -> bytes:
        """ATTEST KEY: an X.509 certificate for the container's public key, signed by the
        attestation key, stating origin, exportability, usage and enforced confirmation.
        Public information: no PIN needed (the secure channel still is)."""
        self._p1p2(p1, p2)
        fields = tlv.parse_map(data, allowed=[Tag.CONTAINER], required=[Tag.CONTAINER])
        name, rec = self._container(fields[Tag.CONTAINER])
        confirm = (
            Confirmation.DISPLAY_AND_BUTTON
            if rec.usage is ContainerUsage.TRANSACTION
            and DeviceCapability.DISPLAY in self._info.capabilities
            and DeviceCapability.BUTTON in self._info.capabilities
            else Confirmation.NONE
        )
        statement = KeyStatement(
            token_serial=self._state.serial,
            container=name,
            algorithm=rec.algorithm,
            usage=rec.usage,
            origin=KeyOrigin.GENERATED_ON_TOKEN,  # the token has no key-import instruction
            exportable=False,  # no instruction returns a private key (UK-1)
            confirmation=confirm,
            firmware_version=self.firmware_version,
            firmware_hash=self.firmware_hash,
        )
        ca_cert = x509.load_certificate(self._state.attestation_cert_der)
        ca = x509.CertificateAuthority(ca_cert, self._attestation_key())
        public_key = (
            sm2.load_der_public_key(rec.public_key_der)
            if rec.algorithm is Algorithm.SM2
            else rsa.load_der_public_key(rec.public_key_der)
        )
        cert = ca.issue(
            f"CN=key {name} of {self._state.serial},OU=ebank-auth attested key",
            public_key,
            key_usage={x509.KeyUsage.DIGITAL_SIGNATURE},
            not_after=ca_cert.not_after,
            extra_extensions=[(OID_KEY_STATEMENT, statement.encode(), False)],
        )
        return tlv.build([(Tag.CERTIFICATE, cert.to_der()), (Tag.ATTESTATION_CA, ca_cert.to_der())])

    def _attestation_key(self) -> sm2.SM2PrivateKey:
        pem = self._state.attestation_key_pem
        cached = self._keys.get(("", pem))  # "" is never a container name
        if not isinstance(cached, sm2.SM2PrivateKey):
            cached = sm2.load_pem_private_key(pem)
            self._keys[("", pem)] = cached
        return cached

    def _get_random(self, p1: int, p2: int, data: bytes) -> bytes:
        self._p1p2(p1, p2)
        fields = tlv.parse_map(data, allowed=[Tag.LENGTH], required=[Tag.LENGTH])
        value = fields[Tag.LENGTH]
        if len(value) != 1 or not 1 <= value[0] <= 255:
            raise _Refuse(StatusWord.WRONG_DATA)
        return secrets.token_bytes(value[0])

    def _sign_digest(self, p1: int, p2: int, data: bytes) -> bytes:
        self._p1p2(p1, p2)
        fields = tlv.parse_map(
            data, allowed=[Tag.CONTAINER, Tag.DIGEST], required=[Tag.CONTAINER, Tag.DIGEST]
        )
        _, rec = self._container(fields[Tag.CONTAINER])
        digest = fields[Tag.DIGEST]
        if len(digest) != 32:
            raise _Refuse(StatusWord.WRONG_DATA)
        if rec.usage is not ContainerUsage.LOGIN:
            # a transaction key signs only what was displayed and confirmed (UK-7)
            raise _Refuse(StatusWord.CONDITIONS_NOT_SATISFIED)
        if rec.algorithm is not Algorithm.SM2:
            raise _Refuse(StatusWord.FUNCTION_NOT_SUPPORTED)
        self._require_user()
        key = self._sm2_key(fields[Tag.CONTAINER].decode("ascii"), rec)
        return tlv.build([(Tag.SIGNATURE, key.sign_digest(digest))])

    def _confirm_and_sign(self, p1: int, p2: int, data: bytes) -> bytes:
        try:
            step = ConfirmStep(p1)
        except ValueError:
            raise _Refuse(StatusWord.INCORRECT_P1P2) from None
        if step is ConfirmStep.CANCEL:
            self._p1p2(0, p2)
            self._drop_pending()
            return b""
        if p2 not in (0, 1):
            raise _Refuse(StatusWord.INCORRECT_P1P2)
        fields = tlv.parse_map(
            data,
            allowed=[Tag.CONTAINER, Tag.FORMAT, Tag.TRANSACTION],
            required=[Tag.CONTAINER, Tag.FORMAT, Tag.TRANSACTION],
        )
        name, rec = self._container(fields[Tag.CONTAINER])
        fmt_raw, tx_bytes = fields[Tag.FORMAT], fields[Tag.TRANSACTION]
        if len(fmt_raw) != 1:
            raise _Refuse(StatusWord.WRONG_DATA)
        if step is ConfirmStep.SIGN:
            return self._confirm_sign_step(name, rec, fmt_raw[0], tx_bytes)
        try:
            fmt = TxFormat(fmt_raw[0])
        except ValueError:
            raise _Refuse(
                StatusWord.FUNCTION_NOT_SUPPORTED
            ) from None  # unknown format: refuse (UK-7)
        if len(tx_bytes) > MAX_TRANSACTION_BYTES:
            raise _Refuse(StatusWord.WRONG_LENGTH)
        if rec.usage is not ContainerUsage.TRANSACTION:
            raise _Refuse(StatusWord.CONDITIONS_NOT_SATISFIED)
        tx = Transaction.decode(tx_bytes)  # EncodingError -> 6A80
        text = tx.display_text("en" if p2 == 1 else "zh")
        self._require_user()
        self._pending = _Pending(name, int(fmt), bytes(tx_bytes), text)
        self.display.show(text)
        return tlv.build(
            [(Tag.DISPLAY_TEXT, text.encode("utf-8")), (Tag.DIGEST, sm3.digest(tx_bytes))]
        )

    def _drop_pending(self) -> None:
        if self._pending is not None:
            self._pending = None
            self.display.clear()

    def _confirm_sign_step(
        self, name: str, rec: ContainerRecord, fmt: int, tx_bytes: bytes
    ) -> bytes:
        pending = self._pending
        if pending is None:
            raise _Refuse(StatusWord.CONDITIONS_NOT_SATISFIED)
        same = (
            pending.container == name
            and pending.fmt == fmt
            and hmac.compare_digest(pending.data, tx_bytes)
        )
        if not same:  # the host changed the transaction after it was displayed
            self._drop_pending()
            raise _Refuse(StatusWord.CONDITIONS_NOT_SATISFIED)
        self._require_user()
        decision = self._wait_button(pending.text)
        self._drop_pending()
        if decision is DisplayChoice.REJECT:
            raise _Refuse(AppStatus.CONFIRMATION_REJECTED)
        if decision is not DisplayChoice.APPROVE:
            raise _Refuse(AppStatus.CONFIRMATION_TIMEOUT)
        signed = pending.data  # exactly the bytes that were displayed
        if rec.algorithm is Algorithm.SM2:
            key = self._sm2_key(name, rec)
            signature = key.sign(signed, uid=sm2.DEFAULT_UID)  # e = SM3(Z ‖ M) on the token
        else:
            rkey = self._rsa_key(name, rec)
            signature = rkey.sign(signed, hash=rsa.Hash.SHA256, padding=rsa.Padding.PKCS1V15)
        return tlv.build(
            [
                (Tag.SIGNATURE, signature),
                (Tag.TRANSACTION, signed),
                (Tag.SERIAL, self._state.serial.encode("ascii")),
            ]
        )


_Handler = Callable[[SoftToken, int, int, bytes], bytes]
_HANDLERS: Final[dict[Ins, _Handler]] = {
    Ins.GET_DEVICE_INFO: SoftToken._get_device_info,
    Ins.GET_DEVICE_CERT: SoftToken._get_device_cert,
    Ins.OPEN_SECURE_CHANNEL: SoftToken._open_secure_channel,
    Ins.ESTABLISH_KEYS: SoftToken._establish_keys,
    Ins.VERIFY_PIN: SoftToken._verify_pin,
    Ins.CHANGE_PIN: SoftToken._change_pin,
    Ins.PIN_INFO: SoftToken._pin_info,
    Ins.SET_RETRY_LIMIT: SoftToken._set_retry_limit,
    Ins.UNBLOCK_PIN: SoftToken._unblock_pin,
    Ins.LOGOUT: SoftToken._logout,
    Ins.GENERATE_KEY: SoftToken._generate_key,
    Ins.GET_PUBLIC_KEY: SoftToken._get_public_key,
    Ins.IMPORT_CERT: SoftToken._import_cert,
    Ins.GET_CERT: SoftToken._get_cert,
    Ins.LIST_CONTAINERS: SoftToken._list_containers,
    Ins.ATTEST_KEY: SoftToken._attest_key,
    Ins.GET_RANDOM: SoftToken._get_random,
    Ins.SIGN_DIGEST: SoftToken._sign_digest,
    Ins.CONFIRM_AND_SIGN: SoftToken._confirm_and_sign,
}


def token_card(state_dir: Path | None, display: ConfirmationDevice) -> AppletRouter:
    """The software token as a reader sees it: every applet it carries behind one
    :class:`~ebank_auth.usbkey.emulator.applets.AppletRouter` (the token application first)."""
    tok = SoftToken(state_dir, display)
    return AppletRouter(
        [tok, PivApplet(state_dir, tok.manufacturer), Ctap2Applet(state_dir, display)]
    )


def demo_token(state_dir: Path | None) -> AppletRouter:
    """The background emulator's token: a simulated customer who approves every screen that does
    not contain ``REJECT`` (:class:`ReadingUser`), so scripts and the conformance command can
    exercise both paths.  A stand-in for a person, chosen explicitly — never a default."""
    return token_card(state_dir, ReadingUser())
