"""Canonical transaction: round trip, strict decoding, validation, display text."""

from __future__ import annotations

import json
import struct
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebank_auth.errors import EncodingError, InvalidTransaction
from ebank_auth.transaction import (
    FIELD_TAGS,
    FORMAT_VERSION,
    MAGIC,
    Transaction,
    amount_in_chinese,
    new_tx_id,
    register_tx_type,
)
from transaction.strategies import make_transaction, transactions

SHANGHAI = ZoneInfo("Asia/Shanghai")


make = make_transaction


def fields_of(raw: bytes) -> list[tuple[int, bytes]]:
    pos, out = 6, []
    while pos < len(raw):
        tag, length = struct.unpack_from(">BH", raw, pos)
        out.append((tag, raw[pos + 3 : pos + 3 + length]))
        pos += 3 + length
    return out


def build(fields: list[tuple[int, bytes]], header: bytes | None = None) -> bytes:
    head = header if header is not None else MAGIC + bytes((FORMAT_VERSION, len(fields)))
    return head + b"".join(struct.pack(">BH", t, len(v)) + v for t, v in fields)


# ---------------------------------------------------------------- round trips


@given(transactions())
def test_decode_encode_round_trip(tx: Transaction) -> None:
    raw = tx.encode()
    back = Transaction.decode(raw)
    assert back == tx
    assert back.encode() == raw
    assert back.display_text("zh") == tx.display_text("zh")
    assert back.display_text("en") == tx.display_text("en")


@given(transactions())
def test_dict_and_json_round_trip(tx: Transaction) -> None:
    d = json.loads(json.dumps(tx.to_dict(), ensure_ascii=False))
    assert Transaction.from_dict(d) == tx
    assert Transaction.from_dict(d).encode() == tx.encode()


@given(transactions(), transactions())
def test_encoding_is_injective(a: Transaction, b: Transaction) -> None:
    # one byte string per transaction: different key data -> different bytes
    assert (a.encode() == b.encode()) == (a.to_dict() == b.to_dict())


@given(transactions(), st.data())
def test_any_mutation_is_refused_or_reencodes_identically(
    tx: Transaction, data: st.DataObject
) -> None:
    raw = bytearray(tx.encode())
    kind = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate", "append"]))
    i = data.draw(st.integers(0, len(raw) - 1))
    if kind == "flip":
        raw[i] ^= data.draw(st.integers(1, 255))
    elif kind == "insert":
        raw.insert(i, data.draw(st.integers(0, 255)))
    elif kind == "delete":
        del raw[i]
    elif kind == "truncate":
        del raw[i:]
    else:
        raw += data.draw(st.binary(min_size=1, max_size=8))
    try:
        back = Transaction.decode(bytes(raw))
    except EncodingError:
        return
    # A mutation that still parses must be another canonical transaction.
    assert back.encode() == bytes(raw)
    assert back != tx


def test_equal_values_give_equal_bytes() -> None:
    a = make(amount=Decimal("100"), timestamp=datetime(2026, 1, 1, 8, tzinfo=SHANGHAI))
    b = make(
        amount=Decimal("100.000"),
        timestamp=datetime(2026, 1, 1, 8, tzinfo=timezone(timedelta(hours=8))),
    )
    assert a.encode() == b.encode()
    assert a.amount == Decimal("100.00") and str(a.amount) == "100.00"


def test_documented_layout() -> None:
    raw = make(memo="").encode()
    assert raw[:4] == b"EBTX" and raw[4] == 1 and raw[5] == 9
    fields = fields_of(raw)
    assert [t for t, _ in fields] == [t for t, _ in FIELD_TAGS]
    assert dict(fields)[6] == b"1005.30"
    assert dict(fields)[8] == b"2026-11-22T10:00:00+08:00"
    assert dict(fields)[9] == b""


def test_microseconds_and_utc_offset_spelling() -> None:
    ts = datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=timezone.utc)
    raw = make(timestamp=ts).encode()
    assert dict(fields_of(raw))[8] == b"2026-03-04T05:06:07.000089+00:00"
    assert Transaction.decode(raw).timestamp == ts


# ---------------------------------------------------------------- strict decoding

GOOD = make()


