"""Slow points of a recurrent step: the minima of q(x) = ½‖F(x, u) − x‖² (Sussillo & Barak).

A trained recurrent network ``x_{t+1} = F(x_t, u)`` held at a constant input ``u`` does
its computation near points where it barely moves: fixed points (``F(x) = x``, ``q = 0``)
and *slow points* (small ``q``, such as the ghost of a fixed point that has just vanished
or a point on an approximate line attractor). ``slow_points`` finds them by minimising

    q(x) = ½ ‖F(x, u) − x‖²

with optax's Adam from many initial states at once (vmapped over the starts, in one
``lax.while_loop`` of at most ``max_steps`` iterations that ends early once every start
is at a fixed point), keeps the minima with ``q < q_tol``, optionally sharpens them with
Newton's method on ``F(x) − x = 0``, merges the ones that coincide and linearises the
step at each: the eigenvalues of the Jacobian ``∂F/∂x`` (of the flattened state) give
its stability and the eigenvectors of the largest-modulus eigenvalues its slowest and
unstable directions.

Reference: D. Sussillo and O. Barak, "Opening the black box: low-dimensional dynamics in
high-dimensional recurrent neural networks", *Neural Computation* 25(3), 626-649 (2013);
M. Golub and D. Sussillo, "FixedPointFinder", *JOSS* 3(31), 1003 (2018).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from .._validation import (
    check_array,
    check_finite,
    check_positive_float,
    check_positive_int,
    leading_axis_length,
)
from ..systems import (
    NO_PARAMS,
    bind,
    check_params_finite,
    check_step,
    flat_step,
    jit_with_params,
    same_state_layout,
)
from ._system import complex_dtype, default_tol, merge_close, newton_iterate


class SlowPoints(NamedTuple):
    """Distinct slow points of a step at a constant input (``K`` found, ``n`` state numbers).

    Flat state vectors (``modes``, the Jacobian behind ``eigenvalues``) list the state's
    numbers in the order of ``jax.flatten_util.ravel_pytree`` (``[h, c]`` for an LSTM).

    Attributes:
        x: the points, a pytree shaped like one state with a leading ``K`` axis on every
            leaf; sorted by their flat coordinates (rounded to ``merge_tol``).
        q: ``(K,)`` ``q(x) = ½‖F(x, u) − x‖²``, recomputed at the returned point in the
            dtype of ``states``.
        residual: ``(K,)`` ``‖F(x, u) − x‖₂`` (``= sqrt(2 q)``), recomputed likewise.
        fixed: ``(K,)`` ``residual < fixed_tol``: a fixed point to that tolerance; the
            others are slow points (``q < q_tol`` only).
        eigenvalues: ``(K, n)`` eigenvalues of the Jacobian ``∂F/∂x`` at the point
            (complex), by decreasing modulus.
        stability: ``(K,)`` code into ``STABILITY_LABELS``: 0 stable (every
            ``|λ| < 1``), 1 unstable (every ``|λ| >= 1``), 2 saddle (some of each).
        num_unstable: ``(K,)`` how many eigenvalues have ``|λ| >= 1``.
        modes: ``(K, num_modes, n)`` unit right eigenvectors of ``eigenvalues[:, :num_modes]``
            (``J v = λ v``, ``‖v‖₂ = 1``, phase set so that the largest-modulus entry is
            real and positive): ``modes[k, :num_unstable[k]]`` are the unstable directions,
            the rest the slowest stable ones (largest ``|λ| < 1``).
        num_starts: ``(K,)`` how many starts ended at each point.
        num_failed: starts that ended with ``q >= q_tol`` (or a non-finite state).
        num_steps: Adam iterations run (at most ``max_steps``).
    """

    x: Any
    q: jax.Array
    residual: jax.Array
    fixed: jax.Array
    eigenvalues: jax.Array
    stability: jax.Array
    num_unstable: jax.Array
    modes: jax.Array
    num_starts: jax.Array
    num_failed: int
    num_steps: int


def _flat_q(step: Callable, template: Any, u: Any) -> tuple[Callable, Callable]:
    """``(g, unravel)``: ``g(y) = F(y, u) − y`` on flat states, and the unflattening."""
    f, _, unravel = flat_step(step, template)
    return lambda y: f(y, u) - y, unravel


def _descend(step, states, u, learning_rate, max_steps, q_stop):
    """Adam on ``q`` from every start (``train_until`` vmapped: each start stops on its own
    once ``q < q_stop``) until every start has stopped or ``max_steps``."""
    # Imported here: jaxgrad.train imports the analyzers (no import cycle at load time).
    from ..train.loop import init_train_state, train_until

    template = jax.tree_util.tree_map(lambda leaf: leaf[0], states)
    g, _ = _flat_q(step, template, u)
    y0 = jax.vmap(lambda s: ravel_pytree(s)[0])(states)

    def q(y, _):
        r = g(y)
        return 0.5 * jnp.sum(r * r)

    optimizer = optax.adam(learning_rate)

    def one(y):
        # A NaN q is not `< q_stop`: such a start ends as not finite and is dropped after.
        with jax.numpy_dtype_promotion("standard"):  # optax's int32 step count (Adam)
            state = init_train_state(y, optimizer)
        state, _, iterations = train_until(q, optimizer, state, stop=lambda v: v < q_stop,
                                           max_steps=max_steps)
        return state.params, iterations

    y, iterations = jax.vmap(one)(y0)
    return y, jax.vmap(q, in_axes=(0, None))(y, None), jnp.max(iterations)


def _finish(step, template, ys, u, *, newton_steps):
    """Each point refined by Newton (``newton_steps > 0``), its residual ``‖F(x) − x‖`` and
    its Jacobian ``∂F/∂x``.

    A Newton result is taken when it is finite and downhill in a straight line: ``q``
    along the segment from the start never exceeds ``q`` at the start.
    """
    g, _ = _flat_q(step, template, u)
    fractions = jnp.linspace(0, 1, _SEGMENT_SAMPLES + 1, dtype=ys.dtype)[1:]

    def q(y):
        r = g(y)
        return 0.5 * jnp.sum(r * r)

    def one(y0):
        y = y0
        if newton_steps:
            y = newton_iterate(g, y0, newton_steps)
            along = jax.vmap(lambda t: q(y0 + t * (y - y0)))(fractions)
            ok = jnp.all(jnp.isfinite(y)) & jnp.all(along <= q(y0)) & (along[-1] < q(y0))
            y = jnp.where(ok, y, y0)
        return y, jnp.linalg.norm(g(y)), jax.jacfwd(lambda z: g(z) + z)(y)

    return jax.vmap(one)(ys)


#: Points at which ``q`` is checked along a Newton step before it is taken.
_SEGMENT_SAMPLES = 16

_descend_jit = jit_with_params(_descend)
_finish_jit = jit_with_params(_finish)


def _check_states(states: Any) -> tuple[Any, Any]:
    """``(states, dtype)``: a pytree of real float leaves ``(M, *s)``, ``M >= 1``, finite."""
    leaves = jax.tree_util.tree_leaves(states)
    if not leaves:
        raise ValueError("`states` must hold at least one array, got an empty pytree "
                         f"{states!r}")
    states = jax.tree_util.tree_map(lambda leaf: check_array("states", leaf), states)
    num = leading_axis_length("states", states, "batch (initial state)")
    if num == 0:
        raise ValueError("`states` must hold at least one initial state, got a batch axis of "
                         f"length 0: {jax.tree_util.tree_map(jnp.shape, states)}")
    if sum(leaf[0].size for leaf in jax.tree_util.tree_leaves(states)) == 0:
        raise ValueError("`states` must have at least one number per state, got shapes "
                         f"{jax.tree_util.tree_map(jnp.shape, states)}")
    check_finite("states", states)
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(states))
    return states, dtype


def _check_input(u: Any, dtype: Any) -> Any:
    """The constant input: a pytree of finite arrays (floating leaves cast to ``dtype``);
    ``None`` is the empty input ``(0,)`` of an autonomous step."""
    if u is None:
        return jnp.zeros((0,), dtype)
    leaves = jax.tree_util.tree_leaves(u)
    if not leaves:
        raise ValueError(f"`input` must be an array (or a pytree of arrays), got {u!r}")

    def cast(leaf):
        if isinstance(leaf, (str, bytes)):
            raise TypeError(f"`input` must hold arrays, got {type(leaf).__name__}")
        arr = jnp.asarray(leaf)
        if jnp.issubdtype(arr.dtype, jnp.complexfloating):
            raise TypeError(f"`input` must be real, got {arr.dtype}")
        return arr.astype(dtype) if jnp.issubdtype(arr.dtype, jnp.floating) else arr

    u = jax.tree_util.tree_map(cast, u)
    check_finite("input", u)
    return u


def _check_step_on(step: Callable, template: Any, u: Any) -> None:
    """``step(one row of states, input)`` runs and returns a state shaped like the row."""
    shapes = jax.tree_util.tree_map(jnp.shape, template)
    hint = ("`states` must be a batch of initial states: every leaf has a leading axis "
            "(M, *state_shape), one row per start, and the rows must have the structure of "
            "the state `step` takes")
    try:
        out = jax.eval_shape(step, template, u)
    except Exception as err:  # the user's step, reported with the shapes it was given
        raise ValueError(
            f"`step` failed on one row of `states` (shapes {shapes}) and `input` "
            f"{jax.tree_util.tree_map(jnp.shape, u)}: {type(err).__name__}: {err}. {hint}"
        ) from err
    out_shapes = jax.tree_util.tree_map(lambda leaf: tuple(leaf.shape), out)
    if not same_state_layout(out, template):
        raise ValueError(
            f"`step(x, input)` returned a state shaped {out_shapes} for one row of `states` "
            f"shaped {shapes}. {hint}"
        )


def _top_modes(J: np.ndarray, num_modes: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues by decreasing modulus and the unit eigenvectors of the first ones."""
    w, v = np.linalg.eig(J)
    order = np.argsort(-np.abs(w), kind="stable")
    w, v = w[order], v[:, order[:num_modes]].T
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    lead = v[np.arange(v.shape[0]), np.argmax(np.abs(v), axis=1)]
    return w, v * (np.conj(lead) / np.abs(lead))[:, None]


