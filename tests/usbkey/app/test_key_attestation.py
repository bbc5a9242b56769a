"""Per-key attestation (issue 10 item 2): the token certifies what kind of key each key is.

The chain is manufacturer root → token attestation CA (its own key, not the device /
secure-channel key) → key attestation certificate carrying the private KeyStatement
extension.  Tests use the real software token in-process and the real X.509 validator.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.crypto import sm2, x509
from ebank_auth.errors import ApduError, EbankAuthError, EncodingError, TokenNotGenuine
from ebank_auth.usbkey.attestation import TrustConfig
from ebank_auth.usbkey.attestation_ext import (
    OID_KEY_STATEMENT,
    Confirmation,
    KeyOrigin,
    KeyStatement,
)
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import AutoApprove
from ebank_auth.usbkey.emulator.factory import Manufacturer
from ebank_auth.usbkey.key_attestation import KeyAttestation, verify_key_attestation
from ebank_auth.usbkey.protocol import Algorithm, ContainerUsage
from ebank_auth.usbkey.session import TokenSession

from .conftest import USER_PIN, open_session, trust_for


@pytest.fixture(scope="module")
def attested() -> tuple[SoftToken, KeyAttestation, KeyAttestation]:
    token = SoftToken(None, AutoApprove())
    with open_session(token) as s:
        s.verify_pin(USER_PIN)
        s.generate_key("sign")
        s.generate_key("login", usage=ContainerUsage.LOGIN)
        return token, s.attest_key("sign"), s.attest_key("login")


def test_transaction_and_login_keys_are_attested_as_what_they_are(signer: TokenSession) -> None:
    token_trust = signer.trust
    signer.generate_key("login", usage=ContainerUsage.LOGIN)
    tx = signer.attest_key("sign").verify(token_trust)
    login = signer.attest_key("login").verify(token_trust)
    serial = signer.device_info().serial
    assert (tx.token_serial, tx.container, tx.algorithm) == (serial, "sign", Algorithm.SM2)
    assert tx.usage is ContainerUsage.TRANSACTION
    assert tx.confirmation is Confirmation.DISPLAY_AND_BUTTON
    assert tx.origin is KeyOrigin.GENERATED_ON_TOKEN and not tx.exportable
    assert tx.is_transaction_key
    assert tx.public_key_der == signer.public_key("sign").public_key_der
    assert login.usage is ContainerUsage.LOGIN and login.confirmation is Confirmation.NONE
    assert not login.is_transaction_key
    assert login.public_key_der == signer.public_key("login").public_key_der
    assert tx.firmware_version == signer.device_info().firmware_version


def test_rsa_keys_are_attested_too(signer: TokenSession) -> None:
    signer.generate_key("rsa", Algorithm.RSA2048)
    facts = signer.attest_key("rsa").verify(signer.trust)
    assert facts.algorithm is Algorithm.RSA2048 and facts.is_transaction_key


def test_the_attestation_key_is_not_the_device_key(
    attested: tuple[SoftToken, KeyAttestation, KeyAttestation],
) -> None:
    token, sign, _ = attested
    ca = x509.load_certificate(sign.attestation_ca_der)
    device = x509.load_certificate(token.state.device_cert_der)
    assert ca.spki_der != device.spki_der
    assert ca.is_ca and not device.is_ca  # the device certificate can sign no attestation
    assert x509.load_certificate(sign.certificate_der).issuer == ca.subject


def test_attestation_needs_no_pin_but_an_existing_container(signer: TokenSession) -> None:
    signer.logout()
    assert signer.attest_key("sign").verify(signer.trust).container == "sign"
    with pytest.raises(ApduError) as excinfo:
        signer.attest_key("nothing-here")
    assert "generate a key first" in str(excinfo.value)


def test_pem_round_trip_verifies(
    attested: tuple[SoftToken, KeyAttestation, KeyAttestation],
) -> None:
    token, sign, _ = attested
    pem = sign.to_pem()
    assert pem.count(b"BEGIN CERTIFICATE") == 2
    assert verify_key_attestation(pem, trust_for(token)).container == "sign"


def test_another_manufacturers_root_does_not_verify(
    attested: tuple[SoftToken, KeyAttestation, KeyAttestation],
) -> None:
    _, sign, _ = attested
    other = Manufacturer.create(None)
    with pytest.raises(TokenNotGenuine, match="does not chain"):
        sign.verify(TrustConfig((other.root,)))
    with pytest.raises(TokenNotGenuine, match="no manufacturer root"):
        sign.verify(TrustConfig())


def _forge(issuer: x509.CertificateAuthority, statement: KeyStatement) -> bytes:
    key = sm2.generate_private_key().public_key()
    return issuer.issue(
        "CN=forged", key, extra_extensions=[(OID_KEY_STATEMENT, statement.encode(), False)]
    ).to_der()


def _statement(serial: str) -> KeyStatement:
    return KeyStatement(
        serial,
        "sign",
        Algorithm.SM2,
        ContainerUsage.TRANSACTION,
        KeyOrigin.GENERATED_ON_TOKEN,
        False,
        Confirmation.DISPLAY_AND_BUTTON,
        "1.0.0",
        bytes(32),
    )


def test_a_statement_not_signed_by_an_attestation_ca_is_refused(
    attested: tuple[SoftToken, KeyAttestation, KeyAttestation],
) -> None:
    """Forgeries: a "transaction key" statement for a key of the attacker's choosing, signed
    (a) by the manufacturer root directly, (b) by another manufacturer CA without the
    attestation-CA marker, (c) by a self-made CA — none is a key attestation."""
    token, _, _ = attested
    trust = trust_for(token)
    statement = _statement(token.serial)
    with pytest.raises(TokenNotGenuine, match="not signed by a token's attestation CA"):
        verify_key_attestation([_forge(token.manufacturer.ca, statement)], trust)
    sub_key = sm2.generate_private_key()
    plain_ca = x509.CertificateAuthority(
        token.manufacturer.ca.issue_intermediate(f"CN={token.serial}", sub_key.public_key()),
        sub_key,
    )
    chain = [_forge(plain_ca, statement), plain_ca.certificate.to_der()]
    with pytest.raises(TokenNotGenuine, match="marker extension missing"):
        verify_key_attestation(chain, trust)
    own = x509.CertificateAuthority.create_root("CN=Evil", sm2.generate_private_key())
    with pytest.raises(TokenNotGenuine, match="does not chain"):
        verify_key_attestation([_forge(own, statement), own.certificate.to_der()], trust)


def test_a_statement_naming_another_token_is_refused(
    attested: tuple[SoftToken, KeyAttestation, KeyAttestation],
) -> None:
    """A token's attestation CA vouches only for its own keys."""
    token, sign, _ = attested
    ca_cert = x509.load_certificate(sign.attestation_ca_der)
    # only the token holds its attestation key; in this test we read it from its state
    ca_key = sm2.load_pem_private_key(token.state.attestation_key_pem)
    ca = x509.CertificateAuthority(ca_cert, ca_key)
    chain = [_forge(ca, _statement("EBKOTHERTOKEN1")), sign.attestation_ca_der]
    with pytest.raises(TokenNotGenuine, match="serial mismatch"):
        verify_key_attestation(chain, trust_for(token))


