"""The token screen: its geometry and how a transaction's display text is laid out on it.

One module shared by the software token (which draws the screens) and any host-side
preview, so both show the same rows.  It imports only :mod:`ebank_auth.transaction`
and :mod:`ebank_auth.errors` (neutral: no host-side token code, no emulator code).
The rules, specified in docs/usbkey-protocol.md §8.1:

* **Geometry.** A screen is :attr:`ScreenGeometry.rows` rows of
  :attr:`ScreenGeometry.columns` columns (the token: 32 x 4, :data:`TOKEN_SCREEN`).
  East Asian wide and full-width characters take 2 columns, and so do *ambiguous*
  ones (Cyrillic, Greek, ``·``, ``é``, ``“``) because a token's GB 18030 font draws
  them full width; everything else takes 1 (:func:`column_width`).  Counting too wide
  only ever shortens a row, so the device never wraps a row on its own.
* **Rows.** Every line of the display text is one field, ``label`` + ``value``
  (``金额：CNY 1,005.30``).  Its first row starts with the label; the value continues
  on *continuation rows*, each starting with :data:`CONTINUATION` (``↳ ``), which no
  label starts with and which free text cannot contain (it is outside the character
  repertoire, :func:`ebank_auth.transaction.is_displayable`).  Rows are cut between
  characters, never inside one, and keep every character of the value (spaces too).
* **Amount.** The amount line always fits on one row (the geometry is refused
  otherwise), and free text cannot contain an amount label, so the only rows that
  read ``金额：``/``Amount:`` are the amount field's own.
* **Paging.** Rows fill screens of ``rows`` rows in order; a screen knows its number
  and the count (shown in the status bar as ``1/3``).  A token with more than one
  screen takes the approve button only on the last screen.

:func:`parse_screens` reads screens back into (label, value) pairs — what a careful
customer reads off the token; the property tests check it gives back every field.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ebank_auth.errors import InvalidTransaction
from ebank_auth.transaction import is_displayable

__all__ = [
    "AMOUNT_LABELS",
    "CONTINUATION",
    "LABEL_SEPARATORS",
    "MIN_COLUMNS",
    "TOKEN_SCREEN",
    "Screen",
    "ScreenGeometry",
    "column_width",
    "layout_text",
    "parse_screens",
    "text_width",
]

#: Marks a row that continues the field above it.
CONTINUATION: Final = "↳ "
#: A display line is ``label`` + value; the label ends at the first of these.
LABEL_SEPARATORS: Final = ("：", ": ")
#: Labels of the amount line (``zh``, ``en``): no other row may start with one.
AMOUNT_LABELS: Final = ("金额：", "Amount: ")
#: Narrowest screen allowed: the widest amount line (``Amount: USD 999,999,999,999.99``,
#: 30 columns) and time line (``时间：2026-11-22 10:00:00 +08:00``, 31) fit on one row.
MIN_COLUMNS: Final = 32


def column_width(ch: str) -> int:
    """Columns one character takes on the token screen: 2 for East Asian wide,
    full-width and ambiguous characters, 1 for the rest."""
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F", "A") else 1


def text_width(text: str) -> int:
    """Columns ``text`` takes on one row."""
    return sum(column_width(ch) for ch in text)


@dataclass(frozen=True)
class ScreenGeometry:
    """A screen of ``rows`` text rows of ``columns`` columns (status bar not counted)."""

    columns: int
    rows: int

    def __post_init__(self) -> None:
        if not isinstance(self.columns, int) or self.columns < MIN_COLUMNS:
            raise InvalidTransaction(
                f"a transaction screen needs at least {MIN_COLUMNS} columns so the amount "
                "and time lines are never cut; use a wider geometry"
            )
        if not isinstance(self.rows, int) or self.rows < 1:
            raise InvalidTransaction("a screen needs at least one row")


#: The token's screen: 32 columns x 4 rows (a 256 x 64 panel with 8 x 16 / 16 x 16 glyphs).
TOKEN_SCREEN: Final = ScreenGeometry(columns=32, rows=4)


@dataclass(frozen=True)
class Screen:
    """One screenful: its rows, its number (1-based) and the number of screens."""

    rows: tuple[str, ...]
    number: int
    count: int


def _split_label(line: str) -> tuple[str, str]:
    cuts = [(line.find(sep), sep) for sep in LABEL_SEPARATORS if sep in line]
    if not cuts:
        raise InvalidTransaction(f"display line {line!r} has no label: cannot lay it out")
    pos, sep = min(cuts)
    if pos == 0:
        raise InvalidTransaction(f"display line {line!r} has an empty label")
    return line[: pos + len(sep)], line[pos + len(sep) :]


def _field_rows(label: str, value: str, columns: int) -> list[str]:
    rows: list[str] = []
    prefix, used, chunk = label, text_width(label), ""
    for ch in value:
        width = column_width(ch)
        if used + width > columns and chunk:
            rows.append(prefix + chunk)
            prefix, used, chunk = CONTINUATION, text_width(CONTINUATION), ""
        chunk += ch
        used += width
    rows.append(prefix + chunk)
    return rows


def layout_text(text: str, geometry: ScreenGeometry = TOKEN_SCREEN) -> tuple[Screen, ...]:
    """Lay out a transaction's display text (``Transaction.display_text``) on screens.

    Refuses (:class:`InvalidTransaction`) a character outside the display repertoire,
    a line without a label, and an amount line that does not fit on one row.
    """
    rows: list[str] = []
    for line in text.split("\n"):
        for ch in line:
            if not is_displayable(ch):
                raise InvalidTransaction(
                    f"display text contains U+{ord(ch):04X}, which the token screen cannot "
                    "show unambiguously"
                )
        label, value = _split_label(line)
        if text_width(label) + 1 >= geometry.columns:
            raise InvalidTransaction(f"display label {label!r} is too wide for the screen")
        field_rows = _field_rows(label, value, geometry.columns)
        if label in AMOUNT_LABELS and len(field_rows) != 1:
            raise InvalidTransaction("the amount line does not fit on one row of the screen")
        rows.extend(field_rows)
    count = -(-len(rows) // geometry.rows)
    return tuple(
        Screen(tuple(rows[i * geometry.rows : (i + 1) * geometry.rows]), i + 1, count)
        for i in range(count)
    )


def parse_screens(screens: Sequence[Screen], labels: Sequence[str]) -> list[tuple[str, str]]:
    """Read screens back into ``(label, value)`` pairs, as a customer reads them.

    A row starting with :data:`CONTINUATION` continues the value above it; any
    other row must start with one of ``labels``.  Raises :class:`InvalidTransaction`
    for a row that is neither (the screens are not a layout of a display text).
    """
    fields: list[tuple[str, str]] = []
    for screen in screens:
        for row in screen.rows:
            if row.startswith(CONTINUATION):
                if not fields:
                    raise InvalidTransaction("the first row of the screens is a continuation")
                label, value = fields[-1]
                fields[-1] = (label, value + row[len(CONTINUATION) :])
                continue
            starts = [label for label in labels if row.startswith(label)]
            if len(starts) != 1:
                raise InvalidTransaction(f"screen row {row!r} does not start with one label")
            fields.append((starts[0], row[len(starts[0]) :]))
    return fields
