"""Gradient magnitude per layer of a deep MLP (the web article
"Deep Learning: Vanishing Gradient Problem Explained"), against mean-field theory.

The article's network: ``depth = 10`` sigmoid layers of width ``N = 100``, weights
N(0, 0.01²), no bias, a batch of 32 N(0, 1) inputs, and a cotangent of ones at the output
(``loss="sum"``). Its "average gradient magnitude" of layer ``l`` is ``mean |∂L/∂z_l|``
(``MLPGradientFlow.mean_abs_preactivation_grads``). The same depth is run with tanh +
Xavier, ReLU + He, sigmoid + Kumar, sigmoid + Yilmaz–Poli (and its zero-mean control
N(0, 1/N)), and ReLU + He with residual connections and batch normalisation.

References the checks use:

- Linear regime (the article's weights): pre-activations have variance ``≈ N·0.01²·¼`` so
  ``σ'(z) ≈ 1/4`` and one backward layer multiplies the cotangent by ``W_lᵀ`` with
  N(0, 0.01²) entries, i.e. by ``0.01·√N`` in norm: the per-layer factor is
  ``(1/4)·0.01·√N = 0.025`` (log −3.689).
- Mean-field theory (Poole et al. 2016; Schoenholz et al. 2017) for zero-mean weights
  of variance ``σ_w²/N``: forward ``q_1 = σ_w² E[x²]``, ``q_l = σ_w² E[φ(z)²]``,
  ``z ~ N(0, q_{l-1})``; backward, with the gradient-independence assumption, the
  cotangent ``∂L/∂h_l`` is N(0, v_l) with ``v_{L-1} = σ_w² E[φ'(z_L)²]`` and
  ``v_{l-1} = σ_w² E[φ'(z_l)²] v_l``, so ``mean |∂L/∂z_l| = √(2 v_l/π) E|φ'(z_l)|``
  (``E|φ'(z_L)|`` at the last layer, where the cotangent is exactly one). One layer
  multiplies ``‖∂L/∂z‖²`` by ``σ_w²/N · Σ_i φ'_i² ξ_i²`` (ξ standard normal), whose
  relative variance ``(3E[φ'⁴] − E[φ'²]²)/(N E[φ'²]²)`` gives the spread of the log
  ratio (``1/(2N)`` per layer for a linear layer, ``5/(4N)`` for ReLU, Hanin 2018).
- Positively homogeneous networks (ReLU, no bias) violate the independence assumption
  under the sum loss: Euler's theorem gives ``⟨∂L/∂h_l, h_l⟩ = L`` at every layer, a
  coherent component that mean-field theory ignores. ReLU + He therefore gets a bound
  (within two decades of 1) under the sum loss, and its mean-field comparison is made
  with a random ±1 cotangent ``L = Σ output ⊙ s`` instead, for which the predicted
  profile is the same and the coherent component averages out.

The article's NumPy listing evaluates ``sigmoid_derivative`` at the layer *output* σ(z) ≈ 0.5,
i.e. ``σ'(0.5) = 0.235`` per layer instead of ``σ'(z) ≈ 0.25``; the library uses the
derivative at the pre-activation. Both variants of the listing are ported to NumPy
below; the corrected one must agree with ``jaxgrad.mlp_gradient_flow``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import matplotlib.pyplot as plt
import numpy as np

import jaxgrad

from ._mean_field import activation_moments
from ._runner import Check, Computed, Result, check_bound, check_close, staged_run

NAME = "mlp-depth-gradients"
DESCRIPTION = (
    "The 10-layer sigmoid MLP of the web article \"Vanishing Gradient Problem Explained\" "
    "(N(0, 0.01²) weights): mean |∂L/∂z_l| per layer on a "
    "log scale, beside tanh+Xavier, ReLU+He, Kumar, Yilmaz–Poli and residual+batch norm, "
    "checked against the linear-regime factor (1/4)·0.01·√N and mean-field theory."
)


@dataclasses.dataclass(frozen=True)
class Config:
    """The experiment's parameters."""

    depth: int = 10  # layers of every MLP
    width: int = 100  # units per layer (square layers: the input has this width too)
    batch: int = 32  # random N(0, 1) inputs
    seed: int = 0
    configurations: tuple[str, ...] = (
        "sigmoid_normal",
        "tanh_xavier",
        "relu_he",
        "sigmoid_kumar",
        "sigmoid_lecun",
        "sigmoid_yilmaz_poli",
        "relu_he_residual_batchnorm",
    )
    quadrature_nodes: int = 200  # Gauss–Hermite nodes of the mean-field moments
    num_sigmas: float = 4.0  # the checks' tolerance in finite-width standard deviations


