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


# one process: two cells lowered first, then compiled by two threads at once, so that both reach the helpers'
# module (gategraph.helpers) together
THREADS = """
import threading
import numpy as np
from gategraph import cells
from gategraph.kernel import _plan, compile

made = [cells.lstm(), cells.gru_reset_after()]
for cell in made:
    _plan(cell, "float32")
errors = []

def run(cell):
    try:
        k = compile(cell, 3, 4, "float32")
        p, x = k.init(0), np.ones((2, 1, 3), np.float32)
        out, _, tape = k.forward(p, x)
        k.backward(p, x, np.ones_like(out), tape=tape)
    except BaseException as e:
        errors.append(repr(e))

threads = [threading.Thread(target=run, args=(cell,)) for cell in made]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("errors", errors)
"""


def test_threads_compiling_two_cells_at_once_share_helpers_compiled_once(tmp_path):
    env = {**os.environ, "GATEGRAPH_CACHE_DIR": str(tmp_path), "NUMBA_DEBUG_CACHE": "1"}
    proc = subprocess.run([sys.executable, "-c", THREADS], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and "errors []" in proc.stdout, proc.stdout + proc.stderr
    saved = [line.split("__pycache__")[-1] for line in proc.stdout.splitlines()
             if line.startswith("[cache] data saved to") and "helpers_" in line]
    assert saved and len(saved) == len(set(saved)), saved  # no helper compiled twice (none thrown away)


# one process: one cell's module imported by two threads at once, its run slowed so that the second thread asks
# for it while the first one is running it
SAME_MODULE = """
import contextlib, threading, time
from gategraph import cells, compiling, kernel

made = kernel._plan(cells.rnn(), "float64")
kernel._helpers("float64")
running, inside = compiling.cached_loads, threading.Event()

@contextlib.contextmanager
def slowly():
    with running():
        inside.set()  # the module is registered and about to run
        time.sleep(0.5)
        yield

compiling.cached_loads = slowly
got, modules, errors = [], [], []

def load():
    try:
        module = kernel._load(made, "float64")
        got.append(sorted(n for n in ("forward", "backward") if hasattr(module, n)))
        modules.append(module)
    except BaseException as e:
        errors.append(repr(e))

threads = [threading.Thread(target=load) for _ in range(2)]
threads[0].start()
inside.wait(60)
threads[1].start()
for t in threads:
    t.join()
print("got", got, "errors", errors, "one module", len({id(m) for m in modules}) == 1)
"""


def test_a_thread_never_gets_a_kernel_module_another_thread_is_still_running(tmp_path):
    env = {**os.environ, "GATEGRAPH_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", SAME_MODULE], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    both = "got [['backward', 'forward'], ['backward', 'forward']] errors [] one module True"
    assert both in proc.stdout, proc.stdout
