"""Every bad input refused by name: one table over the public functions.

Each row is a public callable, keyword arguments in which exactly one argument is bad
(the others are good), the exception type expected, and a regex that names the bad
argument. Every row must raise before any computation (nothing here compiles a model), so
the whole table runs in a few seconds. A second test lists the public functions of
``jaxgrad`` the table does not cover (the Jacobian, spectral, Lyapunov, landscape,
gradient-flow, signal-propagation and training tools have their own bad-input tests).
"""

from __future__ import annotations

import inspect
import re
import struct
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgrad
from jaxgrad.analysis.continuation import MAX_CONTINUATION_STEPS
from jaxgrad.models.mlp import Dense
from jaxgrad.train import read_idx, tasks, train_test_split

KEY = jax.random.key(0)
NAN, INF = float("nan"), float("inf")

# Good arguments, from which each row changes one.
LSTM = jaxgrad.init_lstm(KEY, 4, 2)
GRU = jaxgrad.init_gru(KEY, 4, 2)
RNN = jaxgrad.init_pascanu(KEY, 4, 2)
RATE = jaxgrad.init_rate(KEY, 4, num_inputs=2)
CFG = jaxgrad.MLPConfig(in_dim=3, width=4, depth=2)
MLP = jaxgrad.init_mlp(KEY, CFG)
DOYA = jaxgrad.DoyaParams(5.0, -2.5)
TASK = tasks.get_task("addition")


def flow(x, p):
    return jaxgrad.models.doya_vector_field(x, 0.0, p)


def duffing(z, p):
    return jnp.stack([z[1], z[0] - z[0] ** 3 - p * z[1]])


class Files(NamedTuple):
    """A directory argument made at test time: MNIST files with one of them broken."""

    broken: str


def _idx(code: int, shape: tuple[int, ...], payload: bytes | None = None) -> bytes:
    header = bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">i", s) for s in shape)
    if payload is None:
        itemsize = {0x08: 1, 0x0D: 4}[code]
        payload = bytes(int(np.prod([max(s, 0) for s in shape])) * itemsize)
    return header + payload


def _mnist_dir(tmp_path, broken: str):
    files = {
        "train-images-idx3-ubyte": _idx(0x08, (2, 3, 3)),
        "train-labels-idx1-ubyte": _idx(0x08, (2,)),
        "t10k-images-idx3-ubyte": _idx(0x08, (1, 3, 3)),
        "t10k-labels-idx1-ubyte": _idx(0x08, (1,)),
    }
    images, labels = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
    bad = {
        "negative": (images, _idx(0x08, (-2, 3, 3), b"")),
        "two_negative": (images, _idx(0x08, (-2, -3, 3), bytes(18))),
        "huge": (images, _idx(0x08, (2**31 - 1, 2**31 - 1, 3), b"")),
        "ndim": (images, _idx(0x08, (2, 9))),
        "dtype": (images, _idx(0x0D, (2, 3, 3))),
        "code": (images, bytes([0, 0, 0x07, 3]) + struct.pack(">3i", 2, 3, 3) + bytes(18)),
        "no_dims": (images, bytes([0, 0, 0x08, 0])),
        "truncated": (images, _idx(0x08, (2, 3, 3), bytes(17))),
        "magic": (images, b"\x01\x02\x08\x03"),
        "float_labels": (labels, _idx(0x0D, (2,), struct.pack(">2f", 0.5, 1.5))),
        "count": (labels, _idx(0x08, (3,))),
    }
    name, data = bad[broken]
    files[name] = data
    for n, d in files.items():
        (tmp_path / n).write_bytes(d)
    return tmp_path


class Row(NamedTuple):
    fn: Any
    kwargs: dict
    exc: type
    pattern: str
    xfail: tuple[bool, str] | None = None  # (strict, reason) for a known bug


