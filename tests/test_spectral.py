"""spectral_radius and spectral_norm, dense and matrix-free."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad


def _random(n, key=0):
    return jax.random.normal(jax.random.key(key), (n, n)) / np.sqrt(n)


def test_dense_equals_max_abs_eigenvalue_and_largest_singular_value():
    A = _random(40)
    eig = np.linalg.eigvals(np.asarray(A, np.float64))
    assert float(jaxgrad.spectral_radius(A).value) == pytest.approx(np.abs(eig).max(), rel=1e-5)
    sv = np.linalg.svd(np.asarray(A, np.float64), compute_uv=False)
    assert float(jaxgrad.analysis.spectral_norm(A).value) == pytest.approx(sv[0], rel=1e-5)


def test_dense_batched_by_vmap_and_leading_axes():
    As = jnp.stack([_random(10, k) for k in range(4)])
    direct = jaxgrad.spectral_radius(As).value
    mapped = jax.vmap(lambda A: jaxgrad.spectral_radius(A).value)(As)
    np.testing.assert_allclose(direct, mapped, rtol=1e-6)
    assert direct.shape == (4,)


@pytest.mark.parametrize("key", [0, 1, 2, 3])
def test_matrix_free_radius_matches_dense(key):
    A = _random(30, key)
    est = jaxgrad.spectral_radius(lambda v: A @ v, vector=jnp.ones(30), max_iterations=5000)
    assert bool(est.converged)
    exact = np.abs(np.linalg.eigvals(np.asarray(A, np.float64))).max()
    assert float(est.value) == pytest.approx(exact, rel=2e-3)


def test_matrix_free_radius_complex_pair_and_rotation():
    rot = jnp.array([[0.0, -2.0], [2.0, 0.0]])  # eigenvalues ±2i: plain power iteration cycles
    est = jaxgrad.spectral_radius(lambda v: rot @ v, vector=jnp.ones(2))
    assert float(est.value) == pytest.approx(2.0, rel=1e-5) and bool(est.converged)
    # A 3×3 with a dominant complex pair 1.5 e^{±iπ/3} and a real 0.5
    c, s = 1.5 * np.cos(np.pi / 3), 1.5 * np.sin(np.pi / 3)
    A = jnp.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 0.5]])
    Q = jnp.linalg.qr(_random(3, 7))[0]
    B = Q @ A @ Q.T
    est = jaxgrad.spectral_radius(lambda v: B @ v, vector=jnp.ones(3))
    assert float(est.value) == pytest.approx(1.5, rel=1e-4)


def test_matrix_free_norm_via_linear_transpose():
    A = jax.random.normal(jax.random.key(5), (20, 20))
    est = jaxgrad.analysis.spectral_norm(lambda v: A @ v, vector=jnp.ones(20))
    assert bool(est.converged)
    assert float(est.value) == pytest.approx(float(jnp.linalg.norm(A, 2)), rel=1e-4)


def test_jacobian_of_a_step_as_operator():
    p = jaxgrad.init_pascanu(jax.random.key(0), 16, 1, scaling="spectral_norm", value=1.5)
    x, u = 0.3 * jnp.ones(16), jnp.zeros(1)

    def jvp(v):
        return jax.jvp(lambda y: jaxgrad.pascanu_step(y, u, p), (x,), (v,))[1]

    J = jax.jacfwd(jaxgrad.pascanu_step)(x, u, p)
    assert float(jaxgrad.analysis.spectral_norm(jvp, vector=x).value) == pytest.approx(
        float(jaxgrad.analysis.spectral_norm(J).value), rel=1e-4)
    assert float(jaxgrad.spectral_radius(jvp, vector=x, max_iterations=5000).value) == \
        pytest.approx(float(jaxgrad.spectral_radius(J).value), rel=5e-3)


def test_jit_of_matrix_free():
    A = _random(12)
    f = jax.jit(lambda A: jaxgrad.analysis.spectral_norm(lambda v: A @ v,
                                                         vector=jnp.ones(12)).value)
    assert float(f(A)) == pytest.approx(float(jnp.linalg.norm(A, 2)), rel=1e-4)


def test_nonconvergence_is_reported():
    A = _random(50)
    est = jaxgrad.spectral_radius(lambda v: A @ v, vector=jnp.ones(50), max_iterations=3,
                                  tol=1e-12)
    assert not bool(est.converged) and int(est.iterations) == 3


class TestBadInput:
    def test_not_square(self):
        with pytest.raises(ValueError, match="`M` must be a square matrix"):
            jaxgrad.spectral_radius(jnp.ones((3, 4)))
        with pytest.raises(ValueError, match="`M` must be a square matrix"):
            jaxgrad.analysis.spectral_norm(jnp.ones(3))

    def test_nan(self):
        with pytest.raises(ValueError, match="`M` must be finite"):
            jaxgrad.analysis.spectral_norm(jnp.array([[1.0, jnp.nan], [0.0, 1.0]]))

    def test_operator_needs_vector(self):
        with pytest.raises(ValueError, match="vector"):
            jaxgrad.analysis.spectral_norm(lambda v: v)
        with pytest.raises(ValueError, match="same shape"):
            jaxgrad.spectral_radius(lambda v: v[:2], vector=jnp.ones(3))

    def test_bad_tolerance(self):
        with pytest.raises(ValueError, match="tol"):
            jaxgrad.analysis.spectral_norm(lambda v: v, vector=jnp.ones(3), tol=-1.0)
        with pytest.raises(ValueError, match="max_iterations"):
            jaxgrad.spectral_radius(lambda v: v, vector=jnp.ones(3), max_iterations=0)

    def test_string(self):
        with pytest.raises(TypeError, match="`M` must be an array"):
            jaxgrad.spectral_radius("identity")


# --- converged means right to tol ------------------------------------------------------------


@pytest.mark.parametrize("m", [2, 5])
@pytest.mark.parametrize("s", [1e-3, 1.0, 3.0, 1e3])
def test_jordan_block_radius_within_tol_or_not_converged(m, s):
    """A defective eigenvalue: subspace iteration creeps to it like 1/k. The old stopping
    rule (small change) said converged 0.2% off for 5×5."""
    J = s * (jnp.eye(m) + jnp.eye(m, k=1))
    tol = 1e-6
    est = jaxgrad.spectral_radius(lambda v: J @ v, vector=jnp.ones(m), tol=tol)
    assert not bool(est.converged) or abs(float(est.value) - s) <= tol * s
    if m == 5:
        assert not bool(est.converged)
    norm = jaxgrad.analysis.spectral_norm(lambda v: J @ v, vector=jnp.ones(m), tol=tol)
    exact = np.linalg.norm(np.asarray(J, np.float64), 2)
    assert bool(norm.converged)
    assert abs(float(norm.value) - exact) <= 2 * tol * exact


def test_matrix_free_radius_and_norm_on_random_matrices_converged_means_within_tol():
    """64 random 10×10 matrices (vmapped): wherever converged, within tol of numpy."""
    n, tol = 10, 1e-4
    As = jax.random.normal(jax.random.key(11), (64, n, n)) / np.sqrt(n)

    def both(A):
        op = lambda v: A @ v  # noqa: E731
        return (jaxgrad.spectral_radius(op, vector=jnp.ones(n), tol=tol, max_iterations=3000),
                jaxgrad.analysis.spectral_norm(op, vector=jnp.ones(n), tol=tol))

    radius, norm = jax.vmap(both)(As)
    A64 = np.asarray(As, np.float64)
    exact_radius = np.abs(np.linalg.eigvals(A64)).max(axis=1)
    exact_norm = np.linalg.norm(A64, 2, axis=(1, 2))
    ok = np.asarray(radius.converged)
    assert ok.mean() > 0.5
    rel = np.abs(np.asarray(radius.value, np.float64) - exact_radius) / exact_radius
    assert np.all(rel[ok] <= 2 * tol)
    assert np.all(np.asarray(norm.converged))
    rel = np.abs(np.asarray(norm.value, np.float64) - exact_norm) / exact_norm
    assert np.all(rel <= 2 * tol)


def test_matrix_free_norm_when_the_given_vector_misses_the_top_singular_vector():
    """ones is an eigenvector of A for 1, orthogonal to the top one (3): plain power
    iteration from it stays at 1 and used to say converged."""
    A = jnp.array([[2.0, -1.0], [-1.0, 2.0]])
    est = jaxgrad.analysis.spectral_norm(lambda v: A @ v, vector=jnp.ones(2))
    assert bool(est.converged) and float(est.value) == pytest.approx(3.0, rel=1e-6)


class TestBadInputMore:
    def test_empty_matrix(self):
        for f in (jaxgrad.spectral_radius, jaxgrad.analysis.spectral_norm):
            with pytest.raises(ValueError, match="`M` must have at least one row"):
                f(jnp.ones((0, 0)))

    def test_inf_in_dense_matrix(self):
        for f in (jaxgrad.spectral_radius, jaxgrad.analysis.spectral_norm):
            with pytest.raises(ValueError, match="`M` must be finite"):
                f(jnp.array([[1.0, jnp.inf], [0.0, 1.0]]))

    def test_vector_of_the_wrong_size(self):
        A = jnp.ones((3, 3))
        for f in (jaxgrad.spectral_radius, jaxgrad.analysis.spectral_norm):
            with pytest.raises(ValueError, match="`vector` of shape \\(4,\\)"):
                f(lambda v: A @ v, vector=jnp.ones(4))

    def test_empty_vector(self):
        with pytest.raises(ValueError, match="`vector` must have at least one element"):
            jaxgrad.analysis.spectral_norm(lambda v: v, vector=jnp.ones(0))

    def test_non_callable_non_array(self):
        for bad in ({"a": 1}, object()):
            with pytest.raises(TypeError, match="`M` must be a square array or a callable"):
                jaxgrad.spectral_radius(bad)
            with pytest.raises(TypeError, match="`M` must be a square array or a callable"):
                jaxgrad.analysis.spectral_norm(bad)
