"""One step's product u · S, a batch u of B rows times stacked weights S (the recurrent half of every gate at once),
as the kernels compute it (gategraph.helpers: `_product`): as it is, through BLAS, and flipped, (Sᵀ · uᵀ)ᵀ with the
copy back into u · S's rows. Ratio = as it is ÷ flipped (above 1: flipping pays). Flipping also makes Sᵀ once per
pass (`_flipped`): its time is shown beside, to weigh against T steps' gain. The last column says whether the
helpers' rule (`_flipped` itself: FLIP_AT, FLIP_ROWS, FLIP_STEPS) flips that product in a pass of STEPS steps.

    python benchmarks/bench_step_product.py [--cores one|all] [--dtypes float32,float64] [--markdown FILE]

Medians of --reps timings of --budget seconds each, alternating the two forms.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys

from bench_kernels import blas_report, cpu_report, per_call, use_cores

SHAPES = [(1, 512, 2048), (8, 256, 1024), (32, 128, 512), (32, 256, 512), (32, 256, 1024), (32, 1024, 256),
          (32, 512, 2048), (32, 2048, 512), (64, 128, 512), (64, 512, 2048), (128, 512, 2048), (256, 512, 1024)]


STEPS = 35  # the kernel benchmark's largest config's T


def measure(dtype: str, B: int, K: int, N: int, reps: int, budget: float) -> tuple[float, float, float, bool]:
    """(µs as it is, µs flipped, µs making Sᵀ, whether the rule flips) for u (B × K) · S (K × N)."""
    import numpy as np

    from gategraph.kernel import _helpers

    module = _helpers(dtype)["arrays"]
    rng = np.random.default_rng(0)
    u, s, out = rng.normal(size=(B, K)).astype(dtype), rng.normal(size=(K, N)).astype(dtype), np.empty((B, N), dtype)
    st, f, none = np.ascontiguousarray(s.T), np.empty((N, B), dtype), np.empty((0, 0), dtype)
    plain, flipped, transposed = [], [], []
    for _ in range(reps):
        plain.append(per_call(lambda: module._product(u, s, none, none, out, 0, False), budget))
        flipped.append(per_call(lambda: module._product(u, s, st, f, out, 0, False), budget))
        transposed.append(per_call(lambda: module._copy(st, 0, 0, s, 0, 0, N, K, True, False), budget))
    rule = module._flipped(s, B, STEPS, False)[0].size > 0
    return (statistics.median(plain) * 1e6, statistics.median(flipped) * 1e6, statistics.median(transposed) * 1e6,
            rule)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cores", choices=["one", "all"], default="one")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--budget", type=float, default=0.1)
    p.add_argument("--markdown", help="also write the header and the table, with this command, to this file")
    args = p.parse_args(argv)
    use_cores(args.cores)
    model, vector = cpu_report()
    import gategraph.kernel  # noqa: F401  (its BLAS loaded, for the header)

    lines = [f"CPU: {model}; vector extensions: {', '.join(vector) or 'none reported'}; {args.cores} core"
             + ("s" if args.cores == "all" else ""),
             *(f"BLAS: {b}" for b in blas_report())]
    rows = ["| dtype | B | S | as it is µs | flipped µs | ratio | Sᵀ once µs | the rule flips |",
            "|---|---|---|---|---|---|---|---|"]
    for line in lines:
        print(line, flush=True)
    for dtype in args.dtypes.split(","):
        for B, K, N in SHAPES:
            plain, flipped, transposed, rule = measure(dtype, B, K, N, args.reps, args.budget)
            row = (f"| {dtype} | {B} | {K} × {N} | {plain:.1f} | {flipped:.1f} | {plain / flipped:.2f} | "
                   f"{transposed:.1f} | {'yes' if rule else 'no'} |")
            rows.append(row)
            print(row, flush=True)
    if args.markdown:
        command = "python benchmarks/bench_step_product.py " + shlex.join(argv if argv is not None else sys.argv[1:])
        title = f"# A step's product, as it is and flipped ({'one core' if args.cores == 'one' else 'all cores'})"
        with open(args.markdown, "w") as out:
            out.write(f"{title}\n\n```text\n$ {command}\n```\n\n" + "".join(f"- {line}\n" for line in lines) + "\n"
                      + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
