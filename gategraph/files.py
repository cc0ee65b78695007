"""Writing files safely: whole or not at all.

Imports nothing from gategraph.
"""

from __future__ import annotations

import os
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
