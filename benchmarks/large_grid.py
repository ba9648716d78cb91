"""(d) A 10^8-point landscape scan whose memory stays bounded by the chunk size.

Doya's loss L = (0.855 - x_T)² (T = 10 steps) and ∂L/∂w, ∂L/∂b on a 10^4 × 10^4 (w, b)
grid, ``scan_landscape(..., gradient="axes", chunk_size=2^20, checkpoint=folder)``: each
finished chunk is written to ``.npy`` files on disk with plain writes, so the process's
peak resident memory is the chunk's working set, not the 1.3 GB of results. Each scan
runs in a fresh subprocess, whose peak RSS (``resource.getrusage``) is reported beside
that of the same scan on a grid of exactly one chunk (2^20 points): JAX, XLA and one
chunk's working set, the bound the large scan should stay near.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ID = "d"
TITLE = "10^8-point grid in bounded memory"

SCRIPT = r"""
import json, resource, sys, time
from functools import partial
import jax, jax.numpy as jnp
import jaxgrad

side, chunk, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def loss(params, num_steps=10):
    dtype = jnp.result_type(params.b)
    def body(x, _):
        return jaxgrad.doya_step(x, jnp.zeros((), dtype), params, eps=0.5), None
    x, _ = jax.lax.scan(body, jnp.asarray(0.5, dtype), None, length=num_steps, unroll=True)
    return (0.855 - x) ** 2

start = time.perf_counter()
scan = jaxgrad.scan_landscape(loss, jaxgrad.DoyaParams(5.0, -2.5, 0.0),
                              {"w": (3.0, 7.0, side), "b": (-4.0, -1.0, side)},
                              gradient="axes", chunk_size=chunk, checkpoint=folder,
                              progress=False)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "complete": scan.complete,
                  "num_nonfinite": scan.num_nonfinite,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run(side: int, chunk: int) -> dict:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryDirectory(prefix="jaxgrad-large-grid-") as folder:
        proc = subprocess.run([sys.executable, "-c", SCRIPT, str(side), str(chunk), folder],
                              env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"large-grid scan failed:\n{proc.stderr[-3000:]}")
        disk = sum(p.stat().st_size for p in Path(folder).iterdir())
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["results_on_disk_mb"] = disk / 2**20
    return out


def run(quick: bool) -> list[dict]:
    side = 1000 if quick else 10_000
    chunk = 1 << 16 if quick else 1 << 20
    base = _run(256 if quick else 1024, chunk)  # a grid of exactly one chunk
    big = _run(side, chunk)
    if not big["complete"]:
        raise RuntimeError("the large scan did not complete")
    points = side * side
    return [{
        "workload": f"({ID}) Doya loss + 2 axis gradients, {points:.0e} points, "
                    f"chunk {chunk}",
        "implementation": "jaxgrad",
        "seconds": big["seconds"],
        "points_per_second": points / big["seconds"],
        "peak_rss_mb": big["peak_rss_mb"],
        "one_chunk_grid_peak_rss_mb": base["peak_rss_mb"],
        "results_on_disk_mb": big["results_on_disk_mb"],
        "results_if_held_in_memory_mb": points * 13 / 2**20,
    }]
