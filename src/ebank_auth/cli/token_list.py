"""``ebank-auth token list``: every PC/SC reader and HID token, with card presence.

Exposed as the click command ``token_list``; the ``token`` group attaches it as ``list``.
Exit codes: 0 at least one device found, 3 none found (no reader or pcscd: the
reason is printed), as every command (see :mod:`ebank_auth.cli`).
"""

from __future__ import annotations

import click

from ebank_auth.errors import ReaderNotFound
from ebank_auth.usbkey.transport.discovery import list_devices

from ._output import Command, emit, examples, json_option

__all__ = ["token_list"]


def _vendor_tokens(ctx: click.Context) -> list[dict[str, str]]:
    """What the PKCS#11 module / SKF library named on the ``token`` group sees."""
    opts = ctx.obj
    out: list[dict[str, str]] = []
    if getattr(opts, "pkcs11_module", None) is not None:
        from ebank_auth.usbkey.vendor.pkcs11 import Pkcs11Module

        module = Pkcs11Module(opts.pkcs11_module)
        try:
            for t in module.tokens():
                out.append(
                    {
                        "backend": "pkcs11",
                        "name": f"slot {t.slot_id}: {t.label}",
                        "serial": t.serial,
                        "maker": t.manufacturer,
                    }
                )
        finally:
            module.close()
    if getattr(opts, "skf_library", None) is not None:
        from ebank_auth.usbkey.vendor.skf import SkfLibrary

        lib = SkfLibrary(opts.skf_library)
        for name in lib.devices():
            out.append({"backend": "skf", "name": name, "serial": "", "maker": ""})
    return out


@click.command(
    "list",
    cls=Command,
    epilog=examples(
        "ebank-auth token list",
        "ebank-auth token list --json",
        "ebank-auth token --pkcs11-module /usr/lib/softhsm/libsofthsm2.so list",
        "ebank-auth token --skf-library ./libvendor_skf.so list --json",
    ),
)
@json_option
@click.pass_context
def token_list(ctx: click.Context, as_json: bool) -> None:
    """List PC/SC readers (with card presence and ATR) and HID tokens, and the tokens the
    PKCS#11 module (--pkcs11-module) or SKF library (--skf-library) given to 'token' sees."""
    found = list_devices()
    vendor = _vendor_tokens(ctx)
    if vendor:
        doc = found.to_json()
        doc["vendor_tokens"] = vendor
        if as_json:
            emit(doc)
        else:
            for dev in found.devices:
                click.echo(f"-  {dev.kind.value}  {dev.name}")
            for v in vendor:
                serial = f"  serial {v['serial']}" if v["serial"] else ""
                click.echo(f"-  {v['backend']}  {v['name']}{serial}")
        return
    if as_json and found.devices:
        emit(found.to_json())
    elif not as_json:
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
            if source == "hid" or not found.devices:
                continue  # HID is optional; with nothing found, the error below names the reasons
            click.echo(f"note: {source}: {reason}", err=True)
    if not found.devices:
        reasons = "; ".join(f"{k}: {v}" for k, v in found.unavailable.items())
        raise ReaderNotFound(
            "no token or reader found: plug in the token, or start pcscd and the "
            "software token ('ebank-auth emulator start')" + (f" ({reasons})" if reasons else "")
        )
