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

from .._validation import check_array, check_choice, check_positive_float
from ..systems import INTEGRATORS, integrator_step
from .activations import get_activation
from .core import unroll


class DoyaParams(NamedTuple):
    """``w`` (self-weight), ``b`` (bias), ``w_in`` (input weight w'); scalars or any shape."""

    w: jax.Array
    b: jax.Array
    w_in: jax.Array = 0.0


def doya_vector_field(
    x: jax.Array, u: jax.Array, params: DoyaParams, *, activation: str = "sigmoid"
) -> jax.Array:
    """``dx/dt = -x + σ(w x + b) + w' u``."""
    if not all(hasattr(params, a) for a in DoyaParams._fields):
        raise TypeError(f"`params` must be a DoyaParams, got {type(params).__name__}")
    x = check_array("x", x)
    sigma = get_activation(activation)
    return -x + sigma(params.w * x + params.b) + params.w_in * u


def doya_step(
    x: jax.Array,
    u: jax.Array,
    params: DoyaParams,
    *,
    eps: float = 0.1,
    activation: str = "sigmoid",
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
    activation: str = "sigmoid",
) -> jax.Array:
    """Integrate the continuous-time neuron with a fixed step under ``lax.scan``.

    Arguments:
        params: ``DoyaParams``.
        x0: initial state (any shape broadcasting with the parameters).
        inputs: ``u`` held constant over each step, leading axis = number of steps.
        dt: step size.
        method: ``"euler"`` (identical to ``doya_step`` with ``eps = dt``) or ``"rk4"``.

    Returns:
        States at times ``dt, 2 dt, ..., T dt``, stacked on a leading axis.
    """
    check_positive_float("dt", dt)
    check_choice("method", method, INTEGRATORS)
    inputs = check_array("inputs", inputs)
    if inputs.ndim == 0 or inputs.shape[0] == 0:
        raise ValueError(f"`inputs` must have a non-empty leading time axis, got {inputs.shape}")

    field = functools.partial(doya_vector_field, activation=activation)

    def step(x, u):
        return integrator_step(field, x, u, params, dt=dt, method=method)

    return unroll(step, jnp.asarray(x0, inputs.dtype), inputs)


def doya_stable_branch_b(x: jax.Array, w: float = 5.0) -> jax.Array:
    """The ``b`` at which ``x`` is a fixed point (u = 0): ``b = ln(x/(1-x)) - w x``."""
    x = check_array("x", x)
    return jnp.log(x / (1.0 - x)) - w * x


def doya_fixed_point_sensitivity(x: jax.Array, w: float = 5.0) -> jax.Array:
    """Closed form ``∂x*/∂b = (1/(x(1-x)) - w)^{-1}`` at a fixed point ``x*``
    (Wikipedia, "Vanishing gradient problem", § Dynamical systems model)."""
    x = check_array("x", x)
    return 1.0 / (1.0 / (x * (1.0 - x)) - w)


