"""Lyapunov spectra (Benettin/QR), Kaplan–Yorke dimension, gradient flossing."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import jaxgrad
from jaxgrad.analysis import lyapunov as lyap_module


def _symmetric(eigenvalues, seed=0):
    """``V diag(d) Vᵀ`` with a random orthogonal ``V`` (float64 inside the x64 fixture)."""
    d = jnp.asarray(eigenvalues)
    V, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(seed), (d.shape[0],) * 2, d.dtype))
    return V @ jnp.diag(d) @ V.T


def _log_abs_det_along(step, x0, T):
    """``log|det ∂F/∂x|`` at each of the T steps of the autonomous trajectory from x0."""
    xs = jaxgrad.unroll(step, x0, jnp.zeros((T, 0), x0.dtype))
    prev = jnp.concatenate([x0[None], xs[:-1]])
    jac = jax.vmap(jax.jacfwd(lambda x: step(x, jnp.zeros((0,), x0.dtype))))(prev)
    return jnp.linalg.slogdet(jac)[1]


# ---------------------------------------------------------------- closed forms


def test_linear_map_exponents_are_log_abs_eigenvalues(x64):
    eig = jnp.array([1.3, -0.9, 0.6, -0.3, 0.1])
    A = _symmetric(eig)
    res = jaxgrad.lyapunov_spectrum(lambda x, u: A @ x, jnp.ones(5), num_steps=300,
                                    transient=100)
    np.testing.assert_allclose(res.exponents, np.log(np.abs(eig)), atol=1e-9)
    assert bool(res.finite)
    # Kaplan–Yorke: λ1 > 0 > λ2, λ1 + λ2 = log(1.3 · 0.9) > 0, then the sum turns negative.
    lam = np.log(np.abs(np.asarray(eig)))
    expected = 2 + (lam[0] + lam[1]) / abs(lam[2])
    np.testing.assert_allclose(res.kaplan_yorke_dimension, expected, rtol=1e-9)
    np.testing.assert_allclose(res.entropy_rate, lam[0], rtol=1e-9)


def test_triangular_map_without_transient_converges_like_one_over_T(x64):
    A = jnp.array([[0.9, 0.3, 0.1], [0.0, -1.2, 0.5], [0.0, 0.0, 0.5]])
    expected = np.log([1.2, 0.9, 0.5])
    errors = []
    for T in (200, 800):
        res = jaxgrad.lyapunov_spectrum(lambda x, u: A @ x, jnp.ones(3), num_steps=T)
        errors.append(np.max(np.abs(np.asarray(res.exponents) - expected)))
    assert errors[1] < 0.35 * errors[0]  # O(1/T): four times longer, about four times closer
    assert errors[1] < 5e-3


def test_qr_interval_and_windows(x64):
    eig = jnp.array([1.1, 0.8, -0.5])
    A = _symmetric(eig, seed=1)
    base = jaxgrad.lyapunov_spectrum(lambda x, u: A @ x, jnp.ones(3), num_steps=220,
                                     transient=20, window=40)
    sparse = jaxgrad.lyapunov_spectrum(lambda x, u: A @ x, jnp.ones(3), num_steps=220,
                                       transient=20, qr_interval=5, window=40)
    np.testing.assert_allclose(sparse.exponents, base.exponents, atol=1e-12)
    assert base.finite_time_exponents.shape == (5, 3)
    np.testing.assert_allclose(np.mean(base.finite_time_exponents, 0), base.exponents,
                               atol=1e-12)
    np.testing.assert_allclose(base.running_exponents[-1], base.exponents, atol=1e-12)
    assert np.all(np.asarray(base.convergence) < 1e-6)  # basis still aligning
    assert np.all(np.asarray(base.standard_error) < 1e-6)


@pytest.mark.slow
def test_sum_rule_equals_mean_log_abs_det(x64):
    N, T, transient = 12, 300, 50
    # Small networks are chaotic only at larger g (finite-size effect); this one is.
    p = jaxgrad.init_rate(jax.random.key(3), N, g=2.5, dtype=jnp.float64)
    x0 = jax.random.normal(jax.random.key(4), (N,), jnp.float64)
    res = jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, x0, num_steps=T, transient=transient,
                                    params=p)
    step = partial(jaxgrad.rate_step, params=p)
    log_det = _log_abs_det_along(step, x0, T)[transient:]
    np.testing.assert_allclose(jnp.sum(res.exponents), jnp.mean(log_det), rtol=1e-10)
    assert res.exponents[0] > 0  # chaotic
    assert 0 < res.kaplan_yorke_dimension < N


@pytest.mark.slow
def test_top_exponent_matches_jacobian_product_growth(x64):
    N, T = 40, 600
    p = jaxgrad.init_rate(jax.random.key(5), N, g=3.0, dtype=jnp.float64)
    x0 = jax.random.normal(jax.random.key(6), (N,), jnp.float64)
    # Relax onto the attractor first; both analyzers then see the same trajectory.
    x0 = jaxgrad.unroll(partial(jaxgrad.rate_step, params=p), x0,
                        jnp.zeros((200, 0), jnp.float64))[-1]
    res = jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, x0, num_steps=T, params=p,
                                    num_exponents=1)
    norms = jaxgrad.jacobian_product_norms(jaxgrad.rate_step, x0, num_steps=T, params=p,
                                           step_norms=False)
    rate, _ = jaxgrad.fit_log_rate(norms.log_norms, start=20)
    assert res.exponents[0] > 0.05
    np.testing.assert_allclose(rate, res.exponents[0], rtol=0.1)


def test_stable_origin_gives_log_spectral_radius():
    N = 50
    p = jaxgrad.init_rate(jax.random.key(7), N, g=0.5)
    rho = jnp.max(jnp.abs(jnp.linalg.eigvals(p.J)))
    res = jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, 0.1 * jnp.ones(N), num_steps=700,
                                    transient=200, params=p, num_exponents=3)
    np.testing.assert_allclose(res.exponents[0], jnp.log(rho), atol=2e-3)
    assert res.kaplan_yorke_dimension == 0
    assert res.entropy_rate == 0


def test_flow_exponent_at_stable_origin(x64):
    N = 20
    p = jaxgrad.init_rate(jax.random.key(8), N, g=0.6, dtype=jnp.float64)
    expected = jnp.max(jnp.real(jnp.linalg.eigvals(p.J))) - 1.0
    dt = 0.05
    res = jaxgrad.lyapunov_spectrum(partial(jaxgrad.models.rate_flow_step, dt=dt), jnp.zeros(N),
                                    num_steps=3000, transient=1000, params=p,
                                    num_exponents=1, dt=dt)
    np.testing.assert_allclose(res.exponents[0], expected, atol=5e-3)


@pytest.mark.parametrize("qr_method", lyap_module.QR_METHODS)
def test_singular_jacobian_is_reported_not_hidden(qr_method):
    A = jnp.diag(jnp.array([1.0, 0.0]))
    res = jaxgrad.lyapunov_spectrum(lambda x, u: A @ x, jnp.ones(2), num_steps=10,
                                    qr_method=qr_method)
    assert not bool(res.finite)


def _linear_map(exponents, seed, shear=0.0):
    """``V (diag(e^λ) + shear·U) Vᵀ``, V random orthogonal, U strictly upper triangular: a
    linear map (non-normal for shear > 0) whose Lyapunov exponents are the given λ."""
    lam = jnp.asarray(exponents)
    n = lam.shape[0]
    V, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(seed), (n, n), lam.dtype))
    U = jnp.triu(jax.random.normal(jax.random.key(seed + 1000), (n, n), lam.dtype), 1)
    return V @ (jnp.diag(jnp.exp(lam)) + shear * U) @ V.T


def _apply(x, u, A):
    """The linear map ``x ← A x`` (``A`` as params: no recompilation for a new matrix)."""
    return A @ x


def test_exponents_beyond_float32_resolution_are_flagged():
    # λ = -1, -20, -50 of a rotated (symmetric) map: in one step a tangent vector decays by
    # e^{-49} beside the top one, far below float32's ε ≈ e^{-16}. The QR method returns
    # plausible, finite, wrong numbers (e.g. -1.0, -20.05, -20.47 at qr_interval 1 and
    # -1.0, -4.50, -4.81 at 10 for one rotation, all with finite=True before), or -inf
    # where they underflow; both bottom exponents are now flagged.
    lam = jnp.array([-1.0, -20.0, -50.0])
    for seed in range(2):
        A = _linear_map(lam, seed=seed)
        for qr_interval in (1, 10):
            res = jaxgrad.lyapunov_spectrum(_apply, jnp.ones(3), num_steps=100, params=A,
                                            qr_interval=qr_interval)
            np.testing.assert_allclose(res.exponents[0], -1.0, atol=0.02)  # no transient
            bottom = float(res.exponents[2])  # -inf (underflow) or finite and wrong
            assert bottom == -np.inf or abs(bottom + 50.0) > 5.0
            np.testing.assert_array_equal(res.resolved, [True, False, False])
            assert not bool(res.valid)


def test_resolved_exponents_match_float64_and_the_closed_form():
    # Diagonal, rotated and non-normal maps, 2 seeds, qr_interval 1 to 10, float32: every
    # exponent flagged resolved agrees with float64 on the same map (the flag is about
    # rounding) and every float32 error above 0.02 is flagged. At qr_interval 1 the spread
    # λ_1 - λ_4 = 5.1 is resolved and equals log|eig| (closed form).
    lam = np.array([0.1, -0.7, -2.5, -5.0])
    flagged = 0
    for seed in range(2):
        for shear in (0.0, 3.0):
            A = _linear_map(jnp.asarray(lam, jnp.float32), seed, shear)
            if shear == 0.0 and seed == 0:
                A = jnp.diag(jnp.exp(jnp.asarray(lam, jnp.float32)))
            for qr_interval in (1, 2, 10):
                kw = dict(num_steps=300, transient=100, qr_interval=qr_interval)
                res = jaxgrad.lyapunov_spectrum(_apply, jnp.ones(4), params=A, **kw)
                with jax.enable_x64(True):
                    ref = np.asarray(jaxgrad.lyapunov_spectrum(
                        _apply, jnp.ones(4, jnp.float64), params=jnp.asarray(A, jnp.float64),
                        **kw).exponents)
                err = np.abs(np.asarray(res.exponents) - ref)
                resolved = np.asarray(res.resolved)
                tol = 1e-2 if shear == 3.0 else 1e-3  # non-normal maps amplify rounding
                assert np.all(err[resolved] < tol), (seed, shear, qr_interval, err, resolved)
                assert not np.any(resolved[err > 0.02]), (seed, shear, qr_interval, err)
                assert bool(res.valid) == bool(resolved.all() and res.finite)
                flagged += int((~resolved).sum())
                if qr_interval == 1:
                    assert resolved.all() and bool(res.valid)
                    if shear == 0.0:
                        np.testing.assert_allclose(res.exponents, lam, atol=1e-4)
    assert flagged > 0


def test_underflowing_tangent_vectors_are_flagged():
    # x ← e^{-45} x: each step fits float32 (2.9e-20), two steps (8e-40) underflow.
    f = lambda x, u: jnp.exp(jnp.float32(-45.0)) * x  # noqa: E731
    res = jaxgrad.lyapunov_spectrum(f, jnp.ones(1), num_steps=20)
    np.testing.assert_allclose(res.exponents, [-45.0], rtol=1e-6)
    assert bool(res.valid)
    res = jaxgrad.lyapunov_spectrum(f, jnp.ones(1), num_steps=20, qr_interval=2)
    assert not bool(res.resolved[0]) and not bool(res.valid)


def test_float64_resolves_what_float32_cannot(x64):
    lam = jnp.array([-1.0, -5.0, -20.0])
    A = _linear_map(lam, seed=1)
    kw = dict(num_steps=300, transient=100)
    res = jaxgrad.lyapunov_spectrum(_apply, jnp.ones(3), params=A, **kw)
    np.testing.assert_allclose(res.exponents, lam, atol=1e-9)
    assert bool(res.valid)
    # Two steps decay by e^{-38} beside the top: below float64's ε ≈ e^{-36} as well.
    res = jaxgrad.lyapunov_spectrum(_apply, jnp.ones(3), params=A, qr_interval=2, **kw)
    np.testing.assert_array_equal(res.resolved, [True, True, False])
    with jax.enable_x64(False):
        res = jaxgrad.lyapunov_spectrum(_apply, jnp.ones(3, jnp.float32),
                                        params=jnp.asarray(A, jnp.float32), **kw)
    np.testing.assert_array_equal(res.resolved, [True, True, False])


def test_kaplan_yorke_and_entropy_closed_forms():
    ky = jaxgrad.analysis.kaplan_yorke_dimension
    assert float(ky(jnp.array([0.5, -1.0]))) == pytest.approx(1.5)
    assert float(ky(jnp.array([-1.0, 0.5]))) == pytest.approx(1.5)  # any order
    assert float(ky(jnp.array([-0.1, -2.0]))) == 0.0
    assert float(ky(jnp.array([1.0, 0.5]))) == 2.0
    # Lorenz attractor (Sprott's exponents): D = 2 + 0.9056/14.5723.
    assert float(ky(jnp.array([0.9056, 0.0, -14.5723]))) == pytest.approx(
        2 + 0.9056 / 14.5723, rel=1e-6)
    assert float(jaxgrad.analysis.entropy_rate(jnp.array([0.3, 0.2, -1.0]))) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="exponents"):
        ky(jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="exponents"):
        jaxgrad.analysis.entropy_rate(jnp.ones((2, 2)))


# ---------------------------------------------------------------- transformations


def test_vmap_over_gain_equals_loop():
    N, T = 16, 150
    base = jaxgrad.init_rate(jax.random.key(9), N, g=1.0)
    x0 = jax.random.normal(jax.random.key(10), (N,))
    gs = jnp.array([0.5, 1.5, 2.5])

    def lam(g):
        p = jaxgrad.RateParams(g * base.J, base.W_in)
        return jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, x0, num_steps=T, transient=50,
                                         params=p).exponents

    swept = jax.vmap(lam)(gs)
    looped = jnp.stack([lam(g) for g in gs])
    np.testing.assert_allclose(swept, looped, rtol=2e-4, atol=2e-5)
    # The same with init_rate traced in g (one random matrix scaled by each g).
    swept2 = jax.vmap(lambda g: jaxgrad.lyapunov_spectrum(
        jaxgrad.rate_step, x0, num_steps=T, transient=50,
        params=jaxgrad.init_rate(jax.random.key(9), N, g=g)).exponents)(gs)
    np.testing.assert_allclose(swept2, looped, rtol=2e-4, atol=2e-5)


@pytest.mark.slow
def test_gradient_matches_finite_differences(x64):
    N = 6
    p = jaxgrad.init_rate(jax.random.key(11), N, g=1.7, num_inputs=1, dtype=jnp.float64)
    x0 = jax.random.normal(jax.random.key(12), (N,), jnp.float64)
    inputs = 0.3 * jax.random.normal(jax.random.key(13), (25, 1), jnp.float64)

    def top_two(J):
        res = jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, x0, inputs, transient=10,
                                        params=jaxgrad.RateParams(J, p.W_in),
                                        num_exponents=2)
        return res.exponents

    check_grads(top_two, (p.J,), order=1, modes=("rev",), eps=1e-6)
    floss = lambda J: jaxgrad.analysis.flossing_loss(  # noqa: E731
        jaxgrad.rate_step, x0, inputs, params=jaxgrad.RateParams(J, p.W_in), num_exponents=2)
    check_grads(floss, (p.J,), order=1, modes=("rev",), eps=1e-6)
    # Holding the trajectory fixed keeps only the step Jacobians' explicit dependence.
    truncated = jax.grad(lambda J: jaxgrad.analysis.flossing_loss(
        jaxgrad.rate_step, x0, inputs, params=jaxgrad.RateParams(J, p.W_in), num_exponents=2,
        trajectory_gradient=False))(p.J)
    assert bool(jnp.all(jnp.isfinite(truncated)))
    assert not np.allclose(truncated, jax.grad(floss)(p.J))


def test_block_qr_is_a_qr_factorisation(x64):
    # 100 columns: split into 50 + 50, then 25-column Householder leaves.
    M = jax.random.normal(jax.random.key(3), (120, 100), jnp.float64)
    M = M * jnp.logspace(0, -6, 100)[None]  # column scales over six decades
    Q, r = lyap_module._block_qr(M)
    np.testing.assert_allclose(Q.T @ Q, np.eye(100), atol=1e-13)
    _, R = jnp.linalg.qr(M)
    np.testing.assert_allclose(r, np.abs(np.diagonal(R)), rtol=1e-9)
    # R = QᵀM is upper triangular (Q spans the same nested column spaces as M) and QR = M.
    R = Q.T @ M
    np.testing.assert_allclose(jnp.tril(R, -1), 0.0, atol=1e-13)
    np.testing.assert_allclose(Q @ jnp.triu(R), M, atol=1e-12)


def test_block_qr_method_matches_householder():
    # Linear map (x64 is not needed for the closed form with 40 distinct |eigenvalues|).
    eig = jnp.linspace(1.2, 0.3, 40) * jnp.where(jnp.arange(40) % 2 == 0, 1.0, -1.0)
    A = _symmetric(eig, seed=4)
    ls = partial(jaxgrad.lyapunov_spectrum, lambda x, u: A @ x, jnp.ones(40), num_steps=600,
                 transient=200)
    np.testing.assert_allclose(ls(qr_method="block").exponents,
                               np.log(np.abs(np.asarray(eig))), atol=2e-4)
    # A chaotic rate network in float32, same trajectory and start basis: the two methods
    # differ only by float32 rounding, which reaches ~5e-4 in the bottom exponents (≈ -3.9).
    # (A float64 reference would not help: the chaotic float32 and float64 trajectories
    # decorrelate within ~100 steps.)
    p = jaxgrad.init_rate(jax.random.key(0), 80, g=2.0)
    h0 = jax.random.normal(jax.random.key(1), (80,))
    spectra = [jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, h0, num_steps=400, transient=100,
                                         params=p, qr_method=m) for m in ("householder", "block")]
    np.testing.assert_allclose(spectra[1].exponents, spectra[0].exponents, atol=2e-3)
    np.testing.assert_allclose(spectra[1].exponents[:10], spectra[0].exponents[:10], atol=1e-5)
    assert bool(spectra[1].finite)
    # Differentiable like the Householder iteration.
    grads = [jax.grad(lambda J, m=m: jnp.sum(jaxgrad.lyapunov_spectrum(
        jaxgrad.rate_step, h0, num_steps=60, params=jaxgrad.RateParams(J, p.W_in),
        num_exponents=40, qr_method=m).exponents))(p.J) for m in ("householder", "block")]
    # float32 through a chaotic trajectory: compare as a whole (entries differ by ~2e-4).
    assert float(jnp.linalg.norm(grads[1] - grads[0]) / jnp.linalg.norm(grads[0])) < 5e-3


def _ill_conditioned(n, log10_cond, seed, dtype):
    """``U diag(σ) Vᵀ`` with random orthogonal U, V and σ log-spaced over ``log10_cond``."""
    U, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(seed), (n, n), dtype))
    V, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(seed + 1), (n, n), dtype))
    return (U * jnp.logspace(0, -log10_cond, n, dtype=dtype)[None]) @ V.T


def test_cholesky_qr_is_a_qr_factorisation():
    # float32, κ(M) = 10⁶: beyond plain CholeskyQR2's u^{-1/2} ≈ 4·10³ (its first Cholesky
    # factorisation breaks down), within shifted CholeskyQR3's reach. Against float64
    # Householder: Q orthonormal to float32 precision, |R_ii| as accurate as float32
    # Householder's, M = QR, and no fallback was needed (the Householder branch's Q differs
    # from Cholesky's by column signs: Cholesky's R has a positive diagonal).
    for seed in range(3):
        M = _ill_conditioned(128, 6, seed, jnp.float32)
        Q, r = lyap_module._cholesky_qr(M)
        with jax.enable_x64(True):
            R64 = np.linalg.qr(np.asarray(M, np.float64))[1]
        ref = np.abs(np.diagonal(R64))
        err = np.max(np.abs(np.log(np.asarray(r, np.float64)) - np.log(ref)))
        err_householder = np.max(np.abs(np.log(np.asarray(lyap_module._householder_qr(M)[1],
                                                           np.float64)) - np.log(ref)))
        # Both errors are below u κ(M) = 0.06, in the smallest R_ii; Cholesky's are larger
        # per factorisation (measured 4-5·10⁻³ against 1.4-2·10⁻³ for 3 seeds).
        assert err < min(5.0 * err_householder, 0.06), (seed, err, err_householder)
        np.testing.assert_allclose(Q.T @ Q, np.eye(128), atol=1e-5)
        np.testing.assert_allclose(Q * r[None] @ jnp.triu(Q.T @ M / r[:, None]), M,
                                   atol=1e-5)
        assert np.all(np.diagonal(np.asarray(Q.T @ M)) > 0)  # not the Householder branch
    # A singular matrix (a zero column): the Cholesky factor is not finite, and the step
    # falls back to Householder QR, whose R_ii = 0 then reports the singularity.
    M = _ill_conditioned(16, 1, 0, jnp.float32).at[:, 5].set(0.0)
    Q, r = lyap_module._cholesky_qr(M)
    Qh, rh = lyap_module._householder_qr(M)
    np.testing.assert_array_equal(r, rh)
    np.testing.assert_array_equal(Q, Qh)


def test_cholesky_qr_method_matches_the_closed_form_of_a_widely_spread_map():
    # 32 exponents from 0 to -9 per step (κ of each step's Jacobian e⁹ ≈ 8·10³, so the
    # tangent matrices are too ill-conditioned for plain CholeskyQR2 in float32), 3 seeds,
    # float32: the bottom exponents are as close to log|eig| as Householder's.
    lam = jnp.linspace(0.0, -9.0, 32)
    for seed in range(3):
        A = _linear_map(lam, seed)
        ls = partial(jaxgrad.lyapunov_spectrum, _apply, jnp.ones(32), params=A,
                     num_steps=300, transient=100)
        errs = {m: np.abs(np.asarray(ls(qr_method=m).exponents) - np.asarray(lam))
                for m in ("householder", "cholesky")}
        assert errs["householder"].max() < 5e-3
        assert errs["cholesky"].max() < max(2.0 * errs["householder"].max(), 1e-3), (seed, errs)


def _tangent_along(h, x, J):
    """The rate network's tangent map along a given trajectory: ``x ← J diag(1 − tanh²h) x``."""
    return J @ ((1.0 - jnp.square(jnp.tanh(h))) * x)


