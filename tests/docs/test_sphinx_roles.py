"""The API reference shows Sphinx roles in docstrings as links (or code), never as literal
``:class:`X``` text (scripts/griffe_sphinx_roles.py, loaded by mkdocs.yml)."""

from __future__ import annotations

import importlib.util
import re
from types import ModuleType

import pytest

from .blocks import ROOT

griffe = pytest.importorskip("griffe")


def _extension() -> ModuleType:
    path = ROOT / "scripts" / "griffe_sphinx_roles.py"
    spec = importlib.util.spec_from_file_location("griffe_sphinx_roles", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXT = _extension()


def test_mkdocs_loads_the_extension() -> None:
    assert "scripts/griffe_sphinx_roles.py:SphinxRoles" in (ROOT / "mkdocs.yml").read_text()


@pytest.mark.parametrize(
    ("text", "identifier", "shown"),
    [
        (
            ":class:`~ebank_auth.usbkey.session.TokenSession`",
            "ebank_auth.usbkey.session.TokenSession",
            "TokenSession",
        ),
        (
            ":class:`ebank_auth.usbkey.token.Token`",
            "ebank_auth.usbkey.token.Token",
            "ebank_auth.usbkey.token.Token",
        ),
        (":func:`open_token`", "ebank_auth.usbkey.connect.open_token", "open_token()"),
        (":meth:`Token.close`", "ebank_auth.usbkey.token.Token.close", "Token.close()"),
        (":py:mod:`the module <ebank_auth.errors>`", "ebank_auth.errors", "the module"),
    ],
)
def test_convert_roles(text: str, identifier: str, shown: str) -> None:
    known = {
        "open_token": "ebank_auth.usbkey.connect.open_token",
        "Token.close": "ebank_auth.usbkey.token.Token.close",
    }

    def resolve(target: str) -> str | None:
        return target if target.startswith("ebank_auth.") else known.get(target)

    out = EXT.convert_roles(f"See {text}, then go on.", resolve)
    assert out == (
        f'See <autoref identifier="{identifier}" optional><code>{shown}</code></autoref>, '
        "then go on."
    )


def test_unknown_target_is_kept_as_written() -> None:
    out = EXT.convert_roles(":attr:`~Thing.value` and `code` and :not-a-role:`x`", lambda _t: None)
    assert out.startswith('<autoref identifier="Thing.value" optional><code>value</code>')
    assert out.endswith("and `code` and :not-a-role:`x`")


def test_no_role_is_left_in_any_docstring_of_the_package() -> None:
    pkg = griffe.load(
        "ebank_auth",
        search_paths=[str(ROOT / "src")],
        extensions=griffe.load_extensions(EXT.SphinxRoles()),
    )
    left: list[str] = []
    resolved = unresolved = 0

    def walk(obj: griffe.Object, seen: set[str]) -> None:
        nonlocal resolved, unresolved
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            text = obj.docstring.value
            left.extend(f"{obj.path}: {m.group()}" for m in EXT.ROLE_RE.finditer(text))
            for ident in re.findall(r'<autoref identifier="([^"]+)"', text):
                if ident.startswith("ebank_auth."):
                    resolved += 1
                else:
                    unresolved += 1
        for member in obj.members.values():
            if not member.is_alias:
                walk(member, seen)

    walk(pkg, set())
    assert left == []
    assert resolved > 300 and unresolved < resolved // 10  # names resolve in their scope
