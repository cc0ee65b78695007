"""Runs named by their configuration, cached in a folder and reused while the configuration is unchanged.

A deck (or any caller) says what it wants trained as a `Config`; `run_name(config)` names it, `cached(folder,
config)` gives the finished run in `folder` when its config.json is that configuration (None otherwise), and
`make(folder, config, progress)` trains it: a run stopped half way with the same configuration goes on from
its checkpoint; a folder holding another configuration is emptied and trained afresh. `make_runs` does that
for many runs at once, on a Dask cluster (the sweep machinery) or one after another in this process. The
options that say what a run is (`gategraph train`'s) are defined here once, for the command line and for deck
directives.
A sweep's runs (a deck's `sweep` directive) are kept the same way: `swept`, `unswept`, `make_sweep`.

Imports: the standard library, gategraph.cells, gategraph.errors, gategraph.files; gategraph.tasks,
gategraph.train and gategraph.sweep where a run is checked, found or made.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

from gategraph.cells import cell_reference, load_cell
from gategraph.errors import RunError, UsageError
from gategraph.files import file_stem

# the training machinery (gategraph.train, and through it the kernels) is imported where it is used: the
# command line builds its parser from this module before it knows whether anything will be trained


def count(low: int, high: int):
    """An argparse type: a whole number from low to high."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"takes {low} to {high}, got {n}")
        return n

    return parse


SEED = count(0, 2**32 - 1)


def add_options(p: argparse.ArgumentParser) -> None:
    """The options of a training run, as `gategraph train` takes them (None: not given, the task's own)."""
    p.add_argument("--task", help="see `gategraph tasks`")
    p.add_argument("--hidden", type=count(1, 4096), help="hidden size H (default: the task's, see `gategraph tasks`)")
    p.add_argument("--layers", type=count(1, 8), help="stacked layers (default 1)")
    p.add_argument("--bidirectional", action="store_true", help="read each sequence both ways")
    p.add_argument("--steps", type=count(1, 10**7), help="training steps (default: the task's)")
    p.add_argument("--batch", type=count(1, 4096), help="sequences per step (default: the task's)")
    p.add_argument("--lr", type=float, help="learning rate (default: the task's)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), help="(default adam)")
    p.add_argument("--clip", type=float, help="clip the gradient's global norm to this (default: the task's)")
    p.add_argument("--length", type=count(2, 10**5), help="the task's sequence length T")
    p.add_argument("--attention", choices=("dot", "general", "additive", "none"),
                   help="sequence to sequence: attend (default: the task's; none: no attention)")
    p.add_argument("--teacher-forcing", type=float, metavar="R",
                   help="sequence to sequence: feed the true previous token with probability R (default 1)")
    p.add_argument("--teacher-forcing-end", type=float, metavar="R", help="scheduled sampling: move the ratio "
                   "linearly to R by the last step")
    p.add_argument("--structure", choices=("many-to-one", "many-to-many", "one-to-many", "seq2seq"),
                   help="the task's own by default (see `gategraph tasks`)")
    p.add_argument("--eval-every", type=count(1, 10**6), help="steps between test scores (default 50)")
    p.add_argument("--test-size", type=count(1, 10**6), help="test sequences scored each time (default 512; one is "
                   "enough for a task with one target, as wheels)")
    p.add_argument("--dtype", choices=("float32", "float64"), help="(default float32)")
    p.add_argument("--seed", type=SEED, help="(default 0)")


def settings(args) -> dict:
    """The training settings given as options (`add_options`), by Config field; None where not given."""
    return {"cell": cell_reference(args.cell) if args.cell else None, "task": args.task, "hidden": args.hidden,
            "layers": args.layers, "bidirectional": args.bidirectional or None, "steps": args.steps,
            "batch": args.batch, "lr": args.lr, "optimizer": args.optimizer, "clip": args.clip, "seed": args.seed,
            "dtype": args.dtype, "eval_every": args.eval_every, "test_size": args.test_size,
            "attention": args.attention, "teacher_forcing": args.teacher_forcing,
            "teacher_forcing_end": args.teacher_forcing_end, "structure": args.structure,
            "task_options": {"T": args.length} if args.length else None}


def config_of(args):
    """The run the options name: the task's own settings for what is not given (`--attention none` turns a
    task's attention off), checked as `train` would check them, before anything is trained."""
    from gategraph.tasks import get_task
    from gategraph.train import Config, check_settings

    given = {k: v for k, v in settings(args).items() if v is not None}
    if given.get("attention") == "none":
        given["attention"] = None
    if "cell" not in given or "task" not in given:
        raise UsageError("a run needs a CELL and --task")
    config = Config.for_task(given.pop("task"), **given)
    load_cell(config.cell)
    check_settings(config, get_task(config.task, **config.task_options))
    return config


def run_name(config) -> str:
    """A folder name for the run: its cell, its task and a hash of its whole configuration."""
    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:10]
    cell = config.cell.rsplit(":", 1)[-1]
    return file_stem(f"{cell}-{config.task}-{digest}")


def _same(folder: Path, config) -> bool:
    from gategraph.train import CONFIG, read_config

    try:
        return (folder / CONFIG).exists() and read_config(folder) == config
    except RunError:  # a damaged config.json: not this run
        return False


