"""jaxgrad.sweep: any function of a grid point over a grid, on scan_landscape's engine."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad

ROOT = Path(__file__).resolve().parents[1]


def eigenvalues(p):
    """The symmetric matrix [[a, b], [b, -a]]: eigenvalues ±√(a² + b²)."""
    m = jnp.stack([jnp.stack([p["a"], p["b"]]), jnp.stack([p["b"], -p["a"]])])
    return {"eigs": jnp.linalg.eigvalsh(m), "radius": jnp.hypot(p["a"], p["b"])}


class Roots(NamedTuple):
    count: jax.Array
    three: jax.Array
    log_w: jax.Array


def cubic_roots(p):
    """Real roots of x³ - w x - b: three where 4w³ > 27b², else one (the discriminant);
    log w is NaN for w < 0."""
    three = 4.0 * p["w"] ** 3 > 27.0 * p["b"] ** 2
    return Roots(jnp.where(three, 3, 1).astype(jnp.int32), three, jnp.log(p["w"]))


W = np.array([-1.0, -0.25, 0.5, 1.0, 2.0])  # no point on the discriminant's zero set
B = np.array([-1.5, -0.2, 0.3, 1.1])


def test_closed_form_pytree(x64):
    axes = {"a": (-1.0, 1.0, 5), "b": np.linspace(0.5, 2.0, 4)}
    out = jaxgrad.sweep(eigenvalues, axes, chunk_size=6, progress=False)
    assert out.names == ("a", "b") and out.grid_shape == (5, 4)
    assert out.complete and out.num_nonfinite == 0 and out.finite.all()
    assert out.nonfinite_points.shape == (0, 2)
    A, Bg = np.meshgrid(*out.coords, indexing="ij")
    r = np.sqrt(A**2 + Bg**2)
    assert out.values["eigs"].shape == (5, 4, 2) and out.values["eigs"].dtype == np.float64
    np.testing.assert_allclose(out.values["eigs"], np.stack([-r, r], axis=-1), rtol=1e-13)
    np.testing.assert_allclose(out.values["radius"], r, rtol=1e-15)


def test_matches_a_loop_over_points_chi_1():
    """χ₁ over (σ_w², σ_b²), as the signal-propagation sweeps need, equals a loop."""

    chi_1 = partial(jaxgrad.chi_1, num_points=21)  # q* and χ₁ on 21 quadrature points

    def chi(p):
        return chi_1(p["sigma_w2"], p["sigma_b2"])

    axes = {"sigma_w2": (0.5, 3.0, 4), "sigma_b2": (0.01, 0.5, 3)}
    out = jaxgrad.sweep(chi, axes, chunk_size=12, progress=False)
    one = jax.jit(chi_1)
    loop = np.array([[float(one(w, b)) for b in out.coords[1]] for w in out.coords[0]])
    np.testing.assert_allclose(out.values, loop, rtol=1e-6)
    assert out.finite.all()


def test_integer_bool_leaves_and_nonfinite_points():
    out = jaxgrad.sweep(cubic_roots, {"w": W, "b": B}, chunk_size=7, max_reported=3,
                        progress=False)
    assert isinstance(out.values, Roots)
    assert out.values.count.dtype == np.int32 and out.values.three.dtype == bool
    want = np.array([[int(np.sum(np.abs(np.roots([1.0, 0.0, -w, -b]).imag) < 1e-9))
                      for b in B] for w in W])
    np.testing.assert_array_equal(out.values.count, want)
    np.testing.assert_array_equal(out.values.three, want == 3)
    # log w is NaN for the first two rows: those points are reported, the rest computed.
    assert out.num_nonfinite == 8 and out.complete
    np.testing.assert_array_equal(out.finite, np.repeat(W > 0, 4).reshape(5, 4))
    np.testing.assert_array_equal(out.nonfinite_points, np.array(
        [[-1.0, -1.5], [-1.0, -0.2], [-1.0, 0.3]], np.float32))
    np.testing.assert_allclose(out.values.log_w[2:], np.log(W[2:, None]) + 0 * B, rtol=1e-6)


@pytest.fixture
def chunks_computed(monkeypatch):
    import jaxgrad.landscape._engine as engine

    calls, real = [], engine.evaluate_chunk
    monkeypatch.setattr(engine, "evaluate_chunk",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_resume_after_interruption(tmp_path, chunks_computed):
    axes = {"w": W, "b": B}  # 20 points: 5 chunks of 4

    def run(fn=cubic_roots, **kw):
        return jaxgrad.sweep(fn, axes, chunk_size=4, max_reported=3, progress=False, **kw)

    fresh = run()
    folder = tmp_path / "sweep"
    part = run(checkpoint=folder, max_chunks=2)
    assert not part.complete and part.num_nonfinite == 8
    done = np.arange(20) < 8
    np.testing.assert_array_equal(np.asarray(part.values.count).ravel()[~done], 0)
    assert np.isnan(np.asarray(part.values.log_w).ravel()[~done]).all()
    assert not np.asarray(part.finite).ravel()[~done].any()
    before = len(chunks_computed)
    resumed = run(checkpoint=folder)
    assert len(chunks_computed) - before == 3 and resumed.complete
    for got, want in zip(resumed.values, fresh.values):
        np.testing.assert_array_equal(np.asarray(got), want)
    np.testing.assert_array_equal(np.asarray(resumed.finite), fresh.finite)
    np.testing.assert_array_equal(resumed.nonfinite_points, fresh.nonfinite_points)
    assert resumed.num_nonfinite == fresh.num_nonfinite == 8
    assert sorted(p.name for p in folder.iterdir()) == [
        "finite.npy", "progress.json", "value0.npy", "value1.npy", "value2.npy"]

    def other(p):
        return cubic_roots({"w": p["w"], "b": 2.0 * p["b"]})

    with pytest.raises(ValueError, match="different scan: its `fn` differ"):
        run(other, checkpoint=folder)
    with pytest.raises(ValueError, match="`axes` differ"):
        jaxgrad.sweep(cubic_roots, {"w": W, "b": B + 1.0}, chunk_size=4, progress=False,
                      checkpoint=folder)


FOUR_DEVICES = textwrap.dedent("""
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_numpy_rank_promotion", "raise")
    import numpy as np
    sys.path.insert(0, {tests!r})
    import jaxgrad
    from test_landscape_sweep import B, W, cubic_roots, eigenvalues
    assert jax.device_count() == 4, jax.devices()
    roots = jaxgrad.sweep(cubic_roots, {{"w": W, "b": B}}, chunk_size=7, progress=False)
    eigs = jaxgrad.sweep(eigenvalues, {{"a": (-1.0, 1.0, 9), "b": (0.0, 2.0, 5)}},
                         chunk_size=10, block_size=2, progress=False)
    np.savez({out!r}, count=roots.values.count, three=roots.values.three,
             log_w=roots.values.log_w, finite=roots.finite, bad=roots.nonfinite_points,
             eigs=eigs.values["eigs"], radius=eigs.values["radius"])
