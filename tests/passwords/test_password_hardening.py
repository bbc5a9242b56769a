"""Issue 11 item 6: user enumeration by timing, and old-password guessing through
``change_password``.  Timing is shown by counting the argon2 work done (tests never
time anything): an unknown user must cost the same hash verification as a known one."""

from __future__ import annotations

import pytest

from ebank_auth.errors import AccountLocked, PasswordIncorrect
from ebank_auth.passwords import PasswordHasher, PasswordService, Secret
from ebank_auth.policy import LoginLockout
from ebank_auth.store import MemoryStore
from plugins.store_backends import FakeClock


class CountingHasher(PasswordHasher):
    """The real argon2id hasher (small parameters) that counts hash verifications."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost_kib=1024, parallelism=1)
        self.verifications = 0

    def check(self, encoded: str, password: Secret) -> bool:
        self.verifications += 1
        return super().check(encoded, password)


def test_unknown_user_costs_one_hash_verification_like_a_known_user() -> None:
    """Attack: an unknown user was answered in microseconds, a known one after argon2
    (~300 ms): the response time told which user names exist.  Both now run exactly
    one argon2 verification with the same parameters."""
    hasher = CountingHasher()
    service = PasswordService(MemoryStore(clock=FakeClock()), hasher)
    service.set_initial_password("alice", "Initial#2026")
    hasher.verifications = 0
    with pytest.raises(PasswordIncorrect):
        service.login("alice", "wrong-password")
    known = hasher.verifications
    hasher.verifications = 0
    with pytest.raises(PasswordIncorrect):
        service.login("ghost", "wrong-password")
    assert hasher.verifications == known == 1


def test_unknown_user_change_password_costs_the_same_work() -> None:
    hasher = CountingHasher()
    service = PasswordService(MemoryStore(clock=FakeClock()), hasher)
    with pytest.raises((PasswordIncorrect, AccountLocked)):
        service.change_password("ghost", "old-password", "Blue-Harbour-72")
    assert hasher.verifications == 1


def test_change_password_guesses_are_counted_and_lock() -> None:
    """Attack: ``change_password`` checked the old password without counting, so a
    caller (a stolen session) could guess the old password without ever being locked.
    Wrong old passwords count like wrong logins: after 5 the account is locked and
    even the right old password is refused."""
    service = PasswordService(MemoryStore(clock=FakeClock()), CountingHasher())
    service.set_initial_password("alice", "Initial#2026")
    for guess in range(5):
        with pytest.raises(PasswordIncorrect):
            service.change_password("alice", f"guess-{guess}", "Blue-Harbour-72")
    with pytest.raises(AccountLocked):
        service.change_password("alice", "Initial#2026", "Blue-Harbour-72")


def test_change_password_counts_on_the_login_lockout() -> None:
    """With the application's LoginLockout, change_password guesses and login failures
    are one counter (AU-6: ≤ 5 consecutive failures lock the login)."""
    store = MemoryStore(clock=FakeClock())
    lockout = LoginLockout(store)
    service = PasswordService(store, CountingHasher(), lockout=lockout)
    service.set_initial_password("alice", "Initial#2026")
    for guess in range(3):
        with pytest.raises(PasswordIncorrect):
            service.change_password("alice", f"guess-{guess}", "Blue-Harbour-72")
    assert lockout.status("alice").failures == 3
    service.change_password("alice", "Initial#2026", "Blue-Harbour-72")
    assert lockout.status("alice").failures == 0
