"""The time Numba spends making machine code, so that a run's training time can leave it out.

Numba announces each stretch in which it holds its compiler lock, compiling a function or loading one from
its cache (numba.core.event, kind "numba:compiler_lock"); `numba_seconds()` adds those stretches up while a
block runs, in every thread of this process.

Imports: numba.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from numba.core import event


@contextlib.contextmanager
def numba_seconds() -> Iterator[Callable[[], float]]:
    """`with numba_seconds() as spent:` ... `spent()` is the seconds Numba held its compiler lock since the
    block began (compiling, or loading cached machine code)."""
    timer = event.TimingListener()
    with event.install_listener("numba:compiler_lock", timer):
        yield lambda: timer.duration if timer.done else 0.0
