"""Claims from data: a score called chance only where an exact binomial test says so; teacher forcing compared
by the step of the first exact free-running output over seeds; where attention lands on the digits it copies."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from gategraph.claims import Alignment, against_chance, chance_of, copy_attention, first_exact, teacher_forcing
from gategraph.errors import UsageError
from gategraph.tasks import Dates
from gategraph.train import Config, train


def two_sided_p(k: int, n: int, p0: float) -> float:
    """The exact two-sided binomial p-value, summed by hand: every outcome no likelier than k."""
    probs = [math.comb(n, i) * p0**i * (1 - p0) ** (n - i) for i in range(n + 1)]
    return sum(q for q in probs if q <= probs[k] * (1 + 1e-7))


def test_a_score_near_chance_on_many_items_is_called_chance():
    test = against_chance(0.2505, 9216, 4)
    assert test.at_chance and test.hits == 2309
    assert "which is chance (25%" in test.wording() and "9216 test items" in test.wording()


def test_a_score_a_few_points_above_chance_on_many_items_is_not():
    test = against_chance(0.27, 9216, 4)
    assert not test.at_chance and test.p_value < 1e-3
    assert "above chance" in test.wording() and "which is chance" not in test.wording()


def test_on_few_items_even_a_higher_score_cannot_be_told_from_chance():
    test = against_chance(3 / 8, 8, 4)
    assert test.p_value == pytest.approx(two_sided_p(3, 8, 0.25))
    assert test.at_chance


def test_the_p_value_is_the_exact_binomial_one():
    for k, n, classes in ((0, 8, 4), (7, 20, 2), (40, 100, 4)):
        assert against_chance(k / n, n, classes).p_value == pytest.approx(two_sided_p(k, n, 1 / classes), rel=1e-9)


@pytest.mark.parametrize("score, n, classes", [(1.5, 10, 4), (0.5, 0, 4), (0.5, 10, 1)])
def test_a_test_against_chance_refuses_what_it_cannot_test(score, n, classes):
    with pytest.raises(UsageError, match="a test against chance needs"):
        against_chance(score, n, classes)


def test_a_forward_model_on_the_future_task_counts_every_masked_in_position():
    """The future task's answer lies two steps ahead: a model reading forwards is at chance, and the test
    counts test sequences × (T − 2) items."""
    run = train(Config(cell="gru", task="future", hidden=8, steps=20, lr=0.003, eval_every=20, test_size=64))
    test = chance_of(run)
    assert test.n == 64 * 18 and test.classes == 4
    assert test.at_chance, test.wording()


def _run(history, steps=400):
    return SimpleNamespace(history=history, config=SimpleNamespace(steps=steps))


def _history(first):
    """Scores every 10 steps; exact from step `first` on (None: never)."""
    return [{"step": s, "test_exact_match": float(first is not None and s >= first)} for s in range(10, 401, 10)]


def test_teacher_forcing_is_compared_by_the_first_exact_output_of_each_seed():
    runs = {}
    for seed, forced, free in ((0, 120, 300), (1, 90, None), (2, 200, 150)):
        runs[seed, "forced"], runs[seed, "free"] = _run(_history(forced)), _run(_history(free))
    trial = teacher_forcing(runs)
    assert trial.forced == (120, 90, 200) and trial.free == (300, None, 150)
    assert trial.median("forced") == 120 and trial.median("free") == 300
    assert trial.faster == 2
    words = trial.wording()
    assert "Over 3 seeds" in words and "after 120 steps with teacher forcing" in words
    assert "after 300 steps without" in words and "first on 2 of 3 seeds" in words


def test_a_seed_that_never_writes_the_line_counts_as_the_latest():
    runs = {(s, k): _run(_history(None if k == "free" else 50)) for s in (0, 1) for k in ("forced", "free")}
    trial = teacher_forcing(runs)
    assert trial.median("free") is None and "not within 400 steps without" in trial.wording()
    assert first_exact(_history(None)) is None


def test_a_comparison_needs_both_runs_of_every_seed():
    with pytest.raises(UsageError, match="missing: seed 0 free"):
        teacher_forcing({(0, "forced"): _run(_history(10))})


@pytest.mark.parametrize("source, copies", [
    ("3 may 1999", [6, 7, 8, 9, None, None, None, None, None, 0]),
    ("26 november 2026", [12, 13, 14, 15, None, None, None, None, 0, 1]),
    ("november 26, 2026", [13, 14, 15, 16, None, None, None, None, 9, 10]),
])
def test_each_digit_of_an_iso_date_knows_the_source_digit_it_copies(source, copies):
    assert Dates.copies(source) == copies


def test_a_source_without_a_year_is_no_date():
    with pytest.raises(UsageError, match="not a date"):
        Dates.copies("26 november")


def test_attention_on_the_copied_digit_and_one_step_after_it():
    source, text = "26 november 2026", "2026-11-26"
    S = len(source)
    on = np.eye(S)[[j if j is not None else 5 for j in Dates.copies(source)]]
    late = np.eye(S + 1)[[j + 1 if j is not None else 5 for j in Dates.copies(source)]]  # the year's 6: past the end
    assert copy_attention(source, text, on) == Alignment(copied=6, on=6, after=0)
    assert copy_attention(source, text, late) == Alignment(copied=6, on=0, after=6)
    wrong = copy_attention(source, "2027-11-26", on)  # the fourth digit is no copy of the source's 6
    assert wrong.copied == 5
