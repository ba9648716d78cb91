"""LSTM and GRU step functions: closed forms, the analyzers on pytree states, parity, bad input."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree
from jax.test_util import check_grads

import jaxgrad
from jaxgrad import gru_step, init_gru, init_lstm, lstm_step
from jaxgrad.models import GRUParams, LSTMParams, LSTMState, lstm_zero_state
from jaxgrad.train import sequence as seq


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


# --------------------------------------------------------------------------- cell objects

KEY = jax.random.key(0)


def _old_init(cell, key, n, m, num_outputs, *, recurrent_scale=1.0, input_std=1.0, forget_bias=1.0):
    """What SequenceModel.init computed before cells were objects (the four if-chains)."""
    k_cell, k_out = jax.random.split(key)
    if cell in ("rnn_tanh", "rnn_sigmoid", "elman_tanh"):
        p = jaxgrad.init_pascanu(k_cell, n, m, scaling="spectral_radius",
                                 value=recurrent_scale, input_std=input_std)
    elif cell == "lstm":
        p = init_lstm(k_cell, n, m, forget_bias=forget_bias, recurrent_scale=recurrent_scale,
                      input_std=input_std, dtype=jnp.float32)
    else:
        p = init_gru(k_cell, n, m, update_bias=forget_bias, recurrent_scale=recurrent_scale,
                     input_std=input_std, dtype=jnp.float32)
    W_out = jax.random.normal(k_out, (num_outputs, n), jnp.float32)
    return p, W_out / jnp.sqrt(jnp.asarray(n, jnp.float32))


def _old_step(cell, x, u, p):
    if cell == "rnn_tanh":
        return jaxgrad.pascanu_step(x, u, p, activation="tanh")
    if cell == "rnn_sigmoid":
        return jaxgrad.pascanu_step(x, u, p, activation="sigmoid")
    if cell == "lstm":
        return lstm_step(x, u, p)
    if cell == "elman_tanh":
        return jnp.tanh(p.W_rec @ x + p.W_in @ u + p.b)
    return gru_step(x, u, p)


def _old_observe(cell, x):
    return {"rnn_tanh": jnp.tanh, "rnn_sigmoid": jax.nn.sigmoid}.get(
        cell, lambda x: x.h if cell == "lstm" else x)(x)


@pytest.mark.parametrize("name", ["rnn_tanh", "rnn_sigmoid", "lstm", "gru", "elman_tanh"])
def test_named_cells_are_bitwise_the_old_string_cells(name):
    """The registry's cell objects give exactly what the if-chains on names gave."""
    model = seq.SequenceModel(name, 6, 3, 2)
    assert model.cell is jaxgrad.models.CELLS[name] and model == seq.SequenceModel(model.cell, 6, 3,
                                                                                   2)
    key = jax.random.key(7)
    params = model.init(key, recurrent_scale=1.3, input_std=0.7, forget_bias=2.0)
    cell_p, W_out = _old_init(name, key, 6, 3, 2, recurrent_scale=1.3, input_std=0.7,
                              forget_bias=2.0)
    for a, b in zip(jax.tree_util.tree_leaves((params.cell, params.W_out)),
                    jax.tree_util.tree_leaves((cell_p, W_out)), strict=True):
        np.testing.assert_array_equal(a, b)
    x = jax.tree_util.tree_map(lambda z: 0.3 * jax.random.normal(jax.random.key(8), z.shape),
                               model.initial_state())
    u = jax.random.normal(jax.random.key(9), (3,))
    for a, b in zip(jax.tree_util.tree_leaves(model.step(x, u, params.cell)),
                    jax.tree_util.tree_leaves(_old_step(name, x, u, cell_p)), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.observe(x), _old_observe(name, x))


def test_cell_objects_are_static_jit_arguments():
    """Equal cells hash equal, so a jit keyed on the model compiles once for both."""
    traces = []

    @functools.partial(jax.jit, static_argnums=0)
    def first_output(model, params, inputs):
        traces.append(1)
        return seq.sequence_outputs(model, params, inputs)

    task = jaxgrad.get_task("adding_problem")
    a = seq.SequenceModel.for_task("rnn_sigmoid", 4, task)
    b = seq.SequenceModel.for_task(jaxgrad.models.PascanuCell("sigmoid"), 4, task)
    sigmoid = jaxgrad.models.get_activation("sigmoid")
    c = seq.SequenceModel.for_task(jaxgrad.models.PascanuCell(sigmoid), 4, task)
    assert a == b and hash(a) == hash(b) and b.cell != c.cell  # "sigmoid" vs its object
    params = a.init(KEY)
    inputs = task.sample(KEY, 2, 6).inputs
    np.testing.assert_array_equal(first_output(a, params, inputs), first_output(b, params, inputs))
    assert len(traces) == 1
    np.testing.assert_array_equal(first_output(c, params, inputs), first_output(a, params, inputs))



