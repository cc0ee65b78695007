"""The `gategraph` command: the top layer, the one engine module that may import the renderers.

    gategraph cells                                  the built-in cells
    gategraph equations CELL [--format latex|text]   the forward equations of one step
    gategraph graph CELL -o FILE.{png,svg,pdf,dot}   the computation graph of one step
        [--backward | --unroll T [--highlight S]]    ... with its adjoint, or unrolled through time
    gategraph derive CELL [--param P | --bptt]       the backward equations, or the chain rule for P
    gategraph check CELL [--json] [--no-exact]       gradients against finite differences and SymPy
    gategraph jacobian CELL [--steps K --seed S]     ∂s_t/∂s_(t-k): symbolic, and numeric norms
    gategraph example lecture-lstm | CELL            a worked example, checked (CELL: on random numbers)
    gategraph example ... --backward                 ... its backward pass with numbers
    gategraph exercises CELL                         problem and solution sheets with clean numbers
    gategraph grade SHEET ANSWERS                    answers marked, wrong ones diagnosed
    gategraph lecture [-o DIR] [--no-train]          the whole lecture as a deck (reveal.js, Beamer, PDF)
    gategraph lecture --source > talk.md             ... its Markdown source, to edit and build with `deck`
    gategraph slides CELL... [-o DIR]                a deck for any cells
    gategraph deck SOURCE.md [-o DIR] [--no-train]   a deck written in Markdown, with gategraph directives (and sweeps)
    gategraph tasks                                  the training tasks and their default settings
    gategraph train CELL --task NAME [-o RUN_DIR]    train a model; the run directory keeps it
    gategraph train --resume RUN_DIR                 ... and go on where it stopped
    gategraph sweep SPEC.toml [-o DIR] [--resume]    many runs (cells × tasks × seeds × settings) on Dask
    gategraph evaluate RUN_DIR                       the test score of a run's last checkpoint
    gategraph predict RUN_DIR "TEXT" [--heatmap F]   decode one input with a sequence-to-sequence run
    gategraph lower CELL [--dtype D]                 the Numba source generated from the cell
    gategraph cache [--clear]                        the compiled-kernel cache

CELL is a built-in name (`gategraph cells`) or `path/to/file.py:function`, a function returning a Cell.
Errors print one line and exit with status 2; Ctrl-C exits with 130, a run saved. What this module holds
is argument parsing and the joining of engine and renderers; the computing is in the modules it calls
(docs/architecture.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path


def _stop_loading(signum, frame):
    """Ctrl-C while the program still loads its modules: nothing to save, stop quietly with status 130."""
    sys.stderr.write("\ngategraph: interrupted\n")
    sys.stderr.flush()
    os._exit(130)  # not an exception: one raised inside a C extension's import would turn into an ImportError


if __name__ == "__main__":  # `python -m gategraph.cli` (`python -m gategraph` sets this itself)
    signal.signal(signal.SIGINT, _stop_loading)

import numpy as np  # noqa: E402

from gategraph import __version__, interrupts  # noqa: E402
from gategraph.cells import CELLS, load_cell  # noqa: E402
from gategraph.derive import derive  # noqa: E402
from gategraph.errors import GategraphError, Interrupted, UsageError  # noqa: E402
from gategraph.runs import SEED, add_options, count, settings  # noqa: E402

EXAMPLES = ("lecture-lstm",)


def cmd_cells(args) -> None:
    width = max(len(n) for n in CELLS)
    for name, make in CELLS.items():
        print(f"{name.replace('_', '-'):<{width}}  {make().doc}")


def _write_deck(deck, out: Path, formats: set, notes: bool = False) -> None:
    """The deck in each asked format; a missing TeX is a note, not a failure."""
    from gategraph.renderers.beamer import write_beamer
    from gategraph.renderers.layout import fit
    from gategraph.renderers.reveal import write_reveal

    for problem in fit(deck):  # every slide laid out to fit, the same for every format
        print(f"note: {problem}", file=sys.stderr)
    if "html" in formats:
        print(f"wrote {write_reveal(deck, out / 'html')}  ({len(deck.slides) + 1} slides)")
    if formats & {"beamer", "pdf"}:
        tex, pdf, why = write_beamer(deck, out / "beamer", pdf="pdf" in formats)
        print(f"wrote {tex}" + (f" and {pdf}" if pdf else ""))
        if why and "pdf" in formats:
            print(f"note: {why}", file=sys.stderr)
        if notes:  # the same deck with a page of speaker notes after each slide
            tex, pdf, _ = write_beamer(deck, out / "beamer", pdf="pdf" in formats, notes=True)
            print(f"wrote {tex}" + (f" and {pdf}" if pdf else ""))


def _formats(text: str) -> set:
    formats = {f.strip() for f in text.split(",") if f.strip()}
    unknown = sorted(formats - {"html", "beamer", "pdf"})
    if unknown:
        raise UsageError(f"unknown format {', '.join(unknown)}; the formats: html, beamer, pdf")
    return formats


LECTURE = Path(__file__).with_name("lecture.md")  # the built-in lecture: a deck source like any other


def cmd_lecture(args) -> None:
    if args.source:  # a copy to edit and build with `gategraph deck`
        sys.stdout.write(LECTURE.read_text(encoding="utf-8"))
        return
    _build_deck(LECTURE, Path(args.output), args, name=LECTURE.name)  # its lines named lecture.md:12


def cmd_deck(args) -> None:
    _build_deck(Path(args.source), Path(args.output or Path(args.source).stem), args)


def _build_deck(path: Path, out: Path, args, name: str | None = None) -> None:
    from gategraph.renderers.markdown import read_source
    from gategraph.renderers.views import Room

    formats = _formats(args.format)
    source = read_source(path, name)  # every mistake in it is found here, before anything is trained
    room = Room(out / "figures-src", out / "runs")
    if not args.no_train:
        _train_deck(source.runs(room.runs), source.sweeps(room.sweeps), args.workers)
    _write_deck(source.deck(room), out, formats, args.notes)


def _train_deck(runs: list, sweeps: list, workers: int | None) -> None:
    """Train the runs and sweeps a deck shows that its folder does not hold finished with their configuration,
    on `workers` at once (one per core unless given, no more than there are runs): runs alone in this process
    and on a Dask cluster of the other workers, which this process does not wait for (it starts in seconds);
    with sweeps, on one Dask cluster of `workers` processes; in this process alone when there is one worker or
    one run (no cluster to start)."""
    from gategraph.runs import trained, unswept
    from gategraph.sweep import local_cluster

    todo = [r for r in runs if not trained(r[0], r[1])]
    _reusing(len(runs) - len(todo), "trained run")
    left = {s[0]: len(unswept(s[1], s[0])) for s in sweeps}
    pending = [s for s in sweeps if left[s[0]]]
    _reusing(len(sweeps) - len(pending), "finished sweep")
    count = len(todo) + sum(left.values())
    if not count:
        return
    n = min(workers or os.cpu_count() or 1, count)
    if not pending and n > 1:  # runs only: this process trains too, from the first second, while Dask starts
        _make_runs(todo, None, f"in this process and on {n - 1} Dask worker{'s' * (n > 2)}", workers=n)
        return
    where = "in this process" if n == 1 else f"on {n} Dask workers"
    with contextlib.nullcontext() if n == 1 else local_cluster(n) as client:
        _make_runs(todo, client, where)
        _make_sweeps(pending, left, client, where)


def _reusing(n: int, what: str) -> None:
    if n:
        print(f"reusing {n} {what}{'s' * (n != 1)} (unchanged configuration)", file=sys.stderr)


def _make_runs(todo: list, client, where: str, workers: int = 1) -> None:
    """Train a deck's runs (runs.make_runs), a line for each as it ends; a run that fails fails the build with
    one line naming its directive, after the others finished; Ctrl-C keeps the finished ones."""
    from gategraph.runs import make_runs, trained

    if not todo:
        return
    print(f"training {len(todo)} run{'s' * (len(todo) != 1)} {where}, the longest first", file=sys.stderr, flush=True)
    lines = _RunLines({folder: (at, title) for folder, _, at, title in todo})
    try:
        results = make_runs({folder: config for folder, config, _, _ in todo}, client, lines,
                            _deck_progress() if client is None and workers == 1 else None, workers)
    except KeyboardInterrupt:  # the runs trained to their last step, as the folder holds them (a worker's run may
        # have finished before its result reached this process)
        finished = sum(trained(folder, config) for folder, config, _, _ in todo)
        raise Interrupted(f"stopped: {finished} of {len(todo)} runs finished, kept in {todo[0][0].parent}; "
                          "the others go on from their checkpoints when the deck is built again") from None
    failed = [(folder, r) for folder, r in results.items() if r["status"] != "done"]
    if failed:
        folder, r = failed[0]
        more = f" ({len(failed) - 1} more failed)" if len(failed) > 1 else ""
        raise GategraphError(f"{lines.labels[folder][0]}: the run {folder.name} failed: {r['error']}{more}")


class _RunLines:
    """A line per deck run as it ends: `run 3/17 NAME for talk.md:12 (Title): trained, step 400, test_mse
    0.01, 12 s` (seconds of training; compiling apart), or why it failed or stopped."""

    def __init__(self, labels: dict):
        self.labels, self.ended = labels, 0

    def __call__(self, folder: Path, r: dict) -> None:
        self.ended += 1
        where, title = self.labels[folder]
        if r["status"] == "done":
            how = f"resumed from step {r['resumed']}" if r["resumed"] else "trained"
            what = (f"{how}, step {r['step']}, {r['metric']} {r['score']:.4g}, {r['seconds']:.0f} s "
                    f"(+{r['compile_seconds']:.1f} s compiling)")
        elif r["status"] == "stopped":
            what = f"stopped at step {r['step']}"
        else:
            what = f"failed: {r['error']}"
        print(f"run {self.ended}/{len(self.labels)} {folder.name} for {where} ({title}): {what}", file=sys.stderr,
              flush=True)


def _make_sweeps(pending: list, left: dict, client, where: str) -> None:
    """Train the runs of the sweeps a deck shows that are not finished with their configuration yet
    (runs.make_sweep), a line per finished run."""
    from gategraph.runs import make_sweep

    for folder, points, at, title in pending:
        print(f"sweep {folder.name} for {at} ({title}): {left[folder]} of {len(points)} runs to train {where}",
              file=sys.stderr, flush=True)
        progress = _SweepProgress(len(points), len(points) - left[folder])
        progress.bar()
        results = make_sweep(points, folder, client, progress)
        if sys.stderr.isatty():
            print(file=sys.stderr)
        failed = [r for r in results.values() if r["status"] == "failed"]
        if failed:
            print(f"gategraph: {len(failed)} of {len(points)} runs of {folder.name} failed; the slide shows "
                  f"the others (first error: {failed[0]['error']})", file=sys.stderr)


def _deck_progress():
    """On a terminal, a progress bar for the run training in this process, rewritten in place: its cell and
    task, its step, latest score and time left."""
    if not sys.stderr.isatty():
        return None  # a line when a run is done

    def show(run, loss, rate):
        cfg, metric = run.config, run.task.metric
        last = next((r for r in reversed(run.history) if metric in r), {})
        now = time.monotonic()
        if run.step < cfg.steps and now - _SHOWN[0] < 0.1:
            return
        _SHOWN[0] = now
        bar = "#" * int(20 * run.step / cfg.steps)
        score = f"  {metric} {last[metric]:.4g}" if last else ""
        left = f"  {(cfg.steps - run.step) / rate:.0f} s left" if rate > 0 else ""
        text = f"  {run.cell.name} on {cfg.task} [{bar:<20}] {run.step}/{cfg.steps}  loss {loss:.4g}{score}{left}"
        print(f"\r\033[K{text[:shutil.get_terminal_size().columns - 1]}", end="" if run.step < cfg.steps
              else "\r\033[K", file=sys.stderr, flush=True)

    return show


def cmd_slides(args) -> None:
    import tempfile

    from gategraph.renderers.deck import Note
    from gategraph.renderers.slides import cell_deck

    cells = [load_cell(ref) for ref in args.cells]
    with tempfile.TemporaryDirectory(prefix="gategraph-figures-") as figures:
        deck = cell_deck(cells, Path(figures), args.title or "", check=not args.no_check)
        _write_deck(deck, Path(args.output), _formats(args.format), args.notes)
    for slide in deck.slides:  # a view that could not be made: its slide says why, and so does the command
        for note in (b for b in slide.blocks if isinstance(b, Note) and b.kind == "warn"):
            print(f"note: {slide.title}: {note.text}", file=sys.stderr)


def cmd_tasks(args) -> None:
    from gategraph.tasks import TASKS
    from gategraph.train import TASK_SETTINGS, Config

    width = max(len(n) for n in TASKS)
    for name, make in TASKS.items():
        config = Config.for_task(name)
        settings = " ".join(f"--{k} {getattr(config, k)}" for k in TASK_SETTINGS if getattr(config, k) is not None)
        print(f"{name:<{width}}  {make().doc}\n{'':<{width}}  defaults: {settings}")


_SHOWN = [0.0]


def _progress(run, loss, rate):
    """A progress line: on a terminal rewritten in place (10 times a second), else one line per test score."""
    cfg, last = run.config, next((r for r in reversed(run.history) if run.task.metric in r), {})
    done = run.step == cfg.steps
    tty = sys.stderr.isatty()
    now = time.monotonic()
    if not done and (now - _SHOWN[0] < 0.1 if tty else run.task.metric not in run.history[-1]):
        return
    _SHOWN[0] = now
    width = 24
    bar = "#" * int(width * run.step / cfg.steps)
    score = f"  {run.task.metric} {last[run.task.metric]:.4g}" if last else ""
    text = f"[{bar:<{width}}] {run.step}/{cfg.steps}  loss {loss:.4g}{score}  {rate:.0f} steps/s"
    print(f"\r{text} " if tty else text, end="\n" if done or not tty else "", file=sys.stderr, flush=True)


def cmd_train(args) -> None:
    from gategraph.train import Config, option_name, owning, train

    given = {k: v for k, v in settings(args).items() if v is not None}
    if args.resume:
        if args.output and Path(args.output) != Path(args.resume):
            raise UsageError("--resume goes on in the run's own folder: leave out -o")
        out = Path(args.resume)
        with owning(out, create=False):
            run = train(Config(steps=0), out, resume=True, progress=_progress, changes=given)
            if run.resumed_with:
                what = ", ".join(f"{option_name(k)} {new} (was {old})"
                                 for k, (old, new) in run.resumed_with.items())
                print(f"note: from step {run.changes[-1]['step']} on: {what}", file=sys.stderr)
            _after_training(run, out)
        return
    if not args.cell or not args.task:
        raise UsageError("train needs a CELL and --task (or --resume RUN_DIR)")
    # the task's own settings for what is not given (`gategraph tasks`); --attention none turns attention off
    if given.get("attention") == "none":
        given["attention"] = None
    config = Config.for_task(given.pop("task"), **given)
    out = Path(args.output or f"runs/{config.cell.rsplit(':', 1)[-1]}-{config.task}-seed{config.seed}")
    with owning(out):
        run = train(config, out, progress=_progress)
        _after_training(run, out)


def _after_training(run, out: Path) -> None:
    """The plots of a finished run and its last score; Ctrl-C here leaves the run as it is, saved."""
    from gategraph.errors import Interrupted
    from gategraph.renderers.plots import loss_curves

    try:
        loss_curves({run.cell.name: run.history}, out / "loss.png", run.task.metric,
                    f"{run.cell.name} on {run.config.task}")
        if run.seq2seq and run.config.attention:
            _heatmap(run, out / "attention.png")
        if not run.seq2seq:
            _gates(run, out / "gates.png")
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted while drawing the plots; the run in {out} is saved at step {run.step}") \
            from None
    last = next((r for r in reversed(run.history) if run.task.metric in r), {})
    print(f"{out}: step {run.step}, {run.task.metric} {last.get(run.task.metric, float('nan')):.4g}")


def _gates(run, path):
    """The first layer's gates over the first test sequence (gategraph.train.gate_trace), if the cell has any."""
    from gategraph.renderers.plots import gate_activations
    from gategraph.train import gate_trace

    gates = gate_trace(run)
    if gates:
        gate_activations(gates, path, f"{run.cell.name}'s gates on the first test sequence of {run.config.task}")


