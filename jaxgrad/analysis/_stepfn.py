"""Turning a user's step function into one on flat state vectors.

Analyzers accept ``step(x, u)`` or, with ``params=``, ``step(x, u, params)``; the state
``x`` may be any pytree (an LSTM's ``(h, c)``, a Flax module's carry). Internally the
state is flattened with ``jax.flatten_util.ravel_pytree`` so that Jacobians are plain
matrices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._validation import check_array, check_finite, check_positive_int, leading_axis_length

_NO_PARAMS = object()


def bind(step: Callable, params: Any) -> Callable:
    """``step(x, u, params)`` as ``f(x, u)``, or ``step`` itself when there are no params."""
    if params is _NO_PARAMS:
        return step
    return lambda x, u: step(x, u, params)


def check_state_like(out: Any, x0: Any) -> None:
    """Raise when a step returned a state of another structure or shape than ``x0``."""
    same_structure = jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(x0)
    if not same_structure or any(
        jnp.shape(a) != jnp.shape(b)
        for a, b in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(x0),
                        strict=True)
    ):
        raise ValueError(
            "`step(x, u)` must return a state shaped like `x0`; got "
            f"{jax.tree_util.tree_map(jnp.shape, out)} for x0 "
            f"{jax.tree_util.tree_map(jnp.shape, x0)}"
        )


def flat_step(step: Callable, x0: Any) -> tuple[Callable, jax.Array, Callable]:
    """``(f, x0_flat, unravel)`` with ``f(x_flat, u) -> x_next_flat``.

    The returned state is checked against ``x0`` while ``f`` is traced, so a step that
    changes the state's shape fails with a message naming ``step`` and ``x0``.
    """
    x0_flat, unravel = ravel_pytree(x0)

    def f(x_flat, u):
        try:
            out = step(unravel(x_flat), u)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"`step` failed on a state shaped like `x0` "
                f"{jax.tree_util.tree_map(jnp.shape, x0)} and an input shaped like "
                f"`inputs[t]` {jax.tree_util.tree_map(jnp.shape, u)}: {err}"
            ) from err
        check_state_like(out, x0)
        out_flat, _ = ravel_pytree(out)
        return out_flat

    return f, x0_flat, unravel


def float_state(x0: Any) -> Any:
    """``x0`` with integer and boolean leaves converted to the default float dtype.

    Raises ``ValueError`` for an empty state (no leaves or no elements) or a non-finite
    one and ``TypeError`` for a complex or non-numeric leaf, naming ``x0``.
    """
    leaves = jax.tree_util.tree_leaves(x0)
    if not leaves:
        raise ValueError("`x0` must hold at least one array, got an empty pytree")
    x0 = jax.tree_util.tree_map(lambda leaf: check_array("x0", leaf), x0)
    for leaf in jax.tree_util.tree_leaves(x0):
        if jnp.issubdtype(leaf.dtype, jnp.complexfloating):
            raise TypeError(f"`x0` must have a real floating dtype, got {leaf.dtype}")
    if sum(leaf.size for leaf in jax.tree_util.tree_leaves(x0)) == 0:
        raise ValueError(
            f"`x0` must have at least one element, got shape(s) "
            f"{jax.tree_util.tree_map(jnp.shape, x0)}"
        )
    check_finite("x0", x0)
    return x0


def prepare(
    step: Callable, x0: Any, inputs: Any, num_steps: int | None, params: Any
) -> tuple[Callable, jax.Array, Any]:
    """Check the arguments of a trajectory analyzer; return ``(f, x0_flat, inputs)``.

    Raises ``ValueError``/``TypeError`` naming the argument when ``step`` is not callable,
    ``x0`` is empty or non-finite, or ``inputs`` has no time axis or disagrees with
    ``num_steps``. (A step returning a state unlike ``x0`` is caught when ``f`` is traced.)
    """
    if not callable(step):
        raise TypeError(f"`step` must be callable, got {type(step).__name__}")
    x0 = float_state(x0)
    leaves = jax.tree_util.tree_leaves(x0)
    if inputs is None:
        if num_steps is None:
            raise ValueError("give `inputs` (leading time axis T) or `num_steps` for no input")
        check_positive_int("num_steps", num_steps)
        dtype = jnp.result_type(*[jnp.asarray(leaf).dtype for leaf in leaves])
        inputs = jnp.zeros((num_steps, 0), dtype)
    else:
        length = leading_axis_length("inputs", inputs, "time")
        if length == 0:
            raise ValueError("`inputs` must have at least one time step, got length 0")
        if num_steps is not None and num_steps != length:
            raise ValueError(f"`num_steps`={num_steps} disagrees with len(inputs)={length}")
        check_finite("inputs", inputs)
    if params is not _NO_PARAMS:
        # NaN weights give NaN norms and exponents: refuse them by name (concrete values only;
        # leaves that are not numbers, such as a name inside a config, are left alone).
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
            if isinstance(leaf, (jax.Array, np.ndarray, np.generic, float, complex)):
                check_finite(f"params{jax.tree_util.keystr(path)}", leaf)
    f, x0_flat, _ = flat_step(bind(step, params), x0)
    return f, x0_flat, inputs
