"""The default policy, rule by rule, and the engine's conflict resolution."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from ebank_auth.errors import AccessDenied, PolicyError, StoreUnavailable
from ebank_auth.policy import (
    AuthContext,
    Factor,
    Operation,
    Outcome,
    PolicyEngine,
    RiskLevel,
    default_policy,
)
from ebank_auth.policy.context import FUNDS_OPERATIONS
from policy.helpers import DAY, NIGHT, ctx, day_clock

ENGINE = PolicyEngine(clock=day_clock)
PW = "password"


def decide(**kw: object) -> object:
    return ENGINE.decide(ctx(**kw))


def test_default_policy_covers_every_operation() -> None:
    policy = default_policy()
    assert set(policy.operations) == set(Operation)
    assert policy.lockout.max_failures == 5
    assert policy.devices.max_trusted == 3 and policy.devices.trust_days == 180
    refs = {r for rule in (*policy.operations.values(), *policy.rules) for r in rule.refs}
    assert policy.tiers is not None
    refs |= {r for t in policy.tiers.tiers for r in t.refs}
    for req in ("AU-1", "AU-2", "AU-4", "AU-5", "AU-7", "AU-8", "AU-9", "AU-11", "UK-11"):
        assert req in refs


# ------------------------------------------------------------------ login (AU-1, AU-5)


def test_login_on_trusted_device_by_day_needs_password_only() -> None:
    d = ENGINE.decide(ctx(presented=[PW]))
    assert d.outcome is Outcome.ALLOW
    assert d.fired == ("operation.login",)


def test_login_password_alone_on_known_device_steps_up() -> None:
    d = ENGINE.decide(ctx(device_status="known", presented=[PW]))
    assert d.outcome is Outcome.STEP_UP
    assert len(d.missing) == 1 and Factor.SMS_CODE in d.missing[0]
    assert ENGINE.decide(ctx(device_status="known", presented=[PW, "totp"])).allowed


def test_trusted_device_factor_cannot_be_claimed() -> None:
    d = ENGINE.decide(ctx(device_status="known", presented=[PW, "trusted_device"]))
    assert d.outcome is Outcome.STEP_UP


def test_night_login_needs_sms_or_voice() -> None:
    d = ENGINE.decide(ctx(local_time=NIGHT, presented=[PW]))
    assert d.outcome is Outcome.STEP_UP
    assert "night-login-code" in d.fired and "AU-5" in d.refs
    assert d.missing == (frozenset({Factor.SMS_CODE, Factor.VOICE_CODE}),)
    assert not ENGINE.decide(ctx(local_time=NIGHT, presented=[PW, "totp"])).allowed
    assert ENGINE.decide(ctx(local_time=NIGHT, presented=[PW, "voice_code"])).allowed


def test_night_window_uses_policy_time_zone() -> None:
    # 18:30 UTC is 02:30 in Shanghai
    utc = datetime(2026, 3, 9, 18, 30, tzinfo=timezone.utc)
    assert "night-login-code" in ENGINE.decide(ctx(local_time=utc, presented=[PW])).fired
    # 06:00 local is already day
    six = datetime(2026, 3, 10, 6, 0, tzinfo=NIGHT.tzinfo)
    assert "night-login-code" not in ENGINE.decide(ctx(local_time=six, presented=[PW])).fired


def test_new_device_login_binds_and_warns() -> None:
    d = ENGINE.decide(ctx(device_status="new", presented=[PW, "sms_code"]))
    assert d.outcome is Outcome.ALLOW
    assert {"bind_device", "risk_prompt"} <= d.obligations
    assert d.risk_level is RiskLevel.MEDIUM
    assert "new-device-binding" in d.fired
    d = ENGINE.decide(ctx(device_status="new", presented=[PW, "totp"]))
    assert d.outcome is Outcome.STEP_UP


# ------------------------------------------------------------------ amounts (AU-2, UK-11)


@pytest.mark.parametrize(
    "amount, tier, enough, not_enough",
    [
        ("100", "tier-1-small", [PW, "totp"], [PW]),
        ("4999.99", "tier-1-small", [PW, "biometric"], [PW, "trusted_device"]),
        ("5000", "tier-2-medium", [PW, "sms_code"], [PW, "totp"]),
        ("49999.99", "tier-2-medium", [PW, "dynamic_token"], [PW, "biometric"]),
        ("50000", "tier-3-large", [PW, "phone_shield_signature"], [PW, "sms_code"]),
        (
            "1000000",
            "tier-4-very-large",
            [PW, "usbkey_signature", "voice_code"],
            [PW, "phone_shield_signature", "sms_code"],
        ),
    ],
)
def test_amount_tiers(amount: str, tier: str, enough: list[str], not_enough: list[str]) -> None:
    d = ENGINE.decide(ctx(operation="transfer", amount=amount, presented=enough))
    assert tier in d.fired
    assert d.outcome is Outcome.ALLOW, d.reasons
    assert ENGINE.decide(
        ctx(operation="transfer", amount=amount, presented=not_enough)
    ).outcome is (Outcome.STEP_UP)


def test_large_amount_obliges_second_channel_confirmation() -> None:
    d = ENGINE.decide(ctx(operation="payment", amount="80000", presented=[PW, "usbkey_signature"]))
    assert "second_channel_confirmation" in d.obligations


def test_own_account_transfer_is_exempt_from_tiers() -> None:
    d = ENGINE.decide(
        ctx(operation="transfer", amount="2000000", same_customer=True, presented=[PW])
    )
    assert d.outcome is Outcome.ALLOW
    assert not any(f.startswith("tier-") for f in d.fired)


def test_corporate_funds_need_usbkey_even_for_small_amounts() -> None:
    d = ENGINE.decide(
        ctx(operation="salary", amount="10", customer_type="corporate", presented=[PW, "sms_code"])
    )
    assert d.outcome is Outcome.STEP_UP
    assert "corporate-funds-hardware-certificate" in d.fired and "UK-11" in d.refs
    assert d.missing == (frozenset({Factor.USBKEY_SIGNATURE}),)
    assert ENGINE.decide(
        ctx(
            operation="salary",
            amount="10",
            customer_type="corporate",
            presented=[PW, "usbkey_signature"],
        )
    ).allowed


def test_corporate_own_account_transfer_still_signed() -> None:
    d = ENGINE.decide(
        ctx(
            operation="transfer",
            amount="10",
            customer_type="corporate",
            same_customer=True,
            presented=[PW],
        )
    )
    assert d.outcome is Outcome.STEP_UP


def test_foreign_currency_without_converter_is_denied() -> None:
    d = ENGINE.decide(ctx(operation="transfer", amount="10", currency="USD", presented=[PW]))
    assert d.outcome is Outcome.DENY
    assert "engine.currency-unsupported" in d.fired
    conv = PolicyEngine(clock=day_clock, converter=lambda amount, cur: amount * Decimal("7.1"))
    d = conv.decide(
        ctx(operation="transfer", amount="1000", currency="USD", presented=[PW, "sms_code"])
    )
    assert "tier-2-medium" in d.fired and d.allowed


# ------------------------------------------------------------------ blacklist and risk (AU-9)


def test_policy_blacklist_denies() -> None:
    from ebank_auth.policy import loads_policy
    from ebank_auth.policy.loader import default_policy_text

    text = (
        default_policy_text()
        .replace("users = []", 'users = ["bad"]')
        .replace("payees = []", 'payees = ["6222000011112222"]')
    )
    engine = PolicyEngine(loads_policy(text), clock=day_clock)
    d = engine.decide(ctx(user="bad", presented=[PW, "usbkey_signature"]))
    assert d.outcome is Outcome.DENY and "blacklist-deny" in d.fired
    with pytest.raises(AccessDenied, match="blacklist"):
        d.raise_if_denied()
    d = engine.decide(
        ctx(operation="transfer", amount="1", payee="6222000011112222", presented=[PW, "totp"])
    )
    assert d.outcome is Outcome.DENY


class _StoreBlacklist:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def match(self, c: AuthContext) -> str | None:
        if self.fail:
            raise StoreUnavailable()
        return "listed" if c.device_id == "stolen" else None


def test_pluggable_blacklist_and_fail_closed() -> None:
    engine = PolicyEngine(clock=day_clock, blacklists=[_StoreBlacklist()])
    assert engine.decide(ctx(device_id="stolen", presented=[PW])).outcome is Outcome.DENY
    assert engine.decide(ctx(presented=[PW])).allowed
    broken = PolicyEngine(clock=day_clock, blacklists=[_StoreBlacklist(fail=True)])
    d = broken.decide(ctx(presented=[PW]))
    assert d.outcome is Outcome.DENY and "engine.blacklist-unavailable" in d.fired


def test_risk_hook_steps_up_and_denies() -> None:
    def hook(score: float):  # type: ignore[no-untyped-def]
        return lambda c: score

    assert PolicyEngine(clock=day_clock, risk_hooks=[hook(10)]).decide(ctx(presented=[PW])).allowed
    d = PolicyEngine(clock=day_clock, risk_hooks=[hook(35)]).decide(ctx(presented=[PW]))
    assert d.outcome is Outcome.STEP_UP and "risk-elevated-step-up" in d.fired
    assert "risk_prompt" in d.obligations
    d = PolicyEngine(clock=day_clock, risk_hooks=[hook(65)]).decide(ctx(presented=[PW, "sms_code"]))
    assert d.outcome is Outcome.STEP_UP and d.risk_level is RiskLevel.HIGH
    assert (
        PolicyEngine(clock=day_clock, risk_hooks=[hook(65)])
        .decide(ctx(presented=[PW, "sms_code", "biometric"]))
        .allowed
    )
    d = PolicyEngine(clock=day_clock, risk_hooks=[hook(95)]).decide(
        ctx(presented=[PW, "sms_code", "biometric"])
    )
    assert d.outcome is Outcome.DENY and "risk-critical-deny" in d.fired


@pytest.mark.parametrize("bad", [lambda c: 1 / 0, lambda c: "high", lambda c: 101, lambda c: True])
def test_broken_risk_hook_denies(bad: object) -> None:
    d = PolicyEngine(clock=day_clock, risk_hooks=[bad]).decide(ctx(presented=[PW]))  # type: ignore[list-item]
    assert d.outcome is Outcome.DENY and "engine.risk-hook-failed" in d.fired


# ------------------------------------------------------------------ devices (AU-4, AU-7)


def test_trust_device_needs_liveness_or_usbkey_and_real_name() -> None:
    assert decide(operation="trust_device", presented=[PW, "sms_code"]).outcome is Outcome.STEP_UP
    assert decide(operation="trust_device", presented=[PW, "biometric"]).outcome is Outcome.ALLOW
    d = decide(
        operation="trust_device", real_name_verified=False, presented=[PW, "usbkey_signature"]
    )
    assert d.outcome is Outcome.DENY and "trusted-device-real-name-only" in d.fired


def test_bind_device_needs_code() -> None:
    d = decide(operation="bind_device", device_status="new", presented=[PW])
    assert d.outcome is Outcome.STEP_UP and "bind_device" in d.obligations
    assert decide(operation="bind_device", device_status="new", presented=[PW, "sms_code"]).allowed


# ------------------------------------------------------------------ context validation


def test_operation_missing_from_policy_is_denied() -> None:
    from ebank_auth.policy import loads_policy
    from ebank_auth.policy.loader import default_policy_text

    text = default_policy_text().replace("[operations.query]", "[operations.query_removed]")
    with pytest.raises(Exception, match="unknown operation"):
        loads_policy(text)
    text = default_policy_text().replace(
        '[operations.query]\ndescription = "balance and history look-ups inside a logged-in session"\n'
        'refs = ["AU-1"]\nrequire = []\n',
        "",
    )
    d = PolicyEngine(loads_policy(text), clock=day_clock).decide(ctx(operation="query"))
    assert d.outcome is Outcome.DENY and "engine.operation-not-permitted" in d.fired


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"operation": "transfer"}, "needs an amount"),
        ({"operation": "teleport"}, "operation"),
        ({"amount": 1.5}, "floats"),
        ({"amount": Decimal("-1")}, "positive"),
        ({"risk_score": 101}, "0 to 100"),
        ({"user": ""}, "user"),
        ({"local_time": datetime(2026, 1, 1)}, "must carry a time zone"),
        ({"presented": ["password", "carrier_pigeon"]}, "factor"),
    ],
)
def test_bad_contexts(kw: dict[str, object], words: str) -> None:
    values: dict[str, object] = {"user": "c1", "operation": "login", "local_time": DAY}
    values.update(kw)
    with pytest.raises(PolicyError, match=words):
        AuthContext(**values)  # type: ignore[arg-type]


def test_context_json_round_trip() -> None:
    c = ctx(operation="transfer", amount="12.50", presented=[PW, "sms_code"], same_customer=True)
    back = AuthContext.from_dict(c.to_dict())
    assert back == c
    with pytest.raises(PolicyError, match="unknown context key"):
        AuthContext.from_dict({**c.to_dict(), "colour": "red"})
    with pytest.raises(PolicyError, match="decimal string"):
        AuthContext.from_dict({**c.to_dict(), "amount": 12.5})


def test_context_for_transaction() -> None:
    from ebank_auth.transaction import Transaction

    tx = Transaction(
        "t1",
        "transfer",
        "6222021234567890",
        "6222029876543210",
        "张三",
        Decimal("70000"),
        "CNY",
        DAY,
    )
    c = AuthContext.for_transaction(tx, "c1", presented=frozenset({Factor.PASSWORD}))
    assert c.operation is Operation.TRANSFER and c.amount == Decimal("70000")
    assert c.payee == tx.payee_account and c.tx_id == "t1"
    assert "tier-3-large" in ENGINE.decide(c).fired


def test_every_funds_operation_uses_tiers() -> None:
    for op in FUNDS_OPERATIONS:
        d = ENGINE.decide(ctx(operation=op.value, amount="60000", presented=[PW]))
        assert "tier-3-large" in d.fired


def test_decision_is_audited_with_environment_and_fired_rules() -> None:
    from ebank_auth.audit import AuditLog, HmacSm3Key
    from ebank_auth.policy.auditing import record_decision
    from ebank_auth.store import MemoryStore
    from ebank_auth.transaction import Transaction

    log = AuditLog(MemoryStore(), HmacSm3Key(b"k" * 32))
    tx = Transaction(
        "t9",
        "transfer",
        "6222021234567890",
        "6222029876543210",
        "张三",
        Decimal("60000"),
        "CNY",
        DAY,
    )
    c = AuthContext.for_transaction(
        tx,
        "c1",
        ip="10.1.2.3",
        device_id="dev-9",
        client_type="android",
        os_version="14",
        device_status="trusted",
        presented=frozenset({Factor.PASSWORD}),
    )
    d = ENGINE.decide(c)
    record_decision(log, d, tx=tx)
    rec = next(log.records())
    assert rec["event"] == "transfer" and rec["outcome"] == "step_up"
    assert rec["rules"] == list(d.fired) and "tier-3-large" in rec["rules"]
    assert (rec["ip"], rec["device"], rec["client_type"], rec["os_version"]) == (
        "10.1.2.3",
        "dev-9",
        "android",
        "14",
    )
    assert rec["tx"]["payee"] == "622202******3210"
    assert "second_channel_confirmation" in rec["details"]["obligations"]
    assert log.check().ok
