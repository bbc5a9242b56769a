"""The source distribution carries the documentation, the licence and the changelog."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from .blocks import ROOT, markdown_files


def test_sdist_ships_docs_license_and_changelog(tmp_path: Path) -> None:
    # build from a copy: building in place would leave src/ebank_auth.egg-info, which then
    # shadows the real installation's metadata for every later test
    tree = tmp_path / "tree"
    ignore = shutil.ignore_patterns(
        "__pycache__",
        "*.egg-info",
        ".git",
        ".venv",
        "build",
        "dist",
        "site",
        ".*_cache",
        ".hypothesis",
    )
    shutil.copytree(ROOT, tree, ignore=ignore, symlinks=True)
    code = (
        "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
        timeout=240,
    )
    name = out.stdout.strip().splitlines()[-1]
    with tarfile.open(tmp_path / name) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
        pkg_info = tar.extractfile(f"{name.removesuffix('.tar.gz')}/PKG-INFO")
        assert pkg_info is not None
        metadata = pkg_info.read().decode()
    expected = {"LICENSE", "CHANGELOG.md", "README.md", "mkdocs.yml", "pyproject.toml"}
    expected.add("scripts/griffe_sphinx_roles.py")  # mkdocs.yml loads it
    expected |= {str(p.relative_to(ROOT)) for p in markdown_files()}
    assert expected - members == set()
    assert "License-Expression: Apache-2.0" in metadata
    assert "License-File: LICENSE" in metadata
    assert (ROOT / "LICENSE").read_text().split()[:4] == ["Apache", "License", "Version", "2.0,"]
