"""Dynamic soft keyboard: shuffled layouts, per-keystroke SM2 encryption, server-side
decoding (SK-1…3).  See :mod:`.keyboard` for the protocol."""

from ebank_auth.softkeyboard.client import KeyboardClient
from ebank_auth.softkeyboard.keyboard import (
    DecodedInput,
    KeyboardLayout,
    KeyboardMode,
    SoftKeyboard,
    commit_length,
    encode_keystroke,
)
from ebank_auth.softkeyboard.render import render_svg, render_terminal

__all__ = [
    "DecodedInput",
    "KeyboardClient",
    "KeyboardLayout",
    "KeyboardMode",
    "SoftKeyboard",
    "commit_length",
    "encode_keystroke",
    "render_svg",
    "render_terminal",
]
