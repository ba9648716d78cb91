"""scan_landscape and sweep across processes: two jax.distributed CPU processes on localhost.

The test launches this file as a script (``python test_landscape_multihost.py PROCESS_ID
NUM_PROCESSES PORT OUT``) twice, each process holding 2 simulated CPU devices (4 global
devices, gloo collectives) and calling ``jax.distributed.initialize``, and once more as a
single process with 4 simulated devices. All run the same scans. Every process of the
distributed scan must return the full result, bitwise equal to the single process with 4
devices, and equal to a one-device scan (bitwise, except for reverse-mode axis gradients:
see ``test_two_processes_match_one_process``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NUM_PROCESSES = 2
DEVICES_PER_PROCESS = 2
TIMEOUT_S = 120


def cliff_loss(p):
    """The Doya loss plus ``log(w - 4.5)``: NaN for the grid's two smallest ``w`` rows."""
    from test_landscape import doya_loss

    return doya_loss(p) + jnp.log(p.w - 4.5)


def memory_kwargs():
    return dict(chunk_size=10, method="reverse", max_reported=10, progress=False)


def checkpoint_kwargs():  # forward mode (3 parameters), 7 chunks of 9 points
    return dict(chunk_size=9, max_reported=10, progress=False)


FIELDS = ("loss", "axis_gradients", "gradient_norm", "finite", "nonfinite_points")


def _fields(scan) -> dict[str, np.ndarray]:
    out = {name: np.array(getattr(scan, name)) for name in FIELDS}
    out["num_nonfinite"] = np.array(scan.num_nonfinite)
    out["complete"] = np.array(scan.complete)
    return out


def _sweeps(folder: Path | None) -> dict[str, np.ndarray]:
    """``jaxgrad.sweep`` on the same engine: in memory, and (with ``folder``) interrupted
    after one chunk and resumed from a checkpoint folder."""
    from test_landscape_sweep import B, W, cubic_roots

    import jaxgrad

    def run(**kw):
        return jaxgrad.sweep(cubic_roots, {"w": W, "b": B}, chunk_size=7, max_reported=5,
                             progress=False, **kw)

    def fields(prefix, result):
        out = {f"{prefix}_{k}": np.array(v) for k, v in result.values._asdict().items()}
        for k in ("finite", "nonfinite_points", "num_nonfinite", "complete"):
            out[f"{prefix}_{k}"] = np.array(getattr(result, k))
        return out

    results = fields("sweep_memory", run())
    if folder is not None:
        results.update(fields("sweep_interrupted", run(checkpoint=folder, max_chunks=1)))
        results.update(fields("sweep_resumed", run(checkpoint=folder)))
    return results


# ---------------------------------------------------------------------------------------
# The worker: one process of the distributed scan


