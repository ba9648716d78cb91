"""Pascanu et al.'s Ω (eq. 9) with the paper's gradient (eq. 10); the flossing regulariser."""

import jax
import jax.numpy as jnp
import jax.test_util  # noqa: F401  (check_grads)
import numpy as np
import optax
import pytest

import jaxgrad
from jaxgrad.train import regularizers as R
from jaxgrad.train import sequence as seq
from jaxgrad.train import tasks as T

KEY = jax.random.key(0)


def _linear(x, u, W):
    return W @ x + u


def _last_sum(xs):
    return jnp.sum(xs[-1])


@pytest.mark.parametrize("a", [0.5, 1.0, 1.7, -0.8])
def test_linear_rnn_closed_form(a, x64):
    """W = a Q with Q orthogonal: every ratio is |a|, so Ω = T (|a| − 1)²."""
    n, steps = 5, 12
    Q, _ = jnp.linalg.qr(jax.random.normal(KEY, (n, n)))
    W = a * Q
    inputs = jax.random.normal(jax.random.key(1), (steps, n))
    loss = lambda xs: jnp.sum(jnp.sin(xs[-1])) + jnp.sum(xs[3] ** 2)  # noqa: E731
    terms = R.pascanu_omega_terms(_linear, jnp.ones(n), inputs, loss, params=W)
    np.testing.assert_allclose(np.asarray(terms.ratios), abs(a), rtol=1e-10)
    assert bool(terms.valid.all())
    np.testing.assert_allclose(float(terms.omega), steps * (abs(a) - 1) ** 2, atol=1e-12)
    mean = R.pascanu_omega(_linear, jnp.ones(n), inputs, loss, params=W, reduction="mean")
    np.testing.assert_allclose(float(mean), (abs(a) - 1) ** 2, atol=1e-12)


def test_linear_rnn_gradient_closed_form(x64):
    """d/da T(|a| − 1)² = 2T(|a| − 1) sign(a); here the ratio does not depend on ∂E/∂x."""
    steps = 9

    def omega(a):
        return R.pascanu_omega(lambda x, u, p: p * x + u, jnp.ones(3), jnp.zeros((steps, 3)),
                               _last_sum, params=a)

    for a in (0.3, 1.4, -0.6):
        g = float(jax.grad(omega)(jnp.asarray(a)))
        np.testing.assert_allclose(g, 2 * steps * (abs(a) - 1) * np.sign(a), rtol=1e-10)
    # Here the full derivative is the same, so finite differences agree too.
    jax.test_util.check_grads(omega, (jnp.asarray(0.7),), order=1, modes=["rev"])


def _pascanu_setup(n=6, m=2, steps=15):
    p = jaxgrad.init_pascanu(KEY, n, m, scaling="spectral_radius", value=1.3,
                             dtype=jnp.float64)
    p = p._replace(b=0.1 * jax.random.normal(jax.random.key(3), (n,), p.W_rec.dtype))
    inputs = jax.random.normal(jax.random.key(1), (steps, m), p.W_rec.dtype)
    x0 = 0.1 * jnp.ones(n, p.W_rec.dtype)
    loss = lambda xs: jnp.sum(jnp.tanh(xs[-1]) ** 2) + 0.5 * jnp.sum(jnp.tanh(xs[-4]))  # noqa
    return p, inputs, x0, loss


def _explicit_ratios(p, inputs, x0, loss):
    """Ratios from explicit Jacobians W_rec diag(σ'(x_k)) and BPTT gradients."""
    step = lambda x, u: jaxgrad.pascanu_step(x, u, p)  # noqa: E731
    xs = jaxgrad.unroll(step, x0, inputs)
    probes = jnp.zeros_like(xs)

    def objective(probes):
        def body(x, z):
            u, d = z
            x = step(x, u) + d
            return x, x
        return loss(jax.lax.scan(body, x0, (inputs, probes))[1])

    g = jax.grad(objective)(probes)
    prev = jnp.concatenate([x0[None], xs[:-1]])
    J = jax.vmap(lambda x, u: jax.jacfwd(step)(x, u))(prev, inputs)
    pulled = jnp.einsum("ti,tij->tj", g, J)
    return jnp.linalg.norm(pulled, axis=1) / jnp.linalg.norm(g, axis=1), g, prev


