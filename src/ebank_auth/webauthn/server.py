"""Passkey registration and sign-in on python-fido2's :class:`fido2.server.Fido2Server`.

Each ceremony has two halves, as a web app needs them:

* ``*_begin`` returns a :class:`Ceremony`: ``options`` (plain JSON for
  ``PublicKeyCredential.parseCreationOptionsFromJSON`` / ``parseRequestOptionsFromJSON``)
  and ``handle``, an opaque random token naming the state kept in the :class:`Store`
  (challenge, customer, user-verification level) with a time-to-live;
* ``*_complete`` takes that handle and the JSON the browser posted
  (``credential.toJSON()``).  It *consumes* the state first (``Store.consume``, atomic),
  so a handle works once: a replayed or concurrent second complete gets
  :class:`~ebank_auth.errors.CeremonyInvalid` whatever the first one's outcome.

The response is checked step by step with a typed reason for each refusal (type,
exact origin, challenge, RP ID hash, user presence, user verification, algorithm,
registered credential and user handle, backup flags), then python-fido2 verifies it
(and the signature / the attestation), then the registry takes the signature counter
with a compare-and-set.  Every refusal is :class:`~ebank_auth.errors.PasskeyRejected`
(or a subclass) and changes nothing but the consumed state.

A passkey is a *factor*, not a login: :attr:`AuthenticationResult.factor` is
``passkey`` or ``passkey_uv`` for the policy engine.  It never touches the password
lockout (:class:`~ebank_auth.policy.LoginLockout`): a failed passkey is not a wrong
password, and a good passkey does not clear the password failures; given the lockout,
a sign-in of a locked customer is refused with :class:`~ebank_auth.errors.AccountLocked`.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from hashlib import sha256
from hmac import compare_digest
from typing import Any

from cryptography import x509
from fido2 import cbor
from fido2.attestation.base import (
    AttestationResult,
    AttestationVerifier,
    InvalidAttestation,
)
from fido2.attestation.packed import PackedAttestation
from fido2.cose import CoseKey
from fido2.mds3 import MdsAttestationVerifier, parse_blob
from fido2.rpid import verify_rp_id
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestationConveyancePreference,
    AttestedCredentialData,
    AuthenticationResponse,
    AuthenticatorAttachment,
    AuthenticatorData,
    CollectedClientData,
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialType,
    PublicKeyCredentialUserEntity,
    RegistrationResponse,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ebank_auth.audit.log import AuditLog
from ebank_auth.errors import (
    AccountLocked,
    AttestationRejected,
    CeremonyInvalid,
    ConfigurationError,
    ConflictError,
    PasskeyCloneSuspected,
    PasskeyRejected,
    StoreIntegrityError,
)
from ebank_auth.policy.factors import Factor
from ebank_auth.policy.lockout import LoginLockout
from ebank_auth.store.base import Store
from ebank_auth.store.keys import check_namespace, store_key
from ebank_auth.webauthn.config import (
    AttestationMode,
    AttestationPolicy,
    RejectReason,
    RelyingParty,
    ResidentKey,
    UserVerification,
)
from ebank_auth.webauthn.registry import PasskeyCredential, PasskeyRegistry, b64url, from_b64url

__all__ = [
    "ALGORITHMS",
    "AuthenticationResult",
    "Ceremony",
    "CloneEvent",
    "PasskeyServer",
]

log = logging.getLogger(__name__)

#: COSE algorithms offered and accepted: ES256, EdDSA, RS256 (WebAuthn's recommended set)
ALGORITHMS: tuple[int, ...] = (-7, -8, -257)
#: transports a browser may report (WebAuthn AuthenticatorTransport); others are dropped
_TRANSPORTS = frozenset({"usb", "nfc", "ble", "smart-card", "hybrid", "internal"})
_MAX_CREDENTIAL_ID = 1023  # WebAuthn: credential ids are at most 1023 bytes
_REGISTER = "register"
_AUTHENTICATE = "authenticate"


@dataclass(frozen=True)
class Ceremony:
    """The first half of a ceremony: send ``options`` to the browser, keep ``handle``
    (e.g. in the server-side session) for the complete call."""

    kind: str  # "register" or "authenticate"
    handle: str  # opaque, unguessable, valid once until expires_at
    options: dict[str, Any]  # PublicKeyCredential{Creation,Request}OptionsJSON
    expires_at: float


@dataclass(frozen=True)
class AuthenticationResult:
    """A verified sign-in."""

    user: str
    credential: PasskeyCredential  # as stored after this sign-in
    user_verified: bool

    @property
    def factor(self) -> Factor:
        """``passkey_uv`` when the authenticator verified the customer, else ``passkey``."""
        return Factor.PASSKEY_UV if self.user_verified else Factor.PASSKEY

    @property
    def factors(self) -> frozenset[Factor]:
        """The factor as a set, to add to ``AuthContext.presented``."""
        return frozenset({self.factor})


@dataclass(frozen=True)
class CloneEvent:
    """A signature-counter regression (given to ``on_clone``)."""

    user: str
    credential_id: bytes
    stored_count: int
    presented_count: int
    reason: RejectReason  # counter_regression (first detection) or credential_blocked


class _RootsVerifier(AttestationVerifier):
    """``packed`` attestation only, chained to one of the configured roots (matched by the
    issuer name of the last certificate, then checked by signature in python-fido2)."""

    def __init__(self, roots: tuple[bytes, ...]) -> None:
        super().__init__([PackedAttestation()])
        self._roots = [(x509.load_der_x509_certificate(r).subject, r) for r in roots]

    def ca_lookup(
        self, attestation_result: AttestationResult, auth_data: AuthenticatorData
    ) -> bytes | None:
        if not attestation_result.trust_path:
            return None  # self attestation proves nothing about the authenticator
        issuer = x509.load_der_x509_certificate(attestation_result.trust_path[-1]).issuer
        for subject, der in self._roots:
            if subject == issuer:
                return der
        return None


def _attestation_verifier(policy: AttestationPolicy) -> Callable[..., None] | None:
    if policy.mode is AttestationMode.NONE:
        return None
    verifiers: list[AttestationVerifier] = []
    if policy.trusted_roots:
        verifiers.append(_RootsVerifier(policy.trusted_roots))
    if policy.metadata_blob is not None:
        try:
            payload = parse_blob(policy.metadata_blob, policy.metadata_root)
        except Exception as exc:  # any parse or signature failure: refuse the configuration
            raise ConfigurationError(
                f"the FIDO metadata blob does not verify against the given root ({exc!r}): "
                "download it again or check the root certificate"
            ) from None
        verifiers.append(MdsAttestationVerifier(payload, attestation_types=[PackedAttestation()]))

    def verify(attestation_object: Any, client_data_hash: bytes) -> None:
        errors: list[str] = []
        for v in verifiers:
            try:
                v.verify_attestation(attestation_object, client_data_hash)
                return
            except InvalidAttestation as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        raise InvalidAttestation("; ".join(errors))

    return verify


def _cose(data: bytes) -> CoseKey:
    """The stored COSE key (CBOR map) as python-fido2's key object."""
    decoded = cbor.decode(data)
    if not isinstance(decoded, Mapping):
        raise StoreIntegrityError("a stored passkey public key is not a COSE key: restore it")
    return CoseKey.parse(decoded)


