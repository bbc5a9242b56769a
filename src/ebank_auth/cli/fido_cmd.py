"""``ebank-auth fido``: inspect and manage any FIDO2 (CTAP2) authenticator python-fido2 reaches.

PC/SC readers (a security key on an NFC reader, or the software token behind pcscd: its CTAP2
applet) and USB HID security keys.  Needs the ``webauthn`` extra (python-fido2); the device
code lives in :mod:`ebank_auth.fido_device`, imported only when a command runs.

PINs are never command-line values: ``pin set`` reads the new PIN from ``$EBANK_AUTH_FIDO_PIN``
or a hidden prompt (asked twice); ``pin change`` reads the current PIN from
``$EBANK_AUTH_FIDO_PIN`` and the new one from ``$EBANK_AUTH_FIDO_NEW_PIN``, else prompts.

Exit codes as every command (see :mod:`ebank_auth.cli`): 0 success, 1 refused (wrong PIN,
blocked, button said no, reset too late), 2 usage or input error, 3 no authenticator / pcscd
down.  Every command accepts ``--json``.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from ebank_auth.errors import ConfigurationError

from ._output import Command, Group, emit, examples, json_option

if TYPE_CHECKING:
    from ebank_auth.fido_device import FidoDevice

__all__ = ["fido"]

PIN_ENV = "EBANK_AUTH_FIDO_PIN"
NEW_PIN_ENV = "EBANK_AUTH_FIDO_NEW_PIN"


def _device_module() -> Any:
    try:
        from ebank_auth import fido_device
    except ImportError as exc:  # pragma: no cover - only without the extra
        raise ConfigurationError(
            "python-fido2 is not installed: pip install 'ebank-auth[webauthn]'"
        ) from exc
    return fido_device


def _open(device: str | None) -> FidoDevice:
    dev: FidoDevice = _device_module().open_device(device)
    return dev


def _secret(env: str, prompt: str, *, confirm: bool = False) -> str:
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        raise click.UsageError(f"no PIN given: run in a terminal or set ${env}")
    pin: str = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return pin


_device_option = click.option(
    "--device",
    metavar="NAME",
    help="Use the authenticator whose name (reader name or HID path) contains NAME "
    "(default: the first one found).",
)


@click.group(cls=Group)
def fido() -> None:
    """Inspect and manage FIDO2 authenticators (security keys, the software token's CTAP2
    applet) over PC/SC or HID."""


@fido.command(
    "list", cls=Command, epilog=examples("ebank-auth fido list", "ebank-auth fido list --json")
)
@json_option
def fido_list(as_json: bool) -> None:
    """List the FIDO2 authenticators found (exit 3 when there is none)."""
    found = _device_module().list_devices()
    if not found.devices:
        from ebank_auth.errors import ReaderNotFound

        reasons = "; ".join(f"{k}: {v}" for k, v in found.unavailable.items())
        raise ReaderNotFound(
            "no FIDO2 authenticator found: plug in a security key, or start pcscd and the "
            "software token ('ebank-auth emulator start')" + (f" ({reasons})" if reasons else "")
        )
    lines = [f"{i}  {d.kind}  {d.name}" for i, d in enumerate(found.devices)]
    emit(found.to_json(), lines)


@fido.command(
    "info",
    cls=Command,
    epilog=examples("ebank-auth fido info", "ebank-auth fido info --device 'PCD 00 00' --json"),
)
@_device_option
@json_option
def fido_info(device: str | None, as_json: bool) -> None:
    """Show what the authenticator supports (authenticatorGetInfo) and its PIN state."""
    with _open(device) as dev:
        info = dev.info()
    pin = "not set"
    if info.pin_set:
        pin = f"set, {info.pin_retries} tries left"
        if info.power_cycle_required:
            pin += " (remove and re-insert the authenticator before the next try)"
    options = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in sorted(info.options.items()))
    lines = [
        f"device:      {info.device.kind} {info.device.name}",
        f"versions:    {', '.join(info.versions)}",
        f"AAGUID:      {info.aaguid}",
        f"options:     {options}",
        f"PIN:         {pin} (protocols {', '.join(map(str, info.pin_uv_protocols))};"
        f" at least {info.min_pin_length} characters)",
        f"algorithms:  {', '.join(str(a) for a in info.algorithms)} (COSE)",
    ]
    if info.remaining_discoverable_credentials is not None:
        lines.append(f"passkey room: {info.remaining_discoverable_credentials} more")
    emit(info.to_json(), lines)


@fido.group(cls=Group)
def pin() -> None:
    """The authenticator's FIDO PIN (CTAP2 clientPin): retries, set, change."""


@pin.command(
    "retries",
    cls=Command,
    epilog=examples("ebank-auth fido pin retries", "ebank-auth fido pin retries --json"),
)
@_device_option
@json_option
def pin_retries(device: str | None, as_json: bool) -> None:
    """How many PIN tries are left (8 on a fresh PIN; 0 means blocked until reset)."""
    with _open(device) as dev:
        retries, cycle = dev.pin_retries()
    text = f"{retries} tries left" + (
        " (remove and re-insert the authenticator before the next try)" if cycle else ""
    )
    emit({"device": dev.ref.name, "pin_retries": retries, "power_cycle_required": cycle}, text)


@pin.command(
    "set",
    cls=Command,
    epilog=examples(
        "ebank-auth fido pin set                       # asks twice, hidden",
        f"{PIN_ENV}=… ebank-auth fido pin set --json",
    ),
)
@_device_option
@json_option
def pin_set(device: str | None, as_json: bool) -> None:
    """Set the first FIDO PIN (refused when one is set: use 'pin change')."""
    new = _secret(PIN_ENV, "New FIDO PIN", confirm=True)
    with _open(device) as dev:
        dev.set_pin(new)
    emit({"device": dev.ref.name, "pin_set": True}, "FIDO PIN set.")


@pin.command(
    "change",
    cls=Command,
    epilog=examples(
        "ebank-auth fido pin change                    # asks, hidden",
        f"{PIN_ENV}=… {NEW_PIN_ENV}=… ebank-auth fido pin change --json",
    ),
)
@_device_option
@json_option
def pin_change(device: str | None, as_json: bool) -> None:
    """Change the FIDO PIN (a wrong current PIN spends one of the tries)."""
    old = _secret(PIN_ENV, "Current FIDO PIN")
    new = _secret(NEW_PIN_ENV, "New FIDO PIN", confirm=True)
    with _open(device) as dev:
        dev.change_pin(old, new)
    emit({"device": dev.ref.name, "pin_changed": True}, "FIDO PIN changed.")


@fido.command(
    "reset",
    cls=Command,
    epilog=examples(
        "ebank-auth fido reset                         # asks first",
        "ebank-auth fido reset --yes --json",
    ),
)
@_device_option
@click.option("--yes", is_flag=True, help="Do not ask before erasing the authenticator.")
@json_option
def fido_reset(device: str | None, yes: bool, as_json: bool) -> None:
    """Erase every passkey and the PIN (authenticatorReset).

    Authenticators allow this only within seconds of being plugged in, and only after a touch
    of their button."""
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("reset erases every passkey: confirm with --yes")
        click.confirm("Erase every passkey and the PIN on the authenticator?", abort=True)
    with _open(device) as dev:
        dev.reset()
    emit({"device": dev.ref.name, "reset": True}, "Authenticator reset: passkeys and PIN erased.")
