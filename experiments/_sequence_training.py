"""Shared by the sequence experiments: train S replicas (seeds) of a model on a task at once.

The replicas' parameters are stacked on a leading axis; ``jaxgrad.fit`` runs them
in one compiled scan with ``vmap_optimizer`` (each replica clipped by its own norm) and a
loss that sums the replicas' losses, so their gradients stay independent.
``train_replicas_checked`` trains in segments between periodic success checks, as Pascanu
et al.'s code does, and stops once every replica has solved the task.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgrad.train import (
    BatchSource,
    SequenceModel,
    TrainingDiverged,
    fit,
    sequence_loss,
    sequence_omega,
    sequence_outputs,
    success,
    vmap_optimizer,
)
from jaxgrad.train.tasks import SUCCESS_ERROR_RATE


def train_replicas(
    model: SequenceModel,
    task: Any,
    params: Any,
    inner: optax.GradientTransformation,
    *,
    length: int,
    batch_size: int,
    num_steps: int,
    key: jax.Array,
    omega_weight: float = 0.0,
    steps_per_scan: int = 250,
    stateless: bool = True,
    omega_squared: bool = False,
) -> tuple[Any, dict[str, np.ndarray]]:
    """Train stacked ``params`` (leading replica axis S) and return per-replica metrics.

    Metrics (leading step axis): ``replica_loss`` (S,), ``replica_grad_norm`` (S,) of
    ``∇(L + λΩ)`` before clipping, ``replica_update_norm`` (S,) — the norm of the update
    the inner optimizer applies (only for a stateless ``inner`` such as clipped SGD, where
    it is recomputed exactly from the gradient) — and ``regularizer`` (mean Ω over replicas).
    """
    num_replicas = jax.tree_util.tree_leaves(params)[0].shape[0]
    fns = _functions(model, task, inner, batch_size, length, num_replicas, stateless,
                     omega_squared)
    run = functools.partial(
        fit, fns["loss"], optimizer=fns["optimizer"], num_steps=num_steps, key=key,
        steps_per_scan=min(steps_per_scan, num_steps),
        regularizer=fns["regularizer"] if omega_weight > 0 else None,
        regularizer_weight=omega_weight, monitor=fns["monitor"],
    )
    diverged = np.full(num_replicas, -1)
    try:
        result = run(params, batches=BatchSource(jnp.arange(num_replicas), fns["sample"]))
        final, metrics = result.params, dict(result.metrics)
        metrics["regularizer"] = np.asarray(metrics["regularizer"]) / num_replicas
    except TrainingDiverged:
        # One replica's non-finite loss stops the joint run: train each replica on its own
        # (same batches as in the joint run), keeping a diverged one at its last finite
        # parameters, its metrics padded with NaN after the step it diverged at.
        finals, parts = [], []
        for i in range(num_replicas):
            one = jax.tree_util.tree_map(lambda a, i=i: a[i : i + 1], params)
            source = BatchSource(jnp.asarray([i]), fns["sample"])
            try:
                res = run(one, batches=source)
                finals.append(res.params)
                parts.append(dict(res.metrics))
            except TrainingDiverged as err:
                diverged[i] = err.step
                finals.append(err.state.params)
                parts.append({k: _pad(v, num_steps) for k, v in err.metrics.items()})
        final = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *finals)
        metrics = {k: np.concatenate([p[k][:, None] if p[k].ndim == 1 else p[k] for p in parts],
                                     axis=1) for k in parts[0]}
        metrics["regularizer"] = np.nanmean(metrics["regularizer"], axis=1)
    metrics["diverged_at"] = diverged
    return final, metrics


def _pad(values: np.ndarray, num_steps: int) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    out = np.full((num_steps,) + values.shape[1:], np.nan)
    out[: len(values)] = values
    return out


_FUNCTIONS: dict = {}


def _functions(model, task, inner, batch_size, length, num_replicas, stateless,
               omega_squared=False):
    """The loss, regulariser, monitor, sampler and optimizer for ``fit``, made once per
    setting so that the loop's compiled scan is reused (it is cached on their identity)."""
    cache_key = (model, task, id(inner), batch_size, length, num_replicas, stateless,
                 omega_squared)
    if cache_key in _FUNCTIONS:
        return _FUNCTIONS[cache_key][1]
    per_replica_loss = sequence_loss(model, task)
    omega = sequence_omega(model, task, squared=omega_squared)

    def loss(p, batch):
        return jnp.sum(jax.vmap(per_replica_loss)(p, batch))

    def regularizer(p, batch):
        return jnp.sum(jax.vmap(omega)(p, batch))

    def sample(which, k, t):
        # Replica i always sees split(k, num_replicas)[i], alone or in the joint run.
        keys = jax.random.split(k, num_replicas)[which]
        return jax.vmap(lambda kk: task.sample(kk, batch_size, length))(keys)

    def sample_from(data, k, t):
        # Batches of global step `start + t` (segments of one run draw one stream).
        which, start, run_key = data
        del k
        return sample(which, jax.random.fold_in(run_key, start + t), None)

    def monitor(p, batch, grads):
        out = {
            "replica_loss": jax.vmap(per_replica_loss)(p, batch),
            "replica_grad_norm": jax.vmap(optax.tree.norm)(grads),
        }
        if stateless:
            def update_norm(g, q):
                return optax.tree.norm(inner.update(g, inner.init(q), q)[0])

            out["replica_update_norm"] = jax.vmap(update_norm)(grads, p)
        return out

    fns = {"loss": loss, "regularizer": regularizer, "sample": sample, "monitor": monitor,
           "sample_from": sample_from, "optimizer": vmap_optimizer(inner)}
    _FUNCTIONS[cache_key] = (inner, fns)  # keep `inner` alive so its id stays unique
    return fns