def slow_points(
    step: Callable,
    states: Any,
    input: Any = None,
    *,
    params: Any = NO_PARAMS,
    learning_rate: float = 3e-2,
    max_steps: int = 5000,
    q_tol: float = 1e-6,
    fixed_tol: float | None = None,
    merge_tol: float = 1e-3,
    newton_steps: int = 10,
    num_modes: int = 4,
) -> SlowPoints:
    """Fixed and slow points of a recurrent step at a constant input (Sussillo & Barak 2013).

    Minimises ``q(x) = ½‖F(x, u) − x‖²`` over the state with Adam from every row of
    ``states`` (vmapped, one ``lax.while_loop``; a start stops once ``q < q_tol / 100``,
    without Newton refinement once ``q < min(q_tol / 100, ½(fixed_tol / 10)²)``, and the
    loop once every start has), keeps the results with ``q < q_tol`` and merges
    those closer than ``merge_tol``. With ``newton_steps > 0`` each kept point is then
    refined by Newton's method on ``F(x) − x = 0``; the result replaces it only when it
    is finite and ``q`` decreases along the straight segment to it (checked at 16
    points), so a slow point with no fixed point nearby, a local minimum of ``q``, stays
    as Adam left it instead of jumping over a ridge of ``q`` to another fixed point.
    Refined points that now coincide are merged. Residuals are then recomputed in
    the dtype of ``states``: a point is reported ``fixed`` only if ``‖F(x) − x‖₂ <
    fixed_tol`` there. Each point's Jacobian ``∂F/∂x`` (``jax.jacfwd`` of the flattened
    step) gives its eigenvalues, stability (a map: stable when every ``|λ| < 1``) and the
    eigenvectors of its largest-modulus eigenvalues.

    Arguments:
        step: ``step(x, u, params) -> x_next`` (``step(x, u)`` without ``params``), the
            state ``x`` any pytree of arrays (an LSTM's ``(h, c)``).
        states: the starts, a pytree like one state with a leading batch axis ``M`` on
            every leaf (``(M, n)`` for a vector state), e.g. states sampled along
            trajectories of the network.
        input: the constant input ``u`` (an array or pytree; floating leaves are cast to
            the dtype of ``states``); ``None`` for an autonomous step (``u`` of shape ``(0,)``).
        params: the parameters passed to ``step``.
        learning_rate: Adam's step size.
        max_steps: at most this many Adam iterations.
        q_tol: a minimum with ``q < q_tol`` is kept as a slow point.
        fixed_tol: residual ``‖F(x) − x‖₂`` under which a point is a fixed point
            (``sqrt(eps)`` of the dtype: 3.5e-4 in float32, 1.5e-8 in float64).
        merge_tol: points closer than this (max-norm on the flat state) are one point.
        newton_steps: Newton iterations refining each kept point (0: none).
        num_modes: eigenvectors returned per point (at most ``n``).

    Returns:
        ``SlowPoints`` (host-side arrays; ``K`` depends on the data, so not jittable).

    Example:
        >>> # x -> tanh(2 x) in 2-D: in each coordinate 0 (unstable) and ±0.9575 (stable),
        >>> # so 9 fixed points: 4 stable, 4 saddles, an unstable node at the origin
        >>> step = jaxgrad.autonomous(lambda x: jnp.tanh(2.0 * x))
        >>> starts = jax.random.uniform(jax.random.key(0), (64, 2), minval=-2, maxval=2)
        >>> sp = slow_points(step, starts, newton_steps=5)
        >>> len(sp.q), bool(sp.fixed.all())
        (9, True)
        >>> sorted({round(float(v), 4) for v in np.ravel(sp.x)})
        [-0.9575, 0.0, 0.9575]
        >>> [jaxgrad.analysis.STABILITY_LABELS[s] for s in sp.stability].count("stable")
        4
    """
    check_step(step)
    states, dtype = _check_states(states)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"`states` must have a floating dtype, got {dtype}")
    u = _check_input(input, dtype)
    q_tol = check_positive_float("q_tol", q_tol)
    fixed_tol = (default_tol(dtype) if fixed_tol is None
                 else check_positive_float("fixed_tol", fixed_tol))
    merge_tol = check_positive_float("merge_tol", merge_tol)
    learning_rate = check_positive_float("learning_rate", learning_rate)
    max_steps = check_positive_int("max_steps", max_steps)
    newton_steps = check_positive_int("newton_steps", newton_steps, minimum=0)
    num_modes = check_positive_int("num_modes", num_modes)
    check_params_finite(params)
    template = jax.tree_util.tree_map(lambda leaf: leaf[0], states)
    _check_step_on(bind(step, params), template, u)

    # Where a start stops: well inside q_tol, and (without Newton to finish the job)
    # well inside fixed_tol.
    q_stop = q_tol / 100 if newton_steps else min(q_tol / 100, 0.5 * (0.1 * fixed_tol) ** 2)
    scalar = functools.partial(jnp.asarray, dtype=dtype)
    ys, qs, num_steps = _descend_jit(step, params, states, u, scalar(learning_rate),
                                     jnp.asarray(max_steps, jnp.int32), scalar(q_stop))
    ys, qs = np.asarray(ys), np.asarray(qs)
    ok = np.isfinite(qs) & (qs < q_tol) & np.all(np.isfinite(ys), axis=1)
    reps, counts = merge_close(ys, np.flatnonzero(ok)[np.argsort(qs[ok], kind="stable")],
                               merge_tol)
    n = ys.shape[1]
    num_modes = min(num_modes, n)
    points = ys[np.asarray(reps, dtype=np.int64)]
    counts = np.asarray(counts, dtype=np.int64)
    if len(reps):
        # Padded to a power of two (repeating the first point), so that a new count of
        # points rarely compiles the refinement again.
        size = 1 << (len(reps) - 1).bit_length()
        padded = np.concatenate([points, np.repeat(points[:1], size - len(reps), axis=0)])
        points, residual, jac = (np.asarray(a)[:len(reps)] for a in _finish_jit(
            step, params, template, jnp.asarray(padded), u, newton_steps=newton_steps))
        q = 0.5 * residual.astype(dtype) ** 2
        # Refined points may now coincide, and refinement may not keep q under q_tol.
        keep = np.isfinite(residual) & (q < q_tol)
        order = np.flatnonzero(keep)[np.argsort(q[keep], kind="stable")]
        merged, merged_counts = merge_close(points, order, merge_tol, weights=counts)
        num_kept = int(counts[keep].sum())
        idx = np.asarray(merged, dtype=np.int64)
        # Sorted by coordinates rounded to merge_tol, so that noise below it does not
        # decide the order.
        by_coords = np.lexsort(np.round(points[idx] / merge_tol).T[::-1])
        idx, counts = idx[by_coords], np.asarray(merged_counts, np.int64)[by_coords]
        points, residual, q, jac = points[idx], residual[idx], q[idx], jac[idx]
    else:
        num_kept = 0
        residual = q = np.zeros((0,), dtype)
        jac = np.zeros((0, n, n), dtype)
    cdtype = complex_dtype(dtype)
    eig = np.zeros((len(points), n), cdtype)
    modes = np.zeros((len(points), num_modes, n), cdtype)
    for k in range(len(points)):
        eig[k], modes[k] = _top_modes(jac[k], num_modes)
    unstable = np.sum(~(np.abs(eig) < 1), axis=1).astype(np.int32)
    # STABILITY_LABELS (as ``classify`` for a map, on the host): stable, unstable, saddle
    stability = np.where(unstable == 0, 0, np.where(unstable == n, 1, 2)).astype(np.int32)
    unravel = ravel_pytree(template)[1]
    x = jax.vmap(unravel)(jnp.asarray(points, dtype)) if len(points) else jax.tree_util.tree_map(
        lambda leaf: jnp.zeros((0, *leaf.shape), leaf.dtype), template)
    return SlowPoints(
        x=x,
        q=jnp.asarray(q, dtype),
        residual=jnp.asarray(residual, dtype),
        fixed=jnp.asarray(residual < fixed_tol),
        eigenvalues=jnp.asarray(eig),
        stability=jnp.asarray(stability),
        num_unstable=jnp.asarray(unstable),
        modes=jnp.asarray(modes),
        num_starts=jnp.asarray(counts.astype(np.int32)),
        num_failed=int(ys.shape[0] - num_kept),
        num_steps=int(num_steps),
    )
