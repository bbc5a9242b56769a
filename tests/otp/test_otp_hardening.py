"""Issue 11 items 5, 7, 9-12: attacks on one-time codes and authenticators.

Each test encodes one attack from the review; its docstring says which.  They run on
real stores (memory, SQLite, a real redis-server) and the real file gateway.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from ebank_auth.errors import (
    CodeAttemptsExceeded,
    CodeExpired,
    CodeInvalid,
    ConfigurationError,
    EncodingError,
    OtpError,
    RateLimited,
    StoreUnavailable,
)
from ebank_auth.otp import (
    AuthenticatorKind,
    AuthenticatorService,
    AuthenticatorSettings,
    CodeService,
    DeliveryChannel,
    FileGateway,
    MappingPhoneRegistry,
    OtpAlgorithm,
    OtpSettings,
    SecretSealer,
    hotp_code,
    sm3_otp,
)
from ebank_auth.store import MemoryStore, Store
from ebank_auth.transaction import Transaction
from plugins.otp_helpers import PHONES, SERVER_KEY, last_code, make_service
from plugins.store_backends import FakeClock, StoreFactory

NOON_SHANGHAI = 1768017600.0
T0 = 1_700_000_000.0


def _transaction(amount: str = "5000.00", tx_id: str = "T1") -> Transaction:
    return Transaction(
        tx_id=tx_id,
        tx_type="transfer",
        payer_account="6222000011112222",
        payee_account="6222000033334444",
        payee_name="张三",
        amount=Decimal(amount),
        currency="CNY",
        timestamp=datetime(2026, 1, 10, 4, 0, tzinfo=timezone.utc),
    )


def _other(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# ----------------------------------------------------------------------- item 5


SPELLINGS = (
    "13800000001",
    "+8613800000001",
    "+86 138 0000 0001",
    "008613800000001",
    "138-0000-0001",
    "(+86) 138 0000 0001",
)


def test_phone_cap_counts_every_spelling_of_one_number(tmp_path: Path) -> None:
    """Attack: six customers (or one customer's record edited six times) registered with
    six spellings of one handset's number; the per-phone daily cap was keyed on the raw
    string, so the handset received 6 x 10 codes.  All spellings are one E.164 number
    and share one cap."""
    clock = FakeClock(NOON_SHANGHAI)
    registry = MappingPhoneRegistry({f"user{i}": p for i, p in enumerate(SPELLINGS)})
    gateway = FileGateway(tmp_path / "out")
    settings = OtpSettings(daily_limit_per_user=10, daily_limit_per_phone=10)
    service = CodeService(MemoryStore(clock=clock), gateway, registry, SERVER_KEY, settings)
    delivered = 0
    for _round in range(10):
        for i in range(len(SPELLINGS)):
            try:
                service.issue(f"user{i}", "login")
                delivered += 1
            except RateLimited:
                pass
            clock.advance(61)
    assert delivered == 10
    # what the gateway saw is one number in E.164 form
    assert {m.phone for m in gateway.messages()} == {"+86138****0001"}


@pytest.mark.parametrize("bad", ["not a number", "12345", "+86 1", "1380000000123456789", ""])
def test_unparseable_registered_number_is_refused(tmp_path: Path, bad: str) -> None:
    """A registry entry that is not a valid phone number never gets a code: typed error,
    no cap consumed, nothing sent."""
    store = MemoryStore(clock=FakeClock(NOON_SHANGHAI))
    gateway = FileGateway(tmp_path / "out")
    service = CodeService(store, gateway, MappingPhoneRegistry({"u": bad}), SERVER_KEY)
    with pytest.raises((EncodingError, OtpError)):
        service.issue("u", "login")
    assert service.sent_today("u") == 0
    assert gateway.messages() == []


def test_phone_argument_is_compared_as_e164(tmp_path: Path) -> None:
    """The caller's ``phone=`` check compares numbers, not spellings: another spelling of
    the registered number is the same phone; a different number is refused."""
    clock = FakeClock(NOON_SHANGHAI)
    service, _gateway = make_service(MemoryStore(clock=clock), tmp_path / "out")
    service.issue("alice", "login", phone="+86 138-0000-0001")
    clock.advance(61)
    with pytest.raises(OtpError, match="registered"):
        service.issue("alice", "login", phone="+86 138-0000-0002")


# ----------------------------------------------------------------------- item 7


def test_stepping_the_clock_back_does_not_revive_an_expired_code_sqlite(tmp_path: Path) -> None:
    """Attack: two app processes share a SQLite store; the code expires, then one
    process's wall clock is stepped back (NTP step, VM restore) into the validity
    window and the expired code verifies.  The store refuses to run on a clock behind
    the time it has already seen."""
    from ebank_auth.store import open_store

    clock = FakeClock(NOON_SHANGHAI)
    url = f"sqlite://{tmp_path / 's.db'}"
    service, gateway = make_service(open_store(url, clock=clock), tmp_path / "out")
    service.issue("alice", "login")
    code = last_code(gateway, PHONES["alice"])
    clock.advance(120)
    with pytest.raises(CodeExpired):
        service.verify("alice", "login", code)
    clock.set(NOON_SHANGHAI + 10)  # stepped back into the validity window
    with pytest.raises((CodeExpired, StoreUnavailable)):
        service.verify("alice", "login", code)


def test_verifier_behind_the_issue_time_is_refused(tmp_path: Path) -> None:
    """Attack: the verifying process's clock is behind the issuing process's (here by an
    hour) on a store whose high-water mark it has not seen yet; the code would live an
    hour longer.  A verifier whose time is before the code's issue time refuses."""
    issuer_clock = FakeClock(NOON_SHANGHAI)
    store = MemoryStore(clock=issuer_clock)
    service, gateway = make_service(store, tmp_path / "out")
    service.issue("alice", "login")
    code = last_code(gateway, PHONES["alice"])
    behind = make_service(store, tmp_path / "out")[0]
    behind.clock = lambda: NOON_SHANGHAI - 3600.0
    with pytest.raises((CodeExpired, StoreUnavailable)):
        behind.verify("alice", "login", code)


def test_redis_expiry_uses_the_server_clock(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: Redis scripts took the client's clock, so an app node whose wall clock
    is behind accepts codes the others consider expired.  Without an injected clock a
    Redis store takes time from the server (TIME), whatever the client's clock says."""
    import time

    from ebank_auth.store import open_store

    url = f"{redis_url}?prefix=clk{int(time.time() * 1000)}:"
    honest = open_store(url)
    service, gateway = make_service(honest, tmp_path / "out")
    issued = service.issue("alice", "login")
    code = last_code(gateway, PHONES["alice"])
    assert abs(issued.issued_at - time.time()) < 60
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)  # this node runs ahead
    ahead = open_store(url)
    assert abs(ahead.clock() - real_time()) < 60  # the store's clock is the server's
    ahead_service = make_service(ahead, tmp_path / "out")[0]
    assert ahead_service.verify("alice", "login", code).code_id == issued.code_id
    honest.close()
    ahead.close()


# ----------------------------------------------------------------------- item 9


def _wrong(seed: bytes, at: float) -> str:
    valid = {hotp_code(seed, int(at // 30) + d, 6, OtpAlgorithm.SHA1) for d in (-1, 0, 1)}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in valid)


def _seed(b32: str) -> bytes:
    import base64

    return base64.b32decode(b32 + "=" * (-len(b32) % 8))


def test_totp_brute_force_is_bounded_per_day_and_locks(store_backend: StoreFactory) -> None:
    """Attack: 5 failures per fixed 900 s window reset by themselves, so an attacker
    got ~480 guesses a day by waiting out each window.  With escalating back-off and a
    lock after ``lock_after`` failures only a handful of guesses reach the comparison in
    a whole day, and then even the right code is refused until an administrator
    resets the authenticator."""
    clock = FakeClock(T0)
    service = AuthenticatorService(store_backend(clock), SecretSealer.generate())
    seed = _seed(service.enroll("u").secret_b32)
    compared = 0
    end = T0 + 24 * 3600
    while clock() < end:
        try:
            service.verify("u", _wrong(seed, clock()))
        except CodeInvalid:
            compared += 1
        except RateLimited as exc:
            clock.advance(max(1.0, exc.retry_after or 900.0))
            continue
        except CodeAttemptsExceeded:
            clock.advance(900)
            continue
        clock.advance(1)
    assert compared <= 10, compared
    right = hotp_code(seed, int(clock() // 30), 6, OtpAlgorithm.SHA1)
    with pytest.raises(CodeAttemptsExceeded, match="administrator"):
        service.verify("u", right)
    service.admin_reset("u", admin="ops-1")
    assert service.verify("u", right).counter == int(clock() // 30)


def test_totp_failures_are_separate_from_the_password_counter() -> None:
    """The authenticator's failure count has its own keys: a locked authenticator does not
    touch the login lockout counter and vice versa."""
    store = MemoryStore(clock=FakeClock(T0))
    service = AuthenticatorService(store, SecretSealer.generate())
    seed = _seed(service.enroll("u").secret_b32)
    with pytest.raises(CodeInvalid):
        service.verify("u", _wrong(seed, T0))
    assert service.failures("u") == 1
    assert store.get_counter("lockout:u") == 0


# ----------------------------------------------------------------------- item 10


class _InterleavingStore(MemoryStore):
    """A real MemoryStore that runs ``hook`` before each primitive while armed: the
    deterministic version of a second request arriving between two store calls."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.hook: object = None

    def _fire(self) -> None:
        hook, self.hook = self.hook, None
        if callable(hook):
            try:
                hook()
            finally:
                self.hook = hook

    def reset_counter(self, key: str) -> None:
        self._fire()
        super().reset_counter(key)

    def compare_and_set(self, key, expected, new, ttl=None):  # type: ignore[no-untyped-def]
        self._fire()
        return super().compare_and_set(key, expected, new, ttl)

    def put_if_absent(self, key, value, ttl=None):  # type: ignore[no-untyped-def]
        self._fire()
        return super().put_if_absent(key, value, ttl)

    def incr_bounded(self, key, limit, ttl=None):  # type: ignore[no-untyped-def]
        self._fire()
        return super().incr_bounded(key, limit, ttl)


def test_exhausted_code_is_never_accepted_during_reissue(tmp_path: Path) -> None:
    """Attack: the code's tries were exhausted; re-issuing reset the try counter *before*
    the new record replaced the old one, so the old (exhausted) code was accepted by a
    request arriving between the two steps.  Here the old, correct code is presented
    between every pair of store calls that re-issue makes."""
    clock = FakeClock(NOON_SHANGHAI)
    store = _InterleavingStore(clock)
    settings = OtpSettings(max_attempts=3, resend_cooldown=30)
    service, gateway = make_service(store, tmp_path / "out", settings)
    service.issue("alice", "login")
    old = last_code(gateway, PHONES["alice"])
    for _ in range(3):
        with pytest.raises((CodeInvalid, CodeAttemptsExceeded)):
            service.verify("alice", "login", _other(old))
    accepted: list[str] = []

    def attacker() -> None:
        with contextlib.suppress(OtpError):
            accepted.append(service.verify("alice", "login", old).code_id)

    clock.advance(31)  # past the cooldown, the old code still within its 60 s
    store.hook = attacker
    service.issue("alice", "login")
    store.hook = None
    assert accepted == []
    with pytest.raises((CodeInvalid, CodeAttemptsExceeded)):
        service.verify("alice", "login", old)
    assert service.verify("alice", "login", last_code(gateway, PHONES["alice"]))


def test_reissue_race_with_threads(store_backend: StoreFactory, tmp_path: Path) -> None:
    """Race: one thread re-issues while four others hammer the exhausted old code; the
    old code is never accepted and the new one gets exactly ``max_attempts`` tries."""
    clock = FakeClock(NOON_SHANGHAI)
    store = store_backend(clock)
    service, gateway = make_service(store, tmp_path / "out", OtpSettings(resend_cooldown=30))
    for _round in range(3):
        clock.advance(61)
        service.issue("alice", "login")
        old = last_code(gateway, PHONES["alice"])
        for _ in range(3):
            with pytest.raises((CodeInvalid, CodeAttemptsExceeded)):
                service.verify("alice", "login", _other(old))
        stop = threading.Event()
        accepted: list[str] = []

        def hammer(
            code: str = old, stop: threading.Event = stop, accepted: list[str] = accepted
        ) -> None:
            while not stop.is_set():
                with contextlib.suppress(OtpError):
                    accepted.append(service.verify("alice", "login", code).code_id)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        clock.advance(31)  # the old code is still within its validity
        service.issue("alice", "login")
        stop.set()
        for t in threads:
            t.join()
        new = last_code(gateway, PHONES["alice"])
        assert accepted == [] or new == old, accepted


# ----------------------------------------------------------------------- item 11


def test_sms_for_a_transaction_states_its_amount(tmp_path: Path) -> None:
    """Attack: the SMS text was whatever the caller supplied, never checked against the
    transaction digest, so an SMS for a 5,000 CNY transfer could say nothing of the
    amount (or another amount).  The message is built from the Transaction itself."""
    clock = FakeClock(NOON_SHANGHAI)
    service, gateway = make_service(MemoryStore(clock=clock), tmp_path / "out")
    transaction = _transaction("5000.00")
    service.issue("alice", "transaction", DeliveryChannel.SMS, transaction)
    message = gateway.messages()[-1]
    assert "5,000.00" in message.text and "4444" in message.text
    code = re.search(r"(?<!\d)\d{6}(?!\d)", message.text)
    assert code is not None
    with pytest.raises(CodeInvalid, match="different transaction"):
        service.verify("alice", "transaction", code.group(), _transaction("5001.00"))
    assert service.verify("alice", "transaction", code.group(), transaction.digest())


def test_a_bare_digest_cannot_issue_a_code(tmp_path: Path) -> None:
    """A digest alone cannot say what the customer approves: issuing needs the
    Transaction (typed error, nothing sent, no cap consumed)."""
    service, gateway = make_service(MemoryStore(clock=FakeClock(NOON_SHANGHAI)), tmp_path / "o")
    with pytest.raises(EncodingError, match="Transaction"):
        service.issue("alice", "transaction", DeliveryChannel.SMS, b"\x01" * 32)  # type: ignore[arg-type]
    assert gateway.messages() == [] and service.sent_today("alice") == 0


# ----------------------------------------------------------------------- item 12


def test_cooldown_is_per_user_not_per_purpose(tmp_path: Path) -> None:
    """Attack: the resend cooldown was per (user, purpose): cycling through ten purposes
    sent ten codes in the same second."""
    service, _gateway = make_service(MemoryStore(clock=FakeClock(NOON_SHANGHAI)), tmp_path / "o")
    sent = 0
    for i in range(10):
        try:
            service.issue("alice", f"purpose{i}")
            sent += 1
        except RateLimited:
            pass
    assert sent == 1


def test_cooldown_is_per_phone(tmp_path: Path) -> None:
    """Two customers registered with one handset share its cooldown."""
    service, _ = make_service(MemoryStore(clock=FakeClock(NOON_SHANGHAI)), tmp_path / "o")
    service.issue("alice", "login")  # alice and carol share 13800000001
    with pytest.raises(RateLimited):
        service.issue("carol", "login")


def test_phone_cap_refusal_does_not_consume_the_user_cap(tmp_path: Path) -> None:
    """Attack: the per-user cap was counted before the per-phone cap refused, so a
    co-registered handset could exhaust another customer's daily codes."""
    clock = FakeClock(NOON_SHANGHAI)
    settings = OtpSettings(daily_limit_per_user=10, daily_limit_per_phone=3)
    service, _ = make_service(MemoryStore(clock=clock), tmp_path / "o", settings)
    for _ in range(3):
        service.issue("carol", "login")
        clock.advance(61)
    for _ in range(5):
        with pytest.raises(RateLimited, match="phone"):
            service.issue("alice", "login")
        clock.advance(61)
    assert service.sent_today("alice") == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"digits": 4},
        {"digits": 5},
        {"max_attempts": 10},
        {"max_attempts": 6},
        {"resend_cooldown": 0},
    ],
)
def test_code_settings_below_the_floors_are_refused(kwargs: dict[str, int]) -> None:
    """Settings allowed 4-digit codes and 10 tries; below the floors they are refused
    unless an explicit, logged test mode is chosen."""
    with pytest.raises(ConfigurationError):
        OtpSettings(**kwargs)  # type: ignore[arg-type]


def test_test_mode_lifts_the_floors_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        settings = OtpSettings(digits=4, max_attempts=10, resend_cooldown=0, test_mode=True)
    assert settings.digits == 4
    assert any("TEST MODE" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "kwargs",
    [{"window": 10, "period": 300}, {"window": 3}, {"period": 120}, {"window": 2, "period": 60}],
)
def test_authenticator_windows_beyond_the_floor_are_refused(kwargs: dict[str, int]) -> None:
    """Settings allowed TOTP codes to be accepted ±3000 s (window 10 x period 300)."""
    with pytest.raises(ConfigurationError):
        AuthenticatorSettings(**kwargs)  # type: ignore[arg-type]


def test_verifier_time_cannot_be_chosen_by_the_caller() -> None:
    """Attack: ``verify(at=...)`` let the caller choose the verifier's time, so a code
    could be checked against any time step.  Only an explicit test mode allows it."""
    store = MemoryStore(clock=FakeClock(T0))
    service = AuthenticatorService(store, SecretSealer.generate())
    seed = _seed(service.enroll("u").secret_b32)
    old = hotp_code(seed, int((T0 - 86400) // 30), 6, OtpAlgorithm.SHA1)
    with pytest.raises(ConfigurationError, match="test mode"):
        service.verify("u", old, at=T0 - 86400)
    testing = AuthenticatorService(
        store, SecretSealer.generate(), AuthenticatorSettings(test_mode=True)
    )
    seed2 = _seed(testing.enroll("v").secret_b32)
    at = T0 - 86400
    assert testing.verify("v", hotp_code(seed2, int(at // 30), 6, OtpAlgorithm.SHA1), at=at)


def test_gmt0021_event_mode_puts_the_counter_in_c() -> None:
    """GM/T 0021 event-based tokens put the event counter in C (T = 0); the counter was
    put in T, so a real event-mode token's codes never verified."""
    key = bytes.fromhex("1234567890abcdefabcdef1234567890")
    store = MemoryStore(clock=FakeClock(T0))
    service = AuthenticatorService(
        store,
        SecretSealer.generate(),
        AuthenticatorSettings(kind=AuthenticatorKind.HOTP, algorithm=OtpAlgorithm.SM3),
    )
    service.enroll("u", secret=key)
    assert service.code_at("u", 2) == sm3_otp(key, 0, 2)
    assert service.verify("u", sm3_otp(key, 0, 2)).counter == 2


def test_shared_store_stays_consistent_for_other_users(tmp_path: Path) -> None:
    """A refused issue (cooldown) for one user leaves another user's pending code intact."""
    clock = FakeClock(NOON_SHANGHAI)
    service, gateway = make_service(MemoryStore(clock=clock), tmp_path / "o")
    service.issue("bob", "login")
    bob_code = last_code(gateway, PHONES["bob"])
    service.issue("alice", "login")
    with pytest.raises(RateLimited):
        service.issue("alice", "other")
    assert service.verify("bob", "login", bob_code)


def _unused(store: Store) -> None:  # keep the import used for type checkers
    del store
