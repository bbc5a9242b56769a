"""``check_installation``: the installed library checked against its wheel RECORD (UK-9, AU-14)."""

from __future__ import annotations

import base64
import hashlib
from importlib import metadata
from pathlib import Path

from ebank_auth.integrity import IntegrityStatus, check_distribution, check_installation


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _install(root: Path, files: dict[str, bytes]) -> metadata.Distribution:
    """A real installed-wheel layout: package files plus dist-info with METADATA and RECORD."""
    dist_info = root / "ebank_auth-9.9.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: ebank-auth\nVersion: 9.9\n")
    rows = []
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows.append(f"{rel},{_hash(data)},{len(data)}")
    rows.append("ebank_auth-9.9.dist-info/RECORD,,")
    (dist_info / "RECORD").write_text("\n".join(rows) + "\n")
    return metadata.PathDistribution(dist_info)


FILES = {
    "ebank_auth/__init__.py": b"VERSION = 1\n",
    "ebank_auth/usbkey/session.py": b"def verify(): return True\n",
}


def test_clean_install_ok(tmp_path: Path) -> None:
    report = check_distribution(_install(tmp_path, FILES))
    assert report.status is IntegrityStatus.OK and report.checked == 2


def test_modified_file_detected(tmp_path: Path) -> None:
    dist = _install(tmp_path, FILES)
    (tmp_path / "ebank_auth/usbkey/session.py").write_bytes(b"def verify(): return 1\n")
    report = check_distribution(dist)
    assert report.status is IntegrityStatus.TAMPERED
    assert report.modified == ("ebank_auth/usbkey/session.py",)


def test_missing_and_added_files_detected(tmp_path: Path) -> None:
    dist = _install(tmp_path, FILES)
    (tmp_path / "ebank_auth/__init__.py").unlink()
    (tmp_path / "ebank_auth/usbkey/evil.py").write_text("steal()\n")
    report = check_distribution(dist)
    assert report.status is IntegrityStatus.TAMPERED
    assert report.missing == ("ebank_auth/__init__.py",)
    assert report.unexpected == ("ebank_auth/usbkey/evil.py",)


def test_bytecode_ignored(tmp_path: Path) -> None:
    dist = _install(tmp_path, FILES)
    cache = tmp_path / "ebank_auth/__pycache__"
    cache.mkdir()
    (cache / "x.cpython-311.pyc").write_bytes(b"\0")
    assert check_distribution(dist).ok


def test_no_record_is_unverifiable_never_ok(tmp_path: Path) -> None:
    dist = _install(tmp_path, FILES)
    (tmp_path / "ebank_auth-9.9.dist-info/RECORD").unlink()
    report = check_distribution(dist)
    assert report.status is IntegrityStatus.UNVERIFIABLE and not report.ok


def test_current_install_is_reported() -> None:
    report = check_installation()
    assert report.status in (IntegrityStatus.OK, IntegrityStatus.UNVERIFIABLE)
    assert report.to_json()["status"] == report.status.value
