"""The ``ebank-auth cert|ca|cms`` commands, end to end in a temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ebank_auth.cli import cli
from ebank_auth.crypto import sm2, x509
from pki.helpers import DISTID, Pki, run


@pytest.fixture
def invoke(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def _invoke(*args: str, code: int = 0, env: dict[str, str] | None = None) -> str:
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            result = runner.invoke(cli, list(args), env=env)
        finally:
            os.chdir(cwd)
        assert result.exit_code == code, (args, result.output, result.exception)
        return result.output

    return _invoke


def test_test_pki_from_the_command_line(invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    invoke("ca", "init", "root", "--subject", "CN=CLI Root,O=Bank,C=CN")
    invoke("ca", "intermediate", "root", "sub", "--subject", "CN=CLI Sub,O=Bank,C=CN")
    assert (tmp_path / "root" / "ca.key.pem").stat().st_mode & 0o077 == 0
    (tmp_path / "u.key").write_bytes(sm2.generate_private_key().to_pem())
    invoke("cert", "csr", "--key", "u.key", "--subject", "CN=User,O=Bank,C=CN", "--out", "u.csr")
    assert "OK" in invoke("cert", "check-csr", "u.csr")
    invoke("ca", "issue", "sub", "--csr", "u.csr", "--out", "u.pem")
    shown = invoke("cert", "show", "u.pem")
    assert "CN=User,O=Bank,C=CN" in shown and "digital_signature" in shown
    ok = invoke(
        "cert",
        "verify",
        "u.pem",
        "--chain",
        "sub/ca.pem",
        "--trust",
        "root/ca.pem",
        "--usage",
        "digital_signature",
    )
    assert ok.startswith("OK")
    bad = invoke("cert", "verify", "u.pem", "--trust", "root/ca.pem", code=1)
    assert "unknown_issuer" in bad
    late = invoke(
        "cert",
        "verify",
        "u.pem",
        "--chain",
        "sub/ca.pem",
        "--trust",
        "root/ca.pem",
        "--at",
        "2099-01-01T00:00:00Z",
        code=1,
    )
    assert "expired" in late
    wrong_usage = invoke(
        "cert",
        "verify",
        "u.pem",
        "--chain",
        "sub/ca.pem",
        "--trust",
        "root/ca.pem",
        "--usage",
        "key_cert_sign",
        code=1,
    )
    assert "wrong_key_usage" in wrong_usage
    # CMS
    (tmp_path / "msg").write_bytes(b"pay 10 CNY")
    invoke(
        "cms",
        "sign",
        "--key",
        "u.key",
        "--cert",
        "u.pem",
        "--chain",
        "sub/ca.pem",
        "--in",
        "msg",
        "--out",
        "msg.p7",
        "--profile",
        "gmt0010",
    )
    out = invoke("cms", "verify", "msg.p7", "--trust", "root/ca.pem", "--content-out", "got")
    assert "OK" in out and (tmp_path / "got").read_bytes() == b"pay 10 CNY"
    invoke(
        "cms",
        "sign",
        "--key",
        "u.key",
        "--cert",
        "u.pem",
        "--chain",
        "sub/ca.pem",
        "--in",
        "msg",
        "--out",
        "det.p7",
        "--detached",
        "--pem",
    )
    invoke("cms", "verify", "det.p7", "--trust", "root/ca.pem", "--content", "msg")
    (tmp_path / "msg2").write_bytes(b"pay 99 CNY")
    assert "content_tampered" in invoke(
        "cms", "verify", "det.p7", "--trust", "root/ca.pem", "--content", "msg2", code=1
    )
    invoke("ca", "init", "other", "--subject", "CN=Other Root")
    assert "signer_not_trusted" in invoke(
        "cms", "verify", "msg.p7", "--trust", "other/ca.pem", code=1
    )
    # revocation
    invoke("ca", "revoke", "sub", "u.pem")
    invoke("ca", "crl", "sub", "--out", "sub.crl")
    assert "revoked" in invoke("cert", "show", "sub.crl")
    revoked = invoke(
        "cert",
        "verify",
        "u.pem",
        "--chain",
        "sub/ca.pem",
        "--trust",
        "root/ca.pem",
        "--crl",
        "sub.crl",
        code=1,
    )
    assert "revoked" in revoked


def test_rsa_ca_with_password_and_public_key(invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = {"CA_PW": "correct horse"}
    invoke(
        "ca",
        "init",
        "rsa",
        "--subject",
        "CN=RSA Root",
        "--algorithm",
        "rsa",
        "--password-env",
        "CA_PW",
        env=env,
    )
    assert b"ENCRYPTED" in (tmp_path / "rsa" / "ca.key.pem").read_bytes()
    (tmp_path / "pub.pem").write_bytes(sm2.generate_private_key().public_key().to_pem())
    invoke(
        "ca",
        "issue",
        "rsa",
        "--public-key",
        "pub.pem",
        "--subject",
        "CN=k",
        "--out",
        "k.pem",
        "--password-env",
        "CA_PW",
        env=env,
    )
    out = invoke("ca", "issue", "rsa", "--public-key", "pub.pem", "--subject", "CN=k", code=2)
    assert "error:" in out
    assert invoke("cert", "verify", "k.pem", "--trust", "rsa/ca.pem").startswith("OK")


def test_input_errors_exit_2(invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "junk").write_bytes(b"\x30\x82garbage")
    assert "error:" in invoke("cert", "show", "junk", code=2)
    assert "error:" in invoke("cert", "verify", "junk", "--trust", "junk", code=2)
    assert "error:" in invoke("cms", "verify", "missing-file", "--trust", "junk", code=2)
    invoke("cert", "verify", "junk", code=2)  # --trust is required
    invoke("cert", "csr", "--key", "junk", "--subject", "CN=x", code=2)


def test_cli_on_openssl_material(
    invoke,
    sm2_pki: Pki,
    openssl_bin: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    run([openssl_bin, "genpkey", "-algorithm", "SM2", "-out", "k.pem"], tmp_path)
    run(
        [
            openssl_bin,
            "req",
            "-x509",
            "-new",
            "-key",
            "k.pem",
            "-sm3",
            "-sigopt",
            DISTID,
            "-subj",
            "/C=CN/CN=OSL Self",
            "-days",
            "30",
            "-out",
            "self.pem",
            "-addext",
            "keyUsage=critical,digitalSignature,keyCertSign",
        ],
        tmp_path,
    )
    assert "CN=OSL Self,C=CN" in invoke("cert", "show", "self.pem")
    assert invoke(
        "cert", "verify", "self.pem", "--trust", "self.pem", "--usage", "digital_signature"
    ).startswith("OK")
    # an OpenSSL-made key makes a CSR that OpenSSL verifies
    invoke("cert", "csr", "--key", "k.pem", "--subject", "CN=from openssl key", "--out", "r.csr")
    run([openssl_bin, "req", "-in", "r.csr", "-verify", "-vfyopt", DISTID, "-noout"], tmp_path)
    assert x509.load_csr((tmp_path / "r.csr").read_bytes()).is_valid()


def test_show_der_csr_and_crl(invoke, sm2_pki: Pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "r.der").write_bytes(x509.build_csr("CN=Der", sm2_pki.leaf_key).to_der())
    assert "proof of possession: ok" in invoke("cert", "show", "r.der")
    (tmp_path / "c.der").write_bytes(sm2_pki.sub.issue_crl([7]).to_der())
    assert "revoked:     7 " in invoke("cert", "show", "c.der")
    (tmp_path / "l.der").write_bytes(sm2_pki.leaf.to_der())
    assert sm2_pki.leaf.subject in invoke("cert", "show", "l.der")
