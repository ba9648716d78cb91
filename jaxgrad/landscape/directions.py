"""Directions in parameter space for loss-landscape scans.

A direction is a pytree with the structure and shapes of the parameters. The scan moves
along it: ``θ(α) = θ₀ + α d``. Three kinds are provided:

- ``random_direction``: i.i.d. Gaussian entries (optionally scaled to unit global norm);
- ``filter_normalized_direction``: Gaussian, then every filter rescaled to the norm of
  the matching filter of the parameters (Li, Xu, Taylor, Studer & Goldstein 2018,
  "Visualizing the Loss Landscape of Neural Nets", section 4), so that landscapes of
  networks with different weight scales can be compared;
- ``line_direction``: ``end - start``, so that ``α ∈ [0, 1]`` walks the straight line
  between two parameter sets (Goodfellow, Vinyals & Saxe 2015).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .._validation import check_array, check_finite, typed_key


def _float_leaves(name: str, tree: Any) -> tuple[list[jax.Array], Any]:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    if not leaves:
        raise ValueError(f"`{name}` must hold at least one array, got an empty pytree")
    return [check_array(name, leaf) for leaf in leaves], treedef


def leaf_names(tree: Any) -> list[str]:
    """Dotted names of a pytree's leaves: ``"w"``, ``"first.W"``, ``"layers.0.b"``."""
    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [_path_name(path) for path, _ in paths]


def _path_name(path: tuple) -> str:
    parts = []
    for key in path:
        if isinstance(key, jax.tree_util.GetAttrKey):
            parts.append(str(key.name))
        elif isinstance(key, jax.tree_util.DictKey):
            parts.append(str(key.key))
        elif isinstance(key, jax.tree_util.SequenceKey):
            parts.append(str(key.idx))
        elif isinstance(key, jax.tree_util.FlattenedIndexKey):
            parts.append(str(key.key))
        else:  # pragma: no cover - future key types
            parts.append(str(key))
    return ".".join(parts)


def random_direction(params: Any, *, key: jax.Array, normalize: bool = False) -> Any:
    """A Gaussian direction ``d ~ N(0, I)`` shaped like ``params``.

    Arguments:
        params: any pytree of floating arrays.
        key: a PRNG key (keyword-only).
        normalize: scale ``d`` to unit global norm ``‖d‖₂ = 1``.

    Returns:
        A pytree like ``params``.

    Raises:
        TypeError: ``key`` is not a PRNG key.

    Example:
        >>> d = random_direction({"w": jnp.ones((3, 2))}, key=jax.random.key(0))
    """
    key = typed_key("key", key)
    leaves, treedef = _float_leaves("params", params)
    keys = jax.random.split(key, len(leaves))
    out = [jax.random.normal(k, leaf.shape, leaf.dtype) for k, leaf in zip(keys, leaves)]
    if normalize:
        total = jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in out))
        out = [leaf / total.astype(leaf.dtype) for leaf in out]
    return jax.tree_util.tree_unflatten(treedef, out)


def default_filter_axes(name: str, leaf: jax.Array) -> tuple[int, ...] | None:
    """Li et al.'s rule for dense layers: a filter is one output unit's incoming weights.

    Leaves with ``ndim >= 2`` are weights whose norm is taken over axis ``-2`` (the input
    axis of ``x @ W``; stacked weights ``(layers, in, out)`` keep one filter per layer and
    unit). Leaves with ``ndim <= 1`` (biases, normalisation gains) get a zero direction,
    as in Li et al. (2018).
    """
    return (-2,) if leaf.ndim >= 2 else None


def filter_normalized_direction(
    params: Any,
    *,
    key: jax.Array,
    filter_axes: Callable[[str, jax.Array], tuple[int, ...] | None] = default_filter_axes,
) -> Any:
    """A filter-normalised Gaussian direction (Li et al. 2018, eq. in section 4).

    ``d_{i,j} ← d_{i,j} / ‖d_{i,j}‖ · ‖θ_{i,j}‖`` for every filter ``j`` of layer ``i``.

    Arguments:
        params: any pytree of floating arrays (the trained weights ``θ``).
        key: a PRNG key (keyword-only).
        filter_axes: ``filter_axes(name, leaf)`` gives the axes a filter's norm is taken
            over, or ``None`` for a zero direction on that leaf (biases). ``name`` is the
            dotted leaf name (``"hidden.b"``). The default is ``default_filter_axes``;
            convolution kernels ``(H, W, in, out)`` would use ``(0, 1, 2)``.

    Returns:
        A pytree like ``params`` whose every filter has the norm of the matching filter of
        ``params``.

    Raises:
        TypeError: ``key`` is not a PRNG key.
        ValueError: ``params`` holds a NaN or infinite value.

    Example:
        >>> params = {"W": jnp.ones((3, 2)), "b": jnp.ones(2)}
        >>> d = filter_normalized_direction(params, key=jax.random.key(0))
        >>> [round(float(n), 4) for n in jnp.linalg.norm(d["W"], axis=0)], d["b"].tolist()
        ([1.7321, 1.7321], [0.0, 0.0])
    """
    if not callable(filter_axes):
        raise TypeError(f"`filter_axes` must be callable, got {type(filter_axes).__name__}")
    key = typed_key("key", key)
    leaves, treedef = _float_leaves("params", params)
    check_finite("params", params)  # a NaN weight makes its filter's direction NaN
    names = leaf_names(params)
    keys = jax.random.split(key, len(leaves))
    out = []
    for name, k, leaf in zip(names, keys, leaves):
        axes = filter_axes(name, leaf)
        if axes is None:
            out.append(jnp.zeros_like(leaf))
            continue
        axes = tuple(int(a) for a in axes)
        for a in axes:
            if not -leaf.ndim <= a < leaf.ndim:
                raise ValueError(
                    f"`filter_axes` gave axis {a} for leaf {name!r} of shape {leaf.shape}"
                )
        d = jax.random.normal(k, leaf.shape, leaf.dtype)
        d_norm = jnp.sqrt(jnp.sum(d**2, axis=axes, keepdims=True))
        p_norm = jnp.sqrt(jnp.sum(leaf**2, axis=axes, keepdims=True))
        out.append(d * (p_norm / d_norm))
    return jax.tree_util.tree_unflatten(treedef, out)


def line_direction(start: Any, end: Any) -> Any:
    """``end - start``: with ``params=start``, ``α = 0`` is ``start`` and ``α = 1`` is ``end``.

    Arguments:
        start, end: pytrees of the same structure and leaf shapes.

    Returns:
        A pytree like ``start``.

    Example:
        >>> d = line_direction({"w": jnp.zeros(2)}, {"w": jnp.array([1.0, 3.0])})
        >>> d["w"].tolist()
        [1.0, 3.0]
    """
    a_leaves, a_def = _float_leaves("start", start)
    b_leaves, b_def = _float_leaves("end", end)
    if a_def != b_def:
        raise ValueError(f"`start` and `end` must have the same structure, got {a_def} and {b_def}")
    for i, (a, b) in enumerate(zip(a_leaves, b_leaves)):
        if a.shape != b.shape:
            raise ValueError(
                f"`start` and `end` leaf {leaf_names(start)[i]!r} differ in shape: "
                f"{a.shape} vs {b.shape}"
            )
    check_finite("start", start)
    check_finite("end", end)
    dtype = jnp.result_type(*a_leaves, *b_leaves)
    return jax.tree_util.tree_unflatten(
        a_def, [b.astype(dtype) - a.astype(dtype) for a, b in zip(a_leaves, b_leaves)]
    )
