"""Host side of the ebank-auth token application: :class:`TokenSession`.

One object per connected token.  Typical use::

    from ebank_auth.usbkey.session import TokenSession
    with TokenSession.open(connection, trust) as token:   # select, attest, secure channel
        token.verify_pin("314159")
        result = token.confirm_and_sign(tx)               # token shows tx, waits for button
        public_key.verify(result.signature, result.signed_bytes)

:meth:`TokenSession.open` selects the application, reads the device information
and certificate, checks them against :class:`~ebank_auth.usbkey.attestation.TrustConfig`
(UK-9) and opens the secure channel (UK-5, AU-13) authenticated by the device
key.  Every PIN, key and signing command then travels encrypted with a counter.
Failing status words become typed errors from :mod:`ebank_auth.errors`.
"""

from __future__ import annotations

import logging

from ebank_auth.confirmation import verify_confirmation
from ebank_auth.crypto import sm2, x509
from ebank_auth.errors import (
    ApduError,
    ConfirmationRejected,
    ConfirmationTimeout,
    EbankAuthError,
    EncodingError,
    InvalidSignature,
    KeyAlreadyExists,
    PinIncorrect,
    PinLocked,
    PinPolicyError,
    SecureChannelError,
    TokenError,
    TokenNotGenuine,
    UnsupportedAlgorithm,
)
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey import tlv
from ebank_auth.usbkey.apdu import ApduConnection, CommandApdu, StatusWord, raise_for_status
from ebank_auth.usbkey.attestation import TrustConfig, verify_device_certificate
from ebank_auth.usbkey.key_attestation import KeyAttestation
from ebank_auth.usbkey.protocol import (
    AID,
    CLA_ISO,
    CLA_PROPRIETARY,
    CLA_SECURE,
    DEFAULT_CONTAINER,
    DEFAULT_LOGIN_CONTAINER,
    MAX_COMMAND_DATA,
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
    pin_bytes,
)
from ebank_auth.usbkey.secure_channel import HostHandshake, SecureChannel
from ebank_auth.usbkey.token import (
    AttestationReport,
    ContainerInfo,
    PinStatus,
    PublicKeyInfo,
    SignResult,
    Token,
    TokenPublicKey,
)
from ebank_auth.usbkey.transport.base import Connection

__all__ = ["TokenSession"]

logger = logging.getLogger("ebank_auth.usbkey.session")

_LE = 256


_INNER_ERRORS: dict[int, type[TokenError]] = {
    AppStatus.CONFIRMATION_REJECTED: ConfirmationRejected,
    AppStatus.CONFIRMATION_TIMEOUT: ConfirmationTimeout,
    AppStatus.PIN_POLICY: PinPolicyError,
}


def _raise_inner(sw: int, what: str = "") -> None:
    if sw == StatusWord.SUCCESS:
        return
    cls = _INNER_ERRORS.get(sw)
    if cls is not None:
        raise cls()
    if sw == StatusWord.REFERENCED_DATA_NOT_FOUND:
        raise ApduError(sw, f"{what or 'the referenced object'} was not found on the token")
    if sw == StatusWord.DATA_ALREADY_EXISTS:
        raise KeyAlreadyExists(
            f"{what or 'the key container'} already holds a key: the token does not replace it "
            "silently; use another container, or replace it on purpose (replace=True with the "
            "admin (SO) PIN verified; --force on the command line)"
        )
    if sw == StatusWord.CONDITIONS_NOT_SATISFIED and what:
        raise ApduError(sw, f"the token refused: {what}")
    raise_for_status(sw)


def _pin_incorrect(ref: PinRef, remaining: int) -> PinIncorrect:
    if ref is PinRef.USER:
        return PinIncorrect(remaining)
    if remaining > 0:
        return PinIncorrect(
            remaining,
            f"wrong admin PIN: {remaining} attempt(s) left; when none are left the admin PIN "
            "locks for good and the token can no longer be unblocked",
        )
    return PinIncorrect(0, _ADMIN_LOCKED)


_ADMIN_LOCKED = (
    "the admin (SO) PIN is locked after too many wrong attempts; this is final: the token can "
    "no longer be unblocked or re-configured, so ask the bank for a new token"
)


def _pin_locked(ref: PinRef) -> PinLocked:
    if ref is PinRef.ADMIN:
        return PinLocked(_ADMIN_LOCKED)
    return PinLocked(
        "the user PIN is locked after too many wrong attempts: unblock it with the admin (SO) "
        "PIN ('ebank-auth token pin unblock') or at the bank counter"
    )


