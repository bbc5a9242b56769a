"""Replacing a key on purpose: explicit ``replace=True`` and the admin (SO) PIN (item 3)."""

from __future__ import annotations

import pytest

from ebank_auth.crypto import sm2, x509
from ebank_auth.errors import ApduError, KeyAlreadyExists, PinLocked, SecurityStatusNotSatisfied
from ebank_auth.usbkey import tlv
from ebank_auth.usbkey.apdu import StatusWord
from ebank_auth.usbkey.protocol import ContainerUsage, Ins, PinRef, Tag
from ebank_auth.usbkey.session import TokenSession

from .conftest import ADMIN_PIN, USER_PIN


def test_existing_key_is_refused_with_a_typed_error(signer: TokenSession) -> None:
    with pytest.raises(KeyAlreadyExists, match="admin"):
        signer.generate_key("sign")


def test_replace_without_the_admin_pin_is_refused(signer: TokenSession) -> None:
    before = signer.public_key("sign")
    with pytest.raises(SecurityStatusNotSatisfied):
        signer.generate_key("sign", usage=ContainerUsage.LOGIN, replace=True)
    assert signer.public_key("sign") == before


def test_replace_with_the_admin_pin_replaces_and_drops_the_certificate(
    signer: TokenSession,
) -> None:
    ca = x509.CertificateAuthority.create_root("CN=CA", sm2.generate_private_key())
    signer.import_certificate(ca.issue("CN=A", signer.public_key().public_key()).to_der())
    before = signer.public_key("sign")
    signer.verify_pin(ADMIN_PIN, PinRef.ADMIN)
    new = signer.generate_key("sign", usage=ContainerUsage.LOGIN, replace=True)
    assert new.public_key_der != before.public_key_der
    assert signer.public_key("sign").usage is ContainerUsage.LOGIN
    assert not next(c for c in signer.list_containers() if c.name == "sign").has_certificate
    # and the attestation follows the new key: a login key is attested as one
    assert not signer.attest_key("sign").verify(signer.trust).is_transaction_key


def test_replace_still_needs_the_user_pin(signer: TokenSession) -> None:
    signer.verify_pin(ADMIN_PIN, PinRef.ADMIN)
    signer.logout()
    signer.verify_pin(ADMIN_PIN, PinRef.ADMIN)
    with pytest.raises(SecurityStatusNotSatisfied):
        signer.generate_key("sign", replace=True)


def test_replace_with_a_locked_admin_pin_is_refused(signer: TokenSession) -> None:
    for _ in range(signer.pin_status(PinRef.ADMIN).max_retries):
        with pytest.raises(Exception):  # noqa: B017 - PinIncorrect, then the final lock
            signer.verify_pin("99999999", PinRef.ADMIN)
    with pytest.raises(PinLocked):
        signer.generate_key("sign", replace=True)


def test_replace_creates_a_missing_container(session: TokenSession) -> None:
    session.verify_pin(USER_PIN)  # no admin PIN needed: nothing is replaced
    assert session.generate_key("fresh", replace=True).container == "fresh"


def test_unknown_generate_mode_is_refused(signer: TokenSession) -> None:
    body = tlv.build([(Tag.CONTAINER, b"other"), (Tag.ALGORITHM, b"\x01")])
    with pytest.raises(ApduError) as excinfo:
        signer.transmit_secure(Ins.GENERATE_KEY, body, p1=0x02)
    assert excinfo.value.sw == StatusWord.INCORRECT_P1P2
    assert "other" not in {c.name for c in signer.list_containers()}
