"""(c) Doya's loss and its gradient over a (w, b) grid, against NumPy and PyTorch.

Doya's neuron x_{t+1} = x_t + ε(-x_t + σ(w x_t + b)) with x_0 = 0.5, u = 0, ε = 0.1 and
L = (0.855 - x_T)², evaluated at every point of an n × n grid over (w, b)
(Wikipedia, "Vanishing gradient problem", § Geometric model).

- jaxgrad: ``scan_landscape`` (loss only: ``gradient="none"``; loss and ∂L/∂w, ∂L/∂b:
  ``gradient="axes"``, forward mode with two tangents), one jitted function applied to
  chunks of at most 2^18 points, each chunk split over the CPU devices
  (``python -m benchmarks`` makes one device per core, so both cores work) and evaluated
  there in cache-sized blocks of 4096 points (``scan_landscape``'s CPU default), the time
  loop a ``lax.scan`` over ``doya_step`` keeping only the final state.
- numpy: float32 arrays over the whole grid, a Python loop over time; the gradient by
  forward-mode tangents ∂x/∂w, ∂x/∂b carried alongside (the cheapest NumPy route).
- torch: float32 tensors over the grid, a loop over time; the gradient by autograd
  (``loss.sum().backward()``: each point's loss depends only on its own w, b).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from ._harness import block, has_torch, time_call

ID = "c"
TITLE = "Doya loss and gradient over a (w, b) grid"

EPS = 0.1
TARGET = 0.855
W_RANGE = (3.0, 7.0)
B_RANGE = (-4.0, -1.0)


def _doya_loss(params, *, num_steps):
    """L = (0.855 - x_T)²; only the final state is kept (no stacked trajectory). The time
    loop is a plain ``lax.scan`` (unrolling it puts several steps' dependent exp/divide
    chains in one kernel and measured 2-4x slower here)."""
    import jax
    import jax.numpy as jnp

    import jaxgrad

    dtype = jnp.result_type(params.b)

    def body(x, _):
        return jaxgrad.doya_step(x, jnp.zeros((), dtype), params, eps=EPS), None

    x, _ = jax.lax.scan(body, jnp.asarray(0.5, dtype), None, length=num_steps)
    return (TARGET - x) ** 2


def numpy_loss(w, b, num_steps):
    x = np.full_like(w, 0.5)
    for _ in range(num_steps):
        s = 1.0 / (1.0 + np.exp(-(w * x + b)))
        x = x + EPS * (s - x)
    return (TARGET - x) ** 2


def numpy_loss_and_grad(w, b, num_steps):
    x = np.full_like(w, 0.5)
    xw = np.zeros_like(w)  # ∂x/∂w
    xb = np.zeros_like(w)  # ∂x/∂b
    one = w.dtype.type(1.0)
    eps = w.dtype.type(EPS)
    for _ in range(num_steps):
        s = one / (one + np.exp(-(w * x + b)))
        ds = s * (one - s)
        xw = xw + eps * (ds * (x + w * xw) - xw)
        xb = xb + eps * (ds * (w * xb + one) - xb)
        x = x + eps * (s - x)
    r = x - w.dtype.type(TARGET)
    return r * r, 2 * r * xw, 2 * r * xb


def torch_loss(w, b, num_steps, *, grad):
    import torch

    with torch.set_grad_enabled(grad):
        if grad:
            w = w.detach().requires_grad_(True)
            b = b.detach().requires_grad_(True)
        x = torch.full_like(w, 0.5)
        for _ in range(num_steps):
            x = x + EPS * (torch.sigmoid(w * x + b) - x)
        loss = (TARGET - x) ** 2
        if not grad:
            return loss
        loss.sum().backward()
        return loss.detach(), w.grad, b.grad


def run(quick: bool) -> list[dict]:
    import jax

    import jaxgrad

    n, T = (50, 20) if quick else (1000, 200)
    chunk = n * n if quick else 1 << 18
    repeats = 3 if quick else 5  # best of 5: this VM's timings spread by ±30 % between calls
    params = jaxgrad.DoyaParams(5.0, -2.5, 0.0)
    axes = {"w": (*W_RANGE, n), "b": (*B_RANGE, n)}
    loss_fn = partial(_doya_loss, num_steps=T)

    def jax_scan(gradient):
        return jaxgrad.scan_landscape(loss_fn, params, axes, gradient=gradient,
                                      chunk_size=chunk, progress=False)

    wv = np.linspace(*W_RANGE, n).astype(np.float32)
    bv = np.linspace(*B_RANGE, n).astype(np.float32)
    W, B = np.meshgrid(wv, bv, indexing="ij")
    points = n * n
    workload = f"({ID}) Doya loss over a {n}x{n} (w, b) grid, T = {T}"
    workload_g = f"({ID}) Doya loss + dL/dw, dL/db over a {n}x{n} grid, T = {T}"
    # Flops per point and step: loss ≈ 8 (with exp counted as one); tangents add ≈ 14.
    flops_loss = 8.0 * points * T
    flops_grad = 22.0 * points * T

    ref_loss = numpy_loss(W, B, T)
    ref_l, ref_gw, ref_gb = numpy_loss_and_grad(W, B, T)
    s_loss = jax_scan("none")
    s_grad = jax_scan("axes")
    jl = np.asarray(s_loss.loss)
    jg = np.asarray(s_grad.axis_gradients)
    diff_loss = float(np.max(np.abs(jl - ref_loss)))
    diff_grad = float(max(np.max(np.abs(jg[..., 0] - ref_gw)), np.max(np.abs(jg[..., 1] - ref_gb))))

    t_jax_loss = time_call(lambda: block(jax_scan("none").loss), repeats=repeats)
    t_jax_grad = time_call(lambda: block(jax_scan("axes").loss), repeats=repeats)
    t_np_loss = time_call(lambda: numpy_loss(W, B, T), repeats=repeats)
    t_np_grad = time_call(lambda: numpy_loss_and_grad(W, B, T), repeats=repeats)
    records = [
        {"workload": workload, "implementation": "jaxgrad", "seconds": t_jax_loss,
         "flops": flops_loss, "max_abs_diff_vs_numpy": diff_loss,
         "devices": jax.device_count()},
        {"workload": workload, "implementation": "numpy", "seconds": t_np_loss,
         "flops": flops_loss},
        {"workload": workload_g, "implementation": "jaxgrad", "seconds": t_jax_grad,
         "flops": flops_grad, "max_abs_diff_vs_numpy": diff_grad,
         "grad_over_loss_cost": t_jax_grad / t_jax_loss, "method": s_grad.method},
        {"workload": workload_g, "implementation": "numpy", "seconds": t_np_grad,
         "flops": flops_grad, "grad_over_loss_cost": t_np_grad / t_np_loss},
    ]
    if has_torch():
        import torch

        Wt, Bt = torch.from_numpy(W), torch.from_numpy(B)
        t_loss = time_call(lambda: torch_loss(Wt, Bt, T, grad=False), repeats=repeats)
        t_grad = time_call(lambda: torch_loss(Wt, Bt, T, grad=True), repeats=repeats)
        _, gw, gb = torch_loss(Wt, Bt, T, grad=True)
        diff_t = float(max(np.max(np.abs(gw.numpy() - ref_gw)),
                           np.max(np.abs(gb.numpy() - ref_gb))))
        records += [
            {"workload": workload, "implementation": "torch", "seconds": t_loss,
             "flops": flops_loss},
            {"workload": workload_g, "implementation": "torch", "seconds": t_grad,
             "flops": flops_grad, "grad_over_loss_cost": t_grad / t_loss,
             "max_abs_diff_vs_numpy": diff_t},
        ]
    return records
