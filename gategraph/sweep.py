"""Sweeps: a grid of training runs (cells × tasks × seeds × any training setting) on Dask, each point an
ordinary run directory, and the table of their results.

A sweep is written as a TOML file; a list is an axis of the grid, a single value holds for every run:

    cells = ["lstm", "gru", "mine.py:mgu"]   # built-in names or file.py:function (relative to this file)
    tasks = ["adding"]
    seeds = [0, 1, 2, 3, 4]
    steps = 300                               # any setting of `gategraph train` ...
    length = [50, 100]                        # ... and `length`, the task's sequence length T

Each point trains into `DIR/<cell>-<task>-<the axes' values>-seed<S>` (`gategraph evaluate` and `predict`
read it) and leaves `result.json` there: its status, its score in the task's test metric, its training time
(the training loop's; the seconds spent compiling kernels are counted apart), or its one-line error. The
runs go to a Dask cluster (`run_all`): a `LocalCluster` with one single-threaded worker process per core
(`local_cluster`), or one that is already running (`connect`); with no cluster, one after another in this
process. Only settings and results travel: a worker imports gategraph and a cell from its file itself. A run
whose worker dies is started again by Dask and goes on from its last checkpoint (train's resume). Ctrl-C asks
the running runs to save and stop; a sweep started again with `resume` skips the runs that finished and
continues the others.

Imports: dask.distributed, gategraph.train, gategraph.tasks, gategraph.cells, gategraph.files, gategraph.errors.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import dataclasses
import io
import json
import logging
import math
import os
import queue
import re
import signal
import statistics
import threading
import time
import tomllib
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from distributed import Client, Event, LocalCluster, as_completed, wait
from distributed.diagnostics.plugin import WorkerPlugin
from distributed.scheduler import KilledWorker

from gategraph.cells import CELLS
from gategraph.errors import GategraphError, Interrupted, RunError, UsageError
from gategraph.files import atomic_write
from gategraph.tasks import TASKS, get_task
from gategraph.train import CHECKPOINT, Config, check_settings, config_from_dict, read_checkpoint, train

AXES = {"cells": "cell", "tasks": "task", "seeds": "seed"}  # the spec's names of the grid's first axes
SETTINGS = [f.name for f in dataclasses.fields(Config) if f.name not in ("cell", "task", "seed", "task_options")]
RESULT = "result.json"


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its folder's name, the setting it belongs to (the name without the seed), that
    setting's values on the grid's axes (cell, task and what else varies), and its configuration."""

    name: str
    setting: str
    labels: dict
    config: Config


def _cell(ref, spec: Path) -> tuple[str, str]:
    """(the reference a worker loads the cell from, its short name) for a built-in name or file.py:function,
    the file found relative to the spec."""
    if not isinstance(ref, str):
        raise UsageError(f"{spec}: a cell is a name or 'file.py:function', got {ref!r}")
    if ":" in ref and ref.split(":", 1)[0].endswith(".py"):
        path, func = ref.rsplit(":", 1)
        file = (spec.parent / path).resolve()
        if not file.is_file():
            raise UsageError(f"{spec}: the cell file {path} does not exist (looked for {file})")
        return f"{file}:{func}", func
    key = ref.replace("-", "_")
    if key not in CELLS:
        names = ", ".join(sorted(n.replace("_", "-") for n in CELLS))
        raise UsageError(f"{spec}: unknown cell {ref!r}: choose one of {names}, or give file.py:function")
    return key, key.replace("_", "-")


def _label(key: str, value) -> str:
    """One axis' value in a folder name: length50, lr0.003, bidirectional; any character that is not a letter,
    a digit, `.`, `_`, `+` or `-` becomes `-` (a name that then clashes with another is refused)."""
    if isinstance(value, bool):
        return key if value else f"no-{key}"
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", f"{key}{value}").strip(".-")


