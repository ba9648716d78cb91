"""Continuous-time flows ``dx/dt = F(x, u, params)`` solved by an adaptive diffrax solver.

``integrate`` takes a ``VectorField`` (``jaxgrad.systems.vector_field(F)``) and returns its
solution at chosen times, solved by an embedded Runge–Kutta pair with a PID step-size
controller (Kidger 2021, "On Neural Differential Equations", arXiv:2202.02435; diffrax):
Tsit5 (Tsitouras 2011) by default, the L-stable ESDIRK Kvaerno5 (Kværnø 2004) with
``stiff=True``. A step is accepted when its local error estimate ``e`` satisfies
``‖e / (atol + rtol |x|)‖_rms ≤ 1``; ``converged`` is true only when diffrax reports
success and every saved state is finite, and with ``throw=True`` a failure raises
``IntegrationError`` naming its cause.

The fixed-step integrators of ``jaxgrad.systems.discretize`` stay the library's maps (the
papers' discrete networks are fixed-step Euler maps); this module is for the flow itself.

Default tolerances depend on the state's dtype (``default_tolerances``): float64 states get
``rtol = 1e-8, atol = 1e-10``, float32 states ``rtol = 1e-5, atol = 1e-6`` (a float32 step
cannot meet a relative tolerance much below its rounding, ``ε ≈ 1.2e-7``). The implicit
solvers of ``stiff=True`` solve a Newton system to the same tolerances, which in float32
needs looser ones still: ``rtol = 1e-3`` by default (a stiff linear flow with rates -1 and
-1e4 converges in 16 steps at 1e-3 and runs out of 4096 steps at 1e-4); use float64 for
tight stiff solves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._validation import (
    check_array,
    check_finite,
    check_finite_float,
    check_positive_float,
    check_positive_int,
    is_concrete,
)
from .systems import (
    NO_PARAMS,
    VectorField,
    check_params_finite,
    check_state_like,
    float_state,
    jit_with_params,
)

__all__ = ["integrate", "FlowSolution", "IntegrationError", "default_tolerances"]


class FlowSolution(NamedTuple):
    """Result of ``integrate``; ``S`` saved times.

    Attributes:
        ts: ``(S,)`` the saved times: ``save_at`` (a time the solver did not reach is
            ``inf``), or without it ``[t1]`` (if the solve failed: the last time reached).
        states: the states at ``ts``: the pytree of ``x0`` with a leading axis ``S`` on every
            leaf (``states[-1]`` is the state at ``t1`` without ``save_at``).
        converged: ``()`` True only when diffrax reported success (``t1`` reached within
            ``max_steps``, every step's local error estimate within ``rtol``/``atol``) and
            every saved state is finite. The tolerances bound each step's local error, not
            the global one, which on a chaotic flow grows like ``e^{λ_1 t}``.
        num_accepted_steps: ``()`` steps the controller accepted.
        num_rejected_steps: ``()`` steps it rejected (a step size collapsing to rounding,
            many rejected steps, says stiffness or a blow-up).
    """

    ts: jax.Array
    states: Any
    converged: jax.Array
    num_accepted_steps: jax.Array
    num_rejected_steps: jax.Array


class IntegrationError(RuntimeError):
    """``integrate`` (``throw=True``) did not reach ``t1`` with finite states.

    Attributes:
        cause: ``"max_steps_reached"``, ``"non_finite"`` (a state or the vector field at it
            was NaN or ±inf: the solution blew up, or the field has NaN parameters),
            ``"dt_min_reached"`` or the name of another diffrax result.
        solution: the ``FlowSolution`` (``converged`` False; see its ``ts``); ``None``
            when raised by ``doya_integrate(method="diffrax")``.
    """

    def __init__(self, message: str, cause: str, solution: FlowSolution | None = None):
        super().__init__(message)
        self.cause = cause
        self.solution = solution


_TOLERANCES = {np.dtype(np.float64): (1e-8, 1e-10)}
_FLOAT32_TOLERANCES = (1e-5, 1e-6)
_FLOAT32_STIFF_TOLERANCES = (1e-3, 1e-6)


def default_tolerances(dtype: Any, *, stiff: bool = False) -> tuple[float, float]:
    """``(rtol, atol)`` for states of ``dtype``: float64 ``(1e-8, 1e-10)``; float32
    ``(1e-5, 1e-6)``, or ``(1e-3, 1e-6)`` for the implicit solver of ``stiff=True``.

    In float32 the Newton iterations of an implicit step were seen to stall (steps rejected
    until ``max_steps``) at a relative tolerance of 1e-4 when the step's Jacobian
    ``I - γ h ∂F/∂x`` is ill-conditioned (``h |λ| ≫ 1``, the point of a stiff solver), so
    they are held to 1e-3.

    Example:
        >>> default_tolerances(jnp.float32), default_tolerances(jnp.float32, stiff=True)
        ((1e-05, 1e-06), (0.001, 1e-06))
    """
    if np.dtype(dtype) in _TOLERANCES:
        return _TOLERANCES[np.dtype(dtype)]
    return _FLOAT32_STIFF_TOLERANCES if stiff else _FLOAT32_TOLERANCES


def state_dtype(x0: Any) -> np.dtype:
    """The widest floating dtype among the leaves of ``x0`` (the dtype of time)."""
    dtypes = [np.dtype(jnp.asarray(leaf).dtype) for leaf in jax.tree_util.tree_leaves(x0)]
    return max(dtypes, key=lambda d: d.itemsize)


def solver_options(
    dtype: Any,
    *,
    solver: Any = None,
    stiff: bool = False,
    rtol: float | None = None,
    atol: float | None = None,
    dt0: float | None = None,
    max_steps: int = 4096,
) -> dict:
    """Check the solver options of a flow; return them as hashable ``_solve`` options.

    Raises ``TypeError``/``ValueError`` naming the option: ``solver`` not an adaptive
    diffrax solver, or given with ``stiff=True``; ``rtol``/``atol``/``dt0`` not positive
    and finite, or ``rtol`` below the dtype's resolution ``ε``; ``max_steps < 1``.
    """
    import diffrax

    if not isinstance(stiff, bool):
        raise TypeError(f"`stiff` must be a bool, got {type(stiff).__name__}")
    if solver is None:
        solver = diffrax.Kvaerno5() if stiff else diffrax.Tsit5()
    else:
        if stiff:
            raise ValueError("give `solver` or `stiff=True`, not both")
        if not isinstance(solver, diffrax.AbstractAdaptiveSolver):
            raise TypeError(
                "`solver` must be an adaptive diffrax solver (one with an error estimate, "
                f"such as diffrax.Tsit5() or diffrax.Kvaerno5()), got {type(solver).__name__}"
            )
    implicit = stiff or isinstance(solver, diffrax.AbstractImplicitSolver)
    default_rtol, default_atol = default_tolerances(dtype, stiff=implicit)
    rtol = default_rtol if rtol is None else check_positive_float("rtol", rtol)
    atol = default_atol if atol is None else check_positive_float("atol", atol)
    eps = float(np.finfo(dtype).eps)
    if rtol < eps:
        raise ValueError(
            f"`rtol`={rtol} is below the resolution of {np.dtype(dtype).name} "
            f"(ε = {eps:.2g}): no step can meet it; loosen it or use float64"
        )
    if dt0 is not None:
        dt0 = check_positive_float("dt0", dt0)
    max_steps = check_positive_int("max_steps", max_steps)
    return dict(solver=solver, rtol=rtol, atol=atol, dt0=dt0, max_steps=max_steps)


def ode_term(F: Callable) -> Any:
    """``diffrax.ODETerm`` of ``dx/dt = F(x, u)`` (``u`` passed as diffrax's ``args``), its
    output cast to the state's dtype."""
    import diffrax

    def field(t, y, args):
        del t
        out = F(y, args)
        return jax.tree_util.tree_map(lambda o, yi: jnp.asarray(o, yi.dtype), out, y)

    return diffrax.ODETerm(field)


def _solve(F: Callable, x0: Any, u: Any, t0: Any, t1: Any, ts: Any, *, solver: Any,
           rtol: float, atol: float, dt0: float | None, max_steps: int,
           adjoint: Any = None) -> tuple:
    """Solve ``dx/dt = F(x, u)`` from ``(t0, x0)`` to ``t1``; traceable, no validation.

    Returns ``(ts, states, converged, accepted, rejected, result, t_end, end_finite)``:
    the states at ``ts`` (or at ``[t1]`` for ``ts=None``), diffrax's ``result``, the last
    time reached and whether the state there and the field at it are finite. ``adjoint``:
    how diffrax differentiates the solve (default its ``RecursiveCheckpointAdjoint``,
    reverse mode only); ``diffrax.ForwardMode()`` for ``jax.jvp``/``jax.jacfwd`` through
    the solve, ``diffrax.DirectAdjoint()`` for both modes.
    """
    import diffrax

    # Two saves with their own counters: the times asked for (inf where not reached) and
    # the end of the solve (t1, or the last time reached when it stopped early).
    if ts is None:
        saveat = diffrax.SaveAt(t1=True)
    else:
        saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=ts), diffrax.SubSaveAt(t1=True)])
    sol = diffrax.diffeqsolve(
        ode_term(F), solver, t0, t1, dt0, x0, args=u, saveat=saveat,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps, throw=False,
        **({} if adjoint is None else {"adjoint": adjoint}),
    )
    if ts is None:
        saved_ts, states = sol.ts, sol.ys
        end_ts, end = sol.ts, sol.ys
    else:
        (saved_ts, end_ts), (states, end) = sol.ts, sol.ys
    x_end = jax.tree_util.tree_map(lambda a: a[-1], end)

    def all_finite(tree):
        leaves = jax.tree_util.tree_leaves(tree)
        return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves]))

    end_finite = all_finite(x_end) & all_finite(F(x_end, u))
    success = sol.result == diffrax.RESULTS.successful
    converged = success & all_finite(states) & end_finite
    return (saved_ts, states, converged, sol.stats["num_accepted_steps"],
            sol.stats["num_rejected_steps"], sol.result, end_ts[-1], end_finite)


