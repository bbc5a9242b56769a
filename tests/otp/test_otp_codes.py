"""SMS / voice codes on every store backend, delivered through the real file gateway."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebank_auth.errors import (
    CodeAlreadyUsed,
    CodeAttemptsExceeded,
    CodeExpired,
    CodeInvalid,
    ConfigurationError,
    DeliveryError,
    EncodingError,
    RateLimited,
)
from ebank_auth.otp import DeliveryChannel, OtpSettings, RiskTier
from ebank_auth.otp.gateway import OutboundMessage
from ebank_auth.store import MemoryStore
from plugins.otp_helpers import PHONES, last_code, make_service, tx
from plugins.store_backends import FakeClock, StoreFactory

# 2026-01-10 12:00 in Shanghai (UTC+8) -> 04:00 UTC
NOON_SHANGHAI = 1768017600.0


def _other(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_issue_verify_once(store_backend: StoreFactory, tmp_path: Path) -> None:
    clock = FakeClock(NOON_SHANGHAI)
    service, gateway = make_service(store_backend(clock), tmp_path / "out")
    issued = service.issue("alice", "transaction", DeliveryChannel.SMS, tx(1))
    assert issued.validity == 60 and issued.expires_at == NOON_SHANGHAI + 60
    assert issued.phone_masked == "+86138****0001"
    code = last_code(gateway, PHONES["alice"])
    assert code not in repr(issued)
    ok = service.verify("alice", "transaction", code, tx(1))
    assert ok.code_id == issued.code_id and ok.attempts == 1
    with pytest.raises(CodeAlreadyUsed):
        service.verify("alice", "transaction", code, tx(1))


def test_code_bound_to_transaction(store_backend: StoreFactory, tmp_path: Path) -> None:
    service, gateway = make_service(store_backend(FakeClock()), tmp_path / "out")
    service.issue("alice", "transaction", transaction=tx(1))
    code = last_code(gateway, PHONES["alice"])
    with pytest.raises(CodeInvalid, match="different transaction"):
        service.verify("alice", "transaction", code, tx(2))
    with pytest.raises(CodeInvalid):
        service.verify("alice", "transaction", code, None)
    assert service.verify("alice", "transaction", code, tx(1)).tx_digest == tx(1).digest()


def test_code_expires(store_backend: StoreFactory, tmp_path: Path) -> None:
    clock = FakeClock()
    service, gateway = make_service(store_backend(clock), tmp_path / "out")
    service.issue("alice", "login")
    code = last_code(gateway, PHONES["alice"])
    clock.advance(60)
    with pytest.raises(CodeExpired):
        service.verify("alice", "login", code)


def test_risk_tier_shortens_validity(store_backend: StoreFactory, tmp_path: Path) -> None:
    clock = FakeClock()
    service, gateway = make_service(store_backend(clock), tmp_path / "out")
    issued = service.issue("alice", "transaction", transaction=tx(3), risk=RiskTier.CRITICAL)
    assert issued.validity == 30
    code = last_code(gateway, PHONES["alice"])
    clock.advance(30)
    with pytest.raises(CodeExpired):
        service.verify("alice", "transaction", code, tx(3))


def test_attempt_limit(store_backend: StoreFactory, tmp_path: Path) -> None:
    service, gateway = make_service(store_backend(FakeClock()), tmp_path / "out")
    service.issue("alice", "login")
    code = last_code(gateway, PHONES["alice"])
    with pytest.raises(CodeInvalid, match="2 tries left"):
        service.verify("alice", "login", _other(code))
    with pytest.raises(CodeInvalid, match="1 try left"):
        service.verify("alice", "login", _other(code))
    with pytest.raises(CodeAttemptsExceeded):
        service.verify("alice", "login", _other(code))
    with pytest.raises(CodeAttemptsExceeded):
        service.verify("alice", "login", code)  # even the right code is dead now


def test_malformed_input_leaves_state_intact(store_backend: StoreFactory, tmp_path: Path) -> None:
    service, gateway = make_service(store_backend(FakeClock()), tmp_path / "out")
    service.issue("alice", "login")
    code = last_code(gateway, PHONES["alice"])
    for bad in ["", "12345", "1234567", "12a456", "１２３４５６", " 12345", "١٢٣٤٥٦"]:
        with pytest.raises(CodeInvalid, match="exactly 6 digits"):
            service.verify("alice", "login", bad)
    with pytest.raises(EncodingError):
        service.verify("alice", "login", code, b"short")
    assert service.verify("alice", "login", code).attempts == 1  # no try was used up


def test_no_pending_code(store_backend: StoreFactory, tmp_path: Path) -> None:
    service, _ = make_service(store_backend(FakeClock()), tmp_path / "out")
    with pytest.raises(CodeInvalid, match="no code is pending"):
        service.verify("alice", "login", "123456")


def test_new_code_replaces_old(store_backend: StoreFactory, tmp_path: Path) -> None:
    clock = FakeClock()
    service, gateway = make_service(store_backend(clock), tmp_path / "out")
    service.issue("alice", "login")
    first = last_code(gateway, PHONES["alice"])
    clock.advance(61)
    service.issue("alice", "login")
    second = last_code(gateway, PHONES["alice"])
    if first != second:
        with pytest.raises(CodeInvalid):
            service.verify("alice", "login", first)
    assert service.verify("alice", "login", second)


def test_resend_cooldown(store_backend: StoreFactory, tmp_path: Path) -> None:
    clock = FakeClock()
    service, _ = make_service(store_backend(clock), tmp_path / "out")
    service.issue("alice", "login")
    clock.advance(20)
    with pytest.raises(RateLimited) as info:
        service.issue("alice", "login")
    assert info.value.retry_after == pytest.approx(40)
    with pytest.raises(RateLimited):  # another purpose shares the customer's cooldown
        service.issue("alice", "transaction", transaction=tx(1))
    clock.advance(40)
    service.issue("alice", "transaction", transaction=tx(1))


def test_daily_cap_per_user_resets_at_local_midnight(
    store_backend: StoreFactory, tmp_path: Path
) -> None:
    clock = FakeClock(NOON_SHANGHAI)
    settings = OtpSettings(resend_cooldown=0, test_mode=True)
    service, _ = make_service(store_backend(clock), tmp_path / "out", settings)
    for _ in range(10):
        service.issue("alice", "login")
    with pytest.raises(RateLimited, match="daily limit of 10 codes reached for this customer"):
        service.issue("alice", "login")
    assert service.sent_today("alice") == 10
    clock.advance(12 * 3600 - 1)  # 23:59:59 local
    with pytest.raises(RateLimited):
        service.issue("alice", "login")
    clock.advance(1)  # 00:00 local: a new day
    service.issue("alice", "login")
    assert service.sent_today("alice") == 1


def test_daily_cap_per_phone(store_backend: StoreFactory, tmp_path: Path) -> None:
    """alice and carol share a registered phone: the phone cap counts both."""
    settings = OtpSettings(
        resend_cooldown=0, daily_limit_per_user=10, daily_limit_per_phone=4, test_mode=True
    )
    service, _ = make_service(store_backend(FakeClock()), tmp_path / "out", settings)
    for _ in range(2):
        service.issue("alice", "login")
        service.issue("carol", "login")
    with pytest.raises(RateLimited, match="this phone number"):
        service.issue("carol", "login")
    service.issue("bob", "login")


def test_only_registered_phone(tmp_path: Path) -> None:
    service, gateway = make_service(MemoryStore(), tmp_path / "out")
    with pytest.raises(DeliveryError, match="registered"):
        service.issue("alice", "login", phone="13999999999")
    with pytest.raises(DeliveryError, match="no registered phone"):
        service.issue("mallory", "login")
    assert gateway.messages() == []
    service.issue("alice", "login", phone=PHONES["alice"])
    assert [m.phone for m in gateway.messages()] == ["+86138****0001"]  # masked at rest


def test_voice_code_states_type_and_amount(tmp_path: Path) -> None:
    clock = FakeClock()
    service, gateway = make_service(MemoryStore(clock=clock), tmp_path / "out")
    service.issue("alice", "transaction", DeliveryChannel.VOICE, tx(12245))
    message = gateway.messages()[-1]
    assert message.channel is DeliveryChannel.VOICE
    assert "转账" in message.text and "12,345.00元" in message.text
    clock.advance(1)
    service.issue("bob", "transaction", DeliveryChannel.VOICE, tx(2), lang="en")
    text = gateway.messages()[-1].text
    assert "Transfer of 102.00 CNY" in text and "Again:" in text and "4444" in text


class _BrokenGateway:
    def send(self, message: OutboundMessage) -> None:
        raise DeliveryError("platform down")


def test_failed_delivery_leaves_no_live_code(tmp_path: Path) -> None:
    from ebank_auth.otp import CodeService, MappingPhoneRegistry

    store = MemoryStore()
    service = CodeService(store, _BrokenGateway(), MappingPhoneRegistry(PHONES), b"k" * 32)
    with pytest.raises(DeliveryError):
        service.issue("alice", "login")
    with pytest.raises(CodeInvalid, match="no code is pending"):
        service.verify("alice", "login", "000000")


def test_settings_bounds() -> None:
    with pytest.raises(ConfigurationError, match="at most 300"):
        OtpSettings(validity=301)
    with pytest.raises(ConfigurationError):
        OtpSettings(validity=0)
    with pytest.raises(ConfigurationError):
        OtpSettings(tier_validity={RiskTier.HIGH: 600})
    with pytest.raises(ConfigurationError):
        OtpSettings(timezone="Mars/Olympus")
    with pytest.raises(ConfigurationError):
        OtpSettings(max_attempts=0)
    s = OtpSettings(validity=120, tier_validity={RiskTier.LOW: 300, RiskTier.HIGH: 20})
    assert s.validity_for(RiskTier.LOW) == 120  # a tier never lengthens
    assert s.validity_for(RiskTier.HIGH) == 20
    assert s.validity_for(RiskTier.NORMAL) == 120
    assert OtpSettings(timezone="+08:00").validity == 60


def test_server_key_required() -> None:
    from ebank_auth.otp import CodeService, FileGateway, MappingPhoneRegistry

    with pytest.raises(ConfigurationError):
        CodeService(MemoryStore(), FileGateway("/nonexistent"), MappingPhoneRegistry({}), b"short")


def test_user_names_with_colons_do_not_share_state(tmp_path: Path) -> None:
    # "a:b" + "c" and "a" + "b:c" once mapped to the same store keys (shared cooldown)
    from ebank_auth.otp import CodeService, FileGateway, MappingPhoneRegistry

    gateway = FileGateway(tmp_path / "out")
    phones = MappingPhoneRegistry({"a:b": "13800000005", "a": "13800000006"})
    service = CodeService(MemoryStore(clock=FakeClock()), gateway, phones, b"k" * 32)
    service.issue("a:b", "c")
    service.issue("a", "b:c")  # not refused by the other user's resend cooldown
    first = last_code(gateway, "13800000005")
    second = last_code(gateway, "13800000006")
    assert service.verify("a:b", "c", first).user_id == "a:b"
    assert service.verify("a", "b:c", second).user_id == "a"
