"""Pascanu et al.'s synthetic long-term-dependency problems and Le et al.'s adding problem.

The generators follow Pascanu, Mikolov & Bengio (2013), "On the difficulty of training
recurrent neural networks", section 5 and appendix, as implemented in their released code
(which follows Hochreiter & Schmidhuber 1997 and Martens & Sutskever 2011); the adding
problem follows Le, Jaitly & Hinton (2015), "A simple way to initialize recurrent networks
of rectified linear units". Every generator takes an explicit ``key`` and a static
``length`` and returns a ``TaskBatch`` with ``inputs`` of shape ``(B, T, M)``.

=========================  ====  ===========  ==============================================
task                       M     outputs      target
=========================  ====  ===========  ==============================================
temporal_order             6     4 classes    order of the symbols at two early positions
temporal_order_3bit        6     8 classes    order of the symbols at three positions
addition                   2     1 value      (a + b) / 2 of the two marked values
multiplication             2     1 value      a · b of the two marked values
random_permutation         100   100 classes  the first symbol (0 or 1), at the end
noiseless_memorization     V+2   V+1 classes  a pattern of P symbols, reproduced after delay
adding_problem (Le 2015)   2     1 value      a + b of the two marked values
=========================  ====  ===========  ==============================================

Readouts: ``"last"`` tasks are scored on the model's output after the final step,
``(B, num_outputs)``; noiseless memorization on the output at every step,
``(B, T, num_outputs)``. The error rule of the paper: a classification error is a wrong
argmax (for memorization, any wrong step makes the sequence wrong); for the real-valued
tasks a squared error above 0.04 counts as an error. A task is solved when fewer than 1% of
10,000 fresh sequences are errors (``success``).

One deliberate difference from Pascanu's code: for addition and multiplication their code
draws each batch's length uniformly from ``[length, 1.1 length)``; here the length is the
static ``length`` given (so the generator jits once per length; draw the length yourself to
reproduce the jitter). Positions are drawn relative to that length exactly as in their code.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._labels import check_class_labels, softmax_cross_entropy
from .._validation import (
    check_array,
    check_choice,
    check_key,
    check_positive_float,
    check_positive_int,
)
from ..systems import NO_PARAMS, jit_with_params

#: Squared error above which a real-valued prediction counts as an error (Pascanu et al.).
SQUARED_ERROR_THRESHOLD = 0.04
#: Error rate below which a task counts as solved (Pascanu et al.: < 1% of 10,000 sequences).
SUCCESS_ERROR_RATE = 0.01


class TaskBatch(NamedTuple):
    """A batch of sequences: ``inputs`` ``(B, T, M)`` and ``targets``.

    ``targets`` are integer labels ``(B,)`` for the classification tasks, integer labels
    ``(B, T)`` for noiseless memorization, and floats ``(B, 1)`` for the real-valued tasks.
    """

    inputs: jax.Array
    targets: jax.Array


@dataclasses.dataclass(frozen=True)
class Task:
    """A synthetic problem: its sizes, generator, loss and error rule (hashable, jit-static).

    Attributes:
        name: the name in ``TASKS``.
        num_inputs: input channels ``M``.
        num_outputs: output size (classes, or 1 for real-valued targets).
        min_length: smallest ``length`` the generator accepts.
        readout: ``"last"`` (scored after the final step) or ``"all"`` (every step).
        objective: ``"softmax"`` (cross-entropy, integer targets) or ``"mse"``.
        options: the generator's keyword options as pairs (memorization's sizes).
    """

    name: str
    num_inputs: int
    num_outputs: int
    min_length: int
    readout: str
    objective: str
    generator: Callable = dataclasses.field(repr=False)
    options: tuple[tuple[str, Any], ...] = ()

    def sequence_length(self, length: int) -> int:
        """Number of input steps ``T`` for a given ``length`` (memorization adds 2P)."""
        if self.name == "noiseless_memorization":
            return length + 2 * dict(self.options)["num_positions"]
        return length

    def sample(self, key: jax.Array, batch_size: int, length: int) -> TaskBatch:
        """Draw ``batch_size`` sequences of the given ``length``.

        Raises:
            ValueError: ``length`` below ``min_length``, or a non-positive ``batch_size``.
            TypeError: ``key`` is not a single PRNG key.
        """
        check_key("key", key)
        check_positive_int("batch_size", batch_size)
        check_positive_int("length", length, minimum=-(2**62))  # type check only
        if length < self.min_length:
            raise ValueError(
                f"`length` must be >= {self.min_length} for {self.name}, got {length}"
            )
        return _generate(self, key, batch_size, length)

    def loss(self, outputs: jax.Array, targets: jax.Array) -> jax.Array:
        """Mean cross-entropy (over sequences and, for memorization, steps) or mean squared
        error summed over output units, as in Pascanu et al.'s code.

        Concrete labels outside ``[0, num_outputs)`` are refused (``ValueError``); traced
        ones (under ``jit``, as in training) make the loss and its gradient NaN, so the
        loop stops with ``TrainingDiverged`` instead of wrapping -1 to the last class.
        """
        outputs, targets = self._check(outputs, targets)
        if self.objective == "softmax":
            return jnp.mean(softmax_cross_entropy(outputs, targets))
        return jnp.mean(jnp.sum((outputs - targets) ** 2, axis=-1))

    def errors(self, outputs: jax.Array, targets: jax.Array) -> jax.Array:
        """Per-sequence error flags ``(B,)`` by the paper's rule (wrong argmax; any wrong
        step for memorization; squared error > 0.04 for real-valued targets). Concrete
        labels out of range are refused as in ``loss``; a traced one counts as an error."""
        outputs, targets = self._check(outputs, targets)
        if self.objective == "softmax":
            wrong = jnp.argmax(outputs, axis=-1) != targets
            return jnp.any(wrong, axis=-1) if self.readout == "all" else wrong
        return jnp.sum((outputs - targets) ** 2, axis=-1) > SQUARED_ERROR_THRESHOLD

    def _check(self, outputs: Any, targets: Any) -> tuple[jax.Array, jax.Array]:
        outputs = check_array("outputs", outputs)
        lead = "(B, T, " if self.readout == "all" else "(B, "
        if outputs.ndim != (3 if self.readout == "all" else 2) or (
            outputs.shape[-1] != self.num_outputs
        ):
            raise ValueError(
                f"`outputs` must have shape {lead}{self.num_outputs}) for {self.name}, "
                f"got {outputs.shape}"
            )
        targets = jnp.asarray(targets)
        if self.objective == "softmax":
            expected = outputs.shape[:-1]
            if not jnp.issubdtype(targets.dtype, jnp.integer):
                raise TypeError(
                    f"`targets` must be integer labels for {self.name}, got {targets.dtype}"
                )
        else:
            expected = outputs.shape
            targets = check_array("targets", targets)
        if targets.shape != expected:
            raise ValueError(
                f"`targets` must have shape {expected} to match `outputs` for {self.name}, "
                f"got {targets.shape}"
            )
        if self.objective == "softmax":
            targets = check_class_labels("targets", targets, self.num_outputs)
        return outputs, targets


def _one_hot(symbols: jax.Array, num: int) -> jax.Array:
    return jax.nn.one_hot(symbols, num, dtype=jnp.result_type(float))


def _temporal_order_bits(key, batch_size, length, starts):
    """Pascanu's temporal order: distractors {2..5}, relevant symbols {0, 1} (A/B) at one
    random position in each window ``[int(s L), int(s L) + int(0.1 L))``."""
    num_bits = len(starts)
    width = int(length * 0.1)
    k_sym, k_pos, k_val = jax.random.split(key, 3)
    symbols = jax.random.randint(k_sym, (batch_size, length), 2, 6)
    offsets = jnp.asarray([int(length * s) for s in starts])
    positions = jax.random.randint(k_pos, (batch_size, num_bits), 0, width) + offsets[None]
    bits = jax.random.randint(k_val, (batch_size, num_bits), 0, 2)
    symbols = symbols.at[jnp.arange(batch_size)[:, None], positions].set(bits)
    labels = jnp.sum(bits * (2 ** jnp.arange(num_bits))[None], axis=1)
    return TaskBatch(_one_hot(symbols, 6), labels)


def _temporal_order(key, batch_size, length):
    return _temporal_order_bits(key, batch_size, length, (0.1, 0.5))


def _temporal_order_3bit(key, batch_size, length):
    return _temporal_order_bits(key, batch_size, length, (0.1, 0.3, 0.6))


def _marked_pair(key, batch_size, length):
    """Channel 0: markers at p0 ∈ [0, 0.1L) and p1 ∈ [0.1L, 0.5L); channel 1: U[0, 1)."""
    k_p0, k_p1, k_val = jax.random.split(key, 3)
    p0 = jax.random.randint(k_p0, (batch_size,), 0, int(length * 0.1))
    p1 = jax.random.randint(k_p1, (batch_size,), 0, int(length * 0.4)) + int(length * 0.1)
    values = jax.random.uniform(k_val, (batch_size, length), jnp.result_type(float))
    steps = jnp.arange(length)[None]
    markers = ((steps == p0[:, None]) | (steps == p1[:, None])).astype(values.dtype)
    rows = jnp.arange(batch_size)
    return jnp.stack([markers, values], axis=-1), values[rows, p0], values[rows, p1]


def _addition(key, batch_size, length):
    inputs, a, b = _marked_pair(key, batch_size, length)
    return TaskBatch(inputs, ((a + b) / 2)[:, None])


def _multiplication(key, batch_size, length):
    inputs, a, b = _marked_pair(key, batch_size, length)
    return TaskBatch(inputs, (a * b)[:, None])


def _random_permutation(key, batch_size, length):
    """Symbols uniform in {2..99}; the first is 0 or 1 and must be predicted at the end."""
    k_sym, k_val = jax.random.split(key)
    symbols = jax.random.randint(k_sym, (batch_size, length), 2, 100)
    first = jax.random.randint(k_val, (batch_size,), 0, 2)
    symbols = symbols.at[:, 0].set(first)
    return TaskBatch(_one_hot(symbols, 100), first)


def _noiseless_memorization(key, batch_size, length, *, num_values, num_positions):
    """Pattern of P symbols from V values, then ``length`` blanks (channel V) with a
    trigger (channel V+1) at step ``length + P``; targets blank (class V) until the last
    P steps, which must reproduce the pattern."""
    P, V = num_positions, num_values
    total = length + 2 * P
    pattern = jax.random.randint(key, (batch_size, P), 0, V)
    after = jnp.full((batch_size, total - P), V).at[:, length].set(V + 1)
    inputs = _one_hot(jnp.concatenate([pattern, after], axis=1), V + 2)
    targets = jnp.concatenate([jnp.full((batch_size, length + P), V), pattern], axis=1)
    return TaskBatch(inputs, targets)


def _adding_problem(key, batch_size, length):
    """Le et al. (2015): channel 0 values U[0, 1), channel 1 two marker 1s, one in each half
    (first in ``[0, T//2)``, second in ``[T//2, T)``); target the sum of the marked values."""
    k_val, k_p0, k_p1 = jax.random.split(key, 3)
    half = length // 2
    values = jax.random.uniform(k_val, (batch_size, length), jnp.result_type(float))
    p0 = jax.random.randint(k_p0, (batch_size,), 0, half)
    p1 = jax.random.randint(k_p1, (batch_size,), half, length)
    steps = jnp.arange(length)[None]
    markers = ((steps == p0[:, None]) | (steps == p1[:, None])).astype(values.dtype)
    rows = jnp.arange(batch_size)
    target = values[rows, p0] + values[rows, p1]
    return TaskBatch(jnp.stack([values, markers], axis=-1), target[:, None])


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def _generate(task: Task, key: jax.Array, batch_size: int, length: int) -> TaskBatch:
    return task.generator(key, batch_size, length, **dict(task.options))


def _make_tasks(num_values: int = 5, num_positions: int = 10) -> dict[str, Task]:
    mem_options = (("num_values", num_values), ("num_positions", num_positions))
    return {
        "temporal_order": Task("temporal_order", 6, 4, 10, "last", "softmax", _temporal_order),
        "temporal_order_3bit": Task(
            "temporal_order_3bit", 6, 8, 10, "last", "softmax", _temporal_order_3bit
        ),
        "addition": Task("addition", 2, 1, 10, "last", "mse", _addition),
        "multiplication": Task("multiplication", 2, 1, 10, "last", "mse", _multiplication),
        "random_permutation": Task(
            "random_permutation", 100, 100, 2, "last", "softmax", _random_permutation
        ),
        "noiseless_memorization": Task(
            "noiseless_memorization", num_values + 2, num_values + 1, 1, "all", "softmax",
            _noiseless_memorization, mem_options,
        ),
        "adding_problem": Task("adding_problem", 2, 1, 2, "last", "mse", _adding_problem),
    }


#: The tasks by name (memorization with Pascanu's defaults: 5 values, 10 positions).
TASKS: dict[str, Task] = _make_tasks()


def get_task(name: str, *, num_values: int = 5, num_positions: int = 10) -> Task:
    """The ``Task`` called ``name``; ``num_values``/``num_positions`` size memorization.

    Example:
        >>> task = get_task("temporal_order")
        >>> batch = task.sample(jax.random.key(0), 32, 50)
        >>> batch.inputs.shape, batch.targets.shape
        ((32, 50, 6), (32,))
    """
    check_choice("name", name, TASKS)
    if name == "noiseless_memorization":
        check_positive_int("num_values", num_values, minimum=2)
        check_positive_int("num_positions", num_positions)
        return _make_tasks(num_values, num_positions)[name]
    return TASKS[name]


def temporal_order(*, key: jax.Array, batch_size: int, length: int) -> TaskBatch:
    """Temporal order (Pascanu et al. 2013; Hochreiter & Schmidhuber 1997): 4 classes.

    Six one-hot symbols; distractors {c, d, e, f} everywhere except one A/B at a random
    position in ``[0.1L, 0.2L)`` and one in ``[0.5L, 0.6L)``; the label is
    ``v0 + 2 v1`` (AA, BA, AB, BB). ``length >= 10``. Returns ``TaskBatch`` with inputs
    ``(B, L, 6)`` and integer labels ``(B,)``.

    Example:
        >>> batch = temporal_order(key=jax.random.key(0), batch_size=8, length=50)
    """
    return TASKS["temporal_order"].sample(key, batch_size, length)


def temporal_order_3bit(*, key: jax.Array, batch_size: int, length: int) -> TaskBatch:
    """3-bit temporal order: A/B in windows starting at 0.1L, 0.3L, 0.6L; 8 classes
    ``v0 + 2 v1 + 4 v2``. ``length >= 10``; inputs ``(B, L, 6)``, labels ``(B,)``."""
    return TASKS["temporal_order_3bit"].sample(key, batch_size, length)


def addition(*, key: jax.Array, batch_size: int, length: int) -> TaskBatch:
    """Addition (Pascanu et al. 2013): target ``(a + b) / 2`` of the two marked values.

    Channel 0 holds markers at ``p0 ∈ [0, 0.1L)`` and ``p1 ∈ [0.1L, 0.5L)``, channel 1
    values U[0, 1). ``length >= 10``; inputs ``(B, L, 2)``, targets ``(B, 1)``.
    """
    return TASKS["addition"].sample(key, batch_size, length)


def multiplication(*, key: jax.Array, batch_size: int, length: int) -> TaskBatch:
    """Multiplication: as ``addition`` with target ``a · b``. Targets ``(B, 1)``."""
    return TASKS["multiplication"].sample(key, batch_size, length)


def random_permutation(*, key: jax.Array, batch_size: int, length: int) -> TaskBatch:
    """Random permutation: 100 one-hot symbols, distractors uniform in {2..99}; the first
    symbol is 0 or 1 and is the label to predict after the last step. ``length >= 2``;
    inputs ``(B, L, 100)``, labels ``(B,)``."""
    return TASKS["random_permutation"].sample(key, batch_size, length)


def noiseless_memorization(
    *, key: jax.Array, batch_size: int, length: int, num_values: int = 5, num_positions: int = 10
) -> TaskBatch:
    """Noiseless memorization: reproduce a pattern of ``num_positions`` symbols (out of
    ``num_values``) after a delay of ``length`` blanks and a trigger.

    Inputs ``(B, length + 2P, V + 2)``; targets ``(B, length + 2P)`` integer classes in
    ``0..V`` (``V`` = blank), scored at every step. ``length >= 1``.
    """
    task = get_task("noiseless_memorization", num_values=num_values, num_positions=num_positions)
    return task.sample(key, batch_size, length)


def adding_problem(*, key: jax.Array, batch_size: int, length: int) -> TaskBatch:
    """Adding problem of Hochreiter & Schmidhuber (1997) in Le, Jaitly & Hinton's (2015) form.

    Channel 0: values U[0, 1); channel 1: two marker 1s, one in each half of the sequence.
    Target ``a + b`` ``(B, 1)``. Predicting 1 always gives MSE ``Var(a + b) = 1/6 ≈ 0.167``.
    ``length >= 2``.

    Example:
        >>> batch = adding_problem(key=jax.random.key(0), batch_size=1000, length=100)
        >>> round(float(jnp.mean((batch.targets - 1.0) ** 2)), 2)   # ≈ 1/6
        0.17
    """
    return TASKS["adding_problem"].sample(key, batch_size, length)


class SuccessResult(NamedTuple):
    """``error_rate`` over ``num_sequences`` fresh sequences, and ``solved`` (rate < 1%)."""

    error_rate: jax.Array
    num_errors: jax.Array
    num_sequences: int
    solved: jax.Array


def success(
    task: Task,
    predict: Callable,
    *,
    key: jax.Array,
    length: int,
    params: Any = NO_PARAMS,
    num_sequences: int = 10_000,
    batch_size: int = 1000,
    threshold: float = SUCCESS_ERROR_RATE,
) -> SuccessResult:
    """Pascanu et al.'s success criterion: fewer than 1% errors on 10,000 fresh sequences.

    Arguments:
        task: a ``Task``.
        predict: ``predict(inputs)`` or, with ``params``, ``predict(inputs, params)``,
            mapping ``(B, T, M)`` inputs to outputs shaped for ``task.readout``.
        key: PRNG key for the fresh sequences.
        length: sequence length.
        num_sequences: how many sequences (a multiple of ``batch_size``), scored in
            batches under ``lax.map``.

    Returns:
        ``SuccessResult``; ``solved`` is ``error_rate < threshold``.

    Example:
        >>> task = get_task("addition")
        >>> res = success(task, lambda u: jnp.full((u.shape[0], 1), 0.5),
        ...               key=jax.random.key(0), length=50, num_sequences=2000)
        >>> round(float(res.error_rate), 2), bool(res.solved)   # P(|(a+b)/2 - 1/2| > 0.2)
        (0.36, False)
    """
    if not isinstance(task, Task):
        raise TypeError(f"`task` must be a Task, got {type(task).__name__}")
    if not callable(predict):
        raise TypeError(f"`predict` must be callable, got {type(predict).__name__}")
    check_positive_int("num_sequences", num_sequences)
    check_positive_int("batch_size", batch_size)
    check_positive_float("threshold", threshold)
    if num_sequences % batch_size:
        raise ValueError(
            f"`num_sequences` ({num_sequences}) must be a multiple of `batch_size` "
            f"({batch_size})"
        )
    check_positive_int("length", length, minimum=-(2**62))  # type check only
    if length < task.min_length:
        raise ValueError(f"`length` must be >= {task.min_length} for {task.name}, got {length}")
    check_key("key", key)
    num_errors = _count_errors(
        predict, params, key, task=task, length=length,
        num_batches=num_sequences // batch_size, batch_size=batch_size,
    )
    rate = num_errors / num_sequences
    return SuccessResult(rate, num_errors, num_sequences, rate < threshold)


@jit_with_params
def _count_errors(predict, key, *, task, length, num_batches, batch_size):
    """Jitted once per predictor, task and sizes; ``params`` (bound into ``predict``) traced."""
    def one(k):
        batch = task.generator(k, batch_size, length, **dict(task.options))
        out = predict(batch.inputs)
        return jnp.sum(task.errors(out, batch.targets))

    return jnp.sum(jax.lax.map(one, jax.random.split(key, num_batches)))
