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

To keep the compile time down, the planar examples are all one field (and one map) with
their pieces as parameters: each ``continue_branch`` / ``locate_bifurcation`` compiles once.
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad

MONOMIALS = [(i, j) for i in range(4) for j in range(4) if 2 <= i + j <= 3]


def _monomial(i, j):
    return MONOMIALS.index((i, j))


def _planar(x, u, p):
    """c0 + μ c1 + (L0 + μ L1) x + (W0 + μ W1) tanh(x) + (C0 + μ C1) (x^i y^j)_{i+j=2,3}."""
    mu = p["mu"]
    terms = jnp.stack([x[0] ** i * x[1] ** j for i, j in MONOMIALS])
    return (p["c0"] + mu * p["c1"] + (p["L0"] + mu * p["L1"]) @ x
            + (p["W0"] + mu * p["W1"]) @ jnp.tanh(x) + (p["C0"] + mu * p["C1"]) @ terms)


PLANAR_FLOW = jaxgrad.vector_field(_planar)
PLANAR_MAP = jaxgrad.autonomous(lambda x, p: _planar(x, None, p))


def planar(mu, **pieces):
    """Parameters of ``_planar``: the named pieces, zero where not given."""
    m = len(MONOMIALS)
    p = {"c0": np.zeros(2), "c1": np.zeros(2), "L0": np.zeros((2, 2)), "L1": np.zeros((2, 2)),
         "W0": np.zeros((2, 2)), "W1": np.zeros((2, 2)), "C0": np.zeros((2, m)),
         "C1": np.zeros((2, m))}
    p.update(pieces)
    return {"mu": mu, **{k: jnp.asarray(v, jnp.float64) for k, v in p.items()}}


def normal_form(mu, w, s):
    """ẋ = μx - ωy - s x(x² + y²), ẏ = ωx + μy - s y(x² + y²)."""
    C0 = np.zeros((2, len(MONOMIALS)))
    C0[0, _monomial(3, 0)] = C0[0, _monomial(1, 2)] = -s
    C0[1, _monomial(2, 1)] = C0[1, _monomial(0, 3)] = -s
    return planar(mu, L0=[[0.0, -w], [w, 0.0]], L1=np.eye(2), C0=C0)


FHN_EPS, FHN_A, FHN_B = 0.08, 0.7, 0.8


def fitzhugh_nagumo(current):
    """v' = v - v³/3 - w + I, w' = ε(v + a - b w), continued in I (= μ)."""
    C0 = np.zeros((2, len(MONOMIALS)))
    C0[0, _monomial(3, 0)] = -1 / 3
    return planar(current, c0=[0.0, FHN_EPS * FHN_A], c1=[1.0, 0.0],
                  L0=[[1.0, -1.0], [FHN_EPS, -FHN_EPS * FHN_B]], C0=C0)


def rate_network(g):
    """ẋ = -x + g [[1, -1], [1, 1]] tanh(x), continued in g (= μ)."""
    return planar(g, L0=-np.eye(2), W1=[[1.0, -1.0], [1.0, 1.0]])


def delayed_logistic(r):
    """x' = r x (1 - y), y' = x, continued in r (= μ)."""
    C1 = np.zeros((2, len(MONOMIALS)))
    C1[0, _monomial(1, 1)] = -1.0
    return planar(r, L0=[[0.0, 0.0], [1.0, 0.0]], L1=[[1.0, 0.0], [0.0, 0.0]], C1=C1)


def _continue(f, x0, params, p_range, ds=0.05):
    return jaxgrad.continue_branch(f, x0, params=params, param="mu", p_range=p_range, ds=ds,
                                   num_steps=80)


def _locate(f, x0, params):
    return jaxgrad.locate_bifurcation(f, x0, params=params, param="mu", bifurcation="hopf")


# --------------------------------------------------------------------------- normal form


@pytest.mark.parametrize("s", [1.0, -1.0])
@pytest.mark.parametrize("w", [0.5, 2.0])
def test_normal_form_branch_detects_one_hopf(x64, s, w):
    br = _continue(PLANAR_FLOW, jnp.zeros(2), normal_form(-0.5, w, s), (-0.5, 0.5))
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


