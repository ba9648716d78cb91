"""jacobian_product_norms: closed forms, log-space exactness, consistency, bad input."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxgrad


def _linear(a):
    return lambda x, u: a * x


@pytest.mark.parametrize("a", [0.5, 0.9, 1.7, -0.3])
def test_scaled_identity_exact_to_5000_lags_in_float32(a):
    """W = a·I: log‖∂x_T/∂x_{T-k}‖ = k log|a| for every k, far below float32's range."""
    T = 5000
    res = jaxgrad.jacobian_product_norms(_linear(a), jnp.ones(4, jnp.float32), num_steps=T)
    assert res.log_norms.dtype == jnp.float32
    k = np.arange(1, T + 1)
    expected = k * np.log(abs(a))
    np.testing.assert_allclose(np.asarray(res.log_norms), expected, rtol=2e-6, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(res.lags), k)
    assert bool(res.converged)
    # 0.3^5000 = 10^-2614 underflows every float format, its log-norm does not.
    assert np.all(np.isfinite(np.asarray(res.log_norms)))


def test_product_of_tiny_factors_reports_1e_minus_300_and_beyond():
    res = jaxgrad.jacobian_product_norms(_linear(1e-10), jnp.ones(2), num_steps=40)
    assert float(res.log_norms[29]) == pytest.approx(30 * np.log(1e-10), rel=1e-6)
    assert float(res.log_norms[-1]) == pytest.approx(-400 * np.log(10), rel=1e-6)


def _rnn(n=16, m=2, T=60, value=1.2, key=0, activation="tanh"):
    p = jaxgrad.init_pascanu(jax.random.key(key), n, m, scaling="spectral_norm", value=value)
    inputs = jax.random.normal(jax.random.key(key + 1), (T, m))
    x0 = 0.1 * jax.random.normal(jax.random.key(key + 2), (n,))
    return partial(jaxgrad.pascanu_step, activation=activation), p, x0, inputs


def _brute_force(step, p, x0, inputs, ord):
    """Explicit Jacobians multiplied out in float64 (small T only)."""
    xs = [x0]
    for u in inputs:
        xs.append(step(xs[-1], u, p))
    T = len(inputs)
    P = np.eye(x0.shape[0])
    out = []
    for k in range(1, T + 1):
        t = T - k + 1
        J = np.asarray(jax.jacfwd(step)(xs[t - 1], inputs[t - 1], p), np.float64)
        P = P @ J
        out.append(np.log(np.linalg.norm(P, 2 if ord == "spectral" else "fro")))
    return np.array(out)


@pytest.mark.parametrize("ord", ["spectral", "fro"])
def test_matches_explicit_jacobian_products(ord):
    step, p, x0, inputs = _rnn(T=40)
    res = jaxgrad.jacobian_product_norms(step, x0, inputs, params=p, ord=ord)
    expected = _brute_force(step, p, x0, inputs, ord)
    np.testing.assert_allclose(np.asarray(res.log_norms), expected, atol=2e-4)


def test_power_iteration_agrees_with_svd():
    step, p, x0, inputs = _rnn(n=32, T=200, value=2.0)
    power = jaxgrad.jacobian_product_norms(step, x0, inputs, params=p)
    svd = jaxgrad.jacobian_product_norms(step, x0, inputs, params=p, spectral_method="svd")
    np.testing.assert_allclose(np.asarray(power.log_norms), np.asarray(svd.log_norms),
                               atol=1e-3)
    assert bool(power.converged)


def test_step_norms_and_submultiplicative_bound():
    step, p, x0, inputs = _rnn(T=50)
    res = jaxgrad.jacobian_product_norms(step, x0, inputs, params=p)
    xs = jnp.concatenate([x0[None], res.states[:-1]])
    direct = [np.log(np.linalg.norm(np.asarray(jax.jacfwd(step)(x, u, p)), 2))
              for x, u in zip(xs, inputs, strict=True)]
    np.testing.assert_allclose(np.asarray(res.log_step_norms), direct, atol=1e-4)
    np.testing.assert_allclose(np.asarray(res.log_step_bound),
                               np.cumsum(np.asarray(direct)[::-1]), atol=1e-3)
    assert np.all(np.asarray(res.log_norms) <= np.asarray(res.log_step_bound) + 1e-4)
    # ...and Pascanu's looser bound k·log(‖W_rec‖ γ) lies above both.
    bound = jaxgrad.models.pascanu_bound_log_norms(p, 50, activation="tanh")
    assert np.all(np.asarray(res.log_step_bound) <= np.asarray(bound) + 1e-4)


