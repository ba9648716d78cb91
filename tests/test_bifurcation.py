"""Bifurcation analysis: fixed points, continuation, orbits, basins, sensitivities.

References: Doya's neuron dx/dt = -x + σ(w x + b) (Wikipedia, "Vanishing gradient problem",
§ Dynamical systems model) with fixed points on
b = ln(x/(1-x)) - w x, folds where w x(1-x) = 1 and the cusp at (w, b) = (4, -2); the
logistic map (flip at r = 3, 2-cycle in closed form); the damped Duffing oscillator and
the Hénon map (fixed points in closed form).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad
from jaxgrad import DoyaParams

W = 5.0


def doya_flow(x, p):
    return jaxgrad.models.doya_vector_field(x, 0.0, p)


def logistic(x, r):
    return r * x * (1.0 - x)


def fold_map(x, a):
    """x ↦ x + a - x²: fixed points ±√a, multiplier 1 - 2x, a fold (μ = +1) at a = 0."""
    return x + a - x * x


def duffing(z, p):
    """Damped Duffing x'' = x - x³ - δ x'; fixed points (0, 0) saddle and (±1, 0)."""
    return jnp.stack([z[1], z[0] - z[0] ** 3 - p["delta"] * z[1]])


def henon(z, p):
    return jnp.stack([1.0 - p["a"] * z[0] ** 2 + z[1], p["b"] * z[0]])


def _sigma(z):
    return 1.0 / (1.0 + np.exp(-z))


def doya_reference_roots(b, w=W):
    """All fixed points of Doya's flow in float64 by bisection on a fine bracket grid."""
    h = lambda x: -x + _sigma(w * x + b)  # noqa: E731
    grid = np.linspace(1e-9, 1 - 1e-9, 20001)
    vals = h(grid)
    roots = []
    for i in np.flatnonzero(np.sign(vals[:-1]) * np.sign(vals[1:]) <= 0):
        lo, hi = grid[i], grid[i + 1]
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if np.sign(h(mid)) == np.sign(h(lo)):
                lo = mid
            else:
                hi = mid
        roots.append(0.5 * (lo + hi))
    return np.array(sorted(set(np.round(roots, 14))))


def doya_folds(w=W):
    """Closed-form folds: x = (1 ± √(1 - 4/w))/2, b = ln(x/(1-x)) - w x (low b first)."""
    x = (1 + np.array([1.0, -1.0]) * math.sqrt(1 - 4 / w)) / 2
    return x, np.log(x / (1 - x)) - w * x


# --------------------------------------------------------------------------- fixed points


def test_doya_fixed_points_at_b_minus_2_5(x64):
    fp = jaxgrad.analysis.fixed_points_1d(doya_flow, (0.0, 1.0), params=DoyaParams(W, -2.5))
    ref = doya_reference_roots(-2.5)
    assert ref.shape == (3,)
    np.testing.assert_allclose(np.asarray(fp.x[fp.valid]), ref, atol=1e-12)
    np.testing.assert_allclose(ref, [0.145, 0.5, 0.855], atol=1e-3)  # Wikipedia, note 4
    labels = [jaxgrad.analysis.STABILITY_LABELS[int(c)] for c in fp.stability[fp.valid]]
    assert labels == ["stable", "unstable", "stable"]
    # λ = -1 + w σ'(w x + b) = -1 + w x (1 - x) at a fixed point.
    np.testing.assert_allclose(np.asarray(fp.derivative[fp.valid]), -1 + W * ref * (1 - ref),
                               atol=1e-12)
    assert int(fp.count) == 3 and not bool(fp.truncated)