def flow_map(
    F: Callable, x: Any, u: Any, dt: Any, options: dict, *, adjoint: Any = None
) -> tuple[Any, jax.Array, jax.Array]:
    """``(x(dt), converged, finite)`` of ``dx/dt = F(x, u)`` from ``x(0) = x``; traceable.

    ``options`` from ``solver_options`` (with ``adjoint=diffrax.ForwardMode()`` added for
    ``jax.jacfwd`` through it). A state that did not converge is NaN, so a
    failure is never mistaken for an answer; ``finite`` is False when the solve met a
    non-finite state or vector field (else a failure is ``max_steps`` reached: the only
    other way a PID-controlled solve stops). ``adjoint``: as in ``_solve``
    (``diffrax.DirectAdjoint()`` where forward-mode derivatives, ``jax.jvp`` or
    ``jax.linearize``, are taken through the step).
    """
    dtype = state_dtype(x)
    zero = jnp.zeros((), dtype)
    if adjoint is not None:
        options = {**options, "adjoint": adjoint}
    out = _solve(F, x, u, zero, jnp.asarray(dt, dtype), None, **options)
    states, ok, end_finite = out[1], out[2], out[7]
    nan = jnp.asarray(jnp.nan, dtype)
    x_next = jax.tree_util.tree_map(lambda a: jnp.where(ok, a[-1], nan.astype(a.dtype)), states)
    leaves = jax.tree_util.tree_leaves(states)
    finite = end_finite & jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves]))
    return x_next, ok, finite