@pytest.mark.parametrize(
    "raw, words",
    [
        (b"", "magic"),
        (b"XXXX\x01\x09", "magic"),
        (MAGIC + bytes((2, 9)) + GOOD.encode()[6:], "version 2"),
        (MAGIC + bytes((1, 8)) + GOOD.encode()[6:], "fields"),
        (GOOD.encode() + b"\x00", "trailing"),
        (GOOD.encode()[:-1], "truncated"),
        (GOOD.encode()[:7], "truncated"),
    ],
)
def test_structural_errors(raw: bytes, words: str) -> None:
    with pytest.raises(EncodingError, match=words):
        Transaction.decode(raw)


@pytest.mark.parametrize(
    "tag, value, words",
    [
        (6, b"1005.3", "not canonical"),
        (6, b"01005.30", "not canonical"),
        (6, b"1.0053E3", "not canonical"),
        (6, b"-5.00", "not canonical"),
        (6, b"0.00", "greater than zero"),
        (6, "１００.００".encode(), "not canonical"),  # full-width digits
        (8, b"2026-11-22T10:00:00", "not canonical"),
        (8, b"2026-11-22 10:00:00+08:00", "not canonical"),
        (8, b"2026-11-22T10:00:00-00:00", "not canonical"),
        (8, b"2026-11-22T10:00:00.000000+08:00", "not canonical"),
        (8, b"2026-02-30T10:00:00+08:00", "valid date"),
        (8, b"2026-11-22T10:00:00+24:00", "valid date"),
        (2, b"refund", "not a registered"),
        (3, b"12", "payer_account"),
        (5, b"", "payee_name"),
        (5, "A\u202eB".encode(), "U\\+202E"),  # right-to-left override
        (5, b"\xff\xfe", "UTF-8"),
        (5, "e\u0301".encode(), "NFC"),
        (7, b"cny", "currency"),
        (1, b"a b", "tx_id"),
    ],
)
def test_field_errors(tag: int, value: bytes, words: str) -> None:
    fields = [(t, value if t == tag else v) for t, v in fields_of(GOOD.encode())]
    with pytest.raises(EncodingError, match=words):
        Transaction.decode(build(fields))


def test_reordered_or_duplicated_fields_refused() -> None:
    fields = fields_of(GOOD.encode())
    swapped = [fields[1], fields[0], *fields[2:]]
    with pytest.raises(EncodingError, match="tag"):
        Transaction.decode(build(swapped))
    dup = [*fields[:8], fields[7]]
    with pytest.raises(EncodingError, match="tag"):
        Transaction.decode(build(dup))


def test_decode_rejects_non_bytes() -> None:
    with pytest.raises(EncodingError):
        Transaction.decode("EBTX")  # type: ignore[arg-type]


# ---------------------------------------------------------------- construction


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"amount": 1.5}, "float"),
        ({"amount": True}, "Decimal"),
        ({"amount": Decimal("0")}, "greater than zero"),
        ({"amount": Decimal("-1")}, "greater than zero"),
        ({"amount": Decimal("1.001")}, "two decimal"),
        ({"amount": Decimal("NaN")}, "finite"),
        ({"amount": Decimal("Infinity")}, "finite"),
        ({"amount": Decimal("1000000000000")}, "exceed"),
        ({"amount": Decimal("1E+40")}, "too large|exceed"),
        ({"timestamp": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"timestamp": datetime(2026, 1, 1, tzinfo=timezone(timedelta(seconds=30)))}, "minutes"),
        ({"timestamp": datetime(1969, 1, 1, tzinfo=timezone.utc)}, "1970"),
        ({"timestamp": "2026-01-01"}, "datetime"),
        ({"tx_id": ""}, "tx_id"),
        ({"tx_id": "x" * 65}, "tx_id"),
        ({"tx_id": "订单1"}, "tx_id"),
        ({"tx_type": "refund"}, "registered"),
        ({"payee_account": "6222-0212"}, "payee_account"),
        ({"payee_name": " 张三"}, "white space"),
        ({"payee_name": "张\n三"}, "control"),
        ({"payee_name": "张\u200b三"}, "U\\+200B"),
        ({"payee_name": "x" * 101}, "1-100"),
        ({"memo": "m" * 141}, "0-140"),
        ({"currency": "RMB1"}, "currency"),
        ({"payer_account": 6222021234567890}, "payer_account"),
    ],
)
def test_invalid_fields_raise_typed_errors(kw: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidTransaction, match=words):
        make(**kw)


def test_frozen() -> None:
    tx = make()
    with pytest.raises(AttributeError):
        tx.amount = Decimal("1")  # type: ignore[misc]


