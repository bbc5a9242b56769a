"""Host session against the in-process software token: keys, certificates, PINs, signing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ebank_auth.crypto import rsa, sm2, sm3, x509
from ebank_auth.errors import (
    ApduError,
    PinIncorrect,
    PinLocked,
    PinPolicyError,
    SecurityStatusNotSatisfied,
)
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.apdu import StatusWord
from ebank_auth.usbkey.conformance import RecordingConnection
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove
from ebank_auth.usbkey.protocol import Algorithm, ContainerUsage, PinRef
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.transport.inprocess import InProcessConnection

from .conftest import ADMIN_PIN, USER_PIN, trust_for


def test_device_info_and_attestation(session: TokenSession, token: SoftToken) -> None:
    info = session.device_info()
    assert info.serial == token.serial
    assert session.attestation is not None and session.attestation.genuine
    assert session.secure


def test_key_operations_need_pin(session: TokenSession) -> None:
    with pytest.raises(SecurityStatusNotSatisfied):
        session.generate_key()
    session.verify_pin(USER_PIN)
    info = session.generate_key()
    assert session.public_key().public_key_der == info.public_key_der


def test_private_key_never_leaves_the_token(token: SoftToken) -> None:
    rec = RecordingConnection(InProcessConnection(token))
    s = TokenSession.open(rec, trust_for(token))
    s.verify_pin(USER_PIN)
    s.generate_key()
    s.public_key()
    s.list_containers()
    container = token.state.containers["sign"]
    secret = sm2.load_pem_private_key(container.private_key_pem).to_bytes()
    device_secret = sm2.load_pem_private_key(token.state.device_key_pem).to_bytes()
    for _, response in rec.log:
        assert secret not in response
        assert device_secret not in response
    assert b"PRIVATE KEY" not in b"".join(r for _, r in rec.log)


def test_certificate_import_export(signer: TokenSession) -> None:
    ca = x509.CertificateAuthority.create_root("CN=Bank CA", sm2.generate_private_key())
    pub = signer.public_key().public_key()
    cert = ca.issue("CN=Alice", pub)
    signer.import_certificate(cert.to_pem())
    assert signer.export_certificate() == cert.to_der()
    other = ca.issue("CN=Mallory", sm2.generate_private_key().public_key())
    with pytest.raises(ApduError) as exc:
        signer.import_certificate(other.to_der())
    assert exc.value.sw == StatusWord.WRONG_DATA
    assert signer.export_certificate() == cert.to_der()


def test_missing_container_is_reported(session: TokenSession) -> None:
    with pytest.raises(ApduError, match="not found"):
        session.public_key("nothing")
    with pytest.raises(ApduError):
        session.export_certificate("nothing")


def test_login_digest_signing(session: TokenSession) -> None:
    session.verify_pin(USER_PIN)
    info = session.generate_key("login", Algorithm.SM2, ContainerUsage.LOGIN)
    pub = info.public_key()
    assert isinstance(pub, sm2.SM2PublicKey)
    challenge = b"login challenge 42"
    e = sm2.compute_e(pub, challenge, sm2.DEFAULT_UID)
    sig = session.sign_digest(e, "login")
    pub.verify(sig, challenge, uid=sm2.DEFAULT_UID)


def test_transaction_key_refuses_raw_digest(
    signer: TokenSession, make_tx: Callable[..., Transaction]
) -> None:
    with pytest.raises(ApduError) as exc:
        signer.sign_digest(sm3.digest(make_tx().encode()), "sign")
    assert exc.value.sw == StatusWord.CONDITIONS_NOT_SATISFIED


def test_rsa_2048_confirm_and_sign(
    session: TokenSession, make_tx: Callable[..., Transaction]
) -> None:
    session.verify_pin(USER_PIN)
    info = session.generate_key("rsa", Algorithm.RSA2048)
    pub = info.public_key()
    assert isinstance(pub, rsa.RSAPublicKey) and pub.key_size == 2048
    tx = make_tx()
    result = session.confirm_and_sign(tx, "rsa")
    assert result.algorithm is Algorithm.RSA2048
    pub.verify(result.signature, tx.encode(), hash=rsa.Hash.SHA256, padding=rsa.Padding.PKCS1V15)


def test_random_and_containers(signer: TokenSession) -> None:
    a, b = signer.random(32), signer.random(32)
    assert len(a) == 32 and a != b
    names = [c.name for c in signer.list_containers()]
    assert names == ["sign"]


def test_pin_change_policy_and_unblock(session: TokenSession) -> None:
    with pytest.raises(PinPolicyError):
        session.change_pin(USER_PIN, "123456")
    session.change_pin(USER_PIN, "Zx9-4417")
    with pytest.raises(PinIncorrect):
        session.verify_pin(USER_PIN)
    session.verify_pin("Zx9-4417")
    limit = session.pin_status().max_retries
    for _ in range(limit):
        with pytest.raises((PinIncorrect, PinLocked)):
            session.verify_pin("000000")
    with pytest.raises(PinLocked):
        session.verify_pin("Zx9-4417")
    with pytest.raises(PinIncorrect):
        session.unblock_pin("wrong-admin", "Qw7-7755")
    assert session.pin_status(PinRef.ADMIN).remaining == limit - 1
    session.unblock_pin(ADMIN_PIN, "Qw7-7755")
    assert session.pin_status(PinRef.ADMIN).remaining == limit
    session.verify_pin("Qw7-7755")
    assert session.pin_status().remaining == limit


def test_retry_limit_needs_admin_and_caps_at_ten(session: TokenSession) -> None:
    with pytest.raises(SecurityStatusNotSatisfied):
        session.set_retry_limit(3)
    session.verify_pin(ADMIN_PIN, PinRef.ADMIN)
    with pytest.raises(PinPolicyError):
        session.set_retry_limit(11)
    session.set_retry_limit(3)
    assert session.pin_status().max_retries == 3


def test_retry_limit_above_ten_refused_by_the_token(session: TokenSession) -> None:
    from ebank_auth.usbkey import tlv
    from ebank_auth.usbkey.protocol import Ins, Tag

    session.verify_pin(ADMIN_PIN, PinRef.ADMIN)
    with pytest.raises(ApduError) as exc:
        session.transmit_secure(
            Ins.SET_RETRY_LIMIT, tlv.build([(Tag.MAX_RETRIES, b"\x0b")]), p2=PinRef.USER
        )
    assert exc.value.sw == StatusWord.WRONG_DATA
    assert session.pin_status().max_retries <= 10


def test_soft_token_refuses_limit_above_ten() -> None:
    with pytest.raises(PinPolicyError):
        SoftToken(None, AutoApprove(), retry_limit=11)


def test_logout_forgets_pin(signer: TokenSession) -> None:
    signer.logout()
    with pytest.raises(SecurityStatusNotSatisfied):
        signer.generate_key()
