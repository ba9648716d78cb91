"""Pascanu, Mikolov & Bengio's recurrent network and their one-unit network.

The network (Pascanu et al. 2013, eq. 2) is

    x_t = W_rec σ(x_{t-1}) + W_in u_t + b,

with step Jacobian ``∂x_t/∂x_{t-1} = W_rec diag(σ'(x_{t-1}))``. The one-unit network of
their section 2.3 (Fig. 6) is ``x_t = w σ(x_{t-1}) + b``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._validation import (
    check_array,
    check_choice,
    check_finite,
    check_key,
    check_positive_float,
    check_positive_int,
    check_shape,
    check_square,
)
from .activations import ActivationLike, get_activation
from .core import unroll


class PascanuParams(NamedTuple):
    """Parameters of the Pascanu RNN: ``W_rec`` (N, N), ``W_in`` (N, M), ``b`` (N,)."""

    W_rec: jax.Array
    W_in: jax.Array
    b: jax.Array


RECURRENT_SCALINGS = ("spectral_radius", "spectral_norm", "gaussian")


def validate_pascanu_params(params: PascanuParams) -> PascanuParams:
    """Check shapes (always) and finiteness (on concrete values); return float arrays."""
    if not isinstance(params, PascanuParams):
        raise TypeError(f"`params` must be a PascanuParams, got {type(params).__name__}")
    W_rec = check_square("W_rec", params.W_rec)
    n = W_rec.shape[0]
    W_in = check_array("W_in", params.W_in, ndim=2)
    if W_in.shape[0] != n:
        raise ValueError(f"`W_in` must have shape ({n}, M) to match `W_rec`, got {W_in.shape}")
    b = check_array("b", params.b, ndim=1)
    if b.shape != (n,):
        raise ValueError(f"`b` must have shape ({n},) to match `W_rec`, got {b.shape}")
    for name, value in (("W_rec", W_rec), ("W_in", W_in), ("b", b)):
        check_finite(name, value)
    return PascanuParams(W_rec, W_in, b)


def init_pascanu(
    key: jax.Array,
    num_units: int,
    num_inputs: int,
    *,
    scaling: str = "spectral_radius",
    value: float = 1.0,
    input_std: float = 1.0,
    dtype: Any = jnp.float32,
) -> PascanuParams:
    """Random Pascanu RNN parameters with a chosen scale for ``W_rec``.

    ``W_rec`` is drawn N(0, 1/N) and then rescaled so that its spectral radius
    (``scaling="spectral_radius"``) or largest singular value (``"spectral_norm"``) equals
    ``value``; with ``"gaussian"`` it is N(0, value²/N) as drawn (spectral radius ≈ value
    for large N, by the circular law). ``W_in`` is N(0, input_std²/M), ``b`` is zero.

    Example:
        >>> p = init_pascanu(jax.random.key(0), 64, 1, scaling="spectral_norm", value=3.5)
    """
    check_positive_int("num_units", num_units)
    check_positive_int("num_inputs", num_inputs, minimum=0)
    check_choice("scaling", scaling, RECURRENT_SCALINGS)
    check_positive_float("value", value)
    check_positive_float("input_std", input_std, allow_zero=True)
    check_key("key", key)
    k_rec, k_in = jax.random.split(key)
    W = jax.random.normal(k_rec, (num_units, num_units), dtype) / jnp.sqrt(num_units)
    if scaling == "spectral_radius":
        W = W * (value / jnp.max(jnp.abs(jnp.linalg.eigvals(W))).astype(dtype))
    elif scaling == "spectral_norm":
        W = W * (value / jnp.linalg.norm(W, ord=2))
    else:
        W = W * value
    W_in = input_std * jax.random.normal(k_in, (num_units, num_inputs), dtype)
    W_in = W_in / jnp.sqrt(max(num_inputs, 1))
    return PascanuParams(W, W_in, jnp.zeros((num_units,), dtype))


def _check_step_args(x: Any, u: Any, params: Any) -> None:
    """Shapes of one ``pascanu_step`` call (trace-time: only shapes and dtypes are read)."""
    check_array("x", x)
    check_array("u", u)
    if not all(hasattr(params, f) for f in PascanuParams._fields):
        raise TypeError(
            f"`params` must be a PascanuParams(W_rec, W_in, b), got {type(params).__name__}"
        )
    W_rec, W_in = jnp.shape(params.W_rec), jnp.shape(params.W_in)
    if len(W_rec) != 2 or W_rec[0] != W_rec[1]:
        raise ValueError(f"`params.W_rec` must be square (N, N), got shape {W_rec}")
    n = W_rec[0]
    if len(W_in) != 2 or W_in[0] != n:
        raise ValueError(
            f"`params.W_in` must have shape ({n}, M) to match `params.W_rec` {W_rec}, got {W_in}"
        )
    check_shape("params.b", params.b, (n,), f" to match `params.W_rec` {W_rec}")
    check_shape("x", x, (n,), f" (one example) to match `params.W_rec` {W_rec}")
    check_shape("u", u, (W_in[1],), f" (one example) to match `params.W_in` {W_in}")


def pascanu_step(
    x: jax.Array, u: jax.Array, params: PascanuParams, *, activation: ActivationLike = "tanh"
) -> jax.Array:
    """One step ``x_t = W_rec σ(x_{t-1}) + W_in u_t + b`` for one example.

    Arguments:
        x: state ``(N,)``.
        u: input ``(M,)``.
        params: ``PascanuParams``.
        activation: a name in ``ACTIVATIONS``, an ``Activation`` or an elementwise callable.

    Analyzers take it as it is with ``params=`` (no recompilation when the parameters
    change), or as ``functools.partial(pascanu_step, params=p, activation="tanh")``.

    Raises:
        TypeError, ValueError: at trace time, when ``params`` lacks a field or a shape
            does not match ``W_rec`` and ``W_in`` (nothing is broadcast).
    """
    _check_step_args(x, u, params)
    sigma = get_activation(activation)
    return params.W_rec @ sigma(x) + params.W_in @ u + params.b


def pascanu_unroll(
    params: PascanuParams, x0: jax.Array, inputs: jax.Array, *, activation: ActivationLike = "tanh"
) -> jax.Array:
    """Trajectory ``(T, N)`` of the Pascanu RNN driven by ``inputs`` ``(T, M)``.

    Raises:
        ValueError: when ``params`` are malformed or non-finite, or when ``x0`` or
            ``inputs`` do not match ``W_rec`` and ``W_in``.
    """
    params = validate_pascanu_params(params)
    n, m = params.W_in.shape
    x0 = check_array("x0", x0, ndim=1)
    if x0.shape != (n,):
        raise ValueError(f"`x0` must have shape ({n},) to match `W_rec`, got {x0.shape}")
    inputs = check_array("inputs", inputs, ndim=2)
    if inputs.shape[1] != m:
        raise ValueError(
            f"`inputs` must have shape (T, {m}) to match `W_in`, got {inputs.shape}"
        )
    check_positive_int("len(inputs)", inputs.shape[0])

    return unroll(partial(pascanu_step, params=params, activation=activation), x0, inputs)


def pascanu_bound_log_norms(
    params: PascanuParams, num_lags: int, *, activation: ActivationLike = "tanh"
) -> jax.Array:
    """Pascanu's bound ``log ∏_{i≤k} ‖W_rec‖ γ = k log(‖W_rec‖₂ γ)`` for lags k = 1..num_lags.

    ``γ = max |σ'|`` (1/4 for sigmoid, 1 for tanh), the activation's
    ``max_derivative``. Index k-1 holds lag k, as in ``JacobianProductNorms.log_norms``.

    Raises:
        ValueError: naming ``activation`` when it has no known ``max_derivative`` (a plain
            function: wrap it as ``jaxgrad.models.Activation(fn, max_derivative=γ)``).

    Example:
        >>> p = init_pascanu(jax.random.key(0), 8, 1, scaling="spectral_norm", value=2.0)
        >>> b = pascanu_bound_log_norms(p, 3, activation="sigmoid")   # k log(2 · 1/4)
        >>> [round(float(v), 4) for v in b]
        [-0.6931, -1.3863, -2.0794]
    """
    check_positive_int("num_lags", num_lags)
    if not isinstance(params, PascanuParams):
        raise TypeError(f"`params` must be a PascanuParams, got {type(params).__name__}")
    W_rec = check_square("W_rec", params.W_rec)
    gamma = get_activation(activation).require_max_derivative("activation")
    rate = jnp.log(jnp.linalg.norm(W_rec, ord=2)) + jnp.log(gamma)
    return rate * jnp.arange(1, num_lags + 1, dtype=W_rec.dtype)


class OneUnitParams(NamedTuple):
    """Parameters of Pascanu's one-unit network ``x_t = w σ(x_{t-1}) + b``."""

    w: jax.Array
    b: jax.Array


def one_unit_step(
    x: jax.Array, u: Any, params: OneUnitParams, *, activation: ActivationLike = "sigmoid"
) -> jax.Array:
    """One step of ``x_t = w σ(x_{t-1}) + b`` (Pascanu et al. 2013, section 2.3).

    ``u`` is ignored (the network is autonomous); it is accepted so that the step has
    the ``step(x, u, params)`` shape every analyzer takes.
    """
    if not (hasattr(params, "w") and hasattr(params, "b")):
        raise TypeError(f"`params` must be a OneUnitParams, got {type(params).__name__}")
    return params.w * get_activation(activation)(x) + params.b
