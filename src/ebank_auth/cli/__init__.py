"""The ``ebank-auth`` command line.  The only package in ebank_auth that prints.

Each command group lives in its own module and is imported only when used, so a
missing optional dependency (pyscard, redis) affects only its own commands and
``ebank-auth --help`` imports none of them (the listing uses ``_COMMANDS``).

Exit codes (the same for every command; docs/exit-codes.md):

====  =====================================================================
0     success; the signature, certificate, log, code… is valid
1     refused or invalid: bad signature, wrong code or PIN, policy deny,
      chain invalid, tampered log, locked, rejected on the token
2     usage or input error: bad option, missing/unreadable file, garbage
      DER/PEM/JSON/TOML, a setting that cannot work
3     a service is unavailable: pcscd, reader, token, Redis, database,
      SMS gateway (nothing was decided; retry later)
4     internal error: a bug, please report it (the message names it)
====  =====================================================================

Every command accepts ``--json``: one JSON document on stdout, ``{"ok": true, …}``
on success; on failure ``{"ok": false, "error": {"type", "message", "category",
…}}`` with the same exit code.  Text goes to stdout, messages to stderr; no
command ever prints a traceback.  All exceptions are classified in one place,
:func:`ebank_auth.cli._output.exit_code_for`, called by the ``Command`` and
``Group`` classes of :mod:`ebank_auth.cli._output` that every command uses.

Default files live under :func:`ebank_auth.paths.home` (``$EBANK_AUTH_HOME``,
else ``$XDG_DATA_HOME/ebank-auth``, else ``~/.local/share/ebank-auth``).

Shell completion (bash; zsh and fish alike with ``zsh_source``/``fish_source``)::

    eval "$(_EBANK_AUTH_COMPLETE=bash_source ebank-auth)"
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from typing import Any

import click

from ebank_auth import __version__

from ._output import ExitCode, Group, examples

__all__ = ["ExitCode", "cli", "main"]

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
    "fido": ("fido_cmd", "fido", "FIDO2 authenticators: list, info, PIN, reset."),
    "phone": ("phone_cmd", "phone", "The software phone shield: enrol, confirm, status, revoke."),
    "agent": (
        "agent_cmd",
        "agent",
        "The local signing agent bank pages reach the USB Key through.",
    ),
}


def _available(name: str) -> bool:
    module = _COMMANDS[name][0]
    return importlib.util.find_spec(f"ebank_auth.cli.{module}") is not None


class _LazyGroup(Group):
    """The root group: sub-commands imported only when used (the listing needs none)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in _COMMANDS if _available(n))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS or not _available(cmd_name):
            return None
        module, attr, _ = _COMMANDS[cmd_name]
        mod = importlib.import_module(f"ebank_auth.cli.{module}")
        command: click.Command = getattr(mod, attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The listing from the static summaries: ``--help`` imports no command module."""
        rows = [(name, _COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=examples(
        "ebank-auth selftest",
        "ebank-auth crypto sm2 keygen --out key.pem --public-key-out pub.pem",
        "ebank-auth cert verify leaf.pem --trust root.pem --json",
        "ebank-auth emulator start && ebank-auth token info",
        "ebank-auth <command> --help      # every command has examples",
    ),
)
@click.version_option(__version__, prog_name="ebank-auth")
@click.option("-v", "--verbose", count=True, help="More logging (-vv: APDU traffic, redacted).")
def cli(verbose: int) -> None:
    """ebank-auth: e-banking authentication under the Chinese standards.

    Exit codes: 0 ok/valid, 1 refused/invalid, 2 usage or input error,
    3 service unavailable (pcscd, reader, Redis, database), 4 internal error.
    Every command accepts --json.
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point (``ebank-auth`` and ``python -m ebank_auth``)."""
    return cli.main(args=argv, prog_name="ebank-auth", standalone_mode=True)
