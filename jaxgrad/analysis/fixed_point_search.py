"""Fixed points of a map or flow ``f(x, p)``, with their eigenvalues and stability.

- ``fixed_points_1d``: every fixed point of a 1-D system in an interval, for each value
  of a parameter grid: ``g = f - x`` (map) or ``g = f`` (flow) is sampled on a dense grid,
  each sign change is a bracket, and a safeguarded Newton iteration (Newton inside the
  bracket, bisection otherwise) converges to the root; vmapped over the parameter grid.
- ``fixed_points``: fixed points of an N-D system from many starting points (vmapped
  Newton on ``g(x) = 0``), merged when they coincide.

Each fixed point comes with the eigenvalues of ``∂f/∂x`` and a classification (see
``STABILITY_LABELS``, ``LOSS_OF_STABILITY_LABELS``). Reference: Strogatz, *Nonlinear
Dynamics and Chaos* (1994), ch. 2-3 and 10 (stability of fixed points of flows and maps);
Doya (1992) for the one-neuron network.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_positive_float, check_positive_int
from ._system import LOSS_OF_STABILITY_LABELS as LOSS_OF_STABILITY_LABELS
from ._system import STABILITY_LABELS as STABILITY_LABELS
from ._system import (
    as_system,
    check_interval,
    check_output,
    check_param,
    check_params_finite,
    check_system,
    check_values,
    classify,
    complex_dtype,
    default_tol,
    eigenvalues,
    flat_system,
    merge_close,
    newton_iterate,
    residual,
    restore_state,
    set_param,
)


class FixedPoints1D(NamedTuple):
    """Fixed points of a 1-D system over a parameter grid (``P`` values, ``K`` slots).

    Without a grid (``values=None``) the leading ``P`` axis is absent.

    Attributes:
        values: ``(P,)`` the parameter values.
        x: ``(P, K)`` fixed points in increasing order, NaN in unused slots.
        valid: ``(P, K)`` which slots hold a fixed point.
        derivative: ``(P, K)`` ``∂f/∂x`` there: the multiplier μ (map) or eigenvalue λ (flow).
        stability: ``(P, K)`` code into ``STABILITY_LABELS`` (0 stable, 1 unstable); -1 unused.
        loss_of_stability: ``(P, K)`` code into ``LOSS_OF_STABILITY_LABELS`` (0 fold, 1 flip);
            -1 unused.
        residual: ``(P, K)`` ``|g(x)|`` at the returned point.
        count: ``(P,)`` sign changes found (fixed points, counted even beyond ``K``).
        truncated: ``(P,)`` more than ``K`` fixed points were found; only the first ``K`` kept.
    """

    values: jax.Array
    x: jax.Array
    valid: jax.Array
    derivative: jax.Array
    stability: jax.Array
    loss_of_stability: jax.Array
    residual: jax.Array
    count: jax.Array
    truncated: jax.Array


def _refine_bracket(g: Callable, a, b, ga, gb, steps: int):
    """Root of ``g`` in ``[a, b]`` (``g(a) g(b) <= 0``): Newton kept inside the bracket."""
    neg = jnp.where(ga < 0, a, b)
    pos = jnp.where(ga < 0, b, a)
    x0 = jnp.where(ga == 0, a, jnp.where(gb == 0, b, 0.5 * (a + b)))

    def body(_, carry):
        x, neg, pos = carry
        gx, dg = jax.value_and_grad(g)(x)
        neg = jnp.where(gx < 0, x, neg)
        pos = jnp.where(gx > 0, x, pos)
        newton = x - gx / dg
        lo, hi = jnp.minimum(neg, pos), jnp.maximum(neg, pos)
        ok = jnp.isfinite(newton) & (newton > lo) & (newton < hi)
        x = jnp.where(gx == 0, x, jnp.where(ok, newton, 0.5 * (neg + pos)))
        return x, neg, pos

    x, _, _ = jax.lax.fori_loop(0, steps, body, (x0, neg, pos))
    return x


@functools.partial(
    jax.jit, static_argnames=("f", "kind", "param", "max_points", "newton_steps")
)
def _fixed_points_1d(f, grid, params, values, *, kind, param, max_points, newton_steps):
    def one(p, value):
        g = lambda x: residual(f, kind)(x, p)  # noqa: E731
        gs = jax.vmap(g)(grid)
        sa, sb = jnp.sign(gs[:-1]), jnp.sign(gs[1:])
        last = jnp.arange(gs.shape[0] - 1) == gs.shape[0] - 2
        mask = (sa == 0) | (sa * sb < 0) | (last & (sb == 0))
        count = jnp.sum(mask)
        (idx,) = jnp.nonzero(mask, size=max_points, fill_value=0)
        valid = jnp.arange(max_points) < count
        refine = functools.partial(_refine_bracket, g, steps=newton_steps)
        x = jax.vmap(refine)(grid[idx], grid[idx + 1], gs[idx], gs[idx + 1])
        x = jnp.where(valid, x, grid[0])
        deriv = jax.vmap(jax.grad(lambda x: f(x, p)))(x)
        res = jnp.abs(jax.vmap(g)(x))
        ev = deriv[:, None].astype(complex_dtype(deriv.dtype))
        stability, loss = classify(ev, kind)
        nan = jnp.asarray(jnp.nan, x.dtype)
        return FixedPoints1D(
            values=value,
            x=jnp.where(valid, x, nan),
            valid=valid,
            derivative=jnp.where(valid, deriv, nan),
            stability=jnp.where(valid, stability, -1),
            loss_of_stability=jnp.where(valid, loss, -1),
            residual=jnp.where(valid, res, nan),
            count=count,
            truncated=count > max_points,
        )

    if values is None:
        return one(params, jnp.asarray(jnp.nan, grid.dtype))
    return jax.vmap(lambda v: one(set_param(params, param, v), v))(values)


def fixed_points_1d(
    f: Callable,
    interval: tuple[float, float],
    *,
    params: Any = None,
    param: str | tuple | None = None,
    values: Any = None,
    kind: str | None = None,
    num_points: int = 2001,
    max_points: int = 8,
    newton_steps: int = 60,
) -> FixedPoints1D:
    """All fixed points of a 1-D map or flow in ``interval``, for each parameter value.

    Solves ``g(x, p) = 0`` with ``g = f - x`` (map ``x ↦ f(x, p)``) or ``g = f`` (flow
    ``dx/dt = f(x, p)``): every sign change of ``g`` on ``num_points`` equally spaced
    points brackets a root, refined by Newton's method kept inside its bracket (bisection
    when a Newton step leaves it). A fixed point where ``g`` touches zero without changing
    sign (exactly at a fold) is not bracketed; ``continue_branch`` passes through folds.

    Arguments:
        f: ``f(x, p) -> x`` with a scalar state ``x``.
        interval: ``(lo, hi)``, ``lo < hi``, the range of ``x`` searched.
        params: the parameters ``p`` (a scalar, a dict, a NamedTuple such as ``DoyaParams``).
        param: the field of ``params`` set to each of ``values``, by name or by a path of
            keys (``None`` when ``params`` is itself the scalar parameter).
        values: ``(P,)`` parameter values (vmapped); ``None`` to use ``params`` as given.
        kind: deprecated, for ``f(x, p)`` only: ``"map"`` or ``"flow"`` (default ``"flow"``);
            give a map as a step ``f(x, u, params)`` and a flow as ``jaxgrad.vector_field``.
        num_points: sampling points for the brackets (>= 2).
        max_points: ``K``, slots for fixed points per parameter value (static).
        newton_steps: safeguarded Newton iterations per bracket.

    Returns:
        ``FixedPoints1D`` with arrays ``(P, K)`` (``(K,)`` without ``values``).

    Example:
        >>> flow = lambda x, p: jaxgrad.models.doya_vector_field(x, 0.0, p)
        >>> fp = fixed_points_1d(flow, (0.0, 1.0), params=jaxgrad.DoyaParams(5.0, -2.5))
        >>> [round(float(x), 3) for x in fp.x[fp.valid]]
        [0.145, 0.5, 0.855]
    """
    f, kind = as_system(f, kind, "flow")
    check_system(f, kind)
    lo, hi = check_interval("interval", interval)
    num_points = check_positive_int("num_points", num_points, minimum=2)
    max_points = check_positive_int("max_points", max_points)
    newton_steps = check_positive_int("newton_steps", newton_steps)
    if values is None:
        if param is not None:
            raise ValueError(f"`param`={param!r} was given without `values` to sweep")
        dtype = jnp.result_type(float)
        p_first = params
    else:
        check_param(params, param)
        values = check_values("values", values)
        dtype = values.dtype
        p_first = set_param(params, param, values[0])
    check_params_finite(p_first)
    grid = jnp.linspace(lo, hi, num_points, dtype=dtype)
    check_output(f, grid[0], p_first)
    return _fixed_points_1d(f, grid, params, values, kind=kind, param=param,
                            max_points=max_points, newton_steps=newton_steps)


class FixedPoints(NamedTuple):
    """Distinct fixed points of an N-D system (``K`` found, state shape ``s``, ``n`` = size).

    Attributes:
        x: ``(K, *s)`` the fixed points (sorted by their coordinates); for a pytree state
            that pytree with leaves ``(K, *leaf_shape)`` (sorted by the flattened state).
        eigenvalues: ``(K, n)`` eigenvalues of ``∂f/∂x`` (complex; for an N-D or pytree
            state, of the Jacobian of the flattened state).
        stability: ``(K,)`` code into ``STABILITY_LABELS`` (stable, unstable, saddle).
        loss_of_stability: ``(K,)`` code into ``LOSS_OF_STABILITY_LABELS`` for the
            critical eigenvalue (fold, flip, hopf, neimark_sacker).
        residual: ``(K,)`` ``‖g(x)‖``.
        num_starts: ``(K,)`` how many starting points converged to each.
        num_failed: number of starts that did not converge (non-finite or residual > tol).
    """

    x: jax.Array
    eigenvalues: jax.Array
    stability: jax.Array
    loss_of_stability: jax.Array
    residual: jax.Array
    num_starts: jax.Array
    num_failed: int


@functools.partial(jax.jit, static_argnames=("f", "kind", "newton_steps"))
def _newton_many(f, starts, params, *, kind, newton_steps):
    g = residual(f, kind)

    def one(x0):
        shape = x0.shape

        def gflat(y):
            return jnp.reshape(g(jnp.reshape(y, shape), params), (-1,))

        y = newton_iterate(gflat, jnp.reshape(x0, (-1,)), newton_steps)
        x = jnp.reshape(y, shape)
        return x, jnp.linalg.norm(gflat(y)), eigenvalues(f, x, params)

    return jax.vmap(one)(starts)


def fixed_points(
    f: Callable,
    starts: Any,
    *,
    params: Any = None,
    kind: str | None = None,
    newton_steps: int = 50,
    tol: float | None = None,
    merge_tol: float | None = None,
) -> FixedPoints:
    """Fixed points of an N-D map or flow by Newton's method from many starting points.

    Newton on ``g(x) = 0`` (``g = f - x`` for a map, ``f`` for a flow) runs vmapped from
    every start; converged results closer than ``merge_tol`` are merged. Each fixed point
    gets the eigenvalues of ``∂f/∂x``: stable when every ``|μ| < 1`` (map) / ``Re λ < 0``
    (flow), unstable when none is, a saddle otherwise.

    Arguments:
        f: a map as a step ``f(x, u, params)``, a flow as ``jaxgrad.vector_field(F)``, or
            (deprecated) ``f(x, p)``; the state a scalar, an array of any shape or a
            pytree of arrays (an LSTM's ``(h, c)``: ``jaxgrad.lstm_step`` as it is).
        starts: ``(M, *s)`` starting points (a pytree state: that pytree with leaves
            ``(M, *leaf_shape)``).
        params: the parameters passed to ``f``.
        kind: deprecated, for ``f(x, p)`` only: ``"map"`` or ``"flow"`` (default ``"flow"``);
            give a map as a step ``f(x, u, params)`` and a flow as ``jaxgrad.vector_field``.
        newton_steps: Newton iterations from each start.
        tol: residual ``‖g(x)‖`` below which a start has converged (``sqrt(eps)``).
        merge_tol: distance under which two fixed points are one (``1e3 tol``).

    Returns:
        ``FixedPoints`` (host-side arrays; ``K`` depends on the data, so not jittable).

    Example:
        >>> duffing = lambda z, p: jnp.stack([z[1], z[0] - z[0] ** 3 - p * z[1]])
        >>> starts = jnp.stack([jnp.linspace(-2, 2, 9), jnp.zeros(9)], axis=1)
        >>> fp = fixed_points(duffing, starts, params=0.5)
        >>> fp.x.round(3).tolist(), [jaxgrad.analysis.STABILITY_LABELS[s] for s in fp.stability]
        ([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]], ['stable', 'saddle', 'stable'])

        The same oscillator on a pytree state, the pair (position, velocity): the points
        come back as a pair, the eigenvalues are those of the flattened state:

        >>> pair = jaxgrad.vector_field(lambda z, u, p: (z[1], z[0] - z[0] ** 3 - p * z[1]))
        >>> fp = fixed_points(pair, (jnp.linspace(-2, 2, 9), jnp.zeros(9)), params=0.5)
        >>> fp.x[0].round(3).tolist(), fp.x[1].round(3).tolist(), fp.eigenvalues.shape
        ([-1.0, 0.0, 1.0], [0.0, 0.0, 0.0], (3, 2))
    """
    f, kind = as_system(f, kind, "flow")
    check_system(f, kind)
    check_params_finite(params)
    f, starts, unravel = flat_system(f, starts, params, name="starts", batched=True)
    newton_steps = check_positive_int("newton_steps", newton_steps)
    tol = default_tol(starts.dtype) if tol is None else check_positive_float("tol", tol)
    merge_tol = 1e3 * tol if merge_tol is None else check_positive_float("merge_tol", merge_tol)
    xs, res, ev = _newton_many(f, starts, params, kind=kind, newton_steps=newton_steps)
    xs, res, ev = np.asarray(xs), np.asarray(res), np.asarray(ev)
    flat = xs.reshape(xs.shape[0], -1)
    ok = np.isfinite(res) & (res < tol) & np.all(np.isfinite(flat), axis=1)
    reps, counts = merge_close(flat, np.flatnonzero(ok), merge_tol)
    order = sorted(range(len(reps)), key=lambda j: tuple(flat[reps[j]]))
    idx = np.asarray([reps[j] for j in order], dtype=np.int64)
    eig = jnp.asarray(ev[idx]) if idx.size else jnp.zeros((0, flat.shape[1]), ev.dtype)
    stability, loss = classify(eig, kind)
    return FixedPoints(
        x=restore_state(unravel, jnp.asarray(xs[idx]) if idx.size
                        else jnp.zeros((0, *xs.shape[1:]), xs.dtype)),
        eigenvalues=eig,
        stability=stability,
        loss_of_stability=loss,
        residual=jnp.asarray(res[idx]) if idx.size else jnp.zeros((0,), res.dtype),
        num_starts=jnp.asarray(np.asarray([counts[j] for j in order], dtype=np.int32)),
        num_failed=int((~ok).sum()),
    )
