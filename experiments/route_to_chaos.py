"""The period-doubling route to chaos of the logistic map x -> r x (1 - x) (Feigenbaum 1978;
Strogatz 1994, §10.2-10.6).

The fixed point 1 - 1/r loses stability at r_1 = 3 through a flip (multiplier -1) and hands
over to a 2-cycle, which flips at r_2 = 1 + √6 to a 4-cycle, and so on: the 2^(n-1)-cycle
flips at r_n. The r_n accumulate geometrically at r∞ = 3.569945672..., with
(r_n - r_{n-1}) / (r_{n+1} - r_n) -> δ = 4.669201609... (Feigenbaum's constant); past r∞
the largest Lyapunov exponent λ₁ turns positive (chaos, broken by periodic windows), and at
r = 4 it is log 2 (the map is conjugate to the tent map).

Protocol (float64 throughout, `jax.enable_x64` inside the run):
1. r_1: `jaxgrad.continue_branch` follows the fixed point 1 - 1/r from r = 2.8. For n >= 2 the
   2^(n-1)-cycle is a fixed point of `jaxgrad.iterate(f, 2^(n-1))`: a point of it is found by
   iterating the map at r_{n-1} + 0.4 g_n (g_n = (r_{n-1} - r_{n-2}) / 4.67, r_0 = 1, the
   transcritical point: a step guess, not a result), where the cycle is strongly stable, and
   the branch is continued in r. The first sign change of μ + 1 along the branch (μ its
   multiplier, the eigenvalue of ∂F^k/∂x) brackets the flip, and
   `jaxgrad.locate_bifurcation(..., bifurcation="flip")` solves for it by Newton.
2. Feigenbaum ratios δ_n = (r_n - r_{n-1}) / (r_{n+1} - r_n); the accumulation point from
   the last two r_n and the last ratio, r∞ ≈ r_N + (r_N - r_{N-1}) / (δ_last - 1) (the
   geometric series of the remaining gaps).
3. λ₁(r) by `jaxgrad.lyapunov_spectrum` vmapped over r on [2.8, 4] and on a fine grid across
   r∞; at every located r_n; and in one long run at r = 4.
4. The orbit diagram (`jaxgrad.analysis.orbit_diagram`) with the r_n marked, λ₁(r) below it, and
   log(r∞ - r_n) against n beside the slope -log δ.

Published values: r_1 = 3 and r_2 = 1 + √6 exactly (Strogatz 1994, §10.3); r_3..r_6 to six
decimals (3.544090, 3.564407, 3.568759, 3.569692) as tabulated in the literature (Feigenbaum
1978; Strogatz 1994, §10.2 lists r_1..r_5 and r∞; r_6 as quoted in issue #14); r_3 also as
the real root near 3.544 of the degree-12 polynomial t¹² - 12t¹¹ + 48t¹⁰ - 40t⁹ - 193t⁸ +
392t⁷ + 44t⁶ + 8t⁵ - 977t⁴ - 604t³ + 2108t² + 4913 (quoted by J. D. Cook, "Spacing between
branches", 2025); δ = 4.669201609 and r∞ = 3.569945672 (Feigenbaum 1978; Briggs 1991, Math.
Comp. 57, for more digits of δ).

Departures: "first sustained positive λ₁" has no standard definition; here it is the first r
on the fine grid ([3.565, 3.575], none of whose points is r∞) where λ₁ > 0 and λ₁ > 0 on at
least `onset_fraction` of the fine-grid points in the next `onset_window` of r (the periodic
windows past r∞ are narrow), checked against r∞ to `onset_grid_spacings` grid spacings. λ₁ is
a finite-time estimate from x(0) = 0.3: at a flip the orbit approaches the cycle only
algebraically, so λ₁(r_n) is small and negative (about -2e-4 for 20,000 steps), not 0; the
check is |λ₁(r_n)| below a stated bound. The quick configuration locates r_1..r_4 only, so
its last ratio is δ_2 (0.3 % from δ) and its r∞ is extrapolated from r_4 (tolerance 1e-4).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jaxgrad

from ._runner import Check, Computed, Result, check_bound, check_close, staged_run

NAME = "route-to-chaos"
DESCRIPTION = ("Logistic map: period-doubling points r_1..r_6 by k-cycle continuation, the "
               "Feigenbaum ratios, the accumulation point r∞ and λ₁(r) turning positive there.")


@dataclasses.dataclass(frozen=True)
class Config:
    """The experiment's parameters."""

    num_doublings: int = 6  # period-doubling points r_1..r_n located (2 to 6)
    r_min: float = 2.8  # the λ₁ and orbit grid over r
    r_max: float = 4.0
    num_r: int = 2401
    lyapunov_steps: int = 4000  # steps (after the transient) per λ₁ on that grid
    lyapunov_transient: int = 1000
    zoom_min: float = 3.565  # the fine λ₁ grid around r∞
    zoom_max: float = 3.575
    num_zoom: int = 801
    zoom_steps: int = 20000
    zoom_transient: int = 2000
    onset_window: float = 0.002  # λ₁ > 0 on onset_fraction of [r, r + onset_window]: onset
    onset_fraction: float = 0.75
    onset_grid_spacings: int = 2  # tolerance of the onset against r∞, in fine-grid spacings
    steps_at_4: int = 200000  # steps of the λ₁ estimate at r = 4
    orbit_transient: int = 1000  # orbit diagram: steps dropped, then kept
    orbit_keep: int = 200
    continuation_steps: int = 120  # continuation steps per cycle's branch
    accumulation_atol: float = 1e-6  # tolerance of the extrapolated r∞
    delta_rtol: float = 1e-3  # relative tolerance of the last Feigenbaum ratio


