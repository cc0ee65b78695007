"""Training runs: a task's batches through a SequenceModel, Adam or SGD with gradient-norm clipping, test
scores as it goes, and a run directory that survives an interruption.

A run directory holds
- config.json — everything the run was started with;
- metrics.csv — step, loss, the task's test score (test_mse, test_accuracy), seconds;
- params.npz + params.json — the parameters and what they belong to (loaded with allow_pickle=False);
- checkpoint.npz — parameters, optimizer state, the data generator's state and the step, written
  atomically every `save_every` steps, on Ctrl-C or SIGTERM, and at the end.
`train(config, run_dir, resume=True)` continues from the checkpoint exactly where the run stopped: the
same batches, the same updates, the same numbers bit for bit (on the same machine). A loss that is not
finite stops the run with a clear error; the last good checkpoint stays.

Imports: numpy, gategraph.models, gategraph.seq2seq, gategraph.tasks, gategraph.optim, gategraph.cells,
gategraph.spec, gategraph.files, gategraph.errors.
"""

from __future__ import annotations

import csv
import io
import json
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from gategraph.cells import cell_reference, load_cell
from gategraph.errors import GategraphError, UsageError, ValueInputError
from gategraph.files import atomic_write
from gategraph.models import SequenceModel
from gategraph.optim import SGD, Adam, clip_scale
from gategraph.seq2seq import Seq2Seq
from gategraph.spec import Cell
from gategraph.tasks import Task, get_task

# what a task may set for a run that does not (Task.training; `gategraph tasks` shows them)
TASK_SETTINGS = ("steps", "lr", "hidden", "batch", "clip", "attention")


@dataclass
class Config:
    cell: str = "lstm"  # a built-in cell, or "/path/to/file.py:function" (see cells.cell_reference)
    task: str = "adding"
    hidden: int = 64
    layers: int = 1
    bidirectional: bool = False
    structure: str | None = None  # the task's own unless given
    steps: int = 1000
    batch: int = 32
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    clip: float | None = 1.0
    seed: int = 0
    dtype: str = "float32"
    eval_every: int = 50
    test_size: int = 512
    save_every: int = 100
    attention: str | None = None  # sequence to sequence: "dot", "general" or "additive"
    teacher_forcing: float = 1.0  # sequence to sequence: how often the decoder reads the true previous token
    teacher_forcing_end: float | None = None  # scheduled sampling: the ratio moves linearly to this by the end
    task_options: dict = field(default_factory=dict)  # e.g. {"T": 50}

    @classmethod
    def for_task(cls, task: str, **given) -> Config:
        """A run's settings with the task's own defaults (`gategraph tasks` shows them) for what is not given:
        `Config.for_task("adding", cell="gru")` is what `gategraph train gru --task adding` runs. What is
        given wins (`attention=None` turns off a task's default attention)."""
        return cls(task=task, **{**get_task(task).training, **given})


class Interrupted(GategraphError):
    """Ctrl-C or SIGTERM: the run saved a checkpoint and stopped; `--resume` continues it."""


