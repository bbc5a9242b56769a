"""``ebank-auth agent``: the local signing agent a bank page reaches the USB Key through.

``agent serve`` runs until Ctrl-C (SIGINT) or SIGTERM.  It refuses to start (exit 2) without an
``--origin``, with an origin that is not exact, or when no manufacturer root is configured
(``$EBANK_AUTH_TOKEN_ROOTS``, ``--trust-root``; the software token's *test* manufacturer only with
``--emulator``); exit 3 when the port is taken.  With ``--json`` it prints one document once it
listens, on one line (``{"ok": true, "url": …, "port": …, "origins": […]}``).  The contract is in docs/agent.md.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from ebank_auth.errors import ServiceUnavailable

from ._output import Group, examples, info, json_option

__all__ = ["agent"]


@click.group("agent", cls=Group)
def agent() -> None:
    """The local signing agent: bank pages reach the USB Key through it (loopback HTTP)."""


@agent.command(
    "serve",
    epilog=examples(
        "ebank-auth agent serve --origin https://bank.example",
        "ebank-auth agent serve --origin http://127.0.0.1:5000 --emulator --port 8765",
        "ebank-auth agent serve --origin https://a.example --origin https://b.example "
        '--reader "Virtual PCD 00 00" --json',
    ),
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Loopback TCP port (default 8765; 0: any free port, printed at start).",
)
@click.option(
    "--origin",
    "origins",
    multiple=True,
    required=True,
    metavar="ORIGIN",
    help="A web origin whose pages may use the agent, exactly as browsers send it "
    "(scheme://host[:port]); repeat for several.",
)
@click.option(
    "--emulator",
    is_flag=True,
    help="Trust the software token's TEST manufacturer (state in $EBANK_AUTH_TOKEN_STATE); "
    "never for real tokens.",
)
@click.option("--reader", default=None, help="Use only this PC/SC reader (name or unique part).")
@click.option(
    "--trust-root",
    "trust_roots",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Manufacturer root certificate(s) tokens must chain to (else $EBANK_AUTH_TOKEN_ROOTS).",
)
@click.option(
    "--firmware-allowlist",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Manufacturer-signed firmware allow-list (JSON).",
)
@json_option
def serve_cmd(
    port: int | None,
    origins: tuple[str, ...],
    emulator: bool,
    reader: str | None,
    trust_roots: tuple[Path, ...],
    firmware_allowlist: Path | None,
    as_json: bool,
) -> None:
    """Serve the agent on 127.0.0.1 until Ctrl-C (requests are logged, never their bodies)."""
    from ebank_auth.agent import DEFAULT_AGENT_PORT, AgentConfig, create_agent

    state: Path | None = None
    if emulator:
        from ebank_auth.paths import token_state_dir

        state = token_state_dir()
        info(
            f"note: trusting the software token's TEST manufacturer in {state} (--emulator): "
            "this proves nothing about a real token"
        )
    config = AgentConfig(
        origins=origins, port=DEFAULT_AGENT_PORT if port is None else port, reader=reader
    )
    try:
        server = create_agent(
            config, roots=trust_roots, allowlist=firmware_allowlist, software_token_state=state
        )
    except OSError as exc:
        raise ServiceUnavailable(
            f"cannot listen on 127.0.0.1:{config.port} ({exc.strerror}): is another agent "
            "running? choose another --port"
        ) from None
    agent_log = logging.getLogger("ebank_auth.agent")
    if agent_log.getEffectiveLevel() > logging.INFO:
        agent_log.setLevel(logging.INFO)  # one line per request (never a body) on stderr

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to finish: call it from another thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    started = {"url": server.url, "port": server.port, "origins": list(config.origins)}
    if as_json:  # one line, so a script starting the agent reads it with readline()
        click.echo(json.dumps({"ok": True, **started}))
    else:
        info(
            f"ebank-auth agent listening on {server.url} for {', '.join(config.origins)} "
            "(Ctrl-C stops it)"
        )
    sys.stdout.flush()
    try:
        server.serve_forever()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        server.close()
    if not as_json:
        info("agent stopped")
