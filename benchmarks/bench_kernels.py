"""Speed of gategraph's compiled kernels against the peers a user would pick instead: PyTorch on the CPU
(`torch.nn.LSTM` / `nn.GRU`) and JAX on the CPU (a `jax.jit`-compiled step with `lax.scan` over time).

    python benchmarks/bench_kernels.py                  # the full table (a few minutes)
    python benchmarks/bench_kernels.py --quick          # two configs, fewer repeats
    python benchmarks/bench_kernels.py --json out.json  # also write every measurement
    python benchmarks/bench_kernels.py --cores all --markdown benchmarks/results/kernels-all-cores.md

What is timed, per cell (LSTM; GRU in PyTorch's reset-after form), dtype and config (B, T, X, H):
- train: forward + BPTT + Adam, the loss the MSE of the last hidden state against a target;
- fwd+bwd: the forward pass and the gradients, no update.

Two tables, one process each:
- `--cores one` (the default): everything on one core (this process pins itself to CPU 0 and sets every
  thread pool to one thread; JAX ignores thread-count flags, the pinning holds it);
- `--cores all`: every implementation with its own default threading on all of the machine's cores
  (PyTorch's intra-op threads, XLA's thread pool; gategraph's kernels split a large batch into shards of
  rows, one per core, and give a pass they do not split the BLAS threads its GEMMs pay for).
Implementations run interleaved, each timing long enough to be read: a round times every implementation back to
back, and the table shows medians of the rounds. The ratio is (faster peer's time) / (gategraph's time): above 1,
gategraph is faster; it is the median of the rounds' own ratios (`paired_ratios`), and its column shows the lowest
and highest of them beside it. Every
implementation is asked for the parameters' gradients only, as a model whose input is data needs them: PyTorch's
x does not require grad, JAX differentiates by the parameters, gategraph's backward is called with
`input_grads=False`. (PyTorch's float32 LSTM runs oneDNN's RNN, whose backward makes ∂L/∂x whether asked or
not; its other cases and JAX leave it out, as gategraph does.) GFLOP/s counts the GEMM-shaped products of
forward and backward (G = 4H for the LSTM, 3H for the GRU; 2·T·B·G·(X + H) for the gates, as many for the
weights' gradients, 2·T·B·G·H for the state's) against the machine's matrix-multiply peak on the same cores,
measured in the same run with the BLAS the kernels call.

The header names the CPU, its vector extensions, every BLAS loaded (its kernel and threads) and each
implementation's threads. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which force an older BLAS kernel, are
removed from this process's environment before any BLAS loads. `--markdown FILE` writes the header and the
table with the command that printed them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time

FORCED = {k: os.environ.pop(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
              "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                "amx_tile")


def use_cores(cores: str) -> None:
    """Before NumPy or any BLAS loads: one core (pinned, every thread pool one thread), or all (nothing set)."""
    if cores == "one":
        os.environ.update(ONE_THREAD)
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {0})


CONFIGS = [(1, 100, 2, 32), (32, 50, 32, 64), (64, 100, 64, 128), (32, 35, 256, 512)]
TARGETS = [2.0, 1.2, 1.2, 1.0]  # the ratio gategraph aims for at each config


# --- gategraph ------------------------------------------------------------------------------------------------


def gategraph_impl(cell_kind, dtype, B, T, X, H, x, y):
    from gategraph import cells
    from gategraph.kernel import compile
    from gategraph.optim import Adam

    cell = cells.lstm() if cell_kind == "lstm" else cells.gru_reset_after()
    k = compile(cell, X, H, dtype)
    params, opt = k.init(0), Adam(1e-3)
    scale = 2.0 / (B * H)

    def fb():
        _, final, tape = k.forward(params, x)
        return k.backward(params, x, None, {"h": scale * (final["h"] - y)}, tape=tape, input_grads=False)

    def train():
        opt.step(params, fb())

    return fb, train


# --- PyTorch --------------------------------------------------------------------------------------------------


def torch_impl(cell_kind, dtype, B, T, X, H, x, y):
    import torch

    torch.manual_seed(0)
    net = (torch.nn.LSTM if cell_kind == "lstm" else torch.nn.GRU)(X, H).to(getattr(torch, dtype))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def fb():
        net.zero_grad(set_to_none=True)
        out, _ = net(xt)
        loss = ((out[-1] - yt) ** 2).mean()
        loss.backward()

    def train():
        opt.zero_grad(set_to_none=True)
        out, _ = net(xt)
        ((out[-1] - yt) ** 2).mean().backward()
        opt.step()

    return fb, train


# --- JAX --------------------------------------------------------------------------------------------------------


def jax_impl(cell_kind, dtype, B, T, X, H, x, y):
    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(0)
    G = 4 * H if cell_kind == "lstm" else 3 * H
    k = 1 / np.sqrt(H)
    params = {n: jnp.asarray(rng.uniform(-k, k, s).astype(dtype))
              for n, s in {"W_ih": (X, G), "W_hh": (H, G), "b_ih": (G,), "b_hh": (G,)}.items()}

    def lstm_step(carry, xt, p):
        h, c = carry
        z = xt @ p["W_ih"] + h @ p["W_hh"] + p["b_ih"] + p["b_hh"]
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), None

    def gru_step(carry, xt, p):
        (h,) = carry
        gi = xt @ p["W_ih"] + p["b_ih"]
        gh = h @ p["W_hh"] + p["b_hh"]
        r = jax.nn.sigmoid(gi[:, :H] + gh[:, :H])
        z = jax.nn.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = jnp.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        return ((1 - z) * n + z * h,), None

    step = lstm_step if cell_kind == "lstm" else gru_step
    zero = jnp.zeros((B, H), dtype)
    init = (zero, zero) if cell_kind == "lstm" else (zero,)

    def loss(p, xs, ys):
        carry, _ = jax.lax.scan(lambda c, xt: step(c, xt, p), init, xs)
        return jnp.mean((carry[0] - ys) ** 2)

    grad = jax.jit(jax.grad(loss))

    @jax.jit
    def train_step(p, m, v, t, xs, ys):
        g = jax.grad(loss)(p, xs, ys)
        b1, b2, lr, eps = 0.9, 0.999, 1e-3, 1e-8
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
        c1, c2 = 1 - b1**t, 1 - b2**t
        p = jax.tree_util.tree_map(lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), p, m, v)
        return p, m, v

    xs, ys = jnp.asarray(x), jnp.asarray(y)
    state = {"p": params, "m": jax.tree_util.tree_map(jnp.zeros_like, params),
             "v": jax.tree_util.tree_map(jnp.zeros_like, params), "t": 0}

    def fb():
        jax.block_until_ready(grad(state["p"], xs, ys))

    def train():
        state["t"] += 1
        p, m, v = train_step(state["p"], state["m"], state["v"], jnp.asarray(state["t"], dtype), xs, ys)
        jax.block_until_ready(p)
        state.update(p=p, m=m, v=v)

    return fb, train


IMPLS = {"gategraph": gategraph_impl, "pytorch": torch_impl, "jax": jax_impl}


# --- timing ---------------------------------------------------------------------------------------------------


def per_call(fn, budget: float) -> float:
    """Seconds per call, from enough calls to fill about `budget` seconds."""
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget and n >= 3:
            return elapsed / n


def paired_ratios(times: dict) -> list[float]:
    """(faster peer's time) / (gategraph's time) in each round, `times` {implementation: [seconds per call, one
    per round]}: each round's timings ran back to back, so a slow spell of a shared machine falls on all of a
    round's implementations alike, where medians taken apart can pair one's slow round with another's fast one."""
    if "gategraph" not in times or len(times) < 2:
        return []
    peers = [n for n in times if n != "gategraph"]
    return [min(times[n][r] for n in peers) / own for r, own in enumerate(times["gategraph"])]


