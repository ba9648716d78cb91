"""jaxgrad.systems: the one step protocol, its helpers and the one integrator."""

import math
import pickle
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad
from jaxgrad import systems


def _rk4_reference(F, x, dt):
    """The classical RK4 step as the three former copies wrote it (float64 NumPy)."""
    k1 = F(x)
    k2 = F(x + 0.5 * dt * k1)
    k3 = F(x + 0.5 * dt * k2)
    k4 = F(x + dt * k3)
    return x + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def test_discretize_rk4_and_euler_match_closed_forms(x64):
    # dx/dt = a x: one RK4 step multiplies by 1 + h + h²/2 + h³/6 + h⁴/24 (h = a dt).
    a, dt = -1.3, 0.2
    h = a * dt
    field = jaxgrad.vector_field(lambda x, u, p: p * x)
    x0 = jnp.array([1.0, -2.0], jnp.float64)
    rk4 = jaxgrad.discretize(field, dt)(x0, None, a)
    np.testing.assert_allclose(rk4, x0 * (1 + h + h**2 / 2 + h**3 / 6 + h**4 / 24), rtol=1e-15)
    euler = jaxgrad.discretize(field, dt, method="euler")(x0, None, a)
    np.testing.assert_allclose(euler, x0 * (1 + h), rtol=1e-15)


@pytest.mark.parametrize("seed", range(4))
def test_doya_rate_and_bifurcation_steps_are_the_one_rk4(seed):
    """The three former RK4 copies now all go through systems.discretize: same numbers."""
    rng = np.random.default_rng(seed)
    dt = float(rng.uniform(0.01, 0.3))
    # Doya: doya_integrate against the former inline RK4.
    p = jaxgrad.DoyaParams(jnp.float32(5.0), jnp.float32(rng.uniform(-3, -2)), jnp.float32(0.5))
    x0 = jnp.asarray(rng.uniform(0, 1, 3), jnp.float32)
    u = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    got = jaxgrad.models.doya_integrate(p, x0, u, dt=dt)
    x, want = x0, []
    for t in range(5):
        x = _rk4_reference(lambda y, t=t: jaxgrad.models.doya_vector_field(y, u[t], p), x, dt)
        want.append(x)
    # (under lax.scan XLA may fuse the operations differently: float32 rounding only)
    np.testing.assert_allclose(got, jnp.stack(want), rtol=1e-6, atol=1e-7)
    # Rate network: rate_flow_step against the same reference.
    rp = jaxgrad.init_rate(jax.random.key(seed), 6, g=1.5, num_inputs=2)
    h0 = jnp.asarray(rng.normal(size=6), jnp.float32)
    v = jnp.asarray(rng.normal(size=2), jnp.float32)
    np.testing.assert_array_equal(
        jaxgrad.models.rate_flow_step(h0, v, rp, dt=dt),
        _rk4_reference(lambda y: jaxgrad.models.rate_vector_field(y, v, rp), h0, dt))
    # A step built by the helpers equals the model's own flow step.
    step = jaxgrad.discretize(jaxgrad.vector_field(jaxgrad.models.rate_vector_field), dt)
    np.testing.assert_array_equal(step(h0, v, rp), jaxgrad.models.rate_flow_step(h0, v, rp, dt=dt))


def test_integrator_step_on_pytrees_and_params_none():
    # params=None is a value (passed on), not "no parameters".
    out = jaxgrad.systems.integrator_step(lambda s, u, q: {"a": -s["a"] if q is None else s["a"]},
                                          {"a": jnp.ones(2)}, None, None, dt=0.1, method="euler")
    np.testing.assert_allclose(out["a"], 0.9 * jnp.ones(2), rtol=1e-6)
    out = jaxgrad.systems.integrator_step(lambda s, u: -s, jnp.ones(2), None,
                                          jaxgrad.systems.NO_PARAMS,
                                          dt=0.1, method="euler")
    np.testing.assert_allclose(out, 0.9 * jnp.ones(2), rtol=1e-6)


