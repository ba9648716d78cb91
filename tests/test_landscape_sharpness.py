"""scan_landscape's per-point Hessian quantities: ``sharpness`` (the top eigenvalue of the
Hessian over all parameters), ``min_curvature`` and their residuals."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jaxgrad
from jaxgrad.analysis.hessian import lanczos_ritz, ritz_pairs

HESSIAN = ("sharpness", "sharpness_residual", "min_curvature", "min_curvature_residual")


def _spectrum_matrix(seed: int, eigenvalues: np.ndarray) -> np.ndarray:
    """``Q diag(eigenvalues) Qᵀ`` with a random orthogonal ``Q``."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    return (Q * eigenvalues) @ Q.T


def test_lanczos_core_under_vmap_many_spectra(x64):
    """The jittable core (``lanczos_ritz`` + ``ritz_pairs``) vmapped over 40 random
    symmetric matrices: the top and bottom Ritz values against ``numpy.linalg.eigh``, each
    within its residual of every eigenvalue's. (``m >= P``, exact: the one-unit RNN test
    below, ``P = 2``; one step, short of ``λ_max``: the checkpoint test.)"""
    P, m, n = 24, 16, 40
    rng = np.random.default_rng(0)
    mats = np.stack([_spectrum_matrix(s, np.concatenate([[4.0 + s % 3, -2.5],
                                                          rng.uniform(-1.0, 2.0, P - 2)]))
                     for s in range(n)])

    def extremes(A, steps):
        run = lanczos_ritz(lambda v: A @ v, jnp.zeros(P), jax.random.key(0), steps)
        theta, _, res = ritz_pairs(run, jnp.asarray([steps - 1, 0]))
        return theta / run.scale, res / run.scale

    lam = np.linalg.eigvalsh(mats)
    theta, res = jax.jit(jax.vmap(partial(extremes, steps=m)))(jnp.asarray(mats))
    theta, res = np.asarray(theta), np.asarray(res)
    err = np.abs(theta - lam[:, [-1, 0]])
    assert np.all(err <= res + 1e-12) and err.max() < 1e-6


def _quadratic_problem():
    """``L = ½ θᵀAθ + cᵀθ`` over ``{"a", "b", "v"}`` (``P = 30``), ``A`` with eigenvalues
    ``5, -3`` and 28 in ``[-1, 2]``: the Hessian is ``A`` at every point."""
    eig = np.concatenate([[5.0, -3.0], np.linspace(-1.0, 2.0, 28)])
    A = jnp.asarray(_spectrum_matrix(1, eig))
    c = jnp.asarray(np.random.default_rng(2).standard_normal(30))

    def loss(p):
        theta = jnp.concatenate([p["a"][None], p["b"][None], p["v"]])
        return 0.5 * theta @ A @ theta + c @ theta

    params = {"a": jnp.asarray(0.0), "b": jnp.asarray(0.0), "v": jnp.full((28,), 0.1)}
    return loss, params


def test_quadratic_known_spectrum(x64):
    loss, params = _quadratic_problem()
    axes = {"a": (-1.0, 1.0, 3), "b": (-2.0, 2.0, 4)}
    scan = jaxgrad.scan_landscape(loss, params, axes, gradient="none", quantities=HESSIAN,
                                  chunk_size=5, progress=False)  # 20 Lanczos steps, P = 30
    q = scan.quantities
    assert all(q[name].shape == (3, 4) for name in HESSIAN) and scan.finite.all()
    np.testing.assert_allclose(q["sharpness"], 5.0, rtol=1e-10)
    np.testing.assert_allclose(q["min_curvature"], -3.0, rtol=1e-8)
    assert np.all(np.abs(q["sharpness"] - 5.0) <= q["sharpness_residual"] + 1e-13)
    assert np.all(np.abs(q["min_curvature"] + 3.0) <= q["min_curvature_residual"] + 1e-13)


def _mlp_loss(p, x, y):
    h = jnp.tanh(x @ p["W1"] + p["b1"][None, :])
    return jnp.mean((h @ p["w2"] + p["b2"] - y) ** 2)


