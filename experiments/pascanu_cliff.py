"""Pascanu's cliff: the one-unit network's loss surface over (w, b), with gradient descent.

The one-unit network x_t = w σ(x_{t-1}) + b (Pascanu, Mikolov & Bengio 2013, section 2.3,
Fig. 6) with x_0 = 0.5 and E = (σ(x_50) - 0.7)². Closed forms: x = 0.5 is a fixed point
on the line b = 0.5 - w σ(0.5); it is unstable (the basin boundary between the two stable
fixed points) where its multiplier w σ'(0.5) > 1, i.e. w > w* = 1/σ'(0.5) ≈ 4.255, the point
where the line meets the fold curve (w, b) = (1/σ'(x), x - σ(x)/σ'(x)) at x = 0.5. Across
that half-line the state after 50 steps switches branch and the loss jumps. Between the
cusp (w = 4, x = 0) and w*, the start sits in the basin of a branch that vanishes at a fold
(saddle-node) bifurcation, so the cliff there is the fold curve itself, 0 ≤ x ≤ 0.5.
On each side the loss is (σ(x*) - 0.7)² at the stable fixed point x* reached.

The sharpness (the top eigenvalue of the Hessian of E in (w, b), per grid point by
``scan_landscape(..., quantities=["sharpness"])``) blows up on the cliff with the gradient
norm: both peak at the same grid point, on the closed-form cliff. In float64 every grid
point is resolved (Lanczos residual ≤ 1% of |λ|; checked: at most 1% unresolved, and those
only on the flat plateaus); at the default scale two resolved points have λ_max < 0 (-0.11
and -5.8e-4: E is locally concave there), which the figure leaves grey (no logarithm).

Gradient descent (optax.sgd) from an ensemble of starts beside the cliff, with and without
optax.clip_by_global_norm: unclipped steps taken on the cliff are catapults; clipped
steps never exceed lr · threshold (Pascanu et al., section 3.2).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from matplotlib import patheffects
from scipy.optimize import brentq

import jaxgrad

from ._runner import Check, Computed, Result, check_bound, check_close, staged_run

NAME = "pascanu-cliff"
DESCRIPTION = ("Pascanu's one-unit net: E = (σ(x_50) - 0.7)² over (w, b) has a cliff on "
               "b = 0.5 - wσ(0.5), w > 1/σ'(0.5); GD with and without norm clipping.")


@dataclasses.dataclass(frozen=True)
class Config:
    """The experiment's parameters."""

    x0: float = 0.5  # initial state of x_t = w σ(x_{t-1}) + b
    target: float = 0.7  # E = (σ(x_T) - target)²
    num_steps: int = 50  # T
    surface_w: tuple[float, float, int] = (0.0, 12.0, 121)  # (start, stop, points) of w
    surface_b: tuple[float, float, int] = (-8.0, 2.0, 101)  # (start, stop, points) of b
    num_starts: int = 64  # GD starts beside the cliff
    start_w: tuple[float, float] = (4.6, 10.0)  # range of the starts' w
    start_offset: float = 0.3  # starts' b above the cliff's line
    learning_rate: float = 1.0
    clip_threshold: float = 1.0  # global-norm clipping threshold of the clipped GD
    gd_steps: int = 100


QUICK_CONFIG = {"surface_w": [0.0, 12.0, 61], "surface_b": [-8.0, 2.0, 51]}
SUMMARY_KEYS = (
    "w_star", "b_star", "num_jumps", "max_sharpness", "max_step_unclipped", "max_step_clipped",
    "cliff_max_distance_cells", "cliff_min_jump_w", "cliff_columns_found", "loss_below_cliff",
    "loss_above_cliff", "fixed_point_loss_below", "fixed_point_loss_above",
    "sharpness_peak_cells_from_gradient_peak", "sharpness_peak_cells_from_cliff",
    "median_abs_sharpness", "sharpness_peak_relative_residual", "sharpness_unresolved_fraction",
    "sharpness_plateau_ratio")


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def one_unit_loss(params: jaxgrad.models.OneUnitParams, *, x0: float, target: float,
                  num_steps: int) -> jax.Array:
    """``(σ(x_T) - target)²`` for ``x_t = w σ(x_{t-1}) + b``."""
    dtype = jnp.result_type(params.b)
    step = partial(jaxgrad.models.one_unit_step, params=params)
    xs = jaxgrad.unroll(step, jnp.asarray(x0, dtype), jnp.zeros((num_steps,), dtype))
    return (jax.nn.sigmoid(xs[-1]) - target) ** 2


