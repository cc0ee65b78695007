"""The deck model: slides made of text, equations, figures and notes, apart from any output format.

A writer (renderers/reveal.py, renderers/beamer.py) turns a `Deck` into one format; a new format is one new
writer. Text may hold inline math between single dollars (`the forget gate $f_t$`; text from users goes
through `plain`, so its dollars are dollars); `Math` holds display LaTeX (an `aligned` block, or rows that a
derivation reveals one at a time); `Table` holds rows of such text. A block's `where` names the place in a
source that made it (`talk.md:12`), so an error a writer meets in it can point there.

Imports: gategraph.files.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from gategraph.files import file_stem


@dataclass
class Text:
    """A paragraph; `$...$` is inline math. `bullets` makes each line an item, `numbered` numbers them."""

    text: str
    bullets: bool = False
    numbered: bool = False
    where: str = ""


@dataclass
class Math:
    """Display math: `latex` is one block (`\\begin{aligned} ... \\end{aligned}`); `parts` are several
    blocks shown one under another, one at a time when `steps` is set (a derivation revealed step by step)."""

    latex: str = ""
    parts: list = field(default_factory=list)
    steps: bool = False
    scale: float = 1.0  # of the slide's font: below 1 only where a slide would not fit otherwise, never below 0.8
    where: str = ""


SHOWN = ("svg", "pdf")  # the formats the writers show a figure in: SVG in HTML, PDF in Beamer (vector both)


def drawn(draw, stem: Path) -> Path:
    """One picture drawn in each format the writers show: `draw(path)` writes it to `path`, whose suffix names
    the format. Returns the SVG's path, the one a `Figure` takes."""
    for fmt in SHOWN:
        draw(stem.parent / f"{stem.name}.{fmt}")
    return stem.parent / f"{stem.name}.svg"


@dataclass
class Figure:
    """A picture with a caption: `path` is the file (SVG, PNG, ...), and the same picture in another format, if
    it was drawn so (`drawn`), lies beside it under the same name. `width` is the share of the slide's (or the
    column's) width it may fill."""

    path: Path
    caption: str = ""
    width: float = 0.8
    height: float = 0.0  # the share of the slide's body it may fill (set by renderers.layout; 0: the writer's own)
    where: str = ""
    size: tuple = ()  # (width, height) it is shown at, in px of the 1280×720 slide (set by renderers.layout)

    def file(self, fmt: str) -> Path:
        """The picture in format `fmt` if it was drawn in it, else `path`."""
        other = Path(self.path).parent / f"{Path(self.path).stem}.{fmt}"
        return other if other.exists() else Path(self.path)


@dataclass
class Note:
    """A remark set apart: a warning (`kind="warn"`), or what the slide claims against what is computed."""

    text: str
    kind: str = "info"
    where: str = ""


@dataclass
class Table:
    """A table of text cells (each may hold `$...$` math): a header row, the body rows, and each column's
    alignment ("left", "center" or "right")."""

    header: list
    rows: list
    align: list = field(default_factory=list)
    where: str = ""


@dataclass
class Columns:
    """Two columns side by side, each a list of blocks; `split` is the left column's share of the width."""

    left: list
    right: list
    split: float = 0.5


@dataclass
class Slide:
    title: str
    blocks: list = field(default_factory=list)
    section: str = ""
    notes: list = field(default_factory=list)  # what the lecturer says, never shown on the slide
    where: str = ""  # the place in a source that made it (`talk.md:12`)


@dataclass
class Deck:
    title: str
    subtitle: str = ""
    slides: list = field(default_factory=list)

    def add(self, title: str, *blocks, section: str = "", notes: list | tuple = (), where: str = "") -> Slide:
        slide = Slide(title, list(blocks), section, list(notes), where)
        self.slides.append(slide)
        return slide

    @property
    def figures(self) -> list[Figure]:
        return [b for s in self.slides for b in flat(s.blocks) if isinstance(b, Figure)]

    def copy_figures(self, folder: Path, fmt: str) -> dict:
        """Copy every figure, in format `fmt` where it was drawn in it, to folder/figures/ (numbered, so equal
        names never collide; named by `file_stem`, so a name can be written into HTML and LaTeX as it is);
        returns each figure's path relative to `folder`, by its `path`."""
        (folder / "figures").mkdir(parents=True, exist_ok=True)
        out = {}
        for k, figure in enumerate(self.figures):
            path = figure.file(fmt)
            suffix = Path(path).suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]+", Path(path).suffix) else ""
            name = f"{k:02d}-{file_stem(Path(path).stem)}{suffix}"
            shutil.copyfile(path, folder / "figures" / name)
            out[figure.path] = f"figures/{name}"
        return out


def plain(text: str) -> str:
    """`text` a user wrote (a cell's name or description) as deck text that reads exactly as written: each
    `$` escaped, so none of it opens math. Writers escape it for HTML and LaTeX like any other text."""
    return text.replace("$", "\\$")


def flat(blocks: list) -> list:
    """The blocks with those inside columns taken out, in reading order."""
    return [b for block in blocks for b in (flat(block.left) + flat(block.right) if isinstance(block, Columns)
                                            else [block])]


def split_math(text: str) -> list[tuple[bool, str]]:
    """[(is_math, piece), ...] for a text with `$...$` inline math (a `\\$` is a dollar sign)."""
    pieces, math, buf, k = [], False, "", 0
    while k < len(text):
        c = text[k]
        if c == "\\" and text[k + 1:k + 2] == "$":
            buf += "$" if not math else "\\$"
            k += 2
            continue
        if c == "$":
            pieces.append((math, buf))
            math, buf = not math, ""
        else:
            buf += c
        k += 1
    if math:
        raise ValueError(f"unbalanced $ in {text!r}")
    pieces.append((False, buf))
    return [(m, p) for m, p in pieces if p]
