"""Shared protocol rules: PIN complexity (UK-4), retry limit (UK-3), device information."""

from __future__ import annotations

import pytest

from ebank_auth.errors import EncodingError, PinPolicyError
from ebank_auth.usbkey.protocol import (
    DeviceCapability,
    DeviceInfo,
    check_container_name,
    check_pin_complexity,
    check_retry_limit,
)


@pytest.mark.parametrize("limit", [1, 5, 10])
def test_retry_limit_in_range(limit: int) -> None:
    assert check_retry_limit(limit) == limit


@pytest.mark.parametrize("limit", [0, 11, 15, 255, -1, True])
def test_retry_limit_above_ten_refused(limit: int) -> None:
    with pytest.raises(PinPolicyError):
        check_retry_limit(limit)


@pytest.mark.parametrize("pin", ["314159", "Abc-12345", "7391x2", "a" * 3 + "bc1234567"])
def test_good_pins(pin: str) -> None:
    check_pin_complexity(pin)


@pytest.mark.parametrize(
    "pin", ["12345", "x" * 17, "111111", "121212", "123456", "987654", "0123456789", "pin\n12"]
)
def test_weak_pins_refused(pin: str) -> None:
    with pytest.raises(PinPolicyError):
        check_pin_complexity(pin)


def test_device_info_round_trip() -> None:
    info = DeviceInfo("EBK01", "label", "maker", "1.0.0", bytes(32), DeviceCapability.SM2, 1)
    back = DeviceInfo.decode(info.encode())
    assert back.serial == "EBK01" and back.capabilities == DeviceCapability.SM2
    assert back.raw == info.encode()
    with pytest.raises(EncodingError):
        DeviceInfo.decode(info.encode()[:-1])


def test_container_names() -> None:
    assert check_container_name(b"sign") == "sign"
    for bad in (b"", b"a" * 33, b"a b", "名".encode()):
        with pytest.raises(EncodingError):
            check_container_name(bad)
