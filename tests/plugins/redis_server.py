"""Session fixture ``redis_url``: a real, throw-away redis-server on loopback.

Use from an area conftest::

    from plugins.redis_server import redis_url  # noqa: F401

The server listens on 127.0.0.1 on a free port, works in a temporary directory
(removed at the end of the session) with the durability a production store needs and
``RedisStore`` checks at connect: append-only file on (``appendfsync everysec``), no
RDB snapshots, ``maxmemory-policy noeviction``.
When ``redis-server`` or the ``redis`` Python package is missing the tests that use
the fixture are skipped -- unless ``EBANK_AUTH_REQUIRE_SERVICES=1`` (CI), in which
case they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["redis_url", "start_redis_server"]


def _require_services() -> bool:
    return os.environ.get("EBANK_AUTH_REQUIRE_SERVICES") == "1"


def _unavailable(reason: str) -> None:
    if _require_services():
        pytest.fail(f"{reason} (EBANK_AUTH_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    return "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None


def start_redis_server(
    workdir: Path, binary: str, extra_args: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """Start redis-server in ``workdir``; return (process, port) once it answers PING.

    ``extra_args`` override the defaults (e.g. ``["--appendonly", "no"]`` for a server
    without persistence, which ``RedisStore`` refuses)."""
    last_error = "did not start"
    for _attempt in range(5):
        port = _free_port()
        proc = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(workdir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--maxmemory-policy",
                "noeviction",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
                "--logfile",
                str(workdir / f"redis-{port}.log"),
                *(extra_args or []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last_error = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")
                break
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return proc, port
            except OSError:
                time.sleep(0.05)
        else:
            last_error = "no PONG within 10 s"
            proc.kill()
            proc.wait()
        # port taken between probe and bind, or slow start: try another port
    raise RuntimeError(f"redis-server could not be started: {last_error}")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a running throw-away redis-server (``redis://127.0.0.1:PORT/0``)."""
    binary = _binary()
    if binary is None:
        _unavailable("redis-server is not installed")
    try:
        import redis  # noqa: F401
    except ImportError:
        _unavailable("the 'redis' Python package is not installed")
    assert binary is not None
    workdir = Path(tempfile.mkdtemp(prefix="ebank-redis-"))
    try:
        proc, port = start_redis_server(workdir, binary)
    except RuntimeError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        _unavailable(str(exc))
        raise
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(workdir, ignore_errors=True)
