"""Every figure reads, as a student sees it: shown on a 1280×720 screen, the smallest text of each figure (its
font size, from the size Graphviz or matplotlib set it at, times the scale the slide shows the picture at) is at
least 12 px high; and each figure takes the same share of the slide's width in the HTML deck as in the PDF."""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SLIDES, deck_pages, needs_browser, needs_dot
from tests.test_deck_fit import needs_tex

READABLE = 12  # px
SAME_SHARE = 0.01  # of the slide's width: how far a figure's width in the PDF may be from that in HTML

# every figure of every slide, as shown: the box the <img> is laid out in (screen px, reveal.js's scale included)
# and the slide's own box
FIGURES = """() => {
  const out = [];
  Reveal.getSlides().forEach((slide, k) => {
    Reveal.slide(k);
    const box = slide.getBoundingClientRect();
    slide.querySelectorAll('figure img').forEach(img => {
      const r = img.getBoundingClientRect();
      out.push({slide: k + 1, title: (slide.querySelector('h2') || {}).textContent || '',
                src: img.getAttribute('src'), width: r.width, height: r.height, slideWidth: box.width});
    });
  });
  return out;
}"""


def natural(svg: Path) -> tuple[float, float, float]:
    """(width, height, smallest text) of an SVG in its own units: the text sizes its writer marked (Graphviz
    draws text as outlines), else those of its text elements (matplotlib keeps text as text)."""
    data = svg.read_text(errors="replace")
    root = re.search(r"<svg\b[^>]*>", data).group(0)
    w, h = map(float, re.search(r'viewBox="[\d.]+ [\d.]+ ([\d.]+) ([\d.]+)"', root).groups())
    marked = re.search(r'data-smallest-text="([\d.]+)"', root)
    sizes = [float(a or b) for a, b in re.findall(r"font-size:\s*([\d.]+)px|font:\s*(?:[a-z-]+\s+)*([\d.]+)px", data)]
    return w, h, float(marked.group(1)) if marked else min(sizes)


def shown(page_path: Path) -> list[dict]:
    """Each figure of a deck as shown at 1280×720, with the height of its smallest text in screen px."""
    with deck_pages() as open_deck:
        page = open_deck(page_path)
        assert page.evaluate("document.body.dataset.brokenImages") == "0"
        figures = page.evaluate(FIGURES)
    for f in figures:
        w, h, smallest = natural(page_path.parent / f["src"])
        scale = min(f["width"] / w, f["height"] / h)  # the picture is fitted into its box, never stretched
        f.update(smallest=smallest * scale, share=w * scale / f["slideWidth"])
    return figures


def too_small(figures: list[dict]) -> list[str]:
    return [f"slide {f['slide']} '{f['title']}' {f['src']}: {f['smallest']:.1f} px" for f in figures
            if f["smallest"] < READABLE]


@needs_dot
@needs_browser
@pytest.mark.parametrize("name", ["trained lecture", "lecture", SLIDES])
def test_every_label_of_every_figure_is_at_least_12_px_high(decks, name):
    figures = shown(decks[name] / "html" / "index.html")
    assert len(figures) >= (12 if name == "lecture" else 6)
    assert all(f["src"].endswith(".svg") for f in figures), [f["src"] for f in figures]  # vector, not pixels
    assert not too_small(figures), "\n".join(too_small(figures))


def pdf_shares(folder: Path, tmp_path: Path) -> dict:
    """{figure: its width over the page's} as pdflatex set it (the Beamer writer has it say so in the log)."""
    work = tmp_path / "beamer"
    shutil.copytree(folder, work)
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "deck.tex"], cwd=work,
                   capture_output=True, timeout=600, check=True)
    log = (work / "deck.log").read_text(errors="replace").replace("\n", "")
    return {Path(name).stem: float(w) / float(page)
            for name, w, page in re.findall(r"figure (figures/[^:]+): ([\d.]+)pt of ([\d.]+)pt", log)}


@needs_dot
@needs_browser
@needs_tex
@pytest.mark.parametrize("name", ["trained lecture", "lecture", SLIDES])
def test_a_figure_has_the_same_share_of_the_slide_in_html_and_pdf(decks, name, tmp_path):
    html = {Path(f["src"]).stem: f["share"] for f in shown(decks[name] / "html" / "index.html")}
    pdf = pdf_shares(decks[name] / "beamer", tmp_path)
    assert sorted(html) == sorted(pdf) and html
    apart = {k: (round(html[k], 3), round(pdf[k], 3)) for k in html if abs(html[k] - pdf[k]) > SAME_SHARE}
    assert not apart, f"share of the slide's width (HTML, PDF) differs by more than {SAME_SHARE}: {apart}"


