"""Loss-landscape scans: a loss and its gradients over a grid in parameter space.

A scan evaluates ``L(θ)`` at every point of a Cartesian grid

    θ(c) = θ₀ + Σ_k c_k D_k,

where each axis ``k`` is either a named scalar parameter (``D_k`` is its unit vector and
``c_k`` its value) or a direction in parameter space (``D_k = d`` and ``c_k = α``). At
every point it returns the loss, the derivative along every scanned axis ``∂L/∂c_k =
⟨∇L, D_k⟩`` and the full gradient norm ``‖∇_θ L‖₂``.

The grid is evaluated in chunks of equal shape by one jitted function (compiled once),
each chunk split over all devices along the grid-point axis with ``jax.sharding``
(``shard_map`` over a one-axis ``Mesh``; across hosts as well once
``jax.distributed`` is initialised, every process then making the same call and
receiving the whole result). A multi-core CPU is one device unless JAX is told otherwise
(``jax.config.update("jax_num_cpu_devices", os.cpu_count())`` before the first
computation); with one device per core, a scan uses every core. Finished chunks can be
written to a checkpoint folder, so that an interrupted scan resumes where it stopped and a
grid far larger than memory stays on disk.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .._fingerprint import identify
from .._io import write_atomic
from .._validation import check_array, check_choice, check_finite, check_positive_int
from .directions import leaf_names

GRADIENTS = ("full", "axes", "none")
METHODS = ("auto", "forward", "reverse")
# Grid points a CPU core evaluates together (see ``_evaluate_chunk``): a time loop's state
# for 4096 points, a few arrays of 16 KiB, stays in a core's L1/L2 cache.
CPU_BLOCK_SIZE = 4096
_FILES = ("loss", "axis_gradients", "gradient_norm", "finite")


class Direction(NamedTuple):
    """A grid axis along a direction: ``θ = θ₀ + α · vector`` for ``α`` in ``values``.

    ``vector`` is a pytree shaped like the scanned parameters (see
    ``random_direction``, ``filter_normalized_direction``, ``line_direction``); ``values``
    is a 1-D increasing array or a ``(start, stop, num)`` tuple.
    """

    vector: Any
    values: Any


class LandscapeScan(NamedTuple):
    """The result of ``scan_landscape`` (host NumPy arrays, or memory maps on disk).

    Attributes:
        names: axis names, in grid order.
        coords: one 1-D array of coordinates per axis.
        loss: ``grid_shape``.
        axis_gradients: ``grid_shape + (k,)``, ``∂L/∂c_k`` (``None`` when
            ``gradient="none"``).
        gradient_norm: ``grid_shape``, ``‖∇_θ L‖₂`` over all parameters (``None`` unless
            ``gradient="full"``).
        finite: ``grid_shape`` bool, True where the loss and all gradients are finite.
        nonfinite_points: ``(m, k)`` coordinates of the first ``m`` non-finite points in
            grid order (at most ``max_reported``).
        num_nonfinite: how many points are non-finite in all.
        method: ``"forward"``, ``"reverse"`` or ``"none"``.
        complete: False when the scan stopped early (``max_chunks``); points not yet
            computed hold NaN and ``finite = False``.
    """

    names: tuple[str, ...]
    coords: tuple[np.ndarray, ...]
    loss: np.ndarray
    axis_gradients: np.ndarray | None
    gradient_norm: np.ndarray | None
    finite: np.ndarray
    nonfinite_points: np.ndarray
    num_nonfinite: int
    method: str
    complete: bool

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.coords)


# ---------------------------------------------------------------------------------------
# Argument checks


def _axis_values(name: str, spec: Any, dtype: Any) -> np.ndarray:
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


class _Layout(NamedTuple):
    """Static description of the parameter pytree (hashable: a ``jit`` static argument)."""

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[Any, ...]


def _unravel(theta: jax.Array, layout: _Layout) -> Any:
    leaves, offset = [], 0
    for shape, dtype in zip(layout.shapes, layout.dtypes):
        size = math.prod(shape)
        leaves.append(theta[offset:offset + size].reshape(shape).astype(dtype))
        offset += size
    return jax.tree_util.tree_unflatten(layout.treedef, leaves)


def _flatten(name: str, tree: Any, dtype: Any = None) -> tuple[np.ndarray, _Layout]:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    if not leaves:
        raise ValueError(f"`{name}` must hold at least one array, got an empty pytree")
    arrays = [check_array(name, leaf) for leaf in leaves]
    layout = _Layout(treedef, tuple(a.shape for a in arrays), tuple(a.dtype for a in arrays))
    dtype = dtype or jnp.result_type(*arrays)
    flat = np.concatenate([np.asarray(a, dtype).ravel() for a in arrays])
    return flat, layout


# ---------------------------------------------------------------------------------------
# The jitted per-chunk evaluation


def _point_values(c, base, D, *, loss_fn, layout, method, gradient):
    """Loss, axis gradients and gradient norm at one grid point ``θ = base + c @ D``."""

    def f(theta):
        return loss_fn(_unravel(theta, layout))

    theta = base + c @ D
    if method == "none":
        return f(theta), jnp.zeros((0,), theta.dtype), jnp.zeros((), theta.dtype)
    if method == "forward":
        tangents = D if gradient == "axes" else jnp.eye(theta.shape[0], dtype=theta.dtype)
        loss, derivs = jax.vmap(lambda t: jax.jvp(f, (theta,), (t,)),
                                out_axes=(None, 0))(tangents)
        if gradient == "axes":
            return loss, derivs, jnp.zeros((), theta.dtype)
        g = derivs
    else:
        loss, g = jax.value_and_grad(f)(theta)
    return loss, D @ g, jnp.sqrt(jnp.sum(g * g))


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


def _grid_points(start_digits, sizes, table, first, count, limit):
    """Coordinates (one array per axis: a ``(count, k)`` stack is slow to write on a CPU)
    of the grid points ``start + first + arange(count)`` in C order of a
    grid with axis lengths ``sizes`` (past the grid's end: its last point, the padding of
    the last chunk). ``table`` holds the axes' values one after another (see
    ``_axis_table``); ``limit`` (a Python int) bounds ``first + count``.

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


