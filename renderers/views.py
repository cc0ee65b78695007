"""The views of gategraph as deck blocks: what a deck directive (```` ```{gategraph} VIEW ARGS ````) shows.

Each view takes the options of the command it shows (`equations`, `graph`, `derive`, `check`, `jacobian`,
`example`, `structure`, `train`, `sweep`) and builds its blocks with the functions that command and the built-in decks
use (`graph_dot` and `derive_rows` are shared with the command line here; `example_step` with the lecture).
Options are parsed when a source is read, so a bad one is reported before anything is drawn or trained.

Trained results are runs: a `train` view names its runs by their configuration (gategraph.runs) and only
reads them; a run not trained yet is shown as a visible placeholder. A `sweep` view reads the runs of a sweep's
grid (gategraph.sweep) from a folder named by its spec, the same way. Whoever builds the deck makes the runs
first (`gategraph deck` does, with a progress line per run).

Imports: gategraph (engine: cells, derive, check, worked, homework, runs, sweep, train, tasks), renderers.*.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from gategraph.cells import load_cell
from gategraph.check import finite_differences
from gategraph.derive import derive
from gategraph.errors import UsageError
from gategraph.files import file_stem
from gategraph.renderers.deck import Columns, Figure, Math, Note, Table, Text, drawn, plain
from gategraph.renderers.derivation import (
    adjoint_rows,
    align,
    bptt_rows,
    derivation_steps,
    derivation_table,
    jacobian_rows,
)
from gategraph.renderers.diagnosis import deck_sentence
from gategraph.renderers.graphviz import STRUCTURES, backward_dot, cell_dot, render, structure_dot, unrolled_dot
from gategraph.renderers.latex import equation, equations, lhs
from gategraph.renderers.layout import BODY_HEIGHT, height
from gategraph.renderers.walkthrough import (
    adjoint_lines,
    array,
    backward_blocks,
    claim_table,
    gradient_lines,
    step_lines,
)
from gategraph.runs import SEED, add_options, cached, config_of, count, run_name, swept
from gategraph.slips import diagnose

NOT_TRAINED = ("Not trained yet: this slide shows {what} of {runs} once the deck is built with training "
               "(without --no-train).")
COMPACT = 0.82  # a worked example's chain and claims: a little smaller, so the two share a slide
AUTHOR_LINES = 2 * 50  # room a worked example's step leaves for the author's own words on its slide
BESIDE = 0.58  # the chain's share of the width when the claims go beside it


# --- shared with the command line ------------------------------------------------------------------------------


def graph_dot(cell, backward: bool = False, unroll: int | None = None, highlight: str | None = None):
    """The Graphviz graph `gategraph graph` draws: one step, its backward pass, or `unroll` steps with the
    gradient's path back to the state `highlight`."""
    if highlight and not unroll:
        raise UsageError("--highlight marks a path through time: give --unroll T too")
    if backward and unroll:
        raise UsageError("choose one of --backward and --unroll")
    if highlight and highlight not in {st.name for st in cell.states}:
        names = ", ".join(st.name for st in cell.states) or "none"
        raise UsageError(f"--highlight takes a carried state of {cell.name!r}: {names}")
    if backward:
        return backward_dot(cell, derive(cell))
    return unrolled_dot(cell, unroll, highlight) if unroll else cell_dot(cell)


def derive_rows(adj, param: str | None = None, bptt: bool = False, style: str = "latex",
                notation: str = "bar") -> list[tuple]:
    """The rows `gategraph derive` prints: the chain rule for `param` step by step, the recurrences through
    time (`bptt`), or the whole backward step."""
    if param:
        if param not in adj.grads:
            raise UsageError(f"{param!r} is not a parameter of {adj.cell.name!r}; "
                             f"its parameters are {', '.join(adj.grads)}")
        return derivation_steps(adj, param, style, notation)
    return bptt_rows(adj, style, notation) if bptt else adjoint_rows(adj, style, notation)


