"""(j) A λ₁ sweep of a rate network over a grid, on one CPU device and on two.

Issue #15's workload (h). The largest Lyapunov exponent of the 200-unit discrete rate
network ``h ← J tanh(h) + W_in u`` with ``J = g Z/√N``, ``W_in = σ_b ξ`` and a constant input
1 (so ``σ_b ξ`` is a bias), over a 32×32 grid of ``(σ_b², g) ∈ [0, 2] × [0.5, 3]``, as
``experiments/lyapunov_rnn.py``'s phase diagram computes it: at every point
``jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, h0, ones, params=..., num_exponents=1,
transient=100)`` over 300 steps (the same ``Z``, ``ξ`` and ``h0`` at every point), the grid
by ``jaxgrad.sweep(..., block_size=64)``. Quick sizes: 64 units, an 8×8 grid, 100 steps.

JAX fixes its device count when its CPU backend starts, so each configuration runs in its
own subprocess (``python -m benchmarks.sweep_devices``), with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (and the parent's other XLA flags):

- ``1 device``: one CPU device; XLA may still run an operation on several threads.
- ``1 device, pinned to one core``: the same, the process confined to one core
  (``os.sched_setaffinity``): the single-core baseline.
- ``2 devices``: ``sweep`` splits each chunk over both devices (``shard_map``).

Each subprocess times the sweep as the other workloads do (best of ``repeats`` after a call
that compiles) and reports, over its timed calls, ``cpu_seconds`` (process CPU time per
call), ``cores_busy`` (CPU time over wall time: about 1 when one core did the work, about 2
when two did, less on a loaded machine) and ``busiest_threads_share`` (the shares of the
CPU time of its three busiest threads, from ``/proc``: ``[1.0, 0, 0]`` when one thread did
all the work, whatever the load). Records (all ``implementation="jaxgrad"``, one workload
per configuration) carry these, ``devices``, ``pinned``, ``load_average`` (the 1-minute
load average when the configuration finished: the machine may be shared), and in the
two-device record ``speedup_vs_1_device`` and ``speedup_vs_1_core`` (the one-device times
over its time); every record has ``lambda_1_max_abs_diff``, the largest ``|Δλ₁|`` over the
grid against the one-device sweep (the same numbers are expected: ``sweep``'s result does
not depend on the device count up to rounding).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxgrad

from . import _harness

ID = "j"
TITLE = "λ₁ sweep of a rate network over a grid, 1 against 2 CPU devices"

DEFAULT_SIZES = {"num_units": 200, "grid": 32, "num_steps": 300, "transient": 100}
QUICK_SIZES = {"num_units": 64, "grid": 8, "num_steps": 100, "transient": 50}
CONFIGURATIONS = (("1 device", 1, False), ("1 device, pinned to one core", 1, True),
                  ("2 devices", 2, False))


def make_point(num_units: int, num_steps: int, transient: int):
    """The per-point function: ``{"sigma_b2", "g"} -> λ₁`` (fixed ``Z``, ``ξ``, ``h0``)."""
    keys = jax.random.split(jax.random.key(0), 3)
    Z = jax.random.normal(keys[0], (num_units, num_units)) / np.float32(np.sqrt(num_units))
    xi = jax.random.normal(keys[1], (num_units, 1))
    h0 = jax.random.normal(keys[2], (num_units,))
    ones = jnp.ones((num_steps, 1))

    def point(p):
        params = jaxgrad.RateParams(J=p["g"] * Z, W_in=jnp.sqrt(p["sigma_b2"]) * xi)
        res = jaxgrad.lyapunov_spectrum(jaxgrad.rate_step, h0, ones, params=params,
                                        num_exponents=1, transient=transient)
        return res.exponents[0]

    return point


def lambda_1_sweep(num_units: int, grid: int, num_steps: int, transient: int) -> np.ndarray:
    """λ₁ over the ``(σ_b², g)`` grid, ``(grid, grid)``, on this process's devices."""
    return _sweep(make_point(num_units, num_steps, transient), grid)


def _sweep(point, grid: int) -> np.ndarray:
    out = jaxgrad.sweep(point, {"sigma_b2": (0.0, 2.0, grid), "g": (0.5, 3.0, grid)},
                        block_size=64, progress=False)
    if not out.complete or not np.all(out.finite):
        raise FloatingPointError(f"non-finite λ₁ at {out.nonfinite_points[:5].tolist()}")
    return np.asarray(out.values)


