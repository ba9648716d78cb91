"""The shared experiment runner: discovery, atomic results, resume, and the report.

An experiment is a module ``experiments/<snake_name>.py`` that defines

    NAME = "kebab-name"              # what `python -m experiments run NAME` takes
    DESCRIPTION = "one line"

    @dataclasses.dataclass(frozen=True)
    class Config:                    # typed parameters, CPU-sized defaults (tuples, not lists)
        num_steps: int = 5000
        ...

    QUICK_CONFIG = {...}             # overrides for --quick (the tests use it)
    SUMMARY_KEYS = ("key", ...)      # the summary keys the experiment promises (a contract)

    def compute(config: Config) -> Computed            # the numerics: summary and arrays
    def checks(config: Config, computed) -> list[Check]
    def figures(config: Config, computed) -> dict[str, Figure]
    def run(config: Config) -> Result                  # staged_run(config, compute, ...)

``make_config`` builds the ``Config`` (defaults, ``QUICK_CONFIG``, checked overrides);
``summary.json`` records its fields under "parameters" (in field order) and their hash.
(A module of the 0.1 form, with a ``DEFAULT_CONFIG`` dict and ``run(config: dict)``, is
still run as before; none of the catalogue's is.) An experiment is found automatically
(modules starting with ``_`` are not experiments). The runner writes
``DIR/NAME/summary.json`` (parameters, key numbers, checks), ``DIR/NAME/data.npz`` and one
PNG per figure. Every experiment is first written to a staging folder
``DIR/.NAME.PID.XXXX`` and then renamed into place, so a folder ``DIR/NAME`` with a
``summary.json`` is always complete. Writing and renaming hold an exclusive lock on
``DIR`` (``fcntl.flock``), so two runs into one folder take turns instead of colliding,
and the writer removes the staging folders a killed run left behind. The summary records
the SHA-256 of ``data.npz`` and of every figure; ``reproduce`` skips an experiment only
when its summary has the same configuration and every file still has its checksum
(a damaged or deleted file makes it run again), unless ``force=True``. Results get the
permissions the umask allows (``0o666 & ~umask`` files, ``0o777 & ~umask`` folders).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import html
import importlib
import json
import math
import os
import pkgutil
import re
import shutil
import tempfile
import time
import types
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxgrad.io import default_dir_mode, write_atomic

try:
    import fcntl
except ImportError:  # not POSIX: no locking (one run per folder at a time)
    fcntl = None

PACKAGE = "experiments"


@dataclasses.dataclass(frozen=True)
class Check:
    """A measured number beside its published or closed-form value."""

    name: str
    value: float
    reference: float
    tolerance: float
    passed: bool
    note: str = ""
    #: How ``value`` must relate to ``reference``: ``"≈"`` (within ``tolerance``), ``"≤"``
    #: or ``"≥"`` (a bound; ``tolerance`` is then 0 and unused).
    relation: str = "≈"

    def as_dict(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in dataclasses.asdict(self).items()}


def check_close(
    name: str, value: Any, reference: Any, *, atol: float = 0.0, rtol: float = 0.0, note: str = ""
) -> Check:
    """``|value - reference| <= atol + rtol |reference|``; the tolerance stored is that bound."""
    value, reference = float(value), float(reference)
    tolerance = atol + rtol * abs(reference)
    passed = math.isfinite(value) and abs(value - reference) <= tolerance
    return Check(name, value, reference, tolerance, bool(passed), note)


def check_bound(name: str, value: Any, bound: Any, *, kind: str = "<=", note: str = "") -> Check:
    """``value <= bound`` (``kind="<="``) or ``value >= bound`` (``">="``); tolerance 0."""
    value, bound = float(value), float(bound)
    if kind not in ("<=", ">="):
        raise ValueError(f"`kind` must be '<=' or '>=', got {kind!r}")
    ok = value <= bound if kind == "<=" else value >= bound
    return Check(name, value, bound, 0.0, bool(math.isfinite(value) and ok),
                 note or f"value {kind} reference", "≤" if kind == "<=" else "≥")


@dataclasses.dataclass(frozen=True)
class Computed:
    """What an experiment's ``compute(config)`` returns: its numbers, before any check.

    Attributes:
        summary: key numbers (JSON-serialisable), written to ``summary.json``.
        arrays: data saved to ``data.npz``.
        details: anything else ``checks`` and ``figures`` read (not saved).
    """

    summary: dict[str, Any]
    arrays: dict[str, Any] = dataclasses.field(default_factory=dict)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Result:
    """What ``run(config)`` returns.

    Attributes:
        summary: key numbers (JSON-serialisable: floats, lists, dicts).
        checks: list of ``Check``.
        arrays: data saved to ``data.npz``.
        figures: ``{file_stem: matplotlib.figure.Figure}`` saved as PNG.
    """

    summary: dict[str, Any]
    checks: list[Check]
    arrays: dict[str, Any] = dataclasses.field(default_factory=dict)
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)


def staged_run(config: Any, compute: Any, checks: Any, figures: Any) -> Result:
    """``compute(config)``, then ``checks(config, computed)`` and ``figures(config, computed)``.

    What an experiment's ``run(config)`` returns: ``Result(summary, checks, arrays,
    figures)`` with the summary and arrays of the ``Computed``.
    """
    computed = compute(config)
    if not isinstance(computed, Computed):
        raise TypeError(f"`compute` must return a Computed, got {type(computed).__name__}")
    return Result(dict(computed.summary), list(checks(config, computed)),
                  dict(computed.arrays), dict(figures(config, computed)))


def config_fields(config: Any) -> dict[str, Any]:
    """A ``Config`` instance's fields (in declaration order) as a dict; a dict is copied."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    if isinstance(config, dict):
        return dict(config)
    raise TypeError(f"`config` must be an experiment's Config or a dict, got "
                    f"{type(config).__name__}")


