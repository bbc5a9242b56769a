"""Find a token, decide what to trust, and open it: the connection helpers apps and the CLI share.

:func:`open_token` is the one call an app needs::

    from ebank_auth.usbkey import open_token

    with open_token() as token:              # first reader with a card, trust from the defaults
        token.verify_pin(pin)
        signature = token.sign_message(b"login challenge")

It checks in the order a first-time user needs to hear about problems: the PC/SC service
(:class:`~ebank_auth.errors.PcscUnavailable`), a reader
(:class:`~ebank_auth.errors.ReaderNotFound`), a token in it
(:class:`~ebank_auth.errors.CardNotPresent`), and only then what to trust
(:class:`~ebank_auth.errors.ConfigurationError` when no manufacturer root is configured) and
whether the token is genuine (:class:`~ebank_auth.errors.TokenNotGenuine`).

Trust resolution (:func:`resolve_trust`), first match wins:

1. the ``roots`` / ``allowlist`` arguments;
2. ``EBANK_AUTH_TOKEN_ROOTS`` (paths separated by ``os.pathsep``) and
   ``EBANK_AUTH_FIRMWARE_ALLOWLIST``;
3. only when the caller names a software token with ``software_token_state`` (the CLI's
   ``--emulator``): that token's *test* manufacturer, published in
   ``<state>/manufacturer/root.pem`` and ``firmware-allowlist.json``.  Nothing is trusted
   from a default directory: a user-writable directory is no trust anchor.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from ebank_auth.errors import ConfigurationError
from ebank_auth.usbkey.attestation import TrustConfig
from ebank_auth.usbkey.manufacturer import (
    ALLOWLIST_FILENAME,
    MANUFACTURER_DIRNAME,
    ROOT_CERT_FILENAME,
)
from ebank_auth.usbkey.session import TokenSession
from ebank_auth.usbkey.token import Token
from ebank_auth.usbkey.transport.base import Connection

__all__ = [
    "ALLOWLIST_ENV",
    "ROOTS_ENV",
    "TransportName",
    "open_connection",
    "open_token",
    "resolve_trust",
]

ROOTS_ENV = "EBANK_AUTH_TOKEN_ROOTS"
ALLOWLIST_ENV = "EBANK_AUTH_FIRMWARE_ALLOWLIST"

TransportName = Literal["pcsc", "hid"]


def resolve_trust(
    roots: Sequence[Path] = (),
    allowlist: Path | None = None,
    *,
    software_token_state: Path | None = None,
    require_genuine: bool = True,
) -> TrustConfig:
    """The :class:`TrustConfig` to check tokens with (order in the module docstring).

    ``software_token_state`` is an explicit choice to trust the test manufacturer of the software
    token in that directory (tests, demos); without roots, environment or it, nothing is trusted.
    ``require_genuine=False`` (development only) returns a configuration that checks nothing.
    Raises :class:`ConfigurationError` when no manufacturer root is found anywhere, and
    :class:`~ebank_auth.errors.EncodingError` when a configured file cannot be read."""
    if not require_genuine:
        return TrustConfig(require_genuine=False)
    root_paths = list(roots)
    if not root_paths:
        env_roots = os.environ.get(ROOTS_ENV, "")
        root_paths = [Path(p) for p in env_roots.split(os.pathsep) if p]
    if allowlist is None and os.environ.get(ALLOWLIST_ENV):
        allowlist = Path(os.environ[ALLOWLIST_ENV])
    if not root_paths and software_token_state is not None:
        maker = software_token_state / MANUFACTURER_DIRNAME
        if not (maker / ROOT_CERT_FILENAME).is_file():
            raise ConfigurationError(
                f"{software_token_state} holds no software token (no {MANUFACTURER_DIRNAME}/"
                f"{ROOT_CERT_FILENAME}): start it once with 'ebank-auth emulator start "
                f"--state {software_token_state}'"
            )
        root_paths = [maker / ROOT_CERT_FILENAME]
        if allowlist is None and (maker / ALLOWLIST_FILENAME).is_file():
            allowlist = maker / ALLOWLIST_FILENAME
    if not root_paths:
        raise ConfigurationError(
            "no manufacturer root is configured, so the token cannot be checked: pass "
            f"--trust-root FILE and --firmware-allowlist FILE (or set {ROOTS_ENV} and "
            f"{ALLOWLIST_ENV}); to trust the software token's TEST manufacturer say so with "
            "--emulator"
        )
    return TrustConfig.from_files(root_paths, allowlist)


def open_connection(
    reader: str | int | None = None, *, transport: TransportName = "pcsc"
) -> Connection:
    """Open the raw transport: a PC/SC reader (name, index, unique part; ``None``: the first
    reader holding a card) or, with ``transport="hid"``, the HID device path ``reader``.

    Raises :class:`PcscUnavailable`, :class:`ReaderNotFound`, :class:`CardNotPresent`,
    :class:`ReaderBusy` or :class:`HidError` — in that order of checking for PC/SC."""
    if transport == "hid":
        if reader is None or isinstance(reader, int):
            raise ConfigurationError(
                "name the HID device path (see 'ebank-auth token list'), e.g. /dev/hidraw3"
            )
        from ebank_auth.usbkey.transport.hid import open_hid

        return open_hid(reader)
    if transport != "pcsc":
        raise ConfigurationError(f"unknown transport {transport!r}: use 'pcsc' or 'hid'")
    from ebank_auth.usbkey.transport.pcsc import open_reader

    return open_reader(reader)


def open_token(
    reader: str | int | None = None,
    *,
    transport: TransportName = "pcsc",
    trust: TrustConfig | Callable[[], TrustConfig] | None = None,
    software_token_state: Path | None = None,
) -> Token:
    """Connect to a token, check it is genuine and open the secure channel.

    ``trust`` defaults to :func:`resolve_trust`; a callable is called for it.  Either way trust
    is looked up only after a token was found, so a missing service, reader or card is
    reported first.  The caller closes the token (use
    ``with``).  Every failure is a typed :class:`~ebank_auth.errors.EbankAuthError`."""
    conn = open_connection(reader, transport=transport)
    try:
        if trust is None:
            config = resolve_trust(software_token_state=software_token_state)
        elif callable(trust):
            config = trust()
        else:
            config = trust
        return TokenSession.open(conn, config)
    except BaseException:
        conn.close()
        raise
