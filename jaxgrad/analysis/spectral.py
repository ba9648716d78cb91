"""Spectral radius and spectral norm, dense or matrix-free.

A dense matrix gets the exact answer (``eigvals``, ``svd``). A linear operator given as a
function ``v -> A v`` gets an iterative one with a convergence status:

- ``spectral_norm``: power iteration on ``Aᵀ A``, with ``Aᵀ`` from ``jax.linear_transpose``.
- ``spectral_radius``: subspace iteration with a block of two vectors and the exact
  eigenvalues of the 2×2 projection, so that a dominant complex-conjugate pair (common
  for non-symmetric recurrent matrices) is found as well as a real eigenvalue.

An iteration stops when an a-posteriori error estimate, computed from the residual of the
current approximation, is below ``tol`` (relative), and ``converged`` says whether it got
there; a stalled iteration is not taken for a converged one. What the estimate covers:

- ``spectral_norm``: for a unit ``v`` with ``θ = ‖Av‖²`` and residual
  ``ρ = ‖AᵀAv − θv‖``, ``AᵀA`` has an eigenvalue within ``ρ`` of ``θ`` (it is symmetric), so
  a singular value of ``A`` lies within ``ρ/θ`` (relative) of ``√θ``: a bound.
- ``spectral_radius``: with ``AV = VH + R``, the eigenvalues of ``H`` are exact ones of
  ``A − RVᵀ``; the estimate is the first-order bound ``κ(‖R‖_F + eps‖AV‖_F)`` with ``κ``
  the condition number of the dominant eigenvalue of ``H`` (its spectral projector's norm)
  and ``eps‖AV‖_F`` the rounding in forming ``H``. A defective or
  nearly defective dominant eigenvalue (a Jordan block) has ``κ ≈ ∞`` and is reported as
  not converged, rather than with the slow ``O(1/k)`` error such an iteration has.

A matrix-free method only sees the directions its vectors explore: that the singular value
or eigenvalue found is the largest one holds with probability one over the random part of
the start vectors, as for any power method.

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
    """Result of ``spectral_norm`` / ``spectral_radius``.

    Attributes:
        value: the estimate.
        converged: the relative error estimate ``error`` is at most ``tol`` (see the module
            doc for what it covers); always true for a dense matrix (exact methods).
        iterations: iterations used (0 for a dense matrix).
        error: relative error estimate of ``value`` (``None`` for a dense matrix).
    """

    value: jax.Array
    converged: jax.Array
    iterations: jax.Array
    error: jax.Array | None = None


def _check_dense(M: Any) -> jax.Array:
    if not isinstance(M, (str, bytes)) and M is not None:
        try:
            jnp.asarray(M)
        except TypeError:
            raise TypeError(
                "`M` must be a square array or a callable linear operator, got "
                f"{type(M).__name__}"
            ) from None
    M = check_array("M", M)
    if M.ndim < 2 or M.shape[-1] != M.shape[-2]:
        raise ValueError(f"`M` must be a square matrix (..., N, N), got shape {M.shape}")
    if M.shape[-1] == 0:
        raise ValueError(f"`M` must have at least one row and column, got shape {M.shape}")
    check_finite("M", M)
    return M


def _check_operator(op: Callable, vector: Any, name: str) -> jax.Array:
    if vector is None:
        raise ValueError(f"`{name}` of an operator needs `vector`, an example input vector")
    vector = check_array("vector", vector, ndim=1)
    if vector.shape[0] == 0:
        raise ValueError("`vector` must have at least one element, got shape (0,)")
    check_finite("vector", vector)
    try:
        out = jax.eval_shape(op, vector)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"the operator `M` failed on `vector` of shape {vector.shape} (is `vector` the "
            f"size of its input?): {err}"
        ) from err
    if getattr(out, "shape", None) != vector.shape:
        raise ValueError(
            f"the operator must map `vector` {vector.shape} to the same shape, got "
            f"{getattr(out, 'shape', type(out).__name__)}"
        )
    return vector


def _dense_result(value: jax.Array) -> SpectralEstimate:
    return SpectralEstimate(value, jnp.ones(value.shape, bool), jnp.zeros(value.shape, jnp.int32))


def _iterate(update, state, tol: float, max_iterations: int, dtype) -> SpectralEstimate:
    """Run ``update(state) -> (state, estimate, error)`` until ``error <= tol``."""

    def cond(c):
        _, _, err, i = c
        return (i < max_iterations) & ~(err <= tol)

    def body(c):
        s, _, _, i = c
        s, est, err = update(s)
        return s, est, err, i + 1

    inf = jnp.array(jnp.inf, dtype)
    _, est, err, i = jax.lax.while_loop(cond, body, (state, inf, inf, 0))
    return SpectralEstimate(est, err <= tol, i, err)


def _unit(v: jax.Array) -> jax.Array:
    return v / jnp.maximum(jnp.linalg.norm(v), jnp.finfo(v.dtype).tiny)


def _start(vector: jax.Array) -> jax.Array:
    """The given vector if non-zero, else a fixed pseudo-random one."""
    noise = jax.random.normal(jax.random.key(0), vector.shape, vector.dtype)
    return _unit(jnp.where(jnp.linalg.norm(vector) > 0, vector, noise))


def _mixed_start(vector: jax.Array) -> jax.Array:
    """The given vector plus as much pseudo-random noise, so that no direction is missed."""
    noise = jax.random.normal(jax.random.key(2), vector.shape, vector.dtype)
    return _unit(_start(vector) + _unit(noise))


class PowerIterationState(NamedTuple):
    """State of a power iteration (``power_iteration_init`` / ``power_iteration_update``).

    Attributes:
        vector: the current unit vector ``v_k``.
        iterations: ``k``, the updates applied so far.
    """

    vector: jax.Array
    iterations: jax.Array


class PowerIterationStep(NamedTuple):
    """What one power-iteration update measured at ``v_k`` (before moving on).

    Attributes:
        value: the Rayleigh quotient ``θ_k = v_kᵀ S v_k``.
        image: ``S v_k`` (the next vector is its direction).
        residual: ``S v_k − θ_k v_k``; for a symmetric ``S``, an eigenvalue of ``S`` lies
            within ``‖residual‖`` of ``θ_k``, and the Kato–Temple bound sharpens this given
            a gap (Parlett, *The Symmetric Eigenvalue Problem*, Thm 10.5.1).
    """

    value: jax.Array
    image: jax.Array
    residual: jax.Array


def power_iteration_init(vector: jax.Array) -> PowerIterationState:
    """The state of a power iteration started from the unit vector ``vector`` (not rescaled)."""
    return PowerIterationState(vector, jnp.zeros((), jnp.int32))


def power_iteration_update(
    apply: Callable[[jax.Array], tuple[jax.Array, jax.Array]], state: PowerIterationState
) -> tuple[PowerIterationStep, PowerIterationState]:
    """One step ``v_{k+1} = S v_k / ‖S v_k‖`` of the power iteration on a symmetric ``S``.

    The one power iteration of jaxgrad (``spectral_norm`` runs it on ``AᵀA``,
    ``jacobian_product_norms`` on ``Q Qᵀ``), in optax's ``init``/``update`` shape: the
    caller owns the loop and its stopping rule.

    Arguments:
        apply: ``apply(v) -> (S v, vᵀ S v)`` (the Rayleigh quotient is the caller's, so it
            can take the more accurate ``‖A v‖²`` for ``S = AᵀA``).
        state: a ``PowerIterationState``.

    Returns:
        ``(step, next_state)``: ``step`` measured at ``state.vector`` (``PowerIterationStep``),
        ``next_state`` at the direction of ``S v_k``.

    Example:
        >>> S = jnp.diag(jnp.array([3.0, 1.0]))
        >>> state = power_iteration_init(jnp.array([0.6, 0.8]))
        >>> for _ in range(30):
        ...     step, state = power_iteration_update(lambda v: (S @ v, v @ S @ v), state)
        >>> round(float(step.value), 4)   # the top singular value of S
        3.0
    """
    image, value = apply(state.vector)
    residual = image - value * state.vector
    return (PowerIterationStep(value, image, residual),
            PowerIterationState(_unit(image), state.iterations + 1))


def spectral_norm(
    M: Any, *, vector: Any = None, tol: float = 1e-6, max_iterations: int = 1000
) -> SpectralEstimate:
    """Largest singular value ``‖M‖₂`` of a matrix, or of a linear operator ``v -> A v``.

    Arguments:
        M: a square array ``(..., N, N)`` (batched allowed), or a callable linear operator.
        vector: for an operator, an input vector (its shape and dtype; the start vector is
            it plus as much pseudo-random noise).
        tol, max_iterations: the power iteration on ``Aᵀ A`` stops when a singular value
            is certified within ``tol`` (relative) of ``value`` by the residual bound (module
            doc), or after ``max_iterations``. Float rounding in the residual limits the
            bound to a small multiple of ``eps`` (1e-7 in float32); a smaller ``tol`` needs
            float64.

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

    def apply(v):  # (AᵀA v, ‖Av‖² = vᵀAᵀAv)
        w = M(v)
        (z,) = transpose(w)
        return z, jnp.vdot(w, w)

    def update(state):
        step, state = power_iteration_update(apply, state)
        theta = step.value
        residual = jnp.linalg.norm(step.residual)
        # A singular value within ρ/θ (relative) of √θ: √(1 ± ρ/θ) is within ρ/θ of 1.
        error = residual / jnp.maximum(theta, jnp.finfo(theta.dtype).tiny)
        return state, jnp.sqrt(theta), error

    start = power_iteration_init(_mixed_start(vector))
    return _iterate(update, start, tol, max_iterations, vector.dtype)