def train_replicas_checked(
    model: SequenceModel,
    task: Any,
    params: Any,
    inner: optax.GradientTransformation,
    *,
    length: int,
    batch_size: int,
    num_steps: int,
    key: jax.Array,
    check_every: int,
    check_key: jax.Array,
    eval_sequences: int,
    omega_weight: float = 0.0,
    omega_squared: bool = False,
    on_nonfinite: str = "stop",
    shrink_factor: float = 0.0,
    max_shrinks: int = 20,
    checks_after_solved: int = 0,
    steps_per_scan: int = 250,
    log: Any = None,
) -> tuple[Any, dict[str, np.ndarray]]:
    """Train stacked replicas with a success check every ``check_every`` updates.

    ``jaxgrad.fit`` runs each segment of ``check_every`` updates from the previous
    segment's parameters (batch t of the run is drawn from ``fold_in(key, t)`` whatever the
    segmentation); after each segment every live replica is scored on ``eval_sequences``
    fresh sequences (``fold_in(check_key, c)`` at check c, the same for every replica and
    optimizer) and its first check under 1% errors is its first success (Pascanu et al.'s
    criterion; their code checks periodically too). Training stops when every live
    replica has solved and ``checks_after_solved`` more checks are done (to see whether
    solved runs bounce back above 1%), or after ``num_steps`` updates.

    A step with a non-finite loss or gradient in some replica is not applied (the loop's
    rule). ``on_nonfinite="stop"`` ends that replica (its parameters stay at their last
    finite values; the others go on); ``"shrink"`` does what Pascanu et al.'s code does
    for clipped runs, ``W_rec ← (1 − shrink_factor) W_rec`` in place of that update, up
    to ``max_shrinks`` times before the replica is stopped. The other replicas skip the
    batch of that step.

    Segments restart the optimizer state, so ``inner`` must be stateless (SGD, clipped
    SGD): a stateful one is refused with ``ValueError``.

    Returns:
        ``(params, metrics)``: the final stacked parameters and numpy arrays
        ``replica_loss``, ``replica_grad_norm``, ``replica_update_norm`` (steps done, S;
        NaN where a replica was not training), ``check_steps`` (C,), ``check_error``
        (C, S; NaN for a stopped replica), ``first_success`` (S,; update count of the first
        solved check, -1 if none), ``diverged_at`` (S,; -1 if never stopped),
        ``num_shrinks`` (S,) and ``steps_done`` (scalar). ``log(message)``, if given, is
        called after every check.
    """
    if on_nonfinite not in ("stop", "shrink"):
        raise ValueError(f"`on_nonfinite` must be 'stop' or 'shrink', got {on_nonfinite!r}")
    num_replicas = jax.tree_util.tree_leaves(params)[0].shape[0]
    if jax.tree_util.tree_leaves(inner.init(replica(params, 0))):
        raise ValueError("`inner` must be stateless (SGD, clipped SGD): segments restart the "
                         "optimizer state")
    fns = _functions(model, task, inner, batch_size, length, num_replicas, True, omega_squared)
    run = functools.partial(
        fit, fns["loss"], optimizer=fns["optimizer"], key=key,
        regularizer=fns["regularizer"] if omega_weight > 0 else None,
        regularizer_weight=omega_weight, monitor=fns["monitor"],
    )
    fields = ("replica_loss", "replica_grad_norm", "replica_update_norm")
    history = {f: np.full((num_steps, num_replicas), np.nan) for f in fields}
    alive = np.ones(num_replicas, bool)
    diverged = np.full(num_replicas, -1)
    shrinks = np.zeros(num_replicas, int)
    first = np.full(num_replicas, -1)
    check_steps, check_error = [], []
    params = jax.tree_util.tree_map(jnp.asarray, params)
    done, extra = 0, 0
    while done < num_steps and alive.any():
        end = min(done + check_every, num_steps)
        while done < end and alive.any():
            idx = np.flatnonzero(alive)
            active = jax.tree_util.tree_map(lambda a, idx=idx: a[idx], params)
            source = BatchSource((jnp.asarray(idx), jnp.asarray(done, jnp.int32), key),
                                 fns["sample_from"])
            try:
                res = run(active, batches=source, num_steps=end - done,
                          steps_per_scan=min(steps_per_scan, end - done))
                new, part, bad = res.params, res.metrics, None
            except TrainingDiverged as err:
                new, part, bad = err.state.params, err.metrics, err.step
            rows = len(part["loss"])
            for f in fields:
                history[f][done : done + rows, idx] = part[f]
            params = jax.tree_util.tree_map(lambda a, b, idx=idx: a.at[idx].set(b), params, new)
            if bad is None:
                done = end
                continue
            last = np.isfinite(part["replica_loss"][-1]) & np.isfinite(
                part["replica_grad_norm"][-1])
            culprits = idx[~last]
            if culprits.size == 0:  # joint sum overflowed with every replica finite
                culprits = idx
            for i in culprits:
                if on_nonfinite == "shrink" and shrinks[i] < max_shrinks:
                    shrinks[i] += 1
                    params = _scale_recurrent(params, i, 1.0 - shrink_factor)
                else:
                    alive[i] = False
                    diverged[i] = done + bad
            done += bad + 1  # that batch is used up (by the shrink, or skipped)
        if done < end:
            break
        rates, _ = replica_success(model, task, params, key=jax.random.fold_in(
            check_key, len(check_steps)), length=length, num_sequences=eval_sequences)
        rates = np.where(alive, rates, np.nan)
        check_steps.append(done)
        check_error.append(rates)
        newly = (first < 0) & alive & (rates < SUCCESS_ERROR_RATE)
        first[newly] = done
        if log is not None:
            log(f"update {done}: error rates {np.round(rates, 4).tolist()}")
        if alive.any() and (first[alive] >= 0).all():
            if extra >= checks_after_solved:
                break
            extra += 1
    metrics = {f: history[f][:done] for f in fields}
    metrics.update(
        check_steps=np.asarray(check_steps, int), diverged_at=diverged, num_shrinks=shrinks,
        check_error=np.asarray(check_error, float).reshape(len(check_steps), num_replicas),
        first_success=first, steps_done=np.asarray(done),
    )
    return params, metrics


