"""The time Numba spends making machine code, so that a run's training time can leave it out.

Numba announces each stretch in which it holds its compiler lock, compiling a function or loading one from
its cache (numba.core.event, kind "numba:compiler_lock"); `numba_seconds()` adds up those of the thread that
runs the block (several runs in the threads of one process do not count each other's; a nested hold counts
once; a wait for the lock while another thread compiles counts, as it is not training either).

Imports: numba.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from numba.core import event


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
