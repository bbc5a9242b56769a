"""Loading, reading, building and signature checks of single certificates."""

from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import core as a_core
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from ebank_auth.crypto import rsa, sm2, x509
from ebank_auth.crypto.keys import P256PrivateKey
from ebank_auth.crypto.x509 import ExtendedKeyUsage, KeyUsage, SignatureAlgorithm
from ebank_auth.errors import (
    ConfigurationError,
    EncodingError,
    InvalidSignature,
    UnsupportedAlgorithm,
)
from pki.helpers import Pki

SM2_KEY = sm2.generate_private_key()


def test_fields_of_sm2_leaf(sm2_pki: Pki) -> None:
    leaf = sm2_pki.leaf
    assert leaf.subject == "CN=SM2 Alice,O=ebank-auth,C=CN"
    assert leaf.issuer == sm2_pki.sub.certificate.subject
    assert leaf.version == 3
    assert leaf.serial_number > 0
    assert leaf.not_before < leaf.not_after
    assert leaf.key_usage == {KeyUsage.DIGITAL_SIGNATURE, KeyUsage.NON_REPUDIATION}
    assert leaf.basic_constraints is not None and not leaf.basic_constraints.ca
    assert leaf.signature_algorithm is SignatureAlgorithm.SM2_SM3
    assert leaf.key_algorithm is x509.KeyAlgorithm.SM2
    assert leaf.authority_key_identifier == sm2_pki.sub.certificate.subject_key_identifier
    assert isinstance(leaf.public_key, sm2.SM2PublicKey)
    assert leaf.public_key == sm2_pki.leaf_key.public_key()
    sub = sm2_pki.sub.certificate
    assert sub.is_ca and sub.basic_constraints is not None
    assert sub.basic_constraints.path_length == 0
    assert sub.key_usage == {KeyUsage.KEY_CERT_SIGN, KeyUsage.CRL_SIGN}
    assert sm2_pki.root.certificate.is_self_issued


def test_rsa_leaf_and_public_key(rsa_pki: Pki) -> None:
    assert rsa_pki.leaf.signature_algorithm is SignatureAlgorithm.SHA256_RSA
    assert isinstance(rsa_pki.leaf.public_key, rsa.RSAPublicKey)
    rsa_pki.leaf.verify_signed_by(rsa_pki.sub.certificate)


def test_sm3_with_rsa_signature(rsa_pki: Pki) -> None:
    cert = rsa_pki.sub.issue(
        "CN=sm3rsa", SM2_KEY.public_key(), signature_algorithm=SignatureAlgorithm.SM3_RSA
    )
    assert cert.asn1["signature_algorithm"]["algorithm"].dotted == "1.2.156.10197.1.504"
    cert.verify_signed_by(rsa_pki.sub.certificate)
    assert x509.validate_chain(cert, rsa_pki.intermediates, rsa_pki.roots).valid


def test_pem_and_der_round_trip(any_pki: Pki) -> None:
    leaf = any_pki.leaf
    assert x509.load_certificate(leaf.to_pem()) == leaf
    assert x509.load_certificate(leaf.to_der()).der == leaf.der
    bundle = leaf.to_pem() + any_pki.sub.certificate.to_pem()
    assert x509.load_certificates(bundle) == [leaf, any_pki.sub.certificate]


def test_signature_checks(sm2_pki: Pki, rsa_pki: Pki) -> None:
    leaf = sm2_pki.leaf
    leaf.verify_signed_by(sm2_pki.sub.certificate)
    assert leaf.is_signed_by(sm2_pki.sub.certificate.public_key)
    with pytest.raises(InvalidSignature):
        leaf.verify_signed_by(sm2_pki.root.certificate)
    with pytest.raises(InvalidSignature):  # algorithm does not fit an RSA key
        leaf.verify_signed_by(rsa_pki.sub.certificate)
    assert not leaf.is_signed_by(rsa_pki.root.certificate)


def _p256_certificate() -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "P-256 Root")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        cx509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(cx509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER), key


