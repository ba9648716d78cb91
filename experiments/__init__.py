"""Experiments that reproduce the field's known results: ``python -m experiments --help``.

Each module here (not starting with ``_``) is one experiment: a frozen ``Config``,
``SUMMARY_KEYS``, ``compute``/``checks``/``figures`` and ``run(config) -> Result``; see
``experiments/_runner.py`` for the contract.
"""

from ._runner import Check as Check
from ._runner import Computed as Computed
from ._runner import Result as Result
from ._runner import discover as discover
from ._runner import reproduce as reproduce
from ._runner import run_experiment as run_experiment
from ._runner import write_report as write_report
