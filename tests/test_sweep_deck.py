"""A deck's `sweep` directive: a tiny sweep (2 cells × 2 seeds, a few steps) shown as its table, learning
curves and final scores builds in HTML (self-checked in Chromium) and Beamer (compiled by pdflatex); its runs
live beside the deck, are trained by the first build (with one worker, in the command's own process), reused
by the next and trained again when the spec changes; --no-train leaves a placeholder; a missing or bad spec is
one line with file:line."""

import json
import re

import pytest

from gategraph.errors import SourceError
from gategraph.renderers.markdown import read_source
from tests.conftest import deck_pages, needs_browser, run_cli
from tests.test_deck_fit import needs_tex, overfull

SPEC = """cells = ["gru", "rnn"]
tasks = ["adding"]
seeds = [0, 1]
length = 8
steps = 6
batch = 8
hidden = 4
eval_every = 3
test_size = 32
"""

SOURCE = """## What a sweep found

```{gategraph} sweep adding.toml --show table
```

---

## Learning curves

```{gategraph} sweep adding.toml --show curves --caption "two cells, two seeds each"
```

---

## Final scores

```{gategraph} sweep adding.toml --show finals
```
"""

RUNS = ["gru-adding-seed0", "gru-adding-seed1", "rnn-adding-seed0", "rnn-adding-seed1"]


def write(folder, source=SOURCE, spec=SPEC):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adding.toml").write_text(spec)
    (folder / "talk.md").write_text(source)
    return folder / "talk.md"


def build(src, out, *more, check=True):
    return run_cli("deck", src, "-o", out, "--workers", "1", *more, cwd=src.parent, check=check)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The deck built in both formats, its sweep trained: (source, output folder, stderr)."""
    src = write(tmp_path_factory.mktemp("sweepdeck"))
    out = src.parent / "out"
    done = build(src, out, "--format", "html,beamer")
    return src, out, done.stderr


def test_the_sweep_is_trained_beside_the_deck_and_shown_as_table_and_figures(built):
    src, out, said = built
    assert f"sweep adding for {src}:3 (What a sweep found): 4 of 4 runs to train in this process" in said
    assert sorted(p.name for p in (out / "sweeps" / "adding").iterdir()) == RUNS
    for run in RUNS:
        assert json.loads((out / "sweeps" / "adding" / run / "result.json").read_text())["step"] == 6
    page = (out / "html" / "index.html").read_text()
    assert "Not trained yet" not in page
    table = page[page.index("<table"):page.index("</table>")]
    assert "test mse, mean" in table and "training seconds, mean" in table
    for setting in ("gru-adding", "rnn-adding"):  # each setting: both seeds finished, a score ± its spread
        row = re.search(rf"<td[^>]*>{setting}</td>(.*?)</tr>", table, re.S)
        assert row and re.search(r">2/2<.*\d\.?\d* \S*\\pm\S* \d", row.group(1), re.S), table
    assert len(re.findall(r'<img[^>]+src="[^"]+\.svg"', page)) == 2 and "two cells, two seeds each" in page
    curves = next((out / "figures-src").glob("*curves-adding.svg")).read_text()
    assert "gru-adding (2 seeds)" in curves and "rnn-adding (2 seeds)" in curves
    finals = next((out / "figures-src").glob("*finals-adding.svg")).read_text()
    assert "final test mse" in finals


@needs_browser
def test_the_html_deck_passes_its_self_check(built):
    _, out, _ = built
    with deck_pages() as open_deck:
        check = open_deck(out / "html" / "index.html").evaluate("({...document.body.dataset})")
    assert check["katexErrors"] == "0" and check["rawTex"] == "0", check
    assert check["brokenImages"] == "0" and check["overflowingSlides"] == "0", check


@needs_tex
def test_the_beamer_deck_compiles_without_an_overfull_box(built, tmp_path):
    _, out, _ = built
    tex = (out / "beamer" / "deck.tex").read_text()
    assert r"\begin{tabular}" in tex and "rnn-adding & 2/2 &" in tex and r"$\pm$" in tex
    assert tex.count(r"\includegraphics") == 2
    found = overfull(out / "beamer", tmp_path)
    assert not found, f"{len(found)} overfull boxes:\n" + "\n".join(found)


def test_a_second_build_reuses_the_runs_and_a_changed_spec_trains_them_again(built):
    src, out, _ = built
    results = sorted((out / "sweeps" / "adding").glob("*/result.json"))
    stamps = [p.stat().st_mtime_ns for p in results]
    again = build(src, out, "--format", "html")
    assert "reusing 1 finished sweep" in again.stderr and "runs to train" not in again.stderr
    assert stamps == [p.stat().st_mtime_ns for p in results]
    try:
        (src.parent / "adding.toml").write_text(SPEC.replace("steps = 6", "steps = 9"))
        changed = build(src, out, "--format", "html")
    finally:
        (src.parent / "adding.toml").write_text(SPEC)
    assert "4 of 4 runs to train" in changed.stderr
    assert all(json.loads(p.read_text())["step"] == 9 for p in results)


def test_without_training_a_slide_says_what_it_will_show(tmp_path):
    src = write(tmp_path / "src")
    build(src, tmp_path / "out", "--format", "html", "--no-train")
    page = (tmp_path / "out" / "html" / "index.html").read_text()
    assert "Not trained yet: this slide shows the table of the sweep adding.toml (4 of 4 runs to train)" in page
    assert "Not trained yet: this slide shows the learning curves of the sweep adding.toml" in page
    assert not (tmp_path / "out" / "sweeps").exists()


BAD = [
    ("## A\n\ntext\n\n```{gategraph} sweep missing.toml --show table\n```\n", SPEC, 5, "there is no sweep spec"),
    ("## A\n\n```{gategraph} sweep adding.toml --show table\n```\n", "cells = [gru\n", 3, "is not valid TOML"),
    ("## A\n\n```{gategraph} sweep adding.toml --show table\n```\n", SPEC.replace("steps = 6", "steps = -1"), 3,
     "--steps must be at least 1"),
    ("## A\n\n```{gategraph} sweep adding.toml --show table\n```\n", SPEC + "speed = 2\n", 3,
     "there is no setting 'speed'"),
    ("## A\n\n```{gategraph} sweep adding.toml --show plot\n```\n", SPEC, 3, "invalid choice: 'plot'"),
    ("## A\n\n```{gategraph} sweep adding.toml --show table\nmore\n```\n", SPEC, 3, "takes no body"),
    ("## A\n\n```{gategraph} sweep adding.toml --show table\n```\n\n---\n\n## B\n\n"
     "```{gategraph} sweep other/adding.toml --show curves\n```\n", SPEC, 10, "would share the folder sweeps/adding"),
]


@pytest.mark.parametrize("source, spec, line, what", BAD)
def test_a_missing_or_bad_spec_is_one_line_with_file_and_line(tmp_path, source, spec, line, what):
    src = write(tmp_path, source, spec)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "adding.toml").write_text(SPEC)
    with pytest.raises(SourceError) as e:
        read_source(src)
    message = str(e.value)
    assert message.startswith(f"{src}:{line}: ") and "\n" not in message, message
    assert what in message, message


def test_the_command_prints_a_bad_spec_and_exits_2(tmp_path):
    src = write(tmp_path, spec="cells = ['gru']\n")
    done = build(src, tmp_path / "out", check=False)
    assert done.returncode == 2
    assert done.stderr.startswith(f"gategraph: error: {src}:3: ") and done.stderr.count("\n") == 1, done.stderr
    assert "adding.toml names no tasks" in done.stderr
