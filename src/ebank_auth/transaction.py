"""The canonical transaction: one value, one byte string, one screen text.

Every part of ebank_auth that authenticates a transaction (USB Key token, phone
shield, SMS/voice codes bound to a transaction, the policy engine, the bank app)
uses this module, so that *what the customer sees is exactly what is signed*
(UK-7) and the key data — payer, payee, amount, date and time — cannot be
changed without breaking the signature (AU-8).

Canonical encoding, format version 1 (``Transaction.encode``)::

    "EBTX"                      4-byte magic
    0x01                        format version (FORMAT_VERSION)
    0x09                        number of fields that follow (always 9)
    9 x field, in this fixed order, each:
        tag      u8             1..9, in increasing order (see FIELD_TAGS)
        length   u16 big-endian number of value bytes (<= MAX_FIELD_BYTES)
        value    UTF-8 text     NFC-normalised, no control/format characters

Field values are text in one canonical spelling:

* ``tx_id``        1-64 of ``[A-Za-z0-9_-]``
* ``tx_type``      a registered type name (``transfer``, ``payment``, …)
* ``payer_account`` / ``payee_account``  4-34 of ``[0-9A-Za-z]``
* ``payee_name``   1-100 characters; ``memo`` 0-140 characters, both in the token
  display's character repertoire (:func:`is_displayable`, rules below)
* ``amount``       plain decimal with exactly two fraction digits, no sign, no
  leading zeros, no exponent: ``"0.01"`` … ``"999999999999.99"``
* ``currency``     an active ISO 4217 alphabetic currency code (:data:`ISO_4217_CURRENCIES`)
* ``timestamp``    ``YYYY-MM-DDTHH:MM:SS[.ffffff]±HH:MM`` — the fraction only
  when microseconds are non-zero, the UTC offset always present (``+00:00``
  for UTC; ``-00:00`` is not canonical)

Free text (``payee_name``, ``memo``, the names of transaction types) must read the same
on a small token screen as it does to the bank, so it is refused — never silently
rewritten, since what is signed must be what is shown — when it holds:

* a character outside the display repertoire: printable ASCII, Latin-1 letters,
  Greek and Cyrillic letters, Han ideographs (URO, Extensions A-G, 〇), the middle
  dot and a short list of CJK punctuation (:func:`is_displayable`).  Everything else
  — controls, format characters (bidi overrides, zero-width), right-to-left letters,
  combining marks, invisible fillers (U+3164, U+2800), box drawing, emoji,
  full-width digits and letters (``１００``, ``Ａ``) — is refused;
* a space other than U+0020, a run of spaces, or a leading or trailing space
  (U+3000 ideographic-space padding wraps a name into a fake line on the token);
* letters of two of the alphabets Latin, Greek, Cyrillic (``Аpple`` with a Cyrillic
  ``А``), or only Greek/Cyrillic letters that all look like Latin ones or digits
  (``АРРЕ``, ``ЗОО``); Han with Latin (``中国银行 Bank of China``) is fine;
* the label of an amount line (``金额：``, ``大写：``, ``Amount:``), which a screen
  could show as a second amount.

There is exactly one byte string per transaction: :meth:`Transaction.decode`
parses, validates, re-encodes and refuses the input unless the bytes are
identical, so any other spelling (``1.5`` for ``1.50``, a different field
order, trailing bytes, an unknown version) is an :class:`EncodingError`.
"""

from __future__ import annotations

import re
import secrets
import struct
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from ebank_auth.errors import EncodingError, InvalidTransaction

__all__ = [
    "DEFAULT_CURRENCY",
    "FIELD_TAGS",
    "FORMAT_VERSION",
    "ISO_4217_CURRENCIES",
    "MAGIC",
    "MAX_AMOUNT",
    "MAX_FIELD_BYTES",
    "Transaction",
    "TransactionType",
    "amount_in_chinese",
    "format_amount",
    "is_displayable",
    "new_tx_id",
    "register_tx_type",
    "registered_tx_types",
]

MAGIC: Final = b"EBTX"
FORMAT_VERSION: Final = 1
DEFAULT_CURRENCY: Final = "CNY"
MAX_AMOUNT: Final = Decimal("999999999999.99")  # below one trillion (万亿) in any currency
MAX_FIELD_BYTES: Final = 1024

