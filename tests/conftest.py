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


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    The suite compiles thousands of small programs in one process; kept alive, their code
    mappings pile up, and a CI run segfaulted inside XLA's compiler late in the session
    (tests/test_tasks.py, which passes on its own). Each module still reuses its own
    compilations.
    """
    yield
    jax.clear_caches()