def test_autonomous_map_with_and_without_params():
    # Linear map x' = a x: every Lyapunov exponent is log|a| (closed form).
    a = 0.7
    with_params = jaxgrad.autonomous(lambda x, p: p * x)
    res = jaxgrad.lyapunov_spectrum(with_params, jnp.ones(2), num_steps=50,
                                    params=jnp.float32(a))
    np.testing.assert_allclose(res.exponents, math.log(a), rtol=1e-5)
    without = jaxgrad.autonomous(lambda x: a * x)
    res = jaxgrad.lyapunov_spectrum(without, jnp.ones(2), num_steps=50)
    np.testing.assert_allclose(res.exponents, math.log(a), rtol=1e-5)
    norms = jaxgrad.jacobian_product_norms(without, jnp.ones(2), num_steps=10)
    np.testing.assert_allclose(norms.log_norms, np.arange(1, 11) * math.log(a), rtol=1e-5)


def test_a_flow_is_refused_where_a_step_is_expected():
    field = jaxgrad.vector_field(jaxgrad.models.rate_vector_field)
    p = jaxgrad.init_rate(jax.random.key(0), 3)
    # (lyapunov_spectrum takes a VectorField: it integrates the flow, tests/test_flows.py)
    with pytest.raises(TypeError, match=r"`step` is a VectorField.*discretize"):
        jaxgrad.jacobian_product_norms(field, jnp.ones(3), num_steps=5, params=p)
    with pytest.raises(TypeError, match="`step` is a VectorField"):
        jaxgrad.analysis.recurrent_gradient_flow(field, jnp.ones(3), jnp.zeros((4, 0)),
                                                 lambda xs: jnp.sum(xs), params=p)
    with pytest.raises(TypeError, match="`field` must be a VectorField"):
        jaxgrad.discretize(jaxgrad.models.rate_vector_field, 0.1)
    with pytest.raises(ValueError, match="`dt`"):
        jaxgrad.discretize(field, -0.1)
    with pytest.raises(ValueError, match="`method`"):
        jaxgrad.discretize(field, 0.1, method="rk45")
    with pytest.raises(TypeError, match="`f` must be callable"):
        jaxgrad.vector_field(3.0)
    with pytest.raises(TypeError, match="`f` must be callable"):
        jaxgrad.autonomous(None)


def test_flow_through_discretize_matches_rate_flow_step_lyapunov():
    p = jaxgrad.init_rate(jax.random.key(1), 8, g=2.0)
    h0 = jnp.ones(8)
    kwargs = dict(num_steps=100, params=p, dt=0.1)
    a = jaxgrad.lyapunov_spectrum(partial(jaxgrad.models.rate_flow_step, dt=0.1), h0, **kwargs)
    step = jaxgrad.discretize(jaxgrad.vector_field(jaxgrad.models.rate_vector_field), 0.1)
    b = jaxgrad.lyapunov_spectrum(step, h0, **kwargs)
    np.testing.assert_array_equal(a.exponents, b.exponents)


def test_equal_helpers_reuse_the_compiled_analyzer():
    traces = []

    def field(x, u, p):
        traces.append(1)
        return -p * x

    p = jnp.float32(0.5)
    counts = []
    for _ in range(3):  # a fresh but equal step each time: compiled once
        step = jaxgrad.discretize(jaxgrad.vector_field(field), 0.1)
        jaxgrad.jacobian_product_norms(step, jnp.ones(2), num_steps=4, params=p)
        counts.append(len(traces))
    assert counts[0] > 0 and counts[0] == counts[1] == counts[2]


def test_no_params_sentinel_and_bind():
    assert repr(jaxgrad.systems.NO_PARAMS) == "NO_PARAMS"
    assert pickle.loads(pickle.dumps(jaxgrad.systems.NO_PARAMS)) is jaxgrad.systems.NO_PARAMS
    assert systems.bind(jnp.add, jaxgrad.systems.NO_PARAMS) is jnp.add
    assert systems.bind(lambda x, u, p: (x, u, p), 3)(1, 2) == (1, 2, 3)
    assert systems.bind(lambda x, p: (x, p), None)(1) == (1, None)


