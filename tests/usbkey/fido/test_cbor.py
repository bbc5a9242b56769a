"""The token's strict CBOR codec: canonical output equal to python-fido2's, strict refusals."""

from __future__ import annotations

import pytest
from fido2 import cbor as fido2_cbor
from hypothesis import given
from hypothesis import strategies as st

from ebank_auth.usbkey.emulator import cbor

_scalars = (
    st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=20)
    | st.booleans()
)
_keys = st.integers(min_value=-(2**64), max_value=2**64 - 1) | st.text(max_size=12)


def _values(scalars: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_keys, inner, max_size=5),
        max_leaves=20,
    )


values = _values(_scalars)  # python-fido2's encoder has no null
values_with_null = _values(_scalars | st.none())


@given(values_with_null)
def test_round_trip(value: object) -> None:
    assert cbor.loads(cbor.dumps(value)) == value


@given(values)
def test_same_bytes_as_python_fido2(value: object) -> None:
    assert cbor.dumps(value) == fido2_cbor.encode(value)  # an independent encoder agrees


@given(values)
def test_python_fido2_output_is_accepted(value: object) -> None:
    assert cbor.loads(fido2_cbor.encode(value)) == value


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ("1817", "shortest"),  # 23 written with a one-byte argument
        ("190001", "shortest"),
        ("5f4101ff", "indefinite"),  # indefinite byte string
        ("9fff", "indefinite"),
        ("c11a514b67b0", "tags"),  # a tagged date
        ("f93c00", "floats"),  # half float 1.0
        ("f7", "floats"),  # undefined
        ("a20102 0103", "order"),  # duplicate key 1
        ("a202010102", "order"),  # keys out of order
        ("a1f501", "keys must be"),  # a boolean key
        ("a1810101", "keys must be"),  # an array key
        ("0000", "trailing"),
        ("62ff", "ends"),  # text shorter than its length
        ("62c328", "UTF-8"),
        ("9b0000000100000000", "array is longer"),  # claims 2**32 items: refused before allocating
        ("8181818181818181818100", "nesting"),
    ],
)
def test_refusals(data: str, why: str) -> None:
    with pytest.raises(cbor.CborError, match=why):
        cbor.loads(bytes.fromhex(data.replace(" ", "")))


def test_what_it_cannot_write() -> None:
    with pytest.raises(cbor.CborError):
        cbor.dumps(1.5)
    with pytest.raises(cbor.CborError):
        cbor.dumps(2**64)
