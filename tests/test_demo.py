"""README's first command, `bash scripts/demo.sh`, runs to the end (an isolated pcscd, the
software token, on-token key generation, confirm-and-sign, verification, a rejection)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.pcsc
def test_the_demo_runs_to_the_end() -> None:
    if not (ROOT / ".venv" / "bin" / "ebank-auth").exists():
        pytest.skip("the demo runs from the project's .venv (made by scripts/bootstrap.sh)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PCSCLITE_")}
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh")],
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
