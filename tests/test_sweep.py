"""Sweeps on a real Dask LocalCluster of two workers, started by `gategraph sweep` as a user starts it: tiny
runs that complete, survive a worker killed with kill -9, stop on Ctrl-C and go on with --resume, and report
a failing run without stopping the others."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gategraph
from gategraph.errors import UsageError
from gategraph.sweep import check_output, read_spec
from gategraph.train import load_run
from tests.conftest import ROOT

TINY = """
hidden = 8
batch = 8
test_size = 32
eval_every = 10
save_every = 10
"""


@pytest.fixture(scope="module")
def warm_kernels():
    """The session's kernel cache holds the two cells these sweeps train (the workers load them from it), so
    that the tests time sweeps, not the compiler."""
    for cell in ("rnn", "gru"):
        k = gategraph.compile(cell, input_size=2, hidden_size=8)
        h, _, tape = k.forward(k.init(), np.zeros((3, 2, 2), np.float32))
        k.backward(k.init(), np.zeros((3, 2, 2), np.float32), np.ones_like(h), tape=tape)


@pytest.fixture
def processes(warm_kernels):
    """Popen objects to stop at the end of the test, whatever happened (the kernels warm in the cache)."""
    started = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def spec(tmp_path, text: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(text + TINY)
    return path


def sweep(processes, *args, cwd):
    """`gategraph sweep ARGS` in its own process, with its output."""
    proc = subprocess.Popen([sys.executable, "-m", "gategraph.cli", "sweep", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    processes.append(proc)
    return proc


def results(out: Path) -> dict:
    return {f.parent.name: json.loads(f.read_text()) for f in out.glob("*/result.json")}


def wait_for(condition, proc, seconds=240):
    end = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "waited too long"
        time.sleep(0.05)


def test_a_two_by_two_by_two_sweep_completes_into_ordinary_runs(tmp_path, processes):
    path = spec(tmp_path, 'cells = ["rnn", "gru"]\ntasks = ["adding", "future"]\nseeds = [0, 1]\nsteps = 20\n'
                          "length = 10\n")
    proc = sweep(processes, path, "-o", tmp_path / "out", "--workers", 2, cwd=tmp_path)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "on 2 Dask workers; dashboard: http" in stderr
    assert stderr.count("test_") == 8  # a line per finished run, with its score
    got = results(tmp_path / "out")
    assert sorted(got) == sorted(f"{c}-{t}-seed{s}" for c in ("rnn", "gru") for t in ("adding", "future")
                                 for s in (0, 1))
    assert {r["status"] for r in got.values()} == {"done"} and {r["step"] for r in got.values()} == {20}
    with open(tmp_path / "out" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["setting"], r["done"]) for r in rows] == [("rnn-adding", "2"), ("rnn-future", "2"),
                                                         ("gru-adding", "2"), ("gru-future", "2")]
    seeds = [got[f"gru-future-seed{s}"]["score"] for s in (0, 1)]
    assert float(rows[3]["mean"]) == pytest.approx(sum(seeds) / 2)
    assert "gru-future" in stdout and "test_accuracy" in stdout and "±" in stdout
    # each point is an ordinary run directory: it loads and scores as `gategraph evaluate` does it
    run = load_run(tmp_path / "out" / "gru-future-seed1")
    assert run.step == 20 and run.evaluate() == pytest.approx(got["gru-future-seed1"]["score"])
    for plot in ("curves-adding.png", "final-adding.png", "curves-future.png", "final-future.png"):
        assert (tmp_path / "out" / plot).read_bytes()[:4] == b"\x89PNG"


def test_a_worker_killed_mid_run_is_replaced_and_its_run_goes_on_from_its_checkpoint(tmp_path, processes):
    path = spec(tmp_path, 'cells = ["rnn"]\ntasks = ["adding"]\nseeds = [0, 1, 2]\nsteps = 400\nlength = 20\n')
    out = tmp_path / "out"
    proc = sweep(processes, path, "-o", out, "--workers", 2, cwd=tmp_path)
    victim = out / "rnn-adding-seed0"

    def training_past_a_checkpoint():  # the worker that holds the run's lock wrote its pid into it
        lock = victim / ".lock"
        return (victim / "checkpoint.npz").exists() and lock.exists() and lock.read_text().strip().isdigit()

    wait_for(training_past_a_checkpoint, proc)
    os.kill(int((victim / ".lock").read_text()), signal.SIGKILL)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    got = results(out)
    assert [got[f"rnn-adding-seed{s}"]["step"] for s in range(3)] == [400] * 3
    assert got["rnn-adding-seed0"]["resumed"] > 0  # from its checkpoint, not from the start
    assert load_run(victim).step == 400


def test_resume_after_ctrl_c_finishes_only_what_was_missing(tmp_path, processes):
    path = spec(tmp_path, 'cells = ["rnn"]\ntasks = ["adding"]\nseeds = [0, 1, 2, 3, 4]\nsteps = 150\n'
                          "length = 10\n")
    out = tmp_path / "out"
    proc = sweep(processes, path, "-o", out, "--workers", 2, cwd=tmp_path)
    wait_for(lambda: any(r["status"] == "done" for r in results(out).values()), proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr
    finished = {name: (out / name / "result.json").stat().st_mtime_ns for name, r in results(out).items()
                if r["status"] == "done"}
    assert 1 <= len(finished) < 5
    # the runs under way saved where they stopped (not only every save_every steps)
    stopped = {name: r["step"] for name, r in results(out).items() if r["status"] == "stopped"}
    assert all(load_run(out / name).step == step for name, step in stopped.items())

    again = sweep(processes, path, "-o", out, "--resume", "--workers", 2, cwd=tmp_path)
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    assert f"({len(finished)} finished before)" in stderr
    assert stderr.count("test_mse") == 5 - len(finished)  # only the missing runs ran
    got = results(out)
    assert sorted(got) == [f"rnn-adding-seed{s}" for s in range(5)]
    assert all(r["status"] == "done" and r["step"] == 150 for r in got.values())
    assert {name: got[name]["resumed"] for name in stopped} == stopped  # each went on from where it stopped
    assert {n: (out / n / "result.json").stat().st_mtime_ns for n in finished} == finished  # left as they were


CTRL_C_BEFORE_THE_LOOP = """
import signal, sys, threading, time
from gategraph import sweep