def test_step_norms_off_returns_none():
    step, p, x0, inputs = _rnn(T=10)
    res = jaxgrad.jacobian_product_norms(step, x0, inputs, params=p, step_norms=False)
    assert res.log_step_norms is None and res.log_step_bound is None


def test_wikipedia_two_by_two_example_spectral_radius_above_one_yet_vanishing():
    eps, c, N = 0.75, 0.7, 100
    W = jnp.array([[0.0, 2.0], [eps, 0.0]])
    assert float(jaxgrad.spectral_radius(W).value) == pytest.approx(np.sqrt(2 * eps), rel=1e-6)
    res = jaxgrad.jacobian_product_norms(lambda x, u: W @ (c * x), jnp.ones(2), num_steps=2 * N)
    # (W D)^{2N} = (2 ε c²)^N I, whose spectral norm is (2εc²)^N.
    assert float(res.log_norms[2 * N - 1]) == pytest.approx(N * np.log(2 * eps * c**2), rel=1e-5)


def test_pytree_state_lstm_like():
    """A state (h, c) pytree: the cell path alone gives ∂c_T/∂c_{T-k} = f^k."""
    f = 0.95

    def step(state, u):
        h, c = state
        c_next = f * c + 0.0 * h
        return (jnp.tanh(c_next), c_next)

    x0 = (jnp.zeros(3), jnp.ones(3))
    res = jaxgrad.jacobian_product_norms(step, x0, num_steps=30, ord="fro")
    # d(h_T, c_T)/d(h_{T-k}, c_{T-k}) = [[0, tanh'(c_T) f^k], [0, f^k]] blocks (k >= 1).
    c = np.ones(3)
    for _ in range(30):
        c = f * c
    k = np.arange(1, 31)
    expected = np.log(f**k * np.sqrt(3 * (1 + (1 - np.tanh(c[0]) ** 2) ** 2)))
    np.testing.assert_allclose(np.asarray(res.log_norms), expected, atol=2e-6)


def test_jit_vmap_and_no_recompilation():
    step, p, x0, inputs = _rnn(T=30)
    traces = []

    def counting_step(x, u, params):
        traces.append(1)
        return step(x, u, params)

    r1 = jaxgrad.jacobian_product_norms(counting_step, x0, inputs, params=p)
    n_first = len(traces)
    p2 = p._replace(W_rec=0.5 * p.W_rec)
    r2 = jaxgrad.jacobian_product_norms(counting_step, x0 + 0.1, inputs, params=p2)
    assert len(traces) == n_first, "second call with new values must not retrace"
    assert not np.allclose(np.asarray(r1.log_norms), np.asarray(r2.log_norms))

    # vmap over a batch of parameter scales equals a loop.
    scales = jnp.array([0.5, 1.0, 1.5])

    def lognorms(s):
        return jaxgrad.jacobian_product_norms(
            step, x0, inputs, params=p._replace(W_rec=s * p.W_rec), step_norms=False
        ).log_norms

    batched = jax.vmap(lognorms)(scales)
    looped = jnp.stack([lognorms(s) for s in scales])
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), atol=1e-4)
    jitted = jax.jit(lognorms)(scales[1])
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(looped[1]), atol=1e-5)


def test_grad_of_log_norm_matches_finite_differences(x64):
    a0 = 0.8

    def final_log_norm(a):
        return jaxgrad.jacobian_product_norms(
            lambda x, u, s: s * jnp.tanh(x), jnp.full(3, 0.3), num_steps=20, params=a,
            ord="fro", step_norms=False,
        ).log_norms[-1]

    g = jax.grad(final_log_norm)(a0)
    h = 1e-6
    fd = (final_log_norm(a0 + h) - final_log_norm(a0 - h)) / (2 * h)
    assert float(g) == pytest.approx(float(fd), rel=1e-5)


def test_fit_log_rate_recovers_slope():
    k = jnp.arange(1, 101, dtype=jnp.float32)
    rate, intercept = jaxgrad.fit_log_rate(2.0 - 0.3 * k)
    assert float(rate) == pytest.approx(-0.3, rel=1e-4)
    assert float(intercept) == pytest.approx(2.0, rel=1e-3)
    with pytest.raises(ValueError, match="log_norms"):
        jaxgrad.fit_log_rate(jnp.ones(1))


