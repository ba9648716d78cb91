"""Signal propagation in deep random tanh networks: the order-to-chaos line and trainable depth.

Mean-field theory (Poole et al. 2016; Schoenholz et al. 2017) by Gauss–Hermite quadrature,
against random MLPs:

1. the critical line ``χ₁(σ_w², σ_b²) = 1`` for tanh (``σ_w² = 1`` exactly at ``σ_b² = 0``;
   ReLU's single critical point ``σ_w² = 2``), and the empirical line where the measured
   growth of a ``jax.jvp`` tangent per layer crosses 1 on a ``σ_w²`` grid; the measured
   ``χ₁`` over the whole ``(σ_b², σ_w²)`` grid, computed by ``jaxgrad.sweep`` (chunked,
   sharded over devices), is drawn as the phase diagram of Poole et al. (2016, Fig. 2)
   with the theory's line on it; ``phase_agreement`` is the fraction of grid points on the
   theory's side of ``χ₁ = 1`` (points within 5% of the line left out);
2. per-layer ``q^l`` and ``c^l`` of two inputs against the q- and c-maps;
3. the correlation depth scale ``ξ_c`` against ``σ_w²`` (it diverges on the critical line);
4. tanh MLPs of several depths trained briefly (SGD with momentum) on sklearn's digits at
   ordered, critical and chaotic ``σ_w²`` (``σ_b² = 0.05``): Schoenholz et al. train up to
   about ``6 ξ_c``; deeper ordered networks stay at chance.
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

from ._runner import Check, Computed, Result, check_bound, check_close, staged_run

NAME = "signal-propagation"
DESCRIPTION = ("Mean-field signal propagation in random tanh MLPs: the order-to-chaos critical "
               "line, q/c maps against random networks, ξ_c, and trainable depth vs ξ_c.")
SUMMARY_SIGMA_B2 = [0.0, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0]
@dataclasses.dataclass(frozen=True)
class Config:
    """The experiment's parameters."""

    seed: int = 0
    # theory
    num_points: int = 200  # Gauss–Hermite nodes of every mean-field integral
    line_sigma_b2_max: float = 2.0  # the critical line over σ_b² in [0, line_sigma_b2_max]
    line_points: int = 41
    xi_points: int = 120  # σ_w² points of the depth scales ξ_c, ξ_q
    # empirical critical line: random MLPs on a σ_w² grid at each summary σ_b²
    empirical_sigma_w2_min: float = 0.5
    empirical_sigma_w2_max: float = 5.5
    empirical_sigma_w2_points: int = 26
    empirical_width: int = 1000
    empirical_depth: int = 50
    empirical_burn_in: int = 15  # layers before χ₁ is measured
    empirical_networks: int = 2  # random networks averaged per grid point
    # per-layer q^l and c^l at σ_b² = 0.05
    layers_sigma_w2: tuple[float, ...] = (1.0, 1.76, 4.0)
    layers_sigma_b2: float = 0.05
    layers_width: int = 1000
    layers_depth: int = 30
    layers_networks: int = 4
    q0: float = 2.0  # input length q⁰ and correlation c⁰ of the two inputs
    c0: float = 0.3
    # trainability on sklearn digits
    train_sigma_b2: float = 0.05
    train_sigma_w2: tuple[float, ...] = (0.5, 1.0, 1.76, 4.0)
    train_depths: tuple[int, ...] = (2, 4, 8, 16, 32)
    train_width: int = 64
    train_steps: int = 300  # SGD (momentum) steps
    train_batch: int = 128
    train_learning_rate: float = 0.01
    train_momentum: float = 0.9


QUICK_CONFIG = {
    "line_points": 11,
    "xi_points": 30,
    "empirical_sigma_w2_points": 14,
    "empirical_width": 400,
    "empirical_depth": 35,
    "empirical_burn_in": 10,
    "empirical_networks": 1,
    "layers_width": 500,
    "layers_depth": 20,
    "layers_networks": 4,
    "train_sigma_w2": [0.5, 1.76],
    "train_depths": [4, 16],
    "train_steps": 100,
    "train_batch": 64,
}
SUMMARY_KEYS = (
    "critical_sigma_w2", "empirical_critical_sigma_w2", "critical_q_star",
    "relu_critical_sigma_w2", "critical_sigma_w2_fine_at_2", "max_abs_chi_1_minus_1_at_critical",
    "chi_1_median_relative_error", "phase_agreement", "layers_rms_relative_error_q",
    "layers_rms_abs_error_c", "train_sigma_w2", "train_xi_c", "train_depths",
    "train_test_accuracy")

