"""The HTML writer: a deck as one page that opens offline from disk, one slide per screen.

`write_html(deck, folder)` writes `folder/index.html`, copies the figures to `folder/figures/` and KaTeX's
own dist files (vendored in `renderers/katex/`, MIT) to `folder/katex/`. Keys: → space PageDown (next
step or slide), ← PageUp (back), Home, End; the address keeps the slide number (`#7`); `?steps=all` shows
every step at once. Printing lays out
every slide on its own page with every step shown. Every name and text is HTML-escaped; math goes to
KaTeX as written; prose that holds `$` (a cell's name) is marked so that KaTeX leaves it as text.

After the page loads it checks itself and writes the result on <body>: data-katex-errors (formulas KaTeX
refused), data-broken-images, data-raw-tex (TeX left as text outside formulas) — what the tests read in
headless Chromium.

Imports: the standard library, gategraph.files, renderers.deck.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

from gategraph.files import atomic_write
from gategraph.renderers.deck import Deck, Figure, Math, Note, Text, split_math

KATEX = Path(__file__).parent / "katex"
PLAIN = "plain"  # the class of prose holding `$` as text: KaTeX skips it, and so does the self-check (SCRIPT)

STYLE = """
html, body { margin: 0; height: 100%; background: #eef0f3; font-family: "Source Sans Pro", "Helvetica Neue",
  Arial, sans-serif; color: #1d2733; }
.slide { display: none; box-sizing: border-box; width: 100vw; height: 100vh; padding: 4vh 6vw; overflow: auto;
  background: #fff; flex-direction: column; }
.slide.current { display: flex; }
.slide h2 { margin: 0 0 2.5vh; font-size: 4.2vh; color: #12355b; border-bottom: 2px solid #d7dde5;
  padding-bottom: 1vh; }
.slide .section { font-size: 2vh; color: #7a8794; text-transform: uppercase; letter-spacing: .08em; }
.slide p, .slide li { font-size: 2.9vh; line-height: 1.45; margin: .6vh 0; }
.slide .math { font-size: 2.7vh; margin: .6vh 0; padding: .4vh 0 .8vh; overflow: visible; }
.slide figure { margin: 1vh auto; text-align: center; flex: 0 1 auto; min-height: 0; display: flex;
  flex-direction: column; align-items: center; }
.slide figure img { max-height: 62vh; object-fit: contain; }
.slide figcaption { font-size: 2.2vh; color: #4d5a66; margin-top: .8vh; }
.slide aside { font-size: 2.5vh; border-left: 5px solid #3b7dd8; background: #f0f5fc; padding: 1vh 1.4vw;
  margin: 1.2vh 0; }
.slide aside.warn { border-color: #d8613b; background: #fcf2ee; }
.slide.title { justify-content: center; align-items: flex-start; }
.slide.title h1 { font-size: 7vh; margin: 0; color: #12355b; }
.slide.title p { font-size: 3.4vh; color: #4d5a66; }
.step.hidden { display: none; }
.slide .math.step { margin: 0; padding: 0; font-size: 2.4vh; }
.slide .math .katex-display { margin: .25em 0; }
.counter { position: fixed; right: 1.2vw; bottom: 1vh; font-size: 1.8vh; color: #8795a3; }
@media print {
  @page { size: 297mm 167mm; margin: 0; }
  html, body { height: auto; background: #fff; }
  .slide { display: flex !important; width: 297mm; height: 167mm; page-break-after: always; overflow: hidden; }
  .step.hidden { display: block; }
  .counter { display: none; }
}
"""

SCRIPT = """
(function () {
  const slides = Array.from(document.querySelectorAll('.slide'));
  let k = Math.max(0, Math.min(slides.length - 1, parseInt(location.hash.slice(1) || '1', 10) - 1 || 0));
  const counter = document.querySelector('.counter');
  function steps(s) { return Array.from(s.querySelectorAll('.step')); }
  function show(n, revealAll) {
    k = Math.max(0, Math.min(slides.length - 1, n));
    slides.forEach((s, i) => s.classList.toggle('current', i === k));
    const all = revealAll || location.search.includes('steps=all');  // ?steps=all: every step shown
    steps(slides[k]).forEach((e, i) => e.classList.toggle('hidden', !all && i > 0));
    counter.textContent = (k + 1) + ' / ' + slides.length;
    history.replaceState(null, '', '#' + (k + 1));
  }
  function next() {
    const hidden = steps(slides[k]).filter(e => e.classList.contains('hidden'));
    if (hidden.length) hidden[0].classList.remove('hidden'); else if (k < slides.length - 1) show(k + 1, false);
  }
  function back() {
    const shown = steps(slides[k]).filter(e => !e.classList.contains('hidden'));
    if (shown.length > 1) shown[shown.length - 1].classList.add('hidden'); else if (k > 0) show(k - 1, true);
  }
  document.addEventListener('keydown', e => {
    if (['ArrowRight', ' ', 'PageDown', 'ArrowDown'].includes(e.key)) { next(); e.preventDefault(); }
    else if (['ArrowLeft', 'PageUp', 'ArrowUp'].includes(e.key)) { back(); e.preventDefault(); }
    else if (e.key === 'Home') show(0, false); else if (e.key === 'End') show(slides.length - 1, true);
  });
  document.addEventListener('click', e => { if (!e.target.closest('a')) next(); });
  let failures = 0;  // formulas KaTeX could not parse: auto-render leaves them as text and tells us here
  renderMathInElement(document.body, {delimiters: [{left: '\\\\[', right: '\\\\]', display: true},
    {left: '$', right: '$', display: false}], throwOnError: false, ignoredClasses: ['plain'],
    errorCallback: (msg, err) => { failures += 1; console.error(msg, err); }});
  show(k, false);
  window.addEventListener('load', () => {
    const body = document.body;
    body.dataset.katexErrors = document.querySelectorAll('.katex-error').length + failures;
    body.dataset.brokenImages = Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length;
    const copy = body.cloneNode(true);
    copy.querySelectorAll('.katex, .plain, script').forEach(n => n.remove());
    const raw = (copy.textContent.match(/\\$|\\\\(frac|begin|end|bar|odot|sigma|tanh|partial)/g) || []).length;
    body.dataset.rawTex = raw;
    body.dataset.slides = slides.length;
    body.dataset.checked = '1';
  });
})();
"""


def _prose(text: str) -> str:
    """Prose, escaped; if it holds a delimiter of KaTeX's auto-render (`$`, `\\[`, `\\]`), set apart so that
    it is never read as math (a cell named `a$b`)."""
    if any(d in text for d in ("$", "\\[", "\\]")):
        return f'<span class="{PLAIN}">{html.escape(text)}</span>'
    return html.escape(text)


def _text(text: str) -> str:
    """Escaped prose with its inline math kept for KaTeX."""
    return "".join(f"${html.escape(p)}$" if math else _prose(p) for math, p in split_math(text))


def _block(block, figures: dict) -> str:
    if isinstance(block, Text):
        if block.bullets:
            items = "".join(f"<li>{_text(line)}</li>" for line in block.text.splitlines() if line.strip())
            return f"<ul>{items}</ul>"
        return f"<p>{_text(block.text)}</p>"
    if isinstance(block, Math):
        cls = "math step" if block.steps else "math"
        parts = block.parts or [block.latex]
        return "".join(f'<div class="{cls}">\\[{html.escape(part)}\\]</div>' for part in parts)
    if isinstance(block, Figure):
        src = figures[block.path]
        return (f'<figure><img src="{html.escape(src)}" alt="{html.escape(block.caption)}" '
                f'style="max-width:{int(block.width * 100)}%"><figcaption>{_text(block.caption)}</figcaption></figure>')
    if isinstance(block, Note):
        return f'<aside class="{html.escape(block.kind)}">{_text(block.text)}</aside>'
    raise TypeError(f"no HTML for {type(block).__name__}")


def write_html(deck: Deck, folder: str | Path) -> Path:
    """Write the deck to folder/index.html, with its figures and KaTeX beside it. Returns the page's path."""
    folder = Path(folder)
    figures = deck.copy_figures(folder)
    shutil.copytree(KATEX, folder / "katex", dirs_exist_ok=True)
    parts = [f'<section class="slide title"><h1>{_text(deck.title)}</h1><p>{_text(deck.subtitle)}</p></section>']
    for slide in deck.slides:
        section = f'<div class="section">{_text(slide.section)}</div>' if slide.section else ""
        body = "\n".join(_block(b, figures) for b in slide.blocks)
        parts.append(f'<section class="slide">{section}<h2>{_text(slide.title)}</h2>\n{body}\n</section>')
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape("".join(p for _, p in split_math(deck.title)))}</title>
<link rel="stylesheet" href="katex/katex.min.css">
<style>{STYLE}</style>
<script src="katex/katex.min.js"></script>
<script src="katex/contrib/auto-render.min.js"></script>
</head>
<body>
{chr(10).join(parts)}
<div class="counter"></div>
<script>{SCRIPT}</script>
</body>
</html>
"""
    return atomic_write(folder / "index.html", page.encode())
