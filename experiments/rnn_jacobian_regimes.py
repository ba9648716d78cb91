"""Long-term Jacobians of Pascanu's RNN below and above ``σ_max(W_rec) = 1/γ``.

The network ``x_t = W_rec σ(x_{t-1}) + W_in u_t + b`` has step Jacobian
``W_rec diag(σ'(x_{t-1}))``, so ``‖∂x_T/∂x_{T-k}‖ <= (σ_max(W_rec) γ)^k`` with
``γ = sup|σ'|`` (1/4 for sigmoid, 1 for tanh): Pascanu, Mikolov & Bengio (2013), section
3.1. Below ``σ_max = 1/γ`` the bound forces vanishing; above it the bound allows growth but
does not force it. Each regime is run after a burn-in, and ``log ‖∂x_T/∂x_{T-k}‖`` is
measured for every lag by ``jaxgrad.jacobian_product_norms`` and fitted by a line
(``jaxgrad.fit_log_rate``).

Checks and their references:

- every regime: ``max_k (log‖∂x_T/∂x_{T-k}‖ − k log(σ_max γ)) <= 0`` (the bound is a
  theorem, so this holds above the threshold too);
- below the threshold: fitted rate ``<= log(σ_max γ) < 0``;
- a tanh network with Gaussian gain ``g > 1`` and no input is chaotic (Sompolinsky,
  Crisanti & Sommers 1988; Molgedey, Schuchhardt & Schuster 1992 for discrete time): the
  fitted rate is positive and close to the mean-field Lyapunov exponent ``½ log(g² E[φ'(z)²])``
  at the variance fixed point. At finite width ``N`` the exponent is lower by ``O(1/N)``
  (about 0.03, 0.02, 0.01 below 0.155 at N = 64, 128, 256 for g = 2 in our runs), hence a
  relative tolerance of ``lyapunov_rtol``.

Wikipedia, "Vanishing gradient problem", note 3: ``W_rec = [[0, 2], [ε, 0]]`` has
spectral radius ``√(2ε) > 1`` for ``ε > 1/2``, yet with ``D = cI`` the
products ``(W_rec D)^{2n} = (2εc²)^n I`` vanish
whenever ``2εc² < 1``; odd lags add one factor ``c W_rec`` of norm ``2c``. This is run
in float64 with the step ``x -> W_rec (c x)`` and compared with the closed form at every
lag.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jaxgrad

from ._mean_field import mean_field_lyapunov
from ._runner import Check, Computed, Result, check_bound, check_close, staged_run

NAME = "rnn-jacobian-regimes"
DESCRIPTION = (
    "Pascanu RNN with σ_max(W_rec) below and above 1/γ: log‖∂x_T/∂x_k‖ against the lag with "
    "Pascanu's bound and the fitted rate; a chaotic tanh network against mean-field "
    "Lyapunov theory; the 2×2 example of Wikipedia's \"Vanishing gradient problem\" "
    "(ρ > 1 with vanishing products)."
)


@dataclasses.dataclass(frozen=True)
class Config:
    """The experiment's parameters."""

    num_units: int = 128  # N of the Pascanu RNN
    num_steps: int = 300  # lags measured after the burn-in
    burn_in: int = 200
    fit_start: int = 20  # the rate is fitted from this lag on
    seed: int = 0
    # expect: "vanishing" (σ_max γ < 1, Pascanu's sufficient condition), "chaotic" (tanh,
    # Gaussian gain > 1, no input: positive Lyapunov exponent) or "none" (no prediction).
    regimes: tuple[dict[str, Any], ...] = (
        {"name": "sigmoid_below", "activation": "sigmoid", "scaling": "spectral_norm",
         "value": 3.5, "input_std": 1.0, "expect": "vanishing"},
        {"name": "tanh_below", "activation": "tanh", "scaling": "spectral_norm",
         "value": 0.9, "input_std": 1.0, "expect": "vanishing"},
        {"name": "sigmoid_above", "activation": "sigmoid", "scaling": "spectral_norm",
         "value": 8.0, "input_std": 1.0, "expect": "none"},
        {"name": "tanh_chaotic", "activation": "tanh", "scaling": "gaussian",
         "value": 2.0, "input_std": 0.0, "expect": "chaotic"},
    )
    lyapunov_rtol: float = 0.25  # tolerance of the chaotic rate against mean field
    two_by_two_epsilon: float = 0.75  # ε of Wikipedia's 2×2 example
    two_by_two_c: tuple[float, ...] = (0.7, 0.9)  # its constant derivatives c
    two_by_two_lags: int = 60


