"""`trajectory_directions`: PCA of an optimisation trajectory (Li et al. 2018, section 7)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.decomposition import PCA

import jaxgrad


def _flat(tree):
    return np.concatenate([np.ravel(np.asarray(leaf, np.float64))
                           for leaf in jax.tree_util.tree_leaves(tree)])


@pytest.mark.parametrize("seed", range(5))
def test_matches_scikit_learn_pca_of_the_differences(seed):
    rng = np.random.default_rng(seed)
    n, shapes = 12, {"W": (4, 5), "b": (5,), "v": (3,)}
    # a drifting, noisy path: a few strong directions and isotropic noise
    steps = rng.normal(size=(n, 28)) * np.r_[5.0, 2.0, 1.0, np.full(25, 0.1)]
    flat = np.cumsum(steps, axis=0) @ np.linalg.qr(rng.normal(size=(28, 28)))[0]
    sizes = np.cumsum([np.prod(s) for s in shapes.values()])[:-1]
    iterates = {k: jnp.asarray(part.reshape((n, *s)), jnp.float32) for (k, s), part in
                zip(shapes.items(), np.split(flat, sizes, axis=1), strict=True)}
    pca = jaxgrad.landscape.trajectory_directions(iterates, num=3)
    rows = np.stack([_flat(jax.tree_util.tree_map(lambda x, i=i: x[i], iterates))
                     for i in range(n)])
    diffs = rows - rows[-1]
    ref = PCA(n_components=3).fit(diffs)
    basis = np.stack([_flat(d) for d in pca.directions])
    for mine, theirs in zip(basis, ref.components_, strict=True):
        assert abs(abs(mine @ theirs) - 1.0) < 1e-5  # same axis, up to sign
    np.testing.assert_allclose(pca.explained_variance_ratio, ref.explained_variance_ratio_,
                               rtol=1e-5)
    np.testing.assert_allclose(basis @ basis.T, np.eye(3), atol=1e-5)
    np.testing.assert_allclose(pca.coordinates, diffs @ basis.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(pca.coordinates[-1], 0.0)
    assert np.all(pca.coordinates[0] >= 0)  # the sign convention
    resid = np.linalg.norm(diffs - pca.coordinates @ basis, axis=1)
    np.testing.assert_allclose(pca.residual_norms, resid, rtol=1e-3, atol=1e-4)
    for d, (k, s) in zip(pca.directions, shapes.items()):
        assert d[k].shape == s and d[k].dtype == jnp.float32


@pytest.mark.parametrize("seed", range(3))
def test_a_planar_trajectory_is_recovered_exactly(seed, x64):
    """Iterates in a 2-D plane through the final weights: the plane, the path, no residual."""
    rng = np.random.default_rng(100 + seed)
    dim, n = 500, 30
    u, v = np.linalg.qr(rng.normal(size=(dim, 2)))[0].T
    s = np.linspace(0, 1, n)
    a, b = 3 * (1 - s) ** 2, np.sin(4 * s) * (1 - s)
    final = rng.normal(size=dim)
    path = final + a[:, None] * u + b[:, None] * v
    pca = jaxgrad.landscape.trajectory_directions({"theta": jnp.asarray(path)})
    basis = np.stack([np.asarray(d["theta"]) for d in pca.directions])
    assert basis.dtype == np.float64
    # the plane spanned by (u, v): both principal angles 0
    cosines = np.linalg.svd(basis @ np.stack([u, v]).T, compute_uv=False)
    np.testing.assert_allclose(cosines, 1.0, atol=1e-10)
    assert np.max(pca.residual_norms) < 1e-10
    np.testing.assert_allclose(np.sum(pca.explained_variance_ratio), 1.0, atol=1e-12)
    # coordinates are (a, b) up to a rotation of the plane: distances are kept
    diffs = np.stack([a, b], axis=1)
    np.testing.assert_allclose(np.linalg.norm(pca.coordinates, axis=1),
                               np.linalg.norm(diffs, axis=1), atol=1e-10)


def test_directions_feed_scan_landscape_and_the_path_lies_on_the_surface():
    """Train a quadratic with SGD: the path is planar (2 eigen-directions move), so the
    scan's loss at each projected iterate is that iterate's loss."""
    A = jnp.diag(jnp.asarray([3.0, 1.0, 0.0, 0.0]))
    loss = lambda p: 0.5 * p["x"] @ A @ p["x"]  # noqa: E731
    x, path = jnp.asarray([1.0, -2.0, 0.5, 0.5]), []
    for _ in range(9):
        path.append(x)
        x = x - 0.2 * A @ x
    path.append(x)
    pca = jaxgrad.landscape.trajectory_directions({"x": jnp.stack(path)})
    c = pca.coordinates.astype(np.float32)
    (a, ia), (b, ib) = (np.unique(c[:, j], return_inverse=True) for j in range(2))
    scan = jaxgrad.scan_landscape(
        loss, {"x": path[-1]},
        {"a": jaxgrad.Direction(pca.directions[0], a), "b": jaxgrad.Direction(
            pca.directions[1], b)}, progress=False)
    on_path = np.asarray(scan.loss)[ia, ib]
    np.testing.assert_allclose(on_path, [float(loss({"x": p})) for p in path], rtol=1e-4)
    assert np.max(pca.residual_norms) < 1e-5


def test_bad_input_is_refused_by_name():
    good = {"w": jnp.arange(12.0).reshape(4, 3) ** 2}
    with pytest.raises(ValueError, match="`num`"):
        jaxgrad.landscape.trajectory_directions(good, num=0)
    with pytest.raises(ValueError, match="at least num \\+ 1 = 5"):
        jaxgrad.landscape.trajectory_directions(good, num=4)
    with pytest.raises(ValueError, match="`iterates` leaves disagree"):
        jaxgrad.landscape.trajectory_directions({"w": jnp.ones((4, 3)), "b": jnp.ones((5,))})
    with pytest.raises(ValueError, match="`iterates`.*(NaN|finite)"):
        jaxgrad.landscape.trajectory_directions({"w": good["w"].at[1, 1].set(jnp.nan)})
    with pytest.raises(ValueError, match="independent directions"):
        jaxgrad.landscape.trajectory_directions({"w": jnp.ones((6, 3))})
    with pytest.raises(ValueError, match="independent directions"):  # a straight line
        jaxgrad.landscape.trajectory_directions({"w": jnp.outer(jnp.arange(6.0), jnp.ones(3))})
    with pytest.raises(ValueError, match="`iterates`"):
        jaxgrad.landscape.trajectory_directions({})
