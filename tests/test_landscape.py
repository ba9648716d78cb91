"""Loss-landscape scanner, directions and cliff detection."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from functools import partial
from itertools import product
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad
from jaxgrad.landscape._engine import evaluate_chunk as _evaluate_chunk
from jaxgrad.landscape._grid import axis_table as _axis_table
from jaxgrad.landscape._grid import grid_points as _grid_points

ROOT = Path(__file__).resolve().parents[1]


def quadratic(p):
    """L = (a - 1)² + 3 b² + c²/2: ∂L/∂a = 2(a - 1), ∂L/∂b = 6 b, ∂L/∂c = c."""
    return (p["a"] - 1.0) ** 2 + 3.0 * p["b"] ** 2 + 0.5 * p["c"] ** 2


def doya_loss(p, num_steps=30):
    dtype = jnp.result_type(p.b)
    step = partial(jaxgrad.doya_step, params=p, eps=0.5)
    xs = jaxgrad.unroll(step, jnp.asarray(0.5, dtype), jnp.zeros((num_steps,), dtype))
    return (0.855 - xs[-1]) ** 2


DOYA = jaxgrad.DoyaParams(5.0, -2.5, 0.0)
DOYA_AXES = {"w": (4.0, 6.0, 7), "b": (-3.0, -2.0, 9)}


@pytest.mark.parametrize("method", ["forward", "reverse"])
def test_quadratic_closed_form(x64, method):
    params = {"a": 0.0, "b": 0.0, "c": 2.0}
    scan = jaxgrad.scan_landscape(quadratic, params, {"a": (-1.0, 3.0, 9), "b": (-1.0, 1.0, 5)},
                                  method=method, chunk_size=8, progress=False)
    A, B = np.meshgrid(*scan.coords, indexing="ij")
    assert scan.method == method and scan.complete and scan.num_nonfinite == 0
    assert scan.names == ("a", "b")
    np.testing.assert_allclose(scan.loss, (A - 1) ** 2 + 3 * B**2 + 2.0, rtol=1e-13)
    np.testing.assert_allclose(scan.axis_gradients[..., 0], 2 * (A - 1), atol=1e-12)
    np.testing.assert_allclose(scan.axis_gradients[..., 1], 6 * B, atol=1e-12)
    # The full gradient includes the unscanned c (∂L/∂c = 2).
    np.testing.assert_allclose(scan.gradient_norm,
                               np.sqrt((2 * (A - 1)) ** 2 + (6 * B) ** 2 + 4.0), rtol=1e-13)
    assert scan.finite.all()


def test_direction_axes_closed_form(x64):
    params = {"a": jnp.array([1.0, -1.0]), "b": jnp.array(0.5)}
    d = {"a": jnp.array([1.0, 2.0]), "b": jnp.array(-1.0)}

    def loss(p):
        return jnp.sum(p["a"] ** 2) + p["b"] ** 2

    alphas = np.linspace(-2.0, 2.0, 11)
    scan = jaxgrad.scan_landscape(loss, params, {"alpha": jaxgrad.Direction(d, alphas)},
                                  progress=False)
    a1, a2, b = 1 + alphas, -1 + 2 * alphas, 0.5 - alphas
    np.testing.assert_allclose(scan.loss, a1**2 + a2**2 + b**2, rtol=1e-13)
    # ∂L/∂α = <∇L, d>
    np.testing.assert_allclose(scan.axis_gradients[:, 0], 2 * a1 + 4 * a2 - 2 * b, atol=1e-12)
    np.testing.assert_allclose(scan.gradient_norm, 2 * np.sqrt(a1**2 + a2**2 + b**2),
                               rtol=1e-13)


def test_line_direction_walks_between_parameter_sets(x64):
    start = {"a": 0.0, "b": 1.0, "c": 0.0}
    end = {"a": 1.0, "b": 0.0, "c": 2.0}
    d = jaxgrad.landscape.line_direction(start, end)
    scan = jaxgrad.scan_landscape(quadratic, start, {"t": jaxgrad.Direction(d, (0.0, 1.0, 5))},
                                  progress=False)
    assert scan.loss[0] == pytest.approx(float(quadratic(start)))
    assert scan.loss[-1] == pytest.approx(float(quadratic(end)))


def test_forward_and_reverse_agree():
    fwd = jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, method="forward", progress=False)
    rev = jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, method="reverse", progress=False)
    np.testing.assert_allclose(fwd.loss, rev.loss, rtol=1e-6)
    np.testing.assert_allclose(fwd.axis_gradients, rev.axis_gradients, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fwd.gradient_norm, rev.gradient_norm, rtol=1e-4, atol=1e-6)
    axes_only = jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, gradient="axes",
                                       progress=False)
    assert axes_only.method == "forward" and axes_only.gradient_norm is None
    np.testing.assert_allclose(axes_only.axis_gradients, rev.axis_gradients, rtol=1e-4,
                               atol=1e-6)
    loss_only = jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, gradient="none",
                                       progress=False)
    assert loss_only.method == "none" and loss_only.axis_gradients is None
    np.testing.assert_allclose(loss_only.loss, rev.loss, rtol=1e-6)


def test_auto_method_picks_forward_for_few_tangents():
    assert jaxgrad.scan_landscape(quadratic, {"a": 0.0, "b": 0.0, "c": 0.0},
                                  {"a": (0.0, 1.0, 3)}, progress=False).method == "forward"
    many = {"a": 0.0, "b": 0.0, "c": jnp.zeros(20)}

    def loss(p):
        return p["a"] ** 2 + p["b"] ** 2 + jnp.sum(p["c"] ** 2)

    assert jaxgrad.scan_landscape(loss, many, {"a": (0.0, 1.0, 3)},
                                  progress=False).method == "reverse"
    assert jaxgrad.scan_landscape(loss, many, {"a": (0.0, 1.0, 3)}, gradient="axes",
                                  progress=False).method == "forward"


def test_scan_matches_direct_evaluation():
    scan = jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, progress=False)
    i, j = 3, 5
    p = DOYA._replace(w=jnp.float32(scan.coords[0][i]), b=jnp.float32(scan.coords[1][j]))
    value, grad = jax.value_and_grad(doya_loss)(p)
    assert scan.loss[i, j] == pytest.approx(float(value), rel=1e-5)
    assert scan.axis_gradients[i, j, 1] == pytest.approx(float(grad.b), rel=1e-4, abs=1e-7)


def test_chunked_equals_unchunked():
    whole = jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, chunk_size=1000, progress=False)
    chunked = jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, chunk_size=5, progress=False)
    np.testing.assert_array_equal(whole.loss, chunked.loss)
    np.testing.assert_array_equal(whole.axis_gradients, chunked.axis_gradients)
    np.testing.assert_array_equal(whole.gradient_norm, chunked.gradient_norm)


@pytest.mark.parametrize("gradient,method", [("full", "forward"), ("axes", "forward"),
                                             ("none", "auto"), ("full", "reverse")])
def test_blocks_equal_whole_slices(gradient, method):
    """Evaluating a device's points in blocks (lax.map, with a remainder block) changes
    nothing in forward mode; reverse mode may differ in the last bit (batched contraction)."""
    kw = dict(gradient=gradient, method=method, chunk_size=20, progress=False)
    whole = jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, block_size=20, **kw)
    blocked = jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, block_size=3, **kw)
    assert blocked.complete and blocked.num_nonfinite == 0 and blocked.finite.all()
    np.testing.assert_array_equal(whole.loss, blocked.loss)
    for field in ("axis_gradients", "gradient_norm"):
        a, b = getattr(whole, field), getattr(blocked, field)
        assert (a is None) == (b is None)
        if a is None:
            continue
        if method == "reverse":
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12)
        else:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(7, 9), (3, 70_000, 80_000), (50_000, 1, 90_001)])
def test_grid_points_match_numpy_unravel(shape):
    """The device-side grid coordinates equal NumPy's int64 unravel, also on a grid of
    more than 2^31 points, including the clamped padding past the grid's end."""
    n = math.prod(shape)
    values = [np.arange(size, dtype=np.float32) * 2.0 + j for j, size in enumerate(shape)]
    count = 4096
    for start in sorted({0, n // 3 + 17, max(n - 1000, 0)}):
        digits = np.asarray(np.unravel_index(start, shape), np.int32)
        # limit: 2 count takes the float32 division, 2^30 the integer one.
        for first, limit in product((0, count), (2 * count, 1 << 30)):
            got = np.stack(_grid_points(jnp.asarray(digits), jnp.asarray(shape, jnp.int32),
                                          jnp.asarray(_axis_table(values)), first, count,
                                          limit), axis=1)
            flat = np.minimum(start + first + np.arange(count, dtype=np.int64), n - 1)
            multi = np.unravel_index(flat, shape)
            want = np.stack([v[m] for v, m in zip(values, multi)], axis=1)
            np.testing.assert_array_equal(got, want)


def test_grid_of_another_shape_reuses_the_compiled_chunk():
    jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, chunk_size=8, progress=False)
    size = _evaluate_chunk._cache_size()
    # 5 x 11 points (DOYA_AXES has 7 x 9): chunks of 8 points, a table of 16 values again.
    jaxgrad.scan_landscape(doya_loss, DOYA, {"w": (4.0, 6.0, 5), "b": (-3.0, -2.0, 11)},
                           chunk_size=8, progress=False)
    assert _evaluate_chunk._cache_size() == size


def test_no_recompilation_on_second_call():
    jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, chunk_size=8, progress=False)
    size = _evaluate_chunk._cache_size()
    other = DOYA._replace(w_in=0.3)
    jaxgrad.scan_landscape(doya_loss, other, {"w": (1.0, 2.0, 7), "b": (0.0, 1.0, 9)},
                           chunk_size=8, progress=False)
    assert _evaluate_chunk._cache_size() == size