def matmul_peak(dtype: str) -> float:
    """GFLOP/s of one large GEMM on this process's cores: the faster of SciPy's BLAS (the kernels' products on
    several threads) and the step BLAS (gategraph.blas.step_blas: MKL or gategraph's own OpenBLAS, their products
    on one thread), each the best of three."""
    import ctypes

    import numpy as np
    from scipy.linalg import blas as scipy_blas

    from gategraph import blas

    n = 1024
    a = np.asfortranarray(np.random.default_rng(0).normal(size=(n, n)).astype(dtype))
    c = np.empty_like(a)
    scipys = scipy_blas.sgemm if dtype == "float32" else scipy_blas.dgemm
    real = ctypes.c_float if dtype == "float32" else ctypes.c_double
    p = ctypes.c_void_p
    steps = ctypes.CFUNCTYPE(None, *[ctypes.c_int] * 6, real, p, ctypes.c_int, p, ctypes.c_int, real, p,
                             ctypes.c_int)(blas.step_blas().gemm[dtype])
    calls = [lambda: scipys(1.0, a, a),
             lambda: steps(102, 111, 111, n, n, n, 1.0, a.ctypes.data, n, a.ctypes.data, n, 0.0, c.ctypes.data, n)]
    best = min(per_call(call, 0.3) for call in calls for _ in range(3))
    return 2 * n**3 / best / 1e9


