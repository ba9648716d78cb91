"""N-D and pytree states in the bifurcation tools (issue #12, "one contract").

Each tool is run on one system written twice: on a 1-D state (as before) and on an N-D
array or a pytree state (a tuple, a dict, an LSTM's ``(h, c)``). The tools flatten the
state with ``jax.flatten_util.ravel_pytree`` (leaf order), so both runs do the same
arithmetic: the results agree to rounding, and the states in them come back in the
caller's structure (leaves with the result's leading axes) while eigenvalues, null
vectors and multipliers stay flat. The parameter varied is named by a path into
``params`` in the pytree runs.
"""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad
from jaxgrad import DoyaParams

TIGHT = dict(rtol=1e-10, atol=1e-12)


def close(a, b, **kw):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), **(kw or TIGHT))


# --------------------------------------------------------------------------- systems
# The Doya neuron with a slave unit: x' = -x + σ(w x + b), y' = x - y. Its folds are the
# neuron's: b = ln(x/(1-x)) - w x at x(1-x) = 1/w (-2.344 and -2.656 for w = 5).


def doya_pair_vec(z, u, p):
    x, y = z[0], z[1]
    return jnp.stack([jaxgrad.models.doya_vector_field(x, 0.0, p), x - y])


def doya_pair_tree(state, u, p):  # state = (x, y) scalars, params = {"cell": DoyaParams}
    x, y = state
    return (jaxgrad.models.doya_vector_field(x, 0.0, p["cell"]), x - y)


def fhn_vec(z, u, p):  # FitzHugh-Nagumo, Hopf points in I
    return jnp.stack([z[0] - z[0] ** 3 / 3 - z[1] + p["I"], 0.08 * (z[0] + 0.7 - p["b"] * z[1])])


def fhn_dict(z, u, p):  # z = {"v": (), "w": ()}, p = {"drive": {"I": ..}, "b": ..}
    v, w = z["v"], z["w"]
    return {"v": v - v ** 3 / 3 - w + p["drive"]["I"], "w": 0.08 * (v + 0.7 - p["b"] * w)}


def rows(tree, lead=1):
    """``(*lead_shape, n)`` from a pytree of leaves ``(*lead_shape, *leaf_shape)``."""
    leaves = jax.tree_util.tree_leaves(tree)
    shape = jnp.shape(leaves[0])[:lead]
    return jnp.concatenate([jnp.reshape(leaf, (*shape, -1)) for leaf in leaves], axis=-1)


# --------------------------------------------------------------------------- continuation


@pytest.mark.slow
def test_continue_branch_and_fold_curve_on_a_tuple_state(x64):
    vec = jaxgrad.vector_field(doya_pair_vec)
    tree = jaxgrad.vector_field(doya_pair_tree)
    p = DoyaParams(5.0, -3.0)
    kw = dict(p_range=(-3.0, -2.0), num_steps=100)
    a = jaxgrad.continue_branch(vec, jnp.array([0.05, 0.05]), params=p, param="b", **kw)
    b = jaxgrad.continue_branch(tree, (jnp.asarray(0.05), jnp.asarray(0.05)),
                                params={"cell": p}, param=("cell", "b"), **kw)
    assert isinstance(b.x, tuple) and b.x[0].shape == a.p.shape
    close(rows(b.x), a.x)
    close(b.p, a.p)
    close(b.eigenvalues, a.eigenvalues)
    np.testing.assert_array_equal(b.valid, a.valid)
    assert [bp.kind for bp in a.bifurcations] == ["fold", "fold"]
    assert [bp.kind for bp in b.bifurcations] == ["fold", "fold"]
    for pa, pb in zip(a.bifurcations, b.bifurcations, strict=True):
        close(pb.p, pa.p)
        close(jnp.stack(pb.x), pa.x)
        close(pb.eigenvalues, pa.eigenvalues)
        close(pb.null_vector, pa.null_vector)
    np.testing.assert_allclose(sorted(float(bp.p) for bp in b.bifurcations),
                               [-2.6557, -2.3443], atol=1e-4)

    kw = dict(p2_range=(3.0, 8.0), direction=-1, num_steps=60)
    fa = jaxgrad.analysis.fold_curve(vec, jnp.array([0.28, 0.28]), params=DoyaParams(5.0, -2.34),
                                     param="b", param2="w", **kw)
    fb = jaxgrad.analysis.fold_curve(tree, (jnp.asarray(0.28), jnp.asarray(0.28)),
                                     params={"cell": DoyaParams(5.0, -2.34)}, param=("cell", "b"),
                                     param2=("cell", "w"), **kw)
    close(rows(fb.x), fa.x)
    close(fb.p2, fa.p2)
    assert len(fa.cusps) == len(fb.cusps) == 1
    close(jnp.stack(fb.cusps[0].x), fa.cusps[0].x)
    np.testing.assert_allclose([float(fb.cusps[0].p2), float(fb.cusps[0].p)], [4.0, -2.0],
                               atol=1e-6)


