"""Enrolling a USB Key transaction key needs its per-key attestation (issue 10 item 2)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from ebank_auth.crypto import sm2
from ebank_auth.errors import AccessDenied, TokenNotGenuine
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
from ebank_auth.usbkey.emulator.factory import Manufacturer
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


def _registry() -> tuple[CredentialRegistry, ConfirmationVerifier]:
    store = MemoryStore()
    registry = CredentialRegistry(store)
    return registry, ConfirmationVerifier(registry, ReplayCache(store), RawPublicKeySource())


def _trust(token: SoftToken) -> TrustConfig:
    return TrustConfig((token.manufacturer.root,))


def test_enrolment_refuses_a_key_attested_as_login(token: SoftToken, session: TokenSession) -> None:
    """The same attack through the attested path: the token itself says "login key, no
    confirmation", so the bank refuses it and stores nothing."""
    pub = session.generate_key("sign", usage=ContainerUsage.LOGIN)
    registry, _ = _registry()
    with pytest.raises(AccessDenied, match="usage=login, confirmation=none"):
        registry.enrol_token_key(
            "alice", pub.public_key_der, session.attest_key("sign").to_pem(), _trust(token)
        )
    fingerprint = RawPublicKeySource().resolve(pub.public_key_der)[1]
    assert registry.by_fingerprint(fingerprint) is None


def test_enrolled_transaction_key_confirms_and_login_digest_does_not(
    token: SoftToken, session: TokenSession
) -> None:
    pub = session.generate_key("sign")
    session.generate_key("login", usage=ContainerUsage.LOGIN)
    registry, verifier = _registry()
    cred = registry.enrol_token_key(
        "alice", pub.public_key_der, session.attest_key("sign").to_pem(), _trust(token)
    )
    assert cred.serial == session.device_info().serial
    tx = _tx()
    result = session.confirm_and_sign(tx)
    assert verifier.verify(tx, result.signature, pub.public_key_der, customer="alice")
    # the login key cannot be enrolled next to it, so its digest signatures confirm nothing
    login = session.public_key("login")
    with pytest.raises(AccessDenied):
        registry.enrol_token_key(
            "alice", login.public_key_der, session.attest_key("login").to_pem(), _trust(token)
        )


def test_enrolment_refuses_a_signer_key_other_than_the_attested_one(
    token: SoftToken, session: TokenSession
) -> None:
    """A genuine transaction-key attestation cannot vouch for the attacker's own key."""
    session.generate_key("sign")
    own = sm2.generate_private_key().public_key().to_der()
    registry, _ = _registry()
    with pytest.raises(AccessDenied, match="not the key the token attested"):
        registry.enrol_token_key("alice", own, session.attest_key("sign").to_pem(), _trust(token))
    assert registry.by_fingerprint(RawPublicKeySource().resolve(own)[1]) is None


def test_enrolment_refuses_an_attestation_from_an_untrusted_maker(
    session: TokenSession,
) -> None:
    pub = session.generate_key("sign")
    registry, _ = _registry()
    with pytest.raises(TokenNotGenuine):
        registry.enrol_token_key(
            "alice",
            pub.public_key_der,
            session.attest_key("sign").to_pem(),
            TrustConfig((Manufacturer.create(None).root,)),
        )
    assert registry.by_serial(SignerKind.USBKEY, session.device_info().serial) is None


def test_unattested_usb_keys_only_when_the_bank_opts_in() -> None:
    registry = CredentialRegistry(MemoryStore(), allow_unattested_tokens=True)
    assert registry.bind("alice", SignerKind.USBKEY, "TK-1", "ab" * 32).serial == "TK-1"
    phone = CredentialRegistry(MemoryStore())
    assert (
        phone.bind("bob", SignerKind.PHONE_SHIELD, "PS-1", "cd" * 32).kind
        is SignerKind.PHONE_SHIELD
    )
