"""Kept for the modules that import ``jaxgrad._io``; the public home is ``jaxgrad.io``."""

from .io import write_atomic as write_atomic
