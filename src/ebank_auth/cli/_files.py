"""File helpers shared by the commands: read input, write output, secrets from the environment.

They raise (``OSError``, :class:`click.UsageError`); the root group turns that into exit code 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click


def read_input(path: str) -> bytes:
    """The bytes of ``path``, or stdin for ``-``."""
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def write_output(data: bytes, out: str | None) -> None:
    """Write ``data`` to ``out``, or to stdout when ``out`` is None or ``-``."""
    if out is None or out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(out).write_bytes(data)


def write_secret(data: bytes, path: str | Path) -> None:
    """Write a private key file readable by the owner only (mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def password_from_env(name: str | None) -> bytes | None:
    """The password held in environment variable ``name`` (never taken on the command line)."""
    if not name:
        return None
    value = os.environ.get(name)
    if value is None:
        raise click.UsageError(f"environment variable {name} is not set")
    return value.encode()
