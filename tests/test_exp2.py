"""Helpers of the mlp-depth-gradients and rnn-jacobian-regimes experiments.

The experiments themselves run (QUICK_CONFIG, every check must pass) in
tests/test_experiments.py; here the closed forms and the theory they are checked against.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad
from experiments import _mean_field as mf
from experiments import mlp_depth_gradients as mlp
from experiments import rnn_jacobian_regimes as rnn

# ----------------------------------------------------------------- Gaussian quadrature


def test_gaussian_expectation_moments(x64):
    # The experiments take their Gaussian moments from jaxgrad.gaussian_expectation.
    q = 2.5

    def expect(f):
        return float(jaxgrad.gaussian_expectation(lambda z: f(math.sqrt(q) * z),
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


# ----------------------------------------------------------------- MLP theory


def test_mean_field_profile_linear_network_closed_form():
    L, N, sw2 = 5, 64, 0.7
    p = mlp.mean_field_profile("identity", sw2, L, N)
    # v_l = σ_w^(2(L-l)), mean|∂L/∂z_l| = √(2 v_l/π) for l < L, and 1 at the last layer.
    expected = [math.sqrt(2 * sw2 ** (L - layer) / math.pi) for layer in range(1, L)] + [1.0]
    np.testing.assert_allclose(p.mean_abs_preactivation_grads, expected, rtol=1e-6)
    np.testing.assert_allclose(p.preactivation_var, [sw2**layer for layer in range(1, L + 1)],
                               rtol=1e-5)
    assert p.log_ratio_std == pytest.approx(math.sqrt((L - 1) / (2 * N)), rel=1e-6)


def test_mean_field_profile_relu_he_is_flat():
    L, N = 6, 100
    p = mlp.mean_field_profile("relu", 2.0, L, N)
    np.testing.assert_allclose(p.mean_abs_preactivation_grads[:-1],
                               math.sqrt(2 / math.pi) / 2, rtol=1e-5)
    assert p.mean_abs_preactivation_grads[-1] == pytest.approx(0.5, rel=1e-6)
    # Hanin (2018): the log-norm of a ReLU layer's factor has variance 5/(4N).
    assert p.log_ratio_std == pytest.approx(math.sqrt(5 * (L - 1) / (4 * N)), rel=1e-5)


def test_mean_field_profile_seed_002_linear_regime_factor():
    N = 100
    p = mlp.mean_field_profile("sigmoid", N * 0.01**2, 10, N)
    steps = p.mean_abs_preactivation_grads[:-2] / p.mean_abs_preactivation_grads[1:-1]
    # σ'(z) ≈ 1/4 - z²/16: layer 1 has q = 0.01 (relative shift 0.25%), later layers 0.0025.
    np.testing.assert_allclose(steps, 0.25 * 0.01 * math.sqrt(N), rtol=3e-3)
    np.testing.assert_allclose(steps[1:], 0.25 * 0.01 * math.sqrt(N), rtol=1e-3)


def test_random_walk_slope_std():
    assert mlp.random_walk_slope_std(2, 0.3) == pytest.approx(0.3, rel=1e-12)
    rng = np.random.default_rng(0)
    n, s = 9, 0.07
    walks = np.concatenate([np.zeros((20000, 1)),
                            np.cumsum(rng.normal(0, s, (20000, n - 1)), axis=1)], axis=1)
    k = np.arange(n)
    slopes = np.polyfit(k, walks.T, 1)[0]
    assert mlp.random_walk_slope_std(n, s) == pytest.approx(slopes.std(), rel=0.03)
    with pytest.raises(ValueError, match="num_points"):
        mlp.random_walk_slope_std(1, 1.0)


def test_seed_listing_port_matches_library():
    cfg = jaxgrad.MLPConfig(in_dim=8, width=8, depth=4, activation="sigmoid", init="normal",
                            init_options=(("std", 0.5),))
    params = jaxgrad.init_mlp(jax.random.key(1), cfg)
    x = jax.random.normal(jax.random.key(2), (5, 8))
    flow = jaxgrad.mlp_gradient_flow(params, x, None, cfg, loss="sum")
    weights = [np.asarray(params.first.W)] + [np.asarray(w) for w in params.hidden.W]
    ours = mlp.seed_listing_gradient_magnitudes(np.asarray(x), weights)
    np.testing.assert_allclose(np.asarray(flow.mean_abs_preactivation_grads), ours, rtol=1e-5)


def test_seed_listing_literal_uses_derivative_at_output():
    x = np.array([[0.3, -1.2]])
    W = np.array([[0.5, -0.4], [0.2, 0.9]])
    a = 1 / (1 + np.exp(-(x @ W)))
    s = 1 / (1 + np.exp(-a))
    literal = mlp.seed_listing_gradient_magnitudes(x, [W], derivative_at="output")
    assert literal[0] == pytest.approx(np.mean(s * (1 - s)), rel=1e-12)
    with pytest.raises(ValueError, match="derivative_at"):
        mlp.seed_listing_gradient_magnitudes(x, [W], derivative_at="input")


@pytest.mark.parametrize("name", [n for n in mlp.DEFAULT_CONFIG["configurations"]])
def test_setup_weight_var_matches_initialiser(name):
    setup = mlp.make_setup(name, 100, 3)
    params = jaxgrad.init_mlp(jax.random.key(0), setup.config)
    W = np.asarray(params.hidden.W)
    if setup.weight_var is None:
        assert not setup.mean_field_checked
        return
    assert abs(W.mean()) < 0.05 * W.std()  # mean field here needs zero-mean weights
    assert 100 * W.var() == pytest.approx(setup.weight_var, rel=0.05)


def test_make_setup_unknown_name():
    with pytest.raises(ValueError, match="unknown configuration"):
        mlp.make_setup("sigmoid_magic", 10, 3)


def test_run_requires_seed_configuration():
    with pytest.raises(ValueError, match="sigmoid_normal"):
        mlp.run({**mlp.DEFAULT_CONFIG, "configurations": ["relu_he"]})


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
    return {**rnn.DEFAULT_CONFIG, "num_units": 8, "num_steps": 30, "burn_in": 0,
            "fit_start": 1, "regimes": regimes, "two_by_two_lags": 4}


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


def test_random_sign_loss_gradient_is_the_signs():
    signs = jnp.array([[1.0, -1.0], [-1.0, -1.0]])
    g = jax.grad(mlp.random_sign_loss)(jnp.ones((2, 2)), signs)
    np.testing.assert_array_equal(np.asarray(g), np.asarray(signs))