#: A test accuracy at or above this counts as trained, below it as not (chance is 0.1; shallow
#: networks reach > 0.9).
TRAINED = 0.5


def _phase_diagram(config, sigma_w2, sigma_b2, key, num_points):
    """Measured and mean-field ``χ₁`` over the grid ``sigma_b2 × sigma_w2``, by ``jaxgrad.sweep``.

    Measured: the mean per-layer squared growth of a ``jax.jvp`` tangent after the burn-in,
    averaged over ``empirical_networks`` random MLPs; every grid point uses the same keys
    (common random numbers: the same standard-normal weights, rescaled). Returns the two
    ``(len(sigma_b2), len(sigma_w2))`` arrays.
    """
    width, depth, burn = (config.empirical_width, config.empirical_depth,
                          config.empirical_burn_in)
    keys = jax.random.split(key, config.empirical_networks)

    def point(p):
        w2, b2 = p["sigma_w2"], p["sigma_b2"]
        measured = jax.vmap(lambda k: jnp.mean(jnp.exp(jaxgrad.analysis.random_mlp_signal(
            w2, b2, key=k, width=width, depth=depth).log_chi[burn:])))(keys)
        return {"measured": jnp.mean(measured),
                "theory": jaxgrad.chi_1(w2, b2, num_points=num_points)}

    # A block of points draws one width × width matrix per point and layer: 32 points keep
    # that under ~130 MB at width 1000.
    grid = jaxgrad.sweep(point, {"sigma_b2": np.asarray(sigma_b2, np.float32),
                                 "sigma_w2": np.asarray(sigma_w2, np.float32)},
                         block_size=32, progress=False)
    if not np.all(grid.finite):
        raise FloatingPointError("non-finite χ₁ in the phase diagram at (σ_b², σ_w²) = "
                                 f"{grid.nonfinite_points[:5].tolist()}")
    return np.asarray(grid.values["measured"]), np.asarray(grid.values["theory"])


def _first_crossing(x, y):
    """First ``x`` where ``y`` crosses 1 upwards, by linear interpolation (NaN if none)."""
    above = np.nonzero(y >= 1)[0]
    if above.size == 0 or above[0] == 0:
        return float("nan")
    i = above[0]
    return float(x[i - 1] + (1 - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1]))


# ----------------------------------------------------------------------------- training


def _digits(seed):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    perm = np.random.default_rng(seed).permutation(len(X))
    n_train = 1300
    tr, te = perm[:n_train], perm[n_train:]
    as_x = functools.partial(jnp.asarray, dtype=jnp.float32)
    return as_x(X[tr]), jnp.asarray(y[tr]), as_x(X[te]), jnp.asarray(y[te])


def _init(key, sigma_w2, sigma_b2, in_dim, width, max_depth):
    """W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²) for the hidden layers; a N(0, 1/N) readout."""
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    return {
        "W1": jnp.sqrt(sigma_w2 / in_dim) * jax.random.normal(k1, (in_dim, width)),
        "b1": jnp.sqrt(sigma_b2) * jax.random.normal(k2, (width,)),
        "Wh": jnp.sqrt(sigma_w2 / width) * jax.random.normal(k3, (max_depth - 1, width, width)),
        "bh": jnp.sqrt(sigma_b2) * jax.random.normal(k4, (max_depth - 1, width)),
        "Wo": jax.random.normal(k5, (width, 10)) / jnp.sqrt(float(width)),
        "bo": jnp.zeros((10,)),
    }


def _apply(params, x, depth):
    """A tanh MLP with ``depth`` hidden layers; stacked layers past ``depth`` are skipped."""
    h = jnp.tanh(x @ params["W1"] + params["b1"][None])

    def layer(h, xs):
        W, b, index = xs
        return jnp.where(index < depth, jnp.tanh(h @ W + b[None]), h), None

    n_hidden = params["Wh"].shape[0]
    h, _ = jax.lax.scan(layer, h, (params["Wh"], params["bh"], jnp.arange(1, n_hidden + 1)))
    return h @ params["Wo"] + params["bo"][None]


