"""Limit cycles of flows: ``limit_cycle`` (shooting), ``cycle_branch`` (from a Hopf point)
and ``poincare_section``.

Closed forms: the Hopf normal form ``r' = μ r - s r³, θ' = 1``, in Cartesian coordinates
``x' = μx - y - s x r², y' = x + μy - s y r²``. For ``s = 1`` (supercritical) and
``μ > 0`` its cycle is the circle of radius ``√μ``, period ``2π``, with Floquet
multipliers ``{1, exp(-2μ · 2π)}`` (the radial linearisation ``ρ' = (μ - 3r²) ρ = -2μ ρ``);
for ``s = -1`` (subcritical) and ``μ < 0`` the circle of radius ``√(-μ)`` is unstable,
with multiplier ``exp(-2μ · 2π) > 1``; for ``s = 1, μ < 0`` there is no cycle at all (a
stable focus). Van der Pol ``x'' - μ(1 - x²)x' + x = 0`` at ``μ = 1``: the period
6.6632868593231 is the standard value, and a float64 SciPy solve (DOP853, rtol 1e-12)
reproduces it and gives the non-trivial multiplier by Liouville's formula,
``μ_2 = exp(∮ div F dt) = exp(∮ (1 - x²) dt)``.

The tests share one field (the normal form with ``μ`` and ``s`` as parameters), so that
``limit_cycle`` and ``cycle_branch`` each compile once.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import jaxgrad
from jaxgrad.analysis import limit_cycles

VDP_PERIOD = 6.6632868593231  # van der Pol, μ = 1: the standard value (checked below)


def _normal_form(x, u, p):
    r2 = x @ x
    mu, s = p["mu"], p["s"]
    return jnp.stack([mu * x[0] - x[1] - s * x[0] * r2, x[0] + mu * x[1] - s * x[1] * r2])


def _van_der_pol(x, u, mu):
    return jnp.stack([x[1], mu * (1 - x[0] ** 2) * x[1] - x[0]])


HOPF = jaxgrad.vector_field(_normal_form)
VDP = jaxgrad.vector_field(_van_der_pol)


def hopf_params(mu, s=1.0):
    """Parameters in the default float dtype (float64 under the ``x64`` fixture)."""
    return {"mu": jnp.asarray(float(mu)), "s": jnp.asarray(float(s))}


# --------------------------------------------------------------------------- limit_cycle


@pytest.mark.slow
def test_normal_form_cycle_radius_period_and_multipliers(x64):
    for mu in (0.1, 0.5, 1.0):
        lc = jaxgrad.analysis.limit_cycle(HOPF, jnp.array([0.7, 0.2]), 6.0, params=hopf_params(mu))
        assert bool(lc.converged), mu
        np.testing.assert_allclose(float(lc.period), 2 * np.pi, rtol=1e-7)
        np.testing.assert_allclose(float(jnp.linalg.norm(lc.point)), np.sqrt(mu), rtol=1e-7)
        np.testing.assert_allclose(float(lc.amplitude), np.sqrt(mu), rtol=1e-7)
        mult = np.asarray(lc.floquet_multipliers)
        np.testing.assert_allclose(mult, [1.0, np.exp(-4 * np.pi * mu)], rtol=1e-6,
                                   atol=1e-9)
        assert bool(lc.stable)
        assert float(lc.residual) < 1e-8


def test_subcritical_cycle_is_unstable(x64):
    mu = -0.25  # s = -1: the cycle of radius √(-μ) = 0.5 around a stable focus
    lc = jaxgrad.analysis.limit_cycle(HOPF, jnp.array([0.45, -0.1]), 6.5,
                                      params=hopf_params(mu, -1.0))
    assert bool(lc.converged)
    np.testing.assert_allclose(float(jnp.linalg.norm(lc.point)), 0.5, rtol=1e-7)
    np.testing.assert_allclose(float(lc.period), 2 * np.pi, rtol=1e-7)
    mult = np.asarray(lc.floquet_multipliers)
    np.testing.assert_allclose(mult, [1.0, np.exp(np.pi)], rtol=1e-6)  # e^π ≈ 23.1 > 1
    assert not bool(lc.stable)


def test_no_recompilation_for_new_parameters(x64):
    jaxgrad.analysis.limit_cycle(HOPF, jnp.array([0.7, 0.0]), 6.0, params=hopf_params(0.3))
    size = limit_cycles._correct._cache_size()
    lc = jaxgrad.analysis.limit_cycle(HOPF, jnp.array([0.9, 0.1]), 6.2, params=hopf_params(0.7))
    assert limit_cycles._correct._cache_size() == size
    assert bool(lc.converged)


@pytest.mark.slow
def test_van_der_pol_period_and_multiplier(x64):
    lc = jaxgrad.analysis.limit_cycle(VDP, jnp.array([2.0, 0.0]), 6.5, params=jnp.asarray(1.0))
    assert bool(lc.converged)
    np.testing.assert_allclose(float(lc.period), VDP_PERIOD, rtol=1e-8)

    # Independent reference: SciPy (float64, DOP853), the period between two crossings of
    # y = 0 downwards, and ∮ (1 - x²) dt for the non-trivial multiplier (Liouville).
    def rhs(t, z):
        return [z[1], (1 - z[0] ** 2) * z[1] - z[0], 1 - z[0] ** 2]

    def crossing(t, z):
        return z[1]

    crossing.direction = -1
    sol = solve_ivp(rhs, (0.0, 45.0), [2.0, 0.0, 0.0], method="DOP853", rtol=1e-12,
                    atol=1e-12, events=crossing)
    t_ev, z_ev = sol.t_events[0], sol.y_events[0]
    np.testing.assert_allclose(t_ev[-1] - t_ev[-2], VDP_PERIOD, rtol=1e-10)
    mult = np.asarray(lc.floquet_multipliers)
    np.testing.assert_allclose(abs(mult[0]), 1.0, atol=1e-6)
    np.testing.assert_allclose(mult[1].real, np.exp(z_ev[-1, 2] - z_ev[-2, 2]), rtol=1e-5)
    assert bool(lc.stable)


@pytest.mark.parametrize("case", ["equilibrium", "no_cycle"])
def test_collapse_onto_an_equilibrium_is_not_a_cycle(x64, case):
    if case == "equilibrium":  # start on the unstable equilibrium inside the cycle
        lc = jaxgrad.analysis.limit_cycle(HOPF, jnp.zeros(2), 6.0, params=hopf_params(0.5))
    else:  # μ < 0, s = 1: a stable focus and no cycle; Newton heads for the focus
        lc = jaxgrad.analysis.limit_cycle(HOPF, jnp.array([0.6, 0.0]), 6.0,
                                          params=hopf_params(-0.5))
    assert not bool(lc.converged)
    assert float(lc.amplitude) < 1e-3 or float(lc.residual) > 1e-8


def test_a_multiple_of_the_period_is_not_a_cycle(x64):
    # Guessing T ≈ 4π, Newton lands on the cycle traversed twice: an exact root of
    # φ_T(x) = x, but T is not the period.
    lc = jaxgrad.analysis.limit_cycle(HOPF, jnp.array([0.7, 0.1]), 12.4, params=hopf_params(0.5))
    np.testing.assert_allclose(float(lc.period), 4 * np.pi, rtol=1e-6)
    assert float(lc.residual) < 1e-8
    assert not bool(lc.converged)


# --------------------------------------------------------------------------- cycle_branch


def _hopf_point(s):
    return jaxgrad.locate_bifurcation(HOPF, jnp.array([0.01, 0.0]), params=hopf_params(
        -0.1 * s, s), param="mu", bifurcation="hopf")


@pytest.mark.slow
def test_cycle_branch_from_the_supercritical_hopf_point(x64):
    hp = _hopf_point(1.0)
    assert bool(hp.converged) and float(hp.first_lyapunov_coefficient) < 0
    br = jaxgrad.analysis.cycle_branch(HOPF, hp, params=hopf_params(0.0), param="mu",
                                       p_range=(-1.0, 0.6), num_steps=40)
    p = np.asarray(br.p)
    assert br.stop_reason == "p_range"
    assert p.size >= 5 and np.all(p > 0) and np.all(np.diff(p) > 0) and p[-1] > 0.3
    np.testing.assert_allclose(np.asarray(br.amplitude), np.sqrt(p), rtol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(br.points), axis=1), np.sqrt(p),
                               rtol=1e-7)
    np.testing.assert_allclose(np.asarray(br.period), 2 * np.pi, rtol=1e-7)
    mult = np.asarray(br.floquet_multipliers)
    np.testing.assert_allclose(mult[:, 1].real, np.exp(-4 * np.pi * p), rtol=1e-5,
                               atol=1e-9)
    assert np.all(np.asarray(br.stable)) and np.all(np.asarray(br.converged))


@pytest.mark.slow
def test_cycle_branch_from_the_subcritical_hopf_point(x64):
    hp = _hopf_point(-1.0)
    assert float(hp.first_lyapunov_coefficient) > 0
    br = jaxgrad.analysis.cycle_branch(HOPF, hp, params=hopf_params(0.0, -1.0), param="mu",
                                       p_range=(-0.2, 1.0), num_steps=40)
    p = np.asarray(br.p)
    assert br.stop_reason == "p_range"
    assert p.size >= 3 and np.all(p < 0)  # the cycles lie below the Hopf point
    np.testing.assert_allclose(np.asarray(br.amplitude), np.sqrt(-p), rtol=1e-7)
    assert not np.any(np.asarray(br.stable))
    assert np.all(np.abs(np.asarray(br.floquet_multipliers)[:, 1]) > 1)


def _rate_network(x, u, p):
    """ẋ = -x + g [[1, -1], [1, 1]] tanh(x): Hopf at g = 1, ω = 1, l_1 = -1/2."""
    t = jnp.tanh(x)
    return -x + p["g"] * jnp.stack([t[0] - t[1], t[0] + t[1]])


@pytest.mark.slow
def test_cycle_branch_of_a_rate_network(x64):
    field = jaxgrad.vector_field(_rate_network)
    hp = jaxgrad.locate_bifurcation(field, jnp.array([0.01, 0.0]), params={"g": 0.9},
                                    param="g", bifurcation="hopf")
    br = jaxgrad.analysis.cycle_branch(field, hp, params={"g": 1.0}, param="g", p_range=(0.5, 1.3),
                                       num_steps=12)
    g = np.asarray(br.p)
    assert br.stop_reason in ("p_range", "num_steps") and g.size >= 5 and np.all(g > 1)
    # Near the Hopf point the cycle is a circle of radius √(2α/(ω|l_1|)) = 2√(g - 1).
    np.testing.assert_allclose(float(br.amplitude[0]) / np.sqrt(g[0] - 1), 2.0, rtol=2e-2)
    assert np.all(np.diff(np.asarray(br.amplitude)) > 0) and np.all(np.asarray(br.stable))
    # Each cycle closes under an independent solve (jaxgrad.integrate, tighter tolerances).
    for i in (0, g.size // 2, g.size - 1):
        sol = jaxgrad.integrate(field, br.points[i], float(br.period[i]),
                                params={"g": br.p[i]}, rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(np.asarray(sol.states[-1]), np.asarray(br.points[i]),
                                   atol=1e-7)


# --------------------------------------------------------------------------- sections


@pytest.mark.slow
def test_poincare_section_of_the_normal_form(x64):
    mu = 0.5
    r = np.sqrt(mu)
    x0 = jnp.array([0.0, -r])  # on the cycle at θ = -π/2
    normal = jnp.array([0.0, 1.0])
    up = jaxgrad.analysis.poincare_section(HOPF, x0, 20.0, normal=normal, params=hopf_params(mu))
    assert bool(up.converged) and int(up.count) == 3 and not bool(up.truncated)
    k = np.arange(3)
    np.testing.assert_allclose(np.asarray(up.times)[:3], np.pi / 2 + 2 * np.pi * k, rtol=1e-8)
    points = np.asarray(up.points)[:3]
    np.testing.assert_allclose(points[:, 0], r, rtol=1e-8)  # y = 0, x > 0
    np.testing.assert_allclose(points[:, 1], 0.0, atol=1e-10)
    assert np.all(np.isnan(np.asarray(up.times)[3:])) and np.asarray(up.valid).sum() == 3

    both = jaxgrad.analysis.poincare_section(HOPF, x0, 20.0, normal=normal, params=hopf_params(mu),
                                             direction=0, max_crossings=4)
    assert int(both.count) == 4 and bool(both.truncated)
    np.testing.assert_allclose(np.asarray(both.times), np.pi / 2 + np.pi * np.arange(4),
                               rtol=1e-8)
    np.testing.assert_allclose(np.asarray(both.points)[:, 0], [r, -r, r, -r], rtol=1e-8)

    # From inside the cycle: the returns approach the radius √μ, 2π apart (θ' = 1).
    spiral = jaxgrad.analysis.poincare_section(HOPF, jnp.array([0.1, 0.0]), 100.0, normal=normal,
                                               params=hopf_params(mu))
    t = np.asarray(spiral.times)[: int(spiral.count)]
    np.testing.assert_allclose(np.diff(t), 2 * np.pi, rtol=1e-8)
    radii = np.linalg.norm(np.asarray(spiral.points)[: int(spiral.count)], axis=1)
    assert np.all(np.diff(radii[:4]) > 0)  # then within rounding of √μ
    np.testing.assert_allclose(radii[-1], r, rtol=1e-7)


# --------------------------------------------------------------------------- bad input

GOOD = hopf_params(0.5)


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"period_guess": 0.0}, ValueError, "`period_guess`"),
    ({"period_guess": -1.0}, ValueError, "`period_guess`"),
    ({"period_guess": float("nan")}, ValueError, "`period_guess`"),
    ({"x0": jnp.array([jnp.nan, 0.0])}, ValueError, "`x0`"),
    ({"x0": jnp.array([jnp.inf, 0.0])}, ValueError, "`x0`"),
    ({"x0": jnp.ones(1)}, ValueError, "`x0`"),
    ({"x0": jnp.ones((2, 2))}, ValueError, "`x0`"),
    ({"x0": 1.0}, ValueError, "`x0`"),
    ({"x0": jnp.ones(3)}, ValueError, "`field`"),
    ({"field": _normal_form}, TypeError, "`field`"),
    ({"params": hopf_params(float("nan"))}, ValueError, r"params\['mu'\]"),
    ({"newton_steps": 0}, ValueError, "`newton_steps`"),
    ({"tol": -1.0}, ValueError, "`tol`"),
    ({"num_samples": 4}, ValueError, "`num_samples`"),
])
def test_limit_cycle_bad_input(kwargs, exc, pattern):
    args = {"field": HOPF, "x0": jnp.array([0.7, 0.0]), "period_guess": 6.0, "params": GOOD}
    args.update(kwargs)
    with pytest.raises(exc, match=pattern):
        jaxgrad.analysis.limit_cycle(args.pop("field"), args.pop("x0"), args.pop("period_guess"),
                                     **args)


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"normal": jnp.zeros(2)}, ValueError, "`normal`"),
    ({"normal": jnp.ones(3)}, ValueError, "`normal`"),
    ({"normal": jnp.array([jnp.nan, 1.0])}, ValueError, "`normal`"),
    ({"x0": jnp.array([jnp.nan, 0.0])}, ValueError, "`x0`"),
    ({"x0": jnp.ones((2, 2))}, ValueError, "`x0`"),
    ({"t1": 0.0}, ValueError, "`t1`"),
    ({"t1": float("inf")}, ValueError, "`t1`"),
    ({"direction": 2}, ValueError, "`direction`"),
    ({"max_crossings": 0}, ValueError, "`max_crossings`"),
    ({"offset": float("nan")}, ValueError, "`offset`"),
    ({"field": _normal_form}, TypeError, "`field`"),
])
def test_poincare_section_bad_input(kwargs, exc, pattern):
    args = {"field": HOPF, "x0": jnp.array([0.7, 0.0]), "t1": 10.0,
            "normal": jnp.array([0.0, 1.0]), "params": GOOD}
    args.update(kwargs)
    with pytest.raises(exc, match=pattern):
        jaxgrad.analysis.poincare_section(args.pop("field"), args.pop("x0"), args.pop("t1"), **args)


def _fake_hopf(**changes):
    point = jaxgrad.analysis.BifurcationPoint(
        "hopf", jnp.zeros(2), jnp.asarray(0.0), jnp.array([1j, -1j]), jnp.array([1, -1j]),
        jnp.asarray(True), jnp.asarray(0.0), jnp.asarray(1.0), jnp.asarray(-2.0))
    return point._replace(**changes)


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"hopf_point": "hopf"}, TypeError, "`hopf_point`"),
    ({"hopf_point": _fake_hopf(kind="fold")}, ValueError, "`hopf_point`"),
    ({"hopf_point": _fake_hopf(converged=jnp.asarray(False))}, ValueError, "`hopf_point`"),
    ({"hopf_point": _fake_hopf(first_lyapunov_coefficient=jnp.asarray(0.0))}, ValueError,
     "`hopf_point`"),
    ({"hopf_point": _fake_hopf(frequency=jnp.asarray(jnp.nan))}, ValueError, "`hopf_point`"),
    ({"p_range": (0.1, 1.0)}, ValueError, "`p_range`"),
    ({"p_range": (1.0, -1.0)}, ValueError, "`p_range`"),
    ({"param": "nu"}, ValueError, "`param`"),
    ({"num_steps": 0}, ValueError, "`num_steps`"),
    ({"seed_offset": 0.0}, ValueError, "`seed_offset`"),
])
def test_cycle_branch_bad_input(kwargs, exc, pattern):
    args = {"hopf_point": _fake_hopf(), "params": GOOD, "param": "mu", "p_range": (-1.0, 1.0)}
    args.update(kwargs)
    with pytest.raises(exc, match=pattern):
        jaxgrad.analysis.cycle_branch(HOPF, args.pop("hopf_point"), **args)


def test_flows_refuse_a_step_as_field():
    step = jaxgrad.autonomous(lambda x: x)
    with pytest.raises(TypeError, match="`field`"):
        jaxgrad.analysis.limit_cycle(step, jnp.ones(2), 1.0)
    with pytest.raises(TypeError, match="`field`"):
        jaxgrad.analysis.cycle_branch(step, _fake_hopf(), params=GOOD, param="mu", p_range=(-1, 1))
