"""Helpers of the mlp-depth-gradients experiment (experiments/mlp_depth_gradients.py).

The experiment itself runs (QUICK_CONFIG, every check must pass) in
tests/test_experiments.py; here the closed forms and the theory it is checked against.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad
from experiments import mlp_depth_gradients as mlp

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


@pytest.mark.parametrize("name", mlp.Config().configurations)
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
        mlp.compute(mlp.Config(configurations=("relu_he",)))


def test_random_sign_loss_gradient_is_the_signs():
    signs = jnp.array([[1.0, -1.0], [-1.0, -1.0]])
    g = jax.grad(mlp.random_sign_loss)(jnp.ones((2, 2)), signs)
    np.testing.assert_array_equal(np.asarray(g), np.asarray(signs))
