"""A large batch splits into shards of rows that run at once, one per core (gategraph.blas.shards): the
numbers must be those of the unsplit pass to rounding, whatever the machine's cores."""

import os
import signal

import numpy as np
import pytest

from gategraph import blas, cells, kernel
from gategraph.kernel import compile

T, S = 7, 5


@pytest.fixture
def three_cores(monkeypatch):
    """A machine of three cores, whatever this one has."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(blas, "cores", lambda: 3)


def _passes(k, params, x, dout, dfin, memory=None, state0=None):
    """Outputs, final states, the gate f at every step and every gradient (with the steps' state adjoints)."""
    out, final, tape = k.forward(params, x, state0=state0, memory=memory)
    values = {name: k.values(tape, name) for name in ("f",) if name in {e.name for e in k.cell.equations}}
    grads = k.backward(params, x, dout, dfin, state0=state0, memory=memory, tape=tape, state_grads=True)
    return out, final, values, grads


def _assert_same(split, whole, rtol):
    if isinstance(whole, dict):
        assert set(split) == set(whole)
        for key in whole:
            _assert_same(split[key], whole[key], rtol)
    elif isinstance(whole, tuple):
        for a, b in zip(split, whole, strict=True):
            _assert_same(a, b, rtol)
    else:
        assert split.shape == whole.shape and split.dtype == whole.dtype
        np.testing.assert_allclose(split, whole, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 2e-5)])
def test_a_split_lstm_pass_gives_the_numbers_of_the_whole_batch(three_cores, dtype, rtol):
    B, X, H = 29, 6, 48  # three shards of 9, 10 and 10 rows
    k = compile("lstm", X, H, dtype)
    rng = np.random.default_rng(0)
    params = {p: v.astype(dtype) for p, v in k.init(1).items()}
    x = rng.normal(size=(T, B, X)).astype(dtype)
    state0 = {"h": rng.normal(size=(B, H)).astype(dtype), "C": rng.normal(size=(B, H)).astype(dtype)}
    dout = rng.normal(size=(T, B, H)).astype(dtype)
    dfin = {"C": rng.normal(size=(B, H)).astype(dtype)}
    with blas.serial():
        whole = _passes(k, params, x, dout, dfin, state0=state0)
        whole = _passes(k, params, x, dout, dfin, state0=state0)  # once both functions ran
    assert k._rows(B, k.sizes) == [slice(0, 9), slice(9, 19), slice(19, 29)]
    split = _passes(k, params, x, dout, dfin, state0=state0)
    _assert_same(split, whole, rtol)
    assert set(split[3]) >= {"W_f", "x", "h", "C", "steps"}
    without_x = k.backward(params, x, dout, dfin, state0=state0, input_grads=False)  # split too, x's gradient left out
    assert without_x.keys() == split[3].keys() - {"x", "steps"}
    assert all(np.array_equal(without_x[n], split[3][n]) for n in without_x)


def test_a_split_attention_pass_cuts_each_sequences_memory_with_it(three_cores):
    B, H = 24, 64
    k = compile(cells.attention("additive"), None, H, "float64", A=200)
    rng = np.random.default_rng(3)
    params = k.init(3)
    q, M = rng.normal(size=(T, B, H)), rng.normal(size=(B, S, H))
    dout = {"c": rng.normal(size=(T, B, H)), "alpha": rng.normal(size=(T, B, S))}
    with blas.serial():
        _passes(k, params, q, dout, None, memory={"M": M})
        whole = _passes(k, params, q, dout, None, memory={"M": M})
    assert len(k._rows(B, k.sizes)) == 3
    _assert_same(_passes(k, params, q, dout, None, memory={"M": M}), whole, 1e-12)


def test_a_tape_split_otherwise_is_made_again(three_cores):
    """A tape from a serial() block handed to a split backward pass (and back) gives the same gradients."""
    B, X, H = 32, 4, 64
    k = compile("gru", X, H, "float64")
    rng = np.random.default_rng(4)
    params, x, dout = k.init(4), rng.normal(size=(T, B, X)), rng.normal(size=(T, B, H))
    k.backward(params, x, dout)
    with blas.serial():
        _, _, tape = k.forward(params, x)
    split = k.backward(params, x, dout, tape=tape)
    _, _, tape = k.forward(params, x)
    assert len(tape.parts) == 3
    with blas.serial():
        whole = k.backward(params, x, dout, tape=tape)
    _assert_same(split, whole, 1e-12)


