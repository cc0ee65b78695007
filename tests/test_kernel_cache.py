"""The kernel cache filled by several processes at once, as a sweep's workers fill it: they all succeed, they
agree, and one of them compiles while the others load what it wrote."""

import os
import shutil
import subprocess
import sys

import pytest

from gategraph import blas
from tests.conftest import ROOT

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
print("backward compiled here", sum(k._backward.stats.cache_misses.values()))
"""


def test_processes_filling_an_empty_cache_at_once_agree_and_compile_once(tmp_path):
    env = {**os.environ, "GATEGRAPH_CACHE_DIR": str(tmp_path), "NUMBA_DEBUG_CACHE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env) for _ in range(3)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    digests = {line for out in outs for line in out.splitlines() if line.startswith("digest")}
    assert len(digests) == 1, outs
    # Numba says where it saves machine code: each pass is compiled and saved by one process only (the backward
    # pass, on two cores, by the second process one of them started, which writes nothing to their output)
    saved = {which: [out for out in outs if any(line.startswith("[cache] data saved to") and f".{which}-" in line
                                                for line in out.splitlines())] for which in ("forward", "backward")}
    assert len(saved["forward"]) == 1, outs
    here = sum(int(line.split()[-1]) for out in outs for line in out.splitlines() if line.startswith("backward"))
    assert len(saved["backward"]) == here <= 1, outs
    assert len(list(tmp_path.glob("__pycache__/*.backward-*.nbc"))) == 1  # one entry, of the one signature
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


# one process, an empty cache: the LSTM's and an attention cell's passes run once; printed per cell: how many
# backward passes were loaded from the cache and compiled here, a digest of the gradients, and the share of the
# wall time counted as compiling (gategraph.compiling.numba_seconds, which a run leaves out of its seconds)
BESIDE = """
import hashlib, time
import numpy as np
from gategraph import cells
from gategraph.compiling import numba_seconds
from gategraph.kernel import compile
import gategraph.kernel as kernel
{patch}
rng = np.random.default_rng(0)
for cell, memory in ((cells.lstm(), None), (cells.attention("additive"), {{"M": rng.normal(size=(2, 3, 4))}})):
    start = time.perf_counter()
    with numba_seconds() as spent:
        k = compile(cell, 3, 4, "float64", A=2) if memory else compile(cell, 3, 4, "float64")
        params, x = k.init(0), rng.normal(size=(5, 2, 4 if memory else 3))
        out, _, tape = k.forward(params, x, memory=memory)
        outs = out if isinstance(out, dict) else {{cell.outputs[0]: out}}
        grads = k.backward(params, x, {{o: np.ones_like(v) for o, v in outs.items()}}, memory=memory, tape=tape)
    wall = time.perf_counter() - start
    digest = hashlib.sha256(b"".join(grads[n].tobytes() for n in sorted(grads))).hexdigest()[:16]
    stats = k._backward.stats
    print(cell.name, sum(stats.cache_hits.values()), sum(stats.cache_misses.values()), digest,
          round(spent() / wall, 3))
"""


def _beside(folder, patch="", cores=None):
    """Run BESIDE in a fresh process with an empty cache in `folder`: its output, and per cell (loaded, compiled,
    digest, share counted)."""
    env = {**os.environ, "GATEGRAPH_CACHE_DIR": str(folder)}
    env.pop("OMP_NUM_THREADS", None)
    if cores:
        env["OMP_NUM_THREADS"] = str(cores)
    proc = subprocess.run([sys.executable, "-c", BESIDE.format(patch=patch)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = {}
    for line in proc.stdout.splitlines():
        name, loaded, compiled, digest, counted = line.split()
        runs[name] = (int(loaded), int(compiled), digest, float(counted))
    assert sorted(runs) == ["attention_additive", "lstm"], proc.stdout
    return proc, runs


two_cores = pytest.mark.skipif(blas.cores() < 2, reason="a second process compiles only beside a second core")


@two_cores
def test_from_an_empty_cache_a_second_process_compiles_the_backward_pass_meanwhile(tmp_path):
    proc, runs = _beside(tmp_path / "two")
    _, alone = _beside(tmp_path / "one", cores=1)  # one core: no second process, each pass compiled here
    for name, (loaded, compiled, digest, counted) in runs.items():
        assert (loaded, compiled) == (1, 0), proc.stdout  # the second process typed its arguments as the kernel
        assert alone[name][:2] == (0, 1) and digest == alone[name][2], (runs, alone)  # the same numbers
        assert counted > 0.9, proc.stdout  # the wait for it counts as compiling, which a run leaves out
    assert len(list((tmp_path / "two" / "__pycache__").glob("*.backward-*.nbc"))) == 2  # one entry each
    assert not proc.stderr.strip(), proc.stderr


@two_cores
def test_a_second_process_that_fails_says_so_in_a_line_and_this_one_compiles_the_pass(tmp_path):
    proc, runs = _beside(tmp_path / "kinds", "kernel._backward_kinds = lambda made, cell: ['no such kind']")
    assert all(r[:2] == (0, 1) for r in runs.values()), proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and all("backward pass did not compile beside its forward pass" in s for s in lines), \
        proc.stderr
    proc, runs = _beside(tmp_path / "ended", "kernel._SECOND = 'import sys; sys.exit(3)'")  # ended, silently
    assert all(r[:2] == (0, 1) for r in runs.values()), proc.stdout


@two_cores
def test_python_embedded_in_another_program_starts_no_second_process(tmp_path):
    """Where Python runs inside another program (an editor, a web server), `sys.executable` names that program,
    and a second process would be another of it: the passes then compile in this process."""
    proc, runs = _beside(tmp_path, "import subprocess, sys; sys.executable = '/usr/bin/blender'; "
                                   "subprocess.Popen = None  # (any process started would fail the run)")
    assert all(r[:2] == (0, 1) for r in runs.values()), proc.stdout


def test_the_second_process_starts_without_sympy():
    """The second process imports gategraph.kernel (and Numba through gategraph.compiling) to compile a
    generated module: none of them may import SymPy, a third of its imports, on the way to the backward pass."""
    code = ("import sys, gategraph.kernel, gategraph.compiling\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sympy', 'mpmath'}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


def test_a_process_whose_gategraph_files_changed_names_no_plan_and_says_restart(tmp_path):
    """A kernel's plan is named after the package's modules as the process imported them. Once the files change
    under a running process (an upgrade, an edit), it runs some old modules and some new ones, and a plan it made
    would be found by the new code's processes: `compile` refuses in one line, and writes nothing."""
    shutil.copytree(ROOT / "gategraph", tmp_path / "site" / "gategraph", ignore=shutil.ignore_patterns("__pycache__"))
    code = ("import pathlib\n"
            "import gategraph\n"
            "from gategraph import cells, plan\n"
            "from gategraph.kernel import compile\n"
            "print(len(plan.key(cells.rnn(), 'float32')))\n"
            "lower = pathlib.Path(gategraph.__file__).parent / 'lower.py'\n"
            "lower.write_text(lower.read_text() + '# an edit\\n')\n"
            "try:\n"
            "    compile('rnn', 2, 3)\n"
            "except gategraph.GategraphError as e:\n"
            "    print(e)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "GATEGRAPH_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["24", "gategraph's files changed after this Python process imported it (an "
                                        "upgrade or an edit): restart Python to compile kernels"], proc.stdout
    assert not list((tmp_path / "cache").glob("plan_*"))
