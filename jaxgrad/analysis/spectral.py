"""Spectral radius and spectral norm, dense or matrix-free.

A dense matrix gets the exact answer (``eigvals``, ``svd``). A linear operator given as a
function ``v -> A v`` gets an iterative one with a convergence status:

- ``spectral_norm``: power iteration on ``Aᵀ A``, with ``Aᵀ`` from ``jax.linear_transpose``.
- ``spectral_radius``: subspace iteration with a block of two vectors and the exact
  eigenvalues of the 2×2 projection, so that a dominant complex-conjugate pair (common
  for non-symmetric recurrent matrices) is found as well as a real eigenvalue.

For the Jacobian of a step at a point ``x``,
``lambda v: jax.jvp(lambda y: step(y, u), (x,), (v,))[1]`` is such an operator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._validation import check_array, check_finite, check_positive_float, check_positive_int


class SpectralEstimate(NamedTuple):
    """``value``; ``converged`` (relative change below ``tol``); ``iterations`` used."""

    value: jax.Array
    converged: jax.Array
    iterations: jax.Array


def _check_dense(M: Any) -> jax.Array:
    M = check_array("M", M)
    if M.ndim < 2 or M.shape[-1] != M.shape[-2]:
        raise ValueError(f"`M` must be a square matrix (..., N, N), got shape {M.shape}")
    check_finite("M", M)
    return M


def _check_operator(op: Callable, vector: Any, name: str) -> jax.Array:
    if vector is None:
        raise ValueError(f"`{name}` of an operator needs `vector`, an example input vector")
    vector = check_array("vector", vector, ndim=1)
    check_finite("vector", vector)
    out = jax.eval_shape(op, vector)
    if out.shape != vector.shape:
        raise ValueError(
            f"the operator must map `vector` {vector.shape} to the same shape, got {out.shape}"
        )
    return vector


def _dense_result(value: jax.Array) -> SpectralEstimate:
    return SpectralEstimate(value, jnp.ones(value.shape, bool), jnp.zeros(value.shape, jnp.int32))


def _iterate(update, state, tol: float, max_iterations: int, dtype) -> SpectralEstimate:
    """Run ``update(state) -> (state, estimate)`` until the estimate changes by < tol."""

    def settled(est, prev):
        return jnp.abs(est - prev) <= tol * jnp.abs(est)

    def cond(c):
        _, est, prev, i = c
        return (i < max_iterations) & ((i < 3) | ~settled(est, prev))

    def body(c):
        s, est, _, i = c
        s, new = update(s)
        return s, new, est, i + 1

    inf = jnp.array(jnp.inf, dtype)
    _, est, prev, i = jax.lax.while_loop(cond, body, (state, inf, -inf, 0))
    return SpectralEstimate(est, settled(est, prev), i)


def _unit(v: jax.Array) -> jax.Array:
    return v / jnp.maximum(jnp.linalg.norm(v), jnp.finfo(v.dtype).tiny)


def _start(vector: jax.Array) -> jax.Array:
    """The given vector if non-zero, else a fixed pseudo-random one."""
    noise = jax.random.normal(jax.random.key(0), vector.shape, vector.dtype)
    return _unit(jnp.where(jnp.linalg.norm(vector) > 0, vector, noise))


def spectral_norm(
    M: Any, *, vector: Any = None, tol: float = 1e-6, max_iterations: int = 1000
) -> SpectralEstimate:
    """Largest singular value ``‖M‖₂`` of a matrix, or of a linear operator ``v -> A v``.

    Arguments:
        M: a square array ``(..., N, N)`` (batched allowed), or a callable linear operator.
        vector: for an operator, an input vector (its shape and dtype; the start vector).
        tol, max_iterations: stopping rule of the power iteration on ``Aᵀ A``.

    Returns:
        ``SpectralEstimate``; for a dense matrix ``converged`` is true and ``iterations`` 0.

    Example:
        >>> float(spectral_norm(jnp.diag(jnp.array([3.0, -1.0]))).value)
        3.0
    """
    if not callable(M):
        return _dense_result(jnp.linalg.norm(_check_dense(M), ord=2, axis=(-2, -1)))
    check_positive_float("tol", tol)
    check_positive_int("max_iterations", max_iterations)
    vector = _check_operator(M, vector, "spectral_norm")
    transpose = jax.linear_transpose(M, vector)

    def update(v):
        w = M(v)
        sigma = jnp.linalg.norm(w)
        (v_next,) = transpose(w)
        return _unit(v_next), sigma

    return _iterate(update, _start(vector), tol, max_iterations, vector.dtype)


def _eig2_max_abs(H: jax.Array) -> jax.Array:
    """Largest |eigenvalue| of a real 2×2 matrix, in closed form."""
    half_trace = 0.5 * (H[0, 0] + H[1, 1])
    det = H[0, 0] * H[1, 1] - H[0, 1] * H[1, 0]
    disc = half_trace**2 - det
    real_pair = jnp.abs(half_trace) + jnp.sqrt(jnp.maximum(disc, 0.0))
    complex_pair = jnp.sqrt(jnp.maximum(det, 0.0))  # |λ|² = det for a conjugate pair
    return jnp.where(disc >= 0, real_pair, complex_pair)


def spectral_radius(
    M: Any, *, vector: Any = None, tol: float = 1e-6, max_iterations: int = 2000
) -> SpectralEstimate:
    """Spectral radius ``ρ(M) = max |eig(M)|`` of a matrix, or of a linear operator.

    Arguments:
        M: a square array ``(..., N, N)`` (batched allowed; exact, by ``eigvals``), or a
            callable linear operator ``v -> A v`` (subspace iteration, see module doc).
        vector: for an operator, an input vector (its shape and dtype; a start vector).
        tol, max_iterations: stopping rule of the iteration.

    Returns:
        ``SpectralEstimate``.

    Example:
        >>> rot = jnp.array([[0.0, -2.0], [2.0, 0.0]])   # eigenvalues ±2i
        >>> float(spectral_radius(lambda v: rot @ v, vector=jnp.ones(2)).value)
        2.0
    """
    if not callable(M):
        M = _check_dense(M)
        return _dense_result(jnp.max(jnp.abs(jnp.linalg.eigvals(M)), axis=-1).astype(M.dtype))
    check_positive_float("tol", tol)
    check_positive_int("max_iterations", max_iterations)
    vector = _check_operator(M, vector, "spectral_radius")
    if vector.shape[0] == 1:
        return _dense_result(jnp.abs(M(jnp.ones_like(vector)))[0])
    block_op = jax.vmap(M, in_axes=1, out_axes=1)
    noise = jax.random.normal(jax.random.key(1), vector.shape, vector.dtype)
    V0, _ = jnp.linalg.qr(jnp.stack([_start(vector), noise], axis=1))

    def update(V):
        W = block_op(V)
        H = V.T @ W  # Rayleigh-Ritz projection onto span(V)
        V_next, _ = jnp.linalg.qr(W)
        return V_next, _eig2_max_abs(H)

    return _iterate(update, V0, tol, max_iterations, vector.dtype)
