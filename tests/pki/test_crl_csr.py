"""CRLs (build, parse, freshness) and PKCS#10 requests (proof of possession, PS-4)."""

from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import csr as a_csr
from asn1crypto import keys as a_keys
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa as c_rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from ebank_auth.crypto import rsa, sm2, x509
from ebank_auth.crypto.x509 import KeyUsage, RevocationReason, RevokedCertificate
from ebank_auth.errors import EncodingError, InvalidKey, InvalidSignature, UnsupportedAlgorithm
from pki.helpers import Pki

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def test_crl_round_trip(any_pki: Pki) -> None:
    entries = [
        RevokedCertificate(5, NOW - dt.timedelta(days=1), RevocationReason.KEY_COMPROMISE),
        RevokedCertificate(2**100 + 1, NOW, None),
    ]
    crl = any_pki.sub.issue_crl(entries, this_update=NOW, valid_days=3, crl_number=42)
    again = x509.load_crl(crl.to_pem())
    assert again.der == x509.load_crl(crl.to_der()).der
    assert again.issuer == any_pki.sub.certificate.subject
    assert again.crl_number == 42
    assert again.this_update == NOW and again.next_update == NOW + dt.timedelta(days=3)
    assert set(again.revoked.values()) == set(entries)
    assert again.is_revoked(5) and not again.is_revoked(6)
    assert not again.is_revoked(5, at=NOW - dt.timedelta(days=2))
    again.verify_signed_by(any_pki.sub.certificate)
    with pytest.raises(InvalidSignature):
        again.verify_signed_by(any_pki.root.certificate)


def test_crl_freshness(sm2_pki: Pki) -> None:
    crl = sm2_pki.sub.issue_crl([], this_update=NOW, valid_days=1)
    assert crl.is_fresh(NOW) and crl.is_fresh(NOW + dt.timedelta(hours=23))
    assert not crl.is_fresh(NOW - dt.timedelta(seconds=1))
    assert not crl.is_fresh(NOW + dt.timedelta(days=1, seconds=1))


@settings(max_examples=30, deadline=None)
@given(
    serials=st.lists(st.integers(min_value=1, max_value=2**159 - 1), max_size=5, unique=True),
    number=st.integers(min_value=0, max_value=2**64),
)
def test_crl_build_parse_property(sm2_pki: Pki, serials: list[int], number: int) -> None:
    crl = sm2_pki.sub.issue_crl(serials, crl_number=number)
    again = x509.load_crl(crl.der)
    assert sorted(again.revoked) == sorted(serials)
    assert again.crl_number == number
    again.verify_signed_by(sm2_pki.sub.certificate)


@pytest.fixture(scope="module")
def signed_crl(sm2_pki: Pki) -> x509.CertificateRevocationList:
    return sm2_pki.sub.issue_crl([sm2_pki.leaf.serial_number], crl_number=1)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_byte_flip_in_a_crl_is_refused(
    sm2_pki: Pki, signed_crl: x509.CertificateRevocationList, data: st.DataObject
) -> None:
    der = bytearray(signed_crl.der)
    i = data.draw(st.integers(min_value=0, max_value=len(der) - 1))
    der[i] ^= data.draw(st.integers(min_value=1, max_value=255))
    try:
        flipped = x509.load_crl(bytes(der))
    except EncodingError:
        return
    with pytest.raises((InvalidSignature, EncodingError, UnsupportedAlgorithm)):
        flipped.verify_signed_by(sm2_pki.sub.certificate)


def test_csr_round_trip_and_issue(any_pki: Pki) -> None:
    key = any_pki.leaf_key
    req = x509.build_csr("CN=Bob,OU=网银,O=Bank,C=CN", key, key_usage=[KeyUsage.DIGITAL_SIGNATURE])
    again = x509.load_csr(req.to_pem())
    assert again.subject == "CN=Bob,OU=网银,O=Bank,C=CN"
    assert again.requested_key_usage == {KeyUsage.DIGITAL_SIGNATURE}
    again.verify()
    assert again.is_valid()
    cert = any_pki.sub.issue_from_csr(again)
    assert cert.subject == again.subject
    assert cert.spki_der == again.spki_der
    assert x509.validate_chain(cert, any_pki.intermediates, any_pki.roots).valid


