"""The benchmark workloads compute the same numbers in every implementation (no timing checks)."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgrad
from benchmarks import (
    _harness,
    hessian,
    hopf_curve,
    jacobian_products,
    mlp_gradients,
    slow_points,
    sweep_devices,
)

PEERS = {"a": jacobian_products, "b": mlp_gradients}
TINY = {"a": {"num_units": 8, "num_steps": 40}, "b": {"depth": 3, "width": 16, "batch": 8},
        "g": {"num_units": 8, "num_starts": 32, "train_steps": 20, "max_steps": 1000}}


def _check_contract(records, module):
    assert records, "a workload must return records"
    expected = {"jaxgrad", "numpy"} | ({"torch"} if _harness.has_torch() else set())
    by_workload = {}
    for r in records:
        assert r["implementation"] in _harness.IMPLEMENTATIONS
        assert r["workload"].startswith(f"({module.ID})")
        assert r["seconds"] > 0
        assert r["flops"] > 0
        by_workload.setdefault(r["workload"], []).append(r["implementation"])
    for impls in by_workload.values():
        assert sorted(impls) == sorted(expected)  # one record per implementation


def test_discovered_by_the_harness():
    ids = {m.ID: m for m in _harness.discover()}
    assert ids["a"] is jacobian_products
    assert ids["b"] is mlp_gradients
    assert ids["g"] is slow_points
    assert ids["h"] is hopf_curve


@pytest.mark.slow
def test_jacobian_products_implementations_agree():
    records = jacobian_products.run(True, TINY["a"])
    _check_contract(records, jacobian_products)
    assert {r["spectral_method"] for r in records if r["implementation"] == "jaxgrad"} == {
        "power", "svd"}
    for r in records:
        assert r["flops"] == 40 * 2.0 * 8**3
        assert r["log_norm_max_abs_diff"] < 1e-4, r


def _scaled_orthogonal_problem(n, T, c):
    """x0 = 0, no input, b = 0: the state stays 0, every J_t = W_rec = c Q, ‖P_k‖ = c^k."""
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(n, n)))
    W_rec = (c * q).astype(np.float32)
    return (W_rec, np.zeros((n, 2), np.float32), np.zeros(n, np.float32),
            np.zeros(n, np.float32), np.zeros((T, 2), np.float32))


@pytest.mark.parametrize("c", [0.5, 1.5])
def test_jacobian_product_peers_closed_form(c):
    # 0.5^300 underflows and 1.5^300 overflows float32: the peers' log scale must hold.
    args = _scaled_orthogonal_problem(6, 300, c)
    expected = np.arange(1, 301) * np.log(c)
    np.testing.assert_allclose(jacobian_products.numpy_log_norms(*args), expected,
                               rtol=1e-5, atol=1e-4)
    if _harness.has_torch():
        np.testing.assert_allclose(jacobian_products.torch_log_norms(*args), expected,
                                   rtol=1e-5, atol=1e-4)


@pytest.mark.slow
def test_jacobian_product_peers_match_dense_products():
    # An unrenormalised float64 product of explicit Jacobians, on a short trajectory.
    problem = jacobian_products.make_problem(5, 12, seed=3)
    p = problem["params"]
    args = tuple(np.asarray(a, np.float64) for a in (p.W_rec, p.W_in, p.b, problem["x0"],
                                                     problem["inputs"]))
    W_rec, W_in, b, x, inputs = args
    states = [x]
    for u in inputs:
        states.append(W_rec @ np.tanh(states[-1]) + W_in @ u + b)
    P, expected = np.eye(5), []
    for t in range(12, 0, -1):
        P = P @ (W_rec * (1.0 - np.tanh(states[t - 1]) ** 2)[None])
        expected.append(np.log(np.linalg.norm(P, 2)))
    np.testing.assert_allclose(jacobian_products.numpy_log_norms(*args), expected, atol=1e-5)
    if _harness.has_torch():
        np.testing.assert_allclose(jacobian_products.torch_log_norms(*args), expected,
                                   atol=1e-5)


@pytest.mark.slow
def test_mlp_gradients_implementations_agree():
    records = mlp_gradients.run(True, TINY["b"])
    _check_contract(records, mlp_gradients)
    for r in records:
        assert r["grad_norm_max_rel_diff"] < 1e-4, r


@pytest.mark.slow
def test_mlp_numpy_reference_matches_autodiff():
    # The manual backward pass against jax.grad of the same network written directly.
    problem = mlp_gradients.make_problem(4, 12, 6, seed=1)
    Ws, bs = mlp_gradients.numpy_weights(problem["params"])
    x, y = np.asarray(problem["x"]), np.asarray(problem["y"])

    def loss(Ws, bs, probes):
        h = jnp.asarray(x)
        for W, b, probe in zip(Ws[:-1], bs[:-1], probes, strict=True):
            h = jax.nn.relu(h @ W + b[None]) + probe
        logits = h @ Ws[-1] + bs[-1][None]
        log_p = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(log_p, jnp.asarray(y)[:, None], axis=1))

    probes = [jnp.zeros((6, 12), jnp.float32)] * 4
    gW, gb, gh = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(Ws, bs, probes)
    expected = np.array([[np.linalg.norm(g) for g in gW[:-1]],
                         [np.linalg.norm(g) for g in gb[:-1]],
                         [np.linalg.norm(g) for g in gh]])
    np.testing.assert_allclose(mlp_gradients.numpy_gradient_norms(Ws, bs, x, y), expected,
                               rtol=1e-5)


@pytest.mark.slow
def test_hopf_curve_workload_matches_the_closed_form():
    """(h) has no peer: its agreement field is the curve against its closed form."""
    (record,) = hopf_curve.run(True, {"num_steps": 10})
    assert record["workload"].startswith("(h)") and record["implementation"] == "jaxgrad"
    assert record["seconds"] > 0 and record["seconds_per_step"] == record["seconds"] / 10
    assert record["num_steps"] == 10 and record["num_valid_points"] == 11
    assert record["max_abs_error_closed_form"] < 1e-10


def _constant_gru(n):
    """A GRU with ``W_h = 0``: gates constant, so ``F(h) = (1 - z) tanh(a) + z h`` with the
    one fixed point ``h* = tanh(a)`` and the Jacobian ``diag(z)`` (``a = b_xn + r b_hn``)."""
    rng = np.random.default_rng(4)
    b_x, b_h = (rng.uniform(-1, 1, 3 * n).astype(np.float32) for _ in range(2))
    sigmoid = 1 / (1 + np.exp(-(b_x + b_h)))
    r, z = sigmoid[:n], sigmoid[n:2 * n]
    h_star = np.tanh(b_x[2 * n:] + r * b_h[2 * n:])
    params = jaxgrad.models.GRUParams(jnp.asarray(rng.normal(size=(3 * n, 2)), jnp.float32),
                                      jnp.zeros((3 * n, n), jnp.float32), jnp.asarray(b_x),
                                      jnp.asarray(b_h))
    return params, h_star, z


@pytest.mark.parametrize("newton_steps", [10, 0])
def test_slow_points_torch_peer_closed_form(newton_steps):
    pytest.importorskip("torch")
    n = 4
    p, h_star, z = _constant_gru(n)
    starts = np.random.default_rng(5).uniform(-1, 1, (16, n)).astype(np.float32)
    out = slow_points.torch_slow_points(p.W_x, p.W_h, p.b_x, p.b_h, starts,
                                        np.zeros(2, np.float32), 3000, newton_steps)
    assert out["num_failed"] == 0 and out["num_steps"] < 3000  # every start stopped
    assert out["x"].shape == (1, n)
    # F(h) - h = (1 - z) (h* - h): Newton solves it; Adam alone stops at ‖F(h) - h‖ below
    # fixed_tol / 10 (q below ½ (fixed_tol / 10)²)
    residual = np.linalg.norm((1 - z) * (out["x"][0] - h_star))
    assert residual < (1e-6 if newton_steps else 1.01 * slow_points.FIXED_TOL / 10)
    np.testing.assert_allclose(out["q"][0], 0.5 * residual**2, atol=1e-9)
    np.testing.assert_allclose(np.abs(out["eigenvalues"][0]), np.sort(z)[::-1], atol=1e-5)


def test_slow_points_torch_cell_is_jaxgrads_gru():
    torch = pytest.importorskip("torch")
    p = jaxgrad.init_gru(jax.random.key(0), 6, 2, update_bias=0.5)
    p = p._replace(b_h=jax.random.normal(jax.random.key(1), (18,), jnp.float32))
    h, u = jax.random.normal(jax.random.key(2), (6,)), jax.random.normal(jax.random.key(3), (2,))
    cell = torch.nn.GRUCell(2, 6)
    with torch.no_grad():
        for name, w in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), p, strict=True):
            getattr(cell, name).copy_(torch.tensor(np.asarray(w)))
        ours = cell(torch.tensor(np.asarray(u)), torch.tensor(np.asarray(h))).numpy()
    np.testing.assert_allclose(ours, jaxgrad.gru_step(h, u, p), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_slow_points_implementations_agree():
    if not _harness.has_torch():
        pytest.skip("the peer of workload (g) is PyTorch only")
    records = slow_points.run(True, TINY["g"])
    assert [r["implementation"] for r in records] == ["jaxgrad", "torch"]
    ours, peer = records
    assert ours["workload"] == peer["workload"] and ours["workload"].startswith("(g)")
    assert ours["num_fixed"] >= 1 and ours["seconds"] > 0 and peer["seconds"] > 0
    for field in ("num_points", "num_fixed", "num_stable", "num_failed", "num_steps"):
        assert peer[field] == ours[field], (field, ours, peer)
    assert peer["points_matched"] == 1.0 and peer["fixed_points_matched"] == 1.0, peer
    assert peer["point_max_abs_diff"] < 1e-4, peer
    assert peer["q_max_abs_diff"] < 1e-7, peer
    assert peer["eigenvalue_modulus_max_abs_diff"] < 1e-4, peer


# (i) Hessian eigenvalue and trace against PyHessian; (j) a λ₁ sweep on 1 and 2 devices.

TINY_HESSIAN = {"depth": 3, "width": 16, "batch": 8, "eig_hvps": 40, "trace_probes": 40,
                "reference_iterations": 80}
TINY_SWEEP = {"num_units": 8, "grid": 4, "num_steps": 60, "transient": 20}


def test_hessian_and_sweep_discovered_by_the_harness():
    ids = {m.ID: m for m in _harness.discover()}
    assert ids["i"] is hessian
    assert ids["j"] is sweep_devices


def _dense_hessian(problem):
    """The Hessian of the workload's loss over the flat parameters (jax.hessian, dense)."""
    flat, unravel = jax.flatten_util.ravel_pytree(problem["params"])
    loss = hessian.jax_loss(problem)
    return np.asarray(jax.jit(jax.hessian(lambda v: loss(unravel(v))))(flat), np.float64)


