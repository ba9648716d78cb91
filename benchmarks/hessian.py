"""(i) The top Hessian eigenvalue and the Hessian trace of a deep MLP's loss, against PyHessian.

Issue #15's workload (g). The 20-layer, 256-wide ReLU MLP of (b) (He initialisation, a
10-way linear readout, the mean softmax cross-entropy on a batch of 128 Gaussian inputs
with random labels; built by ``mlp_gradients.make_problem``), about 1.3·10⁶ parameters.
The same weights are copied into a ``torch.nn.Sequential`` of ``nn.Linear`` and ``nn.ReLU``
(``nn.Linear`` holds ``Wᵀ``), and the two losses are checked to agree before anything is
timed. Both sides see the Hessian only through Hessian-vector products (HVPs), and both
are given the same number of them:

- top eigenvalue, ``eig_hvps`` HVPs (20 at full size): jaxgrad's
  ``hessian_eigenvalues(loss, params, k=1, num_iterations=eig_hvps - 2)`` spends one HVP on
  its scale probe, ``eig_hvps - 2`` on Lanczos steps and one on the residual of the Ritz
  pair (its ``num_hvps`` field, checked); PyHessian's ``hessian(...).eigenvalues(maxIter=
  eig_hvps, tol=-inf, top_n=1)`` runs power iteration for exactly ``maxIter`` steps (its
  stopping test ``|Δλ|/(|λ| + 1e-6) < tol`` never holds for ``tol = -inf``).
- trace, ``trace_probes`` Rademacher probes (100 at full size), Hutchinson's estimator on
  both sides: ``hessian_trace(..., num_probes=trace_probes, method="hutchinson")`` (plus one
  HVP for its scale probe: ``trace_probes + 1`` in all) against PyHessian's
  ``trace(maxIter=trace_probes, tol=-inf)``, whose per-probe samples give the estimate and
  its standard error ``std/√n``.

Each PyHessian call includes building its ``hessian`` object (a forward pass and
``loss.backward(create_graph=True)``), as each jaxgrad call includes its
``jax.linearize`` of the gradient; the parameters' ``.grad`` fields are cleared before each
build (PyHessian reads ``param.grad``, which would otherwise accumulate over calls).
``pass cuda=False``: PyHessian moves the batch to CUDA by default.

Records: two workloads, the eigenvalue and the trace, one jaxgrad and one PyTorch
(``implementation="torch"``, ``peer="PyHessian"``) record each. Times are wall-clock
(best of ``repeats`` after one call that computes the values and compiles jaxgrad's code);
``cpu_seconds`` is the process CPU time per timed call (over all threads), which tells how
many cores a call kept busy on a shared machine. Agreement fields:
``lambda_max_rel_diff`` (``|λ_jaxgrad − λ_PyHessian| / |λ_PyHessian|``), and
``lambda_max_rel_error``, each side's distance from a reference ``λ_max`` (jaxgrad's
Lanczos with ``reference_iterations`` steps, its residual bound in
``reference_residual``); ``trace``, ``trace_standard_error`` and
``trace_difference_in_standard_errors`` (``|Δ tr| / √(se₁² + se₂²)``: the two draw different
probes, so their estimates differ by sampling error).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxgrad

from . import _harness, mlp_gradients

ID = "i"
TITLE = "Hessian top eigenvalue and trace of a deep MLP, against PyHessian"

DEFAULT_SIZES = {"depth": 20, "width": 256, "batch": 128, "eig_hvps": 20,
                 "trace_probes": 100, "reference_iterations": 60}
QUICK_SIZES = {"depth": 5, "width": 64, "batch": 32, "eig_hvps": 20, "trace_probes": 30,
               "reference_iterations": 60}


def jax_loss(problem: dict[str, Any]) -> Any:
    """The mean softmax cross-entropy of ``problem``'s MLP as a function of its parameters."""
    config, x, y = problem["config"], problem["x"], problem["y"]

    def loss(params):
        logits, _ = jaxgrad.mlp_apply(params, x, config)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    return loss


def torch_model(Ws: list[np.ndarray], bs: list[np.ndarray]) -> Any:
    """``nn.Sequential`` of ``nn.Linear`` + ``nn.ReLU`` holding the weights ``Ws``, ``bs``
    (``h @ W + b`` per layer, the readout last; ``nn.Linear`` stores ``Wᵀ``)."""
    import torch

    layers = []
    for i, (W, b) in enumerate(zip(Ws, bs, strict=True)):
        linear = torch.nn.Linear(*W.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            linear.bias.copy_(torch.from_numpy(np.array(b)))
        layers.append(linear)
        if i < len(Ws) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _pyhessian(model, x, y) -> Any:
    import torch
    from pyhessian import hessian

    model.zero_grad(set_to_none=True)  # PyHessian reads (and would add to) param.grad
    with warnings.catch_warnings():  # backward(create_graph=True) warns of a ref cycle
        warnings.simplefilter("ignore", UserWarning)
        return hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)


def pyhessian_top_eigenvalue(model, x, y, num_hvps: int) -> float:
    """PyHessian's power iteration, exactly ``num_hvps`` Hessian-vector products."""
    values, _ = _pyhessian(model, x, y).eigenvalues(maxIter=num_hvps, tol=float("-inf"),
                                                    top_n=1)
    return float(values[0])


def pyhessian_trace(model, x, y, num_probes: int) -> tuple[float, float]:
    """PyHessian's Hutchinson trace over exactly ``num_probes`` probes, and ``std/√n``."""
    samples = np.asarray(_pyhessian(model, x, y).trace(maxIter=num_probes, tol=float("-inf")))
    if samples.shape != (num_probes,):  # the stopping test never fires for tol = -inf
        raise RuntimeError(f"PyHessian used {samples.shape[0]} probes, not {num_probes}")
    return float(samples.mean()), float(samples.std(ddof=1) / np.sqrt(num_probes))


