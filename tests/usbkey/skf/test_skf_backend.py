"""The SKF backend against the C test SKF library (a real shared library doing real SM2/SM3
with libcrypto; see tests/fixtures/skf/skf_test.c — a test fixture standing in for a vendor's
library)."""

from __future__ import annotations

import datetime as dt
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from ebank_auth.crypto import cms, sm2, x509
from ebank_auth.crypto.keys import SignatureAlgorithm
from ebank_auth.errors import (
    CardNotPresent,
    CertificateValidationError,
    ConfigurationError,
    EncodingError,
    InvalidSignature,
    KeyAlreadyExists,
    NotSupportedByToken,
    PinIncorrect,
    PinLocked,
    PinPolicyError,
    ReaderNotFound,
    SecurityStatusNotSatisfied,
    SkfError,
    UnsupportedAlgorithm,
)
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.protocol import Algorithm, ContainerUsage, DeviceCapability, PinRef
from ebank_auth.usbkey.token import Token
from ebank_auth.usbkey.vendor.skf import SkfLibrary, SkfSigningKey, SkfToken, open_skf
from ebank_auth.usbkey.vendor.skf_constants import AlgId, Sar
from usbkey.skf.conftest import (
    ADMIN_PIN,
    ADMIN_TRIES,
    APP,
    DEVICE,
    USER_PIN,
    USER_TRIES,
    SkfState,
)

DISTID = "distid:1234567812345678"


# ---------------------------------------------------------------------- enumeration
def test_enumerates_device_application_and_containers(
    skf_library: Path, skf_state: SkfState
) -> None:
    lib = SkfLibrary(skf_library)
    assert lib.devices() == [DEVICE]
    with open_skf(lib) as token:
        assert isinstance(token, Token)
        assert token.description == f"skf:{DEVICE}/{APP}"
        assert token.applications() == [APP]
        assert token.containers() == []
        assert token.list_containers() == []
        token.verify_pin(USER_PIN)
        token.generate_key("login")
        token.generate_key("{6F1A2B3C-guid-style}")
        assert sorted(token.containers()) == ["login", "{6F1A2B3C-guid-style}"]
        listed = {c.name: c for c in token.list_containers()}
        assert listed["login"].algorithm is Algorithm.SM2
        assert listed["login"].usage is ContainerUsage.LOGIN
        assert not listed["login"].has_certificate


def test_device_info_comes_through_the_devinfo_layout(token: SkfToken) -> None:
    info = token.skf_device_info()
    assert info.version == (1, 0)
    assert info.manufacturer == "ebank-auth test fixture"
    assert info.label == "SKF test token"
    assert info.serial == "SKF2024000042"
    assert info.firmware_version == (2, 3)
    # the ULONG fields after the char arrays land where the C library wrote them
    assert info.hash_algorithms == AlgId.SM3
    assert info.asym_algorithms == AlgId.SM2_1 | AlgId.SM2_3
    assert info.sym_algorithms == AlgId.SM4_ECB | AlgId.SM4_CBC
    assert (info.total_space, info.free_space) == (65536, 32768)
    assert info.supports(AlgId.SM2_1) and info.supports(AlgId.SM3)
    assert not info.supports(AlgId.RSA) and not info.supports(AlgId.SM1_ECB)
    generic = token.device_info()
    assert generic.serial == "SKF2024000042"
    assert generic.capabilities == DeviceCapability.SM2
    assert token.attestation is not None and not token.attestation.genuine
    assert len(token.random(32)) == 32 and token.random(32) != token.random(32)


def test_several_applications_need_a_name(skf_library: Path, skf_state: SkfState) -> None:
    skf_state.add_application("OTHER_APP")
    with pytest.raises(ConfigurationError, match="name one"):
        open_skf(skf_library)
    with open_skf(skf_library, application="OTHER_APP") as token:
        assert token.application == "OTHER_APP"
    with pytest.raises(SkfError) as err:
        open_skf(skf_library, application="NO_SUCH_APP")
    assert err.value.code == Sar.APPLICATION_NOT_EXISTS


def test_unknown_or_absent_device(skf_library: Path, skf_state: SkfState) -> None:
    with pytest.raises(ReaderNotFound, match=DEVICE):
        open_skf(skf_library, device="NOT-THERE")
    skf_state.remove_token()
    with pytest.raises(ReaderNotFound, match="sees no device"):
        open_skf(skf_library)