@pytest.mark.slow
def test_ratios_match_explicit_jacobians(x64):
    p, inputs, x0, loss = _pascanu_setup()
    terms = R.pascanu_omega_terms(jaxgrad.pascanu_step, x0, inputs, loss, params=p)
    ratios, g, _ = _explicit_ratios(p, inputs, x0, loss)
    np.testing.assert_allclose(np.asarray(terms.ratios), np.asarray(ratios), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(terms.grad_norms),
                               np.asarray(jnp.linalg.norm(g, axis=1)), rtol=1e-10)
    np.testing.assert_allclose(float(terms.omega), float(jnp.sum((ratios - 1) ** 2)),
                               rtol=1e-10)


@pytest.mark.slow
def test_gradient_is_the_papers_eq10(x64):
    """∂Ω/∂W_rec with ∂E/∂x_{k+1} and x_k held fixed: finite differences of the frozen Ω."""
    p, inputs, x0, loss = _pascanu_setup()
    _, g, prev = _explicit_ratios(p, inputs, x0, loss)

    def frozen(W_rec):
        # Jacobian W_rec diag(σ'(x_k)); the row vector g_k pulled back is (W_rec^T g_k) σ'(x_k).
        dsig = 1 - jnp.tanh(prev) ** 2
        pulled = (g @ W_rec) * dsig
        r = jnp.linalg.norm(pulled, axis=1) / jnp.linalg.norm(g, axis=1)
        return jnp.sum((r - 1) ** 2)

    grads = jax.grad(
        lambda q: R.pascanu_omega(jaxgrad.pascanu_step, x0, inputs, loss, params=q)
    )(p)
    np.testing.assert_allclose(np.asarray(grads.W_rec), np.asarray(jax.grad(frozen)(p.W_rec)),
                               rtol=1e-8, atol=1e-12)
    jax.test_util.check_grads(frozen, (p.W_rec,), order=1, modes=["rev"])
    # Ω reaches W_rec only: W_in and b enter the Jacobian only through the frozen states.
    assert float(jnp.max(jnp.abs(grads.W_in))) == 0.0
    assert float(jnp.max(jnp.abs(grads.b))) == 0.0

    # The paper's choice matters: differentiating through ∂E/∂x and x_k gives another answer.
    def full(q):
        ratios, _, _ = _explicit_ratios(q, inputs, x0, loss)
        return jnp.sum((ratios - 1) ** 2)

    diff = np.abs(np.asarray(jax.grad(full)(p).W_rec - grads.W_rec)).max()
    assert diff > 1e-3


@pytest.mark.slow
def test_pytree_state_lstm_matches_explicit_jacobians(x64):
    n = 4
    p = jaxgrad.init_lstm(KEY, n, 1, dtype=jnp.float64)
    x0 = jaxgrad.models.lstm_zero_state(n, jnp.float64)
    inputs = jax.random.normal(jax.random.key(1), (10, 1), jnp.float64)
    loss = lambda s: jnp.sum(s.h[-1] ** 2) + jnp.sum(s.c[-1])  # noqa: E731
    terms = R.pascanu_omega_terms(jaxgrad.lstm_step, x0, inputs, loss, params=p)
    assert terms.ratios.shape == (10,) and bool(terms.valid.all())
    # Explicit: flatten (h, c) and take the Jacobian of the flat step.
    from jax.flatten_util import ravel_pytree
    flat0, unravel = ravel_pytree(x0)
    fstep = lambda x, u: ravel_pytree(jaxgrad.lstm_step(unravel(x), u, p))[0]  # noqa: E731
    xs = jaxgrad.unroll(fstep, flat0, inputs)
    flow = jaxgrad.analysis.recurrent_gradient_flow(fstep, flat0, inputs,
                                                    lambda s: loss(jax.vmap(unravel)(s)))
    np.testing.assert_allclose(np.asarray(terms.grad_norms), np.asarray(flow.state_grad_norms),
                               rtol=1e-10)
    probes_g = jax.grad(lambda d: loss(jax.vmap(unravel)(jax.lax.scan(
        lambda x, z: (fstep(x, z[0]) + z[1],) * 2, flat0, (inputs, d))[1])))(jnp.zeros_like(xs))
    prev = jnp.concatenate([flat0[None], xs[:-1]])
    J = jax.vmap(jax.jacfwd(fstep))(prev, inputs)
    ratios = jnp.linalg.norm(jnp.einsum("ti,tij->tj", probes_g, J), axis=1) / jnp.linalg.norm(
        probes_g, axis=1)
    np.testing.assert_allclose(np.asarray(terms.ratios), np.asarray(ratios), rtol=1e-10)


