"""Dynamic mean-field theory of the continuous-time random rate network.

For ``dx/dt = -x + J φ(x)``, ``J_ij ~ N(0, g²/N)``, ``φ = tanh`` (Sompolinsky, Crisanti &
Sommers 1988, PRL 61:259, "Chaos in random neural networks"; SCS below) each unit sees, as
``N → ∞``, a Gaussian field whose autocorrelation ``Δ(τ) = ⟨x(t) x(t+τ)⟩`` obeys

    Δ'' = Δ - g² C_φ(Δ, Δ₀),     C_f(Δ, Δ₀) = ∫Dz [∫Dx f(√(Δ₀-Δ) x + √Δ z)]²,

the motion of a particle in the potential ``V(Δ) = -Δ²/2 + g² C_Φ(Δ, Δ₀)``,
``Φ(x) = log cosh x`` (``Φ' = φ``; by Price's theorem ``∂C_f/∂Δ = C_{f'}``). The chaotic
solution leaves ``Δ₀ = Δ(0)`` at rest and creeps to ``Δ(∞) = 0``, so energy conservation,
``V(Δ₀) = V(0)``, fixes ``Δ₀``:

    Δ₀²/2 = g² (⟨Φ²⟩ - ⟨Φ⟩²),      averages over x ~ N(0, Δ₀).

Its only positive root exists for ``g > 1``; for ``g <= 1`` the quiescent state ``Δ ≡ 0``
is the only solution. A perturbation's correlation grows like ``e^{2λ t}`` with
``λ = -1 + √(1 - E₀)`` where ``E₀`` is the ground-state energy of the Schrödinger operator

    H = -∂²_τ + 1 - g² C_φ'(Δ(τ), Δ₀)

(SCS; Crisanti, Sommers & Sompolinsky, "Chaos in neural networks: chaotic solutions",
2008 preprint). ``Δ'(τ)`` is an exact zero-energy eigenfunction of ``H`` (differentiate the
equation of motion) with one node, so ``E₀ < 0`` and ``λ > 0`` for ``g > 1``. For
``g <= 1`` the potential is the constant ``1 - g²``, ``E₀ = 1 - g²`` and ``λ = g - 1``, the
linear stability of the origin (circular law: ``max Re eig(J - I) → g - 1``). Near the
transition ``Δ₀ ≈ g - 1`` and ``λ ≈ (g - 1)²/2`` (a Pöschl–Teller well: ``Δ(τ) ∝
sech(κτ)``, ``H = κ²(1 - 6 sech²(κτ))``). Engelken, Wolf & Abbott 2020 (arXiv:2006.02427,
Fig. 1) set this prediction beside the Lyapunov exponent of simulated networks. Time is in
units of the single-unit time constant (τ = 1), so ``λ`` is per unit time.

Numerics (all in float64 through ``jax.enable_x64``; each stage is a jitted JAX kernel, the
driver that picks the grid sizes from ``Δ₀`` runs on the host):

1. ``Δ₀``: bisection (in JAX, 200 halvings) of ``g² Var(Φ)/Δ₀² - 1/2`` on ``(0, 2g²]``
   (the Gaussian Poincaré inequality ``Var Φ <= Δ₀`` puts the root below ``2g²``), with
   ``gaussian_expectation``'s Gauss–Hermite rule.
2. ``C_φ``, ``C_φ'``, ``C_φ''`` on a uniform ``Δ`` grid over ``[0, Δ₀]`` (a product rule:
   ``gaussian_expectation`` vmapped over the outer nodes), interpolated by cubic Hermite
   polynomials (each function's derivative is the next one).
3. ``Δ(τ)`` by RK4 from ``(Δ₀, 0)`` on ``[0, τ_max]``, ``τ_max = 40/κ`` with
   ``κ = √(1 - g²⟨φ'⟩²)`` the tail's decay rate. The approach to ``Δ = 0`` is a saddle,
   so once ``Δ < 10⁻⁴ Δ₀`` (or ``Δ'`` turns non-negative) the exact tail
   ``Δ ∝ e^{-κτ}`` replaces the integration.
4. ``E₀``: the lowest eigenvalue of the second-difference operator on that grid with
   ``ψ'(0) = 0`` (even states), by bisection on Sturm counts (the pivots of the LDLᵀ
   factorisation). The same for ``ψ(0) = 0`` (odd states) gives the Goldstone energy
   ``E₁``, zero for the exact solution: its size, and the root's residual, decide
   ``converged``.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_positive_float, check_positive_int
from ..systems import discretize, vector_field
from .signal_propagation import gaussian_expectation

#: ``Δ(τ)`` is integrated until ``Δ < STOP_FRACTION Δ₀``, then continued by its exact tail.
STOP_FRACTION = 1e-4
#: ``τ_max = TAU_DECAYS / κ`` (a bound state decays faster than ``e^{-κτ}``).
TAU_DECAYS = 40.0


class RateMeanField(NamedTuple):
    """Result of ``rate_mean_field``: Python floats and bool, NumPy float64 arrays (host).

    Attributes:
        g: the gain.
        lambda_max: the largest Lyapunov exponent ``-1 + √(1 - E₀)`` per unit time (τ = 1).
        delta0: ``Δ₀ = Δ(0)``, the variance of ``x`` (0 for ``g <= 1``).
        tau: ``(M+1,)`` lags ``τ >= 0`` (``Δ`` is even in ``τ``).
        autocorrelation: ``(M+1,)`` ``Δ(τ)``.
        ground_energy: ``E₀``, the ground state of ``-∂² + 1 - g² C_φ'(Δ(τ))``.
        goldstone_energy: ``E₁``, the lowest odd state, 0 for the exact solution (NaN for
            ``g <= 1``, where there is no bound state).
        decay_rate: ``κ = √(1 - g²⟨φ'⟩²)``, ``Δ(τ) ∝ e^{-κτ}`` at large ``τ`` (``√(1-g²)``
            for ``g < 1``, where ``Δ ≡ 0``).
        residual: ``|Δ₀²/2 - g² Var Φ| / Δ₀²`` at the returned ``Δ₀`` (0 for ``g <= 1``).
        converged: True when ``g <= 1`` (exact), or when the root's residual is below
            ``1e-8``, the integration reached ``Δ < 10⁻³ Δ₀`` before it stopped and
            ``|E₁| <= goldstone_tol |E₀|``; then ``lambda_max`` is right to about
            ``goldstone_tol`` relative (measured against an independent SciPy solve).
    """

    g: float
    lambda_max: float
    delta0: float
    tau: np.ndarray
    autocorrelation: np.ndarray
    ground_energy: float
    goldstone_energy: float
    decay_rate: float
    residual: float
    converged: bool


# ----------------------------------------------------------------------------- tanh and Φ


def _phi(u):
    return jnp.tanh(u)


def _log_cosh(u):
    """``log cosh u`` without overflow."""
    a = jnp.abs(u)
    return a + jnp.log1p(jnp.exp(-2.0 * a)) - math.log(2.0)


def _dphi(u):
    t = jnp.tanh(u)
    return 1.0 - t * t


def _d2phi(u):
    t = jnp.tanh(u)
    return -2.0 * t * (1.0 - t * t)


def _expect(f, variance, n):
    """``E f(x)``, ``x ~ N(0, variance)``."""
    s = jnp.sqrt(variance)
    return gaussian_expectation(lambda z: f(s * z), num_points=n, dtype=jnp.float64)


# ----------------------------------------------------------------------------- kernels


@functools.partial(jax.jit, static_argnames=("n",))
def _energy_excess(delta0, g, n):
    """``g² Var Φ / Δ₀² - 1/2``: positive below the root, negative above."""
    mean = _expect(_log_cosh, delta0, n)
    var = _expect(lambda u: (_log_cosh(u) - mean) ** 2, delta0, n)
    return g * g * var / (delta0 * delta0) - 0.5


@functools.partial(jax.jit, static_argnames=("n", "num_bisections"))
def _delta0_root(g, n, num_bisections=200):
    lo = jnp.asarray(1e-12, jnp.float64) * g * g
    hi = 2.0 * g * g

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        above = _energy_excess(mid, g, n) < 0
        return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

    lo, hi = jax.lax.fori_loop(0, num_bisections, body, (lo, hi))
    root = 0.5 * (lo + hi)
    return root, jnp.abs(_energy_excess(root, g, n) + 0.0)


@functools.partial(jax.jit, static_argnames=("n",))
def _kernels(delta, delta0, n):
    """``C_φ``, ``C_φ'``, ``C_φ''`` at one ``Δ`` (inner and outer Gauss–Hermite rules)."""
    a = jnp.sqrt(jnp.maximum(delta0 - delta, 0.0))
    b = jnp.sqrt(jnp.maximum(delta, 0.0))

    def c(f):
        inner = jax.vmap(lambda z: gaussian_expectation(lambda x: f(a * x + b * z),
                                                        num_points=n, dtype=jnp.float64))
        return gaussian_expectation(lambda z: inner(z) ** 2, num_points=n, dtype=jnp.float64)

    return jnp.stack([c(_phi), c(_dphi), c(_d2phi)])


