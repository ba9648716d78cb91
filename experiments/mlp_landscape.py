"""Filter-normalised 2-D loss landscapes of a deep MLP, with and without residual connections.

Li, Xu, Taylor, Studer & Goldstein (2018), "Visualizing the Loss Landscape of Neural Nets":
after training, draw two Gaussian directions d₁, d₂, rescale every filter (one unit's
incoming weights) of each to the norm of the matching filter of the trained weights θ*,
zero the directions on biases, and plot L(θ* + α d₁ + β d₂). Their finding: without skip
connections deep networks' landscapes turn chaotic; with them they stay smooth and
nearly convex. Here: a deep ReLU MLP on scikit-learn's digits (8×8 images, 10 classes),
trained briefly with Adam (``jaxgrad.train_steps``), scanned with ``jaxgrad.scan_landscape``.

Checks (consistency, since there is no closed form for a trained network): every filter
of each direction has the norm of the weights' filter (the construction); the scan's centre
is the trained loss; the scanned directional derivative at the centre equals ``jax.jvp``;
the scanned gradient norm at the centre equals ``‖jax.grad‖``; training lowered the loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
import scipy.ndimage
from sklearn.datasets import load_digits

import jaxgrad

from ._runner import Result, check_bound, check_close

NAME = "mlp-landscape"
DESCRIPTION = ("Filter-normalised 2-D loss landscapes (Li et al. 2018) of a deep ReLU MLP on "
               "digits after brief training, with and without residual connections.")
DEFAULT_CONFIG = {
    "depth": 16,
    "width": 32,
    "num_examples": 512,
    "train_steps": 150,
    "learning_rate": 3e-3,
    "span": 1.0,
    "num_points": 12,
    "chunk_size": 64,
    "seed": 0,
}
QUICK_CONFIG = {"depth": 8, "num_examples": 256, "train_steps": 60, "num_points": 4}


def _bias_free(name: str, leaf: jax.Array):
    """Li et al.'s rule for this MLP: weights ``W`` by output unit, biases ignored."""
    return (-2,) if name.endswith("W") else None


def _data(n: int):
    digits = load_digits()
    x = (digits.data[:n] / 16.0).astype(np.float32)
    x = x - x.mean(axis=0, keepdims=True)
    return jnp.asarray(x), jnp.asarray(digits.target[:n].astype(np.int32))


