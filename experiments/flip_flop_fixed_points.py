"""Fixed points of a trained 3-bit flip-flop network (Sussillo & Barak 2013).

Source: D. Sussillo and O. Barak, "Opening the black box: low-dimensional dynamics in
high-dimensional recurrent neural networks", *Neural Computation* 25(3), 626-649 (2013),
section 3.1 and figures 2-3. Three input channels carry sparse ±1 pulses; each of three
outputs must hold the sign of the last pulse on its channel. The trained network stores
the 2³ = 8 memories as 8 stable fixed points of its input-free dynamics, separated by
saddles (Sussillo & Barak report 8 attractors and 18+ saddles; an index-1 saddle's one
unstable direction points at the two memories it separates).

Measured (seed 0): default 8 stable points (max |λ| 0.64), 18 saddles (12 with one
unstable direction, 5 with two, 1 with three), held-out MSE 3e-5 on settled steps; quick
8 stable (max |λ| 0.61), 17 saddles.

Protocol: a tanh RNN ``h' = tanh(W_rec h + W_in u + b)`` (``SequenceModel`` cell
``"elman_tanh"``) with a linear readout at every step is trained with Adam through
``jaxgrad.train_steps`` (one ``lax.scan``) on fresh batches of flip-flop sequences, loss
the mean squared error over every step. Its fixed points at zero input are then found with
``jaxgrad.slow_points`` (minimising ``q(h) = ½‖F(h, 0) − h‖²`` with Adam, Newton
refinement, merging), started from states sampled along held-out trajectories with a
little Gaussian noise. A stable point has every Jacobian eigenvalue inside the unit
circle; a saddle has some inside and some outside. Each stable point is decoded through
the readout to a sign pattern; the 8 must be distinct.

Departures from the paper: Sussillo & Barak trained a 1000-unit tanh RNN in continuous
time with Hessian-free optimisation; here a 64-unit (quick: 48) discrete-time tanh RNN
trained with Adam and global-norm clipping, sequences of 100 steps (quick: 60) with
pulse probability 0.04 per step and channel, and a pulse of random sign on every
channel at the first step (so that every output is defined from the start: the paper's
targets before the first pulse are not needed). Fixed points are searched in float64
(the network is trained in float32, its parameters then cast). The saddle count is
checked only as ``>= 1``: how many saddles a finite set of starts reaches depends on the
starts (the paper's 18+ come from many more starts near the transitions).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jaxgrad
from jaxgrad.train import SequenceModel

from ._runner import Computed, Result, check_bound, check_close, staged_run

NAME = "flip-flop-fixed-points"
DESCRIPTION = ("3-bit flip-flop tanh RNN trained with Adam: 8 stable fixed points (one per "
               "memory), saddles between them, eigenvalues vs the unit circle "
               "(Sussillo & Barak 2013).")


@dataclasses.dataclass(frozen=True)
class Config:
    """The network, its training on the 3-bit flip-flop, and the fixed-point search."""

    num_units: int = 64  #: hidden units of the tanh RNN
    length: int = 100  #: steps per sequence
    pulse_prob: float = 0.04  #: probability of a pulse per step and channel
    batch_size: int = 64  #: sequences per Adam update
    num_steps: int = 1500  #: Adam updates
    learning_rate: float = 3e-3  #: Adam's learning rate
    clip_norm: float = 1.0  #: global-norm clipping threshold
    num_eval_sequences: int = 64  #: held-out sequences (error, search starts)
    num_starts: int = 1024  #: starts of the fixed-point search
    start_noise: float = 0.1  #: std of the Gaussian noise added to each start
    max_search_steps: int = 5000  #: steps of the slow-point search
    max_output_error: float = 0.05  #: bound on the held-out settled output MSE (a check)
    seed: int = 0  #: PRNG seed


QUICK_CONFIG = {"num_units": 48, "length": 60, "num_steps": 800, "num_starts": 512,
                "num_eval_sequences": 32, "max_search_steps": 3000}
SUMMARY_KEYS = ("num_stable_fixed_points", "num_saddles", "max_stable_eigenvalue_modulus",
                "num_slow_points", "num_fixed_points", "saddle_num_unstable",
                "stable_sign_patterns", "output_mse", "settled_output_mse",
                "settled_sign_error_rate", "final_train_loss", "num_search_steps",
                "num_failed_starts")

NUM_BITS = 3


def flip_flop_batch(key: jax.Array, batch_size: int, length: int, pulse_prob: float,
                    num_bits: int = NUM_BITS) -> tuple[jax.Array, jax.Array]:
    """Flip-flop inputs and targets, each ``(batch_size, length, num_bits)`` float32.

    Every channel pulses (±1, equally likely) at step 0 and then at each step with
    probability ``pulse_prob``; the target on a channel is the sign of its latest pulse.
    """
    k_on, k_sign = jax.random.split(key)
    shape = (batch_size, length, num_bits)
    on = jax.random.bernoulli(k_on, pulse_prob, shape).at[:, 0, :].set(True)
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, shape), 1.0, -1.0).astype(jnp.float32)
    inputs = jnp.where(on, sign, jnp.zeros((), jnp.float32))
    # Target: the last nonzero input so far on each channel (carried forward by a scan).
    def carry(prev, u):
        nxt = jnp.where(u != 0, u, prev)
        return nxt, nxt

    _, targets = jax.lax.scan(carry, jnp.zeros((batch_size, num_bits), jnp.float32),
                              jnp.swapaxes(inputs, 0, 1))
    return inputs, jnp.swapaxes(targets, 0, 1)


def network_states(model, params, inputs):
    """States ``(B, T, N)`` from the zero state (the state after each input)."""
    def one(u):
        def body(h, ut):
            h = model.step(h, ut, params.cell)
            return h, h

        _, hs = jax.lax.scan(body, model.initial_state(inputs.dtype), u)
        return hs

    return jax.vmap(one)(inputs)


def network_outputs(model, params, inputs):
    hs = network_states(model, params, inputs)
    return hs @ params.W_out.T + params.b_out[None, None, :]


def compute(config: Config) -> Computed:
    """Train the network; search its fixed points at u = 0 from held-out states."""
    n, length = config.num_units, config.length
    model = SequenceModel("elman_tanh", n, NUM_BITS, NUM_BITS, readout="all")
    key = jax.random.key(config.seed)
    k_init, k_train, k_eval, k_noise = jax.random.split(key, 4)
    params0 = model.init(k_init, recurrent_scale=0.9)

    def loss_fn(params, batch):
        inputs, targets = batch
        return jnp.mean((network_outputs(model, params, inputs) - targets) ** 2)

    def sample(k, t):
        return flip_flop_batch(k, config.batch_size, length, config.pulse_prob)

    optimizer = optax.chain(optax.clip_by_global_norm(config.clip_norm),
                            optax.adam(config.learning_rate))
    train = jax.jit(lambda p, k: jaxgrad.train_steps(
        loss_fn, optimizer, jaxgrad.init_train_state(p, optimizer), sample,
        num_steps=config.num_steps, key=k))
    state, metrics = train(params0, k_train)
    params = state.params
    loss_curve = np.asarray(metrics.loss)

    # Held-out trajectories: output error and the starts of the fixed-point search.
    inputs, targets = flip_flop_batch(k_eval, config.num_eval_sequences, length,
                                      config.pulse_prob)
    hs = np.asarray(jax.jit(lambda p, u: network_states(model, p, u))(params, inputs))
    outs = hs @ np.asarray(params.W_out).T + np.asarray(params.b_out)
    tg = np.asarray(targets)
    # Error away from the steps just after a pulse (the network needs a step or two to flip).
    settled = np.ones(tg.shape[:2], bool)
    pulse = np.any(np.asarray(inputs) != 0, axis=-1)
    for lag in range(3):
        settled[:, lag:] &= ~pulse[:, : length - lag]
    output_mse = float(np.mean((outs - tg) ** 2))
    settled_mse = float(np.mean((outs - tg)[settled] ** 2))
    sign_errors = float(np.mean(np.sign(outs[settled]) != tg[settled]))

    flat = hs.reshape(-1, n)
    rng = np.random.default_rng(config.seed)
    pick = rng.choice(flat.shape[0], size=min(config.num_starts, flat.shape[0]),
                      replace=False)
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a, np.float64)), params)
        noise = config.start_noise * jax.random.normal(k_noise, (len(pick), n), jnp.float64)
        starts = jnp.asarray(flat[pick].astype(np.float64)) + noise
        sp = jaxgrad.slow_points(model.step, starts, jnp.zeros((NUM_BITS,), jnp.float64),
                                 params=p64.cell, max_steps=config.max_search_steps,
                                 q_tol=1e-10, newton_steps=20, merge_tol=1e-4)
    x = np.asarray(sp.x)
    fixed = np.asarray(sp.fixed)
    stab = np.asarray(sp.stability)
    eig = np.asarray(sp.eigenvalues)
    labels = [jaxgrad.STABILITY_LABELS[s] for s in stab]
    is_stable = fixed & (stab == 0)
    is_saddle = fixed & (stab == 2)
    num_stable, num_saddles = int(is_stable.sum()), int(is_saddle.sum())
    max_mod = float(np.max(np.abs(eig[is_stable]))) if num_stable else float("nan")
    readout = x @ np.asarray(params.W_out, np.float64).T + np.asarray(params.b_out, np.float64)
    patterns = np.sign(readout[is_stable]).astype(int)
    distinct = len({tuple(p) for p in patterns})
    saddle_unstable = np.asarray(sp.num_unstable)[is_saddle]

    summary = {
        "num_stable_fixed_points": num_stable,
        "num_saddles": num_saddles,
        "max_stable_eigenvalue_modulus": max_mod,
        "num_slow_points": int(len(labels)),
        "num_fixed_points": int(fixed.sum()),
        "saddle_num_unstable": saddle_unstable.tolist(),
        "stable_sign_patterns": patterns.tolist(),
        "output_mse": output_mse,
        "settled_output_mse": settled_mse,
        "settled_sign_error_rate": sign_errors,
        "final_train_loss": float(loss_curve[-max(1, len(loss_curve) // 20):].mean()),
        "num_search_steps": int(sp.num_steps),
        "num_failed_starts": int(sp.num_failed),
    }
    arrays = {"loss": loss_curve, "fixed_points": x, "stability": stab, "fixed": fixed,
              "eigenvalues": eig, "readout": readout, "trajectories": hs[:8]}
    details = {"hs": hs, "targets": tg, "outputs": outs, "is_stable": is_stable,
               "is_saddle": is_saddle, "patterns": patterns, "distinct": distinct}
    return Computed(summary, arrays, details)


def checks(config: Config, computed: Computed) -> list:
    """Eight distinct stable points inside the unit circle, saddles, a trained network."""
    summary, d = computed.summary, computed.details
    settled_mse, num_stable = summary["settled_output_mse"], summary["num_stable_fixed_points"]
    max_mod, num_saddles = summary["max_stable_eigenvalue_modulus"], summary["num_saddles"]
    distinct, is_stable, readout = d["distinct"], d["is_stable"], computed.arrays["readout"]
    return [
        check_bound("held-out output MSE (settled steps, ≥ 3 steps after a pulse)",
                    settled_mse, config.max_output_error),
        check_close("number of stable fixed points (one per 3-bit memory)", num_stable,
                    2 ** NUM_BITS),
        check_bound("max |λ| over the stable points' Jacobians", max_mod, 1.0,
                    note="every stable point strictly inside the unit circle"),
        check_bound("number of saddles found", num_saddles, 1, kind=">=",
                    note="Sussillo & Barak found 18+ with many more starts"),
        check_close("distinct readout sign patterns of the stable points", distinct,
                    2 ** NUM_BITS, note="each memory state decodes to its own pattern"),
        check_close("max |readout| deviation of stable points from ±1",
                    float(np.max(np.abs(np.abs(readout[is_stable]) - 1.0)))
                    if num_stable else float("nan"), 0.0, atol=0.2),
    ]


def figures(config: Config, computed: Computed) -> dict:
    """Fixed points in PCA space, their Jacobian spectra, the learning curve."""
    d, arrays = computed.details, computed.arrays
    return _figures(d["hs"], d["targets"], d["outputs"], arrays["fixed_points"],
                    d["is_stable"], d["is_saddle"], arrays["eigenvalues"], d["patterns"],
                    arrays["loss"])


def run(config: Config) -> Result:
    return staged_run(config, compute, checks, figures)


def _figures(hs, targets, outs, x, is_stable, is_saddle, eig, patterns, loss_curve):
    figures = {}
    n = hs.shape[-1]
    flat = hs.reshape(-1, n)
    mean = flat.mean(axis=0)
    _, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
    pcs = vt[:3]
    var = s[:3] ** 2 / np.sum(s ** 2)
    traj = (hs - mean) @ pcs.T
    fp = (x - mean) @ pcs.T
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
    for ax, (i, j) in zip(axes[:2], ((0, 1), (0, 2)), strict=True):
        for b in range(min(6, len(traj))):
            ax.plot(traj[b, :, i], traj[b, :, j], "-", color="C7", lw=0.6, alpha=0.6,
                    label="trajectories" if b == 0 else None)
        ax.plot(fp[is_stable, i], fp[is_stable, j], "o", color="k", ms=8,
                label=f"stable ({int(is_stable.sum())})")
        ax.plot(fp[is_saddle, i], fp[is_saddle, j], "x", color="C3", ms=7, mew=1.8,
                label=f"saddle ({int(is_saddle.sum())})")
        ax.set(xlabel=f"PC{i + 1} ({var[i]:.0%} var.)", ylabel=f"PC{j + 1} ({var[j]:.0%} var.)")
        ax.set_title(f"Fixed points at u = 0, PC{i + 1}-PC{j + 1}", fontsize=10)
        ax.legend(fontsize=7, loc="best")
    for k, p in zip(np.flatnonzero(is_stable), patterns, strict=True):
        axes[0].annotate("".join("+" if v > 0 else "−" for v in p), fp[k, :2], fontsize=7,
                         xytext=(4, 4), textcoords="offset points")
    t = np.arange(hs.shape[1])
    for c in range(targets.shape[-1]):
        off = 3.0 * c
        axes[2].plot(t, targets[0, :, c] + off, "k-", lw=1.2,
                     label="target" if c == 0 else None)
        axes[2].plot(t, outs[0, :, c] + off, "-", color=f"C{c}", lw=1,
                     label=f"output {c + 1}")
    axes[2].set(xlabel="step", ylabel="output (channels offset by 3)")
    axes[2].set_title("A held-out sequence", fontsize=10)
    axes[2].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    figures["fixed_points_pca"] = fig

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 400))
    reach = max(1.3, 1.1 * float(np.max(np.abs(eig)))) if eig.size else 1.3
    for ax, mask, name, color in ((axes[0], is_stable, "stable points", "C0"),
                                  (axes[1], is_saddle, "saddles", "C3")):
        ax.plot(circle.real, circle.imag, "k--", lw=0.8, label="unit circle")
        ev = eig[mask].ravel()
        ax.plot(ev.real, ev.imag, ".", color=color, ms=3,
                label=f"eigenvalues of ∂F/∂h, {int(mask.sum())} {name}")
        if mask.any():
            top = eig[mask][:, 0]
            ax.plot(top.real, top.imag, "o", mfc="none", color="k", ms=7,
                    label="largest |λ| of each point")
        ax.set_aspect("equal")
        ax.set(xlabel="Re λ", ylabel="Im λ", xlim=(-reach, reach), ylim=(-reach, reach))
        ax.set_title(f"Jacobian spectra at the {name}", fontsize=10)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    figures["eigenvalue_spectra"] = fig

    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.semilogy(loss_curve)
    ax.set(xlabel="Adam step", ylabel="training MSE")
    ax.set_title("Learning curve", fontsize=10)
    fig.tight_layout()
    figures["learning_curve"] = fig
    return figures
