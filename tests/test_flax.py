"""A user's own Flax (nnx) module plugs into every analyzer, as it is."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

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


# --------------------------------------------------------------------------- modules as they are
# A user's nnx RNN cell and nnx MLP go through jacobian_product_norms, lyapunov_spectrum, the
# gradient-flow analyzers, fixed_points and scan_landscape with no wrapping; every number is
# checked against dense Jacobians from jax.jacfwd multiplied in float64 NumPy.

F64 = jnp.float64
SEEDS = [0, 1, 2]


class Cell64(nnx.Module):
    """h' = tanh(W h + U u + b) in float64, gain ``g`` on the recurrent weights."""

    def __init__(self, hidden: int, inputs: int, *, g: float, rngs: nnx.Rngs):
        init = nnx.initializers.normal(g / np.sqrt(hidden))
        self.rec = nnx.Linear(hidden, hidden, kernel_init=init, param_dtype=F64, rngs=rngs)
        self.inp = nnx.Linear(inputs, hidden, use_bias=False, param_dtype=F64, rngs=rngs)

    def __call__(self, h, u):
        return jnp.tanh(self.rec(h) + self.inp(u))


def _mlp64(seed, widths=(3, 5, 5, 5, 4), *, final_tanh=False):
    """nnx.Sequential of Linear layers with tanh between them (and after the last with
    ``final_tanh``), float64."""
    rngs = nnx.Rngs(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nnx.Linear(a, b, param_dtype=F64, rngs=rngs,
                                 bias_init=nnx.initializers.normal(0.5)))
        if final_tanh or i < len(widths) - 2:
            layers.append(jnp.tanh)
    return nnx.Sequential(*layers)


def _jacobians(step, h0, inputs):
    """States h_0..h_T and dense float64 step Jacobians J_t = ∂h_t/∂h_{t-1} by jacfwd."""
    hs, Js = [h0], []
    for u in inputs:
        Js.append(np.asarray(jax.jacfwd(lambda h, u=u: step(h, u))(hs[-1]), np.float64))
        hs.append(step(hs[-1], u))
    return hs, Js


def _product_log_norms(Js):
    """log ‖J_T ⋯ J_{T-k+1}‖₂ for k = 1..T, float64 NumPy."""
    P = np.eye(Js[0].shape[0])
    out = []
    for J in reversed(Js):
        P = P @ J
        out.append(np.log(np.linalg.norm(P, 2)))
    return np.array(out)


def _qr_exponents(Js, transient, key):
    """Lyapunov exponents of the Jacobian sequence by float64 QR after a transient, from
    the initial basis lyapunov_spectrum draws with ``key`` (QR of a Gaussian matrix; the
    signs of its columns do not change any |R_ii|)."""
    Q = np.linalg.qr(np.asarray(jax.random.normal(key, Js[0].shape, F64)))[0]
    total = np.zeros(Js[0].shape[0])
    for t, J in enumerate(Js):
        Q, R = np.linalg.qr(J @ Q)
        if t >= transient:
            total += np.log(np.abs(np.diag(R)))
    return np.sort(total / (len(Js) - transient))[::-1]


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_nnx_cell_through_every_analyzer_against_jacfwd(x64, seed):
    cell = Cell64(4, 2, g=1.5, rngs=nnx.Rngs(seed))
    inputs = jax.random.normal(jax.random.key(seed + 10), (60, 2), F64)
    h0 = 0.1 * jnp.ones(4, F64)
    hs, Js = _jacobians(cell, h0, inputs)

    res = jaxgrad.jacobian_product_norms(cell, h0, inputs)
    # certified power iteration: ‖·‖₂ to the relative tol 1e-6, so log-norms to 1e-6
    np.testing.assert_allclose(res.log_norms, _product_log_norms(Js), rtol=0, atol=1e-6)

    key = jax.random.key(seed)
    lyap = jaxgrad.lyapunov_spectrum(cell, h0, inputs, transient=20, key=key)
    np.testing.assert_allclose(lyap.exponents, _qr_exponents(Js, 20, key), atol=1e-10)

    # ∂L/∂h_t (total derivative) of L = Σ_t w·h_t + ‖h_T‖²: g_t = w + J_{t+1}ᵀ g_{t+1}.
    w = np.linspace(-1.0, 1.0, 4)
    flow = jaxgrad.analysis.recurrent_gradient_flow(
        cell, h0, inputs,
        lambda states: jnp.sum(states @ jnp.asarray(w)) + jnp.sum(states[-1] ** 2))
    g = w + 2 * np.asarray(hs[-1])
    ref = [np.linalg.norm(g)]
    for J in reversed(Js[1:]):
        g = w + J.T @ g
        ref.append(np.linalg.norm(g))
    np.testing.assert_allclose(flow.state_grad_norms, ref[::-1], rtol=1e-9)

    # Fixed points of the cell at a constant input (an autonomous map); eigenvalues of
    # ∂f/∂h there against jacfwd's.
    step, p = jaxgrad.systems.as_step(cell)
    u_star = inputs[0]
    fp = jaxgrad.fixed_points(jaxgrad.autonomous(lambda h, p: step(h, u_star, p)),
                              0.5 * jax.random.normal(jax.random.key(seed), (6, 4), F64),
                              params=p)
    assert fp.x.shape[0] >= 1
    for x_star, eig in zip(np.asarray(fp.x), np.asarray(fp.eigenvalues), strict=True):
        np.testing.assert_allclose(np.asarray(cell(jnp.asarray(x_star), u_star)), x_star,
                                   atol=1e-10)
        J = np.asarray(jax.jacfwd(lambda h: cell(h, u_star))(jnp.asarray(x_star)))
        np.testing.assert_allclose(np.sort_complex(eig), np.sort_complex(np.linalg.eigvals(J)),
                                   atol=1e-9)

    # A loss landscape over the module's parameters (an nnx.State) along a direction.
    def loss(p):
        return jnp.sum(step(h0, u_star, p) ** 2)

    d = jaxgrad.landscape.random_direction(p, key=jax.random.key(seed))
    values = jnp.linspace(-1.0, 1.0, 5, dtype=F64)
    scan = jaxgrad.scan_landscape(loss, p, {"a": jaxgrad.Direction(d, values)}, progress=False)
    _check_scan(scan, loss, p, d, values)