def read_spec(path: str | Path) -> list[Point]:
    """The points of the grid a TOML spec names (see the module's docstring), each checked as `gategraph
    train` checks its settings; a one-line UsageError names what is wrong."""
    path = Path(path)
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"there is no sweep spec {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path} cannot be read ({getattr(e, 'strerror', None) or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path} is not valid TOML: {e}") from None
    known = [*AXES, "length", *SETTINGS]
    unknown = [k for k in spec if k not in known]
    if unknown:
        raise UsageError(f"{path}: there is no setting {unknown[0]!r} (a sweep has {', '.join(known)})")
    for key in ("cells", "tasks"):
        if key not in spec:
            raise UsageError(f"{path} names no {key}: add e.g. {key} = {['lstm'] if key == 'cells' else ['adding']}")
    grid = {k: v if isinstance(v, list) else [v] for k, v in spec.items()}
    grid.setdefault("seeds", [0])
    empty = [k for k, v in grid.items() if not v]
    if empty:
        raise UsageError(f"{path}: {empty[0]} is an empty list: give at least one value")
    for k, v in grid.items():
        if len(set(map(repr, v))) < len(v):
            raise UsageError(f"{path}: {k} names a value twice ({v})")
    cells = [_cell(c, path) for c in grid.pop("cells")]
    tasks, seeds = grid.pop("tasks"), grid.pop("seeds")
    axes = [k for k, v in grid.items() if len(v) > 1]  # what tells the settings apart, besides cell and task
    points: list[Point] = []
    for ref, short in cells:
        for task in tasks:
            if task not in TASKS:
                raise UsageError(f"{path}: unknown task {task!r}; the tasks: {', '.join(TASKS)}")
            for values in _product(grid):
                labels = {"cell": short, "task": task, **{k: values[k] for k in axes}}
                setting = "-".join([short, task, *(_label(k, values[k]) for k in axes)])
                for seed in seeds:
                    points.append(_point(path, ref, seed, values, labels, f"{setting}-seed{seed}", setting))
    twice = next((n for n, k in collections.Counter(p.name for p in points).items() if k > 1), None)
    if twice:
        raise UsageError(f"{path}: two runs would share the folder {twice} (two cells of one name, or values "
                         "that differ only in characters a folder name leaves out): rename one")
    return points


def _product(grid: dict) -> list[dict]:
    """Every combination of the grid's values, in the spec's order."""
    combos = [{}]
    for key, values in grid.items():
        combos = [{**c, key: v} for c in combos for v in values]
    return combos


def _point(spec: Path, cell: str, seed, values: dict, labels: dict, name: str, setting: str) -> Point:
    """One point, its settings checked (types as in config.json; values as `gategraph train` checks them)."""
    task, values = labels["task"], dict(values)
    length = values.pop("length", None)
    if length is not None:
        values["task_options"] = {"T": length}
    try:
        config = config_from_dict(asdict(Config.for_task(task, cell=cell, seed=seed, **values)), spec)
        check_settings(config, get_task(task, **config.task_options))
    except RunError as e:
        raise UsageError(str(e)) from None
    except GategraphError as e:
        raise UsageError(f"{spec}: {name}: {e}") from None
    return Point(name, setting, labels, config)


# -- one run, on a worker -------------------------------------------------------------------------------------------

def _asked(event: str):
    """Whether the sweep was asked to stop (a Dask Event set by the client), asked of the scheduler at most
    once a second."""
    flag, last = Event(event), [-math.inf, False]

    def asked() -> bool:
        if time.monotonic() - last[0] > 1:
            last[:] = [time.monotonic(), flag.is_set()]
        return last[1]

    return asked