def test_resume_after_interruption(tmp_path):
    reference = jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, chunk_size=6,
                                       progress=False)
    folder = tmp_path / "scan"
    partial_scan = jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, chunk_size=6,
                                          checkpoint=folder, max_chunks=3, progress=False)
    assert not partial_scan.complete
    done = np.asarray(partial_scan.finite).ravel()
    assert done[:18].all() and not done[18:].any()
    assert np.isnan(np.asarray(partial_scan.loss).ravel()[18:]).all()
    # A second interrupted call continues where the first stopped...
    partial_scan = jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, chunk_size=6,
                                          checkpoint=folder, max_chunks=2, progress=False)
    assert np.asarray(partial_scan.finite).ravel()[:30].all()
    # ...and the last call finishes it, identical to an uninterrupted scan.
    resumed = jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, chunk_size=6,
                                     checkpoint=folder, progress=False)
    assert resumed.complete
    np.testing.assert_array_equal(np.asarray(resumed.loss), reference.loss)
    np.testing.assert_array_equal(np.asarray(resumed.axis_gradients), reference.axis_gradients)
    np.testing.assert_array_equal(np.asarray(resumed.gradient_norm), reference.gradient_norm)
    # Another scan in the same folder is refused.
    with pytest.raises(ValueError, match="checkpoint"):
        jaxgrad.scan_landscape(doya_loss, DOYA, {"w": (4.0, 6.0, 8), "b": (-3.0, -2.0, 9)},
                               chunk_size=6, checkpoint=folder, progress=False)