def cliff_b(w, x0: float = 0.5):
    """The cliff's half-line ``b = x0 - wσ(x0)``: ``x0`` is a fixed point there, unstable
    (the basin boundary) for ``w > critical_w(x0)``."""
    return x0 - w * sigmoid(x0)


def critical_w(x0: float = 0.5) -> float:
    """``w* = 1/σ'(x0)``: on ``cliff_b`` the fixed point ``x0`` is unstable for ``w > w*``."""
    s = sigmoid(x0)
    return float(1.0 / (s * (1.0 - s)))


def fixed_point_loss(w: float, b: float, target: float, *, branch: str) -> float:
    """The loss at the stable fixed point of x = wσ(x) + b reached from 0.5 (root finding).

    Below the cliff (g(0.5) > 0 for g(x) = x - wσ(x) - b) the state falls to the root in
    (b - 1, 0.5); above it, it rises to the root in (0.5, b + w + 1).
    """
    def g(x):
        return x - w * sigmoid(x) - b
    x = brentq(g, b - 1.0, 0.5) if branch == "lower" else brentq(g, 0.5, b + w + 1.0)
    return (sigmoid(x) - target) ** 2


def gd_paths(loss, starts, *, learning_rate, clip, num_steps):
    """Parameters, losses and update norms of GD from each start (vmapped ``train_steps``)."""
    opt = optax.sgd(learning_rate)
    if clip is not None:
        opt = optax.chain(optax.clip_by_global_norm(clip), opt)

    def record(p, batch, grads):
        # SGD and clipping are stateless: the applied update is recomputed exactly.
        updates, _ = opt.update(grads, opt.init(p), p)
        return {"params": p, "update_norm": optax.tree.norm(updates)}

    def one(p0):
        _, m = jaxgrad.train_steps(lambda p, _: loss(p), opt, jaxgrad.init_train_state(p0, opt),
                                   None, num_steps=num_steps, monitor=record)
        return m.monitor["params"], m.loss, m.monitor["update_norm"]

    return jax.jit(jax.vmap(one))(starts)


def _fold_curve():
    """The fold curve from the cusp (x = 0: w = 4, b = -2) to the fold point at x = 0.5."""
    xf = np.linspace(0.0, 0.5, 2001)
    fold_w = 1.0 / (sigmoid(xf) * (1.0 - sigmoid(xf)))
    return fold_w, xf - sigmoid(xf) * fold_w


