"""Slides laid out to fit, before any writer sees them: the deck model knows the space a slide has.

Every slide of a deck is `WIDTH` × `HEIGHT` (the reveal.js slide, in CSS pixels; the Beamer frame is the same
16:9 with the same share of lines). Under its title a slide has a body of `BODY_WIDTH` × `BODY_HEIGHT`, and
`height(block, width)` estimates what each block takes of it: lines of prose at the slide's font, rows of
display math (a row with a column vector is as tall as the vector), notes in their box. `fit(deck)` then
lays out each slide that would not fit, in this order of preference:

- a derivation revealed step by step, or a long aligned block, is split over continued slides, each with
  as many steps or rows as fit;
- a figure beside text or math goes into a column of its own, the text in the other — or, when it would
  be shown much larger so (a wide figure), onto a continued slide of its own, where it has the whole body;
- other blocks are set in two columns, when each half fits;
- a figure that would get less than half the body under the other blocks goes beside them too;
- a figure gets the height left under the other blocks (`Figure.height`, the share of the body), never less
  than `MIN_FIGURE` of it, and the size it is shown at (`Figure.size`, px of the slide);
- a figure whose smallest text would be under `READABLE` px high there goes onto a slide of its own.

Nothing is shrunk: when none of this fits a slide, or a figure reads only larger than the slide allows, `fit`
returns one line saying which slide and why.

Imports: the standard library, renderers.deck, renderers.svg.
"""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path

from gategraph.renderers import svg
from gategraph.renderers.deck import Columns, Deck, Figure, Math, Note, Slide, Table, Text, flat, split_math

WIDTH, HEIGHT = 1280, 720
BODY_WIDTH = WIDTH - 2 * 54  # the slide's padding left and right
BODY_HEIGHT = HEIGHT - 26 - 40 - 24 - 72  # less the padding, the section's name and the title with its rule
GAP = 24  # between two columns
MIN_FIGURE = 0.3  # the least share of the body a figure is given before it moves beside the text
CAPTION, FIGURE_MARGIN = 34, 12  # a figure's caption, and the space above and below it
READABLE = 12  # px: the least height of a figure's smallest text on a 1280×720 screen
SPARE = 1.04  # what the layout keeps in hand above READABLE, for its estimates of the room left
SCREEN = 0.96  # the scale reveal.js shows the slide at on a 1280×720 screen (its margin is 4%)

FONT, STEP_FONT, NOTE_FONT, TABLE_FONT = 27, 24, 24, 24  # px on the slide (renderers/reveal.py uses the same)
CELL_PAD = 28  # a table cell's padding left and right, px
LINE = 1.4  # line height of prose, in ems
CHAR = 0.5  # average width of a character of prose, in ems
ROW, VECTOR_ROW = 48, 38  # a display-math row at FONT; each further row of a column vector or matrix
MATH_MARGIN = 22


def _rows(latex: str) -> list[str]:
    """The rows of an aligned block or array, or the one row of a formula (rows inside matrices stay whole)."""
    stack, rows, buf, k = [], [], "", 0
    while k < len(latex):
        begin = re.match(r"\\begin\{(\w+)\}", latex[k:])
        if begin:
            stack.append(begin.group(1))
        elif latex.startswith(r"\end{", k):
            stack = stack[:-1]
        if latex.startswith(r"\\", k) and len(stack) == 1 and stack[0] in ("aligned", "array", "gathered"):
            rows.append(buf)
            buf, k = "", k + 2
            continue
        buf += latex[k]
        k += 1
    return rows + [buf]


MATRIX = re.compile(r"\\begin\{[bpv]?matrix\}(.*?)\\end\{[bpv]?matrix\}")
FRAC = re.compile(r"\\frac\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")


def _row_height(row: str) -> float:
    tallest = max([1] + [m.group(1).count(r"\\") + 1 for m in MATRIX.finditer(row)])
    frac, sums, left = r"\frac" in row, r"\sum" in row, re.search(r"\\left[^a-z]", row) is not None
    extra = (34 if frac else 0) + (30 if frac and left else 0) + (35 if frac and sums else 12 if sums else 0)
    return ROW + VECTOR_ROW * (tallest - 1) + extra