def test_ecdsa_p256_certificate_from_cryptography() -> None:
    der, key = _p256_certificate()
    cert = x509.load_certificate(der)
    assert cert.subject == "CN=P-256 Root"
    assert cert.key_algorithm is x509.KeyAlgorithm.EC_P256
    assert cert.signature_algorithm is SignatureAlgorithm.ECDSA_SHA256
    assert isinstance(cert.public_key, ec.EllipticCurvePublicKey)
    cert.verify_signed_by(cert)
    # and a P-256 CA can issue an SM2 leaf that validates
    ca = x509.CertificateAuthority(cert, P256PrivateKey(key))
    leaf = ca.issue("CN=mixed", SM2_KEY.public_key())
    assert x509.validate_chain(leaf, [], [cert]).valid


def test_extended_key_usage_and_san(sm2_pki: Pki) -> None:
    cert = sm2_pki.sub.issue(
        "CN=server",
        SM2_KEY.public_key(),
        key_usage={KeyUsage.DIGITAL_SIGNATURE, KeyUsage.KEY_ENCIPHERMENT},
        extended_key_usage=[ExtendedKeyUsage.SERVER_AUTH, "1.2.3.4"],
        subject_alt_names=["dns:bank.example", "email:ops@bank.example"],
    )
    assert cert.extended_key_usage == (ExtendedKeyUsage.SERVER_AUTH.value, "1.2.3.4")
    assert cert.subject_alt_names == ("dns_name:bank.example", "rfc822_name:ops@bank.example")


def test_builder_refuses_bad_parameters(sm2_pki: Pki) -> None:
    with pytest.raises(ConfigurationError):
        sm2_pki.sub.issue("CN=x", SM2_KEY.public_key(), valid_days=0)
    with pytest.raises(ConfigurationError):
        x509.build_certificate(subject="CN=x", public_key=SM2_KEY, issuer_key=sm2_pki.leaf_key)
    with pytest.raises(ConfigurationError):  # key does not match the CA certificate
        x509.CertificateAuthority(sm2_pki.root.certificate, sm2_pki.leaf_key)
    with pytest.raises(EncodingError):
        sm2_pki.sub.issue("CN=", SM2_KEY.public_key())
    with pytest.raises(EncodingError):
        sm2_pki.sub.issue("XX=what", SM2_KEY.public_key())


def test_unsupported_signature_algorithm_is_typed(sm2_pki: Pki) -> None:
    # replace the SM2-with-SM3 OID (both copies) by an unknown one of the same length
    old = a_core.ObjectIdentifier("1.2.156.10197.1.501").dump()
    new = a_core.ObjectIdentifier("1.2.156.10197.1.502").dump()
    assert sm2_pki.leaf.der.count(old) == 2
    der = sm2_pki.leaf.der.replace(old, new)
    cert = x509.load_certificate(der)
    assert cert.signature_algorithm is None
    with pytest.raises(UnsupportedAlgorithm):
        cert.verify_signed_by(sm2_pki.sub.certificate)


def test_names_round_trip() -> None:
    text = "CN=张三\\, Jr.,OU=个人网银,O=中国某银行,L=北京,ST=北京,C=CN"
    name = x509.names.build_name(text)
    assert x509.format_name(name) == text
    assert x509.parse_name("/C=CN/O=Bank/CN=Alice") == [("CN", "Alice"), ("O", "Bank"), ("C", "CN")]


_name_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20
).filter(lambda s: s.strip() == s)


@settings(max_examples=25, deadline=None)
@given(
    cn=_name_text,
    org=_name_text,
    usages=st.sets(st.sampled_from(list(KeyUsage)), min_size=1),
    days=st.integers(min_value=1, max_value=18000),
    serial=st.integers(min_value=1, max_value=2**159 - 1),
    is_ca=st.booleans(),
)
def test_build_serialize_parse_round_trip(
    sm2_pki: Pki, cn: str, org: str, usages: set[KeyUsage], days: int, serial: int, is_ca: bool
) -> None:
    subject = "CN=" + x509.names._escape(cn) + ",O=" + x509.names._escape(org)
    nb = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    cert = sm2_pki.sub.issue(
        subject,
        SM2_KEY.public_key(),
        key_usage=usages,
        not_before=nb,
        valid_days=days,
        serial_number=serial,
        is_ca=is_ca,
    )
    again = x509.load_certificate(cert.to_pem())
    assert again.subject == subject
    assert x509.parse_name(again.subject) == [("CN", cn), ("O", org)]
    assert again.key_usage == usages
    assert again.serial_number == serial
    assert again.not_before == nb
    assert again.not_after == nb + dt.timedelta(days=days)
    assert again.is_ca is is_ca
    again.verify_signed_by(sm2_pki.sub.certificate)
