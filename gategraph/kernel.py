"""Compiled kernels: `compile(cell, input_size, hidden_size)` lowers a cell (gategraph.lower), loads the
generated module from the kernel cache, and wraps its two Numba functions for batches of time-major
sequences, x of shape (T, B, X).

The cache is a folder of generated modules, one per (cell, dtype, generator, Numba, NumPy, Python),
named by a hash of the generated source and those versions: Numba caches its machine code next to each
module, so a second process starts without compiling. Beside each module lies its plan (gategraph.plan),
named by a hash of the cell's declaration and the generator: a second process reads it and neither derives
nor lowers the cell. Beside them lies one module of helpers per dtype (gategraph.helpers), which every kernel
imports, so that Numba compiles the helpers once and not for every cell. A file whose content does not match
what names it is rewritten, never trusted. Several
processes may fill the cache at once (the workers of a sweep): each module, and each of its two passes, has a
lock file, held while a process imports the module or first runs the pass, so one of them compiles and the
others load the machine code it wrote. From an empty cache, on two cores or more, the backward pass compiles in
a second process while this one compiles the forward pass (see "the backward pass compiled in a second process"
below).
The folder is `$GATEGRAPH_CACHE_DIR`, else `$XDG_CACHE_HOME/gategraph/kernels`, else
`~/.cache/gategraph/kernels`; `gategraph cache --clear` empties it.

Each pass runs on the cores its size pays for. A middle-sized one splits its batch into shards of rows, one
per core, run at once (gategraph.blas.shards) and joined after: outputs and input gradients side by side,
the parameters' gradients added. An unsplit pass runs its BLAS products on the threads their size pays for
(gategraph.blas.threads): one for a small batch, the caller's count for a large one (set on the kernels' BLAS
only when it changes).

Imports: numpy, gategraph.plan, gategraph.helpers, gategraph.blas, gategraph.files, gategraph.errors;
gategraph.cells and gategraph.spec (SymPy) in `compile`, which the second process does not call;
gategraph.compiling when a module loads or waits for another process; gategraph.derive and gategraph.lower when
a cell has no plan in the cache yet.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gategraph import blas, helpers, plan
from gategraph.errors import GategraphError, ShapeError, SpecError, UsageError, ValueInputError
from gategraph.files import atomic_write
from gategraph.plan import DTYPES, Plan

if TYPE_CHECKING:
    from gategraph.spec import Cell

CACHE_ENV = "GATEGRAPH_CACHE_DIR"


def cache_dir() -> Path:
    """Where generated kernel modules and Numba's compiled code live."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gategraph" / "kernels"


def clear_cache() -> int:
    """Remove every cached kernel; returns how many modules there were."""
    folder = cache_dir()
    n = len(list(folder.glob("gg_*.py"))) if folder.is_dir() else 0
    if folder.is_dir():
        shutil.rmtree(folder)
    return n


def _key(source: str) -> str:
    stamp = f"numba {version('numba')} numpy {np.__version__} python {platform.python_version()}"
    return hashlib.sha256((stamp + "\n" + source).encode()).hexdigest()[:24]


def _purge(name: str):
    """Forget Numba's compiled code for one module (it is rebuilt on the next call)."""
    for f in (cache_dir() / "__pycache__").glob(f"{name}.*"):
        f.unlink(missing_ok=True)


@contextlib.contextmanager
def _compiling(name: str):
    """Hold the lock of one cached module (an flock, released when the process ends however it ends): a
    process that would compile it waits while another one does, then loads its machine code."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise GategraphError(f"cannot write the kernel cache in {folder} ({e.strerror}): "
                             f"set {CACHE_ENV} to a writable folder") from None
    try:
        from gategraph.compiling import elsewhere  # (Numba: not on `import gategraph.kernel`)

        with elsewhere():  # (a wait while another process compiles counts as compiling)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and with it the lock


def _plan(cell: Cell, dtype: str) -> Plan:
    """The cell's plan (gategraph.plan): read from the cache when it holds one for this declaration and this
    generator, else lowered (SymPy: the adjoint, then the code) and written there with its module."""
    path = cache_dir() / f"plan_{plan.key(cell, dtype)}.json"
    found = plan.read(path)
    if found is not None:
        return found
    from gategraph.derive import derive  # only here: a warm start needs no SymPy beyond the cell
    from gategraph.lower import lower

    lowered = lower(cell, dtype, derive(cell))
    key = _key(lowered.source)
    name, text = f"gg_{key}", f"# gategraph kernel {key}\n{lowered.source}".encode()
    made = Plan.of(lowered, name, hashlib.sha256(text).hexdigest())
    module = path.parent / f"{name}.py"
    try:
        if not module.is_file() or module.read_bytes() != text:
            atomic_write(module, text)
        plan.write(path, made)
    except OSError as e:
        raise GategraphError(f"cannot write the kernel cache in {path.parent} ({e.strerror}): "
                             f"set {CACHE_ENV} to a writable folder") from None
    return made


def _load(made: Plan, dtype: str, rebuild: bool = False):
    """The generated module of a plan, imported from the cache, after the helpers it imports (`_helpers`).
    `rebuild`: throw away Numba's cached machine code for both first (it failed to load)."""
    name = made.module
    module = _MODULES.get(name)
    if module is not None and not rebuild:
        return module
    if rebuild:
        _purge(name)
    try:
        _helpers(dtype, rebuild)
        module = _kernel_module(name, again=rebuild)
    except Exception:  # Numba's cached code for them is unreadable: rebuild it, once
        if rebuild:
            raise
        return _load(made, dtype, rebuild=True)
    return module


def _helpers(dtype: str, rebuild: bool = False, order: tuple = helpers.PARTS) -> dict:
    """The modules of helpers every kernel of `dtype` imports (gategraph.helpers), by part, imported in this
    `order` (from an empty cache the second process takes the math helpers first: each process compiles one
    part while the other compiles the other)."""
    _step_blas()
    if not blas.register(helpers.SYMBOLS):  # before any code that calls them compiles or loads
        raise GategraphError("the kernels' step products need the OpenBLAS of the package scipy-openblas32 (or MKL, "
                             "on an Intel processor), which is not installed: pip install scipy-openblas32")
    return {part: _helper_module(dtype, part, rebuild) for part in order}


