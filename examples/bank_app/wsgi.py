"""The bank app for a WSGI server with several worker processes, e.g.

    EBANK_BANK_STATE=/srv/bank EBANK_BANK_STORE=postgresql://bank:…@db:5432/bank \\
        gunicorn --chdir examples/bank_app -w 4 -b 127.0.0.1:8000 wsgi:app

Every worker builds the same app over the same state directory (its key files) and the same store
URL: sessions, counters, one-time codes, the ledger and the audit log live in the store, so any
worker may serve any request.  Settings come from the environment:

``EBANK_BANK_STATE`` (required) the state directory shared by the workers (key files);
``EBANK_BANK_STORE`` the store URL (default SQLite in the state directory: fine for several
workers on ONE machine); ``EBANK_BANK_AGENT_URL``; ``EBANK_BANK_IDLE`` (seconds);
``EBANK_BANK_DEMO=1`` shows the demo SMS outbox; ``EBANK_BANK_SECURE_COOKIES=1`` behind TLS;
``EBANK_BANK_TOKEN_ROOTS`` (``:``-separated PEM files) or ``EBANK_BANK_EMULATOR_TOKEN`` (dir);
``EBANK_BANK_STAFF_KEYS`` (``:``-separated PEM files).

A store that cannot answer is a refusal everywhere: the app's routes answer 503 themselves, and
``create_app`` turns a failure before any route runs (loading the server-side session from the
store) into a 503 too instead of a bare 500.  A worker that starts while
the store is down (gunicorn replacing a dead worker during an outage) cannot build the app, which
reads the store; rather than failing to boot, which makes gunicorn stop the whole server, it
answers 503 and builds the app at the first request after the store is back (``StartWhenUp``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from app import DEFAULT_AGENT_URL, OUTAGE_HEADERS, OUTAGE_PAGE, create_app  # noqa: E402
from flask import Flask  # noqa: E402
from wiring import errors  # noqa: E402  (wiring is the one module that imports ebank_auth)


class StartWhenUp:
    """A WSGI app that builds the real one with ``build``; while that fails because the store
    cannot answer (``ServiceUnavailable``) it answers 503 and tries again, at most once every
    ``retry`` seconds.  Any other error while building is raised (a configuration error must
    stop the server, not hide behind 503s)."""

    def __init__(self, build: Callable[[], Flask], retry: float = 1.0) -> None:
        self._build = build
        self._retry = retry
        self._lock = threading.Lock()
        self._app: Flask | None = None
        self._next_try = 0.0
        self._try()

    def _try(self) -> Flask | None:
        with self._lock:
            if self._app is None and time.monotonic() >= self._next_try:
                try:
                    self._app = self._build()
                except errors.ServiceUnavailable as exc:
                    self._next_try = time.monotonic() + self._retry
                    logging.getLogger("bank_app").warning(
                        "the store is unavailable, answering 503 until it is back: %s", exc
                    )
            return self._app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        app = self._app or self._try()
        if app is not None:
            return app(environ, start_response)
        start_response(
            "503 Service Unavailable",
            [("Content-Type", "text/html; charset=utf-8"), *OUTAGE_HEADERS.items()],
        )
        return [OUTAGE_PAGE.encode()]


def _paths(name: str) -> tuple[Path, ...]:
    return tuple(Path(p) for p in os.environ.get(name, "").split(os.pathsep) if p)


def _build() -> Flask:
    state = os.environ.get("EBANK_BANK_STATE")
    if not state:
        raise SystemExit("set EBANK_BANK_STATE to the bank app's state directory")
    emulator = os.environ.get("EBANK_BANK_EMULATOR_TOKEN")
    return create_app(
        state,
        demo=os.environ.get("EBANK_BANK_DEMO") == "1",
        idle_seconds=float(os.environ.get("EBANK_BANK_IDLE", "300")),
        secure_cookies=os.environ.get("EBANK_BANK_SECURE_COOKIES") == "1",
        agent_url=os.environ.get("EBANK_BANK_AGENT_URL", DEFAULT_AGENT_URL),
        token_roots=_paths("EBANK_BANK_TOKEN_ROOTS"),
        software_token_state=Path(emulator) if emulator else None,
        staff_keys=_paths("EBANK_BANK_STAFF_KEYS"),
        store_url=os.environ.get("EBANK_BANK_STORE") or None,
    )


app = StartWhenUp(_build)
