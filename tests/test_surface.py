"""The public surface of jaxgrad 0.2: subpackage faces, a curated top level, deprecations.

- every subpackage (and ``systems``, ``flows``, ``io``) has a face: an ``__all__`` whose names
  all resolve, each in one face only, result types in the face of their function;
- the top level is the subpackages as modules plus the curated ``__all__``;
- a name that moved still works from the top level, with a ``DeprecationWarning`` naming
  its new place;
- nothing in the repository (but this file) uses a moved name from the top level.

This file is the one place that uses deprecated names on purpose.
"""

import inspect
import json
import re
import warnings
from pathlib import Path

import pytest

import jaxgrad

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("systems", "flows", "models", "analysis", "landscape", "train", "io")

CURATED = [
    # systems and flows
    "autonomous", "vector_field", "discretize", "iterate", "integrate",
    # models
    "unroll", "init_pascanu", "pascanu_step", "DoyaParams", "doya_step", "RateParams",
    "init_rate", "rate_step", "init_lstm", "lstm_step", "init_gru", "gru_step", "MLPConfig",
    "init_mlp", "mlp_apply",
    # analysis
    "jacobian_product_norms", "fit_log_rate", "spectral_radius", "mlp_gradient_flow",
    "lyapunov_spectrum", "chi_1", "fixed_points", "periodic_orbits", "slow_points",
    "continue_branch", "locate_bifurcation", "hessian_eigenvalues", "hessian_trace",
    # landscape
    "scan_landscape", "Direction", "find_cliffs", "sweep",
    # train
    "train_steps", "fit", "init_train_state", "get_task",
]


def _faces():
    return {package: getattr(jaxgrad, package) for package in SUBPACKAGES}


def _home() -> dict[str, str]:
    return {name: package for package, face in _faces().items() for name in face.__all__}


# --------------------------------------------------------------------------- (a) the faces


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_face_names_resolve(package):
    face = getattr(jaxgrad, package)
    assert inspect.ismodule(face)
    names = face.__all__
    assert len(names) == len(set(names)), f"duplicates in jaxgrad.{package}.__all__"
    missing = [name for name in names if not hasattr(face, name)]
    assert not missing, f"jaxgrad.{package}.__all__ names what it lacks: {missing}"
    private = [name for name in names if name.startswith("_")]
    assert not private


@pytest.mark.parametrize("package", ["models", "analysis", "landscape", "train"])
def test_a_subpackage_binds_only_its_face(package):
    """A name imported into ``jaxgrad/<package>/__init__.py`` is in its ``__all__`` (a new
    public name is added to both); its submodules are the other names it holds."""
    face = getattr(jaxgrad, package)
    extra = sorted(name for name, obj in vars(face).items()
                   if not name.startswith("_") and not inspect.ismodule(obj)
                   and name not in face.__all__)
    assert not extra, f"jaxgrad.{package} binds names missing from its __all__: {extra}"


def test_a_name_lives_in_one_face():
    seen, twice = {}, []
    for package, face in _faces().items():
        for name in face.__all__:
            if name in seen:
                twice.append(f"{name}: jaxgrad.{seen[name]} and jaxgrad.{package}")
            seen[name] = package
    assert not twice, twice


@pytest.mark.parametrize("package", ["models", "analysis", "landscape", "train"])
def test_no_module_shares_a_name_with_a_face_name(package):
    """``jaxgrad.analysis.fixed_points`` must be one thing: a module named like a function
    of its face is hidden by it (``import jaxgrad.analysis.X as m`` would give the function)."""
    import importlib
    import pkgutil

    face = importlib.import_module(f"jaxgrad.{package}")
    modules = {m.name for m in pkgutil.iter_modules(face.__path__)}
    assert not modules & set(face.__all__), sorted(modules & set(face.__all__))


def test_result_types_live_with_their_function():
    """A function's return annotation names jaxgrad types of its own face only."""
    home, wrong = _home(), []
    for package, face in _faces().items():
        for name in face.__all__:
            obj = getattr(face, name)
            if not inspect.isfunction(obj):
                continue
            ann = obj.__annotations__.get("return", "")
            ann = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
            for ident in re.findall(r"\b[A-Z]\w*\b", ann):
                if ident in home and home[ident] != package:
                    wrong.append(f"jaxgrad.{package}.{name} -> {ident} (in jaxgrad.{home[ident]})")
    assert not wrong, wrong