def _timed(fn, repeats: int) -> tuple[float, float]:
    """Best wall-clock seconds of ``fn()`` (no warm-up) and the mean CPU seconds per call."""
    cpu = time.process_time()
    seconds = _harness.time_call(fn, repeats=repeats, warmup=0)
    return seconds, (time.process_time() - cpu) / repeats


def run(quick: bool, sizes: dict[str, int] | None = None) -> list[dict]:
    """Time jaxgrad and PyHessian; ``sizes`` overrides the entries of ``DEFAULT_SIZES``."""
    size = {**(QUICK_SIZES if quick else DEFAULT_SIZES), **(sizes or {})}
    depth, width, batch = size["depth"], size["width"], size["batch"]
    eig_hvps, probes = size["eig_hvps"], size["trace_probes"]
    repeats = 2 if quick else 3
    problem = mlp_gradients.make_problem(depth, width, batch)
    params, loss = problem["params"], jax_loss(problem)
    num_params = sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))
    shape = f"depth={depth} width={width} batch={batch}, {num_params} parameters"
    eig_workload = f"({ID}) top Hessian eigenvalue, {shape}, {eig_hvps} HVPs"
    trace_workload = f"({ID}) Hessian trace (Hutchinson), {shape}, {probes} probes"

    def eig():
        return _harness.block(jaxgrad.hessian_eigenvalues(
            loss, params, k=1, key=jax.random.key(1), num_iterations=eig_hvps - 2))

    def trace():
        return _harness.block(jaxgrad.hessian_trace(
            loss, params, key=jax.random.key(2), num_probes=probes, method="hutchinson"))

    ref = jaxgrad.hessian_eigenvalues(loss, params, k=1, key=jax.random.key(3),
                                      num_iterations=size["reference_iterations"])
    lam_ref = float(ref.eigenvalues[0])
    res_eig, res_trace = eig(), trace()
    if res_eig.num_hvps != eig_hvps:
        raise RuntimeError(f"jaxgrad used {res_eig.num_hvps} HVPs, not {eig_hvps}")
    lam = float(res_eig.eigenvalues[0])
    common = {"depth": depth, "width": width, "batch": batch, "num_params": num_params}
    eig_common = {**common, "reference_lambda_max": lam_ref,
                  "reference_residual": float(ref.residuals[0])}
    eig_records = [{"workload": eig_workload, "implementation": "jaxgrad",
                    "seconds": 0.0, "cpu_seconds": 0.0, **eig_common,
                    "num_hvps": res_eig.num_hvps, "lambda_max": lam,
                    "residual": float(res_eig.residuals[0]),
                    "lambda_max_rel_error": abs(lam - lam_ref) / abs(lam_ref)}]
    tr, tr_se = float(res_trace.estimate), float(res_trace.standard_error)
    trace_records = [{"workload": trace_workload, "implementation": "jaxgrad",
                      "seconds": 0.0, "cpu_seconds": 0.0, **common,
                      "num_hvps": res_trace.num_hvps, "trace": tr, "trace_standard_error": tr_se}]
    eig_records[0]["seconds"], eig_records[0]["cpu_seconds"] = _timed(eig, repeats)
    trace_records[0]["seconds"], trace_records[0]["cpu_seconds"] = _timed(trace, repeats)

    if _harness.has_torch():
        import torch

        Ws, bs = mlp_gradients.numpy_weights(params)
        model = torch_model(Ws, bs)
        xt = torch.from_numpy(np.array(problem["x"]))
        yt = torch.from_numpy(np.asarray(problem["y"]).astype(np.int64))
        with torch.no_grad():
            torch_loss = float(torch.nn.functional.cross_entropy(model(xt), yt))
        jax_value = float(loss(params))
        if not abs(torch_loss - jax_value) <= 1e-5 * max(1.0, abs(jax_value)):
            raise RuntimeError(f"the losses differ: jaxgrad {jax_value}, torch {torch_loss}")
        torch.manual_seed(0)
        lam_t = pyhessian_top_eigenvalue(model, xt, yt, eig_hvps)
        tr_t, tr_se_t = pyhessian_trace(model, xt, yt, probes)
        eig_records.append({"workload": eig_workload, "implementation": "torch",
                            "peer": "PyHessian", "seconds": 0.0, "cpu_seconds": 0.0,
                            **eig_common, "num_hvps": eig_hvps, "lambda_max": lam_t,
                            "lambda_max_rel_error": abs(lam_t - lam_ref) / abs(lam_ref)})
        trace_records.append({"workload": trace_workload, "implementation": "torch",
                              "peer": "PyHessian", "seconds": 0.0, "cpu_seconds": 0.0,
                              **common, "num_hvps": probes,
                              "trace": tr_t, "trace_standard_error": tr_se_t})
        eig_records[1]["seconds"], eig_records[1]["cpu_seconds"] = _timed(
            lambda: pyhessian_top_eigenvalue(model, xt, yt, eig_hvps), repeats)
        trace_records[1]["seconds"], trace_records[1]["cpu_seconds"] = _timed(
            lambda: pyhessian_trace(model, xt, yt, probes), repeats)
        for r in eig_records:
            r["lambda_max_rel_diff"] = abs(lam - lam_t) / abs(lam_t)
        for r in trace_records:
            r["trace_difference_in_standard_errors"] = abs(tr - tr_t) / np.hypot(tr_se, tr_se_t)
    return eig_records + trace_records
