"""Exercise sheets: clean problems reproducible from the seed, answers that are the evaluator's, sheets in
HTML and PDF for built-in and user cells, and grading that names the slip behind a wrong answer."""

import json
import shutil

import numpy as np
import pytest
import sympy as sp

from gategraph.cells import load_cell, lstm
from gategraph.exercises import TABLE, grade, load_sheet, make_sheet, read_answers
from gategraph.renderers.exercises import report
from gategraph.slips import run, slips_of
from gategraph.worked import Claim, evaluate
from tests.conftest import ROOT, run_cli

MGU = f"{ROOT / 'examples' / 'mgu.py'}:mgu"


@pytest.mark.parametrize("reference", ["lstm", "gru", MGU])
def test_problems_are_clean_and_reproducible(reference):
    cell = load_cell(reference)
    sheet = make_sheet(cell, reference, 3, seed=7, backward=True)
    assert [p.values for p in sheet.problems] == [p.values for p in make_sheet(cell, reference, 3, 7, True).problems]
    assert [p.values for p in sheet.problems] != [p.values for p in make_sheet(cell, reference, 3, 8, True).problems]
    for p in sheet.problems:
        assert all(abs(v) <= 2 for v in np.ravel(np.asarray([*_flat(p.values)])))
        ev = evaluate(cell, p.values)
        for step in ev.steps:
            if step.argument is not None:
                assert all(sp.sympify(a).is_Integer and int(a) in TABLE for a in np.ravel(step.argument))
        solution = p.solution(cell)
        for step in ev.steps:  # the answers are the evaluator's, in floats
            np.testing.assert_allclose(solution[step.name], ev.floats(step.name), rtol=1e-12)
        assert any(k.startswith("grad:") for k in solution) and any(k.startswith("bar:") for k in solution)


def _flat(values):
    for v in values.values():
        yield from np.ravel(np.asarray(v, dtype=float))


def test_grading_marks_right_answers_and_names_the_slip_in_wrong_ones(tmp_path):
    cell = lstm()
    sheet = make_sheet(cell, "lstm", 2, seed=1)
    p = sheet.problems[0]
    solution = p.solution(cell)
    ev = evaluate(cell, p.values, exact=False)
    dropped = next(s for s in slips_of(ev) if s.kind == "dropped-nonlinearity" and s.equation == "h")
    wrong_h = run(ev, [dropped])["h"]
    assert np.max(np.abs(wrong_h - solution["h"])) > 0.01
    answers = {1: {"f": np.round(solution["f"], 3).tolist(), "h": np.round(wrong_h, 3).tolist()}}
    path = tmp_path / "answers.json"
    path.write_text(json.dumps({str(k): v for k, v in answers.items()}))
    marks = grade(load_sheet(sheet.save(tmp_path / "sheet.json")), read_answers(path))
    assert [(m.quantity, m.right) for m in marks] == [("f", True), ("h", False)]
    text = report(marks, cell, sheet.tolerance)
    assert "you dropped the tanh in h_t" in text and "1 of 2 answers right" in text
    np.testing.assert_allclose(solution["f"], [0.7311, 0.7311], rtol=1e-4)
    (mark,) = grade(sheet, {1: {"f": [0.7, 0.7]}})  # right to the one digit written, not to within 0.01
    assert not mark.right and mark.rounded and "right to the digits written" in report([mark], cell, sheet.tolerance)
    csv = tmp_path / "answers.csv"
    csv.write_text("problem,quantity,value\n1,h," + ";".join(str(v) for v in answers[1]["h"]) + "\n")
    assert read_answers(csv) == {1: {"h": answers[1]["h"]}}


def test_the_sheets_build_in_html_and_pdf_and_grade_from_the_command_line(tmp_path):
    out = tmp_path / "sheets"
    formats = "html,pdf" if shutil.which("pdflatex") else "html"
    run_cli("exercises", MGU, "--count", "2", "--backward", "--seed", "2", "-o", out, "--format", formats)
    for part in ("problems", "solutions"):
        page = (out / part / "html" / "index.html").read_text()
        assert "Problem 2" in page
        if "pdf" in formats:
            assert (out / part / "beamer" / "deck.pdf").read_bytes()[:4] == b"%PDF"
    sheet = load_sheet(out / "sheet.json")
    solution = sheet.problems[0].solution(load_cell(MGU))
    (tmp_path / "a.json").write_text(json.dumps({"1": {"h": solution["h"].tolist()}}))
    assert "1 of 1 answers right" in run_cli("grade", out, tmp_path / "a.json").stdout


@pytest.mark.parametrize("kind, equation, gradient, says", [
    ("dropped-derivative", "pre:f", "grad:W_f", "you left out σ′ = f_t ⊙ (1 - f_t) in ā_{f,t}"),
    ("other-step", "bar:f", "grad:W_f", "you used C_t instead of C_{t-1} in f̄_t"),
    ("dropped-derivative", "pre:C_tilde", "grad:W_C", "you left out tanh′ = 1 - C̃_t² in ā_{C̃,t}"),
])
def test_grading_names_the_slip_in_a_wrong_backward_answer(kind, equation, gradient, says):
    cell = lstm()
    sheet = make_sheet(cell, "lstm", 1, seed=3, backward=True)
    problem = sheet.problems[0]
    solution = problem.solution(cell)
    ev = problem.graded(cell, [])
    slip = next(s for s in slips_of(ev) if s.kind == kind and s.equation == equation)
    wrong = run(ev, [slip])
    assert np.max(np.abs(wrong[equation] - solution[equation])) > 0.01
    answers = {q: np.round(wrong[q], 4).tolist() for q in ("f", equation, gradient)}
    marks = grade(sheet, {1: answers})
    assert [(m.quantity, m.right) for m in marks] == [("f", True), (equation, False), (gradient, False)]
    text = report(marks, cell, sheet.tolerance)
    lines = text.splitlines()
    assert lines[2] == "    " + says  # under the wrong adjoint
    assert "    " + says in lines[4:-1]  # and under the gradient it flows into
    assert "1 of 3 answers right" in text


def test_a_zero_entry_says_nothing_about_the_digits_an_answer_was_written_to():
    assert Claim("grad:W", ((0.1661, 0), (0.0878, 0))).tolerance() == pytest.approx(0.00005)
    assert Claim("f", (0, 0)).tolerance() == 0.5


def test_a_slip_that_would_break_a_right_answer_is_not_named():
    cell = lstm()
    sheet = make_sheet(cell, "lstm", 1, seed=3, backward=True)
    ev = sheet.problems[0].graded(cell, [])
    slip = next(s for s in slips_of(ev) if s.kind == "transposed" and s.equation == "bar:z"
                and [str(n) for n in s.names] == ["W_o", "h_prev"])
    wrong = run(ev, [slip])
    untransposed = "    you used the block of W_o that meets h_{t-1} without its transpose in z̄_t"
    alone = report(grade(sheet, {1: {"bar:z": np.round(wrong["bar:z"], 4).tolist()}}), cell, sheet.tolerance)
    assert untransposed in alone.splitlines() and "in C̄_t" in alone  # C_{t-1} in C̄ gives this z̄ too
    marks = grade(sheet, {1: {q: np.round(wrong[q], 4).tolist() for q in ("bar:C", "bar:z")}})
    assert [m.right for m in marks] == [True, False]
    said = [ln for ln in report(marks, cell, sheet.tolerance).splitlines() if ln.startswith("    ")]
    assert said == [untransposed]  # but C̄ was written right
