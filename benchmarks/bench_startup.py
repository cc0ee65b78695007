"""Start-up: from `compile(...)` to a finished first backward pass, in fresh processes, with an empty
kernel cache, a warm one, and one another cell filled (medians of several processes each).

    python benchmarks/bench_startup.py [--runs 3] [--cells lstm,gru] [--dtype float32]

Imports (NumPy, SymPy, gategraph) happen before the clock starts: they are the same for any program that
uses gategraph. The clock starts at `compile()`, as the target is written; the cell's declaration before it
(SymPy building the equations, which on its first sum of matrices imports SymPy's tensor module) is timed
apart and printed beside. Numba's own import is inside the clock, because `compile` is what pulls it in.

Three figures per cell: an empty kernel cache (nothing of gategraph's compiled yet: the first cell a user ever
compiles), a warm one (the same cell again), and a new cell after another one (`rnn`) filled the cache: the
helpers every kernel of the dtype imports are compiled, the cell's own two passes are not (a user's own cell,
after the built-in ones).
Beside the seconds of the clock, the processor seconds of each whole process (user + system; not those of the
second process that compiles a new kernel's backward pass meanwhile on two cores or more, which the process
never waits for) and the load average before and after: on a shared machine the seconds say little without them.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile

CHILD = """
import time
import numpy as np
from gategraph import cells
from gategraph.kernel import compile
declared = time.perf_counter()
cell = cells.CELLS[{cell!r}]()
start = time.perf_counter()
k = compile(cell, 32, 64, {dtype!r})
p = k.init(0)
x = np.ones((10, 4, 32), {dtype!r})
out, _, tape = k.forward(p, x)
k.backward(p, x, out, tape=tape)
end = time.perf_counter()
print(end - start, start - declared)
"""


OTHER = "rnn"  # compiled before the third figure's cell, so that only what is the cell's own is left to compile


def once(cell: str, dtype: str, cache: str) -> tuple[float, float, float]:
    """(seconds from compile() to the first finished backward pass, processor seconds of the whole process,
    seconds the cell's declaration took before it)"""
    env = {**os.environ, "GATEGRAPH_CACHE_DIR": cache}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-c", CHILD.format(cell=cell, dtype=dtype)], capture_output=True,
                          text=True, env=env, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    clock, declaration = map(float, proc.stdout.strip().splitlines()[-1].split())
    return clock, cpu, declaration


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--cells", default="lstm,gru")
    p.add_argument("--dtype", default="float32")
    args = p.parse_args(argv)
    print(f"load average (1, 5, 15 min) {_load()}")
    for cell in args.cells.split(","):
        cold, warm, new = [], [], []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="gategraph-startup-") as cache:
                cold.append(once(cell, args.dtype, cache))
                warm += [once(cell, args.dtype, cache) for _ in range(2)]
            with tempfile.TemporaryDirectory(prefix="gategraph-startup-") as cache:
                once(OTHER, args.dtype, cache)  # another cell first: the helpers of the dtype are cached
                new.append(once(cell, args.dtype, cache))
        med = {k: [statistics.median(run[i] for run in v) for i in range(3)]
               for k, v in (("cold", cold), ("warm", warm), ("new", new))}
        print(f"{cell:<5} {args.dtype}: empty cache {med['cold'][0]:5.2f} s (target 5), "
              f"warm cache {med['warm'][0]:5.2f} s (target 0.5), "
              f"a new cell after another ({OTHER}) {med['new'][0]:5.2f} s; "
              f"runs: {', '.join(f'{run[0]:.2f}' for run in cold)} | {', '.join(f'{run[0]:.2f}' for run in warm)}"
              f" | {', '.join(f'{run[0]:.2f}' for run in new)}; "
              f"processor seconds per process (the first): {med['cold'][1]:.2f} | {med['warm'][1]:.2f} | "
              f"{med['new'][1]:.2f}; "
              f"the cell's declaration before compile(): {med['cold'][2]:.2f} | {med['warm'][2]:.2f} s")
    print(f"load average (1, 5, 15 min) {_load()}")


if __name__ == "__main__":
    sys.exit(main())
