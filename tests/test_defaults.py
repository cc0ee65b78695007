"""Each task trains with its own settings when none are given: `gategraph tasks` shows them, the plain
`gategraph train CELL --task NAME` uses them and records them in config.json, and options given win."""

import csv
import json
import subprocess
import sys

import pytest

from gategraph.cli import main
from gategraph.tasks import TASKS, get_task
from gategraph.train import TASK_SETTINGS, Config
from tests.conftest import ROOT, run_cli


def test_the_tasks_named_in_the_readme_carry_their_own_budget():
    generic = Config()
    for name in ("adding", "future", "dates"):
        training = get_task(name).training
        assert "steps" in training and training["lr"] != generic.lr, name
    assert get_task("dates").training["attention"] == "general"
    config = Config.for_task("adding", cell="gru", lr=0.01)
    assert (config.cell, config.steps, config.lr) == ("gru", get_task("adding").training["steps"], 0.01)
    assert Config.for_task("dates", attention=None).attention is None


def test_tasks_shows_each_tasks_defaults():
    lines = run_cli("tasks").stdout.splitlines()
    shown = {lines[k].split()[0]: lines[k + 1] for k in range(0, len(lines), 2)}
    assert set(shown) == set(TASKS)
    for name, line in shown.items():
        config = Config.for_task(name)
        assert line.split()[0] == "defaults:", line
        for key in TASK_SETTINGS:
            value = getattr(config, key)
            assert (f"--{key} {value}" in line) == (value is not None), (name, key, line)
    assert "--steps 3000 --lr 0.003" in shown["adding"] and "--attention general" in shown["dates"]


def test_the_plain_command_uses_the_tasks_settings_and_given_options_win(tmp_path, capsys):
    """In-process (the same commands a user types), so the kernels compile once."""
    future, dates, given = tmp_path / "future", tmp_path / "dates", tmp_path / "given"
    assert main(["train", "gru", "--task", "future", "--steps", "2", "--eval-every", "2", "-o", str(future)]) == 0
    config = json.loads((future / "config.json").read_text())
    training = get_task("future").training
    assert config["steps"] == 2 and config["lr"] == training["lr"] != Config().lr
    assert (config["hidden"], config["batch"], config["clip"], config["attention"]) == (64, 32, 1.0, None)

    assert main(["train", "gru", "--task", "dates", "--steps", "1", "--hidden", "4", "--eval-every", "1",
                 "-o", str(dates)]) == 0
    config = json.loads((dates / "config.json").read_text())
    assert (config["attention"], config["lr"], config["hidden"]) == ("general", get_task("dates").training["lr"], 4)
    assert (dates / "attention.png").exists()

    assert main(["train", "gru", "--task", "dates", "--steps", "1", "--eval-every", "1", "--lr", "0.02", "--hidden",
                 "4", "--batch", "4", "--clip", "0.5", "--attention", "none", "-o", str(given)]) == 0
    config = json.loads((given / "config.json").read_text())
    assert {k: config[k] for k in TASK_SETTINGS} == {"steps": 1, "lr": 0.02, "hidden": 4, "batch": 4, "clip": 0.5,
                                                      "attention": None}
    assert not (given / "attention.png").exists(), "no attention, no heatmap"
    shapes = json.loads((given / "params.json").read_text())["shapes"]
    assert shapes["out.W"][1] == 4, "the output layer reads h_t alone, no context vector"


@pytest.mark.slow
def test_the_plain_command_reaches_the_readmes_result_on_future(tmp_path):
    """`gategraph train gru --task future --bidirectional`, nothing else: at least 95% (the README says 100%)."""
    out = tmp_path / "future"
    proc = subprocess.run([sys.executable, "-m", "gategraph.cli", "train", "gru", "--task", "future",
                           "--bidirectional", "-o", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert int(rows[-1]["step"]) == get_task("future").training["steps"]
    assert float(rows[-1]["test_accuracy"]) >= 0.95
    assert f"step {rows[-1]['step']}, test_accuracy" in proc.stdout
