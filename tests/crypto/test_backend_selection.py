"""Backend choice: automatic, forced, an explicit libcrypto that cannot load, pure-signing warning."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ebank_auth.crypto import _backend, backend_info, sm2
from ebank_auth.errors import BackendUnavailable, ConfigurationError

PROBE = (
    "import json; from ebank_auth.crypto import backend_info, sm2;"
    "k = sm2.generate_private_key(); k.public_key().verify(k.sign(b'x'), b'x');"
    "i = backend_info(); print(json.dumps({'sm2': i.sm2, 'avail': i.available_sm2, 'd': i.details}))"
)


def _probe(env: dict[str, str]) -> tuple[int, str, str]:
    import os

    full = {**os.environ, **env}
    p = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def test_auto_prefers_openssl_here() -> None:
    info = backend_info()
    assert info.sm2 == "openssl"
    assert info.available_sm2 == ("openssl", "pure")
    assert "OpenSSL 3" in info.details["openssl"]


def test_forced_pure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EBANK_AUTH_CRYPTO_BACKEND", "pure")
    assert backend_info().sm2 == "pure"
    assert sm2.generate_private_key().backend == "pure"


def test_bad_env_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EBANK_AUTH_CRYPTO_BACKEND", "fastest")
    with pytest.raises(ConfigurationError, match="EBANK_AUTH_CRYPTO_BACKEND"):
        sm2.generate_private_key()


@pytest.mark.parametrize("lib", ["/nonexistent/libcrypto.so.3", "libc.so.6"])
def test_explicit_libcrypto_that_cannot_load_is_an_error(lib: str) -> None:
    # libc.so.6 opens fine but has no OpenSSL symbols: the stand-in for a build without SM2
    rc, out, err = _probe({"EBANK_AUTH_LIBCRYPTO": lib})
    assert rc != 0 and not out
    assert "BackendUnavailable" in err
    assert f"EBANK_AUTH_LIBCRYPTO={lib} cannot be used" in err
    assert "unset it" in err and "EBANK_AUTH_CRYPTO_BACKEND=pure" in err


def test_explicit_libcrypto_with_pure_requested_is_fine() -> None:
    rc, out, err = _probe(
        {"EBANK_AUTH_LIBCRYPTO": "/nonexistent/libcrypto.so.3", "EBANK_AUTH_CRYPTO_BACKEND": "pure"}
    )
    assert rc == 0, err
    info = json.loads(out)
    assert info["sm2"] == "pure" and info["avail"] == ["pure"]
    assert "libcrypto.so.3" in info["d"]["openssl"]


def test_forced_openssl_when_unavailable_is_a_clear_error() -> None:
    rc, _, err = _probe(
        {
            "EBANK_AUTH_LIBCRYPTO": "/nonexistent/libcrypto.so.3",
            "EBANK_AUTH_CRYPTO_BACKEND": "openssl",
        }
    )
    assert rc != 0
    assert "BackendUnavailable" in err and "cannot be used for SM2" in err


def test_pure_signing_warns_once_per_process() -> None:
    code = (
        "import logging; logging.basicConfig(level=logging.WARNING);"
        "from ebank_auth.crypto import sm2;"
        "k = sm2.generate_private_key(backend='pure'); k.sign(b'a'); k.sign(b'b');"
        "k.sign_digest(bytes(32)); k.public_key().verify(k.sign(b'c'), b'c')"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("not constant-time") == 1, p.stderr
    quiet = code.replace("backend='pure'", "backend='openssl'")
    p = subprocess.run([sys.executable, "-c", quiet], capture_output=True, text=True)
    assert p.returncode == 0 and "constant-time" not in p.stderr, p.stderr


def test_unknown_backend_name() -> None:
    with pytest.raises((ConfigurationError, BackendUnavailable)):
        _backend.sm2_backend("nope")
