"""Run directories under faults, through the command a user types: damaged files, two processes on one
folder, Ctrl-C at any moment, settings that cannot work. Each is one line on stderr, never a traceback, and
the folder is left as it was (or consistent)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from gategraph.train import Config, load_run, train
from tests.conftest import ROOT, run_cli

SMALL = dict(cell="lstm", task="adding", hidden=4, batch=4, eval_every=10, save_every=10, test_size=8,
             task_options={"T": 6})


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """A finished run of 20 steps, saved at steps 10 and 20 (so checkpoint.prev.npz is of step 10)."""
    folder = tmp_path_factory.mktemp("runs") / "good"
    train(Config(steps=20, **SMALL), folder)
    return folder


def _rewrite_npz(path, change):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _meta(change):
    def edit(arrays):
        meta = json.loads(str(arrays["meta"]))
        change(meta)
        arrays["meta"] = np.array(json.dumps(meta))
    return edit


def _flip(path, where):
    data = bytearray(path.read_bytes())
    data[where(len(data))] ^= 0x40
    path.write_bytes(bytes(data))


def _config(path, change):
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


CK, CF = "checkpoint.npz", "config.json"
DAMAGES = {  # name: (file, how to damage it, what the one line says)
    "checkpoint truncated": (CK, lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "cut short"),
    "checkpoint empty": (CK, lambda p: p.write_bytes(b""), "it is empty"),
    "checkpoint random": (CK, lambda p: p.write_bytes(np.random.default_rng(0).bytes(5000)), "not an .npz archive"),
    "checkpoint byte flipped in data": (CK, lambda p: _flip(p, lambda n: n // 2), "damaged"),
    "checkpoint byte flipped at the start": (CK, lambda p: _flip(p, lambda n: 0), "not an .npz archive"),
    "checkpoint byte flipped near the end": (CK, lambda p: _flip(p, lambda n: n - 30), "checkpoint.npz"),
    "checkpoint is text": (CK, lambda p: p.write_text("hello"), "not an .npz archive"),
    "checkpoint is a .npy": (CK, lambda p: np.save(open(p, "wb"), np.zeros(3)), "not an .npz archive"),
    "checkpoint missing": (CK, lambda p: p.unlink(), "is not a run directory (no checkpoint.npz)"),
    "checkpoint is a folder": (CK, lambda p: (p.unlink(), p.mkdir()), "is a folder"),
    "object arrays": (CK, lambda p: _rewrite_npz(p, lambda a: a.update(x=np.array([{}], dtype=object))),
                      "Python objects"),
    "metadata missing": (CK, lambda p: _rewrite_npz(p, lambda a: a.pop("meta")), "'meta' entry is missing"),
    "metadata not JSON": (CK, lambda p: _rewrite_npz(p, lambda a: a.update(meta=np.array("{step: 3"))),
                          "not valid JSON"),
    "metadata without rng": (CK, lambda p: _rewrite_npz(p, _meta(lambda m: m.pop("rng"))), "has no 'rng'"),
    "metadata a list": (CK, lambda p: _rewrite_npz(p, lambda a: a.update(meta=np.array("[1, 2]"))),
                        "not a JSON object"),
    "metadata step a string": (CK, lambda p: _rewrite_npz(p, _meta(lambda m: m.update(step="20"))),
                               "'step' of its run record is not a int"),
    "generator state wrong": (CK, lambda p: _rewrite_npz(p, _meta(lambda m: m.update(rng={"state": 1}))),
                              "does not load"),
    "a parameter missing": (CK, lambda p: _rewrite_npz(p, lambda a: a.pop("p/out.b")), "no parameter 'out.b'"),
    "a parameter of another shape": (CK, lambda p: _rewrite_npz(p, lambda a: a.update({"p/out.b": np.zeros(3)})),
                                     "does not fit config.json"),
    "config truncated": (CF, lambda p: p.write_bytes(p.read_bytes()[:40]), "not valid JSON"),
    "config empty": (CF, lambda p: p.write_bytes(b""), "it is empty"),
    "config binary": (CF, lambda p: p.write_bytes(b"\x89\xff\x00\xfe" * 20), "it is not text"),
    "config a list": (CF, lambda p: p.write_text("[1, 2]"), "holds a JSON list"),
    "config unknown key": (CF, lambda p: _config(p, lambda c: c.update(hiden=16)), "unknown setting 'hiden'"),
    "config value of a wrong type": (CF, lambda p: _config(p, lambda c: c.update(hidden="8")),
                                     "'hidden' is \"8\", not a int"),
    "config unknown cell": (CF, lambda p: _config(p, lambda c: c.update(cell="lstmm")), "unknown cell 'lstmm'"),
    "config of another model": (CF, lambda p: _config(p, lambda c: c.update(hidden=5)), "does not fit config.json"),
    "config missing": (CF, lambda p: p.unlink(), "is not a run directory (no config.json)"),
}


def _damaged(good_run, tmp_path, name):
    folder = tmp_path / "run"
    shutil.copytree(good_run, folder)
    file, damage, _ = DAMAGES[name]
    damage(folder / file)
    return folder


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _one_line(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("gategraph: error: ")
    for f in fragments:
        assert f in proc.stderr, proc.stderr


@pytest.mark.parametrize("name", list(DAMAGES))
def test_a_damaged_run_is_one_line_naming_the_file(good_run, tmp_path, name):
    folder = _damaged(good_run, tmp_path, name)
    before = _snapshot(folder)
    proc = run_cli("evaluate", folder, check=False)
    _one_line(proc, DAMAGES[name][0], DAMAGES[name][2])
    assert _snapshot(folder) == before  # nothing was touched


@pytest.mark.parametrize("name", ["checkpoint truncated", "metadata without rng", "object arrays",
                                  "config a list", "config unknown key"])
def test_resuming_a_damaged_run_is_one_line_and_changes_nothing(good_run, tmp_path, name):
    folder = _damaged(good_run, tmp_path, name)
    before = _snapshot(folder)
    proc = run_cli("train", "--resume", folder, "--steps", "30", check=False)
    _one_line(proc, DAMAGES[name][0], DAMAGES[name][2])
    assert _snapshot(folder) == before


def test_a_damaged_checkpoint_points_to_the_previous_one_and_that_advice_works(good_run, tmp_path):
    folder = _damaged(good_run, tmp_path, "checkpoint byte flipped in data")
    proc = run_cli("evaluate", folder, check=False)
    _one_line(proc, "checkpoint.prev.npz (step 10) is intact: rename it to checkpoint.npz")
    os.replace(folder / "checkpoint.prev.npz", folder / "checkpoint.npz")
    proc = run_cli("evaluate", folder)
    assert "step 10" in proc.stdout


def test_a_damaged_config_points_to_the_copy_in_params_json(good_run, tmp_path):
    folder = _damaged(good_run, tmp_path, "config truncated")
    _one_line(run_cli("evaluate", folder, check=False), 'params.json keeps a copy of the settings')
    config = json.loads((folder / "params.json").read_text())["config"]
    (folder / "config.json").write_text(json.dumps(config))
    assert load_run(folder).step == 20


def test_every_checkpoint_is_kept_once_more_as_the_previous_one(tmp_path):
    train(Config(steps=20, **SMALL), tmp_path / "run")
    with zipfile.ZipFile(tmp_path / "run" / "checkpoint.prev.npz") as z:
        assert "meta.npy" in z.namelist()
    with np.load(tmp_path / "run" / "checkpoint.prev.npz", allow_pickle=False) as data:
        assert json.loads(str(data["meta"]))["step"] == 10



# --- one process per run folder ------------------------------------------------------------------------------

def _train_cmd(out, hidden="4", steps="1000000"):
    return [sys.executable, "-m", "gategraph.cli", "train", "gru", "--task", "future", "--length", "6", "--hidden",
            hidden, "--batch", "4", "--steps", steps, "--eval-every", "5", "-o", str(out)]


def _wait_for(path, proc, seconds=240):
    deadline = time.time() + seconds
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert path.exists(), proc.communicate()[1]


def test_a_run_folder_belongs_to_one_process_at_a_time(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(_train_cmd(out), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(out / "checkpoint.npz", first)
        second = run_cli("train", "gru", "--task", "future", "--hidden", "6", "-o", out, check=False)
        _one_line(second, f"{out} is in use by another gategraph process (pid {first.pid})")
        _one_line(run_cli("train", "--resume", out, check=False), "in use by another gategraph process")
        assert json.loads((out / "config.json").read_text())["hidden"] == 4
    finally:
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    step = load_run(out).step
    resumed = run_cli("train", "--resume", out, "--steps", step + 2)  # the lock went with the first process
    assert f"step {step + 2}" in resumed.stdout


def test_two_trainings_started_at_once_on_one_folder_leave_one_run(tmp_path):
    out = tmp_path / "run"
    procs = {h: subprocess.Popen(_train_cmd(out, h, "40"), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for h in ("4", "6")}
    done = {}
    for h, p in procs.items():
        _, err = p.communicate(timeout=600)
        done[h] = (p.returncode, err)
    won = [h for h, (code, _) in done.items() if code == 0]
    assert len(won) == 1, done
    lost = next(h for h in done if h not in won)
    code, err = done[lost]
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "in use by another gategraph process" in err or "already holds a run" in err
    run = load_run(out)  # the config and the checkpoint agree: the winner's
    assert run.config.hidden == int(won[0]) and run.step == 40
    assert json.loads((out / "params.json").read_text())["config"]["hidden"] == int(won[0])


# --- Ctrl-C at any moment --------------------------------------------------------------------------------------

def _consistent(out):
    """The checkpoint, params.json, params.npz and metrics.csv tell the same step."""
    run = load_run(out)
    assert json.loads((out / "params.json").read_text())["step"] == run.step
    with np.load(out / "params.npz", allow_pickle=False) as data:
        assert all(np.array_equal(data[k], run.params[k]) for k in run.params)
    assert len((out / "metrics.csv").read_text().splitlines()) == run.step + 1
    return run


def _loading(proc, seconds=120):
    """Wait until the process runs gategraph's own code: Python has started and NumPy is loading (before that
    moment a Ctrl-C stops the interpreter's own start-up, which no program can handle)."""
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        try:
            if "numpy" in open(f"/proc/{proc.pid}/maps").read():
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError("the process did not start loading NumPy")


