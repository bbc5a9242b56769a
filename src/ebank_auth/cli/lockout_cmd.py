"""``ebank-auth lockout``: login lockout status and administrator unlock.

    ebank-auth lockout status USER --store URL        exit 0 not locked, 1 locked
    ebank-auth lockout unlock USER --store URL --admin ID [--reason TEXT]

Unlocking is always audited, so it needs the audit key (``--audit-key-file`` or
``EBANK_AUTH_AUDIT_HMAC_KEY``).  ``--store`` defaults to ``EBANK_AUTH_STORE``.
"""

from __future__ import annotations

import sys

import click

from ebank_auth.audit import AuditLog
from ebank_auth.errors import EbankAuthError
from ebank_auth.policy.lockout import LoginLockout

from .audit_cmd import KEY_ENV, load_hmac_key, store_from_target

_store_option = click.option(
    "--store",
    "store_url",
    envvar="EBANK_AUTH_STORE",
    required=True,
    help="Store URL (sqlite:///path.db, redis://host:port/0) or SQLite path [EBANK_AUTH_STORE].",
)
_limit_option = click.option(
    "--limit", default=5, show_default=True, type=click.IntRange(1, 5), help="Failure limit."
)


@click.group()
def lockout() -> None:
    """Login lockout status and unlock."""


@lockout.command()
@click.argument("user")
@_store_option
@_limit_option
def status(user: str, store_url: str, limit: int) -> None:
    """Show USER's consecutive login failures and lock."""
    try:
        store = store_from_target(store_url)
        try:
            st = LoginLockout(store, limit=limit).status(user)
        finally:
            store.close()
    except EbankAuthError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if st.locked and st.locked_until is not None:
        click.echo(
            f"{user}: locked after {st.failures} failures until {st.locked_until:%Y-%m-%d %H:%M %Z}"
        )
        sys.exit(1)
    click.echo(f"{user}: not locked ({st.failures} of {st.limit} failures today)")


@lockout.command()
@click.argument("user")
@_store_option
@_limit_option
@click.option("--admin", required=True, help="Administrator id (recorded in the audit log).")
@click.option("--reason", default="", help="Why the login is unlocked.")
@click.option("--audit-key-file", type=click.Path(dir_okay=False), help="Audit HMAC-SM3 key.")
@click.option("--log", "log_name", default="audit", show_default=True, help="Audit log name.")
def unlock(
    user: str,
    store_url: str,
    limit: int,
    admin: str,
    reason: str,
    audit_key_file: str | None,
    log_name: str,
) -> None:
    """Unlock USER's login (audited)."""
    key = load_hmac_key(audit_key_file)
    if key is None:
        raise click.UsageError(f"unlocking is audited: give --audit-key-file or set {KEY_ENV}")
    try:
        store = store_from_target(store_url)
        try:
            log = AuditLog(store, key, log=log_name)
            before = LoginLockout(store, limit=limit).status(user)
            LoginLockout(store, limit=limit, audit=log).unlock(user, admin=admin, reason=reason)
        finally:
            store.close()
    except EbankAuthError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"{user}: unlocked by {admin} (was {before.failures} failures); audited")
