"""Activation functions and their derivatives (the activation figure of the
web article "Deep Learning: Vanishing Gradient Problem Explained").

The derivatives are computed by ``jax.grad``; the checks compare their maxima on a fine
grid with the closed forms max σ' = 1/4 (at 0) and max tanh' = 1 (at 0), which is why a
chain of sigmoid layers shrinks a gradient by at least 4× per layer.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jaxgrad

from ._runner import Computed, Result, check_close, staged_run

NAME = "activations"
DESCRIPTION = "Sigmoid, tanh, ReLU and variants with derivatives; max σ' = 1/4, max tanh' = 1."


@dataclasses.dataclass(frozen=True)
class Config:
    """The grid the activations and their derivatives are evaluated on."""

    x_min: float = -6.0  #: left end of the grid
    x_max: float = 6.0  #: right end of the grid
    num_points: int = 2001  #: grid points (odd, so the grid passes through 0)
    #: activation names, as `jaxgrad.models.get_activation` takes them
    activations: tuple[str, ...] = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu")


QUICK_CONFIG = {"num_points": 401}
SUMMARY_KEYS = ("max_derivative", "argmax_derivative")

# Closed forms of sup |σ'| with where it is attained (GELU: Φ(√2) + √2 φ(√2)).
REFERENCE_MAX = {"sigmoid": (0.25, 0.0), "tanh": (1.0, 0.0)}


def compute(config: Config) -> Computed:
    """Each activation and its `jax.grad` derivative on the grid; their maxima."""
    x = jnp.linspace(config.x_min, config.x_max, config.num_points)
    values, derivatives = {}, {}
    for name in config.activations:
        values[name] = np.asarray(jaxgrad.models.get_activation(name)(x))
        derivatives[name] = np.asarray(jaxgrad.models.activation_derivative(name)(x))
    max_derivative = {name: float(d.max()) for name, d in derivatives.items()}
    argmax = {name: float(x[int(d.argmax())]) for name, d in derivatives.items()}
    arrays = {"x": np.asarray(x)}
    arrays.update({f"value_{k}": v for k, v in values.items()})
    arrays.update({f"derivative_{k}": v for k, v in derivatives.items()})
    return Computed({"max_derivative": max_derivative, "argmax_derivative": argmax}, arrays,
                    {"values": values, "derivatives": derivatives})


def checks(config: Config, computed: Computed) -> list:
    """Maxima of σ', tanh' (and GELU') against their closed forms."""
    max_derivative = computed.summary["max_derivative"]
    argmax = computed.summary["argmax_derivative"]
    x = computed.arrays["x"]
    spacing = float(x[1] - x[0])
    out = []
    for name, (ref, at) in REFERENCE_MAX.items():
        if name in max_derivative:
            # On a grid through 0 the maximum is attained exactly; allow float32 rounding.
            out.append(check_close(f"max {name}'", max_derivative[name], ref, rtol=1e-6))
            out.append(check_close(f"argmax {name}'", argmax[name], at, atol=spacing))
    if "gelu" in max_derivative:
        out.append(check_close("max gelu' (tanh approximation)", max_derivative["gelu"],
                               jaxgrad.models.MAX_DERIVATIVE["gelu"], atol=2e-3))
    return out


def figures(config: Config, computed: Computed) -> dict:
    """Each activation (above) and its derivative (below)."""
    x = computed.arrays["x"]
    values, derivatives = computed.details["values"], computed.details["derivatives"]
    max_derivative = computed.summary["max_derivative"]
    # Three activations per row pair (value above, derivative below), so the figure reads
    # at the report's column width instead of six narrow panels side by side.
    names = list(values)
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(2 * nrows, ncols, figsize=(3.1 * ncols + 0.5, 4.4 * nrows),
                             sharex=True, squeeze=False)
    for k in range(nrows * ncols):
        i, j = divmod(k, ncols)
        top, bottom = axes[2 * i, j], axes[2 * i + 1, j]
        if k >= len(names):
            top.set_visible(False)
            bottom.set_visible(False)
            continue
        name = names[k]
        top.plot(x, values[name])
        top.set_title(name)
        top.grid(True, alpha=0.3)
        bottom.plot(x, derivatives[name], color="C1")
        bottom.axhline(max_derivative[name], color="r", ls="--", lw=0.8)
        bottom.set_title(f"{name}′ (jax.grad); dashed: max = {max_derivative[name]:.4g}",
                         fontsize=8)
        bottom.grid(True, alpha=0.3)
        if i == nrows - 1 or k + ncols >= len(names):
            bottom.set_xlabel("x")
        if j == 0:
            top.set_ylabel("φ(x)")
            bottom.set_ylabel("φ′(x)")
    fig.suptitle("Activations φ and their derivatives φ′ by jax.grad (below each)")
    fig.tight_layout()

    return {"activations": fig}


def run(config: Config) -> Result:
    return staged_run(config, compute, checks, figures)
