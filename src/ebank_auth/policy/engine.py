"""The rules engine: one :class:`Decision` per :class:`AuthContext`.

Evaluation, for a validated :class:`Policy`:

1. The operation's base rule (``[operations.<op>]``) fires; an operation the
   policy does not list is denied (fail closed).
2. For funds operations the amount tier fires (unless the transfer is between
   the customer's own accounts and the policy exempts those).
3. Every conditional rule whose conditions hold fires.
4. The built-in baseline (:mod:`ebank_auth.policy.baseline`) applies on top: each
   matching baseline rule that asks for more than the file already did is added
   (``baseline.<name>`` in ``fired``), so a policy file can only tighten it.
5. Conflicts resolve to the strictest outcome: any deny wins; otherwise the
   required factors are the union of all fired requirements, and the decision
   is *allow* if the presented factors meet it, else *step-up* naming what is
   missing.

Facts the rules test are derived once: night (the **server's** clock, in the
policy's window and time zone and in the baseline's 00:00-06:00 Beijing window; a
context time inside a night window adds the night rules too but can never lift
them), amount in CNY (through an optional converter), risk score (the context's
own and every risk hook's, the highest wins) and blacklist hits.  A risk hook,
blacklist or converter that raises anything or answers nonsense makes the
decision *deny* (fail closed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from enum import IntEnum
from typing import Any, Protocol

from ebank_auth.errors import AccessDenied, ConfigurationError
from ebank_auth.policy.baseline import (
    BASELINE_CURRENCY,
    BASELINE_RULES,
    BASELINE_TIMEZONE,
    baseline_is_night,
)
from ebank_auth.policy.context import FUNDS_OPERATIONS, AuthContext, DeviceStatus
from ebank_auth.policy.factors import Factor, Requirement
from ebank_auth.policy.loader import default_policy
from ebank_auth.policy.model import Effect, Facts, Policy, RiskLevel, Rule

__all__ = [
    "Blacklist",
    "Clock",
    "CurrencyConverter",
    "Decision",
    "Outcome",
    "PolicyEngine",
    "RiskHook",
]

log = logging.getLogger(__name__)


class Outcome(IntEnum):
    """Ordered from weakest to strictest."""

    ALLOW = 0
    STEP_UP = 1
    DENY = 2


class Blacklist(Protocol):
    """A source of blacklist hits (AU-9): returns a reason, or None."""

    def match(self, ctx: AuthContext) -> str | None: ...


#: anti-fraud hook: a risk score from 0 to 100 for the context
RiskHook = Callable[[AuthContext], float]
#: converts ``amount`` in ``currency`` into CNY (the tier currency); raise if unknown
CurrencyConverter = Callable[[Decimal, str], Decimal]
#: the server's clock: a timezone-aware "now"
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Decision:
    """The result: outcome, what is required and missing, and why."""

    outcome: Outcome
    required: Requirement  # union of every fired requirement
    missing: tuple[frozenset[Factor], ...]  # clauses the presented factors do not meet yet
    fired: tuple[str, ...]  # ids of the rules that fired, in evaluation order
    refs: tuple[str, ...]  # requirement IDs of the fired rules (sorted, unique)
    obligations: frozenset[str]  # actions the caller must carry out (bind_device, …)
    risk_level: RiskLevel
    risk_score: float
    reasons: tuple[str, ...]  # why it was denied / what to do
    context: AuthContext

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW

    def raise_if_denied(self) -> None:
        """Raise :class:`AccessDenied` for a deny decision."""
        if self.outcome is Outcome.DENY:
            raise AccessDenied("; ".join(self.reasons) or None)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form for the audit log and ``policy explain``."""
        return {
            "outcome": self.outcome.name.lower(),
            "required": self.required.to_json(),
            "required_text": self.required.describe(),
            "missing": [sorted(f.value for f in c) for c in self.missing],
            "fired": list(self.fired),
            "refs": list(self.refs),
            "obligations": sorted(self.obligations),
            "risk_level": self.risk_level.name.lower(),
            "risk_score": self.risk_score,
            "reasons": list(self.reasons),
        }