def test_doya_fixed_points_over_grid_match_closed_form(x64):
    values = jnp.linspace(-3.0, -2.0, 41)
    fp = jaxgrad.analysis.fixed_points_1d(doya_flow, (0.0, 1.0), params=DoyaParams(W, -3.0),
                                          param="b", values=values)
    (_, _), (b_lo, b_hi) = doya_folds()[0], doya_folds()[1]
    b_lo, b_hi = sorted(doya_folds()[1])
    count = np.asarray(fp.count)
    inside = (np.asarray(values) > b_lo) & (np.asarray(values) < b_hi)
    np.testing.assert_array_equal(count, np.where(inside, 3, 1))
    x = np.asarray(fp.x)
    ok = np.asarray(fp.valid)
    b_of_x = np.log(x[ok] / (1 - x[ok])) - W * x[ok]
    np.testing.assert_allclose(b_of_x, np.broadcast_to(np.asarray(values)[:, None], x.shape)[ok],
                               atol=1e-10)
    # vmap over the grid agrees with one call per value
    for i in (0, 20, 40):
        one = jaxgrad.analysis.fixed_points_1d(doya_flow, (0.0, 1.0),
                                               params=DoyaParams(W, values[i]))
        np.testing.assert_allclose(np.asarray(one.x), x[i], atol=1e-13)


def test_fixed_points_1d_jit_cache_reused():
    from jaxgrad.analysis.fixed_point_search import _fixed_points_1d

    values = jnp.linspace(-3.0, -2.0, 5)
    jaxgrad.analysis.fixed_points_1d(doya_flow, (0.0, 1.0), params=DoyaParams(W, -3.0), param="b",
                                     values=values, num_points=101)
    size = _fixed_points_1d._cache_size()
    jaxgrad.analysis.fixed_points_1d(doya_flow, (0.0, 1.0), params=DoyaParams(4.5, 0.0), param="b",
                                     values=values - 0.1, num_points=101)
    assert _fixed_points_1d._cache_size() == size


def test_logistic_map_flip_classification(x64):
    for r, stable in ((2.9, 0), (3.1, 1)):
        fp = jaxgrad.analysis.fixed_points_1d(logistic, (0.01, 1.0), params=r, kind="map")
        x = np.asarray(fp.x[fp.valid])
        np.testing.assert_allclose(x, [1 - 1 / r], atol=1e-12)
        np.testing.assert_allclose(np.asarray(fp.derivative[fp.valid]), [2 - r], atol=1e-12)
        assert int(fp.stability[fp.valid][0]) == stable
        labels = jaxgrad.analysis.LOSS_OF_STABILITY_LABELS
        assert labels[int(fp.loss_of_stability[fp.valid][0])] == "flip"


def test_map_fold_classified_and_located(x64):
    fp = jaxgrad.analysis.fixed_points_1d(fold_map, (-2.0, 2.0), params=0.25, kind="map")
    np.testing.assert_allclose(np.asarray(fp.x[fp.valid]), [-0.5, 0.5], atol=1e-12)
    # μ = 1 - 2x: 2 (unstable) at -1/2, 0 (stable) at 1/2; both critical through μ = +1.
    assert [int(c) for c in fp.stability[fp.valid]] == [1, 0]
    assert [int(c) for c in fp.loss_of_stability[fp.valid]] == [0, 0]
    bp = jaxgrad.locate_bifurcation(fold_map, 0.3, params=0.1, param=None, kind="map")
    assert bp.kind == "fold" and bool(bp.converged)
    np.testing.assert_allclose([float(bp.x), float(bp.p)], [0.0, 0.0], atol=1e-10)
    np.testing.assert_allclose(np.asarray(bp.eigenvalues), [1.0], atol=1e-10)


def test_nd_fixed_points_duffing(x64):
    delta = 0.5
    starts = jnp.stack(jnp.meshgrid(jnp.linspace(-2, 2, 7), jnp.linspace(-1, 1, 3)),
                       axis=-1).reshape(-1, 2)
    fp = jaxgrad.fixed_points(duffing, starts, params={"delta": delta})
    np.testing.assert_allclose(np.asarray(fp.x), [[-1, 0], [0, 0], [1, 0]], atol=1e-12)
    assert [jaxgrad.analysis.STABILITY_LABELS[int(c)] for c in fp.stability] == ["stable", "saddle",
                                                                         "stable"]
    # Jacobian [[0, 1], [1 - 3x², -δ]]: at 0, λ = (-δ ± √(δ² + 4))/2; at ±1 a complex pair.
    lam0 = np.sort(np.real(np.asarray(fp.eigenvalues[1])))
    ref = (-delta + np.array([-1, 1]) * np.sqrt(delta**2 + 4)) / 2
    np.testing.assert_allclose(lam0, np.sort(ref), atol=1e-12)
    np.testing.assert_allclose(np.real(np.asarray(fp.eigenvalues[0])), [-delta / 2] * 2,
                               atol=1e-12)
    assert jaxgrad.analysis.LOSS_OF_STABILITY_LABELS[int(fp.loss_of_stability[0])] == "hopf"
    assert int(np.sum(fp.num_starts)) + fp.num_failed == starts.shape[0]