def blas_report() -> list[str]:
    from threadpoolctl import threadpool_info

    from gategraph import blas

    blas.load()  # SciPy's, which the kernels' products on several threads call
    step = blas.step_blas()  # MKL or gategraph's own OpenBLAS, which the products on one thread call
    return [f"step BLAS (products on one thread): {step.name} ({blas.STEP_CHOICE}="
            f"{os.environ.get(blas.STEP_CHOICE) or 'unset'})"] + [
            f"{i.get('user_api')}: {i.get('internal_api')} {i.get('version') or ''} kernel={i.get('architecture')} "
            f"threads={i.get('num_threads')} ({os.path.basename(i.get('filepath', ''))})" for i in threadpool_info()]


def cpu_report() -> tuple[str, list[str]]:
    """The CPU's model name and the vector extensions it reports (Linux's /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    return model, [v for v in VECTOR_FLAGS if v in flags]


def load(impls: list[str]) -> None:
    """Import every implementation's libraries, so that the header sees each BLAS and thread pool."""
    from scipy.linalg import blas  # noqa: F401  the BLAS gategraph's kernels call

    if "gategraph" in impls:
        import gategraph.kernel  # noqa: F401
    if "pytorch" in impls:
        import torch  # noqa: F401
    if "jax" in impls:
        import jax  # noqa: F401


def header(args) -> list[str]:
    model, vector = cpu_report()
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count()))
    lines = [f"CPU: {model}; {os.cpu_count()} cores; vector extensions: {', '.join(vector) or 'none reported'}",
             f"table: {'one core' if args.cores == 'one' else 'all cores'} (this process runs on CPUs {cores}); "
             + (f"removed {', '.join(f'{k}={v}' for k, v in FORCED.items())}" if FORCED else "no forced BLAS kernel")]
    lines += [f"BLAS: {b}" for b in blas_report()]
    threads = []
    if "gategraph" in args.impls:
        import numba

        from gategraph import blas

        threads.append(f"Numba {numba.__version__}; gategraph splits a middle-sized pass's batch over "
                       f"{blas.cores()} core{'s' if blas.cores() > 1 else ''}")
    if "pytorch" in args.impls:
        import torch

        threads.append(f"PyTorch {torch.__version__} ({torch.get_num_threads()} intra-op threads)")
    if "jax" in args.impls:
        import jax

        threads.append(f"JAX {jax.__version__} (XLA_FLAGS={os.environ.get('XLA_FLAGS', 'unset')!r})")
    return lines + ["threads: " + "; ".join(threads)]


def run(args) -> list[dict]:
    import numpy as np

    rows = []
    configs = [CONFIGS[0], CONFIGS[2]] if args.quick else [CONFIGS[int(i)] for i in args.configs.split(",")]
    peaks = {dt: matmul_peak(dt) for dt in args.dtypes}
    for cell_kind in args.cells:
        for dtype in args.dtypes:
            for B, T, X, H in configs:
                rng = np.random.default_rng(1)
                x = rng.normal(size=(T, B, X)).astype(dtype)
                y = rng.normal(size=(B, H)).astype(dtype)
                fns = {}
                for name in args.impls:
                    fb, train = IMPLS[name](cell_kind, dtype, B, T, X, H, x, y)
                    fb()
                    train()  # compile and warm up
                    fns[name] = (fb, train)
                times = {(n, w): [] for n in fns for w in ("fwd+bwd", "train")}
                for rep in range(args.reps):
                    order = list(fns)[rep % len(fns):] + list(fns)[:rep % len(fns)]
                    for k, what in enumerate(("fwd+bwd", "train")):
                        for name in order:  # one round: every implementation, back to back
                            times[(name, what)].append(per_call(fns[name][k], args.budget))
                G = (4 if cell_kind == "lstm" else 3) * H
                flops = 2 * T * B * G * (2 * (X + H) + H)
                for what in ("fwd+bwd", "train"):
                    med = {n: statistics.median(times[(n, what)]) for n in fns}
                    ratios = paired_ratios({n: times[(n, what)] for n in fns})
                    row = {"cell": cell_kind, "dtype": dtype, "B": B, "T": T, "X": X, "H": H, "what": what,
                           **{f"{n}_ms": 1e3 * t for n, t in med.items()},
                           "ratio": statistics.median(ratios) if ratios else None, "ratios": ratios,
                           "target": TARGETS[CONFIGS.index((B, T, X, H))]}
                    if what == "fwd+bwd" and "gategraph" in med:
                        row["gflops"] = flops / med["gategraph"] / 1e9
                        row["peak_fraction"] = row["gflops"] / peaks[dtype]
                    rows.append(row)
                    print(_line(row), flush=True)
    args.peaks = peaks
    return rows


