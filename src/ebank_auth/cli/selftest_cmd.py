"""``ebank-auth selftest``: known-answer tests on every backend (and file integrity)."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from ebank_auth.crypto import backend_info
from ebank_auth.errors import CryptoError, EbankAuthError
from ebank_auth.selftest import ok, run_selftest

from ._output import Command, examples, json_option, verdict


@click.command(
    "selftest",
    cls=Command,
    epilog=examples("ebank-auth selftest", "ebank-auth selftest --integrity --json"),
)
@click.option(
    "--integrity", is_flag=True, help="Also check installed files against the wheel RECORD hashes."
)
@json_option
def selftest(integrity: bool, as_json: bool) -> None:
    """Run every conformance vector (SM2/SM3/SM4, GM/T 0021, RFC 4226) on every backend.

    Exit 0 when all pass, 1 when any fails.
    """
    info = backend_info()
    results = run_selftest()
    passed = ok(results)
    integrity_report = None
    if integrity:
        try:
            integrity_mod: Any = importlib.import_module("ebank_auth.integrity")
            integrity_report = integrity_mod.check_installation()
            passed = passed and bool(integrity_report.ok)
        except ImportError:
            raise click.UsageError("integrity checking is not available in this build") from None
    if as_json:
        out = {
            "backend": {"sm2": info.sm2, "sm3": info.sm3, "sm4": info.sm4, "rsa": info.rsa,
                        "available_sm2": list(info.available_sm2), "details": info.details},
            "checks": [r.__dict__ for r in results],
        }  # fmt: skip
        if integrity_report is not None:
            out["integrity"] = integrity_report.to_json()
        verdict(passed, out, None, error=None if passed else _failure(results))
    else:
        click.echo(
            f"active backends: SM2={info.sm2}  SM3={info.sm3}  SM4={info.sm4}  RSA={info.rsa}"
        )
        click.echo(
            f"SM2 backends available: {', '.join(info.available_sm2)}  (openssl: {info.details['openssl']})"
        )
        for r in results:
            mark = "ok  " if r.passed else "FAIL"
            line = f"  [{mark}] {r.name:<45} {r.backend}"
            click.echo(line + (f"  -- {r.detail}" if r.detail else ""))
        n_fail = sum(not r.passed for r in results)
        click.echo(f"vectors: {len(results) - n_fail} of {len(results)} checks passed")
        if integrity_report is not None:
            status = integrity_report.status.value.upper()
            click.echo(
                f"integrity: {status} ({integrity_report.checked} files checked under "
                f"{integrity_report.root})"
            )
            for label, paths in (
                ("modified", integrity_report.modified),
                ("missing", integrity_report.missing),
                ("unexpected", integrity_report.unexpected),
            ):
                for path in paths:
                    click.echo(f"  {label}: {path}")
            if integrity_report.message:
                click.echo(f"  {integrity_report.message}")
    sys.exit(0 if passed else 1)


def _failure(results: Any) -> EbankAuthError:
    bad = [f"{r.name} ({r.backend})" for r in results if not r.passed]
    what = ", ".join(bad) if bad else "the installed files"
    return CryptoError(f"self-test failed: {what}: do not use this installation")