QUICK_CONFIG = {"num_steps": 150, "burn_in": 100, "two_by_two_lags": 30}
SUMMARY_KEYS = ("fitted_rate", "bound_rate", "max_log_norm_minus_bound", "spectral_norm",
                "spectral_radius", "power_iteration_converged", "lyapunov", "two_by_two")

EXPECTATIONS = ("vanishing", "chaotic", "none")


class TwoByTwoParams(NamedTuple):
    """Wikipedia's note 3 example: ``W_rec`` (2, 2) and the constant derivative ``c`` (D = cI)."""

    W_rec: jax.Array
    c: jax.Array


def two_by_two_params(epsilon: float, c: float, *, dtype=jnp.float64) -> TwoByTwoParams:
    """``W_rec = [[0, 2], [ε, 0]]`` and ``c``."""
    W = jnp.array([[0.0, 2.0], [epsilon, 0.0]], dtype)
    return TwoByTwoParams(W, jnp.asarray(c, dtype))


def two_by_two_step(x: jax.Array, u: jax.Array, params: TwoByTwoParams) -> jax.Array:
    """``x -> W_rec (c x)``: its Jacobian is ``W_rec D`` with ``D = cI`` at every state."""
    del u
    return params.W_rec @ (params.c * x)


def two_by_two_log_norms(epsilon: float, c: float, num_lags: int) -> np.ndarray:
    """Closed form of ``log ‖(W_rec D)^k‖₂`` for ``k = 1..num_lags``.

    ``(W_rec D)^{2n} = (2εc²)^n I`` (norm ``(2εc²)^n``) and ``(W_rec D)^{2n+1} =
    (2εc²)^n c W_rec`` (norm ``(2εc²)^n · c · max(2, ε)``).
    """
    k = np.arange(1, num_lags + 1)
    n = k // 2
    odd = (k % 2) * math.log(c * max(2.0, epsilon))
    return n * math.log(2.0 * epsilon * c * c) + odd


def _check_regime(regime: dict) -> None:
    for key in ("name", "activation", "scaling", "value", "input_std", "expect"):
        if key not in regime:
            raise ValueError(f"each entry of `regimes` needs {key!r}, got {sorted(regime)}")
    if regime["expect"] not in EXPECTATIONS:
        raise ValueError(f"`expect` must be one of {EXPECTATIONS}, got {regime['expect']!r}")
    if regime["expect"] == "chaotic" and not (
        regime["activation"] == "tanh" and regime["scaling"] == "gaussian"
        and regime["value"] > 1 and regime["input_std"] == 0
    ):
        raise ValueError("an 'expect': 'chaotic' regime must be tanh with scaling 'gaussian', "
                         f"value > 1 and input_std 0, got {regime}")


@functools.cache
def _step(activation: str):
    """One step function per activation, so each compiles once for every regime."""
    return functools.partial(jaxgrad.pascanu_step, activation=activation)


@functools.cache
def _burn_in(activation: str):
    step = _step(activation)
    return jax.jit(lambda p, x0, u: jaxgrad.unroll(lambda x, v: step(x, v, p), x0, u)[-1])


