"""Transaction integrity (AU-8, UK-10): replay cache on every store, and
confirmation signatures by a customer's own USB Key / phone-shield certificate."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from ebank_auth.audit import AuditLog, HmacSm3Key
from ebank_auth.crypto import rsa, sm2, x509
from ebank_auth.errors import (
    AccessDenied,
    CertificateError,
    DuplicateTransaction,
    InvalidKey,
    InvalidSignature,
)
from ebank_auth.policy import DEFAULT_TIMEZONE
from ebank_auth.policy.transactions import (
    CertificateSource,
    ConfirmationVerifier,
    CredentialRegistry,
    RawPublicKeySource,
    ReplayCache,
    SignerKind,
)
from ebank_auth.store import MemoryStore
from ebank_auth.transaction import Transaction, new_tx_id
from plugins.store_backends import FakeClock, StoreFactory

NOW = datetime(2026, 3, 10, 14, 0, tzinfo=DEFAULT_TIMEZONE)


def make_tx(
    tx_id: str | None = None, amount: str = "52000.00", when: datetime = NOW
) -> Transaction:
    return Transaction(
        tx_id=tx_id or new_tx_id(),
        tx_type="transfer",
        payer_account="6222021234567890",
        payee_account="6222029876543210",
        payee_name="李四",
        amount=Decimal(amount),
        currency="CNY",
        timestamp=when,
    )


# ------------------------------------------------------------------ replay


@pytest.mark.parametrize("store_backend", ["memory", "sqlite", "redis"], indirect=True)
def test_same_transaction_id_twice_is_refused(store_backend: StoreFactory) -> None:
    clock = FakeClock(NOW.timestamp() + 5)
    cache = ReplayCache(store_backend(clock))
    tx = make_tx("order-0001")
    cache.register(tx)
    assert cache.seen("order-0001")
    with pytest.raises(DuplicateTransaction, match="order-0001"):
        cache.register(tx)
    # a different transaction reusing the id is refused too
    with pytest.raises(DuplicateTransaction):
        ReplayCache(store_backend(clock)).register(make_tx("order-0001", amount="1.00"))
    ReplayCache(store_backend(clock)).register(make_tx("order-0002"))


@pytest.mark.parametrize("store_backend", ["sqlite", "redis"], indirect=True)
def test_replay_cache_shared_between_store_handles(store_backend: StoreFactory) -> None:
    clock = FakeClock(NOW.timestamp())
    a, b = ReplayCache(store_backend(clock)), ReplayCache(store_backend(clock))
    tx = make_tx()
    a.register(tx)
    with pytest.raises(DuplicateTransaction):
        b.register(tx)


def test_stale_and_future_transactions_are_refused() -> None:
    clock = FakeClock(NOW.timestamp())
    cache = ReplayCache(MemoryStore(clock=clock), max_age=600, max_skew=120)
    with pytest.raises(AccessDenied, match="older than"):
        cache.register(make_tx(when=NOW - timedelta(seconds=601)))
    with pytest.raises(AccessDenied, match="future"):
        cache.register(make_tx(when=NOW + timedelta(seconds=121)))
    tx = make_tx(when=NOW - timedelta(seconds=590))
    cache.register(tx)
    clock.advance(600 + 120 + 59)  # the id outlives the freshness window
    with pytest.raises((DuplicateTransaction, AccessDenied)):
        cache.register(tx)
    forever = ReplayCache(MemoryStore(clock=clock), max_age=None)
    old = make_tx(when=NOW - timedelta(days=400))
    forever.register(old)
    with pytest.raises(DuplicateTransaction):
        forever.register(old)


# ------------------------------------------------------------------ confirmation signatures


@pytest.fixture(scope="module")
def pki() -> dict[str, object]:
    root_key, alice_key, bob_key, other_root_key = (sm2.generate_private_key() for _ in range(4))
    root = x509.CertificateAuthority.create_root(
        "CN=Bank Root,O=Bank,C=CN", root_key, valid_days=3650
    )
    usage = {x509.KeyUsage.DIGITAL_SIGNATURE, x509.KeyUsage.NON_REPUDIATION}
    alice = root.issue(
        "CN=Alice,O=Bank,C=CN", alice_key.public_key(), key_usage=usage, valid_days=365
    )
    bob = root.issue("CN=Bob,O=Bank,C=CN", bob_key.public_key(), key_usage=usage, valid_days=365)
    enc_only = root.issue(
        "CN=Alice Enc,O=Bank,C=CN",
        alice_key.public_key(),
        key_usage={x509.KeyUsage.KEY_ENCIPHERMENT},
        valid_days=365,
    )
    rogue = x509.CertificateAuthority.create_root("CN=Rogue,C=CN", other_root_key, valid_days=10)
    forged = rogue.issue(
        "CN=Alice,O=Bank,C=CN", alice_key.public_key(), key_usage=usage, valid_days=365
    )
    return {
        "root": root.certificate,
        "alice_key": alice_key,
        "alice": alice.to_der(),
        "bob_key": bob_key,
        "bob": bob.to_der(),
        "enc_only": enc_only.to_der(),
        "forged": forged.to_der(),
    }


def verifier(
    pki: dict[str, object], clock: FakeClock, audit: AuditLog | None = None
) -> tuple[ConfirmationVerifier, CredentialRegistry]:
    store = MemoryStore(clock=clock)
    reg = CredentialRegistry(store, allow_unattested_tokens=True)  # certificates, no attestation
    alice = x509.load_certificate(pki["alice"])  # type: ignore[arg-type]
    bob = x509.load_certificate(pki["bob"])  # type: ignore[arg-type]
    reg.bind("alice", SignerKind.USBKEY, "TK-0001", alice.fingerprint("sm3"))
    reg.bind("bob", SignerKind.PHONE_SHIELD, "PS-0002", bob.fingerprint("sm3"))
    source = CertificateSource([pki["root"]])  # type: ignore[list-item]
    return ConfirmationVerifier(reg, ReplayCache(store), source, audit=audit), reg


def sign(key: object, tx: Transaction) -> bytes:
    return key.sign(tx.encode(), uid=sm2.DEFAULT_UID)  # type: ignore[attr-defined,no-any-return]


def test_valid_confirmation_then_replay_refused(pki: dict[str, object]) -> None:
    clock = FakeClock(NOW.timestamp() + 30)
    store = MemoryStore(clock=clock)
    audit = AuditLog(store, HmacSm3Key(b"a" * 32))
    v, _ = verifier(pki, clock, audit)
    tx = make_tx()
    sig = sign(pki["alice_key"], tx)
    result = v.verify(tx, sig, pki["alice"], customer="alice", kind="usbkey")  # type: ignore[arg-type]
    assert result.credential.serial == "TK-0001" and result.digest == tx.digest()
    with pytest.raises(DuplicateTransaction):
        v.verify(tx, sig, pki["alice"], customer="alice")  # type: ignore[arg-type]
    recs = [r for r in audit.records() if r["event"] == "transaction_confirmation"]
    assert [r["outcome"] for r in recs] == ["ok", "deny"]
    assert recs[0]["tx"]["payee"] == "622202******3210" and recs[0]["tx"]["payee_name"] == "*四"
    assert recs[0]["tx"]["digest"] == tx.digest().hex()


@pytest.mark.parametrize(
    "field, value",
    [
        ("amount", "52000.01"),
        ("payee_account", "6222020000000000"),
        ("payer_account", "6222020000000001"),
        ("timestamp", "2026-03-10T14:00:01+08:00"),
        ("payee_name", "王五"),
    ],
)
def test_altered_key_data_fails_and_records_nothing(
    pki: dict[str, object], field: str, value: str
) -> None:
    clock = FakeClock(NOW.timestamp())
    v, _ = verifier(pki, clock)
    tx = make_tx("tx-alter")
    sig = sign(pki["alice_key"], tx)
    altered = Transaction.from_dict({**tx.to_dict(), field: value})
    with pytest.raises(InvalidSignature, match="payer, payee, amount"):
        v.verify(altered, sig, pki["alice"], customer="alice")  # type: ignore[arg-type]
    assert not v.replay.seen("tx-alter")  # a bad signature does not burn the id
    v.verify(tx, sig, pki["alice"], customer="alice")  # type: ignore[arg-type]


def test_certificate_of_another_customer_is_refused(pki: dict[str, object]) -> None:
    v, _ = verifier(pki, FakeClock(NOW.timestamp()))
    tx = make_tx()
    with pytest.raises(AccessDenied, match="does not belong to this customer"):
        v.verify(tx, sign(pki["bob_key"], tx), pki["bob"], customer="alice")  # type: ignore[arg-type]
    with pytest.raises(AccessDenied, match="phone_shield"):
        v.verify(tx, sign(pki["bob_key"], tx), pki["bob"], customer="bob", kind="usbkey")  # type: ignore[arg-type]


@pytest.mark.parametrize("cert", ["enc_only", "forged"])
def test_bad_signer_certificates(pki: dict[str, object], cert: str) -> None:
    v, reg = verifier(pki, FakeClock(NOW.timestamp()))
    c = x509.load_certificate(pki[cert])  # type: ignore[arg-type]
    reg.bind("alice", SignerKind.USBKEY, f"TK-{cert}", c.fingerprint("sm3"))
    tx = make_tx()
    with pytest.raises(CertificateError):
        v.verify(tx, sign(pki["alice_key"], tx), pki[cert], customer="alice")  # type: ignore[arg-type]


def test_garbage_signature_and_signer(pki: dict[str, object]) -> None:
    v, _ = verifier(pki, FakeClock(NOW.timestamp()))
    tx = make_tx()
    with pytest.raises(InvalidSignature):
        v.verify(tx, b"\x30\x00", pki["alice"], customer="alice")  # type: ignore[arg-type]
    with pytest.raises(CertificateError):
        v.verify(tx, sign(pki["alice_key"], tx), b"not a certificate", customer="alice")


def test_raw_public_key_source() -> None:
    clock = FakeClock(NOW.timestamp())
    store = MemoryStore(clock=clock)
    key = sm2.generate_private_key()
    source = RawPublicKeySource()
    _, fp = source.resolve(key.public_key().to_pem())
    assert source.resolve(key.public_key().to_bytes())[1] == fp
    assert source.resolve(key.public_key().to_der())[1] == fp
    reg = CredentialRegistry(store)
    reg.bind("carol", "phone_shield", "PS-9", fp)
    v = ConfirmationVerifier(reg, ReplayCache(store), source)
    tx = make_tx()
    v.verify(tx, sign(key, tx), key.public_key().to_pem(), customer="carol")
    with pytest.raises(InvalidKey):
        source.resolve(b"\x04" + b"\x01" * 64)


@pytest.mark.parametrize("rsa_hash", [rsa.Hash.SHA256, rsa.Hash.SM3])
def test_rsa_token_confirmation(rsa_hash: rsa.Hash) -> None:
    clock = FakeClock(NOW.timestamp())
    store = MemoryStore(clock=clock)
    key = rsa.generate_private_key(2048)
    source = RawPublicKeySource()
    resolved, fp = source.resolve(key.public_key().to_pem())
    assert resolved == key.public_key() and source.resolve(key.public_key().to_der())[1] == fp
    reg = CredentialRegistry(store, allow_unattested_tokens=True)  # certificates, no attestation
    reg.bind("dave", "usbkey", "TK-RSA", fp)
    v = ConfirmationVerifier(reg, ReplayCache(store), source)
    tx, other = make_tx(), make_tx(amount="52000.01")
    signature = key.sign(tx.encode(), hash=rsa_hash, padding=rsa.Padding.PKCS1V15)
    with pytest.raises(InvalidSignature, match="amount"):
        v.verify(other, signature, key.public_key().to_pem(), customer="dave")
    result = v.verify(tx, signature, key.public_key().to_pem(), customer="dave")
    assert result.credential.serial == "TK-RSA"
    with pytest.raises(DuplicateTransaction):
        v.verify(tx, signature, key.public_key().to_pem(), customer="dave")


def test_raw_public_key_source_refuses_short_rsa_and_junk() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa as crsa

    short = crsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    der = short.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for junk in (der, b"", b"0\x03\x02\x01\x00", b"-----BEGIN PUBLIC KEY-----\nAAAA\n"):
        with pytest.raises(InvalidKey, match="SM2 key nor an RSA key"):
            RawPublicKeySource().resolve(junk)


def test_registry_is_one_to_one() -> None:
    reg = CredentialRegistry(MemoryStore(), allow_unattested_tokens=True)
    reg.bind("alice", "usbkey", "TK-1", "AB" * 32)
    reg.bind("alice", "usbkey", "TK-1", "ab" * 32)  # same binding again: fine
    with pytest.raises(AccessDenied, match="already bound"):
        reg.bind("bob", "usbkey", "TK-2", "ab" * 32)  # same certificate
    with pytest.raises(AccessDenied, match="already bound"):
        reg.bind("bob", "usbkey", "TK-1", "cd" * 32)  # same token serial
    cred = reg.by_serial("usbkey", "TK-1")
    assert cred is not None and cred.customer == "alice"
    reg.unbind("ab" * 32)
    assert reg.by_fingerprint("ab" * 32) is None
    reg.bind("bob", "usbkey", "TK-1", "ab" * 32)
