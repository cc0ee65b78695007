"""BLAS threads by the size of the products: a kernel's passes over a small batch run BLAS on one thread (a
second one costs small GEMMs many times their work), large ones keep the caller's threads, and the caller's
count is back after every call."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from gategraph import blas, cells, kernel
from gategraph.kernel import compile


def blas_threads() -> set:
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_the_rule_gives_one_thread_below_two_to_the_24_multiply_adds_per_step():
    lstm = 4 * 64 * (64 + 32) + 4 * 64  # the weights of an LSTM, X = 32, H = 64
    assert blas.threads(32, lstm) == 1
    assert blas.threads(32, 4 * 512 * (512 + 256)) is None  # H = 512, X = 256: the BLAS's own threads
    assert blas.threads(1, 2**24) is None and blas.threads(1, 2**24 - 1) == 1


@pytest.mark.parametrize("hidden, batch, inside", [(4, 3, {1}), (512, 32, {2})])
def test_a_pass_runs_on_the_threads_its_size_pays_for_and_gives_them_back(monkeypatch, hidden, batch, inside):
    k = compile(cells.rnn(), hidden, hidden, "float64")
    seen = []
    call = kernel._call

    def watched(compiled, args):
        seen.append(blas_threads())
        return call(compiled, args)

    monkeypatch.setattr(kernel, "_call", watched)
    params = k.init(0)
    x = np.ones((2, batch, hidden))
    with threadpool_limits(2, user_api="blas"):
        if blas_threads() != {2}:
            pytest.skip("the BLAS runs on one thread here (one core)")
        h, _, tape = k.forward(params, x)
        k.backward(params, x, np.ones_like(h), tape=tape)
        assert blas_threads() == {2}
    assert seen == [inside, inside]
