"""Sensitivities of the final state ``x(T)`` to the initial state and to a parameter.

``∂x(T)/∂x(0)`` and ``∂x(T)/∂p`` by forward-mode autodiff through the whole trajectory,
vmapped over a parameter grid and a batch of initial conditions. For a system settling
into a stable fixed point ``x*``, ``∂x(T)/∂x(0) → 0`` (the vanishing gradient) while
``∂x(T)/∂p → ∂x*/∂p = -(∂g/∂x)^{-1} ∂g/∂p`` (implicit function theorem): for Doya's neuron
``∂x*/∂b = (1/(x*(1-x*)) - w)^{-1}``. Started near an unstable fixed point, ``x(T)``
jumps between attractors under tiny changes, and both derivatives explode
(Wikipedia, "Vanishing gradient problem", § Dynamical systems model; Doya 1992;
Pascanu, Mikolov & Bengio 2013, §2.2).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._validation import check_positive_int
from ._system import (
    advance,
    as_system,
    check_dt,
    check_output,
    check_param,
    check_params_finite,
    check_state,
    check_system,
    check_values,
    flattened,
    get_param,
    restore_jacobian,
    restore_state,
    run_steps,
    set_param,
)


class FinalStateSensitivities(NamedTuple):
    """``x(T)`` and its derivatives (``P`` parameter values, ``M`` initial conditions).

    Attributes:
        values: ``(P,)``; x0: ``(M, *s)``.
        final: ``(P, M, *s)`` the state ``x(T)``.
        d_final_d_x0: ``(P, M, *s, *s)`` ``∂x(T)/∂x(0)``; for a pytree state, as
            ``jax.jacfwd`` gives it: a pytree (the output's structure) of pytrees (the
            input's) with leaves ``(P, M, *out_leaf_shape, *in_leaf_shape)``.
        d_final_d_param: ``(P, M, *s)`` ``∂x(T)/∂p``.
        finite: ``(P, M)`` whether all of these are finite (an overflowing exploding
            derivative is reported here).

    For a pytree state, ``x0``, ``final`` and ``d_final_d_param`` are that pytree with the
    leading axes on each leaf.
    """

    values: jax.Array
    x0: jax.Array
    final: jax.Array
    d_final_d_x0: jax.Array
    d_final_d_param: jax.Array
    finite: jax.Array


@functools.partial(jax.jit, static_argnames=("f", "kind", "param", "num_steps"))
def _sensitivities(f, x0, params, values, dt, *, kind, param, num_steps):
    step = advance(f, kind, dt)

    def final(x, value):
        return run_steps(step, x, set_param(params, param, value), num_steps)

    def one(x, value):
        xT = final(x, value)
        dx0, dp = jax.jacfwd(final, argnums=(0, 1))(x, value)
        ok = jnp.all(jnp.isfinite(jnp.concatenate(
            [jnp.ravel(xT), jnp.ravel(dx0), jnp.ravel(dp)])))
        return xT, dx0, dp, ok

    out = jax.vmap(lambda v: jax.vmap(lambda x: one(x, v))(x0))(values)
    return FinalStateSensitivities(values, x0, *out)


def final_state_sensitivities(
    f: Callable,
    x0: Any,
    values: Any = None,
    *,
    params: Any = None,
    param: str | tuple | None = None,
    kind: str | None = None,
    dt: float = 0.1,
    num_steps: int = 1000,
) -> FinalStateSensitivities:
    """``∂x(T)/∂x(0)`` and ``∂x(T)/∂p`` over a parameter grid, by forward-mode autodiff.

    ``x(T)`` is the state after ``num_steps`` steps of the map or RK4 steps of size ``dt``
    of the flow; the derivatives are exact derivatives of that computation
    (``jax.jacfwd``), vmapped over ``values`` and the initial conditions ``x0``.

    Arguments:
        f: a map as a step ``f(x, u, params)`` (``jaxgrad.autonomous(g)`` for ``g(x, p)``;
            ``u`` is a ``(0,)`` array), a flow as ``jaxgrad.vector_field(F)``, or
            (deprecated) ``f(x, p)`` with ``kind``; the state a scalar, an array of any
            shape or a pytree of arrays (see ``jaxgrad.analysis._system``).
        x0: ``(M, *s)`` initial conditions.
        values: ``(P,)`` values of ``param`` (the parameter differentiated); ``None``: the
            single current value ``params[param]`` (``P = 1``).
        params, param: the parameters and the name of the one varied (``param=None``
            when ``params`` is the scalar parameter).
        num_steps: steps to ``T`` (static).

    Returns:
        ``FinalStateSensitivities``.

    Example:
        >>> flow = lambda x, p: jaxgrad.models.doya_vector_field(x, 0.0, p)
        >>> s = final_state_sensitivities(flow, jnp.array([0.1, 0.9]), jnp.array([-2.5]),
        ...                               params=jaxgrad.DoyaParams(5.0, -2.5), param="b")
        >>> [round(float(x), 3) for x in s.final[0]]            # the two stable points
        [0.145, 0.855]
        >>> [round(float(d), 2) for d in s.d_final_d_param[0]]  # (1/(x(1-x)) - 5)^{-1}
        [0.33, 0.33]
    """
    f, kind = as_system(f, kind, "flow")
    check_system(f, kind)
    x0, flat, unravel = check_state("x0", x0, batched=True)
    check_param(params, param)
    if values is None:
        check_params_finite(params)
        values = jnp.asarray(get_param(params, param), flat.dtype)[None]
    values = check_values("values", values).astype(flat.dtype)
    dt = check_dt(kind, dt)
    num_steps = check_positive_int("num_steps", num_steps)
    check_params_finite(set_param(params, param, values[0]))
    check_output(f, jax.tree_util.tree_map(lambda leaf: leaf[0], x0),
                 set_param(params, param, values[0]), name="x0", batched=True)
    out = _sensitivities(flattened(f, unravel), flat, params, values,
                         jnp.asarray(dt, flat.dtype), kind=kind, param=param,
                         num_steps=num_steps)
    return out._replace(x0=x0, final=restore_state(unravel, out.final),
                        d_final_d_x0=restore_jacobian(unravel, out.d_final_d_x0),
                        d_final_d_param=restore_state(unravel, out.d_final_d_param))
