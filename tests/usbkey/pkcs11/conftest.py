"""Fixtures for the PKCS#11 backend: a real SoftHSM2 token in a private directory, and
OpenSC's module over the software token's PIV applet (through the isolated pcscd).

SoftHSM2 reads ``SOFTHSM2_CONF`` when the module is initialised, so each test gets its own
configuration file and token directory, set in the environment before the module loads; the
backend unloads the module on close, so the next test initialises it afresh.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ebank_auth.usbkey.vendor.pkcs11 import Pkcs11Token, open_pkcs11
from plugins.pcscd import pcscd_vpcd  # noqa: F401  (the isolated pcscd for test_opensc_piv)

USER_PIN = "1234"
SO_PIN = "5678"
LABEL = "t"

_LIB_DIRS = ("/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/lib/*-linux-gnu")


def find_module(env: str, name: str, subdirs: tuple[str, ...] = ("", "pkcs11")) -> str | None:
    """A PKCS#11 module: ``$env`` if set, else the first ``name`` in the usual library
    directories (any multiarch triplet), so the tests run on Debian and elsewhere."""
    given = os.environ.get(env)
    if given:
        return given
    for base in _LIB_DIRS:
        for sub in subdirs:
            hits = sorted(glob.glob(os.path.join(base, sub, name)))
            if hits:
                return hits[0]
    return None


SOFTHSM_MODULE = find_module("SOFTHSM2_MODULE", "libsofthsm2.so", ("softhsm", ""))
OPENSC_MODULE = find_module("OPENSC_PKCS11_MODULE", "opensc-pkcs11.so")


def need(what: str, ok: bool) -> None:
    """Skip without ``what`` (fail instead under EBANK_AUTH_REQUIRE_SERVICES=1, as in CI)."""
    if ok:
        return
    msg = f"missing {what} (scripts/bootstrap.sh installs it)"
    if os.environ.get("EBANK_AUTH_REQUIRE_SERVICES") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


def need_pykcs11() -> None:
    try:
        import PyKCS11  # noqa: F401
    except ImportError:
        need("PyKCS11 (pip install 'ebank-auth[pkcs11]')", False)


@dataclass
class SoftHsm:
    module: str
    conf: Path
    tokens: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}

    def init_token(self, label: str = LABEL) -> None:
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label,
             "--pin", USER_PIN, "--so-pin", SO_PIN],
            env=self.env(), check=True, capture_output=True, timeout=60,
        )  # fmt: skip


@pytest.fixture
def softhsm_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftHsm:
    """A private SoftHSM2 configuration with no token yet (``SOFTHSM2_CONF`` set)."""
    need_pykcs11()
    need("softhsm2 (libsofthsm2.so, softhsm2-util)", bool(SOFTHSM_MODULE))
    need("softhsm2-util", shutil.which("softhsm2-util") is not None)
    assert SOFTHSM_MODULE is not None
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    return SoftHsm(SOFTHSM_MODULE, conf, tokens)


@pytest.fixture
def softhsm(softhsm_empty: SoftHsm) -> SoftHsm:
    """SoftHSM2 with one token, label ``t``, user PIN 1234, SO PIN 5678."""
    softhsm_empty.init_token()
    return softhsm_empty


@pytest.fixture
def token(softhsm: SoftHsm) -> Iterator[Pkcs11Token]:
    with open_pkcs11(softhsm.module, LABEL) as tok:
        yield tok
