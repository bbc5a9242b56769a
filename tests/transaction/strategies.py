"""Hypothesis strategies for canonical transactions (shared by the policy/audit tests)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from ebank_auth.errors import InvalidTransaction
from ebank_auth.transaction import (
    ISO_4217_CURRENCIES,
    MAX_AMOUNT,
    Transaction,
    is_displayable,
    registered_tx_types,
)

# Free text in the token display's repertoire (ebank_auth.transaction.is_displayable): one
# alphabet (Latin, Greek or Cyrillic) at most, with Han, digits, punctuation and single spaces.
_COMMON = st.characters(min_codepoint=0x21, max_codepoint=0x7E).filter(lambda c: not c.isalpha())
_CJK_PUNCT = st.sampled_from(sorted("·—…‘’“”、。〈〉《》「」『』【】〔〕！（），：；？"))
_HAN = (
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
    | st.characters(min_codepoint=0x3400, max_codepoint=0x4DBF)
    | st.characters(min_codepoint=0x20000, max_codepoint=0x2A6DF)
).filter(is_displayable)
_ALPHABETS = {
    "Latin": st.characters(min_codepoint=0x41, max_codepoint=0xFF).filter(
        lambda c: c.isalpha() and is_displayable(c)
    ),
    "Greek": st.characters(min_codepoint=0x386, max_codepoint=0x3CE).filter(is_displayable),
    "Cyrillic": st.characters(min_codepoint=0x400, max_codepoint=0x45F).filter(is_displayable),
}


def _acceptable(text: str) -> bool:
    try:
        Transaction(
            tx_id="probe",
            tx_type="transfer",
            payer_account="0000",
            payee_account="0000",
            payee_name="probe",
            amount=Decimal(1),
            currency="CNY",
            timestamp=datetime(2026, 1, 1, tzinfo=timezone.utc),
            memo=text,
        )
    except InvalidTransaction:
        return False
    return True


# Pieces of screen text, so that layouts meet text that nearly forges a line.  With
# ``forge=True`` they include whole amount labels, which the library refuses.
_PIECES = ["金额", "大写", "CNY 1,000.00", "金额 100"]
_LATIN_PIECES = ["Amount", "Amount USD"]
_FORGING_PIECES = ["金额：", "amount: ", "：", ":"]
# What a draft the library refuses (too short, a label, look-alike letters) becomes instead
# of being filtered out (heavy filtering would starve the tests that draw two transactions).
_FALLBACK = st.sampled_from(["张三", "Li Lei", "中国银行 Bank of China", "Иван", "Ελλάδα", "x"])


@st.composite
def display_text(
    draw: st.DrawFn, min_size: int = 0, max_size: int = 100, forge: bool = False
) -> str:
    """Free text a transaction accepts (payee name, memo)."""
    alphabet = draw(st.sampled_from(sorted(_ALPHABETS)))
    chars = _ALPHABETS[alphabet] | _HAN | _COMMON | _CJK_PUNCT | st.just(" ")
    pieces = _PIECES + (_LATIN_PIECES if alphabet == "Latin" else [])
    pieces += _FORGING_PIECES if forge else []
    parts = draw(st.lists(chars | chars | st.sampled_from(pieces), max_size=max_size))
    text = re.sub(" +", " ", "".join(parts)).strip()[:max_size].strip()
    if len(text) < min_size or not _acceptable(text):
        text = draw(_FALLBACK)
    return text


def _display_text(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return display_text(min_size, max_size)


tx_ids = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
accounts = st.from_regex(r"\A[0-9A-Za-z]{4,34}\Z")
amounts = st.integers(min_value=1, max_value=int(MAX_AMOUNT * 100)).map(
    lambda cents: Decimal(cents) / 100
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
timestamps = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets
)


@st.composite
def transactions(draw: st.DrawFn) -> Transaction:
    return Transaction(
        tx_id=draw(tx_ids),
        tx_type=draw(st.sampled_from(sorted(registered_tx_types()))),
        payer_account=draw(accounts),
        payee_account=draw(accounts),
        payee_name=draw(_display_text(1, 30)),
        amount=draw(amounts),
        currency=draw(st.sampled_from(["CNY", "CNY", *sorted(ISO_4217_CURRENCIES)])),
        timestamp=draw(timestamps),
        memo=draw(_display_text(0, 20)),
    )


_SHANGHAI = ZoneInfo("Asia/Shanghai")


def make_transaction(**kw: object) -> Transaction:
    """A fixed, valid transfer (Shanghai time); ``kw`` overrides fields (tests of one field)."""
    fields: dict[str, object] = {
        "tx_id": "tx-0001",
        "tx_type": "transfer",
        "payer_account": "6222021234567890",
        "payee_account": "6222029876543210",
        "payee_name": "张三",
        "amount": Decimal("1005.30"),
        "currency": "CNY",
        "timestamp": datetime(2026, 11, 22, 10, 0, tzinfo=_SHANGHAI),
        "memo": "房租",
    }
    fields.update(kw)
    return Transaction(**fields)  # type: ignore[arg-type]
