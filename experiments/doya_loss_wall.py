"""Doya's loss wall (Doya 1992; Wikipedia, "Vanishing gradient problem",
§ Geometric model and note 4).

Doya's neuron x_{t+1} = (1-ε) x_t + ε σ(w x_t + b) (u = 0), w = 5, x(0) = 0.5, and the loss
L = (0.855 - x(T))². The map is the explicit Euler step of dx/dt = -x + σ(wx + b) with
dt = ε; its fixed points are those of the flow exactly, whatever ε. At b = -2.5 the start
x = 0.5 is exactly the unstable fixed point (σ(5·0.5 - 2.5) = 1/2), so for b > -2.5 the
state flows to the upper stable point (≈ 0.855, L → 0) and for b < -2.5 to the lower one
(≈ 0.145, L ≈ 0.50): a wall at b = -2.5.

Discretisation: ε = 0.5 and T = 200 steps (continuous time 100). Near the wall the state
leaves 0.5 at the rate Λ = 1 + ε(w/4 - 1) = 1.125 per step, so a start δ away needs
≈ ln(0.3/δ)/ln Λ steps to escape; with the grid points at least half a spacing
(≥ 2.5e-4) from the wall, escape plus settling take < 150 steps: every grid point has
converged and the wall is resolved to the grid spacing.

Closed forms checked: the stable points by root finding (references for the loss on
each side); the gradient at the wall, where the tangent y_t = ∂x_t/∂b obeys
y_{t+1} = Λ y_t + ε/4, so ∂L/∂b = -2 (0.855 - 0.5)(Λ^T - 1); far from the wall, the
Wikipedia's ∂x*/∂b = (1/(x*(1-x*)) - w)^{-1}, so ∂L/∂b = -2 (0.855 - x*) ∂x*/∂b; in the
(w, b) plane, the wall is the line b = -w/2 (x = 0.5 a fixed point) for w > 4 (where
it is unstable: w σ'(0) = w/4 > 1).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from operator import itemgetter

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patheffects
from scipy.optimize import brentq

import jaxgrad

from ._runner import Computed, Result, check_bound, check_close, staged_run

NAME = "doya-loss-wall"
DESCRIPTION = ("The loss wall of Wikipedia's \"Vanishing gradient problem\": "
               "L = (0.855 - x(T))² for Doya's neuron (w = 5, x0 = 0.5) "
               "jumps from 0 to 0.50 at b = -2.5, where the gradient blows up.")
@dataclasses.dataclass(frozen=True)
class Config:
    """Doya's neuron, its loss, and the scans of it."""

    w: float = 5.0  #: self-coupling of the neuron (the b-scan's w)
    x0: float = 0.5  #: initial state x(0)
    target: float = 0.855  #: target of x(T) in the loss
    eps: float = 0.5  #: Euler step ε of the map
    num_steps: int = 200  #: T, steps of the map
    b_min: float = -3.0  #: left end of the b scan
    b_max: float = -2.0  #: right end of the b scan
    num_b: int = 2000  #: points of the b scan
    refine_decades: int = 15  #: float64 approach to the wall: |b + 2.5| from 1e-1 to 1e-15
    refine_per_decade: int = 4  #: points per decade of that approach
    surface_w: tuple[float, float, int] = (3.0, 7.0, 81)  #: (start, stop, points) in w
    surface_b: tuple[float, float, int] = (-3.6, -1.4, 100)  #: (start, stop, points) in b


QUICK_CONFIG = {"num_b": 400, "surface_w": (3.0, 7.0, 41), "surface_b": (-3.6, -1.4, 50),
                "refine_per_decade": 2}
SUMMARY_KEYS = ("wall_b", "loss_above_wall", "loss_below_wall", "max_abs_grad",
                "max_abs_grad_on_fine_grid", "grad_at_wall", "grad_at_wall_closed_form",
                "grid_spacing", "stable_points_at_wall", "surface_jumps", "surface_peaks",
                "surface_nonfinite_points", "discretisation")


