"""Every docstring example in jaxgrad runs, and prints what it says it prints.

Each module's examples run as doctests in that module's namespace (so ``init_lstm`` is in
scope in ``jaxgrad.models.lstm``) with the imports every example assumes::

    import jax, jax.numpy as jnp, numpy as np, optax, jaxgrad

under the suite's settings (strict dtype promotion, rank promotion raises, float32).
Outputs are compared with ELLIPSIS and NORMALIZE_WHITESPACE; examples print rounded
values so the comparison holds on every platform.
"""

import doctest
import importlib
import pkgutil
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgrad

MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(jaxgrad.__path__, "jaxgrad."))
MODULES = ["jaxgrad", *MODULES]
GLOBS = {"jax": jax, "jnp": jnp, "np": np, "optax": optax, "jaxgrad": jaxgrad}
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
# An "Example:" section header, and the indented block under it.
EXAMPLE = re.compile(r"^(\s*)Examples?:\s*\n((?:\1\s+.*\n|\s*\n)+)", re.MULTILINE)


def _doctests(name):
    module = importlib.import_module(name)
    return [t for t in doctest.DocTestFinder().find(module, name, extraglobs=GLOBS)
            if t.examples]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    report = []
    for test in _doctests(name):
        runner.run(test, out=report.append)
    failed, tried = runner.summarize(verbose=False)
    assert failed == 0, f"{failed} of {tried} examples failed in {name}:\n" + "".join(report)


@pytest.mark.parametrize("name", MODULES)
def test_every_example_section_is_a_doctest(name):
    """An ``Example:`` section holds ``>>>`` lines, so that the test above runs it."""
    module = importlib.import_module(name)
    bad = []
    for test in doctest.DocTestFinder(exclude_empty=False).find(module, name):
        for match in EXAMPLE.finditer(test.docstring or ""):
            if ">>>" not in match.group(2):
                bad.append(test.name)
    assert not bad, f"Example sections without >>> lines: {bad}"


def test_modules_have_examples():
    """The collection above finds the examples (a broken finder would pass vacuously)."""
    count = sum(len(t.examples) for name in MODULES for t in _doctests(name))
    assert count > 100
