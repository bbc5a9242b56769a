"""Attacks on what the token displays (issue 10 item 5): each is refused with a typed error
that names the field and says why, both at construction and when the token decodes bytes."""

from __future__ import annotations

import struct
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from ebank_auth.errors import EncodingError, InvalidTransaction
from ebank_auth.transaction import MAGIC, Transaction, register_tx_type
from transaction.strategies import make_transaction

SHANGHAI = ZoneInfo("Asia/Shanghai")


def make(**kw: object) -> Transaction:
    return make_transaction(**{"amount": Decimal("50000.00"), **kw})


def with_field(tx: Transaction, tag: int, value: str) -> bytes:
    """``tx``'s canonical bytes with field ``tag`` replaced: what a malicious host sends."""
    raw, pos, out = tx.encode(), 6, [MAGIC + bytes((1, 9))]
    while pos < len(raw):
        t, length = struct.unpack_from(">BH", raw, pos)
        v = value.encode() if t == tag else raw[pos + 3 : pos + 3 + length]
        out.append(struct.pack(">BH", t, len(v)) + v)
        pos += 3 + length
    return b"".join(out)


def test_ideographic_space_padding_cannot_forge_an_amount_line() -> None:
    """Attack: a payee name padded with U+3000 so that, wrapped on the token's small screen,
    its tail lands at the start of a row and reads as the amount line ("金额：CNY 1.00")
    while the real amount (50,000.00) sits on a later screen."""
    forged = "张三" + "\u3000" * 13 + "金额：CNY 1.00"
    with pytest.raises(InvalidTransaction, match=r"payee_name .*U\+3000"):
        make(payee_name=forged)
    with pytest.raises(EncodingError, match=r"payee_name .*U\+3000"):
        Transaction.decode(with_field(make(), 5, forged))


@pytest.mark.parametrize(
    "field, value, words",
    [
        # ASCII spaces pad just as well as U+3000
        ("payee_name", "Zhang San" + " " * 20 + "Amount USD 1.00", "run of spaces"),
        # an amount label in free text reads as a second amount line wherever it lands
        ("memo", "rent 金额：CNY 1.00", "label of an amount line"),
        ("payee_name", "Acme Amount: USD 1.00", "label of an amount line"),
        ("memo", "大写：壹元整", "label of an amount line"),
    ],
)
def test_padding_and_fake_amount_labels_refused(field: str, value: str, words: str) -> None:
    """Attack: spaces or an amount label inside free text forge a second amount line."""
    with pytest.raises(InvalidTransaction, match=f"{field} .*{words}"):
        make(**{field: value})


@pytest.mark.parametrize(
    "value, words",
    [
        ("\u0410pple Inc", "mixes Cyrillic and Latin"),  # Cyrillic А in a Latin name
        ("Bank of Chin\u0430", "mixes Cyrillic and Latin"),  # Cyrillic а
        ("Ap\u03c1le", "mixes Greek and Latin"),  # Greek rho for p
        ("\u0410\u0420\u0420\u0415", "only in Cyrillic letters that look like Latin"),  # АРРЕ
        ("\u0417\u041e\u041e", "only in Cyrillic letters that look like Latin"),  # ЗОО ~ 300
        ("\u0391\u0392\u0395", "only in Greek letters that look like Latin"),  # ΑΒΕ
    ],
)
def test_lookalike_scripts_refused(value: str, words: str) -> None:
    """Attack: a payee name that looks like a trusted Latin name but is another string
    (the customer approves "Apple Inc" and pays "\u0410pple Inc")."""
    with pytest.raises(InvalidTransaction, match=f"payee_name .*{words}"):
        make(payee_name=value)


