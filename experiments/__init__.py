"""Experiments that reproduce the field's known results: ``python -m experiments --help``.

Each module here (not starting with ``_``) is one experiment with a
``run(config) -> Result``; see ``experiments/_runner.py`` for the contract.
"""
