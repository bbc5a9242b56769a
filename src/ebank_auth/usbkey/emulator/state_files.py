"""The software token's persistent files, done one way for every applet.

The token application (``state.py``), the PIV applet (``piv_state.py``) and the CTAP2 applet
(``ctap2_state.py``) each keep a JSON document beside the others in the token's state directory.
They share the rules a card's non-volatile memory follows:

* **exclusive use** — :func:`exclusive` holds a thread lock and an ``flock`` on a lock file, so
  no other thread or process reads-modifies-writes meanwhile (a PIN counter spent by one
  process is seen by the next);
* **never a silent reset** — :func:`read_json` raises for a missing, unreadable or malformed file
  with advice on what to do, instead of starting over;
* **all or nothing** — :func:`write_json` writes a private temporary file, fsyncs it, renames it
  over the old one and fsyncs the directory, so a power cut leaves the old or the new state.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ebank_auth.errors import EncodingError, StoreError

__all__ = ["exclusive", "read_json", "write_json"]


@contextlib.contextmanager
def exclusive(
    thread_lock: threading.Lock, directory: Path | None, lock_name: str, what: str
) -> Iterator[None]:
    """Hold ``what`` exclusively: ``thread_lock`` plus an ``flock`` on ``directory/lock_name``
    (memory only when ``directory`` is None).  Not re-entrant."""
    with thread_lock:
        if directory is None:
            yield
            return
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(directory / lock_name, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot lock {what} in {directory}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock


def read_bytes(path: Path, what: str) -> bytes:
    """The file's bytes (:class:`StoreError` naming ``what`` when it cannot be read)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StoreError(f"cannot read {what} {path}: {exc.strerror}") from None


def parse_json(raw: bytes, path: Path, what: str, advice: str) -> Any:
    """``raw`` as JSON; :class:`EncodingError` with ``advice`` when it is not."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise EncodingError(f"{what} {path} is corrupt: {advice}") from None


def read_json(path: Path, what: str, advice: str) -> Any:
    """Read and parse ``path`` (see :func:`read_bytes`, :func:`parse_json`)."""
    return parse_json(read_bytes(path, what), path, what, advice)


def write_json(directory: Path, path: Path, doc: Any, what: str) -> bytes:
    """Atomically replace ``path`` with ``doc`` (0600; temp file + fsync + rename + directory
    fsync); returns the bytes written."""
    payload = json.dumps(doc, indent=1, sort_keys=True).encode("utf-8")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StoreError(f"cannot write {what} {path}: {exc.strerror}") from None
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return payload
