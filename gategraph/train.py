"""Training runs: a task's batches through a SequenceModel, Adam or SGD with gradient-norm clipping, test
scores as it goes, and a run directory that survives an interruption.

A run directory holds
- config.json — everything the run was started with;
- metrics.csv — step, loss, the task's test score (test_mse, test_accuracy), seconds (of training: the time
  spent building and compiling kernels is counted apart, `Run.compile_seconds`, kept in the checkpoint);
- params.npz + params.json — the parameters and what they belong to (loaded with allow_pickle=False);
- checkpoint.npz — parameters, optimizer state, the data generator's state and the step, written
  atomically every `save_every` steps, on Ctrl-C or SIGTERM, and at the end; checkpoint.prev.npz, the one
  before it.
A damaged or missing file is a one-line RunError that names it and says what to do (`load_run`).
`train(config, run_dir, resume=True)` continues from the checkpoint exactly where the run stopped: the
same batches, the same updates, the same numbers bit for bit (on the same machine). A loss that is not
finite stops the run with a clear error; the last good checkpoint stays.

Imports: numpy, gategraph.models, gategraph.seq2seq, gategraph.tasks, gategraph.optim, gategraph.cells,
gategraph.spec, gategraph.files, gategraph.errors, gategraph.compiling.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import io
import json
import math
import os
import signal
import threading
import time
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from gategraph import blas
from gategraph.cells import cell_reference, load_cell
from gategraph.compiling import numba_seconds
from gategraph.errors import GategraphError, Interrupted, RunError, UsageError, ValueInputError
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


def check_settings(config: Config, task) -> None:
    """Refuse, in one line, settings that cannot work or would be ignored without a word."""
    if not (isinstance(config.lr, int | float) and math.isfinite(config.lr) and config.lr > 0):
        raise UsageError(f"the learning rate (--lr) must be a number above 0, got {config.lr}")
    if config.clip is not None and not (math.isfinite(config.clip) and config.clip > 0):
        raise UsageError(f"--clip is the largest gradient norm let through and must be above 0, got {config.clip} "
                         "(a negative one would turn the update around)")
    if not 0 <= config.momentum < 1:
        raise UsageError(f"the momentum is from 0 to below 1, got {config.momentum}")
    for name in ("hidden", "layers", "steps", "batch", "eval_every", "save_every", "test_size"):
        if getattr(config, name) < 1:
            raise UsageError(f"{option_name(name)} must be at least 1, got {getattr(config, name)}")
    seq2seq = task.structure == "seq2seq"
    if config.attention is not None and not seq2seq:
        raise UsageError(f"--attention is for sequence-to-sequence tasks (a decoder attends to the source); the "
                         f"{task.name} task is {task.structure}")
    if config.teacher_forcing_end is not None and not seq2seq:
        raise UsageError(f"teacher forcing is for sequence-to-sequence tasks; the {task.name} task is "
                         f"{task.structure}")
    if seq2seq and config.layers != 1:
        raise UsageError("the sequence-to-sequence model has one layer: --layers does not apply to it")
    if seq2seq and config.bidirectional and not task.source_vocab:
        raise UsageError(f"the {task.name} task has no source: --bidirectional reads a source both ways")


def available_memory() -> int | None:
    """Bytes this process may still allocate: the system's MemAvailable, or a control group's limit if lower
    (None when neither can be read)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, AttributeError):
            pass
    for limit, usage in (("memory.max", "memory.current"), ("memory/memory.limit_in_bytes",
                                                            "memory/memory.usage_in_bytes")):
        try:
            cap = Path("/sys/fs/cgroup", limit).read_text().strip()
            if cap != "max" and int(cap) < 2**60:
                found.append(int(cap) - int(Path("/sys/fs/cgroup", usage).read_text()))
        except (OSError, ValueError):
            pass
    return min(found) if found else None


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000


