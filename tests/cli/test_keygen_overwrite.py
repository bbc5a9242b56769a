"""``crypto sm2 keygen --out`` never overwrites an existing key file unless ``--force``."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from ebank_auth.cli import cli


def test_keygen_refuses_to_overwrite_an_existing_key(tmp_path: Path) -> None:
    """Attack/accident: ``keygen --out key.pem`` over the only copy of an existing private key
    destroyed it silently (and kept the old file's permissions).  Now it is refused (exit 2) and
    the file is unchanged."""
    key = tmp_path / "key.pem"
    key.write_bytes(b"the only copy of a precious key\n")
    res = CliRunner().invoke(cli, ["crypto", "sm2", "keygen", "--out", str(key)])
    assert res.exit_code == 2, res.output
    assert "--force" in res.output
    assert key.read_bytes() == b"the only copy of a precious key\n"
