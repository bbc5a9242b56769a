"""Issue 11 item 14: can the layout be read from what the page receives?

Two attack classifiers read the client view's SVG the way a form-grabbing script
would (structure, not pixels):

* ``normalise`` — the review's attack: turn each key's path into rectangles, shift to
  the origin, divide by the pixel size and look the cell pattern up in the 3x5 font
  (falling back to the number of pixels);
* ``fingerprint`` — an attacker who opens many keyboards of their own (so knows the
  labels), learns per-label structural sizes (number of path pieces, ink area, bounding
  box, length of the path data) and labels a victim's keys by the nearest centroid.

Before the fix, ``normalise`` recovered every mapping.  After it, both must do no
better than chance: over N sessions x 10 keys a classifier whose answer is
independent of the label is right with probability 1/10 per key, so the number of
hits is Binomial(10N, 0.1); we require fewer than mean + 5 standard deviations
(a one-sided bound with false-alarm probability below 1e-6).
"""

from __future__ import annotations

import math
import random
import re
import statistics
import string

from ebank_auth.crypto import sm2
from ebank_auth.softkeyboard import KeyboardMode, SoftKeyboard
from ebank_auth.softkeyboard.render import GLYPHS
from ebank_auth.store import MemoryStore

SERVER_KEY = sm2.generate_private_key()
_KEY_RE = re.compile(r'<g data-key-id="([0-9a-f]+)"[^>]*>(.*?)</g>', re.S)
_PATH_RE = re.compile(r'<path[^>]*\sd="([^"]*)"')
_NUM = r"-?\d+(?:\.\d+)?"
_TOKEN_RE = re.compile(rf"[MLHVZmlhvz]|{_NUM}")

Poly = list[tuple[float, float]]


def _polygons(d: str) -> list[Poly]:
    """Subpaths of an SVG path (M, L, H, V, Z and their relative forms) as point lists."""
    polys: list[Poly] = []
    tokens = _TOKEN_RE.findall(d)
    x = y = 0.0
    cmd = ""
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.isalpha():
            cmd = t
            i += 1
            if cmd in "Zz":
                continue
            continue
        if cmd in "Mm":
            nx, ny = float(tokens[i]), float(tokens[i + 1])
            x, y = (x + nx, y + ny) if cmd == "m" else (nx, ny)
            polys.append([(x, y)])
            cmd = "l" if cmd == "m" else "L"
            i += 2
            continue
        if cmd in "Ll":
            nx, ny = float(tokens[i]), float(tokens[i + 1])
            x, y = (x + nx, y + ny) if cmd == "l" else (nx, ny)
            i += 2
        elif cmd in "Hh":
            x = x + float(t) if cmd == "h" else float(t)
            i += 1
        elif cmd in "Vv":
            y = y + float(t) if cmd == "v" else float(t)
            i += 1
        else:
            i += 1
            continue
        polys[-1].append((x, y))
    return polys


def _keys(svg: str) -> dict[str, list[Poly]]:
    out = {}
    for key_id, body in _KEY_RE.findall(svg):
        polys: list[Poly] = []
        for d in _PATH_RE.findall(body):
            polys += _polygons(d)
        out[key_id] = polys
    return out


def _bbox(p: Poly) -> tuple[float, float, float, float]:
    xs, ys = [q[0] for q in p], [q[1] for q in p]
    return min(xs), min(ys), max(xs), max(ys)


def _area(p: Poly) -> float:
    return abs(sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(p, p[1:] + p[:1], strict=True))) / 2


_TEMPLATES = {
    label: frozenset(
        (c, r) for r, row in enumerate(rows) for c, cell in enumerate(row) if cell == "#"
    )
    for label, rows in GLYPHS.items()
    if label in string.digits
}


