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

Gaussian integrals ``∫Dz f(z) = E f(z)``, ``z ~ N(0, 1)``, have closed forms for two
activations, used when ``activation`` is ``"relu"``/``jax.nn.relu`` or
``"erf"``/``jax.scipy.special.erf``, or an ``Activation`` of one of these two functions
(exact to rounding, for every ``q``; ``num_points`` and ``num_points_2d`` are then unused).
With ``cos θ = c``:

- ReLU, the arc-cosine kernel (Cho & Saul 2009): ``E φ(u₁)φ(u₂) = q (sin θ + (π - θ) c)/(2π)``,
  ``E φ(u)² = q/2``, ``E φ'(u₁)φ'(u₂) = (π - θ)/(2π)``, ``E φ'(u)² = 1/2``, ``E φ''φ = 0``;
- erf, the arcsine kernel (Williams 1997): ``E φ(u₁)φ(u₂) = (2/π) arcsin(2qc/(1 + 2q))``,
  ``E φ'(u₁)φ'(u₂) = (4/π) / √((1 + 2q)² - 4q²c²)``, ``E φ'(u)² = (4/π)/√(1 + 4q)``,
  ``E φ''φ = -(8/π) q / ((1 + 2q) √(1 + 4q))``.

Any other activation (another name, or a callable, even one that wraps ``jax.nn.relu``) uses
the probabilists' Gauss–Hermite rule (Golub–Welsch, computed once in float64 and cast to the
working dtype; a product rule in 2-D) with derivatives of ``φ`` from ``jax.grad``. Its accuracy
falls as ``q`` grows, since ``φ(√q z)`` varies on the scale ``1/√q`` while the nodes near 0
are ``≈ π/√(2n)`` apart. Measured for tanh in float64 against ``scipy.integrate.quad`` (1-D)
and a fine trapezoid rule (2-D), at the defaults (200 nodes, 100 per axis):

=========  ==========================  ==========================  =====================
``q``      q-map (relative error)      χ₁ (relative error)          c-map (absolute error)
=========  ==========================  ==========================  =====================
``<= 1``   1e-15                       5e-15                        2e-11
3          8e-10                       7e-8                         1e-6
5          1e-7                        9e-6                         3e-5
10         2e-5                        1e-3                         7e-4
30         2e-3                        8e-2                         1e-2
=========  ==========================  ==========================  =====================

For errors of about 1e-6 at ``q > 3`` take ``num_points ≈ 50 q`` (800 nodes give χ₁ to 6e-9 at
``q = 10``) and ``num_points_2d ≈ 20 q``. For activations with a kink (``leaky_relu``, a
callable ReLU) the product rule converges slowly: the c-map is off by up to 3e-3 at 100
nodes per axis. At ``q = 0`` the derivative moments and the c-map are their limits
``q → 0⁺`` (see ``chi_1`` and ``c_map``). Everything is JAX, so every function can be jitted,
vmapped over ``(σ_w², σ_b²)`` grids and differentiated.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.special
import numpy as np

from .._validation import check_array, check_positive_int, is_concrete
from ..models.activations import Activation, ActivationLike, get_activation

#: Default number of Gauss–Hermite nodes for 1-D integrals (``q``-map, ``χ₁``); accurate to
#: ~1e-7 (χ₁) for tanh up to ``q = 3``, see the module docstring. Unused for ReLU and erf.
NUM_POINTS = 200
#: Default number of nodes per axis for the 2-D integrals of the c-map (a product rule);
#: ~1e-6 for tanh up to ``q = 3``. Unused for ReLU and erf.
NUM_POINTS_2D = 100
#: ``critical_sigma_w2`` looks for ``q*`` in ``(0, Q_MAX_FACTOR (1 + σ_b²)]``.
Q_MAX_FACTOR = 100.0


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
    if not callable(f):
        raise TypeError(f"`f` must be callable, got {type(f).__name__}")
    num_points = check_positive_int("num_points", num_points)
    dtype = jnp.result_type(float) if dtype is None else dtype
    x, w = _rule(num_points)
    return jnp.sum(jnp.asarray(w, dtype) * f(jnp.asarray(x, dtype)))