def memory_needed(config: Config, task, model) -> dict:
    """Roughly how many bytes training with these settings holds at its peak, by what holds them (nothing is
    allocated): each kernel's tape and adjoint buffers, T·B·(values kept per step)·H·itemsize per layer and
    direction, for a training batch and for the test set; the data; the parameters with their gradients, the
    optimizer's state and the checkpoint being written."""
    item = np.dtype(config.dtype).itemsize
    probe = task.batch(np.random.default_rng(0), 1)  # one example: the data's lengths and widths
    B, N = config.batch, config.test_size
    parts = {}
    if isinstance(model, Seq2Seq):
        src, tgt = probe[0], probe[1]
        S, T = (src.shape[0] if src is not None else 0), tgt.shape[0]
        kernels = [k for k in (model.encoder, model.backward_encoder, model.decoder, model.attn) if k is not None]
        n_params = sum(math.prod(k.shape(p)) for k in kernels for p in k.param_names)
        n_params += (2 * model.H if model.attn else model.H + 1) * model.V
        if model.encoder is not None:
            train_ws, test_ws = model.encoder.workspace_bytes(S, B), model.encoder.workspace_bytes(S, N)
            parts[f"the encoder's tape for the test set of {N} sequences of length {S}"] = test_ws["forward"]
            parts["the encoder's tape for a batch"] = train_ws["forward"] + train_ws["backward"]
            if model.backward_encoder is not None:  # the same again, reading backwards
                parts[f"the encoder's tape for the test set of {N} sequences of length {S}"] *= 2
                parts["the encoder's tape for a batch"] *= 2
        per_step = (2 * model.V + 4 * model.H + S * (model.H + 2)) * item  # inputs, states, logits, attention
        parts[f"the decoder's {T} steps"] = T * max(B, N) * per_step * 3
        dec_ws = model.decoder.workspace_bytes(T, B)
        parts["the decoder's tape for a batch"] = dec_ws["forward"] + dec_ws["backward"]
    else:
        x, y = probe[0], probe[1]
        # one-to-many: one input (B, X) and T outputs; otherwise x is (T, B, X)
        T, X = (y.shape[0], x.shape[1]) if x.ndim == 2 else (x.shape[0], x.shape[2])
        n_params = 0
        train = test = 0
        for layer in model.rnn.kernels:
            for k in layer.values():
                n_params += sum(math.prod(k.shape(p)) for p in k.param_names)
                a, b = k.workspace_bytes(T, B), k.workspace_bytes(T, N)
                train += a["forward"] + a["backward"] + 3 * T * B * k.sizes["H"] * item  # and the outputs
                test += b["forward"] + 3 * T * N * k.sizes["H"] * item
        n_params += (model.rnn.width + 1) * model.output_size
        parts[f"the tape of a test pass over {N} sequences of length {T}"] = test
        parts[f"the tape of a training step over {B} sequences of length {T}"] = train
        parts["the data"] = T * (N + B) * X * (8 + item)
    parts[f"the {n_params:,} parameters, their gradients, the optimizer's state and a checkpoint"] = \
        9 * n_params * item
    return parts


def check_memory(config: Config, task, model) -> None:
    """Refuse, in one line and before allocating it, a run that needs more memory than there is."""
    available = available_memory()
    if available is None:
        return
    parts = memory_needed(config, task, model)
    need = sum(parts.values())
    if need <= available:
        return
    biggest = max(parts, key=parts.get)
    lower = ("--hidden or --layers" if "parameters" in biggest else
             "--length, --hidden or --layers" if "test" in biggest else "--batch, --length, --hidden or --layers")
    raise UsageError(f"{config.cell} on {task.name} with these settings needs about {_size(need)} of memory (most "
                     f"of it {biggest}), {_size(available)} is available: lower {lower}")


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
        check_settings(config, task)
        start = time.perf_counter()
        if self.seq2seq:
            self.model = Seq2Seq(cell, len(task.source_vocab) if task.source_vocab else None, len(task.target_vocab),
                                 config.hidden, task.start, task.end, config.attention, config.dtype,
                                 config.bidirectional)
        else:
            self.model = SequenceModel(cell, task.input_size, config.hidden, task.output_size,
                                       config.structure or task.structure, task.loss, config.layers,
                                       config.bidirectional, config.dtype)
        # building the kernels (derived, generated, compiled or loaded from the cache); the training loop adds
        # what Numba compiles on first calls, and a checkpoint what earlier sessions of the run spent
        self.compile_seconds = time.perf_counter() - start
        check_memory(config, task, self.model)
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
        self.changes: list[dict] = []  # settings changed on resuming: {"step": s, "lr": [old, new], ...}
        self.resumed_with: dict = {}  # the changes of this resume: {"lr": [old, new], ...}

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
        meta = {"step": self.step, "rng": self.rng.bit_generator.state, "history": self.history,
                "changes": self.changes, "compile_seconds": self.compile_seconds}
        return {**{f"p/{k}": v for k, v in self.params.items()}, **{f"opt/{k}": v for k, v in self.opt.state().items()},
                "meta": np.array(json.dumps(meta))}

    def load(self, arrays: dict, meta: dict):
        """The state of a checkpoint (read and checked by `read_checkpoint`)."""
        self.params = {k[2:]: v for k, v in arrays.items() if k.startswith("p/")}
        self.opt.load({k[4:]: v for k, v in arrays.items() if k.startswith("opt/")})
        self.step, self.history, self.changes = meta["step"], meta["history"], meta.get("changes", [])
        self.compile_seconds += meta.get("compile_seconds", 0.0)  # this session's, and the earlier ones'
        self.rng.bit_generator.state = meta["rng"]


