"""Gradient flossing on a delayed-recall task (Engelken 2023, arXiv:2312.17306).

A vanilla tanh RNN ``h_t = tanh(W h_{t-1} + U x_t + b)`` (N = 32) sees a cue bit ``±1`` on
one input channel at step 0 and random ``±1`` distractor bits on a second channel at every
step, and must report the cue with a logistic readout of the state ``d`` steps later: a copy
of one bit across a delay ``d``. The back-propagated error from the readout to the cue
scales like ``exp(λ_1 d)``: it vanishes or explodes unless the top Lyapunov exponents are
near zero. Gradient flossing minimises ``Σ_{i≤k} λ_i²`` by differentiating through the QR
iteration (``jaxgrad.flossing_loss``). Three arms start from the same weights and see the
same data:

- no flossing;
- flossing before training (``jaxgrad.floss``, 300 Adam updates on one input stream);
- flossing before and during training: the same start, then ``jaxgrad.train`` with
  ``regularizer=jaxgrad.flossing_regularizer(...)`` (weight 1, k = 4, a fresh 170-step
  distractor stream every step).

All replicas (delays × seeds × arms) train in two ``jaxgrad.train`` calls with
``jaxgrad.vmap_optimizer`` (Adam 3e-3, batch 32, 500 steps; sequences as long as the longest
delay, the loss reads the state at each replica's own delay); per-replica learning curves
come from a monitor. The networks start in the ordered phase (gain 0.8, λ_1 ≈ −0.67 per
step with the distractor input), where the gradient from the cue decays like
``e^{-0.67 d}``; flossing (k = 4, exact gradient through the trajectory) brings the top four
exponents to about −0.02 on held-out input.

Measured at the default scale (4 seeds per delay; success = test accuracy ≥ 0.9 on 512
held-out sequences; 80-90 s on 2 CPU cores):

    delay d            10    20    40    80    160
    no flossing        4/4   1/4   0/4   0/4   0/4
    flossing before    4/4   4/4   4/4   4/4   2/4
    before + during    4/4   4/4   4/4   4/4   3/4

With 8 seeds (``--set delays=[120,160,200] --set num_seeds=8``): no flossing 0/8, 0/8,
0/8; flossing before 7/8, 3/8, 3/8; before and during 7/8, 6/8, 4/8. So without flossing
success collapses between d = 10 and d = 40; with flossing before training it holds to
d = 80-120 at this budget, and flossing during training as well raised it somewhat at the
longest delays (10/16 vs 6/16 at d = 160 and 200; few seeds). At d = 320 every arm failed (4
seeds). Flossing during training keeps the trained networks' |λ_1| ≈ 0.01 at every
delay, while after training alone λ_1 ranges from about 0 to −2 (at short delays a
contracting, bistable memory suffices); its learning curves are noisier (loss spikes with
Adam).
The quick configuration (2 seeds, d = 10 and 40, 300 steps) gave 2/2, 0/2 without flossing
and 2/2, 2/2 in both flossing arms.

From the chaotic side (gain 2.5-4, λ_1 ≈ 0.1-0.35 with input) flossing did not work
reliably in our trials (4 seeds; Adam 1e-3 to 1e-2; streams of 30-150 steps; exact or
truncated gradient): the finite-time exponents of a chaotic trajectory are a rough
function of the weights (a step of norm 1e-3 changed Σλ² by 18 %), the exact gradient
overflows on 150-step streams, the truncated one (``trajectory_gradient=False``) barely
moved Σλ², and on short streams some seeds overshot deep into the ordered phase while
others stayed chaotic. The task is a one-bit recall, not the paper's stream copy/XOR
tasks; the paper's exact settings (network size, gain, schedule) could not be checked here.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jaxgrad

from ._runner import Result, check_bound

NAME = "gradient-flossing"
DESCRIPTION = ("Delayed recall of a cue bit across d distractor steps with a vanilla tanh RNN: "
               "success rate per delay and learning curves without flossing, with flossing "
               "before training, and before and during training.")
DEFAULT_CONFIG = {
    "num_units": 32,
    "delays": [10, 20, 40, 80, 160],
    "delay": 80,
    "gain": 0.8,
    "input_std": 1.0,
    "num_seeds": 4,
    "batch_size": 32,
    "train_steps": 500,
    "learning_rate": 3e-3,
    "floss_steps": 300,
    "floss_learning_rate": 1e-2,
    "floss_exponents": 4,
    "floss_sequence": 150,
    "floss_transient": 20,
    "floss_trajectory_gradient": True,
    "floss_weight": 1.0,
    "success_accuracy": 0.9,
    "eval_batch": 512,
    "seed": 0,
}
QUICK_CONFIG = {"num_seeds": 2, "delays": [10, 40], "delay": 40, "train_steps": 300,
                "floss_steps": 150, "floss_sequence": 100, "eval_batch": 256}
ARMS = ("no_floss", "floss_before", "floss_during")
LABELS = {"no_floss": "no flossing", "floss_before": "flossing before training",
          "floss_during": "flossing before and during training"}


class RNNParams(NamedTuple):
    W: jax.Array
    U: jax.Array
    b: jax.Array
    w_out: jax.Array
    b_out: jax.Array


class Batch(NamedTuple):
    """One replica's batch: ``inputs (B, T, 2)``, ``targets (B,)``, its ``delay ()`` and a
    distractor ``stream (L, 2)`` for flossing during training."""

    inputs: jax.Array
    targets: jax.Array
    delay: jax.Array
    stream: jax.Array


def rnn_step(h, x, params):
    """``h ← tanh(W h + U x + b)``, a step function ``step(x, u, params)`` for jaxgrad."""
    return jnp.tanh(params.W @ h + params.U @ x + params.b)


def init_params(key, n, gain, input_std=1.0):
    k1, k2, k3 = jax.random.split(key, 3)
    return RNNParams(
        W=gain / jnp.sqrt(n) * jax.random.normal(k1, (n, n)),
        U=input_std * jax.random.normal(k2, (n, 2)),
        b=jnp.zeros((n,)),
        w_out=jax.random.normal(k3, (n,)) / jnp.sqrt(n),
        b_out=jnp.zeros(()),
    )


def random_bits(key, shape):
    return jnp.where(jax.random.bernoulli(key, 0.5, shape), 1.0, -1.0)


def distractor_stream(key, length):
    """``(length, 2)``: no cue, random ±1 distractors (the input statistics between cues)."""
    return jnp.stack([jnp.zeros((length,)), random_bits(key, (length,))], axis=-1)


def make_batch(key, batch, length):
    """``(inputs (B, length, 2), targets (B,))``: the cue ``y = ±1`` at step 0 on channel 0,
    random ±1 distractors at every step on channel 1."""
    k_target, k_distract = jax.random.split(key)
    targets = random_bits(k_target, (batch,))
    cue = targets[:, None] * (jnp.arange(length) == 0).astype(targets.dtype)[None, :]
    return jnp.stack([cue, random_bits(k_distract, (batch, length))], axis=-1), targets


def task_metrics(params, inputs, targets, delay):
    """Logistic loss and accuracy of reading the cue from the state ``delay`` steps after it.

    Sequences are as long as the longest delay; the states after ``h_delay`` do not enter
    the loss (their gradient is zero), so one compiled program serves every delay.
    """
    n = params.W.shape[0]

    def logit(seq):
        hs = jaxgrad.unroll(lambda h, u: rnn_step(h, u, params), jnp.zeros((n,)), seq)
        return hs[delay] @ params.w_out + params.b_out

    z = jax.vmap(logit)(inputs)
    loss = jnp.mean(jax.nn.softplus(-targets * z))
    accuracy = jnp.mean((jnp.sign(z) == targets).astype(z.dtype))
    return loss, accuracy


def run(config: dict) -> Result:
    n = int(config["num_units"])
    delays = [int(d) for d in config["delays"]]
    delay = int(config["delay"])
    if delay not in delays:
        raise ValueError(f"`delay` must be one of `delays` {delays}, got {delay}")
    main = delays.index(delay)
    length = max(delays) + 1
    num_seeds, num_delays = int(config["num_seeds"]), len(delays)
    k = int(config["floss_exponents"])
    f_len, f_trans = int(config["floss_sequence"]), int(config["floss_transient"])
    trajectory_gradient = bool(config["floss_trajectory_gradient"])
    batch_size, steps = int(config["batch_size"]), int(config["train_steps"])
    key = jax.random.key(int(config["seed"]))
    k_init, k_floss, k_train, k_eval, k_lyap = jax.random.split(key, 5)
    h0 = jnp.zeros((n,))

    def exponents(params):
        """Top-k exponents on a long held-out distractor stream (a precise estimate)."""
        u = distractor_stream(k_lyap, 4 * f_len + f_trans)
        return jaxgrad.lyapunov_spectrum(rnn_step, h0, u, params=params, num_exponents=k,
                                         transient=f_trans).exponents

    def floss_before(params, key):
        """Minimise Σ_{i≤k} λ_i² alone with optax on one input stream (jaxgrad.floss)."""
        trace = jaxgrad.floss(rnn_step, h0, distractor_stream(key, f_len + f_trans),
                              params=params,
                              optimizer=optax.adam(float(config["floss_learning_rate"])),
                              num_updates=int(config["floss_steps"]), num_exponents=k,
                              transient=f_trans, trajectory_gradient=trajectory_gradient)
        return trace.params, trace.losses, jnp.all(trace.finite)

    seed_keys = jax.random.split(k_init, num_seeds)
    p_init = jax.vmap(lambda kk: init_params(kk, n, float(config["gain"]),
                                             float(config["input_std"])))(seed_keys)
    p_floss, floss_curves, floss_finite = jax.jit(jax.vmap(floss_before))(
        p_init, jax.random.split(k_floss, num_seeds))
    # Under jit/vmap floss cannot raise: a seed whose flossing went non-finite keeps its
    # last good parameters and is counted here (and in a check below).
    floss_diverged = int(np.sum(~np.asarray(floss_finite)))

    # Replicas: (delay, seed) pairs, delay-major; every arm sees the same data per replica.
    replica_delay = jnp.repeat(jnp.asarray(delays), num_seeds)
    replica_id = jnp.arange(num_delays * num_seeds)
    per_replica = lambda p: jax.tree_util.tree_map(  # noqa: E731
        lambda a: jnp.tile(a, (num_delays,) + (1,) * (a.ndim - 1)), p)

    def sampler(num_arms):
        ids, dls = jnp.tile(replica_id, num_arms), jnp.tile(replica_delay, num_arms)

        def sample(key_t, t):
            def one(r, d):
                k_task, k_stream = jax.random.split(jax.random.fold_in(key_t, r))
                x, y = make_batch(k_task, batch_size, length)
                return Batch(x, y, d, distractor_stream(k_stream, f_len + f_trans))
            return jax.vmap(one)(ids, dls)

        return sample

    def replica_metrics(params, batch):
        return jax.vmap(lambda p, b: task_metrics(p, b.inputs, b.targets, b.delay))(params,
                                                                                      batch)

    def loss_fn(params, batch):
        return jnp.sum(replica_metrics(params, batch)[0])

    def monitor(params, batch, grads):
        del grads
        loss, acc = replica_metrics(params, batch)
        return {"replica_loss": loss, "replica_accuracy": acc}

    omega = jaxgrad.flossing_regularizer(rnn_step, h0, lambda b: b.stream, num_exponents=k,
                                         transient=f_trans,
                                         trajectory_gradient=trajectory_gradient)

    def regularizer(params, batch):
        return jnp.sum(jax.vmap(omega)(params, batch))

    opt = jaxgrad.vmap_optimizer(optax.adam(float(config["learning_rate"])))
    # Arms without flossing during training: one call, (no_floss, floss_before) stacked.
    stacked = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]),
                                     per_replica(p_init), per_replica(p_floss))
    plain = jaxgrad.fit(loss_fn, stacked, opt, sampler(2), num_steps=steps, key=k_train,
                          steps_per_scan=steps, monitor=monitor)
    during = jaxgrad.fit(loss_fn, per_replica(p_floss), opt, sampler(1), num_steps=steps,
                           key=k_train, steps_per_scan=steps, monitor=monitor,
                           regularizer=regularizer,
                           regularizer_weight=float(config["floss_weight"]))

    r = num_delays * num_seeds
    trained = {
        "no_floss": jax.tree_util.tree_map(lambda a: a[:r], plain.params),
        "floss_before": jax.tree_util.tree_map(lambda a: a[r:], plain.params),
        "floss_during": during.params,
    }
    curves = {
        "no_floss": (plain.metrics["replica_loss"][:, :r],
                     plain.metrics["replica_accuracy"][:, :r]),
        "floss_before": (plain.metrics["replica_loss"][:, r:],
                         plain.metrics["replica_accuracy"][:, r:]),
        "floss_during": (during.metrics["replica_loss"], during.metrics["replica_accuracy"]),
    }
    x_eval, y_eval = jax.vmap(lambda i: make_batch(jax.random.fold_in(k_eval, i),
                                                   int(config["eval_batch"]), length))(
        replica_id)
    evaluate = jax.jit(jax.vmap(lambda p, x, y, d: task_metrics(p, x, y, d)[1]))
    lyap = jax.jit(jax.vmap(exponents))
    lam_init, lam_floss = np.asarray(lyap(p_init)), np.asarray(lyap(p_floss))
    threshold = float(config["success_accuracy"])
    results = {}
    for arm in ARMS:
        test_acc = np.asarray(evaluate(trained[arm], x_eval, y_eval, replica_delay))
        test_acc = test_acc.reshape(num_delays, num_seeds)
        loss, acc = (np.asarray(c).T.reshape(num_delays, num_seeds, -1) for c in curves[arm])
        results[arm] = {
            "test_accuracy": test_acc,
            "success": (test_acc >= threshold).mean(axis=1),
            "loss_curve": loss, "accuracy_curve": acc,
            "lambda_trained": np.asarray(lyap(trained[arm])).reshape(num_delays, num_seeds, k),
        }
    omega_during = np.asarray(during.metrics["regularizer"]) / r  # mean Σλ² per replica

    success = {arm: results[arm]["success"] for arm in ARMS}
    mean_abs = lambda lam: float(np.mean(np.abs(lam[..., 0])))  # noqa: E731
    checks = [
        check_bound("seeds whose flossing before training went non-finite", floss_diverged, 0,
                    note="jaxgrad.floss stops at a non-finite update (FlossingTrace.finite)"),
        check_bound("mean |λ_1| after flossing before training (at initialisation: reference)",
                    mean_abs(lam_floss), mean_abs(lam_init), kind="<=",
                    note="flossing brings λ_1 closer to 0"),
        check_bound("mean Σ_{i≤k} λ_i² after flossing (at initialisation: reference)",
                    np.mean(np.sum(lam_floss**2, 1)), np.mean(np.sum(lam_init**2, 1)),
                    kind="<=", note="the regulariser decreases"),
        check_bound("mean |λ_1| after training with flossing during training "
                    "(trained without flossing: reference)",
                    mean_abs(results["floss_during"]["lambda_trained"]),
                    mean_abs(results["no_floss"]["lambda_trained"]), kind="<=",
                    note="train(regularizer=flossing_regularizer) keeps λ_1 nearer 0"),
        check_bound(f"success without flossing at the shortest delay d = {delays[0]}",
                    success["no_floss"][0], 0.5, kind=">=",
                    note="the task is learnable by plain BPTT at a short delay"),
        check_bound(f"success with flossing before training at d = {delay} "
                    "(reference: success without flossing + 0.5)",
                    success["floss_before"][main], success["no_floss"][main] + 0.5, kind=">=",
                    note="flossing before training raises success at long delays (Engelken)"),
        check_bound(f"success with flossing before and during training at d = {delay} "
                    "(reference: success without flossing + 0.5)",
                    success["floss_during"][main], success["no_floss"][main] + 0.5, kind=">=",
                    note="flossing during training also raises it"),
    ]

    colors = {"no_floss": "C0", "floss_before": "C1", "floss_during": "C2"}
    fig, axes = plt.subplots(1, 4, figsize=(21, 4.4))
    ax = axes[0]
    styles = {"no_floss": ("o-", 9), "floss_before": ("s--", 7), "floss_during": ("^:", 5)}
    for arm in ARMS:
        marker, size = styles[arm]
        ax.plot(delays, success[arm], marker, color=colors[arm], ms=size, lw=1.5,
                label=LABELS[arm])
    ax.set_xscale("log", base=2)
    ax.set_xticks(delays, [str(d) for d in delays])
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("delay d (steps between cue and readout)")
    ax.set_ylabel(f"success rate (test accuracy ≥ {threshold:g}, {num_seeds} seeds)")
    ax.set_title(f"Delayed recall, N = {n}, gain {float(config['gain']):g}")
    ax.legend(fontsize=8)
    ax = axes[1]
    t = np.arange(1, steps + 1)
    for arm in ARMS:
        loss = results[arm]["loss_curve"][main]
        for s in range(num_seeds):
            ax.plot(t, loss[s], color=colors[arm], alpha=0.3, lw=0.7)
        ax.plot(t, loss.mean(0), color=colors[arm], lw=2, label=LABELS[arm])
    ax.axhline(np.log(2.0), color="gray", ls="--", lw=0.8, label="chance (log 2)")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss (thin: seeds, thick: mean)")
    ax.set_title(f"Learning curves at d = {delay}")
    ax.legend(fontsize=8)
    ax = axes[2]
    idx = np.arange(1, k + 1)
    ax.plot(idx, lam_init.mean(0), "ko-", label="at initialisation")
    ax.plot(idx, lam_floss.mean(0), "ks--", label="after flossing")
    for arm in ARMS:
        ax.plot(idx, results[arm]["lambda_trained"][main].mean(0), "^-", color=colors[arm],
                label=f"trained, {LABELS[arm]}")
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.set_xticks(idx)
    ax.set_xlabel("index i")
    ax.set_ylabel("λ_i per step (seed mean)")
    ax.set_title(f"Top {k} Lyapunov exponents (d = {delay})")
    ax.legend(fontsize=7)
    ax = axes[3]
    fc = np.asarray(floss_curves)
    ax.plot(np.arange(1, fc.shape[1] + 1), fc.mean(0), color="k",
            label="flossing before training (its one input stream, seed mean)")
    ax.plot(np.arange(fc.shape[1] + 1, fc.shape[1] + steps + 1), omega_during,
            color=colors["floss_during"],
            label="during training (a fresh stream each step, replica mean)")
    ax.set_yscale("log")
    ax.set_xlabel("update (flossing, then training)")
    ax.set_ylabel(r"$\Sigma_{i\leq k}\,\lambda_i^2$ (finite-time, per step)")
    ax.set_title(f"Flossing regulariser, k = {k}")
    ax.legend(fontsize=8)
    fig.tight_layout()

    summary = {
        "delay": delay,
        "delays": delays,
        **{f"success_rate_{arm}": float(success[arm][main]) for arm in ARMS},
        **{f"success_rate_{arm}_per_delay": success[arm].tolist() for arm in ARMS},
        **{f"test_accuracy_{arm}": results[arm]["test_accuracy"].tolist() for arm in ARMS},
        "num_seeds": num_seeds,
        "floss_diverged_seeds": floss_diverged,
        "lambda_1_init": lam_init[:, 0].tolist(),
        "lambda_1_after_flossing": lam_floss[:, 0].tolist(),
        **{f"lambda_1_trained_{arm}": results[arm]["lambda_trained"][..., 0].tolist()
           for arm in ARMS},
        "final_floss_loss": fc[:, -1].tolist(),
    }
    arrays = {
        "lambda_init": lam_init, "lambda_after_flossing": lam_floss, "floss_loss": fc,
        "regularizer_during": omega_during,
        **{f"{name}_{arm}": v for arm, res in results.items() for name, v in res.items()},
    }
    return Result(summary=summary, checks=checks, arrays=arrays,
                  figures={"gradient_flossing": fig})
