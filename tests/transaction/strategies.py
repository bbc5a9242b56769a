"""Hypothesis strategies for canonical transactions (shared by the policy/audit tests)."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import strategies as st

from ebank_auth.transaction import MAX_AMOUNT, Transaction, registered_tx_types

_SAFE_CHARS = st.characters(
    codec="utf-8", exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")
)


def _display_text(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return (
        st.text(alphabet=_SAFE_CHARS | st.just(" "), min_size=min_size, max_size=max_size)
        .map(lambda s: unicodedata.normalize("NFC", s).strip())
        .filter(lambda s: min_size <= len(s) <= max_size and unicodedata.normalize("NFC", s) == s)
    )


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
        currency=draw(st.sampled_from(["CNY", "USD", "HKD", "EUR"])),
        timestamp=draw(timestamps),
        memo=draw(_display_text(0, 20)),
    )