def _npz(arrays: dict) -> bytes:
    buf = io.BytesIO()
    try:
        np.savez(buf, **arrays)
    except ValueError as e:  # running out of memory inside the archive shows as "I/O operation on closed file"
        if isinstance(e.__context__, MemoryError):
            raise MemoryError("no memory left to write the checkpoint") from None
        raise
    return buf.getvalue()


def save(run: Run, run_dir: Path):
    """The checkpoint, the parameters and the metrics so far, each written whole or not at all. The checkpoint
    it replaces stays as checkpoint.prev.npz (a hard link, no copy), for when the newest is damaged later."""
    data = _npz(run.state())
    current, link = run_dir / CHECKPOINT, run_dir / f".{PREVIOUS}.new"
    if current.exists():
        try:
            link.unlink(missing_ok=True)
            os.link(current, link)
            os.replace(link, run_dir / PREVIOUS)
        except OSError:  # a file system without hard links: no previous checkpoint is kept
            link.unlink(missing_ok=True)
    atomic_write(current, data)
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


CONFIG, CHECKPOINT, PREVIOUS = "config.json", "checkpoint.npz", "checkpoint.prev.npz"


def _config_hint(run_dir: Path) -> str:
    """What to do about a damaged config.json: params.json keeps a copy of the settings."""
    try:
        copy = json.loads((run_dir / "params.json").read_text())["config"]
        config_from_dict(copy, run_dir / "params.json")
    except (OSError, ValueError, KeyError, TypeError, RunError):
        return "the run cannot be read without it: start a new run with another -o"
    return 'params.json keeps a copy of the settings: write its "config" entry back to config.json'


def config_from_dict(data, path: Path) -> Config:
    """A Config from what a JSON file held, every setting known and of its type, else a one-line RunError."""
    if not isinstance(data, dict):
        raise RunError(f"{path} holds a JSON {type(data).__name__}, not the run's settings")
    fields = {f.name: f.type for f in dataclasses.fields(Config)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise RunError(f"{path} has an unknown setting {unknown[0]!r} (the settings: {', '.join(fields)})")
    kinds = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "dict": (dict,)}
    for name, value in data.items():
        allowed = fields[name].replace(" ", "").split("|")
        if value is None and "None" in allowed:
            continue
        types = tuple(t for a in allowed for t in kinds.get(a, (object,)))
        if not isinstance(value, types) or (isinstance(value, bool) and "bool" not in allowed):
            raise RunError(f"{path}: the setting {name!r} is {json.dumps(value)}, not a {' or '.join(allowed)}")
    return Config(**data)


