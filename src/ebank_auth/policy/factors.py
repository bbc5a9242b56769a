"""Authentication factors, their classes (AU-1) and required-factor sets.

Every authenticator the library knows declares its :class:`FactorClass`
(knowledge / possession / inherence) and a strength from 1 (weakest) to 4.
A :class:`Requirement` says which factors must have been verified: a conjunction
of *clauses* (each satisfied by any one of its factors) plus a minimum number of
distinct factors and of distinct factor classes.  Requirements combine by
:meth:`Requirement.union` — the strictest combination — which is how conflicting
policy rules resolve.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from itertools import combinations

__all__ = [
    "FACTORS",
    "Factor",
    "FactorClass",
    "FactorInfo",
    "Requirement",
    "factor_classes",
]


class FactorClass(str, Enum):
    """The three independent factor classes of AU-1."""

    KNOWLEDGE = "knowledge"  # something the customer knows (passwords)
    POSSESSION = "possession"  # something the customer holds (token, phone, bound device)
    INHERENCE = "inherence"  # something the customer is (biometric with liveness)


class Factor(str, Enum):
    """Authenticators a decision can require; the value is the policy-file name."""

    PASSWORD = "password"  # noqa: S105 - login / transaction password typed normally
    SOFT_KEYBOARD_PASSWORD = "soft_keyboard_password"  # noqa: S105 - typed on the dynamic soft keyboard
    SMS_CODE = "sms_code"  # one-time code sent by SMS to the registered phone
    VOICE_CODE = "voice_code"  # one-time code read out in a voice call
    TOTP = "totp"  # RFC 6238 app / token code
    DYNAMIC_TOKEN = "dynamic_token"  # noqa: S105 - GM/T 0021 hardware one-time-password token
    USBKEY_SIGNATURE = "usbkey_signature"  # SM2 signature by a USB Key / V盾 certificate
    PHONE_SHIELD_SIGNATURE = "phone_shield_signature"  # SM2 signature by the phone shield
    BIOMETRIC = "biometric"  # biometric match with liveness result supplied by the app
    TRUSTED_DEVICE = "trusted_device"  # a registered, still-trusted device (AU-7)
    PASSKEY = "passkey"  # WebAuthn assertion, user present (a touch), not user-verified
    PASSKEY_UV = "passkey_uv"  # WebAuthn assertion with user verification (device PIN/biometric)


@dataclass(frozen=True)
class FactorInfo:
    """What a factor is: its class, strength (1-4) and properties.

    ``also`` names further classes one verification of the factor proves at once: a
    passkey used with user verification is possession (the authenticator) plus the
    authenticator's own check of the customer, counted as inherence.  It stays *one*
    factor for ``min_factors``."""

    factor: Factor
    factor_class: FactorClass
    strength: int  # 1 weakest … 4 strongest
    hardware: bool  # key or secret held in dedicated hardware (USB Key, SE/TEE, OTP token)
    transaction_bound: bool  # proves the customer saw and approved the transaction data
    also: frozenset[FactorClass] = frozenset()

    @property
    def classes(self) -> frozenset[FactorClass]:
        """Every class one verification of this factor counts for."""
        return self.also | {self.factor_class}


FACTORS: dict[Factor, FactorInfo] = {
    info.factor: info
    for info in (
        FactorInfo(Factor.PASSWORD, FactorClass.KNOWLEDGE, 1, False, False),
        FactorInfo(Factor.SOFT_KEYBOARD_PASSWORD, FactorClass.KNOWLEDGE, 1, False, False),
        FactorInfo(Factor.SMS_CODE, FactorClass.POSSESSION, 2, False, True),
        FactorInfo(Factor.VOICE_CODE, FactorClass.POSSESSION, 2, False, True),
        FactorInfo(Factor.TOTP, FactorClass.POSSESSION, 2, False, False),
        FactorInfo(Factor.DYNAMIC_TOKEN, FactorClass.POSSESSION, 2, True, False),
        FactorInfo(Factor.USBKEY_SIGNATURE, FactorClass.POSSESSION, 4, True, True),
        FactorInfo(Factor.PHONE_SHIELD_SIGNATURE, FactorClass.POSSESSION, 3, True, True),
        FactorInfo(Factor.BIOMETRIC, FactorClass.INHERENCE, 3, False, False),
        FactorInfo(Factor.TRUSTED_DEVICE, FactorClass.POSSESSION, 1, False, False),
        # a passkey signs a random challenge, never the transaction: not transaction-bound;
        # not `hardware` either, since a synced passkey may live in a cloud keychain
        FactorInfo(Factor.PASSKEY, FactorClass.POSSESSION, 2, False, False),
        FactorInfo(
            Factor.PASSKEY_UV,
            FactorClass.POSSESSION,
            3,
            False,
            False,
            also=frozenset({FactorClass.INHERENCE}),
        ),
    )
}

_ALL_FACTORS: tuple[Factor, ...] = tuple(Factor)


def factor_classes(factors: Iterable[Factor]) -> frozenset[FactorClass]:
    """The distinct classes the given factors belong to (a passkey with user
    verification counts for possession and inherence)."""
    out: frozenset[FactorClass] = frozenset()
    for f in factors:
        out |= FACTORS[f].classes
    return out


@dataclass(frozen=True)
class Requirement:
    """Factors that must have been verified.

    ``clauses``: each clause is a set of alternatives, one of which must be
    present; ``min_factors`` / ``min_classes``: how many distinct factors and
    factor classes the presented set must contain.  The empty requirement is
    satisfied by anything.
    """

    clauses: frozenset[frozenset[Factor]] = frozenset()
    min_factors: int = 0
    min_classes: int = 0

    @classmethod
    def of(
        cls,
        *clauses: Iterable[Factor],
        min_factors: int = 0,
        min_classes: int = 0,
    ) -> Requirement:
        """Build from clauses given as iterables of factors."""
        return cls(frozenset(frozenset(c) for c in clauses), min_factors, min_classes)

    def union(self, other: Requirement) -> Requirement:
        """The strictest combination: every clause of both, the larger minimums."""
        if other is self or not (other.clauses or other.min_factors or other.min_classes):
            return self
        return Requirement(
            self.clauses | other.clauses,
            max(self.min_factors, other.min_factors),
            max(self.min_classes, other.min_classes),
        )

    def is_satisfied_by(self, presented: frozenset[Factor]) -> bool:
        """True if the presented (verified) factors meet every part."""
        for clause in self.clauses:
            if clause.isdisjoint(presented):
                return False
        if len(presented) < self.min_factors:
            return False
        return not (self.min_classes and len(factor_classes(presented)) < self.min_classes)

    def missing(self, presented: frozenset[Factor]) -> tuple[frozenset[Factor], ...]:
        """Clauses not yet satisfied (sorted for stable output)."""
        return tuple(
            sorted(
                (c for c in self.clauses if c.isdisjoint(presented)),
                key=lambda c: sorted(f.value for f in c),
            )
        )

    def implies(self, other: Requirement) -> bool:
        """True if every factor set satisfying ``self`` also satisfies ``other``
        (``self`` is at least as strict).  Exact: checks every subset of factors."""
        return _implies(self, other)

    def is_satisfiable(self) -> bool:
        """True if some set of known factors meets the requirement."""
        return self.is_satisfied_by(frozenset(_ALL_FACTORS))

    def describe(self) -> str:
        """Human-readable form, e.g. ``(password|soft_keyboard_password) + (usbkey_signature)``."""
        parts = [
            "(" + "|".join(sorted(f.value for f in c)) + ")"
            for c in sorted(self.clauses, key=lambda c: sorted(f.value for f in c))
        ]
        if self.min_factors:
            parts.append(f"at least {self.min_factors} factors")
        if self.min_classes:
            parts.append(f"at least {self.min_classes} factor classes")
        return " + ".join(parts) if parts else "nothing"

    def to_json(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "clauses": [
                sorted(f.value for f in c)
                for c in sorted(self.clauses, key=lambda c: sorted(f.value for f in c))
            ],
            "min_factors": self.min_factors,
            "min_classes": self.min_classes,
        }


@lru_cache(maxsize=4096)
def _implies(a: Requirement, b: Requirement) -> bool:
    n = len(_ALL_FACTORS)
    for size in range(n + 1):
        for combo in combinations(_ALL_FACTORS, size):
            s = frozenset(combo)
            if a.is_satisfied_by(s) and not b.is_satisfied_by(s):
                return False
    return True
