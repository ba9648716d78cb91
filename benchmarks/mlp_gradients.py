"""(b) Per-layer gradient norms of a deep ReLU MLP on one batch, against NumPy and PyTorch.

A 20-layer, 256-wide ReLU MLP with He initialisation and a 10-way linear readout, on a
batch of 128 with the mean softmax cross-entropy. Every implementation returns, for each
hidden layer l, ``‖∂L/∂W_l‖_F``, ``‖∂L/∂b_l‖`` and ``‖∂L/∂h_l‖_F`` (over the batch), from
the same weights (copied from jaxgrad's ``init_mlp``), inputs and labels.

- jaxgrad: ``jaxgrad.mlp_gradient_flow(params, x, y, config)`` (one jitted forward and
  backward pass with zero probes on the activations).
- NumPy, as a careful user writes it: a float32 forward pass keeping the activations, then
  the manual backward pass layer by layer (``∂L/∂z = ∂L/∂h ⊙ 1[z > 0]``,
  ``∂L/∂W = h_{l-1}ᵀ ∂L/∂z``, ``∂L/∂h_{l-1} = ∂L/∂z Wᵀ``).
- PyTorch (when installed): leaf tensors for the weights, ``retain_grad()`` on every hidden
  activation, ``loss.backward()``, then the norms of the ``.grad`` fields.

Each record carries ``grad_norm_max_rel_diff``: the largest relative difference of any of
these norms from the NumPy reference.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxgrad

from . import _harness

ID = "b"
TITLE = "per-layer gradient norms of a deep ReLU MLP, one batch"

DEFAULT_SIZES = {"depth": 20, "width": 256, "batch": 128}
QUICK_SIZES = {"depth": 5, "width": 64, "batch": 32}
NUM_CLASSES = 10


def make_problem(depth: int, width: int, batch: int, *, seed: int = 0) -> dict[str, Any]:
    """He-initialised ReLU MLP (input size = width), Gaussian inputs, random labels."""
    k_params, k_x, k_y = jax.random.split(jax.random.key(seed), 3)
    config = jaxgrad.MLPConfig(in_dim=width, width=width, depth=depth, out_dim=NUM_CLASSES,
                               activation="relu", init="he")
    params = jaxgrad.init_mlp(k_params, config)
    x = jax.random.normal(k_x, (batch, width), jnp.float32)
    y = jax.random.randint(k_y, (batch,), 0, NUM_CLASSES)
    return {"config": config, "params": params, "x": x, "y": y}


def numpy_weights(params: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-layer ``(Ws, bs)`` as float32 NumPy arrays, the readout last."""
    Ws = [np.asarray(params.first.W)] + list(np.asarray(params.hidden.W))
    bs = [np.asarray(params.first.b)] + list(np.asarray(params.hidden.b))
    return Ws + [np.asarray(params.readout.W)], bs + [np.asarray(params.readout.b)]


def numpy_gradient_norms(Ws, bs, x, y) -> np.ndarray:
    """``(3, depth)``: rows ‖∂L/∂W_l‖_F, ‖∂L/∂b_l‖, ‖∂L/∂h_l‖_F, by a manual backward pass."""
    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    depth = len(Ws) - 1
    hs, zs = [x], []
    for W, b in zip(Ws[:-1], bs[:-1], strict=True):
        zs.append(hs[-1] @ W + b)
        hs.append(np.maximum(zs[-1], 0.0))
    logits = hs[-1] @ Ws[-1] + bs[-1]
    # ∂(mean cross-entropy)/∂logits = (softmax - onehot) / B, softmax shifted for safety.
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    g_logits = p / np.float32(len(y))
    g_h = g_logits @ Ws[-1].T
    norms = np.empty((3, depth), np.float32)
    for layer in range(depth - 1, -1, -1):
        norms[2, layer] = np.linalg.norm(g_h)
        g_z = g_h * (zs[layer] > 0)
        norms[0, layer] = np.linalg.norm(hs[layer].T @ g_z)
        norms[1, layer] = np.linalg.norm(g_z.sum(axis=0))
        if layer > 0:
            g_h = g_z @ Ws[layer].T
    return norms