def _heatmap(run, path, source: str | None = None):
    """The attention weights of decoding one source (gategraph.train.decode; the first test example unless
    given)."""
    from gategraph.renderers.plots import attention_heatmap
    from gategraph.train import decode

    source, text, weights = decode(run, source)
    attention_heatmap(weights, list(source), list(text) + ["</s>"], path,
                      f"{run.cell.name} + {run.config.attention} attention: {source!r} -> {text!r}")
    return text


def cmd_predict(args) -> None:
    from gategraph.train import load_run

    run = load_run(args.run_dir)
    task = run.task
    if not run.seq2seq:
        raise UsageError(f"predict reads text; the {task.name} task takes numbers (see `gategraph evaluate`)")
    bad = sorted({c for c in args.text if task.source_vocab and c not in task.source_vocab})
    if bad:
        raise UsageError(f"the {task.name} task has no {', '.join(map(repr, bad))} in its input alphabet")
    if not args.text and task.source_vocab:
        raise UsageError(f"give a text to read, e.g. {task.pairs(np.random.default_rng(0), 1)[0][0]!r}")
    if args.heatmap:
        from gategraph.renderers.plots import check_image_path

        if not run.config.attention:
            raise UsageError(f"--heatmap draws the attention weights, and {args.run_dir} was trained without "
                             "--attention")
        check_image_path(args.heatmap)
        print(_heatmap(run, args.heatmap, args.text))
        return
    src = task.encode([(args.text, "0")])[0] if task.source_vocab else None
    _, _, tokens, _ = run.model.run(run.params, src, None, length=64)
    print(task.decode(tokens[:, 0]))


