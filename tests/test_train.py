"""The optax training loop: exactness, determinism, resume, divergence, remedies, bad input."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgrad
from jaxgrad.train import (
    BatchSource,
    TrainingDiverged,
    combine_monitors,
    fit,
    fixed_batches,
    init_train_state,
    mlp_layer_monitor,
    param_grad_norms,
    sampled_batches,
    shuffled_batches,
    train_step,
    train_steps,
    train_until,
    with_clipping,
)

# A small least-squares problem: params (w, b), batches (x, y).
N_EX, DIM = 40, 3


def _data(seed=0):
    kx, kw = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (N_EX, DIM))
    w_true = jax.random.normal(kw, (DIM,))
    return x, x @ w_true + 0.5


def _lsq(params, batch):
    x, y = batch
    w, b = params
    return jnp.mean((x @ w + b - y) ** 2)


def _params():
    return (jnp.zeros((DIM,)), jnp.zeros(()))


@functools.cache
def _mlp_setup(depth=3, width=8):
    """Built once per shape, so the loop's compiled scans are reused across tests."""
    cfg = jaxgrad.MLPConfig(in_dim=5, width=width, depth=depth, out_dim=3,
                            activation="tanh", init="glorot")
    params = jaxgrad.init_mlp(jax.random.key(1), cfg)
    x = jax.random.normal(jax.random.key(2), (32, 5))
    y = jax.random.randint(jax.random.key(3), (32,), 0, 3)

    def loss_fn(p, batch):
        out, _ = jaxgrad.mlp_apply(p, batch[0], cfg)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, batch[1]))

    return cfg, params, (x, y), loss_fn


# ------------------------------------------------------------------ exactness


