"""Exercise sheets: one-step problems on a cell with clean numbers, their solutions, and grading.

`make_sheet(cell, reference, count, seed, backward)` draws `count` problems, reproducibly from the seed:
inputs, states and weights are small integers (−1, 0, 1; inputs and the cell state also 2), drawn again
until every σ(a) and tanh(a) the step computes has an integer argument from −3 to 3, where the sheet
tabulates them. A backward problem also gives ∂L/∂y_t of the cell's output and asks for every adjoint
and gradient. The answers are what the evaluator computes (`worked.evaluate`, `backprop.backward_example`,
exactly, then in floats); `grade` judges a student's numbers to the sheet's tolerance and, for a wrong
value, names the slips (`slips.diagnose`) that reproduce it, the student's other answers carried in. A
wrong adjoint or gradient is diagnosed the same way, on the forward and adjoint step as one program
(`Adjoint.program`): "you left out σ′ = f_t ⊙ (1 - f_t) in ā_{f,t}". A slip that would have made one of
the student's right answers wrong is not named where another explains the wrong one (`slips.keeping_right`).

A sheet is saved as JSON (`Sheet.save`, `load_sheet`): the cell's reference (a built-in name or
file.py:function), the seed, and each problem's numbers, so grading needs nothing else.

Imports: json, numpy, sympy, gategraph.backprop, gategraph.cells, gategraph.derive, gategraph.slips, gategraph.worked,
gategraph.errors, gategraph.files.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sympy as sp

from gategraph.backprop import backward_example
from gategraph.cells import load_cell
from gategraph.derive import Role, adjoint_name, derive
from gategraph.errors import UsageError, ValueInputError
from gategraph.files import atomic_write
from gategraph.numeric import to_float
from gategraph.ops import op_of
from gategraph.slips import Diagnosis, diagnose, keeping_right
from gategraph.spec import Cell
from gategraph.worked import Claim, Evaluation, evaluate

TABLE = range(-3, 4)  # σ(a) and tanh(a) are printed on the sheet for these a
TOLERANCE = 0.01  # an answer holds within this of the solution, in every entry
SIZES = {"X": 2, "H": 2}  # other sizes (an attended memory's S, ...) are 2 as well
TRIES = 500


@dataclass
class Problem:
    number: int
    values: dict  # public name -> nested lists of ints: every input, state and parameter
    d_output: list | None = None  # backward: ∂L/∂y_t of the cell's first output

    def evaluation(self, cell: Cell, claims=(), exact: bool = True) -> Evaluation:
        return evaluate(cell, self.values, claims=claims, exact=exact)

    def solution(self, cell: Cell) -> dict:
        """quantity key -> its value in floats: each equation by name; backward also each adjoint by its
        variable's name (`bar:C`, `pre:f`) and each gradient as `grad:W_f`."""
        ev = self.evaluation(cell)
        out = {s.name: to_float(s.value) for s in ev.steps}
        if self.d_output is not None:
            ex = self.backward(cell)
            out |= {eq.name: to_float(ex.steps[0][eq.name]) for eq in ex.adjoint.equations}
            out |= {f"grad:{p}": to_float(ex.grads[p]) for p, g in ex.adjoint.grads.items() if g != 0}
        return out

    def graded(self, cell: Cell, claims) -> Evaluation:
        """The problem in floats with `claims` checked: on the cell, or for a backward problem on its forward
        and adjoint step as one program (`Adjoint.program`), so a wrong adjoint is diagnosed like a wrong
        forward value."""
        if self.d_output is None:
            return self.evaluation(cell, claims, exact=False)
        forward, adjoint = self.evaluation(cell, exact=False), derive(cell)
        # one step: nothing comes back from step t+1, and the loss reads the first output only
        reads = {name: np.zeros_like(forward[out]) for out, name in adjoint.seeds.items()}
        reads |= {adjoint_name(Role.CARRY, st.name): np.zeros_like(forward[st.name]) for st in cell.states}
        reads[adjoint.seeds[cell.outputs[0]]] = np.asarray(self.d_output, dtype=float)
        return evaluate(adjoint.program(), {**self.values, **reads}, claims=claims, exact=False)

    def backward(self, cell: Cell):
        return backward_example(cell, self.values, d_output=self.d_output)


@dataclass
class Sheet:
    cell: str  # a built-in name or file.py:function
    seed: int
    backward: bool
    problems: list = field(default_factory=list)
    tolerance: float = TOLERANCE

    def save(self, path: Path) -> Path:
        data = {"cell": self.cell, "seed": self.seed, "backward": self.backward, "tolerance": self.tolerance,
                "problems": [{"number": p.number, "values": p.values, "d_output": p.d_output}
                             for p in self.problems]}
        return atomic_write(Path(path), (json.dumps(data, indent=1) + "\n").encode())


