"""Bifurcations of Doya's one-neuron network dx/dt = -x + σ(w x + b) (Doya 1992;
Wikipedia, "Vanishing gradient problem", § Dynamical systems model).

With w = 5 and b in [-3, -2] the flow has one stable point, then (between two folds) two
stable points and an unstable one, then one stable point again. This experiment finds the
fixed points on a grid, follows the branch through both folds by pseudo-arclength
continuation, locates the folds by Newton on the extended system, sweeps b up and down to
show the hysteresis, maps the basins of attraction, compares ∂x(T)/∂b by autodiff with the
closed form (1/(x(1-x)) - w)^{-1}, and continues the fold curve in (w, b) to its cusp.
Beside the flow it sets Doya's discrete map x ← x + ε(-x + σ(w x + b)) (ε = dt): its
fixed-point branch (continued as a map, folds at multiplier 1) and orbit diagram, and the
flow itself solved by diffrax (``jaxgrad.integrate``, adaptive Tsit5) from the same initial
states: a map and its flow share their fixed points, so both fold at w x(1-x) = 1.

Closed forms (u = 0): fixed points on b = ln(x/(1-x)) - w x; folds where w x(1-x) = 1;
fold curve w = 1/(x(1-x)), b = ln(x/(1-x)) - 1/(1-x), with its cusp at x = 1/2,
(w, b) = (4, -2). At b = -w/2 the flow is symmetric under x → 1 - x, so x = 1/2 is a
fixed point and the other two add up to 1 (Wikipedia, "Vanishing gradient problem",
note 4: 0.145, 0.5, 0.855).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jaxgrad

from ._runner import Computed, Result, check_bound, check_close, staged_run

NAME = "doya-bifurcation"
DESCRIPTION = ("Doya's neuron, w = 5, b in [-3, -2]: branches, folds, hysteresis, basins, "
               "∂x/∂b by autodiff vs closed form, the cusp in (w, b); the map beside its "
               "flow solved by diffrax.")


@dataclasses.dataclass(frozen=True)
class Config:
    """Doya's neuron, the b range and the resolution of each computation."""

    w: float = 5.0  #: self-coupling of the neuron
    b_min: float = -3.0  #: left end of the b range
    b_max: float = -2.0  #: right end of the b range
    num_b: int = 201  #: b grid points (fixed points, sweeps, sensitivities, the map)
    num_x: int = 2001  #: x points bracketing the fixed points on [0, 1]
    ds: float = 0.005  #: arclength step of the continuation (at most 4 ds)
    num_continuation_steps: int = 600  #: continuation steps
    dt: float = 0.1  #: Euler step of the flow = ε of the map
    transient_steps: int = 1500  #: steps before the state is read (sweeps, orbit diagram)
    num_basin_x0: int = 120  #: initial states of the basin map
    num_basin_b: int = 101  #: b values of the basin map
    basin_steps: int = 1000  #: steps of each basin run
    sensitivity_steps: int = 1500  #: steps of the ∂x(T)/∂b runs
    w_max: float = 8.0  #: largest w of the fold curve
    num_flow_x0: int = 6  #: initial states of the map-vs-diffrax comparison
    flow_time: float = 100.0  #: T of the diffrax solves (T/ε map steps)


QUICK_CONFIG = {"num_b": 51, "num_x": 501, "ds": 0.01, "num_continuation_steps": 300,
                "num_basin_x0": 40, "num_basin_b": 26, "transient_steps": 1000}
SUMMARY_KEYS = ("w", "fold_points", "bistable_interval", "fixed_points_at_b_minus_2_5",
                "dx_db_at_b_minus_2_5", "hysteresis_jumps", "cusp", "flow_fold_points",
                "flow_fold_b_error", "map_fold_points", "map_fold_b_error",
                "diffrax_all_converged", "diffrax_settled_fraction",
                "flow_vs_map_final_state_max_diff")

# Wikipedia, "Vanishing gradient problem", note 4: the fixed points at b = -2.5 (three decimals).
PUBLISHED_AT_B_MINUS_2_5 = (0.145, 0.5, 0.855)


def flow(x, p):
    """Doya's vector field with no input: dx/dt = -x + σ(w x + b)."""
    return jaxgrad.models.doya_vector_field(x, 0.0, p)


def _continued_folds(step, params, config):
    """The fixed-point branch of ``step`` (a flow or a map) continued in b from x = 0.05
    across ``[b_min, b_max]``, and its folds sorted by b."""
    branch = jaxgrad.continue_branch(step, 0.05, params=params, param="b",
                                     p_range=(float(config.b_min), float(config.b_max)),
                                     ds=config.ds, ds_max=4 * config.ds,
                                     num_steps=config.num_continuation_steps)
    folds = sorted((bp for bp in branch.bifurcations if bp.kind == "fold"),
                   key=lambda bp: float(bp.p))
    return branch, folds