# ---------------------------------------------------------------------- PIN
def test_pin_tries_are_exact_then_locked(
    skf_library: Path, skf_state: SkfState, token: SkfToken
) -> None:
    assert token.pin_status().remaining == USER_TRIES
    for left in range(USER_TRIES - 1, -1, -1):
        with pytest.raises(PinIncorrect) as err:
            token.verify_pin("999999")
        assert err.value.remaining == left
        assert token.pin_status().max_retries == USER_TRIES
        assert token.pin_status().remaining == left
    with pytest.raises(PinLocked):
        token.verify_pin(USER_PIN)  # the right PIN no longer opens it
    # the counter lives on the token, not in the handle
    with open_skf(skf_library) as again:
        assert again.pin_status().locked
        with pytest.raises(PinLocked):
            again.verify_pin(USER_PIN)
        # the admin PIN unblocks and sets a new user PIN
        with pytest.raises(PinIncorrect) as err:
            again.unblock_pin("00000000", "864213")
        assert err.value.remaining == ADMIN_TRIES - 1
        again.unblock_pin(ADMIN_PIN, "864213")
        assert again.pin_status(PinRef.ADMIN).remaining == ADMIN_TRIES
        assert again.pin_status().remaining == USER_TRIES
        again.verify_pin("864213")


def test_a_right_pin_resets_the_counter_and_logout_forgets_it(login_token: SkfToken) -> None:
    with pytest.raises(PinIncorrect):
        login_token.verify_pin("999999")
    assert login_token.pin_status().remaining == USER_TRIES - 1
    login_token.verify_pin(USER_PIN)
    assert login_token.pin_status().remaining == USER_TRIES
    login_token.sign_message(b"ok")
    login_token.logout()
    with pytest.raises(SecurityStatusNotSatisfied):
        login_token.sign_message(b"after logout")


def test_the_counter_is_written_before_the_pin_is_compared(
    skf_state: SkfState, token: SkfToken
) -> None:
    """If the decremented counter cannot be stored, even the right PIN does not log in."""
    (skf_state.app / "pins.tmp").mkdir()  # the atomic write's temporary file cannot be made
    with pytest.raises(SkfError) as err:
        token.verify_pin(USER_PIN)
    assert err.value.code == Sar.FILEERR
    with pytest.raises(SecurityStatusNotSatisfied):
        token.generate_key("login")
    (skf_state.app / "pins.tmp").rmdir()
    assert token.pin_status().remaining == USER_TRIES


def test_change_pin_checks_complexity_before_the_token(
    skf_state: SkfState, token: SkfToken
) -> None:
    before = skf_state.pins()
    with pytest.raises(PinPolicyError):
        token.change_pin(USER_PIN, "111111")
    with pytest.raises(PinPolicyError):
        token.verify_pin("12\x003456")
    assert skf_state.pins() == before  # no try spent
    with pytest.raises(PinPolicyError):
        token.verify_pin("123")  # SAR_PIN_LEN_RANGE from the library
    token.change_pin(USER_PIN, "a1b2c3d4")
    token.verify_pin("a1b2c3d4")
    with pytest.raises(PinIncorrect):
        token.verify_pin(USER_PIN)


# ---------------------------------------------------------------------- keys and signing
def test_generate_needs_the_pin_and_never_replaces_silently(token: SkfToken) -> None:
    with pytest.raises(SecurityStatusNotSatisfied):
        token.generate_key("login")
    token.verify_pin(USER_PIN)
    first = token.generate_key("login")
    with pytest.raises(KeyAlreadyExists):
        token.generate_key("login")
    second = token.generate_key("login", replace=True)
    assert first.public_key_der != second.public_key_der
    assert token.public_key("login") == second
    with pytest.raises(NotSupportedByToken, match="transaction"):
        token.generate_key("tx", usage=ContainerUsage.TRANSACTION)
    with pytest.raises(UnsupportedAlgorithm):
        token.generate_key("rsa", Algorithm.RSA2048)
    with pytest.raises(SkfError):
        token.generate_key("../escape")  # the library refuses names outside its store


def test_sign_verifies_with_our_sm2_and_the_library_hash_matches(login_token: SkfToken) -> None:
    key = login_token.public_key("login").public_key()
    assert isinstance(key, sm2.SM2PublicKey)
    data = b"transfer 100.00 CNY to 6217001122334455"
    signature = login_token.sign_message(data, "login")
    key.verify(signature, data)
    with pytest.raises(InvalidSignature):
        key.verify(signature, data + b"0")
    # e = SM3(Z || M): host-side Z equals the library's SKF_DigestInit(public key, ID)
    e = sm2.compute_e(key, data)
    assert login_token.e(data, "login") == e
    assert login_token.digest(data, "login") == e
    assert login_token.digest(data, "login", uid=b"ALICE123") == sm2.compute_e(
        key, data, b"ALICE123"
    )
    key.verify_digest(login_token.sign_digest(e, "login"), e)
    with pytest.raises(EncodingError):
        login_token.sign_digest(b"\x00" * 31, "login")
    with pytest.raises(SkfError) as err:
        login_token.sign_digest(e, "empty-container-that-does-not-exist")
    assert err.value.code == Sar.FILE_NOT_EXIST


