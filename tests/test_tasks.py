"""Synthetic tasks (Pascanu et al. 2013; Le et al. 2015) and the sequence models on them."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgrad
from jaxgrad.train import sequence as seq
from jaxgrad.train import tasks as T

KEY = jax.random.key(0)


def _symbols(batch):
    return np.asarray(jnp.argmax(batch.inputs, axis=-1))


@pytest.mark.parametrize("name", sorted(T.TASKS))
def test_shapes_dtypes_and_one_hot(name):
    task = T.TASKS[name]
    batch = task.sample(KEY, 7, 30)
    steps = task.sequence_length(30)
    assert batch.inputs.shape == (7, steps, task.num_inputs)
    assert jnp.issubdtype(batch.inputs.dtype, jnp.floating)
    if task.objective == "softmax":
        assert jnp.issubdtype(batch.targets.dtype, jnp.integer)
        assert batch.targets.shape == ((7, steps) if task.readout == "all" else (7,))
        assert int(batch.targets.min()) >= 0 and int(batch.targets.max()) < task.num_outputs
        np.testing.assert_array_equal(np.asarray(batch.inputs.sum(-1)), 1.0)  # one-hot
    else:
        assert batch.targets.shape == (7, 1)


@pytest.mark.parametrize("name", sorted(T.TASKS))
def test_same_key_same_batch_and_keys_differ(name):
    task = T.TASKS[name]
    a, b = task.sample(KEY, 5, 20), task.sample(KEY, 5, 20)
    c = task.sample(jax.random.key(1), 5, 20)
    np.testing.assert_array_equal(np.asarray(a.inputs), np.asarray(b.inputs))
    assert not np.array_equal(np.asarray(a.inputs), np.asarray(c.inputs))


@pytest.mark.parametrize("length", [10, 50, 137])
def test_temporal_order_windows_and_labels(length):
    batch = T.temporal_order(key=KEY, batch_size=4000, length=length)
    sym = _symbols(batch)
    relevant = sym < 2
    assert (relevant.sum(axis=1) == 2).all()
    w = int(0.1 * length)
    for lo in (int(0.1 * length), int(0.5 * length)):
        window = relevant[:, lo : lo + w]
        assert (window.sum(axis=1) == 1).all()
        if w > 1:  # every position of the window is used
            assert window.any(axis=0).all()
    p = np.argwhere(relevant)[:, 1].reshape(-1, 2)
    rows = np.arange(len(sym))
    v0, v1 = sym[rows, p[:, 0]], sym[rows, p[:, 1]]
    np.testing.assert_array_equal(np.asarray(batch.targets), v0 + 2 * v1)
    assert set(np.unique(sym[~relevant])) == {2, 3, 4, 5}


def test_temporal_order_classes_are_uniform():
    labels = np.asarray(T.temporal_order(key=KEY, batch_size=40_000, length=20).targets)
    freq = np.bincount(labels, minlength=4) / labels.size
    np.testing.assert_allclose(freq, 0.25, atol=0.012)  # 5 sigma = 0.011


def test_temporal_order_3bit_windows_and_labels():
    length = 60
    batch = T.temporal_order_3bit(key=KEY, batch_size=20_000, length=length)
    sym = _symbols(batch)
    relevant = sym < 2
    assert (relevant.sum(axis=1) == 3).all()
    for lo in (6, 18, 36):
        assert (relevant[:, lo : lo + 6].sum(axis=1) == 1).all()
    bits = sym[relevant].reshape(-1, 3)
    np.testing.assert_array_equal(np.asarray(batch.targets), bits @ np.array([1, 2, 4]))
    freq = np.bincount(np.asarray(batch.targets), minlength=8) / 20_000
    np.testing.assert_allclose(freq, 1 / 8, atol=0.012)


@pytest.mark.parametrize("name,combine", [("addition", lambda a, b: (a + b) / 2),
                                          ("multiplication", lambda a, b: a * b)])
def test_marked_pair_tasks(name, combine):
    length = 50
    batch = T.TASKS[name].sample(KEY, 3000, length)
    x = np.asarray(batch.inputs)
    markers, values = x[..., 0], x[..., 1]
    assert (markers.sum(axis=1) == 2).all()
    assert (markers[:, :5].sum(axis=1) == 1).all()  # p0 in [0, 0.1 L)
    assert (markers[:, 5:25].sum(axis=1) == 1).all()  # p1 in [0.1 L, 0.5 L)
    assert ((values >= 0) & (values < 1)).all()
    pos = np.argwhere(markers == 1)[:, 1].reshape(-1, 2)
    rows = np.arange(len(x))
    expected = combine(values[rows, pos[:, 0]], values[rows, pos[:, 1]])
    np.testing.assert_allclose(np.asarray(batch.targets)[:, 0], expected, rtol=1e-6)


@pytest.mark.slow
def test_target_statistics_closed_forms():
    n = 100_000
    add = np.asarray(T.addition(key=KEY, batch_size=n, length=10).targets)[:, 0]
    mul = np.asarray(T.multiplication(key=KEY, batch_size=n, length=10).targets)[:, 0]
    # (a+b)/2: mean 1/2, variance 1/24; ab: mean 1/4, variance 1/9 - 1/16 = 7/144.
    np.testing.assert_allclose([add.mean(), add.var()], [0.5, 1 / 24], atol=2e-3)
    np.testing.assert_allclose([mul.mean(), mul.var()], [0.25, 7 / 144], atol=2e-3)


def test_adding_problem_predicting_one_gives_one_sixth():
    """Le et al. (2015): predicting 1 gives MSE ≈ 0.167; exactly Var(U1 + U2) = 1/6."""
    batch = T.adding_problem(key=KEY, batch_size=100_000, length=100)
    mse = float(jnp.mean((batch.targets - 1.0) ** 2))
    # Var of (s-1)^2 is 1/15 - 1/36; the standard error of the mean is 6.2e-4.
    assert abs(mse - 1 / 6) < 3e-3
    task = T.get_task("adding_problem")
    assert abs(float(task.loss(jnp.ones_like(batch.targets), batch.targets)) - mse) < 1e-6
    x = np.asarray(batch.inputs)
    assert (x[:, :50, 1].sum(axis=1) == 1).all() and (x[:, 50:, 1].sum(axis=1) == 1).all()
    pos = np.argwhere(x[..., 1] == 1)[:, 1].reshape(-1, 2)
    rows = np.arange(len(x))
    np.testing.assert_allclose(
        np.asarray(batch.targets)[:, 0], x[rows, pos[:, 0], 0] + x[rows, pos[:, 1], 0], rtol=1e-6
    )


def test_random_permutation():
    batch = T.random_permutation(key=KEY, batch_size=20_000, length=30)
    sym = _symbols(batch)
    assert set(np.unique(sym[:, 0])) == {0, 1}
    assert sym[:, 1:].min() >= 2 and sym[:, 1:].max() <= 99
    np.testing.assert_array_equal(np.asarray(batch.targets), sym[:, 0])
    assert abs(np.asarray(batch.targets).mean() - 0.5) < 0.02


def test_noiseless_memorization_layout():
    V, P, L = 3, 4, 6
    batch = T.noiseless_memorization(key=KEY, batch_size=50, length=L, num_values=V,
                                     num_positions=P)
    sym, tgt = _symbols(batch), np.asarray(batch.targets)
    assert sym.shape == tgt.shape == (50, L + 2 * P)
    assert batch.inputs.shape[-1] == V + 2
    assert (sym[:, :P] < V).all()
    after = sym[:, P:]
    assert (after[:, L] == V + 1).all()  # the trigger at step L + P
    assert (np.delete(after, L, axis=1) == V).all()
    assert (tgt[:, : L + P] == V).all()
    np.testing.assert_array_equal(tgt[:, L + P :], sym[:, :P])
    task = T.get_task("noiseless_memorization", num_values=V, num_positions=P)
    assert task.num_outputs == V + 1 and task.sequence_length(L) == L + 2 * P


def test_errors_rules():
    task = T.get_task("addition")
    y = jnp.zeros((3, 1))
    out = jnp.asarray([[0.19], [-0.21], [0.0]])
    np.testing.assert_array_equal(np.asarray(task.errors(out, y)), [False, True, False])
    cls = T.get_task("temporal_order")
    logits = jax.nn.one_hot(jnp.asarray([0, 1, 2]), 4)
    np.testing.assert_array_equal(
        np.asarray(cls.errors(logits, jnp.asarray([0, 1, 3]))), [False, False, True]
    )
    mem = T.get_task("noiseless_memorization", num_values=2, num_positions=1)
    t = jnp.asarray([[2, 2, 0], [2, 2, 1]])
    out = jax.nn.one_hot(jnp.asarray([[2, 2, 0], [2, 0, 1]]), 3)
    np.testing.assert_array_equal(np.asarray(mem.errors(out, t)), [False, True])
    assert float(cls.loss(100.0 * logits, jnp.asarray([0, 1, 2]))) < 1e-6


def _addition_oracle(u):
    return jnp.sum(u[..., 0] * u[..., 1], axis=1, keepdims=True) / 2


@pytest.mark.slow
def test_success_criterion_constant_and_oracle():
    task = T.get_task("addition")
    res = T.success(task, lambda u: jnp.full((u.shape[0], 1), 0.5), key=KEY, length=50)
    # P(|(a+b)/2 - 1/2| > 0.2) = 2 * 2 * 0.3^2 = 0.36 for the triangular law of (a+b)/2.
    assert res.num_sequences == 10_000
    assert abs(float(res.error_rate) - 0.36) < 0.025 and not bool(res.solved)
    ok = T.success(task, lambda u, p: _addition_oracle(u) + p, params=jnp.asarray(0.1),
                   key=KEY, length=50, num_sequences=2000)
    assert float(ok.error_rate) == 0.0 and bool(ok.solved)
    off = T.success(task, lambda u, p: _addition_oracle(u) + p, params=jnp.asarray(0.25),
                    key=KEY, length=50, num_sequences=2000)
    assert float(off.error_rate) == 1.0
    chance = T.success(T.get_task("temporal_order"), lambda u: jnp.zeros((u.shape[0], 4)),
                       key=KEY, length=20)
    assert abs(float(chance.error_rate) - 0.75) < 0.025


def test_generator_jits_once_and_works_under_jit():
    task = T.get_task("temporal_order")
    task.sample(KEY, 4, 33)
    before = T._generate._cache_size()
    task.sample(jax.random.key(9), 4, 33)
    assert T._generate._cache_size() == before
    batch = jax.jit(lambda k: task.sample(k, 4, 33))(KEY)
    np.testing.assert_array_equal(np.asarray(batch.inputs), np.asarray(task.sample(KEY, 4, 33)
                                                                       .inputs))


@pytest.mark.parametrize("name", sorted(T.TASKS))
def test_length_below_minimum_is_refused(name):
    task = T.TASKS[name]
    with pytest.raises(ValueError, match=rf"`length` must be >= {task.min_length} for {name}"):
        task.sample(KEY, 2, task.min_length - 1 if task.min_length > 1 else 0)


def test_bad_inputs():
    task = T.get_task("addition")
    with pytest.raises(ValueError, match="`batch_size` must be >= 1"):
        T.addition(key=KEY, batch_size=0, length=20)
    with pytest.raises(TypeError, match="`length` must be an integer"):
        T.addition(key=KEY, batch_size=2, length=20.0)
    with pytest.raises(ValueError, match=r"`outputs` must have shape \(B, 1\) for addition"):
        task.loss(jnp.zeros((3, 2)), jnp.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"`targets` must have shape \(3, 1\)"):
        task.errors(jnp.zeros((3, 1)), jnp.zeros((4, 1)))
    cls = T.get_task("temporal_order")
    with pytest.raises(TypeError, match="`targets` must be integer labels"):
        cls.loss(jnp.zeros((3, 4)), jnp.zeros((3,)))
    with pytest.raises(ValueError, match=r"`outputs` must have shape \(B, T, 6\)"):
        T.get_task("noiseless_memorization").loss(jnp.zeros((3, 6)), jnp.zeros((3,), int))
    with pytest.raises(ValueError, match="unknown `name` 'adding'"):
        T.get_task("adding")
    with pytest.raises(ValueError, match="`num_sequences` .* multiple of `batch_size`"):
        T.success(task, _addition_oracle, key=KEY, length=20, num_sequences=1500)
    with pytest.raises(TypeError, match="`task` must be a Task"):
        T.success("addition", _addition_oracle, key=KEY, length=20)
    with pytest.raises(ValueError, match="`length` must be >= 10 for addition"):
        T.success(task, _addition_oracle, key=KEY, length=5)
    with pytest.raises(ValueError, match="`num_positions` must be >= 1"):
        T.noiseless_memorization(key=KEY, batch_size=2, length=3, num_positions=0)


# --------------------------------------------------------------------------- sequence models


@pytest.mark.slow
@pytest.mark.parametrize("cell", seq.CELLS)
def test_sequence_outputs_shapes_and_loss(cell):
    for name in ("temporal_order", "noiseless_memorization"):
        task = T.get_task(name)
        model = seq.SequenceModel.for_task(cell, 8, task)
        params = model.init(jax.random.key(1))
        batch = task.sample(KEY, 3, 12)
        out = seq.sequence_outputs(model, params, batch.inputs)
        lead = (3, task.sequence_length(12)) if task.readout == "all" else (3,)
        assert out.shape == lead + (task.num_outputs,)
        loss = seq.sequence_loss(model, task)(params, batch)
        assert float(loss) == pytest.approx(float(task.loss(out, batch.targets)), rel=1e-6)


@pytest.mark.slow
def test_state_grad_norms_match_recurrent_gradient_flow():
    task = T.get_task("adding_problem")
    model = seq.SequenceModel.for_task("rnn_tanh", 6, task)
    params = model.init(jax.random.key(2))
    batch = task.sample(KEY, 1, 15)
    norms = seq.sequence_state_grad_norms(model, task, params, batch)

    def loss(states):
        return task.loss(model.outputs_from_states(params, states)[None], batch.targets)

    flow = jaxgrad.analysis.recurrent_gradient_flow(
        lambda x, u: model.step(x, u, params.cell), jnp.zeros(6), batch.inputs[0], loss
    )
    np.testing.assert_allclose(np.asarray(norms), np.asarray(flow.state_grad_norms), rtol=1e-5)


@pytest.mark.slow
def test_state_grad_norms_of_a_tiny_gradient_are_not_flushed_to_zero():
    """Readout std 1e-32: ‖∂E/∂x_t‖ ≈ 1e-32, whose squares (1e-64) are 0 in float32."""
    task = T.get_task("adding_problem")
    model = seq.SequenceModel.for_task("rnn_tanh", 5, task)
    params = model.init(jax.random.key(2), output_std=1e-32)
    batch = task.sample(KEY, 1, 10)
    norms = np.asarray(seq.sequence_state_grad_norms(model, task, params, batch))

    def loss(states):
        return task.loss(model.outputs_from_states(params, states)[None], batch.targets)

    flow = jaxgrad.analysis.recurrent_gradient_flow(
        lambda x, u: model.step(x, u, params.cell), jnp.zeros(5), batch.inputs[0], loss
    )
    assert np.all((norms > 1e-36) & (norms < 1e-30))
    np.testing.assert_allclose(norms, np.asarray(flow.state_grad_norms), rtol=1e-5)


@pytest.mark.parametrize("bad", [-1, 4, 12])
def test_task_loss_refuses_out_of_range_labels_by_name(bad):
    task = T.get_task("temporal_order")  # 4 classes
    out = jnp.zeros((3, 4))
    targets = jnp.array([0, 3, bad])
    msg = rf"`targets` must hold class labels in \[0, 4\), got {bad} at index 2"
    with pytest.raises(ValueError, match=msg):
        task.loss(out, targets)
    with pytest.raises(ValueError, match=msg):
        task.errors(out, targets)
    mem = T.get_task("noiseless_memorization", num_values=3, num_positions=1)  # 4 classes
    labels = np.zeros((2, 3), np.int32)
    labels[1, 2] = bad
    with pytest.raises(ValueError, match=rf"got {bad} at index \(1, 2\)"):
        mem.loss(jnp.zeros((2, 3, 4)), labels)


def test_task_loss_is_nan_for_traced_out_of_range_labels_never_wrapped():
    """Under jit the labels cannot be checked: -1 used to score as class 3 (a finite,
    plausible loss) and 4 as NaN; both are NaN now, with NaN gradients."""
    task = T.get_task("temporal_order")
    out = jnp.zeros((2, 4)).at[:, 3].set(4.0)
    loss = jax.jit(task.loss)
    assert float(loss(out, jnp.array([3, 3]))) == pytest.approx(
        float(task.loss(out, jnp.array([3, 3]))), rel=1e-6)
    for bad in (-1, 4):
        y = jnp.array([3, bad])
        assert np.isnan(float(loss(out, y)))
        assert np.all(np.isnan(np.asarray(jax.grad(loss)(out, y))[1]))
        assert bool(jax.jit(task.errors)(out, y)[1])  # counted as an error


def test_vmap_optimizer_clips_each_replica_on_its_own():
    opt = seq.vmap_optimizer(optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(1.0)))
    params = {"w": jnp.zeros((2, 3))}
    grads = {"w": jnp.asarray([[3.0, 4.0, 0.0], [0.3, 0.4, 0.0]])}
    updates, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(updates["w"]), axis=1), [1.0, 0.5],
                               rtol=1e-6)


def test_sequence_bad_inputs():
    task = T.get_task("temporal_order")
    model = seq.SequenceModel.for_task("gru", 4, task)
    params = model.init(KEY)
    with pytest.raises(ValueError, match=r"`inputs` must have shape \(B, T, 6\)"):
        seq.sequence_outputs(model, params, jnp.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match="`inputs` must have 3 dimension"):
        seq.sequence_outputs(model, params, jnp.zeros((5, 6)))
    with pytest.raises(ValueError, match="do not match task addition"):
        seq.sequence_loss(model, T.get_task("addition"))
    with pytest.raises(ValueError, match="unknown `cell` 'rnn'"):
        seq.SequenceModel("rnn", 4, 1, 1)
    with pytest.raises(TypeError, match="`optimizer` must be an optax"):
        seq.vmap_optimizer(object())