# Every public name of jaxgrad 0.1's top level (jaxgrad/__init__.py before the 0.2 surface).
OLD_TOP_LEVEL = """
    ACTIVATIONS activation_derivative adding_problem autonomous autonomous_inputs Basins
    basins BatchSource BifurcationPoint BogdanovTakensPoint Branch chi_1 Cliffs
    continue_branch CriticalPoint critical_sigma_w2 CuspPoint CycleBranch cycle_branch
    c_map Dataset DepthScales depth_scales Direction discretize DoyaParams
    doya_fixed_point_sensitivity doya_integrate doya_stable_branch_b doya_step
    doya_vector_field entropy_rate filter_normalized_direction FinalStateSensitivities
    final_state_sensitivities find_cliffs fit fit_log_rate FixedPoints FixedPoints1D
    fixed_batches fixed_points fixed_points_1d floss FlossingDiverged FlossingTrace
    flossing_loss flossing_regularizer FlowSolution FoldCurve fold_curve
    gaussian_expectation GeneralizedHopfPoint get_activation get_initializer get_task
    GRUParams gru_step HessianEigen HessianTrace hessian_eigenvalues
    hessian_spectral_density hessian_trace HopfCurve hopf_curve HysteresisSweep
    hysteresis_sweep INITIALIZERS init_gru init_lstm init_mlp init_pascanu init_rate
    init_train_state integrate IntegrationError integrator_step iterate
    JacobianProductNorms jacobian_product_norms kaplan_yorke_dimension LandscapeScan
    leaf_names LimitCycle limit_cycle line_direction load_digits load_mnist
    locate_bifurcation LOSSES LOSS_OF_STABILITY_LABELS LSTMParams LSTMState lstm_step
    lstm_zero_state LyapunovSpectrum lyapunov_spectrum MAX_DERIVATIVE MeanFieldTrajectory
    mean_field_trajectory MLPConfig MLPGradientFlow MLPParams MLPTrace mlp_apply
    mlp_gradient_flow mlp_layer_monitor NO_PARAMS OmegaTerms OneUnitParams one_unit_step
    OrbitDiagram orbit_diagram PascanuParams pascanu_bound_log_norms pascanu_omega
    pascanu_omega_terms pascanu_step pascanu_unroll PeriodicOrbits periodic_orbits
    PoincareSection poincare_section QStar q_map q_star RandomMLPSignal random_direction
    random_mlp_signal RateMeanField RateParams rate_flow_step rate_mean_field rate_step
    rate_vector_field RecurrentGradientFlow recurrent_gradient_flow sampled_batches
    ScaledNorm scaled_norm scan_landscape SequenceModel SequenceParams sequence_loss
    sequence_omega sequence_outputs sequence_state_grad_norms shuffled_batches SlowPoints
    slow_points SpectralDensity SpectralEstimate spectral_norm spectral_radius
    STABILITY_LABELS state_grad_monitor success SuccessResult Sweep sweep switch_branch
    Task TaskBatch TASKS TrainingDiverged TrainResult TrainState train_step train_steps
    TrajectoryDirections trajectory_directions tree_scaled_norm unroll
    validate_pascanu_params VectorField vector_field vmap_optimizer with_clipping
""".split()


def test_every_name_of_the_old_top_level_is_still_reached():
    """Each 0.1 name is curated or in a face (so the top level still reaches it, warning)."""
    home = _home()
    lost = [name for name in OLD_TOP_LEVEL if name not in home]
    assert not lost, f"0.1 names in no subpackage face: {lost}"
    assert len(OLD_TOP_LEVEL) == 178
    assert home["integrator_step"] == "systems" and home["flossing_regularizer"] == "train"


# --------------------------------------------------------------------------- (b) the top level


def test_top_level_all_is_the_curated_list():
    assert jaxgrad.__all__ == CURATED
    assert 30 <= len(CURATED) <= 45
    home = _home()
    for name in CURATED:
        assert name in home, f"{name} is curated but in no subpackage face"
        assert getattr(jaxgrad, name) is getattr(getattr(jaxgrad, home[name]), name)


def test_dir_is_tidy():
    assert dir(jaxgrad) == sorted([*CURATED, *SUBPACKAGES, "__version__"])
    for package in SUBPACKAGES:
        assert inspect.ismodule(getattr(jaxgrad, package))


