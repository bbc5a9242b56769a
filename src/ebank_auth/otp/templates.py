"""Message templates for SMS and voice codes, in Chinese and English.

A code that protects a transaction is always sent with what that transaction *is*,
taken from the canonical :class:`~ebank_auth.transaction.Transaction` whose digest
the code is bound to (the one seam; no caller-supplied summary): its type, amount
and currency and the last four characters of the payee account.  A voice message
states type and amount (OTP-3) and spells the code digit by digit, twice.
"""

from __future__ import annotations

from enum import Enum

from ebank_auth.otp.settings import DeliveryChannel
from ebank_auth.transaction import Transaction, registered_tx_types

__all__ = ["Language", "render_message"]


class Language(str, Enum):
    ZH = "zh"
    EN = "en"


_ZH_DIGITS = "零一二三四五六七八九"
_EN_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


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


def _currency_zh(currency: str) -> str:
    return {"CNY": "元", "USD": "美元", "EUR": "欧元", "HKD": "港元"}.get(currency, currency)


def _facts(tx: Transaction, lang: Language) -> tuple[str, str, str]:
    """(type name, amount with currency, payee account's last four) of ``tx``."""
    kind = registered_tx_types()[tx.tx_type]
    amount = f"{tx.amount:,.2f}"
    tail = tx.payee_account[-4:]
    if lang is Language.ZH:
        return kind.name_zh, f"{amount}{_currency_zh(tx.currency)}", tail
    return kind.name_en, f"{amount} {tx.currency}", tail


def render_message(
    *,
    channel: DeliveryChannel,
    code: str,
    validity_seconds: float,
    purpose: str,
    lang: Language = Language.ZH,
    transaction: Transaction | None = None,
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
    facts = _facts(transaction, lang) if transaction is not None else None
    if channel is DeliveryChannel.VOICE:
        if lang is Language.ZH:
            what = (
                f"您正在进行{facts[0]}，金额{facts[1]}，收款账户尾号{facts[2]}。"
                if facts
                else f"您正在进行{_PURPOSE_ZH.get(purpose, purpose)}操作。"
            )
            return (
                f"{head_zh}{what}验证码是：{_spell(code, lang)}。重复一遍：{_spell(code, lang)}。"
                f"{span_zh}内有效，请勿告诉他人。"
            )
        what = (
            f"You are making a {facts[0]} of {facts[1]} to the account ending {facts[2]}. "
            if facts
            else f"You are performing: {purpose}. "
        )
        return (
            f"{head_en}{what}Your code is {_spell(code, lang)}. Again: {_spell(code, lang)}. "
            f"It is valid for {span_en}. Never tell it to anyone."
        )
    if lang is Language.ZH:
        what = (
            f"您正在{facts[0]}{facts[1]}至尾号{facts[2]}的账户，"
            if facts
            else f"您正在{_PURPOSE_ZH.get(purpose, purpose)}，"
        )
        return f"{head_zh}{what}验证码{code}，{span_zh}内有效。切勿泄露给他人，银行不会索要验证码。"
    what = f"{facts[0]} of {facts[1]} to account ending {facts[2]}: " if facts else f"{purpose}: "
    return (
        f"{head_en}{what}your code is {code}, valid for {span_en}. "
        "Never share it; the bank will never ask for it."
    )