def read_config(run_dir: Path) -> Config:
    """config.json of a run directory, or a one-line RunError naming the file and what is wrong with it."""
    path = run_dir / CONFIG
    try:
        text = path.read_bytes().decode("utf-8")
        data = json.loads(text)
    except FileNotFoundError:
        raise RunError(f"{run_dir} is not a run directory (no {CONFIG})") from None
    except IsADirectoryError:
        raise RunError(f"{path} is a folder, not the run's settings") from None
    except OSError as e:
        raise RunError(f"{path} cannot be read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise RunError(f"{path} is damaged: it is not text; {_config_hint(run_dir)}") from None
    except json.JSONDecodeError as e:
        what = "it is empty" if not text.strip() else f"not valid JSON ({e.msg}, line {e.lineno} column {e.colno})"
        raise RunError(f"{path} is damaged: {what}; {_config_hint(run_dir)}") from None
    try:
        return config_from_dict(data, path)
    except RunError as e:
        raise RunError(f"{e}; {_config_hint(run_dir)}") from None


def _why_unreadable(path: Path, e: Exception) -> str:
    """What is wrong with an .npz file that numpy could not read, in words."""
    try:
        head = path.read_bytes()[:4]
    except OSError:
        head = b""
    if path.stat().st_size == 0:
        return "it is empty"
    if head != b"PK\x03\x04":
        return "it is not an .npz archive"
    if isinstance(e, ValueError) and "allow_pickle" in str(e):
        return "it holds Python objects (object arrays), which gategraph never loads"
    if isinstance(e, EOFError) or isinstance(e, zipfile.BadZipFile) and "not a zip file" in str(e):
        return "it is cut short (the archive's directory at its end is missing)"
    return f"it is damaged ({type(e).__name__}: {e})"


def read_checkpoint(path: Path) -> tuple[dict, dict]:
    """The arrays and the record (step, generator state, history) of a checkpoint file, each checked; a
    one-line RunError naming the file and what is wrong with it otherwise."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise RunError(f"{path.parent} is not a run directory (no {path.name})") from None
    except IsADirectoryError:
        raise RunError(f"{path} is a folder, not a checkpoint") from None
    except Exception as e:  # zipfile.BadZipFile, EOFError, zlib.error, ValueError, ...: the file is not whole
        raise RunError(f"{path} cannot be read: {_why_unreadable(path, e)}") from None
    if "meta" not in arrays:
        raise RunError(f"{path} has no run record (its 'meta' entry is missing)")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except ValueError:
        raise RunError(f"{path} is damaged: its run record ('meta') is not valid JSON") from None
    if not isinstance(meta, dict):
        raise RunError(f"{path} is damaged: its run record ('meta') is not a JSON object")
    for key, kind in (("step", int), ("rng", dict), ("history", list)):
        if key not in meta:
            raise RunError(f"{path} is damaged: its run record ('meta') has no {key!r}")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise RunError(f"{path} is damaged: the {key!r} of its run record is not a {kind.__name__}")
    changes, compiling = meta.get("changes", []), meta.get("compile_seconds", 0.0)  # both absent in older runs
    impossible = (meta["step"] < 0 or not isinstance(changes, list)
                  or not all(isinstance(r, dict) for r in meta["history"] + changes)
                  or isinstance(compiling, bool) or not isinstance(compiling, int | float) or not compiling >= 0)
    if impossible:
        raise RunError(f"{path} is damaged: its run record ('meta') holds impossible values")
    for name, a in arrays.items():
        if a.dtype.kind not in "fiub":
            raise RunError(f"{path} is damaged: {name!r} holds {a.dtype} values, not numbers")
    return arrays, meta


def _previous(run_dir: Path) -> str:
    """What to do when checkpoint.npz is unusable: the previous checkpoint, if it is intact."""
    prev = run_dir / PREVIOUS
    if not prev.exists():
        return "no earlier checkpoint is kept: start the run again"
    try:
        _, meta = read_checkpoint(prev)
    except RunError:
        return f"{PREVIOUS} is damaged too: start the run again"
    return f"{PREVIOUS} (step {meta['step']}) is intact: rename it to {CHECKPOINT} to go on from step {meta['step']}"


def _fits(run: Run, arrays: dict, path: Path):
    """The checkpoint's parameters and optimizer state are the ones the config's model has, by name and shape."""
    want = {f"p/{k}": v for k, v in run.params.items()}
    have = {k: v for k, v in arrays.items() if k.startswith("p/")}
    for name in sorted(set(want) | set(have)):
        if name not in have:
            raise RunError(f"{path} does not fit {CONFIG}: it has no parameter {name[2:]!r}")
        if name not in want:
            raise RunError(f"{path} does not fit {CONFIG}: the config's model has no parameter {name[2:]!r}")
        if have[name].shape != want[name].shape or have[name].dtype != want[name].dtype:
            raise RunError(f"{path} does not fit {CONFIG}: {name[2:]!r} is {have[name].dtype} {have[name].shape} "
                           f"there, the config makes {want[name].dtype} {want[name].shape}")
    for name, a in arrays.items():
        param = name.split("/", 2)[-1] if name.startswith("opt/") else None
        if param and f"p/{param}" in want and a.shape != want[f"p/{param}"].shape:
            raise RunError(f"{path} is damaged: the optimizer's {name[4:]!r} has shape {a.shape}, its parameter "
                           f"{want[f'p/{param}'].shape}")


def load_run(run_dir: str | Path, config: Config | None = None) -> Run:
    """A run as its directory left it: the config (or `config`, the one to continue with), and the state of
    its last checkpoint. A damaged or missing file is a one-line RunError naming it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} is not a run directory (no such folder)")
    changed, config = config is not None, config or read_config(run_dir)
    path = run_dir / CHECKPOINT
    try:
        arrays, meta = read_checkpoint(path)
    except RunError as e:
        if not path.exists():
            raise
        raise RunError(f"{e}; {_previous(run_dir)}") from None
    try:
        run = Run(config)
    except GategraphError as e:
        if changed:  # the settings given to go on with are at fault, not the file
            raise
        raise RunError(f"{run_dir / CONFIG}: {e}") from None
    _fits(run, arrays, path)
    try:
        run.load(arrays, meta)
    except (KeyError, ValueError, TypeError) as e:
        raise RunError(f"{path} is damaged: its state does not load ({type(e).__name__}: {e}); "
                       f"{_previous(run_dir)}") from None
    return run