def _interrupt(cmd, delays, cwd=ROOT, ready=None):
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if ready == "loading":
        _loading(proc)
    elif ready:
        _wait_for(ready, proc)
    for delay in delays:
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    return out, err


@pytest.mark.parametrize("delay", [0.0, 1.0, 2.5])
def test_ctrl_c_while_the_program_starts_stops_cleanly(tmp_path, delay):
    """While NumPy loads, then SymPy and the cells, then the kernels compile or load (on a quiet machine with
    warm kernels the run may have begun by 2.5 s: then it stops as a run does, saved and consistent)."""
    out = tmp_path / "run"
    _, err = _interrupt(_train_cmd(out), [delay], ready="loading")
    assert err.strip().splitlines()[-1].startswith("gategraph:")
    if (out / "checkpoint.npz").exists():
        assert delay > 0 and "--resume" in err
        _consistent(out)


_CALLBACK_RAISES = """
import ctypes
import signal
compare = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(
    lambda a, b: signal.raise_signal(signal.SIGINT) or 0)  # the key pressed while C calls back into Python
ctypes.CDLL(None).qsort((ctypes.c_int * 2)(2, 1), 2, ctypes.sizeof(ctypes.c_int), compare)
"""


@pytest.mark.parametrize("ctrl_c", [_CALLBACK_RAISES, "exec('raise KeyboardInterrupt')"],
                         ids=["inside a callback from C", "inside exec of a string"])