def _symbols(tex: str) -> float:
    """The width of a piece of math in ems, roughly: its visible symbols, operators with their spaces."""
    tex = MATRIX.sub(lambda m: "M" * round(max((_symbols(r) + 1.2 * r.count("&") for r in m.group(1).split(r"\\")),
                                              default=0) / 0.55 + 3), tex)
    while FRAC.search(tex):
        tex = FRAC.sub(lambda m: max(m.group(1), m.group(2), key=_symbols), tex)
    ops = len(re.findall(r"(?<!\\)[=+\-<>]|\\(cdot|odot|approx|leftarrow|in|times|quad)\b", tex))
    tex = re.sub(r"\\(left|right|text|mathrm|operatorname|begin\{\w+\}|end\{\w+\}|[,;!])", "", tex)
    tex = re.sub(r"\\[a-zA-Z]+", "x", tex)
    tex = re.sub(r"\\(text|mathrm|operatorname)\{([^{}]*)\}", r"\2", tex.replace("$", ""))
    tex = re.sub(r"\\(sum|prod)_(\{[^{}]*\}|\w)(\^(\{[^{}]*\}|\w))?", "XX", tex)  # limits set above and below
    while re.search(r"[_^]\{[^{}]*\}", tex):  # scripts, innermost first, at about 0.6 of the size
        tex = re.sub(r"[_^]\{([^{}]*)\}", lambda m: "s" * round(len(re.sub(r"[{}\s]", "", m.group(1))) * 0.6), tex)
    return 0.5 * len(re.sub(r"[{}_^&\s]", "", tex)) + 0.6 * ops


def math_width(latex: str) -> float:
    """A rough width of display math in px at the slide's font (KaTeX sets math at 1.21 em); an array's
    columns are a quad apart."""
    gap = 1.2 if latex.startswith(r"\begin{array}") else 0
    return max(_symbols(row) + gap * row.count("&") for row in _rows(latex)) * FONT * 1.21


def _prose(text: str, width: float, font: float) -> int:
    """Lines a paragraph takes at `width` px (inline math counted by its visible symbols)."""
    chars = sum(len(re.sub(r"\\[a-zA-Z]+|[{}_^]", "", p)) if m else len(p) for m, p in split_math(text))
    return max(1, math.ceil(chars * CHAR * font / width))


def height(block, width: float = BODY_WIDTH) -> float:
    """What a block takes of a slide's body, in px, at `width` px wide (figures: their least height)."""
    if isinstance(block, Text):
        lines = block.text.splitlines() if block.bullets else [block.text]
        return sum(_prose(line, width - (30 if block.bullets else 0), FONT) * FONT * LINE + 12
                   for line in lines if line.strip())
    if isinstance(block, Math):
        scale = (STEP_FONT / FONT if block.steps else 1.0) * block.scale
        return sum(sum(_row_height(r) for r in _rows(part)) * scale * (0.75 if part.startswith(r"\begin{array}") else 1)
                   + MATH_MARGIN for part in (block.parts or [block.latex]))
    if isinstance(block, Note):
        return _prose(block.text, width - 42, NOTE_FONT) * NOTE_FONT * LINE + 36
    if isinstance(block, Table):
        column = width / max(1, len(block.header)) - CELL_PAD
        return 16 + sum(max([_prose(c, column, TABLE_FONT) for c in row] + [1]) * TABLE_FONT * LINE + 10
                        for row in [block.header, *block.rows])
    if isinstance(block, Figure):
        return MIN_FIGURE * BODY_HEIGHT + (CAPTION if block.caption else 0)
    if isinstance(block, Columns):
        left = BODY_WIDTH * block.split - GAP / 2
        return max(sum(height(b, left) for b in block.left),
                   sum(height(b, width - left - GAP) for b in block.right))
    raise TypeError(f"no height for {type(block).__name__}")


def _too_wide(block, width: float) -> bool:
    return isinstance(block, Math) and any(math_width(p) * block.scale > width for p in (block.parts or [block.latex]))


