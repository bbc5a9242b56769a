"""The direct DER encoder of SM2 (r, s) matches asn1crypto byte for byte."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ebank_auth.crypto import _asn1

values = st.one_of(
    st.integers(min_value=0, max_value=2**256 - 1),
    st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, 0x100, 2**255, 2**256 - 1, 2**248 - 1]),
)


@given(r=values, s=values)
def test_fast_encode_rs_is_asn1crypto_der(r: int, s: int) -> None:
    der = _asn1.encode_rs(r, s)
    assert der == _asn1.encode_rs_asn1crypto(r, s)
    if r and s:  # decode_rs refuses zero values
        assert _asn1.decode_rs(der) == (r, s)


@given(
    r=st.integers(min_value=2**256, max_value=2**600),
    s=st.integers(min_value=-(2**64), max_value=2**64),
)
def test_values_outside_the_fast_path_still_encode(r: int, s: int) -> None:
    assert _asn1.encode_rs(r, s) == _asn1.encode_rs_asn1crypto(r, s)