def _hermite(x, grid, values, slopes):
    """Cubic Hermite interpolation on a uniform grid."""
    h = grid[1] - grid[0]
    i = jnp.clip(jnp.floor((x - grid[0]) / h).astype(jnp.int32), 0, grid.shape[0] - 2)
    t = (x - grid[i]) / h
    t2, t3 = t * t, t * t * t
    return ((2 * t3 - 3 * t2 + 1) * values[i] + (t3 - 2 * t2 + t) * h * slopes[i]
            + (-2 * t3 + 3 * t2) * values[i + 1] + (t3 - t2) * h * slopes[i + 1])


@functools.partial(jax.jit, static_argnames=("num_tau",))
def _autocorrelation(g, delta0, kappa, grid, table, step, num_tau):
    """``Δ(τ_k)``, ``k = 0..num_tau``, by RK4, continued by the tail ``e^{-κτ}``."""
    c_phi, c_dphi, c_d2phi = table

    def accel(d):
        return d - g * g * _hermite(d, grid, c_phi, c_dphi)

    def f(y):
        return jnp.stack([y[1], accel(y[0])])

    rk4 = discretize(vector_field(lambda y, u: f(y)), step)  # the library's one RK4 step
    stop = STOP_FRACTION * delta0

    def body(carry, _):
        y, stopped, d_stop = carry
        y_rk = rk4(y, None)
        tail = jnp.stack([y[0] * jnp.exp(-kappa * step), -kappa * y[0] * jnp.exp(-kappa * step)])
        now = stopped | (y_rk[0] < stop) | (y_rk[1] >= 0)
        y_new = jnp.where(stopped, tail, jnp.where(now, tail, y_rk))
        d_stop = jnp.where(now & ~stopped, y[0], d_stop)
        return (y_new, now, d_stop), y_new[0]

    y0 = jnp.stack([delta0, jnp.zeros_like(delta0)])
    (_, _, d_stop), ds = jax.lax.scan(body, (y0, jnp.asarray(False), delta0), None,
                                      length=num_tau)
    deltas = jnp.concatenate([delta0[None], ds])
    potential = 1.0 - g * g * _hermite(jnp.clip(deltas, 0.0, delta0), grid, c_dphi, c_d2phi)
    return deltas, potential, d_stop