def trajectory(
    F: Callable, x: Any, u: Any, ts: Any, options: dict
) -> tuple[Any, jax.Array]:
    """``(states, converged)``: ``dx/dt = F(x, u)`` from ``x(0) = x`` at the times ``ts``
    (``(S,)``, increasing, ``ts[-1] > 0``); traceable. ``options`` as in ``flow_map``;
    states that did not converge are NaN."""
    dtype = state_dtype(x)
    ts = jnp.asarray(ts, dtype)
    out = _solve(F, x, u, jnp.zeros((), dtype), ts[-1], ts, **options)
    states, ok = out[1], out[2]
    nan = jnp.asarray(jnp.nan, dtype)
    return jax.tree_util.tree_map(lambda a: jnp.where(ok, a, nan.astype(a.dtype)), states), ok


def check_vector_field(field: Any) -> None:
    """Raise ``TypeError`` unless ``field`` is a ``VectorField`` (a step is not a flow)."""
    if not isinstance(field, VectorField):
        kind = "a step (a map x_t -> x_t+1)" if callable(field) else type(field).__name__
        raise TypeError(
            f"`field` must be a VectorField (wrap F(x, u[, params]) with "
            f"jaxgrad.vector_field); got {kind}: a step is not a flow"
        )


def _checked(F: Callable, x0: Any) -> Callable:
    """``F`` with its output checked (at trace time) against the structure of ``x0``."""

    def checked(x, u):
        out = F(x, u)
        check_state_like(out, x0, what="`field` must return dx/dt")
        return out

    return checked