@pytest.mark.slow
def test_hopf_points_and_curve_on_a_dict_state(x64):
    x0 = jnp.array([-1.199, -0.624])  # the equilibrium at I = 0
    kw = dict(p_range=(0.0, 0.5), ds=0.05, num_steps=40)
    a = jaxgrad.continue_branch(jaxgrad.vector_field(fhn_vec), x0, params={"I": 0.0, "b": 0.8},
                                param="I", **kw)
    b = jaxgrad.continue_branch(jaxgrad.vector_field(fhn_dict), {"v": x0[0], "w": x0[1]},
                                params={"drive": {"I": 0.0}, "b": 0.8}, param=("drive", "I"),
                                **kw)
    assert set(b.x) == {"v", "w"} and b.x["v"].shape == a.p.shape
    close(jnp.stack([b.x["v"], b.x["w"]], axis=1), a.x)
    assert [bp.kind for bp in a.bifurcations] == [bp.kind for bp in b.bifurcations] == ["hopf"]
    pa, pb = a.bifurcations[0], b.bifurcations[0]
    assert isinstance(pb.x, dict) and bool(pb.converged)
    for name in ("p", "frequency", "first_lyapunov_coefficient", "eigenvalues", "null_vector"):
        close(getattr(pb, name), getattr(pa, name))
    close(pb.x["v"], -np.sqrt(1 - 0.08 * 0.8), rtol=1e-8)  # v = -√(1 - εb)

    kw = dict(p2_range=(0.8, 4.0), ds=0.05, num_steps=60)
    ha = jaxgrad.analysis.hopf_curve(jaxgrad.vector_field(fhn_vec), jnp.array([-1.0, -0.4]),
                                     params={"I": 0.33, "b": 0.8}, param="I", param2="b", **kw)
    hb = jaxgrad.analysis.hopf_curve(jaxgrad.vector_field(fhn_dict), {"v": -1.0, "w": -0.4},
                                     params={"drive": {"I": 0.33}, "b": 0.8}, param=("drive", "I"),
                                     param2="b", **kw)
    np.testing.assert_array_equal(hb.valid, ha.valid)
    for name in ("p", "p2", "kappa", "first_lyapunov_coefficient"):
        close(getattr(hb, name), getattr(ha, name))
    close(jnp.stack([hb.x["v"], hb.x["w"]], axis=1), ha.x)
    assert len(ha.bogdanov_takens) == len(hb.bogdanov_takens)


@pytest.mark.slow
def test_branch_point_and_switch_branch_on_an_nd_state(x64):
    """The logistic map with a decaying second coordinate, as (2,) and as (2, 1)."""

    def vec(z, u, p):
        return jnp.stack([p["r"] * z[0] * (1 - z[0]), 0.5 * z[1]])

    def mat(z, u, p):
        return vec(z[:, 0], u, p)[:, None]

    kw = dict(params={"r": 0.5}, param="r", p_range=(0.5, 1.5), ds=0.05, num_steps=60)
    a = jaxgrad.continue_branch(vec, jnp.zeros(2), **kw)
    b = jaxgrad.continue_branch(mat, jnp.zeros((2, 1)), **kw)
    close(b.x[..., 0], a.x)
    assert [bp.kind for bp in b.bifurcations] == ["branch_point"]
    bpa, bpb = a.bifurcations[0], b.bifurcations[0]
    assert bpb.x.shape == (2, 1) and bpb.branch_type == "transcritical"
    close(bpb.branch_tangents, bpa.branch_tangents)
    sa = jaxgrad.analysis.switch_branch(vec, bpa, **kw)
    sb = jaxgrad.analysis.switch_branch(mat, bpb, **kw)
    close(sb.x[..., 0], sa.x)
    ok = np.asarray(sb.valid)
    close(sb.x[ok, 0, 0], 1 - 1 / sb.p[ok], atol=1e-8)


# --------------------------------------------------------------------------- fixed points


