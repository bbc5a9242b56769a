"""The host-side token protocol: what the CLI, the conformance suite and apps program against.

:class:`Token` is a :class:`typing.Protocol`: any backend that reaches a USB Key — ours over
APDUs (:class:`ebank_auth.usbkey.session.TokenSession`), and later PIV, PKCS#11 or SKF
backends in ``ebank_auth.usbkey.vendor`` — implements these methods and returns the result
dataclasses defined here, so code written against :class:`Token` works with all of them.
Get one with :func:`ebank_auth.usbkey.open_token`.

Contract every backend keeps:

* the token is checked for authenticity when it is opened (:attr:`Token.attestation`);
* PIN methods raise :class:`~ebank_auth.errors.PinIncorrect` (with ``remaining``) or
  :class:`~ebank_auth.errors.PinLocked`, naming the user or admin PIN;
* keys are generated on the token and never leave it; only public keys and certificates
  are read back;
* every key can be attested (:meth:`Token.attest_key`): the token certifies what kind of key
  it is, so a bank never takes a login key for a transaction key;
* transaction keys sign only through :meth:`Token.confirm_and_sign` on tokens that have a
  display and a button (:attr:`Token.can_confirm`); login keys sign digests
  (:meth:`Token.sign_digest`, :meth:`Token.sign_message`);
* every failure is a typed error from :mod:`ebank_auth.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Union, runtime_checkable

from ebank_auth.crypto import rsa, sm2
from ebank_auth.crypto.keys import PublicKey, load_public_key
from ebank_auth.errors import CryptoError, EncodingError, UnsupportedAlgorithm
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.key_attestation import KeyAttestation
from ebank_auth.usbkey.protocol import (
    DEFAULT_CONTAINER,
    DEFAULT_LOGIN_CONTAINER,
    Algorithm,
    ContainerUsage,
    DeviceInfo,
    PinRef,
)

__all__ = [
    "AttestationReport",
    "ContainerInfo",
    "PinStatus",
    "PublicKeyInfo",
    "SignResult",
    "Token",
    "TokenPublicKey",
]

TokenPublicKey = Union[sm2.SM2PublicKey, rsa.RSAPublicKey]  # noqa: UP007 - runtime alias on 3.10


@dataclass(frozen=True)
class PinStatus:
    """Retry counter of one PIN (``ref`` user or admin)."""

    ref: PinRef
    max_retries: int
    remaining: int

    @property
    def locked(self) -> bool:
        return self.remaining == 0


@dataclass(frozen=True)
class PublicKeyInfo:
    """A container's public key (SPKI DER), algorithm and usage.  Never a private key."""

    container: str
    algorithm: Algorithm
    usage: ContainerUsage
    public_key_der: bytes

    def public_key(self) -> TokenPublicKey:
        """The SM2 or RSA public key (a P-256 key of a PIV or PKCS#11 token raises
        :class:`UnsupportedAlgorithm`: use :meth:`any_public_key`)."""
        if self.algorithm is Algorithm.ECC_P256:
            raise UnsupportedAlgorithm(
                f"container {self.container!r} holds a P-256 key: use any_public_key()"
            )
        try:
            if self.algorithm is Algorithm.SM2:
                return sm2.load_der_public_key(self.public_key_der)
            return rsa.load_der_public_key(self.public_key_der)
        except (CryptoError, EncodingError, ValueError):
            raise EncodingError("the token returned a malformed public key") from None

    def any_public_key(self) -> PublicKey:
        """The public key whatever its algorithm (SM2, RSA or P-256), for verifying."""
        try:
            return load_public_key(self.public_key_der)
        except (CryptoError, EncodingError, ValueError):
            raise EncodingError("the token returned a malformed public key") from None


@dataclass(frozen=True)
class ContainerInfo:
    name: str
    algorithm: Algorithm
    usage: ContainerUsage
    has_certificate: bool