def checked(cell, T: int = 4, seed: int = 0) -> Text:
    """Central finite differences against the derived adjoint, as one sentence with the largest error."""
    rows = finite_differences(cell, T=T, seed=seed)
    worst = max(r.max_rel or 0.0 for r in rows)
    verdict = "every gradient agrees" if all(r.ok for r in rows) else "a gradient disagrees"
    return Text(f"Central finite differences against the derived adjoint, {len(rows)} quantities "
                f"(every parameter, the inputs, the initial states): largest relative error "
                f"{worst:.1e}; {verdict}.")


def example_step(ev, step) -> list:
    """One step of a worked example: its chain of values, then what a source claims against what is computed
    (a compact table) and, for each claim that does not hold, a warning with the slips that explain it — below
    the chain when that leaves room for a line of the author's text, else beside it."""
    lines = step_lines(ev, step, "latex")
    if len(lines) > 4:  # the short last steps of the chain on one line, so the claims fit below it
        lines = lines[:3] + [lines[3] + " " + " ".join(line.replace("&", "", 1) for line in lines[4:])]
    chain = Math("\\begin{aligned}" + r" \\ ".join(lines) + "\\end{aligned}", scale=COMPACT)
    side = []
    if step.given:
        side.append(Text("The slide gives this value rather than computing it; the example takes it as given."))
    table = claim_table(ev, step)
    if table:
        side.append(Math(table, scale=COMPACT))
    diagnoses = {d.verdict.claim.key: d for d in diagnose(ev)}
    for v in (v for v in ev.verdicts if v.claim.name == step.name and not v.holds):
        why = f": {v.claim.note}" if v.claim.note else ""
        side.append(Note(f"The slide's value does not hold (off by {v.error:.3g}){why}. "
                         f"{deck_sentence(ev, diagnoses[v.claim.key])}", "warn"))
    if height(chain) + sum(height(b) for b in side) <= BODY_HEIGHT - AUTHOR_LINES:
        return [chain, *side]
    return [Columns([chain], side, BESIDE)]


# --- directives -----------------------------------------------------------------------------------------------


class _Options(argparse.ArgumentParser):
    """A directive's options: a mistake is a UsageError (the source reader adds where it is), never an exit."""

    def __init__(self, view: str):
        super().__init__(prog=view, add_help=False, exit_on_error=False)

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")

    def parse_args(self, args=None, namespace=None):
        try:
            return super().parse_args(args, namespace)
        except argparse.ArgumentError as e:  # what exit_on_error=False raises instead of calling error()
            raise UsageError(f"{self.prog}: {e}") from None


@dataclass
class Directive:
    """One view of a source, its options parsed; `runs` are the (label, Config) a `train` view shows, `points`
    the runs of a `sweep` view's grid (sweep.Point)."""

    view: str
    args: argparse.Namespace
    where: str
    runs: list = field(default_factory=list)
    points: list = field(default_factory=list)


@dataclass
class Room:
    """Where a view's files go: its figures (named by the directive's place, so no two collide), the runs, and
    the sweeps (each in a folder named by its spec, beside the runs unless given)."""

    figures: Path
    runs: Path
    sweeps: Path | None = None

    def __post_init__(self):
        if self.sweeps is None:
            self.sweeps = self.runs.parent / "sweeps"

    def figure(self, d: Directive, what: str) -> Path:
        """The stem a figure of this directive is drawn under, once per format the writers show (deck.drawn)."""
        return self.figures / f"{file_stem(d.where)}-{what}"


def _cell_ref(ref: str, base: Path) -> str:
    """A cell reference with a file's path taken relative to the source's folder (`mgu.py:mgu`)."""
    if ":" in ref and ref.split(":", 1)[0].endswith(".py"):
        path, func = ref.rsplit(":", 1)
        return f"{(base / path)}:{func}"
    return ref


def _figure_options(p):
    p.add_argument("--caption", default="", help="a caption under the figure")
    p.add_argument("--width", type=float, default=0.8, help="the share of the slide's width (0.1 to 1)")


