"""The time Numba spends making machine code, so that a run's training time can leave it out; and loading
machine code from Numba's cache without setting up its whole compiler.

Numba announces each stretch in which it holds its compiler lock, compiling a function or loading one from
its cache (numba.core.event, kind "numba:compiler_lock"); `numba_seconds()` adds up those of the thread that
runs the block (several runs in the threads of one process do not count each other's; a nested hold counts
once; a wait for the lock while another thread compiles counts, as it is not training either).

`cached_loads()`: Numba refreshes its target context before it loads a function from its cache, importing
every NumPy implementation it has and registering their types (a third of a warm start), while the machine
code needs only Numba's runtime. Within the block a cached load starts just the runtime; a function that has
to be compiled still gets the whole set-up, since Numba's compiler refreshes the context itself.

For the second process that compiles a kernel's backward pass (gategraph.kernel): `signature` and `compile_for`,
a function compiled for argument types described in plain Python (an array's dimensions, a size, a switch);
`set_up` and `type_numpy`, what a first compile does before the function's own code, done ahead while that process
waits; `elsewhere()`, the first process's wait for it, which `numba_seconds` counts as compiling.

Imports: numba, numpy.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator

import numba
import numpy as np
from numba import types
from numba.core import caching, event
from numba.core.registry import cpu_target
from numba.core.runtime import rtsys

_NUMBA_LOAD = caching.Cache.load_overload
_SCOPE = threading.Lock()  # guards _scopes and the patch
_scopes = 0  # blocks of cached_loads() open, in any thread


class _Held(event.Listener):
    """Seconds one thread held Numba's compiler lock (outermost holds only)."""

    def __init__(self):
        self.thread, self.depth, self.since, self.seconds = threading.get_ident(), 0, 0.0, 0.0

    def on_start(self, ev):
        if threading.get_ident() == self.thread:
            if self.depth == 0:
                self.since = time.perf_counter()
            self.depth += 1

    def on_end(self, ev):
        if threading.get_ident() == self.thread and self.depth > 0:  # a hold begun before the block is not ours
            self.depth -= 1
            if self.depth == 0:
                self.seconds += time.perf_counter() - self.since


ELSEWHERE = "custom/gategraph:compiling-elsewhere"  # the event of a wait for another process that compiles


@contextlib.contextmanager
def numba_seconds() -> Iterator[Callable[[], float]]:
    """`with numba_seconds() as spent:` ... `spent()` is the seconds this thread held Numba's compiler lock
    since the block began (compiling, or loading cached machine code), or waited for another process to
    compile for it (`elsewhere`)."""
    held = _Held()
    with event.install_listener("numba:compiler_lock", held), event.install_listener(ELSEWHERE, held):
        yield lambda: held.seconds


@contextlib.contextmanager
def elsewhere() -> Iterator[None]:
    """Within the block this thread waits for another process to compile what it will load (gategraph.kernel):
    `numba_seconds` counts it as compiling."""
    with event.trigger_event(ELSEWHERE):
        yield


def set_up() -> None:
    """Numba's typing and target contexts set up, as its first compile in a process would (about 0.3 s): a
    process that will compile can do it while it waits for another one."""
    cpu_target.typing_context.refresh()
    cpu_target.target_context.refresh()


def type_numpy(dtype: str) -> None:
    """The NumPy functions gategraph.lower's kernels call (np.dot of C-contiguous and transposed operands,
    np.empty, reshape, ravel) typed and compiled for `dtype` and kept in this process's memory, where a kernel's
    compile then finds them (about half a second of it): a process that will compile a kernel can do it while it
    waits for another one."""
    element = np.dtype(dtype).type

    @numba.njit(error_model="numpy", nogil=True)
    def numpy_of_kernels(a, b, c, t):
        s = np.empty((a.shape[0], b.shape[1]), element)
        np.dot(a.T, b, c)
        np.dot(a, b, s)
        return s, np.empty((a.shape[0],), element), t.reshape(t.shape[0] * t.shape[1], t.shape[2]), t.ravel(), \
            a.reshape(a.size)

    matrix = np.zeros((2, 2), dtype)
    numpy_of_kernels(matrix, matrix, matrix, np.zeros((2, 2, 2), dtype))


def signature(kinds: list, dtype: str) -> tuple:
    """Numba's types of the arguments `kinds` describes: the number of dimensions of a C-contiguous array of
    `dtype`, "size" (an int) or "switch" (a bool)."""
    element = numba.from_dtype(np.dtype(dtype))
    scalar = {"size": numba.typeof(0), "switch": numba.typeof(True)}
    return tuple(scalar[k] if isinstance(k, str) else types.Array(element, k, "C") for k in kinds)


def compile_for(function, kinds: list, dtype: str) -> None:
    """Compile (or load from Numba's cache) a Numba function for the arguments `kinds` describes (`signature`)."""
    function.compile(signature(kinds, dtype))


def _load_with_runtime_only(self, sig, target_context):
    """Numba's Cache.load_overload, with the context's refresh narrowed to starting Numba's runtime. (Numba
    calls it holding its compiler lock, so no compile in another thread sees the narrowed refresh.)"""
    target_context.refresh = functools.partial(rtsys.initialize, target_context)
    try:
        return _NUMBA_LOAD(self, sig, target_context)
    finally:
        del target_context.refresh


@contextlib.contextmanager
def cached_loads() -> Iterator[None]:
    """Within the block, functions load from Numba's cache without the compiler's set-up (see above)."""
    global _scopes
    with _SCOPE:
        _scopes += 1
        caching.Cache.load_overload = _load_with_runtime_only
    try:
        yield
    finally:
        with _SCOPE:
            _scopes -= 1
            if _scopes == 0:
                caching.Cache.load_overload = _NUMBA_LOAD
