"""Context builders shared by the policy tests."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from ebank_auth.policy import DEFAULT_TIMEZONE, AuthContext, Factor

DAY = datetime(2026, 3, 10, 14, 0, tzinfo=DEFAULT_TIMEZONE)


def day_clock() -> datetime:
    """A server clock fixed at 14:00 Beijing time, so results do not depend on when tests run."""
    return DAY


NIGHT = datetime(2026, 3, 10, 2, 30, tzinfo=DEFAULT_TIMEZONE)


def ctx(**kw: Any) -> AuthContext:
    values: dict[str, Any] = {
        "user": "c1",
        "operation": "login",
        "local_time": DAY,
        "device_status": "trusted",
        "device_id": "dev-1",
        "ip": "10.0.0.1",
    }
    values.update(kw)
    if "amount" in values and isinstance(values["amount"], (str, int)):
        values["amount"] = Decimal(values["amount"])
    if "presented" in values:
        values["presented"] = frozenset(Factor(f) for f in values["presented"])
    return AuthContext(**values)