def _train_accuracies(config, key):
    """Test accuracy after training, ``(len(train_sigma_w2), len(train_depths))``."""
    X_tr, y_tr, X_te, y_te = _digits(config.seed)
    sigma_b2 = config.train_sigma_b2
    max_depth = max(config.train_depths)
    width, steps, batch = config.train_width, config.train_steps, config.train_batch
    opt = optax.sgd(config.train_learning_rate, momentum=config.train_momentum)

    def loss(params, x, y, depth):
        logits = _apply(params, x, depth)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    def train(sigma_w2, depth):
        k_init, k_data = jax.random.split(key)
        params = _init(k_init, sigma_w2, sigma_b2, X_tr.shape[1], width, max_depth)

        def minibatch_loss(params, k):
            idx = jax.random.randint(k, (batch,), 0, X_tr.shape[0])
            return loss(params, X_tr[idx], y_tr[idx], depth)

        state, _ = jaxgrad.train_steps(
            minibatch_loss, opt, jaxgrad.init_train_state(params, opt),
            jaxgrad.train.fixed_batches(jax.random.split(k_data, steps)), num_steps=steps)
        return jnp.mean(jnp.argmax(_apply(state.params, X_te, depth), -1) == y_te)

    w2 = jnp.asarray(config.train_sigma_w2, jnp.float32)
    depths = jnp.asarray(config.train_depths)
    grid = jax.vmap(lambda a: jax.vmap(lambda d: train(a, d))(depths))
    return np.asarray(jax.jit(grid)(w2))


# ----------------------------------------------------------------------------- run


