"""Display/button backends of the software token, and the screens it draws."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import replace

import pytest

from ebank_auth.errors import ApduError, InvalidTransaction
from ebank_auth.transaction import Transaction
from ebank_auth.usbkey.apdu import StatusWord
from ebank_auth.usbkey.display_layout import TOKEN_SCREEN, ScreenGeometry, layout_text
from ebank_auth.usbkey.emulator.card import SoftToken
from ebank_auth.usbkey.emulator.display import (
    AutoApprove,
    AutoReject,
    CallbackDisplay,
    DisplayChoice,
    NoButton,
    ReadingUser,
    TerminalDisplay,
)

from .conftest import USER_PIN, open_session


def test_terminal_display_draws_and_reads() -> None:
    out = io.StringIO()
    d = TerminalDisplay(io.StringIO("y\n"), out)
    d.show("金额：CNY 1.00\nPayee: A")
    assert "│ 金额：CNY 1.00" in out.getvalue()
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
    d.show("Memo: a")
    assert d.shown == ["Memo: a"]


def test_terminal_display_draws_numbered_screens_with_marked_continuations(
    make_tx: Callable[..., Transaction],
) -> None:
    out = io.StringIO()
    d = TerminalDisplay(io.StringIO(), out, ScreenGeometry(columns=32, rows=3))
    tx = replace(make_tx(), payee_name="北京市朝阳区某某某某科技发展有限公司")
    d.show(tx.display_text("zh"))
    drawn = out.getvalue().splitlines()
    assert [line[:6] for line in drawn if line.startswith("┌")] == [
        f"┌ {n}/4 " for n in (1, 2, 3, 4)
    ]
    rows = [line[2:].rstrip() for line in drawn if line.startswith("│ ")]
    assert rows[3:5] == ["收款户名：北京市朝阳区某某某某科", "↳ 技发展有限公司"]
    assert "金额：CNY 1,234.50" in rows
    assert d.screens_shown == [layout_text(tx.display_text("zh"), d.geometry)]


def test_show_refuses_text_it_cannot_lay_out_and_records_nothing() -> None:
    d = AutoApprove()
    for text in ("no label", "收款户名：张三\u3000\u3000\u3000金额：CNY 1.00", "附言：x\n↳ y"):
        with pytest.raises(InvalidTransaction):
            d.show(text)
    assert d.shown == [] and d.screens_shown == []


def test_the_token_shows_the_screens_a_host_preview_computes(
    make_tx: Callable[..., Transaction],
) -> None:
    """The emulator and a host-side preview lay out the same text the same way, and the
    bytes signed are those whose screens were shown (what is displayed is what is signed)."""
    token = SoftToken(None, AutoApprove())
    s = open_session(token)
    s.verify_pin(USER_PIN)
    pub = s.generate_key().public_key()
    tx = replace(make_tx(), payee_name="Müller Handelsgesellschaft mbH Zweigniederlassung")
    result = s.confirm_and_sign(tx, lang="en")
    assert token.display.screens_shown[-1] == layout_text(result.display_text, TOKEN_SCREEN)
    rows = [r for screen in token.display.screens_shown[-1] for r in screen.rows]
    # ü is an East Asian "ambiguous" character: 2 columns on the token's font
    assert rows[3:5] == ["Payee: Müller Handelsgesellscha", "↳ ft mbH Zweigniederlassung"]
    assert result.signed_bytes == tx.encode()
    pub.verify(result.signature, result.signed_bytes)
    s.close()


def test_the_token_refuses_to_display_a_padded_payee_sent_as_bytes(
    make_tx: Callable[..., Transaction],
) -> None:
    """Attack: a malicious host skips the library and sends canonical-looking bytes whose
    payee name is padded with U+3000 up to a fake amount line; the token must not show it."""
    token = SoftToken(None, AutoApprove())
    s = open_session(token)
    s.verify_pin(USER_PIN)
    s.generate_key()
    good = make_tx().encode()
    name = "张三".encode()
    forged_name = ("张三" + "\u3000" * 13 + "金额：CNY 1.00").encode()
    old_field = struct.pack(">BH", 5, len(name)) + name
    assert good.count(old_field) == 1
    forged = good.replace(old_field, struct.pack(">BH", 5, len(forged_name)) + forged_name)
    with pytest.raises(ApduError) as exc:
        s.display_transaction(forged)
    assert exc.value.sw == StatusWord.WRONG_DATA
    assert token.display.shown == [] and token.display.screens_shown == []
    s.close()