""")


@pytest.mark.slow
def test_four_devices_match_one(tmp_path):
    out = tmp_path / "four.npz"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, "-c", FOUR_DEVICES.format(tests=str(ROOT / "tests"), out=str(out))],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    four = np.load(out)
    roots = jaxgrad.sweep(cubic_roots, {"w": W, "b": B}, chunk_size=7, progress=False)
    eigs = jaxgrad.sweep(eigenvalues, {"a": (-1.0, 1.0, 9), "b": (0.0, 2.0, 5)},
                         chunk_size=10, progress=False)
    for name, got in (("count", roots.values.count), ("three", roots.values.three),
                      ("log_w", roots.values.log_w), ("finite", roots.finite),
                      ("bad", roots.nonfinite_points), ("eigs", eigs.values["eigs"]),
                      ("radius", eigs.values["radius"])):
        np.testing.assert_array_equal(four[name], got, err_msg=name)


@dataclasses.dataclass
class _Scaled:
    """A callable that cannot be hashed (a dataclass with eq=True): a static jit argument
    only by identity."""

    scale: float

    def __call__(self, p):
        return self.scale * p["a"]


def test_unhashable_callable_and_compiled_once():
    from jaxgrad.landscape._engine import evaluate_chunk

    fn = _Scaled(2.0)
    out = jaxgrad.sweep(fn, {"a": (0.0, 1.0, 3)}, progress=False)
    np.testing.assert_allclose(out.values, [0.0, 1.0, 2.0])
    size = evaluate_chunk._cache_size()
    again = jaxgrad.sweep(fn, {"a": (1.0, 2.0, 3)}, progress=False)  # the same program
    np.testing.assert_allclose(again.values, [2.0, 3.0, 4.0])
    assert evaluate_chunk._cache_size() == size


def _value_as_python_number(p):
    return jnp.zeros(int(p["a"]) + 1)  # the output's shape would change from point to point


def _branching(p):
    return p["a"] if p["a"] > 0 else -p["a"]


BAD = {  # what -> (fn, axes, options, error, message)
    "fn not callable": ("f", {"a": (0.0, 1.0, 3)}, {}, TypeError, "`fn` must be callable"),
    "shape from a value": (_value_as_python_number, {"a": (0.0, 3.0, 4)}, {}, ValueError,
                           "`fn` must give an output of one structure and shape"),
    "python branch": (_branching, {"a": (0.0, 3.0, 4)}, {}, ValueError, "`fn` must give"),
    "string output": (lambda p: "x", {"a": (0.0, 1.0, 3)}, {}, TypeError,
                      "`fn` must return a pytree of arrays"),
    "no output": (lambda p: {}, {"a": (0.0, 1.0, 3)}, {}, ValueError,
                  "`fn` must return a pytree holding at least one array"),
    "axes empty": (eigenvalues, {}, {}, ValueError, "`axes` must be a non-empty mapping"),
    "axes not a mapping": (eigenvalues, [(0.0, 1.0, 3)], {}, ValueError, "`axes`"),
    "axis name": (eigenvalues, {1: (0.0, 1.0, 3)}, {}, TypeError, "`axes` keys"),
    "axis nan": (eigenvalues, {"a": np.array([0.0, np.nan])}, {}, ValueError,
                 r"`axes\['a'\]` must be finite"),
    "axis 2-D": (eigenvalues, {"a": np.zeros((2, 2))}, {}, ValueError, r"`axes\['a'\]`.*1-D"),
    "axis reversed": (eigenvalues, {"a": (1.0, 0.0, 3)}, {}, ValueError, "empty or reversed"),
    "axis complex": (eigenvalues, {"a": np.array([1j, 2j])}, {}, TypeError, r"`axes\['a'\]`"),
    "chunk_size": (eigenvalues, {"a": (0.0, 1.0, 3)}, {"chunk_size": 0}, ValueError,
                   "`chunk_size`"),
    "block_size": (eigenvalues, {"a": (0.0, 1.0, 3)}, {"block_size": 1.5}, TypeError,
                   "`block_size`"),
    "checkpoint": (eigenvalues, {"a": (0.0, 1.0, 3)}, {"checkpoint": 3}, TypeError,
                   "`checkpoint`"),
    "fingerprint": (eigenvalues, {"a": (0.0, 1.0, 3)}, {"fingerprint": 3}, TypeError,
                    "`fingerprint`"),
}


@pytest.mark.parametrize("what", list(BAD))
def test_bad_input_is_refused_by_name(what, chunks_computed):
    fn, axes, options, error, message = BAD[what]
    with pytest.raises(error, match=message):
        jaxgrad.sweep(fn, axes, progress=False, **options)
    assert not chunks_computed  # refused before any work
