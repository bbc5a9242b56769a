"""Output and exit codes shared by every ``ebank-auth`` command.

Commands report through :func:`emit` (text by default, one JSON document with
``--json``) and end with :func:`verdict` when their answer can be "no".  Errors
are not handled in the commands: they propagate to :func:`handle_error`, which the
root group calls around every command, so one table decides every exit code.
"""

from __future__ import annotations

import enum
import json
import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn, TypeVar

import click

from ebank_auth.errors import EbankAuthError, InvalidInput, ServiceUnavailable

F = TypeVar("F", bound=Callable[..., Any])

JSON_KEY = "ebank_auth.json"
ARGV_KEY = "ebank_auth.argv"


class ExitCode(enum.IntEnum):
    """The exit codes of every ``ebank-auth`` command (docs/exit-codes.md)."""

    OK = 0
    REFUSED = 1
    USAGE = 2
    UNAVAILABLE = 3
    INTERNAL = 4


def exit_code_for(exc: BaseException) -> ExitCode:
    """The one mapping from an exception to an exit code."""
    if isinstance(exc, ServiceUnavailable):
        return ExitCode.UNAVAILABLE
    if isinstance(exc, InvalidInput):
        return ExitCode.USAGE
    if isinstance(exc, EbankAuthError):
        return ExitCode.REFUSED
    if isinstance(exc, click.UsageError):
        return ExitCode.USAGE
    if isinstance(exc, click.ClickException):
        return ExitCode.USAGE
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return ExitCode.UNAVAILABLE
    if isinstance(exc, (OSError, UnicodeDecodeError, json.JSONDecodeError)):
        return ExitCode.USAGE  # a file that cannot be read or is not text/JSON
    return ExitCode.INTERNAL


def _message(exc: BaseException) -> str:
    if isinstance(exc, EbankAuthError):
        return exc.message
    if isinstance(exc, click.ClickException):
        return exc.format_message()
    if isinstance(exc, OSError):
        what = exc.strerror or str(exc)
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{what}"
    if isinstance(exc, UnicodeDecodeError):
        return "the input is not UTF-8 text"
    if isinstance(exc, json.JSONDecodeError):
        return f"the input is not valid JSON ({exc.msg}, line {exc.lineno})"
    return f"internal error ({type(exc).__name__}: {exc}); please report it"


def _plain(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, (str, int)) else value.name
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def error_document(exc: BaseException) -> dict[str, Any]:
    """``{"type", "message", "category", …}`` for the JSON error report."""
    code = exit_code_for(exc)
    doc: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": _message(exc),
        "category": {
            ExitCode.REFUSED: "refused",
            ExitCode.USAGE: "input",
            ExitCode.UNAVAILABLE: "unavailable",
            ExitCode.INTERNAL: "internal",
        }.get(code, "refused"),
    }
    for attr in ("reason", "remaining", "retry_after", "first_bad", "sw"):
        value = getattr(exc, attr, None)
        if value is not None:
            doc[attr] = _plain(value)
    return doc


def json_requested(ctx: click.Context | None = None) -> bool:
    """Did the user ask for JSON (``--json`` parsed, or present on a line that failed to parse)?"""
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return False
    if ctx.meta.get(JSON_KEY):
        return True
    argv = ctx.meta.get(ARGV_KEY, ())
    return "--json" in argv and "--" not in argv[: list(argv).index("--json")]


def handle_error(exc: BaseException, ctx: click.Context) -> NoReturn:
    """Report ``exc`` in one line (or one JSON document) and exit with its code."""
    code = exit_code_for(exc)
    if json_requested(ctx):
        click.echo(json.dumps({"ok": False, "error": error_document(exc)}, ensure_ascii=False))
    else:
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            click.echo(exc.ctx.get_usage(), err=True)
            hint = f"Try '{exc.ctx.command_path} --help' for help."
            click.echo(hint, err=True)
        click.echo(f"error: {_message(exc)}", err=True)
    sys.exit(int(code))


def _guarded(ctx: click.Context, run: Callable[[], Any]) -> Any:
    try:
        return run()
    except (click.exceptions.Exit, click.Abort):
        raise
    except Exception as exc:
        logging.getLogger("ebank_auth.cli").debug("command failed", exc_info=True)
        handle_error(exc, ctx)