def _fold_references(w):
    """Closed-form folds (x, b) where w x(1-x) = 1, low b first."""
    x_fold_ref = (1 + np.array([1.0, -1.0]) * math.sqrt(1 - 4 / w)) / 2
    b_fold_ref = np.log(x_fold_ref / (1 - x_fold_ref)) - w * x_fold_ref
    return x_fold_ref, b_fold_ref


def compute(config: Config) -> Computed:
    """Fixed points, continuation, sweeps, basins, sensitivities, fold curve, map (float64)."""
    with jax.enable_x64(True):
        return _compute(config)


def _compute(config: Config) -> Computed:
    w = float(config.w)
    b_min, b_max = float(config.b_min), float(config.b_max)
    params = jaxgrad.DoyaParams(w, b_min)
    b_grid = jnp.linspace(b_min, b_max, config.num_b)

    x_fold_ref, b_fold_ref = _fold_references(w)

    # 1. Fixed points on the grid (bracketing + Newton, vmapped over b).
    fp = jaxgrad.analysis.fixed_points_1d(flow, (0.0, 1.0), params=params, param="b", values=b_grid,
                                          num_points=config.num_x)
    count = np.asarray(fp.count)
    three = np.asarray(b_grid)[count == 3]
    x_grid, ok = np.asarray(fp.x), np.asarray(fp.valid)
    b_of_x = np.log(x_grid[ok] / (1 - x_grid[ok])) - w * x_grid[ok]
    b_rows = np.broadcast_to(np.asarray(b_grid)[:, None], x_grid.shape)[ok]

    # 2. Continuation through both folds, folds located by Newton.
    branch, folds = _continued_folds(flow, params, config)
    fold_points = [{"b": float(bp.p), "x": float(bp.x)} for bp in folds]
    bistable = [float(folds[0].p), float(folds[-1].p)] if folds else [math.nan, math.nan]

    # 3. Fixed points at b = -2.5.
    fp25 = jaxgrad.analysis.fixed_points_1d(flow, (0.0, 1.0), params=jaxgrad.DoyaParams(w, -2.5),
                                            num_points=config.num_x)
    x25 = np.asarray(fp25.x)[np.asarray(fp25.valid)]
    stable25 = np.asarray(fp25.stability)[np.asarray(fp25.valid)] == 0
    fixed_points_25 = [{"x": float(x), "stable": bool(s)} for x, s in zip(x25, stable25,
                                                                            strict=True)]

    # 4. Hysteresis: sweep b up then down, carrying the state.
    sweep = jaxgrad.analysis.hysteresis_sweep(flow, 0.0, b_grid, params=params, param="b",
                                              kind="flow",
                                              dt=config.dt, transient=config.transient_steps,
                                              keep=1)
    up = np.asarray(sweep.up[:, -1])
    down = np.asarray(sweep.down[:, -1])
    bv = np.asarray(b_grid)
    i_up = int(np.argmax(up > 0.5))
    i_dn = int(np.argmax(down > 0.5))
    jump_up = 0.5 * (bv[i_up - 1] + bv[i_up])
    jump_down = 0.5 * (bv[i_dn - 1] + bv[i_dn])
    orbit = jaxgrad.analysis.orbit_diagram(flow, jnp.array([0.0, 1.0]), b_grid, params=params,
                                           param="b", kind="flow", dt=config.dt,
                                           transient=config.transient_steps, keep=1)

    # 5. Basins of attraction in the (b, x(0)) plane.
    n0 = config.num_basin_x0
    # cell centres, never exactly on x = 1/2
    x0_basin = (jnp.arange(n0, dtype=jnp.float64) + 0.5) / n0
    b_basin = jnp.linspace(b_min, b_max, config.num_basin_b)
    db_basin = float(b_basin[1] - b_basin[0])
    basin = jaxgrad.analysis.basins(flow, x0_basin, b_basin, params=params, param="b", dt=config.dt,
                                    num_steps=config.basin_steps)
    fp_basin = jaxgrad.analysis.fixed_points_1d(flow, (0.0, 1.0), params=params, param="b",
                                                values=b_basin, num_points=config.num_x)
    labels = np.asarray(basin.labels)
    xs_b = np.asarray(fp_basin.x)
    unstable_x = np.where(np.asarray(fp_basin.count) == 3, xs_b[:, 1], np.nan)
    expected = np.where(np.isnan(unstable_x)[:, None], 0,
                        (np.asarray(x0_basin)[None, :] > unstable_x[:, None]).astype(int))
    settled_b = np.asarray(basin.settled)
    # Pairs still moving at T are slowed by the ghost of a fold (passage time ~ |b - b_f|^-1/2).
    b_unsettled = np.broadcast_to(np.asarray(b_basin)[:, None], labels.shape)[~settled_b]
    dist_fold = (np.min(np.abs(b_unsettled[:, None] - b_fold_ref[None, :]), axis=1)
                 if b_unsettled.size else np.zeros(1))

    # 6. Sensitivities ∂x(T)/∂b (autodiff) vs the closed form on both stable branches.
    sens = jaxgrad.analysis.final_state_sensitivities(flow, jnp.array([0.02, 0.98]), b_grid,
                                                      params=params, param="b", dt=config.dt,
                                                      num_steps=config.sensitivity_steps)
    xT = np.asarray(sens.final)
    dxdb = np.asarray(sens.d_final_d_param)
    closed = np.asarray(jaxgrad.models.doya_fixed_point_sensitivity(xT, w=w))
    lam = -1 + w * xT * (1 - xT)  # eigenvalue at the end state
    settled = lam < -0.1  # well inside a stable branch: x(T) has converged
    rel = np.abs(dxdb - closed)[settled] / np.abs(closed)[settled]
    s25 = jaxgrad.analysis.final_state_sensitivities(flow, jnp.array([0.02, 0.98]),
                                                     jnp.array([-2.5]),
                                                     params=params, param="b", dt=config.dt,
                                                     num_steps=config.sensitivity_steps)
    dxdb_25 = np.asarray(s25.d_final_d_param)[0]
    closed_25 = np.asarray(jaxgrad.models.doya_fixed_point_sensitivity(np.asarray(s25.final)[0],
                                                                       w=w))
    x0_line = 0.5 + 0.005 * jnp.arange(-99, 100, dtype=jnp.float64)  # holds x(0) = 1/2 exactly
    s_line = jaxgrad.analysis.final_state_sensitivities(flow, x0_line, jnp.array([-2.5]),
                                                        params=params,
                                                        param="b", dt=config.dt,
                                                        num_steps=config.sensitivity_steps)
    dxdx0 = np.abs(np.asarray(s_line.d_final_d_x0)[0])
    near = np.abs(np.asarray(x0_line) - 0.5) < 0.01

    # 7. Fold curve in (w, b) and its cusp.
    # From the located upper fold at w: towards smaller w (through the cusp, back along
    # the lower fold) and towards larger w; the two pieces make the whole curve.
    start = folds[-1] if folds else None
    x_start = float(start.x) if start else 0.3
    b_start = float(start.p) if start else -2.3
    fc, fc_up = (
        jaxgrad.analysis.fold_curve(flow, x_start, params=jaxgrad.DoyaParams(w, b_start), param="b",
                                    param2="w", p2_range=(3.0, config.w_max), direction=d,
                                    ds=0.05, num_steps=300)
        for d in (-1, 1)
    )
    fc_ok, up_ok = np.asarray(fc.valid), np.asarray(fc_up.valid)
    fx, fb, fw = (np.concatenate([np.asarray(a)[fc_ok], np.asarray(a2)[up_ok]])
                  for a, a2 in ((fc.x, fc_up.x), (fc.p, fc_up.p), (fc.p2, fc_up.p2)))
    cusp = {"w": math.nan, "b": math.nan, "x": math.nan}
    if fc.cusps:
        c = fc.cusps[0]
        cusp = {"w": float(c.p2), "b": float(c.p), "x": float(c.x)}

    # 8. The map beside its flow, the flow solved by diffrax.
    flow_map = _flow_and_map(config, params, b_grid, fp, b_fold_ref)
    flow_fold_b_error = (max(abs(float(bp.p) - br) for bp, br in zip(folds, b_fold_ref,
                                                                      strict=True))
                         if len(folds) == 2 else math.nan)

    summary = {
        "w": w,
        "fold_points": fold_points,
        "bistable_interval": bistable,
        "fixed_points_at_b_minus_2_5": fixed_points_25,
        "dx_db_at_b_minus_2_5": {"autodiff": dxdb_25.tolist(), "closed_form": closed_25.tolist()},
        "hysteresis_jumps": {"up": float(jump_up), "down": float(jump_down)},
        "cusp": cusp,
        "flow_fold_points": fold_points,
        "flow_fold_b_error": flow_fold_b_error,
        "map_fold_points": flow_map["map_fold_points"],
        "map_fold_b_error": flow_map["map_fold_b_error"],
        "diffrax_all_converged": flow_map["all_converged"],
        "diffrax_settled_fraction": flow_map["settled_fraction"],
        "flow_vs_map_final_state_max_diff": flow_map["max_diff"],
    }
    arrays = {
        "b_grid": bv, "grid_fixed_points": x_grid, "grid_stability": np.asarray(fp.stability),
        "branch_x": np.asarray(branch.x), "branch_b": np.asarray(branch.p),
        "branch_valid": np.asarray(branch.valid), "branch_stability": np.asarray(branch.stability),
        "sweep_up": up, "sweep_down": down,
        "basin_labels": labels, "basin_settled": settled_b, "basin_x0": np.asarray(x0_basin),
        "basin_b": np.asarray(b_basin),
        "dx_db_autodiff": dxdb, "dx_db_closed_form": closed, "final_states": xT,
        "fold_curve_w": fw, "fold_curve_b": fb, "fold_curve_x": fx,
        "flow_x0": flow_map["x0"], "flow_final_diffrax": flow_map["flow_final"],
        "map_final": flow_map["map_final"], "map_branch_x": flow_map["map_branch_x"],
        "map_branch_b": flow_map["map_branch_b"],
    }
    details = {
        "folds": folds, "three": three, "b_of_x": b_of_x, "b_rows": b_rows, "x25": x25,
        "stable25": stable25, "labels": labels, "expected": expected, "dist_fold": dist_fold,
        "db_basin": db_basin, "rel": rel, "settled": settled, "dxdb_25": dxdb_25,
        "closed_25": closed_25, "dxdx0": dxdx0, "near": near, "fx": fx, "fb": fb, "fw": fw,
        "fc": fc, "fc_up": fc_up, "flow_map": flow_map, "branch": branch, "fp": fp,
        "sweep": sweep, "orbit": orbit, "basin": basin, "unstable_x": unstable_x,
        "sens": sens, "closed": closed, "s_line": s_line,
    }
    return Computed(summary, arrays, details)


