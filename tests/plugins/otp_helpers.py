"""Builders shared by the OTP tests (real store, real file gateway)."""

from __future__ import annotations

import re
from pathlib import Path

from ebank_auth.crypto import sm3
from ebank_auth.otp import CodeService, FileGateway, MappingPhoneRegistry, OtpSettings
from ebank_auth.store import Store

SERVER_KEY = b"k" * 32
PHONES = {"alice": "13800000001", "bob": "13800000002", "carol": "13800000001"}


def make_service(
    store: Store, outbox: Path, settings: OtpSettings | None = None
) -> tuple[CodeService, FileGateway]:
    gateway = FileGateway(outbox)
    service = CodeService(store, gateway, MappingPhoneRegistry(PHONES), SERVER_KEY, settings)
    return service, gateway


def last_code(gateway: FileGateway, phone: str) -> str:
    """The code in the newest SMS to ``phone`` (read from the real outbox file)."""
    message = gateway.last_for(phone)
    assert message is not None
    m = re.search(r"(?<!\d)(\d{6})(?!\d)", message.text)
    assert m is not None, message.text
    return m.group(1)


def tx(n: int) -> bytes:
    return sm3.digest(f"transaction {n}".encode())
