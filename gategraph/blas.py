"""The BLAS that the compiled kernels call: SciPy's, loaded for Numba without the rest of SciPy, and gategraph's
own for a step's products; and the number of threads their products get.

Loading: Numba's `np.dot` calls SciPy's BLAS through the function pointers of `scipy.linalg.cython_blas`,
and Numba imports that module when it first sets up its compiler or loads compiled code. Importing it runs
the package `scipy.linalg` first, the whole of SciPy's linear algebra, several times longer than the one
extension module Numba needs. `load()` loads that module alone, under its own name, so Numba's import
finds it ready; where SciPy is laid out otherwise it does nothing and the plain import does the work.

Threads: a second BLAS thread pays for a large product and costs a small one many times its work, more so
when that thread has to wait for a busy core (the LSTM's pass at B = 32, H = 64 took 30 times longer on two
threads than on one). One rule, `threads(batch, weights)`, decides for the kernels and for training alike:
one thread while a step's products, batch × weights multiply-adds, stay below 2^24 (the LSTM with H = 256 at
B = 32 is below, with H = 512 above), else the caller's count (all cores, unless the caller limited it).

`KERNEL_BLAS.use(one)` applies it before a pass. It changes only the BLAS the kernels call (the one SciPy's
cython_blas, and through it Numba, is linked against; NumPy's own BLAS, if it is another, is left alone),
only when the count has to change, and through OpenBLAS's own functions: a pass costs one call that reads
the count (about a microsecond), not a scan of the process (threadpoolctl's, half a millisecond) nor a
change and a change back (OpenBLAS takes tens of microseconds to raise its count). A count the caller set
since is the caller's, and a large pass runs on it (one thread set by the caller right after a small pass
looks like the pass's own, and the next large pass gives back the count from before). After a small pass
that BLAS stays on one thread, for SciPy's own linear algebra too, until a large pass or `restore()` gives
the count back. A BLAS other than OpenBLAS is left at its own count: threadpoolctl cannot tell reliably
which of the loaded libraries SciPy's is, and setting NumPy's instead would be worse than setting none.

Priming: until this OpenBLAS (SciPy's, 0.3.30, Haswell kernel, on an AMD EPYC) had run one float32 product
of at least 512 × 512 × 512 (256³ was not enough), its single-threaded sgemm ran the kernels' products at
B = 32, H = 64 about 1.3 times slower (2.7 times for a weight gradient's long uᵀ v over all steps); after one,
at full speed for the rest of the process, in every thread, whatever ran before it. Nothing measurable at
B = 1 or at the larger configurations; dgemm ran alike either way. The cause was not found.
`KERNEL_BLAS` makes that one product (zeros, on one thread, about 6 ms) when it first finds the library,
before any pass (benchmarks/results/priming.md).

Steps: a step's product of fewer than 2^24 multiply-adds (`_product` of gategraph.helpers, 100 to 10 000 small
GEMMs a pass), and every product of a pass while SciPy's BLAS runs on one thread (the passes of a small batch,
and all of them on one core: `_product` and `_dot` read its count), calls cblas_sgemm or cblas_dgemm of the
step BLAS, by the symbols `register()` gives LLVM (Numba caches the code that calls them; each process gives the
symbols again before it loads). The step BLAS is MKL (the package mkl, gategraph's extra `fast`, sequential: no
threads of its own) on an Intel processor where it is installed, else gategraph's own OpenBLAS, the package
scipy-openblas32; `GATEGRAPH_BLAS=openblas` or `=mkl` chooses. Both compute the same products to rounding
(tests/test_blas.py); the choice changes the last bits of a training's numbers, not its results.
On an Intel Xeon with AVX-512, one thread, MKL 2026.2 multiplied (32 × 512) · (512 × 2048) in 0.58 ms where that
OpenBLAS took 0.92-0.99 ms, (64 × 128) · (128 × 512) in 68 µs where it took 95 µs, and most of the weights'
gradients and the input's products faster too (0.9 to 1.75 times OpenBLAS's speed, by shape); it packs none of
the small products' operands (its "nocopy" kernels), where OpenBLAS packs the recurrent weights again at every
step (benchmarks/results/kernels-*.md).
OpenBLAS is the one tuned for other processors. SciPy's wheels bundle an older OpenBLAS (0.3.30 with SciPy
1.17): on the same Xeon, one thread, 0.3.31 and 0.3.34 ran (32 × 256) · (256 × 1024) at 93-100 GFLOP/s where it
ran at 70-76, and (64 × 512) · (512 × 128) at 115-120 where it ran at 102-107. The step BLAS runs on one thread
always (`use` sets it back if a caller's limit changed it): a product that small is one thread's (see
"Threads"), and a second pool of spinning BLAS threads beside SciPy's halved the largest passes on two cores.
The larger step products and the products over all steps of a pass on several threads go through Numba's
`np.dot`, SciPy's BLAS.

Shards: with more than one core, a pass too small for a second BLAS thread but large enough to pay for a
thread's hand-off splits its batch into shards of rows that run at once, one per core, each on one BLAS
thread (`shards(batch, weights)`). The rows of a batch never meet until the
parameters' gradients are added up at the end, so the cores need not wait for each other at every step as
two BLAS threads sharing one product do; a busy core delays only its own shard. The cores are the ones the
process may run on, or `OMP_NUM_THREADS` where that is set (Dask's workers set it to 1); inside
`with serial():` a pass is never split (training, so that its numbers do not depend on the machine).

Imports: scipy (its package folder only), scipy_openblas32 (its library's path), MKL's library by its path,
llvmlite (`register`).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import importlib
import importlib.util
import os
import sys
import threading
from pathlib import Path

CYTHON_BLAS = "scipy.linalg.cython_blas"
STEP_PACKAGE = "scipy_openblas32"  # the OpenBLAS a step's product calls where MKL does not (see "Steps")
STEP_CHOICE = "GATEGRAPH_BLAS"  # mkl or openblas: the step BLAS to use (unset: MKL on an Intel processor)
MKL_LP64, MKL_SEQUENTIAL = 0, 1  # MKL's constants: 32-bit integers, no threads of its own
SHARED = (".so", ".dylib", ".dll")  # how a shared library's file name ends
ONE_THREAD_BELOW = 2**24  # multiply-adds per step below which a product runs on one thread
SHARD_ROWS = 8  # the fewest rows of a batch worth a core of their own
SHARD_BELOW = 2**18  # multiply-adds per step below which handing rows to another core costs more than it saves
PRIME = 512  # the side of the float32 product that primes OpenBLAS's sgemm (see "Priming" above)
_SERIAL = contextvars.ContextVar("gategraph_serial", default=False)
_LOADING = threading.Lock()  # load() puts a module in sys.modules before it has run: one thread at a time
_FINDING = threading.Lock()  # KERNEL_BLAS finds and primes the library once; other threads wait for it


def load() -> None:
    """Make `import scipy.linalg.cython_blas` cheap: the extension module loaded alone (see the module's
    docstring). Idempotent; anything unexpected leaves it to the ordinary import."""
    with _LOADING:
        _load()


def _load() -> None:
    if CYTHON_BLAS in sys.modules:
        return
    if "scipy.linalg" in sys.modules:  # loaded already: the ordinary import costs nothing more
        importlib.import_module(CYTHON_BLAS)
        return
    scipy = importlib.util.find_spec("scipy")
    if scipy is None or not scipy.submodule_search_locations:
        return
    for folder in scipy.submodule_search_locations:
        for path in sorted((Path(folder) / "linalg").glob("cython_blas.*.so")):
            spec = importlib.util.spec_from_file_location(CYTHON_BLAS, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[CYTHON_BLAS] = module
            try:
                spec.loader.exec_module(module)
            except Exception:  # not loadable alone: the ordinary import (all of scipy.linalg) will do it
                del sys.modules[CYTHON_BLAS]
                return
            if hasattr(module, "__pyx_capi__"):  # the function pointers Numba reads
                return
            del sys.modules[CYTHON_BLAS]


@dataclasses.dataclass(frozen=True, eq=False)  # (hashed as itself: one per library)
class StepBlas:
    """The BLAS a pass's one-thread products call (see "Steps"): its name, its library (ctypes), the addresses of
    its cblas_sgemm and cblas_dgemm, and its own functions that read and set its thread count."""

    name: str
    library: object
    gemm: dict
    get: object
    set: object


def step_blas() -> StepBlas | None:
    """The step BLAS: MKL where `GATEGRAPH_BLAS` asks for it, or leaves the choice (unset) and MKL is installed
    on an Intel processor; else the OpenBLAS of scipy-openblas32; None where neither is. A `GATEGRAPH_BLAS`
    other than mkl or openblas, or mkl asked for and missing, is a ValueError (gategraph.kernel says it as a
    UsageError)."""
    wanted = os.environ.get(STEP_CHOICE, "").strip().lower()
    if wanted not in ("", "mkl", "openblas"):
        raise ValueError(f"{STEP_CHOICE}={wanted!r}: say mkl or openblas, or leave it unset")
    return _step_blas(wanted)


@functools.cache
def _step_blas(wanted: str) -> StepBlas | None:
    if wanted == "mkl" or (not wanted and _intel()):
        mkl = _mkl()
        if mkl is not None or wanted:
            if mkl is None:
                raise ValueError(f"{STEP_CHOICE}=mkl, but MKL is not installed (or in use by another library "
                                      "on its own threads): pip install mkl")
            return mkl
    return _openblas()


def _intel() -> bool:
    """Whether this is an Intel processor (MKL's own; on others OpenBLAS's kernels are the ones tuned for it)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            return any(line.startswith("vendor_id") and "GenuineIntel" in line for line in info)
    except OSError:
        return False