def run_point(settings: dict, folder: str, stop: str | None = None, progress=None) -> dict:
    """Train one run into `folder` (a Config's settings as a dict: only settings travel), going on from its
    checkpoint if it has one; never raises for a run that fails: the result says why, in one line. The result
    (also written to the folder's result.json): run, status (done, failed, stopped), step, metric, score,
    seconds (of training, counted across resumes, without compiling), compile_seconds (building the kernels,
    and Numba compiling or loading them, in every session of the run), resumed (the step it went on from, 0 if
    it started afresh), error. `stop`: the name of the Dask Event that asks the sweep's runs to save and stop
    (for a run in this process, a function that says so); `progress`: train's, for a run in this process."""
    folder = Path(folder)
    config = Config(**settings)
    result = _result(folder, config)
    asked = stop if callable(stop) else _asked(stop) if stop else None
    if asked and asked():  # the sweep stopped before this run began: leave its folder as it is
        return {**result, "status": "stopped", "error": "the sweep stopped before it began"}
    try:
        resume = (folder / CHECKPOINT).exists()  # stopped, or its worker died: go on from the checkpoint
        result["resumed"] = _checkpoint_step(folder)
        run = train(config, folder, resume=resume, progress=progress, stop=asked)
    except Interrupted:  # the sweep was stopped: this run saved its checkpoint
        step = _checkpoint_step(folder)
        result.update(status="stopped", step=step, error=f"stopped at step {step}; --resume goes on from there")
    except GategraphError as e:
        result.update(status="failed", error=str(e))
    except Exception as e:  # a bug or a full disk: still one line, and the sweep goes on
        lines = str(e).strip().splitlines()
        result.update(status="failed", error=f"{type(e).__name__}: {lines[0] if lines else ''}".rstrip(": "))
    else:
        last = next((r for r in reversed(run.history) if run.task.metric in r), {})
        result.update(step=run.step, score=last.get(run.task.metric, math.nan),
                      seconds=run.history[-1]["seconds"] if run.history else 0.0,
                      compile_seconds=round(run.compile_seconds, 3))
    with contextlib.suppress(OSError):  # a folder that could not be made: the result still comes back
        atomic_write(folder / RESULT, json.dumps(result, indent=1).encode())
    return result


def _result(folder: Path, config: Config, **given) -> dict:
    """A run's result: done, with nothing measured yet, unless `given` says otherwise."""
    return {"run": folder.name, "status": "done", "step": 0, "metric": get_task(config.task).metric,
            "score": math.nan, "seconds": math.nan, "compile_seconds": math.nan, "resumed": 0, "error": "", **given}


def _checkpoint_step(folder: Path) -> int:
    """The step of the run's checkpoint, 0 if it has none (or none that reads: train says why)."""
    try:
        return read_checkpoint(folder / CHECKPOINT)[1]["step"]
    except RunError:
        return 0


def finished(folder: Path) -> bool:
    """Whether the run in `folder` finished: its result.json says done."""
    try:
        return json.loads((folder / RESULT).read_text()).get("status") == "done"
    except (OSError, ValueError, AttributeError):
        return False


# -- the cluster ----------------------------------------------------------------------------------------------------

def cluster(scheduler: str | None = None, workers: int | None = None):
    """A Client (as a context manager) of the cluster at `scheduler`, else of a LocalCluster of `workers`
    processes: `with cluster() as client: run_all({folder: config, ...}, client)`."""
    if scheduler and workers:
        raise UsageError("--workers starts a cluster on this machine; the one at --scheduler has its own workers")
    return connect(scheduler) if scheduler else local_cluster(workers)


class _SyncCancelled(logging.Filter):
    """Drops the one log record distributed's `sync` (2026.8 at least) writes when a Ctrl-C reaches a blocking
    call (`client.nthreads()`, `future.result()`, ...) before the event loop has got the call's coroutine past
    its first step: its cancel callback then reads a variable not yet bound, and tornado logs that NameError with
    a traceback (and the call is not cancelled: it runs to its end in the loop). The Ctrl-C itself is raised in
    the main thread as it should be; the traceback would only tell the user that something broke."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, NameError) or error.__traceback__ is None:
            return True
        tb = error.__traceback__
        while tb.tb_next is not None:
            tb = tb.tb_next
        code, module = tb.tb_frame.f_code, tb.tb_frame.f_globals.get("__name__")
        return not (module == "distributed.utils" and code.co_name == "cancel")


_SYNC_CANCELLED = _SyncCancelled()


def _quiet_sync_cancel() -> None:
    """From now on, a Ctrl-C in a call to the cluster prints no traceback of distributed's (see _SyncCancelled)."""
    logging.getLogger("tornado.application").addFilter(_SYNC_CANCELLED)  # once: the same filter is added once