@pytest.mark.slow
def test_cholesky_qr_method_matches_a_float64_reference_on_the_rate_network():
    # The chaotic rate network (N = 64, g = 2: λ₁ ≈ 0.1, λ₆₄ ≈ -6, step Jacobians with κ
    # up to 2·10⁵) in float32, along a fixed float32 trajectory so that the float64 NumPy
    # reference sees the same Jacobians: the bottom exponents of the Cholesky method are as
    # close to float64 as Householder's (both ~1-2·10⁻⁴ in measurements), 2 seeds.
    N, T = 64, 300
    for seed in range(2):
        p = jaxgrad.init_rate(jax.random.key(seed), N, g=2.0)
        h0 = jax.random.normal(jax.random.key(seed + 100), (N,))
        hs = jaxgrad.unroll(lambda h, u, p=p: jaxgrad.rate_step(h, u, p), h0,
                            jnp.zeros((T, 0)))
        hs = jnp.concatenate([h0[None], hs[:-1]])
        step = lambda x, h, J: _tangent_along(h, x, J)  # noqa: E731
        key = jax.random.key(2)
        lam = {m: np.asarray(jaxgrad.lyapunov_spectrum(step, jnp.ones(N), hs, params=p.J,
                                                       key=key, qr_method=m).exponents)
               for m in ("householder", "cholesky")}
        J, H = np.asarray(p.J, np.float64), np.asarray(hs, np.float64)
        Q = np.asarray(jnp.linalg.qr(jax.random.normal(key, (N, N)))[0], np.float64)
        acc = np.zeros(N)
        for t in range(T):
            Q, R = np.linalg.qr((J * (1.0 - np.tanh(H[t]) ** 2)[None]) @ Q)
            acc += np.log(np.abs(np.diagonal(R)))
        ref = acc / T
        assert ref[-1] < -5.0  # a wide spread
        err = {m: np.abs(v - ref) for m, v in lam.items()}
        assert err["householder"].max() < 1e-3
        assert err["cholesky"][-16:].max() < max(2.0 * err["householder"][-16:].max(), 5e-4)
        assert err["cholesky"][:16].max() < 1e-5
    # Differentiable like the Householder iteration (the same derivative: both are the QR
    # factorisation with a positive diagonal).
    grads = [jax.grad(lambda J, m=m: jnp.sum(jaxgrad.lyapunov_spectrum(
        jaxgrad.rate_step, h0, num_steps=60, params=jaxgrad.RateParams(J, p.W_in),
        num_exponents=N, qr_method=m).exponents))(p.J) for m in ("householder", "cholesky")]
    assert float(jnp.linalg.norm(grads[1] - grads[0]) / jnp.linalg.norm(grads[0])) < 5e-3


