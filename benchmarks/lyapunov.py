"""(f) The full Lyapunov spectrum of a 256-unit rate network over 1000 steps.

Every implementation runs the same Benettin/QR iteration on ``h ← J tanh(h)``: per step
the tangent basis is advanced, ``Q ← J diag(1 - tanh²(h)) Q``, and re-orthonormalised by
a Householder QR, accumulating ``log|R_ii|``. Flops counted per step: ``2N³`` for the
product with ``Q`` plus ``(4/3)N³`` for the QR factorisation (geqrf) and ``(4/3)N³`` for
forming ``Q`` (orgqr), i.e. ``(14/3)N³`` (the O(N²) state update is ignored).

jaxgrad is timed three times: with the default ``qr_method="householder"`` (LAPACK, like
the peers), with ``qr_method="block"`` (block Gram–Schmidt twice, mostly matrix products)
and with ``qr_method="cholesky"`` (shifted CholeskyQR3: Gram products, Cholesky
factorisations and triangular solves, about ``10 N³`` flops). The same ``(14/3) N³`` per
step is counted for all three, so ``fraction_of_matmul_rate`` is the fraction of the
ceiling that this minimum work at the matmul rate allows, whatever a method spends.
"""

from __future__ import annotations

import jax
import numpy as np

import jaxgrad

from ._harness import block, has_torch, time_call

ID = "f"
TITLE = "Full Lyapunov spectrum (QR method), rate network"


def _numpy_spectrum(J: np.ndarray, h: np.ndarray, num_steps: int) -> np.ndarray:
    """The QR loop as a careful NumPy user writes it: one matmul and one QR per step."""
    Q = np.eye(J.shape[0], dtype=J.dtype)
    acc = np.zeros(J.shape[0], dtype=np.float64)
    for _ in range(num_steps):
        r = np.tanh(h)
        D = J * (1.0 - r * r)[None, :]
        h = J @ r
        Q, R = np.linalg.qr(D @ Q)
        acc += np.log(np.abs(np.diag(R)))
    return acc / num_steps


def _torch_spectrum(J, h, num_steps: int):
    import torch

    Q = torch.eye(J.shape[0], dtype=J.dtype)
    acc = torch.zeros(J.shape[0], dtype=torch.float64)
    with torch.no_grad():
        for _ in range(num_steps):
            r = torch.tanh(h)
            D = J * (1.0 - r * r)[None, :]
            h = J @ r
            Q, R = torch.linalg.qr(D @ Q)
            acc += torch.log(torch.abs(torch.diagonal(R))).double()
    return acc / num_steps


def run(quick: bool) -> list[dict]:
    N, T = (64, 200) if quick else (256, 1000)
    repeats = 2 if quick else 3
    p = jaxgrad.init_rate(jax.random.key(0), N, g=2.0)
    h0 = jax.random.normal(jax.random.key(1), (N,))
    flops = T * (14.0 / 3.0) * N**3
    workload = f"(f) full Lyapunov spectrum, N={N}, T={T} steps, QR every step"

    def jax_call(qr_method):
        # A random start basis (the loops below start from the identity): after 1000
        # steps the exponents agree to O(1/T).
        return block(jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, h0, num_steps=T, params=p,
                                               key=jax.random.key(2),
                                               qr_method=qr_method).exponents)

    lam_jax = np.asarray(jax_call("householder"))
    records = [{"workload": workload, "implementation": "jaxgrad",
                "seconds": time_call(lambda: jax_call("householder"), repeats=repeats),
                "flops": flops, "lambda_1": float(lam_jax[0]), "qr_method": "householder"}]
    variants = []
    for method in ("block", "cholesky"):
        lam = np.asarray(jax_call(method))
        variants.append({"workload": f"{workload}, jaxgrad qr_method={method}",
                         "implementation": "jaxgrad",
                         "seconds": time_call(lambda m=method: jax_call(m), repeats=repeats),
                         "flops": flops, "lambda_1": float(lam[0]), "qr_method": method,
                         "max_abs_difference_to_householder": float(np.max(np.abs(lam
                                                                                  - lam_jax)))})

    J, h = np.asarray(p.J), np.asarray(h0)
    lam_np = _numpy_spectrum(J, h, T)
    records.append({"workload": workload, "implementation": "numpy",
                    "seconds": time_call(lambda: _numpy_spectrum(J, h, T), repeats=repeats,
                                         warmup=0),
                    "flops": flops, "lambda_1": float(lam_np[0]),
                    "max_abs_difference_to_jaxgrad": float(np.max(np.abs(lam_np - lam_jax)))})
    if has_torch():
        import torch

        Jt, ht = torch.from_numpy(J.copy()), torch.from_numpy(h.copy())
        lam_t = _torch_spectrum(Jt, ht, T).numpy()
        records.append({"workload": workload, "implementation": "torch",
                        "seconds": time_call(lambda: _torch_spectrum(Jt, ht, T),
                                             repeats=repeats, warmup=0),
                        "flops": flops, "lambda_1": float(lam_t[0]),
                        "max_abs_difference_to_jaxgrad": float(np.max(np.abs(lam_t - lam_jax)))})
    # Each variant's own table block: the same peers beside it.
    peers = [r for r in records if r["implementation"] != "jaxgrad"]
    for variant in variants:
        records.append(variant)
        records += [dict(r, workload=variant["workload"]) for r in peers]
    return records

