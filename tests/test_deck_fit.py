"""Every slide fits, as a lecturer would see it: the reveal.js deck walked in Chromium (driven by Playwright)
at three screen sizes, pressing → through every slide and every step, with nothing outside the slide and no
box hiding part of what it holds; the Beamer deck compiled by pdflatex without an overfull box over 1 pt; and
the two looks of one deck agree slide for slide."""

import html
import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT, SLIDES, deck_pages, needs_browser, needs_dot

needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None and not os.environ.get("CI"),
                               reason="pdflatex is not installed (CI installs it and never skips)")
SIZES = [(1280, 720), (1024, 768), (1920, 1080)]

# what does not fit on the present slide, every step shown so far: elements sticking out of the slide, and
# boxes whose content is larger than what they show (KaTeX's own inner struts excepted)
MISFITS = """() => {
  const slide = Reveal.getCurrentSlide(), box = slide.getBoundingClientRect();
  const scale = box.width / slide.offsetWidth, tol = 1.5 * scale, found = [];
  const name = e => e.tagName.toLowerCase() + (e.className && typeof e.className === 'string' ?
    '.' + e.className.trim().split(/\\s+/).join('.') : '');
  for (const e of slide.querySelectorAll('*')) {
    // the speaker's notes, steps not yet shown, KaTeX's MathML copy for screen readers (clipped to nothing on
    // purpose) and the inside of SVG drawings (a glyph's path is cut by its svg box) are not what one sees
    if (e.closest('aside.notes, .fragment:not(.visible), .katex-mathml') || e.parentElement.closest('svg'))
      continue;
    const style = getComputedStyle(e), r = e.getBoundingClientRect();
    if (style.visibility === 'hidden' || style.display === 'none' || r.width === 0 || r.height === 0) continue;
    const past = Math.max(box.left - r.left, r.right - box.right, box.top - r.top, r.bottom - box.bottom);
    if (past > tol) found.push(`${name(e)} sticks out by ${Math.round(past / scale)} px`);
    if (!e.closest('.katex') && style.overflow !== 'visible' &&
        (e.scrollHeight > e.clientHeight + 1 || e.scrollWidth > e.clientWidth + 1))
      found.push(`${name(e)} clips its content (${e.scrollWidth}x${e.scrollHeight} in ` +
                 `${e.clientWidth}x${e.clientHeight})`);
    const column = e.parentElement.closest('.column');  // two columns side by side: neither runs into the other
    if (column) {
      const c = column.getBoundingClientRect();
      const wide = Math.max(c.left - r.left, r.right - c.right);
      if (wide > tol) found.push(`${name(e)} runs ${Math.round(wide / scale)} px out of its column`);
    }
  }
  return found;
}"""


def walk(page) -> dict:
    """Press → from the first slide to the last step of the last; {slide title: what did not fit}."""
    page.keyboard.press("Home")
    misfits, seen = {}, 0
    while True:
        title = page.evaluate("(Reveal.getCurrentSlide().querySelector('h1, h2') || {}).textContent || ''")
        where = f"{page.evaluate('Reveal.getIndices().h') + 1} {title.strip()}"
        for problem in page.evaluate(MISFITS):
            if problem not in misfits.setdefault(where, []):
                misfits[where].append(problem)
        seen += 1
        if page.evaluate("Reveal.isLastSlide() && !Reveal.availableFragments().next"):
            return misfits
        page.keyboard.press("ArrowRight")
        assert seen < 1000, "the walk does not end"


@needs_dot
@needs_browser
@pytest.mark.parametrize("name", ["trained lecture", "lecture", SLIDES])
def test_every_slide_fits_at_every_size(decks, name):
    page_path = decks[name] / "html" / "index.html"
    failures = {}
    with deck_pages() as open_deck:
        for width, height in SIZES:
            page = open_deck(page_path, width, height)
            slides = int(page.evaluate("document.body.dataset.slides"))
            own = page.evaluate("document.body.dataset.overflowingSlides")
            misfits = walk(page)
            if misfits or own != "0":
                failures[f"{width}x{height}"] = {"the page's own count": own, **misfits}
            assert slides >= 10
            page.close()
    assert not failures, "\n".join(f"{size}: {k}: {v if isinstance(v, str) else v[:4]}"
                                   for size, found in failures.items() for k, v in found.items())