def _axis_table(coords: list[np.ndarray]) -> np.ndarray:
    """The axes' values one after another, padded to a power of two so that grids whose
    axes differ in length share a compiled chunk."""
    values = np.concatenate(coords)
    return np.pad(values, (0, (1 << (values.size - 1).bit_length()) - values.size))


@partial(jax.jit, static_argnames=("loss_fn", "layout", "method", "gradient", "mesh",
                                   "per_device", "block_size"))
def _evaluate_chunk(start_digits, sizes, table, base, D, *, loss_fn, layout, method,
                    gradient, mesh, per_device, block_size):
    """One chunk of ``per_device`` points per device, from the grid point whose
    multi-index is ``start_digits`` in a grid with axis lengths ``sizes``: each device
    makes its own points' coordinates (``_grid_points``) and evaluates them. Returns
    loss, axis gradients, gradient norm and the finite mask.

    ``shard_map`` gives every device its own slice explicitly; on a CPU with one simulated
    device per core (``XLA_FLAGS=--xla_force_host_platform_device_count``) the slices then
    run on all cores at once, where an automatically partitioned ``jit`` ran them one
    after another (jax 0.10). ``check_vma=False``: the user's loss is per-point code that
    knows nothing of the mesh (e.g. a ``lax.scan`` carry started from a constant).

    Within a device, the slice is evaluated ``block_size`` points at a time
    (``lax.map(..., batch_size=block_size)``) when it holds more: a loss with a time loop
    then keeps its per-point state in the core's cache for the whole loop instead of
    streaming the slice's state through memory at every step (``None``: the whole slice
    at once, what a GPU wants).
    """
    point = partial(_point_values, loss_fn=loss_fn, layout=layout, method=method,
                    gradient=gradient)

    def on_device(start_digits, sizes, table, base, D):
        first = jax.lax.axis_index("points") * per_device
        c = _grid_points(start_digits, sizes, table, first, per_device,
                         per_device * mesh.size)

        def f(ci):
            return point(jnp.stack(ci), base, D)

        if block_size is None or per_device <= block_size:
            loss, grads, norm = jax.vmap(f)(c)
        else:
            # lax.map cannot reshape zero-size outputs (the empty gradients of "none"):
            # map the others and make those here.
            shapes = jax.eval_shape(f, tuple(x[0] for x in c))
            mapped = iter(jax.lax.map(lambda ci: tuple(o for o in f(ci) if o.size), c,
                                      batch_size=block_size))
            loss, grads, norm = (next(mapped) if s.size
                                 else jnp.zeros((per_device, *s.shape), s.dtype)
                                 for s in shapes)
        finite = jnp.isfinite(loss) & jnp.all(jnp.isfinite(grads), axis=1)
        if gradient == "full":
            finite &= jnp.isfinite(norm)
        return loss, grads, norm, finite

    points, replicated = PartitionSpec("points"), PartitionSpec()
    return jax.shard_map(on_device, mesh=mesh, in_specs=replicated, out_specs=points,
                         check_vma=False)(start_digits, sizes, table, base, D)


