"""Models: activations, initialisers, Pascanu RNN, one-unit net, Doya's neuron, deep MLP."""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad


class TestActivations:
    def test_max_sigmoid_derivative_is_quarter_and_tanh_one(self):
        x = jnp.linspace(-8, 8, 16001)
        derivative = jaxgrad.models.activation_derivative
        assert float(derivative("sigmoid")(x).max()) == pytest.approx(0.25)
        assert float(derivative("tanh")(x).max()) == pytest.approx(1.0)

    @pytest.mark.parametrize("name", sorted(jaxgrad.models.ACTIVATIONS))
    def test_max_derivative_table_matches_grid(self, name):
        x = jnp.linspace(-8, 8, 16001)
        measured = float(jnp.abs(jaxgrad.models.activation_derivative(name)(x)).max())
        assert measured == pytest.approx(jaxgrad.models.MAX_DERIVATIVE[name], abs=2e-3)

    def test_derivative_matches_finite_differences(self, x64):
        x = jnp.linspace(-3, 3, 12)  # avoids ELU's kink at 0
        for name in ("sigmoid", "tanh", "elu", "gelu"):
            f = jaxgrad.models.get_activation(name)
            fd = (f(x + 1e-6) - f(x - 1e-6)) / 2e-6
            np.testing.assert_allclose(jaxgrad.models.activation_derivative(name)(x), fd, atol=1e-7)

    def test_unknown_name(self):
        with pytest.raises(ValueError, match="activation.*softsign"):
            jaxgrad.models.get_activation("softsign")

    def test_one_registry_of_objects(self):
        for name, act in jaxgrad.models.ACTIVATIONS.items():
            assert isinstance(act, jaxgrad.models.Activation) and act.name == name
            assert jaxgrad.models.MAX_DERIVATIVE[name] == act.max_derivative
            get = jaxgrad.models.get_activation
            assert get(name) is act and get(act) is act
        assert set(jaxgrad.models.MAX_DERIVATIVE) == set(jaxgrad.models.ACTIVATIONS)
        with pytest.raises(TypeError):
            jaxgrad.models.MAX_DERIVATIVE["tanh"] = 2.0  # a view, not a second table
        # equal and hashable: a plain function is wrapped the same way every time
        assert jaxgrad.models.get_activation(jnp.sin) == jaxgrad.models.get_activation(jnp.sin)
        wrapped = jaxgrad.models.get_activation(jnp.sin)
        assert hash(wrapped) == hash(jaxgrad.models.Activation(jnp.sin))
        assert jaxgrad.models.Activation(jnp.tanh, 1.0,
                                         "tanh") == jaxgrad.models.ACTIVATIONS["tanh"]

    def test_names_objects_and_callables_give_bitwise_the_same_numbers(self):
        """A name, its Activation and the raw function run the same operations."""
        p = jaxgrad.init_pascanu(jax.random.key(0), 6, 2)
        x, u = jnp.linspace(-2, 2, 6), jnp.array([0.5, -1.0])
        for name, fn in (("tanh", jnp.tanh), ("sigmoid", jax.nn.sigmoid), ("gelu", jax.nn.gelu)):
            by_name = jaxgrad.pascanu_step(x, u, p, activation=name)
            for act in (fn, jaxgrad.models.ACTIVATIONS[name], jaxgrad.models.Activation(fn)):
                np.testing.assert_array_equal(jaxgrad.pascanu_step(x, u, p, activation=act),
                                              by_name)
            np.testing.assert_array_equal(jaxgrad.models.activation_derivative(fn)(x),
                                          jaxgrad.models.activation_derivative(name)(x))
        cfg = jaxgrad.MLPConfig(in_dim=3, width=4, depth=3, out_dim=1, activation="tanh")
        own = jaxgrad.MLPConfig(in_dim=3, width=4, depth=3, out_dim=1,
                                activation=jaxgrad.models.Activation(jnp.tanh, 1.0, "my_tanh"))
        mp = jaxgrad.init_mlp(jax.random.key(1), cfg)
        xs = jax.random.normal(jax.random.key(2), (5, 3))
        np.testing.assert_array_equal(jaxgrad.mlp_apply(mp, xs, cfg)[0],
                                      jaxgrad.mlp_apply(mp, xs, own)[0])
        flow = jaxgrad.mlp_gradient_flow(mp, xs, None, own, loss="sum")  # static config
        ref = jaxgrad.mlp_gradient_flow(mp, xs, None, cfg, loss="sum")
        np.testing.assert_array_equal(flow.weight_grad_norms, ref.weight_grad_norms)
        for a, b in ((jaxgrad.doya_step(0.3, 0.0, jaxgrad.DoyaParams(5.0, -2.5),
                                        activation=jax.nn.sigmoid),
                      jaxgrad.doya_step(0.3, 0.0, jaxgrad.DoyaParams(5.0, -2.5))),
                     (jaxgrad.models.one_unit_step(0.3, None,
                                                   jaxgrad.models.OneUnitParams(2.0, 0.1),
                                                   activation=jaxgrad.models.ACTIVATIONS["sigmoid"]),
                      jaxgrad.models.one_unit_step(0.3, None,
                                                   jaxgrad.models.OneUnitParams(2.0, 0.1)))):
            np.testing.assert_array_equal(a, b)

    def test_a_users_function_everywhere(self, x64):
        """arctan (not a shortcut): sup|σ'| = 1 at 0, smooth (quadrature converges fast)."""
        arctan = jaxgrad.models.Activation(jnp.arctan, max_derivative=1.0)
        p = jaxgrad.init_pascanu(jax.random.key(3), 4, 1, scaling="spectral_norm", value=2.0,
                                 dtype=jnp.float64)
        x = jnp.array([0.5, -1.0, 2.0, 0.0])
        np.testing.assert_allclose(jaxgrad.pascanu_step(x, jnp.zeros(1), p, activation=arctan),
                                   p.W_rec @ np.arctan(np.asarray(x)), rtol=1e-14)
        np.testing.assert_allclose(jaxgrad.models.pascanu_bound_log_norms(p, 3, activation=arctan),
                                   np.arange(1, 4) * np.log(2.0), rtol=1e-12)
        # q-map by quadrature: E arctan(√q z)² against a float64 trapezoid rule
        z = np.linspace(-12, 12, 200001)
        w = np.exp(-z * z / 2) / np.sqrt(2 * np.pi) * (z[1] - z[0])
        ref = 1.5 * np.sum(w * np.arctan(z) ** 2) + 0.1
        q1 = jaxgrad.analysis.q_map(1.0, 1.5, 0.1, activation=arctan)
        assert float(q1) == pytest.approx(ref, rel=1e-10)
        assert float(jaxgrad.analysis.q_map(1.0, 1.5, 0.1, activation=jnp.arctan)) == float(q1)
        # a wrapped ReLU keeps the closed forms (arc-cosine kernel): chi_1 = σ_w²/2 exactly
        relu = jaxgrad.models.Activation(jax.nn.relu, 1.0, "my_relu")
        assert float(jaxgrad.chi_1(1.5, 0.5, activation=relu)) == 0.75
        assert float(jaxgrad.analysis.c_map(0.3, 1.5, 0.1, q=1.0, activation=relu)) == float(
            jaxgrad.analysis.c_map(0.3, 1.5, 0.1, q=1.0, activation="relu"))
        assert float(jaxgrad.analysis.q_star(1.5, 0.1,
                                             activation=jaxgrad.models.ACTIVATIONS["tanh"]).q) == \
            float(jaxgrad.analysis.q_star(1.5, 0.1, activation="tanh").q)

    def test_max_derivative_is_required_only_where_needed(self):
        p = jaxgrad.init_pascanu(jax.random.key(4), 4, 1)
        with pytest.raises(ValueError, match="`activation` 'soft_sign' has no known sup"):
            jaxgrad.models.pascanu_bound_log_norms(p, 3, activation=jax.nn.soft_sign)
        jaxgrad.pascanu_step(jnp.zeros(4), jnp.zeros(1), p, activation=jax.nn.soft_sign)

    def test_bad_activations(self):
        with pytest.raises(TypeError, match="`fn` must be callable"):
            jaxgrad.models.Activation("tanh")
        with pytest.raises(ValueError, match="`max_derivative` must be finite and > 0"):
            jaxgrad.models.Activation(jnp.tanh, max_derivative=-1.0)
        with pytest.raises(TypeError, match="`activation` must be a name in .* got int 3"):
            jaxgrad.pascanu_step(jnp.zeros(2), jnp.zeros(1),
                                 jaxgrad.init_pascanu(jax.random.key(0), 2, 1), activation=3)
        with pytest.raises(TypeError, match="`activation` must be a name"):
            jaxgrad.analysis.q_map(1.0, 1.5, 0.1, activation=None)
        with pytest.raises(ValueError, match="unknown `activation` 'swishy'"):
            jaxgrad.chi_1(1.5, 0.1, activation="swishy")

        class Unhashable:
            __hash__ = None

            def __call__(self, x):
                return x

        with pytest.raises(TypeError, match="`activation` must be hashable"):
            jaxgrad.MLPConfig(in_dim=3, width=4, depth=2, activation=Unhashable())


