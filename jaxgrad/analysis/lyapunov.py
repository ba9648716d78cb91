"""Lyapunov exponents of any step function by the Benettin/QR method, and gradient flossing.

For a trajectory ``x_t = F(x_{t-1}, u_t)`` with step Jacobians ``D_t = ∂F/∂x (x_{t-1}, u_t)``,
an orthonormal basis ``Q`` (N × k) is pushed through the tangent dynamics ``Q ← D_t Q``
(batched Jacobian-vector products, no Jacobian is formed) and re-orthonormalised every
``qr_interval`` steps, ``D Q = Q' R``. The exponents are the time averages of the logs of
R's diagonal (Benettin et al. 1980; Engelken, Wolf & Abbott 2020, arXiv:2006.02427):

    λ_i = (1 / (T dt)) Σ_s log |R^{(s)}_ii|,      i = 1..k.

A flow ``dx/dt = F(x, u)`` (a ``VectorField``) is taken as it is: between
re-orthonormalisations the state and the basis are integrated together with diffrax, the
basis by the variational equation ``dQ/dt = ∂F/∂x (x(t), u) Q`` (Benettin et al. 1980),
so the exponents are per unit time of the flow and carry no fixed-step bias.

Everything is done in log space, so growth or decay by e^{±1000} over the trajectory is
harmless; within one QR interval it is not (each result says which exponents stood clear
of the dtype's rounding: ``resolved``). The iteration is differentiable (``jnp.linalg.qr``
has a derivative), which is what gradient flossing uses: the regulariser ``Σ_{i≤k} λ_i²``
pushes the top exponents of a recurrent network towards zero (Engelken 2023, "Gradient
Flossing", arXiv:2312.17306).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._validation import (
    check_array,
    check_choice,
    check_optimizer,
    check_positive_float,
    check_positive_int,
    is_concrete,
    typed_key,
)
from ..flows import flow_map, solver_options, state_dtype
from ..systems import NO_PARAMS, VectorField, analyzer, prepare


class LyapunovSpectrum(NamedTuple):
    """Result of ``lyapunov_spectrum``; ``k`` exponents, ``W`` windows.

    Attributes:
        exponents: ``(k,)`` λ_1 ≥ … ≥ λ_k (as they come out of the QR iteration, which
            orders them when it has converged), per unit time (per step when ``dt = 1``).
        finite_time_exponents: ``(W, k)`` the exponents averaged over each window of
            ``window`` steps after the transient.
        running_exponents: ``(W, k)`` the estimate from the start up to the end of each
            window (its last row equals ``exponents`` when the windows tile the run).
        kaplan_yorke_dimension: ``()`` ``j + Σ_{i≤j} λ_i / |λ_{j+1}|`` with ``j`` the largest
            index with a non-negative partial sum (a lower bound when only the top ``k < N``
            exponents are computed and all their partial sums are non-negative).
        entropy_rate: ``()`` the sum of the positive exponents (Pesin's bound on the
            Kolmogorov–Sinai entropy rate).
        standard_error: ``(k,)`` ``std(finite_time_exponents) / √W`` (NaN for ``W = 1``),
            treating windows as independent.
        convergence: ``(k,)`` the largest ``|running - exponents|`` over the last half of
            the windows; a converged estimate has it small beside ``|λ|``.
        finite: ``()`` False when some ``log|R_ii|`` was NaN or ±inf (a singular or
            non-finite Jacobian, or tangent vectors that underflowed to zero); the
            exponents are then not to be trusted. True alone does not make them right:
            see ``resolved`` and ``valid``.
        final_state: the state after the last step (same pytree as ``x0``).
        basis: ``(N, k)`` the final orthonormal basis ``Q`` (the backward Lyapunov vectors).
        resolved: ``(k,)`` True where λ_i stood clear of the dtype's rounding in every
            averaged QR interval: ``|R_ii| ≥ 10³ ε G`` with ``G`` the largest scale the
            interval's rounding errors can reach (the largest tangent vector at each step,
            carried to the interval's end at the largest stretch of a tangent vector in
            each later step), and every tangent vector and ``|R_ii|`` at least
            ``10³ tiny/ε`` (no underflow), ``ε`` and ``tiny`` those of the dtype. Rounding
            then moves each interval's ``log|R_ii|`` by about 10⁻³ (more where the map is
            strongly non-normal: 7·10⁻³ was seen for an eigenvector condition number of
            10³; compare with float64 there). False means λ_i may be garbage: a decay by
            ``e^{(λ_1-λ_i) qr_interval dt}`` relative to the top vector below ε (float32:
            ``(λ_1-λ_i) qr_interval dt`` beyond about 9, float64: about 29) is lost to
            rounding and comes back as a plausible but wrong, less negative number.
            Use a smaller ``qr_interval`` (1 is the finest), fewer exponents, or float64
            (``jax.config.update("jax_enable_x64", True)`` and a float64 ``x0``). It is a
            sufficient test: at ``qr_interval > 1`` it can flag exponents that happen to be
            accurate (e.g. of a diagonal map, whose tangent vectors never mix).
        valid: ``()`` ``finite`` and every exponent ``resolved``.
    """

    exponents: jax.Array
    finite_time_exponents: jax.Array
    running_exponents: jax.Array
    kaplan_yorke_dimension: jax.Array
    entropy_rate: jax.Array
    standard_error: jax.Array
    convergence: jax.Array
    finite: jax.Array
    final_state: Any
    basis: jax.Array
    resolved: jax.Array
    valid: jax.Array


def _check_exponents(exponents: Any) -> jax.Array:
    # A real float array without NaN (-inf is a valid exponent: a singular Jacobian).
    lam = check_array("exponents", exponents)
    if is_concrete(lam) and bool(jnp.isnan(lam).any()):
        raise ValueError("`exponents` must not be NaN")
    return lam


def kaplan_yorke_dimension(exponents: jax.Array) -> jax.Array:
    """The Kaplan–Yorke (Lyapunov) dimension ``D = j + Σ_{i≤j} λ_i / |λ_{j+1}|``.

    ``j`` is the largest index with ``Σ_{i≤j} λ_i ≥ 0`` after sorting in descending order;
    ``D = 0`` when ``λ_1 < 0`` and ``D = k`` when every partial sum is non-negative
    (Kaplan & Yorke 1979). Vmappable, differentiable almost everywhere.

    Arguments:
        exponents: ``(k,)`` Lyapunov exponents, any order.

    Returns:
        ``()`` the dimension.

    Example:
        >>> float(kaplan_yorke_dimension(jnp.array([0.5, -1.0])))
        1.5
    """
    lam = _check_exponents(exponents)
    if lam.ndim != 1 or lam.shape[0] == 0:
        raise ValueError(f"`exponents` must be 1-D and non-empty, got shape {lam.shape}")
    lam = -jnp.sort(-lam)
    partial = jnp.cumsum(lam)
    k = lam.shape[0]
    # Sorted descending, the partial sums rise then fall: {j : S_j >= 0} is a prefix.
    j = jnp.sum(partial >= 0)
    s_j = jnp.where(j > 0, partial[jnp.maximum(j - 1, 0)], jnp.zeros((), lam.dtype))
    next_lam = lam[jnp.minimum(j, k - 1)]
    frac = jnp.where(j < k, s_j / jnp.abs(next_lam), jnp.zeros((), lam.dtype))
    return j.astype(lam.dtype) + frac


def entropy_rate(exponents: jax.Array) -> jax.Array:
    """Sum of the positive Lyapunov exponents (Pesin's upper bound on the KS entropy rate)."""
    lam = _check_exponents(exponents)
    if lam.ndim != 1:
        raise ValueError(f"`exponents` must be 1-D, got shape {lam.shape}")
    return jnp.sum(jnp.maximum(lam, jnp.zeros((), lam.dtype)))


QR_METHODS = ("householder", "block", "cholesky")
_BLOCK_LEAF = 32


def _householder_qr(M: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``Q`` and ``|diag R|`` of ``M = Q R`` by LAPACK's Householder QR."""
    Q, R = jnp.linalg.qr(M)
    return Q, jnp.abs(jnp.diagonal(R))


def _block_qr(M: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``Q`` and ``|diag R|`` of ``M = Q R`` by recursive block Gram–Schmidt, twice (BCGS2).

    The columns are split in halves: the left half is factorised recursively, projected
    out of the right half twice ("twice is enough"), and the right half factorised in
    turn; blocks of at most 32 columns go to Householder QR (LAPACK). Most of the work is
    matrix products, which on a CPU run several times faster than LAPACK's QR of the whole
    matrix (Barlow & Smoktunowicz 2013 for the stability of BCGS2: orthogonality to working
    precision while ``M`` is numerically of full rank).
    """
    n = M.shape[1]
    if n <= _BLOCK_LEAF:
        return _householder_qr(M)
    left, right = M[:, : n // 2], M[:, n // 2:]
    Q1, r1 = _block_qr(left)
    right = right - Q1 @ (Q1.T @ right)
    right = right - Q1 @ (Q1.T @ right)
    Q2, r2 = _block_qr(right)
    return jnp.concatenate([Q1, Q2], axis=1), jnp.concatenate([r1, r2])


#: The first CholeskyQR pass adds ``_CHOLESKY_SHIFT · u · tr(MᵀM)`` to the Gram matrix's
#: diagonal (``u`` the unit roundoff). Fukaya et al.'s (2020) shift
#: ``11 (mn + n(n+1)) u ‖M‖₂²``, which guarantees that the Cholesky factorisation cannot
#: break down, is about ``0.09 ‖M‖₂²`` for a float32 256×256 matrix: it leaves the first
#: pass almost as ill-conditioned as ``M`` (its ``Q₁`` has ``κ ≈ √s / σ_min(M)``), and on
#: the rate network of benchmark (f) (step Jacobians with ``κ`` 10⁵ to 3·10⁶) a third of
#: the steps then failed. Measured in float32 (n = 128, 256, ``κ`` 10⁵–10⁷, and 100 steps
#: of that network): ``0.1 u tr`` let the first factorisation break down at n = 128,
#: ``10 u tr`` left ``Q₁`` too ill-conditioned at ``κ = 10⁷``; ``u tr`` passed all. A
#: shift that fails shows as a non-finite factor or a Gram matrix far from ``I`` after the
#: last pass, and that step falls back to Householder QR.
_CHOLESKY_SHIFT = 1.0
#: A CholeskyQR pass on ``X`` is taken as the last when ``‖XᵀX − I‖_F`` is at most this:
#: ``κ(X)² ≤ 3``, where one pass gives ``Q`` orthonormal to working precision.
_CHOLESKY_ACCEPT = 0.5
#: Plain passes after the shifted one, at most (the third and fourth run only when needed).
_CHOLESKY_MAX_PASSES = 3


def _cholesky_pass(X: jax.Array, shift: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One CholeskyQR pass: ``RᵀR = XᵀX + shift I``, ``Q = X R⁻¹``; also ``‖XᵀX − I‖_F``."""
    G = X.T @ X
    eye = jnp.eye(G.shape[0], dtype=G.dtype)
    R = jnp.linalg.cholesky(G + shift * eye).T  # upper triangular, positive diagonal
    Q = jax.lax.linalg.triangular_solve(R, X, left_side=False, lower=False)
    return Q, jnp.diagonal(R), jnp.linalg.norm(G - eye)


def _cholesky_qr(M: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``Q`` and ``|diag R|`` of ``M = Q R`` by shifted CholeskyQR3, Householder as fallback.

    Pass 1 factorises the shifted Gram matrix, ``R₁ᵀR₁ = MᵀM + sI`` with
    ``s = u tr(MᵀM)``, ``Q₁ = M R₁⁻¹``: the shift keeps the Cholesky factorisation from
    breaking down and ``Q₁`` well enough conditioned for plain CholeskyQR, which follows
    (CholeskyQR2 of ``Q₁``; Fukaya, Kannan, Nakatsukasa, Yamamoto & Yanagisawa 2020,
    "Shifted Cholesky QR for computing the QR factorization of ill-conditioned
    matrices", SIAM J. Sci. Comput. 42(1)). Plain passes repeat until one starts from a
    Gram matrix within ``‖XᵀX − I‖_F ≤ 1/2`` (then it leaves ``Q`` orthonormal to working
    precision): two when ``M`` is well conditioned, three when ``κ(M)`` is large (the rate
    network's steps), at most four. Each ``Qₖ = Qₖ₋₁ Rₖ⁻¹`` is a backward-stable
    triangular solve, so ``M = Q Rₖ⋯R₁`` to working precision whatever the shift, and the
    triangular product's diagonal is the product of the passes' diagonals. Per pass: one
    Gram product, one n×n Cholesky factorisation and one triangular solve (about
    ``(10/3) n³`` flops for a square ``M``).

    When a pass is not finite or the last one did not start within ``1/2`` of ``I``
    (``κ(M)`` near ``1/u``, a singular step), this step is redone by Householder QR
    (``lax.cond``: only the branch taken runs, except under ``vmap``, where all do).
    """
    u = jnp.asarray(jnp.finfo(M.dtype).eps / 2, M.dtype)
    Q, r, _ = _cholesky_pass(M, _CHOLESKY_SHIFT * u * jnp.sum(jnp.square(M)))
    Q, d, off = _cholesky_pass(Q, jnp.zeros((), M.dtype))

    def another_pass(c):
        Q, r, _ = c
        Q, d, off = _cholesky_pass(Q, jnp.zeros((), M.dtype))
        return Q, r * d, off

    carry = (Q, r * d, off)
    for _ in range(_CHOLESKY_MAX_PASSES - 1):
        # ``off > 1/2`` is False for NaN: a non-finite pass stops the passes (and falls back).
        carry = jax.lax.cond(carry[2] > _CHOLESKY_ACCEPT, another_pass, lambda c: c, carry)
    Q, r, off = carry
    ok = (jnp.all(jnp.isfinite(Q)) & jnp.all(jnp.isfinite(r)) & jnp.all(r > 0)
          & (off <= _CHOLESKY_ACCEPT))
    return jax.lax.cond(ok, lambda A: (Q, r), _householder_qr, M)


def _orthonormalize(M: jax.Array, method: str) -> tuple[jax.Array, jax.Array]:
    if method == "cholesky":
        return _cholesky_qr(M)
    return _block_qr(M) if method == "block" else _householder_qr(M)


#: ``resolved`` asks ``|R_ii|`` to clear the rounding floor (and underflow) by this factor.
_RESOLUTION_MARGIN = 1e3


class TangentBasisState(NamedTuple):
    """State of the QR accumulator behind ``lyapunov_spectrum`` (``tangent_basis_init`` /
    ``tangent_basis_update``).

    Attributes:
        basis: ``(n, k)`` the orthonormal tangent basis ``Q``.
        log_stretch: ``(k,)`` the sum of ``log|R_ii|`` over the updates so far: divided by
            the time they span, the first ``k`` Lyapunov exponents (Benettin et al. 1980).
        updates: how many QR updates were applied.
    """

    basis: jax.Array
    log_stretch: jax.Array
    updates: jax.Array


def tangent_basis_init(key: jax.Array, n: int, k: int, dtype: Any = None) -> TangentBasisState:
    """A random orthonormal ``(n, k)`` tangent basis (the QR of a Gaussian matrix drawn
    from ``key``) with nothing accumulated: the start of ``lyapunov_spectrum``'s iteration."""
    dtype = dtype or jnp.result_type(float)
    Q0, _ = jnp.linalg.qr(jax.random.normal(key, (n, k), dtype))
    return TangentBasisState(Q0, jnp.zeros((k,), dtype), jnp.zeros((), jnp.int32))


def tangent_basis_update(
    state: TangentBasisState, image: jax.Array, *, qr_method: str = "householder"
) -> tuple[jax.Array, TangentBasisState]:
    """Re-orthonormalise the propagated basis and accumulate its stretches.

    The one QR accumulator of jaxgrad, in optax's ``init``/``update`` shape: the caller
    propagates the basis (``image = D_{t+m−1} ⋯ D_t Q``, the tangent map's product over
    the steps since the last update) and owns the loop; this takes ``image = Q' R`` and
    returns ``log|R_ii|`` with the state at ``Q'``.

    Arguments:
        state: a ``TangentBasisState``.
        image: ``(n, k)`` the basis after the tangent maps.
        qr_method: ``"householder"`` (LAPACK), ``"block"`` or ``"cholesky"``, as for
            ``lyapunov_spectrum``.

    Returns:
        ``(log_r, next_state)``: ``log|R_ii|`` of this update (``(k,)``) and the state.

    Example:
        >>> D = jnp.diag(jnp.array([2.0, 0.5]))
        >>> state = tangent_basis_init(jax.random.key(0), 2, 2)
        >>> for _ in range(200):
        ...     _, state = tangent_basis_update(state, D @ state.basis)
        >>> [round(float(v) / 200, 3) for v in state.log_stretch]   # log 2, log ½ per step
        [0.693, -0.693]
    """
    check_choice("qr_method", qr_method, QR_METHODS)
    Q, r = _orthonormalize(image, qr_method)
    log_r = jnp.log(r)
    return log_r, TangentBasisState(Q, state.log_stretch + log_r, state.updates + 1)


def _log_column_norms(M: jax.Array) -> jax.Array:
    """``log ‖M_{:,j}‖`` per column, scaled first so that tiny entries do not underflow."""
    scale = jnp.max(jnp.abs(M), axis=0)
    unit = M / jnp.where(scale > 0, scale, jnp.ones((), M.dtype))[None]
    return jnp.log(scale) + jnp.log(jnp.linalg.norm(unit, axis=0))


def _map_tangent(f):
    """``advance(x, Q, u) = (f(x, u), D Q)`` for a map, ``D = ∂f/∂x`` (JVPs, no Jacobian)."""

    def advance(x, Q, u):
        x_next, lin = jax.linearize(lambda y: f(y, u), x)
        return x_next, jax.vmap(lin, in_axes=1, out_axes=1)(Q)

    return advance


def _flow_tangent(f, dt, options):
    """``advance(x, Q, u) = (x(dt), Φ(dt) Q)`` for a flow ``dx/dt = f(x, u)``, with diffrax.

    The state and the tangent basis are integrated together (the variational equation
    ``dQ/dt = ∂f/∂x (x(t), u) Q``) by ``jaxgrad.flows.flow_map``; a solve that does not
    converge gives NaN, which ``finite`` then reports.
    """

    def augmented(y, u):
        x, Q = y
        dx, lin = jax.linearize(lambda z: f(z, u), x)
        return dx, jax.vmap(lin, in_axes=1, out_axes=1)(Q)

    def advance(x, Q, u):
        (x_next, M), _, _ = flow_map(augmented, (x, Q), u, dt, dict(options))
        return x_next, M

    return advance


def _tangent_block(advance, trajectory_gradient, qr_method, carry, us):
    """``qr_interval`` steps of the state and of ``Q ← D_t Q``, then one QR.

    Returns ``log|R_ii|`` and whether each cleared the rounding floor of the dtype. Step t
    makes rounding errors of about ``ε c_t``, ``c_t`` the largest tangent vector then, and
    an error grows at most by the step's largest stretch ``ρ_t`` (the largest growth of a
    tangent vector), so by the QR the errors reach at most ``ε G`` with
    ``G = max_t c_t Π_{u>t} ρ_u``, kept in log space as ``g_t = max(g_{t-1} + log ρ_t,
    log c_t)``. The tangent vectors must also stay clear of the underflow threshold
    ``tiny/ε``.
    """

    def tangent_step(c, u):
        x, Q, log_scale, log_prev, log_low = c
        if not trajectory_gradient:
            x = jax.lax.stop_gradient(x)
        x_next, M = advance(x, Q, u)
        log_norms = _log_column_norms(jax.lax.stop_gradient(M))
        no_growth = jnp.asarray(-jnp.inf, M.dtype)
        stretch = jnp.max(jnp.where(jnp.isfinite(log_prev), log_norms - log_prev, no_growth))
        log_scale = jnp.maximum(log_scale + stretch, jnp.max(log_norms))
        return (x_next, M, log_scale, log_norms, jnp.minimum(log_low, log_norms)), None

    x, basis = carry
    Q = basis.basis
    # Q is orthonormal: every column has norm 1 (log 0) at the start of the interval.
    ones = jnp.zeros(Q.shape[1:], Q.dtype)
    start = (x, Q, jnp.zeros((), Q.dtype), ones, ones)
    (x, M, log_scale, _, log_low), _ = jax.lax.scan(tangent_step, start, us)
    log_r, basis = tangent_basis_update(basis, M, qr_method=qr_method)
    info = jnp.finfo(M.dtype)
    margin = jnp.log(jnp.asarray(_RESOLUTION_MARGIN, M.dtype))
    log_eps = jnp.log(jnp.asarray(info.eps, M.dtype))
    log_underflow = jnp.log(jnp.asarray(info.tiny, M.dtype)) - log_eps + margin
    stop = jax.lax.stop_gradient(log_r)
    resolved = ((stop >= log_scale + log_eps + margin) & (stop >= log_underflow)
                & (log_low >= log_underflow))
    return (x, basis), (log_r, resolved)


def _blocks(inputs: Any, start: int, num_blocks: int, length: int) -> Any:
    """Inputs ``[start, start + num_blocks·length)`` as ``(num_blocks, length, ...)``."""
    return jax.tree_util.tree_map(
        lambda a: a[start:start + num_blocks * length].reshape(
            (num_blocks, length) + a.shape[1:]
        ),
        inputs,
    )


def _spectrum(advance, x0, inputs, key, *, num_exponents, transient, qr_interval, window, dt,
              trajectory_gradient, qr_method):
    n = x0.shape[0]
    dtype = x0.dtype
    block = functools.partial(_tangent_block, advance, trajectory_gradient, qr_method)
    carry = (x0, tangent_basis_init(key, n, num_exponents, dtype))
    # Transient: the state and the basis both relax; their log|R_ii| are dropped.
    full, rest = divmod(transient, qr_interval)
    if full:
        carry, _ = jax.lax.scan(block, carry, _blocks(inputs, 0, full, qr_interval))
    if rest:
        tail = jax.tree_util.tree_map(lambda a: a[full * qr_interval:transient], inputs)
        carry, _ = block(carry, tail)
    T = jax.tree_util.tree_leaves(inputs)[0].shape[0] - transient
    num_blocks = T // qr_interval
    (x_end, basis_end), (log_r, block_resolved) = jax.lax.scan(
        block, carry, _blocks(inputs, transient, num_blocks, qr_interval)
    )
    resolved = jnp.all(block_resolved, axis=0)
    finite = jnp.all(jnp.isfinite(log_r))
    per_time = jnp.asarray(1.0 / (T * dt), dtype)
    exponents = jnp.sum(log_r, axis=0) * per_time
    per_window = window // qr_interval
    num_windows = num_blocks // per_window
    sums = log_r[: num_windows * per_window].reshape(num_windows, per_window, num_exponents)
    finite_time = jnp.sum(sums, axis=1) * jnp.asarray(1.0 / (window * dt), dtype)
    counts = jnp.arange(1, num_windows + 1, dtype=dtype)
    running = jnp.cumsum(finite_time, axis=0) / counts[:, None]
    last_half = running[num_windows // 2:]
    convergence = jnp.max(jnp.abs(last_half - exponents[None]), axis=0)
    if num_windows > 1:
        standard_error = jnp.std(finite_time, axis=0, ddof=1) / jnp.sqrt(
            jnp.asarray(num_windows, dtype)
        )
    else:
        standard_error = jnp.full((num_exponents,), jnp.nan, dtype)
    return (
        exponents, finite_time, running, kaplan_yorke_dimension(exponents),
        entropy_rate(exponents), standard_error, convergence, finite, x_end, basis_end.basis,
        resolved, finite & jnp.all(resolved),
    )


def _check_options(n, num_exponents, total, transient, qr_interval, window, dt):
    """Validate the static options; return ``(k, window)``."""
    k = n if num_exponents is None else check_positive_int("num_exponents", num_exponents)
    if k > n:
        raise ValueError(
            f"`num_exponents` must be <= the state dimension {n}, got {num_exponents}"
        )
    check_positive_int("transient", transient, minimum=0)
    check_positive_int("qr_interval", qr_interval)
    check_positive_float("dt", dt)
    remaining = total - transient
    if remaining < 1:
        raise ValueError(
            f"`transient`={transient} must be shorter than the trajectory ({total} steps)"
        )
    if remaining % qr_interval:
        raise ValueError(
            f"`qr_interval`={qr_interval} must divide the {remaining} steps after the "
            f"transient"
        )
    if window is None:
        window = qr_interval * max(1, remaining // qr_interval // 10)
    else:
        check_positive_int("window", window)
        if window % qr_interval or window > remaining:
            raise ValueError(
                f"`window` must be a multiple of qr_interval={qr_interval} and at most "
                f"{remaining} steps, got {window}"
            )
    return k, window


def lyapunov_spectrum(
    step: Callable,
    x0: Any,
    inputs: Any = None,
    *,
    params: Any = NO_PARAMS,
    num_steps: int | None = None,
    num_exponents: int | None = None,
    transient: int = 0,
    qr_interval: int = 1,
    window: int | None = None,
    dt: float = 1.0,
    key: jax.Array | None = None,
    trajectory_gradient: bool = True,
    qr_method: str = "householder",
    solver: Any = None,
    stiff: bool = False,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int | None = None,
) -> LyapunovSpectrum:
    """The top ``k`` (or all) Lyapunov exponents of a step function or a flow by the QR method.

    ``λ_i = (1/(T dt)) Σ_s log|R^{(s)}_ii|`` with ``D_t ⋯ Q = Q' R`` re-orthonormalised
    every ``qr_interval`` steps (Benettin et al. 1980; Engelken, Wolf & Abbott 2020).

    Arguments:
        step: ``step(x, u) -> x_next``, or ``step(x, u, params)`` with ``params=``; maps,
            discrete networks, or a flow through a fixed-step integrator
            (``jaxgrad.models.rate_flow_step``, with ``dt`` its step). ``x`` may be any pytree.
            Or a ``VectorField`` (``jaxgrad.vector_field(F)``, the flow ``dx/dt = F(x, u)``):
            each step then integrates the state and the tangent basis together
            (``dQ/dt = ∂F/∂x Q``) over ``dt`` with an adaptive diffrax solver
            (``jaxgrad.integrate``'s), ``u_t`` held over the step, and re-orthonormalises
            every ``qr_interval`` steps; the exponents are per unit time. A solve that fails
            (``max_steps``) makes ``finite`` False.
        x0: initial state.
        inputs: pytree with a leading time axis ``T`` (the transient included); ``None``
            with ``num_steps=T`` for an autonomous system.
        params: parameters passed to ``step`` as traced values: no recompilation when they
            change, ``jax.vmap`` over them sweeps (e.g. a whole gain sweep in one call) and
            ``jax.grad`` differentiates the exponents with respect to them.
        num_exponents: ``k``, the number of leading exponents (default: all N).
        transient: leading steps run (state and basis) but not averaged.
        qr_interval: steps between re-orthonormalisations; must divide ``T - transient``.
            Larger is cheaper, but within one interval a tangent vector decays by
            ``e^{(λ_1-λ_i) qr_interval dt}`` beside the top one, and once that is below the
            dtype's resolution λ_i is lost to rounding (float32: ``(λ_1-λ_i) qr_interval dt``
            beyond about 9 is flagged, float64: about 29); the result's ``resolved`` says
            which exponents survived. Use 1, or float64, for widely spread spectra.
        window: steps per finite-time window (a multiple of ``qr_interval``; default about
            a tenth of the run); a trailing partial window is left out of the windows only.
        dt: time per step, so exponents are per unit time of a flow.
        key: PRNG key for the random initial basis (default ``jax.random.key(0)``); a
            typed key or a raw ``uint32[2]`` one (``jax.random.PRNGKey``).
        trajectory_gradient: with ``False`` the states are held fixed under
            differentiation (``stop_gradient``), so ``jax.grad`` follows only each step
            Jacobian's explicit dependence on ``params``. The exact derivative (``True``)
            passes through the trajectory and grows like ``e^{λ_1 T}`` on a chaotic
            attractor (use an optimizer that normalises it, such as Adam, or short
            trajectories); the truncated one stays bounded but is only an approximation.
        qr_method: ``"householder"`` (default): LAPACK's QR of the whole basis, stable
            for any basis. ``"block"``: recursive block Gram–Schmidt with
            reorthogonalisation (BCGS2), mostly matrix products, about 1.4x faster for
            N = 256 on a CPU and equally accurate while each re-orthonormalised block is
            numerically of full rank; keep ``"householder"`` where a step can be singular
            (dead units, exact zeros in the Jacobian), where BCGS2 loses orthogonality.
            ``"cholesky"``: shifted CholeskyQR3 (Gram products, n×n Cholesky
            factorisations and triangular solves; Fukaya et al. 2020), for bases with
            condition numbers up to about ``1/u``; a step where it fails (not finite, or
            not orthonormal) is redone by Householder QR, so results stay as trustworthy.
            Its bottom exponents agree with a float64 reference as closely as
            Householder's in the tests; on a 2-core CPU it is slower than both others
            (about 10 n³ flops in LAPACK-sized pieces), meant for accelerators where
            matrix products are much faster than Householder QR.
        solver, stiff, rtol, atol, max_steps: for a ``VectorField`` only, as for
            ``jaxgrad.integrate`` (per ``dt`` step; default ``max_steps`` 4096). Float32
            with ``stiff=True`` needs looser tolerances (default ``rtol = 1e-3``).

    Returns:
        ``LyapunovSpectrum`` (exponents, finite-time exponents per window, running
        estimate, Kaplan–Yorke dimension, entropy rate, convergence diagnostics, and
        ``resolved``/``valid``: whether each exponent stood clear of rounding).

    Raises:
        TypeError: ``key`` is not a single PRNG key.

    Example:
        >>> p = jaxgrad.init_rate(jax.random.key(0), 32, g=2.0)
        >>> res = jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, jnp.ones(32),
        ...                                 num_steps=600, transient=100, params=p)
        >>> res.exponents.shape, bool(res.exponents[0] > 0)   # chaotic at g = 2
        ((32,), True)
        >>> A = jnp.array([[-1.0, 2.0], [0.0, -3.0]])             # a linear flow
        >>> field = jaxgrad.vector_field(lambda x, u: A @ x)
        >>> res = jaxgrad.lyapunov_spectrum(field, jnp.ones(2), num_steps=400, dt=0.5)
        >>> np.round(np.asarray(res.exponents), 2)        # the eigenvalues' real parts
        array([-1., -3.], dtype=float32)
    """
    is_flow = isinstance(step, VectorField)
    flow_args = dict(solver=solver, stiff=stiff, rtol=rtol, atol=atol, max_steps=max_steps)
    if not is_flow:
        given = [name for name, v in flow_args.items() if v is not (False if name == "stiff"
                                                                     else None)]
        if given:
            raise ValueError(
                f"`{given[0]}` is an option of a flow: pass a VectorField "
                "(jaxgrad.vector_field(F)) as `step`, or leave it out for a map"
            )
    fn = step.f if is_flow else step
    f, x0_flat, inputs = prepare(fn, x0, inputs, num_steps, params)
    total = jax.tree_util.tree_leaves(inputs)[0].shape[0]
    k, window = _check_options(
        x0_flat.shape[0], num_exponents, total, transient, qr_interval, window, dt
    )
    key = jax.random.key(0) if key is None else typed_key("key", key)
    options = dict(
        num_exponents=k, transient=int(transient), qr_interval=int(qr_interval),
        window=int(window), dt=float(dt), trajectory_gradient=bool(trajectory_gradient),
        qr_method=check_choice("qr_method", qr_method, QR_METHODS),
    )
    if is_flow:
        flow_args["max_steps"] = 4096 if max_steps is None else max_steps
        flow_options = solver_options(state_dtype(x0_flat), **flow_args)
        out = _run_flow(fn, x0, inputs, key, params=params,
                        flow_options=tuple(sorted(flow_options.items())), **options)
    else:
        out = _run(step, x0, inputs, key, params=params, **options)
    return LyapunovSpectrum(*out)


@analyzer
def _run(f, x0_flat, unravel, inputs, key, **options):
    """Jitted once per step function and options; states, params, inputs are traced."""
    out = _spectrum(_map_tangent(f), x0_flat, inputs, key, **options)
    return out[:8] + (unravel(out[8]),) + out[9:]


@analyzer
def _run_flow(f, x0_flat, unravel, inputs, key, *, flow_options, **options):
    """``_run`` for a flow: ``f(x, u)`` is the flat vector field, integrated with diffrax."""
    advance = _flow_tangent(f, options["dt"], flow_options)
    out = _spectrum(advance, x0_flat, inputs, key, **options)
    return out[:8] + (unravel(out[8]),) + out[9:]


def flossing_loss(
    step: Callable,
    x0: Any,
    inputs: Any = None,
    *,
    params: Any,
    num_exponents: int = 1,
    num_steps: int | None = None,
    transient: int = 0,
    qr_interval: int = 1,
    dt: float = 1.0,
    key: jax.Array | None = None,
    trajectory_gradient: bool = True,
) -> jax.Array:
    """The gradient-flossing regulariser ``Σ_{i≤k} λ_i²`` (Engelken 2023, arXiv:2312.17306).

    The top ``k`` Lyapunov exponents of ``step`` along the trajectory from ``x0`` driven by
    ``inputs`` are computed by ``lyapunov_spectrum`` and differentiated through the QR
    iteration. Minimising it pushes them to zero, so products of step Jacobians (and
    so back-propagated gradients) neither vanish nor explode along the top ``k``
    directions. Add it, weighted, to a task loss inside an optax loop, or minimise it alone
    for a few updates before training ("flossing before training"; see ``floss``).

    Arguments:
        step, x0, inputs, num_steps, transient, qr_interval, dt, key: as for
            ``lyapunov_spectrum``.
        trajectory_gradient: ``True`` (default): the exact derivative of the finite-time
            exponents, through the QR iteration, the step Jacobians and the trajectory.
            ``False`` holds the trajectory fixed (bounded, but only an approximation; it
            can fail to decrease the regulariser), see ``lyapunov_spectrum``.
        params: the parameters to regularise (differentiate with respect to these).
        num_exponents: ``k``.

    Returns:
        ``()`` the regulariser value.

    Example:
        >>> p = jaxgrad.init_rate(jax.random.key(0), 16, g=2.0)
        >>> reg = lambda p: flossing_loss(jaxgrad.rate_step, jnp.ones(16), params=p,
        ...                               num_steps=200, num_exponents=4)
        >>> grads = jax.grad(reg)(p)   # add 0.1 * reg(p) to a task loss, or floss alone
        >>> grads.J.shape
        (16, 16)
    """
    res = lyapunov_spectrum(
        step, x0, inputs, params=params, num_steps=num_steps, num_exponents=num_exponents,
        transient=transient, qr_interval=qr_interval, dt=dt, key=key,
        trajectory_gradient=trajectory_gradient,
    )
    return jnp.sum(jnp.square(res.exponents))


class FlossingTrace(NamedTuple):
    """Result of ``floss``.

    Attributes:
        params: the parameters after the last update; if one was not applied (see
            ``finite``), the last parameters at which the loss and its gradient were
            finite (the initial ones if there were none).
        losses: ``(num_updates,)`` ``Σ_{i≤k} λ_i²`` measured before each update; NaN after
            the first update that was not applied (not run).
        exponents: ``(num_updates, k)`` the top exponents measured before each update; NaN
            after the first update that was not applied.
        finite: ``(num_updates,)`` whether update t was applied: its loss, gradient and
            new parameters were finite, and so were every earlier update's. After the first
            False no update is applied.
    """

    params: Any
    losses: jax.Array
    exponents: jax.Array
    finite: jax.Array


class FlossingDiverged(FloatingPointError):
    """``floss`` met a non-finite loss, gradient or update; the update is named in ``step``.

    The analogue for ``floss`` of ``jaxgrad.train.TrainingDiverged``.

    Attributes:
        step: the 0-based index of the first update that was not applied.
        params: the last parameters at which the loss and its gradient were finite: those
            of update ``step`` if only its new parameters were not finite, else of
            ``step - 1`` (the initial parameters when ``step`` is 0).
        losses: ``(step + 1,)`` the losses up to and including that update's.
        exponents: ``(step + 1, k)`` the exponents measured up to and including it.
    """

    def __init__(self, step: int, params: Any, losses: Any, exponents: Any):
        super().__init__(
            f"flossing diverged: non-finite loss, gradient or parameters at update {step} "
            f"(loss {float(losses[-1])}); the last parameters with a finite loss and gradient "
            "are kept in `.params`. "
            "A non-normalised step on the exact trajectory gradient (which grows like "
            "e^{λ_1 T} once λ_1 > 0) is the usual cause: use Adam or "
            "optax.clip_by_global_norm, a smaller learning rate or shorter trajectories"
        )
        self.step = step
        self.params = params
        self.losses = losses
        self.exponents = exponents


def floss(
    step: Callable,
    x0: Any,
    inputs: Any = None,
    *,
    params: Any,
    optimizer: Any,
    num_updates: int,
    num_exponents: int = 1,
    num_steps: int | None = None,
    transient: int = 0,
    qr_interval: int = 1,
    dt: float = 1.0,
    key: jax.Array | None = None,
    trajectory_gradient: bool = True,
    throw: bool = True,
) -> FlossingTrace:
    """Gradient flossing before training: ``num_updates`` optax updates on ``Σ_{i≤k} λ_i²``.

    An update whose loss, gradient or new parameters are not finite is not applied, and
    no later one is: the result keeps the last parameters at which the loss and its
    gradient were finite (as ``jaxgrad.fit`` keeps its last good state). The updates are
    ``jaxgrad.train_steps`` on the loss ``Σ_{i≤k} λ_i²``.
    This happens when a step lands where the tangent vectors underflow (saturated units,
    ``λ = -inf``), typically after a plain gradient step on the exact trajectory gradient,
    which grows like ``e^{λ_1 T}`` as soon as flossing pushes ``λ_1`` above zero: prefer a
    step that is bounded whatever the gradient's size (``optax.adam``, or
    ``optax.clip_by_global_norm`` before ``optax.sgd``), see ``lyapunov_spectrum``'s
    ``trajectory_gradient``.

    Arguments:
        optimizer: an ``optax.GradientTransformation`` (e.g. ``optax.adam(1e-3)``).
        num_updates: number of updates (run under one ``lax.scan``).
        step, x0, inputs, params, num_exponents, ...: as for ``flossing_loss``; the same
            input sequence is used at every update. Compiled on each call.
        throw: raise ``FlossingDiverged`` (carrying the last good parameters) when an
            update was not applied. Only possible when ``floss`` runs eagerly; under
            ``jax.jit``/``jax.vmap`` (or with ``throw=False``) check ``trace.finite``.

    Returns:
        ``FlossingTrace(params, losses, exponents, finite)``.

    Raises:
        FlossingDiverged: with ``throw=True``, at the first update that was not applied.

    Example:
        >>> p = jaxgrad.init_rate(jax.random.key(0), 16, g=2.0)
        >>> trace = jaxgrad.analysis.floss(jaxgrad.rate_step, jnp.ones(16), params=p, num_steps=200,
        ...                       optimizer=optax.adam(1e-2), num_updates=20, num_exponents=2)
        >>> bool(jnp.all(trace.finite)), bool(trace.losses[-1] < trace.losses[0])
        (True, True)
    """
    check_positive_int("num_updates", num_updates)
    check_optimizer(optimizer)
    import optax

    # Imported here: jaxgrad.train imports the analyzers (no import cycle at load time).
    from ..train.loop import init_train_state, train_steps

    options = dict(num_exponents=num_exponents, num_steps=num_steps, transient=transient,
                   qr_interval=qr_interval, dt=dt, key=key,
                   trajectory_gradient=trajectory_gradient)
    # Validate once outside the scan so errors name the argument.
    lyapunov_spectrum(step, x0, inputs, params=params, **options)

    def loss(p, batch):
        res = lyapunov_spectrum(step, x0, inputs, params=p, **options)
        return jnp.sum(jnp.square(res.exponents)), res.exponents

    # The optimiser's state also holds the parameters its last applied update started
    # from: the last ones with a finite loss and gradient when a later loss is not finite.
    def remember_update(grads, state, p):
        updates, inner = optimizer.update(grads, state[0], p)
        return updates, (inner, p)

    remember = optax.GradientTransformation(lambda p: (optimizer.init(p), p), remember_update)

    def run(p):
        state, m = train_steps(loss, remember, init_train_state(p, remember), None,
                               num_steps=num_updates, has_aux=True)
        ok = jnp.all(m.finite)
        bad = jnp.argmin(m.finite)  # the first update not applied (0 if all were)
        # Its loss and gradient were finite (only its new parameters were not): keep its
        # parameters; else those its predecessor started from.
        measured = jnp.isfinite(m.objective[bad]) & jnp.isfinite(m.grad_norm[bad])
        good = jax.tree_util.tree_map(lambda a, b: jnp.where(measured, a, b), state.params,
                                      state.opt_state[1])
        p = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), state.params, good)
        ran = jnp.concatenate([jnp.ones(1, bool), m.finite[:-1]])  # updates run before a stop
        nan = jnp.asarray(jnp.nan, m.loss.dtype)
        return p, (jnp.where(ran, m.loss, nan), jnp.where(ran[:, None], m.aux, nan), m.finite)

    params, (losses, exponents, finite) = jax.jit(run)(params)
    if throw and is_concrete(finite) and not bool(jnp.all(finite)):
        bad = int(jnp.argmin(finite))
        raise FlossingDiverged(bad, params, losses[: bad + 1], exponents[: bad + 1])
    return FlossingTrace(params, losses, exponents, finite)
