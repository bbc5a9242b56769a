"""The software token's screen and button, as pluggable backends.

A real V盾 shows the transaction on its own screen and waits for its own button
(UK-6, UK-7).  The software token asks a :class:`ConfirmationDevice` instead:

* :class:`TerminalDisplay` — prints the screen to a text stream and reads y/n
  (the interactive emulator);
* :class:`AutoApprove` / :class:`AutoReject` / :class:`NoButton` (times out) — tests;
* :class:`ReadingUser` — a simulated customer who approves unless the screen
  contains a marker such as ``REJECT`` (lets conformance runs exercise both paths
  against a background emulator);
* :class:`CallbackDisplay` — a hook: the bank app or a GUI supplies the decision.

Every backend lays the display text out on the token's screen
(:mod:`ebank_auth.usbkey.display_layout`: 32 columns x 4 rows, labelled fields,
marked continuation rows, paging) and records what it showed in
:attr:`ConfirmationDevice.shown` (the text) and :attr:`ConfirmationDevice.screens_shown`
(the screens), so tests can check that what is signed is exactly what was displayed.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from enum import Enum
from typing import TextIO

from ebank_auth.usbkey.display_layout import (
    TOKEN_SCREEN,
    Screen,
    ScreenGeometry,
    column_width,
    layout_text,
)

__all__ = [
    "AutoApprove",
    "AutoReject",
    "CallbackDisplay",
    "ConfirmationDevice",
    "DisplayChoice",
    "NoButton",
    "ReadingUser",
    "TerminalDisplay",
]


class DisplayChoice(Enum):
    """What the customer did on the token."""

    APPROVE = "approve"
    REJECT = "reject"
    TIMEOUT = "timeout"


class ConfirmationDevice(ABC):
    """Screen + button.  ``show`` puts text on the screen; ``wait_button`` blocks for a decision.

    ``geometry`` is the screen's size (:data:`~ebank_auth.usbkey.display_layout.TOKEN_SCREEN`
    unless a test wants another).
    """

    def __init__(self, geometry: ScreenGeometry = TOKEN_SCREEN) -> None:
        self.geometry = geometry
        self.shown: list[str] = []
        self.screens_shown: list[tuple[Screen, ...]] = []
        self._lock = threading.Lock()

    def show(self, text: str) -> None:
        """Lay out ``text`` (the transaction's display text) and display it.

        Raises :class:`~ebank_auth.errors.InvalidTransaction` (nothing is shown) when
        the text cannot be laid out unambiguously."""
        screens = layout_text(text, self.geometry)
        with self._lock:
            self.shown.append(text)
            self.screens_shown.append(screens)
        self._render_screens(screens)

    def _render_screens(self, screens: tuple[Screen, ...]) -> None:  # noqa: B027 - optional hook
        """Draw the screens (backends with a real output override this)."""

    @abstractmethod
    def wait_button(self, text: str, timeout: float) -> DisplayChoice:
        """Wait at most ``timeout`` seconds for the customer's decision about ``text``."""

    def clear(self) -> None:  # noqa: B027 - optional hook
        """Blank the screen after a decision."""


class AutoApprove(ConfirmationDevice):
    """Presses "approve" at once (tests, benchmarks)."""

    def wait_button(self, text: str, timeout: float) -> DisplayChoice:
        return DisplayChoice.APPROVE


class AutoReject(ConfirmationDevice):
    """Presses "reject" at once (tests)."""

    def wait_button(self, text: str, timeout: float) -> DisplayChoice:
        return DisplayChoice.REJECT


class NoButton(ConfirmationDevice):
    """Nobody presses anything: every confirmation times out (without sleeping)."""

    def wait_button(self, text: str, timeout: float) -> DisplayChoice:
        return DisplayChoice.TIMEOUT


class ReadingUser(ConfirmationDevice):
    """A simulated customer: approves unless the screen holds ``reject_marker``.

    This is the software token's default, so a background emulator can be driven
    by scripts and by ``ebank-auth token conformance`` through both the approve
    and the reject path.  It is a stand-in for a person, never for a real token.
    """

    def __init__(self, reject_marker: str = "REJECT") -> None:
        super().__init__()
        self.reject_marker = reject_marker

    def wait_button(self, text: str, timeout: float) -> DisplayChoice:
        return DisplayChoice.REJECT if self.reject_marker in text else DisplayChoice.APPROVE


class CallbackDisplay(ConfirmationDevice):
    """Delegates the decision to ``callback(text, timeout) -> DisplayChoice`` (bank app, GUI)."""

    def __init__(self, callback: Callable[[str, float], DisplayChoice]) -> None:
        super().__init__()
        self._callback = callback

    def wait_button(self, text: str, timeout: float) -> DisplayChoice:
        try:
            decision = self._callback(text, timeout)
        except Exception:  # a broken hook must never approve: fail closed
            return DisplayChoice.REJECT
        return decision if isinstance(decision, DisplayChoice) else DisplayChoice.REJECT


class TerminalDisplay(ConfirmationDevice):
    """Draws the token screen on ``output`` and reads the button from ``input``.

    ``y``/``yes`` approves, anything else rejects; end of input or no line within
    ``timeout`` seconds is a timeout.  The CLI passes the terminal's streams.
    """

    def __init__(
        self, input: TextIO, output: TextIO, geometry: ScreenGeometry = TOKEN_SCREEN
    ) -> None:
        super().__init__(geometry)
        self._input = input
        self._output = output

    def _render_screens(self, screens: tuple[Screen, ...]) -> None:
        # No right border: terminals draw "ambiguous" characters 1 column wide where the
        # token's font draws them 2, so a border would not line up.
        width = self.geometry.columns
        for screen in screens:
            status = f" {screen.number}/{screen.count} "
            self._output.write("\n┌" + status + "─" * (width + 2 - len(status)) + "\n")
            for row in screen.rows:
                pad = width - sum(column_width(ch) for ch in row)
                self._output.write("│ " + row + " " * pad + "\n")
            self._output.write("└" + "─" * (width + 2) + "\n")
        self._output.flush()

    def wait_button(self, text: str, timeout: float) -> DisplayChoice:
        self._output.write("Press the token button: approve? [y/N] ")
        self._output.flush()
        result: list[str | None] = []

        def read() -> None:
            try:
                result.append(self._input.readline())
            except (OSError, ValueError):
                result.append(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if not result or result[0] in (None, ""):
            self._output.write("\n(no answer: timed out)\n")
            return DisplayChoice.TIMEOUT
        answer = (result[0] or "").strip().lower()
        return DisplayChoice.APPROVE if answer in ("y", "yes") else DisplayChoice.REJECT