def cmd_evaluate(args) -> None:
    from gategraph.train import load_run

    run = load_run(args.run_dir)
    print(f"{args.run_dir}: {run.cell.name} on {run.config.task}, step {run.step}, "
          f"{run.task.metric} {run.evaluate():.4g}")


class _SweepProgress:
    """One line per finished run with its score; on a terminal, a bar of finished runs under them."""

    def __init__(self, total: int, done: int):
        self.total, self.done, self.tty = total, done, sys.stderr.isatty()

    def bar(self) -> None:
        """The bar, on a terminal: how many runs finished."""
        if self.tty:
            bar = "#" * int(24 * self.done / self.total)
            print(f"\r\033[K[{bar:<24}] {self.done}/{self.total} runs", end="", file=sys.stderr, flush=True)

    def __call__(self, name: str, result: dict) -> None:
        self.done += 1
        if result["status"] == "done":
            what = (f"{result['metric']} {result['score']:.4g}  {result['seconds']:.1f} s "
                    f"(+{result['compile_seconds']:.1f} s compiling)")
        else:
            what = f"{result['status']}: {result['error']}"
        print(f"\r\033[K[{self.done}/{self.total}] {name}  {what}" if self.tty else
              f"[{self.done}/{self.total}] {name}  {what}", file=sys.stderr, flush=True)
        self.bar()


