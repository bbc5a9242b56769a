"""The vendored browser libraries are exactly what VENDORED.md records (version, license, SRI)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from plugins.softkeyboard_server import STATIC, VENDORED, vendored_files

VENDOR = STATIC / "vendor"


def _sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def test_vendored_files_listed() -> None:
    files = vendored_files()
    assert set(files) == {"sm-crypto-0.5.8/sm2.js", "sm-crypto-0.5.8/sm3.js"}
    on_disk = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*.js")}
    assert on_disk == set(files), "every vendored script is recorded in VENDORED.md"


@pytest.mark.parametrize("name", sorted(vendored_files()))
def test_vendored_file_hash_matches_record(name: str) -> None:
    """Attack: a vendored script altered in the tree (supply chain, a careless edit) would
    run in every customer's browser next to the password; its hash must equal the record."""
    assert _sri((VENDOR / name).read_bytes()) == vendored_files()[name]


def test_vendored_license_and_version_recorded() -> None:
    text = VENDORED.read_text(encoding="utf-8")
    license_file = VENDOR / "sm-crypto-0.5.8" / "LICENCE_MIT"
    assert "Permission is hereby granted, free of charge" in license_file.read_text(
        encoding="utf-8"
    )
    assert "| sm-crypto | 0.5.8 |" in text
    assert "sm-crypto-0.5.8/LICENCE_MIT" in text


def test_sri_check_detects_a_changed_byte() -> None:
    name = sorted(vendored_files())[0]
    data = bytearray((VENDOR / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    assert _sri(bytes(data)) != vendored_files()[name]
