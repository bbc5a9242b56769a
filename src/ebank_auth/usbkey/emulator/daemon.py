"""Background software-token process: start, stop and status, keyed by a state directory.

The software token keeps everything in one state directory (default
``$EBANK_AUTH_TOKEN_STATE`` or ``$XDG_DATA_HOME/ebank-auth/token``).  Besides the token's own
persistent state, the daemon keeps there:

* ``emulator.lock`` — held with an exclusive ``flock`` for the whole life of the token process:
  a second daemon on the same directory is refused at once (no pid-file race), and status/stop
  trust only the process the kernel says holds it (``/proc/locks``), never a command-line match;
* ``emulator.pid``  — pid of the running token process (written atomically, after the lock);
* ``emulator.json`` — host/port of vpcd, whether it is connected, start time;
* ``emulator.log``  — the background process's log.

The process runs a :class:`~ebank_auth.usbkey.emulator.vpcd.VpcdLink` to vpcd (inside pcscd) with
a card made by a factory called with the state directory — by default
``ebank_auth.usbkey.emulator.card:demo_token`` (a simulated customer who approves unless the
screen says ``REJECT``).  It reconnects when pcscd restarts and stops
cleanly on SIGTERM/SIGINT.  ``python -m ebank_auth.usbkey.emulator.daemon`` runs it in the
foreground (that is what ``start`` spawns in the background).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ebank_auth.errors import ConfigurationError, TokenError
from ebank_auth.paths import token_state_dir
from ebank_auth.usbkey.card_interface import CardProtocol
from ebank_auth.usbkey.emulator.vpcd import DEFAULT_VPCD_PORT, VpcdLink

__all__ = [
    "DEFAULT_CARD",
    "DaemonStatus",
    "EmulatorError",
    "default_state_dir",
    "load_card_factory",
    "run_foreground",
    "start",
    "status",
    "stop",
]

logger = logging.getLogger("ebank_auth.usbkey.emulator.daemon")

DEFAULT_CARD = "ebank_auth.usbkey.emulator.card:demo_token"
PID_FILE = "emulator.pid"
STATUS_FILE = "emulator.json"
LOG_FILE = "emulator.log"
LOCK_FILE = "emulator.lock"
_MARKER = "ebank_auth.usbkey.emulator.daemon"


class EmulatorError(TokenError):
    """The software-token process could not be started, found or stopped."""

    default_message = "software token process error: see 'ebank-auth emulator status'"


@dataclass(frozen=True)
class DaemonStatus:
    """What ``emulator status`` reports.  ``connected``: the token is attached to vpcd right
    now; ``card_seen``: pcscd has also powered it and read its ATR, so its reader shows the
    card and ``token`` commands can use it."""

    running: bool
    state_dir: str
    pid: int | None = None
    host: str | None = None
    port: int | None = None
    connected: bool = False
    started_at: float | None = None
    card_seen: bool = False
    log_file: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def default_state_dir() -> Path:
    """The software token's default state directory (see :mod:`ebank_auth.paths`)."""
    return token_state_dir()


