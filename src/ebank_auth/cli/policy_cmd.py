"""``ebank-auth policy``: validate policy files and explain decisions.

    ebank-auth policy check FILE                           exit 0 valid, 1 invalid
    ebank-auth policy explain FILE --context JSON|@file    exit 0 allow, 1 step-up/deny
    ebank-auth policy default                              print the shipped default policy

FILE may be ``default`` for the shipped default policy.  A FILE that cannot be
read, or a context that is not valid JSON, exits 2 (as every command).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ebank_auth.errors import AccessDenied, PolicyError, PolicyFileError
from ebank_auth.policy import AuthContext, Outcome, Policy, PolicyEngine, load_policy
from ebank_auth.policy.loader import default_policy, default_policy_text

from ._output import Group, emit, examples, json_option, refuse, verdict


def _load(file: str) -> Policy:
    if file == "default":
        return default_policy()
    Path(file).stat()  # a missing or unreadable file is an input error (2), not an invalid policy
    return load_policy(file)


@click.group(cls=Group)
def policy() -> None:
    """Check and explain multi-factor policy files."""


@policy.command(
    epilog=examples(
        "ebank-auth policy check bank-policy.toml", "ebank-auth policy check default --json"
    )
)
@click.argument("file")
@json_option
def check(file: str, as_json: bool) -> None:
    """Validate FILE against the policy schema (exit 0 valid, 1 invalid)."""
    try:
        p = _load(file)
    except PolicyFileError as exc:
        refuse(exc, {"valid": False, "file": file})
    tiers = len(p.tiers.tiers) if p.tiers else 0
    emit(
        {"valid": True, "file": file, "name": p.name, "operations": len(p.operations),
         "amount_tiers": tiers, "rules": len(p.rules), "lockout_max_failures": p.lockout.max_failures},
        f"ok: {file}: policy {p.name!r}: {len(p.operations)} operations, {tiers} amount tiers, "
        f"{len(p.rules)} rules, lockout after {p.lockout.max_failures} failures",
    )  # fmt: skip


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


@policy.command(
    epilog=examples(
        """ebank-auth policy explain default --context '{"user":"c1","operation":"login"}'""",
        "ebank-auth policy explain bank-policy.toml --context @ctx.json --json",
    )
)
@click.argument("file")
@click.option(
    "--context",
    "context_json",
    required=True,
    help='Context as JSON, or @path to a JSON file, e.g. \'{"user":"c1","operation":"login"}\'.',
)
@json_option
def explain(file: str, context_json: str, as_json: bool) -> None:
    """Decide for a context under FILE and show the fired rules (exit 0 allow, 1 otherwise)."""
    raw = _read_context(context_json)
    p = _load(file)
    try:
        ctx = AuthContext.from_dict(raw, default_tz=p.timezone)
    except PolicyError as exc:
        raise click.UsageError(f"--context: {exc.message}") from None
    decision = PolicyEngine(p).decide(ctx)
    doc = decision.to_json()
    doc["context"] = ctx.to_dict()
    lines = [f"outcome:    {doc['outcome']}", f"required:   {doc['required_text']}"]
    if doc["missing"]:
        lines.append("missing:    " + "; ".join(" or ".join(c) for c in doc["missing"]))
    lines.append("fired:      " + (", ".join(doc["fired"]) or "(none)"))
    if doc["obligations"]:
        lines.append("obligations: " + ", ".join(doc["obligations"]))
    lines.append(f"risk:       {doc['risk_level']} ({doc['risk_score']})")
    lines += [f"reason:     {r}" for r in doc["reasons"]]
    allowed = decision.outcome is Outcome.ALLOW
    verdict(
        allowed,
        doc,
        lines,
        error=None
        if allowed
        else AccessDenied(f"policy says {doc['outcome']}: {doc['required_text']}"),
    )


@policy.command("default", epilog=examples("ebank-auth policy default > bank-policy.toml"))
@json_option
def show_default(as_json: bool) -> None:
    """Print the shipped default policy (TOML)."""
    if as_json:
        emit({"policy": default_policy_text()})
        return
    click.echo(default_policy_text(), nl=False)
