"""Mean-field signal propagation through deep random networks, by Gauss–Hermite quadrature.

A random MLP with pre-activations ``z^l = W^l φ(z^{l-1}) + b^l``, ``W_ij ~ N(0, σ_w²/N)``,
``b_i ~ N(0, σ_b²)`` propagates, as ``N → ∞`` (Poole et al. 2016, eqs. 3–5; Schoenholz et
al. 2017, eqs. 2–9):

- the length ``q^l = σ_w² ∫Dz φ(√q^{l-1} z)² + σ_b²`` (the q-map, fixed point ``q*``);
- the correlation of two inputs ``c^l = (σ_w² ∫Dz₁Dz₂ φ(u₁)φ(u₂) + σ_b²) / q^l`` with
  ``u₁ = √q z₁``, ``u₂ = √q (c z₁ + √(1-c²) z₂)`` (the c-map, fixed points ``c = 1`` and,
  in the chaotic phase, ``c* < 1``);
- a small perturbation, whose squared norm grows by ``χ₁ = σ_w² ∫Dz φ'(√q* z)²`` per layer
  (the slope of the c-map at ``c = 1``). ``χ₁ < 1`` is the ordered phase, ``χ₁ > 1``
  chaotic, and ``χ₁ = 1`` the critical line ("edge of chaos").

Depth scales (Schoenholz et al. 2017, eqs. 7 and 9):
``ξ_q⁻¹ = -log(χ₁ + σ_w² ∫Dz φ''(√q* z) φ(√q* z))`` and
``ξ_c⁻¹ = -log(σ_w² ∫Dz₁Dz₂ φ'(u₁)φ'(u₂))`` at ``c*`` (``= -log χ₁`` when ``c* = 1``).

On the critical line ``σ_w² = 1/∫Dz φ'(√q z)²`` and ``σ_b² = q - ∫Dz φ(√q z)² / ∫Dz φ'(√q z)²``
for the fixed point ``q = q*``: ``critical_sigma_w2`` solves the second equation for ``q``
(a one-dimensional bisection, exact at ``σ_b² = 0`` where ``q* = 0`` for tanh), so it never
iterates the slowly converging maps near the critical point.

Gaussian integrals ``∫Dz f(z) = E f(z)``, ``z ~ N(0, 1)``, use the probabilists'
Gauss–Hermite rule (``numpy.polynomial.hermite_e.hermegauss``), computed once in float64
and cast to the working dtype; everything else is JAX, so every function can be jitted,
vmapped over ``(σ_w², σ_b²)`` grids and differentiated. Derivatives of ``φ`` come from
``jax.grad``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_array, check_positive_int, is_concrete
from ..models.activations import ACTIVATIONS, get_activation

#: Default number of Gauss–Hermite nodes for 1-D integrals (``q``-map, ``χ₁``).
NUM_POINTS = 200
#: Default number of nodes per axis for the 2-D integrals of the c-map (a product rule).
NUM_POINTS_2D = 100
#: ``critical_sigma_w2`` looks for ``q*`` in ``(0, Q_MAX_FACTOR (1 + σ_b²)]``.
Q_MAX_FACTOR = 100.0

Activation = str | Callable[[jax.Array], jax.Array]


# ----------------------------------------------------------------------------- quadrature


@functools.cache
def _rule(num_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights with ``Σ w f(x) ≈ E f(z)``, ``z ~ N(0, 1)`` (float64)."""
    # Golub–Welsch: the nodes are the eigenvalues of the Jacobi matrix of the probabilists'
    # Hermite polynomials (off-diagonal √k), the weights the squared first components of
    # its eigenvectors. Stable for any n (``hermegauss`` overflows beyond ~350 nodes).
    off = np.sqrt(np.arange(1, num_points, dtype=np.float64))
    nodes, vectors = np.linalg.eigh(np.diag(off, 1) + np.diag(off, -1))
    w = vectors[0] ** 2
    nodes = 0.5 * (nodes - nodes[::-1])  # exact symmetry
    w = 0.5 * (w + w[::-1])
    return nodes, w / w.sum()


