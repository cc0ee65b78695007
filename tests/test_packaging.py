"""The distribution: `renderers/` ships as `gategraph.renderers`, from an editable install and from a wheel."""

import os
import re
import shutil
import subprocess
import sys
import zipfile

from tests.conftest import ROOT

PROBE = "import gategraph.renderers.latex as m, gategraph.cli; print(m.__file__)"
# a Python warning from the build backend (setuptools' "Package 'gategraph.renderers.katex.fonts' is absent from
# the `packages` configuration", deprecations): what a newcomer would read as a broken install
WARNING = re.compile(r"\w*Warning\b|would be ignored|absent from the `packages`")


def copy_source(tmp_path):
    """A copy of what a build reads, so the build leaves nothing in the checkout."""
    source = tmp_path / "source"
    for name in ("gategraph", "renderers", "pyproject.toml", "README.md", "LICENSE"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name, **({"symlinks": True} if copy is shutil.copytree else {}))
    return source


def test_editable_install_imports_the_renderers_from_outside_the_repo(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert os.path.realpath(out.stdout.strip()) == str(ROOT / "renderers" / "latex.py")


def test_wheel_ships_the_renderers_inside_gategraph_and_builds_without_a_warning(tmp_path):
    source = copy_source(tmp_path)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                            "-v", "-w", str(tmp_path / "dist")], check=True, capture_output=True, text=True)
    warnings = [line.strip() for line in (build.stdout + build.stderr).splitlines() if WARNING.search(line)]
    assert not warnings, "the build warns:\n" + "\n".join(warnings)
    (wheel,) = (tmp_path / "dist").glob("gategraph-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "gategraph/renderers/latex.py" in names and "gategraph/renderers/graphviz.py" in names
    assert {"gategraph/renderers/katex/katex.min.js", "gategraph/renderers/katex/LICENSE",
            "gategraph/renderers/katex/contrib/auto-render.min.js",
            "gategraph/renderers/katex/fonts/KaTeX_Main-Regular.woff2"} <= set(names)
    fonts = {n.rsplit("/", 1)[1] for n in names if n.startswith("gategraph/renderers/katex/fonts/")}
    assert fonts == {f.name for f in (ROOT / "renderers" / "katex" / "fonts").glob("*.woff2")}, "every KaTeX font"
    assert {"gategraph/renderers/reveal/dist/reveal.js", "gategraph/renderers/reveal/LICENSE",
            "gategraph/renderers/reveal/plugin/notes/notes.js", "gategraph/renderers/reveal/dist/theme/white.css",
            "gategraph/renderers/reveal/dist/theme/fonts/source-sans-pro/source-sans-pro-regular.woff"} <= set(names)
    assert not any(n.startswith("renderers/") for n in names), "no top-level `renderers` package"
    assert "gategraph/lecture.md" in names, "the built-in lecture's source, which `gategraph lecture` builds"
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().startswith(str(site))


def test_editable_build_says_nothing_about_packages(tmp_path):
    """What `pip install -e .` runs: setuptools' editable build, its warnings included."""
    source = copy_source(tmp_path)
    (tmp_path / "dist").mkdir()
    build = subprocess.run([sys.executable, "-c", "import sys; from setuptools import build_meta as b; "
                            "print(b.build_editable(sys.argv[1]))", str(tmp_path / "dist")],
                           cwd=source, check=True, capture_output=True, text=True)
    warnings = [line.strip() for line in (build.stdout + build.stderr).splitlines() if WARNING.search(line)]
    assert not warnings, "the editable build warns:\n" + "\n".join(warnings)
    assert build.stdout.strip().endswith(".whl")
