"""``ebank-auth softkeyboard``: show the dynamic soft keyboard at work.

Exit codes as every command (see :mod:`ebank_auth.cli`): a character that is not
on the keyboard is a usage error (2); a server-side refusal exits 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ebank_auth.crypto import sm2
from ebank_auth.softkeyboard import KeyboardClient, KeyboardMode, SoftKeyboard
from ebank_auth.store import MemoryStore

from ._output import Group, emit, examples, info, json_option, renamed_option


@click.group("softkeyboard", cls=Group)
def softkeyboard() -> None:
    """Dynamic soft keyboard (shuffled layout, per-keystroke SM2 encryption)."""


@softkeyboard.command(
    "demo",
    epilog=examples(
        "ebank-auth softkeyboard demo",
        "ebank-auth softkeyboard demo --mode alphanumeric --svg-out layout.svg",
        "ebank-auth softkeyboard demo --type 284017 --json",
    ),
)
@click.option(
    "--mode", type=click.Choice(["digits", "alphanumeric"]), default="digits", show_default=True
)
@click.option("--type", "text", help="Characters to press (default: prompt, hidden).")
@click.option(
    "--svg-out",
    "svg_path",
    type=click.Path(dir_okay=False),
    help="Also write the layout as SVG here.",
)
@renamed_option("--svg", "--svg-out")
@json_option
def demo(mode: str, text: str | None, svg_path: str | None, as_json: bool) -> None:
    """Render a shuffled layout, press keys through the client, decode on the server."""
    keyboard = SoftKeyboard(MemoryStore(), sm2.generate_private_key())
    layout = keyboard.open(KeyboardMode(mode))
    say = info if as_json else click.echo
    say(f"session {layout.session_id[:8]}…  (layout changes every session)")
    say(layout.terminal())
    if svg_path:
        Path(svg_path).write_text(layout.svg(), encoding="utf-8")
        say(f"SVG written to {svg_path} (labels drawn as pixels, no text)")
    if text is None:
        text = click.prompt("type on the keyboard above", hide_input=True, err=as_json)
    by_label = {label: key_id for key_id, label in layout.keys}
    missing = sorted({c for c in text if c not in by_label})
    if missing:
        raise click.BadParameter(
            f"{', '.join(map(repr, missing))} not on this {mode} keyboard", param_hint="--type"
        )
    client = KeyboardClient(layout.client_view())
    masks = [client.press(by_label[char]) for char in text]
    submitted = keyboard.submit(
        layout.session_id, client.ciphertexts, commitment=client.commitment()
    )
    with submitted as decoded:
        same = bytes(decoded.value) == text.encode()
        length = decoded.length
    emit(
        {"mode": mode, "field": masks, "ciphertexts": len(client.ciphertexts),
         "decoded_length": length, "matches": same},
        [
            "field after each press: " + " ".join(masks),
            f"client holds {len(client.ciphertexts)} SM2 ciphertexts and no plaintext",
            f"server decoded {length} characters; matches typed input: {'yes' if same else 'NO'}",
        ],
        ok=same,
    )  # fmt: skip
    if not same:
        sys.exit(1)