def test_fixed_points_of_tuple_and_matrix_states(x64):
    def duffing(z, u, p):
        return jnp.stack([z[1], z[0] - z[0] ** 3 - p * z[1]])

    def duffing_pair(z, u, p):
        a, b = z
        return b, a - a ** 3 - p * b

    field = jaxgrad.vector_field
    starts = jnp.stack([jnp.linspace(-2, 2, 9), jnp.zeros(9)], axis=1)
    a = jaxgrad.fixed_points(field(duffing), starts, params=0.5)
    b = jaxgrad.fixed_points(field(duffing_pair), (starts[:, 0], starts[:, 1]), params=0.5)
    c = jaxgrad.fixed_points(field(lambda z, u, p: duffing(z.T[0], u, p)[None].T),
                             starts[:, :, None], params=0.5)
    close(a.x, [[-1, 0], [0, 0], [1, 0]], atol=1e-12)
    close(jnp.stack(b.x, axis=1), a.x)
    assert c.x.shape == (3, 2, 1)
    close(c.x[..., 0], a.x)
    for other in (b, c):
        close(other.eigenvalues, a.eigenvalues)
        np.testing.assert_array_equal(other.stability, a.stability)
        np.testing.assert_array_equal(other.num_starts, a.num_starts)
    # the flattened step is equal for equal steps and state layouts: no recompilation
    newton = importlib.import_module("jaxgrad.analysis.fixed_point_search")._newton_many
    compiled = newton._cache_size()
    again = jaxgrad.fixed_points(field(duffing_pair), (starts[:, 0] + 0.1, starts[:, 1]),
                                 params=0.4)
    assert newton._cache_size() == compiled and len(again.stability) == 3


def test_lstm_fixed_points_of_the_pair_h_c(x64):
    """``jaxgrad.lstm_step`` with its ``LSTMState(h, c)`` as it is, against the same cell
    on the flat vector ``[h, c]``; the fixed point solves ``(h, c) = step(h, c)``."""
    n = 3
    p = jaxgrad.init_lstm(jax.random.key(0), n, 0, recurrent_scale=0.8)

    def flat_cell(z, u, p):
        out = jaxgrad.lstm_step(jaxgrad.models.LSTMState(z[:n], z[n:]), u, p)
        return jnp.concatenate([out.h, out.c])

    starts = jax.random.normal(jax.random.key(1), (4, 2 * n)) * 0.5
    a = jaxgrad.fixed_points(flat_cell, starts, params=p)
    b = jaxgrad.fixed_points(jaxgrad.lstm_step,
                             jaxgrad.models.LSTMState(starts[:, :n], starts[:, n:]), params=p)
    assert isinstance(b.x, jaxgrad.models.LSTMState) and b.x.h.shape == (a.x.shape[0], n)
    assert a.x.shape[0] >= 1 and b.num_failed == a.num_failed
    close(jnp.concatenate([b.x.h, b.x.c], axis=1), a.x)
    close(b.eigenvalues, a.eigenvalues)
    h, c = b.x.h[0], b.x.c[0]
    out = jaxgrad.lstm_step(jaxgrad.models.LSTMState(h, c), jnp.zeros(0), p)
    close(out.h, h, atol=1e-10)
    close(out.c, c, atol=1e-10)


# --------------------------------------------------------------------------- long-run tools


def henon_vec(z, u, p):
    return jnp.stack([1 - p["a"] * z[0] ** 2 + z[1], 0.3 * z[0]])


def henon_tree(z, u, p):  # z = {"x": (), "y": ()}
    return {"x": 1 - p["map"]["a"] * z["x"] ** 2 + z["y"], "y": 0.3 * z["x"]}


