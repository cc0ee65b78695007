"""The built-in cells, each declared once, in the lecture's notation where the lecture has one.

Every function returns a fresh, validated `Cell`; options are keyword arguments. `CELLS` maps the names
the command line uses to these functions. `load_cell` finds a cell by a built-in name or as a function in a
file of the user's (`path/to/file.py:function`), for the command line, training runs and the Learner alike.

Imports: sympy, gategraph.spec, gategraph.errors.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from gategraph.errors import GategraphError, SpecError, UsageError
from gategraph.spec import Cell, CellBuilder, concat, rowplus, sigmoid, softmax, tanh


def rnn() -> Cell:
    """The simple (Elman) RNN: h_t = tanh(W · [h_{t-1}, x_t] + b)."""
    b = CellBuilder("rnn", "simple RNN: h_t = tanh(W · [h_{t-1}, x_t] + b)")
    X, H = b.sizes("X H")
    x, h = b.input("x", X, "input"), b.state("h", H, "hidden state")
    W, bias = b.param("W", (H, H + X)), b.param("b", H)
    b.let("h", tanh(W @ concat(h, x) + bias), "hidden state")
    return b.cell()


def lstm() -> Cell:
    """The LSTM in the lecture's form: four gates on [h_{t-1}, x_t], each with its own bias.

    The lecture's slide writes `b_f` in the candidate's equation; the candidate has its own bias `b_C`.
    """
    b = CellBuilder("lstm", "LSTM (lecture form): forget, input and output gates, candidate, cell state")
    X, H = b.sizes("X H")
    x = b.input("x", X, "input")
    h, C = b.state("h", H, "hidden state"), b.state("C", H, "cell state")
    W = {g: b.param(f"W_{g}", (H, H + X)) for g in "fiCo"}
    bias = {g: b.param(f"b_{g}", H) for g in "fiCo"}
    z = concat(h, x)
    f = b.let("f", sigmoid(W["f"] @ z + bias["f"]), "forget gate")
    i = b.let("i", sigmoid(W["i"] @ z + bias["i"]), "input gate")
    C_tilde = b.let("C_tilde", tanh(W["C"] @ z + bias["C"]), "candidate")
    C_t = b.let("C", f * C + i * C_tilde, "cell state")
    o = b.let("o", sigmoid(W["o"] @ z + bias["o"]), "output gate")
    b.let("h", o * tanh(C_t), "hidden state")
    return b.cell()


def peephole_lstm() -> Cell:
    """The LSTM with diagonal peephole connections (Gers & Schmidhuber 2000; Graves 2013):
    the gates also see the cell state, f_t = σ(W_f · [h_{t-1}, x_t] + p_f ⊙ C_{t-1} + b_f),
    and the output gate sees the new one, o_t = σ(W_o · [h_{t-1}, x_t] + p_o ⊙ C_t + b_o)."""
    b = CellBuilder("peephole_lstm", "LSTM with diagonal peepholes: the gates read the cell state")
    X, H = b.sizes("X H")
    x = b.input("x", X, "input")
    h, C = b.state("h", H, "hidden state"), b.state("C", H, "cell state")
    W = {g: b.param(f"W_{g}", (H, H + X)) for g in "fiCo"}
    p = {g: b.param(f"p_{g}", H, "peephole") for g in "fio"}
    bias = {g: b.param(f"b_{g}", H) for g in "fiCo"}
    z = concat(h, x)
    f = b.let("f", sigmoid(W["f"] @ z + p["f"] * C + bias["f"]), "forget gate")
    i = b.let("i", sigmoid(W["i"] @ z + p["i"] * C + bias["i"]), "input gate")
    C_tilde = b.let("C_tilde", tanh(W["C"] @ z + bias["C"]), "candidate")
    C_t = b.let("C", f * C + i * C_tilde, "cell state")
    o = b.let("o", sigmoid(W["o"] @ z + p["o"] * C_t + bias["o"]), "output gate")
    b.let("h", o * tanh(C_t), "hidden state")
    return b.cell()


def gru(bias: bool = False) -> Cell:
    """The GRU in the lecture's form (Cho et al. 2014): reset before the candidate's matrix product,
    h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t. The lecture writes no biases; `bias=True` adds b_z, b_r, b."""
    b = CellBuilder("gru", "GRU (lecture form, Cho et al. 2014): update and reset gates, no cell state")
    X, H = b.sizes("X H")
    x, h = b.input("x", X, "input"), b.state("h", H, "hidden state")
    names = {"z": ("W_z", "b_z"), "r": ("W_r", "b_r"), "h_tilde": ("W", "b")}
    W = {k: b.param(w, (H, H + X)) for k, (w, _) in names.items()}
    B = {k: b.param(c, H) for k, (_, c) in names.items()} if bias else {}

    def affine(k, v):
        return W[k] @ v + B[k] if bias else W[k] @ v

    z = b.let("z", sigmoid(affine("z", concat(h, x))), "update gate")
    r = b.let("r", sigmoid(affine("r", concat(h, x))), "reset gate")
    h_tilde = b.let("h_tilde", tanh(affine("h_tilde", concat(r * h, x))), "candidate")
    b.let("h", (1 - z) * h + z * h_tilde, "hidden state")
    return b.cell()


def gru_reset_after() -> Cell:
    """The GRU as PyTorch's `nn.GRU` computes it: the reset gate multiplies the recurrent product after
    the matrix product, n_t = tanh(W_n · x_t + b_n + r_t ⊙ (U_n · h_{t-1} + c_n)), and
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1} (z keeps the old state: the opposite of the lecture's z)."""
    b = CellBuilder("gru_reset_after", "GRU as in PyTorch: reset applied after the recurrent product")
    X, H = b.sizes("X H")
    x, h = b.input("x", X, "input"), b.state("h", H, "hidden state")
    W_r, W_z = b.param("W_r", (H, H + X)), b.param("W_z", (H, H + X))
    W_n, U_n = b.param("W_n", (H, X)), b.param("U_n", (H, H))
    b_r, b_z, b_n, c_n = (b.param(n, H) for n in ("b_r", "b_z", "b_n", "c_n"))
    r = b.let("r", sigmoid(W_r @ concat(h, x) + b_r), "reset gate")
    z = b.let("z", sigmoid(W_z @ concat(h, x) + b_z), "update gate")
    n = b.let("n", tanh(W_n @ x + b_n + r * (U_n @ h + c_n)), "candidate")
    b.let("h", (1 - z) * n + z * h, "hidden state")
    return b.cell()


def attention(score: str = "dot") -> Cell:
    """Content-based attention over a memory M of S rows (e.g. the encoder's states) for a query q_t:
    scores e_t, weights α_t = softmax(e_t), context c_t = Mᵀ · α_t. The score is
    "dot" (e_t = M · q_t), "general" (Luong: e_t = M · (W_a · q_t)) or
    "additive" (Bahdanau: e_t = tanh(M · U_aᵀ + 1 (W_a · q_t)ᵀ) · v_a)."""
    if score not in SCORES:
        raise UsageError(f"unknown attention score {score!r}; choose one of {', '.join(SCORES)}")
    b = CellBuilder(f"attention_{score}", f"content-based attention, {SCORES[score]}")
    S, H = b.sizes("S H")
    M = b.memory("M", (S, H), "memory")
    q = b.input("q", H, "query")
    if score == "dot":
        e = M @ q
    elif score == "general":
        W_a = b.param("W_a", (H, H))
        e = M @ (W_a @ q)
    else:
        A = b.sizes("A")
        U_a, W_a, v_a = b.param("U_a", (A, H)), b.param("W_a", (A, H)), b.param("v_a", A)
        u = b.let("u", tanh(rowplus(M @ U_a.T, W_a @ q)), "hidden scores")
        e = u @ v_a
    e = b.let("e", e, "scores")
    alpha = b.let("alpha", softmax(e), "attention weights")
    b.let("c", M.T @ alpha, "context")
    return b.cell(outputs=["c", "alpha"])


SCORES = {"dot": "dot score Mq", "general": "general (Luong) score M W_a q",
          "additive": "additive (Bahdanau) score tanh(M U_aᵀ + 1 (W_a q)ᵀ) v_a"}

CELLS: dict[str, Callable[[], Cell]] = {
    "rnn": rnn,
    "lstm": lstm,
    "peephole_lstm": peephole_lstm,
    "gru": gru,
    "gru_reset_after": gru_reset_after,
    "attention_dot": lambda: attention("dot"),
    "attention_general": lambda: attention("general"),
    "attention_additive": lambda: attention("additive"),
}


def load_cell(ref: str) -> Cell:
    """A built-in cell by name (`lstm`, `peephole-lstm`) or `file.py:function` returning a Cell."""
    if not isinstance(ref, str):
        raise UsageError(f"a cell is a Cell, a built-in name or 'path/to/file.py:function', got {type(ref).__name__}")
    if ":" in ref and ref.split(":", 1)[0].endswith(".py"):
        return _cell_from_file(*ref.rsplit(":", 1))
    if ref.endswith(".py"):
        raise UsageError(f"name the function that returns the cell: {ref}:FUNCTION")
    key = ref.replace("-", "_")
    if key not in CELLS:
        names = ", ".join(sorted(n.replace("_", "-") for n in CELLS))
        raise SpecError(f"unknown cell {ref!r}: choose one of {names}, or give path/to/file.py:function")
    return CELLS[key]()


def _cell_from_file(path: str, func: str) -> Cell:
    file = Path(path)
    if not file.is_file():
        raise SpecError(f"cell file {path!r} does not exist")
    spec = importlib.util.spec_from_file_location(f"gategraph_user_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        hint = f"run `python {path}` to see where"
        raise SpecError(f"{path} could not be loaded: {type(e).__name__}: {e} ({hint})") from None
    if not hasattr(module, func):
        raise SpecError(f"{path} has no function {func!r}")
    try:
        cell = getattr(module, func)()
    except GategraphError:
        raise
    except Exception as e:
        raise SpecError(f"{path}:{func}() failed: {type(e).__name__}: {e}") from None
    if not isinstance(cell, Cell):
        raise SpecError(f"{path}:{func}() returned {type(cell).__name__}, not a gategraph Cell")
    return cell


def cell_reference(ref: str) -> str:
    """What reloads the cell `ref` names from anywhere: a built-in's name (`peephole_lstm`), or the file's
    absolute path and the function (`/home/me/cells/mgu.py:mgu`)."""
    if ":" in ref and ref.split(":", 1)[0].endswith(".py"):
        path, func = ref.rsplit(":", 1)
        return f"{Path(path).resolve()}:{func}"
    return ref.replace("-", "_")
