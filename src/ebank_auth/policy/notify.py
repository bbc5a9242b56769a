"""Lockout notices through the one-time-code gateways (SMS first, then voice).

:class:`GatewayNotifier` adapts any :class:`ebank_auth.otp.Gateway` to the
:class:`~ebank_auth.policy.lockout.Notifier` protocol.  The number comes from the
bank's phone registry (the number the customer registered, OTP-3), never from
the request.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

from ebank_auth.errors import ConfigurationError, DeliveryError
from ebank_auth.otp.codes import PhoneRegistry
from ebank_auth.otp.gateway import Gateway, OutboundMessage
from ebank_auth.otp.settings import DeliveryChannel
from ebank_auth.policy.lockout import LockoutEvent

__all__ = ["GatewayNotifier", "lockout_message"]


def lockout_message(event: LockoutEvent, lang: str = "zh", bank_name: str = "") -> str:
    """The notice text: what happened, until when, what to do."""
    until = f"{event.locked_until:%Y-%m-%d %H:%M}"
    if lang == "zh":
        head = f"【{bank_name}】" if bank_name else ""
        return (
            f"{head}您的网上银行登录已因连续{event.failures}次验证失败被锁定，"
            f"{until}自动解锁。如非本人操作，请立即致电银行。"
        )
    head = f"[{bank_name}] " if bank_name else ""
    return (
        f"{head}Your online banking login was locked after {event.failures} failed attempts "
        f"until {until}. If this was not you, call the bank now."
    )


class GatewayNotifier:
    """Sends the lockout notice over the first channel that works."""

    def __init__(
        self,
        gateway: Gateway,
        phones: PhoneRegistry,
        *,
        channels: Sequence[str] = ("sms", "voice"),
        lang: str = "zh",
        bank_name: str = "",
    ) -> None:
        if not channels:
            raise ConfigurationError("at least one notification channel is needed")
        self.gateway = gateway
        self.phones = phones
        self.channels = tuple(DeliveryChannel(c) for c in channels)
        self.lang = lang
        self.bank_name = bank_name

    def notify_locked(self, event: LockoutEvent) -> None:
        phone = self.phones.registered_phone(event.user)
        if not phone:
            raise DeliveryError("the customer has no registered phone number for the notice")
        text = lockout_message(event, self.lang, self.bank_name)
        errors: list[str] = []
        for channel in self.channels:
            message = OutboundMessage(
                message_id=secrets.token_hex(8),
                channel=channel,
                phone=phone,
                text=text,
                lang=self.lang,
                purpose="login_locked",
                created_at=time.time(),
            )
            try:
                self.gateway.send(message)
                return
            except DeliveryError as exc:
                errors.append(f"{channel.value}: {exc}")
        raise DeliveryError("lockout notice not delivered: " + "; ".join(errors))