def _shown(ratio: float) -> str:
    """A ratio to two decimals, rounded down: 1.995 is shown 1.99, never as the 2.00 it falls short of."""
    return f"{math.floor(ratio * 100) / 100:.2f}"


def _line(r: dict) -> str:
    times = "  ".join(f"{n} {r[f'{n}_ms']:8.3f}" for n in IMPLS if f"{n}_ms" in r)
    ratio = (f"{_shown(r['ratio']):>5} ({_shown(min(r['ratios']))}-{_shown(max(r['ratios']))})"
             if r["ratio"] is not None else "  -  ")
    ok = "" if r["ratio"] is None else ("holds" if r["ratio"] >= r["target"] else f"below {r['target']}")
    flops = f"  {r['gflops']:6.1f} GFLOP/s ({100 * r['peak_fraction']:3.0f}% of peak)" if "gflops" in r else ""
    return (f"{r['cell']:<5} {r['dtype']:<8} B={r['B']:<3} T={r['T']:<4} X={r['X']:<4} H={r['H']:<4} "
            f"{r['what']:<8} ms: {times}  ratio {ratio} {ok}{flops}")


def peak_line(peaks: dict) -> str:
    return "matrix-multiply peak on these cores: " + ", ".join(f"{dt} {g:.1f} GFLOP/s" for dt, g in peaks.items())


def markdown(args, lines: list[str], rows: list[dict]) -> str:
    """The header, the command and the table, as markdown."""
    impls = [n for n in IMPLS if n in args.impls]
    head = ["cell", "dtype", "B, T, X, H", "what", *(f"{n} ms" for n in impls), "ratio (rounds' range)", "target",
            "GFLOP/s (peak)"]
    out = [f"# Kernels: {'one core' if args.cores == 'one' else 'all cores'}", "",
           "```text", "$ python " + shlex.join(["benchmarks/bench_kernels.py", *args.argv]), "```", "",
           *(f"- {line}" for line in lines),
           f"- {peak_line(args.peaks)}",
           "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ok = "" if r["ratio"] is None else ("holds" if r["ratio"] >= r["target"] else "not yet")
        ratio = "-" if r["ratio"] is None else (f"{_shown(r['ratio'])} "
                                                f"({_shown(min(r['ratios']))}–{_shown(max(r['ratios']))})")
        flops = f"{r['gflops']:.1f} ({100 * r['peak_fraction']:.0f}%)" if "gflops" in r else ""
        out.append(f"| {r['cell']} | {r['dtype']} | {r['B']}, {r['T']}, {r['X']}, {r['H']} | {r['what']} | "
                   + " | ".join(f"{r[f'{n}_ms']:.3f}" for n in impls)
                   + f" | {ratio} | {r['target']} {ok} | {flops} |")
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cores", choices=("one", "all"), default="one",
                   help="one core, every thread pool one thread; or all cores, each implementation's default threads")
    p.add_argument("--quick", action="store_true", help="two configs and three repeats")
    p.add_argument("--reps", type=int, default=5, help="rounds per measurement (the medians are shown)")
    p.add_argument("--budget", type=float, default=0.25, help="seconds of calls per timing")
    p.add_argument("--configs", default="0,1,2,3", help="which of the four configs (B, T, X, H), by index")
    p.add_argument("--cells", default="lstm,gru")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--impls", default="gategraph,pytorch,jax")
    p.add_argument("--json", help="also write the measurements to this file")
    p.add_argument("--markdown", help="also write the header and the table, with this command, to this file")
    args = p.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    args.cells, args.dtypes, args.impls = (s.split(",") for s in (args.cells, args.dtypes, args.impls))
    if args.quick:
        args.reps = min(args.reps, 3)
    use_cores(args.cores)
    load(args.impls)
    lines = header(args)
    print("\n".join(lines), flush=True)
    rows = run(args)
    print(peak_line(args.peaks))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": lines, "peaks": args.peaks, "rows": rows}, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(args, lines, rows))


if __name__ == "__main__":
    sys.exit(main())
