"""Models and training: gradients through whole models by finite differences; stacked and bidirectional
layers; the tasks; runs that stop (Ctrl-C, SIGTERM, a diverging loss) and resume bit for bit."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gategraph import cells
from gategraph.errors import SpecError, UsageError, ValueInputError
from gategraph.models import Linear, SequenceModel, softmax_xent
from gategraph.tasks import get_task
from gategraph.train import Config, Interrupted, load_run, train
from tests.conftest import ROOT

CASES = [  # cell, structure, loss, layers, bidirectional
    ("lstm", "many-to-one", "mse", 2, True),
    ("gru_reset_after", "many-to-many", "xent", 2, True),
    ("rnn", "many-to-one", "xent", 1, False),
    ("gru", "many-to-many", "xent", 1, True),
]


@pytest.mark.parametrize("cell, structure, loss, layers, bidirectional", CASES)
def test_whole_model_gradients_match_finite_differences(cell, structure, loss, layers, bidirectional):
    """Every parameter of every layer and direction, and the output layer: the kernels' BPTT plus the glue."""
    K = 3
    model = SequenceModel(cells.CELLS[cell](), 3, 4, K if loss == "xent" else 2, structure, loss, layers,
                          bidirectional, "float64")
    params = model.init(1)
    rng = np.random.default_rng(2)
    T, B = 5, 2
    x = rng.normal(size=(T, B, 3))
    mask = None
    if loss == "mse":
        y = rng.normal(size=(B, 2))
    else:
        y = rng.integers(0, K, (T, B) if structure == "many-to-many" else (B,))
        if structure == "many-to-many":
            mask = (rng.uniform(size=y.shape) > 0.3).astype(float)
    value, grads, _ = model.loss_and_grads(params, x, y, mask)
    assert set(grads) == set(params)
    eps = 1e-6
    for name, a in params.items():
        for idx in list(np.ndindex(a.shape))[::max(1, a.size // 7)]:
            old = a[idx]
            a[idx] = old + eps
            up = model.loss_and_grads(params, x, y, mask)[0]
            a[idx] = old - eps
            down = model.loss_and_grads(params, x, y, mask)[0]
            a[idx] = old
            fd = (up - down) / (2 * eps)
            assert abs(fd - grads[name][idx]) <= 1e-7 + 1e-5 * abs(fd), (name, idx, fd, grads[name][idx])


def test_softmax_cross_entropy_ignores_masked_steps():
    logits = np.array([[2.0, 0.0], [0.0, 9.0]])
    loss, grad = softmax_xent(logits, np.array([0, 0]), np.array([1.0, 0.0]))
    assert loss == pytest.approx(np.log(1 + np.exp(-2.0)))
    assert np.array_equal(grad[1], [0.0, 0.0])


def test_a_bidirectional_model_sees_the_future_and_a_one_directional_one_cannot():
    """The future task asks for the symbol two steps ahead: chance is 1/4."""
    scores = {}
    for bidir in (True, False):
        run = train(Config(cell="gru", task="future", hidden=16, steps=250, lr=0.01, batch=32, bidirectional=bidir,
                           eval_every=250, test_size=256, task_options={"T": 10}))
        scores[bidir] = run.history[-1]["test_accuracy"]
    assert scores[True] > 0.9 and scores[False] < 0.4, scores


def test_the_adding_task_and_its_baseline():
    task = get_task("adding", T=30)
    x, y, _ = task.batch(np.random.default_rng(0), 4000)
    assert x.shape == (30, 4000, 2) and (x[:, :, 1].sum(axis=0) == 2).all()
    assert abs(((y - 1) ** 2).mean() - 1 / 6) < 0.01  # always answering 1


def _params(run_dir):
    with np.load(run_dir / "params.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


SMALL = dict(cell="lstm", task="adding", hidden=8, batch=8, eval_every=10, save_every=10, test_size=32,
             task_options={"T": 12})


def test_a_stopped_run_resumes_bit_for_bit(tmp_path):
    whole = train(Config(steps=40, **SMALL), tmp_path / "whole")

    def ctrl_c(run, loss, rate):
        if run.step == 23:  # Ctrl-C in the middle of a step: the step ends, then the run saves and stops
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="stopped at step 23"):
        train(Config(steps=40, **SMALL), tmp_path / "cut", progress=ctrl_c)
    assert load_run(tmp_path / "cut").step == 23
    resumed = train(Config(steps=0), tmp_path / "cut", resume=True)
    assert resumed.step == 40
    a, b = _params(tmp_path / "whole"), _params(tmp_path / "cut")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in whole.history] == [r["loss"] for r in resumed.history]
    rows = list(csv.DictReader((tmp_path / "cut" / "metrics.csv").open()))
    assert list(rows[0]) == ["step", "loss", "test_mse", "seconds"] and len(rows) == 40


def test_training_seconds_leave_out_what_numba_compiles_and_a_resume_adds_to_it(tmp_path):
    """A function Numba compiles while the run trains (as a kernel's first call does) is counted in the run's
    compile_seconds, kept in its checkpoint, and not in the seconds of training metrics.csv shows."""
    from numba import njit

    from gategraph.train import read_checkpoint

    took = []

    def compile_one(run, loss, rate):
        if run.step == 2:
            start = time.perf_counter()
            njit(lambda x: x * 3.0 - 1.0)(1.0)  # a function Numba has not seen: compiled here and now
            took.append(time.perf_counter() - start)

    run = train(Config(steps=4, **SMALL), tmp_path / "run", progress=compile_one)
    assert took[0] > 0.02
    assert run.compile_seconds >= took[0] * 0.9 and run.history[-1]["seconds"] < took[0] * 0.5
    kept = read_checkpoint(tmp_path / "run" / "checkpoint.npz")[1]["compile_seconds"]
    assert kept == run.compile_seconds
    more = train(Config(steps=6), tmp_path / "run", resume=True)  # building the model again adds to it
    assert more.compile_seconds > kept


def test_a_diverging_run_stops_and_keeps_its_last_checkpoint(tmp_path):
    config = Config(steps=200, lr=1e4, clip=None, optimizer="sgd", momentum=0.0, **{**SMALL, "save_every": 1})
    with pytest.raises(ValueInputError, match=r"step (\d+): .* the run stops, the checkpoint of step \d+ is kept") as e:
        train(config, tmp_path / "run")
    run = load_run(tmp_path / "run")
    failed = int(str(e.value).split(":")[0].split()[1])
    assert run.step == failed - 1 and all(np.isfinite(v).all() for v in run.params.values())


def test_a_run_directory_is_not_overwritten(tmp_path):
    train(Config(steps=10, **SMALL), tmp_path / "run")
    with pytest.raises(Exception, match="already holds a run"):
        train(Config(steps=10, **SMALL), tmp_path / "run")


def test_bad_settings_are_one_line():
    with pytest.raises(SpecError, match="structure must be one of"):
        SequenceModel(cells.lstm(), 2, 4, 1, structure="one-to-seven")
    with pytest.raises(Exception, match="unknown task 'nope'"):
        get_task("nope")


def test_train_command_writes_a_run_and_survives_sigterm(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "gategraph.cli", "train", "gru", "--task", "future", "--hidden", "8",
           "--steps", "1000000", "--eval-every", "5", "-o", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (out / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "continue with `gategraph train --resume" in err
    run = load_run(out)
    assert run.step > 0
    config = json.loads((out / "config.json").read_text())
    assert config["cell"] == "gru" and config["task"] == "future"
    evaluated = subprocess.run([sys.executable, "-m", "gategraph.cli", "evaluate", str(out)], capture_output=True,
                               text=True, cwd=ROOT)
    assert evaluated.returncode == 0 and "test_accuracy" in evaluated.stdout


def test_train_command_end_to_end(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "gategraph.cli", "train", "lstm", "--task", "adding", "--length",
                           "10", "--hidden", "8", "--steps", "30", "--eval-every", "10", "-o", str(out)],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ})
    assert done.returncode == 0, done.stderr
    assert {"config.json", "metrics.csv", "params.npz", "params.json", "checkpoint.npz", "loss.png", "gates.png"} <= {
        p.name for p in out.iterdir()}
    assert "test_mse" in done.stdout and "30/30" in done.stderr
    assert (out / "loss.png").stat().st_size > 10_000


# --- sequence to sequence ------------------------------------------------------------------------------------

S2S = [("lstm", "general", 1.0, False), ("gru_reset_after", "additive", 0.5, False), ("gru", "dot", 1.0, False),
       ("rnn", None, 0.0, False), ("gru", "general", 0.5, True), ("lstm", None, 1.0, True)]


@pytest.mark.parametrize("cell, score, forcing, bidirectional", S2S)
def test_seq2seq_gradients_match_finite_differences(cell, score, forcing, bidirectional):
    """Encoder (one way or both), decoder, attention and output layer, through every decoding step; with a
    teacher-forcing ratio below 1 the same coin flips are replayed for every evaluation."""
    from gategraph.seq2seq import Seq2Seq

    model = Seq2Seq(cells.CELLS[cell](), 5, 6, 4, start=0, end=1, attention_score=score, dtype="float64",
                    bidirectional=bidirectional)
    params = model.init(3)
    rng = np.random.default_rng(4)
    src, tgt = rng.integers(0, 5, (4, 2)), rng.integers(0, 6, (3, 2))

    def run(grads=False):
        return model.run(params, src, tgt, forcing, np.random.default_rng(9), grads=grads)

    loss, grads, tokens, alphas = run(grads=True)
    assert tokens.shape == (3, 2) and (alphas is None) == (score is None)
    assert any(k.startswith("encb.") for k in params) == bidirectional
    if score:
        assert alphas.shape == (3, 2, 4) and np.allclose(alphas.sum(axis=2), 1)
    eps = 1e-6
    for name, a in params.items():
        for idx in list(np.ndindex(a.shape))[::max(1, a.size // 5)]:
            old = a[idx]
            a[idx] = old + eps
            up = run()[0]
            a[idx] = old - eps
            down = run()[0]
            a[idx] = old
            fd = (up - down) / (2 * eps)
            assert abs(fd - grads[name][idx]) <= 1e-7 + 1e-5 * abs(fd), (name, idx, fd, grads[name][idx])


def per_step_decoding(model, params, src, tgt, forced):
    """The decoder one step per kernel call, forward and back (the path before segments): the reference for
    the one-call path. forced[t]: step t + 1 reads tgt[t], else step t's guess."""
    own = model._own
    enc_p, dec_p, att_p = own(params, "enc."), own(params, "dec."), own(params, "att.")
    xs = np.eye(model.encoder.sizes["X"])[src]
    enc_out, state, enc_tape = model.encoder.forward(enc_p, xs)
    memory = {"M": np.ascontiguousarray(enc_out.transpose(1, 0, 2))}
    prev, steps, logits = np.full(tgt.shape[1], model.start), [], []
    for t in range(tgt.shape[0]):
        x = np.eye(model.V)[prev][None]
        h, final, _ = model.decoder.forward(dec_p, x, state)
        feat = h[0]
        if model.attn:
            feat = np.concatenate([h[0], model.attn.forward(att_p, h, memory=memory)[0]["c"][0]], axis=1)
        logits.append(model.head.forward(params, feat))
        steps.append((x, state, h, feat))
        state, prev = final, tgt[t] if forced[t] else logits[-1].argmax(axis=1)
    loss, d_logits = softmax_xent(np.stack(logits), tgt)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    carry = {s: np.zeros_like(v) for s, v in state.items()}
    d_memory = np.zeros_like(memory["M"])
    for t in reversed(range(len(steps))):
        x, state, h, feat = steps[t]
        g_head, d_feat = model.head.backward(params, feat, d_logits[t])
        d_h = d_feat[:, :model.H]
        if model.attn:
            g_att = model.attn.backward(att_p, h, {"c": np.ascontiguousarray(d_feat[None, :, model.H:])}, memory=memory)
            d_h, d_memory = d_h + g_att.pop("q")[0], d_memory + g_att.pop("M")
            g_head.update({f"att.{k}": v for k, v in g_att.items()})
        g = model.decoder.backward(dec_p, x, np.ascontiguousarray(d_h[None]), carry, state)
        carry = {s: g.pop(s) for s in model.states}
        g.pop("x")
        g_head.update({f"dec.{k}": v for k, v in g.items()})
        for k, v in g_head.items():
            grads[k] += v
    g = model.encoder.backward(enc_p, xs, np.ascontiguousarray(d_memory.transpose(1, 0, 2)), carry, tape=enc_tape)
    grads.update({f"enc.{k}": v for k, v in g.items() if f"enc.{k}" in grads})
    return loss, grads, np.stack([z.argmax(axis=1) for z in logits])


@pytest.mark.parametrize("cell, score, forcing", [("lstm", "general", 1.0), ("gru", None, 1.0),
                                                  ("gru_reset_after", "additive", 0.6), ("lstm", "dot", 0.0)])
def test_forced_decoder_steps_in_one_call_equal_one_call_per_step(cell, score, forcing):
    """The steps the teacher forces run as one kernel call (the whole target at ratio 1); free running, the
    output layer's gradients of all steps come from one stacked product: the loss, every gradient and the
    guesses are those of one call per step, to 1e-12 in float64."""
    from gategraph.seq2seq import Seq2Seq

    model = Seq2Seq(cells.CELLS[cell](), 5, 6, 4, start=0, end=1, attention_score=score, dtype="float64")
    params = model.init(3)
    rng = np.random.default_rng(4)
    src, tgt = rng.integers(0, 5, (4, 3)), rng.integers(0, 6, (7, 3))
    loss, grads, tokens, _ = model.run(params, src, tgt, forcing, np.random.default_rng(9), grads=True)
    forced = Seq2Seq.forced_steps(7, tgt, forcing, np.random.default_rng(9))
    assert forced.all() == (forcing == 1) and forced.any() == (forcing > 0)  # at 0.6 both kinds of step
    ref_loss, ref_grads, ref_tokens = per_step_decoding(model, params, src, tgt, forced)
    assert abs(loss - ref_loss) <= 1e-12 * abs(ref_loss)
    assert np.array_equal(tokens, ref_tokens)
    for name, g in ref_grads.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-12, atol=1e-13, err_msg=name)


def test_the_dates_task_holds_its_test_dates_out():
    task = get_task("dates")
    train_pairs = task.pairs(np.random.default_rng(0), 300)
    test_pairs = task.pairs(np.random.default_rng(0), 300, test=True)
    assert not {t for _, t in test_pairs} & {t for _, t in train_pairs}
    assert all(len(t) == 10 and t[4] == t[7] == "-" for _, t in train_pairs + test_pairs)
    src, tgt, _ = task.batch(np.random.default_rng(0), 5)
    assert src.shape == (18, 5)  # padded as long as the longest date any batch can hold
    assert task.decode(tgt[:, 0]) == task.pairs(np.random.default_rng(0), 1)[0][1]


def test_seq2seq_batches_pad_the_source_on_the_left_and_score_exact_match_up_to_end():
    task = get_task("dates")
    src, tgt = task.encode([("3 may 1999", "1999-05-03"), ("december 31, 2049", "2049-12-31")])
    assert src.shape == (18, 2) and tgt.shape == (11, 2)
    assert "".join(task.source_vocab[i] for i in src[:, 0]) == "·" * 8 + "3 may 1999"
    assert [task.decode(tgt[:, b]) for b in (0, 1)] == ["1999-05-03", "2049-12-31"] and (tgt[10] == task.end).all()
    written = tgt.copy()
    assert task.score(written, tgt) == 1.0
    written[3, 0] = written[4, 0]  # a dash for a digit
    assert task.score(written, tgt) == 0.5
    longer = np.concatenate([tgt, tgt[:2]])  # tokens after END do not count; one written before it does
    assert task.score(longer, tgt) == 1.0
    longer[10, 1] = longer[0, 1]
    assert task.score(longer, tgt) == 0.5
    assert task.score(tgt[:10], tgt) == 1.0  # no END, but every character: the same text
    assert task.score(tgt[:9], tgt) == 0.0  # a character short
    with pytest.raises(UsageError, match="'N'"):
        task.encode([("26 Nov 2026", "2026-11-26")])


def test_teacher_forcing_learns_the_text_in_fewer_steps():
    """The wheels task: the decoder alone writes the line; with the true previous character as input
    (ratio 1) it gets there sooner than when it reads its own guesses (ratio 0)."""
    first = {}
    for ratio in (1.0, 0.0):
        run = train(Config(cell="gru", task="wheels", hidden=32, steps=300, lr=0.01, eval_every=10, test_size=1,
                           teacher_forcing=ratio))
        first[ratio] = next((r["step"] for r in run.history if r.get("test_exact_match") == 1.0), 10**9)
    assert first[1.0] < first[0.0], first


def test_sentiment_reads_word_order():
    task = get_task("sentiment")
    rng = np.random.default_rng(0)
    texts = [task.sentence(rng) for _ in range(2000)]
    assert 0.35 < np.mean([label for _, label in texts]) < 0.65
    assert any(" not " in t for t, _ in texts) and any(" but " in t for t, _ in texts)
    run = train(Config(cell="lstm", task="sentiment", hidden=16, steps=300, lr=0.01, eval_every=300, test_size=256))
    assert run.history[-1]["test_accuracy"] > 0.75


def test_predict_command_writes_dates(tmp_path):
    out = tmp_path / "dates"
    trained = subprocess.run([sys.executable, "-m", "gategraph.cli", "train", "gru", "--task", "dates", "--attention",
                              "dot", "--hidden", "16", "--steps", "20", "--eval-every", "10", "-o", str(out)],
                             capture_output=True, text=True, cwd=ROOT)
    assert trained.returncode == 0, trained.stderr
    assert (out / "attention.png").stat().st_size > 5_000
    said = subprocess.run([sys.executable, "-m", "gategraph.cli", "predict", str(out), "26 november 2026"],
                          capture_output=True, text=True, cwd=ROOT)
    assert said.returncode == 0 and len(said.stdout.strip()) <= 64
    bad = subprocess.run([sys.executable, "-m", "gategraph.cli", "predict", str(out), "26 NOVEMBER"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "has no 'B', 'E', 'M', 'N', 'O', 'R', 'V' in its input" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_learner_fits_arrays_in_the_scikit_learn_manner():
    """Does the sequence sum to more than zero? Labels from the data, no task object."""
    from gategraph.train import Learner

    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 600, 1))
    y = (X.sum(axis=(0, 2)) > 0).astype(int)
    learner = Learner("gru", hidden=8, steps=300, lr=0.01).fit(X[:, :500], y[:500])
    assert set(learner.params_) >= {"l0.fwd.W_r", "out.W"} and len(learner.history_) == 300
    assert learner.score(X[:, 500:], y[500:]) > 0.85
    with pytest.raises(ValueInputError, match="X must be"):
        Learner().fit(X[0], y)


def test_one_to_many_writes_a_sequence_from_one_input():
    """Given a symbol k, write k, k+1, k+2, ... (mod 5): the input is read at the first step only."""
    from gategraph.train import Learner

    K, T = 5, 6
    starts = np.random.default_rng(1).integers(0, K, 400)
    X = np.eye(K)[starts]
    y = (starts[None, :] + np.arange(T)[:, None]) % K
    learner = Learner("gru", structure="one-to-many", hidden=16, steps=400, lr=0.02).fit(X[:300], y[:, :300])
    assert learner.predict(X[300:]).shape == (T, 100)
    assert learner.score(X[300:], y[:, 300:]) > 0.95
    model = SequenceModel(cells.lstm(), K, 4, K, "one-to-many", "xent", dtype="float64")
    params = model.init(0)
    value, grads, _ = model.loss_and_grads(params, X[:3], y[:, :3])
    a = params["l0.fwd.W_f"]
    old = a[1, 2]
    a[1, 2] = old + 1e-6
    up = model.loss_and_grads(params, X[:3], y[:, :3])[0]
    a[1, 2] = old - 1e-6
    down = model.loss_and_grads(params, X[:3], y[:, :3])[0]
    a[1, 2] = old
    assert abs((up - down) / 2e-6 - grads["l0.fwd.W_f"][1, 2]) < 1e-7


def test_scheduled_sampling_moves_the_ratio():
    from gategraph.train import Run

    run = Run(Config(task="reverse", steps=100, teacher_forcing=1.0, teacher_forcing_end=0.0, hidden=4))
    assert run.teacher_forcing() == 1.0
    run.step = 75
    assert run.teacher_forcing() == pytest.approx(0.25)
    with pytest.raises(Exception, match="between 0 and 1"):
        Run(Config(task="reverse", teacher_forcing=1.5))
    with pytest.raises(Exception, match="the adding task is many-to-one"):
        Run(Config(task="adding", structure="many-to-many"))


# --- user cells, the one loop, the models' public parts ------------------------------------------------------


def test_train_takes_a_cell_from_a_file_and_evaluate_and_resume_reload_it(tmp_path):
    """`gategraph train path.py:function`: the run records where the cell is, so that evaluate and --resume
    work on it from any folder."""
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "gategraph.cli", "train", "examples/mgu.py:mgu", "--task", "adding",
                           "--length", "6", "--hidden", "4", "--batch", "4", "--steps", "4", "--eval-every", "2",
                           "-o", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "config.json").read_text())["cell"] == f"{ROOT / 'examples' / 'mgu.py'}:mgu"
    assert (out / "gates.png").exists()  # the MGU's one σ gate, drawn
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    evaluated = subprocess.run([sys.executable, "-m", "gategraph.cli", "evaluate", str(out)], capture_output=True,
                               text=True, cwd=elsewhere)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "mgu on adding, step 4, test_mse" in evaluated.stdout
    resumed = subprocess.run([sys.executable, "-m", "gategraph.cli", "train", "--resume", str(out), "--steps", "6"],
                             capture_output=True, text=True, cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr
    assert load_run(out).step == 6


def test_a_run_from_python_records_its_cell_file_as_an_absolute_path(tmp_path, monkeypatch):
    from gategraph.train import Run

    monkeypatch.chdir(ROOT)
    config = Config(cell="examples/mgu.py:mgu", task="adding", hidden=4, test_size=4, task_options={"T": 6})
    assert Run(config).config.cell == f"{ROOT / 'examples' / 'mgu.py'}:mgu"
    assert Run(Config(cell="peephole-lstm", hidden=4, test_size=4, task_options={"T": 6})).config.cell == \
        "peephole_lstm"
    with pytest.raises(SpecError, match="unknown cell 'lstmm'"):
        Run(Config(cell="lstmm"))


def test_the_learner_takes_a_cell_object_or_a_file_and_trains_with_the_one_loop():
    from gategraph.train import Learner
    from tests.user_cells import dot_gate

    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 40, 2))
    y = (X[:, :, 0].sum(axis=0) > 0).astype(int)
    learner = Learner(dot_gate(), hidden=4, steps=3, batch=8).fit(X, y)
    assert {"l0.fwd.u", "l0.fwd.W", "out.W"} <= set(learner.params_)
    assert [r["step"] for r in learner.history_] == [1, 2, 3]
    assert 0 <= learner.history_[-1]["train_accuracy"] <= 1  # train's loop scores the run at its last step
    from_file = Learner(f"{ROOT / 'examples' / 'mgu.py'}:mgu", hidden=4, steps=2, batch=8).fit(X, y)
    assert "l0.fwd.W_f" in from_file.params_
    with pytest.raises(ValueInputError, match=r"^step \d+: the loss is .*: the model diverged; the run stops"):
        Learner("rnn", hidden=4, steps=50, lr=1e6, optimizer="sgd", clip=None, loss="mse").fit(X, X.sum((0, 2)) ** 3)