def test_no_recompilation_for_new_parameter_values():
    N = 8
    x0 = jnp.ones(N)
    p1 = jaxgrad.init_rate(jax.random.key(0), N, g=1.2)
    p2 = jaxgrad.init_rate(jax.random.key(1), N, g=0.7)
    jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, x0, num_steps=30, params=p1)
    before = lyap_module._run._cache_size()
    r2 = jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, x0, num_steps=30, params=p2)
    assert lyap_module._run._cache_size() == before
    eager = jax.jit(lambda p: jaxgrad.lyapunov_spectrum(
        jaxgrad.rate_step, x0, num_steps=30, params=p).exponents)(p2)
    np.testing.assert_allclose(r2.exponents, eager, rtol=1e-5, atol=1e-6)


def test_pytree_state_matches_flat_state(x64):
    A = _symmetric(jnp.array([1.2, 0.7, -0.4, 0.2]), seed=2)

    def flat(x, u):
        return A @ x

    def tree(state, u):
        x = jnp.concatenate([state["a"], state["b"]])
        y = A @ x
        return {"a": y[:1], "b": y[1:]}

    r_flat = jaxgrad.lyapunov_spectrum(flat, jnp.ones(4), num_steps=120, transient=20)
    r_tree = jaxgrad.lyapunov_spectrum(tree, {"a": jnp.ones(1), "b": jnp.ones(3)},
                                       num_steps=120, transient=20)
    np.testing.assert_allclose(r_tree.exponents, r_flat.exponents, atol=1e-12)
    assert set(r_tree.final_state) == {"a", "b"}
    assert r_tree.basis.shape == (4, 4)


