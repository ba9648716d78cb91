"""Gradient flow: per-layer and per-timestep gradient norms in one backward pass.

Zero "probes" are added to every hidden activation ``h_l`` (MLP) or state ``x_t``
(recurrent model); the gradient of the loss with respect to the probes is ``∂L/∂h_l``
or ``∂L/∂x_t`` for all layers or steps at once, with no Python loop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from .._validation import check_array, check_choice
from ..models.activations import get_activation
from ..models.mlp import MLPConfig, MLPParams, _normalise, mlp_apply
from ._stepfn import _NO_PARAMS, bind, prepare


def _cross_entropy(output, y):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(output, y))


def _mse(output, y):
    return jnp.mean((output - y) ** 2)


def _sum(output, y):
    del y
    return jnp.sum(output)


#: Built-in losses ``loss(output, y) -> scalar``. ``"sum"`` backpropagates a cotangent of
#: ones from the output, as seed 002's deep sigmoid network does.
LOSSES: dict[str, Callable] = {"cross_entropy": _cross_entropy, "mse": _mse, "sum": _sum}


class MLPGradientFlow(NamedTuple):
    """Per-layer gradient statistics, each ``(depth,)`` with layer 1 (next to the input) first.

    Attributes:
        loss: the loss value.
        weight_grad_norms: ``‖∂L/∂W_l‖_F``.
        bias_grad_norms: ``‖∂L/∂b_l‖``.
        activation_grad_norms: ``‖∂L/∂h_l‖_F`` over the batch.
        mean_abs_preactivation_grads: ``mean |∂L/∂z_l|`` (seed 002's "average gradient
            magnitude" per layer).
    """

    loss: jax.Array
    weight_grad_norms: jax.Array
    bias_grad_norms: jax.Array
    activation_grad_norms: jax.Array
    mean_abs_preactivation_grads: jax.Array


def _layer_norms(grads: MLPParams) -> tuple[jax.Array, jax.Array]:
    W = jnp.concatenate([jnp.linalg.norm(grads.first.W)[None],
                         jnp.sqrt(jnp.sum(grads.hidden.W**2, axis=(1, 2)))])
    b = jnp.concatenate([jnp.linalg.norm(grads.first.b)[None],
                         jnp.sqrt(jnp.sum(grads.hidden.b**2, axis=1))])
    return W, b


@functools.partial(jax.jit, static_argnames=("config", "loss"))
def _mlp_flow(params, x, y, config, loss):
    loss_fn = LOSSES[loss] if isinstance(loss, str) else loss
    probes = jnp.zeros((config.depth, x.shape[0], config.width), x.dtype)

    def objective(params, probes):
        out, trace = mlp_apply(params, x, config, probes=probes)
        return loss_fn(out, y), trace

    (value, trace), (g_params, g_probes) = jax.value_and_grad(
        objective, argnums=(0, 1), has_aux=True
    )(params, probes)
    # ∂L/∂z_l by the chain rule through the layer's normalisation and activation:
    # a vjp of each layer's z -> h map with cotangent ∂L/∂h_l (vmapped over layers).
    _, vjp = jax.vjp(
        lambda z: _post_activation(z, params, config), trace.preactivations
    )
    (g_pre,) = vjp(g_probes)
    W, b = _layer_norms(g_params)
    h = jnp.sqrt(jnp.sum(g_probes**2, axis=(1, 2)))
    return MLPGradientFlow(value, W, b, h, jnp.mean(jnp.abs(g_pre), axis=(1, 2)))


def _post_activation(z: jax.Array, params: MLPParams, config: MLPConfig) -> jax.Array:
    """The part of each layer's output that depends on its own ``z_l``: σ(norm(z_l))."""
    sigma = get_activation(config.activation)
    if params.norm is None:
        return sigma(z)
    scale, shift = params.norm
    return jax.vmap(lambda zl, s, t: sigma(_normalise(zl, config.norm, s, t)))(z, scale, shift)


def mlp_gradient_flow(
    params: MLPParams,
    x: jax.Array,
    y: Any,
    config: MLPConfig,
    *,
    loss: str | Callable = "cross_entropy",
) -> MLPGradientFlow:
    """Per-layer ``‖∂L/∂W_l‖`` and ``‖∂L/∂h_l‖`` of a deep MLP on a batch, in one pass.

    Arguments:
        params: ``MLPParams``; ``config`` the ``MLPConfig`` they were made for.
        x: inputs ``(B, in_dim)``; ``y`` targets for ``loss`` (integer labels ``(B,)`` for
            ``"cross_entropy"``; anything, e.g. ``None``, for ``"sum"``).
        loss: a name in ``LOSSES`` or a callable ``loss(output, y) -> scalar`` (give the
            same callable object each time to reuse the compiled code).

    Returns:
        ``MLPGradientFlow`` with arrays of length ``depth``.

    Example:
        >>> cfg = MLPConfig(in_dim=100, width=100, depth=10, activation="sigmoid",
        ...                 init="normal", init_options=(("std", 0.01),))
        >>> flow = mlp_gradient_flow(init_mlp(jax.random.key(0), cfg),
        ...                          jnp.ones((32, 100)), None, cfg, loss="sum")
    """
    if not isinstance(config, MLPConfig):
        raise TypeError(f"`config` must be an MLPConfig, got {type(config).__name__}")
    if isinstance(loss, str):
        check_choice("loss", loss, LOSSES)
    elif not callable(loss):
        raise TypeError(f"`loss` must be a name or a callable, got {type(loss).__name__}")
    x = check_array("x", x, ndim=2)
    if x.shape[1] != config.in_dim:
        raise ValueError(f"`x` must have shape (B, {config.in_dim}), got {x.shape}")
    return _mlp_flow(params, x, y, config, loss)


class RecurrentGradientFlow(NamedTuple):
    """``loss`` and ``state_grad_norms[t-1] = ‖∂L/∂x_t‖`` for t = 1..T (time order)."""

    loss: jax.Array
    state_grad_norms: jax.Array


def recurrent_gradient_flow(
    step: Callable,
    x0: Any,
    inputs: Any,
    loss_fn: Callable,
    *,
    params: Any = _NO_PARAMS,
) -> RecurrentGradientFlow:
    """Per-timestep ``‖∂L/∂x_t‖`` of a loss on a recurrent trajectory, in one backward pass.

    Arguments:
        step: ``step(x, u)`` or, with ``params``, ``step(x, u, params)``.
        x0: initial state (any pytree).
        inputs: leading time axis ``T``.
        loss_fn: ``loss_fn(states) -> scalar`` where ``states`` is the trajectory
            ``x_1..x_T`` stacked on a leading axis (a pytree like ``x0`` with that axis).

    Returns:
        ``RecurrentGradientFlow``; the norm at time t counts every path from ``x_t`` to
        the loss (the total derivative), as backpropagation through time sees it.

    Example:
        >>> flow = recurrent_gradient_flow(lambda x, u: 0.5 * x + u, jnp.ones(3),
        ...                                jnp.zeros((10, 3)), lambda xs: jnp.sum(xs[-1]))
        >>> # ‖∂L/∂x_t‖ = √3 · 0.5^(10-t)
    """
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable, got {type(loss_fn).__name__}")
    _, _, inputs = prepare(step, x0, inputs, None, params)
    no_params = params is _NO_PARAMS
    return _recurrent_flow(step, no_params, loss_fn, x0, None if no_params else params, inputs)


@functools.partial(jax.jit, static_argnames=("step", "no_params", "loss_fn"))
def _recurrent_flow(step, no_params, loss_fn, x0, params, inputs):
    f = bind(step, _NO_PARAMS if no_params else params)
    T = jax.tree_util.tree_leaves(inputs)[0].shape[0]
    probes = jax.tree_util.tree_map(lambda a: jnp.zeros((T,) + jnp.shape(a), a.dtype), x0)

    def objective(probes):
        def body(x, xs):
            u, probe = xs
            x_next = jax.tree_util.tree_map(jnp.add, f(x, u), probe)
            return x_next, x_next

        _, states = jax.lax.scan(body, x0, (inputs, probes))
        return loss_fn(states)

    value, g = jax.value_and_grad(objective)(probes)
    flat = jax.vmap(lambda tree: ravel_pytree(tree)[0])(g)
    return RecurrentGradientFlow(value, jnp.linalg.norm(flat, axis=1))
