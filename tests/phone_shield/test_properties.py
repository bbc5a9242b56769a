"""Hypothesis properties of the phone shield's security invariants (counters, consume-once)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.crypto import sm2_2p
from ebank_auth.errors import (
    DeviceLocked,
    DeviceRequestRejected,
    JointSignatureRefused,
    SessionAlreadyUsed,
    SigningRefused,
)
from ebank_auth.phone_shield import PhoneShieldSettings
from ebank_auth.phone_shield.keydescription import (
    ApplicationId,
    AuthorizationList,
    KeyDescription,
    RootOfTrust,
)
from ebank_auth.phone_shield.protocol import SignedRequest, b64e, request_bytes

from .conftest import PIN, Bank, make_bank, transfer

_SETTINGS = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def enrolled() -> Any:
    with TemporaryDirectory() as d:
        bank = make_bank(Path(d))
        yield bank, bank.enrolled_phone()


def _request(phone: Any, path: str, counter: int, payload: bytes = b"{}") -> SignedRequest:
    sig = phone.keystore.sign_with_device_key(
        request_bytes(path, phone.device_id, counter, payload)
    )
    return SignedRequest(phone.device_id, counter, payload, sig)


@_SETTINGS
@given(st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=12))
def test_a_device_request_is_accepted_iff_its_counter_is_above_every_accepted_one(
    enrolled: tuple[Bank, Any], counters: list[int]
) -> None:
    bank, phone = enrolled
    key = f"phone-shield:ctr:{phone.device_id}"
    base = int(bank.store.get(key) or b"0")
    path = f"/phone-shield/v1/devices/{phone.device_id}/status"
    high = base
    for c in counters:
        request = _request(phone, path, base + c)
        if base + c > high:
            bank.server.device_request(phone.device_id, "status", request)
            high = base + c
        else:
            with pytest.raises(DeviceRequestRejected):
                bank.server.device_request(phone.device_id, "status", request)
        assert int(bank.store.get(key) or b"0") == high
    phone.state["counter"] = high


@_SETTINGS
@given(st.integers(min_value=1, max_value=1000), st.binary(max_size=64))
def test_a_request_signed_for_another_path_or_payload_changes_nothing(
    enrolled: tuple[Bank, Any], bump: int, payload: bytes
) -> None:
    bank, phone = enrolled
    key = f"phone-shield:ctr:{phone.device_id}"
    before = bank.store.get(key)
    counter = int(before or b"0") + bump
    signed = _request(phone, f"/phone-shield/v1/devices/{phone.device_id}/revoke", counter)
    with pytest.raises(DeviceRequestRejected):
        bank.server.device_request(phone.device_id, "status", signed)
    forged = SignedRequest(phone.device_id, counter, payload + b"x", signed.signature)
    with pytest.raises(DeviceRequestRejected):
        bank.server.device_request(phone.device_id, "revoke", forged)
    assert bank.store.get(key) == before


@settings(max_examples=8, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=7), st.integers(min_value=1, max_value=4))
def test_failed_signatures_counted_until_a_good_one_and_the_lock_holds(
    outcomes: list[bool], limit: int
) -> None:
    """failures == wrong PINs since the last good signature, and the device is locked
    exactly when that reaches the limit (then even the right PIN is refused)."""
    with TemporaryDirectory() as d:
        bank = make_bank(Path(d), PhoneShieldSettings(max_sign_failures=limit))
        phone = bank.enrolled_phone()
        expected = 0
        for n, good in enumerate(outcomes):
            if expected >= limit:
                with pytest.raises(DeviceLocked):
                    bank.server.begin_signing(phone.device_id, transfer(n))
                break
            bank.server.begin_signing(phone.device_id, transfer(n))
            pending = phone.pending()
            assert pending is not None
            if good:
                assert phone.confirm(pending, pin=PIN) == "signed"
                expected = 0
            else:
                with pytest.raises(JointSignatureRefused):
                    phone.confirm(pending, pin="999999")
                expected += 1
            status = bank.server.status(phone.device_id)
            assert status.failures == expected
            assert (status.state.value == "locked") == (expected >= limit)


@_SETTINGS
@given(st.integers(min_value=2, max_value=5))
def test_a_signing_session_answers_exactly_once(enrolled: tuple[Bank, Any], tries: int) -> None:
    bank, phone = enrolled
    bank.server.unlock(phone.device_id)
    bank.server.begin_signing(phone.device_id, transfer(1))
    pending = phone.pending()
    assert pending is not None
    share = phone.keystore.load_share(PIN)
    answers = 0
    for _ in range(tries):
        request, _state = sm2_2p.phone_sign_begin(
            share, sm2_2p.SignChallenge.from_bytes(pending.challenge), pending.transaction.encode()
        )
        try:
            phone._signed(
                "POST",
                f"/phone-shield/v1/sessions/{pending.session_id}/sign",
                {"sign_request": b64e(request.to_bytes())},
            )
            answers += 1
        except (SigningRefused, SessionAlreadyUsed):
            pass
    assert answers == 1
    bank.server.unlock(phone.device_id)


@settings(max_examples=30, deadline=None)
@given(
    challenge=st.binary(max_size=128),
    version=st.integers(min_value=0, max_value=2**31),
    level=st.integers(min_value=0, max_value=2),
    locked=st.booleans(),
    boot=st.integers(min_value=0, max_value=3),
    packages=st.lists(
        st.tuples(st.text(min_size=1, max_size=20), st.integers(0, 2**40)), max_size=3
    ),
    digests=st.lists(st.binary(min_size=32, max_size=32), max_size=3, unique=True),
    origin=st.one_of(st.none(), st.integers(0, 4)),
)
def test_key_description_round_trips(
    challenge: bytes,
    version: int,
    level: int,
    locked: bool,
    boot: int,
    packages: list[tuple[str, int]],
    digests: list[bytes],
    origin: int | None,
) -> None:
    desc = KeyDescription(
        version,
        level,
        version,
        level,
        challenge,
        b"",
        AuthorizationList(application_id=ApplicationId(tuple(packages), tuple(digests))),
        AuthorizationList(
            origin=origin, root_of_trust=RootOfTrust(b"k" * 32, locked, boot, b"h" * 32)
        ),
    )
    back = KeyDescription.from_der(desc.to_der())
    assert back.challenge == challenge and back.attestation_security_level == level
    assert back.hardware_enforced.root_of_trust == desc.hardware_enforced.root_of_trust
    assert back.hardware_enforced.origin == origin
    app = back.software_enforced.application_id
    assert app is not None
    assert sorted(app.packages) == sorted(packages) and sorted(app.signature_digests) == sorted(
        digests
    )


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=200))
def test_key_description_decoder_never_crashes(data: bytes) -> None:
    from ebank_auth.errors import EncodingError

    with contextlib.suppress(EncodingError):
        KeyDescription.from_der(data)