@dataclass(frozen=True)
class SignResult:
    """Outcome of confirm-and-sign (UK-7, UK-10).

    ``signature`` (SM2: DER SEQUENCE{r, s} over ``signed_bytes`` with the default
    ID; RSA: PKCS#1 v1.5 SHA-256); ``signed_bytes`` — the canonical transaction
    the token displayed and signed; ``serial`` — the token's serial, so a server
    can check serial ↔ certificate ↔ customer; ``display_text`` — what the
    token's screen showed.
    """

    signature: bytes
    signed_bytes: bytes
    serial: str
    container: str
    algorithm: Algorithm
    display_text: str

    def verify(self, public_key: TokenPublicKey) -> None:
        """Raise :class:`InvalidSignature` unless ``signature`` is valid over ``signed_bytes``
        (see :func:`ebank_auth.confirmation.verify_confirmation`)."""
        from ebank_auth.confirmation import verify_confirmation

        verify_confirmation(public_key, self.signature, self.signed_bytes)


@dataclass(frozen=True)
class AttestationReport:
    """Result of the device authenticity check (UK-9)."""

    serial: str
    genuine: bool
    device_certificate_subject: str
    firmware_version: str
    firmware_hash: str
    message: str


@runtime_checkable
class Token(Protocol):
    """A connected, authenticity-checked USB Key (see the module contract).

    Use it as a context manager, or call :meth:`close`."""

    @property
    def description(self) -> str:
        """Where the token is, e.g. ``pcsc:Virtual PCD 00 00`` or ``hid:/dev/hidraw3``."""
        ...

    @property
    def attestation(self) -> AttestationReport | None:
        """The authenticity check made when the token was opened."""
        ...

    @property
    def can_confirm(self) -> bool:
        """True when the token has a display and a button (confirm-and-sign is possible)."""
        ...

    # device
    def device_info(self) -> DeviceInfo:
        """Serial, label, manufacturer, firmware version and hash, capabilities."""
        ...

    def attest(self) -> AttestationReport:
        """Check the device certificate and firmware again (UK-9)."""
        ...

    def random(self, length: int) -> bytes:
        """``length`` (1-255) random bytes from the token's generator."""
        ...

    # PINs
    def verify_pin(self, pin: str, ref: PinRef = PinRef.USER) -> None: ...

    def change_pin(self, old: str, new: str, ref: PinRef = PinRef.USER) -> None: ...

    def unblock_pin(self, admin_pin: str, new_user_pin: str) -> None: ...

    def pin_status(self, ref: PinRef = PinRef.USER) -> PinStatus: ...

    def set_retry_limit(self, limit: int, ref: PinRef = PinRef.USER) -> None: ...

    def logout(self) -> None: ...

    # keys and certificates
    def list_containers(self) -> list[ContainerInfo]: ...

    def generate_key(
        self,
        container: str = DEFAULT_CONTAINER,
        algorithm: Algorithm = Algorithm.SM2,
        usage: ContainerUsage = ContainerUsage.TRANSACTION,
        *,
        replace: bool = False,
    ) -> PublicKeyInfo:
        """Generate a key pair on the token.  A container that holds a key is refused
        (``KeyAlreadyExists``) unless ``replace=True`` with the admin (SO) PIN verified."""
        ...

    def attest_key(self, container: str = DEFAULT_CONTAINER) -> KeyAttestation:
        """The token's X.509 attestation of the container's key (origin, usage, enforced
        confirmation), signed by its attestation key; see
        :func:`ebank_auth.usbkey.key_attestation.verify_key_attestation`."""
        ...

    def public_key(self, container: str = DEFAULT_CONTAINER) -> PublicKeyInfo: ...

    def import_certificate(
        self, certificate: bytes, container: str = DEFAULT_CONTAINER
    ) -> None: ...

    def export_certificate(self, container: str = DEFAULT_CONTAINER) -> bytes: ...

    # signing
    def sign_digest(self, digest: bytes, container: str = DEFAULT_LOGIN_CONTAINER) -> bytes:
        """SM2-sign a 32-byte ``e = SM3(Z || M)`` with a login key; DER signature."""
        ...

    def sign_message(self, data: bytes, container: str = DEFAULT_LOGIN_CONTAINER) -> bytes:
        """SM2-sign the whole message ``data`` (default ID) with a login key; DER signature."""
        ...

    def confirm_and_sign(
        self,
        tx: Transaction,
        container: str = DEFAULT_CONTAINER,
        lang: str = "zh",
        *,
        verify_with: TokenPublicKey | None = None,
    ) -> SignResult:
        """Show ``tx`` on the token, wait for the button, sign its canonical bytes."""
        ...

    # lifecycle
    def close(self) -> None: ...

    def __enter__(self) -> Token: ...

    def __exit__(self, *exc: object) -> None: ...