def _worker(process_id: int, num_processes: int, port: int, out: Path) -> None:
    import jax

    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_numpy_rank_promotion", "raise")
    if num_processes > 1:
        jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}",
                                   coordinator_bind_address=f"127.0.0.1:{port}",
                                   num_processes=num_processes, process_id=process_id,
                                   initialization_timeout=TIMEOUT_S)
    name = f"process{process_id}" if num_processes > 1 else "single"
    out = out / name
    out.mkdir()
    sys.path.insert(0, str(ROOT / "tests"))
    from test_landscape import DOYA, DOYA_AXES

    import jaxgrad
    import jaxgrad.landscape._storage as storage_module

    info = {"process_count": jax.process_count(), "device_count": jax.device_count(),
            "local_device_count": jax.local_device_count()}

    # Record every file the scanner opens for writing on this process.
    writes: list[str] = []
    real_open, real_write_atomic = open, storage_module.write_atomic

    def recording_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            writes.append(str(file))
        return real_open(file, mode, *args, **kwargs)

    def recording_write_atomic(path, data):
        writes.append(str(path))
        return real_write_atomic(path, data)

    storage_module.open = recording_open
    storage_module.write_atomic = recording_write_atomic

    results = {}
    memory = jaxgrad.scan_landscape(cliff_loss, DOYA, DOYA_AXES, **memory_kwargs())
    results.update({f"memory_{k}": v for k, v in _fields(memory).items()})

    folder = out.parent / f"checkpoint-{name if num_processes == 1 else 'shared'}"
    interrupted = jaxgrad.scan_landscape(cliff_loss, DOYA, DOYA_AXES, checkpoint=folder,
                                         max_chunks=3, **checkpoint_kwargs())
    results.update({f"interrupted_{k}": v for k, v in _fields(interrupted).items()})
    resumed = jaxgrad.scan_landscape(cliff_loss, DOYA, DOYA_AXES, checkpoint=folder,
                                     **checkpoint_kwargs())
    results.update({f"resumed_{k}": v for k, v in _fields(resumed).items()})
    results.update(_sweeps(out.parent / f"sweep-{name if num_processes == 1 else 'shared'}"))
    info["writes"] = writes
    if process_id == 0:  # a damaged folder: process 0 decides to start it afresh
        (folder / "gradient_norm.npy").unlink()
    repaired = jaxgrad.scan_landscape(cliff_loss, DOYA, DOYA_AXES, checkpoint=folder,
                                      **checkpoint_kwargs())
    results.update({f"repaired_{k}": v for k, v in _fields(repaired).items()})

    errors = {}
    try:  # another scan in the same folder: refused on every process
        jaxgrad.scan_landscape(cliff_loss, DOYA, {"w": (4.0, 6.0, 8), "b": (-3.0, -2.0, 9)},
                               checkpoint=folder, **checkpoint_kwargs())
    except ValueError as e:
        errors["other_scan"] = str(e)
    if num_processes > 1:  # one folder per process (no shared filesystem): refused
        try:
            jaxgrad.scan_landscape(cliff_loss, DOYA, DOYA_AXES, checkpoint=out / "own",
                                   **checkpoint_kwargs())
        except ValueError as e:
            errors["not_shared"] = str(e)
    info["errors"] = errors

    np.savez(out / "results.npz", **results)
    (out / "info.json").write_text(json.dumps(info))


