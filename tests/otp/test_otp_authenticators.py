"""TOTP / HOTP / GM/T 0021 tokens: enrolment, window, replay, resync, sealing, QR."""

from __future__ import annotations

import base64
import json
import threading
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebank_auth.errors import (
    CodeAttemptsExceeded,
    CodeInvalid,
    ConfigurationError,
    ConflictError,
    DecryptionError,
    OtpError,
    RateLimited,
    ReplayDetected,
)
from ebank_auth.otp import (
    AuthenticatorKind,
    AuthenticatorService,
    AuthenticatorSettings,
    OtpAlgorithm,
    SecretSealer,
    hotp_code,
)
from ebank_auth.store import MemoryStore
from plugins.store_backends import FakeClock, StoreFactory

T0 = 1_700_000_010.0  # inside a 30 s step
RFC_SEED = b"12345678901234567890"


def _seed(enrollment_b32: str) -> bytes:
    pad = "=" * (-len(enrollment_b32) % 8)
    return base64.b32decode(enrollment_b32 + pad)


def test_totp_enrol_and_verify_with_pyotp_client(store_backend: StoreFactory) -> None:
    clock = FakeClock(T0)
    service = AuthenticatorService(store_backend(clock), SecretSealer.generate())
    enrolment = service.enroll("alice", "alice@example")
    assert len(_seed(enrolment.secret_b32)) >= 20  # ≥ 160 bits
    uri = urlsplit(enrolment.uri)
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    q = parse_qs(uri.query)
    assert q["issuer"] == ["ebank-auth"] and q["period"] == ["30"] and q["digits"] == ["6"]
    client = pyotp.parse_uri(enrolment.uri)  # an independent authenticator app
    code = client.at(T0)
    result = service.verify("alice", code)
    assert result.counter == int(T0 // 30) and result.drift == 0
    with pytest.raises(ReplayDetected):
        service.verify("alice", code)
    assert "secret" not in repr(enrolment) or "***" in repr(enrolment)


def test_totp_window_plus_minus_one(store_backend: StoreFactory) -> None:
    clock = FakeClock(T0)
    service = AuthenticatorService(store_backend(clock), SecretSealer.generate())
    seed = _seed(service.enroll("u", secret=RFC_SEED).secret_b32)  # fixed: no chance collisions
    step = int(T0 // 30)
    assert service.verify("u", hotp_code(seed, step - 1, 6, OtpAlgorithm.SHA1)).drift == -1
    assert service.verify("u", hotp_code(seed, step + 1, 6, OtpAlgorithm.SHA1)).drift == 1
    with pytest.raises(ReplayDetected):  # step ≤ last accepted (step + 1)
        service.verify("u", hotp_code(seed, step, 6, OtpAlgorithm.SHA1))
    with pytest.raises(CodeInvalid):  # outside the ±1 window
        service.verify("u", hotp_code(seed, step + 3, 6, OtpAlgorithm.SHA1))


def test_hotp_look_ahead_and_resync(store_backend: StoreFactory) -> None:
    service = AuthenticatorService(
        store_backend(FakeClock()),
        SecretSealer.generate(),
        AuthenticatorSettings(
            kind=AuthenticatorKind.HOTP, max_failures=20, lock_after=40, test_mode=True
        ),
    )
    seed = _seed(service.enroll("u", secret=RFC_SEED).secret_b32)

    def c(n: int) -> str:
        return hotp_code(seed, n, 6, OtpAlgorithm.SHA1)

    assert service.verify("u", c(0)).counter == 0
    assert service.verify("u", c(3)).counter == 3  # look-ahead 3 after last (0)
    with pytest.raises(CodeInvalid):  # counter 3 is spent: outside the look-ahead now
        service.verify("u", c(3))
    # the token drifted far ahead: normal verification fails, resync with two codes works
    with pytest.raises(CodeInvalid):
        service.verify("u", c(30))
    assert service.resync("u", c(30), c(31)).counter == 31
    assert service.verify("u", c(32)).counter == 32
    with pytest.raises(CodeInvalid):
        service.resync("u", c(40), c(42))  # not consecutive


def test_gmt0021_token_service(store_backend: StoreFactory) -> None:
    clock = FakeClock(T0)
    settings_ = AuthenticatorSettings(algorithm=OtpAlgorithm.SM3, period=60)
    service = AuthenticatorService(store_backend(clock), SecretSealer.generate(), settings_)
    key = bytes.fromhex("1234567890abcdefabcdef1234567890")
    service.enroll("u", secret=key)
    from ebank_auth.otp import sm3_otp

    code = sm3_otp(key, int(T0 // 60))
    assert service.verify("u", code).counter == int(T0 // 60)
    with pytest.raises(ReplayDetected):
        service.verify("u", code)


def test_failures_back_off_then_lock(store_backend: StoreFactory) -> None:
    clock = FakeClock(T0)
    service = AuthenticatorService(
        store_backend(clock),
        SecretSealer.generate(),
        AuthenticatorSettings(max_failures=3, lock_after=5, backoff=30),
    )
    seed = _seed(service.enroll("u").secret_b32)
    valid = {hotp_code(seed, int(T0 // 30) + d, 6, OtpAlgorithm.SHA1) for d in (-1, 0, 1)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in valid)
    for _ in range(3):  # free tries
        with pytest.raises(CodeInvalid):
            service.verify("u", wrong)
    with pytest.raises(CodeInvalid, match="wait"):  # takes the 30 s back-off slot
        service.verify("u", wrong)
    with pytest.raises(RateLimited) as info:  # nothing compared while backing off
        service.verify("u", wrong)
    assert info.value.retry_after == pytest.approx(30)
    assert service.failures("u") == 4
    clock.advance(30)
    with pytest.raises(CodeInvalid, match="locked"):  # the 5th failure locks
        service.verify("u", wrong)
    clock.advance(86400 * 7)  # a lock does not expire by itself
    right = hotp_code(seed, int(clock() // 30), 6, OtpAlgorithm.SHA1)
    with pytest.raises(CodeAttemptsExceeded, match="administrator"):
        service.verify("u", right)
    assert service.locked("u")
    with pytest.raises(ConfigurationError):
        service.admin_reset("u", admin="")
    service.admin_reset("u", admin="ops-7")
    assert not service.locked("u") and service.verify("u", right)


def test_malformed_codes_touch_no_state(store_backend: StoreFactory) -> None:
    clock = FakeClock(T0)
    service = AuthenticatorService(
        store_backend(clock), SecretSealer.generate(), AuthenticatorSettings(max_failures=1)
    )
    seed = _seed(service.enroll("u").secret_b32)
    for bad in ["", "12345", "1234567", "abcdef", "１２３４５６"]:
        with pytest.raises(CodeInvalid):
            service.verify("u", bad)
    assert service.verify("u", hotp_code(seed, int(T0 // 30), 6, OtpAlgorithm.SHA1))


def test_enrolment_conflict_and_replace() -> None:
    service = AuthenticatorService(MemoryStore(), SecretSealer.generate())
    first = service.enroll("u")
    with pytest.raises(ConflictError, match="already has an authenticator"):
        service.enroll("u")
    second = service.enroll("u", replace=True)
    assert first.secret_b32 != second.secret_b32
    with pytest.raises(OtpError, match="no authenticator"):
        service.verify("nobody", "123456")
    with pytest.raises(ConfigurationError):
        service.enroll("x", secret=b"too short")
    with pytest.raises(ConfigurationError):
        AuthenticatorSettings(secret_bytes=16)


def test_secrets_sealed_at_rest_and_rotated() -> None:
    store = MemoryStore(clock=FakeClock(T0))
    k1, k2 = b"1" * 16, b"2" * 16
    old = AuthenticatorService(store, SecretSealer({1: k1}))
    enrolment = old.enroll("u")
    seed = _seed(enrolment.secret_b32)
    raw = store.get("authenticator:rec:u")
    assert raw is not None and seed not in raw and seed.hex().encode() not in raw
    assert SecretSealer.version_of(bytes.fromhex(json.loads(raw)["secret"])) == 1
    # rotate: new current key 2, old key kept for reading; the record is resealed on use
    new = AuthenticatorService(store, SecretSealer({1: k1, 2: k2}))
    assert new.verify("u", hotp_code(seed, int(T0 // 30), 6, OtpAlgorithm.SHA1))
    raw = store.get("authenticator:rec:u")
    assert raw is not None
    assert SecretSealer.version_of(bytes.fromhex(json.loads(raw)["secret"])) == 2
    only_new = AuthenticatorService(store, SecretSealer({2: k2}))
    assert only_new.code_at("u", 5) == hotp_code(seed, 5, 6, OtpAlgorithm.SHA1)


def test_sealer_refuses_tampering_and_foreign_owner() -> None:
    sealer = SecretSealer({7: b"s" * 16})
    blob = sealer.seal(b"seed" * 5, b"tok:alice")
    assert sealer.open(blob, b"tok:alice") == b"seed" * 5
    with pytest.raises(DecryptionError):
        sealer.open(blob, b"tok:mallory")
    for i in (0, 5, 10, len(blob) - 1):
        bad = bytearray(blob)
        bad[i] ^= 1
        with pytest.raises(DecryptionError):
            sealer.open(bytes(bad), b"tok:alice")
    with pytest.raises(DecryptionError):
        SecretSealer({1: b"s" * 16}).open(blob, b"tok:alice")  # unknown version
    with pytest.raises(ConfigurationError):
        SecretSealer({1: b"short"})
    with pytest.raises(ConfigurationError):
        SecretSealer({1: b"s" * 16}, current=2)


def test_qr_svg_encodes_the_uri() -> None:
    from ebank_auth.otp.qr import qr_matrix

    enrolment = AuthenticatorService(MemoryStore(), SecretSealer.generate()).enroll("alice")
    svg = enrolment.qr_svg()
    assert svg.startswith("<svg") and "<path" in svg and enrolment.secret_b32 not in svg
    matrix = qr_matrix(enrolment.uri)
    assert len(matrix) == len(matrix[0]) >= 29  # version ≥ 2 plus quiet zone


def test_concurrent_same_totp_code_accepted_once(store_backend: StoreFactory) -> None:
    clock = FakeClock(T0)
    service = AuthenticatorService(
        store_backend(clock),
        SecretSealer.generate(),
        AuthenticatorSettings(max_failures=100, lock_after=200, test_mode=True),
    )
    seed = _seed(service.enroll("u").secret_b32)
    code = hotp_code(seed, int(T0 // 30), 6, OtpAlgorithm.SHA1)
    wins: list[int] = []
    barrier = threading.Barrier(8)

    def run() -> None:
        barrier.wait()
        try:
            service.verify("u", code)
            wins.append(1)
        except OtpError:
            pass

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(wins) == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offsets=st.lists(st.integers(-2, 4), min_size=1, max_size=12),
    gaps=st.lists(st.integers(0, 45), min_size=12, max_size=12),
)
def test_totp_never_accepts_counter_le_last(offsets: list[int], gaps: list[int]) -> None:
    """Property: accepted counters strictly increase, whatever codes arrive when."""
    clock = FakeClock(T0)
    service = AuthenticatorService(
        MemoryStore(clock=clock),
        SecretSealer.generate(),
        AuthenticatorSettings(max_failures=100, lock_after=200, test_mode=True),
    )
    seed = _seed(service.enroll("u").secret_b32)
    last = -1
    for offset, gap in zip(offsets, gaps, strict=False):
        clock.advance(gap)
        step = int(clock() // 30) + offset
        try:
            counter = service.verify("u", hotp_code(seed, step, 6, OtpAlgorithm.SHA1)).counter
        except OtpError:
            continue
        assert counter > last
        assert abs(counter - int(clock() // 30)) <= 1
        last = counter
