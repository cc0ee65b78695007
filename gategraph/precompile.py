"""A generated kernel module, imported by its path; and one of its passes compiled in a second process, so
that two cores compile a new kernel: this process compiles `forward` while the child compiles `backward`
into Numba's cache, from which this process loads it when it first runs backward (gategraph.kernel).

The child needs neither SymPy nor the cell: it imports the module and compiles one function for a signature
written in Numba's types, "(float32[:, ::1], int64)". Numba writes a cache entry to a temporary file and
renames it, so a child that fails or is killed leaves no entry, never a broken one, and the parent compiles
the pass itself.

    python -m gategraph.precompile MODULE.py FUNCTION SIGNATURE

Imports: gategraph.blas, gategraph.compiling (on first use); numba in the child.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from gategraph import blas


def load(path: Path):
    """The generated module at `path`, imported under its file's stem (registered before it runs: Numba's
    cached code finds its globals by the module's name)."""
    blas.load()  # before Numba looks for SciPy's BLAS
    from gategraph.compiling import cached_loads  # (Numba: not on `import gategraph.kernel`)

    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with cached_loads():  # the helpers with signatures load (or compile) as the module runs
            spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def start(path: Path, function: str, signature: str, hold: int | None = None) -> subprocess.Popen:
    """A child process that compiles `function` of the module at `path` for `signature` into Numba's cache
    (its exit status says whether it did; its output is dropped). `hold`: a file descriptor the child keeps
    open while it lives (a lock it holds)."""
    root = str(Path(__file__).resolve().parent.parent)  # this gategraph, whatever the child's sys.path
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
    return subprocess.Popen([sys.executable, "-m", "gategraph.precompile", str(path), function, signature],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            pass_fds=() if hold is None else (hold,))


def main(argv: list[str]) -> None:
    path, function, signature = argv
    compiled = getattr(load(Path(path)), function)
    from numba.core.sigutils import normalize_signature

    types, _ = normalize_signature(signature)
    compiled.compile(types)  # as a tuple of types: the key a call looks for in the cache


if __name__ == "__main__":
    main(sys.argv[1:])