def test_nd_fixed_points_henon_map(x64):
    a, b = 1.4, 0.3
    starts = jnp.stack([jnp.linspace(-1.5, 1.5, 11), jnp.zeros(11)], axis=1)
    fp = jaxgrad.fixed_points(henon, starts, params={"a": a, "b": b}, kind="map")
    xs = (-(1 - b) + np.array([-1, 1]) * np.sqrt((1 - b) ** 2 + 4 * a)) / (2 * a)
    np.testing.assert_allclose(np.asarray(fp.x), np.stack([xs, b * xs], axis=1), atol=1e-12)
    # det ∂f/∂x = -b, so the multipliers multiply to -b
    np.testing.assert_allclose(np.real(np.prod(np.asarray(fp.eigenvalues), axis=1)), [-b, -b],
                               atol=1e-12)
    assert all(jaxgrad.analysis.STABILITY_LABELS[int(c)] == "saddle" for c in fp.stability)


# --------------------------------------------------------------------------- continuation


@pytest.mark.slow
def test_continuation_through_both_doya_folds(x64):
    br = jaxgrad.continue_branch(doya_flow, 0.05, params=DoyaParams(W, -3.0), param="b",
                                 p_range=(-3.0, -2.0), ds=0.01, ds_max=0.02)
    ok = np.asarray(br.valid)
    x, p = np.asarray(br.x)[ok], np.asarray(br.p)[ok]
    assert x[0] < 0.1 and x[-1] > 0.9  # passed from the lower to the upper branch
    np.testing.assert_allclose(p, np.log(x / (1 - x)) - W * x, atol=1e-10)
    stable = np.asarray(br.stability)[ok] == 0
    np.testing.assert_array_equal(stable, W * x * (1 - x) < 1)
    x_fold, b_fold = doya_folds()
    folds = sorted(br.bifurcations, key=lambda bp: float(bp.p))
    assert [bp.kind for bp in folds] == ["fold", "fold"]
    for bp, xf, bf in zip(folds, x_fold, b_fold, strict=True):
        assert bool(bp.converged)
        np.testing.assert_allclose([float(bp.x), float(bp.p)], [xf, bf], atol=1e-10)
        np.testing.assert_allclose(np.real(np.asarray(bp.eigenvalues)), [0.0], atol=1e-10)
        # The Hopf point's fields are NaN for a fold.
        assert np.isnan(float(bp.frequency)) and np.isnan(float(bp.first_lyapunov_coefficient))


@pytest.mark.slow
def test_logistic_continuation_detects_flip(x64):
    br = jaxgrad.continue_branch(logistic, 0.6, params=2.5, param=None, p_range=(2.5, 3.5),
                                 kind="map", ds=0.05, num_steps=60)
    kinds = [bp.kind for bp in br.bifurcations]
    assert kinds == ["flip"]
    bp = br.bifurcations[0]
    np.testing.assert_allclose([float(bp.x), float(bp.p)], [2 / 3, 3.0], atol=1e-10)
    np.testing.assert_allclose(np.real(np.asarray(bp.eigenvalues)), [-1.0], atol=1e-10)


