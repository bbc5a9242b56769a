"""Enrolling a USB Key transaction key needs its per-key attestation (issue 10 item 2)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from ebank_auth.crypto import sm2
from ebank_auth.errors import AccessDenied
from ebank_auth.policy.transactions import (
    ConfirmationVerifier,
    CredentialRegistry,
    RawPublicKeySource,
    ReplayCache,
    SignerKind,
)
from ebank_auth.store import MemoryStore
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.attestation import TrustConfig
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove
from ebank_auth.usbkey.protocol import ContainerUsage
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.transport.inprocess import InProcessConnection

USER_PIN = "314159"


def _tx() -> Transaction:
    return Transaction(
        tx_id="ATTACK-1",
        tx_type="transfer",
        payer_account="6222021234567890",
        payee_account="6222029876543210",
        payee_name="Mallory",
        amount=Decimal("50000.00"),
        currency="CNY",
        timestamp=datetime.now(timezone.utc),
    )


@pytest.fixture
def token() -> SoftToken:
    return SoftToken(None, AutoApprove())


@pytest.fixture
def session(token: SoftToken) -> TokenSession:
    trust = TrustConfig((token.manufacturer.root,), token.manufacturer.allowlist)
    s = TokenSession.open(InProcessConnection(token), trust)
    s.verify_pin(USER_PIN)
    return s


def test_login_key_signing_a_transaction_is_refused_at_registration(
    session: TokenSession,
) -> None:
    """Attack: malware on the customer's PC generates a *login* key in container ``sign`` and
    hands the bank its public key as the token's transaction key.  Later it signs
    e = SM3(Z ‖ canonical transaction) with SIGN DIGEST — no display, no button — and the
    signature verifies as a transaction confirmation.  Before the fix the bank registered the
    key without asking what kind of key it is; now a USB Key credential is refused unless it
    comes with an attestation saying "transaction key, confirmation enforced"."""
    pub = session.generate_key("sign", usage=ContainerUsage.LOGIN)
    key = pub.public_key()
    assert isinstance(key, sm2.SM2PublicKey)
    tx = _tx()
    signature = session.sign_digest(sm2.compute_e(key, tx.encode(), sm2.DEFAULT_UID), "sign")
    store = MemoryStore()
    registry = CredentialRegistry(store)
    verifier = ConfirmationVerifier(registry, ReplayCache(store), RawPublicKeySource())
    fingerprint = RawPublicKeySource().resolve(pub.public_key_der)[1]
    with pytest.raises(AccessDenied):
        registry.bind("alice", SignerKind.USBKEY, session.device_info().serial, fingerprint)
        verifier.verify(tx, signature, pub.public_key_der, customer="alice")
    assert registry.by_fingerprint(fingerprint) is None
