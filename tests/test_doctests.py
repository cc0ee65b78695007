"""The examples in docstrings are true: every module's doctests run."""

import doctest
import importlib
import pkgutil

import pytest

import gategraph
import gategraph.renderers

MODULES = sorted({m.name for pkg in (gategraph, gategraph.renderers)
                  for m in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + ".")} - {"gategraph.renderers"})


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
