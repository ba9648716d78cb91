"""The experiment runner on a tiny fake experiment: staging, locking, checksums, modes,
report escaping, and the command line's refusals (no experiment of the catalogue runs)."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import pathlib
import re
import stat
import threading
import types

import numpy as np
import pytest

from experiments import __main__ as cli
from experiments import _runner
from jaxgrad.io import write_atomic


@dataclasses.dataclass(frozen=True)
class FakeConfig:
    """The fake experiment's parameters (the contract's ``Config``)."""

    num_points: int = 3
    scale: float = 1.0
    names: tuple[str, ...] = ("a",)
    flag: bool = False
    seed: int = 0
    label: str = "x"


#: The same defaults as a module not yet converted declares them.
LEGACY_DEFAULTS = {"num_points": 3, "scale": 1.0, "names": ["a"], "flag": False, "seed": 0,
                   "label": "x"}


def _fake_module(name="fake", figure=False, run=None, legacy=False):
    """A fake experiment: ``Config``/``compute``/``checks``/``figures`` (or, with
    ``legacy``, a ``DEFAULT_CONFIG`` dict and ``run(config: dict)``)."""
    module = types.ModuleType(f"experiments.{name}")
    module.NAME = name
    module.DESCRIPTION = "a fake experiment"
    module.QUICK_CONFIG = {}
    module.SUMMARY_KEYS = ("points",)
    get = (lambda c, k: c[k]) if legacy else getattr

    def compute(config):
        n = get(config, "num_points")
        return _runner.Computed({"points": n}, {"x": np.arange(n) * get(config, "scale")})

    def checks(config, computed):
        return [_runner.check_close("value", 1.0, 1.0, atol=0.1)]

    def figures(config, computed):
        if not figure:
            return {}
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(1, 1))
        ax.plot([0, 1])
        return {"curve": fig}

    def default_run(config):
        return _runner.staged_run(config, compute, checks, figures)

    if legacy:
        module.DEFAULT_CONFIG = dict(LEGACY_DEFAULTS)
    else:
        module.Config = FakeConfig
        module.compute, module.checks, module.figures = compute, checks, figures
    module.run = run or default_run
    return module


@pytest.fixture
def fake(monkeypatch):
    """`discover` finds only the fake experiment(s)."""
    modules = {"fake": _fake_module(), "fig": _fake_module("fig", figure=True)}
    monkeypatch.setattr(_runner, "discover", lambda: modules)
    return modules


def test_stale_staging_folders_of_a_killed_run_are_removed(tmp_path, fake):
    stale = [tmp_path / ".fake.4242.abcd1234", tmp_path / ".fake.k3j4h5g6",
             tmp_path / ".fake.old.4242.zz9_x"]
    other = tmp_path / ".fig.4242.abcd1234"
    for folder in [*stale, other]:
        folder.mkdir()
        (folder / "data.npz").write_bytes(b"half")
    _runner.run_experiment("fake", tmp_path)
    assert not any(p.exists() for p in stale)
    assert other.exists(), "another experiment's folders are left to its own run"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fig.4242.abcd1234", "fake"]
    assert _runner.is_complete(tmp_path, "fake")
    (tmp_path / ".report.md.x1y2z3").write_bytes(b"half a report")
    _runner.write_report(tmp_path)
    assert not (tmp_path / ".report.md.x1y2z3").exists()


def test_concurrent_runs_into_one_folder_take_turns(tmp_path, fake, monkeypatch):
    """Two runs write and rename at the same moment: the lock makes them take turns."""
    both_looked = threading.Barrier(2, timeout=1.0)
    exists = pathlib.Path.exists

    def exists_then_wait(self, *args, **kwargs):
        found = exists(self, *args, **kwargs)
        if self == tmp_path / "fake":
            # Without the lock both writers look for `fake` together, both find none
            # and both rename their staging folder onto it: one of them fails. With
            # the lock the first waits out the timeout alone and the second never waits.
            try:
                both_looked.wait()
            except threading.BrokenBarrierError:
                pass
        return found

    monkeypatch.setattr(pathlib.Path, "exists", exists_then_wait)
    errors = []

    def one_run():
        try:
            _runner.run_experiment("fake", tmp_path)
        except BaseException as err:  # noqa: BLE001 - collected for the assertion
            errors.append(err)

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _runner.is_complete(tmp_path, "fake")
    assert [p.name for p in tmp_path.iterdir()] == ["fake"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "no-checksums"])
@pytest.mark.parametrize("target", ["data.npz", "curve.png"])
def test_damaged_result_is_not_complete_and_is_rerun(tmp_path, fake, damage, target):
    _runner.run_experiment("fig", tmp_path)
    config = _runner.make_config(fake["fig"])
    assert _runner.is_complete(tmp_path, "fig", config)
    folder = tmp_path / "fig"
    path = folder / target
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-10])
    elif damage == "flip":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "delete":
        path.unlink()
    else:  # a summary without checksums cannot vouch for its files
        summary = json.loads((folder / "summary.json").read_text())
        del summary["file_sha256"]
        (folder / "summary.json").write_text(json.dumps(summary))
    assert not _runner.is_complete(tmp_path, "fig", config)
    assert not _runner.is_complete(tmp_path, "fig")
    _runner.reproduce(tmp_path, names=["fig"], progress=False)
    assert _runner.is_complete(tmp_path, "fig", config)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_results_follow_the_umask(tmp_path, fake, umask):
    old = os.umask(umask)
    try:
        _runner.run_experiment("fig", tmp_path)
        _runner.write_report(tmp_path)
        written = write_atomic(tmp_path / "direct.bin", b"x")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "fig") == 0o777 & ~umask
    for file in ["fig/summary.json", "fig/data.npz", "fig/curve.png", "report.md",
                 "report.html"]:
        assert mode(tmp_path / file) == 0o666 & ~umask, file
    assert mode(written) == 0o666 & ~umask


def test_report_escapes_a_crafted_summary(tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    script = "<script>alert(1)</script>"
    summary = {
        "name": f"evil{script}", "description": f"<img src=x onerror=alert(1)>{script}",
        "parameters": {"p": script}, "figures": ['a" onerror="alert(1).png'],
        "checks": [
            {"name": f"a | b {script}", "value": script, "reference": 1.0,
             "tolerance": "<b>", "passed": "<script>"},
            {"name": "max |x| \\| y\nz", "value": 1.0, "reference": 1.0, "tolerance": 0.0,
             "passed": True},
        ],
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    report = _runner.write_report(tmp_path)
    page = (tmp_path / "report.html").read_text()
    text = report.read_text()
    # (a code span shows its text literally: `<script>` there is not markup)
    for doc in (page, re.sub(r"(`+) .*? \1", "", text)):
        assert "<script" not in doc and "<img src=x" not in doc and "<b>" not in doc
    assert 'onerror="alert' not in page
    assert "&lt;script&gt;" in page
    # a crafted `passed` is not a pass; every row keeps its six cells
    assert "1/2 checks passed" in page and "1/2 checks passed" in text
    rows = [line for line in text.splitlines() if line.startswith("| evil")]
    assert len(rows) == 2
    for row in rows:
        cells = row.replace("\\|", "").split("|")
        assert len(cells) == 8, row  # 6 cells between 7 bars
    assert "| max \\|x\\| \\\\\\| y z |" in text


def test_report_row_of_a_check_name_with_a_bar(tmp_path, fake, monkeypatch):
    def run(config):
        return _runner.Result({}, [_runner.check_bound("max |b(x*) - b|", 0.1, 1.0)])

    monkeypatch.setitem(fake, "bar", _fake_module("bar", run=run))
    _runner.run_experiment("bar", tmp_path)
    text = _runner.write_report(tmp_path).read_text()
    assert "| bar | max \\|b(x*) - b\\| |" in text


# ------------------------------------------------------------------ configuration values


@pytest.mark.parametrize(
    ("key", "value", "error", "match"),
    [
        ("scale", "abc", TypeError, r"`scale` must be a number .*got \"abc\""),
        ("scale", True, TypeError, "`scale` must be a number"),
        ("scale", float("nan"), ValueError, "`scale` must be a finite number"),
        ("num_points", 0, ValueError, "`num_points` counts something and must be >= 1"),
        ("num_points", -3, ValueError, "`num_points`"),
        ("num_points", 2.5, TypeError, "`num_points` must be an integer"),
        ("names", "a", TypeError, "`names` must be a list"),
        ("names", ["a", 3], TypeError, r"`names\[1\]` must be a string"),
        ("flag", 1, TypeError, "`flag` must be true or false"),
        ("label", 3, TypeError, "`label` must be a string"),
    ],
)
def test_bad_config_values_are_refused_by_name(fake, key, value, error, match):
    with pytest.raises(error, match=match):
        _runner.make_config(fake["fake"], **{key: value})


def test_good_config_values_pass_and_ints_become_floats(fake):
    config = _runner.make_config(fake["fake"], scale=2, num_points=5, names=["b", "c"],
                                 flag=True, seed=-1, label="y")
    assert isinstance(config, FakeConfig)
    assert config.scale == 2.0 and isinstance(config.scale, float)
    assert config.num_points == 5 and config.names == ("b", "c")  # JSON lists become tuples
    hash(config)  # frozen and hashable
    assert _runner.make_config(fake["fake"]) == FakeConfig()


def test_make_config_applies_quick_then_overrides_and_refuses_unknown_keys(fake, monkeypatch):
    module = fake["fake"]
    monkeypatch.setattr(module, "QUICK_CONFIG", {"num_points": 2, "names": ["q"]})
    assert _runner.make_config(module, quick=True) == FakeConfig(num_points=2, names=("q",))
    assert _runner.make_config(module, quick=True, num_points=7).num_points == 7
    assert _runner.make_config(module).num_points == 3
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['num_pointz'\]"):
        _runner.make_config(module, num_pointz=3)
    monkeypatch.setattr(module, "QUICK_CONFIG", {"typo": 1})
    with pytest.raises(ValueError, match="unknown config key.*typo"):
        _runner.make_config(module, quick=True)


def test_a_legacy_dict_experiment_still_runs(tmp_path, fake):
    legacy = _fake_module("old", legacy=True)
    config = _runner.make_config(legacy, scale=2, names=["b"])
    assert config == {**LEGACY_DEFAULTS, "scale": 2.0, "names": ["b"]}
    fake["old"] = legacy
    summary = _runner.run_experiment("old", tmp_path, config=config)
    assert summary["parameters"] == config and summary["points"] == 3


@pytest.mark.parametrize("overrides", [{}, {"scale": 2, "names": ["b", "c"], "seed": -1}])
def test_parameters_and_config_hash_are_those_of_the_dict_config(tmp_path, fake, overrides):
    """A Config writes the bytes a DEFAULT_CONFIG dict with the same values wrote, so a
    results folder from before the conversion still counts as complete."""
    fake["old"] = _fake_module("old", legacy=True)
    old = _runner.make_config(fake["old"], **overrides)
    new = _runner.make_config(fake["fake"], **overrides)
    assert _runner.config_hash(new) == _runner.config_hash(old)
    old_summary = _runner.run_experiment("old", tmp_path / "old", config=old)
    new_summary = _runner.run_experiment("fake", tmp_path / "new", config=new)
    dump = lambda s: json.dumps(s["parameters"], indent=2)  # noqa: E731
    assert dump(new_summary) == dump(old_summary)
    assert list(new_summary["parameters"]) == list(LEGACY_DEFAULTS)  # field order kept
    assert new_summary["config_hash"] == old_summary["config_hash"]
    # the folder the dict-config module wrote is complete for the Config module
    (tmp_path / "old" / "old").rename(tmp_path / "old" / "fake")
    assert _runner.is_complete(tmp_path / "old", "fake", new)
    assert not _runner.is_complete(tmp_path / "old", "fake",
                                   dataclasses.replace(new, num_points=4))


def test_config_hash_is_unchanged_from_the_dict_runner():
    """The value the runner wrote before `Config` existed (a guard on the JSON it hashes)."""
    assert _runner.config_hash(FakeConfig()) == "57e441c86f21f214"
    assert _runner.config_hash(LEGACY_DEFAULTS) == "57e441c86f21f214"


def test_staged_run_and_refusals(tmp_path, fake):
    config = FakeConfig(num_points=4)
    result = fake["fig"].run(config)
    assert result.summary == {"points": 4} and list(result.figures) == ["curve"]
    assert result.arrays["x"].shape == (4,) and result.checks[0].passed
    with pytest.raises(TypeError, match="`compute` must return a Computed"):
        _runner.staged_run(config, lambda c: {"points": 1}, lambda c, r: [], lambda c, r: {})
    with pytest.raises(TypeError, match=r"`config` for fake must be a experiments.fake.Config"):
        _runner.run_experiment("fake", tmp_path, config=dict(LEGACY_DEFAULTS))
    assert not list(tmp_path.iterdir())


def test_help_lists_config_fields_of_a_config_class(tmp_path, monkeypatch):
    (tmp_path / "__main__.py").write_text("")
    (tmp_path / "toy.py").write_text(
        'NAME = "toy"\nDESCRIPTION = "a toy"\n\nclass Config:\n    zeta: int = 1\n'
        '    alpha: tuple[float, ...] = (1.0,)\n')
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "__main__.py"))
    assert cli._catalogue() == [("toy", "a toy", ["alpha", "zeta"])]


def _cli(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    return info.value.code, capsys.readouterr()


def test_command_line_refuses_a_bad_value_by_name(tmp_path, monkeypatch, capsys):
    activations = importlib.import_module("experiments.activations")
    monkeypatch.setattr(_runner, "discover", lambda: {"activations": activations})
    code, out = _cli(["run", "activations", "--out", str(tmp_path), "--set", "x_min=abc"],
                     capsys)
    assert code == 2 and "`x_min`" in out.err and "Traceback" not in out.err
    code, out = _cli(["run", "activations", "--out", str(tmp_path), "--set", "num_points=0"],
                     capsys)
    assert code == 2 and "`num_points`" in out.err
    assert not list(tmp_path.iterdir())


def test_command_line_reports_a_value_the_experiment_refuses(tmp_path, fake, monkeypatch,
                                                             capsys):
    def run(config):
        raise ValueError("labels must be one of 'x', 'y'")

    monkeypatch.setitem(fake, "fake", _fake_module(run=run))
    code, out = _cli(["run", "fake", "--out", str(tmp_path), "--set", "label=z"], capsys)
    assert code == 2 and "label=\"z\"" in out.err and "must be one of" in out.err
    with pytest.raises(ValueError, match="must be one of"):  # no --set: a plain error
        cli.main(["run", "fake", "--out", str(tmp_path)])


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["reproduce", "--help"],
                                  ["list", "--help"]])
def test_help_has_no_rst_markup_and_lists_options_and_experiments(argv, capsys):
    code, out = _cli(argv, capsys)
    assert code == 0
    assert "``" not in out.out
    assert "activations" in out.out and "mlp-depth-gradients" in out.out
    if argv[0] == "--help":
        assert "--set KEY=VALUE" in out.out and "--force" in out.out
    if argv[0] == "run":
        assert "--set KEY=VALUE" in out.out and "x_min" in out.out


# ------------------------------------------------------------------ report layout


def test_report_is_organised_per_experiment_with_each_checks_relation(tmp_path, fake,
                                                                      monkeypatch):
    def run(config):
        return _runner.Result({}, [
            _runner.check_bound("an upper bound", 0.102, 0.2),
            _runner.check_bound("a lower bound", 3.0, 2.0, kind=">="),
            _runner.check_close("a closed form", 1.004, 1.0, atol=0.01),
        ])

    module = _fake_module("rel", run=run)
    module.__doc__ = "The claim (Someone et al. 2013, eq. 7).\n\nDetails that are not shown."
    monkeypatch.setitem(fake, "rel", module)
    _runner.run_experiment("rel", tmp_path)
    _runner.run_experiment("fake", tmp_path)
    text = _runner.write_report(tmp_path).read_text()
    page = (tmp_path / "report.html").read_text()
    # a bound reads as a bound, not as "reference 0.2, tolerance 0"
    assert "| 0.102 | ≤ 0.2 | yes |" in text and "| 3 | ≥ 2 | yes |" in text
    assert "| 1.004 | ≈ 1 (± 0.01) | yes |" in text
    assert "<td class='num'>≤ 0.2</td>" in page
    # contents with anchors, one section per experiment holding its claim and its checks
    assert "- [rel: 3/3 checks passed](#rel)" in text and "(#fake)" in text
    assert "<section id='rel'>" in page and "href=\"#rel\"" in page
    start = page.index("<section id='rel'>")
    section = page[start:page.index("</section>", start)]
    assert "The claim (Someone et al. 2013, eq. 7)." in section
    assert "Details that are not shown" not in section
    assert section.count("<tr>") == 4  # header and three checks


def test_report_reads_summaries_written_before_relations_existed(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    checks = [{"name": "b", "value": 0.1, "reference": 0.2, "tolerance": 0.0, "passed": True,
               "note": "value <= reference"},
              {"name": "c", "value": 1.0, "reference": 1.0, "tolerance": 0.1, "passed": True}]
    (folder / "summary.json").write_text(json.dumps({"name": "old", "checks": checks}))
    text = _runner.write_report(tmp_path).read_text()
    assert "| 0.1 | ≤ 0.2 | yes |" in text and "| 1 | ≈ 1 (± 0.1) | yes |" in text


def test_summary_records_wall_and_cpu_seconds(tmp_path, fake):
    """Each summary says what its run cost: wall seconds and the CPU seconds of all threads
    (on a busy machine the wall time alone says little)."""
    summary = _runner.run_experiment("fake", tmp_path)
    assert summary["seconds"] >= 0.0 and summary["cpu_seconds"] >= 0.0
    on_disk = json.loads((tmp_path / "fake" / "summary.json").read_text())
    assert on_disk["cpu_seconds"] == summary["cpu_seconds"]


def test_report_lists_failed_checks_first_and_every_check_last(tmp_path, fake, monkeypatch):
    def run(config):
        return _runner.Result({}, [_runner.check_bound("kept", 0.1, 0.2),
                                   _runner.check_close("missed", 2.0, 1.0, atol=0.1)])

    monkeypatch.setitem(fake, "mixed", _fake_module("mixed", run=run))
    _runner.run_experiment("mixed", tmp_path)
    _runner.run_experiment("fake", tmp_path)
    text = _runner.write_report(tmp_path).read_text()
    page = (tmp_path / "report.html").read_text()
    for doc, contents, failed, section, every in (
            (text, "## Contents", "## Failed checks", '<a id="mixed"></a>', "## All checks"),
            (page, "<h2>Contents</h2>", "<h2>Failed checks</h2>", "<section id='mixed'>",
             "<h2 id='all-checks'>All checks</h2>")):
        # contents, then the failed checks, then the sections, then the table of all checks
        assert doc.index(contents) < doc.index(failed) < doc.index(section) < doc.index(every)
        failed_table = doc[doc.index(failed):doc.index(section)]
        assert "missed" in failed_table and "kept" not in failed_table
        assert "#mixed" in failed_table and "#all-checks" in doc
    assert "<li class='failed'><a href=\"#mixed\">mixed: 1/2 checks passed</a>" in page
    assert '<a id="top"></a>' in text and "[back to the top](#top)" in text
    # no failed check, no table of failed checks
    _runner.write_report(tmp_path, ["fake"])
    assert "Failed checks" not in (tmp_path / "report.html").read_text()
    assert "Failed checks" not in (tmp_path / "report.md").read_text()


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (read from /proc)."""
    found = set()
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (pathlib.Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1]
    except OSError:
        return False
    return state.split()[0] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not pathlib.Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("how", ["sigterm-cli", "sigkill"])
