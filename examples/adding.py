"""The adding problem, T = 100, with the same budget for each cell: the LSTM and the GRU learn it, the
vanilla RNN stays at the baseline of always answering 1 (MSE 1/6 ≈ 0.167): its gradient vanishes over
the distance between the two marked numbers and the end.

    python examples/adding.py [--steps 3000] [-o adding.png]

Prints each cell's test MSE and draws the loss curves on one axis. About a minute and a half on two cores.
"""

import argparse
import os

from gategraph.renderers.plots import loss_curves
from gategraph.train import Config, train

QUICK = bool(os.environ.get("GATEGRAPH_QUICK"))  # the test suite runs every example small


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=60 if QUICK else 3000)
    p.add_argument("-o", "--output", default="adding.png")
    args = p.parse_args()
    histories = {}
    for cell in ("lstm", "gru", "rnn"):
        run = train(Config(cell=cell, task="adding", hidden=64, batch=32, lr=0.003, steps=args.steps,
                           eval_every=max(1, args.steps // 20), seed=0, task_options={"T": 20 if QUICK else 100}))
        histories[cell] = run.history
        print(f"{cell:<5} test MSE {run.history[-1]['test_mse']:.4f} after {args.steps} steps "
              f"({run.history[-1]['seconds']:.0f} s)")
    loss_curves(histories, args.output, "test_mse", "the adding problem, T = 100",
                baseline=(1 / 6, "always answering 1 (MSE 0.167)"))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
