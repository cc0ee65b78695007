"""Decks a lecturer writes in Markdown: a CommonMark source (parsed by markdown-it-py) read into the deck model.

    # Gated cells                      a section (the first slide, if it has only a `#` and text: the title)
    ## The forget gate                 a slide's title
    Text with $f_t$ and $$...$$ maths, - lists, 1. lists, | tables |, ![alt](figure.png "caption"), > a note
    ```{gategraph} derive lstm --param W_f --steps
    ```                                a view gategraph computes (renderers/views.py)
    Note: from here on, what the lecturer says (speaker notes, the reveal.js convention)
    ---                                the next slide

`read_source(path)` reads and checks the whole source — every directive's options, cells and runs — and
returns a `Source`; `Source.runs(folder)` lists the runs its slides show, `Source.sweeps(folder)` the sweeps,
and `Source.deck(room)` builds the deck. A mistake is one `SourceError`, `talk.md:12: what is wrong`. Text
the author wrote is text: raw HTML is shown as written, `$` opens maths only as Markdown maths, and every
writer escapes the rest.

Imports: markdown-it-py, mdit-py-plugins, gategraph.errors, renderers.deck, renderers.views.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin

from gategraph.errors import GategraphError, SourceError, ToolMissingError
from gategraph.renderers.deck import Deck, Figure, Math, Note, Table, Text, plain
from gategraph.renderers.views import Directive, Room, blocks, needed, parse, sweep_folder

DIRECTIVE = "{gategraph}"
IMAGES = (".png", ".jpg", ".jpeg")  # what both formats show: reveal.js in a browser and pdflatex
NOTE = re.compile(r"^Note:\s*")


def markdown() -> MarkdownIt:
    """CommonMark with tables and dollar maths; `---` always separates slides (no setext headings), and raw
    HTML is text."""
    md = MarkdownIt("commonmark").enable("table").disable(["lheading", "html_block", "html_inline"])
    dollarmath_plugin(md, allow_labels=False, double_inline=False)
    return md


@dataclass
class SourceSlide:
    title: str
    section: str
    where: str
    items: list = field(default_factory=list)  # deck blocks and Directives, in order
    notes: list = field(default_factory=list)


@dataclass
class Source:
    path: Path
    title: str
    subtitle: str
    slides: list

    @property
    def directives(self) -> list[tuple[SourceSlide, Directive]]:
        return [(s, d) for s in self.slides for d in s.items if isinstance(d, Directive)]

    def runs(self, folder: Path) -> list[tuple]:
        """The runs the slides show, each once: (run folder, Config, where, slide title)."""
        out, seen = [], set()
        for slide, d in self.directives:
            for path, config in needed(d, folder):
                if path not in seen:
                    seen.add(path)
                    out.append((path, config, d.where, slide.title))
        return out

    def sweeps(self, folder: Path) -> list[tuple]:
        """The sweeps the slides show, each once: (its folder under `folder`, its points, where, slide title)."""
        out = {}
        for slide, d in self.directives:
            if d.view == "sweep":
                out.setdefault(sweep_folder(d, folder), (d.points, d.where, slide.title))
        return [(path, *rest) for path, rest in out.items()]

    def deck(self, room: Room) -> Deck:
        """The deck, every directive's view built (trained views read their runs from `room.runs`)."""
        room.figures.mkdir(parents=True, exist_ok=True)
        deck = Deck(self.title, self.subtitle)
        for s in self.slides:
            made = []
            for item in s.items:
                if not isinstance(item, Directive):
                    made.append(item)
                    continue
                try:
                    made.extend(blocks(item, room))
                except ToolMissingError:  # the machine lacks a program: its own message says what to install
                    raise
                except GategraphError as e:
                    raise SourceError(f"{item.where}: {e}") from None
            deck.add(s.title, *made, section=s.section, notes=s.notes, where=s.where)
        return deck


