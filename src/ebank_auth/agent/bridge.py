"""The agent's token operations: one at a time, each on a freshly opened, checked token.

:class:`TokenBridge` is what the HTTP layer calls once a request is parsed and authorised.  Every
operation takes the bridge's lock (a second one waits at most ``busy_timeout`` seconds, then gets
:class:`~ebank_auth.errors.ReaderBusy`), opens the token with
:func:`ebank_auth.usbkey.open_token` (authenticity check, secure channel), picks the token by
serial when one is asked for, does its work and closes the token again.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ebank_auth.errors import (
    CardNotPresent,
    EncodingError,
    KeyAlreadyExists,
    PcscUnavailable,
    ReaderBusy,
    ReaderNotFound,
    TokenError,
    TokenNotGenuine,
)
from ebank_auth.usbkey import (
    DEFAULT_CONTAINER,
    DEFAULT_LOGIN_CONTAINER,
    Algorithm,
    ContainerUsage,
    SignResult,
    Token,
    TrustConfig,
    list_devices,
    open_token,
)
from ebank_auth.usbkey.transport.base import DeviceKind

from .protocol import AuthenticateRequest, CertificateRequest, EnrolRequest, SignRequest

__all__ = [
    "BUSY_TIMEOUT",
    "Authenticated",
    "Enrolled",
    "NoLoginKey",
    "TokenBridge",
    "TokenSummary",
]

logger = logging.getLogger("ebank_auth.agent.bridge")

#: How long a request waits for the token while another request uses it (seconds).
BUSY_TIMEOUT = 2.0


class NoLoginKey(TokenError):
    """The token's login container holds no SM2 login key."""

    default_message = (
        "the token has no SM2 login key in its login container: the bank must enrol one first"
    )


@dataclass(frozen=True)
class TokenSummary:
    """One token as ``GET /v1/tokens`` lists it."""

    reader: str
    serial: str
    label: str
    genuine: bool


@dataclass(frozen=True)
class Enrolled:
    serial: str
    algorithm: Algorithm
    public_key_der: bytes
    attestation_pem: str


@dataclass(frozen=True)
class Authenticated:
    serial: str
    signature: bytes
    public_key_der: bytes