def compute(config: Config) -> Computed:
    """The critical line (theory and random MLPs), per-layer maps, depth scales, training."""
    key = jax.random.key(config.seed)
    k_emp, k_layers, k_train = jax.random.split(key, 3)
    n = config.num_points
    critical = jax.jit(jax.vmap(lambda b2: jaxgrad.analysis.critical_sigma_w2(b2, num_points=n)))

    # 1. theory: the critical line and its cross-checks
    b2_summary = jnp.asarray(SUMMARY_SIGMA_B2, jnp.float32)
    b2_line = np.linspace(0.0, config.line_sigma_b2_max, config.line_points)
    b2_xi = [0.01, config.train_sigma_b2, 0.5]
    # the line again, evenly spaced on the phase diagram's logarithmic σ_b² axis
    b2_phase = np.concatenate([[0.0], np.geomspace(1e-3, SUMMARY_SIGMA_B2[-1], 40)])
    k1, k2 = len(SUMMARY_SIGMA_B2), len(SUMMARY_SIGMA_B2) + len(b2_line)
    k3 = k2 + len(b2_xi)
    everything = critical(jnp.asarray(np.concatenate(
        [SUMMARY_SIGMA_B2, b2_line, b2_xi, b2_phase]), jnp.float32))  # one compilation
    crit = jax.tree.map(lambda a: a[:k1], everything)
    crit_w2 = np.asarray(crit.sigma_w2)
    line_w2 = np.asarray(everything.sigma_w2[k1:k2])
    xi_crit_w2 = np.asarray(everything.sigma_w2[k2:k3])
    phase_line_w2 = np.asarray(everything.sigma_w2[k3:])
    # χ₁ at the critical points by the other route: q* by iterating the q-map, then χ₁.
    chi_at_crit = np.asarray(jax.vmap(lambda w2, b2: jaxgrad.chi_1(w2, b2, num_points=n))(
        crit.sigma_w2, b2_summary))
    crit_fine = jaxgrad.analysis.critical_sigma_w2(2.0, num_points=2 * n).sigma_w2
    relu_crit = jaxgrad.analysis.critical_sigma_w2(0.0, activation="relu").sigma_w2

    # 2. empirical critical line
    w2_grid = np.linspace(config.empirical_sigma_w2_min, config.empirical_sigma_w2_max,
                          config.empirical_sigma_w2_points)
    chi_hat, chi_theory = _phase_diagram(config, w2_grid, SUMMARY_SIGMA_B2, k_emp, n)
    # Phase agreement: the fraction of grid points on the same side of χ₁ = 1 by
    # measurement and by theory, outside a ±5% band around the line (finite-N noise).
    clear = np.abs(np.log(chi_theory)) > np.log(1.05)
    phase_agreement = float(np.mean((chi_hat[clear] > 1) == (chi_theory[clear] > 1)))
    emp_w2 = np.array([_first_crossing(w2_grid, row) for row in chi_hat])

    # 3. per-layer q^l, c^l at σ_b² = 0.05
    b2_layers = config.layers_sigma_b2
    w2_layers = jnp.asarray(config.layers_sigma_w2, jnp.float32)
    depth_l = config.layers_depth
    emp_layers = jax.vmap(lambda k: jax.vmap(lambda w2: jaxgrad.analysis.random_mlp_signal(
        w2, b2_layers, key=k, width=config.layers_width, depth=depth_l, q0=config.q0,
        c0=config.c0))(w2_layers))(jax.random.split(k_layers, config.layers_networks))
    emp_q = np.asarray(emp_layers.q).mean(0)
    emp_c = np.asarray(emp_layers.c).mean(0)
    theory = jax.vmap(lambda w2: jaxgrad.analysis.mean_field_trajectory(
        config.q0, config.c0, w2, b2_layers, depth=depth_l, num_points=n))(w2_layers)
    th_q, th_c = np.asarray(theory.q), np.asarray(theory.c)
    # Finite-width fluctuations are O(1/√N) per layer: compare root-mean-square errors.
    q_rel_err = float(np.sqrt(np.mean((emp_q / th_q - 1) ** 2)))
    c_abs_err = float(np.sqrt(np.mean((emp_c - th_c) ** 2)))

    # 4. ξ_c against σ_w² (theory)
    # (the trained networks' σ_w² ride along, so depth_scales compiles once)
    w2_xi = np.linspace(0.3, 5.0, config.xi_points)
    train_w2 = np.asarray(config.train_sigma_w2, float)
    scales = jax.vmap(lambda b2: jax.vmap(lambda w2: jaxgrad.analysis.depth_scales(w2, b2,
                                                                                   num_points=n))(
        jnp.asarray(np.concatenate([w2_xi, train_w2]), jnp.float32)))(
        jnp.asarray(b2_xi, jnp.float32))
    xi_train = np.asarray(scales.xi_c[1, len(w2_xi):])
    scales = jax.tree.map(lambda a: a[:, :len(w2_xi)], scales)

    # 5. trainability
    depths = np.asarray(config.train_depths)
    acc = _train_accuracies(config, k_train)

    summary = {
        "critical_sigma_w2": [{"sigma_b2": float(b), "sigma_w2": float(w)}
                              for b, w in zip(SUMMARY_SIGMA_B2, crit_w2, strict=True)],
        "empirical_critical_sigma_w2": [{"sigma_b2": float(b), "sigma_w2": float(w)}
                                        for b, w in zip(SUMMARY_SIGMA_B2, emp_w2, strict=True)],
        "critical_q_star": [float(q) for q in np.asarray(crit.q_star)],
        "relu_critical_sigma_w2": float(relu_crit),
        "phase_agreement": phase_agreement,
        "layers_rms_relative_error_q": q_rel_err,
        "layers_rms_abs_error_c": c_abs_err,
        "train_sigma_w2": train_w2.tolist(),
        "train_xi_c": xi_train.tolist(),
        "train_depths": depths.tolist(),
        "train_test_accuracy": acc.tolist(),
        "critical_sigma_w2_fine_at_2": float(crit_fine),
        "max_abs_chi_1_minus_1_at_critical": float(np.max(np.abs(chi_at_crit - 1))),
        "chi_1_median_relative_error": float(np.median(np.abs(chi_hat / chi_theory - 1))),
    }
    arrays = {
        "line_sigma_b2": b2_line, "line_sigma_w2": line_w2,
        "summary_sigma_b2": np.asarray(SUMMARY_SIGMA_B2), "critical_sigma_w2": crit_w2,
        "empirical_sigma_w2_grid": w2_grid, "empirical_chi_1": chi_hat,
        "theory_chi_1": chi_theory, "empirical_critical_sigma_w2": emp_w2,
        "layers_q_empirical": emp_q, "layers_q_theory": th_q,
        "layers_c_empirical": emp_c, "layers_c_theory": th_c,
        "xi_sigma_w2": w2_xi, "xi_c": np.asarray(scales.xi_c), "xi_q": np.asarray(scales.xi_q),
        "train_accuracy": acc, "train_xi_c": xi_train,
        "xi_sigma_b2": np.asarray(b2_xi), "xi_critical_sigma_w2": xi_crit_w2,
        "phase_line_sigma_b2": b2_phase, "phase_line_sigma_w2": phase_line_w2,
    }
    return Computed(summary=summary, arrays=arrays)