class TestInitializers:
    key = jax.random.key(0)

    @pytest.mark.parametrize(
        "name,options,std",
        [("normal", {"std": 0.01}, lambda n_in, n_out: 0.01),
         ("glorot", {}, lambda n_in, n_out: math.sqrt(2 / (n_in + n_out))),
         ("he", {}, lambda n_in, n_out: math.sqrt(2 / n_in)),
         ("kumar", {}, lambda n_in, n_out: 3.6 / math.sqrt(n_in)),
         ("yilmaz_poli", {}, lambda n_in, n_out: 1 / math.sqrt(n_in))],
    )
    def test_scale(self, name, options, std):
        W = jaxgrad.models.get_initializer(name, **options)(self.key, (400, 300), jnp.float32)
        # jax's glorot/he normals are truncated normals rescaled to the stated variance.
        assert float(jnp.std(W)) == pytest.approx(std(400, 300), rel=0.02)

    def test_yilmaz_poli_mean(self):
        for n, mean in [(4, -1.0), (8, -1.0), (100, -0.08)]:
            W = jaxgrad.models.get_initializer("yilmaz_poli", std=1e-3)(self.key, (n, 2000))
            assert float(jnp.mean(W)) == pytest.approx(mean, abs=2e-4)

    def test_orthogonal(self):
        W = jaxgrad.models.get_initializer("orthogonal")(self.key, (64, 64))
        np.testing.assert_allclose(W.T @ W, np.eye(64), atol=1e-5)

    def test_unknown_name_and_bad_options(self):
        with pytest.raises(ValueError, match="init.*lecun_weird"):
            jaxgrad.models.get_initializer("lecun_weird")
        with pytest.raises(TypeError, match="options"):
            jaxgrad.models.get_initializer("he", std=0.1)
        with pytest.raises(ValueError, match="std"):
            jaxgrad.models.get_initializer("normal", std=-1.0)


