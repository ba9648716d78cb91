"""Per-layer gradient norms while training deep MLPs on handwritten digits (the blog post
"The Vanishing Gradient Problem", 2016; the web article "Deep Learning: Vanishing Gradient
Problem Explained").

The web article trains a 10-layer sigmoid network with Adam and plots ``‖∂L/∂W_l‖`` per layer
over training: the layers near the input receive gradients orders of magnitude smaller
than those near the output, because backpropagation multiplies by ``σ' <= 1/4`` and by
the weights at every layer. Here three 10-layer MLPs train on scikit-learn's bundled 8×8
digits (no download; MNIST from its IDX files with ``mnist_dir``) with Adam, monitored inside
the jitted, scanned training loop:

- ``sigmoid``: sigmoid units, weights N(0, 0.01²) (the small-weight setting of the web article
  "Vanishing Gradient Problem Explained");
- ``relu_he``: ReLU units with He initialisation (He et al. 2015);
- ``residual_norm``: ReLU + He with residual connections and layer normalisation.

``first_to_last_grad_ratio`` is ``‖∂L/∂W_1‖ / ‖∂L/∂W_depth‖`` at initialisation (step 0);
``first_to_last_grad_ratio_median`` is its median over training.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jaxgrad
from jaxgrad.train import (
    fit,
    load_digits,
    load_mnist,
    mlp_layer_monitor,
    shuffled_batches,
)

from ._runner import Check, Computed, Result, check_bound, staged_run

NAME = "mlp-training-gradients"
DESCRIPTION = (
    "10-layer sigmoid vs ReLU+He vs residual+norm MLPs trained on 8×8 digits with Adam: "
    "per-layer gradient norms over training and test accuracy."
)


@dataclasses.dataclass(frozen=True)
class Config:
    """The experiment's parameters."""

    depth: int = 10  # layers of every MLP
    width: int = 64  # hidden units per layer
    num_steps: int = 1500  # Adam steps
    steps_per_scan: int = 250  # training steps per jitted scan
    batch_size: int = 64
    learning_rate: float = 1e-3
    sigmoid_std: float = 0.01  # std of the sigmoid network's N(0, std²) weights
    seed: int = 0
    mnist_dir: str | None = None  # MNIST IDX files' folder; None: scikit-learn's 8×8 digits
    configurations: tuple[str, ...] = ("sigmoid", "relu_he", "residual_norm")


QUICK_CONFIG = {"num_steps": 400, "steps_per_scan": 200}
SUMMARY_KEYS = ("final_test_accuracy", "first_to_last_grad_ratio",
                "first_to_last_grad_ratio_median")

#: Minimum test accuracy for the ReLU+He and residual+norm networks on the 8×8 digits.
#: Shallow MLPs reach ~97% on this set (scikit-learn's digits benchmarks); 0.9 leaves room
#: for the short budget, at default and quick scale alike.
ACCURACY_LEVEL = 0.9


def _mlp_config(name: str, config: Config, in_dim: int) -> jaxgrad.MLPConfig:
    base = dict(in_dim=in_dim, width=config.width, depth=config.depth, out_dim=10)
    if name == "sigmoid":
        return jaxgrad.MLPConfig(**base, activation="sigmoid", init="normal",
                                 init_options=(("std", config.sigmoid_std),))
    if name == "relu_he":
        return jaxgrad.MLPConfig(**base, activation="relu", init="he")
    if name == "residual_norm":
        return jaxgrad.MLPConfig(**base, activation="relu", init="he", residual=True,
                                 norm="layer")
    raise ValueError(f"unknown configuration {name!r}; expected sigmoid, relu_he, residual_norm")


def _loss(params, batch, mlp):
    out, _ = jaxgrad.mlp_apply(params, batch[0], mlp)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, batch[1]))


def compute(config: Config) -> Computed:
    """Train each configuration; per-layer gradient norms, losses and test accuracies."""
    key = jax.random.key(config.seed)
    k_data, k_init, k_train = jax.random.split(key, 3)
    # The bundled 8×8 digits by default; MNIST from IDX files when `mnist_dir` is given.
    data = load_mnist(config.mnist_dir) if config.mnist_dir else load_digits(key=k_data)
    batches = shuffled_batches((data.x_train, data.y_train), config.batch_size)
    optimizer = optax.adam(config.learning_rate)
    names = list(config.configurations)

    norms, losses, accuracy, ratio_init, ratio_median = {}, {}, {}, {}, {}
    for name in names:
        mlp = _mlp_config(name, config, data.x_train.shape[1])
        params = jaxgrad.init_mlp(k_init, mlp)
        result = fit(functools.partial(_loss, mlp=mlp), params, optimizer, batches,
                     num_steps=config.num_steps, key=k_train,
                     steps_per_scan=config.steps_per_scan, monitor=mlp_layer_monitor)
        w = result.metrics["layer_weight_grad_norms"]  # (steps, depth)
        norms[name], losses[name] = w, result.metrics["loss"]
        out, _ = jaxgrad.mlp_apply(result.params, data.x_test, mlp)
        accuracy[name] = float(jnp.mean(jnp.argmax(out, axis=1) == data.y_test))
        ratio = w[:, 0] / w[:, -1]
        ratio_init[name], ratio_median[name] = float(ratio[0]), float(np.median(ratio))

    arrays = {f"grad_norms_{n}": norms[n] for n in names}
    arrays.update({f"loss_{n}": losses[n] for n in names})
    summary = {
        "final_test_accuracy": accuracy,
        "first_to_last_grad_ratio": ratio_init,
        "first_to_last_grad_ratio_median": ratio_median,
    }
    return Computed(summary=summary, arrays=arrays)