class TokenBridge:
    """Token operations for the agent (see the module docstring).

    ``reader``: use only this PC/SC reader (name, index or unique part); ``None``: every
    reader holding a card.  ``trust``: what tokens must chain to (resolved once, at start)."""

    def __init__(
        self, trust: TrustConfig, reader: str | None = None, *, busy_timeout: float = BUSY_TIMEOUT
    ) -> None:
        self.trust = trust
        self.reader = reader
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        if not self._lock.acquire(timeout=self.busy_timeout):
            raise ReaderBusy(
                "the token is in use by another request (a customer may be confirming a "
                "transaction on it): try again when that is done"
            )
        try:
            yield
        finally:
            self._lock.release()

    def _readers(self) -> list[str]:
        """Readers to look in: the configured one, else every PC/SC reader with a card."""
        if self.reader is not None:
            return [self.reader]
        found = list_devices(hid=False)
        if "pcsc" in found.unavailable and not found.devices:
            raise PcscUnavailable(found.unavailable["pcsc"])
        readers = [d for d in found.devices if d.kind is DeviceKind.PCSC]
        if not readers:
            raise ReaderNotFound()
        with_card = [d.name for d in readers if d.card_present]
        if not with_card:
            raise CardNotPresent()
        return with_card

    @contextmanager
    def _token(self, serial: str | None) -> Iterator[Token]:
        """The (first, or the ``serial``) token, opened and checked; closed afterwards."""
        not_genuine: TokenNotGenuine | None = None
        for reader in self._readers():
            try:
                token = open_token(reader, trust=self.trust)
            except TokenNotGenuine as exc:
                if serial is None:
                    raise
                not_genuine = exc  # maybe another reader holds the token asked for
                continue
            except CardNotPresent:
                continue  # removed meanwhile: look in the next reader
            try:
                if serial is not None and token.device_info().serial != serial:
                    continue
                yield token
                return
            finally:
                token.close()
        if not_genuine is not None:
            raise not_genuine
        raise CardNotPresent(
            f"no token with serial {serial} is inserted: insert it (or leave serial out)"
            if serial is not None
            else None
        )

    # ------------------------------------------------------------------ operations
    def list_tokens(self) -> list[TokenSummary]:
        """Every token the agent sees, genuine or not (nothing is signed or changed)."""
        check_only = dataclasses.replace(self.trust, require_genuine=False)
        out: list[TokenSummary] = []
        with self._exclusive():
            missing: CardNotPresent | None = None
            for reader in self._readers():
                try:
                    token = open_token(reader, trust=check_only)
                except CardNotPresent as exc:
                    missing = exc  # removed meanwhile (or the configured reader is empty)
                    continue
                with token:
                    info = token.device_info()
                    report = token.attestation
                    genuine = report is not None and report.genuine and self.trust.require_genuine
                    out.append(TokenSummary(reader, info.serial, info.label, genuine))
            if not out and missing is not None:
                raise missing
        return out

    def enrol(self, req: EnrolRequest) -> Enrolled:
        """Make sure the default container holds a transaction key (generated on the token if
        the container is empty; an existing key is never replaced) and attest it."""
        with self._exclusive(), self._token(req.serial) as token:
            token.verify_pin(req.pin)
            existing = {c.name: c for c in token.list_containers()}.get(DEFAULT_CONTAINER)
            if existing is None:
                key = token.generate_key(
                    DEFAULT_CONTAINER, Algorithm.SM2, ContainerUsage.TRANSACTION
                )
                logger.info("generated a transaction key on token %s", token.device_info().serial)
            elif existing.usage is not ContainerUsage.TRANSACTION:
                raise KeyAlreadyExists(
                    f"the token's container {DEFAULT_CONTAINER!r} holds a "
                    f"{existing.usage.name.lower()} key, not a transaction key, and the agent never "
                    "replaces a key: have the bank re-issue the token"
                )
            else:
                key = token.public_key(DEFAULT_CONTAINER)
            attestation = token.attest_key(DEFAULT_CONTAINER)
            return Enrolled(
                token.device_info().serial,
                key.algorithm,
                key.public_key_der,
                attestation.to_pem().decode("ascii"),
            )

    def import_certificate(self, req: CertificateRequest) -> str:
        """Store the bank's certificate for the default container's key; returns the serial."""
        from ebank_auth.crypto import x509

        with self._exclusive(), self._token(req.serial) as token:
            token.verify_pin(req.pin)
            key = token.public_key(DEFAULT_CONTAINER)
            if x509.load_certificate(req.certificate_der).spki_der != key.public_key_der:
                raise EncodingError(
                    "the certificate is not for this token's transaction key: send the "
                    "certificate issued for the key that enrol returned"
                )
            token.import_certificate(req.certificate_der, DEFAULT_CONTAINER)
            return token.device_info().serial

    def sign(self, req: SignRequest) -> SignResult:
        """Confirm-and-sign: the token shows the transaction and waits for the customer."""
        with self._exclusive(), self._token(req.serial) as token:
            token.verify_pin(req.pin)
            if not token.can_confirm:
                raise TokenError(
                    "this token has no display and button, so it cannot confirm a transaction: "
                    "use a token with a screen (V盾)"
                )
            return token.confirm_and_sign(req.transaction, DEFAULT_CONTAINER, req.lang)

    def authenticate(self, req: AuthenticateRequest, message: bytes) -> Authenticated:
        """Sign ``message`` (built by the HTTP layer with the request's origin) with the login
        key; :class:`NoLoginKey` when the login container holds no SM2 login key."""
        with self._exclusive(), self._token(req.serial) as token:
            info = {c.name: c for c in token.list_containers()}.get(DEFAULT_LOGIN_CONTAINER)
            if (
                info is None
                or info.usage is not ContainerUsage.LOGIN
                or info.algorithm is not Algorithm.SM2
            ):
                raise NoLoginKey()
            token.verify_pin(req.pin)
            key = token.public_key(DEFAULT_LOGIN_CONTAINER)
            signature = token.sign_message(message, DEFAULT_LOGIN_CONTAINER)
            return Authenticated(token.device_info().serial, signature, key.public_key_der)
