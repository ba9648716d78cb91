"""Periodic orbits of a map: the ``k``-cycles ``x_0 -> x_1 -> ... -> x_{k-1} -> x_0``.

A point of period ``k`` of a map ``F`` solves ``g(x) = F^k(x) - x = 0``
(``jaxgrad.systems.iterate``). ``periodic_orbits`` runs Newton's method on ``g`` vmapped
from many starting points, keeps the roots whose residual is below ``tol``, and merges the
roots that lie on one orbit: a ``k``-cycle found from any of its ``k`` points is reported
once, as its points in orbit order from the lexicographically smallest. Each orbit gets
its minimal period and its multipliers, the eigenvalues of the product of the step
Jacobians along one minimal period, ``∂F(x_{d-1}) ··· ∂F(x_1) ∂F(x_0)`` (the Jacobian of
``F^d`` by the chain rule, one factor per point, not the derivative of a composed
function). A cycle is stable when every ``|μ| < 1``; it loses stability through ``μ = +1``
(fold: a pair of cycles is born or dies), ``μ = -1`` (flip: period doubling) or a complex
pair on the unit circle (Neimark-Sacker). To follow a cycle in a parameter, continue the
fixed point of ``F^k``: ``jaxgrad.continue_branch(jaxgrad.iterate(f, k), x0, ...)`` from a
point ``x0`` of the cycle (its folds and flips are the cycle's).

Reference: Strogatz, *Nonlinear Dynamics and Chaos* (1994), §10.3-10.6 (the logistic
map's cycles, period doubling, Feigenbaum's constant); Kuznetsov, *Elements of Applied
Bifurcation Theory* (2004), ch. 4 (bifurcations of fixed points and cycles of maps).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._validation import check_finite, check_positive_float, check_positive_int
from .._validation import typed_key as _typed_key
from ..systems import (
    NO_PARAMS,
    bind,
    check_params_finite,
    check_state_like,
    check_step,
    flat_step,
    jit_with_params,
)
from ._system import (
    check_state,
    classify,
    complex_dtype,
    default_tol,
    float_dtype,
    restore_state,
    state_leaves,
)


class PeriodicOrbits(NamedTuple):
    """Distinct periodic orbits of a map (``K`` found, ``k`` = ``period``, ``n`` = state size).

    Attributes:
        points: ``(K, k, *s)`` for a state of shape ``s`` (a pytree state: that pytree with
            leaves ``(K, k, *leaf_shape)``): each orbit's points in orbit order,
            ``points[i, j + 1] = F(points[i, j])``, from its lexicographically smallest
            point (of the flattened state). An orbit of minimal period ``d < k`` repeats
            its ``d`` points ``k / d`` times.
        multipliers: ``(K, n)`` complex, by decreasing modulus: the eigenvalues of the
            product of the step Jacobians along one minimal period (NaN where that
            product overflowed).
        stability: ``(K,)`` code into ``STABILITY_LABELS``: stable (every ``|μ| < 1``),
            unstable (none), saddle (some).
        loss_of_stability: ``(K,)`` code into ``LOSS_OF_STABILITY_LABELS`` for the
            multiplier nearest the unit circle: fold (real, ``μ -> +1``), flip (real,
            ``μ -> -1``) or neimark_sacker (a complex pair).
        residual: ``(K,)`` ``‖F^k(x_0) - x_0‖`` at the stored first point.
        num_starts: ``(K,)`` how many starting points converged to a point of the orbit.
        converged: ``(K,)`` ``residual < tol`` (true for every orbit returned: starts that
            did not converge are dropped).
        minimal_period: ``(K,)`` the least ``d`` dividing ``k`` with
            ``‖F^d(x_0) - x_0‖_∞ < merge_tol``.
        period: ``k``, the period searched for.
    """

    points: Any
    multipliers: jax.Array
    stability: jax.Array
    loss_of_stability: jax.Array
    residual: jax.Array
    num_starts: jax.Array
    converged: jax.Array
    minimal_period: jax.Array
    period: int


def _divisors(k: int) -> list[int]:
    return [d for d in range(1, k + 1) if k % d == 0]


def _periodic_core(step, template, starts, merge_tol, *, period, newton_steps, polish_steps):
    """Newton on ``F^k(x) - x`` from each start, then the orbit through the root (flat)."""
    f, _, _ = flat_step(step, template)
    dtype = starts.dtype
    u = jnp.zeros((0,), dtype)
    divisors = _divisors(period)

    def F(x):
        return f(x, u)

    def g_aux(x):
        r = jax.lax.fori_loop(0, period, lambda _, y: F(y), x) - x
        return r, r

    def newton(x0, steps):
        """Newton iterates from ``x0``; the one with the least residual (``x0`` included)."""

        def body(_, carry):
            x, best, best_res = carry
            J, gx = jax.jacfwd(g_aux, has_aux=True)(x)
            res = jnp.linalg.norm(gx)
            better = res < best_res  # False for NaN
            best = jnp.where(better, x, best)
            best_res = jnp.where(better, res, best_res)
            return x - jnp.linalg.solve(J, gx), best, best_res

        inf = jnp.asarray(jnp.inf, dtype)
        x, best, best_res = jax.lax.fori_loop(0, steps, body, (x0, x0, inf))
        better = jnp.linalg.norm(g_aux(x)[0]) < best_res
        return jnp.where(better, x, best)

    def orbit(x0):
        """``(x_0..x_{k-1}, x_k)``."""
        xk, xs = jax.lax.scan(lambda x, _: (F(x), x), x0, None, length=period)
        return xs, xk

    def minimal_period(xs, xk):
        dist = [jnp.max(jnp.abs((xk if d == period else xs[d]) - xs[0])) for d in divisors]
        close = jnp.stack(dist) < merge_tol
        close = close.at[-1].set(True)
        return jnp.asarray(divisors, jnp.int32)[jnp.argmax(close)]

    def lex_argmin(xs, valid):
        def body(mask, col):
            low = jnp.min(jnp.where(mask, col, jnp.inf))
            return mask & (col == low), None

        mask, _ = jax.lax.scan(body, valid, xs.T)
        return jnp.argmax(mask)

    def jacobian_product(xs, d):
        """``∂F(x_{d-1}) ··· ∂F(x_0)`` (``d`` traced, ``<= k``)."""
        n = xs.shape[1]

        def body(carry, jx):
            M, out = carry
            j, x = jx
            M = jax.jacfwd(F)(x) @ M
            return (M, jnp.where(j == d - 1, M, out)), None

        eye = jnp.eye(n, dtype=dtype)
        (_, out), _ = jax.lax.scan(body, (eye, eye), (jnp.arange(period, dtype=jnp.int32), xs))
        return out

    def refine(x, steps):
        """Newton from ``x``, then the orbit's lexicographically smallest point."""
        xs, xk = orbit(newton(x, steps))
        on_orbit = jnp.arange(period, dtype=jnp.int32) < minimal_period(xs, xk)
        return xs[lex_argmin(xs, on_orbit)], None

    def one(x0):
        # Newton from the start, then a short Newton polish from the orbit's first point
        # (one traced Newton loop for both, with a traced number of steps).
        p0, _ = jax.lax.scan(refine, x0, jnp.asarray([newton_steps, polish_steps], jnp.int32))
        xs, xk = orbit(p0)
        d = minimal_period(xs, xk)
        return xs, jnp.linalg.norm(xk - xs[0]), d, jacobian_product(xs, d)

    return jax.vmap(one)(starts)


