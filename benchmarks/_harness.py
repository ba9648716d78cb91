"""Timing helpers shared by the workloads, and the command line."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import pkgutil
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

IMPLEMENTATIONS = ("jaxgrad", "numpy", "torch")


def block(x: Any) -> Any:
    """Wait for JAX's asynchronous results (any pytree) before the clock stops."""
    import jax

    return jax.block_until_ready(x)


def time_call(fn: Callable[[], Any], *, repeats: int = 3, warmup: int = 1) -> float:
    """Best wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs.

    ``fn`` must block until its result is ready (wrap JAX calls with ``block``). The
    warm-up runs absorb compilation, so the time is the steady-state cost.
    """
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def matmul_flops_per_second(n: int = 1024, repeats: int = 5) -> float:
    """The machine's float32 matmul rate through XLA (2 n³ flops per n×n product)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    mm = jax.jit(jnp.matmul)
    seconds = time_call(lambda: block(mm(a, b)), repeats=repeats)
    return 2.0 * n**3 / seconds


def machine() -> dict[str, Any]:
    import jax

    return {
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "numpy": np.__version__,
        "torch": importlib.import_module("torch").__version__ if has_torch() else None,
    }


def discover() -> list[Any]:
    package = importlib.import_module("benchmarks")
    modules = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"benchmarks.{info.name}")
            if hasattr(module, "run") and hasattr(module, "ID"):
                modules.append(module)
    return sorted(modules, key=lambda m: m.ID)


def _print_table(records: list[dict]) -> None:
    by_workload: dict[str, dict[str, dict]] = {}
    for r in records:
        by_workload.setdefault(r["workload"], {})[r["implementation"]] = r
    for workload, impls in by_workload.items():
        print(f"\n{workload}")
        base = impls.get("jaxgrad")
        for name, r in impls.items():
            ratio = ""
            if base is not None and name != "jaxgrad":
                ratio = f"   jaxgrad is {r['seconds'] / base['seconds']:.1f}x faster"
            extra = {k: v for k, v in r.items()
                     if k not in ("workload", "implementation", "seconds")}
            extras = "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in extra.items())
            print(f"  {name:8s} {r['seconds'] * 1e3:10.2f} ms{ratio}  {extras}")


def _has_avx512() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            return " avx512f" in fh.read()
    except OSError:
        return False


def configure_cpu() -> None:
    """Let XLA use the whole CPU, unless the user already chose (``XLA_FLAGS``).

    - One JAX CPU device per core (``jax_num_cpu_devices``): work sharded over
      ``jax.devices()`` (``scan_landscape``) then runs on every core at once. Matmuls and
      LAPACK calls use all cores either way.
    - On CPUs with AVX-512, 512-bit vectors in XLA's generated loops
      (``--xla_cpu_prefer_vector_width=512``; XLA prefers 256 bits by default). Measured
      on this project's machine: Doya's loss over a grid 1.7x faster; matmul-bound
      workloads unchanged.

    Must run before JAX's CPU backend starts (the first ``jax.devices()`` or computation).
    """
    import jax

    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_prefer_vector_width" not in flags and _has_avx512():
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_prefer_vector_width=512".strip()
    if "xla_force_host_platform_device_count" in flags:
        return
    if jax.config.jax_num_cpu_devices < 0:
        jax.config.update("jax_num_cpu_devices", os.cpu_count() or 1)


def main(argv: list[str] | None = None) -> int:
    configure_cpu()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--json", metavar="FILE", help="write one record per workload and "
                        "implementation to FILE")
    parser.add_argument("--only", metavar="ID", nargs="*", help="run only these workload IDs")
    parser.add_argument("--load", metavar="N", type=int, default=0,
                        help="run N competing CPU-bound processes (busy loops) beside the "
                        "benchmarks, to time them on a busy machine")
    args = parser.parse_args(argv)
    if args.load < 0:
        parser.error(f"--load must be >= 0, got {args.load}")
    with competing_load(args.load):
        return _run(args)


@contextlib.contextmanager
def competing_load(n: int) -> Iterator[None]:
    """``n`` busy-loop processes (``while True: pass``) for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _run(args: argparse.Namespace) -> int:
    rate = matmul_flops_per_second(256 if args.quick else 1024)
    info = machine()
    info["competing_processes"] = args.load
    print(f"machine: {info['processor']}, {info['cpu_count']} cores, backend {info['backend']}; "
          f"float32 matmul rate {rate / 1e9:.1f} GFLOP/s"
          + (f"; {args.load} competing busy processes" if args.load else ""))
    records: list[dict] = []
    for module in discover():
        if args.only and module.ID not in args.only:
            continue
        print(f"[{module.ID}] {module.TITLE} ...", flush=True)
        for r in module.run(args.quick):
            r.setdefault("workload", f"({module.ID}) {module.TITLE}")
            if "flops" in r:
                r["gflops_per_second"] = r["flops"] / r["seconds"] / 1e9
                r["fraction_of_matmul_rate"] = r["flops"] / r["seconds"] / rate
            records.append(r)
    _print_table(records)
    if args.json:
        payload = {"machine": info, "matmul_flops_per_second": rate, "quick": args.quick,
                   "records": records}
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=2)
        print(f"\nwrote {args.json}")
    return 0
