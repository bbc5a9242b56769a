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


def test_keygen_force_replaces_with_an_owner_only_file(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes(b"old")
    key.chmod(0o644)
    res = CliRunner().invoke(cli, ["crypto", "sm2", "keygen", "--out", str(key), "--force"])
    assert res.exit_code == 0, res.output
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert key.stat().st_mode & 0o777 == 0o600  # the old file's 0644 did not carry over
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]


def test_keygen_refuses_a_symlink_even_a_dangling_one(tmp_path: Path) -> None:
    link = tmp_path / "key.pem"
    link.symlink_to(tmp_path / "elsewhere.pem")
    res = CliRunner().invoke(cli, ["crypto", "sm2", "keygen", "--out", str(link)])
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "elsewhere.pem").exists()


def test_keygen_writes_a_new_file(tmp_path: Path) -> None:
    key = tmp_path / "new.pem"
    res = CliRunner().invoke(cli, ["crypto", "sm2", "keygen", "--out", str(key), "--json"])
    assert res.exit_code == 0, res.output
    assert key.stat().st_mode & 0o777 == 0o600