def _sweep_report(points, out: Path, results: dict) -> int:
    """The sweep's tables (summary.csv, runs.csv), plots per task (curves-TASK.png, final-TASK.png) and the
    printed summary: each setting's mean ± standard deviation over seeds. The number of runs that failed."""
    from gategraph.files import atomic_write, file_stem
    from gategraph.renderers.plots import sweep_curves, sweep_finals
    from gategraph.sweep import learning, summary, table_csv

    rows = summary(points, results)
    atomic_write(out / "summary.csv", table_csv(rows))
    atomic_write(out / "runs.csv", table_csv([{"run": p.name, "setting": p.setting, "seed": p.config.seed,
                                               **results.get(p.name, {"status": "missing"})} for p in points]))
    for task, (metric, curves, finals) in learning(points, results, out).items():
        sweep_curves(curves, out / f"curves-{file_stem(task)}.png", metric, f"{task}: test score over training")
        sweep_finals(finals, out / f"final-{file_stem(task)}.png", metric, f"{task}: final test score")

    def spread(mean, std, digits):
        return "-" if mean != mean else f"{mean:.{digits}g} ± {std:.2g}" if std == std else f"{mean:.{digits}g}"

    width = max(len(r["setting"]) for r in rows)
    print(f"{'setting':<{width}}  {'runs':>5}  {'test score (mean ± std over seeds)':<36}  "
          "training seconds (compiling excluded)")
    for r in rows:
        runs = f"{r['done']}/{r['runs']}"
        print(f"{r['setting']:<{width}}  {runs:>5}  {r['metric'] + ' ' + spread(r['mean'], r['std'], 4):<36}  "
              f"{spread(r['seconds_mean'], r['seconds_std'], 3)}")
    failed = [(name, r) for name, r in results.items() if r["status"] == "failed"]
    for name, r in failed:
        print(f"failed: {name}: {r['error']}")
    print(f"{out}: summary.csv, runs.csv and the plots")
    return len(failed)