def _mkl() -> StepBlas | None:
    """MKL's single dynamic library, as the package mkl installs it (`sys.prefix`/lib), set to run sequentially
    (no thread pool of its own) with 32-bit integers; None if it is not there or was set otherwise already."""
    import ctypes

    for path in sorted(Path(sys.prefix, "lib").glob("libmkl_rt.so*")):
        try:
            dll = ctypes.CDLL(str(path))
        except OSError:
            continue
        if (dll.MKL_Set_Interface_Layer(MKL_LP64) != MKL_LP64
                or dll.MKL_Set_Threading_Layer(MKL_SEQUENTIAL) != MKL_SEQUENTIAL):
            return None  # another library started MKL its own way: its threads are not ours to set
        version = ctypes.create_string_buffer(256)
        dll.mkl_get_version_string(version, len(version))
        return StepBlas(version.value.decode(errors="replace").strip(), dll, _addresses(dll, "cblas_"),
                        dll.MKL_Get_Max_Threads, dll.MKL_Set_Num_Threads)
    return None


def _openblas() -> StepBlas | None:
    """The OpenBLAS of the package scipy-openblas32, or None where it is not installed."""
    import ctypes

    try:
        package = importlib.import_module(STEP_PACKAGE)
        name = f"lib{package.get_library()}"
        path = next(p for p in Path(package.get_lib_dir()).iterdir() if p.stem == name and p.suffix in SHARED)
        dll = ctypes.CDLL(str(path))
    except (ImportError, OSError, AttributeError, StopIteration):
        return None
    dll.scipy_openblas_get_config.restype = ctypes.c_char_p
    return StepBlas(dll.scipy_openblas_get_config().decode(errors="replace"), dll, _addresses(dll, "scipy_cblas_"),
                    dll.scipy_openblas_get_num_threads, dll.scipy_openblas_set_num_threads)


