"""The gated recurrent unit (Cho et al. 2014) as a step function.

For one example, in the layout of ``torch.nn.GRUCell``,

    r = σ(W_xr u + b_xr + W_hr h + b_hr),     z = σ(W_xz u + b_xz + W_hz h + b_hz),
    n = tanh(W_xn u + b_xn + r ⊙ (W_hn h + b_hn)),
    h' = (1 - z) ⊙ n + z ⊙ h.

Along the direct path ``∂h'/∂h ⊇ diag(z)``: an update gate near 1 carries the state (and
its gradient) through unchanged, as the LSTM's forget gate does for its cell state.
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
)
from .lstm import check_gated_cell


class GRUParams(NamedTuple):
    """``W_x`` (3N, M), ``W_h`` (3N, N), ``b_x``, ``b_h`` (3N,); rows in order ``[r, z, n]``."""

    W_x: jax.Array
    W_h: jax.Array
    b_x: jax.Array
    b_h: jax.Array


def init_gru(
    key: jax.Array,
    num_units: int,
    num_inputs: int,
    *,
    update_bias: float = 0.0,
    recurrent_scale: float = 1.0,
    input_std: float = 1.0,
    dtype: Any = None,
) -> GRUParams:
    """Random GRU parameters: ``W_h`` N(0, recurrent_scale²/N), ``W_x`` N(0, input_std²/M).

    ``update_bias`` is the bias of the update gate ``z`` (a positive value keeps more of
    the old state, the GRU's counterpart of the LSTM forget bias); other biases are 0.

    Example:
        >>> p = init_gru(jax.random.key(0), 32, 1)
        >>> h = gru_step(jnp.zeros(32), jnp.ones(1), p)
    """
    n = check_positive_int("num_units", num_units)
    m = check_positive_int("num_inputs", num_inputs, minimum=0)
    update_bias = check_finite_float("update_bias", update_bias)
    check_positive_float("recurrent_scale", recurrent_scale, allow_zero=True)
    check_positive_float("input_std", input_std, allow_zero=True)
    check_key("key", key)
    dtype = dtype or jnp.result_type(float)
    k_h, k_x = jax.random.split(key)
    W_h = recurrent_scale * jax.random.normal(k_h, (3 * n, n), dtype) / jnp.sqrt(n).astype(dtype)
    W_x = input_std * jax.random.normal(k_x, (3 * n, m), dtype) / jnp.sqrt(max(m, 1)).astype(dtype)
    b_x = jnp.zeros((3 * n,), dtype).at[n : 2 * n].set(update_bias)
    return GRUParams(W_x, W_h, b_x, jnp.zeros((3 * n,), dtype))


def gru_step(h: jax.Array, u: jax.Array, params: GRUParams) -> jax.Array:
    """One GRU step ``h, u -> h'`` for one example.

    Arguments:
        h: state ``(N,)``.
        u: input ``(M,)``.
        params: ``GRUParams``.

    Returns:
        ``h'`` ``(N,)``.

    Example:
        >>> p = init_gru(jax.random.key(0), 8, 1)
        >>> flow = jaxgrad.analysis.recurrent_gradient_flow(
        ...     gru_step, jnp.zeros(8), jnp.ones((20, 1)), lambda hs: jnp.sum(hs[-1]), params=p)
        >>> flow.log_state_grad_norms.shape   # log ‖∂L/∂h_t‖ for t = 1..20
        (20,)
    """
    check_array("h", h)
    check_array("u", u)
    check_gated_cell("gru_step", params, GRUParams, 3, h, u)
    n = h.shape[0]
    gx = params.W_x @ u + params.b_x
    gh = params.W_h @ h + params.b_h
    r = jax.nn.sigmoid(gx[:n] + gh[:n])
    z = jax.nn.sigmoid(gx[n : 2 * n] + gh[n : 2 * n])
    cand = jnp.tanh(gx[2 * n :] + r * gh[2 * n :])
    return (1 - z) * cand + z * h