_OWNED: dict = {}  # run folders this process owns: resolved path -> [lock file descriptor, depth]


@contextlib.contextmanager
def owning(run_dir: str | Path, create: bool = True):
    """Own a run folder while the block runs: an exclusive lock (flock) on its `.lock` file, which the system
    releases when this process ends, however it ends. Another process that asks for the same folder gets a
    one-line RunError; the same process may ask again (the CLI holds it around training and the plots)."""
    run_dir = Path(run_dir)
    made = False  # by this process (a process started at the same moment may make it first)
    if not run_dir.is_dir():
        if not create:
            raise RunError(f"{run_dir} is not a run directory (no such folder)")
        try:
            run_dir.mkdir(parents=True)
            made = True
        except OSError as e:
            if not (isinstance(e, FileExistsError) and run_dir.is_dir()):
                raise OSError(e.errno, f"cannot write a file there ({e.strerror})", str(run_dir)) from None
    key = run_dir.resolve()
    if key in _OWNED:
        _OWNED[key][1] += 1
        try:
            yield run_dir
        finally:
            _OWNED[key][1] -= 1
        return
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        pid = f" (pid {holder})" if holder.isdigit() else ""
        raise RunError(f"{run_dir} is in use by another gategraph process{pid}: wait for it to end, "
                       "or choose another -o") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _OWNED[key] = [fd, 1]
    try:
        yield run_dir
    finally:
        del _OWNED[key]
        os.ftruncate(fd, 0)
        if made and [p.name for p in run_dir.iterdir()] == [".lock"]:  # refused before anything was written
            (run_dir / ".lock").unlink()
            run_dir.rmdir()
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def option_name(name: str) -> str:
    """The command-line option of a Config setting: lr -> --lr, task_options -> --length."""
    return {"cell": "CELL", "task_options": "--length"}.get(name, "--" + name.replace("_", "-"))


