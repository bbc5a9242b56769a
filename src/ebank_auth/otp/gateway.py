"""Delivery gateways for SMS and voice codes.

A gateway only transports a :class:`OutboundMessage`; which phone number it goes to
is decided by the code service from the phone registry (the number registered for
the customer), never by the caller.  Any failure raises
:class:`~ebank_auth.errors.DeliveryError`.

* :class:`ConsoleGateway` — writes messages to a text stream (development only).
* :class:`FileGateway` — one JSON file per message in an outbox directory (tests,
  the CLI, demonstrations).  The number is stored masked and messages are removed
  after ``retention`` seconds (default 600) and beyond ``max_messages`` (default 100).
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
from ebank_auth.errors import ConfigurationError, DeliveryError, EbankAuthError
from ebank_auth.masking import mask_phone
from ebank_auth.otp.phones import normalize_phone
from ebank_auth.otp.settings import DeliveryChannel

__all__ = [
    "ConsoleGateway",
    "FileGateway",
    "Gateway",
    "OutboundMessage",
    "WebhookGateway",
]

_log = logging.getLogger(__name__)


def _e164(message: OutboundMessage) -> str:
    """The message's number in E.164 form; a gateway never sends to anything else."""
    try:
        return normalize_phone(message.phone)
    except EbankAuthError as exc:
        raise DeliveryError(f"not sent: {exc.message}") from None


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
        shown = mask_phone(_e164(message))
        try:
            out.write(f"[{message.channel.value} to {shown}] {message.text}\n")
            out.flush()
        except (OSError, ValueError) as exc:
            raise DeliveryError(f"console gateway could not write: {exc}") from exc


class FileGateway:
    """Writes each message as ``<outbox>/<created>-<id>.json`` atomically (temp file +
    rename, mode 0600, directory 0700), readable with :meth:`messages`.

    For tests, the CLI and demonstrations: the text holds the code in clear, so the
    outbox keeps as little as it can -- the phone number masked (``+86138****0001``),
    files older than ``retention`` seconds (by their modification time, against
    ``clock``) and all but the newest ``max_messages`` files are removed on every
    :meth:`send` and :meth:`messages`.
    """

    def __init__(
        self,
        outbox: str | os.PathLike[str],
        *,
        retention: float = 600.0,
        max_messages: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(retention, bool) or not 0 < float(retention) <= 86400:
            raise ConfigurationError("the outbox retention must be 0 to 86400 seconds")
        if isinstance(max_messages, bool) or not 1 <= int(max_messages) <= 100_000:
            raise ConfigurationError("max_messages must be 1 to 100000")
        self.outbox = Path(outbox)
        self.retention = float(retention)
        self.max_messages = int(max_messages)
        self.clock = clock

    def send(self, message: OutboundMessage) -> None:
        masked = mask_phone(_e164(message))
        try:
            self.outbox.mkdir(mode=0o700, parents=True, exist_ok=True)
            name = f"{int(message.created_at * 1000):015d}-{message.message_id}.json"
            fd, tmp = tempfile.mkstemp(dir=self.outbox, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    doc = message.to_json()
                    doc["phone"] = masked
                    json.dump(doc, fh, ensure_ascii=False)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.outbox / name)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise DeliveryError(f"file gateway could not write to {self.outbox}: {exc}") from exc
        self.purge()

    def purge(self) -> int:
        """Remove expired messages and all but the newest ``max_messages``; returns how
        many files were removed."""
        if not self.outbox.is_dir():
            return 0
        removed = 0
        cutoff = self.clock() - self.retention
        paths = sorted(self.outbox.glob("[0-9]*.json"))
        excess = max(0, len(paths) - self.max_messages)
        for index, path in enumerate(paths):
            try:
                if index < excess or path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # removed by another process meanwhile
                continue
            except OSError as exc:
                raise DeliveryError(f"file gateway could not clean {self.outbox}: {exc}") from exc
        return removed

    def messages(self) -> list[OutboundMessage]:
        """Messages still in the outbox, oldest first (``phone`` is masked)."""
        out: list[OutboundMessage] = []
        self.purge()
        if not self.outbox.is_dir():
            return out
        for path in sorted(self.outbox.glob("[0-9]*.json")):
            try:
                d = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                continue
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
        """The newest message sent to ``phone`` (any spelling of it), if any."""
        masked = mask_phone(normalize_phone(phone))
        found = [m for m in self.messages() if m.phone == masked]
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
        doc = message.to_json()
        doc["phone"] = _e164(message)
        body = json.dumps(
            {
                "message": doc,
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
