"""A user's own Flax (nnx) module plugs into every analyzer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxgrad


class ElmanCell(nnx.Module):
    """A user's recurrent cell: h' = tanh(W h + U u + b)."""

    def __init__(self, hidden: int, inputs: int, *, rngs: nnx.Rngs):
        self.rec = nnx.Linear(hidden, hidden, rngs=rngs)
        self.inp = nnx.Linear(inputs, hidden, use_bias=False, rngs=rngs)

    def __call__(self, h, u):
        return jnp.tanh(self.rec(h) + self.inp(u))


@pytest.fixture
def cell():
    return ElmanCell(6, 2, rngs=nnx.Rngs(0))


def _explicit_step(cell):
    W, b, U = cell.rec.kernel[...], cell.rec.bias[...], cell.inp.kernel[...]
    return lambda h, u: jnp.tanh(h @ W + b + u @ U)


def test_module_as_closure_and_as_split_state(cell):
    inputs = jax.random.normal(jax.random.key(1), (40, 2))
    h0 = jnp.zeros(6)
    graphdef, state = nnx.split(cell)

    def step(h, u, state):
        return nnx.merge(graphdef, state)(h, u)

    as_closure = jaxgrad.jacobian_product_norms(lambda h, u: cell(h, u), h0, inputs)
    as_params = jaxgrad.jacobian_product_norms(step, h0, inputs, params=state)
    explicit = jaxgrad.jacobian_product_norms(_explicit_step(cell), h0, inputs)
    np.testing.assert_allclose(as_closure.log_norms, explicit.log_norms, atol=1e-5)
    np.testing.assert_allclose(as_params.log_norms, explicit.log_norms, atol=1e-5)


def test_module_through_gradient_flow_and_spectral(cell):
    inputs = jax.random.normal(jax.random.key(2), (25, 2))
    h0 = jnp.zeros(6)
    flow = jaxgrad.analysis.recurrent_gradient_flow(lambda h, u: cell(h, u), h0, inputs,
                                                    lambda hs: jnp.sum(hs[-1] ** 2))
    ref = jaxgrad.analysis.recurrent_gradient_flow(_explicit_step(cell), h0, inputs,
                                                   lambda hs: jnp.sum(hs[-1] ** 2))
    np.testing.assert_allclose(flow.state_grad_norms, ref.state_grad_norms, rtol=1e-5)

    h = 0.1 * jnp.ones(6)
    J = jax.jacfwd(lambda x: cell(x, inputs[0]))(h)
    jvp = lambda v: jax.jvp(lambda x: cell(x, inputs[0]), (h,), (v,))[1]  # noqa: E731
    assert float(jaxgrad.analysis.spectral_norm(jvp, vector=h).value) == pytest.approx(
        float(jaxgrad.analysis.spectral_norm(J).value), rel=1e-4)
    assert float(jaxgrad.spectral_radius(jvp, vector=h, max_iterations=5000).value) == \
        pytest.approx(float(jaxgrad.spectral_radius(J).value), rel=5e-3)


def test_split_state_sweep_without_recompilation(cell):
    graphdef, state = nnx.split(cell)
    traces = []

    def step(h, u, state):
        traces.append(1)
        return nnx.merge(graphdef, state)(h, u)

    inputs = jnp.zeros((10, 2))
    first = jaxgrad.jacobian_product_norms(step, jnp.ones(6), inputs, params=state)
    n = len(traces)
    scaled = jax.tree_util.tree_map(lambda a: 0.5 * a, state)
    second = jaxgrad.jacobian_product_norms(step, jnp.ones(6), inputs, params=scaled)
    assert len(traces) == n
    assert float(second.log_norms[-1]) < float(first.log_norms[-1])
