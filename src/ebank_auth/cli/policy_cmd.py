"""``ebank-auth policy``: validate policy files and explain decisions.

    ebank-auth policy check FILE            exit 0 valid, 1 invalid
    ebank-auth policy explain FILE --context JSON|@file   exit 0 allow, 1 step-up/deny
    ebank-auth policy default               print the shipped default policy

FILE may be ``default`` for the shipped default policy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ebank_auth.errors import EbankAuthError, PolicyFileError
from ebank_auth.policy import AuthContext, Outcome, Policy, PolicyEngine, load_policy
from ebank_auth.policy.loader import default_policy, default_policy_text


def _load(file: str) -> Policy:
    return default_policy() if file == "default" else load_policy(file)


@click.group()
def policy() -> None:
    """Check and explain multi-factor policy files."""


@policy.command()
@click.argument("file")
def check(file: str) -> None:
    """Validate FILE against the policy schema."""
    try:
        p = _load(file)
    except PolicyFileError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except EbankAuthError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    tiers = len(p.tiers.tiers) if p.tiers else 0
    click.echo(
        f"ok: {file}: policy {p.name!r}: {len(p.operations)} operations, {tiers} amount tiers, "
        f"{len(p.rules)} rules, lockout after {p.lockout.max_failures} failures"
    )


def _read_context(value: str) -> Any:
    if value.startswith("@"):
        try:
            value = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise click.UsageError(f"cannot read the context file: {exc.strerror}") from None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"--context is not valid JSON: {exc}") from None


@policy.command()
@click.argument("file")
@click.option(
    "--context",
    "context_json",
    required=True,
    help='Context as JSON, or @path to a JSON file, e.g. \'{"user":"c1","operation":"login"}\'.',
)
def explain(file: str, context_json: str) -> None:
    """Decide for a context under FILE and show the fired rules."""
    raw = _read_context(context_json)
    try:
        p = _load(file)
        ctx = AuthContext.from_dict(raw, default_tz=p.timezone)
        decision = PolicyEngine(p).decide(ctx)
    except PolicyFileError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except EbankAuthError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    out = decision.to_json()
    out["context"] = ctx.to_dict()
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))
    sys.exit(0 if decision.outcome is Outcome.ALLOW else 1)


@policy.command("default")
def show_default() -> None:
    """Print the shipped default policy (TOML)."""
    click.echo(default_policy_text(), nl=False)