QUICK_CONFIG = {
    "quadrature_nodes": 100,
    "configurations": ["sigmoid_normal", "tanh_xavier", "relu_he", "sigmoid_yilmaz_poli",
                       "relu_he_residual_batchnorm"],
}
SUMMARY_KEYS = (
    "first_to_last_ratio", "weight_first_to_last_ratio", "mean_field_first_to_last_ratio",
    "mean_field_log_ratio_std", "mean_field_checked",
    "random_sign_cotangent_first_to_last_ratio", "per_layer_log_factor",
    "seed_listing_max_relative_deviation", "seed_listing_first_to_last_ratio",
    "nonfinite_configurations")

SEED_STD = 0.01  # the article's listing: np.random.randn(N, N) * 0.01
SEED_CLAIM_RATIO = 1e-6  # the article: "a 10-layer sigmoid network can reduce gradients by 1e-6"
BOUND_DECADES = 2.0  # "within a few orders of magnitude of 1" for the non-vanishing remedies


class Setup(NamedTuple):
    """One configuration: a label, its ``MLPConfig`` and the mean-field weight variance.

    ``weight_var`` is ``σ_w² = fan_in · Var(W)`` for zero-mean weights and ``None`` where
    mean-field theory as used here does not apply (non-zero mean, residual, norm).
    ``mean_field_checked`` says whether the profile is compared with it.
    """

    label: str
    config: jaxgrad.MLPConfig
    weight_var: float | None
    mean_field_checked: bool


def make_setup(name: str, width: int, depth: int) -> Setup:
    """The ``Setup`` called ``name`` for a square network of this width and depth."""
    common = {"in_dim": width, "width": width, "depth": depth}
    lecun_std = 1.0 / math.sqrt(width)
    table = {
        "sigmoid_normal": ("sigmoid, N(0, 0.01²) (web article)",
                           {"activation": "sigmoid", "init": "normal",
                            "init_options": (("std", SEED_STD),)},
                           width * SEED_STD**2, True),
        # Xavier: Var = 2/(fan_in + fan_out) = 1/N for a square layer.
        "tanh_xavier": ("tanh, Xavier", {"activation": "tanh", "init": "xavier"}, 1.0, True),
        "relu_he": ("ReLU, He", {"activation": "relu", "init": "he"}, 2.0, False),
        "sigmoid_kumar": ("sigmoid, Kumar N(0, 3.6²/N)",
                          {"activation": "sigmoid", "init": "kumar"}, 3.6**2, True),
        "sigmoid_lecun": ("sigmoid, N(0, 1/N) (zero-mean control)",
                          {"activation": "sigmoid", "init": "normal",
                           "init_options": (("std", lecun_std),)}, 1.0, True),
        "sigmoid_yilmaz_poli": ("sigmoid, Yilmaz–Poli N(-8/N, 1/N)",
                                {"activation": "sigmoid", "init": "yilmaz_poli"}, None, False),
        "relu_he_residual_batchnorm": ("ReLU, He, residual + batch norm",
                                       {"activation": "relu", "init": "he", "residual": True,
                                        "norm": "batch"}, None, False),
    }
    if name not in table:
        raise ValueError(f"unknown configuration {name!r}; known: {sorted(table)}")
    label, options, weight_var, checked = table[name]
    return Setup(label, jaxgrad.MLPConfig(**common, **options), weight_var, checked)