def normalise(polys: list[Poly], rng: random.Random) -> str:
    """The review's attack on one key: cells of the normalised path -> label."""
    boxes = [_bbox(p) for p in polys]
    if boxes:
        px = min(b[2] - b[0] for b in boxes) or 1.0
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        cells = frozenset((round((b[0] - x0) / px), round((b[1] - y0) / px)) for b in boxes)
        for label, cells_of in _TEMPLATES.items():
            if cells == cells_of:
                return label
        by_count = [lab for lab, t in _TEMPLATES.items() if len(t) == len(polys)]
        if by_count:
            return rng.choice(by_count)
    return rng.choice(string.digits)


def _features(polys: list[Poly], d_len: int) -> list[float]:
    boxes = [_bbox(p) for p in polys]
    w = max(b[2] for b in boxes) - min(b[0] for b in boxes)
    h = max(b[3] for b in boxes) - min(b[1] for b in boxes)
    return [float(len(polys)), sum(_area(p) for p in polys), w, h, float(d_len)]


def _sessions(n: int) -> list[tuple[dict[str, str], dict[str, list[Poly]], dict[str, int]]]:
    kb = SoftKeyboard(MemoryStore(), SERVER_KEY)
    out = []
    for _ in range(n):
        layout = kb.open(KeyboardMode.DIGITS)
        svg = str(layout.client_view()["svg"])
        keys = _keys(svg)
        lengths = {
            k: sum(len(d) for d in _PATH_RE.findall(body)) for k, body in _KEY_RE.findall(svg)
        }
        out.append((dict(layout.keys), keys, lengths))
    return out


def _chance_bound(trials: int) -> float:
    p = 0.1
    return trials * p + 5 * math.sqrt(trials * p * (1 - p))


def test_normalising_attack_does_no_better_than_chance() -> None:
    """Attack: read each key's label from its drawn path (the review recovered the whole
    mapping in 200 of 200 sessions)."""
    rng = random.Random(1)
    n = 200
    hits = whole = 0
    for truth, keys, _ in _sessions(n):
        guesses = {k: normalise(polys, rng) for k, polys in keys.items()}
        right = sum(guesses[k] == truth[k] for k in truth)
        hits += right
        whole += right == len(truth)
    assert hits < _chance_bound(10 * n), f"{hits} of {10 * n} keys read, {whole} whole layouts"
    assert whole == 0


def test_trained_size_fingerprint_does_no_better_than_chance() -> None:
    """Attack: learn each label's structural sizes from one's own sessions, then label a
    victim's keys by the nearest centroid ("no stable per-label sizes")."""
    train, test = _sessions(150), _sessions(200)
    by_label: dict[str, list[list[float]]] = {d: [] for d in string.digits}
    for truth, keys, lengths in train:
        for k, polys in keys.items():
            by_label[truth[k]].append(_features(polys, lengths[k]))
    columns = list(zip(*(f for fs in by_label.values() for f in fs), strict=True))
    scale = [statistics.pstdev(c) or 1.0 for c in columns]
    centroid = {
        lab: [statistics.fmean(c) / s for c, s in zip(zip(*fs, strict=True), scale, strict=True)]
        for lab, fs in by_label.items()
    }
    hits = 0
    for truth, keys, lengths in test:
        for k, polys in keys.items():
            f = [v / s for v, s in zip(_features(polys, lengths[k]), scale, strict=True)]
            guess = min(centroid, key=lambda lab: math.dist(f, centroid[lab]))
            hits += guess == truth[k]
    assert hits < _chance_bound(10 * len(test)), f"{hits} of {10 * len(test)} keys read"


def test_classifiers_are_not_vacuous() -> None:
    """The same classifiers read a fixed-font drawing (the old renderer) perfectly, so a
    pass above means the rendering resists them, not that they cannot read anything."""
    rng = random.Random(2)
    px = 5.76
    for label, cells in _TEMPLATES.items():
        polys = [
            [
                (c * px, r * px),
                (c * px + px, r * px),
                (c * px + px, r * px + px),
                (c * px, r * px + px),
            ]
            for c, r in cells
        ]
        assert normalise(polys, rng) == label