@functools.cache
def _rule_2d(num_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat product rule for ``E f(z₁, z₂)`` with independent standard normals."""
    x, w = _rule(num_points)
    z1, z2 = np.meshgrid(x, x, indexing="ij")
    return z1.ravel(), z2.ravel(), np.outer(w, w).ravel()


def gaussian_expectation(f: Callable, *, num_points: int = NUM_POINTS,
                         dtype: Any = None) -> jax.Array:
    """``E f(z)`` for ``z ~ N(0, 1)`` by ``num_points``-node Gauss–Hermite quadrature.

    ``f`` maps an array of nodes to values of the same shape. Exact for polynomials of
    degree ``< 2 num_points``.

    Example:
        >>> round(float(gaussian_expectation(lambda z: z**4)), 5)  # E z⁴ = 3
        3.0
    """
    num_points = check_positive_int("num_points", num_points)
    dtype = jnp.result_type(float) if dtype is None else dtype
    x, w = _rule(num_points)
    return jnp.sum(jnp.asarray(w, dtype) * f(jnp.asarray(x, dtype)))


# ----------------------------------------------------------------------------- arguments


def _resolve_activation(activation: Activation) -> Callable:
    if isinstance(activation, str):
        return get_activation(activation)
    if callable(activation):
        return activation
    raise TypeError(f"`activation` must be a name in {sorted(ACTIVATIONS)} or a callable, "
                    f"got {type(activation).__name__}")


def _derivatives(phi: Callable) -> tuple[Callable, Callable, Callable]:
    d1 = jax.grad(phi)
    d2 = jax.grad(d1)
    return phi, jnp.vectorize(d1), jnp.vectorize(d2)


def _dtype(*values: Any) -> Any:
    """The widest floating dtype among the arguments (default float if none is an array)."""
    dtype = jnp.result_type(float)
    for v in values:
        if not isinstance(v, (jax.Array, np.ndarray, np.generic)):
            continue  # Python numbers are weakly typed; bad types are reported by _scalar
        d = v.dtype
        if jnp.issubdtype(d, jnp.floating) and jnp.finfo(d).bits > jnp.finfo(dtype).bits:
            dtype = d
    return dtype


def _scalar(name: str, value: Any, dtype: Any, *, lower: float | None = None,
            upper: float | None = None, strict_lower: bool = False) -> jax.Array:
    """A scalar of ``dtype``; value bounds are checked only on concrete values."""
    arr = check_array(name, value)
    if arr.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar (use jax.vmap for sweeps), "
                         f"got shape {arr.shape}")
    if is_concrete(arr):
        v = float(arr)
        if not math.isfinite(v):
            raise ValueError(f"`{name}` must be finite, got {v}")
        if lower is not None and (v < lower or (strict_lower and v == lower)):
            raise ValueError(f"`{name}` must be {'>' if strict_lower else '>='} {lower}, got {v}")
        if upper is not None and v > upper:
            raise ValueError(f"`{name}` must be <= {upper}, got {v}")
    return arr.astype(dtype)


def _sigmas(sigma_w2, sigma_b2, *others):
    dtype = _dtype(sigma_w2, sigma_b2, *others)
    return (_scalar("sigma_w2", sigma_w2, dtype, lower=0.0, strict_lower=True),
            _scalar("sigma_b2", sigma_b2, dtype, lower=0.0), dtype)


# ----------------------------------------------------------------------------- kernels
# Pure functions of already-checked scalars; the public functions below validate and call them.


def _moments(phi, q, sigma_w2, n):
    """σ_w² E φ(√q z)², σ_w² E φ'(√q z)², σ_w² E φ''(√q z) φ(√q z)."""
    f, d1, d2 = _derivatives(phi)
    x, w = _rule(n)
    u = jnp.sqrt(q) * jnp.asarray(x, q.dtype)
    w = jnp.asarray(w, q.dtype)
    fu = f(u)
    return (sigma_w2 * jnp.sum(w * fu * fu), sigma_w2 * jnp.sum(w * d1(u) ** 2),
            sigma_w2 * jnp.sum(w * d2(u) * fu))


def _q_map(phi, q, sigma_w2, sigma_b2, n):
    f = _derivatives(phi)[0]
    x, w = _rule(n)
    u = jnp.sqrt(q) * jnp.asarray(x, q.dtype)
    return sigma_w2 * jnp.sum(jnp.asarray(w, q.dtype) * f(u) ** 2) + sigma_b2


def _pair_expectation(g, c, q, n2):
    """E g(u₁) g(u₂) with u₁ = √q z₁, u₂ = √q (c z₁ + √(1-c²) z₂)."""
    z1, z2, w = (jnp.asarray(a, q.dtype) for a in _rule_2d(n2))
    s = jnp.sqrt(q)
    u1 = s * z1
    u2 = s * (c * z1 + jnp.sqrt(jnp.maximum(1 - c * c, 0)) * z2)
    return jnp.sum(w * g(u1) * g(u2))


def _c_map(phi, c, q, sigma_w2, sigma_b2, n, n2):
    f = _derivatives(phi)[0]
    numerator = sigma_w2 * _pair_expectation(f, c, q, n2) + sigma_b2
    return numerator / _q_map(phi, q, sigma_w2, sigma_b2, n)


def _c_slope(phi, c, q, sigma_w2, n2):
    d1 = _derivatives(phi)[1]
    return sigma_w2 * _pair_expectation(d1, c, q, n2)


def _fixed_point(g, x0, lo, hi, num_iterations, num_newton):
    """Iterate ``x ← g(x)``, then polish with safeguarded Newton steps on ``g(x) - x``.

    A Newton step is taken only when it stays in ``[lo, hi]`` and lowers ``|g(x) - x|``,
    so the polish never leaves the basin the plain iteration reached.
    Returns ``(x, |g(x) - x|)``.
    """
    x = jax.lax.fori_loop(0, num_iterations, lambda _, x: jnp.clip(g(x), lo, hi), x0)

    def residual(x):
        return g(x) - x

    def newton(_, x):
        r, dr = jax.jvp(residual, (x,), (jnp.ones_like(x),))
        x_new = jnp.clip(x - r / dr, lo, hi)
        ok = jnp.isfinite(x_new) & (jnp.abs(residual(x_new)) < jnp.abs(r))
        return jnp.where(ok, x_new, x)

    x = jax.lax.fori_loop(0, num_newton, newton, x)
    return x, jnp.abs(residual(x))


def _tolerance(dtype) -> float:
    return float(np.sqrt(np.finfo(dtype).eps))


# ----------------------------------------------------------------------------- public maps


def q_map(q: Any, sigma_w2: Any, sigma_b2: Any, *, activation: Activation = "tanh",
          num_points: int = NUM_POINTS) -> jax.Array:
    """The length map ``q^l = σ_w² ∫Dz φ(√q^{l-1} z)² + σ_b²`` (Poole et al. 2016, eq. 3).

    Arguments:
        q: scalar ``q^{l-1} >= 0``, the mean squared pre-activation of the layer below.
        sigma_w2, sigma_b2: weight and bias variances (``W_ij ~ N(0, σ_w²/N)``).
        activation: a name in ``ACTIVATIONS`` or a scalar function ``φ``.
        num_points: Gauss–Hermite nodes.

    Returns:
        scalar ``q^l``.

    Example:
        >>> round(float(q_map(1.0, 2.0, 0.0, activation="relu")), 5)  # σ_w² q/2 + σ_b²
        1.0
    """
    phi = _resolve_activation(activation)
    num_points = check_positive_int("num_points", num_points)
    sigma_w2, sigma_b2, dtype = _sigmas(sigma_w2, sigma_b2, q)
    q = _scalar("q", q, dtype, lower=0.0)
    return _q_map(phi, q, sigma_w2, sigma_b2, num_points)


class QStar(NamedTuple):
    """The fixed point of the q-map.

    Attributes:
        q: ``q*`` (scalar).
        residual: ``|q_map(q*) - q*|``.
        converged: ``residual <= tol (1 + q*)``, ``tol = √eps`` of the dtype.
    """

    q: jax.Array
    residual: jax.Array
    converged: jax.Array


@functools.partial(jax.jit, static_argnames=("phi", "n", "num_iterations", "num_newton"))
def _q_star(phi, sigma_w2, sigma_b2, q0, n, num_iterations, num_newton):
    def g(q):
        return _q_map(phi, q, sigma_w2, sigma_b2, n)

    big = jnp.asarray(jnp.finfo(q0.dtype).max, q0.dtype) ** 0.5
    q, res = _fixed_point(g, q0, jnp.zeros_like(q0), big, num_iterations, num_newton)
    return QStar(q, res, res <= _tolerance(q0.dtype) * (1 + q))


def q_star(sigma_w2: Any, sigma_b2: Any, *, activation: Activation = "tanh", q0: Any = 1.0,
           num_iterations: int = 100, num_newton: int = 30,
           num_points: int = NUM_POINTS) -> QStar:
    """The stable fixed point ``q* = σ_w² ∫Dz φ(√q* z)² + σ_b²`` of the q-map.

    Found by ``num_iterations`` steps of the map from ``q0`` (which converge to the stable
    fixed point) and ``num_newton`` safeguarded Newton steps (which fix the slow approach
    near ``σ_b² = 0``, ``σ_w² ≈ 1``). Poole et al. 2016, eq. 4.

    Returns:
        ``QStar(q, residual, converged)``, scalars.

    Example:
        >>> float(q_star(0.5, 0.0).q)  # tanh, σ_w² < 1, no bias: q* = 0
        0.0
    """
    phi = _resolve_activation(activation)
    n = check_positive_int("num_points", num_points)
    num_iterations = check_positive_int("num_iterations", num_iterations, minimum=0)
    num_newton = check_positive_int("num_newton", num_newton, minimum=0)
    sigma_w2, sigma_b2, dtype = _sigmas(sigma_w2, sigma_b2, q0)
    q0 = _scalar("q0", q0, dtype, lower=0.0)
    return _q_star(phi, sigma_w2, sigma_b2, q0, n, num_iterations, num_newton)


def chi_1(sigma_w2: Any, sigma_b2: Any, *, q: Any = None, activation: Activation = "tanh",
          num_points: int = NUM_POINTS) -> jax.Array:
    """``χ₁ = σ_w² ∫Dz φ'(√q* z)²``, the per-layer growth of a perturbation's squared norm.

    ``χ₁ = 1`` is the order-to-chaos transition (Poole et al. 2016, eq. 7; Schoenholz et al.
    2017, eq. 5).

    Arguments:
        sigma_w2, sigma_b2: scalars.
        q: the length at which to evaluate; ``None`` uses ``q_star(sigma_w2, sigma_b2).q``.
        activation, num_points: as in ``q_map``.

    Returns:
        scalar ``χ₁``.

    Example:
        >>> float(chi_1(1.5, 0.5, activation="relu"))  # σ_w²/2 for ReLU
        0.75
    """
    phi = _resolve_activation(activation)
    n = check_positive_int("num_points", num_points)
    if q is None:
        q = q_star(sigma_w2, sigma_b2, activation=phi, num_points=n).q
    sigma_w2, sigma_b2, dtype = _sigmas(sigma_w2, sigma_b2, q)
    q = _scalar("q", q, dtype, lower=0.0)
    return _moments(phi, q, sigma_w2, n)[1]


def c_map(c: Any, sigma_w2: Any, sigma_b2: Any, *, q: Any = None,
          activation: Activation = "tanh", num_points: int = NUM_POINTS,
          num_points_2d: int = NUM_POINTS_2D) -> jax.Array:
    """The correlation map ``c^l = (σ_w² ∫Dz₁Dz₂ φ(u₁)φ(u₂) + σ_b²) / q^l``.

    ``u₁ = √q z₁``, ``u₂ = √q (c z₁ + √(1-c²) z₂)`` for two inputs of equal length ``q``
    (= ``q^{l-1}``), and ``q^l = q_map(q)``; at ``q = q*`` the denominator is ``q*``
    (Poole et al. 2016, eq. 5). ``c = 1`` is always a fixed point.

    Arguments:
        c: scalar correlation in ``[-1, 1]`` of the layer below.
        sigma_w2, sigma_b2: scalars.
        q: the two inputs' length ``q^{l-1}``; ``None`` uses ``q*``.
        num_points_2d: nodes per axis of the 2-D product rule.

    Returns:
        scalar ``c^l``.

    Example:
        >>> round(float(c_map(1.0, 1.5, 0.1)), 5)  # c = 1 is a fixed point
        1.0
    """
    phi = _resolve_activation(activation)
    n = check_positive_int("num_points", num_points)
    n2 = check_positive_int("num_points_2d", num_points_2d)
    if q is None:
        q = q_star(sigma_w2, sigma_b2, activation=phi, num_points=n).q
    sigma_w2, sigma_b2, dtype = _sigmas(sigma_w2, sigma_b2, q, c)
    q = _scalar("q", q, dtype, lower=0.0)
    c = _scalar("c", c, dtype, lower=-1.0, upper=1.0)
    return _c_map(phi, c, q, sigma_w2, sigma_b2, n, n2)


class MeanFieldTrajectory(NamedTuple):
    """Layer-by-layer theory for two inputs of equal length, each ``(depth,)`` for l = 1..depth.

    Attributes:
        q: ``q^l``, the mean squared pre-activation.
        c: ``c^l``, the correlation of the two inputs' pre-activations.
    """

    q: jax.Array
    c: jax.Array


@functools.partial(jax.jit, static_argnames=("phi", "depth", "n", "n2"))
def _trajectory(phi, q0, c0, sigma_w2, sigma_b2, depth, n, n2):
    def layer(carry, _):
        q, c = carry
        c_next = _c_map(phi, c, q, sigma_w2, sigma_b2, n, n2)
        q_next = _q_map(phi, q, sigma_w2, sigma_b2, n)
        return (q_next, jnp.clip(c_next, -1, 1)), (q_next, c_next)

    _, (qs, cs) = jax.lax.scan(layer, (q0, c0), None, length=depth)
    return MeanFieldTrajectory(qs, cs)


def mean_field_trajectory(q0: Any, c0: Any, sigma_w2: Any, sigma_b2: Any, *, depth: int,
                          activation: Activation = "tanh", num_points: int = NUM_POINTS,
                          num_points_2d: int = NUM_POINTS_2D) -> MeanFieldTrajectory:
    """Iterate the q- and c-maps ``depth`` times from ``(q⁰, c⁰)`` (the layer-0 pre-activations).

    The theory for ``random_mlp_signal``: ``q^l = q_map(q^{l-1})``,
    ``c^l = c_map(c^{l-1}, q=q^{l-1})`` (Poole et al. 2016, eqs. 3 and 5).

    Returns:
        ``MeanFieldTrajectory(q, c)``, each ``(depth,)``.

    Example:
        >>> traj = mean_field_trajectory(1.0, 0.5, 1.5, 0.05, depth=20)
    """
    phi = _resolve_activation(activation)
    depth = check_positive_int("depth", depth)
    n = check_positive_int("num_points", num_points)
    n2 = check_positive_int("num_points_2d", num_points_2d)
    sigma_w2, sigma_b2, dtype = _sigmas(sigma_w2, sigma_b2, q0, c0)
    q0 = _scalar("q0", q0, dtype, lower=0.0)
    c0 = _scalar("c0", c0, dtype, lower=-1.0, upper=1.0)
    return _trajectory(phi, q0, c0, sigma_w2, sigma_b2, depth, n, n2)


# ----------------------------------------------------------------------------- depth scales


class DepthScales(NamedTuple):
    """Fixed points and depth scales at one ``(σ_w², σ_b²)``; all scalars.

    Attributes:
        q_star: the length fixed point.
        chi_1: ``σ_w² ∫Dz φ'(√q* z)²``.
        c_star: the stable correlation fixed point (1 when ``χ₁ <= 1``).
        q_slope: slope of the q-map at ``q*``, ``χ₁ + σ_w² ∫Dz φ''φ``.
        c_slope: slope of the c-map at ``c*``, ``σ_w² ∫Dz₁Dz₂ φ'(u₁)φ'(u₂)``.
        xi_q: ``-1/log(q_slope)`` (``inf`` where the slope is 1).
        xi_c: ``-1/log(c_slope)``; diverges on the critical line.
        converged: both fixed points met their tolerance and both slopes are finite.
    """

    q_star: jax.Array
    chi_1: jax.Array
    c_star: jax.Array
    q_slope: jax.Array
    c_slope: jax.Array
    xi_q: jax.Array
    xi_c: jax.Array
    converged: jax.Array


def _depth_scale(slope):
    log_slope = jnp.log(slope)
    return jnp.where(log_slope < 0, -1 / jnp.where(log_slope < 0, log_slope, -1), jnp.inf)


@functools.partial(jax.jit, static_argnames=("phi", "n", "n2", "num_iterations", "num_newton"))
def _depth_scales(phi, sigma_w2, sigma_b2, n, n2, num_iterations, num_newton):
    dtype = sigma_w2.dtype
    qs = _q_star(phi, sigma_w2, sigma_b2, jnp.ones((), dtype), n, num_iterations, num_newton)
    q = qs.q
    _, chi, phi2_phi = _moments(phi, q, sigma_w2, n)
    q_slope = chi + phi2_phi

    # c* < 1 exists in the chaotic phase; iterate from c = 0 (c = 1 is then unstable).
    def g(c):
        return _c_map(phi, c, q, sigma_w2, sigma_b2, n, n2)

    one = jnp.ones((), dtype)
    c_chaos, c_res = _fixed_point(g, jnp.zeros((), dtype), -one, one, num_iterations,
                                  num_newton)
    ordered = chi <= 1
    c = jnp.where(ordered, one, c_chaos)
    c_slope = jnp.where(ordered, chi, _c_slope(phi, c_chaos, q, sigma_w2, n2))
    c_ok = ordered | (c_res <= _tolerance(dtype))
    converged = qs.converged & c_ok & jnp.isfinite(q_slope) & jnp.isfinite(c_slope)
    return DepthScales(q, chi, c, q_slope, c_slope, _depth_scale(q_slope),
                       _depth_scale(c_slope), converged)


def depth_scales(sigma_w2: Any, sigma_b2: Any, *, activation: Activation = "tanh",
                 num_iterations: int = 100, num_newton: int = 30,
                 num_points: int = NUM_POINTS,
                 num_points_2d: int = NUM_POINTS_2D) -> DepthScales:
    """``q*``, ``χ₁``, ``c*`` and the depth scales ``ξ_q``, ``ξ_c`` at ``(σ_w², σ_b²)``.

    ``ξ_q⁻¹ = -log(χ₁ + σ_w² ∫Dz φ''(√q* z) φ(√q* z))`` and
    ``ξ_c⁻¹ = -log(σ_w² ∫Dz₁Dz₂ φ'(u₁)φ'(u₂))`` at ``c*`` (``= -log χ₁`` when ``c* = 1``):
    Schoenholz et al. 2017, eqs. 7 and 9. Signals about the input's correlation survive
    about ``ξ_c`` layers; networks train up to depth ≈ 6 ξ_c.

    Returns:
        ``DepthScales`` of scalars (vmap over ``sigma_w2``/``sigma_b2`` for curves).

    Example:
        >>> ds = depth_scales(1.2, 0.05)
        >>> bool(ds.chi_1 < 1), bool(ds.xi_c > 1)
        (True, True)
    """
    phi = _resolve_activation(activation)
    n = check_positive_int("num_points", num_points)
    n2 = check_positive_int("num_points_2d", num_points_2d)
    num_iterations = check_positive_int("num_iterations", num_iterations, minimum=0)
    num_newton = check_positive_int("num_newton", num_newton, minimum=0)
    sigma_w2, sigma_b2, _ = _sigmas(sigma_w2, sigma_b2)
    return _depth_scales(phi, sigma_w2, sigma_b2, n, n2, num_iterations, num_newton)


# ----------------------------------------------------------------------------- critical line


class CriticalPoint(NamedTuple):
    """The point ``χ₁ = 1`` at a given ``σ_b²``; scalars.

    Attributes:
        sigma_w2: the critical weight variance (NaN when ``found`` is false).
        q_star: the length fixed point there (``1e-12`` stands for ``q* = 0``, e.g. tanh at
            ``σ_b² = 0``; ReLU's critical point holds for every ``q*``).
        found: whether a critical point with finite ``q*`` exists and was bracketed
            (ReLU has one only at ``σ_b² = 0``).
    """

    sigma_w2: jax.Array
    q_star: jax.Array
    found: jax.Array


def _critical_excess(phi, q, sigma_b2, n):
    """``B(q) - σ_b²`` with ``B(q) = q - E φ(√q z)² / E φ'(√q z)²``."""
    one = jnp.ones((), q.dtype)
    m2, m1, _ = _moments(phi, q, one, n)
    return q - m2 / m1 - sigma_b2


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 2, 3))
def _critical_q(phi, sigma_b2, n, num_bisections):
    """``q*`` on the critical line at ``σ_b²`` (NaN when not bracketed); implicit derivative."""
    dtype = sigma_b2.dtype
    eps = jnp.finfo(dtype).eps
    one = jnp.ones((), dtype)

    def excess(log_q):
        return _critical_excess(phi, jnp.exp(log_q), sigma_b2, n)

    # q* = 1e-12 stands for q* = 0 (tanh at σ_b² = 0); ReLU's B vanishes up to rounding.
    log_lo = jnp.log(jnp.asarray(1e-12, dtype))
    at_lo = excess(log_lo) >= -100 * eps * (jnp.exp(log_lo) + sigma_b2)
    log_max = jnp.log(Q_MAX_FACTOR * (1 + sigma_b2))
    log2 = jnp.log(jnp.asarray(2.0, dtype))
    log_hi = jax.lax.while_loop(lambda h: (excess(h) < 0) & (h < log_max),
                                lambda h: jnp.minimum(h + log2, log_max),
                                jnp.log(jnp.maximum(one, 2 * sigma_b2)))
    bracketed = excess(log_hi) >= 0

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        up = excess(mid) >= 0
        return jnp.where(up, lo, mid), jnp.where(up, mid, hi)

    lo, hi = jax.lax.fori_loop(0, num_bisections, bisect, (log_lo, log_hi))
    q = jnp.exp(0.5 * (lo + hi))
    # A root where B is below its rounding noise (≈ eps q) is not one (ReLU at σ_b² > 0).
    resolved = bracketed & (10 * eps * q <= sigma_b2)
    return jnp.where(at_lo, jnp.exp(log_lo), jnp.where(resolved, q, jnp.nan))


