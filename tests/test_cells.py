"""LSTM and GRU step functions: closed forms, the analyzers on pytree states, parity, bad input."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from jax.test_util import check_grads

import jaxgrad
from jaxgrad import gru_step, init_gru, init_lstm, lstm_step
from jaxgrad.models import GRUParams, LSTMParams, LSTMState, lstm_zero_state


def _unroll_from(step, params, x, inputs):
    """The state after running ``step`` over ``inputs`` from ``x`` (a reference by scan)."""
    if inputs.shape[0] == 0:
        return x
    xs = jaxgrad.unroll(lambda x, u: step(x, u, params), x, inputs)
    return jax.tree_util.tree_map(lambda a: a[-1], xs)


def _jacobian_product_fro(step, params, x0, inputs, k):
    """‖∂x_T/∂x_{T-k}‖_F by jacfwd of the composed map from x_{T-k} (the reference)."""
    T = inputs.shape[0]
    x = _unroll_from(step, params, x0, inputs[: T - k])
    flat, unravel = ravel_pytree(x)
    f = lambda v: ravel_pytree(_unroll_from(step, params, unravel(v), inputs[T - k:]))[0]  # noqa: E731
    return float(jnp.linalg.norm(jax.jacfwd(f)(flat)))


def test_init_lstm_sets_forget_bias_only():
    p = init_lstm(jax.random.key(0), 4, 3, forget_bias=2.5)
    assert p.W_x.shape == (16, 3) and p.W_h.shape == (16, 4) and p.b.shape == (16,)
    np.testing.assert_array_equal(p.b[4:8], 2.5)
    np.testing.assert_array_equal(p.b[:4], 0.0)
    np.testing.assert_array_equal(p.b[8:], 0.0)
    g = init_gru(jax.random.key(0), 4, 3, update_bias=1.5)
    assert g.W_x.shape == (12, 3) and g.W_h.shape == (12, 4)
    np.testing.assert_array_equal(g.b_x[4:8], 1.5)
    np.testing.assert_array_equal(g.b_h, 0.0)


def test_lstm_step_closed_form_single_unit(x64):
    """One unit, hand-computed gates."""
    p = LSTMParams(W_x=jnp.array([[0.5], [-1.0], [2.0], [0.3]]),
                   W_h=jnp.array([[0.1], [0.2], [-0.3], [0.4]]),
                   b=jnp.array([0.0, 1.0, 0.0, -0.5]))
    h, c, u = 0.7, -0.2, 1.3
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    i, f, g, o = (p.W_x[:, 0] * u + p.W_h[:, 0] * h + p.b).tolist()
    c1 = sig(f) * c + sig(i) * np.tanh(g)
    h1 = sig(o) * np.tanh(c1)
    out = lstm_step(LSTMState(jnp.array([h]), jnp.array([c])), jnp.array([u]), p)
    assert isinstance(out, LSTMState)
    np.testing.assert_allclose(out.c, [c1], rtol=1e-12)
    np.testing.assert_allclose(out.h, [h1], rtol=1e-12)
    # A plain (h, c) tuple works too and gives a tuple back.
    out_t = lstm_step((jnp.array([h]), jnp.array([c])), jnp.array([u]), p)
    assert type(out_t) is tuple
    np.testing.assert_allclose(out_t[1], [c1], rtol=1e-12)


def test_gru_step_closed_form_single_unit(x64):
    p = GRUParams(W_x=jnp.array([[0.5], [-1.0], [2.0]]), W_h=jnp.array([[0.1], [0.2], [-0.3]]),
                  b_x=jnp.array([0.1, 0.2, 0.3]), b_h=jnp.array([-0.1, 0.0, 0.4]))
    h, u = 0.6, -0.8
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    r = sig(0.5 * u + 0.1 + 0.1 * h - 0.1)
    z = sig(-1.0 * u + 0.2 + 0.2 * h)
    n = np.tanh(2.0 * u + 0.3 + r * (-0.3 * h + 0.4))
    out = gru_step(jnp.array([h]), jnp.array([u]), p)
    np.testing.assert_allclose(out, [(1 - z) * n + z * h], rtol=1e-12)


@pytest.mark.slow
def test_lstm_cell_state_path_closed_form(x64):
    """With W_h = 0: ∂c_T/∂c_{T-k} = diag(Π σ(f_s)) exactly, and the full (h, c) product
    has ‖·‖_F² = Σ_j Π_j² (1 + (σ(o_T) (1 - tanh² c_T))_j²)."""
    n, T = 5, 12
    p = init_lstm(jax.random.key(0), n, 2, forget_bias=1.0)._replace(W_h=jnp.zeros((4 * n, n)))
    inputs = jax.random.normal(jax.random.key(1), (T, 2))
    x0 = LSTMState(0.1 * jnp.ones(n), 0.3 * jnp.ones(n))
    res = jaxgrad.jacobian_product_norms(lstm_step, x0, inputs, params=p, ord="fro")
    gates = jax.vmap(lambda u: p.W_x @ u + p.b)(inputs)  # (T, 4n): no h-dependence
    f = jax.nn.sigmoid(gates[:, n:2 * n])
    o_T = jax.nn.sigmoid(gates[-1, 3 * n:])
    c_T = jaxgrad.unroll(functools.partial(lstm_step, params=p), x0, inputs).c[-1]
    a = o_T * (1 - jnp.tanh(c_T) ** 2)
    for k in range(1, T + 1):
        prod = jnp.prod(f[T - k:], axis=0)
        expected = jnp.sqrt(jnp.sum(prod**2 * (1 + a**2)))
        np.testing.assert_allclose(jnp.exp(res.log_norms[k - 1]), expected, rtol=1e-10)


@pytest.mark.slow
def test_large_forget_bias_keeps_cell_gradient_while_vanilla_rnn_vanishes(x64):
    """The blog post "The Vanishing Gradient Problem" (2016): along c the gradient is
    multiplied by σ(f) ≈ 1 only.

    With forget bias 10 and no recurrent weights, ∂c_T/∂c_0 = diag(Π σ(f_t)) ≈ σ(10)^60
    = 0.99728 over 60 steps; small recurrent weights (scale 0.01) add indirect paths
    through h but every singular value stays within [0.8, 1.25]; a tanh RNN with
    ‖W_rec‖ = 0.9 keeps less than 0.9^60 ≈ 2e-3 of its gradient."""
    n, T = 6, 60
    inputs = 0.1 * jax.random.normal(jax.random.key(1), (T, 1))
    for scale, low, high in ((0.0, 0.99728 * (1 - 1e-4), 0.99728 * (1 + 1e-4)),
                             (0.01, 0.8, 1.25)):
        p = init_lstm(jax.random.key(0), n, 1, forget_bias=10.0, recurrent_scale=scale,
                      input_std=0.1)

        def c_final(c0, p=p):
            return _unroll_from(lstm_step, p, LSTMState(jnp.zeros(n), c0), inputs).c

        s = np.linalg.svd(np.asarray(jax.jacfwd(c_final)(jnp.zeros(n))), compute_uv=False)
        assert low < s.min() <= s.max() < high, (scale, s)
    rnn = jaxgrad.init_pascanu(jax.random.key(2), n, 1, scaling="spectral_norm", value=0.9,
                               dtype=jnp.float64)
    res = jaxgrad.jacobian_product_norms(jaxgrad.pascanu_step, jnp.zeros(n), inputs, params=rnn)
    assert float(jnp.exp(res.log_norms[-1])) < 0.9**T


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.slow
def test_jacobian_product_norms_match_jacfwd_on_cells(cell, x64):
    n, T = 4, 7
    if cell == "lstm":
        step, p, x0 = lstm_step, init_lstm(jax.random.key(3), n, 2), lstm_zero_state(n)
        x0 = LSTMState(x0.h + 0.1, x0.c - 0.2)
    else:
        step, p, x0 = gru_step, init_gru(jax.random.key(3), n, 2), 0.1 * jnp.ones(n)
    inputs = jax.random.normal(jax.random.key(4), (T, 2))
    res = jaxgrad.jacobian_product_norms(step, x0, inputs, params=p, ord="fro")
    for k in (1, 3, T):
        ref = _jacobian_product_fro(step, p, x0, inputs, k)
        np.testing.assert_allclose(jnp.exp(res.log_norms[k - 1]), ref, rtol=1e-9)
    # spectral norm <= Frobenius and positive
    spec = jaxgrad.jacobian_product_norms(step, x0, inputs, params=p, spectral_method="svd")
    assert bool(jnp.all(spec.log_norms <= res.log_norms + 1e-12))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_gradient_flow_on_cells(cell, x64):
    n, T = 3, 9
    if cell == "lstm":
        step, p, x0 = lstm_step, init_lstm(jax.random.key(5), n, 1), lstm_zero_state(n)

        def head(x):
            return jnp.sum(x.h**2)
    else:
        step, p, x0 = gru_step, init_gru(jax.random.key(5), n, 1), jnp.zeros(n)

        def head(x):
            return jnp.sum(x**2)

    inputs = jax.random.normal(jax.random.key(6), (T, 1))
    loss_fn = lambda xs: head(jax.tree_util.tree_map(lambda a: a[-1], xs))  # noqa: E731
    flow = jaxgrad.analysis.recurrent_gradient_flow(step, x0, inputs, loss_fn, params=p)
    assert flow.state_grad_norms.shape == (T,)
    for t in (1, 5, T):  # ‖∂L/∂x_t‖ through the rest of the trajectory
        x_t = _unroll_from(step, p, x0, inputs[:t])
        flat, unravel = ravel_pytree(x_t)
        g = jax.grad(lambda v: head(_unroll_from(step, p, unravel(v), inputs[t:])))(flat)
        np.testing.assert_allclose(flow.state_grad_norms[t - 1], jnp.linalg.norm(g),
                                   rtol=1e-9)


def test_jit_vmap_and_gradients():
    n, B = 5, 4
    p = init_lstm(jax.random.key(0), n, 3)
    xs = LSTMState(jax.random.normal(jax.random.key(1), (B, n)),
                   jax.random.normal(jax.random.key(2), (B, n)))
    us = jax.random.normal(jax.random.key(3), (B, 3))
    batched = jax.vmap(lstm_step, in_axes=(0, 0, None))(xs, us, p)
    jitted = jax.jit(lstm_step)
    for b in range(B):
        one = jitted(LSTMState(xs.h[b], xs.c[b]), us[b], p)
        np.testing.assert_allclose(batched.h[b], one.h, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(batched.c[b], one.c, rtol=1e-6, atol=1e-7)
    gp = init_gru(jax.random.key(0), n, 3)
    gb = jax.vmap(gru_step, in_axes=(0, 0, None))(xs.h, us, gp)
    np.testing.assert_allclose(gb[2], jax.jit(gru_step)(xs.h[2], us[2], gp), rtol=1e-6)


def test_check_grads(x64):
    p = init_lstm(jax.random.key(0), 3, 2, forget_bias=1.0)
    x = LSTMState(0.1 * jnp.ones(3), -0.2 * jnp.ones(3))
    u = jnp.array([0.3, -0.7])
    check_grads(lambda x, p: lstm_step(x, u, p), (x, p), order=1, modes=["rev", "fwd"])
    gp = init_gru(jax.random.key(1), 3, 2)
    check_grads(lambda h, p: gru_step(h, u, p), (0.1 * jnp.ones(3), gp), order=1,
                modes=["rev", "fwd"])


@pytest.mark.slow
def test_parity_with_torch_cells():
    torch = pytest.importorskip("torch")
    n, m = 5, 3
    rng = np.random.default_rng(0)
    lstm = torch.nn.LSTMCell(m, n)
    gru = torch.nn.GRUCell(m, n)
    u = rng.normal(size=(1, m)).astype(np.float32)
    h = rng.normal(size=(1, n)).astype(np.float32)
    c = rng.normal(size=(1, n)).astype(np.float32)
    with torch.no_grad():
        th, tc = lstm(torch.from_numpy(u), (torch.from_numpy(h), torch.from_numpy(c)))
        tg = gru(torch.from_numpy(u), torch.from_numpy(h))
    p = LSTMParams(jnp.asarray(lstm.weight_ih.detach().numpy()),
                   jnp.asarray(lstm.weight_hh.detach().numpy()),
                   jnp.asarray((lstm.bias_ih + lstm.bias_hh).detach().numpy()))
    out = lstm_step(LSTMState(jnp.asarray(h[0]), jnp.asarray(c[0])), jnp.asarray(u[0]), p)
    np.testing.assert_allclose(out.h, th.numpy()[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.c, tc.numpy()[0], rtol=1e-5, atol=1e-6)
    gp = GRUParams(*(jnp.asarray(t.detach().numpy()) for t in
                     (gru.weight_ih, gru.weight_hh, gru.bias_ih, gru.bias_hh)))
    np.testing.assert_allclose(gru_step(jnp.asarray(h[0]), jnp.asarray(u[0]), gp),
                               tg.numpy()[0], rtol=1e-5, atol=1e-6)


def test_bad_input():
    p = init_lstm(jax.random.key(0), 4, 2)
    x = lstm_zero_state(4)
    with pytest.raises(TypeError, match="`params` must be a LSTMParams"):
        lstm_step(x, jnp.zeros(2), init_gru(jax.random.key(0), 4, 2))
    with pytest.raises(ValueError, match="input `u` must have shape \\(2,\\)"):
        lstm_step(x, jnp.zeros(3), p)
    with pytest.raises(ValueError, match="`params.W_h` must have shape \\(20, 5\\)"):
        lstm_step(lstm_zero_state(5), jnp.zeros(2), p)
    with pytest.raises(ValueError, match="shape \\(N,\\) for one example"):
        lstm_step(LSTMState(jnp.zeros((2, 4)), jnp.zeros((2, 4))), jnp.zeros(2), p)
    gp = init_gru(jax.random.key(0), 4, 2)
    with pytest.raises(ValueError, match="input `u`"):
        gru_step(jnp.zeros(4), jnp.zeros((1, 2)), gp)
    with pytest.raises(TypeError, match="`params` must be a GRUParams"):
        gru_step(jnp.zeros(4), jnp.zeros(2), p)
    with pytest.raises(ValueError, match="`num_units` must be >= 1"):
        init_lstm(jax.random.key(0), 0, 2)
    with pytest.raises(TypeError, match="`num_inputs` must be an integer"):
        init_gru(jax.random.key(0), 3, 2.0)
    with pytest.raises(ValueError, match="`forget_bias` must be finite"):
        init_lstm(jax.random.key(0), 3, 2, forget_bias=float("nan"))
    with pytest.raises(ValueError, match="`recurrent_scale`"):
        init_gru(jax.random.key(0), 3, 2, recurrent_scale=-1.0)
    with pytest.raises(ValueError, match="`step\\(x, u\\)` must return a state shaped like"):
        jaxgrad.jacobian_product_norms(lambda x, u, q: x.h, x, jnp.zeros((3, 2)), params=p)


def test_initialisers_work_under_jit():
    """Static biases are checked on the host, so initialising inside jit works."""
    lstm = jax.jit(lambda k: jaxgrad.init_lstm(k, 4, 2, forget_bias=3.0))(jax.random.key(0))
    gru = jax.jit(lambda k: jaxgrad.init_gru(k, 4, 2, update_bias=-1.0))(jax.random.key(0))
    eager = jaxgrad.init_lstm(jax.random.key(0), 4, 2, forget_bias=3.0)
    for a, b in zip(jax.tree_util.tree_leaves(lstm), jax.tree_util.tree_leaves(eager),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert jax.tree_util.tree_leaves(gru)


def test_wrong_biases_and_cell_state_are_refused_not_broadcast():
    """A bias or cell state of shape (1,) used to broadcast (c: the state changed shape
    from (1,) to (N,)); the checks are trace-time, so they hold under jit and vmap too."""
    p = init_lstm(jax.random.key(0), 4, 2)
    gp = init_gru(jax.random.key(0), 4, 2)
    u = jnp.zeros(2)
    with pytest.raises(ValueError, match=r"`c` must have shape \(4,\)"):
        lstm_step((jnp.zeros(4), jnp.zeros(1)), u, p)
    with pytest.raises(ValueError, match=r"`c` must have shape \(4,\)"):
        jax.jit(lstm_step)((jnp.zeros(4), jnp.zeros(1)), u, p)
    with pytest.raises(ValueError, match=r"`params.b` must have shape \(16,\)"):
        lstm_step(lstm_zero_state(4), u, p._replace(b=jnp.zeros(1)))
    with pytest.raises(TypeError, match="`state` must be an LSTMState"):
        lstm_step((jnp.zeros(4),) * 3, u, p)
    for field in ("b_x", "b_h"):
        with pytest.raises(ValueError, match=rf"`params.{field}` must have shape \(12,\)"):
            jax.jit(gru_step)(jnp.zeros(4), u, gp._replace(**{field: jnp.zeros(1)}))
    # good shapes still pass under vmap (each example is (N,)) and keep the state type
    hs = jax.vmap(gru_step, in_axes=(0, 0, None))(jnp.zeros((3, 4)), jnp.zeros((3, 2)), gp)
    assert hs.shape == (3, 4)
    out = lstm_step([jnp.zeros(4), jnp.zeros(4)], u, p)
    assert isinstance(out, tuple) and out[1].shape == (4,)
