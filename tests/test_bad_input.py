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
    return jaxgrad.doya_vector_field(x, 0.0, p)


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


def _rows() -> dict[str, Row]:
    rows: dict[str, Row] = {}

    def add(name, fn, good, bad, exc, pattern):
        assert name not in rows, name
        rows[name] = Row(fn, {**good, **bad}, exc, pattern)

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
        "load_digits": (jaxgrad.load_digits, {"key": KEY}),
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
    add("pascanu_unroll-x0", jaxgrad.pascanu_unroll,
        {"params": RNN, "x0": jnp.zeros(4), "inputs": jnp.zeros((3, 2))},
        {"x0": jnp.zeros(5)}, ValueError, r"`x0`")
    add("pascanu_unroll-inputs-nan", jaxgrad.pascanu_unroll,
        {"params": RNN, "x0": jnp.zeros(4), "inputs": jnp.zeros((3, 2))},
        {"params": RNN._replace(W_rec=jnp.full((4, 4), NAN))}, ValueError, r"`W_rec`")

    good = {"state": jaxgrad.lstm_zero_state(4), "u": jnp.zeros(2), "params": LSTM}
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
    add("lstm_zero_state-0", jaxgrad.lstm_zero_state, {"num_units": 4}, {"num_units": 0},
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
    for step in (jaxgrad.rate_step, jaxgrad.rate_vector_field, jaxgrad.rate_flow_step):
        name = step.__name__
        add(f"{name}-h-size", step, good, {"h": jnp.zeros(3)}, ValueError, r"`h`")
        add(f"{name}-u-size", step, good, {"u": jnp.zeros(3)}, ValueError, r"`u`")
    add("rate_step-W_in-rows", jaxgrad.rate_step, good,
        {"params": RATE._replace(W_in=jnp.zeros((3, 2)))}, ValueError, r"`params.W_in`")
    add("rate_step-params-None", jaxgrad.rate_step, good, {"params": None}, TypeError,
        r"`params`")
    add("rate_flow_step-dt", jaxgrad.rate_flow_step, {**good, "dt": 0.1}, {"dt": -0.1},
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
    add("doya_integrate-dt", jaxgrad.doya_integrate,
        {"params": DOYA, "x0": 0.1, "inputs": jnp.zeros(3), "dt": 0.1}, {"dt": 0.0},
        ValueError, r"`dt`")
    add("doya_integrate-inputs-empty", jaxgrad.doya_integrate,
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
        add(f"load_mnist-{broken}", jaxgrad.load_mnist, {}, {"directory": Files(broken)},
            ValueError, r"idx\d-ubyte")
    add("load_mnist-missing", jaxgrad.load_mnist, {}, {"directory": "/nonexistent/mnist"},
        ValueError, r"`directory`")
    add("read_idx-missing", read_idx, {}, {"path": "/nonexistent/file-idx1-ubyte"},
        ValueError, r"/nonexistent/file-idx1-ubyte")
    add("train_test_split-fraction", train_test_split, inits["train_test_split"][1],
        {"test_fraction": 1.5}, ValueError, r"`test_fraction`")
    add("train_test_split-scalar", train_test_split, inits["train_test_split"][1],
        {"x": 1.0}, ValueError, r"`x`")

    # ------------------------------------------------------------------ bifurcation tools
    good = {"f": duffing, "starts": jnp.zeros((3, 2)), "params": 0.5}
    fp = jaxgrad.fixed_points
    add("fixed_points-starts-rank3", fp, good, {"starts": jnp.zeros((2, 2, 2))}, ValueError,
        r"`starts`")
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
    fp1 = jaxgrad.fixed_points_1d
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
    add("continue_branch-x0-2d", cb, good, {"x0": jnp.zeros((2, 2))}, ValueError, r"`x0`")
    add("continue_branch-x0-complex", cb, good, {"x0": 0.1 + 0j}, TypeError, r"`x0`")
    add("continue_branch-params-nan", cb, good, {"params": DOYA._replace(w=NAN)}, ValueError,
        r"`params.w`")
    add("continue_branch-p-outside", cb, good, {"p_range": (-2.4, -2.0)}, ValueError,
        r"`p_range`")
    add("continue_branch-param-unknown", cb, good, {"param": "c"}, ValueError, r"`param`")
    add("continue_branch-param-None", cb, good, {"param": None}, ValueError, r"`param`")

    good = {"f": flow, "x0": 0.28, "params": DOYA, "param": "b", "param2": "w",
            "p2_range": (3.0, 8.0)}
    fc = jaxgrad.fold_curve
    add("fold_curve-param2-None", fc, good, {"param2": None}, ValueError, r"`param2`")
    add("fold_curve-param2-same", fc, good, {"param2": "b"}, ValueError, r"`param2`")
    add("fold_curve-param2-unknown", fc, good, {"param2": "v"}, ValueError, r"`param2`")
    add("fold_curve-param2-int", fc, good, {"param2": 1}, TypeError, r"`param2`")
    add("fold_curve-ds_min-gt-ds_max", fc, good, {"ds_min": 1.0}, ValueError, r"`ds_min`")
    add("fold_curve-num_steps-huge", fc, good, {"num_steps": 10**7}, ValueError,
        r"`num_steps`")
    add("fold_curve-p2_range", fc, good, {"p2_range": (6.0, 8.0)}, ValueError, r"`p2_range`")

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

    good = {"f": flow, "x0": jnp.array([0.3]), "values": jnp.array([-2.5]), "params": DOYA,
            "param": "b", "kind": "flow"}
    od = jaxgrad.orbit_diagram
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
    hs = jaxgrad.hysteresis_sweep
    add("hysteresis_sweep-values-decreasing", hs, good, {"values": jnp.array([-2.0, -3.0])},
        ValueError, r"`values`.*increasing")
    add("hysteresis_sweep-x0-batch", hs, good, {"x0": jnp.zeros((2, 2))}, ValueError, r"`x0`")
    add("hysteresis_sweep-dt", hs, good, {"dt": INF}, ValueError, r"`dt`")

    good = {"f": flow, "x0": jnp.zeros(3), "values": jnp.array([-2.5]), "params": DOYA,
            "param": "b"}
    bs = jaxgrad.basins
    add("basins-dt-0", bs, good, {"dt": 0.0}, ValueError, r"`dt`")
    add("basins-x0-None", bs, good, {"x0": None}, TypeError, r"`x0`")
    add("basins-tol-nan", bs, good, {"tol": NAN}, ValueError, r"`tol`")
    add("basins-max_attractors", bs, good, {"max_attractors": 0}, ValueError,
        r"`max_attractors`")
    add("basins-params-nan", bs, good, {"params": DOYA._replace(w_in=NAN)}, ValueError,
        r"`params.w_in`")

    good = {"f": flow, "x0": jnp.array([0.1]), "values": jnp.array([-2.5]), "params": DOYA,
            "param": "b"}
    fs = jaxgrad.final_state_sensitivities
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
    return rows


ROWS = _rows()


@pytest.mark.parametrize("name", list(ROWS))
def test_bad_input_is_refused_by_name(name, tmp_path):
    fn, kwargs, exc, pattern = ROWS[name]
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
    "lstm_step": lambda: jaxgrad.lstm_step(jaxgrad.lstm_zero_state(4), jnp.zeros(2), LSTM),
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
    """Record which public functions of ``jaxgrad`` the table covers (printed, not asserted:
    the analyzers without a row here are covered by their own test files)."""
    public = {
        name for name in dir(jaxgrad)
        if not name.startswith("_") and inspect.isfunction(getattr(jaxgrad, name))
    }
    covered = _covered()
    required = {
        "init_mlp", "init_pascanu", "init_lstm", "init_gru", "init_rate", "pascanu_step",
        "lstm_step", "gru_step", "rate_step", "mlp_apply", "MLPConfig", "sample", "get_task",
        "load_mnist", "fixed_points", "fixed_points_1d", "continue_branch", "fold_curve",
        "locate_bifurcation", "orbit_diagram", "hysteresis_sweep", "basins",
        "final_state_sensitivities",
    }
    assert required <= covered, required - covered
    uncovered = sorted(public - covered)
    with capsys.disabled():
        print(f"\nbad-input table covers {len(public & covered)} of {len(public)} public "
              f"functions; not in this table: {', '.join(uncovered)}")