def checks(config: Config, computed: Computed) -> list:
    """Every number against its closed form (folds, fixed points, sensitivities, cusp)."""
    d, summary = computed.details, computed.summary
    w = float(config.w)
    x_fold_ref, b_fold_ref = _fold_references(w)
    bv = computed.arrays["b_grid"]
    db = float(bv[1] - bv[0])
    folds, x25, stable25, fx, fb = d["folds"], d["x25"], d["stable25"], d["fx"], d["fb"]
    out = [check_close("max |b(x*) - b| over grid fixed points (closed form b(x))",
                       np.max(np.abs(d["b_of_x"] - d["b_rows"])), 0.0, atol=1e-9),
           check_close("number of folds on the branch", len(folds), 2)]
    for name, bp, xr, br in zip(("lower", "upper"), folds, x_fold_ref, b_fold_ref,
                                strict=False):
        out.append(check_close(f"{name} fold b (w x(1-x) = 1)", bp.p, br, atol=1e-9))
        out.append(check_close(f"{name} fold x = (1 ± √(1-4/w))/2", bp.x, xr, atol=1e-9))
    if d["three"].size:
        out.append(check_close("bistable interval from grid counts, lower end",
                               d["three"].min(), b_fold_ref[0], atol=db, note="grid resolution"))
        out.append(check_close("bistable interval from grid counts, upper end",
                               d["three"].max(), b_fold_ref[1], atol=db, note="grid resolution"))
    out.append(check_close("fixed points at b = -2.5", len(x25), 3))
    if len(x25) == 3 and w == 5.0:
        for x, ref in zip(x25, PUBLISHED_AT_B_MINUS_2_5, strict=True):
            out.append(check_close(f"fixed point at b = -2.5 near {ref} (Wikipedia note 4)",
                                   x, ref, atol=5e-4))
        out.append(check_close("x_low + x_high at b = -w/2 (symmetry x → 1 - x)",
                               x25[0] + x25[2], 1.0, atol=1e-12))
        out.append(check_close("stable, unstable, stable at b = -2.5 (count matching)",
                               int(np.sum(stable25 == np.array([True, False, True]))), 3))
    jumps = summary["hysteresis_jumps"]
    out.append(check_close("up sweep jumps at the upper fold", jumps["up"], b_fold_ref[1],
                           atol=db, note="grid resolution"))
    out.append(check_close("down sweep jumps at the lower fold", jumps["down"], b_fold_ref[0],
                           atol=db, note="grid resolution"))
    labels, settled_b = d["labels"], computed.arrays["basin_settled"]
    out.append(check_close("settled basin labels that disagree with x(0) ≷ unstable point",
                           np.sum((labels != d["expected"]) & settled_b), 0))
    out.append(check_bound("max distance from a fold of the unsettled (b, x0) pairs",
                           d["dist_fold"].max(), 2 * d["db_basin"],
                           note=f"{int((~settled_b).sum())} unsettled of {labels.size}"))
    out.append(check_close("max rel. error ∂x(T)/∂b autodiff vs (1/(x(1-x)) - w)^-1",
                           d["rel"].max(), 0.0, atol=1e-6,
                           note=f"{int(d['settled'].sum())} (b, x0) pairs with λ < -0.1"))
    out.append(check_close("∂x(T)/∂b at b = -2.5, lower attractor", d["dxdb_25"][0],
                           d["closed_25"][0], rtol=1e-6))
    dxdx0, near = d["dxdx0"], d["near"]
    out.append(check_bound("max |∂x(T)/∂x(0)| away from x = 1/2 (vanishing)",
                           dxdx0[~near].max(), 1e-6))
    out.append(check_bound("|∂x(T)/∂x(0)| at x(0) = 1/2 (exploding)", dxdx0[near].max(),
                           1e6, kind=">="))
    out.append(check_close("fold curve max |w - 1/(x(1-x))|",
                           np.max(np.abs(d["fw"] - 1 / (fx * (1 - fx)))), 0.0, atol=1e-9))
    out.append(check_close("fold curve max |b - ln(x/(1-x)) + 1/(1-x)|",
                           np.max(np.abs(fb - (np.log(fx / (1 - fx)) - 1 / (1 - fx)))),
                           0.0, atol=1e-9))
    fc, fc_up = d["fc"], d["fc_up"]
    out.append(check_close("number of cusps", len(fc.cusps) + len(fc_up.cusps), 1))
    if fc.cusps:
        c = fc.cusps[0]
        out.append(check_close("cusp w", c.p2, 4.0, atol=1e-8))
        out.append(check_close("cusp b", c.p, -2.0, atol=1e-8))
        out.append(check_close("cusp x", c.x, 0.5, atol=1e-6))
    return out + _flow_and_map_checks(config, d["flow_map"], x_fold_ref, b_fold_ref)