@pytest.mark.slow
def test_fold_curve_and_cusp(x64):
    fc = jaxgrad.analysis.fold_curve(doya_flow, 0.28, params=DoyaParams(W, -2.34), param="b",
                                     param2="w", p2_range=(3.0, 8.0), direction=-1, ds=0.05,
                                     num_steps=120)
    ok = np.asarray(fc.valid)
    x, b, w = np.asarray(fc.x)[ok], np.asarray(fc.p)[ok], np.asarray(fc.p2)[ok]
    assert x.min() < 0.3 and x.max() > 0.8  # from one fold, past the cusp, beyond the other
    np.testing.assert_allclose(w, 1 / (x * (1 - x)), atol=1e-9)
    np.testing.assert_allclose(b, np.log(x / (1 - x)) - 1 / (1 - x), atol=1e-9)
    assert len(fc.cusps) == 1
    cusp = fc.cusps[0]
    assert bool(cusp.converged)
    np.testing.assert_allclose([float(cusp.x), float(cusp.p), float(cusp.p2)], [0.5, -2.0, 4.0],
                               atol=1e-6)


# --------------------------------------------------------------------------- orbits


def test_logistic_orbit_diagram_cycles_and_vmap(x64):
    values = jnp.array([2.8, 3.2])
    x0 = jnp.array([0.2, 0.7])
    od = jaxgrad.analysis.orbit_diagram(logistic, x0, values, transient=2000, keep=4)
    assert od.states.shape == (2, 2, 4)
    np.testing.assert_allclose(np.asarray(od.states[0]), 1 - 1 / 2.8, atol=1e-12)
    r = 3.2
    cycle = (r + 1 + np.array([-1, 1]) * np.sqrt((r - 3) * (r + 1))) / (2 * r)
    for m in range(2):
        np.testing.assert_allclose(np.sort(np.asarray(od.states[1, m, :2])), cycle, atol=1e-12)
    single = jaxgrad.analysis.orbit_diagram(logistic, x0[1:], values[1:], transient=2000, keep=4)
    np.testing.assert_array_equal(np.asarray(single.states[0, 0]), np.asarray(od.states[1, 1]))
    assert bool(jnp.all(od.finite))


def test_doya_hysteresis_sweep_jumps_at_folds():
    values = jnp.linspace(-3.0, -2.0, 51)
    hs = jaxgrad.analysis.hysteresis_sweep(doya_flow, 0.0, values, params=DoyaParams(W, -3.0),
                                           param="b", kind="flow", dt=0.2, transient=1500, keep=2)
    v = np.asarray(values)
    up, down = np.asarray(hs.up[:, -1]) > 0.5, np.asarray(hs.down[:, -1]) > 0.5
    b_lo, b_hi = sorted(doya_folds()[1])
    i_up = int(np.argmax(up))  # first value where the up sweep is on the upper branch
    assert not up[:i_up].any() and up[i_up:].all()
    assert v[i_up - 1] < b_hi <= v[i_up]
    i_dn = int(np.argmax(down))  # first value (from below) where the down sweep is high
    assert not down[:i_dn].any() and down[i_dn:].all()
    assert v[i_dn - 1] < b_lo <= v[i_dn]
    bistable = (v > b_lo) & (v < b_hi)
    assert (up != down)[bistable].all() and (up == down)[~bistable].all()


def test_doya_basins(x64):
    x0 = jnp.linspace(0.0025, 0.9975, 200)  # avoids x(0) = 0.5, the unstable point itself
    bs = jaxgrad.analysis.basins(doya_flow, x0, jnp.array([-2.5, -2.9]), params=DoyaParams(W, -2.5),
                                 param="b", dt=0.2, num_steps=1000)
    ref = doya_reference_roots(-2.5)
    np.testing.assert_array_equal(np.asarray(bs.num_attractors), [2, 1])
    np.testing.assert_allclose(np.asarray(bs.attractors[0, :2]), ref[[0, 2]], atol=1e-9)
    np.testing.assert_array_equal(np.asarray(bs.labels[0]), (np.asarray(x0) > ref[1]).astype(int))
    np.testing.assert_array_equal(np.asarray(bs.labels[1]), 0)
    assert bool(jnp.all(bs.settled))