def test_nonfinite_points_reported_while_the_rest_completes():
    def loss(p):
        return jnp.log(p["a"]) + p["b"] ** 2

    a = np.array([-1.0, -0.5, 0.5, 1.0, 2.0], np.float32)
    b = np.array([0.0, 1.0], np.float32)
    scan = jaxgrad.scan_landscape(loss, {"a": 1.0, "b": 0.0}, {"a": a, "b": b},
                                  progress=False)
    assert scan.complete
    assert scan.num_nonfinite == 4
    np.testing.assert_array_equal(scan.nonfinite_points,
                                  [[-1.0, 0.0], [-1.0, 1.0], [-0.5, 0.0], [-0.5, 1.0]])
    np.testing.assert_array_equal(scan.finite, a[:, None] > 0 + np.zeros((1, 2)))
    A, B = np.meshgrid(a[2:], b, indexing="ij")
    np.testing.assert_allclose(scan.loss[2:], np.log(A) + B**2, rtol=1e-6)
    cliffs = jaxgrad.find_cliffs(scan)  # non-finite points are skipped
    assert len(cliffs.jump_points) == 0


def test_max_reported_caps_the_list():
    def loss(p):
        return jnp.log(p["a"])

    scan = jaxgrad.scan_landscape(loss, {"a": 1.0}, {"a": (-2.0, 1.0, 31)}, max_reported=3,
                                  progress=False)
    assert scan.num_nonfinite == 20 + 1  # a < 0 gives NaN, a = 0 gives -inf
    assert scan.nonfinite_points.shape == (3, 1)


def test_find_cliffs_locates_a_jump_and_a_peak(x64):
    def step_loss(p):
        return jax.nn.sigmoid(1e4 * (p["a"] - 0.3))  # a wall far narrower than the grid

    scan = jaxgrad.scan_landscape(step_loss, {"a": 0.0}, {"a": (0.0, 1.0, 100)},
                                  progress=False)  # 0.3 is not a grid point
    cliffs = jaxgrad.find_cliffs(scan)
    assert len(cliffs.jump_points) == 1
    assert abs(cliffs.jump_points[0, 0] - 0.3) <= 0.01
    assert cliffs.jump_sizes[0] > 0.9

    def ridge(p):
        return jnp.tanh(50.0 * (p["a"] - 0.3))  # resolved: a gradient peak, no jump

    scan = jaxgrad.scan_landscape(ridge, {"a": 0.0}, {"a": (0.0, 1.0, 1001)}, progress=False)
    cliffs = jaxgrad.find_cliffs(scan)
    assert len(cliffs.jump_points) == 0
    assert cliffs.peak_points.shape == (1, 1)
    assert cliffs.peak_points[0, 0] == pytest.approx(0.3, abs=1e-3)
    assert cliffs.peak_gradient_norms[0] == pytest.approx(50.0, rel=1e-6)

    smooth = jaxgrad.scan_landscape(quadratic, {"a": 0.0, "b": 0.0, "c": 0.0},
                                    {"a": (-1.0, 1.0, 21), "b": (-1.0, 1.0, 21)},
                                    progress=False)
    cliffs = jaxgrad.find_cliffs(smooth)
    assert len(cliffs.jump_points) == 0 and len(cliffs.peak_points) == 0


def test_three_axis_grid_and_a_plane_wall(x64):
    def loss(p):
        return jax.nn.sigmoid(1e4 * (p["a"] + p["b"] + p["c"] - 0.1)) + 0.1 * p["a"] ** 2

    params = {"a": 0.0, "b": 0.0, "c": 0.0}
    axes = {"a": (-1.0, 1.0, 8), "b": (-1.0, 1.0, 9), "c": (-1.0, 1.0, 10)}
    scan = jaxgrad.scan_landscape(loss, params, axes, progress=False)
    assert scan.loss.shape == (8, 9, 10) and scan.axis_gradients.shape == (8, 9, 10, 3)
    A, B, C = np.meshgrid(*scan.coords, indexing="ij")
    wall = 0.5 * (1 + np.tanh(0.5e4 * (A + B + C - 0.1)))  # the sigmoid without overflow
    np.testing.assert_allclose(scan.loss, wall + 0.1 * A**2, rtol=1e-12, atol=1e-15)
    cliffs = jaxgrad.find_cliffs(scan)
    assert len(cliffs.jump_points) > 50
    # Every jump straddles the plane a + b + c = 0.1: within one spacing along its axis.
    spacing = np.asarray([np.diff(c)[0] for c in scan.coords])[cliffs.jump_axis]
    assert np.all(np.abs(cliffs.jump_points.sum(axis=1) - 0.1) <= spacing / 2 + 1e-12)
    assert np.all(np.abs(np.abs(cliffs.jump_sizes) - 1.0) < 0.1)


