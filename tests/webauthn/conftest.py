"""Fixtures for the passkey server tests: a relying party, a server on a memory store with
a settable clock and an audit log, and the test's software authenticator (softauthn.py)."""

from __future__ import annotations

import pytest

from ebank_auth.audit import AuditLog
from ebank_auth.audit.signing import HmacSm3Key
from ebank_auth.store import MemoryStore
from ebank_auth.webauthn import PasskeyServer, RelyingParty
from plugins.store_backends import FakeClock
from webauthn.softauthn import SoftAuthenticator

ORIGIN = "https://bank.example"
RP = RelyingParty(id="bank.example", name="Example Bank", origins=(ORIGIN,))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemoryStore:
    return MemoryStore(clock=clock)


@pytest.fixture
def audit(store: MemoryStore) -> AuditLog:
    return AuditLog(store, HmacSm3Key(b"k" * 32))


@pytest.fixture
def server(store: MemoryStore, audit: AuditLog) -> PasskeyServer:
    return PasskeyServer(store, RP, audit=audit)


@pytest.fixture
def authenticator() -> SoftAuthenticator:
    return SoftAuthenticator(ORIGIN)