def test_analyzer_wrapper_validates_binds_and_jits_once():
    calls = []

    @systems.analyzer
    def final_state(f, x0, unravel, inputs):
        calls.append(1)
        return unravel(jax.lax.scan(lambda x, u: (f(x, u), None), x0, inputs)[0])

    def step(x, u, p):
        return {"a": p * x["a"]}

    out = final_state(step, {"a": jnp.ones(2)}, None, params=jnp.float32(0.5), num_steps=3)
    np.testing.assert_allclose(out["a"], 0.125)
    final_state(step, {"a": jnp.ones(2)}, None, params=jnp.float32(0.25), num_steps=3)
    assert len(calls) == 1  # new params values: no retrace
    with pytest.raises(ValueError, match="`params.*` must be finite"):
        final_state(step, {"a": jnp.ones(2)}, None, params=jnp.float32(jnp.nan), num_steps=3)
    with pytest.raises(ValueError, match="`num_steps`"):
        final_state(step, {"a": jnp.ones(2)}, None, params=jnp.float32(0.5))


def test_bifurcation_flows_use_the_one_rk4():
    # The orbit tools' flow step (kind="flow") is systems.discretize's RK4.
    from jaxgrad.analysis import _system

    f = lambda x, p: -x + jnp.tanh(p * x)  # noqa: E731
    step = _system.advance(f, "flow", 0.05)
    x = jnp.array([0.3, -0.2])
    np.testing.assert_array_equal(step(x, 1.5),
                                  _rk4_reference(lambda y: f(y, 1.5), x, 0.05))


# ----------------------------------------------------------------- bifurcation tools


def _doya(x, p):
    return jaxgrad.models.doya_vector_field(x, 0.0, p)


def _logistic(x, r):
    return r * x * (1.0 - x)


