"""Time of the exact SymPy proof (`gategraph.check.sympy_exact`) for every built-in cell, at the default
sizes and T = 2: CPU seconds of this process (steady on a shared machine) and wall seconds, medians of
the repeats, SymPy's cache cleared before each.

    python benchmarks/bench_proof.py [--repeats 3] [--cells lstm,gru]
"""

from __future__ import annotations

import argparse
import statistics
import time

from sympy.core.cache import clear_cache

from gategraph.cells import CELLS
from gategraph.check import sympy_exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated cell names")
    args = parser.parse_args()
    print(f"{'cell':<20} {'entries':>7} {'CPU s':>8} {'wall s':>8}  proven")
    for name in args.cells.split(","):
        cell = CELLS[name.replace("-", "_")]()
        cpu, wall = [], []
        for _ in range(args.repeats):
            clear_cache()
            c, w = time.process_time(), time.perf_counter()
            rows = sympy_exact(cell)
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - w)
        ok = all(r.ok for r in rows)
        print(f"{name:<20} {sum(r.entries for r in rows):>7} {statistics.median(cpu):>8.2f} "
              f"{statistics.median(wall):>8.2f}  {'yes' if ok else 'NO'}", flush=True)


if __name__ == "__main__":
    main()
