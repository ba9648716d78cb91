"""Directions in parameter space for loss-landscape scans.

A direction is a pytree with the structure and shapes of the parameters. The scan moves
along it: ``θ(α) = θ₀ + α d``. Three kinds are provided:

- ``random_direction``: i.i.d. Gaussian entries (optionally scaled to unit global norm);
- ``filter_normalized_direction``: Gaussian, then every filter rescaled to the norm of
  the matching filter of the parameters (Li, Xu, Taylor, Studer & Goldstein 2018,
  "Visualizing the Loss Landscape of Neural Nets", section 4), so that landscapes of
  networks with different weight scales can be compared;
- ``line_direction``: ``end - start``, so that ``α ∈ [0, 1]`` walks the straight line
  between two parameter sets (Goodfellow, Vinyals & Saxe 2015);
- ``trajectory_directions``: the top principal components of an optimisation
  trajectory's iterates, with the trajectory's coordinates on them (Li et al. 2018,
  section 7), so that a scan around the final weights shows the path training took.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import (
    check_array,
    check_finite,
    check_positive_int,
    leading_axis_length,
    typed_key,
)


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


class TrajectoryDirections(NamedTuple):
    """The principal directions of an optimisation trajectory (``trajectory_directions``).

    Attributes:
        directions: ``num`` pytrees shaped like one iterate, each of unit global norm and
            orthogonal to the others: the top principal components of the iterates.
        coordinates: ``(num_iterates, num)`` array: iterate ``i`` minus the final iterate,
            projected on each direction, so the final iterate sits at the origin (the
            centre of a scan with ``params`` = the final iterate).
        explained_variance_ratio: ``(num,)`` array: the fraction of the iterates' variance
            (about their mean) along each direction, as ``sklearn.decomposition.PCA``.
        residual_norms: ``(num_iterates,)`` array: the distance from each iterate to the
            plane the directions span through the final iterate (how far the drawn path is
            from the real one).
    """

    directions: list[Any]
    coordinates: np.ndarray
    explained_variance_ratio: np.ndarray
    residual_norms: np.ndarray


def trajectory_directions(iterates: Any, *, num: int = 2) -> TrajectoryDirections:
    """The top principal components of saved parameter iterates (Li et al. 2018, sec. 7).

    Random directions of a high-dimensional space are nearly orthogonal to the path
    training takes, so a trajectory drawn on them looks like a dot. Li, Xu, Taylor, Studer
    & Goldstein (2018, section 7) instead stack the differences ``θ_i − θ_n`` of the
    saved iterates from the final one, take the top principal components of that matrix
    (centred, as scikit-learn's PCA does) as directions, and draw the projected
    trajectory on the landscape scanned along them around ``θ_n``.

    The principal components come from a float64 SVD on the host of the
    ``(num_iterates, num_parameters)`` matrix (a Gram-matrix eigendecomposition when there
    are more parameters than iterates would square the condition number); directions are
    returned in the iterates' dtype.

    Arguments:
        iterates: a pytree whose leaves have a leading axis over the saved iterates
            (``num_iterates ≥ num + 1``), the final weights last.
        num: how many directions (keyword-only; 2 for a surface).

    Returns:
        A ``TrajectoryDirections``.

    Raises:
        ValueError: fewer than ``num + 1`` iterates, leaves with different numbers of
            iterates, non-finite values, ``num < 1``, or iterates that do not move in
            ``num`` independent directions (the trajectory spans fewer dimensions).

    Example:
        >>> t = jnp.linspace(0.0, 1.0, 5)
        >>> path = {"w": jnp.stack([t, t**2, jnp.zeros(5)], axis=1)}
        >>> pca = trajectory_directions(path)
        >>> [round(float(r), 3) for r in pca.explained_variance_ratio.sum(keepdims=True)]
        [1.0]
        >>> pca.coordinates[-1].tolist()
        [0.0, 0.0]
    """
    num = check_positive_int("num", num)
    leaves, treedef = _float_leaves("iterates", iterates)
    count = leading_axis_length("iterates", iterates, "iterate")
    if count < num + 1:
        raise ValueError(f"`iterates` must hold at least num + 1 = {num + 1} iterates along "
                         f"the leading axis, got {count}")
    check_finite("iterates", iterates)
    rows = np.concatenate([np.asarray(leaf, np.float64).reshape(count, -1) for leaf in leaves],
                          axis=1)
    diffs = rows - rows[-1]
    centred = diffs - diffs.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    total = float(np.sum(sv**2))
    if len(sv) < num or sv[num - 1] <= 1e-12 * max(sv[0], np.finfo(np.float64).tiny):
        raise ValueError(f"`iterates` do not move in {num} independent directions (singular "
                         f"values {sv[: num + 1].tolist()}); save more iterates or ask for "
                         f"fewer directions")
    basis = vt[:num]
    # Fix each component's sign so that the first iterate has a positive coordinate.
    signs = np.where(diffs[0] @ basis.T < 0, -1.0, 1.0)
    basis = basis * signs[:, None]
    coords = diffs @ basis.T
    residual = np.linalg.norm(diffs - coords @ basis, axis=1)
    sizes = [int(np.prod(leaf.shape[1:], dtype=np.int64)) for leaf in leaves]
    splits = np.cumsum(sizes)[:-1]
    directions = []
    for vector in basis:
        parts = np.split(vector, splits)
        directions.append(jax.tree_util.tree_unflatten(treedef, [
            jnp.asarray(part.reshape(leaf.shape[1:]), leaf.dtype)
            for part, leaf in zip(parts, leaves)]))
    return TrajectoryDirections(directions, coords, sv[:num] ** 2 / total, residual)
