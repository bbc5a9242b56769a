"""Fixtures for executing the documentation: a real isolated pcscd for token walk-throughs,
and a line in the test report listing the blocks that opted out of execution."""

from __future__ import annotations

from typing import Any

from plugins.pcscd import pcscd_vpcd  # noqa: F401

from .blocks import all_blocks


def pytest_terminal_summary(terminalreporter: Any) -> None:
    ran = [r for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])]
    if not any("test_doc_blocks" in getattr(r, "nodeid", "") for r in ran):
        return
    opted = [b for b in all_blocks() if b.not_run is not None]
    terminalreporter.write_line(f"docs: {len(opted)} code block(s) not run:")
    for b in opted:
        terminalreporter.write_line(f"  {b.where}: {b.not_run}")
