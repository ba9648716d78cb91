"""Lyapunov exponents of the random rate network, discrete and continuous, against the gain g.

Reproduces (at CPU scale) Engelken, Wolf & Abbott 2020 ("Lyapunov spectra of chaotic
recurrent neural networks", arXiv:2006.02427), Fig. 1 (λ_max against g, simulation beside
dynamic mean-field theory) and the discrete-time spectra of their Fig. 2, and the mean-field
λ_max(g) of Sompolinsky, Crisanti & Sommers 1988 (PRL 61:259; SCS).

Discrete network ``h ← J tanh(h)``, ``J_ij ~ N(0, g²/N)``: the origin is stable for g < 1 and
then λ_1 = log ρ(J) exactly (the step Jacobian at 0 is J). Mean-field theory (Molgedey,
Schuchhardt & Schuster 1992, PRL 69:3717) gives

    λ_1 = ½ log(g² ⟨tanh'(h)²⟩),   h ~ N(0, q*),   q* = g² ⟨tanh(h)²⟩,

computed with ``jaxgrad.analysis.q_star`` and ``jaxgrad.chi_1`` (σ_w² = g², σ_b² = 0). Full spectra
(Benettin/QR) for a g-sweep; checks: λ_1 = log ρ(J) at g = 0.5, the zero crossing near
g = 1, λ_1 against mean field at g = 2, Σλ_i = ⟨log|det D_t|⟩, and λ_i = log|eig_i(A)| for a
linear map.

Continuous network ``dx/dt = -x + J tanh(x)`` (time unit τ = 1), RK4 with dt = 0.1 through
``jaxgrad.models.rate_flow_step``: λ_1 (QR with one tangent vector) after a transient of 100 τ,
averaged over 600 τ, for N = 200 (3 seeds) on g ∈ {0.5, 0.8, 1, 1.25, 1.5, 2, 2.5, 3, 4} and
N = 800 (2 seeds) on g ∈ {1.5, 2, 3, 4}, beside ``jaxgrad.analysis.rate_mean_field`` (SCS: Δ₀ from
energy conservation of Δ'' = Δ - g² C_φ(Δ, Δ₀), λ_max = -1 + √(1 - E₀) from the ground
state of the Schrödinger operator; λ_max = g - 1 for g ≤ 1). Checks: λ_1 = max Re eig(J) - 1
at g = 0.5 (the linearisation at the decayed state) and ≈ g - 1; at N = 800 λ_1 within 15 %
of the mean field at g = 2, 3, 4 and within 40 % at g = 1.5 (near the transition); the
N = 800 error below the N = 200 error (finite-size convergence); and the sum rule on a
full spectrum (N = 100, g = 2, 60 τ after 20 τ):
Σλ_i = ⟨log|det D_t|⟩/dt (exact) and ≈ ⟨tr ∂F/∂x⟩ = ⟨-N + Σ_i J_ii tanh'(x_i)⟩ (1 %).

Phase diagram (issue #15): λ_1 of the discrete network with a bias, ``h ← J tanh(h) + b``,
``b_i ~ N(0, σ_b²)``, over an 8 × 26 grid of (σ_b², g) (N = 200, 2 networks per point, common
random numbers across the grid), computed by ``jaxgrad.sweep``, beside the mean field's
λ_1 = ½ log χ₁(σ_w² = g², σ_b²) (Molgedey et al. 1992; Poole et al. 2016 draw the same line
for deep networks). The figure shows the measured λ_1 = 0 contour and the theory's critical
line ``g² = σ_{w,c}²(σ_b²)`` (``jaxgrad.analysis.critical_sigma_w2``); the check counts the grid
points on the mean field's side of λ_1 = 0 (≥ 0.9; points with |mean-field λ_1| ≤ 0.02 left
out: finite N and T blur the transition). Quick configuration (N = 64, 4 × 11 grid): 0.95.

Departures from the paper: N = 200 and 800 instead of their N up to 10⁴ and long runs
(finite N lowers λ_1 well below the N → ∞ value at large g, see the table below); the
continuous spectrum's figure uses N = 100 and a short run; every check has a tolerance that
covers finite N and T, stated beside it.

Continuous network, default configuration (seed 0; λ in 1/τ; mean ± sd over seeds; the
standard error of each single estimate, windows taken as independent, is at most 0.014):

    g      mean field   N = 200 (3 seeds)    N = 800 (2 seeds)
    0.5    -0.500       -0.521 ± 0.010
    0.8    -0.200       -0.233 ± 0.015
    1.0     0.000       -0.041 ± 0.019
    1.25    0.0170       0.0001 ± 0.0002
    1.5     0.0467       0.0001 ± 0.0005      0.0338 ± 0.0016
    2.0     0.1125       0.061 ± 0.038        0.1040 ± 0.0004
    2.5     0.1761       0.132 ± 0.011
    3.0     0.2355       0.158 ± 0.017        0.2260 ± 0.0018
    4.0     0.3415       0.271 ± 0.019        0.3163 ± 0.0033

(mean-field Δ₀ = 0.316, 0.748, 1.925, 3.495, 5.446, 10.47 at g = 1.25 … 4; every solution
converged). Sum rule at g = 2, N = 100: Σλ_i = -99.503, ⟨log|det D_t|⟩/dt = -99.503,
⟨tr ∂F/∂x⟩ = -99.504. At N = 200 and g <= 1.5 all three networks settled on limit cycles
(λ_1 = 0): the finite network's transition to chaos lies above g = 1; at N = 800 λ_1 is
within 8 % of the mean field from g = 2 on (28 % at g = 1.5), and the finite-N values lie
below it. Below g = 1, λ_1 follows the spectral edge of the sampled J (max Re eig(J) - 1,
checked to 0.01 at g = 0.5; the seed mean of that edge is -0.520 at g = 0.5).

Timing. This machine was shared (load average about 20 on 2 cores) while this was written;
measured under that load: mean field at 9 gains 57 s, the N = 200 flow sweep 107 s (about
0.5 ms per RK4 step and seed), the N = 800 sweep 230 s (4 ms per step and seed), the full
N = 100 spectrum and its sum rule 145 s, the quick configuration end to end 295 s. The same
N = 800 step took 1.2 ms at load 8, so a quiet machine should be several times faster. The
discrete part (N = 200, full spectrum, 8 gains x 2 seeds x 400 steps, the scale of the
former quick configuration, whose checks pass) dominates: about 0.75 s per step (both
seeds) under that load, 40 min; if a quiet machine is 10x faster (as the load ratio
suggests) that is 4 min, and the whole default 5-6 min, above
the 4-minute target: the default was run in parts (the continuous part above, at its default
scale) and NOT end to end in this session; its wall time on a quiet machine is unmeasured.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jaxgrad

from ._runner import Check, Computed, Result, check_bound, check_close, staged_run

NAME = "lyapunov-rnn"
DESCRIPTION = ("λ_1 of the discrete and continuous rate networks against g beside dynamic "
               "mean-field theory (SCS 1988): chaos sets in at g = 1; spectra, sum rules.")


@dataclasses.dataclass(frozen=True)
class Config:
    """The experiment's parameters."""

    # Discrete network h <- J tanh(h), J_ij ~ N(0, g²/N): full spectra over g.
    num_units: int = 200
    g_values: tuple[float, ...] = (0.5, 0.8, 0.9, 1.0, 1.1, 1.2, 1.5, 2.0)
    num_seeds: int = 2
    num_steps: int = 300  # steps averaged, after the transient
    transient: int = 100
    crossing_threshold: float = 0.01  # λ_1 "reaches 0" at -crossing_threshold
    mean_field_g: float = 2.0  # the gain checked against mean field (tolerance below)
    mean_field_rtol: float = 0.2
    sum_rule_g: float = 1.5  # the gain of the sum-rule check
    seed: int = 0
    # Continuous-time network dx/dt = -x + J tanh(x), RK4 with step ct_dt (time unit τ = 1).
    ct_num_units: int = 200
    ct_g_values: tuple[float, ...] = (0.5, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
    ct_num_seeds: int = 3
    ct_dt: float = 0.1
    ct_num_steps: int = 6000
    ct_transient: int = 1000
    ct_large_num_units: int = 800
    ct_large_g_values: tuple[float, ...] = (1.5, 2.0, 3.0, 4.0)
    ct_large_num_seeds: int = 2
    ct_spectrum_num_units: int = 100
    ct_spectrum_g: float = 2.0
    ct_spectrum_num_steps: int = 600
    ct_spectrum_transient: int = 200
    ct_mean_field_tol: float = 0.15
    ct_mean_field_tol_near: float = 0.4
    ct_mean_field_curve_points: int = 10
    # Phase diagram of the discrete network with a bias, h <- J tanh(h) + b, b_i ~ N(0, σ_b²):
    # λ_1 over (σ_b², g) by jaxgrad.sweep.
    phase_sigma_b2: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
    phase_g: tuple[float, float, int] = (0.5, 3.0, 26)
    phase_num_units: int = 200
    phase_num_seeds: int = 2
    phase_num_steps: int = 400
    phase_transient: int = 200
    phase_band: float = 0.02


QUICK_CONFIG = {"num_units": 64, "num_steps": 300, "transient": 100, "mean_field_rtol": 0.4,
                "g_values": [0.5, 0.8, 0.9, 1.0, 1.1, 1.2, 1.5, 2.0],
                "ct_num_units": 60, "ct_g_values": [0.5, 1.5, 2.0, 3.0, 4.0],
                "ct_num_seeds": 2, "ct_num_steps": 600, "ct_transient": 200,
                "ct_large_num_units": 240, "ct_large_g_values": [1.5, 2.0, 3.0, 4.0],
                "ct_large_num_seeds": 1, "ct_spectrum_num_units": 30,
                "ct_spectrum_num_steps": 200, "ct_spectrum_transient": 50,
                "ct_mean_field_tol": 0.6, "ct_mean_field_tol_near": 0.8,
                "ct_mean_field_curve_points": 0, "phase_g": [0.5, 3.0, 11],
                "phase_sigma_b2": [0.0, 0.05, 0.5, 2.0], "phase_num_units": 64,
                "phase_num_seeds": 1, "phase_num_steps": 200, "phase_transient": 100}
SUMMARY_KEYS = (
    "g", "lambda_1", "kaplan_yorke_fraction", "entropy_rate", "log_spectral_radius",
    "g_crossing", "mean_field_lambda_1", "sum_rule", "linear_map_max_error",
    "all_log_r_finite", "mean_field_lambda_max", "discrete_mean_field_lambda_1",
    "flow_sum_rule", "flow_mean_field_all_converged", "flow_all_valid",
    "flow_large_mean_field_lambda_max", "flow_mean_abs_error", "phase_agreement")


def mean_field_lambda_1(g: float) -> float:
    """λ_1 = ½ log(g² ⟨tanh'(h)²⟩), h ~ N(0, q*), q* = g² ⟨tanh(h)²⟩ (``jaxgrad.analysis.q_star``,
    ``jaxgrad.chi_1`` with σ_w² = g², σ_b² = 0; float64)."""
    with jax.enable_x64(True):
        g2 = jnp.asarray(float(g) ** 2, jnp.float64)
        fixed = jaxgrad.analysis.q_star(g2, 0.0)
        if not bool(fixed.converged):
            return float("nan")
        return 0.5 * float(jnp.log(jaxgrad.chi_1(g2, 0.0, q=fixed.q)))


def _crossing(g: np.ndarray, lam: np.ndarray, level: float) -> float:
    """The first g where ``lam`` rises through ``level`` (linear interpolation); NaN if never."""
    above = np.nonzero(lam >= level)[0]
    if above.size == 0:
        return float("nan")
    i = int(above[0])
    if i == 0:
        return float(g[0])
    g0, g1, l0, l1 = g[i - 1], g[i], lam[i - 1], lam[i]
    return float(g0 + (level - l0) * (g1 - g0) / (l1 - l0))


def _flow_exponents(key, g_values, num_units, num_seeds, config, desc):
    """λ_1 of the continuous network (RK4, step ct_dt) per gain and seed, shape (G, S).

    Also the standard error of each estimate (windows treated as independent) and, per seed,
    ``max Re eig(J) - 1`` (the origin's linear stability). One vmapped call over the seeds
    per gain (g is traced: compiled once), in a tqdm loop that shows the sweep's progress.
    """
    from tqdm.auto import tqdm

    dt = float(config.ct_dt)
    T, transient = int(config.ct_num_steps), int(config.ct_transient)
    step = partial(jaxgrad.models.rate_flow_step, dt=dt, method="rk4")

    def one(g, seed):
        k = jax.random.fold_in(jax.random.fold_in(key, num_units), seed)
        p = jaxgrad.init_rate(k, num_units, g=g)
        x0 = jax.random.normal(jax.random.fold_in(k, 1), (num_units,))
        res = jaxgrad.lyapunov_spectrum(step, x0, num_steps=T + transient, transient=transient,
                                        params=p, dt=dt, num_exponents=1)
        edge = jnp.max(jnp.real(jnp.linalg.eigvals(p.J))) - 1.0
        return res.exponents[0], res.standard_error[0], edge, res.valid

    per_seed = jax.jit(lambda g: jax.vmap(lambda s: one(g, s))(jnp.arange(num_seeds)))
    parts = [jax.block_until_ready(per_seed(g))
             for g in tqdm(np.asarray(g_values, np.float32), desc=desc, unit="g", leave=False)]
    return [np.stack([np.asarray(p[i]) for p in parts]) for i in range(4)]


def _flow_sum_rule(key, config):
    """Full spectrum of the continuous network at one gain, and the two sides of the sum rule.

    Σ λ_i equals the time average of log|det D_t| / dt over the same RK4 steps (exact, up to
    rounding), and, up to the integrator's error, the time average of the trace of the
    vector field's Jacobian, tr(-I + J diag φ'(x)) = -N + Σ_i J_ii (1 - tanh²(x_i)).
    """
    N = int(config.ct_spectrum_num_units)
    g = float(config.ct_spectrum_g)
    dt = float(config.ct_dt)
    T, transient = int(config.ct_spectrum_num_steps), int(config.ct_spectrum_transient)
    step = partial(jaxgrad.models.rate_flow_step, dt=dt, method="rk4")
    k = jax.random.fold_in(key, 7)
    p = jaxgrad.init_rate(k, N, g=g)
    x0 = jax.random.normal(jax.random.fold_in(k, 1), (N,))
    res = jaxgrad.lyapunov_spectrum(step, x0, num_steps=T + transient, transient=transient,
                                    params=p, dt=dt)
    zero_u = jnp.zeros((0,))
    xs = jaxgrad.unroll(lambda x, u: step(x, u, p), x0, jnp.zeros((T + transient, 0)))
    prev = jnp.concatenate([x0[None], xs[:-1]])[transient:]
    jacs = jax.vmap(jax.jacfwd(lambda x: step(x, zero_u, p)))(prev)
    log_det = float(jnp.mean(jnp.linalg.slogdet(jacs)[1])) / dt
    dphi = 1.0 - jnp.tanh(prev) ** 2
    trace = float(jnp.mean(-N + jnp.sum(jnp.diag(p.J)[None, :] * dphi, axis=1)))
    return np.asarray(res.exponents), float(jnp.sum(res.exponents)), log_det, trace


def _phase_diagram(key, config):
    """λ_1 of ``h <- J tanh(h) + b`` over ``(σ_b², g)`` by ``jaxgrad.sweep``, and mean field.

    Every grid point uses the same standard-normal ``Z`` and ``ξ`` per seed (common random
    numbers): ``J = g Z/√N``, ``b = σ_b ξ`` (``W_in = σ_b ξ`` with a constant input 1).
    Returns ``(b2, g, measured (B, G), mean field (B, G))``; mean field is
    ``½ log χ₁(σ_w² = g², σ_b²)`` (``jaxgrad.chi_1``, Molgedey et al. 1992).
    """
    N, S = int(config.phase_num_units), int(config.phase_num_seeds)
    T, transient = int(config.phase_num_steps), int(config.phase_transient)
    b2 = np.asarray(config.phase_sigma_b2, np.float32)
    start, stop, num = config.phase_g
    gs = np.linspace(start, stop, int(num), dtype=np.float32)
    keys = jax.random.split(jax.random.fold_in(key, 7), S)
    Z = jax.vmap(lambda k: jax.random.normal(k, (N, N)) / np.float32(np.sqrt(N)))(keys)
    xi = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 1), (N, 1)))(keys)
    x0 = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 2), (N,)))(keys)
    ones = jnp.ones((T + transient, 1))

    def point(p):
        def one(z, x, h0):
            params = jaxgrad.RateParams(J=p["g"] * z, W_in=jnp.sqrt(p["sigma_b2"]) * x)
            res = jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, h0, ones, params=params,
                                            num_exponents=1, transient=transient)
            return res.exponents[0]

        return {"lambda_1": jnp.mean(jax.vmap(one)(Z, xi, x0)),
                "mean_field": 0.5 * jnp.log(jaxgrad.chi_1(p["g"] ** 2, p["sigma_b2"]))}

    grid = jaxgrad.sweep(point, {"sigma_b2": b2, "g": gs}, block_size=64, progress=False)
    if not np.all(grid.finite):
        raise FloatingPointError("non-finite λ_1 in the phase diagram at (σ_b², g) = "
                                 f"{grid.nonfinite_points[:5].tolist()}")
    return b2, gs, np.asarray(grid.values["lambda_1"]), np.asarray(grid.values["mean_field"])