# ---------------------------------------------------------------- gradient flossing


def test_floss_pushes_top_exponents_to_zero():
    # Flossing from the ordered phase with Adam, as in experiments/gradient_flossing.py. (The
    # exact trajectory gradient grows like e^{λ_1 T} once λ_1 crosses zero: SGD's unbounded
    # steps on it kicked this test's former autonomous g = 2 network into saturation, where
    # the tangent vectors underflow and the loss is inf; Adam's steps stay ~lr whatever the
    # gradient.) Over 8 seeds Σλ² fell to at most 0.03 of its start; here 5e-4.
    N, k = 16, 3
    p = jaxgrad.init_rate(jax.random.key(14), N, g=0.8, num_inputs=1)
    x0 = jax.random.normal(jax.random.key(15), (N,))
    u = jax.random.normal(jax.random.key(16), (120, 1))
    kwargs = dict(transient=20, num_exponents=k)
    before = jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, x0, u, params=p, **kwargs).exponents
    trace = jaxgrad.analysis.floss(jaxgrad.rate_step, x0, u, params=p, optimizer=optax.adam(1e-2),
                                   num_updates=60, **kwargs)
    after = jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, x0, u, params=trace.params,
                                      **kwargs).exponents
    assert trace.losses.shape == (60,) and trace.exponents.shape == (60, k)
    assert bool(jnp.all(trace.finite))
    np.testing.assert_allclose(trace.exponents[0], before, rtol=1e-5)
    assert jnp.sum(after**2) < 0.2 * jnp.sum(before**2)
    assert jnp.abs(after[0]) < jnp.abs(before[0])


