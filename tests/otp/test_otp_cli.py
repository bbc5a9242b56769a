"""``ebank-auth otp`` end to end (click runner, real SQLite store, real outbox)."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ebank_auth.cli import cli
from ebank_auth.crypto import sm3
from ebank_auth.otp import OtpAlgorithm, hotp_code
from plugins.otp_helpers import tx

SEAL = "00112233445566778899aabbccddeeff"
KEY = "ab" * 16


def _run(*args: str, env: dict[str, str] | None = None) -> Any:
    base = {"EBANK_AUTH_SEALING_KEY": "", "EBANK_AUTH_OTP_KEY": "", "EBANK_AUTH_SM3_KEY": ""}
    return CliRunner().invoke(cli, list(args), env={**base, **(env or {})}, catch_exceptions=False)


def _secret_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text + "\n", encoding="ascii")
    return str(path)


def test_secrets_are_not_command_line_arguments() -> None:
    """Issue 11 item 12: secrets given as arguments are readable by every local user in the
    process list and kept in shell history.  No OTP command takes one."""
    for args in (
        ["otp", "sm3", "--key", KEY, "--time", "1"],
        ["otp", "totp", "enroll", "--sealing-key", SEAL, "--user", "a"],
        ["otp", "sms", "verify", "--server-key", KEY, "--user", "a", "--code", "123456"],
    ):
        result = _run(*args)
        assert result.exit_code == 2, args
        assert "No such option" in result.output or "was renamed" in result.output, args


def test_sm3_vectors(gm_vectors: Any, tmp_path: Path) -> None:
    for case in gm_vectors["gmt0021_sm3_otp"]["cases"]:
        result = _run(
            "otp",
            "sm3",
            "--seed-file",
            _secret_file(tmp_path, "seed.hex", case["k"]),
            "--time",
            str(case["t"]),
            "--counter",
            str(case["c"]),
            "--challenge",
            case["q"],
        )
        assert result.exit_code == 0, result.output
        assert result.output.strip() == case["otp"]
    assert _run("otp", "sm3", "--time", "1", env={"EBANK_AUTH_SM3_KEY": "zz"}).exit_code == 2
    short = _secret_file(tmp_path, "short.hex", "00")
    assert _run("otp", "sm3", "--seed-file", short, "--time", "1").exit_code == 2  # too short
    assert _run("otp", "sm3", "--time", "1").exit_code == 2  # no key at all


def test_totp_enroll_verify_replay(tmp_path: Path) -> None:
    store = f"sqlite://{tmp_path / 's.db'}"
    svg = tmp_path / "qr.svg"
    result = _run(
        "otp",
        "totp",
        "enroll",
        "--store",
        store,
        "--sealing-key-file",
        _secret_file(tmp_path, "seal.hex", SEAL),
        "--user",
        "alice",
        "--qr-svg-out",
        str(svg),
        "--no-qr",
    )
    assert result.exit_code == 0, result.output
    secret = re.search(r"secret: (\S+)", result.output).group(1)  # type: ignore[union-attr]
    assert "otpauth://totp/" in result.output and svg.read_text().startswith("<svg")
    seed = base64.b32decode(secret + "=" * (-len(secret) % 8))
    at = int(time.time())  # the store's clock decides; no caller-chosen time
    code = hotp_code(seed, at // 30, 6, OtpAlgorithm.SHA1)
    args = [
        "otp",
        "totp",
        "verify",
        "--store",
        store,
        "--user",
        "alice",
        "--code",
        code,
    ]
    ok = _run(*args, env={"EBANK_AUTH_SEALING_KEY": SEAL})
    assert ok.exit_code == 0 and "accepted" in ok.output
    again = _run(*args, env={"EBANK_AUTH_SEALING_KEY": SEAL})
    assert again.exit_code == 1 and "already used" in again.output
    wrong_key = _run(*args, "--sealing-key-file", _secret_file(tmp_path, "other.hex", "ff" * 16))
    assert wrong_key.exit_code == 2  # the secret does not open under another key
    assert _run("otp", "totp", "enroll", "--store", store, "--user", "bob").exit_code == 2


def _tx_file(tmp_path: Path, n: int = 1) -> str:
    path = tmp_path / f"tx{n}.json"
    path.write_text(json.dumps(tx(n).to_dict(), ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_sms_send_and_verify(tmp_path: Path) -> None:
    store = f"sqlite://{tmp_path / 's.db'}"
    outbox = tmp_path / "outbox"
    digest = tx(1).digest().hex()
    key_file = _secret_file(tmp_path, "otp.key", KEY)
    sent = _run(
        "otp",
        "sms",
        "send",
        "--store",
        store,
        "--server-key-file",
        key_file,
        "--outbox",
        str(outbox),
        "--user",
        "alice",
        "--phone",
        "13800000001",
        "--purpose",
        "transaction",
        "--transaction",
        _tx_file(tmp_path),
    )
    assert sent.exit_code == 0, sent.output
    assert "138****0001" in sent.output
    message = json.loads(next(outbox.glob("*.json")).read_text(encoding="utf-8"))
    assert "101.00" in message["text"] and "13800000001" not in json.dumps(message)
    code = re.search(r"(?<![\d,.])\d{6}(?![\d,.])", message["text"]).group(0)  # type: ignore[union-attr]
    base = [
        "otp",
        "sms",
        "verify",
        "--store",
        store,
        "--server-key-file",
        key_file,
        "--user",
        "alice",
        "--purpose",
        "transaction",
    ]
    other = sm3.digest(b"other").hex()
    assert _run(*base, "--code", code, "--tx-digest", other).exit_code == 1
    assert _run(*base, "--code", "12x", "--tx-digest", digest).exit_code == 1
    assert _run(*base, "--code", code, "--tx-digest", "abcd").exit_code == 2
    assert _run(*base, "--code", code, "--transaction", _tx_file(tmp_path)).exit_code == 0
    assert _run(*base, "--code", code, "--tx-digest", digest).exit_code == 1  # used
    cooled = _run(
        "otp",
        "sms",
        "send",
        "--store",
        store,
        "--server-key-file",
        key_file,
        "--outbox",
        str(outbox),
        "--user",
        "alice",
        "--phone",
        "13800000001",
        "--purpose",
        "transaction",
        "--transaction",
        _tx_file(tmp_path),
    )
    assert cooled.exit_code == 1 and "wait" in cooled.output


def test_voice_states_the_transaction(tmp_path: Path) -> None:
    store = f"sqlite://{tmp_path / 's.db'}"
    outbox = tmp_path / "o"
    base = [
        "otp",
        "sms",
        "send",
        "--store",
        store,
        "--outbox",
        str(outbox),
        "--user",
        "u",
        "--phone",
        "13800000009",
        "--channel",
        "voice",
        "--purpose",
        "transaction",
    ]
    env = {"EBANK_AUTH_OTP_KEY": KEY}
    bad = tmp_path / "bad.json"
    bad.write_text('{"amount": "1"}', encoding="utf-8")
    assert _run(*base, "--transaction", str(bad), env=env).exit_code == 2
    ok = _run(*base, "--transaction", _tx_file(tmp_path, 400), env=env)
    assert ok.exit_code == 0, ok.output
    text = json.loads(next(outbox.glob("*.json")).read_text(encoding="utf-8"))["text"]
    assert "转账" in text and "500.00元" in text
