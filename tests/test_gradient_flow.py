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
        return jaxgrad.analysis.LOSSES["cross_entropy"](out, y)

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
    g_out = jax.grad(lambda o: jaxgrad.analysis.LOSSES["cross_entropy"](o, y))(out)
    g_h = g_out @ p.readout.W.T
    dh, dz = [], []
    for layer in reversed(range(4)):
        dh.insert(0, jnp.linalg.norm(g_h))
        g_z = g_h * (1 - jnp.tanh(zs[layer]) ** 2)
        dz.insert(0, jnp.mean(jnp.abs(g_z)))
        g_h = g_z @ Ws[layer].T
    np.testing.assert_allclose(flow.activation_grad_norms, dh, rtol=1e-5)
    np.testing.assert_allclose(flow.mean_abs_preactivation_grads, dz, rtol=1e-5)


def test_web_article_sigmoid_network_vanishes_at_the_mean_field_rate():
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
    g_probe = jax.grad(lambda pr: jaxgrad.analysis.LOSSES["cross_entropy"](
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
    flow = jaxgrad.analysis.recurrent_gradient_flow(lambda x, u: a * x + u, jnp.ones(3),
                                                    jnp.zeros((T, 3)), lambda xs: jnp.sum(xs[-1]))
    t = np.arange(1, T + 1)
    np.testing.assert_allclose(flow.state_grad_norms, np.sqrt(3) * a ** (T - t), rtol=1e-6)


def test_recurrent_flow_matches_jacobian_products_for_final_state_loss():
    """For L = c·x_T, ‖∂L/∂x_t‖ = ‖cᵀ ∂x_T/∂x_t‖ ≤ ‖c‖ ‖∂x_T/∂x_t‖ (equality in 1-D)."""
    p = jaxgrad.models.OneUnitParams(jnp.array(3.0), jnp.array(-1.5))

    def step(x, u, params):
        return jaxgrad.models.one_unit_step(x, u, params)

    x0, T = jnp.array([0.2]), 30
    flow = jaxgrad.analysis.recurrent_gradient_flow(step, x0, jnp.zeros((T, 0)),
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
    flow = jaxgrad.analysis.recurrent_gradient_flow(
        step, (jnp.ones(2), jnp.ones(2)), jnp.zeros((T, 2)),
        lambda states: jnp.sum(states[1]))  # L = Σ_t Σ_i c_t,i
    # ∂L/∂c_t = Σ_{s>=t} 0.9^{s-t} per unit
    t = np.arange(1, T + 1)
    expected = np.sqrt(2) * np.array([sum(0.9 ** (s - tt) for s in range(tt, T + 1)) for tt in t])
    np.testing.assert_allclose(flow.state_grad_norms, expected, rtol=1e-6)


# --------------------------------------------------------------- norms at extreme scales


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1.0, 1e20, 1e30])
def test_scaled_norm_against_float64_at_extreme_scales(seed, scale):
    """sqrt(sum(g**2)) flushes 1e-30 entries to 0 and overflows 1e30 ones in float32."""
    g = scale * np.random.default_rng(seed).standard_normal((3, 5, 7))
    x = jnp.asarray(g, jnp.float32)
    ref = np.linalg.norm(np.asarray(x, np.float64).reshape(3, -1), axis=1)
    out = jaxgrad.analysis.scaled_norm(x, axis=(1, 2))
    np.testing.assert_allclose(out.norm, ref, rtol=1e-6)
    np.testing.assert_allclose(out.log_norm, np.log(ref), rtol=1e-6)
    whole = jaxgrad.analysis.scaled_norm(x)
    assert float(whole.norm) == pytest.approx(np.linalg.norm(ref), rel=1e-6)


def test_scaled_norm_zero_and_non_finite():
    out = jaxgrad.analysis.scaled_norm(jnp.asarray([[0.0, 0.0], [3e-30, 4e-30], [jnp.inf, 1.0],
                                                    [jnp.nan, 1.0]]), axis=1)
    np.testing.assert_allclose(out.norm[:2], [0.0, 5e-30], rtol=1e-6)
    assert out.log_norm[0] == -np.inf and out.norm[2] == np.inf and out.log_norm[2] == np.inf
    assert np.isnan(out.norm[3]) and np.isnan(out.log_norm[3])
    # a norm above float32's largest number: inf, but its log is finite
    big = jaxgrad.analysis.scaled_norm(jnp.full((4,), 3e38, jnp.float32))
    assert big.norm == np.inf
    assert float(big.log_norm) == pytest.approx(np.log(6e38), rel=1e-6)


def test_recurrent_flow_log_norms_below_float32_range():
    """x' = a x, L = Σ x_T: ‖∂L/∂x_t‖ = √N a^(T-t), down to 1.7e-39 (below float32's
    smallest normal number); the old sqrt(sum(g**2)) gave 0 from lag 20 on."""
    a, T, N = 0.1, 40, 3
    flow = jaxgrad.analysis.recurrent_gradient_flow(lambda x, u: a * x + u, jnp.ones(N),
                                                    jnp.zeros((T, N)), lambda xs: jnp.sum(xs[-1]))
    assert flow.log_state_grad_norms.dtype == jnp.float32
    lag = T - np.arange(1, T + 1)
    exact = lag * np.log(a) + 0.5 * np.log(N)
    np.testing.assert_allclose(flow.log_state_grad_norms, exact, rtol=1e-5)
    representable = np.exp(exact) > np.finfo(np.float32).tiny
    np.testing.assert_allclose(np.asarray(flow.state_grad_norms)[representable],
                               np.exp(exact[representable]), rtol=1e-5)


def test_recurrent_flow_log_norms_above_float32_range():
    """a = 10: ‖∂L/∂x_t‖ = √2 · 10^(T-t) passes float32's largest number at lag 39."""
    a, T = 10.0, 60
    flow = jaxgrad.analysis.recurrent_gradient_flow(lambda x, u: a * x + u, jnp.ones(2),
                                                    jnp.zeros((T, 2)), lambda xs: jnp.sum(xs[-1]))
    exact = (T - np.arange(1, T + 1)) * np.log(a) + 0.5 * np.log(2)
    np.testing.assert_allclose(flow.log_state_grad_norms, exact, rtol=1e-5)
    over = exact > np.log(np.finfo(np.float32).max)
    assert np.all(np.asarray(flow.state_grad_norms)[over] == np.inf)
    np.testing.assert_allclose(np.asarray(flow.state_grad_norms)[~over], np.exp(exact[~over]),
                               rtol=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_recurrent_flow_random_linear_against_float64_backprop(seed):
    """x' = A x with ‖A‖ ≈ 0.05 and L = c·x_T + 1e-30 d·x_{T/2}: the total derivative mixes
    a carried term far below float32's range with a direct one; compare with float64."""
    rng = np.random.default_rng(seed)
    N, T = 4, 48
    A = 0.05 * rng.standard_normal((N, N)) / np.sqrt(N)
    c, d = rng.standard_normal(N), 1e-30 * rng.standard_normal(N)
    A32, c32, d32 = (jnp.asarray(v, jnp.float32) for v in (A, c, d))
    flow = jaxgrad.analysis.recurrent_gradient_flow(
        lambda x, u: A32 @ x + u, jnp.ones(N), jnp.zeros((T, N)),
        lambda xs: c32 @ xs[-1] + d32 @ xs[T // 2 - 1])
    A64 = np.asarray(A32, np.float64)
    g, ref = np.asarray(c32, np.float64), np.zeros(T)
    for t in range(T, 0, -1):  # g = ∂L/∂x_t
        if t == T // 2:
            g = g + np.asarray(d32, np.float64)
        ref[t - 1] = np.linalg.norm(g)
        g = A64.T @ g
    assert ref.min() < 1e-45  # the test reaches below float32's range
    np.testing.assert_allclose(flow.log_state_grad_norms, np.log(ref), rtol=1e-5)


def test_mlp_flow_tiny_and_huge_gradients_against_float64():
    """Identity activations, loss "sum": weight std 1e-8 gives ‖∂L/∂W_l‖ ≈ 1e-30 and std
    1e8 gives ≈ 1e34; squaring flushes the first to 0 and overflows the second to inf."""
    cfg = jaxgrad.MLPConfig(in_dim=4, width=4, depth=5, activation="identity", init="normal",
                            init_options=(("std", 1.0),))
    for std in (1e-8, 1e8):  # one config, so one compilation
        p = jax.tree_util.tree_map(lambda w: std * w, jaxgrad.init_mlp(jax.random.key(3), cfg))
        x = jax.random.normal(jax.random.key(4), (2, 4))
        flow = jaxgrad.mlp_gradient_flow(p, x, None, cfg, loss="sum")
        Ws = [np.asarray(w, np.float64) for w in [p.first.W, *p.hidden.W]]
        hs = [np.asarray(x, np.float64)]
        for W, b in zip(Ws, [p.first.b, *p.hidden.b], strict=True):
            hs.append(hs[-1] @ W + np.asarray(b, np.float64)[None])
        g_h, gW, gb, gh = np.ones_like(hs[-1]), [], [], []
        for layer in reversed(range(5)):  # g_h = ∂L/∂h_{layer+1} = ∂L/∂z (identity)
            gh.insert(0, np.linalg.norm(g_h))
            gW.insert(0, np.linalg.norm(hs[layer].T @ g_h))
            gb.insert(0, np.linalg.norm(g_h.sum(0)))
            g_h = g_h @ Ws[layer].T
        for got, ref in [(flow.weight_grad_norms, gW), (flow.bias_grad_norms, gb),
                         (flow.activation_grad_norms, gh)]:
            np.testing.assert_allclose(got, ref, rtol=1e-4)
        for got, ref in [(flow.log_weight_grad_norms, gW), (flow.log_bias_grad_norms, gb),
                         (flow.log_activation_grad_norms, gh)]:
            np.testing.assert_allclose(got, np.log(ref), rtol=1e-5)
        assert 1e-33 < min(gW) and max(gW) < 1e-27 if std < 1 else 1e31 < min(gW)


def test_exactly_zero_gradients_give_zero_and_minus_inf():
    cfg, p = _mlp()
    flow = jaxgrad.mlp_gradient_flow(p, jnp.ones((2, 8)), None, cfg,
                                     loss=lambda out, y: 0.0 * jnp.sum(out))
    for field in ("weight_grad_norms", "bias_grad_norms", "activation_grad_norms"):
        assert np.all(np.asarray(getattr(flow, field)) == 0.0)
        assert np.all(np.asarray(getattr(flow, "log_" + field)) == -np.inf)
    # a = 0: nothing flows back past the last step
    rec = jaxgrad.analysis.recurrent_gradient_flow(lambda x, u: 0.0 * x + u, jnp.ones(2),
                                                   jnp.zeros((5, 2)), lambda xs: jnp.sum(xs[-1]))
    np.testing.assert_array_equal(rec.state_grad_norms, [0, 0, 0, 0, np.sqrt(np.float32(2))])
    np.testing.assert_array_equal(rec.log_state_grad_norms[:4], [-np.inf] * 4)


def test_recurrent_flow_nan_is_reported_not_hidden():
    flow = jaxgrad.analysis.recurrent_gradient_flow(lambda x, u: 0.5 * x + u, jnp.ones(2),
                                                    jnp.zeros((4, 2)),
                                                    lambda xs: jnp.sum(xs[-1]) * jnp.nan)
    assert np.all(np.isnan(np.asarray(flow.state_grad_norms)))
    assert np.all(np.isnan(np.asarray(flow.log_state_grad_norms)))


# --------------------------------------------------------------- class labels


def test_cross_entropy_out_of_range_labels_are_nan_under_jit_not_wrapped():
    out = jnp.zeros((3, 4)).at[:, 3].set(5.0)  # class 3 is confidently right
    loss = jax.jit(jaxgrad.analysis.LOSSES["cross_entropy"])
    good = float(loss(out, jnp.array([3, 3, 3])))
    assert np.isfinite(good)
    for bad in (-1, 4, 12):  # -1 used to be scored as class 3, 4 as NaN
        y = jnp.array([3, bad, 3])
        assert np.isnan(float(loss(out, y)))
        grad = np.asarray(jax.grad(loss)(out, y))
        assert np.all(np.isnan(grad[1])) and np.all(np.isfinite(grad[[0, 2]]))
    # traced labels inside mlp_gradient_flow: every norm is NaN, none plausible
    cfg, p = _mlp()
    x = jnp.ones((3, 8))
    flow = jax.jit(lambda y: jaxgrad.mlp_gradient_flow(p, x, y, cfg))(jnp.array([0, -1, 2]))
    assert np.isnan(float(flow.loss))
    for field in ("weight_grad_norms", "bias_grad_norms", "activation_grad_norms",
                  "log_weight_grad_norms"):
        assert np.all(np.isnan(np.asarray(getattr(flow, field)))), field


def test_mlp_flow_refuses_out_of_range_labels_by_name():
    cfg, p = _mlp()
    x = jnp.ones((5, 8))
    with pytest.raises(ValueError, match=r"`y` must hold class labels in \[0, 3\), got 12 at "
                                         r"index 3"):
        jaxgrad.mlp_gradient_flow(p, x, jnp.array([0, 1, 2, 12, 0]), cfg)
    with pytest.raises(ValueError, match=r"got -1 at index 0"):
        jaxgrad.mlp_gradient_flow(p, x, np.array([-1, 1, 2, 0, 0]), cfg)
    with pytest.raises(TypeError, match="`y` must be integer class labels, got dtype float32"):
        jaxgrad.mlp_gradient_flow(p, x, jnp.zeros(5), cfg)
    with pytest.raises(ValueError, match=r"`y` must be labels of shape \(5,\)"):
        jaxgrad.mlp_gradient_flow(p, x, jnp.zeros(4, jnp.int32), cfg)
    # without a readout the classes are the width's units
    cfg2, p2 = _mlp(out_dim=None)
    flow = jaxgrad.mlp_gradient_flow(p2, x, jnp.array([5, 0, 1, 2, 3]), cfg2)
    assert np.isfinite(float(flow.loss))
    with pytest.raises(ValueError, match=r"in \[0, 6\), got 6"):
        jaxgrad.mlp_gradient_flow(p2, x, jnp.array([6, 0, 1, 2, 3]), cfg2)


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
            jaxgrad.analysis.recurrent_gradient_flow(lambda x, u: x, jnp.ones(2), jnp.zeros((3, 1)),
                                                     1.0)
        with pytest.raises(ValueError, match="inputs"):
            jaxgrad.analysis.recurrent_gradient_flow(lambda x, u: x, jnp.ones(2), jnp.zeros(()),
                                                     jnp.sum)


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
def test_tree_scaled_norm_against_float64(scale):
    rng = np.random.default_rng(0)
    tree = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=5), "c": np.zeros(0)}
    tree32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a * scale, jnp.float32), tree)
    ref = np.sqrt(sum(np.sum((a * scale) ** 2) for a in tree.values()))
    out = jaxgrad.analysis.tree_scaled_norm(tree32)
    np.testing.assert_allclose(float(out.norm), ref, rtol=1e-6)
    np.testing.assert_allclose(float(out.log_norm), np.log(ref), rtol=1e-6)
    zero = jaxgrad.analysis.tree_scaled_norm({"a": jnp.zeros(3)})
    assert float(zero.norm) == 0.0 and float(zero.log_norm) == -np.inf


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_tree_scaled_norm_of_stacked_layers_far_apart_against_float64(scale):
    """Stacked layers (a 3-axis leaf) are summed per layer and combined by exact shifts:
    layers 10^±40 apart still give the norm, and layers far below the largest are
    negligible rather than NaN; inf and NaN entries propagate."""
    rng = np.random.default_rng(1)
    layers = rng.normal(size=(4, 3, 5)) * np.array([1.0, 1e-20, 1e-38, 0.0])[:, None, None]
    tree = {"stack": layers * scale, "b": rng.normal(size=6) * scale * 1e-3}
    tree32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), tree)
    ref = np.sqrt(sum(np.sum(np.asarray(a, np.float64) ** 2) for a in tree32.values()))
    out = jax.jit(jaxgrad.analysis.tree_scaled_norm)(tree32)
    np.testing.assert_allclose(float(out.norm), ref, rtol=1e-6)
    np.testing.assert_allclose(float(out.log_norm), np.log(ref), rtol=1e-6)
    bad = jaxgrad.analysis.tree_scaled_norm({"stack": tree32["stack"].at[1, 0, 0].set(jnp.inf)})
    assert float(bad.norm) == np.inf
    nan = jaxgrad.analysis.tree_scaled_norm({"stack": tree32["stack"].at[3, 0, 0].set(jnp.nan)})
    assert np.isnan(float(nan.norm))


