"""README's first command, `bash scripts/demo.sh` (the bank app with the USB Key: isolated pcscd,
software token with its screen page, signing agent, bank app), starts and every part answers; and
the command-line walk-through for integrators (`scripts/token-walkthrough.sh`) runs to the end."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _venv_or_skip() -> None:
    if not (ROOT / ".venv" / "bin" / "ebank-auth").exists():
        pytest.skip("the demo runs from the project's .venv (made by scripts/bootstrap.sh)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.pcsc
def test_the_bank_demo_starts_every_part(tmp_path: Path) -> None:
    _venv_or_skip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PCSCLITE_")}
    env.update(
        BANK_PORT=str(_free_port()),
        AGENT_PORT=str(_free_port()),
        TOKEN_SCREEN_PORT=str(_free_port()),
        PHONE_PORT=str(_free_port()),
        DEMO_STATE=str(tmp_path / "demo"),
    )
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh"), "--check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "demo check passed" in out
    assert f"http://127.0.0.1:{env['BANK_PORT']}/login" in out
    assert "zhangsan / DemoPass2026" in out and "Approve" in out
    assert (tmp_path / "demo" / "staff-login.pub.pem").is_file()


@pytest.mark.slow
@pytest.mark.pcsc
def test_the_token_walkthrough_runs_to_the_end() -> None:
    _venv_or_skip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PCSCLITE_")}
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "token-walkthrough.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "signature valid" in out
    assert "refused as expected: nothing was signed" in out
    assert "demo finished" in out
