"""``ebank-auth fido`` against the software token's CTAP2 applet behind a real pcscd."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ebank_auth.cli import cli
from ebank_auth.usbkey.emulator.card import token_card
from ebank_auth.usbkey.emulator.display import AutoApprove
from plugins.pcscd import PcscdVpcd

pytestmark = pytest.mark.pcsc


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["fido", *args], env=env)


@pytest.fixture
def inserted(pcscd_vpcd: PcscdVpcd, tmp_path: Path) -> Iterator[str]:
    with pcscd_vpcd.inserted(token_card(tmp_path / "token", AutoApprove()), reader=0):
        yield pcscd_vpcd.readers[0]


def test_no_authenticator_is_exit_3(pcscd_vpcd: PcscdVpcd) -> None:
    res = run("list", "--json")
    assert res.exit_code == 3, res.output
    assert json.loads(res.stdout)["error"]["category"] == "unavailable"
    assert run("info").exit_code == 3


def test_list_info_pin_and_reset(inserted: str) -> None:
    listed = json.loads(run("list", "--json").stdout)
    assert listed["devices"] == [{"kind": "pcsc", "name": inserted}]
    info = json.loads(run("info", "--device", "PCD 00 00", "--json").stdout)
    assert info["pin_set"] is False and "FIDO_2_1" in info["versions"]
    assert info["pin_uv_protocols"] == [2] and info["algorithms"] == [-7]
    text = run("info")
    assert text.exit_code == 0 and "AAGUID" in text.stdout

    assert run("pin", "set", "--json", env={"EBANK_AUTH_FIDO_PIN": "1234"}).exit_code == 0
    again = run("pin", "set", "--json", env={"EBANK_AUTH_FIDO_PIN": "5678"})
    assert again.exit_code == 1 and "already set" in json.loads(again.stdout)["error"]["message"]
    wrong = run(
        "pin", "change", "--json",
        env={"EBANK_AUTH_FIDO_PIN": "0000", "EBANK_AUTH_FIDO_NEW_PIN": "5678"},
    )  # fmt: skip
    assert wrong.exit_code == 1
    error = json.loads(wrong.stdout)["error"]
    assert error["type"] == "PinIncorrect" and error["remaining"] == 7
    assert json.loads(run("pin", "retries", "--json").stdout)["pin_retries"] == 7
    short = run(
        "pin", "change", env={"EBANK_AUTH_FIDO_PIN": "1234", "EBANK_AUTH_FIDO_NEW_PIN": "1"}
    )
    assert short.exit_code == 2, short.output  # a policy error is the user's input
    ok = run(
        "pin", "change", "--json",
        env={"EBANK_AUTH_FIDO_PIN": "1234", "EBANK_AUTH_FIDO_NEW_PIN": "5678"},
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert json.loads(run("info", "--json").stdout)["pin_retries"] == 8

    assert run("reset").exit_code == 2  # no terminal and no --yes: nothing is erased
    reset = run("reset", "--yes", "--json")
    assert reset.exit_code == 0, reset.output
    assert json.loads(run("info", "--json").stdout)["pin_set"] is False


def test_pin_without_a_terminal_or_environment_is_a_usage_error(inserted: str) -> None:
    res = run("pin", "set", "--json")
    assert res.exit_code == 2
    assert "EBANK_AUTH_FIDO_PIN" in json.loads(res.stdout)["error"]["message"]
