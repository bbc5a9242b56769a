"""Session fixtures ``postgres_server`` / ``postgres_url``: a private PostgreSQL cluster.

Use from an area conftest::

    from plugins.postgres_server import postgres_server, postgres_url  # noqa: F401

``initdb`` creates a throw-away cluster in a temporary directory, ``pg_ctl`` starts it
on 127.0.0.1 on a free port with its Unix socket in that directory (never the system
cluster, never /var/run/postgresql), and a role ``ebank`` (LOGIN, password, no
superuser, no CREATEDB, no CREATEROLE) gets a database it owns: exactly what the store
needs in production.  The cluster is durable as a production one (``fsync = on``, the
default, not forced on the command line so a test may change it with ALTER SYSTEM;
every session of the store sets ``synchronous_commit = on``).  At the end of the
session the cluster is stopped and its directory removed.

initdb and postgres refuse to run as root: as root (CI) they run as the ``postgres``
user of Debian's package (else ``nobody``), which owns the temporary directory.
Binaries come from ``pg_config --bindir``, /usr/lib/postgresql/<newest>/bin or PATH.
When they or psycopg are missing the tests that use the fixtures are skipped --
unless ``EBANK_AUTH_REQUIRE_SERVICES=1`` (CI), in which case they fail.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugins.redis_server import _free_port, _unavailable

__all__ = ["PostgresServer", "postgres_server", "postgres_url"]

ROLE = "ebank"
DATABASE = "ebank"


def _bindir() -> Path | None:
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def _run_as() -> pwd.struct_passwd | None:
    """The account that runs the cluster: None for the current (non-root) user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and there is neither a 'postgres' nor a 'nobody' user")


class PostgresServer:
    """A private PostgreSQL cluster: ``url`` for the store's role, ``stop``/``start``
    for restart tests, ``admin()`` for a superuser connection over the socket."""

    def __init__(self, bindir: Path, workdir: Path, account: pwd.struct_passwd | None) -> None:
        self.bindir = bindir
        self.workdir = workdir
        self.data = workdir / "data"
        self.account = account
        self.port = 0
        self.password = secrets.token_hex(12)

    @property
    def url(self) -> str:
        return f"postgresql://{ROLE}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def _pg(self, tool: str, *args: str, timeout: float = 60) -> None:
        kwargs: dict[str, Any] = {}
        if self.account is not None:
            kwargs = {
                "user": self.account.pw_uid,
                "group": self.account.pw_gid,
                "extra_groups": [],
            }
        out = subprocess.run(
            [str(self.bindir / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.workdir,
            check=False,
            **kwargs,
        )
        if out.returncode != 0:
            log = self.workdir / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed: {out.stderr.strip() or out.stdout.strip()}\n{tail}")

    def initdb(self) -> None:
        if self.account is not None:
            os.chown(self.workdir, self.account.pw_uid, self.account.pw_gid)
        self._pg(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth-local=trust",  # the socket is in a private directory
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",  # the initial files only; the running cluster fsyncs
            "--no-instructions",
        )

    def start(self) -> None:
        """Start the cluster (on a new free port the first time, the same one later)."""
        first = self.port == 0
        for _attempt in range(5 if first else 1):
            if first:
                self.port = _free_port()
            options = (
                f"-k {self.workdir} -p {self.port} -c listen_addresses=127.0.0.1 "
                "-c max_connections=200 "
                "-c shared_buffers=32MB"
            )
            try:
                self._pg(
                    "pg_ctl",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.workdir / "server.log"),
                    "-w",
                    "-t",
                    "30",
                    "-o",
                    options,
                    "start",
                )
                return
            except RuntimeError:
                if not first or _attempt == 4:
                    raise

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def admin(self) -> Any:
        """A superuser connection (autocommit) over the private Unix socket."""
        import psycopg

        return psycopg.connect(
            host=str(self.workdir),
            port=self.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
        )

    def create_role_and_database(self) -> None:
        with self.admin() as conn:
            conn.execute(
                f"CREATE ROLE {ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                f"PASSWORD '{self.password}'"
            )
            conn.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running private PostgreSQL cluster with a non-superuser store role."""
    bindir = _bindir()
    if bindir is None:
        _unavailable("PostgreSQL (initdb, pg_ctl) is not installed: apt-get install postgresql")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("the 'psycopg' Python package is not installed: pip install '.[postgres]'")
    assert bindir is not None
    workdir = Path(tempfile.mkdtemp(prefix="ebank-pg-"))
    server = PostgresServer(bindir, workdir, _run_as())
    started = False
    try:
        server.initdb()
        server.start()
        started = True
        server.create_role_and_database()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        if started:
            server.stop("immediate")
        shutil.rmtree(workdir, ignore_errors=True)
        _unavailable(f"a private PostgreSQL cluster could not be started: {exc}")
    try:
        yield server
    finally:
        with contextlib.suppress(RuntimeError):  # already stopped by a failed restart test
            server.stop("fast")
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """``postgresql://ebank:<password>@127.0.0.1:<port>/ebank`` of the private cluster."""
    return postgres_server.url