# --------------------------------------------------------------------------- theory


class MeanFieldProfile(NamedTuple):
    """Mean-field prediction for a plain MLP with a cotangent of ones at the output.

    Attributes:
        mean_abs_preactivation_grads: predicted ``mean |∂L/∂z_l|``, ``(depth,)``.
        preactivation_var: ``q_l``, ``(depth,)``.
        log_ratio_std: predicted standard deviation of
            ``log(mean|∂L/∂z_1| / mean|∂L/∂z_L|)`` at finite width.
        step_log_std: per-layer standard deviation of the log backward factor,
            ``(depth - 1,)`` (index ``l-1``: the step from layer ``l+1`` to ``l``).
    """

    mean_abs_preactivation_grads: np.ndarray
    preactivation_var: np.ndarray
    log_ratio_std: float
    step_log_std: np.ndarray


def mean_field_profile(
    activation: str, weight_var: float, depth: int, width: int, *,
    input_var: float = 1.0, num_nodes: int = 200,
) -> MeanFieldProfile:
    """Mean-field ``mean |∂L/∂z_l|`` of a square plain MLP (see module docstring).

    Example:
        >>> p = mean_field_profile("identity", 1.0, 3, 100)
        >>> p.mean_abs_preactivation_grads   # [√(2/π), √(2/π), 1]
    """
    q = [weight_var * input_var]
    for _ in range(1, depth):
        q.append(weight_var * activation_moments(activation, q[-1], num_nodes=num_nodes)[0])
    m = np.array([activation_moments(activation, ql, num_nodes=num_nodes) for ql in q])
    abs_d, sq_d, quart_d = m[:, 1], m[:, 2], m[:, 3]

    profile = np.empty(depth)
    profile[-1] = abs_d[-1]
    v = weight_var * sq_d[-1]  # variance of ∂L/∂h_{L-1}
    for layer in range(depth - 2, -1, -1):
        profile[layer] = math.sqrt(2.0 * v / math.pi) * abs_d[layer]
        v *= weight_var * sq_d[layer]
    # Step l+1 -> l: ‖∂L/∂z_l‖² / ‖∂L/∂z_{l+1}‖² = σ_w²/N Σ_i φ'(z_l,i)² ξ_i².
    step_var = np.array([(3.0 * quart_d[i] / sq_d[i] ** 2 - 1.0) / (4.0 * width)
                         for i in range(depth - 1)])
    return MeanFieldProfile(profile, np.array(q), float(np.sqrt(step_var.sum())),
                            np.sqrt(step_var))


def random_walk_slope_std(num_points: int, step_std: float) -> float:
    """Standard deviation of the least-squares slope through a random walk.

    ``y_k = Σ_{i≤k} e_i`` for ``k = 0..num_points-1`` with independent steps of standard
    deviation ``step_std``: the slope ``Σ a_k y_k`` has variance ``step_std² Σ_i (Σ_{k≥i}
    a_k)²`` with the least-squares weights ``a_k = (k - k̄)/Σ(k - k̄)²``.
    """
    if num_points < 2:
        raise ValueError(f"`num_points` must be >= 2, got {num_points}")
    k = np.arange(num_points, dtype=np.float64)
    a = (k - k.mean()) / np.sum((k - k.mean()) ** 2)
    tail = np.cumsum(a[::-1])[::-1][1:]  # Σ_{k≥i} a_k for i = 1..n-1
    return float(step_std * np.sqrt(np.sum(tail**2)))