def _size_figures(blocks: list, width: float = BODY_WIDTH, room: float = BODY_HEIGHT):
    """Give each figure its share of the height the other blocks leave, and the size it is shown at there."""
    figures = [b for b in blocks if isinstance(b, Figure)]
    rest = sum(height(b, width) for b in blocks if not isinstance(b, Figure))
    for f in figures:
        left = (room - rest) / len(figures) - (CAPTION if f.caption else 0) - FIGURE_MARGIN
        f.height = round(max(MIN_FIGURE * BODY_HEIGHT, left) / BODY_HEIGHT, 3)
        a = aspect(f.path)
        w = min(width * f.width, f.height * BODY_HEIGHT * a)
        f.size = (round(w, 1), round(w / a, 1))
    for c in (b for b in blocks if isinstance(b, Columns)):
        lw = BODY_WIDTH * c.split - GAP / 2
        _size_figures(c.left, lw, room - rest + height(c, width))
        _size_figures(c.right, width - lw - GAP, room - rest + height(c, width))


def least_width(figure: Figure) -> float:
    """The narrowest a figure may be shown, in px of the slide, for its smallest text to be `READABLE` px high
    on a 1280×720 screen; 0 when its text sizes are not known (a picture made elsewhere)."""
    natural, smallest = svg.natural_size(figure.path), svg.smallest_text(figure.path)
    if not natural or not smallest:
        return 0.0
    return natural[0] * READABLE * SPARE / (smallest * SCREEN)


def smallest_shown(figure: Figure) -> float | None:
    """The height in screen px of a figure's smallest text, as laid out (`Figure.size`) at 1280×720."""
    natural, smallest = svg.natural_size(figure.path), svg.smallest_text(figure.path)
    if not natural or not smallest or not figure.size:
        return None
    return smallest * figure.size[0] / natural[0] * SCREEN


def _pieces(block) -> tuple[list, callable] | None:
    """A block that can run on over slides: its pieces, and how to make a block of some of them again."""
    if isinstance(block, Math) and block.steps:
        return block.parts, lambda parts: Math(parts=parts, steps=True, scale=block.scale, where=block.where)
    if isinstance(block, Math) and not block.parts and block.latex.lstrip().startswith(r"\begin{aligned}"):
        rows = _rows(block.latex.strip())
        rows[0], rows[-1] = rows[0].replace(r"\begin{aligned}", "", 1), rows[-1].replace(r"\end{aligned}", "")
        if len(rows) > 1:
            return rows, lambda rows: Math(r"\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}",
                                           scale=block.scale, where=block.where)
    return None


def _continued(slide: Slide) -> list[Slide] | None:
    """A slide with a long derivation (step by step, or one aligned block) as several, each with as many steps
    or rows as fit."""
    k = next((i for i, b in enumerate(slide.blocks) if isinstance(b, Math) and b.steps), None)
    if k is None:
        k = next((i for i, b in enumerate(slide.blocks) if _pieces(b)), None)
    if k is None:
        return None
    pieces, make = _pieces(slide.blocks[k])
    before = sum(height(b) for b in slide.blocks[:k])
    after = sum(height(b) for b in slide.blocks[k + 1:])
    pages, page, used = [], [], before
    for piece in pieces:
        need = height(make([piece]))
        if page and used + need > BODY_HEIGHT:
            pages.append(page)
            page, used = [], 0
        page.append(piece)
        used += need
    if used + after > BODY_HEIGHT:
        pages.append(page)
        page = []
    pages.append(page)
    if len(pages) == 1:
        return None
    out = []
    for n, part in enumerate(pages):
        title = slide.title if n == 0 else f"{slide.title} (continued)"
        blocks = ((slide.blocks[:k] if n == 0 else []) + ([make(part)] if part else [])
                  + (slide.blocks[k + 1:] if n == len(pages) - 1 else []))
        out.append(Slide(title, blocks, slide.section, slide.notes if n == 0 else []))
    return out


def aspect(path) -> float:
    """Width over height of an SVG or a PNG (from its header); 1 for anything else."""
    natural = svg.natural_size(path)
    if natural:
        return natural[0] / natural[1]
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return 1.0
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return 1.0
    w, h = struct.unpack(">II", head[16:24])
    return w / h if h else 1.0


def _gain(figure: Figure) -> float:
    """How much larger a figure is shown on a slide of its own than in a column beside the text."""
    a = aspect(figure.path)
    return min(BODY_WIDTH, BODY_HEIGHT * a) / min((BODY_WIDTH - GAP) / 2, BODY_HEIGHT * a)


