"""The LSTM cell as a step function on the pytree state ``(h, c)``.

With gates in the order of Hochreiter & Schmidhuber (1997) with forget gate (Gers,
Schmidhuber & Cummins 2000), for one example,

    [i, f, g, o] = W_x u_t + W_h h_{t-1} + b,
    c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g),      h_t = σ(o) ⊙ tanh(c_t).

Along the direct cell-state path ``∂c_t/∂c_{t-1} = diag(σ(f_t))`` (holding ``h_{t-1}``
fixed): no activation derivative and no weight matrix, so with forget gates near 1 the
gradient through ``c`` neither vanishes nor explodes. A forget-gate bias (``forget_bias``,
1 in Jozefowicz et al. 2015) starts the gates near 1. The gate layout ``[i, f, g, o]``
matches ``torch.nn.LSTMCell``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._validation import (
    check_array,
    check_finite_float,
    check_key,
    check_positive_float,
    check_positive_int,
    check_shape,
)


class LSTMParams(NamedTuple):
    """``W_x`` (4N, M), ``W_h`` (4N, N), ``b`` (4N,), rows in gate order ``[i, f, g, o]``."""

    W_x: jax.Array
    W_h: jax.Array
    b: jax.Array


class LSTMState(NamedTuple):
    """The LSTM state: hidden ``h`` (N,) and cell ``c`` (N,)."""

    h: jax.Array
    c: jax.Array


def init_lstm(
    key: jax.Array,
    num_units: int,
    num_inputs: int,
    *,
    forget_bias: float = 1.0,
    recurrent_scale: float = 1.0,
    input_std: float = 1.0,
    dtype: Any = None,
) -> LSTMParams:
    """Random LSTM parameters; the forget-gate bias is ``forget_bias``, other biases 0.

    ``W_h`` is N(0, recurrent_scale²/N), ``W_x`` is N(0, input_std²/M); ``dtype`` defaults
    to jax's default float (float32, or float64 with x64 enabled).

    Example:
        >>> p = init_lstm(jax.random.key(0), 32, 1, forget_bias=1.0)
        >>> x = lstm_step(lstm_zero_state(32), jnp.ones(1), p)
    """
    n = check_positive_int("num_units", num_units)
    m = check_positive_int("num_inputs", num_inputs, minimum=0)
    forget_bias = check_finite_float("forget_bias", forget_bias)
    check_positive_float("recurrent_scale", recurrent_scale, allow_zero=True)
    check_positive_float("input_std", input_std, allow_zero=True)
    check_key("key", key)
    dtype = dtype or jnp.result_type(float)
    k_h, k_x = jax.random.split(key)
    W_h = recurrent_scale * jax.random.normal(k_h, (4 * n, n), dtype) / jnp.sqrt(n).astype(dtype)
    W_x = input_std * jax.random.normal(k_x, (4 * n, m), dtype) / jnp.sqrt(max(m, 1)).astype(dtype)
    b = jnp.zeros((4 * n,), dtype).at[n : 2 * n].set(forget_bias)
    return LSTMParams(W_x, W_h, b)


def lstm_zero_state(num_units: int, dtype: Any = None) -> LSTMState:
    """``LSTMState(h=0, c=0)`` of size ``num_units`` (default float dtype unless given)."""
    n = check_positive_int("num_units", num_units)
    dtype = dtype or jnp.result_type(float)
    return LSTMState(jnp.zeros((n,), dtype), jnp.zeros((n,), dtype))


def check_gated_cell(name: str, params: Any, cls: type, gates: int, h: Any, u: Any) -> None:
    """Trace-time shape checks of one gated cell step (LSTM: 4 gates, GRU: 3).

    Nothing may broadcast into the state: ``h`` must be ``(N,)``, ``params.W_h``
    ``(gates·N, N)``, ``params.W_x`` ``(gates·N, M)`` with ``u`` ``(M,)``, and the biases
    ``(gates·N,)``. ``name`` is the step function the messages name; ``cls`` the params type.
    """
    if not isinstance(params, cls):
        raise TypeError(f"`params` must be a {cls.__name__}, got {type(params).__name__}")
    n = jnp.shape(h)
    if len(n) != 1:
        raise ValueError(f"`{name}` state `h` must have shape (N,) for one example, got {n}")
    (n,) = n
    if jnp.shape(params.W_h) != (gates * n, n):
        raise ValueError(
            f"`params.W_h` must have shape ({gates * n}, {n}) for a state of {n} units, "
            f"got {jnp.shape(params.W_h)}"
        )
    m = jnp.shape(params.W_x)[1] if jnp.ndim(params.W_x) == 2 else None
    if jnp.shape(params.W_x) != (gates * n, m) or jnp.shape(u) != (m,):
        raise ValueError(
            f"input `u` must have shape ({m},) to match `params.W_x` {jnp.shape(params.W_x)}, "
            f"got {jnp.shape(u)}"
        )
    for b in ("b",) if gates == 4 else ("b_x", "b_h"):
        check_shape(f"params.{b}", getattr(params, b), (gates * n,),
                    f" for a state of {n} units ({gates} gates)")


def lstm_step(state: LSTMState, u: jax.Array, params: LSTMParams) -> LSTMState:
    """One LSTM step ``(h, c), u -> (h', c')`` for one example.

    Arguments:
        state: ``LSTMState(h, c)``, each ``(N,)`` (a plain ``(h, c)`` tuple also works).
        u: input ``(M,)``.
        params: ``LSTMParams``.

    Returns:
        ``LSTMState(h', c')``. Analyzers take this step as it is with ``params=``; the
        pytree state is flattened to ``[h, c]`` for Jacobians.

    Example:
        >>> p = init_lstm(jax.random.key(0), 8, 1)
        >>> norms = jaxgrad.jacobian_product_norms(lstm_step, lstm_zero_state(8),
        ...                                        jnp.zeros((50, 1)), params=p)
        >>> norms.log_norms.shape   # the state is the pair (h, c): 16 numbers per step
        (50,)
    """
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise TypeError(
            f"`state` must be an LSTMState(h, c) or a pair (h, c), got {type(state).__name__}"
            + (f" of length {len(state)}" if isinstance(state, (tuple, list)) else "")
        )
    h, c = state
    for name, value in (("h", h), ("c", c), ("u", u)):
        check_array(name, value)
    check_gated_cell("lstm_step", params, LSTMParams, 4, h, u)
    check_shape("c", c, jnp.shape(h), " (the cell state, like `h`)")
    n = h.shape[0]
    z = params.W_x @ u + params.W_h @ h + params.b
    i, f, g, o = (z[k * n : (k + 1) * n] for k in range(4))
    c_next = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h_next = jax.nn.sigmoid(o) * jnp.tanh(c_next)
    return type(state)(h_next, c_next) if isinstance(state, LSTMState) else (h_next, c_next)
