"""``ebank-auth audit verify|export``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from ebank_auth.audit import AuditLog, HmacSm3Key, Sm2AuditSigner
from ebank_auth.cli import cli
from ebank_auth.crypto import sm2
from ebank_auth.store import SQLiteStore

KEY = bytes(range(32))


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


def make_db(tmp_path: Path) -> Path:
    db = tmp_path / "audit.db"
    log = AuditLog(SQLiteStore(str(db)), HmacSm3Key(KEY), checkpoint_every=3)
    for i in range(7):
        log.record("login", user=f"用户{i}", outcome="allow")
    return db


def test_verify_db_export_and_jsonl(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    keyfile = tmp_path / "k.hex"
    keyfile.write_text(KEY.hex())
    code, out, _ = run("audit", "verify", str(db), "--audit-key-file", str(keyfile))
    assert code == 0 and "ok: log 'audit': 10 records, 3 signed checkpoints" in out
    code, out, _ = run(
        "audit", "verify", f"sqlite://{db}", "--json", env={"EBANK_AUTH_AUDIT_HMAC_KEY": KEY.hex()}
    )
    assert code == 0 and json.loads(out)["ok"] is True

    jsonl = tmp_path / "audit.jsonl"
    code, _, err = run("audit", "export", str(db), "--out", str(jsonl))
    assert code == 0 and "exported 10 records" in err
    assert len(jsonl.read_text().splitlines()) == 11
    raw = tmp_path / "k.bin"
    raw.write_bytes(KEY)
    code, out, _ = run("audit", "verify", str(jsonl), "--audit-key-file", str(raw))
    assert code == 0, out

    lines = jsonl.read_text().split("\n")
    del lines[4]
    jsonl.write_text("\n".join(lines))
    code, out, _ = run("audit", "verify", str(jsonl), "--audit-key-file", str(keyfile))
    assert code == 1 and "record 5:" in out


def test_verify_names_first_bad_record_in_db(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE logs SET data = CAST(replace(data, 'allow', 'deny!') AS BLOB) WHERE seq = 6"
        )
    code, out, _ = run("audit", "verify", str(db), env={"EBANK_AUTH_AUDIT_HMAC_KEY": KEY.hex()})
    assert code == 1 and "record 6:" in out


def test_verify_with_sm2_public_key(tmp_path: Path) -> None:
    key = sm2.generate_private_key()
    db = tmp_path / "a.db"
    log = AuditLog(SQLiteStore(str(db)), Sm2AuditSigner(key))
    log.record("login", user="x")
    pem = tmp_path / "pub.pem"
    pem.write_bytes(key.public_key().to_pem())
    code, out, _ = run("audit", "verify", str(db), "--public-key", str(pem))
    assert code == 0, out
    code, out, _ = run("audit", "verify", str(db), env={"EBANK_AUTH_AUDIT_HMAC_KEY": KEY.hex()})
    assert code == 1 and "signed head" in out


def test_usage_errors(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    code, _, err = run("audit", "verify", str(db))
    assert code == 2 and "signatures must be checked" in err
    code, _, err = run(
        "audit", "verify", str(tmp_path / "nope.db"), env={"EBANK_AUTH_AUDIT_HMAC_KEY": KEY.hex()}
    )
    assert code == 2
    short = tmp_path / "short"
    short.write_bytes(b"abc")
    code, _, err = run("audit", "verify", str(db), "--audit-key-file", str(short))
    assert code == 2 and "bad audit key" in err