def cmd_sweep(args) -> int:
    from gategraph.sweep import check_output, cluster, finished, read_results, read_spec, sweep

    points = read_spec(args.spec)
    out = Path(args.output or Path("sweeps") / Path(args.spec).stem)
    check_output(points, out, args.resume)  # before a cluster starts
    done = sum(finished(out / p.name) for p in points) if args.resume else 0
    try:
        with cluster(args.scheduler, args.workers) as client:
            workers = len(client.scheduler_info(n_workers=-1)["workers"])
            print(f"{len(points)} runs ({done} finished before) on {workers} Dask worker{'s' * (workers != 1)}; "
                  f"dashboard: {client.dashboard_link}", file=sys.stderr)
            progress = _SweepProgress(len(points), done)
            progress.bar()
            results = sweep(points, out, client, args.resume, progress)
    except KeyboardInterrupt:
        results = read_results(points, out)
        if results:
            _sweep_report(points, out, results)
        kept = sum(r["status"] == "done" for r in results.values())
        raise Interrupted(f"stopped: {kept} of {len(points)} runs finished; the others go on from their last "
                          f"checkpoints with `gategraph sweep {args.spec} -o {out} --resume`") from None
    if sys.stderr.isatty():
        print(file=sys.stderr)
    failed = _sweep_report(points, out, results)
    if failed:
        print(f"gategraph: {failed} of {len(points)} runs failed (runs.csv has their errors)", file=sys.stderr)
        return 1
    return 0


def cmd_cache(args) -> None:
    from gategraph.kernel import cache_dir, clear_cache

    if args.clear:
        n = clear_cache()
        print(f"removed {n} kernel{'s' * (n != 1)} from {cache_dir()}")
        return
    folder = cache_dir()
    files = list(folder.rglob("*")) if folder.is_dir() else []
    n = len([f for f in files if f.name.startswith("gg_") and f.suffix == ".py"])
    size = sum(f.stat().st_size for f in files if f.is_file())
    print(f"{folder}: {n} kernel{'s' * (n != 1)}, {size / 1e6:.1f} MB (set GATEGRAPH_CACHE_DIR to move it)")


def cmd_lower(args) -> None:
    from gategraph.lower import lower

    print(lower(load_cell(args.cell), args.dtype).source, end="")


def cmd_equations(args) -> None:
    from gategraph.renderers.latex import equations

    print(equations(load_cell(args.cell), args.format))


def cmd_graph(args) -> None:
    from gategraph.renderers.graphviz import render
    from gategraph.renderers.views import graph_dot

    dot = graph_dot(load_cell(args.cell), args.backward, args.unroll, args.highlight)
    print(f"wrote {render(dot, args.output)}")


def cmd_derive(args) -> None:
    from gategraph.renderers.derivation import align
    from gategraph.renderers.views import derive_rows

    adj = derive(load_cell(args.cell))
    rows = derive_rows(adj, args.param, args.bptt, args.format, args.notation)
    if args.bptt and not rows:
        print(f"{adj.cell.name} carries no state from step to step: each step's gradient stands alone")
        return
    print(align(rows, args.format))


def cmd_check(args) -> int:
    from gategraph.check import finite_differences, sympy_exact

    cell = load_cell(args.cell)
    rows = finite_differences(cell, T=args.steps, seed=args.seed)
    if not args.no_exact:
        rows += sympy_exact(cell, seed=args.seed, progress=_proof_progress if sys.stderr.isatty() else None)
    ok = all(r.ok for r in rows)
    if args.json:
        print(json.dumps({"cell": cell.name, "ok": ok, "rows": [r.__dict__ for r in rows]}, indent=2))
    else:
        print(f"{'quantity':<10} {'method':<19} {'entries':>7} {'max abs error':>14} {'max rel error':>14}  result")
        for r in rows:
            gap = ("exact" if r.ok else f"{r.failed} differ") if r.method == "sympy" else f"{r.max_abs:.2e}"
            rel = "" if r.method == "sympy" else f"{r.max_rel:.2e}"
            print(f"{r.name:<10} {r.method:<19} {r.entries:>7} {gap:>14} {rel:>14}  {'pass' if r.ok else 'FAIL'}")
        print(f"{cell.name}: {'every gradient agrees' if ok else 'SOME GRADIENTS DISAGREE'}")
    return 0 if ok else 1


def _proof_progress(done, total, what) -> None:
    """The exact proof's progress, rewritten in place on a terminal and cleared at the end."""
    line = f"exact SymPy proof (seconds): {done}/{total} entries  {what}"[:100] if done < total else ""
    print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)