def _reject(reason: RejectReason, message: str) -> PasskeyRejected:
    return PasskeyRejected(message, reason)


class PasskeyServer:
    """WebAuthn registration and sign-in for one relying party, state in a :class:`Store`.

    ``user_verification``: the default level asked for (a call may ask for more;
    REQUIRED is then enforced on the response).  ``timeout``: seconds a ceremony stays
    valid.  ``audit``: records ``passkey_registered``, ``passkey_login`` (ok / deny with
    the reason) and ``passkey_clone_suspected``.  ``on_clone``: called with a
    :class:`CloneEvent` when a counter regression is detected (e.g. to alert the fraud
    team); its failure is logged and never hides the refusal.  ``lockout``: refuse the
    sign-in of a customer whose password login is locked (never counted, never reset).
    """

    def __init__(
        self,
        store: Store,
        rp: RelyingParty,
        *,
        attestation: AttestationPolicy | None = None,
        user_verification: UserVerification = UserVerification.PREFERRED,
        timeout: float = 300.0,
        audit: AuditLog | None = None,
        on_clone: Callable[[CloneEvent], None] | None = None,
        lockout: LoginLockout | None = None,
        namespace: str = "webauthn",
    ) -> None:
        if not isinstance(rp, RelyingParty):
            raise ConfigurationError("rp must be a RelyingParty(id=, name=, origins=)")
        for origin in rp.origins:
            if not verify_rp_id(rp.id, origin):
                raise ConfigurationError(
                    f"RP ID {rp.id!r} cannot be used from {origin!r} (a public suffix such as "
                    "'com' or 'github.io' is never an RP ID): use the bank's own domain"
                )
        if not 30 <= timeout <= 3600:
            raise ConfigurationError("the ceremony timeout must be 30 to 3600 seconds")
        self.store = store
        self.rp = rp
        self.attestation = attestation or AttestationPolicy.none()
        self.user_verification = UserVerification(user_verification)
        self.timeout = float(timeout)
        self.audit = audit
        self.on_clone = on_clone
        self.lockout = lockout
        self.namespace = check_namespace(namespace)
        self.registry = PasskeyRegistry(store, namespace=namespace)
        self._rp_id_hash = sha256(rp.id.encode("ascii")).digest()
        trusted = self.attestation.mode is AttestationMode.TRUSTED
        self._fido = Fido2Server(
            PublicKeyCredentialRpEntity(name=rp.name, id=rp.id),
            attestation=(
                AttestationConveyancePreference.DIRECT
                if trusted
                else AttestationConveyancePreference.NONE
            ),
            verify_origin=rp.origin_allowed,
            verify_attestation=_attestation_verifier(self.attestation),
        )
        self._fido.timeout = int(self.timeout * 1000)  # type: ignore[assignment]  # ms; fido2 declares None
        self._fido.allowed_algorithms = [
            p for p in self._fido.allowed_algorithms if p.alg in ALGORITHMS
        ]

    # ------------------------------------------------------------------ state
    def _state_key(self, handle: str) -> str:
        return store_key(self.namespace, "ceremony", handle)

    def _save(
        self, kind: str, state: Mapping[str, Any], user: str | None, extra: dict[str, Any]
    ) -> tuple[str, float]:
        handle = secrets.token_urlsafe(32)
        body = {
            "v": 1,
            "kind": kind,
            "rp": self.rp.id,
            "user": user,
            "challenge": state["challenge"],
            "uv": None
            if state["user_verification"] is None
            else str(state["user_verification"].value),
            **extra,
        }
        data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        if not self.store.put_if_absent(self._state_key(handle), data, ttl=self.timeout):
            raise ConflictError("a ceremony handle collided: start again")
        return handle, self.store.clock() + self.timeout

    def _take(self, handle: object, kind: str) -> dict[str, Any]:
        if not isinstance(handle, str) or not 16 <= len(handle) <= 128:
            raise CeremonyInvalid()
        raw = self.store.consume(self._state_key(handle))  # once, whatever happens next
        if raw is None:
            raise CeremonyInvalid()
        state: dict[str, Any] = json.loads(raw.decode("utf-8"))
        if state.get("kind") != kind or state.get("rp") != self.rp.id:
            raise CeremonyInvalid(
                f"this handle belongs to another kind of request, not a {kind}: start again"
            )
        return state

    @staticmethod
    def _fido_state(state: Mapping[str, Any]) -> dict[str, Any]:
        uv = state["uv"]
        return {
            "challenge": state["challenge"],
            "user_verification": None if uv is None else UserVerificationRequirement(uv),
        }

    @staticmethod
    def _json(obj: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(json.dumps(dict(obj)))
        return out

    def _level(self, asked: UserVerification | None) -> UserVerification:
        order = [
            UserVerification.DISCOURAGED,
            UserVerification.PREFERRED,
            UserVerification.REQUIRED,
        ]
        level = self.user_verification if asked is None else UserVerification(asked)
        return max(level, self.user_verification, key=order.index)

    # ------------------------------------------------------------------ checks
    def _check_client_data(
        self, client_data: CollectedClientData, expected_type: str, state: Mapping[str, Any]
    ) -> None:
        if client_data.type != expected_type:
            raise _reject(RejectReason.TYPE, f"clientData.type is not {expected_type}")
        if not self.rp.origin_allowed(client_data.origin):
            raise _reject(
                RejectReason.ORIGIN,
                f"the response comes from {client_data.origin!r}, which is not an allowed "
                "origin of this bank",
            )
        if client_data.cross_origin is not False and client_data.cross_origin is not None:
            raise _reject(RejectReason.ORIGIN, "the response comes from a cross-origin frame")
        expected = state["challenge"]
        if not compare_digest(b64url(client_data.challenge).encode(), str(expected).encode()):
            raise _reject(RejectReason.CHALLENGE, "the response answers another challenge")

    def _check_auth_data(self, auth_data: AuthenticatorData, state: Mapping[str, Any]) -> None:
        if not compare_digest(auth_data.rp_id_hash, self._rp_id_hash):
            raise _reject(
                RejectReason.RP_ID, f"the authenticator signed for another RP ID, not {self.rp.id}"
            )
        if not auth_data.is_user_present():
            raise _reject(RejectReason.USER_PRESENCE, "the authenticator did not see the user")
        if state["uv"] == UserVerification.REQUIRED.value and not auth_data.is_user_verified():
            raise _reject(
                RejectReason.USER_VERIFICATION,
                "user verification is required but the authenticator did not verify the "
                "customer: use the device PIN or biometric",
            )
        if auth_data.is_backed_up() and not auth_data.is_backup_eligible():
            raise _reject(RejectReason.BACKUP_FLAGS, "backup state set without eligibility")

    def _record(self, event: str, user: str, outcome: str, details: dict[str, str]) -> None:
        if self.audit is not None:
            self.audit.record(event, user=user, outcome=outcome, details=details)

    # ------------------------------------------------------------------ registration
    def register_begin(
        self,
        user: str,
        *,
        name: str,
        display_name: str | None = None,
        user_verification: UserVerification | None = None,
        resident_key: ResidentKey = ResidentKey.PREFERRED,
        platform: bool | None = None,
    ) -> Ceremony:
        """Start registering a passkey for ``user`` (the bank's customer id).

        ``name`` is what the authenticator shows (e.g. the login name; not secret);
        ``platform``: True for the device's own authenticator, False for a security key,
        None to let the customer choose.  The customer's existing passkeys are excluded.
        """
        if not isinstance(name, str) or not name.strip() or len(name) > 64:
            raise ConfigurationError("the passkey user name must be 1-64 characters")
        handle = self.registry.user_handle(user, create=True)
        assert handle is not None
        exclude = [
            PublicKeyCredentialDescriptor(
                type=PublicKeyCredentialType.PUBLIC_KEY,
                id=c.credential_id,
                transports=list(c.transports) or None,  # type: ignore[arg-type]
            )
            for c in self.registry.credentials(user)
        ]
        level = self._level(user_verification)
        attachment = (
            None
            if platform is None
            else (
                AuthenticatorAttachment.PLATFORM
                if platform
                else AuthenticatorAttachment.CROSS_PLATFORM
            )
        )
        options, state = self._fido.register_begin(
            PublicKeyCredentialUserEntity(name=name, id=handle, display_name=display_name or name),
            credentials=exclude,
            resident_key_requirement=ResidentKeyRequirement(ResidentKey(resident_key).value),
            user_verification=UserVerificationRequirement(level.value),
            authenticator_attachment=attachment,
        )
        token, expires = self._save(_REGISTER, state, user, {"handle": b64url(handle)})
        return Ceremony(_REGISTER, token, self._json(options.public_key), expires)

    def register_complete(self, handle: str, response: Mapping[str, Any]) -> PasskeyCredential:
        """Verify the browser's registration response and store the passkey.

        Raises :class:`CeremonyInvalid` (unknown, expired or used handle),
        :class:`PasskeyRejected` with a :class:`RejectReason`,
        :class:`AttestationRejected` (trusted mode, attestation not trusted) or
        :class:`PasskeyAlreadyRegistered`."""
        state = self._take(handle, _REGISTER)
        user = str(state["user"])
        try:
            cred = self._register(state, response)
        except PasskeyRejected as exc:
            reason = exc.reason.value if isinstance(exc.reason, RejectReason) else "invalid"
            self._record("passkey_registered", user, "deny", {"reason": reason})
            raise
        self._record(
            "passkey_registered",
            user,
            "ok",
            {
                "credential": cred.id,
                "aaguid": cred.aaguid_text,
                "attestation": cred.attestation_format,
            },
        )
        return cred

    @staticmethod
    def _check_outer(response: Mapping[str, Any], what: str) -> None:
        """The unsigned outer fields: ``type`` must be ``public-key`` and ``id`` the base64url of
        ``rawId`` (the credential looked up is ``rawId``; a response naming two credentials, or
        not a public-key credential, is refused rather than trusted either way)."""
        if not isinstance(response, Mapping) or response.get("type") != "public-key":
            raise _reject(RejectReason.MALFORMED, f"not a public-key credential {what}")
        raw_id, outer_id = response.get("rawId"), response.get("id")
        if not isinstance(raw_id, str) or not isinstance(outer_id, str) or raw_id != outer_id:
            raise _reject(
                RejectReason.MALFORMED, f"the {what}'s id and rawId name different credentials"
            )

    def _register(self, state: Mapping[str, Any], response: Mapping[str, Any]) -> PasskeyCredential:
        self._check_outer(response, "registration")
        try:
            reg = RegistrationResponse.from_dict(response)
            client_data = reg.response.client_data
            att = reg.response.attestation_object
            auth_data = att.auth_data
        except Exception as exc:  # anything unparsable is a refusal, never a crash
            raise _reject(
                RejectReason.MALFORMED, f"not a WebAuthn registration response ({exc})"
            ) from None
        self._check_client_data(client_data, CollectedClientData.TYPE.CREATE.value, state)
        self._check_auth_data(auth_data, state)
        cred_data = auth_data.credential_data
        if cred_data is None or not auth_data.is_attested():
            raise _reject(RejectReason.MALFORMED, "the response carries no credential")
        if not compare_digest(cred_data.credential_id, reg.raw_id) or not (
            1 <= len(reg.raw_id) <= _MAX_CREDENTIAL_ID
        ):
            raise _reject(RejectReason.MALFORMED, "the credential id is inconsistent")
        alg = cred_data.public_key.ALGORITHM
        if alg not in ALGORITHMS:
            raise _reject(
                RejectReason.ALGORITHM,
                f"the authenticator made a key with COSE algorithm {alg}; accepted: {ALGORITHMS}",
            )
        try:
            self._fido.register_complete(self._fido_state(state), reg)
        except InvalidAttestation as exc:
            raise AttestationRejected(
                f"the authenticator's attestation ({att.fmt}) is not trusted: {exc}; register "
                "a passkey on an authenticator the bank accepts",
                RejectReason.ATTESTATION,
            ) from None
        except ValueError as exc:  # python-fido2's own checks, after ours
            raise _reject(RejectReason.MALFORMED, f"the response does not verify: {exc}") from None
        raw_transports = response.get("response", {}).get("transports", [])
        transports = tuple(
            t
            for t in (raw_transports if isinstance(raw_transports, list) else [])
            if t in _TRANSPORTS
        )
        return self.registry.add(
            PasskeyCredential(
                user=str(state["user"]),
                user_handle=from_b64url(str(state["handle"])),
                credential_id=bytes(cred_data.credential_id),
                public_key=cbor.encode(dict(cred_data.public_key)),
                algorithm=alg,
                sign_count=auth_data.counter,
                aaguid=bytes(cred_data.aaguid),
                backup_eligible=auth_data.is_backup_eligible(),
                backed_up=auth_data.is_backed_up(),
                transports=transports,
                created_at=self.store.clock(),
                last_used_at=None,
                user_verified=auth_data.is_user_verified(),
                attestation_format=str(att.fmt),
            )
        )

    # ------------------------------------------------------------------ sign-in
    def authenticate_begin(
        self, user: str | None = None, *, user_verification: UserVerification | None = None
    ) -> Ceremony:
        """Start a sign-in.  With ``user``, the customer's passkeys are listed
        (``allowCredentials``) and only they are accepted; without, the browser offers
        any discoverable passkey for this RP (usernameless sign-in) and the response's
        user handle says whose it is.  Pass ``user_verification`` =
        :func:`user_verification_for` ``(decision.missing)`` when a policy step-up asks
        for ``passkey_uv``."""
        allow = None
        if user is not None:
            allow = [
                PublicKeyCredentialDescriptor(
                    type=PublicKeyCredentialType.PUBLIC_KEY,
                    id=c.credential_id,
                    transports=list(c.transports) or None,  # type: ignore[arg-type]
                )
                for c in self.registry.credentials(user)
                if not c.clone_suspected
            ]
        level = self._level(user_verification)
        options, state = self._fido.authenticate_begin(
            credentials=allow, user_verification=UserVerificationRequirement(level.value)
        )
        token, expires = self._save(_AUTHENTICATE, state, user, {})
        return Ceremony(_AUTHENTICATE, token, self._json(options.public_key), expires)

    def authenticate_complete(
        self, handle: str, response: Mapping[str, Any]
    ) -> AuthenticationResult:
        """Verify the browser's sign-in response.

        Returns the customer and the factor for the policy engine.  Raises
        :class:`CeremonyInvalid`, :class:`PasskeyRejected` (with a :class:`RejectReason`),
        :class:`PasskeyCloneSuspected` (the signature counter went back: the passkey is
        now blocked, ``on_clone`` was called) or, with a lockout configured,
        :class:`AccountLocked` for a customer whose login is locked (checked after the
        passkey verified, so it tells nothing to someone without the passkey)."""
        state = self._take(handle, _AUTHENTICATE)
        who = [str(state["user"]) if state["user"] is not None else ""]
        try:
            result = self._authenticate(state, response, who)
        except PasskeyRejected as exc:
            reason = exc.reason.value if isinstance(exc.reason, RejectReason) else "invalid"
            self._record("passkey_login", who[0], "deny", {"reason": reason})
            raise
        if self.lockout is not None and self.lockout.status(result.user).locked:
            self._record(
                "passkey_login", result.user, "locked", {"credential": result.credential.id}
            )
            raise AccountLocked()
        self._record(
            "passkey_login",
            result.user,
            "ok",
            {"credential": result.credential.id, "uv": str(result.user_verified).lower()},
        )
        return result

    def _authenticate(
        self, state: Mapping[str, Any], response: Mapping[str, Any], who: list[str]
    ) -> AuthenticationResult:
        self._check_outer(response, "sign-in")
        try:
            auth = AuthenticationResponse.from_dict(response)
            client_data = auth.response.client_data
            auth_data = auth.response.authenticator_data
        except Exception as exc:  # anything unparsable is a refusal, never a crash
            raise _reject(
                RejectReason.MALFORMED, f"not a WebAuthn sign-in response ({exc})"
            ) from None
        cred = self.registry.get(bytes(auth.raw_id))
        if cred is None or (state["user"] is not None and cred.user != state["user"]):
            raise _reject(
                RejectReason.UNKNOWN_CREDENTIAL,
                "this passkey is not registered for this customer: register it first",
            )
        who[0] = cred.user
        user_handle = auth.response.user_handle
        if user_handle is not None and not compare_digest(bytes(user_handle), cred.user_handle):
            raise _reject(RejectReason.USER_HANDLE, "the user handle is not the passkey's owner")
        if user_handle is None and state["user"] is None:
            raise _reject(
                RejectReason.USER_HANDLE, "a usernameless sign-in must carry the user handle"
            )
        if cred.clone_suspected:
            raise PasskeyCloneSuspected(
                "this passkey is blocked after its signature counter went back (possible "
                "clone): remove it and register a new one",
                RejectReason.CREDENTIAL_BLOCKED,
                cred.credential_id,
            )
        self._check_client_data(client_data, CollectedClientData.TYPE.GET.value, state)
        self._check_auth_data(auth_data, state)
        if auth_data.is_backup_eligible() != cred.backup_eligible:
            raise _reject(
                RejectReason.BACKUP_FLAGS,
                "the passkey's backup eligibility changed since registration",
            )
        stored = AttestedCredentialData.create(
            cred.aaguid, cred.credential_id, _cose(cred.public_key)
        )
        try:
            self._fido.authenticate_complete(self._fido_state(state), [stored], auth)
        except ValueError as exc:
            raise _reject(
                RejectReason.SIGNATURE, f"the passkey signature does not verify: {exc}"
            ) from None
        try:
            updated = self.registry.record_use(
                cred.credential_id,
                auth_data.counter,
                backed_up=auth_data.is_backed_up(),
                now=self.store.clock(),
            )
        except PasskeyCloneSuspected as exc:
            self._clone(cred, auth_data.counter, exc)
            raise
        return AuthenticationResult(cred.user, updated, auth_data.is_user_verified())

    def _clone(self, cred: PasskeyCredential, presented: int, exc: PasskeyCloneSuspected) -> None:
        reason = (
            exc.reason if isinstance(exc.reason, RejectReason) else RejectReason.COUNTER_REGRESSION
        )
        log.warning(
            "passkey %s of %s: signature counter regression (%s)", cred.id, cred.user, reason.value
        )
        self._record(
            "passkey_clone_suspected",
            cred.user,
            "blocked",
            {
                "credential": cred.id,
                "stored_count": str(cred.sign_count),
                "presented_count": str(presented),
                "reason": reason.value,
            },
        )
        if self.on_clone is not None:
            try:
                self.on_clone(
                    CloneEvent(cred.user, cred.credential_id, cred.sign_count, presented, reason)
                )
            except Exception:  # the hook must never turn a refusal into something else
                log.exception("the on_clone hook failed")

    # ------------------------------------------------------------------ management
    def credentials(self, user: str) -> list[PasskeyCredential]:
        """The customer's passkeys (for a settings page)."""
        return self.registry.credentials(user)

    def remove(self, user: str, credential_id: bytes) -> bool:
        """Delete one of the customer's passkeys (audited); False if it is not theirs."""
        removed = self.registry.remove(user, credential_id)
        if removed:
            self._record("passkey_removed", user, "ok", {"credential": b64url(credential_id)})
        return removed
