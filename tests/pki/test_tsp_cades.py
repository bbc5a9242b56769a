"""RFC 3161 timestamps (crypto/tsp.py) and CAdES-BES/-T (crypto/cades.py)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from asn1crypto import cms as a_cms
from asn1crypto import tsp as a_tsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.crypto import cades, cms, oids, sm2, tsp
from ebank_auth.crypto.cades import CAdESLevel, CAdESReason
from ebank_auth.crypto.tsp import TimestampReason
from ebank_auth.errors import (
    CAdESVerificationError,
    ConfigurationError,
    TimestampUnavailable,
    TimestampVerificationError,
)
from pki.helpers import Pki, Tsa, make_tsa

DATA = b"transfer 100.00 CNY to 6222 0000 2222"


def _authority(tsa: Tsa) -> tsp.TimestampAuthority:
    assert isinstance(tsa.authority, tsp.TimestampAuthority)
    return tsa.authority


def _signer(pki: Pki) -> cms.Signer:
    return cms.Signer(pki.leaf_key, pki.leaf, (pki.sub.certificate,))


def _client(tsa: Tsa, **kw: object) -> tsp.TimestampClient:
    return tsp.TimestampClient(_authority(tsa).respond, trust_roots=tsa.pki.roots, **kw)  # type: ignore[arg-type]


@pytest.fixture(params=["sm2", "rsa"])
def any_tsa(request: pytest.FixtureRequest, sm2_tsa: Tsa, rsa_tsa: Tsa) -> Tsa:
    return sm2_tsa if request.param == "sm2" else rsa_tsa


# ----------------------------------------------------------------------------- tokens


@pytest.mark.parametrize("alg", list(tsp.HashAlgorithm))
def test_token_round_trip_every_hash(any_tsa: Tsa, alg: tsp.HashAlgorithm) -> None:
    info = _client(any_tsa, hash_algorithm=alg).timestamp_info(DATA)
    assert info.hash_algorithm == alg.value
    assert info.tsa_certificate == any_tsa.certificate
    assert info.policy == tsp.DEFAULT_POLICY and info.accuracy == dt.timedelta(seconds=1)
    assert abs(info.gen_time - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)
    again = tsp.verify_token(info.token, data=DATA, trust_roots=any_tsa.pki.roots)
    assert again.serial_number == info.serial_number


def test_a_token_is_a_v3_signed_data_over_tst_info(sm2_tsa: Tsa) -> None:
    token = _client(sm2_tsa).timestamp(DATA)
    ci = a_cms.ContentInfo.load(token)
    assert ci["content_type"].dotted == oids.CMS_SIGNED_DATA
    assert ci["content"]["version"].native == "v3"
    assert ci["content"]["encap_content_info"]["content_type"].dotted == oids.CT_TST_INFO


def test_token_for_other_data_or_nonce_or_policy_is_refused(sm2_tsa: Tsa) -> None:
    roots = sm2_tsa.pki.roots
    info = _client(sm2_tsa).timestamp_info(DATA)
    cases = [
        (dict(data=DATA + b"!"), TimestampReason.IMPRINT_MISMATCH),
        (dict(data=DATA, nonce=(info.nonce or 0) + 1), TimestampReason.NONCE_MISMATCH),
        (dict(data=DATA, policy="1.2.3.4"), TimestampReason.POLICY_MISMATCH),
    ]
    for kwargs, reason in cases:
        with pytest.raises(TimestampVerificationError) as exc:
            tsp.verify_token(info.token, trust_roots=roots, **kwargs)  # type: ignore[arg-type]
        assert exc.value.reason is reason


def test_tsa_not_trusted_and_tampered_tokens_are_refused(sm2_tsa: Tsa, rsa_pki: Pki) -> None:
    token = _client(sm2_tsa).timestamp(DATA)
    with pytest.raises(TimestampVerificationError) as exc:
        tsp.verify_token(token, data=DATA, trust_roots=rsa_pki.roots)
    assert exc.value.reason is TimestampReason.TSA_NOT_TRUSTED
    # change the signed TSTInfo's genTime by one second: the messageDigest no longer matches
    tst = cms.parse(token).content
    assert tst is not None
    gen_time = a_tsp.TSTInfo.load(tst)["gen_time"].contents
    bad = bytearray(token)
    at = token.index(gen_time) + 13  # YYYYMMDDHHMMS|S
    bad[at] = ord("0") + (bad[at] - ord("0") + 1) % 10
    with pytest.raises(TimestampVerificationError) as exc:
        tsp.verify_token(bytes(bad), data=DATA, trust_roots=sm2_tsa.pki.roots)
    assert exc.value.reason in (TimestampReason.BAD_SIGNATURE, TimestampReason.MALFORMED)


def test_tsa_certificate_needs_critical_time_stamping_only(sm2_pki: Pki) -> None:
    not_critical = make_tsa_cert(sm2_pki, critical=False)
    extra_purpose = make_tsa_cert(
        sm2_pki,
        eku=bytes.fromhex("3014")
        + bytes.fromhex("06082b06010505070308")
        + bytes.fromhex("06082b06010505070302"),
    )
    for key, cert in (not_critical, extra_purpose):
        with pytest.raises(ConfigurationError, match="extendedKeyUsage"):
            tsp.TimestampAuthority(key, cert)


def make_tsa_cert(pki: Pki, **kw: object) -> tuple[sm2.SM2PrivateKey, object]:
    key = sm2.generate_private_key()
    from pki.helpers import EKU_TIME_STAMPING

    cert = pki.sub.issue(
        "CN=Bad TSA,O=ebank-auth,C=CN",
        key.public_key(),
        extra_extensions=[
            ("2.5.29.37", kw.get("eku", EKU_TIME_STAMPING), kw.get("critical", True))
        ],  # type: ignore[list-item]
    )
    return key, cert


def test_a_token_signed_by_a_non_tsa_certificate_is_refused(sm2_pki: Pki) -> None:
    """A customer's signing key (no timeStamping EKU) produces a look-alike token: refused."""
    tst = a_tsp.TSTInfo(
        {
            "version": "v1",
            "policy": tsp.DEFAULT_POLICY,
            "message_imprint": {
                "hash_algorithm": {"algorithm": oids.SM3},
                "hashed_message": _sm3(DATA),
            },
            "serial_number": 7,
            "gen_time": dt.datetime.now(dt.timezone.utc).replace(microsecond=0),
        }
    ).dump()
    token = cms.sign(
        tst,
        cms.Signer(sm2_pki.leaf_key, sm2_pki.leaf, (sm2_pki.sub.certificate,)),
        content_type=oids.CT_TST_INFO,
        extra_signed_attributes=[
            (
                oids.ATTR_SIGNING_CERTIFICATE_V2,
                tsp.ess_cert_id_v2(sm2_pki.leaf, tsp.HashAlgorithm.SM3),
            )
        ],
    )
    with pytest.raises(TimestampVerificationError) as exc:
        tsp.verify_token(token, data=DATA, trust_roots=sm2_pki.roots)
    assert exc.value.reason is TimestampReason.WRONG_EXTENDED_KEY_USAGE