def test_basins_flag_slow_passage_near_fold(x64):
    # Just past the upper fold the lower branch is gone, but its ghost holds trajectories
    # for a time ~ π / sqrt(a c Δb): after T = 20 those from below have not arrived.
    b = doya_folds()[1].max() + 1e-4
    x0 = jnp.array([0.05, 0.95])
    bs = jaxgrad.analysis.basins(doya_flow, x0, jnp.array([b]), params=DoyaParams(W, b), param="b",
                                 dt=0.1, num_steps=200)
    np.testing.assert_array_equal(np.asarray(bs.settled[0]), [False, True])
    np.testing.assert_array_equal(np.asarray(bs.labels[0]), [-2, 0])
    assert int(bs.num_attractors[0]) == 1


def test_orbits_jit_matches_eager_and_reports_divergence():
    values = jnp.array([-2.8, -2.5, -2.2])
    kw = dict(params=DoyaParams(W, -2.8), param="b", kind="flow", dt=0.1, transient=5, keep=2)
    jitted = jaxgrad.analysis.hysteresis_sweep(doya_flow, 0.1, values, **kw)
    with jax.disable_jit():
        eager = jaxgrad.analysis.hysteresis_sweep(doya_flow, 0.1, values, **kw)
    np.testing.assert_allclose(np.asarray(jitted.up), np.asarray(eager.up), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(jitted.down), np.asarray(eager.down), rtol=1e-6)
    # x ↦ r x² escapes to infinity from x(0) = 10: reported in `finite`, not hidden.
    od = jaxgrad.analysis.orbit_diagram(lambda x, r: r * x * x, jnp.array([0.1, 10.0]),
                                        jnp.array([1.0]),
                                        transient=20, keep=2)
    np.testing.assert_array_equal(np.asarray(od.finite), [[True, False]])


def test_continuation_jit_cache_reused():
    from jaxgrad.analysis.continuation import _continue

    kw = dict(param="b", p_range=(-3.0, -2.0), num_steps=20, locate=False)
    jaxgrad.continue_branch(doya_flow, 0.05, params=DoyaParams(W, -3.0), **kw)
    size = _continue._cache_size()
    br = jaxgrad.continue_branch(doya_flow, 0.9, params=DoyaParams(5.5, -2.1), direction=-1,
                                 **kw)
    assert _continue._cache_size() == size
    assert bool(br.valid[0]) and float(br.p[br.valid][-1]) < -2.1


# --------------------------------------------------------------------------- sensitivities


def test_sensitivities_closed_form_and_vanishing_exploding(x64):
    dt, n = 0.1, 1500
    x0 = jnp.array([0.05, 0.3, 0.5 - 1e-6, 0.5, 0.5 + 1e-6, 0.7, 0.95])
    values = jnp.array([-2.5, -2.45])
    s = jaxgrad.analysis.final_state_sensitivities(doya_flow, x0, values,
                                                   params=DoyaParams(W, -2.5),
                                                   param="b", dt=dt, num_steps=n)
    xT = np.asarray(s.final)
    far = np.array([True, True, False, False, False, True, True])
    closed = np.asarray(jaxgrad.models.doya_fixed_point_sensitivity(xT[:, far], w=W))
    np.testing.assert_allclose(np.asarray(s.d_final_d_param)[:, far], closed, rtol=1e-8)
    assert np.all(np.abs(np.asarray(s.d_final_d_x0)[:, far]) < 1e-15)  # vanishing
    # x(0) = 0.5 is the unstable fixed point at b = -2.5 (σ(0) = 1/2): λ = -1 + 5/4 = 1/4,
    # and ∂x(T)/∂x(0) is the RK4 amplification factor R(λ dt)^n (exploding).
    z = 0.25 * dt
    growth = (1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24) ** n
    np.testing.assert_allclose(float(s.d_final_d_x0[0, 3]), growth, rtol=1e-9)
    assert growth > 1e15
    # Either side of it the end states differ by the gap between the attractors: the
    # finite-difference ratio Δx(T)/Δx(0) explodes.
    ref = doya_reference_roots(-2.5)
    np.testing.assert_allclose(xT[0, [2, 4]], ref[[0, 2]], atol=1e-9)
    assert (xT[0, 4] - xT[0, 2]) / 2e-6 > 3e5
    assert bool(jnp.all(s.finite))


