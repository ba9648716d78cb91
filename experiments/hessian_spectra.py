"""Hessian spectra of a deep digits MLP, plain vs residual; sharpness across Pascanu's cliff.

Li, Xu, Taylor, Studer & Goldstein (2018), "Visualizing the Loss Landscape of Neural Nets"
(NeurIPS; arXiv:1712.09913), Fig. 5 and section 6: without skip connections deep networks'
loss surfaces turn sharp and chaotic, with them they stay flat and nearly convex. Here the
curvature is measured directly, matrix-free: the extreme eigenvalues of the Hessian of the
training loss (``jaxgrad.hessian_eigenvalues``, Lanczos, with residual error bounds), its
trace (``jaxgrad.hessian_trace``, Hutch++) and its spectral density
(``jaxgrad.analysis.hessian_spectral_density``, stochastic Lanczos quadrature; Ghorbani, Krishnan &
Xiao 2019), of a deep ReLU MLP on the 8×8 digits, with and without residual connections,
at initialisation and after training. Beside it, Pascanu, Mikolov & Bengio (2013,
section 3.1): where the gradient explodes, so does the curvature; measured on the one-unit
network of the ``pascanu-cliff`` experiment along a 1-D slice across its cliff.

Source protocol (Li et al. 2018): ResNet-20/56/110 and the same nets without shortcuts
("noshort") on CIFAR-10, SGD with momentum 0.9, batch 128, weight decay 5e-4, 300 epochs,
learning rate 0.1 divided by 10 at epochs 150, 225 and 275; 2-D plots of the loss along
filter-normalised random directions around the final weights (Fig. 5), and maps of
``|λ_min/λ_max|`` of the Hessian over that plane (section 6).
They publish no eigenvalue for an MLP: the comparison is qualitative (is the trained
residual net flatter, λ_max and trace smaller, than the plain one?), and the summary
says which way it came out (``residual_flatter_after_training``), not forced.

Departures:

- Model and data: a ReLU MLP (He init, ``depth`` hidden layers of ``width`` units, linear
  readout, softmax cross-entropy) on the first ``num_examples`` digits of the train split
  of ``jaxgrad.train.load_digits`` (pixels centred, as in ``mlp-landscape``) instead of ResNets
  on CIFAR-10. Depth 10, width 16 (P = 3658 parameters): at depth 10 plain ReLU nets
  are already fragile (pilot, this seed: width 12 never left the chance-level plateau of
  ln 10 in 3000 steps, width 16 trained, and un-centred pixels stalled width 8 and 16
  alike), the regime where Li et al. see skip connections matter, while P stays small
  enough for a dense reference Hessian. Quick mode: depth 6, width 8 (P = 970), so that
  the plain net trains in 1500 steps.
- Residual variant: the same init seed and width; skip connections around hidden layers
  2..depth, whose weights are divided by √depth (as in ``mlp-landscape``) so that the
  residual stream's variance stays bounded (plain He-init residual sums double it per
  layer). λ_max is not invariant to such rescalings (Dinh et al. 2017, a point Li et al.
  make about sharpness too), so "flatter" here means in this parameterisation.
- Training: the library's ``jaxgrad.train_steps`` with ``optax.sgd`` (momentum 0.9, as
  Li et al.; no weight decay), batch 128 from ``jaxgrad.train.shuffled_batches``, a constant
  learning rate 0.05, ``train_steps`` steps (3000 ≈ 750 epochs of 512 examples; quick
  1500), to a near-zero training loss, instead of Li et al.'s 300-epoch schedule. Near
  zero cross-entropy the Hessian shrinks with the loss (the softmax saturates), so the
  two nets are compared at their final losses, which the summary reports beside the ratio.
- Curvature: of the full-batch training loss (float32), at initialisation and after
  training: the ``k`` largest and ``k`` most negative eigenvalues, the trace by Hutch++
  with ``trace_probes`` probes, the density by SLQ with ``density_probes`` probes of
  ``density_lanczos`` steps, each with the error estimate its function returns (Lanczos
  residuals, the trace's standard error, the density's spread across probes). Li et al.'s
  ``|λ_min/λ_max|`` is reported at the two weights (not over a plane).
- Reference: a dense float64 Hessian of the same loss at the trained weights of both
  nets (``jax.hessian`` summed over chunks of ``dense_chunk`` examples, then
  ``numpy.linalg.eigh``); checked against it: the top-k eigenvalues (relative error, and
  within the Lanczos residual bound), the k most negative ones, the Hutch++ trace (within
  4 standard errors plus a float32 floor of 1e-4 Σ|λ|), and the SLQ density (L1 distance
  to the exact eigenvalues broadened by the same Gaussian).
- The cliff: ``pascanu_cliff.one_unit_loss`` (x0 = 0.5, target 0.7, T = 50 steps) at
  ``w = cliff_w`` = 6, with ``b`` on both sides of the closed-form cliff
  ``pascanu_cliff.cliff_b`` at log-spaced distances ``10^cliff_log_distance``; λ_max of
  the 2 × 2 Hessian in (w, b) and ‖∇E‖ per point by ``jaxgrad.scan_landscape`` in
  float64 (as in ``pascanu-cliff``), checked against a NumPy float64 second-order forward
  recursion (``one_unit_hessian``). Closed form: from b = b* + δ the linearised deviation
  after T steps is δ(μ^T − 1)/(μ − 1), μ = wσ'(0.5) = 1.41, so both blow up within
  δ_c = (μ − 1)/(μ^T − 1) = 1.4e-8 of the cliff and plateau below it.

Measured at the default scale (2026-12-02, float32; P = 3658): λ_max plain 1.84 at
init and 0.0348 trained (loss 1.1e-5); residual 16.6 at init and 0.0525 trained (loss
1.7e-5). So here the trained residual net is *not* flatter: λ_max plain / residual = 0.66,
trace 0.073 against 0.325; at initialisation the residual net is 9× sharper. Li et al.'s
finding (from 2-D slices of CIFAR-10 ResNets) does not carry over to this small, fully
trained digits MLP (whose plain version did not train at all in some pilot settings: width
12, or un-centred pixels); what Li et al. tie to skip connections, trainability, shows
there rather than in the curvature of the minimum reached. Lanczos agrees
with the dense Hessian to 1.2e-3 (relative, inside its residual bound); the Hutch++ trace
to 0.6 standard errors; the SLQ density to an L1 distance of 0.002. On the cliff λ_max
rises 2.2e20-fold and ‖∇E‖ 6.7e8-fold from |b − b*| = 1 to the plateau, both peaking at
|b − b*| = 1e-8 = 0.7 δ_c. The run took 133-154 s of CPU (696-775 s wall with the 2 cores
shared by ~8 other jobs, load 14-18), a third of it the two dense references; quick mode
61-80 s of CPU (243-426 s wall at load 14-17), most of it compiling the three Hessian
functions for each net.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

import jaxgrad

from . import pascanu_cliff
from ._runner import (
    Computed,
    Result,
    check_bound,
    check_close,
    config_fields,
    make_config,
    staged_run,
)

NAME = "hessian-spectra"
DESCRIPTION = ("Hessian top eigenvalues, trace and SLQ spectral density of a depth-10 digits MLP, "
               "plain vs residual, at init and trained (Li et al. 2018); sharpness across "
               "Pascanu's cliff.")


@dataclasses.dataclass(frozen=True)
class Config:
    """The digits MLP, its training, the Hessian estimators, and the cliff slice."""

    depth: int = 10  #: hidden layers of the MLP
    width: int = 16  #: units per hidden layer
    num_examples: int = 512  #: training digits (the full-batch loss)
    train_steps: int = 3000  #: SGD steps
    batch_size: int = 128  #: examples per SGD step
    learning_rate: float = 0.05  #: SGD learning rate
    momentum: float = 0.9  #: SGD momentum
    k: int = 5  #: largest and most negative eigenvalues computed
    trace_probes: int = 60  #: Hutch++ probes of the trace
    density_probes: int = 8  #: SLQ probes of the spectral density
    density_lanczos: int = 60  #: Lanczos steps per SLQ probe
    dense_chunk: int = 16  #: examples per chunk of the dense float64 Hessian
    cliff_w: float = 6.0  #: w of the one-unit net's slice across its cliff
    #: (low, high, points): distances 10^low..10^high from the cliff on each side
    cliff_log_distance: tuple[float, float, int] = (-13.0, 0.0, 27)
    seed: int = 0  #: PRNG seed


QUICK_CONFIG = {"depth": 6, "width": 8, "num_examples": 256, "train_steps": 1500,
                "trace_probes": 30, "density_probes": 4, "density_lanczos": 40,
                "cliff_log_distance": (-13.0, 0.0, 14)}

ARCHITECTURES = ("plain", "residual")
STATES = ("init", "trained")
SUMMARY_KEYS = (
    "num_params_plain", "num_params_residual", "sharpness_ratio_plain_over_residual",
    "sharpness_ratio_plain_over_residual_init", "trace_ratio_plain_over_residual",
    "residual_flatter_after_training", "trained_loss_ratio_plain_over_residual",
    "dense_reference_max_rel_error", "dense_reference_bottom_max_error_over_lambda_max",
    "dense_reference_trace_z", "dense_reference_density_l1", "dense_reference_asymmetry",
    "cliff_sharpness_peak_over_base", "cliff_gradient_norm_peak_over_base",
    "cliff_peak_sharpness", "cliff_peak_gradient_norm", "cliff_peak_distance",
    "cliff_gradient_peak_distance", "cliff_delta_c",
    "cliff_sharpness_reference_max_error_over_norm", "cliff_b",
    *(f"{quantity}_{label}_{tag}" for label in ARCHITECTURES for tag in STATES
      for quantity in ("top_eigenvalue", "top_eigenvalues", "top_residuals",
                       "most_negative_eigenvalue", "most_negative_residual",
                       "negative_over_positive", "eigenvalues_converged", "trace",
                       "trace_standard_error")),
    *(f"loss_{label}_{tag}" for label in ARCHITECTURES for tag in STATES),
    *(f"{quantity}_{label}" for label in ARCHITECTURES
      for quantity in ("train_seconds", "spectra_seconds", "dense_reference_seconds")),
)


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> list[float]:
    """Wall and CPU seconds (all threads) since ``start = _clock()``."""
    return [time.perf_counter() - start[0], time.process_time() - start[1]]


def _mlp(config: Config, residual: bool, key) -> tuple[jaxgrad.MLPConfig, jaxgrad.models.MLPParams]:
    """The digits MLP and its initial parameters (the residual one's hidden W / √depth)."""
    cfg = jaxgrad.MLPConfig(in_dim=64, width=config.width, depth=config.depth,
                            out_dim=10, activation="relu", init="he", residual=residual)
    params = jaxgrad.init_mlp(key, cfg)
    if residual:  # keep the residual stream's variance bounded with depth (as mlp-landscape)
        params = params._replace(hidden=params.hidden._replace(
            W=params.hidden.W / np.sqrt(cfg.depth)))
    return cfg, params


def _cross_entropy(params, batch, cfg):
    x, y = batch
    logits, _ = jaxgrad.mlp_apply(params, x, cfg)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def dense_hessian(cfg: jaxgrad.MLPConfig, params, x, y,
                  chunk: int) -> tuple[np.ndarray, float]:
    """The ``P × P`` Hessian of the mean cross-entropy over ``(x, y)`` in float64.

    ``jax.hessian`` of the loss of each chunk of ``chunk`` examples (memory bounded by it),
    weighted by the chunk's share: the mean loss's Hessian is their sum. Returns its
    symmetric part and ``max|H − Hᵀ| / max|H|`` of the matrix ``jax.hessian`` gave: not 0
    where a ReLU sits exactly on its kink (a unit whose inputs are all zero, bias 0), where
    forward-over-reverse differentiation is not symmetric.
    """
    n = x.shape[0]
    if n % chunk:
        raise ValueError(f"`dense_chunk` ({chunk}) must divide `num_examples` ({n})")
    with jax.enable_x64(True):
        flat, unravel = ravel_pytree(jax.tree_util.tree_map(
            lambda a: jnp.asarray(a, jnp.float64), params))
        x64 = jnp.asarray(np.asarray(x, np.float64))
        part = jax.jit(jax.hessian(lambda f, xc, yc: _cross_entropy(unravel(f), (xc, yc), cfg)
                                   * (xc.shape[0] / n)))
        H = np.zeros((flat.size, flat.size))
        for i in range(0, n, chunk):
            H += np.asarray(part(flat, x64[i:i + chunk], y[i:i + chunk]))
    return 0.5 * (H + H.T), float(np.max(np.abs(H - H.T)) / np.max(np.abs(H)))


def _spectra(loss, params, config, key) -> dict:
    """Extreme eigenvalues, trace and SLQ density of the Hessian of ``loss`` at ``params``."""
    k_eig, k_tr, k_den = jax.random.split(key, 3)
    k = config.k
    eig = jaxgrad.hessian_eigenvalues(loss, params, k=k, which="both", key=k_eig)
    tr = jaxgrad.hessian_trace(loss, params, key=k_tr, num_probes=config.trace_probes)
    den = jaxgrad.analysis.hessian_spectral_density(loss, params, key=k_den,
                                                    num_probes=config.density_probes,
                                                    num_lanczos=config.density_lanczos)
    values = np.asarray(eig.eigenvalues, np.float64)
    residuals = np.asarray(eig.residuals, np.float64)
    return {
        "top": values[:k], "top_residuals": residuals[:k],
        "bottom": values[k:], "bottom_residuals": residuals[k:],
        "converged": bool(eig.converged), "num_hvps": eig.num_hvps,
        "trace": float(tr.estimate), "trace_standard_error": float(tr.standard_error),
        "grid": np.asarray(den.grid, np.float64), "density": np.asarray(den.density, np.float64),
        "density_standard_error": np.asarray(den.density_standard_error, np.float64),
        "sigma": float(den.sigma), "slq_trace": float(den.trace),
        "slq_trace_standard_error": float(den.trace_standard_error),
    }


def _broadened(eigenvalues: np.ndarray, grid: np.ndarray, sigma: float) -> np.ndarray:
    """``(1/P) Σ_i N(t; λ_i, σ²)`` on ``grid``: the density SLQ estimates."""
    u = (grid[:, None] - eigenvalues[None, :]) / sigma
    return np.exp(-0.5 * u**2).mean(axis=1) / (sigma * np.sqrt(2 * np.pi))


def one_unit_hessian(w: float, b: np.ndarray, *, x0: float, target: float,
                     num_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Gradient ``(n, 2)`` and Hessian ``(n, 2, 2)`` of ``(σ(x_T) - target)²`` in ``(w, b)``
    for ``x_t = wσ(x_{t-1}) + b``, by the second-order forward recursion in NumPy float64.

    With ``J_t = ∂x_t/∂θ`` and ``H_t = ∂²x_t/∂θ²``, ``θ = (w, b)``, ``e_w = (1, 0)``:
    ``J_t = (σ, 1) + wσ' J_{t-1}`` and
    ``H_t = σ'(e_w J_{t-1}ᵀ + J_{t-1} e_wᵀ) + wσ'' J_{t-1}J_{t-1}ᵀ + wσ' H_{t-1}``
    (σ and its derivatives at ``x_{t-1}``); then ``∇E = 2(σ(x_T) - c)σ' J_T`` and
    ``∇²E = 2σ'² J_T J_Tᵀ + 2(σ(x_T) - c)(σ'' J_T J_Tᵀ + σ' H_T)``.
    """
    b = np.asarray(b, np.float64)
    x = np.full(b.shape, x0, np.float64)
    J = np.zeros(b.shape + (2,))
    H = np.zeros(b.shape + (2, 2))
    e_w = np.asarray([1.0, 0.0])
    for _ in range(num_steps):
        s = pascanu_cliff.sigmoid(x)
        d1, d2 = s * (1 - s), s * (1 - s) * (1 - 2 * s)
        outer = J[:, :, None] * J[:, None, :]
        cross = e_w[None, :, None] * J[:, None, :] + J[:, :, None] * e_w[None, None, :]
        H = d1[:, None, None] * cross + (w * d2)[:, None, None] * outer \
            + (w * d1)[:, None, None] * H
        J = np.stack([s, np.ones_like(s)], axis=-1) + (w * d1)[:, None] * J
        x = w * s + b
    s = pascanu_cliff.sigmoid(x)
    d1, d2 = s * (1 - s), s * (1 - s) * (1 - 2 * s)
    outer = J[:, :, None] * J[:, None, :]
    grad = (2 * (s - target) * d1)[:, None] * J
    hess = (2 * d1**2)[:, None, None] * outer + (2 * (s - target))[:, None, None] * (
        d2[:, None, None] * outer + d1[:, None, None] * H)
    return grad, hess


def cliff_defaults() -> dict:
    """The ``pascanu-cliff`` experiment's default parameters (x0, target, num_steps, ...)."""
    return config_fields(make_config(pascanu_cliff))


def _cliff_slice(config: Config) -> dict:
    """λ_max(∇²E) and ‖∇E‖ of Pascanu's one-unit net on both sides of its cliff at ``cliff_w``."""
    base = cliff_defaults()
    x0, target, steps = base["x0"], base["target"], base["num_steps"]
    w = config.cliff_w
    if w <= pascanu_cliff.critical_w(x0):
        raise ValueError(f"`cliff_w` must exceed w* = {pascanu_cliff.critical_w(x0):.4g} "
                         f"(the cliff starts there), got {w}")
    lo, hi, num = config.cliff_log_distance
    if not lo < hi:
        raise ValueError(f"`cliff_log_distance` must be [low, high, num] with low < high, "
                         f"got {config.cliff_log_distance}")
    distance = np.logspace(lo, hi, int(num))
    b_cliff = float(pascanu_cliff.cliff_b(w, x0))
    b = np.concatenate([b_cliff - distance[::-1], b_cliff + distance])

    def loss(p):
        return pascanu_cliff.one_unit_loss(p, x0=x0, target=target, num_steps=steps)

    with jax.enable_x64(True):
        p64 = jaxgrad.models.OneUnitParams(jnp.asarray(w, jnp.float64),
                                           jnp.asarray(b_cliff, jnp.float64))
        scan = jaxgrad.scan_landscape(loss, p64, {"b": b}, quantities=(
            "sharpness", "sharpness_residual", "min_curvature"), progress=False)
        sharp = np.asarray(scan.quantities["sharpness"], np.float64)
        i_peak = int(np.nanargmax(sharp))
        peak = jaxgrad.models.OneUnitParams(p64.w, jnp.asarray(b[i_peak], jnp.float64))
        lanczos = float(jaxgrad.hessian_eigenvalues(loss, peak, k=1,
                                                    key=jax.random.key(0)).eigenvalues[0])
    grad_ref, hess_ref = one_unit_hessian(w, b, x0=x0, target=target, num_steps=steps)
    # The multiplier μ = wσ'(x0) at the unstable fixed point: from b = b* + δ the linearised
    # deviation after T steps is δ(μ^T - 1)/(μ - 1); it reaches 1 at δ_c = (μ - 1)/(μ^T - 1).
    mu = w * pascanu_cliff.sigmoid(x0) * (1 - pascanu_cliff.sigmoid(x0))
    return {"w": w, "b": b, "b_cliff": b_cliff, "distance": distance,
            "signed_distance": b - b_cliff, "loss": np.asarray(scan.loss, np.float64),
            "gradient_norm": np.asarray(scan.gradient_norm, np.float64), "sharpness": sharp,
            "sharpness_residual": np.asarray(scan.quantities["sharpness_residual"], np.float64),
            "min_curvature": np.asarray(scan.quantities["min_curvature"], np.float64),
            "i_peak": i_peak, "peak_lanczos": lanczos,
            "sharpness_reference": np.linalg.eigvalsh(hess_ref)[:, -1],
            "hessian_norm_reference": np.max(np.abs(np.linalg.eigvalsh(hess_ref)), axis=-1),
            "gradient_norm_reference": np.linalg.norm(grad_ref, axis=-1),
            "multiplier": float(mu), "delta_c": float((mu - 1) / (mu**steps - 1))}


def compute(config: Config) -> Computed:
    """Train both nets; their Hessian spectra, a dense reference; the cliff slice."""
    key = jax.random.key(config.seed)
    k_data, k_init, k_train, k_hess = jax.random.split(key, 4)
    data = jaxgrad.train.load_digits(key=k_data)
    n = config.num_examples
    if not config.batch_size <= n <= data.x_train.shape[0]:
        raise ValueError(f"`num_examples` must lie in [batch_size, {data.x_train.shape[0]}], "
                         f"got {n}")
    x, y = data.x_train[:n], data.y_train[:n]
    x = x - x.mean(axis=0, keepdims=True)  # centred pixels, as in mlp-landscape
    k = config.k

    results = {}
    for residual in (False, True):
        label = "residual" if residual else "plain"
        cfg, p0 = _mlp(config, residual, k_init)
        num_params = int(ravel_pytree(p0)[0].size)
        opt = optax.sgd(config.learning_rate, momentum=config.momentum)

        def batch_loss(p, batch, cfg=cfg):
            return _cross_entropy(p, batch, cfg)

        def train(p, batch_loss=batch_loss, opt=opt):
            return jaxgrad.train_steps(
                batch_loss, opt, jaxgrad.init_train_state(p, opt),
                jaxgrad.train.shuffled_batches((x, y), config.batch_size),
                num_steps=config.train_steps, key=k_train)

        start = _clock()
        state, metrics = jax.jit(train)(p0)
        train_losses = np.asarray(metrics.loss)  # blocks until training is done
        train_seconds = _since(start)
        trained = state.params
        full = jax.tree_util.Partial(batch_loss, batch=(x, y))
        spectra = {}
        start = _clock()
        for tag, p in (("init", p0), ("trained", trained)):
            spectra[tag] = _spectra(full, p, config, k_hess)
        spectra_seconds = _since(start)

        # The dense float64 reference of the same loss at the trained weights.
        start = _clock()
        H, asymmetry = dense_hessian(cfg, trained, x, y, config.dense_chunk)
        exact = np.linalg.eigvalsh(H)
        dense_seconds = _since(start)
        ref = spectra["trained"]
        top_exact, bottom_exact = exact[::-1][:k], exact[:k]
        top_rel = float(np.max(np.abs(ref["top"] - top_exact) / np.abs(top_exact)))
        bottom_abs = float(np.max(np.abs(ref["bottom"] - bottom_exact)) / top_exact[0])
        trace_err = abs(ref["trace"] - exact.sum())
        trace_z = trace_err / max(ref["trace_standard_error"], 1e-30)
        # float32 Hessian-vector products: the trace is known to ~1e-6 Σ|λ| at best, below
        # which Hutch++'s standard error (0 once the sketch captures the spectrum) says nothing.
        trace_floor = 1e-4 * float(np.sum(np.abs(exact)))
        phi_exact = _broadened(exact, ref["grid"], ref["sigma"])
        density_l1 = float(np.trapezoid(np.abs(ref["density"] - phi_exact), ref["grid"]))
        within_residual = bool(np.all(np.abs(ref["top"] - top_exact)
                                      <= ref["top_residuals"] * (1 + 1e-6) + 1e-6 * top_exact[0]))

        train_final = float(np.mean(train_losses[-10:]))
        final_loss = float(jax.jit(full)(trained))
        init_loss = float(jax.jit(full)(p0))
        results[label] = {
            "num_params": num_params, "spectra": spectra, "train_losses": train_losses,
            "train_seconds": train_seconds, "spectra_seconds": spectra_seconds,
            "dense_seconds": dense_seconds, "init_loss": init_loss, "final_loss": final_loss,
            "train_loss_last10": train_final, "exact": exact, "ref": ref,
            "top_rel": top_rel, "bottom_abs": bottom_abs, "trace_z": trace_z,
            "density_l1": density_l1, "asymmetry": asymmetry,
            "within_residual": within_residual, "trace_err": trace_err,
            "trace_floor": trace_floor,
        }

    cliff = _cliff_slice(config)
    sharp, gnorm = cliff["sharpness"], cliff["gradient_norm"]
    i_peak, i_grad = cliff["i_peak"], int(np.nanargmax(gnorm))
    dist = np.abs(cliff["signed_distance"])
    ends = np.asarray([0, len(sharp) - 1])
    cliff_base = float(np.max(np.abs(sharp[ends])))
    cliff_ratio = float(sharp[i_peak]) / cliff_base
    grad_ratio = float(gnorm[i_grad]) / float(np.max(gnorm[ends]))
    res_rel = float(cliff["sharpness_residual"][i_peak] / abs(sharp[i_peak]))
    # Eigenvalue errors relative to ‖H‖ (backward stability): where λ_max ≈ 0 beside a
    # huge negative λ_min its own relative error means nothing.
    ref_err = float(np.max(np.abs(sharp - cliff["sharpness_reference"])
                           / cliff["hessian_norm_reference"]))
    grad_err = float(np.max(np.abs(gnorm - cliff["gradient_norm_reference"])
                            / cliff["gradient_norm_reference"]))
    delta_c = cliff["delta_c"]
    plain, resid = results["plain"], results["residual"]

    def top1(label, tag):
        return float(results[label]["spectra"][tag]["top"][0])

    def trace(label, tag):
        return float(results[label]["spectra"][tag]["trace"])

    ratio_trained = top1("plain", "trained") / top1("residual", "trained")
    ratio_init = top1("plain", "init") / top1("residual", "init")
    summary = {
        "num_params_plain": plain["num_params"], "num_params_residual": resid["num_params"],
        "sharpness_ratio_plain_over_residual": ratio_trained,
        "sharpness_ratio_plain_over_residual_init": ratio_init,
        "trace_ratio_plain_over_residual": trace("plain", "trained") / trace("residual", "trained"),
        "residual_flatter_after_training": bool(ratio_trained > 1.0),
        # Near zero cross-entropy the Hessian shrinks with the loss (softmax saturates): the
        # sharpness ratio is only comparable at comparable final losses.
        "trained_loss_ratio_plain_over_residual": plain["final_loss"] / resid["final_loss"],
        "dense_reference_max_rel_error": max(plain["top_rel"], resid["top_rel"]),
        "dense_reference_bottom_max_error_over_lambda_max": max(plain["bottom_abs"],
                                                                resid["bottom_abs"]),
        "dense_reference_trace_z": max(plain["trace_z"], resid["trace_z"]),
        "dense_reference_density_l1": max(plain["density_l1"], resid["density_l1"]),
        # max|H − Hᵀ|/max|H| of jax.hessian at the trained weights (0 away from ReLU kinks)
        "dense_reference_asymmetry": max(plain["asymmetry"], resid["asymmetry"]),
        "cliff_sharpness_peak_over_base": cliff_ratio,
        "cliff_gradient_norm_peak_over_base": grad_ratio,
        "cliff_peak_sharpness": float(sharp[i_peak]),
        "cliff_peak_gradient_norm": float(gnorm[i_grad]),
        "cliff_peak_distance": float(cliff["signed_distance"][i_peak]),
        "cliff_gradient_peak_distance": float(cliff["signed_distance"][i_grad]),
        "cliff_delta_c": delta_c,
        "cliff_sharpness_reference_max_error_over_norm": ref_err,
        "cliff_b": cliff["b_cliff"],
    }
    for label, r in results.items():
        for tag in STATES:
            s = r["spectra"][tag]
            summary[f"top_eigenvalue_{label}_{tag}"] = float(s["top"][0])
            summary[f"top_eigenvalues_{label}_{tag}"] = s["top"].tolist()
            summary[f"top_residuals_{label}_{tag}"] = s["top_residuals"].tolist()
            summary[f"most_negative_eigenvalue_{label}_{tag}"] = float(s["bottom"][0])
            summary[f"most_negative_residual_{label}_{tag}"] = float(s["bottom_residuals"][0])
            summary[f"negative_over_positive_{label}_{tag}"] = abs(float(s["bottom"][0])
                                                                  / float(s["top"][0]))
            summary[f"eigenvalues_converged_{label}_{tag}"] = s["converged"]
            summary[f"trace_{label}_{tag}"] = s["trace"]
            summary[f"trace_standard_error_{label}_{tag}"] = s["trace_standard_error"]
        summary[f"loss_{label}_init"] = r["init_loss"]
        summary[f"loss_{label}_trained"] = r["final_loss"]
        # [wall, CPU] seconds: training, the spectra at both states, the dense reference.
        summary[f"train_seconds_{label}"] = r["train_seconds"]
        summary[f"spectra_seconds_{label}"] = r["spectra_seconds"]
        summary[f"dense_reference_seconds_{label}"] = r["dense_seconds"]

    arrays = {}
    for label, r in results.items():
        arrays[f"{label}_train_losses"] = r["train_losses"]
        arrays[f"{label}_dense_eigenvalues"] = r["exact"]
        for tag in STATES:
            s = r["spectra"][tag]
            for field in ("top", "top_residuals", "bottom", "bottom_residuals", "grid", "density",
                          "density_standard_error"):
                arrays[f"{label}_{tag}_{field}"] = s[field]
    for field in ("b", "signed_distance", "loss", "gradient_norm", "sharpness",
                  "sharpness_residual", "min_curvature", "sharpness_reference",
                  "gradient_norm_reference"):
        arrays[f"cliff_{field}"] = cliff[field]
    cliff_numbers = {"i_grad": i_grad, "dist": dist, "res_rel": res_rel, "grad_err": grad_err}
    return Computed(summary, arrays, {"results": results, "cliff": cliff,
                                      "cliff_numbers": cliff_numbers})


def checks(config: Config, computed: Computed) -> list:
    """Lanczos, Hutch++ and SLQ against the dense Hessian; the cliff's sharpness peak."""
    k, out = config.k, []
    results, cliff = computed.details["results"], computed.details["cliff"]
    for label, r in results.items():
        final_loss, init_loss, num_params = r["final_loss"], r["init_loss"], r["num_params"]
        top_rel, bottom_abs, density_l1 = r["top_rel"], r["bottom_abs"], r["density_l1"]
        within_residual, trace_err, trace_floor = (r["within_residual"], r["trace_err"],
                                                   r["trace_floor"])
        exact, ref, trace_z, spectra = r["exact"], r["ref"], r["trace_z"], r["spectra"]
        out += [
            check_bound(f"{label}: full-batch loss after training / at init",
                        final_loss / init_loss, 0.05, note="training converged (near zero loss)"),
            check_bound(f"{label}, trained: top-{k} eigenvalues vs dense eigh, max relative error",
                        top_rel, 1e-2, note=f"float32 Lanczos vs float64 jax.hessian + "
                        f"numpy.linalg.eigh, same loss (P = {num_params}); float32 resolves "
                        "the softmax's 1 − p only coarsely at a training loss ~1e-5"),
            check_bound(f"{label}, trained: |λ_Lanczos − λ_dense| within the Lanczos residual "
                        "(top k)", float(within_residual), 1.0, kind=">=",
                        note="H symmetric: an eigenvalue lies within ‖Hy − θy‖ of θ"),
            check_bound(f"{label}, trained: {k} most negative eigenvalues vs dense, "
                        "max |error| / λ_max", bottom_abs, 1e-3),
            check_bound(f"{label}, trained: Hutch++ |trace error| / (4 s.e. + 1e-4 Σ|λ|)",
                        trace_err / (4 * ref["trace_standard_error"] + trace_floor), 1.0,
                        note=f"dense trace {exact.sum():.6g}, estimate {ref['trace']:.6g} ± "
                             f"{ref['trace_standard_error']:.2g} (error {trace_z:.2g} s.e.); "
                             "1e-4 Σ|λ|: the float32 floor"),
            check_bound(f"{label}, trained: SLQ density vs the dense spectrum broadened by the "
                        "same Gaussian, L1 distance", density_l1, 0.25,
                        note=f"{config.density_probes} probes × {config.density_lanczos} "
                        "Lanczos steps; the density integrates to 1"),
        ]
        for tag in STATES:
            s = spectra[tag]
            out.append(check_bound(
                f"{label}, {tag}: top-{k} relative Lanczos residual ‖Hy − θy‖/|θ|",
                float(np.max(s["top_residuals"] / np.abs(s["top"]))), 1e-2,
                note="error estimate returned by hessian_eigenvalues (float32)"))
    summary = computed.summary
    sharp = cliff["sharpness"]
    i_peak, delta_c = cliff["i_peak"], cliff["delta_c"]
    numbers = computed.details["cliff_numbers"]
    i_grad, dist, res_rel, grad_err = (numbers["i_grad"], numbers["dist"], numbers["res_rel"],
                                       numbers["grad_err"])
    ref_err = summary["cliff_sharpness_reference_max_error_over_norm"]
    cliff_ratio = summary["cliff_sharpness_peak_over_base"]
    out += [
        check_bound("cliff: λ_max along the slice vs NumPy float64 second-order recursion, "
                    "max |error| / ‖H‖", ref_err, 1e-6,
                    note="scan_landscape(quantities=['sharpness']) vs eigvalsh of the "
                         "hand-derived 2×2 Hessian"),
        check_bound("cliff: ‖∇E‖ along the slice vs the same recursion, max relative error",
                    grad_err, 1e-6),
        check_bound("cliff: distance of the λ_max peak from b* / δ_c", dist[i_peak] / delta_c,
                    10.0, note=f"δ_c = (μ−1)/(μ^T−1) = {delta_c:.3g}, μ = wσ'(0.5) = "
                               f"{cliff['multiplier']:.4g}: the linearised escape scale"),
        check_bound("cliff: distance of the ‖∇E‖ peak from b* / δ_c", dist[i_grad] / delta_c,
                    10.0, note="the gradient norm blows up on the same scale"),
        check_bound("cliff: λ_max at the peak / max |λ_max| at the slice's ends", cliff_ratio,
                    1e6, kind=">=", note=f"ends at ±{cliff['distance'][-1]:.3g} from b* = "
                                         f"{cliff['b_cliff']:.6g}"),
        check_close("cliff: λ_max at the peak, hessian_eigenvalues vs scan_landscape",
                    cliff["peak_lanczos"], float(sharp[i_peak]), rtol=1e-8),
        check_bound("cliff: relative Lanczos residual at the peak", res_rel, 1e-8),
    ]

    plain, resid = results["plain"], results["residual"]
    ratio_trained = summary["sharpness_ratio_plain_over_residual"]
    out.append(check_bound(
        "sharpness ratio λ_max plain / residual, trained (Li et al. 2018: skip connections "
        "flatten; qualitative, no published number)", ratio_trained, 0.0, kind=">=",
        note="reported, not required: "
             + ("residual is flatter" if ratio_trained > 1 else "residual is NOT flatter here")
             + f"; final losses plain {plain['final_loss']:.2g}, residual "
               f"{resid['final_loss']:.2g} (the Hessian shrinks with the loss near 0)"))

    return out


def figures(config: Config, computed: Computed) -> dict:
    """Densities, top eigenvalues, training and the cliff slice."""
    return {"hessian_spectra": _figure(config, computed.details["results"],
                                       computed.details["cliff"])}


def run(config: Config) -> Result:
    return staged_run(config, compute, checks, figures)


def _figure(config, results, cliff):
    fig, axes = plt.subplots(3, 2, figsize=(10, 12.5))
    arch_colors = {"plain": "C0", "residual": "C1"}
    for ax, tag in zip(axes[0], STATES, strict=True):
        peak = max(results[label]["spectra"][tag]["density"].max() for label in ARCHITECTURES)
        floor = 1e-7 * peak
        scale = max(abs(results[label]["spectra"][tag]["top"][0]) for label in ARCHITECTURES)
        for label in ARCHITECTURES:
            s = results[label]["spectra"][tag]
            c = arch_colors[label]
            ax.plot(s["grid"], np.maximum(s["density"], floor), color=c,
                    label=f"{label}: λ_max = {s['top'][0]:.3g}, tr = {s['trace']:.3g}")
            band = 2 * s["density_standard_error"]
            ax.fill_between(s["grid"], np.maximum(s["density"] - band, floor),
                            np.maximum(s["density"] + band, floor), color=c, alpha=0.25, lw=0)
        ax.set_yscale("log")
        ax.set_ylim(floor, 3 * peak)
        # symlog: the bulk near 0 and the outliers, decades apart after training, both show
        linthresh = 1e-2 * scale
        ax.set_xscale("symlog", linthresh=linthresh, linscale=1.0)
        # label 0 and the decades outside the linear band (±linthresh would crowd 0)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(
            lambda v, _, lt=linthresh: "0" if v == 0 else "" if abs(v) < 1.5 * lt else f"{v:g}"))
        ax.set_xlabel("Hessian eigenvalue λ (symlog scale)")
        ax.set_ylabel("spectral density φ(λ) (log scale)")
        ax.set_title(f"{tag}, depth {config.depth}: SLQ density (±2 s.e. across probes)",
                     fontsize=9)
        ax.legend(fontsize=7, loc="upper right")

    ax = axes[1, 0]
    k = config.k
    ranks = np.arange(1, k + 1)
    styles = {("plain", "init"): ("C0", "o", "--"), ("plain", "trained"): ("C0", "o", "-"),
              ("residual", "init"): ("C1", "s", "--"), ("residual", "trained"): ("C1", "s", "-")}
    for (label, tag), (c, m, ls) in styles.items():
        s = results[label]["spectra"][tag]
        ax.errorbar(ranks, s["top"], yerr=s["top_residuals"], color=c, marker=m, ls=ls,
                    capsize=2, label=f"{label}, {tag}: λ₁..λ_{k}")
        ax.plot(ranks, np.abs(s["bottom"]), color=c, marker=m, ls=ls, mfc="none", alpha=0.6,
                lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks(ranks)
    ax.set_xlabel("rank i (filled: λ_i, largest; open, thin: |λ_i|, most negative)")
    ax.set_ylabel("|Hessian eigenvalue| (log scale)")
    ax.set_title("Extreme eigenvalues (bars: Lanczos residual bounds)", fontsize=9)
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    for label, c, m in (("plain", "C0", "o"), ("residual", "C1", "s")):
        r = results[label]
        exact = r["exact"]
        ax.plot(np.arange(1, k + 1), exact[::-1][:k], color=c, ls="none", marker=m, ms=9,
                mfc="none", label=f"{label}: dense eigh (top)")
        ax.plot(np.arange(1, k + 1), r["ref"]["top"], color=c, ls="none", marker="x",
                label=f"{label}: Lanczos (max rel. err {r['top_rel']:.1e})")
    ax.set_yscale("log")
    ax.set_xlabel("rank i")
    ax.set_ylabel("λ_i (log scale)")
    ax.set_title("Trained: Lanczos (float32) vs dense float64 Hessian + eigh", fontsize=9)
    ax.legend(fontsize=7)

    ax = axes[2, 0]
    for label, c in (("plain", "C0"), ("residual", "C1")):
        ax.semilogy(results[label]["train_losses"], color=c, lw=0.8, label=label)
    ax.set_xlabel(f"SGD step (momentum {config.momentum}, batch {config.batch_size})")
    ax.set_ylabel("minibatch cross-entropy (log scale)")
    ax.set_title("Training", fontsize=9)
    ax.legend(fontsize=8)

    ax = axes[2, 1]
    d = cliff["signed_distance"]
    for side, sel, ls in (("below", d < 0, "--"), ("above", d > 0, "-")):
        dist = np.abs(d[sel])
        sh = cliff["sharpness"][sel]
        ax.loglog(dist, np.abs(sh), color="C3", ls=ls, lw=0.8,
                  label=f"|λ_max(∇²E)|, b {'<' if side == 'below' else '>'} b*")
        ax.loglog(dist[sh > 0], sh[sh > 0], "C3.", ls="none")
        ax.loglog(dist[sh <= 0], -sh[sh <= 0], "o", color="C3", mfc="none", ms=4, ls="none",
                  label="λ_max < 0 (E concave there)" if side == "above" else None)
        ax.loglog(dist, cliff["gradient_norm"][sel], color="C2", ls=ls, marker=".",
                  label=f"‖∇E‖, b {'<' if side == 'below' else '>'} b*")
    ax.set_xlabel("|b − b*|, distance from the closed-form cliff (log scale)")
    ax.set_ylabel("λ_max(∇²E) and ‖∇E‖ (log scale)")
    ax.set_title(f"Pascanu's one-unit net at w = {cliff['w']}: curvature and gradient "
                 "across the cliff", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig
