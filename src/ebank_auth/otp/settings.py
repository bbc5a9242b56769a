"""Settings for SMS / voice codes, validated when constructed (fail closed on bad values)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from enum import Enum, IntEnum
from types import MappingProxyType

from ebank_auth.errors import ConfigurationError
from ebank_auth.localtime import day_window, resolve_timezone

__all__ = [
    "MAX_VALIDITY",
    "DeliveryChannel",
    "OtpSettings",
    "RiskTier",
    "day_window",
    "resolve_timezone",
]

MAX_VALIDITY = 300.0
"""No SMS or voice code may ever be valid longer than 5 minutes (JR/T 0068, OTP-1)."""


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
    ``resend_cooldown``: seconds before another code may be requested for the same
    user and purpose.
    ``daily_limit_per_user`` / ``daily_limit_per_phone``: codes per local day.
    ``timezone``: where the "day" of the daily caps begins and ends.
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

    def __post_init__(self) -> None:
        if not isinstance(self.digits, int) or not 4 <= self.digits <= 10:
            raise ConfigurationError("digits must be an integer between 4 and 10")
        self._check_validity("validity", self.validity)
        if not isinstance(self.max_attempts, int) or not 1 <= self.max_attempts <= 10:
            raise ConfigurationError("max_attempts must be an integer between 1 and 10")
        if not 0 <= float(self.resend_cooldown) <= 3600:
            raise ConfigurationError("resend_cooldown must be between 0 and 3600 seconds")
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
