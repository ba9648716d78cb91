"""Per-layer and per-timestep gradient flow against closed forms and explicit backprop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad


def _mlp(**kw):
    cfg = jaxgrad.MLPConfig(**{"in_dim": 8, "width": 6, "depth": 4, "out_dim": 3, **kw})
    return cfg, jaxgrad.init_mlp(jax.random.key(0), cfg)


def test_mlp_flow_matches_explicit_per_layer_gradients():
    cfg, p = _mlp(activation="tanh", init="glorot")
    x = jax.random.normal(jax.random.key(1), (5, 8))
    y = jnp.array([0, 1, 2, 0, 1])
    flow = jaxgrad.mlp_gradient_flow(p, x, y, cfg)

    def loss(params):
        out, _ = jaxgrad.mlp_apply(params, x, cfg)
        return jaxgrad.LOSSES["cross_entropy"](out, y)

    g = jax.grad(loss)(p)
    W = [jnp.linalg.norm(g.first.W)] + [jnp.linalg.norm(g.hidden.W[i]) for i in range(3)]
    np.testing.assert_allclose(flow.weight_grad_norms, W, rtol=1e-5)
    assert float(flow.loss) == pytest.approx(float(loss(p)), rel=1e-6)

    # ∂L/∂h_l and ∂L/∂z_l by explicit layer-by-layer backprop
    hs, zs = [], []
    h = x
    Ws = [p.first.W] + list(p.hidden.W)
    bs = [p.first.b] + list(p.hidden.b)
    for W_l, b_l in zip(Ws, bs, strict=True):
        z = h @ W_l + b_l[None]
        h = jnp.tanh(z)
        zs.append(z)
        hs.append(h)
    out = h @ p.readout.W + p.readout.b[None]
    g_out = jax.grad(lambda o: jaxgrad.LOSSES["cross_entropy"](o, y))(out)
    g_h = g_out @ p.readout.W.T
    dh, dz = [], []
    for layer in reversed(range(4)):
        dh.insert(0, jnp.linalg.norm(g_h))
        g_z = g_h * (1 - jnp.tanh(zs[layer]) ** 2)
        dz.insert(0, jnp.mean(jnp.abs(g_z)))
        g_h = g_z @ Ws[layer].T
    np.testing.assert_allclose(flow.activation_grad_norms, dh, rtol=1e-5)
    np.testing.assert_allclose(flow.mean_abs_preactivation_grads, dz, rtol=1e-5)


def test_seed002_sigmoid_network_vanishes_at_the_mean_field_rate():
    """Tiny weights: z ≈ 0, σ' ≈ 1/4, so each layer scales gradients by ≈ (1/4)·0.01·√N."""
    cfg = jaxgrad.MLPConfig(in_dim=100, width=100, depth=10, activation="sigmoid",
                            init="normal", init_options=(("std", 0.01),))
    p = jaxgrad.init_mlp(jax.random.key(42), cfg)
    x = jax.random.normal(jax.random.key(0), (32, 100))
    flow = jaxgrad.mlp_gradient_flow(p, x, None, cfg, loss="sum")
    g = np.asarray(flow.mean_abs_preactivation_grads)
    assert g[-1] == pytest.approx(0.25, rel=1e-3)  # ∂Σh/∂z at the last layer = σ'(≈0)
    # growth per layer towards the output = 1 / (backward factor per layer)
    growth = np.exp(np.mean(np.diff(np.log(g))))
    assert growth == pytest.approx(1 / (0.25 * 0.01 * np.sqrt(100)), rel=0.1)


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
def test_mlp_flow_residual_and_norms_against_autodiff(norm):
    cfg, p = _mlp(activation="relu", residual=True, norm=norm, width=8, in_dim=8)
    x = jax.random.normal(jax.random.key(2), (6, 8))
    y = jnp.arange(6) % 3
    flow = jaxgrad.mlp_gradient_flow(p, x, y, cfg)
    probes = jnp.zeros((4, 6, 8))
    g_probe = jax.grad(lambda pr: jaxgrad.LOSSES["cross_entropy"](
        jaxgrad.mlp_apply(p, x, cfg, probes=pr)[0], y))(probes)
    np.testing.assert_allclose(flow.activation_grad_norms,
                               jnp.sqrt(jnp.sum(g_probe**2, axis=(1, 2))), rtol=1e-5)
    assert np.all(np.isfinite(np.asarray(flow.mean_abs_preactivation_grads)))


