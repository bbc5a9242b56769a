"""Transaction integrity (AU-8, UK-10): unique transaction ids, confirmation
signatures over the canonical transaction, and the customer ↔ certificate /
token binding.

* :class:`ReplayCache` — every transaction id is accepted once
  (``put_if_absent`` in the store); transactions outside the freshness window
  are refused, so ids need only be remembered for that window.
* :class:`CredentialRegistry` — which certificates / tokens belong to which
  customer, one-to-one: a certificate or token serial bound to one customer
  cannot be bound to another (UK-10).  A USB Key key is enrolled with its per-key
  attestation (:meth:`CredentialRegistry.enrol_token_key`): only a key the token
  attests as a transaction key with display+button confirmation enforced is accepted,
  so a login key (which signs any digest) never passes for a transaction key.
* :class:`ConfirmationVerifier` — checks a USB Key or phone shield SM2 or RSA
  signature over ``tx.encode()`` (payer, payee, amount, date-time and the rest of
  the canonical transaction) with :func:`ebank_auth.confirmation.verify_confirmation`,
  that the signing certificate belongs to this customer, and registers the id
  against replay.

Signer keys come through a :class:`SignerKeySource`: :class:`CertificateSource`
validates an X.509 certificate chain (digitalSignature key usage, validity,
CRLs — PS-2); :class:`RawPublicKeySource` accepts a bare SM2 or RSA public key
for tokens enrolled by key rather than certificate.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from ebank_auth.audit.log import AuditLog
from ebank_auth.confirmation import ConfirmationKey, verify_confirmation
from ebank_auth.crypto import rsa, sm2, sm3, x509
from ebank_auth.errors import (
    AccessDenied,
    CertificateError,
    ConfigurationError,
    DuplicateTransaction,
    EbankAuthError,
    EncodingError,
    InvalidKey,
    PolicyError,
    UnsupportedAlgorithm,
)
from ebank_auth.store.base import Store
from ebank_auth.store.keys import check_namespace, store_key
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.attestation import TrustConfig
from ebank_auth.usbkey.key_attestation import verify_key_attestation

__all__ = [
    "CertificateSource",
    "ConfirmationResult",
    "ConfirmationVerifier",
    "Credential",
    "CredentialRegistry",
    "RawPublicKeySource",
    "ReplayCache",
    "SignerKeySource",
    "SignerKind",
]


# ---------------------------------------------------------------------------- replay


class ReplayCache:
    """Refuses a transaction id seen before, and transactions outside
    ``[timestamp - max_skew, timestamp + max_age]`` of the store's clock."""

    def __init__(
        self,
        store: Store,
        *,
        max_age: float | None = 600.0,
        max_skew: float = 120.0,
        namespace: str = "txid",
    ) -> None:
        if max_age is not None and max_age <= 0:
            raise ConfigurationError("max_age must be positive seconds (or None: keep ids forever)")
        if max_skew < 0:
            raise ConfigurationError("max_skew must not be negative")
        self.store = store
        self.max_age = max_age
        self.max_skew = max_skew
        self.namespace = check_namespace(namespace)

    def _key(self, tx_id: str) -> str:
        return store_key(self.namespace, tx_id)

    def check_fresh(self, tx: Transaction) -> None:
        """Raise :class:`AccessDenied` if ``tx`` is too old or dated in the future."""
        if self.max_age is None:
            return
        now = self.store.clock()
        t = tx.timestamp.timestamp()
        if now > t + self.max_age:
            raise AccessDenied(
                f"transaction {tx.tx_id} is older than {int(self.max_age)} s: create a new one"
            )
        if now < t - self.max_skew:
            raise AccessDenied(
                f"transaction {tx.tx_id} is dated in the future: check the client's clock"
            )

    def register(self, tx: Transaction) -> None:
        """Accept ``tx`` once; a second time raises :class:`DuplicateTransaction`."""
        self.check_fresh(tx)
        ttl = None if self.max_age is None else self.max_age + self.max_skew + 60.0
        if not self.store.put_if_absent(self._key(tx.tx_id), tx.digest(), ttl=ttl):
            raise DuplicateTransaction(
                f"transaction {tx.tx_id} was already submitted and is refused as a duplicate"
            )

    def seen(self, tx_id: str) -> bool:
        return self.store.get(self._key(tx_id)) is not None