QUICK_CONFIG = {"num_doublings": 4, "num_r": 601, "lyapunov_steps": 2000, "num_zoom": 201,
                "zoom_steps": 10000, "steps_at_4": 50000, "orbit_keep": 100,
                "accumulation_atol": 1e-4, "delta_rtol": 5e-3}
SUMMARY_KEYS = (
    "period_doubling_points", "feigenbaum_ratios", "feigenbaum_delta", "accumulation_point",
    "lambda_1_onset", "lambda_1_at_period_doubling_points", "lambda_1_at_4", "continuation",
    "r3_polynomial_root", "lambda_1_nonfinite_points", "orbit_nonfinite_states")

PUBLISHED_R = (3.0, 1.0 + math.sqrt(6.0), 3.544090, 3.564407, 3.568759, 3.569692)
PUBLISHED_ATOL = (1e-12, 1e-12, 1e-6, 1e-6, 1e-6, 1e-6)  # exact, exact, then 6 decimals
DELTA = 4.669201609
R_INF = 3.569945672
R3_POLYNOMIAL = (1, -12, 48, -40, -193, 392, 44, 8, -977, -604, 2108, 0, 4913)


def logistic_map(x, p):
    """x -> r x (1 - x)."""
    return p["r"] * x * (1 - x)


LOGISTIC = jaxgrad.autonomous(logistic_map)


@jax.jit
def _settle(x0, r, num_steps):
    """The state after ``num_steps`` steps at ``r`` (traced count: one compilation)."""
    params = {"r": r}
    return jax.lax.fori_loop(0, num_steps, lambda _, x: LOGISTIC(x, None, params), x0)


def _lyapunov_fn(num_steps, transient):
    def one(r):
        spec = jaxgrad.lyapunov_spectrum(LOGISTIC, jnp.asarray(0.3), params={"r": r},
                                         num_steps=num_steps, transient=transient)
        return spec.exponents[0], spec.finite

    return jax.jit(jax.vmap(one))


def _flip_of_cycle(k, r_start, r_stop, gap, config):
    """Continue the k-cycle from ``r_start`` and locate its flip; (point, branch, guess)."""
    f = LOGISTIC if k == 1 else jaxgrad.iterate(LOGISTIC, k)
    if k == 1:
        x0 = jnp.asarray(1.0 - 1.0 / r_start)
    else:
        x0 = _settle(jnp.asarray(0.5), jnp.asarray(r_start), 400 * k)
    branch = jaxgrad.continue_branch(f, x0, params={"r": r_start}, param="r",
                                     p_range=(r_start, r_stop), ds=gap / 20,
                                     num_steps=config.continuation_steps, locate=False)
    ok = np.asarray(branch.valid)
    p = np.asarray(branch.p)[ok]
    x = np.asarray(branch.x)[ok]
    mu = np.asarray(branch.eigenvalues)[ok, 0].real
    crossings = np.flatnonzero((mu[:-1] + 1 > 0) & (mu[1:] + 1 <= 0))
    if crossings.size == 0:
        return None, (p, mu), 0
    i = int(crossings[0])
    w = (mu[i] + 1) / (mu[i] - mu[i + 1])  # linear interpolation of μ + 1 = 0
    r_guess = p[i] + w * (p[i + 1] - p[i])
    x_guess = x[i] + w * (x[i + 1] - x[i])
    bp = jaxgrad.locate_bifurcation(f, jnp.asarray(x_guess), params={"r": float(r_guess)},
                                    param="r", bifurcation="flip")
    return bp, (p, mu), int(crossings.size)


