"""One naming scheme for every key a service keeps in a :class:`~ebank_auth.store.Store`.

Each service takes ``namespace=`` (its documented default below) and builds every key
with :func:`store_key`::

    <namespace>:<part>:<part>…

Each part is escaped (``%`` → ``%25``, ``:`` → ``%3A``), so a user name or session id
containing ``:`` can never produce another user's key, and two services sharing a
store never collide as long as their namespaces differ.  A namespace is a short name
of letters, digits, ``.``, ``-``, ``_`` or ``/`` (e.g. ``otp`` or ``bank1/otp`` for
one bank among several sharing a store).

Default namespaces:

=============================================  ==================
service                                        ``namespace=``
=============================================  ==================
``otp.CodeService`` (SMS / voice codes)        ``otp``
``otp.AuthenticatorService`` (TOTP/HOTP/SM3)   ``authenticator``
``passwords.PasswordService``                  ``pw``
``softkeyboard.SoftKeyboard``                  ``sk``
``policy.LoginLockout``                        ``lockout``
``policy.DeviceRegistry``                      ``devices``
``policy.ReplayCache``                         ``txid``
``policy.CredentialRegistry``                  ``cred``
``audit.AuditLog``                             ``audit``
``webauthn.PasskeyServer`` (and its registry)  ``webauthn``
=============================================  ==================
"""

from __future__ import annotations

import re
from typing import Final

from ebank_auth.errors import ConfigurationError

__all__ = ["SEPARATOR", "check_namespace", "store_key"]

SEPARATOR: Final = ":"

_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")


def check_namespace(namespace: str) -> str:
    """Return ``namespace`` if it is usable as a key namespace, else raise
    :class:`~ebank_auth.errors.ConfigurationError`."""
    if not isinstance(namespace, str) or _NAMESPACE.fullmatch(namespace) is None:
        raise ConfigurationError(
            f"store namespace {namespace!r} is not usable: give 1 to 64 letters, digits, "
            "'.', '-', '_' or '/', starting with a letter or digit (e.g. 'otp' or 'bank1/otp')"
        )
    return namespace


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace(SEPARATOR, "%3A")


def store_key(namespace: str, *parts: str) -> str:
    """The store key for ``parts`` under ``namespace``: ``namespace:part:part…`` with
    each part escaped, so distinct part tuples always give distinct keys."""
    check_namespace(namespace)
    for part in parts:
        if not isinstance(part, str):
            raise ConfigurationError(
                f"store key parts must be text, not {type(part).__name__}: pass user names "
                "and ids as str"
            )
    return SEPARATOR.join((namespace, *(_escape(p) for p in parts)))
