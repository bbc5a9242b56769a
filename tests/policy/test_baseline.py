"""Issue 11 item 13: a policy file may only tighten the built-in baseline (AU-1, AU-2,
AU-5, UK-11); blacklists and hooks that raise deny; night is decided on the server's clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ebank_auth.errors import PolicyFileError
from ebank_auth.policy import (
    DEFAULT_TIMEZONE,
    AuthContext,
    Factor,
    Operation,
    Outcome,
    PolicyEngine,
    loads_policy,
)
from ebank_auth.policy.baseline import BASELINE_RULES
from ebank_auth.policy.context import FUNDS_OPERATIONS
from ebank_auth.transaction import Transaction, new_tx_id
from policy.helpers import DAY, NIGHT, ctx, day_clock

PW = "password"
HEAD = '[policy]\nname = "partial"\n'


def test_empty_login_table_still_needs_two_factors() -> None:
    """Attack: a policy file with an empty ``[operations.login]`` (a typo, a half-written
    file) let a customer log in with no factor at all."""
    engine = PolicyEngine(loads_policy(HEAD + "[operations.login]\n"), clock=day_clock)
    d = engine.decide(ctx(device_status="known", presented=[]))
    assert d.outcome is Outcome.STEP_UP, d
    assert not engine.decide(ctx(device_status="known", presented=[PW])).allowed
    assert engine.decide(ctx(device_status="known", presented=[PW, "totp"])).allowed


def test_password_only_transfer_file_cannot_move_millions() -> None:
    """Attack: a file with only ``transfer require=[["password"]]`` (no tiers) allowed a
    9,000,000 CNY transfer with the password alone."""
    text = HEAD + '[operations.transfer]\nrequire = [["password"]]\n'
    engine = PolicyEngine(loads_policy(text), clock=day_clock)
    big = ctx(operation="transfer", amount="9000000", presented=[PW])
    d = engine.decide(big)
    assert d.outcome is Outcome.STEP_UP, d
    assert "baseline.tier-4-very-large" in d.fired
    # the baseline's strongest tier: USB Key signature plus a code on a second channel
    assert not engine.decide(big.with_presented({Factor.PASSWORD, Factor.SMS_CODE})).allowed
    ok = big.with_presented({Factor.PASSWORD, Factor.USBKEY_SIGNATURE, Factor.SMS_CODE})
    assert engine.decide(ok).allowed
    assert "second_channel_confirmation" in engine.decide(ok).obligations


def test_partial_file_keeps_night_rule_and_corporate_certificate() -> None:
    """Attack: a file without the night rule or the corporate rule let a night login pass
    on a trusted device with a password, and a corporate payment pass without the USB Key."""
    text = HEAD + "[operations.login]\nrequire = [['password'], ['totp', 'trusted_device']]\n"
    text += "[operations.payment]\nrequire = [['password'], ['totp']]\n"
    engine = PolicyEngine(loads_policy(text), clock=day_clock)
    d = engine.decide(ctx(local_time=NIGHT, presented=[PW]))
    assert d.outcome is Outcome.STEP_UP and "baseline.night-login-code" in d.fired
    corp = ctx(operation="payment", amount="100", customer_type="corporate", presented=[PW, "totp"])
    d = engine.decide(corp)
    assert d.outcome is Outcome.STEP_UP and "baseline.corporate-funds-usbkey" in d.fired


def test_file_without_blacklist_rule_still_denies_blacklisted() -> None:
    """Attack: a file that lists blacklisted users but has no ``blacklisted = true`` rule
    let those users through."""
    text = HEAD + '[blacklist]\nusers = ["bad"]\n[operations.login]\n'
    engine = PolicyEngine(loads_policy(text), clock=day_clock)
    d = engine.decide(ctx(user="bad", presented=[PW, "usbkey_signature"]))
    assert d.outcome is Outcome.DENY and "baseline.blacklist-deny" in d.fired


class _Raising:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def match(self, c: AuthContext) -> str | None:
        raise self.exc


@pytest.mark.parametrize("exc", [RuntimeError("bug"), KeyError("x"), ConnectionError("down")])
def test_blacklist_raising_anything_denies(exc: Exception) -> None:
    """Attack: a blacklist backend raising a non-library exception (a driver's
    ConnectionError, a bug) escaped ``decide`` instead of denying; a caller that treats
    an exception as "no hit" then let a blacklisted payee through."""
    engine = PolicyEngine(blacklists=[_Raising(exc)], clock=day_clock)
    d = engine.decide(ctx(presented=[PW]))
    assert d.outcome is Outcome.DENY and "engine.blacklist-unavailable" in d.fired


@pytest.mark.parametrize("hit", [1, b"x", ["listed"], object()])
def test_blacklist_returning_nonsense_denies(hit: object) -> None:
    """A blacklist that answers something other than a reason or None is broken: deny."""

    class Odd:
        def match(self, c: AuthContext) -> object:
            return hit

    d = PolicyEngine(blacklists=[Odd()], clock=day_clock).decide(ctx(presented=[PW]))  # type: ignore[list-item]
    assert d.outcome is Outcome.DENY


def test_risk_hook_raising_anything_denies() -> None:
    def hook(c: AuthContext) -> float:
        raise ConnectionError("anti-fraud service down")

    d = PolicyEngine(risk_hooks=[hook], clock=day_clock).decide(ctx(presented=[PW]))
    assert d.outcome is Outcome.DENY


@pytest.mark.parametrize("rate", ["0", "-7.1", "NaN", "Infinity"])
def test_converter_returning_nonsense_denies(rate: str) -> None:
    """Attack: a converter answering 0 (or a negative amount) dropped a 9,000,000 USD
    transfer into the lowest tier."""
    engine = PolicyEngine(converter=lambda a, cur: a * Decimal(rate), clock=day_clock)
    d = engine.decide(ctx(operation="transfer", amount="9000000", currency="USD",
                          presented=[PW, "totp"]))  # fmt: skip
    assert d.outcome is Outcome.DENY


def test_night_is_decided_on_the_server_clock() -> None:
    """Attack: a transaction submitted at 02:30 server time claiming a 14:00 timestamp
    (``AuthContext.for_transaction`` takes the transaction's own time) skipped the
    night rule."""
    tx = Transaction(tx_id=new_tx_id(), tx_type="transfer", payer_account="6222000011112222",
                     payee_account="6222000033334444", payee_name="Zhang San",
                     amount=Decimal("100.00"), currency="CNY", timestamp=DAY)  # fmt: skip
    login = AuthContext(user="c1", operation=Operation.LOGIN, local_time=DAY,
                        device_status="trusted", presented={Factor.PASSWORD})  # fmt: skip
    engine = PolicyEngine(clock=lambda: NIGHT)
    d = engine.decide(login)
    assert d.outcome is Outcome.STEP_UP and "night-login-code" in d.fired
    from_tx = AuthContext.for_transaction(
        tx, "c1", operation=Operation.LOGIN, device_status="trusted", presented={Factor.PASSWORD}
    )
    assert from_tx.local_time == DAY  # the transaction's claimed time ...
    assert "night-login-code" in engine.decide(from_tx).fired  # ... does not lift the rule
    # a claimed time can only tighten: a night claim by day still needs the code
    by_day = PolicyEngine(clock=day_clock)
    assert "night-login-code" in by_day.decide(login.replace(local_time=NIGHT)).fired
    assert by_day.decide(login).allowed


def test_tier_currency_and_reserved_ids_refused() -> None:
    """Tiers must be in the baseline's currency (CNY); ``baseline.`` ids are reserved."""
    tiers = (
        '[operations.transfer]\n[amount_tiers]\ncurrency = "USD"\n'
        '[[amount_tiers.tier]]\nid = "all"\nfrom = "0"\nrequire = [["password"]]\n'
    )
    with pytest.raises(PolicyFileError, match="CNY"):
        loads_policy(HEAD + tiers)
    rule = '[operations.login]\n[[rules]]\nid = "baseline.x"\nrequire = [["totp"]]\n'
    with pytest.raises(PolicyFileError, match="reserved"):
        loads_policy(HEAD + rule)


# ------------------------------------------------------------------ the property

_OPS = [o.value for o in Operation]
_FACTORS = [f.value for f in Factor]
_clause = st.lists(st.sampled_from(_FACTORS), min_size=1, max_size=3, unique=True)


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


@st.composite
def policy_files(draw: st.DrawFn) -> str:
    lines = [HEAD]
    night = draw(
        st.sampled_from([None, ["01:00", "05:00"], ["22:00", "02:00"], ["03:00", "04:00"]])
    )
    if night:
        lines.append(f"night = {_toml_list(night)}\n")
    tz = draw(st.sampled_from([None, "UTC", "America/New_York", "Asia/Shanghai"]))
    if tz:
        lines.append(f'timezone = "{tz}"\n')
    if draw(st.booleans()):
        lines.append('[blacklist]\nusers = ["c2"]\n')
    for op in draw(st.lists(st.sampled_from(_OPS), min_size=1, max_size=6, unique=True)):
        clauses = draw(st.lists(_clause, max_size=2))
        body = ", ".join(_toml_list(c) for c in clauses)
        lines.append(f"[operations.{op}]\nrequire = [{body}]\n")
        lines.append(f"min_factors = {draw(st.integers(0, 2))}\n")
    if draw(st.booleans()):
        lines.append("[amount_tiers]\nexempt_same_customer = true\n")
        clauses: list[list[str]] = []
        bounds = sorted(draw(st.sets(st.integers(1, 2_000_000), max_size=2)))
        lows = [0, *bounds]
        for i, low in enumerate(lows):
            clauses = [*clauses, *draw(st.lists(_clause, max_size=1))]
            body = ", ".join(_toml_list(c) for c in clauses)
            to = f'to = "{lows[i + 1]}"\n' if i + 1 < len(lows) else ""
            lines.append(
                f'[[amount_tiers.tier]]\nid = "t{i}"\nfrom = "{low}"\n{to}require = [{body}]\n'
            )
    for i in range(draw(st.integers(0, 2))):
        deny = draw(st.booleans())
        when = draw(st.sampled_from(["{}", '{ operation = ["login"] }', "{ night = true }",
                                     '{ amount_at_least = "100" }', "{ risk_at_least = 50 }"]))  # fmt: skip
        if deny:
            lines.append(f'[[rules]]\nid = "r{i}"\nwhen = {when}\neffect = "deny"\n')
        else:
            body = _toml_list(draw(_clause))
            lines.append(f'[[rules]]\nid = "r{i}"\nwhen = {when}\nrequire = [{body}]\n')
    return "".join(lines)


# the reference: a policy whose own rules are the baseline's (so the property does not
# depend on the engine's built-in floor it is checking)
_BASELINE_ONLY = PolicyEngine(
    replace(
        loads_policy(HEAD + "".join(f"[operations.{op}]\n" for op in _OPS)),
        rules=BASELINE_RULES,
    ),
    clock=day_clock,
)


@st.composite
def contexts(draw: st.DrawFn) -> AuthContext:
    op = draw(st.sampled_from(list(Operation)))
    minutes = draw(st.integers(0, 24 * 60 - 1))
    return AuthContext(
        user=draw(st.sampled_from(["c1", "c2"])),
        operation=op,
        local_time=datetime(2026, 3, 10, tzinfo=DEFAULT_TIMEZONE) + timedelta(minutes=minutes),
        customer_type=draw(st.sampled_from(["personal", "corporate"])),
        device_status=draw(st.sampled_from(["new", "known", "trusted"])),
        real_name_verified=draw(st.booleans()),
        amount=(
            Decimal(draw(st.integers(1, 900_000_000))) / 100 if op in FUNDS_OPERATIONS else None
        ),
        same_customer=draw(st.booleans()),
        presented=draw(st.frozensets(st.sampled_from(list(Factor)))),
        risk_score=draw(st.sampled_from([0.0, 40.0, 95.0])),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_files(), contexts())
def test_any_accepted_file_is_at_least_as_strict_as_the_baseline(text: str, c: AuthContext) -> None:
    """Property: for every policy file the loader accepts, every decision is at least as
    strict as the baseline's for the same context (outcome rank, required factors, and an
    allow under the file is an allow under the baseline)."""
    try:
        policy = loads_policy(text)
    except PolicyFileError:
        assume(False)
        raise
    file_d = PolicyEngine(policy, clock=day_clock).decide(c)
    base_d = _BASELINE_ONLY.decide(c)
    assert file_d.outcome >= base_d.outcome, (file_d, base_d)
    assert file_d.required.implies(base_d.required)
    assert base_d.obligations <= file_d.obligations or file_d.outcome is Outcome.DENY


@settings(max_examples=200, deadline=None)
@given(contexts())
def test_default_policy_already_meets_the_baseline(c: AuthContext) -> None:
    """The shipped policy is at least the baseline everywhere, so the floor never has to
    step in (no ``baseline.*`` rule in its decisions)."""
    d = PolicyEngine(clock=day_clock).decide(c)
    assert not [f for f in d.fired if f.startswith("baseline.")], d.fired