def _gh_coefficient(cf, cg, w):
    """Guckenheimer & Holmes (3.4.11) for ẋ = -ωy + f, ẏ = ωx + g, with f, g the
    polynomials of coefficients cf, cg over MONOMIALS."""
    def d(c, i, j):  # ∂^{i+j}/∂x^i ∂y^j at 0
        return c[_monomial(i, j)] * math.factorial(i) * math.factorial(j)

    fxxx, fxyy, gxxy, gyyy = d(cf, 3, 0), d(cf, 1, 2), d(cg, 2, 1), d(cg, 0, 3)
    fxy, fxx, fyy = d(cf, 1, 1), d(cf, 2, 0), d(cf, 0, 2)
    gxy, gxx, gyy = d(cg, 1, 1), d(cg, 2, 0), d(cg, 0, 2)
    return ((fxxx + fxyy + gxxy + gyyy) / 16
            + (fxy * (fxx + fyy) - gxy * (gxx + gyy) - fxx * gxx + fyy * gyy) / (16 * w))


@pytest.mark.parametrize("seed", range(5))
def test_first_lyapunov_coefficient_matches_guckenheimer_holmes(x64, seed):
    rng = np.random.default_rng(seed)
    C0 = rng.normal(size=(2, len(MONOMIALS)))
    w = float(rng.uniform(0.5, 3.0))
    params = planar(0.05, L0=[[0.0, -w], [w, 0.0]], L1=np.eye(2), C0=C0)
    bp = _locate(PLANAR_FLOW, jnp.zeros(2), params)
    assert bool(bp.converged)
    np.testing.assert_allclose([float(bp.p), float(bp.frequency)], [0.0, w], atol=1e-12)
    a = _gh_coefficient(C0[0], C0[1], w)
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
    params = {"mu": 0.1, "w": 1.5, "k": k, "Q": jnp.asarray(Q)}
    bp = _locate(CENTRE_MANIFOLD, jnp.zeros(3), params)
    assert bp.kind == "hopf" and bool(bp.converged)
    np.testing.assert_allclose(float(bp.p), 0.0, atol=1e-12)
    np.testing.assert_allclose(float(bp.frequency), 1.5, rtol=1e-12)
    np.testing.assert_allclose(float(bp.first_lyapunov_coefficient), 2 * k / 1.5, rtol=1e-10)


# --------------------------------------------------------------------------- examples


def test_fitzhugh_nagumo_hopf_current(x64):
    """Hopf where trace J = 1 - v² - εb = 0 with det J = ε(1 - b(1 - v²)) > 0."""
    eps, a, b = FHN_EPS, FHN_A, FHN_B
    v = -math.sqrt(1 - eps * b)
    current = v ** 3 / 3 - v + (v + a) / b
    omega = math.sqrt(eps * (1 - eps * b * b))
    # The unique equilibrium at I = 0 (b < 1: one root), by NumPy.
    roots = np.roots([-1 / 3, 0.0, 1 - 1 / b, -a / b])
    v0 = float(np.real(roots[np.abs(np.imag(roots)) < 1e-12][0]))
    br = _continue(PLANAR_FLOW, jnp.array([v0, (v0 + a) / b]), fitzhugh_nagumo(0.0),
                   (0.0, 1.0))
    assert [bp.kind for bp in br.bifurcations] == ["hopf"]
    bp = br.bifurcations[0]
    assert bool(bp.converged)
    np.testing.assert_allclose(float(bp.p), current, atol=1e-12)
    np.testing.assert_allclose(np.asarray(bp.x), [v, (v + a) / b], atol=1e-12)
    np.testing.assert_allclose(float(bp.frequency), omega, rtol=1e-12)
    assert np.isfinite(float(bp.first_lyapunov_coefficient))
    # Stable before the Hopf point, unstable after it, up to I = 1.
    ok = np.asarray(br.valid)
    stab, ps = np.asarray(br.stability)[ok], np.asarray(br.p)[ok]
    assert ps.max() > 0.9
    assert np.all(stab[ps < current - 1e-6] == 0) and np.all(stab[ps > current + 1e-6] == 1)