def _mlp_problem(dtype):
    rng = np.random.default_rng(3)
    params = {"W1": rng.standard_normal((3, 5)), "b1": 0.3 * rng.standard_normal(5),
              "w2": rng.standard_normal(5), "b2": np.asarray(0.1)}  # P = 26
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), params)
    x = jnp.asarray(rng.standard_normal((8, 3)), dtype)
    y = jnp.asarray(np.sin(rng.standard_normal(8)), dtype)
    loss = jax.tree_util.Partial(_mlp_loss, x=x, y=y)
    d1 = jaxgrad.landscape.random_direction(params, key=jax.random.key(1))
    d2 = jaxgrad.landscape.random_direction(params, key=jax.random.key(2))
    axes = {"s": jaxgrad.Direction(d1, (-1.0, 1.0, 3)), "t": jaxgrad.Direction(d2, (-1.0, 1.0, 3))}
    return loss, params, axes


def _reference_extremes(loss, params, scan, axes) -> np.ndarray:
    """``(3, 3, 2)`` λ_max, λ_min of ``numpy.linalg.eigh(jax.hessian)`` in float64."""
    flat, unravel = ravel_pytree(params)
    d1, d2 = (ravel_pytree(axes[k].vector)[0] for k in ("s", "t"))
    hessian = jax.jit(jax.hessian(lambda th: loss(unravel(th))))
    out = np.empty(scan.grid_shape + (2,))
    for i, s in enumerate(scan.coords[0]):
        for j, t in enumerate(scan.coords[1]):
            H = np.asarray(hessian(flat + s * d1 + t * d2), np.float64)
            lam = np.linalg.eigvalsh(0.5 * (H + H.T))
            out[i, j] = lam[-1], lam[0]
    return out


def test_mlp_against_numpy_eigh_float64_and_hessian_eigenvalues(x64):
    loss, params, axes = _mlp_problem(jnp.float64)
    scan = jaxgrad.scan_landscape(loss, params, axes, gradient="none", quantities=HESSIAN,
                                  progress=False)
    ref = _reference_extremes(loss, params, scan, axes)
    q = scan.quantities
    assert scan.finite.all() and q["sharpness"].shape == (3, 3)
    np.testing.assert_allclose(q["sharpness"], ref[..., 0], rtol=1e-9)
    np.testing.assert_allclose(q["min_curvature"], ref[..., 1], rtol=1e-9)
    assert np.all(np.abs(q["sharpness"] - ref[..., 0]) <= q["sharpness_residual"] + 1e-13)
    assert np.all(np.abs(q["min_curvature"] - ref[..., 1])
                  <= q["min_curvature_residual"] + 1e-13)
    # The same Lanczos as jaxgrad.hessian_eigenvalues at one grid point (same key, steps).
    i, j = 2, 0
    d1, d2 = (ravel_pytree(axes[k].vector)[0] for k in ("s", "t"))
    flat, unravel = ravel_pytree(params)
    point = unravel(flat + scan.coords[0][i] * d1 + scan.coords[1][j] * d2)
    eig = jaxgrad.hessian_eigenvalues(loss, point, k=1, which="both", num_iterations=20,
                                      key=jax.random.key(0))
    assert bool(eig.converged)
    np.testing.assert_allclose([q["sharpness"][i, j], q["min_curvature"][i, j]],
                               eig.eigenvalues, rtol=1e-11)
    np.testing.assert_allclose([q["sharpness_residual"][i, j], q["min_curvature_residual"][i, j]],
                               eig.residuals, rtol=1e-3, atol=1e-13)


def test_mlp_against_numpy_eigh_float32():
    loss, params, axes = _mlp_problem(jnp.float32)
    scan = jaxgrad.scan_landscape(loss, params, axes, gradient="none", quantities=HESSIAN,
                                  progress=False)
    q = scan.quantities
    assert q["sharpness"].dtype == np.float32 and scan.finite.all()
    ref = _reference_extremes(loss, params, scan, axes)
    scale = np.max(np.abs(ref), axis=-1)  # ‖H‖ per point
    for k, name in enumerate(("sharpness", "min_curvature")):
        err = np.abs(q[name] - ref[..., k])
        assert np.all(err <= 1e-5 * scale), (name, (err / scale).max())
        assert np.all(q[f"{name}_residual"] <= 1e-4 * scale)


def _one_unit_loss(p, num_steps=50):
    """Pascanu's one-unit RNN ``x_t = w σ(x_{t-1}) + b``, ``x_0 = 0.5``: ``(σ(x_T) − 0.7)²``."""
    dtype = jnp.result_type(p.b)
    step = partial(jaxgrad.models.one_unit_step, params=p)
    xs = jaxgrad.unroll(step, jnp.asarray(0.5, dtype), jnp.zeros((num_steps,), dtype))
    return (jax.nn.sigmoid(xs[-1]) - 0.7) ** 2


