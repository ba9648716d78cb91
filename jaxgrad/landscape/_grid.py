"""The grid of a scan: its axes, the parameter point of every grid point, and the
coordinates of a chunk's points made on the device.

A landscape grid point with coordinates ``c`` is ``θ(c) = θ₀ + c @ D`` on the flattened
parameters (``landscape_grid``); a sweep's grid point is the coordinates themselves
(``sweep_grid``). Either way the grid is the Cartesian product of 1-D axes in C order,
cut into equal chunks (``plan_chunks``) whose points each device makes from the chunk's
first multi-index (``grid_points``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_array, check_finite
from .directions import leaf_names


class Direction(NamedTuple):
    """A grid axis along a direction: ``θ = θ₀ + α · vector`` for ``α`` in ``values``.

    ``vector`` is a pytree shaped like the scanned parameters (see
    ``random_direction``, ``filter_normalized_direction``, ``line_direction``); ``values``
    is a 1-D increasing array or a ``(start, stop, num)`` tuple.
    """

    vector: Any
    values: Any


Direction.__module__ = "jaxgrad.landscape.scan"  # where it has always been found


def axis_values(name: str, spec: Any, dtype: Any) -> np.ndarray:
    """The coordinates of one axis as a 1-D, finite, strictly increasing array."""
    label = f"axes[{name!r}]"
    if isinstance(spec, tuple) and len(spec) == 3 and isinstance(spec[2], (int, np.integer)) \
            and not isinstance(spec[2], bool):
        start, stop, num = spec
        if num < 1:
            raise ValueError(f"`{label}` must have at least one grid point, got num={num}")
        start, stop = float(start), float(stop)
        if not (math.isfinite(start) and math.isfinite(stop)):
            raise ValueError(f"`{label}` interval must be finite, got ({start}, {stop})")
        if not stop > start:
            raise ValueError(
                f"`{label}` interval must have start < stop, got an empty or reversed "
                f"interval ({start}, {stop})"
            )
        return np.linspace(start, stop, num).astype(dtype)
    values = np.asarray(check_array(label, spec)).astype(dtype)
    if values.ndim != 1:
        raise ValueError(f"`{label}` must be 1-D values or (start, stop, num), got shape "
                         f"{values.shape}")
    if values.size == 0:
        raise ValueError(f"`{label}` must have at least one grid point, got zero points")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"`{label}` must be finite, got {values}")
    steps = np.diff(values)
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0))
        raise ValueError(
            f"`{label}` must be strictly increasing, got a reversed or repeated value at "
            f"index {i + 1} ({values[i]} then {values[i + 1]})"
        )
    return values


def check_axes(axes: Any) -> None:
    if not isinstance(axes, Mapping) or not axes:
        raise ValueError(f"`axes` must be a non-empty mapping {{name: values}}, got {axes!r}")
    for name in axes:
        if not isinstance(name, str):
            raise TypeError(f"`axes` keys must be strings, got {name!r}")


class Layout(NamedTuple):
    """Static description of the parameter pytree (hashable: a ``jit`` static argument)."""

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[Any, ...]


def unravel(theta: jax.Array, layout: Layout) -> Any:
    leaves, offset = [], 0
    for shape, dtype in zip(layout.shapes, layout.dtypes):
        size = math.prod(shape)
        leaves.append(theta[offset:offset + size].reshape(shape).astype(dtype))
        offset += size
    return jax.tree_util.tree_unflatten(layout.treedef, leaves)


def flatten(name: str, tree: Any, dtype: Any = None) -> tuple[np.ndarray, Layout]:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    if not leaves:
        raise ValueError(f"`{name}` must hold at least one array, got an empty pytree")
    arrays = [check_array(name, leaf) for leaf in leaves]
    layout = Layout(treedef, tuple(a.shape for a in arrays), tuple(a.dtype for a in arrays))
    dtype = dtype or jnp.result_type(*arrays)
    flat = np.concatenate([np.asarray(a, dtype).ravel() for a in arrays])
    return flat, layout


class LandscapeGrid(NamedTuple):
    """A landscape scan's grid: ``θ(c) = base + c @ D`` for ``c`` in the product of
    ``coords`` (``D`` holds one row per axis)."""

    base: np.ndarray
    layout: Layout
    D: np.ndarray
    coords: list[np.ndarray]
    names: list[str]  # the parameters' dotted leaf names


def landscape_grid(params: Any, axes: Mapping[str, Any]) -> LandscapeGrid:
    """Check ``params`` and ``axes`` (named scalar leaves or ``Direction``s) and build
    the grid."""
    check_axes(axes)
    base, layout = flatten("params", params)
    check_finite("params", params)
    dtype = base.dtype
    names = leaf_names(params)
    offsets = np.cumsum([0] + [math.prod(s) for s in layout.shapes])
    coords, rows, seen = [], [], set()
    for name, spec in axes.items():
        if isinstance(spec, Direction):
            vector, vlayout = flatten(f"axes[{name!r}].vector", spec.vector, dtype)
            if vlayout.treedef != layout.treedef or vlayout.shapes != layout.shapes:
                raise ValueError(
                    f"`axes[{name!r}].vector` must have the structure and shapes of "
                    f"`params`, got {vlayout.treedef} {vlayout.shapes} for "
                    f"{layout.treedef} {layout.shapes}"
                )
            if not np.all(np.isfinite(vector)):
                raise ValueError(f"`axes[{name!r}].vector` must be finite")
            rows.append(vector)
            coords.append(axis_values(name, spec.values, dtype))
            continue
        if name not in names:
            shown = ", ".join(repr(n) for n in names[:20])
            raise ValueError(
                f"`axes` names parameter {name!r}, which `params` does not have; "
                f"its parameters are {shown}{', ...' if len(names) > 20 else ''}"
            )
        i = names.index(name)
        if math.prod(layout.shapes[i]) != 1:
            raise ValueError(
                f"`axes[{name!r}]` must name a parameter holding one number, got shape "
                f"{layout.shapes[i]}; scan it along a Direction instead"
            )
        if name in seen:
            raise ValueError(f"`axes` names parameter {name!r} twice")
        seen.add(name)
        row = np.zeros(base.size, dtype)
        row[offsets[i]] = 1
        base[offsets[i]] = 0
        rows.append(row)
        coords.append(axis_values(name, spec, dtype))
    return LandscapeGrid(base, layout, np.stack(rows), coords, names)


def sweep_grid(axes: Mapping[str, Any]) -> list[np.ndarray]:
    """Check a sweep's ``axes`` (``{name: values}``) and return their coordinates, all of
    one floating dtype: the axes' arrays' common dtype (the default float for
    ``(start, stop, num)`` tuples)."""
    check_axes(axes)
    arrays = [spec if isinstance(spec, tuple) else check_array(f"axes[{name!r}]", spec)
              for name, spec in axes.items()]
    dtypes = [a.dtype for a in arrays if not isinstance(a, tuple)]
    dtype = jnp.result_type(*dtypes) if dtypes else jnp.result_type(float)
    return [axis_values(name, spec, dtype) for name, spec in axes.items()]


class Chunks(NamedTuple):
    """How a grid of ``n`` points is cut: ``count`` chunks of ``size`` points (the last
    one shorter), each padded to ``padded`` points, a multiple of the device count."""

    n: int
    count: int
    size: int
    padded: int


def plan_chunks(grid_shape: tuple[int, ...], chunk_size: int, num_devices: int) -> Chunks:
    n = math.prod(grid_shape)
    count = -(-n // min(chunk_size, n))
    size = -(-n // count)  # equal chunks: the last one is not mostly padding
    return Chunks(n, count, size, -(-size // num_devices) * num_devices)


def _divmod(a: jax.Array, d: jax.Array, exact_in_float32: bool) -> tuple[jax.Array, jax.Array]:
    """``a // d, a % d`` for int32 ``0 ≤ a`` and ``d ≥ 1``.

    XLA:CPU divides integer vectors one lane at a time; with ``exact_in_float32`` (all
    ``a < 2^24``) the quotient comes from a float32 division instead: correctly rounded,
    its floor is the true quotient or one more, which the remainder's sign reveals.
    """
    if not exact_in_float32:
        return a // d, a % d
    q = jnp.floor(a.astype(jnp.float32) / d.astype(jnp.float32)).astype(jnp.int32)
    r = a - q * d
    return jnp.where(r < 0, q - 1, q), jnp.where(r < 0, r + d, r)


def grid_points(start_digits, sizes, table, first, count, limit):
    """Coordinates (one array per axis: a ``(count, k)`` stack is slow to write on a CPU)
    of the grid points ``start + first + arange(count)`` in C order of a
    grid with axis lengths ``sizes`` (past the grid's end: its last point, the padding of
    the last chunk). ``table`` holds the axes' values one after another (see
    ``axis_table``); ``limit`` (a Python int) bounds ``first + count``.

    ``start_digits`` is the multi-index of ``start``, computed on the host in 64 bits;
    the offsets are added to it digit by digit with carries, so every integer here stays
    below the grid's largest axis plus the chunk size whatever the grid's point count.
    The lengths are traced values: a grid of another shape reuses the compiled chunk.
    """
    k = sizes.shape[0]
    local = first + jnp.arange(count, dtype=jnp.int32)
    small = limit <= 1 << 24
    offset = [None] * k
    for j in reversed(range(1, k)):
        local, offset[j] = _divmod(local, sizes[j], small)
    offset[0] = local
    digits, carry = [None] * k, jnp.zeros((), jnp.int32)
    for j in reversed(range(k)):
        total = start_digits[j] + offset[j] + carry  # below 2 sizes[j] for j > 0
        if j == 0:
            digits[0], beyond = total, total >= sizes[0]
        else:
            carry = (total >= sizes[j]).astype(jnp.int32)
            digits[j] = total - carry * sizes[j]
    starts = jnp.cumsum(sizes) - sizes
    return tuple(table[starts[j] + jnp.where(beyond, sizes[j] - 1, d)]
                 for j, d in enumerate(digits))


def axis_table(coords: list[np.ndarray]) -> np.ndarray:
    """The axes' values one after another, padded to a power of two so that grids whose
    axes differ in length share a compiled chunk."""
    values = np.concatenate(coords)
    return np.pad(values, (0, (1 << (values.size - 1).bit_length()) - values.size))


def coordinates_of(indices: np.ndarray, coords: list[np.ndarray]) -> np.ndarray:
    """``(m, k)`` coordinates of the grid points with flat C-order ``indices``."""
    shape = tuple(len(c) for c in coords)
    if not indices.size:
        return np.zeros((0, len(coords)), coords[0].dtype)
    multi = np.unravel_index(indices, shape)
    return np.stack([coords[j][multi[j]] for j in range(len(coords))], axis=1)