def _scale_recurrent(params, i, factor):
    """``params`` with replica i's ``W_rec`` multiplied by ``factor``."""
    W = params.cell.W_rec
    cell = params.cell._replace(W_rec=W.at[i].set(W[i] * jnp.asarray(factor, W.dtype)))
    return params._replace(cell=cell)


def replica(params: Any, i: int) -> Any:
    """The i-th replica of stacked parameters."""
    return jax.tree_util.tree_map(lambda a: a[i], params)


def replica_success(model, task, params, *, key, length, num_sequences, batch_size=500):
    """``success`` of every replica: arrays of error rates and solved flags, shape (S,)."""
    num_replicas = jax.tree_util.tree_leaves(params)[0].shape[0]
    predict = _predictor(model)
    rates, solved = [], []
    for i in range(num_replicas):
        res = success(task, predict, params=replica(params, i), key=key, length=length,
                      num_sequences=num_sequences, batch_size=min(batch_size, num_sequences))
        rates.append(float(res.error_rate))
        solved.append(bool(res.solved))
    return np.asarray(rates), np.asarray(solved)


_PREDICTORS: dict = {}


def _predictor(model):
    """One predictor function per model, so ``success`` compiles once per model."""
    if model not in _PREDICTORS:
        _PREDICTORS[model] = lambda u, p: sequence_outputs(model, p, u)
    return _PREDICTORS[model]
