"""Branch points: detection, location and branch switching (issue #14).

Closed forms: the logistic map ``x -> r x (1 - x)`` has the branches ``x = 0`` and
``x = 1 - 1/r``, crossing at ``r = 1`` (transcritical); the flow ``x' = μ x - x³`` and the
map ``x -> (1 + μ) x - x³`` have ``x = 0`` and ``x² = μ`` (pitchfork at ``μ = 0``); a 2-D flow
``z' = (μ z_0 - z_0² + z_0 z_1 / 2, -z_1 + z_0²)``, rotated by ``θ`` and shifted by ``c``
(``x = Q(θ) z + c``, ``μ = p - p_0``), has ``z = 0`` and ``z_1 = z_0², μ = z_0 - z_0²/2``:
a transcritical point off the axes at ``(x, p) = (c, p_0)`` and a fold of the second branch
at ``z_0 = 1``, ``p = p_0 + 1/2``.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad

LOGISTIC = jaxgrad.autonomous(lambda x, p: p["r"] * x * (1 - x))
PITCHFORK = {
    "flow": jaxgrad.vector_field(lambda x, u, p: p["mu"] * x - x**3),
    "map": jaxgrad.autonomous(lambda x, p: (1 + p["mu"]) * x - x**3),
}


def _rotation(theta):
    c, s = jnp.cos(theta), jnp.sin(theta)
    return jnp.stack([jnp.stack([c, -s]), jnp.stack([s, c])])


def _rotated(x, u, p):
    q = _rotation(p["theta"])
    z = q.T @ (x - p["c"])
    mu = p["p"] - p["p0"]
    return q @ jnp.stack([mu * z[0] - z[0] ** 2 + 0.5 * z[0] * z[1], -z[1] + z[0] ** 2])


ROTATED = jaxgrad.vector_field(_rotated)


def _valid(br):
    ok = np.asarray(br.valid)
    return np.asarray(br.x)[ok], np.asarray(br.p)[ok]


@pytest.mark.slow
def test_logistic_transcritical_located_and_switched(x64):
    br = jaxgrad.continue_branch(LOGISTIC, 0.0, params={"r": 0.5}, param="r",
                                 p_range=(0.5, 1.5), ds=0.05)
    assert [(b.kind, b.branch_type) for b in br.bifurcations] == [
        ("branch_point", "transcritical")]
    bp = br.bifurcations[0]
    assert bool(bp.converged) and float(bp.residual) < 1e-12
    np.testing.assert_allclose([float(bp.x), float(bp.p)], [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(np.asarray(bp.eigenvalues).real, [1.0], atol=1e-12)
    # The followed branch x = 0 first, then x = 1 - 1/r (dx/dr = 1/r² = 1 at r = 1).
    np.testing.assert_allclose(np.abs(np.asarray(bp.branch_tangents)),
                               [[0.0, 1.0], [2**-0.5, 2**-0.5]], atol=1e-12)
    new = jaxgrad.analysis.switch_branch(LOGISTIC, bp, params={"r": 0.5}, param="r",
                                         p_range=(0.5, 1.5), ds=0.05)
    x, r = _valid(new)
    assert r.min() < 0.6 and r.max() > 1.4 and np.all(np.diff(r) > 0)
    np.testing.assert_allclose(x, 1 - 1 / r, atol=1e-12)
    # Stable (|μ| = |2 - r| < 1) only past the branch point: exchange of stability.
    stable = np.asarray(new.stability)[np.asarray(new.valid)] == 0
    np.testing.assert_array_equal(stable[np.abs(r - 1) > 1e-9], r[np.abs(r - 1) > 1e-9] > 1)
    assert [b.kind for b in new.bifurcations] == ["branch_point"]
    assert abs(float(new.bifurcations[0].p) - 1.0) < 1e-12
    # The branch point is a row of the switched branch.
    assert np.isclose(float(new.p[new.x.shape[0] // 2]), 1.0, atol=1e-12)


@pytest.mark.slow
def test_logistic_float32_and_no_jump_onto_the_crossing_branch():
    """In float32: located to 1e-6 and switched to 1e-5. Continued along x = 1 - 1/r from
    r = 0.5, the branch stays on x = 1 - 1/r past r = 1 (with these steps it used to turn
    the corner onto x = 0, which no test function sees) and reports the branch point."""
    br = jaxgrad.continue_branch(LOGISTIC, -1.0, params={"r": 0.5}, param="r",
                                 p_range=(0.5, 1.5), ds=0.01)
    x, r = _valid(br)
    assert br.x.dtype == jnp.float32 and r.max() > 1.4
    np.testing.assert_allclose(x, 1 - 1 / r, atol=1e-5)
    assert [(b.kind, b.branch_type) for b in br.bifurcations] == [
        ("branch_point", "transcritical")]
    bp = br.bifurcations[0]
    assert bool(bp.converged)
    assert abs(float(bp.p) - 1.0) < 1e-6 and abs(float(bp.x)) < 1e-6
    new = jaxgrad.analysis.switch_branch(LOGISTIC, bp, params={"r": 0.5}, param="r",
                                         p_range=(0.5, 1.5), ds=0.05)
    x, r = _valid(new)
    np.testing.assert_allclose(x, 0.0, atol=1e-5)
    assert r.min() < 0.6 and r.max() > 1.4


@pytest.mark.parametrize("kind", ["flow", "map"])
def test_pitchfork_located_and_switched(x64, kind):
    f = PITCHFORK[kind]
    kw = dict(param="mu", p_range=(-0.5, 0.5), ds=0.02)
    br = jaxgrad.continue_branch(f, 0.0, params={"mu": -0.5}, **kw)
    assert [(b.kind, b.branch_type) for b in br.bifurcations] == [("branch_point", "pitchfork")]
    bp = br.bifurcations[0]
    assert bool(bp.converged)
    np.testing.assert_allclose([float(bp.x), float(bp.p)], [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(np.abs(np.asarray(bp.branch_tangents)), [[0, 1], [1, 0]],
                               atol=1e-12)
    new = jaxgrad.analysis.switch_branch(f, bp, params={"mu": -0.5}, **kw)
    x, mu = _valid(new)
    assert x.min() < -0.6 and x.max() > 0.6 and np.all(np.diff(x) > 0)  # both halves
    np.testing.assert_allclose(x**2, mu, atol=1e-12)
    assert [(b.kind, b.branch_type) for b in new.bifurcations] == [
        ("branch_point", "pitchfork")]
    # Along the bifurcating branch x² = μ, dp/ds changes sign at x = 0: a branch point
    # (pitchfork), not a fold.
    down = jaxgrad.continue_branch(f, 0.5**0.5, params={"mu": 0.5}, direction=-1, **kw)
    assert [(b.kind, b.branch_type) for b in down.bifurcations] == [
        ("branch_point", "pitchfork")]
    x, mu = _valid(down)
    assert x.min() < -0.6
    np.testing.assert_allclose(x**2, mu, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nd_branch_point_off_the_axes(x64, seed):
    rng = np.random.default_rng(seed)
    theta, p0 = rng.uniform(0, 2 * np.pi), rng.uniform(-1, 1)
    c = rng.normal(size=2)
    params = {"p": jnp.asarray(p0 - 0.5), "p0": jnp.asarray(p0), "theta": jnp.asarray(theta),
              "c": jnp.asarray(c)}
    kw = dict(param="p", p_range=(p0 - 0.5, p0 + 0.8), ds=0.05)
    br = jaxgrad.continue_branch(ROTATED, jnp.asarray(c), params=params, **kw)
    assert [(b.kind, b.branch_type) for b in br.bifurcations] == [
        ("branch_point", "transcritical")]
    bp = br.bifurcations[0]
    assert bool(bp.converged)
    np.testing.assert_allclose(np.asarray(bp.x), c, atol=1e-10)
    np.testing.assert_allclose(float(bp.p), p0, atol=1e-10)
    new = jaxgrad.analysis.switch_branch(ROTATED, bp, params=params, **kw)
    x, p = _valid(new)
    q = np.asarray(_rotation(jnp.asarray(theta)))
    z = (x - c) @ q  # rows: Qᵀ (x - c)
    assert z[:, 0].min() < -0.3 and z[:, 0].max() > 1.2  # through the point and the fold
    np.testing.assert_allclose(z[:, 1], z[:, 0] ** 2, atol=1e-10)
    np.testing.assert_allclose(p - p0, z[:, 0] - z[:, 0] ** 2 / 2, atol=1e-10)
    kinds = [(b.kind, round(float(b.p) - p0, 8)) for b in new.bifurcations]
    assert kinds == [("branch_point", 0.0), ("fold", 0.5)]
    fold = new.bifurcations[1]
    assert bool(fold.converged) and fold.branch_tangents is None
    np.testing.assert_allclose(q.T @ (np.asarray(fold.x) - c), [1.0, 1.0], atol=1e-8)


def test_folds_stay_folds_and_are_not_branch_points(x64):
    def fold_map(x, a):  # x ↦ x + a - x²: fixed points ±√a, a fold at a = 0
        return x + a - x * x

    br = jaxgrad.continue_branch(fold_map, 0.5, params=0.25, param=None, kind="map",
                                 p_range=(-0.1, 0.3), direction=-1, ds=0.02)
    x, a = _valid(br)
    assert x.min() < -0.3
    assert [b.kind for b in br.bifurcations] == ["fold"]
    assert br.bifurcations[0].branch_type == "" and br.bifurcations[0].branch_tangents is None
    # A fold is not a branch point: the branch-point system has no root there.
    bp = jaxgrad.locate_bifurcation(fold_map, 0.01, params=0.001, param=None, kind="map",
                                    bifurcation="branch_point")
    assert not bool(bp.converged) and not float(bp.residual) < 1e-6
    with pytest.raises(ValueError, match="`point` is a branch point that did not converge"):
        jaxgrad.analysis.switch_branch(fold_map, bp, params=0.25, param=None, kind="map",
                                       p_range=(-0.1, 0.3))
    with pytest.raises(ValueError, match="`point` must be a BifurcationPoint of kind "
                                         "'branch_point'.*'fold'"):
        jaxgrad.analysis.switch_branch(fold_map, br.bifurcations[0], params=0.25, param=None,
                                       kind="map", p_range=(-0.1, 0.3))


def test_switch_branch_bad_input():
    bp = jaxgrad.locate_bifurcation(LOGISTIC, 0.02, params={"r": 1.05}, param="r",
                                    bifurcation="branch_point")
    assert bool(bp.converged) and bp.branch_type == "transcritical"
    kw = dict(params={"r": 0.5}, param="r", p_range=(0.5, 1.5))
    with pytest.raises(ValueError, match="`point` must be a BifurcationPoint.*tuple"):
        jaxgrad.analysis.switch_branch(LOGISTIC, (bp.x, bp.p), **kw)
    with pytest.raises(ValueError, match="`point.p`=1.0.* must lie inside `p_range`"):
        jaxgrad.analysis.switch_branch(LOGISTIC, bp, params={"r": 0.5}, param="r", p_range=(1.5, 2))
    with pytest.raises(ValueError, match="`point.branch_tangents` must have shape"):
        jaxgrad.analysis.switch_branch(LOGISTIC, bp._replace(branch_tangents=jnp.ones((2, 3))),
                                       **kw)
    with pytest.raises(ValueError, match="unknown `param` 's'"):
        jaxgrad.analysis.switch_branch(LOGISTIC, bp, params={"r": 0.5}, param="s",
                                       p_range=(0.5, 1.5))
    with pytest.raises(ValueError, match="`ds`"):
        jaxgrad.analysis.switch_branch(LOGISTIC, bp, ds=-1.0, **kw)
