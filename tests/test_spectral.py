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
    assert float(jaxgrad.spectral_norm(A).value) == pytest.approx(sv[0], rel=1e-5)


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
    est = jaxgrad.spectral_norm(lambda v: A @ v, vector=jnp.ones(20))
    assert bool(est.converged)
    assert float(est.value) == pytest.approx(float(jnp.linalg.norm(A, 2)), rel=1e-4)


def test_jacobian_of_a_step_as_operator():
    p = jaxgrad.init_pascanu(jax.random.key(0), 16, 1, scaling="spectral_norm", value=1.5)
    x, u = 0.3 * jnp.ones(16), jnp.zeros(1)

    def jvp(v):
        return jax.jvp(lambda y: jaxgrad.pascanu_step(y, u, p), (x,), (v,))[1]

    J = jax.jacfwd(jaxgrad.pascanu_step)(x, u, p)
    assert float(jaxgrad.spectral_norm(jvp, vector=x).value) == pytest.approx(
        float(jaxgrad.spectral_norm(J).value), rel=1e-4)
    assert float(jaxgrad.spectral_radius(jvp, vector=x, max_iterations=5000).value) == \
        pytest.approx(float(jaxgrad.spectral_radius(J).value), rel=5e-3)


def test_jit_of_matrix_free():
    A = _random(12)
    f = jax.jit(lambda A: jaxgrad.spectral_norm(lambda v: A @ v, vector=jnp.ones(12)).value)
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
            jaxgrad.spectral_norm(jnp.ones(3))

    def test_nan(self):
        with pytest.raises(ValueError, match="`M` must be finite"):
            jaxgrad.spectral_norm(jnp.array([[1.0, jnp.nan], [0.0, 1.0]]))

    def test_operator_needs_vector(self):
        with pytest.raises(ValueError, match="vector"):
            jaxgrad.spectral_norm(lambda v: v)
        with pytest.raises(ValueError, match="same shape"):
            jaxgrad.spectral_radius(lambda v: v[:2], vector=jnp.ones(3))

    def test_bad_tolerance(self):
        with pytest.raises(ValueError, match="tol"):
            jaxgrad.spectral_norm(lambda v: v, vector=jnp.ones(3), tol=-1.0)
        with pytest.raises(ValueError, match="max_iterations"):
            jaxgrad.spectral_radius(lambda v: v, vector=jnp.ones(3), max_iterations=0)

    def test_string(self):
        with pytest.raises(TypeError, match="`M` must be an array"):
            jaxgrad.spectral_radius("identity")
