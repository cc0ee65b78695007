"""BLAS threads by the size of the products: a kernel's passes over a small batch run the kernels' BLAS on
one thread (a second one costs small GEMMs many times their work), large ones on the caller's threads, and
NumPy's own BLAS is never touched."""

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from gategraph import blas, cells, kernel
from gategraph.kernel import compile


def numpys_blas() -> set:
    """The thread counts of the BLAS libraries NumPy ships in its own folder (a wheel's), if any."""
    numpy_libs = Path(np.__file__).parent.parent / "numpy.libs"
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"
            and Path(i["filepath"]).parent == numpy_libs}


def test_the_rule_gives_one_thread_below_two_to_the_24_multiply_adds_per_step():
    lstm = 4 * 64 * (64 + 32) + 4 * 64  # the weights of an LSTM, X = 32, H = 64
    assert blas.threads(32, lstm) == 1
    assert blas.threads(32, 4 * 512 * (512 + 256)) is None  # H = 512, X = 256: the BLAS's own threads
    assert blas.threads(1, 2**24) is None and blas.threads(1, 2**24 - 1) == 1


def test_a_pass_runs_on_the_threads_its_size_pays_for(monkeypatch):
    small, large = compile(cells.rnn(), 4, 4, "float64"), compile(cells.rnn(), 512, 512, "float64")
    seen, steps = [], []  # the step BLAS's threads (gategraph's own OpenBLAS) beside
    call = kernel._call

    def watched(compiled, args, what):
        seen.append((blas.KERNEL_BLAS.threads(), numpys_blas()))
        steps.append(blas.step_blas().scipy_openblas_get_num_threads())
        return call(compiled, args, what)

    monkeypatch.setattr(kernel, "_call", watched)

    def passes(k, batch):
        params, x = k.init(0), np.ones((2, batch, k.sizes["X"]))
        h, _, tape = k.forward(params, x)
        k.backward(params, x, np.ones_like(h), tape=tape)

    with threadpool_limits(2, user_api="blas"), blas.serial():  # unsplit passes (a split one: test_shards)
        if blas.KERNEL_BLAS.threads() != 2:
            pytest.skip("the BLAS runs on one thread here (one core)")
        passes(small, 3)
        passes(large, 32)  # 32 × 512 · 1024 multiply-adds per step: the caller's two threads
        passes(small, 3)
        passes(large, 32)
        with threadpool_limits(1, user_api="blas"):  # the caller's limit holds for a large pass
            passes(large, 32)
    assert [kernels for kernels, _ in seen] == [1, 1, 2, 2, 1, 1, 2, 2, 1, 1]
    assert all(numpy in ({2}, set()) for _, numpy in seen[:8]), seen  # NumPy's BLAS keeps the caller's count
    assert steps == [1] * len(seen)  # gategraph's own BLAS, for the small step products, on one thread always


def test_restore_gives_back_the_callers_threads_after_a_small_pass():
    """After a small pass the kernels' BLAS (SciPy's) is on one thread; restore() gives the caller's count back."""
    k = compile(cells.rnn(), 4, 4, "float64")
    with threadpool_limits(2, user_api="blas"), blas.serial():  # unsplit passes (a split one: test_shards)
        if blas.KERNEL_BLAS.threads() != 2:
            pytest.skip("the BLAS runs on one thread here (one core)")
        k.forward(k.init(0), np.ones((2, 3, 4)))
        assert blas.KERNEL_BLAS.threads() == 1
        blas.KERNEL_BLAS.restore()
        assert blas.KERNEL_BLAS.threads() == 2


def test_the_kernels_blas_is_primed_once_with_one_large_product_before_a_pass(monkeypatch):
    """Single-threaded sgemm ran the weight gradients' products up to 2.8 times slower in a process whose
    first products were small (gategraph.blas, "Priming"): the first lookup of the library makes one
    PRIME³ product, and only the first."""
    before = blas.KERNEL_BLAS.threads()
    if before is None:
        pytest.skip("the kernels' BLAS is not OpenBLAS")
    calls = []
    real = blas._prime
    monkeypatch.setattr(blas, "_prime", lambda sgemm: calls.append(sgemm) or real(sgemm))
    fresh = blas._KernelBlas()
    assert fresh.threads() == before, "the priming product left the BLAS on one thread"
    fresh.use(True)
    fresh.use(False)
    assert len(calls) == 1 and calls[0] is not None
    assert fresh.primed, "the priming product did not write its result"