def load_card_factory(spec: str) -> Callable[[Path], CardProtocol]:
    """Resolve ``module:attribute`` to a callable taking the state directory."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(f"card factory must look like 'module:attribute', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise EmulatorError(f"cannot load the software token {spec!r}: {exc}") from exc
    if not callable(factory):
        raise ConfigurationError(f"{spec!r} is not callable")
    return factory  # type: ignore[no-any-return]


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _lock_holder(state_dir: Path) -> tuple[bool, int | None]:
    """(held, pid) for the daemon lock of ``state_dir``: the kernel, not a pid file, says who runs."""
    path = state_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False, None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            held = True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            held = False
        inode = os.fstat(fd).st_ino
    finally:
        os.close(fd)
    if not held:
        return False, None
    return True, _pid_holding(inode) or _read_pid(state_dir)


def _pid_holding(inode: int) -> int | None:
    """The pid /proc/locks names as holder of an exclusive flock on ``inode`` (None: unknown)."""
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4321 00:2d:1234 0 EOF"
        if (
            len(fields) >= 6
            and fields[1] == "FLOCK"
            and fields[3] == "WRITE"
            and fields[5].rsplit(":", 1)[-1] == str(inode)
        ):
            with contextlib.suppress(ValueError):
                return int(fields[4])
    return None


def _read_pid(state_dir: Path) -> int | None:
    try:
        return int((state_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def status(state_dir: Path | None = None) -> DaemonStatus:
    """Status of the software token for ``state_dir``: running while its lock is held."""
    state_dir = Path(state_dir or default_state_dir())
    held, pid = _lock_holder(state_dir)
    if not held:
        return DaemonStatus(running=False, state_dir=str(state_dir))
    info: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        info = json.loads((state_dir / STATUS_FILE).read_text())
    return DaemonStatus(
        running=True,
        state_dir=str(state_dir),
        pid=pid,
        host=info.get("host"),
        port=info.get("port"),
        connected=bool(info.get("connected")),
        started_at=info.get("started_at"),
        card_seen=bool(info.get("connected")) and bool(info.get("card_seen")),
        log_file=str(state_dir / LOG_FILE),
    )


def run_foreground(
    state_dir: Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_VPCD_PORT,
    card: str = DEFAULT_CARD,
    netns: str | None = None,
) -> None:
    """Run the software token in this process until SIGTERM/SIGINT.

    ``netns`` (Linux, root): a network namespace (``/proc/PID/ns/net``) in which to reach vpcd —
    for a pcscd isolated in its own namespace."""
    state_dir = Path(state_dir or default_state_dir())
    if state_dir.exists() and not state_dir.is_dir():
        raise EmulatorError(f"{state_dir} is a file: give --state a directory (it is created)")
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock_fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        _, pid = _lock_holder(state_dir)
        raise EmulatorError(
            f"the software token for {state_dir} already runs (pid {pid}): one process per "
            "state directory, or two would share one PIN counter"
        ) from None
    try:
        _serve(state_dir, host, port, card, netns)
    finally:
        os.close(lock_fd)  # releases the lock, after the pid and status files are gone


def _serve(state_dir: Path, host: str, port: int, card: str, netns: str | None) -> None:
    """Run the token with the daemon lock held (see :func:`run_foreground`)."""
    _atomic_write(state_dir / PID_FILE, f"{os.getpid()}\n")
    token = load_card_factory(card)(state_dir)
    started = time.time()

    def write_status(connected: bool, card_seen: bool = False) -> None:
        doc = {
            "host": host,
            "port": port,
            "connected": connected,
            "card_seen": card_seen,
            "started_at": started,
        }
        _atomic_write(state_dir / STATUS_FILE, json.dumps(doc))

    def on_connection(connected: bool) -> None:
        write_status(connected)
        logger.info("token %s", "attached to vpcd" if connected else "removed")

    def on_card_seen() -> None:
        write_status(True, True)
        logger.info("token inserted: pcscd powered it and read its ATR")

    connect = None
    if netns is not None:
        from ebank_auth.usbkey.emulator.netns import connect_in_netns

        ns_path = netns

        def connect() -> socket.socket:
            return connect_in_netns(ns_path, host, port)

    link = VpcdLink(
        token,
        host,
        port,
        on_connection=on_connection,
        on_card_seen=on_card_seen,
        connect=connect,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        link.stop(timeout=None)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    write_status(False)
    logger.info("software token serving vpcd at %s:%s (state %s)", host, port, state_dir)
    try:
        link.run()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        with contextlib.suppress(OSError):
            if _read_pid(state_dir) == os.getpid():
                (state_dir / PID_FILE).unlink()
        with contextlib.suppress(OSError):
            (state_dir / STATUS_FILE).unlink()
        close = getattr(token, "close", None)
        if callable(close):
            close()


def start(
    state_dir: Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_VPCD_PORT,
    card: str = DEFAULT_CARD,
    netns: str | None = None,
    timeout: float = 15.0,
    env: dict[str, str] | None = None,
) -> DaemonStatus:
    """Start the software token in the background; returns once its pid file exists."""
    state_dir = Path(state_dir or default_state_dir())
    state_dir.mkdir(parents=True, exist_ok=True)
    current = status(state_dir)
    if current.running:
        raise EmulatorError(
            f"the software token for {state_dir} already runs (pid {current.pid}): "
            "'ebank-auth emulator stop' first"
        )
    with contextlib.suppress(OSError):
        (state_dir / PID_FILE).unlink()
    argv = [
        sys.executable,
        "-m",
        _MARKER,
        "--state",
        str(state_dir),
        "--host",
        host,
        "--port",
        str(port),
        "--card",
        card,
        *(["--netns", netns] if netns else []),
    ]
    log_path = state_dir / LOG_FILE
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-1500:]
            raise EmulatorError(
                f"the software token exited at start (code {proc.returncode}):\n{tail}"
            )
        current = status(state_dir)
        if current.running and current.pid == proc.pid and (state_dir / STATUS_FILE).exists():
            return current
        time.sleep(0.02)
    proc.terminate()
    raise EmulatorError(f"the software token did not start within {timeout:.0f}s; see {log_path}")


def wait_inserted(state_dir: Path | None = None, timeout: float = 20.0) -> DaemonStatus:
    """Wait (at most ``timeout`` seconds) until pcscd has taken the running software token:
    attached to vpcd, powered and its ATR read (``card_seen``).  Returns the last status;
    the caller checks ``card_seen`` (``running`` false: the process ended)."""
    state_dir = Path(state_dir or default_state_dir())
    deadline = time.monotonic() + timeout
    while True:
        current = status(state_dir)
        if current.card_seen or not current.running or time.monotonic() >= deadline:
            return current
        time.sleep(0.05)


def stop(state_dir: Path | None = None, timeout: float = 10.0) -> bool:
    """Stop the software token for ``state_dir``.  False when it was not running."""
    state_dir = Path(state_dir or default_state_dir())
    current = status(state_dir)
    if not current.running:
        with contextlib.suppress(OSError):
            (state_dir / PID_FILE).unlink()
        return False
    if current.pid is None:
        raise EmulatorError(
            f"the software token for {state_dir} is starting or its holder is unknown: "
            "wait a moment and run 'ebank-auth emulator stop' again"
        )
    pid = current.pid
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held, holder = _lock_holder(state_dir)
        if not held or holder != pid:
            break
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)
    else:
        os.kill(pid, signal.SIGKILL)  # still the lock holder: it is our daemon, hung
    with contextlib.suppress(OSError):
        (state_dir / PID_FILE).unlink()
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m " + _MARKER, description=__doc__)
    parser.add_argument("--state", type=Path, default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_VPCD_PORT)
    parser.add_argument("--card", default=DEFAULT_CARD)
    parser.add_argument("--netns", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        run_foreground(args.state, host=args.host, port=args.port, card=args.card, netns=args.netns)
    except TokenError as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through subprocesses
    sys.exit(main())
