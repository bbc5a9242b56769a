"""The passkey factors in the policy (issue 14 item 2).

``passkey`` is possession; ``passkey_uv`` (the authenticator verified the customer) is
possession plus inherence, still one factor.  Both count as the second login factor
(AU-1).  WebAuthn shows the customer nothing of a transaction, so a passkey never
stands in for the transaction-bound or hardware factor the tiers from 5,000 CNY ask for
(USB Key, phone shield, SMS/voice code bound to the transaction, dynamic token).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebank_auth.policy import (
    Factor,
    FactorClass,
    Outcome,
    PolicyEngine,
    Requirement,
    loads_policy,
)
from ebank_auth.policy.context import FUNDS_OPERATIONS
from ebank_auth.policy.factors import FACTORS, factor_classes
from policy.helpers import ctx, day_clock

ENGINE = PolicyEngine(clock=day_clock)
PASSKEYS = frozenset({Factor.PASSKEY, Factor.PASSKEY_UV})
#: what the tiers from 5,000 CNY accept besides the transaction password (baseline tier 2)
BINDING = frozenset(
    {
        Factor.SMS_CODE,
        Factor.VOICE_CODE,
        Factor.DYNAMIC_TOKEN,
        Factor.USBKEY_SIGNATURE,
        Factor.PHONE_SHIELD_SIGNATURE,
    }
)


def test_passkey_classes() -> None:
    assert FACTORS[Factor.PASSKEY].classes == {FactorClass.POSSESSION}
    assert FACTORS[Factor.PASSKEY_UV].classes == {FactorClass.POSSESSION, FactorClass.INHERENCE}
    assert not FACTORS[Factor.PASSKEY].transaction_bound
    assert not FACTORS[Factor.PASSKEY_UV].transaction_bound
    assert factor_classes({Factor.PASSWORD, Factor.PASSKEY_UV}) == set(FactorClass)


@pytest.mark.parametrize("passkey", ["passkey", "passkey_uv"])
def test_password_and_a_passkey_log_in(passkey: str) -> None:
    d = ENGINE.decide(ctx(presented={"password", passkey}))
    assert d.outcome is Outcome.ALLOW, d.reasons
    assert "AU-1" in d.refs


@pytest.mark.parametrize("passkey", ["passkey", "passkey_uv"])
def test_a_passkey_alone_does_not_log_in(passkey: str) -> None:
    d = ENGINE.decide(ctx(presented={passkey}))
    assert d.outcome is Outcome.STEP_UP
    assert frozenset({Factor.PASSWORD, Factor.SOFT_KEYBOARD_PASSWORD}) in d.missing


def test_uv_counts_as_a_third_class_but_one_factor() -> None:
    policy = loads_policy(
        """
[policy]
name = "three classes"
schema = 1
[operations.login]
require = [["password"], ["passkey", "passkey_uv"]]
min_classes = 3
[operations.query]
require = [["password"], ["passkey_uv"]]
min_factors = 3
"""
    )
    engine = PolicyEngine(policy, clock=day_clock)
    known = {"device_status": "known"}  # no trusted-device factor added by the engine
    assert (
        engine.decide(ctx(**known, presented={"password", "passkey_uv"})).outcome is Outcome.ALLOW
    )
    assert engine.decide(ctx(**known, presented={"password", "passkey"})).outcome is Outcome.STEP_UP
    # one passkey with UV is one factor, not two
    q = engine.decide(ctx(**known, operation="query", presented={"password", "passkey_uv"}))
    assert q.outcome is Outcome.STEP_UP
    assert Requirement.of(min_factors=2).is_satisfied_by(
        frozenset({Factor.PASSWORD, Factor.PASSKEY_UV})
    )
    assert not Requirement.of(min_factors=2).is_satisfied_by(frozenset({Factor.PASSKEY_UV}))


def test_small_transfer_takes_a_user_verified_passkey_only() -> None:
    small = {"operation": "transfer", "amount": "100", "payee": "p"}
    assert ENGINE.decide(ctx(**small, presented={"password", "passkey_uv"})).allowed
    d = ENGINE.decide(ctx(**small, presented={"password", "passkey"}))
    assert d.outcome is Outcome.STEP_UP


@pytest.mark.parametrize("amount", ["5000", "49999.99", "50000", "2000000"])
def test_a_passkey_never_replaces_a_transaction_bound_factor(amount: str) -> None:
    d = ENGINE.decide(
        ctx(
            operation="transfer",
            amount=amount,
            payee="p",
            presented={"password", "passkey_uv", "biometric", "totp"},
        )
    )
    assert d.outcome is Outcome.STEP_UP
    assert not any(PASSKEYS & clause for clause in d.missing)


@given(
    op=st.sampled_from(sorted(FUNDS_OPERATIONS)),
    amount=st.integers(5000_00, 5_000_000_00).map(lambda c: Decimal(c) / 100),
    presented=st.frozensets(st.sampled_from(list(Factor))),
)
def test_from_tier_2_an_allowed_transfer_always_has_a_binding_factor(
    op: object, amount: Decimal, presented: frozenset[Factor]
) -> None:
    c = ctx(operation=op, amount=amount, payee="p", presented={f.value for f in presented})
    d = ENGINE.decide(c)
    if d.allowed:
        assert presented & BINDING, d.fired
        # and the passkey was never the deciding factor
        without = ctx(
            operation=op,
            amount=amount,
            payee="p",
            presented={f.value for f in presented - PASSKEYS},
        )
        assert ENGINE.decide(without).allowed


def test_a_policy_file_cannot_put_passkeys_on_large_transfers() -> None:
    policy = loads_policy(
        """
[policy]
name = "too loose"
schema = 1
[operations.transfer]
require = [["password"], ["passkey", "passkey_uv"]]
"""
    )
    engine = PolicyEngine(policy, clock=day_clock)
    d = engine.decide(
        ctx(operation="transfer", amount="20000", payee="p", presented={"password", "passkey_uv"})
    )
    assert d.outcome is Outcome.STEP_UP
    assert "baseline.tier-2-medium" in d.fired