def _options(view: str) -> _Options:
    p = _Options(view)
    if view in ("equations", "graph", "derive", "check", "jacobian"):
        p.add_argument("cell")
    if view == "equations":
        p.add_argument("--only", help="some equations, by name: f,i,C")
    elif view == "graph":
        p.add_argument("--backward", action="store_true")
        p.add_argument("--unroll", type=count(1, 50), metavar="T")
        p.add_argument("--highlight", metavar="STATE")
        _figure_options(p)
    elif view == "derive":
        which = p.add_mutually_exclusive_group()
        which.add_argument("--param")
        which.add_argument("--bptt", action="store_true")
        which.add_argument("--table", metavar="P,Q", help="several parameters' gradients side by side, one row each")
        p.add_argument("--steps", action="store_true", help="reveal one row per key press")
        p.add_argument("--notation", choices=("bar", "frac"), default="bar")
    elif view == "check":
        p.add_argument("--steps", type=count(1, 50), default=4)
        p.add_argument("--seed", type=SEED, default=0)
    elif view == "jacobian":
        p.add_argument("--state", help="one carried state (default: each)")
    elif view == "example":
        p.add_argument("name")
        show = p.add_mutually_exclusive_group()
        show.add_argument("--step", help="one equation of the example, by name (C_tilde)")
        show.add_argument("--verdicts", action="store_true", help="how many of the claimed values hold")
        show.add_argument("--backward", action="store_true", help="the backward pass with numbers")
        p.add_argument("--target", help="backward: the loss ½‖y − target‖², e.g. 0,1")
        p.add_argument("--dh", help="backward: ∂L/∂y itself, e.g. 1,0")
        p.add_argument("--steps", type=count(1, 4), default=1, help="backward: unroll K steps")
        p.add_argument("--adjoints", help="backward: only these adjoints, e.g. bar:h,bar:o,pre:o")
        p.add_argument("--gradients", help="backward: only these parameters' gradients, e.g. b_f,W_o")
        p.add_argument("--sizes")
        p.add_argument("--seed", type=SEED, default=0)
        p.add_argument("--floats", action="store_true")
    elif view == "structure":
        p.add_argument("kind", choices=STRUCTURES)
        _figure_options(p)
    elif view == "sweep":
        p.add_argument("spec", type=Path, help="a sweep's TOML file (see `gategraph sweep`), beside the source")
        p.add_argument("--show", choices=SWEEP_SHOWS, required=True)
        _figure_options(p)
    elif view == "train":
        p.add_argument("cell", nargs="?")
        add_options(p)
        p.add_argument("--show", choices=SHOWS, required=True)
        p.add_argument("--input", action="append", default=[], help="decode this text (repeatable)")
        _figure_options(p)
    return p


VIEWS = ("equations", "graph", "derive", "check", "jacobian", "example", "structure", "train", "sweep")
SHOWS = ("score", "loss", "gates", "heatmap", "gradients", "decode", "chance", "alignment", "forcing")
SWEEP_SHOWS = ("table", "curves", "finals")


def parse(header: str, body: str, where: str, base: Path) -> Directive:
    """A directive from its header (`derive lstm --param W_f --steps`) and body, checked: the view, its options,
    the cells it names (loaded), and for `train` the configuration of each run (one per body line
    `label: more options`, else one). A mistake raises UsageError."""
    try:
        words = shlex.split(header)
    except ValueError as e:
        raise UsageError(f"cannot read the directive's options: {e}") from None
    if not words:
        raise UsageError(f"a {{gategraph}} block names a view: one of {', '.join(VIEWS)}")
    view, rest = words[0], words[1:]
    if view not in VIEWS:
        raise UsageError(f"unknown directive {view!r}: the views are {', '.join(VIEWS)}")
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if view == "train":
        return _train_directive(rest, lines, where, base)
    if lines:
        raise UsageError(f"the {view} directive takes no body (its options go on the first line)")
    args = _options(view).parse_args(rest)
    if hasattr(args, "cell"):
        args.cell = _cell_ref(args.cell, base)
        cell = load_cell(args.cell)
        _check_names(view, args, cell)
    if view == "example":
        if args.name != "lecture-lstm":
            args.name = _cell_ref(args.name, base)
        cell = load_cell("lstm" if args.name == "lecture-lstm" else args.name)
        known = [e.name for e in cell.equations]
        if args.step and args.step not in known:
            raise UsageError(f"--step: the example has no equation {args.step!r}; its equations are "
                             f"{', '.join(known)}")
    if view == "sweep":
        from gategraph.sweep import read_spec

        args.spec = base / args.spec
        return Directive(view, args, where, points=read_spec(args.spec))
    if view in ("graph", "structure", "sweep") and not 0.1 <= args.width <= 1:
        raise UsageError(f"--width is a share of the slide's width, 0.1 to 1; got {args.width}")
    return Directive(view, args, where)