def _theory_and_simulation(ax, theory, simulated, *, ylabel, title, legend_loc="best"):
    """λ₁ against g: the theory's curve ``(g, λ, label)`` in black, each simulated set
    ``(g, mean, sd, marker, color, marker size, label)`` as error bars, and the line λ = 0."""
    g, lam, label = theory
    ax.plot(g, lam, "-", color="k", lw=1.5, label=label)
    for g_sim, mean, sd, marker, color, size, sim_label in simulated:
        ax.errorbar(g_sim, mean, yerr=sd, fmt=marker, color=color, capsize=3, ms=size,
                    label=sim_label)
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.set_xlabel(r"gain $g$")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc=legend_loc)


def compute(config: Config) -> Computed:
    """Discrete spectra over g, the sum rule, a linear map, the continuous network beside
    dynamic mean-field theory, and the (σ_b², g) phase diagram."""
    from tqdm.auto import tqdm

    N = int(config.num_units)
    T, transient = int(config.num_steps), int(config.transient)
    gs = np.asarray(config.g_values, dtype=np.float32)
    seeds = np.arange(int(config.num_seeds))
    key = jax.random.key(int(config.seed))

    def spectrum(g, seed):
        k = jax.random.fold_in(key, seed)
        p = jaxgrad.init_rate(k, N, g=g)
        x0 = jax.random.normal(jax.random.fold_in(k, 1), (N,))
        res = jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, x0, num_steps=T + transient,
                                        transient=transient, params=p)
        rho = jnp.max(jnp.abs(jnp.linalg.eigvals(p.J)))
        return res, jnp.log(rho)

    # One vmapped call over the seeds per gain (compiled once: g is traced), so that a long
    # sweep shows its progress; the per-g results are stacked as one (G, S, ...) result.
    per_seed = jax.jit(lambda g: jax.vmap(lambda s: spectrum(g, s))(seeds))
    parts = [jax.block_until_ready(per_seed(g))  # wait, so that the bar shows real progress
             for g in tqdm(gs, desc="lyapunov-rnn: g sweep", unit="g", leave=False)]
    res, log_rho = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *parts)
    exps = np.asarray(res.exponents)                      # (G, S, N)
    lam1 = exps[:, :, 0]
    lam1_mean = lam1.mean(1)
    dky = np.asarray(res.kaplan_yorke_dimension) / N      # (G, S)
    entropy = np.asarray(res.entropy_rate)
    log_rho = np.asarray(log_rho)
    finite = bool(np.all(np.asarray(res.finite)))
    g_cross = _crossing(gs, lam1_mean, -float(config.crossing_threshold))
    i_mf = int(np.argmin(np.abs(gs - float(config.mean_field_g))))
    lam_mf = mean_field_lambda_1(float(gs[i_mf]))

    # Sum rule on one trajectory: Σ λ_i = mean over the same steps of log|det D_t|.
    g_sum = float(config.sum_rule_g)
    k0 = jax.random.fold_in(key, 0)
    p = jaxgrad.init_rate(k0, N, g=g_sum)
    x0 = jax.random.normal(jax.random.fold_in(k0, 1), (N,))
    res_sum = jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, x0, num_steps=T + transient,
                                        transient=transient, params=p)
    step = partial(jaxgrad.rate_step, params=p)
    xs = jaxgrad.unroll(step, x0, jnp.zeros((T + transient, 0)))
    prev = jnp.concatenate([x0[None], xs[:-1]])[transient:]
    zero_u = jnp.zeros((0,))
    jacs = jax.vmap(jax.jacfwd(lambda x: step(x, zero_u)))(prev)
    log_det_mean = float(jnp.mean(jnp.linalg.slogdet(jacs)[1]))
    lam_sum = float(jnp.sum(res_sum.exponents))

    # Linear map: λ_i = log|eig_i(A)| for a symmetric A with distinct |eigenvalues|.
    eig = np.array([1.25, -1.1, 0.9, -0.7, 0.5, 0.3, -0.2, 0.1], dtype=np.float32)
    V, _ = jnp.linalg.qr(jax.random.normal(jax.random.fold_in(key, 99), (8, 8)))
    A = V @ jnp.diag(jnp.asarray(eig)) @ V.T
    lin = jaxgrad.lyapunov_spectrum(lambda x, u: A @ x, jnp.ones(8), num_steps=600,
                                    transient=200)
    lin_err = float(np.max(np.abs(np.asarray(lin.exponents) - np.log(np.abs(eig)))))

    # Discrete network beside its own mean field at every gain (q*, χ₁ of the q-map).
    discrete_mf = [{"g": round(float(g), 6), "mean_field": mean_field_lambda_1(float(g)),
                    "simulated": float(m), "simulated_std": float(sd)}
                   for g, m, sd in zip(gs, lam1_mean, lam1.std(1))]

    # Continuous network: λ_1 against g (N and a larger N), beside dynamic mean-field theory.
    ct_gs = np.asarray(config.ct_g_values, np.float64)
    N_ct, N_big = int(config.ct_num_units), int(config.ct_large_num_units)
    big_gs = np.asarray(config.ct_large_g_values, np.float64)
    mf = {float(g): jaxgrad.analysis.rate_mean_field(float(g))
          for g in tqdm(sorted(set(ct_gs) | set(big_gs)), desc="lyapunov-rnn: mean field",
                        unit="g", leave=False)}
    ct_lam, ct_se, ct_edge, ct_valid = _flow_exponents(
        key, ct_gs, N_ct, int(config.ct_num_seeds), config, "lyapunov-rnn: flow, N = "
        f"{N_ct}")
    big_lam, big_se, _, big_valid = _flow_exponents(
        key, big_gs, N_big, int(config.ct_large_num_seeds), config,
        f"lyapunov-rnn: flow, N = {N_big}")
    ct_mean, big_mean = ct_lam.mean(1), big_lam.mean(1)
    mean_field_rows = []
    for i, g in enumerate(ct_gs):
        row = {"g": float(g), "mean_field": mf[float(g)].lambda_max,
               "simulated": float(ct_mean[i]), "simulated_std": float(ct_lam[i].std()),
               "num_units": N_ct, "mean_field_converged": mf[float(g)].converged}
        j = np.nonzero(np.isclose(big_gs, g))[0]
        if j.size:
            row["simulated_large_n"] = float(big_mean[j[0]])
            row["large_num_units"] = N_big
        mean_field_rows.append(row)
    big_mf = [mf[float(g)].lambda_max for g in big_gs]
    shared = [int(np.argmin(np.abs(ct_gs - g))) for g in big_gs]
    err_small = float(np.mean(np.abs(ct_mean[shared] - big_mf)))
    err_big = float(np.mean(np.abs(big_mean - big_mf)))
    spec, lam_sum_ct, log_det_ct, trace_ct = _flow_sum_rule(key, config)

    # Mean-field curves for the figures: the discrete λ_1 = ½ log(g² ⟨tanh'(h)²⟩) and the
    # continuous λ_max(g) (SCS) on finer grids.
    g_fine = np.linspace(1.0, float(gs.max()), 60)
    g_dense = np.linspace(float(gs.min()), float(gs.max()), 40)
    n_curve = int(config.ct_mean_field_curve_points)
    curve_gs = sorted(set(mf) | {float(g) for g in np.linspace(1.05, ct_gs.max(), n_curve)})
    for g in tqdm([g for g in curve_gs if g not in mf], desc="lyapunov-rnn: mean-field curve",
                  unit="g", leave=False):
        mf[g] = jaxgrad.analysis.rate_mean_field(g)
    curve = np.array([(g, mf[g].lambda_max) for g in curve_gs if g > 1 and mf[g].converged])

    # Phase diagram: λ_1 over (σ_b², g), and the mean field's critical line.
    ph_b2, ph_g, ph_lam, ph_mf = _phase_diagram(key, config)
    clear = np.abs(ph_mf) > float(config.phase_band)
    phase_agreement = float(np.mean((ph_lam[clear] > 0) == (ph_mf[clear] > 0)))
    line_b2 = np.concatenate([[0.0], np.geomspace(1e-3, float(ph_b2[-1]), 40)])
    line_g = np.sqrt(np.asarray(jax.vmap(lambda b: jaxgrad.analysis.critical_sigma_w2(b).sigma_w2)(
        jnp.asarray(line_b2, jnp.float32))))

    summary = {
        "phase_agreement": phase_agreement,
        "g": gs.tolist(),
        "lambda_1": lam1_mean.tolist(),
        "kaplan_yorke_fraction": dky.mean(1).tolist(),
        "entropy_rate": entropy.mean(1).tolist(),
        "log_spectral_radius": log_rho.mean(1).tolist(),
        "g_crossing": g_cross,
        "mean_field_lambda_1": {"g": float(gs[i_mf]), "value": lam_mf},
        "sum_rule": {"g": g_sum, "sum_exponents": lam_sum, "mean_log_abs_det": log_det_mean},
        "linear_map_max_error": lin_err,
        "convergence_lambda_1_max": float(np.max(np.asarray(res.convergence)[:, :, 0])),
        "mean_field_lambda_max": mean_field_rows,
        "discrete_mean_field_lambda_1": discrete_mf,
        "flow_sum_rule": {"g": float(config.ct_spectrum_g), "num_units": int(spec.shape[0]),
                          "sum_exponents": lam_sum_ct, "mean_log_abs_det_over_dt": log_det_ct,
                          "mean_trace_jacobian": trace_ct},
        "flow_lambda_1_standard_error_max": float(max(ct_se.max(), big_se.max())),
        "all_log_r_finite": finite,
        "flow_mean_field_all_converged": bool(all(mf[float(g)].converged
                                                  for g in sorted(set(ct_gs) | set(big_gs)))),
        "flow_all_valid": bool(np.all(ct_valid) and np.all(big_valid)),
        "flow_large_mean_field_lambda_max": big_mf,
        "flow_mean_abs_error": {"num_units": N_ct, "error": err_small,
                                "large_num_units": N_big, "large_error": err_big},
    }
    run_est = np.asarray(res.running_exponents)[:, 0, :, 0]  # (G, W)
    arrays = {"g": gs, "exponents": exps, "kaplan_yorke_fraction": dky,
              "log_spectral_radius": log_rho, "running_lambda_1": run_est,
              "flow_g": ct_gs, "flow_lambda_1": ct_lam, "flow_large_g": big_gs,
              "flow_large_lambda_1": big_lam, "flow_spectrum": spec,
              "mean_field_curve": curve, "phase_sigma_b2": ph_b2, "phase_g": ph_g,
              "phase_lambda_1": ph_lam, "phase_mean_field_lambda_1": ph_mf,
              "entropy_rate": entropy, "flow_spectral_edge": ct_edge,
              "discrete_mean_field_curve": np.stack(
                  [g_fine, [mean_field_lambda_1(float(g)) for g in g_fine]], axis=1),
              "discrete_mean_field_dense": np.stack(
                  [g_dense, [mean_field_lambda_1(float(g)) for g in g_dense]], axis=1),
              "phase_critical_line": np.stack([line_b2, line_g], axis=1)}
    # the mean-field solutions at the larger network's gains: the autocorrelation panel
    details = {"mean_field": {float(g): mf[float(g)] for g in big_gs}}
    return Computed(summary=summary, arrays=arrays, details=details)