_run_core = jit_with_params(_periodic_core)


def _check_box(box: Any, template: Any) -> tuple[Any, Any]:
    """``(lo, hi)`` pytrees shaped like the state (``template``, or the box's own shape)."""
    if not isinstance(box, (tuple, list)) or len(box) != 2:
        raise ValueError(f"`box` must be a pair (lo, hi) of states, got {type(box).__name__}")
    lo, hi = box
    leaf_def = jax.tree_util.tree_structure(0.0)
    if template is not None and (jax.tree_util.tree_structure(lo),
                                 jax.tree_util.tree_structure(hi)) == (leaf_def, leaf_def):
        # one bound for every leaf of a pytree state
        lo, hi = (jax.tree_util.tree_map(lambda _, v=v: v, template) for v in (lo, hi))
    lo_def, hi_def = jax.tree_util.tree_structure(lo), jax.tree_util.tree_structure(hi)
    if lo_def != hi_def:
        raise ValueError(f"`box` lo and hi must have one structure, got {lo_def} and {hi_def}")
    lo_leaves, hi_leaves = state_leaves("box", lo), state_leaves("box", hi)
    if template is not None and jax.tree_util.tree_structure(template) != lo_def:
        raise ValueError(
            f"`box` must be shaped like a state (a row of `starts`), got structure {lo_def} "
            f"for states {jax.tree_util.tree_structure(template)}"
        )
    out_lo, out_hi = [], []
    shapes = ([jnp.shape(leaf) for leaf in jax.tree_util.tree_leaves(template)]
              if template is not None else [None] * len(lo_leaves))
    for a, b, shape in zip(lo_leaves, hi_leaves, shapes, strict=True):
        try:
            common = jnp.broadcast_shapes(a.shape, b.shape, *(() if shape is None else (shape,)))
        except ValueError:
            raise ValueError(
                f"`box` bounds of shapes {a.shape} and {b.shape} do not fit states of shape "
                f"{shape}" if shape is not None else
                f"`box` lo and hi have shapes {a.shape} and {b.shape} that do not broadcast"
            ) from None
        if shape is not None and common != tuple(shape):
            raise ValueError(f"`box` bounds of shapes {a.shape}, {b.shape} do not fit states "
                             f"of shape {shape}")
        check_finite("box", a)
        check_finite("box", b)
        a, b = jnp.broadcast_to(a, common), jnp.broadcast_to(b, common)
        if not bool(jnp.all(a < b)):
            raise ValueError(f"`box` must satisfy lo < hi in every coordinate, got lo={a} "
                             f"hi={b}")
        out_lo.append(a)
        out_hi.append(b)
    return (jax.tree_util.tree_unflatten(lo_def, out_lo),
            jax.tree_util.tree_unflatten(lo_def, out_hi))


