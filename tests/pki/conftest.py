"""Fixtures for the PKI tests: a real SM2 and RSA PKI built with ebank_auth, and openssl."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from pki.helpers import Pki, Tsa, make_pki, make_tsa


@pytest.fixture(scope="session")
def sm2_pki() -> Pki:
    return make_pki("sm2")


@pytest.fixture(scope="session")
def rsa_pki() -> Pki:
    return make_pki("rsa")


@pytest.fixture(scope="session", params=["sm2", "rsa"])
def any_pki(request: pytest.FixtureRequest, sm2_pki: Pki, rsa_pki: Pki) -> Pki:
    return sm2_pki if request.param == "sm2" else rsa_pki


@pytest.fixture(scope="session")
def openssl_bin() -> str:
    path = shutil.which("openssl")
    if path is None:
        if os.environ.get("EBANK_AUTH_REQUIRE_SERVICES") == "1":
            pytest.fail("openssl CLI is required (EBANK_AUTH_REQUIRE_SERVICES=1) but missing")
        pytest.skip("openssl CLI not installed")
    out = subprocess.run([path, "version"], capture_output=True, text=True, check=True).stdout
    if not out.startswith("OpenSSL 3"):
        pytest.skip(f"needs OpenSSL 3 for -vfyopt/-sigopt distid, found {out.strip()}")
    return path


@pytest.fixture(scope="session")
def xmlsec1_bin() -> str:
    path = shutil.which("xmlsec1")
    if path is None:
        if os.environ.get("EBANK_AUTH_REQUIRE_SERVICES") == "1":
            pytest.fail(
                "xmlsec1 is required (EBANK_AUTH_REQUIRE_SERVICES=1): apt-get install xmlsec1"
            )
        pytest.skip("xmlsec1 not installed (Debian package xmlsec1)")
    return path


@pytest.fixture(scope="session")
def sm2_tsa(sm2_pki: Pki) -> Tsa:
    return make_tsa(sm2_pki)


@pytest.fixture(scope="session")
def rsa_tsa(rsa_pki: Pki) -> Tsa:
    return make_tsa(rsa_pki)
