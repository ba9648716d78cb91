"""(a) ``jacobian_product_norms`` of a Pascanu RNN over every lag, against NumPy and PyTorch.

For the trajectory ``x_t = W_rec tanh(x_{t-1}) + W_in u_t + b`` (t = 1..T) every
implementation computes ``log ‖J_T J_{T-1} ⋯ J_{T-k+1}‖₂`` for all lags k = 1..T, with
``J_t = W_rec diag(tanh'(x_{t-1}))``, by one backward sweep ``P_{k+1} = P_k J_{T-k}``
(one N×N×N product per lag: ``flops = T · 2N³``), renormalising the product as it goes so
that it never under- or overflows.

- jaxgrad: ``jaxgrad.jacobian_product_norms(..., step_norms=False)``, once with its default
  warm-started power iteration per lag and once with ``spectral_method="svd"``.
- NumPy, as a careful user writes it: a loop over time, vectorised over the state,
  float32, the product rescaled by its largest entry with the log of the scale kept, and
  each lag's spectral norm by an SVD (``np.linalg.norm(P, 2)``).
- PyTorch (when installed): the same loop with ``torch.func.vjp`` vmapped over the rows of
  the product (no Jacobian formed) and ``torch.linalg.matrix_norm(P, ord=2)`` per lag.

Two workloads are reported: the default jaxgrad (power iteration) against the SVD-based
peers, and jaxgrad with ``spectral_method="svd"`` against the same peer measurements (the
peer records are repeated under that label so each comparison reads on its own). Every
record carries ``log_norm_max_abs_diff``: the largest ``|Δ log‖·‖|`` over lags against the
NumPy reference, because a benchmark of wrong code is worthless.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxgrad

from . import _harness

ID = "a"
TITLE = "jacobian_product_norms of a Pascanu RNN, all lags"

DEFAULT_SIZES = {"num_units": 256, "num_steps": 1000}
QUICK_SIZES = {"num_units": 64, "num_steps": 200}
NUM_INPUTS = 4
SPECTRAL_RADIUS = 1.1


def make_problem(num_units: int, num_steps: int, *, seed: int = 0) -> dict[str, Any]:
    """A Pascanu RNN (spectral radius 1.1, tanh) driven by Gaussian inputs, float32."""
    k_params, k_inputs = jax.random.split(jax.random.key(seed))
    params = jaxgrad.init_pascanu(k_params, num_units, NUM_INPUTS, value=SPECTRAL_RADIUS)
    inputs = jax.random.normal(k_inputs, (num_steps, NUM_INPUTS), jnp.float32)
    x0 = jnp.zeros((num_units,), jnp.float32)
    return {"params": params, "inputs": inputs, "x0": x0}


def numpy_log_norms(W_rec, W_in, b, x0, inputs) -> np.ndarray:
    """``log ‖∂x_T/∂x_{T-k}‖₂`` for k = 1..T with NumPy (float32 products, SVD per lag)."""
    W_rec, W_in, b, x0, inputs = (np.asarray(a, np.float32) for a in (W_rec, W_in, b, x0,
                                                                      inputs))
    T, n = inputs.shape[0], x0.shape[0]
    drive = inputs @ W_in.T + b  # (T, N): the input terms of every step at once
    states = np.empty((T + 1, n), np.float32)
    states[0] = x0
    for t in range(T):
        states[t + 1] = W_rec @ np.tanh(states[t]) + drive[t]
    slopes = 1.0 - np.tanh(states[:-1]) ** 2  # tanh'(x_{t-1}) for t = 1..T
    P = np.eye(n, dtype=np.float32)
    log_scale = 0.0
    log_norms = np.empty(T)
    for k in range(T):  # lag k + 1 uses J_{T-k} = W_rec diag(tanh'(x_{T-k-1}))
        P = (P @ W_rec) * slopes[T - 1 - k][None]
        scale = float(np.abs(P).max())
        P /= np.float32(scale)
        log_scale += np.log(scale)
        log_norms[k] = np.log(np.linalg.norm(P, 2)) + log_scale
    return log_norms


def torch_log_norms(W_rec, W_in, b, x0, inputs) -> np.ndarray:
    """The same with PyTorch: ``torch.func.vjp`` vmapped over the product's rows."""
    import torch
    from torch.func import vjp, vmap

    W_rec, W_in, b, x0, inputs = (torch.from_numpy(np.array(a, np.float32))
                                  for a in (W_rec, W_in, b, x0, inputs))
    T, n = inputs.shape[0], x0.shape[0]
    with torch.no_grad():
        drive = inputs @ W_in.T + b
        states = [x0]
        for t in range(T):
            states.append(W_rec @ torch.tanh(states[-1]) + drive[t])
    P = torch.eye(n, dtype=torch.float32)
    log_scales, log_norms = [], []
    for k in range(T):
        t = T - 1 - k
        _, step_vjp = vjp(lambda x, t=t: W_rec @ torch.tanh(x) + drive[t], states[t])
        (P,) = vmap(step_vjp)(P)
        scale = P.abs().amax()
        P = P / scale
        log_scales.append(scale)
        log_norms.append(torch.linalg.matrix_norm(P, ord=2))
    log_scale = np.cumsum(np.log(torch.stack(log_scales).double().numpy()))
    return np.log(torch.stack(log_norms).double().numpy()) + log_scale