def test_when_a_pass_splits(three_cores):
    weights = 4 * 64 * 96  # the LSTM's at X = 32, H = 64
    assert blas.shards(32, weights) == 3
    assert blas.shards(16, weights) == 2  # at least 8 rows a shard
    assert blas.shards(1, 4 * 32 * 34) == 1 and blas.shards(7, weights) == 1
    assert blas.shards(8, 4 * 8 * 12) == 1  # too little work per step to hand rows to another core
    assert blas.shards(32, 4 * 512 * 768) == 1  # enough for the BLAS's own threads to share each product
    with blas.serial():
        assert blas.shards(32, weights) == 1
    assert blas.shards(32, weights) == 3


def test_the_cores_are_the_ones_this_process_may_use(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    if hasattr(os, "sched_getaffinity"):
        assert blas.cores() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert blas.cores() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as Dask's workers and one-core runs set it: never split
    assert blas.shards(64, 4 * 128 * 192) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    assert blas.cores() >= 1


def test_each_shard_runs_on_its_own_thread_with_one_blas_thread(three_cores, monkeypatch):
    k = compile("rnn", 256, 256, "float64")
    params, x = k.init(0), np.ones((2, 32, 256))
    k.backward(params, x, np.ones((2, 32, 256)))
    seen = []
    call = kernel._call

    def watched(compiled, args, what):
        import threading

        seen.append((threading.current_thread().name, blas.KERNEL_BLAS.threads()))
        return call(compiled, args, what)

    monkeypatch.setattr(kernel, "_call", watched)
    k.backward(params, x, np.ones((2, 32, 256)))
    assert len(seen) == 6 and len({name for name, _ in seen}) >= 2, seen  # forward and backward, 3 shards each
    assert all(n in (1, None) for _, n in seen)


def test_training_never_splits_a_pass(three_cores, monkeypatch):
    """A run's numbers must not depend on the machine's cores: every pass of training runs whole."""
    from gategraph.kernel import Kernel
    from gategraph.train import Config, train

    seen = []
    passes = Kernel._passes

    def watched(self, which, shards):
        seen.append(len(shards))
        return passes(self, which, shards)

    monkeypatch.setattr(Kernel, "_passes", watched)
    config = Config(cell="gru", task="adding", hidden=64, batch=32, steps=3, eval_every=3)
    assert blas.shards(config.batch, 3 * 64 * 66) == 3  # outside training, a pass of this size would split
    train(config)
    assert seen and set(seen) == {1}


def test_a_forward_pass_that_fails_leaves_no_tape_current_over_its_buffers(three_cores, monkeypatch):
    """The shards of a failing pass may have written the workspace: an earlier tape must not be used."""
    B, X, H = 32, 4, 64
    k = compile("gru", X, H, "float64")
    rng = np.random.default_rng(5)
    params, dout = k.init(5), rng.normal(size=(T, B, H))
    x1, x2 = rng.normal(size=(T, B, X)), rng.normal(size=(T, B, X))
    right = k.backward(params, x1, dout)
    _, _, tape = k.forward(params, x1)
    call = kernel._call

    def last_shard_fails(compiled, args, what):
        out = call(compiled, args, what)
        if args[0].shape[1] == 11:  # the shards of rows 10 to 21 and 21 to 32, run in the pool
            raise MemoryError("no room")
        return out

    monkeypatch.setattr(kernel, "_call", last_shard_fails)
    with pytest.raises(MemoryError):
        k.forward(params, x2)
    monkeypatch.setattr(kernel, "_call", call)
    _assert_same(k.backward(params, x1, dout, tape=tape), right, 1e-12)


def test_a_forked_child_splits_its_passes_too(three_cores):
    B, X, H = 32, 4, 64
    k = compile("gru", X, H, "float64")
    params, x = k.init(6), np.ones((T, B, X))
    k.backward(params, x, None)
    out, _, _ = k.forward(params, x)  # the pool's threads exist now
    pid = os.fork()
    if pid == 0:  # the child: a split pass must finish (it would wait forever on the parent's threads)
        signal.alarm(60)
        ok = np.allclose(k.forward(params, x)[0], out, rtol=1e-12)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
