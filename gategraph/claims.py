"""Claims from data, computed and worded from the data: what a slide may say about a trained model.

- `against_chance`: a score of k hits in n test items set against chance (1/classes) by an exact two-sided
  binomial test; "which is chance" only where the test cannot tell the score from chance.
- `teacher_forcing`: runs with and without teacher forcing over several seeds (keyed (seed, "forced" | "free")),
  compared by one measure that is fair to both: the training step at which free-running (greedy) decoding
  first writes the target exactly.
- `alignment`: where a sequence-to-sequence model's attention lands on the characters its output copies,
  exactly (offset 0) and one step later (offset 1).

Imports: scipy.stats, numpy, gategraph.train, gategraph.tasks, gategraph.errors.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from gategraph.errors import UsageError
from gategraph.tasks import Dates
from gategraph.train import Run, decode

ALPHA = 0.05  # the test's level: a score is "chance" while p ≥ ALPHA


@dataclass(frozen=True)
class ChanceTest:
    """k hits in n items against chance p0 = 1/classes; `p_value` of the exact two-sided binomial test."""

    hits: int
    n: int
    classes: int
    p_value: float

    @property
    def score(self) -> float:
        return self.hits / self.n

    @property
    def chance(self) -> float:
        return 1 / self.classes

    @property
    def at_chance(self) -> bool:
        return self.p_value >= ALPHA

    def wording(self) -> str:
        """'scores 25% of 9216 test items, which is chance (25%; exact binomial test, p = 0.61)' or
        '... above chance (...; p < 0.001)'."""
        p = f"p = {self.p_value:.2g}" if self.p_value >= 0.001 else "p < 0.001"
        if self.at_chance:
            verdict = "which is chance"
        else:
            verdict = "above chance" if self.score > self.chance else "below chance"
        return (f"scores {self.score:.0%} of {self.n} test items, {verdict} ({self.chance:.0%}; exact binomial "
                f"test, {p})")


def against_chance(score: float, n: int, classes: int) -> ChanceTest:
    """The exact binomial test of k = round(score·n) hits in n items against p0 = 1/classes:
    p = P(|K − n·p0| as unlikely as |k − n·p0|), K ~ Binomial(n, p0)."""
    if n < 1 or classes < 2 or not 0 <= score <= 1:
        raise UsageError(f"a test against chance needs a score from 0 to 1, at least 1 item and 2 classes; got "
                         f"score {score}, {n} items, {classes} classes")
    hits = round(score * n)
    return ChanceTest(hits, n, classes, float(binomtest(hits, n, 1 / classes).pvalue))


def scored_items(run: Run) -> int:
    """How many test items a run's accuracy counts: the masked-in positions of its test set (many-to-many),
    its test sequences otherwise."""
    _, y, mask = run.test
    if mask is not None:
        return int(mask.sum())
    return int(y.size) if run.model.structure == "many-to-many" else len(y)


def chance_of(run: Run, metric: str = "test_accuracy") -> ChanceTest:
    """A classification run's last test accuracy against chance (1 / its number of classes)."""
    score = next((r[metric] for r in reversed(run.history) if metric in r), None)
    if score is None:
        raise UsageError(f"the run has no {metric} yet: train it first")
    return against_chance(score, scored_items(run), run.task.output_size)


# --- teacher forcing -----------------------------------------------------------------------------------------


def first_exact(history: list[dict], metric: str = "test_exact_match") -> int | None:
    """The first step at which free-running decoding wrote every test target exactly (None: never)."""
    return next((r["step"] for r in history if r.get(metric) == 1.0), None)


@dataclass(frozen=True)
class ForcingTrial:
    """Per seed, the step of the first exact output with teacher forcing and without (None: not within
    `steps`)."""

    seeds: tuple
    forced: tuple
    free: tuple
    steps: int

    def median(self, which: str) -> float | None:
        """The median over seeds, a seed that never got there counted as later than any that did."""
        values = [v if v is not None else float("inf") for v in getattr(self, which)]
        m = statistics.median(values)
        return None if m == float("inf") else m

    @property
    def faster(self) -> int:
        """On how many seeds teacher forcing got there first (a tie counts for neither)."""
        def late(step):
            return step if step is not None else float("inf")

        return sum(late(a) < late(b) for a, b in zip(self.forced, self.free, strict=True))

    def wording(self) -> str:
        def said(m):
            return f"{m:.0f} steps" if m is not None else f"not within {self.steps} steps"

        return (f"Over {len(self.seeds)} seeds, the model first writes the line exactly after "
                f"{said(self.median('forced'))} with teacher forcing and after {said(self.median('free'))} without "
                f"(medians); teacher forcing gets there first on {self.faster} of {len(self.seeds)} seeds.")


def teacher_forcing(runs: dict) -> ForcingTrial:
    """Compare runs keyed (seed, "forced" | "free"): teacher forcing 1 and 0, alike in everything else."""
    seeds = tuple(sorted({s for s, _ in runs}))
    missing = [f"seed {s} {k}" for s in seeds for k in ("forced", "free") if (s, k) not in runs]
    if missing:
        raise UsageError(f"a teacher-forcing comparison needs both runs of every seed; missing: {', '.join(missing)}")
    steps = max(run.config.steps for run in runs.values())
    return ForcingTrial(seeds, tuple(first_exact(runs[s, "forced"].history) for s in seeds),
                        tuple(first_exact(runs[s, "free"].history) for s in seeds), steps)


# --- attention's alignment -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alignment:
    """Of `copied` output characters that copy a source character, how many put their largest attention weight
    on that character (`on`), and how many on the character after it (`after`)."""

    copied: int
    on: int
    after: int

    def wording(self) -> str:
        return (f"Of {self.copied} digits copied from the source, {self.on / self.copied:.0%} attend most to the "
                f"digit they copy and {self.after / self.copied:.0%} to the character after it.")


def copy_attention(source: str, text: str, alphas: np.ndarray) -> Alignment:
    """For every character i of `text` that copies source character j (`Dates.copies`; a wrong character is
    no copy), is argmax_k α[i, k] equal to j (on it), or to j + 1 (after it)?"""
    copied = on = after = 0
    for i, j in enumerate(Dates.copies(source)[: len(text)]):
        if j is None or text[i] != source[j]:
            continue
        k = int(np.argmax(alphas[i]))
        copied, on, after = copied + 1, on + (k == j), after + (k == j + 1)
    return Alignment(copied, on, after)


def alignment(run: Run, sources: list[str]) -> Alignment:
    """`copy_attention` summed over the dates a run decodes from `sources`."""
    if not isinstance(run.task, Dates) or run.model.attn is None:
        raise UsageError("attention's alignment is measured on a dates run with attention")
    parts = [copy_attention(*decode(run, source, length=12)) for source in sources]
    total = Alignment(*(sum(getattr(a, f) for a in parts) for f in ("copied", "on", "after")))
    if not total.copied:
        raise UsageError("none of the outputs copies a source character: nothing to measure")
    return total


def held_out_dates(run: Run, n: int = 200) -> list[str]:
    """n written dates of the run's test kind (held out of its training), the same for every call."""
    return [s for s, _ in run.task.pairs(np.random.default_rng(run.config.seed + 10**6), n, test=True)]
