"""Fixtures for the SKF backend tests: the C test SKF library (tests/fixtures/skf/skf_test.c)
built with gcc against the system libcrypto, and a fresh token state directory per test.

The library is a TEST FIXTURE (real SM2/SM3 through OpenSSL, keys in plain files): it stands in
for a vendor's SKF library, which no open-source project provides with real crypto.  Without
gcc or the OpenSSL headers the tests are skipped -- unless ``EBANK_AUTH_REQUIRE_SERVICES=1``
(CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ebank_auth.usbkey.vendor.skf import SkfToken, open_skf

SOURCE = Path(__file__).resolve().parents[2] / "fixtures" / "skf" / "skf_test.c"
DEVICE = "EBANK-SKF-TEST-0"
APP = "EBANK_APP"
USER_PIN = "135790"
ADMIN_PIN = "24680135"
USER_TRIES = 6
ADMIN_TRIES = 10

#: library variant → extra gcc flags
VARIANTS = {
    "standard": [],
    "ulong64": ["-DSKF_ULONG64"],
    "nosign": ["-DSKF_OMIT_SIGN"],
}


def _unavailable(reason: str) -> None:
    if os.environ.get("EBANK_AUTH_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (EBANK_AUTH_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def build_library(out_dir: Path, variant: str = "standard") -> Path:
    """Compile the test SKF library; returns the .so path (raises CalledProcessError)."""
    out = out_dir / f"libskf_{variant}.so"
    cmd = ["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror"]
    cmd += ["-fvisibility=hidden", *VARIANTS[variant], "-o", str(out), str(SOURCE), "-lcrypto"]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)
    return out


@pytest.fixture(scope="session")
def skf_libraries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("gcc") is None:
        _unavailable("gcc is needed to build the test SKF library")
    out_dir = tmp_path_factory.mktemp("skf-lib")
    built = {}
    for variant in VARIANTS:
        try:
            built[variant] = build_library(out_dir, variant)
        except subprocess.CalledProcessError as exc:
            _unavailable(f"the test SKF library did not build (libssl-dev missing?): {exc.stderr}")
    return built


@pytest.fixture(scope="session")
def skf_library(skf_libraries: dict[str, Path]) -> Path:
    return skf_libraries["standard"]


@dataclass
class SkfState:
    """The test token's state directory (see skf_test.c)."""

    root: Path

    @property
    def app(self) -> Path:
        return self.root / "apps" / APP

    def pins(self) -> list[str]:
        return (self.app / "pins").read_text().split()

    def remove_token(self) -> None:
        (self.root / "removed").touch()

    def add_application(self, name: str) -> None:
        write_pins(self.root / "apps" / name)


def write_pins(app_dir: Path) -> None:
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "pins").write_text(
        f"{USER_TRIES} {USER_TRIES} {ADMIN_TRIES} {ADMIN_TRIES}\n{USER_PIN}\n{ADMIN_PIN}\n"
    )


@pytest.fixture
def skf_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SkfState:
    root = tmp_path / "skf-token"
    write_pins(root / "apps" / APP)
    (root / "serial").write_text("SKF2024000042\n")
    monkeypatch.setenv("EBANK_SKF_TEST_DIR", str(root))
    return SkfState(root)


@pytest.fixture
def token(skf_library: Path, skf_state: SkfState) -> Iterator[SkfToken]:
    tok = open_skf(skf_library)
    try:
        yield tok
    finally:
        tok.close()


@pytest.fixture
def login_token(token: SkfToken) -> SkfToken:
    """The token with the user PIN verified and an SM2 key in container ``login``."""
    token.verify_pin(USER_PIN)
    token.generate_key("login")
    return token


@pytest.fixture(scope="session")
def openssl_bin() -> str:
    """The OpenSSL 3 CLI (``-vfyopt distid:`` needs 3.x)."""
    path = shutil.which("openssl")
    if path is None:
        _unavailable("the openssl CLI is not installed")
    assert path is not None
    out = subprocess.run([path, "version"], capture_output=True, text=True, check=True).stdout
    if not out.startswith("OpenSSL 3"):
        _unavailable(f"needs OpenSSL 3 for distid options, found {out.strip()}")
    return path