def test_a_ctrl_c_the_interpreter_would_drop_or_turn_into_sigint_ends_the_program_with_130(ctrl_c, tmp_path):
    """Numba compiling (llvmlite's object cache calls back into Python), a dataclass being made while a module
    loads: CPython drops a KeyboardInterrupt raised inside a callback from C (the program trained on
    after a Ctrl-C), and one raised inside exec() of a string makes the process kill itself with SIGINT at
    exit even when handled."""
    command = f"def command(args):\n    {ctrl_c.strip().replace(chr(10), chr(10) + '    ')}\n" \
              "    deadline = time.monotonic() + 60\n" \
              "    while time.monotonic() < deadline:  # Python runs on: a Ctrl-C that was dropped comes back here\n" \
              "        pass\n    print('ran on')\n"
    (tmp_path / "program.py").write_text(f"import sys, time\nfrom gategraph import cli\n{command}"
                                         "cli.cmd_tasks = command\n"
                                         "sys.exit(cli.main(['tasks'], program=True))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "program"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)  # run as `python -m gategraph` runs: through runpy
    assert proc.returncode == 130 and "ran on" not in proc.stdout, (proc.returncode, proc.stderr)
    assert proc.stderr.strip() == "gategraph: interrupted"


def test_the_program_hook_passes_on_every_other_dropped_exception(monkeypatch):
    from gategraph import interrupts

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: seen.append(unraisable.exc_type))
    interrupts.keep_lost()
    interrupts.keep_lost()  # once is enough: the hook does not wrap itself

    class Dropped:
        def __del__(self):
            raise ValueError("in __del__")

    Dropped()
    assert seen == [ValueError]