#: tag of each field in the canonical encoding, in encoding order
FIELD_TAGS: Final[tuple[tuple[int, str], ...]] = (
    (1, "tx_id"),
    (2, "tx_type"),
    (3, "payer_account"),
    (4, "payee_account"),
    (5, "payee_name"),
    (6, "amount"),
    (7, "currency"),
    (8, "timestamp"),
    (9, "memo"),
)
_FIELD_NAMES: Final = tuple(name for _, name in FIELD_TAGS)

_TX_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_TYPE_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,31}", re.ASCII)
_ACCOUNT_RE: Final = re.compile(r"[0-9A-Za-z]{4,34}", re.ASCII)
_AMOUNT_RE: Final = re.compile(r"(0|[1-9][0-9]{0,11})\.[0-9]{2}", re.ASCII)
_TS_RE: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{6}))?([+-])([0-9]{2}):([0-9]{2})",
    re.ASCII,
)
_CENT: Final = Decimal("0.01")
_MAX_NAME_CHARS: Final = 100
_MAX_MEMO_CHARS: Final = 140
# Unicode categories refused in displayed text: controls, format characters (bidi
# overrides, zero-width joiners that could hide text on a token screen), separators
# other than the ordinary space, surrogates, private use, unassigned.
_BAD_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})

#: Active ISO 4217 alphabetic codes of currencies (ISO 4217 "list one", current currency
#: and funds codes, as published by its maintenance agency SIX Financial Information;
#: checked against the 2025 edition: HRK, CUC, SLL, ZWL and ANG withdrawn, SLE, VED, ZWG
#: and XCG added).  Left out on purpose, because nobody transfers them: fund and
#: accounting units (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW, XBA-XBD, XDR, XSU,
#: XUA), precious metals (XAG, XAU, XPD, XPT), the test code XTS and "no currency" XXX.
#: Update it when ISO withdraws a code (e.g. BGN after Bulgaria's 2026 euro changeover).
_ISO_4217_TABLE: Final = """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR
    FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD
    JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD
    MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP
    PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC
    SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST
    XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
"""
ISO_4217_CURRENCIES: Final[frozenset[str]] = frozenset(_ISO_4217_TABLE.split())

# The token display's character repertoire for free text (docs/usbkey-protocol.md §8.1).
_CJK_PUNCTUATION: Final = frozenset(
    "\u00b7"  # · middle dot (阿依古丽·买买提)
    "\u2014\u2026\u2018\u2019\u201c\u201d"  # — … ‘ ’ “ ”
    "\u3001\u3002\u3008\u3009\u300a\u300b\u300c\u300d\u300e\u300f\u3010\u3011"
    "\u3014\u3015"  # 、。〈〉《》「」『』【】〔〕
    "\uff01\uff08\uff09\uff0c\uff1a\uff1b\uff1f"  # ！（），：；？
)
_HAN_RANGES: Final = (
    (0x3400, 0x4DBF),  # Extension A
    (0x4E00, 0x9FFF),  # Unified Ideographs
    (0x20000, 0x2EBEF),  # Extensions B-F
    (0x30000, 0x3134F),  # Extension G
)
# Greek and Cyrillic letters that pass for Latin letters or digits on a token screen.
_CYRILLIC_LOOKALIKES: Final = frozenset("АВЕЗКМНОРСТУХЅІЈаеорсухѕіјбԁ")
_GREEK_LOOKALIKES: Final = frozenset("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧαικνορυχ")
_AMOUNT_LABEL_RE: Final = re.compile(r"(金 ?额|大 ?写|amount) ?[:：]", re.IGNORECASE)


def _script(ch: str) -> str:
    """``Latin``, ``Greek``, ``Cyrillic``, ``Han`` or ``Common`` for a displayable character."""
    cp = ord(ch)
    if ch.isascii() or 0xC0 <= cp <= 0xFF:
        return "Latin" if ch.isalpha() else "Common"
    if 0x0370 <= cp <= 0x03FF:
        return "Greek"
    if 0x0400 <= cp <= 0x04FF:
        return "Cyrillic"
    if cp == 0x3007 or any(lo <= cp <= hi for lo, hi in _HAN_RANGES):
        return "Han"
    return "Common"