def _rows() -> dict[str, Row]:
    rows: dict[str, Row] = {}

    def add(name, fn, good, bad, exc, pattern, xfail=None):
        assert name not in rows, name
        rows[name] = Row(fn, {**good, **bad}, exc, pattern, xfail)

    bad_keys = {
        "int": 0,
        "None": None,
        "str": "a",
        "uint32_3": jnp.zeros(3, jnp.uint32),
        "float_2": jnp.zeros(2),
        "key_batch": jax.random.split(KEY, 2),
    }
    inits = {
        "init_mlp": (jaxgrad.init_mlp, {"key": KEY, "config": CFG}),
        "init_pascanu": (jaxgrad.init_pascanu, {"key": KEY, "num_units": 4, "num_inputs": 2}),
        "init_lstm": (jaxgrad.init_lstm, {"key": KEY, "num_units": 4, "num_inputs": 2}),
        "init_gru": (jaxgrad.init_gru, {"key": KEY, "num_units": 4, "num_inputs": 2}),
        "init_rate": (jaxgrad.init_rate, {"key": KEY, "num_units": 4}),
        "Task.sample": (TASK.sample, {"key": KEY, "batch_size": 2, "length": 10}),
        "adding_problem": (tasks.adding_problem, {"key": KEY, "batch_size": 2, "length": 10}),
        "load_digits": (jaxgrad.train.load_digits, {"key": KEY}),
        "train_test_split": (train_test_split,
                             {"x": jnp.zeros((4, 2)), "y": jnp.zeros(4), "key": KEY}),
    }
    for fname, (fn, good) in inits.items():
        for kname, key in bad_keys.items():
            add(f"{fname}-key-{kname}", fn, good, {"key": key}, TypeError, r"`key`")

    # ------------------------------------------------------------------ models
    g = inits["init_pascanu"][1]
    add("init_pascanu-input_std-neg", jaxgrad.init_pascanu, g, {"input_std": -1.0},
        ValueError, r"`input_std`")
    add("init_pascanu-input_std-nan", jaxgrad.init_pascanu, g, {"input_std": NAN},
        ValueError, r"`input_std`")
    add("init_pascanu-value-inf", jaxgrad.init_pascanu, g, {"value": INF}, ValueError, r"`value`")
    add("init_pascanu-num_units-0", jaxgrad.init_pascanu, g, {"num_units": 0},
        ValueError, r"`num_units`")
    add("init_pascanu-num_units-float", jaxgrad.init_pascanu, g, {"num_units": 4.0},
        TypeError, r"`num_units`")
    add("init_pascanu-scaling", jaxgrad.init_pascanu, g, {"scaling": "frobenius"},
        ValueError, r"`scaling`")
    add("init_lstm-forget_bias-inf", jaxgrad.init_lstm, inits["init_lstm"][1],
        {"forget_bias": INF}, ValueError, r"`forget_bias`")
    add("init_gru-update_bias-nan", jaxgrad.init_gru, inits["init_gru"][1],
        {"update_bias": NAN}, ValueError, r"`update_bias`")
    add("init_rate-g-neg", jaxgrad.init_rate, inits["init_rate"][1], {"g": -1.0},
        ValueError, r"`g`")
    add("init_mlp-config-None", jaxgrad.init_mlp, inits["init_mlp"][1], {"config": None},
        TypeError, r"`config`")

    good = {"x": jnp.zeros(4), "u": jnp.zeros(2), "params": RNN}
    step = jaxgrad.pascanu_step
    add("pascanu_step-x-size", step, good, {"x": jnp.zeros(3)}, ValueError, r"`x`.*\(4,\)")
    add("pascanu_step-x-batch", step, good, {"x": jnp.zeros((2, 4))}, ValueError, r"`x`")
    add("pascanu_step-u-size", step, good, {"u": jnp.zeros(3)}, ValueError, r"`u`.*\(2,\)")
    add("pascanu_step-b-broadcast", step, good, {"params": RNN._replace(b=jnp.zeros(1))},
        ValueError, r"`params.b`")
    add("pascanu_step-W_in-rows", step, good, {"params": RNN._replace(W_in=jnp.zeros((3, 2)))},
        ValueError, r"`params.W_in`")
    add("pascanu_step-W_rec-not-square", step, good,
        {"params": RNN._replace(W_rec=jnp.zeros((4, 3)))}, ValueError, r"`params.W_rec`")
    add("pascanu_step-params-tuple", step, good, {"params": (1.0, 2.0)}, TypeError, r"`params`")
    add("pascanu_step-x-complex", step, good, {"x": jnp.zeros(4, jnp.complex64)},
        TypeError, r"`x`.*complex")
    add("pascanu_step-u-None", step, good, {"u": None}, (TypeError, ValueError), r"`u`")
    add("pascanu_unroll-x0", jaxgrad.models.pascanu_unroll,
        {"params": RNN, "x0": jnp.zeros(4), "inputs": jnp.zeros((3, 2))},
        {"x0": jnp.zeros(5)}, ValueError, r"`x0`")
    add("pascanu_unroll-inputs-nan", jaxgrad.models.pascanu_unroll,
        {"params": RNN, "x0": jnp.zeros(4), "inputs": jnp.zeros((3, 2))},
        {"params": RNN._replace(W_rec=jnp.full((4, 4), NAN))}, ValueError, r"`W_rec`")

    good = {"state": jaxgrad.models.lstm_zero_state(4), "u": jnp.zeros(2), "params": LSTM}
    step = jaxgrad.lstm_step
    add("lstm_step-c-broadcast", step, good, {"state": (jnp.zeros(4), jnp.zeros(1))},
        ValueError, r"`c`")
    add("lstm_step-c-size", step, good, {"state": (jnp.zeros(4), jnp.zeros(5))},
        ValueError, r"`c`")
    add("lstm_step-b-broadcast", step, good, {"params": LSTM._replace(b=jnp.zeros(1))},
        ValueError, r"`params.b`")
    add("lstm_step-b-size", step, good, {"params": LSTM._replace(b=jnp.zeros(17))},
        ValueError, r"`params.b`")
    add("lstm_step-state-triple", step, good, {"state": (jnp.zeros(4),) * 3},
        TypeError, r"`state`")
    add("lstm_step-state-array", step, good, {"state": jnp.zeros(4)}, TypeError, r"`state`")
    add("lstm_step-u-size", step, good, {"u": jnp.zeros(3)}, ValueError, r"`u`")
    add("lstm_step-u-complex", step, good, {"u": jnp.zeros(2, jnp.complex64)},
        TypeError, r"`u`")
    add("lstm_step-params-gru", step, good, {"params": GRU}, TypeError, r"`params`")
    add("lstm_zero_state-0", jaxgrad.models.lstm_zero_state, {"num_units": 4}, {"num_units": 0},
        ValueError, r"`num_units`")

    good = {"h": jnp.zeros(4), "u": jnp.zeros(2), "params": GRU}
    step = jaxgrad.gru_step
    add("gru_step-b_x-broadcast", step, good, {"params": GRU._replace(b_x=jnp.zeros(1))},
        ValueError, r"`params.b_x`")
    add("gru_step-b_h-broadcast", step, good, {"params": GRU._replace(b_h=jnp.zeros(1))},
        ValueError, r"`params.b_h`")
    add("gru_step-b_h-rank", step, good, {"params": GRU._replace(b_h=jnp.zeros((12, 1)))},
        ValueError, r"`params.b_h`")
    add("gru_step-h-batch", step, good, {"h": jnp.zeros((2, 4))}, ValueError, r"`h`")
    add("gru_step-u-size", step, good, {"u": jnp.zeros(3)}, ValueError, r"`u`")

    good = {"h": jnp.zeros(4), "u": jnp.zeros(2), "params": RATE}
    for step in (jaxgrad.rate_step, jaxgrad.models.rate_vector_field,
                 jaxgrad.models.rate_flow_step):
        name = step.__name__
        add(f"{name}-h-size", step, good, {"h": jnp.zeros(3)}, ValueError, r"`h`")
        add(f"{name}-u-size", step, good, {"u": jnp.zeros(3)}, ValueError, r"`u`")
    add("rate_step-W_in-rows", jaxgrad.rate_step, good,
        {"params": RATE._replace(W_in=jnp.zeros((3, 2)))}, ValueError, r"`params.W_in`")
    add("rate_step-params-None", jaxgrad.rate_step, good, {"params": None}, TypeError,
        r"`params`")
    add("rate_flow_step-dt", jaxgrad.models.rate_flow_step, {**good, "dt": 0.1}, {"dt": -0.1},
        ValueError, r"`dt`")

    good = {"params": MLP, "x": jnp.zeros((2, 3)), "config": CFG}
    apply = jaxgrad.mlp_apply
    add("mlp_apply-x-complex", apply, good, {"x": jnp.zeros((2, 3), jnp.complex64)},
        TypeError, r"`x`.*complex")
    add("mlp_apply-x-empty", apply, good, {"x": jnp.zeros((0, 3))}, ValueError, r"`x`")
    add("mlp_apply-x-1d", apply, good, {"x": jnp.zeros(3)}, ValueError, r"`x`")
    add("mlp_apply-x-width", apply, good, {"x": jnp.zeros((2, 5))}, ValueError, r"`x`")
    add("mlp_apply-x-None", apply, good, {"x": None}, TypeError, r"`x`")
    add("mlp_apply-x-str", apply, good, {"x": "abc"}, TypeError, r"`x`")
    add("mlp_apply-params-None", apply, good, {"params": None}, TypeError, r"`params`")
    add("mlp_apply-config-dict", apply, good, {"config": {"in_dim": 3}}, TypeError,
        r"`config`")
    add("mlp_apply-params-hidden", apply, good,
        {"params": MLP._replace(hidden=Dense(jnp.zeros((1, 5, 5)), jnp.zeros((1, 5))))},
        ValueError, r"`params.hidden.W`")
    add("mlp_apply-params-readout", apply, good,
        {"params": MLP._replace(readout=Dense(jnp.zeros((4, 1)), jnp.zeros(1)))},
        ValueError, r"`params.readout`")
    add("mlp_apply-probes", apply, good, {"probes": jnp.zeros((2, 2, 5))}, ValueError,
        r"`probes`")
    cfg = {"in_dim": 3, "width": 4, "depth": 2}
    add("MLPConfig-width-0", jaxgrad.MLPConfig, cfg, {"width": 0}, ValueError, r"`width`")
    add("MLPConfig-depth-float", jaxgrad.MLPConfig, cfg, {"depth": 2.0}, TypeError, r"`depth`")
    add("MLPConfig-activation", jaxgrad.MLPConfig, {**cfg, "activation": "relu"},
        {"activation": "swish!"}, ValueError, r"`activation`")
    add("MLPConfig-norm", jaxgrad.MLPConfig, {**cfg, "norm": None}, {"norm": "group"},
        ValueError, r"`norm`")
    add("MLPConfig-init_options-int", jaxgrad.MLPConfig, {**cfg, "init_options": ()},
        {"init_options": 5}, TypeError, r"`init_options`")
    add("MLPConfig-init_options-array", jaxgrad.MLPConfig,
        {**cfg, "init": "normal", "init_options": ()},
        {"init_options": {"std": jnp.asarray(0.1)}}, TypeError, r"`init_options`.*hashable")
    add("MLPConfig-init_options-unknown", jaxgrad.MLPConfig, {**cfg, "init_options": ()},
        {"init_options": {"gain": 2.0}}, TypeError, r"options")
    add("doya_integrate-dt", jaxgrad.models.doya_integrate,
        {"params": DOYA, "x0": 0.1, "inputs": jnp.zeros(3), "dt": 0.1}, {"dt": 0.0},
        ValueError, r"`dt`")
    add("doya_integrate-inputs-empty", jaxgrad.models.doya_integrate,
        {"params": DOYA, "x0": 0.1, "inputs": jnp.zeros(3)}, {"inputs": jnp.zeros(0)},
        ValueError, r"`inputs`")

    # ------------------------------------------------------------------ data and tasks
    g = inits["Task.sample"][1]
    add("Task.sample-batch_size-0", TASK.sample, g, {"batch_size": 0}, ValueError,
        r"`batch_size`")
    add("Task.sample-length-short", TASK.sample, g, {"length": 5}, ValueError, r"`length`")
    add("Task.sample-length-str", TASK.sample, g, {"length": "10"}, TypeError, r"`length`")
    add("get_task-name", tasks.get_task, {"name": "addition"}, {"name": "adding"},
        ValueError, r"`name`")
    add("get_task-num_values", tasks.get_task, {"name": "noiseless_memorization"},
        {"num_values": 1}, ValueError, r"`num_values`")
    for broken in ("negative", "two_negative", "huge", "ndim", "dtype", "code", "no_dims",
                   "truncated", "magic", "float_labels", "count"):
        add(f"load_mnist-{broken}", jaxgrad.train.load_mnist, {}, {"directory": Files(broken)},
            ValueError, r"idx\d-ubyte")
    add("load_mnist-missing", jaxgrad.train.load_mnist, {}, {"directory": "/nonexistent/mnist"},
        ValueError, r"`directory`")
    add("read_idx-missing", read_idx, {}, {"path": "/nonexistent/file-idx1-ubyte"},
        ValueError, r"/nonexistent/file-idx1-ubyte")
    add("train_test_split-fraction", train_test_split, inits["train_test_split"][1],
        {"test_fraction": 1.5}, ValueError, r"`test_fraction`")
    add("train_test_split-scalar", train_test_split, inits["train_test_split"][1],
        {"x": 1.0}, ValueError, r"`x`")

    # ------------------------------------------------------------------ bifurcation tools
    # N-D and pytree states are valid since 0.2; their bad-input cases (an output structure
    # unlike the state, mixed dtypes, ...) are in tests/test_pytree_states.py.
    good = {"f": duffing, "starts": jnp.zeros((3, 2)), "params": 0.5}
    fp = jaxgrad.fixed_points
    add("fixed_points-starts-rank-low", fp, good, {"starts": jnp.zeros(2)}, ValueError,
        r"`starts`")
    add("fixed_points-starts-complex", fp, good, {"starts": jnp.zeros((3, 2), jnp.complex64)},
        TypeError, r"`starts`.*complex")
    add("fixed_points-starts-nan", fp, good, {"starts": jnp.full((3, 2), NAN)}, ValueError,
        r"`starts`.*finite")
    add("fixed_points-starts-empty", fp, good, {"starts": jnp.zeros((0, 2))}, ValueError,
        r"`starts`")
    add("fixed_points-starts-None", fp, good, {"starts": None}, TypeError, r"`starts`")
    add("fixed_points-params-nan", fp, good, {"params": NAN}, ValueError, r"`params`.*finite")
    add("fixed_points-kind", fp, good, {"kind": "ode"}, ValueError, r"`kind`")
    add("fixed_points-f", fp, good, {"f": "duffing"}, TypeError, r"`f`")
    add("fixed_points-tol", fp, good, {"tol": -1.0}, ValueError, r"`tol`")

    good = {"f": flow, "interval": (0.0, 1.0), "params": DOYA, "param": "b",
            "values": jnp.array([-2.5])}
    fp1 = jaxgrad.analysis.fixed_points_1d
    add("fixed_points_1d-params-nan", fp1, good, {"params": DOYA._replace(w=NAN)},
        ValueError, r"`params.w`")
    add("fixed_points_1d-params-inf", fp1, good, {"params": {"w": INF, "b": 0.0, "w_in": 0.0}},
        ValueError, r"`params\['w'\]`")
    add("fixed_points_1d-interval-reversed", fp1, good, {"interval": (1.0, 0.0)}, ValueError,
        r"`interval`")
    add("fixed_points_1d-interval-nan", fp1, good, {"interval": (0.0, NAN)}, ValueError,
        r"`interval`")
    add("fixed_points_1d-values-nan", fp1, good, {"values": jnp.array([NAN])}, ValueError,
        r"`values`")
    add("fixed_points_1d-values-2d", fp1, good, {"values": jnp.zeros((2, 2))}, ValueError,
        r"`values`")
    add("fixed_points_1d-values-empty", fp1, good, {"values": jnp.zeros(0)}, ValueError,
        r"`values`")
    add("fixed_points_1d-num_points", fp1, good, {"num_points": 1}, ValueError,
        r"`num_points`")
    add("fixed_points_1d-param-unknown", fp1, good, {"param": "c"}, ValueError, r"`param`")

    good = {"f": flow, "x0": 0.1, "params": DOYA, "param": "b", "p_range": (-3.0, -2.0),
            "ds": 0.01, "ds_min": 0.001, "ds_max": 0.1, "num_steps": 5, "direction": 1}
    cb = jaxgrad.continue_branch
    add("continue_branch-ds_min-gt-ds_max", cb, good, {"ds_min": 0.5}, ValueError,
        r"`ds_min`.*`ds_max`")
    add("continue_branch-ds-gt-ds_max", cb, good, {"ds": 0.2}, ValueError, r"`ds`")
    add("continue_branch-ds-lt-ds_min", cb, good, {"ds": 0.0001}, ValueError, r"`ds`")
    add("continue_branch-ds-nan", cb, good, {"ds": NAN}, ValueError, r"`ds`")
    add("continue_branch-num_steps-huge", cb, good, {"num_steps": 10**7}, ValueError,
        rf"`num_steps`.*{MAX_CONTINUATION_STEPS}")
    add("continue_branch-num_steps-0", cb, good, {"num_steps": 0}, ValueError, r"`num_steps`")
    add("continue_branch-direction-2", cb, good, {"direction": 2}, ValueError, r"`direction`")
    add("continue_branch-direction-bool", cb, good, {"direction": True}, ValueError,
        r"`direction`")
    add("continue_branch-x0-complex", cb, good, {"x0": 0.1 + 0j}, TypeError, r"`x0`")
    add("continue_branch-params-nan", cb, good, {"params": DOYA._replace(w=NAN)}, ValueError,
        r"`params.w`")
    add("continue_branch-p-outside", cb, good, {"p_range": (-2.4, -2.0)}, ValueError,
        r"`p_range`")
    add("continue_branch-param-unknown", cb, good, {"param": "c"}, ValueError, r"`param`")
    add("continue_branch-param-None", cb, good, {"param": None}, ValueError, r"`param`")

    good = {"f": flow, "x0": 0.28, "params": DOYA, "param": "b", "param2": "w",
            "p2_range": (3.0, 8.0)}
    fc = jaxgrad.analysis.fold_curve
    add("fold_curve-param2-None", fc, good, {"param2": None}, ValueError, r"`param2`")
    add("fold_curve-param2-same", fc, good, {"param2": "b"}, ValueError, r"`param2`")
    add("fold_curve-param2-unknown", fc, good, {"param2": "v"}, ValueError, r"`param2`")
    add("fold_curve-param2-int", fc, good, {"param2": 1}, TypeError, r"`param2`")
    add("fold_curve-ds_min-gt-ds_max", fc, good, {"ds_min": 1.0}, ValueError, r"`ds_min`")
    add("fold_curve-num_steps-huge", fc, good, {"num_steps": 10**7}, ValueError,
        r"`num_steps`")
    add("fold_curve-p2_range", fc, good, {"p2_range": (6.0, 8.0)}, ValueError, r"`p2_range`")

    good = {"f": flow, "x0": 0.28, "params": DOYA, "param": "b", "param2": "w",
            "p2_range": (3.0, 8.0)}
    hc = jaxgrad.analysis.hopf_curve
    add("hopf_curve-x0-scalar", hc, good, {}, ValueError, r"`x0` must have at least 2")
    add("hopf_curve-x0-nan", hc, good, {"x0": NAN}, ValueError, r"`x0`")
    add("hopf_curve-params-nan", hc, good, {"params": DOYA._replace(w=NAN)}, ValueError,
        r"`params.w`")

    good = {"f": flow, "x_guess": 0.3, "params": DOYA, "param": "b"}
    lb = jaxgrad.locate_bifurcation
    add("locate_bifurcation-x_guess-nan", lb, good, {"x_guess": NAN}, ValueError,
        r"`x_guess`")
    add("locate_bifurcation-params-nan", lb, good, {"params": DOYA._replace(b=NAN)},
        ValueError, r"`params.b`")
    add("locate_bifurcation-flip-flow", lb, good, {"bifurcation": "flip"}, ValueError,
        r"`bifurcation`")
    add("locate_bifurcation-hopf", lb, good, {"bifurcation": "hopf"}, ValueError,
        r"`bifurcation`")

    # A branch point made by hand (the rows fail before anything is computed).
    bp = jaxgrad.analysis.BifurcationPoint("branch_point", jnp.asarray(0.3), jnp.asarray(-2.5),
                                           jnp.zeros(1), jnp.ones(1), jnp.asarray(True),
                                           jnp.asarray(0.0), NAN, NAN, "transcritical", jnp.eye(2))
    good = {"f": flow, "point": bp, "params": DOYA, "param": "b", "p_range": (-3.0, -2.0)}
    sb = jaxgrad.analysis.switch_branch
    add("switch_branch-point-fold", sb, good, {"point": bp._replace(kind="fold")}, ValueError,
        r"`point`.*'fold'")
    add("switch_branch-point-tuple", sb, good, {"point": (bp.x, bp.p)}, ValueError, r"`point`")
    add("switch_branch-point-unconverged", sb, good,
        {"point": bp._replace(converged=jnp.asarray(False))}, ValueError, r"`point`")
    add("switch_branch-point-x-nan", sb, good, {"point": bp._replace(x=jnp.asarray(NAN))},
        ValueError, r"`point.x`")
    add("switch_branch-point-tangents", sb, good,
        {"point": bp._replace(branch_tangents=jnp.eye(3))}, ValueError,
        r"`point.branch_tangents`")
    add("switch_branch-p_range", sb, good, {"p_range": (-2.4, -2.0)}, ValueError,
        r"`point.p`.*`p_range`")
    add("switch_branch-param-unknown", sb, good, {"param": "c"}, ValueError, r"`param`")
    add("switch_branch-ds", sb, good, {"ds": NAN}, ValueError, r"`ds`")

    good = {"f": flow, "x0": jnp.array([0.3]), "values": jnp.array([-2.5]), "params": DOYA,
            "param": "b", "kind": "flow"}
    od = jaxgrad.analysis.orbit_diagram
    add("orbit_diagram-values-empty", od, good, {"values": jnp.zeros(0)}, ValueError,
        r"`values`")
    add("orbit_diagram-x0-complex", od, good, {"x0": jnp.array([0.3 + 0j])}, TypeError,
        r"`x0`")
    add("orbit_diagram-x0-scalar", od, good, {"x0": 0.3}, ValueError, r"`x0`")
    add("orbit_diagram-params-nan", od, good, {"params": DOYA._replace(w=NAN)}, ValueError,
        r"`params.w`")
    add("orbit_diagram-transient", od, good, {"transient": -1}, ValueError, r"`transient`")
    add("orbit_diagram-keep", od, good, {"keep": 0}, ValueError, r"`keep`")
    add("orbit_diagram-x0-wrong-state", od, {**good, "f": duffing, "params": None,
                                             "param": None},
        {"x0": jnp.zeros(3)}, ValueError, r"`x0`")

    good = {"f": flow, "x0": 0.0, "values": jnp.array([-3.0, -2.0]), "params": DOYA,
            "param": "b", "kind": "flow"}
    hs = jaxgrad.analysis.hysteresis_sweep
    add("hysteresis_sweep-values-decreasing", hs, good, {"values": jnp.array([-2.0, -3.0])},
        ValueError, r"`values`.*increasing")
    add("hysteresis_sweep-dt", hs, good, {"dt": INF}, ValueError, r"`dt`")

    good = {"f": flow, "x0": jnp.zeros(3), "values": jnp.array([-2.5]), "params": DOYA,
            "param": "b"}
    bs = jaxgrad.analysis.basins
    add("basins-dt-0", bs, good, {"dt": 0.0}, ValueError, r"`dt`")
    add("basins-x0-None", bs, good, {"x0": None}, TypeError, r"`x0`")
    add("basins-tol-nan", bs, good, {"tol": NAN}, ValueError, r"`tol`")
    add("basins-max_attractors", bs, good, {"max_attractors": 0}, ValueError,
        r"`max_attractors`")
    add("basins-params-nan", bs, good, {"params": DOYA._replace(w_in=NAN)}, ValueError,
        r"`params.w_in`")

    good = {"f": flow, "x0": jnp.array([0.1]), "values": jnp.array([-2.5]), "params": DOYA,
            "param": "b"}
    fs = jaxgrad.analysis.final_state_sensitivities
    add("final_state_sensitivities-x0-inf", fs, good, {"x0": jnp.array([INF])}, ValueError,
        r"`x0`")
    add("final_state_sensitivities-param-None", fs, good, {"param": None}, ValueError,
        r"`param`")
    add("final_state_sensitivities-params-nan", fs, {**good, "values": None},
        {"params": DOYA._replace(b=NAN)}, ValueError, r"`params.b`")
    add("final_state_sensitivities-num_steps", fs, good, {"num_steps": 0}, ValueError,
        r"`num_steps`")
    add("final_state_sensitivities-values-int-matrix", fs, good,
        {"values": jnp.zeros((1, 1), int)}, ValueError, r"`values`")

    # ------------------------------------------------------------------ analyzers and training
    # (one cheap row or a few per function; the analyzers' own test files go further)
    for fn in (jaxgrad.models.get_activation, jaxgrad.models.activation_derivative,
               jaxgrad.models.get_initializer):
        add(f"{fn.__name__}-unknown", fn, {}, {"name": "swish!"}, ValueError, r"swish!")
        add(f"{fn.__name__}-None", fn, {}, {"name": None}, (TypeError, ValueError), r"None")
    sp = {"sigma_w2": 1.5, "sigma_b2": 0.05}
    for fn, good in ((jaxgrad.analysis.q_map, {"q": 1.0, **sp}),
                     (jaxgrad.analysis.c_map, {"c": 0.5, **sp}),
                     (jaxgrad.chi_1, sp), (jaxgrad.analysis.q_star, sp),
                     (jaxgrad.analysis.depth_scales, sp),
                     (jaxgrad.analysis.critical_sigma_w2, {"sigma_b2": 0.05}),
                     (jaxgrad.analysis.mean_field_trajectory,
                      {"q0": 1.0, "c0": 0.5, **sp, "depth": 3})):
        name = fn.__name__
        add(f"{name}-sigma_b2-nan", fn, good, {"sigma_b2": NAN}, ValueError, r"`sigma_b2`")
        add(f"{name}-sigma_b2-complex", fn, good, {"sigma_b2": 0.05 + 0j}, TypeError,
            r"`sigma_b2`")
        add(f"{name}-activation", fn, good, {"activation": "swish!"}, ValueError,
            r"`activation`|swish!")
        add(f"{name}-num_points-0", fn, good, {"num_points": 0}, ValueError, r"`num_points`")
        if "sigma_w2" in good:
            add(f"{name}-sigma_w2-neg", fn, good, {"sigma_w2": -1.0}, ValueError,
                r"`sigma_w2`")
            add(f"{name}-sigma_w2-None", fn, good, {"sigma_w2": None}, TypeError,
                r"`sigma_w2`")
    add("q_map-q-neg", jaxgrad.analysis.q_map, {"q": 1.0, **sp}, {"q": -1.0}, ValueError, r"`q`")
    add("c_map-c-out-of-range", jaxgrad.analysis.c_map, {"c": 0.5, **sp}, {"c": 2.0}, ValueError,
        r"`c`")
    add("mean_field_trajectory-depth-neg", jaxgrad.analysis.mean_field_trajectory,
        {"q0": 1.0, "c0": 0.5, **sp, "depth": 3}, {"depth": -1}, ValueError, r"`depth`")
    add("gaussian_expectation-f", jaxgrad.analysis.gaussian_expectation, {"f": jnp.tanh},
        {"f": "tanh"}, TypeError, r"`f`")
    add("gaussian_expectation-num_points", jaxgrad.analysis.gaussian_expectation, {"f": jnp.tanh},
        {"num_points": -3}, ValueError, r"`num_points`")
    good = {**sp, "key": KEY, "width": 4, "depth": 2}
    rms = jaxgrad.analysis.random_mlp_signal
    for kname in ("int", "None", "str"):
        add(f"random_mlp_signal-key-{kname}", rms, good, {"key": bad_keys[kname]}, TypeError,
            r"`key`")
    add("random_mlp_signal-width-0", rms, good, {"width": 0}, ValueError, r"`width`")
    add("random_mlp_signal-depth-float", rms, good, {"depth": 2.0}, TypeError, r"`depth`")
    add("random_mlp_signal-c0", rms, good, {"c0": 1.5}, ValueError, r"`c0`")
    rmf = jaxgrad.analysis.rate_mean_field  # g <= 1 is the closed form: the good call is instant
    add("rate_mean_field-g-nan", rmf, {"g": 0.5}, {"g": NAN}, ValueError, r"`g`")
    add("rate_mean_field-g-zero", rmf, {"g": 0.5}, {"g": 0.0}, ValueError, r"`g`")
    add("rate_mean_field-g-str", rmf, {"g": 0.5}, {"g": "2"}, TypeError, r"`g`")
    add("rate_mean_field-num_tau", rmf, {"g": 0.5}, {"num_tau": 1}, ValueError, r"`num_tau`")

    for fn in (jaxgrad.analysis.entropy_rate, jaxgrad.analysis.kaplan_yorke_dimension):
        good = {"exponents": jnp.array([0.1, -0.5])}
        name = fn.__name__
        add(f"{name}-nan", fn, good, {"exponents": jnp.array([NAN, -0.5])}, ValueError,
            r"`exponents`")
        add(f"{name}-complex", fn, good, {"exponents": jnp.zeros(2, jnp.complex64)},
            TypeError, r"`exponents`")
        add(f"{name}-None", fn, good, {"exponents": None}, TypeError, r"`exponents`")
    add("kaplan_yorke_dimension-empty", jaxgrad.analysis.kaplan_yorke_dimension,
        {"exponents": jnp.zeros(2)}, {"exponents": jnp.zeros(0)}, ValueError, r"`exponents`")
    good = {"log_norms": jnp.arange(5.0)}
    add("fit_log_rate-start", jaxgrad.fit_log_rate, good, {"start": -1}, ValueError,
        r"`start`")
    add("fit_log_rate-short", jaxgrad.fit_log_rate, good, {"log_norms": jnp.zeros(1)},
        ValueError, r"`log_norms`")
    add("fit_log_rate-complex", jaxgrad.fit_log_rate, good,
        {"log_norms": jnp.zeros(5, jnp.complex64)}, TypeError, r"`log_norms`")
    for fn in (jaxgrad.analysis.spectral_norm, jaxgrad.spectral_radius):
        good = {"M": jnp.eye(3)}
        name = fn.__name__
        add(f"{name}-M-nan", fn, good, {"M": jnp.full((3, 3), NAN)}, ValueError, r"`M`")
        add(f"{name}-M-1d", fn, good, {"M": jnp.zeros(3)}, ValueError, r"`M`")
        add(f"{name}-M-empty", fn, good, {"M": jnp.zeros((0, 0))}, ValueError, r"`M`")
        add(f"{name}-M-None", fn, good, {"M": None}, TypeError, r"`M`")
        # a linear operator (a dense M ignores `vector`, `tol` and `max_iterations`)
        good = {"M": lambda v: 2.0 * v, "vector": jnp.ones(3)}
        add(f"{name}-vector-None", fn, good, {"vector": None}, (TypeError, ValueError),
            r"`vector`")
        add(f"{name}-vector-complex", fn, good, {"vector": jnp.ones(3, jnp.complex64)},
            TypeError, r"`vector`")
        add(f"{name}-tol", fn, good, {"tol": -1.0}, ValueError, r"`tol`")
        add(f"{name}-max_iterations", fn, good, {"max_iterations": 0}, ValueError,
            r"`max_iterations`")
    add("spectral_radius-M-not-square", jaxgrad.spectral_radius, {"M": jnp.eye(3)},
        {"M": jnp.zeros((3, 2))}, ValueError, r"`M`")
    add("scaled_norm-complex", jaxgrad.analysis.scaled_norm, {"x": jnp.ones(3)},
        {"x": jnp.ones(3, jnp.complex64)}, TypeError, r"`x`")
    add("scaled_norm-None", jaxgrad.analysis.scaled_norm, {"x": jnp.ones(3)}, {"x": None},
        TypeError,
        r"`x`")
    add("scaled_norm-axis", jaxgrad.analysis.scaled_norm, {"x": jnp.ones(3)}, {"axis": 3},
        ValueError,
        r"axis 3")
    add("tree_scaled_norm-complex", jaxgrad.analysis.tree_scaled_norm, {"tree": {"a": jnp.ones(3)}},
        {"tree": {"a": jnp.ones(3, jnp.complex64)}}, TypeError, r"`tree")

    good = {"step": jaxgrad.pascanu_step, "x0": jnp.zeros(4), "inputs": jnp.zeros((3, 2)),
            "params": RNN}
    ana = {
        "jacobian_product_norms": (jaxgrad.jacobian_product_norms, good),
        "lyapunov_spectrum": (jaxgrad.lyapunov_spectrum, good),
        "flossing_loss": (jaxgrad.analysis.flossing_loss, good),
        "recurrent_gradient_flow": (jaxgrad.analysis.recurrent_gradient_flow,
                                    {**good, "loss_fn": lambda h: jnp.sum(h)}),
        "pascanu_omega": (jaxgrad.train.pascanu_omega, {**good, "loss_fn": lambda h: jnp.sum(h)}),
        "pascanu_omega_terms": (jaxgrad.train.pascanu_omega_terms,
                                {**good, "loss_fn": lambda h: jnp.sum(h)}),
        "floss": (jaxgrad.analysis.floss, {**good, "optimizer": optax.sgd(0.1), "num_updates": 1}),
    }
    for name, (fn, g) in ana.items():
        add(f"{name}-x0-size", fn, g, {"x0": jnp.zeros(3)}, ValueError, r"`x0`")
        add(f"{name}-x0-complex", fn, g, {"x0": jnp.zeros(4, jnp.complex64)}, TypeError,
            r"`x0`")
        add(f"{name}-x0-nan", fn, g, {"x0": jnp.full(4, NAN)}, ValueError, r"`x0`")
        add(f"{name}-inputs-nan", fn, g, {"inputs": jnp.full((3, 2), NAN)}, ValueError,
            r"`inputs`")
        add(f"{name}-inputs-width", fn, g, {"inputs": jnp.zeros((3, 5))}, ValueError,
            r"`inputs`|`u`")
        add(f"{name}-step", fn, g, {"step": "pascanu"}, TypeError, r"`step`")
        add(f"{name}-params-nan", fn, g, {"params": RNN._replace(W_rec=jnp.full((4, 4), NAN))},
            ValueError, r"`params.W_rec`")
    add("pascanu_omega-reduction", jaxgrad.train.pascanu_omega, ana["pascanu_omega"][1],
        {"reduction": "max"}, ValueError, r"`reduction`")
    add("pascanu_omega-min_grad_norm", jaxgrad.train.pascanu_omega, ana["pascanu_omega"][1],
        {"min_grad_norm": -1.0}, ValueError, r"`min_grad_norm`")
    jpn = jaxgrad.jacobian_product_norms
    add("jacobian_product_norms-ord", jpn, good, {"ord": "nuclear"}, ValueError, r"`ord`")
    add("jacobian_product_norms-spectral_method", jpn, good, {"spectral_method": "qr"},
        ValueError, r"`spectral_method`")
    add("jacobian_product_norms-num_steps", jpn, {**good, "inputs": None},
        {"num_steps": -1}, ValueError, r"`num_steps`")
    ls = jaxgrad.lyapunov_spectrum
    for kname in ("int", "str", "key_batch"):
        add(f"lyapunov_spectrum-key-{kname}", ls, good, {"key": bad_keys[kname]}, TypeError,
            r"`key`")
    add("lyapunov_spectrum-num_exponents", ls, good, {"num_exponents": 5}, ValueError,
        r"`num_exponents`")
    add("lyapunov_spectrum-qr_interval", ls, good, {"qr_interval": 0}, ValueError,
        r"`qr_interval`")
    add("lyapunov_spectrum-transient", ls, good, {"transient": -1}, ValueError,
        r"`transient`")
    add("lyapunov_spectrum-qr_method", ls, good, {"qr_method": "gram"}, ValueError,
        r"`qr_method`")
    add("lyapunov_spectrum-dt", ls, good, {"dt": 0.0}, ValueError, r"`dt`")
    add("floss-num_updates", jaxgrad.analysis.floss, ana["floss"][1], {"num_updates": 0},
        ValueError,
        r"`num_updates`")
    add("floss-optimizer", jaxgrad.analysis.floss, ana["floss"][1], {"optimizer": "adam"},
        TypeError,
        r"`optimizer`")
    fr = jaxgrad.train.flossing_regularizer
    g = {"step": jaxgrad.pascanu_step, "x0": jnp.zeros(4), "inputs": jnp.zeros((3, 2))}
    add("flossing_regularizer-step", fr, g, {"step": None}, TypeError, r"`step`")
    add("flossing_regularizer-num_exponents", fr, g, {"num_exponents": 0}, ValueError,
        r"`num_exponents`")
    add("flossing_regularizer-x0-complex", fr, g, {"x0": jnp.zeros(4, jnp.complex64)},
        TypeError, r"`x0`")
    add("flossing_regularizer-dt", fr, g, {"dt": NAN}, ValueError, r"`dt`")
    add("flossing_regularizer-step_params", fr, g, {"step_params": 3}, TypeError,
        r"`step_params`")
    add("pascanu_bound_log_norms-num_lags", jaxgrad.models.pascanu_bound_log_norms,
        {"params": RNN, "num_lags": 3}, {"num_lags": -1}, ValueError, r"`num_lags`")
    add("pascanu_bound_log_norms-activation", jaxgrad.models.pascanu_bound_log_norms,
        {"params": RNN, "num_lags": 3}, {"activation": "swish!"}, ValueError, r"`activation`")
    add("pascanu_bound_log_norms-params", jaxgrad.models.pascanu_bound_log_norms,
        {"params": RNN, "num_lags": 3}, {"params": LSTM}, TypeError, r"`params`")
    vpp = jaxgrad.models.validate_pascanu_params
    add("validate_pascanu_params-W_in", vpp, {},
        {"params": RNN._replace(W_in=jnp.zeros((3, 2)))}, ValueError, r"`W_in`")
    add("validate_pascanu_params-complex", vpp, {},
        {"params": RNN._replace(W_rec=jnp.zeros((4, 4), jnp.complex64))}, TypeError,
        r"`W_rec`")
    add("validate_pascanu_params-None", vpp, {}, {"params": None}, TypeError, r"`params`")

    good = {"params": MLP, "x": jnp.zeros((2, 3)), "y": jnp.array([0, 1]), "config": CFG}
    mgf = jaxgrad.mlp_gradient_flow
    add("mlp_gradient_flow-x-width", mgf, good, {"x": jnp.zeros((2, 5))}, ValueError, r"`x`")
    add("mlp_gradient_flow-x-complex", mgf, good, {"x": jnp.zeros((2, 3), jnp.complex64)},
        TypeError, r"`x`")
    add("mlp_gradient_flow-y-size", mgf, good, {"y": jnp.array([0, 1, 1])}, ValueError, r"`y`")
    add("mlp_gradient_flow-loss", mgf, good, {"loss": "hinge"}, ValueError, r"`loss`")
    add("mlp_gradient_flow-config", mgf, good, {"config": None}, TypeError, r"`config`")
    add("mlp_layer_monitor-grads-None", jaxgrad.train.mlp_layer_monitor,
        {"params": MLP, "batch": None, "grads": MLP}, {"grads": None}, TypeError, r"`grads`")

    # ------------------------------------------------------------------ landscape
    params = {"w": jnp.ones(3), "b": jnp.zeros(2)}
    for kname in ("int", "None", "str"):
        add(f"random_direction-key-{kname}", jaxgrad.landscape.random_direction,
            {"params": params, "key": KEY}, {"key": bad_keys[kname]}, TypeError, r"`key`")
        add(f"filter_normalized_direction-key-{kname}",
            jaxgrad.landscape.filter_normalized_direction,
            {"params": params, "key": KEY}, {"key": bad_keys[kname]}, TypeError, r"`key`")
    add("random_direction-params-complex", jaxgrad.landscape.random_direction,
        {"params": params, "key": KEY}, {"params": {"w": jnp.ones(3, jnp.complex64)}},
        TypeError, r"`params")
    add("random_direction-params-empty", jaxgrad.landscape.random_direction,
        {"params": params, "key": KEY}, {"params": {}}, ValueError, r"`params`")
    add("filter_normalized_direction-filter_axes", jaxgrad.landscape.filter_normalized_direction,
        {"params": params, "key": KEY}, {"filter_axes": 3}, TypeError, r"`filter_axes`")
    add("line_direction-structure", jaxgrad.landscape.line_direction,
        {"start": params, "end": params},
        {"end": {"w": jnp.ones(3)}}, ValueError, r"`end`")
    add("line_direction-shape", jaxgrad.landscape.line_direction, {"start": params, "end": params},
        {"end": {"w": jnp.ones(4), "b": jnp.zeros(2)}}, ValueError, r"`end`")
    add("line_direction-nan", jaxgrad.landscape.line_direction, {"start": params, "end": params},
        {"end": {"w": jnp.full(3, NAN), "b": jnp.zeros(2)}}, ValueError, r"`end`")
    sl = jaxgrad.scan_landscape
    good = {"loss_fn": lambda p: jnp.sum(p["w"] ** 2), "params": params,
            "axes": {"a": (params, jnp.linspace(-1.0, 1.0, 3))}, "progress": False}
    add("scan_landscape-loss_fn", sl, good, {"loss_fn": None}, TypeError, r"`loss_fn`")
    add("scan_landscape-gradient", sl, good, {"gradient": "half"}, ValueError, r"`gradient`")
    add("scan_landscape-method", sl, good, {"method": "magic"}, ValueError, r"`method`")
    add("scan_landscape-chunk_size", sl, good, {"chunk_size": 0}, ValueError, r"`chunk_size`")
    add("scan_landscape-lanczos_iterations", sl, {**good, "quantities": ("sharpness",)},
        {"lanczos_iterations": 0}, ValueError, r"`lanczos_iterations`")
    add("scan_landscape-axes-empty", sl, good, {"axes": {}}, ValueError, r"`axes`")
    add("scan_landscape-axes-nan", sl, good,
        {"axes": {"a": (params, jnp.array([0.0, NAN]))}}, ValueError, r"`axes")
    add("find_cliffs-scan", jaxgrad.find_cliffs, {}, {"scan": None}, TypeError, r"`scan`")

    # ------------------------------------------------------------------ training
    add("integrator_step-method", jaxgrad.systems.integrator_step,
        {"vector_field": jaxgrad.models.rate_vector_field, "x": jnp.zeros(4), "u": jnp.zeros(2),
         "params": RATE, "dt": 0.1}, {"method": "rk5"}, ValueError, r"`method`")
    add("integrator_step-dt", jaxgrad.systems.integrator_step,
        {"vector_field": jaxgrad.models.rate_vector_field, "x": jnp.zeros(4), "u": jnp.zeros(2),
         "params": RATE, "dt": 0.1}, {"dt": NAN}, ValueError, r"`dt`")
    field = {"field": jaxgrad.vector_field(jaxgrad.models.rate_vector_field), "dt": 0.1}
    add("discretize-field", jaxgrad.discretize, field, {"field": jaxgrad.models.rate_vector_field},
        TypeError, r"`field` must be a VectorField")
    add("discretize-dt", jaxgrad.discretize, field, {"dt": NAN}, ValueError, r"`dt`")
    add("discretize-method", jaxgrad.discretize, field, {"method": "rk5"}, ValueError,
        r"`method`")
    add("vector_field-f", jaxgrad.vector_field, {"f": jnp.tanh}, {"f": None}, TypeError, r"`f`")
    add("autonomous-f", jaxgrad.autonomous, {"f": jnp.tanh}, {"f": 1.0}, TypeError, r"`f`")
    add("unroll-step", jaxgrad.unroll, {"step": lambda x, u: x, "x0": jnp.zeros(2),
                                        "inputs": jnp.zeros((3, 1))},
        {"step": None}, TypeError, r"`step`")
    add("unroll-inputs-scalar", jaxgrad.unroll, {"step": lambda x, u: x, "x0": jnp.zeros(2),
                                                 "inputs": jnp.zeros((3, 1))},
        {"inputs": 1.0}, ValueError, r"`inputs`")
    add("sampled_batches-sample", jaxgrad.train.sampled_batches, {}, {"sample": None}, TypeError,
        r"`sample`")
    add("fixed_batches-scalar", jaxgrad.train.fixed_batches, {}, {"batches": jnp.zeros(())},
        ValueError, r"`batches`")
    add("fixed_batches-empty", jaxgrad.train.fixed_batches, {}, {"batches": jnp.zeros((0, 2))},
        ValueError, r"`batches`")
    data = (jnp.zeros((4, 2)), jnp.zeros(4))
    add("shuffled_batches-batch_size-0", jaxgrad.train.shuffled_batches,
        {"dataset": data, "batch_size": 2}, {"batch_size": 0}, ValueError, r"`batch_size`")
    add("shuffled_batches-batch_size-big", jaxgrad.train.shuffled_batches,
        {"dataset": data, "batch_size": 2}, {"batch_size": 5}, ValueError, r"`batch_size`")
    add("shuffled_batches-ragged", jaxgrad.train.shuffled_batches,
        {"dataset": data, "batch_size": 2}, {"dataset": (jnp.zeros((4, 2)), jnp.zeros(3))},
        ValueError, r"`dataset`")
    opt = optax.sgd(0.1)
    add("with_clipping-max_norm", jaxgrad.train.with_clipping, {"optimizer": opt},
        {"max_norm": -1.0}, ValueError, r"`max_norm`")
    add("with_clipping-max_value", jaxgrad.train.with_clipping, {"optimizer": opt},
        {"max_value": NAN}, ValueError, r"`max_value`")
    add("with_clipping-optimizer", jaxgrad.train.with_clipping, {"optimizer": opt},
        {"optimizer": "sgd"}, TypeError, r"`optimizer`")
    add("vmap_optimizer-optimizer", jaxgrad.train.vmap_optimizer, {}, {"optimizer": None},
        TypeError,
        r"`optimizer`")
    tr = jaxgrad.fit
    good = {"loss_fn": lambda p, b: jnp.sum(p["w"] ** 2), "params": {"w": jnp.ones(2)},
            "optimizer": opt, "batches": jaxgrad.train.fixed_batches(jnp.zeros((2, 1))),
            "num_steps": 2, "key": KEY}
    for kname in ("int", "None", "str"):
        add(f"train-key-{kname}", tr, good, {"key": bad_keys[kname]}, TypeError, r"`key`")
    add("train-num_steps", tr, good, {"num_steps": -1}, ValueError, r"`num_steps`")
    add("train-steps_per_scan", tr, good, {"steps_per_scan": 0}, ValueError,
        r"`steps_per_scan`")
    add("train-regularizer_weight", tr, good, {"regularizer_weight": NAN}, ValueError,
        r"`regularizer_weight`")
    add("train-optimizer", tr, good, {"optimizer": "sgd"}, TypeError, r"`optimizer`")
    add("train-loss_fn", tr, good, {"loss_fn": None}, TypeError, r"`loss_fn`")
    ts = jaxgrad.train_steps
    good_ts = {"loss_fn": good["loss_fn"], "optimizer": opt,
               "state": jaxgrad.init_train_state({"w": jnp.ones(2)}, opt),
               "batches": good["batches"], "num_steps": 2}
    add("train_steps-num_steps", ts, good_ts, {"num_steps": 0}, ValueError, r"`num_steps`")
    add("train_steps-state", ts, good_ts, {"state": {"w": jnp.ones(2)}}, TypeError, r"`state`")
    add("train_steps-optimizer", ts, good_ts, {"optimizer": "sgd"}, TypeError, r"`optimizer`")
    add("train_steps-batches", ts, good_ts, {"batches": jnp.zeros((2, 1))}, TypeError,
        r"`batches`")
    add("train_steps-key-missing", ts, good_ts,
        {"batches": jaxgrad.train.sampled_batches(lambda k, t: jnp.zeros(1))}, TypeError, r"`key`")
    add("train_steps-key-int", ts, good_ts, {"key": bad_keys["int"]}, TypeError, r"`key`")
    add("init_train_state-optimizer", jaxgrad.init_train_state,
        {"params": {"w": jnp.ones(2)}, "optimizer": opt}, {"optimizer": "adam"}, TypeError,
        r"`optimizer`")
    model = jaxgrad.train.SequenceModel("rnn_tanh", 4, 2, 1)
    add("sequence_loss-task", jaxgrad.train.sequence_loss, {"model": model, "task": TASK},
        {"task": "addition"}, TypeError, r"`task`")
    add("sequence_loss-model", jaxgrad.train.sequence_loss, {"model": model, "task": TASK},
        {"model": None}, TypeError, r"`model`")
    add("sequence_omega-reduction", jaxgrad.train.sequence_omega, {"model": model, "task": TASK},
        {"reduction": "max"}, ValueError, r"`reduction`")
    so = jaxgrad.train.sequence_outputs
    good = {"model": model, "params": model.init(KEY), "inputs": jnp.zeros((2, 5, 2))}
    add("sequence_outputs-inputs-width", so, good, {"inputs": jnp.zeros((2, 5, 3))},
        ValueError, r"`inputs`")
    add("sequence_outputs-inputs-complex", so, good,
        {"inputs": jnp.zeros((2, 5, 2), jnp.complex64)}, TypeError, r"`inputs`")
    add("sequence_outputs-inputs-rank", so, good, {"inputs": jnp.zeros((5, 2))}, ValueError,
        r"`inputs`")
    sc = tasks.success
    good = {"task": TASK, "predict": lambda x: x[:, -1, :1], "key": KEY, "length": 10,
            "num_sequences": 2, "batch_size": 2}
    for kname in ("int", "None", "str"):
        add(f"success-key-{kname}", sc, good, {"key": bad_keys[kname]}, TypeError, r"`key`")
    add("success-num_sequences", sc, good, {"num_sequences": 0}, ValueError,
        r"`num_sequences`")
    add("success-threshold", sc, good, {"threshold": NAN}, ValueError, r"`threshold`")
    add("success-predict", sc, good, {"predict": None}, TypeError, r"`predict`")
    add("autonomous_inputs-num_steps", jaxgrad.models.autonomous_inputs, {"num_steps": 3},
        {"num_steps": -1}, ValueError, r"`num_steps`")
    add("autonomous_inputs-num_steps-float", jaxgrad.models.autonomous_inputs, {"num_steps": 3},
        {"num_steps": 3.0}, TypeError, r"`num_steps`")
    for fn in (jaxgrad.models.doya_fixed_point_sensitivity, jaxgrad.models.doya_stable_branch_b):
        name = fn.__name__
        add(f"{name}-x-complex", fn, {"x": 0.3}, {"x": 0.3 + 0j}, TypeError, r"`x`")
        add(f"{name}-x-None", fn, {"x": 0.3}, {"x": None}, TypeError, r"`x`")
    for fn in (jaxgrad.doya_step, jaxgrad.models.doya_vector_field):
        name = fn.__name__
        good = {"x": 0.1, "u": 0.0, "params": DOYA}
        add(f"{name}-x-complex", fn, good, {"x": 0.1 + 0j}, TypeError, r"`x`")
        add(f"{name}-params-tuple", fn, good, {"params": (5.0, -2.5)}, TypeError, r"`params`")
        add(f"{name}-activation", fn, good, {"activation": "swish!"}, ValueError,
            r"`activation`")
    add("doya_step-eps", jaxgrad.doya_step, {"x": 0.1, "u": 0.0, "params": DOYA},
        {"eps": -0.1}, ValueError, r"`eps`")
    add("one_unit_step-activation", jaxgrad.models.one_unit_step,
        {"x": 0.1, "u": 0.0, "params": jaxgrad.models.OneUnitParams(1.0, 0.0)},
        {"activation": "swish!"}, ValueError, r"`activation`")
    add("one_unit_step-params-None", jaxgrad.models.one_unit_step,
        {"x": 0.1, "u": 0.0, "params": jaxgrad.models.OneUnitParams(1.0, 0.0)},
        {"params": None}, TypeError, r"`params`")
    add("state_grad_monitor-task", jaxgrad.train.state_grad_monitor, {"model": model, "task": TASK},
        {"task": None}, TypeError, r"`task`")
    add("sequence_state_grad_norms-task", jaxgrad.train.sequence_state_grad_norms,
        {"model": model, "task": TASK, "params": model.init(KEY), "batch": None},
        {"task": "addition"}, TypeError, r"`task`")
    state = jaxgrad.train.TrainState({"w": jnp.ones(2)}, opt.init({"w": jnp.ones(2)}),
                                     jnp.zeros((), jnp.int32))
    ts = jaxgrad.train.train_step
    good = {"loss_fn": lambda p, b: jnp.sum(p["w"] ** 2), "optimizer": opt, "state": state,
            "batch": None}
    add("train_step-state", ts, good, {"state": ({"w": jnp.ones(2)}, None)}, TypeError,
        r"`state`")
    add("train_step-loss_fn", ts, good, {"loss_fn": None}, TypeError, r"`loss_fn`")
    add("train_step-optimizer", ts, good, {"optimizer": "sgd"}, TypeError, r"`optimizer`")
    add("train_step-regularizer_weight", ts, good, {"regularizer_weight": -1.0}, ValueError,
        r"`regularizer_weight`")
    return rows