class TestBadInput:
    def test_step_not_callable(self):
        with pytest.raises(TypeError, match="`step`"):
            jaxgrad.jacobian_product_norms(3.0, jnp.ones(2), num_steps=3)

    def test_inputs_width_mismatch_names_step_and_inputs(self):
        step, p, x0, _ = _rnn(m=2)
        with pytest.raises(ValueError, match="inputs"):
            jaxgrad.jacobian_product_norms(step, x0, jnp.ones((10, 3)), params=p)

    def test_empty_inputs(self):
        with pytest.raises(ValueError, match="inputs"):
            jaxgrad.jacobian_product_norms(lambda x, u: x, jnp.ones(2), jnp.ones((0, 1)))

    def test_no_inputs_no_num_steps(self):
        with pytest.raises(ValueError, match="num_steps"):
            jaxgrad.jacobian_product_norms(lambda x, u: x, jnp.ones(2))

    def test_num_steps_disagrees(self):
        with pytest.raises(ValueError, match="num_steps"):
            jaxgrad.jacobian_product_norms(lambda x, u: x, jnp.ones(2), jnp.ones((5, 1)),
                                           num_steps=4)

    def test_nan_initial_state(self):
        with pytest.raises(ValueError, match="`x0` must be finite"):
            jaxgrad.jacobian_product_norms(lambda x, u: x, jnp.array([1.0, jnp.nan]),
                                           num_steps=3)

    def test_state_shape_changes(self):
        with pytest.raises(ValueError, match="shaped like `x0`"):
            jaxgrad.jacobian_product_norms(lambda x, u: x[:1], jnp.ones(2), num_steps=3)

    def test_unknown_ord(self):
        with pytest.raises(ValueError, match="`ord`"):
            jaxgrad.jacobian_product_norms(lambda x, u: x, jnp.ones(2), num_steps=3, ord="nuc")

    def test_integer_num_steps(self):
        with pytest.raises(TypeError, match="num_steps"):
            jaxgrad.jacobian_product_norms(lambda x, u: x, jnp.ones(2), num_steps=2.5)


@pytest.mark.parametrize("ord,method", [("spectral", "power"), ("spectral", "svd"),
                                        ("fro", "power")])
def test_reverse_mode_grad_through_every_norm(x64, ord, method):
    """jax.grad of the spectral log-norm (power iteration inside) matches finite differences."""
    W = jax.random.normal(jax.random.key(3), (4, 4)) / 2.0

    def final_log_norm(s):
        return jaxgrad.jacobian_product_norms(
            lambda x, u, s: s * (W @ jnp.tanh(x)), jnp.full(4, 0.3), num_steps=15, params=s,
            ord=ord, spectral_method=method,
        ).log_norms[-1]

    g = jax.grad(final_log_norm)(0.9)
    h = 1e-6
    fd = (final_log_norm(0.9 + h) - final_log_norm(0.9 - h)) / (2 * h)
    assert float(g) == pytest.approx(float(fd), rel=1e-5)


@settings(max_examples=15, deadline=None)
@given(diag=st.lists(st.floats(0.05, 3.0), min_size=1, max_size=5),
       T=st.integers(1, 400))
def test_property_diagonal_linear_maps(diag, T):
    """x ← D x: ‖D^k‖₂ = max|d|^k and ‖D^k‖_F = sqrt(Σ d_i^{2k}), for any D and k."""
    d = jnp.asarray(diag, jnp.float32)
    spec = jaxgrad.jacobian_product_norms(lambda x, u: d * x, jnp.ones_like(d), num_steps=T)
    fro = jaxgrad.jacobian_product_norms(lambda x, u: d * x, jnp.ones_like(d), num_steps=T,
                                         ord="fro")
    k = np.arange(1, T + 1)[:, None]
    logd = np.log(np.asarray(d, np.float64))[None, :]
    np.testing.assert_allclose(np.asarray(spec.log_norms), (k * logd).max(axis=1),
                               rtol=1e-5, atol=1e-4)
    expected_fro = np.logaddexp.reduce(2 * k * logd, axis=1) / 2
    np.testing.assert_allclose(np.asarray(fro.log_norms), expected_fro, rtol=1e-5, atol=1e-4)


# --- Every step norm and every product norm against a float64 SVD reference ---------------


