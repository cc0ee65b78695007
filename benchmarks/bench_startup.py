"""Start-up: from `compile(...)` to a finished first backward pass, in fresh processes, with an empty
kernel cache and with a warm one (medians of several processes each).

    python benchmarks/bench_startup.py [--runs 3] [--cells lstm,gru] [--dtype float32]

Imports (NumPy, SymPy, gategraph) happen before the clock starts: they are the same for any program that
uses gategraph. Numba's own import is inside the clock, because `compile` is what pulls it in.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = """
import time
import numpy as np
from gategraph import cells
from gategraph.kernel import compile
start = time.perf_counter()
k = compile(cells.CELLS[{cell!r}](), 32, 64, {dtype!r})
p = k.init(0)
x = np.ones((10, 4, 32), {dtype!r})
out, _, tape = k.forward(p, x)
k.backward(p, x, out, tape=tape)
print(time.perf_counter() - start)
"""


def once(cell: str, dtype: str, cache: str) -> float:
    env = {**os.environ, "GATEGRAPH_CACHE_DIR": cache}
    proc = subprocess.run([sys.executable, "-c", CHILD.format(cell=cell, dtype=dtype)], capture_output=True,
                          text=True, env=env, check=True)
    return float(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--cells", default="lstm,gru")
    p.add_argument("--dtype", default="float32")
    args = p.parse_args(argv)
    for cell in args.cells.split(","):
        cold, warm = [], []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="gategraph-startup-") as cache:
                cold.append(once(cell, args.dtype, cache))
                warm += [once(cell, args.dtype, cache) for _ in range(2)]
        print(f"{cell:<5} {args.dtype}: empty cache {statistics.median(cold):5.2f} s (target 5), "
              f"warm cache {statistics.median(warm):5.2f} s (target 0.5); "
              f"runs: {', '.join(f'{t:.2f}' for t in cold)} | {', '.join(f'{t:.2f}' for t in warm)}")


if __name__ == "__main__":
    sys.exit(main())
