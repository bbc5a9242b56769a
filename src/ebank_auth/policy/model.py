"""The in-memory form of a policy: base requirements per operation, amount tiers,
conditional rules and the lockout / device / blacklist settings.

Policies are normally loaded from a TOML file by :mod:`ebank_auth.policy.loader`,
which validates everything; the dataclasses here hold the validated values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal
from enum import Enum, IntEnum
from zoneinfo import ZoneInfo

from ebank_auth.policy.context import (
    AccessChannel,
    AuthContext,
    CustomerType,
    DeviceStatus,
    Operation,
)
from ebank_auth.policy.factors import Factor, Requirement

__all__ = [
    "MAX_LOCKOUT_FAILURES",
    "MAX_TRUSTED_DEVICES",
    "MAX_TRUST_DAYS",
    "OBLIGATIONS",
    "AmountTier",
    "BlacklistSettings",
    "Conditions",
    "DeviceSettings",
    "Effect",
    "Facts",
    "LockoutSettings",
    "Policy",
    "RiskLevel",
    "Rule",
    "TierTable",
]

#: strictest bounds the standards allow (AU-6, AU-7); settings above them are refused
MAX_LOCKOUT_FAILURES = 5
MAX_TRUSTED_DEVICES = 3
MAX_TRUST_DAYS = 180

#: actions a decision can oblige the caller to carry out
OBLIGATIONS: frozenset[str] = frozenset(
    {
        "bind_device",  # bind the device to the customer after verification (AU-4)
        "risk_prompt",  # show the customer a risk warning (AU-7)
        "notify_customer",  # tell the customer at once by SMS or phone
        "second_channel_confirmation",  # confirm the transaction data on a second channel (UK-8)
    }
)


class Effect(str, Enum):
    REQUIRE = "require"  # add the rule's requirement (step-up if not yet met)
    DENY = "deny"  # refuse outright


class RiskLevel(IntEnum):
    LOW = 0
    MEDIUM = 1
    HIGH = 2


@dataclass(frozen=True)
class Facts:
    """Values the engine derives once per decision."""

    night: bool
    amount: Decimal | None  # converted to the tier currency; None if not a funds operation
    risk_score: float
    blacklisted: bool


@dataclass(frozen=True)
class Conditions:
    """All given conditions must hold for a rule to fire (None = any).

    Only *monotone* conditions are offered for time, amount, risk and blacklist
    (night only, amount at least, risk at least, blacklisted only), so raising the
    amount or the risk or moving to night time can only add rules, never remove
    one: the policy can never get weaker as the situation gets riskier.
    """

    operations: frozenset[Operation] | None = None
    customer_types: frozenset[CustomerType] | None = None
    channels: frozenset[AccessChannel] | None = None
    client_types: frozenset[str] | None = None
    device_statuses: frozenset[DeviceStatus] | None = None
    night: bool = False  # True: only in the night window
    amount_at_least: Decimal | None = None
    risk_at_least: float | None = None
    same_customer: bool | None = None
    blacklisted: bool = False  # True: only for blacklisted requests
    real_name_verified: bool | None = None

    def matches(self, ctx: AuthContext, facts: Facts) -> bool:
        if self.operations is not None and ctx.operation not in self.operations:
            return False
        if self.blacklisted and not facts.blacklisted:
            return False
        if self.night and not facts.night:
            return False
        if self.customer_types is not None and ctx.customer_type not in self.customer_types:
            return False
        if self.channels is not None and ctx.channel not in self.channels:
            return False
        if self.client_types is not None and ctx.client_type not in self.client_types:
            return False
        if self.device_statuses is not None and ctx.device_status not in self.device_statuses:
            return False
        if self.amount_at_least is not None and (
            facts.amount is None or facts.amount < self.amount_at_least
        ):
            return False
        if self.risk_at_least is not None and facts.risk_score < self.risk_at_least:
            return False
        if self.same_customer is not None and ctx.same_customer != self.same_customer:
            return False
        return not (
            self.real_name_verified is not None
            and ctx.real_name_verified != self.real_name_verified
        )


@dataclass(frozen=True)
class Rule:
    """A conditional rule: when its conditions hold, add a requirement or deny."""

    id: str
    when: Conditions
    effect: Effect = Effect.REQUIRE
    requirement: Requirement = field(default_factory=Requirement)
    obligations: frozenset[str] = frozenset()
    risk: RiskLevel = RiskLevel.LOW
    message: str = ""  # shown when the rule denies
    description: str = ""
    refs: tuple[str, ...] = ()  # requirement IDs it implements, e.g. ("AU-5",)
    line: int | None = None  # line in the policy file


@dataclass(frozen=True)
class AmountTier:
    """Requirement for amounts in ``[lower, upper)`` (upper None = no limit)."""

    id: str
    lower: Decimal
    upper: Decimal | None
    requirement: Requirement
    description: str = ""
    refs: tuple[str, ...] = ()
    line: int | None = None

    def contains(self, amount: Decimal) -> bool:
        return amount >= self.lower and (self.upper is None or amount < self.upper)


@dataclass(frozen=True)
class TierTable:
    """Amount tiers for funds operations (AU-1, AU-2): contiguous from 0, each
    at least as strict as the one below."""

    operations: frozenset[Operation]
    currency: str
    exempt_same_customer: bool  # transfers between the customer's own accounts skip the tiers
    tiers: tuple[AmountTier, ...]

    def tier_for(self, amount: Decimal) -> AmountTier:
        for tier in reversed(self.tiers):
            if amount >= tier.lower:
                return tier
        return self.tiers[0]


@dataclass(frozen=True)
class LockoutSettings:
    max_failures: int = MAX_LOCKOUT_FAILURES  # 1..5 (AU-6)
    notify: tuple[str, ...] = ("sms", "voice")  # channels tried in order


@dataclass(frozen=True)
class DeviceSettings:
    max_trusted: int = MAX_TRUSTED_DEVICES  # 1..3 (AU-7)
    trust_days: int = MAX_TRUST_DAYS  # 1..180 (AU-7)
    verify_with: frozenset[Factor] = frozenset({Factor.BIOMETRIC, Factor.USBKEY_SIGNATURE})


@dataclass(frozen=True)
class BlacklistSettings:
    """Static blacklist entries from the policy file (AU-9)."""

    users: frozenset[str] = frozenset()
    devices: frozenset[str] = frozenset()
    ips: frozenset[str] = frozenset()
    payees: frozenset[str] = frozenset()

    def match(self, ctx: AuthContext) -> str | None:
        if ctx.user in self.users:
            return "user is blacklisted"
        if ctx.device_id and ctx.device_id in self.devices:
            return "device is blacklisted"
        if ctx.ip and ctx.ip in self.ips:
            return "IP address is blacklisted"
        if ctx.payee and ctx.payee in self.payees:
            return "payee account is blacklisted"
        return None


@dataclass(frozen=True)
class Policy:
    """A validated policy."""

    name: str
    timezone: ZoneInfo
    night_start: time
    night_end: time
    operations: dict[Operation, Rule]  # base rule per permitted operation
    tiers: TierTable | None
    rules: tuple[Rule, ...]
    lockout: LockoutSettings = field(default_factory=LockoutSettings)
    devices: DeviceSettings = field(default_factory=DeviceSettings)
    blacklist: BlacklistSettings = field(default_factory=BlacklistSettings)
    source: str = "<policy>"

    def is_night(self, t: time) -> bool:
        """True if local wall-clock time ``t`` is in the night window [start, end)."""
        if self.night_start <= self.night_end:
            return self.night_start <= t < self.night_end
        return t >= self.night_start or t < self.night_end