# ---------------------------------------------------------------------------- credentials


class SignerKind(str, Enum):
    USBKEY = "usbkey"  # USB Key / V盾
    PHONE_SHIELD = "phone_shield"  # 手机盾: key in the phone's TEE/SE


@dataclass(frozen=True)
class Credential:
    """One signing credential bound to a customer."""

    customer: str
    kind: SignerKind
    serial: str  # token serial number / phone-shield id
    fingerprint: str  # SM3 (hex) of the certificate DER, or of the SPKI for bare keys


class CredentialRegistry:
    """Customer ↔ certificate ↔ token, one-to-one (UK-10), kept in a :class:`Store`.

    USB Key credentials are enrolled with :meth:`enrol_token_key` (the token's key
    attestation is checked).  :meth:`bind` takes phone-shield credentials; it refuses USB Key
    ones unless ``allow_unattested_tokens=True`` — only for tokens without per-key
    attestation, accepting that the bank then cannot tell a login key (signs any digest,
    no display) from a transaction key.
    """

    def __init__(
        self, store: Store, *, namespace: str = "cred", allow_unattested_tokens: bool = False
    ) -> None:
        self.store = store
        self.namespace = check_namespace(namespace)
        self.allow_unattested_tokens = allow_unattested_tokens

    def _owner_key(self, fingerprint: str) -> str:
        return store_key(self.namespace, "fp", fingerprint)

    def _serial_key(self, kind: SignerKind, serial: str) -> str:
        return store_key(self.namespace, "serial", kind.value, serial)

    def bind(
        self, customer: str, kind: SignerKind | str, serial: str, fingerprint: str
    ) -> Credential:
        """Bind a credential; refused if the certificate or token serial already
        belongs to another customer, and for a USB Key without its key attestation (use
        :meth:`enrol_token_key`) unless the registry allows unattested tokens."""
        kind = SignerKind(kind)
        if kind is SignerKind.USBKEY and not self.allow_unattested_tokens:
            raise AccessDenied(
                "a USB Key transaction key is registered only with the token's key attestation, "
                "so a login key cannot pass for it: use enrol_token_key(customer, signer, "
                "attestation, trust) with the output of 'ebank-auth token key attest'"
            )
        return self._bind(customer, kind, serial, fingerprint)

    def enrol_token_key(
        self,
        customer: str,
        signer: bytes,
        attestation: bytes | Sequence[bytes | x509.Certificate],
        trust: TrustConfig,
        *,
        source: SignerKeySource | None = None,
    ) -> Credential:
        """Bind a USB Key transaction key to ``customer`` after checking its key attestation.

        ``attestation`` is the token's key attestation (PEM chain from
        :meth:`ebank_auth.usbkey.Token.attest_key` / ``ebank-auth token key attest``);
        ``trust`` holds the token manufacturer root(s); ``signer`` is what the customer's
        confirmations will carry (public key, or certificate with ``source`` a
        :class:`CertificateSource`) and must hold the attested key.  Raises
        :class:`~ebank_auth.errors.TokenNotGenuine` when the attestation does not verify,
        :class:`AccessDenied` when it is not a transaction key generated on the token, not
        exportable, with display+button confirmation enforced, or the signer holds another
        key.  Nothing is stored unless every check passes."""
        attested = verify_key_attestation(attestation, trust)
        if not attested.is_transaction_key:
            raise AccessDenied(
                f"token {attested.token_serial} attests the key in container "
                f"{attested.container!r} as usage={attested.usage.name.lower()}, "
                f"confirmation={attested.confirmation.name.lower()}, "
                f"origin={attested.origin.name.lower()}, exportable={attested.exportable}: "
                "only a transaction key generated on the token, not exportable, with display "
                "and button confirmation enforced may confirm transactions (UK-6, UK-7); "
                "generate one with 'ebank-auth token key generate --usage transaction'"
            )
        key, fingerprint = (source or RawPublicKeySource()).resolve(signer)
        attested_key, _ = RawPublicKeySource().resolve(attested.public_key_der)
        if key.to_der() != attested_key.to_der():
            raise AccessDenied(
                "the signer's key is not the key the token attested: send the public key or "
                "certificate of the attested container"
            )
        return self._bind(customer, SignerKind.USBKEY, attested.token_serial, fingerprint)

    def _bind(self, customer: str, kind: SignerKind, serial: str, fingerprint: str) -> Credential:
        if not customer or not serial or not fingerprint:
            raise PolicyError("customer, serial and fingerprint must all be given")
        fingerprint = fingerprint.lower()
        cred = Credential(customer, kind, serial, fingerprint)
        value = json.dumps([customer, kind.value, serial, fingerprint]).encode()
        for key in (self._owner_key(fingerprint), self._serial_key(kind, serial)):
            if not self.store.put_if_absent(key, value):
                existing = self.store.get(key)
                if existing != value:
                    raise AccessDenied(
                        "this certificate or token is already bound to another customer "
                        "or another token: unbind it first (UK-10)"
                    )
        return cred

    def _decode(self, raw: bytes | None) -> Credential | None:
        if raw is None:
            return None
        customer, kind, serial, fingerprint = json.loads(raw)
        return Credential(customer, SignerKind(kind), serial, fingerprint)

    def by_fingerprint(self, fingerprint: str) -> Credential | None:
        return self._decode(self.store.get(self._owner_key(fingerprint.lower())))

    def by_serial(self, kind: SignerKind | str, serial: str) -> Credential | None:
        return self._decode(self.store.get(self._serial_key(SignerKind(kind), serial)))

    def unbind(self, fingerprint: str) -> None:
        cred = self.by_fingerprint(fingerprint)
        if cred is None:
            return
        self.store.delete(self._serial_key(cred.kind, cred.serial))
        self.store.delete(self._owner_key(cred.fingerprint))


