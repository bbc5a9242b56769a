"""Passkeys and the password lockout are separate (issue 14; shared notes: public-key factors
neither lock nor unlock the password counter): a failed passkey is not a wrong password, and
a good passkey neither resets the failures nor opens a locked login."""

from __future__ import annotations

import pytest

from ebank_auth.errors import AccountLocked, PasskeyRejected
from ebank_auth.policy import LoginLockout
from ebank_auth.store import MemoryStore
from ebank_auth.webauthn import PasskeyServer
from webauthn.conftest import RP
from webauthn.softauthn import SoftAuthenticator
from webauthn.test_server import register


def _fail_password(lockout: LoginLockout, user: str, times: int) -> None:
    for _ in range(times):
        lockout.attempt(user, lambda: False)


def test_passkey_failures_never_count_toward_the_password_lockout(
    store: MemoryStore, authenticator: SoftAuthenticator
) -> None:
    lockout = LoginLockout(store)
    server = PasskeyServer(store, RP, lockout=lockout)
    register(server, authenticator)
    _fail_password(lockout, "c1", 2)
    for _ in range(lockout.limit + 3):  # more failed passkeys than the lockout allows
        login = server.authenticate_begin("c1")
        with pytest.raises(PasskeyRejected):
            server.authenticate_complete(
                login.handle, authenticator.get(login.options, origin="https://evil.example")
            )
    status = lockout.status("c1")
    assert status.failures == 2 and not status.locked


def test_a_passkey_success_never_resets_the_password_failures(
    store: MemoryStore, authenticator: SoftAuthenticator
) -> None:
    lockout = LoginLockout(store)
    server = PasskeyServer(store, RP, lockout=lockout)
    register(server, authenticator)
    _fail_password(lockout, "c1", 3)
    login = server.authenticate_begin("c1")
    server.authenticate_complete(login.handle, authenticator.get(login.options))
    assert lockout.status("c1").failures == 3


@pytest.mark.parametrize("configured", [True, False])
def test_a_passkey_success_never_unlocks_a_locked_account(
    store: MemoryStore, authenticator: SoftAuthenticator, configured: bool
) -> None:
    lockout = LoginLockout(store)
    server = PasskeyServer(store, RP, lockout=lockout if configured else None)
    register(server, authenticator)
    _fail_password(lockout, "c1", lockout.limit)
    assert lockout.status("c1").locked
    login = server.authenticate_begin("c1")
    response = authenticator.get(login.options)
    if configured:  # the server refuses the locked customer outright
        with pytest.raises(AccountLocked):
            server.authenticate_complete(login.handle, response)
    else:  # the passkey verifies, but the lock is the app's to enforce and it stays
        server.authenticate_complete(login.handle, response)
    status = lockout.status("c1")
    assert status.locked and status.failures == lockout.limit
    with pytest.raises(AccountLocked):
        lockout.ensure_not_locked("c1")
