"""The ``ebank-auth`` command line.  The only package in ebank_auth that prints.

Each command group lives in its own module and is imported only when used, so a
missing optional dependency (pyscard, redis) affects only its own commands.
Exit codes: 0 success/valid, 1 refused/invalid, 2 usage or input error.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from typing import Any

import click

from ebank_auth import __version__
from ebank_auth.errors import EbankAuthError

# command name -> (module under ebank_auth.cli, attribute, one-line help)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "selftest": ("selftest_cmd", "selftest", "Run all conformance vectors on every backend."),
    "crypto": ("crypto_cmd", "crypto", "SM2 keys, signatures and SM3 digests."),
    "cert": ("cert_cmd", "cert", "Show, verify and request X.509 certificates."),
    "ca": ("ca_cmd", "ca", "Run a small test CA (SM2 or RSA)."),
    "cms": ("cms_cmd", "cms", "Sign and verify CMS SignedData."),
    "emulator": ("emulator_cmd", "emulator", "Start, stop and inspect the software token."),
    "token": ("token_cmd", "token", "Drive a USB Key / V盾 token."),
    "otp": ("otp_cmd", "otp", "SMS/voice codes, TOTP/HOTP and GM/T 0021 one-time passwords."),
    "softkeyboard": ("softkeyboard_cmd", "softkeyboard", "Dynamic soft keyboard."),
    "policy": ("policy_cmd", "policy", "Check and explain multi-factor policy files."),
    "audit": ("audit_cmd", "audit", "Verify and export the tamper-evident audit log."),
    "lockout": ("lockout_cmd", "lockout", "Login lockout status and unlock."),
}


def _available(name: str) -> bool:
    module = _COMMANDS[name][0]
    return importlib.util.find_spec(f"ebank_auth.cli.{module}") is not None


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in _COMMANDS if _available(n))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS or not _available(cmd_name):
            return None
        module, attr, _ = _COMMANDS[cmd_name]
        mod = importlib.import_module(f"ebank_auth.cli.{module}")
        command: click.Command = getattr(mod, attr)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ebank-auth")
@click.option("-v", "--verbose", count=True, help="More logging (-vv: APDU traffic, redacted).")
def cli(verbose: int) -> None:
    """ebank-auth: e-banking authentication under the Chinese standards."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point.  Library errors become a message and exit 2."""
    try:
        return cli.main(args=argv, prog_name="ebank-auth", standalone_mode=True)
    except EbankAuthError as exc:  # pragma: no cover - commands catch their own
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