# ----------------------------------------------------------------------------- arguments


def _resolve_activation(activation: ActivationLike) -> Activation:
    return get_activation(activation)


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


def _closed_form(phi) -> str | None:
    """``"relu"`` or ``"erf"`` where the Gaussian kernels of ``phi`` have closed forms."""
    fn = phi.fn if isinstance(phi, Activation) else phi
    if fn is jax.nn.relu:
        return "relu"
    if fn is jax.scipy.special.erf:
        return "erf"
    return None


def _tiny_length(dtype):
    return jnp.asarray(jnp.finfo(dtype).eps, dtype) ** 2


def _limit_length(q):
    """``q``, or a tiny stand-in at ``q = 0`` for the limit ``q → 0⁺`` of derivative moments.

    ``E φ'(√q z)²`` at ``q = 0`` is ``φ'(0)²``, which for a kink is ``jax.grad``'s convention
    (0 for ReLU) rather than the limit ``(φ'(0⁻)² + φ'(0⁺)²)/2``; at ``q = eps²`` the symmetric
    rule gives the limit, and for smooth ``φ`` the value differs from ``φ'(0)²`` by ``O(eps²)``.
    """
    return jnp.where(q > 0, q, _tiny_length(q.dtype))


def _quadrature(g, q, n):
    """``E g(√q z)`` by ``n``-node Gauss–Hermite quadrature."""
    x, w = _rule(n)
    return jnp.sum(jnp.asarray(w, q.dtype) * g(jnp.sqrt(q) * jnp.asarray(x, q.dtype)))


def _mean_square(phi, q, n):
    """``E φ(√q z)²``."""
    kind = _closed_form(phi)
    if kind == "relu":
        return q / 2
    if kind == "erf":  # (2/π) arcsin(2q / (1 + 2q))
        return (2 / jnp.pi) * jnp.arctan2(2 * q, jnp.sqrt(1 + 4 * q))
    return _quadrature(lambda u: phi(u) ** 2, q, n)


def _derivative_moments(phi, q, n):
    """``E φ'(√q z)²``, ``E φ''(√q z) φ(√q z)`` and ``E φ'(√q z)``; at ``q = 0`` the limit."""
    kind = _closed_form(phi)
    if kind == "relu":  # φ'' = δ(u) meets φ(0) = 0
        half = jnp.full_like(q, 0.5)
        return half, jnp.zeros_like(q), half
    if kind == "erf":  # φ' = (2/√π) exp(-u²)
        r = jnp.sqrt(1 + 4 * q)
        return ((4 / jnp.pi) / r, -(8 / jnp.pi) * q / ((1 + 2 * q) * r),
                (2 / math.sqrt(math.pi)) / jnp.sqrt(1 + 2 * q))
    _, d1, d2 = _derivatives(phi)
    x, w = _rule(n)
    q = _limit_length(q)
    u = jnp.sqrt(q) * jnp.asarray(x, q.dtype)
    w = jnp.asarray(w, q.dtype)
    du = d1(u)
    return jnp.sum(w * du * du), jnp.sum(w * d2(u) * phi(u)), jnp.sum(w * du)


def _moments(phi, q, sigma_w2, n):
    """σ_w² E φ(√q z)², σ_w² E φ'(√q z)², σ_w² E φ''(√q z) φ(√q z)."""
    d1_sq, d2_phi, _ = _derivative_moments(phi, q, n)
    return sigma_w2 * _mean_square(phi, q, n), sigma_w2 * d1_sq, sigma_w2 * d2_phi


def _q_map(phi, q, sigma_w2, sigma_b2, n):
    return sigma_w2 * _mean_square(phi, q, n) + sigma_b2


@jax.custom_jvp
def _arc_cosine(c):
    """``sin θ + (π - θ) c`` with ``cos θ = c``: ``2π E relu(u₁) relu(u₂) / q``."""
    return jnp.sqrt(jnp.maximum(1 - c * c, 0)) + (jnp.pi - jnp.arccos(c)) * c


