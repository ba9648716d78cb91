"""Hessian eigenpairs, trace and spectral density against closed forms and dense references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad
from jaxgrad.analysis.hessian import (
    hessian_eigenvalues,
    hessian_spectral_density,
    hessian_trace,
)


def _quad(A, x):
    return 0.5 * x @ (A @ x)


def _scaled_quad(A, scale, x):
    return scale * _quad(A, x)


def _quadratic(eigs, seed, dtype=np.float64):
    """``½ xᵀAx`` with ``A = Q diag(eigs) Qᵀ`` (random Q) and the matrix A.

    The loss is a ``jax.tree_util.Partial``, so a new ``A`` of the same shape reuses the
    compiled program.
    """
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((len(eigs), len(eigs))))
    A = (Q * np.asarray(eigs)) @ Q.T
    A = jnp.asarray((A + A.T) / 2, dtype)
    return jax.tree_util.Partial(_quad, A), A


def _spectrum(P, seed):
    """Signed, spread 1e-3..1e3, log-uniform magnitudes."""
    rng = np.random.default_rng(1000 + seed)
    mags = 10.0 ** rng.uniform(-3, 3, P)
    mags[:2] = [1e3, 1e-3]
    return mags * rng.choice([-1.0, 1.0], P)


def _mlp_loss():
    """A tiny two-layer tanh network, its params (a dict pytree) and data."""
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.standard_normal((8, 3)))
    Y = jnp.asarray(rng.standard_normal((8, 2)))
    params = {
        "W1": jnp.asarray(rng.standard_normal((3, 4))),
        "b1": jnp.asarray(0.1 * rng.standard_normal(4)),
        "W2": jnp.asarray(rng.standard_normal((4, 2))),
    }

    def model(p):
        return jnp.tanh(X @ p["W1"] + p["b1"][None, :]) @ p["W2"]

    def out_loss(z):
        return 0.5 * jnp.mean(jnp.sum((z - Y) ** 2, axis=1))

    return (lambda p: out_loss(model(p))), params, model, out_loss


def _dense_hessian(loss, params):
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    return np.asarray(jax.hessian(lambda x: loss(unravel(x)))(flat))


def test_quadratic_closed_form_many_seeds(x64):
    """Top-k and bottom-k of a signed spectrum spread over 1e-3..1e3: 20 seeds."""
    worst = 0.0
    P = 16
    for seed in range(20):
        eigs = _spectrum(P, seed)
        loss, _ = _quadratic(eigs, seed)
        out = hessian_eigenvalues(
            loss, jnp.zeros(P), k=2, which="both", num_iterations=P, key=jax.random.key(seed)
        )
        want = np.concatenate([np.sort(eigs)[::-1][:2], np.sort(eigs)[:2]])
        err = np.max(np.abs(np.asarray(out.eigenvalues) - want) / np.abs(want))
        worst = max(worst, err)
        assert bool(out.converged), seed
        # the residual bounds the eigenvalue error
        assert np.all(np.abs(np.asarray(out.eigenvalues) - want) <= out.residuals + 1e-12)
    assert worst < 1e-9, worst


def test_float32_converged_means_within_tol():
    """Float32, spread 1e-3..1e3: whenever ``converged``, every eigenvalue is within ``tol``.

    One compilation for all seeds: the loss is a ``Partial`` of the matrix.
    """
    from jaxgrad.analysis import hessian as module

    before = None
    n_converged = 0
    for seed in range(20):
        eigs = _spectrum(16, seed)
        loss, _ = _quadratic(eigs, seed, np.float32)
        out = hessian_eigenvalues(
            loss, jnp.zeros(16, jnp.float32), k=2, which="both", num_iterations=16,
            key=jax.random.key(seed),
        )
        want = np.concatenate([np.sort(eigs)[::-1][:2], np.sort(eigs)[:2]])
        rel = np.abs(np.asarray(out.eigenvalues, np.float64) - want) / np.abs(want)
        if bool(out.converged):
            n_converged += 1
            assert np.all(rel <= np.sqrt(np.finfo(np.float32).eps)), (seed, rel)
        if before is None:
            before = module._eigen._cache_size()
    assert module._eigen._cache_size() == before  # no recompilation for a new matrix
    assert n_converged >= 15


@pytest.mark.parametrize("which", ["largest", "smallest", "largest_magnitude"])
def test_which_and_eigenvectors(x64, which):
    eigs = np.array([5.0, -7.0, 2.0, -0.5, 1e-2, 3.0, -1.0, 0.25])
    loss, A = _quadratic(eigs, 3)
    out = hessian_eigenvalues(loss, jnp.zeros(8), k=3, which=which, key=jax.random.key(1))
    order = {
        "largest": np.sort(eigs)[::-1],
        "smallest": np.sort(eigs),
        "largest_magnitude": eigs[np.argsort(-np.abs(eigs))],
    }[which]
    np.testing.assert_allclose(out.eigenvalues, order[:3], rtol=1e-10)
    Y = np.asarray(out.eigenvectors)
    np.testing.assert_allclose(Y @ np.asarray(A), out.eigenvalues[:, None] * Y, atol=1e-9)
    np.testing.assert_allclose(Y @ Y.T, np.eye(3), atol=1e-10)
    assert out.num_hvps == 1 + 8 + 3


def test_mlp_pytree_against_jax_hessian(x64):
    loss, params, _, _ = _mlp_loss()
    H = _dense_hessian(loss, params)
    ref = np.linalg.eigh(H)[0]
    out = hessian_eigenvalues(loss, params, k=3, which="both", key=jax.random.key(0))
    P = H.shape[0]
    assert P == 3 * 4 + 4 + 4 * 2
    np.testing.assert_allclose(out.eigenvalues[:3], ref[::-1][:3], rtol=1e-8)
    np.testing.assert_allclose(out.eigenvalues[3:], ref[:3], rtol=1e-8)
    assert ref[0] < 0  # the signed end is really negative
    assert bool(out.converged)
    # eigenvectors come as a pytree like params, stacked
    assert out.eigenvectors["W1"].shape == (6, 3, 4)
    flat = jax.vmap(lambda t: jax.flatten_util.ravel_pytree(t)[0])(out.eigenvectors)
    np.testing.assert_allclose(
        flat @ H, np.asarray(out.eigenvalues)[:, None] * flat, atol=1e-8 * np.abs(ref).max()
    )


def test_not_converged_is_reported():
    """A clustered spectrum and too few iterations: the residuals say so."""
    eigs = np.linspace(1.0, 0.9, 60)
    loss, _ = _quadratic(eigs, 0, np.float32)
    out = hessian_eigenvalues(
        loss, jnp.zeros(60, jnp.float32), k=3, num_iterations=5, key=jax.random.key(0)
    )
    assert not bool(out.converged)
    assert np.all(np.asarray(out.residuals) > 1e-3)


def test_degenerate_spectrum_breakdown(x64):
    """A multiple eigenvalue makes Lanczos break down; the restart keeps it exact."""
    eigs = np.array([2.0] * 5 + [-1.0] * 5)
    loss, _ = _quadratic(eigs, 1)
    out = hessian_eigenvalues(
        loss, jnp.zeros(10), k=3, which="both", num_iterations=10, key=jax.random.key(0)
    )
    np.testing.assert_allclose(out.eigenvalues, [2, 2, 2, -1, -1, -1], rtol=1e-10)
    assert bool(out.converged)


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
def test_extreme_scale_float32(scale):
    """Loss times 1e±30 in float32: the same relative eigenvalues (the tangent is rescaled)."""
    eigs = np.array([4.0, -3.0, 2.5, 1.0, -0.5, 0.25, 2.0, -2.0])
    loss, _ = _quadratic(eigs, 2, np.float32)
    scaled = jax.tree_util.Partial(_scaled_quad, loss.args[0], jnp.float32(scale))
    out = hessian_eigenvalues(
        scaled, jnp.ones(8, jnp.float32), k=2, which="both", num_iterations=8,
        key=jax.random.key(0),
    )
    want = scale * np.array([4.0, 2.5, -3.0, -2.0])
    np.testing.assert_allclose(np.asarray(out.eigenvalues, np.float64), want, rtol=1e-5)
    assert bool(out.converged)
    tr = hessian_trace(scaled, jnp.ones(8, jnp.float32), num_probes=24,
                       key=jax.random.key(0))
    np.testing.assert_allclose(float(tr.estimate), scale * eigs.sum(), rtol=1e-5)


def test_trace_hutchpp_exact_and_hutchinson_within_errors(x64):
    eigs = _spectrum(12, 4)
    loss, A = _quadratic(eigs, 4)
    want = float(np.trace(np.asarray(A)))
    exact = hessian_trace(loss, jnp.zeros(12), num_probes=36, key=jax.random.key(0))
    np.testing.assert_allclose(exact.estimate, want, rtol=1e-10, atol=1e-10)
    assert float(exact.standard_error) == 0.0
    assert exact.num_hvps == 1 + 12 + 12 + 12
    # Hutchinson and a short Hutch++ (sketch 10 < P = 12), 20 seeds: the standard error is
    # calibrated (RMS error ≈ RMS standard error; over 300 seeds 4% had |z| > 3: the sample
    # std of a quadratic form has heavy tails, so single seeds are not held to 3σ).
    for method, m in [("hutchinson", 20), ("hutch++", 30)]:
        err, se = [], []
        for seed in range(20):
            out = hessian_trace(
                loss, jnp.zeros(12), num_probes=m, method=method, key=jax.random.key(seed)
            )
            err.append(float(out.estimate) - want)
            se.append(float(out.standard_error))
        err, se = np.array(err), np.array(se)
        ratio = np.sqrt(np.mean(err**2) / np.mean(se**2))
        assert 0.5 < ratio < 2.0, (method, ratio)
        assert np.mean(np.abs(err) <= 3 * se) >= 0.85, (method, err / se)


def test_trace_mlp_against_jax_hessian(x64):
    loss, params, _, _ = _mlp_loss()
    want = np.trace(_dense_hessian(loss, params))
    out = hessian_trace(loss, params, num_probes=72, key=jax.random.key(0))  # sketch 24 = P
    np.testing.assert_allclose(out.estimate, want, rtol=1e-10)


def test_spectral_density_moments(x64):
    eigs = np.array([-2.0, -0.5, 0.1, 0.3, 1.0, 1.5, 3.0, 6.0, 6.5, 10.0])
    loss, A = _quadratic(eigs, 5)
    out = hessian_spectral_density(loss, jnp.zeros(10), num_probes=8, key=jax.random.key(0))
    integral = np.trapezoid(out.density, out.grid)
    mean = np.trapezoid(out.grid * out.density, out.grid)
    np.testing.assert_allclose(integral, 1.0, atol=1e-6)
    np.testing.assert_allclose(mean * 10, out.trace, rtol=1e-6)
    np.testing.assert_allclose(np.sum(out.weights, axis=1), 1.0, atol=1e-12)
    # with num_lanczos = P each probe's nodes are the eigenvalues themselves
    np.testing.assert_allclose(np.sort(out.nodes, axis=1), np.tile(eigs, (8, 1)), atol=1e-9)
    assert abs(float(out.trace) - eigs.sum()) < 4 * float(out.trace_standard_error)
    assert out.density.shape == out.density_standard_error.shape == (1000,)
    # an explicit grid and sigma
    grid = jnp.linspace(-5.0, 15.0, 2001)
    out2 = hessian_spectral_density(
        loss, jnp.zeros(10), num_probes=8, grid=grid, sigma=0.3, key=jax.random.key(0)
    )
    np.testing.assert_allclose(np.trapezoid(out2.density, grid), 1.0, atol=1e-6)
    assert np.all(np.isfinite(out2.density_standard_error))
    assert float(out2.sigma) == 0.3


def test_gauss_newton_against_explicit(x64):
    loss, params, model, out_loss = _mlp_loss()
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    J = np.asarray(jax.jacobian(lambda x: model(unravel(x)).ravel())(flat))
    z = model(params)
    H_out = np.asarray(jax.hessian(lambda v: out_loss(v.reshape(z.shape)))(z.ravel()))
    G = J.T @ H_out @ J
    ref = np.linalg.eigh(G)[0]
    out = hessian_eigenvalues(
        None, params, k=4, gauss_newton=(model, out_loss), key=jax.random.key(0)
    )
    np.testing.assert_allclose(out.eigenvalues, ref[::-1][:4], rtol=1e-8)
    assert bool(out.converged)
    tr = hessian_trace(None, params, gauss_newton=(model, out_loss), num_probes=72,
                       key=jax.random.key(0))
    np.testing.assert_allclose(tr.estimate, np.trace(G), rtol=1e-10)


def test_jit_compatible_and_top_level_exports():
    assert jaxgrad.hessian_eigenvalues is hessian_eigenvalues
    assert jaxgrad.hessian_trace is hessian_trace
    assert jaxgrad.analysis.hessian_spectral_density is hessian_spectral_density
    eigs = np.array([3.0, -1.0, 0.5, 2.0])
    loss, _ = _quadratic(eigs, 0, np.float32)
    key = jax.random.key(0)

    @jax.jit
    def f(p):
        return (
            hessian_eigenvalues(loss, p, k=1, key=key).eigenvalues,
            hessian_trace(loss, p, num_probes=12, key=key).estimate,
            hessian_spectral_density(loss, p, num_probes=2, key=key).trace,
        )

    top, tr, _ = f(jnp.zeros(4, jnp.float32))
    np.testing.assert_allclose(top, [3.0], rtol=1e-5)
    np.testing.assert_allclose(tr, 4.5, rtol=1e-5)


def test_bad_inputs_name_the_argument():
    loss, _ = _quadratic(np.array([1.0, 2.0, 3.0]), 0, np.float32)
    x = jnp.zeros(3, jnp.float32)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="`k`"):
        hessian_eigenvalues(loss, x, k=4, key=key)
    with pytest.raises(ValueError, match="`k`"):
        hessian_eigenvalues(loss, x, k=2, which="both", key=key)
    with pytest.raises(ValueError, match="`loss_fn` must return a scalar"):
        hessian_eigenvalues(lambda p: p * 2.0, x, key=key)
    with pytest.raises(TypeError, match="`loss_fn`"):
        hessian_trace("loss", x, key=key)
    with pytest.raises(ValueError, match="`num_probes`"):
        hessian_trace(loss, x, num_probes=0, key=key)
    with pytest.raises(ValueError, match="`num_probes`"):
        hessian_spectral_density(loss, x, num_probes=0, key=key)
    with pytest.raises(ValueError, match="`params` must be finite"):
        hessian_eigenvalues(loss, x.at[1].set(jnp.nan), key=key)
    with pytest.raises(TypeError, match="`key`"):
        hessian_trace(loss, x, key=0)
    with pytest.raises(ValueError, match="`which`"):
        hessian_eigenvalues(loss, x, which="top", key=key)
    with pytest.raises(ValueError, match="`num_iterations`"):
        hessian_eigenvalues(loss, x, num_iterations=5, key=key)
    with pytest.raises(ValueError, match="`num_lanczos`"):
        hessian_spectral_density(loss, x, num_lanczos=4, key=key)
    with pytest.raises(TypeError, match="`params`"):
        hessian_trace(loss, jnp.zeros(3, jnp.int32), key=key)
    with pytest.raises(ValueError, match="`params`"):
        hessian_trace(loss, {}, key=key)
    with pytest.raises(ValueError, match="`method`"):
        hessian_trace(loss, x, method="exact", key=key)
    with pytest.raises(TypeError, match="`gauss_newton`"):
        hessian_trace(None, x, gauss_newton=loss, key=key)


@pytest.mark.slow
def test_lanczos_basis_stays_orthonormal_float32():
    """Ill-conditioned float32 spectrum (a few outliers over a 1e-6..1 bulk): plain Lanczos
    (the three-term recurrence alone) loses orthogonality as the outliers converge (ghost
    copies of them appear); the reorthogonalised basis stays orthonormal to ~1e-6."""
    from jaxgrad.analysis.hessian import lanczos_ritz

    P, m = 300, 80
    rng = np.random.default_rng(7)
    eigs = np.concatenate([[1e3, 7e2, 4e2], 10.0 ** rng.uniform(-6, 0, P - 3)])
    Q, _ = np.linalg.qr(rng.standard_normal((P, P)))
    A = ((Q * eigs) @ Q.T).astype(np.float32)
    A = (A + A.T) / 2
    # plain Lanczos in float32 (NumPy): orthogonality is lost
    V = np.zeros((m, P), np.float32)
    v = rng.standard_normal(P).astype(np.float32)
    V[0] = v / np.linalg.norm(v)
    b = np.float32(0)
    for j in range(m - 1):
        w = A @ V[j] - b * V[j - 1] if j else A @ V[j]
        w = w - (V[j] @ w) * V[j]
        b = np.linalg.norm(w)
        V[j + 1] = w / b
    assert np.max(np.abs(V @ V.T - np.eye(m))) > 1e-2
    run = lanczos_ritz(lambda x: jnp.asarray(A) @ x, jnp.zeros(P, jnp.float32),
                       jax.random.key(0), m)
    W = np.asarray(run.basis, np.float64)
    assert np.max(np.abs(W @ W.T - np.eye(m))) < 2e-6
    top = np.asarray(run.values)[::-1][:3] / float(run.scale)
    np.testing.assert_allclose(top, [1e3, 7e2, 4e2], rtol=1e-5)
    # no ghosts: exactly one Ritz value near each outlier
    vals = np.asarray(run.values) / float(run.scale)
    assert np.sum(np.abs(vals - 1e3) < 1.0) == 1