def doya_loss(params: jaxgrad.DoyaParams, *, x0: float, target: float, eps: float,
              num_steps: int) -> jax.Array:
    """``(target - x(T))²`` for Doya's discrete neuron with u = 0."""
    dtype = jnp.result_type(params.b)
    step = partial(jaxgrad.doya_step, params=params, eps=eps)
    xs = jaxgrad.unroll(step, jnp.asarray(x0, dtype), jnp.zeros((num_steps,), dtype))
    return (target - xs[-1]) ** 2


def stable_points(w: float, b: float) -> tuple[float, float]:
    """Lower and upper roots of x = σ(w x + b) (float64 root finding)."""
    def g(x):
        return x - 1.0 / (1.0 + np.exp(-(w * x + b)))
    # The middle root is the unstable point; the outer roots bracket against 0 and 1.
    x_mid = brentq(g, 0.2, 0.8) if g(0.2) * g(0.8) < 0 else 0.5
    lower = brentq(g, 1e-12, x_mid - 1e-12) if g(1e-12) * g(x_mid - 1e-12) < 0 else np.nan
    upper = brentq(g, x_mid + 1e-12, 1 - 1e-12) if g(x_mid + 1e-12) * g(1 - 1e-12) < 0 \
        else np.nan
    return lower, upper