def run_regime(regime: dict, key: jax.Array, *, num_units: int, num_steps: int, burn_in: int,
               fit_start: int) -> dict:
    """Build, burn in and measure one regime; return its numbers as NumPy values."""
    _check_regime(regime)
    act = regime["activation"]
    k_params, k_x, k_u = jax.random.split(key, 3)
    params = jaxgrad.init_pascanu(k_params, num_units, 1, scaling=regime["scaling"],
                                  value=regime["value"])
    inputs = regime["input_std"] * jax.random.normal(k_u, (burn_in + num_steps, 1))
    x0 = jax.random.normal(k_x, (num_units,))
    x_start = _burn_in(act)(params, x0, inputs[:burn_in]) if burn_in else x0
    res = jaxgrad.jacobian_product_norms(_step(act), x_start, inputs[burn_in:], params=params,
                                         step_norms=False)
    bound = jaxgrad.models.pascanu_bound_log_norms(params, num_steps, activation=act)
    rate, intercept = jaxgrad.fit_log_rate(res.log_norms, start=fit_start)
    sigma_max = float(jaxgrad.analysis.spectral_norm(params.W_rec).value)
    out = {
        "log_norms": np.asarray(res.log_norms, np.float64),
        "bound": np.asarray(bound, np.float64),
        "rate": float(rate),
        "intercept": float(intercept),
        "bound_rate": math.log(sigma_max * jaxgrad.models.MAX_DERIVATIVE[act]),
        "spectral_norm": sigma_max,
        "spectral_radius": float(jaxgrad.spectral_radius(params.W_rec).value),
        "converged": bool(res.converged),
    }
    out["max_log_norm_minus_bound"] = float(np.max(out["log_norms"] - out["bound"]))
    return out


def compute(config: Config) -> Computed:
    """Every regime's Jacobian norms, bound and fitted rate; the 2×2 example's products."""
    regimes = list(config.regimes)
    for regime in regimes:
        _check_regime(regime)
    keys = jax.random.split(jax.random.key(config.seed), len(regimes))
    results = {}
    for regime, key in zip(regimes, keys, strict=True):
        results[regime["name"]] = run_regime(
            regime, key, num_units=config.num_units, num_steps=config.num_steps,
            burn_in=config.burn_in, fit_start=config.fit_start)

    lyapunov = {}
    for regime in regimes:
        name, r = regime["name"], results[regime["name"]]
        if regime["expect"] == "vanishing" and not r["bound_rate"] < 0:
            raise ValueError(f"regime {name!r} expects vanishing but σ_max γ = "
                             f"{math.exp(r['bound_rate']):.3g} >= 1")
        if regime["expect"] == "chaotic":
            lam, q_star = mean_field_lyapunov(regime["activation"], regime["value"])
            lyapunov[name] = {"mean_field": lam, "q_star": q_star}

    two = _two_by_two(config)
    summary = {
        "fitted_rate": {n: r["rate"] for n, r in results.items()},
        "bound_rate": {n: r["bound_rate"] for n, r in results.items()},
        "max_log_norm_minus_bound": {n: r["max_log_norm_minus_bound"] for n, r in results.items()},
        "spectral_norm": {n: r["spectral_norm"] for n, r in results.items()},
        "spectral_radius": {n: r["spectral_radius"] for n, r in results.items()},
        "power_iteration_converged": {n: r["converged"] for n, r in results.items()},
        "lyapunov": lyapunov,
        "two_by_two": two.summary,
        "fitted_intercept": {n: r["intercept"] for n, r in results.items()},
    }
    arrays = {f"log_norms_{n}": r["log_norms"] for n, r in results.items()}
    arrays.update({f"bound_{n}": r["bound"] for n, r in results.items()})
    arrays.update(two.arrays)
    return Computed(summary=summary, arrays=arrays)


