"""Path validation: a valid chain, and a test for every refusal reason."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebank_auth.crypto import sm2, x509
from ebank_auth.crypto.x509 import KeyUsage, SignatureAlgorithm, ValidationReason
from ebank_auth.errors import CertificateValidationError
from pki.helpers import Pki

NOW = dt.datetime.now(dt.timezone.utc)
KEY = sm2.generate_private_key()


def _check(result: x509.ValidationResult, reason: ValidationReason, index: int | None) -> None:
    assert not result.valid
    assert result.reason is reason, result.message
    assert result.message
    if index is None:
        assert result.failing_certificate is None
    else:
        assert result.failing_certificate is not None
        assert result.failing_certificate.index == index


def test_valid_chain(any_pki: Pki) -> None:
    result = x509.validate_chain(
        any_pki.leaf,
        any_pki.intermediates,
        any_pki.roots,
        required_key_usage=KeyUsage.DIGITAL_SIGNATURE,
    )
    assert result.valid and result.reason is ValidationReason.OK
    assert result.chain == (any_pki.leaf, any_pki.sub.certificate, any_pki.root.certificate)
    assert x509.verify_chain(any_pki.leaf, any_pki.intermediates, any_pki.roots) == result.chain


def test_pem_inputs_accepted(sm2_pki: Pki) -> None:
    result = x509.validate_chain(
        sm2_pki.leaf.to_pem(),
        [sm2_pki.sub.certificate.to_der()],
        [sm2_pki.root.certificate.to_pem()],
    )
    assert result.valid


def test_unknown_issuer(sm2_pki: Pki) -> None:
    _check(x509.validate_chain(sm2_pki.leaf, [], sm2_pki.roots), ValidationReason.UNKNOWN_ISSUER, 0)
    other = x509.CertificateAuthority.create_root("CN=Other Root", sm2.generate_private_key())
    _check(
        x509.validate_chain(sm2_pki.leaf, sm2_pki.intermediates, [other.certificate]),
        ValidationReason.UNKNOWN_ISSUER,
        0,
    )
    _check(
        x509.validate_chain(sm2_pki.leaf, sm2_pki.intermediates, []),
        ValidationReason.UNKNOWN_ISSUER,
        None,
    )


def test_raising_form_carries_reason(sm2_pki: Pki) -> None:
    with pytest.raises(CertificateValidationError) as info:
        x509.verify_chain(sm2_pki.leaf, [], sm2_pki.roots)
    assert info.value.reason is ValidationReason.UNKNOWN_ISSUER


def test_expired_and_not_yet_valid(sm2_pki: Pki) -> None:
    expired = sm2_pki.sub.issue(
        "CN=old", KEY.public_key(), not_before=NOW - dt.timedelta(days=30), valid_days=10
    )
    _check(
        x509.validate_chain(expired, sm2_pki.intermediates, sm2_pki.roots),
        ValidationReason.EXPIRED,
        0,
    )
    future = sm2_pki.sub.issue("CN=new", KEY.public_key(), not_before=NOW + dt.timedelta(days=2))
    _check(
        x509.validate_chain(future, sm2_pki.intermediates, sm2_pki.roots),
        ValidationReason.NOT_YET_VALID,
        0,
    )
    # the same certificate is valid at a time inside its validity
    assert x509.validate_chain(
        future, sm2_pki.intermediates, sm2_pki.roots, at=NOW + dt.timedelta(days=3)
    ).valid
    # the issuing CA's own validity counts too
    _check(
        x509.validate_chain(
            sm2_pki.leaf, sm2_pki.intermediates, sm2_pki.roots, at=NOW + dt.timedelta(days=366 * 11)
        ),
        ValidationReason.EXPIRED,
        2,
    )


def test_bad_signature(sm2_pki: Pki) -> None:
    # same issuer name and key identifier, but signed by a different key
    impostor_key = sm2.generate_private_key()
    forged = x509.build_certificate(
        subject="CN=forged",
        public_key=KEY.public_key(),
        issuer_key=impostor_key,
        issuer=x509.build_certificate(
            subject=sm2_pki.sub.certificate.subject,
            public_key=impostor_key,
            issuer_key=impostor_key,
            is_ca=True,
        ),
    )
    _check(
        x509.validate_chain(forged, sm2_pki.intermediates, sm2_pki.roots),
        ValidationReason.BAD_SIGNATURE,
        0,
    )


def test_wrong_key_usage(sm2_pki: Pki) -> None:
    enc_only = sm2_pki.sub.issue("CN=enc", KEY.public_key(), key_usage={KeyUsage.KEY_ENCIPHERMENT})
    ok = x509.validate_chain(enc_only, sm2_pki.intermediates, sm2_pki.roots)
    assert ok.valid  # no usage required
    _check(
        x509.validate_chain(
            enc_only, sm2_pki.intermediates, sm2_pki.roots, required_key_usage="digital_signature"
        ),
        ValidationReason.WRONG_KEY_USAGE,
        0,
    )
    no_ku = sm2_pki.sub.issue("CN=noku", KEY.public_key(), key_usage=None)
    _check(
        x509.validate_chain(
            no_ku,
            sm2_pki.intermediates,
            sm2_pki.roots,
            required_key_usage=[KeyUsage.DIGITAL_SIGNATURE],
        ),
        ValidationReason.WRONG_KEY_USAGE,
        0,
    )


def test_wrong_extended_key_usage(sm2_pki: Pki) -> None:
    cert = sm2_pki.sub.issue(
        "CN=tls", KEY.public_key(), extended_key_usage=[x509.ExtendedKeyUsage.SERVER_AUTH]
    )
    _check(
        x509.validate_chain(
            cert,
            sm2_pki.intermediates,
            sm2_pki.roots,
            required_extended_key_usage=x509.ExtendedKeyUsage.CLIENT_AUTH,
        ),
        ValidationReason.WRONG_EXTENDED_KEY_USAGE,
        0,
    )


def test_not_a_ca(sm2_pki: Pki) -> None:
    # an end-entity certificate used to issue another one
    ee_key = sm2.generate_private_key()
    ee = sm2_pki.sub.issue("CN=not a ca", ee_key.public_key())
    child = x509.build_certificate(
        subject="CN=child", public_key=KEY.public_key(), issuer_key=ee_key, issuer=ee
    )
    _check(
        x509.validate_chain(child, [ee, *sm2_pki.intermediates], sm2_pki.roots),
        ValidationReason.NOT_A_CA,
        1,
    )
    no_bc = x509.build_certificate(
        subject="CN=no bc",
        public_key=ee_key,
        issuer_key=sm2_pki.sub.key,
        issuer=sm2_pki.sub.certificate,
        include_basic_constraints=False,
        key_usage={KeyUsage.KEY_CERT_SIGN},
    )
    child2 = x509.build_certificate(
        subject="CN=child2", public_key=KEY.public_key(), issuer_key=ee_key, issuer=no_bc
    )
    _check(
        x509.validate_chain(child2, [no_bc, *sm2_pki.intermediates], sm2_pki.roots),
        ValidationReason.NOT_A_CA,
        1,
    )


def test_missing_key_cert_sign(sm2_pki: Pki) -> None:
    ca_key = sm2.generate_private_key()
    ca_cert = sm2_pki.root.issue(
        "CN=CA without keyCertSign",
        ca_key.public_key(),
        is_ca=True,
        key_usage={KeyUsage.CRL_SIGN, KeyUsage.DIGITAL_SIGNATURE},
    )
    child = x509.build_certificate(
        subject="CN=child", public_key=KEY.public_key(), issuer_key=ca_key, issuer=ca_cert
    )
    _check(
        x509.validate_chain(child, [ca_cert], sm2_pki.roots),
        ValidationReason.MISSING_KEY_CERT_SIGN,
        1,
    )


def test_path_too_long(sm2_pki: Pki) -> None:
    # sub has pathLenConstraint 0: it may not certify another CA
    k2 = sm2.generate_private_key()
    sub2 = sm2_pki.sub.create_intermediate("CN=Sub Sub CA", k2, path_length=None)
    leaf = sub2.issue("CN=deep", KEY.public_key())
    _check(
        x509.validate_chain(leaf, [sub2.certificate, *sm2_pki.intermediates], sm2_pki.roots),
        ValidationReason.PATH_TOO_LONG,
        1,
    )
    # overall limit on the number of certificates
    result = x509.validate_chain(
        sm2_pki.leaf, sm2_pki.intermediates, sm2_pki.roots, max_path_length=1
    )
    assert result.reason is ValidationReason.PATH_TOO_LONG


def test_name_mismatch(sm2_pki: Pki) -> None:
    # issuer found through the key identifier only: names do not chain
    renamed = x509.build_certificate(
        subject="CN=Renamed Issuing CA",
        public_key=sm2_pki.sub.key,
        issuer_key=sm2_pki.root.key,
        issuer=sm2_pki.root.certificate,
        is_ca=True,
        key_usage={KeyUsage.KEY_CERT_SIGN},
    )
    _check(
        x509.validate_chain(sm2_pki.leaf, [renamed], sm2_pki.roots),
        ValidationReason.NAME_MISMATCH,
        0,
    )


def test_revocation(sm2_pki: Pki) -> None:
    leaf2 = sm2_pki.sub.issue("CN=to revoke", KEY.public_key())
    crl = sm2_pki.sub.issue_crl(
        [
            x509.RevokedCertificate(
                leaf2.serial_number,
                NOW - dt.timedelta(hours=1),
                x509.RevocationReason.KEY_COMPROMISE,
            )
        ],
        this_update=NOW - dt.timedelta(hours=1),
    )
    _check(
        x509.validate_chain(leaf2, sm2_pki.intermediates, sm2_pki.roots, crls=[crl]),
        ValidationReason.REVOKED,
        0,
    )
    # other certificates of the same CA stay valid
    assert x509.validate_chain(sm2_pki.leaf, sm2_pki.intermediates, sm2_pki.roots, crls=[crl]).valid
    # an intermediate revoked by the root
    root_crl = sm2_pki.root.issue_crl([sm2_pki.sub.certificate])
    _check(
        x509.validate_chain(sm2_pki.leaf, sm2_pki.intermediates, sm2_pki.roots, crls=[root_crl]),
        ValidationReason.REVOKED,
        1,
    )


def test_crl_stale_and_missing(sm2_pki: Pki) -> None:
    stale = sm2_pki.sub.issue_crl(
        [], this_update=NOW - dt.timedelta(days=10), next_update=NOW - dt.timedelta(days=3)
    )
    _check(
        x509.validate_chain(sm2_pki.leaf, sm2_pki.intermediates, sm2_pki.roots, crls=[stale]),
        ValidationReason.CRL_STALE,
        0,
    )
    _check(
        x509.validate_chain(sm2_pki.leaf, sm2_pki.intermediates, sm2_pki.roots, require_crl=True),
        ValidationReason.CRL_MISSING,
        1,
    )


def test_crl_bad_signature(sm2_pki: Pki) -> None:
    # a CRL with the issuer's name, signed by someone else
    impostor = x509.CertificateAuthority.create_root(
        sm2_pki.sub.certificate.subject, sm2.generate_private_key()
    )
    fake = impostor.issue_crl([])
    _check(
        x509.validate_chain(sm2_pki.leaf, sm2_pki.intermediates, sm2_pki.roots, crls=[fake]),
        ValidationReason.CRL_BAD_SIGNATURE,
        0,
    )


def test_unsupported_critical_extension(sm2_pki: Pki) -> None:
    from asn1crypto import x509 as a_x509

    cert = sm2_pki.sub.issue("CN=ext", KEY.public_key())
    tbs = a_x509.TbsCertificate.load(cert.tbs_der)
    exts = list(tbs["extensions"])
    exts.append(
        a_x509.Extension({"extn_id": "1.2.3.4.5", "critical": True, "extn_value": b"\x05\x00"})
    )
    tbs["extensions"] = exts
    from ebank_auth.crypto._asn1 import algorithm_identifier

    alg = SignatureAlgorithm.SM2_SM3
    sig = sm2_pki.sub.key.sign_with(alg, tbs.dump())
    der = a_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": algorithm_identifier(alg),
            "signature_value": sig,
        }
    ).dump()
    _check(
        x509.validate_chain(der, sm2_pki.intermediates, sm2_pki.roots),
        ValidationReason.UNSUPPORTED_CRITICAL_EXTENSION,
        0,
    )


def test_malformed_input_gives_reason() -> None:
    result = x509.validate_chain(b"\x30\x03\x02\x01", [], [])
    assert result.reason is ValidationReason.MALFORMED and not result.valid


def test_multiple_candidate_issuers_picks_the_right_one(sm2_pki: Pki) -> None:
    # a second CA with the same name but another key must not hide the real issuer
    twin = sm2_pki.root.create_intermediate(
        sm2_pki.sub.certificate.subject, sm2.generate_private_key()
    )
    result = x509.validate_chain(
        sm2_pki.leaf, [twin.certificate, sm2_pki.sub.certificate], sm2_pki.roots
    )
    assert result.valid and result.chain[1] == sm2_pki.sub.certificate


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_byte_flip_in_a_certificate_is_refused(sm2_pki: Pki, data: st.DataObject) -> None:
    der = bytearray(sm2_pki.leaf.der)
    index = data.draw(st.integers(min_value=0, max_value=len(der) - 1))
    mask = data.draw(st.integers(min_value=1, max_value=255))
    der[index] ^= mask
    result = x509.validate_chain(bytes(der), sm2_pki.intermediates, sm2_pki.roots)
    assert not result.valid


def test_unsupported_algorithm_in_path(sm2_pki: Pki) -> None:
    from asn1crypto import core as a_core

    old = a_core.ObjectIdentifier("1.2.156.10197.1.501").dump()
    new = a_core.ObjectIdentifier("1.2.156.10197.1.502").dump()
    der = sm2_pki.leaf.der.replace(old, new)
    _check(
        x509.validate_chain(der, sm2_pki.intermediates, sm2_pki.roots),
        ValidationReason.UNSUPPORTED_ALGORITHM,
        0,
    )


def test_name_chaining_ignores_case_and_spaces(sm2_pki: Pki) -> None:
    from asn1crypto import x509 as a_x509

    from ebank_auth.crypto._asn1 import algorithm_identifier
    from ebank_auth.crypto.x509.names import build_name

    cert = sm2_pki.sub.issue("CN=case", KEY.public_key())
    tbs = a_x509.TbsCertificate.load(cert.tbs_der)
    tbs["issuer"] = build_name("CN=sm2   ISSUING ca,O=EBANK-AUTH,C=CN")
    alg = SignatureAlgorithm.SM2_SM3
    sig = sm2_pki.sub.key.sign_with(alg, tbs.dump(force=True))
    der = a_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": algorithm_identifier(alg),
            "signature_value": sig,
        }
    ).dump()
    relaxed = x509.load_certificate(der)
    assert relaxed.issuer != sm2_pki.sub.certificate.subject
    assert x509.validate_chain(relaxed, sm2_pki.intermediates, sm2_pki.roots).valid
