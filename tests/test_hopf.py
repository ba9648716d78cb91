"""Hopf (flow) and Neimark-Sacker (map) points: detection along a branch, location on the
extended system, frequency and first Lyapunov coefficient.

References with closed forms: the Hopf normal form ẇ = (μ + iω) w - s w|w|² (Hopf at μ = 0,
frequency ω, l1 = -2s/ω with Kuznetsov's normalisation ⟨q, q⟩ = ⟨p, q⟩ = 1); planar
systems ẋ = μx - ωy + f, ẏ = ωx + μy + g against the coefficient ``a`` of Guckenheimer &
Holmes (1983), eq. (3.4.11) (l1 = 2a/ω); a 3-D system whose centre manifold carries the
cubic term; FitzHugh-Nagumo (trace = 0, det > 0); the rate network ẋ = -x + W tanh(x) with
W = g [[1, -1], [1, 1]] (Hopf at g = 1, ω = 1, l1 = -1/2); the delayed logistic map
x' = r x (1 - y), y' = x (Neimark-Sacker at r = 2, θ = π/3), its coefficient checked against
the radius of the invariant circle by iteration.
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad


def _normal_form(x, u, p):
    r2 = x[0] ** 2 + x[1] ** 2
    return jnp.stack([p["mu"] * x[0] - p["w"] * x[1] - p["s"] * x[0] * r2,
                      p["w"] * x[0] + p["mu"] * x[1] - p["s"] * x[1] * r2])


NORMAL_FORM = jaxgrad.vector_field(_normal_form)


def _rate(x, u, p):
    t = jnp.tanh(x)
    return -x + p["g"] * jnp.stack([t[0] - t[1], t[0] + t[1]])


RATE = jaxgrad.vector_field(_rate)

FHN_P = {"I": 0.0, "eps": 0.08, "a": 0.7, "b": 0.8}


def _fhn(z, u, p):
    v, w = z[0], z[1]
    return jnp.stack([v - v ** 3 / 3 - w + p["I"], p["eps"] * (v + p["a"] - p["b"] * w)])


FHN = jaxgrad.vector_field(_fhn)


def _delayed_logistic(z, r):
    return jnp.stack([r * z[0] * (1.0 - z[1]), z[0]])


DELAYED_LOGISTIC = jaxgrad.autonomous(_delayed_logistic)


def _hopfs(branch):
    return [bp for bp in branch.bifurcations if bp.kind == "hopf"]


# --------------------------------------------------------------------------- normal form


@pytest.mark.parametrize("s", [1.0, -1.0])
@pytest.mark.parametrize("w", [0.5, 2.0])
def test_normal_form_branch_detects_one_hopf(x64, s, w):
    params = {"mu": -0.5, "w": w, "s": s}
    br = jaxgrad.continue_branch(NORMAL_FORM, jnp.zeros(2), params=params, param="mu",
                                 p_range=(-0.5, 0.5), ds=0.05, num_steps=60)
    assert [bp.kind for bp in br.bifurcations] == ["hopf"]
    bp = br.bifurcations[0]
    assert bool(bp.converged)
    np.testing.assert_allclose(float(bp.p), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(bp.x), [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(float(bp.frequency), w, rtol=1e-12)
    # s > 0: the cubic term pulls back, a stable cycle for μ > 0 (supercritical, l1 < 0).
    np.testing.assert_allclose(float(bp.first_lyapunov_coefficient), -2 * s / w, rtol=1e-10)
    ev = np.sort_complex(np.asarray(bp.eigenvalues))
    np.testing.assert_allclose(ev, [-1j * w, 1j * w], atol=1e-12)
    q = np.asarray(bp.null_vector)
    J = np.array([[0.0, -w], [w, 0.0]])
    np.testing.assert_allclose(J @ q, 1j * w * q, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(q), 1.0, rtol=1e-12)


def _gh_coefficient(c, w):
    """Guckenheimer & Holmes (3.4.11) for ẋ = -ωy + f, ẏ = ωx + g with the polynomial
    coefficients c[name] of f, g (f = Σ c["f", i, j] x^i y^j, likewise g)."""
    def d(fn, i, j):  # ∂^{i+j}/∂x^i ∂y^j at 0
        return c.get((fn, i, j), 0.0) * math.factorial(i) * math.factorial(j)

    fxxx, fxyy, gxxy, gyyy = d("f", 3, 0), d("f", 1, 2), d("g", 2, 1), d("g", 0, 3)
    fxy, fxx, fyy = d("f", 1, 1), d("f", 2, 0), d("f", 0, 2)
    gxy, gxx, gyy = d("g", 1, 1), d("g", 2, 0), d("g", 0, 2)
    return ((fxxx + fxyy + gxxy + gyyy) / 16
            + (fxy * (fxx + fyy) - gxy * (gxx + gyy) - fxx * gxx + fyy * gyy) / (16 * w))


MONOMIALS = [(i, j) for i in range(4) for j in range(4) if 2 <= i + j <= 3]


def _polynomial_field(x, u, p):
    terms = jnp.stack([x[0] ** i * x[1] ** j for i, j in MONOMIALS])
    return jnp.stack([p["mu"] * x[0] - p["w"] * x[1] + p["cf"] @ terms,
                      p["w"] * x[0] + p["mu"] * x[1] + p["cg"] @ terms])


POLYNOMIAL = jaxgrad.vector_field(_polynomial_field)


@pytest.mark.parametrize("seed", range(5))
def test_first_lyapunov_coefficient_matches_guckenheimer_holmes(x64, seed):
    rng = np.random.default_rng(seed)
    cf, cg = rng.normal(size=len(MONOMIALS)), rng.normal(size=len(MONOMIALS))
    w = float(rng.uniform(0.5, 3.0))
    params = {"mu": 0.05, "w": w, "cf": jnp.asarray(cf), "cg": jnp.asarray(cg)}
    bp = jaxgrad.locate_bifurcation(POLYNOMIAL, jnp.zeros(2), params=params, param="mu",
                                    bifurcation="hopf")
    assert bool(bp.converged)
    np.testing.assert_allclose([float(bp.p), float(bp.frequency)], [0.0, w], atol=1e-12)
    coeffs = {("f", i, j): a for (i, j), a in zip(MONOMIALS, cf, strict=True)}
    coeffs |= {("g", i, j): a for (i, j), a in zip(MONOMIALS, cg, strict=True)}
    a = _gh_coefficient(coeffs, w)
    np.testing.assert_allclose(float(bp.first_lyapunov_coefficient), 2 * a / w, rtol=1e-10)


def _centre_manifold_field(x, u, p):
    y = p["Q"].T @ x
    r2 = y[0] ** 2 + y[1] ** 2
    dy = jnp.stack([p["mu"] * y[0] - p["w"] * y[1] + y[0] * y[2],
                    p["w"] * y[0] + p["mu"] * y[1] + y[1] * y[2],
                    -y[2] + p["k"] * r2])
    return p["Q"] @ dy


CENTRE_MANIFOLD = jaxgrad.vector_field(_centre_manifold_field)


@pytest.mark.parametrize("k", [0.7, -1.3])
def test_first_lyapunov_coefficient_through_the_centre_manifold(x64, k):
    """ż = -z + k r² puts z = k r² + O(r⁴) on the centre manifold, so the planar part
    becomes ẇ = iω w + k w|w|²: l1 = 2k/ω, unchanged by a rotation Q of the state."""
    Q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))
    params = {"mu": -0.2, "w": 1.5, "k": k, "Q": jnp.asarray(Q)}
    br = jaxgrad.continue_branch(CENTRE_MANIFOLD, jnp.zeros(3), params=params, param="mu",
                                 p_range=(-0.2, 0.3), ds=0.05, num_steps=40)
    assert [bp.kind for bp in br.bifurcations] == ["hopf"]
    bp = br.bifurcations[0]
    assert bool(bp.converged)
    np.testing.assert_allclose(float(bp.p), 0.0, atol=1e-12)
    np.testing.assert_allclose(float(bp.frequency), 1.5, rtol=1e-12)
    np.testing.assert_allclose(float(bp.first_lyapunov_coefficient), 2 * k / 1.5, rtol=1e-10)


# --------------------------------------------------------------------------- examples


def test_fitzhugh_nagumo_hopf_current(x64):
    """Hopf where trace J = 1 - v² - εb = 0 with det J = ε(1 - b(1 - v²)) > 0."""
    eps, a, b = FHN_P["eps"], FHN_P["a"], FHN_P["b"]
    v = -math.sqrt(1 - eps * b)
    current = v ** 3 / 3 - v + (v + a) / b
    omega = math.sqrt(eps * (1 - eps * b * b))
    # The unique equilibrium at I = 0 (b < 1: one root), by NumPy.
    roots = np.roots([-1 / 3, 0.0, 1 - 1 / b, -a / b])
    v0 = float(np.real(roots[np.abs(np.imag(roots)) < 1e-12][0]))
    br = jaxgrad.continue_branch(FHN, jnp.array([v0, (v0 + a) / b]), params=FHN_P,
                                 param="I", p_range=(0.0, 1.0), ds=0.02, num_steps=200)
    assert [bp.kind for bp in br.bifurcations] == ["hopf"]
    bp = br.bifurcations[0]
    assert bool(bp.converged)
    np.testing.assert_allclose(float(bp.p), current, atol=1e-12)
    np.testing.assert_allclose(np.asarray(bp.x), [v, (v + a) / b], atol=1e-12)
    np.testing.assert_allclose(float(bp.frequency), omega, rtol=1e-12)
    assert np.isfinite(float(bp.first_lyapunov_coefficient))
    # Stable before the Hopf point, unstable after it.
    ok = np.asarray(br.valid)
    stab, ps = np.asarray(br.stability)[ok], np.asarray(br.p)[ok]
    assert np.all(stab[ps < current - 1e-6] == 0) and np.all(stab[ps > current + 1e-6] == 1)


def test_rate_network_hopf_at_g_one(x64):
    """J(0) = -I + g [[1, -1], [1, 1]]: λ = g - 1 ± ig, so g = 1, ω = 1; with
    tanh x = x - x³/3 the coefficient of G&H is a = -1/4: l1 = 2a/ω = -1/2."""
    br = jaxgrad.continue_branch(RATE, jnp.zeros(2), params={"g": 0.5}, param="g",
                                 p_range=(0.5, 1.5), ds=0.05, num_steps=60)
    assert [bp.kind for bp in br.bifurcations] == ["hopf"]
    bp = br.bifurcations[0]
    assert bool(bp.converged)
    np.testing.assert_allclose([float(bp.p), float(bp.frequency)], [1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(float(bp.first_lyapunov_coefficient), -0.5, rtol=1e-10)


def test_rate_network_hopf_float32():
    bp = jaxgrad.locate_bifurcation(RATE, jnp.zeros(2), params={"g": 0.9}, param="g",
                                    bifurcation="hopf")
    assert bp.p.dtype == jnp.float32 and bool(bp.converged)
    np.testing.assert_allclose([float(bp.p), float(bp.frequency)], [1.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(float(bp.first_lyapunov_coefficient), -0.5, rtol=1e-4)


def test_delayed_logistic_neimark_sacker(x64):
    """x' = r x (1 - y), y' = x: at x* = 1 - 1/r, J = [[1, 1 - r], [1, 0]], det = r - 1,
    trace 1, so |μ| = 1 at r = 2 with μ = e^{±iπ/3}."""
    br = jaxgrad.continue_branch(DELAYED_LOGISTIC, jnp.array([1 / 3, 1 / 3]), params=1.5,
                                 param=None, p_range=(1.5, 2.5), ds=0.05, num_steps=60)
    assert [bp.kind for bp in br.bifurcations] == ["hopf"]
    bp = br.bifurcations[0]
    assert bool(bp.converged)
    np.testing.assert_allclose(float(bp.p), 2.0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(bp.x), [0.5, 0.5], atol=1e-12)
    np.testing.assert_allclose(float(bp.frequency), math.pi / 3, rtol=1e-12)
    np.testing.assert_allclose(np.abs(np.asarray(bp.eigenvalues)), [1.0, 1.0], atol=1e-12)
    d = float(bp.first_lyapunov_coefficient)
    assert d < 0  # supercritical: a stable invariant circle for r > 2
    # The circle's radius: |z|² = -β/d with β = |μ| - 1 = sqrt(r - 1) - 1 in the
    # coordinate z of x = x* + z q + z̄ q̄ (‖q‖ = 1), whose phase-average of ‖x - x*‖² is
    # 2|z|² (the orbit turns by ≈ π/3 a step, so the six phases average cos 2φ out).
    r = 2.002
    beta = math.sqrt(r - 1) - 1
    xs = 1 - 1 / r
    z = np.array([xs + math.sqrt(-2 * beta / d), xs])
    total, count = 0.0, 0
    for t in range(60_000):
        z = np.array([r * z[0] * (1 - z[1]), z[0]])
        if t >= 30_000:
            total += float(np.sum((z - xs) ** 2))
            count += 1
    np.testing.assert_allclose(total / count, -2 * beta / d, rtol=0.02)


# --------------------------------------------------------------------------- exclusions


def _neutral_saddle_flow(x, u, p):
    """Real eigenvalues 1 and p - 1: their sum crosses 0 at p = 0 (a neutral saddle)."""
    return jnp.stack([x[0] + x[0] ** 3, (p["p"] - 1.0) * x[1] + x[0] * x[1]])


def _neutral_saddle_map(x, p):
    """Real multipliers 2 and (1 + p)/2: their product crosses 1 at p = 0."""
    return jnp.stack([2.0 * x[0] + x[0] ** 2, 0.5 * (1.0 + p["p"]) * x[1] + x[0] * x[1]])


def test_neutral_saddle_is_not_a_hopf_point(x64):
    br = jaxgrad.continue_branch(jaxgrad.vector_field(_neutral_saddle_flow), jnp.zeros(2),
                                 params={"p": -0.5}, param="p", p_range=(-0.5, 0.5), ds=0.05,
                                 num_steps=60)
    assert br.bifurcations == ()
    br = jaxgrad.continue_branch(jaxgrad.autonomous(_neutral_saddle_map), jnp.zeros(2),
                                 params={"p": -0.5}, param="p", p_range=(-0.5, 0.5), ds=0.05,
                                 num_steps=60)
    assert br.bifurcations == ()
    # A Hopf search there finds no complex pair: not converged, not a Hopf point.
    bp = jaxgrad.locate_bifurcation(jaxgrad.vector_field(_neutral_saddle_flow), jnp.zeros(2),
                                    params={"p": 0.01}, param="p", bifurcation="hopf")
    assert not bool(bp.converged)


def test_folds_and_flips_carry_nan_hopf_fields(x64):
    bp = jaxgrad.locate_bifurcation(lambda x, a: x + a - x * x, 0.3, params=0.1, param=None,
                                    kind="map")
    assert bp.kind == "fold" and bool(bp.converged)
    assert np.isnan(float(bp.frequency)) and np.isnan(float(bp.first_lyapunov_coefficient))


def test_hopf_needs_two_components():
    flow = jaxgrad.vector_field(lambda x, u, p: -x + p["a"])
    for x in (0.3, jnp.array([0.3])):
        with pytest.raises(ValueError, match="`x_guess` must have at least 2 components"):
            jaxgrad.locate_bifurcation(flow, x, params={"a": 0.1}, param="a",
                                       bifurcation="hopf")
    with pytest.raises(ValueError, match="unknown `bifurcation`"):
        jaxgrad.locate_bifurcation(RATE, jnp.zeros(2), params={"g": 0.9}, param="g",
                                   bifurcation="neimark")
