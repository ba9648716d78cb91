"""Filter-normalised 2-D loss landscapes of a deep MLP, with and without residual connections.

Li, Xu, Taylor, Studer & Goldstein (2018), "Visualizing the Loss Landscape of Neural Nets":
after training, draw two Gaussian directions d₁, d₂, rescale every filter (one unit's
incoming weights) of each to the norm of the matching filter of the trained weights θ*,
zero the directions on biases, and plot L(θ* + α d₁ + β d₂). Their finding: without skip
connections deep networks' landscapes turn chaotic; with them they stay smooth and
nearly convex. Here: a deep ReLU MLP on scikit-learn's digits (8×8 images, 10 classes),
trained briefly with Adam (``jaxgrad.train_steps``), scanned with ``jaxgrad.scan_landscape``.

A second pair of maps follows Li et al.'s section 7: the weights are saved every
``train_steps / snapshots`` steps, the top two principal components of the saved iterates
(``jaxgrad.landscape.trajectory_directions``) are the directions, and the training path, projected
on them, is drawn on the loss scanned around the final weights. Li et al. find that the
path lies in a very low-dimensional space; the summary's
``pca_explained_variance`` is the fraction of the iterates' variance the two components
hold (scikit-learn's definition) and ``pca_max_residual_fraction`` the largest distance of
an iterate from the drawn plane relative to the path's extent.

Checks (consistency, since there is no closed form for a trained network): every filter
of each direction has the norm of the weights' filter (the construction); the scan's centre
is the trained loss; the scanned directional derivative at the centre equals ``jax.jvp``;
the scanned gradient norm at the centre equals ``‖jax.grad‖``; training lowered the loss;
the PCA scan's origin is the trained loss and its two directions are orthonormal; the two
components hold at least half of the path's variance.

Departures: Li et al. train ResNets and VGG on CIFAR-10 for hundreds of epochs (SGD with
momentum, one saved iterate per epoch); here a 16-layer ReLU MLP on 512 digits, 150 Adam
steps, 15 saved iterates, so that the catalogue runs in minutes on a CPU.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
import scipy.ndimage
from sklearn.datasets import load_digits

import jaxgrad

from ._runner import Check, Computed, Result, check_bound, check_close, staged_run

NAME = "mlp-landscape"
DESCRIPTION = ("Filter-normalised 2-D loss landscapes (Li et al. 2018) of a deep ReLU MLP on "
               "digits after brief training, with and without residual connections.")


@dataclasses.dataclass(frozen=True)
class Config:
    """The experiment's parameters."""

    depth: int = 16  # hidden layers of the MLP
    width: int = 32  # units per hidden layer
    num_examples: int = 512  # digits used for training and the loss
    train_steps: int = 150  # Adam steps
    learning_rate: float = 3e-3
    snapshots: int = 15  # saved iterates for the PCA directions (must divide train_steps)
    span: float = 1.0  # the random-direction map covers [-span, span]²
    num_points: int = 12  # 2 num_points + 1 grid points per axis
    chunk_size: int = 64  # grid points per vmapped chunk of the scan
    seed: int = 0


QUICK_CONFIG = {"depth": 8, "num_examples": 256, "train_steps": 60, "num_points": 4}
#: Each holds that network's numbers: trained and initial loss, roughness, PCA variance, and
#: the scans' centres beside jvp/grad (the checks' inputs).
SUMMARY_KEYS = ("plain", "residual")


def _bias_free(name: str, leaf: jax.Array):
    """Li et al.'s rule for this MLP: weights ``W`` by output unit, biases ignored."""
    return (-2,) if name.endswith("W") else None


def _grid_through_zero(values: np.ndarray, n: int) -> np.ndarray:
    """About ``2n + 1`` float32 points over ``values``' range plus a margin, 0 among them."""
    lo, hi = float(min(values.min(), 0.0)), float(max(values.max(), 0.0))
    margin = 0.15 * (hi - lo)
    lo, hi = lo - margin, hi + margin
    h = (hi - lo) / (2 * n)
    below, above = int(np.ceil(-lo / h)), int(np.ceil(hi / h))
    return (np.arange(-below, above + 1) * h).astype(np.float32)


