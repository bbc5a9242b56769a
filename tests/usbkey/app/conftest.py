"""Fixtures for the token-application tests (in-process software token and real pcscd)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.attestation import TrustConfig
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.transport.inprocess import InProcessConnection
from plugins.pcscd import pcscd_vpcd  # noqa: F401

USER_PIN = "314159"
ADMIN_PIN = "27182818"


def trust_for(token: SoftToken) -> TrustConfig:
    """Trust the software token's (test) manufacturer."""
    return TrustConfig((token.manufacturer.root,), token.manufacturer.allowlist)


def open_session(token: SoftToken) -> TokenSession:
    return TokenSession.open(InProcessConnection(token), trust_for(token))


@pytest.fixture
def token() -> SoftToken:
    return SoftToken(None, AutoApprove())


@pytest.fixture
def session(token: SoftToken) -> Iterator[TokenSession]:
    s = open_session(token)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def signer(session: TokenSession) -> TokenSession:
    """A session with the user PIN verified and an SM2 transaction key in 'sign'."""
    session.verify_pin(USER_PIN)
    session.generate_key()
    return session


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "token"


def sample_tx(amount: str = "1234.50", memo: str = "rent", tx_id: str = "T1") -> Transaction:
    return Transaction(
        tx_id=tx_id,
        tx_type="transfer",
        payer_account="6222000011112222",
        payee_account="6222000033334444",
        payee_name="张三",
        amount=Decimal(amount),
        currency="CNY",
        timestamp=datetime(2026, 11, 22, 10, 30, tzinfo=timezone.utc),
        memo=memo,
    )


@pytest.fixture
def make_tx() -> Callable[..., Transaction]:
    return sample_tx


@pytest.fixture
def make_session() -> Callable[[SoftToken], TokenSession]:
    return open_session


@pytest.fixture
def make_trust() -> Callable[[SoftToken], TrustConfig]:
    return trust_for
