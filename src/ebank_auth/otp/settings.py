"""Settings for SMS / voice codes, validated when constructed (fail closed on bad values)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from enum import Enum, IntEnum
from types import MappingProxyType

from ebank_auth.errors import ConfigurationError
from ebank_auth.localtime import day_window, resolve_timezone

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_VALIDITY",
    "MIN_DIGITS",
    "MIN_RESEND_COOLDOWN",
    "DeliveryChannel",
    "OtpSettings",
    "RiskTier",
    "day_window",
    "resolve_timezone",
]

MAX_VALIDITY = 300.0
"""No SMS or voice code may ever be valid longer than 5 minutes (JR/T 0068, OTP-1)."""

MIN_DIGITS = 6
"""Shortest code outside test mode (a 6-digit code: 1 in 10^6 per guess)."""

MAX_ATTEMPTS = 5
"""Most wrong tries per code outside test mode (AU-6: at most 5 consecutive failures)."""

MIN_RESEND_COOLDOWN = 30.0
"""Shortest wait between two codes to one customer or phone outside test mode (OTP-2:
against malicious resend)."""

_log = logging.getLogger(__name__)


class DeliveryChannel(str, Enum):
    """How a one-time code reaches the customer."""

    SMS = "sms"
    VOICE = "voice"


class RiskTier(IntEnum):
    """Risk of the operation a code protects; a higher tier may only shorten validity."""

    LOW = 0
    NORMAL = 1
    HIGH = 2
    CRITICAL = 3


_DEFAULT_TIER_VALIDITY: Mapping[RiskTier, float] = {
    RiskTier.LOW: 60.0,
    RiskTier.NORMAL: 60.0,
    RiskTier.HIGH: 45.0,
    RiskTier.CRITICAL: 30.0,
}


@dataclass(frozen=True)
class OtpSettings:
    """Rules for SMS / voice codes.

    ``validity``: seconds a code stays valid (default 60, never above 300).
    ``tier_validity``: per-risk-tier validity; the effective validity is the smaller of
    the two, so a tier can only shorten it.
    ``max_attempts``: wrong tries allowed per code before it is dead.
    ``resend_cooldown``: seconds before another code may be sent to the same customer
    (whatever the purpose) or to the same phone number.
    ``daily_limit_per_user`` / ``daily_limit_per_phone``: codes per local day.
    ``timezone``: where the "day" of the daily caps begins and ends.
    ``test_mode``: lifts the floors (``digits`` >= 6, ``max_attempts`` <= 5,
    ``resend_cooldown`` >= 30 s) for tests and demonstrations only; logged as a warning.
    """

    digits: int = 6
    validity: float = 60.0
    max_attempts: int = 3
    resend_cooldown: float = 60.0
    daily_limit_per_user: int = 10
    daily_limit_per_phone: int = 10
    timezone: str = "Asia/Shanghai"
    tier_validity: Mapping[RiskTier, float] = field(
        default_factory=lambda: dict(_DEFAULT_TIER_VALIDITY)
    )
    test_mode: bool = False

    def __post_init__(self) -> None:
        testing = self.test_mode is True
        min_digits = 4 if testing else MIN_DIGITS
        if (
            isinstance(self.digits, bool)
            or not isinstance(self.digits, int)
            or not min_digits <= self.digits <= 10
        ):
            raise ConfigurationError(
                f"digits must be an integer between {min_digits} and 10 (shorter codes only "
                "in test_mode)"
            )
        self._check_validity("validity", self.validity)
        max_tries = 10 if testing else MAX_ATTEMPTS
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or not 1 <= self.max_attempts <= max_tries
        ):
            raise ConfigurationError(
                f"max_attempts must be an integer between 1 and {max_tries} (AU-6 allows at "
                "most 5 consecutive failures)"
            )
        min_cool = 0.0 if testing else MIN_RESEND_COOLDOWN
        if isinstance(self.resend_cooldown, bool) or not isinstance(
            self.resend_cooldown, (int, float)
        ):
            raise ConfigurationError("resend_cooldown must be a number of seconds")
        if not min_cool <= float(self.resend_cooldown) <= 3600:
            raise ConfigurationError(
                f"resend_cooldown must be between {int(min_cool)} and 3600 seconds "
                "(a shorter wait only in test_mode)"
            )
        for name in ("daily_limit_per_user", "daily_limit_per_phone"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 1000:
                raise ConfigurationError(f"{name} must be an integer between 1 and 1000")
        resolve_timezone(self.timezone)
        tiers: dict[RiskTier, float] = {}
        for tier, seconds in dict(self.tier_validity).items():
            try:
                tier_key = RiskTier(tier)
            except ValueError as exc:
                raise ConfigurationError(f"unknown risk tier {tier!r}") from exc
            self._check_validity(f"tier_validity[{tier_key.name}]", seconds)
            tiers[tier_key] = float(seconds)
        object.__setattr__(self, "tier_validity", MappingProxyType(tiers))
        object.__setattr__(self, "validity", float(self.validity))
        if testing:
            _log.warning(
                "OTP TEST MODE: code settings below the floors are allowed "
                "(digits=%d, max_attempts=%d, resend_cooldown=%s s); never use in production",
                self.digits,
                self.max_attempts,
                self.resend_cooldown,
            )

    @staticmethod
    def _check_validity(name: str, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise ConfigurationError(f"{name} must be a number of seconds")
        if not 0 < float(seconds) <= MAX_VALIDITY:
            raise ConfigurationError(
                f"{name} = {seconds} s is not allowed: codes must be valid for more than 0 and "
                f"at most {int(MAX_VALIDITY)} seconds"
            )

    def validity_for(self, tier: RiskTier = RiskTier.NORMAL) -> float:
        """Effective validity for ``tier``: never longer than ``validity``."""
        return min(self.validity, self.tier_validity.get(RiskTier(tier), self.validity))

    @property
    def tz(self) -> tzinfo:
        return resolve_timezone(self.timezone)
