"""``ebank-auth softkeyboard demo``."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from ebank_auth.cli import cli


def test_demo_digits(tmp_path: Path) -> None:
    svg = tmp_path / "kb.svg"
    result = CliRunner().invoke(
        cli, ["softkeyboard", "demo", "--type", "284017", "--svg-out", str(svg)]
    )
    assert result.exit_code == 0, result.output
    assert "******" in result.output and "matches typed input: yes" in result.output
    assert "284017" not in result.output
    assert "<text" not in svg.read_text()


def test_demo_prompt_and_bad_key() -> None:
    ok = CliRunner().invoke(
        cli, ["softkeyboard", "demo", "--mode", "alphanumeric"], input="Abc123\n"
    )
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(cli, ["softkeyboard", "demo", "--type", "12!"])
    assert bad.exit_code == 2
