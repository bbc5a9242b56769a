"""``ebank-auth agent serve`` as a program: starts, answers, stops on SIGTERM; refuses bad setups."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ebank_auth.cli import cli
from plugins.pcscd import PcscdVpcd

from .conftest import ORIGIN, CountingCard

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.pcsc
def test_serve_answers_and_stops_on_sigterm(
    pcscd_vpcd: PcscdVpcd, card: CountingCard, token_state: Path
) -> None:
    env = {**os.environ, **pcscd_vpcd.env, "EBANK_AUTH_TOKEN_STATE": str(token_state),
           "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "ebank_auth", "agent", "serve", "--port", "0", "--origin", ORIGIN,
         "--emulator", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        assert started["ok"] is True and started["origins"] == [ORIGIN]
        port = started["port"]
        assert started["url"] == f"http://127.0.0.1:{port}"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/pair", body=b'{"binding": "b"}',
                     headers={"Origin": ORIGIN, "Content-Type": "application/json"})  # fmt: skip
        pairing = json.loads(conn.getresponse().read())["pairing"]
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/v1/tokens",
                     headers={"Origin": ORIGIN, "Authorization": f"Bearer {pairing}"})  # fmt: skip
        tokens = json.loads(conn.getresponse().read())
        conn.close()
        assert [t["serial"] for t in tokens["tokens"]] == [card.token.serial]
        assert tokens["tokens"][0]["genuine"] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert proc.stderr is not None
        log = proc.stderr.read()
        assert "GET '/v1/tokens' 200" in log and pairing not in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--origin", "https://bank.test/"], 2, "exact web origin"),
        (["--origin", "https://bank.test:443"], 2, "default port"),
        (["--origin", "https://bank.test"], 2, "no manufacturer root"),  # nothing trusted
        ([], 2, "--origin"),
    ],
)
def test_serve_refuses_bad_setups(
    args: list[str], code: int, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EBANK_AUTH_TOKEN_ROOTS", raising=False)
    res = CliRunner().invoke(cli, ["agent", "serve", "--port", "0", *args, "--json"])
    assert res.exit_code == code, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and words in doc["error"]["message"]
