"""AuthContext.local_time: now by the server clock unless given, never naive (AU-5)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ebank_auth.errors import PolicyError
from ebank_auth.policy import DEFAULT_TIMEZONE, AuthContext, Operation, PolicyEngine


def test_default_is_now_by_the_server_clock_and_aware() -> None:
    before = datetime.now(timezone.utc)
    ctx = AuthContext(user="c1", operation=Operation.LOGIN)
    after = datetime.now(timezone.utc)
    assert ctx.local_time.utcoffset() is not None
    assert before <= ctx.local_time <= after  # taken at construction, not at import
    assert ctx.local_time.tzinfo == DEFAULT_TIMEZONE


def test_naive_time_still_refused() -> None:
    with pytest.raises(PolicyError, match="time zone"):
        AuthContext(user="c1", operation=Operation.LOGIN, local_time=datetime(2026, 3, 10, 2))


def test_default_time_decided_in_the_policy_zone() -> None:
    """The night rule sees the policy's local hour for the default time, the same as for
    an explicit now in the policy's zone (no naive guess, no UTC hour)."""
    engine = PolicyEngine()
    for _ in range(3):  # retry if the clock crossed a night boundary in between
        explicit = engine.decide(
            AuthContext(
                user="c1",
                operation=Operation.LOGIN,
                local_time=datetime.now(engine.policy.timezone),
            )
        )
        implicit = engine.decide(AuthContext(user="c1", operation=Operation.LOGIN))
        if explicit.fired == implicit.fired:
            break
    assert explicit.fired == implicit.fired


def test_from_dict_without_time_is_now_in_the_given_zone() -> None:
    zone = timezone(timedelta(hours=-5))
    ctx = AuthContext.from_dict({"user": "c1", "operation": "login"}, default_tz=zone)  # type: ignore[arg-type]
    assert ctx.local_time.utcoffset() == timedelta(hours=-5)
