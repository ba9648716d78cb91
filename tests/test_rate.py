"""Rate networks: initialisation, steps, fixed-step integrators."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad


def test_init_rate_statistics_and_shapes():
    N, g = 200, 1.5
    p = jaxgrad.init_rate(jax.random.key(0), N, g=g, num_inputs=2)
    assert p.J.shape == (N, N) and p.W_in.shape == (N, 2)
    # J_ij ~ N(0, g²/N): the sample std of N² entries is within a few percent.
    np.testing.assert_allclose(jnp.std(p.J) * np.sqrt(N), g, rtol=0.02)
    # Circular law: the spectral radius is ≈ g.
    rho = float(jnp.max(jnp.abs(jnp.linalg.eigvals(p.J))))
    assert abs(rho - g) < 0.15
    # The same key gives the same matrix; g only scales it.
    q = jaxgrad.init_rate(jax.random.key(0), N, g=1.0, num_inputs=2)
    np.testing.assert_allclose(p.J, g * q.J, rtol=1e-6)


def test_rate_step_and_vector_field():
    p = jaxgrad.init_rate(jax.random.key(1), 5, g=1.0, num_inputs=1)
    h = jnp.linspace(-1.0, 1.0, 5)
    u = jnp.array([0.5])
    np.testing.assert_allclose(jaxgrad.rate_step(h, u, p),
                               p.J @ jnp.tanh(h) + p.W_in @ u, rtol=1e-6)
    np.testing.assert_allclose(jaxgrad.rate_vector_field(h, u, p),
                               -h + p.J @ jnp.tanh(h) + p.W_in @ u, rtol=1e-6)
    # The step's Jacobian at the origin is J (tanh'(0) = 1).
    jac = jax.jacfwd(lambda x: jaxgrad.rate_step(x, u, p))(jnp.zeros(5))
    np.testing.assert_allclose(jac, p.J, rtol=1e-6)


@pytest.mark.parametrize("method, order", [("euler", 1), ("rk4", 4)])
def test_integrator_order_on_linear_flow(x64, method, order):
    # dx/dt = a x: one step is exp(a dt) up to O(dt^{order+1}).
    def field(x, u, params):
        return params * x

    a = -0.7
    errors = []
    for dt in (0.1, 0.05):
        x1 = jaxgrad.integrator_step(field, jnp.array(1.0), None, a, dt=dt, method=method)
        errors.append(abs(float(x1) - np.exp(a * dt)))
    ratio = errors[0] / errors[1]
    assert 2 ** (order + 1) * 0.8 < ratio < 2 ** (order + 1) * 1.25


def test_rate_flow_step_pytree_and_euler():
    p = jaxgrad.init_rate(jax.random.key(2), 4, g=0.8)
    h = jnp.ones(4)
    u = jnp.zeros((0,))
    euler = jaxgrad.rate_flow_step(h, u, p, dt=0.1, method="euler")
    np.testing.assert_allclose(euler, h + 0.1 * jaxgrad.rate_vector_field(h, u, p), rtol=1e-6)
    tree = jaxgrad.integrator_step(lambda s, u, q: {"a": -s["a"]}, {"a": h}, u, None, dt=0.1)
    np.testing.assert_allclose(tree["a"], np.exp(-0.1) * np.ones(4), rtol=1e-6)


def test_rate_bad_arguments():
    with pytest.raises(ValueError, match="num_units"):
        jaxgrad.init_rate(jax.random.key(0), 0)
    with pytest.raises(TypeError, match="num_units"):
        jaxgrad.init_rate(jax.random.key(0), 2.5)
    with pytest.raises(ValueError, match="`g`"):
        jaxgrad.init_rate(jax.random.key(0), 4, g=-1.0)
    with pytest.raises(ValueError, match="num_inputs"):
        jaxgrad.init_rate(jax.random.key(0), 4, num_inputs=-1)
    p = jaxgrad.init_rate(jax.random.key(0), 4)
    with pytest.raises(ValueError, match="dt"):
        jaxgrad.rate_flow_step(jnp.ones(4), jnp.zeros((0,)), p, dt=0.0)
    with pytest.raises(ValueError, match="method"):
        jaxgrad.rate_flow_step(jnp.ones(4), jnp.zeros((0,)), p, method="heun")
