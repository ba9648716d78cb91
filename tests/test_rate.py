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
    np.testing.assert_allclose(jaxgrad.models.rate_vector_field(h, u, p),
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
        x1 = jaxgrad.systems.integrator_step(field, jnp.array(1.0), None, a, dt=dt, method=method)
        errors.append(abs(float(x1) - np.exp(a * dt)))
    ratio = errors[0] / errors[1]
    assert 2 ** (order + 1) * 0.8 < ratio < 2 ** (order + 1) * 1.25


def test_rate_flow_step_pytree_and_euler():
    p = jaxgrad.init_rate(jax.random.key(2), 4, g=0.8)
    h = jnp.ones(4)
    u = jnp.zeros((0,))
    euler = jaxgrad.models.rate_flow_step(h, u, p, dt=0.1, method="euler")
    np.testing.assert_allclose(euler, h + 0.1 * jaxgrad.models.rate_vector_field(h, u, p),
                               rtol=1e-6)
    tree = jaxgrad.systems.integrator_step(lambda s, u, q: {"a": -s["a"]}, {"a": h}, u, None,
                                           dt=0.1)
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
        jaxgrad.models.rate_flow_step(jnp.ones(4), jnp.zeros((0,)), p, dt=0.0)
    with pytest.raises(ValueError, match="method"):
        jaxgrad.models.rate_flow_step(jnp.ones(4), jnp.zeros((0,)), p, method="heun")


def _fine_rk4(h, u, p, t, num_steps):
    """The flow map over time t by num_steps RK4 steps (a fori_loop)."""
    dt = t / num_steps
    return jax.lax.fori_loop(
        0, num_steps, lambda i, x: jaxgrad.models.rate_flow_step(x, u, p, dt=dt), h)


@pytest.mark.slow
def test_rate_flow_step_diffrax_matches_fine_rk4(x64):
    """method="diffrax" (Tsit5, rtol 1e-8) over dt = 0.5 against 500 RK4 steps of 0.001
    (error ~1e-13): the state, its Jacobian by forward mode (what the Lyapunov analyzer
    takes, through diffrax.DirectAdjoint) and a gradient by reverse mode."""
    p = jaxgrad.init_rate(jax.random.key(3), 6, g=1.5, num_inputs=1, dtype=jnp.float64)
    h0, u = jnp.linspace(-1.0, 1.5, 6), jnp.array([0.3])

    def adaptive(h):
        return jaxgrad.models.rate_flow_step(h, u, p, dt=0.5, method="diffrax")

    def fine(h):
        return _fine_rk4(h, u, p, 0.5, 500)

    np.testing.assert_allclose(adaptive(h0), fine(h0), atol=1e-8)
    assert float(jnp.max(jnp.abs(adaptive(h0) - h0))) > 0.1  # the state did move
    np.testing.assert_allclose(jax.jacfwd(adaptive)(h0), jax.jacfwd(fine)(h0), atol=1e-8)
    grad = jax.grad(lambda q: jnp.sum(jaxgrad.models.rate_flow_step(
        h0, u, q, dt=0.5, method="diffrax") ** 2))(p)
    grad_ref = jax.grad(lambda q: jnp.sum(_fine_rk4(h0, u, q, 0.5, 500) ** 2))(p)
    np.testing.assert_allclose(grad.J, grad_ref.J, atol=1e-8)
    np.testing.assert_allclose(grad.W_in, grad_ref.W_in, atol=1e-8)
    # Jitted and eager agree; a tighter rtol moves the answer by less than the default's.
    np.testing.assert_allclose(jax.jit(adaptive)(h0), adaptive(h0), rtol=1e-14)
    tight = jaxgrad.models.rate_flow_step(h0, u, p, dt=0.5, method="diffrax", rtol=1e-12,
                                          atol=1e-14)
    np.testing.assert_allclose(tight, fine(h0), atol=1e-11)


def test_rate_flow_step_diffrax_failure():
    """A solve that runs out of steps raises IntegrationError eagerly, is NaN under jit."""
    p = jaxgrad.init_rate(jax.random.key(4), 4, g=1.5)
    h, u = jnp.ones(4), jnp.zeros((0,))
    with pytest.raises(jaxgrad.flows.IntegrationError, match="max_steps=2 reached") as err:
        jaxgrad.models.rate_flow_step(h, u, p, dt=5.0, method="diffrax", max_steps=2)
    assert err.value.cause == "max_steps_reached"
    out = jax.jit(lambda x: jaxgrad.models.rate_flow_step(x, u, p, dt=5.0, method="diffrax",
                                                          max_steps=2))(h)
    assert np.all(np.isnan(np.asarray(out)))
    with pytest.raises(ValueError, match="rtol"):
        jaxgrad.models.rate_flow_step(h, u, p, method="diffrax", rtol=-1.0)
    with pytest.raises(ValueError, match="method"):
        jaxgrad.models.rate_flow_step(h, u, p, method="tsit5")