@pytest.mark.slow
def test_hessian_implementations_agree():
    records = hessian.run(True, TINY_HESSIAN)
    expected = {"jaxgrad"} | ({"torch"} if _harness.has_torch() else set())
    by_workload = {}
    for r in records:
        assert r["workload"].startswith("(i)")
        assert r["seconds"] > 0 and r["cpu_seconds"] >= 0
        by_workload.setdefault(r["workload"], set()).add(r["implementation"])
    assert len(by_workload) == 2 and all(v == expected for v in by_workload.values())
    eig = [r for r in records if "eigenvalue" in r["workload"]]
    trace = [r for r in records if "trace" in r["workload"]]
    # The same Hessian-vector products on both sides (jaxgrad's trace: one more, its scale).
    assert {r["num_hvps"] for r in eig} == {40}
    assert {r["implementation"]: r["num_hvps"] for r in trace}["jaxgrad"] == 41
    # The top eigenvalue against the dense Hessian of the same loss and weights.
    problem = mlp_gradients.make_problem(3, 16, 8)
    H = _dense_hessian(problem)
    lam_max = np.linalg.eigvalsh((H + H.T) / 2)[-1]
    for r in eig:
        assert abs(r["lambda_max"] - lam_max) <= 1e-3 * abs(lam_max), r
        assert r["lambda_max_rel_error"] < 1e-3, r
        if _harness.has_torch():
            assert r["lambda_max_rel_diff"] < 1e-3, r
    # Hutchinson's estimates within 4 of their standard errors of the exact trace.
    for r in trace:
        assert abs(r["trace"] - np.trace(H)) <= 4 * r["trace_standard_error"], r
        if _harness.has_torch():
            assert r["trace_difference_in_standard_errors"] < 4, r


