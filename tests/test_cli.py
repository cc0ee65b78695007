"""The `gategraph` command, run as a user runs it: in its own process."""

import pytest

from gategraph.cells import CELLS
from tests.conftest import ROOT, needs_dot, run_cli


def test_cells_lists_every_builtin_with_a_description():
    out = run_cli("cells").stdout.splitlines()
    assert [line.split()[0] for line in out] == [n.replace("_", "-") for n in CELLS]
    assert all(len(line.split(maxsplit=1)) == 2 for line in out)


@pytest.mark.parametrize("fmt,expected", [
    ("text", "f_t = σ(W_f · [h_{t-1}, x_t] + b_f)"),
    ("latex", r"  f_t &= \sigma(W_f \cdot [h_{t-1}, x_t] + b_f) \\"),
])
def test_equations(fmt, expected):
    assert expected in run_cli("equations", "lstm", "--format", fmt).stdout.splitlines()


@needs_dot
def test_graph_writes_a_png(tmp_path):
    out = run_cli("graph", "lstm", "-o", tmp_path / "lstm.png")
    assert (tmp_path / "lstm.png").read_bytes()[:4] == b"\x89PNG" and "wrote" in out.stdout


def test_lecture_example_shows_the_disagreements():
    out = run_cli("example", "lecture-lstm").stdout
    assert "✗ does not hold" in out and "6 of 9 claimed values hold" in out


def test_example_of_any_cell_on_random_numbers():
    out = run_cli("example", "gru-reset-after", "--sizes", "X=2,H=3", "--seed", "4").stdout
    assert "n_t = tanh(W_n · x_t + b_n + r_t ⊙ (U_n · h_{t-1} + c_n))" in out


@needs_dot
def test_a_user_cell_from_a_file_works_in_every_view(tmp_path):
    ref = f"{ROOT / 'examples' / 'mgu.py'}:mgu"
    assert "h̃_t = tanh(W_h · [f_t ⊙ h_{t-1}, x_t] + b_h)" in run_cli("equations", ref).stdout
    run_cli("graph", ref, "-o", tmp_path / "mgu.svg")
    assert (tmp_path / "mgu.svg").read_text().lstrip().startswith("<?xml")
    assert "forget gate" in run_cli("example", ref).stdout


@pytest.mark.parametrize("args,message", [
    (("equations", "lstmm"), "gategraph: error: unknown cell 'lstmm': choose one of attention-additive,"),
    (("equations", "nofile.py:cell"), "gategraph: error: cell file 'nofile.py' does not exist"),
    (("example", "rnn", "--sizes", "X3"), "gategraph: error: --sizes takes NAME=INT pairs"),
    (("graph", "lstm", "-o", "lstm.jpg"), "gategraph: error: unknown graph format '.jpg'"),
    (("example", "gru", "--sizes", "X=0"), "gategraph: error: --sizes: X=0 is out of range"),
    (("example", "gru", "--sizes", "Q=3"), "gategraph: error: cell 'gru' has no size Q; its sizes are X, H"),
    (("example", "lecture-lstm", "--sizes", "X=3"), "gategraph: error: --sizes is for examples on random"),
    (("example", "gru", "--seed", "abc"), "gategraph: error: argument --seed: invalid int value: 'abc'"),
    (("equations", "examples/mgu.py"), "gategraph: error: name the function that returns the cell"),
    (("graph", "lstm", "-o", "/proc/no/x.png"), "gategraph: error: cannot write a file there"),
    (("frobnicate",), "gategraph: error: argument COMMAND: invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(args, message, tmp_path):
    proc = run_cli(*args, check=False, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1
    assert proc.stdout == ""


@pytest.mark.parametrize("source,message", [
    ("def cell():\n    return 42\n", "returned int, not a gategraph Cell"),
    ("def cell(:\n", "could not be loaded: SyntaxError: invalid syntax"),
    ("import nosuchmodule\n", "could not be loaded: ModuleNotFoundError: No module named 'nosuchmodule'"),
    ("def cell():\n    raise RuntimeError('boom')\n", "cell() failed: RuntimeError: boom"),
])
def test_a_broken_cell_file_is_one_line(tmp_path, source, message):
    (tmp_path / "bad.py").write_text(source)
    proc = run_cli("equations", f"{tmp_path / 'bad.py'}:cell", check=False)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1


def test_version():
    assert run_cli("--version").stdout.startswith("gategraph 0.")


@pytest.mark.parametrize("command", ["cells", "equations", "graph", "example"])
def test_help(command):
    assert "usage: gategraph" in run_cli(command, "--help").stdout
