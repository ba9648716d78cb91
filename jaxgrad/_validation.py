"""Argument checks shared by the public functions.

Every check raises at trace time with a message that names the argument, says what
was expected and what came. Value checks (finiteness) only run on concrete arrays:
under ``jit`` the values are unknown, and analyzers report non-finite results in
their outputs instead.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds values (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def check_array(name: str, x: Any, *, ndim: int | None = None) -> jax.Array:
    """``x`` as an inexact JAX array, with an optional rank check."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"`{name}` must be an array, got {type(x).__name__}")
    arr = jnp.asarray(x)
    if not jnp.issubdtype(arr.dtype, jnp.inexact):
        if jnp.issubdtype(arr.dtype, jnp.integer) or arr.dtype == jnp.bool_:
            arr = arr.astype(jnp.result_type(float))
        else:
            raise TypeError(f"`{name}` must have a floating dtype, got {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"`{name}` must have {ndim} dimension(s), got shape {arr.shape}")
    return arr


def check_square(name: str, x: Any) -> jax.Array:
    """A square 2-D array."""
    arr = check_array(name, x, ndim=2)
    if arr.shape[0] != arr.shape[1]:
        raise ValueError(f"`{name}` must be square, got shape {arr.shape}")
    return arr


def check_finite(name: str, x: Any) -> None:
    """Raise if a concrete array holds NaN or inf (skipped under tracing)."""
    for leaf in jax.tree_util.tree_leaves(x):
        if is_concrete(leaf) and jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact):
            bad = ~np.isfinite(np.asarray(leaf))
            if bad.any():
                n = int(bad.sum())
                raise ValueError(
                    f"`{name}` must be finite, got {n} non-finite value(s) "
                    f"(first at index {tuple(int(i) for i in np.argwhere(bad)[0])})"
                )


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """An integer ``>= minimum`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}")
    return int(value)


def check_positive_float(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """A finite positive float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be finite and {bound}, got {value}")
    return v


def check_choice(name: str, value: Any, choices: Any) -> str:
    """One of a fixed set of names."""
    if value not in choices:
        raise ValueError(f"unknown `{name}` {value!r}; expected one of {sorted(choices, key=str)}")
    return value


def check_finite_float(name: str, value: Any) -> float:
    """A finite Python float (any sign); works under ``jit`` for static values."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__}") from None
    if not math.isfinite(v):
        raise ValueError(f"`{name}` must be finite, got {value}")
    return v


def leading_axis_length(name: str, tree: Any, axis: str) -> int:
    """The common length of the leading ``axis`` ("time", "example"...) of every leaf."""
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves or any(jnp.ndim(leaf) == 0 for leaf in leaves):
        raise ValueError(f"`{name}` must have a leading {axis} axis on every leaf")
    lengths = {jnp.shape(leaf)[0] for leaf in leaves}
    if len(lengths) != 1:
        raise ValueError(f"`{name}` leaves disagree on the {axis} axis length: {sorted(lengths)}")
    return lengths.pop()
