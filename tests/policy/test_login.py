"""Password login through the lockout (AU-6, AU-11): a correct password never counts as a
failure, the change-required state reaches the caller, one call does the common case."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.errors import AccountLocked, PasswordChangeRequired, PasswordIncorrect
from ebank_auth.passwords import PasswordHasher, PasswordService
from ebank_auth.policy.lockout import LoginLockout
from ebank_auth.store import MemoryStore

FAST = PasswordHasher(time_cost=1, memory_cost_kib=8, parallelism=1)


def _services(limit: int = 5) -> tuple[PasswordService, LoginLockout]:
    store = MemoryStore()
    passwords = PasswordService(store, FAST)
    passwords.set_initial_password("c1", "Initial#2026")
    return passwords, LoginLockout(store, limit=limit)


def test_correct_password_with_change_required_is_not_a_failure() -> None:
    """Bug/attack encoded: a customer whose password must change (first login, reset) types
    the *correct* password; ``PasswordService.login`` raises ``PasswordChangeRequired`` and
    ``LoginLockout.attempt`` counted that as a failed attempt.  Five correct logins locked the
    customer out for the day, and an attacker's wrong guesses were never reset by them (so
    a correct login in between did not restore the customer's attempts)."""
    passwords, lockout = _services()

    def check() -> bool:  # the wrapper every caller wrote (a wrong password is False)
        try:
            passwords.login("c1", "Initial#2026")
        except PasswordIncorrect:
            return False
        return True

    for _ in range(lockout.limit):
        with pytest.raises(PasswordChangeRequired):
            lockout.attempt("c1", check)
        assert lockout.status("c1").failures == 0
    assert not lockout.status("c1").locked


def test_change_required_resets_an_attackers_count() -> None:
    passwords, lockout = _services()
    for _ in range(3):
        assert not lockout.password_login(passwords, "c1", "guess-1").success
    with pytest.raises(PasswordChangeRequired):
        lockout.attempt("c1", lambda: bool(passwords.login("c1", "Initial#2026")))
    assert lockout.status("c1").failures == 0


def test_password_login_is_the_one_call() -> None:
    from ebank_auth.audit import AuditLog, HmacSm3Key

    store = MemoryStore()
    passwords = PasswordService(store, FAST)
    passwords.set_initial_password("c1", "Initial#2026")
    audit = AuditLog(store, HmacSm3Key(b"login-test-audit-key-32-bytes!!!"))
    lockout = LoginLockout(store, limit=3, audit=audit)

    first = lockout.password_login(passwords, "c1", "Initial#2026")
    assert (first.success, first.change_required, first.failures) == (True, True, 0)
    passwords.change_password("c1", "Initial#2026", "Blue-Harbour-72")
    ok = lockout.password_login(passwords, "c1", "Blue-Harbour-72")
    assert ok.success and not ok.change_required
    wrong = lockout.password_login(passwords, "c1", "guess")
    assert (wrong.success, wrong.failures, wrong.remaining) == (False, 1, 2)
    unknown = lockout.password_login(passwords, "nobody", "guess")
    assert not unknown.success  # an unknown user looks like a wrong password
    lockout.password_login(passwords, "c1", "guess")
    assert lockout.password_login(passwords, "c1", "guess").locked
    with pytest.raises(AccountLocked):  # the correct password is not even checked now
        lockout.password_login(passwords, "c1", "Blue-Harbour-72")
    logged = [(r["event"], r["outcome"]) for r in audit.records() if r["user"] == "c1"]
    assert logged[:3] == [
        ("password_login", "change_required"),
        ("password_login", "ok"),
        ("password_login", "deny"),
    ]
    assert all("Blue-Harbour" not in str(r) and "guess" not in str(r) for r in audit.records())


def test_check_returning_a_non_bool_fails_closed() -> None:
    from ebank_auth.errors import ConfigurationError

    _, lockout = _services()
    with pytest.raises(ConfigurationError, match="password_login"):
        lockout.attempt("c1", lambda: None)  # type: ignore[arg-type,return-value]
    assert lockout.status("c1").failures == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["wrong", "correct", "must-change"]), max_size=12))
def test_only_wrong_passwords_count(steps: list[str]) -> None:
    """Invariant: the failure count is the number of wrong passwords since the last correct
    one (whether or not a change is due); the login locks exactly when it reaches the limit,
    and then nothing is checked until unlocked."""
    store = MemoryStore()
    passwords = PasswordService(store, FAST)
    passwords.set_initial_password("u", "Initial#2026")
    passwords.change_password("u", "Initial#2026", "Blue-Harbour-72")
    lockout = LoginLockout(store, limit=3)
    expected, must_change = 0, False
    for step in steps:
        if step == "must-change":  # the bank resets the password: a change is due
            passwords.set_initial_password("u", "Blue-Harbour-72")
            must_change = True
        if expected >= lockout.limit:
            with pytest.raises(AccountLocked):
                lockout.password_login(passwords, "u", "Blue-Harbour-72")
            continue
        pw = "guess" if step == "wrong" else "Blue-Harbour-72"
        result = lockout.password_login(passwords, "u", pw)
        expected = expected + 1 if step == "wrong" else 0
        assert result.success is (step != "wrong")
        assert result.change_required is (step != "wrong" and must_change)
        assert result.failures == expected
        assert result.locked is (expected == lockout.limit)
        assert lockout.status("u").failures == expected
