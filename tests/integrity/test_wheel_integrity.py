"""AU-14 / UK-9 end to end: a real wheel of this tree, installed, checks itself.

Builds the wheel with pip (no network: --no-deps, no build isolation), installs it into a
private directory with ``--target``, and runs ``ebank-auth selftest --integrity`` from there
(the directory comes first on PYTHONPATH, so its package and its RECORD are the ones seen).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = tmp_path_factory.mktemp("wheel")
    target = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("ebank_auth-*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    return target


def _selftest(site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = "from ebank_auth.cli import main; main(['selftest', '--integrity'])"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_untouched_wheel_install_verifies(installed: Path) -> None:
    p = _selftest(installed)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "integrity: OK" in p.stdout
    assert str(installed) in p.stdout  # the wheel install was checked, not the editable one


def test_modified_driver_file_is_detected(installed: Path) -> None:
    victim = installed / "ebank_auth" / "usbkey" / "session.py"
    original = victim.read_bytes()
    try:
        victim.write_bytes(original + b"\n# a backdoor would go here\n")
        p = _selftest(installed)
        assert p.returncode == 1
        assert "integrity: TAMPERED" in p.stdout
        assert "modified: ebank_auth/usbkey/session.py" in p.stdout
    finally:
        victim.write_bytes(original)
    assert _selftest(installed).returncode == 0
