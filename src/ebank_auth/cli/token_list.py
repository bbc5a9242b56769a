"""``ebank-auth token list``: every PC/SC reader and HID token, with card presence.

Exposed as the click command ``token_list``; the ``token`` group attaches it as ``list``.
Exit codes: 0 at least one device found, 1 none found (the reason is printed).
"""

from __future__ import annotations

import json
import sys

import click

from ebank_auth.usbkey.transport.discovery import list_devices

__all__ = ["token_list"]


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def token_list(as_json: bool) -> None:
    """List PC/SC readers (with card presence and ATR) and HID tokens."""
    found = list_devices()
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2, ensure_ascii=False))
    else:
        for i, dev in enumerate(found.devices):
            if dev.kind.value == "pcsc":
                card = "token present" if dev.card_present else "empty"
                atr = f"  ATR {dev.atr.hex().upper()}" if dev.atr else ""
                busy = "  (in exclusive use)" if dev.details.get("exclusive") == "true" else ""
                click.echo(f"{i}  pcsc  {dev.name}  [{card}]{atr}{busy}")
            else:
                serial = f"  serial {dev.serial}" if dev.serial else ""
                click.echo(f"{i}  {dev.kind.value}  {dev.name}{serial}")
        for source, reason in found.unavailable.items():
            if source == "hid" and found.devices:
                continue  # HID support is optional: only worth saying when nothing was found
            click.echo(f"note: {source}: {reason}", err=True)
        if not found.devices:
            click.echo(
                "error: no token or reader found: plug in the token, or start pcscd and the "
                "software token ('ebank-auth emulator start')",
                err=True,
            )
    sys.exit(0 if found.devices else 1)
