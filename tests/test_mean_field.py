"""Dynamic mean-field theory of the continuous rate network (``jaxgrad.analysis.rate_mean_field``).

References: the closed form below the transition (λ = g - 1, Δ₀ = 0), the near-critical
expansion (Δ₀ ≈ g - 1, λ ≈ (g - 1)²/2; Sompolinsky, Crisanti & Sommers 1988), and an
independent float64 NumPy/SciPy solve written here (trapezoid rules instead of
Gauss–Hermite, ``brentq`` for Δ₀, ``solve_ivp`` (DOP853) for Δ(τ), LAPACK's tridiagonal
eigensolver for the Schrödinger ground state).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.interpolate
import scipy.linalg
import scipy.optimize

import jaxgrad

# ----------------------------------------------------------------------------- reference


def _gauss_grid(num: int, width: float = 10.0):
    """Trapezoid nodes and weights for E f(z), z ~ N(0, 1) (spectrally accurate)."""
    z = np.linspace(-width, width, num)
    w = np.exp(-0.5 * z * z)
    return z, w / w.sum()


def _log_cosh(u):
    a = np.abs(u)
    return a + np.log1p(np.exp(-2 * a)) - math.log(2)


def _scipy_mean_field(g: float):
    """(λ_max, Δ₀, E₁) by an independent float64 solve."""
    z, w = _gauss_grid(4001, 12.0)

    def excess(d0):
        phi = _log_cosh(math.sqrt(d0) * z)
        var = w @ (phi - w @ phi) ** 2
        return g * g * var / d0**2 - 0.5

    d0 = scipy.optimize.brentq(excess, 1e-6, 2 * g * g, xtol=1e-14, rtol=1e-14)
    x, wx = _gauss_grid(301, 9.0)

    def kernels(d):
        a, b = math.sqrt(max(d0 - d, 0.0)), math.sqrt(max(d, 0.0))
        u = a * x[None, :] + b * x[:, None]        # rows: outer z, columns: inner x
        t = np.tanh(u)
        return (wx @ (np.sum(wx * t, 1) ** 2), wx @ (np.sum(wx * (1 - t * t), 1) ** 2))

    grid = np.linspace(0.0, d0, 401)
    c_phi, c_dphi = np.array([kernels(d) for d in grid]).T
    c_phi = scipy.interpolate.CubicSpline(grid, c_phi)
    c_dphi = scipy.interpolate.CubicSpline(grid, c_dphi)
    kappa = math.sqrt(1 - g * g * c_dphi(0.0))

    def rhs(_, y):
        return [y[1], y[0] - g * g * c_phi(y[0])]

    def small(_, y):
        return y[0] - 1e-4 * d0

    small.terminal = True
    tau_max = 40 / kappa
    tau = np.linspace(0, tau_max, 6001)
    sol = scipy.integrate.solve_ivp(rhs, (0, tau_max), [d0, 0.0], method="DOP853",
                                    rtol=1e-11, atol=1e-13 * d0, events=small,
                                    dense_output=True)
    t_stop = sol.t[-1]
    delta = np.where(tau <= t_stop, sol.sol(np.minimum(tau, t_stop))[0],
                     sol.y[0, -1] * np.exp(-kappa * (tau - t_stop)))
    pot = 1 - g * g * c_dphi(np.clip(delta, 0, d0))
    h = tau[1] - tau[0]
    diag = 2 / h**2 + pot
    off = np.full(len(tau) - 1, -1 / h**2)
    off[0] = -math.sqrt(2) / h**2                  # ψ'(0) = 0, symmetrised
    e0 = scipy.linalg.eigh_tridiagonal(diag, off, eigvals_only=True, select="i",
                                       select_range=(0, 0))[0]
    e1 = scipy.linalg.eigh_tridiagonal(diag[1:], off[1:], eigvals_only=True, select="i",
                                       select_range=(0, 0))[0]
    return -1 + math.sqrt(1 - e0), d0, e1


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("g", [0.3, 0.8, 0.99, 1.0])
def test_below_the_transition_is_the_quiescent_state(g):
    """g <= 1: Δ ≡ 0 and λ = g - 1, the linear stability of the origin (exact)."""
    mf = jaxgrad.analysis.rate_mean_field(g)
    assert mf.converged
    assert mf.delta0 == 0.0
    assert np.all(mf.autocorrelation == 0.0)
    assert mf.lambda_max == pytest.approx(g - 1, abs=1e-15)
    assert mf.ground_energy == pytest.approx(1 - g * g, abs=1e-15)


def test_near_the_transition():
    """Δ₀ ≈ g - 1 and λ ≈ (g - 1)²/2 as g → 1⁺ (SCS 1988), with O(g - 1) corrections."""
    ratios = []
    for g in (1.02, 1.05):
        mf = jaxgrad.analysis.rate_mean_field(g)
        assert mf.converged, mf
        eps = g - 1
        assert mf.delta0 / eps == pytest.approx(1.0, abs=3 * eps)
        ratios.append(mf.lambda_max / (eps * eps / 2))
        assert ratios[-1] == pytest.approx(1.0, abs=4 * eps)
    assert abs(ratios[0] - 1) < abs(ratios[1] - 1)  # the corrections shrink toward g = 1


@pytest.mark.parametrize("g", [1.5, 3.0])
def test_against_an_independent_scipy_solve(g):
    lam, d0, e1 = _scipy_mean_field(g)
    assert abs(e1) < 1e-3 * (1 + lam)  # the reference is self-consistent too
    mf = jaxgrad.analysis.rate_mean_field(g)
    assert mf.converged
    assert mf.delta0 == pytest.approx(d0, rel=1e-7)
    assert mf.lambda_max == pytest.approx(lam, rel=2e-4)
    # Δ(τ) starts at Δ₀ at rest, decreases monotonically and decays at the rate κ.
    d = mf.autocorrelation
    assert d[0] == mf.delta0 and np.all(np.diff(d) <= 0) and d[-1] < 1e-10 * d[0]
    tail = np.log(d[-200]) - np.log(d[-1])
    assert tail / (mf.tau[-1] - mf.tau[-200]) == pytest.approx(mf.decay_rate, rel=1e-6)


def test_converged_is_honest():
    """A coarse τ grid or Gauss–Hermite rule spoils the Goldstone mode and is reported."""
    good = jaxgrad.analysis.rate_mean_field(2.0)
    assert good.converged and abs(good.goldstone_energy) < 1e-5 * abs(good.ground_energy)
    bad = jaxgrad.analysis.rate_mean_field(2.0, num_points=8)
    assert not bad.converged
    strict = jaxgrad.analysis.rate_mean_field(2.0, goldstone_tol=1e-9)
    assert not strict.converged  # the Goldstone energy is ~1e-6, not 1e-9 of E₀


@pytest.mark.parametrize("bad, exc, match", [
    ({"g": 0.0}, ValueError, "`g`"), ({"g": -1.0}, ValueError, "`g`"),
    ({"g": float("nan")}, ValueError, "`g`"), ({"g": float("inf")}, ValueError, "`g`"),
    ({"g": "2"}, TypeError, "`g`"), ({"g": None}, TypeError, "`g`"),
    ({"g": 2.0, "num_points": 4}, ValueError, "`num_points`"),
    ({"g": 2.0, "num_points": 10.0}, TypeError, "`num_points`"),
    ({"g": 2.0, "num_delta": 3}, ValueError, "`num_delta`"),
    ({"g": 2.0, "num_tau": 10}, ValueError, "`num_tau`"),
    ({"g": 2.0, "goldstone_tol": 0.0}, ValueError, "`goldstone_tol`"),
])
def test_bad_input_is_refused_by_name(bad, exc, match):
    with pytest.raises(exc, match=match):
        jaxgrad.analysis.rate_mean_field(**bad)