def resume_run(run_dir: Path, changes: dict | None = None) -> Run:
    """The run in `run_dir`, to go on with some settings changed (`changes`, e.g. {"lr": 0.5, "steps": 2000}).
    What the model or its data is made of cannot change (a one-line RunError says so); what can is applied,
    written to config.json and recorded in the checkpoint's history of changes."""
    old = read_config(run_dir)
    changes = {k: v for k, v in (changes or {}).items() if v is not None and v != getattr(old, k, None)}
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(Config)})
    if unknown:
        raise UsageError(f"there is no setting {unknown[0]!r}")
    fixed = [k for k in changes if k not in RESUMABLE]
    if fixed:
        k = fixed[0]
        was, given = getattr(old, k), changes[k]
        if k == "task_options":
            was, given = was.get("T", "the task's own"), given.get("T", "the task's own")
        can = ", ".join(option_name(r) for r in RESUMABLE if r not in ("momentum", "save_every"))  # no options
        raise RunError(f"{run_dir} was trained with {option_name(k)} {was}, not {given}: it cannot change when a run "
                       f"goes on (only {can} can); start a new run with -o")
    run = load_run(run_dir, dataclasses.replace(old, **changes))
    if changes.get("steps", run.step) < run.step:
        raise UsageError(f"{run_dir} is at step {run.step} already: --steps must be at least that")
    run.resumed_with = {k: [getattr(old, k), v] for k, v in changes.items()}
    if changes:
        run.changes.append({"step": run.step, **run.resumed_with})
    return run


RESUMABLE = ("steps", "lr", "clip", "batch", "momentum", "eval_every", "save_every", "teacher_forcing",
             "teacher_forcing_end")


def train(config: Config, run_dir: str | Path | None = None, resume: bool = False, progress=None,
          changes: dict | None = None, task: Task | None = None, cell: Cell | None = None, stop=None) -> Run:
    """Train for config.steps steps. `progress(run, loss, rate)` is called after every step, and `stop()`, if
    given: when it returns True, a run with a run directory stops as on Ctrl-C (a sweep stopping). Returns the run
    (run.params, run.history). `task` and `cell`, if given, stand in for the config's names (a run
    directory records only names, so a run on them has no run directory).

    With `resume`, the run in `run_dir` goes on from its checkpoint; `changes` are the settings to change
    (`resume_run`), and config.steps, if not 0, is the new target. The run folder belongs to this process
    while it trains (`owning`).

    With a run directory, Ctrl-C and SIGTERM only ask the run to stop: it finishes the step it is in (a
    signal must not land inside a compiled kernel), saves, and raises Interrupted. A second Ctrl-C stops at
    once, keeping the last saved checkpoint — after a save that is under way, so that the checkpoint,
    params.json and metrics.csv always tell the same step."""
    if run_dir and (task is not None or cell is not None):
        raise UsageError("a run directory records its cell and task by name: give their names in the Config "
                         "(a built-in cell or path/to/file.py:function), or train without a run directory")
    if not run_dir:
        if resume:
            raise UsageError("resuming needs the run directory")
        return _train(Run(config, task, cell), None, progress, stop)
    run_dir = Path(run_dir)
    with owning(run_dir, create=not resume):
        if resume:
            changes = dict(changes or {})
            if config.steps:
                changes.setdefault("steps", config.steps)
            run = resume_run(run_dir, changes)
        else:
            if (run_dir / CHECKPOINT).exists():
                raise UsageError(f"{run_dir} already holds a run: continue it with --resume, or choose another -o")
            run = Run(config)
        atomic_write(run_dir / CONFIG, json.dumps(asdict(run.config), indent=1).encode())
        return _train(run, run_dir, progress, stop)


def blas_threads(run: Run):
    """The BLAS threads for the whole run, by the kernels' rule (gategraph.blas.threads) over the batch and
    the model's parameters: one thread for a small model, whose GEMMs are too small to pay for a second and
    cost many times more whenever it waits for its core on a busy machine (the RNN's backward pass at H = 32,
    B = 32, T = 50: 7 ms on one thread, 100 to 400 ms on two); the BLAS's own threads for a large one."""
    weights = sum(p.size for p in run.params.values())
    if blas.threads(run.config.batch, weights) != 1:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits  # every BLAS loaded by now, NumPy's for the model's own layers too

    return threadpool_limits(1, user_api="blas")


