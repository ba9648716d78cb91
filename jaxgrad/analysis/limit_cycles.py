"""Limit cycles of a flow: shooting, Floquet multipliers, continuation from a Hopf point,
and Poincaré sections.

A limit cycle of ``dx/dt = F(x)`` through ``x_0`` with period ``T`` solves
``φ_T(x_0) - x_0 = 0``, with ``φ_T`` the flow map, integrated by diffrax
(``jaxgrad.flows``). The point on the cycle is fixed by a phase condition
``⟨v, x_0 - x̂⟩ = 0``, ``v = F(x̂)/‖F(x̂)‖`` at a reference point ``x̂`` (the initial
guess; the previous point along a branch), which removes the shift along the cycle
(Seydel, *Practical Bifurcation and Stability Analysis*, 3rd ed. (2010), §7.3; Kuznetsov,
*Elements of Applied Bifurcation Theory*, 3rd ed. (2004), §10.3.1). ``limit_cycle`` runs
Newton's method on the unknowns ``(x_0, T)`` with the Jacobian
``[[M - I, F(φ_T(x_0))], [vᵀ, 0]]``, where the monodromy matrix ``M = ∂φ_T/∂x_0`` comes
from ``jax.jacfwd`` through the diffrax solve (``diffrax.ForwardMode``). The eigenvalues
of ``M`` are the Floquet multipliers; one of them is 1 (the direction along the cycle),
and the cycle is stable when every other one lies inside the unit circle.

``cycle_branch`` starts the cycle born at a Hopf point (``jaxgrad.locate_bifurcation(...,
bifurcation="hopf")``) from the normal-form amplitude ``|z|² = -α/(ω l_1)`` on the side
of the Hopf point where the cycle exists, and follows ``(x_0, T, p)`` by pseudo-arclength
continuation. ``poincare_section`` returns the crossings of a trajectory with a
hyperplane, each located by bisection on diffrax's dense interpolant of the step it
falls in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import (
    check_array,
    check_finite,
    check_finite_float,
    check_positive_float,
    check_positive_int,
)
from ..flows import (
    check_vector_field,
    flow_map,
    ode_term,
    solver_options,
    trajectory,
)
from ..systems import NO_PARAMS, bind, check_params_finite, check_state_like, jit_with_params
from ._system import (
    check_interval,
    check_param,
    check_state,
    complex_dtype,
    default_tol,
    flattened,
    newton_iterate,
    restore_state,
    set_param,
)
from .continuation import BifurcationPoint


class LimitCycle(NamedTuple):
    """A periodic orbit of a flow found by shooting (``n`` = state size).

    Attributes:
        point: ``(n,)`` a point ``x_0`` on the cycle (a state like ``x0``: for an N-D or
            pytree state, that shape or pytree; the one on the phase condition's
            hyperplane through the initial guess).
        period: ``()`` the period ``T``.
        floquet_multipliers: ``(n,)`` complex, the eigenvalues of the monodromy matrix
            ``∂φ_T/∂x_0``: the trivial multiplier (the one nearest 1, along the cycle)
            first, then the others by decreasing modulus.
        stable: ``()`` every non-trivial multiplier has ``|μ| < 1``.
        amplitude: ``()`` the largest distance from the cycle's centroid, over
            ``num_samples`` points equally spaced in time (the radius of a circle).
        residual: ``()`` ``‖φ_T(x_0) - x_0‖``.
        converged: ``()`` the integration succeeded, ``residual`` and the phase
            condition are within ``tol · max(1, ‖x_0‖)``, ``T > 0``, ``amplitude >=
            min_amplitude`` (a collapse onto an equilibrium, where ``φ_T(x) = x`` for
            every ``T``, is not a cycle) and the orbit does not return to ``x_0`` within
            ``[T/8, 7T/8]`` (to ``sqrt(tol) · amplitude``): ``T`` is not a multiple of
            the period. The residual is that of the integrated flow, itself accurate to
            the solver's ``rtol``, and an error along a slowly contracting direction
            decays slowly: a converged ``point`` lies within about ``max(tol, rtol) ·
            max(1, ‖x_0‖) / min_k |1 - μ_k|`` of the cycle (``μ_k`` the non-trivial
            multipliers; ``period`` likewise, relative), less accurate than ``tol`` near
            a Hopf point, where ``μ_2 → 1`` (measured on random normal forms:
            ``tests/test_status_fields.py``).
    """

    point: jax.Array
    period: jax.Array
    floquet_multipliers: jax.Array
    stable: jax.Array
    amplitude: jax.Array
    residual: jax.Array
    converged: jax.Array


class CycleBranch(NamedTuple):
    """The branch of limit cycles continued from a Hopf point (``S`` accepted points).

    Attributes:
        p: ``(S,)`` the parameter.
        points: ``(S, n)`` a point on each cycle (for an N-D or pytree state, that pytree
            with leaves ``(S, *leaf_shape)``).
        period: ``(S,)`` the periods.
        amplitude: ``(S,)`` as in ``LimitCycle``.
        floquet_multipliers: ``(S, n)`` complex, the trivial one first (``LimitCycle``).
        stable: ``(S,)`` every non-trivial multiplier inside the unit circle.
        residual: ``(S,)`` ``‖φ_T(x_0) - x_0‖``.
        converged: ``(S,)`` as in ``LimitCycle`` (True on every returned row: rows are the
            accepted points).
        stop_reason: why the branch ended: ``"p_range"`` (it left ``p_range``),
            ``"num_steps"``, or ``"newton_failed"`` (the corrector failed at the smallest
            step ``ds_min``, or at the seed: then ``S = 0``).
    """

    p: jax.Array
    points: jax.Array
    period: jax.Array
    amplitude: jax.Array
    floquet_multipliers: jax.Array
    stable: jax.Array
    residual: jax.Array
    converged: jax.Array
    stop_reason: str


class PoincareSection(NamedTuple):
    """The crossings of a trajectory with the hyperplane ``⟨normal, x⟩ = offset``
    (``K = max_crossings`` rows).

    Attributes:
        points: ``(K, n)`` the states at the crossings, in time order; NaN past ``count``
            (for an N-D or pytree state, that pytree with leaves ``(K, *leaf_shape)``).
        times: ``(K,)`` the crossing times; NaN past ``count``.
        valid: ``(K,)`` the rows that hold a crossing.
        count: ``()`` how many crossings are returned (``<= K``).
        truncated: ``()`` the trajectory crossed more than ``K`` times (the first ``K``
            are returned).
        converged: ``()`` the integration reached ``t1`` with finite states.
    """

    points: jax.Array
    times: jax.Array
    valid: jax.Array
    count: jax.Array
    truncated: jax.Array
    converged: jax.Array


# --------------------------------------------------------------------------- checks


def _check_flow_state(name: str, x: Any) -> tuple[Any, jax.Array, Any]:
    """A finite float state of ``n >= 2`` components (a cycle needs two dimensions): an
    ``(n,)`` array, an N-D array or a pytree; ``(x, x_flat, unravel)`` as ``check_state``."""
    x, flat, unravel = check_state(name, x)
    if flat.ndim != 1 or flat.shape[0] < 2:
        raise ValueError(f"`{name}` must have n >= 2 components (shape (n,), an N-D array or "
                         f"a pytree; a flow on a line has no cycles), got shape "
                         f"{jax.tree_util.tree_map(jnp.shape, x)}")
    return x, flat, unravel


def _check_input(u: Any, dtype: Any) -> jax.Array:
    if u is None:
        return jnp.zeros((0,), dtype)
    u = check_array("u", u)
    check_finite("u", u)
    return u


def _check_output(field: Any, x: Any, u: jax.Array, params: Any, name: str = "x0") -> None:
    """``F(x, u[, params])`` returns a state (a pytree) shaped like ``x`` (trace-time check)."""
    try:
        out = jax.eval_shape(bind(field.f, params), x, u)
    except Exception as err:  # any failure of the user's F, reported with the shapes
        raise ValueError(f"`field` failed on `{name}`, a state of shape "
                         f"{jax.tree_util.tree_map(jnp.shape, x)}: "
                         f"{type(err).__name__}: {err}") from err
    check_state_like(out, x, what="`field` must return dx/dt")


def _options(dtype: Any, solver, stiff, rtol, atol, max_steps) -> tuple:
    """Solver options as a hashable tuple (static under ``jit``)."""
    return tuple(sorted(solver_options(dtype, solver=solver, stiff=stiff, rtol=rtol,
                                       atol=atol, max_steps=max_steps).items()))


# --------------------------------------------------------------------------- shooting


def _field_of(f: Callable, no_params: bool, params: Any, param: Any, u: Any) -> Callable:
    """``F(x, q)``: the vector field with the parameter ``param`` set to ``q`` (``q``
    unused without ``param``)."""

    def F(x, q):
        if no_params:
            return f(x, u)
        if param is None:
            return f(x, u, params)
        return f(x, u, set_param(params, param, q))

    return F


def _unit(v: jax.Array) -> jax.Array:
    """``v / ‖v‖``, or zeros for ``v = 0`` (the Newton system is then singular)."""
    norm = jnp.linalg.norm(v)
    return jnp.where(norm > 0, v / jnp.where(norm > 0, norm, 1), 0)


@functools.partial(jax.jit, static_argnames=("f", "no_params", "param", "options",
                                             "newton_steps", "num_samples"))
def _correct(f, no_params, params, u, w0, anchor, anchor_q, tangent, w_pred, stop_tol,
             arclength, *, param, options, newton_steps, num_samples):
    """Newton on ``(x, T, q)`` for ``φ_T(x; q) - x = 0``, ``⟨v, x - anchor⟩ = 0`` and
    ``q = w_pred[-1]`` (fixed parameter) or ``⟨tangent, w - w_pred⟩ = 0`` (arclength).

    Returns the iterate with the least residual, the residuals of its three parts, the
    full Newton matrix there (its first ``n`` columns hold ``M - I``), the unit field at
    it, the cycle's amplitude and whether the integration there succeeded.
    """
    import diffrax

    opts = {**dict(options), "adjoint": diffrax.ForwardMode()}
    F = _field_of(f, no_params, params, param, u)
    n = anchor.shape[0]
    dtype = anchor.dtype
    v = _unit(F(anchor, anchor_q))
    eye = jnp.eye(n, dtype=dtype)

    def system(w):
        x, T, q = w[:n], w[n], w[n + 1]

        def phi(x, q):
            xT, ok, _ = flow_map(lambda y, _u: F(y, q), x, u, T, opts)
            return xT, (xT, ok)

        (Jx, Jq), (xT, ok) = jax.jacfwd(phi, argnums=(0, 1), has_aux=True)(x, q)
        r = xT - x
        phase = v @ (x - anchor)
        # traced, so that the seed and the continuation steps share one compilation
        last = jnp.where(arclength, tangent @ (w - w_pred), q - w_pred[n + 1])
        last_row = jnp.where(arclength, tangent, jnp.zeros(n + 2, dtype).at[n + 1].set(1.0))
        H = jnp.concatenate([r, phase[None], last[None]])
        J = jnp.concatenate([
            jnp.concatenate([Jx - eye, F(xT, q)[:, None], Jq[:, None]], axis=1),
            jnp.concatenate([v, jnp.zeros(2, dtype)])[None],
            last_row[None],
        ], axis=0)
        return H, J, ok

    # Newton with step halving: a trial iterate whose integration fails (a blow-up, a
    # non-positive period) is retried at half the step; the least-residual iterate is kept.
    def cond(state):
        return (state[0] < newton_steps) & ~state[-1]

    def body(state):
        i, w, delta, lam, best_w, best_res, best_H, best_J, best_ok, _ = state
        trial = w - lam * delta
        T_trial = trial[n]
        H, J, ok = system(trial.at[n].set(jnp.where(T_trial > 0, T_trial, jnp.abs(w[n]))))
        res = jnp.linalg.norm(H)
        good = ok & jnp.isfinite(res) & jnp.all(jnp.isfinite(trial)) & (T_trial > 0)
        better = good & (res < best_res)
        best_w = jnp.where(better, trial, best_w)
        best_res = jnp.where(better, res, best_res)
        best_H = jnp.where(better, H, best_H)
        best_J = jnp.where(better, J, best_J)
        best_ok = best_ok | better
        step = jnp.linalg.solve(J, H)
        usable = good & jnp.all(jnp.isfinite(step))
        w = jnp.where(good, trial, w)
        delta = jnp.where(usable, step, delta)
        lam = jnp.where(usable, 1.0, lam / 2).astype(dtype)
        done = ((good & (res < stop_tol)) | (good & ~usable) | (lam < 1.0 / 64)
                | ~best_ok)  # the start itself failed: nothing to step from
        return i + 1, w, delta, lam, best_w, best_res, best_H, best_J, best_ok, done

    inf = jnp.asarray(jnp.inf, dtype)
    nan_H = jnp.full((n + 2,), jnp.nan, dtype)
    nan_J = jnp.full((n + 2, n + 2), jnp.nan, dtype)
    # The first iteration evaluates w0 itself (a zero step).
    state = (jnp.asarray(0), w0, jnp.zeros_like(w0), jnp.ones((), dtype), w0, inf, nan_H,
             nan_J, jnp.asarray(False), jnp.asarray(False))
    _, _, _, _, w, _, H, J, ok, _ = jax.lax.while_loop(cond, body, state)
    x, T, q = w[:n], w[n], w[n + 1]
    ts = jnp.linspace(0, 1, num_samples + 1, dtype=dtype)[1:] * jnp.abs(T)
    samples, sampled = trajectory(lambda y, _u: F(y, q), x, u, ts, opts)
    centre = jnp.mean(samples, axis=0, keepdims=True)
    amplitude = jnp.max(jnp.linalg.norm(samples - centre, axis=1))
    # The closest return to x within [T/8, 7T/8]: ≈ 0 when T is a multiple of the period.
    edge = num_samples // 8
    early_return = jnp.min(jnp.linalg.norm(samples[edge:num_samples - edge] - x[None], axis=1))
    return (w, jnp.linalg.norm(H[:n]), jnp.abs(H[n]), jnp.abs(H[n + 1]), J,
            _unit(F(x, q)), amplitude, early_return, ok & sampled)


def _multipliers(J: np.ndarray, n: int) -> tuple[np.ndarray, bool]:
    """Floquet multipliers (trivial first, then by decreasing modulus) and stability."""
    M = J[:n, :n] + np.eye(n)
    if not np.all(np.isfinite(M)):
        return np.full(n, np.nan + 0j), False
    ev = np.linalg.eigvals(M.astype(np.float64))
    k = int(np.argmin(np.abs(ev - 1.0)))
    rest = np.delete(ev, k)
    rest = rest[np.argsort(-np.abs(rest), kind="stable")]
    return np.concatenate([ev[k:k + 1], rest]), bool(np.all(np.abs(rest) < 1.0))


class _Shot(NamedTuple):
    w: np.ndarray
    residual: float
    amplitude: float
    converged: bool
    J: np.ndarray
    direction: np.ndarray


def _shoot(f, params, u, w0, anchor, anchor_q, tangent, w_pred, *, tol, min_amplitude, param,
           options, arclength, newton_steps, num_samples) -> _Shot:
    """One corrector run and its verdict (host side)."""
    no_params = params is NO_PARAMS
    dtype = anchor.dtype
    n = anchor.shape[0]
    scale = max(1.0, float(np.max(np.abs(np.asarray(anchor)))))
    out = _correct(f, no_params, None if no_params else params, u, w0, anchor,
                   jnp.asarray(anchor_q, dtype), tangent, w_pred,
                   jnp.asarray(1e-3 * tol * scale, dtype), jnp.asarray(arclength),
                   param=param, options=options, newton_steps=newton_steps,
                   num_samples=num_samples)
    w, r, phase, last, J, direction, amplitude, early, ok = (np.asarray(a) for a in out)
    scale = max(1.0, float(np.linalg.norm(w[:n])))
    min_amp = (100.0 * tol * scale) if min_amplitude is None else min_amplitude
    converged = bool(ok and np.all(np.isfinite(w)) and w[n] > 0 and r <= tol * scale
                     and phase <= tol * scale and last <= tol * scale
                     and np.isfinite(amplitude) and amplitude >= min_amp
                     and early > np.sqrt(tol) * amplitude)
    return _Shot(w, float(r), float(amplitude), converged, J, direction)


def limit_cycle(
    field: Any,
    x0: Any,
    period_guess: float,
    *,
    params: Any = NO_PARAMS,
    u: Any = None,
    newton_steps: int = 20,
    tol: float | None = None,
    min_amplitude: float | None = None,
    num_samples: int = 64,
    solver: Any = None,
    stiff: bool = False,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 4096,
) -> LimitCycle:
    """A limit cycle of the flow ``dx/dt = F(x, u, params)`` by shooting from ``(x0, T)``.

    Newton's method on ``(x_0, T)`` for ``φ_T(x_0) - x_0 = 0`` and the phase condition
    ``⟨v, x_0 - x̂⟩ = 0`` with ``x̂ = x0`` and ``v = F(x̂)/‖F(x̂)‖`` (Seydel 2010, §7.3),
    with the Jacobian ``[[M - I, F(φ_T(x_0))], [vᵀ, 0]]`` and the monodromy matrix
    ``M = ∂φ_T/∂x_0`` by ``jax.jacfwd`` through the diffrax solve (``jaxgrad.flows``,
    Tsit5 by default). The iterate with the least residual is kept. Its Floquet
    multipliers are the eigenvalues of ``M``.

    Arguments:
        field: a ``VectorField`` (``jaxgrad.vector_field(F)``) of an autonomous flow.
        x0: ``(n,)``, ``n >= 2``, a point near the cycle (also the phase condition's
            reference point ``x̂``: choose one where ``F`` is not small); or an N-D array
            or a pytree of arrays of ``n >= 2`` numbers in all, flattened with
            ``ravel_pytree`` (the multipliers are of the flattened state).
        period_guess: ``> 0``, a guess for the period.
        params: passed as ``F(x, u, params)`` (default: ``F(x, u)``); traced.
        u: a constant input (default: a ``(0,)`` array).
        newton_steps: the most Newton iterations (stops early once converged).
        tol: the residual ``‖φ_T(x_0) - x_0‖`` and phase condition accepted, relative to
            ``max(1, ‖x_0‖)`` (default ``sqrt(eps)``: 1.5e-8 in float64; the integration's
            default tolerances are tighter, ``jaxgrad.flows.default_tolerances``).
        min_amplitude: the least amplitude of a cycle (default ``100 tol max(1, ‖x_0‖)``):
            a smaller one is an equilibrium, and ``converged`` is False.
        num_samples: points along the cycle (``>= 8``) for ``amplitude`` and the check
            that ``T`` is the least period.
        solver, stiff, rtol, atol, max_steps: as in ``jaxgrad.integrate``.

    Returns:
        ``LimitCycle``. Check ``converged``: Newton may fail, or land on an equilibrium
        or on a multiple of the period (both refused). The Newton loop runs jitted (once
        per ``F`` and options; ``x0``, ``period_guess`` and ``params`` are traced), the
        verdict on the host: ``limit_cycle`` itself is not jittable.

    Raises:
        TypeError: ``field`` is not a ``VectorField``.
        ValueError: naming the argument: ``x0`` not ``(n,)`` with ``n >= 2`` or not
            finite, ``period_guess <= 0``, non-finite ``params``, bad options.

    Example:
        >>> def hopf(x, u, mu):         # r' = μ r - r³, θ' = 1: a cycle of radius √μ
        ...     r2 = x @ x
        ...     return jnp.stack([mu * x[0] - x[1] - x[0] * r2, x[0] + mu * x[1] - x[1] * r2])
        >>> lc = limit_cycle(jaxgrad.vector_field(hopf), jnp.array([0.8, 0.0]), 6.0,
        ...                  params=jnp.asarray(0.25))
        >>> bool(lc.converged), round(float(lc.period), 4), round(float(lc.amplitude), 4)
        (True, 6.2832, 0.5)
        >>> [round(float(abs(m)), 3) for m in lc.floquet_multipliers]   # 1, exp(-2μ 2π)
        [1.0, 0.043]
    """
    check_vector_field(field)
    x0, x0_flat, unravel = _check_flow_state("x0", x0)
    period = check_positive_float("period_guess", period_guess)
    dtype = x0_flat.dtype
    u = _check_input(u, dtype)
    check_params_finite(params)
    newton_steps = check_positive_int("newton_steps", newton_steps)
    num_samples = check_positive_int("num_samples", num_samples, minimum=8)
    tol = default_tol(dtype) if tol is None else check_positive_float("tol", tol)
    if min_amplitude is not None:
        min_amplitude = check_positive_float("min_amplitude", min_amplitude, allow_zero=True)
    options = _options(dtype, solver, stiff, rtol, atol, max_steps)
    _check_output(field, x0, u, params)
    n = x0_flat.shape[0]
    w0 = jnp.concatenate([x0_flat, jnp.asarray([period, 0.0], dtype)])
    shot = _shoot(flattened(field.f, unravel), params, u, w0, x0_flat, 0.0,
                  jnp.zeros(n + 2, dtype), w0, tol=tol,
                  min_amplitude=min_amplitude, param=None, options=options, arclength=False,
                  newton_steps=newton_steps, num_samples=num_samples)
    mult, stable = _multipliers(shot.J, n)
    return LimitCycle(
        point=restore_state(unravel, jnp.asarray(shot.w[:n], dtype)),
        period=jnp.asarray(shot.w[n], dtype),
        floquet_multipliers=jnp.asarray(mult.astype(complex_dtype(dtype))),
        stable=jnp.asarray(stable),
        amplitude=jnp.asarray(shot.amplitude, dtype),
        residual=jnp.asarray(shot.residual, dtype),
        converged=jnp.asarray(shot.converged),
    )


# --------------------------------------------------------------------------- Hopf branch


@functools.partial(jax.jit, static_argnames=("f", "no_params", "param"))
def _equilibrium(f, no_params, params, u, x, q, *, param):
    """The equilibrium near ``x`` at parameter ``q`` (Newton) and ``∂F/∂x`` there."""
    F = _field_of(f, no_params, params, param, u)
    xe = newton_iterate(lambda y: F(y, q), x, 20)
    return xe, jax.jacfwd(lambda y: F(y, q))(xe)


def _critical_pair(f, params, u, x, q, omega, param):
    """``(x_e, λ, v)``: the equilibrium at ``q`` and its eigenpair nearest ``iω``
    (``‖v‖ = 1``)."""
    no_params = params is NO_PARAMS
    xe, A = _equilibrium(f, no_params, None if no_params else params, u, x,
                         jnp.asarray(q, x.dtype), param=param)
    lam, vecs = np.linalg.eig(np.asarray(A, np.float64))
    k = int(np.argmin(np.abs(lam - 1j * omega)))
    return np.asarray(xe), lam[k], vecs[:, k] / np.linalg.norm(vecs[:, k])


def cycle_branch(
    field: Any,
    hopf_point: BifurcationPoint,
    *,
    params: Any,
    param: Any,
    p_range: tuple[float, float],
    u: Any = None,
    seed_offset: float | None = None,
    ds: float | None = None,
    ds_min: float | None = None,
    ds_max: float | None = None,
    num_steps: int = 50,
    newton_steps: int = 12,
    tol: float | None = None,
    num_samples: int = 64,
    solver: Any = None,
    stiff: bool = False,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 4096,
) -> CycleBranch:
    """The branch of limit cycles born at a Hopf point, continued in ``param``.

    The cycle exists on the side of the Hopf point ``p*`` where the equilibrium's critical
    pair ``α ± iω`` has ``α / l_1 < 0`` (supercritical, ``l_1 < 0``: where the equilibrium
    is unstable). At ``p = p* ± seed_offset`` on that side the small cycle is seeded from
    the normal form: ``x ≈ x_e + 2|z| Re(q e^{iωt})``, ``|z|² = -α/(ω l_1)``, period
    ``2π/ω`` (Kuznetsov 2004, §3.5), with ``x_e`` the equilibrium and ``q`` (``‖q‖ = 1``)
    the eigenvector of ``α + iω`` there. The seed is corrected by ``limit_cycle``'s Newton
    at fixed ``p``, then ``(x_0, T, p)`` is continued by pseudo-arclength (predictor along
    the tangent, corrector with the phase condition taken at the previous point; Seydel
    2010, §7.3), the step halved on failure and grown by 1.25 on success.

    Arguments:
        field: the ``VectorField`` ``F(x, u, params)``.
        hopf_point: a converged ``BifurcationPoint`` of kind ``"hopf"`` of this flow (from
            ``jaxgrad.locate_bifurcation`` or ``continue_branch``), with a non-zero first
            Lyapunov coefficient.
        params: parameters (dict, NamedTuple or dataclass); ``param`` names the one varied
            (its value is replaced by ``hopf_point.p``).
        p_range: ``(lo, hi)``, containing ``hopf_point.p``; the branch ends when it leaves.
        u: a constant input (default: a ``(0,)`` array).
        seed_offset: ``|p - p*|`` of the seed cycle (default ``0.01 max(1, |p*|)``);
            its amplitude is about ``√(seed_offset)``.
        ds: the first arclength step in ``(x_0, T, p)`` (default ``2 seed_offset``);
            ``ds_min`` (``ds/64``) and ``ds_max`` (``20 ds``) bound it.
        num_steps: the most continuation steps; ``newton_steps``, ``tol``, ``num_samples``,
            ``solver``, ``stiff``, ``rtol``, ``atol``, ``max_steps``: as in ``limit_cycle``.

    Returns:
        ``CycleBranch`` of the accepted cycles, the seed first, with ``stop_reason``.

    Raises:
        TypeError: ``field`` is not a ``VectorField``, ``hopf_point`` not a
            ``BifurcationPoint``.
        ValueError: naming the argument: ``hopf_point`` not a converged Hopf point or
            degenerate (``l_1 = 0``, no transversal crossing), ``p_range`` not containing
            it, bad ``param`` or step options.

    Example:
        >>> def hopf(x, u, p):           # a cycle of radius √μ for μ > 0
        ...     r2 = x @ x
        ...     mu = p["mu"]
        ...     return jnp.stack([mu * x[0] - x[1] - x[0] * r2, x[0] + mu * x[1] - x[1] * r2])
        >>> field = jaxgrad.vector_field(hopf)
        >>> hp = jaxgrad.locate_bifurcation(field, jnp.array([0.01, 0.0]),
        ...                                 params={"mu": -0.1}, param="mu", bifurcation="hopf")
        >>> br = cycle_branch(field, hp, params={"mu": 0.0}, param="mu", p_range=(-1.0, 0.3),
        ...                   num_steps=5)
        >>> br.stop_reason, bool(np.allclose(br.amplitude, np.sqrt(br.p), atol=1e-3))
        ('num_steps', True)
    """
    check_vector_field(field)
    if not isinstance(hopf_point, BifurcationPoint):
        raise TypeError("`hopf_point` must be a BifurcationPoint (from "
                        f"jaxgrad.locate_bifurcation), got {type(hopf_point).__name__}")
    if hopf_point.kind != "hopf":
        raise ValueError(f"`hopf_point` must be of kind 'hopf', got {hopf_point.kind!r}")
    if not bool(hopf_point.converged):
        raise ValueError("`hopf_point` did not converge (its `converged` is False): locate "
                         "the Hopf point first")
    x_tree, x_h, unravel = _check_flow_state("hopf_point.x", hopf_point.x)
    dtype = x_h.dtype
    omega = float(hopf_point.frequency)
    l1 = float(hopf_point.first_lyapunov_coefficient)
    if not (np.isfinite(omega) and omega > 0):
        raise ValueError(f"`hopf_point` must have a frequency > 0, got {omega}")
    if not np.isfinite(l1) or abs(l1) < default_tol(dtype):
        raise ValueError(f"`hopf_point` has first Lyapunov coefficient {l1}: a degenerate "
                         "Hopf point, whose cycles the normal form does not seed")
    check_param(params, param)
    check_params_finite(params)
    p_star = float(hopf_point.p)
    lo, hi = check_interval("p_range", p_range)
    if not lo <= p_star <= hi:
        raise ValueError(f"`p_range` ({lo}, {hi}) must contain the Hopf point p = {p_star}")
    u = _check_input(u, dtype)
    params = set_param(params, param, jnp.asarray(p_star, dtype))
    _check_output(field, x_tree, u, params, name="hopf_point.x")
    seed_offset = (0.01 * max(1.0, abs(p_star)) if seed_offset is None
                   else check_positive_float("seed_offset", seed_offset))
    ds = 2 * seed_offset if ds is None else check_positive_float("ds", ds)
    ds_min = ds / 64 if ds_min is None else check_positive_float("ds_min", ds_min)
    ds_max = 20 * ds if ds_max is None else check_positive_float("ds_max", ds_max)
    if not ds_min <= ds <= ds_max:
        raise ValueError(f"`ds`={ds} must lie in [`ds_min`, `ds_max`] = [{ds_min}, {ds_max}]")
    num_steps = check_positive_int("num_steps", num_steps)
    newton_steps = check_positive_int("newton_steps", newton_steps)
    num_samples = check_positive_int("num_samples", num_samples, minimum=8)
    tol = default_tol(dtype) if tol is None else check_positive_float("tol", tol)
    options = _options(dtype, solver, stiff, rtol, atol, max_steps)
    f = flattened(field.f, unravel)
    n = x_h.shape[0]

    # The side where the cycle exists: α(p) / l1 < 0, α' from a central difference.
    h = 1e-3 * seed_offset
    alpha = [_critical_pair(f, params, u, x_h, p_star + s * h, omega, param)[1].real
             for s in (1.0, -1.0)]
    slope = (alpha[0] - alpha[1]) / (2 * h)
    if not np.isfinite(slope) or slope == 0:
        raise ValueError(f"`hopf_point` at p = {p_star}: the critical pair does not cross "
                         "the imaginary axis transversally (dα/dp = 0)")
    side = -np.sign(l1) * np.sign(slope)
    q1 = p_star + side * seed_offset
    if not lo <= q1 <= hi:
        raise ValueError(f"`p_range` ({lo}, {hi}) must contain the seed p = {q1} (the cycles "
                         f"lie on the side {'above' if side > 0 else 'below'} p* = {p_star}); "
                         "widen it or lower `seed_offset`")
    xe, lam, vec = _critical_pair(f, params, u, x_h, q1, omega, param)
    z2 = -lam.real / (lam.imag * l1)
    if not (np.isfinite(z2) and z2 > 0 and lam.imag > 0):
        raise ValueError(f"`hopf_point`: no small cycle at the seed p = {q1} (critical "
                         f"eigenvalue {lam}); lower `seed_offset`")
    x_seed = jnp.asarray(xe + 2 * np.sqrt(z2) * vec.real, dtype)
    w0 = jnp.concatenate([x_seed, jnp.asarray([2 * np.pi / lam.imag, q1], dtype)])
    kw = dict(tol=tol, min_amplitude=None, param=param, options=options,
              newton_steps=newton_steps, num_samples=num_samples)
    zeros = jnp.zeros(n + 2, dtype)
    shot = _shoot(f, params, u, w0, x_seed, q1, zeros, w0, arclength=False, **kw)

    rows: list[tuple] = []

    def accept(s: _Shot) -> None:
        mult, stable = _multipliers(s.J, n)
        rows.append((s.w, s.residual, s.amplitude, mult, stable))

    def tangent(s: _Shot, previous: np.ndarray) -> np.ndarray:
        top = np.concatenate([s.J[:n], np.concatenate([s.direction, [0.0, 0.0]])[None]])
        A = np.concatenate([top, previous[None]])
        e = np.zeros(n + 2)
        e[-1] = 1.0
        t = np.linalg.solve(A, e)
        return t / np.linalg.norm(t)

    stop = "newton_failed"
    if shot.converged:
        accept(shot)
        start = np.zeros(n + 2)
        start[n + 1] = side  # away from the Hopf point
        t = tangent(shot, start)
        step = ds
        stop = "num_steps"
        for _ in range(num_steps):
            while True:
                w_pred = jnp.asarray(shot.w + step * t, dtype)
                trial = _shoot(f, params, u, w_pred, jnp.asarray(shot.w[:n], dtype),
                               shot.w[n + 1], jnp.asarray(t, dtype), w_pred, arclength=True,
                               **kw)
                if trial.converged:
                    break
                step /= 2
                if step < ds_min:
                    break
            if not trial.converged:
                stop = "newton_failed"
                break
            if not lo <= trial.w[n + 1] <= hi:
                stop = "p_range"
                break
            t = tangent(trial, t)
            shot = trial
            accept(shot)
            step = min(1.25 * step, ds_max)

    cdt = complex_dtype(dtype)
    if rows:
        w = np.stack([r[0] for r in rows])
        residual = np.asarray([r[1] for r in rows])
        amplitude = np.asarray([r[2] for r in rows])
        mult = np.stack([r[3] for r in rows])
        stable = np.asarray([r[4] for r in rows])
    else:
        w = np.zeros((0, n + 2))
        residual = amplitude = np.zeros(0)
        mult = np.zeros((0, n), complex)
        stable = np.zeros(0, bool)
    return CycleBranch(
        p=jnp.asarray(w[:, n + 1], dtype),
        points=restore_state(unravel, jnp.asarray(w[:, :n], dtype)),
        period=jnp.asarray(w[:, n], dtype),
        amplitude=jnp.asarray(amplitude, dtype),
        floquet_multipliers=jnp.asarray(mult.astype(cdt)),
        stable=jnp.asarray(stable),
        residual=jnp.asarray(residual, dtype),
        converged=jnp.ones(len(rows), bool),
        stop_reason=stop,
    )


# --------------------------------------------------------------------------- sections

DIRECTIONS = (1, -1, 0)


def _section_core(F, x0, u, t0, t1, normal, offset, *, direction, max_crossings, solver, rtol,
                  atol, dt0, max_steps):
    """Every step of one solve, then the first crossings, each root-found on the dense
    interpolant of its step by bisection (optimistix)."""
    import diffrax
    import optimistix as optx

    dtype = x0.dtype
    sol = diffrax.diffeqsolve(
        ode_term(F), solver, t0, t1, dt0, x0, args=u,
        saveat=diffrax.SaveAt(steps=True, dense=True),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps, throw=False)
    converged = (sol.result == diffrax.RESULTS.successful) & jnp.all(
        jnp.isfinite(jnp.where(jnp.isfinite(sol.ts)[:, None], sol.ys, 0)))
    ts = jnp.concatenate([t0[None], sol.ts])
    s = jnp.concatenate([x0[None], sol.ys]) @ normal - offset
    a, b = s[:-1], s[1:]
    both = jnp.isfinite(ts[:-1]) & jnp.isfinite(ts[1:]) & jnp.isfinite(a) & jnp.isfinite(b)
    up, down = (a < 0) & (b >= 0), (a > 0) & (b <= 0)
    hit = both & (up if direction == 1 else down if direction == -1 else up | down)
    total = jnp.sum(hit)
    (idx,) = jnp.nonzero(hit, size=max_crossings, fill_value=0)
    valid = jnp.arange(max_crossings) < total

    def root(i, ok):
        # Bisection on sign · s(t), increasing through its root, so that ``flip=False``;
        # a row past the count solves t = midpoint instead (and is then NaN).
        lower, upper = ts[i], ts[i + 1]
        mid = 0.5 * (lower + upper)
        sign = jnp.where(up[i], 1.0, -1.0).astype(dtype)

        def fn(t, _):
            return jnp.where(ok, sign * (sol.evaluate(t) @ normal - offset), t - mid)

        bisection = optx.Bisection(rtol=4 * float(jnp.finfo(dtype).eps), atol=0.0, flip=False)
        found = optx.root_find(fn, bisection, mid, throw=False,
                               options={"lower": lower, "upper": upper}, max_steps=256)
        return found.value

    times = jax.vmap(root)(idx, valid)
    points = jax.vmap(sol.evaluate)(times)
    nan = jnp.asarray(jnp.nan, dtype)
    times = jnp.where(valid, times, nan)
    points = jnp.where(valid[:, None], points, nan)
    return points, times, valid, jnp.minimum(total, max_crossings), total > max_crossings, \
        converged


_run_section = jit_with_params(_section_core)


def poincare_section(
    field: Any,
    x0: Any,
    t1: float,
    *,
    normal: Any,
    offset: float = 0.0,
    params: Any = NO_PARAMS,
    u: Any = None,
    t0: float = 0.0,
    direction: int = 1,
    max_crossings: int = 64,
    solver: Any = None,
    stiff: bool = False,
    rtol: float | None = None,
    atol: float | None = None,
    dt0: float | None = None,
    max_steps: int = 4096,
) -> PoincareSection:
    """The crossings of the trajectory from ``x(t0) = x0`` with ``⟨normal, x⟩ = offset``.

    One diffrax solve over ``[t0, t1]`` (as ``jaxgrad.integrate``) keeps every step; a
    crossing is a sign change of ``s(x) = ⟨normal, x⟩ - offset`` between two step ends,
    and its time is the root of ``s`` on the solver's dense interpolant of that step,
    found by bisection (``optimistix.Bisection``) to the time's rounding. A trajectory
    that crosses and crosses back within one step is not seen: tighten ``rtol``.

    Arguments:
        field: a ``VectorField`` ``F(x, u[, params])``.
        x0: ``(n,)`` the initial state (finite), or an N-D array or a pytree state.
        t1: the final time, ``> t0``.
        normal: ``(n,)`` the hyperplane's normal, non-zero, shaped like ``x0`` (a pytree
            state: the same pytree); ``offset``: its offset.
        params, u, t0, solver, stiff, rtol, atol, dt0, max_steps: as in
            ``jaxgrad.integrate``.
        direction: ``1``: crossings where ``s`` increases (from ``s < 0`` to ``s >= 0``);
            ``-1``: where it decreases; ``0``: both.
        max_crossings: the number of rows ``K`` (the first ``K`` crossings are kept).

    Returns:
        ``PoincareSection``; check ``converged`` (a failed solve keeps the crossings
        before it stopped).

    Raises:
        TypeError: ``field`` is not a ``VectorField``.
        ValueError: naming the argument: ``normal`` zero, non-finite or not shaped like
            ``x0``; ``x0`` not ``(n,)`` or non-finite; ``t1 <= t0``; bad ``direction``.

    Example:
        >>> def hopf(x, u):              # r' = r - r³, θ' = 1: the unit circle, period 2π
        ...     r2 = x @ x
        ...     return jnp.stack([x[0] - x[1] - x[0] * r2, x[0] + x[1] - x[1] * r2])
        >>> sec = poincare_section(jaxgrad.vector_field(hopf), jnp.array([1.0, 0.0]), 20.0,
        ...                        normal=jnp.array([0.0, 1.0]), max_crossings=4)
        >>> int(sec.count), [round(float(t), 2) for t in sec.times[:3]]   # 2π k
        (3, [6.28, 12.57, 18.85])
    """
    check_vector_field(field)
    x0, x0_flat, unravel = check_state("x0", x0)
    if x0_flat.ndim != 1:
        raise ValueError(f"`x0` must have shape (n,) (or be an N-D array or a pytree), got "
                         f"shape {x0_flat.shape}")
    dtype = x0_flat.dtype
    t0 = check_finite_float("t0", t0)
    t1 = check_finite_float("t1", t1)
    if not t1 > t0:
        raise ValueError(f"`t1` must be > t0 = {t0}, got {t1}")
    normal = _check_normal(normal, x0, unravel)
    check_finite("normal", normal)
    if not bool(jnp.any(normal != 0)):
        raise ValueError("`normal` must be non-zero (it defines the hyperplane "
                         "⟨normal, x⟩ = offset), got all zeros")
    offset = check_finite_float("offset", offset)
    if isinstance(direction, bool) or direction not in DIRECTIONS:
        raise ValueError(f"`direction` must be 1, -1 or 0, got {direction!r}")
    max_crossings = check_positive_int("max_crossings", max_crossings)
    u = _check_input(u, dtype)
    check_params_finite(params)
    options = solver_options(dtype, solver=solver, stiff=stiff, rtol=rtol, atol=atol, dt0=dt0,
                             max_steps=max_steps)
    _check_output(field, x0, u, params)
    out = _run_section(flattened(field.f, unravel), params, x0_flat, u, jnp.asarray(t0, dtype),
                       jnp.asarray(t1, dtype), normal.astype(dtype), jnp.asarray(offset, dtype),
                       direction=direction, max_crossings=max_crossings, **options)
    section = PoincareSection(*out)
    return section._replace(points=restore_state(unravel, section.points))


def _check_normal(normal: Any, x0: Any, unravel: Any) -> jax.Array:
    """``normal`` shaped like the state ``x0`` (an array or a pytree), flattened like it."""
    if unravel is None:
        normal = check_array("normal", normal, ndim=1)
        if normal.shape != x0.shape:
            raise ValueError(f"`normal` must have the shape of `x0` {x0.shape}, got "
                             f"{normal.shape}")
        return normal
    shapes = jax.tree_util.tree_map(jnp.shape, x0)
    normal, flat, _ = check_state("normal", normal)
    if (jax.tree_util.tree_structure(normal) != jax.tree_util.tree_structure(x0)
            or jax.tree_util.tree_map(jnp.shape, normal) != shapes):
        raise ValueError(f"`normal` must be shaped like `x0` {shapes}, got "
                         f"{jax.tree_util.tree_map(jnp.shape, normal)}")
    return jnp.reshape(flat, (-1,))
