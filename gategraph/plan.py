"""A kernel's plan: what `Kernel` needs from lowering besides the generated module itself, in plain Python,
and stored in the kernel cache so that a warm start skips SymPy's derivation and lowering.

The plan holds the argument lists of the two compiled passes, where each value lives in the tape, and the
workspace's buffers with their dimensions as polynomials in the sizes: `_T + 1` is ((1, (("_T", 1),)),
(1, ())). `Plan.of(lowered)` makes one from gategraph.lower's result; `write` and `read` keep it as JSON in
a file named by `key(cell, dtype)`, a hash of the cell's whole declaration (SymPy's `srepr`, exact to the
last bit of every constant), the dtype, the source of every module of this package as the process imported
it (the generator and all it reads; a process whose files changed since names no plan) and the versions of SymPy,
NumPy and Python. A read checks every field's type and
that the generated module it names is still there, unchanged (its SHA-256): anything else is a miss, and
the caller lowers the cell again.

Imports: gategraph.files, gategraph.errors, and the package itself for the digest of its modules taken as it was
imported (SymPy objects' own methods on `Plan.of`; this module imports no SymPy).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import platform
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from gategraph.errors import GategraphError
from gategraph.files import atomic_write, sources_digest

DTYPES = ("float32", "float64")  # what a kernel computes in
FORMAT = 1  # of the JSON file: a change of the layout below changes this
MODULE = re.compile(r"gg_[0-9a-f]{24}")  # the generated modules' names (gategraph.kernel)

# a dimension: Σ coefficient · Π size^power, as ((coefficient, ((size, power), ...)), ...)
Dim = tuple


@dataclass(frozen=True)
class Plan:
    """gategraph.lower.Lowered without its source and without SymPy (see the module's docstring)."""

    module: str  # the generated module's name in the cache, gg_<hash>
    source_sha256: str  # of that module's text
    forward_args: tuple
    tape: tuple
    backward_args: tuple
    backward_returns: tuple  # (kind, declared name)
    state_buffers: dict
    output_stores: dict  # output -> (buffer, shift)
    value_stores: dict  # name -> (buffer, shift)
    forward_work: tuple  # (buffer, dims)
    backward_work: tuple
    arguments: dict  # argument -> (kind, declared name)
    sizes: dict  # size -> its name in the code
    state_adjoints: dict  # state -> (buffer, column, width), column and width as Dims

    @classmethod
    def of(cls, lowered, module: str, source_sha256: str) -> Plan:
        """The plan of a `Lowered` (its dimensions turned into polynomials)."""
        def work(spec):
            return tuple((name, tuple(_dim(d) for d in dims)) for name, dims in spec)

        return cls(module, source_sha256, tuple(lowered.forward_args), tuple(lowered.tape),
                   tuple(lowered.backward_args), tuple(tuple(r) for r in lowered.backward_returns),
                   dict(lowered.state_buffers), {k: tuple(v) for k, v in lowered.output_stores.items()},
                   {k: tuple(v) for k, v in lowered.value_stores.items()}, work(lowered.forward_work),
                   work(lowered.backward_work), {k: tuple(v) for k, v in lowered.arguments.items()},
                   dict(lowered.sizes),
                   {st: (buf, _dim(col), _dim(width)) for st, (buf, col, width) in lowered.state_adjoints.items()})


def value(dim: Dim, sizes: dict) -> int:
    """A dimension in numbers: Σ c · Π sizes[s]^p."""
    return sum(c * math.prod(sizes[s] ** p for s, p in monomial) for c, monomial in dim)


def _dim(expr) -> Dim:
    """A SymPy polynomial in the sizes (`_B*_T`, `4*H`, `_T + 1`, or a plain int) as a Dim."""
    if isinstance(expr, int):
        return ((expr, ()),) if expr else ()
    terms = []
    for monomial, c in sorted(expr.as_coefficients_dict().items(), key=str):
        factors = monomial.as_powers_dict()
        if not c.is_Integer or not all((s.is_Symbol or s.is_Number) and p.is_Integer and p >= 0
                                       for s, p in factors.items()):
            raise ValueError(f"not a polynomial in the sizes: {expr}")
        if c:
            terms.append((int(c), tuple(sorted((str(s), int(p)) for s, p in factors.items() if s.is_Symbol))))
    return tuple(terms)


# -- the key --------------------------------------------------------------------------------------------------

@functools.cache
def _package() -> str:
    """SHA-256 of every module of this package as this process imported it (gategraph._SOURCES: the generator and
    everything it reads) and of the versions lowering depends on. (Not Numba's: the plan does not depend on it,
    and Numba checks its own version against its cache. Versions are read from the modules, loaded already:
    asking the package metadata takes longer than the whole warm start's reading and checking.)"""
    import numpy
    import sympy

    import gategraph

    digest = hashlib.sha256(gategraph._SOURCES.encode())
    digest.update(f"sympy {sympy.__version__} numpy {numpy.__version__} python {platform.python_version()} "
                  f"format {FORMAT}".encode())
    return digest.hexdigest()


def _unchanged() -> None:
    """Refuse to name a plan once the package's files changed under this process (an upgrade or an edit while
    it runs): its modules, some loaded before and some after, would no longer be the code its key names, and
    a plan it made would be found by the processes of the new code (about a millisecond: the files are read)."""
    import gategraph

    if sources_digest(Path(gategraph.__file__).parent) != gategraph._SOURCES:
        raise GategraphError("gategraph's files changed after this Python process imported it (an upgrade or an "
                             "edit): restart Python to compile kernels")


def key(cell, dtype: str) -> str:
    """The name of a cell's plan in the cache: its declaration, the dtype, and the generator (see above), which
    must be the package's files as they are (`_unchanged`)."""
    import sympy  # already loaded: the cell is made of it

    _unchanged()

    declared = (cell.name, cell.doc, cell.sizes, cell.outputs,
                [(d.var, d.shape, d.role, d.state, d.title) for d in cell.decls],
                [(st.name, st.prev, st.shape) for st in cell.states],
                [(eq.lhs, eq.rhs, eq.title) for eq in cell.equations])
    text = "\n".join((_package(), dtype, repr(sympy.srepr(declared))))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


# -- the file -------------------------------------------------------------------------------------------------

def write(path: Path, plan: Plan) -> None:
    atomic_write(path, json.dumps({"format": FORMAT, **asdict(plan)}).encode())


def read(path: Path) -> Plan | None:
    """The plan stored at `path`, if it is whole, of this format, and its module is there unchanged."""
    try:
        data = json.loads(path.read_bytes())
        plan = _checked(data)
        source = (path.parent / f"{plan.module}.py").read_bytes()
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return plan if hashlib.sha256(source).hexdigest() == plan.source_sha256 else None


def _checked(data) -> Plan:
    """A Plan from parsed JSON whose every field has its type, or a ValueError."""
    def need(ok: bool):
        if not ok:
            raise ValueError("not a kernel plan")

    def strs(v, n=None):
        need(isinstance(v, list) and all(isinstance(s, str) for s in v) and (n is None or len(v) == n))
        return tuple(v)

    def pairs(v):  # [[str, int], ...] or [[str, str], ...]
        need(isinstance(v, list) and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                                         and isinstance(p[1], str | int) for p in v))
        return tuple(tuple(p) for p in v)

    def dim(v) -> Dim:
        need(isinstance(v, list))
        out = []
        for term in v:
            need(isinstance(term, list) and len(term) == 2 and isinstance(term[0], int))
            powers = pairs(term[1])
            need(all(isinstance(p, int) and p >= 0 for _, p in powers))
            out.append((term[0], powers))
        return tuple(out)

    def table(v, item):
        need(isinstance(v, dict))
        return {k: item(x) for k, x in v.items()}

    def work(v):
        need(isinstance(v, list) and all(isinstance(w, list) and len(w) == 2 and isinstance(w[0], str) for w in v))
        return tuple((w[0], tuple(dim(d) for d in _list(w[1]))) for w in v)

    def _list(v):
        need(isinstance(v, list))
        return v

    def text(v):
        need(isinstance(v, str))
        return v

    def store(v):
        need(isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int))
        return tuple(v)

    def adjoint(v):
        need(isinstance(v, list) and len(v) == 3 and isinstance(v[0], str))
        return (v[0], dim(v[1]), dim(v[2]))

    need(isinstance(data, dict) and data.get("format") == FORMAT and MODULE.fullmatch(str(data.get("module"))))
    return Plan(text(data["module"]), text(data["source_sha256"]), strs(data["forward_args"]), strs(data["tape"]),
                strs(data["backward_args"]), tuple(strs(r, 2) for r in _list(data["backward_returns"])),
                table(data["state_buffers"], text), table(data["output_stores"], store),
                table(data["value_stores"], store), work(data["forward_work"]), work(data["backward_work"]),
                table(data["arguments"], lambda v: strs(v, 2)), table(data["sizes"], text),
                table(data["state_adjoints"], adjoint))
