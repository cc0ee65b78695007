"""The distribution: `renderers/` ships as `gategraph.renderers`, from an editable install and from a wheel."""

import os
import shutil
import subprocess
import sys
import zipfile

from tests.conftest import ROOT

PROBE = "import gategraph.renderers.latex as m, gategraph.cli; print(m.__file__)"


def test_editable_install_imports_the_renderers_from_outside_the_repo(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert os.path.realpath(out.stdout.strip()) == str(ROOT / "renderers" / "latex.py")


def test_wheel_ships_the_renderers_inside_gategraph(tmp_path):
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    for name in ("gategraph", "renderers", "pyproject.toml", "README.md", "LICENSE"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name, **({"symlinks": True} if copy is shutil.copytree else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("gategraph-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "gategraph/renderers/latex.py" in names and "gategraph/renderers/graphviz.py" in names
    assert {"gategraph/renderers/katex/katex.min.js", "gategraph/renderers/katex/LICENSE",
            "gategraph/renderers/katex/contrib/auto-render.min.js",
            "gategraph/renderers/katex/fonts/KaTeX_Main-Regular.woff2",
            "gategraph/renderers/katex/README"} <= set(names)
    assert {"gategraph/renderers/reveal/dist/reveal.js", "gategraph/renderers/reveal/LICENSE",
            "gategraph/renderers/reveal/plugin/notes/notes.js", "gategraph/renderers/reveal/dist/theme/white.css",
            "gategraph/renderers/reveal/dist/theme/fonts/source-sans-pro/source-sans-pro-regular.woff"} <= set(names)
    assert not any(n.startswith("renderers/") for n in names), "no top-level `renderers` package"
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().startswith(str(site))
