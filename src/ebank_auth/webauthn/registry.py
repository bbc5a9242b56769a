"""The passkey registry: each customer's WebAuthn credentials, kept in a :class:`Store`.

Keys (namespace ``webauthn`` by default, see :mod:`ebank_auth.store.keys`):

* ``webauthn:user:<user>`` — the customer's random 32-byte WebAuthn user handle
  (``user.id``; never the customer id itself, which the authenticator would store);
* ``webauthn:cred:<credential id, base64url>`` — one credential as JSON;
* ``webauthn:index:<user>`` — the ids of the customer's credentials (JSON list).

Every change is one atomic store step or a compare-and-set loop on one value: a new
credential is ``put_if_absent`` (a credential id is registered once, to one customer),
and a sign-in writes the new signature counter with ``compare_and_set`` against the
exact record it checked, so two sign-ins can never both move the counter from the
same value and the stored counter never goes back.  A counter that does not increase
(WebAuthn §6.1.1; both zero means the authenticator keeps no counter) blocks the
credential as a possible clone.

This module does not import ``fido2``.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from ebank_auth.errors import (
    ConfigurationError,
    ConflictError,
    PasskeyAlreadyRegistered,
    PasskeyCloneSuspected,
    PasskeyRejected,
    StoreIntegrityError,
)
from ebank_auth.store.base import Store
from ebank_auth.store.keys import check_namespace, store_key
from ebank_auth.webauthn.config import RejectReason

__all__ = ["MAX_SIGN_COUNT", "PasskeyCredential", "PasskeyRegistry", "b64url", "from_b64url"]

#: the signature counter is an unsigned 32-bit number in authenticatorData
MAX_SIGN_COUNT = 0xFFFFFFFF
_RETRIES = 100
_T = TypeVar("_T")


def b64url(data: bytes) -> str:
    """base64url without padding (the WebAuthn JSON encoding)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str) -> bytes:
    """Inverse of :func:`b64url`; raises ValueError for anything else."""
    if not isinstance(text, str) or not text.isascii():
        raise ValueError("not base64url text")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(raw) != text:
        raise ValueError("not canonical base64url")
    return raw


@dataclass(frozen=True)
class PasskeyCredential:
    """One registered passkey."""

    user: str  # the bank's customer id
    user_handle: bytes  # WebAuthn user.id given to the authenticator
    credential_id: bytes
    public_key: bytes  # COSE_Key, CBOR-encoded as the authenticator sent it
    algorithm: int  # COSE algorithm (-7 ES256, -8 EdDSA, -257 RS256)
    sign_count: int  # highest signature counter seen
    aaguid: bytes  # 16 bytes; all zero when the authenticator does not say
    backup_eligible: bool  # BE: may be synced to other devices (a multi-device passkey)
    backed_up: bool  # BS: currently synced / backed up
    transports: tuple[str, ...]  # as the browser reported at registration ("usb", "nfc", …)
    created_at: float
    last_used_at: float | None
    user_verified: bool  # UV was done at registration
    attestation_format: str  # "none", "packed", … as sent (checked only in trusted mode)
    clone_suspected: bool = False  # blocked: the counter went back once

    @property
    def id(self) -> str:
        """The credential id in base64url, as the browser's ``id`` field."""
        return b64url(self.credential_id)

    @property
    def aaguid_text(self) -> str:
        h = self.aaguid.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "user": self.user,
            "user_handle": b64url(self.user_handle),
            "credential_id": b64url(self.credential_id),
            "public_key": b64url(self.public_key),
            "algorithm": self.algorithm,
            "sign_count": self.sign_count,
            "aaguid": self.aaguid.hex(),
            "backup_eligible": self.backup_eligible,
            "backed_up": self.backed_up,
            "transports": list(self.transports),
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "user_verified": self.user_verified,
            "attestation_format": self.attestation_format,
            "clone_suspected": self.clone_suspected,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PasskeyCredential:
        return cls(
            user=str(d["user"]),
            user_handle=from_b64url(d["user_handle"]),
            credential_id=from_b64url(d["credential_id"]),
            public_key=from_b64url(d["public_key"]),
            algorithm=int(d["algorithm"]),
            sign_count=int(d["sign_count"]),
            aaguid=bytes.fromhex(d["aaguid"]),
            backup_eligible=bool(d["backup_eligible"]),
            backed_up=bool(d["backed_up"]),
            transports=tuple(str(t) for t in d["transports"]),
            created_at=float(d["created_at"]),
            last_used_at=None if d["last_used_at"] is None else float(d["last_used_at"]),
            user_verified=bool(d["user_verified"]),
            attestation_format=str(d["attestation_format"]),
            clone_suspected=bool(d["clone_suspected"]),
        )