def test_mlp_flow_custom_loss_and_jit_cache():
    cfg, p = _mlp()
    x = jnp.ones((2, 8))

    def loss(out, y):
        return jnp.sum(out**2)

    f1 = jaxgrad.mlp_gradient_flow(p, x, None, cfg, loss=loss)
    f2 = jaxgrad.mlp_gradient_flow(p, 2 * x, None, cfg, loss=loss)
    assert float(f1.loss) != float(f2.loss)


def test_recurrent_flow_linear_closed_form():
    a, T = 0.5, 12
    flow = jaxgrad.recurrent_gradient_flow(lambda x, u: a * x + u, jnp.ones(3),
                                           jnp.zeros((T, 3)), lambda xs: jnp.sum(xs[-1]))
    t = np.arange(1, T + 1)
    np.testing.assert_allclose(flow.state_grad_norms, np.sqrt(3) * a ** (T - t), rtol=1e-6)


def test_recurrent_flow_matches_jacobian_products_for_final_state_loss():
    """For L = c·x_T, ‖∂L/∂x_t‖ = ‖cᵀ ∂x_T/∂x_t‖ ≤ ‖c‖ ‖∂x_T/∂x_t‖ (equality in 1-D)."""
    p = jaxgrad.OneUnitParams(jnp.array(3.0), jnp.array(-1.5))

    def step(x, u, params):
        return jaxgrad.one_unit_step(x, u, params)

    x0, T = jnp.array([0.2]), 30
    flow = jaxgrad.recurrent_gradient_flow(step, x0, jnp.zeros((T, 0)),
                                           lambda xs: jnp.sum(xs[-1]), params=p)
    prod = jaxgrad.jacobian_product_norms(step, x0, num_steps=T, params=p)
    # state_grad_norms[t-1] is lag T - t; lag 0 is 1.
    np.testing.assert_allclose(np.log(np.asarray(flow.state_grad_norms[:-1]))[::-1],
                               np.asarray(prod.log_norms[:-1]), atol=1e-4)
    assert float(flow.state_grad_norms[-1]) == pytest.approx(1.0)


def test_recurrent_flow_pytree_state_and_sum_loss():
    def step(state, u):
        h, c = state
        return (0.5 * h, 0.9 * c + u)

    T = 5
    flow = jaxgrad.recurrent_gradient_flow(
        step, (jnp.ones(2), jnp.ones(2)), jnp.zeros((T, 2)),
        lambda states: jnp.sum(states[1]))  # L = Σ_t Σ_i c_t,i
    # ∂L/∂c_t = Σ_{s>=t} 0.9^{s-t} per unit
    t = np.arange(1, T + 1)
    expected = np.sqrt(2) * np.array([sum(0.9 ** (s - tt) for s in range(tt, T + 1)) for tt in t])
    np.testing.assert_allclose(flow.state_grad_norms, expected, rtol=1e-6)


class TestBadInput:
    def test_unknown_loss(self):
        cfg, p = _mlp()
        with pytest.raises(ValueError, match="loss"):
            jaxgrad.mlp_gradient_flow(p, jnp.ones((2, 8)), None, cfg, loss="hinge")

    def test_wrong_width(self):
        cfg, p = _mlp()
        with pytest.raises(ValueError, match="`x` must have shape \\(B, 8\\)"):
            jaxgrad.mlp_gradient_flow(p, jnp.ones((2, 7)), None, cfg)

    def test_config_type(self):
        cfg, p = _mlp()
        with pytest.raises(TypeError, match="config"):
            jaxgrad.mlp_gradient_flow(p, jnp.ones((2, 8)), None, {"depth": 4})

    def test_recurrent_bad_loss_and_inputs(self):
        with pytest.raises(TypeError, match="loss_fn"):
            jaxgrad.recurrent_gradient_flow(lambda x, u: x, jnp.ones(2), jnp.zeros((3, 1)), 1.0)
        with pytest.raises(ValueError, match="inputs"):
            jaxgrad.recurrent_gradient_flow(lambda x, u: x, jnp.ones(2), jnp.zeros(()),
                                            jnp.sum)