# ---------------------------------------------------------------------------- keys


class SignerKeySource(Protocol):
    """Turns the signer material sent with a confirmation (certificate or key)
    into a checked SM2 or RSA public key and its fingerprint."""

    def resolve(self, signer: bytes) -> tuple[ConfirmationKey, str]: ...


class RawPublicKeySource:
    """A bare public key: SM2 (SubjectPublicKeyInfo PEM/DER, or a 33/65-byte point) or
    RSA of at least 2048 bits (SubjectPublicKeyInfo PEM/DER); the fingerprint is SM3
    of the SPKI DER."""

    def resolve(self, signer: bytes) -> tuple[ConfirmationKey, str]:
        data = bytes(signer)
        key: ConfirmationKey | None = None
        try:
            if len(data) in (33, 65) and data[0] in (2, 3, 4):
                key = sm2.validate_public_key(sm2.public_key_from_bytes(data))
            elif data.startswith(b"-----BEGIN"):
                key = sm2.validate_public_key(sm2.load_pem_public_key(data))
            else:
                key = sm2.validate_public_key(sm2.load_der_public_key(data))
        except (InvalidKey, EncodingError, UnsupportedAlgorithm):
            try:
                if data.startswith(b"-----BEGIN"):
                    key = rsa.load_pem_public_key(data)
                else:
                    key = rsa.load_der_public_key(data)
            except (InvalidKey, EncodingError, UnsupportedAlgorithm):
                key = None
        if key is None:
            raise InvalidKey(
                "the signer's public key is neither a valid SM2 key nor an RSA key of at "
                f"least {rsa.MIN_BITS} bits: send the token's public key as "
                "SubjectPublicKeyInfo (PEM or DER)"
            )
        return key, sm3.digest(key.to_der()).hex()


