"""Garbage, truncated, oversized or deeply nested input gives a typed error, never a crash."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebank_auth.crypto import cms, x509
from ebank_auth.crypto.cms import CMSReason
from ebank_auth.crypto.der import check_der
from ebank_auth.crypto.x509 import ValidationReason
from ebank_auth.errors import EncodingError
from pki.helpers import Pki

LOADERS = [x509.load_certificate, x509.load_crl, x509.load_csr]


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _nested(depth: int) -> bytes:
    inner = b"\x05\x00"
    for _ in range(depth):
        inner = b"\x30" + _len(len(inner)) + inner
    return inner


@pytest.mark.parametrize("loader", LOADERS)
@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300))
def test_garbage_is_an_encoding_error(loader: object, data: bytes) -> None:
    with pytest.raises(EncodingError):
        loader(data)  # type: ignore[operator]


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300))
def test_garbage_cms_is_malformed(data: bytes) -> None:
    result = cms.validate(data, trust_roots=[])
    assert not result.valid and result.reason is CMSReason.MALFORMED
    with pytest.raises(EncodingError):
        cms.parse(data)


def test_every_truncation_is_refused(sm2_pki: Pki) -> None:
    der = sm2_pki.leaf.der
    for n in range(len(der)):
        with pytest.raises(EncodingError):
            x509.load_certificate(der[:n])
    signed = cms.sign(b"data", cms.Signer(sm2_pki.leaf_key, sm2_pki.leaf))
    for n in range(0, len(signed), 7):
        assert cms.validate(signed[:n], trust_roots=sm2_pki.roots).reason is CMSReason.MALFORMED


def test_trailing_data_is_refused(sm2_pki: Pki) -> None:
    with pytest.raises(EncodingError):
        x509.load_certificate(sm2_pki.leaf.der + b"\x00")


@pytest.mark.parametrize("depth", [40, 5000])
def test_deep_nesting_is_refused(depth: int) -> None:
    blob = _nested(depth)
    for loader in LOADERS:
        with pytest.raises(EncodingError, match=r"nesting|malformed"):
            loader(blob)
    assert cms.validate(blob).reason is CMSReason.MALFORMED


def test_deep_indefinite_nesting_is_refused() -> None:
    blob = b"\x30\x80" * 200_000
    with pytest.raises(EncodingError, match="nesting"):
        check_der(blob, what="t", max_size=10**7, allow_indefinite=True)
    assert cms.validate(blob).reason is CMSReason.MALFORMED
    with pytest.raises(EncodingError, match="indefinite"):
        x509.load_certificate(b"\x30\x80\x00\x00")


def test_huge_length_fields_are_refused() -> None:
    for blob in (
        b"\x30\x84\xff\xff\xff\xff",
        b"\x30\x89" + b"\x01" * 9,
        b"\x1f\xff\xff\xff\xff\xff\x01",
    ):
        with pytest.raises(EncodingError):
            x509.load_certificate(blob)


def test_size_limits(sm2_pki: Pki) -> None:
    with pytest.raises(EncodingError, match="limit"):
        x509.load_certificate(b"\x30\x83\x10\x00\x00" + b"\x00" * 0x100000)
    signed = cms.sign(b"x" * 5000, cms.Signer(sm2_pki.leaf_key, sm2_pki.leaf))
    assert cms.validate(signed, trust_roots=sm2_pki.roots, max_size=1000).reason is (
        CMSReason.MALFORMED
    )


def test_wrong_structure_is_typed(sm2_pki: Pki) -> None:
    # well-formed DER of the wrong type
    with pytest.raises(EncodingError):
        x509.load_certificate(b"\x30\x06\x02\x01\x01\x02\x01\x02")
    with pytest.raises(EncodingError):
        x509.load_crl(sm2_pki.leaf.der)
    with pytest.raises(EncodingError):
        x509.load_csr(sm2_pki.leaf.der)
    assert cms.validate(sm2_pki.leaf.der).reason is CMSReason.MALFORMED
    with pytest.raises(EncodingError):
        x509.load_certificate("not bytes")  # type: ignore[arg-type]
    with pytest.raises(EncodingError):
        x509.load_certificate(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
    result = x509.validate_chain(b"garbage", [], [sm2_pki.root.certificate])
    assert result.reason is ValidationReason.MALFORMED