def test_zero_gradient_steps_are_left_out_and_gradients_stay_finite():
    """a = 0: ∂E/∂x_k = 0 before the last step (left out); the last ratio is 0, Ω = 1."""

    def omega(a):
        return R.pascanu_omega_terms(lambda x, u, p: p * x + u, jnp.ones(2),
                                     jnp.ones((6, 2)), _last_sum, params=a)

    terms = omega(jnp.asarray(0.0))
    np.testing.assert_array_equal(np.asarray(terms.valid), [False] * 5 + [True])
    assert float(terms.omega) == pytest.approx(1.0)
    assert np.isnan(np.asarray(terms.ratios[:5])).all()
    g = jax.grad(lambda a: omega(a).omega)(jnp.asarray(0.0))
    assert np.isfinite(float(g))


@pytest.mark.slow
def test_jit_matches_eager_and_sequence_omega_is_the_batch_mean():
    task = T.get_task("temporal_order")
    model = seq.SequenceModel.for_task("rnn_tanh", 5, task)
    params = model.init(KEY)
    batch = task.sample(jax.random.key(1), 3, 12)
    reg = seq.sequence_omega(model, task, reduction="sum")
    eager = float(reg(params, batch))
    np.testing.assert_allclose(float(jax.jit(reg)(params, batch)), eager, rtol=1e-5)
    per = []
    for i in range(3):
        def loss(states, i=i):
            out = model.outputs_from_states(params, states)
            return task.loss(out[None], batch.targets[i : i + 1])

        per.append(float(R.pascanu_omega(model.step, model.initial_state(), batch.inputs[i],
                                         loss, params=params.cell)))
    np.testing.assert_allclose(eager, np.mean(per), rtol=1e-5)
    g = jax.grad(reg)(params, batch)
    assert float(jnp.abs(g.W_out).max()) == 0.0  # the readout only enters ∂E/∂x (frozen)
    assert float(jnp.abs(g.cell.W_rec).max()) > 0.0


@pytest.mark.parametrize("a", [0.5, 1.3, -0.8])
def test_squared_form_linear_closed_form(a, x64):
    """Pascanu's code penalises (ratio² − 1)²: with W = a Q, Q orthogonal, Ω = T (a² − 1)²
    and dΩ/da = 4 T a (a² − 1)."""
    n, steps = 4, 10
    Q, _ = jnp.linalg.qr(jax.random.normal(KEY, (n, n)))
    inputs = jax.random.normal(jax.random.key(1), (steps, n))

    def omega(a, **kw):
        return R.pascanu_omega(_linear, jnp.ones(n), inputs, _last_sum, params=a * Q,
                               squared=True, **kw)

    np.testing.assert_allclose(float(omega(a)), steps * (a**2 - 1) ** 2, rtol=1e-10)
    np.testing.assert_allclose(float(omega(a, reduction="mean")), (a**2 - 1) ** 2, rtol=1e-10)
    np.testing.assert_allclose(float(jax.grad(omega)(jnp.asarray(a))),
                               4 * steps * a * (a**2 - 1), rtol=1e-10)
    # The printed eq. 9 (default) is not the squared form away from |a| = 1.
    plain = R.pascanu_omega(_linear, jnp.ones(n), inputs, _last_sum, params=a * Q)
    np.testing.assert_allclose(float(plain), steps * (abs(a) - 1) ** 2, rtol=1e-10)


