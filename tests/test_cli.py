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
    (("example", "gru", "--seed", "abc"), "gategraph: error: argument --seed: 'abc' is not a whole number"),
    (("equations", "examples/mgu.py"), "gategraph: error: name the function that returns the cell"),
    (("graph", "lstm", "-o", "/proc/no/x.png"), "gategraph: error: cannot write a file there"),
    (("frobnicate",), "gategraph: error: argument COMMAND: invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(args, message, tmp_path):
    proc = run_cli(*args, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1
    assert proc.stdout == ""


@pytest.mark.parametrize("source,message", [
    ("def cell():\n    return 42\n", "returned int, not a gategraph Cell"),
    ("def cell(:\n", "could not be loaded: SyntaxError: invalid syntax"),
    ("import nosuchmodule\n", "could not be loaded: ModuleNotFoundError: No module named 'nosuchmodule'"),
    ("def cell():\n    raise RuntimeError('boom')\n", "cell() failed: RuntimeError: boom"),
    ("from gategraph import CellBuilder\ndef cell():\n    return CellBuilder('').cell()\n", "a cell needs a name"),
])
def test_a_broken_cell_file_is_one_line(tmp_path, source, message):
    (tmp_path / "bad.py").write_text(source)
    proc = run_cli("equations", f"{tmp_path / 'bad.py'}:cell", check=False)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1


def test_version():
    assert run_cli("--version").stdout.startswith("gategraph 0.")


@pytest.mark.parametrize("command", ["cells", "equations", "graph", "example", "derive", "check", "jacobian"])
def test_help(command):
    assert "usage: gategraph" in run_cli(command, "--help").stdout


def test_derive_prints_the_bptt_recurrences_and_a_parameter_derivation():
    out = run_cli("derive", "lstm", "--bptt").stdout
    assert "C̄_t = C̄_{t+1} ⊙ f_{t+1} + h̄_t ⊙ o_t ⊙ (1 - tanh²(C_t))" in out
    out = run_cli("derive", "lstm", "--param", "W_f", "--format", "latex").stdout
    assert out.startswith(r"\begin{aligned}") and r"\sum_t \bar{a}_{f,t} [h_{t-1}, x_t]^\top" in out


def test_check_passes_with_a_table_and_as_json():
    out = run_cli("check", "rnn").stdout
    assert "W          finite differences" in out and "rnn: every gradient agrees" in out
    assert out.count("pass") == 8
    import json

    report = json.loads(run_cli("check", "gru", "--no-exact", "--json").stdout)
    assert report["ok"] is True and {r["name"] for r in report["rows"]} == {"W_z", "W_r", "W", "x", "h"}


def test_check_exits_non_zero_when_a_gradient_is_wrong(tmp_path):
    source = (ROOT / "examples" / "mgu.py").read_text()
    (tmp_path / "mgu.py").write_text(source)
    (tmp_path / "broken.py").write_text(
        "import gategraph.derive as d\n"
        "from mgu import mgu\n"
        "_derive = d.derive\n"
        "def broken(cell):\n"
        "    adj = _derive(cell)\n"
        "    adj.grads['b_f'] = 2 * adj.grads['b_f']  # a factor of 2 too many\n"
        "    return adj\n"
        "d.derive = broken\n"
        "import gategraph.check as c\n"
        "c.derive = broken\n"
        "import sys\n"
        "from gategraph.cli import main\n"
        "sys.exit(main(['check', 'mgu.py:mgu', '--no-exact']))\n")
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "broken.py"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "b_f        finite differences" in proc.stdout and "FAIL" in proc.stdout
    assert "SOME GRADIENTS DISAGREE" in proc.stdout


def test_jacobian_symbolic_and_numeric():
    out = run_cli("jacobian", "rnn", "--steps", "3", "--seed", "0").stdout
    assert "∂h_t/∂h_{t-1} = diag(1 - h_t²) W[:, 1:H]" in out
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    norms = [float(r[1]) for r in rows]
    assert norms[0] > norms[1] > norms[2]  # the simple RNN's gradient vanishes


@needs_dot
def test_graph_backward_and_unrolled(tmp_path):
    run_cli("graph", "lstm", "--backward", "-o", tmp_path / "b.png")
    run_cli("graph", "lstm", "--unroll", "5", "--highlight", "C", "-o", tmp_path / "u.png")
    assert (tmp_path / "b.png").stat().st_size > 10_000 and (tmp_path / "u.png").stat().st_size > 10_000


@pytest.mark.parametrize("args,message", [
    (("graph", "lstm", "--highlight", "C", "-o", "x.png"), "--highlight marks a path through time"),
    (("graph", "lstm", "--unroll", "5", "--highlight", "q", "-o", "x.png"), "--highlight takes a carried state"),
    (("graph", "lstm", "--unroll", "0", "-o", "x.png"), "argument --unroll: takes 1 to 50, got 0"),
    (("check", "rnn", "--steps", "0"), "argument --steps: takes 1 to 50, got 0"),
    (("check", "rnn", "--seed", "-1"), "argument --seed: takes 0 to"),
    (("jacobian", "rnn", "--steps", "5"), "give --seed S too"),
    (("jacobian", "lstm", "--seed", "0", "--set", "b_f=nan"), "b_f = nan is not a finite number"),
    (("derive", "lstm", "--param", "W_z"), "'W_z' is not a parameter of 'lstm'"),
    (("jacobian", "attention-dot"), "carries no state"),
])
def test_issue3_bad_input_is_one_line(args, message, tmp_path):
    proc = run_cli(*args, check=False)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1


def test_jacobian_with_open_forget_gates_keeps_the_cell_state_gradient():
    out = run_cli("jacobian", "lstm", "--steps", "8", "--seed", "0", "--set", "b_f=4").stdout
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    assert "b_f = 4" in out and float(rows[-1][2]) > 0.5  # ‖∂C_t/∂C_(t-8)‖ stays of order 1
    proc = run_cli("jacobian", "lstm", "--seed", "0", "--set", "b_z=1", check=False)
    assert proc.returncode == 2 and "'b_z' is not a parameter of 'lstm'" in proc.stderr


def test_param_and_bptt_are_alternatives(tmp_path):
    proc = run_cli("derive", "lstm", "--param", "W_f", "--bptt", check=False, cwd=tmp_path)
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr


def test_a_bad_set_value_is_refused_before_anything_is_printed():
    proc = run_cli("jacobian", "rnn", "--seed", "0", "--set", "b=nan", check=False)
    assert proc.returncode == 2 and proc.stdout == "" and "b = nan is not a finite number" in proc.stderr


@needs_dot
def test_a_scalar_gate_from_a_dot_works_in_jacobian_graph_and_slides(tmp_path):
    """g_t = σ(uᵀ h_{t-1}) scaling a vector: each view that reads the step Jacobian works for it."""
    ref = f"{ROOT / 'tests' / 'user_cells.py'}:dot_gate"
    out = run_cli("jacobian", ref, "--steps", "2", "--seed", "0").stdout
    assert "∂h_t/∂h_{t-1} = tanh(W · [h_{t-1}, x_t] + c) (g_t ⊙ (1 - g_t)) uᵀ" in out
    assert [line.split()[0] for line in out.splitlines() if line[:1].isdigit()] == ["1", "2"]
    run_cli("graph", ref, "--unroll", "3", "--highlight", "h", "-o", tmp_path / "u.dot")
    assert "∂h<SUB>3</SUB>/∂h<SUB>2</SUB>" in (tmp_path / "u.dot").read_text()
    run_cli("graph", ref, "--unroll", "3", "--highlight", "h", "-o", tmp_path / "u.png")
    assert (tmp_path / "u.png").stat().st_size > 10_000
    proc = run_cli("slides", ref, "-o", tmp_path / "deck", "--format", "html,beamer")
    assert "note:" not in proc.stderr
    tex = (tmp_path / "deck" / "beamer" / "deck.tex").read_text()
    assert "how far back the gradient reaches" in tex and r"u^\top" in tex


def test_a_jacobian_that_is_no_product_of_matrices_is_one_line_and_still_measured():
    ref = f"{ROOT / 'tests' / 'user_cells.py'}:self_attending"
    proc = run_cli("jacobian", ref, check=False)
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        "gategraph: error: cannot write the Jacobian through ColSum as a product of matrices; "
        "`gategraph jacobian CELL --seed 0` still measures the norms"]
    proc = run_cli("jacobian", ref, "--seed", "0", "--steps", "3")
    assert "note: cannot write the Jacobian through ColSum" in proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines() if line[:1].isdigit()] == ["1", "2", "3"]


