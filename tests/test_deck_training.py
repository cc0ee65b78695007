"""A deck's runs, trained while the deck builds as a user builds it: on two workers (this process and a Dask
worker) they give the same numbers as one after another in this process; each run ends with a line naming its
directive as the user named the source; a run that fails fails the build with one line naming its file:line;
Ctrl-C keeps the finished runs and the next build goes on from the others' checkpoints."""

import csv
import json
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import run_cli

# three tiny runs of two cells; the future task's run is the costliest (its sequences are the longest)
SOURCE = """## Scores

```{gategraph} train --task adding --length 8 --hidden 6 --steps 40 --batch 8 --eval-every 10 --show score
RNN: rnn
GRU: gru
```

---

## Ahead

```{gategraph} train gru --task future --hidden 6 --steps 30 --batch 8 --eval-every 10 --test-size 32 --show loss
```
"""


def write(folder, source=SOURCE):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "talk.md").write_text(source)
    return folder / "talk.md"


def build(src, out, workers, check=True):
    """`gategraph deck talk.md` from the source's folder, as a user types it."""
    return run_cli("deck", "talk.md", "-o", out, "--format", "html", "--workers", workers, cwd=src.parent,
                   check=check)


def numbers(runs):
    """Each run's metrics.csv without its seconds, and its result's score: what training computed."""
    found = {}
    for folder in sorted(runs.iterdir()):
        with open(folder / "metrics.csv") as f:
            rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]
        found[folder.name] = rows, json.loads((folder / "result.json").read_text())["score"]
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The deck built twice from one source: on two Dask workers, and in this process."""
    src = write(tmp_path_factory.mktemp("decktraining"))
    return src, {workers: build(src, src.parent / f"out{workers}", workers).stderr for workers in (2, 1)}


def test_two_workers_train_the_same_numbers_as_this_process(built):
    src, _ = built
    two, one = numbers(src.parent / "out2" / "runs"), numbers(src.parent / "out1" / "runs")
    assert len(two) == 3 and two == one
    assert all(len(rows) == 40 or len(rows) == 30 for rows, _ in two.values())


def test_each_run_ends_with_a_line_naming_its_directive_as_the_source_was_named(built):
    _, said = built
    assert "training 3 runs in this process and on 1 Dask worker, the longest first" in said[2]
    assert "training 3 runs in this process, the longest first" in said[1]
    for text in said.values():
        for cell, line, title, steps in (("rnn", 3, "Scores", 40), ("gru", 3, "Scores", 40),
                                         ("gru", 12, "Ahead", 30)):
            assert re.search(rf"^run [123]/3 {cell}-\w+-\w+ for talk\.md:{line} \({title}\): trained, step {steps}, "
                             r"test_\w+ [\d.e-]+, [\d.]+ s \(\+[\d.]+ s compiling\)$", text, re.M), text
    first = re.search(r"^run 1/3 (\S+)", said[1], re.M).group(1)
    assert first.startswith("gru-future-")  # the costliest run starts first


def test_a_second_build_reuses_every_run(built):
    src, _ = built
    again = build(src, src.parent / "out2", 2)
    assert "reusing 3 trained runs" in again.stderr and "training" not in again.stderr


def test_a_run_that_fails_fails_the_build_in_one_line_naming_its_directive(tmp_path):
    src = write(tmp_path, SOURCE.replace("GRU: gru", "GRU: gru --lr 1e30"))  # it diverges at once
    done = build(src, tmp_path / "out", 2, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert re.match(r"gategraph: error: talk\.md:3: the run gru-adding-\w+ failed: step \d+: the loss is \w+: the "
                    r"model diverged", last), last
    assert re.search(r"^run \d/3 gru-adding-\w+ for talk\.md:3 \(Scores\): failed: ", done.stderr, re.M)
    finished = [json.loads(p.read_text())["status"] for p in (tmp_path / "out" / "runs").glob("*/result.json")]
    assert sorted(finished) == ["done", "done", "failed"]  # the others finished, and are kept
    again = build(src, tmp_path / "out", 2, check=False)
    assert "reusing 2 trained runs" in again.stderr and again.returncode == 2


LONG = """## Long

```{gategraph} train lstm --task adding --length 40 --hidden 24 --steps 6000 --eval-every 3000 --test-size 8 --show loss
```

---

## Short

```{gategraph} train rnn --task adding --length 8 --hidden 6 --steps 30 --batch 8 --test-size 8 --show loss
```
"""


def test_ctrl_c_keeps_the_finished_runs_and_the_next_build_goes_on_from_the_checkpoints(tmp_path):
    src = write(tmp_path, LONG)
    runs = tmp_path / "out" / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "gategraph.cli", "deck", "talk.md", "-o", "out", "--format",
                             "html", "--workers", "2"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 240
        while not (list(runs.glob("rnn-*/result.json")) and list(runs.glob("lstm-*/checkpoint.npz"))):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == ("gategraph: stopped: 1 of 2 runs finished, kept in out/runs; the others "
                                            "go on from their checkpoints when the deck is built again"), err
    (short,) = runs.glob("rnn-*")
    stamp = (short / "checkpoint.npz").stat().st_mtime_ns
    (long,) = runs.glob("lstm-*")
    again = build(src, tmp_path / "out", 2)
    step = json.loads((long / "result.json").read_text())["resumed"]
    assert 0 < step < 6000, again.stderr
    assert "reusing 1 trained run" in again.stderr
    assert re.search(rf"^run 1/1 lstm-adding-\w+ for talk\.md:3 \(Long\): resumed from step {step}, step 6000, ",
                     again.stderr, re.M), again.stderr
    assert (short / "checkpoint.npz").stat().st_mtime_ns == stamp


def test_ctrl_c_counts_the_runs_the_folder_holds_finished_not_the_results_received(tmp_path, monkeypatch):
    """A Dask worker's run can finish (its folder holds it trained to its last step) before its result reaches
    this process: the line after Ctrl-C counts what the folder holds, as the end-to-end test above saw once."""
    from gategraph import cli, runs
    from gategraph.errors import Interrupted

    folders = [tmp_path / "runs" / "rnn", tmp_path / "runs" / "lstm"]
    todo = [(folder, None, "talk.md:3", "Long") for folder in folders]

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "make_runs", stopped)  # no result came back before the Ctrl-C
    monkeypatch.setattr(runs, "trained", lambda folder, config: folder == folders[0])
    with pytest.raises(Interrupted, match=r"^stopped: 1 of 2 runs finished, kept in .*runs; the others go on"):
        cli._make_runs(todo, None, "in this process")