@pytest.mark.parametrize(
    "value",
    [
        "A\u202eB",  # right-to-left override
        "张三\u2067李四\u2069",  # right-to-left isolate
        "Acme\u200f 100",  # right-to-left mark
        "\u05e9\u05dc\u05d5\u05dd 100 200",  # Hebrew letters: reorder the digits around them
        "\u0645\u062d\u0645\u062f 5",  # Arabic letters
    ],
)
def test_bidi_reordering_refused(value: str) -> None:
    """Attack: bidi controls or right-to-left letters make a bidi-capable screen draw the
    characters in another order than they are signed (digits swap places)."""
    with pytest.raises(InvalidTransaction, match="payee_name"):
        make(payee_name=value)


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("payee_name", "张三\uff11\uff10\uff10", "full-width digit U\\+FF11.*write '1'"),
        ("memo", "\uff30\uff41\uff59", "full-width letter"),  # Ｐａｙ
    ],
)
def test_full_width_digits_and_letters_refused(field: str, value: str, words: str) -> None:
    """Attack: full-width digits and letters that pass for ASCII ones (and sign as others)."""
    with pytest.raises(InvalidTransaction, match=f"{field} .*{words}"):
        make(**{field: value})


@pytest.mark.parametrize(
    "value, words",
    [
        ("Pay\u0336pal", "combining mark"),  # strike-through overlay
        ("Acme\u20dd", "combining mark"),  # enclosing circle
        ("张三\u3164\u3164\u3164李四", "not in the token display's character repertoire"),
        ("张三\u2800\u2800李四", "not in the token display's character repertoire"),  # blank
        ("Acme\u2502 Amount", "not in the token display's character repertoire"),  # box │
        ("Acme \U0001f4b0", "not in the token display's character repertoire"),  # emoji
        ("\u200b", "format character"),
    ],
)
def test_combining_marks_and_invisible_or_drawing_characters_refused(
    value: str, words: str
) -> None:
    """Attack: combining marks alter a letter's look; Hangul fillers and braille blanks are
    invisible letters that pad like spaces; box drawing fakes the screen's frame."""
    with pytest.raises(InvalidTransaction, match=f"payee_name .*{words}"):
        make(payee_name=value)


@pytest.mark.parametrize("code", ["ABC", "RMB", "XXX", "XTS", "XAU", "HRK"])
def test_currency_must_be_an_active_iso_4217_code(code: str) -> None:
    """Attack: a made-up or withdrawn currency code ("RMB", "XXX") beside an amount the
    customer reads as yuan or as nothing at all."""
    with pytest.raises(InvalidTransaction, match=f"currency '{code}' is not an active ISO 4217"):
        make(currency=code)
    with pytest.raises(EncodingError, match="ISO 4217"):
        Transaction.decode(with_field(make(), 7, code))


def test_type_names_follow_the_same_rules() -> None:
    with pytest.raises(InvalidTransaction, match="label of an amount line"):
        register_tx_type("test_fake_amount", "金额：", "Amount")
    with pytest.raises(InvalidTransaction, match="U\\+3000"):
        register_tx_type("test_padded", "转\u3000账", "Transfer")


@pytest.mark.parametrize(
    "field, value",
    [
        ("payee_name", "中国银行 Bank of China"),  # Han with Latin
        ("payee_name", "北京某某科技有限公司（上海分公司）"),
        ("payee_name", "阿依古丽·买买提"),
        ("payee_name", "Müller GmbH & Co. KG"),
        ("payee_name", "Société Générale"),
        ("payee_name", "Иван Петров"),  # Cyrillic with letters that have no Latin twin
        ("payee_name", "Ελληνική Τράπεζα"),
        ("payee_name", "𠮷野家"),  # Extension B
        ("memo", "房租，2026年11月：《合同》第3条"),
        ("memo", "Invoice 2026-11, ref: A/B #3"),
        ("memo", "退款金额100元"),  # the word for amount without a label's colon
    ],
)
def test_real_names_and_memos_still_accepted(field: str, value: str) -> None:
    tx = make(**{field: value})
    assert Transaction.decode(tx.encode()) == tx
    assert value in tx.display_text("zh")


@pytest.mark.parametrize("code", ["CNY", "USD", "EUR", "HKD", "JPY", "GBP", "MOP", "TWD"])
def test_common_currencies_accepted(code: str) -> None:
    assert make(currency=code).currency == code
