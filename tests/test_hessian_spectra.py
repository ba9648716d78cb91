"""Helpers of the hessian-spectra experiment (experiments/hessian_spectra.py).

The experiment itself runs (QUICK_CONFIG, every check must pass) in
tests/test_experiments.py; here the references it is checked against.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jaxgrad
from experiments import hessian_spectra as hs
from experiments import pascanu_cliff


def test_cliff_line_is_where_x0_is_a_fixed_point_with_multiplier_one_at_w_star():
    w_star = pascanu_cliff.critical_w(0.5)
    s = pascanu_cliff.sigmoid(0.5)
    assert w_star * s * (1 - s) == pytest.approx(1.0, rel=1e-15)
    for w in (3.0, 6.0, 11.0):
        assert w * s + pascanu_cliff.cliff_b(w) == pytest.approx(0.5, abs=1e-15)


@pytest.mark.parametrize("w, offset", [(6.0, 0.3), (6.0, -2e-8), (8.0, 1e-3), (2.0, -1.0)])
def test_one_unit_hessian_recursion_matches_jax_hessian(x64, w, offset):
    base = hs.cliff_defaults()
    kw = {"x0": base["x0"], "target": base["target"], "num_steps": base["num_steps"]}
    b = float(pascanu_cliff.cliff_b(w)) + offset
    grad, hess = hs.one_unit_hessian(w, np.asarray([b]), **kw)

    def loss(v):
        return pascanu_cliff.one_unit_loss(jaxgrad.OneUnitParams(v[0], v[1]), **kw)

    v = jnp.asarray([w, b], jnp.float64)
    H = np.asarray(jax.hessian(loss)(v))
    g = np.asarray(jax.grad(loss)(v))
    scale = np.max(np.abs(H))
    # near the cliff rounding in x_t grows like μ^t (3e7 at w = 6): 1e-7 of the scale
    np.testing.assert_allclose(hess[0], H, atol=1e-7 * scale)
    np.testing.assert_allclose(grad[0], g, atol=1e-7 * np.max(np.abs(g)))


@pytest.mark.slow
def test_dense_hessian_sums_chunks_to_the_whole_batch_hessian():
    # tanh: smooth, so the Hessian is symmetric (a ReLU exactly on its kink breaks that)
    cfg = jaxgrad.MLPConfig(in_dim=64, width=3, depth=3, out_dim=10, activation="tanh",
                            init="glorot", residual=True)
    params = jaxgrad.init_mlp(jax.random.key(0), cfg)
    x = jax.random.normal(jax.random.key(1), (8, 64))
    y = jnp.arange(8, dtype=jnp.int32) % 10
    whole, asym_whole = hs.dense_hessian(cfg, params, x, y, 8)  # one chunk: jax.hessian
    H, asym = hs.dense_hessian(cfg, params, x, y, 4)
    assert H.shape == whole.shape == (259, 259) and np.array_equal(H, H.T)
    assert asym < 1e-12 and asym_whole < 1e-12
    np.testing.assert_allclose(H, whole, atol=1e-12 * np.max(np.abs(whole)))
    # against a float64 Hessian-vector product (forward over reverse) of the same loss
    with jax.enable_x64(True):
        flat, unravel = ravel_pytree(
            jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params))
        x64 = jnp.asarray(np.asarray(x, np.float64))
        v = jax.random.normal(jax.random.key(2), flat.shape, jnp.float64)
        hvp = jax.jit(lambda f, t: jax.jvp(jax.grad(
            lambda g: hs._cross_entropy(unravel(g), (x64, y), cfg)), (f,), (t,))[1])(flat, v)
    np.testing.assert_allclose(H @ np.asarray(v), np.asarray(hvp),
                               atol=1e-12 * np.max(np.abs(hvp)))
    with pytest.raises(ValueError, match="`dense_chunk`"):
        hs.dense_hessian(cfg, params, x, y, 3)


def test_broadened_density_integrates_to_one():
    lam = np.asarray([-1.0, 0.0, 0.5, 3.0])
    grid = np.linspace(-3.0, 5.0, 4001)
    phi = hs._broadened(lam, grid, 0.1)
    assert np.trapezoid(phi, grid) == pytest.approx(1.0, abs=1e-9)
    at_minus_one = hs._broadened(lam, np.asarray([-1.0]), 0.1)[0]
    assert at_minus_one == pytest.approx(1 / (4 * 0.1 * np.sqrt(2 * np.pi)), rel=1e-12)


@pytest.mark.parametrize("override, match", [({"cliff_w": 4.0}, "`cliff_w`"),
                                             ({"cliff_log_distance": (0.0, -3.0, 5)},
                                              "`cliff_log_distance`")])
def test_cliff_slice_refuses_bad_config(override, match):
    with pytest.raises(ValueError, match=match):
        hs._cliff_slice(dataclasses.replace(hs.Config(), **override))