def checks(config: Config, computed: Computed) -> list[Check]:
    """Vanishing first-layer gradients of the sigmoid network; the others learn."""
    names = list(config.configurations)
    accuracy = computed.summary["final_test_accuracy"]
    ratio_init = computed.summary["first_to_last_grad_ratio"]
    out = []
    depth = config.depth
    if "sigmoid" in names:
        bound = 0.25 ** (depth - 1)
        out.append(check_bound(
            "sigmoid N(0,0.01²): first/last weight-gradient ratio at init", ratio_init["sigmoid"],
            bound, kind="<=",
            note=f"backprop multiplies by σ' <= 1/4 at each of the {depth - 1} layers between "
                 f"(web article), and by weights of norm < 1: ratio <= (1/4)^{depth - 1}"))
        out.append(check_bound(
            "sigmoid N(0,0.01²): final test accuracy", accuracy["sigmoid"], 0.2, kind="<=",
            note="chance is 0.1: with the first layers' gradients ~1e-12 of the last's, the "
                 "network does not learn within the budget (blog post 2016; web article)"))
    if "relu_he" in names:
        out.append(check_bound(
            "ReLU+He: first/last weight-gradient ratio at init", ratio_init["relu_he"], 0.1,
            kind=">=", note="He initialisation keeps the backward variance constant across "
                            "layers (He et al. 2015): ratio of order 1, not vanishing"))
    for name in ("relu_he", "residual_norm"):
        if name in names:
            out.append(check_bound(
                f"{name}: final test accuracy", accuracy[name], ACCURACY_LEVEL, kind=">=",
                note="8×8 digits, held-out quarter; MLPs reach ~0.97 on this set"))

    return out


def figures(config: Config, computed: Computed) -> dict[str, Any]:
    """Per-layer gradient norms over training, and the training losses."""
    names = list(config.configurations)
    depth = config.depth
    accuracy = computed.summary["final_test_accuracy"]
    norms = {n: computed.arrays[f"grad_norms_{n}"] for n in names}
    losses = {n: computed.arrays[f"loss_{n}"] for n in names}
    # Two panels a row (the layer legend in a free slot): reads at the report's width.
    cols = 1 if len(names) == 1 else 2
    rows = -(-(len(names) + 1) // cols) if len(names) > 1 else 1
    fig, axes = plt.subplots(rows, cols, figsize=(9.5 if cols == 2 else 6, 3.9 * rows),
                             sharey=True, squeeze=False)
    steps = np.arange(config.num_steps)
    colors = plt.cm.viridis(np.linspace(0, 1, depth))
    for ax, name in zip(axes.flat, names, strict=False):
        for layer in range(depth):
            ax.plot(steps, np.maximum(norms[name][:, layer], 1e-30), color=colors[layer],
                    lw=0.8, label=f"layer {layer + 1}")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_title(f"{name}: test accuracy {accuracy[name]:.3f}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(r"$\|\partial L/\partial W_l\|_F$ (log scale)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    spare = list(axes.flat)[len(names):]
    for ax in spare:
        ax.axis("off")
    if spare:
        spare[0].legend(handles, labels, fontsize=8, ncol=2, loc="center",
                        title="layer (1 = next to the input)", title_fontsize=8)
    else:
        axes.flat[-1].legend(fontsize=7, ncol=2, loc="lower right")
    fig.suptitle(f"Per-layer gradient norms while training {depth}-layer MLPs on 8×8 digits "
                 "(Adam)", fontsize=10)
    fig.tight_layout()

    fig2, ax2 = plt.subplots(figsize=(6, 4))
    for name in names:
        ax2.plot(steps, losses[name], label=name, lw=0.8)
    ax2.set_yscale("log")
    ax2.set_xlabel("training step")
    ax2.set_ylabel("training loss (cross-entropy)")
    ax2.set_title("Training loss", fontsize=10)
    ax2.legend(fontsize=8)
    fig2.tight_layout()

    return {"layer_grad_norms": fig, "training_loss": fig2}


def run(config: Config) -> Result:
    """``compute``, then ``checks`` and ``figures`` on its numbers."""
    return staged_run(config, compute, checks, figures)
