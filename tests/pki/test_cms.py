"""CMS SignedData: RFC 5652 and GM/T 0010 profiles, every refusal reason."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from asn1crypto import core as a_core
from hypothesis import given, settings
from hypothesis import strategies as st

from ebank_auth.crypto import cms, sm2
from ebank_auth.crypto.cms import CMSProfile, CMSReason, Signer
from ebank_auth.crypto.x509 import KeyUsage, ValidationReason
from ebank_auth.errors import CMSError, CMSVerificationError
from pki.helpers import Pki

CONTENT = "转账 1000.00 CNY 至 6222 0000 1234 5678".encode()
SM2_CONTENT_OID = a_core.ObjectIdentifier("1.2.156.10197.6.1.4.2.1").dump()


def _mutate(der: bytes, change: Callable[[Any], None]) -> bytes:
    """Parse a SignedData, let ``change`` edit it, re-encode it (signatures untouched)."""
    ci = cms._ContentInfo.load(der)
    sd = ci["content"].parse(cms._SignedData)
    change(sd)
    body = sd.dump(force=True)
    if body[0] != 0xA0:  # asn1crypto may keep the explicit [0] tag on the parsed value
        body = cms._tlv(0xA0, body)
    return cms._tlv(0x30, ci["content_type"].dump() + body)


def _signer(pki: Pki) -> Signer:
    return Signer(pki.leaf_key, pki.leaf, (pki.sub.certificate,))


@pytest.mark.parametrize("profile", list(CMSProfile))
@pytest.mark.parametrize("detached", [False, True])
def test_sign_verify(any_pki: Pki, profile: CMSProfile, detached: bool) -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    der = cms.sign(CONTENT, _signer(any_pki), detached=detached, profile=profile, signing_time=when)
    info = cms.parse(der)
    assert info.profile is profile
    assert info.content == (None if detached else CONTENT)
    assert info.signer_count == 1
    assert any_pki.leaf in info.certificates
    result = cms.validate(der, content=CONTENT if detached else None, trust_roots=any_pki.roots)
    assert result.valid, result.message
    assert result.reason is CMSReason.OK
    assert result.content == CONTENT
    assert result.profile is profile
    (s,) = result.signers
    assert s.certificate == any_pki.leaf and s.signing_time == when
    assert s.chain_result is not None and s.chain_result.valid


def test_gmt0010_oids(sm2_pki: Pki) -> None:
    der = cms.sign(CONTENT, _signer(sm2_pki), profile=CMSProfile.GMT0010)
    ci = cms._ContentInfo.load(der)
    assert ci["content_type"].dotted == "1.2.156.10197.6.1.4.2.2"
    sd = ci["content"].parse(cms._SignedData)
    assert sd["encap_content_info"]["content_type"].dotted == "1.2.156.10197.6.1.4.2.1"
    si = sd["signer_infos"][0]
    assert si["signature_algorithm"]["algorithm"].dotted == "1.2.156.10197.1.501"
    assert isinstance(si["signature_algorithm"]["parameters"], a_core.Void)
    assert si["digest_algorithm"]["algorithm"].dotted == "1.2.156.10197.1.401"
    assert SM2_CONTENT_OID in der


def test_two_signers(sm2_pki: Pki, rsa_pki: Pki) -> None:
    der = cms.sign(CONTENT, [_signer(sm2_pki), _signer(rsa_pki)])
    result = cms.validate(der, trust_roots=[*sm2_pki.roots, *rsa_pki.roots])
    assert result.valid and len(result.signers) == 2
    # trusting only one root refuses the whole message and says which signer failed
    partial = cms.validate(der, trust_roots=sm2_pki.roots)
    assert partial.reason is CMSReason.SIGNER_NOT_TRUSTED
    assert [s.valid for s in partial.signers] == [True, False]


def test_without_signed_attributes(any_pki: Pki) -> None:
    der = cms.sign(CONTENT, _signer(any_pki), signed_attributes=False)
    result = cms.validate(der, trust_roots=any_pki.roots)
    assert result.valid and result.signers[0].signing_time is None
    assert cms.validate(der.replace(CONTENT[:6], b"X" * 6), trust_roots=any_pki.roots).reason is (
        CMSReason.BAD_SIGNATURE
    )


def test_tampered_content(any_pki: Pki) -> None:
    der = cms.sign(CONTENT, _signer(any_pki))
    tampered = der.replace(CONTENT, CONTENT.replace(b"1000", b"9000"))
    result = cms.validate(tampered, trust_roots=any_pki.roots)
    assert result.reason is CMSReason.CONTENT_TAMPERED and not result.valid
    detached = cms.sign(CONTENT, _signer(any_pki), detached=True)
    assert cms.validate(detached, content=CONTENT + b"0", trust_roots=any_pki.roots).reason is (
        CMSReason.CONTENT_TAMPERED
    )
    assert cms.validate(detached, trust_roots=any_pki.roots).reason is CMSReason.CONTENT_MISSING


def test_wrong_digest(sm2_pki: Pki) -> None:
    der = cms.sign(CONTENT, _signer(sm2_pki))

    def to_sha256(sd: Any) -> None:
        sd["digest_algorithms"] = [{"algorithm": "sha256"}]
        sd["signer_infos"][0]["digest_algorithm"] = {"algorithm": "sha256"}

    result = cms.validate(_mutate(der, to_sha256), trust_roots=sm2_pki.roots)
    assert result.reason is CMSReason.WRONG_DIGEST, result.message

    def unlisted(sd: Any) -> None:
        sd["digest_algorithms"] = [{"algorithm": "sha256"}]

    result = cms.validate(_mutate(der, unlisted), trust_roots=sm2_pki.roots)
    assert result.reason is CMSReason.WRONG_DIGEST, result.message


def test_bad_signature(sm2_pki: Pki) -> None:
    der = cms.sign(CONTENT, _signer(sm2_pki))
    # re-sign the attributes with another key but keep the certificate
    other = sm2.generate_private_key()

    def resign(sd: Any) -> None:
        si = sd["signer_infos"][0]
        si["signature"] = other.sign(b"\x31" + si["signed_attrs"].dump()[1:])

    result = cms.validate(_mutate(der, resign), trust_roots=sm2_pki.roots)
    assert result.reason is CMSReason.BAD_SIGNATURE, result.message


def test_signer_not_in_trust_store(sm2_pki: Pki, rsa_pki: Pki) -> None:
    der = cms.sign(CONTENT, _signer(sm2_pki))
    result = cms.validate(der, trust_roots=rsa_pki.roots)
    assert result.reason is CMSReason.SIGNER_NOT_TRUSTED
    assert result.chain_reason is ValidationReason.UNKNOWN_ISSUER
    with pytest.raises(CMSVerificationError) as info:
        cms.verify(der, trust_roots=rsa_pki.roots)
    assert info.value.reason is CMSReason.SIGNER_NOT_TRUSTED
    assert info.value.result == result
    assert cms.verify(der, trust_roots=sm2_pki.roots) == CONTENT


def test_signer_without_digital_signature(sm2_pki: Pki) -> None:
    key = sm2.generate_private_key()
    cert = sm2_pki.sub.issue("CN=enc only", key.public_key(), key_usage={KeyUsage.KEY_ENCIPHERMENT})
    der = cms.sign(CONTENT, Signer(key, cert, (sm2_pki.sub.certificate,)))
    result = cms.validate(der, trust_roots=sm2_pki.roots)
    assert result.reason is CMSReason.SIGNER_NOT_TRUSTED
    assert result.chain_reason is ValidationReason.WRONG_KEY_USAGE


def test_signer_certificate_missing(sm2_pki: Pki) -> None:
    der = cms.sign(CONTENT, _signer(sm2_pki), include_certificates=False)
    assert cms.validate(der, trust_roots=sm2_pki.roots).reason is (
        CMSReason.SIGNER_CERTIFICATE_MISSING
    )
    ok = cms.validate(
        der,
        trust_roots=sm2_pki.roots,
        certificates=[sm2_pki.leaf],
        intermediates=sm2_pki.intermediates,
    )
    assert ok.valid


def test_sign_refuses_mismatched_key(sm2_pki: Pki) -> None:
    with pytest.raises(CMSError):
        cms.sign(CONTENT, Signer(sm2.generate_private_key(), sm2_pki.leaf))
    with pytest.raises(CMSError):
        cms.sign(CONTENT, [])


@pytest.fixture(scope="module", params=["sm2-gmt0010", "rsa-rfc5652"])
def signed_message(request: pytest.FixtureRequest, sm2_pki: Pki, rsa_pki: Pki) -> tuple[bytes, Pki]:
    if request.param == "sm2-gmt0010":
        der = cms.sign(b"pay 1 CNY to account 42", _signer(sm2_pki), profile=CMSProfile.GMT0010)
        return der, sm2_pki
    return cms.sign(b"pay 1 CNY to account 42", _signer(rsa_pki)), rsa_pki


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_byte_flip_is_refused(signed_message: tuple[bytes, Pki], data: st.DataObject) -> None:
    message, pki = signed_message
    der = bytearray(message)
    i = data.draw(st.integers(min_value=0, max_value=len(der) - 1))
    der[i] ^= data.draw(st.integers(min_value=1, max_value=255))
    result = cms.validate(bytes(der), trust_roots=pki.roots)
    assert not result.valid
    assert result.reason is not CMSReason.OK


@settings(max_examples=20, deadline=None)
@given(
    content=st.binary(max_size=2000),
    detached=st.booleans(),
    profile=st.sampled_from(list(CMSProfile)),
)
def test_sign_verify_round_trip_property(
    sm2_pki: Pki, content: bytes, detached: bool, profile: CMSProfile
) -> None:
    der = cms.sign(content, _signer(sm2_pki), detached=detached, profile=profile)
    result = cms.validate(der, content=content if detached else None, trust_roots=sm2_pki.roots)
    assert result.valid and result.content == content


def test_other_refusals(sm2_pki: Pki) -> None:
    der = cms.sign(CONTENT, _signer(sm2_pki))

    def no_signers(sd: Any) -> None:
        sd["signer_infos"] = []

    assert cms.validate(_mutate(der, no_signers), trust_roots=sm2_pki.roots).reason is (
        CMSReason.NO_SIGNERS
    )

    def other_content_type(sd: Any) -> None:
        sd["version"] = "v3"
        sd["encap_content_info"]["content_type"] = "1.2.156.10197.6.1.4.2.1"

    assert cms.validate(_mutate(der, other_content_type), trust_roots=sm2_pki.roots).reason is (
        CMSReason.CONTENT_TYPE_MISMATCH
    )

    def sha1(sd: Any) -> None:
        sd["digest_algorithms"] = [{"algorithm": "sha1"}]
        sd["signer_infos"][0]["digest_algorithm"] = {"algorithm": "sha1"}

    assert cms.validate(_mutate(der, sha1), trust_roots=sm2_pki.roots).reason is (
        CMSReason.UNSUPPORTED_ALGORITHM
    )

    def wrong_version(sd: Any) -> None:
        sd["version"] = "v3"

    assert cms.validate(_mutate(der, wrong_version), trust_roots=sm2_pki.roots).reason is (
        CMSReason.MALFORMED
    )


def test_pem_input_and_parse(sm2_pki: Pki) -> None:
    from ebank_auth.crypto.der import to_pem

    der = cms.sign(CONTENT, _signer(sm2_pki))
    assert cms.validate(to_pem(der, "CMS"), trust_roots=sm2_pki.roots).valid
    assert cms.parse(to_pem(der, "PKCS7")).content == CONTENT
