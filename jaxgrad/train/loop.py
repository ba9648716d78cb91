"""A training loop on optax: ``train_step`` (one update), ``train_steps`` (a pure scan of
updates, for ``jax.jit`` and ``jax.vmap``) and ``fit`` (the host driver built on it, with
checkpoints and resume).

The update is the plain gradient step of optax,

    g_t = ∇_θ [L(θ_t; B_t) + λ Ω(θ_t; B_t)],    (u_t, s_{t+1}) = opt.update(g_t, s_t, θ_t),
    θ_{t+1} = θ_t + u_t,

with an optional regulariser ``Ω`` (e.g. Pascanu et al.'s 2013 vanishing-gradient
regulariser, eq. 9) weighted by ``λ``. ``steps_per_scan`` steps run inside one compiled
``lax.scan``; every step's loss, global gradient norm ``‖g_t‖``, ``Ω`` value and the
outputs of a ``monitor`` (per-layer or per-timestep gradient norms) are scan outputs, so
the host only syncs once per scan. The batch of step t is drawn by a pure function of
``fold_in(key, t)`` and ``t``, so a run is a function of its seed: an interrupted run that
resumes from a checkpoint gives bit-identical parameters and metrics.

A step whose loss or gradient is not finite is not applied (the parameters keep their
last finite values; ``train_steps`` applies none after it) and ``fit`` stops with
``TrainingDiverged`` naming the step, after the last good checkpoint has been kept on disk.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._fingerprint import identify, python_version
from .._validation import (
    check_optimizer,
    check_positive_float,
    check_positive_int,
    leading_axis_length,
    typed_key,
)
from ..analysis.gradient_flow import mlp_layer_grad_norms, scaled_norm, tree_scaled_norm
from ..io import write_atomic

#: Metric names the loop itself records; a monitor may not reuse them.
RESERVED_METRICS = ("loss", "objective", "regularizer", "grad_norm", "finite")

CHECKPOINT_FILE = "checkpoint.npz"

LossFn = Callable[[Any, Any], jax.Array]
Regularizer = Callable[[Any, Any], jax.Array]
Monitor = Callable[[Any, Any, Any], Mapping[str, jax.Array]]


class TrainState(NamedTuple):
    """What one step carries: ``params``, optax ``opt_state`` and the step count ``step``."""

    params: Any
    opt_state: Any
    step: jax.Array


class StepMetrics(NamedTuple):
    """Per-step records (scalars for one step; stacked on a leading axis over a scan).

    Attributes:
        loss: ``L(θ_t; B_t)``.
        objective: ``L + λ Ω`` (equal to ``loss`` without a regulariser).
        regularizer: ``Ω(θ_t; B_t)`` (0 without a regulariser).
        grad_norm: global norm ``‖∇_θ (L + λΩ)‖₂`` over every parameter, before the
            optimiser's own transformations (clipping); computed scaled, so gradients of
            1e-30 or 1e30 give their norm, not 0 or inf.
        finite: whether the objective, every gradient entry and every new parameter were
            finite, so the step was applied (a finite gradient whose norm overflows is
            still applied).
        monitor: the dict the ``monitor`` returned (empty without one).
        aux: what ``loss_fn`` returned beside the loss with ``has_aux=True`` (else ``None``).
    """

    loss: jax.Array
    objective: jax.Array
    regularizer: jax.Array
    grad_norm: jax.Array
    finite: jax.Array
    monitor: dict[str, jax.Array]
    aux: Any = None


class BatchSource(NamedTuple):
    """Where step t's batch comes from: ``sample(data, key_t, t) -> batch``.

    ``data`` (a pytree of arrays, or ``None``) is passed into the compiled scan as an
    argument, so a large data set is not baked into the program as a constant.
    ``key_t = fold_in(key, t)``. Build one with ``jaxgrad.train.shuffled_batches`` (epochs
    of a data set), ``fixed_batches`` (a stack of batches) or ``sampled_batches`` (a
    generator such as a synthetic task).
    """

    data: Any
    sample: Callable[[Any, jax.Array, jax.Array], Any]


class TrainResult(NamedTuple):
    """Result of ``fit``.

    Attributes:
        params, opt_state: the final values.
        step: number of steps done in total (including those before a resume).
        metrics: ``{name: np.ndarray}`` with a leading axis over every step done
            (``loss``, ``objective``, ``regularizer``, ``grad_norm``, ``finite`` and each
            monitor key); a resumed run includes the steps before the interruption.
        checkpoint_path: the last checkpoint written (``None`` without ``checkpoint_dir``).
    """

    params: Any
    opt_state: Any
    step: int
    metrics: dict[str, np.ndarray]
    checkpoint_path: Path | None


class TrainingDiverged(FloatingPointError):
    """The loss or gradient became non-finite; the step is named in ``step``.

    Attributes:
        step: the 0-based index of the first step whose objective or gradient was not
            finite (that step was not applied).
        state: the ``TrainState`` just before that step (finite values).
        metrics: the metrics up to and including that step.
        checkpoint_path: the last good checkpoint kept on disk (``None`` if none).
    """

    def __init__(self, step: int, state: TrainState, metrics: dict, checkpoint_path):
        where = f"; last good checkpoint kept at {checkpoint_path}" if checkpoint_path else ""
        super().__init__(f"training diverged: non-finite loss or gradient at step {step}{where}")
        self.step = step
        self.state = state
        self.metrics = metrics
        self.checkpoint_path = checkpoint_path


def init_train_state(params: Any, optimizer: optax.GradientTransformation) -> TrainState:
    """``TrainState(params, optimizer.init(params), step=0)``."""
    _check_optimizer(optimizer)
    with jax.numpy_dtype_promotion("standard"):
        opt_state = optimizer.init(params)
    return TrainState(params, opt_state, jnp.asarray(0, jnp.int32))


def train_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    state: TrainState,
    batch: Any,
    *,
    regularizer: Regularizer | None = None,
    regularizer_weight: float = 1.0,
    monitor: Monitor | None = None,
    has_aux: bool = False,
) -> tuple[TrainState, StepMetrics]:
    """One optax update on ``batch``; pure, so ``jax.jit`` or ``lax.scan`` it.

    Arguments:
        loss_fn: ``loss_fn(params, batch) -> scalar`` (``-> (scalar, aux)`` with
            ``has_aux=True``; ``aux`` is returned in ``StepMetrics.aux``).
        optimizer: an optax ``GradientTransformation`` (chain clipping in with
            ``jaxgrad.train.with_clipping`` or ``optax.chain``).
        state: ``TrainState`` from ``init_train_state``.
        batch: anything ``loss_fn`` takes.
        regularizer: ``regularizer(params, batch) -> scalar`` Ω added to the loss with
            weight ``regularizer_weight``; its value is recorded.
        monitor: ``monitor(params, batch, grads) -> {name: array}`` computed inside the
            step (``grads`` is ``∇_θ (L + λΩ)``); see ``mlp_layer_monitor``.

    Returns:
        ``(new_state, StepMetrics)``. A non-finite objective, gradient or new parameter
        leaves the state unchanged (except ``step``) and sets ``finite=False``.

    Example:
        >>> import functools
        >>> loss_fn = lambda w, batch: jnp.mean((batch[0] @ w - batch[1]) ** 2)
        >>> opt = optax.adam(1e-3)
        >>> state = init_train_state(jnp.zeros(3), opt)
        >>> step = jax.jit(functools.partial(train_step, loss_fn, opt))
        >>> state, metrics = step(state, (jnp.ones((4, 3)), jnp.ones(4)))
        >>> int(state.step), float(metrics.loss), bool(metrics.finite)
        (1, 1.0, True)
    """
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable, got {type(loss_fn).__name__}")
    check_optimizer(optimizer)
    if not isinstance(state, TrainState):
        raise TypeError(f"`state` must be a TrainState, got {type(state).__name__}")
    if isinstance(regularizer_weight, (int, float)):  # traced inside `fit`'s scan
        check_positive_float("regularizer_weight", regularizer_weight, allow_zero=True)

    def objective(params):
        loss, aux = loss_fn(params, batch), None
        if has_aux:
            if not (isinstance(loss, tuple) and len(loss) == 2):
                raise TypeError(f"`loss_fn` with has_aux=True must return (loss, aux), got "
                                f"{type(loss).__name__}")
            loss, aux = loss
        loss = jnp.asarray(loss)
        if loss.shape != ():
            raise ValueError(f"`loss_fn` must return a scalar, got shape {loss.shape}")
        if regularizer is None:
            return loss, (loss, jnp.zeros((), loss.dtype), aux)
        omega = jnp.asarray(regularizer(params, batch))
        if omega.shape != ():
            raise ValueError(f"`regularizer` must return a scalar, got shape {omega.shape}")
        omega = omega.astype(loss.dtype)
        total = loss + jnp.asarray(regularizer_weight, loss.dtype) * omega
        return total, (loss, omega, aux)

    (total, (loss, omega, aux)), grads = jax.value_and_grad(objective, has_aux=True)(
        state.params)
    grad_norm = tree_scaled_norm(grads).norm
    # optax mixes Python floats with its int32 step count (Adam's bias correction), which
    # strict dtype promotion refuses; its own arithmetic runs under standard promotion.
    with jax.numpy_dtype_promotion("standard"):
        updates, new_opt_state = optimizer.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
    # A finite gradient can still step to an overflowing parameter: not applied either.
    finite = jnp.isfinite(total) & _all_finite(grads) & _all_finite(new_params)
    keep = lambda new, old: jax.tree_util.tree_map(  # noqa: E731
        lambda a, b: jnp.where(finite, a, b), new, old
    )
    new_state = TrainState(
        keep(new_params, state.params), keep(new_opt_state, state.opt_state), state.step + 1
    )
    extra = {} if monitor is None else dict(monitor(state.params, batch, grads))
    clash = set(extra) & set(RESERVED_METRICS)
    if clash:
        raise ValueError(f"`monitor` keys {sorted(clash)} clash with the loop's own metrics")
    return new_state, StepMetrics(loss, total, omega, grad_norm, finite, extra, aux)


def _all_finite(tree: Any) -> jax.Array:
    """Whether every entry of every leaf is finite (a finite gradient whose norm overflows
    is still a gradient the step can apply)."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves])) if leaves \
        else jnp.asarray(True)