def torch_tensors(Ws, bs) -> tuple[list[Any], list[Any]]:
    import torch

    leaf = lambda a: torch.from_numpy(np.array(a)).requires_grad_(True)  # noqa: E731
    return [leaf(W) for W in Ws], [leaf(b) for b in bs]


def torch_gradient_norms(Ws, bs, x, y) -> np.ndarray:
    """The same with PyTorch autograd (``Ws``, ``bs`` leaf tensors from ``torch_tensors``)."""
    import torch

    for t in (*Ws, *bs):
        t.grad = None
    h = x
    hidden = []
    for W, b in zip(Ws[:-1], bs[:-1], strict=True):
        h = torch.relu(h @ W + b)
        h.retain_grad()
        hidden.append(h)
    loss = torch.nn.functional.cross_entropy(h @ Ws[-1] + bs[-1], y)
    loss.backward()
    with torch.no_grad():
        norms = torch.stack([
            torch.stack([torch.linalg.vector_norm(W.grad) for W in Ws[:-1]]),
            torch.stack([torch.linalg.vector_norm(b.grad) for b in bs[:-1]]),
            torch.stack([torch.linalg.vector_norm(h.grad) for h in hidden]),
        ])
    return norms.numpy()


def jaxgrad_gradient_norms(problem: dict[str, Any]) -> Any:
    flow = jaxgrad.mlp_gradient_flow(problem["params"], problem["x"], problem["y"],
                                     problem["config"])
    return flow.weight_grad_norms, flow.bias_grad_norms, flow.activation_grad_norms


def _max_rel_diff(values: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(values - reference) / np.abs(reference)))


def run(quick: bool, sizes: dict[str, int] | None = None) -> list[dict]:
    """Time the three implementations; ``sizes`` overrides ``depth``/``width``/``batch``."""
    size = {**(QUICK_SIZES if quick else DEFAULT_SIZES), **(sizes or {})}
    problem = make_problem(size["depth"], size["width"], size["batch"])
    Ws, bs = numpy_weights(problem["params"])
    x_np, y_np = np.asarray(problem["x"]), np.asarray(problem["y"])
    timing = {"repeats": 20 if quick else 10, "warmup": 2}

    reference = numpy_gradient_norms(Ws, bs, x_np, y_np)
    results = {
        "jaxgrad": np.stack([np.asarray(a) for a in jaxgrad_gradient_norms(problem)]),
        "numpy": reference,
    }
    seconds = {
        "jaxgrad": _harness.time_call(
            lambda: _harness.block(jaxgrad_gradient_norms(problem)), **timing),
        "numpy": _harness.time_call(lambda: numpy_gradient_norms(Ws, bs, x_np, y_np), **timing),
    }
    if _harness.has_torch():
        import torch

        Wt, bt = torch_tensors(Ws, bs)
        xt, yt = torch.from_numpy(np.array(x_np)), torch.from_numpy(y_np.astype(np.int64))
        results["torch"] = torch_gradient_norms(Wt, bt, xt, yt)
        seconds["torch"] = _harness.time_call(lambda: torch_gradient_norms(Wt, bt, xt, yt),
                                              **timing)
    # The (B × width × width) products: forward, ∂L/∂W_l, and ∂L/∂h_{l-1} for l >= 2.
    flops = (3 * size["depth"] - 1) * 2.0 * size["batch"] * size["width"] ** 2
    return [
        {"workload": f"({ID}) {TITLE}, depth={size['depth']} width={size['width']} "
                     f"batch={size['batch']}",
         "implementation": name, "seconds": seconds[name], **size, "flops": flops,
         "grad_norm_max_rel_diff": _max_rel_diff(results[name], reference)}
        for name in seconds
    ]