def test_full_batch_sgd_matches_closed_form_update():
    """Full-batch SGD on least squares equals θ ← θ - η ∇L with ∇L written by hand."""
    x, y = _data()
    batches = fixed_batches(jax.tree_util.tree_map(lambda a: a[None], (x, y)))
    lr, steps = 0.1, 7
    res = fit(_lsq, _params(), optax.sgd(lr), batches, num_steps=steps,
                key=jax.random.key(0), steps_per_scan=3)
    w, b = np.zeros(DIM), 0.0
    xn, yn = np.asarray(x, np.float64), np.asarray(y, np.float64)
    losses = []
    for _ in range(steps):
        r = xn @ w + b - yn
        losses.append(np.mean(r**2))
        w, b = w - lr * 2 * xn.T @ r / N_EX, b - lr * 2 * np.mean(r)
    np.testing.assert_allclose(res.params[0], w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(res.params[1], b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(res.metrics["loss"], losses, rtol=1e-4)
    assert res.step == steps
    assert res.metrics["finite"].all()
    np.testing.assert_array_equal(res.metrics["regularizer"], 0.0)
    np.testing.assert_array_equal(res.metrics["objective"], res.metrics["loss"])


def _optax_loop(loss_fn, opt, params, batches):
    """A plain optax loop written out here, the reference ``train_steps`` must equal."""
    state = opt.init(params)
    losses = []
    for batch in batches:
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        with jax.numpy_dtype_promotion("standard"):  # Adam's integer step count
            updates, state = opt.update(grads, state, params)
            params = optax.apply_updates(params, updates)
        losses.append(loss)
    return params, np.asarray(losses)


def _sampler(key, t):
    """A synthetic least-squares batch drawn from the step key."""
    x = jax.random.normal(key, (8, DIM))
    return x, x @ jnp.arange(1.0, DIM + 1.0) + 0.5


def test_train_steps_under_jit_and_vmap_equals_a_hand_written_optax_loop():
    """``train_steps`` jitted and vmapped over 3 seeds equals an eager optax loop per seed
    on the batches ``sample(fold_in(key, t), t)``."""
    opt, steps = optax.adam(0.05), 12
    keys = jax.random.split(jax.random.key(7), 3)

    def run(key):
        return train_steps(_lsq, opt, init_train_state(_params(), opt), _sampler,
                           num_steps=steps, key=key)

    state, metrics = jax.jit(jax.vmap(run))(keys)
    assert metrics.loss.shape == (3, steps) and metrics.finite.all()
    np.testing.assert_array_equal(state.step, steps)
    for i, key in enumerate(keys):
        batches = [_sampler(jax.random.fold_in(key, t), t) for t in range(steps)]
        params, losses = _optax_loop(_lsq, opt, _params(), batches)
        np.testing.assert_allclose(metrics.loss[i], losses, rtol=1e-5)
        for a, b in zip(jax.tree_util.tree_leaves(params),
                        jax.tree_util.tree_leaves(state.params), strict=True):
            np.testing.assert_allclose(b[i], a, rtol=1e-5, atol=1e-6)
    # Seeds differ, so the vmapped runs are not one run repeated.
    assert not np.allclose(metrics.loss[0], metrics.loss[1])


def test_fit_equals_train_steps_on_the_same_batches():
    """``fit`` (several scans, host driver) ends where one ``train_steps`` call does, and a
    ``train_steps`` run split in two calls (continuing from ``state.step``) too."""
    opt, key = optax.adam(0.05), jax.random.key(3)
    source = shuffled_batches(_data(), 8)
    res = fit(_lsq, _params(), opt, source, num_steps=10, key=key, steps_per_scan=5)
    state, metrics = train_steps(_lsq, opt, init_train_state(_params(), opt), source,
                                 num_steps=10, key=key)
    five = jax.jit(lambda s: train_steps(_lsq, opt, s, source, num_steps=5, key=key))
    half, m1 = five(init_train_state(_params(), opt))
    half, m2 = five(half)
    for a, b, c in zip(jax.tree_util.tree_leaves(res.params),
                       jax.tree_util.tree_leaves(state.params),
                       jax.tree_util.tree_leaves(half.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(c, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(res.metrics["loss"], metrics.loss, rtol=1e-6)
    np.testing.assert_allclose(np.concatenate([m1.loss, m2.loss]), metrics.loss, rtol=1e-6)
    assert res.step == 10 and int(state.step) == 10


def test_train_steps_stops_applying_after_a_non_finite_step():
    """A NaN batch at step 3: steps 0-2 are applied, none after, ``finite`` says so."""
    def sample(key, t):
        return jnp.where(t == 3, jnp.nan, 1.0)

    def loss_fn(p, b):
        return jnp.sum((p - b) ** 2)

    opt = optax.sgd(0.1)
    state, m = jax.jit(lambda s: train_steps(loss_fn, opt, s, sample, num_steps=6,
                                             key=jax.random.key(0)))(
        init_train_state(jnp.zeros(2), opt))
    np.testing.assert_array_equal(m.finite, [True, True, True, False, False, False])
    ref, _ = _optax_loop(loss_fn, opt, jnp.zeros(2), [jnp.ones(())] * 3)
    np.testing.assert_allclose(state.params, ref, rtol=1e-6)
    assert int(state.step) == 6


def test_train_until_stops_each_vmapped_member_on_its_own():
    """Under vmap every start stops at the first iteration whose objective is below the
    threshold (that update not applied), exactly as a hand-written optax loop does."""
    opt = optax.adam(0.05)
    target = jnp.array([0.3, -1.2])

    def loss_fn(p, _):
        return 0.5 * jnp.sum((p - target) ** 2)

    starts = jax.random.normal(jax.random.key(3), (6, 2)) * jnp.logspace(-3, 1, 6)[:, None]
    starts = starts + target[None, :]
    run = jax.jit(jax.vmap(lambda p: train_until(loss_fn, opt, init_train_state(p, opt),
                                                  stop=lambda v: v < 1e-6, max_steps=400)))
    state, m, its = run(starts)
    value_and_grad = jax.jit(jax.value_and_grad(loss_fn))

    @jax.jit
    def update(g, s, p):
        with jax.numpy_dtype_promotion("standard"):  # optax's int32 count (Adam)
            upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s

    for k in range(len(starts)):
        p, s, n = starts[k], opt.init(starts[k]), 0
        while n < 400:
            n += 1
            value, g = value_and_grad(p, None)
            if value < 1e-6:
                break
            p, s = update(g, s, p)
        assert int(its[k]) == n
        np.testing.assert_allclose(state.params[k], p, rtol=1e-6, atol=1e-7)
        assert (float(m.objective[k]) < 1e-6) == (n < 400 or float(loss_fn(p, None)) < 1e-6)
    assert len(set(int(i) for i in its)) > 2  # the members really stopped apart


def test_train_until_stops_at_a_non_finite_step_and_names_bad_arguments():
    opt = optax.sgd(0.1)
    loss_fn = lambda p, _: jnp.sum(jnp.where(p > 4.0, jnp.nan, -p))  # noqa: E731
    state, m, its = train_until(loss_fn, opt, init_train_state(jnp.zeros(1), opt),
                                stop=lambda v: v < -100.0, max_steps=1000)
    assert not bool(m.finite) and int(its) == 42 and float(state.params[0]) == pytest.approx(4.1)
    with pytest.raises(ValueError, match="max_steps"):
        train_until(loss_fn, opt, init_train_state(jnp.zeros(1), opt), stop=lambda v: v < 0,
                    max_steps=0)
    with pytest.raises(TypeError, match="stop"):
        train_until(loss_fn, opt, init_train_state(jnp.zeros(1), opt), stop=0.1, max_steps=5)


def test_fixed_batches_need_no_key_and_the_subpackage_is_importable():
    """``jaxgrad.train`` is the subpackage (its modules import by path); the driver is
    ``jaxgrad.fit``; ``fixed_batches`` run under ``train_steps`` without a key."""
    import importlib
    import types

    assert isinstance(jaxgrad.train, types.ModuleType)
    loop = importlib.import_module("jaxgrad.train.loop")
    tasks = importlib.import_module("jaxgrad.train.tasks")
    from jaxgrad.train import loop as loop2
    assert loop is loop2 and jaxgrad.train.loop is loop and jaxgrad.train.tasks is tasks
    assert jaxgrad.fit is loop.fit is jaxgrad.train.fit
    assert jaxgrad.train_steps is loop.train_steps is jaxgrad.train.train_steps
    opt = optax.sgd(0.1)
    state, m = train_steps(_lsq, opt, init_train_state(_params(), opt),
                           fixed_batches(jax.tree_util.tree_map(lambda a: a[None], _data())),
                           num_steps=2)
    assert m.loss.shape == (2,) and bool(m.finite.all())


@pytest.mark.parametrize("scale", [7e-31, 1.0, 1e30])
def test_layer_monitors_at_extreme_gradient_scales_against_float64(scale):
    """Entries of 7e-31 (squares below float32's range) and 1e30 (squares above it): the
    monitors used to report 0 and inf; a zero gradient gives 0 and log-norm -inf."""
    cfg = jaxgrad.MLPConfig(in_dim=3, width=4, depth=3, out_dim=2)
    grads = jax.tree_util.tree_map(
        lambda a: scale * jax.random.normal(jax.random.key(a.size), a.shape),
        jaxgrad.init_mlp(jax.random.key(0), cfg))
    grads = grads._replace(first=grads.first._replace(b=jnp.zeros_like(grads.first.b)))
    m = jax.jit(combine_monitors(mlp_layer_monitor, param_grad_norms))(None, None, grads)
    g64 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), grads)
    W = [np.linalg.norm(g64.first.W)] + [np.linalg.norm(w) for w in g64.hidden.W]
    b = [0.0] + [np.linalg.norm(v) for v in g64.hidden.b]
    np.testing.assert_allclose(m["layer_weight_grad_norms"], W, rtol=1e-6)
    np.testing.assert_allclose(m["log_layer_weight_grad_norms"], np.log(W), rtol=1e-6)
    np.testing.assert_allclose(m["layer_bias_grad_norms"], b, rtol=1e-6)
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(m["log_layer_bias_grad_norms"], np.log(b), rtol=1e-6)
    assert m["log_layer_bias_grad_norms"][0] == -np.inf
    readout = np.linalg.norm(g64.readout.W)
    assert float(m["grad_norm.readout.W"]) == pytest.approx(readout, rel=1e-6)
    assert float(m["log_grad_norm.readout.W"]) == pytest.approx(np.log(readout), rel=1e-6)
    assert float(m["grad_norm.first.b"]) == 0 and m["log_grad_norm.first.b"] == -np.inf


@pytest.mark.slow
def test_scanned_loop_matches_python_loop_of_train_step():
    cfg, params, batch, loss_fn = _mlp_setup()
    opt = optax.adam(1e-2)
    res = fit(loss_fn, params, opt, fixed_batches(jax.tree_util.tree_map(
        lambda a: a[None], batch)), num_steps=6, key=jax.random.key(0), steps_per_scan=4,
        monitor=mlp_layer_monitor)
    step = jax.jit(functools.partial(train_step, loss_fn, opt, monitor=mlp_layer_monitor))
    state = init_train_state(params, opt)
    norms = []
    for _ in range(6):
        state, m = step(state, batch)
        norms.append(m.grad_norm)
    for a, b in zip(jax.tree_util.tree_leaves(res.params),
                    jax.tree_util.tree_leaves(state.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.metrics["grad_norm"], norms, rtol=1e-5)
    assert int(state.step) == 6


@pytest.mark.slow
def test_grad_norm_and_monitors_match_the_analyzers():
    cfg, params, batch, loss_fn = _mlp_setup()
    opt = optax.sgd(0.0)  # lr 0: the parameters stay, so every step sees the same gradient
    mon = combine_monitors(mlp_layer_monitor, param_grad_norms)
    res = fit(loss_fn, params, opt, fixed_batches(jax.tree_util.tree_map(
        lambda a: a[None], batch)), num_steps=2, key=jax.random.key(0), monitor=mon)
    grads = jax.grad(loss_fn)(params, batch)
    np.testing.assert_allclose(res.metrics["grad_norm"][0], optax.tree.norm(grads), rtol=1e-5)
    flow = jaxgrad.mlp_gradient_flow(params, batch[0], batch[1], cfg)
    assert res.metrics["layer_weight_grad_norms"].shape == (2, cfg.depth)
    np.testing.assert_allclose(res.metrics["layer_weight_grad_norms"][1],
                               flow.weight_grad_norms, rtol=1e-5)
    np.testing.assert_allclose(res.metrics["layer_bias_grad_norms"][0],
                               flow.bias_grad_norms, rtol=1e-5)
    leaf = res.metrics["grad_norm.readout.W"][0]
    np.testing.assert_allclose(leaf, jnp.linalg.norm(grads.readout.W), rtol=1e-5)


def test_regularizer_value_recorded_and_in_the_gradient():
    x, y = _data()
    batches = fixed_batches(jax.tree_util.tree_map(lambda a: a[None], (x, y)))
    lam, lr = 0.3, 0.05

    def omega(params, batch):
        return jnp.sum(params[0] ** 2)

    res = fit(_lsq, _params(), optax.sgd(lr), batches, num_steps=3, key=jax.random.key(0),
                regularizer=omega, regularizer_weight=lam)
    state = (jnp.zeros((DIM,)), jnp.zeros(()))
    for t in range(3):
        total = lambda p: _lsq(p, (x, y)) + lam * omega(p, None)  # noqa: E731
        np.testing.assert_allclose(res.metrics["regularizer"][t], omega(state, None), rtol=1e-5)
        np.testing.assert_allclose(res.metrics["objective"][t], total(state), rtol=1e-5)
        g = jax.grad(total)(state)
        state = jax.tree_util.tree_map(lambda p, gi: p - lr * gi, state, g)
    np.testing.assert_allclose(res.params[0], state[0], rtol=1e-5)
    assert res.metrics["regularizer"][-1] > 0


# ------------------------------------------------------------------ determinism and resume


ADAM = optax.adam(1e-2)


@functools.cache
def _shuffled(width=8):
    return shuffled_batches(_mlp_setup(width=width)[2], 8)


def _digits_like_run(tmp=None, num_steps=12, key=0, **kw):
    cfg, params, batch, loss_fn = _mlp_setup()
    return fit(loss_fn, params, ADAM, _shuffled(),
                 num_steps=num_steps, key=jax.random.key(key), steps_per_scan=3,
                 monitor=mlp_layer_monitor, checkpoint_dir=tmp, config={"lr": 1e-2}, **kw)


def test_same_seed_identical_different_seed_differs():
    a, b, c = _digits_like_run(), _digits_like_run(), _digits_like_run(key=1)
    for la, lb in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params),
                      strict=True):
        np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(a.metrics["loss"], b.metrics["loss"])
    assert not np.array_equal(a.metrics["loss"], c.metrics["loss"])


def test_interrupted_run_resumes_bit_identically(tmp_path):
    full = _digits_like_run(num_steps=12)
    first = _digits_like_run(tmp_path, num_steps=6)  # "interrupted" after 6 steps
    assert first.step == 6 and first.checkpoint_path.exists()
    resumed = _digits_like_run(tmp_path, num_steps=12)
    assert resumed.step == 12
    for la, lb in zip(jax.tree_util.tree_leaves((full.params, full.opt_state)),
                      jax.tree_util.tree_leaves((resumed.params, resumed.opt_state)),
                      strict=True):
        np.testing.assert_array_equal(la, lb)
    for name, value in full.metrics.items():
        np.testing.assert_array_equal(resumed.metrics[name], value, err_msg=name)
    # A finished run loads and returns at once with the same result.
    again = _digits_like_run(tmp_path, num_steps=12)
    np.testing.assert_array_equal(again.metrics["loss"], full.metrics["loss"])


def test_checkpoint_every_writes_intermediate_checkpoints(tmp_path):
    calls = []

    def sample(key, t):
        return jnp.ones(())

    def loss_fn(p, batch):
        return jnp.sum((p - batch) ** 2)

    res = fit(loss_fn, jnp.zeros(2), optax.sgd(0.1), sample, num_steps=10,
                key=jax.random.key(0), steps_per_scan=2, checkpoint_dir=tmp_path,
                checkpoint_every=4)
    calls.append(res.step)
    from jaxgrad.train import checkpoint_fingerprint, load_checkpoint
    state = init_train_state(jnp.zeros(2), optax.sgd(0.1))
    components = {"loss_fn": loss_fn, "optimizer": optax.sgd(0.1),
                  "batches": sampled_batches(sample), "regularizer": None,
                  "regularizer_weight": 1.0, "monitor": None}
    fp = checkpoint_fingerprint(state, jax.random.key(0), None, components=components)
    loaded, metrics = load_checkpoint(res.checkpoint_path, state, fp)
    assert int(loaded.step) == 10 and metrics["loss"].shape == (10,)
    np.testing.assert_array_equal(loaded.params, res.params)


def test_no_recompilation_across_scans():
    traces = []

    def loss_fn(p, batch):
        traces.append(1)
        return jnp.sum((p - batch) ** 2)

    fit(loss_fn, jnp.zeros(2), optax.sgd(0.1), lambda k, t: jnp.ones(()), num_steps=12,
          key=jax.random.key(0), steps_per_scan=3)
    n_full = len(traces)
    traces.clear()
    fit(loss_fn, jnp.zeros(2), optax.sgd(0.1), lambda k, t: jnp.ones(()), num_steps=3,
          key=jax.random.key(0), steps_per_scan=3)
    # Four scans of one length trace the step as often as a single scan does.
    assert n_full == len(traces) >= 1


# ------------------------------------------------------------------ divergence


def _diverging_setup():
    # The batch of step 7 is -1, and log(-1) is NaN.
    values = jnp.where(jnp.arange(10) == 7, -1.0, 1.0)

    def loss_fn(p, batch):
        return jnp.sum(p**2) + jnp.log(batch)

    return loss_fn, fixed_batches(values)


def test_non_finite_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    loss_fn, batches = _diverging_setup()
    p0 = jnp.ones(2)
    with pytest.raises(TrainingDiverged, match="step 7") as info:
        fit(loss_fn, p0, optax.sgd(0.1), batches, num_steps=10, key=jax.random.key(0),
              steps_per_scan=5, checkpoint_dir=tmp_path)
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert err.step == 7
    assert err.checkpoint_path is not None and "last good checkpoint" in str(err)
    # The state before step 7 (seven SGD steps on |p|², p ← 0.8 p) is finite and returned.
    np.testing.assert_allclose(err.state.params, 0.8**7 * np.ones(2), rtol=1e-5)
    assert int(err.state.step) == 7
    assert err.metrics["loss"].shape == (8,) and not err.metrics["finite"][-1]
    # The checkpoint on disk is the one of step 5, untouched by the failure.
    with np.load(err.checkpoint_path) as data:
        assert int(data["step"]) == 5
        np.testing.assert_allclose(data["leaf_00000"], 0.8**5 * np.ones(2), rtol=1e-5)


def test_divergence_without_checkpoint_dir():
    loss_fn, batches = _diverging_setup()
    with pytest.raises(TrainingDiverged, match="step 7") as info:
        fit(loss_fn, jnp.ones(2), optax.sgd(0.1), batches, num_steps=10,
              key=jax.random.key(0), steps_per_scan=10)
    assert info.value.checkpoint_path is None
    assert np.isfinite(np.asarray(info.value.state.params)).all()


def test_train_step_skips_non_finite_update():
    loss_fn, _ = _diverging_setup()
    opt = optax.sgd(0.1)
    state = init_train_state(jnp.ones(2), opt)
    new, m = train_step(loss_fn, opt, state, jnp.asarray(-1.0))
    assert not bool(m.finite)
    np.testing.assert_array_equal(new.params, state.params)
    assert int(new.step) == 1


def test_step_to_overflowing_parameters_is_not_applied_and_aux_is_returned():
    """A finite loss and gradient whose SGD step overflows float32 (3e38 + 1e38 · 0.5) is
    not applied: ``fit`` used to apply it and stop one step later holding inf parameters
    as its "last good" state. ``has_aux`` returns the loss's aux output per step."""
    def loss_fn(p, b):
        return -0.5 * jnp.sum(p), p

    opt = optax.sgd(1e38)
    state = init_train_state(jnp.full(1, 3e38), opt)
    new, m = train_step(loss_fn, opt, state, None, has_aux=True)
    assert bool(jnp.isfinite(m.loss)) and float(m.grad_norm) > 0 and not bool(m.finite)
    np.testing.assert_array_equal(new.params, state.params)
    np.testing.assert_array_equal(m.aux, state.params)
    with pytest.raises(TrainingDiverged) as info:
        fit(lambda p, b: loss_fn(p, b)[0], jnp.full(1, 3e38), opt, None, num_steps=3,
            key=jax.random.key(0))
    assert info.value.step == 0
    assert bool(jnp.all(jnp.isfinite(info.value.state.params)))
    with pytest.raises(TypeError, match="has_aux"):
        train_step(lambda p, b: jnp.sum(p), opt, state, None, has_aux=True)


# ------------------------------------------------------------------ remedies


def test_norm_clipping_bounds_the_update():
    x, y = _data()
    big = (x, 100.0 * y)
    opt = with_clipping(optax.sgd(1.0), max_norm=0.5)
    state = init_train_state(_params(), opt)
    new, m = train_step(_lsq, opt, state, big)
    assert float(m.grad_norm) > 0.5  # the raw gradient is recorded, before clipping
    step = optax.tree.norm(jax.tree_util.tree_map(jnp.subtract, new.params, state.params))
    np.testing.assert_allclose(step, 0.5, rtol=1e-5)


def test_value_clipping_bounds_each_component():
    x, y = _data()
    opt = with_clipping(optax.sgd(1.0), max_value=0.01)
    state = init_train_state(_params(), opt)
    new, _ = train_step(_lsq, opt, state, (x, 100.0 * y))
    delta = np.concatenate([np.ravel(a - b) for a, b in zip(new.params, state.params,
                                                             strict=True)])
    np.testing.assert_allclose(np.abs(delta), 0.01, rtol=1e-5)
    assert with_clipping(optax.sgd(1.0)) is not None


def test_rprop_trains_through_the_loop():
    x, y = _data()
    batches = fixed_batches(jax.tree_util.tree_map(lambda a: a[None], (x, y)))
    res = fit(_lsq, _params(), optax.rprop(1e-2), batches, num_steps=60,
                key=jax.random.key(0), steps_per_scan=20)
    assert res.metrics["loss"][-1] < 1e-2 * res.metrics["loss"][0]


def test_sampled_batches_get_distinct_step_keys():
    seen = fit(lambda p, b: jnp.sum((p - b) ** 2), jnp.zeros(()), optax.sgd(0.0),
                 sampled_batches(lambda k, t: jax.random.normal(k, ())), num_steps=4,
                 key=jax.random.key(0), steps_per_scan=4)
    losses = seen.metrics["loss"]
    assert len(np.unique(losses)) == 4
    expect = [jax.random.normal(jax.random.fold_in(jax.random.key(0), t), ()) ** 2
              for t in range(4)]
    np.testing.assert_allclose(losses, expect, rtol=1e-6)


def test_shuffled_batches_cover_each_epoch_once():
    ids = jnp.arange(12.0)
    src = shuffled_batches(ids, 4)
    data = (jax.random.key(0), src.data.arrays)
    epoch = [src.sample(data, None, jnp.asarray(t)) for t in range(3)]
    np.testing.assert_array_equal(np.sort(np.concatenate(epoch)), np.arange(12.0))
    nxt = np.concatenate([src.sample(data, None, jnp.asarray(t)) for t in range(3, 6)])
    assert not np.array_equal(np.concatenate(epoch), nxt)  # a new permutation


# ------------------------------------------------------------------ bad input


def test_checkpoint_of_another_configuration_is_refused(tmp_path):
    _digits_like_run(tmp_path, num_steps=3)
    cfg, params, batch, loss_fn = _mlp_setup()
    with pytest.raises(ValueError, match="another configuration.*config"):
        fit(loss_fn, params, ADAM, _shuffled(), num_steps=6,
              key=jax.random.key(0), steps_per_scan=3, checkpoint_dir=tmp_path,
              config={"lr": 0.5})
    cfg2, params2, batch2, loss_fn2 = _mlp_setup(width=16)
    with pytest.raises(ValueError, match="another configuration.*leaves"):
        fit(loss_fn2, params2, ADAM, _shuffled(16), num_steps=6,
              key=jax.random.key(0), steps_per_scan=3, checkpoint_dir=tmp_path,
              config={"lr": 1e-2})
    with pytest.raises(ValueError, match="another configuration.*key"):
        _digits_like_run(tmp_path, num_steps=6, key=5)
    (tmp_path / "checkpoint.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable jaxgrad checkpoint"):
        _digits_like_run(tmp_path, num_steps=6)


def test_checkpoint_past_num_steps_is_refused(tmp_path):
    _digits_like_run(tmp_path, num_steps=6)
    with pytest.raises(ValueError, match="past `num_steps`=3"):
        _digits_like_run(tmp_path, num_steps=3)


# A run the checkpoint tests change one piece of at a time (no `config=`: the run itself
# must be recognised).
_LSQ_ADAM = optax.adam(1e-2)  # one object, so the compiled scans are reused across tests


def _lsq_run(tmp, loss_fn=_lsq, optimizer=_LSQ_ADAM, num_steps=4, **kw):
    return fit(loss_fn, _params(), optimizer, fixed_batches(_data()), num_steps=num_steps,
                 key=jax.random.key(0), steps_per_scan=2, checkpoint_dir=tmp, **kw)


def _scaled_lsq(scale):
    def loss(params, batch):
        return scale * _lsq(params, batch)

    return loss


def _lsq_times(params, batch, scale=1.0):
    return scale * _lsq(params, batch)


_TWICE = lambda p, b: 2.0 * _lsq(p, b)  # noqa: E731


@pytest.mark.parametrize(
    ("before", "after", "match"),
    [
        ({"optimizer": optax.adam(1e-2)}, {"optimizer": optax.adam(1e-3)}, "`optimizer`"),
        ({"optimizer": optax.adam(1e-3)}, {"optimizer": optax.adam(1e-2)}, "`optimizer`"),
        ({"optimizer": optax.adam(1e-2)}, {"optimizer": optax.adam(1e-2, b1=0.8)}, "`optimizer`"),
        ({"optimizer": optax.adam(1e-2)}, {"optimizer": optax.sgd(1e-2)}, "structure"),
        ({"optimizer": optax.sgd(1e-2)}, {"optimizer": optax.sgd(1e-2, momentum=0.0)},
         "`optimizer`"),
        ({"loss_fn": _TWICE}, {"loss_fn": lambda p, b: 3.0 * _lsq(p, b)}, "`loss_fn`"),
        ({"loss_fn": _scaled_lsq(2.0)}, {"loss_fn": _scaled_lsq(3.0)}, "`loss_fn`"),
        ({"loss_fn": functools.partial(_lsq_times, scale=2.0)},
         {"loss_fn": functools.partial(_lsq_times, scale=3.0)}, "`loss_fn`"),
        ({"loss_fn": _lsq_times}, {"loss_fn": functools.partial(_lsq_times, scale=1.5)},
         "`loss_fn`"),
        ({}, {"regularizer": lambda p, b: jnp.sum(p[0] ** 2)}, "`regularizer`"),
        ({}, {"monitor": param_grad_norms}, "`monitor`"),
    ],
    ids=["adam-lr-down", "adam-lr-up", "adam-b1", "adam-to-sgd", "sgd-momentum",
         "lambda-constant", "closure-value", "partial-keyword", "partial-added", "regularizer",
         "monitor"],
)
def test_resuming_a_changed_run_is_refused(tmp_path, before, after, match):
    _lsq_run(tmp_path, num_steps=2, **before)
    with pytest.raises(ValueError, match=f"written for another configuration.*{match}"):
        _lsq_run(tmp_path, **after)


def test_resuming_after_a_changed_global_or_regularizer_weight_is_refused(tmp_path):
    code = (lambda p, b: SCALE * _lsq(p, b)).__code__  # noqa: F821
    scaled = lambda scale: __import__("types").FunctionType(  # noqa: E731
        code, {"SCALE": scale, "_lsq": _lsq})
    _lsq_run(tmp_path / "a", loss_fn=scaled(2.0), num_steps=2)
    _lsq_run(tmp_path / "a", loss_fn=scaled(2.0), num_steps=4)  # the same run resumes
    with pytest.raises(ValueError, match="`loss_fn` differs"):
        _lsq_run(tmp_path / "a", loss_fn=scaled(3.0), num_steps=6)
    reg = lambda p, b: jnp.sum(p[0] ** 2)  # noqa: E731
    _lsq_run(tmp_path / "b", regularizer=reg, regularizer_weight=0.5, num_steps=2)
    with pytest.raises(ValueError, match="`regularizer_weight` differs"):
        _lsq_run(tmp_path / "b", regularizer=reg, regularizer_weight=0.25)


def test_identical_rerun_without_config_resumes_bit_identically(tmp_path):
    full = _lsq_run(None, loss_fn=_scaled_lsq(2.0), num_steps=6)
    _lsq_run(tmp_path, loss_fn=_scaled_lsq(2.0), num_steps=2)
    # New but identical objects (a fresh closure and optimiser) are the same run.
    resumed = _lsq_run(tmp_path, loss_fn=_scaled_lsq(2.0), optimizer=optax.adam(1e-2),
                       num_steps=6)
    for a, b in zip(jax.tree_util.tree_leaves((full.params, full.opt_state)),
                    jax.tree_util.tree_leaves((resumed.params, resumed.opt_state)), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(full.metrics["loss"], resumed.metrics["loss"])


def test_unidentifiable_run_resumes_only_with_config(tmp_path):
    import threading

    lock = threading.Lock()

    def loss(params, batch):
        assert lock is not None  # an object known only by its type
        return _lsq(params, batch)

    with pytest.warns(UserWarning, match="known only by their type"):
        _lsq_run(tmp_path / "a", loss_fn=loss, num_steps=2)
    with pytest.raises(ValueError, match="cannot be resumed safely.*lock.*pass `config=`"):
        with pytest.warns(UserWarning):
            _lsq_run(tmp_path / "a", loss_fn=loss)
    _lsq_run(tmp_path / "b", loss_fn=loss, num_steps=2, config={"run": 1})
    assert _lsq_run(tmp_path / "b", loss_fn=loss, config={"run": 1}).step == 4


def _run_fingerprint(**components):
    from jaxgrad.train import checkpoint_fingerprint

    state = init_train_state(_params(), _LSQ_ADAM)
    return checkpoint_fingerprint(state, jax.random.key(0), components=components)


def test_fingerprint_reads_main_code_and_refuses_hidden_state(monkeypatch):
    """A notebook's or script's functions (module ``__main__``, whose file may be an
    installed launcher such as pytest's or ipykernel's) count by their code, not by name;
    an object whose state is not visible in Python (``random.Random``) is unidentified."""
    import random
    import sys
    import types

    launcher = types.ModuleType("__main__")
    launcher.__file__ = optax.__file__  # an installed file
    monkeypatch.setitem(sys.modules, "__main__", launcher)
    code = (lambda p, b: SCALE * _lsq(p, b)).__code__  # noqa: F821
    run = {scale: _run_fingerprint(loss_fn=types.FunctionType(
        code, {"__name__": "__main__", "SCALE": scale, "_lsq": _lsq})) for scale in (2.0, 3.0)}
    assert run[2.0]["run"]["loss_fn"] != run[3.0]["run"]["loss_fn"]
    assert not run[2.0]["unidentified"]

    def sampler(seed):
        rng = random.Random(seed)
        return lambda p, b: rng.random() * _lsq(p, b)

    fp = _run_fingerprint(loss_fn=sampler(0))
    assert fp["unidentified"] == ["`loss_fn` closure cell 'rng' is a random.Random"]
    assert _run_fingerprint(loss_fn=sampler(1))["unidentified"] == fp["unidentified"]


@pytest.mark.parametrize(
    "damage",
    [lambda b: b[: len(b) // 2], lambda b: b[:30], lambda b: b"", lambda b: b"not a checkpoint",
     lambda b: b[:-40], lambda b: b[:200] + bytes(len(b) - 200),
     lambda b: b[: len(b) // 2] + bytes([b[len(b) // 2] ^ 0xFF]) + b[len(b) // 2 + 1:]],
    ids=["half", "header", "empty", "text", "tail", "zeroed", "flipped-byte"],
)
def test_damaged_checkpoint_is_a_value_error_naming_the_file(tmp_path, damage):
    _lsq_run(tmp_path, num_steps=2)
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=f"checkpoint {path} is not a readable"):
        _lsq_run(tmp_path)


def test_stored_leaf_of_another_shape_is_named(tmp_path):
    _lsq_run(tmp_path, num_steps=2)
    path = tmp_path / "checkpoint.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["leaf_00000"] = np.zeros(DIM + 1, np.float32)  # params[0], the weights
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"leaf `params\[0\]` has shape \(4,\)"):
        _lsq_run(tmp_path)
    arrays["leaf_00000"] = np.zeros(DIM, np.int32)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"leaf `params\[0\]` .*dtype int32"):
        _lsq_run(tmp_path)


def test_batch_of_the_wrong_shape_is_named():
    cfg, params, (x, y), loss_fn = _mlp_setup()
    with pytest.raises(ValueError, match="`x` must have shape"):
        fit(loss_fn, params, optax.sgd(0.1), shuffled_batches((x[:, :4], y), 8),
              num_steps=2, key=jax.random.key(0))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_steps": 0}, ValueError, "`num_steps` must be >= 1"),
        ({"num_steps": 2.5}, TypeError, "`num_steps` must be an integer"),
        ({"steps_per_scan": 0}, ValueError, "`steps_per_scan`"),
        ({"steps_per_scan": 4, "checkpoint_every": 6}, ValueError, "multiple of"),
        ({"key": 0}, TypeError, "`key` must be a PRNG key"),
        ({"key": jax.random.split(jax.random.key(0))}, TypeError, "single PRNG key"),
        ({"regularizer": 3.0}, TypeError, "`regularizer` must be callable"),
        ({"regularizer_weight": -1.0}, ValueError, "`regularizer_weight`"),
        ({"monitor": "norms"}, TypeError, "`monitor` must be callable"),
        ({"monitor": lambda p, b, g: {"loss": jnp.zeros(())}}, ValueError, "clash"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = {"num_steps": 4, "key": jax.random.key(0)} | kwargs
    with pytest.raises(error, match=match):
        fit(_lsq, _params(), optax.sgd(0.1), fixed_batches(_data()), **args)


def test_bad_components():
    with pytest.raises(TypeError, match="`loss_fn` must be callable"):
        fit(None, _params(), optax.sgd(0.1), fixed_batches(_data()), num_steps=1,
              key=jax.random.key(0))
    with pytest.raises(TypeError, match="`optimizer` must be an optax"):
        fit(_lsq, _params(), "adam", fixed_batches(_data()), num_steps=1,
              key=jax.random.key(0))
    with pytest.raises(TypeError, match="`batches` must be a BatchSource"):
        fit(_lsq, _params(), optax.sgd(0.1), _data(), num_steps=1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="`loss_fn` must return a scalar"):
        fit(lambda p, b: p[0], _params(), optax.sgd(0.1), fixed_batches(_data()),
              num_steps=1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="`batch_size` must be <="):
        shuffled_batches(_data(), 1000)
    with pytest.raises(ValueError, match="disagree on the example axis length"):
        shuffled_batches((jnp.zeros(3), jnp.zeros(4)), 2)
    with pytest.raises(ValueError, match="leading batch-index axis"):
        fixed_batches(jnp.zeros(()))
    with pytest.raises(TypeError, match="`sample` must be callable"):
        sampled_batches(3)
    with pytest.raises(TypeError, match="`optimizer`"):
        with_clipping(None, max_norm=1.0)
    with pytest.raises(ValueError, match="`max_norm`"):
        with_clipping(optax.sgd(0.1), max_norm=0.0)
    with pytest.raises(ValueError, match="`max_value`"):
        with_clipping(optax.sgd(0.1), max_value=-1.0)
    assert isinstance(fixed_batches(_data()), BatchSource)


# ------------------------------------------------------------------ recurrent models


@pytest.mark.slow
def test_lstm_training_with_per_timestep_gradient_monitor():
    """An LSTM step function trains in the loop; ‖∂L/∂x_t‖ per timestep is a scan output."""
    n, T, B = 4, 6, 8
    lstm = jaxgrad.init_lstm(jax.random.key(0), n, 1)
    params = (lstm, 0.5 * jnp.ones((n,)))
    x = jax.random.normal(jax.random.key(1), (B, T, 1))
    y = x[:, 0, 0]  # remember the first input

    def predict(p, seq):
        states = jaxgrad.unroll(lambda s, u: jaxgrad.lstm_step(s, u, p[0]),
                                jaxgrad.models.lstm_zero_state(n), seq)
        return states.h[-1] @ p[1]

    def loss_fn(p, batch):
        return jnp.mean((jax.vmap(lambda s: predict(p, s))(batch[0]) - batch[1]) ** 2)

    def per_timestep(p, batch, grads):
        seq, target = batch[0][0], batch[1][0]
        flow = jaxgrad.analysis.recurrent_gradient_flow(
            jaxgrad.lstm_step, jaxgrad.models.lstm_zero_state(n), seq,
            lambda states: (states.h[-1] @ p[1] - target) ** 2, params=p[0])
        return {"state_grad_norms": flow.state_grad_norms}

    res = fit(loss_fn, params, optax.adam(1e-2), fixed_batches((x[None], y[None])),
                num_steps=4, key=jax.random.key(0), steps_per_scan=2, monitor=per_timestep)
    assert res.metrics["state_grad_norms"].shape == (4, T)
    ref = per_timestep(params, (x, y), None)["state_grad_norms"]
    assert float(jnp.min(ref)) > 0
    np.testing.assert_allclose(res.metrics["state_grad_norms"][0], ref, rtol=1e-5)
    assert res.metrics["loss"][-1] < res.metrics["loss"][0]


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
def test_train_step_grad_norm_is_scaled_and_large_finite_gradients_are_applied(scale):
    """Entries of 1e30 once gave grad_norm = inf, finite = False: a false divergence."""
    params = jnp.ones(3, jnp.float32)
    opt = optax.sgd(0.1)

    def loss(p, batch):
        return jnp.float32(scale) * jnp.sum(p)

    state, m = train_step(loss, opt, init_train_state(params, opt), None)
    assert bool(m.finite)
    np.testing.assert_allclose(float(m.grad_norm), scale * np.sqrt(3.0), rtol=1e-6)
    assert int(state.step) == 1
