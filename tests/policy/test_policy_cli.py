"""``ebank-auth policy`` and ``ebank-auth lockout`` commands."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ebank_auth.audit import AuditLog, HmacSm3Key
from ebank_auth.cli import cli
from ebank_auth.policy.lockout import LoginLockout
from ebank_auth.store import SQLiteStore

KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


def test_check_default_and_file(tmp_path: Path) -> None:
    code, out, _ = run("policy", "check", "default")
    assert code == 0 and "ok: default" in out and "lockout after 5 failures" in out
    p = tmp_path / "p.toml"
    code, text, _ = run("policy", "default")
    assert code == 0 and "[amount_tiers]" in text
    p.write_text(text.replace("max_failures = 5", "max_failures = 6"), encoding="utf-8")
    code, _, err = run("policy", "check", str(p))
    assert code == 1 and f"error: {p}:" in err and "lockout.max_failures" in err
    code, _, err = run("policy", "check", str(tmp_path / "missing.toml"))
    assert code == 2 and "No such file" in err  # unreadable input, not an invalid policy


def test_explain() -> None:
    ctx = {
        "user": "c1",
        "operation": "login",
        "local_time": "2026-03-10T02:30:00",
        "device_status": "trusted",
        "presented": ["password"],
    }
    code, out, _ = run("policy", "explain", "default", "--context", json.dumps(ctx), "--json")
    assert code == 1
    data = json.loads(out)
    assert data["outcome"] == "step_up" and "night-login-code" in data["fired"]
    assert data["missing"] == [["sms_code", "voice_code"]]
    assert data["context"]["local_time"].endswith("+08:00")
    ctx["presented"] = ["password", "sms_code"]
    code, out, _ = run("policy", "explain", "default", "--context", json.dumps(ctx), "--json")
    assert code == 0 and json.loads(out)["outcome"] == "allow"


def test_explain_bad_context(tmp_path: Path) -> None:
    code, _, err = run("policy", "explain", "default", "--context", "{not json")
    assert code == 2 and "not valid JSON" in err
    code, _, err = run("policy", "explain", "default", "--context", '{"user": "c1"}')
    assert code == 2 and "operation" in err
    f = tmp_path / "c.json"
    f.write_text('{"user": "c1", "operation": "transfer", "amount": "100"}', encoding="utf-8")
    code, out, _ = run("policy", "explain", "default", "--context", f"@{f}", "--json")
    assert code == 1 and "tier-1-small" in json.loads(out)["fired"]


def test_lockout_status_and_unlock(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = SQLiteStore(str(db))
    lockout = LoginLockout(store)
    for _ in range(5):
        lockout.attempt("alice", lambda: False)
    url = f"sqlite://{db}"
    code, out, _ = run("lockout", "status", "alice", "--store", url)
    assert code == 1 and "locked after 5 failures" in out
    code, _, err = run("lockout", "unlock", "alice", "--store", url, "--admin", "ops")
    assert code == 2 and "audited" in err
    code, out, _ = run(
        "lockout",
        "unlock",
        "alice",
        "--store",
        str(db),
        "--admin",
        "ops",
        "--reason",
        "verified by phone",
        env={"EBANK_AUTH_AUDIT_HMAC_KEY": KEY_HEX},
    )
    assert code == 0 and "unlocked by ops" in out
    code, out, _ = run("lockout", "status", "alice", env={"EBANK_AUTH_STORE": url})
    assert code == 0 and "not locked (0 of 5" in out
    log = AuditLog(store, HmacSm3Key(bytes.fromhex(KEY_HEX)))
    assert log.check().ok
    rec = next(r for r in log.records() if r["event"] == "login_unlocked")
    assert rec["details"]["admin"] == "ops" and rec["details"]["reason"] == "verified by phone"
    code, _, err = run("lockout", "status", "alice", "--store", str(tmp_path / "none.db"))
    assert code == 2
