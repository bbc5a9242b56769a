"""The token screens show every field of any accepted transaction unambiguously.

Properties over any transaction the library accepts (long names and memos included) and
any allowed screen geometry: read the rows back as a customer does — a row starting with a
label starts a field, a row starting with the continuation mark continues it — and get
exactly the transaction's fields; no row but the amount field's own reads as an amount.
The parser and the expected field values here are written from the spec
(docs/usbkey-protocol.md §9), independently of ebank_auth's layout code.
"""

from __future__ import annotations

import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.errors import InvalidTransaction
from ebank_auth.transaction import Transaction, amount_in_chinese, registered_tx_types
from ebank_auth.usbkey.display_layout import (
    TOKEN_SCREEN,
    Screen,
    ScreenGeometry,
    column_width,
    layout_text,
    parse_screens,
)
from transaction.strategies import display_text, make_transaction, transactions

MARK = "↳ "
LABELS = {
    "zh": (
        "交易类型：",
        "付款账号：",
        "收款账号：",
        "收款户名：",
        "金额：",
        "大写：",
        "时间：",
        "附言：",
        "交易号：",
    ),
    "en": (
        "Type: ",
        "From account: ",
        "To account: ",
        "Payee: ",
        "Amount: ",
        "Time: ",
        "Memo: ",
        "Ref: ",
    ),
}
# What reads as an amount line to a customer, wherever it appears in a row.
AMOUNT_LIKE = re.compile(r"(金 ?额|大 ?写|amount) ?[:：]", re.IGNORECASE)


def expected_fields(tx: Transaction, lang: str) -> list[tuple[str, str]]:
    """The (label, value) pairs a screen must show, from the spec, not from display_text."""
    kind = registered_tx_types()[tx.tx_type]
    amount = f"{tx.currency} {tx.amount:,.2f}"
    when = f"{tx.timestamp:%Y-%m-%d %H:%M:%S} {tx.to_dict()['timestamp'][-6:]}"
    if lang == "zh":
        out = [
            ("交易类型：", kind.name_zh),
            ("付款账号：", tx.payer_account),
            ("收款账号：", tx.payee_account),
            ("收款户名：", tx.payee_name),
            ("金额：", amount),
        ]
        if tx.currency == "CNY":
            out.append(("大写：", amount_in_chinese(tx.amount)))
        out.append(("时间：", when))
        if tx.memo:
            out.append(("附言：", tx.memo))
        out.append(("交易号：", tx.tx_id))
        return out
    out = [
        ("Type: ", kind.name_en),
        ("From account: ", tx.payer_account),
        ("To account: ", tx.payee_account),
        ("Payee: ", tx.payee_name),
        ("Amount: ", amount),
        ("Time: ", when),
    ]
    if tx.memo:
        out.append(("Memo: ", tx.memo))
    out.append(("Ref: ", tx.tx_id))
    return out


def read_back(screens: tuple[Screen, ...], lang: str) -> list[tuple[str, str]]:
    """A customer's reading: label rows start fields, marked rows continue them."""
    fields: list[tuple[str, str]] = []
    for screen in screens:
        for row in screen.rows:
            if row.startswith(MARK):
                label, value = fields[-1]
                fields[-1] = (label, value + row[len(MARK) :])
                continue
            (label,) = [lb for lb in LABELS[lang] if row.startswith(lb)]
            fields.append((label, row[len(label) :]))
    return fields


@st.composite
def long_text_transactions(draw: st.DrawFn) -> Transaction:
    """Transactions whose payee name and memo are long enough to wrap over several rows."""
    tx = draw(transactions())
    return Transaction.from_dict(
        {
            **tx.to_dict(),
            "payee_name": draw(display_text(1, 100, forge=True)),
            "memo": draw(display_text(0, 140, forge=True)),
        }
    )