dropped, drops = [], sweep._SYNC_CANCELLED.filter
sweep._SYNC_CANCELLED.filter = lambda record: drops(record) or dropped.append(record) or False
with sweep.local_cluster(1) as client:
    client.loop.add_callback(time.sleep, 0.5)  # the event loop busy: the next call's coroutine has not begun
    threading.Timer(0.1, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)).start()
    try:
        client.nthreads()
    except KeyboardInterrupt:
        print("interrupted")
    time.sleep(1)  # the loop runs the call's cancel
    client.loop.add_callback(lambda: 1 / 0)  # another error in the loop is still shown
    time.sleep(0.5)
print("dropped", len(dropped))
"""


def test_a_ctrl_c_before_the_cluster_began_a_call_prints_no_traceback_of_dask(tmp_path):
    """distributed's sync(), interrupted before its coroutine began, logs a NameError from its cancel."""
    proc = subprocess.run([sys.executable, "-c", CTRL_C_BEFORE_THE_LOOP], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == "interrupted\ndropped 1\n", proc.stdout + proc.stderr
    assert "NameError" not in proc.stderr, proc.stderr
    assert "ZeroDivisionError" in proc.stderr


def test_a_failing_run_is_reported_and_the_others_finish(tmp_path, processes):
    (tmp_path / "broken.py").write_text("def broken():\n    raise ValueError('no cell today')\n")
    path = spec(tmp_path, 'cells = ["rnn", "broken.py:broken"]\ntasks = ["adding"]\nseeds = [0, 1]\nsteps = 20\n'
                          "length = 10\n")
    proc = sweep(processes, path, "-o", tmp_path / "out", "--workers", 2, cwd=tmp_path)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr
    assert "2 of 4 runs failed" in stderr
    got = results(tmp_path / "out")
    assert [got[f"rnn-adding-seed{s}"]["status"] for s in (0, 1)] == ["done", "done"]
    for s in (0, 1):
        error = got[f"broken-adding-seed{s}"]["error"]
        assert "broken.py:broken() failed: ValueError: no cell today" in error and "\n" not in error
        assert f"failed: broken-adding-seed{s}: " in stdout
    with open(tmp_path / "out" / "runs.csv") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["done", "done", "failed", "failed"]


def test_a_spec_names_its_grid_and_its_mistakes_in_one_line(tmp_path):
    (tmp_path / "cells").mkdir()
    (tmp_path / "cells" / "mine.py").write_text("")
    path = spec(tmp_path, 'cells = ["lstm", "cells/mine.py:mgu"]\ntasks = ["adding"]\nseeds = [0, 1]\n'
                          "lr = [0.01, 0.003]\nsteps = 5\n")
    points = read_spec(path)
    assert [p.name for p in points][:4] == ["lstm-adding-lr0.01-seed0", "lstm-adding-lr0.01-seed1",
                                            "lstm-adding-lr0.003-seed0", "lstm-adding-lr0.003-seed1"]
    assert len(points) == 8 and points[-1].setting == "mgu-adding-lr0.003"
    assert points[-1].config.cell == f"{tmp_path / 'cells' / 'mine.py'}:mgu"  # found next to the spec
    assert points[0].config.hidden == 8 and points[0].config.steps == 5
    (tmp_path / "out" / points[3].name).mkdir(parents=True)  # a sweep started there before
    with pytest.raises(UsageError, match="holds runs of this sweep already .* --resume"):
        check_output(points, tmp_path / "out", resume=False)
    check_output(points, tmp_path / "out", resume=True)
    for text, message in [('cells = ["lstm"]\ntasks = ["adding"]\nlearning_rate = 1', "no setting 'learning_rate'"),
                          ('tasks = ["adding"]', "names no cells"),
                          ('cells = ["lsmt"]\ntasks = ["adding"]', "unknown cell 'lsmt'"),
                          ('cells = ["lstm"]\ntasks = ["adding"]\nlr = [0.1, -1]', "learning rate"),
                          ('cells = ["lstm"]\ntasks = ["adding"]\nlayers = "two"', "'layers' is \"two\""),
                          ('cells = ["x.py:f"]\ntasks = ["adding"]', "the cell file x.py does not exist"),
                          ('cells = ["lstm"\n', "not valid TOML")]:
        with pytest.raises(UsageError, match=message.replace("(", r"\(")):
            read_spec(spec(tmp_path, text))


def test_the_example_spec_reads():
    points = read_spec(ROOT / "examples" / "adding-sweep.toml")
    assert len({p.setting for p in points}) == 3 and len(points) == 15