@dataclasses.dataclass(frozen=True)
class MinimalGatedCell(jaxgrad.models.Cell):
    """A new model in this file only: the minimal gated unit (Zhou et al. 2016),
    f = σ(W_f h + U_f u + b_f), h' = (1 − f) h + f tanh(W (f ⊙ h) + U u + b)."""

    gate_bias: float = 1.0

    def init(self, key, num_units, num_inputs, *, dtype=jnp.float32, recurrent_scale=1.0):
        k = jax.random.split(key, 4)
        n, m = num_units, num_inputs
        rec = recurrent_scale / n**0.5
        return {"W_f": rec * jax.random.normal(k[0], (n, n), dtype),
                "U_f": jax.random.normal(k[1], (n, m), dtype) / m**0.5,
                "b_f": jnp.full((n,), self.gate_bias, dtype),
                "W": rec * jax.random.normal(k[2], (n, n), dtype),
                "U": jax.random.normal(k[3], (n, m), dtype) / m**0.5,
                "b": jnp.zeros((n,), dtype)}

    def step(self, h, u, p):
        f = jax.nn.sigmoid(p["W_f"] @ h + p["U_f"] @ u + p["b_f"])
        return (1 - f) * h + f * jnp.tanh(p["W"] @ (f * h) + p["U"] @ u + p["b"])


def _explicit_mgu_outputs(p, W_out, b_out, inputs):
    """The same model unrolled with a Python loop in plain jnp (the reference)."""
    h = jnp.zeros((inputs.shape[0], p["W"].shape[0]), inputs.dtype)
    for t in range(inputs.shape[1]):
        u = inputs[:, t]
        f = jax.nn.sigmoid(h @ p["W_f"].T + u @ p["U_f"].T + p["b_f"][None])
        h = (1 - f) * h + f * jnp.tanh((f * h) @ p["W"].T + u @ p["U"].T + p["b"][None])
    return h @ W_out.T + b_out[None]


@pytest.mark.slow
def test_a_new_cell_is_one_file_and_trains_through_sequence_model(x64):
    """Adding a model is one file: the cell above, nothing else, runs through
    SequenceModel, sequence_loss, sequence_state_grad_norms and train_steps."""
    task = jaxgrad.get_task("adding_problem")
    model = seq.SequenceModel.for_task(MinimalGatedCell(), 5, task)
    params = model.init(KEY, recurrent_scale=0.8, dtype=jnp.float64)
    batch = task.sample(jax.random.key(1), 4, 8)
    batch = batch._replace(inputs=batch.inputs.astype(jnp.float64),
                           targets=batch.targets.astype(jnp.float64))
    loss_fn = seq.sequence_loss(model, task)

    def explicit_loss(p, batch):
        return task.loss(_explicit_mgu_outputs(p.cell, p.W_out, p.b_out, batch.inputs),
                         batch.targets)

    value, grads = jax.jit(jax.value_and_grad(loss_fn))(params, batch)
    ref_value, ref_grads = jax.jit(jax.value_and_grad(explicit_loss))(params, batch)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(ref_grads),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-14)

    # ‖∂E/∂h_t‖ of one sequence against the gradient of the reference from h_t on.
    one = jax.tree_util.tree_map(lambda a: a[:1], batch)
    t = 3

    def rest(h):
        for s in range(t, one.inputs.shape[1]):
            h = model.step(h, one.inputs[0, s], params.cell)
        return task.loss((params.W_out @ h + params.b_out)[None], one.targets)

    h_t = jaxgrad.unroll(functools.partial(model.step, cell_params=params.cell),
                         model.initial_state(jnp.float64), one.inputs[0, :t])[-1]
    norms = jax.jit(seq.sequence_state_grad_norms, static_argnums=(0, 1))(
        model, task, params, one)
    np.testing.assert_allclose(norms[t - 1], jnp.linalg.norm(jax.jit(jax.grad(rest))(h_t)),
                               rtol=1e-9)

    opt = optax.adam(2e-2)
    with jax.enable_x64(False):
        state, metrics = jax.jit(lambda p: jaxgrad.train_steps(
            loss_fn, opt, jaxgrad.init_train_state(p, opt),
            lambda k, t: task.sample(k, 16, 8), num_steps=100, key=jax.random.key(2),
        ))(model.init(KEY, recurrent_scale=0.8))
    loss = np.asarray(metrics.loss)
    assert bool(np.all(metrics.finite))
    assert loss[-20:].mean() < 0.5 * loss[:5].mean(), loss[[0, 4, -20, -1]]


