"""The Beamer writer: a deck as a LaTeX Beamer source and, where pdflatex exists, its PDF.

`write_beamer(deck, folder)` writes `folder/deck.tex` (figures copied to `folder/figures/`, as PDF where they
were drawn so, each the same share of the page as of the HTML slide) and compiles it
with pdflatex (TeX Live: texlive-latex-recommended, texlive-pictures, lmodern). Steps of a
derivation become overlays (`\\uncover<k->`), one per press. Text is set in what pdflatex's fonts have: a
character they lack (CJK, emoji) is printed as `?`, the HTML deck shows it. Without pdflatex the .tex is
written and the result says why there is no PDF; a TeX error is one line quoting TeX's first complaint.

Imports: the standard library, gategraph.files, gategraph.errors, renderers.deck, renderers.latex, renderers.layout.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
import unicodedata
from pathlib import Path

from gategraph.errors import RenderError
from gategraph.files import atomic_write
from gategraph.renderers.deck import Columns, Deck, Figure, Math, Note, Table, Text, split_math
from gategraph.renderers.latex import TEXT_MATH, text_in_latex
from gategraph.renderers.layout import HEIGHT, WIDTH

PREAMBLE = r"""\documentclass[aspectratio=169,11pt]{beamer}
\usepackage[T1]{fontenc}
\usepackage[utf8]{inputenc}
\usepackage{lmodern}
\usepackage{amsmath,amssymb}
\usepackage{graphicx}
\usepackage{array}
\setbeamertemplate{navigation symbols}{}
\setbeamersize{text margin left=6.75mm,text margin right=6.75mm}  % the HTML slide's padding, 54 of 1280 px
\setbeamertemplate{footline}[frame number]
\setbeamercolor{frametitle}{fg=blue!50!black}
\setbeamerfont{frametitle}{size=\large}
\usefonttheme[onlymath]{serif}
\setbeamertemplate{blocks}[rounded][shadow=false]
\setbeamercolor{block body}{bg=blue!6}
\setbeamercolor{block body alerted}{bg=orange!12}
"""


BODY = 0.82  # the share of \textheight under a frame's title


# what pdflatex sets in text with T1 and lmodern: printable ASCII and every character the installed LaTeX
# declares for text (Latin-1, most of Latin Extended-A, ⟨ ‖ “ — …) but Greek and Cyrillic, which need fonts
# of their own; Greek letters and a few symbols go to math; any other character is printed as `?`
ENCODINGS = ("t1enc.dfu", "ts1enc.dfu", "omsenc.dfu", "utf8enc.dfu")
OTHER_FONTS = range(0x370, 0x530)  # Greek and Cyrillic
FALLBACK_TEXT = (set(map(chr, range(0xA0, 0x180))) | set("–—‘’‚“”„†‡•…‰‹›€™←⟨⟩‖")) - set("ĦħĸĿŀŉŦŧſ")


@functools.cache
def pdf_text() -> frozenset:
    """The characters pdflatex sets in text here, read from the installed LaTeX's encoding files."""
    chars = set(map(chr, range(0x20, 0x7F))) | set("\t\n")
    found = shutil.which("kpsewhich") and subprocess.run(["kpsewhich", *ENCODINGS], capture_output=True,
                                                          text=True, timeout=60).stdout.split()
    if not found:
        return frozenset(chars | FALLBACK_TEXT)
    for path in found:
        text = Path(path).read_text(errors="replace")
        codes = {int(code, 16) for code in re.findall(r"\\DeclareUnicodeCharacter\{([0-9A-Fa-f]+)\}", text)}
        chars |= {chr(code) for code in codes if code >= 0xA0 and code not in OTHER_FONTS}
    return frozenset(chars)


GREEK_CAPITALS = {"GAMMA", "DELTA", "THETA", "LAMDA", "XI", "PI", "SIGMA", "UPSILON", "PHI", "PSI", "OMEGA"}
PDF_MATH = {"≤": r"\le", "≥": r"\ge", "≠": r"\ne", "∞": r"\infty", "′": r"'", "±": r"\pm", "×": r"\times",
            "⇒": r"\Rightarrow", "⇐": r"\Leftarrow", "⇔": r"\Leftrightarrow", "←": r"\leftarrow",
            "↔": r"\leftrightarrow", "∈": r"\in", "∑": r"\sum", "∏": r"\prod", "∇": r"\nabla", "∘": r"\circ",
            "≡": r"\equiv", "∼": r"\sim", "⊗": r"\otimes", "√": r"\surd"}


