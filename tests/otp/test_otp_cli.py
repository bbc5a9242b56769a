"""``ebank-auth otp`` end to end (click runner, real SQLite store, real outbox)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ebank_auth.cli import cli
from ebank_auth.crypto import sm3
from ebank_auth.otp import OtpAlgorithm, hotp_code

SEAL = "00112233445566778899aabbccddeeff"
KEY = "ab" * 16


def _run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_sm3_vectors(gm_vectors: Any) -> None:
    for case in gm_vectors["gmt0021_sm3_otp"]["cases"]:
        result = _run(
            "otp",
            "sm3",
            "--seed",
            case["k"],
            "--time",
            str(case["t"]),
            "--counter",
            str(case["c"]),
            "--challenge",
            case["q"],
        )
        assert result.exit_code == 0, result.output
        assert result.output.strip() == case["otp"]
    assert _run("otp", "sm3", "--seed", "zz", "--time", "1").exit_code == 2
    assert _run("otp", "sm3", "--seed", "00", "--time", "1").exit_code == 2  # key too short


def test_totp_enroll_verify_replay(tmp_path: Path) -> None:
    store = f"sqlite://{tmp_path / 's.db'}"
    svg = tmp_path / "qr.svg"
    result = _run(
        "otp",
        "totp",
        "enroll",
        "--store",
        store,
        "--sealing-key",
        SEAL,
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
    at = 1_700_000_000
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
        "--at",
        str(at),
    ]
    ok = _run(*args, env={"EBANK_AUTH_SEALING_KEY": SEAL})
    assert ok.exit_code == 0 and "accepted" in ok.output
    again = _run(*args, env={"EBANK_AUTH_SEALING_KEY": SEAL})
    assert again.exit_code == 1 and "already used" in again.output
    wrong_key = _run(*args[:-2], "--at", str(at + 30), "--sealing-key", "ff" * 16)
    assert wrong_key.exit_code == 2  # the secret does not open under another key
    assert _run("otp", "totp", "enroll", "--store", store, "--user", "bob").exit_code == 2


def test_sms_send_and_verify(tmp_path: Path) -> None:
    store = f"sqlite://{tmp_path / 's.db'}"
    outbox = tmp_path / "outbox"
    digest = sm3.digest(b"tx").hex()
    sent = _run(
        "otp",
        "sms",
        "send",
        "--store",
        store,
        "--server-key",
        KEY,
        "--outbox",
        str(outbox),
        "--user",
        "alice",
        "--phone",
        "13800000001",
        "--purpose",
        "transaction",
        "--tx-digest",
        digest,
    )
    assert sent.exit_code == 0, sent.output
    assert "138****0001" in sent.output
    message = json.loads(next(outbox.glob("*.json")).read_text(encoding="utf-8"))
    code = re.search(r"\d{6}", message["text"]).group(0)  # type: ignore[union-attr]
    base = [
        "otp",
        "sms",
        "verify",
        "--store",
        store,
        "--server-key",
        KEY,
        "--user",
        "alice",
        "--purpose",
        "transaction",
    ]
    other = sm3.digest(b"other").hex()
    assert _run(*base, "--code", code, "--tx-digest", other).exit_code == 1
    assert _run(*base, "--code", "12x", "--tx-digest", digest).exit_code == 1
    assert _run(*base, "--code", code, "--tx-digest", "abcd").exit_code == 2
    assert _run(*base, "--code", code, "--tx-digest", digest).exit_code == 0
    assert _run(*base, "--code", code, "--tx-digest", digest).exit_code == 1  # used
    cooled = _run(
        "otp",
        "sms",
        "send",
        "--store",
        store,
        "--server-key",
        KEY,
        "--outbox",
        str(outbox),
        "--user",
        "alice",
        "--phone",
        "13800000001",
        "--purpose",
        "transaction",
        "--tx-digest",
        digest,
    )
    assert cooled.exit_code == 1 and "wait" in cooled.output


def test_voice_needs_summary(tmp_path: Path) -> None:
    store = f"sqlite://{tmp_path / 's.db'}"
    base = [
        "otp",
        "sms",
        "send",
        "--store",
        store,
        "--server-key",
        KEY,
        "--outbox",
        str(tmp_path / "o"),
        "--user",
        "u",
        "--phone",
        "13800000009",
        "--channel",
        "voice",
        "--purpose",
        "transaction",
        "--tx-digest",
        sm3.digest(b"t").hex(),
    ]
    assert _run(*base).exit_code == 2
    ok = _run(*base, "--tx-kind", "转账", "--amount", "500")
    assert ok.exit_code == 0, ok.output
