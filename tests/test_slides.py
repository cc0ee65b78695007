"""Slide decks: the HTML deck renders every formula and image in a real browser (headless Chromium), the
Beamer deck compiles with pdflatex and rasterises; names are escaped; a missing TeX is a note."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gategraph
from gategraph.renderers import beamer
from gategraph.renderers.beamer import write_beamer
from gategraph.renderers.deck import Deck, Figure, Math, Note, Text, split_math
from gategraph.renderers.reveal import write_reveal
from tests.conftest import ROOT, needs_dot

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                    reason="Debian's chromium is not installed (CI installs it and never skips)")
needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None and not os.environ.get("CI"),
                               reason="pdflatex is not installed (CI installs it and never skips)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--virtual-time-budget=8000"]


def rendered(page) -> dict:
    """The deck's own check, read from <body> after Chromium has run its scripts and loaded its images."""
    dom = subprocess.run([CHROMIUM, *FLAGS, "--dump-dom", f"file://{page}"], capture_output=True, text=True,
                         timeout=120).stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))


@pytest.fixture(scope="module")
def lstm_deck(tmp_path_factory):
    out = tmp_path_factory.mktemp("slides")
    done = subprocess.run([sys.executable, "-m", "gategraph.cli", "slides", "lstm", "examples/mgu.py:mgu", "-o",
                           str(out), "--format", "html,pdf"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    return out


@needs_dot
@needs_chromium
def test_the_html_deck_renders_every_formula_and_image(lstm_deck):
    check = rendered(lstm_deck / "html" / "index.html")
    assert check["checked"] == "1"
    assert check["katex-errors"] == "0" and check["broken-images"] == "0" and check["raw-tex"] == "0", check
    assert check["overflowing-slides"] == "0", check  # a user's cell (examples/mgu.py) fits too
    assert int(check["slides"]) >= 15
    assert (lstm_deck / "html" / "katex" / "katex.min.js").exists()
    assert (lstm_deck / "html" / "katex" / "LICENSE").exists()  # the vendored files travel with their licence
    assert (lstm_deck / "html" / "reveal" / "dist" / "reveal.js").exists()
    assert (lstm_deck / "html" / "reveal" / "LICENSE").exists()


@needs_dot
@needs_chromium
def test_the_checker_sees_a_broken_formula(tmp_path):
    """The browser check can fail: a formula KaTeX refuses and a missing picture are both counted."""
    deck = Deck("broken")
    deck.add("bad", Math(r"x^^2"), Math(r"\frac{1}{"), Text("a stray \\frac left as text"))
    deck.add("fits", Text("one line"))
    deck.add("too long", Text("a line of prose\n" * 30, bullets=True))
    deck.add("too wide", Math(" + ".join(f"x_{{{k}}}" for k in range(80))))
    page = write_reveal(deck, tmp_path)
    (tmp_path / "index.html").write_text(page.read_text().replace("</section>", '<img src="nope.png"></section>', 1))
    check = rendered(page)
    assert check["katex-errors"] == "1"  # a double superscript: KaTeX's error element
    assert check["raw-tex"] == "2"  # an unclosed brace (KaTeX never sees it) and the stray \frac, left as text
    assert check["broken-images"] == "1"
    assert check["overflowing-slides"] == "2"  # thirty lines run off the bottom, eighty terms off the side


@needs_dot
@needs_tex
def test_the_beamer_deck_compiles_and_rasterises(lstm_deck, tmp_path):
    pdf = lstm_deck / "beamer" / "deck.pdf"
    assert pdf.stat().st_size > 20_000
    subprocess.run(["pdftoppm", "-png", "-r", "40", "-f", "2", "-l", "3", str(pdf), str(tmp_path / "p")], check=True)
    pages = sorted(tmp_path.glob("p-*.png"))
    assert len(pages) == 2 and all(p.stat().st_size > 2_000 for p in pages)
    tex = (lstm_deck / "beamer" / "deck.tex").read_text()
    assert r"\uncover<2->" in tex  # the derivation is revealed step by step


@needs_dot
def test_a_view_that_cannot_be_made_leaves_a_note_and_the_rest_of_the_deck_is_built(tmp_path):
    """A recurrence through a softmax over a memory has no step Jacobian as a product of matrices: that slide
    says so, in HTML and in Beamer, and every other slide of the cell is there."""
    formats = "html,pdf" if shutil.which("pdflatex") or os.environ.get("CI") else "html,beamer"
    done = subprocess.run([sys.executable, "-m", "gategraph.cli", "slides", "tests/user_cells.py:self_attending", "-o",
                           str(tmp_path), "--format", formats], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    note = "This view cannot be made for self attending: cannot write the Jacobian through ColSum as a product"
    assert f"note: self attending: how far back the gradient reaches: {note}" in done.stderr
    page, tex = (tmp_path / "html" / "index.html").read_text(), (tmp_path / "beamer" / "deck.tex").read_text()
    for text in (page, tex):
        assert text.count(note) == 1
        for title in ("one step", "the computation graph", "the backward step", "backpropagation through time",
                      "the gradient of", "unrolled over four steps", "how far back the gradient reaches",
                      "the gradients, checked"):
            assert f"self attending: {title}" in text, title
    assert len(list((tmp_path / "html" / "figures").glob("*.svg"))) == 2  # graphs as vector pictures
    assert len(list((tmp_path / "beamer" / "figures").glob("*.pdf"))) == 2
    if CHROMIUM:
        check = rendered(tmp_path / "html" / "index.html")
        assert check["katex-errors"] == "0" and check["broken-images"] == "0" and check["raw-tex"] == "0", check
    if "pdf" in formats:
        assert (tmp_path / "beamer" / "deck.pdf").stat().st_size > 20_000


def test_names_and_text_are_escaped(tmp_path):
    deck = Deck("<script>alert(1)</script> & co", "x < y")
    deck.add("a <b>bold</b> title", Text("5 < 6 & $a < b$"), Note("<i>", "warn"))
    html = write_reveal(deck, tmp_path).read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html and "&lt;b&gt;bold" in html
    assert "$a &lt; b$" in html  # math stays math, escaped for HTML, unescaped again by the browser
    tex = beamer.beamer_source(deck, {})
    assert r"\&" in tex and "$a < b$" in tex


def test_split_math():
    assert split_math("cost \\$5 for $x_t$ now") == [(False, "cost $5 for "), (True, "x_t"), (False, " now")]
    with pytest.raises(ValueError, match="unbalanced"):
        split_math("one $x")


def test_a_missing_tex_is_a_note(tmp_path, monkeypatch):
    real = shutil.which
    monkeypatch.setattr(beamer.shutil, "which", lambda name: None if name == "pdflatex" else real(name))
    deck = Deck("t")
    deck.add("s", Text("hello"))
    tex, pdf, why = write_beamer(deck, tmp_path)
    assert tex.exists() and pdf is None and "pdflatex is not installed" in why


def test_figures_travel_with_the_deck(tmp_path):
    picture = ROOT / "docs" / "adding.png"
    deck = Deck("t")
    deck.add("s", Figure(picture, "the adding problem"))
    page = write_reveal(deck, tmp_path / "out")
    assert (tmp_path / "out" / "figures" / "00-adding.png").exists()
    assert 'src="figures/00-adding.png"' in page.read_text()


@needs_dot
@needs_chromium
@needs_tex
def test_the_lecture_builds_renders_and_compiles(trained_lecture, tmp_path):
    lecture = trained_lecture
    check = rendered(lecture / "html" / "index.html")
    assert check["katex-errors"] == "0" and check["broken-images"] == "0" and check["raw-tex"] == "0", check
    page = (lecture / "html" / "index.html").read_text()
    for title in ("Outline", "Why gates: gradients that shrink or grow", "will I help with the homework?",
                  "The GRU", "The gradient of", "follow the same pattern", "Backpropagation through time",
                  "Many to many, for translation", "A word explained by what follows it", "A deep RNN, step by step",
                  "Encoder and decoder", "Teacher forcing, measured", "Three intuitions", "Three scores",
                  "Where attention lands, measured"):
        assert title in page, title
    assert "Not trained yet" not in page  # every trained slide has its result
    assert "6 of the 9 values claimed hold" in page
    # the forward GRU cannot see two steps ahead: the test says chance; the bidirectional one is far above it
    assert re.search(r"bidirectional GRU: scores (9\d|100)% of 9216 test items, above chance", page)
    assert re.search(r"forward GRU: scores 2\d% of 9216 test items, which is chance \(25%", page)
    assert "Over 5 seeds, the model first writes the line exactly after" in page
    # the runs trained on this machine's cores, each line naming the lecture's source as `gategraph lecture
    # --source` calls it, not the installed file's path
    said = (lecture.parent / f"{lecture.name}-build.log").read_text()
    assert re.search(r"^training 17 runs in this process( and on \d+ Dask workers?)?, the longest first$", said,
                     re.M), said
    assert re.search(r"^run \d+/17 gru-dates-\w+ for lecture\.md:581 \(Attention on dates\): trained, step 1500, "
                     r"test_exact_match [\d.]+, \d+ s \(\+[\d.]+ s compiling\)$", said, re.M), said
    pdf = lecture / "beamer" / "deck.pdf"
    pages = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert int(re.search(r"Pages:\s+(\d+)", pages).group(1)) >= 45  # the title and 49 slides
    subprocess.run(["pdftoppm", "-png", "-r", "30", "-f", "20", "-l", "20", str(pdf), str(tmp_path / "p")], check=True)
    assert list(tmp_path.glob("p-*.png"))


@needs_dot
def test_the_lecture_without_training_says_so(tmp_path):
    done = subprocess.run([sys.executable, "-m", "gategraph.cli", "lecture", "-o", str(tmp_path), "--no-train",
                           "--format", "html"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "html" / "index.html").read_text()
    assert page.count("Not trained yet") >= 6 and not (tmp_path / "runs").exists()


# --- cells with hostile names --------------------------------------------------------------------------------------

HOSTILE = '''
from gategraph import CellBuilder, concat, tanh


def named(name, doc=""):
    b = CellBuilder(name, doc)
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    W, bias = b.param("W", (H, H + X)), b.param("b", H)
    b.let("h", tanh(W @ concat(h, x) + bias))
    return b.cell()


def up():
    return named("../../evil")


def ab():
    return named("a/b")


def a_b():
    return named("a-b")


def tex_end():
    return named("x\\\\end{document}")


def tex():
    return named("my$cell\\\\&<b>{x}%_#~^", "costs $5, or \\\\$6 <i>with</i> & {braces}: 100% _#~^ \\\\end{document}")
'''


def _cli_in(folder, *args, **env):
    """`gategraph ARGS` run from `folder` (this checkout's gategraph, whatever the folder)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-m", "gategraph.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=folder, env=env, timeout=600)


@needs_dot
@needs_tex
def test_a_cell_name_never_steers_where_files_go(tmp_path):
    """Cells named `../../evil`, `a/b`, `a-b` and `x\\end{document}`: every file `slides` and `graph` write is
    inside the folder the user named (the figures' scratch folder too), each figure keeps its own file, and
    the PDF builds."""
    work, scratch = tmp_path / "work", tmp_path / "scratch" / "a" / "b"
    (work / "deep").mkdir(parents=True)
    scratch.mkdir(parents=True)
    (work / "cells.py").write_text(HOSTILE)
    refs = [f"cells.py:{f}" for f in ("up", "ab", "a_b", "tex_end")]
    done = _cli_in(work, "slides", *refs, "-o", "deep/out", "--no-check", "--format", "html,pdf", TMPDIR=scratch)
    assert done.returncode == 0, done.stderr
    for ref in refs[:2]:
        done = _cli_in(work, "graph", ref, "-o", "deep/graph.png", "--unroll", "3", "--highlight", "h",
                       TMPDIR=scratch)
        assert done.returncode == 0, done.stderr
    out = work / "deep" / "out"
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    stray = [p for p in files if out not in p.parents and p not in (work / "cells.py", work / "deep" / "graph.png")]
    assert stray == []
    figures = sorted(p.name for p in (out / "beamer" / "figures").iterdir())
    assert len(figures) == 8, figures  # two per cell: `a/b` and `a-b` do not share one
    tex = (out / "beamer" / "deck.tex").read_text()
    shown = re.findall(r"\\includegraphics\[[^]]*\]\{([^}]*)\}", tex)
    assert sorted(shown) == [f"figures/{f}" for f in figures]
    assert all(re.fullmatch(r"figures/[A-Za-z0-9_-]+\.pdf", f) for f in shown), shown
    assert (out / "beamer" / "deck.pdf").stat().st_size > 10_000


@needs_dot
@needs_tex
@needs_chromium
def test_a_cell_name_and_description_are_text_in_html_and_pdf(tmp_path):
    """A name and a description full of TeX and HTML specials (`$`, `\\`, `&`, `<b>`, `{}`, `%`, `_`, `#`, `~`,
    `^`, `\\end{document}`) are shown as written: the HTML deck escapes them and KaTeX leaves them alone, and
    pdflatex builds the PDF with them in its titles."""
    (tmp_path / "cells.py").write_text(HOSTILE)
    done = _cli_in(tmp_path, "slides", "cells.py:tex", "-o", "out", "--no-check", "--format", "html,pdf")
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "out" / "html" / "index.html").read_text()
    assert "my$cell\\&amp;&lt;b&gt;{x}%" in page and "<b>{x}" not in page  # `_` reads as a space in titles
    assert "costs $5, or \\$6 &lt;i&gt;with&lt;/i&gt; &amp; {braces}: 100% _#~^ \\end{document}" in page
    check = rendered(tmp_path / "out" / "html" / "index.html")
    assert check["katex-errors"] == "0" and check["broken-images"] == "0" and check["raw-tex"] == "0", check
    pdf = tmp_path / "out" / "beamer" / "deck.pdf"
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "my$cell\\&<b>{x}%" in text and "costs $5, or \\$6 <i>with</i> & {braces}: 100% _#~^" in text


def test_every_character_of_the_lectures_prose_has_a_glyph_in_the_pdf():
    """A character pdflatex cannot set becomes `?` in the PDF: the built-in lecture's text has none such (its
    ⇒ was one)."""
    lecture = (Path(gategraph.__file__).parent / "lecture.md").read_text(encoding="utf-8")
    for line in lecture.splitlines():
        assert beamer._text(line).count("?") == line.count("?"), line
    assert beamer._text("a ⇒ b") == "a $\\Rightarrow$ b"


@needs_tex
def test_text_in_any_script_builds_the_pdf(tmp_path):
    """pdflatex's fonts lack most of Unicode: Greek and a few symbols are set as math, Latin letters as they
    are, anything else (CJK, emoji, control characters) as `?` — the PDF builds; the HTML deck shows it all."""
    from gategraph.renderers.deck import plain

    name = "β-lstm für Łódź 中文 🙂"
    deck = Deck(plain(name), plain("Ωmega — “quoted” ≤ 3 ħ … \x07 ∞"))
    deck.add(plain(f"{name}: one step"), Text(plain("x ≠ y, ſ and Ŧ; ⟨s⟩ ‖a‖")), section=plain(name))
    _, pdf, _ = write_beamer(deck, tmp_path)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "für Łódź ?? ?" in text and "— “quoted”" in text
    assert re.search("[\u27e8\u2329\u3008]s[\u27e9\u232a\u3009] ‖a‖", text), text  # ⟨s⟩, as pdftotext reads it
    page = write_reveal(deck, tmp_path / "html").read_text()
    assert name in page and "Ωmega — “quoted” ≤ 3 ħ" in page
