"""The reference documentation builds with warnings as errors (``mkdocs build --strict``).

A docstring griffe cannot parse, a broken link or cross-reference, a module that no longer
exists, a missing notebook or README section: each is a warning, so each fails here.
The notebooks are rendered as they are stored, not executed (tests/test_notebooks.py runs
them).
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None
    or importlib.util.find_spec("mkdocstrings_handlers") is None
    or importlib.util.find_spec("mkdocs_jupyter") is None,
    reason='the docs tools are not installed (pip install -e ".[test]" or ".[docs]")',
)


def test_docs_build_strict(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        # Not --quiet: it hides the warnings from the count that --strict fails on.
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    problems = [line for line in proc.stderr.splitlines() if not line.startswith("INFO")]
    assert proc.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(problems)
    # The pages the docs promise exist, with content generated from the code.
    api = (site / "api" / "models" / "index.html").read_text(encoding="utf-8")
    assert "jaxgrad.models.lstm.init_lstm" in api
    names = (site / "api" / "index.html").read_text(encoding="utf-8")
    assert "jacobian_product_norms" in names
    catalogue = (site / "experiments" / "index.html").read_text(encoding="utf-8")
    assert "rnn-jacobian-regimes" in catalogue
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert (site / "notebooks" / notebook.stem / "index.html").is_file(), notebook.name
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "five-minute tour" in home
