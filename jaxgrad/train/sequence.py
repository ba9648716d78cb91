"""Recurrent cells with a linear readout, wired to the synthetic tasks and the loop.

A ``SequenceModel`` runs a cell (any cell object of ``jaxgrad.models.cells``: the Pascanu
RNN with tanh or sigmoid, an LSTM, a GRU, the Elman tanh RNN written on its post-activation
state ``h' = tanh(W_rec h + W_in u + b)`` as in Pascanu et al.'s code, the rate network, a
user's Flax module through ``NnxCell``, or a user's own ``Cell``) over a ``(T, M)`` input
from the cell's zero state and reads out ``y = W_out φ(x) + b_out`` from the observed
features ``φ(x) = cell.observe(x)`` (``σ(x)`` for the Pascanu RNN, whose state is the
pre-activation, as in Pascanu et al.'s code ``y = W_hy h_T``; ``h`` for LSTM, GRU and
``"elman_tanh"``), after the last step or at every step as the task asks. The names in
``CELLS`` (``"rnn_tanh"``, ``"lstm"``, ...) are shortcuts for cell objects.
``sequence_loss``, ``sequence_omega`` and ``state_grad_monitor`` give the three callables
``jaxgrad.fit`` takes: the task loss, Pascanu's Ω (batch mean of the per-sequence Ω) and
per-timestep ``‖∂L/∂x_t‖`` recorded every step.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._validation import (
    check_array,
    check_choice,
    check_optimizer,
    check_positive_float,
    check_positive_int,
)
from ..analysis.gradient_flow import trajectory_state_grads
from ..models.cells import CELLS as CELLS
from ..models.cells import INIT_SCHEMES as INIT_SCHEMES
from ..models.cells import get_cell
from ..systems import flat_step
from .regularizers import REDUCTIONS, pascanu_omega_terms
from .tasks import Task


class SequenceParams(NamedTuple):
    """``cell`` parameters (what the cell's ``init`` returns: ``PascanuParams``,
    ``LSTMParams``, ...), readout ``W_out`` ``(K, N)`` and ``b_out`` ``(K,)``."""

    cell: Any
    W_out: jax.Array
    b_out: jax.Array


@dataclasses.dataclass(frozen=True)
class SequenceModel:
    """A recurrent cell and a linear readout (hashable, so it can be a jit static argument).

    Attributes:
        cell: a cell object (``jaxgrad.models.cells``: ``init``, ``step``, ``zero_state``,
            ``observe``) or a name in ``CELLS``, which is replaced by its cell object.
        num_units: state size N (per component for the LSTM's ``(h, c)``).
        num_inputs, num_outputs: M and K.
        readout: ``"last"`` (output after the final step) or ``"all"`` (every step).

    Example:
        >>> task = jaxgrad.get_task("adding_problem")
        >>> model = SequenceModel.for_task("lstm", 8, task)
        >>> model.cell
        LSTMCell()
        >>> params = model.init(jax.random.key(0))
        >>> y = sequence_outputs(model, params, task.sample(jax.random.key(1), 4, 20).inputs)
        >>> y.shape   # (batch, outputs) with readout="last"
        (4, 1)
        >>> from jaxgrad.models.cells import PascanuCell
        >>> SequenceModel(PascanuCell("tanh"), 8, 2, 1) == SequenceModel("rnn_tanh", 8, 2, 1)
        True
    """

    cell: Any
    num_units: int
    num_inputs: int
    num_outputs: int
    readout: str = "last"

    def __post_init__(self):
        object.__setattr__(self, "cell", get_cell(self.cell, "cell"))
        check_positive_int("num_units", self.num_units)
        check_positive_int("num_inputs", self.num_inputs)
        check_positive_int("num_outputs", self.num_outputs)
        check_choice("readout", self.readout, ("last", "all"))

    @classmethod
    def for_task(cls, cell: Any, num_units: int, task: Task) -> SequenceModel:
        """The model with ``task``'s input/output sizes and readout."""
        if not isinstance(task, Task):
            raise TypeError(f"`task` must be a Task, got {type(task).__name__}")
        return cls(cell, num_units, task.num_inputs, task.num_outputs, task.readout)

    def step(self, x: Any, u: jax.Array, cell_params: Any) -> Any:
        """The cell's ``step(x, u, params)`` for one example."""
        return self.cell.step(x, u, cell_params)

    def initial_state(self, dtype: Any = jnp.float32) -> Any:
        """The cell's zero state (``LSTMState(h=0, c=0)`` for the LSTM)."""
        return self.cell.zero_state(self.num_units, dtype)

    def observe(self, x: Any) -> jax.Array:
        """Features the readout sees: ``σ(x)`` (Pascanu RNN), ``h`` (LSTM, GRU, Elman)."""
        return self.cell.observe(x)

    def init(
        self,
        key: jax.Array,
        *,
        output_std: float = 1.0,
        scheme: str = "default",
        dtype: Any = jnp.float32,
        **cell_options: Any,
    ) -> SequenceParams:
        """Random parameters: the cell's ``init(key, N, M, dtype=dtype, **cell_options)`` and
        the readout.

        The built-in cells take ``recurrent_scale``, ``input_std``, ``forget_bias``,
        ``scheme`` and ``recurrent_nonzeros`` (each uses those that apply to it).
        ``scheme="default"``. Pascanu RNN and ``"elman_tanh"``: ``W_rec`` N(0, 1/N) rescaled
        to spectral radius ``recurrent_scale`` (``init_pascanu``); LSTM/GRU: recurrent
        weights N(0, recurrent_scale²/N), LSTM forget-gate bias ``forget_bias``, GRU
        update-gate bias ``forget_bias``. Inputs N(0, input_std²/M); readout
        N(0, output_std²/N), bias 0.

        ``scheme="smart_tanh"`` (tanh RNNs only): Pascanu et al.'s (2013, section 4)
        "smart" initialisation as in their code: ``W_in`` and ``W_out`` N(0, 0.01²) (not
        scaled by the fan-in; ``input_std``/``output_std`` ignored), ``W_rec`` Gaussian
        with ``recurrent_nonzeros`` non-zero outgoing weights per unit (15 in the paper)
        rescaled to spectral radius ``recurrent_scale`` (0.95 in the paper), biases 0.
        ``scheme`` is passed to the cell only when it is not ``"default"``, so a user's
        cell need not take it.

        Example:
            >>> task = jaxgrad.get_task("temporal_order")
            >>> model = SequenceModel.for_task("elman_tanh", 50, task)
            >>> p = model.init(jax.random.key(0), scheme="smart_tanh", recurrent_scale=0.95)
            >>> round(float(jnp.max(jnp.abs(jnp.linalg.eigvals(p.cell.W_rec)))), 3)
            0.95
        """
        check_positive_float("output_std", output_std)
        if not isinstance(scheme, str):
            raise TypeError(f"`scheme` must be a string, got {type(scheme).__name__}")
        if scheme != "default":
            cell_options["scheme"] = scheme
        k_cell, k_out = jax.random.split(key)
        n, m = self.num_units, self.num_inputs
        cell = self.cell.init(k_cell, n, m, dtype=dtype, **cell_options)
        if scheme == "smart_tanh":
            W_out = 0.01 * jax.random.normal(k_out, (self.num_outputs, n), dtype)
            return SequenceParams(cell, W_out, jnp.zeros((self.num_outputs,), dtype))
        W_out = output_std * jax.random.normal(k_out, (self.num_outputs, n), dtype)
        W_out = W_out / jnp.sqrt(jnp.asarray(n, dtype))
        return SequenceParams(cell, W_out, jnp.zeros((self.num_outputs,), dtype))

    def outputs_from_states(self, params: SequenceParams, states: Any) -> jax.Array:
        """Readout of a trajectory ``(T, ...)`` of one sequence: ``(K,)`` or ``(T, K)``."""
        if self.readout == "last":
            last = jax.tree_util.tree_map(lambda a: a[-1], states)
            return params.W_out @ self.observe(last) + params.b_out
        features = jax.vmap(self.observe)(states)
        return features @ params.W_out.T + params.b_out[None]


def _check_inputs(model: SequenceModel, inputs: Any) -> jax.Array:
    inputs = check_array("inputs", inputs, ndim=3)
    if inputs.shape[-1] != model.num_inputs:
        raise ValueError(
            f"`inputs` must have shape (B, T, {model.num_inputs}) for this model, "
            f"got {inputs.shape}"
        )
    return inputs


def _trajectory(model: SequenceModel, params: SequenceParams, inputs: jax.Array) -> Any:
    def body(x, u):
        x = model.step(x, u, params.cell)
        return x, x

    _, states = jax.lax.scan(body, model.initial_state(inputs.dtype), inputs)
    return states


def sequence_outputs(model: SequenceModel, params: SequenceParams, inputs: Any) -> jax.Array:
    """Outputs for a batch ``inputs`` ``(B, T, M)``: ``(B, K)`` or ``(B, T, K)``.

    Raises:
        ValueError: ``inputs`` is not ``(B, T, num_inputs)``.
    """
    if not isinstance(model, SequenceModel):
        raise TypeError(f"`model` must be a SequenceModel, got {type(model).__name__}")
    inputs = _check_inputs(model, inputs)
    return jax.vmap(lambda u: model.outputs_from_states(params, _trajectory(model, params, u)))(
        inputs
    )


def _check_pair(model: Any, task: Any) -> None:
    if not isinstance(model, SequenceModel):
        raise TypeError(f"`model` must be a SequenceModel, got {type(model).__name__}")
    if not isinstance(task, Task):
        raise TypeError(f"`task` must be a Task, got {type(task).__name__}")
    if (model.num_inputs, model.num_outputs, model.readout) != (
        task.num_inputs, task.num_outputs, task.readout
    ):
        raise ValueError(
            f"`model` sizes (inputs {model.num_inputs}, outputs {model.num_outputs}, readout "
            f"{model.readout!r}) do not match task {task.name} (inputs {task.num_inputs}, "
            f"outputs {task.num_outputs}, readout {task.readout!r})"
        )


def sequence_loss(model: SequenceModel, task: Task):
    """``loss_fn(params, batch)`` for ``jaxgrad.fit``: ``task.loss`` of the outputs.

    ``batch`` is a ``TaskBatch`` (``inputs`` ``(B, T, M)``, ``targets``).
    """
    _check_pair(model, task)

    def loss_fn(params: SequenceParams, batch: Any) -> jax.Array:
        return task.loss(sequence_outputs(model, params, batch.inputs), batch.targets)

    return loss_fn


def _example_loss(model, task, params, targets):
    """``E(states)`` of one sequence (its share of the batch loss, up to the 1/B factor)."""

    def loss(states):
        out = model.outputs_from_states(params, states)
        return task.loss(out[None], targets[None])

    return loss


def sequence_omega(
    model: SequenceModel, task: Task, *, reduction: str = "mean", squared: bool = False
):
    """``regularizer(params, batch)``: Pascanu's Ω averaged over the batch's sequences.

    Each sequence's Ω uses its own ``∂E/∂x_{k+1}`` (ratios are scale-free, so this equals
    using the batch loss); ``reduction="mean"`` averages over time steps as Pascanu's code
    does (``"sum"`` is eq. 9 as printed); ``squared=True`` penalises the ratio of squared
    norms as their code does (see ``pascanu_omega_terms``). The gradient follows the paper
    (eq. 10), through the cell's ``omega_pullback`` where it has one: for ``"elman_tanh"``
    the Jacobian ``diag(1 − h_{k+1}²) W_rec`` is taken with ``h_{k+1}`` held fixed, as in
    their code, so Ω's gradient reaches ``W_rec`` only.

    Example:
        >>> task = jaxgrad.get_task("temporal_order")
        >>> model = SequenceModel.for_task("elman_tanh", 8, task)
        >>> params = model.init(jax.random.key(0))
        >>> batch = task.sample(jax.random.key(1), 4, 20)
        >>> omega = sequence_omega(model, task)
        >>> bool(omega(params, batch) >= 0)
        True
        >>> # in training: jaxgrad.fit(sequence_loss(model, task), params, opt, batches,
        >>> #     num_steps=100, key=key, regularizer=omega, regularizer_weight=2.0)
    """
    _check_pair(model, task)
    check_choice("reduction", reduction, REDUCTIONS)
    pullback = getattr(model.cell, "omega_pullback", None)

    def regularizer(params: SequenceParams, batch: Any) -> jax.Array:
        inputs = _check_inputs(model, batch.inputs)

        def one(u, y):
            return pascanu_omega_terms(
                model.step, model.initial_state(u.dtype), u,
                _example_loss(model, task, params, y), params=params.cell, reduction=reduction,
                squared=squared, pullback=pullback,
            ).omega

        return jnp.mean(jax.vmap(one)(inputs, batch.targets))

    return regularizer


def sequence_state_grad_norms(
    model: SequenceModel, task: Task, params: SequenceParams, batch: Any
) -> jax.Array:
    """``(T,)`` batch mean of ``‖∂E/∂x_t‖`` per sequence, t = 1..T (index T−1 is the last).

    ``E`` is one sequence's loss; the norm counts every path to the loss, as BPTT sees it,
    over the whole (flattened) state. Read ``[::-1]`` for ``‖∂L/∂x_{T−k}‖`` against k.
    Each norm is a ``scaled_norm`` (a gradient of 1e-30 per entry is not squared to 0).
    """
    _check_pair(model, task)
    inputs = _check_inputs(model, batch.inputs)

    def one(u, y):
        f, x0_flat, unravel = flat_step(
            functools.partial(model.step, cell_params=params.cell), model.initial_state(u.dtype)
        )
        return trajectory_state_grads(
            f, x0_flat, unravel, u, _example_loss(model, task, params, y)
        ).norms  # no underflow, at any scale

    return jnp.mean(jax.vmap(one)(inputs, batch.targets), axis=0)


def state_grad_monitor(model: SequenceModel, task: Task):
    """A ``monitor`` for ``jaxgrad.fit`` recording ``"state_grad_norms"`` ``(T,)``
    (``sequence_state_grad_norms`` on the step's batch) every step."""
    _check_pair(model, task)

    def monitor(params, batch, grads):
        del grads
        return {"state_grad_norms": sequence_state_grad_norms(model, task, params, batch)}

    return monitor


def vmap_optimizer(optimizer: Any) -> Any:
    """``optimizer`` applied independently to every slice along the leading axis of the
    parameters: train S replicas (seeds, settings) in one ``jaxgrad.fit`` call.

    Give ``train`` parameters stacked on a leading replica axis and a loss that sums the
    replicas' losses (their gradients are then independent); norm clipping inside
    ``optimizer`` then clips each replica's own global norm, not the norm across replicas.

    Example:
        >>> opt = vmap_optimizer(jaxgrad.train.with_clipping(optax.sgd(0.1), max_norm=1.0))
        >>> params = {"w": jnp.zeros((5, 3))}   # 5 replicas; for 5 seeds of a model:
        >>> # params = jax.vmap(model.init)(jax.random.split(key, 5))
        >>> grads = {"w": jnp.arange(15.0).reshape(5, 3)}
        >>> updates, _ = opt.update(grads, opt.init(params), params)
        >>> [round(float(n), 3) for n in jnp.linalg.norm(updates["w"], axis=1)]  # each clipped
        [0.1, 0.1, 0.1, 0.1, 0.1]
    """
    import optax

    check_optimizer(optimizer)

    def update(updates, state, params=None):
        if params is None:
            return jax.vmap(lambda g, s: optimizer.update(g, s))(updates, state)
        return jax.vmap(optimizer.update)(updates, state, params)

    return optax.GradientTransformation(jax.vmap(optimizer.init), update)