def _sm3(data: bytes) -> bytes:
    from ebank_auth.crypto import sm3

    return sm3.digest(data)


def test_a_plain_signed_data_is_not_a_timestamp(sm2_pki: Pki) -> None:
    der = cms.sign(DATA, _signer(sm2_pki))
    with pytest.raises(TimestampVerificationError) as exc:
        tsp.verify_token(der, data=DATA, trust_roots=sm2_pki.roots)
    assert exc.value.reason is TimestampReason.NOT_A_TIMESTAMP


# ----------------------------------------------------------------------------- requests


def test_the_tsa_rejects_bad_requests_with_status(sm2_tsa: Tsa) -> None:
    tsa = _authority(sm2_tsa)
    roots = sm2_tsa.pki.roots
    sha1 = a_tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha1"},
                "hashed_message": b"\0" * 20,
            },
        }
    ).dump()
    policy = tsp.build_request(DATA, policy="1.2.3.4")
    cases = [
        (sha1, "bad_alg"),
        (policy.der, "unaccepted_policy"),
        (b"\x30\x03\x02\x01\x01", "bad_data_format"),
        (b"not DER", "bad_data_format"),
    ]
    for request, failure in cases:
        resp = tsa.respond(request)
        parsed = tsp._Resp.load(resp)["status"]
        assert parsed["status"].native == "rejection"
        assert parsed["status_string"].native  # the reason, in words
        assert failure in parsed["fail_info"].native
    with pytest.raises(TimestampVerificationError) as exc:
        tsp.verify_response(tsa.respond(policy.der), policy, trust_roots=roots)
    assert exc.value.reason is TimestampReason.REJECTED