def _pascanu_batch(n, activation, seeds, T, value):
    """Many random Pascanu RNNs (vmapped), their step Jacobians and products in float64."""
    keys = jax.random.split(jax.random.key(1000 * n + len(activation)), seeds)
    params = jax.vmap(
        lambda k: jaxgrad.init_pascanu(k, n, 2, scaling="gaussian", value=value)
    )(keys)
    inputs = jax.random.normal(jax.random.key(n), (seeds, T, 2))
    x0 = jax.random.normal(jax.random.key(n + 1), (seeds, n))
    step = partial(jaxgrad.pascanu_step, activation=activation)
    res = jax.vmap(lambda x, u, p: jaxgrad.jacobian_product_norms(step, x, u, params=p))(
        x0, inputs, params)
    # The explicit float32 Jacobians at the returned states, then everything in float64.
    xs = jnp.concatenate([x0[:, None], res.states[:, :-1]], axis=1)
    jac = jax.vmap(jax.vmap(jax.jacfwd(step), in_axes=(0, 0, None)))
    J = np.asarray(jac(xs, inputs, params), np.float64)
    step_ref = np.log(np.linalg.svd(J, compute_uv=False)[..., 0])
    # Products P_k = J_T ⋯ J_{T-k+1}, renormalised at each lag, log-norms accumulated.
    P = np.broadcast_to(np.eye(n), (seeds, n, n))
    log_scale = np.zeros(seeds)
    prod_ref = []
    for k in range(1, T + 1):
        P = P @ J[:, T - k]
        top = np.linalg.svd(P, compute_uv=False)[:, 0]
        log_scale = log_scale + np.log(top)
        P = P / top[:, None, None]
        prod_ref.append(log_scale)
    return res, step_ref, np.stack(prod_ref, axis=1)


@pytest.mark.parametrize("n,activation,value", [(8, "tanh", 1.5), (16, "sigmoid", 5.0)])
def test_every_step_and_product_norm_matches_float64_svd_on_random_rnns(n, activation, value):
    """40 RNNs each: the warm-started power iteration used to return the second singular
    value where the top two nearly cross (errors up to 3e-2 with converged=True)."""
    res, step_ref, prod_ref = _pascanu_batch(n, activation, seeds=40, T=40, value=value)
    assert np.all(np.asarray(res.converged))
    np.testing.assert_allclose(np.asarray(res.log_step_norms), step_ref, rtol=0, atol=2e-5)
    np.testing.assert_allclose(np.asarray(res.log_norms), prod_ref, rtol=0, atol=1e-4)


def test_power_products_certified_or_svd_on_a_long_random_rnn():
    """Unbatched (lax.cond takes one branch): most lags certified, all right."""
    n, T = 16, 300
    p = jaxgrad.init_pascanu(jax.random.key(4), n, 1, scaling="gaussian", value=1.3)
    step = partial(jaxgrad.pascanu_step, activation="tanh")
    inputs = jax.random.normal(jax.random.key(5), (T, 1))
    x0 = jax.random.normal(jax.random.key(6), (n,))
    power = jaxgrad.jacobian_product_norms(step, x0, inputs, params=p, step_norms=False)
    svd = jaxgrad.jacobian_product_norms(step, x0, inputs, params=p, spectral_method="svd",
                                         step_norms=False)
    np.testing.assert_allclose(np.asarray(power.log_norms), np.asarray(svd.log_norms),
                               rtol=0, atol=5e-5)
    assert bool(power.converged) and int(svd.svd_fallbacks) == 0
    assert int(power.svd_fallbacks) < T // 2


@pytest.mark.parametrize("s", [1e-30, 1e-20, 1e20, 1e30])
@pytest.mark.parametrize("ord", ["spectral", "fro"])
def test_step_and_product_norms_exact_far_outside_float32_squares(s, ord):
    """x -> s·A x: squares of 1e±20 under/overflow float32, the log-norms must not care
    (they used to be -4.8 instead of -46 for s=1e-20, NaN for s=1e20)."""
    A = np.asarray(jax.random.normal(jax.random.key(7), (6, 6)), np.float64) / 3
    A32 = jnp.asarray(A, jnp.float32)
    T = 12
    res = jaxgrad.jacobian_product_norms(lambda x, u: s * (A32 @ x), jnp.ones(6),
                                         num_steps=T, ord=ord)
    norm = (lambda M: np.linalg.norm(M, 2)) if ord == "spectral" else np.linalg.norm
    A_ref = np.asarray(A32, np.float64)
    k = np.arange(1, T + 1)
    expected = k * np.log(s) + np.log([norm(np.linalg.matrix_power(A_ref, j)) for j in k])
    step_expected = np.log(s) + np.log(norm(A_ref))
    assert bool(res.converged)
    np.testing.assert_allclose(np.asarray(res.log_step_norms), step_expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(res.log_norms), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(res.log_step_bound), k * step_expected, rtol=1e-5)