def compute(config: Config) -> Computed:
    """The loss, gradient-norm and sharpness maps, the detected cliff, and GD paths."""
    target = config.target
    loss = partial(one_unit_loss, x0=config.x0, target=target,
                   num_steps=config.num_steps)
    params = jaxgrad.models.OneUnitParams(5.0, -3.0)
    sw, sb = config.surface_w, config.surface_b
    surface_axes = {"w": (sw[0], sw[1], int(sw[2])), "b": (sb[0], sb[1], int(sb[2]))}
    surface = jaxgrad.scan_landscape(loss, params, surface_axes, progress=False)
    # The sharpness on the same grid, in float64: on the plateaus (|λ| ~ 1e-14..1e-8) the
    # float32 Hessian-vector products do not resolve it (half the quick grid has a
    # residual above 1% of λ there, some λ ≤ 0), while float64 resolves every point.
    with jax.enable_x64(True):
        params64 = jaxgrad.models.OneUnitParams(jnp.asarray(5.0, jnp.float64),
                                                jnp.asarray(-3.0, jnp.float64))
        curvature = jaxgrad.scan_landscape(loss, params64, surface_axes, gradient="none",
                                           quantities=("sharpness", "sharpness_residual"),
                                           progress=False)
    W, B = (c.astype(np.float64) for c in surface.coords)
    hw, hb = W[1] - W[0], B[1] - B[0]
    cliffs = jaxgrad.find_cliffs(surface)
    jp = cliffs.jump_points

    w_star = critical_w(0.5)
    b_star = cliff_b(w_star)

    # The closed-form cliff: the fold curve from the cusp (x = 0: w = 4, b = -2) to the
    # fold point at x = 0.5, then the basin-boundary half-line. Distances in grid cells.
    fold_w, fold_b = _fold_curve()
    line_w = np.linspace(w_star, W[-1] + hw, 4001)
    curve = np.stack([np.concatenate([fold_w, line_w]),
                      np.concatenate([fold_b, cliff_b(line_w)])], axis=1)
    cells = (np.max(np.abs(jp[:, None, :] - curve[None]) / np.asarray([hw, hb]), axis=-1)
             .min(axis=1) if len(jp) else np.asarray([np.inf]))
    # Every column with w ≥ 5 (multiplier wσ'(0.5) ≥ 1.17, so 50 steps settle) crosses the
    # line once: a jump along b there, or a gradient peak where a grid point lands on it.
    marked = {round(float(v), 6) for v, a in zip(jp[:, 0], cliffs.jump_axis) if a == 1}
    marked |= {round(float(v), 6) for v in cliffs.peak_points[:, 0]}
    cols = W[(W >= 5.0) & (cliff_b(W) > B[0] + hb) & (cliff_b(W) < B[-1] - hb)]
    found = float(np.mean([round(float(v), 6) in marked for v in cols])) if len(cols) else 0.0
    # The loss on both sides of the jump along b at the largest w, against the fixed points.
    along_b = np.flatnonzero(cliffs.jump_axis == 1)
    i_far = int(along_b[np.argmax(jp[along_b, 0])]) if len(along_b) else 0
    jw, jb = (float(v) for v in jp[i_far]) if len(along_b) else (np.nan, np.nan)
    iw = int(np.argmin(np.abs(W - jw)))
    ib = int(np.searchsorted(B, jb))
    # Sharpness λ_max(∇²E) against the gradient norm: where each peaks, in grid cells.
    sharp = np.asarray(curvature.quantities["sharpness"], np.float64)
    sharp_res = np.asarray(curvature.quantities["sharpness_residual"], np.float64)
    grad_norm = np.asarray(surface.gradient_norm, np.float64)
    i_sharp = np.unravel_index(int(np.nanargmax(sharp)), sharp.shape)
    i_grad = np.unravel_index(int(np.nanargmax(grad_norm)), grad_norm.shape)
    peak_cells = int(np.max(np.abs(np.subtract(i_sharp, i_grad))))
    peak_w, peak_b = float(W[i_sharp[0]]), float(B[i_sharp[1]])
    peak_on_cliff = float(np.min(np.max(np.abs(np.asarray([peak_w, peak_b]) - curve)
                                        / np.asarray([hw, hb]), axis=-1)))
    max_sharpness = float(sharp[i_sharp])
    median_sharpness = float(np.median(np.abs(sharp)))
    # Resolved: the Lanczos residual is within 1% of |λ|. λ_max ≤ 0 is a true answer where E
    # is locally concave in (w, b) (both eigenvalues negative), counted apart.
    resolved = np.isfinite(sharp) & (sharp_res <= 1e-2 * np.abs(sharp))
    concave = resolved & (sharp <= 0)
    plateau_ratio = (float(np.nanmax(np.abs(sharp[~resolved]))) / max_sharpness
                     if np.any(~resolved & np.isfinite(sharp)) else 0.0)

    loss_below = float(surface.loss[iw, ib - 1])
    loss_above = float(surface.loss[iw, ib])
    ref_below = fixed_point_loss(W[iw], B[ib - 1], target, branch="lower")
    ref_above = fixed_point_loss(W[iw], B[ib], target, branch="upper")

    # Gradient descent from starts beside the cliff, on its low-loss side.
    n = config.num_starts
    ws = np.linspace(*config.start_w, n)
    starts = jaxgrad.models.OneUnitParams(jnp.asarray(ws, jnp.float32),
                                          jnp.asarray(cliff_b(ws) + config.start_offset,
                                                      jnp.float32))
    lr, thr = config.learning_rate, config.clip_threshold
    runs = {}
    for label, clip in (("unclipped", None), ("clipped", thr)):
        ps, ls, us = gd_paths(loss, starts, learning_rate=lr, clip=clip,
                              num_steps=config.gd_steps)
        runs[label] = (np.asarray(ps.w), np.asarray(ps.b), np.asarray(ls), np.asarray(us))
    max_step_unclipped = float(runs["unclipped"][3].max())
    max_step_clipped = float(runs["clipped"][3].max())
    catapults = int(np.sum(runs["unclipped"][3].max(axis=1) > 5 * lr * thr))
    final_unclipped = float(np.median(runs["unclipped"][2][:, -1]))
    final_clipped = float(np.median(runs["clipped"][2][:, -1]))

    summary = {
        "w_star": w_star,
        "b_star": b_star,
        "num_jumps": int(len(jp)),
        "num_gradient_peaks": int(len(cliffs.peak_points)),
        "max_sharpness": max_sharpness,
        "max_sharpness_w": peak_w,
        "max_sharpness_b": peak_b,
        "max_gradient_norm": float(grad_norm[i_grad]),
        "median_abs_sharpness": median_sharpness,
        "sharpness_unresolved_points": int(np.sum(~resolved)),
        "sharpness_nonpositive_points": int(np.sum(concave)),
        "max_step_unclipped": max_step_unclipped,
        "max_step_clipped": max_step_clipped,
        "catapulted_paths": catapults,
        "median_final_loss_unclipped": final_unclipped,
        "median_final_loss_clipped": final_clipped,
        "cliff_max_distance_cells": float(np.max(cells)),
        "cliff_min_jump_w": float(np.min(jp[:, 0])) if len(jp) else np.nan,
        "cliff_columns_found": found,
        "loss_below_cliff": loss_below,
        "loss_above_cliff": loss_above,
        "fixed_point_loss_below": ref_below,
        "fixed_point_loss_above": ref_above,
        "cliff_jump_w": float(W[iw]),
        "sharpness_peak_cells_from_gradient_peak": peak_cells,
        "sharpness_peak_cells_from_cliff": peak_on_cliff,
        "sharpness_peak_relative_residual": float(sharp_res[i_sharp]) / abs(max_sharpness),
        "sharpness_unresolved_fraction": float(np.mean(~resolved)),
        "sharpness_plateau_ratio": plateau_ratio,
    }
    arrays = {"w": W, "b": B, "loss": np.asarray(surface.loss),
              "gradient_norm": np.asarray(surface.gradient_norm), "sharpness": sharp,
              "sharpness_residual": sharp_res, "jumps": jp}
    for label, (pw, pb, pl, pu) in runs.items():
        arrays.update({f"{label}_w": pw, f"{label}_b": pb, f"{label}_loss": pl,
                       f"{label}_update_norm": pu})
    return Computed(summary=summary, arrays=arrays)