def test_orbit_tools_and_sensitivities_on_a_dict_state(x64):
    values = jnp.array([0.2, 0.6, 1.0])
    x0 = jnp.array([[0.1, 0.1], [0.2, 0.0]])
    tx0 = {"x": x0[:, 0], "y": x0[:, 1]}
    tp = {"map": {"a": 0.2}}
    kw = dict(transient=200, keep=8)
    a = jaxgrad.analysis.orbit_diagram(henon_vec, x0, values, params={"a": 0.2}, param="a", **kw)
    b = jaxgrad.analysis.orbit_diagram(henon_tree, tx0, values, params=tp, param=("map", "a"), **kw)
    assert b.states["x"].shape == (3, 2, 8)
    close(jnp.stack([b.states["x"], b.states["y"]], axis=-1), a.states)
    np.testing.assert_array_equal(b.finite, a.finite)
    assert len(np.unique(np.round(np.asarray(a.states[1, 0, :, 0]), 6))) == 2  # a 2-cycle

    kw = dict(transient=50, keep=2)
    ha = jaxgrad.analysis.hysteresis_sweep(henon_vec, x0[0], values, params={"a": 0.2}, param="a",
                                           **kw)
    hb = jaxgrad.analysis.hysteresis_sweep(henon_tree, {"x": x0[0, 0], "y": x0[0, 1]}, values,
                                           params=tp, param=("map", "a"), **kw)
    close(jnp.stack([hb.up["x"], hb.up["y"]], axis=-1), ha.up)
    close(jnp.stack([hb.down["x"], hb.down["y"]], axis=-1), ha.down)

    kw = dict(num_steps=300, kind=None)
    ba = jaxgrad.analysis.basins(henon_vec, x0, values[:1], params={"a": 0.2}, param="a", **kw)
    bb = jaxgrad.analysis.basins(henon_tree, tx0, values[:1], params=tp, param=("map", "a"), **kw)
    np.testing.assert_array_equal(bb.labels, ba.labels)
    close(jnp.stack([bb.attractors["x"], bb.attractors["y"]], axis=-1), ba.attractors)
    close(jnp.stack([bb.final["x"], bb.final["y"]], axis=-1), ba.final)

    sa = jaxgrad.analysis.final_state_sensitivities(henon_vec, x0, values[:1], params={"a": 0.2},
                                                    param="a", num_steps=30)
    sb = jaxgrad.analysis.final_state_sensitivities(henon_tree, tx0, values[:1], params=tp,
                                                    param=("map", "a"), num_steps=30)
    close(jnp.stack([sb.final["x"], sb.final["y"]], axis=-1), sa.final)
    close(jnp.stack([sb.d_final_d_param["x"], sb.d_final_d_param["y"]], axis=-1),
          sa.d_final_d_param)
    # the Jacobian as jax.jacfwd gives it for a dict state: J[out][in]
    J = sb.d_final_d_x0
    assert J["x"]["y"].shape == (1, 2)
    close(J["x"]["y"], sa.d_final_d_x0[..., 0, 1])
    close(J["y"]["x"], sa.d_final_d_x0[..., 1, 0])


def test_periodic_orbits_of_a_dict_state(x64):
    step_vec = jaxgrad.autonomous(lambda z, p: henon_vec(z, None, p))
    step_tree = jaxgrad.autonomous(lambda z, p: henon_tree(z, None, p))
    starts = jax.random.uniform(jax.random.key(0), (16, 2), minval=-1.0, maxval=1.0)
    a = jaxgrad.periodic_orbits(step_vec, starts=starts, period=2, params={"a": 0.6})
    b = jaxgrad.periodic_orbits(step_tree, starts={"x": starts[:, 0], "y": starts[:, 1]},
                                period=2, params={"map": {"a": 0.6}})
    close(jnp.stack([b.points["x"], b.points["y"]], axis=-1), a.points)
    close(b.multipliers, a.multipliers)


# --------------------------------------------------------------------------- limit cycles


def _normal_form(x, u, mu):  # r' = μ r - r³, θ' = 1: the circle r = √μ, period 2π
    r2 = x @ x
    return jnp.stack([mu * x[0] - x[1] - x[0] * r2, x[0] + mu * x[1] - x[1] * r2])


def _normal_form_dict(z, u, mu):
    out = _normal_form(jnp.stack([z["x"], z["y"]]), u, mu)
    return {"x": out[0], "y": out[1]}


def test_limit_cycle_and_poincare_section_on_a_dict_state(x64):
    mu = jnp.asarray(0.25)
    a = jaxgrad.analysis.limit_cycle(jaxgrad.vector_field(_normal_form), jnp.array([0.8, 0.0]), 6.0,
                                     params=mu)
    b = jaxgrad.analysis.limit_cycle(jaxgrad.vector_field(_normal_form_dict), {"x": 0.8, "y": 0.0},
                                     6.0, params=mu)
    assert bool(a.converged) and bool(b.converged)
    close(b.period, 2 * np.pi, rtol=1e-7)
    close(b.period, a.period)
    close(b.floquet_multipliers, a.floquet_multipliers, rtol=1e-8, atol=1e-10)
    close(jnp.stack([b.point["x"], b.point["y"]]), a.point)

    sa = jaxgrad.analysis.poincare_section(jaxgrad.vector_field(_normal_form),
                                           jnp.array([0.5, 0.0]),
                                           14.0, normal=jnp.array([0.0, 1.0]), params=mu,
                                           max_crossings=3)
    sb = jaxgrad.analysis.poincare_section(jaxgrad.vector_field(_normal_form_dict),
                                           {"x": 0.5, "y": 0.0}, 14.0, normal={"x": 0.0, "y": 1.0},
                                           params=mu, max_crossings=3)
    assert int(sb.count) == int(sa.count) == 2
    close(sb.times, sa.times)
    close(jnp.stack([sb.points["x"], sb.points["y"]], axis=-1), sa.points)


