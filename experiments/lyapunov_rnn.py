"""Lyapunov spectrum of the discrete random rate network h ← J tanh(h) against the gain g.

For ``J_ij ~ N(0, g²/N)`` the origin is stable for g < 1 and then λ_1 = log ρ(J) exactly
(the trajectory decays to 0, where the step Jacobian is J). Dynamic mean-field theory for
the discrete-time network (Molgedey, Schuchhardt & Schuster 1992, PRL 69:3717; Engelken,
Wolf & Abbott 2020, arXiv:2006.02427) predicts the transition to chaos at g = 1 with

    λ_1 = ½ log(g² ⟨tanh'(h)²⟩),   h ~ N(0, Δ),   Δ = g² ⟨tanh(h)²⟩.

The experiment computes the full spectrum with the Benettin/QR method for a g-sweep (one
vmapped call), and checks: λ_1 = log ρ(J) at g = 0.5; the zero crossing of λ_1 near g = 1;
λ_1 against the mean-field value at large g; the sum rule Σλ_i = ⟨log|det D_t|⟩; and the
linear-map closed form λ_i = log|eig_i(A)|.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jaxgrad

from ._runner import Result, check_bound, check_close

NAME = "lyapunov-rnn"
DESCRIPTION = ("λ_1 and Kaplan–Yorke dimension of the discrete rate network against g: "
               "chaos sets in near g = 1; sum rule and linear-map checks.")
DEFAULT_CONFIG = {
    "num_units": 200,
    "g_values": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2.0],
    "num_seeds": 2,
    "num_steps": 1000,
    "transient": 200,
    "crossing_threshold": 0.01,
    "mean_field_g": 2.0,
    "sum_rule_g": 1.5,
    "seed": 0,
}
QUICK_CONFIG = {"num_steps": 300, "transient": 100,
                "g_values": [0.5, 0.8, 0.9, 1.0, 1.1, 1.2, 1.5, 2.0]}


def mean_field_lambda_1(g: float, num_nodes: int = 101, iterations: int = 3000) -> float:
    """λ_1 = ½ log(g² ⟨tanh'(h)²⟩) with Δ = g² ⟨tanh(h)²⟩ (Gauss–Hermite quadrature)."""
    z, w = np.polynomial.hermite_e.hermegauss(num_nodes)
    w = w / w.sum()
    delta = 1.0
    for _ in range(iterations):
        delta = g * g * float(np.sum(w * np.tanh(np.sqrt(delta) * z) ** 2))
    slope = 1.0 - np.tanh(np.sqrt(delta) * z) ** 2
    return 0.5 * float(np.log(g * g * np.sum(w * slope**2)))


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


def run(config: dict) -> Result:
    N = int(config["num_units"])
    T, transient = int(config["num_steps"]), int(config["transient"])
    gs = np.asarray(config["g_values"], dtype=np.float32)
    seeds = np.arange(int(config["num_seeds"]))
    key = jax.random.key(int(config["seed"]))

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
    from tqdm.auto import tqdm

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

    checks = []
    i_low = int(np.argmin(np.abs(gs - 0.5)))
    checks.append(check_close(
        f"λ_1 at g={gs[i_low]:.2f} vs log ρ(J) (stable origin, closed form)",
        np.max(np.abs(lam1[i_low] - log_rho[i_low])), 0.0, atol=0.01,
        note="largest |λ_1 - log ρ(J)| over seeds"))
    checks.append(check_bound(f"λ_1 at g={gs[i_low]:.2f}", lam1[i_low].max(), 0.0, kind="<="))
    i_high = int(np.argmin(np.abs(gs - 1.5)))
    checks.append(check_bound(f"λ_1 at g={gs[i_high]:.2f} (seed mean)", lam1_mean[i_high], 0.0,
                              kind=">="))
    level = -float(config["crossing_threshold"])
    g_cross = _crossing(gs, lam1_mean, level)
    checks.append(check_close(
        "g where λ_1 reaches 0 (to within the threshold)", g_cross, 1.0, atol=0.15,
        note=f"first g with seed-mean λ_1 >= {level}; mean-field transition at g = 1 "
             "(Molgedey et al. 1992)"))
    g_mf = float(config["mean_field_g"])
    i_mf = int(np.argmin(np.abs(gs - g_mf)))
    lam_mf = mean_field_lambda_1(float(gs[i_mf]))
    checks.append(check_close(f"λ_1 at g={gs[i_mf]:.2f} vs dynamic mean-field theory",
                              lam1_mean[i_mf], lam_mf, rtol=0.2,
                              note="finite N and T; mean field is the N → ∞ limit"))
    checks.append(check_bound("D_KY/N at the smallest g", dky[0].max(), 0.0, kind="<="))

    # Sum rule on one trajectory: Σ λ_i = mean over the same steps of log|det D_t|.
    g_sum = float(config["sum_rule_g"])
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
    checks.append(check_close(f"Σ λ_i at g={g_sum} vs mean log|det D_t|", lam_sum,
                              log_det_mean, rtol=1e-3, note="sum rule, exact up to rounding"))

    # Linear map: λ_i = log|eig_i(A)| for a symmetric A with distinct |eigenvalues|.
    eig = np.array([1.25, -1.1, 0.9, -0.7, 0.5, 0.3, -0.2, 0.1], dtype=np.float32)
    V, _ = jnp.linalg.qr(jax.random.normal(jax.random.fold_in(key, 99), (8, 8)))
    A = V @ jnp.diag(jnp.asarray(eig)) @ V.T
    lin = jaxgrad.lyapunov_spectrum(lambda x, u: A @ x, jnp.ones(8), num_steps=600,
                                    transient=200)
    lin_err = float(np.max(np.abs(np.asarray(lin.exponents) - np.log(np.abs(eig)))))
    checks.append(check_close("linear map: max |λ_i - log|eig_i(A)||", lin_err, 0.0,
                              atol=1e-4))
    checks.append(check_bound("every log|R_ii| finite (1 = yes)", float(finite), 1.0,
                              kind=">="))

    # Figures.
    g_fine = np.linspace(1.0, float(gs.max()), 60)
    mf_curve = [mean_field_lambda_1(float(g)) for g in g_fine]
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
    run_est = np.asarray(res.running_exponents)[:, 0, :, 0]  # (G, W)
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

    summary = {
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
    }
    arrays = {"g": gs, "exponents": exps, "kaplan_yorke_fraction": dky,
              "log_spectral_radius": log_rho, "running_lambda_1": run_est}
    return Result(summary=summary, checks=checks, arrays=arrays,
                  figures={"lyapunov_vs_gain": fig, "convergence": fig2})