def figures(config: Config, computed: Computed) -> dict:
    """Bifurcation diagram, sensitivities, basins and cusp, and the map beside its flow."""
    d, w = computed.details, float(config.w)
    out = _figures(d["branch"], d["folds"], d["fp"], d["sweep"], d["orbit"], d["basin"],
                   d["unstable_x"], d["sens"], d["closed"], d["settled"], d["s_line"],
                   d["fc"], d["fc_up"], w)
    out["flow_and_map"] = _flow_map_figure(d["branch"], d["folds"], d["flow_map"], w,
                                           config.dt)
    return out


def run(config: Config) -> Result:
    return staged_run(config, compute, checks, figures)


def _flow_and_map(config, params, b_grid, fp, b_fold_ref):
    """Doya's map (continuation, orbit diagram) beside its flow solved by diffrax."""
    dt = float(config.dt)
    step = functools.partial(jaxgrad.doya_step, eps=dt)  # a map step f(x, u, params)
    map_branch, map_folds = _continued_folds(step, params, config)
    map_fold_b_error = (max(abs(float(bp.p) - br) for bp, br in zip(map_folds, b_fold_ref,
                                                                    strict=True))
                        if len(map_folds) == 2 else math.nan)

    # Half the starts below the unstable branch (x ∈ [0.276, 0.724] for w = 5), half above:
    # each settles on a stable point, slowly only near a fold.
    m = int(config.num_flow_x0)
    x0 = jnp.concatenate([jnp.linspace(0.02, 0.22, m // 2), jnp.linspace(0.78, 0.98, m // 2)])
    num_map_steps = int(round(float(config.flow_time) / dt))
    map_orbit = jaxgrad.analysis.orbit_diagram(step, x0, b_grid, params=params, param="b",
                                               transient=num_map_steps - 1, keep=1)
    map_final = np.asarray(map_orbit.states[:, :, -1])

    # The flow over [0, T] from the same states, one diffrax solve per b (vmapped).
    field = jaxgrad.vector_field(jaxgrad.models.doya_vector_field)
    t1 = float(config.flow_time)
    save_at = jnp.linspace(0.0, t1, int(round(10 * t1)) + 1)  # every 0.1 for the trajectories

    def solve(b):
        # Tolerances 100x below the float64 default: a solve that has settled sits within
        # its tolerance of the fixed point (|dx/dt| ~ rtol), not at rounding as the map.
        return jaxgrad.integrate(field, x0, t1, params=params._replace(b=b), save_at=save_at,
                                 rtol=1e-10, atol=1e-12, max_steps=16384, throw=False)

    sol = jax.vmap(solve)(b_grid)
    converged = np.asarray(sol.converged)
    traj = np.asarray(sol.states)  # (P, S, M)
    flow_final = traj[:, -1, :]
    speed = np.abs(np.asarray(jax.vmap(
        lambda b, x: jaxgrad.models.doya_vector_field(x, jnp.zeros((0,)), params._replace(b=b)))(
            b_grid, jnp.asarray(flow_final))))
    map_speed = np.abs(np.asarray(jax.vmap(
        lambda b, x: jaxgrad.models.doya_vector_field(x, jnp.zeros((0,)), params._replace(b=b)))(
            b_grid, jnp.asarray(map_final))))
    settled = (speed < 1e-9) & (map_speed < 1e-10) & converged[:, None]
    bv = np.broadcast_to(np.asarray(b_grid)[:, None], flow_final.shape)
    # The fixed points by bracketing + Newton at the same b (checked against b(x) above).
    grid_x = np.asarray(fp.x)
    nearest = np.nanmin(np.abs(flow_final[:, :, None] - grid_x[:, None, :]), axis=2)
    max_diff = float(np.max(np.abs(flow_final - map_final)[settled], initial=0.0))
    # The runs that have not settled at T are slow, near a fold at distance δ in b: on the
    # side with fixed points they settle at the rate |λ| ≈ 0.95 √δ (w = 5), which needs
    # T |λ| ≈ 25 e-foldings; past the fold they pass its ghost in time ≈ 6.6/√δ. Both stay
    # short of T for δ > (30/T)².
    far = (np.min(np.abs(bv[~settled][:, None] - np.asarray(b_fold_ref)[None, :]), axis=1)
           if (~settled).any() else np.zeros(1))
    ok = np.asarray(map_branch.valid)
    return {
        "map_branch": map_branch, "map_folds": map_folds,
        "map_fold_points": [{"b": float(bp.p), "x": float(bp.x)} for bp in map_folds],
        "map_fold_b_error": map_fold_b_error,
        "all_converged": bool(converged.all()),
        "settled_fraction": float(settled.mean()),
        "max_diff": max_diff,
        "x0": np.asarray(x0), "b": np.asarray(b_grid), "flow_final": flow_final,
        "map_final": map_final, "t": np.asarray(save_at), "trajectories": traj,
        "map_branch_x": np.asarray(map_branch.x)[ok], "map_branch_b": np.asarray(map_branch.p)[ok],
        "converged": converged, "settled": settled, "nearest": nearest, "far": far,
    }


def _flow_and_map_checks(config, fm, x_fold_ref, b_fold_ref):
    """The map's folds against the flow's closed form; diffrax against the map."""
    map_folds, converged, settled = fm["map_folds"], fm["converged"], fm["settled"]
    out = [check_close("map: number of folds on the branch (multiplier 1)", len(map_folds), 2)]
    for name, bp, xr, br in zip(("lower", "upper"), map_folds, x_fold_ref, b_fold_ref,
                                strict=False):
        out.append(check_close(f"map: {name} fold b (w x(1-x) = 1, as the flow's)", bp.p,
                               br, atol=1e-9))
        out.append(check_close(f"map: {name} fold x", bp.x, xr, atol=1e-9))
    out.append(check_close("diffrax solves that did not converge", int((~converged).sum()),
                           0, note=f"{converged.size} solves (one per b, "
                                   f"{int(config.num_flow_x0)} states each)"))
    out.append(check_close("diffrax x(T): max distance to a grid fixed point at its b "
                           "where |dx/dt| < 1e-9", np.max(fm["nearest"][settled], initial=0.0),
                           0.0, atol=1e-8,
                           note=f"{int(settled.sum())} of {settled.size} runs settled"))
    out.append(check_close("max |x_flow(T) - x_map(T/ε)| where both settled (same "
                           "attractor from the same x(0))", fm["max_diff"], 0.0, atol=1e-8))
    out.append(check_bound("max distance in b from a fold of the unsettled (b, x0) runs",
                           fm["far"].max(), (30.0 / float(config.flow_time)) ** 2,
                           note=f"{int((~settled).sum())} of {settled.size} not settled; "
                                "bound (30/T)², slow passage"))
    return out


def _stable_unstable(ax, bb, bx, st, label):
    """The branch as a solid (stable) and dashed (unstable) line that meet at the folds."""
    unstable = ~st
    wide = unstable | np.r_[unstable[1:], False] | np.r_[False, unstable[:-1]]
    ax.plot(bb, np.where(st, bx, np.nan), "-", color="C0", lw=1.2, zorder=2,
            label=f"stable ({label})")
    ax.plot(bb, np.where(wide, bx, np.nan), "--", color="C1", lw=1.2, zorder=2,
            label=f"unstable ({label})")


def _flow_map_figure(branch, folds, fm, w, dt):
    fig, ax = plt.subplots(1, 3, figsize=(14, 4.6))
    mb = fm["map_branch"]
    ok = np.asarray(mb.valid)
    _stable_unstable(ax[0], np.asarray(mb.p)[ok], np.asarray(mb.x)[ok],
                     np.asarray(mb.stability)[ok] == 0, "map branch, continued")
    bv = fm["b"]
    starts = f"from {fm['x0'].size} x(0)"
    for k in range(fm["x0"].size):
        ax[0].plot(bv, fm["map_final"][:, k], "o", ms=3.5, mec="none", color="k", zorder=4,
                   label=f"map iterate x_(T/ε) {starts}" if k == 0 else None)
    for k, bp in enumerate(fm["map_folds"]):
        ax[0].plot(float(bp.p), float(bp.x), "o", color="C3", ms=8, zorder=5,
                   label="folds (multiplier 1)" if k == 0 else None)
    ax[0].set(xlabel="b", ylabel="x* (branch), x_{T/ε} (iterates)")
    ax[0].set_title(f"Map x ← x + ε(-x + σ({w:g}x + b)), ε = {dt:g}", fontsize=10)
    ax[0].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)

    ok = np.asarray(branch.valid)
    _stable_unstable(ax[1], np.asarray(branch.p)[ok], np.asarray(branch.x)[ok],
                     np.asarray(branch.stability)[ok] == 0, "flow branch, continued")
    for k in range(fm["x0"].size):
        ax[1].plot(bv, fm["flow_final"][:, k], "s", ms=3.5, mec="none", color="C2", zorder=4,
                   label=f"diffrax x(T), T = {fm['t'][-1]:g}, {starts}" if k == 0 else None)
    for k, bp in enumerate(folds):
        ax[1].plot(float(bp.p), float(bp.x), "o", color="C3", ms=8, zorder=5,
                   label="folds (eigenvalue 0)" if k == 0 else None)
    ax[1].set(xlabel="b", ylabel="x* (branch), x(T) (diffrax)")
    ax[1].set_title(f"Flow dx/dt = -x + σ({w:g}x + b), solved by diffrax", fontsize=10)
    ax[1].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)

    i = int(np.argmin(np.abs(bv + 2.5)))
    for k, x0 in enumerate(fm["x0"]):
        ax[2].plot(fm["t"], fm["trajectories"][i, :, k], color=f"C{k}", label=f"x(0) = {x0:.2f}")
    ax[2].axhline(0.5, color="k", lw=0.8, ls=":", label="unstable fixed point x = 1/2")
    ax[2].set(xlabel="t", ylabel="x(t)", xlim=(0.0, min(20.0, float(fm["t"][-1]))))
    ax[2].set_title(f"Flow trajectories at b = {bv[i]:.2f} (diffrax, Tsit5)", fontsize=10)
    ax[2].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3)
    fig.tight_layout()
    return fig


