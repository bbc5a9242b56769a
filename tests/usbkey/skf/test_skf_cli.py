"""``ebank-auth token --backend skf`` (issue 15 items 5-6): the CLI drives a token behind an SKF
library, and the conformance run says what the backend cannot show (no display: confirm-and-sign
is not available, so its signatures never count as transaction confirmations)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .conftest import ADMIN_PIN, USER_PIN, SkfState


def cli(library: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ebank_auth", "token", "--backend", "skf", "--skf-library",
         str(library), *args],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "EBANK_AUTH_PIN": USER_PIN, "EBANK_AUTH_ADMIN_PIN": ADMIN_PIN, **env},
    )  # fmt: skip


def test_info_says_the_token_cannot_confirm(skf_library: Path, skf_state: SkfState) -> None:
    done = cli(skf_library, "info", "--json")
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    assert doc["backend"] == "skf" and doc["confirm_and_sign"] is False
    assert doc["user_pin"]["remaining"] == doc["user_pin"]["max_retries"]


def test_conformance_runs_and_reports_what_skf_cannot_show(
    skf_library: Path, skf_state: SkfState
) -> None:
    done = cli(skf_library, "conformance", "--yes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["passed"] and doc["can_confirm"] is False
    assert doc["unavailable"] == ["confirmation"]
    status = {c["id"]: c["status"] for c in doc["checks"]}
    # what SKF can show is checked for real: exact lockout, unblock, on-token keys, signatures
    assert status["lockout"] == status["unblock"] == "pass"
    assert status["keys"] == status["signatures"] == "pass"
    assert skf_state.pins()[0] == skf_state.pins()[1]  # the run left the counter full


def test_a_transaction_key_is_refused_and_the_backend_needs_its_library(
    skf_library: Path, skf_state: SkfState
) -> None:
    done = cli(skf_library, "key", "generate")
    assert done.returncode == 1 and "cannot be a transaction" in done.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "ebank_auth", "token", "--backend", "skf", "info"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 2 and "--skf-library" in missing.stderr


def test_token_list_shows_what_the_skf_library_sees(skf_library: Path, skf_state: SkfState) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ebank_auth", "token", "--skf-library", str(skf_library), "list",
         "--json"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PCSCLITE_CSOCK_NAME": "/nonexistent"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    vendor = json.loads(done.stdout)["vendor_tokens"]
    assert vendor == [{"backend": "skf", "name": "EBANK-SKF-TEST-0", "serial": "", "maker": ""}]


def test_csr_signed_on_the_skf_token_verifies_with_openssl(
    skf_library: Path, skf_state: SkfState, tmp_path: Path
) -> None:
    done = cli(skf_library, "key", "generate", "--usage", "login")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "b.csr"
    done = cli(skf_library, "csr", "--subject", "CN=Bob,O=Bank", "--out", str(out))
    assert done.returncode == 0, done.stderr
    check = subprocess.run(
        ["openssl", "req", "-in", str(out), "-verify", "-noout",
         "-vfyopt", "distid:1234567812345678"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0 and "verify OK" in (check.stdout + check.stderr), check.stderr