def _train(run: Run, run_dir: Path | None, progress, stop=None) -> Run:
    """The training loop (see `train`), with the BLAS threads that pay for the model's size, every pass over
    its whole batch at once (a batch split over the cores would sum its gradients in another order: a run's
    numbers would depend on the machine's cores), and Numba's compiling timed apart from training."""
    with blas_threads(run), blas.serial(), numba_seconds() as compiling:
        return _loop(run, run_dir, progress, stop, compiling)


def _loop(run: Run, run_dir: Path | None, progress, stop, compiling) -> Run:
    """Steps until config.steps; each row of the history counts the seconds of training so far, across resumes,
    without what `compiling()` says Numba spent making machine code (that goes to run.compile_seconds)."""
    cfg = run.config
    asked, saving, now = [], [], []
    saved = [run.step]  # the step of the last checkpoint

    def ask_to_stop(signum, frame):
        if not asked:
            asked.append(signum)
        elif saving:  # the second time, while saving: as soon as the files agree again
            now.append(signum)
        else:  # the second time: now
            raise KeyboardInterrupt

    def checkpoint():
        saving.append(True)
        try:
            save(run, run_dir)
            saved[0] = run.step
        finally:
            saving.clear()
        if now:
            raise KeyboardInterrupt

    handlers = {}
    if run_dir and threading.current_thread() is threading.main_thread():
        handlers = {s: signal.signal(s, ask_to_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    clock = run.history[-1]["seconds"] if run.history else 0.0  # seconds go on counting across resumes
    start, first, compiled = time.perf_counter(), run.step, run.compile_seconds
    try:
        while run.step < cfg.steps and not asked:
            try:
                loss = run.train_step()
            except ValueInputError as e:  # a loss or a gradient that is not finite
                kept = f"the checkpoint of step {saved[0]} is kept" if run_dir and saved[0] else "nothing was saved"
                raise ValueInputError(f"step {run.step + 1}: {e}; the run stops, {kept} (try a smaller --lr)") \
                    from None
            spent = compiling()
            run.compile_seconds = compiled + spent
            row = {"step": run.step, "loss": loss, "seconds": round(clock + time.perf_counter() - start - spent, 3)}
            if run.step % cfg.eval_every == 0 or run.step == cfg.steps:
                row[run.task.metric] = run.evaluate()
            run.history.append(row)
            if progress:
                progress(run, loss, (run.step - first) / max(time.perf_counter() - start, 1e-9))
            if stop and run_dir and run.step < cfg.steps and not asked and stop():
                asked.append("stop")
            if run_dir and (run.step % cfg.save_every == 0 or run.step == cfg.steps):
                checkpoint()
        if asked:
            checkpoint()
            raise Interrupted(f"stopped at step {run.step}; continue with `gategraph train --resume {run_dir}`")
    except KeyboardInterrupt:
        if not run_dir:
            raise
        kept = f"the checkpoint of step {saved[0]} is kept" if saved[0] else "nothing was saved"
        raise Interrupted(f"stopped at once at step {run.step}; {kept}"
                          + (f": continue with `gategraph train --resume {run_dir}`" if saved[0] else "")) from None
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


def gate_trace(run: Run) -> dict:
    """The first layer's gates (its σ equations) over the first test sequence: gate name -> (T, H)."""
    x, y, _ = run.test
    gates = run.model.gate_values(run.params, x[:1] if x.ndim == 2 else x[:, :1], y.shape[0])
    return {n: v[:, 0] for n, v in gates.items()}


def decode(run: Run, source: str | None = None, length: int = 16) -> tuple[str, str, np.ndarray]:
    """A sequence-to-sequence run reads `source` (the first test example unless given) and writes greedily:
    (source, text, α) with α[i, j] the attention of output step i (the text, then </s>) on character j."""
    task = run.task
    if source is None:
        source = task.pairs(np.random.default_rng(run.config.seed + 10**6), 1, test=True)[0][0]
    src, _ = task.encode([(source, "0")])
    _, _, tokens, alphas = run.model.run(run.params, src, None, length=length)
    text = task.decode(tokens[:, 0])
    return source, text, alphas[: len(text) + 1, 0, src.shape[0] - len(source):]
