"""Test settings: strict dtype promotion, and implicit rank promotion is an error."""

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
    """Run a test in float64 (for tight numerical checks)."""
    with jax.enable_x64(True):
        yield
