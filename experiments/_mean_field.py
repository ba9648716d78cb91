"""Mean-field (Gaussian) expectations shared by the depth and recurrence experiments.

For a wide layer with zero-mean random weights the pre-activation ``z`` of a unit is
Gaussian, ``z ~ N(0, q)``; the forward variance map, the backward gain ``σ_w² E[φ'(z)²]``
and its finite-width spread need only a few moments of ``φ`` and ``φ'`` under that
Gaussian (Poole et al. 2016, "Exponential expressivity in deep neural networks through
transient chaos"; Schoenholz et al. 2017, "Deep information propagation"). They are
computed by ``jaxgrad.analysis.gaussian_expectation`` (Gauss–Hermite quadrature), with the
derivative by ``jax.grad``; the variance fixed point and the gain by ``jaxgrad.analysis.q_star`` and
``jaxgrad.chi_1``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

import jaxgrad


@functools.cache
def _moments_function(activation: str, num_nodes: int):
    """Jitted ``q -> (E φ², E|φ'|, E φ'², E φ'⁴)`` for ``z ~ N(0, q)``."""
    phi = jaxgrad.models.get_activation(activation)
    dphi = jax.vmap(jax.grad(phi))

    @jax.jit
    def moments(q):
        def expect(g):  # E g(√q z), z ~ N(0, 1)
            return jaxgrad.analysis.gaussian_expectation(lambda z: g(jnp.sqrt(q) * z),
                                                         num_points=num_nodes, dtype=q.dtype)

        return jnp.stack([expect(lambda z: phi(z) ** 2), expect(lambda z: jnp.abs(dphi(z))),
                          expect(lambda z: dphi(z) ** 2), expect(lambda z: dphi(z) ** 4)])

    return moments


def activation_moments(activation: str, variance: float, *, num_nodes: int = 200) -> np.ndarray:
    """``(E φ(z)², E|φ'(z)|, E φ'(z)², E φ'(z)⁴)`` for ``z ~ N(0, variance)``, float64."""
    q = jnp.asarray(variance, jnp.float32)
    return np.asarray(_moments_function(activation, num_nodes)(q), np.float64)


def mean_field_lyapunov(
    activation: str, gain: float, *, num_nodes: int = 200, num_iterations: int = 100
) -> tuple[float, float]:
    """Mean-field top Lyapunov exponent of ``x_{t+1} = W φ(x_t)``, ``W ~ N(0, gain²/N)``.

    The state variance settles at the fixed point ``q* = gain² E[φ(z)²]``, ``z ~ N(0, q*)``
    (``jaxgrad.analysis.q_star``, from ``q = 1``); a perturbation's squared norm grows by
    ``χ = gain² E[φ'(z)²]`` per step (``jaxgrad.chi_1``), so ``λ = ½ log χ`` (Molgedey,
    Schuchhardt & Schuster 1992; the discrete-time analogue of Sompolinsky, Crisanti &
    Sommers 1988). For tanh and ``gain <= 1`` the fixed point is ``q* = 0`` and
    ``λ = log gain``.

    Returns:
        ``(lyapunov, q_star)``.

    Example:
        >>> mean_field_lyapunov("tanh", 2.0)   # ≈ (0.155, 2.12)
    """
    if not gain > 0:
        raise ValueError(f"`gain` must be positive, got {gain}")
    g2 = gain * gain
    fixed = jaxgrad.analysis.q_star(g2, 0.0, activation=activation, num_points=num_nodes,
                                    num_iterations=num_iterations)
    if not bool(fixed.converged):
        raise ValueError(f"the variance map of {activation} at gain {gain} did not converge "
                         f"(residual {float(fixed.residual):.3g})")
    chi = jaxgrad.chi_1(g2, 0.0, q=fixed.q, activation=activation, num_points=num_nodes)
    return 0.5 * math.log(float(chi)), float(fixed.q)