def test_a_thread_that_comes_while_the_blas_is_primed_waits_and_sees_the_callers_threads(monkeypatch):
    """The priming product runs on one thread: a pass in another thread meanwhile must neither find no BLAS
    nor take that one thread for its caller's count."""
    import threading

    if blas.KERNEL_BLAS.threads() is None:
        pytest.skip("the kernels' BLAS is not OpenBLAS")
    started, go = threading.Event(), threading.Event()
    monkeypatch.setattr(blas, "_prime", lambda sgemm: started.set() or go.wait(10))
    fresh, seen = blas._KernelBlas(), []
    with threadpool_limits(2, user_api="blas"):  # the caller's count, which the priming's one thread must not hide
        first = threading.Thread(target=fresh.threads)
        first.start()
        assert started.wait(10)
        second = threading.Thread(target=lambda: seen.append(fresh.threads()))
        second.start()
        second.join(0.2)
        assert second.is_alive(), "the second thread did not wait for the priming"
        go.set()
        first.join(10)
        second.join(10)
        assert seen == [2] and fresh.threads() == 2


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_steps_product_is_u_times_s_through_gategraphs_own_openblas_when_small(dtype):
    """`_product` computes u · S, or adds it to its output, or to a run of its columns (the GRU's z and r, and
    its candidate's): below 2^24 multiply-adds through cblas_gemm of the package scipy-openblas32 (a newer
    OpenBLAS than SciPy's; gategraph.blas, "Steps"), by a symbol LLVM is told of; above, through SciPy's, as it
    is (into the buffer `_flipped` gives for adding) and as (Sᵀ · uᵀ)ᵀ with Sᵀ given."""
    from gategraph.kernel import _helpers

    config = blas.step_blas().scipy_openblas_get_config
    config.restype = ctypes.c_char_p
    assert tuple(int(v) for v in config().split()[1].split(b".")[:3]) >= (0, 3, 31), config()
    module, rng = _helpers(dtype)["arrays"], np.random.default_rng(0)
    none, rtol = np.empty((0, 0), dtype), 1e-5 if dtype == "float32" else 1e-12
    for m, k, n in [(5, 7, 3), (32, 1024, 512)]:  # 105 multiply-adds, and 2^24
        u, s = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
        before = rng.standard_normal((m, n)).astype(dtype)
        out, summed = np.full((m, n), np.nan, dtype), before.copy()
        _, f = module._flipped(s, m, 1, True)  # one step: never flipped
        assert f.shape == ((0, 0) if m * k * n < 1 << 24 else (m, n))
        module._product(u, s, none, f, out, 0, False)
        module._product(u, s, none, f, summed, 0, True)
        np.testing.assert_allclose(out, u @ s, rtol=rtol, atol=rtol * k)
        np.testing.assert_allclose(summed, before + u @ s, rtol=rtol, atol=rtol * k)
        _columns_added(module, u, s, none, f, rng, rtol * k)
    flipped, summed = np.full((m, n), np.nan, dtype), before.copy()
    st, f = np.ascontiguousarray(s.T), np.empty((n, m), dtype)
    module._product(u, s, st, f, flipped, 0, False)
    module._product(u, s, st, f, summed, 0, True)
    np.testing.assert_allclose(flipped, u @ s, rtol=rtol, atol=rtol * k)
    np.testing.assert_allclose(summed, before + u @ s, rtol=rtol, atol=rtol * k)
    _columns_added(module, u, s, st, f, rng, rtol * k)


def _columns_added(module, u, s, st, f, rng, atol):
    """`_product` adds u · S into columns 3 to 3 + n of a wider output, and leaves its other columns be."""
    (m, n), product = (u.shape[0], s.shape[1]), u @ s
    wide = rng.standard_normal((m, n + 5)).astype(u.dtype)
    expected = wide.copy()
    expected[:, 3:3 + n] += product
    module._product(u, s, st, f, wide, 3, True)
    np.testing.assert_allclose(wide, expected, rtol=atol, atol=atol)
    np.testing.assert_array_equal(wide[:, :3], expected[:, :3])
    np.testing.assert_array_equal(wide[:, 3 + n:], expected[:, 3 + n:])


def test_without_scipy_openblas32_a_kernel_says_what_to_install(tmp_path):
    """The kernels need gategraph's own OpenBLAS: without the package, one line says which, not a linker error."""
    code = ("import sys; sys.modules['scipy_openblas32'] = None\n"
            "from gategraph.errors import GategraphError\n"
            "from gategraph.kernel import compile\n"
            "try:\n    compile('rnn', 2, 3)\nexcept GategraphError as e:\n    print(e)\n")
    env = {**os.environ, "GATEGRAPH_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines() == [
        "the kernels' step products call the OpenBLAS of the package scipy-openblas32, which is not installed: "
        "pip install scipy-openblas32"]