def seed_listing_gradient_magnitudes(
    x: np.ndarray, weights: list[np.ndarray], *, derivative_at: str = "preactivation"
) -> np.ndarray:
    """The web article's ``deep_network_gradients`` backward pass in NumPy (float64).

    ``derivative_at="output"`` reproduces the listing literally (it calls
    ``sigmoid_derivative(layer_outputs[i])``, i.e. σ'(σ(z))); ``"preactivation"`` uses
    σ'(z), the true derivative.
    """
    if derivative_at not in ("preactivation", "output"):
        raise ValueError(f"`derivative_at` must be 'preactivation' or 'output', got "
                         f"{derivative_at!r}")

    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    def sigmoid_derivative(z):
        s = sigmoid(z)
        return s * (1.0 - s)

    h = np.asarray(x, np.float64)
    pre, out = [], []
    for W in weights:
        z = h @ W
        h = sigmoid(z)
        pre.append(z)
        out.append(h)
    grad = np.ones_like(h)
    mags = []
    for i in range(len(weights) - 1, -1, -1):
        arg = pre[i] if derivative_at == "preactivation" else out[i]
        grad = grad * sigmoid_derivative(arg)
        mags.insert(0, np.mean(np.abs(grad)))
        grad = grad @ weights[i].T
    return np.array(mags)


# --------------------------------------------------------------------------- experiment


def random_sign_loss(output: jax.Array, signs: jax.Array) -> jax.Array:
    """``Σ output ⊙ signs``: a cotangent of random ±1 (module level, so compiled once)."""
    return (output * signs).sum()


def _log(x: float, base: float = math.e) -> float:
    """``log x``, or NaN (a failing check rather than an exception) for x <= 0 or non-finite."""
    return math.log(x, base) if math.isfinite(x) and x > 0 else math.nan


def _fit_slope(values: np.ndarray) -> float:
    """Least-squares slope of ``log values`` against the layer index (NaN if any is <= 0)."""
    if not np.all(np.isfinite(values) & (values > 0)):
        return math.nan
    k = np.arange(len(values), dtype=np.float64)
    return float(np.polyfit(k, np.log(values), 1)[0])


