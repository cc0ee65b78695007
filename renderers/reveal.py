"""The reveal.js writer: a deck as a reveal.js presentation that opens offline from disk.

`write_reveal(deck, folder)` writes `folder/index.html`, copies the figures (as SVG where they were drawn so)
to `folder/figures/`, each shown at the size `renderers.layout` gave it, and the
vendored dist files of reveal.js (`renderers/reveal/`, MIT) and KaTeX (`renderers/katex/`, MIT) beside it.
Every slide has the same fixed size (`SLIDE_WIDTH` × `SLIDE_HEIGHT` CSS pixels), scaled by reveal.js to any
screen. What reveal.js brings: → / space for the next step or slide, the steps of a derivation as fragments,
Esc for the overview, S for the speaker view with the slide's notes and a timer, `?print-pdf` for handouts,
slide numbers and the address of every slide (`#/7`). Every name and text is HTML-escaped; math goes to KaTeX
as written.

After the page loads it checks itself and writes the result on <body>: data-katex-errors (formulas KaTeX
refused), data-broken-images, data-raw-tex (TeX left as text outside formulas), data-overflowing-slides
(slides whose content, every step shown, does not fit in the slide) — what the tests read in headless
Chromium.

Imports: the standard library, gategraph.files, renderers.deck.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

from gategraph.files import atomic_write
from gategraph.renderers.deck import Columns, Deck, Figure, Math, Note, Table, Text, split_math

PLAIN = "plain"  # the class of prose holding `$` as text: KaTeX skips it, and so does the self-check (SCRIPT)

HERE = Path(__file__).parent
KATEX, REVEAL = HERE / "katex", HERE / "reveal"
SLIDE_WIDTH, SLIDE_HEIGHT = 1280, 720

STYLE = """
:root { --r-main-font-size: 27px; --r-heading-text-transform: none; --r-main-color: #1d2733;
  --r-heading-color: #12355b; }
.reveal .slides > section { box-sizing: border-box; height: 100%; padding: 26px 54px 40px; text-align: left;
  flex-direction: column; }
.reveal .slides > section > * { flex: none; }
.reveal h1 { font-size: 58px; margin: 0 0 24px; }
.reveal h2 { font-size: 38px; margin: 0 0 14px; padding-bottom: 8px; border-bottom: 2px solid #d7dde5; }
.reveal .section { font-size: 17px; color: #7a8794; text-transform: uppercase; letter-spacing: .08em; }
.reveal p, .reveal li { line-height: 1.4; margin: 6px 0; }
.reveal ul { display: block; margin: 6px 0 6px 1.1em; }
.reveal .math { margin: 4px 0; }
.reveal .math .katex-display { margin: 6px 0; }
.reveal .math.step .katex-display { margin: 2px 0; }
.reveal .math.step { font-size: 24px; }
.reveal .columns { flex: 1 1 0; min-height: 0; display: grid; column-gap: 24px; }
.reveal .column { display: flex; flex-direction: column; min-height: 0; min-width: 0; }
.reveal .column > * { flex: none; }
.reveal .slides > section > figure, .reveal .column > figure { margin: 6px 0; flex: 1 1 0; min-height: 60px;
  display: flex; flex-direction: column; align-items: center; }
.reveal figure img { flex: 1 1 0; min-height: 0; width: 100%; object-fit: contain; margin: 0; }
.reveal figure.sized, .reveal figure.sized img { flex: none; max-width: none; max-height: none; }
.reveal figcaption { flex: none; font-size: 20px; color: #4d5a66; margin-top: 4px; }
.reveal .note { font-size: 24px; border-left: 5px solid #3b7dd8; background: #f0f5fc; padding: 8px 16px;
  margin: 10px 0; }
.reveal .note.warn { border-color: #d8613b; background: #fcf2ee; }
.reveal .src { display: contents; }
.reveal .src > * { flex: none; }
.reveal table { border-collapse: collapse; margin: 8px 0; font-size: 24px; align-self: flex-start; }
.reveal table th, .reveal table td { padding: 4px 14px; border-bottom: 1px solid #d7dde5; }
.reveal table th { border-bottom: 2px solid #12355b; }
.reveal ol { display: block; margin: 6px 0 6px 1.4em; }
.reveal .slides > section.title { justify-content: center; }
.reveal .title p { font-size: 30px; color: #4d5a66; }
.reveal .slide-number { font-size: 16px; background: none; color: #8795a3; }
"""

# what a deck checks about itself once KaTeX has run, reveal.js has laid it out and the images have loaded
SCRIPT = """
(function () {
  let failures = 0;  // formulas KaTeX could not parse: auto-render leaves them as text and tells us here
  const math = (output, ignored) => ({delimiters: [
    {left: '\\\\[', right: '\\\\]', display: true}, {left: '$', right: '$', display: false}],
    throwOnError: false, ignoredClasses: ignored, output: output,
    errorCallback: (msg, err) => { failures += 1; console.error(msg, err); }});
  // the speaker's notes as MathML, which the speaker view (a page without KaTeX's stylesheet) shows as it is
  document.querySelectorAll('aside.notes').forEach(n => renderMathInElement(n, math('mathml', [])));
  renderMathInElement(document.querySelector('.slides'), math('htmlAndMathml', ['plain', 'notes']));
  function overflows(slide) {
    // every step shown: does anything stick out of the slide, or does a box hide part of what it holds?
    const display = slide.style.display;
    slide.style.display = 'flex';
    slide.classList.add('measuring');
    const box = slide.getBoundingClientRect(), scale = box.width / slide.offsetWidth;
    let out = slide.scrollHeight > slide.clientHeight + 1 || slide.scrollWidth > slide.clientWidth + 1;
    slide.querySelectorAll('*').forEach(e => {
      // not what one sees: the notes, KaTeX's MathML for screen readers, the paths inside a drawing
      if (e.closest('aside.notes, .katex-mathml') || e.parentElement.closest('svg')) return;
      const r = e.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) return;
      const tol = 1.5 * scale;
      if (r.left < box.left - tol || r.right > box.right + tol || r.top < box.top - tol || r.bottom > box.bottom + tol)
        out = true;
      if (!e.closest('.katex') && getComputedStyle(e).overflow !== 'visible' &&
          (e.scrollHeight > e.clientHeight + 1 || e.scrollWidth > e.clientWidth + 1)) out = true;
      const column = e.parentElement.closest('.column');  // nor out of its column, into the other one
      if (column) {
        const c = column.getBoundingClientRect();
        if (r.left < c.left - tol || r.right > c.right + tol) out = true;
      }
    });
    slide.classList.remove('measuring');
    slide.style.display = display;
    return out;
  }
  const ready = new Promise(resolve => Reveal.on('ready', resolve));
  const loaded = new Promise(resolve => window.addEventListener('load', resolve));
  Reveal.initialize({width: WIDTH, height: HEIGHT, margin: 0.04, center: false, display: 'flex', hash: true,
    hashOneBasedIndex: true, slideNumber: 'c/t', transition: 'none', backgroundTransition: 'none',
    controls: true, progress: true, plugins: [RevealNotes]});
  // measured once every font is in (a slide out of view requests its KaTeX fonts only when measured): one still
  // loading would leave a slide set in a fallback font
  const settled = () => Promise.all(Array.from(document.fonts, f => f.load().catch(() => null)));
  Promise.all([ready, loaded]).then(settled).then(() => {
    const body = document.body, slides = Array.from(document.querySelectorAll('.reveal .slides > section'));
    body.dataset.katexErrors = document.querySelectorAll('.katex-error').length + failures;
    // where the source of each refused formula is (`talk.md:12`), when the deck came from a source
    body.dataset.katexErrorsAt = Array.from(new Set(Array.from(document.querySelectorAll('.katex-error'))
      .map(e => (e.closest('[data-where]') || {dataset: {}}).dataset.where).filter(Boolean))).join(' ');
    body.dataset.brokenImages = Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length;
    const copy = document.querySelector('.slides').cloneNode(true);
    copy.querySelectorAll('.katex, .plain, script, aside.notes').forEach(n => n.remove());
    const raw = (copy.textContent.match(/\\$|\\\\(frac|begin|end|bar|odot|sigma|tanh|partial)/g) || []).length;
    body.dataset.rawTex = raw;
    body.dataset.overflowingSlides = slides.filter(overflows).length;
    body.dataset.slides = slides.length;
    body.dataset.checked = '1';
  });
})();
""".replace("WIDTH", str(SLIDE_WIDTH)).replace("HEIGHT", str(SLIDE_HEIGHT))

MEASURING = ".reveal .measuring .fragment { opacity: 1; visibility: inherit; }"


def _prose(text: str) -> str:
    """Prose, escaped; if it holds a delimiter of KaTeX's auto-render (`$`, `\\[`, `\\]`), set apart so that
    it is never read as math (a cell named `a$b`)."""
    if any(d in text for d in ("$", "\\[", "\\]")):
        return f'<span class="{PLAIN}">{html.escape(text)}</span>'
    return html.escape(text)


def _text(text: str) -> str:
    """Escaped prose with its inline math kept for KaTeX."""
    return "".join(f"${html.escape(p)}$" if math else _prose(p) for math, p in split_math(text))


ALIGN = {"left": "left", "center": "center", "right": "right"}


def _block(block, figures: dict) -> str:
    """A block as HTML; one made from a source carries its place (`data-where`) for the page's self-check."""
    out = _html(block, figures)
    where = getattr(block, "where", "")
    if where and not isinstance(block, Figure):  # a figure stays a direct child: the layout's CSS sizes it
        return f'<div class="src" data-where="{html.escape(where)}">{out}</div>'
    return out


def _cell(tag: str, text: str, align: str) -> str:
    style = f' style="text-align:{ALIGN[align]}"' if align in ALIGN else ""
    return f"<{tag}{style}>{_text(text)}</{tag}>"


def _html(block, figures: dict) -> str:
    if isinstance(block, Text):
        if block.bullets:
            items = "".join(f"<li>{_text(line)}</li>" for line in block.text.splitlines() if line.strip())
            return f"<ol>{items}</ol>" if block.numbered else f"<ul>{items}</ul>"
        return f"<p>{_text(block.text)}</p>"
    if isinstance(block, Table):
        align = list(block.align) + [""] * len(block.header)
        head = "".join(_cell("th", c, a) for c, a in zip(block.header, align, strict=False))
        rows = "".join("<tr>" + "".join(_cell("td", c, a) for c, a in zip(row, align, strict=False)) + "</tr>"
                       for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if isinstance(block, Math):
        parts = block.parts or [block.latex]
        if block.scale != 1.0:
            inner = _html(Math(block.latex, block.parts, block.steps), figures)
            return f'<div style="font-size:{block.scale:.2f}em">{inner}</div>'
        if block.steps:  # the first step is shown with the slide, each press reveals the next
            return "".join(f'<div class="math step{" fragment" if k else ""}">\\[{html.escape(p)}\\]</div>'
                           for k, p in enumerate(parts))
        return "".join(f'<div class="math">\\[{html.escape(p)}\\]</div>' for p in parts)
    if isinstance(block, Figure):
        src = figures[block.path]
        caption = f"<figcaption>{_text(block.caption)}</figcaption>" if block.caption else ""
        size = (f"width:{block.size[0]:.1f}px;height:{block.size[1]:.1f}px" if block.size
                else f"max-width:{int(block.width * 100)}%")  # the size the layout gave it, as in Beamer
        return (f'<figure{" class=sized" if block.size else ""}><img src="{html.escape(src)}" '
                f'alt="{html.escape(block.caption)}" style="{size}">{caption}</figure>')
    if isinstance(block, Note):
        return f'<div class="note {html.escape(block.kind)}">{_text(block.text)}</div>'
    if isinstance(block, Columns):
        left, right = ("".join(_block(b, figures) for b in side) for side in (block.left, block.right))
        return (f'<div class="columns" style="grid-template-columns: {block.split:.3f}fr {1 - block.split:.3f}fr">'
                f'<div class="column">{left}</div><div class="column">{right}</div></div>')
    raise TypeError(f"no HTML for {type(block).__name__}")


def _notes(slide) -> str:
    notes = getattr(slide, "notes", None) or []
    return f'<aside class="notes">{"".join(f"<p>{_text(n)}</p>" for n in notes)}</aside>' if notes else ""


def write_reveal(deck: Deck, folder: str | Path) -> Path:
    """Write the deck to folder/index.html, with its figures, reveal.js and KaTeX beside it; the page's path."""
    folder = Path(folder)
    figures = deck.copy_figures(folder, "svg")
    shutil.copytree(KATEX, folder / "katex", dirs_exist_ok=True)
    shutil.copytree(REVEAL, folder / "reveal", dirs_exist_ok=True)
    parts = [f'<section class="title"><h1>{_text(deck.title)}</h1><p>{_text(deck.subtitle)}</p></section>']
    for slide in deck.slides:
        section = f'<div class="section">{_text(slide.section)}</div>' if slide.section else ""
        body = "\n".join(_block(b, figures) for b in slide.blocks)
        parts.append(f"<section>{section}<h2>{_text(slide.title)}</h2>\n{body}\n{_notes(slide)}</section>")
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(deck.title)}</title>
<link rel="stylesheet" href="reveal/dist/reset.css">
<link rel="stylesheet" href="reveal/dist/reveal.css">
<link rel="stylesheet" href="reveal/dist/theme/white.css">
<link rel="stylesheet" href="katex/katex.min.css">
<style>{STYLE}{MEASURING}</style>
<script src="katex/katex.min.js"></script>
<script src="katex/contrib/auto-render.min.js"></script>
<script src="reveal/dist/reveal.js"></script>
<script src="reveal/plugin/notes/notes.js"></script>
</head>
<body>
<div class="reveal"><div class="slides">
{chr(10).join(parts)}
</div></div>
<script>{SCRIPT}</script>
</body>
</html>
"""
    return atomic_write(folder / "index.html", page.encode())