def compute(config: Config) -> Computed:
    """The b scan across the wall, the float64 approach to it and the (w, b) surface."""
    w, x0, target = config.w, config.x0, config.target
    eps, T = config.eps, config.num_steps
    loss = partial(doya_loss, x0=x0, target=target, eps=eps, num_steps=T)
    params = jaxgrad.DoyaParams(w, -2.5, 0.0)

    # 1. A fine scan of b across the wall.
    scan = jaxgrad.scan_landscape(loss, params,
                                  {"b": (config.b_min, config.b_max, config.num_b)},
                                  progress=False)
    b = scan.coords[0].astype(np.float64)
    spacing = float(b[1] - b[0])
    cliffs = jaxgrad.find_cliffs(scan)
    wall_b = float(cliffs.jump_points[0, 0])
    i_above = int(np.searchsorted(b, wall_b))
    b_below, b_above = float(b[i_above - 1]), float(b[i_above])
    loss_below, loss_above = float(scan.loss[i_above - 1]), float(scan.loss[i_above])
    x_lo_below = stable_points(w, b_below)[0]
    x_up_above = stable_points(w, b_above)[1]
    x_lo, x_up = stable_points(w, -2.5)
    grad_b = scan.axis_gradients[:, 0].astype(np.float64)

    # 2. Approaching the wall from both sides, in float64 (the wall is ~Λ^-T wide).
    with jax.enable_x64(True):
        p64 = jaxgrad.DoyaParams(jnp.float64(w), jnp.float64(-2.5), jnp.float64(0.0))
        n_dec, per = config.refine_decades, config.refine_per_decade
        delta = np.logspace(-1, -n_dec, n_dec * per - per + 1)
        b_ref = np.concatenate([-2.5 - delta, [-2.5], (-2.5 + delta)[::-1]])
        refine = jaxgrad.scan_landscape(loss, p64, {"b": b_ref}, progress=False)
        g_ref = np.asarray(refine.axis_gradients[:, 0])
    Lam = 1.0 + eps * (w / 4.0 - 1.0)
    wall_grad_ref = -2.0 * (target - 0.5) * (Lam**T - 1.0)
    wall_grad = float(g_ref[len(delta)])
    max_abs_grad = float(np.max(np.abs(g_ref)))

    def far_field(bv, xs):
        return -2.0 * (target - xs) * float(jaxgrad.doya_fixed_point_sensitivity(xs, w))

    # Far-field gradients at b = -2.5 ∓ 0.1 from the scan vs Wikipedia's sensitivity formula.
    b_far_lo, b_far_hi = -2.5 - delta[0], -2.5 + delta[0]
    g_far_lo, g_far_hi = float(g_ref[0]), float(g_ref[-1])
    ref_far_lo = far_field(b_far_lo, stable_points(w, b_far_lo)[0])
    ref_far_hi = far_field(b_far_hi, stable_points(w, b_far_hi)[1])

    # 3. The (w, b) surface; the wall is the line b = -w/2 for w > 4.
    sw, sb = config.surface_w, config.surface_b
    surface = jaxgrad.scan_landscape(
        loss, params, {"w": (sw[0], sw[1], int(sw[2])), "b": (sb[0], sb[1], int(sb[2]))},
        progress=False)
    surf_cliffs = jaxgrad.find_cliffs(surface)
    hw = float(surface.coords[0][1] - surface.coords[0][0])
    hb = float(surface.coords[1][1] - surface.coords[1][0])
    jp = surf_cliffs.jump_points
    off_line = np.abs(jp[:, 1] + jp[:, 0] / 2.0) if len(jp) else np.asarray([np.inf])
    # Columns of w where the flow has fully converged on both sides of the wall
    # (Λ(w)^T ≥ 1e6 and a margin) must each show the jump along b.
    w_cols = surface.coords[0].astype(np.float64)
    sharp = w_cols[(1 + eps * (w_cols / 4 - 1)) ** T > 1e6]
    sharp = sharp[sharp >= 4.5]
    # A column shows the wall as a jump along b, or, where a grid point lands on the wall
    # itself (x(0) = 0.5 stays put), as a gradient-norm peak there, or as a gradient that
    # overflows float32 there (Λ(w)^T > 1e38: reported as a non-finite point).
    pk = np.concatenate([surf_cliffs.peak_points, surface.nonfinite_points])
    cols_with_wall = {round(float(v), 6) for v, a in zip(jp[:, 0], surf_cliffs.jump_axis)
                      if a == 1}
    cols_with_wall |= {round(float(v), 6) for v in pk[:, 0]}
    found = np.mean([round(float(v), 6) in cols_with_wall for v in sharp]) if len(sharp) else 0
    peak_off_line = np.abs(pk[:, 1] + pk[:, 0] / 2.0) if len(pk) else np.zeros(1)

    W, B = surface.coords

    summary = {
        "wall_b": wall_b,
        "loss_above_wall": loss_above,
        "loss_below_wall": loss_below,
        "max_abs_grad": max_abs_grad,
        "max_abs_grad_on_fine_grid": float(np.max(np.abs(grad_b))),
        "grad_at_wall": wall_grad,
        "grad_at_wall_closed_form": wall_grad_ref,
        "grid_spacing": spacing,
        "stable_points_at_wall": [x_lo, x_up],
        "surface_jumps": int(len(jp)),
        "surface_peaks": int(len(surf_cliffs.peak_points)),
        "surface_nonfinite_points": surface.nonfinite_points.tolist(),
        "discretisation": f"Euler map with eps = {eps}, T = {T} steps",
    }
    arrays = {"b": b, "loss": np.asarray(scan.loss), "grad_b": grad_b,
              "b_refine": b_ref, "grad_refine": g_ref,
              "surface_w": np.asarray(W), "surface_b": np.asarray(B),
              "surface_loss": np.asarray(surface.loss),
              "surface_gradient_norm": np.asarray(surface.gradient_norm),
              "surface_jumps": jp}
    details = {"wall_b": wall_b, "spacing": spacing, "x_up": x_up, "x_lo": x_lo,
               "loss_above": loss_above, "x_up_above": x_up_above, "loss_below":
               loss_below, "x_lo_below": x_lo_below, "wall_grad": wall_grad,
               "wall_grad_ref": wall_grad_ref, "Lam": Lam, "g_far_lo": g_far_lo,
               "ref_far_lo": ref_far_lo, "g_far_hi": g_far_hi, "ref_far_hi": ref_far_hi,
               "max_abs_grad": max_abs_grad, "off_line": off_line, "hb": hb, "hw": hw,
               "jp": jp, "found": found, "peak_off_line": peak_off_line, "b": b, "scan":
               scan, "grad_b": grad_b, "b_ref": b_ref, "g_ref": g_ref, "surface":
               surface}
    return Computed(summary, arrays, details)


