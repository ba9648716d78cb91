"""The engine under ``scan_landscape`` and ``sweep``: any per-point function over a grid,
chunk by chunk, each chunk split over every device (and every process).

``run`` evaluates ``point(c, *operands) -> {name: array}`` at every grid point ``c``
(a ``(k,)`` coordinate vector) in chunks of equal shape by one jitted function
(``evaluate_chunk``, compiled once per point function and chunk shape), each chunk split
over all devices along the grid-point axis (``shard_map`` over a one-axis ``Mesh``;
across hosts as well once ``jax.distributed`` is initialised), and hands every finished
chunk to a store (``_storage``) with the points where an output is not finite.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .._validation import check_positive_int
from ._grid import Chunks, axis_table, coordinates_of, grid_points, plan_chunks
from ._storage import DiskStore, MemoryStore

# Grid points a CPU core evaluates together (see ``evaluate_chunk``): a time loop's state
# for 4096 points, a few arrays of 16 KiB, stays in a core's L1/L2 cache.
CPU_BLOCK_SIZE = 4096


@partial(jax.jit, static_argnames=("point", "mesh", "per_device", "block_size"))
def evaluate_chunk(start_digits, sizes, table, operands, *, point, mesh, per_device,
                   block_size):
    """One chunk of ``per_device`` points per device, from the grid point whose
    multi-index is ``start_digits`` in a grid with axis lengths ``sizes``: each device
    makes its own points' coordinates (``grid_points``) and evaluates ``point`` there.
    Returns ``point``'s outputs (``{name: (points, ...)}``) and the mask of points where
    every output is finite.

    ``shard_map`` gives every device its own slice explicitly; on a CPU with one simulated
    device per core (``XLA_FLAGS=--xla_force_host_platform_device_count``) the slices then
    run on all cores at once, where an automatically partitioned ``jit`` ran them one
    after another (jax 0.10). ``check_vma=False``: the user's function is per-point code
    that knows nothing of the mesh (e.g. a ``lax.scan`` carry started from a constant).

    Within a device, the slice is evaluated ``block_size`` points at a time
    (``lax.map(..., batch_size=block_size)``) when it holds more: a function with a time
    loop then keeps its per-point state in the core's cache for the whole loop instead of
    streaming the slice's state through memory at every step (``None``: the whole slice
    at once, what a GPU wants).
    """

    def on_device(start_digits, sizes, table, operands):
        first = jax.lax.axis_index("points") * per_device
        c = grid_points(start_digits, sizes, table, first, per_device,
                        per_device * mesh.size)

        def f(ci):
            return point(jnp.stack(ci), *operands)

        if block_size is None or per_device <= block_size:
            outputs = jax.vmap(f)(c)
        else:
            # lax.map cannot reshape zero-size outputs: map the others, make those here.
            shapes = jax.eval_shape(f, tuple(x[0] for x in c))
            mapped = jax.lax.map(
                lambda ci: {name: o for name, o in f(ci).items() if o.size}, c,
                batch_size=block_size)
            outputs = {name: mapped[name] if s.size
                       else jnp.zeros((per_device, *s.shape), s.dtype)
                       for name, s in shapes.items()}
        finite = jnp.ones((per_device,), bool)
        for o in outputs.values():
            if jnp.issubdtype(o.dtype, jnp.inexact):
                finite &= jnp.all(jnp.isfinite(o), axis=tuple(range(1, o.ndim)))
        return outputs, finite

    points, replicated = PartitionSpec("points"), PartitionSpec()
    return jax.shard_map(on_device, mesh=mesh, in_specs=replicated, out_specs=points,
                         check_vma=False)(start_digits, sizes, table, operands)


class _ByIdentity:
    """An unhashable function (a callable dataclass, a module holding arrays) as part of
    a ``jit`` static argument: equal to a wrapper of the same object only."""

    def __init__(self, fn: Any):
        self.fn = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.fn is self.fn

    def __hash__(self) -> int:
        return id(self.fn)


def hashable(fn: Any) -> Any:
    """``fn``, or ``fn`` wrapped to be hashed by identity when it cannot be hashed."""
    try:
        hash(fn)
    except TypeError:
        return _ByIdentity(fn)
    return fn


def to_host(x: jax.Array) -> np.ndarray:
    """The whole of a global array on this process (gathered from every process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def _global_array(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from the same host copy on every process (works on one host too)."""
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def chunks_of(coords: list[np.ndarray], chunk_size: int) -> Chunks:
    """How the grid of ``coords`` is cut into chunks on this machine's devices."""
    return plan_chunks(tuple(len(c) for c in coords), chunk_size, jax.device_count())


def run(point: Any, operands: tuple[np.ndarray, ...], coords: list[np.ndarray],
        chunks: Chunks, store: MemoryStore, *, max_chunks: int | None, progress: bool,
        max_reported: int, block_size: int | None, name: str) -> None:
    """Evaluate the chunks ``store`` has not finished (at most ``max_chunks`` of them)
    and write each to ``store``; ``progress`` shows a tqdm bar named ``name`` on
    process 0."""
    grid_shape = tuple(len(c) for c in coords)
    n_dev = jax.device_count()
    block = block_size
    if block is None and jax.devices()[0].platform == "cpu":
        block = CPU_BLOCK_SIZE
    mesh = Mesh(np.asarray(jax.devices()), ("points",))
    replicated = NamedSharding(mesh, PartitionSpec())
    operands_dev = tuple(_global_array(x, replicated) for x in operands)
    table_dev = _global_array(axis_table(coords), replicated)
    sizes_dev = _global_array(np.asarray(grid_shape, np.int32), replicated)

    todo = [c for c in range(chunks.count) if c not in store.done]
    if max_chunks is not None:
        todo = todo[:max_chunks]
    bar = None
    if progress and jax.process_index() == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=chunks.count, initial=len(store.done), unit="chunk", desc=name)

    def dispatch(c: int) -> tuple:
        start_digits = np.asarray(np.unravel_index(c * chunks.size, grid_shape), np.int32)
        return c, evaluate_chunk(
            _global_array(start_digits, replicated), sizes_dev, table_dev, operands_dev,
            point=point, mesh=mesh, per_device=chunks.padded // n_dev, block_size=block)

    def collect(c: int, result: tuple) -> None:
        outputs, finite = result
        start = c * chunks.size
        count = min(chunks.size, chunks.n - start)
        values = {name: to_host(x)[:count] for name, x in outputs.items()}
        values["finite"] = to_host(finite)[:count]
        bad = start + np.flatnonzero(~values["finite"])
        store.write(c, start, values, bad, max_reported)
        if bar is not None:
            bar.update(1)

    # One chunk in flight: the next chunk is dispatched (asynchronously) before the
    # previous one is copied back and stored, so the devices never wait for the host.
    pending = None
    for c in todo:
        launched = dispatch(c)
        if pending is not None:
            collect(*pending)
        pending = launched
    if pending is not None:
        collect(*pending)
    if bar is not None:
        bar.close()


def nonfinite_points(store: MemoryStore, coords: list[np.ndarray]) -> np.ndarray:
    """``(m, k)`` coordinates of the non-finite points the store lists, in grid order."""
    return coordinates_of(np.asarray(sorted(store.nonfinite), dtype=np.int64), coords)


def check_run_options(chunk_size: Any, max_chunks: Any, max_reported: Any, block_size: Any,
                      checkpoint: Any, fingerprint: Any) -> tuple:
    """The options ``scan_landscape`` and ``sweep`` share, checked (by name) and
    normalised: ``(chunk_size, max_chunks, max_reported, block_size)``."""
    chunk_size = check_positive_int("chunk_size", chunk_size)
    max_reported = check_positive_int("max_reported", max_reported, minimum=0)
    if block_size is not None:
        block_size = check_positive_int("block_size", block_size)
    if max_chunks is not None:
        max_chunks = check_positive_int("max_chunks", max_chunks, minimum=0)
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"`checkpoint` must be a folder path (str or os.PathLike), got "
                        f"{type(checkpoint).__name__}")
    if fingerprint is not None:
        if not isinstance(fingerprint, (str, bytes)):
            raise TypeError(f"`fingerprint` must be a str or bytes, got "
                            f"{type(fingerprint).__name__}")
        if not fingerprint:
            raise ValueError("`fingerprint` must be a non-empty str or bytes, got an empty one")
    return chunk_size, max_chunks, max_reported, block_size


def open_store(checkpoint: Any, chunks: Chunks, fields: dict[str, tuple], parts: Any,
               max_reported: int, function_part: str) -> MemoryStore:
    """A store in memory, or the ``checkpoint`` folder (``parts()``: the identity it must
    hold, computed only for a folder)."""
    if checkpoint is None:
        return MemoryStore(chunks.n, fields)
    return DiskStore(Path(checkpoint), chunks.n, fields, chunks.size, parts(), max_reported,
                     function_part)