def trained_deck(fig: Path):
    """Slides of trained results as the lecture's directives show them (`train --show loss|heatmap|gradients|
    gates`, a line of text beside each), drawn from synthetic histories."""
    from functools import partial

    from gategraph.renderers.deck import Deck, Figure, Text, drawn
    from gategraph.renderers.plots import attention_heatmap, gate_activations, gradient_norms, loss_curves

    rng = np.random.default_rng(0)
    history = [{"step": k, "loss": 3 * np.exp(-k / 80) + 0.01, **({"test_exact_match": float(k > 200)}
                                                                   if k % 10 == 0 else {})} for k in range(400)]
    src, text = "26 november 2026", "2026-11-26"
    norms = {c: np.exp(-np.arange(50) / s) for c, s in (("lstm", 40), ("gru", 20), ("rnn", 3))}
    gates = {name: rng.uniform(size=(50, 8)) for name in ("forget gate", "input gate", "output gate")}
    pictures = {
        "loss": partial(loss_curves, {"with teacher forcing": history, "reading its own guesses": history[::-1]}),
        "heatmap": partial(attention_heatmap, rng.dirichlet(np.ones(len(src)), size=len(text) + 1), list(src),
                           list(text) + ["</s>"], title=f"gru + general attention: '{src}' -> '{text}'"),
        "gradients": partial(gradient_norms, norms),
        "gates": partial(gate_activations, gates, title="gates of one sequence", marks=[3, 27]),
    }
    deck = Deck("trained")
    for name, draw in pictures.items():
        deck.add(f"trained: {name}", Text("One line of what the picture shows, as a slide of the lecture has."),
                 Figure(drawn(draw, fig / name), "", width=0.75))
    return deck


@needs_browser
def test_the_trained_plots_read_at_the_size_the_deck_shows_them(tmp_path):
    from gategraph.renderers.layout import fit
    from gategraph.renderers.reveal import write_reveal

    deck = trained_deck(tmp_path)
    assert fit(deck) == []
    figures = shown(write_reveal(deck, tmp_path / "html"))
    assert len(figures) == 4
    assert not too_small(figures), "\n".join(too_small(figures))


@needs_dot
def test_the_mark_on_a_graph_is_the_smallest_text_graphviz_sets(tmp_path):
    """A graph at 130 dpi with 20-pt text and a subscript: the subscript is the smallest, at pango's 1/1.2."""
    import graphviz

    from gategraph.renderers.graphviz import render

    dot = graphviz.Digraph(graph_attr=dict(dpi="130"), node_attr=dict(fontsize="20"))
    dot.node("a", "<h<SUB>t</SUB>>")
    dot.node("b", "plain", fontsize="30")
    _, _, smallest = natural(render(dot, tmp_path / "g.svg"))
    assert smallest == pytest.approx(20 / 1.2 * 130 / 72, abs=0.01)


def picture(path: Path, width: float, height: float, smallest: float) -> Path:
    path.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}pt" height="{height}pt" '
                    f'viewBox="0 0 {width} {height}" data-smallest-text="{smallest}"><rect width="9" height="9"/>'
                    '</svg>')
    return path


def test_a_figure_too_small_beside_the_text_gets_a_slide_of_its_own(tmp_path):
    """Text 12 units high in a picture 1000 wide reads only about 1100 px wide: not beside or under a
    paragraph, so the layout gives it a slide of its own, where its text is 12 px or more."""
    from gategraph.renderers.deck import Deck, Figure, Text
    from gategraph.renderers.layout import fit, smallest_shown

    deck = Deck("t")
    deck.add("wide", Text("words " * 60), Figure(picture(tmp_path / "wide.svg", 1000, 400, 12), "a graph"))
    assert fit(deck) == []
    assert [s.title for s in deck.slides] == ["wide", "wide (continued)"]
    (figure,) = deck.slides[1].blocks
    assert smallest_shown(figure) >= READABLE


def test_a_figure_that_cannot_read_on_any_slide_is_named_in_one_line(tmp_path):
    from gategraph.renderers.deck import Deck, Figure
    from gategraph.renderers.layout import fit

    deck = Deck("t")
    deck.add("tiny", Figure(picture(tmp_path / "tiny.svg", 2000, 100, 5)))
    (problem,) = fit(deck)
    assert problem.startswith("slide 'tiny': the smallest label of tiny.svg would be") and "\n" not in problem