def load_sheet(path) -> Sheet:
    """A sheet saved by `Sheet.save` (a damaged or foreign file is one line naming it)."""
    try:
        data = json.loads(Path(path).read_text())
        problems = [Problem(p["number"], p["values"], p["d_output"]) for p in data["problems"]]
        return Sheet(data["cell"], data["seed"], data["backward"], problems, data["tolerance"])
    except FileNotFoundError:
        raise UsageError(f"no sheet at {path}: give the sheet.json that `gategraph exercises` wrote") from None
    except (ValueError, KeyError, TypeError):
        raise ValueInputError(f"{path} is not a sheet written by `gategraph exercises`") from None


def _draw(cell: Cell, rng: np.random.Generator) -> dict:
    shapes = cell.with_sizes(**{s.name: SIZES.get(s.name, 2) for s in cell.sizes})
    values = {}
    for d in cell.decls:
        name = d.state or d.name
        wide = d.role == "input" or name == "C"
        values[name] = rng.integers(-1, 3 if wide else 2, size=shapes[d.name]).tolist()
    return values


def _clean(ev: Evaluation) -> bool:
    """Every σ(a), tanh(a) the step computes at the top of an equation has an integer a from −3 to 3."""
    for step in ev.steps:
        if step.argument is not None and op_of(ev.cell.equation(step.name).rhs).name in ("Sigmoid", "Tanh"):
            for a in np.ravel(step.argument):
                if not (sp.sympify(a).is_Integer and int(a) in TABLE):
                    return False
    return True


def make_sheet(cell: Cell, reference: str, count: int, seed: int = 0, backward: bool = False) -> Sheet:
    """`count` problems with clean numbers, the same for the same seed."""
    rng = np.random.default_rng(seed)
    sheet = Sheet(reference, seed, backward)
    for number in range(1, count + 1):
        for _ in range(TRIES):
            values = _draw(cell, rng)
            if _clean(evaluate(cell, values)):
                break
        else:
            raise UsageError(f"cell {cell.name!r}: no problem with σ and tanh arguments from -3 to 3 in {TRIES} "
                             "draws; its equations need other numbers than small integers")
        d_output = None
        if backward:
            shape = np.shape(evaluate(cell, values)[cell.outputs[0]])
            d_output = rng.choice([-1, 1], size=shape).tolist()  # never 0: every adjoint has work to do
        sheet.problems.append(Problem(number, values, d_output))
    return sheet


# --- grading -------------------------------------------------------------------------------------------


@dataclass
class Mark:
    problem: int
    quantity: str
    given: np.ndarray
    expected: np.ndarray
    right: bool
    diagnosis: Diagnosis | None = None
    evaluation: Evaluation | None = None  # the problem with the student's forward values as claims
    rounded: bool = False  # right to the digits written, but those are too few for the sheet's tolerance


def read_answers(path) -> dict:
    """{problem number: {quantity: [values]}} from JSON ({"1": {"h": [0.5, 0.2]}}) or CSV (rows
    `problem,quantity,value` with a vector's entries separated by `;`)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".csv":
            out: dict = {}
            with path.open(newline="") as f:
                for row in csv.DictReader(f):
                    values = [float(v) for v in row["value"].split(";")]
                    out.setdefault(int(row["problem"]), {})[row["quantity"].strip()] = values
            return out
        return {int(k): {q: np.atleast_1d(np.asarray(v, dtype=float)).tolist() for q, v in answers.items()}
                for k, answers in json.loads(path.read_text()).items()}
    except FileNotFoundError:
        raise UsageError(f"no answers at {path}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueInputError(f"{path}: answers are JSON {{\"1\": {{\"h\": [0.5, 0.2]}}}} or CSV with columns "
                              "problem,quantity,value (entries separated by ;)") from None


def grade(sheet: Sheet, answers: dict) -> list[Mark]:
    """Each answer against the solution, within the sheet's tolerance; each wrong forward value diagnosed."""
    cell, marks = load_cell(sheet.cell), []
    problems = {p.number: p for p in sheet.problems}
    for number, given in sorted(answers.items()):
        if number not in problems:
            raise ValueInputError(f"the answers name problem {number}; the sheet has 1 to {len(problems)}")
        problem = problems[number]
        solution = problem.solution(cell)
        unknown = sorted(set(given) - set(solution))
        if unknown:
            raise ValueInputError(f"problem {number}: no quantity {', '.join(unknown)}; the sheet asks for "
                                  f"{', '.join(solution)}")
        claims = [Claim(q, tuple(v)) for q, v in given.items() if np.shape(v) == np.shape(solution[q])]
        ev = problem.graded(cell, claims)
        found = {d.verdict.claim.name: keeping_right(ev, d) for d in diagnose(ev)}
        for q, v in given.items():
            value = np.asarray(v, dtype=float)
            expected = solution[q]
            shaped = value.shape == np.shape(expected)
            right = shaped and bool(np.all(np.abs(value - expected) <= sheet.tolerance))
            rounded = shaped and not right and ev.verdict(q) is not None and ev.verdict(q).holds
            marks.append(Mark(number, q, value, expected, right, None if right else found.get(q), ev, rounded))
    return marks
