"""Where the time of one step of benchmark (f) goes: the tangent product and each QR method.

Not a workload of ``python -m benchmarks`` (it has no ``ID``): run it on its own,

    python -m benchmarks.qr_pieces

It times, per step of one jitted ``lax.scan`` of 200 steps on a 256×256 float32 matrix of
the rate network's scale (``W ~ N(0, 1.5²/N)``), the product ``W @ Q`` alone, the product
followed by ``jaxgrad.analysis.tangent_basis_update`` with each ``qr_method``
(``"householder"``, ``"block"``, ``"cholesky"``; the update the Lyapunov spectrum makes
once per step), the pieces of one CholeskyQR pass, the
block method's LAPACK leaves, and PyTorch's ``torch.linalg.qr`` of the same product where
PyTorch is installed. ``benchmarks/README.md`` (session 11) records a quiet run and reads
the 1.5× target of (f) against it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxgrad.analysis import tangent_basis_init, tangent_basis_update

from ._harness import block, has_torch, time_call

N = 256
STEPS = 200


def _per_step(run, arg) -> float:
    """Best seconds per step of ``run(arg)`` (``STEPS`` steps), after a warm-up call."""
    return time_call(lambda: block(run(arg))) / STEPS


def _step_loop(W, qr_method):
    """``STEPS`` steps of ``Q ← orthonormalise(W Q)``; ``qr_method=None`` times the product."""

    @jax.jit
    def run(state):
        def body(state, _):
            image = W @ state.basis
            if qr_method is None:
                return state._replace(basis=image / jnp.linalg.norm(image)), jnp.zeros(())
            log_r, state = tangent_basis_update(state, image, qr_method=qr_method)
            return state, jnp.sum(log_r)

        return jax.lax.scan(body, state, None, length=STEPS)

    return run


def _piece_loop(piece):
    @jax.jit
    def run(X):
        return jax.lax.scan(lambda X, _: (piece(X), None), X, None, length=STEPS)[0]

    return run


def main() -> None:
    rng = np.random.default_rng(0)
    W_np = (rng.standard_normal((N, N)) * 1.5 / np.sqrt(N)).astype(np.float32)
    W = jnp.asarray(W_np)
    eye = jnp.eye(N, dtype=W.dtype)
    state = tangent_basis_init(jax.random.key(0), N, N, W.dtype)
    for qr_method in (None, "householder", "block", "cholesky"):
        name = "the 256×256 product alone" if qr_method is None else f"product + {qr_method}"
        run = _step_loop(W, qr_method)
        print(f"{name:38s} {_per_step(run, state) * 1e3:.3f} ms/step")
    G = W.T @ W + eye
    R = jnp.linalg.cholesky(G).T
    X = eye + 0.01 * W
    pieces = [
        ("CholeskyQR pass: Gram product", lambda X: (X.T @ X) * 1e-3 + X),
        ("CholeskyQR pass: potrf", lambda X: jnp.linalg.cholesky(G + 1e-9 * X)),
        ("CholeskyQR pass: triangular solve",
         lambda X: jax.lax.linalg.triangular_solve(R, X, left_side=False, lower=False)),
        ("LAPACK QR of 256×256", lambda X: jnp.linalg.qr(X)[0]),
        ("eight LAPACK QRs of 256×32", lambda X: jnp.concatenate(
            [jnp.linalg.qr(X[:, i * 32:(i + 1) * 32])[0] for i in range(8)], axis=1)),
    ]
    for name, piece in pieces:
        print(f"{name:38s} {_per_step(_piece_loop(piece), X) * 1e3:.3f} ms")
    if not has_torch():
        print("PyTorch not installed: its QR is not timed")
        return
    import torch

    W_t = torch.tensor(W_np)

    def torch_steps():
        Q = torch.eye(N)
        for _ in range(STEPS):
            Q, _ = torch.linalg.qr(W_t @ Q)

    for threads in (1, 2):
        torch.set_num_threads(threads)
        best = time_call(torch_steps) / STEPS
        print(f"{f'PyTorch qr(W @ Q), {threads} thread(s)':38s} {best * 1e3:.3f} ms/step")


if __name__ == "__main__":
    main()
