"""``ebank-auth lockout``: login lockout status and administrator unlock.

    ebank-auth lockout status USER [--store URL]       exit 0 not locked, 1 locked
    ebank-auth lockout unlock USER [--store URL] --admin ID [--reason TEXT]

Unlocking is always audited, so it needs the audit key (``--audit-key-file`` or
``EBANK_AUTH_AUDIT_HMAC_KEY``).  ``--store`` defaults to ``EBANK_AUTH_STORE``, else
the SQLite store under :func:`ebank_auth.paths.home`.  A store that cannot be
reached exits 3: the lock state is unknown, not "not locked".
"""

from __future__ import annotations

import click

from ebank_auth.audit import AuditLog
from ebank_auth.errors import AccountLocked
from ebank_auth.policy.lockout import LoginLockout

from ._output import Group, emit, examples, json_option, verdict
from ._store import STORE_HELP, open_target
from .audit_cmd import KEY_ENV, load_hmac_key

_store_option = click.option("--store", "store_url", default=None, help=STORE_HELP)
_limit_option = click.option(
    "--limit", default=5, show_default=True, type=click.IntRange(1, 5), help="Failure limit."
)


@click.group(cls=Group)
def lockout() -> None:
    """Login lockout status and unlock."""


@lockout.command(
    epilog=examples(
        "ebank-auth lockout status alice --store sqlite:///var/lib/bank/auth.db",
        "ebank-auth lockout status alice --store redis://127.0.0.1:6379/0 --json",
    )
)
@click.argument("user")
@_store_option
@_limit_option
@json_option
def status(user: str, store_url: str | None, limit: int, as_json: bool) -> None:
    """Show USER's consecutive login failures and lock."""
    store = open_target(store_url)
    try:
        st = LoginLockout(store, limit=limit).status(user)
    finally:
        store.close()
    doc = {
        "user": user,
        "locked": bool(st.locked),
        "failures": st.failures,
        "limit": st.limit,
        "locked_until": st.locked_until.isoformat() if st.locked_until else None,
    }
    if st.locked and st.locked_until is not None:
        verdict(
            False,
            doc,
            f"{user}: locked after {st.failures} failures until {st.locked_until:%Y-%m-%d %H:%M %Z}",
            error=AccountLocked(f"{user} is locked until {st.locked_until.isoformat()}"),
        )
    verdict(True, doc, f"{user}: not locked ({st.failures} of {st.limit} failures today)")


@lockout.command(
    epilog=examples(
        "EBANK_AUTH_AUDIT_HMAC_KEY=… ebank-auth lockout unlock alice --admin ops-17 "
        '--reason "identity checked by phone"',
        "ebank-auth lockout unlock alice --admin ops-17 --audit-key-file audit.key --json",
    )
)
@click.argument("user")
@_store_option
@_limit_option
@click.option("--admin", required=True, help="Administrator id (recorded in the audit log).")
@click.option("--reason", default="", help="Why the login is unlocked.")
@click.option("--audit-key-file", type=click.Path(dir_okay=False), help="Audit HMAC-SM3 key.")
@click.option("--log", "log_name", default="audit", show_default=True, help="Audit log name.")
@json_option
def unlock(
    user: str,
    store_url: str | None,
    limit: int,
    admin: str,
    reason: str,
    audit_key_file: str | None,
    log_name: str,
    as_json: bool,
) -> None:
    """Unlock USER's login (audited)."""
    key = load_hmac_key(audit_key_file)
    if key is None:
        raise click.UsageError(f"unlocking is audited: give --audit-key-file or set {KEY_ENV}")
    store = open_target(store_url)
    try:
        log = AuditLog(store, key, log=log_name)
        before = LoginLockout(store, limit=limit).status(user)
        LoginLockout(store, limit=limit, audit=log).unlock(user, admin=admin, reason=reason)
    finally:
        store.close()
    emit(
        {"user": user, "admin": admin, "failures_before": before.failures, "audited": True},
        f"{user}: unlocked by {admin} (was {before.failures} failures); audited",
    )