# --------------------------------------------------------------------------- batches


def sampled_batches(sample: Callable[[jax.Array, jax.Array], Any]) -> BatchSource:
    """A ``BatchSource`` from ``sample(key_t, t) -> batch`` (e.g. a synthetic task)."""
    if not callable(sample):
        raise TypeError(f"`sample` must be callable, got {type(sample).__name__}")
    return BatchSource(None, lambda data, key, t: sample(key, t))


def fixed_batches(batches: Any) -> BatchSource:
    """A ``BatchSource`` cycling through a stack of batches (leading axis ``num_batches``)."""
    n = leading_axis_length("batches", batches, "batch-index")
    if n == 0:
        raise ValueError("`batches` must hold at least one batch, got 0")

    def sample(data, key, t):
        return jax.tree_util.tree_map(lambda a: a[t % n], data)

    sample.needs_key = False  # train_steps may run it without a key
    return BatchSource(batches, sample)


def shuffled_batches(dataset: Any, batch_size: int) -> BatchSource:
    """Minibatches of ``batch_size`` examples from epochs of a shuffled data set.

    Epoch ``e = t // (n // batch_size)`` uses the permutation ``permutation(fold_in(key, e))``
    of the ``n`` examples (a partial last batch is dropped), where ``key`` is the run's key
    given to ``fit`` or ``train_steps``; so batch t is a pure function of ``(key, t)``.

    Arguments:
        dataset: a pytree of arrays with a leading example axis ``n``, e.g. ``(x, y)``.
        batch_size: examples per batch, ``<= n``.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    n = leading_axis_length("dataset", dataset, "example")
    if batch_size > n:
        raise ValueError(f"`batch_size` must be <= the {n} examples of `dataset`, got {batch_size}")
    per_epoch = n // batch_size

    def sample(data, key, t):
        # `key` here is fold_in(run_key, t); the epoch key must not depend on t within an
        # epoch, so it is taken from the run key carried in `data`.
        run_key, arrays = data
        epoch, index = t // per_epoch, t % per_epoch
        perm = jax.random.permutation(jax.random.fold_in(run_key, epoch), n)
        rows = jax.lax.dynamic_slice_in_dim(perm, index * batch_size, batch_size)
        return jax.tree_util.tree_map(lambda a: jnp.take(a, rows, axis=0), arrays)

    return BatchSource(_NeedsRunKey(dataset), sample)


class _NeedsRunKey(NamedTuple):
    """Marks ``BatchSource.data`` that ``train_steps`` pairs with the run key."""

    arrays: Any


# --------------------------------------------------------------------------- monitors


def param_grad_norms(params: Any, batch: Any, grads: Any) -> dict[str, jax.Array]:
    """A monitor: ``‖∂L/∂leaf‖`` for every parameter leaf, keyed ``"grad_norm" + path``,
    and its natural log keyed ``"log_grad_norm" + path``.

    Each leaf gives one norm (a stacked ``MLPParams.hidden.W`` gives one for all its
    layers; ``mlp_layer_monitor`` splits it per layer). Example keys:
    ``"grad_norm.readout.W"``, ``"log_grad_norm.readout.W"``. The norms are
    ``jaxgrad.analysis.gradient_flow.scaled_norm``s: entries of 1e-30 or 1e30 give their
    norm, not 0 or inf; a gradient of exactly 0 gives 0 and log-norm ``-inf``.
    """
    del params, batch
    flat, _ = jax.tree_util.tree_flatten_with_path(grads)
    out = {}
    for path, g in flat:
        norm, log_norm = scaled_norm(g)
        out["grad_norm" + jax.tree_util.keystr(path)] = norm
        out["log_grad_norm" + jax.tree_util.keystr(path)] = log_norm
    return out


def mlp_layer_monitor(params: Any, batch: Any, grads: Any) -> dict[str, jax.Array]:
    """A monitor for ``MLPParams``: per-layer ``‖∂L/∂W_l‖_F`` and ``‖∂L/∂b_l‖``, ``(depth,)``.

    Read from the gradient the step has already computed, so it costs a few reductions.
    Keys ``layer_weight_grad_norms`` and ``layer_bias_grad_norms`` (layer 1 first), and
    their natural logs ``log_layer_weight_grad_norms`` and ``log_layer_bias_grad_norms``
    (``scaled_norm``s, as in ``jaxgrad.mlp_gradient_flow``: no underflow to 0 or
    overflow to inf while the gradient itself is finite; ``-inf`` for a zero gradient).
    """
    del params, batch
    if not hasattr(grads, "hidden") or not hasattr(grads, "first"):
        raise TypeError(f"`grads` must be an MLPParams gradient, got {type(grads).__name__}")
    W, b = mlp_layer_grad_norms(grads)
    return {
        "layer_weight_grad_norms": W.norm, "layer_bias_grad_norms": b.norm,
        "log_layer_weight_grad_norms": W.log_norm, "log_layer_bias_grad_norms": b.log_norm,
    }


def combine_monitors(*monitors: Monitor) -> Monitor:
    """One monitor whose dict is the union of the given monitors' dicts."""
    for i, m in enumerate(monitors):
        if not callable(m):
            raise TypeError(f"`monitors[{i}]` must be callable, got {type(m).__name__}")

    def monitor(params, batch, grads):
        out: dict[str, jax.Array] = {}
        for m in monitors:
            part = dict(m(params, batch, grads))
            clash = set(part) & set(out)
            if clash:
                raise ValueError(f"monitors repeat the keys {sorted(clash)}")
            out.update(part)
        return out

    return monitor