def compute(config: Config) -> Computed:
    """The flips of the 2^(n-1)-cycles, the Feigenbaum ratios, λ₁ over r and the orbits."""
    with jax.enable_x64(True):
        return _compute(config)


def _compute(config: Config) -> Computed:
    num = int(config.num_doublings)
    if not 2 <= num <= len(PUBLISHED_R):
        raise ValueError(f"`num_doublings` must be in [2, {len(PUBLISHED_R)}], got {num}")

    # 1. Period-doubling points by continuation of the 2^(n-1)-cycle and Newton on its flip.
    r_points, branches, continuation = [], [], []
    r_prev, gap_prev = 1.0, 2.0  # r_0 = 1 (transcritical), r_1 - r_0 = 2
    for n in range(1, num + 1):
        k = 2 ** (n - 1)
        gap = gap_prev / 4.67
        if n == 1:
            r_start, r_stop = 2.8, 3.2
        else:
            r_start, r_stop = r_prev + 0.4 * gap, r_prev + 1.6 * gap
        bp, (p, mu), crossings = _flip_of_cycle(k, r_start, r_stop, gap, config)
        branches.append((p, mu))
        step = {"n": n, "cycle": k, "r_start": r_start, "r_stop": r_stop,
                "crossings": crossings}
        continuation.append(step)
        if bp is None:
            r_points.append(math.nan)
            break
        r_n = float(bp.p)
        step.update(converged=bool(bp.converged), residual=float(bp.residual),
                    multiplier=float(np.asarray(bp.eigenvalues)[0].real), r=r_n)
        r_points.append(r_n)
        gap_prev, r_prev = r_n - r_prev, r_n
    r = np.asarray(r_points)
    n_found = int(np.sum(np.isfinite(r)))
    r3_poly = math.nan
    if n_found >= 3:
        roots = np.roots(np.asarray(R3_POLYNOMIAL, dtype=np.float64))
        real = roots[np.abs(roots.imag) < 1e-9].real
        r3_poly = float(real[np.argmin(np.abs(real - 3.544))])

    # 2. Feigenbaum ratios and the accumulation point.
    gaps = np.diff(r[:n_found])
    ratios = gaps[:-1] / gaps[1:]
    delta_last = float(ratios[-1]) if ratios.size else math.nan
    r_inf = float(r[n_found - 1] + gaps[-1] / (delta_last - 1)) if ratios.size else math.nan

    # 3. λ₁ over r, near r∞, at each r_n and at r = 4.
    lyap = _lyapunov_fn(config.lyapunov_steps, config.lyapunov_transient)
    r_grid = jnp.linspace(config.r_min, config.r_max, config.num_r)
    lam, finite = (np.asarray(a) for a in lyap(r_grid))
    zoom = _lyapunov_fn(config.zoom_steps, config.zoom_transient)
    # the fine grid is not centred on the published r∞, which is none of its points
    r_zoom = jnp.linspace(config.zoom_min, config.zoom_max, config.num_zoom)
    lam_zoom = np.asarray(zoom(r_zoom)[0])
    rz = np.asarray(r_zoom)
    onset = _onset(rz, lam_zoom, config.onset_window, config.onset_fraction)
    lam_at_rn = np.asarray(zoom(jnp.asarray(r[:n_found]))[0])
    at4 = _lyapunov_fn(config.steps_at_4, 1000)
    lam4 = float(at4(jnp.asarray([4.0]))[0][0])

    # 4. The orbit diagram.
    orbit = jaxgrad.analysis.orbit_diagram(LOGISTIC, jnp.asarray([0.3]), r_grid,
                                           params={"r": config.r_min}, param="r",
                                           transient=config.orbit_transient,
                                           keep=config.orbit_keep)
    states = np.asarray(orbit.states)[:, 0, :]

    published = [{"n": n, "measured": float(v), "published": PUBLISHED_R[n - 1]}
                 for n, v in enumerate(r[:n_found], start=1)]
    summary = {
        "period_doubling_points": published,
        "feigenbaum_ratios": [float(v) for v in ratios],
        "feigenbaum_delta": {"measured": delta_last, "published": DELTA},
        "accumulation_point": {"measured": r_inf, "published": R_INF},
        "lambda_1_onset": {"measured": float(onset), "published": R_INF},
        "lambda_1_at_period_doubling_points": [float(v) for v in lam_at_rn],
        "lambda_1_at_4": {"measured": lam4, "closed_form": math.log(2.0)},
        "continuation": continuation,
        "r3_polynomial_root": r3_poly,
        "lambda_1_nonfinite_points": int(np.sum(~finite)),
        "orbit_nonfinite_states": int(np.sum(~np.isfinite(states))),
    }
    arrays = {
        "r_points": r[:n_found], "feigenbaum_ratios": ratios,
        "r_grid": np.asarray(r_grid), "lambda_1": lam, "orbit_states": states,
        "r_zoom": rz, "lambda_1_zoom": lam_zoom, "lambda_1_at_r_points": lam_at_rn,
    }
    for n, (p, mu) in enumerate(branches, start=1):
        arrays[f"branch_{n}_r"] = p
        arrays[f"branch_{n}_multiplier"] = mu
    return Computed(summary=summary, arrays=arrays)