def test_a_response_to_another_request_is_refused(sm2_tsa: Tsa) -> None:
    tsa = _authority(sm2_tsa)
    first = tsp.build_request(DATA)
    second = tsp.build_request(DATA)
    with pytest.raises(TimestampVerificationError) as exc:
        tsp.verify_response(tsa.respond(first.der), second, trust_roots=sm2_tsa.pki.roots)
    assert exc.value.reason is TimestampReason.NONCE_MISMATCH
    no_cert = tsp.build_request(DATA, cert_req=False)
    with pytest.raises(TimestampVerificationError) as exc:
        # the TSA omitted its certificate as asked; the verifier has none to check with
        tsp.verify_response(tsa.respond(no_cert.der), no_cert, trust_roots=sm2_tsa.pki.roots)
    assert exc.value.reason is TimestampReason.CERTIFICATE_MISSING
    info = tsp.verify_response(
        tsa.respond(no_cert.der),
        no_cert,
        trust_roots=sm2_tsa.pki.roots,
        certificates=[sm2_tsa.certificate],
        intermediates=sm2_tsa.pki.intermediates,
    )
    assert info.tsa_certificate == sm2_tsa.certificate


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=200), nonce=st.integers(min_value=0, max_value=2**160))
def test_request_response_round_trip_property(sm2_tsa: Tsa, data: bytes, nonce: int) -> None:
    request = tsp.build_request(data, nonce=nonce)
    assert tsp.parse_request(request.der) == request
    info = tsp.verify_response(
        _authority(sm2_tsa).respond(request.der), request, trust_roots=sm2_tsa.pki.roots
    )
    assert info.nonce == nonce
    with pytest.raises(TimestampVerificationError):
        tsp.verify_token(info.token, data=data + b"\0", trust_roots=sm2_tsa.pki.roots)


# ----------------------------------------------------------------------------- HTTP


@pytest.fixture
def tsa_url(sm2_tsa: Tsa) -> Iterator[str]:
    server = tsp.make_http_server(_authority(sm2_tsa))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}/tsa"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_client_over_loopback_http(sm2_tsa: Tsa, tsa_url: str) -> None:
    client = tsp.TimestampClient(tsa_url, trust_roots=sm2_tsa.pki.roots)
    info = client.timestamp_info(DATA)
    assert info.tsa_certificate == sm2_tsa.certificate
    signed = cades.sign(DATA, _signer(sm2_tsa.pki), timestamper=client)
    assert (
        cades.verify(signed, trust_roots=sm2_tsa.pki.roots, tsa_trust_roots=sm2_tsa.pki.roots).level
        is CAdESLevel.T
    )


