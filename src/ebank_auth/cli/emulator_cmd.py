"""``ebank-auth emulator``: run the software token behind a real pcscd (through vpcd).

Exit codes: 0 success / running, 1 refused or not running, 2 usage error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ebank_auth.errors import EbankAuthError
from ebank_auth.usbkey.emulator import daemon
from ebank_auth.usbkey.emulator.vpcd import DEFAULT_VPCD_PORT

_STATE_HELP = (
    "Token state directory (default: $EBANK_AUTH_TOKEN_STATE or ~/.local/share/ebank-auth/token)."
)


def _state(path: Path | None) -> Path:
    return path if path is not None else daemon.default_state_dir()


@click.group("emulator")
def emulator() -> None:
    """Start, stop and inspect the software token (a virtual V盾 in pcscd's vpcd reader)."""


@emulator.command("start")
@click.option("--state", "state_dir", type=click.Path(path_type=Path), help=_STATE_HELP)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=DEFAULT_VPCD_PORT,
    show_default=True,
    help="vpcd port of the reader to insert the token into (35963 = 'Virtual PCD 00 00').",
)
@click.option("--host", default="127.0.0.1", show_default=True, hidden=True)
@click.option("--foreground", is_flag=True, help="Run in this terminal until Ctrl-C.")
@click.option("--card", default=daemon.DEFAULT_CARD, hidden=True, help="module:factory")
@click.option("--netns", default=None, hidden=True, help="network namespace of an isolated pcscd")
def start_cmd(
    state_dir: Path | None, port: int, host: str, foreground: bool, card: str, netns: str | None
) -> None:
    """Insert the software token into the vpcd reader of a running pcscd."""
    state = _state(state_dir)
    try:
        if foreground:
            click.echo(
                f"software token serving vpcd at {host}:{port} (state {state}); Ctrl-C stops"
            )
            daemon.run_foreground(state, host=host, port=port, card=card, netns=netns)
            return
        st = daemon.start(state, host=host, port=port, card=card, netns=netns)
    except EbankAuthError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"software token started (pid {st.pid}), state {st.state_dir}")
    click.echo(
        f"it attaches to vpcd at {host}:{port} as soon as pcscd runs with the vpcd driver; "
        "check with 'ebank-auth emulator status' and 'ebank-auth token list'"
    )


@emulator.command("stop")
@click.option("--state", "state_dir", type=click.Path(path_type=Path), help=_STATE_HELP)
def stop_cmd(state_dir: Path | None) -> None:
    """Stop the background software token."""
    state = _state(state_dir)
    try:
        stopped = daemon.stop(state)
    except (EbankAuthError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if not stopped:
        click.echo(f"the software token for {state} is not running")
        sys.exit(1)
    click.echo("software token stopped")


@emulator.command("status")
@click.option("--state", "state_dir", type=click.Path(path_type=Path), help=_STATE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_cmd(state_dir: Path | None, as_json: bool) -> None:
    """Is the software token running, and is it inserted into a pcscd reader?"""
    st = daemon.status(_state(state_dir))
    if as_json:
        click.echo(json.dumps(st.to_json(), indent=2))
    elif not st.running:
        click.echo(f"not running (state {st.state_dir}); start it with 'ebank-auth emulator start'")
    else:
        link = (
            f"inserted into the vpcd reader at {st.host}:{st.port}"
            if st.connected
            else f"waiting for pcscd/vpcd at {st.host}:{st.port} (is pcscd running with vpcd?)"
        )
        click.echo(f"running (pid {st.pid}), {link}; state {st.state_dir}; log {st.log_file}")
    sys.exit(0 if st.running else 1)