class _NnxElman:
    """A user's nnx cell (built lazily so that the file imports without flax)."""

    @staticmethod
    def make():
        from flax import nnx

        class Elman(nnx.Module):
            def __init__(self, hidden, inputs, *, rngs):
                self.rec = nnx.Linear(hidden, hidden, rngs=rngs)
                self.inp = nnx.Linear(inputs, hidden, use_bias=False, rngs=rngs)

            def __call__(self, h, u):
                return jnp.tanh(self.rec(h) + self.inp(u))

        return Elman


@pytest.mark.slow
def test_nnx_cell_through_sequence_model_matches_explicit_jnp():
    pytest.importorskip("flax")
    Elman = _NnxElman.make()
    task = jaxgrad.get_task("adding_problem")
    cell = jaxgrad.models.NnxCell(Elman)
    model = seq.SequenceModel.for_task(cell, 5, task)
    assert model == seq.SequenceModel.for_task(jaxgrad.models.NnxCell(Elman), 5, task)
    params = model.init(KEY)
    st = params.cell.state
    explicit_params = (st["rec"]["kernel"][...], st["rec"]["bias"][...],
                       st["inp"]["kernel"][...], params.W_out, params.b_out)
    batch = task.sample(jax.random.key(3), 4, 9)

    def explicit(p, batch):
        W, b, U, W_out, b_out = p
        h = jnp.zeros((4, 5))
        for t in range(9):
            h = jnp.tanh(h @ W + b[None] + batch.inputs[:, t] @ U)
        return task.loss(h @ W_out.T + b_out[None], batch.targets)

    loss_fn = seq.sequence_loss(model, task)
    value, g = jax.jit(jax.value_and_grad(loss_fn))(params, batch)
    ref_value, ref = jax.jit(jax.value_and_grad(explicit))(explicit_params, batch)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    got = (g.cell.state["rec"]["kernel"][...], g.cell.state["rec"]["bias"][...],
           g.cell.state["inp"]["kernel"][...], g.W_out, g.b_out)
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    # seeds under vmap, and optax steps on the module's arrays
    stacked = jax.vmap(model.init)(jax.random.split(KEY, 3))
    assert stacked.cell.state["rec"]["kernel"][...].shape == (3, 5, 5)
    opt = optax.sgd(0.1)
    state, metrics = jax.jit(lambda p: jaxgrad.train_steps(
        loss_fn, opt, jaxgrad.init_train_state(p, opt), jaxgrad.train.fixed_batches(
            jax.tree_util.tree_map(lambda a: a[None], batch)), num_steps=20))(params)
    assert float(metrics.loss[-1]) < float(metrics.loss[0])
    assert isinstance(state.params.cell, jaxgrad.models.NnxParams)


def test_rate_cell_is_the_rate_network():
    cell = jaxgrad.models.RateCell()
    p = cell.init(KEY, 6, 2, recurrent_scale=1.5, input_std=0.5)
    ref = jaxgrad.init_rate(KEY, 6, g=1.5, num_inputs=2, input_std=0.5)
    for a, b in zip(p, ref, strict=True):
        np.testing.assert_array_equal(a, b)
    h, u = jnp.linspace(-1, 1, 6), jnp.array([0.3, -0.4])
    np.testing.assert_array_equal(cell.step(h, u, p), jaxgrad.rate_step(h, u, p))
    np.testing.assert_array_equal(cell.observe(h), jnp.tanh(h))
    flow = jaxgrad.models.RateCell(dt=0.05, method="euler")
    np.testing.assert_allclose(flow.step(h, u, p), h + 0.05 * (-h + p.J @ jnp.tanh(h)
                                                                 + p.W_in @ u), rtol=1e-6)
    model = seq.SequenceModel.for_task("rate", 6, jaxgrad.get_task("adding_problem"))
    assert model.cell == cell
    with pytest.raises(ValueError, match="`dt` must be finite and > 0"):
        jaxgrad.models.RateCell(dt=0.0)
    with pytest.raises(ValueError, match="unknown `method`"):
        jaxgrad.models.RateCell(dt=0.1, method="heun")