# --------------------------------------------------------------------------- any layer sequence


def _dense_tanh(h, p):
    W, b = p
    return jnp.tanh(h @ W + b[None])


def test_layer_flow_of_the_library_mlp_equals_mlp_gradient_flow():
    """The MLP given as a list of (h, θ_l) layers: the same per-layer norms as
    mlp_gradient_flow (one probed pass behind both); ‖∂L/∂θ_l‖² = ‖∂L/∂W_l‖² + ‖∂L/∂b_l‖²."""
    cfg, p = _mlp(activation="tanh", init="glorot")
    x = jax.random.normal(jax.random.key(1), (5, 8))
    y = jnp.array([0, 1, 2, 0, 1])
    mlp_flow = jaxgrad.mlp_gradient_flow(p, x, y, cfg)
    per_layer = [(p.first.W, p.first.b)] + [(p.hidden.W[i], p.hidden.b[i]) for i in range(3)]

    def readout_loss(out, y):
        return jaxgrad.analysis.LOSSES["cross_entropy"](out @ p.readout.W + p.readout.b[None], y)

    flow = jaxgrad.analysis.layer_gradient_flow([_dense_tanh] * 4, x, y, loss=readout_loss,
                                                params=per_layer)
    assert float(flow.loss) == pytest.approx(float(mlp_flow.loss), rel=1e-6)
    np.testing.assert_allclose(flow.activation_grad_norms, mlp_flow.activation_grad_norms,
                               rtol=1e-5)
    np.testing.assert_allclose(
        flow.param_grad_norms,
        np.hypot(mlp_flow.weight_grad_norms, mlp_flow.bias_grad_norms), rtol=1e-5)
    # new parameter values reuse the compiled pass
    from jaxgrad.analysis import gradient_flow

    n = gradient_flow._layer_flow._cache_size()
    jaxgrad.analysis.layer_gradient_flow([_dense_tanh] * 4, x, y, loss=readout_loss,
                                         params=[(2 * W, b) for W, b in per_layer])
    assert gradient_flow._layer_flow._cache_size() == n


