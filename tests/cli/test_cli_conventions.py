"""Every ``ebank-auth`` command follows the same conventions (docs/exit-codes.md).

The command tree is walked, not listed by hand, so a new command is checked
automatically: ``--help`` works and shows examples, ``--json`` is accepted and
failures under ``--json`` are one JSON document; representative failures give
the documented exit codes; nothing ever prints a traceback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from ebank_auth.cli import cli

SRC = Path(__file__).resolve().parents[2] / "src"


def _walk(group: click.Group, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], click.Command]]:
    ctx = click.Context(group)
    out: list[tuple[tuple[str, ...], click.Command]] = [(path, group)]
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        if isinstance(cmd, click.Group):
            out += _walk(cmd, (*path, name))
        else:
            out.append(((*path, name), cmd))
    return out


TREE = _walk(cli, ())
LEAVES = [(p, c) for p, c in TREE if not isinstance(c, click.Group)]


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, input=input)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: nothing listens there


def test_the_tree_is_complete() -> None:
    names = {" ".join(p) for p, _ in LEAVES}
    for expected in ("crypto sm2 verify", "cert verify", "cms verify", "otp sms send",
                     "token sign", "token list", "lockout status", "audit verify", "selftest"):  # fmt: skip
        assert expected in names
    assert len(LEAVES) >= 40


@pytest.mark.parametrize("path", [p for p, _ in TREE], ids=lambda p: " ".join(p) or "root")
def test_help_has_examples(path: tuple[str, ...]) -> None:
    res = run(*path, "--help")
    assert res.exit_code == 0, res.output
    assert "Usage: " in res.output
    examples = res.output.split("Examples:", 1)
    assert len(examples) == 2, f"{' '.join(path)} --help has no Examples section"
    assert f"ebank-auth {' '.join(path)}".strip() in examples[1]


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=lambda p: " ".join(p))
def test_every_command_has_json_and_reports_usage_errors_as_json(path: tuple[str, ...]) -> None:
    cmd = dict(LEAVES)[path]
    assert "--json" in {o for p in cmd.params for o in getattr(p, "opts", [])}
    res = run(*path, "--json", "--no-such-option")
    assert res.exit_code == 2
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and doc["error"]["category"] == "input"
    assert "no-such-option" in doc["error"]["message"]


def _json(res: Result) -> Any:
    assert "Traceback" not in res.output
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca = d / "ca"
    assert run("ca", "init", str(ca), "--subject", "CN=Conventions Root,C=CN").exit_code == 0
    key, pub = d / "k.pem", d / "p.pem"
    res = run("crypto", "sm2", "keygen", "--out", str(key), "--public-key-out", str(pub), "--json")
    assert res.exit_code == 0 and _json(res)["public_key"] == str(pub)
    leaf = d / "leaf.pem"
    assert run("ca", "issue", str(ca), "--public-key", str(pub), "--subject", "CN=Leaf",
               "--out", str(leaf)).exit_code == 0  # fmt: skip
    msg, sig = d / "msg", d / "msg.sig"
    msg.write_bytes(b"pay 1.00 CNY")
    assert (
        run(
            "crypto", "sm2", "sign", "--key", str(key), "--in", str(msg), "--out", str(sig)
        ).exit_code
        == 0
    )
    p7 = d / "msg.p7s"
    assert run("cms", "sign", "--key", str(key), "--cert", str(leaf), "--in", str(msg),
               "--out", str(p7)).exit_code == 0  # fmt: skip
    junk = d / "junk"
    junk.write_bytes(b"\x30\x03garbage that is not DER")
    return {"ca": ca, "key": key, "pub": pub, "leaf": leaf, "root": ca / "ca.pem", "msg": msg,
            "sig": sig, "p7": p7, "junk": junk, "missing": d / "missing"}  # fmt: skip


def test_reporting_commands_emit_json(pki: dict[str, Path]) -> None:
    seed = pki["msg"].parent / "seed.hex"
    seed.write_text("ab" * 16, encoding="ascii")  # secrets come from files, never argv
    cases: list[tuple[list[str], int]] = [
        (["crypto", "sm3", str(pki["msg"])], 0),
        (["crypto", "sm2", "verify", "--public-key", str(pki["pub"]), "--in", str(pki["msg"]),
          "--signature", str(pki["sig"])], 0),
        (["cert", "show", str(pki["leaf"])], 0),
        (["cert", "verify", str(pki["leaf"]), "--trust", str(pki["root"])], 0),
        (["cms", "verify", str(pki["p7"]), "--trust", str(pki["root"])], 0),
        (["otp", "sm3", "--seed-file", str(seed), "--time", "0"], 0),
        (["policy", "check", "default"], 0),
        (["policy", "explain", "default", "--context", '{"user":"c1","operation":"login"}'], 1),
        (["softkeyboard", "demo", "--type", "2840"], 0),
    ]  # fmt: skip
    for args, code in cases:
        res = run(*args, "--json")
        assert res.exit_code == code, (args, res.output)
        doc = _json(res)
        assert doc["ok"] is (code == 0), args
        if code:
            assert doc["error"]["message"], args
    verified = _json(run("cert", "verify", str(pki["leaf"]), "--trust", str(pki["root"]), "--json"))
    assert verified["valid"] is True and verified["chain"][0] == "CN=Leaf"


def test_exit_codes_for_representative_failures(pki: dict[str, Path], tmp_path: Path) -> None:
    pub, msg, junk, missing = (str(pki[k]) for k in ("pub", "msg", "junk", "missing"))
    other = tmp_path / "other"
    other.write_bytes(b"pay 9.00 CNY")
    cases: list[tuple[list[str], int, str]] = [
        # 1: refused / invalid
        (["crypto", "sm2", "verify", "--public-key", pub, "--in", str(other), "--signature",
          str(pki["sig"])], 1, "InvalidSignature"),
        (["cert", "verify", str(pki["root"]), "--trust", str(pki["leaf"])], 1,
         "CertificateValidationError"),
        # 2: garbage or missing input, in every family of commands
        (["crypto", "sm2", "verify", "--public-key", junk, "--in", msg, "--signature", junk], 2, ""),
        (["cert", "show", junk], 2, "EncodingError"),
        (["cert", "verify", junk, "--trust", str(pki["root"])], 2, "EncodingError"),
        (["cms", "verify", junk, "--trust", str(pki["root"])], 2, "EncodingError"),
        (["cms", "verify", missing, "--trust", str(pki["root"])], 2, "FileNotFoundError"),
        (["crypto", "sm3", missing], 2, "FileNotFoundError"),
        (["policy", "explain", "default", "--context", "{not json"], 2, "UsageError"),
        (["audit", "verify", missing, "--audit-key-file", junk], 2, ""),
        (["emulator", "start", "--state", msg], 2, "BadParameter"),
    ]  # fmt: skip
    for args, code, kind in cases:
        text = run(*args)
        assert text.exit_code == code, (args, text.output)
        assert "Traceback" not in text.output
        said = (text.stderr + text.stdout).lower()
        assert ("error: " in said) if code == 2 else ("invalid" in said), (args, said)
        as_json = run(*args, "--json")
        assert as_json.exit_code == code, (args, as_json.output)
        doc = _json(as_json)
        assert doc["ok"] is False, args
        if kind:
            assert doc["error"]["type"] == kind, (args, doc)


def test_unreachable_redis_is_service_unavailable_not_a_wrong_code() -> None:
    pytest.importorskip("redis")
    url = f"redis://127.0.0.1:{free_port()}/0"
    res = run("lockout", "status", "alice", "--store", url)
    assert res.exit_code == 3, res.output
    seal = Path(tempfile.mkdtemp()) / "seal.hex"
    seal.write_text("00" * 16, encoding="ascii")
    res = run("otp", "totp", "verify", "--store", url, "--sealing-key-file", str(seal),
              "--user", "alice", "--code", "123456", "--json")  # fmt: skip
    assert res.exit_code == 3, res.output
    doc = _json(res)
    assert doc["error"]["category"] == "unavailable" and doc["error"]["type"] == "StoreUnavailable"


def test_an_unexpected_exception_is_one_line_and_exit_4(monkeypatch: pytest.MonkeyPatch) -> None:
    from ebank_auth.cli import crypto_cmd

    def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(crypto_cmd.sm3, "SM3", broken)  # stands in for a bug in a command
    res = run("crypto", "sm3", "-", input="abc")
    assert res.exit_code == 4 and "Traceback" not in res.output
    assert "internal error (RuntimeError: boom); please report it" in res.stderr


def test_default_store_lives_under_ebank_auth_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"EBANK_AUTH_HOME": str(home), "EBANK_AUTH_STORE": ""}
    res = run("lockout", "status", "alice", "--json", env=env)
    assert res.exit_code == 0, res.output
    assert _json(res)["locked"] is False
    assert (home / "ebank-auth.db").is_file()
    env = {"EBANK_AUTH_HOME": "", "XDG_DATA_HOME": str(tmp_path / "xdg"), "EBANK_AUTH_STORE": ""}
    assert run("lockout", "status", "bob", env=env).exit_code == 0
    assert (tmp_path / "xdg" / "ebank-auth" / "ebank-auth.db").is_file()


def _subprocess(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    full.update(env)
    return subprocess.run(
        [sys.executable, *args], env=full, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_python_dash_m_and_help_imports_no_command_module() -> None:
    res = _subprocess("-X", "importtime", "-m", "ebank_auth", "--help")
    assert res.returncode == 0, res.stderr
    assert "Commands:" in res.stdout and "Examples:" in res.stdout
    for name in ("selftest", "crypto", "token", "otp", "lockout", "audit"):
        assert f"\n  {name} " in res.stdout
    imported = [ln.rsplit("|", 1)[-1].strip() for ln in res.stderr.splitlines() if "|" in ln]
    assert "ebank_auth.cli" in imported
    assert not [m for m in imported if m.startswith("ebank_auth.cli.") and m.endswith("_cmd")]
    assert not [m for m in imported if m.startswith(("ebank_auth.crypto", "ebank_auth.usbkey"))]


def test_console_script_without_pcscd_exits_3(tmp_path: Path) -> None:
    pytest.importorskip("smartcard")
    script = Path(sys.executable).with_name("ebank-auth")
    argv = [str(script)] if script.exists() else ["-m", "ebank_auth"]
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm"), "EBANK_AUTH_HOME": str(tmp_path)}  # fmt: skip
    cmd = argv if script.exists() else [sys.executable, *argv]
    res = subprocess.run([*cmd, "token", "info", "--json"], env=env, capture_output=True,
                         text=True, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
    assert res.returncode == 3, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["error"]["type"] == "PcscUnavailable" and "pcscd" in doc["error"]["message"]
    text = subprocess.run([*cmd, "token", "info"], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
    assert text.returncode == 3 and text.stderr.startswith("error: PC/SC service not running")
    assert "Traceback" not in text.stderr and "manufacturer root" not in text.stderr