OVERFULL = re.compile(r"^(Overfull \\[hv]box) \(([\d.]+)pt too \w+\) (.*)$", re.M)


def compiled(folder, tmp_path):
    """A copy of a Beamer folder compiled by pdflatex (twice: the second run settles the frame list)."""
    work = tmp_path / folder.parent.name
    shutil.copytree(folder, work)
    for _ in range(2):
        subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "deck.tex"], cwd=work,
                       capture_output=True, timeout=600, check=True)
    return work


def overfull(folder, tmp_path) -> list[str]:
    """pdflatex's complaints about boxes more than 1 pt too large, with where they are."""
    log = (compiled(folder, tmp_path) / "deck.log").read_text(errors="replace")
    return [f"{kind} {pt} pt {where}" for kind, pt, where in OVERFULL.findall(log) if float(pt) > 1.0]


@needs_dot
@needs_tex
@pytest.mark.parametrize("name", ["trained lecture", "lecture", SLIDES])
def test_the_beamer_deck_has_no_overfull_box(decks, name, tmp_path):
    found = overfull(decks[name] / "beamer", tmp_path)
    assert not found, f"{len(found)} overfull boxes:\n" + "\n".join(found)


def html_titles(page) -> list[str]:
    """The title of every slide of a reveal.js deck, in order (the title slide's included)."""
    found = re.findall(r'<section[^>]*>(?:<div class="section">.*?</div>)?<h[12]>(.*?)</h[12]>', page.read_text(), re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", t)) for t in found]


def pdf_titles(work) -> list[str]:
    """The title of every frame of a compiled Beamer deck, in order: the first line of the frame's first page
    (its overlays are further pages of the same frame, listed in the .nav file Beamer writes)."""
    nav = (work / "deck.nav").read_text()
    firsts = [int(a) for a, _ in re.findall(r"\\beamer@framepages \{(\d+)\}\{(\d+)\}", nav)]
    text = subprocess.run(["pdftotext", "-layout", str(work / "deck.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout.split("\f")
    return [next((line.strip() for line in text[k - 1].splitlines() if line.strip()), "") for k in firsts]


def words(title: str) -> str:
    """A title's words before any maths, spaced alike, quotes and dashes plain (KaTeX and pdflatex set maths
    differently, and TeX turns ' into ’)."""
    title = title.translate({0x2018: "'", 0x2019: "'", 0x201C: '"', 0x201D: '"', 0x2013: "-", 0x2014: "-"})
    return " ".join(re.split(r"\$|[^\x00-\u024f]", title)[0].split())


@needs_dot
@needs_tex
@pytest.mark.parametrize("name", ["trained lecture", SLIDES])
def test_both_looks_have_the_same_slides_in_the_same_order(decks, name, tmp_path):
    """The reveal.js deck and the PDF show the same slides (a PDF frame's overlays are one slide), titled alike."""
    shown = html_titles(decks[name] / "html" / "index.html")
    printed = pdf_titles(compiled(decks[name] / "beamer", tmp_path))
    assert len(shown) == len(printed), f"{len(shown)} slides in HTML, {len(printed)} frames in the PDF"
    differ = [(k + 1, a, b) for k, (a, b) in enumerate(zip(shown, printed, strict=True))
              if k and not words(b).startswith(words(a))]  # the title slide prints the deck's title on lines of its own
    assert not differ, differ[:5]


def test_the_log_reader_sees_an_overfull_box(tmp_path):
    """The Beamer check can fail: a planted 2-pt overfull box is reported, half a point is let pass."""
    if shutil.which("pdflatex") is None and not os.environ.get("CI"):
        pytest.skip("pdflatex is not installed")
    folder = tmp_path / "planted" / "beamer"
    folder.mkdir(parents=True)
    (folder / "deck.tex").write_text("\\documentclass{article}\\begin{document}\n"
                                     "\\hbox to 10pt{\\hskip 12pt}\n\\hbox to 10pt{\\hskip 10.5pt}\n"
                                     "\\end{document}\n")
    found = overfull(folder, tmp_path / "work")
    assert len(found) == 1 and found[0].startswith("Overfull \\hbox 2.0 pt"), found


def test_a_long_derivation_continues_on_the_next_slide():
    from gategraph.renderers.deck import Deck, Math, Text
    from gategraph.renderers.layout import BODY_HEIGHT, fit, height

    deck = Deck("t")
    rows = [rf"\frac{{\partial L}}{{\partial x_{k}}} &= \sum_t a_{k} b_{k}" for k in range(14)]
    deck.add("derived", Text("the chain rule, step by step"), Math(parts=rows, steps=True), notes=["say why"])
    assert fit(deck) == []
    titles = [s.title for s in deck.slides]
    assert titles[0] == "derived" and all(t == "derived (continued)" for t in titles[1:]) and len(titles) >= 2
    shown = [p for s in deck.slides for b in s.blocks if isinstance(b, Math) for p in b.parts]
    assert shown == rows  # every step, in order, none twice
    assert all(sum(height(b) for b in s.blocks) <= BODY_HEIGHT for s in deck.slides)
    assert deck.slides[0].notes == ["say why"]


def test_a_slide_that_cannot_fit_is_named_in_one_line():
    from gategraph.renderers.deck import Deck, Text
    from gategraph.renderers.layout import fit

    deck = Deck("t")
    deck.add("a wall of text", Text("word " * 2000))
    (problem,) = fit(deck)
    assert "'a wall of text' does not fit" in problem and "\n" not in problem


def test_a_figure_gets_the_room_left_under_the_text():
    from gategraph.renderers.deck import Deck, Figure, Text
    from gategraph.renderers.layout import fit

    deck = Deck("t")
    short = deck.add("short", Text("one line"), Figure(ROOT / "docs" / "adding.png"))
    long = deck.add("long", Text("a line\n" * 5, bullets=True), Figure(ROOT / "docs" / "adding.png"))
    fit(deck)
    assert 0.8 < short.blocks[1].height <= 1 and long.blocks[1].height < short.blocks[1].height


def test_speaker_notes_go_to_the_notes_not_the_slide(tmp_path):
    """A slide's notes are reveal.js notes (S shows them) and Beamer \\note{}s; with notes=True the PDF has a
    notes page after each slide that has notes."""
    from gategraph.renderers.beamer import write_beamer
    from gategraph.renderers.deck import Deck, Text
    from gategraph.renderers.reveal import write_reveal

    deck = Deck("t")
    deck.add("one", Text("what the students read"), notes=["one step per key press"])
    deck.add("two", Text("more"))
    page = write_reveal(deck, tmp_path / "html").read_text()
    slide = page[page.index("what the students read"):]
    assert '<aside class="notes"><p>one step per key press</p></aside>' in slide[:slide.index("</section>")]
    tex, pdf, _ = write_beamer(deck, tmp_path / "beamer", pdf=shutil.which("pdflatex") is not None, notes=True)
    assert r"\note[item]{one step per key press}" in tex.read_text() and tex.name == "deck-notes.tex"
    if pdf:
        pages = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
        assert int(re.search(r"Pages:\s+(\d+)", pages).group(1)) == 3 + 1  # title, two slides, one notes page
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        assert "one step per key press" in text
    plain, _, _ = write_beamer(deck, tmp_path / "beamer", pdf=False)
    assert "show notes" not in plain.read_text()


@needs_dot
def test_the_lecture_speaks_about_the_tool_only_in_its_notes(decks):
    page = (decks["lecture"] / "html" / "index.html").read_text()
    shown = re.sub(r'<aside class="notes">.*?</aside>', "", page, flags=re.S)
    for said in ("is computed by gategraph from the cells", "also proves it exact with SymPy",
                 "the lines below say where each adjoint comes from"):
        assert said in page and said not in shown, said
    tex = (decks["lecture"] / "beamer" / "deck.tex").read_text()
    assert r"\note[item]{Every equation, graph and number in this deck is computed by gategraph" in tex
