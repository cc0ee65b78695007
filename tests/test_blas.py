"""BLAS threads by the size of the products: a kernel's passes over a small batch run the kernels' BLAS on
one thread (a second one costs small GEMMs many times their work), large ones on the caller's threads, and
NumPy's own BLAS is never touched."""

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
        steps.append(blas.step_blas().get())
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
def test_a_steps_product_is_u_times_s_through_the_step_blas_when_small_or_on_one_thread(dtype):
    """`_product` computes u · S, or adds it to its output, or to a run of its columns (the GRU's z and r, and
    its candidate's): below 2^24 multiply-adds, or while SciPy's BLAS is on one thread, through cblas_gemm of the
    step BLAS (MKL, or the package scipy-openblas32's OpenBLAS, newer than SciPy's: gategraph.blas, "Steps"), by a
    symbol LLVM is told of; else through SciPy's on its threads, as it is (into the buffer `_flipped` gives for
    adding) and as (Sᵀ · uᵀ)ᵀ with Sᵀ given. Which way it went shows in that buffer: only SciPy's way writes it."""
    from gategraph.kernel import _helpers

    step = blas.step_blas()
    if "OpenBLAS" in step.name:
        assert tuple(int(v) for v in step.name.split()[1].split(".")[:3]) >= (0, 3, 31), step.name
    module, rng = _helpers(dtype)["arrays"], np.random.default_rng(0)
    none, rtol = np.empty((0, 0), dtype), 1e-5 if dtype == "float32" else 1e-12
    with threadpool_limits(2, user_api="blas"):
        if blas.KERNEL_BLAS.threads() != 2:
            pytest.skip("the BLAS runs on one thread here (one core)")
        for m, k, n in [(5, 7, 3), (32, 1024, 512)]:  # 105 multiply-adds, and 2^24
            u, s = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
            _, f = module._flipped(s, m, 1, True)  # one step: never flipped
            assert f.shape == ((0, 0) if m * k * n < 1 << 24 else (m, n))
            _products_checked(module, u, s, none, f, rng, rtol, scipys=m * k * n >= 1 << 24)
        st, f = np.ascontiguousarray(s.T), np.empty((n, m), dtype)
        _products_checked(module, u, s, st, f, rng, rtol, scipys=True)
        with threadpool_limits(1, user_api="blas"):  # SciPy's BLAS on one thread: the step BLAS's product
            assert [a.shape for a in module._flipped(s, m, 50, True)] == [(0, 0), (0, 0)]  # no Sᵀ, no buffer
            _products_checked(module, u, s, st, f, rng, rtol, scipys=False)


