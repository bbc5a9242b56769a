"""Hypothesis properties of SMS/voice codes: never accepted twice, never after expiry,
never for another transaction, never after the try limit; daily caps never exceeded."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.errors import OtpError, RateLimited
from ebank_auth.otp import OtpSettings
from ebank_auth.otp.settings import day_window, resolve_timezone
from ebank_auth.store import MemoryStore
from plugins.otp_helpers import PHONES, last_code, make_service, tx
from plugins.store_backends import FakeClock, StoreFactory

_actions = st.lists(
    st.one_of(
        st.tuples(st.just("right"), st.integers(0, 2)),  # right code, tx 0..2 (1 = issued tx)
        st.tuples(st.just("wrong"), st.integers(1, 999_999)),
        st.tuples(st.just("tick"), st.sampled_from([0, 1, 10, 29, 30, 59, 60, 61])),
    ),
    min_size=1,
    max_size=12,
)


def _run(store_factory: object, actions: list[tuple[str, int]]) -> None:
    clock = FakeClock()
    store = store_factory(clock)  # type: ignore[operator]
    with tempfile.TemporaryDirectory() as tmp:
        service, gateway = make_service(store, Path(tmp))
        issued = service.issue("alice", "transaction", transaction=tx(1))
        code = last_code(gateway, PHONES["alice"])
        accepted = 0
        tries = 0
        for kind, arg in actions:
            if kind == "tick":
                clock.advance(arg)
                continue
            guess = code if kind == "right" else f"{(int(code) + arg) % 1_000_000:06d}"
            digest = tx(arg) if kind == "right" else tx(1)
            live = clock() < issued.expires_at
            tries_before = tries
            must_accept = (
                guess == code and digest == tx(1) and live and accepted == 0 and tries_before < 3
            )
            try:
                service.verify("alice", "transaction", guess, digest)
            except OtpError:
                assert not must_accept, "a valid code was refused"

                if live and accepted == 0:
                    tries += 1
                continue
            tries += 1
            accepted += 1
            # the acceptance was legitimate on every count
            assert accepted == 1, "accepted twice"
            assert live, "accepted after expiry"
            assert guess == code and digest == tx(1), "accepted a wrong code or transaction"
            assert tries_before < 3, "accepted after the try limit"
    store.close()


@settings(max_examples=120, deadline=None)
@given(actions=_actions)
def test_code_properties_memory(actions: list[tuple[str, int]]) -> None:
    _run(lambda clock: MemoryStore(clock=clock), actions)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=_actions)
def test_code_properties_every_backend(
    store_backend: StoreFactory, actions: list[tuple[str, int]]
) -> None:
    _run(store_backend.fresh, actions)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["alice", "bob", "carol"]), st.integers(0, 7200)),
        min_size=1,
        max_size=40,
    ),
    limit_user=st.integers(1, 5),
    limit_phone=st.integers(1, 6),
)
def test_daily_caps_never_exceeded(
    steps: list[tuple[str, int]], limit_user: int, limit_phone: int
) -> None:
    clock = FakeClock(1768017600.0 + 9 * 3600)  # 21:00 Shanghai: runs cross midnight
    cfg = OtpSettings(
        resend_cooldown=0,
        daily_limit_per_user=limit_user,
        daily_limit_per_phone=limit_phone,
        test_mode=True,
    )
    tz = resolve_timezone(cfg.timezone)
    with tempfile.TemporaryDirectory() as tmp:
        service, _ = make_service(MemoryStore(clock=clock), Path(tmp), cfg)
        per_user: dict[tuple[str, str], int] = {}
        per_phone: dict[tuple[str, str], int] = {}
        for user, gap in steps:
            clock.advance(gap)
            day, _ = day_window(clock(), tz)
            try:
                service.issue(user, "login")
            except RateLimited:
                continue
            per_user[(day, user)] = per_user.get((day, user), 0) + 1
            key = (day, PHONES[user])
            per_phone[key] = per_phone.get(key, 0) + 1
            assert per_user[(day, user)] <= limit_user
            assert per_phone[key] <= limit_phone
            # a refusal never consumes: the user counter is exactly what was sent
            assert service.sent_today(user) == per_user[(day, user)]