def cmd_jacobian(args) -> None:
    from gategraph.jacobian import jacobian_norms
    from gategraph.renderers.derivation import align, jacobian_rows

    cell = load_cell(args.cell)
    if not cell.states:
        raise UsageError(f"{cell.name!r} carries no state, so there is no Jacobian through time")
    if args.seed is None and (args.set or args.steps is not None):
        raise UsageError("--steps and --set are for the measured norms: give --seed S too")
    fixed = {}
    for item in args.set or []:
        name, _, value = item.partition("=")
        try:
            fixed[name.strip()] = float(value)
        except ValueError:
            raise UsageError(f"--set takes NAME=NUMBER, e.g. b_f=3; got {item!r}") from None
    rows = jacobian_norms(cell, args.steps or 20, seed=args.seed, fixed=fixed) if args.seed is not None else []
    adj = derive(cell)
    try:
        print("\n\n".join(align(jacobian_rows(adj, st.name, args.format), args.format) for st in cell.states))
    except UsageError as e:  # no product of matrices (a softmax over a memory): the measured norms still are
        if not rows:
            raise UsageError(f"{e}; `gategraph jacobian CELL --seed 0` still measures the norms") from None
        print(f"note: {e}; the measured norms follow", file=sys.stderr)
    if rows:
        names = [st.name for st in cell.states]
        given = "".join(f", {k} = {v:g}" for k, v in fixed.items())
        print(f"\n‖∂s_t/∂s_(t-k)‖₂ on a random sequence (seed {args.seed}{given}):")
        if len(names) == 1:
            print(f"k    {names[0]:>10}")
            for r in rows:
                print(f"{r.k:<4} {r.norms[names[0]]:>10.3e}")
        else:
            heads = [f"{n} all paths" for n in names] + [f"{n} along {n}" for n in names]
            print("k    " + "  ".join(f"{h:>14}" for h in heads))
            for r in rows:
                cols = [r.norms[n] for n in names] + [r.own[n] for n in names]
                print(f"{r.k:<4} " + "  ".join(f"{c:>14.3e}" for c in cols))


def cmd_example(args) -> None:
    from gategraph.homework import example
    from gategraph.renderers.diagnosis import notes
    from gategraph.renderers.walkthrough import walkthrough
    from gategraph.slips import diagnose

    if args.backward:
        return _backward_example(args)
    if args.steps != 1 or args.target is not None or args.dh is not None:
        raise UsageError("--steps, --target and --dh are for the backward pass: add --backward")

    ev = example(args.name, args.sizes, args.seed, exact=not args.floats)
    print(walkthrough(ev, args.format, notes(ev, diagnose(ev), args.format)))


def _backward_example(args) -> None:
    from gategraph.backprop import example
    from gategraph.renderers.walkthrough import backward_walkthrough

    ex = example(args.name, args.sizes, args.seed, args.steps, args.target, args.dh, exact=not args.floats)
    print(backward_walkthrough(ex, args.format))


def cmd_exercises(args) -> None:
    from gategraph.exercises import make_sheet
    from gategraph.renderers.exercises import problem_deck, sheet_text, solution_deck

    cell, out = load_cell(args.cell), Path(args.output)
    sheet = make_sheet(cell, args.cell, args.count, args.seed, args.backward)
    formats = {f.strip() for f in args.format.split(",")}
    out.mkdir(parents=True, exist_ok=True)
    if "text" in formats:  # problems and solutions on the terminal
        print(sheet_text(sheet, cell))
        formats.discard("text")
    if formats:
        formats = _formats(",".join(formats))
        _write_deck(problem_deck(sheet, cell), out / "problems", formats)
        _write_deck(solution_deck(sheet, cell), out / "solutions", formats)
    print(f"wrote {sheet.save(out / 'sheet.json')}  (grade answers with `gategraph grade {out / 'sheet.json'} "
          "ANSWERS.json`)")