def _check_names(view, args, cell):
    """The names a view's options give are the cell's own."""
    if view == "equations" and args.only:
        known = [e.name for e in cell.equations]
        for name in args.only.split(","):
            if name.strip() not in known:
                raise UsageError(f"--only: {cell.name!r} has no equation {name.strip()!r}; its equations are "
                                 f"{', '.join(known)}")
    if view == "graph" and (args.highlight or args.backward):
        graph_dot(cell, args.backward, args.unroll, args.highlight)
    if view == "derive" and (args.param or args.table):
        adj = derive(cell)
        for name in [args.param] if args.param else [n.strip() for n in args.table.split(",")]:
            if name not in adj.grads:
                derive_rows(adj, name)  # refuses it, naming the parameters there are
    if view == "jacobian" and args.state and args.state not in {st.name for st in cell.states}:
        raise UsageError(f"--state takes a carried state of {cell.name!r}: "
                         f"{', '.join(st.name for st in cell.states) or 'none'}")


def _train_directive(rest: list, lines: list, where: str, base: Path) -> Directive:
    from gategraph.tasks import get_task

    p = _options("train")
    args = p.parse_args(rest)
    runs = []
    for line in lines or [""]:
        label, sep, more = line.partition(":")
        if lines and not sep:
            raise UsageError(f"each line of a train directive's body is 'label: options', got {line!r}")
        one = p.parse_args(rest + shlex.split(more))
        if one.cell:
            one.cell = _cell_ref(one.cell, base)
        config = config_of(one)
        runs.append((label.strip() or config.cell.rsplit(":", 1)[-1], config))
    tasks = [get_task(c.task, **c.task_options) for _, c in runs]
    if args.show in ("gates", "heatmap", "decode") and len(runs) > 1:
        raise UsageError(f"--show {args.show} shows one run; this directive names {len(runs)}")
    if args.show in ("heatmap", "decode") and any(t.structure != "seq2seq" for t in tasks):
        raise UsageError(f"--show {args.show} is for sequence-to-sequence tasks (dates, reverse, wheels)")
    if args.show == "heatmap" and not runs[0][1].attention:
        raise UsageError("--show heatmap draws attention weights: the run needs --attention")
    if args.show == "gates" and tasks[0].structure == "seq2seq":
        raise UsageError("--show gates is for an encoder's gates on a task that is not sequence to sequence")
    if args.show == "gradients" and any(t.structure != "many-to-one" or t.loss != "mse" for t in tasks):
        raise UsageError("--show gradients measures ‖∂L/∂h_t‖ of a many-to-one regression (the adding task)")
    if args.show == "chance" and any(t.loss != "xent" or t.structure == "seq2seq" for t in tasks):
        raise UsageError("--show chance tests a classifier's accuracy against chance (the future or sentiment task)")
    if args.show == "alignment" and (len(runs) > 1 or tasks[0].name != "dates" or not runs[0][1].attention):
        raise UsageError("--show alignment measures one dates run with --attention")
    if args.show == "forcing":
        _check_forcing(runs, tasks)
    if args.show == "decode" and not args.input:
        raise UsageError("--show decode needs the texts to read: --input TEXT (repeatable)")
    alphabet = getattr(tasks[0], "source_vocab", None)
    for text in args.input:
        bad = sorted({c for c in text if alphabet and c not in alphabet})
        if bad:
            raise UsageError(f"--input {text!r}: the {tasks[0].name} task has no {', '.join(map(repr, bad))} in "
                             "its input alphabet")
    if args.input and args.show not in ("heatmap", "decode"):
        raise UsageError("--input is for --show heatmap or decode")
    if args.show == "heatmap" and len(args.input) > 1:
        raise UsageError("--show heatmap draws one input: give --input once")
    return Directive("train", args, where, runs)


