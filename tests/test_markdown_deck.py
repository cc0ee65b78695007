"""Decks written in Markdown (`gategraph deck talk.md`): a small source with every directive builds in both
formats and fits (walked in Chromium, compiled by pdflatex); its runs are trained once, reused while their
configuration is unchanged and retrained when it changes; --no-train leaves a placeholder; a mistake in the
source is one line with file:line."""

import re
import shutil
import subprocess
import sys

import pytest

from gategraph.errors import SourceError
from gategraph.renderers.markdown import read_source
from tests.conftest import ROOT, deck_pages, needs_browser, needs_dot, run_cli
from tests.test_deck_fit import MISFITS, SIZES, needs_tex, overfull

# tiny runs, of two kernels only (the GRU's, attention's): compiling is most of a first build's time
ADDING = "--task adding --length 8 --steps 6 --batch 8 --eval-every 3"
REVERSE = "gru --task reverse --attention dot --steps 4 --hidden 8 --batch 8 --eval-every 2"

SOURCE = f"""# Gates and gradients

A small deck with every view, $x_t$ in the subtitle.

---

# Cells

## The LSTM's gates

The forget gate $f_t$ keeps a share of $C_{{t-1}}$; a price stays a price: \\$5, and <script>x</script> is text.

```{{gategraph}} equations lstm --only f,i
```

- **Forget** what no longer matters
- Remember, in measured amounts: $$i_t \\odot \\tilde{{C}}_t$$

Note: Say that the gate is learned. $\\sigma$ keeps it in $(0, 1)$.

---

## A cell of your own

```{{gategraph}} equations mgu.py:mgu
```

```{{gategraph}} graph mgu.py:mgu --caption "one step of the MGU"
```

---

## Structures and pictures

| structure | reads | writes |
|:--|:-:|--:|
| many to one | $x_1 \\dots x_T$ | $y_T$ |
| encoder–decoder | a sentence | another |

![the adding problem](adding.png "trained on the adding problem")

---

## Bidirectional

```{{gategraph}} structure bidirectional --width 0.6
```

> Some words are explained only by what follows them.

1. forwards
2. backwards

---

# Gradients

## Backward

```{{gategraph}} graph lstm --backward
```

---

## Unrolled

```{{gategraph}} graph lstm --unroll 3 --highlight C --caption "the path along $C$"
```

---

## The gradient of $W_f$

```{{gategraph}} derive lstm --param W_f --steps
```

---

## Through time

```{{gategraph}} derive lstm --bptt
```

---

## The whole backward step

```{{gategraph}} derive gru
```

---

## How far back

```{{gategraph}} jacobian rnn
```

```{{gategraph}} jacobian lstm --state C
```

---

## Checked

```{{gategraph}} check mgu.py:mgu
```

---

# The worked example

## Given

```{{gategraph}} example lecture-lstm
```

---

## The candidate

```{{gategraph}} example lecture-lstm --step C_tilde
```

---

## What holds

```{{gategraph}} example lecture-lstm --verdicts
```

```{{gategraph}} example mgu.py:mgu --step h_tilde --sizes X=2,H=2
```

---

# Trained

## Score

```{{gategraph}} train gru {ADDING} --hidden 4 --show score
```

---

## Loss

```{{gategraph}} train gru {ADDING} --hidden 4 --show loss
```

---

## Gates

```{{gategraph}} train gru {ADDING} --hidden 4 --show gates
```

---

## Gradient norms

```{{gategraph}} train gru {ADDING} --show gradients
H = 4: --hidden 4
H = 6: --hidden 6
```

---

## Attention

```{{gategraph}} train {REVERSE} --show heatmap --input 12345678
```

---

## Decoding

```{{gategraph}} train {REVERSE} --show decode --input 12345678 --input 87654321
```
"""