def checks(config: Config, computed: Computed) -> list:
    """The wall, the loss on each side and the gradients against their closed forms."""
    target, T = config.target, config.num_steps
    (wall_b, spacing, x_up, x_lo, loss_above, x_up_above, loss_below,
     x_lo_below, wall_grad, wall_grad_ref, Lam, g_far_lo, ref_far_lo, g_far_hi,
     ref_far_hi, max_abs_grad, off_line, hb, hw, jp, found, peak_off_line) = itemgetter(
        "wall_b", "spacing", "x_up", "x_lo", "loss_above", "x_up_above",
        "loss_below", "x_lo_below", "wall_grad", "wall_grad_ref", "Lam",
        "g_far_lo", "ref_far_lo", "g_far_hi", "ref_far_hi", "max_abs_grad",
        "off_line", "hb", "hw", "jp", "found", "peak_off_line")(computed.details)
    return [
        check_close("wall_b (largest loss jump)", wall_b, -2.5, atol=spacing,
                    note="within one grid spacing of x(0) = 0.5 being the unstable point"),
        check_close("upper stable point at b = -2.5 (root finding)", x_up, 0.855, atol=5e-4,
                    note="Wikipedia, \"Vanishing gradient problem\", note 4"),
        check_close("lower stable point at b = -2.5 (root finding)", x_lo, 0.145, atol=5e-4,
                    note="Wikipedia, \"Vanishing gradient problem\", note 4"),
        check_close("loss_above_wall vs (0.855 - x_up(b))²", loss_above,
                    (target - x_up_above) ** 2, atol=1e-6),
        check_close("loss_below_wall vs (0.855 - x_lo(b))²", loss_below,
                    (target - x_lo_below) ** 2, rtol=1e-4),
        check_close("loss jump across the wall", loss_below - loss_above, 0.50, atol=0.01,
                    note="Wikipedia, 'Vanishing gradient problem': 'loss jumps to 0.50'"),
        check_close("dL/db at b = -2.5 vs -2(0.855-0.5)(Λ^T-1)", wall_grad, wall_grad_ref,
                    rtol=1e-6, note=f"Λ = {Lam}, T = {T}, float64"),
        check_close("dL/db at b = -2.6 vs Wikipedia's ∂x*/∂b formula", g_far_lo, ref_far_lo,
                    rtol=1e-4),
        check_close("dL/db at b = -2.4 vs Wikipedia's ∂x*/∂b formula", g_far_hi, ref_far_hi,
                    rtol=1e-3, atol=1e-6),
        check_close("max_abs_grad / |wall closed form|", max_abs_grad / abs(wall_grad_ref),
                    1.0, rtol=0.25, note="the peak is set by Λ^T at the unstable point"),
        check_bound("surface jumps: max distance from the line b = -w/2",
                    float(np.max(off_line)), hb + hw / 2.0, note="within one grid cell"),
        check_bound("surface jumps: min w", float(np.min(jp[:, 0])) if len(jp) else np.nan,
                    4.0 - hw, kind=">=", note="the wall exists only for w > 4"),
        check_close("fraction of converged w columns (w ≥ 4.5) showing the wall", found, 1.0,
                    atol=0.0, note="a jump along b, or a gradient peak on the wall"),
        check_bound("surface gradient peaks and overflows: max distance from b = -w/2",
                    float(np.max(peak_off_line)), hb + hw / 2.0, note="within one grid cell"),
    ]


