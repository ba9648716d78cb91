"""The one shape every model shares: a step ``(state, input) -> state`` unrolled by ``lax.scan``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .._validation import check_positive_int, leading_axis_length

Step = Callable[[Any, Any], Any]


def autonomous_inputs(num_steps: int, dtype: Any = None) -> jax.Array:
    """A ``(num_steps, 0)`` input sequence for systems without input (``u`` is empty)."""
    check_positive_int("num_steps", num_steps)
    return jnp.zeros((num_steps, 0), dtype or jnp.result_type(float))


def unroll(step: Step, x0: Any, inputs: Any) -> Any:
    """Trajectory ``x_1..x_T`` of ``x_t = step(x_{t-1}, u_t)`` under ``jax.lax.scan``.

    Arguments:
        step: ``step(x, u) -> x_next``; ``x`` may be any pytree (e.g. an LSTM's ``(h, c)``).
        x0: initial state.
        inputs: pytree whose leaves have a leading time axis ``T``.

    Returns:
        The states stacked along a new leading axis of length ``T`` (``x0`` excluded).

    Example:
        >>> xs = unroll(lambda x, u: 0.5 * x + u, jnp.ones(2), jnp.zeros((3, 2)))
        >>> xs.shape
        (3, 2)
    """
    if not callable(step):
        raise TypeError(f"`step` must be callable, got {type(step).__name__}")
    leading_axis_length("inputs", inputs, "time")

    def body(x, u):
        x_next = step(x, u)
        return x_next, x_next

    _, xs = jax.lax.scan(body, x0, inputs)
    return xs
