"""The adding problem, T = 100, with the same budget for each cell: the LSTM and the GRU learn it, the
vanilla RNN stays at the baseline of always answering 1 (MSE 1/6 ≈ 0.167): its gradient vanishes over
the distance between the two marked numbers and the end.

    python examples/adding.py [--steps 3000] [-o adding.png]

Prints each cell's test MSE and draws three pictures: the loss curves on one axis (adding.png); the norm
of ∂L/∂h_t against the distance from the loss for each trained cell (adding-gradients.png); the trained
LSTM's gates over one sequence, the two marked steps in red (adding-gates.png). About a minute and a half
on two cores.
"""

import argparse
import os
from pathlib import Path

import numpy as np

from gategraph.renderers.plots import gate_activations, gradient_norms, loss_curves
from gategraph.train import Config, gradient_flow, train

QUICK = bool(os.environ.get("GATEGRAPH_QUICK"))  # the test suite runs every example small


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=60 if QUICK else 3000)
    p.add_argument("-o", "--output", default="adding.png")
    args = p.parse_args()
    histories, norms = {}, {}
    stem = Path(args.output).with_suffix("")
    for cell in ("lstm", "gru", "rnn"):
        run = train(Config(cell=cell, task="adding", hidden=64, batch=32, lr=0.003, steps=args.steps,
                           eval_every=max(1, args.steps // 20), seed=0, task_options={"T": 20 if QUICK else 100}))
        histories[cell] = run.history
        norms[cell], gates = gradient_flow(run), gates_of(run)
        print(f"{cell:<5} test MSE {run.history[-1]['test_mse']:.4f} after {args.steps} steps "
              f"({run.history[-1]['seconds']:.0f} s); ‖∂L/∂h‖ 50 steps back / at the end: "
              f"{norms[cell][min(50, len(norms[cell]) - 1)] / norms[cell][0]:.1e}")
        if cell == "lstm":
            x, _, _ = run.test
            marks = list(np.flatnonzero(x[:, 0, 1]))
            gate_activations(gates, f"{stem}-gates.png", "the trained LSTM's gates on one sequence "
                             "(red: the two marked steps)", marks)
    loss_curves(histories, args.output, "test_mse", "the adding problem, T = 100",
                baseline=(1 / 6, "always answering 1 (MSE 0.167)"))
    gradient_norms(norms, f"{stem}-gradients.png", "how far back the gradient reaches, trained on the adding problem")
    print(f"wrote {args.output}, {stem}-gradients.png, {stem}-gates.png")


def gates_of(run):
    """The first test sequence's gates (f, i, o for the LSTM; z, r for the GRU)."""
    return {g: v[:, 0] for g, v in run.model.gate_values(run.params, run.test[0][:, :1]).items()}


if __name__ == "__main__":
    main()