@_arc_cosine.defjvp
def _arc_cosine_jvp(primals, tangents):
    (c,), (c_dot,) = primals, tangents
    return _arc_cosine(c), (jnp.pi - jnp.arccos(c)) * c_dot  # finite at c = ±1


def _erf_factors(c, q):
    """``√(1 + 2q(1 - c))``, ``√(1 + 2q(1 + c))``: their product is ``√det(I + 2Σ)``."""
    return jnp.sqrt(1 + 2 * q * (1 - c)), jnp.sqrt(1 + 2 * q * (1 + c))


def _pair_quadrature(g, c, q, n2):
    """E g(u₁) g(u₂) with u₁ = √q z₁, u₂ = √q (c z₁ + √(1-c²) z₂)."""
    z1, z2, w = (jnp.asarray(a, q.dtype) for a in _rule_2d(n2))
    s = jnp.sqrt(q)
    u1 = s * z1
    u2 = s * (c * z1 + jnp.sqrt(jnp.maximum(1 - c * c, 0)) * z2)
    return jnp.sum(w * g(u1) * g(u2))


def _pair(phi, c, q, n2):
    """``E φ(u₁) φ(u₂)``: Cho & Saul (2009) for ReLU, Williams (1997) for erf."""
    kind = _closed_form(phi)
    if kind == "relu":
        return q / (2 * jnp.pi) * _arc_cosine(c)
    if kind == "erf":  # (2/π) arcsin(2qc / (1 + 2q))
        a, b = _erf_factors(c, q)
        return (2 / jnp.pi) * jnp.arctan2(2 * q * c, a * b)
    return _pair_quadrature(phi, c, q, n2)


def _pair_derivative(phi, c, q, n2):
    """``E φ'(u₁) φ'(u₂)`` (at ``q = 0`` the limit ``q → 0⁺``)."""
    kind = _closed_form(phi)
    if kind == "relu":
        return (jnp.pi - jnp.arccos(c)) / (2 * jnp.pi)
    if kind == "erf":
        a, b = _erf_factors(c, q)
        return (4 / jnp.pi) / (a * b)
    return _pair_quadrature(_derivatives(phi)[1], c, _limit_length(q), n2)


def _c_map_length(q, sigma_b2):
    """The length at which to evaluate the c-map: ``q``, or ``max(q, eps²)`` at ``σ_b² = 0``.

    At ``q = 0``, ``σ_b² = 0`` and ``φ(0) = 0`` the c-map is ``0/0``: it is taken as its limit
    ``q → 0⁺`` (the identity for ``φ'(0) ≠ 0``, ``(sin θ + (π - θ) c)/π`` for ReLU), which is
    what deep layers follow as ``q^l → 0``; lengths below ``eps²`` (subnormal products) are
    raised to it too, changing the map by ``O(eps²)``.
    """
    return jnp.where(sigma_b2 > 0, q, jnp.maximum(q, _tiny_length(q.dtype)))


def _c_map(phi, c, q, sigma_w2, sigma_b2, n, n2):
    q = _c_map_length(q, sigma_b2)
    numerator = sigma_w2 * _pair(phi, c, q, n2) + sigma_b2
    return numerator / _q_map(phi, q, sigma_w2, sigma_b2, n)


def _c_slope(phi, c, q, sigma_w2, sigma_b2, n, n2):
    """``∂c_map/∂c = σ_w² q E φ'(u₁)φ'(u₂) / q_map(q)`` (``= σ_w² E φ'φ'`` at ``q = q*``)."""
    q = _c_map_length(q, sigma_b2)
    return (sigma_w2 * q * _pair_derivative(phi, c, q, n2)
            / _q_map(phi, q, sigma_w2, sigma_b2, n))