def test_http_server_refuses_wrong_requests(tsa_url: str) -> None:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(tsa_url, data=b"x", headers={"Content-Type": "text/plain"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=5)
    assert exc.value.code == 415


def test_client_errors_are_typed(sm2_pki: Pki) -> None:
    with pytest.raises(ConfigurationError):
        tsp.TimestampClient("file:///etc/passwd", trust_roots=sm2_pki.roots)
    with pytest.raises(ConfigurationError):
        tsp.TimestampClient("http://127.0.0.1:1/", trust_roots=[])
    client = tsp.TimestampClient("http://127.0.0.1:1/tsa", trust_roots=sm2_pki.roots, timeout=2)
    with pytest.raises(TimestampUnavailable):
        client.timestamp(DATA)


# ----------------------------------------------------------------------------- CAdES


@pytest.mark.parametrize("profile", list(cms.CMSProfile))
def test_cades_t_round_trip(any_tsa: Tsa, profile: cms.CMSProfile) -> None:
    pki = any_tsa.pki
    signed = cades.sign(
        DATA,
        cms.Signer(pki.leaf_key, pki.leaf, (pki.sub.certificate,)),
        timestamper=_client(any_tsa),
        profile=profile,
    )
    result = cades.verify(signed, trust_roots=pki.roots, tsa_trust_roots=pki.roots)
    assert result.level is CAdESLevel.T and result.content == DATA
    assert result.timestamp is not None and result.signing_time is not None
    assert result.signing_time <= result.timestamp.gen_time + dt.timedelta(seconds=1)
    # the timestamp covers this signature value
    view = cms.parse(signed).signer_infos[0]
    tsp.verify_token(result.timestamp.token, data=view.signature, trust_roots=pki.roots)
    # the CMS stays a valid plain SignedData for any CMS verifier
    assert cms.verify(signed, trust_roots=pki.roots) == DATA


def test_cades_bes_is_refused_when_t_is_required(sm2_pki: Pki, sm2_tsa: Tsa) -> None:
    bes = cades.sign(DATA, _signer(sm2_pki))
    result = cades.validate(bes, trust_roots=sm2_pki.roots)
    assert result.reason is CAdESReason.TIMESTAMP_MISSING
    ok = cades.verify(bes, trust_roots=sm2_pki.roots, require_timestamp=False)
    assert ok.level is CAdESLevel.BES and ok.timestamp is None
    t = cades.timestamp(bes, _client(sm2_tsa))
    assert (
        cades.verify(t, trust_roots=sm2_pki.roots, tsa_trust_roots=sm2_pki.roots).level
        is CAdESLevel.T
    )


def test_cades_tampering_is_refused(sm2_pki: Pki, sm2_tsa: Tsa, rsa_pki: Pki) -> None:
    signer = _signer(sm2_pki)
    signed = cades.sign(DATA, signer, timestamper=_client(sm2_tsa), detached=True)
    roots = sm2_pki.roots
    # other content
    r = cades.validate(signed, content=DATA + b"0", trust_roots=roots, tsa_trust_roots=roots)
    assert r.reason is CAdESReason.CMS_INVALID and r.cms_result is not None
    assert r.cms_result.reason is cms.CMSReason.CONTENT_TAMPERED
    # a timestamp of another signature moved onto this one
    other = cades.sign(b"other", signer)
    other_token = _client(sm2_tsa).timestamp(cms.parse(other).signer_infos[0].signature)
    bes = cades.sign(DATA, signer, detached=True)
    moved = cms.add_unsigned_attribute(bes, oids.ATTR_SIGNATURE_TIME_STAMP_TOKEN, other_token)
    r = cades.validate(moved, content=DATA, trust_roots=roots, tsa_trust_roots=roots)
    assert r.reason is CAdESReason.TIMESTAMP_INVALID
    assert r.timestamp_reason is TimestampReason.IMPRINT_MISMATCH
    # the TSA not trusted
    r = cades.validate(signed, content=DATA, trust_roots=roots, tsa_trust_roots=rsa_pki.roots)
    assert (
        r.reason is CAdESReason.TIMESTAMP_INVALID
        and r.timestamp_reason is TimestampReason.TSA_NOT_TRUSTED
    )
    with pytest.raises(CAdESVerificationError):
        cades.verify(signed, content=DATA, trust_roots=roots, tsa_trust_roots=rsa_pki.roots)


def test_signing_certificate_v2_must_name_the_signer(sm2_pki: Pki) -> None:
    other_key = sm2.generate_private_key()
    other = sm2_pki.sub.issue("CN=Other,O=ebank-auth,C=CN", other_key.public_key())
    wrong = cms.sign(
        DATA,
        cms.Signer(sm2_pki.leaf_key, sm2_pki.leaf, (sm2_pki.sub.certificate,)),
        extra_signed_attributes=[
            (oids.ATTR_SIGNING_CERTIFICATE_V2, tsp.ess_cert_id_v2(other, "1.2.156.10197.1.401"))
        ],
    )
    r = cades.validate(wrong, trust_roots=sm2_pki.roots, require_timestamp=False)
    assert r.reason is CAdESReason.SIGNING_CERTIFICATE
    plain = cms.sign(DATA, cms.Signer(sm2_pki.leaf_key, sm2_pki.leaf, (sm2_pki.sub.certificate,)))
    r = cades.validate(plain, trust_roots=sm2_pki.roots, require_timestamp=False)
    assert r.reason is CAdESReason.SIGNING_CERTIFICATE


def test_a_signing_time_after_the_timestamp_is_refused(sm2_pki: Pki, sm2_tsa: Tsa) -> None:
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)
    signed = cades.sign(DATA, _signer(sm2_pki), timestamper=_client(sm2_tsa), signing_time=future)
    r = cades.validate(signed, trust_roots=sm2_pki.roots, tsa_trust_roots=sm2_pki.roots)
    assert r.reason is CAdESReason.SIGNED_AFTER_TIMESTAMP


def test_signer_path_is_checked_at_the_timestamp_time(sm2_pki: Pki, sm2_tsa: Tsa) -> None:
    """The point of -T: a later check still uses the time the signature provably existed."""
    signed = cades.sign(DATA, _signer(sm2_pki), timestamper=_client(sm2_tsa))
    ok = cades.verify(signed, trust_roots=sm2_pki.roots, tsa_trust_roots=sm2_pki.roots)
    late = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3 * 365)
    r = cades.validate(signed, trust_roots=sm2_pki.roots, tsa_trust_roots=sm2_pki.roots, at=late)
    assert (
        ok.timestamp is not None and r.reason is CAdESReason.CMS_INVALID
    )  # expired at a later explicit time


def test_add_unsigned_attribute_keeps_the_signature_bytes(sm2_pki: Pki) -> None:
    signed = cms.sign(DATA, _signer(sm2_pki))
    out = cms.add_unsigned_attribute(signed, "1.2.3.4", b"\x05\x00")
    before, after = cms.parse(signed).signer_infos[0], cms.parse(out).signer_infos[0]
    assert (
        before.signature == after.signature and before.signed_attributes == after.signed_attributes
    )
    assert after.unsigned_attributes == {"1.2.3.4": (b"\x05\x00",)}
    assert cms.verify(out, trust_roots=sm2_pki.roots) == DATA


def test_make_tsa_helper_builds_distinct_tsas(sm2_pki: Pki) -> None:
    a, b = make_tsa(sm2_pki), make_tsa(sm2_pki)
    assert a.certificate != b.certificate