def _tex_mistake(latex: str) -> str:
    """What is visibly wrong with the author's TeX (unbalanced braces or environments), or ""."""
    depth, envs = 0, []
    for m in re.finditer(r"\\[\\{}]|\\(begin|end)\{(\w+\*?)\}|[{}]", latex):
        tok = m.group(0)
        if tok in ("\\{", "\\}", "\\\\"):  # braces as characters, and a line break
            continue
        if m.group(1) == "begin":
            envs.append(m.group(2))
        elif m.group(1) == "end":
            if not envs or envs.pop() != m.group(2):
                return f"\\end{{{m.group(2)}}} without its \\begin{{{m.group(2)}}}"
        elif tok == "{":
            depth += 1
        else:
            depth -= 1
            if depth < 0:
                return "a } closes no {"
    if depth:
        return f"{depth} {{ not closed"
    return f"\\begin{{{envs[-1]}}} not ended" if envs else ""


class _Reader:
    """Walks markdown-it's block tokens of one source, slide by slide."""

    def __init__(self, path: Path, name: str):
        self.path, self.name, self.base = path, name, path.parent

    def where(self, token) -> str:
        return f"{self.name}:{(token.map[0] if token.map else 0) + 1}"

    def fail(self, token, what: str):
        raise SourceError(f"{self.where(token)}: {what}")

    def inline(self, token) -> tuple[str, list]:
        """Deck text of an inline token (its maths kept, every other `$` a dollar) and the images in it."""
        text, images = [], []
        for t in token.children or []:
            if t.type in ("text", "code_inline"):
                text.append(plain(t.content))
            elif t.type == "math_inline":
                mistake = _tex_mistake(t.content)
                if mistake:
                    self.fail(token, f"in the maths ${t.content}$: {mistake}")
                text.append(f"${t.content}$")
            elif t.type in ("softbreak", "hardbreak"):
                text.append(" ")
            elif t.type == "image":
                images.append(self.image(token, t))
        return "".join(text).strip(), images

    def image(self, token, t) -> Figure:
        src, title = t.attrs.get("src", ""), t.attrs.get("title") or ""
        if re.match(r"^[a-z][a-z0-9+.-]*:", src, re.I):
            self.fail(token, f"image {src!r}: a deck shows files beside its source, not addresses")
        path = self.base / src
        if not path.is_file():
            self.fail(token, f"image {src!r}: no such file beside {self.name}")
        if path.suffix.lower() not in IMAGES:
            self.fail(token, f"image {src!r}: give a PNG or JPEG (both the HTML and the PDF show those)")
        return Figure(path, plain(title), where=self.where(token))

    def read(self, text: str) -> Source:
        tokens = markdown().parse(text)
        chunks, chunk = [], []
        for t in tokens:
            if t.type == "hr" and t.level == 0:
                chunks.append(chunk)
                chunk = []
            else:
                chunk.append(t)
        chunks.append(chunk)
        title, subtitle, slides, section = self.path.stem, "", [], ""
        for n, chunk in enumerate(c for c in chunks if c):
            slide = self.slide(chunk, section)
            section = slide.section
            if n == 0 and slide.title == section and not slide.notes and \
                    all(isinstance(b, Text) and not b.bullets for b in slide.items):
                title, subtitle = section, " ".join(b.text for b in slide.items)  # the title slide
                section = ""
                continue
            if slide.items or slide.title != section:
                slides.append(slide)
        if not slides:
            raise SourceError(f"{self.name}:1: no slides: give each a title (## Title), separated by ---")
        source = Source(self.path, title, subtitle, slides)
        specs = {}
        for _, d in source.directives:
            if d.view == "sweep":
                spec = specs.setdefault(d.args.spec.stem, d.args.spec)
                if spec.resolve() != d.args.spec.resolve():
                    raise SourceError(f"{d.where}: the sweeps {spec} and {d.args.spec} would share the folder "
                                      f"sweeps/{spec.stem}: rename one")
        return source

    def slide(self, chunk: list, section: str) -> SourceSlide:
        s = SourceSlide("", section, self.where(chunk[0]))
        notes, k = False, 0
        while k < len(chunk):
            t = chunk[k]
            if t.type == "heading_open":
                text, _ = self.inline(chunk[k + 1])
                if t.tag == "h1":
                    s.section = text
                elif t.tag == "h2":
                    if s.title:
                        self.fail(t, f"a second title ({text!r}) on one slide: separate slides with ---")
                    s.title = text
                else:
                    (s.notes if notes else s.items).append(text if notes else Text(text, where=self.where(t)))
                k += 3
                continue
            if t.type == "paragraph_open":
                text, images = self.inline(chunk[k + 1])
                if NOTE.match(text):
                    notes, text = True, NOTE.sub("", text)
                if notes:
                    if images:
                        self.fail(t, "speaker notes hold text, not images")
                    s.notes += [text] if text else []
                else:
                    s.items += ([Text(text, where=self.where(t))] if text else []) + images
                k += 3
                continue
            end = self._end(chunk, k)
            if t.type in ("bullet_list_open", "ordered_list_open"):
                items = [self.inline(i)[0] for i in chunk[k:end] if i.type == "inline"]
                if notes:
                    s.notes += items
                else:
                    s.items.append(Text("\n".join(items), bullets=True, numbered=t.type == "ordered_list_open",
                                        where=self.where(t)))
            elif t.type == "blockquote_open":
                said = " ".join(self.inline(i)[0] for i in chunk[k:end] if i.type == "inline")
                (s.notes.append(said) if notes else s.items.append(Note(said, where=self.where(t))))
            elif t.type == "table_open":
                s.items.append(self.table(chunk[k:end]))
            elif t.type == "math_block":
                mistake = _tex_mistake(t.content)
                if mistake:
                    self.fail(t, f"in the maths: {mistake}")
                s.items.append(Math(t.content.strip(), where=self.where(t)))
            elif t.type == "fence" and t.info.strip().startswith(DIRECTIVE):
                if notes:
                    self.fail(t, "a directive in the speaker notes: put it above the Note: line")
                try:
                    s.items.append(parse(t.info.strip()[len(DIRECTIVE):], t.content, self.where(t), self.base))
                except ToolMissingError:
                    raise
                except GategraphError as e:
                    self.fail(t, str(e))
            elif t.type in ("fence", "code_block"):
                self.fail(t, f"a code block: a deck shows what gategraph computes with ```{DIRECTIVE} VIEW ...``` "
                             "blocks (equations, graph, derive, check, jacobian, example, structure, train, sweep)")
            k = end
        if not s.title:
            s.title = s.section
        if not s.title:
            self.fail(chunk[0], "a slide without a title: begin it with ## Title (or # Section)")
        return s

    @staticmethod
    def _end(chunk: list, k: int) -> int:
        """The index after the block that starts at k (its closing token, for a nested block)."""
        if chunk[k].nesting != 1:
            return k + 1
        depth = 0
        for j in range(k, len(chunk)):
            depth += chunk[j].nesting
            if depth == 0:
                return j + 1
        return len(chunk)

    def table(self, tokens: list) -> Table:
        rows, row, align, head = [], [], [], True
        for t in tokens:
            if t.type == "tr_open":
                row = []
            elif t.type in ("th_open", "td_open"):
                if head:
                    style = t.attrs.get("style", "")
                    align.append(style.split(":")[-1] if style else "left")
            elif t.type == "inline":
                row.append(self.inline(t)[0])
            elif t.type == "tr_close":
                rows.append(row)
                head = False
        return Table(rows[0], rows[1:], align, where=self.where(tokens[0]))


def read_source(path: str | Path, name: str | None = None) -> Source:
    """The source at `path`, read and checked (see the module's docstring); its places are named `name:LINE`
    (the path as given unless `name` is)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise SourceError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return _Reader(path, name or str(path)).read(text)