def _elman_reference(W, V, b, W_out, b_out, u, label):
    """NumPy float64: h_t = tanh(W h + V u_t + b), softmax CE at T; returns the states and
    the total derivatives dE/dh_t by hand-written BPTT."""
    h = np.zeros(W.shape[0])
    hs = []
    for u_t in u:
        h = np.tanh(W @ h + V @ u_t + b)
        hs.append(h)
    hs = np.asarray(hs)
    y = W_out @ hs[-1] + b_out
    p = np.exp(y - y.max())
    p /= p.sum()
    g = W_out.T @ (p - np.eye(len(p))[label])
    gs = [g]
    for k in range(len(u) - 1, 0, -1):
        g = W.T @ ((1 - hs[k] ** 2) * g)
        gs.append(g)
    return hs, np.asarray(gs[::-1])


@pytest.mark.slow
def test_elman_tanh_omega_is_pascanus_code(x64):
    """``elman_tanh`` Ω with ``squared=True`` against a NumPy transcription of the formula of
    Pascanu's RNN.py: mean over (step, sequence) of (‖(g ⊙ (1 − h²)) W‖² / ‖g‖² − 1)², and
    its gradient with g and h held fixed: W_rec only, 2(r − 1)(2/‖g‖²) v (Wᵀv)ᵀ."""
    task = T.get_task("temporal_order")
    model = seq.SequenceModel.for_task("elman_tanh", 6, task)
    params = model.init(KEY, recurrent_scale=1.2, dtype=jnp.float64)
    params = params._replace(b_out=0.3 * jnp.arange(4.0), cell=params.cell._replace(
        b=0.1 * jax.random.normal(jax.random.key(4), (6,), jnp.float64)))
    batch = task.sample(jax.random.key(1), 3, 12)
    W, V, b = (np.asarray(a) for a in params.cell)
    omega, grad = [], np.zeros_like(W)
    for i in range(3):
        hs, gs = _elman_reference(W, V, b, np.asarray(params.W_out), np.asarray(params.b_out),
                                  np.asarray(batch.inputs[i]), int(batch.targets[i]))
        v = gs * (1 - hs**2)
        pulled = v @ W  # rows: W^T v_k
        c = np.sum(gs**2, axis=1)
        r = np.sum(pulled**2, axis=1) / c
        omega.append(np.mean((r - 1) ** 2))
        grad += np.einsum("k,ki,kj->ij", 2 * (r - 1) * 2 / c, v, pulled) / len(r) / 3
    reg = seq.sequence_omega(model, task, squared=True)
    np.testing.assert_allclose(float(reg(params, batch)), np.mean(omega), rtol=1e-10)
    g = jax.grad(reg)(params, batch)
    np.testing.assert_allclose(np.asarray(g.cell.W_rec), grad, rtol=1e-8, atol=1e-14)
    for leaf in (g.cell.W_in, g.cell.b, g.W_out, g.b_out):
        assert float(jnp.max(jnp.abs(leaf))) == 0.0
    # Its value is the generic Ω of the step (the VJP of the step at h_k): only the
    # gradient differs, which would otherwise reach W_in and b through 1 − h_{k+1}².
    generic = [float(R.pascanu_omega(
        model.step, model.initial_state(jnp.float64), batch.inputs[i],
        lambda s, i=i: task.loss(model.outputs_from_states(params, s)[None],
                                 batch.targets[i : i + 1]),
        params=params.cell, reduction="mean", squared=True)) for i in range(3)]
    np.testing.assert_allclose(np.mean(generic), np.mean(omega), rtol=1e-10)


