"""Security invariants of the policy engine, as hypothesis properties.

* raising the amount, adding risk or moving to night time never weakens the
  decision (outcome rank and required factors);
* removing a presented factor never turns deny (or step-up) into allow;
* the strictest rule always wins: the decision of a policy equals the strictest
  combination of the decisions each rule makes alone, and adding a rule never
  weakens a decision.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from ebank_auth.policy import (
    DEFAULT_TIMEZONE,
    AccessChannel,
    AuthContext,
    CustomerType,
    Decision,
    DeviceStatus,
    Factor,
    Operation,
    Outcome,
    PolicyEngine,
    Requirement,
    default_policy,
)
from ebank_auth.policy.context import FUNDS_OPERATIONS
from ebank_auth.policy.model import Conditions, Effect, Rule
from policy.helpers import day_clock

ENGINE = PolicyEngine(clock=day_clock)

factor_sets = st.frozensets(st.sampled_from(list(Factor)))
amounts = st.integers(min_value=1, max_value=5_000_000_00).map(lambda c: Decimal(c) / 100)
day_times = st.builds(
    lambda d, minutes: (
        datetime(2026, 1, 1, tzinfo=DEFAULT_TIMEZONE) + timedelta(days=d, minutes=minutes)
    ),
    st.integers(0, 400),
    st.integers(6 * 60, 24 * 60 - 1),
)


@st.composite
def contexts(draw: st.DrawFn, funds: bool | None = None) -> AuthContext:
    if funds is None:
        op = draw(st.sampled_from(list(Operation)))
    elif funds:
        op = draw(st.sampled_from(sorted(FUNDS_OPERATIONS)))
    else:
        op = draw(st.sampled_from([o for o in Operation if o not in FUNDS_OPERATIONS]))
    return AuthContext(
        user=draw(st.sampled_from(["c1", "c2"])),
        operation=op,
        local_time=draw(day_times),
        customer_type=draw(st.sampled_from(list(CustomerType))),
        channel=draw(st.sampled_from(list(AccessChannel))),
        device_status=draw(st.sampled_from(list(DeviceStatus))),
        real_name_verified=draw(st.booleans()),
        amount=draw(amounts) if op in FUNDS_OPERATIONS else None,
        same_customer=draw(st.booleans()),
        presented=draw(factor_sets),
        risk_score=draw(st.floats(0, 100)),
    )


def at_least_as_strict(strong: Decision, weak: Decision) -> bool:
    return strong.outcome >= weak.outcome and strong.required.implies(weak.required)


@given(contexts(funds=True), amounts)
def test_raising_the_amount_never_weakens(c: AuthContext, other: Decimal) -> None:
    assert c.amount is not None
    low, high = sorted((c.amount, other))
    d_low = ENGINE.decide(c.replace(amount=low))
    d_high = ENGINE.decide(c.replace(amount=high))
    assert at_least_as_strict(d_high, d_low)


@given(contexts(), st.floats(0, 100))
def test_adding_risk_never_weakens(c: AuthContext, other: float) -> None:
    low, high = sorted((c.risk_score, other))
    assert at_least_as_strict(
        ENGINE.decide(c.replace(risk_score=high)), ENGINE.decide(c.replace(risk_score=low))
    )


@given(contexts(), st.integers(0, 6 * 60 - 1))
def test_night_time_never_weakens(c: AuthContext, minute: int) -> None:
    night = c.local_time.replace(hour=minute // 60, minute=minute % 60)
    assert at_least_as_strict(ENGINE.decide(c.replace(local_time=night)), ENGINE.decide(c))


@given(contexts(), st.data())
def test_removing_a_factor_never_allows_more(c: AuthContext, data: st.DataObject) -> None:
    full = ENGINE.decide(c)
    if not c.presented:
        return
    drop = data.draw(st.sampled_from(sorted(c.presented)))
    fewer = ENGINE.decide(c.with_presented(c.presented - {drop}))
    assert fewer.outcome >= full.outcome
    if full.outcome is Outcome.DENY:
        assert fewer.outcome is Outcome.DENY


@given(contexts(), factor_sets)
def test_more_factors_never_deny_more(c: AuthContext, extra: frozenset[Factor]) -> None:
    # the required set does not depend on what was presented
    a, b = ENGINE.decide(c), ENGINE.decide(c.with_presented(c.presented | extra))
    assert a.required == b.required and a.fired == b.fired
    assert b.outcome <= a.outcome


# ------------------------------------------------------------------ strictest wins

requirements = st.builds(
    lambda clauses, mf, mc: Requirement(frozenset(clauses), mf, mc),
    st.lists(st.frozensets(st.sampled_from(list(Factor)), min_size=1, max_size=3), max_size=3),
    st.integers(0, 3),
    st.integers(0, 3),
)
conditions = st.builds(
    Conditions,
    operations=st.none() | st.frozensets(st.sampled_from(list(Operation)), min_size=1),
    customer_types=st.none() | st.frozensets(st.sampled_from(list(CustomerType)), min_size=1),
    device_statuses=st.none() | st.frozensets(st.sampled_from(list(DeviceStatus)), min_size=1),
    night=st.booleans(),
    amount_at_least=st.none() | amounts,
    risk_at_least=st.none() | st.floats(0, 100),
    same_customer=st.none() | st.booleans(),
    real_name_verified=st.none() | st.booleans(),
)
rules = st.builds(
    lambda i, when, deny, req: Rule(
        id=f"r{i}",
        when=when,
        effect=Effect.DENY if deny else Effect.REQUIRE,
        requirement=Requirement() if deny else req,
    ),
    st.integers(0, 10**6),
    conditions,
    st.booleans(),
    requirements,
)


def engine_with(rule_list: list[Rule]) -> PolicyEngine:
    unique = [replace(r, id=f"{r.id}-{n}") for n, r in enumerate(rule_list)]
    return PolicyEngine(replace(default_policy(), rules=tuple(unique)), clock=day_clock)


@given(st.lists(rules, max_size=6), contexts())
def test_strictest_rule_wins(rule_list: list[Rule], c: AuthContext) -> None:
    combined = engine_with(rule_list).decide(c)
    alone = [engine_with([r]).decide(c) for r in rule_list]
    base = engine_with([]).decide(c)
    parts = [base, *alone]
    # deny wins
    assert (combined.outcome is Outcome.DENY) == any(d.outcome is Outcome.DENY for d in parts)
    # the requirement is the union of the parts
    union = Requirement()
    for d in parts:
        union = union.union(d.required)
    assert combined.required.implies(union) and union.implies(combined.required)
    for d in parts:
        assert combined.outcome >= d.outcome
    if combined.outcome is not Outcome.DENY:
        effective = c.presented - {Factor.TRUSTED_DEVICE}
        if c.device_status is DeviceStatus.TRUSTED:
            effective |= {Factor.TRUSTED_DEVICE}
        assert (combined.outcome is Outcome.ALLOW) == union.is_satisfied_by(effective)


@given(st.lists(rules, max_size=5), rules, contexts())
def test_adding_a_rule_never_weakens(rule_list: list[Rule], extra: Rule, c: AuthContext) -> None:
    before = engine_with(rule_list).decide(c)
    after = engine_with([*rule_list, extra]).decide(c)
    assert at_least_as_strict(after, before)


@given(requirements, requirements)
def test_union_is_stricter_than_each(a: Requirement, b: Requirement) -> None:
    u = a.union(b)
    assert u.implies(a) and u.implies(b)