def test_layer_flow_widths_pytrees_and_extreme_scales_against_float64():
    """Layers of different widths, a pytree-valued layer, and gradients of 1e-25 whose
    squares underflow in float32: norms and log-norms against a float64 closed form."""
    s = 1e-25
    layers = [
        lambda h: {"a": s * h[:, :3], "b": s * h[:, 3:]},   # 5 -> (3, 2), a pytree
        lambda t: jnp.concatenate([t["a"], 2 * t["b"]], axis=1),  # -> 5
        lambda h: s * h[:, :2],                               # 5 -> 2
    ]
    x = jnp.ones((4, 5))
    flow = jaxgrad.analysis.layer_gradient_flow(layers, x, None, loss="sum")
    # L = Σ s h2[:, :2]; ∂L/∂h3 = 1 (4x2); ∂L/∂h2 = s on the first 2 columns;
    # ∂L/∂h1 = s on "a"[:, :2], 0 elsewhere; no parameters anywhere.
    expected = np.array([s * np.sqrt(8.0), s * np.sqrt(8.0), np.sqrt(8.0)])
    np.testing.assert_allclose(flow.activation_grad_norms, expected, rtol=1e-6)
    np.testing.assert_allclose(flow.log_activation_grad_norms, np.log(expected), atol=1e-6)
    assert np.all(np.isneginf(np.asarray(flow.log_param_grad_norms)))
    assert float(flow.activation_grad_norms[0]) > 0   # its square, 8e-50, is below float32
