"""Helpers of the rnn-jacobian-regimes experiment (experiments/rnn_jacobian_regimes.py).

The experiment itself runs (QUICK_CONFIG, every check must pass) in
tests/test_experiments.py; here the closed forms and the theory it is checked against.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad
from experiments import rnn_jacobian_regimes as rnn

# ----------------------------------------------------------------- RNN helpers


def test_two_by_two_closed_form_matches_matrix_powers():
    eps, c = 0.75, 0.7
    M = np.array([[0.0, 2.0], [eps, 0.0]]) * c
    closed = rnn.two_by_two_log_norms(eps, c, 12)
    for k in range(1, 13):
        assert closed[k - 1] == pytest.approx(
            math.log(np.linalg.norm(np.linalg.matrix_power(M, k), 2)), abs=1e-12)
    # (W_rec D)^(2n) = (2εc²)^n I.
    np.testing.assert_allclose(np.linalg.matrix_power(M, 6), (2 * eps * c * c) ** 3 * np.eye(2),
                               atol=1e-14)


def test_two_by_two_step_jacobian_is_W_rec_D(x64):
    p = rnn.two_by_two_params(0.75, 0.7)
    J = jax.jacfwd(lambda x: rnn.two_by_two_step(x, None, p))(jnp.array([0.3, -2.0]))
    np.testing.assert_allclose(np.asarray(J), np.asarray(p.W_rec) * 0.7, rtol=1e-15)


def test_two_by_two_library_products_match_closed_form(x64):
    p = rnn.two_by_two_params(0.75, 0.9)
    res = jaxgrad.jacobian_product_norms(rnn.two_by_two_step, jnp.ones(2), num_steps=20,
                                         params=p, spectral_method="svd", step_norms=False)
    np.testing.assert_allclose(np.asarray(res.log_norms), rnn.two_by_two_log_norms(0.75, 0.9, 20),
                               atol=1e-12)


@pytest.mark.parametrize(
    "regime, match",
    [
        ({"name": "a"}, "needs"),
        ({"name": "a", "activation": "tanh", "scaling": "gaussian", "value": 2.0,
          "input_std": 0.0, "expect": "explode"}, "expect"),
        ({"name": "a", "activation": "sigmoid", "scaling": "gaussian", "value": 2.0,
          "input_std": 0.0, "expect": "chaotic"}, "chaotic"),
        ({"name": "a", "activation": "tanh", "scaling": "gaussian", "value": 2.0,
          "input_std": 1.0, "expect": "chaotic"}, "chaotic"),
    ],
)
def test_bad_regimes(regime, match):
    with pytest.raises(ValueError, match=match):
        rnn._check_regime(regime)


def _tiny_rnn_config(regimes):
    return rnn.Config(num_units=8, num_steps=30, burn_in=0, fit_start=1,
                      regimes=tuple(regimes), two_by_two_lags=4)


@pytest.mark.slow
def test_rnn_vanishing_regime_needs_sigma_max_below_threshold():
    bad = {"name": "t", "activation": "tanh", "scaling": "spectral_norm", "value": 1.5,
           "input_std": 1.0, "expect": "vanishing"}
    with pytest.raises(ValueError, match="expects vanishing"):
        rnn.run(_tiny_rnn_config([bad]))


@pytest.mark.slow
def test_run_regime_respects_pascanu_bound():
    regime = {"name": "s", "activation": "sigmoid", "scaling": "spectral_norm", "value": 3.9,
              "input_std": 1.0, "expect": "vanishing"}
    out = rnn.run_regime(regime, jax.random.key(3), num_units=8, num_steps=30, burn_in=5,
                         fit_start=1)
    assert out["spectral_norm"] == pytest.approx(3.9, rel=1e-5)
    assert out["bound_rate"] == pytest.approx(math.log(3.9 / 4), rel=1e-4)
    assert out["max_log_norm_minus_bound"] < 0
    assert out["rate"] < out["bound_rate"]
