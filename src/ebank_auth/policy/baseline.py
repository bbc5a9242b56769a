"""The built-in baseline every policy is held to (AU-1, AU-2, AU-4, AU-5, AU-7, AU-9, UK-11).

A policy file may only *tighten* this floor, never loosen it: the engine evaluates
the file's rules, then every baseline rule that matches, and a baseline rule that
asks for more than the file already did is added (its id, ``baseline.<name>``,
appears in :attr:`Decision.fired`).  So a half-written file — an empty
``[operations.login]``, a transfer table without tiers, no night rule, no blacklist
rule — still needs two independent factors at login, the amount tiers for funds,
an SMS/voice code for a night login, a USB Key signature for corporate funds, and
still denies blacklisted requests.

The shipped ``default_policy.toml`` meets the baseline everywhere (a property test
checks that no ``baseline.*`` rule ever fires for it).

The night window of the baseline is 00:00-06:00 Beijing time (AU-5), whatever time
zone and window the file sets; amounts are compared in CNY (the tiers' currency).
"""

from __future__ import annotations

from datetime import time
from decimal import Decimal

from ebank_auth.localtime import DEFAULT_TIMEZONE
from ebank_auth.policy.context import (
    FUNDS_OPERATIONS,
    CustomerType,
    DeviceStatus,
    Operation,
)
from ebank_auth.policy.factors import Factor, Requirement
from ebank_auth.policy.model import Conditions, Effect, RiskLevel, Rule

__all__ = [
    "BASELINE_CURRENCY",
    "BASELINE_NIGHT",
    "BASELINE_RULES",
    "BASELINE_TIMEZONE",
    "RESERVED_PREFIX",
    "baseline_is_night",
]

#: the currency of the amount tiers (JR/T thresholds are in CNY)
BASELINE_CURRENCY = "CNY"
#: AU-5 sensitive window, Beijing time: always night, whatever the file says
BASELINE_TIMEZONE = DEFAULT_TIMEZONE
BASELINE_NIGHT = (time(0, 0), time(6, 0))
#: rule ids with this prefix are the baseline's; policy files may not use it
RESERVED_PREFIX = "baseline."

_F = Factor
_KNOWLEDGE = frozenset({_F.PASSWORD, _F.SOFT_KEYBOARD_PASSWORD})
_CODES = frozenset({_F.SMS_CODE, _F.VOICE_CODE})
_LOGIN_SECOND = frozenset(
    {
        _F.SMS_CODE,
        _F.VOICE_CODE,
        _F.TOTP,
        _F.DYNAMIC_TOKEN,
        _F.USBKEY_SIGNATURE,
        _F.PHONE_SHIELD_SIGNATURE,
        _F.BIOMETRIC,
        _F.TRUSTED_DEVICE,
        _F.PASSKEY,
        _F.PASSKEY_UV,
    }
)
_FUNDS = FUNDS_OPERATIONS


def _rule(
    name: str,
    refs: tuple[str, ...],
    when: Conditions,
    *clauses: frozenset[Factor],
    min_factors: int = 0,
    min_classes: int = 0,
    deny: str = "",
    obligations: frozenset[str] = frozenset(),
    risk: RiskLevel = RiskLevel.LOW,
) -> Rule:
    return Rule(
        id=RESERVED_PREFIX + name,
        when=when,
        effect=Effect.DENY if deny else Effect.REQUIRE,
        requirement=Requirement(frozenset(clauses), min_factors, min_classes),
        obligations=obligations,
        risk=risk,
        message=deny,
        description="built-in baseline",
        refs=refs,
    )


def _ops(*ops: Operation) -> frozenset[Operation]:
    return frozenset(ops)


def _tier(name: str, lower: str, *clauses: frozenset[Factor], min_factors: int) -> Rule:
    # cumulative form of the tier table: each tier implies the one below, so the
    # union of every tier at or below the amount equals the amount's own tier
    return _rule(
        name,
        ("AU-1", "AU-2"),
        Conditions(operations=_FUNDS, amount_at_least=Decimal(lower), same_customer=False),
        _KNOWLEDGE,
        *clauses,
        min_factors=min_factors,
        min_classes=2,
    )


