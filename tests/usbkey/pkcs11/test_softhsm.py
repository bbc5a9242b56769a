"""The PKCS#11 backend against a real PKCS#11 peer, SoftHSM2 (Debian ``softhsm2``): slots,
login and PIN flags, key generation, signing verified by OpenSSL and by our crypto,
certificates by CKA_ID/label, and a CSR and a CMS message signed through the SigningKey
adapter (``openssl req -verify``, ``openssl cms -verify``)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from ebank_auth.crypto import cms, der, keys, x509
from ebank_auth.crypto.keys import SignatureAlgorithm
from ebank_auth.errors import (
    ContainerNotFound,
    InvalidInput,
    KeyAlreadyExists,
    NotSupportedByToken,
    PinIncorrect,
    PinPolicyError,
    SecurityStatusNotSatisfied,
    UnsupportedAlgorithm,
)
from ebank_auth.transaction import Transaction, new_tx_id
from ebank_auth.usbkey.protocol import Algorithm, ContainerUsage, PinRef
from ebank_auth.usbkey.token import Token
from ebank_auth.usbkey.vendor.pkcs11 import (
    Pkcs11Module,
    Pkcs11SigningKey,
    Pkcs11Token,
    TokenFlag,
    open_pkcs11,
)

from .conftest import LABEL, SO_PIN, USER_PIN, SoftHsm

DATA = b"transfer 100 CNY to 6222 0000 1111\n"


def _openssl(*args: str, cwd: Path) -> str:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI missing")
    proc = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"openssl {args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_slots_tokens_and_what_the_backend_can_show(softhsm: SoftHsm) -> None:
    with Pkcs11Module(softhsm.module) as module:
        slots = module.slots()
        assert len(slots) == 2  # the token "t" and SoftHSM's next free slot
        [info] = [t for t in module.tokens() if t.initialized]
        assert (info.label, info.manufacturer, info.model) == (
            LABEL,
            "SoftHSM project",
            "SoftHSM v2",
        )
        assert info.flags & TokenFlag.LOGIN_REQUIRED and info.flags & TokenFlag.RNG
        assert module.find_slot(None) == module.find_slot(LABEL) == info.slot_id
        assert module.find_slot(info.slot_id) == info.slot_id
        with module.open(LABEL) as tok:
            assert isinstance(tok, Token)
            assert tok.can_confirm is False  # no display: never WYSIWYS
            assert tok.attestation is not None and not tok.attestation.genuine
            assert tok.device_info().label == LABEL
            assert tok.device_info().serial == info.serial
            assert tok.description.endswith(f":{LABEL}")
            assert len(tok.random(32)) == 32


def test_login_and_pin_flags(token: Pkcs11Token) -> None:
    assert token.pin_status().remaining == token.pin_status().max_retries
    with pytest.raises(PinIncorrect) as wrong:
        token.verify_pin("0000")
    # SoftHSM2 sets CKF_USER_PIN_COUNT_LOW after a wrong PIN and never locks: the flags say
    # "few tries left", the count is the lowest the flags allow (2)
    assert token.pin_flags().count_low and not token.pin_flags().locked
    assert wrong.value.remaining == token.pin_status().remaining == 2
    for _ in range(12):
        with pytest.raises(PinIncorrect):
            token.verify_pin("0000")
    assert not token.pin_status().locked  # SoftHSM2 has no lockout
    token.verify_pin(USER_PIN)
    assert not token.pin_flags().count_low
    assert token.pin_status().remaining == token.pin_status().max_retries
    with pytest.raises(PinIncorrect):
        token.verify_pin("9999", PinRef.ADMIN)
    assert token.pin_flags(PinRef.ADMIN).count_low
    token.verify_pin(SO_PIN, PinRef.ADMIN)
    token.logout()
    token.logout()  # twice is fine


def test_keys_need_login(token: Pkcs11Token) -> None:
    with pytest.raises(SecurityStatusNotSatisfied):
        token.generate_key("login", Algorithm.ECC_P256)
    with pytest.raises(ContainerNotFound):
        token.sign_message(DATA, "login")


@pytest.mark.openssl_cli
@pytest.mark.parametrize(
    ("algorithm", "sig_alg"),
    [
        (Algorithm.ECC_P256, SignatureAlgorithm.ECDSA_SHA256),
        (Algorithm.RSA2048, SignatureAlgorithm.SHA256_RSA),
    ],
)
def test_generate_sign_and_openssl_verifies(
    token: Pkcs11Token, tmp_path: Path, algorithm: Algorithm, sig_alg: SignatureAlgorithm
) -> None:
    token.verify_pin(USER_PIN)
    info = token.generate_key("login", algorithm)
    assert (info.container, info.algorithm, info.usage) == (
        "login",
        algorithm,
        ContainerUsage.LOGIN,
    )
    signature = token.sign_message(DATA, "login")
    keys.verify_data(info.any_public_key(), sig_alg, signature, DATA)
    (tmp_path / "data").write_bytes(DATA)
    (tmp_path / "sig").write_bytes(signature)
    (tmp_path / "pub.pem").write_bytes(der.to_pem(info.public_key_der, "PUBLIC KEY"))
    out = _openssl(
        "dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig", "data", cwd=tmp_path
    )
    assert "Verified OK" in out
    # the public key reads back the same, before and after a logout
    assert token.public_key("login").public_key_der == info.public_key_der
    token.logout()
    assert token.public_key("login").public_key_der == info.public_key_der
    [container] = token.list_containers()
    assert (container.name, container.algorithm, container.has_certificate) == (
        "login",
        algorithm,
        False,
    )


def test_generate_refusals_and_replace(token: Pkcs11Token) -> None:
    token.verify_pin(USER_PIN)
    first = token.generate_key("login", Algorithm.ECC_P256)
    with pytest.raises(KeyAlreadyExists):
        token.generate_key("login", Algorithm.ECC_P256)
    assert token.public_key("login") == first  # nothing changed
    second = token.generate_key("login", Algorithm.ECC_P256, replace=True)
    assert second.public_key_der != first.public_key_der
    assert len(token.list_containers()) == 1
    with pytest.raises(NotSupportedByToken):
        token.generate_key("tx", Algorithm.ECC_P256, ContainerUsage.TRANSACTION)
    with pytest.raises(NotSupportedByToken):  # no vendor SM2 mechanisms configured
        token.generate_key("sm2", Algorithm.SM2)
    for bad in ("", "x" * 65, "id:01", "tab\there"):
        with pytest.raises(InvalidInput):
            token.generate_key(bad, Algorithm.ECC_P256)
    assert [c.name for c in token.list_containers()] == ["login"]


def test_what_pkcs11_cannot_do(token: Pkcs11Token) -> None:
    token.verify_pin(USER_PIN)
    token.generate_key("login", Algorithm.ECC_P256)
    tx = Transaction(tx_id=new_tx_id(), tx_type="transfer", payer_account="6222000011112222",
                     payee_account="6222000033334444", payee_name="Li Lei",
                     amount=Decimal("100.00"), currency="CNY",
                     timestamp=dt.datetime.now(dt.timezone.utc))  # fmt: skip
    with pytest.raises(NotSupportedByToken, match="display"):
        token.confirm_and_sign(tx, "login")
    with pytest.raises(NotSupportedByToken):
        token.attest_key("login")
    with pytest.raises(NotSupportedByToken):
        token.set_retry_limit(3)
    with pytest.raises(InvalidInput):
        token.random(0)


@pytest.mark.openssl_cli
def test_certificates_by_id_and_label_and_csr_via_the_adapter(
    token: Pkcs11Token, tmp_path: Path
) -> None:
    token.verify_pin(USER_PIN)
    token.generate_key("login", Algorithm.ECC_P256)
    key = Pkcs11SigningKey(token, "login")
    assert isinstance(key, keys.SigningKey)
    cert = x509.build_certificate(
        subject="CN=pkcs11 self-signed", public_key=key.public_key(), issuer_key=key, valid_days=30
    )
    cert.verify_signed_by(cert)
    token.import_certificate(cert.to_pem(), "login")
    [found] = token.find_certificates(label="login")
    assert found.der == cert.to_der() and len(found.id) == 16
    assert token.find_certificates(id=found.id) == [found]
    assert token.find_certificates(id=b"\x00") == []
    assert token.export_certificate("login") == cert.to_der()
    assert token.export_certificate(f"id:{found.id.hex()}") == cert.to_der()
    assert token.list_containers()[0].has_certificate
    # importing again replaces, never duplicates
    token.import_certificate(cert.to_der(), "login")
    assert len(token.find_certificates()) == 1
    # a certificate for another key is refused, and nothing changes
    token.generate_key("other", Algorithm.RSA2048)
    other = x509.build_certificate(
        subject="CN=other", public_key=Pkcs11SigningKey(token, "other").public_key(),
        issuer_key=key, issuer=cert, valid_days=30,
    )  # fmt: skip
    with pytest.raises(InvalidInput, match="another key"):
        token.import_certificate(other.to_der(), "login")
    assert token.export_certificate("login") == cert.to_der()
    with pytest.raises(ContainerNotFound):
        token.export_certificate("other")
    with pytest.raises(UnsupportedAlgorithm):
        key.sign_with(SignatureAlgorithm.SM2_SM3, b"x")

    csr = x509.build_csr("CN=Alice,O=Bank,C=CN", key)
    csr.verify()
    (tmp_path / "csr.pem").write_bytes(csr.to_pem())
    out = _openssl("req", "-in", "csr.pem", "-verify", "-noout", cwd=tmp_path)
    assert "verify OK" in out


@pytest.mark.openssl_cli
def test_cms_signed_by_a_pkcs11_rsa_key(token: Pkcs11Token, tmp_path: Path) -> None:
    token.verify_pin(USER_PIN)
    token.generate_key("signer", Algorithm.RSA2048)
    key = Pkcs11SigningKey(token, "signer")
    cert = x509.build_certificate(
        subject="CN=pkcs11 signer", public_key=key.public_key(), issuer_key=key, valid_days=30,
        key_usage={x509.KeyUsage.DIGITAL_SIGNATURE, x509.KeyUsage.KEY_CERT_SIGN},
        is_ca=True,
    )  # fmt: skip
    signed = cms.sign(DATA, cms.Signer(key, cert))
    assert cms.verify(signed, trust_roots=[cert]) == DATA
    (tmp_path / "msg.der").write_bytes(signed)
    (tmp_path / "cert.pem").write_bytes(cert.to_pem())
    _openssl("cms", "-verify", "-inform", "DER", "-in", "msg.der", "-CAfile", "cert.pem",
             "-out", "content", cwd=tmp_path)  # fmt: skip
    assert (tmp_path / "content").read_bytes() == DATA


def test_change_and_unblock_pin(softhsm: SoftHsm) -> None:
    with open_pkcs11(softhsm.module) as tok:
        with pytest.raises(PinPolicyError):
            tok.change_pin(USER_PIN, "111111")  # UK-4 refuses before the token is asked
        tok.change_pin(USER_PIN, "246810")
        with pytest.raises(PinIncorrect):
            tok.verify_pin(USER_PIN)
        tok.verify_pin("246810")
        tok.unblock_pin(SO_PIN, "975310")
        tok.verify_pin("975310")
        with pytest.raises(PinIncorrect):
            tok.unblock_pin("0000", "864209")
        tok.verify_pin("975310")


def test_private_key_never_leaves_the_token(token: Pkcs11Token) -> None:
    token.verify_pin(USER_PIN)
    token.generate_key("login", Algorithm.ECC_P256)
    key = token._key("login")
    sensitive, extractable = token._attrs(key.handle, [0x103, 0x162])
    assert sensitive is True and extractable is False
