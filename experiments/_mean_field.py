"""Mean-field (Gaussian) expectations shared by the depth and recurrence experiments.

For a wide layer with zero-mean random weights the pre-activation ``z`` of a unit is
Gaussian, ``z ~ N(0, q)``; the forward variance map, the backward gain ``σ_w² E[φ'(z)²]``
and its finite-width spread need only a few moments of ``φ`` and ``φ'`` under that
Gaussian (Poole et al. 2016, "Exponential expressivity in deep neural networks through
transient chaos"; Schoenholz et al. 2017, "Deep information propagation"). They are
computed here by Gauss–Hermite quadrature, with the derivative by ``jax.grad``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

import jaxgrad


def gauss_hermite(num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``t`` and weights ``w`` with ``E f(z) = Σ w f(√q t)`` for ``z ~ N(0, q)``."""
    t, w = np.polynomial.hermite.hermgauss(num_nodes)
    return np.sqrt(2.0) * t, w / np.sqrt(np.pi)


def gaussian_expectation(f, variance: float, *, num_nodes: int = 200) -> float:
    """``E f(z)`` for ``z ~ N(0, variance)`` by Gauss–Hermite quadrature (``f`` vectorised)."""
    t, w = gauss_hermite(num_nodes)
    return float(np.sum(w * np.asarray(f(np.sqrt(variance) * t), dtype=np.float64)))


@functools.cache
def _moments_function(activation: str, num_nodes: int):
    """Jitted ``q -> (E φ², E|φ'|, E φ'², E φ'⁴)`` for ``z ~ N(0, q)``."""
    phi = jaxgrad.get_activation(activation)
    dphi = jax.vmap(jax.grad(phi))
    t, w = (jnp.asarray(a, jnp.float32) for a in gauss_hermite(num_nodes))

    @jax.jit
    def moments(q):
        z = jnp.sqrt(q) * t
        d = dphi(z)
        return jnp.stack([w @ phi(z) ** 2, w @ jnp.abs(d), w @ d**2, w @ d**4])

    return moments


def activation_moments(activation: str, variance: float, *, num_nodes: int = 200) -> np.ndarray:
    """``(E φ(z)², E|φ'(z)|, E φ'(z)², E φ'(z)⁴)`` for ``z ~ N(0, variance)``, float64."""
    q = jnp.asarray(variance, jnp.float32)
    return np.asarray(_moments_function(activation, num_nodes)(q), np.float64)


def mean_field_lyapunov(
    activation: str, gain: float, *, num_nodes: int = 200, num_iterations: int = 2000
) -> tuple[float, float]:
    """Mean-field top Lyapunov exponent of ``x_{t+1} = W φ(x_t)``, ``W ~ N(0, gain²/N)``.

    The state variance settles at the fixed point ``q* = gain² E[φ(z)²]``, ``z ~ N(0, q*)``
    (iterated from ``q = 1``); a perturbation's squared norm grows by
    ``χ = gain² E[φ'(z)²]`` per step, so ``λ = ½ log χ`` (Molgedey, Schuchhardt & Schuster
    1992; the discrete-time analogue of Sompolinsky, Crisanti & Sommers 1988). For tanh
    and ``gain <= 1`` the fixed point is ``q* = 0`` and ``λ = log gain``.

    Returns:
        ``(lyapunov, q_star)``.

    Example:
        >>> mean_field_lyapunov("tanh", 2.0)   # ≈ (0.155, 2.12)
    """
    if not gain > 0:
        raise ValueError(f"`gain` must be positive, got {gain}")
    g2 = gain * gain
    q = 1.0
    for _ in range(num_iterations):
        q_next = g2 * activation_moments(activation, q, num_nodes=num_nodes)[0]
        if abs(q_next - q) <= 1e-7 * max(q, 1e-30):
            q = q_next
            break
        q = q_next
    chi = g2 * activation_moments(activation, q, num_nodes=num_nodes)[2]
    return 0.5 * math.log(chi), float(q)