def _check_forcing(runs: list, tasks: list) -> None:
    """--show forcing compares runs with teacher forcing (ratio 1) and without (ratio 0), both for each seed."""
    if any(t.structure != "seq2seq" for t in tasks):
        raise UsageError("--show forcing compares teacher forcing on a sequence-to-sequence task (wheels, dates)")
    kinds = {}
    for _, config in runs:
        if config.teacher_forcing not in (0, 1) or config.teacher_forcing_end is not None:
            raise UsageError("--show forcing compares --teacher-forcing 1 with --teacher-forcing 0, each run one "
                             f"of them; got {config.teacher_forcing}")
        kinds.setdefault(config.seed, set()).add(config.teacher_forcing)
    lacking = [seed for seed, k in kinds.items() if k != {0, 1}]
    if lacking:
        raise UsageError(f"--show forcing needs, for each seed, a run with --teacher-forcing 1 and one with 0; seed "
                         f"{lacking[0]} lacks one")


def needed(d: Directive, runs: Path) -> list[tuple]:
    """The runs a directive shows: (folder, Config)."""
    return [(runs / run_name(config), config) for _, config in d.runs]


def sweep_folder(d: Directive, sweeps: Path) -> Path:
    """The folder of a sweep directive's runs: its spec's name under `sweeps`."""
    return sweeps / file_stem(d.args.spec.stem)


def blocks(d: Directive, room: Room) -> list:
    """The blocks a directive shows on its slide."""
    a = d.args
    if d.view == "equations":
        cell = load_cell(a.cell)
        if not a.only:
            return [Math(equations(cell, "latex"), where=d.where)]
        rows = [equation(cell, n.strip(), "latex").replace("=", "&=", 1) for n in a.only.split(",")]
        latex = rows[0].replace("&=", "=") if len(rows) == 1 else \
            "\\begin{aligned}" + r" \\ ".join(rows) + "\\end{aligned}"
        return [Math(latex, where=d.where)]
    if d.view == "graph":
        cell = load_cell(a.cell)
        what = "backward" if a.backward else f"unrolled-{a.unroll}" if a.unroll else "graph"
        path = drawn(partial(render, graph_dot(cell, a.backward, a.unroll, a.highlight)), room.figure(d, what))
        return [Figure(path, a.caption, width=a.width, where=d.where)]
    if d.view == "structure":
        path = drawn(partial(render, structure_dot(a.kind)), room.figure(d, a.kind))
        return [Figure(path, a.caption, width=a.width, where=d.where)]
    if d.view == "derive":
        adj = derive(load_cell(a.cell))
        if a.table:
            names = [n.strip() for n in a.table.split(",")]
            return [Math(derivation_table(adj, names, "latex"), where=d.where, scale=COMPACT)]
        rows = derive_rows(adj, a.param, a.bptt, "latex", a.notation)
        if not rows:
            raise UsageError(f"{adj.cell.name} carries no state from step to step: there are no recurrences")
        if a.steps:
            return [Math(parts=[align([row], "latex") for row in rows], steps=True, where=d.where)]
        return [Math(align(rows, "latex"), where=d.where)]
    if d.view == "check":
        return [checked(load_cell(a.cell), a.steps, a.seed)]
    if d.view == "jacobian":
        adj = derive(load_cell(a.cell))
        states = [a.state] if a.state else [st.name for st in adj.cell.states]
        if not states:
            raise UsageError(f"{adj.cell.name!r} carries no state, so there is no Jacobian through time")
        return [Math(align(jacobian_rows(adj, st, "latex"), "latex"), where=d.where) for st in states]
    if d.view == "example":
        return _example(d)
    if d.view == "sweep":
        return _sweep(d, room)
    return _trained(d, room)


def _example(d: Directive) -> list:
    from gategraph.homework import example

    a = d.args
    if a.backward:
        return _backward(d)
    ev = example(a.name, a.sizes, a.seed, exact=not a.floats)
    if a.step:
        step = next((s for s in ev.steps if s.name == a.step), None)
        if step is None:
            raise UsageError(f"--step: the example has no equation {a.step!r}; its equations are "
                             f"{', '.join(s.name for s in ev.steps)}")
        out = example_step(ev, step)
        out[0].where = d.where
        return out
    if a.verdicts:
        held = sum(v.holds for v in ev.verdicts)
        if not ev.verdicts:
            return [Text("The example claims no values; every value on its slides is computed.")]
        return [Text(f"{held} of the {len(ev.verdicts)} values claimed hold; {len(ev.verdicts) - held} do not.")]
    cell = ev.cell
    given = [f"{lhs(cell, n, 'latex')} = {array(v, 'latex', ev.exact)}" for n, v in ev.values.items()
             if cell.roles[n] != "param"]
    return [Math(r"\quad ".join(given), where=d.where)]


