"""Loss-landscape scans: a loss and its gradients over a grid in parameter space.

A scan evaluates ``L(θ)`` at every point of a Cartesian grid

    θ(c) = θ₀ + Σ_k c_k D_k,

where each axis ``k`` is either a named scalar parameter (``D_k`` is its unit vector and
``c_k`` its value) or a direction in parameter space (``D_k = d`` and ``c_k = α``). At
every point it returns the loss, the derivative along every scanned axis ``∂L/∂c_k =
⟨∇L, D_k⟩``, the full gradient norm ``‖∇_θ L‖₂`` and any other per-point quantity asked
for (``_quantities``: one function each), such as the sharpness ``λ_max(∇²_θ L)`` by
Lanczos on Hessian-vector products.

The grid is evaluated in chunks of equal shape by one jitted function (compiled once),
each chunk split over all devices along the grid-point axis with ``jax.sharding``
(``shard_map`` over a one-axis ``Mesh``; across hosts as well once
``jax.distributed`` is initialised, every process then making the same call and
receiving the whole result). A multi-core CPU is one device unless JAX is told otherwise
(``jax.config.update("jax_num_cpu_devices", os.cpu_count())`` before the first
computation); with one device per core, a scan uses every core. Finished chunks can be
written to a checkpoint folder, so that an interrupted scan resumes where it stopped and a
grid far larger than memory stays on disk.

This module is the driver; the parts are private modules: ``_grid`` (axes, the grid's
points), ``_quantities`` (what is computed at a point), ``_engine`` (chunked, sharded
evaluation of any per-point function, shared with ``sweep``) and ``_storage`` (memory,
checkpoint folders, several processes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_choice, check_positive_int
from . import _engine
from ._engine import CPU_BLOCK_SIZE as CPU_BLOCK_SIZE
from ._grid import Direction as Direction
from ._grid import LandscapeGrid, landscape_grid
from ._quantities import BY_GRADIENT, HESSIAN_QUANTITIES, QUANTITIES, LandscapePoint
from ._storage import digest, function_identity

GRADIENTS = ("full", "axes", "none")
METHODS = ("auto", "forward", "reverse")


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
        finite: ``grid_shape`` bool, True where the loss and all gradients (and the other
            quantities asked for) are finite.
        nonfinite_points: ``(m, k)`` coordinates of the first ``m`` non-finite points in
            grid order (at most ``max_reported``).
        num_nonfinite: how many points are non-finite in all.
        method: ``"forward"``, ``"reverse"`` or ``"none"``.
        complete: False when the scan stopped early (``max_chunks``); points not yet
            computed hold NaN and ``finite = False``.
        quantities: ``{name: grid_shape + shape}`` for the quantities asked for by
            ``quantities=`` (empty otherwise), e.g. ``quantities["sharpness"]``, the top
            Hessian eigenvalue at every grid point.
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
    quantities: Mapping[str, np.ndarray] = MappingProxyType({})

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.coords)


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
    quantities: Sequence[str] = (),
    lanczos_iterations: int = 20,
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
        quantities: more per-point quantities by name, each returned in
            ``LandscapeScan.quantities`` with the grid's shape in front (and checkpointed
            and checked for finiteness like the rest):

            - ``"axis_curvatures"``: ``∂²L/∂c_k² = D_kᵀ ∇²L D_k``, the loss's second
              derivative along each axis (``grid_shape + (k,)``).
            - ``"sharpness"``: ``λ_max(∇²_θ L)``, the largest (algebraic) eigenvalue of
              the Hessian with respect to all ``P`` parameters at the point (not only the
              scanned plane), matrix-free: ``lanczos_iterations`` Lanczos steps on
              Hessian-vector products, as ``hessian_eigenvalues`` (``grid_shape``).
            - ``"sharpness_residual"``: ``‖∇²L y − λ y‖`` of the unit Ritz vector ``y``
              of ``sharpness``, its error estimate: ``H`` is symmetric, so an eigenvalue
              of ``H`` lies within the residual of ``sharpness`` (``grid_shape``).
            - ``"min_curvature"``, ``"min_curvature_residual"``: the same for the smallest
              (most negative) eigenvalue, from the same Lanczos run.

            The Hessian quantities share one Lanczos run per point (``min(P,
            lanczos_iterations)`` Hessian-vector products, one more for the scale and one
            per residual asked for), from a fixed random start vector, so a scan is
            deterministic. With ``lanczos_iterations >= P`` they are exact up to
            rounding. With ``k < P`` steps the Ritz value is at most ``λ_max`` (at least
            ``λ_min``; up to rounding), short of it by an error that shrinks like
            ``T_{k-1}(1 + 2γ)⁻²``, ``T`` the Chebyshev polynomial and ``γ = (λ₁ − λ₂) /
            (λ₂ − λ_P)`` the relative gap (Kaniel–Paige–Saad; Saad 2011, sec. 6.6). The
            residual is the a-posteriori check: it bounds the distance to the nearest
            eigenvalue, so a residual small against ``|λ|`` (``hessian_eigenvalues``
            calls ``≤ √eps · |λ|`` converged) means ``λ`` is an eigenvalue to that
            accuracy (that it is the largest is what Lanczos converges to from a random
            start, as in ``hessian_eigenvalues``, not what the residual proves); a large
            one asks for more steps. Rounding: an eigenvalue is found to about
            ``eps · ‖H‖`` absolutely, and where the Hessian is far smaller than the terms
            it is computed from (a flat plateau of a long recurrence), float32 may not
            resolve it at all (residual ``≳ |λ|``; use float64). A point where the
            Hessian is not finite holds NaN there (and ``finite = False``). Memory: each
            point evaluated at once (``block_size``) keeps its ``k × P`` Lanczos basis.
        lanczos_iterations: Lanczos steps per point for the Hessian quantities (``>= 1``,
            default 20; at most ``P`` are taken).

    Returns:
        A ``LandscapeScan``.

    Raises:
        ValueError: an unknown parameter name or quantity, an empty or reversed interval,
            a grid with zero points, a non-scalar loss, a checkpoint folder of another scan,
            one that not every process sees, a damaged ``progress.json``, a ``checkpoint``
            that is an existing file, or a ``loss_fn`` that cannot be identified without
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

        The top Hessian eigenvalue over all parameters at every point (here
        ``diag(2, 6)`` everywhere):

        >>> sharp = scan_landscape(loss, {"a": 0.0, "b": 0.0}, {"a": (-1.0, 3.0, 5)},
        ...                        gradient="none", quantities=["sharpness"], progress=False)
        >>> sharp.quantities["sharpness"].round(4)
        array([6., 6., 6., 6., 6.], dtype=float32)

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
    forward_max_tangents = check_positive_int("forward_max_tangents", forward_max_tangents,
                                              minimum=0)
    lanczos_iterations = check_positive_int("lanczos_iterations", lanczos_iterations)
    chunk_size, max_chunks, max_reported, block_size = _engine.check_run_options(
        chunk_size, max_chunks, max_reported, block_size, checkpoint, fingerprint)
    names = BY_GRADIENT[gradient] + _extra_quantities(quantities, gradient)
    if not HESSIAN_QUANTITIES & set(names):
        lanczos_iterations = 0  # unused: the same compiled chunk and checkpoint identity
    grid = landscape_grid(params, axes)
    out = jax.eval_shape(loss_fn, params)
    if not (hasattr(out, "shape") and out.shape == () and jnp.issubdtype(out.dtype, jnp.floating)):
        raise ValueError(f"`loss_fn` must return a floating scalar, got {out}")
    chosen = _choose_method(gradient, method, grid, forward_max_tangents)
    point = LandscapePoint(_engine.hashable(loss_fn), grid.layout, chosen, names,
                           lanczos_iterations)
    operands = (grid.base, grid.D)
    shapes = jax.eval_shape(point, grid.D[:, 0], *operands)
    fields = {name: (shapes[name].shape, grid.base.dtype) for name in names}
    fields["finite"] = ((), np.dtype(bool))
    chunks = _engine.chunks_of(grid.coords, chunk_size)

    def parts() -> dict[str, str]:
        return _spec_parts(loss_fn, fingerprint, grid, gradient, chosen, chunks.size,
                           list(axes), names, lanczos_iterations)

    store = _engine.open_store(checkpoint, chunks, fields, parts, max_reported, "loss_fn")
    _engine.run(point, operands, grid.coords, chunks, store, max_chunks=max_chunks,
                progress=progress, max_reported=max_reported, block_size=block_size,
                name="scan_landscape")
    arrays = store.result_arrays()
    grid_shape = tuple(len(c) for c in grid.coords)
    out = {name: arrays[name].reshape(grid_shape + fields[name][0]) for name in fields}
    return LandscapeScan(
        names=tuple(axes), coords=tuple(grid.coords), loss=out["loss"],
        axis_gradients=out.get("axis_gradients"), gradient_norm=out.get("gradient_norm"),
        finite=out["finite"], nonfinite_points=_engine.nonfinite_points(store, grid.coords),
        num_nonfinite=store.num_nonfinite, method=chosen,
        complete=len(store.done) == chunks.count,
        quantities={name: out[name] for name in names if name not in BY_GRADIENT["full"]},
    )


def _extra_quantities(quantities: Any, gradient: str) -> tuple[str, ...]:
    """``quantities=`` checked: names of per-point quantities beyond those ``gradient=``
    selects."""
    if isinstance(quantities, str) or not isinstance(quantities, Sequence):
        raise TypeError(f"`quantities` must be a sequence of quantity names, got "
                        f"{quantities!r}")
    extra = tuple(name for name in QUANTITIES if name not in BY_GRADIENT["full"])
    for name in quantities:
        if name in BY_GRADIENT["full"]:
            raise ValueError(f"`quantities` names {name!r}, which `gradient=` selects "
                             f"(got gradient={gradient!r}); name only {extra}")
        if name not in extra:
            raise ValueError(f"`quantities` names {name!r}, which is not a per-point "
                             f"quantity; the quantities are {extra}")
    return tuple(dict.fromkeys(quantities))


def _choose_method(gradient: str, method: str, grid: LandscapeGrid,
                   forward_max_tangents: int) -> str:
    if gradient == "none":
        return "none"
    if method != "auto":
        return method
    tangents = grid.base.size if gradient == "full" else len(grid.coords)
    return "forward" if tangents <= forward_max_tangents else "reverse"


def _spec_parts(loss_fn, fingerprint, grid: LandscapeGrid, gradient, method, chunk,
                axis_names, names, lanczos_iterations) -> dict[str, str]:
    """What a checkpoint folder must agree on before a scan resumes from it, by part."""
    parts = {
        "loss_fn": function_identity(loss_fn, fingerprint, "loss_fn"),
        "params": digest(grid.base, [str(d) for d in grid.layout.dtypes],
                         [list(s) for s in grid.layout.shapes], grid.names),
        "axes": digest(axis_names, grid.D, *grid.coords),
        "gradient": gradient,
        "method": method,
        "chunk_size": str(chunk),
    }
    extra = [name for name in names if name not in BY_GRADIENT["full"]]
    if extra:  # absent without them: folders written before quantities= still resume
        parts["quantities"] = ",".join(extra)
    if lanczos_iterations:  # only with a Hessian quantity
        parts["lanczos_iterations"] = str(lanczos_iterations)
    return parts
