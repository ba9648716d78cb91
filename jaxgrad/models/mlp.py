"""Deep MLPs whose identical hidden layers are stacked and scanned.

Layer l (l = 1..depth) computes the pre-activation ``z_l = h_{l-1} W_l + b_l``, an
optional normalisation ``n_l = γ_l ⊙ norm(z_l) + β_l`` (batch statistics over the batch
axis, or layer statistics over the feature axis), and

    h_l = σ(n_l)                 (plain)
    h_l = h_{l-1} + σ(n_l)       (residual, layers 2..depth where shapes match)

An optional linear readout maps ``h_depth`` to ``out_dim`` outputs (``out_dim=None``
returns ``h_depth`` itself, as in the deep sigmoid network of
the web article "Deep Learning: Vanishing Gradient Problem Explained"). Layer 1 maps
``in_dim -> width``; layers 2..depth share a shape and live in stacked arrays with a
leading axis of length ``depth - 1`` that ``lax.scan`` walks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._validation import check_array, check_choice, check_key, check_positive_int, check_shape
from .activations import ActivationLike, get_activation
from .initializers import INITIALIZERS, get_initializer

NORMS = (None, "batch", "layer")


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    """Static description of a deep MLP (hashable, so it can be a ``jit`` static argument).

    Attributes:
        in_dim, width, depth: input size, hidden width, number of hidden layers (>= 1).
        out_dim: size of a linear readout, or ``None`` for none.
        activation: a name in ``ACTIVATIONS``, an ``Activation`` or an elementwise
            callable (hashable, as the config is).
        init: a name in ``INITIALIZERS``; ``init_options`` its keyword options as a tuple
            of pairs, e.g. ``(("std", 0.01),)``; a dict ``{"std": 0.01}`` is accepted and
            stored as the tuple of its items sorted by name (so the config stays hashable).
        residual: add skip connections around layers 2..depth.
        norm: ``None``, ``"batch"`` or ``"layer"``.
    """

    in_dim: int
    width: int
    depth: int
    out_dim: int | None = None
    activation: ActivationLike = "relu"
    init: str = "he"
    init_options: tuple[tuple[str, Any], ...] = ()
    residual: bool = False
    norm: str | None = None

    def __post_init__(self):
        check_positive_int("in_dim", self.in_dim)
        check_positive_int("width", self.width)
        check_positive_int("depth", self.depth)
        if self.out_dim is not None:
            check_positive_int("out_dim", self.out_dim)
        get_activation(self.activation)  # a known name or a callable
        try:
            hash(self.activation)
        except TypeError:
            raise TypeError(f"`activation` must be hashable (the config is a jit static "
                            f"argument), got {type(self.activation).__name__}") from None
        check_choice("init", self.init, INITIALIZERS)
        check_choice("norm", self.norm, NORMS)
        object.__setattr__(self, "init_options", _options_tuple(self.init_options))
        get_initializer(self.init, **dict(self.init_options))  # options are checked here


def _options_tuple(options: Any) -> tuple[tuple[str, Any], ...]:
    """``init_options`` as a hashable tuple of ``(name, value)`` pairs (a dict is sorted)."""
    if isinstance(options, dict):
        options = sorted(options.items(), key=lambda kv: str(kv[0]))
    if isinstance(options, (str, bytes)) or not isinstance(options, (tuple, list)):
        raise TypeError(
            "`init_options` must be a dict or a tuple of (name, value) pairs, got "
            f"{type(options).__name__} {options!r}"
        )
    pairs = []
    for item in options:
        if not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], str):
            raise TypeError(f"`init_options` items must be (name, value) pairs, got {item!r}")
        try:
            hash(item[1])
        except TypeError:
            raise TypeError(
                f"`init_options` value for {item[0]!r} must be hashable (a Python number, "
                f"not an array) so that MLPConfig can be a jit static argument, "
                f"got {type(item[1]).__name__}"
            ) from None
        pairs.append((item[0], item[1]))
    return tuple(pairs)


class Dense(NamedTuple):
    """A linear layer ``x W + b``; stacked layers carry a leading layer axis."""

    W: jax.Array
    b: jax.Array


class Norm(NamedTuple):
    """Normalisation gain and shift, one row per layer."""

    scale: jax.Array
    shift: jax.Array


class MLPParams(NamedTuple):
    """``first`` (layer 1), ``hidden`` (layers 2..depth, stacked), ``norm``, ``readout``."""

    first: Dense
    hidden: Dense
    norm: Norm | None
    readout: Dense | None


class MLPTrace(NamedTuple):
    """Per-layer internals of a forward pass, each ``(depth, batch, width)``."""

    preactivations: jax.Array
    activations: jax.Array


def init_mlp(key: jax.Array, config: MLPConfig, *, dtype: Any = jnp.float32) -> MLPParams:
    """Random parameters for ``config``; biases and shifts zero, gains one.

    Example:
        >>> cfg = MLPConfig(in_dim=100, width=100, depth=10, activation="sigmoid",
        ...                 init="normal", init_options=(("std", 0.01),))
        >>> params = init_mlp(jax.random.key(0), cfg)
    """
    if not isinstance(config, MLPConfig):
        raise TypeError(f"`config` must be an MLPConfig, got {type(config).__name__}")
    check_key("key", key)
    init = get_initializer(config.init, **dict(config.init_options))
    k_first, k_hidden, k_out = jax.random.split(key, 3)
    w, n_hidden = config.width, config.depth - 1
    first = Dense(init(k_first, (config.in_dim, w), dtype), jnp.zeros((w,), dtype))
    hidden_keys = jax.random.split(k_hidden, max(n_hidden, 1))[:n_hidden]
    hidden_W = jax.vmap(lambda k: init(k, (w, w), dtype))(hidden_keys)
    hidden = Dense(hidden_W.reshape(n_hidden, w, w), jnp.zeros((n_hidden, w), dtype))
    norm = None
    if config.norm is not None:
        norm = Norm(jnp.ones((config.depth, w), dtype), jnp.zeros((config.depth, w), dtype))
    readout = None
    if config.out_dim is not None:
        W_out = jax.nn.initializers.glorot_normal()(k_out, (w, config.out_dim), dtype)
        readout = Dense(W_out, jnp.zeros((config.out_dim,), dtype))
    return MLPParams(first, hidden, norm, readout)


def _check_params(params: Any, config: MLPConfig) -> None:
    """Every leaf of ``params`` has the shape ``init_mlp(key, config)`` gives it."""
    if not isinstance(params, MLPParams):
        raise TypeError(f"`params` must be an MLPParams, got {type(params).__name__}")
    w, d, o = config.width, config.depth, config.out_dim
    expected = [
        ("first.W", params.first.W, (config.in_dim, w)),
        ("first.b", params.first.b, (w,)),
        ("hidden.W", params.hidden.W, (d - 1, w, w)),
        ("hidden.b", params.hidden.b, (d - 1, w)),
    ]
    for field, option, present, want in (
        ("norm", "norm", params.norm, config.norm),
        ("readout", "out_dim", params.readout, o),
    ):
        if (present is None) != (want is None):
            raise ValueError(
                f"`params` do not match `config`: `params.{field}` must be "
                f"{'None' if want is None else 'set'} for `config.{option}`={want!r}, "
                f"got {type(present).__name__}"
            )
    if params.norm is not None:
        expected += [("norm.scale", params.norm.scale, (d, w)),
                     ("norm.shift", params.norm.shift, (d, w))]
    if params.readout is not None:
        expected += [("readout.W", params.readout.W, (w, o)), ("readout.b", params.readout.b, (o,))]
    for field, leaf, want in expected:
        if tuple(jnp.shape(leaf)) != want:
            raise ValueError(
                f"`params` do not match `config`: `params.{field}` must have shape {want}, "
                f"got {tuple(jnp.shape(leaf))}"
            )


def normalise_preactivations(
    z: jax.Array, kind: str | None, scale: jax.Array, shift: jax.Array, eps: float = 1e-5
) -> jax.Array:
    """Batch (``kind="batch"``, over axis 0) or layer (``"layer"``, over the last axis)
    normalisation of pre-activations ``z`` ``(B, width)``, then ``scale ⊙ ẑ + shift``;
    ``z`` itself for ``kind=None`` (Ioffe & Szegedy 2015; Ba, Kiros & Hinton 2016)."""
    if kind is None:
        return z
    axis = 0 if kind == "batch" else -1
    mean = jnp.mean(z, axis=axis, keepdims=True)
    var = jnp.var(z, axis=axis, keepdims=True)
    return scale[None] * (z - mean) * jax.lax.rsqrt(var + eps) + shift[None]


def mlp_apply(
    params: MLPParams,
    x: jax.Array,
    config: MLPConfig,
    *,
    probes: jax.Array | None = None,
    unroll: int | bool = 1,
) -> tuple[jax.Array, MLPTrace]:
    """Forward pass on a batch ``x`` ``(B, in_dim)``.

    Arguments:
        params: ``MLPParams`` from ``init_mlp``.
        x: ``(B, in_dim)`` inputs.
        config: the ``MLPConfig`` the parameters were made for.
        probes: optional ``(depth, B, width)`` added to each hidden activation ``h_l``;
            the gradient of a loss with respect to zero probes is ``∂L/∂h_l`` for every
            layer in one backward pass (used by ``jaxgrad.mlp_gradient_flow``).
        unroll: layers per iteration of the ``lax.scan`` over layers 2..depth (as for
            ``lax.scan``; ``True`` unrolls them all). The numbers are the same; unrolled,
            XLA compiles straight-line code without the loop's per-layer slices, stacked
            buffers and their zero-filled gradients (``mlp_gradient_flow`` of a 20-layer,
            256-wide MLP: 15-20 % less CPU time), at the price of a compile time that
            grows with the depth.

    Returns:
        ``(output, trace)``: output ``(B, out_dim)`` (or ``(B, width)`` without readout)
        and an ``MLPTrace`` of pre-activations and activations per layer.
    """
    if not isinstance(config, MLPConfig):
        raise TypeError(f"`config` must be an MLPConfig, got {type(config).__name__}")
    x = check_array("x", x, ndim=2)
    if x.shape[1] != config.in_dim:
        raise ValueError(
            f"`x` must have shape (B, {config.in_dim}) to match `config.in_dim`, got {x.shape}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"`x` must hold at least one example, got shape {x.shape}")
    _check_params(params, config)
    if probes is None:
        probes = jnp.zeros((config.depth, x.shape[0], config.width), x.dtype)
    else:
        check_shape("probes", probes, (config.depth, x.shape[0], config.width),
                    " (depth, B, width)")
        check_array("probes", probes)
    sigma = get_activation(config.activation)
    if params.norm is None:
        scales = shifts = jnp.zeros((config.depth, 0), x.dtype)
    else:
        scales, shifts = params.norm

    z1 = x @ params.first.W + params.first.b[None]
    h1 = sigma(normalise_preactivations(z1, config.norm, scales[0], shifts[0])) + probes[0]

    def layer(h, xs):
        (W, b), scale, shift, probe = xs
        z = h @ W + b[None]
        a = sigma(normalise_preactivations(z, config.norm, scale, shift))
        h_next = (h + a if config.residual else a) + probe
        return h_next, (z, h_next)

    h, (zs, hs) = jax.lax.scan(layer, h1, (params.hidden, scales[1:], shifts[1:], probes[1:]),
                               unroll=unroll)
    trace = MLPTrace(jnp.concatenate([z1[None], zs]), jnp.concatenate([h1[None], hs]))
    out = h if params.readout is None else h @ params.readout.W + params.readout.b[None]
    return out, trace
