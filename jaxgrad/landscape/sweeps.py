"""Sweeps: any function of a grid point, over a grid, on every device and host.

``sweep(fn, axes)`` evaluates ``fn({name: value})`` at every point of the Cartesian grid
of ``axes`` with the engine of ``scan_landscape``: chunks of equal shape through one
jitted function, each split over all devices (``shard_map``) and, once
``jax.distributed`` is initialised, over all processes; finished chunks written to a
resumable checkpoint folder; a progress bar; the points where an output is not finite
counted and listed. A sweep of λ₁ over ``(g, σ_b)``, of the number and stability of
fixed points over ``(w, b)``, of χ₁ over ``(σ_w², σ_b²)``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from . import _engine
from ._grid import sweep_grid
from ._storage import digest, function_identity

# What a traced function raises when it uses a grid point's value as a Python number.
_VALUE_DEPENDENT = (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
                    jax.errors.TracerIntegerConversionError,
                    jax.errors.TracerArrayConversionError)


class Sweep(NamedTuple):
    """The result of ``sweep`` (host NumPy arrays, or memory maps on disk).

    Attributes:
        names: axis names, in grid order.
        coords: one 1-D array of coordinates per axis.
        values: ``fn``'s output pytree, each leaf ``grid_shape + leaf.shape``.
        finite: ``grid_shape`` bool, True where every floating leaf is finite.
        nonfinite_points: ``(m, k)`` coordinates of the first ``m`` non-finite points in
            grid order (at most ``max_reported``).
        num_nonfinite: how many points are non-finite in all.
        complete: False when the sweep stopped early (``max_chunks``); points not yet
            computed hold NaN (0 in integer and bool leaves) and ``finite = False``.
    """

    names: tuple[str, ...]
    coords: tuple[np.ndarray, ...]
    values: Any
    finite: np.ndarray
    nonfinite_points: np.ndarray
    num_nonfinite: int
    complete: bool

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.coords)


@dataclasses.dataclass(frozen=True)
class _SweepPoint:
    """``fn`` at the grid point ``c``, its output's leaves by file name (hashable: the
    chunk's static argument)."""

    fn: Any
    names: tuple[str, ...]

    def __call__(self, c: jax.Array) -> dict[str, jax.Array]:
        out = self.fn({name: c[j] for j, name in enumerate(self.names)})
        return {f"value{i}": leaf for i, leaf in enumerate(jax.tree_util.tree_leaves(out))}