def checks(config: Config, computed: Computed) -> list[Check]:
    """The cliff against its closed form, the sharpness peak on it, and clipping's bound."""
    s = computed.summary
    w, b = computed.arrays["w"], computed.arrays["b"]
    hw = w[1] - w[0]
    lr, thr = config.learning_rate, config.clip_threshold
    max_sharpness = s["max_sharpness"]
    return [
        check_bound("cliff: max distance of jumps from fold curve ∪ basin line (grid cells)",
                    s["cliff_max_distance_cells"], 1.0,
                    note="fold (1/σ'(x), x - σ(x)/σ'(x)), 0 ≤ x ≤ 0.5; then b = 0.5 - wσ(0.5)"),
        check_bound("cliff: min w of jumps", s["cliff_min_jump_w"],
                    4.0 - hw, kind=">=", note="no bistability below the cusp w = 4"),
        check_close("fraction of w ≥ 5 columns showing the cliff", s["cliff_columns_found"], 1.0,
                    atol=0.0,
                    note="a jump along b, or a gradient peak on the line"),
        check_close("loss below the cliff vs lower fixed point", s["loss_below_cliff"],
                    s["fixed_point_loss_below"],
                    rtol=1e-3, atol=1e-6, note=f"at w = {s['cliff_jump_w']:.3g}"),
        check_close("loss above the cliff vs upper fixed point", s["loss_above_cliff"],
                    s["fixed_point_loss_above"],
                    rtol=1e-3, atol=1e-6, note=f"at w = {s['cliff_jump_w']:.3g}"),
        check_bound("sharpness peak vs gradient-norm peak (grid cells)",
                    s["sharpness_peak_cells_from_gradient_peak"], 1.0,
                    note=f"λ_max(∇²E) peaks at (w, b) = ({s['max_sharpness_w']:.3g}, "
                         f"{s['max_sharpness_b']:.3g})"),
        check_bound("sharpness peak: distance from the closed-form cliff (grid cells)",
                    s["sharpness_peak_cells_from_cliff"], 1.0,
                    note="fold curve ∪ basin line, as above"),
        check_bound("sharpness peak / median |sharpness|",
                    max_sharpness / s["median_abs_sharpness"], 1e6, kind=">=",
                    note="the curvature blows up on the cliff"),
        check_bound("sharpness at its peak: relative residual ‖Hy − λy‖/|λ|",
                    s["sharpness_peak_relative_residual"], 1e-10,
                    note="Lanczos error estimate, float64 (P = 2: exact up to rounding)"),
        check_bound("sharpness: fraction of grid points not resolved (residual > 1% of |λ|)",
                    s["sharpness_unresolved_fraction"], 0.01,
                    note=f"float64; {s['sharpness_unresolved_points']} of {w.size * b.size} "
                         f"points; {s['sharpness_nonpositive_points']} resolved points have "
                         "λ_max ≤ 0 (concave)"),
        check_bound("sharpness: largest |λ| at an unresolved point / peak sharpness",
                    s["sharpness_plateau_ratio"], 1e-12,
                    note=f"unresolved points lie on the flat plateaus only (largest |λ| there: "
                         f"{s['sharpness_plateau_ratio'] * max_sharpness:.2g}), where the "
                         "Hessian-vector products are at the rounding level of the loss's "
                         "derivatives"),
        check_bound("clipped GD: largest update norm", s["max_step_clipped"],
                    lr * thr * (1 + 1e-5),
                    note="optax.clip_by_global_norm bounds ‖Δθ‖ by lr·threshold"),
        check_bound("unclipped GD: largest update norm", s["max_step_unclipped"], 10 * lr * thr,
                    kind=">=", note="a step taken on the cliff catapults the parameters"),
    ]



