"""A griffe extension for the API reference: Sphinx roles in docstrings become links.

The docstrings use Sphinx cross-reference roles (``:class:`TokenSession```, ``:func:`~a.b.c```,
``:meth:`close```…), which read well in ``help()`` and in an editor, but mkdocstrings renders
Markdown and would show them as literal text.  Before a docstring is rendered this extension
rewrites each role into an mkdocs-autorefs reference: the target is resolved the way Sphinx
resolves it (fully qualified, or a name in the scope of the documented object — its members,
its module's imports), and the reference is *optional*, so a target that has no page in the
reference is shown as code instead of failing ``mkdocs build --strict``.

Loaded by ``mkdocs.yml`` (``extensions:`` of the python handler); ``convert_roles`` is a pure
function tested in ``tests/docs/test_sphinx_roles.py``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import griffe

ROLE_RE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|mod|attr|data|exc|obj|const):`(?P<body>[^`]+)`"
)
_EXPLICIT_TITLE = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^<>]+)>$")
_CALLABLE_ROLES = {"func", "meth"}


def convert_roles(text: str, resolve: Callable[[str], str | None]) -> str:
    """Rewrite the Sphinx roles in ``text`` as optional autorefs.

    ``resolve(target)`` gives the fully qualified identifier of ``target`` (or ``None`` when
    unknown: the target as written is used).  ``~`` shows only the last component; ``title
    <target>`` shows the title; functions and methods get ``()`` as Sphinx shows them."""

    def replace(match: re.Match[str]) -> str:
        role, body = match["role"], match["body"].strip()
        explicit = _EXPLICIT_TITLE.match(body)
        if explicit:
            title, target = explicit["title"], explicit["target"].strip()
        else:
            target = body
            short = target.startswith("~")
            target = target.lstrip("~").lstrip(".")
            title = target.rsplit(".", 1)[-1] if short else target
            if role in _CALLABLE_ROLES and not title.endswith(")"):
                title += "()"
        identifier = resolve(target.lstrip("~").lstrip(".")) or target.lstrip("~").lstrip(".")
        return (
            f'<autoref identifier="{html.escape(identifier, quote=True)}" optional>'
            f"<code>{html.escape(title, quote=False)}</code></autoref>"
        )

    return ROLE_RE.sub(replace, text)


def _resolver(obj: griffe.Object) -> Callable[[str], str | None]:
    def resolve(target: str) -> str | None:
        if target.startswith("ebank_auth."):
            return target
        head, _, rest = target.partition(".")
        scope: griffe.Object | None = obj
        while scope is not None:  # the object, its class, its module, the package
            try:
                found = scope.resolve(head)
            except (griffe.NameResolutionError, AttributeError, KeyError):
                found = None
            if found:
                return f"{found}.{rest}" if rest else found
            scope = scope.parent
        return None

    return resolve


class SphinxRoles(griffe.Extension):
    """Rewrites Sphinx roles in every docstring of the package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None and ":" in obj.docstring.value:
            obj.docstring.value = convert_roles(obj.docstring.value, _resolver(obj))
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, seen)  # type: ignore[arg-type]
