"""Masking helpers (AU-12): fixed examples and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebank_auth.masking import (
    mask_account,
    mask_balance,
    mask_card,
    mask_email,
    mask_id_number,
    mask_name,
    mask_phone,
    mask_secret,
)


@pytest.mark.parametrize(
    "fn, value, masked",
    [
        (mask_card, "6222021234567890", "622202******7890"),
        (mask_card, "6222 0212 3456 7890 123", "622202*********0123"),
        (mask_card, "12345678", "****5678"),
        (mask_card, "123", "***"),
        (mask_account, "6222029876543210", "************3210"),
        (mask_id_number, "11010519491231002X", "110***********002X"),
        (mask_id_number, "1234567", "******7"),
        (mask_phone, "13812345678", "138****5678"),
        (mask_phone, "+86 138-1234-5678", "+86138****5678"),
        (mask_phone, "110", "***"),
        (mask_name, "张三", "*三"),
        (mask_name, "欧阳小明", "***明"),
        (mask_name, "王", "*"),
        (mask_name, "John Smith", "J*** S****"),
        (mask_name, "", ""),
        (mask_email, "zhang.san@example.com", "z********@example.com"),
        (mask_email, "a@b.cn", "a***@b.cn"),
        (mask_email, "nonsense", "********"),
        (mask_balance, "12345.67", "****"),
        (mask_secret, "123456", "******"),
        (mask_card, 6222021234567890, "622202******7890"),
    ],
)
def test_examples(fn: object, value: object, masked: str) -> None:
    assert fn(value) == masked  # type: ignore[operator]


digits = st.text(alphabet="0123456789", min_size=0, max_size=30)


@given(digits)
def test_card_reveals_at_most_ten_and_hides_at_least_four(number: str) -> None:
    m = mask_card(number)
    assert len(m) == len(number)
    shown = [c for c in m if c != "*"]
    assert len(shown) <= 10
    assert m.count("*") >= min(4, len(number))
    for a, b in zip(m, number, strict=True):
        assert a in ("*", b)


@given(digits)
def test_phone_and_id_keep_length_and_only_reveal_ends(value: str) -> None:
    for fn, most in ((mask_phone, 7), (mask_id_number, 7), (mask_account, 4)):
        m = fn(value)
        assert len(m) == len(value)
        assert sum(c != "*" for c in m) <= most
        assert all(a in ("*", b) for a, b in zip(m, value, strict=True))


@given(st.text(max_size=20))
def test_helpers_never_raise_and_secret_keeps_only_length(value: str) -> None:
    for fn in (mask_card, mask_account, mask_id_number, mask_phone, mask_name, mask_email):
        assert isinstance(fn(value), str)
    assert mask_secret(value) == "*" * len(value)
    assert mask_balance(value) == "****"


@given(st.text(alphabet="张王李赵欧阳小明华", min_size=2, max_size=5))
def test_chinese_name_shows_one_character(name: str) -> None:
    m = mask_name(name)
    assert len(m) == len(name) and m[-1] == name[-1] and set(m[:-1]) == {"*"}