# --------------------------------------------------------------------------- checkpoints


def _leaf_signature(tree: Any) -> list[list]:
    return [[list(np.shape(a)), str(np.asarray(a).dtype if not hasattr(a, "dtype") else a.dtype)]
            for a in jax.tree_util.tree_leaves(tree)]


def _leaf_names(state: TrainState) -> list[str]:
    """``params[0]``, ``opt_state[0].mu``, ... for every leaf of ``(params, opt_state)``."""
    return [f"{part}{jax.tree_util.keystr(path)}"
            for part, tree in (("params", state.params), ("opt_state", state.opt_state))
            for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def checkpoint_fingerprint(
    state: TrainState, key: jax.Array, config: Any = None, *,
    components: Mapping[str, Any] | None = None,
) -> dict:
    """What a checkpoint must agree on to be resumed: the run's definition, shapes, key, config.

    Arguments:
        state: the run's initial ``TrainState`` (its structure, leaf shapes and dtypes).
        key: the run's PRNG key (the batches depend on it).
        config: any JSON-able description of the run the user gives (model sizes,
            learning rate, ...).
        components: the objects that define the run, by name (``fit`` passes
            ``loss_fn``, ``optimizer``, ``batches``, ``regularizer``,
            ``regularizer_weight`` and ``monitor``). Each is reduced to a SHA-256 of a
            deterministic description: a function by its bytecode, constants, defaults,
            closure values and the module globals it reads; an optax optimiser by its
            ``init``/``update`` functions and the hyper-parameters in their closures; a
            ``functools.partial`` by its function and arguments; arrays by their bytes.

    Returns:
        a JSON-able dict with a ``"hash"`` over all of it; ``"unidentified"`` lists the
        objects (by where they were found) that could only be described by their type,
        so two different runs might share the fingerprint: ``load_checkpoint`` refuses
        to resume such a run unless ``config`` is given.
    """
    run, unidentified = {}, []
    for name, obj in (components or {}).items():
        identity = identify(obj, f"`{name}`")
        run[name] = identity.digest
        unidentified += identity.unidentified
    payload = {
        "structure": str(jax.tree_util.tree_structure((state.params, state.opt_state))),
        "leaves": _leaf_signature((state.params, state.opt_state)),
        "key": np.asarray(jax.random.key_data(key)).tolist(),
        "config": json.loads(json.dumps(config, sort_keys=True, default=str)),
        "run": run,
        "python": python_version() if run else None,
        "unidentified": unidentified,
    }
    payload["hash"] = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return payload


def save_checkpoint(
    path: str | os.PathLike, state: TrainState, metrics: Mapping[str, np.ndarray],
    fingerprint: dict,
) -> Path:
    """Write ``state``, the ``metrics`` so far and the ``fingerprint`` to one npz, atomically.

    The file is written to a temporary name in the same folder and renamed into place
    (``os.replace``), so a checkpoint on disk is always complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for i, leaf in enumerate(jax.tree_util.tree_leaves((state.params, state.opt_state))):
        arrays[f"leaf_{i:05d}"] = np.asarray(leaf)
    arrays["step"] = np.asarray(state.step)
    for name, value in metrics.items():
        arrays[f"metric:{name}"] = np.asarray(value)
    arrays["fingerprint"] = np.asarray(json.dumps(fingerprint, sort_keys=True))
    write_atomic(path, lambda fh: np.savez(fh, **arrays))
    return path


#: What reading a damaged or foreign npz raises (a truncated zip, a missing member, ...).
_UNREADABLE = (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, TypeError,
               zlib.error)


def load_checkpoint(
    path: str | os.PathLike, like: TrainState, fingerprint: dict
) -> tuple[TrainState, dict[str, np.ndarray]]:
    """Read a checkpoint written by ``save_checkpoint`` for the same configuration.

    Arguments:
        path: the npz file.
        like: a ``TrainState`` of the run (its structure is used to rebuild the pytrees;
            every stored leaf must have its leaf's shape and dtype).
        fingerprint: ``checkpoint_fingerprint`` of the run; it must match the stored one.

    Returns:
        ``(state, metrics)``.

    Raises:
        ValueError: the file is not a readable checkpoint (damaged, truncated, foreign;
            the message names the file); it belongs to another run (the message names
            what differs: parameter structure/shapes, key, config, or one of the run's
            components such as ``optimizer`` or ``loss_fn``); a stored leaf has another
            shape or dtype than the run's (named by its path, e.g. ``opt_state[0].mu``);
            or the run could not be identified (``fingerprint["unidentified"]``) and no
            ``config`` vouches for it.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = json.loads(str(data["fingerprint"]))
            contents = {name: data[name] for name in data.files}
        if not isinstance(stored, dict):
            raise ValueError(f"its fingerprint is a {type(stored).__name__}, not a dict")
        step = contents["step"]
        if step.shape != () or not np.issubdtype(step.dtype, np.integer) or int(step) < 0:
            raise ValueError(f"its step is {step!r}, not a non-negative integer")
    except _UNREADABLE as err:
        raise ValueError(
            f"checkpoint {path} is not a readable jaxgrad checkpoint "
            f"({type(err).__name__}: {err}); delete it or use another `checkpoint_dir`"
        ) from err
    if stored.get("hash") != fingerprint["hash"]:
        keys = ("structure", "leaves", "key", "config", "python", "unidentified")
        differ = [k for k in keys if stored.get(k) != fingerprint.get(k)]
        stored_run, run = stored.get("run") or {}, fingerprint.get("run") or {}
        differ += [f"run.{k}" for k in sorted(set(stored_run) | set(run))
                   if stored_run.get(k) != run.get(k)]
        detail = "; ".join(_difference(k, stored, fingerprint) for k in differ)
        detail = detail or "its fingerprint hash differs"
        raise ValueError(
            f"checkpoint {path} was written for another configuration ({detail}); "
            "use another `checkpoint_dir` or delete it"
        )
    if fingerprint.get("unidentified") and fingerprint.get("config") is None:
        raise ValueError(
            f"checkpoint {path} cannot be resumed safely: this run could not be fully "
            f"identified ({'; '.join(fingerprint['unidentified'][:5])}: known only by "
            "their type), so a changed run could look the same; pass `config=` describing "
            "the run (e.g. its hyper-parameters) when writing and resuming, or delete it"
        )
    names = _leaf_names(like)
    like_leaves = jax.tree_util.tree_leaves((like.params, like.opt_state))
    stored_leaves = sorted(k for k in contents if k.startswith("leaf_"))
    if len(stored_leaves) != len(like_leaves):
        raise ValueError(
            f"checkpoint {path} holds {len(stored_leaves)} parameter/optimiser leaves, "
            f"this run has {len(like_leaves)}"
        )
    leaves = []
    for i, (name, ref) in enumerate(zip(names, like_leaves, strict=True)):
        value = contents.get(f"leaf_{i:05d}")
        if value is None:
            raise ValueError(f"checkpoint {path} lacks the leaf `{name}` (leaf_{i:05d})")
        want_shape, want_dtype = tuple(np.shape(ref)), np.dtype(jnp.asarray(ref).dtype)
        if value.shape != want_shape or value.dtype != want_dtype:
            raise ValueError(
                f"checkpoint {path}: leaf `{name}` has shape {value.shape} and dtype "
                f"{value.dtype}, this run's has shape {want_shape} and dtype {want_dtype}"
            )
        leaves.append(jnp.asarray(value))
    treedef = jax.tree_util.tree_structure((like.params, like.opt_state))
    params, opt_state = jax.tree_util.tree_unflatten(treedef, leaves)
    done = int(contents["step"])
    state = TrainState(params, opt_state, jnp.asarray(done, jnp.int32))
    metrics = {k.split(":", 1)[1]: v for k, v in contents.items() if k.startswith("metric:")}
    for name, value in metrics.items():
        if value.shape[:1] != (done,):
            raise ValueError(
                f"checkpoint {path}: metric `{name}` has shape {value.shape}, expected a "
                f"leading axis of the {done} steps done"
            )
    return state, metrics


def _difference(key: str, stored: dict, fingerprint: dict) -> str:
    if not key.startswith("run."):
        return (f"{key}: checkpoint has {_short(stored.get(key))}, "
                f"this run has {_short(fingerprint.get(key))}")
    name = key[4:]
    if name not in (stored.get("run") or {}):
        return f"the checkpoint does not record `{name}` (written by an older jaxgrad?)"
    if name not in (fingerprint.get("run") or {}):
        return (f"the checkpoint records `{name}`, this fingerprint does not (pass it in "
                "`components=` of checkpoint_fingerprint)")
    return f"`{name}` differs (code, constants, closure values, bound arguments or settings)"


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- the loop


def _check_optimizer(optimizer: Any) -> None:
    check_optimizer(optimizer)


def _metrics_dict(m: StepMetrics) -> dict[str, np.ndarray]:
    out = {
        "loss": m.loss, "objective": m.objective, "regularizer": m.regularizer,
        "grad_norm": m.grad_norm, "finite": m.finite,
    }
    out.update(m.monitor)
    return {k: np.asarray(v) for k, v in out.items()}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _no_batch(data: Any, key: Any, t: Any) -> None:
    """The batch of a full-batch or data-free objective: ``None`` at every step."""
    del data, key, t


_no_batch.needs_key = False


def _batch_source(batches: Any) -> BatchSource:
    if batches is None:
        return BatchSource(None, _no_batch)
    if isinstance(batches, BatchSource):
        return batches
    if callable(batches):
        return sampled_batches(batches)
    raise TypeError(
        f"`batches` must be a BatchSource, a function (key, step) -> batch or None, "
        f"got {type(batches).__name__}"
    )


def train_steps(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    state: TrainState,
    batches: BatchSource | Callable[[jax.Array, jax.Array], Any] | None,
    *,
    num_steps: int,
    key: jax.Array | None = None,
    regularizer: Regularizer | None = None,
    regularizer_weight: float | jax.Array = 1.0,
    monitor: Monitor | None = None,
    has_aux: bool = False,
) -> tuple[TrainState, StepMetrics]:
    """``num_steps`` optax updates in one ``lax.scan``; pure, so ``jax.jit`` or ``jax.vmap`` it.

    Step t (counted from ``state.step``, so a run split into calls draws the same batches)
    applies ``train_step`` to the batch ``sample(data, fold_in(key, t), t)`` of
    ``batches``. At the first step whose objective, gradient or new parameters are not
    finite nothing more is applied: the state keeps its last finite values and
    ``metrics.finite`` is ``False`` from that step on. Nothing syncs with the host, so
    seeds, learning rates or whole ensembles train at once under ``jax.vmap``;
    ``jaxgrad.fit`` is the host driver built on it (checkpoints, resume,
    ``TrainingDiverged``).

    Arguments:
        loss_fn: ``loss_fn(params, batch) -> scalar``.
        optimizer: an optax ``GradientTransformation``.
        state: ``TrainState`` from ``init_train_state`` (or a previous call).
        batches: a ``BatchSource`` (``shuffled_batches``, ``fixed_batches``,
            ``sampled_batches``), a function ``sample(key_t, t) -> batch``, or ``None``
            for a full-batch or data-free objective (``loss_fn(params, None)``).
        num_steps: number of steps (the scan's length, a Python int).
        key: the run's PRNG key; step t uses ``fold_in(key, t)``. ``fixed_batches`` and
            ``None`` run without one.
        regularizer, regularizer_weight, monitor, has_aux: as for ``train_step``.

    Returns:
        ``(state, metrics)``: the final ``TrainState`` and ``StepMetrics`` whose fields have
        a leading axis of length ``num_steps``.

    Example:
        >>> loss_fn = lambda w, batch: jnp.mean((batch[0] @ w - batch[1]) ** 2)
        >>> def sample(key, t):                        # batch t from fold_in(key, t)
        ...     x = jax.random.normal(key, (16, 3))
        ...     return x, x @ jnp.array([1.0, -2.0, 0.5])
        >>> opt = optax.adam(1e-2)
        >>> run = jax.jit(lambda p, k: train_steps(
        ...     loss_fn, opt, init_train_state(p, opt), sample, num_steps=100, key=k))
        >>> keys = jax.random.split(jax.random.key(0), 4)
        >>> state, metrics = jax.vmap(run, in_axes=(None, 0))(jnp.zeros(3), keys)  # per seed
        >>> metrics.loss.shape
        (4, 100)
    """
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable, got {type(loss_fn).__name__}")
    _check_optimizer(optimizer)
    if not isinstance(state, TrainState):
        raise TypeError(f"`state` must be a TrainState, got {type(state).__name__}")
    num_steps = check_positive_int("num_steps", num_steps)
    if regularizer is not None and not callable(regularizer):
        raise TypeError(f"`regularizer` must be callable, got {type(regularizer).__name__}")
    if monitor is not None and not callable(monitor):
        raise TypeError(f"`monitor` must be callable, got {type(monitor).__name__}")
    source = _batch_source(batches)
    if key is None:
        if getattr(source.sample, "needs_key", True):
            raise TypeError("`key` is required: these `batches` draw from fold_in(key, t) "
                            "(only `fixed_batches` and `None` run without one)")
    else:
        key = typed_key("key", key)
    data = source.data
    if isinstance(data, _NeedsRunKey):
        data = (key, data.arrays)

    def body(carry, _):
        state, ok = carry
        t = state.step
        batch = source.sample(data, None if key is None else jax.random.fold_in(key, t), t)
        new_state, m = train_step(
            loss_fn, optimizer, state, batch, regularizer=regularizer,
            regularizer_weight=regularizer_weight, monitor=monitor, has_aux=has_aux,
        )
        # After a non-finite step nothing more is applied.
        ok_now = ok & m.finite
        new_state = jax.tree_util.tree_map(lambda a, b: jnp.where(ok_now, a, b), new_state, state)
        return (new_state._replace(step=t + 1), ok_now), m._replace(finite=ok_now)

    (state, _), metrics = jax.lax.scan(body, (state, jnp.asarray(True)), None, length=num_steps)
    return state, metrics


def train_until(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    state: TrainState,
    batch: Any = None,
    *,
    stop: Callable[[jax.Array], jax.Array],
    max_steps: int | jax.Array,
    regularizer: Regularizer | None = None,
    regularizer_weight: float | jax.Array = 1.0,
) -> tuple[TrainState, StepMetrics, jax.Array]:
    """Optax updates on one ``batch`` in a ``lax.while_loop``, until ``stop`` or ``max_steps``.

    Each iteration evaluates the objective and its gradient at the current parameters
    (``train_step``); when ``stop(objective)`` holds there, or the step is not finite, the
    loop ends without applying that update. Pure, so ``jax.jit`` or ``jax.vmap`` it: under
    ``jax.vmap`` every member stops on its own (a stopped member's state no longer changes)
    and the loop runs until the last one stops. This is the minimiser behind
    ``jaxgrad.analysis.slow_points`` (Adam on ``q`` from every start at once).

    Arguments:
        loss_fn: ``loss_fn(params, batch) -> scalar``.
        optimizer: an optax ``GradientTransformation``.
        state: ``TrainState`` from ``init_train_state``.
        batch: what ``loss_fn`` takes (``None`` for a data-free objective).
        stop: ``stop(objective) -> bool`` on the objective at the current parameters.
        max_steps: the most iterations (an int >= 1, or a traced integer).
        regularizer, regularizer_weight: as for ``train_step``.

    Returns:
        ``(state, metrics, iterations)``: the final ``TrainState`` (``state.step`` counts
        the updates applied), the ``StepMetrics`` of the last iteration (its ``objective`` is
        that of the final parameters when the loop stopped on ``stop``) and the number of
        iterations run (``≤ max_steps``; one more than the updates when ``stop`` ended it).

    Example:
        >>> opt = optax.sgd(0.1)
        >>> loss = lambda w, _: jnp.sum(w ** 2)
        >>> run = lambda w: train_until(loss, opt, init_train_state(w, opt),
        ...                             stop=lambda q: q < 1e-6, max_steps=500)
        >>> state, m, its = jax.vmap(run)(jnp.array([[1.0], [1e-4]]))
        >>> [int(k) for k in its], bool(jnp.all(m.objective < 1e-6))
        ([32, 1], True)
    """
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable, got {type(loss_fn).__name__}")
    _check_optimizer(optimizer)
    if not isinstance(state, TrainState):
        raise TypeError(f"`state` must be a TrainState, got {type(state).__name__}")
    if not callable(stop):
        raise TypeError(f"`stop` must be callable, got {type(stop).__name__}")
    if not isinstance(max_steps, jax.Array):  # a traced count compiles once for every value
        max_steps = check_positive_int("max_steps", max_steps)

    def one(state):
        return train_step(loss_fn, optimizer, state, batch, regularizer=regularizer,
                          regularizer_weight=regularizer_weight)

    _, metrics0 = jax.eval_shape(one, state)
    empty = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), metrics0)

    def cond(carry):
        _, _, i, done = carry
        return (i < max_steps) & ~done

    def body(carry):
        state, _, i, _ = carry
        new_state, m = one(state)
        done = jnp.asarray(stop(m.objective), bool) | ~m.finite
        state = jax.tree_util.tree_map(lambda a, b: jnp.where(done, b, a), new_state, state)
        return state, m, i + 1, done

    init = (state, empty, jnp.asarray(0, jnp.int32), jnp.asarray(False))
    state, metrics, iterations, _ = jax.lax.while_loop(cond, body, init)
    return state, metrics, iterations