def checks(config: Config, computed: Computed) -> list[Check]:
    """The critical line's closed forms and cross-checks, random MLPs against the maps, and
    trainable depth against ξ_c."""
    s, a = computed.summary, computed.arrays
    n = config.num_points
    crit_w2, line_w2, emp_w2 = (a["critical_sigma_w2"], a["line_sigma_w2"],
                                a["empirical_critical_sigma_w2"])
    train_w2, xi_train = np.asarray(s["train_sigma_w2"]), a["train_xi_c"]
    depths, acc = np.asarray(s["train_depths"]), a["train_accuracy"]
    out = [
        check_close("tanh critical σ_w² at σ_b² = 0 (q* = 0, χ₁ = σ_w²)", crit_w2[0], 1.0,
                    rtol=1e-5),
        check_close("ReLU critical σ_w² at σ_b² = 0 (χ₁ = σ_w²/2)",
                    s["relu_critical_sigma_w2"], 2.0, rtol=1e-5),
        check_close("max |χ₁ - 1| at the critical points, χ₁ via iterated q*",
                    s["max_abs_chi_1_minus_1_at_critical"], 0.0, atol=1e-3),
        check_close(f"critical σ_w² at σ_b² = 2: {n} vs {2 * n} Gauss–Hermite nodes",
                    crit_w2[-1], s["critical_sigma_w2_fine_at_2"], rtol=1e-3),
        check_bound("critical σ_w² increases with σ_b² (min successive difference)",
                    np.min(np.diff(line_w2)), 0.0, kind=">="),
        check_close("per-layer q^l of random MLPs vs q-map (RMS relative error)",
                    s["layers_rms_relative_error_q"], 0.0,
                    atol=0.06, note="finite-N fluctuations ~ √(2/N) per layer and network"),
        check_close("per-layer c^l of random MLPs vs c-map (RMS absolute error)",
                    s["layers_rms_abs_error_c"], 0.0,
                    atol=0.06, note="finite-N fluctuations ~ 1/√N per layer and network"),
        check_close("measured χ₁ (jvp growth) vs theory, median relative error over the grid",
                    s["chi_1_median_relative_error"], 0.0, atol=0.05),
        check_bound("phase diagram: grid points on the theory's side of χ₁ = 1 (fraction)",
                    s["phase_agreement"], 0.95, kind=">=",
                    note="points with theory χ₁ within 5% of 1 left out"),
    ]
    for b2, w2_e, w2_t in zip(SUMMARY_SIGMA_B2, emp_w2, crit_w2, strict=True):
        if b2 >= 0.05:
            out.append(check_close(f"empirical critical σ_w² at σ_b² = {b2}", w2_e, w2_t,
                                   rtol=0.15, note="where measured χ₁ crosses 1"))

    i_ordered = int(np.argmin(train_w2))
    xi_o = xi_train[i_ordered]
    trained_o = depths[acc[i_ordered] >= TRAINED]
    failed_o = depths[acc[i_ordered] < TRAINED]
    deepest_trained = float(trained_o.max()) if trained_o.size else float("nan")
    shallowest_failed = float(failed_o.min()) if failed_o.size else float("nan")
    out += [
        check_bound(f"ordered σ_w² = {train_w2[i_ordered]}: deepest trained depth / ξ_c",
                    deepest_trained / xi_o, 2.0, kind=">=",
                    note=f"ξ_c = {xi_o:.3g}; test accuracy >= {TRAINED}; published ≈ 6"),
        check_bound(f"ordered σ_w² = {train_w2[i_ordered]}: shallowest untrained depth / ξ_c",
                    shallowest_failed / xi_o, 15.0,
                    note=f"test accuracy < {TRAINED} (chance 0.1); published ≈ 6"),
    ]
    i_crit = int(np.argmin(np.abs(train_w2 - crit_w2[SUMMARY_SIGMA_B2.index(0.05)])))
    out.append(check_bound(f"near-critical σ_w² = {train_w2[i_crit]}: test accuracy at "
                           f"depth {depths.max()}", acc[i_crit, -1], TRAINED, kind=">="))
    return out