def test_csr_proof_of_possession_fails_when_altered(sm2_pki: Pki) -> None:
    req = x509.build_csr("CN=Bob", sm2_pki.leaf_key)
    # swap in someone else's public key: the signature no longer matches
    other = sm2.generate_private_key().public_key()
    asn = a_csr.CertificationRequest.load(req.der)
    asn["certification_request_info"]["subject_pk_info"] = a_keys.PublicKeyInfo.load(other.to_der())
    forged = x509.load_csr(asn.dump(force=True))
    with pytest.raises(InvalidSignature):
        forged.verify()
    assert not forged.is_valid()
    with pytest.raises(InvalidSignature):
        sm2_pki.sub.issue_from_csr(forged)


def test_csr_with_invalid_sm2_point_is_refused(sm2_pki: Pki) -> None:
    req = x509.build_csr("CN=Bob", sm2_pki.leaf_key)
    asn = a_csr.CertificationRequest.load(req.der)
    spki = a_keys.PublicKeyInfo.load(sm2_pki.leaf_key.public_key().to_der())
    point = bytearray(spki["public_key"].native)
    point[-1] ^= 1  # no longer on the curve
    spki["public_key"] = bytes(point)
    asn["certification_request_info"]["subject_pk_info"] = spki
    bad = x509.load_csr(asn.dump(force=True))
    with pytest.raises(InvalidKey):
        bad.verify()


def test_csr_with_short_rsa_key_is_refused() -> None:
    weak = c_rsa.generate_private_key(public_exponent=65537, key_size=1024)
    req = (
        cx509.CertificateSigningRequestBuilder()
        .subject_name(cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "weak")]))
        .sign(weak, hashes.SHA256())
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    parsed = x509.load_csr(req.public_bytes(Encoding.DER))
    with pytest.raises(InvalidKey):
        parsed.verify()


def test_rsa_csr_from_cryptography_verifies() -> None:
    key = rsa.generate_private_key(2048)
    req = (
        cx509.CertificateSigningRequestBuilder()
        .subject_name(cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "ok")]))
        .sign(key.cryptography_key, hashes.SHA256())
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    parsed = x509.load_csr(req.public_bytes(Encoding.PEM))
    parsed.verify()
    assert parsed.subject == "CN=ok"


@settings(max_examples=20, deadline=None)
@given(
    cn=st.text(
        alphabet=st.characters(codec="utf-8", categories=("L", "N")), min_size=1, max_size=30
    ),
    usages=st.none() | st.sets(st.sampled_from(list(KeyUsage)), min_size=1),
)
def test_csr_build_parse_property(sm2_pki: Pki, cn: str, usages: set[KeyUsage] | None) -> None:
    req = x509.build_csr(f"CN={cn},C=CN", sm2_pki.leaf_key, key_usage=usages)
    again = x509.load_csr(req.to_der())
    assert again.subject == f"CN={cn},C=CN"
    assert again.requested_key_usage == (frozenset(usages) if usages else None)
    again.verify()


@pytest.fixture(scope="module")
def signed_csr(sm2_pki: Pki) -> x509.CertificateSigningRequest:
    return x509.build_csr("CN=Bob,O=Bank,C=CN", sm2_pki.leaf_key)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_byte_flip_in_a_csr_is_refused(
    signed_csr: x509.CertificateSigningRequest, data: st.DataObject
) -> None:
    der = bytearray(signed_csr.der)
    i = data.draw(st.integers(min_value=0, max_value=len(der) - 1))
    der[i] ^= data.draw(st.integers(min_value=1, max_value=255))
    try:
        flipped = x509.load_csr(bytes(der))
    except EncodingError:
        return
    assert not flipped.is_valid()