@_critical_q.defjvp
def _critical_q_jvp(phi, n, num_bisections, primals, tangents):
    (sigma_b2,), (sigma_b2_dot,) = primals, tangents
    q = _critical_q(phi, sigma_b2, n, num_bisections)
    # B(q*) = σ_b²  ⇒  dq*/dσ_b² = 1 / B'(q*).
    _, slope = jax.jvp(lambda q: _critical_excess(phi, q, sigma_b2, n), (q,), (jnp.ones_like(q),))
    return q, sigma_b2_dot / slope


@functools.partial(jax.jit, static_argnames=("phi", "n", "num_bisections"))
def _critical(phi, sigma_b2, n, num_bisections):
    q = _critical_q(phi, sigma_b2, n, num_bisections)
    chi_per_w2 = _moments(phi, q, jnp.ones_like(q), n)[1]
    found = jnp.isfinite(q) & (chi_per_w2 > 0) & jnp.isfinite(chi_per_w2)
    safe = jnp.where(found, chi_per_w2, 1)
    return CriticalPoint(jnp.where(found, 1 / safe, jnp.nan), jnp.where(found, q, jnp.nan), found)


def critical_sigma_w2(sigma_b2: Any, *, activation: Activation = "tanh",
                      num_bisections: int = 80, num_points: int = NUM_POINTS) -> CriticalPoint:
    """The order-to-chaos critical ``σ_w²`` (``χ₁ = 1``) at a given ``σ_b²``.

    On the critical line ``σ_w² = 1 / ∫Dz φ'(√q z)²`` and
    ``σ_b² = B(q) = q - ∫Dz φ(√q z)² / ∫Dz φ'(√q z)²`` at ``q = q*`` (substitute ``χ₁ = 1``
    into the fixed-point equation); ``B(q) = σ_b²`` is solved by bisection in ``log q`` on
    ``[1e-12, q_hi]``, ``q_hi <= 100 (1 + σ_b²)`` found by doubling. Assumes ``B`` increasing
    (true for tanh: ``B(q) ≈ 4q³/3`` near 0, so the critical ``σ_w² ≈ 1 + 2 (3σ_b²/4)^{1/3}``
    rises steeply). The default 200 nodes resolve ``q* ≲ 10`` (``σ_b² ≲ 5`` for tanh) to
    ~1e-5; raise ``num_points`` beyond.
    For ReLU ``B ≡ 0``: the only critical point is ``σ_w² = 2`` at ``σ_b² = 0``.
    Poole et al. 2016, Fig. 2; Schoenholz et al. 2017, Fig. 1.

    Differentiable in ``σ_b²`` by the implicit function theorem (``dq*/dσ_b² = 1/B'(q*)``);
    the slope is infinite at ``σ_b² = 0`` for tanh.

    Returns:
        ``CriticalPoint(sigma_w2, q_star, found)``.

    Example:
        >>> round(float(critical_sigma_w2(0.0).sigma_w2), 5)  # tanh: q* = 0, χ₁ = σ_w² tanh'(0)²
        1.0
    """
    phi = _resolve_activation(activation)
    n = check_positive_int("num_points", num_points)
    num_bisections = check_positive_int("num_bisections", num_bisections)
    dtype = _dtype(sigma_b2)
    sigma_b2 = _scalar("sigma_b2", sigma_b2, dtype, lower=0.0)
    return _critical(phi, sigma_b2, n, num_bisections)