def figures(config: Config, computed: Computed) -> dict[str, Any]:
    """The critical line, the phase diagram, per-layer maps, depth scales, trainable depth."""
    s, arr = computed.summary, computed.arrays
    b2_line, line_w2 = arr["line_sigma_b2"], arr["line_sigma_w2"]
    emp_w2 = arr["empirical_critical_sigma_w2"]
    relu_crit, phase_agreement = s["relu_critical_sigma_w2"], s["phase_agreement"]
    w2_grid, chi_hat = arr["empirical_sigma_w2_grid"], arr["empirical_chi_1"]
    b2_phase, phase_line_w2 = arr["phase_line_sigma_b2"], arr["phase_line_sigma_w2"]
    th_q, emp_q, th_c, emp_c = (arr["layers_q_theory"], arr["layers_q_empirical"],
                                arr["layers_c_theory"], arr["layers_c_empirical"])
    depth_l, b2_layers = config.layers_depth, config.layers_sigma_b2
    b2_xi, w2_xi, xi_crit_w2 = (arr["xi_sigma_b2"].tolist(), arr["xi_sigma_w2"],
                                arr["xi_critical_sigma_w2"])
    train_w2, xi_train = np.asarray(s["train_sigma_w2"]), arr["train_xi_c"]
    depths, acc = np.asarray(s["train_depths"]), arr["train_accuracy"]
    out = {}
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(b2_line, line_w2, "k-", label="theory: χ₁ = 1 (Gauss–Hermite)")
    ax.plot(SUMMARY_SIGMA_B2, emp_w2, "o", color="C3",
            label=f"random MLPs (N = {config.empirical_width}): measured χ₁ = 1")
    ax.plot([0.0], [float(relu_crit)], "s", color="C2", label="ReLU critical point (σ_w² = 2)")
    ax.fill_between(b2_line, 0, line_w2, color="C0", alpha=0.12, label="ordered (χ₁ < 1)")
    ax.fill_between(b2_line, line_w2, config.empirical_sigma_w2_max, color="C1", alpha=0.12,
                    label="chaotic (χ₁ > 1)")
    ax.set_xlabel("σ_b²")
    ax.set_ylabel("σ_w²")
    ax.set_ylim(0, config.empirical_sigma_w2_max)
    ax.set_title("Order-to-chaos critical line, tanh")
    ax.legend(fontsize=8, loc="upper left")
    out["critical_line"] = fig

    # The phase diagram of Poole et al. (2016, Fig. 2): measured χ₁ over (σ_b², σ_w²), the
    # theory's critical line drawn on the measured χ₁ = 1 contour.
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    log_chi = np.log10(chi_hat)
    span = float(np.max(np.abs(log_chi)))
    mesh = ax.pcolormesh(SUMMARY_SIGMA_B2, w2_grid, log_chi.T, shading="nearest",
                         cmap="RdBu_r", vmin=-span, vmax=span)
    fig.colorbar(mesh, ax=ax, label=r"measured $\log_{10}\chi_1$ (blue: ordered, red: chaotic)")
    ax.contour(SUMMARY_SIGMA_B2, w2_grid, log_chi.T, levels=[0.0], colors="k",
               linewidths=1.2, linestyles="--")
    ax.plot([], [], "k--", lw=1.2, label="measured χ₁ = 1 (contour of the grid)")
    ax.plot(b2_phase, phase_line_w2, "-", color="gold", lw=2.2, label="theory: χ₁ = 1")
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlim(0, SUMMARY_SIGMA_B2[-1])
    ax.set_ylim(w2_grid[0], w2_grid[-1])
    ax.set_xlabel("σ_b² (symmetric log scale, linear below 0.01)")
    ax.set_ylabel("σ_w²")
    ax.set_title(f"Order-to-chaos phase diagram, tanh, N = {config.empirical_width}\n"
                 f"({len(SUMMARY_SIGMA_B2)} × {len(w2_grid)} grid by jaxgrad.sweep; "
                 f"{100 * phase_agreement:.0f}% of points on the theory's side)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", facecolor="0.9")
    out["phase_diagram"] = fig

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    layers = np.arange(1, depth_l + 1)
    for i, w2 in enumerate(config.layers_sigma_w2):
        axes[0].plot(layers, th_q[i], "-", color=f"C{i}", label=f"theory σ_w² = {w2}")
        axes[0].plot(layers, emp_q[i], "o", ms=3, color=f"C{i}", label=f"random MLP σ_w² = {w2}")
        axes[1].plot(layers, th_c[i], "-", color=f"C{i}", label=f"theory σ_w² = {w2}")
        axes[1].plot(layers, emp_c[i], "o", ms=3, color=f"C{i}", label=f"random MLP σ_w² = {w2}")
    axes[0].set_ylabel(r"$q^l$ (mean squared pre-activation)")
    axes[1].set_ylabel(r"$c^l$ (correlation of two inputs)")
    for a in axes:
        a.set_xlabel("layer l")
    axes[0].set_title(f"Length map, σ_b² = {b2_layers}, N = {config.layers_width}",
                      fontsize=10)
    axes[1].set_title(f"Correlation map, q⁰ = {config.q0}, c⁰ = {config.c0}",
                      fontsize=10)
    fig.tight_layout()
    # One legend for both panels (same entries), below them, off the curves.
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=7, ncol=3, loc="upper center",
               bbox_to_anchor=(0.5, 0.0))
    out["layer_statistics"] = fig

    fig, ax = plt.subplots(figsize=(7, 4.8))
    for i, b2 in enumerate(b2_xi):
        # ξ_c diverges at the critical σ_w²: it is drawn on the ordered and on the chaotic
        # side separately, so that no line joins the two sides below the divergence; only
        # finite positive values are drawn (ξ_q stays finite and is one line).
        xi_c = np.asarray(arr["xi_c"][i])
        shown = np.isfinite(xi_c) & (xi_c > 0)
        for k, side in enumerate((w2_xi < xi_crit_w2[i], w2_xi > xi_crit_w2[i])):
            ax.semilogy(w2_xi[shown & side], xi_c[shown & side], "-", color=f"C{i}",
                        label=f"ξ_c, σ_b² = {b2}" if k == 0 else None)
        xi_q = np.asarray(arr["xi_q"][i])
        shown = np.isfinite(xi_q) & (xi_q > 0)
        ax.semilogy(w2_xi[shown], xi_q[shown], ":", color=f"C{i}", label=f"ξ_q, σ_b² = {b2}")
        ax.axvline(xi_crit_w2[i], color=f"C{i}", lw=0.8, ls="--",
                   label=f"critical σ_w² = {xi_crit_w2[i]:.3f} (ξ_c → ∞)")
    ax.set_xlabel("σ_w²")
    ax.set_ylabel("depth scale (layers, log scale)")
    ax.set_title("Depth scales diverge at the critical σ_w² (dashed), tanh", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3)
    out["depth_scales"] = fig

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    for i, w2 in enumerate(train_w2):
        label = f"σ_w² = {w2:g} (ξ_c = {xi_train[i]:.3g})"
        axes[0].plot(depths, acc[i], "o-", label=label)
        ratio = depths / xi_train[i]
        if ratio.max() < 0.1:  # (near-)critical: ξ_c ≫ L, off this scale
            label += ": L/ξ_c < 0.1, off this scale (not drawn)"
        axes[1].plot(ratio, acc[i], "o-", label=label)
    axes[1].axvline(6, color="k", ls="--", lw=0.8, label="6 ξ_c (Schoenholz et al.)")
    axes[1].set_xlim(0.1, None)
    for a in axes:
        a.axhline(0.1, color="gray", ls=":", lw=0.8, label="chance")
        a.set_xscale("log")
        a.set_ylabel("test accuracy")
        a.legend(fontsize=7)
    axes[0].set_xticks(depths, [str(d) for d in depths])
    axes[0].minorticks_off()
    axes[0].set_xlabel("depth L")
    axes[1].set_xlabel("L / ξ_c")
    axes[0].set_title(f"tanh MLPs on digits, {config.train_steps} SGD steps,\n"
                      f"σ_b² = {config.train_sigma_b2}", fontsize=10)
    axes[1].set_title("Trainable up to a few ξ_c", fontsize=10)
    fig.tight_layout()
    out["trainable_depth"] = fig

    return out


def run(config: Config) -> Result:
    """``compute``, then ``checks`` and ``figures`` on its numbers."""
    return staged_run(config, compute, checks, figures)