def test_rate_network_hopf_at_g_one(x64):
    """J(0) = -I + g [[1, -1], [1, 1]]: λ = g - 1 ± ig, so g = 1, ω = 1; with
    tanh x = x - x³/3 the coefficient of G&H is a = -1/4: l1 = 2a/ω = -1/2."""
    br = _continue(PLANAR_FLOW, jnp.zeros(2), rate_network(0.5), (0.5, 1.5))
    assert [bp.kind for bp in br.bifurcations] == ["hopf"]
    bp = br.bifurcations[0]
    assert bool(bp.converged)
    np.testing.assert_allclose([float(bp.p), float(bp.frequency)], [1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(float(bp.first_lyapunov_coefficient), -0.5, rtol=1e-10)


def test_delayed_logistic_neimark_sacker(x64):
    """x' = r x (1 - y), y' = x: at x* = 1 - 1/r, J = [[1, 1 - r], [1, 0]], det = r - 1,
    trace 1, so |μ| = 1 at r = 2 with μ = e^{±iπ/3}."""
    z = jnp.array([0.3, 0.6])
    np.testing.assert_allclose(np.asarray(PLANAR_MAP(z, None, delayed_logistic(1.7))),
                               [1.7 * 0.3 * 0.4, 0.3], rtol=1e-14)
    br = _continue(PLANAR_MAP, jnp.array([1 / 3, 1 / 3]), delayed_logistic(1.5), (1.5, 2.5))
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
    np.testing.assert_allclose(total / count, -2 * beta / d, rtol=1e-3)


# --------------------------------------------------------------------------- exclusions


def test_neutral_saddle_is_not_a_hopf_point(x64):
    """Real eigenvalues 1 and μ - 1 (flow; their sum crosses 0 at μ = 0) and real
    multipliers 2 and (1 + μ)/2 (map; their product crosses 1): neutral saddles."""
    C0 = np.zeros((2, len(MONOMIALS)))
    C0[0, _monomial(3, 0)] = C0[1, _monomial(1, 1)] = 1.0
    flow = planar(-0.5, L0=np.diag([1.0, -1.0]), L1=np.diag([0.0, 1.0]), C0=C0)
    br = _continue(PLANAR_FLOW, jnp.zeros(2), flow, (-0.5, 0.5))
    assert br.bifurcations == () and float(br.p[np.asarray(br.valid)].max()) > 0.49
    C0[0, _monomial(2, 0)] = 1.0
    a_map = planar(-0.5, L0=np.diag([2.0, 0.5]), L1=np.diag([0.0, 0.5]), C0=C0)
    br = _continue(PLANAR_MAP, jnp.zeros(2), a_map, (-0.5, 0.5))
    assert br.bifurcations == () and float(br.p[np.asarray(br.valid)].max()) > 0.49
    # A Hopf search there finds no complex pair: not converged, not a Hopf point.
    assert not bool(_locate(PLANAR_FLOW, jnp.zeros(2), {**flow, "mu": 0.01}).converged)


def test_hopf_needs_two_components():
    flow = jaxgrad.vector_field(lambda x, u, p: -x + p["a"])
    for x in (0.3, jnp.array([0.3])):
        with pytest.raises(ValueError, match="`x_guess` must have at least 2 components"):
            jaxgrad.locate_bifurcation(flow, x, params={"a": 0.1}, param="a",
                                       bifurcation="hopf")
    with pytest.raises(ValueError, match="unknown `bifurcation`"):
        jaxgrad.locate_bifurcation(flow, jnp.zeros(2), params={"a": 0.1}, param="a",
                                   bifurcation="neimark")


# --------------------------------------------------------------------------- Hopf curve


def _fhn(z, u, p):
    return jnp.stack([z[0] - z[0] ** 3 / 3 - z[1] + p["I"],
                      p["eps"] * (z[0] + p["a"] - p["b"] * z[1])])


def test_fitzhugh_nagumo_hopf_curve_and_bogdanov_takens(x64):
    """In (I, b): v = -√(1 - εb), I = v³/3 - v + (v + a)/b, κ = ω² = ε(1 - εb²), which
    vanishes at the Bogdanov-Takens point b = 1/√ε; past it κ < 0 (neutral saddles)."""
    eps, a = 0.08, 0.7
    params = {"I": 0.33, "eps": eps, "a": a, "b": 0.8}
    hc = jaxgrad.analysis.hopf_curve(jaxgrad.vector_field(_fhn), jnp.array([-1.0, -0.4]),
                                     params=params, param="I", param2="b", p2_range=(0.8, 4.0),
                                     ds=0.05)
    ok = np.asarray(hc.valid)
    b, current = np.asarray(hc.p2)[ok], np.asarray(hc.p)[ok]
    assert b.min() == 0.8 and b.max() > 3.8
    v = -np.sqrt(1 - eps * b)
    np.testing.assert_allclose(np.asarray(hc.x)[ok], np.stack([v, (v + a) / b], 1),
                               atol=1e-12)
    np.testing.assert_allclose(current, v ** 3 / 3 - v + (v + a) / b, atol=1e-12)
    kappa = eps * (1 - eps * b * b)
    np.testing.assert_allclose(np.asarray(hc.kappa)[ok], kappa, atol=1e-12)
    freq = np.asarray(hc.frequency)[ok]
    np.testing.assert_allclose(freq[kappa > 0], np.sqrt(kappa[kappa > 0]), rtol=1e-10)
    assert np.all(np.isnan(freq[kappa < 0]))
    assert len(hc.bogdanov_takens) == 1
    bt = hc.bogdanov_takens[0]
    b_bt = 1 / math.sqrt(eps)
    v_bt = -math.sqrt(1 - eps * b_bt)
    assert bool(bt.converged)
    np.testing.assert_allclose([float(bt.p2), float(bt.p)],
                               [b_bt, v_bt ** 3 / 3 - v_bt + (v_bt + a) / b_bt], atol=1e-12)
    np.testing.assert_allclose(np.asarray(bt.x), [v_bt, (v_bt + a) / b_bt], atol=1e-12)
    # l1 along the curve is the one locate_bifurcation finds at the same point; it stays
    # positive here (subcritical), so there is no generalised Hopf point.
    l1 = np.asarray(hc.first_lyapunov_coefficient)
    assert np.all(np.isnan(l1[~ok])) and np.all(np.isnan(l1[ok][kappa < 0]))
    assert np.all(l1[ok][kappa > 0] > 0) and hc.generalized_hopf == ()
    for i in np.flatnonzero(ok)[[0, 6]]:
        bp = jaxgrad.locate_bifurcation(jaxgrad.vector_field(_fhn), hc.x[i],
                                        params={**params, "I": hc.p[i], "b": hc.p2[i]},
                                        param="I", bifurcation="hopf")
        np.testing.assert_allclose(float(bp.first_lyapunov_coefficient), l1[i], rtol=1e-10)


def _bautin(z, u, p):
    """The Bautin normal form r' = β₁' r + β₂' r³ - r⁵, θ' = ω in Cartesian coordinates,
    with β₁' = β₁ - c (β₂ - β₀)², β₂' = β₂ - β₀, the quadratic terms (α x², β x²) and the
    state rotated by Q and shifted to x_c."""
    x, y = p["Q"].T @ (z - p["xc"])
    r2 = x * x + y * y
    d = p["b2"] - p["b0"]
    a = p["b1"] - p["c"] * d * d + d * r2 - r2 * r2
    return p["Q"] @ jnp.stack([a * x - p["w"] * y + p["alpha"] * x * x,
                               p["w"] * x + a * y + p["beta"] * x * x])


BAUTIN = jaxgrad.vector_field(_bautin)


@pytest.mark.slow
@pytest.mark.parametrize("shifted", [False, True])
def test_generalized_hopf_point_of_the_bautin_normal_form(x64, shifted):
    """Hopf curve β₁ = c (β₂ - β₀)², ω = w, and (Guckenheimer & Holmes (3.4.11), a =
    β₂ - β₀ - αβ/(4ω)) l1 = 2a/ω: negative (supercritical) below the generalised Hopf
    point β₂ = β₀ + αβ/(4ω), positive above. Plain: r' = β₁ r + β₂ r³ - r⁵, θ' = 1, with
    l1 = 2 β₂ and the point at β₁ = β₂ = 0."""
    if shifted:
        Q, _ = np.linalg.qr(np.random.default_rng(5).normal(size=(2, 2)))
        pieces = {"b0": 0.3, "c": 0.5, "w": 1.5, "alpha": 0.8, "beta": -0.5,
                  "Q": Q, "xc": [0.4, -1.2]}
    else:
        pieces = {"b0": 0.0, "c": 0.0, "w": 1.0, "alpha": 0.0, "beta": 0.0,
                  "Q": np.eye(2), "xc": [0.0, 0.0]}
    params = {"b1": 0.01, "b2": -0.7, **{k: jnp.asarray(v, jnp.float64)
                                         for k, v in pieces.items()}}
    b0, c, w = pieces["b0"], pieces["c"], pieces["w"]
    shift = pieces["alpha"] * pieces["beta"] / (4 * w)
    hc = jaxgrad.analysis.hopf_curve(BAUTIN, jnp.asarray(pieces["xc"]) + 0.01, params=params,
                                     param="b1", param2="b2", p2_range=(-0.7, 0.9), ds=0.05)
    ok = np.asarray(hc.valid)
    b2 = np.asarray(hc.p2)[ok]
    assert b2.min() == -0.7 and b2.max() > 0.5
    np.testing.assert_allclose(np.asarray(hc.p)[ok], c * (b2 - b0) ** 2, atol=1e-12)
    np.testing.assert_allclose(np.asarray(hc.x)[ok], np.broadcast_to(pieces["xc"], (b2.size, 2)),
                               atol=1e-12)
    np.testing.assert_allclose(np.asarray(hc.frequency)[ok], w, rtol=1e-12)
    l1 = np.asarray(hc.first_lyapunov_coefficient)
    np.testing.assert_allclose(l1[ok], 2 * (b2 - b0 - shift) / w, rtol=1e-10, atol=1e-12)
    assert np.all(np.isnan(l1[~ok]))
    assert len(hc.generalized_hopf) == 1
    gh = hc.generalized_hopf[0]
    assert bool(gh.converged) and float(gh.residual) < 1e-12
    np.testing.assert_allclose(float(gh.p2), b0 + shift, atol=1e-12)
    np.testing.assert_allclose(float(gh.p), c * shift ** 2, atol=1e-12)
    np.testing.assert_allclose(np.asarray(gh.x), pieces["xc"], atol=1e-12)
    np.testing.assert_allclose(float(gh.frequency), w, rtol=1e-12)
    np.testing.assert_allclose(float(gh.first_lyapunov_coefficient), 0.0, atol=1e-12)
    assert hc.bogdanov_takens == ()


def _zero_hopf_field(x, u, p):
    r2 = x[0] ** 2 + x[1] ** 2
    return jnp.stack([p["mu"] * x[0] - x[1] + x[0] * x[2],
                      x[0] + p["mu"] * x[1] + x[1] * x[2], -p["c"] * x[2] + r2])


@pytest.mark.slow
def test_sign_change_of_l1_through_a_pole_is_not_converged(x64):
    """ż = -c z + r² puts z = r²/c on the centre manifold: l1 = 2/c (ω = 1) changes sign
    through a pole at c = 0 (a zero-Hopf point), not through a zero. It is reported, but
    not as a converged generalised Hopf point."""
    hc = jaxgrad.analysis.hopf_curve(jaxgrad.vector_field(_zero_hopf_field), jnp.zeros(3),
                                     params={"mu": 0.01, "c": -0.5}, param="mu", param2="c",
                                     p2_range=(-0.5, 0.5), ds=0.03)
    ok = np.asarray(hc.valid)
    c = np.asarray(hc.p2)[ok]
    assert c.min() == -0.5 and c.max() > 0.0
    np.testing.assert_allclose(np.asarray(hc.first_lyapunov_coefficient)[ok], 2 / c,
                               rtol=1e-10)
    assert len(hc.generalized_hopf) == 1
    gh = hc.generalized_hopf[0]
    assert not bool(gh.converged)
    assert abs(float(gh.p2)) < 1e-8 and abs(float(gh.first_lyapunov_coefficient)) > 1e3


def test_hopf_curve_refuses_maps_and_scalar_states():
    with pytest.raises(ValueError, match="`hopf_curve` continues Hopf points of a flow"):
        jaxgrad.analysis.hopf_curve(jaxgrad.autonomous(lambda x, p: p["mu"] * x + p["nu"]),
                                    jnp.zeros(2), params={"mu": 0.0, "nu": 0.0}, param="mu",
                                    param2="nu", p2_range=(-1.0, 1.0))
    flow = jaxgrad.vector_field(lambda x, u, p: -x + p["a"] * p["c"])
    with pytest.raises(ValueError, match="`x0` must have at least 2 components"):
        jaxgrad.analysis.hopf_curve(flow, 0.3, params={"a": 0.1, "c": 1.0}, param="a", param2="c",
                                    p2_range=(0.0, 2.0))
