"""Plots of training runs (matplotlib, drawn off screen): loss curves, several runs on one axis.

Imports: matplotlib, numpy, gategraph.files, gategraph.errors, renderers.svg.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gategraph.errors import UsageError  # noqa: E402
from gategraph.files import atomic_write  # noqa: E402
from gategraph.renderers import svg  # noqa: E402

# text a slide can show: the plots are drawn at their size on a slide (about 6 inches wide), so every label,
# tick and legend entry, and a formula's subscripts (0.7 of the font), read at 12 px on a 1280×720 screen
STYLE = {"font.size": 12, "axes.titlesize": 13, "legend.fontsize": 12, "xtick.labelsize": 12,
         "ytick.labelsize": 12, "svg.fonttype": "none"}


def image_formats() -> list[str]:
    """The file extensions matplotlib can draw to here (png, pdf, svg, ...)."""
    return sorted(plt.figure().canvas.get_supported_filetypes())


def check_image_path(path: str | Path) -> None:
    """Refuse, in one line and before any work, a file name matplotlib cannot draw to."""
    suffix = Path(path).suffix.lstrip(".").lower()
    formats = image_formats()
    plt.close("all")
    if suffix not in formats:
        raise UsageError(f"cannot draw a figure to {Path(path).name!r}: name a file ending in "
                         f"{', '.join('.' + f for f in formats)}")


def _save(fig, path: str | Path) -> Path:
    """Write `fig`; an SVG keeps its text as text (`svg.fonttype = none`) and is marked with its smallest."""
    buf, fmt = io.BytesIO(), Path(path).suffix.lstrip(".").lower() or "png"
    with plt.rc_context(STYLE):
        fig.savefig(buf, format=fmt, dpi=150, bbox_inches="tight")
    plt.close(fig)
    data = buf.getvalue()
    if fmt == "svg":
        data = svg.mark(data, min(svg.text_sizes(data)))
    return atomic_write(path, data)


@plt.rc_context(STYLE)
def loss_curves(runs: dict, path: str | Path, metric: str | None = None, title: str = "",
                baseline: tuple[float, str] | None = None) -> Path:
    """runs: label -> history (rows with "step", "loss" and, every few steps, the test metric). The training
    loss is drawn thin; the test metric, when given, thick, on the same axis; `baseline` (value, label) dashed."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for k, (label, history) in enumerate(runs.items()):
        colour = f"C{k}"
        steps = [r["step"] for r in history]
        ax.plot(steps, [r["loss"] for r in history], color=colour, alpha=0.35 if metric else 1.0,
                lw=0.8 if metric else 1.8)
        if metric:
            pts = [(r["step"], r[metric]) for r in history if r.get(metric) not in (None, "")]
            if pts:
                ax.plot(*zip(*pts, strict=True), color=colour, lw=2, label=f"{label} ({metric.replace('_', ' ')})")
        else:
            ax.lines[-1].set_label(label)
    if baseline:
        ax.axhline(baseline[0], color="0.4", ls="--", lw=1, label=baseline[1])
    ax.set_xlabel("step")
    ax.set_ylabel("loss (thin) and test score (thick)" if metric else "loss")
    if all(r["loss"] > 0 for h in runs.values() for r in h):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return _save(fig, path)


@plt.rc_context(STYLE)
def attention_heatmap(weights, source: list[str], target: list[str], path: str | Path, title: str = "") -> Path:
    """weights (T, S): how much output step t read source position s; tokens on the axes."""
    fig, ax = plt.subplots(figsize=(0.32 * len(source) + 1.6, 0.32 * len(target) + 1.2))
    im = ax.imshow(weights, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(source)), [repr(c)[1:-1] if c != " " else "␣" for c in source])
    ax.set_yticks(range(len(target)), target)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, label="attention weight")
    if title:
        ax.set_title(title, pad=28)
    return _save(fig, path)