def _curvature_loss(p):
    return jnp.sin(p["a"]) * jnp.exp(p["b"]) + jnp.sum(p["v"] ** 3) + p["a"] * p["v"][0]


@pytest.mark.parametrize("gradient", ["full", "axes", "none"])
def test_axis_curvatures_match_the_hessian(x64, gradient):
    """The per-point quantity ``axis_curvatures`` (one function in ``_quantities``),
    ``∂²L/∂c_k² = D_kᵀ ∇²L D_k``, equals ``jax.hessian`` at every point, on a named and a
    direction axis, beside any ``gradient=`` (the other fields unchanged)."""
    from jax.flatten_util import ravel_pytree

    params = {"a": 0.3, "b": -0.2, "v": jnp.array([0.5, -1.0])}
    d = {"a": 0.5, "b": -1.0, "v": jnp.array([1.0, 2.0])}
    axes = {"a": (-1.0, 1.0, 5), "t": jaxgrad.Direction(d, (-0.5, 0.5, 3))}
    scan = jaxgrad.scan_landscape(_curvature_loss, params, axes, gradient=gradient,
                                  quantities=("axis_curvatures",), chunk_size=7,
                                  progress=False)
    plain = jaxgrad.scan_landscape(_curvature_loss, params, axes, gradient=gradient,
                                   chunk_size=7, progress=False)
    curv = scan.quantities["axis_curvatures"]
    assert curv.shape == (5, 3, 2) and scan.finite.all()
    for field in ("loss", "axis_gradients", "gradient_norm"):
        a, b = getattr(scan, field), getattr(plain, field)
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)
    assert plain.quantities == {}
    _, unravel = ravel_pytree(params)
    e_a = ravel_pytree({"a": 1.0, "b": 0.0, "v": jnp.zeros(2)})[0]
    d_flat = ravel_pytree(d)[0]
    hessian = jax.jit(jax.hessian(lambda x: _curvature_loss(unravel(x))))
    for i, a in enumerate(scan.coords[0]):
        for j, t in enumerate(scan.coords[1]):
            H = hessian(ravel_pytree({**params, "a": a})[0] + t * d_flat)
            np.testing.assert_allclose(curv[i, j], [e_a @ H @ e_a, d_flat @ H @ d_flat],
                                       rtol=1e-12, atol=1e-14)


def test_axis_curvatures_match_finite_differences(x64):
    scan = jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, gradient="none",
                                  quantities=["axis_curvatures"], progress=False)
    loss = jax.jit(lambda w, b: doya_loss(DOYA._replace(w=w, b=b)))
    h = 1e-4
    for i, j in [(0, 0), (3, 5), (6, 8)]:
        w, b = scan.coords[0][i], scan.coords[1][j]
        centre = loss(w, b)
        fd = [(loss(w + h, b) - 2 * centre + loss(w - h, b)) / h**2,
              (loss(w, b + h) - 2 * centre + loss(w, b - h)) / h**2]
        np.testing.assert_allclose(scan.quantities["axis_curvatures"][i, j], fd, rtol=1e-5,
                                   atol=1e-8)


def test_quantities_are_part_of_a_checkpoint(tmp_path):
    folder = tmp_path / "scan"
    kw = dict(chunk_size=4, progress=False, checkpoint=folder)
    with_curv = jaxgrad.scan_landscape(quadratic_ab, SMALL, SMALL_AXES, max_chunks=2,
                                       quantities=("axis_curvatures",), **kw)
    assert not with_curv.complete
    with pytest.raises(ValueError, match="`quantities` differ"):
        jaxgrad.scan_landscape(quadratic_ab, SMALL, SMALL_AXES, **kw)
    done = jaxgrad.scan_landscape(quadratic_ab, SMALL, SMALL_AXES,
                                  quantities=("axis_curvatures",), **kw)
    assert done.complete and (folder / "axis_curvatures.npy").is_file()
    np.testing.assert_allclose(np.asarray(done.quantities["axis_curvatures"]),
                               np.broadcast_to([2.0, 6.0], (8, 3, 2)), rtol=1e-6)