def _integrate_core(F, x0, u, t0, t1, ts, **options):
    return _solve(_checked(F, x0), x0, u, t0, t1, ts, **options)


_run = jit_with_params(_integrate_core)


def _check_time(name: str, value: Any) -> Any:
    if is_concrete(value):
        return check_finite_float(name, value)
    if jnp.ndim(value) != 0:
        raise ValueError(f"`{name}` must be a scalar, got shape {jnp.shape(value)}")
    return value


def _check_save_at(save_at: Any, t0: Any, t1: Any, dtype: Any) -> jax.Array | None:
    if save_at is None:
        return None
    ts = check_array("save_at", save_at, ndim=1)
    if ts.shape[0] == 0:
        raise ValueError("`save_at` must hold at least one time, got shape (0,)")
    if is_concrete(ts):
        check_finite("save_at", ts)
        values = np.asarray(ts, np.float64)
        if np.any(np.diff(values) <= 0):
            raise ValueError(f"`save_at` must be strictly increasing, got {values}")
        if is_concrete(t0) and is_concrete(t1) and (values[0] < t0 or values[-1] > t1):
            raise ValueError(
                f"`save_at` must lie in [t0, t1] = [{t0}, {t1}], got times from "
                f"{values[0]} to {values[-1]}"
            )
    return ts.astype(dtype)


def _failure(sol: FlowSolution, result: Any, t_end: Any, end_finite: Any, t0: Any, t1: Any,
             max_steps: int) -> IntegrationError:
    """The ``IntegrationError`` that says why ``sol`` did not converge."""
    import diffrax

    accepted, rejected = int(sol.num_accepted_steps), int(sol.num_rejected_steps)
    where = (f"at t = {float(t_end):.6g} of [{float(t0):.6g}, {float(t1):.6g}] after "
             f"{accepted} accepted and {rejected} rejected steps")
    if not bool(end_finite):
        cause = "non_finite"
        message = (f"the state or the vector field became non-finite (NaN or inf) {where}: the "
                   "solution blows up, or `x0`/`params` give a non-finite dx/dt")
    elif bool(result == diffrax.RESULTS.max_steps_reached):
        cause = "max_steps_reached"
        hint = ("the step size collapsed (mostly rejected steps): a finite-time blow-up or a "
                "stiff problem; try stiff=True" if rejected > accepted else
                "increase `max_steps`, or try stiff=True if the problem is stiff")
        message = f"max_steps={max_steps} reached {where}; {hint}"
    elif bool(result == diffrax.RESULTS.successful):
        cause = "non_finite"
        message = f"a saved state is non-finite (NaN or inf), integrating {where}"
    else:
        names = [n for n in ("dt_min_reached", "event_occurred", "max_steps_rejected",
                             "internal_error", "nonlinear_max_steps_reached",
                             "nonlinear_divergence", "singular", "breakdown")
                 if hasattr(diffrax.RESULTS, n) and bool(result == getattr(diffrax.RESULTS, n))]
        cause = names[0] if names else "failed"
        message = f"diffrax stopped {where}: {diffrax.RESULTS[result]}"
    return IntegrationError(f"integration failed ({cause}): {message}", cause, sol)


