"""The experiment runner and every experiment of the catalogue (quick scale)."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments import _runner

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = list(_runner.discover())

@pytest.fixture(scope="session")
def catalogue(tmp_path_factory):
    """Every experiment at quick scale, through `reproduce`, once per test session."""
    out = tmp_path_factory.mktemp("results")
    report = _runner.reproduce(out, quick=True, progress=False)
    return out, report


def test_catalogue_is_not_empty_and_names_are_kebab_case():
    assert "activations" in EXPERIMENTS
    for name in EXPERIMENTS:
        assert name == name.lower() and "_" not in name and " " not in name


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_declares_its_contract(name):
    """A typed frozen `Config` whose defaults `make_config` returns, and `SUMMARY_KEYS`."""
    module = _runner.get_experiment(name)
    assert dataclasses.is_dataclass(module.Config)
    assert module.Config.__dataclass_params__.frozen
    assert _runner.make_config(module) == module.Config()
    for quick in (False, True):  # tuples, not lists (a dict field, e.g. a table, may stay)
        values = _runner.config_fields(_runner.make_config(module, quick=quick))
        assert not [k for k, v in values.items() if isinstance(v, list)], name
    keys = module.SUMMARY_KEYS
    assert isinstance(keys, tuple) and keys and all(isinstance(k, str) for k in keys)
    for stage in ("compute", "checks", "figures", "run"):
        assert callable(getattr(module, stage)), f"{name} has no {stage}"


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_outputs_and_checks(catalogue, name):
    out, _ = catalogue
    folder = out / name
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["name"] == name and summary["quick"] is True
    assert isinstance(summary["parameters"], dict) and summary["parameters"]
    assert summary["checks"], f"{name} has no checks"
    for check in summary["checks"]:
        assert set(check) >= {"name", "value", "reference", "tolerance", "passed"}
    failed = [c for c in summary["checks"] if not c["passed"]]
    assert not failed, f"{name}: failed checks {failed}"
    module = _runner.get_experiment(name)
    for key in module.SUMMARY_KEYS:
        assert key in summary, f"{name}: summary key {key!r} missing"
    assert summary["figures"], f"{name} made no figure"
    for fig in summary["figures"]:
        png = folder / fig
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    with np.load(folder / "data.npz") as data:
        assert data.files, f"{name} saved no data"
    assert not list(out.glob(f".{name}.*")), "staging folders must not survive"


@pytest.mark.slow
def test_report_has_every_check_and_figure(catalogue):
    out, report = catalogue
    text = report.read_text()
    html = (out / "report.html").read_text()
    for name in EXPERIMENTS:
        summary = json.loads((out / name / "summary.json").read_text())
        for check in summary["checks"]:
            # `|` in a check name is escaped as `\|` so the row keeps its cells
            assert f"| {name} | {_runner._md(check['name'])} |" in text
        for fig in summary["figures"]:
            assert f"({name}/{fig})" in text and f'src="{name}/{fig}"' in html


def test_resume_skips_finished_and_force_recomputes(tmp_path):
    _runner.reproduce(tmp_path, quick=True, names=["activations"], progress=False)
    summary = tmp_path / "activations" / "summary.json"
    first = summary.read_text()
    _runner.reproduce(tmp_path, quick=True, names=["activations"], progress=False)
    assert summary.read_text() == first, "a finished experiment must not be recomputed"
    _runner.reproduce(tmp_path, quick=True, names=["activations"], force=True, progress=False)
    assert json.loads(summary.read_text())["finished"] >= json.loads(first)["finished"]
    # another configuration (full scale) is not mistaken for the finished quick one
    assert not _runner.is_complete(tmp_path, "activations",
                                   _runner.make_config(_runner.get_experiment("activations")))


def test_interrupted_experiment_leaves_nothing_half_written(tmp_path, monkeypatch):
    module = _runner.get_experiment("activations")

    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _runner.run_experiment("activations", tmp_path, quick=True)
    assert not (tmp_path / "activations").exists()
    assert not list(tmp_path.iterdir())
    monkeypatch.undo()
    _runner.run_experiment("activations", tmp_path, quick=True)
    assert _runner.is_complete(tmp_path, "activations")


def test_failed_write_keeps_the_previous_result(tmp_path, monkeypatch):
    _runner.run_experiment("activations", tmp_path, quick=True)
    before = (tmp_path / "activations" / "summary.json").read_text()
    monkeypatch.setattr(_runner.np, "savez_compressed",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        _runner.run_experiment("activations", tmp_path, quick=True)
    assert (tmp_path / "activations" / "summary.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["activations"]


def test_checks():
    ok = _runner.check_close("x", 1.0005, 1.0, atol=1e-3)
    assert ok.passed and ok.tolerance == pytest.approx(1e-3)
    assert not _runner.check_close("x", float("nan"), 1.0, atol=1e9).passed
    assert not _runner.check_close("x", 1.1, 1.0, rtol=0.05).passed
    assert _runner.check_bound("y", 0.3, 0.5).passed
    assert not _runner.check_bound("y", 0.3, 0.5, kind=">=").passed
    with pytest.raises(ValueError, match="kind"):
        _runner.check_bound("y", 0.3, 0.5, kind="<")


def test_bad_names_and_config_keys():
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        _runner.get_experiment("nope")
    with pytest.raises(ValueError, match="unknown config key"):
        _runner.make_config(_runner.get_experiment("activations"), num_pointz=3)


def test_command_line(tmp_path):
    listing = subprocess.run([sys.executable, "-m", "experiments", "list"], cwd=ROOT,
                             capture_output=True, text=True, check=True)
    assert "activations" in listing.stdout
    bad = subprocess.run([sys.executable, "-m", "experiments", "run", "nope"], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown experiment" in bad.stderr
    ok = subprocess.run([sys.executable, "-m", "experiments", "run", "activations", "--quick",
                         "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "activations" / "activations.png").is_file()


def test_set_overrides_a_configuration_value(tmp_path):
    from experiments.__main__ import parse_overrides

    assert parse_overrides(["length=100", "tasks=[\"addition\"]", "name=abc"]) == {
        "length": 100, "tasks": ["addition"], "name": "abc"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["length"])
    run = [sys.executable, "-m", "experiments", "run", "activations", "--quick", "--out",
           str(tmp_path)]
    ok = subprocess.run(run + ["--set", "num_points=101"], cwd=ROOT, capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stderr
    summary = json.loads((tmp_path / "activations" / "summary.json").read_text())
    assert summary["parameters"]["num_points"] == 101
    bad = subprocess.run(run + ["--set", "num_pointz=101"], cwd=ROOT, capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "unknown config key" in bad.stderr
    malformed = subprocess.run(run + ["--set", "num_points"], cwd=ROOT, capture_output=True,
                               text=True)
    assert malformed.returncode == 2 and "KEY=VALUE" in malformed.stderr


def _measured(summary):
    return [(c["name"], c["value"]) for c in summary["checks"]]


@pytest.mark.slow
def test_parallel_reproduce_gives_the_serial_results(catalogue, tmp_path):
    """`jobs=2` runs experiments in spawned processes; the numbers are those of `jobs=1`."""
    out, _ = catalogue
    names = ["activations", "doya-loss-wall"]
    _runner.reproduce(tmp_path, quick=True, names=names, progress=False, jobs=2)
    for name in names:
        serial = json.loads((out / name / "summary.json").read_text())
        parallel = json.loads((tmp_path / name / "summary.json").read_text())
        assert _measured(parallel) == _measured(serial), name
        assert parallel["config_hash"] == serial["config_hash"]
    assert (tmp_path / "report.md").is_file()


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True, "2"])
def test_reproduce_refuses_bad_jobs(tmp_path, jobs):
    with pytest.raises(ValueError, match="`jobs`"):
        _runner.reproduce(tmp_path, quick=True, names=["activations"], progress=False,
                          jobs=jobs)


def test_command_line_refuses_bad_jobs(capsys):
    from experiments.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "--jobs", "0"])
    assert exc.value.code == 2 and "--jobs" in capsys.readouterr().err


def test_default_jobs_is_one_with_an_accelerator_plugin(monkeypatch):
    import importlib.metadata as md

    class Dist:
        def __init__(self, name):
            self.metadata = {"Name": name}

    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    monkeypatch.setattr(md, "distributions", lambda: [Dist("jax"), Dist("jax-cuda12-plugin")])
    assert _runner.default_jobs() == 1
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    assert _runner.default_jobs() >= 1
    monkeypatch.setattr(md, "distributions", lambda: [Dist("jax")])
    monkeypatch.delenv("JAX_PLATFORMS")
    assert 1 <= _runner.default_jobs() <= 4


def test_clipping_tasks_draws_success_rate_against_length():
    """At full scale (a task at several T) the Figure-7 panel plots each method's success
    rate from the summary, one line per method over the lengths run, and nothing else."""
    module = _runner.get_experiment("clipping-tasks")
    runs = (("temporal_order", 50, "paper"), ("temporal_order", 100, "paper"),
            ("temporal_order", 200, "paper"), ("addition", 50, "paper"))
    config = dataclasses.replace(module.Config(), runs=runs)
    labels = [f"temporal_order_T{t}_paper" for t in (50, 100, 200)] + ["addition"]
    rates = {"sgd": [0.2, 0.0, 0.0, 0.0], "sgd_clip": [0.6, 0.4, 0.0, 0.2],
             "sgd_clip_omega": [1.0, 0.8, 0.6, 0.4]}
    summary = {"success_rate": {m: dict(zip(labels, r)) for m, r in rates.items()},
               "first_success_update": {m: {lab: [None] * 5 for lab in labels} for m in rates},
               "updates_done": {m: {lab: 50_000 for lab in labels} for m in rates}}
    steps = np.arange(2000, 50_001, 2000)
    curves = {(lab, m): {"check_steps": steps, "check_error": np.full((steps.size, 5), 0.5)}
              for lab in labels for m in rates}
    figs = module.figures(config, _runner.Computed(summary, details={"curves": curves}))
    assert set(figs) == {"success_and_checks", "success_vs_length"}
    (ax,) = figs["success_vs_length"].axes  # addition ran at one length: no panel
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert len(lines) == 3
    for method, rate in rates.items():
        line = lines[module.LABELS[method]]
        assert list(line.get_xdata()) == [50, 100, 200]
        assert list(line.get_ydata()) == rate[:3]
    assert "T" in ax.get_xlabel() and "success rate" in ax.get_ylabel()
    one = dataclasses.replace(config, runs=runs[:1])  # its label is the task's name
    for table in summary.values():
        for per_run in table.values():
            per_run["temporal_order"] = per_run[labels[0]]
    curves |= {("temporal_order", m): curves[(labels[0], m)] for m in rates}
    assert set(module.figures(one, _runner.Computed(summary, details={"curves": curves}))) == {
        "success_and_checks"}


def test_clipping_tasks_chance_levels_match_their_closed_forms():
    """Each task's constant-output error rate, measured on 20,000 fresh sequences, lies
    within 5 binomial σ of the closed form the checks and figures set beside it."""
    module = _runner.get_experiment("clipping-tasks")
    assert set(module.CHANCE) == {"temporal_order", "temporal_order_3bit", "addition",
                                  "multiplication", "random_permutation",
                                  "noiseless_memorization"}
    n = 20_000
    for i, (name, closed) in enumerate(sorted(module.CHANCE.items())):
        task = module.get_task(name)
        rate = module._chance_error_rate(task, 50, jax.random.key(i), n)
        sigma = np.sqrt(closed * (1 - closed) / n)
        assert abs(rate - closed) <= 5 * sigma, (name, rate, closed)
    assert abs(module.CHANCE["multiplication"] - 0.2335) < 1e-4


def test_clipping_tasks_run_made_alone_is_the_run_inside_a_larger_plan():
    """A run's keys do not depend on its place in the plan: addition made alone gives the
    same per-seed results as addition made second, after temporal order (how the full
    scale's runs were made one at a time)."""
    module = _runner.get_experiment("clipping-tasks")
    q = "jaxgrad_init_lr0.1"
    both = (("temporal_order", 20, q), ("addition", 20, q))
    fields = ("final_error_rate", "first_success_update", "final_omega", "updates_done")
    results = []
    for runs in (both, both[1:]):
        config = _runner.make_config(module, quick=True, runs=runs, max_updates=100)
        summary = module.compute(config).summary
        results.append({f: {m: summary[f][m]["addition"] for m in module.METHODS}
                        for f in fields})
    assert results[0] == results[1]
    assert results[0]["updates_done"]["sgd"] == 100