def _step_blas() -> None:
    """Refuse a GATEGRAPH_BLAS that asks for a step BLAS that cannot be had (gategraph.blas.step_blas)."""
    try:
        blas.step_blas()
    except ValueError as error:
        raise UsageError(str(error)) from None


def _helper_module(dtype: str, part: str, rebuild: bool = False):
    """A module of helpers: written to the cache if it is not there as it should be, and imported once per process
    (again after its machine code was thrown away). Every helper has a signature, so all of them compile (or load)
    as it is imported: under the process's lock of imports (`_import`) and under the module's lock in the cache, so
    that no two processes compile them at once. (While another process compiles them, this one's other imports
    wait too: the helpers come first.)"""
    name = helpers.name(dtype, part)
    module = _MODULES.get(name)
    if module is not None and not rebuild:
        return module
    path, text = cache_dir() / f"{name}.py", helpers.source(dtype, part).encode()
    with _IMPORTING, _compiling(name):
        if name in _MODULES and not rebuild:  # another thread imported it while this one waited
            return _MODULES[name]
        try:
            if not path.is_file() or path.read_bytes() != text:
                atomic_write(path, text)
        except OSError as e:
            raise GategraphError(f"cannot write the kernel cache in {path.parent} ({e.strerror}): "
                                 f"set {CACHE_ENV} to a writable folder") from None
        if rebuild:
            _purge(name)
        return _import(name, again=rebuild)


def _kernel_module(name: str, again: bool = False):
    """A kernel's module, imported (`_import`) under its lock in the cache. Nothing of it compiles as it runs
    (its passes compile when they first run, each under a lock of its own), so it waits only for the helpers."""
    module = _MODULES.get(name)
    if module is not None and not again:
        return module
    with _IMPORTING, _compiling(name):
        return _import(name, again)


# -- the backward pass compiled in a second process ------------------------------------------------------------
# From an empty cache most of a first start is Numba compiling: the helpers, then the forward pass, then the
# backward one, each on one core (Numba compiles one function at a time per process). On a machine of two cores
# or more, `compile` starts a second Python process that compiles the backward pass into the cache while this
# one compiles the helpers and the forward pass; the first backward call waits for it and loads the machine code
# it wrote. The two processes never compile one function at once: the second holds the backward pass's lock in
# the cache from its start (`Kernel._first` takes each pass's own), and what both passes call is compiled as
# its module is imported, under the module's lock (the helpers).
_ELSEWHERE: dict = {}  # a kernel module's name -> (the process compiling its backward pass, the pipe it signals on)
_ELSEWHERE_LOCK = threading.Lock()
_LEAD = {"input": 2, "seed": 2, "memory": 1, "init": 1, "final": 1, "param": 0}  # an argument's axes before its
# declared shape: (T, B), (B,) or none
_SECOND = "import sys; from gategraph.kernel import _compile_backward; _compile_backward(*sys.argv[1:])"


def _backward_kinds(made: Plan, cell: Cell) -> list:
    """Each argument of the backward pass as Numba types it when a kernel calls it: the number of dimensions of a
    C-contiguous array of the kernel's dtype, or "size" (an int) or "switch" (a bool)."""
    tape, kinds = dict(made.forward_work), []
    for argument in made.backward_args:
        kind, name = made.arguments[argument]
        if kind == "tape":
            kinds.append(len(tape[name]))
        elif kind in ("size", "switch"):
            kinds.append(kind)
        else:
            kinds.append(_LEAD[kind] + len(cell.shape(name)))
    return kinds + [len(dims) for _, dims in made.backward_work]


def _backward_elsewhere(made: Plan, cell: Cell, dtype: str) -> None:
    """Start the second process for `made`'s backward pass (see above), unless one runs already, this process has
    the pass, Numba's cache has it, the machine has one core, or this Python is embedded in a program that is not
    a Python interpreter (`sys.executable` names that program: run with -c, it would start another of it)."""
    name, folder = made.module, cache_dir()
    module = _MODULES.get(name)
    if name in _ELSEWHERE or (module is not None and module.backward.signatures) or blas.cores() < 2:
        return
    if not Path(sys.executable or "none").name.lower().startswith("python"):
        return
    if _in_numba_cache(f"{name}.backward"):
        return
    here = str(Path(__file__).resolve().parents[1])  # the gategraph this process runs, first on the path
    env = {**os.environ, CACHE_ENV: str(folder.resolve()),
           "PYTHONPATH": os.pathsep.join(filter(None, (here, os.environ.get("PYTHONPATH"))))}
    read, write = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", _SECOND, name, dtype, json.dumps(_backward_kinds(made, cell)), str(write)],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=(write,),
            start_new_session=True)  # (its errors and warnings on this one's stderr; no terminal's Ctrl-C reaches it)
    except OSError:  # no second process: this one compiles the pass when it first runs
        os.close(read)
        return
    finally:
        os.close(write)
    _ELSEWHERE[name] = (process, read)


def _in_numba_cache(function: str) -> bool:
    """Numba's cache holds machine code of `function` (<module>.<name>) in the cache folder."""
    return next((cache_dir() / "__pycache__").glob(f"{function}-*.nbi"), None) is not None


def _compile_backward(name: str, dtype: str, kinds: str, signal: str) -> None:
    """The second process: compile the backward pass of the cached module `name` into the cache, its arguments
    as `_backward_kinds` describes them (JSON). Once it holds the pass's lock it writes a byte to the pipe
    `signal`, on which the first process waits before it asks for the lock itself."""
    try:
        with _compiling(f"{name}.backward"):
            os.write(int(signal), b"1")
            os.close(int(signal))
            from gategraph.compiling import cached_loads, compile_for, set_up, type_numpy

            # While the first process compiles the array helpers: Numba's set-up, the math helpers, and what
            # compiling the pass types first. (With the array helpers cached there is no such wait: the pass
            # compiles as soon as the first process has imported its module, and typing ahead would delay it.)
            cached = _in_numba_cache(f"{helpers.name(dtype, 'arrays')}._copy")
            set_up()
            _helpers(dtype, order=("math",))
            if not cached:
                type_numpy(dtype)
            _helpers(dtype)
            module = _kernel_module(name)
            with cached_loads():
                compile_for(module.backward, json.loads(kinds), dtype)
    except Exception as e:
        print(f"gategraph: kernel {name}'s backward pass did not compile beside its forward pass ({e}); it "
              "compiles when it first runs", file=sys.stderr)
        sys.exit(1)


