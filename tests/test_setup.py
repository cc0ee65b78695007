"""A fresh machine: everything the LaTeX templates load, and every program the tests and the README's commands
run, is installed by scripts/setup.sh and .ci/run — read from the templates and the code, not kept by hand."""

import os
import re
import shutil
import subprocess

import pytest

from gategraph.renderers.beamer import beamer_source
from gategraph.renderers.deck import Deck
from gategraph.renderers.latex import standalone
from tests.conftest import ROOT

CI = bool(os.environ.get("CI"))
SOURCES = sorted([*(ROOT / "gategraph").rglob("*.py"), *(ROOT / "renderers").rglob("*.py")])

# \usepackage[options]{a,b} and its kin, as TeX reads them or as Python source writes them ("\\usepackage",
# f"...{{a}}")
LOADS = re.compile(r"\\\\?(usepackage|RequirePackage|documentclass|usetheme|usecolortheme|usefonttheme|"
                   r"useinnertheme|useoutertheme|usetikzlibrary)\s*(?:\[([^\]]*)\])?\s*\{+([^{}]+)\}")
THEMES = {"usetheme": "beamertheme", "usecolortheme": "beamercolortheme", "usefonttheme": "beamerfonttheme",
          "useinnertheme": "beamerinnertheme", "useoutertheme": "beameroutertheme"}


def tex_files(text: str) -> set[str]:
    """The files TeX must find for the documents in `text`: classes, packages, themes, font encodings."""
    files = set()
    for command, options, names in LOADS.findall(text):
        for name in (n.strip() for n in names.split(",") if n.strip()):
            if command == "documentclass":
                files.add(f"{name}.cls")
            elif command == "usetikzlibrary":
                files.add(f"tikzlibrary{name}.code.tex")
            elif command in THEMES:
                files.add(f"{THEMES[command]}{name}.sty")
            else:
                files.add(f"{name}.sty")
            opts = [o.strip() for o in options.split(",") if o.strip()]
            if name == "fontenc":
                files |= {f"{o.lower()}enc.def" for o in opts}
            elif name == "inputenc":
                files |= {f"{o}.def" for o in opts}
    return files


def template_files() -> dict[str, str]:
    """Each file the templates load -> where it is loaded: every source file that writes LaTeX, and the
    documents the two writers make."""
    where = {}
    for path in SOURCES:
        for f in tex_files(path.read_text()):
            where.setdefault(f, str(path.relative_to(ROOT)))
    documents = {"the Beamer deck": beamer_source(Deck("a deck"), {}),
                 "the standalone LaTeX document": standalone(["x"], "a title")}
    for what, text in documents.items():
        for f in tex_files(text):
            where.setdefault(f, what)
    return where


def test_the_templates_are_read():
    """The scan sees what the writers load (were it blind, the kpsewhich test below would pass on nothing)."""
    files = template_files()
    assert {"beamer.cls", "article.cls", "lmodern.sty", "amsmath.sty", "amssymb.sty", "t1enc.def",
            "utf8.def", "geometry.sty", "graphicx.sty"} <= set(files)
    assert tex_files(r"\usepackage[T1]{fontenc}\usetheme{Madrid}" '"\\\\usepackage{{booktabs}}"') == {
        "fontenc.sty", "t1enc.def", "beamerthemeMadrid.sty", "booktabs.sty"}


@pytest.mark.skipif(shutil.which("kpsewhich") is None and not CI,
                    reason="TeX Live is not installed (CI installs it and never skips)")
def test_tex_finds_every_file_the_templates_load():
    missing = []
    for name, where in sorted(template_files().items()):
        found = subprocess.run(["kpsewhich", name], capture_output=True, text=True).stdout.strip()
        if not found:
            missing.append(f"{name} (loaded by {where})")
    assert not missing, ("TeX cannot find " + "; ".join(missing) +
                         ": `bash scripts/setup.sh` installs them (Debian packages)")


SETUP = (ROOT / "scripts" / "setup.sh").read_text()
CI_RUN = (ROOT / ".ci" / "run").read_text()


def setup_entries(kind: str) -> dict[str, str]:
    """setup.sh's FILE:DEBIAN-PACKAGE lists: `programs` or `tex_files`."""
    body = re.search(rf"^{kind}=\(([^)]*)\)", SETUP, re.M).group(1)
    return dict(entry.split(":", 1) for entry in body.split())


