"""The BLAS that the compiled kernels call: loaded for Numba without the rest of SciPy, and the number of
threads its products get.

Loading: Numba's `np.dot` calls SciPy's BLAS through the function pointers of `scipy.linalg.cython_blas`,
and Numba imports that module when it first sets up its compiler or loads compiled code. Importing it runs
the package `scipy.linalg` first, the whole of SciPy's linear algebra, several times longer than the one
extension module Numba needs. `load()` loads that module alone, under its own name, so Numba's import
finds it ready; where SciPy is laid out otherwise it does nothing and the plain import does the work.

Threads: a second BLAS thread pays for a large product and costs a small one many times its work, more so
when that thread has to wait for a busy core (the LSTM's pass at B = 32, H = 64 took 30 times longer on two
threads than on one). One rule, `threads(batch, weights)`, decides for the kernels and for training alike:
one thread while a step's products, batch × weights multiply-adds, stay below 2^24 (the LSTM with H = 256 at
B = 32 is below, with H = 512 above), else the BLAS's own count (all cores, unless the caller limited it).
`one_thread()` holds the BLAS to one thread for a block and gives the caller's count back after it; it talks
to the libraries through their own `set_num_threads` (a few microseconds), not a scan of the process.

Imports: scipy (its package folder only), threadpoolctl (when threads are first set).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from pathlib import Path

CYTHON_BLAS = "scipy.linalg.cython_blas"
ONE_THREAD_BELOW = 2**24  # multiply-adds per step below which a product runs on one thread


def load() -> None:
    """Make `import scipy.linalg.cython_blas` cheap: the extension module loaded alone (see the module's
    docstring). Idempotent; anything unexpected leaves it to the ordinary import."""
    if CYTHON_BLAS in sys.modules:
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


def threads(batch: int, weights: int) -> int | None:
    """The BLAS threads for products of `batch` rows with `weights` parameter entries per step: 1 when
    batch · weights < 2^24 multiply-adds, else None (the BLAS's own count)."""
    return 1 if batch * weights < ONE_THREAD_BELOW else None


_libraries: list | None = None  # the BLAS libraries loaded, as threadpoolctl's controllers, found once


def _blas() -> list:
    global _libraries
    if _libraries is None:
        from threadpoolctl import ThreadpoolController

        load()
        importlib.import_module(CYTHON_BLAS)  # the kernels' BLAS is among those found

        _libraries = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    return _libraries


@contextlib.contextmanager
def one_thread():
    """Every loaded BLAS on one thread inside the block; each one's count as before after it."""
    libraries = _blas()
    before = [lib.get_num_threads() for lib in libraries]
    for lib, n in zip(libraries, before, strict=True):
        if n != 1:
            lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(libraries, before, strict=True):
            if n != 1:
                lib.set_num_threads(n)
