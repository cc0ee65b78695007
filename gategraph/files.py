"""Writing files safely: whole or not at all, under names no user text can steer.

Imports nothing from gategraph.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and a rename, so a reader never
    sees a half-written file and an interrupted write leaves the old one intact. Permissions follow the
    umask, as for any new file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as e:
        raise OSError(e.errno, f"cannot write a file there ({e.strerror})", str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as e:  # a full disk, a quota: say which file could not be written (the old one is intact)
        Path(tmp).unlink(missing_ok=True)
        kept = "; the one there before is intact" if path.exists() else ""
        raise OSError(e.errno, f"{e.strerror or e}: {path} could not be written{kept}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def sources_digest(folder: Path) -> str:
    """SHA-256 of the name and the text of every module (*.py) directly in `folder`, in the order of their names."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def file_stem(name: str) -> str:
    """A file name (without suffix) made from `name`, such as a cell's name, that stays in the folder it is
    joined to and needs no quoting anywhere (shells, URLs, LaTeX's \\includegraphics): letters, digits, `-`
    and `_` only, every other run of characters (`/`, `..`, `\\`, `$`, spaces) replaced by `-`. When anything
    was replaced, a short hash of `name` is added, so names that differ never share a file."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:60]
    if stem != name:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        stem = f"{stem}-{digest}" if stem else digest
    return stem