def _encode(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


class PasskeyRegistry:
    """The customers' passkeys in a :class:`Store` (see the module docstring)."""

    def __init__(self, store: Store, *, namespace: str = "webauthn") -> None:
        self.store = store
        self.namespace = check_namespace(namespace)

    # ------------------------------------------------------------------ keys
    @staticmethod
    def _user(user: str) -> str:
        if not isinstance(user, str) or not user or len(user) > 128:
            raise ConfigurationError("user id must be non-empty text of at most 128 characters")
        return user

    def _cred_key(self, credential_id: bytes) -> str:
        return store_key(self.namespace, "cred", b64url(credential_id))

    def _index_key(self, user: str) -> str:
        return store_key(self.namespace, "index", self._user(user))

    def _decode(self, raw: bytes, key: str) -> PasskeyCredential:
        try:
            return PasskeyCredential.from_json(json.loads(raw.decode("utf-8")))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreIntegrityError(
                f"the passkey record {key} is not what ebank-auth wrote ({exc}): refused; "
                "restore it from a backup"
            ) from None

    def _decode_index(self, raw: bytes | None) -> list[str]:
        if raw is None:
            return []
        ids = json.loads(raw.decode("utf-8"))
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise StoreIntegrityError("a passkey index is not a list of ids: restore it")
        return ids

    def _cas_loop(self, key: str, step: Callable[[bytes | None], tuple[bytes | None, _T]]) -> _T:
        """Read ``key``, compute (new value, result), compare-and-set; retry on a race."""
        for _ in range(_RETRIES):
            raw = self.store.get(key)
            new, result = step(raw)
            if new == raw or self.store.compare_and_set(key, raw, new):
                return result
        raise ConflictError(f"{key} is being changed concurrently: retry")

    # ------------------------------------------------------------------ user handles
    def user_handle(self, user: str, *, create: bool = False) -> bytes | None:
        """The customer's WebAuthn user handle (32 random bytes), made on first use when
        ``create``; None if the customer has none and ``create`` is false."""
        key = store_key(self.namespace, "user", self._user(user))
        raw = self.store.get(key)
        if raw is None and create:
            self.store.put_if_absent(key, os.urandom(32))
            raw = self.store.get(key)  # the winner of a concurrent first registration
        if raw is not None and len(raw) != 32:
            raise StoreIntegrityError(f"the user handle {key} is not 32 bytes: restore it")
        return raw

    # ------------------------------------------------------------------ queries
    def get(self, credential_id: bytes) -> PasskeyCredential | None:
        """The credential with this id, or None."""
        if not isinstance(credential_id, bytes) or not credential_id:
            return None
        key = self._cred_key(credential_id)
        raw = self.store.get(key)
        return None if raw is None else self._decode(raw, key)

    def credentials(self, user: str) -> list[PasskeyCredential]:
        """The customer's passkeys, oldest first (blocked ones included)."""
        out = []
        for cid in self._decode_index(self.store.get(self._index_key(user))):
            cred = self.get(from_b64url(cid))
            if cred is not None and cred.user == user:
                out.append(cred)
        return out

    # ------------------------------------------------------------------ changes
    def add(self, cred: PasskeyCredential) -> PasskeyCredential:
        """Register a new credential.  Raises :class:`PasskeyAlreadyRegistered` if its id
        is already registered (to anyone): nothing is changed then."""
        key = self._cred_key(cred.credential_id)
        if not self.store.put_if_absent(key, _encode(cred.to_json())):
            raise PasskeyAlreadyRegistered()

        def step(raw: bytes | None) -> tuple[bytes | None, None]:
            ids = self._decode_index(raw)
            if cred.id not in ids:
                ids.append(cred.id)
            return _encode(ids), None

        self._cas_loop(self._index_key(cred.user), step)
        return cred

    def remove(self, user: str, credential_id: bytes) -> bool:
        """Delete one of the customer's passkeys; False if it is not theirs or not there."""
        cred = self.get(credential_id)
        if cred is None or cred.user != user:
            return False
        self.store.delete(self._cred_key(credential_id))

        def step(raw: bytes | None) -> tuple[bytes | None, None]:
            ids = [i for i in self._decode_index(raw) if i != cred.id]
            return (_encode(ids) if ids else None), None

        self._cas_loop(self._index_key(user), step)
        return True

    def record_use(
        self, credential_id: bytes, sign_count: int, *, backed_up: bool, now: float
    ) -> PasskeyCredential:
        """Accept a verified assertion's signature counter, atomically.

        The counter must be greater than the stored one unless both are zero.  Otherwise
        the credential is blocked (``clone_suspected``) with a compare-and-set and
        :class:`PasskeyCloneSuspected` is raised (reason ``counter_regression``); a blocked
        credential raises it with reason ``credential_blocked``.  The stored counter
        never decreases.
        """
        if isinstance(sign_count, bool) or not isinstance(sign_count, int):
            raise ConfigurationError("the signature counter must be an integer")
        if not 0 <= sign_count <= MAX_SIGN_COUNT:
            raise PasskeyRejected("the signature counter is out of range", RejectReason.MALFORMED)
        key = self._cred_key(credential_id)

        def step(raw: bytes | None) -> tuple[bytes | None, PasskeyCredential | RejectReason]:
            if raw is None:
                raise PasskeyRejected(
                    "this passkey is not registered: register it first",
                    RejectReason.UNKNOWN_CREDENTIAL,
                )
            rec = self._decode(raw, key)
            if rec.clone_suspected:
                return raw, RejectReason.CREDENTIAL_BLOCKED
            if (sign_count or rec.sign_count) and sign_count <= rec.sign_count:
                blocked = replace(rec, clone_suspected=True)
                return _encode(blocked.to_json()), RejectReason.COUNTER_REGRESSION
            new = replace(rec, sign_count=sign_count, backed_up=backed_up, last_used_at=now)
            return _encode(new.to_json()), new

        outcome = self._cas_loop(key, step)
        if isinstance(outcome, RejectReason):
            if outcome is RejectReason.CREDENTIAL_BLOCKED:
                message = (
                    "this passkey is blocked after its signature counter went back (possible "
                    "clone): remove it and register a new one"
                )
            else:
                message = None
            raise PasskeyCloneSuspected(message, outcome, credential_id)
        return outcome
