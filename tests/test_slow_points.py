"""slow_points: closed forms, float64 NumPy references, pytree states, a Flax cell, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

import jaxgrad
from jaxgrad.analysis import slow_point_search as sp_module
from jaxgrad.analysis.slow_point_search import SlowPoints, slow_points


def _tanh_map(x, w):
    return jnp.tanh(w * x)


TANH = jaxgrad.autonomous(_tanh_map)


def _affine(x, u, p):
    A, b = p
    return A @ x + b + 0.0 * jnp.sum(u)


def _x_star(w):
    """The positive root of x = tanh(w x) (w > 1), by bisection in float64."""
    lo, hi = 1e-6, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.tanh(w * mid) > mid else (lo, mid)
    return 0.5 * (lo + hi)


def _match(got, want):
    """Largest distance from an eigenvalue of one set to the nearest of the other."""
    got, want = np.asarray(got), np.asarray(want)
    d = np.abs(got[:, None] - want[None, :])
    return max(d.min(axis=1).max(), d.min(axis=0).max())


def _check_modes(J, sp, k, atol):
    """``modes[k, j]`` is a unit eigenvector of ``J`` for ``eigenvalues[k, j]`` with its
    largest entry real and positive; eigenvalues by decreasing modulus."""
    ev = np.asarray(sp.eigenvalues[k])
    assert np.all(np.diff(np.abs(ev)) <= 1e-6 * np.abs(ev[0]))
    for j, v in enumerate(np.asarray(sp.modes[k])):
        np.testing.assert_allclose(np.linalg.norm(v), 1.0, rtol=1e-5)
        lead = v[np.argmax(np.abs(v))]
        assert abs(lead.imag) < 1e-6 and lead.real > 0
        np.testing.assert_allclose(J @ v, ev[j] * v, atol=atol)
    assert int(sp.num_unstable[k]) == int(np.sum(np.abs(ev) >= 1))


# --------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("newton_steps", [10, 0])
def test_linear_map_unique_fixed_point_and_eigenvalues(x64, newton_steps):
    rng = np.random.default_rng(0)
    n = 5
    A = 1.3 * rng.standard_normal((n, n)) / np.sqrt(n)
    b = rng.standard_normal(n)
    x_star = np.linalg.solve(np.eye(n) - A, b)
    starts = jnp.asarray(rng.uniform(-3, 3, (64, n)))
    sp = slow_points(_affine, starts, jnp.zeros(0), params=(jnp.asarray(A), jnp.asarray(b)),
                     max_steps=20000, newton_steps=newton_steps)
    assert len(sp.q) == 1 and int(sp.num_starts[0]) == 64 and sp.num_failed == 0
    assert bool(sp.fixed[0])
    residual = np.linalg.norm(A @ np.asarray(sp.x[0]) + b - np.asarray(sp.x[0]))
    assert residual < 1.5e-8  # sqrt(eps) of float64, the default fixed_tol
    np.testing.assert_allclose(float(sp.residual[0]), residual, atol=1e-12)
    np.testing.assert_allclose(sp.x[0], x_star, atol=1e-7 if newton_steps == 0 else 1e-12)
    eig = np.linalg.eigvals(A)
    assert _match(sp.eigenvalues[0], eig) < 1e-10
    np.testing.assert_allclose(np.abs(sp.eigenvalues[0]), np.sort(np.abs(eig))[::-1],
                               rtol=1e-10)
    unstable = int(np.sum(np.abs(eig) >= 1))
    assert 0 < unstable < n  # a saddle: q is still minimised at it
    assert int(sp.stability[0]) == 2 and jaxgrad.analysis.STABILITY_LABELS[2] == "saddle"
    _check_modes(A, sp, 0, atol=1e-10)


@pytest.mark.parametrize("w", [1.5, 3.0])
def test_tanh_map_saddles_and_stable_points(x64, w):
    """x -> tanh(w x) coordinate-wise, w > 1: in each coordinate 0 (multiplier w > 1) and
    ±x* (multiplier w / cosh²(w x*) < 1), so 9 fixed points in 2-D: 4 stable, 4 saddles
    and one unstable node."""
    x_star = _x_star(w)
    starts = jax.random.uniform(jax.random.key(1), (256, 2), jnp.float64, -2, 2)
    sp = slow_points(TANH, starts, params=jnp.asarray(w))
    assert len(sp.q) == 9 and bool(jnp.all(sp.fixed))
    assert int(jnp.sum(sp.num_starts)) + sp.num_failed == 256
    x = np.asarray(sp.x)
    levels = np.array([-x_star, 0.0, x_star])
    grid = np.stack(np.meshgrid(levels, levels, indexing="ij"), -1).reshape(-1, 2)
    np.testing.assert_allclose(x, grid, atol=1e-12)  # sorted by coordinates
    for k, point in enumerate(x):
        want = w / np.cosh(w * point) ** 2  # d tanh(w x)/dx: w at 0, below 1 at ±x*
        assert _match(sp.eigenvalues[k], want) < 1e-10
        _check_modes(np.diag(want), sp, k, atol=1e-10)
    labels = [jaxgrad.analysis.STABILITY_LABELS[s] for s in sp.stability]
    assert labels.count("stable") == 4 and labels.count("saddle") == 4
    assert labels.count("unstable") == 1 and labels[4] == "unstable"  # the origin
    np.testing.assert_array_equal(sp.num_unstable, [0, 1, 0, 1, 2, 1, 0, 1, 0])


@pytest.mark.parametrize("newton_steps", [10, 0])
def test_many_starts_in_one_basin_give_one_point(x64, newton_steps):
    x_star = _x_star(3.0)
    starts = x_star + jax.random.uniform(jax.random.key(2), (256, 2), jnp.float64, -0.3, 0.3)
    sp = slow_points(TANH, starts, params=jnp.asarray(3.0), newton_steps=newton_steps)
    assert len(sp.q) == 1 and int(sp.num_starts[0]) == 256 and sp.num_failed == 0
    assert bool(sp.fixed[0]) and int(sp.stability[0]) == 0
    np.testing.assert_allclose(sp.x[0], [x_star, x_star],
                               atol=1e-12 if newton_steps else 1e-8)


def _ghost(x, a):
    """A saddle-node ghost: x0 -> x0 + a + x0² has no fixed point for a > 0, but moves
    by only a near x0 = 0 (Sussillo & Barak's slow point)."""
    return jnp.stack([x[0] + a + x[0] ** 2, 0.5 * x[1]])


def test_slow_point_without_fixed_point_is_not_reported_fixed(x64):
    a = 1e-3
    starts = jax.random.uniform(jax.random.key(3), (32, 2), jnp.float64, -0.5, 0.5)
    sp = slow_points(jaxgrad.autonomous(_ghost), starts, params=jnp.asarray(a),
                     max_steps=3000, merge_tol=0.05)
    assert len(sp.q) == 1 and not bool(sp.fixed[0])
    x = np.asarray(sp.x[0])
    assert abs(x[0]) < 0.02 and abs(x[1]) < 1e-3
    residual = np.linalg.norm([a + x[0] ** 2, -0.5 * x[1]])  # float64 NumPy
    np.testing.assert_allclose(float(sp.residual[0]), residual, rtol=1e-10)
    assert a <= residual < np.sqrt(2e-6) and float(sp.q[0]) < 1e-6
    assert _match(sp.eigenvalues[0], [1 + 2 * x[0], 0.5]) < 1e-10
    # q never gets under ½a², so a tighter q_tol keeps nothing
    none = slow_points(jaxgrad.autonomous(_ghost), starts, params=jnp.asarray(a),
                       max_steps=3000, q_tol=1e-7)
    assert len(none.q) == 0 and none.num_failed == 32
    assert none.eigenvalues.shape == (0, 2) and none.modes.shape == (0, 2, 2)


# --------------------------------------------------------------------------- recurrent cells


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _gru_np(h, u, p):
    W_x, W_h, b_x, b_h = (np.asarray(a, np.float64) for a in p)
    n = h.shape[0]
    gx, gh = W_x @ u + b_x, W_h @ h + b_h
    r = _sigmoid(gx[:n] + gh[:n])
    z = _sigmoid(gx[n:2 * n] + gh[n:2 * n])
    cand = np.tanh(gx[2 * n:] + r * gh[2 * n:])
    return (1 - z) * cand + z * h


def _lstm_np(state, u, p):
    W_x, W_h, b = (np.asarray(a, np.float64) for a in p)
    h, c = state
    n = h.shape[0]
    z = W_x @ u + W_h @ h + b
    i, f, g, o = (z[k * n:(k + 1) * n] for k in range(4))
    c_next = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    return type(state)(_sigmoid(o) * np.tanh(c_next), c_next)


def _bistable(cell, n, dtype):
    """A random cell (built in NumPy) with a strong rank-one candidate/cell-input weight
    ``4 m mᵀ / n``: two stable states ±(about the pattern m) and a saddle between them;
    the starts are states along trajectories from random initial states."""
    rng = np.random.default_rng(0)
    m = np.sign(rng.standard_normal(n))
    gates = 3 if cell == "gru" else 4
    W_h = 0.5 * rng.standard_normal((gates * n, n)) / np.sqrt(n)
    W_h[2 * n : 3 * n] += 4.0 * np.outer(m, m) / n
    W_x = rng.standard_normal((gates * n, 3)) / np.sqrt(3)
    if cell == "gru":
        p_np = (W_x, W_h, np.zeros(3 * n), np.zeros(3 * n))
        step, reference, params = jaxgrad.gru_step, _gru_np, jaxgrad.models.GRUParams
        x = rng.uniform(-1, 1, (16, n))
    else:
        b = np.zeros(4 * n)
        b[n : 2 * n] = 1.0  # forget bias
        p_np = (W_x, W_h, b)
        step, reference, params = jaxgrad.lstm_step, _lstm_np, jaxgrad.models.LSTMParams
        x = jaxgrad.models.LSTMState(rng.uniform(-1, 1, (16, n)), rng.uniform(-2, 2, (16, n)))
    u = np.zeros(3)
    rows = []
    for t in range(32):
        if t % 8 == 0:
            rows.append(x)
        x = jax.tree_util.tree_map(
            lambda *leaves: np.stack(leaves),
            *[reference(jax.tree_util.tree_map(lambda a, i=i: a[i], x), u, p_np)
              for i in range(16)])
    states = jax.tree_util.tree_map(
        lambda *leaves: jnp.asarray(np.concatenate(leaves), dtype), *rows)
    p = params(*(jnp.asarray(a, dtype) for a in p_np))
    return step, states, jnp.zeros(3, dtype), p


def _check_cell_points(sp, step, u, p, reference, tol, eig_tol):
    """Every point: residual in float64 NumPy, fixed ⇒ under tol, eigenvalues and modes
    against numpy.linalg.eig of the jax.jacfwd Jacobian of the flattened step."""
    assert sp.num_failed + int(jnp.sum(sp.num_starts)) == 64
    template = jax.tree_util.tree_map(lambda a: a[0], sp.x)
    _, unravel = ravel_pytree(template)
    jacobian = jax.jit(jax.jacfwd(lambda z: ravel_pytree(step(unravel(z), u, p))[0]))
    labels = [jaxgrad.analysis.STABILITY_LABELS[s] for s in sp.stability]
    assert labels.count("stable") >= 1 and labels.count("saddle") >= 1
    for k in range(len(sp.q)):
        x = jax.tree_util.tree_map(lambda a, k=k: a[k], sp.x)
        x64 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), x)
        out = reference(x64, np.asarray(u, np.float64), p)
        residual = np.linalg.norm(ravel_pytree(jax.tree_util.tree_map(
            lambda a, b: a - b, out, x64))[0])
        assert residual < 1e-3 * tol + 2 * float(sp.residual[k])
        if bool(sp.fixed[k]):
            assert residual < tol
        J = np.asarray(jacobian(ravel_pytree(x)[0]))
        assert _match(sp.eigenvalues[k], np.linalg.eigvals(J)) < eig_tol
        _check_modes(J, sp, k, atol=10 * eig_tol)
    assert bool(jnp.all(sp.fixed))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gru_fixed_points_against_float64_numpy(dtype):
    with jax.enable_x64(dtype == "float64"):
        step, states, u, p = _bistable("gru", 64, jnp.dtype(dtype))
        sp = slow_points(step, states, u, params=p)
        tol = float(np.sqrt(np.finfo(dtype).eps))
        assert sp.residual.dtype == jnp.dtype(dtype)
        assert sp.eigenvalues.dtype == (jnp.complex64 if dtype == "float32" else jnp.complex128)
        assert sp.x.shape == (len(sp.q), 64) and sp.modes.shape == (len(sp.q), 4, 64)
        _check_cell_points(sp, step, u, p, _gru_np, tol,
                           eig_tol=1e-4 if dtype == "float32" else 1e-10)
        # the two stable states are ±(the same pattern) and the saddle lies between them
        stable = np.asarray(sp.x)[np.asarray(sp.stability) == 0]
        assert len(stable) == 2 and np.corrcoef(stable[0], stable[1])[0, 1] < -0.9