def compute(config: Config) -> Computed:
    """Gradient magnitudes per layer of every configuration, their mean-field profiles, the
    web article's listing on the same weights, and the random-sign cotangent's profiles."""
    depth, width, batch = config.depth, config.width, config.batch
    nodes = config.quadrature_nodes
    names = list(config.configurations)
    if "sigmoid_normal" not in names:
        raise ValueError(
            "`configurations` must include 'sigmoid_normal' (the web article's network)")
    k_x, k_params, k_signs = jax.random.split(jax.random.key(config.seed), 3)
    x = jax.random.normal(k_x, (batch, width))

    setups = {name: make_setup(name, width, depth) for name in names}
    flows, params = {}, {}
    for name, setup in setups.items():
        params[name] = jaxgrad.init_mlp(k_params, setup.config)
        flow = jaxgrad.mlp_gradient_flow(params[name], x, None, setup.config, loss="sum")
        flows[name] = jax.tree_util.tree_map(np.asarray, flow)
    mags = {n: f.mean_abs_preactivation_grads for n, f in flows.items()}
    wnorms = {n: f.weight_grad_norms for n, f in flows.items()}
    ratio = {n: float(m[0] / m[-1]) for n, m in mags.items()}
    wratio = {n: float(w[0] / w[-1]) for n, w in wnorms.items()}
    finite = {n: bool(np.all(np.isfinite(m)) & np.all(m > 0) & np.all(np.isfinite(w)))
              for (n, m), w in zip(mags.items(), wnorms.values(), strict=True)}

    theory = {}
    for name, setup in setups.items():
        if setup.weight_var is not None:
            theory[name] = mean_field_profile(setup.config.activation, setup.weight_var,
                                              depth, width, num_nodes=nodes)
    mf_ratio = {n: float(p.mean_abs_preactivation_grads[0] / p.mean_abs_preactivation_grads[-1])
                for n, p in theory.items()}

    # 1. The library against the web article's own algorithm on the same weights and inputs.
    p0 = params["sigmoid_normal"]
    weights = [np.asarray(p0.first.W)] + [np.asarray(w) for w in p0.hidden.W]
    listing = seed_listing_gradient_magnitudes(np.asarray(x), weights)
    listing_literal = seed_listing_gradient_magnitudes(np.asarray(x), weights,
                                                       derivative_at="output")
    rel = float(np.max(np.abs(mags["sigmoid_normal"] / listing - 1.0)))

    # 2. Linear regime: the per-layer log factor of the gradients (checked against the
    #    closed form log((1/4)·σ·√N)).
    s = mags["sigmoid_normal"]
    linear_rate = math.log(0.25 * SEED_STD * math.sqrt(width))
    factor = -_fit_slope(s[:-1])  # log of the per-layer factor, going backward
    w_slope = _fit_slope(wnorms["sigmoid_normal"][1:-1])

    # 3. Homogeneous networks: mean field with a random ±1 cotangent (module docstring).
    signed_ratio, signed_mags = {}, {}
    for name, prof in theory.items():
        if setups[name].mean_field_checked:
            continue
        signs = jax.random.rademacher(k_signs, (batch, width), dtype=x.dtype)
        flow = jaxgrad.mlp_gradient_flow(params[name], x, signs, setups[name].config,
                                         loss=random_sign_loss)
        m = signed_mags[name] = np.asarray(flow.mean_abs_preactivation_grads)
        signed_ratio[name] = float(m[0] / m[-1])

    summary = {
        "first_to_last_ratio": ratio,
        "weight_first_to_last_ratio": wratio,
        "mean_field_first_to_last_ratio": mf_ratio,
        "mean_field_checked": [n for n in theory if setups[n].mean_field_checked],
        "random_sign_cotangent_first_to_last_ratio": signed_ratio,
        "per_layer_log_factor": {"measured": factor, "closed_form": linear_rate,
                                 "weight_measured": -w_slope},
        "mean_field_log_ratio_std": {n: p.log_ratio_std for n, p in theory.items()},
        "seed_listing_max_relative_deviation": rel,
        "nonfinite_configurations": [n for n, ok in finite.items() if not ok],
        "seed_listing_first_to_last_ratio": {
            "derivative_at_preactivation": float(listing[0] / listing[-1]),
            "derivative_at_output_as_printed": float(listing_literal[0] / listing_literal[-1]),
        },
        "mean_abs_preactivation_grads": {n: m.tolist() for n, m in mags.items()},
        "weight_grad_norms": {n: w.tolist() for n, w in wnorms.items()},
        "labels": {n: s.label for n, s in setups.items()},
    }
    arrays = {f"mean_abs_preactivation_grads_{n}": m for n, m in mags.items()}
    arrays.update({f"weight_grad_norms_{n}": w for n, w in wnorms.items()})
    arrays.update({f"mean_field_{n}": p.mean_abs_preactivation_grads for n, p in theory.items()})
    arrays.update({f"random_sign_cotangent_{n}": m for n, m in signed_mags.items()})
    arrays["seed_listing_literal"] = listing_literal
    return Computed(summary=summary, arrays=arrays)