def test_a_stopped_reproduce_leaves_no_worker_running(tmp_path, how):
    """`reproduce --jobs 2` killed mid-run: its spawned workers end too, instead of
    running their experiments on without a parent (SIGTERM through the command line's
    handler terminates the pool; after SIGKILL each worker notices its parent is gone)."""
    import signal
    import subprocess
    import sys
    import time

    root = pathlib.Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    cmd = [sys.executable, "-m", "experiments", "reproduce", "--out", str(tmp_path / "out"),
           "--quick", "--jobs", "2"]
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            # the pool's two workers (the spawn machinery adds a resource tracker)
            workers = {c for c in _children(proc.pid)
                       if b"spawn_main" in (pathlib.Path("/proc") / str(c) /
                                            "cmdline").read_bytes()}
            if len(workers) >= 2:
                break
            time.sleep(0.2)
        assert len(workers) >= 2, "reproduce never started its workers"
        time.sleep(2.0)  # the workers are importing jax / running experiments
        proc.send_signal(signal.SIGTERM if how == "sigterm-cli" else signal.SIGKILL)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "a worker outlived reproduce"
        if how == "sigterm-cli":
            assert proc.returncode == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
        for w in workers:
            with contextlib.suppress(OSError):
                os.kill(w, signal.SIGKILL)


def test_worker_thread_limits_sets_one_blas_thread_and_keeps_user_values(monkeypatch):
    """Workers of reproduce(jobs > 1) get one BLAS thread unless the user chose."""
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    with _runner.worker_thread_limits():
        assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
        assert os.environ["MKL_NUM_THREADS"] == "1"
        assert os.environ["OMP_NUM_THREADS"] == "3"
    assert "OPENBLAS_NUM_THREADS" not in os.environ and "MKL_NUM_THREADS" not in os.environ
    assert os.environ["OMP_NUM_THREADS"] == "3"
