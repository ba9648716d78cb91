"""Doya's one-neuron recurrent network (Doya 1992; Wikipedia, "Vanishing gradient problem",
§ Dynamical systems model).

Discrete map:   x_{t+1} = (1 - ε) x_t + ε σ(w x_t + b) + ε w' u_t
Continuous:     dx/dt = -x + σ(w x + b) + w' u

The discrete map is the explicit Euler step of the flow with ``dt = ε``. With
``w = 5`` and ``u = 0`` the flow is bistable for ``b`` between its two fold points, and at
``b = -2.5`` its fixed points are ``x ≈ 0.145, 0.5, 0.855``
(Wikipedia, "Vanishing gradient problem", note 4).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._validation import check_array, check_choice, check_positive_float, is_concrete
from ..flows import IntegrationError, flow_map, solver_options
from ..systems import INTEGRATORS, integrator_step
from .activations import ActivationLike, get_activation
from .core import unroll


class DoyaParams(NamedTuple):
    """``w`` (self-weight), ``b`` (bias), ``w_in`` (input weight w'); scalars or any shape."""

    w: jax.Array
    b: jax.Array
    w_in: jax.Array = 0.0


def doya_vector_field(
    x: jax.Array, u: jax.Array, params: DoyaParams, *, activation: ActivationLike = "sigmoid"
) -> jax.Array:
    """``dx/dt = -x + σ(w x + b) + w' u``.

    ``activation`` is a name in ``ACTIVATIONS``, an ``Activation`` or an elementwise callable.

    An empty ``u`` (shape ``(0,)``, what the analyzers pass to an autonomous system) means no
    input; any other ``u`` must broadcast to the state's shape without changing it (a ``u``
    that would, such as ``(0,)`` against ``x`` of shape ``(1,)`` under NumPy's rules, which
    silently gives an empty state, is an error naming ``u``).
    """
    if not all(hasattr(params, a) for a in DoyaParams._fields):
        raise TypeError(f"`params` must be a DoyaParams, got {type(params).__name__}")
    x = check_array("x", x)
    sigma = get_activation(activation)
    dx = -x + sigma(params.w * x + params.b)
    u = jnp.asarray(u)
    if u.size == 0:
        return dx
    drive = params.w_in * u
    if jnp.broadcast_shapes(jnp.shape(dx), jnp.shape(drive)) != jnp.shape(dx):
        raise ValueError(f"`u` of shape {u.shape} does not broadcast to the state's shape "
                         f"{jnp.shape(dx)}")
    return dx + drive


def doya_step(
    x: jax.Array,
    u: jax.Array,
    params: DoyaParams,
    *,
    eps: float = 0.1,
    activation: ActivationLike = "sigmoid",
) -> jax.Array:
    """One step of the discrete map ``x ← (1-ε) x + ε σ(w x + b) + ε w' u``."""
    if isinstance(eps, (int, float)):
        check_positive_float("eps", eps)
    return x + eps * doya_vector_field(x, u, params, activation=activation)


def doya_integrate(
    params: DoyaParams,
    x0: jax.Array,
    inputs: jax.Array,
    *,
    dt: float = 0.1,
    method: str = "rk4",
    activation: ActivationLike = "sigmoid",
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 4096,
) -> jax.Array:
    """Integrate the continuous-time neuron under ``lax.scan``, ``u`` held over each ``dt``.

    The papers' discrete maps are the fixed-step methods (``"euler"`` is Doya's map);
    ``"diffrax"`` solves the flow itself over each ``dt`` with an adaptive solver (Tsit5,
    as ``jaxgrad.integrate``).

    Arguments:
        params: ``DoyaParams``.
        x0: initial state (any shape broadcasting with the parameters).
        inputs: ``u`` held constant over each step, leading axis = number of steps.
        dt: step size (the time between saved states).
        method: ``"euler"`` (identical to ``doya_step`` with ``eps = dt``), ``"rk4"``, or
            ``"diffrax"`` (adaptive, to ``rtol``/``atol``).
        rtol, atol, max_steps: tolerances and the step limit of each ``dt`` with
            ``method="diffrax"`` (defaults as ``jaxgrad.integrate``: by dtype).

    Returns:
        States at times ``dt, 2 dt, ..., T dt``, stacked on a leading axis.

    Raises:
        jaxgrad.flows.IntegrationError: with ``method="diffrax"``, when a solve failed (run
            eagerly; under ``jax.jit`` the states from the failed step on are NaN).

    Example:
        >>> p = DoyaParams(5.0, -2.5)
        >>> xs = doya_integrate(p, 0.9, jnp.zeros(100), dt=0.5, method="diffrax")
        >>> round(float(xs[-1]), 3)                    # the upper fixed point
        0.855
    """
    check_positive_float("dt", dt)
    check_choice("method", method, (*INTEGRATORS, "diffrax"))
    inputs = check_array("inputs", inputs)
    if inputs.ndim == 0 or inputs.shape[0] == 0:
        raise ValueError(f"`inputs` must have a non-empty leading time axis, got {inputs.shape}")

    field = functools.partial(doya_vector_field, activation=activation)
    x0 = jnp.asarray(x0, inputs.dtype)
    if method != "diffrax":

        def step(x, u):
            return integrator_step(field, x, u, params, dt=dt, method=method)

        return unroll(step, x0, inputs)

    options = solver_options(x0.dtype, rtol=rtol, atol=atol, max_steps=max_steps)

    def flow(x, u):
        x_next, ok, finite = flow_map(lambda y, v: field(y, v, params), x, u, dt, options)
        return x_next, (x_next, ok, finite)

    _, (xs, ok, finite) = jax.lax.scan(flow, x0, inputs)
    if is_concrete(ok) and not bool(jnp.all(ok)):
        bad = int(jnp.argmin(ok))
        cause = "max_steps_reached" if bool(finite[bad]) else "non_finite"
        why = (f"max_steps={max_steps} reached" if cause == "max_steps_reached" else
               "the state or the vector field became non-finite (NaN or inf)")
        raise IntegrationError(
            f"integration failed ({cause}): the diffrax solve of step {bad} (t = "
            f"{bad * dt:.6g} to {(bad + 1) * dt:.6g}) stopped: {why}", cause,
        )
    return xs


def doya_stable_branch_b(x: jax.Array, w: float = 5.0) -> jax.Array:
    """The ``b`` at which ``x`` is a fixed point (u = 0): ``b = ln(x/(1-x)) - w x``."""
    x = check_array("x", x)
    return jnp.log(x / (1.0 - x)) - w * x


def doya_fixed_point_sensitivity(x: jax.Array, w: float = 5.0) -> jax.Array:
    """Closed form ``∂x*/∂b = (1/(x(1-x)) - w)^{-1}`` at a fixed point ``x*``
    (Wikipedia, "Vanishing gradient problem", § Dynamical systems model)."""
    x = check_array("x", x)
    return 1.0 / (1.0 / (x * (1.0 - x)) - w)


