"""‖∂L/∂x_{T−k}‖ against the lag k for the Pascanu RNN (sigmoid, tanh), LSTM and GRU.

On the adding problem (Hochreiter & Schmidhuber 1997, in the form of Le, Jaitly & Hinton
2015) the loss sits at the last step, so ``∂L/∂x_{T−k} = ∂L/∂x_T ∏ ∂x_{t}/∂x_{t−1}`` and
its decay with k is the vanishing-gradient rate of each cell. It is measured at
initialisation and after training (Adam with norm clipping, a few seeds per cell), with
fitted per-step rates ``log‖∂L/∂x_{T−k}‖ ≈ a + rate·k`` (``jaxgrad.fit_log_rate``), the
learning curves against the predict-1 baseline MSE = Var(U₁ + U₂) = 1/6, and which cells
solve the task by Pascanu et al.'s criterion (< 1% of fresh sequences with squared error
above 0.04).

For the Pascanu RNN, Pascanu et al.'s bound ``‖∂x_t/∂x_{t−1}‖ ≤ ‖W_rec‖₂ γ`` (γ = 1/4 for
the sigmoid) caps the rate at ``log(‖W_rec‖₂ γ)``; the sigmoid RNN's rate is checked
against it, and the ordering "sigmoid RNN decays faster than tanh RNN and LSTM" is checked
at initialisation, where it is robust.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from jaxgrad import MAX_DERIVATIVE, fit_log_rate
from jaxgrad.train import SequenceModel, get_task, sequence_state_grad_norms, with_clipping

from ._runner import Computed, Result, check_bound, staged_run
from ._sequence_training import replica_success, train_replicas

NAME = "lstm-vs-rnn"
DESCRIPTION = (
    "‖∂L/∂x_{T−k}‖ vs k for sigmoid/tanh RNN, LSTM, GRU on the adding problem, at init and "
    "after training; learning curves; which solve T = 100."
)


@dataclasses.dataclass(frozen=True)
class Config:
    """The cells, the adding problem and the training of each cell."""

    #: cells compared (`SequenceModel.for_task` names)
    cells: tuple[str, ...] = ("rnn_sigmoid", "rnn_tanh", "lstm", "gru")
    length: int = 100  #: sequence length T
    num_units: int = 32  #: hidden units
    num_seeds: int = 2  #: replicas trained per cell
    batch_size: int = 32  #: sequences per update
    num_steps: int = 600  #: Adam updates
    learning_rate: float = 0.01  #: Adam's learning rate
    clip_norm: float = 1.0  #: gradient-norm clipping threshold
    spectral_radius: float = 1.0  #: recurrent scale at initialisation
    forget_bias: float = 1.0  #: LSTM forget-gate bias at initialisation
    grad_batch: int = 256  #: sequences of the ‖∂L/∂x_{T−k}‖ batch (and the test MSE)
    eval_sequences: int = 2000  #: fresh sequences of the success criterion
    seed: int = 0  #: PRNG seed


QUICK_CONFIG = {"cells": ("rnn_sigmoid", "rnn_tanh", "lstm"), "length": 40, "num_units": 12,
                "num_steps": 40, "grad_batch": 64,
                "eval_sequences": 500}
SUMMARY_KEYS = ("rate_init", "rate_trained", "final_mse", "test_mse", "error_rate",
                "solved_fraction", "spectral_norm_bound_rate", "solves_T", "baseline_mse")

#: Le et al. (2015): always predicting 1 gives MSE Var(U1 + U2) = 1/6.
BASELINE_MSE = 1.0 / 6.0
#: Norms below this are treated as underflowed (float32 normal range ends near 1.2e-38).
FLOOR = 1e-30


def _rate(norms: np.ndarray) -> float:
    """Fitted per-step log rate of ``‖∂L/∂x_{T−k}‖`` over lags k = 1..K.

    K is the last lag before the norm first falls below ``FLOOR`` (float32 underflow: the
    sigmoid RNN's gradient reaches 0 within a few dozen steps), so the fit sees no
    flushed-to-zero values.
    """
    by_lag = np.asarray(norms)[::-1]  # index k = lag k
    below = np.flatnonzero(~(by_lag > FLOOR))
    stop = int(below[0]) if below.size else len(by_lag)
    if stop < 3:
        return float("nan")
    rate, _ = fit_log_rate(jnp.asarray(np.log(by_lag[1:stop])))
    return float(rate)


def compute(config: Config) -> Computed:
    """Train each cell; ‖∂L/∂x_{T−k}‖ and its fitted rate at init and after training."""
    task = get_task("adding_problem")
    length, seeds = config.length, config.num_seeds
    key = jax.random.key(config.seed)
    k_init, k_data, k_grad, k_eval = jax.random.split(key, 4)
    grad_batch = task.sample(k_grad, config.grad_batch, length)
    inner = with_clipping(optax.adam(config.learning_rate), max_norm=config.clip_norm)
    summary = {k: {} for k in ("rate_init", "rate_trained", "final_mse", "test_mse",
                               "error_rate", "solved_fraction", "spectral_norm_bound_rate")}
    arrays = {}
    for c, cell in enumerate(config.cells):
        model = SequenceModel.for_task(cell, config.num_units, task)
        keys = jax.random.split(jax.random.fold_in(k_init, c), seeds)
        # Not jitted: init_lstm checks `forget_bias` with jnp.isfinite, which needs a value.
        init = jax.vmap(lambda k, m=model: m.init(
            k, recurrent_scale=config.spectral_radius, forget_bias=config.forget_bias))
        params0 = init(keys)
        grad_norms = jax.jit(jax.vmap(
            lambda p, m=model: sequence_state_grad_norms(m, task, p, grad_batch)))
        n0 = np.asarray(grad_norms(params0))  # (seeds, T)
        params, m = train_replicas(
            model, task, params0, inner, length=length, batch_size=config.batch_size,
            num_steps=config.num_steps, key=k_data, stateless=False,
        )
        n1 = np.asarray(grad_norms(params))
        rates, solved = replica_success(model, task, params, key=k_eval, length=length,
                                        num_sequences=config.eval_sequences)
        test_mse = jax.jit(jax.vmap(
            lambda p, m=model: task.loss(_outputs(m, p, grad_batch.inputs), grad_batch.targets)
        ))(params)
        tail = max(1, config.num_steps // 10)
        summary["rate_init"][cell] = [_rate(n) for n in n0]
        summary["rate_trained"][cell] = [_rate(n) for n in n1]
        summary["final_mse"][cell] = float(m["replica_loss"][-tail:].mean())
        summary["test_mse"][cell] = np.asarray(test_mse).tolist()
        summary["error_rate"][cell] = rates.tolist()
        summary["solved_fraction"][cell] = float(np.mean(solved))
        if cell.startswith("rnn"):
            gamma = MAX_DERIVATIVE["sigmoid" if cell == "rnn_sigmoid" else "tanh"]
            W = np.asarray(params0.cell.W_rec)
            bound = [float(np.log(np.linalg.norm(w, 2) * gamma)) for w in W]
            summary["spectral_norm_bound_rate"][cell] = bound
        arrays[f"{cell}_grad_norms_init"] = n0
        arrays[f"{cell}_grad_norms_trained"] = n1
        arrays[f"{cell}_loss"] = m["replica_loss"]
    summary["solves_T"] = {cell: summary["solved_fraction"][cell] > 0 for cell in config.cells}
    summary["baseline_mse"] = BASELINE_MSE
    return Computed(summary, arrays)


def checks(config: Config, computed: Computed) -> list:
    """Pascanu et al.'s bound on the sigmoid RNN's rate; the sigmoid RNN decays fastest."""
    summary, out = computed.summary, []
    mean_rate = {cell: float(np.mean(summary["rate_init"][cell])) for cell in config.cells}
    if "rnn_sigmoid" in mean_rate:
        excess = np.asarray(summary["rate_init"]["rnn_sigmoid"]) - np.asarray(
            summary["spectral_norm_bound_rate"]["rnn_sigmoid"])
        out.append(check_bound(
            "sigmoid RNN at init: max over seeds of fitted rate − log(‖W_rec‖₂/4)",
            float(np.max(excess)), 0.0,
            note="Pascanu et al. 2013: ‖∂x_t/∂x_{t-1}‖ ≤ ‖W_rec‖₂ γ with γ = 1/4 caps the rate",
        ))
        for other in ("rnn_tanh", "lstm"):
            if other in mean_rate:
                out.append(check_bound(
                    f"at init: rate(sigmoid RNN) − rate({other}) < 0",
                    mean_rate["rnn_sigmoid"] - mean_rate[other], 0.0,
                    note="the sigmoid RNN's gradient decays fastest (σ' ≤ 1/4)",
                ))
    return out


def figures(config: Config, computed: Computed) -> dict:
    """‖∂L/∂x_{T−k}‖ against k at init and after training; learning curves."""
    arrays = computed.arrays
    norms_at = {cell: (arrays[f"{cell}_grad_norms_init"], arrays[f"{cell}_grad_norms_trained"])
                for cell in config.cells}
    curves = {cell: arrays[f"{cell}_loss"] for cell in config.cells}
    return _figures(config, norms_at, curves, computed.summary)


def run(config: Config) -> Result:
    return staged_run(config, compute, checks, figures)


def _outputs(model, params, inputs):
    from jaxgrad.train import sequence_outputs

    return sequence_outputs(model, params, inputs)


def _figures(config, norms_at, curves, summary):
    T = config.length
    lags = np.arange(T)
    # Gradients at init and after training side by side, learning curves below: the
    # figure reads at the report's column width.
    fig = plt.figure(figsize=(10, 8.2))
    grid = fig.add_gridspec(2, 4)
    axes = [fig.add_subplot(grid[0, :2]), fig.add_subplot(grid[0, 2:]),
            fig.add_subplot(grid[1, 1:3])]
    for c, cell in enumerate(config.cells):
        n0, n1 = norms_at[cell]
        # Geometric mean over seeds; lags where a seed's norm underflowed are not drawn.
        g0 = np.exp(np.mean(np.log(np.where(n0 > FLOOR, n0, np.nan)), axis=0))[::-1]
        g1 = np.exp(np.mean(np.log(np.where(n1 > FLOOR, n1, np.nan)), axis=0))[::-1]
        r0 = np.mean(summary["rate_init"][cell])
        r1 = np.mean(summary["rate_trained"][cell])
        axes[0].semilogy(lags, g0, color=f"C{c}", label=f"{cell} (ln-slope {r0:.3f}/step)")
        axes[1].semilogy(lags, g1, color=f"C{c}", label=f"{cell} (ln-slope {r1:.3f}/step)")
        loss = curves[cell]
        window = max(1, len(loss) // 30)
        kernel = np.ones(window) / window
        smooth = np.convolve(loss.mean(axis=1), kernel, mode="valid")
        solved = summary["solved_fraction"][cell]
        axes[2].semilogy(np.arange(window - 1, len(loss)), smooth, color=f"C{c}",
                         label=f"{cell} (solved {solved:.0%} of seeds)")
    for ax, when in zip(axes[:2], ("at initialisation", "after training"), strict=True):
        ax.set_xlabel("lag k")
        ax.set_ylabel(r"$\|\partial L/\partial x_{T-k}\|$ (geometric mean over seeds)")
        ax.set_title(f"Adding problem, T = {T}: gradient {when}", fontsize=10)
        ax.legend(fontsize=7, loc="lower left")
        ax.grid(True, which="major", alpha=0.3)
    axes[2].axhline(BASELINE_MSE, color="k", ls="--", lw=0.8, label="predict 1: MSE = 1/6")
    axes[2].set_xlabel("step")
    axes[2].set_ylabel("training MSE (mean over seeds)")
    axes[2].set_title("Learning curves (Adam + clipping)", fontsize=10)
    axes[2].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    axes[2].grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return {"gradient_vs_lag": fig}
