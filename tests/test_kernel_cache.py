"""The kernel cache filled by several processes at once, as a sweep's workers fill it: they all succeed, they
agree, and one of them compiles while the others load what it wrote."""

import os
import subprocess
import sys

# one process: compile the simple RNN, run a forward and a backward pass on fixed numbers, print a digest
WORKER = """
import hashlib
import numpy as np
import gategraph
from gategraph import cells

k = gategraph.compile(cells.rnn(), input_size=3, hidden_size=4, dtype="float64")
params = k.init(seed=0)
x = np.random.default_rng(1).normal(size=(6, 2, 3))
h, final, tape = k.forward(params, x)
grads = k.backward(params, x, np.ones_like(h), tape=tape)
digest = hashlib.sha256(h.tobytes() + b"".join(grads[n].tobytes() for n in sorted(grads)))
print("digest", digest.hexdigest())
"""


def test_processes_filling_an_empty_cache_at_once_agree_and_compile_once(tmp_path):
    env = {**os.environ, "GATEGRAPH_CACHE_DIR": str(tmp_path), "NUMBA_DEBUG_CACHE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env) for _ in range(3)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    digests = {line for out in outs for line in out.splitlines() if line.startswith("digest")}
    assert len(digests) == 1, outs
    # Numba says where it saves machine code: each pass is compiled and saved by one process only
    for which in ("forward", "backward"):
        compiled = [out for out in outs if any(line.startswith("[cache] data saved to") and f".{which}-" in line
                                               for line in out.splitlines())]
        assert len(compiled) == 1, (which, outs)
    assert len(list(tmp_path.glob("gg_*.py"))) == 1
