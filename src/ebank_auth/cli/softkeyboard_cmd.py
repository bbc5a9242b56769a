"""``ebank-auth softkeyboard``: show the dynamic soft keyboard at work.

Exit codes: 0 success, 1 input refused, 2 usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ebank_auth.crypto import sm2
from ebank_auth.errors import EbankAuthError
from ebank_auth.softkeyboard import KeyboardClient, KeyboardMode, SoftKeyboard
from ebank_auth.store import MemoryStore


@click.group("softkeyboard")
def softkeyboard() -> None:
    """Dynamic soft keyboard (shuffled layout, per-keystroke SM2 encryption)."""


@softkeyboard.command("demo")
@click.option(
    "--mode", type=click.Choice(["digits", "alphanumeric"]), default="digits", show_default=True
)
@click.option("--type", "text", help="Characters to press (default: prompt, hidden).")
@click.option(
    "--svg", "svg_path", type=click.Path(dir_okay=False), help="Also write the layout as SVG here."
)
def demo(mode: str, text: str | None, svg_path: str | None) -> None:
    """Render a shuffled layout, press keys through the client, decode on the server."""
    try:
        keyboard = SoftKeyboard(MemoryStore(), sm2.generate_private_key())
        layout = keyboard.open(KeyboardMode(mode))
        click.echo(f"session {layout.session_id[:8]}…  (layout changes every session)")
        click.echo(layout.terminal())
        if svg_path:
            Path(svg_path).write_text(layout.svg(), encoding="utf-8")
            click.echo(f"SVG written to {svg_path} (labels drawn as pixels, no text)")
        if text is None:
            text = click.prompt("type on the keyboard above", hide_input=True)
        by_label = {label: key_id for key_id, label in layout.keys}
        client = KeyboardClient(layout.client_view())
        masks = []
        for char in text:
            if char not in by_label:
                click.echo(f"error: {char!r} is not on this keyboard", err=True)
                sys.exit(2)
            masks.append(client.press(by_label[char]))
        click.echo("field after each press: " + " ".join(masks))
        click.echo(f"client holds {len(client.ciphertexts)} SM2 ciphertexts and no plaintext")
        with keyboard.submit(layout.session_id, client.ciphertexts) as decoded:
            same = bytes(decoded.value) == text.encode()
            click.echo(
                f"server decoded {decoded.length} characters; matches typed input: "
                f"{'yes' if same else 'NO'}"
            )
        if not same:
            sys.exit(1)
    except EbankAuthError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
