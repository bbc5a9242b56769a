"""Properties of the SKF data paths: the C structs as cffi lays them out ↔ our SM2 encodings
(blob ↔ DER round-trip, malformed blobs refused), and the PIN counter of the C test library
never letting more wrong guesses through than its limit."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.crypto import sm2
from ebank_auth.errors import InvalidKey, InvalidSignature, PinIncorrect, PinLocked
from ebank_auth.usbkey.vendor import skf
from usbkey.skf.conftest import USER_PIN, USER_TRIES, write_pins

N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
scalars = st.integers(min_value=1, max_value=N - 1)


@pytest.mark.parametrize("bits", [32, 64])
@given(r=scalars, s=scalars)
def test_signature_blob_and_der_round_trip(bits: int, r: int, s: int) -> None:
    ffi = skf._ffi(bits)
    blob = ffi.new("ECCSIGNATUREBLOB *")
    blob.r[32:64] = r.to_bytes(32, "big")
    blob.s[32:64] = s.to_bytes(32, "big")
    raw = bytes(ffi.buffer(blob))
    der = sm2.signature_from_skf_blob(raw)
    assert der == sm2.signature_from_rs(r, s)
    assert sm2.signature_to_skf_blob(der) == raw


@given(r=scalars, s=scalars, where=st.sampled_from([*range(32), *range(64, 96)]))
def test_a_signature_blob_with_padding_is_refused(r: int, s: int, where: int) -> None:
    raw = bytearray(r.to_bytes(64, "big") + s.to_bytes(64, "big"))
    raw[where] |= 1
    with pytest.raises(InvalidSignature):
        sm2.signature_from_skf_blob(bytes(raw))


@pytest.mark.parametrize("bits", [32, 64])
@settings(max_examples=30, deadline=None)
@given(d=st.integers(min_value=1, max_value=N - 2))
def test_public_key_blob_round_trip(bits: int, d: int) -> None:
    key = sm2.private_key_from_bytes(d.to_bytes(32, "big")).public_key()
    ffi = skf._ffi(bits)
    blob = ffi.new("ECCPUBLICKEYBLOB *")
    blob.BitLen = 256
    blob.XCoordinate[32:64] = key.x.to_bytes(32, "big")
    blob.YCoordinate[32:64] = key.y.to_bytes(32, "big")
    assert skf.blob_public_key(ffi, blob) == key
    if bits == 32:
        assert bytes(ffi.buffer(blob)) == key.to_skf_blob()


@given(x=st.integers(min_value=0, max_value=2**256 - 1), bitlen=st.sampled_from([256, 255, 512]))
def test_a_public_key_blob_off_the_curve_or_not_256_bits_is_refused(x: int, bitlen: int) -> None:
    ffi = skf._ffi(32)
    blob = ffi.new("ECCPUBLICKEYBLOB *")
    blob.BitLen = bitlen
    blob.XCoordinate[32:64] = x.to_bytes(32, "big")
    blob.YCoordinate[32:64] = x.to_bytes(32, "big")  # (x, x) is never an SM2 point
    with pytest.raises(InvalidKey):
        skf.blob_public_key(ffi, blob)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(guesses=st.lists(st.sampled_from(["999999", "000000", USER_PIN]), max_size=10))
def test_wrong_guesses_never_exceed_the_limit(skf_library: Path, guesses: list[str]) -> None:
    """Model: a right PIN resets the counter, a wrong one takes a try, at 0 nothing opens."""
    root = Path(tempfile.mkdtemp(prefix="skf-prop-"))
    old = os.environ.get("EBANK_SKF_TEST_DIR")
    os.environ["EBANK_SKF_TEST_DIR"] = str(root)
    try:
        write_pins(root / "apps" / "EBANK_APP")
        with skf.open_skf(skf_library) as token:
            left = USER_TRIES
            for guess in guesses:
                if left == 0:
                    with pytest.raises(PinLocked):
                        token.verify_pin(guess)
                elif guess == USER_PIN:
                    token.verify_pin(guess)
                    left = USER_TRIES
                else:
                    with pytest.raises(PinIncorrect) as err:
                        token.verify_pin(guess)
                    left -= 1
                    assert err.value.remaining == left
                assert token.pin_status().remaining == left
    finally:
        if old is None:
            del os.environ["EBANK_SKF_TEST_DIR"]
        else:
            os.environ["EBANK_SKF_TEST_DIR"] = old
        shutil.rmtree(root)