@plt.rc_context(STYLE)
def gradient_norms(curves: dict, path: str | Path, title: str = "") -> Path:
    """curves: label -> norms[k] = mean over sequences of ‖∂L/∂h_{T-1-k}‖, k = 0 (the step the loss reads)
    .. T-1. The vanishing-gradient plot: on a log axis, a straight falling line is geometric decay."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for k, (label, norms) in enumerate(curves.items()):
        norms = np.asarray(norms, dtype=float)
        zero = np.flatnonzero(norms == 0)
        if zero.size:  # below the smallest number the dtype holds: say so rather than draw nothing
            label = f"{label} (exactly 0 from k = {zero[0]} on)"
            norms = np.where(norms == 0, np.nan, norms)
        ax.plot(range(len(norms)), norms, color=f"C{k}", lw=2, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("distance from the loss, k (steps)")
    ax.set_ylabel(r"$\|\partial L / \partial h_{T-k}\|$")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return _save(fig, path)


@plt.rc_context(STYLE)
def gate_activations(gates: dict, path: str | Path, title: str = "", marks: list[int] | None = None) -> Path:
    """gates: name -> (T, units) values in [0, 1] for one sequence: one panel per gate, time across, units
    down; `marks`: steps to mark above each panel (where the input mattered)."""
    fig, axes = plt.subplots(len(gates), 1, figsize=(7.2, 1.5 * len(gates) + 0.6), sharex=True, squeeze=False)
    for ax, (name, values) in zip(axes[:, 0], gates.items(), strict=True):
        im = ax.imshow(values.T, cmap="viridis", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
        ax.set_yticks([])
        for m in marks or []:  # a red tick above the panel, so the mark hides no activation
            ax.axvline(m, ymin=1.0, ymax=1.1, color="C3", lw=2.5, clip_on=False)
    axes[-1, 0].set_xlabel("step t")
    fig.colorbar(im, ax=axes[:, 0], fraction=0.025, pad=0.02, label="activation")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def sweep_curves(curves: dict, path: str | Path, metric: str, title: str = "") -> Path:
    """curves: setting -> one [(step, score), ...] per seed. Each setting's mean over its seeds as a line, the
    band from the lowest to the highest seed around it, every setting on one axis."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for k, (label, seeds) in enumerate(curves.items()):
        seeds = [s for s in seeds if s]
        if not seeds:
            continue
        n = min(len(s) for s in seeds)  # the steps every seed reached
        steps = [step for step, _ in seeds[0][:n]]
        values = np.array([[v for _, v in s[:n]] for s in seeds], dtype=float)
        ax.plot(steps, values.mean(axis=0), color=f"C{k}", lw=2, label=f"{label} ({len(seeds)} seeds)")
        if len(seeds) > 1:
            ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=f"C{k}", alpha=0.2, lw=0)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{metric.replace('_', ' ')}: mean, band from lowest to highest seed")
    if metric.endswith("mse") and all(v > 0 for s in curves.values() for run in s for _, v in run):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def sweep_finals(finals: dict, path: str | Path, metric: str, title: str = "") -> Path:
    """finals: setting -> the final score of each seed. One row per setting: every seed a dot, the mean a
    bar across them."""
    labels = list(finals)
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(labels) + 1.2))
    for k, label in enumerate(labels):
        scores = np.asarray(finals[label], dtype=float)
        jitter = np.linspace(-0.12, 0.12, len(scores)) if len(scores) > 1 else np.zeros(1)
        ax.scatter(scores, k + jitter[: len(scores)], color=f"C{k}", s=22, zorder=3)
        if len(scores):
            ax.plot([scores.mean()] * 2, [k - 0.3, k + 0.3], color=f"C{k}", lw=2.5)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"final {metric.replace('_', ' ')} (dots: seeds; bar: their mean)")
    if metric.endswith("mse") and all(v > 0 for s in finals.values() for v in s):
        ax.set_xscale("log")
    ax.grid(alpha=0.3, axis="x")
    if title:
        ax.set_title(title)
    return _save(fig, path)