def test_sharpness_blows_up_at_the_pascanu_cliff(x64):
    """Along b at w = 5 across the cliff b = 0.5 − wσ(0.5) (grid point 30 on it): the
    sharpness grows toward the cliff from both sides and peaks on it, where the gradient
    norm peaks, by orders of magnitude."""
    w = 5.0
    b_cliff = 0.5 - w / (1.0 + np.exp(-0.5))
    params = jaxgrad.models.OneUnitParams(jnp.asarray(w), jnp.asarray(-3.0))
    scan = jaxgrad.scan_landscape(_one_unit_loss, params,
                                  {"b": (b_cliff - 0.6, b_cliff + 0.6, 61)},
                                  quantities=("sharpness", "sharpness_residual"),
                                  progress=False)
    sharp, g = scan.quantities["sharpness"], scan.gradient_norm
    assert scan.finite.all()
    assert int(np.argmax(sharp)) == int(np.argmax(g)) == 30
    assert sharp[30] > 1e6 * max(sharp[29], sharp[31]) and sharp[30] > 1e7
    assert np.all(np.diff(sharp[:31]) > 0) and np.all(np.diff(sharp[30:]) < 0)
    # P = 2: two Lanczos steps are taken (of the default 20), exact; the residual is rounding.
    assert np.all(scan.quantities["sharpness_residual"] <= 1e-10 * np.abs(sharp))


def test_nonfinite_points_are_reported():
    """Where the Hessian is not finite (``a^{3/2}``, ``∂²/∂a² = ¾ a^{-1/2}``, at ``a <= 0``)
    the Hessian quantities are NaN and the point is listed as non-finite."""

    def loss(p):
        return jnp.sqrt(p["a"]) ** 3 + jnp.sum(p["v"] ** 2)

    params = {"a": jnp.asarray(1.0), "v": jnp.ones(3)}
    scan = jaxgrad.scan_landscape(loss, params, {"a": (-1.0, 1.0, 5)}, gradient="none",
                                  quantities=("sharpness", "min_curvature"), progress=False)
    bad = scan.coords[0] <= 0.0
    assert scan.num_nonfinite == 3 and np.array_equal(~scan.finite, bad)
    assert np.all(np.isnan(scan.quantities["sharpness"][bad]))
    np.testing.assert_allclose(scan.quantities["sharpness"][~bad], 2.0, rtol=1e-5)
    np.testing.assert_allclose(scan.quantities["min_curvature"][~bad],
                               0.75 / np.sqrt(scan.coords[0][~bad]), rtol=1e-5)


def _small_quadratic(p):
    return (p["a"] - 1.0) ** 2 + 3.0 * p["b"] ** 2 + p["a"] * p["b"]


def test_lanczos_iterations_is_part_of_a_checkpoint(tmp_path):
    kw = dict(gradient="none", quantities=("sharpness", "sharpness_residual"),
              checkpoint=tmp_path / "scan", progress=False)
    params, axes = {"a": 0.0, "b": 0.0}, {"a": (-1.0, 1.0, 2)}
    done = jaxgrad.scan_landscape(_small_quadratic, params, axes, lanczos_iterations=1, **kw)
    # One Lanczos step: the start vector's Rayleigh quotient, inside the spectrum
    # {4 ± √2}, with a residual that reaches an eigenvalue but says it is unconverged.
    sharp = np.asarray(done.quantities["sharpness"])
    res = np.asarray(done.quantities["sharpness_residual"])
    lam = np.asarray([4.0 - np.sqrt(2.0), 4.0 + np.sqrt(2.0)])
    assert np.all(sharp < lam[1] - 1e-3) and np.all(sharp > lam[0] + 1e-3)
    assert np.all(np.min(np.abs(sharp[:, None] - lam), axis=1) <= res * (1 + 1e-5))
    assert np.all(res > 1e-2 * sharp)
    with pytest.raises(ValueError, match="`lanczos_iterations`"):
        jaxgrad.scan_landscape(_small_quadratic, params, axes, lanczos_iterations=2, **kw)


@pytest.mark.parametrize("value,error", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                         (True, TypeError)])
def test_lanczos_iterations_bad_input(value, error):
    with pytest.raises(error, match="`lanczos_iterations`"):
        jaxgrad.scan_landscape(_small_quadratic, {"a": 0.0, "b": 0.0}, {"a": (-1.0, 1.0, 2)},
                               quantities=("sharpness",), lanczos_iterations=value,
                               progress=False)