def _frozen(x: Any) -> Any:
    """Lists (a JSON override's, at any depth) as tuples, so a ``Config`` stays hashable."""
    if isinstance(x, (list, tuple)):
        return tuple(_frozen(v) for v in x)
    if isinstance(x, dict):
        return {k: _frozen(v) for k, v in x.items()}
    return x


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.generic, np.ndarray)) or type(x).__module__.startswith("jax"):
        arr = np.asarray(x)
        return _jsonable(arr.tolist()) if arr.ndim else _jsonable(arr.item())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)  # JSON has no inf/nan; keep them readable
    return x


def discover() -> dict[str, types.ModuleType]:
    """All experiment modules by ``NAME``, in file-name order."""
    package = importlib.import_module(PACKAGE)
    found: dict[str, types.ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{PACKAGE}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            found[module.NAME] = module
    return found


def get_experiment(name: str) -> types.ModuleType:
    """The experiment module called ``name``; a clear error lists the known ones."""
    experiments = discover()
    if name not in experiments:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(experiments)}")
    return experiments[name]


#: Integer keys that count something (points, steps, units, ...): they must be >= 1.
COUNT_KEY = re.compile(
    r"^num_|(^|_)(steps|size|points|seeds|units|sequences|networks|nodes|batch|width|depth"
    r"|length|exponents|sequence)$"
)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean (true/false)"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def check_override(key: str, value: Any, default: Any) -> Any:
    """``value`` for config ``key`` checked against the type of its ``default``.

    A boolean, integer, number, string, list or dict default takes only a value of its
    kind (an integer is accepted for a number and converted; numbers must be finite); an
    integer count (``num_*``, ``*_steps``, ``*_size``, ``*_points``, ``length``,
    ``depth``, ``width``, ... see ``COUNT_KEY``) must be >= 1, another integer with a
    non-negative default (not a seed) >= 0; a list's items must have the kind of the
    default's items where those share one; a ``None`` default takes ``None`` or a string.

    Raises:
        TypeError, ValueError: naming ``key``, what was expected and what came.
    """
    got = f"got {json.dumps(value, default=str)} ({_kind(value)})"
    like = f"like the default {json.dumps(default)}"
    if default is None:
        if value is not None and not isinstance(value, str):
            raise TypeError(f"`{key}` must be a string or null, {got}")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError(f"`{key}` must be true or false ({like}), {got}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"`{key}` must be an integer ({like}), {got}")
        if COUNT_KEY.search(key) and value < 1:
            raise ValueError(f"`{key}` counts something and must be >= 1 ({like}), {got}")
        if default >= 0 and "seed" not in key and value < 0:
            raise ValueError(f"`{key}` must be >= 0 ({like}), {got}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"`{key}` must be a number ({like}), {got}")
        if not math.isfinite(value):
            raise ValueError(f"`{key}` must be a finite number ({like}), {got}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise TypeError(f"`{key}` must be a string ({like}), {got}")
        return value
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise TypeError(f"`{key}` must be a JSON object ({like}), {got}")
        return value
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"`{key}` must be a list ({like}), {got}")
        kinds = {"a number" if _kind(v) == "an integer" else _kind(v) for v in default}
        if len(kinds) == 1 and default:
            (kind,) = kinds
            for i, item in enumerate(value):
                item_kind = "a number" if _kind(item) == "an integer" else _kind(item)
                if item_kind != kind:
                    raise TypeError(f"`{key}[{i}]` must be {kind} ({like}), got "
                                    f"{json.dumps(item, default=str)} ({_kind(item)})")
                if kind == "a number" and not math.isfinite(item):
                    raise ValueError(f"`{key}[{i}]` must be a finite number, got {item}")
        return value
    return value


def make_config(module: types.ModuleType, *, quick: bool = False, **overrides: Any) -> Any:
    """``module.Config()`` with ``QUICK_CONFIG`` (if ``quick``) and ``overrides`` on top.

    Each override is checked against its default field value with ``check_override``
    (type, counts >= 1, finite numbers); an unknown key, or a value of the wrong kind, is
    refused with an error naming the key. Lists (from JSON) become tuples. A module not
    yet converted (``DEFAULT_CONFIG``, a dict) gets a dict, built the same way.

    Returns:
        A ``module.Config`` instance (``dataclasses.replace`` of the defaults), or a dict.
    """
    config_type = getattr(module, "Config", None)
    defaults = (config_fields(config_type()) if config_type is not None
                else dict(module.DEFAULT_CONFIG))
    config = dict(defaults)
    if quick:
        config.update(getattr(module, "QUICK_CONFIG", {}))
    unknown = set(overrides) - set(defaults) or set(config) - set(defaults)
    if unknown:
        raise ValueError(f"unknown config key(s) {sorted(unknown)} for {module.NAME}; "
                         f"known: {sorted(defaults)}")
    for key, value in overrides.items():
        config[key] = check_override(key, value, defaults[key])
    if config_type is None:
        return config
    changed = {k: _frozen(v) for k, v in config.items() if v is not defaults[k]}
    return dataclasses.replace(config_type(), **changed)


def config_hash(config: Any) -> str:
    """16 hex digits of the SHA-256 of ``config``'s fields as sorted JSON."""
    return hashlib.sha256(json.dumps(_jsonable(config_fields(config)), sort_keys=True)
                          .encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_complete(out: Path, name: str, config: dict | None = None) -> bool:
    """True when ``out/name`` holds a finished result (made with ``config``, if given).

    Finished means: ``summary.json`` reads as a summary, and ``data.npz`` and every
    figure it lists exist with the SHA-256 the summary recorded when they were written.
    A damaged, truncated or deleted file (or a summary without checksums, from an older
    runner) is not finished, so ``reproduce`` runs the experiment again.
    """
    folder = Path(out) / name
    try:
        summary = json.loads((folder / "summary.json").read_text())
        if not isinstance(summary, dict):
            return False
        if config is not None and summary.get("config_hash") != config_hash(config):
            return False
        files = summary.get("file_sha256")
        figures = summary.get("figures")
        if not isinstance(files, dict) or not isinstance(figures, list):
            return False
        if not {"data.npz", *figures} <= set(files):
            return False
        for file, digest in files.items():
            if not isinstance(file, str) or Path(file).name != file or file in ("", ".", ".."):
                return False
            if _sha256(folder / file) != digest:
                return False
    except (OSError, ValueError, TypeError):
        return False
    return True


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the folder ``out`` (released if the process dies)."""
    if fcntl is None:
        yield
        return
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _remove_stale(out: Path, name: str) -> list[Path]:
    """Remove the staging folders of ``name`` a killed run left; call holding the lock.

    Every writer holds the lock from creating its staging folder to renaming it into
    place, so while we hold it, any ``.NAME.*`` folder belongs to a run that is gone.
    """
    pattern = re.compile(rf"\.{re.escape(name)}\.(old\.)?(\d+\.)?[A-Za-z0-9_]+")
    removed = []
    for entry in out.iterdir():
        if pattern.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _staging_dir(out: Path, prefix: str) -> Path:
    """A fresh folder ``out/PREFIX.PID.XXXX`` with the mode the umask allows."""
    path = Path(tempfile.mkdtemp(dir=out, prefix=f"{prefix}.{os.getpid()}."))
    os.chmod(path, default_dir_mode())  # mkdtemp makes it 0o700
    return path


def run_experiment(name: str, out: str | Path, *, quick: bool = False,
                   config: Any = None) -> dict[str, Any]:
    """Run one experiment and write its folder atomically; return the summary dict.

    ``run(config)`` runs without the lock; writing the staging folder and renaming it to
    ``out/name`` hold the lock on ``out``, and first remove the staging folders a killed
    run of ``name`` left behind.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    module = get_experiment(name)
    config = make_config(module, quick=quick) if config is None else config
    config_type = getattr(module, "Config", None)
    if config_type is not None and not isinstance(config, config_type):
        raise TypeError(f"`config` for {name} must be a {module.__name__}.Config (see "
                        f"make_config), got {type(config).__name__}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    result = module.run(config)
    seconds = time.perf_counter() - start
    # CPU time of all threads: on a busy machine the wall time says little about the cost;
    # on a quiet machine the wall time is about cpu_seconds / (the cores kept busy).
    cpu_seconds = time.process_time() - cpu_start
    if not isinstance(result, Result):
        raise TypeError(f"{name}.run must return a Result, got {type(result).__name__}")
    with _locked(out):
        _remove_stale(out, name)
        return _write_result(out, name, module, config, quick, (seconds, cpu_seconds),
                             result, plt)


def _write_result(out, name, module, config, quick, times, result, plt) -> dict[str, Any]:
    """Write ``result`` to a staging folder and rename it to ``out/name``; hold the lock.

    ``times`` is ``(wall seconds, CPU seconds)`` of ``run``.
    """
    seconds, cpu_seconds = times
    staging = _staging_dir(out, f".{name}")
    try:
        figures = []
        for stem, fig in result.figures.items():
            fig.savefig(staging / f"{stem}.png", dpi=110, bbox_inches="tight")
            plt.close(fig)
            figures.append(f"{stem}.png")
        arrays = {k: np.asarray(v) for k, v in result.arrays.items()}
        np.savez_compressed(staging / "data.npz", **arrays)
        files = {f: _sha256(staging / f) for f in ["data.npz", *figures]}
        summary = {
            "name": name,
            "description": module.DESCRIPTION,
            "source": _source(module),
            "parameters": _jsonable(config_fields(config)),
            "config_hash": config_hash(config),
            "quick": quick,
            "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu_seconds, 3),
            "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "figures": figures,
            **_jsonable(result.summary),
            "checks": [c.as_dict() for c in result.checks],
            "file_sha256": files,
        }
        write_atomic(staging / "summary.json", json.dumps(summary, indent=2).encode())
        final, trash = out / name, None
        if final.exists():
            trash = _staging_dir(out, f".{name}.old")
            final.rename(trash / name)
        try:
            staging.rename(final)
        except BaseException:
            if trash is not None:  # put the previous result back
                (trash / name).rename(final)
                shutil.rmtree(trash, ignore_errors=True)
            raise
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def _run_in_worker(task: tuple[str, str, bool, Any]) -> tuple[str, dict[str, Any]]:
    """``run_experiment`` in a worker process of ``reproduce(jobs > 1)``."""
    name, out, quick, config = task
    return name, run_experiment(name, out, quick=quick, config=config)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def _watch_parent(parent: int, period: float = 1.0) -> None:
    """End this worker when the process that started it is gone (killed, even by SIGKILL)."""
    while True:
        time.sleep(period)
        if os.getppid() != parent:
            os._exit(1)


def _init_worker(parent: int) -> None:
    """Set up a worker of ``reproduce(jobs > 1)``: never outlive the parent, clean up on TERM.

    ``SIGTERM`` (what ``Pool.terminate`` sends) raises ``SystemExit``, so an experiment
    being written removes its staging folder; a daemon thread exits the worker once its
    parent has died, so a killed ``reproduce`` leaves no experiment running on.
    """
    import signal
    import threading

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def default_jobs() -> int:
    """How many experiments ``python -m experiments reproduce`` runs at once by default.

    One per CPU core (at most 4) when JAX runs on the CPU only; 1 where an accelerator
    plugin is installed, since each process would claim most of the accelerator's memory.
    JAX is not imported: the choice reads ``JAX_PLATFORMS`` and the installed plugins.
    """
    import importlib.metadata as md

    platforms = os.environ.get("JAX_PLATFORMS", "")
    if platforms and set(platforms.lower().split(",")) <= {"cpu"}:
        accelerator = False
    else:
        names = {(d.metadata["Name"] or "").lower() for d in md.distributions()}
        accelerator = any(n.startswith(("jax-cuda", "jax_cuda", "jax-rocm", "libtpu"))
                          for n in names)
    return 1 if accelerator else max(1, min(os.cpu_count() or 1, 4))


#: Thread-count variables of the BLAS/LAPACK and OpenMP runtimes that workers inherit.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def worker_thread_limits() -> Iterator[None]:
    """One BLAS/LAPACK thread in the processes started inside (where the user set none).

    ``reproduce(jobs > 1)`` runs one experiment per core; left alone, every worker's
    OpenBLAS (the LAPACK behind jaxlib's QR, SVD and eigensolvers, and NumPy's) starts a
    thread per core too, whose threads spin while they wait for each other. With two
    workers on two cores a 256×256 QR then waits on threads that are not running: measured
    on the project's 2-core machine under load, `lyapunov_spectrum`'s QR loop ran 6-40×
    slower with OpenBLAS's default 2 threads than with 1 (see benchmarks/README.md, (f)
    under load). The variables are set for the processes spawned inside the block and
    restored afterwards; a value the user set is kept.
    """
    saved = {name: os.environ.get(name) for name in BLAS_THREAD_VARIABLES}
    for name, value in saved.items():
        if value is None:
            os.environ[name] = "1"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)


def reproduce(out: str | Path, *, quick: bool = False, force: bool = False,
              names: Sequence[str] | None = None, progress: bool = True,
              jobs: int = 1) -> Path:
    """Run every experiment (skipping finished ones unless ``force``) and write the report.

    ``jobs > 1`` runs that many experiments at once, each in its own process (``spawn``:
    a fresh JAX per process, so settings made with ``jax.config.update`` in this process
    do not reach them). Experiments are independent and each is written atomically under
    the folder's lock, so the results are the same as with ``jobs=1``; on a 2-core CPU the
    catalogue takes about half the wall time. The workers run one BLAS/LAPACK thread each
    (``worker_thread_limits``), so N workers do not start N² spinning threads.
    """
    from tqdm.auto import tqdm

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"`jobs` must be a positive integer, got {jobs!r}")
    out = Path(out)
    experiments = discover()
    names = list(experiments) if names is None else list(names)
    todo = []
    for name in names:
        config = make_config(get_experiment(name), quick=quick)
        if not force and is_complete(out, name, config):
            tqdm.write(f"[skip] {name}: already in {out / name}")
        else:
            todo.append((name, config))
    bar = tqdm(total=len(todo), desc="experiments", unit="exp", disable=not progress)

    def done(name, summary):
        n_pass = sum(c["passed"] for c in summary["checks"])
        bar.update(1)
        tqdm.write(f"[done] {name}: {n_pass}/{len(summary['checks'])} checks passed "
                   f"in {summary['seconds']:.1f} s ({summary['cpu_seconds']:.1f} s of CPU)")

    if jobs == 1 or len(todo) <= 1:
        for name, config in todo:
            bar.set_postfix_str(name)
            done(name, run_experiment(name, out, quick=quick, config=config))
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with worker_thread_limits():  # held while the pool respawns its workers
            tasks = [(name, str(out), quick, config) for name, config in todo]
            pool = ctx.Pool(min(jobs, len(todo)), initializer=_init_worker,
                            initargs=(os.getpid(),), maxtasksperchild=1)
            try:
                for name, summary in pool.imap_unordered(_run_in_worker, tasks):
                    done(name, summary)
                pool.close()
            except BaseException:
                # an error, Ctrl-C or (through the CLI's handler) SIGTERM: stop the experiments
                # still running instead of leaving them to run on without a parent
                pool.terminate()
                raise
            finally:
                pool.join()
    bar.close()
    return write_report(out, names)


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


def _md(x: Any) -> str:
    """Text for a markdown table cell or line: no raw HTML, no ``|`` or line breaks."""
    text = html.escape(_fmt(x), quote=False)
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())


def _md_code(text: str) -> str:
    """``text`` as an inline code span whose fence is longer than any backtick run in it."""
    text = " ".join(text.split())
    fence = "`" * (max((len(r) for r in re.findall("`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}"


def _h(x: Any) -> str:
    return html.escape(_fmt(x))


def _url(*parts: Any) -> str:
    return "/".join(urllib.parse.quote(str(p), safe="") for p in parts)


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def _source(module: types.ModuleType) -> str:
    """The first paragraph of an experiment's docstring: its claim and the paper it follows."""
    doc = (module.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def _requirement(c: dict[str, Any]) -> str:
    """What a check asks of its measured value: ``≈ 1 (± 0.01)``, ``≤ 0.2``, ``≥ 0``."""
    relation = c.get("relation")
    if relation not in ("≈", "≤", "≥"):  # a summary written before `relation` existed
        note = str(c.get("note", ""))
        relation = "≤" if "value <= reference" in note else "≥" if "value >= reference" in \
            note else "≈"
    if relation == "≈":
        return f"≈ {_fmt(c.get('reference'))} (± {_fmt(c.get('tolerance'))})"
    return f"{relation} {_fmt(c.get('reference'))}"


def _anchor(name: Any) -> str:
    """An HTML id / markdown anchor made of ``[a-z0-9-]`` only."""
    return re.sub(r"[^a-z0-9-]+", "-", str(name).lower()).strip("-") or "experiment"


def write_report(out: str | Path, names: Sequence[str] | None = None) -> Path:
    """``out/report.md`` and ``out/report.html``, organised per experiment.

    The top holds a table of contents (each experiment with its passed checks, linked to
    its section; an experiment with a failed check is marked) and, when any check
    failed, a table of the failed ones; then each experiment has its own section: the
    claim and its source (the first paragraph of the experiment's docstring), its
    figures, its checks (each with its relation: ``≈`` within a tolerance, ``≤``, ``≥``)
    and its parameters. One table of every check closes the report.

    Every value read from a ``summary.json`` is escaped (HTML in the page; HTML, ``|``
    and line breaks in the markdown), so a summary cannot inject markup or break a row.
    A check counts as passed only when its ``passed`` is ``true``.
    """
    out = Path(out)
    if names is None:
        names = [p.parent.name for p in sorted(out.glob("*/summary.json"))]
    summaries, unreadable = [], []
    for name in names:
        path = out / name / "summary.json"
        if path.is_file():
            summary = _read_summary(path)
            if summary is None:
                unreadable.append(name)
            else:
                summaries.append((name, summary))

    def checks_of(s):
        checks = s.get("checks")
        return [c if isinstance(c, dict) else {}
                for c in (checks if isinstance(checks, list) else [])]

    rows = [(s.get("name", name), c, c.get("passed") is True)
            for name, s in summaries for c in checks_of(s)]
    n_pass = sum(ok for _, _, ok in rows)
    headline = f"{len(summaries)} experiments, {n_pass}/{len(rows)} checks passed."
    md = ['<a id="top"></a>', "", "# jaxgrad: reproduced results", "", headline, ""]
    md += [f"**{_md(n)}: summary.json is unreadable.**" for n in unreadable]
    toc_md, toc_html = ["## Contents", ""], []
    for name, s in summaries:
        cs = checks_of(s)
        passed = sum(c.get("passed") is True for c in cs)
        label = f"{s.get('name', name)}: {passed}/{len(cs)} checks passed"
        toc_md.append(f"- [{_md(label)}](#{_anchor(name)})")
        bad = " class='failed'" if passed < len(cs) else ""
        toc_html.append(f'<li{bad}><a href="#{_anchor(name)}">{_h(label)}</a></li>')
    toc_md.append("- [All checks in one table](#all-checks)")
    toc_html.append('<li><a href="#all-checks">All checks in one table</a></li>')
    failed = [(e, c) for e, c, ok in rows if not ok]
    md += toc_md
    if failed:
        md += ["", "## Failed checks", "", "| experiment | check | measured | required |",
               "|---|---|---|---|"]
        md += [f"| [{_md(e)}](#{_anchor(e)}) | {_md(c.get('name'))} | {_md(c.get('value'))} | "
               f"{_md(_requirement(c))} |" for e, c in failed]
    md_all = ["", '<a id="all-checks"></a>', "", "## All checks", "",
              "| experiment | check | measured | required | passed | note |",
              "|---|---|---|---|---|---|"]
    md_all += [f"| {_md(e)} | {_md(c.get('name'))} | {_md(c.get('value'))} | "
               f"{_md(_requirement(c))} | {'yes' if ok else '**NO**'} | "
               f"{_md(c.get('note', ''))} |" for e, c, ok in rows]

    def check_rows_html(cs):
        return "".join(
            f"<tr><td>{_h(c.get('name'))}</td><td class='num'>{_h(c.get('value'))}</td>"
            f"<td class='num'>{_h(_requirement(c))}</td>"
            f"<td style='color:{'green' if c.get('passed') is True else 'red'}'>"
            f"{'yes' if c.get('passed') is True else 'NO'}</td>"
            f"<td class='note'>{_h(c.get('note', ''))}</td></tr>" for c in cs)

    head = ("<tr><th class='check'>check</th><th>measured</th><th>required</th>"
            "<th>passed</th><th class='note'>note</th></tr>")
    body = []
    for name, s in summaries:
        figures = s.get("figures") if isinstance(s.get("figures"), list) else []
        params = json.dumps(s.get("parameters"), default=str)
        source = s.get("source") or ""
        cs = checks_of(s)
        md += ["", f'<a id="{_anchor(name)}"></a>', "", f"## {_md(s.get('name', name))}", "",
               _md(s.get("description", "")), ""]
        if source:
            md += [f"**Claim and source:** {_md(source)}", ""]
        md += [f"![{_md(f)}]({_url(name, f)})" for f in figures]
        md += ["", "| check | measured | required | passed |", "|---|---|---|---|"]
        md += [f"| {_md(c.get('name'))} | {_md(c.get('value'))} | {_md(_requirement(c))} | "
               f"{'yes' if c.get('passed') is True else '**NO**'} |" for c in cs]
        md += ["", f"Parameters: {_md_code(params)}", "", "[back to the top](#top)"]
        body.append(
            f"<section id='{_anchor(name)}'><h2>{_h(s.get('name', name))}</h2>"
            f"<p>{_h(s.get('description', ''))}</p>"
            + (f"<p><b>Claim and source:</b> {_h(source)}</p>" if source else "")
            + "".join(f'<figure><a href="{html.escape(_url(name, f))}">'
                      f'<img src="{html.escape(_url(name, f))}" alt="{_h(f)}"></a>'
                      f"<figcaption>{_h(f)} (click for full size)</figcaption></figure>"
                      for f in figures)
            + f"<table class='checks'>{head}{check_rows_html(cs)}</table>"
            f"<details><summary>parameters</summary><code>{_h(params)}</code></details>"
            "<p><a href='#top'>back to the top</a></p></section>")
    table = "".join(
        f"<tr><td><a href='#{_anchor(e)}'>{_h(e)}</a></td><td>{_h(c.get('name'))}</td>"
        f"<td class='num'>{_h(c.get('value'))}</td><td class='num'>{_h(_requirement(c))}</td>"
        f"<td style='color:{'green' if ok else 'red'}'>"
        f"{'yes' if ok else 'NO'}</td></tr>" for e, c, ok in rows)
    failed_html = "" if not failed else (
        "<h2>Failed checks</h2><table class='checks'><tr><th>experiment</th><th>check</th>"
        "<th>measured</th><th>required</th></tr>" + "".join(
            f"<tr><td><a href='#{_anchor(e)}'>{_h(e)}</a></td><td>{_h(c.get('name'))}</td>"
            f"<td class='num'>{_h(c.get('value'))}</td>"
            f"<td class='num'>{_h(_requirement(c))}</td></tr>" for e, c in failed)
        + "</table>")
    warn = "".join(f"<p><b>{_h(n)}: summary.json is unreadable.</b></p>" for n in unreadable)
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>jaxgrad report</title>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<style>body{font-family:sans-serif;max-width:1000px;margin:auto;padding:0 1em;"
            "line-height:1.4}"
            "td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top;text-align:left}"
            "th{background:#f3f3f3}td.num{white-space:nowrap}"
            "table{border-collapse:collapse;margin:0.5em 0}table.checks{width:100%}"
            "th.check{width:32%}th.note{width:30%}td.note{font-size:85%;color:#555}"
            "figure{margin:0.8em 0;text-align:center}"
            "img{max-width:100%;height:auto;border:1px solid #eee}"
            "figcaption{font-size:80%;color:#777}"
            "details code{white-space:pre-wrap;word-break:break-word;font-size:85%}"
            "li.failed a{color:#b00;font-weight:bold}"
            "section{border-top:2px solid #ddd;margin-top:2em}"
            "</style></head><body><h1 id='top'>jaxgrad: reproduced results</h1>"
            f"<p>{_h(headline)}</p>{warn}<h2>Contents</h2><ul>{''.join(toc_html)}</ul>"
            f"{failed_html}{''.join(body)}"
            "<h2 id='all-checks'>All checks</h2><table class='checks'><tr><th>experiment</th>"
            "<th class='check'>check</th><th>measured</th>"
            f"<th>required</th><th>passed</th></tr>{table}</table>"
            "<p><a href='#top'>back to the top</a></p></body></html>")
    md += md_all
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        for stale in [*out.glob(".report.md.*"), *out.glob(".report.html.*")]:
            if stale.is_file():  # a killed writer's temporary file (writers hold the lock)
                stale.unlink(missing_ok=True)
        write_atomic(out / "report.md", "\n".join(md).encode() + b"\n")
        write_atomic(out / "report.html", page.encode())
    return out / "report.md"