def sweep(
    fn: Callable[[dict[str, jax.Array]], Any],
    axes: Mapping[str, Any],
    *,
    chunk_size: int = 4096,
    checkpoint: str | os.PathLike | None = None,
    max_chunks: int | None = None,
    progress: bool = True,
    max_reported: int = 1000,
    block_size: int | None = None,
    fingerprint: str | bytes | None = None,
) -> Sweep:
    """Evaluate ``fn`` at every point of a grid, on every device and host.

    The grid is the Cartesian product of ``axes`` in C order; at the point with
    coordinates ``c`` it calls ``fn({name_k: c_k})`` (scalars of the axes' dtype) and keeps
    its output, a pytree of arrays, with the grid's shape in front of every leaf. ``fn``
    is written for one point and traced once (under ``jax.vmap``): its output's structure
    and shapes cannot depend on the point. Devices, hosts, chunks, checkpoints and
    progress are those of ``scan_landscape`` (see there): one jitted call per chunk, split
    over ``jax.devices()`` with ``shard_map``; with ``jax.distributed`` every process makes
    the same call and receives the whole result, and process 0 alone writes a shared
    ``checkpoint`` folder. Results do not depend on the device count (a batched
    contraction in ``fn`` may round differently in the last bit, as in
    ``scan_landscape``).

    Arguments:
        fn: ``fn(point) -> pytree of arrays``, ``point`` a dict ``{name: scalar}`` in the
            order of ``axes``; traceable by JAX.
        axes: ``{name: values}`` in grid order, ``values`` a 1-D finite strictly
            increasing array or a ``(start, stop, num)`` tuple. All axes take the arrays'
            common floating dtype (the default float when all are tuples).
        chunk_size: the most grid points per jitted call.
        checkpoint: a folder where every finished chunk is written (one ``value{i}.npy``
            per output leaf, ``finite.npy`` and ``progress.json``); a rerun of the same
            sweep resumes there, a folder of another (another ``fn``, ``axes``, output
            structure or chunk size) is refused, a damaged chunk recomputed with a
            warning, as in ``scan_landscape``. The result's arrays are then memory maps.
        max_chunks: compute at most this many new chunks in this call (the result is then
            partial, ``complete=False``; call again to continue).
        progress: show a tqdm progress bar (on process 0).
        max_reported: the most non-finite points whose coordinates are listed.
        block_size: grid points a device evaluates together (``None``: 4096 on CPUs,
            the whole share on GPUs and TPUs).
        fingerprint: with ``checkpoint``, a str or bytes that identifies ``fn`` instead of
            its automatic fingerprint (needed when ``fn`` holds an object that cannot be
            fingerprinted); change it whenever ``fn`` changes.

    Returns:
        A ``Sweep``.

    Raises:
        TypeError: ``fn`` not callable, a non-string axis name, a ``checkpoint`` that is
            not a path, a ``fingerprint`` that is not a str or bytes.
        ValueError: empty ``axes``, an axis that is empty, reversed or not finite, a
            ``fn`` whose output depends on the point's values in structure or shape (or
            that uses them as Python numbers), or holds no array, bad ``chunk_size``,
            ``max_chunks``, ``max_reported`` or ``block_size``, a checkpoint folder of
            another sweep.

    Example:
        >>> import jax.numpy as jnp
        >>> def radius(p):  # eigenvalues of [[a, b], [b, -a]]: ±√(a² + b²)
        ...     m = jnp.array([[p["a"], p["b"]], [p["b"], -p["a"]]])
        ...     return {"eigs": jnp.linalg.eigvalsh(m), "r": jnp.hypot(p["a"], p["b"])}
        >>> out = sweep(radius, {"a": (-1.0, 1.0, 5), "b": (0.0, 1.0, 3)}, progress=False)
        >>> out.values["eigs"].shape, out.values["r"].shape, bool(out.finite.all())
        ((5, 3, 2), (5, 3), True)
    """
    if not callable(fn):
        raise TypeError(f"`fn` must be callable, got {type(fn).__name__}")
    chunk_size, max_chunks, max_reported, block_size = _engine.check_run_options(
        chunk_size, max_chunks, max_reported, block_size, checkpoint, fingerprint)
    coords = sweep_grid(axes)
    point = _SweepPoint(_engine.hashable(fn), tuple(axes))
    leaves, treedef = _output_structure(fn, tuple(axes), coords[0].dtype)
    fields = {f"value{i}": (leaf.shape, leaf.dtype) for i, leaf in enumerate(leaves)}
    fields["finite"] = ((), np.dtype(bool))
    chunks = _engine.chunks_of(coords, chunk_size)

    def parts() -> dict[str, str]:
        return {"fn": function_identity(fn, fingerprint, "fn"),
                "axes": digest(list(axes), *coords),
                "outputs": digest(str(treedef), [list(x.shape) for x in leaves],
                                  [str(x.dtype) for x in leaves]),
                "chunk_size": str(chunks.size)}

    store = _engine.open_store(checkpoint, chunks, fields, parts, max_reported, "fn")
    _engine.run(point, (), coords, chunks, store, max_chunks=max_chunks, progress=progress,
                max_reported=max_reported, block_size=block_size, name="sweep")
    arrays = store.result_arrays()
    grid_shape = tuple(len(c) for c in coords)
    values = [arrays[f"value{i}"].reshape(grid_shape + leaf.shape)
              for i, leaf in enumerate(leaves)]
    return Sweep(
        names=tuple(axes), coords=tuple(coords),
        values=jax.tree_util.tree_unflatten(treedef, values),
        finite=arrays["finite"].reshape(grid_shape),
        nonfinite_points=_engine.nonfinite_points(store, coords),
        num_nonfinite=store.num_nonfinite, complete=len(store.done) == chunks.count,
    )


def _output_structure(fn: Any, names: tuple[str, ...], dtype: Any) -> tuple[list, Any]:
    """``fn``'s output leaves (shapes and dtypes) and structure at a traced point;
    refuses, naming ``fn``, an output that depends on the point's values or holds no
    array."""
    point = {name: jax.ShapeDtypeStruct((), dtype) for name in names}
    try:
        out = jax.eval_shape(fn, point)
    except _VALUE_DEPENDENT as e:
        raise ValueError(
            f"`fn` must give an output of one structure and shape at every grid point, "
            f"traceable with the point's values as traced scalars (no Python `float()`, "
            f"`if` or shapes computed from them: use jnp.where, lax.cond or padding), got "
            f"{type(e).__name__}: {str(e).splitlines()[0]}"
        ) from None
    except TypeError as e:
        if "not a valid JAX type" not in str(e):
            raise
        raise TypeError(f"`fn` must return a pytree of arrays, got {e}") from None
    leaves, treedef = jax.tree_util.tree_flatten(out)
    if not leaves:
        raise ValueError(f"`fn` must return a pytree holding at least one array, got {out!r}")
    return leaves, treedef