def test_smart_tanh_init():
    """Pascanu's smart tanh: 15 non-zero outgoing weights per unit, spectral radius 0.95,
    W_in and W_out N(0, 0.01²), zero biases."""
    task = T.get_task("temporal_order")
    model = seq.SequenceModel.for_task("elman_tanh", 50, task)
    p = model.init(KEY, scheme="smart_tanh", recurrent_scale=0.95)
    W = np.asarray(p.cell.W_rec, np.float64)
    np.testing.assert_array_equal(np.count_nonzero(W, axis=0), 15)
    np.testing.assert_allclose(np.max(np.abs(np.linalg.eigvals(W))), 0.95, rtol=1e-5)
    assert 0.008 < float(jnp.std(p.cell.W_in)) < 0.012
    assert 0.008 < float(jnp.std(p.W_out)) < 0.012
    assert float(jnp.abs(p.cell.b).max()) == 0.0 and float(jnp.abs(p.b_out).max()) == 0.0
    with pytest.raises(ValueError, match="`scheme` 'smart_tanh' is for the tanh RNNs"):
        seq.SequenceModel.for_task("lstm", 8, task).init(KEY, scheme="smart_tanh")
    with pytest.raises(ValueError, match="unknown `scheme` 'xavier'"):
        model.init(KEY, scheme="xavier")


def test_bad_inputs():
    W = jnp.eye(2)
    with pytest.raises(TypeError, match="`pullback` must be callable or None"):
        R.pascanu_omega(_linear, jnp.ones(2), jnp.zeros((3, 2)), _last_sum, params=W,
                        pullback=1.0)
    with pytest.raises(TypeError, match="`squared` must be a bool"):
        R.pascanu_omega(_linear, jnp.ones(2), jnp.zeros((3, 2)), _last_sum, params=W,
                        squared="yes")
    with pytest.raises(TypeError, match="`loss_fn` must be callable"):
        R.pascanu_omega(_linear, jnp.ones(2), jnp.zeros((3, 2)), None, params=W)
    with pytest.raises(ValueError, match="unknown `reduction` 'max'"):
        R.pascanu_omega(_linear, jnp.ones(2), jnp.zeros((3, 2)), _last_sum, params=W,
                        reduction="max")
    with pytest.raises(ValueError, match="`min_grad_norm` must be finite and >= 0"):
        R.pascanu_omega(_linear, jnp.ones(2), jnp.zeros((3, 2)), _last_sum, params=W,
                        min_grad_norm=-1.0)
    with pytest.raises(ValueError, match="`inputs` must have a leading time axis"):
        R.pascanu_omega(_linear, jnp.ones(2), jnp.asarray(1.0), _last_sum, params=W)
    with pytest.raises(ValueError, match="`step` failed on a state shaped like `x0`"):
        R.pascanu_omega(_linear, jnp.ones(3), jnp.zeros((3, 2)), _last_sum, params=W)
    with pytest.raises(ValueError, match="`x0` must be finite"):
        R.pascanu_omega(_linear, jnp.asarray([1.0, jnp.nan]), jnp.zeros((3, 2)), _last_sum,
                        params=W)


# ---------------------------------------------------------------- flossing regulariser


def _scaled_rotation(x, u, a):
    """``x ← a Q x + u``: every Lyapunov exponent is ``log|a|``."""
    n = x.shape[0]
    Q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(3), (n, n), x.dtype))
    return a * (Q @ x) + u


