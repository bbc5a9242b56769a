"""``python examples/bank_app/run.py`` starts the app alone on a fresh state directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

RUN = Path(__file__).resolve().parents[2] / "examples" / "bank_app" / "run.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_py_creates_state_and_serves_login(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(RUN),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--state",
            str(state),
        ],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        page, headers = "", {}
        for _ in range(200):  # up to ~20 s on a loaded machine; not a timing assertion
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login") as r:
                    page, headers = r.read().decode(), dict(r.headers)
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                time.sleep(0.1)
        assert "csrf_token" in page and "用户名" in page
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert (state / "bank.db").exists()
        assert oct((state / "audit.key").stat().st_mode & 0o777) == "0o600"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
