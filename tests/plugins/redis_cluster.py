"""Session fixture ``redis_cluster_url``: a real 3-master Redis Cluster on loopback.

Use from an area conftest::

    from plugins.redis_cluster import redis_cluster_url  # noqa: F401

Three ``redis-server`` processes (``--cluster-enabled yes``, each with its own client
and cluster-bus port on 127.0.0.1, the durability ``RedisStore`` requires: append-only
file, ``noeviction``) in one temporary directory; ``redis-cli --cluster create …
--cluster-replicas 0 --cluster-yes`` assigns the 16384 slots; the fixture waits until
every node reports ``cluster_state:ok``.  The URL is ``redis+cluster://127.0.0.1:P1``
(one seed node; the client discovers the others).  Everything is stopped and removed
at the end of the session.  Skipped when ``redis-server``/``redis-cli`` or the
``redis`` package are missing, unless ``EBANK_AUTH_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugins.redis_server import _binary, _free_port, _unavailable, start_redis_server

__all__ = ["MASTERS", "RedisCluster", "redis_cluster", "redis_cluster_url"]

MASTERS = 3


class RedisCluster:
    """The running nodes: ``ports``, ``procs``; ``url`` for ``open_store``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        self.binary = ""

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def _cluster_args(self, i: int) -> list[str]:
        node_dir = self.workdir / f"node{i}"
        return [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(node_dir / "nodes.conf"),
            "--cluster-port",
            str(self.bus_ports[i]),
            "--cluster-node-timeout",
            "5000",
        ]

    def start(self, binary: str, cli: str) -> None:
        self.binary = binary
        self.bus_ports = [_free_port() for _ in range(MASTERS)]
        for i in range(MASTERS):
            node_dir = self.workdir / f"node{i}"
            node_dir.mkdir()
            proc, port = start_redis_server(node_dir, binary, extra_args=self._cluster_args(i))
            self.procs.append(proc)
            self.ports.append(port)
        out = subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout}{out.stderr}")
        deadline = time.monotonic() + 30
        pending = set(self.ports)
        while pending:
            for port in sorted(pending):
                info = subprocess.run(
                    [cli, "-h", "127.0.0.1", "-p", str(port), "cluster", "info"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=False,
                )
                if "cluster_state:ok" in info.stdout:
                    pending.discard(port)
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not reach cluster_state:ok on {pending}")
            if pending:
                time.sleep(0.1)

    def kill(self, i: int) -> None:
        """Kill node ``i`` (SIGKILL: no goodbye to clients or to the other nodes)."""
        self.procs[i].kill()
        self.procs[i].wait()

    def restart(self, i: int) -> None:
        """Start node ``i`` again on its ports, with its nodes.conf and append-only file."""
        node_dir = self.workdir / f"node{i}"
        if self.procs[i].stderr is not None:
            self.procs[i].stderr.close()
        self.procs[i] = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.ports[i]),
                "--dir",
                str(node_dir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--maxmemory-policy",
                "noeviction",
                "--logfile",
                str(node_dir / "restart.log"),
                *self._cluster_args(i),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A running 3-master Redis Cluster (no replicas) on loopback."""
    binary = _binary()
    cli = shutil.which("redis-cli")
    if binary is None or cli is None:
        _unavailable("redis-server / redis-cli are not installed")
    try:
        import redis  # noqa: F401
    except ImportError:
        _unavailable("the 'redis' Python package is not installed")
    assert binary is not None and cli is not None
    workdir = Path(tempfile.mkdtemp(prefix="ebank-redis-cluster-"))
    cluster = RedisCluster(workdir)
    try:
        cluster.start(binary, cli)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        _unavailable(f"a Redis Cluster could not be started: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    """``redis+cluster://127.0.0.1:PORT`` of a running 3-master cluster."""
    return redis_cluster.url