_EMPTY = Requirement()


class PolicyEngine:
    """Decides for contexts under one policy.  Thread-safe (no mutable state).

    ``clock`` is the server's clock (default: the system clock); the night rules are
    decided on it, never on a time the client or the transaction claims.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        blacklists: Sequence[Blacklist] = (),
        risk_hooks: Sequence[RiskHook] = (),
        converter: CurrencyConverter | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.policy = policy or default_policy()
        if self.policy.tiers is not None and self.policy.tiers.currency != BASELINE_CURRENCY:
            raise ConfigurationError(
                f"the policy's amount tiers are in {self.policy.tiers.currency}: tiers must be "
                f"in {BASELINE_CURRENCY}; convert other currencies with converter="
            )
        self.blacklists: tuple[Blacklist, ...] = (self.policy.blacklist, *blacklists)
        self.risk_hooks = tuple(risk_hooks)
        self.converter = converter
        self.clock: Clock = clock or _utc_now
        self._rules = self.policy.rules

    # ------------------------------------------------------------------ facts
    def _is_night(self, t: datetime) -> bool:
        policy = self.policy
        return policy.is_night(t.astimezone(policy.timezone).time()) or baseline_is_night(
            t.astimezone(BASELINE_TIMEZONE).time()
        )

    def _facts(self, ctx: AuthContext, reasons: list[str], fired: list[str]) -> Facts:
        night = self._is_night(ctx.local_time)  # a claimed time may only add the night rules
        try:
            now = self.clock()
            if not isinstance(now, datetime) or now.utcoffset() is None:
                raise TypeError("the clock must return a timezone-aware datetime")
            night = night or self._is_night(now)
        except Exception as exc:  # no trustworthy time: fail closed
            log.warning("server clock failed: %s", exc)
            fired.append("engine.clock-failed")
            reasons.append("the server time is unavailable: try again later")

        amount: Decimal | None = None
        if ctx.amount is not None:
            if ctx.currency == BASELINE_CURRENCY:
                amount = ctx.amount
            elif self.converter is not None:
                try:
                    converted = self.converter(ctx.amount, ctx.currency)
                    if isinstance(converted, bool) or not isinstance(converted, (Decimal, int)):
                        raise TypeError(f"converter returned {type(converted).__name__}")
                    cny = Decimal(converted)
                    if not cny.is_finite() or cny <= 0:
                        raise ValueError(f"converter returned {cny}, not a positive amount")
                    amount = cny
                except Exception as exc:  # any converter failure: fail closed
                    log.warning("currency conversion failed: %s", exc)
                    fired.append("engine.currency-unsupported")
                    reasons.append(f"cannot convert {ctx.currency} to {BASELINE_CURRENCY}")
            else:
                fired.append("engine.currency-unsupported")
                reasons.append(
                    f"amounts in {ctx.currency} cannot be assessed: the amount tiers are in "
                    f"{BASELINE_CURRENCY} and no currency converter is configured"
                )

        score = float(ctx.risk_score)
        for hook in self.risk_hooks:
            try:
                value = hook(ctx)
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise TypeError(f"risk hook returned {type(value).__name__}")
                if not 0 <= value <= 100:
                    raise ValueError(f"risk hook returned {value}, outside 0-100")
            except Exception as exc:  # a broken anti-fraud hook must not let anything through
                log.warning("risk hook failed: %s", exc)
                fired.append("engine.risk-hook-failed")
                reasons.append("the anti-fraud check failed: try again later")
                continue
            score = max(score, float(value))

        blacklisted = False
        for bl in self.blacklists:
            try:
                hit = bl.match(ctx)
                if hit is not None and not isinstance(hit, str):
                    raise TypeError(f"blacklist returned {type(hit).__name__}, not a reason")
            except Exception as exc:  # store down, driver error, bug: fail closed
                log.warning("blacklist check failed: %s", exc)
                fired.append("engine.blacklist-unavailable")
                reasons.append("the blacklist could not be checked: try again later")
                continue
            if hit:
                blacklisted = True
                break
        return Facts(night=night, amount=amount, risk_score=score, blacklisted=blacklisted)

    # ------------------------------------------------------------------ decide
    def decide(self, ctx: AuthContext) -> Decision:
        """Evaluate every rule for ``ctx`` and combine them strictest-first."""
        policy = self.policy
        fired: list[str] = []
        reasons: list[str] = []
        facts = self._facts(ctx, reasons, fired)
        deny = bool(reasons)

        required = _EMPTY
        obligations: set[str] = set()
        risk = RiskLevel.LOW
        refs: set[str] = set()

        base = policy.operations.get(ctx.operation)
        if base is None:
            fired.append("engine.operation-not-permitted")
            reasons.append(f"the policy does not permit the operation {ctx.operation.value!r}")
            deny = True
        else:
            fired.append(base.id)
            required = required.union(base.requirement)
            obligations.update(base.obligations)
            refs.update(base.refs)

        if ctx.operation in FUNDS_OPERATIONS and facts.amount is None:
            if not deny:  # already explained by the currency reason otherwise
                fired.append("engine.amount-missing")
                reasons.append("a funds operation needs an amount")
            deny = True
        tiers = policy.tiers
        if (
            tiers is not None
            and ctx.operation in tiers.operations
            and not (tiers.exempt_same_customer and ctx.same_customer)
            and facts.amount is not None
        ):
            tier = tiers.tier_for(facts.amount)
            fired.append(tier.id)
            required = required.union(tier.requirement)
            refs.update(tier.refs)

        rule: Rule
        for rule in self._rules:
            if not rule.when.matches(ctx, facts):
                continue
            fired.append(rule.id)
            refs.update(rule.refs)
            if rule.risk > risk:
                risk = rule.risk
            if rule.effect is Effect.DENY:
                deny = True
                reasons.append(rule.message or f"denied by rule {rule.id}")
            else:
                required = required.union(rule.requirement)
                obligations.update(rule.obligations)

        # the built-in floor: only what it adds is recorded, so a policy at least as
        # strict as the baseline (the shipped one) decides exactly as before
        for rule in BASELINE_RULES:
            if not rule.when.matches(ctx, facts):
                continue
            if rule.effect is Effect.DENY:
                if not deny:
                    deny = True
                    fired.append(rule.id)
                    refs.update(rule.refs)
                    reasons.append(rule.message)
                    risk = max(risk, rule.risk)
                continue
            if required.implies(rule.requirement) and rule.obligations <= obligations:
                continue
            fired.append(rule.id)
            refs.update(rule.refs)
            risk = max(risk, rule.risk)
            required = required.union(rule.requirement)
            obligations.update(rule.obligations)

        presented = ctx.presented
        if ctx.device_status is DeviceStatus.TRUSTED:
            presented = presented | {Factor.TRUSTED_DEVICE}
        else:
            presented = presented - {Factor.TRUSTED_DEVICE}

        if deny:
            outcome = Outcome.DENY
            missing: tuple[frozenset[Factor], ...] = ()
        elif required.is_satisfied_by(presented):
            outcome = Outcome.ALLOW
            missing = ()
        else:
            outcome = Outcome.STEP_UP
            missing = required.missing(presented)
            reasons.append("additional verification required: " + required.describe())
        return Decision(
            outcome=outcome,
            required=required,
            missing=missing,
            fired=tuple(fired),
            refs=tuple(sorted(refs)),
            obligations=frozenset(obligations),
            risk_level=risk,
            risk_score=facts.risk_score,
            reasons=tuple(reasons),
            context=ctx,
        )