def run(config: dict) -> Result:
    x, y = _data(config["num_examples"])
    key = jax.random.key(config["seed"])
    k_init, k_d1, k_d2 = jax.random.split(key, 3)
    n = config["num_points"]
    alphas = np.arange(-n, n + 1, dtype=np.float32) / n * config["span"]  # 0 exactly
    results, checks = {}, []
    for residual in (False, True):
        label = "residual" if residual else "plain"
        cfg = jaxgrad.MLPConfig(in_dim=64, width=config["width"], depth=config["depth"],
                                out_dim=10, activation="relu", init="he", residual=residual)

        def loss(params, cfg=cfg):
            logits, _ = jaxgrad.mlp_apply(params, x, cfg)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        p0 = jaxgrad.init_mlp(k_init, cfg)
        if residual:  # keep the residual stream's variance bounded with depth
            p0 = p0._replace(hidden=p0.hidden._replace(W=p0.hidden.W / np.sqrt(cfg.depth)))
        opt = optax.adam(config["learning_rate"])

        @jax.jit
        def train(p, loss=loss, opt=opt):
            state, metrics = jaxgrad.train_steps(
                lambda q, _: loss(q), opt, jaxgrad.init_train_state(p, opt), None,
                num_steps=config["train_steps"])
            return state.params, metrics.loss, loss(state.params)

        params, train_losses, trained_loss = train(p0)
        trained_loss = float(trained_loss)
        d1 = jaxgrad.filter_normalized_direction(params, key=k_d1, filter_axes=_bias_free)
        d2 = jaxgrad.filter_normalized_direction(params, key=k_d2, filter_axes=_bias_free)
        scan = jaxgrad.scan_landscape(
            loss, params, {"alpha": jaxgrad.Direction(d1, alphas),
                           "beta": jaxgrad.Direction(d2, alphas)},
            chunk_size=config["chunk_size"], progress=False)

        # Filter norms of d1 against the weights'.
        ratios = []
        for name, leaf, d in zip(jaxgrad.leaf_names(params), jax.tree_util.tree_leaves(params),
                                 jax.tree_util.tree_leaves(d1)):
            d, leaf = np.asarray(d, np.float64), np.asarray(leaf, np.float64)
            if name.endswith("W"):
                ratios.append(np.ravel(np.linalg.norm(d, axis=-2) / np.linalg.norm(leaf, axis=-2)))
            else:  # biases: the direction must be exactly zero
                ratios.append(np.asarray([1.0 + np.max(np.abs(d))]))
        ratio_dev = float(np.max(np.abs(np.concatenate(ratios) - 1.0)))
        centre = (n, n)
        jvp, grad_norm = jax.jit(lambda p, d, loss=loss: (
            jax.jvp(loss, (p,), (d,))[1], optax.tree.norm(jax.grad(loss)(p))))(params, d1)
        grad_norm = float(grad_norm)
        checks += [
            check_bound(f"{label}: filter norm ratio deviation |‖d_ij‖/‖θ_ij‖ - 1|", ratio_dev,
                        1e-5, note="and d = 0 on biases (Li et al. 2018)"),
            check_close(f"{label}: scan centre vs trained loss", scan.loss[centre],
                        trained_loss, rtol=1e-3, atol=1e-6,
                        note="vmapped vs plain float32 evaluation"),
            check_close(f"{label}: ∂L/∂α at the centre vs jax.jvp", scan.axis_gradients[centre][0],
                        float(jvp), rtol=1e-3, atol=1e-6),
            check_close(f"{label}: gradient norm at the centre vs ‖jax.grad‖",
                        scan.gradient_norm[centre], grad_norm, rtol=1e-3, atol=1e-6),
            check_bound(f"{label}: trained loss / initial loss", trained_loss
                        / float(train_losses[0]), 0.5, note="brief training worked"),
        ]
        L = np.asarray(scan.loss)
        # Roughness: the mean |discrete Laplacian| relative to the loss range (0 on a plane).
        lap = (L[2:, 1:-1] + L[:-2, 1:-1] + L[1:-1, 2:] + L[1:-1, :-2] - 4 * L[1:-1, 1:-1])
        results[label] = {
            "scan": scan, "train_losses": np.asarray(train_losses), "trained_loss": trained_loss,
            "roughness": float(np.mean(np.abs(lap)) / (np.ptp(L) + 1e-12)),
            "loss_range": float(np.ptp(L)), "centre_is_min": bool(L.argmin() == L.size // 2),
            "cliffs": len(jaxgrad.find_cliffs(scan).jump_points),
        }

    # Two maps side by side, the training curves below: reads at the report's width.
    fig = plt.figure(figsize=(10, 8.4))
    grid = fig.add_gridspec(2, 4)
    axes = [fig.add_subplot(grid[0, :2]), fig.add_subplot(grid[0, 2:]),
            fig.add_subplot(grid[1, 1:3])]
    n = len(alphas)
    # A coarse grid (12 × 12 at --quick) gives polygonal contours: they are drawn on a
    # cubic interpolation of the grid (display only; every number comes from the grid).
    zoom = max(1, -(-120 // n))
    fine = np.linspace(alphas[0], alphas[-1], (n - 1) * zoom + 1)
    for ax, label in zip(axes[:2], ("plain", "residual"), strict=True):
        r = results[label]
        L = np.log10(np.asarray(r["scan"].loss, np.float64))
        if zoom > 1:
            L = scipy.ndimage.zoom(L, (len(fine) / n, len(fine) / n), order=3,
                                   grid_mode=False)
        A, Bm = np.meshgrid(fine, fine, indexing="ij")
        cs = ax.contourf(A, Bm, L, levels=30, cmap="viridis")
        ax.contour(A, Bm, L, levels=15, colors="k", linewidths=0.4)
        fig.colorbar(cs, ax=ax, label=r"$\log_{10}$ cross-entropy")
        ax.plot([0], [0], "r*", ms=10, label="trained θ*")
        ax.set_xlabel("α (filter-normalised d₁)")
        ax.set_ylabel("β (filter-normalised d₂)")
        ax.set_title(f"{label}, depth {config['depth']}: roughness {r['roughness']:.3g}\n"
                     f"({n}×{n} grid" + (", contours cubic-interpolated)" if zoom > 1 else ")"),
                     fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    ax = axes[2]
    for label, color in (("plain", "C0"), ("residual", "C1")):
        ax.semilogy(results[label]["train_losses"], color=color, label=label)
    ax.set_xlabel("Adam step")
    ax.set_ylabel("training loss (log scale)")
    ax.set_title("Brief training", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()

    summary = {
        label: {k: v for k, v in r.items() if k not in ("scan", "train_losses")}
        for label, r in results.items()
    }
    arrays = {"alphas": alphas}
    for label, r in results.items():
        arrays[f"{label}_loss"] = np.asarray(r["scan"].loss)
        arrays[f"{label}_gradient_norm"] = np.asarray(r["scan"].gradient_norm)
        arrays[f"{label}_train_losses"] = r["train_losses"]
    return Result(summary=summary, checks=checks, arrays=arrays, figures={"mlp_landscape": fig})