def is_displayable(ch: str) -> bool:
    """Whether the single character ``ch`` is in the token display's repertoire.

    The repertoire is printable ASCII (with the space), the letters of Latin-1,
    Greek (U+0386-U+03CE) and Cyrillic (U+0400-U+045F), Han ideographs (URO,
    Extensions A-G, 〇), the middle dot and the CJK punctuation ``—…‘’“”、。〈〉《》
    「」『』【】〔〕！（），：；？``.  Free text with anything else is refused.
    """
    if len(ch) != 1:
        return False
    cp = ord(ch)
    category = unicodedata.category(ch)
    if category in _BAD_CATEGORIES or category.startswith("M"):
        return False
    if 0x20 <= cp <= 0x7E or ch in _CJK_PUNCTUATION:
        return True
    if 0xC0 <= cp <= 0xFF or 0x0386 <= cp <= 0x03CE or 0x0400 <= cp <= 0x045F:
        return category in ("Lu", "Ll")
    return cp == 0x3007 or any(lo <= cp <= hi for lo, hi in _HAN_RANGES)


_MIN_YEAR: Final = 1970


@dataclass(frozen=True)
class TransactionType:
    """A registered transaction type: its code and what a screen calls it."""

    code: str
    name_zh: str
    name_en: str


_TX_TYPES: dict[str, TransactionType] = {}


def register_tx_type(code: str, name_zh: str, name_en: str) -> TransactionType:
    """Register a transaction type so transactions of that type validate.

    ``code`` is 1-32 of ``[a-z0-9_]`` starting with a letter.  Re-registering the
    same code with the same names is a no-op; with different names it is refused
    (the display text of signed transactions must not change).
    """
    if not isinstance(code, str) or not _TYPE_RE.fullmatch(code):
        raise InvalidTransaction(
            f"transaction type code {code!r} is invalid: use 1-32 of a-z, 0-9, _ "
            "starting with a letter"
        )
    for label in (name_zh, name_en):
        _check_text("transaction type name", label, 1, 32)
    entry = TransactionType(code, name_zh, name_en)
    existing = _TX_TYPES.get(code)
    if existing is not None and existing != entry:
        raise InvalidTransaction(
            f"transaction type {code!r} is already registered with other names; choose a new code"
        )
    _TX_TYPES[code] = entry
    return entry


def registered_tx_types() -> dict[str, TransactionType]:
    """A copy of the registry: code -> :class:`TransactionType`."""
    return dict(_TX_TYPES)


def new_tx_id() -> str:
    """A fresh random transaction id (22 URL-safe characters, 128 bits)."""
    return secrets.token_urlsafe(16)


def _check_text(what: str, value: object, min_len: int, max_len: int) -> str:
    if not isinstance(value, str):
        raise InvalidTransaction(f"{what} must be text, not {type(value).__name__}")
    if not min_len <= len(value) <= max_len:
        raise InvalidTransaction(f"{what} must be {min_len}-{max_len} characters long")
    if unicodedata.normalize("NFC", value) != value:
        raise InvalidTransaction(f"{what} is not in Unicode NFC form: normalise it first")
    if value != value.strip():
        raise InvalidTransaction(f"{what} has leading or trailing white space: remove it")
    for ch in value:
        if not is_displayable(ch):
            raise InvalidTransaction(f"{what} {_char_refusal(ch)}")
    if "  " in value:
        raise InvalidTransaction(
            f"{what} contains a run of spaces, which a token screen could use to push text "
            "onto a line of its own: use single spaces"
        )
    _check_scripts(what, value)
    label = _AMOUNT_LABEL_RE.search(value)
    if label is not None:
        raise InvalidTransaction(
            f"{what} contains {label.group(0)!r}, the label of an amount line, which a "
            "token screen would show as a second amount: reword it"
        )
    return value