class TokenSession:
    """A session with one token.  Not thread-safe: one caller at a time."""

    def __init__(self, connection: Connection, trust: TrustConfig | None = None) -> None:
        self.connection = connection
        self.trust = trust if trust is not None else TrustConfig()
        self.apdu = ApduConnection(connection)
        self._channel: SecureChannel | None = None
        self._info: DeviceInfo | None = None
        self._device_cert: bytes | None = None
        self.attestation: AttestationReport | None = None

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def open(cls, connection: Connection, trust: TrustConfig | None = None) -> TokenSession:
        """Select, attest (UK-9) and open the secure channel.  Raises TokenNotGenuine."""
        session = cls(connection, trust)
        session.select()
        session.attest()
        session.open_secure_channel()
        return session

    @property
    def description(self) -> str:
        """Where the token is (the transport's description)."""
        return self.connection.description

    @property
    def can_confirm(self) -> bool:
        """True when the token reports a display, a button and confirm-and-sign."""
        need = (
            DeviceCapability.DISPLAY | DeviceCapability.BUTTON | DeviceCapability.CONFIRM_AND_SIGN
        )
        return need in self.device_info().capabilities

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        self.apdu.close()

    def __enter__(self) -> TokenSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plain commands
    def _plain(self, ins: Ins, data: bytes = b"", p1: int = 0, p2: int = 0) -> bytes:
        cla = CLA_ISO if ins == Ins.SELECT else CLA_PROPRIETARY
        resp = self.apdu.transmit(CommandApdu(cla, ins, p1, p2, data, le=_LE))
        _raise_inner(resp.sw)
        return resp.data

    def select(self) -> None:
        """SELECT the ebank-auth application by AID."""
        resp = self.apdu.transmit(CommandApdu(CLA_ISO, Ins.SELECT, 0x04, 0x00, AID, le=_LE))
        if resp.sw in (
            StatusWord.FILE_NOT_FOUND,
            StatusWord.INS_NOT_SUPPORTED,
            StatusWord.CLA_NOT_SUPPORTED,
        ):
            raise ApduError(
                resp.sw,
                "the card in the reader has no ebank-auth token application: "
                "is it the right token?",
            )
        raise_for_status(resp.sw)
        if self._channel is not None:  # SELECT ends the token's session: forget our keys too
            self._channel.close()
            self._channel = None

    def device_info(self) -> DeviceInfo:
        """Serial, label, firmware version and hash, capabilities (cached)."""
        if self._info is None:
            self._info = DeviceInfo.decode(self._plain(Ins.GET_DEVICE_INFO))
        return self._info

    def device_certificate(self) -> bytes:
        """The device (attestation) certificate, DER."""
        if self._device_cert is None:
            self._device_cert = self._plain(Ins.GET_DEVICE_CERT)
        return self._device_cert

    def attest(self) -> AttestationReport:
        """Check device certificate and firmware (UK-9); raise TokenNotGenuine unless
        ``trust.require_genuine`` is False (then the report says ``genuine=False``)."""
        info = self.device_info()
        cert_der = self.device_certificate()
        try:
            subject = x509.load_certificate(cert_der).subject
        except EbankAuthError:
            subject = "(malformed)"
        try:
            verify_device_certificate(info, cert_der, self.trust)
            genuine, message = True, "device certificate and firmware verified"
        except TokenNotGenuine as exc:
            if self.trust.require_genuine:
                raise
            genuine, message = False, exc.message
        self.attestation = AttestationReport(
            info.serial, genuine, subject, info.firmware_version, info.firmware_hash.hex(), message
        )
        return self.attestation

    def _device_key(self) -> sm2.SM2PublicKey:
        try:
            key = x509.load_certificate(self.device_certificate()).public_key
        except EbankAuthError:
            raise TokenNotGenuine("the token's device certificate is malformed") from None
        if not isinstance(key, sm2.SM2PublicKey):
            raise TokenNotGenuine("the device certificate does not hold an SM2 key")
        return key

    def open_secure_channel(self) -> None:
        """Run the handshake; afterwards PIN/key/sign commands are encrypted (UK-5, AU-13)."""
        if self.attestation is None:
            self.attest()
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        hs = HostHandshake(self._device_key())
        answer = tlv.parse_map(
            self._plain(Ins.OPEN_SECURE_CHANNEL, tlv.build([(Tag.HOST_NONCE, hs.host_nonce)])),
            allowed=[Tag.TOKEN_NONCE, Tag.EPHEMERAL_KEY, Tag.SIGNATURE],
            required=[Tag.TOKEN_NONCE, Tag.EPHEMERAL_KEY, Tag.SIGNATURE],
        )
        ciphertext, channel, expected = hs.finish(
            answer[Tag.TOKEN_NONCE],
            answer[Tag.EPHEMERAL_KEY],
            answer[Tag.SIGNATURE],
            self.device_info().raw,
        )
        resp = self.apdu.transmit(
            CommandApdu(
                CLA_PROPRIETARY,
                Ins.ESTABLISH_KEYS,
                0,
                0,
                tlv.build([(Tag.KEY_CIPHERTEXT, ciphertext)]),
                le=_LE,
                sensitive=True,
            )
        )
        if resp.sw != StatusWord.SUCCESS:
            channel.close()
            raise SecureChannelError(
                f"the token refused the session keys (status {resp.sw:04X}): reconnect it"
            )
        confirm = tlv.parse_map(
            resp.data, allowed=[Tag.KEY_CONFIRMATION], required=[Tag.KEY_CONFIRMATION]
        )
        HostHandshake.check_confirmation(expected, confirm[Tag.KEY_CONFIRMATION], channel)
        self._channel = channel

    @property
    def secure(self) -> bool:
        return self._channel is not None and self._channel.open

    # ------------------------------------------------------------------ secure commands
    def transmit_secure(
        self, ins: Ins, data: bytes = b"", p1: int = 0, p2: int = 0, *, what: str = ""
    ) -> bytes:
        """Send one command inside the secure channel; return its (decrypted) data."""
        channel = self._channel
        if channel is None or not channel.open:
            raise SecureChannelError("no secure channel is open: call open_secure_channel()")
        if len(data) > MAX_COMMAND_DATA:
            raise EncodingError(f"command data longer than {MAX_COMMAND_DATA} bytes")
        header = bytes((CLA_SECURE, ins, p1, p2))
        body, ctr = channel.wrap_command(header, data)
        resp = self.apdu.transmit(
            CommandApdu(CLA_SECURE, ins, p1, p2, body, le=_LE, sensitive=True)
        )
        if resp.sw != StatusWord.SUCCESS:
            # The outer status travels in clear: anyone on the link can rewrite it.  Only the
            # status inside the protected body is the token's word, so an outer status other
            # than 9000 is "no authenticated answer" -- never a PIN, key or signing verdict.
            channel.close()
            self._channel = None
            if resp.sw in (
                StatusWord.SM_DATA_OBJECTS_INCORRECT,
                StatusWord.SM_DATA_OBJECTS_MISSING,
            ):
                raise SecureChannelError(
                    "the token closed the secure channel (counter or integrity check failed; "
                    f"status {resp.sw:04X} is not authenticated): open a new session"
                )
            raise SecureChannelError(
                f"the token's answer is not authenticated (clear status {resp.sw:04X} instead of "
                "a protected response): the link may be tampered with; reconnect the token and "
                "retry"
            )
        try:
            inner, sw = channel.unwrap_response(header, resp.data, ctr)
        except SecureChannelError:
            self._channel = None
            raise
        _raise_inner(sw, what)
        return inner

    # PINs ------------------------------------------------------------------------
    def _pin_command(
        self, ins: Ins, data: bytes, p2: int, checked: PinRef, *, what: str = ""
    ) -> None:
        """Send a PIN command; a wrong or locked PIN error names which PIN (``checked``)."""
        try:
            self.transmit_secure(ins, data, p2=p2, what=what)
        except PinIncorrect as exc:
            raise _pin_incorrect(checked, exc.remaining) from None
        except PinLocked:
            raise _pin_locked(checked) from None

    def verify_pin(self, pin: str, ref: PinRef = PinRef.USER) -> None:
        """Verify a PIN.  Raises PinIncorrect(remaining) or PinLocked (naming which PIN)."""
        buf = bytearray(pin_bytes(pin))
        try:
            self._pin_command(Ins.VERIFY_PIN, bytes(buf), ref, ref)
        finally:
            buf[:] = bytes(len(buf))

    def change_pin(self, old: str, new: str, ref: PinRef = PinRef.USER) -> None:
        """Change a PIN; the new one must meet the complexity rules (UK-4)."""
        check_pin_complexity(new)
        if old == new:
            raise PinPolicyError("the new PIN must differ from the old one")
        data = tlv.build([(Tag.PIN, pin_bytes(old)), (Tag.NEW_PIN, pin_bytes(new))])
        self._pin_command(Ins.CHANGE_PIN, data, ref, ref)

    def unblock_pin(self, admin_pin: str, new_user_pin: str) -> None:
        """Reset the user PIN and its counter with the admin (SO) PIN (UK-3).

        A wrong admin PIN spends one of the *admin* PIN's tries; a locked admin PIN is final."""
        check_pin_complexity(new_user_pin)
        data = tlv.build(
            [(Tag.ADMIN_PIN, pin_bytes(admin_pin)), (Tag.NEW_PIN, pin_bytes(new_user_pin))]
        )
        self._pin_command(Ins.UNBLOCK_PIN, data, PinRef.USER, PinRef.ADMIN)

    def pin_status(self, ref: PinRef = PinRef.USER) -> PinStatus:
        fields = tlv.parse_map(
            self.transmit_secure(Ins.PIN_INFO, p2=ref),
            allowed=[Tag.MAX_RETRIES, Tag.REMAINING],
            required=[Tag.MAX_RETRIES, Tag.REMAINING],
        )
        mx, rem = fields[Tag.MAX_RETRIES], fields[Tag.REMAINING]
        if len(mx) != 1 or len(rem) != 1:
            raise EncodingError("PIN information malformed")
        return PinStatus(ref, mx[0], rem[0])

    def set_retry_limit(self, limit: int, ref: PinRef = PinRef.USER) -> None:
        """Set a PIN's retry limit (1..10, UK-3); needs the admin PIN verified first."""
        check_retry_limit(limit)
        self.transmit_secure(
            Ins.SET_RETRY_LIMIT, tlv.build([(Tag.MAX_RETRIES, bytes((limit,)))]), p2=ref
        )

    def logout(self) -> None:
        self.transmit_secure(Ins.LOGOUT)

    # keys and certificates -------------------------------------------------------
    def generate_key(
        self,
        container: str = DEFAULT_CONTAINER,
        algorithm: Algorithm = Algorithm.SM2,
        usage: ContainerUsage = ContainerUsage.TRANSACTION,
        *,
        replace: bool = False,
    ) -> PublicKeyInfo:
        """Generate a key pair on the token (UK-1); returns its public key.

        Needs the user PIN verified.  A container that already holds a key is refused
        (:class:`~ebank_auth.errors.KeyAlreadyExists`) unless ``replace=True`` *and* the admin
        (SO) PIN is verified too; replacing drops the old key and its certificate."""
        name = check_container_name(container)
        data = tlv.build(
            [
                (Tag.CONTAINER, name.encode("ascii")),
                (Tag.ALGORITHM, bytes((algorithm,))),
                (Tag.USAGE, bytes((usage,))),
            ]
        )
        mode = GenerateMode.REPLACE if replace else GenerateMode.CREATE
        fields = tlv.parse_map(
            self.transmit_secure(Ins.GENERATE_KEY, data, p1=mode, what=f"key container {name!r}"),
            allowed=[Tag.PUBLIC_KEY],
            required=[Tag.PUBLIC_KEY],
        )
        return PublicKeyInfo(name, algorithm, usage, fields[Tag.PUBLIC_KEY])

    def attest_key(self, container: str = DEFAULT_CONTAINER) -> KeyAttestation:
        """The token's attestation of the container's key (no PIN needed): an X.509
        certificate for the public key, signed by the token's attestation key, stating origin,
        exportability, usage and enforced confirmation.  Check it with
        :func:`~ebank_auth.usbkey.key_attestation.verify_key_attestation`."""
        name = check_container_name(container)
        fields = tlv.parse_map(
            self.transmit_secure(
                Ins.ATTEST_KEY,
                tlv.build([(Tag.CONTAINER, name.encode("ascii"))]),
                what=f"key container {name!r} (generate a key first)",
            ),
            allowed=[Tag.CERTIFICATE, Tag.ATTESTATION_CA],
            required=[Tag.CERTIFICATE, Tag.ATTESTATION_CA],
        )
        return KeyAttestation(name, fields[Tag.CERTIFICATE], fields[Tag.ATTESTATION_CA])

    def public_key(self, container: str = DEFAULT_CONTAINER) -> PublicKeyInfo:
        name = check_container_name(container)
        fields = tlv.parse_map(
            self.transmit_secure(
                Ins.GET_PUBLIC_KEY,
                tlv.build([(Tag.CONTAINER, name.encode("ascii"))]),
                what=f"key container {name!r} (generate a key first)",
            ),
            allowed=[Tag.ALGORITHM, Tag.USAGE, Tag.PUBLIC_KEY],
            required=[Tag.ALGORITHM, Tag.USAGE, Tag.PUBLIC_KEY],
        )
        try:
            alg = Algorithm(fields[Tag.ALGORITHM][0])
            usage = ContainerUsage(fields[Tag.USAGE][0])
        except (ValueError, IndexError):
            raise EncodingError("the token reported an unknown key algorithm or usage") from None
        return PublicKeyInfo(name, alg, usage, fields[Tag.PUBLIC_KEY])

    def import_certificate(self, certificate: bytes, container: str = DEFAULT_CONTAINER) -> None:
        """Store a certificate (PEM or DER) for the container's key."""
        name = check_container_name(container)
        der = x509.load_certificate(certificate).to_der()
        self.transmit_secure(
            Ins.IMPORT_CERT,
            tlv.build([(Tag.CONTAINER, name.encode("ascii")), (Tag.CERTIFICATE, der)]),
            what=f"key container {name!r} (generate a key first)",
        )

    def export_certificate(self, container: str = DEFAULT_CONTAINER) -> bytes:
        """The container's certificate (DER)."""
        name = check_container_name(container)
        fields = tlv.parse_map(
            self.transmit_secure(
                Ins.GET_CERT,
                tlv.build([(Tag.CONTAINER, name.encode("ascii"))]),
                what=f"certificate in container {name!r}",
            ),
            allowed=[Tag.CERTIFICATE],
            required=[Tag.CERTIFICATE],
        )
        return fields[Tag.CERTIFICATE]

    def list_containers(self) -> list[ContainerInfo]:
        out: list[ContainerInfo] = []
        for _, entry in tlv.parse(self.transmit_secure(Ins.LIST_CONTAINERS)):
            f = tlv.parse_map(
                entry,
                allowed=[Tag.CONTAINER, Tag.ALGORITHM, Tag.USAGE, Tag.CERTIFICATE],
                required=[Tag.CONTAINER, Tag.ALGORITHM, Tag.USAGE, Tag.CERTIFICATE],
            )
            try:
                out.append(
                    ContainerInfo(
                        check_container_name(f[Tag.CONTAINER]),
                        Algorithm(f[Tag.ALGORITHM][0]),
                        ContainerUsage(f[Tag.USAGE][0]),
                        f[Tag.CERTIFICATE] == b"\x01",
                    )
                )
            except (ValueError, IndexError):
                raise EncodingError("the token sent a malformed container list") from None
        return out

    def random(self, length: int) -> bytes:
        if not 1 <= length <= 255:
            raise EncodingError("ask for 1 to 255 random bytes")
        out = self.transmit_secure(Ins.GET_RANDOM, tlv.build([(Tag.LENGTH, bytes((length,)))]))
        if len(out) != length:
            raise EncodingError("the token returned the wrong number of random bytes")
        return out

    # signing ---------------------------------------------------------------------
    def sign_digest(self, digest: bytes, container: str = DEFAULT_LOGIN_CONTAINER) -> bytes:
        """SKF-style digest signing for login challenges: ``digest`` is e = SM3(Z ‖ M).

        Only LOGIN containers accept it; transaction keys sign only through
        :meth:`confirm_and_sign`.  Returns a DER SM2 signature."""
        if len(digest) != 32:
            raise EncodingError("the digest must be 32 bytes (SM3)")
        name = check_container_name(container)
        fields = tlv.parse_map(
            self.transmit_secure(
                Ins.SIGN_DIGEST,
                tlv.build([(Tag.CONTAINER, name.encode("ascii")), (Tag.DIGEST, digest)]),
                what=f"digest signing with container {name!r} (it must be an SM2 login key)",
            ),
            allowed=[Tag.SIGNATURE],
            required=[Tag.SIGNATURE],
        )
        return fields[Tag.SIGNATURE]

    def sign_message(self, data: bytes, container: str = DEFAULT_LOGIN_CONTAINER) -> bytes:
        """SM2-sign the whole message ``data`` with a login key (default distinguishing ID).

        The host computes ``e = SM3(Z_A || data)`` from the container's public key and the
        token signs ``e`` (:meth:`sign_digest`).  Needs the user PIN verified."""
        key = self.public_key(container).public_key()
        if not isinstance(key, sm2.SM2PublicKey):
            raise UnsupportedAlgorithm(
                f"container {container!r} holds an RSA key: message signing needs an SM2 login key"
            )
        return self.sign_digest(sm2.compute_e(key, data, sm2.DEFAULT_UID), container)

    def display_transaction(
        self, tx_bytes: bytes, container: str = DEFAULT_CONTAINER, lang: str = "zh"
    ) -> str:
        """Step 1 of confirm-and-sign: the token decodes and shows ``tx_bytes``.

        Returns the text on the token's screen."""
        fields = tlv.parse_map(
            self.transmit_secure(
                Ins.CONFIRM_AND_SIGN,
                self._tx_body(container, tx_bytes),
                p1=ConfirmStep.DISPLAY,
                p2=1 if lang == "en" else 0,
                what=f"transaction signing with container {container!r} "
                "(it must hold a transaction key)",
            ),
            allowed=[Tag.DISPLAY_TEXT, Tag.DIGEST],
            required=[Tag.DISPLAY_TEXT, Tag.DIGEST],
        )
        try:
            return fields[Tag.DISPLAY_TEXT].decode("utf-8")
        except UnicodeDecodeError:
            raise EncodingError("the token's display text is not UTF-8") from None

    def sign_displayed(
        self, tx_bytes: bytes, container: str = DEFAULT_CONTAINER, lang: str = "zh"
    ) -> tuple[bytes, bytes, str]:
        """Step 2: the token waits for the button and signs the displayed bytes.

        ``tx_bytes`` must be exactly what step 1 sent, or the token refuses.
        Returns ``(signature, signed bytes, serial)``."""
        fields = tlv.parse_map(
            self.transmit_secure(
                Ins.CONFIRM_AND_SIGN,
                self._tx_body(container, tx_bytes),
                p1=ConfirmStep.SIGN,
                p2=1 if lang == "en" else 0,
                what="the transaction differs from the one displayed, or none was displayed",
            ),
            allowed=[Tag.SIGNATURE, Tag.TRANSACTION, Tag.SERIAL],
            required=[Tag.SIGNATURE, Tag.TRANSACTION, Tag.SERIAL],
        )
        try:
            serial = fields[Tag.SERIAL].decode("ascii")
        except UnicodeDecodeError:
            raise EncodingError("the token's serial is not ASCII") from None
        return fields[Tag.SIGNATURE], fields[Tag.TRANSACTION], serial

    def cancel_confirmation(self) -> None:
        self.transmit_secure(Ins.CONFIRM_AND_SIGN, p1=ConfirmStep.CANCEL)

    @staticmethod
    def _tx_body(container: str, tx_bytes: bytes) -> bytes:
        name = check_container_name(container)
        return tlv.build(
            [
                (Tag.CONTAINER, name.encode("ascii")),
                (Tag.FORMAT, bytes((TxFormat.EBANK_TX_V1,))),
                (Tag.TRANSACTION, tx_bytes),
            ]
        )

    def confirm_and_sign(
        self,
        tx: Transaction,
        container: str = DEFAULT_CONTAINER,
        lang: str = "zh",
        *,
        verify_with: TokenPublicKey | None = None,
    ) -> SignResult:
        """Confirm-and-sign (UK-6, UK-7, AU-8): the token shows ``tx``, waits for the
        button and signs SM3(Z ‖ canonical bytes) itself.

        Raises ConfirmationRejected / ConfirmationTimeout when the customer does
        not approve.  The result is checked: the token must have signed exactly
        ``tx.encode()``, and with ``verify_with`` the signature is verified too."""
        data = tx.encode()
        key = verify_with if verify_with is not None else self.public_key(container).public_key()
        text = self.display_transaction(data, container, lang)
        signature, signed, serial = self.sign_displayed(data, container, lang)
        if signed != data:
            raise TokenNotGenuine("the token signed other bytes than the transaction sent")
        if serial != self.device_info().serial:
            raise TokenNotGenuine("the token reported a different serial when signing")
        try:
            verify_confirmation(key, signature, tx)
        except InvalidSignature:
            raise TokenNotGenuine(
                "the token's signature does not verify with its public key"
            ) from None
        algorithm = Algorithm.SM2 if isinstance(key, sm2.SM2PublicKey) else Algorithm.RSA2048
        return SignResult(signature, signed, serial, container, algorithm, text)


def _implements_token(session: TokenSession) -> Token:
    """Never called: mypy checks here that :class:`TokenSession` implements :class:`Token`."""
    return session