def _child(sizes: dict, devices: int, repeats: int, out: str) -> None:
    """One configuration, in a process whose XLA_FLAGS set the device count."""
    if jax.device_count() != devices:
        raise RuntimeError(f"expected {devices} CPU devices, JAX has {jax.device_count()}")
    point = make_point(sizes["num_units"], sizes["num_steps"], sizes["transient"])
    values = _sweep(point, sizes["grid"])  # compiles; the same `point` reuses the program
    threads, wall, cpu = _thread_cpu_ticks(), time.perf_counter(), time.process_time()
    seconds = _harness.time_call(lambda: _sweep(point, sizes["grid"]), repeats=repeats,
                                 warmup=0)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    after = _thread_cpu_ticks()
    ticks = sorted((after[t] - threads.get(t, 0) for t in after), reverse=True)
    np.save(out + ".npy", values)
    with open(out + ".json", "w") as fh:
        json.dump({"seconds": seconds, "cpu_seconds": cpu / repeats, "cores_busy": cpu / wall,
                   "busiest_threads_share": [round(t / max(sum(ticks), 1), 3)
                                             for t in ticks[:3]],
                   "load_average": os.getloadavg()[0]}, fh)


def _thread_cpu_ticks() -> dict[str, int]:
    """CPU clock ticks (user + system) of each thread of this process (Linux; else {})."""
    ticks = {}
    folder = "/proc/self/task"
    for tid in os.listdir(folder) if os.path.isdir(folder) else ():
        try:
            with open(f"{folder}/{tid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[tid] = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ticks


def _run_configuration(sizes: dict, devices: int, pinned: bool, repeats: int,
                       folder: str) -> tuple[dict, np.ndarray]:
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if "xla_force_host_platform_device_count" not in f]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ,
               XLA_FLAGS=" ".join([*flags, f"--xla_force_host_platform_device_count={devices}"]),
               PYTHONPATH=os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])]))
    env.pop("JAX_NUM_CPU_DEVICES", None)
    out = os.path.join(folder, f"{devices}-{int(pinned)}")
    command = [sys.executable, "-m", "benchmarks.sweep_devices", "--devices", str(devices),
               "--repeats", str(repeats), "--sizes", json.dumps(sizes), "--out", out]
    if pinned:
        command.append("--pin")
    subprocess.run(command, env=env, check=True)
    with open(out + ".json") as fh:
        return json.load(fh), np.load(out + ".npy")


def run(quick: bool, sizes: dict[str, int] | None = None) -> list[dict]:
    """Time the sweep on 1 and 2 CPU devices; ``sizes`` overrides ``DEFAULT_SIZES``."""
    size = {**(QUICK_SIZES if quick else DEFAULT_SIZES), **(sizes or {})}
    repeats = 2 if quick else 3
    workload = (f"({ID}) λ₁ sweep, {size['grid']}×{size['grid']} grid, N={size['num_units']},"
                f" T={size['num_steps']} steps")
    records, values = [], {}
    with tempfile.TemporaryDirectory() as folder:
        for label, devices, pinned in CONFIGURATIONS:
            timing, values[label] = _run_configuration(size, devices, pinned, repeats, folder)
            records.append({"workload": f"{workload}, {label}", "implementation": "jaxgrad",
                            **timing, **size, "devices": devices, "pinned": pinned,
                            "lambda_1_max": float(np.max(values[label]))})
    one, one_core, two = records
    two["speedup_vs_1_device"] = one["seconds"] / two["seconds"]
    two["speedup_vs_1_core"] = one_core["seconds"] / two["seconds"]
    reference = values["1 device"]
    for r, label in zip(records, values, strict=True):
        r["lambda_1_max_abs_diff"] = float(np.max(np.abs(values[label] - reference)))
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one configuration of workload (j)")
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--repeats", type=int, required=True)
    parser.add_argument("--sizes", required=True, help="JSON dict of sizes")
    parser.add_argument("--out", required=True, help="path prefix of the .json and .npy")
    parser.add_argument("--pin", action="store_true", help="run on one core only")
    args = parser.parse_args(argv)
    if args.pin:  # before JAX starts its threads
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    _child(json.loads(args.sizes), args.devices, args.repeats, args.out)


if __name__ == "__main__":
    main()