def _pdf_math(ch: str) -> str | None:
    """A character pdflatex has no text glyph for, as math: `β` -> `\\beta`; None if there is none."""
    if ch in PDF_MATH:
        return PDF_MATH[ch]
    name = unicodedata.name(ch, "")
    for case in ("SMALL", "CAPITAL"):
        prefix = f"GREEK {case} LETTER "
        if name.startswith(prefix) and " " not in name[len(prefix):]:
            letter = {"LAMDA": "LAMBDA", "FINAL SIGMA": "VARSIGMA"}.get(name[len(prefix):], name[len(prefix):])
            if case == "SMALL" and letter != "OMICRON":
                return "\\" + letter.lower()
            if case == "CAPITAL" and name[len(prefix):] in GREEK_CAPITALS:
                return "\\" + letter.capitalize()
    return None


def _prose(text: str) -> str:
    """Text for pdflatex: TeX's specials escaped, every character one its fonts can set (see `pdf_text`)."""
    out = []
    for ch in text:
        if ch in TEXT_MATH or ch in pdf_text():
            out.append(text_in_latex(ch))
        else:
            math = _pdf_math(ch)
            out.append(f"${math}$" if math else "?")
    return "".join(out)


def _text(text: str) -> str:
    return "".join(f"${p}$" if math else _prose(p) for math, p in split_math(text))


WHERE = "%% from "  # a comment before each block made from a source: a TeX error in it is reported there


def _block(block, figures: dict) -> str:
    """A block as Beamer source, after a comment naming its place in the source it came from, if any."""
    where = getattr(block, "where", "")
    return (f"{WHERE}{where}\n" if where else "") + _tex(block, figures)


COLUMN = {"left": "l", "center": "c", "right": "r"}


LINE_CHARS = 70  # characters of \small text in a line of the frame, about; a wider table wraps its cells


def _columns(table: Table) -> str:
    """A table's column types: as aligned, or, when its longest cells would not fit in a line side by side,
    wrapping columns: a column whose longest cell fits its equal share keeps that width, the others share
    the rest by their longest cells."""
    n = len(table.header)
    align = (list(table.align) + ["left"] * n)[:n]
    chars = [max(len(re.sub(r"\\[a-zA-Z]+|[${}_^]", "", row[k])) if k < len(row) else 0
                 for row in [table.header, *table.rows]) + 1 for k in range(n)]
    room = LINE_CHARS - 3 * n
    if sum(chars) <= room:
        return "".join(COLUMN.get(a, "l") for a in align)
    narrow = [c for c in chars if c <= room / n]  # these keep their width; the others share what is left
    wide = sum(c for c in chars if c > room / n)
    share = [c / LINE_CHARS if c <= room / n else (room - sum(narrow)) * c / wide / LINE_CHARS for c in chars]
    return "".join(f">{{\\raggedright\\arraybackslash}}p{{{w:.3f}\\linewidth}}" for w in share)


def _tex(block, figures: dict) -> str:
    if isinstance(block, Text):
        if block.bullets:
            items = "\n".join(f"  \\item {_text(line)}" for line in block.text.splitlines() if line.strip())
            env = "enumerate" if block.numbered else "itemize"
            return f"\\begin{{{env}}}\n{items}\n\\end{{{env}}}"
        return _text(block.text) + "\n"
    if isinstance(block, Table):
        cols = _columns(block)
        rows = [" & ".join(_text(c) for c in row) + r" \\" for row in [block.header, *block.rows]]
        return ("\\begin{center}\\begin{tabular}{" + cols + "}\n" + rows[0] + " \\hline\n" + "\n".join(rows[1:])
                + "\n\\end{tabular}\\end{center}")
    if isinstance(block, Math):
        parts = block.parts or [block.latex]
        if block.scale < 0.9:
            return f"{{\\footnotesize\n{_tex(Math(block.latex, block.parts, block.steps), figures)}\n}}"
        if block.steps:
            return "\n".join(f"\\uncover<{k + 1}->{{\\[ {p} \\]}}" for k, p in enumerate(parts))
        return "\n".join(f"\\[ {p} \\]" for p in parts)
    if isinstance(block, Figure):
        cap = f"\n\n{{\\small {_text(block.caption)}}}" if block.caption else ""
        tall = f"{block.height * BODY:.2f}" if block.height else "0.62"  # the share of the body left to it
        size = (f"width={block.size[0] / WIDTH:.4f}\\paperwidth,height={block.size[1] / HEIGHT:.4f}\\paperheight"
                if block.size else f"width={block.width:.2f}\\linewidth,height={tall}\\textheight")  # as in HTML
        name = figures[block.path]  # the log says the size each figure got (`\\typeout`), for the tests
        return (f"\\begin{{center}}\\sbox0{{\\includegraphics[{size},keepaspectratio]{{{name}}}}}"
                f"\\typeout{{figure {name}: \\the\\wd0 \\space of \\the\\paperwidth}}\\usebox0{cap}\\end{{center}}")
    if isinstance(block, Note):
        env = "alertblock" if block.kind == "warn" else "block"
        return f"\\begin{{{env}}}{{}}\n{_text(block.text)}\n\\end{{{env}}}"
    if isinstance(block, Columns):
        left, right = ("\n".join(_block(b, figures) for b in side) for side in (block.left, block.right))
        return (f"\\begin{{columns}}[T]\n\\begin{{column}}{{{block.split - 0.01:.3f}\\textwidth}}\n{left}\n"
                f"\\end{{column}}\n\\begin{{column}}{{{0.99 - block.split:.3f}\\textwidth}}\n{right}\n"
                "\\end{column}\n\\end{columns}")
    raise TypeError(f"no Beamer for {type(block).__name__}")


