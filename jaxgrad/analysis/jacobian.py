"""Norms of products of step Jacobians over every lag, in log space.

For the trajectory ``x_t = F(x_{t-1}, u_t)``, t = 1..T, the long-term Jacobian over lag
``k`` is the product (Pascanu et al. 2013, eq. 5)

    ∂x_T/∂x_{T-k} = J_T J_{T-1} ⋯ J_{T-k+1},      J_t = ∂F/∂x (x_{t-1}, u_t).

All T products come from one reverse sweep: ``P_{k+1} = P_k J_{T-k}``, where the rows of
``P_k`` are pushed through the step's vector-Jacobian product (``jax.vjp``), so no step
Jacobian is ever formed. After each step the product is rescaled by an exact power of
two (``frexp``/``ldexp``) and the exponent is kept as an integer, so a product of 1e-300
or 0.5^5000 keeps its full float32 mantissa and its log-norm is exact up to rounding.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._validation import check_choice, check_positive_float, check_positive_int
from ._stepfn import _NO_PARAMS, bind, flat_step, prepare

LN2 = math.log(2.0)
NORMS = ("spectral", "fro")
SPECTRAL_METHODS = ("power", "svd")


class JacobianProductNorms(NamedTuple):
    """Result of ``jacobian_product_norms``; arrays of length T.

    Attributes:
        lags: ``k = 1..T``.
        log_norms: ``log ‖∂x_T/∂x_{T-k}‖``, index ``k-1`` for lag ``k``.
        log_step_norms: ``log ‖J_t‖`` for ``t = 1..T`` in time order (``None`` when
            ``step_norms=False``).
        log_step_bound: the submultiplicative bound ``Σ_{t>T-k} log ‖J_t‖`` for lag ``k``
            (``None`` when ``step_norms=False``); ``log_norms <= log_step_bound``.
        converged: whether every power iteration met its tolerance (always true for
            ``ord="fro"`` and ``spectral_method="svd"``).
        states: the trajectory ``x_1..x_T`` as flat vectors ``(T, N)``.
    """

    lags: jax.Array
    log_norms: jax.Array
    log_step_norms: jax.Array | None
    log_step_bound: jax.Array | None
    converged: jax.Array
    states: jax.Array


def _power_of_two(k: jax.Array, dtype: Any) -> jax.Array:
    """``2^k`` built from its bits, exact for ``finfo.minexp <= k < finfo.maxexp``."""
    info = jnp.finfo(dtype)
    int_dtype = jnp.dtype(f"int{info.bits}")
    biased = (k + (info.maxexp - 1)).astype(int_dtype)
    return jax.lax.bitcast_convert_type(biased << info.nmant, dtype)


def _rescale(M: jax.Array, exponent: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``M / 2^e`` with ``max|M| / 2^e`` in [0.5, 1): exact, and the running exponent.

    ``2^-e`` is a normal number unless ``max|M|`` is within a factor 2 of overflow or
    below the normal range; then ``jnp.ldexp`` takes over. Multiplying by an exact power
    of two is exact (correctly rounded where an entry lands below the normal range) and
    one fused multiply per entry, where an elementwise ``ldexp`` costs several times more.
    """
    info = jnp.finfo(M.dtype)
    _, e = jnp.frexp(jnp.max(jnp.abs(M)))
    normal = (-e >= info.minexp) & (-e < info.maxexp)
    scaled = jax.lax.cond(
        normal,
        lambda: M * _power_of_two(-e, M.dtype),
        lambda: jnp.ldexp(M, -e),
    )
    return scaled, exponent + e.astype(jnp.int32)


