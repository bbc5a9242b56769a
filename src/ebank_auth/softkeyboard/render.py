"""Draw a keyboard layout without putting its labels in page text or in a stable shape.

Glyphs come from a 3×5 pixel font, drawn as SVG polygons, so the SVG contains no
``<text>`` element and no label characters: a script scraping the page (form
enumeration) sees only key ids.  Every key is drawn afresh for every session
(issue 11 item 14), so nothing about a label's drawing is stable from one session
to the next:

* a random glyph variant (several digits have two forms);
* a random affine transform per key: scale (each axis), rotation, shear, position;
* every glyph pixel split into 1-3 pieces at random cuts, each piece jittered;
* stroke weight chosen so the key's total ink area is drawn from one range for every
  label (a "1" is drawn bolder than an "8"), and noise specks pad every key to the
  same number of pieces, four of them marking the corners of one box that holds
  any glyph at any weight;
* the pieces of a key in random order in one ``<path>``.

So the number of pieces, the ink area, the bounding box and the length of the path
data do not depend on the label, and normalising a key's path does not give back
the font's cells (``tests/softkeyboard/test_layout_leak.py`` measures both attacks
at chance).  What this does *not* do: a program that rasterises the SVG and reads
it like a person (OCR) can still read it — the customer has to be able to — which
is why a script already running in the page is outside the threat model
(``docs/softkeyboard.md``).  Lower-case letters are drawn at 70 % size, so the
drawing does tell upper from lower case.
"""

from __future__ import annotations

import itertools
import math
import secrets
from collections.abc import Sequence

__all__ = ["GLYPHS", "GLYPH_VARIANTS", "render_svg", "render_terminal"]

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


#: alternative forms, picked at random per key (the base form is always a candidate)
GLYPH_VARIANTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "0": ((".#.", "#.#", "#.#", "#.#", ".#."),),
    "1": ((".#.", "##.", ".#.", ".#.", ".#."), ("..#", ".##", "..#", "..#", "..#")),
    "4": (("#..", "#.#", "###", "..#", "..#"),),
    "6": (("#..", "#..", "###", "#.#", "###"),),
    "7": (("###", "..#", "..#", ".#.", ".#."),),
    "9": (("###", "#.#", "###", "..#", "..#"),),
}

#: pieces per key, glyph pieces plus noise specks (above the most any glyph can need)
_PIECES = 48
#: total ink area of a key, in font-pixel units (pixel side = 1), drawn uniformly
_INK = (10.5, 12.5)
_NOISE_SIDE = (0.12, 0.22)

_rng = secrets.SystemRandom()

Point = tuple[float, float]
Quad = tuple[Point, Point, Point, Point]
Box = tuple[float, float, float, float]


def _glyph(label: str) -> tuple[tuple[str, ...], float]:
    base, scale = (GLYPHS[label], 1.0) if label in GLYPHS else (GLYPHS[label.upper()], 0.7)
    forms = (base, *GLYPH_VARIANTS.get(label, ()))
    return forms[_rng.randrange(len(forms))], scale


def _split(x: float, y: float, w: float, h: float) -> list[Box]:
    """Cut one rectangle into 1-3 pieces along a random axis at random places."""
    n = _rng.choice((1, 2, 2, 3))
    cuts = sorted(_rng.uniform(0.2, 0.8) for _ in range(n - 1))
    edges = [0.0, *cuts, 1.0]
    if _rng.random() < 0.5:
        return [(x + w * a, y, w * (b - a), h) for a, b in itertools.pairwise(edges)]
    return [(x, y + h * a, w, h * (b - a)) for a, b in itertools.pairwise(edges)]


def _key_pieces(label: str, x: float, y: float, key_size: float) -> list[Quad]:
    """The polygons of one key's glyph and noise, in SVG coordinates."""
    rows, case_scale = _glyph(label)
    cells = [(c, r) for r, line in enumerate(rows) for c, cell in enumerate(line) if cell == "#"]
    glyph_boxes: list[Box] = []
    for c, r in cells:
        glyph_boxes += _split(float(c), float(r), 1.0, 1.0)
    noise_sides = [_rng.uniform(*_NOISE_SIDE) for _ in range(max(_PIECES - len(glyph_boxes), 0))]
    # stroke weight: the ink (glyph + noise) is drawn from one range whatever the label
    ink = _rng.uniform(*_INK)
    weight = math.sqrt(max(ink - sum(s * s for s in noise_sides), 1.0) / len(cells))
    pieces: list[Box] = []  # centre x, centre y, width, height; glyph centred on (0, 0)
    for px, py, pw, ph in glyph_boxes:
        cx = px + pw / 2 - 1.5 + _rng.uniform(-0.04, 0.04)
        cy = py + ph / 2 - 2.5 + _rng.uniform(-0.04, 0.04)
        pieces.append((cx, cy, pw * weight, ph * weight))
    for i, side in enumerate(noise_sides):
        if i < 4:  # four specks span one box for every label: the bounding box says nothing
            cx, cy = (-2.0, 2.0)[i % 2], (-3.0, 3.0)[i // 2]
        else:
            cx, cy = _rng.uniform(-1.9, 1.9), _rng.uniform(-2.9, 2.9)
        pieces.append((cx, cy, side, side))
    _rng.shuffle(pieces)

    unit = key_size * case_scale * _rng.uniform(0.10, 0.13)
    sx, sy = unit * _rng.uniform(0.9, 1.1), unit * _rng.uniform(0.9, 1.1)
    angle = math.radians(_rng.uniform(-8.0, 8.0))
    shear = _rng.uniform(-0.12, 0.12)
    cos, sin = math.cos(angle), math.sin(angle)
    room_x = max(key_size / 2 - 3.0 * sx - 3, 0.0)
    room_y = max(key_size / 2 - 3.6 * sy - 3, 0.0)
    ox = x + key_size / 2 + _rng.uniform(-room_x, room_x)
    oy = y + key_size / 2 + _rng.uniform(-room_y, room_y)

    def tf(u: float, v: float) -> Point:
        u, v = (u + shear * v) * sx, v * sy
        return (ox + u * cos - v * sin, oy + u * sin + v * cos)

    quads: list[Quad] = []
    for cx, cy, w, h in pieces:
        u0, v0, u1, v1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        quads.append((tf(u0, v0), tf(u1, v0), tf(u1, v1), tf(u0, v1)))
    return quads


def render_svg(
    keys: Sequence[tuple[str, str]], columns: int, *, key_size: int = 48, gap: int = 6
) -> str:
    """SVG of ``keys`` ((key_id, label) in display order) on a grid of ``columns``.

    Each key is ``<g data-key-id="…">`` with a rounded rectangle and its glyph as
    one path of polygons, drawn afresh on every call (see the module docstring);
    the client maps a click to the key id only.
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
        parts.append(f'<g data-key-id="{key_id}" class="sk-key">')
        parts.append(
            f'<rect x="{x}" y="{y}" width="{key_size}" height="{key_size}" rx="6" '
            'fill="#f4f4f4" stroke="#888"/>'
        )
        pixels = [
            "M" + "L".join(f"{px:.2f},{py:.2f}" for px, py in quad) + "Z"
            for quad in _key_pieces(label, x, y, key_size)
        ]
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
