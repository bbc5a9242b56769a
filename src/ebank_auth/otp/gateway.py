"""Delivery gateways for SMS and voice codes.

A gateway only transports a :class:`OutboundMessage`; which phone number it goes to
is decided by the code service from the phone registry (the number registered for
the customer), never by the caller.  Any failure raises
:class:`~ebank_auth.errors.DeliveryError`.

* :class:`ConsoleGateway` — writes messages to a text stream (development only).
* :class:`FileGateway` — one JSON file per message in an outbox directory (tests,
  the CLI, or a hand-off to a separate sender process).
* :class:`WebhookGateway` — HTTP(S) POST of JSON to the bank's SMS/voice platform,
  signed with HMAC-SM3 so the platform can check the sender.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, TextIO, runtime_checkable

from ebank_auth.crypto import sm3
from ebank_auth.errors import ConfigurationError, DeliveryError
from ebank_auth.otp.settings import DeliveryChannel

__all__ = [
    "ConsoleGateway",
    "FileGateway",
    "Gateway",
    "OutboundMessage",
    "WebhookGateway",
    "mask_phone",
]

_log = logging.getLogger(__name__)


def mask_phone(phone: str) -> str:
    """``13812345678`` -> ``138****5678`` (for logs and UI)."""
    digits = phone.strip()
    if len(digits) <= 7:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


@dataclass(frozen=True)
class OutboundMessage:
    """One message to deliver.  ``text`` contains the code: never log it."""

    message_id: str
    channel: DeliveryChannel
    phone: str
    text: str
    lang: str
    purpose: str
    created_at: float

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["channel"] = self.channel.value
        return d

    def __repr__(self) -> str:  # keep the code out of reprs and tracebacks
        return (
            f"OutboundMessage(id={self.message_id!r}, channel={self.channel.value}, "
            f"phone={mask_phone(self.phone)!r})"
        )


@runtime_checkable
class Gateway(Protocol):
    """Sends a message; raises DeliveryError if it could not be handed over."""

    def send(self, message: OutboundMessage) -> None: ...


class ConsoleGateway:
    """Writes each message to ``stream`` (stderr by default).  For development only:
    the code is shown in clear on the console."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def send(self, message: OutboundMessage) -> None:
        out = self.stream or sys.stderr
        try:
            out.write(f"[{message.channel.value} to {message.phone}] {message.text}\n")
            out.flush()
        except (OSError, ValueError) as exc:
            raise DeliveryError(f"console gateway could not write: {exc}") from exc


class FileGateway:
    """Writes each message as ``<outbox>/<created>-<id>.json`` atomically (temp file +
    rename), readable with :meth:`messages`.  The directory is created 0700."""

    def __init__(self, outbox: str | os.PathLike[str]) -> None:
        self.outbox = Path(outbox)

    def send(self, message: OutboundMessage) -> None:
        try:
            self.outbox.mkdir(mode=0o700, parents=True, exist_ok=True)
            name = f"{int(message.created_at * 1000):015d}-{message.message_id}.json"
            fd, tmp = tempfile.mkstemp(dir=self.outbox, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(message.to_json(), fh, ensure_ascii=False)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.outbox / name)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise DeliveryError(f"file gateway could not write to {self.outbox}: {exc}") from exc

    def messages(self) -> list[OutboundMessage]:
        """All messages in the outbox, oldest first."""
        out: list[OutboundMessage] = []
        if not self.outbox.is_dir():
            return out
        for path in sorted(self.outbox.glob("[0-9]*.json")):
            d = json.loads(path.read_text(encoding="utf-8"))
            out.append(
                OutboundMessage(
                    message_id=str(d["message_id"]),
                    channel=DeliveryChannel(d["channel"]),
                    phone=str(d["phone"]),
                    text=str(d["text"]),
                    lang=str(d["lang"]),
                    purpose=str(d["purpose"]),
                    created_at=float(d["created_at"]),
                )
            )
        return out

    def last_for(self, phone: str) -> OutboundMessage | None:
        """The newest message sent to ``phone``, if any."""
        found = [m for m in self.messages() if m.phone == phone]
        return found[-1] if found else None


class WebhookGateway:
    """POSTs ``{"message": {...}, "nonce": .., "timestamp": ..}`` as JSON to ``url``.

    Headers: ``X-Ebank-Signature: hmac-sm3=<hex>`` over the exact body bytes with
    ``secret``.  Any non-2xx answer, timeout or connection error -> DeliveryError.
    """

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not url.startswith(("https://", "http://")):
            raise ConfigurationError("webhook gateway URL must start with https:// or http://")
        loopback = ("http://127.0.0.1", "http://localhost", "http://[::1]")
        if url.startswith("http://") and not url.startswith(loopback):
            raise ConfigurationError(
                "webhook gateway must use https:// (plain http is allowed only for loopback)"
            )
        if len(secret) < 16:
            raise ConfigurationError("webhook secret must be at least 16 bytes")
        self.url = url
        self._secret = bytes(secret)
        self.timeout = timeout
        self.clock = clock

    def sign(self, body: bytes) -> str:
        return "hmac-sm3=" + sm3.hmac(self._secret, body).hex()

    def send(self, message: OutboundMessage) -> None:
        body = json.dumps(
            {
                "message": message.to_json(),
                "nonce": secrets.token_hex(16),
                "timestamp": self.clock(),
            },
            ensure_ascii=False,
            sort_keys=True,
        ).encode("utf-8")
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "X-Ebank-Signature": self.sign(body)},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            raise DeliveryError(
                f"SMS/voice platform refused the message (HTTP {exc.code}): check the gateway"
            ) from exc
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise DeliveryError(f"SMS/voice platform unreachable: {exc}") from exc
        if not 200 <= status < 300:
            raise DeliveryError(f"SMS/voice platform answered HTTP {status}: not delivered")
        _log.info("delivered %r via webhook", message)
