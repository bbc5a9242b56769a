"""The reference pages keep up with the code: every environment variable the code reads is on
docs/environment.md, and every page under docs/ is reachable from the README and the site."""

from __future__ import annotations

import re

from .blocks import ROOT


def test_every_environment_variable_is_documented() -> None:
    read = set()
    for path in (ROOT / "src").rglob("*.py"):
        read |= set(re.findall(r"\bEBANK_AUTH_[A-Z0-9_]+\b", path.read_text(encoding="utf-8")))
    assert len(read) >= 10, "the scan found too few variables: is it still looking in src/?"
    documented = set(
        re.findall(r"`(EBANK_AUTH_[A-Z0-9_]+)", (ROOT / "docs/environment.md").read_text())
    )
    assert read - documented == set(), "add these to docs/environment.md"


def test_every_page_is_linked_from_the_readme_and_in_the_site_nav() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(p.relative_to(ROOT / "docs") for p in (ROOT / "docs").glob("*.md"))
    assert pages
    not_in_readme = [str(p) for p in pages if f"(docs/{p})" not in readme and p.name != "index.md"]
    not_in_nav = [str(p) for p in pages if f": {p}" not in nav]
    assert not_in_readme == [], "add them to README.md's documentation table"
    assert not_in_nav == [], "add them to the nav in mkdocs.yml"
