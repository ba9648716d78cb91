"""Gradient flow: per-layer and per-timestep gradient norms in one backward pass.

Layers: zero "probes" are added to every layer's output ``h_l``; the gradient of the loss
with respect to the probes is ``∂L/∂h_l`` for all layers at once. ``layer_gradient_flow``
makes this pass over any sequence of layers (callables, a Flax ``nnx.Sequential``, layers
of different widths); ``mlp_gradient_flow`` makes the same pass over the library's MLP,
its layers 2..depth scanned (or unrolled up to ``MAX_UNROLLED_DEPTH``).
Recurrent model: ``∂L/∂x_t`` for every t comes from one reverse ``lax.scan`` of
vector-Jacobian products whose cotangent is kept as a vector and a power-of-two exponent,
so it is measured far below (or above) the float range.

Norms are taken with ``scaled_norm``: the entries are scaled by a power of two before they
are squared, so a gradient of 7e-31 has norm 7e-31 (not 0, as ``sqrt(sum(g**2))`` and
``jnp.linalg.norm`` give in float32) and one of 1e30 has norm 1e30 (not inf). Every norm
comes with its natural log (``log_*`` fields), which stays finite even where the norm
itself leaves the floating-point range; a gradient of exactly 0 has log-norm ``-inf``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._labels import check_class_labels, softmax_cross_entropy
from .._validation import check_array, check_choice, check_finite
from ..models.activations import get_activation
from ..models.mlp import MLPConfig, MLPParams, mlp_apply, normalise_preactivations
from ..systems import (
    NO_PARAMS,
    analyzer,
    as_step,
    check_params_finite,
    check_step,
    is_nnx_module,
)
from ._scaling import mul_pow2, pow2, pow2_exponent


def _cross_entropy(output, y):
    # NaN (loss and gradients) for a label outside [0, K) under jit; concrete labels are
    # refused by mlp_gradient_flow before this runs.
    return jnp.mean(softmax_cross_entropy(output, y))


def _mse(output, y):
    return jnp.mean((output - y) ** 2)


def _sum(output, y):
    del y
    return jnp.sum(output)


#: Built-in losses ``loss(output, y) -> scalar``. ``"sum"`` backpropagates a cotangent of
#: ones from the output, as the deep sigmoid network of the web article "Deep Learning:
#: Vanishing Gradient Problem Explained" does.
LOSSES: dict[str, Callable] = {"cross_entropy": _cross_entropy, "mse": _mse, "sum": _sum}


# --------------------------------------------------------------------------- scaled norms


class ScaledNorm(NamedTuple):
    """``norm = ‖x‖₂`` and ``log_norm = log ‖x‖₂`` (natural log; ``-inf`` for ``x = 0``)."""

    norm: jax.Array
    log_norm: jax.Array


def scaled_norm(x: Any, axis: int | tuple[int, ...] | None = None) -> ScaledNorm:
    """The 2-norm of ``x`` over ``axis`` and its log, without underflow or overflow.

    ``‖x‖ = 2^{-k} ‖2^k x‖`` with ``2^k`` the power of two that brings ``max |x|`` into
    ``[0.5, 1)`` (``|k| ≤ 126`` in float32): the scaling is exact, and the squares of the
    scaled entries neither overflow nor, for the entries that matter, underflow.
    ``sqrt(sum(x**2))`` and (on CPU, in float32) ``jnp.linalg.norm`` square unscaled
    entries and return 0 for ``x = 7e-31`` (its square is below float32's smallest number)
    and ``inf`` for ``x = 1e30``; dividing by ``max |x|`` is no cure either, as XLA turns
    it into a product with ``1 / max |x|``, which is 0 for ``max |x| > 8.5e37``.
    ``log_norm = log ‖2^k x‖ − k log 2`` is finite for any nonzero finite ``x``; ``norm``
    is right to rounding wherever ``‖x‖`` itself is representable. Zero gives
    ``(0, -inf)``; inf or NaN entries give inf/NaN in both. (XLA on CPU treats subnormal
    numbers, below 1.2e-38 in float32, as 0.)

    Arguments:
        x: a real or complex array.
        axis: axes to reduce (all by default), as for ``jnp.linalg.norm`` of a vector.

    Returns:
        ``ScaledNorm(norm, log_norm)`` with ``x``'s shape less ``axis``, in its real dtype.

    Example:
        >>> print(f"{float(scaled_norm(jnp.full(3, 7e-31)).norm):.4e}")   # not 0
        1.2124e-30
        >>> scaled_norm(jnp.zeros((4, 3)), axis=1).log_norm.tolist()
        [-inf, -inf, -inf, -inf]
    """
    s, k = _scaled_root_sum_of_squares(check_array("x", x), axis)
    return ScaledNorm(s * pow2(-k, s.dtype), jnp.log(s) - k.astype(s.dtype) * math.log(2.0))


def _scaled_root_sum_of_squares(x: jax.Array, axis: Any) -> tuple[jax.Array, jax.Array]:
    """``(s, k)`` with ``‖x‖ = s · 2^{-k}`` over ``axis``, ``2^k max|x| ∈ [0.5, 1)``."""
    # |x| only inside the max: a shared jnp.abs(x) is written out whole, one more pass over
    # x than the norm needs (XLA does not fuse it into both reductions that read it).
    m = jnp.max(jnp.abs(x), axis=axis, keepdims=True, initial=jnp.zeros((), x.dtype))
    bound = jnp.finfo(x.dtype).maxexp - 2  # 2^±bound are normal numbers
    # m = 0, inf or NaN give k = ±bound: the result is then 0, inf or NaN as it should be.
    k = jnp.clip(-pow2_exponent(m), -bound, bound)
    s = jnp.sqrt(jnp.sum((x * pow2(k, x.dtype)) ** 2, axis=axis))
    return s, jnp.reshape(k, s.shape)


def tree_scaled_norm(tree: Any) -> ScaledNorm:
    """``scaled_norm`` of all the leaves of a pytree together (a global gradient norm).

    Each leaf (each slice along the leading axis of a leaf with 3 or more axes, i.e. each
    layer of stacked layers) is summed with its own exact power of two, as ``scaled_norm``
    does, and the partial sums are combined with exact power-of-two shifts, so the result
    is as accurate as ``scaled_norm`` of the leaves concatenated (without concatenating
    them). The per-layer sums are the ones ``scaled_norm(leaf, axis=(1, ...))`` computes,
    so where a monitor also takes per-layer norms (``mlp_layer_monitor``) XLA computes them
    once for both. An empty tree gives ``(0, -inf)``.

    Example:
        >>> norm = tree_scaled_norm({"a": jnp.full(2, 1e30), "b": jnp.full(1, 1e30)}).norm
        >>> print(f"{float(norm):.4e}")   # √3 · 1e30, not inf
        1.7321e+30
    """
    leaves = [check_array("tree", leaf) for leaf in jax.tree_util.tree_leaves(tree)]
    dtype = jnp.result_type(*leaves) if leaves else jnp.result_type(float)
    leaves = [leaf.astype(dtype) for leaf in leaves] or [jnp.zeros((0,), dtype)]
    parts = [_scaled_root_sum_of_squares(a, tuple(range(1, a.ndim)) if a.ndim >= 3 else None)
             for a in leaves]
    s = jnp.concatenate([jnp.ravel(p[0]) for p in parts])
    k = jnp.concatenate([jnp.ravel(p[1]) for p in parts])
    # ‖x‖² = Σ s_i² 4^{-k_i} = 4^{-K} Σ (s_i 2^{K-k_i})² with K = min k_i (the largest part):
    # the shifts are exact; a part they push below the float range is negligible.
    K = jnp.min(k)
    total = jnp.sqrt(jnp.sum(mul_pow2(s, K - k) ** 2))
    return ScaledNorm(total * pow2(-K, dtype), jnp.log(total) - K.astype(dtype) * math.log(2.0))


class MLPGradientFlow(NamedTuple):
    """Per-layer gradient statistics, each ``(depth,)`` with layer 1 (next to the input) first.

    Attributes:
        loss: the loss value.
        weight_grad_norms: ``‖∂L/∂W_l‖_F``.
        bias_grad_norms: ``‖∂L/∂b_l‖``.
        activation_grad_norms: ``‖∂L/∂h_l‖_F`` over the batch.
        mean_abs_preactivation_grads: ``mean |∂L/∂z_l|`` (the "average gradient magnitude"
            per layer of the web article "Vanishing Gradient Problem Explained").
        log_weight_grad_norms, log_bias_grad_norms, log_activation_grad_norms: natural
            logs of the three norms, finite wherever the gradient is nonzero (even where
            the norm leaves the float range); ``-inf`` for a gradient of exactly 0.

    The norms are ``scaled_norm``s: a layer whose gradient entries are 1e-30 (whose
    squares underflow in float32) or 1e30 is reported as such, not as 0 or inf.
    """

    loss: jax.Array
    weight_grad_norms: jax.Array
    bias_grad_norms: jax.Array
    activation_grad_norms: jax.Array
    mean_abs_preactivation_grads: jax.Array
    log_weight_grad_norms: jax.Array
    log_bias_grad_norms: jax.Array
    log_activation_grad_norms: jax.Array


def mlp_layer_grad_norms(grads: MLPParams) -> tuple[ScaledNorm, ScaledNorm]:
    """Per-layer ``scaled_norm`` of ``∂L/∂W_l`` and ``∂L/∂b_l``, ``(depth,)`` each, layer 1 first.

    ``grads`` is a gradient shaped like ``MLPParams`` (the readout is not included).
    """
    first_W, first_b = scaled_norm(grads.first.W), scaled_norm(grads.first.b)
    hidden_W, hidden_b = scaled_norm(grads.hidden.W, axis=(1, 2)), scaled_norm(grads.hidden.b, 1)
    cat = lambda first, hidden: ScaledNorm(  # noqa: E731
        *(jnp.concatenate([a[None], b]) for a, b in zip(first, hidden, strict=True))
    )
    return cat(first_W, hidden_W), cat(first_b, hidden_b)


#: ``mlp_gradient_flow`` unrolls the layers of networks up to this depth (straight-line
#: code, no loop slices or zero-filled stacked gradients; compile time grows with depth).
MAX_UNROLLED_DEPTH = 64


def layer_norms(grads: Any) -> ScaledNorm:
    """Per-layer ``scaled_norm``, ``(L,)``: of each entry of a list of per-layer gradient
    pytrees (``tree_scaled_norm``), or of each slice of an array stacked along a leading
    layer axis. An entry with no arrays (a layer without parameters) gives ``(0, -inf)``.
    """
    if isinstance(grads, (list, tuple)):
        parts = [tree_scaled_norm(g) for g in grads]
        # a layer without arrays gives the default float; take the layers' own dtype
        dtypes = [p.norm.dtype for p, g in zip(parts, grads, strict=True)
                  if jax.tree_util.tree_leaves(g)]
        dtype = dtypes[0] if dtypes else parts[0].norm.dtype
        return ScaledNorm(*(jnp.stack([v.astype(dtype) for v in a])
                            for a in zip(*parts, strict=True)))
    return scaled_norm(grads, axis=tuple(range(1, jnp.ndim(grads))))


def _probed_flow(apply: Callable, params: Any, probes: Any, loss_fn: Callable, y: Any):
    """The one per-layer gradient pass: ``(loss, aux, ∂L/∂params, ∂L/∂probes, ‖∂L/∂h_l‖)``.

    ``apply(params, probes) -> (output, aux)`` adds ``probes[l]`` (zeros) to the output
    ``h_l`` of each layer; the gradient with respect to the probes is ``∂L/∂h_l`` for every
    layer in one backward pass. ``probes`` is a list (layers of any widths) or an array
    stacked along a leading layer axis.
    """

    def objective(params, probes):
        out, aux = apply(params, probes)
        return loss_fn(out, y), aux

    (value, aux), (g_params, g_probes) = jax.value_and_grad(
        objective, argnums=(0, 1), has_aux=True
    )(params, probes)
    return value, aux, g_params, g_probes, layer_norms(g_probes)


@functools.partial(jax.jit, static_argnames=("config", "loss"))
def _mlp_flow(params, x, y, config, loss):
    probes = jnp.zeros((config.depth, x.shape[0], config.width), x.dtype)
    unroll = config.depth <= MAX_UNROLLED_DEPTH
    apply = functools.partial(_mlp_apply_probed, x=x, config=config, unroll=unroll)
    value, trace, g_params, g_probes, h = _probed_flow(apply, params, probes, _loss_fn(loss), y)
    # ∂L/∂z_l by the chain rule through the layer's normalisation and activation:
    # a vjp of each layer's z -> h map with cotangent ∂L/∂h_l (vmapped over layers).
    _, vjp = jax.vjp(
        lambda z: _post_activation(z, params, config), trace.preactivations
    )
    (g_pre,) = vjp(g_probes)
    W, b = mlp_layer_grad_norms(g_params)
    return MLPGradientFlow(value, W.norm, b.norm, h.norm, jnp.mean(jnp.abs(g_pre), axis=(1, 2)),
                           W.log_norm, b.log_norm, h.log_norm)


def _mlp_apply_probed(params, probes, *, x, config, unroll):
    return mlp_apply(params, x, config, probes=probes, unroll=unroll)


def _loss_fn(loss: str | Callable) -> Callable:
    return LOSSES[loss] if isinstance(loss, str) else loss


def _check_loss(loss: Any) -> None:
    if isinstance(loss, str):
        check_choice("loss", loss, LOSSES)
    elif not callable(loss):
        raise TypeError(f"`loss` must be a name or a callable, got {type(loss).__name__}")


def _post_activation(z: jax.Array, params: MLPParams, config: MLPConfig) -> jax.Array:
    """The part of each layer's output that depends on its own ``z_l``: σ(norm(z_l))."""
    sigma = get_activation(config.activation)
    if params.norm is None:
        return sigma(z)
    scale, shift = params.norm
    return jax.vmap(lambda zl, s, t: sigma(normalise_preactivations(zl, config.norm, s, t)))(
        z, scale, shift)


def mlp_gradient_flow(
    params: MLPParams,
    x: jax.Array,
    y: Any,
    config: MLPConfig,
    *,
    loss: str | Callable = "cross_entropy",
) -> MLPGradientFlow:
    """Per-layer ``‖∂L/∂W_l‖`` and ``‖∂L/∂h_l‖`` of a deep MLP on a batch, in one pass.

    The pass of ``layer_gradient_flow`` (zero probes on every ``h_l``), made over the
    library's MLP with its layers 2..depth scanned (unrolled up to ``MAX_UNROLLED_DEPTH``
    layers), and with ``‖∂L/∂θ_l‖`` split into weights and biases. Any other network
    (a Flax ``nnx`` MLP, layers of different widths) goes to ``layer_gradient_flow``.

    Arguments:
        params: ``MLPParams``; ``config`` the ``MLPConfig`` they were made for.
        x: inputs ``(B, in_dim)``; ``y`` targets for ``loss`` (integer labels ``(B,)`` in
            ``[0, out_dim)``, or ``[0, width)`` without a readout, for ``"cross_entropy"``;
            anything, e.g. ``None``, for ``"sum"``).
        loss: a name in ``LOSSES`` or a callable ``loss(output, y) -> scalar`` (give the
            same callable object each time to reuse the compiled code).

    Returns:
        ``MLPGradientFlow`` with arrays of length ``depth``.

    Raises:
        ValueError: ``x`` is not ``(B, in_dim)``; for ``"cross_entropy"``, ``y`` is not
            ``(B,)`` or holds a label outside ``[0, out_dim)`` (traced labels cannot be
            checked: an out-of-range one makes the loss and all the norms NaN, it is
            never wrapped round to another class).

    Example:
        >>> cfg = MLPConfig(in_dim=100, width=100, depth=10, activation="sigmoid",
        ...                 init="normal", init_options=(("std", 0.01),))
        >>> flow = mlp_gradient_flow(jaxgrad.init_mlp(jax.random.key(0), cfg),
        ...                          jnp.ones((32, 100)), None, cfg, loss="sum")
        >>> g = flow.mean_abs_preactivation_grads   # layer 1 first
        >>> round(float(g[-1]), 2), bool(g[0] < 1e-14)   # 0.25 at the top, ~1e-15 at layer 1
        (0.25, True)
    """
    if not isinstance(config, MLPConfig):
        raise TypeError(f"`config` must be an MLPConfig, got {type(config).__name__}")
    _check_loss(loss)
    x = check_array("x", x, ndim=2)
    if x.shape[1] != config.in_dim:
        raise ValueError(f"`x` must have shape (B, {config.in_dim}), got {x.shape}")
    if loss == "cross_entropy":
        num_classes = config.width if config.out_dim is None else config.out_dim
        y = check_class_labels("y", y, num_classes)
        if y.shape != x.shape[:1]:
            raise ValueError(
                f"`y` must be labels of shape ({x.shape[0]},) to match `x`, got {y.shape}"
            )
    return _mlp_flow(params, x, y, config, loss)


class LayerGradientFlow(NamedTuple):
    """Per-layer gradient statistics, each ``(L,)`` with layer 1 (next to the input) first.

    Attributes:
        loss: the loss value.
        activation_grad_norms: ``‖∂L/∂h_l‖`` of each layer's output ``h_l`` (over the
            batch, if ``x`` has one; over every leaf of a pytree output).
        param_grad_norms: ``‖∂L/∂θ_l‖`` over all parameters of layer ``l`` (0 for a layer
            without parameters, such as an activation function).
        log_activation_grad_norms, log_param_grad_norms: their natural logs, finite
            wherever the gradient is nonzero (even outside the float range); ``-inf`` for
            a gradient of exactly 0.
        output: the network's output ``h_L``.
    """

    loss: jax.Array
    activation_grad_norms: jax.Array
    param_grad_norms: jax.Array
    log_activation_grad_norms: jax.Array
    log_param_grad_norms: jax.Array
    output: Any


@dataclasses.dataclass(frozen=True)
class _Unary:
    """``(h, _) -> f(h)``: a layer without parameters in the two-argument form."""

    f: Callable

    def __call__(self, h: Any, params: Any) -> Any:
        del params
        return self.f(h)


def _layer_sequence(layers: Any, x: jax.Array) -> tuple[list, bool]:
    """``(list of layers, whether module(x) must equal their composition)``."""
    if is_nnx_module(layers):
        from flax import nnx

        held = getattr(layers, "layers", None)
        if held is None or isinstance(held, (str, bytes)) or not hasattr(held, "__len__"):
            raise TypeError(
                f"`layers` is an nnx module ({type(layers).__name__}) without a `layers` "
                "sequence; pass nnx.Sequential, a module with a `layers` list, or a list "
                "of layer callables"
            )
        return list(held), not isinstance(layers, nnx.Sequential)
    if callable(layers) or not isinstance(layers, (list, tuple)):
        raise TypeError(
            f"`layers` must be a sequence of callables (or an nnx module holding one), got "
            f"{type(layers).__name__}"
        )
    return list(layers), False


def layer_gradient_flow(
    layers: Any,
    x: Any,
    y: Any,
    *,
    loss: str | Callable = "cross_entropy",
    params: Any = NO_PARAMS,
) -> LayerGradientFlow:
    """Per-layer ``‖∂L/∂h_l‖`` and ``‖∂L/∂θ_l‖`` of any layer sequence on a batch, in one pass.

    The network is ``h_0 = x``, ``h_l = layers[l-1](h_{l-1})`` (or
    ``layers[l-1](h_{l-1}, params[l-1])``), ``L = loss(h_L, y)``. Zero probes added to every
    ``h_l`` give ``∂L/∂h_l`` for all layers in one backward pass (the pass
    ``mlp_gradient_flow`` makes on the library's MLP); layers may have different widths
    and any output pytrees. The norms are ``scaled_norm``s, so a layer whose gradient is
    1e-30 (or 1e30) is reported as such, not as 0 (or inf).

    Arguments:
        layers: a list or tuple of layers, each a callable ``h -> h'`` (``params`` not
            given) or ``(h, params_l) -> h'``; a Flax ``nnx.Module`` in it is split into
            its structure and parameters (``jaxgrad.systems.as_step``), so its parameters'
            gradient is ``∂L/∂θ_l``. Or an ``nnx.Sequential`` (its layers), or an nnx module
            with a ``layers`` list: that module must compute the composition of its layers
            (checked against ``layers(x)``; a module that applies an activation between
            them is refused, pass its layers and activations as a list instead).
        x: the input ``h_0`` (e.g. ``(B, in_dim)``), passed to ``layers[0]`` as it is.
        y: targets for ``loss`` (integer labels of shape ``h_L.shape[:-1]`` in
            ``[0, h_L.shape[-1])`` for ``"cross_entropy"``; anything for ``"sum"``).
        loss: a name in ``LOSSES`` or ``loss(output, y) -> scalar`` (give the same object
            each time to reuse the compiled code).
        params: ``NO_PARAMS`` (default: each layer is called as ``layer(h)``, an nnx
            module with its own parameters), or a sequence of per-layer parameters, one
            per layer (``layer(h, params[l])``; for an nnx module, a state like its own).

    Returns:
        ``LayerGradientFlow`` with arrays of length ``L = len(layers)``.

    Raises:
        TypeError: ``layers`` is not a sequence of callables, ``loss`` is not a loss.
        ValueError: ``layers`` is empty, ``params`` has another length, a layer fails on
            the output of the one before (named ``layers[l]``, with the shapes), ``x`` is
            empty or not finite, or labels ``y`` do not fit the output.

    Example:
        >>> from flax import nnx
        >>> mlp = nnx.Sequential(nnx.Linear(4, 8, rngs=nnx.Rngs(0)), jax.nn.tanh,
        ...                      nnx.Linear(8, 3, rngs=nnx.Rngs(1)))
        >>> flow = layer_gradient_flow(mlp, jnp.ones((5, 4)), jnp.array([0, 1, 2, 0, 1]))
        >>> flow.param_grad_norms.shape, float(flow.param_grad_norms[1])   # tanh: no θ
        ((3,), 0.0)
    """
    _check_loss(loss)
    x = check_array("x", x)
    if x.size == 0:
        raise ValueError(f"`x` must have at least one element, got shape {x.shape}")
    check_finite("x", x)
    module = layers if is_nnx_module(layers) else None
    seq, check_module = _layer_sequence(layers, x)
    if not seq:
        raise ValueError("`layers` must hold at least one layer, got none")
    if params is not NO_PARAMS:
        if not isinstance(params, (list, tuple)) or len(params) != len(seq):
            got = len(params) if isinstance(params, (list, tuple)) else type(params).__name__
            raise ValueError(
                f"`params` must be a sequence of {len(seq)} per-layer parameters, one per "
                f"layer, got {got}"
            )
        check_params_finite(list(params))
    fns, values = [], []
    for i, layer in enumerate(seq):
        p = NO_PARAMS if params is NO_PARAMS else params[i]
        if is_nnx_module(layer):
            fn, p = as_step(layer, p)
        else:
            check_step(layer, f"layers[{i}]")
            fn = layer
            if p is NO_PARAMS:
                fn, p = _Unary(layer), None
        fns.append(fn)
        values.append(p)
    # Shapes of every h_l (the probes), and a clear error for a layer that does not fit.
    h = jax.ShapeDtypeStruct(x.shape, x.dtype)
    shapes = []
    for i, (fn, p) in enumerate(zip(fns, values, strict=True)):
        try:
            h = jax.eval_shape(fn, h, p)
        except Exception as err:
            raise ValueError(
                f"`layers[{i}]` failed on an input shaped "
                f"{jax.tree_util.tree_map(jnp.shape, h)}: {type(err).__name__}: {err}"
            ) from err
        for leaf in jax.tree_util.tree_leaves(h):
            if not jnp.issubdtype(leaf.dtype, jnp.floating):
                raise TypeError(
                    f"`layers[{i}]` must return floating arrays, got dtype {leaf.dtype}"
                )
        shapes.append(h)
    if loss == "cross_entropy":
        out = shapes[-1]
        if not isinstance(out, jax.ShapeDtypeStruct) or out.ndim < 1:
            raise ValueError(
                "`loss`='cross_entropy' needs logits (an array with a class axis) from the "
                f"last layer, got {jax.tree_util.tree_map(jnp.shape, out)}"
            )
        y = check_class_labels("y", y, out.shape[-1])
        if y.shape != out.shape[:-1]:
            raise ValueError(f"`y` must be labels of shape {out.shape[:-1]} to match the "
                             f"output {out.shape}, got {y.shape}")
    shapes = tuple((tree, tuple(leaves)) for leaves, tree in map(jax.tree_util.tree_flatten,
                                                                  shapes))
    flow = _layer_flow(values, x, y, fns=tuple(fns), shapes=shapes, loss=loss)
    if check_module:
        reference = module(x)
        same = jax.tree_util.tree_map(
            lambda a, b: bool(np.allclose(np.asarray(a), np.asarray(b), rtol=1e-4,
                                          atol=1e-5 * float(np.max(np.abs(b), initial=1.0)))),
            flow.output, reference)
        if not all(jax.tree_util.tree_leaves(same)):
            raise ValueError(
                f"`layers`: {type(module).__name__}(x) is not the composition of its "
                "`layers` (it applies something between them); pass the layers and what is "
                "applied between them as a list of callables"
            )
    return flow


@functools.partial(jax.jit, static_argnames=("fns", "shapes", "loss"))
def _layer_flow(params, x, y, *, fns, shapes, loss):
    probes = [tree.unflatten([jnp.zeros(s.shape, s.dtype) for s in leaves])
              for tree, leaves in shapes]

    def apply(params, probes):
        h = x
        for fn, p, probe in zip(fns, params, probes, strict=True):
            h = jax.tree_util.tree_map(jnp.add, fn(h, p), probe)
        return h, h

    value, out, g_params, _, h = _probed_flow(apply, list(params), probes, _loss_fn(loss), y)
    theta = layer_norms(list(g_params))
    return LayerGradientFlow(value, h.norm, theta.norm, h.log_norm, theta.log_norm, out)


class RecurrentGradientFlow(NamedTuple):
    """``loss`` and ``state_grad_norms[t-1] = ‖∂L/∂x_t‖`` for t = 1..T (time order).

    Attributes:
        loss: the loss value.
        state_grad_norms: ``(T,)`` ``‖∂L/∂x_t‖``; 0 where the norm is below the dtype's
            smallest normal number (1.2e-38 in float32), inf above its largest.
        log_state_grad_norms: ``(T,)`` ``log ‖∂L/∂x_t‖`` (natural log), measured over any
            range: the backward pass carries ``∂L/∂x_t`` as a vector scaled to ``max ≈ 1``
            and a power-of-two exponent, so ``‖∂L/∂x_t‖ = 10^-60`` in float32 is
            ``-138.155``, not ``-inf``. ``-inf`` only for a gradient of exactly 0.
    """

    loss: jax.Array
    state_grad_norms: jax.Array
    log_state_grad_norms: jax.Array


def recurrent_gradient_flow(
    step: Callable,
    x0: Any,
    inputs: Any,
    loss_fn: Callable,
    *,
    params: Any = NO_PARAMS,
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
        ``log_state_grad_norms`` measures it over any range: the backward pass is a
        reverse scan of vector-Jacobian products ``∂L/∂x_t = ∂ℓ/∂x_t + (∂x_{t+1}/∂x_t)ᵀ
        ∂L/∂x_{t+1}`` (``∂ℓ/∂x_t`` the direct partial of ``loss_fn``) whose cotangent is
        rescaled by an exact power of two at every step, so it neither underflows (as a
        plain backward pass does past float32's 1.2e-38, e.g. ``0.1^39``) nor overflows.

    Example:
        >>> flow = recurrent_gradient_flow(lambda x, u: 0.5 * x + u, jnp.ones(3),
        ...                                jnp.zeros((10, 3)), lambda xs: jnp.sum(xs[-1]))
        >>> # ‖∂L/∂x_t‖ = √3 · 0.5^(10-t): log-norms fall by log 2 per step back in time
        >>> [round(float(d), 4) for d in jnp.diff(flow.log_state_grad_norms)]
        [0.6931, 0.6931, 0.6931, 0.6931, 0.6931, 0.6931, 0.6931, 0.6931, 0.6931]
    """
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable, got {type(loss_fn).__name__}")
    return _recurrent_flow(step, x0, inputs, params=params, loss_fn=loss_fn)


@analyzer
def _recurrent_flow(f, x0_flat, unravel, inputs, *, loss_fn):
    grads = trajectory_state_grads(f, x0_flat, unravel, inputs, loss_fn)
    return RecurrentGradientFlow(grads.loss, grads.norms, grads.log_norms)


class StateGrads(NamedTuple):
    """``∂L/∂x_t`` for t = 1..T along a trajectory (``trajectory_state_grads``), flat states.

    Attributes:
        loss: the loss value.
        states: ``(T, D)`` the trajectory ``x_1..x_T`` as flat vectors.
        grads: ``(T, D)`` ``∂L/∂x_t`` as plain floats (0 or inf outside the float range).
        scaled_grads: ``(T, D)`` ``g_t`` with ``∂L/∂x_t = g_t · 2^exponents[t]``,
            ``max|g_t| < 2``.
        exponents: ``(T,)`` int32 power-of-two exponents.
        norms: ``(T,)`` ``‖∂L/∂x_t‖`` (0 below the smallest normal number, inf above the
            largest).
        log_norms: ``(T,)`` ``log ‖∂L/∂x_t‖`` over any range (``-inf`` only for exactly 0).
    """

    loss: jax.Array
    states: jax.Array
    grads: jax.Array
    scaled_grads: jax.Array
    exponents: jax.Array
    norms: jax.Array
    log_norms: jax.Array


def trajectory_state_grads(
    f: Callable, x0_flat: jax.Array, unravel: Callable, inputs: Any, loss_fn: Callable
) -> StateGrads:
    """``∂L/∂x_t`` for every t of a trajectory in one backward pass (the total derivative).

    The one implementation behind ``recurrent_gradient_flow``, Pascanu's Ω and the
    sequence-training monitors: a reverse scan of vector-Jacobian products
    ``∂L/∂x_t = ∂ℓ/∂x_t + (∂x_{t+1}/∂x_t)ᵀ ∂L/∂x_{t+1}`` (``∂ℓ/∂x_t`` the direct partial
    of ``loss_fn``) whose cotangent is rescaled by an exact power of two at every step, so
    it neither underflows nor overflows. Differentiable (``jax.grad`` goes through it).

    Arguments:
        f: a flat step ``f(x_flat, u)`` (``jaxgrad.systems.flat_step``).
        x0_flat: ``(D,)`` initial state; ``unravel`` turns a flat state back into a pytree.
        inputs: leading time axis ``T``.
        loss_fn: ``loss_fn(states) -> scalar`` on the trajectory ``x_1..x_T`` stacked on a
            leading axis (a pytree like the state with that axis).

    Returns:
        ``StateGrads``.
    """

    def forward(x, u):
        x_next = f(x, u)
        return x_next, x_next

    _, states = jax.lax.scan(forward, x0_flat, inputs)  # x_1..x_T, (T, D)
    # Direct partials ∂loss_fn/∂x_t; the total derivative adds what flows back from x_{t+1}.
    value, direct = jax.value_and_grad(lambda s: loss_fn(jax.vmap(unravel)(s)))(states)
    previous = jnp.concatenate([x0_flat[None], states[:-1]])  # x_0..x_{T-1}

    def backward(carry, xs):
        # carry: (c, e) with (∂x_{t+1}/∂x_t)ᵀ ∂L/∂x_{t+1} = c · 2^e.
        c, e = carry
        d, x_prev, u = xs
        g, E = _add_scaled(d, c, e)  # ∂L/∂x_t = g · 2^E, max |g| < 2
        _, vjp = jax.vjp(lambda x: f(x, u), x_prev)
        (c_prev,) = vjp(g)  # (∂x_t/∂x_{t-1})ᵀ g: linear, so the exponent E carries over
        return (c_prev, E), (g, E)

    init = (jnp.zeros_like(x0_flat), jnp.zeros((), jnp.int32))
    _, (g, E) = jax.lax.scan(backward, init, (direct, previous, inputs), reverse=True)
    norm_g, log_norm_g = scaled_norm(g, axis=1)  # inf/NaN propagate through both
    log_norms = log_norm_g + E.astype(log_norm_g.dtype) * math.log(2.0)
    return StateGrads(value, states, mul_pow2(g, E[:, None]), g, E, mul_pow2(norm_g, E),
                      log_norms)


def _add_scaled(d: jax.Array, c: jax.Array, e: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(g, E)`` with ``g · 2^E = d + c · 2^e`` and ``max |g| < 2``.

    Either term may be far below the other, or outside the float range on its own;
    only the negligible one is lost. With an inf or NaN in ``d`` or ``c``, ``g = d + c``
    (inf or NaN) and ``E = 0``.
    """
    md, mc = jnp.max(jnp.abs(d)), jnp.max(jnp.abs(c))
    finite = jnp.isfinite(md) & jnp.isfinite(mc)
    zero = jnp.zeros((), d.dtype)
    ed = pow2_exponent(jnp.where(finite, md, zero))
    ec = e + pow2_exponent(jnp.where(finite, mc, zero))
    has_d, has_c = md > 0, mc > 0
    # E = 0 for a zero sum, so that the exponent does not drift over zero steps.
    E = jnp.where(has_d & has_c, jnp.maximum(ed, ec),
                  jnp.where(has_d, ed, jnp.where(has_c, ec, 0)))
    g = jnp.where(has_d, mul_pow2(d, -E), zero) + jnp.where(has_c, mul_pow2(c, e - E), zero)
    return jnp.where(finite, g, d + c), jnp.where(finite, E, 0)
