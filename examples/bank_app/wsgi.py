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
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from app import DEFAULT_AGENT_URL, create_app  # noqa: E402


def _paths(name: str) -> tuple[Path, ...]:
    return tuple(Path(p) for p in os.environ.get(name, "").split(os.pathsep) if p)


def _build() -> object:
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


app = _build()