def write_source(folder, text=SOURCE, name="talk.md"):
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "examples" / "mgu.py", folder / "mgu.py")
    shutil.copyfile(ROOT / "docs" / "adding.png", folder / "adding.png")
    (folder / name).write_text(text)
    return folder / name


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The source, built in both formats with its (tiny) runs trained: (source, output folder, stderr)."""
    src = write_source(tmp_path_factory.mktemp("talk"))
    out = src.parent / "out"
    done = subprocess.run([sys.executable, "-m", "gategraph.cli", "deck", str(src), "-o", str(out), "--format",
                           "html,beamer"], capture_output=True, text=True, cwd=src.parent, timeout=900)
    assert done.returncode == 0, done.stderr
    return src, out, done.stderr


@needs_dot
@needs_browser
def test_every_directive_builds_and_every_slide_fits_in_the_browser(built):
    _, out, _ = built
    page_path = out / "html" / "index.html"
    text = page_path.read_text()
    assert "&lt;script&gt;x&lt;/script&gt;" in text and "<script>x" not in text  # the author's HTML is text
    assert "Not trained yet" not in text
    assert text.count("<figure") >= 9  # graphs, structure, the image, loss, gates, norms, heatmap
    assert "&#x27;12345678&#x27; →" in text and "<table>" in text and "<ol>" in text
    with deck_pages() as open_deck:
        for width, height in SIZES:
            page = open_deck(page_path, width, height)
            check = page.evaluate("({...document.body.dataset})")
            assert check["katexErrors"] == "0" and check["rawTex"] == "0", check
            assert check["brokenImages"] == "0" and check["overflowingSlides"] == "0", check
            page.keyboard.press("Home")
            while True:
                assert page.evaluate(MISFITS) == [], page.evaluate("Reveal.getIndices().h")
                if page.evaluate("Reveal.isLastSlide() && !Reveal.availableFragments().next"):
                    break
                page.keyboard.press("ArrowRight")
            notes = page.evaluate("Array.from(document.querySelectorAll('aside.notes')).map(n => n.textContent)")
            assert any("Say that the gate is learned" in n for n in notes)
            page.close()


@needs_dot
@needs_tex
def test_the_beamer_deck_compiles_without_an_overfull_box(built, tmp_path):
    _, out, _ = built
    tex = (out / "beamer" / "deck.tex").read_text()
    assert r"\begin{tabular}{lcr}" in tex and r"\begin{enumerate}" in tex and r"\note[item]{Say that" in tex
    found = overfull(out / "beamer", tmp_path)
    assert not found, f"{len(found)} overfull boxes:\n" + "\n".join(found)


@needs_dot
def test_runs_are_trained_once_and_reused_while_unchanged(built, tmp_path):
    src, out, said = built
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert len(runs) == 3  # the GRU on adding (four slides show it), with H = 6, and on reverse
    assert re.search(r"run [123]/3 gru-adding-\w+ for .*talk\.md:\d+ \(Score\): trained, step 6", said), said
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/checkpoint.npz")}
    again = run_cli("deck", src, "-o", out, "--format", "html", cwd=src.parent)
    assert "reusing 3 trained runs" in again.stderr and "trained, step" not in again.stderr
    assert stamps == {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/checkpoint.npz")}
    # one run's configuration changed: that one is trained again, the others are reused
    src.write_text(SOURCE.replace("--show decode --input", "--show decode --lr 0.002 --input"))
    changed = run_cli("deck", src, "-o", out, "--format", "html", cwd=src.parent)
    src.write_text(SOURCE)
    assert "reusing 3 trained runs" in changed.stderr
    assert re.search(r"run 1/1 gru-reverse-\w+ for .*talk\.md:\d+ \(Decoding\): trained, step 4", changed.stderr)


@needs_dot
def test_without_training_a_slide_says_what_it_will_show(tmp_path):
    src = write_source(tmp_path / "src", "## Trained\n\n```{gategraph} train gru --task future --steps 5 "
                                         "--show loss\n```\n")
    run_cli("deck", src, "-o", tmp_path / "out", "--format", "html", "--no-train")
    page = (tmp_path / "out" / "html" / "index.html").read_text()
    assert "Not trained yet: this slide shows the loss curves of gru (future)" in page
    assert not (tmp_path / "out" / "runs").exists()


BAD = [
    ("## A\n\n```{gategraph} plot lstm\n```\n", 3, "unknown directive 'plot'"),
    ("## A\n\ntext\n\n```{gategraph} derive lstm --param\n```\n", 5, "--param: expected one argument"),
    ("## A\n\n```{gategraph} equations lsmt\n```\n", 3, "unknown cell 'lsmt'"),
    ("## A\n\n```{gategraph} graph nope.py:cell\n```\n", 3, "does not exist"),
    ("## A\n\n```{gategraph} derive lstm --param W_z\n```\n", 3, "'W_z' is not a parameter of 'lstm'"),
    ("## A\n\n```{gategraph} train gru --task future --show heatmap\n```\n", 3, "sequence-to-sequence"),
    ("## A\n\n```{gategraph} train gru --task dates --show loss --lr -1\n```\n", 3, "learning rate"),
    ("## A\n\n```{gategraph} train gru --task dates --show decode --input ☃\n```\n", 3, "input alphabet"),
    ("## A\n\n```{gategraph} example lecture-lstm --step C_hat\n```\n", 3, "no equation 'C_hat'"),
    ("## A\n\n```{gategraph} jacobian attention-dot\n```\n", 3, None),  # found when the view is built
    ("## A\n\n---\n\n## B\n\nThe sum $\\frac{1}{2$ here.\n", 7, "in the maths $\\frac{1}{2$: 1 { not closed"),
    ("## A\n\n$$\n\\begin{aligned} a &= b\n$$\n", 3, "\\begin{aligned} not ended"),
    ("## A\n\n![x](missing.png)\n", 3, "image 'missing.png': no such file"),
    ("## A\n\n```python\nprint(1)\n```\n", 3, "a code block"),
    ("## A\n## B\n", 2, "a second title"),
    ("just text\n", 1, "a slide without a title"),
]


@pytest.mark.parametrize("text, line, what", BAD)
def test_a_mistake_in_the_source_is_one_line_with_file_and_line(tmp_path, text, line, what):
    src = write_source(tmp_path, text, "bad.md")
    try:
        source = read_source(src)
        if what is None:
            from gategraph.renderers.views import Room

            source.deck(Room(tmp_path / "figures", tmp_path / "runs"))
    except SourceError as e:
        message = str(e)
    else:
        raise AssertionError("no error")
    assert message.startswith(f"{src}:{line}: ") and "\n" not in message, message
    assert what is None or what in message, message


def test_a_slide_that_cannot_fit_is_named_by_its_line(tmp_path):
    src = write_source(tmp_path, "## A\n\nfine\n\n---\n\n## B\n\n" + "a long line of words " * 400 + "\n", "long.md")
    done = run_cli("deck", src, "-o", tmp_path / "out", "--format", "html")
    assert f"note: {src}:7: slide 'B' does not fit" in done.stderr


def test_the_command_prints_the_mistake_and_exits_2(tmp_path):
    src = write_source(tmp_path, "## A\n\n```{gategraph} derive lstm --prams W_f\n```\n", "bad.md")
    done = run_cli("deck", src, "-o", tmp_path / "out", check=False)
    assert done.returncode == 2
    assert done.stderr == f"gategraph: error: {src}:3: derive: unrecognized arguments: --prams W_f\n"


@needs_dot
@needs_tex
def test_a_formula_tex_refuses_points_back_to_its_line(tmp_path):
    """Maths with balanced braces that TeX still cannot set: pdflatex's error names the source's line."""
    src = write_source(tmp_path, "## A\n\nfine $x$\n\n---\n\n## B\n\n$$\nx^^2 + \\nosuchmacro\n$$\n", "tex.md")
    done = run_cli("deck", src, "-o", tmp_path / "out", "--format", "pdf", check=False)
    assert done.returncode == 2 and done.stderr.startswith(f"gategraph: error: {src}:9: TeX cannot set this"), \
        done.stderr
    assert done.stderr.count("\n") == 1


@needs_dot
@needs_browser
def test_a_formula_katex_refuses_points_back_to_its_line(tmp_path):
    src = write_source(tmp_path, "## A\n\nfine $x$\n\n---\n\n## B\n\n$$\nx^^2\n$$\n", "tex.md")
    run_cli("deck", src, "-o", tmp_path / "out", "--format", "html")
    with deck_pages() as open_deck:
        page = open_deck(tmp_path / "out" / "html" / "index.html")
        assert page.evaluate("document.body.dataset.katexErrorsAt") == f"{src}:9"


@needs_dot
def test_the_example_deck_builds(tmp_path):
    done = run_cli("deck", ROOT / "examples" / "talk.md", "-o", tmp_path / "talk", "--format", "html,beamer",
                   "--no-train")
    assert "wrote" in done.stdout
    page = (tmp_path / "talk" / "html" / "index.html").read_text()
    assert "Not trained yet" in page and "mgu" in page


def test_a_run_is_reused_while_its_configuration_is_unchanged_and_retrained_when_it_changes(tmp_path):
    from gategraph.runs import cached, make, run_name
    from gategraph.train import Config

    config = Config(cell="gru", task="future", hidden=4, batch=4, steps=4, eval_every=2, test_size=8)
    folder = tmp_path / run_name(config)
    assert cached(folder, config) is None
    run, how = make(folder, config)
    assert how == "trained" and run.step == 4
    assert make(folder, config)[1] == "reused" and cached(folder, config).step == 4
    longer = Config(**{**config.__dict__, "steps": 6})
    assert run_name(longer) != run_name(config) and cached(folder, longer) is None
    run, how = make(folder, longer)  # the same folder, another configuration: trained afresh, not resumed
    assert how == "trained" and run.step == 6 and [r["step"] for r in run.history][0] == 1
