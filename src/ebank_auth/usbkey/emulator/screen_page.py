"""The software token's screen and button as a small web page ("the token's screen").

:class:`WebScreen` is a :class:`~ebank_auth.usbkey.emulator.display.ConfirmationDevice` that
serves, on the host's loopback, a page showing what the token shows *now* (the screens of
:func:`~ebank_auth.usbkey.display_layout.layout_text`, each with its ``i/n`` status bar) with
**Approve** and **Reject** buttons, so a person — or a browser test — presses the token's
button.  :meth:`WebScreen.wait_button` blocks until a press or the timeout.

The page stands in for a *physical* button, so nothing but the person at the screen may press
it — in particular no other web page open in the same browser:

* the URL carries a random capability, ``/s/<32 hex>/``; every other path answers 404;
* a press is a ``POST /s/<cap>/press`` whose ``Origin`` is the screen's own origin (no
  ``Origin`` at all is accepted for non-browser clients such as ``urllib``), whose ``Host``
  is the screen's loopback address (no DNS rebinding), and which carries the per-confirmation
  nonce hidden in the form: a press applies only to the confirmation it was shown for;
* a strict Content-Security-Policy (no inline script or style; the page refreshes itself with
  a tiny static script polling ``GET /s/<cap>/state.json`` every 500 ms),
  ``X-Frame-Options: DENY`` and ``frame-ancestors 'none'`` (no click-jacking), no caching.

:func:`screen_token` is a card factory for the token daemon and the sandbox::

    python -m ebank_auth.usbkey.emulator.sandbox --token-state DIR \\
        --card ebank_auth.usbkey.emulator.screen_page:screen_token -- COMMAND

It writes ``DIR/screen.json`` (``{"url": …, "pid": …}``, mode 0600) so a demo or test finds
the page, and removes it when the token stops.  The port comes from
``EBANK_AUTH_TOKEN_SCREEN_PORT`` (default: any free port).  The daemon reaches a vpcd in a
private network namespace through a helper thread (:mod:`ebank_auth.usbkey.emulator.netns`),
so the page itself is always bound on the *host's* loopback, where the browser is.
"""

from __future__ import annotations

import contextlib
import hmac
import html
import json
import logging
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

from ebank_auth.errors import ConfigurationError
from ebank_auth.usbkey.display_layout import TOKEN_SCREEN, Screen, ScreenGeometry
from ebank_auth.usbkey.emulator.applets import AppletRouter
from ebank_auth.usbkey.emulator.card import token_card
from ebank_auth.usbkey.emulator.display import ConfirmationDevice, DisplayChoice

__all__ = [
    "SCREEN_FILE",
    "SCREEN_PORT_ENV",
    "ScreenToken",
    "WebScreen",
    "screen_token",
]

logger = logging.getLogger("ebank_auth.usbkey.emulator.screen_page")

#: Where :func:`screen_token` publishes the page's URL, inside the token's state directory.
SCREEN_FILE: Final = "screen.json"
#: Environment variable with the port for :func:`screen_token` (unset: any free port).
SCREEN_PORT_ENV: Final = "EBANK_AUTH_TOKEN_SCREEN_PORT"