def _await_elsewhere(name: str) -> None:
    """Before this process asks for the lock of module `name`'s backward pass: if a second process compiles it,
    wait until that one holds the lock (or has ended). The wait for the lock itself comes after, and both count
    as Numba's time (gategraph.compiling.numba_seconds)."""
    with _ELSEWHERE_LOCK:
        process, read = _ELSEWHERE.pop(name, (None, None))
        if process is None:
            return
        from gategraph.compiling import elsewhere

        try:
            with elsewhere():
                os.read(read, 1)  # b"1", or b"" if it ended first
        finally:
            os.close(read)


_MODULES: dict = {}  # name -> a module of the cache, once imported whole (a kernel's, or the helpers')
_IMPORTING = threading.RLock()  # held while one is imported: no thread sees a module half run


def _import(name: str, again: bool = False):
    """The module `name` of the cache folder, imported under that name (Numba's cached code finds its globals
    by the module's name) once per process, or `again`. A thread that asks for it while another one imports
    it waits, and gets the whole module."""
    with _IMPORTING:
        module = _MODULES.get(name)
        if module is not None and not again:
            return module
        blas.load()  # before Numba looks for SciPy's BLAS
        from gategraph.compiling import cached_loads  # (Numba: not on `import gategraph.kernel`)

        spec = importlib.util.spec_from_file_location(name, cache_dir() / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it
        try:
            with cached_loads():  # the helpers with signatures load (or compile) as the module runs
                spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            _MODULES.pop(name, None)
            raise
        _MODULES[name] = module
        return module


@dataclass
class Tape:
    """What `Kernel.forward` keeps for `Kernel.backward`: for each shard of the batch, its rows and the
    buffers of every step (in the kernel's workspace, valid until the next forward pass: `generation` tells;
    `Kernel.keep` copies them out, KEPT), and the batch's shape."""

    parts: tuple  # ((rows, buffers), ...), rows a slice of the batch
    T: int
    B: int
    generation: int


KEPT = -1  # the generation of a tape whose buffers are its own (Kernel.keep): never stale


def compile(cell: Cell, input_size: int, hidden_size: int, dtype: str = "float32", **sizes: int) -> Kernel:  # noqa: A001
    """Kernels for `cell` (a Cell, or a built-in cell's name: "lstm") over batches of sequences:
    X = input_size, H = hidden_size, other sizes by name (`S=...`; a size left out is read from the memory
    arrays at each call)."""
    cell = _cell(cell)
    if dtype not in DTYPES:
        raise SpecError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    names = {s.name for s in cell.sizes}
    given = {"X": input_size, "H": hidden_size, **sizes}
    unknown = sorted(set(sizes) - names)
    if unknown:
        raise SpecError(f"cell {cell.name!r} has no size {', '.join(unknown)} (its sizes: {', '.join(sorted(names))})")
    fixed = {}
    for k, v in given.items():
        if k in names and v is not None:
            if not isinstance(v, int | np.integer) or v < 1:
                raise SpecError(f"size {k} must be a positive integer, got {v!r}")
            fixed[k] = int(v)
    _step_blas()
    made = _plan(cell, dtype)
    _backward_elsewhere(made, cell, dtype)
    return Kernel(cell, fixed, dtype, made, _load(made, dtype))


def _cell(cell) -> Cell:
    """The Cell that `compile` was given: a Cell, or a built-in cell by name."""
    from gategraph.cells import CELLS  # (SymPy: not on `import gategraph.kernel`, which the second process runs)
    from gategraph.spec import Cell

    if isinstance(cell, Cell):
        return cell
    if isinstance(cell, str):
        key = cell.replace("-", "_")
        if key in CELLS:
            return CELLS[key]()
        names = ", ".join(sorted(n.replace("_", "-") for n in CELLS))
        raise SpecError(f"unknown cell {cell!r}: choose one of {names}, or pass a Cell (CellBuilder(...).cell())")
    hint = f": call it, compile({cell.__name__}(), ...)" if callable(cell) and hasattr(cell, "__name__") else ""
    raise SpecError(f"compile() takes a Cell or a built-in cell's name ('lstm'), got {type(cell).__name__}{hint}")


_WHAT = {"input": "input {!r}", "memory": "memory {!r}", "init": "initial state {!r}", "param": "parameter {!r}",
         "seed": "d_outputs[{!r}]", "final": "d_final[{!r}]"}  # an argument in the errors, by its kind


def _call(compiled, args: list, what: list):
    """Call a compiled pass. It checks its arrays before it writes anything: FloatingPointError(k) is a NaN or
    inf in the k-th, named by `what[k]`.
    A Ctrl-C whose handler raises while the compiled code is in a callback into Python (Numba unpickling a
    constant) comes out as a SystemError caused by the KeyboardInterrupt: it is the KeyboardInterrupt again, so
    the caller stops as on any Ctrl-C."""
    try:
        return compiled(*args)
    except FloatingPointError as e:
        if not (e.args and isinstance(e.args[0], int)):
            raise
        raise ValueInputError(f"{what[e.args[0]]} holds NaN or inf") from None
    except SystemError as e:
        cause = e
        while cause is not None and not isinstance(cause, KeyboardInterrupt):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise KeyboardInterrupt from e


class Kernel:
    """Forward and backward passes of one cell over batches of time-major sequences (see `compile`)."""

    def __init__(self, cell: Cell, sizes: dict, dtype: str, made: Plan, module):
        self.cell, self.sizes, self.dtype, self.plan = cell, sizes, dtype, made
        self.np_dtype = np.dtype(dtype)
        self._forward, self._backward = module.forward, module.backward
        self._module = module.__name__
        self._trusted = False  # set once both functions ran: Numba's cache for them loaded or compiled
        self._ran: set = set()  # which of them ran
        self._rebuilt = False  # their machine code was thrown away and made afresh once (`_first`)
        self._work: dict = {}  # (pass, shard) -> ((T, B, sizes), buffers reused from call to call)
        self._generation = 0  # forward passes so far: a tape from an earlier one is stale
        self.per_step = [d for d in cell.by_role("input")]
        self.memories = [d for d in cell.by_role("memory")]
        self.states = list(cell.states)
        self.param_names = [p.name for p in cell.params]
        self._shapes: dict = {}  # (name, sizes) -> shape in numbers
        self._threads: dict = {}  # (B, sizes) -> (weights, one BLAS thread, the rows if never split)
        self._forward_args = [made.arguments[a] for a in made.forward_args]  # (kind, name) of each argument
        taped = len(made.tape)  # backward's first arguments are the tape, in its order; then the rest by kind
        if ([made.arguments[a] for a in made.backward_args[:taped]] != [("tape", n) for n in made.tape]
                or made.arguments[made.backward_args[-1]] != ("switch", "input_grads")):
            raise GategraphError(f"the kernel cache's plan for {cell.name!r} is inconsistent: clear it with "
                                 "`gategraph cache --clear`")
        self._backward_args = [made.arguments[a] for a in made.backward_args[taped:]]
        self._label = {arg: _WHAT[arg[0]].format(arg[1]) for arg in made.arguments.values() if arg[0] in _WHAT}
        self._what = {which: [self._label[made.arguments[a]] for a in args if made.arguments[a][0] in _WHAT]
                      for which, args in (("forward", made.forward_args), ("backward", made.backward_args))}
        # (the arrays a pass checks, in its order: FloatingPointError(k) names the k-th)
        work = [name for name, _ in made.forward_work]
        self._taped = [work.index(name) for name in made.tape]  # where each tape buffer is in the workspace
        # the names of what backward returns; the inputs' and initial states' gradients live in the workspace
        self._returns = [name for _, name in made.backward_returns]
        self._copied = [name for kind, name in made.backward_returns if kind in ("input", "state")]
        self._input_grad_names = frozenset(name for kind, name in made.backward_returns if kind == "input")
        self._state_names = frozenset(st.name for st in self.states)
        self._output_names = frozenset(cell.outputs)
        self._layouts: dict = {}  # sizes -> the arguments' names, labels and shapes (`_layout`)
        self._zero_arrays: dict = {}  # shape -> zeros, for what a pass is not given (`_zeros`)
        self._state_buffers = {st.name: made.tape.index(made.state_buffers[st.name]) for st in self.states}
        self._ready: _Ready | None = None  # the usual call's arguments, laid out for one batch shape (`_usual`)

    def __repr__(self):
        sizes = ", ".join(f"{k}={v}" for k, v in sorted(self.sizes.items()))
        return f"<gategraph kernel {self.cell.name} {self.dtype} {sizes}>"

    # -- sizes and shapes ------------------------------------------------------------------------------------
    def _sizes(self, memory: dict) -> dict:
        if not self.memories:
            return self.sizes
        sizes = dict(self.sizes)
        for d in self.memories:
            arr = memory.get(d.name)
            for dim, n in zip(d.shape, getattr(arr, "shape", ())[1:], strict=False):
                if dim.is_Symbol and dim.name not in sizes:
                    if n < 1:
                        raise ShapeError(f"memory {d.name!r} is empty ({dim.name} = 0 rows): give it at least one "
                                         "row to attend to")
                    sizes[dim.name] = int(n)
        missing = sorted(s.name for s in self.cell.sizes if s.name not in sizes)
        if missing:
            raise ValueInputError(f"cell {self.cell.name!r} needs size {', '.join(missing)}: pass it to compile()")
        return sizes

    def shape(self, name: str, sizes: dict | None = None) -> tuple:
        """The shape of a declared name with this kernel's sizes: `W_f` -> (H, H + X) in numbers."""
        sizes = sizes or self.sizes
        key = (name, None if sizes is self.sizes else tuple(sorted(sizes.items())))  # the usual case: no sort
        if key not in self._shapes:
            dims = [d.subs({s: sizes[s.name] for s in self.cell.sizes if s.name in sizes})
                    for d in self.cell.shape(name)]
            if not all(d.is_Integer for d in dims):
                raise ValueInputError(f"the shape of {name!r} needs sizes this kernel was not given: "
                                      f"pass them to compile(), e.g. S=10")
            self._shapes[key] = tuple(int(d) for d in dims)
        return self._shapes[key]

    def _array(self, what: str, value, shape: tuple) -> np.ndarray:
        """`value` as a C-contiguous array of this dtype and `shape`, or a one-line error naming `what`. (A NaN
        or inf in it is refused by the compiled pass itself, before it writes anything: `_call`.)"""
        if _as_is(value, shape, self.np_dtype):  # the usual case
            return value
        if not isinstance(value, np.ndarray):
            raise ValueInputError(f"{what} must be a NumPy array of shape {shape}, got {type(value).__name__}")
        if value.shape != shape:
            raise ShapeError(f"{what} has shape {value.shape}, expected {shape}")
        if value.dtype != self.np_dtype:
            raise ValueInputError(f"{what} has dtype {value.dtype}, the kernel is {self.dtype}: "
                                  f"convert it with .astype(np.{self.dtype})")
        flags = value.flags
        if not flags.writeable:  # the kernels take writable arrays: a frozen one is copied, never thawed
            return np.array(value, order="C")
        return value if flags.c_contiguous else np.ascontiguousarray(value)  # (which makes 0-d arrays 1-d)

    def _workspace(self, which: str, T: int, B: int, sizes: dict, shard: int = 0) -> list:
        """The buffers a pass (of one shard of the batch) writes its steps into, allocated once per batch shape
        and then reused."""
        key = (T, B, None if sizes is self.sizes else tuple(sorted(sizes.items())))
        shape, work = self._work.get((which, shard), (None, None))
        if shape != key:  # one batch shape at a time, the shards past this one's let go when it is the first
            if shard == 0:
                self._work = {k: v for k, v in self._work.items() if k[0] != which or k[1] == 0}
            self._ready = None  # (it may hold the workspace let go)
            subs = self._subs(T, B, sizes)
            spec = self.plan.forward_work if which == "forward" else self.plan.backward_work
            work = [np.empty(tuple(plan.value(d, subs) for d in dims), self.np_dtype) for _, dims in spec]
            self._work[which, shard] = (key, work)
        return work

    def workspace_bytes(self, T: int, B: int, **sizes: int) -> dict:
        """What the passes over a batch of B sequences of T steps allocate, in bytes, without allocating it:
        {"forward": the tape, "backward": the adjoints' buffers}. Sizes the kernel was not given (S) by name."""
        subs = self._subs(T, B, {**self.sizes, **sizes})
        out = {}
        for which, spec in (("forward", self.plan.forward_work), ("backward", self.plan.backward_work)):
            out[which] = self.np_dtype.itemsize * sum(math.prod(plan.value(d, subs) for d in dims) for _, dims in spec)
        return out

    def _subs(self, T: int, B: int, sizes: dict) -> dict:
        """The numbers of the workspace's dimensions (written with the sizes' names in the code)."""
        return {"_T": T, "_B": B, **{self.plan.sizes[k]: v for k, v in sizes.items() if k in self.plan.sizes}}

    def _rows(self, B: int, sizes: dict) -> list:
        """The shards of a batch of B rows (slices, as equal as they come): how many shards a pass splits into
        (gategraph.blas.shards, once both functions ran). Sets the BLAS threads for them: one for a split pass,
        else as gategraph.blas.threads says."""
        key = (B, None if sizes is self.sizes else tuple(sorted(sizes.items())))
        if key not in self._threads:
            weights = sum(math.prod(self.shape(p, sizes)) for p in self.param_names)
            whole = [slice(0, B)] if blas.shards(B, weights, cores=None) == 1 else None  # never split
            self._threads[key] = (weights, blas.threads(B, weights) == 1, whole)
        weights, one, whole = self._threads[key]
        if whole is not None or not self._trusted:  # the first calls compile or load: one at a time
            blas.KERNEL_BLAS.use(one)
            return whole or [slice(0, B)]
        n = blas.shards(B, weights)
        blas.KERNEL_BLAS.use(one or n > 1)
        cut = [B * i // n for i in range(n + 1)]
        return [slice(cut[i], cut[i + 1]) for i in range(n)]

    def _passes(self, which: str, shards: list) -> list:
        """Run a compiled pass for each shard, [(args, rows)], at once on as many threads; their results in order."""
        if len(shards) == 1:
            return [self._first(which, shards[0][0])]
        rest = [_pool(len(shards) - 1).submit(self._first, which, a) for a, _ in shards[1:]]
        try:
            return [self._first(which, shards[0][0]), *(f.result() for f in rest)]
        finally:  # an error or a Ctrl-C here: no shard goes on writing a workspace after the pass has returned
            wait(rest)

    def _first(self, which: str, args: list):
        """Call a compiled pass. If a first call fails (a corrupt entry in Numba's own cache), the module's
        machine code is thrown away and compiled afresh, once. Until both functions ran, a call holds its pass's
        lock (`_compiling`); a backward pass's first waits for the second process compiling it, if any."""
        if self._trusted:
            return _call(getattr(self, f"_{which}"), args, self._what[which])
        from gategraph.compiling import cached_loads

        if which == "backward":
            _await_elsewhere(self._module)
        with _compiling(f"{self._module}.{which}"), cached_loads():
            try:
                out = _call(getattr(self, f"_{which}"), args, self._what[which])
            except (KeyboardInterrupt, GategraphError):  # a Ctrl-C, or an input the pass refused
                raise
            except Exception:
                if self._rebuilt:
                    raise
                module = _load(self.plan, self.dtype, rebuild=True)
                self._forward, self._backward = module.forward, module.backward
                self._rebuilt = True
                out = _call(getattr(self, f"_{which}"), args, self._what[which])
        self._ran.add(which)
        self._trusted = len(self._ran) == 2
        return out

    # -- the passes --------------------------------------------------------------------------------------------
    def init(self, seed: int = 0) -> dict:
        """Parameters drawn uniformly from ±1/sqrt(H), as PyTorch initialises its recurrent layers."""
        rng = np.random.default_rng(seed)
        k = 1 / math.sqrt(self.sizes.get("H", 1))
        return {p: rng.uniform(-k, k, self.shape(p)).astype(self.np_dtype) for p in self.param_names}

    def _inputs(self, params, x, state0, memory):
        memory = memory or {}
        sizes = self._sizes(memory)
        xs = x if isinstance(x, dict) else {self.per_step[0].name: x}
        if len(self.per_step) > 1 and not isinstance(x, dict):
            raise ValueInputError(f"cell {self.cell.name!r} reads {len(self.per_step)} inputs per step: "
                                  f"pass x as a dict of {', '.join(d.name for d in self.per_step)}")
        first = xs.get(self.per_step[0].name)
        if not isinstance(first, np.ndarray) or first.ndim < 2:
            raise ShapeError(f"input {self.per_step[0].name!r} must be an array of shape (T, B, ...), "
                             f"got {getattr(first, 'shape', type(first).__name__)}")
        T, B = first.shape[:2]
        want = len(self.per_step[0].shape) + 2
        if first.ndim != want:
            raise ShapeError(f"input {self.per_step[0].name!r} must have {want} dimensions "
                             f"(T, B, {', '.join(map(str, self.shape(self.per_step[0].name, sizes)))}), "
                             f"got shape {first.shape}")
        if T == 0 or B == 0:
            raise ShapeError(f"input {self.per_step[0].name!r} has shape {first.shape}: T and B must be at least 1")
        layout = self._layout(sizes)
        args = {}  # (kind, name) -> value: what each argument of the kernels is (Lowered.arguments)
        for name, arg, label, shape in layout["input"]:
            args[arg] = self._array(label, xs.get(name), (T, B) + shape)
        for name, arg, label, shape in layout["memory"]:
            args[arg] = self._array(label, memory.get(name), (B,) + shape)
        state0 = state0 or {}
        if state0 and not state0.keys() <= self._state_names:
            self.cell.check_keys("state0", state0, "state")
        for name, arg, label, shape in layout["init"]:
            v = state0.get(name)
            args[arg] = self._zeros((B,) + shape) if v is None else self._array(label, v, (B,) + shape)
        if not isinstance(params, dict):
            raise ValueInputError("params must be a dict of parameter name -> array (see Kernel.init)")
        for name, arg, label, shape in layout["param"]:
            v = params.get(name)
            if v is None:
                raise ValueInputError(f"params lack {', '.join(p for p in self.param_names if p not in params)}")
            args[arg] = self._array(label, v, shape)
        for k, v in sizes.items():
            args["size", k] = v
        return args, T, B, sizes

    def _layout(self, sizes: dict) -> dict:
        """kind -> [(name, argument, label in errors, shape past the batch's axes)] of the arguments that are
        arrays, at these sizes (made once for each)."""
        key = None if sizes is self.sizes else tuple(sorted(sizes.items()))
        if key not in self._layouts:
            names = {"input": [d.name for d in self.per_step], "memory": [d.name for d in self.memories],
                     "init": [st.name for st in self.states], "param": self.param_names,
                     "seed": list(self.cell.outputs), "final": [st.name for st in self.states]}
            self._layouts[key] = {kind: [(n, (kind, n), self._label[kind, n], self.shape(n, sizes)) for n in ns]
                                  for kind, ns in names.items()}
        return self._layouts[key]

    def _zeros(self, shape: tuple) -> np.ndarray:
        """Zeros of this shape for an array a pass is not given, made once: the passes only read their
        arguments (`test_kernel` checks it for every operation), and these are never handed out."""
        zeros = self._zero_arrays.get(shape)
        if zeros is None:
            if len(self._zero_arrays) >= 16 or sum(z.nbytes for z in self._zero_arrays.values()) > 2**26:
                self._zero_arrays.clear()  # batches of many shapes: keep the last few, 64 MiB at most
            zeros = self._zero_arrays[shape] = np.zeros(shape, self.np_dtype)
        return zeros

    def forward(self, params: dict, x, state0: dict | None = None, memory: dict | None = None):
        """Run the cell over every step. Returns (outputs (T, B, ...) — an array, or a dict when the cell
        has several outputs —, final states {name: (B, ...)}, the tape for `backward`)."""
        if not memory:
            usual = self._usual_forward(params, x, state0)
            if usual is not None:
                return usual
        args, T, B, sizes = self._inputs(params, x, state0, memory)
        tape = self._tape(args, T, B, sizes)
        outputs = self._outputs(tape)
        outputs = {k: v.copy() for k, v in outputs.items()} if isinstance(outputs, dict) else outputs.copy()
        return outputs, {k: v.copy() for k, v in self._finals(tape).items()}, tape

    def _tape(self, args: dict, T: int, B: int, sizes: dict) -> Tape:
        rows = self._rows(B, sizes)
        shards, parts = [], []
        for n, r in enumerate(rows):
            a = _shard(args, r) if len(rows) > 1 else args
            work = self._workspace("forward", T, r.stop - r.start, sizes, n)
            shards.append(([a[k] for k in self._forward_args] + work, r))
            parts.append((r, tuple(work[i] for i in self._taped)))
        self._generation += 1  # before the passes: a pass that fails has overwritten the last tape's buffers
        try:
            self._passes("forward", shards)
        except ValueInputError:  # a NaN refused before the pass wrote anything: unsplit, the last tape holds
            if len(rows) == 1:
                self._generation -= 1
            raise
        return Tape(tuple(parts), T, B, self._generation)

    def _buffer(self, tape: Tape, name: str):
        """A tape's buffer of every step, (T or T + 1, B, ...), its shards joined along the batch's axis."""
        i = self.plan.tape.index(name)
        return _join([buffers[i] for _, buffers in tape.parts], 1)

    def _outputs(self, tape: Tape):
        outs = {}
        for o, (buf, shift) in self.plan.output_stores.items():
            arr = self._buffer(tape, buf)
            outs[o] = arr[1:] if shift else arr
        return outs[self.cell.outputs[0]] if len(outs) == 1 else outs

    def _finals(self, tape: Tape) -> dict:
        if len(tape.parts) == 1:
            buffers = tape.parts[0][1]
            return {name: buffers[k][-1] for name, k in self._state_buffers.items()}
        return {name: _join([buffers[k][-1] for _, buffers in tape.parts], 0)
                for name, k in self._state_buffers.items()}

    def keep(self, tape: Tape) -> Tape:
        """The tape with its buffers copied out of the workspace: still valid after later forward passes (a
        decoder's steps, each its own pass, then BPTT through all of them)."""
        if tape.generation not in (self._generation, KEPT):
            raise ValueInputError("the tape is from an earlier forward pass: its buffers were reused since")
        parts = tuple((rows, tuple(b.copy() for b in buffers)) for rows, buffers in tape.parts)
        return Tape(parts, tape.T, tape.B, KEPT)

    def values(self, tape: Tape, name: str) -> np.ndarray:
        """A forward value at every step, (T, B, ...), from a tape: a gate (`f`), a state (`C`)."""
        if tape.generation not in (self._generation, KEPT):
            raise ValueInputError("the tape is from an earlier forward pass: its buffers were reused since")
        buf, shift = self.plan.value_stores.get(name, (None, 0))
        if buf not in self.plan.tape:
            raise ValueInputError(f"cell {self.cell.name!r} keeps no value {name!r} (its names: "
                                  f"{', '.join(eq.name for eq in self.cell.equations)})")
        arr = self._buffer(tape, buf)
        return (arr[1:] if shift else arr).copy()

    def backward(self, params: dict, x, d_outputs, d_final: dict | None = None, state0: dict | None = None,
                 memory: dict | None = None, tape: Tape | None = None, state_grads: bool = False,
                 input_grads: bool = True) -> dict:
        """BPTT. d_outputs: ∂L/∂(outputs) at every step, (T, B, ...) (a dict for several outputs; None: zero).
        d_final: ∂L/∂(final state) by state name. Returns ∂L/∂ every parameter, every input ((T, B, ...)),
        every memory and every initial state (by state name). Pass `tape` from `forward` to skip rerunning it
        (the arrays are checked again all the same: an array can change in place between the two calls).
        With `state_grads`, also "steps": {state: ∂L/∂s_t for t = 0 .. T-1, (T, B, n)}, how the gradient
        reaches each step (the vanishing-gradient plot): all of it, from the loss at t, from the steps after t
        and through every other use at step t (the LSTM's C_t also reaches the loss through h_t).
        With `input_grads=False` the per-step inputs' gradients are left out (x is data no gradient goes back
        into: tokens, a first layer's input): the pass skips the products only they need, and the result has
        no entry for them."""
        if not (memory or state_grads):
            usual = self._usual_backward(params, x, d_outputs, d_final, state0, tape, input_grads)
            if usual is not None:
                return usual
        current = tape is not None and tape.generation in (self._generation, KEPT)  # not overwritten since
        args, T, B, sizes = self._inputs(params, x, state0, memory)
        if tape is not None and (tape.T, tape.B) != (T, B):
            raise ShapeError(f"the tape is of a batch of shape (T, B) = ({tape.T}, {tape.B}), x of ({T}, {B})")
        if not current:
            tape = self._tape(args, T, B, sizes)
        outputs = self.cell.outputs
        if d_outputs is None:
            d_outputs = {}
        elif not isinstance(d_outputs, dict):
            if len(outputs) > 1:
                raise ValueInputError(f"cell {self.cell.name!r} has outputs {', '.join(outputs)}: pass d_outputs "
                                      "as a dict")
            d_outputs = {outputs[0]: d_outputs}
        if d_outputs:
            self.cell.check_keys("d_outputs", d_outputs, "output")
        layout = self._layout(sizes)
        for name, arg, label, shape in layout["seed"]:
            v = d_outputs.get(name)
            args[arg] = self._zeros((T, B) + shape) if v is None else self._array(label, v, (T, B) + shape)
        d_final = d_final or {}
        if d_final and not d_final.keys() <= self._state_names:
            self.cell.check_keys("d_final", d_final, "state")
        for name, arg, label, shape in layout["final"]:
            v = d_final.get(name)
            args[arg] = self._zeros((B,) + shape) if v is None else self._array(label, v, (B,) + shape)
        args["switch", "input_grads"] = bool(input_grads)
        rows = self._rows(B, sizes)
        if [r for r, _ in tape.parts] != rows:  # split otherwise than this pass will be (a serial() block)
            tape = self._tape(args, T, B, sizes)
        shards, works = [], []
        for n, (r, buffers) in enumerate(tape.parts):
            a = _shard(args, r) if len(rows) > 1 else args
            works.append(self._workspace("backward", T, r.stop - r.start, sizes, n))
            shards.append(([*buffers] + [a[k] for k in self._backward_args] + works[-1], r))
        grads = self._passes("backward", shards)
        if len(grads) == 1:
            out = self._returned(grads[0], input_grads)
        else:
            out = {}
            for (kind, name), parts in zip(self.plan.backward_returns, zip(*grads, strict=True), strict=True):
                if kind == "input" and not input_grads:
                    continue
                if kind == "param":  # every shard's share of the sum over the batch
                    out[name] = np.add.reduce(parts)
                else:  # the inputs' (T, B, ...), the memories' and initial states' (B, ...): rows side by side
                    out[name] = np.concatenate(parts, axis=1 if kind == "input" else 0)
        if state_grads:  # the state's adjoint s̄_t, which the backward pass keeps at every step
            names = [n for n, _ in self.plan.backward_work]
            subs = self._subs(T, B, sizes)
            out["steps"] = {}
            for st in self.states:
                n = self.shape(st.name, sizes)[0]
                if st.name not in self.plan.state_adjoints:  # nothing reaches s_t
                    out["steps"][st.name] = np.zeros((T, B, n), self.np_dtype)
                    continue
                buf, col, _ = self.plan.state_adjoints[st.name]
                c = plan.value(col, subs)
                out["steps"][st.name] = _join([w[names.index(buf)][:, :, c:c + n] for w in works], 1, copy=True)
        return out

    # -- the usual call, laid out once -------------------------------------------------------------------------
    # A model calls a kernel with the same kinds of arguments again and again: x an array, params a dict, a
    # batch the pass does not split. For such a call the argument lists are laid out once per batch shape and
    # each array is only looked at (type, shape, dtype, layout: what `_array` checks first); anything else, or
    # any array that is not ready as it is, takes the full path above, which converts it or says what is wrong.
    def _usual(self, T: int, B: int) -> _Ready | None:
        """The laid-out arguments of an unsplit pass over a batch of shape (T, B) once both functions ran, or
        None (the full path then runs)."""
        if not (self._trusted and T and B) or self.memories or len(self.per_step) != 1:
            return None
        if len(self._rows(B, self.sizes)) != 1:
            return None
        ready = self._ready
        return ready if ready is not None and (ready.T, ready.B) == (T, B) else _Ready(self, T, B)

    def _usual_forward(self, params, x, state0):
        """`forward` for the usual call, or None."""
        if type(x) is not np.ndarray or x.ndim < 2 or type(params) is not dict:
            return None
        if state0 and not (type(state0) is dict and state0.keys() <= self._state_names):
            return None
        ready = self._usual(x.shape[0], x.shape[1])
        if ready is None:
            return None
        args = ready.forward.copy()
        if not _fill(args, ready.forward_slots, x, params, state0, self.np_dtype):
            return None
        work, parts, outputs, finals = ready.in_forward()  # (the workspace only now: every array is as it goes)
        self._ready = ready
        self._generation += 1  # as in `_tape`
        try:
            _call(self._forward, args + work, self._what["forward"])
        except ValueInputError:  # refused before the pass wrote anything: the last tape holds
            self._generation -= 1
            raise
        outputs = outputs[0].copy() if type(outputs) is tuple else {k: v.copy() for k, v in outputs.items()}
        return outputs, {k: v.copy() for k, v in finals.items()}, Tape(parts, ready.T, ready.B, self._generation)

    def _usual_backward(self, params, x, d_outputs, d_final, state0, tape, input_grads):
        """`backward` with a current tape of an unsplit pass, for the usual call, or None."""
        if tape is None or tape.generation not in (self._generation, KEPT) or len(tape.parts) != 1:
            return None
        if type(x) is not np.ndarray or type(params) is not dict:
            return None
        if type(d_outputs) is np.ndarray and len(self.cell.outputs) == 1:
            d_outputs = {self.cell.outputs[0]: d_outputs}
        elif d_outputs is not None and not (type(d_outputs) is dict and d_outputs.keys() <= self._output_names):
            return None
        for given in (d_final, state0):
            if given and not (type(given) is dict and given.keys() <= self._state_names):
                return None
        ready = self._usual(tape.T, tape.B)
        if ready is None or not ready.state0_ready(state0):
            return None
        arguments, slots = ready.backward_layout()
        args = [*tape.parts[0][1], *arguments]
        if not _fill(args, slots, x, params, d_final, self.np_dtype, d_outputs):
            return None
        args[-1] = bool(input_grads)  # the switch, backward's last argument before its workspace
        args += ready.backward_work()
        self._ready = ready
        grads = _call(self._backward, args, self._what["backward"])
        return self._returned(grads, input_grads)

    def _returned(self, grads: tuple, input_grads: bool) -> dict:
        """An unsplit backward pass's gradients by name, those that live in its workspace copied out; the
        per-step inputs' only if they were made."""
        out = dict(zip(self._returns, grads, strict=True))
        for name in self._copied:
            if name in self._input_grad_names and not input_grads:
                del out[name]
            else:
                out[name] = out[name].copy()
        return out


class _Ready:
    """The arguments of a kernel's two compiled passes over a batch of shape (T, B), laid out once: sizes, and
    zeros for what a call may leave out, in place; `*_slots` say where each array a call gives goes:
    (position, where it comes from, its name, its shape). The workspace comes last, fetched at each call
    (`Kernel._workspace` makes it afresh when another batch shape came in between)."""

    X, PARAMS, STATES, SEEDS = range(4)  # where an array comes from: x, params, state0 or d_final, d_outputs
    FROM = {"input": X, "param": PARAMS, "init": STATES, "final": STATES, "seed": SEEDS}

    def __init__(self, kernel: Kernel, T: int, B: int):
        self.kernel, self.T, self.B = kernel, T, B
        self.forward, self.forward_slots = self._lay(kernel._forward_args, 0)
        self.state0_shapes = {name: (B, *shape) for name, _, _, shape in kernel._layout(kernel.sizes)["init"]}
        self._forward_work = (None,)  # (workspace, tape parts, output views, final-state views)
        self._backward = None  # (arguments, slots), laid out at the first backward pass

    def _lay(self, arguments: list, offset: int) -> tuple[list, list]:
        """The argument list with what every call shares in place, and the slots of what it gives."""
        kernel, axes = self.kernel, (self.T, self.B)
        values, slots = [], []
        for position, (kind, name) in enumerate(arguments, offset):
            if kind in ("size", "switch"):
                values.append(kernel.sizes[name] if kind == "size" else True)
                continue
            shape = axes[len(axes) - _LEAD[kind]:] + kernel.shape(name)  # (T, B), (B,) or () first
            values.append(kernel._zeros(shape) if kind in ("init", "final", "seed") else None)
            slots.append((position, self.FROM[kind], name, shape))
        return values, slots

    def in_forward(self) -> tuple:
        """(the forward pass's workspace, the tape's parts in it, views of the outputs — (one,) or by name — and of
        the final states in it)."""
        kernel = self.kernel
        work = kernel._workspace("forward", self.T, self.B, kernel.sizes)
        if self._forward_work[0] is not work:
            parts = ((slice(0, self.B), tuple(work[i] for i in kernel._taped)),)
            buffers = parts[0][1]
            outputs = {o: buffers[kernel.plan.tape.index(buf)][1 if shift else 0:]
                       for o, (buf, shift) in kernel.plan.output_stores.items()}
            outputs = (outputs[kernel.cell.outputs[0]],) if len(outputs) == 1 else outputs
            finals = {name: buffers[k][-1] for name, k in kernel._state_buffers.items()}
            self._forward_work = (work, parts, outputs, finals)
        return self._forward_work

    def backward_layout(self) -> tuple[list, list]:
        """The backward pass's arguments past the tape (a copy) and their slots."""
        if self._backward is None:
            self._backward = self._lay(self.kernel._backward_args, len(self.kernel._taped))
        return self._backward[0].copy(), self._backward[1]

    def backward_work(self) -> list:
        """The backward pass's workspace."""
        return self.kernel._workspace("backward", self.T, self.B, self.kernel.sizes)

    def state0_ready(self, state0) -> bool:
        """The initial states a backward pass is given (it reads them from the tape) are as forward takes them."""
        dtype, shapes = self.kernel.np_dtype, self.state0_shapes
        return not state0 or all(v is None or _as_is(v, shapes[k], dtype) for k, v in state0.items())


def _as_is(v, shape: tuple, dtype) -> bool:
    """`v` is an array a pass takes as it is: of this shape and dtype, C-contiguous and writable."""
    if type(v) is not np.ndarray or v.shape != shape or (v.dtype is not dtype and v.dtype != dtype):
        return False
    flags = v.flags
    return flags.c_contiguous and flags.writeable


def _fill(args: list, slots: list, x, params: dict, states: dict | None, dtype, seeds: dict | None = None) -> bool:
    """Put each given array in its slot of `args`; False if one is missing or not as a pass takes it (`_as_is`,
    written out here: this runs for every array of every call). A state or seed not given (by name) keeps the
    zeros laid out for it."""
    ndarray = np.ndarray
    for position, source, name, shape in slots:
        if source == _Ready.X:
            v = x
        elif source == _Ready.PARAMS:
            v = params.get(name)
        else:
            given = seeds if source == _Ready.SEEDS else states
            v = given.get(name) if given else None
            if v is None:
                continue
        if type(v) is not ndarray or v.shape != shape or (v.dtype is not dtype and v.dtype != dtype):
            return False
        flags = v.flags
        if not (flags.c_contiguous and flags.writeable):
            return False
        args[position] = v
    return True


def _shard(args: dict, rows: slice) -> dict:
    """The arguments of a pass over some rows of the batch: per-step arrays (T, B, ...) and per-sequence ones
    (B, ...) cut to those rows, parameters and sizes as they are."""
    out = {}
    for (kind, name), v in args.items():
        if kind in ("input", "seed"):
            v = np.ascontiguousarray(v[:, rows])
        elif kind in ("memory", "init", "final"):
            v = v[rows]
        out[kind, name] = v
    return out


def _join(parts: list, axis: int, copy: bool = False) -> np.ndarray:
    """The shards' arrays side by side along the batch's axis (one shard: its array, copied if asked)."""
    if len(parts) == 1:
        return parts[0].copy() if copy else parts[0]
    return np.concatenate(parts, axis=axis)


_POOL: list = []  # [(threads, executor)]: one pool for every kernel of the process
_POOL_LOCK = threading.Lock()


def _pool(n: int) -> ThreadPoolExecutor:
    """At least n threads for the shards of a pass past the first (the calling thread runs that one)."""
    with _POOL_LOCK:
        if not _POOL or _POOL[0][0] < n:
            if _POOL:
                _POOL.pop()[1].shutdown(wait=False)
            _POOL.append((n, ThreadPoolExecutor(n, thread_name_prefix="gategraph-shard")))
        return _POOL[0][1]


if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads and processes: its own pool
    os.register_at_fork(after_in_child=_POOL.clear)
    os.register_at_fork(after_in_child=_ELSEWHERE.clear)  # (the pass's lock in the cache still makes it wait)

