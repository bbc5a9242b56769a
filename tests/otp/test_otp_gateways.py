"""Gateways against real parts: a loopback HTTP server, real files, a text stream."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from ebank_auth.crypto import sm3
from ebank_auth.errors import ConfigurationError, DeliveryError
from ebank_auth.masking import mask_phone
from ebank_auth.otp import (
    ConsoleGateway,
    DeliveryChannel,
    FileGateway,
    Language,
    OutboundMessage,
    WebhookGateway,
    render_message,
)
from plugins.otp_helpers import tx

SECRET = b"webhook-secret-0123456789"


def _msg(text: str = "验证码123456") -> OutboundMessage:
    return OutboundMessage("id1", DeliveryChannel.SMS, "13800000001", text, "zh", "login", 1.5)


class _Platform:
    """A minimal SMS platform on 127.0.0.1 that records requests."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.received: list[tuple[dict[str, str], bytes]] = []
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                platform.received.append((dict(self.headers), body))
                self.send_response(platform.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def platform() -> Iterator[_Platform]:
    p = _Platform(202)
    yield p
    p.close()


def test_webhook_delivers_signed_json(platform: _Platform) -> None:
    gateway = WebhookGateway(platform.url, SECRET)
    gateway.send(_msg())
    headers, body = platform.received[0]
    assert headers["X-Ebank-Signature"] == "hmac-sm3=" + sm3.hmac(SECRET, body).hex()
    payload = json.loads(body)
    assert payload["message"]["phone"] == "+8613800000001"  # E.164
    assert payload["message"]["channel"] == "sms"
    assert len(payload["nonce"]) == 32


def test_webhook_error_status_is_delivery_error() -> None:
    p = _Platform(503)
    try:
        with pytest.raises(DeliveryError, match="503"):
            WebhookGateway(p.url, SECRET).send(_msg())
    finally:
        p.close()


def test_webhook_unreachable_is_delivery_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DeliveryError, match="unreachable"):
        WebhookGateway(f"http://127.0.0.1:{port}/", SECRET, timeout=2).send(_msg())


@pytest.mark.parametrize(
    ("url", "secret"),
    [("ftp://x", SECRET), ("http://sms.example.com/", SECRET), ("https://x/", b"short")],
)
def test_webhook_config_checked(url: str, secret: bytes) -> None:
    with pytest.raises(ConfigurationError):
        WebhookGateway(url, secret)


def test_file_gateway_round_trip(tmp_path: Path) -> None:
    gateway = FileGateway(tmp_path / "outbox")
    gateway.send(_msg("first"))
    gateway.send(
        OutboundMessage("id2", DeliveryChannel.VOICE, "13800000002", "second", "en", "x", 2.0)
    )
    messages = gateway.messages()
    assert [m.text for m in messages] == ["first", "second"]
    assert messages[1].channel is DeliveryChannel.VOICE
    assert gateway.last_for("+86 138 0000 0001") == messages[0]
    assert [m.phone for m in messages] == ["+86138****0001", "+86138****0002"]
    for path in (tmp_path / "outbox").glob("*.json"):
        assert "13800000001" not in path.read_text(encoding="utf-8")
        assert path.stat().st_mode & 0o077 == 0
    assert not list((tmp_path / "outbox").glob(".tmp-*"))


def test_file_gateway_expires_and_limits_the_outbox(tmp_path: Path) -> None:
    """Issue 11 item 12: the file outbox kept every code and full number forever.  Files
    older than the retention and beyond ``max_messages`` are removed."""
    now = [1_000_000.0]
    gateway = FileGateway(tmp_path / "o", retention=600, max_messages=3, clock=lambda: now[0])
    now[0] = __import__("time").time()
    for i in range(5):
        gateway.send(
            OutboundMessage(f"id{i}", DeliveryChannel.SMS, "13800000001", f"m{i}", "zh", "x", i)
        )
    assert [m.text for m in gateway.messages()] == ["m2", "m3", "m4"]
    now[0] += 601
    assert gateway.messages() == []
    assert list((tmp_path / "o").glob("*.json")) == []


def test_gateways_refuse_an_unparseable_number(tmp_path: Path) -> None:
    bad = OutboundMessage("id", DeliveryChannel.SMS, "12345", "x", "zh", "login", 1.0)
    with pytest.raises(DeliveryError, match="phone number"):
        FileGateway(tmp_path / "o").send(bad)
    with pytest.raises(DeliveryError, match="phone number"):
        ConsoleGateway(io.StringIO()).send(bad)


def test_file_gateway_unwritable_is_delivery_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(DeliveryError):
        FileGateway(blocker / "outbox").send(_msg())


def test_console_gateway_writes_stream() -> None:
    out = io.StringIO()
    ConsoleGateway(out).send(_msg("hello"))
    assert "hello" in out.getvalue() and "sms" in out.getvalue()


def test_message_repr_hides_code() -> None:
    assert "123456" not in repr(_msg()) and "138****0001" in repr(_msg())
    assert mask_phone("13800000001") == "138****0001"
    assert mask_phone("+8613800000001") == "+86138****0001"


@pytest.mark.parametrize("lang", list(Language))
def test_templates(lang: Language) -> None:
    transaction = tx(900)
    sms = render_message(
        channel=DeliveryChannel.SMS,
        code="012345",
        validity_seconds=60,
        purpose="transaction",
        lang=lang,
        transaction=transaction,
        bank_name="示例银行",
    )
    assert "012345" in sms and "1,000.00" in sms and "示例银行" in sms and "4444" in sms
    voice = render_message(
        channel=DeliveryChannel.VOICE,
        code="012345",
        validity_seconds=30,
        purpose="transaction",
        lang=lang,
        transaction=transaction,
    )
    kind = "转账" if lang is Language.ZH else "Transfer"
    assert "1,000.00" in voice and kind in voice  # type and amount spoken (OTP-3)
    assert "012345" not in voice  # spelled digit by digit
    login = render_message(
        channel=DeliveryChannel.VOICE,
        code="987654",
        validity_seconds=120,
        purpose="login",
        lang=lang,
    )
    assert ("2分钟" if lang is Language.ZH else "2 minutes") in login
