"""Mean-field signal propagation: closed forms, an independent NumPy reference, quadrature
convergence, jit/vmap/grad consistency, random MLPs against the theory, and bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxgrad
from jaxgrad.analysis import signal_propagation as sp

SIGMA_B2 = [0.0, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0]


# ----------------------------------------------------------------------------- an independent
# float64 NumPy reference: trapezoid rule on a fine grid (spectrally accurate for these smooth,
# Gaussian-weighted integrands), q* by plain iteration, and bisection on σ_w² for χ₁ = 1.

_Z = np.linspace(-10.0, 10.0, 4001)
_W = np.exp(-_Z**2 / 2) / math.sqrt(2 * math.pi) * (_Z[1] - _Z[0])


def _np_q_star(sw, sb, iterations=300):
    q = 1.0
    for _ in range(iterations):
        q = sw * np.sum(_W * np.tanh(math.sqrt(q) * _Z) ** 2) + sb
    return q


def _np_chi(sw, sb):
    q = _np_q_star(sw, sb)
    return sw * np.sum(_W / np.cosh(math.sqrt(q) * _Z) ** 4)


def _np_critical(sb, lo=1.0, hi=8.0, iterations=40):
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _np_chi(mid, sb) < 1 else (lo, mid)
    return 0.5 * (lo + hi)


# ----------------------------------------------------------------------------- quadrature


def test_gaussian_expectation_moments(x64):
    for k in range(1, 8):  # E z^{2k} = (2k-1)!!, exact for degree < 2n
        got = float(jaxgrad.analysis.gaussian_expectation(lambda z, k=k: z ** (2 * k),
                                                          num_points=10,
                                                          dtype=jnp.float64))
        assert got == pytest.approx(math.prod(range(1, 2 * k, 2)), rel=1e-12)
    assert float(jaxgrad.analysis.gaussian_expectation(lambda z: z**3, dtype=jnp.float64)) == \
        pytest.approx(0.0, abs=1e-12)


def test_rule_matches_numpy_hermegauss():
    for n in (5, 40, 150):
        x, w = sp._rule(n)
        xr, wr = np.polynomial.hermite_e.hermegauss(n)
        np.testing.assert_allclose(x, xr, atol=1e-12)
        np.testing.assert_allclose(w, wr / wr.sum(), atol=1e-14)


@pytest.mark.slow
def test_quadrature_converges(x64):
    # The critical σ_w² at σ_b² = 2 (q* ≈ 4.8, the hardest point) settles as nodes are added.
    vals = [float(jaxgrad.analysis.critical_sigma_w2(2.0, num_points=n).sigma_w2) for n in (60, 120,
                                                                                            240)]
    diffs = np.abs(np.diff(vals))
    assert diffs[0] > 10 * diffs[1]
    assert diffs[1] / vals[-1] < 1e-3


# ----------------------------------------------------------------------------- closed forms


def test_identity_activation_maps_are_linear(x64):
    sw, sb, q, c = 1.7, 0.3, 0.8, 0.4
    assert float(jaxgrad.analysis.q_map(q, sw, sb,
                                        activation="identity")) == pytest.approx(sw * q + sb)
    got = float(jaxgrad.analysis.c_map(c, sw, sb, q=q, activation="identity"))
    assert got == pytest.approx((sw * q * c + sb) / (sw * q + sb), rel=1e-12)


def test_relu_closed_forms(x64):
    sw, sb, q = 1.7, 0.2, 1.3
    assert float(jaxgrad.analysis.q_map(q, sw, sb,
                                        activation="relu")) == pytest.approx(sw * q / 2 + sb)
    assert float(jaxgrad.chi_1(3.0, 0.5, q=1.0, activation="relu")) == pytest.approx(1.5)
    # q* = σ_b² / (1 - σ_w²/2) for σ_w² < 2; none for σ_w² > 2, which is reported.
    assert float(jaxgrad.analysis.q_star(1.5, 0.5, activation="relu").q) == pytest.approx(2.0)
    assert not bool(jaxgrad.analysis.q_star(3.0, 0.5, activation="relu").converged)
    cp = jaxgrad.analysis.critical_sigma_w2(0.0, activation="relu")
    assert bool(cp.found) and float(cp.sigma_w2) == pytest.approx(2.0, rel=1e-12)
    # No finite critical q* for ReLU with a bias: reported, not invented.
    cp = jaxgrad.analysis.critical_sigma_w2(0.1, activation="relu")
    assert not bool(cp.found) and math.isnan(float(cp.sigma_w2))
    # c-map against the arc-cosine kernel (Cho & Saul 2009), now in closed form.
    for c in (0.0, 0.5, 0.9):
        num = sw * q / (2 * math.pi) * (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) + sb
        got = float(jaxgrad.analysis.c_map(c, sw, sb, q=q, activation="relu"))
        assert got == pytest.approx(num / (sw * q / 2 + sb), abs=1e-14)


def _np_arc_cosine_c_map(c, sw, sb, q):
    """ReLU c-map from the arc-cosine kernel in NumPy; at q = 0, σ_b² = 0 its q → 0⁺ limit."""
    theta = np.arccos(c)
    j = np.sqrt(1 - c * c) + (np.pi - theta) * c
    if q == 0 and sb == 0:
        return j / np.pi
    return (sw * q * j / (2 * np.pi) + sb) / (sw * q / 2 + sb)


@pytest.mark.parametrize("sw, sb, q", [(1.7, 0.2, 1.3), (2.0, 0.0, 0.0), (1.5, 0.0, 0.0),
                                       (0.3, 0.0, 1e-30), (2.0, 0.0, 1e30), (3.0, 1e-3, 5.0),
                                       (1.0, 2.0, 0.0)])
def test_relu_c_map_matches_arc_cosine_kernel(x64, sw, sb, q):
    # 201 correlations in [-1, 1]; the old 100-node product rule was off by up to 2.5e-3
    # (the kink) and gave 0/0 = NaN at q = 0, σ_b² = 0.
    c = np.linspace(-1.0, 1.0, 201)
    got = jax.vmap(lambda c: jaxgrad.analysis.c_map(c, sw, sb, q=q,
                                                    activation="relu"))(jnp.asarray(c))
    np.testing.assert_allclose(got, _np_arc_cosine_c_map(c, sw, sb, q), rtol=0, atol=1e-12)
    # the callable takes the same closed form
    got = jaxgrad.analysis.c_map(0.25, sw, sb, q=q, activation=jax.nn.relu)
    assert float(got) == pytest.approx(float(_np_arc_cosine_c_map(0.25, sw, sb, q)), abs=1e-12)


def test_relu_c_map_float32():
    c = np.linspace(-1.0, 1.0, 101)
    got = jax.vmap(lambda c: jaxgrad.analysis.c_map(c, 1.7, 0.2, q=1.3, activation="relu"))(
        jnp.asarray(c, jnp.float32))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, _np_arc_cosine_c_map(c, 1.7, 0.2, 1.3), atol=1e-6)


def test_relu_at_zero_bias_has_chi_sigma_w2_over_2(x64):
    # σ_b² = 0: q* = 0 below σ_w² = 2, every q is fixed at σ_w² = 2, q grows above it.
    # χ₁ = σ_w²/2 at every q > 0 and in the limit q → 0⁺ (ReLU is positively homogeneous);
    # the old code took relu'(0) = 0 at q* = 0 and returned χ₁ = 0 with converged = True.
    for sw in (0.5, 1.5, 2.0, 3.0):
        assert float(jaxgrad.chi_1(sw, 0.0, activation="relu")) == pytest.approx(sw / 2, rel=1e-15)
        assert float(jaxgrad.chi_1(sw, 0.0, q=0.0, activation="relu")) == sw / 2
    ds = jaxgrad.analysis.depth_scales(2.0, 0.0, activation="relu")  # critical
    assert bool(ds.converged)
    assert float(ds.chi_1) == 1.0 and float(ds.q_slope) == 1.0 and float(ds.c_star) == 1.0
    assert float(ds.xi_q) == math.inf and float(ds.xi_c) == math.inf
    ds = jaxgrad.analysis.depth_scales(1.5, 0.0, activation="relu")
    assert bool(ds.converged) and float(ds.q_star) == 0.0
    assert float(ds.chi_1) == 0.75 and float(ds.q_slope) == 0.75
    assert float(ds.xi_q) == pytest.approx(-1 / math.log(0.75), rel=1e-14)
    # The c-map at q* = 0 is (sin θ + (π - θ) c)/π whatever σ_w²: c* = 1 with slope 1 (ξ_c = ∞;
    # correlations approach 1 polynomially), the slope of the map the layers actually follow.
    assert float(ds.c_star) == 1.0 and float(ds.c_slope) == 1.0 and float(ds.xi_c) == math.inf
    dc = jax.grad(lambda c: jaxgrad.analysis.c_map(c, 1.5, 0.0, q=ds.q_star,
                                                   activation="relu"))(1.0)
    assert float(dc) == pytest.approx(1.0, rel=1e-14)
    a = jaxgrad.analysis.mean_field_trajectory(1.0, 0.2, 1.5, 0.0, depth=60, activation="relu")
    b = jaxgrad.analysis.mean_field_trajectory(1.0, 0.2, 0.5, 0.0, depth=60, activation="relu")
    np.testing.assert_allclose(a.c, b.c, rtol=1e-14)
    # 1 - c^l ~ 1/l²: doubling the depth divides it by ~4 (ξ_c = 3.5 would: 5000)
    assert bool(jnp.all(jnp.diff(a.c) > 0))
    assert 2.5 < (1 - float(a.c[29])) / (1 - float(a.c[59])) < 4.5
    # Above σ_w² = 2 the only solution, q = 0, repels: not a converged q*.
    qs = jaxgrad.analysis.q_star(3.0, 0.0, activation="relu")
    assert float(qs.q) == 0.0 and not bool(qs.converged)
    assert not bool(jaxgrad.analysis.depth_scales(3.0, 0.0, activation="relu").converged)
    # The critical point is still found.
    cp = jaxgrad.analysis.critical_sigma_w2(0.0, activation="relu")
    assert bool(cp.found) and float(cp.sigma_w2) == 2.0


@pytest.mark.slow
def test_erf_matches_arcsine_kernel(x64):
    # Williams (1997): E erf(u₁) erf(u₂) = (2/π) arcsin(2qc / (1 + 2q)), checked against a
    # callable wrapper (which takes the quadrature route, with jax.grad derivatives).
    erf = jax.scipy.special.erf

    def wrapped(x):
        return erf(x)

    c = jnp.linspace(-1.0, 1.0, 21)
    c_maps = jax.jit(jax.vmap(lambda c, w, b, q, act: jaxgrad.analysis.c_map(
        c, w, b, q=q, activation=act),
        in_axes=(0, None, None, None, None)), static_argnums=4)
    for sw, sb, q in ((1.3, 0.1, 0.7), (2.0, 0.0, 2.0)):
        assert float(jaxgrad.analysis.q_map(q, sw, sb, activation="erf")) == pytest.approx(
            sw * 2 / math.pi * math.asin(2 * q / (1 + 2 * q)) + sb, rel=1e-14)
        assert float(jaxgrad.analysis.q_map(q, sw, sb, activation="erf")) == pytest.approx(
            float(jaxgrad.analysis.q_map(q, sw, sb, activation=wrapped)), rel=1e-12)
        assert float(jaxgrad.chi_1(sw, sb, q=q, activation=erf)) == pytest.approx(
            sw * 4 / math.pi / math.sqrt(1 + 4 * q), rel=1e-14)
        assert float(jaxgrad.chi_1(sw, sb, q=q, activation="erf")) == pytest.approx(
            float(jaxgrad.chi_1(sw, sb, q=q, activation=wrapped)), rel=1e-12)
        closed = c_maps(c, sw, sb, q, "erf")
        quad = c_maps(c, sw, sb, q, wrapped)
        np.testing.assert_allclose(closed, quad, atol=1e-12)
        ref = (sw * 2 / np.pi * np.arcsin(2 * q * np.asarray(c) / (1 + 2 * q)) + sb) / (
            sw * 2 / np.pi * np.arcsin(2 * q / (1 + 2 * q)) + sb)
        np.testing.assert_allclose(closed, ref, atol=1e-14)
    # q-map slope (χ₁ + σ_w² E φ''φ) and c-map slope against autodiff of the maps.
    ds = jaxgrad.analysis.depth_scales(3.0, 0.2, activation="erf")
    assert bool(ds.converged) and 0 < float(ds.c_star) < 1
    dq = jax.grad(lambda q: jaxgrad.analysis.q_map(q, 3.0, 0.2, activation="erf"))(ds.q_star)
    assert float(ds.q_slope) == pytest.approx(float(dq), rel=1e-13)
    dc = jax.grad(lambda c: jaxgrad.analysis.c_map(c, 3.0, 0.2, q=ds.q_star,
                                                   activation="erf"))(ds.c_star)
    assert float(ds.c_slope) == pytest.approx(float(dc), rel=1e-13)
    # Critical line: q* = 0 and χ₁ = σ_w² erf'(0)² = 4σ_w²/π at σ_b² = 0.
    cp = jaxgrad.analysis.critical_sigma_w2(0.0, activation="erf")
    assert bool(cp.found) and float(cp.sigma_w2) == pytest.approx(math.pi / 4, rel=1e-11)
    w2c = float(jaxgrad.analysis.critical_sigma_w2(0.5, activation="erf").sigma_w2)
    assert float(jaxgrad.chi_1(w2c, 0.5, activation="erf")) == pytest.approx(1.0, abs=1e-10)


def _np_expect(f):
    from scipy import integrate

    def g(z):
        return f(z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

    return integrate.quad(g, -40, 40, points=[0], epsabs=1e-15, epsrel=1e-13, limit=500)[0]


@pytest.mark.slow
def test_tanh_quadrature_accuracy_at_default_nodes(x64):
    # The accuracy table of the module docstring, against scipy.integrate.quad (1-D) and a
    # fine trapezoid rule (2-D, spectrally accurate for these analytic integrands).
    bounds = {0.5: (1e-14, 1e-14, 1e-12), 3.0: (2e-9, 1e-7, 2e-6), 10.0: (3e-5, 2e-3, 1e-3)}
    h = 0.02
    z = np.arange(-9.0, 9.0 + h / 2, h)
    w = np.exp(-z * z / 2) / math.sqrt(2 * math.pi) * h
    cs = np.linspace(-1.0, 1.0, 7)
    c_maps = jax.jit(jax.vmap(lambda c, q: jaxgrad.analysis.c_map(c, 1.0, 0.0, q=q),
                              in_axes=(0, None)))
    for q, (tol_q, tol_chi, tol_c) in bounds.items():
        s = math.sqrt(q)
        m2 = _np_expect(lambda z, s=s: math.tanh(s * z) ** 2)
        d1 = _np_expect(lambda z, s=s: (1 - math.tanh(s * z) ** 2) ** 2)
        assert float(jaxgrad.analysis.q_map(q, 1.0, 0.0)) == pytest.approx(m2, rel=tol_q)
        assert float(jaxgrad.chi_1(1.0, 0.0, q=q)) == pytest.approx(d1, rel=tol_chi)
        ta = np.tanh(s * z)[:, None]
        for c, g in zip(cs, np.asarray(c_maps(jnp.asarray(cs), q)), strict=True):
            tb = np.tanh(s * (c * z[:, None] + math.sqrt(max(1 - c * c, 0.0)) * z[None, :]))
            ref = np.sum(w[:, None] * w[None, :] * ta * tb) / m2
            assert abs(g - ref) <= tol_c


@pytest.mark.slow
def test_tanh_at_q_star_zero_reports_no_correlation_fixed_point(x64):
    # σ_b² = 0, σ_w² < 1: q* = 0 and the c-map tends to the identity (every correlation is
    # kept), so c* is undefined: NaN and not converged (the old code said c* = 1, converged).
    for act in ("tanh", "erf"):
        ds = jaxgrad.analysis.depth_scales(0.5, 0.0, activation=act)
        assert float(ds.q_star) == 0.0 and not bool(ds.converged)
        assert math.isnan(float(ds.c_star)) and float(ds.c_slope) == 1.0
        assert float(ds.xi_c) == math.inf
        assert float(ds.xi_q) == pytest.approx(-1 / math.log(float(ds.chi_1)), rel=1e-12)
        # the c-map at q = 0 is its limit q → 0⁺, the identity (the old code: 0/0 = NaN)
        assert float(jaxgrad.analysis.c_map(0.3, 0.5, 0.0, q=0.0, activation=act)) == pytest.approx(
            0.3, abs=1e-14)
    assert float(jaxgrad.analysis.depth_scales(0.5, 0.0).chi_1) == pytest.approx(0.5, rel=1e-14)
    assert float(jaxgrad.analysis.depth_scales(0.5, 0.0, activation="erf").chi_1) == pytest.approx(
        2 / math.pi, rel=1e-14)
    # Deep layers: q^l underflows to 0 after ~1075 layers; c^l stays at its plateau.
    traj = jaxgrad.analysis.mean_field_trajectory(1.0, 0.3, 0.5, 0.0, depth=1100)
    assert float(traj.q[-1]) == 0.0 and bool(jnp.all(jnp.isfinite(traj.c)))
    assert float(traj.c[-1]) == pytest.approx(float(traj.c[60]), rel=1e-12)
    # the identity activation at σ_w² = 1, σ_b² = 0: every q and every c is fixed
    ds = jaxgrad.analysis.depth_scales(1.0, 0.0, activation="identity")
    assert math.isnan(float(ds.c_star)) and not bool(ds.converged)


def test_q_star_converged_is_honest(x64):
    # A repelling fixed point is not converged: tanh at σ_w² > 1, σ_b² = 0 started at q = 0.
    qs = jaxgrad.analysis.q_star(1.5, 0.0, q0=0.0)
    assert float(qs.q) == 0.0 and float(qs.residual) == 0.0 and not bool(qs.converged)
    assert bool(jaxgrad.analysis.q_star(1.5, 0.0).converged)
    # Too few steps: converged is False, and matches the residual test.
    tol = math.sqrt(np.finfo(np.float64).eps)
    for kw in (dict(num_iterations=3, num_newton=0), dict(num_iterations=0, num_newton=1),
               dict(num_iterations=0, num_newton=30)):
        qs = jaxgrad.analysis.q_star(1.5, 0.1, **kw)
        assert bool(qs.converged) == (float(qs.residual) <= tol * (1 + float(qs.q)))
    assert not bool(jaxgrad.analysis.q_star(1.5, 0.1, num_iterations=3, num_newton=0).converged)
    assert bool(jaxgrad.analysis.q_star(1.5, 0.1, num_iterations=0, num_newton=30).converged)
    # No step at all is refused.
    with pytest.raises(ValueError, match="num_iterations.*num_newton"):
        jaxgrad.analysis.q_star(1.5, 0.1, num_iterations=0, num_newton=0)
    with pytest.raises(ValueError, match="num_iterations.*num_newton"):
        jaxgrad.analysis.depth_scales(1.5, 0.1, num_iterations=0, num_newton=0)


@pytest.mark.slow
def test_closed_form_paths_jit_and_vmap(x64):
    w2 = jnp.asarray([0.5, 1.5, 3.0])
    b2 = jnp.asarray([0.0, 0.3, 0.1])
    for act in ("relu", "erf"):
        def fn(w, b, act=act):
            ds = jaxgrad.analysis.depth_scales(w, b, activation=act)
            return jnp.stack([ds.q_star, ds.chi_1, ds.c_star, ds.q_slope, ds.c_slope,
                              jaxgrad.analysis.c_map(0.3, w, b, q=1.2, activation=act)])

        loop = jnp.stack([fn(w, b) for w, b in zip(w2, b2, strict=True)])
        np.testing.assert_allclose(jax.vmap(fn)(w2, b2), loop, rtol=1e-14)
        np.testing.assert_allclose(jax.jit(fn)(w2[1], b2[1]), loop[1], rtol=1e-14)
    # autodiff of the closed forms: finite at c = ±1, equal to the kernels' derivatives
    for c in (-1.0, -0.4, 0.6, 1.0):
        dc = jax.grad(lambda c: jaxgrad.analysis.c_map(c, 1.7, 0.2, q=1.3, activation="relu"))(c)
        ref = 1.7 * 1.3 * (math.pi - math.acos(c)) / (2 * math.pi) / (1.7 * 1.3 / 2 + 0.2)
        assert float(dc) == pytest.approx(ref, rel=1e-13, abs=1e-15)


def test_tanh_without_bias(x64):
    # σ_b² = 0, σ_w² < 1: q* = 0 and χ₁ = σ_w² tanh'(0)² = σ_w²; the critical σ_w² is 1.
    for sw in (0.3, 0.8):
        qs = jaxgrad.analysis.q_star(sw, 0.0)
        assert bool(qs.converged) and float(qs.q) < 1e-10
        assert float(jaxgrad.chi_1(sw, 0.0)) == pytest.approx(sw, rel=1e-8)
    cp = jaxgrad.analysis.critical_sigma_w2(0.0)
    assert bool(cp.found) and float(cp.sigma_w2) == pytest.approx(1.0, abs=1e-10)
    # σ_w² > 1 at σ_b² = 0 is chaotic: χ₁ > 1 and c* = 0 (odd φ, no bias).
    ds = jaxgrad.analysis.depth_scales(1.5, 0.0)
    assert float(ds.chi_1) > 1 and float(ds.c_star) == pytest.approx(0.0, abs=1e-10)


def test_small_bias_asymptotics(x64):
    # Near σ_b² = 0: B(q) = 4q³/3 + O(q⁴) and σ_w² = 1 + 2q - 3q² + ..., derived from the
    # Taylor series of tanh², sech⁴.
    sb = 1e-7
    q = (3 * sb / 4) ** (1 / 3)
    cp = jaxgrad.analysis.critical_sigma_w2(sb)
    assert float(cp.q_star) == pytest.approx(q, rel=0.05)
    assert float(cp.sigma_w2) - 1 == pytest.approx(2 * q - 3 * q * q, rel=0.05)


def test_critical_line_against_numpy_reference(x64):
    for sb in (0.05, 0.5, 2.0):
        got = float(jaxgrad.analysis.critical_sigma_w2(sb, num_points=300).sigma_w2)
        assert got == pytest.approx(_np_critical(sb), rel=1e-6)


def test_critical_line_is_chi_one_and_increasing(x64):
    crit = jax.vmap(jaxgrad.analysis.critical_sigma_w2)(jnp.asarray(SIGMA_B2))
    assert bool(jnp.all(crit.found))
    assert bool(jnp.all(jnp.diff(crit.sigma_w2) > 0))
    # The other route: q* by iterating the q-map at the critical σ_w², then χ₁.
    chi = jax.vmap(lambda w, b: jaxgrad.chi_1(w, b))(crit.sigma_w2, jnp.asarray(SIGMA_B2))
    np.testing.assert_allclose(chi, 1.0, atol=1e-8)
    np.testing.assert_allclose(crit.q_star[1:],
                               jax.vmap(lambda w, b: jaxgrad.analysis.q_star(w, b).q)(
        crit.sigma_w2[1:], jnp.asarray(SIGMA_B2[1:])), rtol=1e-7)


def test_q_star_against_numpy_reference(x64):
    for sw, sb in ((0.7, 0.1), (1.76, 0.05), (4.0, 2.0)):
        qs = jaxgrad.analysis.q_star(sw, sb, num_points=300)
        assert bool(qs.converged)
        assert float(qs.q) == pytest.approx(_np_q_star(sw, sb), rel=1e-9)
        assert float(jaxgrad.analysis.q_map(qs.q, sw, sb,
                                            num_points=300)) == pytest.approx(float(qs.q),
                                                                                  rel=1e-12)


def test_c_map_fixed_points(x64):
    assert float(jaxgrad.analysis.c_map(1.0, 1.5, 0.1)) == pytest.approx(1.0, rel=1e-10)
    ds = jaxgrad.analysis.depth_scales(3.0, 0.3)  # chaotic: a stable c* < 1
    assert float(ds.chi_1) > 1 and bool(ds.converged)
    c = float(ds.c_star)
    assert 0 < c < 1
    assert float(jaxgrad.analysis.c_map(c, 3.0, 0.3)) == pytest.approx(c, abs=1e-9)
    ds = jaxgrad.analysis.depth_scales(1.0, 0.3)  # ordered: c* = 1 and ξ_c = -1/log χ₁
    assert float(ds.c_star) == 1.0
    assert float(ds.xi_c) == pytest.approx(-1 / math.log(float(ds.chi_1)), rel=1e-12)


def test_depth_scale_slopes_equal_derivatives_of_the_maps(x64):
    # ξ_q: χ₁ + σ_w² E φ''φ is the derivative of the q-map at q* (Gaussian integration by
    # parts); ξ_c: σ_w² E φ'(u₁)φ'(u₂) is the derivative of the c-map at c*.
    for sw, sb in ((1.2, 0.05), (3.0, 0.3)):
        ds = jaxgrad.analysis.depth_scales(sw, sb)
        dq = jax.grad(lambda q: jaxgrad.analysis.q_map(q, sw, sb))(ds.q_star)
        assert float(ds.q_slope) == pytest.approx(float(dq), rel=1e-7)
        assert float(ds.xi_q) == pytest.approx(-1 / math.log(float(dq)), rel=1e-6)
    ds = jaxgrad.analysis.depth_scales(3.0, 0.3)
    dc = jax.grad(lambda c: jaxgrad.analysis.c_map(c, 3.0, 0.3, q=ds.q_star))(ds.c_star)
    assert float(ds.c_slope) == pytest.approx(float(dc), rel=1e-7)
    # At the critical point ξ_c diverges.
    w2c = jaxgrad.analysis.critical_sigma_w2(0.05).sigma_w2
    assert float(jaxgrad.analysis.depth_scales(w2c * (1 - 1e-6), 0.05).xi_c) > 1e4


# ----------------------------------------------------------------------------- jit, vmap, grad


@pytest.mark.slow
def test_jit_and_vmap_match_eager():
    w2 = jnp.asarray([0.8, 1.5, 3.0])
    b2 = jnp.asarray([0.0, 0.05, 1.0])
    for fn in (lambda w, b: jaxgrad.analysis.c_map(0.3, w, b), lambda w,
               b: jaxgrad.analysis.depth_scales(w, b).xi_c):
        loop = jnp.stack([fn(w, b) for w, b in zip(w2, b2, strict=True)])
        np.testing.assert_allclose(jax.vmap(fn)(w2, b2), loop, rtol=1e-5)
        np.testing.assert_allclose(jax.jit(fn)(w2[1], b2[1]), loop[1], rtol=1e-5)
    crit = jax.jit(jax.vmap(lambda b: jaxgrad.analysis.critical_sigma_w2(b).sigma_w2))(b2)
    np.testing.assert_allclose(crit, [float(jaxgrad.analysis.critical_sigma_w2(float(b)).sigma_w2)
                                      for b in b2], rtol=1e-6)


def test_no_recompilation_on_new_values():
    jaxgrad.analysis.q_star(1.3, 0.2)
    jaxgrad.analysis.critical_sigma_w2(0.3)
    sizes = (sp._q_star._cache_size(), sp._critical._cache_size())
    jaxgrad.analysis.q_star(2.1, 0.7)
    jaxgrad.analysis.critical_sigma_w2(1.1)
    assert (sp._q_star._cache_size(), sp._critical._cache_size()) == sizes


@pytest.mark.slow
def test_gradients_match_finite_differences(x64):
    check_grads(lambda w, b: jaxgrad.analysis.q_map(0.7, w, b), (1.5, 0.2), order=2,
                modes=("fwd", "rev"))
    check_grads(lambda w, b: jaxgrad.analysis.q_star(w, b).q, (1.5, 0.2), order=1,
                modes=("fwd", "rev"))
    check_grads(lambda w, b: jaxgrad.chi_1(w, b), (1.5, 0.2), order=1, modes=("fwd", "rev"))
    check_grads(lambda c: jaxgrad.analysis.c_map(c, 2.0, 0.1), (0.4,), order=1,
                modes=("fwd", "rev"))
    # critical line: implicit differentiation of B(q*) = σ_b².
    check_grads(lambda b: jaxgrad.analysis.critical_sigma_w2(b).sigma_w2, (0.5,), order=1,
                modes=("fwd", "rev"))


# ----------------------------------------------------------------------------- random MLPs


@pytest.mark.slow
def test_random_mlp_inputs_and_determinism():
    key = jax.random.key(3)
    s = jaxgrad.analysis.random_mlp_signal(1.5, 0.05, key=key, width=200, depth=5, q0=2.0, c0=0.3)
    assert s.q.shape == s.q_b.shape == s.c.shape == s.log_chi.shape == (5,)
    s2 = jaxgrad.analysis.random_mlp_signal(1.5, 0.05, key=key, width=200, depth=5, q0=2.0, c0=0.3)
    np.testing.assert_array_equal(s.log_chi, s2.log_chi)
    # depth 1: q¹ and c¹ given layer-0 inputs of exact length q0 and correlation c0 are the
    # maps of (q0, c0) up to O(1/√N) fluctuations.
    many = jax.vmap(lambda k: jaxgrad.analysis.random_mlp_signal(1.5, 0.05, key=k, width=400,
                                                                 depth=1,
                                                                 q0=2.0, c0=0.3))(
        jax.random.split(key, 32))
    th = jaxgrad.analysis.mean_field_trajectory(2.0, 0.3, 1.5, 0.05, depth=1)
    assert float(many.q.mean()) == pytest.approx(float(th.q[0]), rel=0.03)
    assert float(many.c.mean()) == pytest.approx(float(th.c[0]), abs=0.03)


@pytest.mark.slow
def test_random_mlp_matches_theory():
    key = jax.random.key(0)
    w2 = jnp.asarray([1.0, 3.0])
    s = jax.vmap(lambda k: jax.vmap(lambda w: jaxgrad.analysis.random_mlp_signal(
        w, 0.1, key=k, width=600, depth=25, q0=1.0, c0=0.5))(w2))(jax.random.split(key, 4))
    th = jax.vmap(lambda w: jaxgrad.analysis.mean_field_trajectory(1.0, 0.5, w, 0.1, depth=25))(w2)
    assert float(jnp.sqrt(jnp.mean((s.q.mean(0) / th.q - 1) ** 2))) < 0.05
    assert float(jnp.sqrt(jnp.mean((s.c.mean(0) - th.c) ** 2))) < 0.06
    chi_hat = jnp.exp(s.log_chi[:, :, 10:]).mean((0, 2))
    chi = jax.vmap(lambda w: jaxgrad.chi_1(w, 0.1))(w2)
    np.testing.assert_allclose(chi_hat, chi, rtol=0.05)
    assert float(chi_hat[0]) < 1 < float(chi_hat[1])  # ordered, chaotic


# ----------------------------------------------------------------------------- bad input


def test_bad_input():
    with pytest.raises(ValueError, match="sigma_w2"):
        jaxgrad.analysis.q_map(1.0, 0.0, 0.1)
    with pytest.raises(ValueError, match="sigma_b2"):
        jaxgrad.chi_1(1.0, -0.1)
    with pytest.raises(ValueError, match="sigma_b2"):
        jaxgrad.analysis.critical_sigma_w2(float("nan"))
    with pytest.raises(ValueError, match="`q`"):
        jaxgrad.analysis.q_map(-1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match="`q` must be a scalar"):
        jaxgrad.analysis.q_map(jnp.ones(3), 1.0, 0.1)
    with pytest.raises(ValueError, match="`c`"):
        jaxgrad.analysis.c_map(1.5, 1.0, 0.1)
    with pytest.raises(ValueError, match="activation"):
        jaxgrad.analysis.q_star(1.0, 0.1, activation="swish")
    with pytest.raises(TypeError, match="activation"):
        jaxgrad.analysis.depth_scales(1.0, 0.1, activation=3)
    with pytest.raises(ValueError, match="num_points"):
        jaxgrad.chi_1(1.0, 0.1, num_points=0)
    with pytest.raises(TypeError, match="num_points_2d"):
        jaxgrad.analysis.c_map(0.5, 1.0, 0.1, num_points_2d=2.5)
    with pytest.raises(ValueError, match="depth"):
        jaxgrad.analysis.mean_field_trajectory(1.0, 0.5, 1.0, 0.1, depth=0)
    with pytest.raises(ValueError, match="c0"):
        jaxgrad.analysis.mean_field_trajectory(1.0, -2.0, 1.0, 0.1, depth=3)
    with pytest.raises(TypeError, match="sigma_w2"):
        jaxgrad.analysis.q_star("big", 0.1)
    with pytest.raises(TypeError, match="sigma_w2"):
        jaxgrad.analysis.q_star(None, 0.1)
    with pytest.raises(TypeError, match="key"):
        jaxgrad.analysis.random_mlp_signal(1.0, 0.1, key=0, width=10, depth=2)
    with pytest.raises(ValueError, match="width"):
        jaxgrad.analysis.random_mlp_signal(1.0, 0.1, key=jax.random.key(0), width=1, depth=2)
    with pytest.raises(ValueError, match="q0"):
        jaxgrad.analysis.random_mlp_signal(1.0, 0.1, key=jax.random.key(0), width=10, depth=2,
                                           q0=0.0)
    with pytest.raises(ValueError, match="num_iterations"):
        jaxgrad.analysis.q_star(1.0, 0.1, num_iterations=-1)