def test_the_program_hook_drops_llvmlites_object_a_ctrl_c_cut_short(monkeypatch):
    """A Ctrl-C inside llvmlite's ObjectRef.__init__ (Numba compiling or loading) leaves an object whose __del__
    fails with an AttributeError: CPython printed it, traceback and all, after `gategraph: interrupted`."""
    from llvmlite.binding.ffi import ObjectRef

    from gategraph import interrupts

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: seen.append(unraisable.exc_type))
    ObjectRef.__new__(ObjectRef)  # as a Ctrl-C before its __init__ set _as_parameter_ leaves it
    assert seen == [AttributeError]  # what the program showed
    interrupts.keep_lost()
    ObjectRef.__new__(ObjectRef)
    assert seen == [AttributeError]


@pytest.mark.parametrize("gap", [0.0, 0.02])
def test_ctrl_c_twice_while_training_stops_at_once_and_the_run_stays_consistent(tmp_path, gap):
    out = tmp_path / "run"
    _, err = _interrupt(_train_cmd(out), [0.3, gap], ready=out / "checkpoint.npz")
    assert err.strip().splitlines()[-1].startswith("gategraph: ")  # stopped (at once), or interrupted after it
    run = _consistent(out)
    proc = run_cli("train", "--resume", out, "--steps", run.step + 3)
    assert f"step {run.step + 3}" in proc.stdout


def test_a_second_ctrl_c_during_a_save_waits_until_the_files_agree(tmp_path, monkeypatch):
    """The second Ctrl-C lands between the checkpoint and params.json: the save ends first."""
    import gategraph.train as tr

    real, sent = tr.atomic_write, []

    def write(path, data):
        if path.name == "params.npz" and len(sent) == 1:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)  # the second one, in the middle of the save
        return real(path, data)

    def first_ctrl_c(run, loss, rate):
        if run.step == 3 and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(tr, "atomic_write", write)
    with pytest.raises(tr.Interrupted, match="stopped at once at step 3; the checkpoint of step 3 is kept"):
        train(Config(steps=20, **SMALL), tmp_path / "run", progress=first_ctrl_c)
    assert len(sent) == 2 and _consistent(tmp_path / "run").step == 3


def test_ctrl_c_while_drawing_the_plots_keeps_the_finished_run(tmp_path, monkeypatch, capsys):
    from gategraph import cli
    from gategraph.renderers import plots

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "loss_curves", ctrl_c)
    out = tmp_path / "run"
    status = cli.main(["train", "lstm", "--task", "adding", "--length", "6", "--hidden", "4", "--batch", "4",
                       "--steps", "10", "-o", str(out)])
    err = capsys.readouterr().err
    assert status == 130 and "interrupted while drawing the plots" in err and "saved at step 10" in err
    assert _consistent(out).step == 10


@pytest.mark.parametrize("args", [("check", "peephole-lstm"), ("lecture", "--no-train", "--format", "html")])
def test_ctrl_c_in_other_commands_stops_cleanly(tmp_path, args):
    """`check` is interrupted while it proves (the peephole LSTM's proofs take seconds even on a quiet machine)."""
    deck = tmp_path / "deck"  # the lecture writes its figures there while it builds the deck
    lecture = args[0] == "lecture"
    _, err = _interrupt([sys.executable, "-m", "gategraph.cli", *args, *(("-o", str(deck)) if lecture else ())],
                        [0.2 if lecture else 2.0], ready=deck if lecture else "loading")
    assert err.strip().endswith("gategraph: interrupted")


# --- memory --------------------------------------------------------------------------------------------------

