"""Recurrent cells as objects: one interface for every recurrent model a sequence model runs.

A *cell* is any object with four methods (subclass ``Cell`` to get the last two for free):

- ``init(key, num_units, num_inputs, *, dtype=jnp.float32, **options) -> params``: random
  parameters, any pytree (``options`` are the cell's own initialisation knobs);
- ``step(state, u, params) -> state``: one step for one example. This is the system
  protocol every analyzer takes, so ``jaxgrad.jacobian_product_norms(cell.step, ...,
  params=p)`` works on any cell as it is;
- ``zero_state(num_units, dtype=jnp.float32) -> state``: the initial state (any pytree;
  ``Cell``'s default: zeros ``(num_units,)``);
- ``observe(state) -> (num_units,)``: the features a readout sees (``Cell``'s default: the
  state itself).

A cell may also define ``omega_pullback(x, x_next, u, g, params) -> g ∂x_next/∂x``, the
step's vector–Jacobian product as Pascanu's Ω should differentiate it (see
``jaxgrad.train.pascanu_omega_terms``'s ``pullback``); without it Ω uses the step's own VJP.

A cell is hashable (a ``SequenceModel`` holding it is a jit static argument): the built-in
cells are frozen dataclasses compared by their fields. ``CELLS`` maps the names the
experiments use (``"rnn_tanh"``, ``"lstm"``, ...) to cell objects.

Example:
    >>> cell = CELLS["lstm"]
    >>> p = cell.init(jax.random.key(0), 8, 1)
    >>> x = cell.step(cell.zero_state(8), jnp.ones(1), p)
    >>> cell.observe(x).shape
    (8,)
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .._validation import (
    check_choice,
    check_key,
    check_positive_float,
    check_positive_int,
)
from ..systems import INTEGRATORS, ModuleStep, as_step
from .activations import ActivationLike, get_activation
from .gru import GRUParams, gru_step, init_gru
from .lstm import LSTMParams, LSTMState, init_lstm, lstm_step
from .rate import RateParams, init_rate, rate_flow_step, rate_step
from .rnn import PascanuParams, _check_step_args, init_pascanu, pascanu_step

#: ``init`` schemes of the built-in cells: jaxgrad's default and Pascanu et al.'s
#: "smart tanh" (section 4; tanh RNNs only).
INIT_SCHEMES = ("default", "smart_tanh")


class Cell(abc.ABC):
    """Base class of recurrent cells: define ``init`` and ``step``; ``zero_state`` (zeros
    ``(num_units,)``) and ``observe`` (the state itself) have defaults.

    Decorate a subclass with ``@dataclasses.dataclass(frozen=True)`` so that equal cells
    compare equal (a plain subclass is hashed by identity, which is also safe).

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class Leaky(Cell):          # h' = (1 - a) h + a tanh(W h + V u)
        ...     a: float = 0.5
        ...     def init(self, key, num_units, num_inputs, *, dtype=jnp.float32):
        ...         kw, kv = jax.random.split(key)
        ...         return (jax.random.normal(kw, (num_units, num_units), dtype) / num_units**0.5,
        ...                 jax.random.normal(kv, (num_units, num_inputs), dtype))
        ...     def step(self, h, u, params):
        ...         W, V = params
        ...         return (1 - self.a) * h + self.a * jnp.tanh(W @ h + V @ u)
        >>> cell = Leaky()
        >>> cell.step(cell.zero_state(4), jnp.ones(2), cell.init(jax.random.key(0), 4, 2)).shape
        (4,)
    """

    @abc.abstractmethod
    def init(self, key: jax.Array, num_units: int, num_inputs: int, *, dtype: Any = jnp.float32,
             **options: Any) -> Any:
        """Random parameters (any pytree) for ``num_units`` units and ``num_inputs`` inputs."""

    @abc.abstractmethod
    def step(self, state: Any, u: jax.Array, params: Any) -> Any:
        """One step ``state, u -> state`` for one example."""

    def zero_state(self, num_units: int, dtype: Any = jnp.float32) -> Any:
        """The initial state: zeros ``(num_units,)``."""
        return jnp.zeros((num_units,), dtype)

    def observe(self, state: Any) -> jax.Array:
        """The features ``(num_units,)`` a readout sees: the state itself."""
        return state


_METHODS = ("init", "step", "zero_state", "observe")


def _check_cell(cell: Any, argument: str = "cell") -> Any:
    """``cell`` if it has the four cell methods and is hashable; else a ``TypeError``."""
    missing = [m for m in _METHODS if not callable(getattr(cell, m, None))]
    if missing:
        raise TypeError(
            f"`{argument}` must be a name in {sorted(CELLS)} or a cell object with methods "
            f"{', '.join(_METHODS)}; got {type(cell).__name__} without {', '.join(missing)}"
        )
    try:
        hash(cell)
    except TypeError:
        raise TypeError(f"`{argument}` must be hashable (a frozen dataclass), got "
                        f"{type(cell).__name__}") from None
    return cell


def get_cell(cell: Any, argument: str = "cell") -> Any:
    """The cell called ``cell`` in ``CELLS``, or ``cell`` itself if it is a cell object.

    ``argument`` is the argument name used in error messages.

    Raises:
        ValueError: for an unknown name, listing the known ones.
        TypeError: for an object without the cell methods, or an unhashable one.

    Example:
        >>> get_cell("rnn_sigmoid")
        PascanuCell(activation='sigmoid')
    """
    if isinstance(cell, str):
        return CELLS[check_choice(argument, cell, CELLS)]
    return _check_cell(cell, argument)


def _check_init_options(cell, recurrent_scale, input_std, scheme, recurrent_nonzeros,
                        smart_tanh: bool) -> None:
    """The initialisation knobs every built-in cell takes (the same messages for all)."""
    check_positive_float("recurrent_scale", recurrent_scale)
    check_positive_float("input_std", input_std)
    check_choice("scheme", scheme, INIT_SCHEMES)
    check_positive_int("recurrent_nonzeros", recurrent_nonzeros)
    if scheme == "smart_tanh" and not smart_tanh:
        raise ValueError(
            f"`scheme` 'smart_tanh' is for the tanh RNNs ('rnn_tanh', 'elman_tanh'), "
            f"got cell {cell!r}"
        )


def _is_tanh(activation: ActivationLike) -> bool:
    return get_activation(activation) == get_activation("tanh")


def smart_tanh_params(key, num_units, num_inputs, radius, nonzeros, dtype) -> PascanuParams:
    """Pascanu et al.'s (2013, section 4) smart tanh ``W_rec`` (``nonzeros`` Gaussian entries
    per column, i.e. outgoing weights of a unit, at spectral radius ``radius``), ``W_in``
    N(0, 0.01²) and ``b = 0``, as in their code."""
    n, m = num_units, num_inputs
    k_rec, k_mask, k_in = jax.random.split(key, 3)
    W = 0.01 * jax.random.normal(k_rec, (n, n), dtype)
    # A random subset of `nonzeros` rows in each column: ranks of uniform draws.
    ranks = jnp.argsort(jnp.argsort(jax.random.uniform(k_mask, (n, n)), axis=0), axis=0)
    W = jnp.where(ranks < nonzeros, W, jnp.zeros_like(W))
    W = W * (radius / jnp.max(jnp.abs(jnp.linalg.eigvals(W))).astype(dtype))
    W_in = 0.01 * jax.random.normal(k_in, (n, m), dtype)
    return PascanuParams(W, W_in, jnp.zeros((n,), dtype))


class _PascanuInit:
    """``init`` shared by the two cells on ``PascanuParams`` (Pascanu RNN and Elman)."""

    activation: ActivationLike

    def init(
        self,
        key: jax.Array,
        num_units: int,
        num_inputs: int,
        *,
        recurrent_scale: float = 1.0,
        input_std: float = 1.0,
        forget_bias: float = 1.0,
        scheme: str = "default",
        recurrent_nonzeros: int = 15,
        dtype: Any = jnp.float32,
    ) -> PascanuParams:
        """``PascanuParams``: ``W_rec`` N(0, 1/N) rescaled to spectral radius
        ``recurrent_scale``, ``W_in`` N(0, input_std²/M), ``b = 0`` (``init_pascanu``); with
        ``scheme="smart_tanh"`` (tanh only) Pascanu et al.'s smart initialisation with
        ``recurrent_nonzeros`` non-zero outgoing weights per unit (``input_std`` unused).
        ``forget_bias`` is unused (accepted so that one call initialises every built-in cell).
        """
        del forget_bias
        _check_init_options(self, recurrent_scale, input_std, scheme, recurrent_nonzeros,
                            smart_tanh=_is_tanh(self.activation))
        if scheme == "smart_tanh":
            return smart_tanh_params(key, num_units, num_inputs, recurrent_scale,
                                     recurrent_nonzeros, dtype)
        return init_pascanu(key, num_units, num_inputs, scaling="spectral_radius",
                            value=recurrent_scale, input_std=input_std, dtype=dtype)


def _checked_activation(cell) -> None:
    get_activation(cell.activation)
    try:
        hash(cell.activation)
    except TypeError:
        raise TypeError(f"`activation` must be hashable, got {type(cell.activation).__name__}"
                        ) from None


@dataclasses.dataclass(frozen=True)
class PascanuCell(_PascanuInit, Cell):
    """Pascanu et al.'s RNN ``x' = W_rec σ(x) + W_in u + b`` (``pascanu_step``) on the
    pre-activation state; the readout sees ``σ(x)`` (their ``y = W_hy h``).

    Attributes:
        activation: ``σ``, a name in ``ACTIVATIONS``, an ``Activation`` or a callable.

    Example:
        >>> cell = PascanuCell("sigmoid")       # CELLS["rnn_sigmoid"]
        >>> p = cell.init(jax.random.key(0), 16, 1, recurrent_scale=2.0)
        >>> float(cell.observe(cell.zero_state(16))[0])   # σ(0)
        0.5
    """

    activation: ActivationLike = "tanh"

    def __post_init__(self):
        _checked_activation(self)

    def step(self, x: jax.Array, u: jax.Array, params: PascanuParams) -> jax.Array:
        """``W_rec σ(x) + W_in u + b``."""
        return pascanu_step(x, u, params, activation=self.activation)

    def observe(self, x: jax.Array) -> jax.Array:
        """``σ(x)``."""
        return get_activation(self.activation)(x)


@dataclasses.dataclass(frozen=True)
class ElmanCell(_PascanuInit, Cell):
    """The Elman RNN on its post-activation state, ``h' = σ(W_rec h + W_in u + b)`` (the
    tanh RNN of Pascanu et al.'s code), with ``PascanuParams``; the readout sees ``h``.

    Its ``omega_pullback`` is the Jacobian of Pascanu et al.'s code for Ω: ``g ∂h'/∂h =
    (g ⊙ σ'(a)) W_rec`` with the factor ``σ'(a)`` held constant (``1 − h'²`` for tanh), so
    Ω's gradient reaches ``W_rec`` only.

    Attributes:
        activation: ``σ``, a name in ``ACTIVATIONS``, an ``Activation`` or a callable.

    Example:
        >>> cell = ElmanCell()                  # CELLS["elman_tanh"]
        >>> p = cell.init(jax.random.key(0), 50, 2, scheme="smart_tanh", recurrent_scale=0.95)
        >>> int(jnp.count_nonzero(p.W_rec[:, 0]))   # 15 outgoing weights per unit
        15
    """

    activation: ActivationLike = "tanh"

    def __post_init__(self):
        _checked_activation(self)

    def step(self, h: jax.Array, u: jax.Array, params: PascanuParams) -> jax.Array:
        """``σ(W_rec h + W_in u + b)``."""
        _check_step_args(h, u, params)
        sigma = get_activation(self.activation)
        return sigma(params.W_rec @ h + params.W_in @ u + params.b)

    def omega_pullback(self, h, h_next, u, g, params: PascanuParams) -> jax.Array:
        """``W_rec^T (g ⊙ σ'(a))`` with ``σ'(a)`` constant (``1 − h'²`` for tanh)."""
        if _is_tanh(self.activation):
            return params.W_rec.T @ (g * (1.0 - h_next**2))
        a = params.W_rec @ h + params.W_in @ u + params.b
        slope = jax.lax.stop_gradient(get_activation(self.activation).derivative()(a))
        return params.W_rec.T @ (g * slope)


@dataclasses.dataclass(frozen=True)
class LSTMCell(Cell):
    """The LSTM (``lstm_step``) on the state ``LSTMState(h, c)``; the readout sees ``h``.

    Example:
        >>> cell = LSTMCell()                   # CELLS["lstm"]
        >>> p = cell.init(jax.random.key(0), 8, 1, forget_bias=2.0)
        >>> float(p.b[8])                       # the forget gate's bias
        2.0
    """

    def init(
        self,
        key: jax.Array,
        num_units: int,
        num_inputs: int,
        *,
        recurrent_scale: float = 1.0,
        input_std: float = 1.0,
        forget_bias: float = 1.0,
        scheme: str = "default",
        recurrent_nonzeros: int = 15,
        dtype: Any = jnp.float32,
    ) -> LSTMParams:
        """``init_lstm``: ``W_h`` N(0, recurrent_scale²/N), ``W_x`` N(0, input_std²/M),
        forget-gate bias ``forget_bias``, other biases 0 (``recurrent_nonzeros`` unused)."""
        _check_init_options(self, recurrent_scale, input_std, scheme, recurrent_nonzeros,
                            smart_tanh=False)
        return init_lstm(key, num_units, num_inputs, forget_bias=forget_bias,
                         recurrent_scale=recurrent_scale, input_std=input_std, dtype=dtype)

    def step(self, state: LSTMState, u: jax.Array, params: LSTMParams) -> LSTMState:
        """``lstm_step``."""
        return lstm_step(state, u, params)

    def zero_state(self, num_units: int, dtype: Any = jnp.float32) -> LSTMState:
        """``LSTMState(h=0, c=0)``."""
        zeros = jnp.zeros((num_units,), dtype)
        return LSTMState(zeros, zeros)

    def observe(self, state: LSTMState) -> jax.Array:
        """``h``."""
        return state.h


@dataclasses.dataclass(frozen=True)
class GRUCell(Cell):
    """The GRU (``gru_step``); the readout sees ``h``.

    Example:
        >>> cell = GRUCell()                    # CELLS["gru"]
        >>> p = cell.init(jax.random.key(0), 8, 1)   # update-gate bias forget_bias = 1
        >>> float(p.b_x[8])
        1.0
    """

    def init(
        self,
        key: jax.Array,
        num_units: int,
        num_inputs: int,
        *,
        recurrent_scale: float = 1.0,
        input_std: float = 1.0,
        forget_bias: float = 1.0,
        scheme: str = "default",
        recurrent_nonzeros: int = 15,
        dtype: Any = jnp.float32,
    ) -> GRUParams:
        """``init_gru`` with update-gate bias ``forget_bias`` (the GRU's counterpart of the
        LSTM forget bias), ``W_h`` N(0, recurrent_scale²/N), ``W_x`` N(0, input_std²/M)."""
        _check_init_options(self, recurrent_scale, input_std, scheme, recurrent_nonzeros,
                            smart_tanh=False)
        return init_gru(key, num_units, num_inputs, update_bias=forget_bias,
                        recurrent_scale=recurrent_scale, input_std=input_std, dtype=dtype)

    def step(self, h: jax.Array, u: jax.Array, params: GRUParams) -> jax.Array:
        """``gru_step``."""
        return gru_step(h, u, params)


@dataclasses.dataclass(frozen=True)
class RateCell(Cell):
    """The random rate network (``jaxgrad.init_rate``): the map ``h' = J tanh(h) + W_in u``
    (``dt=None``) or one integrator step of the flow ``dh/dt = -h + J tanh(h) + W_in u``
    (``rate_flow_step`` over ``dt``); the readout sees the rates ``tanh(h)``.

    Attributes:
        dt: ``None`` for the discrete map, else the time step of the flow.
        method: the flow's integrator, ``"euler"``, ``"rk4"`` or ``"diffrax"``.

    Example:
        >>> cell = RateCell(dt=0.1)
        >>> p = cell.init(jax.random.key(0), 32, 2, recurrent_scale=1.5)   # g = 1.5
        >>> cell.step(cell.zero_state(32), jnp.ones(2), p).shape
        (32,)
    """

    dt: float | None = None
    method: str = "rk4"

    def __post_init__(self):
        if self.dt is not None:
            object.__setattr__(self, "dt", check_positive_float("dt", self.dt))
        check_choice("method", self.method, (*INTEGRATORS, "diffrax"))

    def init(
        self,
        key: jax.Array,
        num_units: int,
        num_inputs: int,
        *,
        recurrent_scale: float = 1.0,
        input_std: float = 1.0,
        forget_bias: float = 1.0,
        scheme: str = "default",
        recurrent_nonzeros: int = 15,
        dtype: Any = jnp.float32,
    ) -> RateParams:
        """``init_rate`` with gain ``g = recurrent_scale`` (``J_ij`` N(0, g²/N)) and
        ``W_in`` N(0, input_std²); ``forget_bias`` and ``recurrent_nonzeros`` unused."""
        del forget_bias
        _check_init_options(self, recurrent_scale, input_std, scheme, recurrent_nonzeros,
                            smart_tanh=False)
        return init_rate(key, num_units, g=recurrent_scale, num_inputs=num_inputs,
                         input_std=input_std, dtype=dtype)

    def step(self, h: jax.Array, u: jax.Array, params: RateParams) -> jax.Array:
        """``rate_step``, or ``rate_flow_step`` over ``dt``."""
        if self.dt is None:
            return rate_step(h, u, params)
        return rate_flow_step(h, u, params, dt=self.dt, method=self.method)

    def observe(self, h: jax.Array) -> jax.Array:
        """The rates ``tanh(h)``."""
        return jnp.tanh(h)


@dataclasses.dataclass(frozen=True)
class NnxParams:
    """Parameters of an ``NnxCell``: the module's ``nnx.Param`` state (the pytree's leaves)
    and its ``graphdef`` (static: not a leaf, so optax, ``vmap`` and ``grad`` see only the
    arrays)."""

    graphdef: Any
    state: Any


jax.tree_util.register_dataclass(NnxParams, data_fields=["state"], meta_fields=["graphdef"])


@dataclasses.dataclass(frozen=True)
class NnxCell(Cell):
    """A user's Flax ``nnx`` module as a cell: ``module(h, u) -> h'`` on a state ``(N,)``.

    ``init`` builds the module with ``make(num_units, num_inputs, rngs=nnx.Rngs(key),
    **options)`` (a module class whose constructor takes these is ``make`` as it is) and
    splits it (``nnx.split``) into a static graph and its ``nnx.Param`` arrays, cast to
    ``dtype`` (``jaxgrad.systems.as_step``, the split every analyzer does); ``step`` merges
    them back (``nnx.merge``) and calls the module. The module may hold ``nnx.Param``
    variables only (no RNG state or batch statistics).

    Attributes:
        make: ``make(num_units, num_inputs, *, rngs, **options) -> nnx.Module``.

    Example:
        >>> from flax import nnx
        >>> class Tanh(nnx.Module):
        ...     def __init__(self, hidden, inputs, *, rngs):
        ...         self.rec = nnx.Linear(hidden, hidden, rngs=rngs)
        ...         self.inp = nnx.Linear(inputs, hidden, rngs=rngs)
        ...     def __call__(self, h, u):
        ...         return jnp.tanh(self.rec(h) + self.inp(u))
        >>> cell = NnxCell(Tanh)
        >>> p = cell.init(jax.random.key(0), 4, 2)
        >>> cell.step(cell.zero_state(4), jnp.ones(2), p).shape
        (4,)
    """

    make: Callable[..., Any]

    def __post_init__(self):
        if not callable(self.make):
            raise TypeError(f"`make` must be callable (e.g. an nnx.Module class), got "
                            f"{type(self.make).__name__}")

    def init(self, key: jax.Array, num_units: int, num_inputs: int, *,
             dtype: Any = jnp.float32, **options: Any) -> NnxParams:
        """Build the module from ``key`` and return its ``nnx.Param`` state."""
        from flax import nnx

        check_key("key", key)
        module = self.make(num_units, num_inputs, rngs=nnx.Rngs(key), **options)
        if not isinstance(module, nnx.Module):
            raise TypeError(f"`make` must return an nnx.Module, got {type(module).__name__}")
        # The split every analyzer does (it refuses state other than nnx.Param by name).
        step, params = as_step(module)

        def cast(a):
            return a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a

        return NnxParams(step.graphdef, jax.tree_util.tree_map(cast, params))

    def step(self, h: jax.Array, u: jax.Array, params: NnxParams) -> jax.Array:
        """``module(h, u)`` for the module ``nnx.merge(params.graphdef, params.state)``."""
        if not isinstance(params, NnxParams):
            raise TypeError(f"`params` must be the NnxParams of NnxCell.init, got "
                            f"{type(params).__name__}")
        return ModuleStep(params.graphdef)(h, u, params.state)


#: The named shortcuts ``SequenceModel`` and the experiments use.
CELLS: dict[str, Any] = {
    "rnn_tanh": PascanuCell("tanh"),
    "rnn_sigmoid": PascanuCell("sigmoid"),
    "lstm": LSTMCell(),
    "gru": GRUCell(),
    "elman_tanh": ElmanCell("tanh"),
    "rate": RateCell(),
}