def _products_checked(module, u, s, st, f, rng, rtol, scipys):
    """`_product`'s u · S written, added, and added into a run of columns, each equal to NumPy's; and its buffer f
    written (SciPy's BLAS) or left as it was (the step BLAS's)."""
    m, k = u.shape
    before = rng.standard_normal((m, s.shape[1])).astype(u.dtype)
    out, summed = np.full_like(before, np.nan), before.copy()
    f.fill(np.nan)
    module._product(u, s, st, f, out, 0, False)
    module._product(u, s, st, f, summed, 0, True)
    np.testing.assert_allclose(out, u @ s, rtol=rtol, atol=rtol * k)
    np.testing.assert_allclose(summed, before + u @ s, rtol=rtol, atol=rtol * k)
    _columns_added(module, u, s, st, f, rng, rtol * k)
    assert f.size == 0 or np.isnan(f).all() != scipys


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_product_over_all_steps_is_a_times_b_or_a_transposed_times_b_on_either_blas(dtype):
    """`_dot` (the input's products, the weights' gradients, the input gradients of a stacked layer): C = A · B
    or Aᵀ · B, through the step BLAS while SciPy's is on one thread, and through `np.dot` on two."""
    from gategraph.kernel import _helpers

    module, rng = _helpers(dtype)["arrays"], np.random.default_rng(1)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    a, b = rng.standard_normal((300, 40)).astype(dtype), rng.standard_normal((300, 24)).astype(dtype)
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="blas"):
            if blas.KERNEL_BLAS.threads() != threads:
                pytest.skip("the BLAS runs on one thread here (one core)")
            c, d = np.full((40, 24), np.nan, dtype), np.full((300, 24), np.nan, dtype)
            module._dot(a, b, c, True)
            module._dot(a, b[:40], d, False)
            np.testing.assert_allclose(c, a.T @ b, rtol=rtol, atol=rtol * 300)
            np.testing.assert_allclose(d, a @ b[:40], rtol=rtol, atol=rtol * 40)


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
    """The kernels need gategraph's own OpenBLAS where they do not take MKL: without the package, one line says
    which, not a linker error."""
    code = ("import sys; sys.modules['scipy_openblas32'] = None\n"
            "from gategraph.errors import GategraphError\n"
            "from gategraph.kernel import compile\n"
            "try:\n    compile('rnn', 2, 3)\nexcept GategraphError as e:\n    print(e)\n")
    env = {**os.environ, "GATEGRAPH_CACHE_DIR": str(tmp_path), "GATEGRAPH_BLAS": "openblas"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines() == [
        "the kernels' step products need the OpenBLAS of the package scipy-openblas32 (or MKL, on an Intel "
        "processor), which is not installed: pip install scipy-openblas32"]


def _run(code: str, tmp_path, **env) -> subprocess.CompletedProcess:
    """`code` run by a fresh Python with the kernel cache in tmp_path and `env` added to the environment."""
    env = {**os.environ, "GATEGRAPH_CACHE_DIR": str(tmp_path), **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)


def test_the_step_blas_is_mkl_on_an_intel_processor_where_installed_unless_asked_otherwise(tmp_path):
    """Unset, GATEGRAPH_BLAS leaves the choice to the processor: MKL on an Intel one where the package mkl is
    installed, else scipy-openblas32's OpenBLAS; `openblas` and `mkl` ask for one; anything else is one line."""
    code = "from gategraph import blas; print(blas.step_blas().name)"
    mkl = any(Path(sys.prefix, "lib").glob("libmkl_rt.so*"))
    chosen = _run(code, tmp_path, GATEGRAPH_BLAS="")
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.startswith("Intel(R) oneAPI Math Kernel Library" if mkl and blas._intel() else "OpenBLAS ")
    asked = _run(code, tmp_path, GATEGRAPH_BLAS="openblas")
    assert asked.returncode == 0 and asked.stdout.startswith("OpenBLAS 0.3."), asked.stderr
    wrong = _run("from gategraph.errors import UsageError\nfrom gategraph.kernel import compile\n"
                 "try:\n    compile('rnn', 2, 3)\nexcept UsageError as e:\n    print(e)\n", tmp_path,
                 GATEGRAPH_BLAS="atlas")
    assert wrong.returncode == 0, wrong.stderr
    assert wrong.stdout.strip().splitlines() == ["GATEGRAPH_BLAS='atlas': say mkl or openblas, or leave it unset"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_kernel_on_openblas_computes_what_it_computes_on_mkl(tmp_path, dtype):
    """The same passes on either step BLAS, one thread (every product there) and two (the large ones on SciPy's
    BLAS): a stacked LSTM layer's outputs and all its gradients (tests/test_kernel.py holds each to the reference)."""
    if not (any(Path(sys.prefix, "lib").glob("libmkl_rt.so*")) and blas._intel()):
        pytest.skip("MKL is not the step BLAS here")
    code = f"""
import numpy as np
from threadpoolctl import threadpool_limits
from gategraph import blas
from gategraph.kernel import compile
k = compile("lstm", 24, 48, "{dtype}")
params, rng = k.init(0), np.random.default_rng(0)
x = rng.standard_normal((7, 5, 24)).astype("{dtype}")
found = {{}}
for threads in (1, 2):
    with threadpool_limits(threads, user_api="blas"), blas.serial():
        h, _, tape = k.forward(params, x)
        grads = k.backward(params, x, np.cos(h), tape=tape, input_grads=True)
        found.update({{f"{{threads}} h": h, **{{f"{{threads}} {{n}}": g for n, g in grads.items()}}}})
np.savez("{tmp_path}/" + blas.step_blas().name.split()[0] + ".npz", **found)
"""
    for which in ("openblas", "mkl"):
        proc = _run(code, tmp_path, GATEGRAPH_BLAS=which)
        assert proc.returncode == 0, proc.stderr
    openblas, mkl = np.load(tmp_path / "OpenBLAS.npz"), np.load(tmp_path / "Intel(R).npz")
    assert sorted(openblas.files) == sorted(mkl.files) and len(mkl.files) >= 12
    rtol = 2e-5 if dtype == "float32" else 1e-12
    for name in mkl.files:
        np.testing.assert_allclose(openblas[name], mkl[name], rtol=rtol, atol=rtol, err_msg=name)