def checks(config: Config, computed: Computed) -> list[Check]:
    """Pascanu's bound in every regime, vanishing and chaotic rates, and the 2×2 example
    against its closed form."""
    s = computed.summary
    out = []
    for regime in config.regimes:
        name = regime["name"]
        r = {k: s[key][name] for k, key in (
            ("rate", "fitted_rate"), ("bound_rate", "bound_rate"),
            ("spectral_norm", "spectral_norm"),
            ("max_log_norm_minus_bound", "max_log_norm_minus_bound"))}
        out.append(check_bound(
            f"{name}: max_k log‖∂x_T/∂x_(T-k)‖ − k log(σ_max γ)",
            r["max_log_norm_minus_bound"], 0.0,
            note="Pascanu et al. 2013 §3.1: ‖∏ W_rec diag(σ')‖ <= (‖W_rec‖ γ)^k"))
        if regime["expect"] == "vanishing":
            out.append(check_bound(
                f"{name}: fitted rate vs log(σ_max γ) < 0", r["rate"], r["bound_rate"],
                note=f"σ_max = {r['spectral_norm']:.3g} < 1/γ: vanishing is guaranteed"))
        elif regime["expect"] == "chaotic":
            lam = s["lyapunov"][name]["mean_field"]
            out.append(check_bound(
                f"{name}: fitted rate > 0", r["rate"], 0.0, kind=">=",
                note=f"gain {regime['value']} > 1, no input: chaotic (Sompolinsky et al. 1988)"))
            out.append(check_close(
                f"{name}: fitted rate vs mean-field Lyapunov exponent", r["rate"], lam,
                rtol=config.lyapunov_rtol,
                note="½ log(g² E[tanh'(z)²]) at the variance fixed point (N → ∞); finite N "
                     "lowers it by O(1/N)"))

    two = s["two_by_two"]
    eps, rho = two["epsilon"], two["spectral_radius"]
    out.append(check_close("2×2: spectral radius of W_rec vs √(2ε)", rho,
                           math.sqrt(2 * eps), rtol=1e-12, note="float64 eigvals"))
    out.append(check_bound("2×2: spectral radius of W_rec", rho, 1.0, kind=">=",
                           note="ε > 1/2, so ρ(W_rec) = √(2ε) > 1"))
    for c in config.two_by_two_c:
        per_c = two["per_c"][str(c)]
        out.append(check_close(
            f"2×2, c={c}: max_k |log‖(W_rec D)^k‖ − closed form|", per_c["max_abs_error"], 0.0,
            atol=1e-12, note=f"(W_rec D)^(2n) = (2εc²)^n I with 2εc² = {2 * eps * c * c:.4g}; "
                             "float64 rounding ~1e-16 per step"))
        out.append(check_close(
            f"2×2, c={c}: spectral radius of the step Jacobian vs c√(2ε)",
            per_c["step_spectral_radius"], c * math.sqrt(2 * eps), rtol=1e-6,
            note="matrix-free subspace iteration on v -> J v (a ± pair of equal modulus)"))
    return out


def run(config: Config) -> Result:
    """``compute``, then ``checks`` and ``figures`` on its numbers."""
    return staged_run(config, compute, checks, figures)


