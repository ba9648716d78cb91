"""experiments/_mean_field.py: Gaussian quadrature, activation moments and the mean-field
Lyapunov exponent the experiments check their measurements against (closed forms)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad
from experiments import _mean_field as mf

# ----------------------------------------------------------------- Gaussian quadrature


def test_gaussian_expectation_moments(x64):
    # The experiments take their Gaussian moments from jaxgrad.analysis.gaussian_expectation.
    q = 2.5

    def expect(f):
        return float(jaxgrad.analysis.gaussian_expectation(lambda z: f(math.sqrt(q) * z),
                                                           dtype=jnp.float64))

    assert expect(lambda z: z**2) == pytest.approx(q, rel=1e-12)
    assert expect(lambda z: z**4) == pytest.approx(3 * q * q, rel=1e-12)
    # A kink converges slowly under Gauss–Hermite (error ~ nodes^-3/2): 0.2% at 200 nodes.
    assert expect(jnp.abs) == pytest.approx(math.sqrt(2 * q / math.pi), rel=5e-3)


def test_activation_moments_closed_forms():
    q = 1.7
    # (E φ², E|φ'|, E φ'², E φ'⁴)
    np.testing.assert_allclose(mf.activation_moments("identity", q), [q, 1, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(mf.activation_moments("relu", q), [q / 2, 0.5, 0.5, 0.5],
                               rtol=1e-6)
    # sigmoid near 0: σ ≈ 1/2 + z/4, σ' ≈ 1/4 - z²/16.
    small = mf.activation_moments("sigmoid", 1e-6)
    np.testing.assert_allclose(small, [0.25, 0.25, 1 / 16, 1 / 256], rtol=1e-5)


def test_mean_field_lyapunov_below_and_above_one():
    lam, q = mf.mean_field_lyapunov("tanh", 0.5)
    assert q == pytest.approx(0.0, abs=1e-6)
    assert lam == pytest.approx(math.log(0.5), rel=1e-5)
    lam2, q2 = mf.mean_field_lyapunov("tanh", 2.0)
    # q* is a fixed point of the variance map and the exponent is positive (chaos).
    assert q2 == pytest.approx(4.0 * mf.activation_moments("tanh", q2)[0], rel=1e-5)
    assert 0.1 < lam2 < 0.2
    chi = 4.0 * mf.activation_moments("tanh", q2)[2]
    # λ from jaxgrad.chi_1, χ here from activation_moments: the same quadrature, float32.
    assert lam2 == pytest.approx(0.5 * math.log(chi), rel=1e-5)


def test_mean_field_lyapunov_bad_gain():
    with pytest.raises(ValueError, match="gain"):
        mf.mean_field_lyapunov("tanh", 0.0)