# ----------------------------------------------------------------------------- random MLPs


class RandomMLPSignal(NamedTuple):
    """Per-layer statistics of one random MLP on two inputs; each ``(depth,)``, l = 1..depth.

    Attributes:
        q: mean squared pre-activation ``|z^l|²/N`` of input a.
        q_b: the same for input b.
        c: correlation ``z_a^l·z_b^l / (|z_a^l| |z_b^l|)``.
        log_chi: ``log(|δz^l|² / |δz^{l-1}|²)`` for a tangent ``δz`` pushed through the
            network along input a with ``jax.jvp`` (renormalised every layer); its mean
            over layers in the steady state estimates ``log χ₁``.
    """

    q: jax.Array
    q_b: jax.Array
    c: jax.Array
    log_chi: jax.Array


@functools.partial(jax.jit, static_argnames=("phi", "width", "depth"))
def _random_mlp(phi, key, sigma_w2, sigma_b2, q0, c0, width, depth):
    dtype = sigma_w2.dtype
    k_in, k_tan, k_layers = jax.random.split(key, 3)
    g = jax.random.normal(k_in, (2, width), dtype)
    e1 = g[0] / jnp.linalg.norm(g[0])
    v = g[1] - jnp.dot(g[1], e1) * e1
    e2 = v / jnp.linalg.norm(v)
    scale = jnp.sqrt(q0 * width)
    za = scale * e1
    zb = scale * (c0 * e1 + jnp.sqrt(jnp.maximum(1 - c0 * c0, 0)) * e2)
    t = jax.random.normal(k_tan, (width,), dtype)
    t = t / jnp.linalg.norm(t)

    def layer(carry, key_l):
        za, zb, t = carry
        k_w, k_b = jax.random.split(key_l)
        W = jnp.sqrt(sigma_w2 / width) * jax.random.normal(k_w, (width, width), dtype)
        b = jnp.sqrt(sigma_b2) * jax.random.normal(k_b, (width,), dtype)

        def f(z):
            return W @ phi(z) + b

        za_next, t_next = jax.jvp(f, (za,), (t,))
        zb_next = f(zb)
        t_norm2 = jnp.sum(t_next * t_next)
        log_chi = jnp.log(t_norm2) - jnp.log(jnp.sum(t * t))
        t_next = t_next / jnp.sqrt(t_norm2)
        qa, qb = jnp.mean(za_next**2), jnp.mean(zb_next**2)
        c = jnp.mean(za_next * zb_next) / jnp.sqrt(qa * qb)
        return (za_next, zb_next, t_next), (qa, qb, c, log_chi)

    _, (qa, qb, c, log_chi) = jax.lax.scan(layer, (za, zb, t), jax.random.split(k_layers, depth))
    return RandomMLPSignal(qa, qb, c, log_chi)