def test_a_certificate_without_statement_is_no_attestation(
    attested: tuple[SoftToken, KeyAttestation, KeyAttestation],
) -> None:
    token, sign, _ = attested
    ca = x509.CertificateAuthority(
        x509.load_certificate(sign.attestation_ca_der),
        sm2.load_pem_private_key(token.state.attestation_key_pem),
    )
    leaf = ca.issue("CN=plain", sm2.generate_private_key().public_key()).to_der()
    with pytest.raises(TokenNotGenuine, match="no key attestation statement"):
        verify_key_attestation([leaf, sign.attestation_ca_der], trust_for(token))


def test_malformed_input_is_an_encoding_error(
    attested: tuple[SoftToken, KeyAttestation, KeyAttestation],
) -> None:
    token, _, _ = attested
    for junk in (b"", b"not a certificate", b"-----BEGIN CERTIFICATE-----\nAAAA\n"):
        with pytest.raises(EncodingError):
            verify_key_attestation(junk, trust_for(token))
    with pytest.raises(EncodingError):
        KeyStatement.decode(b"\x30\x00")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_no_modified_attestation_is_accepted_with_other_facts(
    attested: tuple[SoftToken, KeyAttestation, KeyAttestation], data: st.DataObject
) -> None:
    """Security invariant: flipping any bits of either certificate never yields an accepted
    attestation stating different facts (it is refused with a typed error, or — when the
    change lands where DER leaves no trace — gives exactly the original facts)."""
    token, _, login = attested
    trust = trust_for(token)
    original = login.verify(trust)
    which = data.draw(st.sampled_from(["leaf", "ca"]))
    der = bytearray(login.certificate_der if which == "leaf" else login.attestation_ca_der)
    pos = data.draw(st.integers(0, len(der) - 1))
    der[pos] ^= data.draw(st.integers(1, 255))
    chain = (
        [bytes(der), login.attestation_ca_der]
        if which == "leaf"
        else [login.certificate_der, bytes(der)]
    )
    try:
        facts = verify_key_attestation(chain, trust)
    except EbankAuthError:
        return
    assert facts == original


@given(
    serial=st.from_regex(r"[A-Za-z0-9-]{1,32}", fullmatch=True),
    container=st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True),
    algorithm=st.sampled_from(Algorithm),
    usage=st.sampled_from(ContainerUsage),
    origin=st.sampled_from(KeyOrigin),
    exportable=st.booleans(),
    confirmation=st.sampled_from(Confirmation),
    firmware_hash=st.binary(min_size=32, max_size=32),
)
def test_statement_der_round_trips(
    serial: str,
    container: str,
    algorithm: Algorithm,
    usage: ContainerUsage,
    origin: KeyOrigin,
    exportable: bool,
    confirmation: Confirmation,
    firmware_hash: bytes,
) -> None:
    st_ = KeyStatement(
        serial, container, algorithm, usage, origin, exportable, confirmation, "1.0.0",
        firmware_hash,
    )  # fmt: skip
    der = st_.encode()
    assert KeyStatement.decode(der) == st_
    with pytest.raises(EncodingError):
        KeyStatement.decode(der + b"\x00")