@pytest.mark.parametrize("a", [0.6, 1.0, 1.5])
def test_flossing_regularizer_closed_form(a, x64):
    """Ω = k (log a)², dΩ/da = 2 k log(a) / a, from a fixed stream or from the batch."""
    n, k = 4, 3
    stream = jnp.zeros((30, n))
    fixed = jaxgrad.train.flossing_regularizer(_scaled_rotation, jnp.ones(n), stream,
                                               num_exponents=k)
    from_batch = jaxgrad.train.flossing_regularizer(_scaled_rotation, jnp.ones(n),
                                                    lambda batch: batch["stream"], num_exponents=k,
                                                    step_params=lambda p: p["a"])
    a = jnp.asarray(a)
    np.testing.assert_allclose(float(fixed(a, None)), k * np.log(float(a)) ** 2, atol=1e-12)
    np.testing.assert_allclose(float(from_batch({"a": a}, {"stream": stream})),
                               k * np.log(float(a)) ** 2, atol=1e-12)
    grad = jax.grad(lambda p: from_batch({"a": p}, {"stream": stream}))(a)
    np.testing.assert_allclose(float(grad), 2 * k * np.log(float(a)) / float(a), atol=1e-9)
    jitted = jax.jit(fixed)(a, None)
    np.testing.assert_allclose(float(jitted), float(fixed(a, None)), rtol=1e-12)
    expected = jaxgrad.analysis.flossing_loss(_scaled_rotation, jnp.ones(n), stream, params=a,
                                              num_exponents=k)
    np.testing.assert_allclose(float(fixed(a, None)), float(expected), rtol=1e-12)


def _tanh_step(h, x, p):
    return jnp.tanh(p["W"] @ h + p["U"] @ x)


@pytest.mark.slow
def test_flossing_during_training_lowers_abs_lambda1():
    """fit(regularizer=flossing_regularizer) drives λ_1 of an ordered net towards 0."""
    n, k = 8, 2
    keys = jax.random.split(jax.random.key(4), 4)
    params = {"W": 0.6 / jnp.sqrt(n) * jax.random.normal(keys[0], (n, n)),
              "U": jax.random.normal(keys[1], (n, 1)), "w": jnp.zeros((n,))}

    def sample(key, t):
        return {"stream": jax.random.normal(key, (60, 1))}

    def loss_fn(p, batch):  # a readout loss that is indifferent to λ
        h = jax.lax.scan(lambda h, u: (_tanh_step(h, u, p), None), jnp.zeros((n,)),
                         batch["stream"])[0]
        return jnp.mean((h @ p["w"] - 1.0) ** 2)

    omega = jaxgrad.train.flossing_regularizer(_tanh_step, jnp.zeros((n,)),
                                               lambda batch: batch["stream"], num_exponents=k,
                                               transient=10)

    def lambda1(p):
        u = jax.random.normal(keys[2], (400, 1))
        return float(jaxgrad.lyapunov_spectrum(_tanh_step, jnp.zeros((n,)), u, params=p,
                                               num_exponents=1, transient=20).exponents[0])

    runs = {w: jaxgrad.fit(loss_fn, params, optax.adam(1e-2), sample, num_steps=60,
                             key=keys[3], regularizer=omega, regularizer_weight=w)
            for w in (0.0, 1.0)}
    before, plain, flossed = lambda1(params), lambda1(runs[0.0].params), lambda1(
        runs[1.0].params)
    assert before < -0.2  # an ordered network: gradients vanish like e^{λ_1 T}
    assert abs(flossed) < 0.3 * abs(before) and abs(flossed) < 0.3 * abs(plain)
    omega_trace = runs[1.0].metrics["regularizer"]
    assert omega_trace[-10:].mean() < 0.1 * omega_trace[:5].mean()


def test_flossing_regularizer_bad_inputs():
    with pytest.raises(TypeError, match="`step` must be callable"):
        jaxgrad.train.flossing_regularizer("rnn", jnp.ones(2), jnp.zeros((5, 2)))
    with pytest.raises(TypeError, match="`step_params` must be callable"):
        jaxgrad.train.flossing_regularizer(_scaled_rotation, jnp.ones(2), jnp.zeros((5, 2)),
                                           step_params="W")
    omega = jaxgrad.train.flossing_regularizer(_scaled_rotation, jnp.ones(2), jnp.zeros((5, 2)),
                                               num_exponents=3)
    with pytest.raises(ValueError, match="num_exponents"):
        omega(jnp.asarray(1.0), None)
    omega = jaxgrad.train.flossing_regularizer(_scaled_rotation, jnp.ones(2), jnp.zeros((5, 2)),
                                               transient=5)
    with pytest.raises(ValueError, match="transient"):
        omega(jnp.asarray(1.0), None)
