"""Our PIV host session against the software token's PIV applet (in-process, over the same
applet router a reader sees): PINs, management key, keys, signatures, certificates, attestation."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from ebank_auth.crypto import keys, x509
from ebank_auth.crypto.keys import SignatureAlgorithm
from ebank_auth.errors import (
    ApduError,
    EncodingError,
    KeyAlreadyExists,
    NotSupportedByToken,
    PinIncorrect,
    PinLocked,
    SecurityStatusNotSatisfied,
    TokenNotGenuine,
)
from ebank_auth.usbkey.emulator.piv_applet import PivApplet
from ebank_auth.usbkey.piv_protocol import (
    DEFAULT_PIN,
    DEFAULT_PUK,
    PinPolicy,
    PivAlgorithm,
    Slot,
)
from ebank_auth.usbkey.protocol import Algorithm, ContainerUsage, PinRef
from ebank_auth.usbkey.token import Token
from ebank_auth.usbkey.transport.inprocess import InProcessConnection
from ebank_auth.usbkey.vendor.piv import PivSession, PivSigningKey


def test_session_is_a_token_and_reads_identity(piv: PivSession, card: PivApplet) -> None:
    assert isinstance(piv, Token)
    assert piv.version == (5, 4, 3)
    assert piv.serial == card.serial
    assert piv.can_confirm is False
    assert piv.description.startswith("piv:")
    assert piv.read_object(0x5FC102) is not None  # CHUID
    discovery = piv.read_object(0x7E)
    assert discovery is not None and bytes.fromhex("A000000308000010000100") in discovery


def test_pin_tries_are_exact_and_the_puk_unblocks(piv: PivSession) -> None:
    assert piv.pin_status().remaining == 3
    for left in (2, 1, 0):
        with pytest.raises(PinIncorrect) as err:
            piv.verify_pin("000000")
        assert err.value.remaining == left
    with pytest.raises(PinLocked):
        piv.verify_pin(DEFAULT_PIN)  # the right PIN no longer helps
    assert piv.pin_retries() == 0
    with pytest.raises(PinIncorrect) as err:
        piv.unblock_pin("87654321", "246810")
    assert err.value.remaining == 2
    piv.unblock_pin(DEFAULT_PUK, "246810")
    assert piv.pin_status(PinRef.ADMIN).remaining == 3
    assert piv.pin_status().remaining == 3
    piv.verify_pin("246810")
    assert piv.pin_retries() is None  # verified


def test_change_pin_and_defaults_report(piv: PivSession) -> None:
    assert piv.defaults_in_use().to_json() == {"pin": True, "puk": True, "management_key": True}
    piv.change_pin(DEFAULT_PIN, "13572468")
    piv.change_pin(DEFAULT_PUK, "97531864", PinRef.ADMIN)
    piv.authenticate()
    piv.set_management_key(bytes(range(24)))
    report = piv.defaults_in_use()
    assert report.to_json() == {"pin": False, "puk": False, "management_key": False}
    assert not report.any_default
    with pytest.raises(PinIncorrect):
        piv.verify_pin(DEFAULT_PIN)
    piv.verify_pin("13572468")
    with pytest.raises(SecurityStatusNotSatisfied, match="management key"):
        piv.authenticate(bytes.fromhex("010203040506070801020304050607080102030405060708"))
    piv.authenticate(bytes(range(24)))


def test_generate_needs_the_management_key(piv: PivSession) -> None:
    with pytest.raises(SecurityStatusNotSatisfied):
        piv.generate(Slot.AUTHENTICATION, PivAlgorithm.ECC_P256)
    assert piv.list_containers() == []


@pytest.mark.parametrize("algorithm", [PivAlgorithm.ECC_P256, PivAlgorithm.RSA2048])
def test_generate_sign_and_verify(piv: PivSession, algorithm: PivAlgorithm) -> None:
    piv.authenticate()
    info = piv.generate(Slot.AUTHENTICATION, algorithm)
    assert piv.public_key("9a") == info
    with pytest.raises(SecurityStatusNotSatisfied):  # slot 9A: PIN once
        piv.sign_message(b"x", "9a")
    piv.verify_pin(DEFAULT_PIN)
    sig = piv.sign_message(b"login challenge", "9a")
    pub = info.any_public_key()
    alg = (
        SignatureAlgorithm.ECDSA_SHA256
        if algorithm is PivAlgorithm.ECC_P256
        else SignatureAlgorithm.SHA256_RSA
    )
    keys.verify_data(pub, alg, sig, b"login challenge")
    with pytest.raises(Exception):  # noqa: B017 - any verification failure
        keys.verify_data(pub, alg, sig, b"another message")


def test_signature_slot_needs_the_pin_before_every_signature(piv: PivSession) -> None:
    piv.authenticate()
    piv.generate(Slot.SIGNATURE, PivAlgorithm.ECC_P256)
    piv.verify_pin(DEFAULT_PIN)
    piv.sign_digest(hashlib.sha256(b"a").digest(), "9c")
    with pytest.raises(SecurityStatusNotSatisfied):
        piv.sign_digest(hashlib.sha256(b"b").digest(), "9c")
    piv.verify_pin(DEFAULT_PIN)
    piv.sign_digest(hashlib.sha256(b"b").digest(), "9c")


def test_card_authentication_slot_signs_without_pin(piv: PivSession) -> None:
    piv.authenticate()
    info = piv.generate(Slot.CARD_AUTHENTICATION, PivAlgorithm.ECC_P256, PinPolicy.DEFAULT)
    sig = piv.sign_message(b"door", "9e")
    keys.verify_data(info.any_public_key(), SignatureAlgorithm.ECDSA_SHA256, sig, b"door")


def test_rsa_decrypt_and_ecdh_with_general_authenticate(piv: PivSession) -> None:
    piv.authenticate()
    piv.generate(Slot.KEY_MANAGEMENT, PivAlgorithm.RSA2048)
    spki = piv.public_key("9d").public_key_der
    pub = serialization.load_der_public_key(spki)
    assert isinstance(pub, rsa.RSAPublicKey)
    piv.verify_pin(DEFAULT_PIN)
    block = piv.sign_raw(
        Slot.KEY_MANAGEMENT, PivAlgorithm.RSA2048, pub.encrypt(b"k", padding.PKCS1v15())
    )
    assert block.startswith(b"\x00\x02") and block.endswith(b"\x00k")
    with pytest.raises(ApduError) as err:  # not below the modulus
        piv.sign_raw(Slot.KEY_MANAGEMENT, PivAlgorithm.RSA2048, b"\xff" * 256)
    assert err.value.sw == 0x6A80
    with pytest.raises(ApduError):  # wrong algorithm for the slot key
        piv.sign_raw(Slot.KEY_MANAGEMENT, PivAlgorithm.ECC_P256, b"\x00" * 32)
    piv.generate(Slot.KEY_MANAGEMENT, PivAlgorithm.ECC_P256)
    card_pub = serialization.load_der_public_key(piv.public_key("9d").public_key_der)
    assert isinstance(card_pub, ec.EllipticCurvePublicKey)
    mine = ec.generate_private_key(ec.SECP256R1())
    point = mine.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert piv.key_agreement("9d", point) == mine.exchange(ec.ECDH(), card_pub)


def test_certificates_per_slot_and_signing_key_protocol(piv: PivSession) -> None:
    piv.authenticate()
    piv.generate(Slot.AUTHENTICATION, PivAlgorithm.ECC_P256)
    piv.verify_pin(DEFAULT_PIN)
    key = PivSigningKey(piv, "9a")
    cert = x509.build_certificate(
        subject="CN=piv self-signed", public_key=key.public_key(), issuer_key=key, valid_days=30
    )
    piv.import_certificate(cert.to_der(), "9a")
    assert piv.export_certificate("9a") == cert.to_der()
    cert.verify_signed_by(cert)
    [container] = piv.list_containers()
    assert (container.name, container.algorithm, container.usage, container.has_certificate) == (
        "9a",
        Algorithm.ECC_P256,
        ContainerUsage.LOGIN,
        True,
    )
    with pytest.raises(ApduError):
        piv.export_certificate("9c")


def test_attestation_chains_to_the_test_manufacturer(piv: PivSession, card: PivApplet) -> None:
    piv.authenticate()
    info = piv.generate(Slot.SIGNATURE, PivAlgorithm.RSA2048)
    att = piv.attest_slot("9c")
    root = card.router.applets[0].manufacturer.root  # type: ignore[attr-defined]
    att.verify([root], info.public_key_der)
    with pytest.raises(TokenNotGenuine):
        att.verify([], info.public_key_der)
    other = piv.generate(Slot.AUTHENTICATION, PivAlgorithm.ECC_P256)
    with pytest.raises(TokenNotGenuine):
        att.verify([root], other.public_key_der)
    genuine = PivSession(InProcessConnection(card.router), attestation_roots=[root])  # type: ignore[attr-defined]
    assert genuine.attestation is not None and genuine.attestation.genuine
    assert piv.attestation is not None and not piv.attestation.genuine
    with pytest.raises(TokenNotGenuine):
        PivSession(InProcessConnection(card.router), require_genuine=True)  # type: ignore[attr-defined]


def test_token_protocol_generate_and_refusals(piv: PivSession) -> None:
    info = piv.generate_key("9a", Algorithm.ECC_P256, ContainerUsage.LOGIN)
    with pytest.raises(KeyAlreadyExists):
        piv.generate_key("9a", Algorithm.ECC_P256, ContainerUsage.LOGIN)
    assert piv.generate_key("9a", Algorithm.RSA2048, replace=True) != info
    with pytest.raises(NotSupportedByToken):
        piv.generate_key("9c", Algorithm.ECC_P256, ContainerUsage.TRANSACTION)
    with pytest.raises(Exception, match="SM2"):
        piv.generate_key("9c", Algorithm.SM2)
    for call in (
        lambda: piv.random(8),
        lambda: piv.set_retry_limit(5),
        lambda: piv.attest_key("9a"),
        lambda: piv.verify_pin(DEFAULT_PUK, PinRef.ADMIN),
        lambda: piv.confirm_and_sign(None),  # type: ignore[arg-type]
    ):
        with pytest.raises(NotSupportedByToken):
            call()
    with pytest.raises(EncodingError, match="slot"):
        piv.public_key("nope")


def test_logout_forgets_the_pin(piv: PivSession) -> None:
    piv.verify_pin(DEFAULT_PIN)
    assert piv.pin_retries() is None
    piv.logout()
    assert piv.pin_retries() == 3


def test_selecting_another_applet_forgets_the_pin(piv: PivSession, card: PivApplet) -> None:
    piv.verify_pin(DEFAULT_PIN)
    router = card.router  # type: ignore[attr-defined]
    router.process_apdu(bytes.fromhex("00A4040007A0000006472F0001"))  # not ours: 6A82
    piv.select()
    assert piv.pin_retries() == 3


def test_p256_signature_is_over_the_sha256_digest(piv: PivSession) -> None:
    piv.authenticate()
    info = piv.generate(Slot.AUTHENTICATION, PivAlgorithm.ECC_P256)
    piv.verify_pin(DEFAULT_PIN)
    sig = piv.sign_digest(hashlib.sha256(b"m").digest(), "9a")
    pub = info.any_public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    pub.verify(sig, b"m", ec.ECDSA(hashes.SHA256()))