def test_signature_verifies_in_openssl(
    login_token: SkfToken, openssl_bin: str, tmp_path: Path
) -> None:
    data = b"payee 6217001122334455 amount 100.00"
    (tmp_path / "pub.pem").write_bytes(login_token.sm2_public_key("login").to_pem())
    (tmp_path / "msg").write_bytes(data)
    (tmp_path / "sig").write_bytes(login_token.sign_message(data, "login"))
    (tmp_path / "bad").write_bytes(data + b"!")

    def verify(msg: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [openssl_bin, "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey",
             "pub.pem", "-in", msg, "-sigfile", "sig", "-pkeyopt", DISTID],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    good = verify("msg")
    assert good.returncode == 0, good.stderr
    assert "Signature Verified Successfully" in good.stdout
    assert verify("bad").returncode != 0


def test_the_token_cannot_confirm_or_attest(login_token: SkfToken) -> None:
    assert login_token.can_confirm is False
    tx = Transaction(
        tx_id="TX-SKF-1",
        tx_type="transfer",
        payer_account="6217000000000001",
        payee_account="6217001122334455",
        payee_name="Li Lei",
        amount=Decimal("100.00"),
        currency="CNY",
        timestamp=dt.datetime.now(dt.timezone.utc),
    )
    with pytest.raises(NotSupportedByToken, match="no display"):
        login_token.confirm_and_sign(tx, "login")
    with pytest.raises(NotSupportedByToken):
        login_token.attest_key("login")
    with pytest.raises(NotSupportedByToken):
        login_token.set_retry_limit(5)


# ---------------------------------------------------------------------- certificates
def _ca() -> x509.CertificateAuthority:
    return x509.CertificateAuthority.create_root(
        "CN=SKF Test Root,O=ebank-auth,C=CN", sm2.generate_private_key()
    )


def test_certificate_import_and_export(login_token: SkfToken) -> None:
    ca = _ca()
    with pytest.raises(SkfError) as err:
        login_token.export_certificate("login")
    assert err.value.code == Sar.CERTNOTFOUNTERR
    cert = ca.issue("CN=SKF Alice,O=ebank-auth,C=CN", login_token.sm2_public_key("login"))
    login_token.import_certificate(cert.to_der(), "login")
    assert login_token.export_certificate("login") == cert.to_der()
    assert login_token.list_containers()[0].has_certificate
    # a certificate for another key is refused before it reaches the token
    other = ca.issue("CN=Mallory,O=ebank-auth,C=CN", sm2.generate_private_key().public_key())
    with pytest.raises(CertificateValidationError, match="another key"):
        login_token.import_certificate(other.to_der(), "login")
    assert login_token.export_certificate("login") == cert.to_der()
    # a new key drops the old key's certificate
    login_token.generate_key("login", replace=True)
    assert not login_token.list_containers()[0].has_certificate


def test_csr_through_the_signing_key_verifies_in_openssl(
    login_token: SkfToken, openssl_bin: str, tmp_path: Path
) -> None:
    key = SkfSigningKey(login_token, "login")
    assert key.public_key() == login_token.sm2_public_key("login")
    req = x509.build_csr("CN=SKF Bob,O=Bank,C=CN", key)
    req.verify()
    (tmp_path / "r.csr").write_bytes(req.to_pem())
    out = subprocess.run(
        [openssl_bin, "req", "-in", "r.csr", "-verify", "-vfyopt", DISTID, "-noout", "-subject"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "CN = SKF Bob" in out.stdout + out.stderr
    with pytest.raises(UnsupportedAlgorithm):
        key.sign_with(SignatureAlgorithm.SHA256_RSA, b"x")


def test_cms_signed_by_the_token_key_verifies(login_token: SkfToken) -> None:
    ca = _ca()
    key = SkfSigningKey(login_token, "login")
    cert = ca.issue("CN=SKF Carol,O=ebank-auth,C=CN", key.public_key())
    signed = cms.sign(b"statement 2024-06", cms.Signer(key, cert))
    assert cms.verify(signed, trust_roots=[ca.certificate]) == b"statement 2024-06"


# ---------------------------------------------------------------------- failures
def test_a_token_removed_mid_operation_is_card_not_present(
    skf_state: SkfState, login_token: SkfToken
) -> None:
    login_token.sign_message(b"before")
    skf_state.remove_token()
    with pytest.raises(CardNotPresent, match="removed"):
        login_token.sign_message(b"after")
    with pytest.raises(CardNotPresent):
        login_token.verify_pin(USER_PIN)
    login_token.close()  # nothing left to close: no error
    login_token.close()


def test_a_library_with_an_lp64_ulong(skf_libraries: dict[str, Path], skf_state: SkfState) -> None:
    with open_skf(skf_libraries["ulong64"], ulong_bits=64) as token:
        with pytest.raises(PinIncorrect) as err:
            token.verify_pin("999999")
        assert err.value.remaining == USER_TRIES - 1
        token.verify_pin(USER_PIN)
        info = token.generate_key("login")
        signature = token.sign_message(b"64-bit ULONG", "login")
        info.public_key().verify(signature, b"64-bit ULONG")
        assert token.skf_device_info().hash_algorithms == AlgId.SM3