class Run:
    """One training run: the model, the optimizer, the data and the record, built from a Config — or from
    a task and a cell of your own (`task`, `cell`: objects in place of the config's names)."""

    def __init__(self, config: Config, task: Task | None = None, cell: Cell | None = None):
        if config.optimizer not in ("adam", "sgd"):
            raise UsageError(f"optimizer must be adam or sgd, got {config.optimizer!r}")
        if cell is None:  # recorded so that it reloads from any folder
            config = replace(config, cell=cell_reference(config.cell))
        self.config = config
        self.cell = cell = cell if cell is not None else load_cell(config.cell)
        self.task = task = task if task is not None else get_task(config.task, **config.task_options)
        self.seq2seq = task.structure == "seq2seq"
        if config.structure and config.structure != task.structure:
            raise UsageError(f"the {task.name} task is {task.structure}; --structure {config.structure} does not "
                             "fit its data")
        for ratio in (config.teacher_forcing, config.teacher_forcing_end):
            if ratio is not None and not 0 <= ratio <= 1:
                raise UsageError(f"a teacher-forcing ratio is between 0 and 1, got {ratio}")
        if self.seq2seq:
            self.model = Seq2Seq(cell, len(task.source_vocab) if task.source_vocab else None, len(task.target_vocab),
                                 config.hidden, task.start, task.end, config.attention, config.dtype)
        else:
            self.model = SequenceModel(cell, task.input_size, config.hidden, task.output_size,
                                       config.structure or task.structure, task.loss, config.layers,
                                       config.bidirectional, config.dtype)
        self.params = self.model.init(config.seed)
        self.opt = Adam(config.lr) if config.optimizer == "adam" else SGD(config.lr, config.momentum)
        self.rng = np.random.default_rng(config.seed)
        held_out = np.random.default_rng(config.seed + 10**6)
        if self.seq2seq:
            self.test = task.batch(held_out, config.test_size, test=True)
        else:
            x, y, mask = task.batch(held_out, config.test_size)
            self.test = (x.astype(config.dtype), y, mask)
        self.step = 0
        self.history: list[dict] = []

    # -- one step and one evaluation -------------------------------------------------------------------------
    def train_step(self) -> float:
        x, y, mask = self.task.batch(self.rng, self.config.batch)
        if self.seq2seq:
            loss, grads, _, _ = self.model.run(self.params, x, y, self.teacher_forcing(), self.rng, grads=True)
            if not math.isfinite(loss):
                raise ValueInputError(f"the loss is {loss}: the model diverged")
        else:
            loss, grads, _ = self.model.loss_and_grads(self.params, x.astype(self.config.dtype), y, mask)
        scale, _ = clip_scale(grads, self.params, self.config.clip)
        self.opt.step(self.params, grads, scale)
        self.step += 1
        return loss

    def teacher_forcing(self) -> float:
        """The ratio at this step: fixed, or moving linearly from the start value to the end value."""
        cfg = self.config
        if cfg.teacher_forcing_end is None:
            return cfg.teacher_forcing
        return cfg.teacher_forcing + (cfg.teacher_forcing_end - cfg.teacher_forcing) * self.step / max(cfg.steps, 1)

    def evaluate(self) -> float:
        x, y, mask = self.test
        if self.seq2seq:  # free-running: greedy decoding, scored by exact match
            _, _, tokens, _ = self.model.run(self.params, x, None, length=y.shape[0], batch=y.shape[1])
            return self.task.score(tokens, y)
        length = y.shape[0] if self.model.structure == "one-to-many" else None
        return self.task.score(self.model.predict(self.params, x, length), y, mask)

    # -- checkpoints -------------------------------------------------------------------------------------------
    def state(self) -> dict:
        meta = {"step": self.step, "rng": self.rng.bit_generator.state, "history": self.history}
        return {**{f"p/{k}": v for k, v in self.params.items()}, **{f"opt/{k}": v for k, v in self.opt.state().items()},
                "meta": np.array(json.dumps(meta))}

    def load(self, data):
        self.params = {k[2:]: np.array(data[k]) for k in data.files if k.startswith("p/")}
        self.opt.load({k[4:]: np.array(data[k]) for k in data.files if k.startswith("opt/")})
        meta = json.loads(str(data["meta"]))
        self.step, self.history = meta["step"], meta["history"]
        self.rng.bit_generator.state = meta["rng"]