class TestPascanu:
    def test_init_scalings(self):
        key = jax.random.key(1)
        p = jaxgrad.init_pascanu(key, 50, 3, scaling="spectral_radius", value=0.9)
        assert float(jnp.max(jnp.abs(jnp.linalg.eigvals(p.W_rec)))) == pytest.approx(0.9, 1e-5)
        p = jaxgrad.init_pascanu(key, 50, 3, scaling="spectral_norm", value=3.5)
        assert float(jnp.linalg.norm(p.W_rec, 2)) == pytest.approx(3.5, rel=1e-5)
        p = jaxgrad.init_pascanu(key, 400, 3, scaling="gaussian", value=1.0)
        assert float(jnp.std(p.W_rec)) == pytest.approx(1 / 20, rel=0.02)
        assert p.W_in.shape == (400, 3) and p.b.shape == (400,)

    def test_step_is_the_equation(self):
        p = jaxgrad.init_pascanu(jax.random.key(2), 5, 2)
        p = p._replace(b=jnp.arange(5.0))
        x, u = jnp.linspace(-1, 1, 5), jnp.array([0.3, -0.2])
        expected = p.W_rec @ jax.nn.sigmoid(x) + p.W_in @ u + p.b
        np.testing.assert_allclose(jaxgrad.pascanu_step(x, u, p, activation="sigmoid"),
                                   expected, rtol=1e-6)
        # Jacobian W_rec diag(σ'(x)) (Pascanu et al. 2013, eq. 5)
        J = jax.jacfwd(jaxgrad.pascanu_step)(x, u, p, activation="sigmoid")
        d = jax.nn.sigmoid(x) * (1 - jax.nn.sigmoid(x))
        np.testing.assert_allclose(J, p.W_rec * d[None, :], rtol=1e-5)

    def test_unroll_scan_equals_python_loop_and_jit(self):
        p = jaxgrad.init_pascanu(jax.random.key(3), 8, 2)
        inputs = jax.random.normal(jax.random.key(4), (25, 2))
        xs = jaxgrad.models.pascanu_unroll(p, jnp.zeros(8), inputs)
        x, loop = jnp.zeros(8), []
        for u in inputs:
            x = jaxgrad.pascanu_step(x, u, p)
            loop.append(x)
        np.testing.assert_allclose(xs, jnp.stack(loop), rtol=1e-5, atol=1e-6)
        jitted = jax.jit(jaxgrad.models.pascanu_unroll)(p, jnp.zeros(8), inputs)
        np.testing.assert_allclose(jitted, xs, rtol=1e-5, atol=1e-6)

    def test_unroll_vmaps_over_initial_states(self):
        p = jaxgrad.init_pascanu(jax.random.key(3), 4, 1)
        x0s = jax.random.normal(jax.random.key(5), (6, 4))
        inputs = jnp.zeros((10, 1))
        batched = jax.vmap(lambda x0: jaxgrad.models.pascanu_unroll(p, x0, inputs))(x0s)
        for i in range(6):
            np.testing.assert_allclose(batched[i], jaxgrad.models.pascanu_unroll(p, x0s[i], inputs),
                                       rtol=1e-5, atol=1e-6)

    def test_bound_is_k_log_norm_gamma(self):
        p = jaxgrad.init_pascanu(jax.random.key(6), 10, 1, scaling="spectral_norm", value=2.0)
        bound = jaxgrad.models.pascanu_bound_log_norms(p, 4, activation="sigmoid")
        np.testing.assert_allclose(bound, np.arange(1, 5) * np.log(2.0 * 0.25), rtol=1e-5)

    def test_bad_input(self):
        p = jaxgrad.init_pascanu(jax.random.key(7), 4, 2)
        with pytest.raises(ValueError, match="`W_rec` must be square, got shape \\(3, 4\\)"):
            jaxgrad.models.pascanu_unroll(p._replace(W_rec=jnp.ones((3, 4))), jnp.zeros(4),
                                          jnp.zeros((5, 2)))
        with pytest.raises(ValueError, match="`W_rec` must be finite"):
            jaxgrad.models.pascanu_unroll(p._replace(W_rec=p.W_rec.at[0, 1].set(jnp.nan)),
                                          jnp.zeros(4), jnp.zeros((5, 2)))
        with pytest.raises(ValueError, match="`inputs` must have shape \\(T, 2\\)"):
            jaxgrad.models.pascanu_unroll(p, jnp.zeros(4), jnp.zeros((5, 3)))
        with pytest.raises(ValueError, match="`x0` must have shape \\(4,\\)"):
            jaxgrad.models.pascanu_unroll(p, jnp.zeros(5), jnp.zeros((5, 2)))
        with pytest.raises(ValueError, match="`W_in`"):
            jaxgrad.models.pascanu_unroll(p._replace(W_in=jnp.ones((3, 2))), jnp.zeros(4),
                                          jnp.zeros((5, 2)))
        with pytest.raises(ValueError, match="`b`"):
            jaxgrad.models.pascanu_unroll(p._replace(b=jnp.ones(3)), jnp.zeros(4),
                                          jnp.zeros((5, 2)))
        with pytest.raises(ValueError, match="len\\(inputs\\)"):
            jaxgrad.models.pascanu_unroll(p, jnp.zeros(4), jnp.zeros((0, 2)))
        with pytest.raises(ValueError, match="scaling"):
            jaxgrad.init_pascanu(jax.random.key(0), 4, 1, scaling="frobenius")
        with pytest.raises(ValueError, match="num_units"):
            jaxgrad.init_pascanu(jax.random.key(0), 0, 1)
        with pytest.raises(ValueError, match="activation"):
            jaxgrad.models.pascanu_unroll(p, jnp.zeros(4), jnp.zeros((5, 2)), activation="swish")
        with pytest.raises(TypeError, match="params"):
            jaxgrad.models.validate_pascanu_params((p.W_rec, p.W_in, p.b))