def _backward(d: Directive) -> list:
    """The backward pass with numbers: every adjoint and gradient, or the ones named, as one aligned block."""
    from gategraph.backprop import example

    a = d.args
    ex = example(a.name, a.sizes, a.seed, a.steps, a.target, a.dh, exact=not a.floats)
    if not (a.adjoints or a.gradients):
        out = backward_blocks(ex)
    else:
        lines = []
        for name in _names(a.adjoints):
            if name not in ex.adjoint.names:
                raise UsageError(f"--adjoints: the backward step has no {name!r}; it has {', '.join(ex.adjoint.names)}")
            lines += adjoint_lines(ex, 0, name, "latex")
        for name in _names(a.gradients):
            if name not in ex.grads:
                raise UsageError(f"--gradients: the cell has no parameter {name!r}; it has {', '.join(ex.grads)}")
            lines += gradient_lines(ex, name, "latex")
        out = [Math("\\begin{aligned}" + r" \\ ".join(lines) + "\\end{aligned}", scale=COMPACT)]
    out[0].where = d.where
    return out


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def _score(run) -> tuple[str, float]:
    metric = run.task.metric
    return metric, next(r[metric] for r in reversed(run.history) if metric in r)


def _said(metric: str, value: float) -> str:
    words = metric.replace("test_", "test ").replace("_", " ")
    return f"{words} {value:.0%}" if "accuracy" in metric or "exact" in metric else f"{words} {value:.3g}"


def _trained(d: Directive, room: Room) -> list:
    a = d.args
    runs = {label: cached(folder, config)
            for (label, _), (folder, config) in zip(d.runs, needed(d, room.runs), strict=True)}
    if any(run is None for run in runs.values()):
        names = ", ".join(f"{plain(label)} ({plain(config.task)})" for label, config in d.runs)
        return [Note(NOT_TRAINED.format(what={"score": "the score", "loss": "the loss curves", "gates": "the gates",
                                               "heatmap": "the attention weights", "decode": "what it writes",
                                               "gradients": "the gradient norms", "chance": "the score against chance",
                                               "alignment": "where attention lands",
                                               "forcing": "the comparison"}[a.show], runs=names),
                     "warn", where=d.where)]
    from gategraph.renderers.plots import attention_heatmap, gate_activations, gradient_norms, loss_curves
    from gategraph.train import decode, gate_trace, gradient_flow

    first = next(iter(runs.values()))
    if a.show == "score":
        lines = []
        for label, run in runs.items():
            metric, value = _score(run)
            exact = next((r["step"] for r in run.history if r.get(metric) == 1.0), None) \
                if "accuracy" in metric or "exact" in metric else None
            reached = f", first 100% at step {exact}" if exact is not None else ""
            lines.append(f"{plain(label)}: {_said(metric, value)} after {run.step} steps{reached}")
        return [Text("\n".join(lines), bullets=len(lines) > 1, where=d.where)]
    if a.show == "loss":
        metric = first.task.metric if len(runs) == 1 else None
        path = drawn(partial(loss_curves, {label: run.history for label, run in runs.items()}, metric=metric),
                     room.figure(d, "loss"))
    elif a.show == "gates":
        gates = gate_trace(first)
        if not gates:
            raise UsageError(f"--show gates: {first.cell.name!r} has no σ gates to show")
        path = drawn(partial(gate_activations, gates,
                             title=f"{first.cell.name}'s gates on a test sequence of {first.config.task}"),
                     room.figure(d, "gates"))
    elif a.show == "heatmap":
        src, text, alphas = decode(first, a.input[0] if a.input else None)
        path = drawn(partial(attention_heatmap, alphas, list(src), list(text) + ["</s>"],
                             title=f"{first.cell.name} + {first.config.attention} attention: '{src}' -> '{text}'"),
                     room.figure(d, "heatmap"))
    elif a.show == "gradients":
        path = drawn(partial(gradient_norms, {label: gradient_flow(run) for label, run in runs.items()}),
                     room.figure(d, "gradients"))
    elif a.show in ("chance", "alignment", "forcing"):
        return _claims(a.show, runs, d.where)
    else:  # decode
        said = [f"'{plain(src)}' → '{plain(text)}'" for src, text, _ in (decode(first, s) for s in a.input)]
        return [Text("\n".join(said), bullets=True, where=d.where)]
    return [Figure(path, a.caption, width=a.width, where=d.where)]