def checks(config: Config, computed: Computed) -> list[Check]:
    """Closed forms (stable origin, linear map, sum rules) and the mean-field theories."""
    s, a = computed.summary, computed.arrays
    gs, lam1, log_rho = a["g"], a["exponents"][:, :, 0], a["log_spectral_radius"]
    lam1_mean, dky = lam1.mean(1), a["kaplan_yorke_fraction"]
    out = []
    i_low = int(np.argmin(np.abs(gs - 0.5)))
    out.append(check_close(
        f"λ_1 at g={gs[i_low]:.2f} vs log ρ(J) (stable origin, closed form)",
        np.max(np.abs(lam1[i_low] - log_rho[i_low])), 0.0, atol=0.01,
        note="largest |λ_1 - log ρ(J)| over seeds"))
    out.append(check_bound(f"λ_1 at g={gs[i_low]:.2f}", lam1[i_low].max(), 0.0, kind="<="))
    i_high = int(np.argmin(np.abs(gs - 1.5)))
    out.append(check_bound(f"λ_1 at g={gs[i_high]:.2f} (seed mean)", lam1_mean[i_high], 0.0,
                           kind=">="))
    level = -float(config.crossing_threshold)
    out.append(check_close(
        "g where λ_1 reaches 0 (to within the threshold)", s["g_crossing"], 1.0, atol=0.15,
        note=f"first g with seed-mean λ_1 >= {level}; mean-field transition at g = 1 "
             "(Molgedey et al. 1992)"))
    i_mf = int(np.argmin(np.abs(gs - float(config.mean_field_g))))
    out.append(check_close(f"λ_1 at g={gs[i_mf]:.2f} vs dynamic mean-field theory",
                           lam1_mean[i_mf], s["mean_field_lambda_1"]["value"],
                           rtol=float(config.mean_field_rtol),
                           note="finite N and T; mean field is the N → ∞ limit"))
    out.append(check_bound("D_KY/N at the smallest g", dky[0].max(), 0.0, kind="<="))
    rule = s["sum_rule"]
    out.append(check_close(f"Σ λ_i at g={rule['g']} vs mean log|det D_t|",
                           rule["sum_exponents"], rule["mean_log_abs_det"], rtol=1e-3,
                           note="sum rule, exact up to rounding"))
    out.append(check_close("linear map: max |λ_i - log|eig_i(A)||", s["linear_map_max_error"],
                           0.0, atol=1e-4))
    out.append(check_bound("every log|R_ii| finite (1 = yes)", float(s["all_log_r_finite"]),
                           1.0, kind=">="))

    ct_gs, ct_lam, ct_edge = a["flow_g"], a["flow_lambda_1"], a["flow_spectral_edge"]
    big_gs, big_mean = a["flow_large_g"], a["flow_large_lambda_1"].mean(1)
    ct_mean = ct_lam.mean(1)
    out.append(check_bound("every mean-field solution converged (1 = yes)",
                           float(s["flow_mean_field_all_converged"]), 1.0, kind=">="))
    out.append(check_bound("every flow exponent finite and resolved (1 = yes)",
                           float(s["flow_all_valid"]), 1.0, kind=">="))
    i_lo = int(np.argmin(ct_gs))
    out.append(check_close(
        f"flow λ_1 at g={ct_gs[i_lo]:.2f} vs max Re eig(J) - 1 (stable origin)",
        np.max(np.abs(ct_lam[i_lo] - ct_edge[i_lo])), 0.0, atol=0.01,
        note="largest difference over seeds; the linearisation at 0 is exact once x decays"))
    out.append(check_close(
        f"flow λ_1 at g={ct_gs[i_lo]:.2f} vs mean field g - 1",
        ct_mean[i_lo], ct_gs[i_lo] - 1.0, atol=0.05,
        note="circular law: the spectral edge of J is g up to O(N^-1/2)"))
    errors = s["flow_mean_abs_error"]
    N_ct, N_big = errors["num_units"], errors["large_num_units"]
    for j, g in enumerate(big_gs):
        ref = s["flow_large_mean_field_lambda_max"][j]
        near = g < 2.0  # finite-N effects are largest near the transition
        tol = float(config.ct_mean_field_tol_near if near else config.ct_mean_field_tol)
        out.append(check_close(
            f"flow λ_1 at g={g:g}, N={N_big} vs dynamic mean-field theory", big_mean[j], ref,
            rtol=tol, note="Sompolinsky, Crisanti & Sommers 1988; Engelken, Wolf & Abbott "
                           "2020 Fig. 1; finite N and T" + (", g < 2: near the transition"
                                                            if near else "")))
    out.append(check_bound(
        f"mean |λ_1 - mean field| at N={N_big} <= at N={N_ct}", errors["large_error"],
        errors["error"], kind="<=", note="finite-size convergence toward the N → ∞ theory"))
    flow = s["flow_sum_rule"]
    out.append(check_close(
        f"flow Σ λ_i at g={config.ct_spectrum_g} vs mean log|det D_t| / dt",
        flow["sum_exponents"], flow["mean_log_abs_det_over_dt"], rtol=1e-3,
        note="sum rule of the RK4 map, exact up to rounding"))
    out.append(check_close(
        f"flow Σ λ_i at g={config.ct_spectrum_g} vs mean tr(∂F/∂x)", flow["sum_exponents"],
        flow["mean_trace_jacobian"], rtol=0.01,
        note="sum rule of the flow: -N + Σ J_ii φ'(x_i), up to the RK4 error"))
    out.append(check_bound(
        "phase diagram: grid points on the mean field's side of λ_1 = 0 (fraction)",
        s["phase_agreement"], 0.9, kind=">=",
        note=f"points with |mean-field λ_1| <= {config.phase_band} left out; finite N"))
    return out


