"""Message templates for SMS and voice codes, in Chinese and English.

A voice message always states the transaction type and amount when the code
protects a transaction (OTP-3), so the customer hears what they are approving.
The code itself is spelled digit by digit in voice messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum

from ebank_auth.errors import ConfigurationError
from ebank_auth.otp.settings import DeliveryChannel

__all__ = ["Language", "TransactionSummary", "render_message"]


class Language(str, Enum):
    ZH = "zh"
    EN = "en"


_ZH_DIGITS = "零一二三四五六七八九"
_EN_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class TransactionSummary:
    """What the customer is told about the transaction a code protects.

    ``kind``: transaction type as shown to the customer (e.g. "转账" / "transfer").
    ``amount``: decimal amount as text or Decimal; ``currency``: ISO 4217 code.
    ``payee_hint``: optional masked payee (e.g. "尾号1234"), never a full account number.
    """

    kind: str
    amount: Decimal | str
    currency: str = "CNY"
    payee_hint: str = ""

    def __post_init__(self) -> None:
        if not self.kind.strip():
            raise ConfigurationError("transaction summary needs a transaction type")
        try:
            amount = Decimal(str(self.amount))
        except InvalidOperation as exc:
            raise ConfigurationError(f"transaction amount {self.amount!r} is not a number") from exc
        if not amount.is_finite() or amount < 0:
            raise ConfigurationError("transaction amount must be a non-negative number")
        object.__setattr__(self, "amount", amount)

    @property
    def amount_text(self) -> str:
        return f"{Decimal(self.amount):,.2f}"


def _spell(code: str, lang: Language) -> str:
    if lang is Language.ZH:
        return "、".join(_ZH_DIGITS[int(c)] for c in code)
    return ", ".join(_EN_DIGITS[int(c)] for c in code)


_PURPOSE_ZH = {
    "login": "登录",
    "transaction": "交易",
    "bind_device": "绑定设备",
    "reset": "重置密码",
}


def render_message(
    *,
    channel: DeliveryChannel,
    code: str,
    validity_seconds: float,
    purpose: str,
    lang: Language = Language.ZH,
    summary: TransactionSummary | None = None,
    bank_name: str = "",
) -> str:
    """The text sent to the customer (SMS) or spoken to them (voice)."""
    minutes = validity_seconds / 60
    whole = validity_seconds >= 60 and minutes == int(minutes)
    span_zh = f"{int(minutes)}分钟" if whole else f"{int(validity_seconds)}秒"
    span_en = (
        f"{int(minutes)} minute{'s' if minutes != 1 else ''}"
        if whole
        else f"{int(validity_seconds)} seconds"
    )
    head_zh = f"【{bank_name}】" if bank_name else ""
    head_en = f"[{bank_name}] " if bank_name else ""
    if channel is DeliveryChannel.VOICE:
        if lang is Language.ZH:
            what = (
                f"您正在进行{summary.kind}，金额{summary.amount_text}{_currency_zh(summary.currency)}。"
                if summary
                else f"您正在进行{_PURPOSE_ZH.get(purpose, purpose)}操作。"
            )
            return (
                f"{head_zh}{what}验证码是：{_spell(code, lang)}。重复一遍：{_spell(code, lang)}。"
                f"{span_zh}内有效，请勿告诉他人。"
            )
        what = (
            f"You are making a {summary.kind} of {summary.amount_text} {summary.currency}. "
            if summary
            else f"You are performing: {purpose}. "
        )
        return (
            f"{head_en}{what}Your code is {_spell(code, lang)}. Again: {_spell(code, lang)}. "
            f"It is valid for {span_en}. Never tell it to anyone."
        )
    if lang is Language.ZH:
        what = (
            f"您正在{summary.kind}{summary.amount_text}{_currency_zh(summary.currency)}"
            f"{'至' + summary.payee_hint if summary.payee_hint else ''}，"
            if summary
            else f"您正在{_PURPOSE_ZH.get(purpose, purpose)}，"
        )
        return f"{head_zh}{what}验证码{code}，{span_zh}内有效。切勿泄露给他人，银行不会索要验证码。"
    what = (
        f"{summary.kind} of {summary.amount_text} {summary.currency}"
        f"{' to ' + summary.payee_hint if summary.payee_hint else ''}: "
        if summary
        else f"{purpose}: "
    )
    return (
        f"{head_en}{what}your code is {code}, valid for {span_en}. "
        "Never share it; the bank will never ask for it."
    )


def _currency_zh(currency: str) -> str:
    return {"CNY": "元", "USD": "美元", "EUR": "欧元", "HKD": "港元"}.get(currency, currency)