def _to_host(x: jax.Array) -> np.ndarray:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def _global_array(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from the same host copy on every process (works on one host too)."""
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


# ---------------------------------------------------------------------------------------
# Storage: in memory, or a checkpoint folder with one .npy per output and a progress file


def _fields(gradient: str) -> tuple[str, ...]:
    return {"full": _FILES, "axes": ("loss", "axis_gradients", "finite"),
            "none": ("loss", "finite")}[gradient]


class _MemoryStore:
    def __init__(self, n: int, k: int, dtype: Any, fields: tuple[str, ...]):
        shapes = {"loss": (n,), "axis_gradients": (n, k), "gradient_norm": (n,)}
        self.arrays = {name: np.full(shapes[name], np.nan, dtype)
                       for name in fields if name != "finite"}
        self.arrays["finite"] = np.zeros((n,), bool)
        self.done: set[int] = set()
        self.nonfinite: list[int] = []
        self.num_nonfinite = 0

    def write(self, chunk: int, start: int, values: dict[str, np.ndarray],
              bad: np.ndarray, max_reported: int) -> None:
        for name, v in values.items():
            self.arrays[name][start:start + len(v)] = v
        self._record(chunk, bad, max_reported)

    def _record(self, chunk: int, bad: np.ndarray, max_reported: int) -> None:
        # The first max_reported in grid order, also when chunks come out of order (a
        # damaged chunk of a checkpoint folder recomputed after the later ones).
        merged = self.nonfinite + [int(i) for i in bad[:max_reported]]
        self.nonfinite = sorted(merged)[:max_reported]
        self.num_nonfinite += int(bad.size)
        self.done.add(chunk)

    def result_arrays(self) -> dict[str, np.ndarray]:
        return self.arrays


class _DiskStore(_MemoryStore):
    """``loss.npy``, ``axis_gradients.npy``, ``gradient_norm.npy``, ``finite.npy`` written
    chunk by chunk with plain file writes (resident memory stays one chunk), and
    ``progress.json`` (the scan's identity, the finished chunks and a checksum of every
    finished chunk's rows in every file) replaced atomically after each chunk: a chunk
    counts as finished only once its data are on disk.

    Opening a folder reads every finished chunk back and checks it (``_verify``): a chunk
    whose bytes differ from its checksum is recomputed, a missing file or one of the wrong
    header or size is recreated and every chunk recomputed, each with a warning that names
    the file; a ``progress.json`` that cannot be read is refused (ValueError naming it):
    without it the folder's scan cannot be identified.

    With several processes (``jax.distributed``) the folder is shared: process 0 alone
    opens, checks, allocates and writes it, and sends what it found (the finished chunks
    and warnings, or the error) to every process, so that all run the same chunks and
    raise or warn together.
    """

    def __init__(self, folder: Path, n: int, k: int, dtype: Any, fields: tuple[str, ...],
                 chunk: int, parts: dict[str, str], max_reported: int):
        self.folder = folder
        self.fields = fields
        self.n, self.chunk, self.n_chunks = n, chunk, -(-n // chunk)
        self.parts = parts
        self.spec_hash = _digest(parts)
        self.max_reported = max_reported
        self.checksums: dict[int, list[str]] = {}
        self.shapes = {"loss": (n,), "axis_gradients": (n, k), "gradient_norm": (n,),
                       "finite": (n,)}
        self.dtypes = {"loss": np.dtype(dtype), "axis_gradients": np.dtype(dtype),
                       "gradient_norm": np.dtype(dtype), "finite": np.dtype(bool)}
        self.rows = {name: math.prod(self.shapes[name][1:]) * self.dtypes[name].itemsize
                     for name in self.shapes}
        self.offsets: dict[str, int] = {}
        self.writer = jax.process_index() == 0
        state, error = None, None
        if self.writer:
            try:
                state = self._open()
            except Exception as e:  # every process must learn of it, or the others hang
                error = e
                state = {"error": type(e).__name__, "message": str(e)}
        state = _from_process_0(state)
        if error is not None:
            raise error
        if "error" in state:
            kind = ValueError if state["error"] == "ValueError" else RuntimeError
            raise kind(f"{state['message']} (raised by process 0 on the `checkpoint` folder)")
        for message in state["warnings"]:
            warnings.warn(message, RuntimeWarning, stacklevel=3)
        self.done = set(state["done"])
        self.nonfinite = list(state["nonfinite"])
        self.num_nonfinite = int(state["num_nonfinite"])
        if jax.process_count() > 1:
            _check_shared(folder, self.spec_hash)

    def _open(self) -> dict[str, Any]:
        """Check or create the folder (process 0); return its progress state."""
        folder = self.folder
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"`checkpoint` must be a folder, got {str(folder)!r}, which is "
                             "an existing file")
        folder.mkdir(parents=True, exist_ok=True)
        progress = folder / "progress.json"
        self.done, self.checksums, self.nonfinite, self.num_nonfinite = set(), {}, [], 0
        if progress.is_file():
            self._read_progress(progress)
        bad = [f"{name}.npy {why}" for name in self.fields if (why := self._check_file(name))]
        notes = []
        if bad or not progress.is_file():
            if self.done:
                notes.append(
                    f"`checkpoint` folder {str(folder)!r}: {'; '.join(bad)}; recreating its "
                    f"files and recomputing all {len(self.done)} finished chunk(s)"
                )
            self.done, self.checksums = set(), {}
            for name in self.fields:
                self._allocate(name, folder / f"{name}.npy")
            self._save_progress()
        else:
            notes = self._verify()
        return {"done": sorted(self.done), "nonfinite": self.nonfinite,
                "num_nonfinite": self.num_nonfinite, "warnings": notes}

    def _read_progress(self, progress: Path) -> None:
        """The finished chunks and their checksums from ``progress.json``; raises unless
        the file is intact and describes this scan."""

        def damaged(why: str) -> ValueError:
            return ValueError(
                f"`checkpoint` file {str(progress)!r} is damaged ({why}), so the scan and "
                "the finished chunks in its folder cannot be identified; delete the folder "
                "(or only this file, to recompute every chunk there) and run again"
            )

        try:
            state = json.loads(progress.read_bytes())
        except (OSError, ValueError) as e:  # JSONDecodeError, UnicodeDecodeError
            raise damaged(f"{type(e).__name__}: {e}") from None
        if not isinstance(state, dict) or not isinstance(state.get("spec"), str):
            raise damaged("no scan identity in it")
        if state.get("version") != 2:
            raise ValueError(
                f"`checkpoint` folder {str(self.folder)!r} holds a scan written by an older "
                "jaxgrad, without checksums; use a new folder or delete this one"
            )
        if state["spec"] != self.spec_hash:
            old = state.get("parts") if isinstance(state.get("parts"), dict) else {}
            differ = [part for part, value in self.parts.items() if old.get(part) != value]
            if not differ:
                raise damaged("its scan identity does not match its parts")
            what = ", ".join(f"`{part}`" for part in differ)
            hint = (" (its code, constants, defaults, closure cells, partial arguments, "
                    "referenced globals, or `fingerprint`)" if "loss_fn" in differ else "")
            raise ValueError(
                f"`checkpoint` folder {str(self.folder)!r} holds a different scan: its "
                f"{what} differ(s){hint}; use a new folder or delete this one"
            )
        done, sums = state.get("done"), state.get("checksums")
        if not (isinstance(done, list) and isinstance(sums, dict)
                and all(type(c) is int and 0 <= c < self.n_chunks for c in done)
                and len(set(done)) == len(done) and set(sums) == {str(c) for c in done}
                and all(isinstance(v, list) and len(v) == len(self.fields)
                        and all(isinstance(x, str) for x in v) for v in sums.values())):
            raise damaged("its finished chunks and their checksums do not agree")
        self.done = set(done)
        self.checksums = {int(c): v for c, v in sums.items()}

    def _check_file(self, name: str) -> str | None:
        """Why ``name.npy`` cannot hold this scan's output (None when it can)."""
        path = self.folder / f"{name}.npy"
        if not path.is_file():
            return "is missing"
        try:
            with open(path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                read = {(1, 0): np.lib.format.read_array_header_1_0,
                        (2, 0): np.lib.format.read_array_header_2_0}[version]
                shape, fortran_order, dtype = read(fh)
                self.offsets[name] = fh.tell()
        except Exception as e:  # a damaged header: ValueError, KeyError, SyntaxError...
            return f"has a damaged header ({type(e).__name__})"
        if shape != self.shapes[name] or dtype != self.dtypes[name] or fortran_order:
            return (f"holds shape {shape} {dtype}, expected {self.shapes[name]} "
                    f"{self.dtypes[name]}")
        size = self.offsets[name] + self.n * self.rows[name]
        if path.stat().st_size != size:
            return f"has {path.stat().st_size} bytes, expected {size} (truncated or damaged)"
        return None

    def _region(self, c: int) -> tuple[int, int]:
        start = c * self.chunk
        return start, min(self.chunk, self.n - start)

    def _verify(self) -> list[str]:
        """Read every chunk back (process 0, on opening): a finished chunk whose bytes in
        any file differ from its checksum is reset and dropped from the finished ones
        (recomputed, with a warning naming the file); an unfinished chunk's rows are reset
        to NaN (False) unless they are (an interrupted write, damage). The non-finite
        points are counted anew from the checked ``finite`` rows."""
        damaged: dict[str, list[int]] = {}
        reset = []
        handles = {name: open(self.folder / f"{name}.npy", "rb") for name in self.fields}
        try:
            for c in range(self.n_chunks):
                start, count = self._region(c)
                data, intact = {}, True
                for i, name in enumerate(self.fields):
                    fh = handles[name]
                    fh.seek(self.offsets[name] + start * self.rows[name])
                    data[name] = fh.read(count * self.rows[name])
                    if c in self.done and _checksum(data[name]) != self.checksums[c][i]:
                        damaged.setdefault(name, []).append(c)
                        intact = False
                if c in self.done and intact:
                    finite = np.frombuffer(data["finite"], bool)
                    self._record(c, start + np.flatnonzero(~finite), self.max_reported)
                    continue
                blank = all(np.isnan(np.frombuffer(v, self.dtypes[name])).all()
                            if name != "finite" else not any(v) for name, v in data.items())
                if c in self.done or not blank:
                    reset.append(c)
        finally:
            for fh in handles.values():
                fh.close()
        for c in reset:
            self.done.discard(c)
            self.checksums.pop(c, None)
            for name in self.fields:
                self._fill(name, c)
        if damaged:
            self._save_progress()
        return [f"`checkpoint` file {str(self.folder / f'{name}.npy')!r}: chunk(s) "
                f"{chunks} do not match their checksums (damaged on disk); recomputing them"
                for name, chunks in damaged.items()]

    def _fill(self, name: str, c: int) -> None:
        """Reset chunk ``c``'s rows of ``name.npy`` to NaN (False)."""
        start, count = self._region(c)
        shape = (count, *self.shapes[name][1:])
        dtype = self.dtypes[name]
        fill = np.zeros(shape, dtype) if dtype.kind == "b" else np.full(shape, np.nan, dtype)
        self._write_rows(name, start, fill.tobytes())

    def _write_rows(self, name: str, start: int, data: bytes) -> None:
        with open(self.folder / f"{name}.npy", "r+b") as fh:
            fh.seek(self.offsets[name] + start * self.rows[name])
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def _allocate(self, name: str, path: Path) -> None:
        """A new file of NaN (False); replaced atomically, so that a memory map of the old
        file (an earlier result, on any process) keeps its data."""
        shape, dtype = self.shapes[name], self.dtypes[name]

        def fill_file(fh):
            np.lib.format.write_array_header_1_0(
                fh, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                     "shape": shape})
            self.offsets[name] = fh.tell()
            fill = np.zeros if dtype.kind == "b" else partial(np.full, fill_value=np.nan)
            block = fill((min(1 << 20, math.prod(shape)),), dtype=dtype)
            remaining = math.prod(shape)
            while remaining > 0:
                m = min(remaining, block.size)
                fh.write(block[:m].tobytes())
                remaining -= m

        write_atomic(path, fill_file)

    def _save_progress(self) -> None:
        if not self.writer:
            return
        done = sorted(self.done)
        state = {"version": 2, "spec": self.spec_hash, "parts": self.parts, "done": done,
                 "checksums": {str(c): self.checksums[c] for c in done}}
        write_atomic(self.folder / "progress.json", json.dumps(state).encode())

    def write(self, chunk: int, start: int, values: dict[str, np.ndarray],
              bad: np.ndarray, max_reported: int) -> None:
        if self.writer:
            sums = []
            for name in self.fields:
                data = np.ascontiguousarray(values[name], self.dtypes[name]).tobytes()
                self._write_rows(name, start, data)
                sums.append(_checksum(data))
            self.checksums[chunk] = sums
        self._record(chunk, bad, max_reported)
        self._save_progress()

    def result_arrays(self) -> dict[str, np.ndarray]:
        if jax.process_count() == 1:
            return {name: np.load(self.folder / f"{name}.npy", mmap_mode="r")
                    for name in self.fields}
        from jax.experimental import multihost_utils

        # Open the files once process 0 has written everything, and return only once
        # every process has opened them (before process 0 can touch the folder again).
        multihost_utils.sync_global_devices("jaxgrad.scan_landscape: written")
        arrays = {name: np.load(self.folder / f"{name}.npy", mmap_mode="r")
                  for name in self.fields}
        multihost_utils.sync_global_devices("jaxgrad.scan_landscape: opened")
        return arrays


def _checksum(data: bytes) -> str:
    """A chunk's rows in one file: SHA-256, 64 bits of it (damage, not an adversary)."""
    return hashlib.sha256(data).hexdigest()[:16]


def _from_process_0(state: Any) -> Any:
    """Process 0's JSON-able ``state`` on every process (``jax.distributed``)."""
    if jax.process_count() == 1:
        return state
    from jax.experimental import multihost_utils

    data = np.frombuffer(json.dumps(state).encode(), np.uint8) \
        if jax.process_index() == 0 else np.zeros((0,), np.uint8)
    size = int(multihost_utils.broadcast_one_to_all(np.int32(data.size)))
    if jax.process_index() != 0:
        data = np.zeros((size,), np.uint8)
    data = multihost_utils.broadcast_one_to_all(data)
    return json.loads(np.asarray(data, np.uint8).tobytes().decode())


def _check_shared(folder: Path, spec_hash: str) -> None:
    """Raise on every process unless every process sees process 0's checkpoint folder."""
    from jax.experimental import multihost_utils

    try:
        seen = json.loads((folder / "progress.json").read_text()).get("spec") == spec_hash
    except (OSError, ValueError):
        seen = False
    seen_by = np.asarray(multihost_utils.process_allgather(np.int32(seen))).ravel()
    if not seen_by.all():
        missing = [int(i) for i in np.flatnonzero(seen_by == 0)]
        raise ValueError(
            f"`checkpoint` folder {str(folder)!r} must be shared by all processes (one "
            f"filesystem path), but process(es) {missing} do not see the progress file "
            "that process 0 wrote there"
        )


# ---------------------------------------------------------------------------------------
# The public scanner


def scan_landscape(
    loss_fn: Callable[[Any], jax.Array],
    params: Any,
    axes: Mapping[str, Any],
    *,
    gradient: str = "full",
    method: str = "auto",
    chunk_size: int = 4096,
    checkpoint: str | os.PathLike | None = None,
    max_chunks: int | None = None,
    progress: bool = True,
    forward_max_tangents: int = 8,
    max_reported: int = 1000,
    block_size: int | None = None,
    fingerprint: str | bytes | None = None,
) -> LandscapeScan:
    """Scan ``loss_fn`` over a grid of named parameters and/or directions.

    The point with grid coordinates ``c`` is ``θ(c) = θ₀ + Σ_k c_k D_k``: a named axis
    sets that scalar parameter to ``c_k``; a ``Direction(d, values)`` axis moves by
    ``c_k d`` from ``params``. Per point: ``L``, ``∂L/∂c_k = ⟨∇L, D_k⟩`` and ``‖∇_θ L‖₂``.
    Forward mode (``jax.jvp`` along the needed tangents) is used when few tangents are
    needed (the parameter count for ``gradient="full"``, the axis count for ``"axes"``;
    at most ``forward_max_tangents``), reverse mode (``jax.value_and_grad``) otherwise.
    Loss landscapes after Li et al. (2018); cliffs after Pascanu, Mikolov & Bengio (2013).

    Devices and hosts: each chunk is split over all devices of ``jax.devices()``
    (``shard_map`` over a one-axis ``Mesh``). To scan across hosts, start one Python process
    per host (or per group of devices), call ``jax.distributed.initialize(...)`` first in
    each, then make the same ``scan_landscape`` call in each: every process computes its
    devices' share of every chunk and returns the whole result. With ``checkpoint`` the
    folder must be one path on a filesystem all processes share; process 0 alone creates,
    checks and writes it and tells the others which chunks are done (or why it refused the
    folder, raised on every process). Results do not depend on the device count, except
    that reverse-mode axis gradients (``D @ g``) may differ in the last bit, since XLA
    compiles the contraction batched over a device's points differently for different
    batch sizes.

    Arguments:
        loss_fn: ``loss_fn(params) -> scalar``, traceable by JAX.
        params: any pytree of floating arrays: the base point ``θ₀``.
        axes: ``{name: values}`` in grid order. ``name`` a dotted leaf name of ``params``
            (``"b"``, ``"first.W"``; the leaf must hold one number) with ``values`` a 1-D
            increasing array or a ``(start, stop, num)`` tuple; or any name with a
            ``Direction(vector, values)``.
        gradient: ``"full"`` (axis gradients and full gradient norm), ``"axes"`` (axis
            gradients only) or ``"none"`` (the loss only).
        method: ``"auto"``, ``"forward"`` or ``"reverse"``.
        chunk_size: the most grid points per jitted call (memory stays bounded by it);
            the grid is cut into equal chunks of at most this size, each padded to a
            multiple of the device count.
        checkpoint: a folder; each finished chunk is written there and a rerun with the
            same scan resumes. The result's arrays are then memory maps of files there.
            The same scan means the same ``loss_fn`` (its bytecode, constants, defaults,
            closure cells, ``functools.partial`` arguments and the globals its code names,
            followed into the functions they hold; arrays by dtype, shape and bytes;
            library functions and classes by name and version), parameters, axes,
            ``gradient``, method and chunk size; a folder of another scan is refused
            (ValueError naming what differs), and so is ``checkpoint`` when the loss holds
            an object with no deterministic fingerprint (pass ``fingerprint``). Every
            finished chunk has a checksum per file: on resuming, a damaged chunk is
            recomputed, and a missing or truncated file recreated (every chunk
            recomputed), each with a warning; a damaged ``progress.json`` is refused
            (ValueError naming it: delete the folder). With several processes
            (``jax.distributed``) the folder must be shared (checked; a ValueError
            otherwise); process 0 alone writes it.
        max_chunks: compute at most this many new chunks in this call (the result is then
            partial, ``complete=False``; call again to continue).
        progress: show a tqdm progress bar (on process 0).
        forward_max_tangents: the most tangents for which ``method="auto"`` picks forward
            mode.
        max_reported: the most non-finite points whose coordinates are listed.
        block_size: grid points a device evaluates together, block after block, within
            its share of a chunk (``None``: ``CPU_BLOCK_SIZE`` = 4096 on CPUs, where a
            loss's time loop then runs in cache: Doya's loss and gradient over a grid
            scanned 1.4-1.7x faster; the whole share at once on GPUs and TPUs). Results
            do not depend on it, except in the last bit of reverse-mode axis gradients
            (see above).
        fingerprint: with ``checkpoint``, a str or bytes that identifies ``loss_fn``
            instead of its automatic fingerprint (the parameters, axes and settings still
            count): needed when the loss holds an object that cannot be fingerprinted (a
            model object, a file handle); change it whenever the loss changes.

    Returns:
        A ``LandscapeScan``.

    Raises:
        ValueError: an unknown parameter name, an empty or reversed interval, a grid with
            zero points, a non-scalar loss, a checkpoint folder of another scan, one that
            not every process sees, a damaged ``progress.json``, a ``checkpoint`` that is
            an existing file, or a ``loss_fn`` that cannot be identified without
            ``fingerprint``.
        TypeError: a ``loss_fn`` that is not callable, a ``checkpoint`` that is not a
            path, a ``fingerprint`` that is not a str or bytes.

    Warns:
        RuntimeWarning: chunks of a checkpoint folder were damaged or its files missing or
            truncated, and are recomputed.

    Example:
        >>> loss = lambda p: (p["a"] - 1.0) ** 2 + 3.0 * p["b"] ** 2
        >>> scan = scan_landscape(loss, {"a": 0.0, "b": 0.0},
        ...                       {"a": (-1.0, 3.0, 41), "b": (-1.0, 1.0, 21)})
        >>> scan.loss.shape, scan.axis_gradients.shape
        ((41, 21), (41, 21, 2))

        Across hosts, the same script on every host (or under a cluster launcher, where
        ``jax.distributed.initialize()`` finds its arguments itself)::

            jax.distributed.initialize(coordinator_address="10.0.0.1:1234",
                                       num_processes=2, process_id=host_index)
            scan = scan_landscape(loss, params, axes, checkpoint="/shared/scan")
    """
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable, got {type(loss_fn).__name__}")
    check_choice("gradient", gradient, GRADIENTS)
    check_choice("method", method, METHODS)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    forward_max_tangents = check_positive_int("forward_max_tangents", forward_max_tangents,
                                              minimum=0)
    max_reported = check_positive_int("max_reported", max_reported, minimum=0)
    if block_size is not None:
        block_size = check_positive_int("block_size", block_size)
    if max_chunks is not None:
        max_chunks = check_positive_int("max_chunks", max_chunks, minimum=0)
    if not isinstance(axes, Mapping) or not axes:
        raise ValueError(f"`axes` must be a non-empty mapping {{name: values}}, got {axes!r}")
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"`checkpoint` must be a folder path (str or os.PathLike), got "
                        f"{type(checkpoint).__name__}")
    if fingerprint is not None:
        if not isinstance(fingerprint, (str, bytes)):
            raise TypeError(f"`fingerprint` must be a str or bytes, got "
                            f"{type(fingerprint).__name__}")
        if not fingerprint:
            raise ValueError("`fingerprint` must be a non-empty str or bytes, got an empty one")

    base, layout = _flatten("params", params)
    check_finite("params", params)
    dtype = base.dtype
    names = leaf_names(params)
    offsets = np.cumsum([0] + [math.prod(s) for s in layout.shapes])
    num_params = base.size

    coords, rows, seen = [], [], set()
    for name, spec in axes.items():
        if not isinstance(name, str):
            raise TypeError(f"`axes` keys must be strings, got {name!r}")
        if isinstance(spec, Direction):
            vector, vlayout = _flatten(f"axes[{name!r}].vector", spec.vector, dtype)
            if vlayout.treedef != layout.treedef or vlayout.shapes != layout.shapes:
                raise ValueError(
                    f"`axes[{name!r}].vector` must have the structure and shapes of "
                    f"`params`, got {vlayout.treedef} {vlayout.shapes} for "
                    f"{layout.treedef} {layout.shapes}"
                )
            if not np.all(np.isfinite(vector)):
                raise ValueError(f"`axes[{name!r}].vector` must be finite")
            rows.append(vector)
            coords.append(_axis_values(name, spec.values, dtype))
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
        row = np.zeros(num_params, dtype)
        row[offsets[i]] = 1
        base[offsets[i]] = 0
        rows.append(row)
        coords.append(_axis_values(name, spec, dtype))
    D = np.stack(rows)
    k = len(rows)

    out = jax.eval_shape(loss_fn, params)
    if not (hasattr(out, "shape") and out.shape == () and jnp.issubdtype(out.dtype, jnp.floating)):
        raise ValueError(f"`loss_fn` must return a floating scalar, got {out}")

    if gradient == "none":
        chosen = "none"
    elif method == "auto":
        tangents = num_params if gradient == "full" else k
        chosen = "forward" if tangents <= forward_max_tangents else "reverse"
    else:
        chosen = method

    grid_shape = tuple(len(c) for c in coords)
    n = math.prod(grid_shape)
    n_chunks = -(-n // min(chunk_size, n))
    chunk = -(-n // n_chunks)  # equal chunks: the last one is not mostly padding
    n_dev = jax.device_count()
    padded = -(-chunk // n_dev) * n_dev
    block = block_size
    if block is None and jax.devices()[0].platform == "cpu":
        block = CPU_BLOCK_SIZE

    mesh = Mesh(np.asarray(jax.devices()), ("points",))
    replicated = NamedSharding(mesh, PartitionSpec())
    base_dev = _global_array(base, replicated)
    D_dev = _global_array(D, replicated)
    table_dev = _global_array(_axis_table(coords), replicated)
    sizes_dev = _global_array(np.asarray(grid_shape, np.int32), replicated)

    if checkpoint is None:
        store: _MemoryStore = _MemoryStore(n, k, dtype, _fields(gradient))
    else:
        parts = _spec_parts(loss_fn, fingerprint, base, layout, D, coords, gradient, chosen,
                            chunk, names, list(axes))
        store = _DiskStore(Path(checkpoint), n, k, dtype, _fields(gradient), chunk, parts,
                           max_reported)

    todo = [c for c in range(n_chunks) if c not in store.done]
    if max_chunks is not None:
        todo = todo[:max_chunks]
    bar = None
    if progress and jax.process_index() == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_chunks, initial=len(store.done), unit="chunk", desc="scan_landscape")

    def dispatch(c: int) -> tuple:
        start_digits = np.asarray(np.unravel_index(c * chunk, grid_shape), np.int32)
        return c, _evaluate_chunk(
            _global_array(start_digits, replicated), sizes_dev, table_dev, base_dev, D_dev,
            loss_fn=loss_fn, layout=layout, method=chosen, gradient=gradient, mesh=mesh,
            per_device=padded // n_dev, block_size=block)

    def collect(c: int, outputs: tuple) -> None:
        start = c * chunk
        count = min(chunk, n - start)
        named = dict(zip(_FILES, outputs))  # _evaluate_chunk returns them in this order
        values = {name: _to_host(named[name])[:count] for name in _fields(gradient)}
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

    arrays = store.result_arrays()
    idx = np.asarray(sorted(store.nonfinite), dtype=np.int64)
    multi = np.unravel_index(idx, grid_shape)
    nonfinite_points = np.stack([coords[j][multi[j]] for j in range(k)], axis=1) \
        if idx.size else np.zeros((0, k), dtype)
    return LandscapeScan(
        names=tuple(axes),
        coords=tuple(coords),
        loss=arrays["loss"].reshape(grid_shape),
        axis_gradients=None if gradient == "none"
        else arrays["axis_gradients"].reshape(grid_shape + (k,)),
        gradient_norm=arrays["gradient_norm"].reshape(grid_shape) if gradient == "full"
        else None,
        finite=arrays["finite"].reshape(grid_shape),
        nonfinite_points=nonfinite_points,
        num_nonfinite=store.num_nonfinite,
        method=chosen,
        complete=len(store.done) == n_chunks,
    )


# ---------------------------------------------------------------------------------------
# The identity of a scan: what a checkpoint folder must agree on before a scan resumes


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(f"{part.dtype.str}{part.shape}".encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True).encode())
    return h.hexdigest()[:32]


def _spec_parts(loss_fn, fingerprint, base, layout, D, coords, gradient, method, chunk,
                names, axis_names) -> dict[str, str]:
    """What a checkpoint folder must agree on before a scan resumes from it, by part."""
    if fingerprint is not None:
        data = fingerprint.encode() if isinstance(fingerprint, str) else bytes(fingerprint)
        loss = "fingerprint " + hashlib.sha256(data).hexdigest()[:32]
    else:
        identity = identify(loss_fn, "`loss_fn`")
        if identity.unidentified:
            raise ValueError(
                f"`checkpoint` needs the identity of `loss_fn`, which cannot be established: "
                f"{identity.unidentified[0]}, which has no deterministic fingerprint (arrays, "
                "numbers, strings, containers, dataclasses and functions of these have one). "
                "Pass `fingerprint=` (a str or bytes that changes whenever the loss does) to "
                "identify the loss yourself"
            )
        loss = identity.digest[:32]
    return {
        "loss_fn": loss,
        "params": _digest(base, [str(d) for d in layout.dtypes],
                          [list(s) for s in layout.shapes], names),
        "axes": _digest(axis_names, D, *coords),
        "gradient": gradient,
        "method": method,
        "chunk_size": str(chunk),
    }
