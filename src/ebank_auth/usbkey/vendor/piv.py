"""PIV backend: any PIV card (NIST SP 800-73-4) — a YubiKey, a government PIV card, the
software token's PIV applet — over our PC/SC transport.

::

    from ebank_auth.usbkey.vendor.piv import open_piv, PivAlgorithm, Slot

    with open_piv("Virtual PCD 00 00") as card:
        card.authenticate()                      # management key (default: the factory key)
        info = card.generate(Slot.SIGNATURE, PivAlgorithm.ECC_P256)
        card.verify_pin("123456")
        signature = card.sign_message(b"data", container="9c")   # ECDSA-SHA256, DER
        info.any_public_key()  # verify with it

:class:`PivSession` implements :class:`ebank_auth.usbkey.token.Token` where PIV fits: PIN
verify/change/unblock with the retry counter, slots as containers (``9a``, ``9c``, ``9d``,
``9e``), key generation (P-256, RSA-2048), signing, certificates per slot.  What PIV cannot do
raises :class:`~ebank_auth.errors.NotSupportedByToken`: confirm-and-sign (no display — policy
must never count a PIV key as "what you see is what you sign"), the token's random generator,
changing the retry limit, and ebank-auth key attestation (PIV has its own: :meth:`attest_slot`).

YubiKey extensions are used when the card answers them (GET VERSION, GET SERIAL, GET
METADATA, ATTEST); a card that does not is still a PIV card.  Container names map to slots:
``9a``/``authentication``/``login`` → 9A, ``9c``/``signature``/``sign`` → 9C,
``9d``/``key-management`` → 9D, ``9e``/``card-authentication`` → 9E.  Every PIV key is
reported with usage ``LOGIN``: it signs whatever the host sends.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from ebank_auth.crypto import keys, x509
from ebank_auth.crypto.keys import PublicKey, SignatureAlgorithm
from ebank_auth.errors import (
    ApduError,
    EbankAuthError,
    EncodingError,
    KeyAlreadyExists,
    NotSupportedByToken,
    SecurityStatusNotSatisfied,
    TokenNotGenuine,
    UnsupportedAlgorithm,
)
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.apdu import ApduConnection, CommandApdu, StatusWord
from ebank_auth.usbkey.key_attestation import KeyAttestation
from ebank_auth.usbkey.piv_protocol import (
    DEFAULT_MANAGEMENT_KEY,
    DEFAULT_TRIES,
    PIV_AID,
    SLOT_OBJECTS,
    KeyRef,
    MetadataTag,
    PinPolicy,
    PivAlgorithm,
    PivIns,
    PivObject,
    Slot,
    challenge_size,
    decode_public_key,
    encode_tlv,
    management_block,
    pad_pin,
    parse_tlv,
    parse_tlv_map,
    tag_bytes,
)
from ebank_auth.usbkey.protocol import (
    DEFAULT_CONTAINER,
    DEFAULT_LOGIN_CONTAINER,
    Algorithm,
    ContainerUsage,
    DeviceCapability,
    DeviceInfo,
    PinRef,
)
from ebank_auth.usbkey.token import (
    AttestationReport,
    ContainerInfo,
    PinStatus,
    PublicKeyInfo,
    SignResult,
    TokenPublicKey,
)
from ebank_auth.usbkey.transport.base import Connection
from ebank_auth.usbkey.transport.pcsc import ShareMode, open_reader

__all__ = [
    "DefaultsReport",
    "PivAttestation",
    "PivSession",
    "PivSigningKey",
    "open_piv",
    "slot_for",
]

_T = TypeVar("_T")
_CLA: Final = 0x00
#: DigestInfo prefix of SHA-256 (RFC 8017 §9.2, note 1)
_SHA256_DIGEST_INFO: Final = bytes.fromhex("3031300d060960864801650304020105000420")
_SLOT_NAMES: Final = {
    "9a": Slot.AUTHENTICATION,
    "authentication": Slot.AUTHENTICATION,
    DEFAULT_LOGIN_CONTAINER: Slot.AUTHENTICATION,
    "9c": Slot.SIGNATURE,
    "signature": Slot.SIGNATURE,
    DEFAULT_CONTAINER: Slot.SIGNATURE,
    "9d": Slot.KEY_MANAGEMENT,
    "key-management": Slot.KEY_MANAGEMENT,
    "9e": Slot.CARD_AUTHENTICATION,
    "card-authentication": Slot.CARD_AUTHENTICATION,
}
_TO_PIV: Final = {
    Algorithm.ECC_P256: PivAlgorithm.ECC_P256,
    Algorithm.RSA2048: PivAlgorithm.RSA2048,
}
_FROM_PIV: Final = {v: k for k, v in _TO_PIV.items()}


def slot_for(container: str | Slot) -> Slot:
    """The key slot a container name (``9a``, ``signature``, …) stands for."""
    if isinstance(container, Slot):
        if container is Slot.ATTESTATION:
            raise EncodingError("slot f9 holds the attestation key: it is not a container")
        return container
    slot = _SLOT_NAMES.get(container.lower())
    if slot is None:
        raise EncodingError(
            f"{container!r} is not a PIV key slot: use 9a, 9c, 9d or 9e "
            "(authentication, signature, key-management, card-authentication)"
        )
    return slot


@dataclass(frozen=True)
class DefaultsReport:
    """Which factory secrets a card still uses (``None``: the card does not say)."""

    pin: bool | None
    puk: bool | None
    management_key: bool | None

    @property
    def any_default(self) -> bool:
        return any(v is True for v in (self.pin, self.puk, self.management_key))

    def to_json(self) -> dict[str, bool | None]:
        return {"pin": self.pin, "puk": self.puk, "management_key": self.management_key}


@dataclass(frozen=True)
class PivAttestation:
    """A YubiKey-style attestation of a slot key: ``certificate_der`` (the key, signed by the
    card's attestation key) and ``attestation_ca_der`` (the attestation key's certificate from
    object ``5FFF01``, issued by the card maker)."""

    slot: Slot
    certificate_der: bytes
    attestation_ca_der: bytes

    def verify(self, roots: Sequence[x509.Certificate], public_key_der: bytes) -> None:
        """Raise :class:`TokenNotGenuine` unless the chain leads to one of ``roots`` and the
        attested key is ``public_key_der``."""
        try:
            leaf = x509.load_certificate(self.certificate_der)
            ca = x509.load_certificate(self.attestation_ca_der)
            leaf.verify_signed_by(ca)
            if not any(ca.is_signed_by(root) for root in roots):
                raise TokenNotGenuine(
                    "the PIV attestation certificate is not issued by a trusted root: give the "
                    "card maker's attestation root"
                )
            if keys.public_key_to_spki(leaf.public_key) != public_key_der:
                raise TokenNotGenuine("the attestation certifies another key than the slot's")
        except TokenNotGenuine:
            raise
        except EbankAuthError:
            raise TokenNotGenuine("the PIV attestation does not verify") from None


class PivSession:
    """An open PIV card (see the module docstring).  ``management_key`` is used by
    :meth:`authenticate` when none is given (default: the factory key — change it on any
    card that leaves the lab).  ``attestation_roots`` are the certificates the card's
    attestation chain must lead to; ``require_genuine`` refuses a card whose chain does not."""

    def __init__(
        self,
        connection: Connection,
        *,
        management_key: bytes = DEFAULT_MANAGEMENT_KEY,
        attestation_roots: Sequence[x509.Certificate] = (),
        require_genuine: bool = False,
    ) -> None:
        self._conn = connection
        self._apdu = ApduConnection(connection)
        self._management_key = bytes(management_key)
        self._roots = tuple(attestation_roots)
        self.select()
        version = self._optional(lambda: self._send(PivIns.GET_VERSION))
        self.version: tuple[int, ...] | None = tuple(version[:3]) if version else None
        serial = self._optional(lambda: self._send(PivIns.GET_SERIAL))
        self.serial: int | None = int.from_bytes(serial, "big") if serial else None
        self._attestation = self._check_attestation()
        if require_genuine and not self._attestation.genuine:
            raise TokenNotGenuine(self._attestation.message)

    # ------------------------------------------------------------------ plumbing
    def _send(
        self,
        ins: int,
        p1: int = 0,
        p2: int = 0,
        data: bytes = b"",
        *,
        sensitive: bool = False,
        le: int | None = 0,
    ) -> bytes:
        return self._apdu.execute(
            CommandApdu(_CLA, int(ins), p1, p2, data, le=le, sensitive=sensitive)
        )

    @staticmethod
    def _optional(call: Callable[[], _T]) -> _T | None:
        """The result of a YubiKey extension, or ``None`` when the card does not offer it."""
        try:
            return call()
        except ApduError as exc:
            if exc.sw in (StatusWord.INS_NOT_SUPPORTED, StatusWord.CLA_NOT_SUPPORTED, 0x6A81):
                return None
            raise

    def select(self) -> None:
        """SELECT the PIV application (answers ``6A82`` → not a PIV card)."""
        try:
            self._apdu.execute(CommandApdu(_CLA, PivIns.SELECT, 0x04, 0x00, PIV_AID, le=0))
        except ApduError as exc:
            if exc.sw == StatusWord.FILE_NOT_FOUND:
                raise NotSupportedByToken(
                    "this card has no PIV application: use the native or another backend"
                ) from None
            raise

    # ------------------------------------------------------------------ Token: identity
    @property
    def description(self) -> str:
        return f"piv:{self._conn.description}"

    @property
    def attestation(self) -> AttestationReport | None:
        return self._attestation

    @property
    def can_confirm(self) -> bool:
        return False  # a PIV card has no display and no button

    def _check_attestation(self) -> AttestationReport:
        serial = "" if self.serial is None else str(self.serial)
        version = ".".join(str(v) for v in self.version) if self.version else ""
        try:
            ca_der = self.read_object(PivObject.YUBIKEY_ATTESTATION_CERT)
        except ApduError:
            ca_der = None
        if ca_der is None:
            return AttestationReport(
                serial, False, "", version, "", "the card offers no attestation"
            )
        try:
            ca = x509.load_certificate(ca_der)
        except EbankAuthError:
            return AttestationReport(
                serial, False, "", version, "", "malformed attestation certificate"
            )
        genuine = any(ca.is_signed_by(root) for root in self._roots)
        message = (
            "attestation certificate issued by a trusted root"
            if genuine
            else "attestation certificate not issued by a trusted root (none given, or unknown)"
        )
        return AttestationReport(serial, genuine, ca.subject, version, "", message)

    def attest(self) -> AttestationReport:
        self._attestation = self._check_attestation()
        return self._attestation

    def device_info(self) -> DeviceInfo:
        caps = DeviceCapability.RSA2048
        if self._attestation.device_certificate_subject:
            caps |= DeviceCapability.ATTESTATION
        return DeviceInfo(
            serial="" if self.serial is None else str(self.serial),
            label="PIV card",
            manufacturer="",
            firmware_version=self._attestation.firmware_version,
            firmware_hash=b"",
            capabilities=caps,
            protocol_version=0,
        )

    def random(self, length: int) -> bytes:
        raise NotSupportedByToken("the PIV card edge has no random-number command")

    # ------------------------------------------------------------------ PIN
    def verify_pin(self, pin: str, ref: PinRef = PinRef.USER) -> None:
        """VERIFY the PIN (``63Cx`` → :class:`PinIncorrect` with the tries left, ``6983`` →
        :class:`PinLocked`).  PIV cannot verify the PUK on its own (``ref=ADMIN``)."""
        if ref is not PinRef.USER:
            raise NotSupportedByToken(
                "PIV verifies only the PIN; the PUK is used by change_pin/unblock_pin and key "
                "management needs authenticate() with the management key"
            )
        self._send(PivIns.VERIFY, 0, KeyRef.PIN, pad_pin(pin), sensitive=True, le=None)

    def pin_retries(self) -> int | None:
        """Tries left on the PIN (an empty VERIFY); ``None`` when it is already verified."""
        resp = self._apdu.transmit(CommandApdu(_CLA, PivIns.VERIFY, 0, KeyRef.PIN))
        if resp.sw == StatusWord.SUCCESS:
            return None
        if resp.sw & 0xFFF0 == 0x63C0:
            return resp.sw & 0x0F
        if resp.sw == StatusWord.AUTH_METHOD_BLOCKED:
            return 0
        raise ApduError(resp.sw, f"the card refused the PIN-retries query [status {resp.sw:04X}]")

    def metadata(self, ref: int) -> dict[int, bytes] | None:
        """YubiKey GET METADATA of a PIN, PUK, management key or slot (``None`` if not offered
        or the slot is empty)."""
        try:
            raw = self._send(PivIns.GET_METADATA, 0, ref)
        except ApduError as exc:
            if exc.sw in (
                StatusWord.INS_NOT_SUPPORTED,
                StatusWord.REFERENCED_DATA_NOT_FOUND,
                StatusWord.INCORRECT_P1P2,
                0x6A81,
            ):
                return None
            raise
        return dict(parse_tlv(raw))

    def pin_status(self, ref: PinRef = PinRef.USER) -> PinStatus:
        """Retry counter of the PIN (``USER``) or PUK (``ADMIN``).  Totals come from YubiKey
        metadata; a card without it reports the SP 800-73 default of 3 as the total."""
        meta = self.metadata(KeyRef.PIN if ref is PinRef.USER else KeyRef.PUK)
        if meta is not None and len(meta.get(MetadataTag.RETRIES, b"")) == 2:
            total, left = meta[MetadataTag.RETRIES]
            return PinStatus(ref, total, left)
        if ref is not PinRef.USER:
            raise NotSupportedByToken("this PIV card does not report the PUK's retry counter")
        retries = self.pin_retries()
        left = DEFAULT_TRIES if retries is None else retries  # verified: a fresh count
        return PinStatus(ref, max(DEFAULT_TRIES, left), left)

    def change_pin(self, old: str, new: str, ref: PinRef = PinRef.USER) -> None:
        key = KeyRef.PIN if ref is PinRef.USER else KeyRef.PUK
        data = pad_pin(old) + pad_pin(new)
        self._send(PivIns.CHANGE_REFERENCE_DATA, 0, key, data, sensitive=True, le=None)

    def unblock_pin(self, admin_pin: str, new_user_pin: str) -> None:
        """RESET RETRY COUNTER: the PUK (``admin_pin``) sets a new PIN."""
        data = pad_pin(admin_pin) + pad_pin(new_user_pin)
        self._send(PivIns.RESET_RETRY_COUNTER, 0, KeyRef.PIN, data, sensitive=True, le=None)

    def set_retry_limit(self, limit: int, ref: PinRef = PinRef.USER) -> None:
        raise NotSupportedByToken(
            "PIV has no standard command to change the retry limit (YubiKeys reset the PIN and "
            "PUK to their defaults when it changes): use the card vendor's tool"
        )

    def logout(self) -> None:
        """Forget the verified PIN (VERIFY with P1=FF; re-SELECT on cards without it)."""
        resp = self._apdu.transmit(CommandApdu(_CLA, PivIns.VERIFY, 0xFF, KeyRef.PIN))
        if resp.sw != StatusWord.SUCCESS:
            self.select()

    def defaults_in_use(self) -> DefaultsReport:
        """Which factory secrets are still set, from YubiKey metadata (``None``: not reported)."""

        def flag(ref: int) -> bool | None:
            meta = self.metadata(ref)
            if meta is None or len(meta.get(MetadataTag.IS_DEFAULT, b"")) != 1:
                return None
            return bool(meta[MetadataTag.IS_DEFAULT][0])

        return DefaultsReport(flag(KeyRef.PIN), flag(KeyRef.PUK), flag(KeyRef.MANAGEMENT))

    # ------------------------------------------------------------------ management key
    def authenticate(self, management_key: bytes | None = None) -> None:
        """Mutual authentication with the management key (needed to generate keys and write
        objects).  The algorithm comes from the card's metadata (3DES when it does not say)."""
        key = self._management_key if management_key is None else bytes(management_key)
        meta = self.metadata(KeyRef.MANAGEMENT)
        alg = PivAlgorithm.TDES
        if meta is not None and len(meta.get(MetadataTag.ALGORITHM, b"")) == 1:
            alg = PivAlgorithm(meta[MetadataTag.ALGORITHM][0])
        size = challenge_size(alg)
        step1 = self._send(
            PivIns.GENERAL_AUTHENTICATE,
            alg,
            KeyRef.MANAGEMENT,
            encode_tlv(0x7C, encode_tlv(0x80, b"")),
        )
        witness = parse_tlv_map(_unwrap(step1, 0x7C), {0x80}).get(0x80, b"")
        if len(witness) != size:
            raise EncodingError("the card sent a malformed management-key witness")
        challenge = secrets.token_bytes(size)
        body = encode_tlv(0x80, management_block(alg, key, witness, decrypt=True))
        body += encode_tlv(0x81, challenge)
        try:
            step2 = self._send(
                PivIns.GENERAL_AUTHENTICATE,
                alg,
                KeyRef.MANAGEMENT,
                encode_tlv(0x7C, body),
                sensitive=True,
            )
        except SecurityStatusNotSatisfied:
            raise SecurityStatusNotSatisfied(
                "the card refused the management key: give the card's management key "
                "(--management-key); the factory default works only on an unchanged card"
            ) from None
        response = parse_tlv_map(_unwrap(step2, 0x7C), {0x82}).get(0x82, b"")
        if not hmac.compare_digest(response, management_block(alg, key, challenge)):
            raise TokenNotGenuine("the card did not prove it holds the management key")

    def set_management_key(
        self, new_key: bytes, algorithm: PivAlgorithm = PivAlgorithm.TDES
    ) -> None:
        """YubiKey SET MANAGEMENT KEY (after :meth:`authenticate`)."""
        data = bytes((algorithm, KeyRef.MANAGEMENT, len(new_key))) + bytes(new_key)
        self._send(PivIns.SET_MANAGEMENT_KEY, 0xFF, 0xFF, data, sensitive=True, le=None)
        self._management_key = bytes(new_key)

    # ------------------------------------------------------------------ objects
    def read_object(self, tag: int) -> bytes | None:
        """GET DATA: the content of object ``tag`` (``None`` when the card has none)."""
        try:
            raw = self._send(PivIns.GET_DATA, 0x3F, 0xFF, encode_tlv(0x5C, tag_bytes(tag)))
        except ApduError as exc:
            if exc.sw == StatusWord.FILE_NOT_FOUND:
                return None
            raise
        return _unwrap(raw, 0x7E if tag == PivObject.DISCOVERY else 0x53)

    def write_object(self, tag: int, content: bytes) -> None:
        """PUT DATA (after :meth:`authenticate`); empty ``content`` deletes the object."""
        data = encode_tlv(0x5C, tag_bytes(tag)) + encode_tlv(0x53, content)
        self._send(PivIns.PUT_DATA, 0x3F, 0xFF, data, le=None)

    # ------------------------------------------------------------------ keys
    def _slot_public_key(self, slot: Slot) -> PublicKeyInfo | None:
        meta = self.metadata(slot)
        if meta is not None and MetadataTag.PUBLIC_KEY in meta:
            alg = PivAlgorithm(meta[MetadataTag.ALGORITHM][0])
            spki = decode_public_key(alg, meta[MetadataTag.PUBLIC_KEY])
        else:
            cert = self._certificate(slot)
            if cert is None:
                return None
            spki = keys.public_key_to_spki(x509.load_certificate(cert).public_key)
            alg = _piv_algorithm(spki)
        if alg not in _FROM_PIV:
            raise UnsupportedAlgorithm(f"slot {slot.label} holds a {alg.name} key (not supported)")
        return PublicKeyInfo(slot.label, _FROM_PIV[alg], ContainerUsage.LOGIN, spki)

    def list_containers(self) -> list[ContainerInfo]:
        out = []
        for slot in SLOT_OBJECTS:
            info = self._slot_public_key(slot)
            if info is not None:
                has_cert = self._certificate(slot) is not None
                out.append(ContainerInfo(slot.label, info.algorithm, info.usage, has_cert))
        return out

    def generate(
        self, slot: Slot, algorithm: PivAlgorithm, pin_policy: PinPolicy = PinPolicy.DEFAULT
    ) -> PublicKeyInfo:
        """GENERATE ASYMMETRIC KEY PAIR in ``slot`` (after :meth:`authenticate`); replaces
        what the slot held."""
        if algorithm not in _FROM_PIV:
            raise UnsupportedAlgorithm("PIV keys here are ECC_P256 or RSA2048")
        spec = encode_tlv(0x80, bytes((algorithm,)))
        if pin_policy is not PinPolicy.DEFAULT:
            spec += encode_tlv(0xAA, bytes((pin_policy,)))
        raw = self._send(PivIns.GENERATE_ASYMMETRIC, 0, slot_for(slot), encode_tlv(0xAC, spec))
        spki = decode_public_key(algorithm, _unwrap(raw, 0x7F49))
        return PublicKeyInfo(slot.label, _FROM_PIV[algorithm], ContainerUsage.LOGIN, spki)

    def generate_key(
        self,
        container: str = DEFAULT_CONTAINER,
        algorithm: Algorithm = Algorithm.ECC_P256,
        usage: ContainerUsage = ContainerUsage.LOGIN,
        *,
        replace: bool = False,
    ) -> PublicKeyInfo:
        """Token-protocol key generation: authenticates with the configured management key;
        a slot that holds a key is replaced only with ``replace=True``."""
        if usage is not ContainerUsage.LOGIN:
            raise NotSupportedByToken(
                "a PIV key signs whatever the host sends: it cannot be a transaction "
                "(confirm-and-sign) key; use usage LOGIN"
            )
        piv_alg = _TO_PIV.get(algorithm)
        if piv_alg is None:
            raise UnsupportedAlgorithm(f"PIV has no {algorithm.name} keys: use ECC_P256 or RSA2048")
        slot = slot_for(container)
        if not replace and self._slot_public_key(slot) is not None:
            raise KeyAlreadyExists(
                f"PIV slot {slot.label} already holds a key: pass replace=True (--force) to "
                "overwrite it"
            )
        self.authenticate()
        return self.generate(slot, piv_alg)

    def public_key(self, container: str = DEFAULT_CONTAINER) -> PublicKeyInfo:
        slot = slot_for(container)
        info = self._slot_public_key(slot)
        if info is None:
            raise ApduError(
                StatusWord.REFERENCED_DATA_NOT_FOUND,
                f"PIV slot {slot.label} holds no key the card reports (no metadata and no "
                "certificate): generate a key or import its certificate first",
            )
        return info

    def attest_key(self, container: str = DEFAULT_CONTAINER) -> KeyAttestation:
        raise NotSupportedByToken(
            "PIV cards attest keys in their own format: use attest_slot() (YubiKey attestation)"
        )

    def attest_slot(self, container: str | Slot) -> PivAttestation:
        """YubiKey ATTEST (``F9``): a certificate for the slot key, and the attestation CA."""
        slot = slot_for(container)
        try:
            cert = self._send(PivIns.ATTEST, slot, 0)
        except ApduError as exc:
            if exc.sw == StatusWord.INS_NOT_SUPPORTED:
                raise NotSupportedByToken("this PIV card offers no key attestation") from None
            raise
        ca = self.read_object(PivObject.YUBIKEY_ATTESTATION_CERT)
        if ca is None:
            raise NotSupportedByToken("the card has no attestation certificate (object 5FFF01)")
        return PivAttestation(slot, cert, ca)

    # ------------------------------------------------------------------ certificates
    def _certificate(self, slot: Slot) -> bytes | None:
        content = self.read_object(SLOT_OBJECTS[slot])
        if content is None:
            return None
        fields = dict(parse_tlv(content))
        if fields.get(0x71, b"\x00") != b"\x00":
            raise NotSupportedByToken("compressed PIV certificates are not supported")
        return fields.get(0x70)

    def import_certificate(self, certificate: bytes, container: str = DEFAULT_CONTAINER) -> None:
        """Write the slot's certificate object (after :meth:`authenticate`; the token-protocol
        form authenticates with the configured management key itself)."""
        slot = slot_for(container)
        der = x509.load_certificate(certificate).to_der()
        self.authenticate()
        body = encode_tlv(0x70, der) + encode_tlv(0x71, b"\x00") + encode_tlv(0xFE, b"")
        self.write_object(SLOT_OBJECTS[slot], body)

    def export_certificate(self, container: str = DEFAULT_CONTAINER) -> bytes:
        slot = slot_for(container)
        der = self._certificate(slot)
        if der is None:
            raise ApduError(
                StatusWord.FILE_NOT_FOUND,
                f"PIV slot {slot.label} has no certificate: import one first",
            )
        return der

    # ------------------------------------------------------------------ signing
    def sign_raw(self, slot: Slot, algorithm: PivAlgorithm, data: bytes) -> bytes:
        """GENERAL AUTHENTICATE with a slot key: ``data`` is the padded block (RSA) or the
        digest (ECDSA); returns the card's answer (raw RSA result / DER ECDSA signature)."""
        body = encode_tlv(0x7C, encode_tlv(0x82, b"") + encode_tlv(0x81, data))
        raw = self._send(PivIns.GENERAL_AUTHENTICATE, algorithm, slot, body)
        return parse_tlv_map(_unwrap(raw, 0x7C), {0x82}).get(0x82, b"")

    def key_agreement(self, container: str, peer_point: bytes) -> bytes:
        """ECDH with a P-256 slot key (``peer_point``: uncompressed ``04‖X‖Y``): the shared X."""
        slot = slot_for(container)
        body = encode_tlv(0x7C, encode_tlv(0x82, b"") + encode_tlv(0x85, peer_point))
        raw = self._send(PivIns.GENERAL_AUTHENTICATE, PivAlgorithm.ECC_P256, slot, body)
        return parse_tlv_map(_unwrap(raw, 0x7C), {0x82}).get(0x82, b"")

    def sign_digest(self, digest: bytes, container: str = DEFAULT_LOGIN_CONTAINER) -> bytes:
        """Sign a SHA-256 ``digest`` with the slot key: ECDSA (DER) for P-256, PKCS#1 v1.5 for
        RSA.  (PIV has no SM2: this is not the SM2 ``e`` of the token application.)"""
        if len(digest) != 32:
            raise EncodingError("a PIV signature here is over a 32-byte SHA-256 digest")
        info = self.public_key(container)
        slot = slot_for(container)
        if info.algorithm is Algorithm.ECC_P256:
            return self.sign_raw(slot, PivAlgorithm.ECC_P256, digest)
        t = _SHA256_DIGEST_INFO + digest
        block = b"\x00\x01" + b"\xff" * (256 - 3 - len(t)) + b"\x00" + t
        return self.sign_raw(slot, PivAlgorithm.RSA2048, block)

    def sign_message(self, data: bytes, container: str = DEFAULT_LOGIN_CONTAINER) -> bytes:
        """SHA-256 of ``data``, signed as :meth:`sign_digest`."""
        return self.sign_digest(hashlib.sha256(bytes(data)).digest(), container)

    def confirm_and_sign(
        self,
        tx: Transaction,
        container: str = DEFAULT_CONTAINER,
        lang: str = "zh",
        *,
        verify_with: TokenPublicKey | None = None,
    ) -> SignResult:
        raise NotSupportedByToken(
            "a PIV card has no display and no button: it cannot show a transaction for the "
            "customer to confirm; use a token with a display (the native backend)"
        )

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        self._apdu.close()

    def __enter__(self) -> PivSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PivSigningKey:
    """A PIV slot key as a :class:`ebank_auth.crypto.keys.SigningKey` (CSR, certificates, CMS):
    ECDSA-SHA256 for P-256, SHA256-RSA (PKCS#1 v1.5) for RSA.  The PIN must be verified first
    (for 9C right before each signature)."""

    def __init__(self, session: PivSession, container: str | Slot = Slot.AUTHENTICATION) -> None:
        self._session = session
        self._slot = slot_for(container)
        self._info = session.public_key(self._slot.label)
        self._public = self._info.any_public_key()

    def public_key(self) -> PublicKey:
        return self._public

    def sign_with(self, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
        wanted = (
            SignatureAlgorithm.ECDSA_SHA256
            if self._info.algorithm is Algorithm.ECC_P256
            else SignatureAlgorithm.SHA256_RSA
        )
        if algorithm is not wanted:
            raise UnsupportedAlgorithm(f"this PIV key signs with {wanted.name} only")
        return self._session.sign_message(bytes(data), self._slot.label)


def _unwrap(data: bytes, tag: int) -> bytes:
    items = parse_tlv(data, max_items=1)
    if len(items) != 1 or items[0][0] != tag:
        raise EncodingError(f"the card's answer is not a {tag:#x} template")
    return items[0][1]


def _piv_algorithm(spki: bytes) -> PivAlgorithm:
    kind = keys.key_algorithm(keys.load_public_key(spki))
    if kind is keys.KeyAlgorithm.EC_P256:
        return PivAlgorithm.ECC_P256
    if kind is keys.KeyAlgorithm.RSA:
        return PivAlgorithm.RSA2048
    raise UnsupportedAlgorithm("the slot's certificate holds neither an RSA nor a P-256 key")


def open_piv(
    reader: str | int | None = None,
    *,
    management_key: bytes = DEFAULT_MANAGEMENT_KEY,
    attestation_roots: Sequence[x509.Certificate] = (),
    require_genuine: bool = False,
    share: ShareMode = ShareMode.EXCLUSIVE,
) -> PivSession:
    """Connect to the PIV card in ``reader`` (name, index or unique substring) over PC/SC.

    ``share`` defaults to exclusive use, so no other program acts on the verified PIN."""
    conn = open_reader(reader, share=share)
    try:
        return PivSession(
            conn,
            management_key=management_key,
            attestation_roots=attestation_roots,
            require_genuine=require_genuine,
        )
    except BaseException:
        conn.close()
        raise
