"""Opening stores by URL (the scheme registry) and the one key naming scheme."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ebank_auth.store as store_mod
from ebank_auth.errors import ConfigurationError, StoreUnavailable
from ebank_auth.store import (
    MemoryStore,
    SQLiteStore,
    Store,
    check_namespace,
    open_store,
    register_store_scheme,
    store_key,
    store_schemes,
)
from plugins.store_backends import FakeClock


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test vanish after it."""
    monkeypatch.setattr(store_mod, "_OPENERS", dict(store_mod._OPENERS))


def test_builtin_schemes() -> None:
    builtin = {"memory", "sqlite", "redis", "rediss", "unix", "postgresql", "postgres"}
    assert builtin | {"redis+cluster", "rediss+cluster"} <= set(store_schemes())
    assert isinstance(open_store("memory:"), MemoryStore)
    assert isinstance(open_store("MEMORY://"), MemoryStore)


def test_sqlite_url_round_trip(tmp_path: Path) -> None:
    clock = FakeClock()
    first = open_store(f"sqlite://{tmp_path}/s.db?busy_timeout=2", clock=clock)
    assert isinstance(first, SQLiteStore) and first.clock is clock and first.busy_timeout == 2.0
    first.put_if_absent("k", b"v")
    first.close()
    second = open_store(f"sqlite://{tmp_path}/s.db")
    assert second.get("k") == b"v"  # same file, same state
    second.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://db/ebank", "'mysql' is not known"),
        ("no-scheme-at-all", "is not a store URL"),
        ("", "is not a store URL"),
        ("memory:/somewhere", "takes no path"),
        ("sqlite:relative.db", "sqlite:///abs/path.db"),
        ("sqlite://", "has no path"),
        ("sqlite:///x.db?fsync=1", "unknown sqlite store option"),
        ("sqlite:///x.db?busy_timeout=soon", "number of seconds"),
    ],
)
def test_bad_urls_are_configuration_errors(url: str, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected) as info:
        open_store(url)
    if "not known" in expected or "not a store URL" in expected:
        for scheme in ("memory:", "sqlite:", "redis:", "postgresql:"):
            assert scheme in info.value.message  # the user learns what is possible


def test_registered_scheme_is_opened(registry: None) -> None:
    seen: list[tuple[str, object]] = []

    def opener(url: str, clock: object) -> Store:
        seen.append((url, clock))
        return MemoryStore()

    register_store_scheme("CockroachDB", opener)
    assert "cockroachdb" in store_schemes()
    clock = FakeClock()
    assert isinstance(open_store("cockroachdb://db.bank/ebank", clock=clock), MemoryStore)
    assert seen == [("cockroachdb://db.bank/ebank", clock)]


def test_registering_twice_needs_replace(registry: None) -> None:
    with pytest.raises(ConfigurationError, match="already registered"):
        register_store_scheme("sqlite", lambda url, clock: MemoryStore())
    register_store_scheme("sqlite", lambda url, clock: MemoryStore(), replace=True)
    assert isinstance(open_store("sqlite:///nowhere/x.db"), MemoryStore)


@pytest.mark.parametrize("scheme", ["", "1db", "pg sql", "pg:", None])
def test_bad_scheme_names_refused(registry: None, scheme: object) -> None:
    with pytest.raises(ConfigurationError):
        register_store_scheme(scheme, lambda url, clock: MemoryStore())  # type: ignore[arg-type]


def test_opener_failures_are_typed(registry: None) -> None:
    def bad_value(url: str, clock: object) -> Store:
        raise ValueError("port is not a number")

    def unreachable(url: str, clock: object) -> Store:
        raise ConnectionRefusedError("connection refused")

    register_store_scheme("bad", bad_value)
    register_store_scheme("down", unreachable)
    with pytest.raises(ConfigurationError, match="port is not a number"):
        open_store("bad://x")
    with pytest.raises(StoreUnavailable, match="connection refused"):
        open_store("down://x")


def test_store_key_escapes_separator() -> None:
    assert store_key("otp", "code", "alice", "login") == "otp:code:alice:login"
    assert store_key("otp", "code", "a:b", "c") != store_key("otp", "code", "a", "b:c")
    assert store_key("otp", "a%3Ab") != store_key("otp", "a:b")


_parts = st.lists(st.text(alphabet=st.sampled_from("ab:%3A"), max_size=4), max_size=4)


@given(_parts, _parts)
def test_store_key_is_injective(a: list[str], b: list[str]) -> None:
    assert (store_key("ns", *a) == store_key("ns", *b)) == (a == b)


@pytest.mark.parametrize("namespace", ["", "a:b", ":x", "-x", "x" * 65, "with space"])
def test_bad_namespaces_refused(namespace: str) -> None:
    with pytest.raises(ConfigurationError, match="namespace"):
        check_namespace(namespace)
    with pytest.raises(ConfigurationError):
        store_key(namespace, "k")


def test_namespaces_keep_services_apart() -> None:
    from ebank_auth.policy import LoginLockout

    store = MemoryStore()
    bank1 = LoginLockout(store, namespace="bank1/lockout")
    bank2 = LoginLockout(store, namespace="bank2/lockout")
    bank1.attempt("alice", lambda: False)
    assert bank1.status("alice").failures == 1
    assert bank2.status("alice").failures == 0
    with pytest.raises(ConfigurationError, match="namespace"):
        LoginLockout(store, namespace="lockout:")


def test_bad_redis_url_never_shows_the_password() -> None:
    pytest.importorskip("redis")
    with pytest.raises(ConfigurationError) as info:
        open_store("redis://:hunter2secret@127.0.0.1:notaport/0")
    assert "hunter2secret" not in str(info.value)
    assert "redis://" in str(info.value)