ROWS = _rows()


def _params(rows):
    return [pytest.param(name, marks=pytest.mark.xfail(strict=row.xfail[0],
                                                       reason=row.xfail[1]))
            if row.xfail else name for name, row in rows.items()]


@pytest.mark.parametrize("name", _params(ROWS))
def test_bad_input_is_refused_by_name(name, tmp_path):
    fn, kwargs, exc, pattern, _ = ROWS[name]
    kwargs = {k: _mnist_dir(tmp_path, v.broken) if isinstance(v, Files) else v
              for k, v in kwargs.items()}
    with pytest.raises(exc) as info:
        fn(**kwargs)
    assert re.search(pattern, str(info.value)), (
        f"{name}: {type(info.value).__name__} does not name the argument "
        f"(expected /{pattern}/): {info.value}"
    )


# The good arguments the table starts from are accepted (so each row's error comes from
# its one bad argument). Only the cheap eager functions run here.
GOOD_CALLS = {
    "pascanu_step": lambda: jaxgrad.pascanu_step(jnp.zeros(4), jnp.zeros(2), RNN),
    "lstm_step": lambda: jaxgrad.lstm_step(jaxgrad.models.lstm_zero_state(4), jnp.zeros(2), LSTM),
    "lstm_step-tuple": lambda: jaxgrad.lstm_step([jnp.zeros(4), jnp.zeros(4)], jnp.zeros(2),
                                                 LSTM),
    "gru_step": lambda: jaxgrad.gru_step(jnp.zeros(4), jnp.zeros(2), GRU),
    "rate_step": lambda: jaxgrad.rate_step(jnp.zeros(4), jnp.zeros(2), RATE),
    "rate_step-autonomous": lambda: jaxgrad.rate_step(
        jnp.zeros(4), jnp.zeros(0), jaxgrad.init_rate(KEY, 4)),
    "mlp_apply": lambda: jaxgrad.mlp_apply(MLP, jnp.zeros((2, 3)), CFG),
    # int and bool inputs are accepted and converted to the default float dtype
    "mlp_apply-int": lambda: jaxgrad.mlp_apply(MLP, jnp.zeros((2, 3), jnp.int32), CFG),
    "mlp_apply-bool": lambda: jaxgrad.mlp_apply(MLP, jnp.ones((2, 3), bool), CFG),
    "pascanu_step-int": lambda: jaxgrad.pascanu_step(jnp.zeros(4, jnp.int32), jnp.zeros(2),
                                                     RNN),
    "legacy-key": lambda: jaxgrad.init_pascanu(jax.random.PRNGKey(0), 4, 2),
    "Task.sample": lambda: TASK.sample(KEY, 2, 10),
    "Task.sample-legacy-key": lambda: TASK.sample(jax.random.PRNGKey(1), 2, 10),
    "init_rate-vmap-keys": lambda: jax.vmap(lambda k: jaxgrad.init_rate(k, 3))(
        jax.random.split(KEY, 2)),
}