def test_settings_that_need_more_memory_than_there_is_are_refused_before_allocating(tmp_path):
    out = tmp_path / "run"
    began = time.time()
    proc = run_cli("train", "lstm", "--task", "adding", "--length", "100000", "--batch", "4096", "--hidden", "4096",
                   "-o", out, check=False)
    _one_line(proc, "lstm on adding with these settings needs about", "TB of memory", "is available: lower --")
    assert time.time() - began < 120 and not (out / "checkpoint.npz").exists()


def test_the_memory_estimate_counts_what_the_kernels_allocate():
    from gategraph.train import Run, memory_needed

    run = Run(Config(steps=1, **{**SMALL, "layers": 2, "bidirectional": True}))
    run.train_step()
    kernels = [k for layer in run.model.rnn.kernels for k in layer.values()]
    allocated = sum(a.nbytes for k in kernels for _, buffers in k._work.values() for a in buffers)
    T, B = SMALL["task_options"]["T"], SMALL["batch"]
    predicted = sum(sum(k.workspace_bytes(T, B).values()) for k in kernels)
    assert predicted == allocated
    parts = memory_needed(run.config, run.task, run.model)
    assert sum(parts.values()) > allocated


def test_a_run_that_does_not_fit_in_memory_says_so_in_one_line(monkeypatch):
    import gategraph.train as tr

    monkeypatch.setattr(tr, "available_memory", lambda: 1000)
    with pytest.raises(tr.UsageError, match=r"^lstm on adding with these settings needs about .* of memory \(most "
                                            r"of it .*\), 1.0 kB is available: lower --"):
        tr.Run(Config(steps=1, **SMALL))


# --- settings that make no sense -----------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (("lstm", "--task", "adding", "--lr", "-0.01"), "the learning rate (--lr) must be a number above 0, got -0.01"),
    (("lstm", "--task", "adding", "--lr", "nan"), "the learning rate (--lr) must be a number above 0, got nan"),
    (("lstm", "--task", "adding", "--clip", "-1"), "--clip is the largest gradient norm let through and must be"),
    (("lstm", "--task", "adding", "--attention", "dot"), "--attention is for sequence-to-sequence tasks"),
    (("gru", "--task", "dates", "--layers", "2"), "--layers does not apply to it"),
    (("gru", "--task", "adding", "--teacher-forcing-end", "0"), "teacher forcing is for sequence-to-sequence"),
    (("gru", "--task", "wheels", "--attention", "dot"), "attention needs a source to attend to"),
    (("gru", "--task", "wheels", "--bidirectional"), "the wheels task has no source: --bidirectional reads a source"),
])
def test_settings_that_make_no_sense_are_refused(tmp_path, args, message):
    out = tmp_path / "run"
    _one_line(run_cli("train", *args, "-o", out, check=False), message)
    assert not out.exists()


