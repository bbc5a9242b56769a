"""Opening the state store named on the command line (default: :func:`ebank_auth.paths.default_store_url`)."""

from __future__ import annotations

from pathlib import Path

import click

from ebank_auth import paths
from ebank_auth.store import Store, open_store

STORE_HELP = (
    "Store URL (sqlite:///path.db, redis://host:port/0, postgresql://user@host/db) or SQLite file "
    "[env EBANK_AUTH_STORE; default: SQLite under $EBANK_AUTH_HOME or ~/.local/share/ebank-auth]."
)


def default_store() -> str:
    """The store every command uses when none is given."""
    return paths.default_store_url()


def open_target(target: str | None, *, must_exist: bool = False) -> Store:
    """Open a store from a URL, or a plain path as SQLite; None is the default store.

    The default store's directory is created (mode 0700) on first use; any other
    plain path must exist, so a typo is an error rather than a new empty store.
    ``must_exist`` (commands that only read, such as ``audit verify``): a SQLite store
    given by URL or the default one must exist too; nothing is created.
    """
    if target is None:
        target = paths.default_store_url()
    if must_exist and target.startswith("sqlite:"):
        rest = target.split(":", 1)[1]
        file = rest[2:].partition("?")[0] if rest.startswith("//") else ""
        if file and not Path(file).is_file():
            raise click.UsageError(
                f"{target}: no such SQLite store (check the path; nothing was created)"
            )
    if must_exist and target.split(":", 1)[0].lower() in ("postgresql", "postgres"):
        # read-only commands never create the tables of a PostgreSQL store either
        target += ("&" if "?" in target else "?") + "create=0"
    if target == f"sqlite:///{paths.home() / 'ebank-auth.db'}":
        paths.home().mkdir(mode=0o700, parents=True, exist_ok=True)
    if "://" in target:
        return open_store(target)
    p = Path(target)
    if not p.is_file():
        raise click.UsageError(f"{target}: no such file (give a store URL or an existing path)")
    return open_store(f"sqlite://{p.resolve()}")