def _npz(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save(run: Run, run_dir: Path):
    """The checkpoint, the parameters and the metrics so far, each written whole or not at all."""
    atomic_write(run_dir / "checkpoint.npz", _npz(run.state()))
    atomic_write(run_dir / "params.npz", _npz(run.params))
    shapes = {k: list(v.shape) for k, v in run.params.items()}
    atomic_write(run_dir / "params.json", json.dumps({"config": asdict(run.config), "step": run.step,
                                                      "shapes": shapes}, indent=1).encode())
    out = io.StringIO()
    columns = ["step", "loss", run.task.metric, "seconds"]
    writer = csv.DictWriter(out, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(run.history)
    atomic_write(run_dir / "metrics.csv", out.getvalue().encode())


def load_run(run_dir: str | Path) -> Run:
    """A run as its directory left it: the config, and the state of its last checkpoint."""
    run_dir = Path(run_dir)
    try:
        config = Config(**json.loads((run_dir / "config.json").read_text()))
        data = np.load(run_dir / "checkpoint.npz", allow_pickle=False)
    except FileNotFoundError as e:
        raise ValueInputError(f"{run_dir} is not a run directory (no {Path(e.filename).name})") from None
    run = Run(config)
    run.load(data)
    return run


def train(config: Config, run_dir: str | Path | None = None, resume: bool = False, progress=None,
          task: Task | None = None, cell: Cell | None = None) -> Run:
    """Train for config.steps steps (from the checkpoint in `run_dir` when resuming; there config.steps, if
    given, is the new target). `progress(run, loss, rate)` is called after every step. Returns the run
    (run.params, run.history). `task` and `cell`, if given, stand in for the config's names (a run
    directory records only names, so a run on them is not resumed from one).

    With a run directory, Ctrl-C and SIGTERM only ask the run to stop: it finishes the step it is in (a
    signal must not land inside a compiled kernel), saves, and raises Interrupted. A second Ctrl-C stops at
    once, keeping the last saved checkpoint."""
    run_dir = Path(run_dir) if run_dir else None
    if run_dir and (task is not None or cell is not None):
        raise UsageError("a run directory records its cell and task by name: give their names in the Config "
                         "(a built-in cell or path/to/file.py:function), or train without a run directory")
    if resume:
        run = load_run(run_dir)
        if config.steps:
            run.config.steps = config.steps
        atomic_write(run_dir / "config.json", json.dumps(asdict(run.config), indent=1).encode())
    else:
        run = Run(config, task, cell)
        if run_dir:
            if (run_dir / "checkpoint.npz").exists():
                raise UsageError(f"{run_dir} already holds a run: continue it with --resume, or choose another -o")
            atomic_write(run_dir / "config.json", json.dumps(asdict(run.config), indent=1).encode())
    cfg = run.config
    asked = []

    def ask_to_stop(signum, frame):
        if asked:  # the second time: now
            raise KeyboardInterrupt
        asked.append(signum)

    handlers = {}
    if run_dir and threading.current_thread() is threading.main_thread():
        handlers = {s: signal.signal(s, ask_to_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    clock = run.history[-1]["seconds"] if run.history else 0.0  # seconds go on counting across resumes
    start, first, saved = time.perf_counter(), run.step, run.step
    try:
        while run.step < cfg.steps and not asked:
            try:
                loss = run.train_step()
            except ValueInputError as e:  # a loss or a gradient that is not finite
                kept = f"the checkpoint of step {saved} is kept" if run_dir and saved else "nothing was saved"
                raise ValueInputError(f"step {run.step + 1}: {e}; the run stops, {kept} (try a smaller --lr)") \
                    from None
            row = {"step": run.step, "loss": loss, "seconds": round(clock + time.perf_counter() - start, 3)}
            if run.step % cfg.eval_every == 0 or run.step == cfg.steps:
                row[run.task.metric] = run.evaluate()
            run.history.append(row)
            if progress:
                progress(run, loss, (run.step - first) / max(time.perf_counter() - start, 1e-9))
            if run_dir and (run.step % cfg.save_every == 0 or run.step == cfg.steps):
                save(run, run_dir)
                saved = run.step
        if asked:
            save(run, run_dir)
            raise Interrupted(f"stopped at step {run.step}; continue with `gategraph train --resume {run_dir}`")
    finally:
        for s, previous in handlers.items():
            signal.signal(s, previous)
    return run


class _Arrays(Task):
    """A user's arrays as a task: batches of examples drawn without replacement (X (T, N, F), or (N, F) for
    one-to-many; y (N,) or (N, K) for many-to-one, (T, N) otherwise; mask (T, N) or None)."""

    def __init__(self, name, doc, input_size, output_size, structure, loss, metric, X, y, mask):
        super().__init__(name, doc, input_size, output_size, structure, loss, metric)
        self.X, self.mask = X, mask
        self.y = y if loss == "xent" or y.ndim > 1 else y[:, None]
        self.size = X.shape[0] if structure == "one-to-many" else X.shape[1]

    def batch(self, rng, B):
        idx = rng.choice(self.size, size=min(B, self.size), replace=False)
        x = self.X[idx] if self.structure == "one-to-many" else np.ascontiguousarray(self.X[:, idx])
        y = self.y[idx] if self.structure == "many-to-one" else self.y[:, idx]
        return x, y, None if self.mask is None else self.mask[:, idx]


class Learner:
    """The same machinery in the scikit-learn manner, on your own arrays: `__init__` stores the settings,
    `fit(X, y, mask=None)` learns `params_` and `history_`, `predict(X)` and `score(X, y)` use them.

    cell: a Cell, a built-in name or "path/to/file.py:function". X: (T, N, features), time-major; (N, features)
    for "one-to-many". y: (N,) labels or (N, K) targets for "many-to-one"; (T, N) labels for "many-to-many"
    and "one-to-many". loss "xent" (integer labels) or "mse"."""

    def __init__(self, cell: str | Cell = "lstm", structure: str = "many-to-one", loss: str = "xent", hidden: int = 32,
                 layers: int = 1, bidirectional: bool = False, steps: int = 500, batch: int = 32, lr: float = 1e-3,
                 optimizer: str = "adam", clip: float | None = 1.0, seed: int = 0, dtype: str = "float32"):
        self.cell, self.structure, self.loss, self.hidden, self.layers = cell, structure, loss, hidden, layers
        self.bidirectional, self.steps, self.batch, self.lr, self.optimizer = bidirectional, steps, batch, lr, optimizer
        self.clip, self.seed, self.dtype = clip, seed, dtype

    def fit(self, X: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> Learner:
        """Train with `train`'s loop on batches drawn from (X, y); `history_` ends with the score on them."""
        cell = self.cell if isinstance(self.cell, Cell) else load_cell(self.cell)
        X = np.asarray(X, self.dtype)
        y = np.asarray(y)
        axis = 1 if self.structure == "one-to-many" else 2  # where X holds its N examples: (N, F) or (T, N, F)
        if X.ndim != axis + 1 or X.shape[axis - 1] != y.shape[-1 if self.structure != "many-to-one" else 0]:
            raise ValueInputError(f"X must be {'(N, features)' if axis == 1 else '(T, N, features)'} and y hold "
                                  f"N examples; got X {X.shape}, y {y.shape}")
        self.length_ = y.shape[0] if self.structure == "one-to-many" else None
        outputs = int(y.max()) + 1 if self.loss == "xent" else (y.shape[1] if y.ndim > 1 else 1)
        task = _Arrays("arrays", "the arrays given to Learner.fit", X.shape[-1], outputs, self.structure, self.loss,
                       "train_accuracy" if self.loss == "xent" else "train_mse", X, y, mask)
        config = Config(cell=cell.name, task=task.name, hidden=self.hidden, layers=self.layers,
                        bidirectional=self.bidirectional, structure=self.structure, steps=self.steps,
                        batch=self.batch, optimizer=self.optimizer, lr=self.lr, momentum=0.9, clip=self.clip,
                        seed=self.seed, dtype=self.dtype, eval_every=max(self.steps, 1), test_size=task.size)
        run = train(config, task=task, cell=cell)
        self.model_, self.params_, self.history_ = run.model, run.params, run.history
        return self

    def predict(self, X: np.ndarray, length: int | None = None) -> np.ndarray:
        """Labels ("xent") or values ("mse"); a one-to-many model writes `length` steps (as many as in fit)."""
        length = length or getattr(self, "length_", None)
        out = self.model_.predict(self.params_, np.asarray(X, self.dtype), length)
        return out.argmax(axis=-1) if self.loss == "xent" else out

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Accuracy ("xent") or mean squared error ("mse")."""
        pred = self.predict(X)
        y = np.asarray(y)
        return float((pred == y).mean()) if self.loss == "xent" else float(((pred - y.reshape(pred.shape)) ** 2).mean())


def gradient_flow(run: Run, n: int = 64) -> np.ndarray:
    """How far back the gradient reaches in a trained many-to-one model: the mean over n test sequences of
    ‖∂L/∂h_t‖ in the first layer, against the distance from the loss (index 0: the last step)."""
    x, y, _ = run.test
    x, y = np.ascontiguousarray(x[:, :n]), y[:n]
    model, params = run.model, run.params
    kernel, own = model.rnn.kernels[0]["fwd"], model.rnn.layer_params(params)
    h, _, tape = kernel.forward(own, x)
    pred = model.head.forward(params, h[-1])
    d = np.zeros_like(h)
    d[-1] = (2 * (pred - y) / y.size) @ params["out.W"]  # the MSE's gradient, through the output layer
    steps = kernel.backward(own, x, d, tape=tape, state_grads=True)["steps"]["h"]
    return np.linalg.norm(steps, axis=2).mean(axis=1)[::-1]