geometries = st.one_of(
    st.just(TOKEN_SCREEN),
    st.builds(ScreenGeometry, st.integers(32, 64), st.integers(1, 8)),
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    tx=st.one_of(transactions(), long_text_transactions()),
    lang=st.sampled_from(["zh", "en"]),
    geometry=geometries,
)
def test_screens_show_every_field_unambiguously(
    tx: Transaction, lang: str, geometry: ScreenGeometry
) -> None:
    screens = layout_text(tx.display_text(lang), geometry)
    rows = [row for screen in screens for row in screen.rows]
    # the screens are complete and numbered, and no row is wider than the screen
    assert [(s.number, s.count) for s in screens] == [
        (i + 1, len(screens)) for i in range(len(screens))
    ]
    assert all(1 <= len(s.rows) <= geometry.rows for s in screens)
    assert all(sum(column_width(ch) for ch in row) <= geometry.columns for row in rows)
    # every field starts on its own row with its label; reading back gives the transaction
    expected = expected_fields(tx, lang)
    assert read_back(screens, lang) == expected
    assert parse_screens(screens, LABELS[lang]) == expected
    # only the amount field's own first rows read as an amount
    amount_rows = [row for row in rows if AMOUNT_LIKE.search(row)]
    wanted = [label + value for label, value in expected if label in ("金额：", "Amount: ")]
    if lang == "zh" and tx.currency == "CNY":
        first_words_row = next(row for row in rows if row.startswith("大写："))
        wanted.append(first_words_row)
    assert amount_rows == wanted
    # the amount and time lines are never cut
    assert wanted[0] in rows
    assert (
        "".join(label + value for label, value in expected if label in ("时间：", "Time: ")) in rows
    )


@given(tx=transactions(), lang=st.sampled_from(["zh", "en"]))
def test_a_changed_field_changes_what_the_screens_read(tx: Transaction, lang: str) -> None:
    """Two transactions that differ in any shown field never read the same on the token."""
    last = "1" if tx.payee_account[-1] == "0" else "0"
    other = Transaction.from_dict({**tx.to_dict(), "payee_account": tx.payee_account[:-1] + last})
    a = parse_screens(layout_text(tx.display_text(lang)), LABELS[lang])
    b = parse_screens(layout_text(other.display_text(lang)), LABELS[lang])
    assert a != b


SHANGHAI = ZoneInfo("Asia/Shanghai")


make = make_transaction


def test_token_screens_of_a_transfer() -> None:
    screens = layout_text(make().display_text("zh"))
    assert [(s.number, s.count, s.rows) for s in screens] == [
        (
            1,
            3,
            (
                "交易类型：转账",
                "付款账号：6222021234567890",
                "收款账号：6222029876543210",
                "收款户名：张三",
            ),
        ),
        (
            2,
            3,
            (
                "金额：CNY 1,005.30",
                "大写：壹仟零伍元叁角",
                "时间：2026-11-22 10:00:00 +08:00",
                "附言：房租",
            ),
        ),
        (3, 3, ("交易号：tx-0001",)),
    ]


def test_a_long_name_wraps_onto_marked_rows_and_the_amount_stays_whole() -> None:
    name = "北京市朝阳区某某某某科技发展有限公司" + "Beijing Branch"
    tx = make(payee_name=name, amount=Decimal("999999999999.99"), currency="USD")
    rows = [r for s in layout_text(tx.display_text("en")) for r in s.rows]
    assert rows[3:6] == [
        "Payee: 北京市朝阳区某某某某科技",
        "↳ 发展有限公司Beijing Branch",
        "Amount: USD 999,999,999,999.99",
    ]
    zh_rows = [
        r
        for s in layout_text(make(amount=Decimal("999999999999.99")).display_text())
        for r in s.rows
    ]
    assert "金额：CNY 999,999,999,999.99" in zh_rows
    words = [r for r in zh_rows if r.startswith(("大写：", MARK))]
    assert len(words) == 2 and all(r.startswith(MARK) for r in words[1:])


def test_layout_refuses_what_it_cannot_show_unambiguously() -> None:
    with pytest.raises(InvalidTransaction, match="label"):
        layout_text("no label here")
    with pytest.raises(InvalidTransaction, match="U\\+3000"):
        layout_text("收款户名：张三\u3000\u3000金额：CNY 1.00")
    with pytest.raises(InvalidTransaction, match="U\\+21B3"):
        layout_text("附言：a\n↳ 金额：CNY 1.00")
    with pytest.raises(InvalidTransaction, match="at least 32 columns"):
        ScreenGeometry(columns=16, rows=4)
    with pytest.raises(InvalidTransaction, match="amount line"):
        layout_text("Amount: USD 999,999,999,999.99" + "9" * 8, ScreenGeometry(32, 4))
    with pytest.raises(InvalidTransaction, match="one label"):
        parse_screens([Screen(("Payee: x",), 1, 1)], ("Memo: ",))