def _own_slide(slide: Slide, unreadable: bool = False) -> list[Slide] | None:
    """A wide figure too cramped under the other blocks (or `unreadable` there): the blocks, then the figure on
    a slide of its own."""
    figures = [b for b in slide.blocks if isinstance(b, Figure)]
    if len(figures) != 1 or len(slide.blocks) == 1 or (_gain(figures[0]) < 1.3 and not unreadable):
        return None
    others = [b for b in slide.blocks if b is not figures[0]]
    figure = Figure(figures[0].path, figures[0].caption, width=1.0)
    return [Slide(slide.title, others, slide.section, slide.notes),
            Slide(f"{slide.title} (continued)", [figure], slide.section)]


def _beside(slide: Slide) -> Slide | None:
    """A slide with one figure as two columns: the other blocks on the left, the figure on the right."""
    figures = [b for b in slide.blocks if isinstance(b, Figure)]
    if len(figures) != 1 or _gain(figures[0]) >= 1.3:
        return None
    others = [b for b in slide.blocks if b is not figures[0]]
    for split in (0.5, 0.58, 0.42):
        left = BODY_WIDTH * split - GAP / 2
        if sum(height(b, left) for b in others) <= BODY_HEIGHT and not any(_too_wide(b, left) for b in others):
            figure = Figure(figures[0].path, figures[0].caption, width=1.0)
            return Slide(slide.title, [Columns(others, [figure], split)], slide.section, slide.notes)
    return None


def _two_columns(slide: Slide) -> Slide | None:
    """A slide of several blocks as two columns, the first blocks on the left and the rest on the right."""
    half = (BODY_WIDTH - GAP) / 2
    for k in sorted(range(1, len(slide.blocks)), key=lambda k: abs(k - len(slide.blocks) / 2)):
        left, right = slide.blocks[:k], slide.blocks[k:]
        if all(sum(height(b, half) for b in side) <= BODY_HEIGHT and not any(_too_wide(b, half) for b in side)
               for side in (left, right)):
            return Slide(slide.title, [Columns(left, right, 0.5)], slide.section, slide.notes)
    return None


def fits(slide: Slide) -> bool:
    return sum(height(b) for b in slide.blocks) <= BODY_HEIGHT


def _cramped(slide: Slide) -> bool:
    """A figure that would get less than half the body under the other blocks reads better beside them."""
    if sum(isinstance(b, Figure) for b in slide.blocks) != 1:
        return False
    rest = sum(height(b) for b in slide.blocks if not isinstance(b, Figure))
    return BODY_HEIGHT - rest < 0.5 * BODY_HEIGHT


def _too_small(figure: Figure) -> bool:
    return bool(figure.size) and figure.size[0] < least_width(figure) - 0.5


def _unreadable(slide: Slide) -> bool:
    return any(_too_small(f) for f in flat(slide.blocks) if isinstance(f, Figure))


def fit(deck: Deck) -> list[str]:
    """Lay out every slide of `deck` to fit (in place); one line for each slide that still does not."""
    out, problems = [], []
    for slide in deck.slides:
        laid = [slide]
        if not fits(slide):
            laid = _continued(slide) or _own_slide(slide) or [_beside(slide) or _two_columns(slide) or slide]
        elif _cramped(slide):
            laid = _own_slide(slide) or [_beside(slide) or slide]
        for s in laid:
            _size_figures(s.blocks)
        if any(_unreadable(s) for s in laid):  # labels too small beside or under the rest: a slide of its own
            laid = _own_slide(slide, unreadable=True) or laid
        for s in laid:
            _size_figures(s.blocks)
            for f in (b for b in flat(s.blocks) if isinstance(b, Figure) and _too_small(b)):
                problems.append(f"slide '{s.title}': the smallest label of {Path(f.path).name} would be "
                                    f"{smallest_shown(f):.1f} px high at 1280×720, under the {READABLE} px it needs "
                                    f"(it needs {least_width(f):.0f} px of width, the slide gives it {f.size[0]:.0f})")
            need = sum(height(b) for b in s.blocks)
            if need > BODY_HEIGHT:
                at = f"{slide.where}: " if slide.where else ""
                problems.append(f"{at}slide '{s.title}' does not fit: its content needs about {need:.0f} px of "
                                f"the {BODY_HEIGHT} px under its title, and neither continuing it on the next "
                                "slide nor a second column makes room")
        out.extend(laid)
    deck.slides[:] = out
    return problems
