"""What priming the kernels' BLAS buys (gategraph.blas, "Priming"): forward + backward, in fresh processes
on one core, with the one 512³ float32 product that gategraph makes before the first pass and without it.

    python benchmarks/bench_priming.py [--runs 3] [--cells lstm,gru] [--configs 1,2] [--dtype float32]

Each process trains nothing: it compiles the kernel (from the warm cache), makes the first pass, then times
`--calls` forward + backward pairs; the median is its result, and the median over `--runs` processes is
shown. Ratio = unprimed ÷ primed (above 1: priming pays). The kernel benchmark (bench_kernels.py) cannot
show this: its GEMM-peak measurement primes the BLAS before any kernel runs. The processes start OpenBLAS on
one thread; one that starts it on all cores and drops to one thread for a pass, as training does, is primed
alike (forward + backward of the LSTM at (32, 50, 32, 64): 16.0 ms unprimed, 12.5 ms primed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

from bench_kernels import CONFIGS, ONE_THREAD

CHILD = """
import os, statistics, time
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {{{cpu}}})
import numpy as np
from gategraph import blas, cells
from gategraph.kernel import compile
if not {primed}:
    blas._prime = lambda sgemm: False
B, T, X, H = {config}
k = compile(cells.CELLS[{cell!r}](), X, H, {dtype!r})
p = k.init(0)
rng = np.random.default_rng(0)
x = rng.standard_normal((T, B, X)).astype({dtype!r})
y = rng.standard_normal((B, H)).astype({dtype!r})
def pair():
    _, final, tape = k.forward(p, x)
    k.backward(p, x, None, {{"h": final["h"] - y}}, tape=tape)
pair()
assert blas.KERNEL_BLAS.primed == {primed}
times = []
for _ in range({calls}):
    start = time.perf_counter()
    pair()
    times.append(time.perf_counter() - start)
print(statistics.median(times))
"""


def once(cell: str, config: tuple, dtype: str, primed: bool, calls: int) -> float:
    """Seconds per forward + backward pair in a fresh process on one core (the median of `calls`)."""
    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    code = CHILD.format(cell=cell, config=config, dtype=dtype, primed=primed, calls=calls, cpu=cpu)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **ONE_THREAD})
    if out.returncode:
        sys.exit(f"the {'primed' if primed else 'unprimed'} process failed:\n{out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--cells", default="lstm,gru")
    p.add_argument("--configs", default="1,2", help="which of bench_kernels' four configs (B, T, X, H), by index")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--calls", type=int, default=30)
    args = p.parse_args(argv)
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; one core, one BLAS thread")
    for cell in args.cells.split(","):
        for i in args.configs.split(","):
            config = CONFIGS[int(i)]
            ms = {primed: [] for primed in (False, True)}
            for run in range(args.runs):  # alternating, each first in turn: the machine's drift hits both
                for primed in ((False, True) if run % 2 == 0 else (True, False)):
                    ms[primed].append(1e3 * once(cell, config, args.dtype, primed, args.calls))
            unprimed, primed = statistics.median(ms[False]), statistics.median(ms[True])
            print(f"{cell:<5} {args.dtype} B, T, X, H = {config}: fwd+bwd unprimed {unprimed:8.2f} ms, "
                  f"primed {primed:8.2f} ms, ratio {unprimed / primed:4.2f}")
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    sys.exit(main())
