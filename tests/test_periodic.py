"""periodic_orbits and systems.iterate against closed forms.

The logistic map ``x -> r x (1 - x)``: fixed points ``0``, ``1 - 1/r``; the 2-cycle
``x± = (r + 1 ± √((r-3)(r+1))) / 2r`` with multiplier ``-r² + 2r + 4``; period doubling at
``r = 3`` and ``1 + √6``; the two 3-cycles born at ``1 + √8``; at ``r = 4`` the ``2^k``
points of period ``k`` are ``sin²(π j / (2^k ∓ 1))`` (the conjugacy to the tent map) and
``(1/k) Σ_{d|k} μ(k/d) 2^d`` orbits have minimal period ``k``; the period-doubling points
``r_2..r_4`` and Feigenbaum's ratios. The Hénon map: fixed points and 2-cycle in closed form.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad
from jaxgrad.analysis.periodic import _run_core
from jaxgrad.systems import iterate

LOGISTIC = jaxgrad.autonomous(lambda x, r: r * x * (1 - x))
A, B = 1.4, 0.3  # Hénon's parameters


def _henon(z, p):
    a, b = p
    return jnp.stack([1 - a * z[0] ** 2 + z[1], b * z[0]])


HENON = jaxgrad.autonomous(_henon)


def _henon_tree(z, p):
    a, b = p
    return {"x": 1 - a * z["x"] ** 2 + z["y"], "y": b * z["x"]}


HENON_TREE = jaxgrad.autonomous(_henon_tree)
HENON_BOX = (np.array([-2.0, -2.0]), np.array([2.0, 2.0]))  # float64 under x64


def _mobius(n: int) -> int:
    result, p = 1, 2
    while p * p <= n:
        if n % p == 0:
            n //= p
            if n % p == 0:
                return 0
            result = -result
        p += 1
    return -result if n > 1 else result


def _primitive_orbits(k: int) -> int:
    """Orbits of minimal period ``k`` of the full logistic map (necklace count)."""
    return sum(_mobius(k // d) * 2**d for d in range(1, k + 1) if k % d == 0) // k


def _two_cycle(r):
    s = math.sqrt((r - 3) * (r + 1))
    return (r + 1 - s) / (2 * r), (r + 1 + s) / (2 * r)


def _by_period(orbits, d):
    sel = np.asarray(orbits.minimal_period) == d
    return np.asarray(orbits.points)[sel], np.asarray(orbits.multipliers)[sel], sel


# --------------------------------------------------------------------------- iterate


def test_iterate_composes_the_step():
    step = jaxgrad.autonomous(lambda x, r: r * x * (1 - x))
    x = jnp.asarray(0.3)
    expected = x
    for _ in range(5):
        expected = step(expected, None, 3.7)
    got = iterate(step, 5)(x, jnp.zeros(0), 3.7)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert iterate(step, 5) == iterate(step, 5)  # equal steps: jitted analyzers reuse code
    tree = iterate(HENON_TREE, 2)({"x": jnp.asarray(0.1), "y": jnp.asarray(0.2)}, None, (A, B))
    flat = HENON(HENON(jnp.array([0.1, 0.2]), None, (A, B)), None, (A, B))
    np.testing.assert_allclose([tree["x"], tree["y"]], flat, rtol=1e-6)


def test_iterate_refuses_bad_k():
    with pytest.raises(ValueError, match="`k`"):
        iterate(LOGISTIC, 0)
    with pytest.raises(TypeError, match="`k`"):
        iterate(LOGISTIC, 2.0)
    with pytest.raises(TypeError, match="`step`"):
        iterate("logistic", 2)


# --------------------------------------------------------------------------- logistic map


@pytest.mark.parametrize("r", [2.8, 3.2, 3.3, 3.4])
def test_logistic_fixed_points_and_two_cycle(x64, r):
    orbits = jaxgrad.periodic_orbits(LOGISTIC, (0.0, 1.0), period=2, params=r)
    assert orbits.period == 2
    fixed, mult1, _ = _by_period(orbits, 1)
    np.testing.assert_allclose(fixed, [[0.0, 0.0], [1 - 1 / r, 1 - 1 / r]], atol=1e-12)
    np.testing.assert_allclose(mult1[:, 0], [r, 2 - r], rtol=1e-12)  # f'(x*), not squared
    cycle, mult2, _ = _by_period(orbits, 2)
    if r < 3:
        assert cycle.shape[0] == 0  # the 2-cycle is born at r = 3
        assert np.asarray(orbits.stability).tolist() == [1, 0]
        return
    np.testing.assert_allclose(cycle, [_two_cycle(r)], atol=1e-12)  # from the smaller point
    np.testing.assert_allclose(mult2[:, 0], [-(r**2) + 2 * r + 4], rtol=1e-10)
    stable = r < 1 + math.sqrt(6)
    assert np.asarray(orbits.stability).tolist() == [1, 1, 0 if stable else 1]
    assert bool(np.all(orbits.converged))
    assert np.all(np.asarray(orbits.residual) < 1.5e-8)


@pytest.mark.parametrize(
    "r, period, d, stable",
    [(3 - 0.01, 1, 1, True), (3 + 0.01, 1, 1, False),
     (1 + math.sqrt(6) - 0.01, 2, 2, True), (1 + math.sqrt(6) + 0.01, 2, 2, False)],
)
def test_period_doubling_is_a_flip(x64, r, period, d, stable):
    """At r = 3 the fixed point 1 - 1/r, at r = 1 + √6 the 2-cycle, loses stability by a
    flip (its multiplier through -1)."""
    orbits = jaxgrad.periodic_orbits(LOGISTIC, (0.0, 1.0), period=2, params=r)
    sel = (np.asarray(orbits.minimal_period) == d) & (np.asarray(orbits.points)[:, 0] > 0.1)
    assert sel.sum() == 1
    i = int(np.flatnonzero(sel)[0])
    assert (int(orbits.stability[i]) == 0) == stable
    labels = jaxgrad.analysis.LOSS_OF_STABILITY_LABELS
    assert labels[int(orbits.loss_of_stability[i])] == "flip"
    assert abs(float(orbits.multipliers[i, 0].real) + 1) < 0.1


def test_three_cycles_born_in_a_fold(x64):
    """Two 3-cycles, one stable and one unstable, exist just above r = 1 + √8, none below."""
    rc = 1 + math.sqrt(8)
    below = jaxgrad.periodic_orbits(LOGISTIC, (0.0, 1.0), period=3, params=rc - 1e-3)
    assert not np.any(np.asarray(below.minimal_period) == 3)
    for r in (rc + 1e-3, 3.83):
        orbits = jaxgrad.periodic_orbits(LOGISTIC, (0.0, 1.0), period=3, params=r)
        cycles, mult, sel = _by_period(orbits, 3)
        assert cycles.shape[0] == 2
        assert sorted(np.asarray(orbits.stability)[sel].tolist()) == [0, 1]
        assert [jaxgrad.analysis.LOSS_OF_STABILITY_LABELS[c] for c in
                np.asarray(orbits.loss_of_stability)[sel]] == ["fold", "fold"]
        # the pair straddles μ = +1 (one inside the unit circle, one outside)
        assert sorted(np.sign(mult[:, 0].real - 1).tolist()) == [-1.0, 1.0]
        # each is a 3-cycle: x_{j+1} = f(x_j), and the orbit starts at its smallest point
        nxt = r * cycles * (1 - cycles)
        np.testing.assert_allclose(nxt, np.roll(cycles, -1, axis=1), atol=1e-12)
        assert np.all(np.argmin(cycles, axis=1) == 0)


@pytest.mark.parametrize("k", [3, 4, 5])
def test_full_logistic_map_counts_and_closed_form(x64, k):
    """At r = 4 every one of the 2^k roots of f^k(x) = x is found, as sin²(π j/(2^k ∓ 1))."""
    orbits = jaxgrad.periodic_orbits(LOGISTIC, (0.0, 1.0), period=k, params=4.0,
                                     num_points=512 if k == 5 else 256)
    periods = np.asarray(orbits.minimal_period)
    for d in range(1, k + 1):
        expected = _primitive_orbits(d) if k % d == 0 else 0
        assert int(np.sum(periods == d)) == expected, d
    assert int(np.sum(periods == k)) == {3: 2, 4: 3, 5: 6}[k]
    found = np.sort(np.concatenate([np.asarray(orbits.points)[i, :d]
                                    for i, d in enumerate(periods)]))
    closed = np.sort(np.concatenate([
        np.sin(np.pi * np.arange(2 ** (k - 1)) / (2**k - 1)) ** 2,
        np.sin(np.pi * np.arange(1, 2 ** (k - 1) + 1) / (2**k + 1)) ** 2]))
    assert found.shape == (2**k,)
    np.testing.assert_allclose(found, closed, atol=1e-10)
    # conjugate to the tent map: |μ| = 2^d on every cycle but the fixed point 0 (μ = 4)
    mods = np.abs(np.asarray(orbits.multipliers)[:, 0])
    not_zero = np.asarray(orbits.points)[:, 0] > 1e-9
    np.testing.assert_allclose(mods[not_zero], 2.0 ** periods[not_zero], rtol=1e-8)
    assert np.all(np.asarray(orbits.stability) == 1)


def test_lower_periods_kept_and_flagged(x64):
    """With period=4 at r = 3.3 the fixed points and the 2-cycle come back, flagged, their
    points repeated, their multipliers over one minimal period."""
    r = 3.3
    orbits = jaxgrad.periodic_orbits(LOGISTIC, (0.0, 1.0), period=4, params=r)
    assert np.asarray(orbits.minimal_period).tolist() == [1, 1, 2]
    pts = np.asarray(orbits.points)
    assert pts.shape == (3, 4)
    np.testing.assert_allclose(pts[2], [*_two_cycle(r), *_two_cycle(r)], atol=1e-12)
    np.testing.assert_allclose(np.asarray(orbits.multipliers)[:, 0].real,
                               [r, 2 - r, -(r**2) + 2 * r + 4], rtol=1e-10)


def test_float32_orbits_are_honest():
    """In float32, over many seeds and parameters, every orbit returned is a k-cycle to
    its stated tolerance, checked in float64 NumPy, with its multipliers."""
    tol = math.sqrt(np.finfo(np.float32).eps)
    for seed, r in enumerate([3.5, 3.7, 3.83, 3.9, 3.99]):
        orbits = jaxgrad.periodic_orbits(LOGISTIC, (0.0, 1.0), period=4, params=r,
                                         key=jax.random.key(seed))
        assert orbits.points.dtype == jnp.float32
        assert bool(np.all(orbits.converged)) and np.all(np.asarray(orbits.residual) < tol)
        pts = np.asarray(orbits.points, np.float64)
        x = pts[:, 0]
        for _ in range(4):
            x = r * x * (1 - x)
        assert np.all(np.abs(x - pts[:, 0]) < 10 * tol)
        for i, d in enumerate(np.asarray(orbits.minimal_period)):
            mu = np.prod(r * (1 - 2 * pts[i, :d]))  # ∏ f'(x_j) along one minimal period
            np.testing.assert_allclose(orbits.multipliers[i, 0].real, mu, rtol=1e-3)
            assert abs(float(orbits.multipliers[i, 0].imag)) == 0.0
            assert (int(orbits.stability[i]) == 0) == (abs(mu) < 1)


# --------------------------------------------------------------------------- Hénon map


def _henon_fixed():
    s = math.sqrt((1 - B) ** 2 + 4 * A)
    xs = sorted([(-(1 - B) - s) / (2 * A), (-(1 - B) + s) / (2 * A)])
    return np.array([[x, B * x] for x in xs])


def _henon_two_cycle():
    s = (1 - B) / A  # x0 + x1
    p = ((1 - B) * s - 2 + A * s**2) / (2 * A)  # x0 x1
    d = math.sqrt(s**2 - 4 * p)
    x0, x1 = (s - d) / 2, (s + d) / 2
    return np.array([[x0, B * x1], [x1, B * x0]])


def _henon_multipliers(points):
    M = np.eye(2)
    for x, _ in points:
        M = np.array([[-2 * A * x, 1.0], [B, 0.0]]) @ M
    ev = np.linalg.eigvals(M)
    return ev[np.argsort(-np.abs(ev))]


def test_henon_fixed_points_and_two_cycle(x64):
    orbits = jaxgrad.periodic_orbits(HENON, HENON_BOX, period=2, params=(A, B))
    assert np.asarray(orbits.minimal_period).tolist() == [1, 1, 2]
    pts = np.asarray(orbits.points)
    assert pts.shape == (3, 2, 2)
    np.testing.assert_allclose(pts[:2, 0], _henon_fixed(), atol=1e-12)
    np.testing.assert_allclose(pts[2], _henon_two_cycle(), atol=1e-12)
    for i, d in enumerate([1, 1, 2]):
        np.testing.assert_allclose(orbits.multipliers[i], _henon_multipliers(pts[i, :d]),
                                   rtol=1e-10)
        # det ∂F = -b: the product of the multipliers over d steps is (-b)^d
        np.testing.assert_allclose(np.prod(np.asarray(orbits.multipliers[i])), (-B) ** d,
                                   rtol=1e-10)
    assert [jaxgrad.analysis.STABILITY_LABELS[s] for s in orbits.stability] == ["saddle"] * 3


def test_henon_pytree_state_and_given_starts(x64):
    """A dict state gives the same orbits, as a dict of (K, k) leaves; starts alone work."""
    flat = jaxgrad.periodic_orbits(HENON, HENON_BOX, period=2, params=(A, B))
    box = ({"x": -2.0, "y": -2.0}, {"x": 2.0, "y": 2.0})
    tree = jaxgrad.periodic_orbits(HENON_TREE, box, period=2, params=(A, B))
    assert set(tree.points) == {"x", "y"} and tree.points["x"].shape == (3, 2)
    np.testing.assert_allclose(tree.points["x"], flat.points[..., 0], atol=1e-12)
    np.testing.assert_allclose(tree.points["y"], flat.points[..., 1], atol=1e-12)
    np.testing.assert_allclose(tree.multipliers, flat.multipliers, rtol=1e-10)
    grid = np.linspace(-1.5, 1.5, 16)  # 256 starts: the compiled code of the box above
    starts = {"x": jnp.asarray(np.repeat(grid, 16)), "y": jnp.asarray(np.tile(grid, 16) / 4)}
    given = jaxgrad.periodic_orbits(HENON_TREE, period=2, params=(A, B), starts=starts)
    np.testing.assert_allclose(given.points["x"], flat.points[..., 0], atol=1e-12)
    assert 0 < int(np.sum(given.num_starts)) <= 256
    # scalar bounds apply to every leaf of the state given by `starts`
    both = jaxgrad.periodic_orbits(HENON_TREE, (-2.0, 2.0), period=2, params=(A, B),
                                   starts=starts, num_points=1)
    np.testing.assert_allclose(both.points["y"], flat.points[..., 1], atol=1e-12)


# --------------------------------------------------------------------------- Feigenbaum


def _flip_point(k, lo, hi, tol=1e-9):
    """r where the k-cycle's multiplier crosses -1 (Illinois regula falsi on μ(r) + 1; the
    k-cycle is unique in the bracket)."""

    def h(r):
        orbits = jaxgrad.periodic_orbits(LOGISTIC, (0.0, 1.0), period=k, params=r)
        _, mult, _ = _by_period(orbits, k)
        assert mult.shape[0] == 1, (k, r, mult)
        return float(mult[0, 0].real) + 1

    h_lo, h_hi = h(lo), h(hi)
    assert h_lo > 0 > h_hi
    side = 0
    for _ in range(40):
        mid = (lo * h_hi - hi * h_lo) / (h_hi - h_lo)
        h_mid = h(mid)
        if h_mid > 0:
            lo, h_lo = mid, h_mid
            h_hi = h_hi / 2 if side == 1 else h_hi
            side = 1
        else:
            hi, h_hi = mid, h_mid
            h_lo = h_lo / 2 if side == -1 else h_lo
            side = -1
        if hi - lo < tol or abs(h_mid) < 1e-13:
            return mid
    raise AssertionError(f"no convergence: [{lo}, {hi}]")


def test_feigenbaum_period_doubling_points(x64):
    r1 = 3.0
    r2 = _flip_point(2, 3.1, 3.5)
    r3 = _flip_point(4, 3.46, 3.55)
    r4 = _flip_point(8, 3.55, 3.566)
    np.testing.assert_allclose([r2, r3, r4], [3.449490, 3.544090, 3.564407], atol=1e-6)
    assert abs(r2 - (1 + math.sqrt(6))) < 1e-6
    assert abs((r2 - r1) / (r3 - r2) - 4.75145) < 1e-4
    assert abs((r3 - r2) / (r4 - r3) - 4.65625) < 1e-4


# --------------------------------------------------------------------------- continuation


def test_continue_cycle_branches_with_iterate(x64):
    """A k-cycle is a fixed point of F^k: continue_branch(iterate(f, k)) follows it in r,
    finds the 2-cycle's flip at 1 + √6 and turns round the 3-cycles' fold at 1 + √8."""
    logistic = jaxgrad.autonomous(lambda x, p: p["r"] * x * (1 - x))
    r = 3.2
    br = jaxgrad.continue_branch(iterate(logistic, 2), _two_cycle(r)[0], params={"r": r},
                                 param="r", p_range=(3.2, 3.6))
    valid = np.asarray(br.valid)
    p, x = np.asarray(br.p)[valid], np.asarray(br.x)[valid]
    assert p.max() > 3.5
    np.testing.assert_allclose(x, (p + 1 - np.sqrt((p - 3) * (p + 1))) / (2 * p), atol=1e-12)
    np.testing.assert_allclose(np.asarray(br.eigenvalues)[valid, 0].real,
                               -(p**2) + 2 * p + 4, atol=1e-10)
    assert [b.kind for b in br.bifurcations] == ["flip"]
    assert abs(float(br.bifurcations[0].p) - (1 + math.sqrt(6))) < 1e-10
    orbits = jaxgrad.periodic_orbits(logistic, (0.0, 1.0), period=3, params={"r": 3.83})
    stable = np.flatnonzero((np.asarray(orbits.minimal_period) == 3)
                            & (np.asarray(orbits.stability) == 0))
    x0 = orbits.points[int(stable[0]), 0]
    br = jaxgrad.continue_branch(iterate(logistic, 3), x0, params={"r": 3.83}, param="r",
                                 p_range=(3.8, 3.86), direction=-1, ds=0.002, num_steps=200)
    assert [b.kind for b in br.bifurcations] == ["fold"]
    assert abs(float(br.bifurcations[0].p) - (1 + math.sqrt(8))) < 1e-10
    stability = np.asarray(br.stability)[np.asarray(br.valid)]
    assert stability[0] == 0 and stability[-1] == 1  # round the fold onto the unstable cycle


# --------------------------------------------------------------------------- jit, bad input


def test_new_params_reuse_the_compiled_code():
    jaxgrad.periodic_orbits(LOGISTIC, (0.0, 1.0), period=4, params=3.2)
    before = _run_core._cache_size()
    jaxgrad.periodic_orbits(LOGISTIC, (0.0, 1.0), period=4, params=3.4)
    assert _run_core._cache_size() == before


GOOD = {"f": LOGISTIC, "box": (0.0, 1.0), "period": 2, "params": 3.3}


@pytest.mark.parametrize(
    "change, exc, pattern",
    [
        ({"period": 0}, ValueError, "`period`"),
        ({"period": 2.0}, TypeError, "`period`"),
        ({"box": (1.0, 0.0)}, ValueError, "`box`.*lo < hi"),
        ({"box": (0.5, 0.5)}, ValueError, "`box`"),
        ({"box": (0.0, float("nan"))}, ValueError, "`box`.*finite"),
        ({"box": (0.0, 1.0, 2.0)}, ValueError, "`box`"),
        ({"box": (jnp.zeros(2), jnp.ones(3))}, ValueError, "`box`"),
        ({"box": (jnp.zeros(2), jnp.ones(2)), "starts": jnp.zeros((4, 3))}, ValueError,
         "`box`"),
        ({"box": None}, ValueError, "`box`.*`starts`"),
        ({"box": None, "starts": jnp.array([0.2, float("inf")])}, ValueError,
         "`starts`.*finite"),
        ({"box": None, "starts": jnp.zeros(0)}, ValueError, "`starts`"),
        ({"box": None, "starts": jnp.asarray(0.5)}, ValueError, "`starts`"),
        ({"box": None, "starts": jnp.zeros(3, jnp.complex64)}, TypeError, "`starts`"),
        ({"num_points": 0}, ValueError, "`num_points`"),
        ({"newton_steps": 0}, ValueError, "`newton_steps`"),
        ({"tol": -1.0}, ValueError, "`tol`"),
        ({"merge_tol": 0.0}, ValueError, "`merge_tol`"),
        ({"key": 0}, TypeError, "`key`"),
        ({"params": float("nan")}, ValueError, "`params`.*finite"),
        ({"f": "logistic"}, TypeError, "`f`"),
        ({"f": jaxgrad.vector_field(LOGISTIC)}, TypeError, "`f`.*VectorField"),
        ({"f": jaxgrad.autonomous(lambda x, r: jnp.stack([x, x]))}, ValueError,
         "`f`.*shaped like"),
    ],
)
def test_bad_input_is_refused_by_name(change, exc, pattern):
    with pytest.raises(exc, match=pattern):
        jaxgrad.periodic_orbits(**{**GOOD, **change})
