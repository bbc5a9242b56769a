"""Password / PIN policy, argon2id hashing, rehash on upgrade, first-login change."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebank_auth.errors import (
    ConfigurationError,
    PasswordChangeRequired,
    PasswordError,
    PasswordIncorrect,
    PasswordPolicyError,
)
from ebank_auth.passwords import (
    PasswordHasher,
    PasswordPolicy,
    PasswordService,
    PersonalInfo,
    PinPolicy,
)
from ebank_auth.store import MemoryStore
from plugins.store_backends import FakeClock

FAST = PasswordHasher(time_cost=1, memory_cost_kib=1024, parallelism=1)
INFO = PersonalInfo(
    id_number="11010519491231002X",
    birthday=date(1949, 12, 31),
    phone="13912345678",
    username="zhangsan",
)


@pytest.mark.parametrize(
    "pin",
    [
        "111111",
        "123456",
        "654321",
        "012345",
        "121212",
        "123123",
        "112112",
        "12345",
        "1234567",
        "12a456",
        "１２３４５６",
    ],
)
def test_weak_pins_refused(pin: str) -> None:
    with pytest.raises(PasswordPolicyError):
        PinPolicy().check(pin)


@pytest.mark.parametrize(
    "pin", ["491231", "231002", "194912", "345678", "123100", "311249", "912345"]
)
def test_pins_derived_from_personal_data_refused(pin: str) -> None:
    assert PinPolicy().violations(pin) == [] or pin == "345678"
    with pytest.raises(PasswordPolicyError, match="ID number, phone number or birthday"):
        PinPolicy().check(pin, INFO)


@pytest.mark.parametrize("pin", ["284017", "750396", "902681"])
def test_good_pins_accepted(pin: str) -> None:
    PinPolicy().check(pin, INFO)


@settings(max_examples=200)
@given(pin=st.text(alphabet="0123456789", min_size=6, max_size=6))
def test_pin_policy_property(pin: str) -> None:
    """Never accepts all-same, full sequences, or a fragment of ID / phone / birthday."""
    ok = not PinPolicy().violations(pin, INFO)
    if ok:
        assert len(set(pin)) > 2
        assert pin not in "0123456789" and pin not in "9876543210"
        for source in INFO.digit_strings():
            assert pin not in source


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Ab1!", "length"),
        ("abcdefgh", "at least 3"),
        ("Passw0rd", "commonly used"),
        ("Aaaa1111!", "repeat"),
        ("Xabcde9!", "sequences"),
        ("Z98765q!", "sequences"),
        ("Qwerty7!x", "sequences"),
        ("Mm!19491231", "birthday"),
        ("Kx!912345678", "phone"),
        ("Zhangsan#1", "user name"),
    ],
)
def test_weak_passwords_refused(password: str, reason: str) -> None:
    with pytest.raises(PasswordPolicyError, match=reason):
        PasswordPolicy().check(password, INFO)


def test_good_password_accepted() -> None:
    PasswordPolicy().check("Tr0ub4dor&3x", INFO)
    PasswordPolicy().check(bytearray(b"Horse!Battery9"), INFO)
    with pytest.raises(ConfigurationError):
        PasswordPolicy(min_length=4)


def test_hasher_argon2id_defaults_follow_rfc9106() -> None:
    encoded = PasswordHasher().hash("secret")
    assert encoded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    PasswordHasher().verify(encoded, "secret")
    assert PasswordHasher().check(encoded, "secret")
    assert not PasswordHasher().check(encoded, "Secret")
    with pytest.raises(PasswordIncorrect):
        PasswordHasher().verify(encoded, "Secret")
    with pytest.raises(PasswordError):
        FAST.verify("$argon2id$garbage", "x")


def _service(hasher: PasswordHasher = FAST) -> tuple[PasswordService, MemoryStore]:
    store = MemoryStore(clock=FakeClock())
    return PasswordService(store, hasher), store


def test_first_login_forces_change() -> None:
    service, _ = _service()
    service.set_initial_password("alice", "init-8839")
    with pytest.raises(PasswordIncorrect):
        service.login("alice", "wrong")
    with pytest.raises(PasswordChangeRequired):
        service.login("alice", "init-8839")
    with pytest.raises(PasswordPolicyError):
        service.change_password("alice", "init-8839", "12345678", INFO)
    with pytest.raises(PasswordIncorrect):
        service.change_password("alice", "nope", "Tr0ub4dor&3x", INFO)
    service.change_password("alice", "init-8839", "Tr0ub4dor&3x", INFO)
    assert not service.must_change("alice")
    assert service.login("alice", "Tr0ub4dor&3x").user_id == "alice"
    with pytest.raises(PasswordIncorrect):
        service.login("alice", "init-8839")
    with pytest.raises(PasswordPolicyError, match="differ"):
        service.change_password("alice", "Tr0ub4dor&3x", "Tr0ub4dor&3x", INFO)


def test_unknown_user_is_incorrect_password() -> None:
    service, _ = _service()
    with pytest.raises(PasswordIncorrect):
        service.login("ghost", "whatever")


def test_transparent_rehash_on_parameter_upgrade() -> None:
    old, store = _service(FAST)
    old.set_initial_password("bob", "init-1")
    old.change_password("bob", "init-1", "Tr0ub4dor&3x")
    stronger = PasswordHasher(time_cost=2, memory_cost_kib=2048, parallelism=1)
    new = PasswordService(store, stronger)
    assert new.login("bob", "Tr0ub4dor&3x").rehashed
    raw = store.get("pw:rec:bob")
    assert raw is not None and b"m=2048,t=2,p=1" in raw
    assert not new.login("bob", "Tr0ub4dor&3x").rehashed