def _sqrt_gain_step(x, u, p):
    """``x ← √p x``: λ = ½ log p; NaN once p < 0."""
    return jnp.sqrt(p) * x


def test_floss_divergence_raises_and_keeps_the_last_good_parameters():
    # Closed form: λ = ½ log p, loss = λ², gradient ½ log(p) / p = 0.1733 at p = 4; SGD with
    # learning rate 30 moves p to -1.2, where √p and so the loss are NaN (update 1).
    kwargs = dict(num_steps=5, params=jnp.array(4.0), optimizer=optax.sgd(30.0),
                  num_updates=4)
    with pytest.raises(jaxgrad.analysis.FlossingDiverged, match="update 1") as info:
        jaxgrad.analysis.floss(_sqrt_gain_step, jnp.ones(1), **kwargs)
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert err.step == 1
    assert float(err.params) == 4.0  # the last parameters with a finite loss and gradient
    np.testing.assert_allclose(err.losses[0], (0.5 * np.log(4.0)) ** 2, rtol=1e-5)
    assert err.losses.shape == (2,) and not np.isfinite(err.losses[1])
    trace = jaxgrad.analysis.floss(_sqrt_gain_step, jnp.ones(1), throw=False, **kwargs)
    np.testing.assert_array_equal(trace.finite, [True, False, False, False])
    assert float(trace.params) == 4.0
    assert np.isnan(trace.losses[2:]).all()  # not run
    # Under jit no exception can be raised: the trace says it.
    jitted = jax.jit(lambda p: jaxgrad.analysis.floss(
        _sqrt_gain_step, jnp.ones(1), num_steps=5, params=p, optimizer=optax.sgd(30.0),
        num_updates=4).finite)
    np.testing.assert_array_equal(jitted(jnp.array(4.0)), [True, False, False, False])