def test_sensitivities_match_grad_and_finite_differences(x64):
    from jaxgrad.analysis._system import advance, run_steps

    step = advance(doya_flow, "flow", 0.1)

    def x_T(b, x0):
        return run_steps(step, x0, DoyaParams(W, b), 300)

    s = jaxgrad.analysis.final_state_sensitivities(doya_flow, jnp.array([0.2]), jnp.array([-2.4]),
                                                   params=DoyaParams(W, -2.4), param="b",
                                                   num_steps=300)
    g_b, g_x0 = jax.grad(x_T, argnums=(0, 1))(-2.4, 0.2)
    np.testing.assert_allclose(float(s.d_final_d_param[0, 0]), float(g_b), rtol=1e-12)
    np.testing.assert_allclose(float(s.d_final_d_x0[0, 0]), float(g_x0), rtol=1e-12)
    h = 1e-6
    fd = (float(x_T(-2.4 + h, 0.2)) - float(x_T(-2.4 - h, 0.2))) / (2 * h)
    np.testing.assert_allclose(float(g_b), fd, rtol=1e-6)


# --------------------------------------------------------------------------- bad input


P0 = DoyaParams(W, -2.5)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"interval": (1.0, 1.0)}, ValueError, "`interval`.*lo < hi"),
        ({"interval": (1.0, 0.0)}, ValueError, "`interval`.*reversed"),
        ({"interval": (0.0,)}, ValueError, "`interval`"),
        ({"interval": (0.0, np.inf)}, ValueError, "`interval` must be finite"),
        ({"num_points": 0}, ValueError, "`num_points`"),
        ({"values": jnp.zeros((0,)), "param": "b"}, ValueError, "`values`.*at least one"),
        ({"values": jnp.zeros((2, 2)), "param": "b"}, ValueError, "`values`.*1-D"),
        ({"values": jnp.array([0.0, jnp.nan]), "param": "b"}, ValueError, "`values`.*finite"),
        ({"values": jnp.zeros(3), "param": "c"}, ValueError, "unknown `param` 'c'"),
        ({"values": jnp.zeros(3)}, ValueError, "`param` must name"),
        ({"param": "b"}, ValueError, "without `values`"),
        ({"kind": "ode"}, ValueError, "unknown `kind`"),
        ({"max_points": 0}, ValueError, "`max_points`"),
    ],
)
def test_fixed_points_1d_bad_input(kwargs, exc, match):
    args = {"interval": (0.0, 1.0), "params": P0}
    args.update(kwargs)
    interval = args.pop("interval")
    with pytest.raises(exc, match=match):
        jaxgrad.analysis.fixed_points_1d(doya_flow, interval, **args)


def test_bad_system_function():
    with pytest.raises(TypeError, match="`f` must be callable"):
        jaxgrad.analysis.fixed_points_1d(None, (0.0, 1.0), params=P0)
    with pytest.raises(ValueError, match=r"`f\(x, p\)` must return a state shaped like x"):
        jaxgrad.fixed_points(lambda x, p: x[:1], jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="`starts` must have shape"):
        jaxgrad.fixed_points(duffing, jnp.asarray(1.0), params={"delta": 0.1})
    with pytest.raises(ValueError, match="`starts` must hold at least one"):
        jaxgrad.fixed_points(duffing, jnp.ones((0, 2)), params={"delta": 0.1})