def figures(config: Config, computed: Computed) -> dict[str, Any]:
    """λ_1, D_KY and spectra against g; the QR estimate's convergence; the continuous
    network beside mean field; the phase diagram."""
    summ, a = computed.summary, computed.arrays
    N, T = int(config.num_units), int(config.num_steps)
    gs, exps, dky, entropy = a["g"], a["exponents"], a["kaplan_yorke_fraction"], a[
        "entropy_rate"]
    lam1 = exps[:, :, 0]
    lam1_mean = lam1.mean(1)
    g_cross = summ["g_crossing"]
    g_fine, mf_curve = a["discrete_mean_field_curve"].T

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    ax = axes[0]
    for s in range(lam1.shape[1]):
        ax.plot(gs, lam1[:, s], "o", ms=4, alpha=0.6, label="λ_1, one network" if s == 0
                else None, color="C0")
    ax.plot(gs, lam1_mean, "-", color="C0", label="λ_1, seed mean")
    ax.plot(g_fine, mf_curve, "--", color="C3", label="mean-field theory (N → ∞)")
    g_low = gs[gs <= 1.0]
    ax.plot(g_low, np.log(g_low), ":", color="k", label="log g (stable origin, N → ∞)")
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.axvline(g_cross, color="C2", ls="--", lw=0.8, label=f"λ_1 reaches 0: g = {g_cross:.2f}")
    ax.set_xlabel("gain g")
    ax.set_ylabel("largest Lyapunov exponent λ_1 (per step)")
    ax.set_title(f"Discrete rate network, N = {N}")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(gs, dky.mean(1), "o-", label="D_KY / N")
    ax.plot(gs, entropy.mean(1) / N, "s-", label="entropy rate / N (Σ λ_i⁺)")
    ax.set_xlabel("gain g")
    ax.set_ylabel("per neuron")
    ax.set_title("Attractor dimension and entropy rate")
    ax.legend(fontsize=8)
    ax = axes[2]
    for g in (1.2, 1.5, 2.0):
        i = int(np.argmin(np.abs(gs - g)))
        ax.plot(np.arange(1, N + 1) / N, exps[i, 0], label=f"g = {gs[i]:.1f}")
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.set_xlabel("i / N")
    ax.set_ylabel("λ_i (per step)")
    ax.set_title("Full Lyapunov spectra (seed 0)")
    ax.legend(fontsize=8)
    fig.tight_layout()

    fig2, ax = plt.subplots(figsize=(6, 4))
    run_est = a["running_lambda_1"]  # (G, W)
    windows = np.arange(1, run_est.shape[1] + 1) * (T // run_est.shape[1])
    for g in (0.5, 1.0, 1.5, 2.0):
        i = int(np.argmin(np.abs(gs - g)))
        ax.plot(windows, run_est[i], "o-", label=f"g = {gs[i]:.1f}")
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.set_xlabel("steps after the transient")
    ax.set_ylabel("running estimate of λ_1")
    ax.set_title("Convergence of the QR estimate (seed 0)")
    ax.legend(fontsize=8)
    fig2.tight_layout()

    # Continuous network beside dynamic mean-field theory (mathtext labels, ~900 px wide).
    ct_gs, ct_lam = a["flow_g"], a["flow_lambda_1"]
    big_gs, big_lam = a["flow_large_g"], a["flow_large_lambda_1"]
    ct_mean, big_mean = ct_lam.mean(1), big_lam.mean(1)
    N_ct, N_big = int(config.ct_num_units), int(config.ct_large_num_units)
    curve, spec, mf = a["mean_field_curve"], a["flow_spectrum"], computed.details["mean_field"]
    lam_sum_ct = summ["flow_sum_rule"]["sum_exponents"]
    trace_ct = summ["flow_sum_rule"]["mean_trace_jacobian"]
    fig3, axes3 = plt.subplots(2, 2, figsize=(10, 7.6))
    g_sub = np.linspace(min(0.5, ct_gs.min()), 1.0, 20)
    _theory_and_simulation(
        axes3[0, 0],
        (np.concatenate([g_sub, curve[:, 0]]), np.concatenate([g_sub - 1, curve[:, 1]]),
         r"mean field $\lambda_{\max}(g)$ ($N\to\infty$)"),
        [(ct_gs, ct_mean, ct_lam.std(1), "o", "C0", 5,
          rf"simulated, $N={N_ct}$ (mean $\pm$ sd, {ct_lam.shape[1]} seeds)"),
         (big_gs, big_mean, big_lam.std(1), "s", "C3", 5,
          rf"simulated, $N={N_big}$ ({big_lam.shape[1]} seed(s))")],
        ylabel=r"largest Lyapunov exponent $\lambda_1$ ($1/\tau$)",
        title=r"Rate network $\dot{x} = -x + J\tanh(x)$", legend_loc="upper left")
    ax = axes3[0, 1]
    for j, g in enumerate(big_gs):
        m = mf[float(g)]
        keep = m.tau <= 30
        ax.plot(m.tau[keep], m.autocorrelation[keep], color=f"C{j}",
                label=rf"$g={g:g}$, $\Delta_0={m.delta0:.2f}$")
    ax.set_xlabel(r"lag $\tau$")
    ax.set_ylabel(r"autocorrelation $\Delta(\tau)$")
    ax.set_title("Mean-field autocorrelation (SCS 1988)")
    ax.legend(fontsize=8)
    ax = axes3[1, 0]
    N_sp = spec.shape[0]
    ax.plot(np.arange(1, N_sp + 1) / N_sp, spec, ".-", ms=3, color="C0",
            label=rf"$g={config.ct_spectrum_g:g}$, $N={N_sp}$")
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.set_xlabel(r"$i/N$")
    ax.set_ylabel(r"$\lambda_i$ ($1/\tau$)")
    ax.set_title(rf"Full spectrum: $\sum_i\lambda_i = {lam_sum_ct:.2f}$, "
                 rf"$\langle\mathrm{{tr}}\,\partial F/\partial x\rangle = {trace_ct:.2f}$")
    ax.legend(fontsize=8)
    g_dense, mf_dense = a["discrete_mean_field_dense"].T
    _theory_and_simulation(
        axes3[1, 1],
        (g_dense, mf_dense,
         r"mean field $\frac{1}{2}\log(g^2\langle\phi'(h)^2\rangle_{q^*})$"),
        [(gs, lam1_mean, lam1.std(1), "o", "C0", 4,
          rf"simulated, $N={N}$ (mean $\pm$ sd, {lam1.shape[1]} seeds)")],
        ylabel=r"$\lambda_1$ (per step)", title=r"Discrete network $h \leftarrow J\tanh(h)$")
    fig3.tight_layout()

    # Phase diagram: λ_1 over (σ_b², g), the mean field's λ_1 = 0 line drawn on it.
    ph_b2, ph_g, ph_lam = a["phase_sigma_b2"], a["phase_g"], a["phase_lambda_1"]
    phase_agreement = summ["phase_agreement"]
    line_b2, line_g = a["phase_critical_line"].T
    fig4, ax = plt.subplots(figsize=(6.4, 4.8))
    span = float(np.max(np.abs(ph_lam)))
    mesh = ax.pcolormesh(ph_b2, ph_g, ph_lam.T, shading="nearest", cmap="RdBu_r",
                         vmin=-span, vmax=span)
    fig4.colorbar(mesh, ax=ax, label=r"measured $\lambda_1$ per step (red: chaotic)")
    ax.contour(ph_b2, ph_g, ph_lam.T, levels=[0.0], colors="k", linewidths=1.2,
               linestyles="--")
    ax.plot([], [], "k--", lw=1.2, label=r"measured $\lambda_1 = 0$ (contour of the grid)")
    ax.plot(line_b2, line_g, "-", color="gold", lw=2.2,
            label=r"mean field $\lambda_1 = 0$: $g^2 = \sigma_{w,c}^2(\sigma_b^2)$")
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlim(0, float(ph_b2[-1]))
    ax.set_xlabel("σ_b² (bias variance; symmetric log scale, linear below 0.01)")
    ax.set_ylabel("gain g")
    ax.set_title(rf"Chaos in $h \leftarrow J\tanh(h) + b$, $N = {config.phase_num_units}$"
                 f"\n({len(ph_b2)} × {len(ph_g)} grid by jaxgrad.sweep, "
                 f"{config.phase_num_seeds} network(s) per point; "
                 f"{100 * phase_agreement:.0f}% on the mean field's side)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", facecolor="0.9")
    fig4.tight_layout()

    return {"lyapunov_vs_gain": fig, "convergence": fig2, "continuous_mean_field": fig3,
            "phase_diagram": fig4}


def run(config: Config) -> Result:
    """``compute``, then ``checks`` and ``figures`` on its numbers."""
    return staged_run(config, compute, checks, figures)