@contextlib.contextmanager
def local_cluster(workers: int | None = None):
    """A Client of a LocalCluster on this machine: `workers` processes (one per core unless given), each
    running one run at a time in one thread (its BLAS single-threaded too, as Dask's nanny sets it)."""
    n = workers or os.cpu_count() or 1
    _quiet_sync_cancel()
    with warnings.catch_warnings(), _ignoring_ctrl_c():  # the workers inherit it; another dashboard port is fine
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, silence_logs=logging.ERROR)
    with cluster, Client(cluster) as client:
        client.register_plugin(IgnoreCtrlC())  # and the ones started in place of a worker that died
        yield client


@contextlib.contextmanager
def _ignoring_ctrl_c():
    """SIGINT ignored while the block runs, in the main thread; processes started meanwhile keep ignoring it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class IgnoreCtrlC(WorkerPlugin):
    """A worker plugin: a local worker leaves Ctrl-C at the terminal to the sweep, which stops the cluster in
    order (the runs keep their last checkpoints), instead of each worker dying with a traceback."""

    name = "gategraph-ignore-ctrl-c"

    def setup(self, worker):
        with contextlib.suppress(ValueError):  # not in the worker process' main thread: nothing to do
            signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def connect(address: str):
    """A Client of a Dask cluster that is already running (`dask scheduler`, `dask worker ADDRESS`, or any
    deployment Dask supports); its workers must import gategraph and see the sweep's folder."""
    _quiet_sync_cancel()
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as e:
        raise UsageError(f"no Dask scheduler answers at {address} ({type(e).__name__}: {e}): start one with "
                         "`dask scheduler`, or leave out --scheduler to use this machine's cores") from None
    with client:
        yield client


# -- a sweep ----------------------------------------------------------------------------------------------------

def run_all(jobs: dict[Path, Config], client, on_result=None, progress=None) -> dict[Path, dict]:
    """Train every Config into its folder on the cluster `client` talks to, as many at once as it has worker
    threads, each next one started as one ends, in the order given; `on_result(folder, result)` is called as
    each one ends. A run that fails is a result with its error; one whose workers kept dying (Dask gives up
    after a few) too. Ctrl-C (KeyboardInterrupt) asks the running runs to save a checkpoint and stop, waits for
    them, cancels the rest and passes on. With no client, the runs train one after another in this process
    (`progress`: train's), the same way: the same results, a Ctrl-C saves the run in training and passes on."""
    if client is None:
        return _run_here(jobs, on_result, progress)
    token = os.urandom(4).hex()
    stop = Event(f"gategraph-stop-{token}", client=client)
    waiting, futures, running = collections.deque(jobs.items()), {}, as_completed()

    def start_more():  # Dask alone would hand out the runs in an order of its own (it knows no run's length)
        while waiting and sum(not f.done() for f in futures) < max(sum(client.nthreads().values()), 1):
            folder, config = waiting.popleft()
            future = client.submit(run_point, asdict(config), str(Path(folder).resolve()), stop.name, pure=False,
                                   key=f"run-{Path(folder).name}-{token}")
            futures[future] = Path(folder)
            running.add(future)

    results: dict[Path, dict] = {}
    try:
        start_more()
        for future in running:
            folder = futures[future]
            results[folder] = result = _outcome(future, folder, jobs[folder])
            if on_result:
                on_result(folder, result)
            start_more()
    except KeyboardInterrupt:  # the running runs save and stop within a step or a second (a second Ctrl-C: now)
        stop.set()
        waiting.clear()
        with contextlib.suppress(TimeoutError):  # a run slow to stop is cancelled below; the Ctrl-C stands
            wait([f for f in futures if not f.done()], timeout=STOPPING)
        raise
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
    return results


STOPPING = 60  # seconds the runs of a stopped sweep have to save their checkpoints


