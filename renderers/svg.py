"""What a deck needs to know of an SVG picture: its natural size and the size of its smallest text.

Both are in the SVG's own units (its viewBox). A picture shown `w` px wide sets its smallest text at
`smallest · w / natural width` px: that is how the deck keeps every label readable. Graphviz (through cairo)
draws text as outlines, so the SVG cannot say how large its text is; the writer of the picture, which knows
the sizes it asked for, marks the root with `data-smallest-text` (`mark`). An SVG whose text is text
(matplotlib with `svg.fonttype = none`) is read directly (`text_sizes`).

Imports: the standard library.
"""

from __future__ import annotations

import re
from pathlib import Path

SMALLEST = "data-smallest-text"
ROOT = re.compile(rb"<svg\b[^>]*>", re.S)
FONT_SIZE = re.compile(r"font-size:\s*([\d.]+)px|font:\s*(?:[a-z-]+\s+)*([\d.]+)px")


def _attribute(root: str, name: str) -> str | None:
    found = re.search(rf'\s{name}="([^"]*)"', root)
    return found.group(1) if found else None


def mark(svg: bytes, smallest: float) -> bytes:
    """The SVG with `data-smallest-text` on its root: its smallest text, in its own units."""
    root = ROOT.search(svg)
    if root is None:
        raise ValueError("not an SVG picture: no <svg> element")
    tag = re.sub(rb'\sdata-smallest-text="[^"]*"', b"", root.group(0))
    tag = tag[:-1].rstrip(b"/") + f' {SMALLEST}="{smallest:.2f}"'.encode() + (b"/>" if tag.endswith(b"/>") else b">")
    return svg[:root.start()] + tag + svg[root.end():]


def text_sizes(svg: bytes) -> list[float]:
    """The font size of every text element of an SVG whose text is text, in its own units."""
    text = svg.decode(errors="replace")
    return [float(a or b) for a, b in FONT_SIZE.findall(text)]


def natural_size(path: str | Path) -> tuple[float, float] | None:
    """(width, height) of an SVG picture in its own units (its viewBox, else width and height); None for
    anything else."""
    try:
        head = Path(path).read_bytes()[:4096] if str(path).lower().endswith(".svg") else b""
    except OSError:
        return None
    root = ROOT.search(head)
    if root is None:
        return None
    tag = root.group(0).decode(errors="replace")
    box = _attribute(tag, "viewBox")
    if box:
        w, h = (float(v) for v in box.replace(",", " ").split()[2:4])
    else:
        w, h = (float(re.match(r"[\d.]+", _attribute(tag, a) or "0").group(0) or 0) for a in ("width", "height"))
    return (w, h) if w > 0 and h > 0 else None


def smallest_text(path: str | Path) -> float | None:
    """The smallest text of an SVG picture in its own units: the mark its writer left, else the smallest
    font size of its text elements; None when it has neither (or is no SVG)."""
    try:
        data = Path(path).read_bytes() if str(path).lower().endswith(".svg") else b""
    except OSError:
        return None
    root = ROOT.search(data)
    if root is None:
        return None
    marked = _attribute(root.group(0).decode(errors="replace"), SMALLEST)
    if marked:
        return float(marked)
    sizes = text_sizes(data)
    return min(sizes) if sizes else None
