"""Which deep sigmoid MLPs train: depth 5 to 20 under three initialisations.

Sigmoid MLPs of increasing depth train on scikit-learn's 8×8 digits with Adam for a fixed
budget of steps, from

- ``normal``: N(0, 0.01²) (the small weights of the
  web article "Vanishing Gradient Problem Explained": every layer squashes its input to
  ≈ σ(0) = 1/2 and the backward signal by ≈ (1/4)·‖W‖ per layer);
- ``kumar``: N(0, (3.6/√N)²), Kumar (2017, arXiv:1704.08863), chosen so the sigmoid's
  forward variance neither vanishes nor saturates;
- ``yilmaz_poli``: N(max(-1, -8/N), (1/√N)²), Yilmaz & Poli (2022, Neural Networks
  153:87): a negative mean keeps the initial back-propagated gradients from vanishing;
  they report that MLPs with 10 and 15 hidden layers trained well with plain
  back-propagation. Their spread is not given in the abstract; 1/√N is our choice.

Reported: test accuracy after the budget and ``‖∂L/∂W_1‖/‖∂L/∂W_depth‖`` at the first
step, per depth and initialisation. Checks: N(0, 0.01²) stays at chance level from depth
10 on; Kumar's rule trains far better at depths 10 and 15; Yilmaz–Poli's keeps the
initial gradient of the first layer within two decades of the last layer's at depths 10
and 15 (their theoretical claim). Their accuracy claim is *not* checked: with this setup
(Adam, width 64, a short budget, spread 1/√N) their rule trains only a little better than
N(0, 0.01²) at depth 10 and 15, well below Kumar's (see the summary).
"""

from __future__ import annotations

import functools

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

from ._runner import Result, check_bound

NAME = "init-depth-trainability"
DESCRIPTION = (
    "Sigmoid MLPs of depth 5-20 with N(0,0.01²), Kumar and Yilmaz-Poli initialisation: "
    "test accuracy on 8×8 digits after a fixed Adam budget."
)
DEFAULT_CONFIG = {
    "depths": [5, 10, 15, 20],
    "width": 64,
    "num_steps": 1000,
    "batch_size": 64,
    "learning_rate": 1e-3,
    "normal_std": 0.01,
    "seed": 0,
    "mnist_dir": None,
}
QUICK_CONFIG = {"depths": [5, 10], "num_steps": 400}

INITS = ("normal", "kumar", "yilmaz_poli")
CHANCE = 0.1  # ten balanced classes


def _loss(params, batch, mlp):
    out, _ = jaxgrad.mlp_apply(params, batch[0], mlp)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, batch[1]))


def _mlp(depth: int, init: str, config: dict, in_dim: int) -> jaxgrad.MLPConfig:
    options = (("std", config["normal_std"]),) if init == "normal" else ()
    return jaxgrad.MLPConfig(in_dim=in_dim, width=config["width"], depth=depth, out_dim=10,
                             activation="sigmoid", init=init, init_options=options)


def run(config: dict) -> Result:
    k_data, k_init, k_train = jax.random.split(jax.random.key(config["seed"]), 3)
    # The bundled 8×8 digits by default; MNIST from IDX files when `mnist_dir` is given.
    data = load_mnist(config["mnist_dir"]) if config["mnist_dir"] else load_digits(key=k_data)
    in_dim = data.x_train.shape[1]
    batches = shuffled_batches((data.x_train, data.y_train), config["batch_size"])
    optimizer = optax.adam(config["learning_rate"])
    depths = list(config["depths"])
    accuracy = {init: {} for init in INITS}
    ratio = {init: {} for init in INITS}
    for depth in depths:
        # One loss function per depth: the three initialisations reuse its compiled scan.
        loss_fn = functools.partial(_loss, mlp=_mlp(depth, "normal", config, in_dim))
        for init in INITS:
            mlp = _mlp(depth, init, config, in_dim)
            params = jaxgrad.init_mlp(k_init, mlp)
            result = fit(loss_fn, params, optimizer, batches, num_steps=config["num_steps"],
                           steps_per_scan=config["num_steps"], key=k_train,
                           monitor=mlp_layer_monitor)
            out, _ = jaxgrad.mlp_apply(result.params, data.x_test, mlp)
            accuracy[init][depth] = float(jnp.mean(jnp.argmax(out, axis=1) == data.y_test))
            w = result.metrics["layer_weight_grad_norms"][0]
            ratio[init][depth] = float(w[0] / w[-1])

    checks = []
    for depth in depths:
        if depth >= 10:
            checks.append(check_bound(
                f"N(0,0.01²) depth {depth}: test accuracy", accuracy["normal"][depth],
                CHANCE + 0.1, kind="<=",
                note="chance level is 0.1: the small-weight deep sigmoid net does not train"))
    for depth in (10, 15):
        if depth not in depths:
            continue
        base = accuracy["normal"][depth]
        checks.append(check_bound(
            f"Kumar depth {depth}: test accuracy", accuracy["kumar"][depth], base + 0.3,
            kind=">=", note=f"at least 0.3 above N(0,0.01²)'s {base:.3f} (Kumar 2017)"))
        checks.append(check_bound(
            f"Yilmaz-Poli depth {depth}: first/last gradient ratio at init",
            ratio["yilmaz_poli"][depth], 0.01, kind=">=",
            note="Yilmaz & Poli (2022): with mean -8/N the initial back-propagated gradients "
                 "do not vanish at 10 and 15 hidden layers (within two decades here; "
                 f"N(0,0.01²) gives {ratio['normal'][depth]:.1e})"))

    labels = {"normal": f"N(0, {config['normal_std']}²)", "kumar": "Kumar N(0, 3.6²/N)",
              "yilmaz_poli": "Yilmaz–Poli N(max(-1,-8/N), 1/N)"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for init in INITS:
        ax1.plot(depths, [accuracy[init][d] for d in depths], "o-", label=labels[init])
        ax2.plot(depths, [max(ratio[init][d], 1e-45) for d in depths], "o-", label=labels[init])
    ax1.axhline(CHANCE, color="gray", ls="--", lw=0.8, label="chance")
    ax1.set_xlabel("hidden layers")
    ax1.set_ylabel("test accuracy")
    ax1.set_ylim(0, 1)
    ax1.set_title(f"Accuracy after {config['num_steps']} Adam steps (8×8 digits)")
    ax1.legend(fontsize=8)
    ax2.set_yscale("log")
    ax2.set_xlabel("hidden layers")
    ax2.set_ylabel("‖∂L/∂W_1‖ / ‖∂L/∂W_depth‖ at init")
    ax2.set_title("Gradient reaching the first layer\n(float32 underflow to 0 drawn at 1e-45)",
                  fontsize=10)
    ax2.axhline(1.0, color="gray", ls="--", lw=0.8)
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()

    arrays = {"depths": np.asarray(depths)}
    for init in INITS:
        arrays[f"accuracy_{init}"] = np.asarray([accuracy[init][d] for d in depths])
        arrays[f"grad_ratio_{init}"] = np.asarray([ratio[init][d] for d in depths])
    return Result(
        summary={"test_accuracy": accuracy, "first_to_last_grad_ratio_at_init": ratio},
        checks=checks,
        arrays=arrays,
        figures={"accuracy_vs_depth": fig},
    )
