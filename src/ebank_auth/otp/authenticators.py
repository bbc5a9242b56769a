"""OTP authenticators: TOTP / HOTP (RFC 6238 / 4226, via pyotp) authenticator apps and
GM/T 0021 SM3 dynamic-password devices (动态口令牌), with enrolment, replay protection
and resync.

"Authenticator" here always means a one-time-password generator; a USB Key (U盾) is a
*token* and lives in :mod:`ebank_auth.usbkey`.

State per user in the store (namespace ``authenticator`` by default)::

    authenticator:rec:<user>    JSON {kind, alg, digits, period, secret: sealed blob (hex)}
    authenticator:last:<user>   last accepted counter (TOTP/SM3: time step; HOTP: event counter)
    authenticator:fail:<user>   consecutive wrong codes (counted before comparing, no expiry)
    authenticator:wait:<user>   back-off slot: while present, no code is compared

Replay: a code is accepted only if its counter is greater than the last accepted
one, and the new counter is written with compare-and-set, so two callers presenting
the same code can never both succeed.

Brute force: the failure count belongs to the authenticator (separate from the login
password's lockout).  The first ``max_failures`` wrong codes are free; after that each
try must wait for the back-off slot (``backoff`` seconds, doubling per further failure,
at most ``backoff_max``), and at ``lock_after`` consecutive failures the authenticator
is locked until an administrator calls :meth:`AuthenticatorService.admin_reset`; the
count never expires by itself.  A correct code resets the count.

Time: the verifier's time is the store's clock (the Redis server's ``TIME`` for a
Redis store); a caller-chosen time (``verify(at=...)``) is accepted only in
``test_mode``.  GM/T 0021 (SM3) tokens put the time step in T (C = 0) when
time-based and the event counter in C (T = 0) when event-based.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
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
    RateLimited,
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

_log = logging.getLogger(__name__)

MAX_WINDOW_SECONDS = 60
"""Outside test mode a TOTP code is accepted at most this many seconds either side of
now (window x period), and the period is at most this long (OTP-1: codes valid 60 s)."""


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


def hotp_code(
    secret: bytes,
    counter: int,
    digits: int,
    algorithm: OtpAlgorithm,
    kind: AuthenticatorKind = AuthenticatorKind.TOTP,
) -> str:
    """The one-time password for ``counter`` (RFC 4226 truncation; or GM/T 0021 for SM3:
    time-based T = counter, C = 0; event-based T = 0, C = counter; no challenge)."""
    if algorithm is OtpAlgorithm.SM3:
        if AuthenticatorKind(kind) is AuthenticatorKind.HOTP:
            return sm3_otp(secret, 0, counter, b"", digits)
        return sm3_otp(secret, counter, 0, b"", digits)
    b32 = base64.b32encode(secret).decode("ascii")
    return str(pyotp.HOTP(b32, digits=digits, digest=_DIGESTS[algorithm]).at(counter))


@dataclass(frozen=True)
class AuthenticatorSettings:
    """How authenticators are enrolled and verified.

    ``window``: TOTP steps accepted either side of now (default ±1; window x period
    at most 60 s and period at most 60 s outside test mode).
    ``look_ahead``: HOTP counters accepted after the last one (default 3).
    ``resync_window``: HOTP counters searched by :meth:`AuthenticatorService.resync`.
    ``secret_bytes``: enrolment secret size (≥ 20 bytes = 160 bits).
    ``max_failures``: consecutive wrong codes compared without delay (1-5).
    ``backoff`` / ``backoff_max``: after that, seconds before the next try, doubling
    per failure up to ``backoff_max``.
    ``lock_after``: consecutive wrong codes that lock the authenticator until
    :meth:`AuthenticatorService.admin_reset` (``max_failures`` < it <= 20).
    ``test_mode``: lifts the floors (wider windows, more failures) and allows
    ``verify(at=...)``; logged as a warning.  Never in production.
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
    backoff: float = 30.0
    backoff_max: float = 3600.0
    lock_after: int = 10
    issuer: str = "ebank-auth"
    test_mode: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", AuthenticatorKind(self.kind))
        object.__setattr__(self, "algorithm", OtpAlgorithm(self.algorithm))
        testing = self.test_mode is True
        if not 6 <= self.digits <= 10:
            raise ConfigurationError("authenticator codes must have 6 to 10 digits")
        if not 1 <= self.period <= 300:
            raise ConfigurationError("the authenticator period must be 1 to 300 seconds")
        if not 0 <= self.window <= 10:
            raise ConfigurationError("TOTP window must be 0..10 steps")
        if not testing and (
            self.period > MAX_WINDOW_SECONDS or self.window * self.period > MAX_WINDOW_SECONDS
        ):
            raise ConfigurationError(
                f"a TOTP code may be accepted at most {MAX_WINDOW_SECONDS} s either side of now "
                f"and the period may be at most {MAX_WINDOW_SECONDS} s (window {self.window} x "
                f"period {self.period} s is too wide); wider only in test_mode"
            )
        if not 0 <= self.look_ahead <= 100 or not 2 <= self.resync_window <= 1000:
            raise ConfigurationError("HOTP look_ahead must be 0..100 and resync_window 2..1000")
        if not 20 <= self.secret_bytes <= 64:
            raise ConfigurationError(
                "authenticator secrets must be 20 to 64 bytes (160 to 512 bits)"
            )
        most = 100 if testing else 5
        if not 1 <= self.max_failures <= most:
            raise ConfigurationError(
                f"max_failures must be 1..{most} (AU-6: at most 5 consecutive failures "
                "before refusing)"
            )
        if not self.max_failures < self.lock_after <= (200 if testing else 20):
            raise ConfigurationError("lock_after must be above max_failures and at most 20")
        if not 0 < self.backoff <= self.backoff_max <= 86400:
            raise ConfigurationError("backoff must satisfy 0 < backoff <= backoff_max <= 86400 s")
        if not self.issuer or ":" in self.issuer:
            raise ConfigurationError("issuer must be non-empty and contain no ':'")
        if testing:
            _log.warning(
                "AUTHENTICATOR TEST MODE: window %d x %d s, max_failures %d and caller-chosen "
                "verification times are allowed; never use in production",
                self.window,
                self.period,
                self.max_failures,
            )


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
            self.store.delete(self._k("wait", user_id))
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
        for kind in ("rec", "last", "wait"):
            self.store.delete(self._k(kind, user_id))
        self.store.reset_counter(self._k("fail", user_id))

    # -- brute-force limits -----------------------------------------------------------
    def failures(self, user_id: str) -> int:
        """Consecutive wrong codes counted for ``user_id``'s authenticator."""
        return self.store.get_counter(self._k("fail", user_id))

    def locked(self, user_id: str) -> bool:
        """True if the authenticator needs :meth:`admin_reset` before any code counts."""
        return self.failures(user_id) >= self.settings.lock_after

    def admin_reset(self, user_id: str, *, admin: str) -> None:
        """Administrator reset of a locked (or backed-off) authenticator: clears the
        failure count and the back-off slot.  Logged with the administrator's id."""
        if not isinstance(admin, str) or not admin:
            raise ConfigurationError("admin_reset needs the administrator's id")
        before = self.failures(user_id)
        self.store.reset_counter(self._k("fail", user_id))
        self.store.delete(self._k("wait", user_id))
        _log.warning(
            "authenticator of %s reset by administrator %s after %d failures",
            user_id,
            admin,
            before,
        )

    def _count_try(self, user_id: str) -> int:
        """Refuse when locked or backing off; otherwise count this try (before the
        comparison, anti-tearing) and return the failures it would make."""
        s = self.settings
        fail_key = self._k("fail", user_id)
        failures = self.store.get_counter(fail_key)
        if failures < s.lock_after and failures >= s.max_failures:
            delay = min(s.backoff * 2 ** (failures - s.max_failures), s.backoff_max)
            now = self.clock()
            wait_key = self._k("wait", user_id)
            if not self.store.put_if_absent(wait_key, repr(now + delay).encode(), ttl=delay):
                held = self.store.get(wait_key)
                try:
                    retry = max(1.0, float(held) - now) if held else delay
                except ValueError:
                    retry = delay
                raise RateLimited(
                    f"too many wrong authenticator codes: wait {int(retry) + 1} s before the "
                    "next try",
                    retry_after=retry,
                )
        attempt = self.store.incr_bounded(fail_key, s.lock_after, ttl=None)
        if not attempt.allowed:
            raise CodeAttemptsExceeded(
                f"this authenticator is locked after {s.lock_after} wrong codes: an "
                "administrator must reset it (contact the bank)"
            )
        if attempt.value == s.lock_after:
            _log.warning(
                "authenticator of %s locked after %d consecutive wrong codes",
                user_id,
                attempt.value,
            )
        return attempt.value

    def _succeeded(self, user_id: str) -> None:
        self.store.reset_counter(self._k("fail", user_id))
        self.store.delete(self._k("wait", user_id))

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
        kind = AuthenticatorKind(rec["kind"])
        for counter in candidates:
            if counter < 0:
                continue
            expected = hotp_code(seed, counter, int(rec["digits"]), alg, kind)
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
        """Accept ``code`` once.  Raises CodeInvalid, ReplayDetected, RateLimited
        (back-off), CodeAttemptsExceeded (locked: needs :meth:`admin_reset`), OtpError
        (no authenticator), StoreUnavailable.  ``at`` (a chosen verification time) is
        refused unless the settings are in ``test_mode``."""
        s = self.settings
        if at is not None and not s.test_mode:
            raise ConfigurationError(
                "the verification time comes from the store's clock; at= is accepted only in "
                "test mode (AuthenticatorSettings(test_mode=True))"
            )
        rec, seed, _ = self._load(user_id)
        digits = int(rec["digits"])
        self._check_format(code, digits)
        failures = self._count_try(user_id)
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
            raise CodeInvalid(self._wrong_message(failures))
        self._advance(user_id, counter)
        self._succeeded(user_id)
        return AuthenticatorVerification(user_id, counter, counter - expected)

    def _wrong_message(self, failures: int) -> str:
        s = self.settings
        if failures >= s.lock_after:
            return (
                "the authenticator code is wrong; the authenticator is now locked: an "
                "administrator must reset it"
            )
        if failures >= s.max_failures:
            return (
                "the authenticator code is wrong: wait before the next try "
                f"({s.lock_after - failures} left before the authenticator is locked)"
            )
        return f"the authenticator code is wrong: {s.max_failures - failures} tries left"

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
        failures = self._count_try(user_id)
        _, last = self._last(user_id)
        alg = OtpAlgorithm(rec["alg"])
        kind = AuthenticatorKind(rec["kind"])
        found: int | None = None
        codes = [
            hotp_code(seed, c, digits, alg, kind)
            for c in range(last + 1, last + 2 + s.resync_window)
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
                f"shown one after the other ({self._wrong_message(failures)})"
            )
        self._advance(user_id, found + 1)
        self._succeeded(user_id)
        return AuthenticatorVerification(user_id, found + 1, found + 1 - (last + 1))

    def code_at(self, user_id: str, counter: int) -> str:
        """The authenticator's code for ``counter`` (for tests and the emulator; server-side)."""
        rec, seed, _ = self._load(user_id)
        if counter < 0:
            raise EncodingError("counter must be non-negative")
        return hotp_code(
            seed,
            counter,
            int(rec["digits"]),
            OtpAlgorithm(rec["alg"]),
            AuthenticatorKind(rec["kind"]),
        )
