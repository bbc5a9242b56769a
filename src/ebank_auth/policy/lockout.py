"""Login lockout after consecutive failures (AU-6, AU-11).

The failure counter is incremented atomically in the store *before* the
credential is checked (``incr_bounded``): an attempt that crashes, times out or
is cut off still counts, and no interleaving of threads or processes lets more
than ``limit`` attempts reach the check.  At the limit the login is locked until
the end of the local day (the counter's TTL runs to local midnight), the
customer is notified at once through a :class:`Notifier` (SMS, then voice), and
the lock is written to the audit log.  A success resets the count; an
administrator can unlock (audited).

For a password login the one call is :meth:`LoginLockout.password_login`: it counts
the try, checks the password with a :class:`~ebank_auth.passwords.PasswordService`,
reports a due password change as a *success* with ``change_required`` (a correct
password never counts as a failure) and audits the attempt.  Other credentials go
through :meth:`LoginLockout.attempt` with a check returning ``True`` or ``False``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Protocol

from ebank_auth.audit.log import AuditLog
from ebank_auth.errors import (
    AccountLocked,
    ConfigurationError,
    EbankAuthError,
    PasswordChangeRequired,
    PasswordIncorrect,
)
from ebank_auth.localtime import next_midnight
from ebank_auth.policy.context import DEFAULT_TIMEZONE, AuthContext
from ebank_auth.policy.model import MAX_LOCKOUT_FAILURES, Policy
from ebank_auth.store.base import Store
from ebank_auth.store.keys import check_namespace, store_key

if TYPE_CHECKING:
    from ebank_auth.passwords import PasswordService, Secret

__all__ = [
    "AttemptResult",
    "LockoutEvent",
    "LockoutStatus",
    "LoginLockout",
    "Notifier",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockoutEvent:
    """What the customer is told when their login is locked."""

    user: str
    failures: int
    locked_until: datetime  # local midnight ending the day of the lock


class Notifier(Protocol):
    """Tells the customer at once that their login was locked (SMS or phone)."""

    def notify_locked(self, event: LockoutEvent) -> None: ...


@dataclass(frozen=True)
class AttemptResult:
    """Outcome of one evaluated login attempt.

    ``change_required`` (with ``success``): the password was correct but must be changed
    before the customer goes on (first login with a bank-issued password, or a reset)."""

    success: bool
    failures: int  # consecutive failures counted after this attempt
    remaining: int  # attempts left before the lock
    locked: bool  # this attempt's failure locked the login
    locked_until: datetime | None
    change_required: bool = False


@dataclass(frozen=True)
class LockoutStatus:
    user: str
    failures: int
    limit: int
    locked: bool
    locked_until: datetime | None


class LoginLockout:
    """Counts consecutive login failures per customer in a :class:`Store`."""

    def __init__(
        self,
        store: Store,
        *,
        limit: int = MAX_LOCKOUT_FAILURES,
        tz: tzinfo = DEFAULT_TIMEZONE,
        notifier: Notifier | None = None,
        audit: AuditLog | None = None,
        namespace: str = "lockout",
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise ConfigurationError("lockout limit must be an integer")
        if not 1 <= limit <= MAX_LOCKOUT_FAILURES:
            raise ConfigurationError(
                f"lockout limit {limit} is outside 1-{MAX_LOCKOUT_FAILURES}: the standard "
                f"(AU-6) allows at most {MAX_LOCKOUT_FAILURES} consecutive failures"
            )
        self.store = store
        self.limit = limit
        self.tz = tz
        self.notifier = notifier
        self.audit = audit
        self.namespace = check_namespace(namespace)

    @classmethod
    def from_policy(cls, store: Store, policy: Policy, **kw: object) -> LoginLockout:
        """Lockout with the policy's limit and time zone."""
        return cls(store, limit=policy.lockout.max_failures, tz=policy.timezone, **kw)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ helpers
    def _key(self, user: str) -> str:
        if not isinstance(user, str) or not user:
            raise ConfigurationError("user id must be non-empty text")
        return store_key(self.namespace, user)

    def end_of_day(self, now: float | None = None) -> datetime:
        """Local midnight that ends the day containing ``now`` (store clock)."""
        return next_midnight(self.store.clock() if now is None else now, self.tz)

    def _audit(
        self, event: str, user: str, outcome: str, ctx: AuthContext | None, details: dict[str, str]
    ) -> None:
        if self.audit is None:
            return
        self.audit.record(
            event,
            user=user,
            ip=ctx.ip if ctx else "",
            device=ctx.device_id if ctx else "",
            client_type=ctx.client_type if ctx else "",
            os_version=ctx.os_version if ctx else "",
            outcome=outcome,
            details=details,
        )

    # ------------------------------------------------------------------ API
    def attempt(
        self,
        user: str,
        check: Callable[[], bool],
        *,
        context: AuthContext | None = None,
    ) -> AttemptResult:
        """Count the attempt, then run ``check`` (``True`` = credential correct, ``False`` =
        wrong).

        Raises :class:`AccountLocked` without running ``check`` when the login is
        locked.  If ``check`` raises, the attempt stays counted as a failure and
        the exception propagates — except :class:`~ebank_auth.errors.PasswordChangeRequired`,
        which only a *correct* password raises: the count is reset as for a success and the
        exception propagates so the caller asks for the new password.  A ``check`` that
        returns anything but a bool is a programming error: the attempt counts as a failure
        (fail closed) and :class:`ConfigurationError` is raised.  For passwords use
        :meth:`password_login`, which needs no wrapper.
        """
        key = self._key(user)
        now = self.store.clock()
        until = self.end_of_day(now)
        ttl = max(1.0, until.timestamp() - now)
        counted = self.store.incr_bounded(key, self.limit, ttl=ttl)  # before the check
        if not counted.allowed:
            self._audit(
                "login_refused_locked",
                user,
                "deny",
                context,
                {"locked_until": until.isoformat()},
            )
            raise AccountLocked(
                f"online banking login is locked after {self.limit} failed attempts until "
                f"{until:%Y-%m-%d %H:%M} ({until.tzname()}): try again then or contact the bank"
            )
        ok = False
        try:
            verdict = check()
            if not isinstance(verdict, bool):
                raise ConfigurationError(
                    "the lockout check must return True (correct) or False (wrong), not "
                    f"{type(verdict).__name__}: wrap a raising check, or use "
                    "LoginLockout.password_login for passwords"
                )
            ok = verdict
        except PasswordChangeRequired:
            ok = True  # raised only after a correct password: not a failure
            self.store.reset_counter(key)
            raise
        finally:
            if not ok:
                self._on_failure(user, counted.value, until, context)
        if ok:
            self.store.reset_counter(key)
            return AttemptResult(True, 0, self.limit, False, None)
        locked = counted.value >= self.limit
        return AttemptResult(
            False,
            counted.value,
            max(0, self.limit - counted.value),
            locked,
            until if locked else None,
        )

    def password_login(
        self,
        passwords: PasswordService,
        user: str,
        password: Secret,
        *,
        context: AuthContext | None = None,
    ) -> AttemptResult:
        """Check ``user``'s password through the lockout: the one call for a password login.

        The try is counted before the check.  A wrong password (or an unknown user) is
        ``success=False`` with ``remaining``/``locked`` — never an exception; a correct
        password resets the count, and when the customer must change it first the result
        has ``change_required=True`` (call ``passwords.change_password`` before going on).
        Raises :class:`AccountLocked` (the password is not checked) when the login is
        locked.  With an audit log every attempt is recorded as ``password_login`` with
        outcome ``ok``, ``change_required`` or ``deny`` (never the password).
        """
        change_required = False

        def check() -> bool:
            nonlocal change_required
            try:
                passwords.login(user, password)
            except PasswordIncorrect:
                return False
            except PasswordChangeRequired:
                change_required = True
            return True

        result = self.attempt(user, check, context=context)
        outcome = "deny"
        if result.success:
            outcome = "change_required" if change_required else "ok"
        self._audit(
            "password_login",
            user,
            outcome,
            context,
            {"failures": str(result.failures), "remaining": str(result.remaining)},
        )
        if change_required:
            return AttemptResult(True, 0, self.limit, False, None, change_required=True)
        return result

    def _on_failure(self, user: str, value: int, until: datetime, ctx: AuthContext | None) -> None:
        if value != self.limit:
            return
        # exactly one attempt per day reaches the limit: it locks and notifies
        event = LockoutEvent(user, value, until)
        details = {"failures": str(value), "locked_until": until.isoformat()}
        self._audit("login_locked", user, "locked", ctx, details)
        if self.notifier is None:
            log.warning("login of %s locked but no notifier is configured", user)
            return
        try:
            self.notifier.notify_locked(event)
        except EbankAuthError as exc:
            log.error("could not notify %s of the login lock: %s", user, exc)
            self._audit("login_locked_notify_failed", user, "failed", ctx, {"error": str(exc)})
        else:
            self._audit("login_locked_notified", user, "ok", ctx, {})

    def ensure_not_locked(self, user: str) -> None:
        """Raise :class:`AccountLocked` if ``user`` is locked (no attempt counted)."""
        if self.status(user).locked:
            raise AccountLocked()

    def status(self, user: str) -> LockoutStatus:
        failures = self.store.get_counter(self._key(user))
        locked = failures >= self.limit
        return LockoutStatus(
            user, failures, self.limit, locked, self.end_of_day() if locked else None
        )

    def unlock(self, user: str, *, admin: str, reason: str = "") -> LockoutStatus:
        """Administrator unlock (audited): clears the failure count."""
        if not isinstance(admin, str) or not admin:
            raise ConfigurationError("unlock needs the administrator's id")
        before = self.status(user)
        self.store.reset_counter(self._key(user))
        self._audit(
            "login_unlocked",
            user,
            "ok",
            None,
            {"admin": admin, "reason": reason, "failures_before": str(before.failures)},
        )
        return self.status(user)
