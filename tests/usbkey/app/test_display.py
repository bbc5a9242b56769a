"""Display/button backends of the software token."""

from __future__ import annotations

import io

from ebank_auth.usbkey.emulator.display import (
    AutoApprove,
    AutoReject,
    CallbackDisplay,
    DisplayChoice,
    NoButton,
    ReadingUser,
    TerminalDisplay,
)


def test_terminal_display_draws_and_reads() -> None:
    out = io.StringIO()
    d = TerminalDisplay(io.StringIO("y\n"), out)
    d.show("金额：CNY 1.00\nPayee: A")
    assert "金额：CNY 1.00" in out.getvalue()
    assert d.wait_button("x", 5) is DisplayChoice.APPROVE
    assert TerminalDisplay(io.StringIO("n\n"), out).wait_button("x", 5) is DisplayChoice.REJECT
    assert TerminalDisplay(io.StringIO(""), out).wait_button("x", 5) is DisplayChoice.TIMEOUT


def test_simple_backends() -> None:
    assert AutoApprove().wait_button("t", 1) is DisplayChoice.APPROVE
    assert AutoReject().wait_button("t", 1) is DisplayChoice.REJECT
    assert NoButton().wait_button("t", 1) is DisplayChoice.TIMEOUT
    assert ReadingUser().wait_button("memo REJECT", 1) is DisplayChoice.REJECT
    assert ReadingUser().wait_button("memo ok", 1) is DisplayChoice.APPROVE


def test_callback_that_returns_garbage_rejects() -> None:
    assert CallbackDisplay(lambda t, s: "yes").wait_button("t", 1) is DisplayChoice.REJECT  # type: ignore[arg-type,return-value]
    d = CallbackDisplay(lambda t, s: DisplayChoice.APPROVE)
    d.show("a")
    assert d.shown == ["a"]