def _power_top_singular(
    matvec: Callable, rmatvec: Callable, u: jax.Array, tol: float, max_iterations: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Top singular value of ``A`` by power iteration on ``A Aᵀ`` from the left vector ``u``.

    Returns ``(sigma, u, converged)``. The iteration runs on stopped gradients; ``sigma`` is
    then ``uᵀ A v`` with the converged singular vectors held fixed, whose derivative
    ``uᵀ dA v`` is exactly that of the largest singular value, so the result can be
    differentiated in reverse mode (a ``while_loop`` cannot). ``sigma`` never exceeds the
    true value; iteration stops when it changes by less than ``tol`` relatively.
    """
    tiny = jnp.finfo(u.dtype).tiny

    def body(carry):
        u, sigma, _, i = carry
        v = jax.lax.stop_gradient(rmatvec(u))
        v = v / jnp.maximum(jnp.linalg.norm(v), tiny)
        w = jax.lax.stop_gradient(matvec(v))
        new_sigma = jnp.linalg.norm(w)
        u_next = w / jnp.maximum(new_sigma, tiny)
        done = jnp.abs(new_sigma - sigma) <= tol * new_sigma
        return u_next, new_sigma, done, i + 1

    def cond(carry):
        _, _, done, i = carry
        return (~done) & (i < max_iterations)

    zero = jnp.zeros((), u.dtype)
    u0 = jax.lax.stop_gradient(u)
    u, sigma_sg, done, _ = jax.lax.while_loop(cond, body, (u0, zero, jnp.array(False), 0))
    v = jax.lax.stop_gradient(rmatvec(u))
    v = v / jnp.maximum(jnp.linalg.norm(v), tiny)
    sigma = jnp.vdot(u, matvec(v))
    return sigma, u, done | (sigma_sg == 0)


def _start_vector(n: int, dtype: Any) -> jax.Array:
    v = jax.random.normal(jax.random.key(0), (n,), dtype)
    return v / jnp.linalg.norm(v)


def _product_norms(f, x0, inputs, *, ord, spectral_method, step_norms, tol, max_iterations):
    """The reverse sweep on flat states ``x0`` ``(N,)`` with ``f(x_flat, u)``."""
    n = x0.shape[0]
    dtype = x0.dtype

    def forward(x, u):
        x_next = f(x, u)
        return x_next, x_next

    _, states = jax.lax.scan(forward, x0, inputs)
    previous = jnp.concatenate([x0[None], states[:-1]])

    def backward(carry, xs):
        Q, exponent, u_left, v_step = carry
        x_prev, u_t = xs
        f_t = functools.partial(f, u=u_t)
        _, vjp = jax.vjp(f_t, x_prev)
        # Rows of Q times J_t: one batched vector-Jacobian product, no Jacobian formed.
        (M,) = jax.vmap(vjp)(Q)
        Q, exponent = _rescale(M, exponent)
        scale = exponent.astype(dtype) * LN2
        ok = jnp.array(True)
        if ord == "fro":
            log_norm = jnp.log(jnp.linalg.norm(Q)) + scale
        elif spectral_method == "svd":
            log_norm = jnp.log(jnp.linalg.norm(Q, ord=2)) + scale
        else:
            sigma, u_left, ok = _power_top_singular(
                lambda v: Q @ v, lambda w: w @ Q, u_left, tol, max_iterations
            )
            log_norm = jnp.log(sigma) + scale
        log_step = jnp.zeros((), dtype)
        if step_norms:
            if ord == "fro":
                log_step = jnp.log(jnp.linalg.norm(jax.jacfwd(f_t)(x_prev)))
            else:
                jvp = lambda v: jax.jvp(f_t, (x_prev,), (v,))[1]  # noqa: E731
                sigma_t, v_step, ok_t = _power_top_singular(
                    lambda w: vjp(w)[0], jvp, v_step, tol, max_iterations
                )
                log_step = jnp.log(sigma_t)
                ok = ok & ok_t
        return (Q, exponent, u_left, v_step), (log_norm, log_step, ok)

    start = _start_vector(n, dtype)
    carry0 = (jnp.eye(n, dtype=dtype), jnp.zeros((), jnp.int32), start, start)
    _, (log_norms, log_steps, oks) = jax.lax.scan(
        backward, carry0, (previous, inputs), reverse=True
    )
    # reverse=True stacks outputs in time order: index t-1 holds lag T-t+1.
    lag_order = log_norms[::-1]
    T = inputs_length(inputs)
    lags = jnp.arange(1, T + 1)
    if step_norms:
        bound = jnp.cumsum(log_steps[::-1])
        return JacobianProductNorms(lags, lag_order, log_steps, bound, jnp.all(oks), states)
    return JacobianProductNorms(lags, lag_order, None, None, jnp.all(oks), states)


def inputs_length(inputs: Any) -> int:
    """The length of the leading time axis of an input pytree."""
    return jax.tree_util.tree_leaves(inputs)[0].shape[0]


def jacobian_product_norms(
    step: Callable,
    x0: Any,
    inputs: Any = None,
    *,
    params: Any = _NO_PARAMS,
    num_steps: int | None = None,
    ord: str = "spectral",
    spectral_method: str = "power",
    step_norms: bool = True,
    tol: float = 1e-6,
    max_iterations: int = 500,
) -> JacobianProductNorms:
    """``log ‖∂x_T/∂x_{T-k}‖`` for every lag ``k = 1..T`` of a step function's trajectory.

    Arguments:
        step: ``step(x, u) -> x_next``, or ``step(x, u, params)`` when ``params`` is given;
            ``x`` may be any pytree of arrays (it is flattened).
        x0: initial state.
        inputs: pytree with a leading time axis of length ``T``; ``None`` with
            ``num_steps=T`` for an autonomous system (``u`` is then a ``(0,)`` array).
        params: parameters passed to ``step`` as traced values, so that calls with new
            parameter values reuse the compiled code.
        ord: ``"spectral"`` (largest singular value) or ``"fro"`` (Frobenius).
        spectral_method: ``"power"`` (warm-started power iteration on the renormalised
            product, cheap) or ``"svd"`` (a full SVD per lag, exact and slow).
        step_norms: also return the single-step norms ``log ‖J_t‖`` and their
            submultiplicative bound.
        tol, max_iterations: stopping rule of the power iterations.

    Returns:
        ``JacobianProductNorms`` (see its fields); ``log_norms[k-1]`` is lag ``k``.

    Example:
        >>> from functools import partial
        >>> p = jaxgrad.init_pascanu(jax.random.key(0), 32, 1, value=0.9)
        >>> res = jaxgrad.jacobian_product_norms(
        ...     partial(jaxgrad.pascanu_step, activation="tanh"),
        ...     jnp.zeros(32), jnp.zeros((200, 1)), params=p)
        >>> res.log_norms.shape
        (200,)
    """
    check_choice("ord", ord, NORMS)
    check_choice("spectral_method", spectral_method, SPECTRAL_METHODS)
    check_positive_float("tol", tol)
    check_positive_int("max_iterations", max_iterations)
    _, _, inputs = prepare(step, x0, inputs, num_steps, params)
    no_params = params is _NO_PARAMS
    return _run(
        step, no_params, x0, None if no_params else params, inputs,
        ord=ord, spectral_method=spectral_method, step_norms=bool(step_norms),
        tol=float(tol), max_iterations=int(max_iterations),
    )


@functools.partial(
    jax.jit,
    static_argnames=("step", "no_params", "ord", "spectral_method", "step_norms", "tol",
                     "max_iterations"),
)
def _run(step, no_params, x0, params, inputs, **options):
    """Jitted once per step function and options; ``x0``, ``params``, ``inputs`` are traced."""
    f, x0_flat, _ = flat_step(bind(step, _NO_PARAMS if no_params else params), x0)
    return _product_norms(f, x0_flat, inputs, **options)


def fit_log_rate(log_norms: jax.Array, *, start: int = 1) -> tuple[jax.Array, jax.Array]:
    """Least-squares line ``log‖∂x_T/∂x_{T-k}‖ ≈ intercept + rate·k`` over lags ``k >= start``.

    Returns ``(rate, intercept)``; ``exp(rate)`` is the mean per-step factor by which the
    gradient shrinks (``< 1``) or grows (``> 1``).
    """
    log_norms = jnp.asarray(log_norms)
    check_positive_int("start", start)
    if log_norms.ndim != 1 or log_norms.shape[0] < start + 1:
        raise ValueError(
            f"`log_norms` must be 1-D with more than start={start} lags, got {log_norms.shape}"
        )
    k = jnp.arange(1, log_norms.shape[0] + 1, dtype=log_norms.dtype)[start - 1:]
    rate, intercept = jnp.polyfit(k, log_norms[start - 1:], 1)
    return rate, intercept
