"""The app-facing token API: the Token protocol, open_token and trust resolution, TokenSigningKey.

The pcsc tests run over a real, isolated pcscd + vpcd with the software token inserted.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import ebank_auth.usbkey as usbkey
from ebank_auth.crypto import sm2
from ebank_auth.crypto.keys import SignatureAlgorithm, SigningKey
from ebank_auth.errors import (
    ApduError,
    CardNotPresent,
    ConfigurationError,
    InvalidSignature,
    SecurityStatusNotSatisfied,
    UnsupportedAlgorithm,
)
from ebank_auth.usbkey import (
    ContainerUsage,
    Token,
    TokenSession,
    TokenSigningKey,
    open_token,
    resolve_trust,
)
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import ReadingUser
from plugins.pcscd import PcscdVpcd

from .conftest import USER_PIN


def test_facade_exports_resolve() -> None:
    for name in usbkey.__all__:
        assert getattr(usbkey, name) is not None, name
    with pytest.raises(AttributeError):
        _ = usbkey.NoSuchName  # type: ignore[attr-defined]


def test_token_session_is_a_token(session: TokenSession) -> None:
    assert isinstance(session, Token)
    assert session.can_confirm  # the software token has a display and a button
    assert session.description.startswith("inprocess:")


def test_sign_message_is_sm2_over_the_whole_message(session: TokenSession) -> None:
    session.verify_pin(USER_PIN)
    key = session.generate_key("login", usage=ContainerUsage.LOGIN).public_key()
    assert isinstance(key, sm2.SM2PublicKey)
    signature = session.sign_message(b"login challenge 42")
    key.verify(signature, b"login challenge 42", uid=sm2.DEFAULT_UID)
    with pytest.raises(InvalidSignature):
        key.verify(signature, b"login challenge 43", uid=sm2.DEFAULT_UID)


def test_signing_key_refuses_other_algorithms_and_transaction_keys(session: TokenSession) -> None:
    session.verify_pin(USER_PIN)
    session.generate_key("login", usage=ContainerUsage.LOGIN)
    key = TokenSigningKey(session, "login")
    assert isinstance(key, SigningKey)
    with pytest.raises(UnsupportedAlgorithm):
        key.sign_with(SignatureAlgorithm.SHA256_RSA, b"x")
    session.generate_key("sign")  # a transaction key: display + button only
    with pytest.raises(ApduError):
        TokenSigningKey(session, "sign").sign_with(SignatureAlgorithm.SM2_SM3, b"x")
    session.logout()
    with pytest.raises(SecurityStatusNotSatisfied):
        key.sign_with(SignatureAlgorithm.SM2_SM3, b"x")


def test_resolve_trust_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EBANK_AUTH_TOKEN_ROOTS", raising=False)
    monkeypatch.delenv("EBANK_AUTH_FIRMWARE_ALLOWLIST", raising=False)
    monkeypatch.setenv("EBANK_AUTH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EBANK_AUTH_TOKEN_STATE", raising=False)
    with pytest.raises(ConfigurationError, match="no manufacturer root"):
        resolve_trust()
    a = SoftToken(tmp_path / "a")
    b = SoftToken(tmp_path / "b")
    from_state = resolve_trust(software_token_state=tmp_path / "a")
    assert from_state.roots == (a.manufacturer.root,) and from_state.allowlist is not None
    monkeypatch.setenv("EBANK_AUTH_TOKEN_ROOTS", str(tmp_path / "b" / "manufacturer" / "root.pem"))
    from_env = resolve_trust(software_token_state=tmp_path / "a")
    assert from_env.roots == (b.manufacturer.root,)
    explicit = resolve_trust([tmp_path / "a" / "manufacturer" / "root.pem"])
    assert explicit.roots == (a.manufacturer.root,)
    assert not resolve_trust(require_genuine=False).require_genuine


# --------------------------------------------------------------------------- real pcscd
@pytest.fixture
def inserted(pcscd_vpcd: PcscdVpcd, tmp_path: Path) -> Iterator[tuple[SoftToken, Path]]:
    state = tmp_path / "token"
    token = SoftToken(state, ReadingUser())
    with pcscd_vpcd.inserted(token, reader=0):
        yield token, state


@pytest.mark.pcsc
def test_token_signing_key_over_pcscd_verifies_with_the_tokens_public_key(
    inserted: tuple[SoftToken, Path], pcscd_vpcd: PcscdVpcd
) -> None:
    soft, state = inserted
    with open_token(pcscd_vpcd.readers[0], software_token_state=state) as token:
        assert isinstance(token, TokenSession) and token.attestation is not None
        assert token.attestation.genuine and token.device_info().serial == soft.serial
        token.verify_pin(USER_PIN)
        token.generate_key("login", usage=ContainerUsage.LOGIN)
        key = TokenSigningKey(token, "login")
        data = b"certification request info, say"
        signature = key.sign_with(SignatureAlgorithm.SM2_SM3, data)
        on_token = token.public_key("login").public_key()
    assert isinstance(on_token, sm2.SM2PublicKey) and on_token == key.public_key()
    on_token.verify(signature, data, uid=sm2.DEFAULT_UID)
    with pytest.raises(InvalidSignature):
        on_token.verify(signature, data + b"!", uid=sm2.DEFAULT_UID)


@pytest.mark.pcsc
def test_open_token_reports_card_before_trust(
    pcscd_vpcd: PcscdVpcd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EBANK_AUTH_HOME", str(tmp_path / "empty-home"))
    monkeypatch.delenv("EBANK_AUTH_TOKEN_STATE", raising=False)
    monkeypatch.delenv("EBANK_AUTH_TOKEN_ROOTS", raising=False)
    with pytest.raises(CardNotPresent):
        open_token(pcscd_vpcd.readers[1])  # empty reader, and no trust configured either
    soft = SoftToken(tmp_path / "t", ReadingUser())
    with pcscd_vpcd.inserted(soft, reader=0), pytest.raises(ConfigurationError):
        open_token(pcscd_vpcd.readers[0])  # a token now, but nothing to trust


def _first_run(svc: PcscdVpcd, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``ebank-auth token info`` as a new user runs it: no options, nothing configured."""
    return subprocess.run(
        [sys.executable, "-m", "ebank_auth.cli", "token", "info"],
        env=svc.subprocess_env(EBANK_AUTH_HOME=str(home), **env),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.pcsc
def test_first_run_cli_names_the_real_cause(pcscd_vpcd: PcscdVpcd, tmp_path: Path) -> None:
    home = tmp_path / "home"
    no_service = _first_run(pcscd_vpcd, home, PCSCLITE_CSOCK_NAME=str(tmp_path / "none.comm"))
    assert "pcscd" in no_service.stderr and "manufacturer root" not in no_service.stderr
    assert no_service.returncode != 0
    no_card = _first_run(pcscd_vpcd, home)  # readers exist, none holds a token
    assert "insert the token" in no_card.stderr, no_card.stderr
    assert "manufacturer root" not in no_card.stderr
    soft = SoftToken(tmp_path / "elsewhere", ReadingUser())
    with pcscd_vpcd.inserted(soft, reader=0):
        no_trust = _first_run(pcscd_vpcd, home)
    assert "no manufacturer root" in no_trust.stderr, no_trust.stderr


def test_a_key_on_the_token_signs_a_csr_and_cms_like_a_software_key(session: TokenSession) -> None:
    """The seam end to end: a login key that never leaves the token signs a PKCS#10 request (proof
    of possession), a CA issues from it, and the same key signs a CMS message that verifies to
    that CA — the same calls that sign with a software key."""
    from ebank_auth.crypto import cms, x509

    session.verify_pin(USER_PIN)
    session.generate_key("login", usage=ContainerUsage.LOGIN)
    key = TokenSigningKey(session, "login")
    csr = x509.build_csr("CN=张三,O=Demo Bank customers,C=CN", key)
    csr.verify()  # the proof of possession was made on the token
    loaded = x509.load_csr(csr.to_der())
    loaded.verify()
    ca = x509.CertificateAuthority.create_root("CN=Demo Bank Root,C=CN", sm2.generate_private_key())
    leaf = ca.issue_from_csr(loaded)
    assert leaf.spki_der == session.public_key("login").public_key_der
    signed = cms.sign(b"login challenge 7f3a9c", cms.Signer(key, leaf))
    assert cms.verify(signed, trust_roots=[ca.certificate]) == b"login challenge 7f3a9c"