def test_lstm_pytree_state_against_float64_numpy(x64):
    step, states, u, p = _bistable("lstm", 64, jnp.float64)
    sp = slow_points(step, states, u, params=p)
    assert isinstance(sp.x, jaxgrad.models.LSTMState)
    assert sp.x.h.shape == sp.x.c.shape == (len(sp.q), 64)
    assert sp.eigenvalues.shape == (len(sp.q), 128)  # the flat state [h, c]
    _check_cell_points(sp, step, u, p, _lstm_np, 1.5e-8, eig_tol=1e-10)


def test_flax_nnx_cell_with_its_state_as_params():
    cell = nnx.GRUCell(3, 16, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(cell)

    def step(h, u, state):
        return nnx.merge(graphdef, state)(h, u)[0]

    u = jnp.ones(3)
    states = jax.random.uniform(jax.random.key(4), (32, 16), minval=-1, maxval=1)
    sp = slow_points(step, states, u, params=state)
    assert len(sp.q) >= 1 and bool(jnp.all(sp.fixed))
    for k in range(len(sp.q)):
        x = sp.x[k]
        assert float(jnp.linalg.norm(cell(x, u)[0] - x)) < 3.5e-4
        J = np.asarray(jax.jacfwd(lambda h: cell(h, u)[0])(x), np.float64)
        assert _match(sp.eigenvalues[k], np.linalg.eigvals(J)) < 1e-4


def test_new_params_reuse_the_compiled_search(x64):
    starts = jax.random.uniform(jax.random.key(1), (256, 2), jnp.float64, -2, 2)
    slow_points(TANH, starts, params=jnp.asarray(2.0))
    before = sp_module._descend_jit._cache_size()
    slow_points(TANH, starts, params=jnp.asarray(2.5))
    assert sp_module._descend_jit._cache_size() == before


def test_public_names():
    assert jaxgrad.slow_points is slow_points and jaxgrad.analysis.SlowPoints is SlowPoints
    assert jaxgrad.analysis.slow_points is slow_points


# --------------------------------------------------------------------------- bad input


GRU = jaxgrad.models.GRUParams(jnp.ones((12, 2)), jnp.ones((12, 4)), jnp.zeros(12), jnp.zeros(12))
LSTM = jaxgrad.models.LSTMParams(jnp.ones((16, 2)), jnp.ones((16, 4)), jnp.zeros(16))
U2 = jnp.zeros(2)
OK4 = jnp.zeros((3, 4))


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: slow_points(jaxgrad.gru_step, jnp.zeros((0, 4)), U2, params=GRU),
         ValueError, "states"),
        (lambda: slow_points(jaxgrad.gru_step, (), U2, params=GRU), ValueError, "states"),
        (lambda: slow_points(jaxgrad.gru_step, OK4.at[1, 2].set(jnp.nan), U2, params=GRU),
         ValueError, "states"),
        (lambda: slow_points(jaxgrad.gru_step, OK4.at[0, 0].set(jnp.inf), U2, params=GRU),
         ValueError, "states"),
        # one state without the batch axis: rows are scalars
        (lambda: slow_points(jaxgrad.gru_step, jnp.zeros(4), U2, params=GRU),
         ValueError, "states"),
        (lambda: slow_points(TANH, jnp.asarray(1.0), params=2.0), ValueError, "states"),
        # mismatched pytrees: batch lengths, a missing leaf, the wrong state size
        (lambda: slow_points(jaxgrad.lstm_step,
                             jaxgrad.models.LSTMState(jnp.zeros((3, 4)), jnp.zeros((2, 4))), U2,
                             params=LSTM), ValueError, "states"),
        (lambda: slow_points(jaxgrad.lstm_step, jnp.zeros((3, 4)), U2, params=LSTM),
         ValueError, "states"),
        (lambda: slow_points(jaxgrad.gru_step, jnp.zeros((3, 5)), U2, params=GRU),
         ValueError, "states"),
        (lambda: slow_points(jaxgrad.gru_step, jnp.zeros((3, 4), jnp.complex64), U2,
                             params=GRU), TypeError, "states"),
        (lambda: slow_points(jaxgrad.gru_step, OK4, "u", params=GRU), TypeError, "input"),
        (lambda: slow_points(jaxgrad.gru_step, OK4, U2.at[0].set(jnp.nan), params=GRU),
         ValueError, "input"),
        (lambda: slow_points(jaxgrad.gru_step, OK4, U2, params=GRU, q_tol=0.0),
         ValueError, "q_tol"),
        (lambda: slow_points(jaxgrad.gru_step, OK4, U2, params=GRU, q_tol=-1e-3),
         ValueError, "q_tol"),
        (lambda: slow_points(jaxgrad.gru_step, OK4, U2, params=GRU, q_tol=float("nan")),
         ValueError, "q_tol"),
        (lambda: slow_points(jaxgrad.gru_step, OK4, U2, params=GRU, fixed_tol=0.0),
         ValueError, "fixed_tol"),
        (lambda: slow_points(jaxgrad.gru_step, OK4, U2, params=GRU, merge_tol=-1.0),
         ValueError, "merge_tol"),
        (lambda: slow_points(jaxgrad.gru_step, OK4, U2, params=GRU, learning_rate=0.0),
         ValueError, "learning_rate"),
        (lambda: slow_points(jaxgrad.gru_step, OK4, U2, params=GRU, max_steps=0),
         ValueError, "max_steps"),
        (lambda: slow_points(jaxgrad.gru_step, OK4, U2, params=GRU, newton_steps=-1),
         ValueError, "newton_steps"),
        (lambda: slow_points(jaxgrad.gru_step, OK4, U2, params=GRU, num_modes=0),
         ValueError, "num_modes"),
        (lambda: slow_points(jaxgrad.gru_step, OK4, U2, params=GRU._replace(
            b_h=GRU.b_h.at[0].set(jnp.nan))), ValueError, "params"),
        (lambda: slow_points(jaxgrad.vector_field(jaxgrad.models.rate_vector_field), OK4),
         TypeError, "step"),
        (lambda: slow_points(None, OK4), TypeError, "step"),
    ],
)
def test_bad_input_names_the_argument(call, error, name):
    with pytest.raises(error, match=f"`{name}"):
        call()