def _two_by_two(config: Config) -> Computed:
    """Wikipedia's note 3 example in float64: measured products and their closed form."""
    eps, lags = config.two_by_two_epsilon, config.two_by_two_lags
    per_c, arrays = {}, {}
    with jax.enable_x64(True):
        W = two_by_two_params(eps, 1.0).W_rec
        rho = float(jaxgrad.spectral_radius(W).value)
        x0 = jnp.array([1.0, -0.5], jnp.float64)
        for c in config.two_by_two_c:
            p = two_by_two_params(eps, c)
            res = jaxgrad.jacobian_product_norms(two_by_two_step, x0, num_steps=lags, params=p,
                                                 spectral_method="svd", step_norms=False)
            measured = np.asarray(res.log_norms, np.float64)
            closed = two_by_two_log_norms(eps, c, lags)
            err = float(np.max(np.abs(measured - closed)))
            jvp = functools.partial(_jacobian_operator, params=p, x=x0)
            rho_step = float(jaxgrad.spectral_radius(jvp, vector=x0).value)
            per_c[str(c)] = {
                "two_eps_c2": 2 * eps * c * c,
                "log_rate_per_two_steps": math.log(2 * eps * c * c),
                "step_spectral_radius": rho_step,
                "pascanu_bound_rate": math.log(2 * c),
                "max_abs_error": err,
                "log_norm_at_last_even_lag": float(measured[(lags // 2) * 2 - 1]),
            }
            arrays[f"two_by_two_log_norms_c{c}"] = measured
            arrays[f"two_by_two_closed_form_c{c}"] = closed
    summary = {"epsilon": eps, "spectral_radius": rho, "closed_form_spectral_radius":
               math.sqrt(2 * eps), "per_c": per_c}
    return Computed(summary=summary, arrays=arrays)


def _jacobian_operator(v, *, params, x):
    return jax.jvp(lambda y: two_by_two_step(y, None, params), (x,), (v,))[1]


def figures(config: Config, computed: Computed) -> dict[str, Any]:
    """Each regime's Jacobian norms against the lag, and the 2×2 example's."""
    s, a = computed.summary, computed.arrays
    regimes = list(config.regimes)
    results = {r["name"]: {"log_norms": a[f"log_norms_{r['name']}"],
                           "bound": a[f"bound_{r['name']}"],
                           **{k: s[key][r["name"]] for k, key in (
                               ("rate", "fitted_rate"), ("intercept", "fitted_intercept"),
                               ("bound_rate", "bound_rate"), ("spectral_norm", "spectral_norm"),
                               ("spectral_radius", "spectral_radius"))}}
               for r in regimes}
    two = s["two_by_two"]
    return {"jacobian_regimes": _regime_figure(regimes, results, s["lyapunov"],
                                               config.fit_start),
            "two_by_two": _two_by_two_figure(two["epsilon"], two["spectral_radius"], a,
                                             config.two_by_two_c, config.two_by_two_lags)}


def _regime_figure(regimes, results, lyapunov, fit_start):
    n = len(regimes)
    cols = 2 if n > 1 else 1
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4.4 * rows), squeeze=False)
    for ax, regime in zip(axes.flat, regimes, strict=False):
        name, r = regime["name"], results[regime["name"]]
        k = np.arange(1, len(r["log_norms"]) + 1)
        ax.plot(k, r["log_norms"], color="C0",
                label=r"$\log\|\partial x_T/\partial x_{T-k}\|$ (measured)")
        ax.plot(k, r["bound"], "--", color="C3",
                label=r"Pascanu bound $k\,\log(\sigma_{\max}\gamma)$, slope "
                      f"{r['bound_rate']:.3f}")
        kf = k[fit_start - 1:]
        ax.plot(kf, r["intercept"] + r["rate"] * kf, ":", color="k",
                label=f"fitted rate {r['rate']:.3f}/step")
        if name in lyapunov:
            lam = lyapunov[name]["mean_field"]
            ax.plot(kf, r["intercept"] + lam * kf, "-.", color="C2",
                    label=f"mean-field Lyapunov {lam:.3f}/step")
        ax.set_title(f"{name}: {regime['activation']}, σ_max = {r['spectral_norm']:.2f},\n"
                     f"ρ = {r['spectral_radius']:.2f}, γ·σ_max = "
                     f"{math.exp(r['bound_rate']):.2f}", fontsize=9)
        ax.set_xlabel("lag k")
        ax.set_ylabel("natural log of the norm")
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle("Long-term Jacobian norms of Pascanu's RNN (natural log against the lag)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def _two_by_two_figure(eps, rho, arrays, cs, lags):
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    k = np.arange(1, lags + 1)
    for i, c in enumerate(cs):
        ax.plot(k, arrays[f"two_by_two_log_norms_c{c}"], "o", ms=3, color=f"C{i}",
                label=f"c = {c}: measured, 2εc² = {2 * eps * c * c:.3f}")
        ax.plot(k, arrays[f"two_by_two_closed_form_c{c}"], "-", lw=1, color=f"C{i}",
                label=f"c = {c}: closed form "
                      r"$(2\varepsilon c^2)^{\lfloor k/2 \rfloor}\,(2c)^{k\,\mathrm{mod}\,2}$")
    ax.plot(k, k * math.log(rho), "--", color="gray",
            label=r"$k \log \rho(W_{rec})$, $\rho = \sqrt{2\varepsilon}$ = "
                  f"{rho:.3f} > 1")
    ax.set_xlabel("lag k")
    ax.set_ylabel(r"$\log \|(W_{rec} D)^k\|_2$")
    ax.set_title(f"Wikipedia, \"Vanishing gradient problem\", note 3:\n"
                 f"W_rec = [[0, 2], [ε, 0]], ε = {eps}, D = cI")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig
