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


def write_secret(data: bytes, path: str | Path, *, overwrite: bool = True) -> None:
    """Write a private key file readable by the owner only (mode 0600).

    With ``overwrite=False`` an existing file (or a symlink, even a dangling one) is refused
    with a usage error naming ``--force``, and left as it was.  Overwriting writes a new 0600
    file next to it and renames it over the old one, so the old file's permissions never
    carry over to the new key."""
    target = Path(path)
    if not overwrite:
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise click.UsageError(
                f"{target} already exists: it may be the only copy of a private key, so it is "
                "not overwritten; choose another file or pass --force to replace it"
            ) from None
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def password_from_env(name: str | None) -> bytes | None:
    """The password held in environment variable ``name`` (never taken on the command line)."""
    if not name:
        return None
    value = os.environ.get(name)
    if value is None:
        raise click.UsageError(f"environment variable {name} is not set")
    return value.encode()