def checks(config: Config, computed: Computed) -> list[Check]:
    """The flips against the published r_n, δ and r∞, and λ₁'s sign and closed forms."""
    s, a = computed.summary, computed.arrays
    out = []
    for step in s["continuation"]:
        n, k = step["n"], step["cycle"]
        out.append(check_close(f"flips of the {k}-cycle on its branch "
                               f"(r in [{step['r_start']:.6f}, {step['r_stop']:.6f}])",
                               step["crossings"], 1))
        if "r" not in step:
            break
        out.append(check_close(f"r_{n}: Newton on the flip of the {k}-cycle converged",
                               float(step["converged"]), 1.0,
                               note=f"residual {step['residual']:.1e}"))
        out.append(check_close(f"r_{n}: multiplier of the {k}-cycle at the flip",
                               step["multiplier"], -1.0, atol=1e-8))
        out.append(check_close(f"r_{n} (flip of the {k}-cycle) vs published",
                               step["r"], PUBLISHED_R[n - 1], atol=PUBLISHED_ATOL[n - 1],
                               note="exact" if n <= 2 else "six decimals"))
    r = a["r_points"]
    if r.size >= 3:
        out.append(check_close("r_3 vs the real root of its degree-12 polynomial", r[2],
                               s["r3_polynomial_root"], atol=1e-9))

    ratios = a["feigenbaum_ratios"]
    if ratios.size:
        out.append(check_close(f"last Feigenbaum ratio δ_{ratios.size} vs δ",
                               s["feigenbaum_delta"]["measured"], DELTA,
                               rtol=config.delta_rtol))
        out.append(check_close("r∞ extrapolated from the last r_n and δ_last",
                               s["accumulation_point"]["measured"], R_INF,
                               atol=config.accumulation_atol))

    rg, lam = a["r_grid"], a["lambda_1"]
    r_1 = s["continuation"][0].get("r", math.nan)
    out.append(check_close("non-finite λ₁ estimates on the r grid",
                           s["lambda_1_nonfinite_points"], 0))
    out.append(check_bound("max λ₁ on the grid below r_1 (stable fixed point)",
                           lam[rg < r_1 - 0.01].max(), 0.0))
    rz, lam_zoom = a["r_zoom"], a["lambda_1_zoom"]
    out.append(check_bound("max λ₁ on the fine grid below r∞ (stable 2^n-cycles)",
                           lam_zoom[rz < R_INF].max(), 0.0))
    spacing = float(rz[1] - rz[0])
    out.append(check_close("first sustained positive λ₁ on the fine grid vs r∞",
                           s["lambda_1_onset"]["measured"], R_INF,
                           atol=config.onset_grid_spacings * spacing,
                           note=f"{config.onset_grid_spacings} fine-grid spacings of "
                                f"{spacing:.2e}"))
    for n, v in enumerate(s["lambda_1_at_period_doubling_points"], start=1):
        out.append(check_bound(f"|λ₁(r_{n})| (zero at the flip, finite-time estimate)",
                               abs(v), 1e-3))
    out.append(check_close("λ₁ at r = 4 vs log 2", s["lambda_1_at_4"]["measured"],
                           math.log(2.0), atol=5e-3))
    out.append(check_close("non-finite orbit states", s["orbit_nonfinite_states"], 0))
    return out


def run(config: Config) -> Result:
    """``compute``, then ``checks`` and ``figures`` on its numbers."""
    return staged_run(config, compute, checks, figures)


def _onset(r, lam, window, fraction):
    """The first ``r`` with λ₁ > 0 there and on ``fraction`` of the points in
    ``[r, r + window]``."""
    positive = lam > 0
    for i in np.flatnonzero(positive):
        ahead = (r >= r[i]) & (r <= r[i] + window)
        if positive[ahead].mean() >= fraction and r[i] + window <= r[-1]:
            return float(r[i])
    return math.nan


