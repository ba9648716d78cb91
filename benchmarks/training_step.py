"""(e) One Adam training step of a 20-layer, 256-wide ReLU MLP, with and without monitoring.

jaxgrad runs ``steps`` steps inside one compiled ``lax.scan`` (``jaxgrad.fit``); the
monitored run also records ``‖∂L/∂W_l‖`` and ``‖∂L/∂b_l‖`` for all 20 layers at every step
as scan outputs (``mlp_layer_monitor``). The records give seconds per step; the monitored
jaxgrad record carries ``overhead`` = monitored / unmonitored time (the issue asks for at
most 1.1). PyTorch, when installed, runs the same model and optimiser in an eager loop,
the monitored variant stacking the same per-layer norms on the device each step.
"""

from __future__ import annotations

import functools

from . import _harness

ID = "e"
TITLE = "training step of a 20-layer 256-wide MLP (Adam), with and without gradient monitoring"

DEPTH, WIDTH, CLASSES = 20, 256, 10


def _flops(batch: int) -> float:
    # forward 2·B·(in·W + (depth-1)·W² + W·C) multiply-adds, backward twice that.
    per_forward = 2 * batch * (WIDTH * WIDTH * DEPTH + WIDTH * CLASSES)
    return 3.0 * per_forward


def _loss(params, batch, mlp):
    import jax.numpy as jnp
    import optax

    import jaxgrad

    out, _ = jaxgrad.mlp_apply(params, batch[0], mlp)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, batch[1]))


def _jaxgrad(batch: int, steps: int, repeats: int) -> tuple[float, float]:
    import jax
    import optax

    import jaxgrad
    from jaxgrad.train import fit, fixed_batches, mlp_layer_monitor

    mlp = jaxgrad.MLPConfig(in_dim=WIDTH, width=WIDTH, depth=DEPTH, out_dim=CLASSES,
                            activation="relu", init="he")
    params = jaxgrad.init_mlp(jax.random.key(0), mlp)
    x = jax.random.normal(jax.random.key(1), (1, batch, WIDTH))
    y = jax.random.randint(jax.random.key(2), (1, batch), 0, CLASSES)
    source = fixed_batches((x, y))
    loss_fn = functools.partial(_loss, mlp=mlp)
    optimizer = optax.adam(1e-3)

    def run(monitor):
        def go():
            result = fit(loss_fn, params, optimizer, source, num_steps=steps,
                           steps_per_scan=steps, key=jax.random.key(3), monitor=monitor)
            _harness.block(result.params)

        return _harness.time_call(go, repeats=repeats) / steps

    return run(None), run(mlp_layer_monitor)


def _torch(batch: int, steps: int, repeats: int) -> tuple[float, float]:
    import torch

    torch.manual_seed(0)
    layers = []
    for _ in range(DEPTH):
        layers += [torch.nn.Linear(WIDTH, WIDTH), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(WIDTH, CLASSES))
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)][:DEPTH]
    biases = [m.bias for m in model if isinstance(m, torch.nn.Linear)][:DEPTH]
    x = torch.randn(batch, WIDTH)
    y = torch.randint(0, CLASSES, (batch,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run(monitor):
        def go():
            records = []
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                loss.backward()
                if monitor:
                    records.append(torch.stack(
                        [torch.linalg.vector_norm(w.grad) for w in weights]
                        + [torch.linalg.vector_norm(b.grad) for b in biases]))
                opt.step()
            loss.item()
            return records

        return _harness.time_call(go, repeats=repeats) / steps

    return run(False), run(True)


def run(quick: bool) -> list[dict]:
    batch, steps, repeats = (64, 10, 2) if quick else (128, 50, 5)
    flops = _flops(batch)
    workload = f"(e) Adam training step, {DEPTH}-layer {WIDTH}-wide MLP, batch {batch}"
    plain, monitored = _jaxgrad(batch, steps, repeats)
    records = [
        {"workload": workload + ", no monitoring", "implementation": "jaxgrad",
         "seconds": plain, "steps_per_second": 1.0 / plain, "flops": flops},
        {"workload": workload + ", per-layer gradient norms", "implementation": "jaxgrad",
         "seconds": monitored, "steps_per_second": 1.0 / monitored, "flops": flops,
         "overhead": monitored / plain},
    ]
    if _harness.has_torch():
        t_plain, t_monitored = _torch(batch, steps, repeats)
        records += [
            {"workload": workload + ", no monitoring", "implementation": "torch",
             "seconds": t_plain, "steps_per_second": 1.0 / t_plain, "flops": flops},
            {"workload": workload + ", per-layer gradient norms", "implementation": "torch",
             "seconds": t_monitored, "steps_per_second": 1.0 / t_monitored, "flops": flops,
             "overhead": t_monitored / t_plain},
        ]
    return records