def test_models_show_a_layer_s_parameters_and_the_gates_publicly():
    model = SequenceModel(cells.lstm(), 3, 4, 2, "many-to-one", "xent", layers=2, dtype="float64")
    params = model.init(0)
    assert set(model.rnn.layer_params(params, 1)) == {"W_f", "b_f", "W_i", "b_i", "W_C", "b_C", "W_o", "b_o"}
    assert model.rnn.layer_params(params, 1)["W_f"] is params["l1.fwd.W_f"]
    gates = model.gate_values(params, np.random.default_rng(0).normal(size=(5, 2, 3)))
    assert set(gates) == {"f", "i", "o"} and all(v.shape == (5, 2, 4) and (0 < v).all() and (v < 1).all()
                                                 for v in gates.values())
    with pytest.raises(SpecError, match="no layer 2 fwd"):
        model.rnn.layer_params(params, 2)
    one = SequenceModel(cells.gru(), 3, 4, 2, "one-to-many", "xent")
    assert one.input_sequence(np.ones((2, 3)), 4).shape == (4, 2, 3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("B", [1, 7])
def test_the_output_layers_gradients_of_every_step_at_once_are_those_of_each_step_alone(dtype, B):
    """A free-running decoder takes its output layer's gradients of all steps from one stacked product: they
    must be the per-step products' numbers exactly, or a run's numbers would change with how it decoded."""
    rng = np.random.default_rng(5)
    h, dy = rng.normal(size=(9, B, 13)).astype(dtype), rng.normal(size=(9, B, 6)).astype(dtype)
    stacked = Linear("out").step_grads(h, dy)
    for t in range(9):
        alone = Linear("out").param_grads(h[t:t + 1], dy[t:t + 1])
        assert all(np.array_equal(stacked[k][t], alone[k]) and stacked[k].dtype == alone[k].dtype for k in alone)