def test_nan_jacobian_is_not_reported_converged():
    """log(x) runs into 0 and then NaN: the norms are NaN and converged must be false."""
    res = jaxgrad.jacobian_product_norms(lambda x, u: jnp.log(x), jnp.ones(2), num_steps=4)
    assert np.isnan(np.asarray(res.log_norms)).any()
    assert not bool(res.converged)


class TestStateDtypes:
    def test_int_and_bool_x0_are_converted_to_float(self):
        ref = jaxgrad.jacobian_product_norms(_linear(0.5), jnp.ones(3), num_steps=5)
        for x0 in (jnp.ones(3, jnp.int32), jnp.ones(3, bool), np.ones(3, np.int64)):
            res = jaxgrad.jacobian_product_norms(_linear(0.5), x0, num_steps=5)
            assert res.states.dtype == jnp.float32
            np.testing.assert_allclose(np.asarray(res.log_norms), np.asarray(ref.log_norms))

    def test_complex_x0_refused(self):
        with pytest.raises(TypeError, match="`x0` must have a real floating dtype"):
            jaxgrad.jacobian_product_norms(_linear(0.5), jnp.ones(3, jnp.complex64),
                                           num_steps=5)

    def test_empty_x0_refused(self):
        with pytest.raises(ValueError, match="`x0` must have at least one element"):
            jaxgrad.jacobian_product_norms(_linear(0.5), jnp.ones(0), num_steps=5)
        with pytest.raises(ValueError, match="`x0`"):
            jaxgrad.jacobian_product_norms(_linear(0.5), (), num_steps=5)


@pytest.mark.parametrize("n,activation,seed", [(16, "tanh", 16), (64, "sigmoid", 2)])
def test_near_crossing_cases_found_by_a_seed_scan(n, activation, seed):
    """Two of 120 scanned RNNs where the old warm-started power iteration returned the
    second singular value with converged=True: a step norm 2.8e-2 off (n=16) and a
    product norm 4.7e-2 off (n=64)."""
    T = 100
    value = [0.9, 1.5, 3.0, 6.0][seed % 4]
    p = jaxgrad.init_pascanu(jax.random.key(seed), n, 2, scaling="gaussian", value=value)
    inputs = jax.random.normal(jax.random.key(seed + 1000), (T, 2))
    x0 = jax.random.normal(jax.random.key(seed + 2000), (n,))
    step = partial(jaxgrad.pascanu_step, activation=activation)
    res = jaxgrad.jacobian_product_norms(step, x0, inputs, params=p)
    xs = jnp.concatenate([x0[None], res.states[:-1]])
    J = np.asarray(jax.vmap(jax.jacfwd(step), in_axes=(0, 0, None))(xs, inputs, p), np.float64)
    np.testing.assert_allclose(np.asarray(res.log_step_norms),
                               np.log(np.linalg.svd(J, compute_uv=False)[:, 0]), atol=2e-5)
    P, log_scale, expected = np.eye(n), 0.0, []
    for k in range(1, T + 1):
        P = P @ J[T - k]
        top = np.linalg.norm(P, 2)
        log_scale, P = log_scale + np.log(top), P / top
        expected.append(log_scale)
    np.testing.assert_allclose(np.asarray(res.log_norms), expected, atol=1e-4)
    assert bool(res.converged)


def test_nan_params_are_refused_by_leaf_name():
    p = jaxgrad.init_pascanu(jax.random.key(0), 4, 2)
    bad = p._replace(W_rec=p.W_rec.at[1, 2].set(jnp.nan))
    step = partial(jaxgrad.pascanu_step, activation="tanh")
    with pytest.raises(ValueError, match=r"`params\.W_rec` must be finite"):
        jaxgrad.jacobian_product_norms(step, jnp.zeros(4), jnp.zeros((5, 2)), params=bad)
    with pytest.raises(ValueError, match=r"`params\.W_rec` must be finite"):
        jaxgrad.lyapunov_spectrum(step, jnp.zeros(4), jnp.zeros((5, 2)), params=bad)