class Command(click.Command):
    """Every ``ebank-auth`` command: errors go through :func:`handle_error`, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        return _guarded(ctx, lambda: super(Command, self).invoke(ctx))


class Group(click.Group):
    """Every ``ebank-auth`` group: its sub-commands and sub-groups are :class:`Command`/``Group``.

    The group's own ``invoke`` is guarded too, so a usage error in a sub-command's
    options (parsed there) is reported the same way.
    """

    command_class = Command
    group_class = type  # sub-groups are of this same class

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta.setdefault(ARGV_KEY, tuple(args))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        return _guarded(ctx, lambda: super(Group, self).invoke(ctx))

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """A group without its own examples shows the first example of each sub-command."""
        if self.epilog is not None:
            super().format_epilog(ctx, formatter)
            return
        picked = _first_examples(self, ctx)
        if picked:
            formatter.write_paragraph()
            formatter.write_text(examples(*picked))


def _first_examples(command: click.Command, ctx: click.Context) -> list[str]:
    lines = (command.epilog or "").splitlines()
    first = next((ln.strip() for ln in lines if ln.startswith("  ")), None)
    if first is not None:
        return [first]
    picked: list[str] = []
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None:
                picked += _first_examples(sub, ctx)
    return picked


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[JSON_KEY] = True
    return value


def renamed_option(old: str, new: str) -> Callable[[F], F]:
    """A hidden ``old`` option that only says it is now ``new`` (usage error, exit 2), so a
    script written for an earlier release gets told what to change."""

    def refuse_old(ctx: click.Context, _param: click.Parameter, value: object) -> None:
        if value is not None:
            raise click.UsageError(f"{old} was renamed {new}: use {new}", ctx)

    return click.option(
        old,
        f"_renamed_{old.lstrip('-').replace('-', '_')}",
        hidden=True,
        expose_value=False,
        callback=refuse_old,
        default=None,
    )


def json_option(func: F) -> F:
    """``--json``: one JSON document on stdout instead of text (errors too)."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        is_eager=True,
        callback=_set_json,
        help="Print one JSON document on stdout (errors too: {ok: false, error: {…}}).",
    )(func)


def emit(
    doc: Mapping[str, Any], text: str | Iterable[str] | None = None, *, ok: bool = True
) -> None:
    """Print ``doc`` as JSON (with ``ok``) under ``--json``, else ``text`` (lines)."""
    if json_requested():
        click.echo(json.dumps({"ok": ok, **doc}, indent=2, ensure_ascii=False, default=str))
        return
    if text is None:
        return
    click.echo(text if isinstance(text, str) else "\n".join(text))


def verdict(
    ok: bool,
    doc: Mapping[str, Any],
    text: str | Iterable[str] | None,
    *,
    error: EbankAuthError | None = None,
) -> NoReturn:
    """Print a yes/no answer and exit 0 (yes) or 1 (no).

    With ``--json`` a "no" carries ``"error"`` built from ``error`` (its type,
    message and reason), so every failure has the same shape.
    """
    body = dict(doc)
    if not ok and error is not None:
        body["error"] = error_document(error)
    emit(body, text, ok=ok)
    sys.exit(int(ExitCode.OK if ok else ExitCode.REFUSED))


def refuse(error: EbankAuthError, doc: Mapping[str, Any] | None = None) -> NoReturn:
    """Answer "no" with ``error`` (stderr ``error: …`` or the JSON error) and exit 1.

    For a command whose question *is* the input (``policy check``), so an error
    that is otherwise an input error (2) is its "invalid" answer.
    """
    if json_requested():
        body = {"ok": False, **(doc or {}), "error": error_document(error)}
        body["error"]["category"] = "refused"
        click.echo(json.dumps(body, indent=2, ensure_ascii=False, default=str))
    else:
        click.echo(f"error: {error.message}", err=True)
    sys.exit(int(ExitCode.REFUSED))


def info(message: str) -> None:
    """A progress or status note for people: stderr, so stdout stays clean for data."""
    click.echo(message, err=True)


def examples(*lines: str) -> str:
    """An ``Examples:`` epilog for ``--help`` (one example per line, kept as written)."""
    body = "\n".join(f"  {line}" for line in lines)
    return f"\b\nExamples:\n{body}"