def test_one_unit_net_fixed_point():
    # x = w σ(x) + b with w = 8, b = -4: x* = 0 is a fixed point (σ(0) = 1/2).
    p = jaxgrad.models.OneUnitParams(jnp.array(8.0), jnp.array(-4.0))
    assert float(jaxgrad.models.one_unit_step(jnp.array(0.0), None, p)) == 0.0
    xs = jaxgrad.unroll(partial(jaxgrad.models.one_unit_step, params=p), jnp.array(0.5),
                        jaxgrad.models.autonomous_inputs(50))
    assert xs.shape == (50,)
    # x(0) = 0.5 > 0 runs to the upper stable fixed point of x = 8σ(x) - 4 (≈ 3.83).
    x_end = float(xs[-1])
    assert 3.5 < x_end < 4.0
    assert x_end == pytest.approx(8 * float(jax.nn.sigmoid(x_end)) - 4, abs=1e-5)


class TestDoya:
    w = 5.0

    def test_fixed_points_at_b_minus_2_5(self, x64):
        """At b = -2.5 the fixed points are 0.145, 0.5, 0.855.

        Wikipedia, "Vanishing gradient problem", note 4.
        """
        p = jaxgrad.DoyaParams(jnp.array(self.w), jnp.array(-2.5))
        assert float(jaxgrad.models.doya_vector_field(jnp.array(0.5), 0.0, p)) == 0.0
        for x0, target in [(0.3, 0.145), (0.7, 0.855)]:
            # the slowest rate is -1 + w σ'(x*) ≈ -0.38; t = 100 converges to e^-38
            xs = jaxgrad.models.doya_integrate(p, x0, jnp.zeros(1000), dt=0.1)
            assert float(xs[-1]) == pytest.approx(target, abs=5e-4)
            # b(x) = ln(x/(1-x)) - w x is exactly -2.5 at the converged point
            assert float(jaxgrad.models.doya_stable_branch_b(xs[-1], self.w)) == pytest.approx(-2.5,
                                                                                       abs=1e-9)

    def test_discrete_map_is_euler_of_flow(self):
        p = jaxgrad.DoyaParams(jnp.array(self.w), jnp.array(-2.3), jnp.array(0.7))
        inputs = jnp.sin(jnp.arange(30.0))
        euler = jaxgrad.models.doya_integrate(p, 0.2, inputs, dt=0.05, method="euler")
        maps = jaxgrad.unroll(partial(jaxgrad.doya_step, params=p, eps=0.05), jnp.array(0.2),
                              inputs)
        np.testing.assert_allclose(euler, maps, rtol=1e-6)

    def test_rk4_converges_at_fourth_order(self, x64):
        p = jaxgrad.DoyaParams(jnp.array(self.w), jnp.array(-2.3))

        def final(dt):
            n = int(round(2.0 / dt))
            return float(jaxgrad.models.doya_integrate(p, 0.4, jnp.zeros(n), dt=dt)[-1])

        ref = final(0.001)
        e1, e2 = abs(final(0.2) - ref), abs(final(0.1) - ref)
        assert 12 < e1 / e2 < 20  # 2^4 = 16

    def test_sensitivity_closed_form_matches_autodiff(self, x64):
        b = -2.2
        p = jaxgrad.DoyaParams(jnp.array(self.w), jnp.array(b))
        x_star = jaxgrad.models.doya_integrate(p, 0.9, jnp.zeros(600), dt=0.1)[-1]
        g = jax.grad(lambda bb: jaxgrad.models.doya_integrate(
            jaxgrad.DoyaParams(jnp.array(self.w), bb), 0.9, jnp.zeros(600), dt=0.1)[-1])(b)
        assert float(g) == pytest.approx(
            float(jaxgrad.models.doya_fixed_point_sensitivity(x_star, self.w)), rel=1e-6)

    def test_bad_input(self):
        p = jaxgrad.DoyaParams(5.0, -2.5)
        with pytest.raises(ValueError, match="dt"):
            jaxgrad.models.doya_integrate(p, 0.5, jnp.zeros(10), dt=0.0)
        with pytest.raises(ValueError, match="method"):
            jaxgrad.models.doya_integrate(p, 0.5, jnp.zeros(10), method="midpoint")
        with pytest.raises(ValueError, match="inputs"):
            jaxgrad.models.doya_integrate(p, 0.5, jnp.zeros(0))


