"""The `ebank-auth selftest` and `ebank-auth crypto` commands (contract exit codes 0/1/2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from ebank_auth.cli import cli
from ebank_auth.crypto import sm2, sm3


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.output


def test_selftest_passes_and_names_backend() -> None:
    code, out = run("selftest")
    assert code == 0, out
    assert "SM2=openssl" in out
    assert "FAIL" not in out
    assert "[ok  ] SM2 sign vector 1 (gbt32918_test_curve)" in out


def test_selftest_json() -> None:
    import json

    code, out = run("selftest", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True
    assert {c["backend"] for c in data["checks"]} >= {"openssl", "pure", "cryptography"}


def test_keygen_sign_verify(tmp_path: Path) -> None:
    k, p = tmp_path / "k.pem", tmp_path / "p.pem"
    msg, sig = tmp_path / "m", tmp_path / "s.der"
    msg.write_bytes(b"pay 1.00")
    assert run("crypto", "sm2", "keygen", "--out", str(k), "--public-key-out", str(p))[0] == 0
    assert k.stat().st_mode & 0o777 == 0o600
    assert (
        run(
            "crypto",
            "sm2",
            "sign",
            "--key",
            str(k),
            "--uid",
            "ALICE",
            "--in",
            str(msg),
            "--out",
            str(sig),
        )[0]
        == 0
    )
    sm2.load_pem_public_key(p.read_bytes()).verify(sig.read_bytes(), b"pay 1.00", uid=b"ALICE")
    code, out = run(
        "crypto",
        "sm2",
        "verify",
        "--public-key",
        str(p),
        "--uid",
        "ALICE",
        "--in",
        str(msg),
        "--signature",
        str(sig),
    )
    assert code == 0 and "valid" in out
    # wrong uid, tampered message: exit 1
    assert (
        run(
            "crypto",
            "sm2",
            "verify",
            "--public-key",
            str(p),
            "--in",
            str(msg),
            "--signature",
            str(sig),
        )[0]
        == 1
    )
    msg.write_bytes(b"pay 9.00")
    code, out = run(
        "crypto",
        "sm2",
        "verify",
        "--public-key",
        str(p),
        "--uid",
        "ALICE",
        "--in",
        str(msg),
        "--signature",
        str(sig),
    )
    assert code == 1 and "INVALID" in out


def test_input_errors_exit_2(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"junk")
    assert run("crypto", "sm2", "verify", "--public-key", str(tmp_path / "junk"), "--in", str(tmp_path / "junk"),
               "--signature", str(tmp_path / "junk"))[0] == 2  # fmt: skip
    assert run("crypto", "sm2", "sign", "--key", str(tmp_path / "missing"), "--in", str(tmp_path / "junk"),
               "--out", str(tmp_path / "o"))[0] == 2  # fmt: skip
    assert run("crypto", "sm2", "verify")[0] == 2  # missing options: click usage error


def test_encrypted_key_via_env(tmp_path: Path, monkeypatch: object) -> None:
    import os

    os.environ["EBANK_TEST_PW"] = "pw-123"
    try:
        k = tmp_path / "k.pem"
        assert (
            run("crypto", "sm2", "keygen", "--out", str(k), "--password-env", "EBANK_TEST_PW")[0]
            == 0
        )
        assert b"ENCRYPTED PRIVATE KEY" in k.read_bytes()
        (tmp_path / "m").write_bytes(b"x")
        assert run("crypto", "sm2", "sign", "--key", str(k), "--in", str(tmp_path / "m"), "--out",
                   str(tmp_path / "s"), "--password-env", "EBANK_TEST_PW")[0] == 0  # fmt: skip
        assert run("crypto", "sm2", "sign", "--key", str(k), "--in", str(tmp_path / "m"), "--out",
                   str(tmp_path / "s"))[0] == 2  # fmt: skip
    finally:
        del os.environ["EBANK_TEST_PW"]


def test_sm3_command(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    code, out = run("crypto", "sm3", str(f))
    assert code == 0
    assert (
        out.split()[0]
        == sm3.digest(b"abc").hex()
        == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )


def test_console_script_installed() -> None:
    exe = Path(sys.executable).parent / "ebank-auth"
    p = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and "ebank-auth" in p.stdout


def test_selftest_integrity_fails_closed_on_editable_install() -> None:
    # the test venv holds an editable install: no RECORD hashes, so the check cannot pass
    code, out = run("selftest", "--integrity")
    assert code == 1
    assert "integrity: UNVERIFIABLE" in out