def _any_eigenvalue_below(energy, diag, off2):
    """Whether the symmetric tridiagonal (diag, off-diagonal²) has an eigenvalue below
    ``energy``: Sylvester's law of inertia, a negative pivot of its LDLᵀ shifted by it."""
    tiny = jnp.asarray(1e-300, jnp.float64)

    def body(d_prev, xs):
        a, e2 = xs
        d = a - energy - e2 / d_prev
        d = jnp.where(d == 0, -tiny, d)
        return d, d < 0

    d0 = diag[0] - energy
    d0 = jnp.where(d0 == 0, -tiny, d0)
    _, neg = jax.lax.scan(body, d0, (diag[1:], off2))
    return jnp.any(neg) | (d0 < 0)


@jax.jit
def _lowest_eigenvalue(diag, off2, lo, hi):
    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        below = _any_eigenvalue_below(mid, diag, off2)
        return jnp.where(below, lo, mid), jnp.where(below, mid, hi)

    lo, hi = jax.lax.fori_loop(0, 100, body, (lo, hi))
    return 0.5 * (lo + hi)


def _ground_energies(potential, step):
    """Lowest even (``ψ'(0) = 0``) and odd (``ψ(0) = 0``) states, ``ψ(τ_max) = 0``."""
    h2 = step * step
    diag = 2.0 / h2 + potential
    lo = jnp.min(potential) - 1.0
    hi = jnp.max(potential) + 4.0 / h2 + 1.0
    # Even: ghost ψ_{-1} = ψ_1 gives row 0 (2ψ_0 - 2ψ_1)/h², symmetrised off-diagonal² 2/h⁴.
    off2 = jnp.full(potential.shape[0] - 1, 1.0 / (h2 * h2)).at[0].set(2.0 / (h2 * h2))
    even = _lowest_eigenvalue(diag, off2, lo, hi)
    # Odd: ψ_0 = 0. Decoupling row 0 (off-diagonal 0, a diagonal above ``hi``) leaves the
    # Dirichlet problem on the other rows, in arrays of the same shape (one compilation).
    odd = _lowest_eigenvalue(diag.at[0].set(2.0 * hi), off2.at[0].set(0.0), lo, hi)
    return even, odd


# ----------------------------------------------------------------------------- public