def test_a_new_quantity_is_one_function(x64, monkeypatch, tmp_path):
    """A quantity registered with ``@quantity`` (here the top eigenvalue of the Hessian
    restricted to the scanned plane, ``eig_max(D ∇²L Dᵀ)``) is scanned, stored,
    checkpointed and checked for finiteness with no other change."""
    from jaxgrad.landscape import _quantities

    def plane_hessian_top(point):
        hvp = jax.vmap(lambda d: jax.jvp(jax.grad(point.f), (point.theta,), (d,))[1])
        return jnp.linalg.eigvalsh(hvp(point.D) @ point.D.T)[-1]

    # What ``@quantity`` above such a function in _quantities.py does (undone after).
    monkeypatch.setitem(_quantities.QUANTITIES, "plane_hessian_top", plane_hessian_top)

    def coupled(p):  # Hessian in (a, b): [[2, 1], [1, 6]], top eigenvalue 4 + √5
        return (p["a"] - 1.0) ** 2 + 3.0 * p["b"] ** 2 + p["a"] * p["b"] + p["c"] ** 4

    params = {"a": 0.0, "b": 0.0, "c": 1.0}
    axes = {"a": (-1.0, 1.0, 3), "b": (-1.0, 1.0, 4)}
    scan = jaxgrad.scan_landscape(coupled, params, axes, quantities=["plane_hessian_top"],
                                  checkpoint=tmp_path / "scan", chunk_size=5, progress=False)
    np.testing.assert_allclose(np.asarray(scan.quantities["plane_hessian_top"]),
                               np.full((3, 4), 4.0 + np.sqrt(5.0)), rtol=1e-13)
    assert (tmp_path / "scan" / "plane_hessian_top.npy").is_file() and scan.finite.all()


@pytest.mark.parametrize("quantities,error,message", [
    (("hessian",), ValueError, "not a per-point quantity"),
    (("gradient_norm",), ValueError, "which `gradient=` selects"),
    ("axis_curvatures", TypeError, "`quantities` must be a sequence"),
])
def test_quantities_bad_input(quantities, error, message):
    with pytest.raises(error, match=message):
        jaxgrad.scan_landscape(quadratic_ab, SMALL, SMALL_AXES, quantities=quantities,
                               progress=False)


def test_directions():
    params = {"W": jnp.arange(1.0, 13.0).reshape(3, 4), "b": jnp.ones(4),
              "stack": jnp.ones((2, 3, 5))}
    d = jaxgrad.landscape.filter_normalized_direction(params, key=jax.random.key(0))
    np.testing.assert_allclose(jnp.linalg.norm(d["W"], axis=0),
                               jnp.linalg.norm(params["W"], axis=0), rtol=1e-6)
    np.testing.assert_allclose(jnp.linalg.norm(d["stack"], axis=1),
                               jnp.linalg.norm(params["stack"], axis=1), rtol=1e-6)
    assert not np.any(np.asarray(d["b"]))
    r = jaxgrad.landscape.random_direction(params, key=jax.random.key(1), normalize=True)
    total = sum(float(jnp.sum(leaf**2)) for leaf in jax.tree_util.tree_leaves(r))
    assert total == pytest.approx(1.0, rel=1e-5)
    r2 = jaxgrad.landscape.random_direction(params, key=jax.random.key(2))
    assert jax.tree_util.tree_structure(r2) == jax.tree_util.tree_structure(params)
    assert not np.allclose(r2["W"],
                           jaxgrad.landscape.random_direction(params, key=jax.random.key(3))["W"])
    assert jaxgrad.landscape.leaf_names(jaxgrad.DoyaParams(1.0, 2.0, 3.0)) == ["w", "b", "w_in"]


def test_bad_input():
    params = {"a": 0.0, "b": 0.0, "c": 0.0}

    def scan(axes, **kw):
        return jaxgrad.scan_landscape(quadratic, params, axes, progress=False, **kw)

    with pytest.raises(ValueError, match="empty or reversed"):
        scan({"a": (1.0, 0.0, 5)})
    with pytest.raises(ValueError, match="empty or reversed"):
        scan({"a": (1.0, 1.0, 5)})
    with pytest.raises(ValueError, match="at least one grid point"):
        scan({"a": (0.0, 1.0, 0)})
    with pytest.raises(ValueError, match="zero points"):
        scan({"a": np.array([])})
    with pytest.raises(ValueError, match="strictly increasing"):
        scan({"a": np.array([0.0, 2.0, 1.0])})
    with pytest.raises(ValueError, match="does not have"):
        scan({"bogus": (0.0, 1.0, 3)})
    with pytest.raises(ValueError, match="non-empty mapping"):
        scan({})
    with pytest.raises(ValueError, match="gradient"):
        scan({"a": (0.0, 1.0, 3)}, gradient="second")
    with pytest.raises(ValueError, match="chunk_size"):
        scan({"a": (0.0, 1.0, 3)}, chunk_size=0)
    with pytest.raises(ValueError, match="block_size"):
        scan({"a": (0.0, 1.0, 3)}, block_size=0)
    with pytest.raises(ValueError, match="one number"):
        jaxgrad.scan_landscape(lambda p: jnp.sum(p["v"]), {"v": jnp.zeros(3)},
                               {"v": (0.0, 1.0, 3)}, progress=False)
    with pytest.raises(ValueError, match="scalar"):
        jaxgrad.scan_landscape(lambda p: jnp.stack([p["a"], p["b"]]), params,
                               {"a": (0.0, 1.0, 3)}, progress=False)
    with pytest.raises(ValueError, match="structure and shapes"):
        scan({"d": jaxgrad.Direction({"a": 1.0, "b": 1.0}, (0.0, 1.0, 3))})
    with pytest.raises(TypeError, match="loss_fn"):
        jaxgrad.scan_landscape("loss", params, {"a": (0.0, 1.0, 3)})
    with pytest.raises(ValueError, match="finite"):
        jaxgrad.scan_landscape(quadratic, {"a": 0.0, "b": np.nan, "c": 0.0},
                               {"a": (0.0, 1.0, 3)}, progress=False)
    with pytest.raises(ValueError, match="differ in shape"):
        jaxgrad.landscape.line_direction({"a": jnp.zeros(2)}, {"a": jnp.zeros(3)})
    with pytest.raises(ValueError, match="same structure"):
        jaxgrad.landscape.line_direction({"a": 0.0}, {"b": 0.0})
    with pytest.raises(ValueError, match="`filter_axes`"):
        jaxgrad.landscape.filter_normalized_direction({"W": jnp.ones((2, 2))},
                                                      key=jax.random.key(0),
                                                      filter_axes=lambda name, leaf: (5,))
    with pytest.raises(TypeError, match="`scan`"):
        jaxgrad.find_cliffs(np.zeros(3))
    ok = scan({"a": (0.0, 1.0, 3)})
    with pytest.raises(ValueError, match="peak_ratio"):
        jaxgrad.find_cliffs(ok, peak_ratio=-1.0)