def test_from_dict_is_strict() -> None:
    d = GOOD.to_dict()
    with pytest.raises(EncodingError, match="unknown"):
        Transaction.from_dict({**d, "extra": "1"})
    with pytest.raises(EncodingError, match="missing"):
        Transaction.from_dict({k: v for k, v in d.items() if k != "amount"})
    with pytest.raises(EncodingError, match="string"):
        Transaction.from_dict({**d, "amount": 1005.3})
    with pytest.raises(EncodingError, match="version"):
        Transaction.from_dict({**d, "version": 2})
    with pytest.raises(EncodingError, match="version"):
        Transaction.from_dict({**d, "version": True})
    with pytest.raises(EncodingError, match="JSON object"):
        Transaction.from_dict([])  # type: ignore[arg-type]
    with pytest.raises(EncodingError, match="not canonical"):
        Transaction.from_dict({**d, "amount": "1005.3"})
    minimal = {k: v for k, v in d.items() if k not in ("version", "currency", "memo")}
    tx = Transaction.from_dict(minimal)
    assert tx.currency == "CNY" and tx.memo == ""


def test_register_tx_type() -> None:
    register_tx_type("test_refund", "退款", "Refund")
    register_tx_type("test_refund", "退款", "Refund")  # idempotent
    assert make(tx_type="test_refund").display_text("en").startswith("Type: Refund")
    with pytest.raises(InvalidTransaction, match="already registered"):
        register_tx_type("test_refund", "退货", "Return")
    with pytest.raises(InvalidTransaction, match="invalid"):
        register_tx_type("Bad-Code", "x", "x")


def test_new_tx_id_is_valid_and_unique() -> None:
    ids = {new_tx_id() for _ in range(200)}
    assert len(ids) == 200
    for i in ids:
        make(tx_id=i)


# ---------------------------------------------------------------- display


def test_display_text_zh_shows_every_key_field() -> None:
    text = GOOD.display_text("zh")
    assert text.splitlines() == [
        "交易类型：转账",
        "付款账号：6222021234567890",
        "收款账号：6222029876543210",
        "收款户名：张三",
        "金额：CNY 1,005.30",
        "大写：壹仟零伍元叁角",
        "时间：2026-11-22 10:00:00 +08:00",
        "附言：房租",
        "交易号：tx-0001",
    ]


def test_display_text_en() -> None:
    text = make(currency="USD", memo="").display_text("en")
    assert text.splitlines() == [
        "Type: Transfer",
        "From account: 6222021234567890",
        "To account: 6222029876543210",
        "Payee: 张三",
        "Amount: USD 1,005.30",
        "Time: 2026-11-22 10:00:00 +08:00",
        "Ref: tx-0001",
    ]
    assert "大写" not in make(currency="USD").display_text("zh")
    with pytest.raises(InvalidTransaction, match="language"):
        GOOD.display_text("fr")


@given(transactions())
def test_display_changes_when_key_data_changes(tx: Transaction) -> None:
    other = Transaction.from_dict(
        {**tx.to_dict(), "amount": "0.01" if tx.amount != Decimal("0.01") else "0.02"}
    )
    assert other.display_text("zh") != tx.display_text("zh")
    assert other.display_text("en") != tx.display_text("en")


@pytest.mark.parametrize(
    "amount, text",
    [
        ("0.05", "伍分"),
        ("0.50", "伍角"),
        ("10", "壹拾元整"),
        ("100.05", "壹佰元零伍分"),
        ("1000.50", "壹仟元伍角"),
        ("1005.30", "壹仟零伍元叁角"),
        ("10010", "壹万零壹拾元整"),
        ("100000", "壹拾万元整"),
        ("1000100", "壹佰万零壹佰元整"),
        ("100000001", "壹亿零壹元整"),
        ("20000.07", "贰万元零柒分"),
        ("123456789012.34", "壹仟贰佰叁拾肆亿伍仟陆佰柒拾捌万玖仟零壹拾贰元叁角肆分"),
    ],
)
def test_amount_in_chinese(amount: str, text: str) -> None:
    assert amount_in_chinese(Decimal(amount)) == text


def test_digest_is_sm3_of_encoding() -> None:
    from ebank_auth.crypto import sm3

    assert GOOD.digest() == sm3.digest(GOOD.encode())
    assert len(GOOD.digest()) == 32
    assert make(amount=Decimal("1005.31")).digest() != GOOD.digest()
