"""The rules engine: one :class:`Decision` per :class:`AuthContext`.

Evaluation, for a validated :class:`Policy`:

1. The operation's base rule (``[operations.<op>]``) fires; an operation the
   policy does not list is denied (fail closed).
2. For funds operations the amount tier fires (unless the transfer is between
   the customer's own accounts and the policy exempts those).
3. Every conditional rule whose conditions hold fires.
4. Conflicts resolve to the strictest outcome: any deny wins; otherwise the
   required factors are the union of all fired requirements, and the decision
   is *allow* if the presented factors meet it, else *step-up* naming what is
   missing.

Facts the rules test are derived once: night (local time in the policy's time
zone), amount in the tier currency (through an optional converter), risk score
(the context's own and every risk hook's, the highest wins) and blacklist hits.
A risk hook or blacklist that fails makes the decision *deny* (fail closed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from typing import Any, Protocol

from ebank_auth.errors import AccessDenied, EbankAuthError
from ebank_auth.policy.context import AuthContext, DeviceStatus
from ebank_auth.policy.factors import Factor, Requirement
from ebank_auth.policy.loader import default_policy
from ebank_auth.policy.model import Effect, Facts, Policy, RiskLevel, Rule

__all__ = [
    "Blacklist",
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
#: converts ``amount`` in ``currency`` into the tier currency; raise if unknown
CurrencyConverter = Callable[[Decimal, str], Decimal]


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
    """Decides for contexts under one policy.  Thread-safe (no mutable state)."""

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        blacklists: Sequence[Blacklist] = (),
        risk_hooks: Sequence[RiskHook] = (),
        converter: CurrencyConverter | None = None,
    ) -> None:
        self.policy = policy or default_policy()
        self.blacklists: tuple[Blacklist, ...] = (self.policy.blacklist, *blacklists)
        self.risk_hooks = tuple(risk_hooks)
        self.converter = converter
        self._rules = self.policy.rules

    # ------------------------------------------------------------------ facts
    def _facts(self, ctx: AuthContext, reasons: list[str], fired: list[str]) -> Facts:
        policy = self.policy
        local = ctx.local_time.astimezone(policy.timezone)
        night = policy.is_night(local.time())

        amount: Decimal | None = None
        tiers = policy.tiers
        if ctx.amount is not None:
            if tiers is None or ctx.currency == tiers.currency:
                amount = ctx.amount
            elif self.converter is not None:
                try:
                    amount = Decimal(self.converter(ctx.amount, ctx.currency))
                except Exception as exc:  # any converter failure: fail closed
                    log.warning("currency conversion failed: %s", exc)
                    fired.append("engine.currency-unsupported")
                    reasons.append(f"cannot convert {ctx.currency} to {tiers.currency}")
            else:
                fired.append("engine.currency-unsupported")
                reasons.append(
                    f"amounts in {ctx.currency} cannot be assessed: the policy's tiers are in "
                    f"{tiers.currency} and no currency converter is configured"
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
            except EbankAuthError as exc:  # store down: fail closed
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

        tiers = policy.tiers
        if (
            tiers is not None
            and ctx.operation in tiers.operations
            and not (tiers.exempt_same_customer and ctx.same_customer)
        ):
            if facts.amount is None:
                if not deny:  # already explained by the currency reason otherwise
                    fired.append("engine.amount-missing")
                    reasons.append("a funds operation needs an amount")
                deny = True
            else:
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