def run_here_and_local(jobs: dict[Path, Config], workers: int, on_result=None) -> dict[Path, dict]:
    """run_all on `workers` at once: this process (in a thread of its own) and a LocalCluster of the others.
    This process starts on the first run at once, while the cluster starts (seconds); then each, as it ends a
    run, takes the next one in the order given. The same results and the same Ctrl-C as run_all's."""
    waiting, lock, ended, halt = collections.deque(jobs.items()), threading.Lock(), queue.Queue(), threading.Event()

    def take():
        with lock:
            return waiting.popleft() if waiting else None

    def here():
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):  # one core, as each of the cluster's workers has
            while not halt.is_set() and (job := take()):
                folder, config = job
                ended.put((folder, run_point(asdict(config), str(Path(folder).resolve()), halt.is_set)))

    trainer = threading.Thread(target=here, name="gategraph-runs")
    trainer.start()
    results: dict[Path, dict] = {}

    def report(folder, result):
        results[folder] = result
        if on_result:
            on_result(folder, result)

    try:
        with local_cluster(workers - 1) as client:
            token = os.urandom(4).hex()
            stop = Event(f"gategraph-stop-{token}", client=client)
            futures, running, reported = {}, as_completed(), set()
            slots = max(sum(client.nthreads().values()), 1)  # asked once: the loop below looks 20 times a second
            try:
                while True:
                    while waiting and sum(not f.done() for f in futures) < slots and (job := take()):
                        folder, config = job
                        future = client.submit(run_point, asdict(config), str(Path(folder).resolve()), stop.name,
                                               pure=False, key=f"run-{Path(folder).name}-{token}")
                        futures[future] = Path(folder)
                        running.add(future)
                    while not ended.empty():
                        report(*ended.get())
                    if running.has_ready():
                        future = next(running)
                        reported.add(future)
                        report(futures[future], _outcome(future, futures[future], jobs[futures[future]]))
                    elif running.is_empty() and not waiting:
                        break  # the cluster's share is done; this process may still be training its last run
                    else:
                        time.sleep(POLL)
            except KeyboardInterrupt:
                halt.set()
                stop.set()
                waiting.clear()
                with contextlib.suppress(TimeoutError):
                    wait([f for f in futures if not f.done()], timeout=STOPPING)
                for future in futures:  # ended (finished, or stopped and saved) before this one saw them
                    if future.done() and future not in reported:
                        with contextlib.suppress(Exception):  # the Ctrl-C stands whatever a run's future says
                            report(futures[future], _outcome(future, futures[future], jobs[futures[future]]))
                raise
            finally:
                pending = [f for f in futures if not f.done()]
                if pending:
                    client.cancel(pending)
        while trainer.is_alive() or not ended.empty():
            with contextlib.suppress(queue.Empty):
                report(*ended.get(timeout=POLL))
    except KeyboardInterrupt:
        halt.set()
        waiting.clear()
        trainer.join(STOPPING)  # the run in this process saves its checkpoint and stops within a step
        while not ended.empty():
            report(*ended.get())
        raise
    finally:  # on any way out, the run in this process stops at a step and saves, not in the middle of one
        halt.set()
        trainer.join(STOPPING)
    return results


POLL = 0.05  # seconds between looks at the runs of run_here_and_local


def _run_here(jobs: dict[Path, Config], on_result=None, progress=None) -> dict[Path, dict]:
    """run_all without a cluster: each run in turn, in this process."""
    results: dict[Path, dict] = {}
    for folder, config in jobs.items():
        results[folder] = result = run_point(asdict(config), str(Path(folder).resolve()), progress=progress)
        if on_result:
            on_result(folder, result)
        if result["status"] == "stopped":  # Ctrl-C: the run saved its checkpoint
            raise KeyboardInterrupt
    return results


def _outcome(future, folder: Path, config: Config) -> dict:
    """The result of one run's future: what run_point returned, or a failure if its workers kept dying."""
    try:
        return future.result()
    except KilledWorker:
        result = _result(folder, config, status="failed",
                         error="its worker died each time it was tried (out of memory?); --resume tries again")
        with contextlib.suppress(OSError):
            atomic_write(folder / RESULT, json.dumps(result, indent=1).encode())
        return result


