"""Continuous-time flows through diffrax: ``jaxgrad.integrate``, Lyapunov spectra of a
``VectorField`` and ``doya_integrate(method="diffrax")``.

Checked against closed forms: ``x(t) = expm(A t) x0`` (SciPy, float64) for a linear flow,
whose Lyapunov exponents are the real parts of ``A``'s eigenvalues; Lorenz (σ = 10,
ρ = 28, β = 8/3), whose exponents sum to the constant divergence ``-(σ + 1 + β) = -41/3``
and whose largest is 0.9056 (Sprott 2003, "Chaos and Time-Series Analysis", table A.4:
0.9056, 0, -14.5723); Robertson's stiff chemistry against Hairer & Wanner's reference.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import jaxgrad
from jaxgrad.flows import default_tolerances

LINEAR = jaxgrad.vector_field(lambda x, u, A: A @ x)


def _lorenz(x, u):
    sigma, rho, beta = 10.0, 28.0, 8.0 / 3.0
    return jnp.stack([sigma * (x[1] - x[0]), x[0] * (rho - x[2]) - x[1],
                      x[0] * x[1] - beta * x[2]])


LORENZ = jaxgrad.vector_field(_lorenz)


def _robertson(y, u):
    k1, k2, k3 = 0.04, 3e7, 1e4
    return jnp.stack([
        -k1 * y[0] + k3 * y[1] * y[2],
        k1 * y[0] - k3 * y[1] * y[2] - k2 * y[1] ** 2,
        k2 * y[1] ** 2,
    ])


ROBERTSON = jaxgrad.vector_field(_robertson)


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """Run a test in float32, then in float64 (inside the x64 fixture)."""
    if request.param == "float64":
        request.getfixturevalue("x64")
    return jnp.dtype(request.param)


def _random_linear(seed, n=4):
    """A random stable ``A`` (eigenvalues' real parts about in [-3, 0.5])."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n)) / np.sqrt(n) - 1.2 * np.eye(n), rng.normal(size=n)


# --------------------------------------------------------------------------- integrate


def test_linear_flow_matches_expm_many_seeds(dtype):
    """``x(t) = expm(A t) x0`` at every saved time, for 12 random ``A`` in one vmapped call."""
    pairs = [_random_linear(seed) for seed in range(12)]
    As = jnp.asarray(np.stack([a for a, _ in pairs]), dtype)
    x0s = jnp.asarray(np.stack([x for _, x in pairs]), dtype)
    save_at = np.array([0.0, 0.3, 1.0, 2.5])
    tight = dtype == jnp.float64
    options = dict(rtol=1e-10, atol=1e-12) if tight else {}
    solve = jax.vmap(lambda A, x0: jaxgrad.integrate(
        LINEAR, x0, 2.5, params=A, save_at=jnp.asarray(save_at, dtype), **options))
    sol = solve(As, x0s)
    assert bool(jnp.all(sol.converged))
    assert sol.states.dtype == dtype and sol.states.shape == (12, 4, 4)
    np.testing.assert_array_equal(np.asarray(sol.ts[0]), save_at.astype(dtype))
    for (A, x0), states in zip(pairs, np.asarray(sol.states, np.float64), strict=True):
        exact = np.stack([scipy.linalg.expm(A * t) @ x0 for t in save_at])
        scale = np.max(np.abs(exact))
        # float32: rtol 1e-5 per step; float64: 1e-10 (the global error is a few times that)
        np.testing.assert_allclose(states, exact, rtol=0, atol=(1e-8 if tight else 1e-4) * scale)
    assert bool(jnp.all(sol.num_accepted_steps > 0))
    # A second batch of values reuses the compiled solve.
    before = jaxgrad.flows._run._cache_size()
    solve(As * 0.5, x0s)
    assert jaxgrad.flows._run._cache_size() == before
    if tight:  # reverse mode through the solve: d/dA of sum(expm(A t) x0) along E
        (A, x0), E = pairs[0], np.random.default_rng(99).normal(size=(4, 4))
        grad = jax.grad(lambda A: jnp.sum(jaxgrad.integrate(
            LINEAR, jnp.asarray(x0), 1.5, params=A, **options).states[-1]))(jnp.asarray(A))
        exact = np.sum(scipy.linalg.expm_frechet(A * 1.5, E * 1.5, compute_expm=False) @ x0)
        assert float(jnp.vdot(grad, jnp.asarray(E))) == pytest.approx(exact, rel=1e-7)


def test_default_tolerances_follow_the_dtype():
    assert default_tolerances(jnp.float32) == (1e-5, 1e-6)
    assert default_tolerances(jnp.float64) == (1e-8, 1e-10)


def test_pytree_state_harmonic_oscillator():
    """``dq/dt = p, dp/dt = -q`` on a dict state: ``q = cos t``, ``p = -sin t``."""
    field = jaxgrad.vector_field(lambda x, u: {"q": x["p"], "p": -x["q"]})
    ts = jnp.linspace(0.0, 6.0, 7)
    sol = jaxgrad.integrate(field, {"q": jnp.ones(2), "p": jnp.zeros(2)}, 6.0, save_at=ts)
    assert bool(sol.converged)
    assert sol.states["q"].shape == (7, 2)
    np.testing.assert_allclose(sol.states["q"][:, 0], np.cos(np.asarray(ts)), atol=1e-4)
    np.testing.assert_allclose(sol.states["p"][:, 1], -np.sin(np.asarray(ts)), atol=1e-4)


def test_robertson_stiff_converges_explicit_fails(x64):
    """Robertson's chemistry (stiffness ~1e4..1e7): Kvaerno5 meets Hairer & Wanner's
    reference at t = 40; Tsit5 runs out of steps (converged False, IntegrationError)."""
    y0 = jnp.array([1.0, 0.0, 0.0])
    sol = jaxgrad.integrate(ROBERTSON, y0, 40.0, stiff=True, rtol=1e-8, atol=1e-12)
    assert bool(sol.converged)
    # Hairer & Wanner, "Solving ODEs II", sec. IV.10 (reference solution at t = 40)
    reference = np.array([0.7158270687, 9.185534764e-6, 0.2841637457])
    np.testing.assert_allclose(np.asarray(sol.states[-1]), reference, rtol=1e-6)
    assert float(jnp.sum(sol.states[-1])) == pytest.approx(1.0, abs=1e-12)  # conserved
    assert int(sol.num_accepted_steps) < 500

    explicit = jaxgrad.integrate(ROBERTSON, y0, 40.0, max_steps=300, throw=False)
    assert not bool(explicit.converged)
    assert int(explicit.num_accepted_steps + explicit.num_rejected_steps) == 300
    assert 0 < float(explicit.ts[-1]) < 40.0  # the time reached, not t1
    with pytest.raises(jaxgrad.flows.IntegrationError, match="max_steps=300") as err:
        jaxgrad.integrate(ROBERTSON, y0, 40.0, max_steps=300)
    assert err.value.cause == "max_steps_reached"
    assert isinstance(err.value, RuntimeError)
    assert not bool(err.value.solution.converged)


def test_stiff_linear_float32_default_tolerances():
    """A linear flow with rates -1 and -1e4 in float32: the implicit solver at its float32
    default (rtol 1e-3) takes few steps and matches ``expm`` to about that tolerance."""
    A = np.array([[-1.0, 0.0], [9999.0, -1e4]])  # eigenvalues -1, -1e4
    x0 = np.array([1.0, 0.0])
    save_at = np.array([0.5, 2.0])
    sol = jaxgrad.integrate(LINEAR, jnp.asarray(x0, jnp.float32), 2.0,
                            params=jnp.asarray(A, jnp.float32),
                            save_at=jnp.asarray(save_at, jnp.float32), stiff=True)
    assert bool(sol.converged)
    assert default_tolerances(jnp.float32, stiff=True) == (1e-3, 1e-6)
    exact = np.stack([scipy.linalg.expm(A * t) @ x0 for t in save_at])
    np.testing.assert_allclose(np.asarray(sol.states), exact, rtol=1e-2, atol=1e-4)
    assert int(sol.num_accepted_steps) < 50


def test_blow_up_and_nan_are_reported():
    """``dx/dt = x^{5/2}`` from 1 blows up at t = 2/3; from -1 the field is NaN."""
    field = jaxgrad.vector_field(lambda x, u: x * x * jnp.sqrt(x))
    with pytest.raises(jaxgrad.flows.IntegrationError, match="blow-up|non-finite") as err:
        jaxgrad.integrate(field, jnp.ones(1), 2.0, max_steps=500)
    assert err.value.cause in ("max_steps_reached", "non_finite")
    sol = jaxgrad.integrate(field, jnp.ones(1), 2.0, max_steps=500, throw=False)
    assert not bool(sol.converged)
    assert float(sol.ts[-1]) == pytest.approx(2.0 / 3.0, rel=1e-3)  # where it stalled
    with pytest.raises(jaxgrad.flows.IntegrationError, match="non-finite") as err:
        jaxgrad.integrate(field, -jnp.ones(1), 2.0, max_steps=500)
    assert err.value.cause == "non_finite"
    # Before the blow-up the same solve converges to (1 - 1.5 t)^{-2/3}.
    ok = jaxgrad.integrate(field, jnp.ones(1), 0.5, max_steps=500)
    assert float(ok.states[-1, 0]) == pytest.approx(0.25 ** (-2.0 / 3.0), rel=1e-4)


def test_bad_input_names_the_argument():
    x0 = jnp.ones(2)
    field = jaxgrad.vector_field(lambda x, u: -x)
    with pytest.raises(TypeError, match="a step is not a flow"):
        jaxgrad.integrate(lambda x, u: -x, x0, 1.0)
    with pytest.raises(TypeError, match="a step is not a flow"):
        jaxgrad.integrate(jaxgrad.discretize(field, 0.1), x0, 1.0)
    with pytest.raises(ValueError, match="`t1`"):
        jaxgrad.integrate(field, x0, 0.0)
    with pytest.raises(ValueError, match="`t1`"):
        jaxgrad.integrate(field, x0, 1.0, t0=2.0)
    with pytest.raises(ValueError, match="`t1`"):
        jaxgrad.integrate(field, x0, float("nan"))
    with pytest.raises(ValueError, match="`t0`"):
        jaxgrad.integrate(field, x0, 1.0, t0=float("-inf"))
    with pytest.raises(ValueError, match="`save_at`.*increasing"):
        jaxgrad.integrate(field, x0, 1.0, save_at=jnp.array([0.5, 0.2]))
    with pytest.raises(ValueError, match="`save_at`.*increasing"):
        jaxgrad.integrate(field, x0, 1.0, save_at=jnp.array([0.5, 0.5]))
    with pytest.raises(ValueError, match=r"`save_at` must lie in \[t0, t1\]"):
        jaxgrad.integrate(field, x0, 1.0, save_at=jnp.array([0.5, 1.5]))
    with pytest.raises(ValueError, match=r"`save_at` must lie in \[t0, t1\]"):
        jaxgrad.integrate(field, x0, 1.0, t0=0.2, save_at=jnp.array([0.1, 0.5]))
    with pytest.raises(ValueError, match="`save_at`"):
        jaxgrad.integrate(field, x0, 1.0, save_at=jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match="`save_at`"):
        jaxgrad.integrate(field, x0, 1.0, save_at=jnp.array([0.1, jnp.nan]))
    with pytest.raises(ValueError, match="`x0`"):
        jaxgrad.integrate(field, jnp.array([1.0, jnp.nan]), 1.0)
    with pytest.raises(ValueError, match="`u`"):
        jaxgrad.integrate(field, x0, 1.0, u=jnp.array([jnp.inf]))
    with pytest.raises(ValueError, match="params"):
        jaxgrad.integrate(LINEAR, x0, 1.0, params=jnp.full((2, 2), jnp.nan))
    with pytest.raises(ValueError, match="`max_steps`"):
        jaxgrad.integrate(field, x0, 1.0, max_steps=0)
    with pytest.raises(TypeError, match="`max_steps`"):
        jaxgrad.integrate(field, x0, 1.0, max_steps=10.5)
    with pytest.raises(ValueError, match="`rtol`"):
        jaxgrad.integrate(field, x0, 1.0, rtol=-1e-3)
    with pytest.raises(ValueError, match="`rtol`.*resolution"):
        jaxgrad.integrate(field, x0, 1.0, rtol=1e-9)  # below float32's ε
    with pytest.raises(ValueError, match="`atol`"):
        jaxgrad.integrate(field, x0, 1.0, atol=0.0)
    with pytest.raises(ValueError, match="`dt0`"):
        jaxgrad.integrate(field, x0, 1.0, dt0=-0.1)
    with pytest.raises(TypeError, match="`solver`"):
        import diffrax

        jaxgrad.integrate(field, x0, 1.0, solver=diffrax.Euler())  # no error estimate
    with pytest.raises(ValueError, match="`solver` or `stiff=True`"):
        jaxgrad.integrate(field, x0, 1.0, solver=diffrax.Dopri5(), stiff=True)
    with pytest.raises(ValueError, match="`field` must return dx/dt shaped like `x0`"):
        jaxgrad.integrate(jaxgrad.vector_field(lambda x, u: x[:1]), x0, 1.0)
    # Flow options given for a map, and a map option error for a flow.
    with pytest.raises(ValueError, match="`stiff` is an option of a flow"):
        jaxgrad.lyapunov_spectrum(jaxgrad.autonomous(lambda x: 0.5 * x), x0, num_steps=10,
                                  stiff=True)
    with pytest.raises(ValueError, match="`rtol`"):
        jaxgrad.lyapunov_spectrum(field, x0, num_steps=10, rtol=0.0)
    with pytest.raises(ValueError, match="method"):
        jaxgrad.models.doya_integrate(jaxgrad.DoyaParams(5.0, -2.5), 0.5, jnp.zeros(3),
                                      method="rk45")


# --------------------------------------------------------------------------- Lyapunov


def test_linear_flow_exponents_are_real_parts_of_eigenvalues(x64):
    """A non-normal ``A`` with a complex pair: λ = Re eig(A) = (-0.5, -0.5, -2)."""
    A = jnp.array([[-0.5, 2.0, 1.0], [-2.0, -0.5, 3.0], [0.0, 0.0, -2.0]])
    res = jaxgrad.lyapunov_spectrum(LINEAR, jnp.ones(3), num_steps=200, dt=1.0, params=A)
    expected = np.sort(np.linalg.eigvals(np.asarray(A)).real)[::-1]
    assert bool(res.valid)
    # A finite run of a non-normal flow is off by about log(cond V) / T = 1/200
    np.testing.assert_allclose(np.asarray(res.exponents), expected, atol=1e-2)
    # The sum is the trace exactly (Liouville): only the solver's tolerance remains.
    assert float(jnp.sum(res.exponents)) == pytest.approx(float(jnp.trace(A)), abs=1e-7)


def test_lorenz_exponents(dtype):
    """λ1 = 0.9056 (Sprott) within 3%, λ2 ≈ 0, λ3 = -14.5723 within 1%, and the sum equals
    the divergence -41/3 to the solver's tolerance (float32 1e-3, float64 1e-6)."""
    dt, transient, horizon = 0.25, 40, 2000  # 10 time units of transient, T = 500
    res = jaxgrad.lyapunov_spectrum(LORENZ, jnp.array([1.0, 1.0, 20.0], dtype),
                                    num_steps=transient + horizon, transient=transient, dt=dt)
    lam = np.asarray(res.exponents, np.float64)
    assert res.exponents.dtype == dtype
    assert bool(res.valid)
    assert lam[0] == pytest.approx(0.9056, rel=0.03)
    assert abs(lam[1]) < 0.01
    assert lam[2] == pytest.approx(-14.5723, rel=0.01)
    assert lam.sum() == pytest.approx(-41.0 / 3.0, abs=1e-3 if dtype == jnp.float32 else 1e-6)
    assert float(res.kaplan_yorke_dimension) == pytest.approx(2.062, abs=0.01)


def test_lyapunov_flow_failure_is_not_finite():
    """A solve that runs out of steps poisons the exponents: ``finite`` and ``valid`` False."""
    res = jaxgrad.lyapunov_spectrum(LORENZ, jnp.array([1.0, 1.0, 20.0]), num_steps=4, dt=1.0,
                                    max_steps=3)
    assert not bool(res.finite) and not bool(res.valid)


# --------------------------------------------------------------------------- Doya


def test_doya_diffrax_agrees_with_rk4(dtype):
    """Adaptive Tsit5 over each ``dt`` against the classical RK4 map at small ``dt``,
    with a time-varying input held over each step."""
    p = jaxgrad.DoyaParams(jnp.asarray(5.0, dtype), jnp.asarray(-2.3, dtype),
                           jnp.asarray(0.7, dtype))
    inputs = 0.5 * jnp.sin(0.1 * jnp.arange(400, dtype=dtype))
    rk4 = jaxgrad.models.doya_integrate(p, 0.2, inputs, dt=0.02, method="rk4")
    tight = dtype == jnp.float64
    adaptive = jaxgrad.models.doya_integrate(p, 0.2, inputs, dt=0.02, method="diffrax",
                                             rtol=1e-10 if tight else None,
                                             atol=1e-12 if tight else None)
    assert adaptive.shape == rk4.shape == (400,) and adaptive.dtype == dtype
    # RK4's global error at dt = 0.02 is ~1e-9 here; float32 rounds at ~1e-7 per step
    np.testing.assert_allclose(np.asarray(adaptive), np.asarray(rk4), rtol=0,
                               atol=1e-8 if tight else 2e-5)


def test_doya_diffrax_reports_failure():
    p = jaxgrad.DoyaParams(5.0, -2.5)
    with pytest.raises(jaxgrad.flows.IntegrationError, match="max_steps=1") as err:
        jaxgrad.models.doya_integrate(p, 0.2, jnp.zeros(3), dt=5.0, method="diffrax", max_steps=1)
    assert err.value.cause == "max_steps_reached"


# ------------------------------------------------- orbit tools with method="diffrax"


def _hopf_normal_form(z, u, mu):
    """``ṙ = μ r − r³``, ``θ̇ = 1`` in Cartesian form: a limit cycle of radius √μ."""
    x, y = z[0], z[1]
    r2 = x * x + y * y
    return jnp.stack([mu * x - y - x * r2, x + mu * y - y * r2])


HOPF = jaxgrad.vector_field(_hopf_normal_form)


@pytest.mark.parametrize("mu", [0.25, 1.0])
def test_orbit_diagram_of_a_flow_through_diffrax_lies_on_the_closed_form_cycle(x64, mu):
    """States ``dt`` apart on the cycle of the Hopf normal form: radius √μ and phase
    advancing by exactly ``dt`` (θ̇ = 1), to the solver's tolerance; RK4 with the same
    ``dt`` = 0.5 is far less accurate, which is what the adaptive solve buys."""
    x0 = jnp.array([[0.1, 0.0], [2.0, 1.0]])
    kw = dict(params=jnp.asarray(mu), dt=0.5, transient=200, keep=16)
    od = jaxgrad.analysis.orbit_diagram(HOPF, x0, jnp.asarray([mu]), method="diffrax", rtol=1e-11,
                                        atol=1e-12, **kw)
    assert bool(jnp.all(od.finite))
    z = np.asarray(od.states[0])                       # (M, keep, 2)
    radius = np.hypot(z[..., 0], z[..., 1])
    np.testing.assert_allclose(radius, np.sqrt(mu), rtol=1e-8)
    phase = np.diff(np.unwrap(np.arctan2(z[..., 1], z[..., 0]), axis=-1), axis=-1)
    np.testing.assert_allclose(phase, 0.5, atol=1e-8)
    rk4 = jaxgrad.analysis.orbit_diagram(HOPF, x0, jnp.asarray([mu]), **kw)
    rk4_radius = np.hypot(*np.moveaxis(np.asarray(rk4.states[0]), -1, 0))
    assert np.max(np.abs(rk4_radius - np.sqrt(mu))) > 100 * np.max(
        np.abs(radius - np.sqrt(mu)))


def test_hysteresis_sweep_and_basins_of_doyas_flow_through_diffrax():
    """Doya's continuous limit: the diffrax sweep jumps at the folds b = −2.34 and −2.66
    (as the RK4 sweep of the same flow does), and the basins split at x(0) = 1/2."""
    flow = lambda x, p: jaxgrad.models.doya_vector_field(x, 0.0, p)  # noqa: E731
    params = jaxgrad.DoyaParams(5.0, -3.0)
    hs = jaxgrad.analysis.hysteresis_sweep(flow, 0.0, jnp.linspace(-3, -2, 101), kind="flow",
                                           params=params, param="b", method="diffrax")
    up, down = np.asarray(hs.up[:, -1]), np.asarray(hs.down[:, -1])
    i, j = int(np.argmax(np.diff(up))), int(np.argmax(np.diff(down)))
    assert (round(float(hs.values[i + 1]), 2), round(float(hs.values[j]), 2)) == (-2.34, -2.66)
    assert bool(jnp.all(hs.finite))
    bs = jaxgrad.analysis.basins(flow, jnp.array([0.1, 0.3, 0.7, 0.9]), jnp.array([-2.5]),
                                 params=jaxgrad.DoyaParams(5.0, -2.5), param="b", method="diffrax")
    assert bs.labels[0].tolist() == [0, 0, 1, 1]


def test_orbit_diagram_failed_solve_is_nan_not_an_answer():
    """A solve that cannot reach ``dt`` within ``max_steps`` makes its orbit NaN and its
    ``finite`` flag False."""
    od = jaxgrad.analysis.orbit_diagram(HOPF, jnp.array([[0.1, 0.0]]), jnp.asarray([1.0]),
                                        params=jnp.asarray(1.0), dt=50.0, transient=2, keep=2,
                                        method="diffrax", max_steps=2)
    assert not bool(od.finite[0, 0]) and np.isnan(np.asarray(od.states)).all()


def test_orbit_tools_refuse_diffrax_for_a_map_and_an_unknown_method():
    logistic = jaxgrad.autonomous(lambda x, r: r * x * (1 - x))
    with pytest.raises(ValueError, match="`method`"):
        jaxgrad.analysis.orbit_diagram(logistic, jnp.array([0.3]), jnp.array([3.2]), params=3.2,
                                       method="diffrax")
    with pytest.raises(ValueError, match="`method`"):
        jaxgrad.analysis.basins(HOPF, jnp.array([[0.1, 0.0]]), jnp.asarray([1.0]),
                                params=jnp.asarray(1.0), method="rk45")
    with pytest.raises(ValueError, match="`rtol`"):
        jaxgrad.analysis.orbit_diagram(HOPF, jnp.array([[0.1, 0.0]]), jnp.asarray([1.0]),
                                       params=jnp.asarray(1.0), method="diffrax", rtol=-1.0)