_MAX_FORM: Final = 1024
_POLL_MS: Final = 500
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY_HEADERS: Final = (
    ("Content-Security-Policy", _CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    # same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null" with the
    # page's own form posts, which the press check refuses; same-origin still never lets the
    # capability URL leave in a Referer to another site
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)

# Static assets: no inline script or style anywhere (the CSP forbids both).
_SCRIPT: Final = f"""\
"use strict";
(function () {{
  var body = document.body;
  var known = body.getAttribute("data-version");
  var url = body.getAttribute("data-state");
  function poll() {{
    fetch(url, {{cache: "no-store", credentials: "omit"}})
      .then(function (r) {{ return r.ok ? r.json() : null; }})
      .then(function (s) {{
        if (s && String(s.version) !== known) {{ window.location.reload(); }}
      }})
      .catch(function () {{}})
      .finally(function () {{ window.setTimeout(poll, {_POLL_MS}); }});
  }}
  window.setTimeout(poll, {_POLL_MS});
}})();
"""
_STYLE: Final = """\
body { font-family: sans-serif; margin: 2em; background: #eef1f4; }
.token { display: inline-block; background: #1d2733; color: #d6f5d6; padding: 1em 1.5em;
         border-radius: 12px; }
.screen { margin: 0 0 1em 0; }
.status { color: #8fa8a0; font-size: 0.85em; }
pre.row { font-family: "Noto Sans Mono CJK SC", "WenQuanYi Zen Hei Mono", monospace;
          margin: 0; font-size: 1.1em; }
form { display: inline-block; margin-right: 1em; }
button { font-size: 1.2em; padding: 0.4em 1.4em; }
#approve { background: #2e8b57; color: white; }
#reject { background: #b22222; color: white; }
.idle { color: #8fa8a0; }
"""


@dataclass(frozen=True)
class _Showing:
    """One confirmation on the screen: its text, screens and the nonce its buttons carry."""

    text: str
    screens: tuple[Screen, ...]
    nonce: str


class WebScreen(ConfirmationDevice):
    """The token's screen and button as a loopback web page (see the module docstring).

    ``port=0`` takes any free port; :attr:`url` is the page (with its capability).  The
    server starts at once and runs until :meth:`close`.  Only ``127.0.0.1`` and ``::1`` are
    accepted as ``host``: the page is a button, never to be reachable from the network.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        geometry: ScreenGeometry = TOKEN_SCREEN,
    ) -> None:
        super().__init__(geometry)
        if host not in ("127.0.0.1", "::1"):
            raise ConfigurationError(
                f"the token's screen binds only to loopback (127.0.0.1 or ::1), not {host!r}"
            )
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigurationError(f"screen port {port!r} is not a TCP port (0-65535)")
        self.capability = secrets.token_hex(16)
        self._cond = threading.Condition()
        self._showing: _Showing | None = None
        self._decision: DisplayChoice | None = None
        self._version = 0
        self._server = _ScreenServer(self, host, port)
        self.port: int = int(self._server.server_address[1])
        self._host_text = f"[{host}]" if ":" in host else host
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="token-screen", daemon=True
        )
        self._thread.start()
        logger.info("token screen served on loopback port %d", self.port)

    # ------------------------------------------------------------------ addresses
    @property
    def origin(self) -> str:
        """The page's origin (``http://127.0.0.1:PORT``)."""
        return f"http://{self._host_text}:{self.port}"

    @property
    def url(self) -> str:
        """The page's URL, capability included: whoever has it can press the button."""
        return f"{self.origin}/s/{self.capability}/"

    def _own_origins(self) -> tuple[str, ...]:
        return (self.origin, f"http://localhost:{self.port}")

    def _own_hosts(self) -> tuple[str, ...]:
        return (f"{self._host_text}:{self.port}", f"localhost:{self.port}")

    # ------------------------------------------------------------------ ConfirmationDevice
    def _render_screens(self, screens: tuple[Screen, ...]) -> None:
        text = self.shown[-1] if self.shown else ""
        with self._cond:
            self._showing = _Showing(text, screens, secrets.token_hex(16))
            self._decision = None
            self._version += 1
            self._cond.notify_all()

    def wait_button(self, text: str, timeout: float) -> DisplayChoice:
        with self._cond:
            showing = self._showing
            if showing is None or showing.text != text:
                return DisplayChoice.TIMEOUT  # nothing (or something else) is on the screen
            self._cond.wait_for(
                lambda: self._decision is not None or self._showing is not showing, timeout
            )
            decision = self._decision if self._showing is showing else None
            # the confirmation is over whatever happened: its nonce presses nothing any more
            if self._showing is showing:
                self._showing = None
                self._version += 1
            self._decision = None
            self._cond.notify_all()
        return decision if decision is not None else DisplayChoice.TIMEOUT

    def clear(self) -> None:
        with self._cond:
            if self._showing is not None:
                self._showing = None
                self._decision = None
                self._version += 1
                self._cond.notify_all()

    # ------------------------------------------------------------------ presses
    def press(self, nonce: str, choice: DisplayChoice) -> bool:
        """Press ``choice`` for the confirmation whose nonce is ``nonce``.

        False (nothing changes) when no confirmation is shown, the nonce belongs to another
        one, or this confirmation was already decided."""
        if choice not in (DisplayChoice.APPROVE, DisplayChoice.REJECT):
            return False
        with self._cond:
            showing = self._showing
            if showing is None or self._decision is not None:
                return False
            if not hmac.compare_digest(nonce.encode("ascii", "replace"), showing.nonce.encode()):
                return False
            self._decision = choice
            self._cond.notify_all()
        logger.info("token button pressed: %s", choice.value)
        return True

    def state(self) -> dict[str, Any]:
        """What the page shows now (``state.json``): version, screens; never the nonce."""
        with self._cond:
            showing, version = self._showing, self._version
        return {
            "version": version,
            "showing": showing is not None,
            "screens": []
            if showing is None
            else [
                {"number": s.number, "count": s.count, "rows": list(s.rows)}
                for s in showing.screens
            ],
        }

    def _page(self) -> str:
        with self._cond:
            showing, version = self._showing, self._version
        base = f"/s/{self.capability}/"
        parts = [
            "<!DOCTYPE html>",
            '<html lang="zh"><head><meta charset="utf-8">',
            "<title>Token screen</title>",
            f'<link rel="stylesheet" href="{base}style.css">',
            f'<script src="{base}screen.js" defer></script>',
            "</head>",
            f'<body data-version="{version}" data-state="{base}state.json">',
            '<div class="token">',
        ]
        if showing is None:
            parts.append('<p class="idle" id="idle">No transaction to confirm.</p>')
        else:
            for screen in showing.screens:
                parts.append(f'<div class="screen" data-screen="{screen.number}">')
                parts.append(f'<div class="status">{screen.number}/{screen.count}</div>')
                parts.extend(f'<pre class="row">{html.escape(row)}</pre>' for row in screen.rows)
                parts.append("</div>")
            nonce = html.escape(showing.nonce)
            for choice, label in (("approve", "Approve 确认"), ("reject", "Reject 取消")):
                parts.append(
                    f'<form method="post" action="{base}press">'
                    f'<input type="hidden" name="nonce" value="{nonce}">'
                    f'<input type="hidden" name="choice" value="{choice}">'
                    f'<button type="submit" id="{choice}">{label}</button></form>'
                )
        parts.append("</div></body></html>")
        return "\n".join(parts)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Stop serving the page (a waiting confirmation times out)."""
        self.clear()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> WebScreen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ScreenServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, screen: WebScreen, host: str, port: int) -> None:
        import socket

        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.screen = screen
        super().__init__((host, port), _ScreenHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that went away mid-answer (a closed tab) is no error worth a traceback on
        # stderr; anything else is logged once, without the request
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, TimeoutError)):
            logger.debug("client went away: %s", type(exc).__name__)
            return
        logger.error("request handling failed", exc_info=True)


class _ScreenHandler(BaseHTTPRequestHandler):
    server: _ScreenServer
    server_version = "ebank-auth-token-screen"
    sys_version = ""
    timeout = 15

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("screen: " + format, *args)

    # -------------------------------------------------------------- responses
    def _send(self, status: int, body: bytes, content_type: str, **extra: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in _SECURITY_HEADERS:
            self.send_header(name, value)
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _text(self, status: int, text: str) -> None:
        self._send(status, text.encode("utf-8"), "text/plain; charset=utf-8")

    def _route(self) -> str | None:
        """The path after ``/s/<cap>/`` ('' for the page), or None (answered 404/421)."""
        screen = self.server.screen
        if self.headers.get("Host", "") not in screen._own_hosts():
            self._text(421, "this page answers only on its loopback address")
            return None
        prefix = "/s/"
        path = self.path.split("?", 1)[0]
        if not path.startswith(prefix):
            self._text(404, "not found")
            return None
        cap, sep, rest = path[len(prefix) :].partition("/")
        if not sep or not hmac.compare_digest(cap.encode(), screen.capability.encode()):
            self._text(404, "not found")
            return None
        return rest

    # -------------------------------------------------------------- methods
    def do_GET(self) -> None:
        rest = self._route()
        if rest is None:
            return
        screen = self.server.screen
        if rest == "":
            self._send(200, screen._page().encode("utf-8"), "text/html; charset=utf-8")
        elif rest == "state.json":
            body = json.dumps(screen.state(), ensure_ascii=False).encode("utf-8")
            self._send(200, body, "application/json; charset=utf-8")
        elif rest == "screen.js":
            self._send(200, _SCRIPT.encode(), "text/javascript; charset=utf-8")
        elif rest == "style.css":
            self._send(200, _STYLE.encode(), "text/css; charset=utf-8")
        else:
            self._text(404, "not found")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        rest = self._route()
        if rest is None:
            return
        screen = self.server.screen
        if rest != "press":
            self._text(404, "not found")
            return
        origin = self.headers.get("Origin")
        if origin is not None and origin not in screen._own_origins():
            logger.warning("token button press refused: foreign origin")
            self._text(403, "refused: only the token's own screen page can press its button")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._text(411, "send the form with a Content-Length")
            return
        if not 0 <= length <= _MAX_FORM:
            self._text(413, "form too large")
            return
        ctype = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            self._text(415, "send the page's form (application/x-www-form-urlencoded)")
            return
        try:
            form = parse_qs(self.rfile.read(length).decode("ascii"), strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            self._text(400, "malformed form")
            return
        nonce, choice = form.get("nonce", []), form.get("choice", [])
        choices = {"approve": DisplayChoice.APPROVE, "reject": DisplayChoice.REJECT}
        if len(nonce) != 1 or len(choice) != 1 or choice[0] not in choices:
            self._text(400, "malformed form: reload the page")
            return
        if not screen.press(nonce[0], choices[choice[0]]):
            self._text(409, "this confirmation is no longer on the token's screen: reload")
            return
        self._send(303, b"", "text/plain", Location=f"/s/{screen.capability}/")


# ---------------------------------------------------------------------- card factory
def _write_private(path: Path, text: str) -> None:
    """Atomically write ``text`` to ``path`` with mode 0600."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class ScreenToken(AppletRouter):
    """The software token with a :class:`WebScreen`; :meth:`close` stops the page and removes
    ``screen.json`` (the token daemon calls it when it stops)."""

    def __init__(self, state_dir: Path | None, screen: WebScreen) -> None:
        router = token_card(state_dir, screen)
        super().__init__(router.applets)
        self.screen = screen
        self._screen_file = None if state_dir is None else Path(state_dir) / SCREEN_FILE
        if self._screen_file is not None:
            doc = {"url": screen.url, "pid": os.getpid()}
            _write_private(self._screen_file, json.dumps(doc))

    def close(self) -> None:
        if self._screen_file is not None:
            with contextlib.suppress(OSError):
                self._screen_file.unlink()
        self.screen.close()


def _port_from_env() -> int:
    raw = os.environ.get(SCREEN_PORT_ENV, "").strip()
    if not raw:
        return 0
    try:
        port = int(raw)
    except ValueError:
        raise ConfigurationError(f"{SCREEN_PORT_ENV}={raw!r} is not a TCP port number") from None
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"{SCREEN_PORT_ENV}={raw!r} is not a TCP port (0-65535)")
    return port


def screen_token(state_dir: Path | None) -> ScreenToken:
    """Card factory (``--card ebank_auth.usbkey.emulator.screen_page:screen_token``): the
    software token whose screen and button are a loopback web page; its URL is written to
    ``<state_dir>/screen.json`` (0600) and the port taken from ``EBANK_AUTH_TOKEN_SCREEN_PORT``."""
    screen = WebScreen(_port_from_env())
    try:
        return ScreenToken(state_dir, screen)
    except BaseException:
        screen.close()
        raise
