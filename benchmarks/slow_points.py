"""(g) Slow points of a trained 128-unit GRU from 1024 starts, against PyTorch.

The network: jaxgrad's GRU cell (``jaxgrad.gru_step``, in the layout of
``torch.nn.GRUCell``), 128 units, 3 inputs, a linear readout, from
``SequenceModel("gru", 128, 3, 3, readout="all").init(key)`` (update-gate bias 1), trained
briefly and untimed on the 3-bit flip-flop task with the helpers of
``experiments/flip_flop_fixed_points.py``: 300 Adam steps (learning rate 3e-3, global-norm
clipping at 1) on fresh batches of 64 sequences of 100 steps, pulse probability 0.04, mean
squared error over every step (it falls from 0.84 to about 0.007). The starts: 1024 states
sampled along 32 held-out trajectories of the trained network, plus N(0, 0.1²) noise. The
input is held at 0. Both implementations get the same float32 weights and starts. Quick
sizes: 32 units, 100 training steps, 128 starts, at most 1000 iterations.

Timed, in both, the whole search at ``jaxgrad.slow_points``'s defaults: Adam (learning
rate 3e-2, β = (0.9, 0.999), ε = 1e-8) on ``q(x) = ½‖F(x, 0) − x‖²`` from every start at
once, for at most 5000 iterations; a start is frozen once ``q < q_tol / 100`` and the loop
ends once every start is; the minima with ``q < q_tol = 1e-6`` are kept and merged greedily
(in order of ``q``) when closer than ``merge_tol = 1e-3`` in max-norm; each distinct point
is refined by 10 Newton steps on ``F(x) − x = 0`` (the result taken only when ``q`` does
not rise along the straight segment to it, checked at 16 points), the refined points are
filtered by ``q < q_tol`` and merged again, and the Jacobian ``∂F/∂x`` of each is
eigendecomposed (eigenvalues and eigenvectors). The Adam loop is nearly all of the time.

- jaxgrad: ``jaxgrad.slow_points(jaxgrad.gru_step, starts, zeros(3), params=cell)``: one
  jitted ``lax.while_loop``, the gradient by ``vmap(value_and_grad(q))`` and optax's Adam
  vmapped over the starts; the Newton steps and Jacobians (``jacfwd``) in one jitted
  ``vmap``; the merges and ``np.linalg.eig`` on the host.
- PyTorch, as a careful user writes it: the same weights in a ``torch.nn.GRUCell``
  (batched over the starts natively), the gradient by plain autograd on the summed ``q``
  (the starts are independent, so its gradient holds every start's own; ``torch.func``'s
  ``vmap(grad)`` would compute the same), ``torch.optim.Adam`` on the ``(M, N)`` state
  tensor (elementwise, so the same update as one Adam per start), the frozen starts put
  back with ``torch.where`` after each step and an ``any()`` test per iteration for the
  early exit; then the same filter, merges and Newton steps, the Jacobians by
  ``torch.func.vmap(torch.func.jacfwd(...))``, ``torch.linalg.solve`` and
  ``torch.linalg.eig``. Run with torch's own thread count (``torch_threads`` in its
  record).

No NumPy peer: the issue asks for PyTorch, and NumPy would need the GRU's gradient
written by hand.

``flops`` counts, per iteration, the two products with ``W_h`` for every start (``W_h h``
forward, ``W_hᵀ δ`` backward): ``2 · 2 · M · 3N · N``, times the iterations run; the
elementwise work, the input term and Adam are left out.

Agreement: both start from the same states with the same optimiser, so only float32
rounding differs. Each record carries ``num_points``, ``num_fixed``, ``num_stable``,
``num_failed`` and ``num_steps``; the PyTorch record also ``points_matched`` (the fraction
of the points of both sets with a partner in the other closer than ``merge_tol``),
``fixed_points_matched`` (the same for the fixed points alone: a slow point that is not
a fixed point lies in a shallow valley of ``q``, where the two roundings may leave Adam at
different places, or just above or below ``q_tol``) and, over the matched pairs,
``point_max_abs_diff`` (max-norm), ``q_max_abs_diff`` and
``eigenvalue_modulus_max_abs_diff`` (the moduli sorted in decreasing order).
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxgrad
from experiments.flip_flop_fixed_points import (
    NUM_BITS,
    flip_flop_batch,
    network_outputs,
    network_states,
)

from . import _harness

ID = "g"
TITLE = "Slow points of a trained GRU from many starts"

DEFAULT_SIZES = {"num_units": 128, "num_starts": 1024, "train_steps": 300, "max_steps": 5000}
QUICK_SIZES = {"num_units": 32, "num_starts": 128, "train_steps": 100, "max_steps": 1000}
BATCH_SIZE, LENGTH, PULSE_PROB = 64, 100, 0.04
NUM_EVAL_SEQUENCES, START_NOISE = 32, 0.1
# jaxgrad.slow_points's defaults, spelled out for the peer.
LEARNING_RATE, Q_TOL, MERGE_TOL, NEWTON_STEPS = 3e-2, 1e-6, 1e-3, 10
FIXED_TOL = float(np.sqrt(np.finfo(np.float32).eps))


def make_problem(num_units: int, num_starts: int, train_steps: int, *,
                 seed: int = 0) -> dict[str, Any]:
    """A flip-flop-trained GRU's cell parameters, ``num_starts`` starts and the zero input."""
    model = jaxgrad.train.SequenceModel("gru", num_units, NUM_BITS, NUM_BITS, readout="all")
    k_init, k_train, k_eval, k_noise = jax.random.split(jax.random.key(seed), 4)

    def loss_fn(params, batch):
        inputs, targets = batch
        return jnp.mean((network_outputs(model, params, inputs) - targets) ** 2)

    def sample(k, t):
        return flip_flop_batch(k, BATCH_SIZE, LENGTH, PULSE_PROB)

    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-3))
    state, metrics = jax.jit(lambda p, k: jaxgrad.train_steps(
        loss_fn, optimizer, jaxgrad.init_train_state(p, optimizer), sample,
        num_steps=train_steps, key=k))(model.init(k_init), k_train)
    inputs, _ = flip_flop_batch(k_eval, NUM_EVAL_SEQUENCES, LENGTH, PULSE_PROB)
    hs = np.asarray(jax.jit(lambda p, u: network_states(model, p, u))(state.params, inputs))
    hs = hs.reshape(-1, num_units)
    pick = np.random.default_rng(seed).choice(hs.shape[0], size=num_starts, replace=False)
    noise = START_NOISE * jax.random.normal(k_noise, (num_starts, num_units), jnp.float32)
    loss = np.asarray(metrics.loss)
    return {"params": state.params.cell, "starts": jnp.asarray(hs[pick]) + noise,
            "input": jnp.zeros((NUM_BITS,), jnp.float32),
            "train_loss": float(loss[-max(1, len(loss) // 20):].mean())}


def jaxgrad_slow_points(problem: dict[str, Any], max_steps: int) -> jaxgrad.analysis.SlowPoints:
    return jaxgrad.slow_points(jaxgrad.gru_step, problem["starts"], problem["input"],
                               params=problem["params"], max_steps=max_steps)


def torch_slow_points(W_x, W_h, b_x, b_h, starts, u, max_steps: int,
                      newton_steps: int = NEWTON_STEPS) -> dict[str, Any]:
    """The same search in PyTorch (float32): ``x`` ``(K, N)``, ``q``, ``eigenvalues``
    ``(K, N)`` by decreasing modulus, ``num_failed``, ``num_steps``."""
    import torch

    num, n = starts.shape
    cell = torch.nn.GRUCell(u.shape[0], n)
    with torch.no_grad():
        for name, w in (("weight_ih", W_x), ("weight_hh", W_h), ("bias_ih", b_x),
                        ("bias_hh", b_h)):
            getattr(cell, name).copy_(torch.tensor(np.asarray(w, np.float32)))
    cell.requires_grad_(False)
    U = torch.tensor(np.asarray(u, np.float32)).expand(num, -1)
    # where a start stops, as in slow_points
    q_stop = Q_TOL / 100 if newton_steps else min(Q_TOL / 100,
                                                  0.5 * (0.1 * FIXED_TOL) ** 2)

    def q_of(x):
        return 0.5 * ((cell(U, x) - x) ** 2).sum(dim=1)

    x = torch.tensor(np.asarray(starts, np.float32), requires_grad=True)
    opt = torch.optim.Adam([x], lr=LEARNING_RATE)
    steps = 0  # iterations, counted as jaxgrad's loop counts them: the last one, which
    while steps < max_steps:  # finds every start frozen, moves nothing
        steps += 1
        q = q_of(x)
        active = ~(q < q_stop)  # a NaN q stays active, as in jaxgrad
        if not bool(active.any()):
            break
        opt.zero_grad(set_to_none=True)
        q.sum().backward()
        before = x.detach().clone()
        opt.step()
        with torch.no_grad():
            x.copy_(torch.where(active[:, None], x, before))

    with torch.no_grad():
        x = x.detach()
        q = q_of(x)
        ok = torch.isfinite(q) & (q < Q_TOL) & torch.isfinite(x).all(dim=1)
        kept = torch.nonzero(ok).flatten()
        reps, counts = _merge(x, kept[torch.argsort(q[kept], stable=True)].tolist(),
                              [1] * num)
        if not reps:
            return {"x": x[:0].numpy(), "q": q[:0].numpy(),
                    "eigenvalues": np.zeros((0, n), np.complex64), "num_failed": num,
                    "num_steps": steps}
        y0 = x[reps]

    # Newton on g(h) = F(h) - h from each kept point, taken only when q never rises along
    # the straight segment to the result (checked at 16 points), as in slow_points.
    u0 = U[0]

    def g(h):
        return cell(u0, h) - h

    jacobian_g = torch.func.vmap(torch.func.jacfwd(g))
    g_batch, q_batch = torch.func.vmap(g), torch.func.vmap(lambda h: 0.5 * (g(h) ** 2).sum())
    with torch.no_grad():
        y = y0
        for _ in range(newton_steps):
            y = y - torch.linalg.solve(jacobian_g(y), g_batch(y))
        q0 = q_batch(y0)
        fractions = torch.linspace(0, 1, 17)[1:]
        along = torch.stack([q_batch(y0 + t * (y - y0)) for t in fractions], dim=1)
        ok = (torch.isfinite(y).all(dim=1) & (along <= q0[:, None]).all(dim=1)
              & (along[:, -1] < q0))
        y = torch.where(ok[:, None], y, y0)
        residual = torch.linalg.vector_norm(g_batch(y), dim=1)
        q = 0.5 * residual**2
        keep = torch.isfinite(residual) & (q < Q_TOL)
        order = torch.nonzero(keep).flatten()
        final, _ = _merge(y, order[torch.argsort(q[order], stable=True)].tolist(), counts)
        num_kept = sum(c for c, k in zip(counts, keep.tolist(), strict=True) if k)
        points = y[final]
    jac = torch.func.vmap(torch.func.jacfwd(lambda h: cell(u0, h)))(points)
    eig, _ = torch.linalg.eig(jac)
    eig = torch.gather(eig, 1, torch.argsort(-eig.abs(), dim=1, stable=True))
    return {"x": points.numpy(), "q": q[final].numpy(), "eigenvalues": eig.numpy(),
            "num_failed": int(num - num_kept), "num_steps": steps}


def _merge(x, order: list[int], weights: list[int]) -> tuple[list[int], list[int]]:
    """Greedy merge (torch): each row of ``x`` in ``order`` joins the first representative
    closer than ``MERGE_TOL`` (max-norm) or becomes one; the counts add ``weights``."""
    reps: list[int] = []
    counts: list[int] = []
    for i in order:
        if reps:
            near = ((x[reps] - x[i]).abs().amax(dim=1) < MERGE_TOL).nonzero().flatten()
            if len(near):
                counts[int(near[0])] += weights[i]
                continue
        reps.append(i)
        counts.append(weights[i])
    return reps, counts


def _summary(x, q, eigenvalues, num_failed, num_steps) -> dict[str, Any]:
    residual = np.sqrt(2.0 * np.asarray(q, np.float64))
    moduli = np.abs(np.asarray(eigenvalues))
    return {"num_points": int(len(q)), "num_fixed": int(np.sum(residual < FIXED_TOL)),
            "num_stable": int(np.sum(np.all(moduli < 1, axis=1))),
            "num_failed": int(num_failed), "num_steps": int(num_steps)}


def _match(a, b) -> tuple[np.ndarray, np.ndarray, float]:
    """``(i, j, fraction)``: the rows ``a[i]`` whose nearest row of ``b`` (max-norm),
    ``b[j]``, is closer than ``MERGE_TOL``, and the fraction of the rows of both with a
    partner that close in the other."""
    if len(a) == 0 or len(b) == 0:
        empty = np.zeros((0,), np.int64)
        return empty, empty, 1.0 if len(a) == len(b) else 0.0
    dist = np.max(np.abs(a[:, None, :] - b[None, :, :]), axis=2)
    nearest = np.argmin(dist, axis=1)
    i = np.flatnonzero(dist[np.arange(len(a)), nearest] < MERGE_TOL)
    fraction = (len(i) + int(np.sum(dist.min(axis=0) < MERGE_TOL))) / (len(a) + len(b))
    return i, nearest[i], fraction


def compare(ours: jaxgrad.analysis.SlowPoints, peer: dict[str, Any]) -> dict[str, float]:
    """How far the peer's points are from jaxgrad's (matched within ``MERGE_TOL``)."""
    a, b = np.asarray(ours.x, np.float64), np.asarray(peer["x"], np.float64)
    i, j, matched = _match(a, b)
    fixed_b = np.sqrt(2.0 * np.asarray(peer["q"], np.float64)) < FIXED_TOL
    _, _, fixed_matched = _match(a[np.asarray(ours.fixed)], b[fixed_b])
    mod_a = np.abs(np.asarray(ours.eigenvalues))[i]
    mod_b = np.abs(np.asarray(peer["eigenvalues"]))[j]
    return {
        "points_matched": float(matched),
        "fixed_points_matched": float(fixed_matched),
        "point_max_abs_diff": float(np.max(np.abs(a[i] - b[j]), initial=0.0)),
        "q_max_abs_diff": float(np.max(np.abs(np.asarray(ours.q)[i] - peer["q"][j]),
                                       initial=0.0)),
        "eigenvalue_modulus_max_abs_diff": float(np.max(np.abs(mod_a - mod_b), initial=0.0)),
    }


def run(quick: bool, sizes: dict[str, int] | None = None) -> list[dict]:
    """Time jaxgrad and PyTorch; ``sizes`` overrides entries of the default sizes."""
    size = {**(QUICK_SIZES if quick else DEFAULT_SIZES), **(sizes or {})}
    n, num, max_steps = size["num_units"], size["num_starts"], size["max_steps"]
    problem = make_problem(n, num, size["train_steps"])
    workload = (f"({ID}) slow points of a flip-flop-trained GRU, N={n}, {num} starts, "
                f"at most {max_steps} Adam steps")
    common = {"num_units": n, "num_starts": num, "train_steps": size["train_steps"],
              "train_loss": problem["train_loss"]}

    ours = jaxgrad_slow_points(problem, max_steps)  # the values (and the compilation)
    seconds = _harness.time_call(
        lambda: _harness.block(jaxgrad_slow_points(problem, max_steps).q),
        repeats=2, warmup=0)
    flops = ours.num_steps * 2.0 * 2.0 * num * 3 * n * n
    records = [{"workload": workload, "implementation": "jaxgrad", "seconds": seconds,
                "flops": flops, **common,
                **_summary(ours.x, ours.q, ours.eigenvalues, ours.num_failed, ours.num_steps)}]
    if _harness.has_torch():
        import torch

        p = problem["params"]
        args = (p.W_x, p.W_h, p.b_x, p.b_h, problem["starts"], problem["input"], max_steps)
        # Nothing to compile: timed by the call that yields the values (one call at full
        # size takes minutes on a busy machine), and the best of two in quick mode.
        start = time.perf_counter()
        peer = torch_slow_points(*args)
        seconds = time.perf_counter() - start
        if quick:
            seconds = min(seconds, _harness.time_call(lambda: torch_slow_points(*args),
                                                      repeats=1, warmup=0))
        records.append({"workload": workload, "implementation": "torch", "seconds": seconds,
                        "flops": peer["num_steps"] * 2.0 * 2.0 * num * 3 * n * n, **common,
                        "torch_threads": torch.get_num_threads(),
                        **_summary(peer["x"], peer["q"], peer["eigenvalues"],
                                   peer["num_failed"], peer["num_steps"]),
                        **compare(ours, peer)})
    return records