def test_continuation_bad_input():
    with pytest.raises(ValueError, match="unknown `param` 'bias'"):
        jaxgrad.continue_branch(doya_flow, 0.1, params=P0, param="bias", p_range=(-3, -2))
    with pytest.raises(ValueError, match="`p_range`.*reversed"):
        jaxgrad.continue_branch(doya_flow, 0.1, params=P0, param="b", p_range=(-2, -3))
    with pytest.raises(ValueError, match="must lie inside `p_range`"):
        jaxgrad.continue_branch(doya_flow, 0.1, params=P0, param="b", p_range=(-2.4, -2))
    with pytest.raises(ValueError, match="`direction`"):
        jaxgrad.continue_branch(doya_flow, 0.1, params=P0, param="b", p_range=(-3, -2),
                                direction=0)
    with pytest.raises(ValueError, match="`ds`"):
        jaxgrad.continue_branch(doya_flow, 0.1, params=P0, param="b", p_range=(-3, -2), ds=0)
    with pytest.raises(ValueError, match="`num_steps`"):
        jaxgrad.continue_branch(doya_flow, 0.1, params=P0, param="b", p_range=(-3, -2),
                                num_steps=0)
    with pytest.raises(ValueError, match="'flip'.*only for kind='map'"):
        jaxgrad.locate_bifurcation(doya_flow, 0.3, params=P0, param="b", bifurcation="flip")
    with pytest.raises(ValueError, match="'hopf'.*`x_guess` must have at least 2 components"):
        jaxgrad.locate_bifurcation(doya_flow, 0.3, params=P0, param="b", bifurcation="hopf")
    with pytest.raises(ValueError, match="`param2` must name a second parameter"):
        jaxgrad.analysis.fold_curve(doya_flow, 0.3, params=P0, param="b", param2="b",
                                    p2_range=(3, 8))
    with pytest.raises(ValueError, match="unknown `param2` 'v'"):
        jaxgrad.analysis.fold_curve(doya_flow, 0.3, params=P0, param="b", param2="v",
                                    p2_range=(3, 8))
    with pytest.raises(ValueError, match="`param2` must name a second parameter.*None"):
        jaxgrad.analysis.fold_curve(doya_flow, 0.3, params=P0, param="b", param2=None,
                                    p2_range=(3, 8))
    with pytest.raises(ValueError, match="`params.w`=5.0 must lie inside `p2_range`"):
        jaxgrad.analysis.fold_curve(doya_flow, 0.3, params=P0, param="b", param2="w",
                                    p2_range=(6, 8))
    with pytest.raises(TypeError, match="`param`='b' needs `params` to be a dict"):
        jaxgrad.continue_branch(logistic, 0.6, params=2.5, param="b", p_range=(2, 3))


def test_continuation_stops_when_the_branch_ends():
    """The predictor-corrector loop ends with the branch: the rows after its end are not
    computed (NaN, invalid, stability -1), so a generous ``num_steps`` costs nothing and
    gives the same branch; absurd sizes and step bounds are refused by name."""
    from jaxgrad.analysis.continuation import MAX_CONTINUATION_STEPS

    def line(x, p):  # dx/dt = a - x: the branch x* = a leaves p_range at a = 1
        return p["a"] - x

    kw = dict(params={"a": 0.0}, param="a", p_range=(0.0, 1.0), ds=0.05, ds_max=0.1,
              locate=False)
    short = jaxgrad.continue_branch(line, 0.0, num_steps=40, **kw)
    long = jaxgrad.continue_branch(line, 0.0, num_steps=MAX_CONTINUATION_STEPS, **kw)
    assert long.x.shape == (MAX_CONTINUATION_STEPS + 1,)
    ok = np.asarray(long.valid)
    last = int(np.flatnonzero(np.isfinite(np.asarray(long.p)))[-1])
    assert 5 < ok.sum() < 20 and last < 20  # the branch ended after a few steps
    assert np.all(np.isnan(np.asarray(long.p)[last + 1:]))
    assert not ok[last + 1:].any() and np.all(np.asarray(long.stability)[last + 1:] == -1)
    np.testing.assert_allclose(np.asarray(long.x)[ok], np.asarray(long.p)[ok], atol=1e-5)
    np.testing.assert_array_equal(np.asarray(short.valid)[: last + 1], ok[: last + 1])
    np.testing.assert_array_equal(np.asarray(short.p)[: last + 1],
                                  np.asarray(long.p)[: last + 1])
    with pytest.raises(ValueError, match=f"`num_steps` must be <= {MAX_CONTINUATION_STEPS}"):
        jaxgrad.continue_branch(line, 0.0, num_steps=10**7, **kw)
    with pytest.raises(ValueError, match="`ds_min`=0.5 must be <= `ds_max`=0.1"):
        jaxgrad.continue_branch(line, 0.0, num_steps=5, ds_min=0.5, **kw)
    with pytest.raises(ValueError, match=r"`ds`=0.2 must lie in \[`ds_min`, `ds_max`\]"):
        jaxgrad.continue_branch(line, 0.0, num_steps=5, **{**kw, "ds": 0.2})