def _claims(show: str, runs: dict, where: str) -> list:
    """What the runs allow a slide to say, worded from the data (gategraph.claims)."""
    from gategraph import claims

    if show == "chance":
        lines = [f"{plain(label)}: {claims.chance_of(run).wording()}" for label, run in runs.items()]
        return [Text("\n".join(lines), bullets=len(lines) > 1, where=where)]
    if show == "alignment":
        run = next(iter(runs.values()))
        return [Text(claims.alignment(run, claims.held_out_dates(run)).wording(), where=where)]
    trial = claims.teacher_forcing({(run.config.seed, "forced" if run.config.teacher_forcing == 1 else "free"): run
                                    for run in runs.values()})

    def said(step):
        return str(step) if step is not None else f"not within {trial.steps}"

    rows = [[str(seed), said(a), said(b)] for seed, a, b in zip(trial.seeds, trial.forced, trial.free, strict=True)]
    return [Table(["seed", "with teacher forcing", "without"], rows, ["right", "right", "right"], where=where),
            Text(trial.wording(), where=where)]


def _sweep(d: Directive, room: Room) -> list:
    """A sweep's table (each setting's mean ± standard deviation over seeds of the test metric and of the
    training time), its learning curves or its final scores (one figure per task), read from its runs."""
    from gategraph.renderers.plots import sweep_curves, sweep_finals
    from gategraph.sweep import learning, summary

    a, folder = d.args, sweep_folder(d, room.sweeps)
    results = swept(d.points, folder)
    if len(results) < len(d.points):
        what = {"table": "the table", "curves": "the learning curves", "finals": "the final scores"}[a.show]
        return [Note(NOT_TRAINED.format(what=what, runs=f"the sweep {plain(a.spec.name)} "
                                        f"({len(d.points) - len(results)} of {len(d.points)} runs to train)"),
                     "warn", where=d.where)]
    if a.show == "table":
        rows = summary(d.points, results)
        metrics = {r["metric"] for r in rows}
        header = [f"{_words(*metrics)}, mean $\\pm$ std" if len(metrics) == 1 else "test score, mean $\\pm$ std"]
        body = [[plain(r["setting"]), f"{r['done']}/{r['runs']}",
                 _spread(r["mean"], r["std"], "" if len(metrics) == 1 else _words(r["metric"]) + " "),
                 _spread(r["seconds_mean"], r["seconds_std"])] for r in rows]
        return [Table(["setting", "runs finished", *header, "training seconds, mean $\\pm$ std"], body,
                      ["left", "right", "right", "right"], where=d.where)]
    figures = []
    for task, (metric, curves, finals) in learning(d.points, results, folder).items():
        if a.show == "curves":
            draw = partial(sweep_curves, curves, metric=metric, title=f"{task}: test score over training")
        else:
            draw = partial(sweep_finals, finals, metric=metric, title=f"{task}: final test score")
        path = drawn(draw, room.figure(d, f"{a.show}-{task}"))
        figures.append(Figure(path, a.caption, width=a.width, where=d.where))
    if not figures:
        return [Note(f"None of the runs of the sweep {plain(a.spec.name)} finished: the sweep's folder "
                     "has their errors.", "warn", where=d.where)]
    return figures


def _words(metric: str) -> str:
    return plain(metric.replace("test_", "test ").replace("_", " "))


def _spread(mean: float, std: float, prefix: str = "") -> str:
    """A mean ± standard deviation as a table shows it ("-" when no run finished; no ± over one seed)."""
    if mean != mean:
        return "-"
    return f"{prefix}{mean:.3g}" + (f" $\\pm$ {std:.2g}" if std == std else "")
