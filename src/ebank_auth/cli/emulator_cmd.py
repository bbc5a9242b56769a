"""``ebank-auth emulator``: run the software token behind a real pcscd (through vpcd).

Exit codes as every command (see :mod:`ebank_auth.cli`); ``status`` answers
"is it running?": 0 yes, 1 no.  ``start`` waits (``--wait``, the default) until pcscd has
the token in its reader, so the next ``token`` command finds it; 3 when pcscd/vpcd does not
take it within ``--wait-timeout`` seconds.  The state directory defaults to
:func:`ebank_auth.paths.token_state_dir`.
"""

from __future__ import annotations

from pathlib import Path

import click

from ebank_auth.errors import PcscUnavailable, TokenError
from ebank_auth.usbkey.emulator import daemon
from ebank_auth.usbkey.emulator.vpcd import DEFAULT_VPCD_PORT

from ._output import Group, emit, examples, info, json_option, verdict

_STATE_HELP = (
    "Token state directory (default: $EBANK_AUTH_TOKEN_STATE, else <home>/token where <home> "
    "is $EBANK_AUTH_HOME or ~/.local/share/ebank-auth)."
)


def _state(path: Path | None) -> Path:
    return path if path is not None else daemon.default_state_dir()


@click.group("emulator", cls=Group)
def emulator() -> None:
    """Start, stop and inspect the software token (a virtual V盾 in pcscd's vpcd reader)."""


@emulator.command(
    "start",
    epilog=examples(
        "ebank-auth emulator start && ebank-auth token info",
        "ebank-auth emulator start --state ./token-a --port 35964",
        "ebank-auth emulator start --no-wait        # pcscd starts later",
        "ebank-auth emulator start --foreground",
    ),
)
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
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Return only once pcscd has the token in its reader (exit 3 if it does not).",
)
@click.option(
    "--wait-timeout",
    type=click.FloatRange(0.1, 600),
    default=20.0,
    show_default=True,
    metavar="SECONDS",
    help="How long --wait waits for pcscd/vpcd to take the token.",
)
@click.option("--card", default=daemon.DEFAULT_CARD, hidden=True, help="module:factory")
@click.option("--netns", default=None, hidden=True, help="network namespace of an isolated pcscd")
@json_option
def start_cmd(
    state_dir: Path | None,
    port: int,
    host: str,
    foreground: bool,
    wait: bool,
    wait_timeout: float,
    card: str,
    netns: str | None,
    as_json: bool,
) -> None:
    """Insert the software token into the vpcd reader of a running pcscd."""
    state = _state(state_dir)
    if state.exists() and not state.is_dir():
        raise click.BadParameter(f"{state} is a file: give a directory", param_hint="--state")
    if foreground:
        info(f"software token serving vpcd at {host}:{port} (state {state}); Ctrl-C stops")
        daemon.run_foreground(state, host=host, port=port, card=card, netns=netns)
        return
    st = daemon.start(state, host=host, port=port, card=card, netns=netns)
    if not wait:
        emit(
            st.to_json(),
            [
                f"software token started (pid {st.pid}), state {st.state_dir}",
                f"it attaches to vpcd at {host}:{port} as soon as pcscd runs with the vpcd "
                "driver; check with 'ebank-auth emulator status' and 'ebank-auth token list'",
            ],
        )
        return
    st = daemon.wait_inserted(state, wait_timeout)
    if not st.running:
        raise TokenError(
            f"the software token stopped while waiting for pcscd; see its log {state}/"
            f"{daemon.LOG_FILE}"
        )
    if not st.card_seen:
        where = f"vpcd at {host}:{port}"
        why = (
            f"{where} accepted the token but pcscd did not power it."
            if st.connected
            else f"nothing answers at {where}: is pcscd running with the vpcd driver?"
        )
        raise PcscUnavailable(
            f"the software token started (pid {st.pid}) but pcscd did not take it within "
            f"{wait_timeout:g}s: {why} It keeps trying in the background: start pcscd, then "
            "check 'ebank-auth emulator status', or stop it with 'ebank-auth emulator stop'"
        )
    emit(
        st.to_json(),
        [
            f"software token started (pid {st.pid}), state {st.state_dir}",
            f"inserted into the vpcd reader at {host}:{port}: 'ebank-auth token …' can use it",
        ],
    )


@emulator.command(
    "stop",
    epilog=examples(
        "ebank-auth emulator stop", "ebank-auth emulator stop --state ./token-a --json"
    ),
)
@click.option("--state", "state_dir", type=click.Path(path_type=Path), help=_STATE_HELP)
@json_option
def stop_cmd(state_dir: Path | None, as_json: bool) -> None:
    """Stop the background software token (exit 1 when it was not running)."""
    state = _state(state_dir)
    stopped = daemon.stop(state)
    if not stopped:
        verdict(
            False,
            {"stopped": False, "state_dir": str(state)},
            f"the software token for {state} is not running",
            error=TokenError(f"the software token for {state} is not running"),
        )
    verdict(True, {"stopped": True, "state_dir": str(state)}, "software token stopped")


@emulator.command(
    "status", epilog=examples("ebank-auth emulator status", "ebank-auth emulator status --json")
)
@click.option("--state", "state_dir", type=click.Path(path_type=Path), help=_STATE_HELP)
@json_option
def status_cmd(state_dir: Path | None, as_json: bool) -> None:
    """Is the software token running, and is it inserted into a pcscd reader? (0 yes, 1 no)"""
    st = daemon.status(_state(state_dir))
    doc = st.to_json()
    if not st.running:
        msg = f"not running (state {st.state_dir}); start it with 'ebank-auth emulator start'"
        verdict(False, doc, msg, error=TokenError(msg))
    if st.card_seen:
        link = f"inserted into the vpcd reader at {st.host}:{st.port}"
    elif st.connected:
        link = f"attached to vpcd at {st.host}:{st.port}, waiting for pcscd to power it"
    else:
        link = f"waiting for pcscd/vpcd at {st.host}:{st.port} (is pcscd running with vpcd?)"
    verdict(True, doc, f"running (pid {st.pid}), {link}; state {st.state_dir}; log {st.log_file}")


@emulator.command(
    "release",
    epilog=examples(
        "ebank-auth emulator release",
        "ebank-auth emulator release --state ./token-a --json",
    ),
)
@click.option("--state", "state_dir", type=click.Path(path_type=Path), help=_STATE_HELP)
@json_option
def release_cmd(state_dir: Path | None, as_json: bool) -> None:
    """The TEST manufacturer releases the installed software-token firmware (after an upgrade).

    Signs the SM3 hash of the installed token code into the allow-list of the factory directory
    (<state>.manufacturer, never inside the token's state) and publishes it to the token.  The
    token itself never does this: a token whose code changed reports a hash on no list until
    whoever holds the factory directory releases it here."""
    from ebank_auth.usbkey.emulator.factory import Manufacturer, factory_dir_for, release

    state = _state(state_dir)
    factory = factory_dir_for(state)
    maker = Manufacturer.load_or_create(factory)
    entry = release(maker)
    maker.publish_to(state)
    emit(
        {
            "factory_dir": str(factory),
            "version": entry.version,
            "sm3": entry.sm3,
            "sequence": maker.allowlist.sequence,
        },
        [
            f"released software-token firmware {entry.version} (SM3 {entry.sm3[:16]}…) in the "
            f"allow-list of {factory} (sequence {maker.allowlist.sequence})",
            f"published to {state}/manufacturer/ for 'ebank-auth token --emulator'",
        ],
    )
