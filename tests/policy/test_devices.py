"""Devices (AU-3, AU-4, AU-7): binding needs verification, ≤3 trusted, oldest
last login evicted, trust lapses after 180 days."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebank_auth.audit import AuditLog, HmacSm3Key
from ebank_auth.errors import AccessDenied, ConfigurationError, PolicyError
from ebank_auth.policy import DeviceStatus, PolicyEngine, default_policy
from ebank_auth.policy.devices import DeviceRegistry
from ebank_auth.store import MemoryStore
from plugins.store_backends import FakeClock
from policy.helpers import ctx, day_clock

ENGINE = PolicyEngine(clock=day_clock)
DAY = 86400.0


def bind_decision(device: str, user: str = "c1") -> object:
    return ENGINE.decide(
        ctx(
            user=user,
            operation="bind_device",
            device_id=device,
            device_status="new",
            presented=["password", "sms_code"],
        )
    )


def trust_decision(
    device: str, factor: str = "biometric", user: str = "c1", **kw: object
) -> object:
    return ENGINE.decide(
        ctx(
            user=user,
            operation="trust_device",
            device_id=device,
            device_status="known",
            presented=["password", factor],
            **kw,
        )
    )


def registry(clock: FakeClock | None = None) -> DeviceRegistry:
    return DeviceRegistry.from_policy(MemoryStore(clock=clock or FakeClock()), default_policy())


def test_bind_requires_an_allowed_bind_decision() -> None:
    reg = registry()
    assert reg.status("c1", "d1") is DeviceStatus.NEW
    unverified = ENGINE.decide(
        ctx(operation="bind_device", device_id="d1", device_status="new", presented=["password"])
    )
    with pytest.raises(AccessDenied, match="allowed policy decision"):
        reg.bind("c1", "d1", unverified)  # type: ignore[arg-type]
    with pytest.raises(AccessDenied, match="another operation, customer or device"):
        reg.bind("c1", "d2", bind_decision("d1"))  # type: ignore[arg-type]
    with pytest.raises(AccessDenied, match="another operation"):
        reg.bind("c2", "d1", bind_decision("d1"))  # type: ignore[arg-type]
    rec = reg.bind(
        "c1",
        "d1",
        bind_decision("d1"),
        client_type="android",  # type: ignore[arg-type]
        os_version="14",
        ip="10.0.0.9",
    )
    assert rec.history[0].os_version == "14" and rec.history[0].ip == "10.0.0.9"
    assert reg.status("c1", "d1") is DeviceStatus.KNOWN


def test_trust_requires_liveness_or_usbkey_and_real_name() -> None:
    reg = registry()
    reg.bind("c1", "d1", bind_decision("d1"))  # type: ignore[arg-type]
    with pytest.raises(AccessDenied):
        reg.trust("c1", "d1", trust_decision("d1", factor="sms_code"))  # type: ignore[arg-type]
    with pytest.raises(AccessDenied):
        reg.trust("c1", "d1", trust_decision("d1", real_name_verified=False))  # type: ignore[arg-type]
    reg.trust("c1", "d1", trust_decision("d1", factor="usbkey_signature"))  # type: ignore[arg-type]
    assert reg.status("c1", "d1") is DeviceStatus.TRUSTED
    with pytest.raises(PolicyError, match="bind the device"):
        reg.trust("c1", "d9", trust_decision("d9"))  # type: ignore[arg-type]


def test_trust_lapses_after_180_days() -> None:
    clock = FakeClock()
    reg = registry(clock)
    reg.bind("c1", "d1", bind_decision("d1"))  # type: ignore[arg-type]
    reg.trust("c1", "d1", trust_decision("d1"))  # type: ignore[arg-type]
    clock.advance(180 * DAY - 1)
    assert reg.status("c1", "d1") is DeviceStatus.TRUSTED
    reg.record_login("c1", "d1")  # logging in does not extend the trust
    clock.advance(1)
    assert reg.status("c1", "d1") is DeviceStatus.KNOWN
    assert reg.trusted("c1") == []


def test_fourth_trusted_device_evicts_oldest_last_login_and_is_audited() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    audit = AuditLog(store, HmacSm3Key(b"k" * 32))
    reg = DeviceRegistry(store, audit=audit)
    for d in ("a", "b", "c", "d"):
        reg.bind("c1", d, bind_decision(d))  # type: ignore[arg-type]
    for d in ("a", "b", "c"):
        reg.trust("c1", d, trust_decision(d))  # type: ignore[arg-type]
        clock.advance(10)
    reg.record_login("c1", "a")
    clock.advance(10)
    reg.record_login("c1", "c")
    clock.advance(10)
    reg.record_login("c1", "b")
    result = reg.trust("c1", "d", trust_decision("d"))  # type: ignore[arg-type]
    assert result.evicted is not None and result.evicted.device_id == "a"
    assert {d.device_id for d in reg.trusted("c1")} == {"b", "c", "d"}
    assert reg.status("c1", "a") is DeviceStatus.KNOWN
    rec = [r for r in audit.records() if r["event"] == "device_trusted"][-1]
    assert rec["details"] == {"evicted": "a"}
    assert audit.check().ok


def test_revoke_and_unbind() -> None:
    reg = registry()
    reg.bind("c1", "d1", bind_decision("d1"))  # type: ignore[arg-type]
    reg.trust("c1", "d1", trust_decision("d1"))  # type: ignore[arg-type]
    reg.revoke_trust("c1", "d1")
    assert reg.status("c1", "d1") is DeviceStatus.KNOWN
    reg.unbind("c1", "d1")
    assert reg.status("c1", "d1") is DeviceStatus.NEW
    assert reg.record_login("c1", "d1") is None


@pytest.mark.parametrize(
    "kw",
    [{"max_trusted": 4}, {"max_trusted": 0}, {"trust_days": 181}, {"verify_with": ["sms_code"]}],
)
def test_bounds(kw: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        DeviceRegistry(MemoryStore(), **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ property

DEVICES = ["d0", "d1", "d2", "d3", "d4", "d5"]
steps = st.lists(
    st.tuples(
        st.sampled_from(["trust", "login", "wait"]),
        st.sampled_from(DEVICES),
        st.integers(1, 100 * 86400),
    ),
    min_size=1,
    max_size=25,
)


@given(steps)
def test_eviction_keeps_at_most_three_and_removes_the_oldest_login(
    ops: list[tuple[str, str, int]],
) -> None:
    clock = FakeClock()
    reg = registry(clock)
    for d in DEVICES:
        reg.bind("c1", d, bind_decision(d))  # type: ignore[arg-type]
    for op, device, seconds in ops:
        if op == "wait":
            clock.advance(seconds)
            continue
        clock.advance(1)
        if op == "login":
            reg.record_login("c1", device)
            continue
        now = clock()
        before = {d.device_id: d for d in reg.trusted("c1") if d.device_id != device}
        result = reg.trust("c1", device, trust_decision(device))  # type: ignore[arg-type]
        after = {d.device_id for d in reg.trusted("c1")}
        assert len(after) <= 3
        assert device in after
        if len(before) >= 3:
            assert result.evicted is not None
            evicted = before[result.evicted.device_id]
            oldest = min(
                (d.last_login if d.last_login is not None else float("-inf"))
                for d in before.values()
            )
            got = evicted.last_login if evicted.last_login is not None else float("-inf")
            assert got == oldest
            assert after == (set(before) - {evicted.device_id}) | {device}
        else:
            assert result.evicted is None
            assert after == set(before) | {device}
        assert all(now - d.trusted_at < 180 * 86400 for d in reg.trusted("c1") if d.trusted_at)