def cmd_grade(args) -> int:
    from gategraph.exercises import grade, load_sheet, read_answers
    from gategraph.renderers.exercises import report

    path = Path(args.sheet)
    sheet = load_sheet(path / "sheet.json" if path.is_dir() else path)
    marks = grade(sheet, read_answers(args.answers))
    print(report(marks, load_cell(sheet.cell), sheet.tolerance))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and the exit status 2 as for every other error)."""

    def error(self, message):
        self.exit(2, f"gategraph: error: {message} (see `{self.prog} --help`)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gategraph", description="Recurrent cells declared once in SymPy: "
                "equations, graphs and worked examples from one declaration.")
    p.add_argument("--version", action="version", version=f"gategraph {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    cell_help = "a built-in cell (see `gategraph cells`) or path/to/file.py:function"

    s = sub.add_parser("cells", help="list the built-in cells")
    s.set_defaults(run=cmd_cells)

    s = sub.add_parser("equations", help="print the forward equations of one step")
    s.add_argument("cell", help=cell_help)
    s.add_argument("--format", choices=("latex", "text"), default="text")
    s.set_defaults(run=cmd_equations)

    s = sub.add_parser("graph", help="draw one step, its backward pass, or the network unrolled through time")
    s.add_argument("cell", help=cell_help)
    s.add_argument("-o", "--output", required=True, help="FILE.png, .svg, .pdf or .dot")
    s.add_argument("--backward", action="store_true", help="add the adjoint of the step (the backward pass)")
    s.add_argument("--unroll", type=count(1, 50), metavar="T", help="draw the network unrolled over T (1 to 50) steps")
    s.add_argument("--highlight", metavar="STATE", help="with --unroll: the gradient's path back to STATE")
    s.set_defaults(run=cmd_graph)

    s = sub.add_parser("derive", help="the backward equations (BPTT), or the derivation for one parameter")
    s.add_argument("cell", help=cell_help)
    which = s.add_mutually_exclusive_group()
    which.add_argument("--param", help="write out the chain rule for this parameter, step by step")
    which.add_argument("--bptt", action="store_true", help="only the recurrences through time")
    s.add_argument("--format", choices=("latex", "text"), default="text")
    s.add_argument("--notation", choices=("bar", "frac"), default="bar",
                   help="adjoints as \\bar{v} (default) or as ∂L/∂v")
    s.set_defaults(run=cmd_derive)

    s = sub.add_parser("check", help="prove the derived gradients: finite differences and SymPy's own diff")
    s.add_argument("cell", help=cell_help)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--no-exact", action="store_true", help="skip the (slower) exact SymPy check")
    s.add_argument("--steps", type=count(1, 50), default=4, help="sequence length for finite differences")
    s.add_argument("--seed", type=SEED, default=0)
    s.set_defaults(run=cmd_check)

    s = sub.add_parser("jacobian", help="how a state's gradient vanishes or explodes over k steps")
    s.add_argument("cell", help=cell_help)
    s.add_argument("--steps", type=count(1, 200), help="the largest k for the measured norms (default 20)")
    s.add_argument("--seed", type=SEED, help="also measure ‖∂s_t/∂s_(t-k)‖ for k = 1..steps, random parameters")
    s.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="hold a parameter at a constant for the numeric norms, e.g. --set b_f=3 (repeatable)")
    s.add_argument("--format", choices=("latex", "text"), default="text")
    s.set_defaults(run=cmd_jacobian)

    s = sub.add_parser("lecture", help="the RNN lecture as a deck (HTML, Beamer, PDF), every number computed")
    s.add_argument("-o", "--output", default="lecture", help="folder for html/, beamer/ and runs/ (default lecture)")
    s.add_argument("--format", default="html,pdf", help="html, beamer (the .tex), pdf; default html,pdf")
    s.add_argument("--no-train", action="store_true", help="skip the slides that need trained models (a note "
                   "says so on each)")
    s.add_argument("--source", action="store_true", help="print the lecture's Markdown source instead (to edit and "
                   "build with `gategraph deck`)")
    s.add_argument("--notes", action="store_true", help="also beamer/deck-notes.pdf: each slide, then its speaker "
                   "notes (the HTML deck shows them on S)")
    s.add_argument("--workers", type=count(1, 1024), help="Dask worker processes that train the runs the slides "
                   "show (default: one per core; 1 trains them in this process)")
    s.set_defaults(run=cmd_lecture)

    s = sub.add_parser("deck", help="a deck (HTML, Beamer, PDF) from a Markdown source with gategraph directives")
    s.add_argument("source", metavar="SOURCE.md", help="the Markdown source (see the README's section on decks)")
    s.add_argument("--workers", type=count(1, 1024), help="Dask worker processes that train the runs of the train "
                   "and sweep directives (default: one per core; 1 trains them in this process)")
    s.add_argument("-o", "--output", help="folder for html/, beamer/ and runs/ (default: the source's name)")
    s.add_argument("--format", default="html,pdf", help="html, beamer (the .tex), pdf; default html,pdf")
    s.add_argument("--no-train", action="store_true", help="do not train: slides with trained results say so")
    s.add_argument("--notes", action="store_true", help="also beamer/deck-notes.pdf: each slide, then its speaker "
                   "notes (the HTML deck shows them on S)")
    s.set_defaults(run=cmd_deck)

    s = sub.add_parser("slides", help="a deck for any cells: equations, graph, derivation, unrolled graph, check")
    s.add_argument("cells", nargs="+", metavar="CELL", help=cell_help)
    s.add_argument("-o", "--output", default="slides", help="folder for html/ and beamer/ (default slides)")
    s.add_argument("--format", default="html,pdf", help="html, beamer (the .tex), pdf; default html,pdf")
    s.add_argument("--title", help="the deck's title (default: the cells' names)")
    s.add_argument("--no-check", action="store_true", help="leave out the finite-difference slide")
    s.add_argument("--notes", action="store_true", help="also beamer/deck-notes.pdf: each slide, then its speaker "
                   "notes (the HTML deck shows them on S)")
    s.set_defaults(run=cmd_slides)

    s = sub.add_parser("tasks", help="list the training tasks")
    s.set_defaults(run=cmd_tasks)

    s = sub.add_parser("train", help="train a model on a task with the compiled kernels; a run directory keeps it")
    s.add_argument("cell", nargs="?", help=cell_help)
    add_options(s)
    s.add_argument("-o", "--output", help="the run directory (default runs/CELL-TASK-seedS)")
    s.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run where it stopped (with --steps, "
                   "--lr, --clip, --batch, --eval-every or the teacher-forcing ratios changed, if given)")
    s.set_defaults(run=cmd_train)

    s = sub.add_parser("sweep", help="many training runs on Dask: a grid of cells, tasks, seeds and settings")
    s.add_argument("spec", metavar="SPEC.toml", help="the grid: cells, tasks, seeds and any setting as a list")
    s.add_argument("-o", "--output", metavar="DIR", help="where the runs go, one folder each (default "
                   "sweeps/SPEC)")
    s.add_argument("--workers", type=count(1, 1024), help="worker processes on this machine (default: one per core)")
    s.add_argument("--scheduler", metavar="ADDRESS", help="run on the Dask cluster there (tcp://HOST:8786)")
    s.add_argument("--resume", action="store_true", help="skip the runs that finished, continue the stopped ones")
    s.set_defaults(run=cmd_sweep)

    s = sub.add_parser("predict", help="decode one input with a trained sequence-to-sequence run")
    s.add_argument("run_dir", metavar="RUN_DIR")
    s.add_argument("text", help="the input, e.g. '26 november 2026' for the dates task")
    s.add_argument("--heatmap", metavar="FILE.png", help="also draw the attention weights")
    s.set_defaults(run=cmd_predict)

    s = sub.add_parser("evaluate", help="the test score of a run's last checkpoint")
    s.add_argument("run_dir", metavar="RUN_DIR")
    s.set_defaults(run=cmd_evaluate)

    s = sub.add_parser("lower", help="print the Numba kernels generated from a cell (forward and BPTT)")
    s.add_argument("cell", help=cell_help)
    s.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    s.set_defaults(run=cmd_lower)

    s = sub.add_parser("cache", help="where compiled kernels are cached, and how many; --clear empties it")
    s.add_argument("--clear", action="store_true", help="remove every cached kernel")
    s.set_defaults(run=cmd_cache)

    s = sub.add_parser("example", help="a worked example: one step with its numbers, checked")
    s.add_argument("name", help=f"{', '.join(EXAMPLES)}, or a cell ({cell_help}) on random numbers")
    s.add_argument("--format", choices=("latex", "text"), default="text")
    s.add_argument("--floats", action="store_true", help="compute in float64 instead of exactly")
    s.add_argument("--sizes", help="sizes for a cell example, e.g. X=3,H=2 (each 2 unless given)")
    s.add_argument("--seed", type=SEED, default=0, help="seed of the random numbers for a cell example")
    s.add_argument("--backward", action="store_true", help="the backward pass: every adjoint with its numbers, "
                   "then each parameter's gradient")
    s.add_argument("--loss", choices=("half-sq",), default="half-sq",
                   help="the loss at the last step: ½‖y − target‖² (with --target; else --dh gives ∂L/∂y)")
    s.add_argument("--target", help="the target of the loss, e.g. 0,1 (--backward)")
    s.add_argument("--dh", help="∂L/∂y at the last step instead of a loss, e.g. 1,0 (--backward; "
                   "default: 1 in every entry)")
    s.add_argument("--steps", type=count(1, 4), default=1, help="unroll K steps (1 to 4) and carry the "
                   "adjoints back through them (--backward)")
    s.set_defaults(run=cmd_example)

    s = sub.add_parser("exercises", help="problem and solution sheets (HTML, PDF) of one step with clean numbers")
    s.add_argument("cell", help=cell_help)
    s.add_argument("--count", type=count(1, 50), default=4, help="how many problems (1 to 50)")
    s.add_argument("--backward", action="store_true", help="also the backward step: every adjoint and gradient")
    s.add_argument("--seed", type=SEED, default=0, help="the same seed gives the same sheet")
    s.add_argument("-o", "--output", default="exercises", help="folder for problems/, solutions/, sheet.json")
    s.add_argument("--format", default="html,pdf", help="html, beamer (the .tex), pdf, text (printed); "
                   "comma-separated")
    s.set_defaults(run=cmd_exercises)

    s = sub.add_parser("grade", help="a student's answers against a sheet's solutions, wrong ones diagnosed")
    s.add_argument("sheet", help="the sheet.json `gategraph exercises` wrote (or its folder)")
    s.add_argument("answers", help="answers.json ({\"1\": {\"h\": [0.5, 0.2]}}) or answers.csv "
                   "(problem,quantity,value)")
    s.set_defaults(run=cmd_grade)
    return p


def _stopped(message: str, program: bool) -> int:
    """Stopped by Ctrl-C: one line, status 130; the program ignores a second Ctrl-C from here on and ends
    with that status (see gategraph.interrupts)."""
    if program:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        interrupts.handled()
    print(f"\ngategraph: {message}", file=sys.stderr)
    return 130


def main(argv=None, program: bool = False) -> int:
    """The command line; `program`: this process is the `gategraph` program (once it stops on a Ctrl-C, a
    second one does not change how it ends)."""
    if program:  # a Ctrl-C that lands inside a callback from C is not lost (gategraph.interrupts)
        interrupts.keep_lost()
    if signal.getsignal(signal.SIGINT) is _stop_loading:  # loaded: Ctrl-C raises KeyboardInterrupt again
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = parser().parse_args(argv)
        status = args.run(args)
    except Interrupted as e:  # Ctrl-C or SIGTERM during training: saved, resumable
        return _stopped(str(e), program)
    except KeyboardInterrupt:  # Ctrl-C anywhere else: stop, quietly
        return _stopped("interrupted", program)
    except GategraphError as e:
        print(f"gategraph: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `gategraph ... | head`
        return 0
    except MemoryError:  # an estimate let it through, or a step not estimated
        print("gategraph: error: out of memory: lower the sizes (--batch, --length, --hidden, --layers)",
              file=sys.stderr)
        return 2
    except OSError as e:  # a file that cannot be written or read
        where = f": {e.filename}" if e.filename else ""
        print(f"gategraph: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main(program=True))