@pytest.mark.skipif(not _harness.has_torch(), reason="PyTorch is not installed")
def test_hessian_torch_model_has_the_same_loss():
    import torch

    problem = mlp_gradients.make_problem(3, 16, 8, seed=2)
    model = hessian.torch_model(*mlp_gradients.numpy_weights(problem["params"]))
    x = torch.from_numpy(np.array(problem["x"]))
    y = torch.from_numpy(np.asarray(problem["y"]).astype(np.int64))
    with torch.no_grad():
        loss = float(torch.nn.functional.cross_entropy(model(x), y))
    np.testing.assert_allclose(loss, float(hessian.jax_loss(problem)(problem["params"])),
                               rtol=1e-6)


@pytest.mark.slow
def test_sweep_points_match_direct_lyapunov_exponents():
    # Grid (σ_b², g) over [0, 2] × [0.5, 3]: the corners by direct lyapunov_spectrum calls.
    values = sweep_devices.lambda_1_sweep(**TINY_SWEEP)
    assert values.shape == (4, 4)
    point = sweep_devices.make_point(8, 60, 20)
    for i, j in [(0, 0), (3, 3), (1, 2)]:
        b2, g = np.linspace(0.0, 2.0, 4)[i], np.linspace(0.5, 3.0, 4)[j]
        direct = point({"sigma_b2": jnp.float32(b2), "g": jnp.float32(g)})
        np.testing.assert_allclose(values[i, j], direct, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_sweep_devices_same_values_on_one_and_two_devices():
    records = sweep_devices.run(True, TINY_SWEEP)
    assert [(r["devices"], r["pinned"]) for r in records] == [(1, False), (1, True),
                                                              (2, False)]
    for r in records:
        assert r["workload"].startswith("(j)") and r["implementation"] == "jaxgrad"
        assert r["seconds"] > 0
        assert r["lambda_1_max_abs_diff"] < 1e-5, r
    assert records[2]["speedup_vs_1_device"] > 0
    # The subprocesses computed what this process computes.
    np.testing.assert_allclose(records[0]["lambda_1_max"],
                               np.max(sweep_devices.lambda_1_sweep(**TINY_SWEEP)), rtol=1e-5)
