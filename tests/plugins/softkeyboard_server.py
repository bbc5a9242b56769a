"""A tiny stand-alone Flask server for the browser soft-keyboard tests.

It speaks exactly what the bank app speaks (endpoint and form-field names, the strict
Content-Security-Policy) so ``examples/bank_app/static/js/softkeyboard.js`` is tested on its own:

- ``GET /softkeyboard/session`` -> the :meth:`KeyboardLayout.client_view` JSON of a new session;
- ``POST /softkeyboard/switch`` (JSON ``{"session_id": …}``) -> the view of the SYSTEM session that
  replaces it (:meth:`SoftKeyboard.switch_to_system`);
- ``POST /softkeyboard/submit`` (form ``sk_session``, ``sk_keystrokes``, ``sk_commitment``,
  ``sk_switched``) -> :meth:`SoftKeyboard.submit`; the decoded result is recorded for the test.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, jsonify, request, send_from_directory
from werkzeug.serving import make_server

from ebank_auth.crypto import sm2
from ebank_auth.errors import SoftKeyboardError
from ebank_auth.softkeyboard import KeyboardLayout, KeyboardMode, SoftKeyboard
from ebank_auth.store import MemoryStore

STATIC = Path(__file__).resolve().parents[2] / "examples" / "bank_app" / "static"
VENDORED = STATIC / "vendor" / "VENDORED.md"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
FIELDS = ("sk_session", "sk_keystrokes", "sk_commitment", "sk_switched")


def vendored_files() -> dict[str, str]:
    """file (relative to static/vendor) -> recorded SRI value, read from VENDORED.md."""
    rows = re.findall(
        r"^\|\s*[\w-]+\s*\|\s*[\w.]+\s*\|\s*(\S+)\s*\|\s*(sha384-\S+)\s*\|",
        VENDORED.read_text(encoding="utf-8"),
        re.M,
    )
    return dict(rows)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>soft keyboard</title>
{scripts}
</head><body>
<form data-softkeyboard method="post" action="/softkeyboard/submit"
      data-session-url="/softkeyboard/session{query}" data-switch-url="/softkeyboard/switch">
  <input class="sk-mask" id="sk-mask">
  <div class="sk-keyboard" id="sk-keyboard"></div>
  <button type="button" class="sk-backspace" id="sk-backspace">&#x232b;</button>
  <button type="button" class="sk-switch" id="sk-switch">use the system keyboard</button>
  <button type="submit" id="sk-submit">Log in</button>
</form>
{extra}
</body></html>
"""

INLINE_PROBE = "<script>document.title = 'inline script ran';</script>"


@dataclass
class Submission:
    form: dict[str, str]
    value: str | None = None
    system_keyboard: bool | None = None
    error: str | None = None


@dataclass
class KeyboardServer:
    keyboard: SoftKeyboard
    url: str = ""
    layouts: dict[str, KeyboardLayout] = field(default_factory=dict)
    submissions: list[Submission] = field(default_factory=list)

    def labels(self, session_id: str) -> dict[str, str]:
        """label -> key id of a session the browser opened (what only the server knows)."""
        return {label: key_id for key_id, label in self.layouts[session_id].keys}


def _app(server: KeyboardServer) -> Flask:
    app = Flask(__name__, static_folder=None)
    scripts = (
        "\n".join(
            f'<script src="/static/vendor/{name}" integrity="{sri}"></script>'
            for name, sri in vendored_files().items()
        )
        + '\n<script src="/static/js/softkeyboard.js"></script>'
    )

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    def page(extra: str = "") -> Response:
        mode = request.args.get("mode", "")
        query = f"?mode={mode}" if mode in ("digits", "alphanumeric") else ""
        html = PAGE.format(scripts=scripts, query=query, extra=extra)
        return Response(html, mimetype="text/html")

    @app.get("/")
    def index() -> Response:
        return page()

    @app.get("/inline")
    def inline() -> Response:  # a control page: proves the CSP check can see a violation
        return page(INLINE_PROBE)

    @app.get("/static/<path:name>")
    def static(name: str) -> Response:
        return send_from_directory(STATIC, name)

    @app.get("/softkeyboard/session")
    def session() -> Response:
        layout = server.keyboard.open(KeyboardMode(request.args.get("mode", "digits")))
        server.layouts[layout.session_id] = layout
        return jsonify(layout.client_view())

    @app.post("/softkeyboard/switch")
    def switch() -> Response:
        body: Any = request.get_json(silent=True) or {}
        try:
            layout = server.keyboard.switch_to_system(str(body.get("session_id", "")))
        except SoftKeyboardError:
            abort(400)
        server.layouts[layout.session_id] = layout
        return jsonify(layout.client_view())

    @app.post("/softkeyboard/submit")
    def submit() -> tuple[str, int]:
        form = {k: str(v) for k, v in request.form.items()}
        sub = Submission(form=form)
        server.submissions.append(sub)
        try:
            hexes = json.loads(form.get("sk_keystrokes", ""))
            if not isinstance(hexes, list):
                raise ValueError("not a list")
            keystrokes = [bytes.fromhex(str(h)) for h in hexes]
            commitment = bytes.fromhex(form.get("sk_commitment", ""))
        except ValueError:
            sub.error = "malformed submission"
            return '<p id="result">refused: malformed submission</p>', 400
        try:
            with server.keyboard.submit(
                form.get("sk_session", ""), keystrokes, commitment=commitment
            ) as decoded:
                sub.value = decoded.value.decode()
                sub.system_keyboard = decoded.system_keyboard
        except SoftKeyboardError as exc:
            sub.error = str(exc)
            return '<p id="result">refused</p>', 400
        return '<p id="result">accepted</p>', 200

    return app


@contextmanager
def keyboard_server(private_key: sm2.SM2PrivateKey | None = None) -> Iterator[KeyboardServer]:
    key = private_key or sm2.generate_private_key()
    server = KeyboardServer(SoftKeyboard(MemoryStore(), key))
    httpd = make_server("127.0.0.1", 0, _app(server), threaded=True)
    server.url = f"http://127.0.0.1:{httpd.server_port}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        thread.join(timeout=5)