def _eig2_max_abs(H: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Largest |eigenvalue| of a real 2×2 matrix and that eigenvalue's condition number.

    The condition number is the norm of the spectral projector ``(H − λ₂I)/(λ₁ − λ₂)``
    (rank one, so its Frobenius norm is its 2-norm); infinite for a double eigenvalue.
    """
    half_trace = 0.5 * (H[0, 0] + H[1, 1])
    det = H[0, 0] * H[1, 1] - H[0, 1] * H[1, 0]
    disc = half_trace**2 - det
    root = jnp.sqrt(jnp.abs(disc))
    real_pair = jnp.abs(half_trace) + root
    complex_pair = jnp.sqrt(jnp.maximum(det, 0.0))  # |λ|² = det for a conjugate pair
    value = jnp.where(disc >= 0, real_pair, complex_pair)
    # λ₁ − λ₂ = 2√disc (real) or 2i√−disc (complex); H − λ₂I has the off-diagonal of H
    # and diagonal (H₀₀ − H₁₁)/2 ± (λ₁ − λ₂)/2, whose squared moduli add up as below.
    half_diff = 0.5 * (H[0, 0] - H[1, 1])
    sign = jnp.where(half_trace >= 0, 1.0, -1.0).astype(H.dtype)
    offdiag = H[0, 1] ** 2 + H[1, 0] ** 2
    real_diag = (half_diff + sign * root) ** 2 + (half_diff - sign * root) ** 2
    complex_diag = 2 * (half_diff**2 + root**2)
    projector2 = offdiag + jnp.where(disc >= 0, real_diag, complex_diag)
    kappa = jnp.sqrt(projector2) / jnp.maximum(2 * root, jnp.finfo(H.dtype).tiny)
    return value, jnp.where(root > 0, kappa, jnp.inf)


def spectral_radius(
    M: Any, *, vector: Any = None, tol: float = 1e-6, max_iterations: int = 2000
) -> SpectralEstimate:
    """Spectral radius ``ρ(M) = max |eig(M)|`` of a matrix, or of a linear operator.

    Arguments:
        M: a square array ``(..., N, N)`` (batched allowed; exact, by ``eigvals``), or a
            callable linear operator ``v -> A v`` (subspace iteration, see module doc).
        vector: for an operator, an input vector (its shape and dtype; a start vector).
        tol, max_iterations: the iteration stops when the estimated relative error
            ``κ(‖R‖_F + eps‖AV‖_F)/ρ`` (module doc; ``eps`` for the rounding in forming the
            projection) is at most ``tol``, or after ``max_iterations``. It cannot reach
            ``tol`` below float rounding (``κ·eps·‖A‖/ρ``) nor for a dominant eigenvalue that
            is (nearly) defective.

    Returns:
        ``SpectralEstimate``; ``converged`` means ``error <= tol``, with ``error`` a
        first-order estimate: exact for a normal operator up to second order, an estimate
        otherwise (see the module doc).

    Example:
        >>> rot = jnp.array([[0.0, -2.0], [2.0, 0.0]])   # eigenvalues ±2i
        >>> round(float(spectral_radius(lambda v: rot @ v, vector=jnp.ones(2)).value), 5)
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

    tiny = jnp.finfo(vector.dtype).tiny
    eps = jnp.finfo(vector.dtype).eps

    def update(V):
        W = block_op(V)
        H = V.T @ W  # Rayleigh-Ritz projection onto span(V)
        residual = jnp.linalg.norm(W - V @ H)  # AV = VH + R
        value, kappa = _eig2_max_abs(H)
        # eps·‖AV‖: the rounding in forming H, which a (nearly) defective H magnifies too.
        error = kappa * (residual + eps * jnp.linalg.norm(W)) / jnp.maximum(value, tiny)
        V_next, _ = jnp.linalg.qr(W)
        return V_next, value, error

    return _iterate(update, V0, tol, max_iterations, vector.dtype)