def rate_mean_field(
    g: float,
    *,
    num_points: int | None = None,
    num_delta: int = 257,
    num_tau: int = 8192,
    goldstone_tol: float = 1e-3,
) -> RateMeanField:
    """Dynamic mean-field autocorrelation and largest Lyapunov exponent of a rate network.

    For ``dx/dt = -x + J tanh(x)``, ``J_ij ~ N(0, g²/N)``, ``N → ∞`` (Sompolinsky, Crisanti
    & Sommers 1988): ``Δ₀`` from energy conservation of ``Δ'' = Δ - g² C_φ(Δ, Δ₀)``, the
    autocorrelation ``Δ(τ)``, and ``λ_max = -1 + √(1 - E₀)`` with ``E₀`` the ground state of
    ``-∂²_τ + 1 - g² C_φ'(Δ(τ), Δ₀)`` (see the module docstring for the method). Float64
    throughout (``jax.enable_x64`` around jitted kernels); ``g`` must be a concrete number
    (not traced): the grid sizes depend on the solution.

    Arguments:
        g: gain, finite and ``> 0``.
        num_points: Gauss–Hermite nodes per axis (default ``max(100, 40 Δ₀)``, at most
            800: node spacing well below tanh's scale for ``x ~ N(0, Δ₀)``).
        num_delta: points of the ``Δ`` grid for the interpolated kernels (>= 9).
        num_tau: RK4 and finite-difference steps over ``[0, 40/κ]`` (>= 256).
        goldstone_tol: the largest ``|E₁|/|E₀|`` counted as converged.

    Returns:
        ``RateMeanField`` (``lambda_max``, ``delta0``, ``tau``, ``autocorrelation``,
        ``ground_energy``, ``goldstone_energy``, ``decay_rate``, ``residual``,
        ``converged``).

    Example:
        >>> mf = rate_mean_field(2.0)
        >>> round(mf.lambda_max, 3), round(mf.delta0, 3), mf.converged
        (0.112, 1.925, True)
    """
    if isinstance(g, (str, bytes, bool)) or np.ndim(g) != 0:
        raise TypeError(f"`g` must be a real scalar, got {type(g).__name__} {g!r}")
    g = check_positive_float("g", g)
    if num_points is not None:
        num_points = check_positive_int("num_points", num_points, minimum=8)
    num_delta = check_positive_int("num_delta", num_delta, minimum=9)
    num_tau = check_positive_int("num_tau", num_tau, minimum=256)
    goldstone_tol = check_positive_float("goldstone_tol", goldstone_tol)
    if g <= 1.0:
        kappa = math.sqrt(1.0 - g * g)
        tau = np.linspace(0.0, TAU_DECAYS / max(kappa, 1.0), num_tau + 1)
        return RateMeanField(g, g - 1.0, 0.0, tau, np.zeros_like(tau), 1.0 - g * g,
                             float("nan"), kappa, 0.0, True)
    with jax.enable_x64(True):
        return _solve(g, num_points, num_delta, num_tau, goldstone_tol)


def _solve(g, num_points, num_delta, num_tau, goldstone_tol):
    gj = jnp.asarray(g, jnp.float64)
    delta0, residual = _delta0_root(gj, 800)
    d0 = float(delta0)
    n = num_points or int(min(800, max(100, math.ceil(40 * d0))))
    grid = jnp.linspace(0.0, delta0, num_delta)
    table = jax.lax.map(lambda d: _kernels(d, delta0, n), grid).T  # (3, num_delta)
    kappa2 = 1.0 - g * g * float(table[1, 0])
    kappa = math.sqrt(max(kappa2, 0.0))
    ok = kappa2 > 0 and math.isfinite(d0) and d0 > 0
    if not ok:
        nan = float("nan")
        return RateMeanField(g, nan, d0, np.zeros(1), np.full(1, d0), nan, nan, nan,
                             float(residual), False)
    tau_max = TAU_DECAYS / kappa
    step = tau_max / num_tau
    deltas, potential, d_stop = _autocorrelation(gj, delta0, jnp.asarray(kappa, jnp.float64),
                                                 grid, table, jnp.asarray(step, jnp.float64),
                                                 num_tau)
    e0, e1 = (float(e) for e in _ground_energies(potential, jnp.asarray(step, jnp.float64)))
    lam = -1.0 + math.sqrt(1.0 - e0)
    converged = (float(residual) <= 1e-8 and float(d_stop) <= 10 * STOP_FRACTION * d0
                 and e0 < 0 and abs(e1) <= goldstone_tol * abs(e0) and math.isfinite(lam))
    tau = np.arange(num_tau + 1) * step
    return RateMeanField(g, lam, d0, tau, np.asarray(deltas), e0, e1, kappa,
                         float(residual), bool(converged))
