"""The one exception family of gategraph: every message is one line that says what is wrong and what to do.

Imports nothing from gategraph.
"""


class GategraphError(Exception):
    """Base of every error gategraph raises on purpose."""


class SpecError(GategraphError):
    """A cell declaration is malformed: an undefined name, a name assigned twice, an unused parameter."""


class ShapeError(SpecError):
    """Shapes do not fit: the message names the expected and the found shape."""


class ValueInputError(GategraphError):
    """A value given for evaluation is missing, of the wrong shape, or not finite."""


class ToolMissingError(GategraphError):
    """An external program gategraph needs (Graphviz `dot`) is not installed."""


class UsageError(GategraphError, ValueError):
    """An option has a value gategraph does not know (a graph format, an attention score)."""


class SourceError(GategraphError):
    """A deck's Markdown source has a mistake: the message starts with where it is, `talk.md:12: ...`."""


class RenderError(GategraphError):
    """An external renderer (Graphviz, TeX) failed on what gategraph gave it."""


class RunError(GategraphError):
    """A run directory cannot be used as it is: a damaged file, another process using it, settings that do not
    fit it. The message names the file and what to do."""


class Interrupted(GategraphError):
    """Ctrl-C or SIGTERM: the run saved a checkpoint and stopped; `--resume` continues it."""
