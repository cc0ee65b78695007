"""The built-in lecture is a Markdown source like any other: printed by `gategraph lecture --source`, read by the
same reader, its sections in the order that teaches, and the views it needs (derive --table, train --show chance,
alignment, forcing) checked when the source is read."""

import re
import subprocess
import sys

import pytest

from gategraph.cells import lstm
from gategraph.derive import derive
from gategraph.errors import SourceError
from gategraph.renderers.derivation import derivation_table
from gategraph.renderers.markdown import read_source
from tests.conftest import ROOT

LECTURE = ROOT / "gategraph" / "lecture.md"


def test_the_source_option_prints_the_lecture_a_lecturer_can_build(tmp_path):
    done = subprocess.run([sys.executable, "-m", "gategraph.cli", "lecture", "--source"], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == LECTURE.read_text(encoding="utf-8")
    copy = tmp_path / "my-lecture.md"
    copy.write_text(done.stdout, encoding="utf-8")
    source = read_source(copy)
    assert source.title == "Recurrent neural networks, part 2" and len(source.slides) >= 40
    wheels = [config for _, config, _, _ in source.runs(tmp_path / "runs") if config.task == "wheels"]
    assert sorted((c.seed, c.teacher_forcing) for c in wheels) == [(s, r) for s in range(5) for r in (0.0, 1.0)]


def _titles():
    return [(s.section, s.title) for s in read_source(LECTURE).slides]


def test_the_lecture_teaches_in_the_order_of_its_outline():
    sections = list(dict.fromkeys(section for section, _ in _titles() if section))
    order = ["Memory", "Why gates", "Gated cells", "Training the LSTM", "Structures",
             "Bidirectional", "Deep", "Sequence to sequence", "Teacher forcing", "Attention"]
    assert [next(k for k, s in enumerate(sections) if s.startswith(o)) for o in order] == sorted(range(len(order)))
    assert _titles()[0][1] == "Outline"
    gated = [title for section, title in _titles() if section.startswith("Gated cells")]
    assert gated.index("A gate: a number between 0 and 1 per unit") < gated.index(
        "A worked example: will I help with the homework?") < gated.index("The GRU")


def test_notation_comes_before_it_is_used_and_the_examples_are_where_the_lecture_has_them():
    text = LECTURE.read_text(encoding="utf-8")
    assert text.index(r"\bar{C}_{T+1} = 0") < text.index("derive lstm --param W_f")
    assert text.index("The adding problem") < text.index("--task adding")
    assert text.index("Il cane nero") < text.index("## A word explained by what follows it")
    for said in ("BLSTM", "BRNN", "Pavlos said about Srivatsan", "| 2 | [START], The | wheels |",
                 "Only while training", "describe it", "erase the old memory, keep the new".capitalize()):
        assert said in text, said
    scores = text.index("## Three scores")
    assert text.index("## Three intuitions") < text.index("query, scores, softmax, context") < scores


def test_the_other_gradients_of_the_lstm_are_one_row_each_of_the_same_pattern():
    rows = derivation_table(derive(lstm()), ["W_i", "W_C", "W_o"], "text").splitlines()
    assert len(rows) == 3
    for row, gate in zip(rows, ("i", "C̃", "o"), strict=True):
        assert re.match(rf"∂L/∂W_\w = Σ_t ā_{{{gate},t}} \[h_{{t-1}}, x_t\]ᵀ", row), row
    latex = derivation_table(derive(lstm()), ["W_i", "W_o"], "latex")
    assert latex.startswith(r"\begin{array}") and latex.count(r"\\[8pt]") == 1


@pytest.mark.parametrize("directive, error", [
    ("derive lstm --table W_f,W_x", "'W_x' is not a parameter of 'lstm'"),
    ("train gru --task adding --show chance", "--show chance tests a classifier's accuracy"),
    ("train gru --task reverse --show alignment", "--show alignment measures one dates run with --attention"),
    ("train gru --task wheels --show forcing\nwith: --seed 0 --teacher-forcing 1\nalso: --seed 1 --teacher-forcing 0",
     "seed 0 lacks one"),
    ("train gru --task wheels --show forcing\nhalf: --teacher-forcing 0.5", "each run one of them; got 0.5"),
])
def test_a_view_the_lecture_needs_refuses_what_it_cannot_show_with_file_and_line(tmp_path, directive, error):
    header, _, body = directive.partition("\n")
    source = tmp_path / "talk.md"
    source.write_text(f"# T\n\n---\n\n## A slide\n\n```{{gategraph}} {header}\n{body}\n```\n", encoding="utf-8")
    with pytest.raises(SourceError, match=re.escape(error)) as e:
        read_source(source)
    assert str(e.value).startswith(f"{source}:7: ")
