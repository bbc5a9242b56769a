"""Where ebank-auth keeps its files by default: one place for every command and service.

``EBANK_AUTH_HOME`` if set, otherwise ``$XDG_DATA_HOME/ebank-auth`` (``~/.local/share/ebank-auth``
when ``XDG_DATA_HOME`` is unset), following the XDG base-directory convention.  Each part has
its own sub-directory and may be moved on its own by its own environment variable:

=====================  ================================  ==========================
what                   default                           override
=====================  ================================  ==========================
everything             ``$XDG_DATA_HOME/ebank-auth``     ``EBANK_AUTH_HOME``
software token state   ``<home>/token``                  ``EBANK_AUTH_TOKEN_STATE``
default SQLite store   ``<home>/ebank-auth.db``          ``EBANK_AUTH_STORE`` (a URL)
=====================  ================================  ==========================

Nothing here creates a directory: the code that writes a file creates what it needs.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_store_url", "home", "token_state_dir"]


def home() -> Path:
    """The root of ebank-auth's files (``EBANK_AUTH_HOME`` or the XDG data directory)."""
    env = os.environ.get("EBANK_AUTH_HOME")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ebank-auth"


def token_state_dir() -> Path:
    """The software token's state directory (``EBANK_AUTH_TOKEN_STATE`` or ``<home>/token``)."""
    env = os.environ.get("EBANK_AUTH_TOKEN_STATE")
    return Path(env) if env else home() / "token"


def default_store_url() -> str:
    """The state store used when none is given (``EBANK_AUTH_STORE`` or SQLite in ``<home>``)."""
    env = os.environ.get("EBANK_AUTH_STORE")
    return env if env else f"sqlite:///{home() / 'ebank-auth.db'}"