def test_floss_with_plain_sgd_never_returns_non_finite_parameters():
    # The case: SGD(0.05) on the exact gradient of an autonomous g = 2 network went
    # NaN from update ~12 and returned NaN parameters. Whether it diverges depends on
    # rounding (chaos); either way the parameters that come back must be finite.
    N, k = 16, 3
    p = jaxgrad.init_rate(jax.random.key(14), N, g=2.0)
    x0 = jax.random.normal(jax.random.key(15), (N,))
    kwargs = dict(num_steps=120, transient=20, num_exponents=k)
    try:
        params = jaxgrad.analysis.floss(jaxgrad.rate_step, x0, params=p, optimizer=optax.sgd(0.05),
                                        num_updates=20, **kwargs).params
    except jaxgrad.analysis.FlossingDiverged as err:
        params = err.params
        assert np.isfinite(err.losses[:-1]).all() and not np.isfinite(err.losses[-1])
        # The kept parameters are the last ones whose loss was finite.
        res = jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, x0, params=params, **kwargs)
        assert bool(res.finite)
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree_util.tree_leaves(params))


# ---------------------------------------------------------------- bad input


def test_bad_arguments_name_the_argument():
    A = jnp.eye(3)
    f = lambda x, u: A @ x  # noqa: E731
    ls = jaxgrad.lyapunov_spectrum
    with pytest.raises(ValueError, match="num_exponents"):
        ls(f, jnp.ones(3), num_steps=10, num_exponents=4)
    with pytest.raises(ValueError, match="qr_interval"):
        ls(f, jnp.ones(3), num_steps=10, qr_interval=3)
    with pytest.raises(ValueError, match="window"):
        ls(f, jnp.ones(3), num_steps=10, qr_interval=2, window=3)
    with pytest.raises(ValueError, match="transient"):
        ls(f, jnp.ones(3), num_steps=10, transient=10)
    with pytest.raises(ValueError, match="dt"):
        ls(f, jnp.ones(3), num_steps=10, dt=0.0)
    with pytest.raises(TypeError, match="step"):
        ls("not a function", jnp.ones(3), num_steps=10)
    with pytest.raises(ValueError, match="x0"):
        ls(f, jnp.array([1.0, jnp.nan, 0.0]), num_steps=10)
    with pytest.raises(ValueError, match="num_steps"):
        ls(f, jnp.ones(3))
    with pytest.raises(TypeError, match="num_exponents"):
        ls(f, jnp.ones(3), num_steps=10, num_exponents=1.5)
    with pytest.raises(ValueError, match="qr_method"):
        ls(f, jnp.ones(3), num_steps=10, qr_method="givens")
    with pytest.raises(ValueError, match="num_exponents"):
        jaxgrad.analysis.flossing_loss(lambda x, u, p: A @ x, jnp.ones(3), num_steps=10,
                                       params=None,
                                       num_exponents=0)
    with pytest.raises(TypeError, match="optimizer"):
        jaxgrad.analysis.floss(f, jnp.ones(3), num_steps=10, params=None, optimizer="adam",
                               num_updates=3)
    with pytest.raises(ValueError, match="num_updates"):
        jaxgrad.analysis.floss(f, jnp.ones(3), num_steps=10, params=None, optimizer=optax.sgd(0.1),
                               num_updates=0)


