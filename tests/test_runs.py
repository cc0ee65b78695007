"""Run directories under faults, through the command a user types: damaged files, two processes on one
folder, Ctrl-C at any moment, settings that cannot work. Each is one line on stderr, never a traceback, and
the folder is left as it was (or consistent)."""

import json
import os
import shutil
import zipfile

import numpy as np
import pytest

from gategraph.train import Config, load_run, train
from tests.conftest import run_cli

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