def jaxgrad_log_norms(problem: dict[str, Any], step: Any, spectral_method: str) -> Any:
    return jaxgrad.jacobian_product_norms(
        step, problem["x0"], problem["inputs"], params=problem["params"],
        step_norms=False, spectral_method=spectral_method,
    ).log_norms


def _timed_once(fn: Any) -> tuple[Any, float]:
    """``(fn(), seconds)`` from a single timed call."""
    out = []
    seconds = _harness.time_call(lambda: out.append(fn()), repeats=1, warmup=0)
    return out[0], seconds


def run(quick: bool, sizes: dict[str, int] | None = None) -> list[dict]:
    """Time the three implementations; ``sizes`` overrides ``num_units``/``num_steps``."""
    size = {**(QUICK_SIZES if quick else DEFAULT_SIZES), **(sizes or {})}
    n, T = size["num_units"], size["num_steps"]
    problem = make_problem(n, T)
    p = problem["params"]
    peer_args = tuple(np.asarray(a) for a in (p.W_rec, p.W_in, p.b, problem["x0"],
                                              problem["inputs"]))
    # One step object for every call: it is a static argument of jaxgrad's jit.
    step = partial(jaxgrad.pascanu_step, activation="tanh")
    flops = T * 2.0 * n**3
    common = {"num_units": n, "num_steps": T, "flops": flops}
    # The SVD-based runs take many seconds per call at full size and the peers have nothing
    # to compile, so there each peer is timed by the one call that yields its values. In
    # quick mode, and for jaxgrad (whose first call compiles), the values come from a first
    # call and the times are the best of later ones.
    results, seconds = {}, {}
    peers = {"numpy": numpy_log_norms}
    if _harness.has_torch():
        peers["torch"] = torch_log_norms
    for name, fn in peers.items():
        if quick:
            results[name] = fn(*peer_args)
            seconds[name] = _harness.time_call(lambda fn=fn: fn(*peer_args), repeats=2, warmup=0)
        else:
            results[name], seconds[name] = _timed_once(lambda fn=fn: fn(*peer_args))
    reference = results["numpy"]

    records = []
    for method in ("power", "svd"):
        ours = np.asarray(jaxgrad_log_norms(problem, step, method))
        jax_seconds = _harness.time_call(
            lambda method=method: _harness.block(jaxgrad_log_norms(problem, step, method)),
            repeats=3 if method == "power" or quick else 1, warmup=0,
        )
        workload = f"({ID}) {TITLE}, N={n} T={T}, jaxgrad spectral_method={method}"
        impls = {"jaxgrad": (jax_seconds, ours), **{k: (seconds[k], results[k]) for k in results}}
        for name, (secs, values) in impls.items():
            records.append({
                "workload": workload, "implementation": name, "seconds": secs,
                "spectral_method": method if name == "jaxgrad" else "svd",
                **common,
                "log_norm_max_abs_diff": float(np.max(np.abs(values - reference))),
            })
    return records