def ci_packages() -> set[str]:
    words = set()
    for line in re.findall(r"apt-get install ((?:[^\n]*\\\n)*[^\n]*)", CI_RUN):
        words |= {w for w in line.replace("\\\n", " ").split() if not w.startswith(("-", ">"))}
    return words


def test_setup_looks_for_every_file_the_templates_load():
    listed = setup_entries("tex_files")
    missing = sorted(set(template_files()) - set(listed))
    assert not missing, f"scripts/setup.sh does not look for {', '.join(missing)} (add FILE:DEBIAN-PACKAGE)"


def test_ci_installs_every_debian_package_setup_installs():
    packages = set(setup_entries("tex_files").values()) | set(setup_entries("programs").values())
    assert "lmodern" in packages
    assert not packages - ci_packages(), f".ci/run does not install {', '.join(sorted(packages - ci_packages()))}"


# the programs the code and the tests run (found by which(...) and by subprocess.run([...]); an alternative
# name (Ubuntu's chromium-browser) stands for the Debian one
ALTERNATIVES = {"chromium-browser": "chromium"}
PROGRAMS = {"dot", "pdflatex", "pdftoppm", "pdfinfo", "pdftotext", "chromium", "kpsewhich"}


def programs_run() -> set[str]:
    found = set()
    for path in [*SOURCES, *sorted((ROOT / "tests").glob("*.py")), ROOT / "README.md"]:
        text = path.read_text()
        found |= set(re.findall(r"shutil\.which\(\s*\"([\w.+-]+)\"", text))
        found |= set(re.findall(r"subprocess\.(?:run|Popen|check_output|check_call)\(\s*\[\s*\"([\w.+-]+)\"", text))
    return {ALTERNATIVES.get(p, p) for p in found} - {"bash"}  # bash runs setup.sh and .ci/run themselves


def test_every_program_run_is_one_ci_provides():
    assert {"dot", "pdflatex", "pdftoppm", "chromium"} <= programs_run() <= PROGRAMS, (
        f"programs run by the code or the tests that CI is not held to: {programs_run() - PROGRAMS}")
    assert "chromium" in ci_packages() and {"graphviz", "poppler-utils", "lmodern"} <= ci_packages()


@pytest.mark.skipif(not CI, reason="outside CI a missing program only skips the tests that need it")
@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_ci_machine_has(program):
    assert shutil.which(program), f"{program} is not installed: .ci/run must install it"



def fake_machine(tmp_path, missing_tex: set[str]):
    """setup.sh in a copy of the repository, on a PATH where every program exists, kpsewhich finds every file
    but `missing_tex`, apt-get writes down what it is asked for, and .venv's python does nothing."""
    repo, bin_ = tmp_path / "repo", tmp_path / "bin"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", repo / "scripts" / "setup.sh")
    (repo / ".venv" / "bin").mkdir(parents=True)
    bin_.mkdir()
    log = tmp_path / "apt.log"
    scripts = {repo / ".venv" / "bin" / "python": "exit 0",
               bin_ / "apt-get": f'echo "$@" >> {log}',
               bin_ / "sudo": '"$@"',
               bin_ / "kpsewhich": f'case " {" ".join(missing_tex)} " in *" $1 "*) exit 1 ;; esac; echo /tex/$1'}
    for name in ("dot", "pdftoppm", "pdfinfo", "pdflatex"):
        scripts[bin_ / name] = "exit 0"
    for path, body in scripts.items():
        path.write_text(f"#!/usr/bin/env bash\n{body}\n")
        path.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_}:{os.environ['PATH']}")
    proc = subprocess.run(["bash", str(repo / "scripts" / "setup.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return log.read_text().splitlines() if log.exists() else []


def test_setup_installs_lmodern_where_pdflatex_is_there_but_lmodern_is_not(tmp_path):
    calls = fake_machine(tmp_path, {"lmodern.sty", "t1lmr.fd"})
    installs = [c.split() for c in calls if c.split()[:1] == ["install"]]
    assert installs and installs[-1][-1:] == ["lmodern"] and "--no-install-recommends" in installs[-1]
    assert not any("texlive" in word for c in installs for word in c), "only what is missing"


def test_setup_installs_nothing_where_everything_is_there(tmp_path):
    assert fake_machine(tmp_path, set()) == []