def test_an_interruption_is_known_by_its_type_not_its_name(monkeypatch, capsys):
    """Exit status 130 for every Interrupted (a subclass too); 2 for any other error, whatever its name."""
    from gategraph import cli, errors

    class StoppedEarly(errors.Interrupted):
        pass

    class Interrupted(errors.GategraphError):  # not gategraph's Interrupted, only named alike
        pass

    for raised, status in ((StoppedEarly("stopped at step 3"), 130), (Interrupted("no such thing"), 2)):
        def command(args, raised=raised):
            raise raised

        monkeypatch.setattr(cli, "cmd_tasks", command)
        assert cli.main(["tasks"]) == status
        assert str(raised) in capsys.readouterr().err


def test_lecture_example_says_which_slips_reproduce_the_wrong_values():
    out = run_cli("example", "lecture-lstm").stdout
    assert "took entry 2 of x_t with the wrong sign in W_C[x] · x_t in C̃_t → [10, 10]" in out
    assert "left out the term W_o[x] · x_t in o_t → [0.8808, 0.8808]" in out
    assert "no single slip reproduces it; two slips together do:" in out
    assert "left out the term W_o[x] · x_t in o_t, and dropped the tanh in h_t → [0.8808, 0.8808]" in out


def test_the_backward_example_from_the_command_line():
    out = run_cli("example", "lecture-lstm", "--backward", "--target", "0,1").stdout
    assert "L = ½‖h_t − y‖² with y = [0, 1]" in out and "∂L/∂W_f = Σ_t ā_{f,t} [h_{t-1}, x_t]ᵀ" in out
    out = run_cli("example", "gru", "--backward", "--steps", "2", "--dh", "1,-1").stdout
    assert "step 1 of 2" in out and "step 2 of 2 (the loss is here)" in out
    assert "∂ℓ_t/∂h_t = [1, -1]   (given)" in out


@pytest.mark.parametrize("args, message", [
    (("example", "lstm", "--steps", "2"), "gategraph: error: --steps, --target and --dh are for the backward pass"),
    (("example", "lstm", "--backward", "--steps", "5"), "--steps: takes 1 to 4, got 5"),
    (("example", "lstm", "--backward", "--target", "a,b"), "gategraph: error: --target takes numbers separated"),
    (("example", "lstm", "--backward", "--dh", "1"), "gategraph: error: ∂L/∂h has 1 entries; the output has 2"),
    (("grade", "nowhere.json", "a.json"), "gategraph: error: no sheet at nowhere.json"),
])
def test_bad_backward_and_grading_input_is_one_line(args, message):
    proc = run_cli(*args, check=False)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
