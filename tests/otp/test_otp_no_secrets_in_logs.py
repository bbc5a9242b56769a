"""Secrets never logged: one-time codes, at every log level, through issue, wrong tries and
acceptance (the code is in the outbox file only, which stands in for the SMS)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ebank_auth.errors import CodeInvalid
from ebank_auth.store import MemoryStore
from plugins.otp_helpers import PHONES, last_code, make_service, tx


def test_codes_never_reach_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ebank_auth")
    service, gateway = make_service(MemoryStore(), tmp_path / "out")
    service.issue("alice", "transaction", transaction=tx(1))
    code = last_code(gateway, PHONES["alice"])
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    with pytest.raises(CodeInvalid):
        service.verify("alice", "transaction", wrong, transaction=tx(1))
    service.verify("alice", "transaction", code, transaction=tx(1))
    assert caplog.records, "the service logs its events (so this test can fail)"
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert code not in text
    assert wrong not in text


def test_outbound_message_repr_hides_the_text(tmp_path: Path) -> None:
    # WebhookGateway logs deliveries with %r: the message's repr must not carry the code
    service, gateway = make_service(MemoryStore(), tmp_path / "out")
    service.issue("alice", "login")
    message = gateway.last_for(PHONES["alice"])
    assert message is not None
    code = last_code(gateway, PHONES["alice"])
    assert code in message.text
    assert code not in repr(message)