def test_resuming_refuses_what_cannot_change_and_applies_and_records_what_can(good_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(good_run, folder)
    before = _snapshot(folder)
    for args, option in ((("--hidden", "16"), "--hidden 4, not 16"), (("--layers", "2"), "--layers 1, not 2"),
                         (("gru",), "CELL lstm, not gru"), (("--task", "future"), "--task adding, not future"),
                         (("--length", "9"), "--length 6, not 9"), (("--seed", "3"), "--seed 0, not 3")):
        proc = run_cli("train", "--resume", folder, "--lr", "0.5", *args, check=False)
        _one_line(proc, f"{folder} was trained with {option}: it cannot change when a run goes on")
        assert _snapshot(folder) == before
    _one_line(run_cli("train", "--resume", folder, "--lr", "-1", check=False), "error: the learning rate (--lr)")
    _one_line(run_cli("train", "--resume", folder, "-o", tmp_path / "x", check=False), "leave out -o")
    assert _snapshot(folder) == before
    proc = run_cli("train", "--resume", folder, "--lr", "0.5", "--steps", "25", "--hidden", "4")
    assert "note: from step 20 on: --steps 25 (was 20), --lr 0.5 (was 0.001)" in proc.stderr
    config = json.loads((folder / "config.json").read_text())
    assert config["lr"] == 0.5 and config["steps"] == 25 and config["hidden"] == 4
    run = _consistent(folder)
    assert run.step == 25 and run.opt.lr == 0.5
    assert run.changes == [{"step": 20, "lr": [0.001, 0.5], "steps": [20, 25]}]
    _one_line(run_cli("train", "--resume", folder, "--steps", "10", check=False), "is at step 25 already")


def test_an_empty_attention_memory_is_refused():
    from gategraph.cells import attention
    from gategraph.errors import ShapeError
    from gategraph.kernel import compile

    kernel = compile(attention(score="dot"), None, 3, "float64")
    params = kernel.init(0)
    with pytest.raises(ShapeError, match=r"memory 'M' is empty \(S = 0 rows\): give it at least one row"):
        kernel.forward(params, np.zeros((1, 2, 3)), memory={"M": np.zeros((2, 0, 3))})


# --- files that cannot be written ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dates_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "dates"
    train(Config(cell="gru", task="dates", attention="dot", hidden=4, steps=2, eval_every=2, test_size=4), folder)
    return folder


@pytest.mark.parametrize("args, message", [
    (("--heatmap", "h.txt"), "cannot draw a figure to 'h.txt': name a file ending in"),
    (("--heatmap", "h"), "cannot draw a figure to 'h': name a file ending in"),
])
def test_predict_refuses_a_heatmap_it_cannot_draw(dates_run, tmp_path, args, message):
    proc = run_cli("predict", dates_run, "26 november 2026", *args, check=False, cwd=tmp_path)
    _one_line(proc, message, ".png", ".pdf", ".svg")
    assert list(tmp_path.iterdir()) == []


def test_predict_refuses_an_empty_text_and_a_heatmap_without_attention(dates_run, good_run, tmp_path):
    _one_line(run_cli("predict", dates_run, "", check=False), "give a text to read, e.g.")
    folder = tmp_path / "plain"
    train(Config(cell="gru", task="dates", hidden=4, steps=2, eval_every=2, test_size=4), folder)
    _one_line(run_cli("predict", folder, "26 november 2026", "--heatmap", tmp_path / "h.png", check=False),
              "--heatmap draws the attention weights, and", "was trained without --attention")


def test_a_full_disk_names_the_file_that_could_not_be_written(tmp_path, monkeypatch, capsys):
    import errno

    from gategraph import cli, files

    real = files.os.fdopen

    class Full:
        def __init__(self, fd, mode):
            self.f = real(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    out = tmp_path / "run"
    train(Config(steps=10, **SMALL), out)
    before = _snapshot(out)
    monkeypatch.setattr(files.os, "fdopen", Full)
    status = cli.main(["train", "--resume", str(out), "--steps", "20"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert f"gategraph: error: No space left on device: {out / 'config.json'} could not be written; the one there " \
           "before is intact" in err and "None" not in err
    monkeypatch.undo()
    assert _snapshot(out) == before and not [p for p in out.iterdir() if p.name.startswith(".config")]


def test_running_out_of_memory_while_saving_is_one_line(tmp_path, monkeypatch, capsys):
    """np.savez into memory that runs out mid-archive raises "I/O operation on closed file" from its cleanup."""
    from gategraph import cli

    real = np.savez

    def savez(file, **arrays):
        if len(arrays) > 5:  # the checkpoint, not params.npz
            try:
                raise MemoryError
            finally:
                raise ValueError("I/O operation on closed file.")
        return real(file, **arrays)

    monkeypatch.setattr(np, "savez", savez)
    status = cli.main(["train", "lstm", "--task", "adding", "--length", "6", "--hidden", "4", "--batch", "4",
                       "--steps", "3", "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    assert err.splitlines()[-1].startswith("gategraph: error: out of memory: lower"), err


def test_a_small_model_trains_with_one_blas_thread_and_gives_the_threads_back():
    """A second BLAS thread costs a small model's GEMMs many times their work on a busy machine: training
    holds BLAS to one thread, and the caller's threads are as before afterwards."""
    import scipy.linalg.cython_blas  # noqa: F401  (the kernels' BLAS: loaded before the counts are read)
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():  # (MKL, where it is the step BLAS, runs sequentially: always on one thread)
        return {i["filepath"]: i["num_threads"] for i in threadpool_info()
                if i["user_api"] == "blas" and i["internal_api"] != "mkl"}

    seen = []
    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        train(Config(steps=2, **SMALL), progress=lambda run, loss, rate: seen.append(blas_threads()))
        after = blas_threads()
    assert seen and all(set(s.values()) == {1} for s in seen), seen
    assert after == before and set(before.values()) == {2}
