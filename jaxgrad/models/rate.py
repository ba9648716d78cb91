"""Random rate networks, discrete and continuous (Sompolinsky, Crisanti & Sommers 1988).

Discrete map:   h_t = J tanh(h_{t-1}) + W_in u_t
Continuous:     dh/dt = -h + J tanh(h) + W_in u

with ``J_ij ~ N(0, g²/N)``. The origin is a fixed point of both for ``u = 0``; its
Jacobian is ``J`` (map) and ``J - I`` (flow), so by the circular law it loses stability at
``g = 1`` and for ``g > 1`` the networks are chaotic at large ``N`` (Sompolinsky et al.
1988 for the flow; Engelken, Wolf & Abbott 2020, arXiv:2006.02427, for the map).
The flow is turned into a map by a fixed-step integrator (``rate_flow_step``), which is
what the Lyapunov analyzer takes, or (``method="diffrax"``) by an adaptive diffrax solve
over each step.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._validation import (
    check_array,
    check_choice,
    check_key,
    check_positive_float,
    check_positive_int,
    check_shape,
    is_concrete,
)
from ..flows import IntegrationError, flow_map, solver_options
from ..systems import INTEGRATORS as INTEGRATORS
from ..systems import integrator_step as integrator_step


class RateParams(NamedTuple):
    """Parameters of a rate network: coupling ``J`` (N, N), input weights ``W_in`` (N, M)."""

    J: jax.Array
    W_in: jax.Array


def init_rate(
    key: jax.Array,
    num_units: int,
    *,
    g: float = 1.0,
    num_inputs: int = 0,
    input_std: float = 1.0,
    dtype: Any = jnp.float32,
) -> RateParams:
    """Random rate-network parameters with ``J_ij ~ N(0, g²/N)``, ``W_in ~ N(0, input_std²)``.

    Arguments:
        key: PRNG key (split for ``J`` and ``W_in``).
        num_units: N.
        g: gain; the spectral radius of ``J`` is ≈ g for large N (circular law). May be
            traced, so ``jax.vmap(lambda g: init_rate(key, N, g=g))(gs)`` draws a sweep
            with one shared random matrix scaled by each g.
        num_inputs: M (0 for an autonomous network).
        input_std: standard deviation of the input weights.

    Returns:
        ``RateParams`` with ``J`` (N, N) and ``W_in`` (N, M).

    Example:
        >>> p = init_rate(jax.random.key(0), 200, g=1.5)
        >>> p.J.shape
        (200, 200)
    """
    check_positive_int("num_units", num_units)
    check_positive_int("num_inputs", num_inputs, minimum=0)
    if is_concrete(g):  # a traced g (vmap over a gain sweep) is taken as it is
        check_positive_float("g", g, allow_zero=True)
    check_positive_float("input_std", input_std, allow_zero=True)
    check_key("key", key)
    k_rec, k_in = jax.random.split(key)
    J = (g / jnp.sqrt(num_units)) * jax.random.normal(k_rec, (num_units, num_units), dtype)
    W_in = input_std * jax.random.normal(k_in, (num_units, num_inputs), dtype)
    return RateParams(J.astype(dtype), W_in.astype(dtype))


def rate_step(h: jax.Array, u: jax.Array, params: RateParams) -> jax.Array:
    """One step of the discrete rate network ``h ← J tanh(h) + W_in u``.

    Arguments:
        h: state (N,).
        u: input (M,) (``(0,)`` for an autonomous network).
        params: ``RateParams``.

    Its Jacobian is ``J diag(1 - tanh²(h))``; at ``h = 0`` it is ``J``.

    Raises:
        TypeError, ValueError: at trace time, when ``params`` is not a ``RateParams`` or
            a shape does not match ``J`` and ``W_in`` (nothing is broadcast).
    """
    _check_rate_args(h, u, params)
    return params.J @ jnp.tanh(h) + params.W_in @ u


def _check_rate_args(h: Any, u: Any, params: Any) -> None:
    """Shapes of one rate-network step (trace-time: only shapes and dtypes are read)."""
    check_array("h", h)
    check_array("u", u)
    if not all(hasattr(params, f) for f in RateParams._fields):
        raise TypeError(f"`params` must be a RateParams(J, W_in), got {type(params).__name__}")
    J, W_in = jnp.shape(params.J), jnp.shape(params.W_in)
    if len(J) != 2 or J[0] != J[1]:
        raise ValueError(f"`params.J` must be square (N, N), got shape {J}")
    if len(W_in) != 2 or W_in[0] != J[0]:
        raise ValueError(
            f"`params.W_in` must have shape ({J[0]}, M) to match `params.J` {J}, got {W_in}"
        )
    check_shape("h", h, (J[0],), f" (one example) to match `params.J` {J}")
    check_shape("u", u, (W_in[1],), f" (one example) to match `params.W_in` {W_in}")


def rate_vector_field(h: jax.Array, u: jax.Array, params: RateParams) -> jax.Array:
    """``dh/dt = -h + J tanh(h) + W_in u`` (Sompolinsky, Crisanti & Sommers 1988)."""
    _check_rate_args(h, u, params)
    return -h + params.J @ jnp.tanh(h) + params.W_in @ u


def rate_flow_step(
    h: jax.Array,
    u: jax.Array,
    params: RateParams,
    *,
    dt: float = 0.1,
    method: str = "rk4",
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 4096,
) -> jax.Array:
    """One integrator step ``h(t) -> h(t + dt)`` of the continuous rate network, usable as
    a map.

    ``method="euler"`` or ``"rk4"``: one fixed step (``jaxgrad.systems.integrator_step``).
    ``"diffrax"``: the flow itself solved over ``dt`` by an adaptive solver (Tsit5 with a
    PID controller, as ``jaxgrad.integrate``) to ``rtol``/``atol``, ``u`` held over the
    step. It is differentiated through the solve in forward and reverse mode
    (``diffrax.DirectAdjoint``), so the Lyapunov analyzer's Jacobians are those of the
    flow's time-``dt`` map.

    Arguments:
        h: state (N,); u: input (M,) (``(0,)`` for an autonomous network).
        params: ``RateParams``.
        dt: the step (the time between states).
        method: ``"euler"``, ``"rk4"`` or ``"diffrax"``.
        rtol, atol, max_steps: with ``method="diffrax"``, the tolerances (default by dtype,
            as ``jaxgrad.integrate``: ``1e-8, 1e-10`` in float64) and the most solver steps.

    Returns:
        ``h(t + dt)`` (N,).

    Raises:
        jaxgrad.flows.IntegrationError: with ``method="diffrax"``, when the solve failed (run
            eagerly; under ``jax.jit`` or a scan the state is NaN instead).

    Example:
        >>> from functools import partial
        >>> p = init_rate(jax.random.key(0), 16, g=2.0)
        >>> step = partial(rate_flow_step, dt=0.1)      # step(h, u, params)
        >>> res = jaxgrad.lyapunov_spectrum(step, jnp.ones(16), num_steps=500, params=p,
        ...                                 dt=0.1, num_exponents=2)
        >>> res.exponents.shape                          # per unit time (dt = 0.1)
        (2,)
        >>> h = rate_flow_step(jnp.ones(16), jnp.zeros(0), p, dt=0.1, method="diffrax")
        >>> bool(jnp.allclose(h, rate_flow_step(jnp.ones(16), jnp.zeros(0), p, dt=0.1),
        ...                   atol=1e-5))
        True
    """
    check_positive_float("dt", dt)
    check_choice("method", method, (*INTEGRATORS, "diffrax"))
    if method != "diffrax":
        return integrator_step(rate_vector_field, h, u, params, dt=dt, method=method)
    h = check_array("h", h)
    u = check_array("u", u)
    _check_rate_args(h, u, params)
    options = solver_options(h.dtype, rtol=rtol, atol=atol, max_steps=max_steps)
    h_next, ok, finite = _diffrax_step(h, u, params, jnp.asarray(dt, h.dtype),
                                       rtol=options["rtol"], atol=options["atol"],
                                       max_steps=options["max_steps"])
    if is_concrete(ok) and not bool(ok):
        cause = "non_finite" if not bool(finite) else "max_steps_reached"
        why = ("the state or the vector field became non-finite (NaN or inf)"
               if cause == "non_finite" else f"max_steps={max_steps} reached")
        raise IntegrationError(f"integration failed ({cause}): the diffrax solve of the "
                               f"step (t = 0 to {dt:.6g}) stopped: {why}", cause)
    return h_next


@functools.partial(jax.jit, static_argnames=("rtol", "atol", "max_steps"))
def _diffrax_step(h, u, params, dt, *, rtol, atol, max_steps):
    """``(h(dt), converged, finite)`` by Tsit5 through ``flow_map``, jitted once per
    tolerance (``dt`` and ``params`` traced), differentiable in both modes."""
    import diffrax

    options = solver_options(h.dtype, rtol=rtol, atol=atol, max_steps=max_steps)
    return flow_map(lambda x, v: rate_vector_field(x, v, params), h, u, dt, options,
                    adjoint=diffrax.DirectAdjoint())