def test_bifurcation_tools_take_the_new_form_with_the_old_results(x64):
    p = jaxgrad.DoyaParams(5.0, -2.5)
    flow = jaxgrad.vector_field(jaxgrad.autonomous(_doya))
    old = jaxgrad.analysis.fixed_points_1d(_doya, (0.0, 1.0), params=p, kind="flow")
    new = jaxgrad.analysis.fixed_points_1d(flow, (0.0, 1.0), params=p)
    for a, b in zip(old, new, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # A map: a step f(x, u, params), or autonomous(g); no kind= needed.
    step = lambda x, u, r: _logistic(x, r)  # noqa: E731
    for system in (step, jaxgrad.autonomous(_logistic)):
        fp = jaxgrad.analysis.fixed_points_1d(system, (0.01, 1.0), params=2.9)
        ref = jaxgrad.analysis.fixed_points_1d(_logistic, (0.01, 1.0), params=2.9, kind="map")
        np.testing.assert_array_equal(np.asarray(fp.stability), np.asarray(ref.stability))
        np.testing.assert_allclose(np.asarray(fp.x[fp.valid]), [1 - 1 / 2.9], atol=1e-12)
    # Forgetting kind="map" in the old form ran the flow analysis (x = r x (1-x) read as
    # dx/dt, whose zero is x = 1, not the map's 1 - 1/r): the new form cannot.
    wrong = jaxgrad.analysis.fixed_points_1d(_logistic, (0.01, 1.1), params=2.9)
    assert not np.any(np.isclose(np.asarray(wrong.x[wrong.valid]), 1 - 1 / 2.9))
    values = jnp.array([2.8, 3.2])
    x0 = jnp.array([0.2, 0.7])
    a = jaxgrad.analysis.orbit_diagram(_logistic, x0, values, transient=200, keep=4)
    b = jaxgrad.analysis.orbit_diagram(jaxgrad.autonomous(_logistic), x0, values, transient=200,
                                       keep=4)
    np.testing.assert_array_equal(np.asarray(a.states), np.asarray(b.states))
    a = jaxgrad.analysis.final_state_sensitivities(_doya, jnp.array([0.3]), params=p, param="b",
                                                   kind="flow", num_steps=50)
    b = jaxgrad.analysis.final_state_sensitivities(flow, jnp.array([0.3]), params=p, param="b",
                                                   num_steps=50)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_bifurcation_parameter_named_by_a_path(x64):
    nested = {"cell": jaxgrad.DoyaParams(5.0, -3.0), "other": (1.0, 2.0)}
    flow = jaxgrad.vector_field(jaxgrad.autonomous(lambda x, p: _doya(x, p["cell"])))
    flat = jaxgrad.vector_field(jaxgrad.autonomous(_doya))
    values = jnp.linspace(-3.0, -2.0, 5)
    a = jaxgrad.analysis.fixed_points_1d(flow, (0.0, 1.0), params=nested, param=("cell", "b"),
                                         values=values)
    b = jaxgrad.analysis.fixed_points_1d(flat, (0.0, 1.0), params=nested["cell"], param="b",
                                         values=values)
    np.testing.assert_array_equal(np.asarray(a.x), np.asarray(b.x))
    br = jaxgrad.continue_branch(flow, 0.05, params=nested, param=("cell", "b"),
                                 p_range=(-3.0, -2.0), ds=0.02, num_steps=20)
    ok = np.asarray(br.valid)
    x, q = np.asarray(br.x)[ok], np.asarray(br.p)[ok]
    np.testing.assert_allclose(q, np.log(x / (1 - x)) - 5.0 * x, atol=1e-10)
    with pytest.raises(ValueError, match=r"unknown `param` 'c'; `params\['cell'\]` has"):
        jaxgrad.analysis.fixed_points_1d(flow, (0.0, 1.0), params=nested, param=("cell", "c"),
                                    values=values)
    with pytest.raises(TypeError, match=r"`param` must be a name or a tuple"):
        jaxgrad.analysis.fixed_points_1d(flow, (0.0, 1.0), params=nested, param=["cell", "b"],
                                         values=values)
    with pytest.raises(TypeError, match=r"`param` key 0 indexes"):
        jaxgrad.analysis.fixed_points_1d(flow, (0.0, 1.0), params=nested, param=(0,),
                                    values=values)
    with pytest.raises(ValueError, match=r"`param` key 5 is out of range"):
        jaxgrad.analysis.fixed_points_1d(flow, (0.0, 1.0), params=nested, param=("other", 5),
                                    values=values)


def test_bifurcation_kind_that_contradicts_the_form_is_refused():
    flow = jaxgrad.vector_field(jaxgrad.autonomous(_doya))
    p = jaxgrad.DoyaParams(5.0, -2.5)
    with pytest.raises(ValueError, match="`kind`='map' contradicts"):
        jaxgrad.analysis.fixed_points_1d(flow, (0.0, 1.0), params=p, kind="map")
    with pytest.raises(ValueError, match="`kind`='flow' contradicts"):
        jaxgrad.analysis.orbit_diagram(jaxgrad.autonomous(_logistic), jnp.array([0.2]),
                                       jnp.array([2.8]), kind="flow")
    with pytest.raises(ValueError, match="unknown `kind`"):
        jaxgrad.analysis.fixed_points_1d(flow, (0.0, 1.0), params=p, kind="maps")


def test_doya_empty_input_means_no_input_and_bad_input_is_refused():
    """An empty u (the analyzers' input of an autonomous system) is no input; it used to
    broadcast a (1,) state to shape (0,) under NumPy's rules and lose the state silently."""
    p = jaxgrad.DoyaParams(w=5.0, b=-2.5, w_in=1.0)
    x = jnp.array([0.3])
    none = jaxgrad.models.doya_vector_field(x, jnp.zeros((0,)), p)
    zero = jaxgrad.models.doya_vector_field(x, jnp.zeros((1,)), p)
    assert none.shape == (1,)
    np.testing.assert_array_equal(none, zero)
    np.testing.assert_allclose(none, -0.3 + 1 / (1 + np.exp(-(5 * 0.3 - 2.5))), rtol=1e-6)
    step = jaxgrad.doya_step(x, jnp.zeros((0,)), p)
    assert step.shape == (1,)
    with pytest.raises(ValueError, match="`u`"):
        jaxgrad.models.doya_vector_field(x, jnp.zeros((3,)), p)
