"""A run's compile time counts what Numba compiles in the run's own thread, not what another thread compiles
meanwhile (several runs may train in the threads of one process)."""

import threading

import numpy as np
from numba import njit

from gategraph.compiling import numba_seconds


def test_only_the_threads_own_compiling_counts():
    with numba_seconds() as spent:
        other = threading.Thread(target=lambda: njit(lambda y: np.cos(y).sum())(np.ones(2)))
        other.start()
        other.join()
        assert spent() == 0.0
        njit(lambda y: np.sin(y).sum())(np.ones(2))
        assert spent() > 0.0
