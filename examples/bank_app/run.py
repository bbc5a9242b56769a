"""Start the reference bank app alone:

    python examples/bank_app/run.py --host 127.0.0.1 --port 8000 [--state DIR]

The state directory (default ``examples/bank_app/var/``, git-ignored) holds the SQLite
database and the app's keys; it is created, and the demo customers seeded, on the
first run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from app import create_app  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ebank-auth reference bank app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--state", default=str(HERE / "var"), help="state directory")
    parser.add_argument("--idle", type=float, default=300.0, help="idle logout, seconds")
    parser.add_argument("--no-demo", action="store_true", help="hide the demo SMS outbox page")
    parser.add_argument(
        "--agent-url", default="http://127.0.0.1:8765", help="the local signing agent's URL"
    )
    parser.add_argument(
        "--token-root",
        action="append",
        type=Path,
        default=[],
        help="a USB Key manufacturer root certificate (PEM) to trust; repeatable",
    )
    parser.add_argument(
        "--emulator-token",
        type=Path,
        default=None,
        help="trust the TEST manufacturer of the software token in this state directory (demo)",
    )
    parser.add_argument(
        "--staff-key",
        action="append",
        type=Path,
        default=[],
        help="PEM public key of the demo staff member's USB Key login key (back office)",
    )
    parser.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="state store URL (default: SQLite in the state directory; postgresql://…, "
        "redis://…, redis+cluster://… for several workers)",
    )
    parser.add_argument(
        "--rp-id",
        default=None,
        help="passkeys: the WebAuthn RP ID (the bank's domain); default: the demo's localhost, "
        "taken from a request to http://localhost:PORT",
    )
    parser.add_argument(
        "--origin",
        action="append",
        default=[],
        help="passkeys: an exact origin allowed to answer (scheme://host[:port]); repeatable; "
        "needs --rp-id",
    )
    parser.add_argument(
        "--passkey-usernameless",
        action="store_true",
        help="offer 'sign in with a passkey' before the username (the password still follows)",
    )
    parser.add_argument(
        "--phone-attestation-root",
        action="append",
        type=Path,
        default=[],
        help="phone shield: a TEST key-attestation root (PEM/DER) to trust instead of Google's "
        "hardware roots; repeatable (`ebank-auth phone attestation-root` prints the software "
        "phone's)",
    )
    parser.add_argument(
        "--emulator-phone",
        type=Path,
        default=None,
        help="phone shield: trust the software phone in this state directory (demo)",
    )
    parser.add_argument(
        "--public-url",
        default=None,
        help="phone shield: the bank's URL the phone reaches (in the enrolment link); default: "
        "the URL of the request",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = create_app(
        args.state,
        demo=not args.no_demo,
        idle_seconds=args.idle,
        agent_url=args.agent_url,
        token_roots=tuple(args.token_root),
        software_token_state=args.emulator_token,
        staff_keys=tuple(args.staff_key),
        store_url=args.store,
        passkey_rp_id=args.rp_id,
        passkey_origins=tuple(args.origin),
        passkey_usernameless=args.passkey_usernameless,
        phone_attestation_roots=tuple(args.phone_attestation_root),
        software_phone_state=args.emulator_phone,
        phone_url=args.public_url,
    )
    app.run(host=args.host, port=args.port, threaded=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