def sweep(points: list[Point], out: str | Path, client, resume: bool = False, on_result=None) -> dict[str, dict]:
    """Run a sweep's points into `out` (see `run_all`): run name -> result. With `resume`, runs that finished
    are read, not run again, and stopped ones go on from their checkpoints; without it, a folder that holds
    runs of these points already is refused."""
    out = Path(out)
    check_output(points, out, resume)
    folders = {p.name: out / p.name for p in points}
    jobs = {folder: p.config for p in points if not finished(folder := folders[p.name])}
    for folder in jobs:  # the result of an earlier try that failed or stopped is stale once this one starts
        (folder / RESULT).unlink(missing_ok=True)
    run_all(jobs, client, on_result and (lambda folder, result: on_result(folder.name, result)))
    return read_results(points, out)


def check_output(points: list[Point], out: Path, resume: bool) -> None:
    """Refuse, in one line, to start a sweep afresh in a folder that holds runs of it already."""
    taken = [p.name for p in points if (Path(out) / p.name).exists()]
    if taken and not resume:
        raise UsageError(f"{out} holds runs of this sweep already ({taken[0]}): continue it with --resume, "
                         "or choose another -o")


def read_results(points: list[Point], out: str | Path) -> dict[str, dict]:
    """Run name -> the result its folder under `out` holds, for the points that have one."""
    results = {}
    for p in points:
        try:
            result = json.loads((Path(out) / p.name / RESULT).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(result, dict) and {"status", "score", "seconds"} <= set(result):
            results[p.name] = result
    return results


# -- what a sweep found ----------------------------------------------------------------------------------------------

def _spread(values: list[float]) -> tuple[float, float]:
    """(mean, sample standard deviation); the deviation of a single value is nan."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def summary(points: list[Point], results: dict[str, dict]) -> list[dict]:
    """One row per setting: over its seeds' finished runs, the mean and standard deviation of the task's test
    metric and of the training time (seconds, compiling excluded), the mean time spent compiling, and how many
    runs finished, failed or are missing."""
    rows = []
    for setting in dict.fromkeys(p.setting for p in points):
        mine = [p for p in points if p.setting == setting]
        got = [results[p.name] for p in mine if p.name in results]
        done = [r for r in got if r["status"] == "done"]
        score, score_sd = _spread([r["score"] for r in done])
        seconds, seconds_sd = _spread([r["seconds"] for r in done])
        rows.append({"setting": setting, **mine[0].labels, "metric": get_task(mine[0].config.task).metric,
                     "runs": len(mine), "done": len(done),
                     "failed": sum(r["status"] == "failed" for r in got), "mean": score, "std": score_sd,
                     "seconds_mean": seconds, "seconds_std": seconds_sd,
                     "compile_seconds_mean": _spread([r.get("compile_seconds", math.nan) for r in done])[0]})
    return rows


def table_csv(rows: list[dict]) -> bytes:
    """Rows of dicts as CSV (the keys of the first row are the columns)."""
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue().encode()


def learning(points: list[Point], results: dict[str, dict], out: str | Path) -> dict[str, tuple]:
    """For each task with finished runs under `out`: (its test metric, each setting's learning curves: one
    [(step, score), ...] per seed, each setting's final scores: one per seed), what the sweep's plots draw."""
    tasks: dict[str, tuple] = {}
    for p in points:
        result = results.get(p.name, {})
        if result.get("status") != "done":
            continue
        metric, curves, finals = tasks.setdefault(p.config.task, (result["metric"], {}, {}))
        rows = read_metrics(Path(out) / p.name)
        curves.setdefault(p.setting, []).append([(r["step"], r[metric]) for r in rows if metric in r])
        finals.setdefault(p.setting, []).append(result["score"])
    return tasks


def read_metrics(folder: Path) -> list[dict]:
    """A run's metrics.csv as rows of numbers (a score left empty on a step without one is left out)."""
    try:
        with open(folder / "metrics.csv", newline="") as f:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
    except (OSError, ValueError):
        return []