class CertificateSource:
    """Validates the signer certificate up to the bank's trust roots (validity,
    chain signatures, CRLs, digitalSignature key usage — PS-2)."""

    def __init__(
        self,
        trust_roots: Iterable[x509.Certificate | bytes],
        intermediates: Iterable[x509.Certificate | bytes] = (),
        crls: Iterable[Any] = (),
        *,
        require_crl: bool = False,
        at: dt.datetime | None = None,
    ) -> None:
        self.trust_roots = list(trust_roots)
        if not self.trust_roots:
            raise ConfigurationError("at least one trust root certificate is needed")
        self.intermediates = list(intermediates)
        self.crls = list(crls)
        self.require_crl = require_crl
        self.at = at

    def resolve(self, signer: bytes) -> tuple[ConfirmationKey, str]:
        try:
            cert = x509.load_certificate(bytes(signer))
        except EncodingError as exc:
            raise CertificateError(f"the signer certificate is malformed: {exc.message}") from None
        x509.verify_chain(
            cert,
            self.intermediates,
            self.trust_roots,
            at=self.at,
            crls=self.crls,
            require_crl=self.require_crl,
            required_key_usage=x509.KeyUsage.DIGITAL_SIGNATURE,
        )
        key = cert.public_key
        if not isinstance(key, (sm2.SM2PublicKey, rsa.RSAPublicKey)):
            raise CertificateError("the signer certificate must hold an SM2 or RSA key")
        return key, cert.fingerprint("sm3")


# ---------------------------------------------------------------------------- verifier


@dataclass(frozen=True)
class ConfirmationResult:
    """A verified, first-time confirmation."""

    tx: Transaction
    digest: bytes  # SM3 of the canonical transaction
    credential: Credential


class ConfirmationVerifier:
    """Checks a customer's confirmation signature over a transaction (AU-8)."""

    def __init__(
        self,
        registry: CredentialRegistry,
        replay: ReplayCache,
        source: SignerKeySource,
        *,
        audit: AuditLog | None = None,
    ) -> None:
        self.registry = registry
        self.replay = replay
        self.source = source
        self.audit = audit

    def verify(
        self,
        tx: Transaction,
        signature: bytes,
        signer: bytes,
        *,
        customer: str,
        kind: SignerKind | str | None = None,
    ) -> ConfirmationResult:
        """Verify ``signature`` over ``tx.encode()`` by ``signer`` (certificate or
        key) with :func:`~ebank_auth.confirmation.verify_confirmation` (SM2 with the
        default ID, or RSA PKCS#1 v1.5 with SHA-256 or SM3).  Raises
        :class:`CertificateError` / :class:`InvalidKey` for a bad signer,
        :class:`AccessDenied` if it is not this customer's,
        :class:`InvalidSignature` if the data differ, :class:`DuplicateTransaction`
        on replay.  Nothing is recorded unless every check passes."""
        try:
            key, fingerprint = self.source.resolve(signer)
            cred = self.registry.by_fingerprint(fingerprint)
            if cred is None or cred.customer != customer:
                raise AccessDenied(
                    "the signing certificate does not belong to this customer (UK-10)"
                )
            if kind is not None and cred.kind is not SignerKind(kind):
                raise AccessDenied(f"the credential is a {cred.kind.value}, not a {kind}")
            verify_confirmation(key, signature, tx)
            self.replay.register(tx)
        except EbankAuthError as exc:
            self._audit(tx, customer, "deny", {"error": type(exc).__name__})
            raise
        self._audit(tx, customer, "ok", {"credential": cred.kind.value, "serial": cred.serial})
        return ConfirmationResult(tx, tx.digest(), cred)

    def _audit(self, tx: Transaction, customer: str, outcome: str, details: dict[str, str]) -> None:
        if self.audit is not None:
            self.audit.record(
                "transaction_confirmation", user=customer, outcome=outcome, tx=tx, details=details
            )