MULTI_DEVICE_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_numpy_rank_promotion", "raise")
    import numpy as np
    sys.path.insert(0, {tests!r})
    import jaxgrad
    from test_landscape import DOYA, DOYA_AXES, doya_loss
    assert jax.device_count() == 4, jax.devices()
    scan = jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, chunk_size=10, progress=False)
    # 3 points per device, evaluated in blocks of 2 and a remainder of 1.
    blocked = jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, chunk_size=10, block_size=2,
                                     progress=False)
    np.savez({out!r}, loss=scan.loss, grads=scan.axis_gradients, norm=scan.gradient_norm,
             blocked_loss=blocked.loss, blocked_grads=blocked.axis_gradients,
             blocked_norm=blocked.gradient_norm)
""")


@pytest.mark.slow
def test_four_devices_match_one(tmp_path):
    out = tmp_path / "four.npz"
    script = MULTI_DEVICE_SCRIPT.format(tests=str(ROOT / "tests"), out=str(out))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    four = np.load(out)
    one = jaxgrad.scan_landscape(doya_loss, DOYA, DOYA_AXES, chunk_size=10, progress=False)
    assert jax.device_count() == 1 or "xla_force_host_platform_device_count" in \
        os.environ.get("XLA_FLAGS", "")
    np.testing.assert_array_equal(four["loss"], one.loss)
    np.testing.assert_array_equal(four["grads"], one.axis_gradients)
    np.testing.assert_array_equal(four["norm"], one.gradient_norm)
    np.testing.assert_array_equal(four["blocked_loss"], one.loss)
    np.testing.assert_array_equal(four["blocked_grads"], one.axis_gradients)
    np.testing.assert_array_equal(four["blocked_norm"], one.gradient_norm)


# ---------------------------------------------------------------------------------------
# Checkpoint folders: the identity of a scan, damaged files, bad input

SMALL = {"a": 0.0, "b": 0.0}
SMALL_AXES = {"a": (-1.0, 1.0, 8), "b": (-1.0, 1.0, 3)}  # 24 points: 6 chunks of 4


def log_loss(p):
    """Non-finite for a < -0.2: the first 9 points, in chunks 0, 1 and 2."""
    return jnp.log(p["a"] + 0.2) + (p["a"] - 0.3) ** 2 + 3.0 * p["b"] ** 2


def small_scan(loss, folder=None, **kw):
    kw = dict(chunk_size=4, max_reported=3, progress=False, **kw)
    return jaxgrad.scan_landscape(loss, SMALL, SMALL_AXES, checkpoint=folder, **kw)


@pytest.fixture
def chunks_computed(monkeypatch):
    """A list that grows by one for every chunk a scan evaluates."""
    import jaxgrad.landscape._engine as engine

    calls, real = [], engine.evaluate_chunk

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "evaluate_chunk", counting)
    return calls


def assert_same_scan(got, want):
    for field in ("loss", "axis_gradients", "gradient_norm", "finite", "nonfinite_points"):
        np.testing.assert_array_equal(np.asarray(getattr(got, field)), getattr(want, field),
                                      err_msg=field)
    assert got.num_nonfinite == want.num_nonfinite and got.complete == want.complete


def _scaled(p, c):
    return (p["a"] - 0.3) ** 2 + c * p["b"] ** 2


def _closure(c):
    def loss(p):
        return (p["a"] - 0.3) ** 2 + c * p["b"] ** 2

    return loss


def _with_default(p, c=1.0):
    return (p["a"] - 0.3) ** 2 + c * p["b"] ** 2


def _edited_default(c):
    """``_with_default`` as if its default had been edited: same code and name."""
    import types

    return types.FunctionType(_with_default.__code__, _with_default.__globals__,
                              "_with_default", (c,))


def _lambda(c):
    # Two lambdas that differ in a constant only (same bytecode and qualified name).
    if c == 1.0:
        return lambda p: (p["a"] - 0.3) ** 2 + 1.0 * p["b"] ** 2
    return lambda p: (p["a"] - 0.3) ** 2 + 2.0 * p["b"] ** 2


LOSS_TWINS = {
    "lambda constants": _lambda,
    "partials": lambda c: partial(_scaled, c=c),
    "closures": _closure,
    "defaults": _edited_default,
    "attribute names": lambda c: (lambda p: p.w) if c == 1.0 else (lambda p: p.b),
}


@pytest.mark.parametrize("kind", list(LOSS_TWINS))
def test_checkpoint_of_another_loss_is_refused(tmp_path, kind, chunks_computed):
    """Losses that differ only in a constant, a partial argument, a closure cell, a
    default or an attribute name are different scans; an equal one resumes."""
    make = LOSS_TWINS[kind]
    params, axes = (DOYA, {"w": (4.0, 6.0, 4)}) if kind == "attribute names" \
        else (SMALL, SMALL_AXES)

    def scan(loss, **kw):
        return jaxgrad.scan_landscape(loss, params, axes, chunk_size=4, progress=False,
                                      checkpoint=tmp_path / "scan", **kw)

    loss = make(1.0)
    first = scan(loss, max_chunks=1)
    assert not first.complete or kind == "attribute names"
    with pytest.raises(ValueError, match="`checkpoint` folder .* different scan: its "
                                         "`loss_fn` differ"):
        scan(make(2.0))
    # The same loss, made again (another object): resumes, without recomputing the
    # finished chunk, and equals a fresh scan bitwise.
    again = make(1.0)
    assert again is not loss
    before = len(chunks_computed)
    resumed = scan(again)
    n_chunks = 1 if kind == "attribute names" else 6
    assert len(chunks_computed) - before == n_chunks - 1
    fresh = jaxgrad.scan_landscape(loss, params, axes, chunk_size=4, progress=False)
    assert_same_scan(resumed, fresh)
    before = len(chunks_computed)
    assert_same_scan(scan(again), fresh)
    assert len(chunks_computed) == before


def _method_loss(c):
    """A loss calling a method of a user's dataclass: the method's code is part of it."""
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Model:
        w: float

        def apply(self, p):
            return (p["a"] - 0.3) ** 2 + c * self.w * p["b"] ** 2

    model = Model(1.0)
    return lambda p: model.apply(p)


def _custom_rule(c):
    """A loss through a ``jax.custom_jvp`` whose derivative rule holds ``c``."""

    @jax.custom_jvp
    def square(x):
        return x**2

    @square.defjvp
    def square_jvp(primals, tangents):
        return primals[0] ** 2, c * 2.0 * primals[0] * tangents[0]

    return lambda p: (p["a"] - 0.3) ** 2 + square(p["b"])


@pytest.mark.parametrize("make", [_method_loss, _custom_rule], ids=["method", "custom_jvp"])
def test_checkpoint_sees_class_methods_and_derivative_rules(tmp_path, make, chunks_computed):
    """Losses that differ only in a method of their model's class or in a custom
    derivative rule are different scans; an equal one resumes."""
    folder = tmp_path / "scan"
    small_scan(make(1.0), folder, max_chunks=1)
    with pytest.raises(ValueError, match="different scan: its `loss_fn` differ"):
        small_scan(make(2.0), folder)
    assert not small_scan(make(1.0), folder, max_chunks=1).complete
    assert len(chunks_computed) == 2  # the first chunk was not computed again


class _Opaque:
    """An object without a deterministic fingerprint (no dataclass, no array)."""

    scale = 2.0


def test_checkpoint_needs_fingerprint_for_an_unidentifiable_loss(tmp_path, chunks_computed):
    model = _Opaque()

    def loss(p):
        return (p["a"] - 0.3) ** 2 + model.scale * p["b"] ** 2

    folder = tmp_path / "scan"
    with pytest.raises(ValueError, match="closure cell 'model' is a .*_Opaque.*`fingerprint=`"):
        small_scan(loss, folder)
    assert not folder.exists() and not chunks_computed  # refused before any work
    assert small_scan(loss).complete  # without a checkpoint the identity is not needed
    first = small_scan(loss, folder, fingerprint="model v1", max_chunks=2)
    assert len(chunks_computed) == 6 + 2
    # The user's fingerprint identifies the loss: the same one resumes (the closure cell is
    # not looked at), another one is refused.
    other = _closure(5.0)
    with pytest.raises(ValueError, match="`loss_fn` differ"):
        small_scan(other, folder, fingerprint="model v2")
    resumed = small_scan(loss, folder, fingerprint=b"model v1")
    assert len(chunks_computed) == 6 + 6 and resumed.complete
    assert_same_scan(resumed, small_scan(loss))
    assert not first.complete
    with pytest.raises(TypeError, match="`fingerprint`"):
        small_scan(loss, folder, fingerprint=3)
    with pytest.raises(ValueError, match="`fingerprint`"):
        small_scan(loss, folder, fingerprint="")


def _header(path):
    """Bytes before the data of a .npy file."""
    arr = np.load(path, mmap_mode="r")
    return path.stat().st_size - arr.nbytes


def _flip(path, at, count=4):
    data = bytearray(path.read_bytes())
    for i in range(at, at + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path, keep):
    path.write_bytes(path.read_bytes()[:keep])


DAMAGE = {  # how -> (damage(folder), chunks recomputed, warning or error naming the file)
    "truncated .npy": (lambda f: _truncate(f / "loss.npy", _header(f / "loss.npy") + 40), 6,
                       "loss.npy has .* bytes"),
    "damaged .npy header": (lambda f: _flip(f / "gradient_norm.npy", 0, 8), 6,
                            "gradient_norm.npy has a damaged header"),
    "deleted .npy": (lambda f: (f / "finite.npy").unlink(), 6, "finite.npy is missing"),
    # Chunk 0's loss, chunk 4's finite flags: those two chunks alone are recomputed.
    "flipped loss bytes": (lambda f: _flip(f / "loss.npy", _header(f / "loss.npy") + 4), 1,
                           r"loss.npy': chunk\(s\) \[0\] do not match their checksums"),
    "flipped finite bytes": (lambda f: _flip(f / "finite.npy", _header(f / "finite.npy") + 17,
                                             1), 1, r"finite.npy': chunk\(s\) \[4\]"),
    "truncated progress.json": (lambda f: _truncate(f / "progress.json", 100), None,
                                "`checkpoint` file .*progress.json' is damaged"),
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_damaged_checkpoint_is_recomputed_or_refused(tmp_path, how, chunks_computed):
    """Never wrong numbers from a damaged folder: the damaged chunks (or, for a file of the
    wrong size, all) are recomputed with a warning naming the file, equal to a fresh scan
    bitwise (the non-finite points listed too); a damaged progress.json is refused."""
    damage, recomputed, message = DAMAGE[how]
    fresh = small_scan(log_loss)
    assert fresh.num_nonfinite == 9 and fresh.nonfinite_points.shape == (3, 2)
    folder = tmp_path / "scan"
    small_scan(log_loss, folder)
    damage(folder)
    before = len(chunks_computed)
    if recomputed is None:
        with pytest.raises(ValueError, match=message):
            small_scan(log_loss, folder)
        (folder / "progress.json").unlink()  # what the message says to do
        recomputed, message = 6, None
    if message is None:
        repaired = small_scan(log_loss, folder)
    else:
        with pytest.warns(RuntimeWarning, match=message):
            repaired = small_scan(log_loss, folder)
    assert len(chunks_computed) - before == recomputed
    assert_same_scan(repaired, fresh)
    before = len(chunks_computed)
    assert_same_scan(small_scan(log_loss, folder), fresh)  # intact again: nothing to do
    assert len(chunks_computed) == before


def test_damaged_partial_checkpoint(tmp_path, chunks_computed):
    """An interrupted folder: a truncated file is recreated (not padded with zeros taken for
    results), and unfinished rows that are not NaN (an interrupted write, damage) are
    reset, so a partial result shows NaN and finite=False there."""
    fresh = small_scan(log_loss)
    folder = tmp_path / "scan"
    small_scan(log_loss, folder, max_chunks=3)
    path = folder / "loss.npy"
    data = bytearray(path.read_bytes())
    data[_header(path) + 16 * 4:] = np.arange(8, dtype=np.float32).tobytes()
    path.write_bytes(bytes(data))  # rows 16-23 (chunks 4, 5, unfinished) hold numbers
    flags = folder / "finite.npy"
    _flip(flags, _header(flags) + 20, 1)  # row 20: True
    part = small_scan(log_loss, folder, max_chunks=0)
    assert not part.complete
    np.testing.assert_array_equal(np.asarray(part.loss).ravel()[:12], fresh.loss.ravel()[:12])
    assert np.isnan(np.asarray(part.loss).ravel()[12:]).all()
    assert not np.asarray(part.finite).ravel()[12:].any()
    _truncate(path, _header(path) + 50)
    with pytest.warns(RuntimeWarning, match="loss.npy has .* bytes"):
        part = small_scan(log_loss, folder, max_chunks=1)
    assert np.isnan(np.asarray(part.loss).ravel()[4:]).all()
    assert_same_scan(small_scan(log_loss, folder), fresh)


def test_checkpoint_bad_input(tmp_path):
    file = tmp_path / "file"
    file.write_text("not a folder")
    with pytest.raises(ValueError, match="`checkpoint` must be a folder"):
        small_scan(quadratic_ab, file)
    assert file.read_text() == "not a folder"
    with pytest.raises(TypeError, match="`checkpoint`"):
        small_scan(quadratic_ab, 3)


def quadratic_ab(p):
    return (p["a"] - 0.3) ** 2 + 3.0 * p["b"] ** 2


@pytest.mark.parametrize("key", [0, None, "key", np.zeros(2, np.float32)])
@pytest.mark.parametrize("direction", ["random_direction", "filter_normalized_direction"])
def test_directions_refuse_a_bad_key(direction, key):
    with pytest.raises(TypeError, match="`key` must be a PRNG key"):
        getattr(jaxgrad.landscape, direction)({"W": jnp.ones((2, 2))}, key=key)


def test_directions_accept_both_key_kinds():
    params = {"W": jnp.ones((3, 2))}
    typed = jaxgrad.landscape.random_direction(params, key=jax.random.key(0))
    raw = jaxgrad.landscape.random_direction(params, key=jax.random.PRNGKey(0))
    np.testing.assert_array_equal(typed["W"], raw["W"])
    with pytest.raises(TypeError, match="single PRNG key"):
        jaxgrad.landscape.random_direction(params, key=jax.random.split(jax.random.key(0)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_filter_normalized_direction_refuses_nonfinite_params(bad):
    params = {"W": jnp.array([[1.0, bad], [2.0, 3.0]])}
    with pytest.raises(ValueError, match="`params` must be finite"):
        jaxgrad.landscape.filter_normalized_direction(params, key=jax.random.key(0))
