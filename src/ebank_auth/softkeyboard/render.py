"""Draw a keyboard layout without putting its labels in page text.

Glyphs are a 3×5 pixel font drawn as SVG rectangles, so the SVG contains no
``<text>`` element and no label characters: a script scraping the page (form
enumeration) sees only key ids.  Lower-case letters are drawn at 70 % size.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["GLYPHS", "render_svg", "render_terminal"]

# 3 columns × 5 rows; '#' = dark pixel
GLYPHS: dict[str, tuple[str, ...]] = {
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", ".##", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", ".#.", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
    "A": (".#.", "#.#", "###", "#.#", "#.#"),
    "B": ("##.", "#.#", "##.", "#.#", "##."),
    "C": (".##", "#..", "#..", "#..", ".##"),
    "D": ("##.", "#.#", "#.#", "#.#", "##."),
    "E": ("###", "#..", "##.", "#..", "###"),
    "F": ("###", "#..", "##.", "#..", "#.."),
    "G": (".##", "#..", "#.#", "#.#", ".##"),
    "H": ("#.#", "#.#", "###", "#.#", "#.#"),
    "I": ("###", ".#.", ".#.", ".#.", "###"),
    "J": ("..#", "..#", "..#", "#.#", ".#."),
    "K": ("#.#", "#.#", "##.", "#.#", "#.#"),
    "L": ("#..", "#..", "#..", "#..", "###"),
    "M": ("#.#", "###", "###", "#.#", "#.#"),
    "N": ("##.", "#.#", "#.#", "#.#", "#.#"),
    "O": (".#.", "#.#", "#.#", "#.#", ".#."),
    "P": ("##.", "#.#", "##.", "#..", "#.."),
    "Q": (".#.", "#.#", "#.#", "##.", ".##"),
    "R": ("##.", "#.#", "##.", "#.#", "#.#"),
    "S": (".##", "#..", ".#.", "..#", "##."),
    "T": ("###", ".#.", ".#.", ".#.", ".#."),
    "U": ("#.#", "#.#", "#.#", "#.#", "###"),
    "V": ("#.#", "#.#", "#.#", "#.#", ".#."),
    "W": ("#.#", "#.#", "###", "###", "#.#"),
    "X": ("#.#", "#.#", ".#.", "#.#", "#.#"),
    "Y": ("#.#", "#.#", ".#.", ".#.", ".#."),
    "Z": ("###", "..#", ".#.", "#..", "###"),
}


def _glyph(label: str) -> tuple[tuple[str, ...], float]:
    if label in GLYPHS:
        return GLYPHS[label], 1.0
    return GLYPHS[label.upper()], 0.7


def render_svg(
    keys: Sequence[tuple[str, str]], columns: int, *, key_size: int = 48, gap: int = 6
) -> str:
    """SVG of ``keys`` ((key_id, label) in display order) on a grid of ``columns``.

    Each key is ``<g data-key-id="…">`` with a rounded rectangle and its glyph as
    pixel rectangles; the client maps a click to the key id only.
    """
    rows = (len(keys) + columns - 1) // columns
    width = columns * (key_size + gap) + gap
    height = rows * (key_size + gap) + gap
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="secure keyboard">'
    ]
    for index, (key_id, label) in enumerate(keys):
        col, row = index % columns, index // columns
        x = gap + col * (key_size + gap)
        y = gap + row * (key_size + gap)
        glyph, scale = _glyph(label)
        px = key_size * 0.12 * scale
        gx = x + (key_size - 3 * px) / 2
        gy = y + (key_size - 5 * px) / 2
        parts.append(f'<g data-key-id="{key_id}" class="sk-key">')
        parts.append(
            f'<rect x="{x}" y="{y}" width="{key_size}" height="{key_size}" rx="6" '
            'fill="#f4f4f4" stroke="#888"/>'
        )
        pixels = []
        for r, line in enumerate(glyph):
            for c, cell in enumerate(line):
                if cell == "#":
                    pixels.append(
                        f"M{gx + c * px:.2f},{gy + r * px:.2f}h{px:.2f}v{px:.2f}h-{px:.2f}z"
                    )
        parts.append(f'<path fill="#222" d="{"".join(pixels)}"/>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def render_terminal(keys: Sequence[tuple[str, str]], columns: int) -> str:
    """A text drawing of the layout (for the CLI demo): each key as ``[label]``."""
    lines = []
    for start in range(0, len(keys), columns):
        row = keys[start : start + columns]
        lines.append(" ".join(f"[{label}]" for _, label in row))
    return "\n".join(lines)
