"""Find the fenced code blocks of the project's Markdown files (for test_doc_blocks.py).

A block is run unless the line just before its fence (blank lines allowed in between) is an
opt-out marker ``<!-- not-run: why -->``; the reason must say why, and the tests report every
opted-out block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = frozenset({"python", "py", "pycon"})
SHELL = frozenset({"sh", "bash", "console", "shell"})

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<why>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    path: Path  # the Markdown file
    line: int  # 1-based line of the first code line (after the opening fence)
    lang: str  # first word of the info string, lower case ("" when none)
    code: str
    not_run: str | None  # the opt-out reason, or None when the block is run

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def markdown_files() -> list[Path]:
    """README.md and every Markdown file under docs/, in a stable order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def parse(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, info = m["fence"], m["info"].strip()
        lang = info.split()[0].lower() if info else ""
        j = i + 1
        while j < len(lines) and not re.match(
            rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[j]
        ):
            j += 1
        if j == len(lines):
            raise ValueError(f"{path}:{i + 1}: unclosed code fence")
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = _NOT_RUN.match(lines[k]) if k >= 0 else None
        blocks.append(
            Block(
                path,
                i + 2,
                lang,
                "\n".join(lines[i + 1 : j]) + "\n",
                marker["why"] if marker else None,
            )
        )
        i = j + 1
    return blocks


def all_blocks() -> list[Block]:
    return [b for p in markdown_files() for b in parse(p)]


def needs_shell_run(block: Block) -> bool:
    """Shell blocks are run when they call ebank-auth or openssl."""
    return (
        block.lang in SHELL
        and re.search(r"(^|[\s;|&(])(ebank-auth|openssl)\s", block.code) is not None
    )
