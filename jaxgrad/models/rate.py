"""Random rate networks, discrete and continuous (Sompolinsky, Crisanti & Sommers 1988).

Discrete map:   h_t = J tanh(h_{t-1}) + W_in u_t
Continuous:     dh/dt = -h + J tanh(h) + W_in u

with ``J_ij ~ N(0, g²/N)``. The origin is a fixed point of both for ``u = 0``; its
Jacobian is ``J`` (map) and ``J - I`` (flow), so by the circular law it loses stability at
``g = 1`` and for ``g > 1`` the networks are chaotic at large ``N`` (Sompolinsky et al.
1988 for the flow; Engelken, Wolf & Abbott 2020, arXiv:2006.02427, for the map).
The flow is turned into a map by a fixed-step integrator (``rate_flow_step``), which is
what the Lyapunov analyzer takes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._validation import (
    check_array,
    check_key,
    check_positive_float,
    check_positive_int,
    check_shape,
    is_concrete,
)
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
    h: jax.Array, u: jax.Array, params: RateParams, *, dt: float = 0.1, method: str = "rk4"
) -> jax.Array:
    """One fixed integrator step of the continuous rate network, usable as a map.

    Example:
        >>> from functools import partial
        >>> p = init_rate(jax.random.key(0), 16, g=2.0)
        >>> step = partial(rate_flow_step, dt=0.1)      # step(h, u, params)
        >>> res = jaxgrad.lyapunov_spectrum(step, jnp.ones(16), num_steps=500, params=p,
        ...                                 dt=0.1, num_exponents=2)
        >>> res.exponents.shape                          # per unit time (dt = 0.1)
        (2,)
    """
    return integrator_step(rate_vector_field, h, u, params, dt=dt, method=method)