def figures(config: Config, computed: Computed) -> dict[str, Any]:
    """The loss map with the cliff and GD paths, the gradient norm, sharpness, update norms."""
    s, a = computed.summary, computed.arrays
    W, B, jp, sharp = a["w"], a["b"], a["jumps"], a["sharpness"]
    resolved = np.isfinite(sharp) & (a["sharpness_residual"] <= 1e-2 * np.abs(sharp))
    grad_norm = np.asarray(a["gradient_norm"], np.float64)
    i_grad = np.unravel_index(int(np.nanargmax(grad_norm)), grad_norm.shape)
    w_star, b_star, max_sharpness = s["w_star"], s["b_star"], s["max_sharpness"]
    peak_w, peak_b = s["max_sharpness_w"], s["max_sharpness_b"]
    fold_w, fold_b = _fold_curve()
    lr, thr, n = config.learning_rate, config.clip_threshold, config.num_starts
    runs = {label: tuple(a[f"{label}_{k}"] for k in ("w", "b", "loss", "update_norm"))
            for label in ("unclipped", "clipped")}
    surface_loss, surface_grad = a["loss"], a["gradient_norm"]
    # The two maps side by side, the update norms below: reads at the report's width.
    fig = plt.figure(figsize=(10, 11))
    grid = fig.add_gridspec(2, 2, height_ratios=[1.2, 1])
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]),
            fig.add_subplot(grid[1, 1]), fig.add_subplot(grid[1, 0])]
    ax = axes[0]
    im = ax.pcolormesh(W, B, np.asarray(surface_loss).T, shading="nearest", cmap="viridis")
    fig.colorbar(im, ax=ax, label=r"$E = (\sigma(x_{50}) - 0.7)^2$")
    lw = np.linspace(w_star, W[-1], 50)
    # White marks get a black outline: visible on the map and in the legend's white box.
    outline = [patheffects.Stroke(linewidth=2.8, foreground="k"), patheffects.Normal()]
    ax.plot(lw, cliff_b(lw), "w--", lw=1.2, path_effects=outline, zorder=5,
            label="b = 0.5 - wσ(0.5), w > w* (closed form)")
    ax.plot(fold_w, fold_b, "w:", lw=1.4, path_effects=outline, zorder=5,
            label="fold curve, 0 ≤ x ≤ 0.5 (closed form)")
    ax.plot([w_star], [b_star], "w*", ms=12, mec="k", zorder=6,
            label=f"fold point w* = {w_star:.3f}")
    # (the closed-form marks are drawn above the GD paths, which cross them)
    if len(jp):
        ax.plot(jp[:, 0], jp[:, 1], "r.", ms=2, label="detected jumps")
    shown = np.argsort(-runs["unclipped"][3].max(axis=1))[:3]
    for j, i in enumerate(shown):
        for label, color in (("unclipped", "orange"), ("clipped", "cyan")):
            pw, pb = runs[label][0][i], runs[label][1][i]
            ax.plot(pw, pb, "-", color=color, lw=1, marker=".", ms=3,
                    label=f"GD {label}" if j == 0 else None)
    ax.set_xlim(W[0], W[-1])
    ax.set_ylim(B[0], B[-1])
    ax.set_xlabel("w")
    ax.set_ylabel("b")
    ax.set_title("Loss surface, cliff and GD paths", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)

    ax = axes[1]
    im = ax.pcolormesh(W, B, np.log10(np.asarray(surface_grad).T + 1e-12),
                       shading="nearest", cmap="magma")
    fig.colorbar(im, ax=ax, label=r"$\log_{10} \|\nabla E\|$")
    ax.set_xlabel("w")
    ax.set_ylabel("b")
    ax.plot([W[i_grad[0]]], [B[i_grad[1]]], "c+", ms=12, mew=2, label="max ‖∇E‖")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("Gradient norm (log scale)", fontsize=10)

    ax = axes[3]
    # log10 of λ_max, ten decades below the peak at most; grey where it is not resolved
    # (residual above 1% of |λ|) or where λ_max ≤ 0 (a concave point, no logarithm).
    positive = resolved & (sharp > 0)
    log_sharp = np.where(positive, np.log10(np.where(positive, sharp, 1.0)), np.nan)
    ax.set_facecolor("0.8")
    top = np.log10(max_sharpness)
    im = ax.pcolormesh(W, B, log_sharp.T, shading="nearest", cmap="magma", vmin=top - 10,
                       vmax=top)
    fig.colorbar(im, ax=ax, extend="min", label=r"$\log_{10} \lambda_{\max}(\nabla^2 E)$")
    ax.plot([W[i_grad[0]]], [B[i_grad[1]]], "c+", ms=12, mew=2, label="max ‖∇E‖")
    ax.plot([peak_w], [peak_b], "wx", ms=9, mew=2, path_effects=outline,
            label=f"max sharpness {max_sharpness:.3g}")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_xlim(W[0], W[-1])
    ax.set_ylim(B[0], B[-1])
    ax.set_xlabel("w")
    ax.set_ylabel("b")
    ax.set_title("Sharpness λ_max(∇²E) (float64, log scale)", fontsize=10)

    ax = axes[2]
    for label, color in (("unclipped", "C1"), ("clipped", "C0")):
        us = runs[label][3]
        ax.semilogy(us.max(axis=0), color=color, label=f"{label}: max over {n} starts")
        ax.semilogy(np.median(us, axis=0), color=color, ls=":", label=f"{label}: median")
    ax.axhline(lr * thr, color="k", ls="--", lw=0.8, label="lr · threshold")
    ax.set_xlabel("GD step")
    ax.set_ylabel("‖Δθ‖")
    ax.set_title("Update norms", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    fig.tight_layout()

    return {"pascanu_cliff": fig}


def run(config: Config) -> Result:
    """``compute``, then ``checks`` and ``figures`` on its numbers."""
    return staged_run(config, compute, checks, figures)