def _figures(branch, folds, fp, sweep, orbit, basin, unstable_x, sens, closed, settled,
             s_line, fc, fc_up, w):
    figures = {}
    ok = np.asarray(branch.valid)
    bx, bb = np.asarray(branch.x)[ok], np.asarray(branch.p)[ok]
    st = np.asarray(branch.stability)[ok] == 0
    bv = np.asarray(sweep.values)

    fig, ax = plt.subplots(1, 2, figsize=(10, 4.4))
    # The unstable part is widened by one point on each side so that the dashes meet the
    # stable lines: otherwise the segment across each stability change is drawn by neither.
    unstable = ~st
    unstable_wide = unstable | np.r_[unstable[1:], False] | np.r_[False, unstable[:-1]]
    for y, style, color, label in ((np.where(st, bx, np.nan), "-", "C0",
                                    "stable (continuation)"),
                                   (np.where(unstable_wide, bx, np.nan), "--", "C1",
                                    "unstable (continuation)")):
        ax[0].plot(bb, y, style, color=color, lw=2, zorder=3, label=label)
    ax[0].plot(np.repeat(bv, fp.x.shape[1]), np.asarray(fp.x).ravel(), "o", ms=3, color="k",
               mec="none", zorder=4, label="grid fixed points (bracketing + Newton)")
    for bp in folds:
        ax[0].plot(float(bp.p), float(bp.x), "o", color="C3", ms=8, zorder=5)
    if folds:
        ax[0].plot([], [], "o", color="C3", ms=8, label="folds (located)")
    ax[0].set(xlabel="b", ylabel="x*")
    ax[0].set_title(f"Fixed points of dx/dt = -x + σ({w:g}x + b)", fontsize=10)
    ax[0].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    # The fixed-x(0) runs coincide with one sweep away from the folds: they are drawn wide
    # and pale underneath the sweeps so that both stay visible.
    for m, x0 in enumerate(np.asarray(orbit.x0)):
        ax[1].plot(bv, np.asarray(orbit.states[:, m, -1]), "-", color=("C2", "C4")[m % 2],
                   lw=6, alpha=0.35, zorder=1,
                   label=f"fixed x(0) = {x0:g} (wide, under the sweeps)")
    ax[1].plot(bv, np.asarray(sweep.up[:, -1]), "^-", ms=3, color="C0", zorder=3,
               label="sweep b up")
    ax[1].plot(bv, np.asarray(sweep.down[:, -1]), "v-", ms=3, color="C1", zorder=3,
               label="sweep b down")
    for k, bp in enumerate(folds):
        ax[1].axvline(float(bp.p), color="C3", lw=0.8, ls="--",
                      label="folds (located)" if k == 0 else None)
    ax[1].set(xlabel="b", ylabel="x(T)")
    ax[1].set_title("Orbit diagram: hysteresis between the folds", fontsize=10)
    ax[1].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    fig.tight_layout()
    figures["bifurcation_diagram"] = fig

    fig, ax = plt.subplots(1, 2, figsize=(10, 4.2))
    xT = np.asarray(sens.final)
    dxdb = np.asarray(sens.d_final_d_param)
    for m, name in enumerate(("lower attractor", "upper attractor")):
        ax[0].semilogy(bv, np.abs(dxdb[:, m]), color=f"C{m}",
                       label=f"autodiff, {name}")
        ax[0].semilogy(bv[settled[:, m]], np.abs(closed[settled[:, m], m]), "k.", ms=3,
                       zorder=3)
    ax[0].plot([], [], "k.", label=r"closed form $(1/(x(1-x)) - w)^{-1}$ (settled runs)")
    ax[0].set(xlabel="b", ylabel="|∂x(T)/∂b|")
    ax[0].set_title("Parameter sensitivity: finite on a branch,\ngrowing toward its fold",
                    fontsize=10)
    ax[0].legend(fontsize=7, loc="lower center")
    ax[1].semilogy(np.asarray(s_line.x0), np.abs(np.asarray(s_line.d_final_d_x0)[0]) + 1e-300)
    ax[1].set(xlabel="x(0)", ylabel="|∂x(T)/∂x(0)|", ylim=(1e-40, 1e20))
    ax[1].set_title("b = -2.5: vanishing except at\nthe unstable point x = 1/2", fontsize=10)
    fig.tight_layout()
    figures["sensitivities"] = fig
    del xT

    fig, ax = plt.subplots(1, 2, figsize=(10, 4.2))
    bb_basin = np.asarray(basin.values)
    x0 = np.asarray(basin.x0)
    mesh = ax[0].pcolormesh(bb_basin, x0, np.asarray(basin.final).T, shading="nearest",
                            cmap="coolwarm", vmin=0.0, vmax=1.0)
    fig.colorbar(mesh, ax=ax[0], label="attractor reached, x(T)")
    ax[0].plot(bb_basin, unstable_x, "k--", label="unstable fixed point (basin boundary)")
    bb_grid, x0_grid = np.meshgrid(bb_basin, x0, indexing="ij")
    moving = ~np.asarray(basin.settled)
    if moving.any():  # listed in the legend only when some start has not settled
        ax[0].plot(bb_grid[moving], x0_grid[moving], "x", color="k", ms=3,
                   label=f"not settled at T: {int(moving.sum())} starts (slow passage near "
                         "a fold)")
    ax[0].set(xlabel="b", ylabel="x(0)")
    ax[0].set_title("Basins of attraction (every start settled)" if not moving.any()
                    else "Basins of attraction", fontsize=10)
    ax[0].legend(fontsize=7, loc="upper left", framealpha=0.9)
    for k, curve in enumerate((fc, fc_up)):
        fok = np.asarray(curve.valid)
        ax[1].plot(np.asarray(curve.p2)[fok], np.asarray(curve.p)[fok], "k-",
                   label="fold curve (continued)" if k == 0 else None)
    for c in fc.cusps:
        ax[1].plot(float(c.p2), float(c.p), "o", color="C3", label="cusp")
    ax[1].axvline(w, color="C7", lw=0.8, ls=":", label=f"w = {w:g}")
    ax[1].set(xlabel="w", ylabel="b")
    ax[1].set_title("Fold curve in (w, b): bistable inside the cusp", fontsize=10)
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    figures["basins_and_cusp"] = fig
    return figures