class TestMLP:
    def test_forward_matches_explicit_layers(self):
        cfg = jaxgrad.MLPConfig(in_dim=6, width=5, depth=3, out_dim=2, activation="tanh",
                                init="glorot")
        p = jaxgrad.init_mlp(jax.random.key(0), cfg)
        x = jax.random.normal(jax.random.key(1), (4, 6))
        out, trace = jaxgrad.mlp_apply(p, x, cfg)
        h = jnp.tanh(x @ p.first.W + p.first.b[None])
        for layer in range(2):
            h = jnp.tanh(h @ p.hidden.W[layer] + p.hidden.b[layer][None])
        np.testing.assert_allclose(out, h @ p.readout.W + p.readout.b[None], rtol=1e-5)
        assert trace.preactivations.shape == (3, 4, 5)

    def test_residual_and_layer_norm(self):
        cfg = jaxgrad.MLPConfig(in_dim=4, width=4, depth=2, activation="relu", residual=True,
                                norm="layer")
        p = jaxgrad.init_mlp(jax.random.key(2), cfg)
        x = jax.random.normal(jax.random.key(3), (3, 4))
        out, trace = jaxgrad.mlp_apply(p, x, cfg)

        def ln(z):
            return (z - z.mean(-1, keepdims=True)) / jnp.sqrt(z.var(-1, keepdims=True) + 1e-5)

        h1 = jax.nn.relu(ln(x @ p.first.W))
        h2 = h1 + jax.nn.relu(ln(h1 @ p.hidden.W[0]))
        np.testing.assert_allclose(out, h2, rtol=1e-4, atol=1e-5)

    def test_batch_norm_normalises_over_the_batch(self):
        cfg = jaxgrad.MLPConfig(in_dim=3, width=8, depth=2, activation="identity",
                                norm="batch", init="normal", init_options=(("std", 1.0),))
        p = jaxgrad.init_mlp(jax.random.key(4), cfg)
        _, trace = jaxgrad.mlp_apply(p, 5 + jax.random.normal(jax.random.key(5), (64, 3)), cfg)
        np.testing.assert_allclose(trace.activations.mean(axis=1), 0.0, atol=1e-4)
        np.testing.assert_allclose(trace.activations.std(axis=1), 1.0, atol=1e-3)

    @pytest.mark.parametrize("depth", [1, 4])
    def test_unrolled_layers_match_the_scan(self, depth):
        """``unroll`` changes the compiled loop, not the numbers (forward, trace, gradient)."""
        cfg = jaxgrad.MLPConfig(in_dim=3, width=5, depth=depth, out_dim=2, residual=True,
                                norm="layer", activation="tanh", init="glorot")
        p = jaxgrad.init_mlp(jax.random.key(7), cfg)
        x = jax.random.normal(jax.random.key(8), (4, 3))

        def run(unroll):
            def loss(params):
                out, trace = jaxgrad.mlp_apply(params, x, cfg, unroll=unroll)
                return jnp.sum(out**2), (out, trace)

            return jax.jit(jax.grad(loss, has_aux=True))(p)

        for a, b in zip(jax.tree_util.tree_leaves(run(True)), jax.tree_util.tree_leaves(run(1)),
                        strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # float32 reassociation

    def test_depth_one_and_jit(self):
        cfg = jaxgrad.MLPConfig(in_dim=3, width=4, depth=1, out_dim=2)
        p = jaxgrad.init_mlp(jax.random.key(6), cfg)
        out, _ = jax.jit(jaxgrad.mlp_apply, static_argnames="config")(p, jnp.ones((2, 3)), cfg)
        assert out.shape == (2, 2)

    def test_bad_config(self):
        for depth in (0, -3):
            with pytest.raises(ValueError, match="`depth` must be >= 1"):
                jaxgrad.MLPConfig(in_dim=3, width=4, depth=depth)
        with pytest.raises(ValueError, match="activation"):
            jaxgrad.MLPConfig(in_dim=3, width=4, depth=2, activation="swishy")
        with pytest.raises(ValueError, match="init"):
            jaxgrad.MLPConfig(in_dim=3, width=4, depth=2, init="zeros")
        with pytest.raises(ValueError, match="norm"):
            jaxgrad.MLPConfig(in_dim=3, width=4, depth=2, norm="group")
        cfg = jaxgrad.MLPConfig(in_dim=3, width=4, depth=2)
        p = jaxgrad.init_mlp(jax.random.key(0), cfg)
        with pytest.raises(ValueError, match="`x` must have shape \\(B, 3\\)"):
            jaxgrad.mlp_apply(p, jnp.ones((2, 5)), cfg)
        with pytest.raises(ValueError, match="`params` do not match `config`"):
            jaxgrad.mlp_apply(p, jnp.ones((2, 5)), jaxgrad.MLPConfig(in_dim=5, width=4, depth=2))
        with pytest.raises(ValueError, match="`params` do not match.*`params.hidden.W`"):
            jaxgrad.mlp_apply(p, jnp.ones((2, 3)), jaxgrad.MLPConfig(in_dim=3, width=4, depth=3))
        with pytest.raises(ValueError, match="`x` must hold at least one example"):
            jaxgrad.mlp_apply(p, jnp.ones((0, 3)), cfg)

    def test_init_options_dict_is_stored_as_sorted_pairs(self):
        """A dict used to pass construction and fail later as an unhashable jit static
        argument; now it is stored as the sorted tuple of its items."""
        kw = dict(in_dim=3, width=4, depth=2, init="yilmaz_poli")
        cfg = jaxgrad.MLPConfig(**kw, init_options={"std": 0.5})
        assert cfg.init_options == (("std", 0.5),)
        assert cfg == jaxgrad.MLPConfig(**kw, init_options=(("std", 0.5),)) and hash(cfg)
        apply = jax.jit(lambda x, c: jaxgrad.mlp_apply(jaxgrad.init_mlp(jax.random.key(0), c),
                                                       x, c)[0], static_argnums=1)
        assert apply(jnp.ones((2, 3)), cfg).shape == (2, 4)
        with pytest.raises(TypeError, match="`init_options`.*hashable"):
            jaxgrad.MLPConfig(**kw, init_options={"std": jnp.asarray(0.5)})
        with pytest.raises(TypeError, match="`init_options` must be a dict or a tuple"):
            jaxgrad.MLPConfig(**kw, init_options="std=0.5")