@functools.partial(
    jax.jit,
    static_argnames=("loss_fn", "optimizer", "regularizer", "monitor", "sample", "length"),
)
def _run_scan(state, key, data, regularizer_weight, *, loss_fn, optimizer, regularizer,
              monitor, sample, length):
    """``train_steps`` compiled once per set of functions and length (``data`` and the
    weight are arguments, not constants baked into the program)."""
    return train_steps(
        loss_fn, optimizer, state, BatchSource(data, sample), num_steps=length, key=key,
        regularizer=regularizer, regularizer_weight=regularizer_weight, monitor=monitor,
    )


def fit(
    loss_fn: LossFn,
    params: Any,
    optimizer: optax.GradientTransformation,
    batches: BatchSource | Callable[[jax.Array, jax.Array], Any] | None,
    *,
    num_steps: int,
    key: jax.Array,
    steps_per_scan: int = 100,
    regularizer: Regularizer | None = None,
    regularizer_weight: float = 1.0,
    monitor: Monitor | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    config: Any = None,
) -> TrainResult:
    """Train ``params`` for ``num_steps`` optax steps: ``train_steps`` driven from the host,
    ``steps_per_scan`` steps per compiled scan, with checkpoints and resume.

    Arguments:
        loss_fn: ``loss_fn(params, batch) -> scalar``.
        params: initial parameters (any pytree).
        optimizer: an optax ``GradientTransformation``.
        batches: a ``BatchSource`` (``shuffled_batches``, ``fixed_batches``,
            ``sampled_batches``), a function ``sample(key_t, t) -> batch``, or ``None``
            (``loss_fn(params, None)``, a full-batch objective).
        num_steps: total number of steps (counting steps done before a resume).
        key: the run's PRNG key; step t uses ``fold_in(key, t)``.
        steps_per_scan: steps per ``lax.scan`` (one host sync each); a last, shorter
            scan covers the remainder.
        regularizer, regularizer_weight: an extra term ``λ Ω(params, batch)`` added to the
            loss; ``Ω`` is recorded under ``"regularizer"``.
        monitor: ``monitor(params, batch, grads) -> {name: array}`` recorded each step
            (``mlp_layer_monitor``, ``param_grad_norms``, or your own, e.g. per-timestep
            ``‖∂L/∂x_t‖`` from ``jaxgrad.analysis.recurrent_gradient_flow``).
        checkpoint_dir: a folder for ``checkpoint.npz``; if it holds a checkpoint of the
            same run the run resumes from it, one of another run is refused with
            ``ValueError``. "The same run" means the same ``loss_fn``, ``optimizer``,
            ``batches``, ``regularizer``, ``regularizer_weight``, ``monitor`` (compared by
            code, constants, closure values, bound arguments and hyper-parameters: see
            ``checkpoint_fingerprint``), parameter shapes and dtypes, ``key`` and
            ``config``. A run holding an object that cannot be identified (known only by
            its type; a warning names it) is resumed only when ``config`` is given.
        checkpoint_every: steps between checkpoints, a multiple of ``steps_per_scan``
            (default: ``steps_per_scan``); the final state is always written.
        config: a JSON-able description of the run stored in the checkpoint fingerprint
            (e.g. the experiment's config dict): resuming with a different one is refused;
            giving one also vouches for the parts of the run that cannot be identified.

    Returns:
        ``TrainResult`` with host ``metrics`` over all ``num_steps`` steps.

    Raises:
        TrainingDiverged: at the first step with a non-finite loss or gradient; the last
            good checkpoint stays on disk and the exception carries the state before it.

    Example:
        >>> x = jax.random.normal(jax.random.key(1), (256, 3))
        >>> y = x @ jnp.array([1.0, -2.0, 0.5])
        >>> loss_fn = lambda w, batch: jnp.mean((batch[0] @ w - batch[1]) ** 2)
        >>> result = fit(loss_fn, jnp.zeros(3), optax.adam(1e-1),
        ...              shuffled_batches((x, y), 64), num_steps=200, key=jax.random.key(0))
        >>> result.metrics["loss"].shape, bool(result.metrics["loss"][-1] < 1e-3)
        ((200,), True)
    """
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable, got {type(loss_fn).__name__}")
    _check_optimizer(optimizer)
    num_steps = check_positive_int("num_steps", num_steps)
    steps_per_scan = check_positive_int("steps_per_scan", steps_per_scan)
    if checkpoint_every is None:
        checkpoint_every = steps_per_scan
    checkpoint_every = check_positive_int("checkpoint_every", checkpoint_every)
    if checkpoint_every % steps_per_scan:
        raise ValueError(
            f"`checkpoint_every` must be a multiple of `steps_per_scan`={steps_per_scan}, "
            f"got {checkpoint_every}"
        )
    check_positive_float("regularizer_weight", regularizer_weight, allow_zero=True)
    if regularizer is not None and not callable(regularizer):
        raise TypeError(f"`regularizer` must be callable, got {type(regularizer).__name__}")
    if monitor is not None and not callable(monitor):
        raise TypeError(f"`monitor` must be callable, got {type(monitor).__name__}")
    key = typed_key("key", key)
    source = _batch_source(batches)
    data = source.data
    if isinstance(data, _NeedsRunKey):
        data = (key, data.arrays)

    state = init_train_state(params, optimizer)
    history: list[dict[str, np.ndarray]] = []
    ckpt_path = fingerprint = None
    if checkpoint_dir is not None:
        components = {"loss_fn": loss_fn, "optimizer": optimizer, "batches": source,
                      "regularizer": regularizer, "regularizer_weight": regularizer_weight,
                      "monitor": monitor}
        fingerprint = checkpoint_fingerprint(state, key, config, components=components)
        if fingerprint["unidentified"] and config is None:
            warnings.warn(
                "fit: parts of this run are known only by their type ("
                + "; ".join(fingerprint["unidentified"][:5])
                + "), so resuming from its checkpoint will be refused; pass `config=` "
                "describing the run to allow it", stacklevel=2)
        ckpt_path = Path(checkpoint_dir) / CHECKPOINT_FILE
        if ckpt_path.exists():
            state, old = load_checkpoint(ckpt_path, state, fingerprint)
            if old:
                history.append(old)
    done = int(state.step)
    if done > num_steps:
        raise ValueError(
            f"the checkpoint in `checkpoint_dir` is at step {done}, past `num_steps`={num_steps}"
        )

    last_saved = ckpt_path if ckpt_path is not None and ckpt_path.exists() else None
    while done < num_steps:
        length = min(steps_per_scan, num_steps - done)
        state, ms = _run_scan(
            state, key, data, jnp.asarray(regularizer_weight), loss_fn=loss_fn,
            optimizer=optimizer, regularizer=regularizer, monitor=monitor,
            sample=source.sample, length=length,
        )
        part = _metrics_dict(ms)
        if not part["finite"].all():
            bad = int(np.argmin(part["finite"]))
            part = {k: v[: bad + 1] for k, v in part.items()}
            history.append(part)
            good = state._replace(step=jnp.asarray(done + bad, jnp.int32))
            raise TrainingDiverged(done + bad, good, _concat(history), last_saved)
        history.append(part)
        done += length
        if ckpt_path is not None and (done % checkpoint_every == 0 or done == num_steps):
            metrics = _concat(history)
            history = [metrics]
            last_saved = save_checkpoint(ckpt_path, state, metrics, fingerprint)
    metrics = _concat(history)
    return TrainResult(state.params, state.opt_state, done, metrics, last_saved)
