"""Builders shared by the OTP tests (real store, real file gateway)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from ebank_auth.otp import CodeService, FileGateway, MappingPhoneRegistry, OtpSettings
from ebank_auth.store import Store
from ebank_auth.transaction import Transaction

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
    m = re.search(r"(?<![\d,.])(\d{6})(?![\d,.])", message.text)
    assert m is not None, message.text
    return m.group(1)


def tx(n: int) -> Transaction:
    """Transaction number ``n`` (a transfer of n + 100 CNY)."""
    return Transaction(
        tx_id=f"T{n}",
        tx_type="transfer",
        payer_account="6222000011112222",
        payee_account="6222000033334444",
        payee_name="张三",
        amount=Decimal(n + 100),
        currency="CNY",
        timestamp=datetime(2026, 1, 10, 4, 0, tzinfo=timezone.utc),
    )
