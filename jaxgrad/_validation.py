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
    """``x`` as a real floating JAX array, with an optional rank check.

    Integer and bool arrays are converted to the default float dtype; complex arrays,
    strings, ``None`` and objects that are not arrays are refused with a ``TypeError``.
    """
    if isinstance(x, (str, bytes, dict)) or x is None:
        raise TypeError(f"`{name}` must be an array, got {type(x).__name__}")
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must be an array, got {type(x).__name__}: {err}") from None
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"`{name}` must have a real floating dtype, got {arr.dtype}")
    if not jnp.issubdtype(arr.dtype, jnp.inexact):
        if jnp.issubdtype(arr.dtype, jnp.integer) or arr.dtype == jnp.bool_:
            arr = arr.astype(jnp.result_type(float))
        else:
            raise TypeError(f"`{name}` must have a floating dtype, got {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"`{name}` must have {ndim} dimension(s), got shape {arr.shape}")
    return arr


def check_shape(name: str, x: Any, expected: tuple[int, ...], why: str = "") -> None:
    """``x`` has exactly the shape ``expected`` (a trace-time check; no broadcasting).

    ``why`` completes the message, e.g. ``" to match `params.W_rec` (4, 4)"``.
    """
    shape = tuple(jnp.shape(x))
    if shape != tuple(expected):
        raise ValueError(f"`{name}` must have shape {tuple(expected)}{why}, got {shape}")


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


def _raw_key_shape() -> tuple[int, ...]:
    """Shape of a legacy ``jax.random.PRNGKey`` under the default PRNG implementation."""
    return jax.eval_shape(jax.random.PRNGKey, 0).shape


def check_optimizer(optimizer: Any, name: str = "optimizer") -> Any:
    """An optax ``GradientTransformation`` (anything with ``init`` and ``update``)."""
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(
            f"`{name}` must be an optax GradientTransformation, got {type(optimizer).__name__}"
        )
    return optimizer


def check_key(name: str, key: Any) -> Any:
    """A single PRNG key: a typed ``jax.random.key(seed)`` or a legacy ``PRNGKey(seed)``.

    Works at trace time (only the shape and dtype are read), so a traced key inside
    ``jit``/``vmap`` passes. Refuses ints, ``None``, strings, float arrays, batches of
    keys and raw ``uint32`` arrays of the wrong shape with a ``TypeError`` naming ``name``.
    """
    expected = "a PRNG key from jax.random.key(seed) (or a legacy jax.random.PRNGKey(seed))"
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is None or shape is None or isinstance(key, (np.generic,)):
        raise TypeError(f"`{name}` must be {expected}, got {type(key).__name__} {key!r}")
    if jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if shape != ():
            raise TypeError(
                f"`{name}` must be a single PRNG key, got a key array of shape {shape} "
                "(split it and pass one key)"
            )
        return key
    raw = _raw_key_shape()
    if dtype != np.uint32 or tuple(shape) != raw:
        raise TypeError(
            f"`{name}` must be {expected}; a raw key is a uint32 array of shape {raw}, "
            f"got a {dtype} array of shape {tuple(shape)}"
        )
    return key


def typed_key(name: str, key: Any) -> Any:
    """``check_key``, then a legacy ``PRNGKey(seed)`` wrapped as a typed key (same stream)."""
    key = check_key(name, key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)