def checks(config: Config, computed: Computed) -> list[Check]:
    """The web article's listing, the linear regime's closed form, mean-field theory, and the
    remedies' bounded ratios."""
    s = computed.summary
    depth, width, n_sig = config.depth, config.width, config.num_sigmas
    ratio, mf_ratio, std = (s["first_to_last_ratio"], s["mean_field_first_to_last_ratio"],
                            s["mean_field_log_ratio_std"])
    factor = s["per_layer_log_factor"]["measured"]
    linear_rate = s["per_layer_log_factor"]["closed_form"]
    step_std = 1.0 / math.sqrt(2.0 * width)  # log-norm of χ²_N/N: variance 1/(2N)
    # 1. The library against the web article's own algorithm on the same weights and inputs.
    out = [check_close(
        "sigmoid_normal: max relative deviation from the web article's listing (σ' at z)",
        s["seed_listing_max_relative_deviation"], 0.0,
        atol=1e-4, note="NumPy float64 port of deep_network_gradients, same weights; "
                        "float32 rounding over 10 layers is ~1e-6")]
    # 2. Linear regime: per-layer factor (1/4)·σ·√N, fitted over layers 1..L-1 (the last
    #    layer's cotangent is exactly one, not Gaussian, so it carries an extra √(2/π)).
    slope_tol = n_sig * random_walk_slope_std(depth - 1, step_std)
    out.append(check_close(
        "sigmoid_normal: per-layer log factor of mean|∂L/∂z_l| (layers 1..L-1)",
        factor, linear_rate, atol=slope_tol,
        note=f"log((1/4)·{SEED_STD}·√N); tolerance {n_sig:g}σ of a least-squares slope "
             f"through a random walk with step std 1/√(2N)"))
    out.append(check_close(
        "sigmoid_normal: per-layer log factor of ‖∂L/∂W_l‖ (layers 2..L-1)",
        s["per_layer_log_factor"]["weight_measured"], linear_rate,
        atol=n_sig * random_walk_slope_std(depth - 2, step_std),
        note="∂L/∂W_l = h_{l-1}ᵀ ∂L/∂z_l with h_{l-1} ≈ 1/2 for l ≥ 2: same factor"))
    out.append(check_bound(
        "sigmoid_normal: first_to_last_ratio", ratio["sigmoid_normal"], SEED_CLAIM_RATIO,
        note="web article \"Vanishing Gradient Problem Explained\": a 10-layer sigmoid "
             "network reduces gradients by 1e-6 or more"))

    # 3. Mean-field theory for the zero-mean, plain, non-homogeneous configurations.
    for name in s["mean_field_checked"]:
        weight_var = make_setup(name, width, depth).weight_var
        out.append(check_close(
            f"{name}: log first_to_last_ratio vs mean field", _log(ratio[name]),
            math.log(mf_ratio[name]), atol=n_sig * std[name],
            note=f"Schoenholz et al. 2017 with σ_w² = {weight_var:.4g}; "
                 f"tolerance {n_sig:g}× the finite-width std {std[name]:.3f}"))

    # 3b. Homogeneous networks: mean field with a random ±1 cotangent (module docstring).
    for name, signed in s["random_sign_cotangent_first_to_last_ratio"].items():
        out.append(check_close(
            f"{name}, random ±1 cotangent: log first_to_last_ratio vs mean field",
            _log(signed), math.log(mf_ratio[name]), atol=n_sig * std[name],
            note=f"tolerance {n_sig:g}× the finite-width std {std[name]:.3f}; under "
                 "the sum loss Euler's theorem adds a coherent component (see docstring)"))

    # 4. The remedies keep the gradient within BOUND_DECADES of its last-layer value.
    for name in ("relu_he", "sigmoid_yilmaz_poli", "relu_he_residual_batchnorm"):
        if name in ratio:
            out.append(check_bound(
                f"{name}: |log10 first_to_last_ratio|", abs(_log(ratio[name], 10.0)),
                BOUND_DECADES,
                note="He 2015 (E‖∂L/∂h‖² kept), Yilmaz–Poli 2022, residual+BN: no "
                     "exponential vanishing; mean field for ReLU+He gives √(2/π)"))
    bad = s["nonfinite_configurations"]
    out.append(check_bound(
        "configurations with a non-finite or zero layer gradient", len(bad), 0,
        note=f"float32 must hold every layer's gradient; offending: {bad or 'none'}"))
    return out


def run(config: Config) -> Result:
    """``compute``, then ``checks`` and ``figures`` on its numbers."""
    return staged_run(config, compute, checks, figures)