def random_mlp_signal(sigma_w2: Any, sigma_b2: Any, *, key: jax.Array, width: int, depth: int,
                      q0: Any = 1.0, c0: Any = 0.5,
                      activation: Activation = "tanh") -> RandomMLPSignal:
    """Measure ``q^l``, ``c^l`` and the perturbation growth per layer in one random MLP.

    Layer l computes ``z^l = W^l φ(z^{l-1}) + b^l`` with fresh ``W^l_ij ~ N(0, σ_w²/N)``,
    ``b^l_i ~ N(0, σ_b²)`` (drawn inside a ``lax.scan``, so no weights are stored). The two
    layer-0 inputs have ``|z⁰|²/N = q0`` exactly and correlation ``c0`` exactly. Compare with
    ``mean_field_trajectory(q0, c0, ...)`` and ``chi_1``; vmap over ``sigma_w2``/``sigma_b2``
    with one key for common random numbers (the same standard-normal weights, rescaled).

    Arguments:
        sigma_w2, sigma_b2: scalars.
        key: a PRNG key (keyword only).
        width, depth: ``N`` and the number of layers.
        q0, c0: length and correlation of the inputs.
        activation: a name in ``ACTIVATIONS`` or a scalar function.

    Returns:
        ``RandomMLPSignal`` of ``(depth,)`` arrays.

    Example:
        >>> s = random_mlp_signal(1.5, 0.05, key=jax.random.key(0), width=500, depth=30)
        >>> chi_hat = float(jnp.exp(s.log_chi[10:]).mean())
    """
    phi = _resolve_activation(activation)
    width = check_positive_int("width", width, minimum=2)
    depth = check_positive_int("depth", depth)
    sigma_w2, sigma_b2, dtype = _sigmas(sigma_w2, sigma_b2, q0, c0)
    q0 = _scalar("q0", q0, dtype, lower=0.0, strict_lower=True)
    c0 = _scalar("c0", c0, dtype, lower=-1.0, upper=1.0)
    if not (isinstance(key, jax.Array) and (jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
                                            or key.shape == (2,))):
        raise TypeError(f"`key` must be a PRNG key from jax.random.key, got {key!r}")
    return _random_mlp(phi, key, sigma_w2, sigma_b2, q0, c0, width, depth)
