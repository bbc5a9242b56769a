"""The software phone's screen as a small mobile-style web page (for demos and browser tests).

:class:`PhonePage` serves, on the host's loopback, what the bank's app would show:

* not enrolled — "scan": paste (or open) the enrolment link of the bank's QR code; the page
  shows the reference code to compare with the bank's page and asks for the authorisation
  code (SMS) and a new PIN;
* enrolled — the bank's open confirmation (the transaction's lines, as the phone shows them)
  with a PIN field and **Approve** / **Reject**.

Like the token's screen (:mod:`ebank_auth.usbkey.emulator.screen_page`) it stands in for a
device only its owner touches: a random capability in the URL (``/p/<32 hex>/``), presses only
from its own origin and ``Host``, a Content-Security-Policy without inline script or style
(the page reloads itself by polling ``state.json`` from a static script), no framing, no
caching.  ``GET /p/<cap>/open?link=<enrolment link>`` is the "scan": a browser test or a demo
opens the link the bank's page shows.
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import secrets
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from ebank_auth.errors import ConfigurationError, EbankAuthError
from ebank_auth.phone_shield.emulator.phone import (
    EnrolmentOffer,
    PendingConfirmation,
    SoftwarePhone,
)

__all__ = ["PhonePage"]

_log = logging.getLogger(__name__)
_MAX_FORM: Final = 8 * 1024
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS: Final = (
    ("Content-Security-Policy", _CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)
_SCRIPT: Final = """\
"use strict";
(function () {
  var body = document.body;
  var known = body.getAttribute("data-version");
  var url = body.getAttribute("data-state");
  if (!url) { return; }
  function poll() {
    fetch(url, {cache: "no-store", credentials: "omit"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) { if (s && String(s.version) !== known) { window.location.reload(); } })
      .catch(function () {})
      .finally(function () { window.setTimeout(poll, 1000); });
  }
  window.setTimeout(poll, 1000);
})();
"""
_STYLE: Final = """\
body { font-family: sans-serif; margin: 0; background: #d9dee4; }
.phone { max-width: 380px; margin: 1em auto; background: #fff; border-radius: 24px;
         padding: 1.2em; box-shadow: 0 2px 12px #0003; }
h1 { font-size: 1.2em; color: #9b1c1c; }
pre.tx { font-family: "Noto Sans Mono CJK SC", monospace; background: #f4f4f4; padding: .6em;
         white-space: pre-wrap; }
.ref { font-size: 1.6em; letter-spacing: .1em; font-weight: bold; }
label { display: block; margin-top: .6em; }
input { font-size: 1.1em; width: 100%; box-sizing: border-box; }
button { font-size: 1.1em; padding: .5em 1.2em; margin-top: .8em; }
#approve { background: #2e8b57; color: #fff; }
#reject { background: #b22222; color: #fff; }
.msg { color: #555; }
.err { color: #b22222; }
"""


class PhonePage:
    """Serve ``phone``'s screen on loopback (``port=0``: any free port) until :meth:`close`."""

    def __init__(self, phone: SoftwarePhone, port: int = 0, *, host: str = "127.0.0.1") -> None:
        if host not in ("127.0.0.1", "::1"):
            raise ConfigurationError("the phone's page binds only to loopback (127.0.0.1 or ::1)")
        self.phone = phone
        self.capability = secrets.token_hex(16)
        self._lock = threading.Lock()
        self._offer: tuple[str, EnrolmentOffer] | None = None
        self._pending: PendingConfirmation | None = None
        self._message = ""
        self._version = 0
        self._server = _Server(self, host, port)
        self.port = int(self._server.server_address[1])
        self._host = f"[{host}]" if ":" in host else host
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="phone-page", daemon=True
        )
        self._thread.start()

    @property
    def origin(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.origin}/p/{self.capability}/"

    def _hosts(self) -> tuple[str, ...]:
        return (f"{self._host}:{self.port}", f"localhost:{self.port}")

    def _origins(self) -> tuple[str, ...]:
        return (self.origin, f"http://localhost:{self.port}")

    # ------------------------------------------------------------------ state
    def refresh(self) -> None:
        """Fetch the bank's open confirmation (when enrolled)."""
        if not self.phone.enrolled:
            return
        try:
            pending = self.phone.pending()
        except EbankAuthError as exc:
            pending, self._message = None, exc.message
        with self._lock:
            old = self._pending.session_id if self._pending else None
            new = pending.session_id if pending else None
            self._pending = pending
            if old != new:
                self._version += 1

    def state(self) -> dict[str, Any]:
        self.refresh()
        with self._lock:
            return {
                "version": self._version,
                "enrolled": self.phone.enrolled,
                "pending": self._pending is not None,
            }

    def open_link(self, link: str) -> None:
        offer = self.phone.open_link(link)
        with self._lock:
            self._offer = (link, offer)
            self._message = ""
            self._version += 1

    def enrol(self, code: str, pin: str) -> None:
        with self._lock:
            offer = self._offer
        if offer is None:
            raise ConfigurationError("scan the bank's enrolment link first")
        self.phone.enrol(offer[0], code, pin)
        with self._lock:
            self._offer = None
            self._message = "Phone shield enrolled."
            self._version += 1

    def decide(self, session_id: str, approve: bool, pin: str) -> str:
        with self._lock:
            pending = self._pending
        if pending is None or not hmac.compare_digest(
            pending.session_id.encode(), session_id.encode()
        ):
            raise ConfigurationError("this confirmation is no longer open: reload")
        status = self.phone.confirm(pending, pin=pin) if approve else self.phone.reject(pending)
        with self._lock:
            self._pending = None
            self._message = f"Confirmation {status}."
            self._version += 1
        return status

    # ------------------------------------------------------------------ page
    def page(self) -> str:
        base = f"/p/{self.capability}/"
        with self._lock:
            offer, pending, message, version = (
                self._offer,
                self._pending,
                self._message,
                self._version,
            )
        parts = [
            "<!DOCTYPE html>",
            '<html lang="zh"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            "<title>Bank app — phone shield</title>",
            f'<link rel="stylesheet" href="{base}style.css">',
            f'<script src="{base}page.js" defer></script>',
            "</head>",
            f'<body data-version="{version}" data-state="{base}state.json">',
            '<div class="phone"><h1>手机盾 Phone shield</h1>',
        ]
        if message:
            parts.append(f'<p class="msg" id="message">{html.escape(message)}</p>')
        if not self.phone.enrolled and offer is None:
            parts += [
                f'<form method="post" action="{base}open">',
                '<label for="link">Scan the QR code (enrolment link)</label>',
                '<input id="link" name="link" autocomplete="off">',
                '<button type="submit" id="scan">Scan</button></form>',
            ]
        elif not self.phone.enrolled and offer is not None:
            o = offer[1]
            parts += [
                "<p>Check that the bank's page shows this reference code:</p>",
                f'<p class="ref" id="reference">{html.escape(o.reference_code)}</p>',
                f"<p>Certificate for: {html.escape(o.subject)}</p>",
                f'<form method="post" action="{base}enrol">',
                '<label for="code">Authorisation code (SMS)</label>',
                '<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code">',
                '<label for="pin">New PIN (6 digits or more)</label>',
                '<input id="pin" name="pin" type="password" inputmode="numeric">',
                '<button type="submit" id="enrol">Enrol</button></form>',
            ]
        elif pending is None:
            parts.append('<p class="msg" id="idle">No transaction to confirm.</p>')
        else:
            sid = html.escape(pending.session_id)
            parts += [
                "<p>Confirm this transaction:</p>",
                f'<pre class="tx" id="transaction">{html.escape(pending.transaction.display_text())}</pre>',
                f'<form method="post" action="{base}confirm">',
                f'<input type="hidden" name="session" value="{sid}">',
                '<label for="pin">PIN</label>',
                '<input id="pin" name="pin" type="password" inputmode="numeric">',
                '<button type="submit" name="choice" value="approve" id="approve">Approve 确认</button>',
                '<button type="submit" name="choice" value="reject" id="reject">Reject 取消</button>',
                "</form>",
            ]
        parts.append("</div></body></html>")
        return "\n".join(parts)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> PhonePage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, page: PhonePage, host: str, port: int) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.page = page
        super().__init__((host, port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "ebank-auth-phone-page"
    sys_version = ""
    timeout = 15

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("phone page: " + format, *args)

    def _send(self, status: int, body: bytes, ctype: str, **extra: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (*_HEADERS, *extra.items()):
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _text(self, status: int, text: str) -> None:
        self._send(status, text.encode("utf-8"), "text/plain; charset=utf-8")

    def _route(self) -> tuple[str, str] | None:
        page = self.server.page
        if self.headers.get("Host", "") not in page._hosts():
            self._text(421, "this page answers only on its loopback address")
            return None
        parts = urlsplit(self.path)
        prefix = "/p/"
        cap, sep, rest = parts.path[len(prefix) :].partition("/")
        if (
            not parts.path.startswith(prefix)
            or not sep
            or not hmac.compare_digest(cap.encode(), page.capability.encode())
        ):
            self._text(404, "not found")
            return None
        return rest, parts.query

    def _back(self) -> None:
        self._send(303, b"", "text/plain", Location=f"/p/{self.server.page.capability}/")

    def do_GET(self) -> None:
        route = self._route()
        if route is None:
            return
        rest, query = route
        page = self.server.page
        if rest == "":
            page.refresh()
            self._send(200, page.page().encode("utf-8"), "text/html; charset=utf-8")
        elif rest == "state.json":
            self._send(200, json.dumps(page.state()).encode(), "application/json")
        elif rest == "page.js":
            self._send(200, _SCRIPT.encode(), "text/javascript; charset=utf-8")
        elif rest == "style.css":
            self._send(200, _STYLE.encode(), "text/css; charset=utf-8")
        elif rest == "open":  # "scan": open the enrolment link
            link = (parse_qs(query).get("link") or [""])[0]
            self._act(lambda: page.open_link(link))
        else:
            self._text(404, "not found")

    def _act(self, action: Any) -> None:
        try:
            action()
        except EbankAuthError as exc:
            with self.server.page._lock:
                self.server.page._message = f"Refused: {exc.message}"
                self.server.page._version += 1
        self._back()

    def do_POST(self) -> None:
        route = self._route()
        if route is None:
            return
        rest, _ = route
        page = self.server.page
        origin = self.headers.get("Origin")
        if origin is not None and origin not in page._origins():
            self._text(403, "refused: only the phone's own page can act on it")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._text(411, "send the form with a Content-Length")
            return
        if not 0 <= length <= _MAX_FORM:
            self._text(413, "form too large")
            return
        if (
            self.headers.get("Content-Type", "").split(";")[0].strip()
            != "application/x-www-form-urlencoded"
        ):
            self._text(415, "send the page's form")
            return
        try:
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode("utf-8")).items()}
        except (UnicodeDecodeError, ValueError):
            self._text(400, "malformed form")
            return
        if rest == "open":
            self._act(lambda: page.open_link(form.get("link", "")))
        elif rest == "enrol":
            self._act(lambda: page.enrol(form.get("code", ""), form.get("pin", "")))
        elif rest == "confirm":
            choice = form.get("choice")
            if choice not in ("approve", "reject"):
                self._text(400, "malformed form: reload the page")
                return
            self._act(
                lambda: page.decide(
                    form.get("session", ""), choice == "approve", form.get("pin", "")
                )
            )
        else:
            self._text(404, "not found")