def periodic_orbits(
    f: Callable,
    box: Any = None,
    *,
    period: int,
    params: Any = NO_PARAMS,
    starts: Any = None,
    num_points: int = 256,
    key: Any = None,
    newton_steps: int = 50,
    tol: float | None = None,
    merge_tol: float | None = None,
) -> PeriodicOrbits:
    """Periodic orbits of period ``k`` of a map: Newton on ``F^k(x) = x`` from many starts.

    Newton's method on ``g(x) = F^k(x) - x`` (``k = period``) runs vmapped from
    ``num_points`` starts drawn uniformly in ``box`` and/or from the given ``starts``;
    roots with ``‖g‖ < tol`` are kept and merged up to a cyclic shift (a root within
    ``merge_tol`` of a point of a known orbit is that orbit). Orbits whose minimal period
    ``d`` is a proper divisor of ``k`` (the fixed points when ``k = 2``) are kept and
    flagged by ``minimal_period``: select ``minimal_period == period`` for the primitive
    ``k``-cycles. Multipliers are the eigenvalues of
    ``∂F(x_{d-1}) ··· ∂F(x_0)``, the product of the step Jacobians along one minimal
    period (Strogatz 1994, §10.3; Kuznetsov 2004, ch. 4).

    Arguments:
        f: an autonomous map as a step ``f(x, u[, params])`` (``jaxgrad.autonomous(g)`` for
            ``g(x[, params])``), on an array or pytree state; ``u`` is a ``(0,)`` array.
        box: ``(lo, hi)``, states (or scalars, broadcast to every leaf of the state) with
            ``lo < hi``: ``num_points`` starts are drawn uniformly in it. Without
            ``starts`` the state's shape is the box's (``(0.0, 1.0)``: a scalar state).
        period: ``k >= 1``.
        params: passed as ``f(x, u, params)``; the default ``NO_PARAMS`` calls ``f(x, u)``.
            Traced: new values reuse the compiled code.
        starts: ``(M, *s)`` starting states (a pytree of leaves ``(M, *leaf_shape)``),
            used besides the ones drawn in ``box``.
        num_points: how many starts to draw in ``box`` (``>= 1``).
        key: PRNG key for the draws (``jax.random.key(0)`` when ``None``).
        newton_steps: Newton iterations from each start (the iterate with the least
            residual is kept); two more polish the orbit's first point.
        tol: residual ``‖F^k(x) - x‖`` below which a root has converged (``sqrt(eps)``
            of the state's dtype).
        merge_tol: sup-norm distance under which two points are one (the same orbit, or
            ``F^d(x) = x`` for the minimal period); ``10 tol`` by default.

    Returns:
        ``PeriodicOrbits`` sorted by minimal period, then by first point (host-side
        arrays; ``K`` depends on the data, so not jittable).

    Example:
        >>> logistic = jaxgrad.autonomous(lambda x, r: r * x * (1 - x))
        >>> orbits = periodic_orbits(logistic, (0.0, 1.0), period=2, params=3.3)
        >>> orbits.minimal_period.tolist()
        [1, 1, 2]
        >>> [round(float(x), 4) for x in orbits.points[2]]   # (r + 1 ± √((r-3)(r+1))) / 2r
        [0.4794, 0.8236]
        >>> round(float(orbits.multipliers[2, 0].real), 2)   # -r² + 2r + 4
        -0.29
        >>> [jaxgrad.analysis.STABILITY_LABELS[s] for s in orbits.stability]
        ['unstable', 'unstable', 'stable']
    """
    check_step(f, "f")
    period = check_positive_int("period", period)
    num_points = check_positive_int("num_points", num_points)
    newton_steps = check_positive_int("newton_steps", newton_steps)
    if box is None and starts is None:
        raise ValueError("give `box` (starts drawn in it) or `starts` (or both)")
    template, rows = None, []
    if starts is not None:
        starts, flat_starts, _ = check_state("starts", starts, batched=True)
        template = jax.tree_util.tree_map(lambda leaf: leaf[0], starts)
        dtype = flat_starts.dtype
        rows.append(jnp.reshape(flat_starts, (flat_starts.shape[0], -1)))
    if box is not None:
        lo, hi = _check_box(box, template)
        if template is None:
            dtype = float_dtype("box", jax.tree_util.tree_leaves(lo))
            template = lo
        key = jax.random.key(0) if key is None else _typed_key("key", key)
        lo_flat = ravel_pytree(lo)[0].astype(dtype)[None]
        hi_flat = ravel_pytree(hi)[0].astype(dtype)[None]
        u01 = jax.random.uniform(key, (num_points, lo_flat.shape[1]), dtype)
        rows.append(lo_flat + (hi_flat - lo_flat) * u01)
    template = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, dtype), template)
    flat = jnp.concatenate(rows, axis=0)
    tol = default_tol(dtype) if tol is None else check_positive_float("tol", tol)
    merge_tol = 10.0 * tol if merge_tol is None else check_positive_float("merge_tol", merge_tol)
    check_params_finite(params)
    _check_output(f, template, params)

    xs, res, mp, M = _run_core(f, params, template, flat, jnp.asarray(merge_tol, dtype),
                               period=period, newton_steps=newton_steps, polish_steps=2)
    xs, res, mp, M = np.asarray(xs), np.asarray(res), np.asarray(mp), np.asarray(M)
    ok = np.isfinite(res) & (res < tol) & np.all(np.isfinite(xs), axis=(1, 2))

    groups: list[list[int]] = []  # start indices per orbit; the first is its representative
    reps = np.zeros((0, *xs.shape[1:]), xs.dtype)
    for i in np.flatnonzero(ok):
        if reps.shape[0]:
            dist = np.min(np.max(np.abs(reps - xs[i, 0]), axis=-1), axis=1)
            j = int(np.argmin(dist))
            if dist[j] < merge_tol:
                groups[j].append(int(i))
                continue
        groups.append([int(i)])
        reps = np.concatenate([reps, xs[i][None]], axis=0)
    best = [min(g, key=lambda i: res[i]) for g in groups]  # the best-converged member
    order = sorted(range(len(best)), key=lambda j: (int(mp[best[j]]), tuple(xs[best[j], 0])))
    idx = np.asarray([best[j] for j in order], dtype=np.int64)
    n = xs.shape[2]
    cdtype = complex_dtype(dtype)
    mult = np.full((idx.size, n), np.nan + 0j, dtype=cdtype)
    for row, i in enumerate(idx):
        if np.all(np.isfinite(M[i])):
            ev = np.linalg.eigvals(M[i].astype(np.float64))
            mult[row] = ev[np.argsort(-np.abs(ev), kind="stable")]
    # classify on rows padded to the number of starts: one compiled shape per call site
    padded = np.zeros((xs.shape[0], n), cdtype)
    padded[: idx.size] = mult
    stability, loss = (np.asarray(c)[: idx.size] for c in classify(jnp.asarray(padded), "map"))
    multipliers = jnp.asarray(mult)
    residual = res[idx].astype(dtype)
    return PeriodicOrbits(
        points=restore_state(ravel_pytree(template)[1], xs[idx]),
        multipliers=multipliers,
        stability=jnp.asarray(stability),
        loss_of_stability=jnp.asarray(loss),
        residual=jnp.asarray(residual),
        num_starts=jnp.asarray(np.asarray([len(groups[j]) for j in order], np.int32)),
        converged=jnp.asarray(residual < tol),
        minimal_period=jnp.asarray(mp[idx].astype(np.int32)),
        period=period,
    )


def _check_output(f: Callable, template: Any, params: Any) -> None:
    """``f(x, u[, params])`` runs on a state shaped like the starts and returns one."""
    u = jnp.zeros((0,), jax.tree_util.tree_leaves(template)[0].dtype)
    try:
        out = jax.eval_shape(bind(f, params), template, u)
    except Exception as err:  # any failure of the user's f, reported with the shapes
        raise ValueError(
            f"`f` failed on a state shaped like the starts/box "
            f"{jax.tree_util.tree_map(jnp.shape, template)}: {type(err).__name__}: {err}"
        ) from err
    try:
        check_state_like(out, template)
    except ValueError:
        raise ValueError(
            f"`f` must return a state shaped like x "
            f"{jax.tree_util.tree_map(jnp.shape, template)} (the starts/box), got "
            f"{jax.tree_util.tree_map(jnp.shape, out)}"
        ) from None