def test_elman_omega_pullback_for_other_activations(x64):
    """σ'(a) held constant: the value is the step's VJP, the gradient reaches W_rec only."""
    cell = jaxgrad.models.ElmanCell("sigmoid")
    p = jaxgrad.init_pascanu(KEY, 4, 2, dtype=jnp.float64)._replace(b=0.1 * jnp.ones(4))
    h, u, g = 0.2 * jnp.ones(4), jnp.array([0.5, -1.0]), jnp.arange(1.0, 5.0)
    h_next = cell.step(h, u, p)
    _, vjp = jax.vjp(lambda x: cell.step(x, u, p), h)
    np.testing.assert_allclose(cell.omega_pullback(h, h_next, u, g, p), vjp(g)[0], rtol=1e-12)
    grads = jax.grad(lambda q: jnp.sum(cell.omega_pullback(h, h_next, u, g, q) ** 2))(p)
    assert float(jnp.abs(grads.W_rec).max()) > 0
    assert float(jnp.abs(grads.W_in).max()) == 0 and float(jnp.abs(grads.b).max()) == 0
    tanh = jaxgrad.models.ElmanCell()
    np.testing.assert_allclose(tanh.omega_pullback(h, tanh.step(h, u, p), u, g, p),
                               jax.vjp(lambda x: tanh.step(x, u, p), h)[1](g)[0], rtol=1e-12)


def test_cells_refuse_bad_input():
    with pytest.raises(ValueError, match="unknown `cell` 'rnn'"):
        seq.SequenceModel("rnn", 4, 1, 1)
    with pytest.raises(TypeError, match="`cell` must be a name in .* got object without init"):
        seq.SequenceModel(object(), 4, 1, 1)

    class Unhashable(jaxgrad.models.Cell):
        __hash__ = None

        def init(self, key, num_units, num_inputs, *, dtype=jnp.float32):
            return None

        def step(self, h, u, params):
            return h

    with pytest.raises(TypeError, match="`cell` must be hashable"):
        seq.SequenceModel(Unhashable(), 4, 1, 1)
    with pytest.raises(TypeError, match="abstract"):
        jaxgrad.models.Cell()
    with pytest.raises(ValueError, match="`scheme` 'smart_tanh' is for the tanh RNNs"):
        jaxgrad.models.PascanuCell("sigmoid").init(KEY, 4, 1, scheme="smart_tanh")
    with pytest.raises(ValueError, match="`scheme` 'smart_tanh' is for the tanh RNNs"):
        jaxgrad.models.RateCell().init(KEY, 4, 1, scheme="smart_tanh")
    with pytest.raises(ValueError, match="`recurrent_scale` must be finite and > 0"):
        jaxgrad.models.GRUCell().init(KEY, 4, 1, recurrent_scale=0.0)
    with pytest.raises(ValueError, match="unknown `activation` 'swish!'"):
        jaxgrad.models.PascanuCell("swish!")
    with pytest.raises(TypeError, match="`activation` must be a name"):
        jaxgrad.models.ElmanCell(3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'forget_bias'"):
        seq.SequenceModel(MinimalGatedCell(), 4, 1, 1).init(KEY, forget_bias=1.0)
    with pytest.raises(TypeError, match="`make` must be callable"):
        jaxgrad.models.NnxCell(None)


def test_nnx_cell_refuses_bad_input():
    pytest.importorskip("flax")
    with pytest.raises(TypeError, match="`make` must return an nnx.Module"):
        jaxgrad.models.NnxCell(lambda n, m, rngs: None).init(KEY, 4, 1)
    with pytest.raises(TypeError, match="`key` must be"):
        jaxgrad.models.NnxCell(_NnxElman.make()).init(0, 4, 1)
    with pytest.raises(TypeError, match="`params` must be the NnxParams"):
        jaxgrad.models.NnxCell(_NnxElman.make()).step(jnp.zeros(4), jnp.zeros(1), {"w": 1})
    from flax import nnx

    class WithStats(nnx.Module):  # batch statistics: not a pure step of (h, u, params)
        def __init__(self, n, m, *, rngs):
            self.rec = nnx.Linear(n, n, rngs=rngs)
            self.norm = nnx.BatchNorm(n, rngs=rngs)

        def __call__(self, h, u):
            return jnp.tanh(self.norm(self.rec(h), use_running_average=True))

    with pytest.raises(ValueError, match=r"variables other than nnx.Param \(BatchStat"):
        jaxgrad.models.NnxCell(WithStats).init(KEY, 4, 1)