BASELINE_RULES: tuple[Rule, ...] = (
    _rule(
        "blacklist-deny",
        ("AU-9",),
        Conditions(blacklisted=True),
        deny="blocked by the blacklist: contact the bank",
    ),
    _rule(
        "risk-critical-deny",
        ("AU-9",),
        Conditions(risk_at_least=90.0),
        deny="blocked by anti-fraud rules: contact the bank",
        risk=RiskLevel.HIGH,
    ),
    _rule(
        "login-two-factors",
        ("AU-1",),
        Conditions(operations=_ops(Operation.LOGIN)),
        _KNOWLEDGE,
        _LOGIN_SECOND,
        min_factors=2,
        min_classes=2,
    ),
    _rule(
        "night-login-code",
        ("AU-5",),
        Conditions(operations=_ops(Operation.LOGIN), night=True),
        _CODES,
    ),
    _rule(
        "funds-transaction-password",
        ("AU-1",),
        Conditions(operations=_FUNDS),
        _KNOWLEDGE,
    ),
    # WebAuthn shows the customer nothing of a transaction, so a passkey never stands in
    # for a factor that binds amount and payee: small amounts take a user-verified passkey
    # (like TOTP); from tier 2 on the clauses name only transaction-bound or hardware factors
    _tier(
        "tier-1-small",
        "0",
        _LOGIN_SECOND - {_F.TRUSTED_DEVICE, _F.PASSKEY},
        min_factors=2,
    ),
    _tier(
        "tier-2-medium",
        "5000",
        frozenset(
            {
                _F.SMS_CODE,
                _F.VOICE_CODE,
                _F.DYNAMIC_TOKEN,
                _F.USBKEY_SIGNATURE,
                _F.PHONE_SHIELD_SIGNATURE,
            }
        ),
        min_factors=2,
    ),
    _tier(
        "tier-3-large",
        "50000",
        frozenset({_F.USBKEY_SIGNATURE, _F.PHONE_SHIELD_SIGNATURE}),
        min_factors=2,
    ),
    _tier(
        "tier-4-very-large",
        "1000000",
        frozenset({_F.USBKEY_SIGNATURE}),
        _CODES,
        min_factors=3,
    ),
    _rule(
        "large-amount-second-channel",
        ("UK-8",),
        Conditions(operations=_FUNDS, amount_at_least=Decimal("50000")),
        obligations=frozenset({"second_channel_confirmation"}),
    ),
    _rule(
        "corporate-funds-usbkey",
        ("UK-11",),
        Conditions(operations=_FUNDS, customer_types=frozenset({CustomerType.CORPORATE})),
        frozenset({_F.USBKEY_SIGNATURE}),
    ),
    _rule(
        "new-device-binding",
        ("AU-4",),
        Conditions(
            operations=_FUNDS | _ops(Operation.LOGIN, Operation.CHANGE_PROFILE),
            device_statuses=frozenset({DeviceStatus.NEW}),
        ),
        _CODES,
        obligations=frozenset({"bind_device", "risk_prompt"}),
        risk=RiskLevel.MEDIUM,
    ),
    _rule(
        "bind-device-code",
        ("AU-4",),
        Conditions(operations=_ops(Operation.BIND_DEVICE)),
        _KNOWLEDGE,
        _CODES,
        min_factors=2,
        obligations=frozenset({"bind_device"}),
    ),
    _rule(
        "trust-device-verified",
        ("AU-7",),
        Conditions(operations=_ops(Operation.TRUST_DEVICE)),
        _KNOWLEDGE,
        frozenset({_F.BIOMETRIC, _F.USBKEY_SIGNATURE}),
        min_factors=2,
    ),
    _rule(
        "trust-device-real-name",
        ("AU-7",),
        Conditions(operations=_ops(Operation.TRUST_DEVICE), real_name_verified=False),
        deny="trusted devices need real-name verification first",
    ),
    _rule(
        "change-profile-two-factors",
        ("AU-1",),
        Conditions(operations=_ops(Operation.CHANGE_PROFILE)),
        _KNOWLEDGE,
        frozenset({_F.SMS_CODE, _F.VOICE_CODE, _F.USBKEY_SIGNATURE, _F.PHONE_SHIELD_SIGNATURE}),
        min_factors=2,
    ),
)


def baseline_is_night(t: time) -> bool:
    """True if Beijing wall-clock time ``t`` is in the baseline night window."""
    start, end = BASELINE_NIGHT
    return start <= t < end