def figures(config: Config, computed: Computed) -> dict[str, Any]:
    """The orbit diagram over λ₁(r), and the approach to r∞: gaps, ratios, λ₁ near r∞."""
    a = computed.arrays
    rg, states, lam, rz, lam_zoom, r_points, ratios = (
        a["r_grid"], a["orbit_states"], a["lambda_1"], a["r_zoom"], a["lambda_1_zoom"],
        a["r_points"], a["feigenbaum_ratios"])
    onset = computed.summary["lambda_1_onset"]["measured"]
    out = {}
    fig, ax = plt.subplots(2, 1, figsize=(9, 7.5), sharex=True,
                           gridspec_kw={"height_ratios": [3, 2]})
    ax[0].plot(np.repeat(rg, states.shape[1]), states.ravel(), ",", color="k", alpha=0.35)
    for n, rn in enumerate(r_points, start=1):
        for a in ax:
            a.axvline(rn, color="C3", lw=0.7, ls="--",
                      label=f"r_1..r_{r_points.size}: located flips of the 2^(n-1)-cycles"
                      if n == 1 and a is ax[0] else None)
        if n == 1 or rn - r_points[n - 2] > 0.03:  # the later ones crowd at r∞
            ax[0].annotate(f"r_{n}", (rn, 1.0), xytext=(-2, -10), textcoords="offset points",
                           fontsize=8, color="C3", ha="right")
    for a in ax:
        a.axvline(R_INF, color="C2", lw=0.9,
                  label=f"r∞ = {R_INF} (published)" if a is ax[0] else None)
    ax[0].set(ylabel="x (after the transient)", ylim=(0, 1))
    ax[0].set_title("Logistic map x → r x (1 − x): orbit diagram and largest Lyapunov exponent",
                    fontsize=10)
    ax[0].legend(fontsize=8, loc="lower left", framealpha=0.9)
    ax[1].plot(rg, lam, lw=0.7, color="C0", label="λ₁(r) (lyapunov_spectrum)")
    ax[1].axhline(0.0, color="k", lw=0.8, label="λ = 0")
    ax[1].axhline(math.log(2.0), color="C7", lw=0.8, ls=":", label="log 2 (closed form at r = 4)")
    ax[1].set(xlabel="r", ylabel="λ₁ (per step; dips to −∞ cut at −2)", ylim=(-2.0, 1.0))
    ax[1].legend(fontsize=8, loc="upper left", framealpha=0.9)
    fig.tight_layout()
    out["orbit_diagram_and_lyapunov"] = fig

    fig, ax = plt.subplots(1, 3, figsize=(13, 4))
    n = np.arange(1, r_points.size + 1)
    ax[0].semilogy(n, R_INF - r_points, "o", color="C0",
                   label="r∞ − r_n (located r_n, published r∞)")
    line = (R_INF - r_points[-1]) * DELTA ** (n[-1] - n.astype(np.float64))
    ax[0].semilogy(n, line, "--", color="C3",
                   label="∝ δ^(−n): slope −log δ (through the last point)")
    ax[0].set(xlabel="n", ylabel="r∞ − r_n (log scale)")
    ax[0].set_title("Geometric approach to r∞", fontsize=10)
    ax[0].xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax[1].xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax[0].legend(fontsize=8)
    if ratios.size:
        ax[1].plot(np.arange(1, ratios.size + 1), ratios, "o-", label="δ_n = Δr_n / Δr_{n+1}")
    ax[1].axhline(DELTA, color="C3", ls="--", lw=0.9, label=f"δ = {DELTA}")
    ax[1].set(xlabel="n", ylabel="δ_n")
    ax[1].set_title("Feigenbaum ratios", fontsize=10)
    ax[1].legend(fontsize=8)
    ax[2].plot(rz, lam_zoom, ".-", ms=2, lw=0.6, label="λ₁(r) (fine grid)")
    ax[2].axhline(0.0, color="k", lw=0.8)
    ax[2].axvline(R_INF, color="C2", lw=0.9, label="r∞ (published)")
    if math.isfinite(onset):
        ax[2].axvline(onset, color="C1", lw=0.9, ls="--", label="first sustained λ₁ > 0")
    for i, rn in enumerate(r_points[r_points > rz[0]]):
        ax[2].axvline(rn, color="C3", lw=0.7, ls="--",
                      label="located r_n" if i == 0 else None)
    ax[2].set(xlabel="r", ylabel="λ₁", ylim=(-0.3, 0.15))
    ax[2].set_title("λ₁ near the accumulation point", fontsize=10)
    ax[2].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out["feigenbaum_scaling"] = fig
    return out