def integrate(
    field: VectorField,
    x0: Any,
    t1: float,
    *,
    u: Any = None,
    params: Any = NO_PARAMS,
    t0: float = 0.0,
    save_at: Any = None,
    solver: Any = None,
    stiff: bool = False,
    rtol: float | None = None,
    atol: float | None = None,
    dt0: float | None = None,
    max_steps: int = 4096,
    throw: bool = True,
) -> FlowSolution:
    """Solve the flow ``dx/dt = F(x, u, params)`` from ``x(t0) = x0`` to ``t1`` with diffrax.

    An adaptive embedded Runge–Kutta solver with a PID step-size controller: a step is
    accepted when ``‖e / (atol + rtol |x|)‖_rms ≤ 1`` for its local error estimate ``e``.
    ``x0`` may be any pytree; ``u`` is held constant over ``[t0, t1]``. Jitted once per
    ``F`` and solver options; ``x0``, ``u``, ``params``, ``t0``, ``t1`` and ``save_at`` are
    traced (``jax.vmap`` over them batches solves, ``jax.grad`` differentiates through them).

    Arguments:
        field: a ``VectorField`` (``jaxgrad.systems.vector_field(F)``, ``F(x, u[, params])``);
            a step (a map ``x_t -> x_{t+1}``) is refused: a step is not a flow.
        x0: the initial state, a pytree of finite float arrays.
        t1: the final time, finite and ``> t0``.
        u: the input held over the flow (default: a ``(0,)`` array, no input).
        params: passed to ``F`` as ``F(x, u, params)`` (default ``NO_PARAMS``: ``F(x, u)``).
        t0: the initial time.
        save_at: ``(S,)`` strictly increasing times in ``[t0, t1]`` at which to return the
            state; default: ``t1`` only.
        solver: a diffrax adaptive solver (default ``diffrax.Tsit5()``, or
            ``diffrax.Kvaerno5()`` with ``stiff=True``).
        stiff: use the implicit Kvaerno5 (L-stable), for stiff flows.
        rtol, atol: the tolerances (default: ``1e-8, 1e-10`` for float64 states, ``1e-5,
            1e-6`` for float32). Float32 with a stiff (implicit) solver needs looser ones:
            its Newton iterations solve to the same tolerances and stall at float32
            rounding, so its default is ``rtol = 1e-3`` and ``1e-4`` can already fail; use
            float64 for tight stiff solves.
        dt0: the first step (default: chosen by the controller).
        max_steps: the most steps (accepted and rejected) before giving up, ``>= 1``.
        throw: raise ``IntegrationError`` when the solve failed. Only possible when
            ``integrate`` runs eagerly; under ``jax.jit``/``jax.vmap`` (or with
            ``throw=False``) check ``converged``.

    Returns:
        ``FlowSolution(ts, states, converged, num_accepted_steps, num_rejected_steps)``.

    Raises:
        IntegrationError: with ``throw=True``, naming the cause (``max_steps`` reached, a
            non-finite state or vector field, ...).
        TypeError: ``field`` is not a ``VectorField``, or ``solver`` not an adaptive solver.
        ValueError: naming the argument: ``t1 <= t0`` or non-finite, ``save_at`` not
            strictly increasing or outside ``[t0, t1]``, ``x0``/``u``/``params``
            non-finite, ``max_steps < 1``, bad tolerances.

    Example:
        >>> field = jaxgrad.vector_field(lambda x, u: -x)          # dx/dt = -x
        >>> sol = integrate(field, jnp.array([1.0, 2.0]), 1.0, save_at=jnp.array([0.5, 1.0]))
        >>> np.round(np.asarray(sol.states), 4), bool(sol.converged)   # e^{-t} x0
        (array([[0.6065, 1.2131],
               [0.3679, 0.7358]], dtype=float32), True)
        >>> doya = jaxgrad.vector_field(jaxgrad.models.doya_vector_field)
        >>> sol = integrate(doya, jnp.array([0.9]), 50.0, u=jnp.zeros(1),
        ...                 params=jaxgrad.DoyaParams(5.0, -2.5))
        >>> round(float(sol.states[-1, 0]), 3)                   # the upper fixed point
        0.855
    """
    check_vector_field(field)
    x0 = float_state(x0)
    dtype = state_dtype(x0)
    t0 = _check_time("t0", t0)
    t1 = _check_time("t1", t1)
    if is_concrete(t0) and is_concrete(t1) and not t1 > t0:
        raise ValueError(f"`t1` must be > t0 = {t0}, got {t1}")
    ts = _check_save_at(save_at, t0, t1, dtype)
    if u is None:
        u = jnp.zeros((0,), dtype)
    else:
        u = jax.tree_util.tree_map(lambda leaf: check_array("u", leaf), u)
        check_finite("u", u)
    check_params_finite(params)
    options = solver_options(dtype, solver=solver, stiff=stiff, rtol=rtol, atol=atol, dt0=dt0,
                             max_steps=max_steps)
    out = _run(field.f, params, x0, u, jnp.asarray(t0, dtype), jnp.asarray(t1, dtype), ts,
               **options)
    ts_out, states, converged, accepted, rejected, result, t_end, end_finite = out
    sol = FlowSolution(ts_out, states, converged, accepted, rejected)
    if throw and is_concrete(converged) and not bool(converged):
        raise _failure(sol, result, t_end, end_finite, t0, t1, options["max_steps"])
    return sol