# ---------------------------------------------------------------------------------------
# The test


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_all(out: Path) -> tuple[bool, str]:
    """Run the two distributed processes and the 4-device single process side by side;
    kill them all if one fails or they pass ``TIMEOUT_S``. Returns (success, their output)."""
    out.mkdir()
    # jax.distributed warns that proxy variables may hang its start: leave them out.
    env = {k: v for k, v in os.environ.items() if "_proxy" not in k.lower()}
    env.update(PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    port = _free_port()
    runs = [(i, NUM_PROCESSES, DEVICES_PER_PROCESS) for i in range(NUM_PROCESSES)]
    runs.append((0, 1, NUM_PROCESSES * DEVICES_PER_PROCESS))
    procs, logs = [], []
    for process_id, num_processes, devices in runs:
        log = open(out / f"{len(procs)}.log", "w+")
        logs.append(log)
        flags = f"--xla_force_host_platform_device_count={devices}"
        procs.append(subprocess.Popen(
            [sys.executable, __file__, str(process_id), str(num_processes), str(port),
             str(out)], env={**env, "XLA_FLAGS": flags}, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break  # one failed: the others would wait for it in a collective
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    report = []
    for run, p, log in zip(runs, procs, logs):
        log.seek(0)
        report.append(f"--- process {run[0]} of {run[1]} (exit status {p.returncode}) ---\n"
                      f"{log.read()[-4000:]}")
        log.close()
    return all(p.returncode == 0 for p in procs), "\n".join(report)


def _launch(tmp_path: Path) -> Path:
    """``_run_all`` in a fresh folder, once more if another program took the free port
    between ``_free_port`` and the coordinator's start. Returns the folder."""
    for attempt in range(2):
        out = tmp_path / f"attempt{attempt}"
        ok, report = _run_all(out)
        if ok or "Failed to add port" not in report:
            break
    assert ok, report
    return out


def _assert_max_ulp(actual, desired, maxulp, err_msg):
    np.testing.assert_array_equal(np.isfinite(actual), np.isfinite(desired), err_msg=err_msg)
    finite = np.isfinite(desired)
    np.testing.assert_array_max_ulp(actual[finite], desired[finite], maxulp=maxulp)


def _hostname_resolves() -> bool:
    try:
        socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _hostname_resolves(), reason=(
    "gloo, jax's CPU collectives, finds its network address from this machine's hostname, "
    "which does not resolve here (the backend fails with 'gloo/transport/tcp/device.cc')"))
def test_two_processes_match_one_process(tmp_path):
    """Process 0 and 1 of a 2-process scan, each with 2 CPU devices, return the whole
    result, bitwise equal to one process with 4 devices: the multi-process path changes
    nothing. Against one device, everything is bitwise equal except the reverse-mode axis
    gradients ``D @ g`` (a 3-term contraction per point), which may differ by 1 ulp: XLA:CPU
    compiles the contraction batched over a device's points differently for 3 points per
    device (4 devices, chunk 12) than for 10 (one device), so the rounding order differs.
    With a checkpoint folder, an interrupted scan, its resumption and the rescan of a
    damaged folder are written by process 0 alone, and every process returns the whole
    result; a folder of another scan, or a folder not every process sees, is refused on
    every process."""
    from test_landscape import DOYA, DOYA_AXES

    import jaxgrad

    out = _launch(tmp_path)
    single = np.load(out / "single" / "results.npz")
    one_device = {f"memory_{k}": v for k, v in _fields(jaxgrad.scan_landscape(
        cliff_loss, DOYA, DOYA_AXES, **memory_kwargs())).items()}
    checkpoint_ref = _fields(jaxgrad.scan_landscape(cliff_loss, DOYA, DOYA_AXES,
                                                    **checkpoint_kwargs()))
    for run in ("resumed", "repaired"):
        one_device.update({f"{run}_{k}": v for k, v in checkpoint_ref.items()})
    sweep_ref = _sweeps(None)
    one_device.update(sweep_ref)
    one_device.update({k.replace("memory", "resumed"): v for k, v in sweep_ref.items()})
    assert sweep_ref["sweep_memory_num_nonfinite"] == 8
    # The scan has non-finite points, more than max_reported (10) of them.
    assert one_device["memory_num_nonfinite"] == 18
    assert len(one_device["memory_nonfinite_points"]) == 10
    for name, ref in one_device.items():
        if name == "memory_axis_gradients":  # reverse mode
            _assert_max_ulp(single[name], ref, 1, name)
        else:
            np.testing.assert_array_equal(single[name], ref, err_msg=name)

    done = np.zeros(63, bool)  # the interrupted scan: its first 3 chunks, 27 points
    done[:27] = True
    for i in range(NUM_PROCESSES):
        info = json.loads((out / f"process{i}" / "info.json").read_text())
        assert (info["process_count"], info["device_count"], info["local_device_count"]) \
            == (NUM_PROCESSES, NUM_PROCESSES * DEVICES_PER_PROCESS, DEVICES_PER_PROCESS)
        got = np.load(out / f"process{i}" / "results.npz")
        assert sorted(got.files) == sorted(single.files)
        for name in single.files:
            np.testing.assert_array_equal(got[name], single[name], err_msg=name)
        assert got["resumed_complete"] and not got["interrupted_complete"]
        for name in ("loss", "gradient_norm"):
            part = got[f"interrupted_{name}"].ravel()
            np.testing.assert_array_equal(part[done], got[f"resumed_{name}"].ravel()[done])
            assert np.isnan(part[~done]).all()
        np.testing.assert_array_equal(got["interrupted_finite"].ravel(),
                                      got["resumed_finite"].ravel() & done)
        assert got["interrupted_num_nonfinite"] == 18  # rows w = 4, 4.33: points 0-17
        assert not got["sweep_interrupted_complete"] and got["sweep_resumed_complete"]
        np.testing.assert_array_equal(got["sweep_interrupted_finite"].ravel()[7:], False)
        np.testing.assert_array_equal(got["sweep_interrupted_count"].ravel()[:7],
                                      got["sweep_resumed_count"].ravel()[:7])
        # Process 0 alone writes the checkpoint folder.
        if i == 0:
            assert any(w.endswith("progress.json") for w in info["writes"])
            assert any(w.endswith("loss.npy") for w in info["writes"])
        else:
            assert info["writes"] == []
        # Errors reach every process.
        assert "different scan" in info["errors"].get("other_scan", "")
        if i > 0:
            assert "raised by process 0" in info["errors"]["other_scan"]
        assert "must be shared" in info["errors"].get("not_shared", "")
    assert not (out / "process1" / "own").exists()
    shared = out / "checkpoint-shared"
    for name in FIELDS[:4]:
        ref = one_device[f"resumed_{name}"]
        np.testing.assert_array_equal(np.load(shared / f"{name}.npy").reshape(ref.shape), ref,
                                      err_msg=name)


if __name__ == "__main__":
    _worker(*map(int, sys.argv[1:4]), Path(sys.argv[4]))