def _char_refusal(ch: str) -> str:
    """Why ``ch`` is refused, and what to do (for an :class:`InvalidTransaction` message)."""
    cp = ord(ch)
    name = unicodedata.name(ch, "unnamed")
    code = f"U+{cp:04X} ({name})"
    category = unicodedata.category(ch)
    if category in ("Cc", "Cf", "Zl", "Zp"):
        return (
            f"contains the control or format character {code}, which can reorder, hide or "
            "break displayed text (bidi override, zero-width, line break): remove it"
        )
    if category.startswith("M"):
        return (
            f"contains the combining mark {code}, which changes how the character before it "
            "looks on a token screen: use a precomposed letter or remove it"
        )
    if cp == 0x3000:
        return (
            "contains the ideographic space U+3000, which pads text so that it wraps into a "
            "fake line on a token screen: use a single ordinary space"
        )
    if category == "Zs":
        return f"contains the unusual space {code}: use a single ordinary space"
    if 0xFF10 <= cp <= 0xFF19 or 0xFF21 <= cp <= 0xFF3A or 0xFF41 <= cp <= 0xFF5A:
        return (
            f"contains the full-width {'digit' if cp <= 0xFF19 else 'letter'} {code}, which "
            f"a customer cannot tell from ordinary ones: write {unicodedata.normalize('NFKC', ch)!r}"
        )
    return (
        f"contains {code}, which is not in the token display's character repertoire "
        "(ASCII, Latin-1, Greek and Cyrillic letters, Han, common CJK punctuation): remove it"
    )


def _check_scripts(what: str, value: str) -> None:
    alphabets = sorted({s for s in map(_script, value) if s in ("Latin", "Greek", "Cyrillic")})
    if len(alphabets) > 1:
        raise InvalidTransaction(
            f"{what} mixes {' and '.join(alphabets)} letters, which look alike (a Cyrillic "
            "'А' passes for a Latin 'A'): write the name in one alphabet"
        )
    if alphabets in (["Greek"], ["Cyrillic"]):
        lookalikes = _GREEK_LOOKALIKES if alphabets == ["Greek"] else _CYRILLIC_LOOKALIKES
        letters = [ch for ch in value if _script(ch) == alphabets[0]]
        if all(ch in lookalikes for ch in letters):
            raise InvalidTransaction(
                f"{what} is written only in {alphabets[0]} letters that look like Latin "
                "letters or digits, so it would pass for another name: write it in Latin "
                "letters"
            )