def test_nothing_else_is_bound_at_the_top_level():
    """A name imported into jaxgrad/__init__.py must be curated or live in its face.

    When a merge brings a line ``from .analysis.foo import bar as bar`` into
    jaxgrad/__init__.py, move it to jaxgrad/analysis/__init__.py (and its ``__all__``): the
    top level then still reaches it, with a DeprecationWarning.
    """
    allowed = {*CURATED, *SUBPACKAGES}
    extra = sorted(name for name in vars(jaxgrad) if not name.startswith("_")
                   and name not in allowed)
    assert not extra, f"bound at the top level but not curated: {extra}"


def test_nothing_is_named_like_a_subpackage():
    modules = {path.stem for path in (ROOT / "jaxgrad").iterdir()
               if not path.name.startswith("_") and (path.suffix == ".py" or path.is_dir())}
    assert set(SUBPACKAGES) <= modules
    clashes = [name for name in _home() if name in modules]
    assert not clashes, clashes


# --------------------------------------------------------------------------- (c) deprecations


def test_deprecated_name_warns_and_works():
    with pytest.warns(DeprecationWarning, match=r"use jaxgrad\.analysis\.hopf_curve"):
        hopf_curve = jaxgrad.hopf_curve
    assert hopf_curve is jaxgrad.analysis.hopf_curve
    with pytest.warns(DeprecationWarning, match=r"jaxgrad\.models\.GRUParams"):
        from jaxgrad import GRUParams
    assert GRUParams is jaxgrad.models.GRUParams


def test_every_moved_name_warns_with_its_place():
    for name, package in _home().items():
        if name in CURATED:
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            obj = getattr(jaxgrad, name)
        assert obj is getattr(getattr(jaxgrad, package), name)
        assert [w.category for w in caught] == [DeprecationWarning], name
        assert f"jaxgrad.{package}.{name}" in str(caught[0].message)


def test_curated_names_and_unknown_names_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert jaxgrad.lyapunov_spectrum is jaxgrad.analysis.lyapunov_spectrum
        assert not hasattr(jaxgrad, "no_such_name")
    with pytest.raises(AttributeError, match="no_such_name"):
        jaxgrad.no_such_name


# --------------------------------------------------------------------------- (d) no old names

ATTR = re.compile(r"(?<![\w.])jaxgrad\.(\w+)\b")
FROM = re.compile(r"^\s*from\s+jaxgrad\s+import\s+(\([^)]*\)|[^\n]*)", re.MULTILINE)


def _sources():
    """``(label, text)`` of every file that could use a public name, notebooks by cell."""
    paths = [ROOT / "README.md"]
    for folder, pattern in [("experiments", "**/*.py"), ("experiments", "**/*.md"),
                            ("benchmarks", "**/*.py"), ("benchmarks", "**/*.md"),
                            ("docs", "**/*.md"), ("docs", "*.py"), ("tests", "**/*.py"),
                            ("jaxgrad", "**/*.py")]:
        paths.extend(sorted((ROOT / folder).glob(pattern)))
    skip = {Path(__file__).resolve(), (ROOT / "jaxgrad" / "__init__.py").resolve()}
    for path in paths:
        if path.resolve() in skip or not path.is_file():
            continue
        yield path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for number, cell in enumerate(cells, 1):
            yield f"notebooks/{path.name} cell {number}", "".join(cell["source"])


def test_no_file_uses_a_moved_top_level_name():
    home, bad = _home(), []
    moved = {name: package for name, package in home.items() if name not in CURATED}
    for label, text in _sources():
        for match in ATTR.finditer(text):
            if match.group(1) in moved:
                line = text.count("\n", 0, match.start()) + 1
                bad.append(f"{label}:{line}: jaxgrad.{match.group(1)} -> "
                           f"jaxgrad.{moved[match.group(1)]}.{match.group(1)}")
        for match in FROM.finditer(text):
            for name in re.findall(r"\b\w+\b", match.group(1).split("#")[0]):
                if name in moved:
                    line = text.count("\n", 0, match.start()) + 1
                    bad.append(f"{label}:{line}: from jaxgrad import {name} -> "
                               f"from jaxgrad.{moved[name]} import {name}")
    assert not bad, "moved names used from the top level:\n" + "\n".join(bad)


def test_the_scan_finds_old_names():
    """The scan above can fail: it sees both forms in a text that uses them."""
    text = "x = jaxgrad.hopf_curve(f)\nfrom jaxgrad import (\n    GRUParams,\n    fit,\n)\n"
    assert [m.group(1) for m in ATTR.finditer(text)] == ["hopf_curve"]
    names = re.findall(r"\b\w+\b", FROM.search(text).group(1))
    assert names == ["GRUParams", "fit"]