def _addresses(dll, prefix: str) -> dict:
    """{dtype: the address of the library's cblas_sgemm or cblas_dgemm}, their names starting with `prefix`."""
    import ctypes

    return {dtype: ctypes.cast(getattr(dll, f"{prefix}{letter}gemm"), ctypes.c_void_p).value
            for dtype, letter in (("float32", "s"), ("float64", "d"))}


def register(symbols: dict) -> bool:
    """Tell LLVM where `symbols` are, before a module that calls them is compiled or loaded: {"float32": a name
    for cblas_sgemm, "float64": one for cblas_dgemm} of `step_blas()`, and {"threads": a name for the function
    that reads the thread count of the BLAS NumPy's products in the kernels run on} (SciPy's OpenBLAS's, or where
    that cannot be found the step BLAS's own, which reads 1: every product on the step BLAS). False where no step
    BLAS is installed. Idempotent."""
    step = step_blas()  # (outside the cache: a GATEGRAPH_BLAS it cannot take is an error every time)
    return step is not None and _registered(step, tuple(sorted(symbols.items())))


@functools.cache
def _registered(step: StepBlas, symbols: tuple) -> bool:
    import ctypes

    import llvmlite.binding as llvm

    KERNEL_BLAS._ready()
    for what, symbol in symbols:
        address = step.gemm.get(what)
        if what == "threads":
            address = ctypes.cast(KERNEL_BLAS.get or step.get, ctypes.c_void_p).value
        llvm.add_symbol(symbol, address)
    return True


def threads(batch: int, weights: int) -> int | None:
    """The BLAS threads for products of `batch` rows with `weights` parameter entries per step: 1 when
    batch · weights < 2^24 multiply-adds, else None (the BLAS's own count)."""
    return 1 if batch * weights < ONE_THREAD_BELOW else None