def _check_pattern(what: str, value: object, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidTransaction(f"{what} {value!r} is invalid: {rule}")
    return value


def _check_amount(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise InvalidTransaction(
            f"amount must be a Decimal (or int), not {type(value).__name__}: "
            "floats are refused because they cannot hold fen exactly"
        )
    amount = Decimal(value)
    if not amount.is_finite():
        raise InvalidTransaction("amount must be a finite number")
    try:
        quantized = amount.quantize(_CENT)
    except InvalidOperation:
        raise InvalidTransaction("amount is too large") from None
    if quantized != amount:
        raise InvalidTransaction(f"amount {amount} has more than two decimal places (fen)")
    if quantized <= 0:
        raise InvalidTransaction("amount must be greater than zero")
    if quantized > MAX_AMOUNT:
        raise InvalidTransaction(f"amount must not exceed {MAX_AMOUNT}")
    return quantized


def _check_timestamp(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidTransaction(f"timestamp must be a datetime, not {type(value).__name__}")
    offset = value.utcoffset()
    if value.tzinfo is None or offset is None:
        raise InvalidTransaction("timestamp must be timezone-aware (e.g. Asia/Shanghai)")
    if offset % timedelta(minutes=1) or abs(offset) >= timedelta(hours=24):
        raise InvalidTransaction("timestamp's UTC offset must be whole minutes under 24 h")
    if value.year < _MIN_YEAR:
        raise InvalidTransaction(f"timestamp must be in {_MIN_YEAR} or later")
    # Normalise to a fixed-offset zone so the value round-trips through encode().
    return value.replace(tzinfo=timezone(offset))


for _code, _zh, _en in (
    ("transfer", "转账", "Transfer"),
    ("payment", "支付", "Payment"),
    ("bill_payment", "缴费", "Bill payment"),
    ("batch_transfer", "批量转账", "Batch transfer"),
    ("salary", "代发工资", "Payroll"),
    ("withdrawal", "取款", "Withdrawal"),
    ("fx_exchange", "结售汇", "Foreign exchange"),
    ("investment", "理财购买", "Investment purchase"),
):
    register_tx_type(_code, _zh, _en)


def format_amount(amount: Decimal) -> str:
    """Canonical amount text: two fraction digits, no grouping (``"1234.50"``)."""
    return f"{amount.quantize(_CENT):f}"


def _format_timestamp(ts: datetime) -> str:
    offset = ts.utcoffset()
    assert offset is not None  # validated at construction
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    frac = f".{ts.microsecond:06d}" if ts.microsecond else ""
    return (
        f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:{ts.minute:02d}:"
        f"{ts.second:02d}{frac}{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    )


def _parse_timestamp(text: str) -> datetime:
    m = _TS_RE.fullmatch(text)
    if m is None:
        raise EncodingError(
            f"timestamp {text!r} is not canonical: use YYYY-MM-DDTHH:MM:SS[.ffffff]+HH:MM"
        )
    year, month, day, hour, minute, second, frac, sign, oh, om = m.groups()
    try:
        offset = timedelta(hours=int(oh), minutes=int(om))
        tz = timezone(-offset if sign == "-" else offset)
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int(frac) if frac else 0,
            tzinfo=tz,
        )
    except ValueError as exc:
        raise EncodingError(f"timestamp {text!r} is not a valid date and time: {exc}") from None


def _parse_amount(text: str) -> Decimal:
    if not _AMOUNT_RE.fullmatch(text):
        raise EncodingError(
            f"amount {text!r} is not canonical: use digits with exactly two decimals, e.g. 100.00"
        )
    return Decimal(text)


_CN_DIGITS: Final = "零壹贰叁肆伍陆柒捌玖"
_CN_SMALL_UNITS: Final = ("", "拾", "佰", "仟")
_CN_BIG_UNITS: Final = ("", "万", "亿", "万亿")


def amount_in_chinese(amount: Decimal) -> str:
    """The amount in Chinese capital numerals as written on bank forms (大写金额).

    ``Decimal("1005.30")`` → ``"壹仟零伍元叁角"``; whole amounts end in ``整``.
    """
    cents = int(amount.quantize(_CENT) * 100)
    if cents <= 0:
        raise InvalidTransaction("amount must be greater than zero")
    integer, frac = divmod(cents, 100)
    out: list[str] = []
    if integer:
        digits = str(integer)
        length = len(digits)
        zero_pending = False
        for i, ch in enumerate(digits):
            d = int(ch)
            pos = length - 1 - i
            small, group = pos % 4, pos // 4
            if d == 0:
                zero_pending = True
            else:
                if zero_pending:
                    out.append("零")
                    zero_pending = False
                out.append(_CN_DIGITS[d] + _CN_SMALL_UNITS[small])
            if small == 0 and group > 0:
                group_digits = digits[max(0, length - 4 * (group + 1)) : length - 4 * group]
                if int(group_digits):
                    out.append(_CN_BIG_UNITS[group])
        out.append("元")
    jiao, fen = divmod(frac, 10)
    if frac == 0:
        out.append("整")
    else:
        if jiao:
            out.append(_CN_DIGITS[jiao] + "角")
        elif integer:
            out.append("零")
        if fen:
            out.append(_CN_DIGITS[fen] + "分")
    return "".join(out)


def _group_thousands(amount: Decimal) -> str:
    return f"{amount.quantize(_CENT):,f}"


@dataclass(frozen=True)
class Transaction:
    """One transaction's key data: what is shown, confirmed, signed and audited.

    Construction validates every field (``InvalidTransaction`` names the bad one)
    and normalises the amount to two decimals and the timestamp to a fixed UTC
    offset, so equal transactions have equal encodings.
    """

    tx_id: str  # unique id / nonce, 1-64 of [A-Za-z0-9_-]
    tx_type: str  # registered type code, e.g. "transfer"
    payer_account: str  # account or card number debited
    payee_account: str  # account or card number credited
    payee_name: str  # payee's account name as it will be displayed
    amount: Decimal  # > 0, at most two decimals (fen), <= MAX_AMOUNT
    currency: str  # ISO 4217 alphabetic code
    timestamp: datetime  # timezone-aware time of the order
    memo: str = ""  # free text shown to the customer (附言), may be empty

    def __post_init__(self) -> None:
        _check_pattern("tx_id", self.tx_id, _TX_ID_RE, "use 1-64 of A-Z a-z 0-9 _ -")
        if not isinstance(self.tx_type, str) or self.tx_type not in _TX_TYPES:
            raise InvalidTransaction(
                f"tx_type {self.tx_type!r} is not a registered transaction type "
                f"(known: {', '.join(sorted(_TX_TYPES))}); register it with register_tx_type()"
            )
        _check_pattern("payer_account", self.payer_account, _ACCOUNT_RE, "use 4-34 of 0-9 A-Z a-z")
        _check_pattern("payee_account", self.payee_account, _ACCOUNT_RE, "use 4-34 of 0-9 A-Z a-z")
        _check_text("payee_name", self.payee_name, 1, _MAX_NAME_CHARS)
        if not isinstance(self.currency, str) or self.currency not in ISO_4217_CURRENCIES:
            raise InvalidTransaction(
                f"currency {self.currency!r} is not an active ISO 4217 currency code: "
                "use one such as CNY, USD, EUR or HKD"
            )
        _check_text("memo", self.memo, 0, _MAX_MEMO_CHARS)
        object.__setattr__(self, "amount", _check_amount(self.amount))
        object.__setattr__(self, "timestamp", _check_timestamp(self.timestamp))
        for name in _FIELD_NAMES:
            if len(self._field_text(name).encode("utf-8")) > MAX_FIELD_BYTES:
                raise InvalidTransaction(f"{name} is longer than {MAX_FIELD_BYTES} bytes")

    # ------------------------------------------------------------------ encoding
    def _field_text(self, name: str) -> str:
        if name == "amount":
            return format_amount(self.amount)
        if name == "timestamp":
            return _format_timestamp(self.timestamp)
        value: str = getattr(self, name)
        return value

    def encode(self) -> bytes:
        """The canonical byte string (format version 1, see the module docstring)."""
        parts = [MAGIC, bytes((FORMAT_VERSION, len(FIELD_TAGS)))]
        for tag, name in FIELD_TAGS:
            value = self._field_text(name).encode("utf-8")
            parts.append(struct.pack(">BH", tag, len(value)))
            parts.append(value)
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Transaction:
        """Parse a canonical encoding; anything else raises :class:`EncodingError`."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise EncodingError(f"transaction bytes expected, not {type(data).__name__}")
        raw = bytes(data)
        if len(raw) < len(MAGIC) + 2 or raw[: len(MAGIC)] != MAGIC:
            raise EncodingError("not an ebank-auth transaction encoding (magic 'EBTX' missing)")
        version, count = raw[len(MAGIC)], raw[len(MAGIC) + 1]
        if version != FORMAT_VERSION:
            raise EncodingError(
                f"transaction format version {version} is not supported "
                f"(this library reads version {FORMAT_VERSION})"
            )
        if count != len(FIELD_TAGS):
            raise EncodingError(f"transaction has {count} fields, expected {len(FIELD_TAGS)}")
        pos = len(MAGIC) + 2
        values: dict[str, str] = {}
        for tag, name in FIELD_TAGS:
            if pos + 3 > len(raw):
                raise EncodingError(f"transaction truncated before field {name}")
            got_tag, length = struct.unpack_from(">BH", raw, pos)
            pos += 3
            if got_tag != tag:
                raise EncodingError(
                    f"transaction field tag {got_tag} where {tag} ({name}) was expected"
                )
            if length > MAX_FIELD_BYTES:
                raise EncodingError(f"transaction field {name} is longer than allowed")
            if pos + length > len(raw):
                raise EncodingError(f"transaction truncated inside field {name}")
            try:
                values[name] = raw[pos : pos + length].decode("utf-8", errors="strict")
            except UnicodeDecodeError:
                raise EncodingError(f"transaction field {name} is not valid UTF-8") from None
            pos += length
        if pos != len(raw):
            raise EncodingError(f"{len(raw) - pos} trailing byte(s) after the transaction")
        tx = cls._from_text_fields(values)
        if tx.encode() != raw:
            raise EncodingError("transaction encoding is not canonical")
        return tx

    def digest(self) -> bytes:
        """SM3 of :meth:`encode` (32 bytes): the transaction's fingerprint."""
        from ebank_auth.crypto import sm3  # crypto is a leaf; imported when needed

        out: bytes = sm3.digest(self.encode())
        return out

    # ------------------------------------------------------------------ dicts
    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict: every value is text (amount and time canonical)."""
        d: dict[str, Any] = {"version": FORMAT_VERSION}
        for name in _FIELD_NAMES:
            d[name] = self._field_text(name)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Transaction:
        """Build from :meth:`to_dict` output (or JSON).  Strict: unknown keys,
        missing keys and non-text values raise :class:`EncodingError`.
        ``version`` (1), ``currency`` (CNY) and ``memo`` ("") may be omitted."""
        if not isinstance(d, Mapping):
            raise EncodingError(f"transaction must be a JSON object, not {type(d).__name__}")
        allowed = {"version", *_FIELD_NAMES}
        unknown = sorted(str(k) for k in d if k not in allowed)
        if unknown:
            raise EncodingError(f"unknown transaction key(s): {', '.join(unknown)}")
        version = d.get("version", FORMAT_VERSION)
        if isinstance(version, bool) or version != FORMAT_VERSION:
            raise EncodingError(
                f"transaction version {version!r} is not supported (expected {FORMAT_VERSION})"
            )
        values: dict[str, str] = {"currency": DEFAULT_CURRENCY, "memo": ""}
        for name in _FIELD_NAMES:
            if name in d:
                value = d[name]
                if not isinstance(value, str):
                    raise EncodingError(
                        f"transaction key {name!r} must be a string, not {type(value).__name__}"
                    )
                values[name] = value
            elif name not in values:
                raise EncodingError(f"transaction key {name!r} is missing")
        return cls._from_text_fields(values)

    @classmethod
    def _from_text_fields(cls, values: dict[str, str]) -> Transaction:
        """Build from the fields' canonical text forms (shared by decode and from_dict)."""
        try:
            return cls(
                tx_id=values["tx_id"],
                tx_type=values["tx_type"],
                payer_account=values["payer_account"],
                payee_account=values["payee_account"],
                payee_name=values["payee_name"],
                amount=_parse_amount(values["amount"]),
                currency=values["currency"],
                timestamp=_parse_timestamp(values["timestamp"]),
                memo=values["memo"],
            )
        except InvalidTransaction as exc:
            raise EncodingError(f"transaction field invalid: {exc.message}") from None

    # ------------------------------------------------------------------ display
    def display_text(self, lang: str = "zh") -> str:
        """What a token screen, SMS or voice prompt shows, one item per line.

        Shows the type, payer, payee account and name, amount with currency (and
        the Chinese capital form for CNY in ``zh``), local time as encoded, memo and id.
        Accounts are shown in full: the customer must be able to check them.
        """
        ts = self.timestamp
        when = f"{ts:%Y-%m-%d %H:%M:%S} {_format_timestamp(ts)[-6:]}"
        kind = _TX_TYPES[self.tx_type]
        amount = _group_thousands(self.amount)
        if lang == "zh":
            lines = [
                f"交易类型：{kind.name_zh}",
                f"付款账号：{self.payer_account}",
                f"收款账号：{self.payee_account}",
                f"收款户名：{self.payee_name}",
                f"金额：{self.currency} {amount}",
            ]
            if self.currency == "CNY":
                lines.append(f"大写：{amount_in_chinese(self.amount)}")
            lines.append(f"时间：{when}")
            if self.memo:
                lines.append(f"附言：{self.memo}")
            lines.append(f"交易号：{self.tx_id}")
        elif lang == "en":
            lines = [
                f"Type: {kind.name_en}",
                f"From account: {self.payer_account}",
                f"To account: {self.payee_account}",
                f"Payee: {self.payee_name}",
                f"Amount: {self.currency} {amount}",
                f"Time: {when}",
            ]
            if self.memo:
                lines.append(f"Memo: {self.memo}")
            lines.append(f"Ref: {self.tx_id}")
        else:
            raise InvalidTransaction(f"display language {lang!r} is not supported: use zh or en")
        return "\n".join(lines)