@pytest.mark.parametrize("name", list(GOOD_CALLS))
def test_good_input_is_accepted(name):
    out = GOOD_CALLS[name]()
    assert all(np.all(np.isfinite(np.asarray(leaf)))
               for leaf in jax.tree_util.tree_leaves(out)
               if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating))


def _covered() -> set[str]:
    names = set()
    for row in ROWS.values():
        fn = row.fn
        names.add(getattr(fn, "__name__", type(fn).__name__))
    return names


def test_public_functions_covered_by_the_table(capsys):
    """Record which public functions of ``jaxgrad``'s subpackages the table covers (printed,
    not asserted: the analyzers without a row here are covered by their own test files)."""
    public = {
        name for package in jaxgrad._SUBPACKAGES for name in getattr(jaxgrad, package).__all__
        if inspect.isfunction(getattr(getattr(jaxgrad, package), name))
    }
    covered = _covered()
    required = {
        "init_mlp", "init_pascanu", "init_lstm", "init_gru", "init_rate", "pascanu_step",
        "lstm_step", "gru_step", "rate_step", "mlp_apply", "MLPConfig", "sample", "get_task",
        "load_mnist", "fixed_points", "fixed_points_1d", "continue_branch", "fold_curve",
        "locate_bifurcation", "switch_branch", "orbit_diagram", "hysteresis_sweep", "basins",
        "final_state_sensitivities",
    }
    assert required <= covered, required - covered
    uncovered = sorted(public - covered)
    with capsys.disabled():
        print(f"\nbad-input table covers {len(public & covered)} of {len(public)} public "
              f"functions; not in this table: {', '.join(uncovered)}")