def cores() -> int:
    """The cores a pass may use: `OMP_NUM_THREADS` if set to a number, else the cores this process may run on."""
    with contextlib.suppress(KeyError, ValueError):
        return max(int(os.environ["OMP_NUM_THREADS"]), 1)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def shards(batch: int, weights: int, cores: int | None = 0) -> int:
    """How many shards of rows a pass over `batch` rows with `weights` parameter entries splits into: one per
    core, each of at least 8 rows, when 2^18 ≤ batch · weights < 2^24 multiply-adds per step and no
    `serial()` block is open; else 1 (above 2^24 the BLAS's own threads share each product: shards of fewer
    rows would each repack the large weights at every step). `cores`: this many instead of `cores()`; None:
    as many as it takes (the most a pass of that size could ever split into)."""
    if not SHARD_BELOW <= batch * weights < ONE_THREAD_BELOW or (cores is not None and _SERIAL.get()):
        return 1
    n = batch // SHARD_ROWS if cores is None else cores or globals()["cores"]()
    return max(min(n, batch // SHARD_ROWS), 1)


@contextlib.contextmanager
def serial():
    """Within the block (in this thread), the kernels' passes never split their batch."""
    token = _SERIAL.set(True)
    try:
        yield
    finally:
        _SERIAL.reset(token)


class _KernelBlas:
    """The thread count of the BLAS the kernels call (see the module's docstring)."""

    def __init__(self):
        self.found = False
        self.get = self.set = None  # OpenBLAS's own openblas_get/set_num_threads
        self.ours = None  # the count this object set last
        self.callers = None  # the count before it did
        self.primed = False  # whether its sgemm ran the priming product (see "Priming")
        self.step = None  # the step BLAS's (get, set) of its thread count (see "Steps")

    def _ready(self):
        """Find the library, once: a thread that comes while another finds it waits until it is found and
        primed (a pass must not read the priming's one thread as its caller's count)."""
        if not self.found:
            with _FINDING:
                if not self.found:
                    self._find()
                    self.found = True

    def _find(self):
        """The kernels' BLAS: the one cython_blas is linked against, whose OpenBLAS functions a lookup through
        cython_blas's own handle finds. Anything else (no SciPy, another BLAS): no thread control."""
        import ctypes

        with contextlib.suppress(ValueError):  # (a GATEGRAPH_BLAS it cannot take: register() says so)
            step = step_blas()
            self.step = (step.get, step.set) if step is not None else None
        if self.step is not None:
            self.step[1].argtypes = [ctypes.c_int]
        try:
            load()
            dll = ctypes.CDLL(importlib.import_module(CYTHON_BLAS).__file__)
        except (ImportError, OSError):
            return
        for prefix in ("", "scipy_"):
            get = getattr(dll, f"{prefix}openblas_get_num_threads", None)
            if get is not None:
                self.get, self.set = get, getattr(dll, f"{prefix}openblas_set_num_threads")
                self.set.argtypes = [ctypes.c_int]
                config = getattr(dll, f"{prefix}openblas_get_config", None)
                if config is not None:
                    config.restype = ctypes.c_char_p
                    if b"USE64BITINT" in config():  # its integers are 64-bit: _prime passes 32-bit ones
                        return
                n = self.get()
                self.set(1)  # on one thread: the product primes it alike, and no thread pool wakes for it
                try:
                    self.primed = _prime(getattr(dll, f"{prefix}cblas_sgemm", None))
                finally:
                    self.set(n)
                return

    def threads(self) -> int | None:
        """The kernels' BLAS's thread count now (None: no BLAS found that can be told its threads)."""
        self._ready()
        return self.get() if self.get else None

    def use(self, one: bool) -> None:
        """One thread for the next pass, or the caller's count."""
        self._ready()
        if self.get is not None:
            n = self.get()
            if one and n != 1:
                self.callers, self.ours = n, 1
                self.set(1)
            elif not one and n == self.ours == 1:  # on one thread because of us: give it back
                self.restore()
        self._one_step_thread()

    def restore(self) -> None:
        """Give back the count from before the last small pass, if the BLAS is still on the one thread it set."""
        if self.get is not None and self.ours == 1 and self.get() == 1:
            self.ours = None
            self.set(self.callers)

    def _one_step_thread(self) -> None:
        """The step BLAS (see "Steps") on one thread, whatever a caller's limit set it to."""
        if self.step is not None and self.step[0]() != 1:
            self.step[1](1)


def _prime(sgemm) -> bool:
    """C = A A for a PRIME × PRIME float32 matrix A of zeros, through OpenBLAS's `cblas_sgemm` (see "Priming"),
    into a C filled with NaN: whether the product ran (C's first and last entries are 0)."""
    import ctypes

    if sgemm is None:
        return False
    row_major, no_trans, n = 101, 111, PRIME * PRIME  # CBLAS's constants
    a, c = (ctypes.c_float * n)(), (ctypes.c_float * n)()
    ctypes.memset(c, 0xFF, ctypes.sizeof(c))  # NaN: a product that ran leaves zeros
    i, f, p = ctypes.c_int, ctypes.c_float, ctypes.POINTER(ctypes.c_float)
    sgemm.argtypes, sgemm.restype = [i, i, i, i, i, i, f, p, i, p, i, f, p, i], None
    sgemm(row_major, no_trans, no_trans, PRIME, PRIME, PRIME, 1.0, a, PRIME, a, PRIME, 0.0, c, PRIME)
    return c[0] == 0.0 and c[n - 1] == 0.0


KERNEL_BLAS = _KernelBlas()
