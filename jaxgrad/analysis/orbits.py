"""Long-run behaviour over a parameter grid: orbit diagrams, hysteresis sweeps, basins.

A map ``x ↦ f(x, p)`` is iterated; a flow ``dx/dt = f(x, p)`` is integrated with
classical RK4 steps of size ``dt`` or, with ``method="diffrax"``, solved over each ``dt``
by diffrax's adaptive solver. After ``transient`` steps the next ``keep`` states are
the orbit. With fixed initial conditions every (parameter, initial condition) pair runs
independently (vmapped); in a sweep the state is carried from one parameter value to the
next, up and then down the grid, so that a bistable system shows hysteresis: it stays on
the branch it is on until that branch ends at a fold (Strogatz 1994, §3.7).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._validation import check_positive_float, check_positive_int
from ._system import (
    advance,
    as_system,
    check_dt,
    check_output,
    check_param,
    check_params_finite,
    check_solve,
    check_state,
    check_system,
    check_values,
    flattened,
    residual,
    restore_state,
    run_steps,
    set_param,
)


class OrbitDiagram(NamedTuple):
    """Orbits from fixed initial conditions (``P`` values, ``M`` initial conditions).

    Attributes:
        values: ``(P,)``; x0: ``(M, *s)``.
        states: ``(P, M, keep, *s)`` the states after the transient.
        finite: ``(P, M)`` whether every kept state is finite (a diverging orbit is
            reported here, not hidden).

    For a pytree state, ``x0`` and the states are that pytree with the leading axes on
    each leaf (``states``: leaves ``(P, M, keep, *leaf_shape)``); so in ``HysteresisSweep``
    and ``Basins``.
    """

    values: jax.Array
    x0: jax.Array
    states: jax.Array
    finite: jax.Array


class HysteresisSweep(NamedTuple):
    """Orbits with the state carried along the grid, up then down.

    Attributes:
        values: ``(P,)`` increasing.
        up: ``(P, keep, *s)`` states at ``values[i]`` sweeping up from ``x0``.
        down: ``(P, keep, *s)`` states at ``values[i]`` sweeping down from the last
            state of the up sweep (indexed like ``values``, so ``down[i]`` is at
            ``values[i]``).
        finite: ``(2, P)`` finiteness of the up and down orbits.
    """

    values: jax.Array
    up: jax.Array
    down: jax.Array
    finite: jax.Array


class Basins(NamedTuple):
    """Which attractor each (initial condition, parameter) pair ends in.

    Attributes:
        values: ``(P,)``; x0: ``(M, *s)``.
        final: ``(P, M, *s)`` the state ``x(T)``.
        settled: ``(P, M)`` whether ``x(T)`` is at rest, ``‖g(x(T))‖ < settle_tol``
            (``g = f - x`` for a map, ``f`` for a flow). Near a fold the passage through
            the ghost of the vanished fixed point is slow, so pairs there may not settle.
        labels: ``(P, M)`` index into ``attractors[p]``; -1 for a non-finite end state
            or one beyond the ``max_attractors`` slots, -2 for one that has not settled.
        attractors: ``(P, K, *s)`` the distinct end states (closer than ``tol`` merged),
            ordered by their first coordinate (of the flattened state); NaN in unused
            slots.
        num_attractors: ``(P,)``.
    """

    values: jax.Array
    x0: jax.Array
    final: jax.Array
    settled: jax.Array
    labels: jax.Array
    attractors: jax.Array
    num_attractors: jax.Array


def _orbit(step, x0, p, transient, keep):
    x = run_steps(step, x0, p, transient)

    def body(x, _):
        x = step(x, p)
        return x, x

    x_last, xs = jax.lax.scan(body, x, None, length=keep)
    return x_last, xs


def _all_finite(xs, lead):
    return jnp.all(jnp.isfinite(jnp.reshape(xs, (*xs.shape[:lead], -1))), axis=-1)


@functools.partial(jax.jit, static_argnames=("f", "kind", "param", "transient", "keep",
                                             "solve"))
def _orbit_diagram(f, x0, params, values, dt, *, kind, param, transient, keep, solve):
    step = advance(f, kind, dt, solve)

    def one(value, x):
        return _orbit(step, x, set_param(params, param, value), transient, keep)[1]

    states = jax.vmap(lambda v: jax.vmap(lambda x: one(v, x))(x0))(values)
    return OrbitDiagram(values, x0, states, _all_finite(states, 2))


@functools.partial(jax.jit, static_argnames=("f", "kind", "param", "transient", "keep",
                                             "solve"))
def _sweep(f, x0, params, values, dt, *, kind, param, transient, keep, solve):
    step = advance(f, kind, dt, solve)

    def body(x, value):
        x_last, xs = _orbit(step, x, set_param(params, param, value), transient, keep)
        return x_last, xs

    x_top, up = jax.lax.scan(body, x0, values)
    _, down = jax.lax.scan(body, x_top, values, reverse=True)
    finite = jnp.stack([_all_finite(up, 1), _all_finite(down, 1)])
    return HysteresisSweep(values, up, down, finite)


def _check_orbit_args(f, x0, values, params, param, kind, dt, *, batched):
    """``(f_flat, x0, x0_flat, unravel, values, dt)``: ``x0`` checked (its leaves as float
    arrays) and flattened (``unravel`` for ``restore_state``), ``f`` checked on it."""
    check_system(f, kind)
    x0, flat, unravel = check_state("x0", x0, batched=batched)
    check_param(params, param)
    values = check_values("values", values, increasing=not batched).astype(flat.dtype)
    dt = check_dt(kind, dt)
    p_first = set_param(params, param, values[0])
    check_params_finite(p_first)
    one = jax.tree_util.tree_map(lambda leaf: leaf[0], x0) if batched else x0
    check_output(f, one, p_first, name="x0", batched=batched)
    return flattened(f, unravel), x0, flat, unravel, values, jnp.asarray(dt, flat.dtype)


def orbit_diagram(
    f: Callable,
    x0: Any,
    values: Any,
    *,
    params: Any = None,
    param: str | tuple | None = None,
    kind: str | None = None,
    dt: float = 0.1,
    transient: int = 1000,
    keep: int = 64,
    method: str = "rk4",
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 4096,
) -> OrbitDiagram:
    """Long-run states for every parameter value and every initial condition (vmapped).

    Arguments:
        f: a map as a step ``f(x, u, params)`` (``jaxgrad.autonomous(g)`` for ``g(x, p)``;
            ``u`` is a ``(0,)`` array), a flow as ``jaxgrad.vector_field(F)``, or
            (deprecated) ``f(x, p)`` with ``kind``; the state a scalar, an array of any
            shape or a pytree of arrays (see ``jaxgrad.analysis._system``).
        x0: ``(M, *s)`` initial conditions (the leading axis is the batch).
        values: ``(P,)`` values of the parameter ``param`` of ``params`` (or of the scalar
            parameter itself when ``param`` is None).
        kind: deprecated, for ``f(x, p)`` only: ``"map"`` or ``"flow"`` (default: ``"map"``
            here, ``"flow"`` for ``basins``); ``dt``: the time step of a flow (the states
            are ``dt`` apart).
        transient: steps discarded; ``keep``: steps kept (both static).
        method: for a flow, ``"rk4"`` (one classical RK4 step per ``dt``) or
            ``"diffrax"`` (the flow solved over each ``dt`` by diffrax's adaptive solver,
            Tsit5, to ``rtol``/``atol``, default by dtype as ``jaxgrad.integrate``; at most
            ``max_steps`` steps per ``dt``). A failed solve makes that orbit NaN, and its
            ``finite`` flag False.

    Returns:
        ``OrbitDiagram`` with ``states`` ``(P, M, keep, *s)``.

    Example:
        >>> logistic = lambda x, r: r * x * (1 - x)
        >>> od = orbit_diagram(logistic, jnp.array([0.3]), jnp.array([2.9, 3.2, 3.5]))
        >>> [int(jnp.unique(jnp.round(s, 3)).size) for s in od.states[:, 0, :]]
        [1, 2, 4]
        >>> # period doubling from r = 3 (periods 1, 2, 4), chaos past 3.57
    """
    f, kind = as_system(f, kind, "map")
    f, x0, flat, unravel, values, dt = _check_orbit_args(f, x0, values, params, param, kind,
                                                         dt, batched=True)
    transient = check_positive_int("transient", transient, minimum=0)
    keep = check_positive_int("keep", keep)
    solve = check_solve(kind, method, flat.dtype, rtol, atol, max_steps)
    out = _orbit_diagram(f, flat, params, values, dt, kind=kind, param=param,
                         transient=transient, keep=keep, solve=solve)
    return out._replace(x0=x0, states=restore_state(unravel, out.states))


def hysteresis_sweep(
    f: Callable,
    x0: Any,
    values: Any,
    *,
    params: Any = None,
    param: str | tuple | None = None,
    kind: str | None = None,
    dt: float = 0.1,
    transient: int = 1000,
    keep: int = 8,
    method: str = "rk4",
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 4096,
) -> HysteresisSweep:
    """Sweep a parameter up then down, carrying the state from each value to the next.

    From ``x0`` at ``values[0]``, each value runs ``transient + keep`` steps starting
    from where the previous one ended; after ``values[-1]`` the sweep returns down the
    grid. Between two folds of a bistable system the up and down sweeps sit on different
    branches (hysteresis); each jumps where its branch ends.

    Arguments:
        f, params, param, kind, dt, transient, keep, method, rtol, atol, max_steps: as in
            ``orbit_diagram``.
        x0: ``(*s)`` one initial state.
        values: ``(P,)`` strictly increasing parameter values.

    Returns:
        ``HysteresisSweep`` with ``up``, ``down`` of shape ``(P, keep, *s)``.

    Example:
        >>> flow = lambda x, p: jaxgrad.models.doya_vector_field(x, 0.0, p)
        >>> hs = hysteresis_sweep(flow, 0.0, jnp.linspace(-3, -2, 101), kind="flow",
        ...                       params=jaxgrad.DoyaParams(5.0, -3.0), param="b")
        >>> up, down = hs.up[:, -1], hs.down[:, -1]    # the last kept state at each b
        >>> i, j = int(jnp.argmax(jnp.diff(up))), int(jnp.argmax(jnp.diff(down)))
        >>> round(float(hs.values[i + 1]), 2), round(float(hs.values[j]), 2)   # the folds
        (-2.34, -2.66)
    """
    f, kind = as_system(f, kind, "map")
    f, _, flat, unravel, values, dt = _check_orbit_args(f, x0, values, params, param, kind,
                                                        dt, batched=False)
    transient = check_positive_int("transient", transient, minimum=0)
    keep = check_positive_int("keep", keep)
    solve = check_solve(kind, method, flat.dtype, rtol, atol, max_steps)
    out = _sweep(f, flat, params, values, dt, kind=kind, param=param, transient=transient,
                 keep=keep, solve=solve)
    return out._replace(up=restore_state(unravel, out.up), down=restore_state(unravel, out.down))


def _cluster(points, use, tol, k_max):
    """Greedy clustering of the ``(M, n)`` points where ``use``: labels, centres (sorted)."""
    dtype = points.dtype
    centres0 = jnp.full((k_max, points.shape[1]), jnp.nan, dtype)

    def body(carry, inputs):
        pt, use_pt = inputs
        centres, count = carry
        dist = jnp.max(jnp.abs(centres - pt[None]), axis=1)
        near = jnp.where(jnp.isnan(dist), jnp.inf, dist)
        j = jnp.argmin(near)
        found = near[j] < tol
        finite = jnp.all(jnp.isfinite(pt)) & use_pt
        room = count < k_max
        new = finite & ~found & room
        centres = jnp.where(new, centres.at[count].set(pt), centres)
        label = jnp.where(~finite, -1, jnp.where(found, j, jnp.where(room, count, -1)))
        return (centres, count + new.astype(count.dtype)), label

    (centres, count), labels = jax.lax.scan(body, (centres0, jnp.asarray(0)), (points, use))
    key = jnp.where(jnp.isnan(centres[:, 0]), jnp.inf, centres[:, 0])
    order = jnp.argsort(key)
    rank = jnp.argsort(order)
    labels = jnp.where(labels >= 0, rank[jnp.maximum(labels, 0)], -1)
    return labels, centres[order], count


@functools.partial(jax.jit, static_argnames=("f", "kind", "param", "num_steps",
                                             "max_attractors", "solve"))
def _basins(f, x0, params, values, dt, tol, settle_tol, *, kind, param, num_steps,
            max_attractors, solve):
    step = advance(f, kind, dt, solve)
    g = residual(f, kind)

    def one(value):
        p = set_param(params, param, value)
        final = jax.vmap(lambda x: run_steps(step, x, p, num_steps))(x0)
        flat = jnp.reshape(final, (final.shape[0], -1))
        speed = jax.vmap(lambda x: jnp.max(jnp.abs(jnp.ravel(g(x, p)))))(final)
        settled = speed < settle_tol
        labels, centres, count = _cluster(flat, settled, tol, max_attractors)
        finite = jnp.all(jnp.isfinite(flat), axis=1)
        labels = jnp.where(finite & ~settled, -2, labels)
        centres = jnp.reshape(centres, (max_attractors, *x0.shape[1:]))
        return final, settled, labels, centres, count

    final, settled, labels, centres, count = jax.vmap(one)(values)
    return Basins(values, x0, final, settled, labels, centres, count)


def basins(
    f: Callable,
    x0: Any,
    values: Any,
    *,
    params: Any = None,
    param: str | tuple | None = None,
    kind: str | None = None,
    dt: float = 0.1,
    num_steps: int = 2000,
    tol: float = 1e-3,
    settle_tol: float | None = None,
    max_attractors: int = 8,
    method: str = "rk4",
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 4096,
) -> Basins:
    """Label each (initial condition, parameter) pair by the attractor it ends in.

    Every pair runs ``num_steps`` steps (vmapped); the end states ``x(T)`` are merged into
    attractors when closer than ``tol`` (max-norm) and ordered by their first coordinate,
    so for a 1-D bistable system label 0 is the lower and 1 the upper stable point. End
    states must be at rest (``‖g(x(T))‖ < settle_tol``; the others get label -2): the
    attractors found are stable fixed points, and a periodic or chaotic attractor shows up
    as unsettled.

    Arguments:
        f, params, param, kind, dt, method, rtol, atol, max_steps: as in ``orbit_diagram``.
        x0: ``(M, *s)`` initial conditions; values: ``(P,)``.
        num_steps: steps to ``T``; tol: merge distance (max-norm); settle_tol: residual
            under which ``x(T)`` is at rest (``tol / 10``); max_attractors: ``K`` (static).

    Returns:
        ``Basins``.

    Example:
        >>> flow = lambda x, p: jaxgrad.models.doya_vector_field(x, 0.0, p)
        >>> bs = basins(flow, jnp.array([0.1, 0.3, 0.7, 0.9]), jnp.array([-2.5]),
        ...             params=jaxgrad.DoyaParams(5.0, -2.5), param="b")
        >>> bs.labels[0].tolist()          # 0 below x(0) = 0.5, 1 above
        [0, 0, 1, 1]
    """
    f, kind = as_system(f, kind, "flow")
    f, x0, flat, unravel, values, dt = _check_orbit_args(f, x0, values, params, param, kind,
                                                         dt, batched=True)
    num_steps = check_positive_int("num_steps", num_steps)
    tol = check_positive_float("tol", tol)
    settle_tol = tol / 10 if settle_tol is None else check_positive_float("settle_tol",
                                                                          settle_tol)
    max_attractors = check_positive_int("max_attractors", max_attractors)
    solve = check_solve(kind, method, flat.dtype, rtol, atol, max_steps)
    out = _basins(f, flat, params, values, dt, jnp.asarray(tol, flat.dtype),
                  jnp.asarray(settle_tol, flat.dtype), kind=kind, param=param,
                  num_steps=num_steps, max_attractors=max_attractors, solve=solve)
    return out._replace(x0=x0, final=restore_state(unravel, out.final),
                        attractors=restore_state(unravel, out.attractors))