def figures(config: Config, computed: Computed) -> dict[str, Any]:
    """Gradient magnitude per layer (with mean field), the web article's network, and the
    weight-gradient norms per layer."""
    a, depth = computed.arrays, config.depth
    setups = {name: make_setup(name, config.width, depth) for name in config.configurations}
    mags = {n: a[f"mean_abs_preactivation_grads_{n}"] for n in setups}
    wnorms = {n: a[f"weight_grad_norms_{n}"] for n in setups}
    theory = {n: a[f"mean_field_{n}"] for n in setups if f"mean_field_{n}" in a}
    signed_mags = {n: a[f"random_sign_cotangent_{n}"] for n in setups
                   if f"random_sign_cotangent_{n}" in a}
    listing_literal = a["seed_listing_literal"]
    linear_rate = computed.summary["per_layer_log_factor"]["closed_form"]
    layers = np.arange(1, depth + 1)
    # Two panels stacked: each reads at the report's column width.
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9.5, 10))
    for i, (name, setup) in enumerate(setups.items()):
        color = f"C{i}"
        ax.semilogy(layers, mags[name], "o-", color=color, label=setup.label)
        if name in theory:
            ax.semilogy(layers, theory[name], "--", color=color,
                        lw=1, alpha=0.8)
        if name in signed_mags:
            ax.semilogy(layers, signed_mags[name], "^:", color=color, ms=4,
                        label=f"{setup.label}, random ±1 cotangent")
    if theory:
        ax.plot([], [], "--", color="gray", lw=1,
                label="mean-field theory (dashed, each setup's colour; under the markers "
                      "where it agrees)")
    ax.set_xlabel("layer l (1 = next to the input)")
    ax.set_ylabel(r"mean $|\partial L/\partial z_l|$ (log scale)")
    ax.set_title("Gradient magnitude per layer (dashed: mean-field theory)", fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(True, which="both", alpha=0.3)

    s = mags["sigmoid_normal"]
    ax2.semilogy(layers, s, "o-", color="C0", label="jaxgrad.mlp_gradient_flow")
    ax2.semilogy(layers, listing_literal, "x:", color="k",
                 label="web article's listing as printed (σ' at σ(z))")
    closed = s[-2] * np.exp(linear_rate * (depth - 1 - layers[:-1]))
    ax2.semilogy(layers[:-1], closed, "--", color="C3",
                 label=f"closed form: factor (1/4)·0.01·√N = {math.exp(linear_rate):.3f}/layer")
    if "sigmoid_normal" in theory:
        # Wide and pale underneath: it lies on the measured curve.
        ax2.semilogy(layers, theory["sigmoid_normal"], "-",
                     color="C2", lw=6, alpha=0.35, zorder=1,
                     label="mean-field theory (wide, under the measured curve)")
    ax2.set_xlabel("layer l (1 = next to the input)")
    ax2.set_ylabel(r"mean $|\partial L/\partial z_l|$ (log scale)")
    ax2.set_title("Sigmoid network of the web article \"Vanishing Gradient Problem Explained\",\n"
                  "N(0, 0.01²) weights", fontsize=10)
    ax2.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax2.grid(True, which="both", alpha=0.3)
    fig.tight_layout()

    fig_w, axw = plt.subplots(figsize=(7, 5))
    for i, (name, setup) in enumerate(setups.items()):
        axw.semilogy(layers, wnorms[name], "o-", color=f"C{i}", label=setup.label)
    axw.set_xlabel("layer l (1 = next to the input)")
    axw.set_ylabel(r"$\|\partial L/\partial W_l\|_F$ (log scale)")
    axw.set_title("Weight-gradient norm per layer", fontsize=10)
    axw.legend(fontsize=7, loc="lower right")
    axw.grid(True, which="both", alpha=0.3)
    fig_w.tight_layout()
    return {"gradient_per_layer": fig, "weight_grad_norms": fig_w}
