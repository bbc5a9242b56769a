"""OTP authenticators: TOTP / HOTP (RFC 6238 / 4226, via pyotp) authenticator apps and
GM/T 0021 SM3 dynamic-password devices (动态口令牌), with enrolment, replay protection
and resync.

"Authenticator" here always means a one-time-password generator; a USB Key (U盾) is a
*token* and lives in :mod:`ebank_auth.usbkey`.

State per user in the store (namespace ``tok`` by default)::

    tok:rec:<user>    JSON {kind, alg, digits, period, secret: sealed blob (hex)}
    tok:last:<user>   last accepted counter (TOTP/SM3: time step; HOTP: event counter)
    tok:fail:<user>   failed-verification counter (bounded, counted before comparing)

Replay: a code is accepted only if its counter is greater than the last accepted
one, and the new counter is written with compare-and-set, so two callers presenting
the same code can never both succeed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import quote, urlencode

import pyotp

from ebank_auth.errors import (
    CodeAttemptsExceeded,
    CodeInvalid,
    ConfigurationError,
    ConflictError,
    EncodingError,
    OtpError,
    ReplayDetected,
    StoreError,
)
from ebank_auth.otp.gmt0021 import sm3_otp
from ebank_auth.otp.qr import qr_svg
from ebank_auth.otp.sealing import SecretSealer
from ebank_auth.store import Store
from ebank_auth.store.keys import check_namespace, store_key

__all__ = [
    "AuthenticatorKind",
    "AuthenticatorService",
    "AuthenticatorSettings",
    "AuthenticatorVerification",
    "Enrollment",
    "OtpAlgorithm",
    "hotp_code",
]


class AuthenticatorKind(str, Enum):
    TOTP = "totp"  # time-based
    HOTP = "hotp"  # event-based


class OtpAlgorithm(str, Enum):
    SHA1 = "SHA1"
    SHA256 = "SHA256"
    SHA512 = "SHA512"
    SM3 = "SM3"  # GM/T 0021


_DIGESTS: dict[OtpAlgorithm, Callable[..., Any]] = {
    OtpAlgorithm.SHA1: hashlib.sha1,
    OtpAlgorithm.SHA256: hashlib.sha256,
    OtpAlgorithm.SHA512: hashlib.sha512,
}


def hotp_code(secret: bytes, counter: int, digits: int, algorithm: OtpAlgorithm) -> str:
    """The one-time password for ``counter`` (RFC 4226 truncation, or GM/T 0021 for SM3
    with T = counter, C = 0, no challenge)."""
    if algorithm is OtpAlgorithm.SM3:
        return sm3_otp(secret, counter, 0, b"", digits)
    b32 = base64.b32encode(secret).decode("ascii")
    return str(pyotp.HOTP(b32, digits=digits, digest=_DIGESTS[algorithm]).at(counter))


@dataclass(frozen=True)
class AuthenticatorSettings:
    """How authenticators are enrolled and verified.

    ``window``: TOTP steps accepted either side of now (default ±1).
    ``look_ahead``: HOTP counters accepted after the last one (default 3).
    ``resync_window``: HOTP counters searched by :meth:`AuthenticatorService.resync`.
    ``secret_bytes``: enrolment secret size (≥ 20 bytes = 160 bits).
    ``max_failures`` per ``failure_window`` seconds: wrong codes allowed before
    verification is refused (counted before comparing).
    """

    kind: AuthenticatorKind = AuthenticatorKind.TOTP
    algorithm: OtpAlgorithm = OtpAlgorithm.SHA1
    digits: int = 6
    period: int = 30
    window: int = 1
    look_ahead: int = 3
    resync_window: int = 50
    secret_bytes: int = 20
    max_failures: int = 5
    failure_window: float = 900.0
    issuer: str = "ebank-auth"

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", AuthenticatorKind(self.kind))
        object.__setattr__(self, "algorithm", OtpAlgorithm(self.algorithm))
        if not 6 <= self.digits <= 10:
            raise ConfigurationError("authenticator codes must have 6 to 10 digits")
        if not 1 <= self.period <= 300:
            raise ConfigurationError("the authenticator period must be 1 to 300 seconds")
        if not 0 <= self.window <= 10:
            raise ConfigurationError("TOTP window must be 0..10 steps")
        if not 0 <= self.look_ahead <= 100 or not 2 <= self.resync_window <= 1000:
            raise ConfigurationError("HOTP look_ahead must be 0..100 and resync_window 2..1000")
        if not 20 <= self.secret_bytes <= 64:
            raise ConfigurationError(
                "authenticator secrets must be 20 to 64 bytes (160 to 512 bits)"
            )
        if not 1 <= self.max_failures <= 100 or self.failure_window <= 0:
            raise ConfigurationError("max_failures must be 1..100 and failure_window positive")
        if not self.issuer or ":" in self.issuer:
            raise ConfigurationError("issuer must be non-empty and contain no ':'")


@dataclass(frozen=True)
class Enrollment:
    """Result of enrolling a token.  ``secret_b32`` is shown to the user once (or
    loaded into a hardware token) and not kept in clear anywhere."""

    user_id: str
    kind: AuthenticatorKind
    algorithm: OtpAlgorithm
    digits: int
    period: int
    secret_b32: str
    uri: str

    def qr_svg(self) -> str:
        return qr_svg(self.uri)

    def __repr__(self) -> str:
        return f"Enrollment(user_id={self.user_id!r}, kind={self.kind.value}, secret=***)"


@dataclass(frozen=True)
class AuthenticatorVerification:
    """An accepted authenticator code."""

    user_id: str
    counter: int  # the time step (TOTP/SM3) or event counter (HOTP) that matched
    drift: int  # matched counter minus the expected one (TOTP: minus the current step)


class AuthenticatorService:
    """Enrols and verifies OTP authenticators, one per user."""

    def __init__(
        self,
        store: Store,
        sealer: SecretSealer,
        settings: AuthenticatorSettings | None = None,
        *,
        namespace: str = "authenticator",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.store = store
        self.sealer = sealer
        self.settings = settings or AuthenticatorSettings()
        self.ns = check_namespace(namespace)
        self.clock = clock or store.clock

    def _k(self, kind: str, user: str) -> str:
        return store_key(self.ns, kind, user)

    def _aad(self, user: str) -> bytes:
        return store_key(self.ns, user).encode()

    # -- enrolment ------------------------------------------------------------------
    def enroll(
        self,
        user_id: str,
        account_name: str | None = None,
        *,
        secret: bytes | None = None,
        replace: bool = False,
    ) -> Enrollment:
        """Create (or with ``replace=True`` replace) the user's token.

        ``secret``: import an existing token seed (≥ 16 bytes for SM3, ≥ 20 otherwise)
        instead of generating one.  Raises ConflictError if a token exists and
        ``replace`` is False.
        """
        if not isinstance(user_id, str) or not user_id:
            raise ConfigurationError("the user id must be non-empty text")
        s = self.settings
        if secret is None:
            seed = secrets.token_bytes(s.secret_bytes)
        else:
            minimum = 16 if s.algorithm is OtpAlgorithm.SM3 else 20
            if len(secret) < minimum:
                raise ConfigurationError(
                    f"the imported authenticator secret is too short: it must be at least {minimum * 8} bits"
                )
            seed = bytes(secret)
        record = json.dumps(
            {
                "kind": s.kind.value,
                "alg": s.algorithm.value,
                "digits": s.digits,
                "period": s.period,
                "secret": self.sealer.seal(seed, self._aad(user_id)).hex(),
            },
            separators=(",", ":"),
        ).encode()
        key = self._k("rec", user_id)
        if replace:
            for _ in range(20):
                current = self.store.get(key)
                if self.store.compare_and_set(key, current, record):
                    break
            else:
                raise ConflictError(
                    "the authenticator was changed at the same time by another request: try again"
                )
            self.store.delete(self._k("last", user_id))
            self.store.reset_counter(self._k("fail", user_id))
        elif not self.store.put_if_absent(key, record):
            raise ConflictError(
                "this user already has an authenticator: replace it explicitly (the old one stops "
                "working) or unenrol it first"
            )
        b32 = base64.b32encode(seed).decode("ascii").rstrip("=")
        return Enrollment(
            user_id=user_id,
            kind=s.kind,
            algorithm=s.algorithm,
            digits=s.digits,
            period=s.period,
            secret_b32=b32,
            uri=self._uri(account_name or user_id, b32),
        )

    def _uri(self, account: str, b32: str) -> str:
        s = self.settings
        params: dict[str, str] = {
            "secret": b32,
            "issuer": s.issuer,
            "algorithm": s.algorithm.value,
            "digits": str(s.digits),
        }
        if s.kind is AuthenticatorKind.TOTP:
            params["period"] = str(s.period)
        else:
            params["counter"] = "0"
        # the label is "issuer:account"; a ':' inside the account name is percent-encoded
        label = f"{quote(s.issuer, safe='@')}:{quote(account, safe='@')}"
        return f"otpauth://{s.kind.value}/{label}?{urlencode(params, quote_via=quote)}"

    def unenroll(self, user_id: str) -> None:
        for kind in ("rec", "last"):
            self.store.delete(self._k(kind, user_id))
        self.store.reset_counter(self._k("fail", user_id))

    # -- helpers --------------------------------------------------------------------
    def _load(self, user_id: str) -> tuple[dict[str, Any], bytes, bytes]:
        raw = self.store.get(self._k("rec", user_id))
        if raw is None:
            raise OtpError("no authenticator is enrolled for this user: enrol one first")
        try:
            rec = json.loads(raw)
            blob = bytes.fromhex(rec["secret"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                "the stored authenticator record is corrupt: enrol the authenticator again"
            ) from exc
        seed = self.sealer.open(blob, self._aad(user_id))
        if self.sealer.needs_reseal(blob):  # key rotation on use
            fresh = dict(rec)
            fresh["secret"] = self.sealer.seal(seed, self._aad(user_id)).hex()
            self.store.compare_and_set(
                self._k("rec", user_id), raw, json.dumps(fresh, separators=(",", ":")).encode()
            )
        return rec, seed, raw

    def _last(self, user_id: str) -> tuple[bytes | None, int]:
        raw = self.store.get(self._k("last", user_id))
        return raw, (int(raw) if raw is not None else -1)

    def _check_format(self, code: str, digits: int) -> None:
        if (
            not isinstance(code, str)
            or len(code) != digits
            or not code.isascii()
            or not code.isdigit()
        ):
            raise CodeInvalid(f"the code must be exactly {digits} digits")

    @staticmethod
    def _match(seed: bytes, rec: dict[str, Any], code: str, candidates: range) -> int | None:
        """The first counter in ``candidates`` whose code equals ``code`` (every
        candidate is compared, in constant time)."""
        found: int | None = None
        alg = OtpAlgorithm(rec["alg"])
        for counter in candidates:
            if counter < 0:
                continue
            expected = hotp_code(seed, counter, int(rec["digits"]), alg)
            if hmac.compare_digest(expected.encode(), code.encode()) and found is None:
                found = counter
        return found

    def _advance(self, user_id: str, counter: int) -> None:
        """Atomically move the last accepted counter to ``counter`` or refuse a replay."""
        key = self._k("last", user_id)
        for _ in range(50):
            raw, last = self._last(user_id)
            if counter <= last:
                raise ReplayDetected(
                    "this code (or a newer one) was already used: wait for the next code"
                )
            if self.store.compare_and_set(key, raw, str(counter).encode()):
                return
        raise ConflictError("too many simultaneous verifications for this authenticator: try again")

    # -- verification ---------------------------------------------------------------
    def verify(self, user_id: str, code: str, at: float | None = None) -> AuthenticatorVerification:
        """Accept ``code`` once.  Raises CodeInvalid, ReplayDetected,
        CodeAttemptsExceeded, OtpError (no token), StoreUnavailable."""
        s = self.settings
        rec, seed, _ = self._load(user_id)
        digits = int(rec["digits"])
        self._check_format(code, digits)
        attempt = self.store.incr_bounded(
            self._k("fail", user_id), s.max_failures, ttl=s.failure_window
        )
        if not attempt.allowed:
            raise CodeAttemptsExceeded(
                "too many wrong authenticator codes: wait before trying again or contact the bank"
            )
        _, last = self._last(user_id)
        if AuthenticatorKind(rec["kind"]) is AuthenticatorKind.TOTP:
            now = self.clock() if at is None else at
            step = int(now // int(rec["period"]))
            candidates = range(step - s.window, step + s.window + 1)
            expected = step
        else:
            candidates = range(last + 1, last + 2 + s.look_ahead)
            expected = last + 1
        counter = self._match(seed, rec, code, candidates)
        if counter is None:
            raise CodeInvalid(
                f"the authenticator code is wrong: {s.max_failures - attempt.value} tries left"
            )
        self._advance(user_id, counter)
        self.store.reset_counter(self._k("fail", user_id))
        return AuthenticatorVerification(user_id, counter, counter - expected)

    def resync(self, user_id: str, code1: str, code2: str) -> AuthenticatorVerification:
        """HOTP: find two consecutive codes within ``resync_window`` after the last
        accepted counter and move the counter past them."""
        s = self.settings
        rec, seed, _ = self._load(user_id)
        if AuthenticatorKind(rec["kind"]) is not AuthenticatorKind.HOTP:
            raise OtpError("resync applies to event-based (HOTP) authenticators only")
        digits = int(rec["digits"])
        self._check_format(code1, digits)
        self._check_format(code2, digits)
        attempt = self.store.incr_bounded(
            self._k("fail", user_id), s.max_failures, ttl=s.failure_window
        )
        if not attempt.allowed:
            raise CodeAttemptsExceeded()
        _, last = self._last(user_id)
        alg = OtpAlgorithm(rec["alg"])
        found: int | None = None
        codes = [
            hotp_code(seed, c, digits, alg) for c in range(last + 1, last + 2 + s.resync_window)
        ]
        for i in range(len(codes) - 1):
            pair_ok = hmac.compare_digest(codes[i].encode(), code1.encode()) & hmac.compare_digest(
                codes[i + 1].encode(), code2.encode()
            )
            if pair_ok and found is None:
                found = last + 1 + i
        if found is None:
            raise CodeInvalid(
                "the two codes are not consecutive codes of this authenticator: enter two codes "
                "shown one after the other"
            )
        self._advance(user_id, found + 1)
        self.store.reset_counter(self._k("fail", user_id))
        return AuthenticatorVerification(user_id, found + 1, found + 1 - (last + 1))

    def code_at(self, user_id: str, counter: int) -> str:
        """The authenticator's code for ``counter`` (for tests and the emulator; server-side)."""
        rec, seed, _ = self._load(user_id)
        if counter < 0:
            raise EncodingError("counter must be non-negative")
        return hotp_code(seed, counter, int(rec["digits"]), OtpAlgorithm(rec["alg"]))