def cached(folder: str | Path, config):
    """The run in `folder` if it was trained with exactly `config` (a train.Config) to its last step; None
    otherwise."""
    from gategraph.train import CHECKPOINT, load_run

    folder = Path(folder)
    if not _same(folder, config) or not (folder / CHECKPOINT).exists():
        return None
    run = load_run(folder)
    return run if run.step >= config.steps else None


def trained(folder: str | Path, config) -> bool:
    """Whether `folder` holds the run of `config` trained to its last step (as `cached`, without loading it)."""
    from gategraph.train import CHECKPOINT, read_checkpoint

    folder = Path(folder)
    if not _same(folder, config) or not (folder / CHECKPOINT).exists():
        return False
    try:
        return read_checkpoint(folder / CHECKPOINT)[1]["step"] >= config.steps
    except RunError:  # damaged: training it again says what is wrong, or starts it afresh
        return False


def make_runs(runs: dict, client=None, on_result=None, progress=None, workers: int = 1) -> dict[Path, dict]:
    """The runs (folder -> train.Config) that are not finished with their configuration, trained as `make`
    trains one: on the Dask cluster `client` talks to, or with no client on `workers` at once, this process
    and a LocalCluster of the others (sweep.run_here_and_local), or one after another in this process
    (sweep.run_all); the costliest first (`work`), so that no long run starts last. Folder -> result
    (sweep.run_point's), each also given to `on_result(folder, result)` as it ends."""
    from gategraph.sweep import run_all, run_here_and_local
    from gategraph.train import CHECKPOINT

    jobs = {Path(folder): config for folder, config in runs.items() if not trained(folder, config)}
    for folder, config in jobs.items():
        if folder.exists() and not (_same(folder, config) and (folder / CHECKPOINT).exists()):
            shutil.rmtree(folder)  # another configuration's run, or one that never saved: trained afresh
    order = {folder: jobs[folder] for folder in sorted(jobs, key=lambda folder: work(jobs[folder]), reverse=True)}
    if client is None and workers > 1 and len(order) > 1:
        return run_here_and_local(order, min(workers, len(order)), on_result)
    return run_all(order, client, on_result, progress)


def work(config) -> int:
    """Roughly what training `config` costs, to start the longest runs first: steps × batch × H² × the cell's
    weight matrices (its gates) × the steps of one sequence (the source's and the target's; a source read
    both ways counts twice, and a target step the decoder feeds its own guess about twice: a kernel call of its
    own)."""
    import numpy as np

    from gategraph.tasks import get_task

    task = get_task(config.task, **config.task_options)
    source, target, _ = task.batch(np.random.default_rng(0), 1)
    reads = 0 if source is None else source.shape[0] * (2 if config.bidirectional else 1)
    writes = target.shape[0] * (2 - config.teacher_forcing) if task.structure == "seq2seq" else 0
    matrices = sum(len(p.shape) == 2 for p in load_cell(config.cell).params)
    return round(config.steps * config.batch * config.hidden ** 2 * matrices * (reads + writes))


def make(folder: str | Path, config, progress=None) -> tuple:
    """The run of `config` in `folder`, and what was done for it: "reused" (finished, unchanged), "resumed"
    (stopped part way, unchanged) or "trained" (new, or its configuration changed: the old run is removed)."""
    from gategraph.train import CHECKPOINT, train

    folder = Path(folder)
    run = cached(folder, config)
    if run is not None:
        return run, "reused"
    if _same(folder, config) and (folder / CHECKPOINT).exists():
        return train(config, folder, resume=True, progress=progress), "resumed"
    if folder.exists():
        shutil.rmtree(folder)
    return train(config, folder, progress=progress), "trained"


# -- a sweep's runs, the same way: reused while their configuration is unchanged --------------------------------


def swept(points: list, folder: str | Path) -> dict[str, dict]:
    """Run name -> result (sweep.read_results) of a sweep's points under `folder` that are settled: finished
    with exactly the point's configuration, or failed (a failed run is tried again when the sweep is made)."""
    from gategraph.sweep import read_results

    folder = Path(folder)
    configs = {p.name: p.config for p in points}
    return {name: r for name, r in read_results(points, folder).items()
            if r["status"] == "failed" or (r["status"] == "done" and _same(folder / name, configs[name]))}


def unswept(points: list, folder: str | Path) -> list:
    """The points of a sweep under `folder` that are not finished with their configuration yet."""
    done = {name for name, r in swept(points, folder).items() if r["status"] == "done"}
    return [p for p in points if p.name not in done]


def make_sweep(points: list, folder: str | Path, client, on_result=None) -> dict[str, dict]:
    """A sweep's runs under `folder` on the Dask cluster `client` talks to (sweep.sweep, resumed): a run
    finished with its point's configuration is reused, one stopped part way goes on from its checkpoint, and
    one trained with another configuration (the spec changed) is removed and trained afresh. Run name ->
    result."""
    from gategraph.sweep import sweep
    from gategraph.train import CONFIG

    folder = Path(folder)
    for p in points:
        run = folder / p.name
        if (run / CONFIG).exists() and not _same(run, p.config):
            shutil.rmtree(run)
    return sweep(points, folder, client, resume=True, on_result=on_result)
