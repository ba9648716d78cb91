"""The shared experiment runner: discovery, atomic results, resume, and the report.

An experiment is a module ``experiments/<snake_name>.py`` that defines

    NAME = "kebab-name"              # what `python -m experiments run NAME` takes
    DESCRIPTION = "one line"
    DEFAULT_CONFIG = {...}           # JSON-serialisable parameters, CPU-sized default
    QUICK_CONFIG = {...}             # overrides for --quick (the tests use it)
    def run(config: dict) -> Result

and is found automatically (modules starting with ``_`` are not experiments). The runner
writes ``DIR/NAME/summary.json`` (parameters, key numbers, checks), ``DIR/NAME/data.npz``
and one PNG per figure. Every experiment is first written to a temporary folder and then
renamed into place, so a folder ``DIR/NAME`` with a ``summary.json`` is always complete;
``reproduce`` skips those (same configuration) unless ``force=True``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import html
import importlib
import json
import math
import pkgutil
import shutil
import tempfile
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxgrad._io import write_atomic

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
                 note or f"value {kind} reference")


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


def make_config(module: types.ModuleType, *, quick: bool = False, **overrides: Any) -> dict:
    """``DEFAULT_CONFIG`` with ``QUICK_CONFIG`` (if ``quick``) and ``overrides`` on top."""
    config = dict(module.DEFAULT_CONFIG)
    if quick:
        config.update(getattr(module, "QUICK_CONFIG", {}))
    unknown = set(overrides) - set(config)
    if unknown:
        raise ValueError(f"unknown config key(s) {sorted(unknown)} for {module.NAME}; "
                         f"known: {sorted(config)}")
    config.update(overrides)
    return config


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(_jsonable(config), sort_keys=True).encode()).hexdigest()[:16]


def is_complete(out: Path, name: str, config: dict | None = None) -> bool:
    """True when ``out/name/summary.json`` exists (and was made with ``config``)."""
    path = Path(out) / name / "summary.json"
    if not path.is_file():
        return False
    if config is None:
        return True
    try:
        return json.loads(path.read_text()).get("config_hash") == config_hash(config)
    except (OSError, json.JSONDecodeError):
        return False


def run_experiment(name: str, out: str | Path, *, quick: bool = False,
                   config: dict | None = None) -> dict[str, Any]:
    """Run one experiment and write its folder atomically; return the summary dict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    module = get_experiment(name)
    config = make_config(module, quick=quick) if config is None else config
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = module.run(config)
    seconds = time.perf_counter() - start
    if not isinstance(result, Result):
        raise TypeError(f"{name}.run must return a Result, got {type(result).__name__}")
    staging = Path(tempfile.mkdtemp(dir=out, prefix=f".{name}."))
    try:
        figures = []
        for stem, fig in result.figures.items():
            fig.savefig(staging / f"{stem}.png", dpi=110, bbox_inches="tight")
            plt.close(fig)
            figures.append(f"{stem}.png")
        arrays = {k: np.asarray(v) for k, v in result.arrays.items()}
        np.savez_compressed(staging / "data.npz", **arrays)
        summary = {
            "name": name,
            "description": module.DESCRIPTION,
            "parameters": _jsonable(config),
            "config_hash": config_hash(config),
            "quick": quick,
            "seconds": round(seconds, 3),
            "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "figures": figures,
            **_jsonable(result.summary),
            "checks": [c.as_dict() for c in result.checks],
        }
        write_atomic(staging / "summary.json", json.dumps(summary, indent=2).encode())
        final = out / name
        if final.exists():
            trash = Path(tempfile.mkdtemp(dir=out, prefix=f".{name}.old."))
            final.rename(trash / name)
            staging.rename(final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def reproduce(out: str | Path, *, quick: bool = False, force: bool = False,
              names: Sequence[str] | None = None, progress: bool = True) -> Path:
    """Run every experiment (skipping finished ones unless ``force``) and write the report."""
    from tqdm.auto import tqdm

    out = Path(out)
    experiments = discover()
    names = list(experiments) if names is None else list(names)
    bar = tqdm(names, desc="experiments", unit="exp", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        config = make_config(get_experiment(name), quick=quick)
        if not force and is_complete(out, name, config):
            tqdm.write(f"[skip] {name}: already in {out / name}")
            continue
        summary = run_experiment(name, out, quick=quick, config=config)
        n_pass = sum(c["passed"] for c in summary["checks"])
        tqdm.write(f"[done] {name}: {n_pass}/{len(summary['checks'])} checks passed "
                   f"in {summary['seconds']:.1f} s")
    return write_report(out, names)


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


def write_report(out: str | Path, names: Sequence[str] | None = None) -> Path:
    """``out/report.md`` and ``out/report.html``: every figure and one table of all checks."""
    out = Path(out)
    if names is None:
        names = [p.parent.name for p in sorted(out.glob("*/summary.json"))]
    summaries = []
    for name in names:
        path = out / name / "summary.json"
        if path.is_file():
            summaries.append(json.loads(path.read_text()))
    rows = [(s["name"], c) for s in summaries for c in s["checks"]]
    n_pass = sum(c["passed"] for _, c in rows)
    md = ["# jaxgrad: reproduced results", "",
          f"{len(summaries)} experiments, {n_pass}/{len(rows)} checks passed.", "",
          "## All checks", "",
          "| experiment | check | measured | reference | tolerance | passed |",
          "|---|---|---|---|---|---|"]
    md += [f"| {e} | {c['name']} | {_fmt(c['value'])} | {_fmt(c['reference'])} | "
           f"{_fmt(c['tolerance'])} | {'yes' if c['passed'] else '**NO**'} |" for e, c in rows]
    body = []
    for s in summaries:
        md += ["", f"## {s['name']}", "", s["description"], "",
               f"Parameters: `{json.dumps(s['parameters'])}`", ""]
        md += [f"![{f}]({s['name']}/{f})" for f in s["figures"]]
        body.append(f"<h2>{html.escape(s['name'])}</h2><p>{html.escape(s['description'])}</p>"
                    f"<p><code>{html.escape(json.dumps(s['parameters']))}</code></p>"
                    + "".join(f'<img src="{html.escape(s["name"])}/{html.escape(f)}" '
                              f'style="max-width:100%">' for f in s["figures"]))
    table = "".join(
        f"<tr><td>{html.escape(e)}</td><td>{html.escape(c['name'])}</td>"
        f"<td>{_fmt(c['value'])}</td><td>{_fmt(c['reference'])}</td>"
        f"<td>{_fmt(c['tolerance'])}</td>"
        f"<td style='color:{'green' if c['passed'] else 'red'}'>"
        f"{'yes' if c['passed'] else 'NO'}</td></tr>" for e, c in rows)
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>jaxgrad report</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
            "td,th{border:1px solid #ccc;padding:2px 6px}table{border-collapse:collapse}"
            "</style></head><body><h1>jaxgrad: reproduced results</h1>"
            f"<p>{len(summaries)} experiments, {n_pass}/{len(rows)} checks passed.</p>"
            "<table><tr><th>experiment</th><th>check</th><th>measured</th><th>reference</th>"
            f"<th>tolerance</th><th>passed</th></tr>{table}</table>{''.join(body)}"
            "</body></html>")
    write_atomic(out / "report.md", "\n".join(md).encode() + b"\n")
    write_atomic(out / "report.html", page.encode())
    return out / "report.md"