def _data(n: int):
    digits = load_digits()
    x = (digits.data[:n] / 16.0).astype(np.float32)
    x = x - x.mean(axis=0, keepdims=True)
    return jnp.asarray(x), jnp.asarray(digits.target[:n].astype(np.int32))


def compute(config: Config) -> Computed:
    """Train the plain and the residual MLP; scan both maps around each trained network."""
    x, y = _data(config.num_examples)
    key = jax.random.key(config.seed)
    k_init, k_d1, k_d2 = jax.random.split(key, 3)
    n = config.num_points
    alphas = np.arange(-n, n + 1, dtype=np.float32) / n * config.span  # 0 exactly
    if config.snapshots < 3 or config.train_steps % config.snapshots:
        raise ValueError(f"`snapshots` must be at least 3 and divide `train_steps` "
                         f"({config.train_steps}), got {config.snapshots}")
    per_snapshot = config.train_steps // config.snapshots
    results = {}
    for residual in (False, True):
        label = "residual" if residual else "plain"
        cfg = jaxgrad.MLPConfig(in_dim=64, width=config.width, depth=config.depth,
                                out_dim=10, activation="relu", init="he", residual=residual)

        def loss(params, cfg=cfg):
            logits, _ = jaxgrad.mlp_apply(params, x, cfg)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        p0 = jaxgrad.init_mlp(k_init, cfg)
        if residual:  # keep the residual stream's variance bounded with depth
            p0 = p0._replace(hidden=p0.hidden._replace(W=p0.hidden.W / np.sqrt(cfg.depth)))
        opt = optax.adam(config.learning_rate)

        @jax.jit
        def train(p, loss=loss, opt=opt):
            def segment(state, _):
                state, metrics = jaxgrad.train_steps(lambda q, _: loss(q), opt, state, None,
                                                     num_steps=per_snapshot)
                return state, (state.params, metrics.loss)

            state, (iterates, losses) = jax.lax.scan(
                segment, jaxgrad.init_train_state(p, opt), None, length=config.snapshots)
            iterates = jax.tree_util.tree_map(
                lambda first, rest: jnp.concatenate([first[None], rest]), p, iterates)
            return state.params, losses.reshape(-1), loss(state.params), iterates

        params, train_losses, trained_loss, iterates = train(p0)
        trained_loss = float(trained_loss)
        d1 = jaxgrad.landscape.filter_normalized_direction(params, key=k_d1, filter_axes=_bias_free)
        d2 = jaxgrad.landscape.filter_normalized_direction(params, key=k_d2, filter_axes=_bias_free)
        scan = jaxgrad.scan_landscape(
            loss, params, {"alpha": jaxgrad.Direction(d1, alphas),
                           "beta": jaxgrad.Direction(d2, alphas)},
            chunk_size=config.chunk_size, progress=False)

        # Filter norms of d1 against the weights'.
        ratios = []
        for name, leaf, d in zip(jaxgrad.landscape.leaf_names(params),
                                 jax.tree_util.tree_leaves(params),
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
        pca = jaxgrad.landscape.trajectory_directions(iterates)
        c = pca.coordinates
        pca_axes = [_grid_through_zero(c[:, j], n) for j in range(2)]
        pca_scan = jaxgrad.scan_landscape(
            loss, params, {"pc1": jaxgrad.Direction(pca.directions[0], pca_axes[0]),
                           "pc2": jaxgrad.Direction(pca.directions[1], pca_axes[1])},
            chunk_size=config.chunk_size, progress=False)
        origin = tuple(int(np.flatnonzero(a == 0)[0]) for a in pca_axes)
        gram = np.asarray([[float(optax.tree.vdot(a, b)) for b in pca.directions]
                           for a in pca.directions])
        explained = float(np.sum(pca.explained_variance_ratio))
        extent = float(np.max(np.linalg.norm(c, axis=1)))
        L = np.asarray(scan.loss)
        # Roughness: the mean |discrete Laplacian| relative to the loss range (0 on a plane).
        lap = (L[2:, 1:-1] + L[:-2, 1:-1] + L[1:-1, 2:] + L[1:-1, :-2] - 4 * L[1:-1, 1:-1])
        results[label] = {
            "scan": scan, "train_losses": np.asarray(train_losses), "trained_loss": trained_loss,
            "roughness": float(np.mean(np.abs(lap)) / (np.ptp(L) + 1e-12)),
            "loss_range": float(np.ptp(L)), "centre_is_min": bool(L.argmin() == L.size // 2),
            "cliffs": len(jaxgrad.find_cliffs(scan).jump_points),
            "pca_explained_variance": explained,
            "pca_explained_variance_ratio": pca.explained_variance_ratio.tolist(),
            "pca_max_residual_fraction": float(np.max(pca.residual_norms)) / extent,
            "pca_scan": pca_scan, "pca_axes": pca_axes, "pca_coordinates": c,
            "initial_loss": float(train_losses[0]),
            "filter_norm_ratio_deviation": ratio_dev,
            "scan_centre_loss": float(scan.loss[centre]),
            "scan_centre_alpha_derivative": float(scan.axis_gradients[centre][0]),
            "jvp_alpha_derivative": float(jvp),
            "scan_centre_gradient_norm": float(scan.gradient_norm[centre]),
            "grad_norm": grad_norm,
            "pca_scan_origin_loss": float(pca_scan.loss[origin]),
            "pca_gram_deviation": float(np.max(np.abs(gram - np.eye(2)))),
        }

    summary = {
        label: {k: v for k, v in r.items() if k not in (
            "scan", "train_losses", "pca_scan", "pca_axes", "pca_coordinates")}
        for label, r in results.items()
    }
    arrays = {"alphas": alphas}
    for label, r in results.items():
        arrays[f"{label}_loss"] = np.asarray(r["scan"].loss)
        arrays[f"{label}_gradient_norm"] = np.asarray(r["scan"].gradient_norm)
        arrays[f"{label}_train_losses"] = r["train_losses"]
        arrays[f"{label}_pca_loss"] = np.asarray(r["pca_scan"].loss)
        arrays[f"{label}_pca_coordinates"] = r["pca_coordinates"]
        for j, axis in enumerate(r["pca_axes"]):
            arrays[f"{label}_pca_axis_{j + 1}"] = axis
    return Computed(summary=summary, arrays=arrays)


def checks(config: Config, computed: Computed) -> list[Check]:
    """The construction (filter norms, orthonormal PCA directions) and the scans' centres
    against plain evaluations, jvp and grad; training worked; the path is low-dimensional."""
    out = []
    for label in ("plain", "residual"):
        r = computed.summary[label]
        trained_loss = r["trained_loss"]
        out += [
            check_bound(f"{label}: filter norm ratio deviation |‖d_ij‖/‖θ_ij‖ - 1|",
                        r["filter_norm_ratio_deviation"], 1e-5,
                        note="and d = 0 on biases (Li et al. 2018)"),
            check_close(f"{label}: scan centre vs trained loss", r["scan_centre_loss"],
                        trained_loss, rtol=1e-3, atol=1e-6,
                        note="vmapped vs plain float32 evaluation"),
            check_close(f"{label}: ∂L/∂α at the centre vs jax.jvp",
                        r["scan_centre_alpha_derivative"], r["jvp_alpha_derivative"],
                        rtol=1e-3, atol=1e-6),
            check_close(f"{label}: gradient norm at the centre vs ‖jax.grad‖",
                        r["scan_centre_gradient_norm"], r["grad_norm"], rtol=1e-3, atol=1e-6),
            check_bound(f"{label}: trained loss / initial loss",
                        trained_loss / r["initial_loss"], 0.5, note="brief training worked"),
            check_close(f"{label}: PCA scan origin vs trained loss", r["pca_scan_origin_loss"],
                        trained_loss, rtol=1e-3, atol=1e-6),
            check_bound(f"{label}: PCA directions |DᵀD - I|", r["pca_gram_deviation"], 1e-5,
                        note="unit norm, orthogonal"),
            check_bound(f"{label}: variance of the path in its top 2 principal components",
                        r["pca_explained_variance"], 0.5, kind=">=",
                        note="Li et al. 2018, sec. 7: the path is nearly low-dimensional"),
        ]
    return out


def figures(config: Config, computed: Computed) -> dict[str, Any]:
    """The two random-direction maps, the two PCA maps with the training path, the losses."""
    alphas = computed.arrays["alphas"]
    results = {label: {**computed.summary[label],
                       "loss": computed.arrays[f"{label}_loss"],
                       "train_losses": computed.arrays[f"{label}_train_losses"],
                       "pca_loss": computed.arrays[f"{label}_pca_loss"],
                       "pca_axes": [computed.arrays[f"{label}_pca_axis_{j}"] for j in (1, 2)],
                       "pca_coordinates": computed.arrays[f"{label}_pca_coordinates"]}
               for label in ("plain", "residual")}

    # Two maps side by side, the PCA maps below them, the training curves last: reads at
    # the report's width.
    fig = plt.figure(figsize=(10, 12.6))
    grid = fig.add_gridspec(3, 4)
    axes = [fig.add_subplot(grid[0, :2]), fig.add_subplot(grid[0, 2:]),
            fig.add_subplot(grid[2, 1:3])]
    pca_axes = [fig.add_subplot(grid[1, :2]), fig.add_subplot(grid[1, 2:])]
    n = len(alphas)
    # A coarse grid (12 × 12 at --quick) gives polygonal contours: they are drawn on a
    # cubic interpolation of the grid (display only; every number comes from the grid).
    zoom = max(1, -(-120 // n))
    fine = np.linspace(alphas[0], alphas[-1], (n - 1) * zoom + 1)
    for ax, label in zip(axes[:2], ("plain", "residual"), strict=True):
        r = results[label]
        L = np.log10(np.asarray(r["loss"], np.float64))
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
        ax.set_title(f"{label}, depth {config.depth}: roughness {r['roughness']:.3g}\n"
                     f"({n}×{n} grid" + (", contours cubic-interpolated)" if zoom > 1 else ")"),
                     fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    for ax, label in zip(pca_axes, ("plain", "residual"), strict=True):
        r = results[label]
        a, b = r["pca_axes"]
        A, Bm = np.meshgrid(a, b, indexing="ij")
        cs = ax.contourf(A, Bm, np.log10(np.asarray(r["pca_loss"], np.float64)),
                         levels=30, cmap="viridis")
        fig.colorbar(cs, ax=ax, label=r"$\log_{10}$ cross-entropy")
        c = r["pca_coordinates"]
        ax.plot(c[:, 0], c[:, 1], "w.-", lw=1.2, ms=5, mec="k", mew=0.5,
                label=f"training path ({len(c)} iterates)")
        ax.plot([0], [0], "r*", ms=10, label="trained θ*")
        ratio = r["pca_explained_variance_ratio"]
        ax.set_xlabel(f"PC 1 ({100 * ratio[0]:.1f}% of the path's variance)")
        ax.set_ylabel(f"PC 2 ({100 * ratio[1]:.1f}%)")
        ax.set_title(f"{label}: loss on the path's top principal components\n"
                     f"(Li et al. 2018, sec. 7; {len(a)}×{len(b)} grid)", fontsize=9)
        leg = ax.legend(fontsize=7, loc="best", facecolor="0.85")
        leg.get_frame().set_alpha(0.9)
    ax = axes[2]
    for label, color in (("plain", "C0"), ("residual", "C1")):
        ax.semilogy(results[label]["train_losses"], color=color, label=label)
    ax.set_xlabel("Adam step")
    ax.set_ylabel("training loss (log scale)")
    ax.set_title("Brief training", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()

    return {"mlp_landscape": fig}


def run(config: Config) -> Result:
    """``compute``, then ``checks`` and ``figures`` on its numbers."""
    return staged_run(config, compute, checks, figures)