def figures(config: Config, computed: Computed) -> dict:
    """The loss and gradient across the wall, their blow-up, and the (w, b) surface."""
    w, target, eps, T = config.w, config.target, config.eps, config.num_steps
    (b, scan, wall_b, x_lo, grad_b, b_ref, g_ref, wall_grad_ref, Lam, surface,
     jp) = itemgetter(
        "b", "scan", "wall_b", "x_lo", "grad_b", "b_ref", "g_ref",
        "wall_grad_ref", "Lam", "surface", "jp")(computed.details)
    # Two panels above, the (w, b) surface below: reads at the report's column width.
    fig = plt.figure(figsize=(10, 8.4))
    grid = fig.add_gridspec(2, 4)
    axes = [fig.add_subplot(grid[0, :2]), fig.add_subplot(grid[0, 2:]),
            fig.add_subplot(grid[1, 1:3])]
    ax = axes[0]
    ax.plot(b, scan.loss, lw=1.2, label="L(b), scan")
    # The closed-form wall is drawn wide and pale under the detected one (they coincide).
    ax.axvline(-2.5, color="0.6", lw=4, alpha=0.6, zorder=1,
               label="b = -2.5 (closed form; wide, under)")
    ax.axvline(wall_b, color="r", ls="--", lw=0.9, zorder=2,
               label=f"detected wall {wall_b:.5f}")
    ax.axhline((target - x_lo) ** 2, color="C2", ls="--", lw=0.8,
               label=f"(0.855 - {x_lo:.4f})² = {(target - x_lo) ** 2:.3f}")
    ax.set_xlabel("b")
    ax.set_ylabel("L = (0.855 - x(T))²")
    ax.set_title(f"Loss across the wall (w = {w}, T = {T}, ε = {eps})", fontsize=10)
    ax2 = ax.twinx()
    ax2.semilogy(b, np.abs(grad_b) + 1e-12, color="C1", lw=0.8, alpha=0.8,
                 label="|dL/db| on the grid (right axis)")
    ax2.set_ylabel("|dL/db| on the grid (log scale)", color="C1")
    handles, labels = ax.get_legend_handles_labels()
    handles2, labels2 = ax2.get_legend_handles_labels()
    ax2.legend(handles + handles2, labels + labels2, fontsize=7, loc="upper center",
               bbox_to_anchor=(0.5, -0.15), ncol=2,
               framealpha=0.9)

    ax = axes[1]
    d_all = np.abs(b_ref + 2.5)
    below, above = b_ref < -2.5, b_ref > -2.5
    ax.loglog(d_all[below], np.abs(g_ref[below]), "o-", ms=3, label="b < -2.5")
    ax.loglog(d_all[above], np.abs(g_ref[above]), "s-", ms=3, label="b > -2.5")
    ax.axhline(abs(wall_grad_ref), color="k", ls="--", lw=0.8,
               label="closed form at the wall $2(0.855 - 0.5)(\\Lambda^T - 1)$,\n"
                     f"$\\Lambda = 1 + \\varepsilon(w/4 - 1) = {Lam:g}$, T = {T}")
    ax.set_xlabel("|b + 2.5|")
    ax.set_ylabel("|dL/db|")
    ax.set_title("The gradient blows up at the wall (float64)", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15))

    ax = axes[2]
    W, B = surface.coords
    im = ax.pcolormesh(W, B, np.asarray(surface.loss).T, shading="nearest", cmap="viridis")
    fig.colorbar(im, ax=ax, label="L")
    line_w = np.linspace(4.0, float(W[-1]), 50)
    # White dashes with a black outline: visible on the map and on the legend's white box.
    ax.plot(line_w, -line_w / 2, "w--", lw=1.2, label="b = -w/2, w > 4 (closed form)",
            path_effects=[patheffects.Stroke(linewidth=2.8, foreground="k"),
                          patheffects.Normal()])
    if len(jp):
        ax.plot(jp[:, 0], jp[:, 1], "r.", ms=3, label="detected jumps")
    ax.set_xlabel("w")
    ax.set_ylabel("b")
    ax.set_ylim(float(B[0]), float(B[-1]))
    ax.set_title("Loss surface over (w, b) and its wall", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    fig.tight_layout()
    return {"doya_loss_wall": fig}


def run(config: Config) -> Result:
    return staged_run(config, compute, checks, figures)
