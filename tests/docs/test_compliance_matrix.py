"""docs/compliance.md stays true: every file and test it names exists.

The matrix maps each requirement to code and tests by name (`usbkey/session.py`,
`pki/test_chain.py::test_wrong_key_usage`, `::test_other_in_the_same_file`).  A rename that
forgets the matrix makes a reviewer chase a ghost; this test names the dead reference instead.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MATRIX = ROOT / "docs" / "compliance.md"
SRC = ROOT / "src" / "ebank_auth"
TESTS = ROOT / "tests"

_REF = re.compile(r"`([A-Za-z0-9_./]+\.(?:py|toml))(?:::([A-Za-z0-9_]+))?`|`::([A-Za-z0-9_]+)`")


def _resolve(path: str) -> Path | None:
    for base in (SRC, TESTS):
        candidate = base / path
        if candidate.is_file():
            return candidate
    return None


def _rows() -> list[tuple[int, str]]:
    return [
        (n, line)
        for n, line in enumerate(MATRIX.read_text(encoding="utf-8").splitlines(), 1)
        if line.startswith("| ") and re.match(r"\| [A-Z]{2,3}-\d+", line)
    ]


def test_the_matrix_has_a_row_per_requirement_family() -> None:
    ids = {line.split("|")[1].strip() for _, line in _rows()}
    for prefix in ("UK-", "PS-", "OTP-", "SK-", "AU-"):
        assert any(i.startswith(prefix) for i in ids), prefix


def test_every_named_file_and_test_exists() -> None:
    dead: list[str] = []
    for lineno, line in _rows():
        last_file: Path | None = None
        for match in _REF.finditer(line):
            path, name, bare = match.groups()
            if path is not None:
                last_file = _resolve(path)
                if last_file is None:
                    dead.append(f"compliance.md:{lineno}: no file {path}")
                    continue
            else:
                name = bare
            if name is None or last_file is None:
                continue
            text = last_file.read_text(encoding="utf-8")
            if not re.search(
                rf"\b(?:def|class)\s+{re.escape(name)}\b|^{re.escape(name)}\s*[:=]", text, re.M
            ):
                dead.append(f"compliance.md:{lineno}: {last_file.relative_to(ROOT)} has no {name}")
    assert dead == [], "\n".join(dead)