def _c_slope_at_zero(phi, q, sigma_w2, sigma_b2, n):
    """``∂c_map/∂c`` at ``c = 0``, ``σ_w² q (E φ')² / q_map(q)``: the c-map is a power series
    ``Σ a_k c^k`` with ``a_k >= 0``, ``Σ a_k = 1`` at ``q*``, and this is ``a_1``; ``a_1 = 1``
    means the c-map is the identity."""
    q = _c_map_length(q, sigma_b2)
    mean_d1 = _derivative_moments(phi, q, n)[2]
    return sigma_w2 * q * mean_d1 * mean_d1 / _q_map(phi, q, sigma_w2, sigma_b2, n)


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


def q_map(q: Any, sigma_w2: Any, sigma_b2: Any, *, activation: ActivationLike = "tanh",
          num_points: int = NUM_POINTS) -> jax.Array:
    """The length map ``q^l = σ_w² ∫Dz φ(√q^{l-1} z)² + σ_b²`` (Poole et al. 2016, eq. 3).

    Arguments:
        q: scalar ``q^{l-1} >= 0``, the mean squared pre-activation of the layer below.
        sigma_w2, sigma_b2: weight and bias variances (``W_ij ~ N(0, σ_w²/N)``).
        activation: a name in ``ACTIVATIONS``, an ``Activation`` or a scalar function ``φ``.
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
        converged: ``residual <= tol (1 + q*)``, ``tol = √eps`` of the dtype, and ``q*`` is
            attracting: the q-map's slope there is ``<= 1 + tol``. (ReLU at ``σ_b² = 0``,
            ``σ_w² > 2`` has only the repelling ``q* = 0``, since ``q`` grows without bound:
            not converged.)
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
    tol = _tolerance(q0.dtype)
    _, chi, phi2_phi = _moments(phi, q, sigma_w2, n)
    return QStar(q, res, (res <= tol * (1 + q)) & (chi + phi2_phi <= 1 + tol))


def _check_steps(num_iterations, num_newton):
    num_iterations = check_positive_int("num_iterations", num_iterations, minimum=0)
    num_newton = check_positive_int("num_newton", num_newton, minimum=0)
    if num_iterations == 0 and num_newton == 0:
        raise ValueError("`num_iterations` and `num_newton` are both 0: no step toward the "
                         "fixed point would be taken; give at least one of them")
    return num_iterations, num_newton


def q_star(sigma_w2: Any, sigma_b2: Any, *, activation: ActivationLike = "tanh", q0: Any = 1.0,
           num_iterations: int = 100, num_newton: int = 30,
           num_points: int = NUM_POINTS) -> QStar:
    """The stable fixed point ``q* = σ_w² ∫Dz φ(√q* z)² + σ_b²`` of the q-map.

    Found by ``num_iterations`` steps of the map from ``q0`` (which converge to the stable
    fixed point) and ``num_newton`` safeguarded Newton steps (which fix the slow approach
    near ``σ_b² = 0``, ``σ_w² ≈ 1``); at least one of the two must be positive. Poole et al.
    2016, eq. 4. ``converged`` is computed from the returned point, never assumed.
    At ``σ_b² = 0`` with ReLU and ``σ_w² = 2`` every ``q`` is a fixed point; ``q0`` comes back.

    Returns:
        ``QStar(q, residual, converged)``, scalars.

    Example:
        >>> float(q_star(0.5, 0.0).q)  # tanh, σ_w² < 1, no bias: q* = 0
        0.0
    """
    phi = _resolve_activation(activation)
    n = check_positive_int("num_points", num_points)
    num_iterations, num_newton = _check_steps(num_iterations, num_newton)
    sigma_w2, sigma_b2, dtype = _sigmas(sigma_w2, sigma_b2, q0)
    q0 = _scalar("q0", q0, dtype, lower=0.0)
    return _q_star(phi, sigma_w2, sigma_b2, q0, n, num_iterations, num_newton)


def chi_1(sigma_w2: Any, sigma_b2: Any, *, q: Any = None, activation: ActivationLike = "tanh",
          num_points: int = NUM_POINTS) -> jax.Array:
    """``χ₁ = σ_w² ∫Dz φ'(√q* z)²``, the per-layer growth of a perturbation's squared norm.

    ``χ₁ = 1`` is the order-to-chaos transition (Poole et al. 2016, eq. 7; Schoenholz et al.
    2017, eq. 5). For ReLU ``χ₁ = σ_w²/2`` at every ``q``. At ``q = 0`` (e.g. ``q* = 0`` at
    ``σ_b² = 0``) it is the limit ``q → 0⁺``: ``σ_w² φ'(0)²`` for smooth ``φ``, ``σ_w²/2`` for
    ReLU (not ``jax.grad``'s ``relu'(0) = 0``), ``σ_w² (φ'(0⁻)² + φ'(0⁺)²)/2`` for a kink.

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
          activation: ActivationLike = "tanh", num_points: int = NUM_POINTS,
          num_points_2d: int = NUM_POINTS_2D) -> jax.Array:
    """The correlation map ``c^l = (σ_w² ∫Dz₁Dz₂ φ(u₁)φ(u₂) + σ_b²) / q^l``.

    ``u₁ = √q z₁``, ``u₂ = √q (c z₁ + √(1-c²) z₂)`` for two inputs of equal length ``q``
    (= ``q^{l-1}``), and ``q^l = q_map(q)``; at ``q = q*`` the denominator is ``q*``
    (Poole et al. 2016, eq. 5). ``c = 1`` is always a fixed point. Where ``q_map(q) = 0``
    (``q = 0``, ``σ_b² = 0``, ``φ(0) = 0``) the ratio is ``0/0`` and its limit ``q → 0⁺`` is
    returned, the map that deep layers follow as ``q^l → 0``: ``c`` itself when ``φ'(0) ≠ 0``
    (tanh, erf), ``(sin θ + (π - θ) c)/π`` with ``cos θ = c`` for ReLU (the same at every
    ``q`` when ``σ_b² = 0``). Closed forms for ReLU and erf; accuracy of the quadrature in
    the module docstring.

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
                          activation: ActivationLike = "tanh", num_points: int = NUM_POINTS,
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
        chi_1: ``σ_w² ∫Dz φ'(√q* z)²`` (at ``q* = 0`` its limit ``q → 0⁺``: ``σ_w² φ'(0)²``
            for smooth ``φ``, ``σ_w²/2`` for ReLU).
        c_star: the stable correlation fixed point (1 when the c-map's slope at ``c = 1`` is
            ``<= 1``); NaN where the c-map is the identity to within ``tol = √eps``, so that
            every correlation is kept and none is the fixed point (e.g. tanh or erf at
            ``σ_b² = 0`` below the critical ``σ_w²``, where ``q* = 0``).
        q_slope: slope of the q-map at ``q*``, ``χ₁ + σ_w² ∫Dz φ''φ``.
        c_slope: slope of the c-map at ``c*``, ``σ_w² q* ∫Dz₁Dz₂ φ'(u₁)φ'(u₂) / q_map(q*)``
            (``= σ_w² ∫Dz₁Dz₂ φ'φ'``, and ``= χ₁`` at ``c* = 1``, where ``q_map(q*) = q*``);
            1 where ``c_star`` is NaN.
        xi_q: ``-1/log(q_slope)`` (``inf`` where the slope is 1).
        xi_c: ``-1/log(c_slope)``; diverges on the critical line.
        converged: ``q*`` converged (``QStar.converged``), ``c*`` is defined and (in the
            chaotic phase) met its tolerance with slope ``<= 1 + tol``, and both slopes are
            finite.

    At ``q* = 0`` (``σ_b² = 0``, ``φ(0) = 0``, below the critical ``σ_w²``) the c-map is 0/0
    and is taken as its limit ``q → 0⁺``, which is what deep layers follow as ``q^l → 0``;
    its slope at ``c = 1`` is then not ``χ₁``. For ReLU it is 1 for every ``σ_w²``: the
    c-map ``c ↦ (sin θ + (π - θ) c)/π`` does not depend on ``σ_w²`` or ``q``, correlations
    approach ``c* = 1`` polynomially (``1 - c^l ~ 1/l²``), so ``ξ_c = inf``, while
    ``χ₁ = σ_w²/2`` and ``ξ_q = -1/log(σ_w²/2)`` describe perturbations and lengths.
    (As ``σ_b² → 0⁺`` instead, ``ξ_c → -1/log(σ_w²/2)``; the limit is not continuous.)
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
    tol = _tolerance(dtype)
    c_chaos, c_res = _fixed_point(g, jnp.zeros((), dtype), -one, one, num_iterations,
                                  num_newton)
    # The c-map's slope at c = 1 is χ₁ where q_map(q*) = q* > 0. At q* = 0 the c-map is its
    # limit q → 0⁺, whose slope at c = 1 is σ_w² q E φ'² / q_map(q) → 1 for ReLU and tanh.
    degenerate = _q_map(phi, q, sigma_w2, sigma_b2, n) <= 0
    slope_one = jnp.where(degenerate, _c_slope(phi, one, q, sigma_w2, sigma_b2, n, n2), chi)
    slope_chaos = _c_slope(phi, c_chaos, q, sigma_w2, sigma_b2, n, n2)
    ordered = slope_one <= 1
    # c_map(c) = Σ a_k c^k with a_k >= 0, Σ a_k = 1: a_1 = 1 makes it the identity, and
    # |c_map(c) - c| <= 2 (1 - a_1), so no c* is determined to the tolerance.
    identity = _c_slope_at_zero(phi, q, sigma_w2, sigma_b2, n) >= 1 - tol
    c = jnp.where(identity, jnp.nan, jnp.where(ordered, one, c_chaos))
    c_slope = jnp.where(identity, one, jnp.where(ordered, slope_one, slope_chaos))
    c_ok = ~identity & (ordered | ((c_res <= tol) & (slope_chaos <= 1 + tol)))
    converged = qs.converged & c_ok & jnp.isfinite(q_slope) & jnp.isfinite(c_slope)
    return DepthScales(q, chi, c, q_slope, c_slope, _depth_scale(q_slope),
                       _depth_scale(c_slope), converged)


def depth_scales(sigma_w2: Any, sigma_b2: Any, *, activation: ActivationLike = "tanh",
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
    num_iterations, num_newton = _check_steps(num_iterations, num_newton)
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


def critical_sigma_w2(sigma_b2: Any, *, activation: ActivationLike = "tanh",
                      num_bisections: int = 80, num_points: int = NUM_POINTS) -> CriticalPoint:
    """The order-to-chaos critical ``σ_w²`` (``χ₁ = 1``) at a given ``σ_b²``.

    On the critical line ``σ_w² = 1 / ∫Dz φ'(√q z)²`` and
    ``σ_b² = B(q) = q - ∫Dz φ(√q z)² / ∫Dz φ'(√q z)²`` at ``q = q*`` (substitute ``χ₁ = 1``
    into the fixed-point equation); ``B(q) = σ_b²`` is solved by bisection in ``log q`` on
    ``[1e-12, q_hi]``, ``q_hi <= 100 (1 + σ_b²)`` found by doubling. Assumes ``B`` increasing
    (true for tanh: ``B(q) ≈ 4q³/3`` near 0, so the critical ``σ_w² ≈ 1 + 2 (3σ_b²/4)^{1/3}``
    rises steeply). The default 200 nodes resolve ``q* ≲ 10`` (``σ_b² ≲ 5`` for tanh) to
    ~1e-5; raise ``num_points`` beyond.
    For ReLU ``B ≡ 0``: the only critical point is ``σ_w² = 2`` at ``σ_b² = 0``. For erf
    ``B(q) ≈ 4q³/3`` as for tanh, and ``σ_w² = π/4`` at ``σ_b² = 0`` (closed forms for both).
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
                      activation: ActivationLike = "tanh") -> RandomMLPSignal:
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
        activation: a name in ``ACTIVATIONS``, an ``Activation`` or a scalar function.

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