def _check_scan(scan, loss, p, d, values):
    """Loss, directional derivative and ‖∇θ L‖ at θ0 + c d against jacfwd in float64."""
    flat0, unravel = ravel_pytree(p)
    flat_d, _ = ravel_pytree(d)
    for i, c in enumerate(np.asarray(values)):
        theta = flat0 + c * flat_d
        grad = np.asarray(jax.jacfwd(lambda t: loss(unravel(t)))(theta))
        assert float(scan.loss[i]) == pytest.approx(float(loss(unravel(theta))), rel=1e-10)
        assert float(scan.axis_gradients[i, 0]) == pytest.approx(float(grad @ np.asarray(flat_d)),
                                                             rel=1e-8, abs=1e-12)
        assert float(scan.gradient_norm[i]) == pytest.approx(np.linalg.norm(grad), rel=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_nnx_mlp_layer_gradient_flow_against_jacfwd(x64, seed):
    mlp = _mlp64(seed)
    x = jax.random.normal(jax.random.key(seed), (3, 3), F64)
    y = jnp.array([0, 3, 1])
    flow = jaxgrad.analysis.layer_gradient_flow(mlp, x, y)

    layers = list(mlp.layers)
    hs = [x]
    for layer in layers:
        hs.append(layer(hs[-1]))
    np.testing.assert_allclose(flow.output, hs[-1], rtol=1e-12)
    ce = lambda out: jaxgrad.analysis.LOSSES["cross_entropy"](out, y)  # noqa: E731
    assert float(flow.loss) == pytest.approx(float(ce(hs[-1])), rel=1e-12)
    # ∂L/∂h_L from jacfwd of the loss, then g_{l-1} = J_lᵀ g_l with the dense Jacobian of
    # layer l over the whole batch; ∂L/∂θ_l = (∂h_l/∂θ_l)ᵀ g_l.
    g = np.asarray(jax.jacfwd(ce)(hs[-1]), np.float64).ravel()
    dh, dtheta = [], []
    for i in reversed(range(len(layers))):
        dh.append(np.linalg.norm(g))
        layer, h_in = layers[i], hs[i]
        if isinstance(layer, nnx.Module):
            graphdef, state = nnx.split(layer)
            flat, unravel = ravel_pytree(state)
            Jt = np.asarray(jax.jacfwd(lambda t, gd=graphdef, h=h_in, u=unravel:
                                       nnx.merge(gd, u(t))(h))(flat)).reshape(g.size, -1)
            dtheta.append(np.linalg.norm(Jt.T @ g))
        else:
            dtheta.append(0.0)
        J = np.asarray(jax.jacfwd(layer)(h_in)).reshape(g.size, h_in.size)
        g = J.T @ g
    np.testing.assert_allclose(flow.activation_grad_norms, dh[::-1], rtol=1e-9)
    np.testing.assert_allclose(flow.param_grad_norms, dtheta[::-1], rtol=1e-9)
    assert np.all(np.isneginf(np.asarray(flow.log_param_grad_norms)[1::2]))  # tanh: no θ


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_nnx_mlp_depth_as_time_against_jacfwd(x64, seed):
    """Equal hidden layers as a step over depth (layers_as_step) through the trajectory
    analyzers, fixed_points and scan_landscape."""
    mlp = _mlp64(seed, widths=(5, 5, 5, 5, 5, 5), final_tanh=True)
    linear = [layer for layer in mlp.layers if isinstance(layer, nnx.Linear)]
    step, thetas = jaxgrad.systems.layers_as_step(linear)
    block = lambda h, th: jnp.tanh(step(h, th))  # noqa: E731  layer l: tanh(h W_l + b_l)
    h0 = jax.random.normal(jax.random.key(seed), (5,), F64)
    explicit = [lambda h, u, f=layer: jnp.tanh(f(h)) for layer in linear]
    hs, Js = [h0], []
    for layer_step in explicit:
        Js.append(np.asarray(jax.jacfwd(lambda h, f=layer_step: f(h, None))(hs[-1])))
        hs.append(layer_step(hs[-1], None))

    res = jaxgrad.jacobian_product_norms(block, h0, thetas)
    np.testing.assert_allclose(res.log_norms, _product_log_norms(Js), rtol=0, atol=1e-6)
    lyap = jaxgrad.lyapunov_spectrum(block, h0, thetas)
    # Without a transient the QR sums start from jaxgrad's own random basis: all exponents
    # together are basis-independent, Σ λ_i = mean log |det J_l|.
    assert float(jnp.sum(lyap.exponents)) == pytest.approx(
        np.mean([np.linalg.slogdet(J)[1] for J in Js]), rel=1e-9)
    flow = jaxgrad.analysis.recurrent_gradient_flow(block, h0, thetas, lambda hs: jnp.sum(hs[-1]))
    g = np.ones(5)
    ref = [np.linalg.norm(g)]
    for J in reversed(Js[1:]):
        g = J.T @ g
        ref.append(np.linalg.norm(g))
    np.testing.assert_allclose(flow.state_grad_norms, ref[::-1], rtol=1e-9)
    # the same gradients as layer_gradient_flow's on the whole network, one example
    whole = jaxgrad.analysis.layer_gradient_flow(mlp, h0, None, loss="sum")
    np.testing.assert_allclose(whole.activation_grad_norms[1::2], flow.state_grad_norms,
                               rtol=1e-9)

    # The whole equal-width MLP as an autonomous map h -> mlp(h): its fixed points.
    mstep, p = jaxgrad.systems.as_step(mlp)
    fp = jaxgrad.fixed_points(jaxgrad.autonomous(mstep),
                              jax.random.normal(jax.random.key(seed + 1), (6, 5), F64), params=p)
    assert fp.x.shape[0] >= 1
    for x_star, eig in zip(np.asarray(fp.x), np.asarray(fp.eigenvalues), strict=True):
        np.testing.assert_allclose(np.asarray(mlp(jnp.asarray(x_star))), x_star, atol=1e-10)
        J = np.asarray(jax.jacfwd(mlp)(jnp.asarray(x_star)))
        np.testing.assert_allclose(np.sort_complex(eig), np.sort_complex(np.linalg.eigvals(J)),
                                   atol=1e-9)

    def loss(p):
        return jnp.sum(mstep(h0, p) ** 2)

    d = jaxgrad.landscape.random_direction(p, key=jax.random.key(seed))
    values = jnp.linspace(-0.5, 0.5, 3, dtype=F64)
    scan = jaxgrad.scan_landscape(loss, p, {"a": jaxgrad.Direction(d, values)}, progress=False)
    _check_scan(scan, loss, p, d, values)


def test_module_params_sweep_reuses_the_compiled_code():
    """A module's parameters are traced: another module of the same structure (or
    ``params=`` a state like its own) reuses the compiled analyzer."""
    inputs = jnp.zeros((10, 2))
    first = jaxgrad.jacobian_product_norms(ElmanCell(6, 2, rngs=nnx.Rngs(0)), jnp.ones(6), inputs)
    from jaxgrad.analysis import jacobian

    n = jacobian._run._cache_size()
    other = ElmanCell(6, 2, rngs=nnx.Rngs(1))
    second = jaxgrad.jacobian_product_norms(other, jnp.ones(6), inputs)
    _, state = nnx.split(other)
    half = jaxgrad.jacobian_product_norms(other, jnp.ones(6), inputs,
                                          params=jax.tree_util.tree_map(lambda a: 0.5 * a, state))
    assert jacobian._run._cache_size() == n
    assert float(second.log_norms[-1]) != float(first.log_norms[-1])
    assert float(half.log_norms[-1]) < float(second.log_norms[-1])


# --------------------------------------------------------------------------- bad input


class NoInputCell(nnx.Module):
    def __init__(self, *, rngs):
        self.rec = nnx.Linear(3, 3, rngs=rngs)

    def __call__(self, h):  # no input argument: not a step
        return jnp.tanh(self.rec(h))


class ActivationBetween(nnx.Module):
    """Holds `layers` but applies tanh between them: not their composition."""

    def __init__(self, *, rngs):
        self.layers = nnx.List([nnx.Linear(3, 4, rngs=rngs), nnx.Linear(4, 2, rngs=rngs)])

    def __call__(self, x):
        return self.layers[1](jnp.tanh(self.layers[0](x)))


def test_module_with_wrong_call_signature_is_refused_by_name():
    with pytest.raises(ValueError, match=r"`step` failed on a state shaped like `x0`"):
        jaxgrad.jacobian_product_norms(NoInputCell(rngs=nnx.Rngs(0)), jnp.ones(3),
                                       jnp.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"`step`"):
        jaxgrad.lyapunov_spectrum(NoInputCell(rngs=nnx.Rngs(0)), jnp.ones(3), jnp.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"`layers\[1\]` failed on an input shaped \(2, 4\)"):
        jaxgrad.analysis.layer_gradient_flow([nnx.Linear(3, 4, rngs=nnx.Rngs(0)),
                                              nnx.Linear(5, 2, rngs=nnx.Rngs(1))],
                                             jnp.ones((2, 3)), jnp.array([0, 1]))
    with pytest.raises(ValueError, match=r"`layers\[0\]` failed"):
        jaxgrad.analysis.layer_gradient_flow([ElmanCell(6, 2, rngs=nnx.Rngs(0))], jnp.ones((2, 6)),
                                             None, loss="sum")


def test_layer_sequences_that_do_not_fit_are_refused_by_name():
    x, y = jnp.ones((2, 3)), jnp.array([0, 1])
    with pytest.raises(ValueError, match=r"`layers`: ActivationBetween\(x\) is not the "):
        jaxgrad.analysis.layer_gradient_flow(ActivationBetween(rngs=nnx.Rngs(0)), x, y)
    with pytest.raises(TypeError, match=r"`layers`"):
        jaxgrad.analysis.layer_gradient_flow(nnx.Linear(3, 2, rngs=nnx.Rngs(0)), x, y)
    with pytest.raises(ValueError, match=r"`layers` must hold at least one layer"):
        jaxgrad.analysis.layer_gradient_flow([], x, y)
    with pytest.raises(ValueError, match=r"`params` must be a sequence of 1"):
        jaxgrad.analysis.layer_gradient_flow([lambda h, p: h @ p], x, y,
                                             params=[jnp.ones((3, 2))] * 2)
    with pytest.raises(ValueError, match=r"`y` must hold class labels in \[0, 2\)"):
        jaxgrad.analysis.layer_gradient_flow([nnx.Linear(3, 2, rngs=nnx.Rngs(0))], x,
                                             jnp.array([0, 2]))
    with pytest.raises(ValueError, match=r"`layers\[1\]` \(Linear, parameter shapes"):
        jaxgrad.systems.layers_as_step([nnx.Linear(3, 3, rngs=nnx.Rngs(0)),
                                        nnx.Linear(3, 4, rngs=nnx.Rngs(0))])
    with pytest.raises(TypeError, match=r"`layers\[1\]` must be an nnx module"):
        jaxgrad.systems.layers_as_step([nnx.Linear(3, 3, rngs=nnx.Rngs(0)), jnp.tanh])
    with pytest.raises(ValueError, match=r"variables other than nnx.Param \(BatchStat"):
        jaxgrad.systems.as_step(nnx.BatchNorm(3, rngs=nnx.Rngs(0)))