def test_bifurcation_tools_refuse_non_finite_params():
    """A NaN parameter used to give no fixed points (or NaN ones) without a word."""
    bad = DoyaParams(float("nan"), -2.5)
    with pytest.raises(ValueError, match="`params.w` must be finite"):
        jaxgrad.analysis.fixed_points_1d(doya_flow, (0.0, 1.0), params=bad)
    with pytest.raises(ValueError, match="`params.w` must be finite"):
        jaxgrad.continue_branch(doya_flow, 0.1, params=bad, param="b", p_range=(-3, -2))
    with pytest.raises(ValueError, match=r"`params\['delta'\]` must be finite"):
        jaxgrad.fixed_points(duffing, jnp.zeros((2, 2)), params={"delta": float("inf")})
    # the swept field itself is replaced by `values`, so only the others must be finite
    fp = jaxgrad.analysis.fixed_points_1d(doya_flow, (0.0, 1.0), params=DoyaParams(W, float("nan")),
                                          param="b", values=jnp.array([-2.5]), num_points=101)
    assert int(fp.count[0]) == 3


def test_fixed_points_starts_of_the_wrong_rank_are_named():
    with pytest.raises(ValueError, match=r"`starts` must have shape \(M,\) or \(M, \*s\)"):
        jaxgrad.fixed_points(duffing, jnp.asarray(0.0), params={"delta": 0.5})
    # (M, 2, 2) reads as M states of shape (2, 2) (tests/test_pytree_states.py): here two
    # Duffing oscillators side by side, the columns
    fp = jaxgrad.fixed_points(duffing, jnp.zeros((1, 2, 2)), params={"delta": 0.5})
    assert fp.x.shape == (1, 2, 2) and fp.eigenvalues.shape == (1, 4)
    # (2,) reads as two scalar starts; the 2-D system fails on them, and the message
    # says which argument and what shapes it may have
    with pytest.raises(ValueError, match=r"one row of `starts`.*\(M, n\)"):
        jaxgrad.fixed_points(duffing, jnp.zeros(2), params={"delta": 0.5})


def test_orbit_tools_bad_input():
    values = jnp.linspace(-3.0, -2.0, 5)
    with pytest.raises(ValueError, match="`values` must be strictly increasing"):
        jaxgrad.analysis.hysteresis_sweep(doya_flow, 0.0, values[::-1], params=P0, param="b",
                                          kind="flow")
    with pytest.raises(ValueError, match="`values` must hold at least one point, got 0"):
        jaxgrad.analysis.orbit_diagram(doya_flow, jnp.zeros(2), jnp.zeros(0), params=P0, param="b")
    with pytest.raises(ValueError, match="`x0` must have shape \\(M,\\)"):
        jaxgrad.analysis.orbit_diagram(doya_flow, 0.0, values, params=P0, param="b")
    with pytest.raises(ValueError, match="`x0` must hold at least one array"):
        jaxgrad.analysis.hysteresis_sweep(doya_flow, (), values, params=P0, param="b")
    with pytest.raises(ValueError, match="`dt`"):
        jaxgrad.analysis.basins(doya_flow, jnp.zeros(2), values, params=P0, param="b", dt=-0.1)
    with pytest.raises(ValueError, match="`tol`"):
        jaxgrad.analysis.basins(doya_flow, jnp.zeros(2), values, params=P0, param="b", tol=0.0)
    with pytest.raises(ValueError, match="unknown `param` 'q'"):
        jaxgrad.analysis.final_state_sensitivities(doya_flow, jnp.zeros(2), values, params=P0,
                                                   param="q")
    with pytest.raises(ValueError, match="`x0` must be finite"):
        jaxgrad.analysis.final_state_sensitivities(doya_flow, jnp.array([jnp.nan]), values,
                                                   params=P0,
                                                   param="b")
    with pytest.raises(ValueError, match="`transient`"):
        jaxgrad.analysis.orbit_diagram(logistic, jnp.zeros(2), jnp.ones(2), transient=-1)