def beamer_source(deck: Deck, figures: dict, notes: bool = False) -> str:
    """The deck as Beamer source; each slide's notes are `\\note{}`s, printed as notes pages with `notes`."""
    body = [f"\\title{{{_text(deck.title)}}}", f"\\subtitle{{{_text(deck.subtitle)}}}", "\\date{}",
            "\\begin{document}", "\\begin{frame}\\titlepage\\end{frame}"]
    section = None
    for slide in deck.slides:
        if slide.section and slide.section != section:
            section = slide.section
            body.append(f"\\section{{{_text(section)}}}")
        blocks = "\n".join(_block(b, figures) for b in slide.blocks)
        said = "".join(f"\n\\note[item]{{{_text(n)}}}" for n in getattr(slide, "notes", []))
        body.append(f"\\begin{{frame}}{{{_text(slide.title)}}}\n\\small\n{blocks}{said}\n\\end{{frame}}")
    show = "\\setbeameroption{show notes}\n" if notes else ""
    return PREAMBLE + show + "\n".join(body) + "\n\\end{document}\n"


def _failure(log: str, tex: Path) -> str:
    """pdflatex's first complaint in one line; where the failing line came from a source (a `WHERE` comment
    above it), that place first: `talk.md:12: ...`."""
    lines = log.splitlines()
    k = next((i for i, line in enumerate(lines) if line.startswith("!")), None)
    if k is None:
        return f"pdflatex failed on {tex}: no message"
    at = next((re.match(r"l\.(\d+)", line) for line in lines[k:k + 12] if re.match(r"l\.\d+", line)), None)
    source = ""
    if at:
        before = tex.read_text(errors="replace").splitlines()[:int(at.group(1))]
        source = next((line[len(WHERE):].strip() for line in reversed(before) if line.startswith(WHERE)), "")
    what = lines[k]
    return f"{source}: TeX cannot set this ({what.lstrip('! ')}); pdflatex failed on {tex}" if source else \
        f"pdflatex failed on {tex}: {what}"


def write_beamer(deck: Deck, folder: str | Path, pdf: bool = True, notes: bool = False
                 ) -> tuple[Path, Path | None, str]:
    """(the .tex, the PDF or None, a note on why there is no PDF); with `notes`, deck-notes.tex and its PDF,
    each slide followed by a page of its speaker notes."""
    name = "deck-notes" if notes else "deck"
    folder = Path(folder)
    figures = deck.copy_figures(folder, "pdf")
    tex = atomic_write(folder / f"{name}.tex", beamer_source(deck, figures, notes).encode())
    if not pdf:
        return tex, None, "the PDF was not asked for"
    if shutil.which("pdflatex") is None:
        return tex, None, (f"pdflatex is not installed, so only {name}.tex was written (Debian: apt-get install "
                           "texlive-latex-recommended texlive-pictures lmodern, or run scripts/setup.sh)")
    with tempfile.TemporaryDirectory(prefix="gategraph-beamer-") as work:
        shutil.copytree(folder / "figures", Path(work) / "figures")
        shutil.copyfile(tex, Path(work) / f"{name}.tex")
        for _ in range(2):  # the second run settles the frame numbers
            done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"], cwd=work,
                                  capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RenderError(_failure(done.stdout, tex))
        pdf_path = atomic_write(folder / f"{name}.pdf", (Path(work) / f"{name}.pdf").read_bytes())
    return tex, pdf_path, ""