@pytest.mark.slow
def test_cycle_branch_from_a_hopf_point_of_a_dict_state(x64):
    def field(z, u, p):
        return _normal_form_dict(z, u, p["mu"])

    hp = jaxgrad.locate_bifurcation(jaxgrad.vector_field(field), {"x": 0.01, "y": 0.0},
                                    params={"mu": -0.1}, param="mu", bifurcation="hopf")
    assert isinstance(hp.x, dict) and bool(hp.converged)
    br = jaxgrad.analysis.cycle_branch(jaxgrad.vector_field(field), hp, params={"mu": 0.0},
                                       param="mu", p_range=(-1.0, 0.3), num_steps=3)
    assert br.points["x"].shape == (4,)
    radius = np.hypot(np.asarray(br.points["x"]), np.asarray(br.points["y"]))
    close(radius, np.sqrt(np.asarray(br.p)), atol=1e-6)


# --------------------------------------------------------------------------- bad input


def test_a_state_unlike_the_output_is_refused_by_name():
    p = jaxgrad.init_lstm(jax.random.key(0), 2, 0)

    def h_only(state, u, p):
        return jaxgrad.lstm_step(state, u, p).h

    starts = jaxgrad.models.LSTMState(jnp.zeros((3, 2)), jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"must return a state shaped like x.*`starts`"):
        jaxgrad.fixed_points(h_only, starts, params=p)
    with pytest.raises(ValueError, match=r"must return a state shaped like x.*`x0`"):
        first = jaxgrad.vector_field(lambda z, u, p: doya_pair_tree(z, u, p)[0])
        jaxgrad.continue_branch(first, (jnp.asarray(0.1), jnp.asarray(0.1)),
                                params={"cell": DoyaParams(5.0, -3.0)}, param=("cell", "b"),
                                p_range=(-3.0, -2.0))
    with pytest.raises(ValueError, match=r"`field` must return dx/dt shaped like"):
        jaxgrad.analysis.limit_cycle(jaxgrad.vector_field(lambda z, u: z["x"]), {"x": jnp.ones(2)},
                                     6.0)
    with pytest.raises(ValueError, match="`x_guess`"):
        jaxgrad.locate_bifurcation(jaxgrad.vector_field(fhn_dict), {"v": 0.0},
                                   params={"drive": {"I": 0.0}, "b": 0.8},
                                   param=("drive", "I"))


def test_bad_pytree_states_are_refused_by_name():
    f = jaxgrad.autonomous(lambda z, p: z)
    with pytest.raises(ValueError, match="`x0` leaves disagree on the number of initial"):
        jaxgrad.analysis.orbit_diagram(f, (jnp.zeros(2), jnp.zeros(3)), jnp.ones(2), params=1.0)
    with pytest.raises(TypeError, match="`starts` leaves must share one floating dtype"):
        jaxgrad.fixed_points(f, (jnp.zeros(2, jnp.float16), jnp.zeros(2, jnp.float32)),
                             params=1.0)
    with pytest.raises(ValueError, match="`starts` must be finite"):
        jaxgrad.fixed_points(f, {"a": jnp.array([0.0, jnp.nan])}, params=1.0)
    with pytest.raises(ValueError, match="`x0` must hold at least one array"):
        jaxgrad.analysis.hysteresis_sweep(f, {}, jnp.ones(2), params=1.0)
    with pytest.raises(ValueError, match=r"`x0` must have shape \(M,\) or \(M, \*s\)"):
        jaxgrad.analysis.basins(f, (jnp.asarray(0.0), jnp.zeros(2)), jnp.ones(2), params=1.0)
    with pytest.raises(ValueError, match="`normal` must be shaped like `x0`"):
        jaxgrad.analysis.poincare_section(jaxgrad.vector_field(_normal_form_dict),
                                          {"x": 0.5, "y": 0.0},
                                          1.0, normal={"x": 1.0}, params=jnp.asarray(0.1))