@pytest.mark.parametrize("key", [0, "a", jnp.zeros(2), jax.random.split(jax.random.key(0), 2)])
def test_bad_key_names_the_argument(key):
    with pytest.raises(TypeError, match="`key`"):
        jaxgrad.lyapunov_spectrum(lambda x, u: 0.5 * x, jnp.ones(2), num_steps=4, key=key)


def test_typed_and_raw_keys_give_the_same_basis():
    ls = partial(jaxgrad.lyapunov_spectrum, lambda x, u: 0.5 * x, jnp.ones(3), num_steps=2)
    np.testing.assert_array_equal(ls(key=jax.random.PRNGKey(3)).basis,
                                  ls(key=jax.random.key(3)).basis)


def test_tangent_basis_accumulator_is_the_one_behind_lyapunov_spectrum():
    """Driving ``tangent_basis_update`` by hand with the step Jacobians gives
    ``lyapunov_spectrum``'s exponents and basis; on a constant matrix with eigenvalues of
    distinct moduli the accumulated stretches are their log-moduli (float64 reference)."""
    from jaxgrad.analysis import TangentBasisState, tangent_basis_init, tangent_basis_update

    p = jaxgrad.init_rate(jax.random.key(3), 12, g=2.0)
    key = jax.random.key(7)
    res = jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, jnp.ones(12), None, params=p,
                                    num_steps=200, num_exponents=5, key=key)

    def body(carry, _):
        x, state = carry
        J = jax.jacfwd(lambda y: jaxgrad.rate_step(y, jnp.zeros(0), p))(x)
        _, state = tangent_basis_update(state, J @ state.basis)
        return (jaxgrad.rate_step(x, jnp.zeros(0), p), state), None

    (x, state), _ = jax.lax.scan(body, (jnp.ones(12), tangent_basis_init(key, 12, 5)), None,
                                 length=200)
    assert isinstance(state, TangentBasisState) and int(state.updates) == 200
    np.testing.assert_allclose(state.log_stretch / 200, res.exponents, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(state.basis, res.basis, atol=1e-4)

    for seed in range(5):
        rng = np.random.default_rng(seed)
        moduli = np.sort(rng.uniform(0.2, 3.0, 4))[::-1]
        V = rng.normal(size=(4, 4))
        A = V @ np.diag(moduli * rng.choice([-1.0, 1.0], 4)) @ np.linalg.inv(V)
        with jax.enable_x64(True):
            A64 = jnp.asarray(A)
            state = tangent_basis_init(jax.random.key(seed), 4, 4, jnp.float64)
            for _ in range(400):
                _, state = tangent_basis_update(state, A64 @ state.basis, qr_method="block")
            np.testing.assert_allclose(state.log_stretch / 400, np.log(moduli), atol=2e-2)
    with pytest.raises(ValueError, match="qr_method"):
        tangent_basis_update(tangent_basis_init(key, 3, 2), jnp.eye(3)[:, :2], qr_method="gs")
