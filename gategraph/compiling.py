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

Imports: numba.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator

from numba.core import caching, event
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


@contextlib.contextmanager
def numba_seconds() -> Iterator[Callable[[], float]]:
    """`with numba_seconds() as spent:` ... `spent()` is the seconds this thread held Numba's compiler lock
    since the block began (compiling, or loading cached machine code)."""
    held = _Held()
    with event.install_listener("numba:compiler_lock", held):
        yield lambda: held.seconds


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
