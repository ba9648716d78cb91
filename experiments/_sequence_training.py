"""Shared by the sequence experiments: train S replicas (seeds) of a model on a task at once.

The replicas' parameters are stacked on a leading axis; ``jaxgrad.train.train`` runs them
in one compiled scan with ``vmap_optimizer`` (each replica clipped by its own norm) and a
loss that sums the replicas' losses, so their gradients stay independent.
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
    sequence_loss,
    sequence_omega,
    sequence_outputs,
    success,
    train,
    vmap_optimizer,
)


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
) -> tuple[Any, dict[str, np.ndarray]]:
    """Train stacked ``params`` (leading replica axis S) and return per-replica metrics.

    Metrics (leading step axis): ``replica_loss`` (S,), ``replica_grad_norm`` (S,) of
    ``∇(L + λΩ)`` before clipping, ``replica_update_norm`` (S,) — the norm of the update
    the inner optimizer applies (only for a stateless ``inner`` such as clipped SGD, where
    it is recomputed exactly from the gradient) — and ``regularizer`` (mean Ω over replicas).
    """
    num_replicas = jax.tree_util.tree_leaves(params)[0].shape[0]
    fns = _functions(model, task, inner, batch_size, length, num_replicas, stateless)
    run = functools.partial(
        train, fns["loss"], optimizer=fns["optimizer"], num_steps=num_steps, key=key,
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


def _functions(model, task, inner, batch_size, length, num_replicas, stateless):
    """The loss, regulariser, monitor, sampler and optimizer for ``train``, made once per
    setting so that the loop's compiled scan is reused (it is cached on their identity)."""
    cache_key = (model, task, id(inner), batch_size, length, num_replicas, stateless)
    if cache_key in _FUNCTIONS:
        return _FUNCTIONS[cache_key][1]
    per_replica_loss = sequence_loss(model, task)
    omega = sequence_omega(model, task)

    def loss(p, batch):
        return jnp.sum(jax.vmap(per_replica_loss)(p, batch))

    def regularizer(p, batch):
        return jnp.sum(jax.vmap(omega)(p, batch))

    def sample(which, k, t):
        # Replica i always sees split(k, num_replicas)[i], alone or in the joint run.
        keys = jax.random.split(k, num_replicas)[which]
        return jax.vmap(lambda kk: task.sample(kk, batch_size, length))(keys)

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
           "optimizer": vmap_optimizer(inner)}
    _FUNCTIONS[cache_key] = (inner, fns)  # keep `inner` alive so its id stays unique
    return fns


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
